#!/usr/bin/env bash
# The shipped broker config (configs/mosquitto/dcem.conf), with the
# certificates and rules scripts/mint-certs.sh makes, on a real mosquitto
# (docs/broker.md):
#
#   broker_acl.sh BUILD_DIR SOURCE_DIR
#
#   1. mint-certs.sh: keys 0600, a second run changes nothing;
#   2. gateway yz-beta/gw-beta-1 cannot publish on yz-alpha/gw-alpha-1's
#      data, state, metrics or ack (PUBACK 135, and the collector's
#      subscriber receives none of it), cannot subscribe to its ack or ctl,
#      nor join the collector's shared subscription (SUBACK 135), while its
#      own data gets through and gw-alpha-1 reads its own ack;
#   3. a client without a certificate, with one of another CA (same CN), or
#      with a revoked one is refused;
#   4. the collector's identity receives every gateway's data and publishes
#      acks and alerts; dcem-collector refuses, in words, a broker whose
#      certificate is of a CA it does not trust or does not carry the name
#      the URI gives;
#   5. end to end: dcem-sim -> dcem-agent -> mosquitto -> dcem-collector, both
#      over TLS with their own certificates: readings stored.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
sim=$build/firmware/sim/dcem-sim
agent=$build/firmware/agent/dcem-agent
col=$build/gateway/collector/dcem-collector
for b in "$sim" "$agent" "$col"; do [[ -x $b ]] || fail "no $b"; done
make_work broker-acl
pki=$work/pki
mint=$src/scripts/mint-certs.sh
[[ -x $mint ]] || fail "no $mint"

# ---- 1. the PKI ----
# The broker's certificate names localhost only, so that 127.0.0.1 is a
# name it does not carry (4).
"$mint" -d "$pki" --san localhost yz-alpha/gw-alpha-1 yz-beta/gw-beta-1 test-site/gw-test \
  yz-beta/gw-doomed >"$work/mint1.out"
cat "$work/mint1.out"
for k in ca.key server.key collectors/dcem-collector.key gateways/yz-alpha/gw-alpha-1.key; do
  [[ $(stat -c %a "$pki/$k") == 600 ]] || fail "$k is mode $(stat -c %a "$pki/$k"), not 600"
done
sum1=$(cat "$pki"/ca.crt "$pki"/server.crt "$pki"/gateways/*/*.crt "$pki"/crl.pem "$pki"/dynsec.json | md5sum)
"$mint" -d "$pki" --san localhost yz-alpha/gw-alpha-1 >"$work/mint2.out"
grep -q '^made' "$work/mint2.out" && fail "a second run made something: $(cat "$work/mint2.out")"
[[ $(cat "$pki"/ca.crt "$pki"/server.crt "$pki"/gateways/*/*.crt "$pki"/crl.pem "$pki"/dynsec.json | md5sum) == "$sum1" ]] ||
  fail "a second run changed a certificate, the CRL or the rules"
# A CA of someone else's, with a certificate for the same gateway name.
"$mint" -d "$work/other" yz-alpha/gw-alpha-1 >/dev/null

# ---- the broker: the shipped file, on a free loopback port, files in $pki ----
port=$(free_port)
sed -e "s|^listener 8883\$|listener $port 127.0.0.1|" -e "s|/etc/mosquitto/dcem/|$pki/|" \
  -e "s|^persistence true|persistence false|" -e "/^persistence_location/d" \
  "$src/configs/mosquitto/dcem.conf" >"$work/mosquitto.conf"
grep -q "^listener $port 127.0.0.1" "$work/mosquitto.conf" || fail "dcem.conf: no 'listener 8883'"
grep -v '^#' "$work/mosquitto.conf" | grep -q '/etc/' && fail "dcem.conf: a path outside /etc/mosquitto/dcem/"
# run as root (CI), mosquitto would switch to its own user, who cannot read $work
echo "user root" >>"$work/mosquitto.conf"
start_broker() {
  mosquitto -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 &
  broker_pid=$!
  pids+=("$broker_pid")
  wait_for "mosquitto on $port" 10 port_open "$port"
}
start_broker

