#!/usr/bin/env bash
# The collector's HTTP API under slow clients (docs/api.md, "Limits"):
# mosquitto and dcem-collector with its API on free loopback ports, with the
# API's default limits and timeout_s: 4.
#
#   api_slow.sh BUILD_DIR SOURCE_DIR
#
# Proves: 100 connections that send a request line and then one header line
# every 2 s, never finishing (from four loopback addresses, 25 each), do not
# stop the API: while they are open, /healthz and an authenticated
# /api/v1/sites answer within 1 s, every 0.5 s for 15 s. 40 such connections
# from one address get per_ip_connections (32) and the rest are closed at
# once, and the API still answers. A connection that sends nothing is closed
# by the server after timeout_s.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
col=$build/gateway/collector/dcem-collector
slow=$(dirname "$0")/slow_clients.py
make_work api-slow

start_mosquitto
mkdir -p "$work/sites"
cp "$src/configs/sites/yz-alpha.yaml" "$work/sites/"
reg=regulator-token-$RANDOM$RANDOM-abcdefgh
aport=$(free_port)
cat >"$work/collector.yaml" <<EOF
collector: api-slow
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5}
store: {path: store.db}
identity: {allow_unsigned: true}
api:
  listen: 127.0.0.1:$aport
  timeout_s: 4
  tokens:
    - {name: regulator, role: regulator, token: "$reg"}
EOF
"$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.err" &
pids+=($!)
api=http://127.0.0.1:$aport
wait_for "the API" 10 curl -sf "$api/healthz"

# probe SECONDS: /healthz and /api/v1/sites every 0.5 s, each within 1 s
probe() {
  local until=$((SECONDS + $1)) n=0 out
  while ((SECONDS < until)); do
    out=$(curl -s -o /dev/null -m 1 -w '%{http_code} %{time_total}' "$api/healthz" || true)
    [[ $out == 200\ * ]] || fail "/healthz did not answer within 1 s ($out) under slow clients"
    out=$(curl -s -o /dev/null -m 1 -w '%{http_code} %{time_total}' \
      -H "Authorization: Bearer $reg" "$api/api/v1/sites" || true)
    [[ $out == 200\ * ]] || fail "/api/v1/sites did not answer within 1 s ($out) under slow clients"
    n=$((n + 1))
    sleep 0.5
  done
  echo "probe: $n rounds of /healthz and /api/v1/sites, each under 1 s"
}

# an idle connection, closed after timeout_s (4 s): measured alongside the rest
$PY "$slow" "$aport" 1 127.0.0.1 1 20 idle >"$work/idle.out" &
idle_pid=$!
pids+=("$idle_pid")

# 100 slowloris connections from four addresses
$PY "$slow" "$aport" 100 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5 2 22 >"$work/slow.out" &
slow_pid=$!
pids+=("$slow_pid")
wait_for "the slow clients" 15 grep -q '^open' "$work/slow.out"
head -1 "$work/slow.out"
probe 15
wait "$slow_pid" || fail "slow clients helper failed"
tail -1 "$work/slow.out"
$PY - "$work/slow.out" <<'EOF' || fail "slow clients: $(cat "$work/slow.out")"
import json, sys
lines = open(sys.argv[1]).read().split("\n")
first, last = lines[0].split(), json.loads(lines[1])
# every one was accepted (four addresses of 25 stay within every limit),
# and trickling one header line per 2 s kept each within timeout_s
assert first[1] == "100" and first[3] == "0", first
assert last["open"] == 100, last
EOF

wait "$idle_pid" || fail "idle client helper failed"
$PY - "$work/idle.out" <<'EOF' || fail "idle connection: $(cat "$work/idle.out")"
import json, sys
last = json.loads(open(sys.argv[1]).read().split("\n")[1])
assert last["closed"] == 1 and 3.5 <= last["closed_after"][0] <= 8, last
print(f"idle connection closed by the server after {last['closed_after'][0]} s (timeout_s 4)")
EOF

# one address opening 40: per_ip_connections (32) held, the rest closed at once
$PY "$slow" "$aport" 40 127.0.0.9 2 8 >"$work/one.out" &
one_pid=$!
pids+=("$one_pid")
wait_for "the one-address clients" 15 grep -q '^open' "$work/one.out"
head -1 "$work/one.out"
probe 4
wait "$one_pid" || fail "one-address helper failed"
read -r _ held _ refused < <(head -1 "$work/one.out")
((held == 32 && refused == 8)) || fail "one address: $held held, $refused refused; expected 32 and 8"
echo "api_slow: ok"
