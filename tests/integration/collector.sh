#!/usr/bin/env bash
# dcem-collector end to end: a real mosquitto on loopback, a SQLite store, and
# dcem-replay publishing two months of generated readings (dcem-gen, the
# sample site yz-alpha with its faults) as an agent's batches.
#
#   collector.sh BUILD_DIR SOURCE_DIR
#
# Proves: every batch stored once and acked; the same batches delivered again
# change nothing; the collector killed with SIGKILL mid-stream and restarted
# loses and doubles nothing; its figures and verdicts for every month and the
# year equal dcem-audit's over the collector's own readings export, field by
# field; and they equal the generator's true energy.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
col=$build/gateway/collector/dcem-collector
replay=$build/tests/dcem-replay
gen=$build/tests/dcem-gen
audit=$build/gateway/audit/dcem-audit
make_work collector

start_mosquitto

# InfluxDB 1.x (Debian influxdb) on its own loopback ports and directories
start_influxd

mkdir -p "$work/sites"
cp "$src/configs/sites/yz-alpha.yaml" "$work/sites/"
cat >"$work/collector.yaml" <<EOF
collector: test
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5}
store: {path: store.db}
recompute_ms: 2000
influx: {url: "http://127.0.0.1:$ihttp", version: 1, db: dcem, backlog_dir: influx-backlog}
EOF
"$gen" --site "$work/sites/yz-alpha.yaml" --year 2025 --faults --out "$work/alpha.csv" \
  --truth "$work/truth.json" >/dev/null
"$col" -c "$work/collector.yaml" --check-config
# the shipped example loads, as shipped but for its key (the deployment's own)
cp -r "$src/configs" "$work/shipped"
"$col" --keygen "$work/shipped/collector.key" >/dev/null 2>&1
sed -i "s|/etc/dcem/collector.key|$work/shipped/collector.key|" "$work/shipped/collector/collector.yaml"
"$col" -c "$work/shipped/collector/collector.yaml" --check-config

start_collector() {
  "$col" -c "$work/collector.yaml" >>"$work/collector.out" 2>>"$work/collector.err" &
  col_pid=$!
  pids+=("$col_pid")
  wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$work/collector.err"
}

# two months (through the reading that closes February), to keep the test short
awk -F, 'NR == 1 || substr($1, 1, 10) < "2025-03-01" || substr($1, 1, 19) == "2025-03-01T00:00:00"' \
  "$work/alpha.csv" >"$work/two.csv"
mv "$work/two.csv" "$work/alpha.csv"
# 1. the first 89 batches of 250 readings (4 weeks), then SIGKILL while the
# whole two months stream in: the same batches carry the same seqs, as an
# agent's would
head -n $((89 * 250 + 1)) "$work/alpha.csv" >"$work/first.csv"
start_collector
"$replay" --uri "tcp://127.0.0.1:$port" --site yz-alpha --gateway gw-1 --csv "$work/first.csv"
"$replay" --uri "tcp://127.0.0.1:$port" --site yz-alpha --gateway gw-1 --csv "$work/alpha.csv" \
  --timeout-s 300 >"$work/replay2.out" 2>&1 &
replay_pid=$!
pids+=("$replay_pid")
sleep 1
kill -KILL "$col_pid"
wait "$col_pid" 2>/dev/null || true
sed -i 's/subscribed to/(before the kill) subscribed to/' "$work/collector.err"
start_collector
# the replay resends what was not acked (it waits for acks) and finishes
wait "$replay_pid" || fail "replay after the kill: $(cat "$work/replay2.out")"
# 2. everything once more: all duplicates, nothing changes
"$replay" --uri "tcp://127.0.0.1:$port" --site yz-alpha --gateway gw-1 --csv "$work/alpha.csv" \
  --timeout-s 300
# a gateway's last will: the collector raises gateway_offline, stored and
# published (retained) on the site's alerts topic
mosquitto_pub -p "$port" -q 1 -t dcem/v1/yz-alpha/gw-1/state -m '{"v":1,"online":false}'
wait_for "the gateway_offline alert" 10 grep -q "alert: site yz-alpha: gateway gw-1 offline" \
  "$work/collector.err"
