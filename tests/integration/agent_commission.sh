#!/usr/bin/env bash
# Commissioning with dcem-agent (docs/agent.md, "Commissioning a meter"):
# --once and --check-config against dcem-sim on loopback, and the words the
# agent finds for a broker it cannot reach.
#
#   agent_commission.sh BUILD_DIR SOURCE_DIR
#
# Proves:
#   --once piped prints the dcem-agent-once/1 JSON document: every device of
#     the config in order, three meters of configs/sim/clean-3.yaml "ok" with
#     every value equal to what the simulator served (register, quantity,
#     phase, unit), their requests and ratios, and a fourth device on a unit
#     the simulator does not serve as "comm_error" with its reason; exit 1;
#   --once on a terminal (a pty from `script`) prints the table; --json there
#     prints the document; every device answering exits 0;
#   a register the meter refuses (exception 02) is listed with its function,
#     address and manual number, its value null; a CT ratio read from the
#     meter is shown with its source;
#   --check-config and --once refuse a config whose RTU bus names a serial
#     device that is not there (file:line: buses.rtu: DEV: No such file or
#     directory, exit 2) and a serial setting on a TCP bus (exit 2), while the
#     running agent only warns about the device and keeps going;
#   an MQTT broker that is not listening is logged as "connection refused".
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
sim=$build/firmware/sim/dcem-sim
agent=$build/firmware/agent/dcem-agent
make_work agent-commission

"$sim" -c "$src/configs/sim/clean-3.yaml" --tcp 127.0.0.1:0 --speed 0 --truth "$work/truth.json" \
  >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
pids+=("$sim_pid")
wait_for "dcem-sim ready" 10 grep -q '^ready' "$work/sim.out"
sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim.out")
closed_port=$(free_port) # nothing listens there

# write_config FILE DEVICES [BUSES]: no `profiles:` — the build finds the
# source tree's configs/meters itself
write_config() {
  local file=$1 devices=$2 buses=${3:-"  - {name: tcp, tcp: \"127.0.0.1:$sim_port\", response_timeout_ms: 300, retries: 0}"}
  cat >"$file" <<EOF
gateway: gw-test
site: test-site
buses:
$buses
devices:
$devices
mqtt: {uri: "tcp://127.0.0.1:$closed_port", version: 5, reconnect_max_ms: 1000}
spool: {dir: "$work/spool"}
identity: {allow_unsigned: true}
EOF
}
three="  - {bus: tcp, unit: 1, profile: eastron-sdm630, meter: it-main}
  - {bus: tcp, unit: 2, profile: acrel-adl400, meter: cooling}
  - {bus: tcp, unit: 3, profile: chint-dtsu666, meter: pv-roof}"
write_config "$work/agent.yaml" "$three
  - {bus: tcp, unit: 9, profile: eastron-sdm630, meter: ghost}"
write_config "$work/good.yaml" "$three"

# ---- --check-config: the profiles found without `profiles:` ----
out=$("$agent" -c "$work/agent.yaml" --check-config) || fail "--check-config: $out"
[[ $out == *"4 devices, 3 profiles from $src/configs/meters)" ]] || fail "--check-config said: $out"

# ---- --once, piped: the JSON document, exit 1 (a device failed) ----
rc=0
"$agent" -c "$work/agent.yaml" --once >"$work/once.json" 2>"$work/once.err" || rc=$?
((rc == 1)) || fail "--once with a dead device exited $rc, not 1: $(cat "$work/once.err")"
kill -USR1 "$sim_pid"
wait_for "truth file" 10 test -s "$work/truth.json"
$PY - "$work/once.json" "$work/truth.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
truth = json.load(open(sys.argv[2]))
bad = []
def want(cond, what):
    if not cond: bad.append(what)
want(doc["format"] == "dcem-agent-once/1", f"format {doc['format']!r}")
want((doc["site"], doc["gateway"]) == ("test-site", "gw-test"), "site/gateway")
devs = doc["devices"]
want([d["meter"] for d in devs] == ["it-main", "cooling", "pv-roof", "ghost"], "devices in config order")
want(doc["summary"] == {"devices": 4, "answered": 3, "failed": 1}, f"summary {doc['summary']}")
units = {"energy_import_kwh": "kWh", "energy_export_kwh": "kWh", "energy_total_kwh": "kWh",
         "power_kw": "kW", "reactive_kvar": "kvar", "apparent_kva": "kVA", "voltage_v": "V",
         "voltage_ll_v": "V", "current_a": "A", "power_factor": "", "frequency_hz": "Hz"}
