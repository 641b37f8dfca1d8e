#!/usr/bin/env bash
# Benchmark (not a test): dcem-agent polling 64 simulated Eastron SDM630
# meters over Modbus TCP on loopback (dcem-sim with configs/sim/bench-64.yaml,
# unit ids 1..64 behind one port) every second, publishing to a local
# mosquitto with dcem-test-ack acknowledging, twice: as a lab (unsigned
# batches and acks) and signed (the agent signs every batch with its key,
# dcem-test-ack signs every ack with a collector key, the agent verifies
# each against identity.collector_keys). Prints its figures next to the
# baseline measured in the same run: collectd 5.12 (Debian collectd-core) with
# its modbus plugin reading the same registers of the same 64 meters every
# second and its mqtt plugin publishing them to the same broker.
#
# Figures, for each of the two (each gets a fresh simulator):
#   - Modbus requests per cycle: the simulator's request counter (its summary
#     line at exit) / (meter-polls / 64). A meter-poll is one full set of the
#     profile's values delivered to the broker: one dcem reading of quality
#     ok, or as many collectd values as the profile has registers. The
#     minimum is the number of reads the profile's own limits allow
#     (max_registers, max_gap), computed below from the profile file;
#   - cycle duration: per cycle (the k-th poll of every meter), the last
#     meter's poll time minus the first's (dcem: the readings' t; collectd:
#     the time of each meter's last value in that poll);
#   - CPU seconds (utime + stime from /proc/PID/stat) per 1000 meter-polls;
#   - peak RSS (VmHWM from /proc/PID/status), read just before the stop;
#   - the signatures' cost: the signed agent's CPU per meter-poll against
#     the lab agent's; when perf is installed, the share of the signed
#     agent's CPU samples inside dcem_sign_payload and dcem_sig_verify
#     (both runs sampled alike); and dcem-sig-bench's CPU µs for one
#     signature of a batch and one verification of an ack.
# The measured program runs pinned to core 0, the simulator, broker and
# subscriber to core 1. To count exactly the polls that the counted requests
# served, the simulator is stopped first (its counter is final), the
# readings polled before are left to arrive, then the program is stopped.
#
# Usage: scripts/bench/agent.sh [seconds] [workdir]   (defaults: 60, a temp dir)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/bench/lib.sh"
secs=${1:-60}
work=${2:-}
build="$root/build/release"
profile="$root/configs/meters/eastron-sdm630.yaml"
scenario="$root/configs/sim/bench-64.yaml"
meters=64

