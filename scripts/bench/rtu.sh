#!/usr/bin/env bash
# Benchmark (not a test): dcem-agent polling Eastron SDM630s over Modbus RTU
# as fast as a 9600-baud RS-485 line allows, against the line's physical
# limit computed from the frame lengths in the same run.
#
# Each bus is a socat pty pair with dcem-sim on one end (METERS x
# eastron-sdm630 on units 1..METERS, wire time on: every frame takes the
# time it would take on a real line, docs/sim.md "RTU timing") and the agent
# on the other. The agent polls every meter with poll_ms: 100, so some meter
# is always due and the line is never idle by schedule; it publishes to a
# mosquitto on a free loopback port, dcem-test-ack acknowledging and storing
# each reading with its time.
#
# The limit: per meter-poll, for each read of the profile (the fewest the
# profile's max_registers and max_gap allow: 76 and 10 registers for the
# SDM630), the request (8 characters), the silence after it (3.5
# characters; 1.75 ms above 19200 baud), the meter's turnaround, the answer
# (5 + 2 x registers characters) and the silence after it. A character is
# 1 start + 8 data + 1 parity bit unless N + stop bits. Meter-polls/s at the
# limit = 1 / that sum, whatever the number of meters.
#
# Measured: per bus, from the times of the readings dcem-test-ack stored
# (stamped by the agent when a meter's last read is answered): (ok readings
# - 1) / (last - first), which leaves out start-up and stop. The agent's
# per-device stats line at stop ("N polls, N ok, N failed; N requests, ...
# N timeouts ...") is checked: every poll ok, 2 requests each, no timeout,
# CRC error or exception, and the readings stored no more than the ok polls
# (those of the last second go to the spool's last batch at stop). Runs: 8N1 and 8E1 on one bus, then 8N1 on 2
# and 4 buses at once (one simulator and pty pair per bus; the agent runs a
# thread per bus), whose aggregate should be 2 and 4 times one bus.
#
# Usage: scripts/bench/rtu.sh [-d SECONDS] [-m METERS] [-t TURNAROUND_MS] [-p PAUSE_MS] [-w WORKDIR]
#   -d  seconds per run (default 25; four runs)
#   -m  meters per bus (default 4)
#   -t  the simulated meters' turnaround in ms (default 5, dcem-sim's)
#   -p  the agent's buses[].pause_ms (default 0, the agent's)
#   -w  work directory (default: a temp dir, removed on success)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/bench/lib.sh"
secs=25 meters=4 turnaround=5 pause=0 work=
while getopts "d:m:t:p:w:h" opt; do
  case $opt in
  d) secs=$OPTARG ;;
  m) meters=$OPTARG ;;
  t) turnaround=$OPTARG ;;
  p) pause=$OPTARG ;;
  w) work=$OPTARG ;;
  *)
    sed -n 's/^# \{0,1\}//; /^Usage:/,/^  -w/p' "$0" >&2
    exit 2
    ;;
  esac
done
[[ $secs =~ ^[0-9]+$ && $secs -ge 5 ]] || { echo "rtu.sh: -d: at least 5 seconds" >&2; exit 2; }
[[ $meters =~ ^[0-9]+$ && $meters -ge 1 && $meters -le 247 ]] || { echo "rtu.sh: -m: 1..247" >&2; exit 2; }
[[ $turnaround =~ ^[0-9]+$ && $turnaround -le 10000 ]] || { echo "rtu.sh: -t: 0..10000" >&2; exit 2; }
[[ $pause =~ ^[0-9]+$ && $pause -le 10000 ]] || { echo "rtu.sh: -p: 0..10000" >&2; exit 2; }
build="$root/build/release"
profile="$root/configs/meters/eastron-sdm630.yaml"
baud=9600

"$root/scripts/deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDCEM_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target dcem-agent dcem-sim dcem-test-ack >/dev/null
sim="$build/firmware/sim/dcem-sim"
agent="$build/firmware/agent/dcem-agent"
ack="$build/tests/dcem-test-ack"

bench_work rtu "$work"

