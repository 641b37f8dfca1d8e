#!/usr/bin/env bash
# dcem-agent end to end against real parts on loopback: a mosquitto broker,
# dcem-sim (Modbus TCP, and RTU over a socat pty pair), and dcem-test-ack in
# the collector's acknowledging role. One scenario per CTest test:
#
#   agent.sh SCENARIO BUILD_DIR SOURCE_DIR
#
# Scenarios:
#   models    three models over TCP and over RTU: what arrives equals what was served
#   profiles  --once against one meter of every shipped profile: every value right
#   outage    the broker stopped for OUTAGE_S (60) s while polling every second:
#             every reading arrives once, in order
#   kill9     the agent killed with SIGKILL while spooling, restarted: nothing
#             spooled is lost, nothing corrupt is sent
#   dead      a dead device does not delay the others past its own timeout
#             (over MQTT 3.1.1; the other scenarios use MQTT 5)
#   reload    a bad SIGHUP reload keeps the running config; a good one is taken
#   stale     a counter that stopped while power flows is flagged stale
#   collector the real agent and the real collector (not dcem-test-ack), the
#             broker cut in the middle: every reading stored once, the spool drains
# Every process is started here, awaited by polling, and stopped on exit.
# DCEM_EMULATOR (a cross build's, e.g. "qemu-aarch64 -L /usr/aarch64-linux-gnu";
# tests/agent_only.cmake) runs the build's dcem-sim, dcem-agent and
# dcem-test-ack under it.
set -euo pipefail
scenario=$1
build=$2
src=$3
. "$(dirname "$0")/lib.sh"
sim=$build/firmware/sim/dcem-sim
agent=$build/firmware/agent/dcem-agent
ack=$build/tests/dcem-test-ack
read -ra run <<<"${DCEM_EMULATOR:-}"
work=$(mktemp -d "/tmp/dcem-agent-$scenario.XXXXXX")
pids=()

cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if ((rc == 0)); then rm -rf "$work"; else echo "agent.sh: $scenario failed; files kept in $work" >&2; fi
  exit "$rc"
}
trap cleanup EXIT





