#!/usr/bin/env bash
# Meters behind current transformers, end to end (docs/figures.md, "Meters
# behind transformers"):
#
#   dcem-sim (Modbus TCP, secondary-side values) -> dcem-agent (ratios applied)
#     -> mosquitto -> dcem-collector (SQLite) -> export -> dcem-audit
#
#   agent_ratio.sh BUILD_DIR SOURCE_DIR
#
# configs/sim/ct-ratio.yaml on a clock 20 times the wall clock: feeder-a, an
# ADL400 on 2000/5 A CTs at a UPS output (IT) whose ratio the agent reads
# from the meter's registers; rack-row, an SDM630 on 200/5 A CTs (no ratio registers: the
# agent config says ct_ratio: 40); feeder-b, an ADL400 re-programmed from CT
# 400 to 800 two simulated minutes in. Proves:
#   1. primary side: every reading is the meter's register value times the
#      ratio in force, which each reading carries (400, 40, 400 then 800);
#      each meter's energy is what the simulator's exact integral says, to
#      within the register's step at the ratio and the timing of the truth
#      snapshots; the ratio in the config wins over none and is logged;
#   2. the ratio change is one counter event (dcem_ratio_changes_total 1 in
#      /metrics, the health log) — feeder-b's figures show one
#      counter epoch (reset), its estimated energy is the one straddling
#      interval and is the register's own difference at the new ratio — and
#      never a spike: no interval holds more than the meter can draw;
#   3. exact figures: every meter's stored energy equals the sum, computed
#      here from the export's readings and ratios, of its register
#      differences at scale; the collector's figures equal dcem-audit's over
#      that export (with its ratio column), field by field, for the month and
#      the year (PUE and shares to the last printed digit: see below).
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
sim=$build/firmware/sim/dcem-sim
agent=$build/firmware/agent/dcem-agent
col=$build/gateway/collector/dcem-collector
audit=$build/gateway/audit/dcem-audit
for b in "$sim" "$agent" "$col" "$audit"; do [[ -x $b ]] || fail "no $b"; done
make_work agent-ratio
started=$SECONDS
now_ms() { date +%s%3N; }
sql() { sqlite3 -cmd '.timeout 5000' "$work/store.db" "$1"; }
speed=20
site=ratio-site
gw=gw-ratio

start_mosquitto

# the shipped scenario, on a faster clock that starts now
sed -e "s/^  start: .*/  start: now/" -e "s/^  speed: .*/  speed: $speed/" \
  "$src/configs/sim/ct-ratio.yaml" >"$work/scenario.yaml"
grep -q "speed: $speed" "$work/scenario.yaml" || fail "ct-ratio.yaml has no clock speed to set"
"$sim" -c "$work/scenario.yaml" --tcp 127.0.0.1:0 --truth "$work/truth.json" \
  >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
pids+=("$sim_pid")
wait_for "dcem-sim ready" 10 grep -q '^ready' "$work/sim.out"
sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim.out")

# The ledger: ratings x speed (readings are stamped with the wall clock while
# the meters count simulated time), the registers' own resolution, the CT
# ratios of the inventory; 1-minute intervals.
mkdir -p "$work/sites"
cat >"$work/sites/$site.yaml" <<EOF
site: $site
name: meters behind transformers
timezone: Asia/Shanghai
racks: 60
rack_power_kw: 300
approved_annual_kwh: 40000000
interval_minutes: 1
meters:
  - {id: feeder-a, role: it, rated_kw: $((300 * speed)), counter_resolution_kwh: 0.01, ct_ratio: 400, model: Acrel ADL400}
  - {id: feeder-b, role: facility, rated_kw: $((400 * speed)), counter_resolution_kwh: 0.01, ct_ratio: 800, model: Acrel ADL400}
  - {id: rack-row, role: it, rated_kw: $((60 * speed)), counter_resolution_kwh: 0.001, ct_ratio: 40, model: Eastron SDM630}