# The reads of a meter-poll: the profile's registers sorted by (function,
# address), a read grown while the span stays within max_registers and the
# hole before the next register within max_gap (as scripts/bench/agent.sh,
# independently of the agent's planner). Prints the register count of each.
reads=$($PY - "$profile" <<'EOF'
import sys, yaml
p = yaml.safe_load(open(sys.argv[1]))
words = {"u16": 1, "s16": 1, "u32": 2, "s32": 2, "f32": 2, "u64": 4, "s64": 4, "f64": 4}
regs = sorted((r["function"], r["address"], words[r["type"]]) for r in p["registers"]
              if r["quantity"] not in ("ct_ratio", "pt_ratio"))
spans, cur = [], None  # cur: [function, start, end]
for f, a, w in regs:
    if cur and f == cur[0] and a <= cur[2] + p.get("max_gap", 0) and max(cur[2], a + w) - cur[1] <= p["max_registers"]:
        cur[2] = max(cur[2], a + w)
    else:
        cur = [f, a, a + w]
        spans.append(cur)
print(" ".join(str(e - s) for _, s, e in spans))
EOF
)
[[ -n $reads ]] || fail "cannot plan the reads of $profile"
n_reads=$(wc -w <<<"$reads")

# limit_ms PARITY: the line time of one meter-poll, in ms (see the header)
limit_ms() {
  awk -v baud="$baud" -v par="$1" -v ta="$turnaround" -v reads="$reads" 'BEGIN {
    bits = 1 + 8 + (par != "N") + 1; ch = bits * 1000 / baud
    sil = baud > 19200 ? 1.75 : 3.5 * ch
    n = split(reads, r, " ")
    for (i = 1; i <= n; i++) t += (8 + 5 + 2 * r[i]) * ch + 2 * sil + ta
    printf "%.4f", t }'
}

mqtt_port=$(free_port)
cat >"$work/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
EOF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=("$!")
wait_for "mosquitto on $mqtt_port" 10 port_open "$mqtt_port"

cat >"$work/scenario.yaml" <<EOF
name: bench-rtu
description: $meters SDM630s on one RTU line, for scripts/bench/rtu.sh
listen: {tcp: "", rtu: "", baud: $baud, turnaround_ms: $turnaround}
clock: {speed: 1}
meters:
  - {id: m, unit: 1, count: $meters, profile: eastron-sdm630, shape: it, rated_kw: 400}
EOF
"$sim" -c "$work/scenario.yaml" --check-config >/dev/null

