#!/usr/bin/env bash
# The performance targets, each a ratio measured side by side in one run (hyperfine, warm
# cache). Prints a table and exits 1 if any ratio is over its target.
#
#   benches/compare.sh            # data in target/bench-data (made on first run)
#
# Needs: hyperfine, hivexget (libhivex-bin), wine64 (for its DLLs), GNU time, python3, ntfs-3g
# (mkntfs, and FUSE for the mounts the image rows compare with), wimtools, and
# qemu-img (qemu-utils) and ewfacquire (ewf-tools) for the container rows, and
# ../shared/hives for the real hive. Installs the Debian packages when missing and root.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v hivexget >/dev/null || missing+=(libhivex-bin)
[ -x /usr/bin/time ] || missing+=(time)
[ -d /usr/lib/x86_64-linux-gnu/wine/x86_64-windows ] || missing+=(wine64)
command -v ntfs-3g >/dev/null || missing+=(ntfs-3g)
command -v wimapply >/dev/null || missing+=(wimtools)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
command -v ewfacquire >/dev/null || missing+=(ewf-tools)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "install: ${missing[*]}" >&2; exit 2
  fi
fi

data=${NEXTBOOT_BENCH_DATA:-target/bench-data}
hive=../shared/hives/regipy/SYSTEM_WIN_10_1709
[ -f "$hive" ] || { echo "needs $hive (../shared/hives)" >&2; exit 2; }
cargo build --release -q
missing_sets=0
for set in pe1000 win10 ops10k ops100k list100k; do
  [ -d "$data/$set" ] || missing_sets=1
done
if [ $missing_sets = 1 ]; then
  # Writes only the sets that are missing.
  echo "writing benchmark inputs to $data (once)..." >&2
  cargo bench -q --bench bench_data -- "$data" >&2
fi
nb=target/release/nextboot
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# medians ROUNDS RUNS COMMAND...: median seconds of each command (hyperfine), printed in order.
# The commands take turns, ROUNDS blocks of RUNS runs each, so that a slow spell of a shared
# machine falls on all of them alike; the median, not the mean, so that a single stall does
# not decide a ratio.
medians() {
  local rounds=$1 runs=$2
  shift 2
  local round i
  for round in $(seq "$rounds"); do
    i=0
    for command in "$@"; do
      i=$((i + 1))
      hyperfine -i --warmup 1 --runs "$runs" --export-json "$tmp/c$i.r$round.json" "$command" >/dev/null 2>&1
    done
  done
  python3 - "$tmp" "$#" <<'PY'
import glob, json, statistics, sys
folder, count = sys.argv[1], int(sys.argv[2])
print(" ".join(
    str(statistics.median(t for f in glob.glob(f"{folder}/c{i}.r*.json")
                          for t in json.load(open(f))["results"][0]["times"]))
    for i in range(1, count + 1)))
PY
  rm -f "$tmp"/c*.json
}

rows=()
fail=0
# ratio NAME A B TARGET: prints A/B and checks it against TARGET
ratio() {
  local r
  r=$(python3 -c "print(f'{$2/$3:.3f}')")
  local ok
  ok=$(python3 -c "print('ok' if $r <= $4 else 'OVER')")
  [ "$ok" = ok ] || fail=1
  rows+=("$(printf '%-66s %9.1f ms %9.1f ms %7s  <= %-5s %s' "$1" "$(python3 -c "print($2*1000)")" "$(python3 -c "print($3*1000)")" "$r" "$4" "$ok")")
}

hivex="hivexget $hive 'ControlSet001\\Control\\Session Manager' PendingFileRenameOperations"
read -r t_hivex t_hive t_vol < <(medians 8 5 "$hivex > /dev/null" \
  "$nb check --hive $hive --allow-dirty --hash none --format json > /dev/null" \
  "$nb check $data/win10 --allow-dirty --hash none --format json > /dev/null")
ratio "check --hive SYSTEM_WIN_10_1709 vs hivexget" "$t_hive" "$t_hivex" 0.5
ratio "check SYSTEM_WIN_10_1709 over its volume vs hivexget" "$t_vol" "$t_hivex" 1.0

