#!/usr/bin/env bash
# dcem-agent --import: a site's history from a CSV delivered the way polled
# readings are (batched, spooled, published, held until acknowledged) to a
# real dcem-collector through a real mosquitto on loopback. The collector is
# killed with SIGKILL part-way and restarted.
#
#   agent_import.sh BUILD_DIR SOURCE_DIR
#
# Proves: the agent exits 0 once the collector acknowledged every reading;
# the collector's export is exactly the CSV's readings; its figures equal
# dcem-audit's over the CSV itself, for every period; an import leaves no
# gateway state behind (its retained birth is removed, no goodbye, so no
# gateway_offline alert); a CSV with bad rows names each by file:line,
# delivers the rest and exits 1 — imported by a gateway renamed on the same
# spool, whose birth makes the collector give up the seqs it never had; a
# CSV the agent reads whole but whose readings the collector refuses in part
# (a negative counter, a time far in the future) prints what the collector
# refused, by reason, and exits 1; a clean import prints no refusal.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
agent=$build/firmware/agent/dcem-agent
col=$build/gateway/collector/dcem-collector
gen=$build/tests/dcem-gen
audit=$build/gateway/audit/dcem-audit
make_work agent-import

start_mosquitto

mkdir -p "$work/sites"
cp "$src/configs/sites/yz-alpha.yaml" "$work/sites/"
cat >"$work/collector.yaml" <<EOF
collector: import
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5}
store: {path: store.db}
health_log_s: 1
EOF
# an importing agent needs no buses or devices of its own; the ledger makes
# it refuse rows of meters the site does not have
import_agent_config "$work/agent.yaml" gw-history "$work/sites/yz-alpha.yaml" "$work/spool" alpha-ups-a

# two months of the sample site, with its faults, through the reading that closes them
"$gen" --site "$work/sites/yz-alpha.yaml" --year 2025 --faults --out "$work/year.csv" \
  --truth "$work/truth.json" >/dev/null
awk -F, 'NR == 1 || substr($1, 1, 10) < "2025-03-01" || substr($1, 1, 19) == "2025-03-01T00:00:00"' \
  "$work/year.csv" >"$work/history.csv"
rows=$(($(wc -l <"$work/history.csv") - 1))

start_collector() {
  [[ -f $work/collector.err ]] && sed -i 's/^info: mqtt: subscribed to/info: mqtt: (earlier run) subscribed to/' "$work/collector.err"
  "$col" -c "$work/collector.yaml" >>"$work/collector.out" 2>>"$work/collector.err" &
  col_pid=$!
  pids+=("$col_pid")
  wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$work/collector.err"
}
start_collector

t0=$SECONDS
"$agent" -c "$work/agent.yaml" --import "$work/history.csv" >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
pids+=("$agent_pid")
stored() { sqlite3 -cmd '.timeout 5000' "$work/store.db" "SELECT count(*) FROM readings" 2>/dev/null || echo 0; }
wait_for "a fifth of the history stored" 60 bash -c "(( \$(sqlite3 -cmd '.timeout 5000' '$work/store.db' 'SELECT count(*) FROM readings' 2>/dev/null || echo 0) >= $rows / 5 ))"
kill -KILL "$col_pid"
wait "$col_pid" 2>/dev/null || true
at_kill=$(stored)
sleep 1
start_collector
wait "$agent_pid" || fail "the import exited with $?: $(tail -3 "$work/agent.err")"
grep -q "import of .* complete: $rows readings delivered and acknowledged, 0 rows skipped" "$work/agent.err" ||
  fail "the agent's summary: $(grep 'import of' "$work/agent.err")"
! grep -Eq "collector refused|refused to count" "$work/agent.err" ||
  fail "a clean import reported refusals: $(grep -E 'collector refused|refused to count' "$work/agent.err")"
grep -qF "refused by the collector: 0 unknown_meter, 0 future, 0 out_of_range, 0 wrong_kind, 0 quarantined" \
  "$work/agent.err" || fail "the clean import's stats line: $(grep 'refused by' "$work/agent.err")"
echo "imported $rows readings in $((SECONDS - t0)) s; the collector was killed after $at_kill were stored"
kill -TERM "$col_pid"
wait "$col_pid" || fail "the collector exited with $?"
retained=$(timeout 2 mosquitto_sub -p "$port" -t 'dcem/v1/+/+/state' -v --retained-only 2>/dev/null || true)
[[ -z $retained ]] || fail "an import left gateway state behind: $retained"
(($(sqlite3 "$work/store.db" "SELECT count(*) FROM alerts WHERE kind = 'gateway_offline'") == 0)) ||
  fail "an import raised gateway_offline"

"$col" export -c "$work/collector.yaml" --site yz-alpha --from 2024-12-01 --to 2025-04-01 \
  >"$work/export.csv"