# run NAME PARITY BUSES: one run; writes "polls/s ok-polls per-bus-polls/s..."
# to $work/NAME/figures (run in this shell, not a subshell: its processes
# are in pids for the cleanup)
run() {
  local name=$1 parity=$2 buses=$3 dir="$work/$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  local run_pids=() k u
  for ((k = 1; k <= buses; k++)); do
    socat "pty,raw,echo=0,link=$dir/tty-sim-$k" "pty,raw,echo=0,link=$dir/tty-agent-$k" \
      2>"$dir/socat-$k.err" &
    run_pids+=("$!")
    pids+=("$!")
  done
  for ((k = 1; k <= buses; k++)); do
    wait_for "socat pty pair $k" 10 test -e "$dir/tty-agent-$k" -a -e "$dir/tty-sim-$k"
    "$sim" -c "$work/scenario.yaml" --tcp none --rtu "$dir/tty-sim-$k" --parity "$parity" \
      >"$dir/sim-$k.out" 2>"$dir/sim-$k.err" &
    run_pids+=("$!")
    pids+=("$!")
  done
  for ((k = 1; k <= buses; k++)); do
    wait_for "dcem-sim $k ready" 10 grep -q '^ready' "$dir/sim-$k.out"
  done
  "$ack" --uri "tcp://127.0.0.1:$mqtt_port" --out "$dir/acked.jsonl" >"$dir/ack.out" 2>"$dir/ack.err" &
  local ack_pid=$!
  pids+=("$ack_pid")
  wait_for "dcem-test-ack ready" 10 grep -q '^ready' "$dir/ack.out"
  {
    echo "gateway: gw-$name"
    echo "site: bench"
    echo "profiles: $root/configs/meters"
    echo "log_level: info"
    echo "buses:"
    for ((k = 1; k <= buses; k++)); do
      echo "  - {name: bus-$k, rtu: \"$dir/tty-agent-$k\", baud: $baud, parity: $parity, response_timeout_ms: 500, retries: 1, pause_ms: $pause}"
    done
    echo "devices:"
    for ((k = 1; k <= buses; k++)); do
      for ((u = 1; u <= meters; u++)); do
        printf '  - {bus: bus-%d, unit: %d, profile: eastron-sdm630, meter: b%d-m%03d, poll_ms: 100}\n' \
          "$k" "$u" "$k" "$u"
      done
    done
    echo "mqtt: {uri: \"tcp://127.0.0.1:$mqtt_port\", version: 5}"
    echo "spool: {dir: \"$dir/spool\", fsync: never}"
    echo "identity: {allow_unsigned: true}"
    echo "batch: {max_readings: 250, max_delay_ms: 1000}"
  } >"$dir/agent.yaml"
  "$agent" -c "$dir/agent.yaml" --check-config >/dev/null
  echo "  $name: $buses bus(es) x $meters meters, 9600 8${parity}1, $secs s ..." >&2
  "$agent" -c "$dir/agent.yaml" >"$dir/agent.out" 2>"$dir/agent.err" &
  local agent_pid=$!
  pids+=("$agent_pid")
  sleep "$secs" # the run itself, not a readiness wait
  kill -0 "$agent_pid" || fail "dcem-agent died: $(tail -3 "$dir/agent.err")"
  kill -TERM "$agent_pid"
  wait "$agent_pid" || fail "dcem-agent exited with $?"
  # its last batch is on the spool; what it published before is acked
  # within a second: stop the acknowledger when the stored count settles
  local last=-1 n
  while n=$(wc -l <"$dir/acked.jsonl" 2>/dev/null || echo 0); [[ $n != "$last" ]]; do
    last=$n
    sleep 1
  done
  kill -TERM "$ack_pid"
  wait "$ack_pid" || true
  for p in "${run_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${run_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  # requests the agent began inside the 3.5-character silence after the
  # previous frame (dcem-sim starts them after it and counts them)
  local sim_req=0 sim_early=0 line re='stopped: ([0-9]+) requests,.* ([0-9]+) early RTU requests'
  for ((k = 1; k <= buses; k++)); do
    line=$(grep 'dcem-sim: stopped:' "$dir/sim-$k.err") || fail "no summary from dcem-sim $k"
    [[ $line =~ $re ]] || fail "cannot read: $line"
    sim_req=$((sim_req + BASH_REMATCH[1])) sim_early=$((sim_early + BASH_REMATCH[2]))
  done
  echo "$sim_req $sim_early" >"$dir/sim-figures"
  # the agent's own counters, per device, at stop
  (
  $PY - "$dir/agent.err" "$dir/acked.jsonl" "$buses" "$meters" "$n_reads" <<'EOF'
import collections, json, re, sys
err, acked, buses, meters, n_reads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
pat = re.compile(r"meter (\S+) \(bus (\S+) unit \d+\): (\d+) polls, (\d+) ok, (\d+) failed; "
                 r"(\d+) requests, (\d+) exceptions, (\d+) timeouts, (\d+) crc errors")
stats = {}
for line in open(err):
    m = pat.search(line)
    if m:
        stats[m.group(1)] = [int(x) for x in m.groups()[2:]]  # last line wins: the one at stop
if len(stats) != buses * meters:
    sys.exit(f"stats lines for {len(stats)} devices, not {buses * meters}")
polls = sum(s[0] for s in stats.values())
ok = sum(s[1] for s in stats.values())
failed = sum(s[2] for s in stats.values())
requests = sum(s[3] for s in stats.values())
bad = sum(s[4] + s[5] + s[6] for s in stats.values())
times = collections.defaultdict(list)
for l in open(acked):
    r = json.loads(l)
    if r["q"] == "ok":
        times[r["meter"].split("-")[0]].append(r["t"])
stored = sum(len(v) for v in times.values())
if failed or bad or ok != polls:
    sys.exit(f"{polls} polls, {ok} ok, {failed} failed, {bad} exceptions/timeouts/crc errors")
if requests != n_reads * polls:
    # a poll cut by the stop has sent fewer
    sys.exit(f"{requests} requests for {polls} polls, not {n_reads} each")
# the readings of the last second or so go into the spool's last batch at
# stop, unpublished: fewer stored than polled, never more
if not 0 < stored <= ok or stored < ok - 4 * buses * meters:
    sys.exit(f"{stored} readings stored, {ok} ok polls counted by the agent")
rates = []
for b in sorted(times):
    t = sorted(times[b])
    rates.append((len(t) - 1) / ((t[-1] - t[0]) / 1000))
print(f"{sum(rates):.4f}", ok, stored, " ".join(f"{r:.3f}" for r in rates))
EOF
  ) >"$dir/figures"
}

