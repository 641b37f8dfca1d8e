#!/usr/bin/env bash
# Benchmark (not a test): what a partial register map costs the agent on a
# 9600-baud RS-485 line, against the fewest requests the served map allows.
#
# configs/sim/partial-map.yaml's three answering meters (an SDM630 that refuses
# six registers and every hole, an ADL400 that refuses one register inside a
# coalesced read, a DTSU666 that serves all) on one socat pty pair, dcem-sim
# with RTU wire time on (docs/sim.md), polled by dcem-agent with poll_ms 100
# (a meter is always due) for SECONDS. Per meter it prints:
#   learning   requests of the first poll (from `dcem-agent --once --json`,
#              which learns the map afresh), the poll that finds the refusals;
#   per poll   the steady requests per poll: (requests - first) / (polls - 1)
#              from the agent's stats line at stop;
#   minimum    the fewest requests that fetch every served register within the
#              profile's limits, computed from the simulator's truth file
#              (tests/integration/modbus_plan.py, not the agent's planner);
#   one each   the baseline of a reader that gives up coalescing once refused:
#              one request per served register;
#   line ms    the line time per poll at the minimum and at one each, from
#              frame lengths (13 + 2n characters + 2 x 3.5 + turnaround each),
#              and the meter-polls/s measured on the shared line.
#
# Usage: scripts/bench/partial.sh [-d SECONDS] [-w WORKDIR]   (default 20 s)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/bench/lib.sh"
secs=20 work=
while getopts "d:w:h" opt; do
  case $opt in
  d) secs=$OPTARG ;;
  w) work=$OPTARG ;;
  *) sed -n 's/^# \{0,1\}//; /^Usage:/p' "$0" >&2; exit 2 ;;
  esac
done
[[ $secs =~ ^[0-9]+$ && $secs -ge 5 ]] || { echo "partial.sh: -d: at least 5 seconds" >&2; exit 2; }
build="$root/build/release"
baud=9600 turnaround=5

"$root/scripts/deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDCEM_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target dcem-agent dcem-sim >/dev/null
sim="$build/firmware/sim/dcem-sim"
agent="$build/firmware/agent/dcem-agent"

bench_work partial "$work"

socat pty,raw,echo=0,link="$work/tty0" pty,raw,echo=0,link="$work/tty1" 2>"$work/socat.err" &
pids+=($!)
wait_for "the pty pair" 10 test -e "$work/tty1"
"$sim" -c "$root/configs/sim/partial-map.yaml" --tcp none --rtu "$work/tty0" --baud $baud \
  --turnaround-ms $turnaround --truth "$work/truth.json" >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
pids+=("$sim_pid")
wait_for "dcem-sim ready" 10 grep -q '^ready' "$work/sim.out"
cat >"$work/agent.yaml" <<EOF
gateway: gw-bench
site: bench
profiles: $root/configs/meters
buses:
  - {name: rs485, rtu: "$work/tty1", baud: $baud, response_timeout_ms: 500, retries: 0}
devices:
  - {bus: rs485, unit: 1, profile: eastron-sdm630, meter: it-strict, poll_ms: 100}
  - {bus: rs485, unit: 2, profile: acrel-adl400, meter: cooling-noq, poll_ms: 100}
  - {bus: rs485, unit: 3, profile: chint-dtsu666, meter: pv-clean, poll_ms: 100}
mqtt: {uri: "tcp://127.0.0.1:1", version: 5}
spool: {dir: "$work/spool", max_mib: 64}
identity: {allow_unsigned: true}
EOF
# the first poll of each meter, as a fresh agent learns it
"$agent" -c "$work/agent.yaml" --once --json >"$work/once.json" 2>"$work/once.err" ||
  fail "--once failed: $(cat "$work/once.err")"
# steady polling (no broker: readings wait on the spool, which is not measured)
"$agent" -c "$work/agent.yaml" >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
pids+=("$agent_pid")
sleep "$secs"
kill -TERM "$agent_pid"
wait "$agent_pid" || true
kill -USR1 "$sim_pid"
wait_for "the truth file" 10 grep -q meters "$work/truth.json"

$PY - "$work" "$root" "$secs" "$baud" "$turnaround" <<'EOF'
import json, re, sys
w, root, secs, baud, turnaround = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
sys.path.insert(0, f"{root}/tests/integration")
from modbus_plan import minimum_plan, polled

char_ms = 10 * 1000 / baud                       # 8N1
silence_ms = 3.5 * char_ms if baud <= 19200 else 1.75

def line_ms(reads):                              # reads: register counts of each request
    return sum((8 + 5 + 2 * n) * char_ms + 2 * silence_ms + turnaround for n in reads)

once = {d["meter"]: d for d in json.load(open(f"{w}/once.json"))["devices"]}
truth = {m["id"]: m for m in json.load(open(f"{w}/truth.json"))["meters"]}
stats = {}
for line in open(f"{w}/agent.err"):
    m = re.search(r"poll: meter (\S+) .*: (\d+) polls, (\d+) ok, (\d+) failed; (\d+) requests", line)
    if m:
        stats[m.group(1)] = [int(x) for x in m.groups()[1:]]
print(f"dcem-agent on a {baud}-baud RS-485 line (dcem-sim, wire time on, turnaround {turnaround:g} ms),"
      f" configs/sim/partial-map.yaml, {secs:g} s of steady polling")
print(f"{'meter':<12} {'refused':<36} {'learning':>8} {'per poll':>9} {'minimum':>8} {'one each':>9}"
      f" {'line ms at min':>15} {'at one each':>12}")
total_polls = 0
cycle_ms = 0.0
missed = []
for meter in ("it-strict", "cooling-noq", "pv-clean"):
    t, d = truth[meter], once[meter]
    polls, ok, failed, req = stats[meter]
    total_polls += ok
    first = d["requests"]
    steady = (req - first) / (polls - 1)
    plan = minimum_plan(t, f"{root}/configs/meters/{t['profile']}.yaml")
    k = len(plan)
    regs = polled(t)
    one_each = len(regs)
    at_min = line_ms([n for _, _, n in plan])
    per_reg = line_ms([wd for _, _, wd in regs])
    cycle_ms += at_min
    refused = ",".join(t["refused"]) or "-"
    print(f"{meter:<12} {refused[:36]:<36} {first:>8} {steady:>9.2f} {k:>8} {one_each:>9}"
          f" {at_min:>15.1f} {per_reg:>12.1f}")
    if abs(steady - k) > 1e-9:
        missed.append(meter)
print(f"meter-polls/s on the shared line: {total_polls / secs:.2f} measured (the learning polls"
      f" included), {3000 / cycle_ms:.2f} at the minimum plans' line time, {3000 / sum(line_ms([wd for _, _, wd in polled(truth[m])]) for m in ('it-strict', 'cooling-noq', 'pv-clean')):.2f}"
      f" one register a request; every poll ok: {all(s[2] == 0 for s in stats.values())}")
print("target: per poll = minimum: " + ("met" if not missed else f"MISSED for {', '.join(missed)}"))
EOF
