#!/usr/bin/env bash
# Meters that serve only part of their profile's map, as real firmware does
# (docs/agent.md, "Partial register maps"):
#
#   agent_partial.sh BUILD_DIR SOURCE_DIR
#
# Two servers the agent shares nothing with but the wire:
#   dcem-sim with configs/sim/partial-map.yaml, once over Modbus TCP and once
#   over RTU on a pseudo-terminal (socat): an SDM630 without per-phase PF and
#   energy that refuses every read across a hole; an ADL400 that refuses one
#   register inside a coalesced read; a DTSU666 that serves everything; an
#   ADL400 that refuses its import counter;
#   pymodbus (Debian's python3-pymodbus, tests/integration/pymodbus_meter.py):
#   an SDM630 map without per-phase PF and energy, then swapped for one with
#   them ("new firmware").
# Proves:
#   1. --once delivers every partial meter's counter with status ok; the
#      registers it lists as unsupported are exactly those the server refuses;
#      the meter without its counter is comm_error naming 0x000A (40011);
#   2. polled for a while, every poll of a partial meter is ok and published
#      with its counter, and after the first poll every poll costs exactly the
#      fewest requests the served map allows (computed here from the truth
#      file's registers, refusals and holes, independently of the agent):
#      requests = first poll + (polls - 1) x minimum, and dcem-sim counted the
#      same requests; each refused register is logged once with its address;
#   3. against pymodbus: the same, and the map asked for again (map_retry_s)
#      finds the registers the new firmware serves; ADL400s behind CTs: the
#      ratio read from the meter is applied (primary = register x 0.01 x CT);
#      when the meter's CT register turns 0 the last good ratio stays and the
#      readings say "held"; a configured ratio wins over a register that says
#      otherwise and the readings say "mismatch".
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
sim=$build/firmware/sim/dcem-sim
agent=$build/firmware/agent/dcem-agent
for b in "$sim" "$agent"; do [[ -x $b ]] || fail "no $b"; done
command -v socat >/dev/null || fail "socat is not installed (scripts/deps.sh)"
$PY -c 'import pymodbus.server' 2>/dev/null || fail "python3-pymodbus is not usable (scripts/deps.sh)"
make_work agent-partial
started=$SECONDS

start_mosquitto
stdbuf -oL mosquitto_sub -p "$port" -v -t 'dcem/v1/#' >"$work/mqtt.log" 2>/dev/null &
pids+=($!)

# ---- dcem-sim over TCP, and over RTU on a pty pair ----
"$sim" -c "$src/configs/sim/partial-map.yaml" --tcp 127.0.0.1:0 --truth "$work/truth-tcp.json" \
  >"$work/sim-tcp.out" 2>"$work/sim-tcp.err" &
sim_tcp=$!
pids+=("$sim_tcp")
socat pty,raw,echo=0,link="$work/tty0" pty,raw,echo=0,link="$work/tty1" 2>"$work/socat.err" &
pids+=($!)
wait_for "the pty pair" 10 test -e "$work/tty1"
"$sim" -c "$src/configs/sim/partial-map.yaml" --tcp none --rtu "$work/tty0" --baud 38400 \
  --truth "$work/truth-rtu.json" >"$work/sim-rtu.out" 2>"$work/sim-rtu.err" &
sim_rtu=$!
pids+=("$sim_rtu")
wait_for "dcem-sim ready (tcp)" 10 grep -q '^ready' "$work/sim-tcp.out"
wait_for "dcem-sim ready (rtu)" 10 grep -q '^ready' "$work/sim-rtu.out"
sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim-tcp.out")

devices=""
for bus in tcp rtu; do
  devices+="  - {bus: $bus, unit: 1, profile: eastron-sdm630, meter: $bus-strict}
  - {bus: $bus, unit: 2, profile: acrel-adl400, meter: $bus-noq}
  - {bus: $bus, unit: 3, profile: chint-dtsu666, meter: $bus-clean}
  - {bus: $bus, unit: 4, profile: acrel-adl400, meter: $bus-noimport}