"$root/scripts/deps.sh"
# collectd is only this benchmark's baseline, not a dcem dependency, so it is
# installed here rather than listed in deps.sh. collectd-core ships no
# /etc/collectd/collectd.conf, so its systemd unit (ConditionPathExists) does
# not start a system collectd behind our back.
if [[ ! -x /usr/sbin/collectd || ! -e /usr/lib/collectd/modbus.so || ! -e /usr/lib/collectd/mqtt.so ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "agent.sh: the baseline needs collectd-core: sudo apt-get install collectd-core" >&2
    exit 1
  fi
  echo "agent.sh: installing collectd-core (the baseline)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends collectd-core >/dev/null
fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDCEM_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target dcem-agent dcem-sim dcem-test-ack \
  dcem-sig-bench >/dev/null
sim="$build/firmware/sim/dcem-sim"
agent="$build/firmware/agent/dcem-agent"
ack="$build/tests/dcem-test-ack"
sigbench="$build/tests/dcem-sig-bench"

bench_work agent "$work"
# a spool or readings left from an earlier run would be counted again
rm -rf "$work"/spool-* "$work/collectd" "$work"/acked-*.jsonl "$work/collectd.msgs" "$work/collectd.log"
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
le() { awk "BEGIN { exit !($1 <= $2) }"; }
lt() { awk "BEGIN { exit !($1 < $2) }"; }
# cpu_s PID: user + system CPU seconds of the whole process (all threads).
# The fields after the ")" of the command name: utime and stime are 12 and 13.
cpu_s() {
  local stat
  stat=$(<"/proc/$1/stat")
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }' <<<"${stat##*) }"
}
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# The minimum: the profile's registers sorted by (function, address), each
# request grown while the next register keeps the span within max_registers
# and the hole before it within max_gap. Greedy is optimal here: the first
# request must hold the lowest register, and taking in every register that
# still fits can only shorten what is left. Independent of the agent's
# planner (common/profile.c), which it checks. Prints: registers reads.
read -r n_regs min_reads < <($PY - "$profile" <<'EOF'
import sys, yaml
p = yaml.safe_load(open(sys.argv[1]))
words = {"u16": 1, "s16": 1, "u32": 2, "s32": 2, "f32": 2, "u64": 4, "s64": 4, "f64": 4}
regs = sorted((r["function"], r["address"], words[r["type"]]) for r in p["registers"])
reads, cur = 0, None  # cur: (function, start, end)
for f, a, w in regs:
    if cur and f == cur[0] and a <= cur[2] + p["max_gap"] and max(cur[2], a + w) - cur[1] <= p["max_registers"]:
        cur = (f, cur[1], max(cur[2], a + w))
    else:
        reads += 1
        cur = (f, a, a + w)
print(len(regs), reads)
EOF
)
[[ -n ${min_reads:-} ]] || fail "cannot plan the reads of $profile"
min_cycle=$((min_reads * meters))

mqtt_port=$(free_port)
cat >"$work/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
EOF
taskset -c 1 mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
broker_pid=$!
pids+=("$broker_pid")
wait_for "mosquitto on $mqtt_port" 10 port_open "$mqtt_port"

# start_sim NAME: a fresh simulator; sets sim_pid and sim_port
start_sim() {
  taskset -c 1 "$sim" -c "$scenario" --tcp 127.0.0.1:0 >"$work/$1-sim.out" 2>"$work/$1-sim.err" &
  sim_pid=$!
  pids+=("$sim_pid")
  wait_for "dcem-sim ready" 10 grep -q '^ready' "$work/$1-sim.out"
  sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/$1-sim.out")
}
# stop_sim NAME: stops it; sets sim_requests, sim_conns, sim_refused and
# sim_unknown from its summary line
stop_sim() {
  kill -TERM "$sim_pid"
  wait "$sim_pid" || fail "dcem-sim exited with $?"
  local line
  line=$(grep 'dcem-sim: stopped:' "$work/$1-sim.err") || fail "no summary from dcem-sim"
  local re='stopped: ([0-9]+) requests, ([0-9]+) connections \(([0-9]+) refused\).* ([0-9]+) for unknown'
  [[ $line =~ $re ]] || fail "cannot read: $line"
  sim_requests=${BASH_REMATCH[1]} sim_conns=${BASH_REMATCH[2]}
  sim_refused=${BASH_REMATCH[3]} sim_unknown=${BASH_REMATCH[4]}
}

echo "$meters x eastron-sdm630 over Modbus TCP on loopback, polled every 1 s for $secs s;" \
  "$n_regs registers per meter" >&2

# ---- dcem-agent, unsigned (a lab) and signed ----
# Signed: the agent signs every batch, birth and metrics message with its
# key and obeys only acks that verify against collector_keys; dcem-test-ack
# signs its acks with the collector's key (it does not verify batches: its
# CPU is not measured). Unsigned: identity.allow_unsigned on the agent,
# unsigned acks. When perf is installed, both runs are sampled alike (call
# graphs), so that its overhead falls on both, and the signed run's share
# of samples inside dcem_sign_payload and dcem_sig_verify is printed.
mkdir -p "$work/keys"
key_of() { # key_of PROGRAM FILE: the public key of FILE, made first if need be
  if [[ -s $2 ]]; then "$1" --pubkey "$2"; else "$1" --keygen "$2"; fi
}
key_of "$agent" "$work/keys/gw-bench.pem" >/dev/null
collector_key=$(key_of "$agent" "$work/keys/collector.pem")
have_perf=0
command -v perf >/dev/null && have_perf=1
declare -A a_polls a_per_meter_min a_per_meter_max a_cycle_med a_cycle_max a_cpu a_rss a_errors
declare -A a_requests a_conns a_refused a_unknown a_batches a_perf_sign a_perf_verify a_perf_samples

# run_agent MODE: one run of dcem-agent against a fresh simulator; its
# figures go into the a_* arrays under MODE
run_agent() {
  local mode=$1 acked="$work/acked-$1.jsonl" ack_key=() identity="{allow_unsigned: true}"
  if [[ $mode == signed ]]; then
    ack_key=(--key "$work/keys/collector.pem")
    identity="{key_file: \"$work/keys/gw-bench.pem\", collector_keys: [\"$collector_key\"]}"
  fi
  start_sim "agent-$mode"
  taskset -c 1 "$ack" --uri "tcp://127.0.0.1:$mqtt_port" --out "$acked" "${ack_key[@]}" \
    >"$work/ack-$mode.out" 2>"$work/ack-$mode.err" &
  ack_pid=$!
  pids+=("$ack_pid")
  wait_for "dcem-test-ack ready" 10 grep -q '^ready' "$work/ack-$mode.out"
  {
    echo "gateway: gw-bench"
    echo "site: bench"
    echo "profiles: $root/configs/meters"
    echo "log_level: info"
    echo "buses:"
    echo "  - {name: tcp-1, tcp: \"127.0.0.1:$sim_port\", response_timeout_ms: 500, retries: 1}"
    echo "devices:"
    for ((u = 1; u <= meters; u++)); do
      printf '  - {bus: tcp-1, unit: %d, profile: eastron-sdm630, meter: rack-%02d, poll_ms: 1000}\n' "$u" "$u"
    done
    echo "mqtt: {uri: \"tcp://127.0.0.1:$mqtt_port\", version: 5}"
    echo "spool: {dir: \"$work/spool-$mode\", fsync: always}"
    echo "identity: $identity"
    echo "batch: {max_readings: 250, max_delay_ms: 1000}"
  } >"$work/agent-$mode.yaml"
  "$agent" -c "$work/agent-$mode.yaml" --check-config >/dev/null
  echo "dcem-agent, $mode: running for $secs s ..." >&2
  taskset -c 0 "$agent" -c "$work/agent-$mode.yaml" >"$work/agent-$mode.out" \
    2>"$work/agent-$mode.err" &
  agent_pid=$!
  pids+=("$agent_pid")
  local perf_pid=
  if ((have_perf)); then
    perf record -F 999 --call-graph dwarf -p "$agent_pid" -o "$work/perf-$mode.data" \
      2>"$work/perf-$mode.err" &
    perf_pid=$!
    pids+=("$perf_pid")
  fi
  sleep "$secs" # the run itself, not a readiness wait
  # Stop the simulator half a second after a cycle's last reading, when the
  # agent is idle, so that no poll is cut between its reads (cycles are
  # periodic on the agent's monotonic clock).
  sleep "$($PY - "$acked" <<'EOF'
import json, sys, time
last = max(json.loads(l)["t"] for l in open(sys.argv[1]) if '"q":"ok"' in l)
now = time.time() * 1000
at = last + 500
while at < now + 50:
    at += 1000
print(f"{(at - now) / 1000:.3f}")
EOF
)"
  kill -0 "$agent_pid" || fail "dcem-agent ($mode) died: $(tail -3 "$work/agent-$mode.err")"
  [[ $(<"/proc/$agent_pid/comm") == dcem-agent ]] || fail "pid $agent_pid is not dcem-agent"
  if [[ -n $perf_pid ]]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" || true # 130: stopped by the SIGINT
  fi
  a_cpu[$mode]=$(cpu_s "$agent_pid")
  a_rss[$mode]=$(hwm_kb "$agent_pid")
  a_errors[$mode]=$(grep -c '^\(warn\|error\):' "$work/agent-$mode.err" || true)
  stop_sim "agent-$mode"
  a_requests[$mode]=$sim_requests a_conns[$mode]=$sim_conns a_refused[$mode]=$sim_refused
  a_unknown[$mode]=$sim_unknown
  # every meter's first failed poll after the stop has arrived: so has every
  # reading polled before it (batches are stored in order)
  all_failed() {
    $PY - "$acked" "$meters" <<'EOF'
import json, sys
failed = {json.loads(l)["meter"] for l in open(sys.argv[1]) if '"q":"comm_error"' in l}
sys.exit(len(failed) < int(sys.argv[2]))
EOF
  }
  wait_for "the agent's last readings" 30 all_failed
  kill -TERM "$agent_pid"
  wait "$agent_pid" || fail "dcem-agent ($mode) exited with $?"
  kill -TERM "$ack_pid"
  wait "$ack_pid" || true
  grep -q '"malformed":0' "$work/ack-$mode.out" || fail "dcem-test-ack saw malformed batches"
  a_batches[$mode]=$(sed -n 's/.*"stored":\([0-9]*\).*/\1/p' "$work/ack-$mode.out")
  if grep -q 'no collector key verifies' "$work/agent-$mode.err"; then
    fail "the $mode agent ignored acks: $(grep -m1 'no collector key' "$work/agent-$mode.err")"
  fi

  local figures
  figures=$($PY - "$acked" "$meters" <<'EOF'
import json, sys, collections, statistics
meters = int(sys.argv[2])
by = collections.defaultdict(list)
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["q"] == "ok":
        by[r["meter"]].append(r["t"])
if len(by) != meters:
    sys.exit(f"readings from {len(by)} meters, not {meters}")
n = [len(v) for v in by.values()]
cycles = [max(v[k] for v in by.values()) - min(v[k] for v in by.values()) for k in range(min(n))]
print(sum(n), min(n), max(n), f"{statistics.median(cycles):.0f}", max(cycles))
EOF
  ) || fail "cannot count the agent's readings in $acked"
  read -r a_polls[$mode] a_per_meter_min[$mode] a_per_meter_max[$mode] a_cycle_med[$mode] \
    a_cycle_max[$mode] <<<"$figures"

  if [[ -n $perf_pid ]]; then
    perf report -i "$work/perf-$mode.data" --children --sort symbol --stdio -g none 2>/dev/null \
      >"$work/perf-$mode.txt"
    share() { awk -v f="$1" '$3 == "[.]" && $4 == f { print $1 + 0; found = 1; exit } END { if (!found) print 0 }' \
      "$work/perf-$mode.txt"; }
    a_perf_sign[$mode]=$(share dcem_sign_payload)
    a_perf_verify[$mode]=$(share dcem_sig_verify)
    a_perf_samples[$mode]=$(perf report -i "$work/perf-$mode.data" --no-children --sort comm \
      --stdio -g none -n 2>/dev/null | awk '$1 ~ /%$/ && $2 ~ /^[0-9]+$/ { n += $2 } END { print n + 0 }')
  fi
}

