#!/usr/bin/env bash
# Benchmark (not a test): dcem-collector ingesting batches through mosquitto
# into its SQLite store, with its shipped defaults (synchronous=FULL: an ack
# means the batch is on stable storage; figures recomputed every second).
# Load: the 200-meter ledger of scripts/bench/audit.sh, 15-minute readings
# from dcem-gen, shared over 8 gateways (25 meters each) in batches of 250
# readings, published QoS 1 by tests/tools/dcem-blast (paho's asynchronous
# client, batches encoded before the clock starts, 20 unacknowledged
# batches per gateway at most).
#
# Three phases on one broker, each figure printed next to what it is
# compared with in the same run:
#   1. ceiling: no collector yet; a null subscriber (mosquitto_sub on
#      dcem/v1/+/+/data at QoS 1, printing only a timestamp per message)
#      counts what it receives while dcem-blast publishes the first 14 days
#      30 times over with nobody acking (its window counts the broker's
#      PUBACKs). Its rate, first to last message, is the ceiling: the
#      broker and the publisher with a consumer that does nothing.
#   2. throughput: dcem-collector on a fresh store; dcem-blast publishes
#      the same 14 days once, as fast as the collector's acks let it.
#      Readings/s stored = readings acked / (last ack - first publish),
#      checked against the collector's health counters and the rows its
#      export returns.
#   3. latency: the next 14 days (a new epoch) at a steady 10,000
#      readings/s; per batch, publish to the arrival of the ack that covers
#      it, measured by the publisher (an ack is sent after the commit).
# Targets (the issue): >= 100,000 readings/s stored and >= half the null
# subscriber's rate; p99 publish-to-stored <= 500 ms at 10,000 readings/s.
#
# The consumer (collector or null subscriber) runs on core 0, the broker and
# the publisher on core 1.
#
# Usage: scripts/bench/collector.sh [workdir]   (default: a temp dir)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/bench/lib.sh"
work=${1:-}
build="$root/build/release"
meters=200 gateways=8 batch=250 window=20 rate=10000

"$root/scripts/deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target dcem-collector dcem-gen dcem-blast >/dev/null
col="$build/gateway/collector/dcem-collector"
gen="$build/tests/dcem-gen"
blast="$build/tests/dcem-blast"

