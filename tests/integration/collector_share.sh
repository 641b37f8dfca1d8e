#!/usr/bin/env bash
# Two dcem-collectors in one MQTT 5 shared subscription ($share/dcem/...) on
# one store (SQLite, or with BACKEND postgresql a PostgreSQL server of the
# test's own): the broker hands each batch of a gateway to one of them,
# so batch n + 1 often reaches one collector while the other is still
# storing batch n. A real mosquitto on loopback; dcem-replay publishes three
# weeks of the sample site yz-alpha (dcem-gen, with its faults) as one
# gateway's batches; collector A is killed with SIGKILL mid-stream and
# restarted 3 s later (its session keeps what the broker gave it).
#
#   collector_share.sh BUILD_DIR SOURCE_DIR [sqlite|postgresql]
#
# Proves: both collectors stored batches; every reading is stored exactly
# once (the export is exactly the replayed rows); no batch failed; no hole
# was given up while the other member was storing it, and a batch held for
# its predecessor was tried again about once, not every few milliseconds
# (each try decodes it and reads the store); the
# figures from the shared store equal dcem-audit's over the export, field by
# field, for every period of the year.
set -euo pipefail
build=$1
src=$2
backend=${3:-sqlite}
. "$(dirname "$0")/lib.sh"
col=$build/gateway/collector/dcem-collector
replay=$build/tests/dcem-replay
gen=$build/tests/dcem-gen
audit=$build/gateway/audit/dcem-audit
make_work collector-share
if [[ $backend == postgresql ]]; then
  start_postgres
  store="{backend: postgresql, dsn: \"$PG_DSN\"}"
  sql() { psql_q "$1"; }
else
  store="{path: store.db}"
  sql() { sqlite3 -cmd '.timeout 5000' "$work/store.db" "$1"; }
fi

start_mosquitto

mkdir -p "$work/sites"
cp "$src/configs/sites/yz-alpha.yaml" "$work/sites/"
for name in a b; do
  cat >"$work/collector-$name.yaml" <<EOF
collector: share-$name
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "$uri", version: 5, share_group: dcem}
store: $store
recompute_ms: 500
health_log_s: 1
EOF
  "$col" -c "$work/collector-$name.yaml" --check-config >/dev/null
done

# three weeks, through the reading that closes them
"$gen" --site "$work/sites/yz-alpha.yaml" --year 2025 --faults --out "$work/year.csv" \
  --truth "$work/truth.json" >/dev/null
awk -F, 'NR == 1 || substr($1, 1, 10) < "2025-01-22" || substr($1, 1, 19) == "2025-01-22T00:00:00"' \
  "$work/year.csv" >"$work/weeks.csv"
rows=$(($(wc -l <"$work/weeks.csv") - 1))

declare -A col_pid
start_collector() { # NAME
  local log=$work/collector-$1.err
  [[ -f $log ]] && sed -i 's/^info: mqtt: subscribed to/info: mqtt: (earlier run) subscribed to/' "$log"
  "$col" -c "$work/collector-$1.yaml" >>"$work/collector-$1.out" 2>>"$log" &
  col_pid[$1]=$!
  pids+=("${col_pid[$1]}")
  wait_for "collector $1's subscription" 10 grep -q "^info: mqtt: subscribed to \\\$share/dcem/" "$log"
}
start_collector a
start_collector b

# 100 readings per batch: about 140 batches, published in seq order
"$replay" --uri "$uri" --site yz-alpha --gateway gw-1 --csv "$work/weeks.csv" --batch 100 \
  --timeout-s 120 >"$work/replay.out" 2>&1 &
replay_pid=$!
pids+=("$replay_pid")
stored_batches() { sql "SELECT count(*) FROM batches" 2>/dev/null || echo 0; }
twenty_stored() { (($(stored_batches) >= 20)); }
wait_for "the first 20 batches stored" 60 twenty_stored
kill -KILL "${col_pid[a]}"
wait "${col_pid[a]}" 2>/dev/null || true
at_kill=$(stored_batches)
sleep 3
start_collector a
wait "$replay_pid" || fail "the replay: $(cat "$work/replay.out")"
echo "replay: $(cat "$work/replay.out"); collector a killed after $at_kill batches were stored"

# the gateway's will and then its birth reach both collectors (state
# messages are not shared): each change is stored and published once
mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -t dcem/v1/yz-alpha/alerts >"$work/alerts.out" 2>&1 &
sub_pid=$!
pids+=("$sub_pid")
sleep 0.5
mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t dcem/v1/yz-alpha/gw-1/state -m '{"v":1,"online":false}'
wait_for "the offline alert" 10 grep -q '"kind":"gateway_offline","subject":"gw-1","state":"raised"' "$work/alerts.out"
mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t dcem/v1/yz-alpha/gw-1/state \
  -m '{"v":1,"online":true,"epoch":1,"next_seq":1,"queued":0,"version":"test"}'
