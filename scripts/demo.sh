#!/usr/bin/env bash
# The README's first command: the whole system on three simulated sites.
#
#   scripts/demo.sh [--once]
#
# Installs what is missing, builds, then starts on loopback, set up as a
# deployment is (docs/security.md): a site PKI and broker rules minted by
# scripts/mint-certs.sh, an Ed25519 key per gateway and for the collector;
# then mosquitto (TLS, a client certificate per gateway, each writing only
# its own topics),
# dcem-collector (SQLite store, HTTP API and dashboard; InfluxDB too when
# influxd is installed), dcem-sim serving the 26 meters of the sample sites
# yz-alpha, yz-beta and yz-gamma, and one dcem-agent per site polling them.
# The year 2025 — the sample ledgers' design year — is backfilled first
# through the ingest path agents use: a generated year of 15-minute readings
# per site (dcem-gen, with a rollover, a glitch, a spike, a gap and a meter
# replacement in it) delivered by `dcem-agent --import`, batch by batch,
# spooled and acknowledged. Then it writes each site's 2025 annual report
# and December report, prints the verdicts, the report paths and the
# dashboard's URL, and runs until Ctrl-C, which stops every process it
# started.
#
#   --once                 stop after the reports (tests and CI)
#   DCEM_DEMO_DIR=DIR      where everything goes (default build/demo; emptied first)
#   DCEM_DEMO_PORT=N       the dashboard's port (default 8080, or a free one)
#   DCEM_BUILD_DIR=DIR     use this build, skip installing and building
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
once=0
for a in "$@"; do
  case $a in
    --once) once=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: scripts/demo.sh [--once]" >&2; exit 2 ;;
  esac
done
PY=/usr/bin/python3
year=2025
sites=(yz-alpha yz-beta yz-gamma)
t_start=$SECONDS

if [[ -n ${DCEM_BUILD_DIR:-} ]]; then
  build=$DCEM_BUILD_DIR
else
  build="$root/build/release"
  "$root/scripts/deps.sh"
  echo "== building (build/release)"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  targets=(dcem-collector dcem-agent dcem-sim dcem-gen dcem-audit)
  [[ -d $root/gateway/report ]] && targets+=(dcem-report)
  cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target "${targets[@]}" >/dev/null
fi
col=$build/gateway/collector/dcem-collector
agent=$build/firmware/agent/dcem-agent
sim=$build/firmware/sim/dcem-sim
gen=$build/tests/dcem-gen
report=$build/gateway/report/dcem-report
out=${DCEM_DEMO_DIR:-"$root/build/demo"}
rm -rf "$out"
mkdir -p "$out"/{sites,logs,tokens,reports,history}

