#!/usr/bin/env bash
# The whole chain with real parts, each on loopback ports of its own:
#
#   dcem-sim (Modbus TCP) -> dcem-agent -> mosquitto -> dcem-collector -> SQLite + InfluxDB 1.x
#
#   collector_sim.sh BUILD_DIR SOURCE_DIR
#
# Four simulated meters (an incomer, the IT feeder, the cooling plant, a PV
# roof; four register encodings) on a clock running 60 times faster than the
# wall clock, polled every second, 1-minute intervals. Once a minute has
# turned, the collector is killed with SIGKILL and restarted a few seconds
# later while the agent keeps polling and publishing. 30 to 85 s, depending
# on where in the minute it starts. Proves:
#   1. figures exact against what the simulator served: every reading is a
#      value the meter's register can hold, and what the simulator's exact
#      integral says (truth file) to within the register step and the timing
#      of the truth snapshots; every meter's stored energy (intervals, and the
#      month rollups) equals its last minus its first reading to the micro-kWh;
#      `dcem-collector figures` for each month are the role sums of those;
#   2. those figures equal dcem-audit's over the collector's own readings
#      export, field by field, every period of the year (once every meter's
#      open interval is closed by a zero-energy reading: see below);
#   3. InfluxDB holds every stored interval, and reading points;
#   4. nothing lost or doubled across the kill: every poll the agent made (its
#      own counters) is one row of the readings table, and the simulator
#      answered exactly the requests the agent counted.
# Every process is started here, awaited by polling, and stopped on exit; the
# work directory is kept when the test fails.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
sim=$build/firmware/sim/dcem-sim
agent=$build/firmware/agent/dcem-agent
col=$build/gateway/collector/dcem-collector
audit=$build/gateway/audit/dcem-audit
replay=$build/tests/dcem-replay
for b in "$sim" "$agent" "$col" "$audit" "$replay"; do [[ -x $b ]] || fail "no $b"; done
make_work collector-sim
started=$SECONDS
now_ms() { date +%s%3N; }
sql() { sqlite3 -cmd '.timeout 5000' "$work/store.db" "$1"; }

# Simulated seconds per real second: a 60 s run counts an hour of energy.
speed=60
site="sim-site"
gw="gw-sim"
# id, unit, profile, shape, rated kW, level, initial kWh, ledger role, one
# register step in kWh (the ledger's counter_resolution_kwh): PM5xxx s64 Wh,
# SDM630 float32 (2^-3 kWh at 1.2 GWh), ADL400 u32 x 0.01 kWh, DTSU666
# float32 (2^-9 kWh at 23 MWh)
meter_table="incomer 1 schneider-pm5xxx constant 400 0.75 4567890.1 facility 0.001
it-main 2 eastron-sdm630 it 400 0.66 1234567.8 it 0.125
cooling 3 acrel-adl400 cooling 250 0.6 345678.9 cooling 0.01
pv-roof 4 chint-dtsu666 pv 80 0.8 23456.7 green_onsite 0.001953125"

# ---- mosquitto ----
start_mosquitto

# ---- InfluxDB 1.x (Debian influxdb) on its own loopback ports and directories ----
start_influxd
query() { curl -s -G "http://127.0.0.1:$ihttp/query" --data-urlencode db=dcem --data-urlencode "q=$1"; }
influx_count() { # InfluxQL count query -> a number (0 when there is no series)
  query "$1" | $PY -c 'import json, sys
s = json.load(sys.stdin)["results"][0].get("series")
print(s[0]["values"][0][1] if s else 0)'
}

# ---- the simulator: a summer noon (PV produces), the clock at $speed x ----
{
  echo "name: collector-sim"
  echo "description: incomer, IT, cooling and PV for the chain's end-to-end test"
  echo "clock: {start: 2026-07-01T12:00:00+08:00, speed: $speed, utc_offset_hours: 8, step_s: 60}"
  echo "seed: 7"
  echo "meters:"
  while read -r id unit profile shape rated level initial _ _; do
    echo "  - {id: $id, unit: $unit, profile: $profile, shape: $shape, rated_kw: $rated," \
      "level: $level, noise: 0.01, initial_kwh: $initial}"
  done <<<"$meter_table"
} >"$work/scenario.yaml"
"$sim" -c "$work/scenario.yaml" --tcp 127.0.0.1:0 --truth "$work/truth.json" \
  >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
