#!/usr/bin/env bash
# Benchmark (not a test): dcem-audit over one year of 15-minute readings for
# 200 meters (about 7 million rows), pinned to one core. Prints rows/s and
# peak RSS next to what they are compared with in the same run:
#   - the target, 2,000,000 rows/s on one core;
#   - the floor of just reading the file: `wc -l` over the same CSV;
#   - the simplest program that parses every row: awk summing the kwh column;
#   - memory flat in rows: peak RSS over the same year with half the rows
#     (every other timestamp dropped) vs all of them. Memory grows with
#     meters x days covered, not with rows.
# Usage: scripts/bench/audit.sh [meters] [workdir]   (defaults: 200, a temp dir)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
meters=${1:-200}
work=${2:-$(mktemp -d /tmp/dcem-bench-audit.XXXXXX)}
mkdir -p "$work"
build="$root/build/release"

"$root/scripts/deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target dcem-audit dcem-gen >/dev/null
audit="$build/gateway/audit/dcem-audit"
gen="$build/tests/dcem-gen"
policy="$root/configs/policy/beijing-etown-2024.yaml"

site="$work/bench-site.yaml"
"$root/scripts/bench/bench-site.sh" "$meters" "$site"

csv="$work/readings.csv"
if [[ ! -s $csv ]]; then
  echo "generating readings for $meters meters ..." >&2
  "$gen" --site "$site" --year 2025 --out "$csv" --truth "$work/truth.json"
fi
rows=$(($(wc -l <"$csv") - 1))
size=$(du -m "$csv" | cut -f1)

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
lt() { awk "BEGIN { exit !($1 < $2) }"; }

# run CMD... -> sets secs and rss_kb
run() {
  /usr/bin/time -o "$work/time" -f '%e %M' taskset -c 0 "$@" >/dev/null 2>"$work/stderr"
  read -r secs rss_kb <"$work/time"
}

echo "rows: $rows ($size MiB), meters: $meters, one core (taskset -c 0)"
run wc -l "$csv"
printf '%-34s %8.2f s %12.0f rows/s %8d KiB peak\n' "floor: wc -l (read the file)" \
  "$secs" "$(calc "$rows / $secs")" "$rss_kb"
floor=$secs

best=
for i in 1 2 3; do
  run "$audit" --site "$site" --policy "$policy" --readings "$csv" --year 2025 --json
  if [[ -z $best ]] || lt "$secs" "$best"; then best=$secs; best_rss=$rss_kb; fi
done
rate=$(calc "$rows / $best")
printf '%-34s %8.2f s %12.0f rows/s %8d KiB peak  (best of 3)\n' "dcem-audit --year --json" \
  "$best" "$rate" "$best_rss"

run awk -F, '{ s += $3 } END { print s }' "$csv"
printf '%-34s %8.2f s %12.0f rows/s %8d KiB peak\n' "baseline: awk sums the kwh column" \
  "$secs" "$(calc "$rows / $secs")" "$rss_kb"
awk_secs=$secs

half="$work/half.csv"
[[ -s $half ]] || awk -v m="$meters" 'NR == 1 || int((NR - 2) / m) % 2 == 0' "$csv" >"$half"
half_rows=$(($(wc -l <"$half") - 1))
run "$audit" --site "$site" --policy "$policy" --readings "$half" --year 2025 --json
printf '%-34s %8.2f s %12.0f rows/s %8d KiB peak\n' "dcem-audit, every other timestamp" \
  "$secs" "$(calc "$half_rows / $secs")" "$rss_kb"

echo
printf 'target 2,000,000 rows/s: %s (%.2fx)\n' \
  "$(lt "$rate" 2000000 && echo MISSED || echo met)" "$(calc "$rate / 2000000")"
printf 'vs awk summing one column: %.2fx its speed; vs wc -l: %.1fx its time\n' \
  "$(calc "$awk_secs / $best")" "$(calc "$best / $floor")"
printf 'memory, %d rows vs %d rows over the same days: %d KiB vs %d KiB\n' \
  "$rows" "$half_rows" "$best_rss" "$rss_kb"