mqtt_port=$(free_port)
start_broker() {
  cat >"$work/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
EOF
  mosquitto -v -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 &
  broker_pid=$!
  pids+=("$broker_pid")
  wait_for "mosquitto on $mqtt_port" 10 port_open "$mqtt_port"
}
stop_broker() { kill -TERM "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; }

# start_sim SCENARIO_FILE [extra args]: sets sim_port (and serves RTU if asked)
start_sim() {
  local file=$1
  shift
  "${run[@]}" "$sim" -c "$file" --tcp 127.0.0.1:0 --truth "$work/truth.json" "$@" >"$work/sim.out" 2>"$work/sim.err" &
  sim_pid=$!
  pids+=("$sim_pid")
  wait_for "dcem-sim ready" 10 grep -q '^ready' "$work/sim.out"
  sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim.out")
}

start_ack() {
  "${run[@]}" "$ack" --uri "tcp://127.0.0.1:$mqtt_port" --out "$work/acked.jsonl" "$@" >"$work/ack.out" 2>"$work/ack.err" &
  ack_pid=$!
  pids+=("$ack_pid")
  wait_for "dcem-test-ack ready" 10 grep -q '^ready' "$work/ack.out"
}

stop_ack() { # the acknowledger prints its counters when it stops
  kill -TERM "$ack_pid"
  wait_for "the acknowledger's counters" 10 grep -q '"batches"' "$work/ack.out"
  cat "$work/ack.out"
}

start_agent() {
  "${run[@]}" "$agent" -c "$work/agent.yaml" >>"$work/agent.out" 2>>"$work/agent.err" &
  agent_pid=$!
  pids+=("$agent_pid")
}

# write_agent DEVICES_YAML [BUSES_YAML]: an agent.yaml for the sim's TCP port
write_agent() {
  local devices=$1 buses=${2:-"  - {name: tcp, tcp: \"127.0.0.1:$sim_port\", response_timeout_ms: 300, retries: 0}"}
  cat >"$work/agent.yaml" <<EOF
gateway: gw-test
site: test-site
profiles: $src/configs/meters
log_level: info
buses:
$buses
devices:
$devices
mqtt: {uri: "tcp://127.0.0.1:$mqtt_port", version: 5, reconnect_max_ms: 1000}
spool: {dir: "$work/spool"}
identity: {allow_unsigned: true}
batch: {max_readings: 250, max_delay_ms: 500}
EOF
}

readings() { [[ -s $work/acked.jsonl ]] && wc -l <"$work/acked.jsonl" || echo 0; }
have_readings() { test "$(readings)" -ge "$1"; }
wait_readings() { # N SECONDS
  wait_for "$1 readings at the acknowledger" "$2" have_readings "$1"
}

# check_stream MAX_GAP_MS: per meter, readings arrived once each, in order,
# never further apart than MAX_GAP_MS; batches stored once, in seq order.
check_stream() {
  $PY - "$work/acked.jsonl" "$1" <<'EOF'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
max_gap = int(sys.argv[2])
by = collections.defaultdict(list)
for r in rows:
    by[r["meter"]].append(r)
bad = []
for m, rs in by.items():
    ts = [r["t"] for r in rs]
    if len(ts) != len(set(ts)): bad.append(f"{m}: {len(ts) - len(set(ts))} readings twice")
    if ts != sorted(ts): bad.append(f"{m}: readings out of order")
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    if gaps and max(gaps) > max_gap: bad.append(f"{m}: a gap of {max(gaps)} ms")
    print(f"{m}: {len(ts)} readings, largest gap {max(gaps) if gaps else 0} ms")
seqs = collections.defaultdict(list)
for r in rows:
    seqs[r["epoch"]].append(r["seq"])
for e, s in seqs.items():
    u = sorted(set(s))
    if u != list(range(u[0], u[-1] + 1)): bad.append(f"epoch {e}: batches missing")
if bad:
    print("\n".join(bad)); sys.exit(1)
EOF
}

case $scenario in
models)
  # Three models over TCP, the same three over RTU (socat pty pair); the
  # simulated clock is frozen, so every reading must equal what is served.
  start_broker
  rtu_a=$work/tty-sim rtu_b=$work/tty-agent
  socat "pty,raw,echo=0,link=$rtu_a" "pty,raw,echo=0,link=$rtu_b" 2>"$work/socat.err" &
  pids+=($!)
  wait_for "socat pty pair" 10 test -e "$rtu_b"
  start_sim "$src/configs/sim/clean-3.yaml" --speed 0 --rtu "$rtu_a" --baud 38400
  start_ack
  write_agent "  - {bus: tcp, unit: 1, profile: eastron-sdm630, meter: it-main, poll_ms: 500}
  - {bus: tcp, unit: 2, profile: acrel-adl400, meter: cooling, poll_ms: 500}
  - {bus: tcp, unit: 3, profile: chint-dtsu666, meter: pv-roof, poll_ms: 500}
  - {bus: rtu, unit: 1, profile: eastron-sdm630, meter: it-main-rtu, poll_ms: 500}
  - {bus: rtu, unit: 2, profile: acrel-adl400, meter: cooling-rtu, poll_ms: 500}
  - {bus: rtu, unit: 3, profile: chint-dtsu666, meter: pv-roof-rtu, poll_ms: 500}" \
  "  - {name: tcp, tcp: \"127.0.0.1:$sim_port\", response_timeout_ms: 300}
  - {name: rtu, rtu: \"$rtu_b\", baud: 38400, response_timeout_ms: 500}"
  start_agent
  wait_readings 18 30
  kill -USR1 "$sim_pid"
  wait_for "truth file" 10 test -s "$work/truth.json"
  $PY - "$work/acked.jsonl" "$work/truth.json" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
truth = json.load(open(sys.argv[2]))
served = {}  # meter id -> (import kWh, total kW) as served
for m in truth["meters"]:
    regs = {(r["quantity"], r["phase"]): r["served"] for r in m["registers"]}
    served[m["id"]] = (regs[("energy_import_kwh", 0)], regs.get(("power_kw", 0)))
bad, seen = [], {}
for r in rows:
    m = r["meter"]; base = m[:-4] if m.endswith("-rtu") else m
    seen[m] = seen.get(m, 0) + 1
    if r["q"] != "ok": bad.append(f"{m}: quality {r['q']}")
    elif (r["kwh"], r["kw"]) != served[base]:
        bad.append(f"{m}: {(r['kwh'], r['kw'])!r} arrived, {served[base]!r} served")
for m in ("it-main", "cooling", "pv-roof", "it-main-rtu", "cooling-rtu", "pv-roof-rtu"):
    if not seen.get(m): bad.append(f"{m}: nothing arrived")
print({m: n for m, n in sorted(seen.items())}, served)
if bad: print("\n".join(sorted(set(bad)))); sys.exit(1)
EOF
  ;;
outage)
  # The broker stops for OUTAGE_S seconds while the agent polls every second.
  outage=${OUTAGE_S:-60}
  start_broker
  start_sim "$src/configs/sim/clean-3.yaml"
  start_ack
  write_agent "  - {bus: tcp, unit: 1, profile: eastron-sdm630, meter: it-main, poll_ms: 1000}
  - {bus: tcp, unit: 2, profile: acrel-adl400, meter: cooling, poll_ms: 1000}"
  start_agent
  wait_readings 6 20
  stop_broker
  sleep "$outage"
  before=$(readings)
  start_broker
  # everything polled meanwhile arrives: 2 meters x the outage, and more
  wait_readings $((before + 2 * outage)) $((outage + 30))
  kill -TERM "$agent_pid"; wait "$agent_pid" || true
  sleep 1
  check_stream 1500
  stop_ack
  grep -q '"malformed":0' "$work/ack.out" || fail "malformed batches: $(tail -1 "$work/ack.out")"
  ;;
kill9)
  # SIGKILL the agent while it spools (every 2-5 s, 4 times), restart it:
  # every spooled batch arrives once, none corrupt.
  start_broker
  start_sim "$src/configs/sim/clean-3.yaml"
  start_ack
  write_agent "  - {bus: tcp, unit: 1, profile: eastron-sdm630, meter: it-main, poll_ms: 200}
  - {bus: tcp, unit: 2, profile: acrel-adl400, meter: cooling, poll_ms: 200}
  - {bus: tcp, unit: 3, profile: chint-dtsu666, meter: pv-roof, poll_ms: 200}"
  sed -i 's/max_delay_ms: 500/max_delay_ms: 100/' "$work/agent.yaml"
  for i in 1 2 3 4; do
    start_agent
    sleep "$((2 + i % 3)).$((i * 37 % 10))"
    kill -KILL "$agent_pid"
    wait "$agent_pid" 2>/dev/null || true
  done
  start_agent
  sleep 4
  kill -TERM "$agent_pid"; wait "$agent_pid" || true
  sleep 1
  stop_ack
  grep -q '"malformed":0' "$work/ack.out" || fail "a corrupt batch was sent"
  # readings stop while the agent is dead and its last unspooled batch is
  # lost with it; what was spooled is all there: stored batches have no holes
  check_stream 10000
  ;;