pe=$(ls "$data"/pe1000/*.dll | tr '\n' ' ')
read -r t_cat t_ver < <(medians 5 4 "cat $pe > /dev/null" "$nb version --format json $pe > /dev/null")
ratio "version, 1,000 small PE files vs cat" "$t_ver" "$t_cat" 2.0

wine=$(ls /usr/lib/x86_64-linux-gnu/wine/x86_64-windows/*.dll | tr '\n' ' ')
read -r t_catw t_verw < <(medians 5 1 "cat $wine > /dev/null" "$nb version --format json $wine > /dev/null")
ratio "version, wine64's DLLs ($(du -shc $wine | tail -1 | cut -f1)) vs cat" "$t_verw" "$t_catw" 0.25

read -r t_ops10k t_ops100k t_cat100k < <(medians 9 1 \
  "$nb check $data/ops10k --hash none --format json > /dev/null" \
  "$nb check $data/ops100k --hash none --format json > /dev/null" \
  "find $data/ops100k -type f -print0 | xargs -0 cat > /dev/null")
ratio "check, 100,000 operations over 100,000 files vs cat" "$t_ops100k" "$t_cat100k" 2.0
ratio "check, 100k operations vs 10k (linear growth)" "$t_ops100k" "$t_ops10k" 11
# Peak memory of `check VOLUME` against 2 x FILE's size + 64 MB; in MB, shown in the "ms"
# columns.
peak_row() {
  local peak_kb file_kb
  peak_kb=$( { /usr/bin/time -f '%M' "$nb" check "$2" --hash none --format json >/dev/null || true; } 2>&1 | tail -1)
  file_kb=$(( $(stat -c %s "$3") / 1024 ))
  ratio "$1" "$(python3 -c "print($peak_kb / 1024 / 1000)")" \
    "$(python3 -c "print((2 * $file_kb + 65536) / 1024 / 1000)")" 1.0
}
peak_row "peak memory (MB), 100k operations vs 2 x hive + 64 MB" "$data/ops100k" \
  "$data/ops100k/Windows/System32/config/SYSTEM"

# The same 100,000 operations over the same files as ops100k, as an action list (pending.xml,
# named by SetupExecute, admitted by COMPONENTS) with an empty rename queue.
read -r t_list100k t_queue100k < <(medians 9 1 \
  "$nb check $data/list100k --hash none --format json > /dev/null" \
  "$nb check $data/ops100k --hash none --format json > /dev/null")
ratio "check, 100,000 operations as an action list vs as a rename queue" "$t_list100k" "$t_queue100k" 1.5
peak_row "peak memory (MB), 100k list operations vs 2 x list + 64 MB" "$data/list100k" \
  "$data/list100k/Windows/WinSxS/pending.xml"

# NTFS images read in place (issue 16): win10 and ops10k as volume images (built once with
# mkntfs and wimlib), checked directly and through a read-only ntfs-3g mount of the same image.
for set in win10 ops10k; do
  if [ ! -f "$data/$set.ntfs" ]; then
    mb=$(( $(du -sm "$data/$set" | cut -f1) * 2 + 64 ))
    truncate -s "${mb}M" "$tmp/$set.ntfs"
    mkntfs -q -F -Q "$tmp/$set.ntfs" >/dev/null 2>&1
    wimcapture "$data/$set" "$tmp/$set.wim" --compress=none >/dev/null
    wimapply "$tmp/$set.wim" 1 "$tmp/$set.ntfs" >/dev/null
    mv "$tmp/$set.ntfs" "$data/$set.ntfs"
    rm -f "$tmp/$set.wim"
  fi
  mkdir -p "$tmp/mnt-$set"
  ntfs-3g -o ro "$data/$set.ntfs" "$tmp/mnt-$set"
done
trap 'umount "$tmp"/mnt-* 2>/dev/null; rm -rf "$tmp"' EXIT
read -r t_img_win10 t_mnt_win10 t_img_10k t_mnt_10k < <(medians 7 3 \
  "$nb check $data/win10.ntfs --allow-dirty --hash none --format json > /dev/null" \
  "$nb check $tmp/mnt-win10 --allow-dirty --hash none --format json > /dev/null" \
  "$nb check $data/ops10k.ntfs --hash none --format json > /dev/null" \
  "$nb check $tmp/mnt-ops10k --hash none --format json > /dev/null")
ratio "check of an NTFS image vs of its ntfs-3g mount (real hive, 101 ops)" "$t_img_win10" "$t_mnt_win10" 1.5
ratio "check of an NTFS image vs of its ntfs-3g mount (10,000 ops)" "$t_img_10k" "$t_mnt_10k" 1.5
peak_of() {
  { /usr/bin/time -f '%M' "$nb" check "$1" --allow-dirty --hash none --format json >/dev/null || true; } 2>&1 | tail -1
}
img_kb=$(peak_of "$data/ops10k.ntfs")
dir_kb=$(peak_of "$tmp/mnt-ops10k")
ratio "peak memory (MB), 10k ops: NTFS image vs its mount + 32 MB" \
  "$(python3 -c "print($img_kb / 1024 / 1000)")" "$(python3 -c "print(($dir_kb + 32768) / 1024 / 1000)")" 1.0

# Containers (issue 17): the real hive's volume image (win10.ntfs) in each container, built
# once by qemu-img and ewfacquire; check through each against check of the raw image.
containers=(
  "vhd:vpc:subformat=dynamic,force_size=on"
  "vhdx:vhdx:subformat=dynamic"
  "vmdk:vmdk:subformat=monolithicSparse"
  "qcow2:qcow2:"
)
for entry in "${containers[@]}"; do
  IFS=: read -r ext fmt opts <<<"$entry"
  if [ ! -f "$data/win10.$ext" ]; then
    qemu-img convert -O "$fmt" ${opts:+-o "$opts"} "$data/win10.ntfs" "$tmp/win10.$ext"
    mv "$tmp/win10.$ext" "$data/win10.$ext"
  fi
done
if [ ! -f "$data/win10.E01" ]; then
  ewfacquire -u -q -t "$tmp/win10" -c deflate:fast -C bench -D bench -E 1 -e bench -N bench \
    "$data/win10.ntfs" >/dev/null
  mv "$tmp/win10.E01" "$data/win10.E01"
fi
for ext in vhd vhdx vmdk qcow2 E01; do
  read -r t_raw t_cont < <(medians 7 3 \
    "$nb check $data/win10.ntfs --allow-dirty --hash none --format json > /dev/null" \
    "$nb check $data/win10.$ext --allow-dirty --hash none --format json > /dev/null")
  ratio "check of the real hive's image in a $ext container vs the raw image" "$t_cont" "$t_raw" 1.2
done
raw_kb=$(peak_of "$data/win10.ntfs")
for ext in vhd vhdx vmdk qcow2 E01; do
  cont_kb=$(peak_of "$data/win10.$ext")
  ratio "peak memory (MB), real hive in a $ext container vs raw + 32 MB" \
    "$(python3 -c "print($cont_kb / 1024 / 1000)")" "$(python3 -c "print(($raw_kb + 32768) / 1024 / 1000)")" 1.0
done

printf '%-66s %12s %12s %7s  %s\n' "measure" "nextboot" "reference" "ratio" "target"
printf '%s\n' "${rows[@]}"
echo "(the memory rows are in MB)"
exit $fail