echo "dcem-agent over Modbus RTU at $baud baud: $meters x eastron-sdm630 per bus, reads of" \
  "$(sed 's/ / + /g' <<<"$reads") registers per meter-poll, turnaround $turnaround ms, $secs s per run" >&2
lim_n=$(limit_ms N)
lim_e=$(limit_ms E)
run 8n1 N 1
read -r r_n ok_n st_n _ <"$work/8n1/figures"
read -r req_n early_n <"$work/8n1/sim-figures"
run 8e1 E 1
read -r r_e ok_e st_e _ <"$work/8e1/figures"
run 8n1-x2 N 2
read -r r_2 ok_2 st_2 per_2 <"$work/8n1-x2/figures"
run 8n1-x4 N 4
read -r r_4 ok_4 st_4 per_4 <"$work/8n1-x4/figures"

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", 100 * a / b }'; }
max_n=$(awk -v l="$lim_n" 'BEGIN { printf "%.3f", 1000 / l }')
max_e=$(awk -v l="$lim_e" 'BEGIN { printf "%.3f", 1000 / l }')
echo "dcem-agent $("$agent" --version | cut -d' ' -f2), libmodbus $(pkg-config --modversion libmodbus);" \
  "dcem-sim with wire time on socat pty pairs; 9600 baud, turnaround $turnaround ms"
echo "reads per meter-poll: $(sed 's/ / + /g' <<<"$reads") registers; $meters meters per bus, poll_ms 100," \
  "pause_ms $pause, $secs s per run"
echo
printf '%-30s %12s %12s %12s %8s\n' "" "line ms/poll" "limit /s" "measured /s" "ratio"
printf '%-30s %12.2f %12.3f %12.3f %7s%%\n' "1 bus, 8N1 (10 bits/char)" "$lim_n" "$max_n" "$r_n" "$(pct "$r_n" "$max_n")"
printf '%-30s %12.2f %12.3f %12.3f %7s%%\n' "1 bus, 8E1 (11 bits/char)" "$lim_e" "$max_e" "$r_e" "$(pct "$r_e" "$max_e")"
for k in 2 4; do
  r=r_$k per=per_$k
  lim=$(awk -v m="$max_n" -v k="$k" 'BEGIN { printf "%.3f", m * k }')
  printf '%-30s %12s %12.3f %12.3f %7s%%   per bus: %s; %.2fx one bus\n' "$k buses in parallel, 8N1" "" "$lim" \
    "${!r}" "$(pct "${!r}" "$lim")" "$(sed 's/ /, /g' <<<"${!per}")" "$(awk -v a="${!r}" -v b="$r_n" 'BEGIN { printf "%.2f", a / b }')"
done
echo "meter-polls per run, all ok, 0 timeouts/CRC errors/exceptions (agent's stats lines): $ok_n, $ok_e, $ok_2, $ok_4;"
echo "  readings stored (the rest went to the spool's last batch at stop): $st_n, $st_e, $st_2, $st_4"
echo "requests begun inside the 3.5-character silence after an answer (dcem-sim, 1 bus 8N1):" \
  "$early_n of $req_n"
echo
verdict() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }' && echo met || echo MISSED; }
for run in "8N1:$r_n:$max_n" "8E1:$r_e:$max_e"; do
  IFS=: read -r what r m <<<"$run"
  printf 'target: >= 90%% of the physical limit, %s: %s (%s%%)\n' "$what" \
    "$(verdict "$(pct "$r" "$m")" 90)" "$(pct "$r" "$m")"
done
for k in 2 4; do
  r=r_$k
  printf 'target: %d buses ~ %d x one bus (>= 90%% of %d x %.3f): %s (%.2fx)\n' "$k" "$k" "$k" "$r_n" \
    "$(verdict "${!r}" "$(awk -v a="$r_n" -v k="$k" 'BEGIN { print 0.9 * k * a }')")" \
    "$(awk -v a="${!r}" -v b="$r_n" 'BEGIN { printf "%.2f", a / b }')"
done