bench_work collector "$work"
rm -rf "$work/store.db" "$work/store.db-wal" "$work/store.db-shm" "$work"/*.log "$work"/*.out
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
lt() { awk "BEGIN { exit !($1 < $2) }"; }
cpu_s() {
  local stat
  stat=$(<"/proc/$1/stat")
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }' <<<"${stat##*) }"
}
# field NAME LINE: the value of NAME=value in dcem-blast's output line
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

# ---- data: the ledger of scripts/bench/audit.sh ----
site="$work/sites/bench.yaml"
mkdir -p "$work/sites"
"$root/scripts/bench/bench-site.sh" "$meters" "$site"
[[ -s $work/year.csv ]] || "$gen" --site "$site" --year 2025 --out "$work/year.csv" --truth "$work/truth.json"
# local days 1-14 and 15-28 of January (times are +08:00 in the file)
awk -F, 'NR == 1 || substr($1, 1, 10) < "2025-01-15"' "$work/year.csv" >"$work/p1.csv"
awk -F, 'NR == 1 || (substr($1, 1, 10) >= "2025-01-15" && substr($1, 1, 10) < "2025-01-29")' \
  "$work/year.csv" >"$work/p2.csv"
rows1=$(($(wc -l <"$work/p1.csv") - 1))
rows2=$(($(wc -l <"$work/p2.csv") - 1))

# ---- broker ----
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
uri="tcp://127.0.0.1:$port"
cat >"$work/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
EOF
taskset -c 1 mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
wait_for "mosquitto on $port" 10 port_open "$port"
blast_args=(--uri "$uri" --site bench --gateways "$gateways" --batch "$batch" --window "$window"
            --timeout-s 600)

echo "dcem-collector bench: $meters meters, 15-minute readings, $gateways gateways x $((meters / gateways))" \
  "meters, batches of $batch readings, window $window batches per gateway" >&2

# ---- 1. ceiling: a null subscriber ----
taskset -c 0 mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -t 'dcem/v1/+/+/data' -F '%U' \
  >"$work/null-sub.out" 2>"$work/null-sub.err" &
sub_pid=$!
pids+=("$sub_pid")
# subscribed once a probe published on a data topic comes back
wait_for "the null subscriber" 10 bash -c "mosquitto_pub -h 127.0.0.1 -p $port -q 1 \
  -t dcem/v1/probe/probe/data -m probe && [[ -s '$work/null-sub.out' ]]"
probes=$(wc -l <"$work/null-sub.out")
echo "1/3 ceiling: null subscriber, $rows1 readings x 30 ..." >&2
c_line=$(taskset -c 1 "$blast" "${blast_args[@]}" --csv "$work/p1.csv" --no-ack --repeat 30 \
  --prefix gw-ceil) || fail "dcem-blast (ceiling): $c_line"
c_batches=$(field batches "$c_line")
wait_for "the null subscriber's last message" 60 \
  bash -c "(( \$(wc -l <'$work/null-sub.out') >= $((probes + c_batches)) ))"
kill -TERM "$sub_pid"
wait "$sub_pid" 2>/dev/null || true
read -r s_msgs s_secs < <(tail -n +$((probes + 1)) "$work/null-sub.out" |
  awk 'NR == 1 { f = $1 } { l = $1 } END { printf "%d %.6f\n", NR, l - f }')
s_rate=$(calc "($s_msgs - 1) / $s_secs * $batch")

# ---- 2. throughput: the collector ----
cat >"$work/collector.yaml" <<EOF
collector: bench
sites: sites
policy: $root/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: unsigned traffic
mqtt: {uri: "$uri", version: 5}
store: {path: store.db}
EOF
"$col" -c "$work/collector.yaml" --check-config >/dev/null
taskset -c 0 "$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.log" &
col_pid=$!
pids+=("$col_pid")
wait_for "the collector's subscription" 10 grep -q "subscribed to" "$work/collector.log"
echo "2/3 throughput: $rows1 readings as fast as the collector acks ..." >&2
cpu0=$(cpu_s "$col_pid")
t_line=$(taskset -c 1 "$blast" "${blast_args[@]}" --csv "$work/p1.csv" --epoch 1) ||
  fail "dcem-blast (throughput): $t_line"
cpu1=$(cpu_s "$col_pid")
t_rate=$(field readings_per_s "$t_line")
t_secs=$(field elapsed_s "$t_line")

# ---- 3. latency at a steady rate ----
echo "3/3 latency: $rows2 readings at $rate readings/s ..." >&2
l_line=$(taskset -c 1 "$blast" "${blast_args[@]}" --csv "$work/p2.csv" --epoch 2 --rate "$rate") ||
  fail "dcem-blast (latency): $l_line"
cpu2=$(cpu_s "$col_pid")
kill -TERM "$col_pid"
wait "$col_pid" || fail "the collector exited with $?"
health=$(grep "health:" "$work/collector.log" | tail -1)
exported=$("$col" export -c "$work/collector.yaml" --site bench --from 2024-12-01 --to 2025-03-01 |
  wc -l)
exported=$((exported - 1)) # the header
warnings=$(grep -c -E "^(warn|error):" "$work/collector.log" || true)

# ---- report ----
re='received ([0-9]+), stored ([0-9]+), duplicates ([0-9]+), gaps ([0-9]+), malformed ([0-9]+), .*failed ([0-9]+); readings ([0-9]+)'
[[ $health =~ $re ]] || fail "cannot read the health line: $health"
h_stored=${BASH_REMATCH[2]} h_gaps=${BASH_REMATCH[4]} h_failed=${BASH_REMATCH[6]}
h_readings=${BASH_REMATCH[7]}
[[ $h_readings == $((rows1 + rows2)) && $exported == $((rows1 + rows2)) && $h_failed == 0 ]] ||
  fail "stored $h_readings readings (health), exported $exported, failed $h_failed; sent $((rows1 + rows2))"

echo
echo "dcem-collector $("$col" --version | cut -d' ' -f2), mosquitto $(mosquitto -h | sed -n 's/.*version \([0-9.]*\).*/\1/p' | head -1)," \
  "SQLite $(sqlite3 --version | cut -d' ' -f1) (synchronous=FULL, WAL); $meters meters,"
