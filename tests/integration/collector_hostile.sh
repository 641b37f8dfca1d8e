#!/usr/bin/env bash
# dcem-collector against messages that must not corrupt or stall it (docs/
# collector.md, "Hostile and broken input"): a real mosquitto on loopback, a
# SQLite store, the sample site yz-alpha; mosquitto_pub plays the hostile or
# broken gateways, dcem-replay a good one (a day of dcem-gen readings).
#
#   collector_hostile.sh BUILD_DIR SOURCE_DIR CASE
#
# CASE:
#   clock   two readings of alpha-in-a stamped in 9999 before the live ones:
#           refused and counted; every live reading is stored and in the
#           figures, which equal dcem-audit's over the export
#   hole    batches 1..5 then 7..20 of one gateway, 6 held back: the
#           collector asks for 6 max_resend_requests times, gives it up,
#           stores and acks 7..20; gaps stay at one per held batch; then 6
#           comes after all: stored (late data), every reading exported,
#           the figures equal dcem-audit's
#   poison  "kwh": 1.5e308 (left out, the reading stored out_of_range, the
#           batch acked); a batch the store refuses for its content
#           (a trigger: RAISE(ABORT)) quarantined and acked; one it fails
#           for another reason (json() of a bad document) not acked until
#           the store takes it
#   junk    5,000 readings of a meter no ledger has (counted, not stored);
#           300 junk gateway names, then a real gateway's refusal (in the
#           log and in /metrics); a flood of 30,000 junk messages on one
#           topic while the good gateway replays its day (rate-limited,
#           counted; every good reading stored)
set -euo pipefail
build=$1
src=$2
case=$3
. "$(dirname "$0")/lib.sh"
col=$build/gateway/collector/dcem-collector
replay=$build/tests/dcem-replay
gen=$build/tests/dcem-gen
audit=$build/gateway/audit/dcem-audit
make_work "collector-hostile-$case" "collector_hostile.sh $case"

start_mosquitto
pub() { mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 "$@"; }
api_port=$(free_port)

mkdir -p "$work/sites"
cp "$src/configs/sites/yz-alpha.yaml" "$work/sites/"
cat >"$work/collector.yaml" <<EOF
collector: test
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
mqtt: {uri: "$uri", version: 5}
store: {path: store.db}
identity: {allow_unsigned: true}  # lab: unsigned traffic
recompute_ms: 500
health_log_s: 1
ingest: {max_resend_requests: 3, resend_interval_ms: 500}
api: {listen: "127.0.0.1:$api_port", metrics: public}
EOF
"$col" -c "$work/collector.yaml" --check-config >/dev/null

# a day of readings (through the reading that closes it)
"$gen" --site "$work/sites/yz-alpha.yaml" --year 2025 --out "$work/year.csv" \
  --truth "$work/truth.json" >/dev/null
awk -F, 'NR == 1 || substr($1, 1, 10) < "2025-01-02" || substr($1, 1, 19) == "2025-01-02T00:00:00"' \
  "$work/year.csv" >"$work/good.csv"
rows=$(($(wc -l <"$work/good.csv") - 1))

# every ack and ctl, from before the first payload on
mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -v -t 'dcem/v1/+/+/ack' -t 'dcem/v1/+/+/ctl' \
  >"$work/answers.txt" 2>&1 &
pids+=($!)
wait_for "mosquitto_sub's subscription" 10 \
  bash -c "mosquitto_pub -h 127.0.0.1 -p $port -t dcem/v1/probe/probe/ack -m probe &&
           grep -q probe '$work/answers.txt'"