timeout 5 mosquitto_sub -p "$port" -t dcem/v1/yz-alpha/alerts -C 1 >"$work/alert.json"
grep -q '"kind":"gateway_offline","subject":"gw-1","state":"raised"' "$work/alert.json" ||
  fail "no retained alert: $(cat "$work/alert.json")"
kill -TERM "$col_pid"
wait "$col_pid" || true
grep "health:" "$work/collector.err" | tail -1
[[ $(sqlite3 "$work/store.db" "SELECT count(*) FROM alerts WHERE kind = 'gateway_offline'") == 1 ]] ||
  fail "the alert was not stored once"

"$col" figures -c "$work/collector.yaml" --site yz-alpha --year 2025 >"$work/collector-figures.json"
"$col" export -c "$work/collector.yaml" --site yz-alpha --from 2024-12-01 --to 2026-02-01 \
  >"$work/export.csv"
"$audit" --site "$work/sites/yz-alpha.yaml" --policy "$src/configs/policy/beijing-etown-2024.yaml" \
  --readings "$work/export.csv" --year 2025 --json >"$work/audit.json"

$PY - "$work" <<'EOF'
import json, sys
w = sys.argv[1]
col = json.load(open(f"{w}/collector-figures.json"))
aud = json.load(open(f"{w}/audit.json"))
truth = json.load(open(f"{w}/truth.json"))
bad = []
# the export holds every generated reading exactly once
rows = sum(1 for _ in open(f"{w}/export.csv")) - 1
gen_rows = sum(1 for _ in open(f"{w}/alpha.csv")) - 1
if rows != gen_rows: bad.append(f"export has {rows} readings, {gen_rows} were generated")
if aud["readings"]["rejected"]: bad.append(f"dcem-audit rejected {aud['readings']['rejected']} exported rows")
# identical to dcem-audit, field by field, every period, every meter
if len(col) != len(aud["periods"]): bad.append("period count differs")
for c, a in zip(col, aud["periods"]):
    for k, v in a.items():
        if c.get(k) != v: bad.append(f"{a['period']} {k}: collector {c.get(k)!r}, dcem-audit {v!r}")
# and exact against the generator's true energy, month by month (each
# period's energy is a difference of counters read to 0.01 kWh)
true = {p["period"]: p for p in truth["periods"]}
for c in col[:2]:  # January and February
    t = true[c["period"]]
    for k in ("total_kwh", "it_kwh", "green_kwh"):
        if abs(c[k] - t[k]) > 0.5: bad.append(f"{c['period']} {k}: {c[k]} vs true {t[k]}")
jan = col[0]
if "reward_eligible" not in jan["verdicts"]: bad.append(f"yz-alpha January verdicts {jan['verdicts']}")
print(f"{len(col)} periods identical to dcem-audit; January total {jan['total_kwh']} kWh "
      f"(true {true['2025-01']['total_kwh']}), verdicts {jan['verdicts']}")
if bad: print("\n".join(bad[:20])); sys.exit(1)
EOF
grep -q "duplicates [1-9]" <(grep "health: received" "$work/collector.err" | tail -1) ||
  fail "the second delivery was not seen as duplicates"
# InfluxDB got the readings, intervals and figures; the last collector run
# (after the kill) wrote every line it had, so what it stored is there
query() { curl -s -G "http://127.0.0.1:$ihttp/query" --data-urlencode db=dcem --data-urlencode "q=$1"; }
$PY - "$(query 'SELECT count(kwh) FROM dcem_interval')" "$(query 'SELECT count(total_kwh) FROM dcem_figures')" \
  "$(sqlite3 "$work/store.db" 'SELECT count(*) FROM intervals')" <<'EOF'
import json, sys
def count(r):
    s = json.loads(r)["results"][0].get("series")
    return s[0]["values"][0][1] if s else 0
intervals, figures, stored = count(sys.argv[1]), count(sys.argv[2]), int(sys.argv[3])
print(f"InfluxDB: {intervals} interval points of {stored} stored intervals, {figures} figures points")
if not (0 < intervals <= stored) or figures < 3: sys.exit("InfluxDB is missing what was stored")
EOF
grep "influxdb:" "$work/collector.err" | tail -1
echo "collector.sh: passed"
