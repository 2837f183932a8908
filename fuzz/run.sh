#!/bin/sh
# Runs one fuzz target for SECONDS (default 600) on one core, as docs/hardening.md records:
#   fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags...]
# Builds with cargo-fuzz (nightly), seeds the corpus (fuzz/seed.py), and runs the binary from
# its own work folder so that parallel runs do not share libFuzzer's fuzz-N.log. The log ends
# up in fuzz/logs/TARGET.log; crashes in fuzz/artifacts/TARGET/.
set -eu
target=$1
seconds=${2:-600}
shift $(( $# < 2 ? $# : 2 ))
fuzz=$(cd "$(dirname "$0")" && pwd)
cd "$fuzz/.."
cargo +nightly fuzz build "$target"
python3 "$fuzz/seed.py"
mkdir -p "$fuzz/logs" "$fuzz/work/$target" "$fuzz/artifacts/$target"
case $target in
    hive_read|log_replay) max_len=65536 ;;
    pe_version) max_len=16384 ;;
    ntfs_volume) max_len=2097152 ;;
    partition_table) max_len=65536 ;;
    # Container seeds (fuzz/seed.py): a dynamic VHD is one 2 MiB block and its tables; a
    # VHDX is 4 MiB of structures and one 1 MiB block; the others are under 300 KiB.
    container_vhd) max_len=2228224 ;;
    container_vhdx) max_len=5242880 ;;
    container_vmdk|container_ewf) max_len=327680 ;;
    container_qcow2) max_len=131072 ;;
    *) max_len=4096 ;;
esac
cd "$fuzz/work/$target"
"$fuzz/target/x86_64-unknown-linux-gnu/release/$target" \
    -artifact_prefix="$fuzz/artifacts/$target/" \
    -max_total_time="$seconds" -max_len="$max_len" -jobs=1 -print_final_stats=1 \
    -rss_limit_mb=2048 -timeout=10 "$@" \
    "$fuzz/corpus/$target"
cp fuzz-0.log "$fuzz/logs/$target.log"
tail -n 15 "$fuzz/logs/$target.log"