profiles)
  # `dcem-agent --once` against one simulated meter of every shipped profile
  # on a frozen clock: every value it prints equals the value served.
  start_sim "$src/configs/sim/all-profiles.yaml" --speed 0
  mqtt_port=1 # --once never connects
  devices=""
  while read -r unit profile id; do
    devices+="  - {bus: tcp, unit: $unit, profile: $profile, meter: $id}"$'\n'
  done < <($PY -c 'import re,sys
for l in open(sys.argv[1]):
    m = re.search(r"id: (\S+), unit: (\d+), profile: (\S+),", l)
    if m: print(m.group(2), m.group(3), m.group(1))' "$src/configs/sim/all-profiles.yaml")
  write_agent "$devices"
  # piped, --once prints its JSON document (dcem-agent-once/1) and exits 0
  # when every device answered
  "${run[@]}" "$agent" -c "$work/agent.yaml" --once >"$work/once.json" 2>"$work/agent.err" || fail "--once failed"
  kill -USR1 "$sim_pid"
  wait_for "truth file" 10 test -s "$work/truth.json"
  $PY - "$work/once.json" "$work/truth.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
truth = json.load(open(sys.argv[2]))
got = {d["meter"]: d for d in doc["devices"]}
bad, checked = [], 0
for m in truth["meters"]:
    r = got.get(m["id"])
    if r is None or r["result"] != "ok":
        bad.append(f"{m['id']} ({m['profile']}): {r and r['result']}"); continue
    # a value is printed as a number only when it is valid (status ok); one
    # the device does not implement is null
    values = {(v["quantity"], v["phase"]): v["value"] for v in r["values"]}
    for reg in m["registers"]:
        q, ph = reg["quantity"], reg["phase"]
        if q == "scale_factor": continue
        v = values.get((q, ph))
        if q in ("ct_ratio", "pt_ratio"): # not a value: the ratio in force, read from the meter
            k = q[:2]
            v = r["ratios"][k] if r["ratios"][k + "_source"] == "register" else None
        checked += 1
        want = reg["served"]
        if m["profile"] == "sunspec-203" and q.startswith("energy") and want == 0:
            # SunSpec integer models: an accumulator of 0 means "not implemented"
            if v is not None: bad.append(f"{m['id']} {reg['name']}: {v!r} for a 0 accumulator")
            continue
        if v is None or abs(v - want) > 1e-9 * max(1.0, abs(want)):
            bad.append(f"{m['id']} ({m['profile']}) {reg['name']}: printed {v!r}, served {want!r}")
print(f"{len(got)} meters, {checked} values checked")
if len(got) != len(truth["meters"]): bad.append("not every meter was read")
if bad: print("\n".join(bad)); sys.exit(1)
EOF
  ;;
stale)
  # A frozen counter (the simulator's clock stopped) while the meter reports
  # 272 kW: once its own power says more than 1 kWh should have been counted
  # (about 13 s), its readings are flagged stale; a 63 kW meter is not yet.
  start_broker
  start_sim "$src/configs/sim/clean-3.yaml" --speed 0
  start_ack
  write_agent "  - {bus: tcp, unit: 1, profile: eastron-sdm630, meter: it-main, poll_ms: 500}
  - {bus: tcp, unit: 3, profile: chint-dtsu666, meter: pv-roof, poll_ms: 500}"
  start_agent
  wait_for "a stale reading" 40 grep -q '"meter":"it-main".*"q":"stale"' "$work/acked.jsonl"
  $PY - "$work/acked.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