start_collector() {
  "$col" -c "$work/collector.yaml" >>"$work/collector.out" 2>>"$work/collector.err" &
  col_pid=$!
  pids+=("$col_pid")
  wait_for "the collector's subscription" 10 grep -q "subscribed to" "$work/collector.err"
}
stop_collector() {
  kill -0 "$col_pid" 2>/dev/null || fail "the collector is not running any more"
  kill -TERM "$col_pid"
  wait "$col_pid" || fail "the collector exited with $?"
}
# batch GATEWAY EPOCH SEQ READINGS-JSON: a wire batch of yz-alpha
batch() { printf '{"v":1,"site":"yz-alpha","gateway":"%s","epoch":%s,"seq":%s,"readings":[%s]}' "$@"; }
acked() { # GATEWAY EPOCH SEQ: an ack covering it came
  $PY - "$work/answers.txt" "$@" <<'EOF'
import json, sys
f, gw, epoch, seq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for line in open(f):
    topic, _, p = line.rstrip("\n").partition(" ")
    if topic != f"dcem/v1/yz-alpha/{gw}/ack": continue
    a = json.loads(p)
    if a["epoch"] == epoch and a["seq"] >= seq: sys.exit(0)
sys.exit(1)
EOF
}
health() { grep "health: received" "$work/collector.err" | tail -1; }
export_csv() {
  "$col" export -c "$work/collector.yaml" --site yz-alpha --from 2024-12-01 --to 2025-02-01 \
    >"$work/export.csv"
}
# the figures of January 2025 equal dcem-audit's over the export, field by field
figures_equal_audit() {
  "$col" figures -c "$work/collector.yaml" --site yz-alpha --month 2025-01 >"$work/collector-figures.json"
  "$audit" --site "$work/sites/yz-alpha.yaml" --policy "$src/configs/policy/beijing-etown-2024.yaml" \
    --readings "$work/export.csv" --year 2025 --json >"$work/audit.json"
  $PY - "$work" <<'EOF'
import json, sys
w = sys.argv[1]
col = json.load(open(f"{w}/collector-figures.json"))[0]
aud = json.load(open(f"{w}/audit.json"))["periods"][0]
bad = [f"{k}: collector {col.get(k)!r}, dcem-audit {v!r}" for k, v in aud.items() if col.get(k) != v]
if bad: print("figures differ:", *bad[:10], sep="\n  "); sys.exit(1)
print(f"January figures identical to dcem-audit's over the export (total {col['total_kwh']} kWh)")
EOF
}
# same_rows A B: the (time, meter, kwh) rows of two CSVs are the same
same_rows() {
  $PY - "$1" "$2" <<'EOF'
import datetime, sys
def rows(p):
    out = []
    for l in list(open(p))[1:]:
        t, meter, kwh = l.rstrip("\n").split(",")[:3]
        ms = int(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)
        out.append((ms, meter, float(kwh)))
    return sorted(out)
a, b = rows(sys.argv[1]), rows(sys.argv[2])
if a != b:
    print(f"{len(a)} rows against {len(b)}; first differences:", sorted(set(a) ^ set(b))[:5])
    sys.exit(1)
EOF
}
replay_good() { # [EPOCH]
  "$replay" --uri "$uri" --site yz-alpha --gateway gw-good --csv "$work/good.csv" --batch 8 \
    --epoch "${1:-1}" --timeout-s 120 >"$work/replay.out" 2>&1 || fail "gw-good: $(cat "$work/replay.out")"
}

case $case in
clock)
  start_collector
  # gw-jump's clock jumped to 9999 for two polls: alpha-in-a's readings
  t1=253402300740000 t2=253402300799999
  pub -t dcem/v1/yz-alpha/gw-jump/data -m "$(batch gw-jump 1 1 \
    "{\"meter\":\"alpha-in-a\",\"t\":$t1,\"q\":\"ok\",\"kwh\":900000000},{\"meter\":\"alpha-in-a\",\"t\":$t2,\"q\":\"ok\",\"kwh\":900000001}")"
  wait_for "gw-jump's batch acked" 10 acked gw-jump 1 1
  replay_good
  want="readings refused: stamped in the future 2,"
  wait_for "a health line with: $want" 15 grep -qF "$want" "$work/collector.err"
  stop_collector
  export_csv
  same_rows "$work/export.csv" "$work/good.csv" || fail "the export is not exactly the live readings"
  n9999=$(grep -c '^9999' "$work/export.csv" || true)
  ((n9999 == 0)) || fail "$n9999 readings of 9999 stored"
  health
  figures_equal_audit || fail "the collector's figures are not dcem-audit's"
  echo "every one of $rows live readings stored and in the figures; the two 9999 readings refused"
  ;;

hole)
  start_collector
  # 20 batches of gw-hole, one timestamp (8 readings) each, from the day
  $PY - "$work/good.csv" "$work/hole" <<'EOF'
import datetime, itertools, sys
rows = [l.rstrip("\n").split(",") for l in list(open(sys.argv[1]))[1:]]
out = sys.argv[2]
by_t = [list(g) for _, g in itertools.groupby(rows, key=lambda r: r[0])][:20]
all_rows = ["time,meter,kwh\n"]
with open(out + ".csv", "w") as f:
    f.write("time,meter,kwh\n")
    for seq, group in enumerate(by_t, 1):
        rd = []
        for t, meter, kwh in (r[:3] for r in group):
            ms = int(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)
            rd.append('{"meter":"%s","t":%d,"q":"ok","kwh":%s}' % (meter, ms, kwh))
            if seq != 6: f.write(f"{t},{meter},{kwh}\n")
            all_rows.append(f"{t},{meter},{kwh}\n")
        open(f"{out}-{seq}.json", "w").write(
            '{"v":1,"site":"yz-alpha","gateway":"gw-hole","epoch":1,"seq":%d,"readings":[%s]}'
            % (seq, ",".join(rd)))
