#!/usr/bin/env bash
# What the agent drops before its spool is counted, logged once and exported
# (docs/agent.md, "Dropped data"):
#
#   agent_dropped.sh BUILD_DIR SOURCE_DIR
#
# dcem-sim -> dcem-agent -> mosquitto, no collector: 24 meters on 8 buses
# polled every 100 ms fill a 1 MiB spool in seconds, and nothing is acknowledged, so
# the spool drops its oldest batches. Proves:
#   1. the spell is logged once when it starts (warn: agent: spool_full_batches: …),
#      not once per batch;
#   2. the agent's metrics payload (retained on …/metrics, read with
#      mosquitto_sub) carries "dropped" with every reason and a count above 0
#      for spool_full_batches;
#   3. at stop, the stats line and the end of the spell give the same count.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
sim=$build/firmware/sim/dcem-sim
agent=$build/firmware/agent/dcem-agent
for b in "$sim" "$agent"; do [[ -x $b ]] || fail "no $b"; done
make_work agent-dropped
topic=dcem/v1/drop-site/gw-drop

start_mosquitto
"$sim" -c "$src/configs/sim/clean-3.yaml" --tcp 127.0.0.1:0 >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
wait_for "dcem-sim ready" 10 grep -q '^ready' "$work/sim.out"
sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim.out")

# 24 meters: the simulator's three units seen through eight bus connections
devices="" ledger="" buses=""
for i in 1 2 3 4 5 6 7 8; do
  buses+="  - {name: tcp$i, tcp: \"127.0.0.1:$sim_port\", response_timeout_ms: 300}
"
  devices+="  - {bus: tcp$i, unit: 1, profile: eastron-sdm630, meter: it-$i, poll_ms: 100}
  - {bus: tcp$i, unit: 2, profile: acrel-adl400, meter: cool-$i, poll_ms: 100}
  - {bus: tcp$i, unit: 3, profile: chint-dtsu666, meter: pv-$i, poll_ms: 100}
"
  ledger+="  - {id: it-$i, role: it, rated_kw: 400}
  - {id: cool-$i, role: facility, rated_kw: 250}
  - {id: pv-$i, role: green_onsite, rated_kw: 80}
"
done
cat >"$work/site.yaml" <<EOF
site: drop-site
name: dropped data test
racks: 60
rack_power_kw: 300
interval_minutes: 1
meters:
$ledger
EOF
cat >"$work/agent.yaml" <<EOF
gateway: gw-drop
site: drop-site
ledger: $work/site.yaml
profiles: $src/configs/meters
log_level: info
buses:
$buses
devices:
$devices
mqtt: {uri: "$uri", version: 5, reconnect_max_ms: 1000}
spool: {dir: "$work/spool", max_mib: 1, fsync: never}
identity: {allow_unsigned: true}
batch: {max_readings: 250, max_delay_ms: 200}
EOF

mosquitto_sub -h 127.0.0.1 -p "$port" -t "$topic/metrics" >"$work/metrics.jsonl" &
pids+=($!)
"$agent" -c "$work/agent.yaml" >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
pids+=("$agent_pid")

# 1. the spool fills and drops, logged once
wait_for "the broker connection" 10 grep -q "connected to" "$work/agent.err"
wait_for "the spool to drop its oldest batches" 60 grep -q "spool_full_batches: batches dropped" "$work/agent.err"
# 2. the next interval's metrics carry the count (an interval is 1 minute)
wait_for "metrics with the drops" 100 grep -q '"spool_full_batches":[1-9]' "$work/metrics.jsonl"
grep -m1 '"spool_full_batches":[1-9]' "$work/metrics.jsonl" >"$work/metrics.json"
$PY - "$work/metrics.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
d = m["dropped"]
print("metrics:", {k: m[k] for k in ("kwh", "dropped")})
if sorted(d) != sorted(["queue_full", "spool_full_batches", "encode", "too_large", "spool_error"]):
    sys.exit(f"dropped has {sorted(d)}")
if d["spool_full_batches"] < 1 or any(d[k] for k in ("encode", "too_large", "spool_error")):
    sys.exit("unexpected counts")
EOF
kill -TERM "$agent_pid"
wait "$agent_pid" || fail "the agent exited with $?"

# 1 and 3: one warning for the whole spell; the stats line and the spell's end agree
n_warn=$(grep -c "spool_full_batches: batches dropped" "$work/agent.err")
((n_warn == 1)) || fail "the spell was logged $n_warn times"
stats=$(grep "info: agent: .* batches spooled" "$work/agent.err" | tail -1)
echo "$stats"
in_stats=$(sed -n 's/.* \([0-9]*\) spool_full_batches,.*/\1/p' <<<"$stats")
in_spell=$(sed -n 's/.*spool_full_batches: \([0-9]*\) dropped in that spell (\([0-9]*\) since start).*/\2/p' \
  "$work/agent.err" | tail -1)
((in_stats > 0)) || fail "the stats line counts no drop"
[[ $in_stats == "$in_spell" ]] || fail "stats say $in_stats dropped, the spell's end $in_spell"
echo "agent_dropped: passed ($in_stats batches dropped)"