it = [r for r in rows if r["meter"] == "it-main"]
first_stale = next(r["t"] for r in it if r["q"] == "stale")
ok_span = (first_stale - it[0]["t"]) / 1000
print(f"it-main stale after {ok_span:.1f} s")
if not 12 <= ok_span <= 16: sys.exit("stale too early or too late")
if any(r["q"] != "ok" for r in rows if r["meter"] == "pv-roof"): sys.exit("pv-roof flagged")
EOF
  ;;
collector)
  # The real pair: dcem-sim -> dcem-agent -> mosquitto -> dcem-collector (no
  # test acknowledger). The collector acks only what it stored; the agent's
  # spool drains; every reading the agent sent is in the collector's store,
  # once, and the broker is cut for a while in the middle.
  collector=$build/gateway/collector/dcem-collector
  [[ -x $collector ]] || fail "no dcem-collector in $build"
  start_broker
  start_sim "$src/configs/sim/clean-3.yaml"
  mkdir -p "$work/sites"
  cat >"$work/sites/test-site.yaml" <<EOF
site: test-site
name: agent to collector test
racks: 60
rack_power_kw: 300
interval_minutes: 1
meters:
  - {id: it-main, role: it, rated_kw: 400}
  - {id: cooling, role: facility, rated_kw: 250}
  - {id: pv-roof, role: green_onsite, rated_kw: 80}
EOF
  cat >"$work/collector.yaml" <<EOF
collector: test
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "tcp://127.0.0.1:$mqtt_port", version: 5}
store: {path: store.db}
EOF
  "$collector" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.err" &
  pids+=($!)
  col_pid=$!
  wait_for "the collector's subscription" 10 grep -q "subscribed to" "$work/collector.err"
  write_agent "  - {bus: tcp, unit: 1, profile: eastron-sdm630, meter: it-main, poll_ms: 500}
  - {bus: tcp, unit: 2, profile: acrel-adl400, meter: cooling, poll_ms: 500}
  - {bus: tcp, unit: 3, profile: chint-dtsu666, meter: pv-roof, poll_ms: 500}"
  sed -i "s|^site: test-site|site: test-site\nledger: $work/sites/test-site.yaml|" "$work/agent.yaml"
  start_agent
  sleep 6
  stop_broker
  sleep 8
  start_broker
  sleep 8
  kill -TERM "$agent_pid"; wait "$agent_pid" || true
  # the last batches, spooled at stop, go out when the agent starts again
  start_agent
  has_no_segments() { ! ls "$work/spool"/seg-* >/dev/null 2>&1; }
  wait_for "the agent's spool to drain" 40 has_no_segments
  kill -TERM "$agent_pid"; wait "$agent_pid" || true
  kill -TERM "$col_pid"; wait "$col_pid" || true
  grep "health: received" "$work/collector.err" | tail -1
  "$collector" export -c "$work/collector.yaml" --site test-site --from 2000-01-01 --to 2100-01-01 \
    >"$work/export.csv"
  $PY - "$work/export.csv" <<'EOF'
