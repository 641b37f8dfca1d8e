#!/usr/bin/env bash
# Adversarial case 5, the agent's side: a batch lost from the spool must not
# stall a gateway (docs/wire-format.md, "Holes"; docs/spool.md, "A lost seq
# is never reused").
#
#   agent_torn_spool.sh BUILD_DIR SOURCE_DIR
#
# dcem-sim -> dcem-agent -> mosquitto, and no collector:
#   1. the agent spools batches that nobody acknowledges and is stopped;
#   2. 7 bytes are cut off its spool's tail: the newest batch, seq L, is lost;
#   3. restarted, its retained birth (read with mosquitto_sub) says what the
#      spool really holds: next_seq - queued is the oldest seq held (1, not
#      2: a collector gives up what lies below it), next_seq > L;
#   4. a resend request for L (mosquitto_pub on its ctl topic), which it no
#      longer holds and never will, is answered with a new birth, so that a
#      collector can give the hole up instead of asking forever;
#   5. stopped again, its spool holds 1..L-1 and L+1..: L is never reused.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
sim=$build/firmware/sim/dcem-sim
agent=$build/firmware/agent/dcem-agent
for b in "$sim" "$agent"; do [[ -x $b ]] || fail "no $b"; done
make_work agent-torn-spool
topic=dcem/v1/test-site/gw-torn

start_mosquitto
"$sim" -c "$src/configs/sim/clean-3.yaml" --tcp 127.0.0.1:0 >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
wait_for "dcem-sim ready" 10 grep -q '^ready' "$work/sim.out"
sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim.out")
cat >"$work/agent.yaml" <<EOF
gateway: gw-torn
site: test-site
profiles: $src/configs/meters
log_level: info
buses:
  - {name: tcp, tcp: "127.0.0.1:$sim_port", response_timeout_ms: 300}
devices:
  - {bus: tcp, unit: 1, profile: eastron-sdm630, meter: it-main, poll_ms: 200}
mqtt: {uri: "$uri", version: 5, reconnect_max_ms: 1000}
spool: {dir: "$work/spool"}
identity: {allow_unsigned: true}
batch: {max_readings: 250, max_delay_ms: 100}
EOF

start_agent() {
  "$agent" -c "$work/agent.yaml" >>"$work/agent.out" 2>>"$work/agent.err" &
  agent_pid=$!
  pids+=("$agent_pid")
}
stop_agent() { kill -TERM "$agent_pid"; wait "$agent_pid" || fail "the agent exited with $?"; }

# spool [cut N]: the spool's records (spool_records in lib.sh)
spool() { spool_records "$work/spool" "$@"; }
have_batches() { (($(spool | wc -l) >= $1)); }

# 1. batches nobody acknowledges, then a clean stop
start_agent
wait_for "a broker connection" 10 grep -q "connected to" "$work/agent.err"
wait_for "10 batches on the spool" 20 have_batches 10
stop_agent
spool >"$work/before.txt"
read -r epoch last < <(tail -1 "$work/before.txt")
first=$(head -1 "$work/before.txt" | cut -d' ' -f2)
((first == 1)) || fail "the spool starts at $first, not 1"

# 2. the tail cut by 7 bytes: batch $last is gone
spool cut 7 >"$work/cut.txt"
[[ $(tail -1 "$work/cut.txt") == "$epoch $((last - 1))" ]] ||
  fail "after the cut the spool ends at $(tail -1 "$work/cut.txt"), not $epoch $((last - 1))"
echo "spool: epoch $epoch, batches 1..$last; $last cut off"

# 3. restarted: the retained birth tells the truth
start_agent
connected_twice() { (($(grep -c 'connected to' "$work/agent.err") >= 2)); }
wait_for "the restarted agent's connection" 10 connected_twice
grep -q "recovery: [0-9]* bytes of a torn tail cut off" "$work/agent.err" ||
  fail "the spool's recovery was not logged"
retained_birth() {
  mosquitto_sub -h 127.0.0.1 -p "$port" -t "$topic/state" -C 1 -W 3 >"$work/birth.json" &&
    grep -q '"online":true' "$work/birth.json"
}
wait_for "the retained birth" 15 retained_birth
check_birth() { # FILE: a birth whose held range starts at the spool's first seq
  $PY - "$1" "$epoch" "$last" <<'EOF'
import json, sys
b = json.loads(open(sys.argv[1]).read())
epoch, lost = int(sys.argv[2]), int(sys.argv[3])
print("birth:", b)
bad = []
if not b.get("online"): bad.append("not a birth")
elif b["epoch"] != epoch: bad.append(f"epoch {b['epoch']}, the spool's is {epoch}")
else:
    if b["next_seq"] - b["queued"] != 1:
        bad.append(f"it says it holds {b['next_seq'] - b['queued']}..{b['next_seq'] - 1}, "
                   f"the spool holds 1..{lost - 1} (and {lost + 1}.. appended since)")
    if b["next_seq"] <= lost: bad.append(f"next_seq {b['next_seq']} reuses the lost {lost}")
if bad: sys.exit("\n".join(bad))
EOF
}
check_birth "$work/birth.json"

# 4. a resend request for the lost batch gets a new birth (retain flag 0:
# published now, not the retained one)
mosquitto_sub -h 127.0.0.1 -p "$port" -t "$topic/state" -F '%r %p' >"$work/states.txt" &
sub_pid=$!
pids+=("$sub_pid")
wait_for "the retained state" 10 grep -q '^1 ' "$work/states.txt"
mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t "$topic/ctl" \
  -m "{\"v\":1,\"cmd\":\"resend\",\"epoch\":$epoch,\"from_seq\":$last}"
wait_for "a birth in answer to the resend request" 10 grep -q '^0 {"v":1,"online":true' "$work/states.txt"
grep -m1 '^0 ' "$work/states.txt" | cut -d' ' -f2- >"$work/answer.json"
check_birth "$work/answer.json"
grep -q "resend from epoch $epoch seq $last: not held" "$work/agent.err" ||
  fail "the unfillable resend was not logged"

# 5. the lost seq was never reused for other content
stop_agent
spool >"$work/after.txt"
$PY - "$work/after.txt" "$epoch" "$last" <<'EOF'
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
epoch, lost = int(sys.argv[2]), int(sys.argv[3])
seqs = [s for e, s in rows if e == epoch]
if lost in seqs: sys.exit(f"seq {lost} was handed out again")
if seqs[:lost - 1] != list(range(1, lost)): sys.exit("batches before the lost one went missing")
if len(seqs) < lost or seqs[lost - 1] != lost + 1: sys.exit("no batch after the lost one")
print(f"spool after: 1..{lost - 1}, {lost + 1}..{seqs[-1]}")
EOF
grep "info: agent: .* batches spooled" "$work/agent.err" | tail -1
echo "agent_torn_spool: passed"