run_agent unsigned
run_agent signed

# ---- collectd 5.12 ----
# One <Data> per profile register (collectd reads each with its own request;
# it has no coalescing), one <Host> per meter with its unit id as <Slave>.
# Its mqtt plugin publishes QoS 0, its default: the publisher has no network
# loop to take QoS 1 acknowledgements (src/mqtt.c), one message per value.
start_sim collectd
mkdir -p "$work/collectd"
$PY - "$profile" "$meters" "$sim_port" "$mqtt_port" "$work" >"$work/collectd.conf" <<'EOF'
import sys, yaml
profile, meters, sim_port, mqtt_port, work = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
p = yaml.safe_load(open(profile))
ctype = {("f32", "ABCD"): "Float", ("f32", "CDAB"): "FloatLE", ("u16", "ABCD"): "Uint16",
         ("s16", "ABCD"): "Int16", ("u32", "ABCD"): "Uint32", ("u32", "CDAB"): "Uint32LE",
         ("s32", "ABCD"): "Int32", ("s32", "CDAB"): "Int32LE", ("u64", "ABCD"): "Uint64",
         ("s64", "ABCD"): "Int64"}
dtype = {"voltage_v": "voltage", "current_a": "current", "power_kw": "power",
         "frequency_hz": "frequency", "energy_import_kwh": "energy",
         "energy_export_kwh": "energy", "energy_total_kwh": "energy"}
