#!/usr/bin/env bash
# Runs two builds of nextboot on the same inputs and compares every output byte for byte
# (stdout, stderr, exit status, written files), with only the run's start time masked. For
# changes that must not change behaviour (issue 13):
#
#   benches/same-outputs.sh OLD_BINARY NEW_BINARY
#
# NEXTBOOT_ADDED_FIELDS="detail" accepts outputs that differ only by those keys
# added to JSON and YAML objects (the contract allows added fields): such a file is parsed on
# both sides, the keys are dropped from the new one, and the rest must be equal.
#
# Inputs: the demo scenarios, every hive of ../shared/hives (with and without logs), the
# malformed corpus, every PE fixture, the baselines, and the benchmark volumes of
# target/bench-data when present (cargo bench --bench bench_data -- target/bench-data).
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(realpath "$1")
new=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
repo=$(pwd)

# One run of every case with the binary at $work/bin/nextboot (so argv[0] is the same).
run_all() {
  local binary=$1 out=$2
  mkdir -p "$work/bin" "$out"
  ln -sf "$binary" "$work/bin/nextboot"
  local nb=$work/bin/nextboot n=0
  case_() {
    n=$((n + 1))
    local name=$out/$(printf %04d $n)
    rm -rf "$work/o" && mkdir -p "$work/o"
    set +e
    (cd "$work/o" && "$nb" "$@" >"$name.out" 2>"$name.err")
    echo $? >"$name.status"
    set -e
    echo "$*" >"$name.args"
    if [ -n "$(ls -A "$work/o")" ]; then cp -r "$work/o" "$name.files"; fi
  }
  local formats=(table json jsonl csv yaml)
  for root in "$repo"/testdata/scenarios/*/; do
    for f in "${formats[@]}"; do case_ check "$root" --format "$f"; done
    case_ check "$root" --format json --hash all
    case_ check "$root" --control-set current
    case_ fix "$root" --out "$work/o/fix.reg"
  done
  if [ -d ../shared/hives ]; then
    while IFS= read -r hive; do
      for f in "${formats[@]}"; do case_ check --hive "$hive" --format "$f"; done
      case_ check --hive "$hive" --no-logs --format json
      case_ check --hive "$hive" --allow-dirty
      case_ recover "$hive" --out "$work/o/recovered"
      case_ recover "$hive" --out "$work/o/recovered" --json
    done < <(find ../shared/hives -type f ! -iname '*.log*' ! -name '*.md' ! -name '*.txt' | sort)
  fi
  for hive in "$repo"/testdata/malformed/hive/*; do
    case_ check --hive "$hive" --format json
    case_ check --hive "$hive"
  done
  for pe in "$repo"/testdata/pe/bin/*.dll "$repo"/testdata/pe/bin/*.exe "$repo"/testdata/malformed/pe/*; do
    case_ version "$pe"
    case_ version "$pe" --format json --sha256
  done
  for baseline in "$repo"/testdata/baselines/*.yaml; do
    for root in "$repo"/testdata/scenarios/*/; do
      for f in "${formats[@]}"; do case_ verify "$root" --baseline "$baseline" --format "$f"; done
    done
  done
  for root in "$repo"/testdata/scenarios/*/; do
    case_ verify "$root" --write-baseline "$work/o/b.yaml" --include 'Windows/System32/**' --with-sha256
  done
  # Every scenario volume the tests build (NEXTBOOT_KEEP_SCENARIOS=DIR cargo test), when given
  # as NEXTBOOT_SCENARIOS=DIR.
  if [ -n "${NEXTBOOT_SCENARIOS:-}" ]; then
    for root in "$NEXTBOOT_SCENARIOS"/*/; do
      for f in table json csv; do case_ check "$root" --format "$f"; done
      case_ check "$root" --format yaml --control-set current
      case_ fix "$root" --out "$work/o/fix.reg"
    done
  fi
  for volume in target/bench-data/ops10k target/bench-data/win10; do
    [ -d "$volume" ] || continue
    for f in "${formats[@]}"; do case_ check "$repo/$volume" --format "$f"; done
    case_ fix "$repo/$volume" --out "$work/o/fix.reg"
  done
  case_ check
  case_ check /nonexistent
  case_ check --hive /nonexistent
  case_ version /nonexistent
  echo "$n cases"
}

run_all "$old" "$work/old"
run_all "$new" "$work/new"
# The run's start time is the only thing that may differ.
mask() {
  find "$1" -type f \( -name '*.out' -o -name '*.reg' \) -print0 |
    xargs -0 sed -i -E 's/"started": ?"[^"]*"/"started":"-"/g; s/started: [^ ]*Z/started: -/g; s/,[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]*Z,/,-,/g'
}
mask "$work/old"
mask "$work/new"
# Diagnostic codes may be renamed (nextboot::<stage>::<what>): listed, then compared without.
codes() { cat "$1"/*.err 2>/dev/null | grep -o 'nextboot::[a-z_:]*' | sort | uniq -c; }
if [ "$(codes "$work/old")" != "$(codes "$work/new")" ]; then
  echo "diagnostic codes renamed:"
  diff <(codes "$work/old") <(codes "$work/new") | grep '^[<>]' || true
fi
find "$work/old" "$work/new" -name '*.err' -print0 | xargs -0 sed -i -E 's/nextboot::[a-z_:]+/nextboot::CODE/g'

if [ -n "${NEXTBOOT_ADDED_FIELDS:-}" ]; then
  diff -rq "$work/old" "$work/new" | sed -n 's/^Files \(.*\) and \(.*\) differ$/\1 \2/p' >"$work/differ" || true
  if [ -s "$work/differ" ]; then
    python3 - "$work/differ" $NEXTBOOT_ADDED_FIELDS <<'PY'
import json, sys
import yaml

added = set(sys.argv[2:])

def drop(value):
    if isinstance(value, dict):
        return {k: drop(v) for k, v in value.items() if k not in added}
    if isinstance(value, list):
        return [drop(v) for v in value]
    return value

def parse(path):
    text = open(path, encoding="utf-8").read()
    for load in (json.loads, lambda t: [json.loads(l) for l in t.splitlines() if l], yaml.safe_load):
        try:
            return load(text)
        except Exception:
            pass
    raise SystemExit(f"{path}: neither JSON, JSON lines nor YAML, and it differs")

pairs = [line.split() for line in open(sys.argv[1])]
for old, new in pairs:
    before, after = parse(old), parse(new)
    if drop(after) != before:
        raise SystemExit(f"{new} differs by more than the added fields")
    if drop(before) != before:
        raise SystemExit(f"{old} already had an added field")
print(f"{len(pairs)} files differ only by the added fields ({' '.join(sorted(added))})")
PY
    while read -r old new; do cp "$old" "$new"; done <"$work/differ"
  fi
fi

if diff -r "$work/old" "$work/new" >"$work/diff"; then
  echo "same outputs: $(ls "$work/old" | grep -c '\.status$') cases, every file identical"
else
  head -100 "$work/diff"
  echo "OUTPUTS DIFFER ($(grep -c '^diff' "$work/diff") files)" >&2
  exit 1
fi