open(out + "-all.csv", "w").write("".join(all_rows))
EOF
  for seq in 1 2 3 4 5 $(seq 7 20); do pub -t dcem/v1/yz-alpha/gw-hole/data -f "$work/hole-$seq.json"; done
  wait_for "gw-hole's batches 7..20 acked" 20 acked gw-hole 1 20
  want="holes: 3 resend requests, 1 holes given up (1 batches, 0 of them came later"
  wait_for "a health line with: $want" 10 grep -qF "$want" "$work/collector.err"
  export_csv
  same_rows "$work/export.csv" "$work/hole.csv" || fail "the export is not batches 1..5 and 7..20"
  # seq 6 comes after all (an agent that answered late): stored as late
  # data, not dropped as a duplicate of what was given up
  pub -t dcem/v1/yz-alpha/gw-hole/data -f "$work/hole-6.json"
  want="holes: 3 resend requests, 1 holes given up (1 batches, 1 of them came later and were stored)"
  wait_for "a health line with: $want" 15 grep -qF "$want" "$work/collector.err"
  stop_collector
  health
  requests=$(grep -c '^dcem/v1/yz-alpha/gw-hole/ctl .*"from_seq":6' "$work/answers.txt" || true)
  ((requests == 3)) || fail "$requests resend requests for seq 6 (expected 3)"
  gaps=$(sed -n 's/.* gaps \([0-9]*\),.*/\1/p' <<<"$(health)")
  ((gaps <= 14)) || fail "$gaps gaps counted for 14 batches"
  grep -q "batches 6..6 never came for the resend requests: given up" "$work/collector.err" ||
    fail "the hole given up is not logged"
  export_csv
  same_rows "$work/export.csv" "$work/hole-all.csv" || fail "the export is not batches 1..20"
  figures_equal_audit || fail "the collector's figures are not dcem-audit's"
  echo "seq 6 asked for $requests times, then given up; 7..20 stored and acked; 6 stored when it came; gaps $gaps"
  ;;

poison)
  start_collector
  r0='{"meter":"alpha-in-a","t":1735660800000,"q":"ok","kwh":1000}'
  # 1: an absurd value beside a good one: left out, the batch stored and acked
  pub -t dcem/v1/yz-alpha/gw-p/data -m "$(batch gw-p 1 1 \
    "$r0,{\"meter\":\"alpha-in-b\",\"t\":1735660800000,\"q\":\"ok\",\"kwh\":1.5e308,\"kw\":12}")"
  wait_for "batch 1 (1.5e308) acked" 10 acked gw-p 1 1
  # 2: refused by the store for its content; 3: failed by the store otherwise
  $PY - "$work/store.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
db.execute("CREATE TRIGGER refuse BEFORE INSERT ON readings WHEN NEW.gateway = 'gw-p' AND NEW.seq = 2"
           " BEGIN SELECT RAISE(ABORT, 'refused for its content'); END")
db.execute("CREATE TRIGGER fail BEFORE INSERT ON readings WHEN NEW.gateway = 'gw-p' AND NEW.seq = 3"
           " BEGIN SELECT json('not json'); END")
db.commit()
EOF
  r2='{"meter":"alpha-in-a","t":1735661700000,"q":"ok","kwh":1001}'
  r3='{"meter":"alpha-in-a","t":1735662600000,"q":"ok","kwh":1002}'
  pub -t dcem/v1/yz-alpha/gw-p/data -m "$(batch gw-p 1 2 "$r2")"
  wait_for "batch 2 (refused by the store) acked" 10 acked gw-p 1 2
  pub -t dcem/v1/yz-alpha/gw-p/data -m "$(batch gw-p 1 3 "$r3")"
  wait_for "the store's failure of batch 3 logged" 10 grep -q "cannot store a batch" "$work/collector.err"
  sleep 1 # (an ack would come within milliseconds of the failure)
  acked gw-p 1 3 && fail "batch 3 acked although the store failed it"
  $PY -c "import sqlite3,sys; d=sqlite3.connect(sys.argv[1], timeout=10); d.execute('DROP TRIGGER fail'); d.commit()" "$work/store.db"
  pub -t dcem/v1/yz-alpha/gw-p/data -m "$(batch gw-p 1 3 "$r3")" # as its agent sends it again
  wait_for "batch 3 acked once the store takes it" 10 acked gw-p 1 3
  want="values of absurd size left out 1;"
  wait_for "a health line with: $want" 10 grep -qF "$want" "$work/collector.err"
  stop_collector
  health
  grep -qF "batches the store refused (quarantined) 1" "$work/collector.err" || fail "no store refusal counted"
  grep -qF "quarantined 1, unknown site 0, failed 1;" <<<"$(health)" || fail "health: $(health)"
  $PY - "$work/store.db" <<'EOF' || fail "the store does not hold what it should"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