as() { # as IDENTITY: mosquitto_pub/sub options for a client of the site CA
  echo "-V mqttv5 -h localhost -p $port --cafile $pki/ca.crt --cert $pki/$1.crt --key $pki/$1.key"
}
COL=collectors/dcem-collector
ALPHA=gateways/yz-alpha/gw-alpha-1
BETA=gateways/yz-beta/gw-beta-1
A=dcem/v1/yz-alpha/gw-alpha-1

# The collector's subscriptions, as dcem-collector makes them.
# shellcheck disable=SC2046
stdbuf -oL mosquitto_sub $(as $COL) -q 1 -v -t '$share/dcem/dcem/v1/+/+/data' \
  -t 'dcem/v1/+/+/state' -t 'dcem/v1/+/+/metrics' >"$work/collector-sub.out" 2>&1 &
sub_pids=($!)
# gw-alpha-1 listening on its own ack and ctl.
# shellcheck disable=SC2046
stdbuf -oL mosquitto_sub $(as $ALPHA) -q 1 -v -t "$A/ack" -t "$A/ctl" >"$work/alpha-sub.out" 2>&1 &
sub_pids+=($!)
pids+=("${sub_pids[@]}")
probe() { # gw-beta-1's own data, until the collector's subscriber has it
  # shellcheck disable=SC2046
  mosquitto_pub $(as $BETA) -q 1 -t dcem/v1/yz-beta/gw-beta-1/data -m "beta-own-$1" &&
    grep -q "beta-own-$1" "$work/collector-sub.out"
}
wait_for "the collector's subscription" 10 probe 1

# ---- 2. a gateway at another gateway's topics ----
for leaf in data state metrics ack ctl; do
  # shellcheck disable=SC2046
  mosquitto_pub $(as $BETA) -d -q 1 -r -t "$A/$leaf" -m "forged-$leaf" >"$work/pub-$leaf.out" 2>&1 ||
    true
  grep -q 'received PUBACK (Mid: 1, RC:135)' "$work/pub-$leaf.out" ||
    fail "gw-beta-1 on $A/$leaf: no 'not authorized' PUBACK: $(cat "$work/pub-$leaf.out")"
done
echo "ok: gw-beta-1 is refused (PUBACK 135) on gw-alpha-1's data, state, metrics, ack, ctl"
for filter in "$A/ack" "$A/ctl" 'dcem/v1/+/+/ack' 'dcem/v1/#' '$share/dcem/dcem/v1/+/+/data'; do
  # shellcheck disable=SC2046
  timeout 10 mosquitto_sub $(as $BETA) -d -q 1 -W 2 -t "$filter" >"$work/sub.out" 2>&1 || true
  grep -q 'Subscribed (mid: 1): 135' "$work/sub.out" ||
    fail "gw-beta-1 may subscribe to $filter: $(cat "$work/sub.out")"
done
echo "ok: gw-beta-1 cannot subscribe to gw-alpha-1's ack/ctl, all acks, dcem/v1/#, nor the collector's group"

# The collector's identity: acks to both, an alert (PUBACK 0, or 16: no
# subscriber); gw-alpha-1's own data.
for g in yz-alpha/gw-alpha-1 yz-beta/gw-beta-1; do
  # shellcheck disable=SC2046
  mosquitto_pub $(as $COL) -d -q 1 -t "dcem/v1/$g/ack" -m "ack-for-$g" >"$work/ack.out" 2>&1
  grep -Eq 'RC:(0|16)\)' "$work/ack.out" || fail "the collector cannot ack $g: $(cat "$work/ack.out")"