EOF
api_port=$(free_port)
cat >"$work/collector.yaml" <<EOF
collector: ratio
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
health_log_s: 5
recompute_ms: 1000
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5}
store: {path: store.db}
api: {listen: "127.0.0.1:$api_port", metrics: public}
EOF
"$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.err" &
col_pid=$!
pids+=("$col_pid")
wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$work/collector.err"

write_agent() { # FILE GATEWAY SPOOL DEVICES
  cat >"$1" <<EOF
gateway: $2
site: $site
ledger: $work/sites/$site.yaml
profiles: $src/configs/meters
buses:
  - {name: sim, tcp: "127.0.0.1:$sim_port", response_timeout_ms: 500}
devices:
$4
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5, reconnect_max_ms: 1000}
spool: {dir: "$3"}
identity: {allow_unsigned: true}
batch: {max_readings: 100, max_delay_ms: 200}
EOF
}
write_agent "$work/agent.yaml" "$gw" "$work/spool" \
  "  - {bus: sim, unit: 1, profile: acrel-adl400, meter: feeder-a, poll_ms: 1000}
  - {bus: sim, unit: 2, profile: eastron-sdm630, meter: rack-row, poll_ms: 1000, ct_ratio: 40}
  - {bus: sim, unit: 3, profile: acrel-adl400, meter: feeder-b, poll_ms: 1000, ratio_every_s: 1}"
"$agent" -c "$work/agent.yaml" --check-config >/dev/null

kill -USR1 "$sim_pid"
wait_for "the first truth file" 10 test -s "$work/truth.json"
mv "$work/truth.json" "$work/truth0.json"
w0=$(now_ms)
"$agent" -c "$work/agent.yaml" >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
pids+=("$agent_pid")

# until feeder-b has counted for a while at its new ratio (the change comes
# 6 s in) and a minute has turned, so that intervals close on both sides
at_800() { (($(sql "SELECT count(*) FROM readings WHERE meter = (SELECT id FROM names WHERE name = 'feeder-b') AND ratio = 800") >= 20)); }
wait_for "feeder-b at CT 800" 60 at_800
closed() { (($(sql "SELECT count(DISTINCT start_ms) FROM intervals WHERE meter = (SELECT id FROM names WHERE name = 'feeder-b')") >= 1)); }
wait_for "a closed interval" 70 closed
kill -TERM "$agent_pid"
wait "$agent_pid" || fail "dcem-agent exited with $?"
w_end=$(now_ms)
kill -TERM "$sim_pid"
wait "$sim_pid" || fail "dcem-sim exited with $?"
# the agent puts its last readings on the spool as it stops: a run of the
# same config with no device left to poll would deliver them; instead the
# comparison below uses what the collector stored, all of it