wait_for "the online alert" 10 grep -q '"kind":"gateway_offline","subject":"gw-1","state":"cleared"' "$work/alerts.out"
sleep 1 # time for a second copy, were there one
kill "$sub_pid"
wait "$sub_pid" 2>/dev/null || true
published=$(grep -c '"kind":"gateway_offline"' "$work/alerts.out" || true)
stored=$(sql "SELECT count(*) FROM alerts WHERE kind = 'gateway_offline' AND subject = 'gw-1'")
[[ $published == 2 && $stored == 2 ]] ||
  fail "gateway_offline: $published alerts published, $stored stored (2 changes, each once)"
echo "gateway gw-1 offline and back: 2 alerts stored and published by two collectors"

# let both write a last health line, then stop them
for name in a b; do
  n=$(grep -c "health: received" "$work/collector-$name.err" || true)
  wait_for "collector $name's next health line" 10 \
    bash -c "(( \$(grep -c 'health: received' '$work/collector-$name.err') > $n ))"
  kill -TERM "${col_pid[$name]}"
  wait "${col_pid[$name]}" || fail "collector $name exited with $?"
done

"$col" export -c "$work/collector-a.yaml" --site yz-alpha --from 2024-12-01 --to 2026-02-01 \
  >"$work/export.csv"
"$col" figures -c "$work/collector-a.yaml" --site yz-alpha --year 2025 >"$work/collector-figures.json"
"$audit" --site "$work/sites/yz-alpha.yaml" --policy "$src/configs/policy/beijing-etown-2024.yaml" \
  --readings "$work/export.csv" --year 2025 --json >"$work/audit.json"

$PY - "$work" "$rows" <<'EOF'
import collections, json, re, sys
w, rows = sys.argv[1], int(sys.argv[2])
bad = []
# each collector's health since its last start: both stored, none failed
stored, holes = {}, {}
for name in "ab":
    err = open(f"{w}/collector-{name}.err").read()
    runs = err.split("(earlier run) subscribed to")
    total = received = 0
    holes[name] = [0, 0, 0]  # resend requests, holes given up, held batches tried again
    for run in runs:
        lines = re.findall(r"health: received (\d+), stored (\d+), duplicates (\d+), gaps (\d+), "
                           r"malformed (\d+), quarantined (\d+), unknown site (\d+), failed (\d+)", run)
        if lines:
            rec, st, dup, gaps, mal, q, unk, failed = map(int, lines[-1])
            total += st
            received += rec
            if failed or mal or q or unk:
                bad.append(f"collector {name}: failed {failed}, malformed {mal}, quarantined {q}, unknown {unk}")
        h = re.findall(r"health: holes: (\d+) resend requests, (\d+) holes given up .*; "
                       r"(\d+) open, (\d+) batches held, held batches tried again (\d+) times", run)
        if h:
            req, given, opened, held, tries = map(int, h[-1])
            holes[name] = [a + b for a, b in zip(holes[name], (req, given, tries))]
            if run is runs[-1] and (opened or held):
                bad.append(f"collector {name} ended with {opened} holes open, {held} batches held: "
                           "every batch was acked, none may wait")
    stored[name] = total
    if holes[name][1]: bad.append(f"collector {name} gave {holes[name][1]} holes up: the other member was storing them")
    if holes[name][2] > received:
        bad.append(f"collector {name} tried held batches again {holes[name][2]} times for {received} received")
    if not total: bad.append(f"collector {name} stored no batch: the group did not share the load")

def table(path):
    out = collections.Counter()
    for line in list(open(path))[1:]:
        t, meter, kwh = line.rstrip("\n").split(",")[:3]
        out[(t, meter, float(kwh))] += 1
    return out

exp, sent = table(f"{w}/export.csv"), table(f"{w}/weeks.csv")
if sum(exp.values()) != rows or len(exp) != rows:
    bad.append(f"export: {sum(exp.values())} rows ({len(exp)} distinct), {rows} replayed")
# times are written differently (the export in UTC): compare per meter and value
by_meter = lambda t: collections.Counter((m, v) for (_, m, v), n in t.items() for _ in range(n))
if by_meter(exp) != by_meter(sent): bad.append("the export is not the replayed readings")

col = json.load(open(f"{w}/collector-figures.json"))
aud = json.load(open(f"{w}/audit.json"))
if aud["readings"]["rejected"]: bad.append(f"dcem-audit rejected {aud['readings']['rejected']} rows")
if len(col) != len(aud["periods"]): bad.append("period count differs")
for c, a in zip(col, aud["periods"]):
    for k, v in a.items():
        if c.get(k) != v: bad.append(f"{a['period']} {k}: collector {c.get(k)!r}, dcem-audit {v!r}")
print(f"batches stored by collector a: {stored['a']}, by b: {stored['b']}; {rows} readings stored once;"
      f" resend requests, holes given up, held batches tried again: a {holes['a']}, b {holes['b']};"
      f" {len(col)} periods identical to dcem-audit (January total {col[0]['total_kwh']} kWh)")
if bad: print("\n".join(bad[:20])); sys.exit(1)
EOF
echo "collector_share.sh: passed"
