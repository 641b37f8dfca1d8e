#!/usr/bin/env bash
# Benchmark (not a test): 100,000 meters. SITES sites of GATEWAYS gateways of
# METERS meters each (default 100 x 5 x 200 = 100,000 meters on 500
# gateways) report every INTERVAL_S (10) seconds — 10,000 readings/s — to
# COLLECTORS (1 or 2) dcem-collectors on one store (BACKEND sqlite or
# postgresql), through one mosquitto, for DURATION_S (600) seconds; then the
# backlog a broker outage of BACKLOG_S (3600) seconds leaves in the
# gateways' spools is published at once (tests/tools/dcem-scale: each
# gateway at most 20 batches ahead of the acks, as an agent) and drained.
#
#   [BACKEND=sqlite|postgresql] [COLLECTORS=1|2] [SPLIT=share|shard] [DURATION_S=600] [BACKLOG_S=3600] \
#   [SITES=100 GATEWAYS=5 METERS=200 INTERVAL_S=10] scripts/bench/scale.sh [WORKDIR]
#
# Printed, each beside its target: publish → ack latency (p50, p99, max) of
# the live phase (target p99 <= 500 ms), whole and after its first minute
# (when a new store has met every meter: the first rounds enter 100,000
# meters into its dictionary and their first states), and round by round;
# how long committed data waited for
# its stored figures (the collector's figures lag, from its health log every
# 10 s; target <= 60 s); each collector's peak RSS (target <= 1 GiB) and
# CPU; the backlog's drain time and rate. Checked: every published reading
# is in the store once (the store's reading and batch counts equal what was
# published; readings are keyed by meter and time), and one site's figures
# equal dcem-audit's over its export.
# Two collectors share an MQTT 5 subscription ($share/dcem/…), or with
# SPLIT=shard each takes half of the sites (shard.sites).
# RESTART=1: a collector restarted on a store that has met every meter. A
# warm-up of WARMUP_S (30) live seconds under epoch 1 fills the store, the
# collectors are stopped and started again, and the measured run follows
# under epoch 2: its live phase only (BACKLOG_S is 0: a backlog's stamps
# would fall before the warm-up's).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/bench/lib.sh"
backend=${BACKEND:-sqlite} collectors=${COLLECTORS:-1}
sites=${SITES:-100} gateways=${GATEWAYS:-5} meters=${METERS:-200}
interval_s=${INTERVAL_S:-10} duration_s=${DURATION_S:-600} backlog_s=${BACKLOG_S:-3600}
[[ $backend == sqlite || $backend == postgresql ]] || { echo "scale.sh: BACKEND: sqlite or postgresql" >&2; exit 2; }
[[ $collectors == 1 || $collectors == 2 ]] || { echo "scale.sh: COLLECTORS: 1 or 2" >&2; exit 2; }
split=${SPLIT:-share}
restart=${RESTART:-0} warmup_s=${WARMUP_S:-30}
[[ $restart == 0 || $restart == 1 ]] || { echo "scale.sh: RESTART: 0 or 1" >&2; exit 2; }
if ((restart)); then
  ((backlog_s == 0)) || echo "scale.sh: RESTART=1: no backlog phase (BACKLOG_S=0)" >&2
  backlog_s=0
fi
[[ $split == share || $split == shard ]] || { echo "scale.sh: SPLIT: share or shard" >&2; exit 2; }
build=${BUILD:-$root/build/release}

"$root/scripts/deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target dcem-collector dcem-scale dcem-audit >/dev/null
col="$build/gateway/collector/dcem-collector"
scale="$build/tests/dcem-scale"
audit="$build/gateway/audit/dcem-audit"

