#!/usr/bin/env bash
# Builds the fuzz targets (tests/fuzz/) with clang, libFuzzer, ASan and UBSan
# into build/fuzz and fuzzes them; docs/fuzzing.md tells the whole story.
#
#   scripts/fuzz.sh [--save] [--jobs N] [TARGET|all] [SECONDS]
#
# TARGET is wire, wire_diff, config, tz, audit, spool, queue, daemon_config, sign, meter (or fuzz_wire, ...);
# all (the default) runs every target, N at a time (default: the number of
# cores), each for SECONDS (default 60). New inputs go to a scratch corpus,
# build/fuzz/corpus/<target>/, kept between runs so a long campaign can be
# resumed; the seeds in tests/fuzz/corpus/<target>/ are read, never written,
# unless --save merges what the run found into them (libFuzzer -merge=1
# keeps only inputs that add coverage). A crash, leak, UB report, timeout or
# broken invariant fails the run: its report is printed and the input is kept
# in build/fuzz/crashes/ (until that target's next run) with the command
# that replays it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
save=0
jobs=$(nproc 2>/dev/null || echo 2)
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --save) save=1; shift ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
what=${1:-all}
seconds=${2:-60}
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "fuzz.sh: SECONDS must be a positive integer" >&2; exit 2; }

cc=${CC:-clang-14}
command -v "$cc" >/dev/null || { echo "fuzz.sh: $cc not found (scripts/deps.sh installs clang-14)" >&2; exit 1; }
build="$root/build/fuzz"
echo "== fuzz: build ($cc, libFuzzer + ASan + UBSan) in build/fuzz" >&2
# Warnings are not errors here: the warning set is tuned for gcc and clang
# words some of it differently; the gcc builds keep -Werror.
CC=$cc cmake -S "$root" -B "$build" -DDCEM_FUZZ=ON -DDCEM_WERROR=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$jobs" --target fuzz >"$build/build.log" 2>&1 ||
  { tail -n 40 "$build/build.log" >&2; exit 1; }

targets=()
if [[ $what == all ]]; then
  for f in "$build"/tests/fuzz/fuzz_*; do
    [[ -x $f && -f $f ]] && targets+=("$(basename "$f")")
  done
else
  targets=("fuzz_${what#fuzz_}")
  [[ -x "$build/tests/fuzz/${targets[0]}" ]] || { echo "fuzz.sh: no target ${targets[0]}" >&2; exit 2; }
fi

mkdir -p "$build/logs" "$build/crashes"
# One target: fuzz for $seconds, then (with --save) merge into the seeds.
# Prints nothing; its log is build/fuzz/logs/<target>.log.
run_one() {
  local t=$1 seeds="$root/tests/fuzz/corpus/$1" scratch="$build/corpus/$1"
  local dict="$root/tests/fuzz/$1.dict" log="$build/logs/$1.log"
  local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$build/crashes/$t-")
  [[ -f $dict ]] && args+=(-dict="$dict")
  # DCEM_FUZZ_SEED: a fixed seed, so a run can be told again (scripts/test.sh)
  [[ -n ${DCEM_FUZZ_SEED:-} ]] && args+=(-seed="$DCEM_FUZZ_SEED")
  mkdir -p "$scratch"
  rm -f "$build/crashes/$t-"* # a finding is kept until the target's next run
  # stdin from /dev/null: nothing a target reads may wait on a terminal
  if ! "$build/tests/fuzz/$t" "${args[@]}" "$scratch" "$seeds" >"$log" 2>&1 </dev/null; then
    return 1
  fi
  if ((save)); then
    "$build/tests/fuzz/$t" -merge=1 "$seeds" "$scratch" >>"$log" 2>&1 </dev/null
  fi
}

echo "== fuzz: ${targets[*]}: ${seconds} s each, $jobs at a time" >&2
declare -A pid_of
failed=()
running=0
for t in "${targets[@]}"; do
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$t" &
  pid_of[$t]=$!
  running=$((running + 1))
done
for t in "${targets[@]}"; do
  if wait "${pid_of[$t]}"; then
    stats=$(grep -E '^stat::number_of_executed_units' "$build/logs/$t.log" | awk '{print $2}')
    cov=$(grep -oE 'cov: [0-9]+' "$build/logs/$t.log" | tail -n 1)
    echo "   $t: ok, ${stats:-?} inputs, ${cov:-cov: ?}" >&2
  else
    failed+=("$t")
  fi
done

if ((${#failed[@]})); then
  for t in "${failed[@]}"; do
    echo "== fuzz: $t FAILED; from build/fuzz/logs/$t.log:" >&2
    # the report: from the sanitizer's or the harness's first word on
    report=$(sed -n '/ERROR: \|runtime error: \|invariant broken: /,$p' "$build/logs/$t.log")
    if [[ -n $report ]]; then head -n 80 <<<"$report" >&2; else tail -n 30 "$build/logs/$t.log" >&2; fi
    for c in "$build/crashes/$t-"*; do
      [[ -e $c ]] && echo "   replay: $build/tests/fuzz/$t $c" >&2
    done
  done
  echo "== fuzz: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]}" >&2
  exit 1
fi
echo "== fuzz: ${#targets[@]} targets passed" >&2