print(f'''Hostname "dcem-bench"
FQDNLookup false
BaseDir "{work}/collectd"
PIDFile "{work}/collectd/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval 1
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "{work}/collectd.log"
  Timestamp true
  PrintSeverity true
</Plugin>
LoadPlugin modbus
LoadPlugin mqtt
<Plugin mqtt>
  <Publish "bench">
    Host "127.0.0.1"
    Port "{mqtt_port}"
    ClientId "collectd-bench"
    Prefix "collectd"
    QoS 0
  </Publish>
</Plugin>
<Plugin modbus>''')
for r in p["registers"]:
    kind = ctype[(r["type"], r.get("order", "ABCD"))]
    fc = {3: "ReadHolding", 4: "ReadInput"}[r["function"]]
    print(f'''  <Data "{r["name"]}">
    RegisterBase {r["address"]}
    RegisterType {kind}
    RegisterCmd {fc}
    Type {dtype.get(r["quantity"], "gauge")}
    Instance "{r["name"]}"
    Scale {r.get("scale", 1)}
  </Data>''')
for u in range(1, meters + 1):
    print(f'''  <Host "rack-{u:02d}">
    Address "127.0.0.1"
    Port "{sim_port}"
    Interval 1
    <Slave {u}>
      Instance "sdm630"''')
    for r in p["registers"]:
        print(f'      Collect "{r["name"]}"')
    print("    </Slave>\n  </Host>")
