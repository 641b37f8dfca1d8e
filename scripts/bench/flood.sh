#!/usr/bin/env bash
# Benchmark (not a test): how far one flooding topic delays a real
# gateway's batches. A steady real gateway (tests/tools/dcem-blast, one
# gateway of the sample site yz-alpha, batches of one timestamp — 8
# readings — at 10 batches/s) is measured publish-to-ack (an ack is sent
# after the commit) in three phases on one broker and one collector with its
# shipped defaults:
#   A. alone;
#   B. while mosquitto_pub floods one topic of a known site
#      (dcem/v1/yz-alpha/gw-flood/data), as fast as it can, with junk that
#      costs the collector most: sound batches (each its own seq) whose
#      second reading has a bad time — each one decoded, set aside in the
#      store's quarantine and acked;
#   C. the same flood on a topic of a site without a ledger
#      (dcem/v1/no-site/junk/data): the `unknown` source.
# Printed per phase: the real gateway's p50 / p99 / max delay, the flood's
# rate, and what the collector counted (dropped over the rate limit,
# refused as malformed).
#
# Usage: scripts/bench/flood.sh [workdir]   (default: a temp dir)
#   COLLECTOR=path/to/dcem-collector scripts/bench/flood.sh   (another build)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/bench/lib.sh"
work=${1:-}
build="$root/build/release"
rate=80 chunk=50000 # readings/s of the real gateway (10 batches); junk lines per mosquitto_pub

"$root/scripts/deps.sh" >/dev/null
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target dcem-collector dcem-gen dcem-blast >/dev/null
col=${COLLECTOR:-"$build/gateway/collector/dcem-collector"}
gen="$build/tests/dcem-gen"
blast="$build/tests/dcem-blast"

bench_work flood "$work"
rm -rf "$work/store.db" "$work/store.db-wal" "$work/store.db-shm" "$work"/*.log "$work"/*.out
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

mkdir -p "$work/sites"
cp "$root/configs/sites/yz-alpha.yaml" "$work/sites/"
[[ -s $work/year.csv ]] || "$gen" --site "$work/sites/yz-alpha.yaml" --year 2025 \
  --out "$work/year.csv" --truth "$work/truth.json" >/dev/null
# two local days per phase (192 batches, about 19 s at 10 batches/s)
day() { awk -F, -v a="$1" -v b="$2" 'NR == 1 || (substr($1, 1, 10) >= a && substr($1, 1, 10) < b)' \
  "$work/year.csv"; }
day 2025-01-01 2025-01-03 >"$work/a.csv"
day 2025-01-03 2025-01-05 >"$work/b.csv"
day 2025-01-05 2025-01-07 >"$work/c.csv"
# four files of junk batches, each with an epoch of its own: 200,000 distinct batches
for k in 1 2 3 4; do
  [[ -s $work/junk-$k.txt ]] || $PY - "$work/junk-$k.txt" "$k" "$chunk" <<'EOF'
import sys
path, k, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rd = ('{"meter":"alpha-in-a","t":1735689600000,"q":"ok","kwh":1000,"kw":50},'
      '{"meter":"alpha-in-b","t":-1,"q":"ok","kwh":1}')
with open(path, "w") as f:
    for seq in range(1, n + 1):
        f.write('{"v":1,"site":"yz-alpha","gateway":"gw-flood","epoch":%d,"seq":%d,"readings":[%s]}\n'
                % (1000 + k, seq, rd))
EOF
done

port=$(free_port)
uri="tcp://127.0.0.1:$port"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n' \
  "$port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
wait_for "mosquitto on $port" 10 port_open "$port"
cat >"$work/collector.yaml" <<EOF
collector: bench
sites: sites
policy: $root/configs/policy/beijing-etown-2024.yaml
mqtt: {uri: "$uri", version: 5}
store: {path: store.db}
identity: {allow_unsigned: true}  # lab: unsigned traffic
health_log_s: 1
EOF
"$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.log" &
col_pid=$!
pids+=("$col_pid")
wait_for "the collector's subscription" 10 grep -q "subscribed to" "$work/collector.log"

# flood TOPIC: mosquitto_pub -l in chunks until $work/stop exists; counts in $work/flood.n
flood() {
  local n=0 k=0
  rm -f "$work/stop"
  while [[ ! -e $work/stop ]]; do
    k=$((k % 4 + 1))
    mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t "$1" -l <"$work/junk-$k.txt" || true
    n=$((n + chunk))
    echo "$n" >"$work/flood.n"
  done
}
# phase NAME CSV EPOCH [FLOOD-TOPIC]: one line of figures
phase() {
  local name=$1 csv=$2 epoch=$3 topic=${4:-} fpid="" t0 t1 line
  echo 0 >"$work/flood.n"
  if [[ -n $topic ]]; then
    flood "$topic" &
    fpid=$!
    pids+=("$fpid")
    sleep 2 # the flood under way first
  fi
  t0=$(date +%s.%N)
  line=$("$blast" --uri "$uri" --site yz-alpha --csv "$csv" --gateways 1 --batch 8 --window 20 \
    --rate "$rate" --epoch "$epoch" --prefix gw-real --timeout-s 600) || fail "dcem-blast ($name): $line"
  t1=$(date +%s.%N)
  if [[ -n $fpid ]]; then
    touch "$work/stop"
    wait "$fpid" || true
  fi
  local sent
  sent=$(<"$work/flood.n")
  printf '%-40s %9s %9s %9s %12s\n' "$name" "$(field lat_p50_ms "$line")" \
    "$(field lat_p99_ms "$line")" "$(field lat_max_ms "$line")" \
    "$(awk -v n="$sent" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a + 2) }')"
}

echo "dcem-collector flood bench: a real gateway at $rate readings/s (10 batches/s) against a junk flood" >&2
{
  printf '%-40s %9s %9s %9s %12s\n' "real gateway, publish to ack (ms)" p50 p99 max "flood msg/s"
  phase "A. alone" "$work/a.csv" 1
  phase "B. flood on yz-alpha/gw-flood" "$work/b.csv" 2 dcem/v1/yz-alpha/gw-flood/data
  phase "C. flood on no-site/junk (unknown)" "$work/c.csv" 3 dcem/v1/no-site/junk/data
} | tee "$work/result.txt"
sleep 2 # the last health line
kill -TERM "$col_pid"
wait "$col_pid" || true
echo
grep "health: received" "$work/collector.log" | tail -1
grep "health: refused from" "$work/collector.log" | tail -4