import csv, sys, collections
rows = list(csv.DictReader(open(sys.argv[1])))
by = collections.defaultdict(list)
for r in rows: by[r["meter"]].append(r["time"])
bad = []
for m in ("it-main", "cooling", "pv-roof"):
    ts = by.get(m, [])
    if len(ts) < 40: bad.append(f"{m}: only {len(ts)} readings stored")
    if len(ts) != len(set(ts)): bad.append(f"{m}: a reading stored twice")
    print(m, len(ts), "readings in the collector's store")
if bad: sys.exit("\n".join(bad))
EOF
  "$collector" figures -c "$work/collector.yaml" --site test-site --month "$(date -u +%Y-%m)" \
    >"$work/figures.json" || true
  grep -q '"total_kwh"' "$work/figures.json" || fail "no figures: $(head -c 300 "$work/figures.json")"
  ;;
dead)
  # Units 1-3 answer, unit 9 does not exist on the same bus: the others keep
  # their 500 ms cadence within the dead unit's own timeout (300 ms).
  start_broker
  start_sim "$src/configs/sim/clean-3.yaml"
  start_ack
  write_agent "  - {bus: tcp, unit: 1, profile: eastron-sdm630, meter: it-main, poll_ms: 500}
  - {bus: tcp, unit: 9, profile: eastron-sdm630, meter: ghost, poll_ms: 500}
  - {bus: tcp, unit: 2, profile: acrel-adl400, meter: cooling, poll_ms: 500}
  - {bus: tcp, unit: 3, profile: chint-dtsu666, meter: pv-roof, poll_ms: 500}"
  sed -i 's/version: 5/version: 3/' "$work/agent.yaml" # the MQTT 3.1.1 path too
  start_agent
  wait_readings 40 30
  $PY - "$work/acked.jsonl" <<'EOF'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
by = collections.defaultdict(list)
for r in rows: by[r["meter"]].append(r)
ghost = by.pop("ghost", [])
if not ghost or any(r["q"] != "comm_error" for r in ghost):
    sys.exit("the dead unit must be reported as comm_error")
bad = []
for m, rs in by.items():
    ts = [r["t"] for r in rs]
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    # 500 ms cadence, delayed at most by one timeout of the dead unit (300 ms)
    print(m, len(ts), "largest gap", max(gaps))
    if max(gaps) > 500 + 300 + 100: bad.append(f"{m}: gap {max(gaps)} ms")
    if any(r["q"] != "ok" for r in rs): bad.append(f"{m}: not ok")
if bad: sys.exit("\n".join(bad))
EOF
  ;;
reload)
  # A SIGHUP with a broken config is refused and the agent keeps polling;
  # a good one is taken (a device added).
  start_broker
  start_sim "$src/configs/sim/clean-3.yaml"
  start_ack
  write_agent "  - {bus: tcp, unit: 1, profile: eastron-sdm630, meter: it-main, poll_ms: 500}"
  start_agent
  wait_readings 4 20
  cp "$work/agent.yaml" "$work/good.yaml"
  sed -i 's/unit: 1,/unit: 1, colour: red,/' "$work/agent.yaml"
  kill -HUP "$agent_pid"
  wait_for "reload refused" 10 grep -q "reload refused" "$work/agent.err"
  grep "reload refused" "$work/agent.err" | grep -q "agent.yaml:[0-9]*: devices\[0\].colour: unknown key" ||
    fail "the refusal does not name file:line: $(grep 'reload refused' "$work/agent.err")"
  n=$(readings)
  wait_readings $((n + 4)) 10
  sed 's/^devices:$/devices:\n  - {bus: tcp, unit: 2, profile: acrel-adl400, meter: cooling, poll_ms: 500}/' \
    "$work/good.yaml" >"$work/agent.yaml"
  kill -HUP "$agent_pid"
  wait_for "the added device's readings" 20 grep -q '"meter":"cooling"' "$work/acked.jsonl"
  kill -0 "$agent_pid" || fail "the agent died"
  ;;
*)
  fail "unknown scenario $scenario"
  ;;
esac
echo "agent.sh: $scenario passed"