pids=()
stopping=0 interrupted=0
# Ctrl-C (or TERM) stops every process started here and ends with
# "stopped", status 0; anything else that ends the demo early is a failure
cleanup() {
  local rc=$?
  ((stopping)) && return
  stopping=1
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if ((interrupted)); then
    echo "stopped"
    exit 0
  fi
  ((rc == 0)) || echo "demo: failed; logs in $out/logs" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'interrupted=1; echo; echo "== stopping"; exit 0' INT TERM
fail() { echo "demo: $*" >&2; exit 1; }
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { # WHAT SECONDS COMMAND...
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out waiting for $what"
    sleep 0.2
  done
}
token() { head -c 32 /dev/urandom | base64 | tr -d '\n/+=' | cut -c1-32; }

# ---- identities (docs/security.md) ----
# The broker's PKI and rules: a certificate per gateway and for the
# collector, each gateway writing only its own topics (docs/broker.md); an
# Ed25519 key per gateway and for the collector, which sign every message.
gateways=()
for s in "${sites[@]}"; do gateways+=("$s/gw-$s" "$s/gw-history"); done
"$root/scripts/mint-certs.sh" -d "$out/pki" "${gateways[@]}" >"$out/logs/mint-certs.log"
mkdir -m 700 "$out/keys"
col_key=$("$col" --keygen "$out/keys/collector.key" 2>/dev/null)
declare -A gw_key
for g in "${gateways[@]}"; do
  gw_key[$g]=$("$agent" --keygen "$out/keys/${g%/*}-${g#*/}.key" 2>/dev/null)
done

# ---- the broker: the shipped config on a loopback port, TLS and its rules ----
mqtt_port=$(free_port)
sed -e "s|^listener 8883\$|listener $mqtt_port 127.0.0.1|" -e "s|/etc/mosquitto/dcem/|$out/pki/|" \
  -e "s|^persistence true|persistence false|" -e "/^persistence_location/d" \
  "$root/configs/mosquitto/dcem.conf" >"$out/mosquitto.conf"
echo "user $(id -un)" >>"$out/mosquitto.conf" # run as root, it would switch to a user who cannot read $out
mosquitto -c "$out/mosquitto.conf" >"$out/logs/mosquitto.log" 2>&1 &
pids+=($!)
wait_for "mosquitto" 10 port_open "$mqtt_port"
mqtt="ssl://localhost:$mqtt_port"

# ---- InfluxDB 1.x, when installed ----
influx_section=""
if command -v influxd >/dev/null; then
  ihttp=$(free_port)
  irpc=$(free_port)
  cat >"$out/influxd.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$irpc"
[meta]
  dir = "$out/influx/meta"
[data]
  dir = "$out/influx/data"
  wal-dir = "$out/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$ihttp"
  log-enabled = false
[monitor]
  store-enabled = false
EOF
  influxd -config "$out/influxd.conf" >"$out/logs/influxd.log" 2>&1 &
  pids+=($!)
  influx_ping() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ihttp/ping") == 204 ]]; }
  wait_for "influxd" 30 influx_ping
  curl -s -XPOST "http://127.0.0.1:$ihttp/query" --data-urlencode 'q=CREATE DATABASE dcem' >/dev/null
  influx_section="influx: {url: \"http://127.0.0.1:$ihttp\", version: 1, db: dcem, backlog_dir: influx-backlog}"
fi

# ---- the collector ----
# the sample ledgers, with this demo's gateways and their keys in place of
# the samples'
for s in "${sites[@]}"; do
  $PY - "$root/configs/sites/$s.yaml" "$s" "${gw_key[$s/gw-$s]}" "${gw_key[$s/gw-history]}" \
    >"$out/sites/$s.yaml" <<'EOF'
import re, sys
text, site, live, history = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3], sys.argv[4]
text = re.sub(r"(?m)^gateways:\n(?:[ ].*\n|\n)*", "", text)
print(text.rstrip("\n"))
print(f"gateways:\n  - {{id: gw-{site}, keys: [\"{live}\"]}}\n  - {{id: gw-history, keys: [\"{history}\"]}}")
EOF
done
api_port=${DCEM_DEMO_PORT:-8080}
port_open "$api_port" && api_port=$(free_port)
(umask 077 && token >"$out/tokens/regulator.token" && token >"$out/tokens/yz-alpha.token")
cat >"$out/collector.yaml" <<EOF
# written by scripts/demo.sh; the annotated reference is configs/collector/collector.yaml
collector: demo
sites: sites
policy: $root/configs/policy/beijing-etown-2024.yaml
identity: {key_file: keys/collector.key}
mqtt:
  uri: "$mqtt"
  version: 5
  ca_file: pki/ca.crt
  cert_file: pki/collectors/dcem-collector.crt
  key_file: pki/collectors/dcem-collector.key
store: {path: store.db}
$influx_section
api:
  listen: 127.0.0.1:$api_port
  dashboard_dir: $root/gateway/dashboard
  tokens:
    - {name: regulator, role: regulator, token_file: tokens/regulator.token}
    - {name: alpha-operator, role: operator, sites: [yz-alpha], token_file: tokens/yz-alpha.token}
EOF
"$col" -c "$out/collector.yaml" --check-config >/dev/null
"$col" -c "$out/collector.yaml" >"$out/logs/collector.out" 2>"$out/logs/collector.log" &
col_pid=$!
pids+=("$col_pid")
wait_for "the collector" 15 grep -q "^info: mqtt: subscribed to" "$out/logs/collector.log"
echo "== broker $mqtt (TLS, certificates, topic rules; every message signed), collector up ($(printf '%s' "${influx_section:+with InfluxDB}"))"

# ---- 2025: a generated year per site, imported through an agent ----
agent_config() { # FILE SITE GATEWAY SPOOL BUS DEVICES
  cat >"$1" <<EOF
gateway: $3
site: $2
ledger: sites/$2.yaml
profiles: $root/configs/meters
buses:
$5
devices:
$6
mqtt:
  uri: "$mqtt"
  version: 5
  reconnect_max_ms: 2000
  ca_file: pki/ca.crt
  cert_file: pki/gateways/$2/$3.crt
  key_file: pki/gateways/$2/$3.key
spool: {dir: $4, fsync: interval}
identity:
  key_file: keys/$2-$3.key
  collector_keys: ["$col_key"]
batch: {max_readings: 250, max_delay_ms: 1000}
EOF
}
echo "== backfilling $year through dcem-agent --import (26 meters, 15-minute readings) ..."
import_pids=()
for s in "${sites[@]}"; do
  "$gen" --site "$out/sites/$s.yaml" --year "$year" --faults --out "$out/history/$s-$year.csv" \
    --truth "$out/history/$s-$year-truth.json" >/dev/null
  # an import uses no bus; one placeholder device keeps the config complete
  agent_config "$out/import-$s.yaml" "$s" gw-history "spool/import-$s" \
    "  - {name: none, tcp: \"127.0.0.1:1\"}" \
    "  - {bus: none, unit: 1, profile: eastron-sdm630, meter: $(grep -m1 -o 'id: [a-z0-9-]*' "$out/sites/$s.yaml" | cut -c5-), poll_ms: 60000}"
  "$agent" -c "$out/import-$s.yaml" --import "$out/history/$s-$year.csv" \
    >"$out/logs/import-$s.out" 2>"$out/logs/import-$s.log" &
  import_pids+=($!)
  pids+=($!)