pids+=("$sim_pid")
wait_for "dcem-sim ready" 10 grep -q '^ready' "$work/sim.out"
sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim.out")

# ---- the site ledger: 1-minute intervals, so that a short run closes several.
# Readings are stamped with the wall clock while the meters count simulated
# time: per wall-clock hour a meter counts $speed x its power, so each
# rated_kw is the simulated rating x $speed (else the counter rules would
# call every step implausible).
mkdir -p "$work/sites"
{
  echo "site: $site"
  echo "name: simulated site of the chain test"
  echo "timezone: Asia/Shanghai"
  echo "racks: 60"
  echo "rack_power_kw: 300"
  echo "approved_annual_kwh: 40000000"
  echo "interval_minutes: 1"
  echo "meters:"
  while read -r id _ profile _ rated _ _ role step; do
    echo "  - {id: $id, role: $role, rated_kw: $((rated * speed)), counter_resolution_kwh: $step," \
      "model: $profile}"
  done <<<"$meter_table"
} >"$work/sites/$site.yaml"
roles=$(while read -r id _ _ _ _ _ _ role _; do printf '%s=%s,' "$id" "$role"; done <<<"$meter_table")

cat >"$work/collector.yaml" <<EOF
collector: sim
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
health_log_s: 5
recompute_ms: 1000
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5}
store: {path: store.db}
influx: {url: "http://127.0.0.1:$ihttp", version: 1, db: dcem, backlog_dir: influx-backlog,
         flush_interval_ms: 100}
EOF
"$col" -c "$work/collector.yaml" --check-config >/dev/null

devices=$(while read -r id unit profile _; do
  echo "  - {bus: sim, unit: $unit, profile: $profile, meter: $id, poll_ms: 1000}"
done <<<"$meter_table")
write_agent() { # FILE LEDGER_LINE BUSES DEVICES
  cat >"$1" <<EOF
gateway: $gw
site: $site
$2
profiles: $src/configs/meters
log_level: info
buses:
$3
devices:
$4
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5, reconnect_max_ms: 1000}
spool: {dir: "$work/spool"}
identity: {allow_unsigned: true}
batch: {max_readings: 250, max_delay_ms: 200}
EOF
}
write_agent "$work/agent.yaml" "ledger: $work/sites/$site.yaml" \
  "  - {name: sim, tcp: \"127.0.0.1:$sim_port\", response_timeout_ms: 500}" "$devices"
# What the agent is switched to at the end (copied over agent.yaml, SIGHUP):
# no simulated meter, one probe on a port nobody listens on, polled once a
# minute. The agent stops polling the simulator but stays up to deliver what
# it still holds.
write_agent "$work/drain.yaml" "" \
  "  - {name: dead, tcp: \"127.0.0.1:$(free_port)\", response_timeout_ms: 200}" \
  "  - {bus: dead, unit: 1, profile: eastron-sdm630, meter: drain-probe, poll_ms: 60000}"
"$agent" -c "$work/agent.yaml" --check-config >/dev/null
"$agent" -c "$work/drain.yaml" --check-config >/dev/null

start_collector() {
  "$col" -c "$work/collector.yaml" >>"$work/collector.out" 2>>"$work/collector.err" &
  col_pid=$!
  pids+=("$col_pid")
  wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$work/collector.err"
}
stored() { sql "SELECT count(*) FROM readings WHERE gateway = '$gw'"; }
have_stored() { (($(stored) >= $1)); }
intervals() { sql "SELECT count(*) FROM intervals"; }

start_collector
# the simulator's state just before the agent's first poll (SIGUSR1: truth file)
w0=$(now_ms)
kill -USR1 "$sim_pid"
wait_for "the first truth file" 10 test -s "$work/truth.json"
mv "$work/truth.json" "$work/truth0.json"
"$agent" -c "$work/agent.yaml" >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
pids+=("$agent_pid")