served = {m["id"]: m for m in truth["meters"]}
checked = 0
for d in devs[:3]:
    m = served[d["meter"]]
    want((d["bus"], d["unit"], d["profile"]) == ("tcp", m["unit"], m["profile"]), f"{d['meter']}: identity")
    want(d["result"] == "ok" and "why" not in d, f"{d['meter']}: result {d['result']}")
    want(isinstance(d["t"], int) and d["t"] > 1.6e12, f"{d['meter']}: t {d['t']}")
    want(d["requests"] >= 1, f"{d['meter']}: {d['requests']} requests")
    r = d["ratios"]
    want(set(r) == {"ct", "ct_source", "pt", "pt_source", "held", "mismatch"}, f"{d['meter']}: ratios {r}")
    want(r["ct_source"] in ("none", "register", "config", "unknown"), f"{d['meter']}: ct_source")
    want(d["unsupported"] == [], f"{d['meter']}: unsupported {d['unsupported']}")
    got = {(v["quantity"], v["phase"]): v for v in d["values"]}
    want(len(got) == len(d["values"]), f"{d['meter']}: a quantity twice")
    for reg in m["registers"]:
        q, ph = reg["quantity"], reg["phase"]
        if q in ("scale_factor", "ct_ratio", "pt_ratio"): continue
        v = got.get((q, ph))
        checked += 1
        if v is None:
            bad.append(f"{d['meter']} {reg['name']}: not printed"); continue
        want(v["register"] == reg["name"], f"{d['meter']}: {v['register']} for {reg['name']}")
        want(v["unit"] == units[q], f"{d['meter']} {reg['name']}: unit {v['unit']!r}")
        want(v["status"] == "ok", f"{d['meter']} {reg['name']}: status {v['status']}")
        x = v["value"]
        want(x is not None and abs(x - reg["served"]) <= 1e-9 * max(1.0, abs(reg["served"])),
             f"{d['meter']} {reg['name']}: printed {x!r}, served {reg['served']!r}")
# the SDM630 is read in 2 requests (docs/agent.md), with no transformer ratios
want(devs[0]["requests"] == 2, f"it-main: {devs[0]['requests']} requests, not 2")
want(devs[0]["ratios"] == {"ct": 1, "ct_source": "none", "pt": 1, "pt_source": "none",
                           "held": False, "mismatch": False}, f"it-main: ratios {devs[0]['ratios']}")
g = devs[3]
want((g["bus"], g["unit"], g["profile"]) == ("tcp", 9, "eastron-sdm630"), "ghost: identity")
want(g["result"] == "comm_error", f"ghost: result {g['result']}")
want(g.get("why", "").startswith("read "), f"ghost: why {g.get('why')!r}")
want(g["requests"] >= 1 and g["ratios"] is None and g["values"] == [], f"ghost: {g}")
print(f"{len(devs)} devices, {checked} values checked; ghost: {g['why']}")
if bad: print("\n".join(bad)); sys.exit(1)
EOF

# ---- --once on a terminal: the table ----
rc=0
script -qec "'$agent' -c '$work/agent.yaml' --once" /dev/null >"$work/table.txt" 2>&1 || rc=$?
((rc == 1)) || fail "--once on a pty exited $rc, not 1: $(cat "$work/table.txt")"
tr -d '\r' <"$work/table.txt" >"$work/table"
for line in \
  "^site test-site, gateway gw-test, .* UTC: 4 devices, 3 answered, 1 failed$" \
  "^it-main  (bus tcp, unit 1, eastron-sdm630)  ok (2 requests)$" \
  "^  ratios: CT 1 (none: a primary-side meter), PT 1 (none: a primary-side meter)$" \
  "^  register  *quantity  *phase  *value  unit$" \
  "^  energy_import  *energy_import_kwh  *[0-9]*\.[0-9]\{3\}  kWh$" \
  "^  voltage_l1  *voltage_v  *L1  *[0-9]*\.[0-9]\{3\}  V$" \
  "^  voltage_ab  *voltage_ll_v  *L1-L2  *[0-9]*\.[0-9]\{3\}  V$" \
  "^cooling  (bus tcp, unit 2, acrel-adl400)  ok" \
  "^ghost  (bus tcp, unit 9, eastron-sdm630)  comm_error ([0-9]* requests\?): read "; do
  grep -q -- "$line" "$work/table" || fail "the table has no line like '$line':
$(cat "$work/table")"
done
grep -q '^{' "$work/table" && fail "JSON on a terminal without --json"
rc=0
script -qec "'$agent' -c '$work/good.yaml' --once --json" /dev/null >"$work/tty.json" 2>&1 || rc=$?
((rc == 0)) || fail "--once --json with every device answering exited $rc: $(cat "$work/tty.json")"
tr -d '\r' <"$work/tty.json" | $PY -c 'import json, sys
d = json.load(sys.stdin)
assert d["summary"] == {"devices": 3, "answered": 3, "failed": 0}, d["summary"]' ||
  fail "--once --json on a pty: $(cat "$work/tty.json")"

# ---- a register the meter refuses, and ratios read from the meter ----
# clean-3 with strict firmware on it-main (exception 02 for energy_export)
# and cooling behind 200/5 A current transformers (its ct_ratio register 40)
sed -e 's/^    initial_kwh: 1234567.8.*/&\n    refuse: [energy_export]/' \
  -e 's/^    profile: acrel-adl400/&\n    ct_ratio: 40/' "$src/configs/sim/clean-3.yaml" >"$work/refuse.yaml"