done
for i in "${!sites[@]}"; do
  wait "${import_pids[i]}" || fail "the import of ${sites[i]}: $(tail -2 "$out/logs/import-${sites[i]}.log")"
  grep -o "import of .*" "$out/logs/import-${sites[i]}.log" | sed "s|$out/||; s/^/   ${sites[i]}: /"
done

# ---- live: the simulated meters and one agent per site ----
"$sim" -c "$root/configs/sim/demo-sites.yaml" --tcp 127.0.0.1:0 >"$out/logs/sim.out" 2>"$out/logs/sim.log" &
pids+=($!)
wait_for "dcem-sim" 10 grep -q '^ready' "$out/logs/sim.out"
sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out/logs/sim.out")
for s in "${sites[@]}"; do
  devices=$($PY - "$root/configs/sim/demo-sites.yaml" "$out/sites/$s.yaml" <<'EOF'
import re, sys
ledger = set(re.findall(r"- id: (\S+)", open(sys.argv[2]).read()))
for m in re.finditer(r"\{id: (\S+), unit: (\d+), profile: (\S+),", open(sys.argv[1]).read()):
    if m.group(1) in ledger:
        print(f"  - {{bus: sim, unit: {m.group(2)}, profile: {m.group(3)}, meter: {m.group(1)}, poll_ms: 5000}}")
EOF
)
  agent_config "$out/agent-$s.yaml" "$s" "gw-$s" "spool/$s" \
    "  - {name: sim, tcp: \"127.0.0.1:$sim_port\", response_timeout_ms: 500}" "$devices"
  "$agent" -c "$out/agent-$s.yaml" >"$out/logs/agent-$s.out" 2>"$out/logs/agent-$s.log" &
  pids+=($!)
done
live_gateways() {
  sqlite3 -cmd '.timeout 5000' "$out/store.db" \
    "SELECT count(DISTINCT gateway) FROM readings WHERE gateway LIKE 'gw-yz-%'" 2>/dev/null
}
all_live() { [[ $(live_gateways) == 3 ]]; }
wait_for "the live agents' first readings" 30 all_live
echo "== live: dcem-sim on 127.0.0.1:$sim_port (26 meters), an agent per site polling every 5 s"

# ---- reports and verdicts ----
echo "== reports of $year"
for s in "${sites[@]}"; do
  if [[ -x $report ]]; then
    for p in "--year $year" "--month $year-12"; do
      "$report" -c "$out/collector.yaml" --site "$s" $p --out "$out/reports/$s/${p##* }" \
        >>"$out/logs/report-$s.out" 2>&1 || fail "dcem-report $s $p: $(cat "$out/logs/report-$s.out")"
    done
  fi
  mkdir -p "$out/reports/$s"
  "$col" figures -c "$out/collector.yaml" --site "$s" --year "$year" >"$out/reports/$s/figures-$year.json"
done
$PY - "$out" "$year" "${sites[@]}" <<'EOF'
import json, os, sys
out, year, sites = sys.argv[1], sys.argv[2], sys.argv[3:]
for s in sites:
    periods = json.load(open(f"{out}/reports/{s}/figures-{year}.json"))
    y = next(p for p in periods if p["period"] == year)
    v = [x for x in y["verdicts"] if x != "in_scope"]
    pue = y.get("pue")
    share = y.get("green_share")
    print(f"   {s:9} PUE {pue:.3f}  green share {share:.1%}  energy {y['total_kwh'] / 1e6:.2f} GWh"
          f" (cap {(y.get('cap') or {}).get('approved_kwh', float('nan')) / 1e6:.1f} GWh): {', '.join(v)}"
          if isinstance(pue, float) and isinstance(share, float) else f"   {s}: {', '.join(v)}")
    for d in sorted(os.listdir(f"{out}/reports/{s}")):
        if os.path.isdir(f"{out}/reports/{s}/{d}"):
            files = sorted(f for f in os.listdir(f"{out}/reports/{s}/{d}") if f.endswith((".xlsx", ".json")))
            print(f"             {d} report: {out}/reports/{s}/{d}/ ({', '.join(files)}, CSV, readings.csv, MANIFEST.sha256)")
EOF
reg=$(cat "$out/tokens/regulator.token")
echo
echo "Dashboard (regulator): http://127.0.0.1:$api_port/#token=$reg&year=$year"
echo "  operator of yz-alpha: token in $out/tokens/yz-alpha.token; API: docs/api.md"
echo "  ready in $((SECONDS - t_start)) s; logs in $out/logs"
if ((once)); then
  exit 0
fi
echo "Running. Ctrl-C stops everything."
while kill -0 "$col_pid" 2>/dev/null; do sleep 1; done
# a Ctrl-C reaches the collector too: its trap, not this, says what happened
sleep 0.5
((interrupted)) || fail "the collector stopped: $(tail -3 "$out/logs/collector.log")"