# ---- phase 1: until a minute has turned (every meter has closed an interval)
# and eight polls of every meter are stored: up to a minute ----
phase1_done() { have_stored 32 && (($(sql "SELECT count(DISTINCT meter) FROM intervals") == 4)); }
wait_for "an interval of every meter" 75 phase1_done
# SIGKILL the collector. InfluxDB is a view written every 100 ms: what the
# writer holds in memory dies with the process. So kill once InfluxDB has
# every interval stored so far, and not in the first seconds of a minute,
# when the meters' intervals close (1-minute intervals).
kill_window() {
  local s=$((10#$(date +%S)))
  ((s >= 5 && s <= 57)) && [[ $(influx_count 'SELECT count(kwh) FROM dcem_interval') == "$(intervals)" ]]
}
wait_for "a moment to kill the collector" 20 kill_window
{
  kill -KILL "$col_pid"
  wait "$col_pid" || true
} 2>/dev/null # no "Killed" from the shell
before_kill=$(stored)
sed -i 's/subscribed to/(before the kill) subscribed to/' "$work/collector.err"
# the agent keeps polling: its batches wait in the broker (the collector's
# persistent session) and in the agent's spool until acknowledged
sleep 4
spooled=$(find "$work/spool" -name 'seg-*' | wc -l)
((spooled > 0)) || fail "the agent's spool holds nothing while the collector is down"
start_collector
# ---- phase 2: fourteen more polls of every meter (four while it was down) ----
wait_for "what was published during the kill, and more" 30 have_stored $((before_kill + 4 * 14))

# ---- the end: the agent stops polling the simulator (SIGHUP to drain.yaml),
# the simulator stops (truth file), the agent delivers what it still holds ----
cp "$work/agent.yaml" "$work/agent-sim.yaml"
cp "$work/drain.yaml" "$work/agent.yaml" # SIGHUP reloads the file the agent was started with
kill -HUP "$agent_pid"
polls_logged() { (($(grep -c 'poll: meter [a-z-]* (bus sim .*polls' "$work/agent.err") == 4)); }
wait_for "the agent's counters of the simulated meters" 10 polls_logged
w_end=$(now_ms)
kill -TERM "$sim_pid"
wait "$sim_pid" || fail "dcem-sim exited with $?"
test -s "$work/truth.json" || fail "no truth file at the simulator's exit"
polls=$(grep 'poll: meter [a-z-]* (bus sim .*polls' "$work/agent.err" |
  sed -n 's/.* \([0-9]*\) polls,.*/\1/p' | awk '{ n += $1 } END { print n + 0 }')
all_stored() { (($(sql "SELECT count(*) FROM readings WHERE gateway = '$gw' AND meter NOT IN (SELECT id FROM names WHERE name = 'drain-probe')") == polls)); }
wait_for "all $polls polls of the agent in the store" 30 all_stored

# Close every meter's open interval. The collector stores an interval when a
# reading at or after its end arrives; dcem-audit, at the end of its input,
# also counts the interval still open. So that the two see the same, another
# gateway (dcem-replay) sends each meter one reading at the end of its open
# interval with the value of its last reading: zero energy, the interval
# closed for both.
$PY - "$work/store.db" "$gw" >"$work/close.csv" <<'EOF'
import sqlite3, sys, datetime
db = sqlite3.connect(sys.argv[1], timeout=10)
print("time,meter,kwh")
for meter, t, kwh in db.execute(
        "SELECT n.name, t_ms, kwh FROM readings r JOIN names n ON n.id = r.meter"
        " WHERE gateway = ? AND kwh IS NOT NULL AND t_ms ="
        " (SELECT max(t_ms) FROM readings WHERE meter = r.meter AND kwh IS NOT NULL)"
        " ORDER BY n.name", (sys.argv[2],)):
    if t % 60000 == 0:
        continue  # on a boundary already: its interval is closed
    end = (t // 60000 + 1) * 60000  # 1-minute intervals; +08:00 keeps minutes aligned to UTC
    iso = datetime.datetime.fromtimestamp(end / 1000, datetime.timezone.utc)
    print(f"{iso:%Y-%m-%dT%H:%M:%S}.000Z,{meter},{kwh:.17g}")
EOF
"$replay" --uri "tcp://127.0.0.1:$port" --site "$site" --gateway gw-close --csv "$work/close.csv" \
  --timeout-s 30 >"$work/replay.out" || fail "the closing readings: $(cat "$work/replay.out")"

kill -TERM "$agent_pid"
wait "$agent_pid" || fail "dcem-agent exited with $?"
kill -TERM "$col_pid" # flushes what the InfluxDB writer holds
wait "$col_pid" || fail "dcem-collector exited with $?"
grep "health: received" "$work/collector.err" | tail -1
grep "health: influxdb" "$work/collector.err" | tail -1
! grep -E "(malformed|quarantined|unknown site|failed) [1-9]" <(grep "health: received" "$work/collector.err") ||
  fail "the collector refused or failed to store batches"
! grep -E "[1-9][0-9]* failed requests|backlog [1-9]|dropped [1-9]" \
  <(grep "health: influxdb" "$work/collector.err" | tail -1) || fail "the InfluxDB writer lost or held lines"
! grep -E "Sanitizer|runtime error" "$work"/*.err || fail "a sanitizer report in the logs"

# ---- what the checks read ----
"$col" export -c "$work/collector.yaml" --site "$site" --from "$(date -u -d '-1 day' +%F)" \
  --to "$(date -u -d '+2 day' +%F)" >"$work/export.csv"
# the site's local years and months the readings touch (a run near midnight
# at the end of a month spans two)
{ read -r -a years; read -r -a months; } < <($PY - "$work/export.csv" <<'EOF'
import csv, sys, datetime, zoneinfo
tz = zoneinfo.ZoneInfo("Asia/Shanghai")
ts = [datetime.datetime.fromisoformat(r["time"].replace("Z", "+00:00")).astimezone(tz)
      for r in csv.DictReader(open(sys.argv[1]))]
print(*sorted({t.year for t in ts}))
print(*sorted({f"{t:%Y-%m}" for t in ts}))
EOF
)
((${#years[@]})) || fail "the export is empty"
for y in "${years[@]}"; do
  "$col" figures -c "$work/collector.yaml" --site "$site" --year "$y" >"$work/figures-$y.json"
  "$audit" --site "$work/sites/$site.yaml" --policy "$src/configs/policy/beijing-etown-2024.yaml" \
    --readings "$work/export.csv" --year "$y" --json >"$work/audit-$y.json"
done
for m in "${months[@]}"; do
  "$col" figures -c "$work/collector.yaml" --site "$site" --month "$m" >"$work/figures-$m.json"
done
influx_intervals=$(influx_count 'SELECT count(kwh) FROM dcem_interval')
influx_readings=$(influx_count 'SELECT count(quality) FROM dcem_reading')

$PY - "$work" "$site" "$gw" "$speed" "$roles" "$w0" "$w_end" "$influx_intervals" \
  "$influx_readings" "${years[@]}" <<'EOF'
import collections, csv, datetime, json, math, sqlite3, struct, sys, zoneinfo

w, site, gw, speed, roles_arg, w0, w_end, influx_iv, influx_rd = sys.argv[1:10]
years = sys.argv[10:]
speed, w0, w_end, influx_iv, influx_rd = float(speed), int(w0), int(w_end), int(influx_iv), int(influx_rd)
roles = dict(x.split("=") for x in roles_arg.strip(",").split(","))
meters = list(roles)
tz = zoneinfo.ZoneInfo("Asia/Shanghai")
db = sqlite3.connect(f"{w}/store.db")
bad = []

def check(ok, msg):
    if not ok:
        bad.append(msg)
    return ok

# ---- 4. every poll of the agent stored once; the simulator saw the same ----
agent = {}
for line in open(f"{w}/agent.err"):
    if "poll: meter " in line and "(bus sim " in line and " polls, " in line:
        f = line.split("poll: meter ", 1)[1].split()
        nums = [int(x) for x in line.split("): ", 1)[1].replace(",", "").replace(";", "").split()
                if x.isdigit()]
        agent[f[0]] = dict(zip(("polls", "ok", "failed", "requests"), nums))
t0 = {m["id"]: m for m in json.load(open(f"{w}/truth0.json"))["meters"]}
truth_end = json.load(open(f"{w}/truth.json"))
t1 = {m["id"]: m for m in truth_end["meters"]}
truth0 = json.load(open(f"{w}/truth0.json"))
for m in meters:
    a = agent.get(m)
    if not check(a is not None, f"{m}: no counters in the agent's log"):
        continue
    rows = db.execute("SELECT count(*), count(kwh), count(DISTINCT t_ms), sum(quality <> 0)"
                      " FROM readings WHERE gateway = ? AND meter = (SELECT id FROM names WHERE name = ?)", (gw, m)).fetchone()
    check(rows[0] == a["polls"], f"{m}: {rows[0]} readings stored, the agent polled {a['polls']} times")
    check(rows[1] == a["ok"], f"{m}: {rows[1]} readings with a counter stored, {a['ok']} polls answered")
    check(rows[2] == rows[0], f"{m}: readings share a time")
    check(a["failed"] == 0 and not rows[3], f"{m}: {a['failed']} failed polls, {rows[3]} readings not ok")
    st = t1[m]["stats"]
    check(st["requests"] == a["requests"] and st["answered"] == st["requests"],
          f"{m}: the simulator got {st['requests']} requests and answered {st['answered']},"
          f" the agent sent {a['requests']}")
print("agent polls per meter (all stored once, every request answered by the simulator):",
      {m: agent.get(m, {}).get("polls") for m in meters})

# ---- 1a. readings: register values, in order, against the simulator's integral ----
def counter_reg(mt):
    return next(r for r in mt["registers"] if r["quantity"] == "energy_import_kwh" and r["phase"] == 0)

def step_of(reg, v):
    """One register step at value v: a count of an integer register, one
    float32 ulp (float registers here have no scale)."""
    if reg["type"] == "f32":
        return 2.0 ** (math.frexp(v)[1] - 24)
    return reg["unit"]

def representable(reg, v):
    if reg["type"] == "f32":
        return struct.unpack("<f", struct.pack("<f", v))[0] == v
    k = round(1 / reg["unit"])  # the agent divides by 1/scale: raw / 100, raw / 1000
    return float(round(v * k)) / k == v

S = truth_end["time_ms"] - truth0["time_ms"]  # simulated ms between the two snapshots
W = w_end - w0                                # wall ms between sending the two signals
print(f"simulated {S / 3.6e6:.3f} h in {W / 1000:.1f} s of wall time")
print(f"the simulator's clock ran x{S / W:.4f}, {S / speed - W:+.0f} ms off the wall clock"
      " between the snapshots")
check(abs(S / speed - W) <= 50, f"the simulator's clock ran {S / speed:.0f} ms, the wall clock {W} ms:"
      " the truth snapshots' timing cannot be trusted")
# The margins: the simulator counted energy from the first snapshot to the
# first poll and from the last poll to the second snapshot. Their estimate
# is the served power (trapezoid) x the wall time x speed. Tolerance: one
# register step (counters are served floored, floats rounded), 3 % of the
# margin (power is linear between knots 60 simulated s apart, 1 % noise per
# knot), and 50 ms of signal latency and poll stamping (a reading is stamped
# when the last request of its poll is answered) at the meter's power x speed.
SLACK_S = 0.05
first, last, energy = {}, {}, {}
for m in meters:
    rs = db.execute("SELECT t_ms, kwh, kw FROM readings WHERE meter = (SELECT id FROM names WHERE name = ?) AND gateway = ? AND"
                    " kwh IS NOT NULL ORDER BY t_ms", (m, gw)).fetchall()
    if not check(len(rs) >= 2, f"{m}: {len(rs)} readings"):
        continue
    reg = counter_reg(t1[m])
    nonreg = [v for _, v, _ in rs if not representable(reg, v)]
    check(not nonreg, f"{m}: {len(nonreg)} readings no {reg['type']} register x {reg['unit']} can"
          f" hold, e.g. {nonreg[:3]}")
    check(all(b[1] >= a[1] for a, b in zip(rs, rs[1:])), f"{m}: the counter went back")
    first[m], last[m] = rs[0], rs[-1]
    energy[m] = rs[-1][1] - rs[0][1]
    a, b = t0[m], t1[m]
    p_max = max(r[2] for r in rs)
    est0 = (a["power_kw"] + rs[0][2]) / 2 * (rs[0][0] - w0) * speed / 3.6e6
    est1 = (rs[-1][2] + b["power_kw"]) / 2 * (w_end - rs[-1][0]) * speed / 3.6e6
    timing = p_max * speed * SLACK_S / 3600
    got0 = rs[0][1] - a["counter_kwh"]
    got1 = b["counter_kwh"] - rs[-1][1]
    tol0 = step_of(reg, rs[0][1]) + 0.03 * est0 + timing
    tol1 = step_of(reg, rs[-1][1]) + 0.03 * est1 + timing
    check(rs[0][1] >= counter_reg(a)["served"] and rs[-1][1] <= reg["served"],
          f"{m}: readings {rs[0][1]}..{rs[-1][1]} outside what was served {counter_reg(a)['served']}"
          f"..{reg['served']}")
    check(abs(got0 - est0) <= tol0, f"{m}: first reading {rs[0][1]!r} is {got0:.4f} kWh past the"
          f" simulator's counter at the first snapshot, {est0:.4f} expected (+-{tol0:.4f})")
    check(abs(got1 - est1) <= tol1, f"{m}: last reading {rs[-1][1]!r} is {got1:.4f} kWh short of the"
          f" simulator's counter at its exit, {est1:.4f} expected (+-{tol1:.4f})")
    true_e = b["energy_kwh"] - a["energy_kwh"]
    print(f"{m:8} {len(rs):3} readings {rs[0][1]:.3f} -> {rs[-1][1]:.3f} kWh: {energy[m]:.6f} kWh;"
          f" simulator {true_e:.6f} kWh = readings + margins {got0:.4f} (est {est0:.4f})"
          f" + {got1:.4f} (est {est1:.4f}), residual {true_e - energy[m] - est0 - est1:+.4f}")

# ---- 1b. stored energy = last - first reading, to the micro-kWh ----
closing = {r[0]: r[1] for r in db.execute("SELECT (SELECT name FROM names WHERE id = meter),"
                                           " max(t_ms) FROM readings"
                                           " WHERE gateway = 'gw-close' GROUP BY meter")}
for m in energy:
    n, iv_ukwh, est, covered = db.execute(
        "SELECT count(*), sum(ukwh), sum(estimated_year_ukwh), sum(covered_ms) FROM intervals"
        " WHERE site = (SELECT id FROM names WHERE name = ?) AND meter = (SELECT id FROM names WHERE name = ?)", (site, m)).fetchone()
    ukwh, riv = db.execute("SELECT sum(ukwh), sum(intervals) FROM rollups WHERE site ="
                           " (SELECT id FROM names WHERE name = ?) AND kind = 3 AND meter ="
                           " (SELECT id FROM names WHERE name = ?)", (site, m)).fetchone()
    # whole micro-kWh: the readings' values rounded once, their differences
    # summed exactly — last minus first, to the micro-kWh
    # C's llround: halves away from zero (Python's round() goes to even; an
    # f32 register's value times 1e6 can be an exact half)
    as_ukwh = lambda v: int(math.copysign(math.floor(abs(v * 1e6) + 0.5), v))
    want = as_ukwh(last[m][1]) - as_ukwh(first[m][1])
    check(n and iv_ukwh == want, f"{m}: intervals hold {iv_ukwh} micro-kWh, the readings {want}")
    check(n and abs(iv_ukwh / 1e6 - energy[m]) <= 1e-6, f"{m}: intervals hold {iv_ukwh} micro-kWh,"
          f" the readings {energy[m]!r} kWh")
    check(ukwh == iv_ukwh, f"{m}: month rollups hold {ukwh} micro-kWh, the intervals {iv_ukwh}")
    check(riv == n, f"{m}: {riv} intervals in the month rollups, {n} stored")
    check(est == 0, f"{m}: {est} micro-kWh estimated: a gap in the readings")
    # covered time: from the first reading to the end of the closed interval
    end = closing.get(m, last[m][0])
    check(covered == end - first[m][0], f"{m}: intervals cover {covered} ms, the readings span"
          f" {end - first[m][0]} ms")

# ---- 1c. the month figures are the role sums of the per-meter energies ----
per_month = collections.defaultdict(lambda: collections.defaultdict(float))
for m, start, kwh in db.execute("SELECT (SELECT name FROM names WHERE id = meter), start_ms,"
                                " ukwh / 1e6 FROM intervals"
                                " WHERE site = (SELECT id FROM names WHERE name = ?)", (site,)):
    t = datetime.datetime.fromtimestamp(start / 1000, tz)
    per_month[f"{t:%Y-%m}"][m] += kwh
col = {}
for y in years:
    for p in json.load(open(f"{w}/figures-{y}.json")):
        col[p["period"]] = p
for month, e in sorted(per_month.items()):
    try:
        f = json.load(open(f"{w}/figures-{month}.json"))[0]  # figures --month
    except OSError:
        check(False, f"no `figures --month {month}`")
        continue
    check(f == col.get(month), f"{month}: `figures --month` differs from the month of `--year`")
    want = {"it_kwh": sum(v for m, v in e.items() if roles[m] == "it"),
            "total_kwh": sum(v for m, v in e.items() if roles[m] in ("facility", "green_onsite")),
            "green_kwh": sum(v for m, v in e.items() if roles[m] == "green_onsite"),
            "cooling_kwh": sum(v for m, v in e.items() if roles[m] == "cooling")}
    for k, v in want.items():  # printed to 3 decimals (fixed point)
        check(abs(f[k] - v) <= 0.0005 + 1e-6 * len(e), f"{month} {k}: {f[k]} in the figures,"
              f" {v:.6f} the meters' sum")
    check(abs(f["pue"] - want["total_kwh"] / want["it_kwh"]) <= 1e-6, f"{month} pue {f['pue']}")
    check(abs(f["green_share"] - want["green_kwh"] / want["total_kwh"]) <= 1e-6,
          f"{month} green_share {f['green_share']}")
    for fm in f["meters"]:
        check(abs(fm["kwh"] - e.get(fm["id"], 0)) <= 0.0005 + 1e-6, f"{month} {fm['id']}: {fm['kwh']}"
              f" in the figures, {e.get(fm['id'], 0):.6f} stored")
    print(f"{month}: total {f['total_kwh']} kWh, IT {f['it_kwh']}, green {f['green_kwh']},"
          f" cooling {f['cooling_kwh']}, PUE {f['pue']}, green share {f['green_share']},"
          f" verdicts {f['verdicts']}")

# ---- 2. identical to dcem-audit over the export, field by field ----
rows = list(csv.DictReader(open(f"{w}/export.csv")))
n_with_kwh = db.execute("SELECT count(*) FROM readings WHERE kwh IS NOT NULL").fetchone()[0]
check(len(rows) == n_with_kwh, f"the export has {len(rows)} rows, the store {n_with_kwh} readings")
periods = 0
for y in years:
    c = json.load(open(f"{w}/figures-{y}.json"))
    a = json.load(open(f"{w}/audit-{y}.json"))
    r = a["readings"]
    check(r["rejected"] == 0 and r["discarded_glitches"] == 0 and not r.get("unknown_meters"),
          f"dcem-audit {y}: {r}")
    check(len(c) == len(a["periods"]), f"{y}: {len(c)} collector periods, {len(a['periods'])} audited")
    for cp, ap in zip(c, a["periods"]):
        periods += 1
        for k, v in ap.items():
            check(cp.get(k) == v, f"{ap['period']} {k}: collector {cp.get(k)!r}, dcem-audit {v!r}")
print(f"{periods} periods of {', '.join(years)} identical to dcem-audit over the {len(rows)}-row export")

# ---- 3. InfluxDB ----
n_iv = db.execute("SELECT count(*) FROM intervals").fetchone()[0]
n_rd = db.execute("SELECT count(*) FROM readings").fetchone()[0]
check(influx_iv == n_iv, f"InfluxDB has {influx_iv} dcem_interval points, the store {n_iv} intervals")
check(influx_rd > 0, "InfluxDB has no dcem_reading points")
print(f"InfluxDB: {influx_iv} interval points of {n_iv} stored intervals, {influx_rd} reading points"
      f" of {n_rd} stored readings")

if bad:
    print("\n".join(bad))
    sys.exit(1)
EOF
echo "collector_sim.sh: passed in $((SECONDS - started)) s"