# Close each meter's open interval with a zero-energy reading at its end, at
# the meter's last ratio, through dcem-agent --import (the export's ratio
# column): then the collector and dcem-audit see the same intervals.
$PY - "$work/store.db" >"$work/close.csv" <<'EOF'
import datetime, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
print("time,meter,kwh,kw,ratio")
for meter, t, kwh, ratio in db.execute(
        "SELECT n.name, t_ms, kwh, ratio FROM readings r JOIN names n ON n.id = r.meter"
        " WHERE kwh IS NOT NULL AND t_ms = (SELECT max(t_ms) FROM readings"
        " WHERE meter = r.meter AND kwh IS NOT NULL) ORDER BY n.name"):
    if t % 60000:
        end = datetime.datetime.fromtimestamp((t // 60000 + 1) * 60, datetime.timezone.utc)
        print(f"{end:%Y-%m-%dT%H:%M:%S}.000Z,{meter},{kwh:.17g},,{ratio:.17g}")
EOF
write_agent "$work/close.yaml" gw-close "$work/spool-close" \
  "  - {bus: sim, unit: 1, profile: acrel-adl400, meter: feeder-a}"
"$agent" -c "$work/close.yaml" --import "$work/close.csv" >"$work/close.out" 2>"$work/close.err" ||
  fail "the closing readings: $(cat "$work/close.err")"
# the ratio change is counted where operators look: /metrics and the health log
curl -s "http://127.0.0.1:$api_port/metrics" >"$work/metrics.txt"
grep -qx "dcem_ratio_changes_total 1" "$work/metrics.txt" ||
  fail "/metrics: $(grep ratio "$work/metrics.txt")"
grep -qx 'dcem_readings_ratio_note_total{note="held"} 0' "$work/metrics.txt" ||
  fail "/metrics: readings flagged held: $(grep ratio_note "$work/metrics.txt")"
kill -TERM "$col_pid"
wait "$col_pid" || fail "dcem-collector exited with $?"
grep -q "health: transformer ratios: 1 changes; readings held 0, unknown 0, mismatch 0" \
  "$work/collector.err" || fail "the health log does not count the ratio change"
! grep -E "(malformed|quarantined|unknown site|failed) [1-9]" <(grep "health: received" "$work/collector.err") ||
  fail "the collector refused or failed to store batches"
! grep -E "Sanitizer|runtime error" "$work"/*.err || fail "a sanitizer report in the logs"

"$col" export -c "$work/collector.yaml" --site "$site" --from "$(date -u -d '-1 day' +%F)" \
  --to "$(date -u -d '+2 day' +%F)" >"$work/export.csv"
month=$(TZ=Asia/Shanghai date +%Y-%m)
year=${month%-*}
"$col" figures -c "$work/collector.yaml" --site "$site" --month "$month" >"$work/figures-month.json"
"$col" figures -c "$work/collector.yaml" --site "$site" --year "$year" >"$work/figures-year.json"
run_audit() { # KIND PERIOD-OPTION VALUE
  "$audit" --site "$work/sites/$site.yaml" --policy "$src/configs/policy/beijing-etown-2024.yaml" \
    --readings "$work/export.csv" "$2" "$3" --json >"$work/audit-$1.json"
}
run_audit month --month "$month"
run_audit year --year "$year"

$PY - "$work" "$speed" "$w0" "$w_end" <<'EOF'
import csv, json, sqlite3, sys
from collections import defaultdict

w, speed, w0, w_end = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
db = sqlite3.connect(f"{w}/store.db")
bad = []

def check(ok, msg):
    if not ok:
        bad.append(msg)
    return ok

rows = defaultdict(list)
for r in csv.DictReader(open(f"{w}/export.csv")):
    rows[r["meter"]].append((r["time"], float(r["kwh"]), float(r["ratio"] or 1)))
t0 = {m["id"]: m for m in json.load(open(f"{w}/truth0.json"))["meters"]}
t1 = {m["id"]: m for m in json.load(open(f"{w}/truth.json"))["meters"]}
agent_log = open(f"{w}/agent.err").read()

# ---- 1. primary side ----
want_ratios = {"feeder-a": [400], "rack-row": [40], "feeder-b": [400, 800]}
step = {"feeder-a": 0.01, "feeder-b": 0.01, "rack-row": None}  # ADL400: u32 x 0.01 kWh
energy, straddle = {}, {}
for m, rs in rows.items():
    if m not in want_ratios:
        continue
    seen = []
    for _, _, r in rs:
        if not seen or seen[-1] != r:
            seen.append(r)
    check(seen == want_ratios[m], f"{m}: ratios {seen} in the readings, want {want_ratios[m]}")
    if step[m]:
        off = [k for _, k, r in rs if abs(k / r / step[m] - round(k / r / step[m])) > 1e-6]
        check(not off, f"{m}: readings that are not a register value x the ratio: {off[:3]}")
    # what the readings say the meter consumed: register differences at the
    # ratio of the later reading (a ratio change: the register's own
    # difference at the new ratio, as docs/figures.md says)
    e = across = 0.0
    for (_, k1, r1), (_, k2, r2) in zip(rs, rs[1:]):
        d = k2 - k1 if r1 == r2 else (k2 / r2 - k1 / r1) * r2
        e += d
        across += d if r1 != r2 else 0
    energy[m], straddle[m] = e, across
    truth = t1[m]["energy_kwh"] - t0[m]["energy_kwh"]
    top = t0[m]["rated_kw"] * speed  # kW at the wall clock
    # the readings span less than the truth snapshots (the agent's start and
    # its last batch, spooled as it stopped: up to 5 s at each end), the
    # register steps at each end at the highest ratio, and across the ratio
    # change the part of a poll still counted at the old ratio
    slack = top * 10 / 3600 + 3 * (step[m] or 0.001) * max(want_ratios[m])
    check(abs(truth - e) <= slack, f"{m}: {e:.3f} kWh from the readings, {truth:.3f} by the simulator's"
                                   f" integral (slack {slack:.3f})")
    print(f"{m}: {len(rs)} readings at ratios {seen}: {e:.3f} kWh, the simulator integrated {truth:.3f}")
check("ratios now CT 800 PT 1 (were 400, 1)" in agent_log, "feeder-b's ratio change is not in the agent's log")

# ---- 2. the change is one counter event, never a spike ----
# estimated as seen from the year: what a counter event or a boundary of the
# year made estimated (1-minute intervals cut most polls' spans: seen from
# the interval, that split is estimated too)
stored = {m: db.execute("SELECT sum(ukwh) / 1e6, sum(estimated_year_ukwh) / 1e6, sum(resets),"
                        " max(ukwh) / 1e6 FROM intervals WHERE meter = (SELECT id FROM names WHERE name = ?)",
                        (m,)).fetchone()
          for m in want_ratios}
for m, (kwh, est, resets, top) in stored.items():
    check(abs(kwh - energy[m]) <= 1e-6 * max(1, kwh), f"{m}: {kwh} kWh stored, {energy[m]} from the readings")
    limit = t0[m]["rated_kw"] * speed / 60  # 1-minute intervals
    check(top <= limit, f"{m}: an interval of {top} kWh, more than the meter can draw ({limit})")
    if m == "feeder-b":  # the estimated energy is the straddling segment's
        check(resets == 1 and abs(est - straddle[m]) <= 1e-6,
              f"feeder-b: {resets} counter epochs, {est} kWh estimated, {straddle[m]} across the change")
    else:
        check(resets == 0 and est == 0, f"{m}: {resets} counter epochs, {est} kWh estimated")

# ---- 3. collector = dcem-audit over the export ----
for kind in ("month", "year"):
    c = json.load(open(f"{w}/figures-{kind}.json"))
    a = json.load(open(f"{w}/audit-{kind}.json"))
    r = a["readings"]
    check(r["rejected"] == 0 and r["discarded_glitches"] == 0, f"dcem-audit {kind}: {r}")
    check(len(c) == len(a["periods"]), f"{kind}: {len(c)} collector periods, {len(a['periods'])} audited")
    for cp, ap in zip(c, a["periods"]):
        for k, v in ap.items():
            # kWh, counts, verdicts: identical. PUE, shares and completeness
            # (6 decimals) to the last digit: the collector sums its months
            # from micro-kWh rollups, dcem-audit from doubles, and with a few
            # kWh of IT energy the two can round the 6th decimal apart
            # (issue 11: one pipeline by construction)
            near = k in ("pue", "completeness") or k.endswith("_share")
            same = cp.get(k) == v or (near and isinstance(v, float) and isinstance(cp.get(k), float)
                                      and abs(cp[k] - v) <= 1.000001e-6)
            check(same, f"{ap['period']} {k}: collector {cp.get(k)!r}, dcem-audit {v!r}")
    ms = {x["id"]: x for x in c[-1]["meters"]}
    check(ms["feeder-b"]["resets"] == 1 and ms["feeder-a"]["resets"] == 0,
          f"{kind}: counter epochs {[(x, ms[x]['resets']) for x in ms]}")
print(f"collector = dcem-audit for the month and the year; feeder-b: one counter epoch,"
      f" {stored['feeder-b'][1]:.3f} kWh estimated across the ratio change")
if bad:
    print("\n".join(bad))
    sys.exit(1)
EOF
echo "agent_ratio.sh: passed in $((SECONDS - started)) s"