"$sim" -c "$work/refuse.yaml" --tcp 127.0.0.1:0 --speed 0 >"$work/sim2.out" 2>"$work/sim2.err" &
pids+=($!)
wait_for "the second dcem-sim ready" 10 grep -q '^ready' "$work/sim2.out"
sim2_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim2.out")
sed "s/127.0.0.1:$sim_port/127.0.0.1:$sim2_port/" "$work/good.yaml" >"$work/refuse-agent.yaml"
"$agent" -c "$work/refuse-agent.yaml" --once >"$work/refuse.json" 2>"$work/refuse.err" ||
  fail "--once against a meter refusing a register: exit $?: $(cat "$work/refuse.err")"
$PY - "$work/refuse.json" <<'EOF'
import json, sys
devs = {d["meter"]: d for d in json.load(open(sys.argv[1]))["devices"]}
it, cool = devs["it-main"], devs["cooling"]
bad = []
if it["result"] != "ok": bad.append(f"it-main: {it['result']}")
if it["unsupported"] != [{"register": "energy_export", "function": 4, "address": "0x004A", "ref": 30075}]:
    bad.append(f"it-main: unsupported {it['unsupported']}")
v = [v for v in it["values"] if v["register"] == "energy_export"]
if v != [{"register": "energy_export", "quantity": "energy_export_kwh", "phase": 0, "unit": "kWh",
          "value": None, "status": "unsupported"}]:
    bad.append(f"it-main: energy_export printed as {v}")
if (cool["ratios"]["ct"], cool["ratios"]["ct_source"]) != (40, "register"):
    bad.append(f"cooling: ratios {cool['ratios']}")
if bad: print("\n".join(bad)); sys.exit(1)
EOF
script -qec "'$agent' -c '$work/refuse-agent.yaml' --once" /dev/null | tr -d '\r' >"$work/refuse.table" ||
  fail "--once on a pty against a meter refusing a register: exit $?"
for line in \
  "^  energy_export  *energy_export_kwh  *-  (unsupported)$" \
  "^  refused by the device (exception reply; left out of its reads, asked for again every 3600 s):$" \
  "^  energy_export  *fc 4  0x004A  (30075)$" \
  "^  ratios: CT 40 (read from the meter), PT 1 (read from the meter)$"; do
  grep -q -- "$line" "$work/refuse.table" || fail "the table has no line like '$line':
$(cat "$work/refuse.table")"
done

# ---- config errors: exit 2, file:line ----
missing=/dev/ttyDCEM-missing-$$
write_config "$work/serial.yaml" "$three
  - {bus: rs485, unit: 1, profile: eastron-sdm630, meter: ups-a}" \
  "  - {name: tcp, tcp: \"127.0.0.1:$sim_port\", response_timeout_ms: 300, retries: 0}
  - {name: rs485, rtu: $missing, baud: 9600}"
for mode in --check-config --once; do
  rc=0
  out=$("$agent" -c "$work/serial.yaml" $mode 2>&1) || rc=$?
  ((rc == 2)) || fail "$mode with a missing serial device exited $rc, not 2: $out"
  [[ $out == "dcem-agent: $work/serial.yaml:5: buses.rtu: $missing: No such file or directory" ]] ||
    fail "$mode with a missing serial device said: $out"
done
write_config "$work/baud.yaml" "$three" \
  "  - {name: tcp, tcp: \"127.0.0.1:$sim_port\", baud: 19200}"
rc=0
out=$("$agent" -c "$work/baud.yaml" --check-config 2>&1) || rc=$?
((rc == 2)) || fail "baud on a TCP bus: exit $rc, not 2: $out"
[[ $out == "dcem-agent: $work/baud.yaml:4: buses.baud: bus 'tcp' is Modbus TCP: 'baud' is a serial"* ]] ||
  fail "baud on a TCP bus said: $out"
rc=0
"$agent" --once >/dev/null 2>&1 || rc=$?
((rc == 2)) || fail "a usage error exited $rc, not 2"

# ---- the running agent: a missing serial device is a warning; a closed
# broker port is "connection refused" ----
"$agent" -c "$work/serial.yaml" >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
pids+=("$agent_pid")
wait_for "the connection refused warning" 15 grep -q "connection refused" "$work/agent.err"
want="warn: mqtt: mqtt connect tcp://127.0.0.1:$closed_port: connection refused (is a broker listening on 127.0.0.1:$closed_port?)"
grep -qxF "$want" "$work/agent.err" || fail "no line '$want' in: $(cat "$work/agent.err")"
want="warn: agent: $work/serial.yaml:5: buses.rtu: $missing: No such file or directory (its devices report comm_error until it is there)"
grep -qxF "$want" "$work/agent.err" || fail "no line '$want' in: $(cat "$work/agent.err")"
kill -0 "$agent_pid" || fail "the agent stopped over a missing serial device"
kill -TERM "$agent_pid"
wait "$agent_pid" || fail "the agent exited $? on SIGTERM"
echo "agent_commission.sh passed"
