#!/usr/bin/env bash
# dcem-collector's SIGHUP: the configuration file again, whole. Two real
# mosquitto brokers on loopback, SQLite stores, dcem-replay as a gateway.
#
#   collector_reload.sh BUILD_DIR SOURCE_DIR
#
# Proves: a batch for a site without a ledger is not acked; a broken file
# is refused with its file:line and changes nothing (the collector keeps
# storing); a reload that adds the ledger, moves MQTT to another broker and
# the store to another file takes effect: the second site's batches are
# acked on the new broker and stored in the new file, the old file keeps
# what it had.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
col=$build/gateway/collector/dcem-collector
replay=$build/tests/dcem-replay
gen=$build/tests/dcem-gen
make_work collector-reload

ports=()
for i in 1 2; do
  start_mosquitto "mosquitto-$i"
  ports+=("$port")
done

mkdir -p "$work/sites"
cp "$src/configs/sites/yz-alpha.yaml" "$work/sites/"
config() { # PORT STORE
  cat >"$work/collector.yaml" <<EOF
collector: reload
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "tcp://127.0.0.1:$1", version: 5}
store: {path: $2}
health_log_s: 1
EOF
}
config "${ports[0]}" store-1.db
for s in yz-alpha yz-beta; do
  "$gen" --site "$src/configs/sites/$s.yaml" --year 2025 --out "$work/$s-year.csv" \
    --truth "$work/$s-truth.json" >/dev/null
  head -n 201 "$work/$s-year.csv" >"$work/$s.csv"
done
"$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.err" &
col_pid=$!
pids+=("$col_pid")
wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$work/collector.err"
health() { grep "health: received" "$work/collector.err" | tail -1; }
replay() { # PORT SITE GATEWAY [TIMEOUT]
  "$replay" --uri "tcp://127.0.0.1:$1" --site "$2" --gateway "$3" --csv "$work/$2.csv" --batch 100 \
    --timeout-s "${4:-30}"
}

# 1. yz-beta has no ledger: its batches are not acked
replay "${ports[0]}" yz-beta gw-b 2 >"$work/beta1.out" && fail "a batch without a ledger was acked"
wait_for "the unknown site counted" 10 bash -c "grep 'health: received' '$work/collector.err' | tail -1 | grep -q 'unknown site [1-9]'"

# 2. a broken file is refused, with where and what; the collector goes on
cp "$work/collector.yaml" "$work/good.yaml"
printf 'recompute_ms: soon\n' >>"$work/collector.yaml"
kill -HUP "$col_pid"
wait_for "the refusal" 10 grep -q "reload refused" "$work/collector.err"
grep "reload refused" "$work/collector.err" | grep -q "collector.yaml:8: recompute_ms" ||
  fail "the refusal does not say where: $(grep 'reload refused' "$work/collector.err")"
replay "${ports[0]}" yz-alpha gw-a >/dev/null || fail "yz-alpha was not acked after a refused reload"

# 3. the ledger added, MQTT moved to broker 2, the store to another file
cp "$src/configs/sites/yz-beta.yaml" "$work/sites/"
config "${ports[1]}" store-2.db
kill -HUP "$col_pid"
wait_for "the reload" 10 grep -q "reloaded .*2 sites; store reopened; MQTT anew" "$work/collector.err"
wait_for "the subscription on broker 2" 10 \
  bash -c "(( \$(grep -c '^info: mqtt: subscribed to' '$work/collector.err') == 2 ))"
replay "${ports[1]}" yz-beta gw-b >/dev/null || fail "yz-beta was not acked on broker 2 after the reload"
kill -TERM "$col_pid"
wait "$col_pid" || fail "the collector exited with $?"

n1=$(sqlite3 "$work/store-1.db" "SELECT count(*) FROM readings")
n2=$(sqlite3 "$work/store-2.db" "SELECT count(*) FROM readings")
b2=$(sqlite3 "$work/store-2.db" "SELECT count(*) FROM readings WHERE site = (SELECT id FROM names WHERE name = 'yz-beta')")
((n1 == 200)) || fail "store-1 holds $n1 readings, expected yz-alpha's 200"
((n2 == 200 && b2 == 200)) || fail "store-2 holds $n2 readings ($b2 of yz-beta), expected 200 of yz-beta"
echo "refused reload kept the running config; the reload moved MQTT and the store: store-1 $n1 readings, store-2 $n2"
echo "collector_reload.sh: passed"