echo "$gateways gateways, batches of $batch readings, window $window; consumer on core 0, broker and publisher on core 1"
echo
printf '%-44s %12s %14s %10s\n' "" "readings/s" "batches/s" "seconds"
printf '%-44s %12.0f %14.1f %10.2f\n' "ceiling: null subscriber receives" "$s_rate" \
  "$(calc "($s_msgs - 1) / $s_secs")" "$s_secs"
printf '%-44s %12.0f %14.1f %10.2f\n' "  (dcem-blast publishes, broker PUBACKs)" \
  "$(field readings_per_s "$c_line")" "$(field batches_per_s "$c_line")" "$(field elapsed_s "$c_line")"
printf '%-44s %12.0f %14.1f %10.2f\n' "dcem-collector stores (acked), full speed" "$t_rate" \
  "$(field batches_per_s "$t_line")" "$t_secs"
printf '%-44s %12s\n' "  collector CPU, full-speed phase" \
  "$(calc "($cpu1 - $cpu0) / $t_secs * 100" | cut -d. -f1)%"
printf '%-44s %12s %14s\n' "  publish to ack at full speed, p50 / p99 ms" \
  "$(field lat_p50_ms "$t_line")" "$(field lat_p99_ms "$t_line")"
printf '%-44s %12.0f %14s %10.2f\n' "steady rate: offered (publisher's schedule)" \
  "$(field publish_readings_per_s "$l_line")" "" "$(field publish_s "$l_line")"
printf '%-44s %12s\n' "  publisher behind its schedule, max ms" "$(field max_behind_ms "$l_line")"
printf '%-44s %12s / %s / %s / %s\n' "  publish to ack, p50 / p90 / p99 / max ms" \
  "$(field lat_p50_ms "$l_line")" "$(field lat_p90_ms "$l_line")" "$(field lat_p99_ms "$l_line")" \
  "$(field lat_max_ms "$l_line")"
printf '%-44s %12s\n' "  collector CPU, steady phase" \
  "$(calc "($cpu2 - $cpu1) / $(field elapsed_s "$l_line") * 100" | cut -d. -f1)%"
echo
echo "stored: $h_readings readings in $h_stored batches (health line), $exported rows exported;" \
  "gaps $h_gaps, failed $h_failed; warnings/errors logged: $warnings"
echo
met() { lt "$1" "$2" && echo MISSED || echo met; }
p99=$(field lat_p99_ms "$l_line")
printf 'target >= 100,000 readings/s stored: %s (%.0f, %.2fx)\n' "$(met "$t_rate" 100000)" \
  "$t_rate" "$(calc "$t_rate / 100000")"
printf 'target >= half the null subscriber (%.0f readings/s): %s (%.4fx of the subscriber)\n' \
  "$(calc "$s_rate / 2")" "$(met "$t_rate" "$(calc "$s_rate / 2")")" "$(calc "$t_rate / $s_rate")"
printf 'target p99 <= 500 ms at %d readings/s: %s (p99 %s ms)\n' "$rate" \
  "$(lt 500 "$p99" && echo MISSED || echo met)" "$p99"