"
done
cat >"$work/agent.yaml" <<EOF
gateway: gw-partial
site: partial-site
profiles: $src/configs/meters
buses:
  - {name: tcp, tcp: "127.0.0.1:$sim_port", response_timeout_ms: 500, retries: 0}
  - {name: rtu, rtu: "$work/tty1", baud: 38400, response_timeout_ms: 500, retries: 0}
devices:
${devices%$'\n'}
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5, reconnect_max_ms: 1000}
spool: {dir: "$work/spool"}
identity: {allow_unsigned: true}
batch: {max_readings: 50, max_delay_ms: 200}
EOF

# ---- 1. --once: the first poll of each device, as the JSON document ----
rc=0
"$agent" -c "$work/agent.yaml" --once --json >"$work/once.json" 2>"$work/once.err" || rc=$?
((rc == 1)) || fail "--once exited $rc with a meter that refuses its counter (want 1)"

# ---- 2. polled for a while: every poll of a partial meter delivers ----
"$agent" -c "$work/agent.yaml" >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
pids+=("$agent_pid")
published() { (($(grep -c '"meter":"rtu-strict"' "$work/mqtt.log") >= 8)); }
wait_for "eight published polls of the RTU meters" 40 published
kill -TERM "$agent_pid"
wait "$agent_pid" || fail "dcem-agent exited with $?"
kill -USR1 "$sim_tcp" "$sim_rtu"
wait_for "the truth files" 10 test -s "$work/truth-tcp.json" -a -s "$work/truth-rtu.json"

# ---- 3. pymodbus: partial, then full firmware on the same port ----
pm_port=$(free_port)
start_pymodbus() { # MODE CT
  $PY "$src/tests/integration/pymodbus_meter.py" "$pm_port" "$1" "$2" >"$work/pymodbus-$1.out" \
    2>"$work/pymodbus-$1.err" &
  pm_pid=$!
  pids+=("$pm_pid")
  wait_for "pymodbus ($1)" 15 grep -q '^ready' "$work/pymodbus-$1.out"
}
start_pymodbus partial 200
cat >"$work/pm.yaml" <<EOF
gateway: gw-pymodbus
site: partial-site
profiles: $src/configs/meters
buses:
  - {name: pm, tcp: "127.0.0.1:$pm_port", response_timeout_ms: 1000, retries: 0}
devices:
  - {bus: pm, unit: 1, profile: eastron-sdm630, meter: pm-meter, poll_ms: 500, map_retry_s: 2}
  - {bus: pm, unit: 2, profile: acrel-adl400, meter: pm-ct, poll_ms: 500, ratio_every_s: 1}
  - {bus: pm, unit: 3, profile: acrel-adl400, meter: pm-mismatch, poll_ms: 500, ct_ratio: 400}
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5, reconnect_max_ms: 500}
spool: {dir: "$work/spool-pm"}
identity: {allow_unsigned: true}
batch: {max_readings: 10, max_delay_ms: 100}
EOF
"$agent" -c "$work/pm.yaml" --once --json >"$work/pm-once.json" 2>"$work/pm-once.err" ||
  fail "--once against pymodbus: $(cat "$work/pm-once.err")"
"$agent" -c "$work/pm.yaml" >"$work/pm-agent.out" 2>"$work/pm-agent.err" &
pm_agent=$!
pids+=("$pm_agent")
pm_polled() { (($(grep -c '"meter":"pm-meter"' "$work/mqtt.log") >= 4)); }
wait_for "four polls of the partial pymodbus meter" 20 pm_polled
kill -TERM "$pm_pid"
wait "$pm_pid" 2>/dev/null || true
start_pymodbus full 0
has_pf() { grep '"meter":"pm-meter"' "$work/mqtt.log" | grep -q '"power_factor_l1"'; }
wait_for "the per-phase power factor once the new firmware serves it" 20 has_pf
held() { (($(grep -o '"meter":"pm-ct"[^}]*"ratio":"held"' "$work/mqtt.log" | wc -l) >= 3)); }
wait_for "three readings at the held CT ratio" 20 held
kill -TERM "$pm_agent"
wait "$pm_agent" || fail "dcem-agent (pymodbus) exited with $?"