done
# shellcheck disable=SC2046
mosquitto_pub $(as $COL) -d -q 1 -t dcem/v1/yz-alpha/alerts -m alert >"$work/alert.out" 2>&1
grep -Eq 'RC:(0|16)\)' "$work/alert.out" || fail "the collector cannot publish an alert"
# shellcheck disable=SC2046
mosquitto_pub $(as $ALPHA) -q 1 -t "$A/data" -m alpha-own-data
# shellcheck disable=SC2046
mosquitto_pub $(as $ALPHA) -q 1 -t "$A/metrics" -m alpha-own-metrics
wait_for "gw-alpha-1's own data at the collector" 10 grep -q alpha-own-metrics "$work/collector-sub.out"
grep -q "$A/data alpha-own-data" "$work/collector-sub.out" || fail "gw-alpha-1's data did not arrive"
wait_for "gw-alpha-1's ack" 10 grep -q "ack-for-yz-alpha/gw-alpha-1" "$work/alpha-sub.out"
grep -q forged "$work/collector-sub.out" "$work/alpha-sub.out" &&
  fail "a forged message was delivered: $(grep forged "$work/collector-sub.out" "$work/alpha-sub.out")"
grep -q "ack-for-yz-beta" "$work/alpha-sub.out" && fail "gw-alpha-1 got gw-beta-1's ack"
echo "ok: the collector gets both gateways' data, acks both, publishes alerts; nothing forged arrived"
# gone before dcem-collector joins the same shared group: a member that
# is not it would take every other batch
kill -TERM "${sub_pids[@]}"
wait "${sub_pids[@]}" 2>/dev/null || true

# ---- 3. who is refused at the door ----
refused() { # refused WHAT OPTIONS...: a publish that must not get in
  local what=$1
  shift
  if timeout 10 mosquitto_pub -V mqttv5 -h localhost -p "$port" "$@" -q 1 -t "$A/data" -m x \
    >"$work/refused.out" 2>&1; then
    fail "$what: connected and published"
  fi
  echo "ok: $what is refused ($(tr '\n' ' ' <"$work/refused.out"))"
}
refused "a client without a certificate" --cafile "$pki/ca.crt"
refused "a certificate of another CA with gw-alpha-1's name" --cafile "$pki/ca.crt" \
  --cert "$work/other/$ALPHA.crt" --key "$work/other/$ALPHA.key"
cp "$pki/gateways/yz-beta/gw-doomed.crt" "$pki/gateways/yz-beta/gw-doomed.key" "$work/"
doomed() { # publishes as gw-doomed, on its own data topic
  timeout 10 mosquitto_pub -V mqttv5 -h localhost -p "$port" --cafile "$pki/ca.crt" \
    --cert "$work/gw-doomed.crt" --key "$work/gw-doomed.key" -q 1 \
    -t dcem/v1/yz-beta/gw-doomed/data -m x >"$work/doomed.out" 2>&1
}
doomed || fail "gw-doomed cannot publish before it is revoked: $(cat "$work/doomed.out")"
"$mint" -d "$pki" --revoke yz-beta/gw-doomed >"$work/mint3.out"
grep -q '^revoked' "$work/mint3.out" || fail "mint-certs.sh --revoke: $(cat "$work/mint3.out")"
grep -q 'gw-doomed' "$pki/dynsec.json" && fail "the revoked gateway is still in dynsec.json"
kill -HUP "$broker_pid" # the CRL is read again
not_doomed() { ! doomed; }
wait_for "the broker to refuse the revoked certificate" 10 not_doomed
echo "ok: a revoked certificate is refused after a reload ($(tr '\n' ' ' <"$work/doomed.out"))"

# ---- 4 and 5. dcem-collector and dcem-agent over TLS ----
"$sim" -c "$src/configs/sim/clean-3.yaml" --tcp 127.0.0.1:0 >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
wait_for "dcem-sim ready" 10 grep -q '^ready' "$work/sim.out"
sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim.out")
mkdir -p "$work/sites"
cat >"$work/sites/test-site.yaml" <<EOF
site: test-site
name: broker test
racks: 60
rack_power_kw: 300
interval_minutes: 1
meters:
  - {id: it-main, role: it, rated_kw: 400}
  - {id: cooling, role: facility, rated_kw: 250}
  - {id: pv-roof, role: green_onsite, rated_kw: 80}