q = lambda sql: db.execute(sql).fetchall()
bad = []
alpha = "SELECT quality, kwh, kw FROM readings WHERE meter = (SELECT id FROM names WHERE name = 'alpha-in-b')"
if q(alpha) != [(2, None, 12.0)]:
    bad.append(f"alpha-in-b: {q(alpha)}")
if q("SELECT seq FROM readings WHERE gateway = 'gw-p' ORDER BY seq") != [(1,), (1,), (3,)]:
    bad.append(f"readings by batch: {q('SELECT seq FROM readings ORDER BY seq')}")
r = q("SELECT seq, reason FROM quarantine")
if len(r) != 1 or r[0][0] != 2 or "refused for its content" not in r[0][1]:
    bad.append(f"quarantine: {r}")
if bad: print(*bad, sep="\n"); sys.exit(1)
print("1.5e308 left out (stored out_of_range), batch 2 quarantined:", r[0][1][:80])
EOF
  ;;

junk)
  start_collector
  # 5,000 readings of a meter no ledger has, in one batch
  $PY - "$work/unknown.json" <<'EOF'
import sys
rd = ",".join('{"meter":"no-such-meter","t":%d,"q":"ok","kwh":%d}' % (1735660800000 + i * 1000, i)
              for i in range(5000))
open(sys.argv[1], "w").write(
    '{"v":1,"site":"yz-alpha","gateway":"gw-u","epoch":1,"seq":1,"readings":[%s]}' % rd)
EOF
  pub -t dcem/v1/yz-alpha/gw-u/data -f "$work/unknown.json"
  wait_for "gw-u's batch acked" 10 acked gw-u 1 1
  # 300 junk gateway names (half under a site without a ledger, half under
  # yz-alpha), each with a payload that is not JSON
  for i in $(seq 1 150); do
    printf 'x\n' | pub -t "dcem/v1/junk-site/junk-$i/data" -l
    printf 'x\n' | pub -t "dcem/v1/yz-alpha/junk-$i/data" -l
  done
  # then the real gateway's own refusal
  pub -t dcem/v1/yz-alpha/gw-good/data -m '{"v":1,"site":"yz-alpha","gateway":"gw-good","epoch":1,"seq":"1"}'
  wait_for "gw-good's refusal logged" 15 grep -q "yz-alpha/gw-good: malformed payload" "$work/collector.err"
  metrics_has() { curl -s "http://127.0.0.1:$api_port/metrics" >"$work/metrics.txt" && grep -qF "$1" "$work/metrics.txt"; }
  wait_for "gw-good's refusal in /metrics" 5 \
    metrics_has 'dcem_refused_payloads_total{gateway="yz-alpha/gw-good",reason="wrong_type"} 1'
  grep -q 'dcem_refused_payloads_total{gateway="unknown",reason="unknown_site"} 150' "$work/metrics.txt" ||
    fail "the unknown bucket: $(grep 'gateway="unknown"' "$work/metrics.txt" || echo none)"
  # a flood of junk on one topic while gw-good replays its day
  $PY -c 'print("junk\n" * 30000, end="")' >"$work/flood.txt"
  { pub -t dcem/v1/yz-alpha/gw-flood/data -l <"$work/flood.txt"; } &
  flood_pid=$!
  pids+=("$flood_pid")
  start_s=$SECONDS
  replay_good
  took=$((SECONDS - start_s))
  wait "$flood_pid" || true
  want="refused from yz-alpha/gw-flood: rate_limited"
  wait_for "a health line with: $want" 15 grep -qF "$want" "$work/collector.err"
  stop_collector
  health
  grep "refused from yz-alpha/gw-flood" "$work/collector.err" | tail -2
  grep -qF "unknown meter 5000;" "$work/collector.err" || fail "the 5,000 readings of no-such-meter not counted"
  export_csv
  n=$(grep -c no-such-meter "$work/export.csv" || true)
  ((n == 0)) || fail "$n readings of no-such-meter stored"
  same_rows "$work/export.csv" "$work/good.csv" || fail "the export is not exactly gw-good's day"
  figures_equal_audit || fail "the collector's figures are not dcem-audit's"
  echo "no-such-meter refused; gw-good's refusal visible after 300 junk names; gw-good's day" \
    "($rows readings) stored in ${took}s under a flood of 30,000 junk messages"
  ;;
*) fail "unknown case $case" ;;
esac
echo "collector_hostile.sh $case: passed"