"$col" figures -c "$work/collector.yaml" --site yz-alpha --year 2025 >"$work/collector.json"
"$audit" --site "$work/sites/yz-alpha.yaml" --policy "$src/configs/policy/beijing-etown-2024.yaml" \
  --readings "$work/history.csv" --year 2025 --json >"$work/audit.json"
$PY - "$work" "$rows" <<'EOF'
import collections, datetime, json, sys
w, rows = sys.argv[1], int(sys.argv[2])
bad = []
def table(path):
    out = collections.Counter()
    for line in list(open(path))[1:]:
        t, meter, kwh = line.rstrip("\n").split(",")[:3]
        ms = round(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)
        out[(ms, meter, float(kwh))] += 1
    return out
exp, hist = table(f"{w}/export.csv"), table(f"{w}/history.csv")
if exp != hist or sum(exp.values()) != rows:
    bad.append(f"export {sum(exp.values())} rows, history {rows}: {len(hist - exp)} missing, {len(exp - hist)} extra")
col = json.load(open(f"{w}/collector.json"))
aud = json.load(open(f"{w}/audit.json"))["periods"]
if len(col) != len(aud): bad.append("period count differs")
for c, a in zip(col, aud):
    for k, v in a.items():
        if c.get(k) != v: bad.append(f"{a['period']} {k}: collector {c.get(k)!r}, dcem-audit over the CSV {v!r}")
print(f"export = the CSV ({rows} readings); {len(col)} periods identical to dcem-audit over the CSV"
      f" (January total {col[0]['total_kwh']} kWh, verdicts {col[0]['verdicts']})")
if bad: print("\n".join(bad[:20])); sys.exit(1)
EOF

# bad rows: named by file:line, skipped, the rest delivered, exit 1
start_collector
{
  echo "time,meter,kwh"
  echo "2025-03-01T00:15:00+08:00,alpha-in-a,1.5"
  echo "2025-03-01T00:15:00+08:00,no-such-meter,2"
  echo "yesterday,alpha-in-b,3"
  echo "2025-03-01T00:15:00+08:00,alpha-in-b,lots"
} >"$work/bad.csv"
sed -i 's/gw-history/gw-bad-rows/' "$work/agent.yaml"
rc=0
"$agent" -c "$work/agent.yaml" --import "$work/bad.csv" >"$work/bad.out" 2>"$work/bad.err" || rc=$?
((rc == 1)) || fail "an import with bad rows exited $rc"
for want in "bad.csv:3: meter" "bad.csv:4: time" "bad.csv:5: kwh" "1 readings delivered and acknowledged, 3 rows skipped"; do
  grep -qF "$want" "$work/bad.err" || fail "no '$want' in: $(cat "$work/bad.err")"
done
grep -q "yz-alpha/gw-bad-rows epoch [0-9]*: batches 1\.\.[0-9]* are gone from the gateway" \
  "$work/collector.err" || fail "the collector did not give up the seqs the renamed gateway never had"
[[ $(sqlite3 "$work/store.db" "SELECT count(*) FROM readings WHERE gateway = 'gw-bad-rows'") == 1 ]] ||
  fail "the good row of bad.csv was not stored"
! grep -q "collector refused" "$work/bad.err" || fail "bad.csv: refusals reported: $(cat "$work/bad.err")"

# rows the agent reads but the collector refuses to count: delivered and
# acknowledged, yet reported by reason (the ack's "refused") and exit 1
{
  echo "time,meter,kwh"
  echo "2025-03-01T00:30:00+08:00,alpha-in-a,2.5"
  echo "2025-03-01T00:30:00+08:00,alpha-in-b,-5"
  echo "2099-01-01T00:00:00+08:00,alpha-ups-a,1000"
  echo "2025-03-01T00:45:00+08:00,alpha-in-b,-7.5"
} >"$work/refused.csv"
sed -i 's/gw-bad-rows/gw-refused/' "$work/agent.yaml"
rc=0
"$agent" -c "$work/agent.yaml" --import "$work/refused.csv" >"$work/refused.out" 2>"$work/refused.err" || rc=$?
((rc == 1)) || fail "an import the collector refused in part exited $rc: $(cat "$work/refused.err")"
for want in "4 readings delivered and acknowledged, 0 rows skipped" \
  "refused.csv: collector refused: 1 future, 2 out_of_range" \
  "the collector refused to count readings up to epoch" \
  "refused by the collector: 0 unknown_meter, 1 future, 2 out_of_range, 0 wrong_kind, 0 quarantined"; do
  grep -qF "$want" "$work/refused.err" || fail "no '$want' in: $(cat "$work/refused.err")"
done
kill -TERM "$col_pid"
wait "$col_pid" || true
echo "agent_import.sh: passed"