print("</Plugin>")
EOF
collectd -t -C "$work/collectd.conf" || fail "collectd rejects $work/collectd.conf"
# a subscriber counts what collectd publishes; ready when it sees a probe
taskset -c 1 mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -t 'collectd/#' -v \
  >"$work/collectd.msgs" 2>"$work/sub.err" &
sub_pid=$!
pids+=("$sub_pid")
sub_ready() {
  mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -t collectd/probe -m 0 &&
    grep -q '^collectd/probe' "$work/collectd.msgs"
}
wait_for "mosquitto_sub subscribed" 10 sub_ready
echo "collectd: running for $secs s ..." >&2
taskset -c 0 collectd -f -C "$work/collectd.conf" >"$work/collectd.out" 2>&1 &
cd_pid=$!
pids+=("$cd_pid")
sleep "$secs" # the run itself
kill -0 "$cd_pid" || fail "collectd died: $(tail -3 "$work/collectd.log")"
[[ $(<"/proc/$cd_pid/comm") == collectd ]] || fail "pid $cd_pid is not collectd"
c_cpu=$(cpu_s "$cd_pid")
c_rss=$(hwm_kb "$cd_pid")
c_errors=$(grep -c '\[\(warning\|error\)\]' "$work/collectd.log" || true)
stop_sim collectd
c_requests=$sim_requests c_conns=$sim_conns c_refused=$sim_refused c_unknown=$sim_unknown
# collectd publishes as it reads: done when the count stops growing
msgs_settled() {
  local n
  n=$(wc -l <"$work/collectd.msgs")
  [[ $n == "${last_n:-}" ]] && return 0
  last_n=$n
  sleep 1
  return 1
}
wait_for "collectd's last values" 30 msgs_settled
kill -TERM "$cd_pid"
wait "$cd_pid" || true
kill -TERM "$sub_pid"
wait "$sub_pid" || true

read -r c_polls c_per_meter_min c_per_meter_max c_cycle_med c_cycle_max < <(
  $PY - "$work/collectd.msgs" "$meters" "$n_regs" <<'EOF'
import sys, collections, statistics
meters, n_regs = int(sys.argv[2]), int(sys.argv[3])
times = collections.defaultdict(list)  # host -> value times
for l in open(sys.argv[1]):
    topic, _, payload = l.partition(" ")
    parts = topic.split("/")
    if len(parts) != 4 or not parts[2].startswith("modbus-"):
        continue
    times[parts[1]].append(float(payload.split(":")[0]))
if len(times) != meters:
    sys.exit(f"values from {len(times)} meters, not {meters}")
values = sum(len(v) for v in times.values())
ends = {}  # host -> end of each poll: a poll's values come within ms, polls 1 s apart
for h, ts in times.items():
    ts.sort()
    e = []
    for a, b in zip(ts, ts[1:] + [float("inf")]):
        if b - a > 0.5:
            e.append(a)
    ends[h] = e
n = [len(e) for e in ends.values()]
cycles = [1000 * (max(e[k] for e in ends.values()) - min(e[k] for e in ends.values()))
          for k in range(min(n))]
print(f"{values / n_regs:.2f}", min(n), max(n), f"{statistics.median(cycles):.0f}",
      f"{max(cycles):.0f}")
EOF
)
[[ -n ${c_cycle_max:-} ]] || fail "cannot count collectd's values in $work/collectd.msgs"