bench_work scale "${1:-}"
rm -rf "$work"/store.db* "$work"/*.log "$work"/*.out "$work"/*.err "$work"/sites "$work"/pg
scripts_sites() { "$root/scripts/bench/scale-sites.sh" "$sites" "$gateways" "$meters" "$work/sites"; }
scripts_sites
cpu_s() {
  local stat
  stat=$(<"/proc/$1/stat")
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($12 + $13) / hz }' <<<"${stat##*) }"
}
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2" | head -1; }

# ---- the store ----
if [[ $backend == postgresql ]]; then
  start_bench_postgres "$work/pg"
  store_yaml="{backend: postgresql, dsn: \"$pg_dsn\"}"
  sql() { "$pg_bin/psql" -X -q -A -t -d "$pg_dsn" -c "$1"; }
else
  store_yaml="{path: store.db}"
  sql() { sqlite3 -cmd '.timeout 10000' "$work/store.db" "$1"; }
fi

# ---- broker ----
port=$(free_port)
uri="tcp://127.0.0.1:$port"
cat >"$work/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
# as the shipped configs/mosquitto/dcem.conf: the collector's window of acks
# waiting for their PUBACK (MQTT 5 receive maximum)
max_inflight_messages 1000
EOF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
wait_for "mosquitto on $port" 10 port_open "$port"

# ---- collectors ----
share="" shard=""
((collectors == 2)) && [[ $split == share ]] && share=", version: 5, share_group: dcem"
declare -a col_pids
for ((i = 1; i <= collectors; i++)); do
  if ((collectors == 2)) && [[ $split == shard ]]; then # collector 1 the first half of the sites
    shard="shard: {sites: [$(for ((k = 1; k <= sites; k++)); do
      (((k <= sites / 2) == (i == 1))) && printf '%ssc-%03d' "${sep:-}" "$k" && sep=", "; done; sep=)]}"
  fi
  cat >"$work/collector-$i.yaml" <<EOF
collector: scale-$i
sites: sites
policy: $root/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: the load is unsigned
mqtt: {uri: "$uri"$share}
store: $store_yaml
health_log_s: 10
$shard
EOF
done
start_collectors() {
  col_pids=()
  for ((i = 1; i <= collectors; i++)); do
    "$col" -c "$work/collector-$i.yaml" >"$work/collector-$i.out" 2>"$work/collector-$i.err" &
    col_pids+=($!)
    pids+=($!)
    wait_for "collector $i's subscription" 120 grep -q "subscribed to" "$work/collector-$i.err"
  done
}
start_collectors

# ---- RESTART=1: the store meets every meter, the collectors start again ----
warm_readings=0 warm_batches=0 epoch=1
if ((restart)); then
  echo "scale: warm-up: ${warmup_s} s live under epoch 1, then the collectors restart" >&2
  warm=$("$scale" --uri "$uri" --sites "$sites" --gateways "$gateways" --meters "$meters" \
    --interval-s "$interval_s" --duration-s "$warmup_s" --backlog-s 0 --epoch 1 \
    --timeout-s 600 2>"$work/warmup.err") || fail "dcem-scale (warm-up): $warm $(cat "$work/warmup.err")"
  warm_readings=$(field readings "$(grep '^batches=' <<<"$warm")")
  warm_batches=$(field batches "$(grep '^batches=' <<<"$warm")")
  for ((i = 0; i < collectors; i++)); do
    kill -TERM "${col_pids[i]}"
    wait "${col_pids[i]}" || fail "collector $((i + 1)) exited with $? after the warm-up"
    mv "$work/collector-$((i + 1)).err" "$work/collector-$((i + 1)).warmup.err"
  done
  start_collectors
  epoch=2
fi

# ---- samples: RSS of each collector, and the figures' lag from its health
# log (how long committed data waited for its stored figures, at most) ----
(
  while sleep 5; do
    line="$(date +%s%3N)"
    for p in "${col_pids[@]}"; do line+=" $(rss_kib "$p")"; done
    line+=" |"
    for ((i = 1; i <= collectors; i++)); do
      lag=$(grep -o 'figures in the last pass (at most [0-9]* ms)' "$work/collector-$i.err" |
        tail -1 | grep -o '[0-9]*' || true)
      line+=" ${lag:-0}"
    done
    echo "$line"
  done
) >"$work/samples.txt" 2>/dev/null &
sampler=$!
pids+=("$sampler")

echo "scale: $((sites * gateways)) gateways x $meters meters = $((sites * gateways * meters)) meters every ${interval_s} s" \
  "($((sites * gateways * meters / interval_s)) readings/s) for ${duration_s} s, then ${backlog_s} s of backlog;" \
  "$collectors collector(s) on $backend" >&2
# the database's CPU: the server and all its processes (PostgreSQL only)
db_cpu() {
  [[ $backend == postgresql ]] || { echo 0; return; }
  local pm total=0 p
  pm=$(head -1 "$pg_data/postmaster.pid")
  for p in "$pm" $(pgrep -P "$pm"); do total=$(awk -v a="$total" -v b="$(cpu_s "$p" 2>/dev/null || echo 0)" 'BEGIN { print a + b }'); done
  echo "$total"
}
cpu0=(); for p in "${col_pids[@]}"; do cpu0+=("$(cpu_s "$p")"); done
db_cpu0=$(db_cpu)
out=$("$scale" --uri "$uri" --sites "$sites" --gateways "$gateways" --meters "$meters" \
  --interval-s "$interval_s" --duration-s "$duration_s" --backlog-s "$backlog_s" \
  --epoch "$epoch" --timeout-s $((backlog_s + 1800)) 2>"$work/scale.err") || fail "dcem-scale: $out $(cat "$work/scale.err")"
echo "$out" >"$work/scale.out"
cpu1=(); for p in "${col_pids[@]}"; do cpu1+=("$(cpu_s "$p")"); done
db_cpu1=$(db_cpu)
kill "$sampler" 2>/dev/null || true
live_end=$(field live_end_ms "$out")

# ---- what the store holds ----
published=$(($(field readings "$(grep '^batches=' <<<"$out")") + warm_readings))
batches=$(($(field batches "$(grep '^batches=' <<<"$out")") + warm_batches))
stored=$(sql "SELECT count(*) FROM readings")
stored_batches=$(sql "SELECT count(*) FROM batches")
[[ $stored == "$published" && $stored_batches == "$batches" ]] ||
  fail "store holds $stored readings in $stored_batches batches; $published in $batches were published"

# one site's figures against dcem-audit over its export (after a last recompute)
sleep 3
"$col" export -c "$work/collector-1.yaml" --site sc-001 --from 2026-01-01 --to 2027-02-01 >"$work/sc-001.csv"
year=$(date -u -d "+8 hours" +%Y) # the sites keep Beijing time
"$col" figures -c "$work/collector-1.yaml" --site sc-001 --year "$year" >"$work/sc-001-figures.json"
"$audit" --site "$work/sites/sc-001.yaml" --policy "$root/configs/policy/beijing-etown-2024.yaml" \
  --readings "$work/sc-001.csv" --year "$year" --json >"$work/sc-001-audit.json"
$PY - "$work" <<'EOF' || fail "sc-001: the collector's figures differ from dcem-audit's"
import json, sys
w = sys.argv[1]
col = json.load(open(f"{w}/sc-001-figures.json"))
aud = json.load(open(f"{w}/sc-001-audit.json"))["periods"]
bad = [f"{a['period']} {k}" for c, a in zip(col, aud) for k, v in a.items() if c.get(k) != v]
if len(col) != len(aud) or bad: print("differ:", bad[:10]); sys.exit(1)
EOF

# ---- figures ----
samples=$($PY - "$work" "$live_end" "$collectors" <<'EOF'
import sys
w, live_end, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
live_lag = lag = 0
rss = [0] * n
for line in open(f"{w}/samples.txt"):
    left, right = line.split("|")
    vals = [int(x) for x in left.split()]
    now, r = vals[0], vals[1:]
    rss = [max(a, b) for a, b in zip(rss, r)]
    lag = max([lag] + [int(x) for x in right.split()])
    if now <= live_end: live_lag = lag
print(f"figures_lag_live_max_s={live_lag / 1000:.1f} figures_lag_max_s={lag / 1000:.1f} "
      + "rss_peak_mib=" + ",".join(f"{v / 1024:.0f}" for v in rss))
EOF
)
cpu=""
for ((i = 0; i < collectors; i++)); do
  cpu+="${cpu:+,}$(awk "BEGIN { printf \"%.0f\", ${cpu1[i]} - ${cpu0[i]} }")"
done
if [[ $backend == sqlite ]]; then
  db_size=$(du -sm "$work"/store.db* | awk '{ s += $1 } END { print s }')
else
  db_size=$(sql "SELECT pg_database_size(current_database()) / 1048576")
fi
echo "scale: $backend, $collectors collector(s)$( ((collectors == 2)) && echo " ($split)"), $((sites * gateways * meters)) meters on $((sites * gateways)) gateways, $((sites * gateways * meters / interval_s)) readings/s"
echo "  live ${duration_s} s: $(field live_batches "$out") batches, $(field live_readings "$out") readings; publish -> ack p50 $(field live_p50_ms "$out") ms, p99 $(field live_p99_ms "$out") ms (target <= 500), max $(field live_max_ms "$out") ms; stalls $(field live_stalls "$out")"
echo "  live after the first minute (a new store has met every meter): $(field live_warm_batches "$out") batches, p99 $(field live_warm_p99_ms "$out") ms (target <= 500)"
echo "  live p99 by round (ms, a round: every gateway's next batch): $(field live_round_p99_ms "$out")"
echo "  figures: committed data waited at most $(field figures_lag_live_max_s "$samples") s for its stored figures while live (target <= 60), $(field figures_lag_max_s "$samples") s over the whole run"
echo "  collector peak RSS $(field rss_peak_mib "$samples") MiB (target <= 1024), CPU $cpu s over the run; store $db_size MiB$([[ $backend == postgresql ]] && awk "BEGIN { printf \", PostgreSQL CPU %.0f s\", $db_cpu1 - $db_cpu0 }")"
echo "  backlog of ${backlog_s} s: $(field backlog_readings "$out") readings drained in $(field backlog_drain_s "$out") s ($(field backlog_rate "$out") readings/s), p99 $(field backlog_p99_ms "$out") ms per batch"
# holes: batches sent again for the collectors' resend requests, and holes given up
holes=$(for ((i = 1; i <= collectors; i++)); do
  grep "health: holes:" "$work/collector-$i.err" | tail -1 || true; done |
  sed -n 's/.*holes: \([0-9]*\) resend requests, \([0-9]*\) holes given up (\([0-9]*\) batches, \([0-9]*\) of them.*; \([0-9]*\) open, \([0-9]*\) batches held, held batches tried again \([0-9]*\) times/\1 \2 \3 \4 \5 \6 \7/p' |
  awk '{ r += $1; h += $2; b += $3; l += $4; o += $5; w += $6; t += $7 } END { printf "%d resend requests, %d holes given up (%d batches; %d of them stored when they came); at the end %d open, %d batches held; held batches tried again %d times", r, h, b, l, o, w, t }')
echo "  holes: ${holes:-none}; $(field resent "$out") batches sent again for resend requests"
echo "  every reading once: $stored readings in $stored_batches batches stored = published; sc-001's figures equal dcem-audit's"
