#!/usr/bin/env bash
# Rebuild the nextboot PE version-resource fixtures from src/ into bin/.
# Byte-reproducible: running it twice yields identical files (see bin/SHA256SUMS).
#
# Usage: ./build.sh [OUTDIR]      (default: <this dir>/bin)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/src"
out="${1:-$here/bin}"

# name            arch   kind  rc (- = no version resource)
FIXTURES=(
  "file_v5          x86_64 dll  file_v5.rc"
  "file_v8          x86_64 dll  file_v8.rc"
  "file_v12         x86_64 dll  file_v12.rc"
  "fix_v0_1         x86_64 dll  fix_v0_1.rc"
  "fix_v0_2         x86_64 dll  fix_v0_2.rc"
  "fix_v0_3         x86_64 dll  fix_v0_3.rc"
  "ordering_10_0    x86_64 dll  ordering_10_0.rc"
  "ordering_6_3     x86_64 dll  ordering_6_3.rc"
  "string_disagrees x86_64 dll  string_disagrees.rc"
  "no_version       x86_64 dll  -"
  "pe32_v7          i686   dll  pe32_v7.rc"
  "pe32_no_version  i686   dll  -"
  "big_parts        x86_64 dll  big_parts.rc"
  "exe_v1           x86_64 exe  exe_v1.rc"
  "lang_only_0407   x86_64 dll  lang_only_0407.rc"
)

# --- tool check -------------------------------------------------------------
missing=()
for t in x86_64-w64-mingw32-gcc x86_64-w64-mingw32-windres \
         i686-w64-mingw32-gcc i686-w64-mingw32-windres sha256sum; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if ((${#missing[@]})); then
  echo "build.sh: missing tools: ${missing[*]}" >&2
  echo "  On Debian/Ubuntu: sudo apt-get install gcc-mingw-w64-x86-64 gcc-mingw-w64-i686 binutils-mingw-w64-x86-64 binutils-mingw-w64-i686" >&2
  echo "  (or simply: sudo apt-get install mingw-w64)" >&2
  exit 1
fi

# --- reproducibility settings -------------------------------------------------
export LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH=0
umask 022

# -nostdlib -nostartfiles: no CRT, tiny image; entry symbol comes from the
#   linker default (DllMainCRTStartup / mainCRTStartup), defined in src/*.c.
# -fno-ident: no "GCC: (GNU) ..." string in .rdata.
# -fno-asynchronous-unwind-tables: no .pdata/.xdata for our leaf functions.
# --no-insert-timestamp: COFF header and export-directory TimeDateStamp = 0.
# --disable-auto-image-base + fixed --image-base: mingw ld otherwise derives a
#   DLL's ImageBase from a hash of the *output path*, so building into another
#   directory would change the bytes (ImageBase and CheckSum).
CFLAGS=(-O2 -s -g0 -fno-ident -fno-asynchronous-unwind-tables
        -ffile-prefix-map="$here"=. -nostdlib -nostartfiles)
LDFLAGS=(-Wl,--no-insert-timestamp -Wl,--build-id=none -Wl,--disable-auto-image-base)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

for row in "${FIXTURES[@]}"; do
  read -r name arch kind rc <<<"$row"
  cc="$arch-w64-mingw32-gcc"
  windres="$arch-w64-mingw32-windres"
  objs=()
  if [[ "$rc" != "-" ]]; then
    # Run windres from src/ with a relative input so no absolute path can leak.
    (cd "$src" && "$windres" -O coff -i "$rc" -o "$tmp/$name.res.o")
    objs+=("$tmp/$name.res.o")
  fi
  case "$kind" in
    dll) csrc=fixture_dll.c; extra=(-shared)
         # MSVC's default DLL bases.
         if [[ "$arch" == x86_64 ]]; then extra+=(-Wl,--image-base=0x180000000)
         else extra+=(-Wl,--image-base=0x10000000); fi;;
    exe) csrc=fixture_exe.c; extra=(-mconsole -lkernel32);;
    *) echo "bad kind $kind" >&2; exit 1;;
  esac
  (cd "$src" && "$cc" "${CFLAGS[@]}" "${LDFLAGS[@]}" -o "$tmp/$name.$kind" \
      "$csrc" "${objs[@]}" "${extra[@]}")
  install -m 0644 "$tmp/$name.$kind" "$out/$name.$kind"
done

# --- checksums ----------------------------------------------------------------
(cd "$out" && for row in "${FIXTURES[@]}"; do
   read -r name _ kind _ <<<"$row"; echo "$name.$kind"; done \
 | sort | xargs sha256sum > SHA256SUMS)
echo "built ${#FIXTURES[@]} fixtures into $out"
cat "$out/SHA256SUMS"