# ---- figures ----
# the agent's targets are judged on the signed agent (the shipped
# configuration); the lab agent is the reference for the signatures' cost
c_rpc=$(calc "$c_requests / ($c_polls / $meters)")
c_cpk=$(calc "$c_cpu / $c_polls * 1000")
declare -A a_rpc a_cpk
for m in unsigned signed; do
  a_rpc[$m]=$(calc "${a_requests[$m]} / (${a_polls[$m]} / $meters)")
  a_cpk[$m]=$(calc "${a_cpu[$m]} / ${a_polls[$m]} * 1000")
done
# what one signature costs alone: a batch of about one cycle's readings
# signed, an ack (a payload of a few dozen bytes, here the smallest batch)
# verified
sig_line=$("$sigbench" --readings 1 --readings "$meters") || fail "dcem-sig-bench: $sig_line"
sign_us=$(sed -n "s/^readings=$meters .*\\bsign_us=\\([^ ]*\\).*/\\1/p" <<<"$sig_line")
sign_bytes=$(sed -n "s/^readings=$meters .*\\bbytes=\\([^ ]*\\).*/\\1/p" <<<"$sig_line")
verify_us=$(sed -n 's/^readings=1 .*\bverify_us=\([^ ]*\).*/\1/p' <<<"$sig_line")
d_cpu=$(calc "(${a_cpk[signed]} - ${a_cpk[unsigned]}) / ${a_cpk[unsigned]} * 100")
# batches signed and acks verified, at the micro figures, against the
# signed agent's CPU
est=$(calc "${a_batches[signed]} * ($sign_us + $verify_us) / 1e6 / ${a_cpu[signed]} * 100")

echo "$meters x eastron-sdm630 ($n_regs registers) over Modbus TCP on loopback, 1 s interval, $secs s;"
echo "dcem-agent $("$agent" --version | cut -d' ' -f2), collectd-core $(dpkg-query -W -f='${Version}' collectd-core)," \
  "$(openssl version | cut -d' ' -f1-2);"
echo "measured program on core 0, simulator/broker/subscriber/acknowledger on core 1"
echo "minimum reads per meter-poll (max_registers, max_gap of the profile): $min_reads -> $min_cycle per cycle"
echo
printf '%-34s %14s %14s %14s\n' "" "dcem-agent lab" "dcem-agent" "collectd 5.12"
printf '%-34s %14s %14s %14s\n' "" "(unsigned)" "(signed)" ""
printf '%-34s %14d %14d %14.0f\n' "meter-polls delivered" "${a_polls[unsigned]}" "${a_polls[signed]}" "$c_polls"
printf '%-34s %14s %14s %14s\n' "  per meter (min-max)" \
  "${a_per_meter_min[unsigned]}-${a_per_meter_max[unsigned]}" \
  "${a_per_meter_min[signed]}-${a_per_meter_max[signed]}" "$c_per_meter_min-$c_per_meter_max"
printf '%-34s %14d %14d %14d\n' "Modbus requests (simulator)" "${a_requests[unsigned]}" \
  "${a_requests[signed]}" "$c_requests"
printf '%-34s %14.1f %14.1f %14.1f\n' "requests per cycle" "${a_rpc[unsigned]}" "${a_rpc[signed]}" "$c_rpc"
printf '%-34s %14s %14s %14s\n' "cycle, first to last meter (ms)" \
  "${a_cycle_med[unsigned]} med ${a_cycle_max[unsigned]} max" \
  "${a_cycle_med[signed]} med ${a_cycle_max[signed]} max" "$c_cycle_med med $c_cycle_max max"
