#!/usr/bin/env bash
# A slow InfluxDB never delays an ack (issue 12): the collector's InfluxDB
# writer runs on its own thread behind a bounded hand-off.
#
#   collector_influx_slow.sh BUILD_DIR SOURCE_DIR
#
# 1. InfluxDB "hangs": a TCP server of the test's own on the writer's port
#    accepts every connection, reads, and never answers (each request waits
#    its whole timeout_ms, 3 s). dcem-blast publishes 5 days of a 40-meter
#    site at a steady 2,000 readings/s: p99 publish -> ack stays far below
#    one request's timeout (the old writer, called from the ingest thread,
#    held every group behind it), and the lines go to the backlog on disk.
# 2. The hang ends: a real InfluxDB 1.x takes the same port. Every reading
#    and every interval the store holds arrives (counted in InfluxDB), none
#    dropped, the backlog empties; SIGTERM then stops the collector cleanly.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
col=$build/gateway/collector/dcem-collector
gen=$build/tests/dcem-gen
blast=$build/tests/dcem-blast
make_work influx-slow
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

start_mosquitto
ihttp=$(free_port)
# the hanging InfluxDB: accepts, reads, never answers
$PY - "$ihttp" >"$work/hang.log" 2>&1 <<'PYEOF' &
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
held = []
def drain(c):
    try:
        while c.recv(65536): pass
    except OSError: pass
while True:
    c, _ = s.accept()
    held.append(c)
    print("accepted", flush=True)
    threading.Thread(target=drain, args=(c,), daemon=True).start()
PYEOF
hang_pid=$!
pids+=("$hang_pid")
wait_for "the hanging server" 10 port_open "$ihttp"

mkdir -p "$work/sites"
"$src/scripts/bench/bench-site.sh" 40 "$work/sites/s40.yaml"
sed -i 's/^site: bench/site: s40/' "$work/sites/s40.yaml"
"$gen" --site "$work/sites/s40.yaml" --year 2025 --out "$work/year.csv" --truth "$work/truth.json" \
  >/dev/null
awk -F, 'NR == 1 || substr($1, 1, 10) < "2025-01-06"' "$work/year.csv" >"$work/days.csv"
readings=$(($(wc -l <"$work/days.csv") - 1))
cat >"$work/collector.yaml" <<EOC
collector: test
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "$uri", version: 5}
store: {path: store.db}
recompute_ms: 500
influx: {url: "http://127.0.0.1:$ihttp", version: 1, db: dcem, backlog_dir: influx-backlog,
         timeout_ms: 3000, retry_initial_ms: 200, retry_max_ms: 1000, flush_interval_ms: 100,
         batch_max_lines: 2000}
EOC
"$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.err" &
col_pid=$!
pids+=("$col_pid")
wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$work/collector.err"

# 1. steady load while every request to InfluxDB hangs
line=$("$blast" --uri "$uri" --site s40 --csv "$work/days.csv" --gateways 4 --batch 100 --window 20 \
  --rate 2000 --timeout-s 120) || fail "dcem-blast: $line"
echo "InfluxDB hanging: $line"
[[ $(field acked_readings "$line") == "$readings" ]] || fail "not every reading acked: $line"
p99=$(field lat_p99_ms "$line")
awk -v p="$p99" 'BEGIN { exit !(p < 1000) }' ||
  fail "p99 publish -> ack $p99 ms while InfluxDB hangs (a request waits 3000 ms)"
grep -q accepted "$work/hang.log" || fail "the writer never reached the hanging server"
wait_for "lines in the backlog" 20 bash -c "ls '$work/influx-backlog' | grep -q '\\.lp\$'"

# 2. InfluxDB answers again, on the same port
kill -TERM "$hang_pid"
wait "$hang_pid" 2>/dev/null || true
start_influxd "$ihttp"
query() { curl -s -G "http://127.0.0.1:$ihttp/query" --data-urlencode db=dcem --data-urlencode "q=$1"; }
influx_count() {
  query "$1" | $PY -c 'import json, sys
s = json.load(sys.stdin)["results"][0].get("series")
print(s[0]["values"][0][1] if s else 0)'
}
intervals=$(sqlite3 "$work/store.db" "SELECT count(*) FROM intervals")
arrived() {
  [[ $(influx_count 'SELECT count(quality) FROM dcem_reading') == "$readings" &&
     $(influx_count 'SELECT count(kwh) FROM dcem_interval') == "$intervals" ]]
}
wait_for "every line in InfluxDB" 90 arrived
kill -TERM "$col_pid"
wait "$col_pid" || fail "the collector did not stop cleanly"
health=$(grep "health: influxdb" "$work/collector.err" | tail -1)
echo "$health"
[[ $health == *"dropped 0 lines"* ]] || fail "lines dropped: $health"
[[ $health == *"backlog 0 lines"* ]] || fail "the backlog is not empty: $health"
echo "every one of $readings readings and $intervals intervals reached InfluxDB; p99 $p99 ms"
