#!/usr/bin/env bash
# The performance targets, each a ratio measured side by side in one run (hyperfine, warm
# cache). Prints a table and exits 1 if any ratio is over its target.
#
#   benches/compare.sh            # data in target/bench-data (made on first run)
#
# Needs: hyperfine, hivexget (libhivex-bin), wine64 (for its DLLs), GNU time, python3, and
# ../shared/hives for the real hive. Installs the Debian packages when missing and root.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v hivexget >/dev/null || missing+=(libhivex-bin)
[ -x /usr/bin/time ] || missing+=(time)
[ -d /usr/lib/x86_64-linux-gnu/wine/x86_64-windows ] || missing+=(wine64)
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
if [ ! -d "$data/ops100k" ]; then
  echo "writing benchmark inputs to $data (once)..." >&2
  cargo bench -q --bench bench_data -- "$data" >&2
fi
nb=target/release/nextboot
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# median seconds of a command (hyperfine), $1 = name, $2 = command, $3 = runs. The median,
# not the mean: a shared machine's occasional stall should not decide a ratio.
median() {
  hyperfine -i --warmup 2 --runs "$3" --export-json "$tmp/$1.json" "$2" >/dev/null 2>&1
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['results'][0]['median'])" "$tmp/$1.json"
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
  rows+=("$(printf '%-58s %9.1f ms %9.1f ms %7s  <= %-5s %s' "$1" "$(python3 -c "print($2*1000)")" "$(python3 -c "print($3*1000)")" "$r" "$4" "$ok")")
}

hivex="hivexget $hive 'ControlSet001\\Control\\Session Manager' PendingFileRenameOperations"
t_hivex=$(median hivex "$hivex > /dev/null" 40)
t_hive=$(median hive "$nb check --hive $hive --allow-dirty --hash none --format json > /dev/null" 40)
ratio "check --hive SYSTEM_WIN_10_1709 vs hivexget" "$t_hive" "$t_hivex" 0.5
t_vol=$(median vol "$nb check $data/win10 --allow-dirty --hash none --format json > /dev/null" 40)
ratio "check SYSTEM_WIN_10_1709 over its volume vs hivexget" "$t_vol" "$t_hivex" 1.0

pe=$(ls "$data"/pe1000/*.dll | tr '\n' ' ')
t_cat=$(median cat1000 "cat $pe > /dev/null" 20)
t_ver=$(median ver1000 "$nb version --format json $pe > /dev/null" 20)
ratio "version, 1,000 small PE files vs cat" "$t_ver" "$t_cat" 2.0

wine=$(ls /usr/lib/x86_64-linux-gnu/wine/x86_64-windows/*.dll | tr '\n' ' ')
t_catw=$(median catwine "cat $wine > /dev/null" 5)
t_verw=$(median verwine "$nb version --format json $wine > /dev/null" 5)
ratio "version, wine64's DLLs ($(du -shc $wine | tail -1 | cut -f1)) vs cat" "$t_verw" "$t_catw" 0.25

# The 10k and 100k checks alternate (after a warm-up of each), so that a slow spell of the
# machine falls on both sizes alike; medians of 9 runs each.
read -r t_ops10k t_ops100k < <(python3 - "$nb" "$data" <<'PY'
import statistics, subprocess, sys, time
nb, data = sys.argv[1], sys.argv[2]
def run(n):
    start = time.perf_counter()
    subprocess.run([nb, "check", f"{data}/ops{n}", "--hash", "none", "--format", "json"],
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start
times = {"10k": [], "100k": []}
for n in times:
    run(n)
for _ in range(9):
    for n in times:
        times[n].append(run(n))
print(statistics.median(times["10k"]), statistics.median(times["100k"]))
PY
)
t_cat100k=$(median cat100k "find $data/ops100k -type f -print0 | xargs -0 cat > /dev/null" 5)
ratio "check, 100,000 operations over 100,000 files vs cat" "$t_ops100k" "$t_cat100k" 2.0
ratio "check, 100k operations vs 10k (linear growth)" "$t_ops100k" "$t_ops10k" 11
peak_kb=$( { /usr/bin/time -f '%M' "$nb" check "$data/ops100k" --hash none --format json >/dev/null || true; } 2>&1 | tail -1)
hive_kb=$(( $(stat -c %s "$data/ops100k/Windows/System32/config/SYSTEM") / 1024 ))
# In MB, shown in the "ms" columns.
peak_mb=$(python3 -c "print($peak_kb / 1024 / 1000)")
limit_mb=$(python3 -c "print((2 * $hive_kb + 65536) / 1024 / 1000)")
ratio "peak memory (MB), 100k operations vs 2 x hive + 64 MB" "$peak_mb" "$limit_mb" 1.0

printf '%-58s %12s %12s %7s  %s\n' "measure" "nextboot" "reference" "ratio" "target"
printf '%s\n' "${rows[@]}"
echo "(the memory row is in MB)"
exit $fail