EOF
write_collector() { # URI [CA_FILE]
  cat >"$work/collector.yaml" <<EOF
collector: test
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
mqtt:
  uri: "$1"
  version: 5
  share_group: dcem
  ca_file: ${2:-pki/ca.crt}
  cert_file: pki/collectors/dcem-collector.crt
  key_file: pki/collectors/dcem-collector.key
store: {path: store.db}
identity: {allow_unsigned: true}  # this test is about the broker: unsigned traffic
EOF
}
# The collector refusing the broker, said in words: a broker certificate of
# a CA it does not trust (OpenSSL's reason), one that does not carry the
# name it was reached by (paho's own check: no reason from OpenSSL).
refuses_broker() { # URI CA_FILE EXPECTED
  local log=$work/collector-refuses-$((++refusals)).err
  write_collector "$1" "$2"
  "$col" -c "$work/collector.yaml" >/dev/null 2>"$log" &
  col_pid=$!
  pids+=("$col_pid")
  wait_for "the collector's complaint" 20 grep -q "mqtt connect" "$log"
  kill -TERM "$col_pid"
  wait "$col_pid" || fail "dcem-collector exited with $? after refusing the broker"
  grep -q "$3" "$log" || fail "not '$3': $(grep mqtt "$log")"
  grep -q "subscribed to" "$log" && fail "the collector accepted the broker: $1 $2"
  echo "ok: $(grep -m1 'mqtt connect' "$log")"
}
refusals=0
refuses_broker "ssl://localhost:$port" other/ca.crt \
  "the TLS handshake with localhost:$port failed: certificate verify failed"
refuses_broker "ssl://127.0.0.1:$port" pki/ca.crt "the broker's certificate does not name '127.0.0.1'"

write_collector "ssl://localhost:$port"
"$col" -c "$work/collector.yaml" --check-config >/dev/null
"$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.err" &
col_pid=$!
pids+=("$col_pid")
wait_for "the collector's subscription" 20 grep -q "subscribed to" "$work/collector.err"
cat >"$work/agent.yaml" <<EOF
gateway: gw-test
site: test-site
profiles: $src/configs/meters
buses:
  - {name: tcp, tcp: "127.0.0.1:$sim_port", response_timeout_ms: 300}
devices:
  - {bus: tcp, unit: 1, profile: eastron-sdm630, meter: it-main, poll_ms: 500}
  - {bus: tcp, unit: 2, profile: acrel-adl400, meter: cooling, poll_ms: 500}
  - {bus: tcp, unit: 3, profile: chint-dtsu666, meter: pv-roof, poll_ms: 500}
mqtt:
  uri: "ssl://localhost:$port"
  version: 5
  reconnect_max_ms: 1000
  ca_file: pki/ca.crt
  cert_file: pki/gateways/test-site/gw-test.crt
  key_file: pki/gateways/test-site/gw-test.key
spool: {dir: spool}
identity: {allow_unsigned: true}
batch: {max_readings: 250, max_delay_ms: 300}
EOF
"$agent" -c "$work/agent.yaml" --check-config >/dev/null
"$agent" -c "$work/agent.yaml" >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
pids+=("$agent_pid")
sql() { sqlite3 -cmd '.timeout 5000' "$work/store.db" "$1"; }
stored() { (($(sql "SELECT count(DISTINCT meter) FROM readings") == 3 &&
  $(sql "SELECT count(*) FROM readings") >= 30)); }
wait_for "readings of all three meters in the store" 30 stored
grep -q "connected to ssl://localhost:$port" "$work/agent.err" || fail "the agent did not say where it connected"
grep -q "gateway: test-site/gw-test is online" "$work/collector.err" ||
  fail "the collector did not see the agent's birth"
kill -TERM "$agent_pid"
wait "$agent_pid" || fail "dcem-agent exited with $?"
echo "ok: dcem-agent -> TLS -> dcem-collector: $(sql "SELECT count(*) FROM readings") readings stored"
kill -TERM "$col_pid"
wait "$col_pid" || fail "dcem-collector exited with $?"
echo "broker_acl: all checks passed"