! grep -E "Sanitizer|runtime error" "$work"/*.err || fail "a sanitizer report in the logs"

$PY - "$work" "$src" <<'EOF'
import json, re, struct, sys

w, src = sys.argv[1:3]
bad = []

def check(ok, msg):
    if not ok:
        bad.append(msg)
    return ok

sys.path.insert(0, f"{src}/tests/integration")
from modbus_plan import minimum_requests

def agent_stats(path):
    out = {}
    for line in open(path):
        m = re.search(r"poll: meter (\S+) \(bus \S+ unit \d+\): (\d+) polls, (\d+) ok, (\d+) failed; (\d+) requests", line)
        if m:
            out[m.group(1)] = dict(zip(("polls", "ok", "failed", "requests"), map(int, m.groups()[1:])))
    return out

def published(meter):
    got = []
    for line in open(f"{w}/mqtt.log"):
        topic, _, payload = line.partition(" ")
        if not topic.endswith("/data"):
            continue
        for r in json.loads(payload)["readings"]:
            if r["meter"] == meter:
                got.append(r)
    return got

once = {d["meter"]: d for d in json.load(open(f"{w}/once.json"))["devices"]}
stats = agent_stats(f"{w}/agent.err")
log = open(f"{w}/agent.err").read()
for bus in ("tcp", "rtu"):
    truth = {m["id"]: m for m in json.load(open(f"{w}/truth-{bus}.json"))["meters"]}
    for kind, sim_id in (("strict", "it-strict"), ("noq", "cooling-noq"), ("clean", "pv-clean")):
        meter, t = f"{bus}-{kind}", truth[sim_id]
        d = once[meter]
        check(d["result"] == "ok", f"{meter}: --once {d['result']} {d.get('why')}")
        kwh = [v for v in d["values"] if v["quantity"] == "energy_import_kwh" and v["phase"] == 0]
        check(kwh and kwh[0]["status"] == "ok" and kwh[0]["value"] > 0, f"{meter}: no counter in --once {kwh}")
        unsupported = sorted(u["register"] for u in d["unsupported"])
        check(unsupported == sorted(t["refused"]), f"{meter}: unsupported {unsupported}, the meter refuses {t['refused']}")
        k = minimum_requests(t, f"{src}/configs/meters/{t['profile']}.yaml")
        s = stats.get(meter)
        if not check(s is not None, f"{meter}: no counters in the agent's log"):
            continue
        check(s["failed"] == 0 and s["ok"] == s["polls"] >= 8, f"{meter}: {s}")
        first = d["requests"]
        check(s["requests"] == first + (s["polls"] - 1) * k,
              f"{meter}: {s['requests']} requests in {s['polls']} polls; want the first poll's {first}"
              f" + {s['polls'] - 1} x {k}")
        check(t["stats"]["requests"] == first + s["requests"],
              f"{meter}: dcem-sim answered {t['stats']['requests']} requests, the agent sent {first} + {s['requests']}")
        pub = published(meter)
        check(pub and all(r["q"] == "ok" and "kwh" in r for r in pub),
              f"{meter}: a published poll without its counter: {[r for r in pub if r['q'] != 'ok' or 'kwh' not in r][:2]}")
        for name in t["refused"]:
            n = len(re.findall(rf"meter {meter} \(bus {bus} unit \d+\): register {name} \(fc \d, 0x[0-9A-F]{{4}} = \d+\) refused", log))
            check(n == 1, f"{meter}: the refusal of {name} logged {n} times")
        print(f"{meter}: {s['polls']} polls ok, first poll {first} requests, then {k} each;"
              f" unsupported {unsupported or 'none'}")
    d = once[f"{bus}-noimport"]
    check(d["result"] == "comm_error" and "0x000A = 40011" in d.get("why", ""),
          f"{bus}-noimport: {d['result']} {d.get('why')}")
    pub = published(f"{bus}-noimport")
    check(pub and all(r["q"] == "comm_error" and "kwh" not in r for r in pub), f"{bus}-noimport: {pub[:2]}")
    check(re.search(rf"meter {bus}-noimport \(bus {bus} unit 4\): energy counter energy_import \(fc 3, 0x000A = 40011\) refused", log),
          f"{bus}-noimport: the refused counter is not named in the log")

# ---- pymodbus ----
d = json.load(open(f"{w}/pm-once.json"))["devices"][0]
kwh = [v["value"] for v in d["values"] if v["quantity"] == "energy_import_kwh" and v["phase"] == 0]
want = struct.unpack(">f", struct.pack(">f", 12345.67))[0]
check(d["result"] == "ok" and kwh == [want], f"pymodbus --once: {d['result']} {kwh}")
uns = sorted(u["register"] for u in d["unsupported"])
check(uns == sorted(["pf_l1", "pf_l2", "pf_l3", "energy_import_l1", "energy_import_l2", "energy_import_l3"]),
      f"pymodbus: unsupported {uns}")
pub = published("pm-meter")
ok = [r for r in pub if r["q"] == "ok"]
check(all("kwh" in r and r["kwh"] == want for r in ok), "pymodbus: a poll without its counter")
check(all(r["q"] in ("ok", "comm_error") for r in pub), "pymodbus: a reading neither ok nor comm_error")
first_pf = next(i for i, r in enumerate(pub) if "power_factor_l1" in r.get("values", {}))
check(first_pf >= 4 and all("power_factor_l1" not in r.get("values", {}) for r in pub[:first_pf]),
      "pymodbus: per-phase PF before the new firmware")
check(pub[first_pf]["values"]["power_factor_l1"] == struct.unpack(">f", struct.pack(">f", 0.97))[0],
      f"pymodbus: PF L1 {pub[first_pf]['values']}")
print(f"pymodbus: {len(ok)} polls ok (counter {want}), unsupported {uns}; the new firmware's PF from poll {first_pf + 1}")

# ---- pymodbus ADL400s behind CTs ----
devs = {x["meter"]: x for x in json.load(open(f"{w}/pm-once.json"))["devices"]}
def counter(d):
    return [v["value"] for v in d["values"] if v["quantity"] == "energy_import_kwh" and v["phase"] == 0]
d = devs["pm-ct"]
check(d["result"] == "ok" and d["ratios"]["ct"] == 200 and d["ratios"]["ct_source"] == "register"
      and counter(d) == [1234.56 * 200], f"pm-ct --once: {d['ratios']} {counter(d)}")
d = devs["pm-mismatch"]
check(d["ratios"]["ct"] == 400 and d["ratios"]["ct_source"] == "config" and d["ratios"]["mismatch"]
      and counter(d) == [1234.56 * 400], f"pm-mismatch --once: {d['ratios']} {counter(d)}")
pub = [r for r in published("pm-ct") if r["q"] == "ok"]
held = [r for r in pub if r.get("ratio") == "held"]
check(pub and all(r["ct"] == 200 and r["kwh"] == 1234.56 * 200 for r in pub),
      f"pm-ct: a reading not at CT 200: {[r for r in pub if r['ct'] != 200][:2]}")
check(held and all("ratio" not in r for r in pub[:pub.index(held[0])]) and
      all(r.get("ratio") == "held" for r in pub[pub.index(held[0]):]),
      f"pm-ct: the CT register at 0 is not 'held' from then on: {[r.get('ratio') for r in pub]}")
pub = [r for r in published("pm-mismatch") if r["q"] == "ok"]
check(pub and all(r["ct"] == 400 and r.get("ratio") == "mismatch" and r["kwh"] == 1234.56 * 400 for r in pub),
      f"pm-mismatch: {pub[:2]}")
log = open(f"{w}/pm-agent.err").read()
check(log.count("configured ct_ratio 400 differs from the meter's register (200)") == 1,
      "pm-mismatch: the mismatch is not logged once")
check(log.count("a ratio register reads 0 or above") == 1, "pm-ct: the bad ratio register is not logged once")
print(f"pymodbus ADL400s: CT 200 from the register, then held at 200 when it read 0 ({len(held)} readings);"
      f" the configured 400 over a register's 200, flagged mismatch")

if bad:
    print("\n".join(bad))
    sys.exit(1)
EOF
echo "agent_partial.sh: passed in $((SECONDS - started)) s"