printf '%-34s %14d %14d %14s\n' "batches acked" "${a_batches[unsigned]}" "${a_batches[signed]}" "-"
printf '%-34s %14.2f %14.2f %14.2f\n' "CPU seconds" "${a_cpu[unsigned]}" "${a_cpu[signed]}" "$c_cpu"
printf '%-34s %14.3f %14.3f %14.3f\n' "CPU s per 1000 meter-polls" "${a_cpk[unsigned]}" \
  "${a_cpk[signed]}" "$c_cpk"
printf '%-34s %14d %14d %14d\n' "peak RSS (KiB)" "${a_rss[unsigned]}" "${a_rss[signed]}" "$c_rss"
printf '%-34s %14d %14d %14d\n' "TCP connections to the simulator" "${a_conns[unsigned]}" \
  "${a_conns[signed]}" "$c_conns"
printf '%-34s %14s %14s %14s\n' "refused conns / unknown-unit reqs" \
  "${a_refused[unsigned]} / ${a_unknown[unsigned]}" "${a_refused[signed]} / ${a_unknown[signed]}" \
  "$c_refused / $c_unknown"
printf '%-34s %14d %14d %14d\n' "warnings+errors logged before stop" "${a_errors[unsigned]}" \
  "${a_errors[signed]}" "$c_errors"
echo
echo "one signature alone (dcem-sig-bench, CPU µs): dcem_sign_payload of a batch of $meters readings" \
  "($sign_bytes bytes) $sign_us, dcem_sig_verify of an ack $verify_us"
printf 'signed - unsigned, agent CPU per meter-poll: %+.1f%%; one signature and one verification per batch acked at the figures above: %.1f%% of the signed agent'"'"'s CPU\n' \
  "$d_cpu" "$est"
if ((have_perf)); then
  printf 'signed agent under perf record (%s samples over the run), inclusive share of its CPU: dcem_sign_payload %.1f%%, dcem_sig_verify %.1f%%: %.1f%% in all\n' \
    "${a_perf_samples[signed]}" "${a_perf_sign[signed]}" "${a_perf_verify[signed]}" \
    "$(calc "${a_perf_sign[signed]} + ${a_perf_verify[signed]}")"
fi
echo
verdict() { if le "$1" "$2"; then echo met; else echo MISSED; fi; }
s_rpc=${a_rpc[signed]} s_cpk=${a_cpk[signed]} s_rss=${a_rss[signed]}
if ((have_perf)); then
  sig_pct=$(calc "${a_perf_sign[signed]} + ${a_perf_verify[signed]}") sig_how="perf"
else
  sig_pct=$d_cpu sig_how="signed - unsigned CPU per meter-poll"
fi
printf 'target: signing and verifying < 5%% of the agent'"'"'s CPU: %s (%.1f%%, %s)\n' \
  "$(lt "$sig_pct" 5 && echo met || echo MISSED)" "$sig_pct" "$sig_how"
printf 'target: requests per cycle at the minimum (%d): %s (%.1f; %d requests beyond the plan)\n' \
  "$min_cycle" "$(verdict "$s_rpc" "$(calc "$min_cycle + 0.05")")" "$s_rpc" \
  "$((a_requests[signed] - min_reads * a_polls[signed]))"
printf 'target: requests per cycle <= 1/6 of collectd (%.1f): %s (1/%.1f)\n' \
  "$(calc "$c_rpc / 6")" "$(verdict "$s_rpc" "$(calc "$c_rpc / 6")")" "$(calc "$c_rpc / $s_rpc")"
printf 'target: CPU per meter-poll <= 1/3 of collectd (%.3f s/1000): %s (1/%.1f)\n' \
  "$(calc "$c_cpk / 3")" "$(verdict "$s_cpk" "$(calc "$c_cpk / 3")")" "$(calc "$c_cpk / $s_cpk")"
printf 'target: peak RSS <= collectd (%d KiB): %s (%.2fx)\n' \
  "$c_rss" "$(verdict "$s_rss" "$c_rss")" "$(calc "$s_rss / $c_rss")"
