#!/usr/bin/env bash
# Benchmark (not a test): dcem-collector ingesting batches through mosquitto
# into its SQLite store, with its shipped defaults (synchronous=FULL: an ack
# means the batch is on stable storage; figures recomputed every second).
# Load: the 200-meter ledger of scripts/bench/audit.sh, 15-minute readings
# from dcem-gen, shared over 8 gateways (25 meters each) in batches of 250
# readings, published QoS 1 by tests/tools/dcem-blast (paho's asynchronous
# client, batches encoded before the clock starts, 20 unacknowledged
# batches per gateway at most).
#
# Three phases on one broker, each figure printed next to what it is
# compared with in the same run; phases 2 and 3 twice, with a lab collector
# taking unsigned batches and with a signed one (every gateway's key in the
# ledger, every batch signed by dcem-blast before the clock starts and
# verified by the collector, its proof stored, every ack signed):
#   1. ceiling: no collector yet; a null subscriber (mosquitto_sub on
#      dcem/v1/+/+/data at QoS 1, printing only a timestamp per message)
#      counts what it receives while dcem-blast publishes the first 14 days
#      30 times over with nobody acking (its window counts the broker's
#      PUBACKs). Its rate, first to last message, is the ceiling: the
#      broker and the publisher with a consumer that does nothing.
#   2. throughput: dcem-collector on a fresh store; dcem-blast publishes
#      the same 14 days once, as fast as the collector's acks let it.
#      Readings/s stored = readings acked / (last ack - first publish),
#      checked against the collector's health counters and the rows its
#      export returns (and its proofs, signed). ROUNDS rounds (default 3),
#      each unsigned and signed on fresh stores, alternating which goes
#      first. The collector's CPU time (utime + stime) over the phase per
#      stored reading, signed against unsigned, is the cost of the
#      signatures in % of ingest CPU (median of the rounds).
#   3. latency, in the last round, each collector on its store: the next
#      14 days (a new epoch) at a steady 10,000 readings/s; per batch,
#      publish to the arrival of the ack that covers it, measured by the
#      publisher (an ack is sent after the commit).
# When perf is installed, phases 2 and 3 once more with a signed collector
# under perf record: the share of its CPU inside dcem_sig_verify,
# dcem_sign_payload and dcem_store_put_proof (the direct figure: the
# difference of two runs' CPU also carries their group commits and the
# machine's other load). Then dcem-sig-bench: the CPU time of one
# dcem_sig_verify and one dcem_sign_payload of a batch of this size, alone.
#   4. a store's ceiling: after each round's unsigned throughput phase its
#      store is copied (sqlite3 .backup), and at the end, on core 0 with
#      nothing else running, tests/tools/dcem-store-ceiling writes the same
#      rows again from a bare SQLite loop (WAL, synchronous=FULL, the
#      collector's cache settings) in the same transactions — the batches
#      of one transaction share their received_ms — into the store's latest
#      tables: per batch its batches row, per reading its readings row and
#      the intervals row it closed, per transaction one upsert per rollup
#      row touched and each touched meter's state. Its readings/s (median of
#      the rounds) against the unsigned collector's is the ratio; its CPU µs
#      per reading (the loop's process CPU) is printed beside the
#      collector's, a figure the machine's other load moves less.
# Targets (the issue): >= 100,000 readings/s stored and >= half the null
# subscriber's rate; p99 publish-to-stored <= 500 ms at 10,000 readings/s;
# signing and verifying < 5 % of ingest CPU; the unsigned collector >= 50 %
# of the bare SQLite loop's readings/s (each reading a readings row and an
# intervals row).
#
# The consumer (collector or null subscriber) runs on core 0, the broker and
# the publisher on core 1.
#
# BACKEND=postgresql: the same on a PostgreSQL store (start_bench_postgres:
# PostgreSQL 15 of the run's own, fsync and synchronous_commit on, not
# pinned to a core), each collector run on a fresh schema of the database
# (<mode>_<round>, named by options='-c search_path=...' in its DSN); phase
# 4 is tests/tools/dcem-pg-ceiling: the readings of each round's unsigned
# throughput phase (epoch 1) written again into a fresh schema made by the
# store's own migrations, per transaction one COPY each of the batches,
# readings and intervals rows, one multi-row upsert of the touched rollup
# rows and one of the touched meters' states. The server's CPU (the
# postmaster and its children) per stored reading is printed beside the
# collector's and the ceiling's.
#
# Usage: [BACKEND=sqlite|postgresql] scripts/bench/collector.sh [workdir] [rounds]
#        (defaults: sqlite, a temp dir, 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/bench/lib.sh"
work=${1:-}
rounds=${2:-3}
[[ $rounds =~ ^[1-9][0-9]?$ ]] || { echo "collector.sh: rounds: 1..99" >&2; exit 2; }
backend=${BACKEND:-sqlite}
[[ $backend == sqlite || $backend == postgresql ]] ||
  { echo "collector.sh: BACKEND: sqlite or postgresql" >&2; exit 2; }
build="$root/build/release"
meters=200 gateways=8 batch=250 window=20 rate=10000

"$root/scripts/deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
extra=()
[[ $backend == postgresql ]] && extra=(dcem-pg-ceiling)
cmake --build "$build" -j "$(nproc)" --target dcem-collector dcem-gen dcem-blast \
  dcem-sig-bench dcem-store-ceiling "${extra[@]}" >/dev/null
col="$build/gateway/collector/dcem-collector"
gen="$build/tests/dcem-gen"
blast="$build/tests/dcem-blast"
sigbench="$build/tests/dcem-sig-bench"
ceiling="$build/tests/dcem-store-ceiling"
pgceiling="$build/tests/dcem-pg-ceiling"

bench_work collector "$work"
rm -rf "$work"/store*.db* "$work"/snap-*.db* "$work"/ceiling.db* "$work"/*.log "$work"/*.out
if [[ $backend == postgresql ]]; then
  rm -rf "$work/pg"
  start_bench_postgres "$work/pg"
  sql() { "$pg_bin/psql" -X -q -A -t -d "$pg_dsn" -c "SET client_min_messages = warning" -c "$1"; }
  # the database's CPU seconds: the postmaster and all its processes
  db_cpu() {
    local pm total=0 p
    pm=$(head -1 "$pg_data/postmaster.pid")
    for p in "$pm" $(pgrep -P "$pm"); do
      total=$(awk -v a="$total" -v b="$(cpu_s "$p" 2>/dev/null || echo 0)" 'BEGIN { print a + b }')
    done
    echo "$total"
  }
fi
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
lt() { awk "BEGIN { exit !($1 < $2) }"; }
cpu_s() {
  local stat
  stat=$(<"/proc/$1/stat")
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }' <<<"${stat##*) }"
}
# field NAME LINE: the value of NAME=value in dcem-blast's output line
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

# ---- data: the ledger of scripts/bench/audit.sh ----
site="$work/sites/bench.yaml"
mkdir -p "$work/sites"
"$root/scripts/bench/bench-site.sh" "$meters" "$site"
[[ -s $work/year.csv ]] || "$gen" --site "$site" --year 2025 --out "$work/year.csv" --truth "$work/truth.json"
# local days 1-14 and 15-28 of January (times are +08:00 in the file)
awk -F, 'NR == 1 || substr($1, 1, 10) < "2025-01-15"' "$work/year.csv" >"$work/p1.csv"
awk -F, 'NR == 1 || (substr($1, 1, 10) >= "2025-01-15" && substr($1, 1, 10) < "2025-01-29")' \
  "$work/year.csv" >"$work/p2.csv"
rows1=$(($(wc -l <"$work/p1.csv") - 1))
rows2=$(($(wc -l <"$work/p2.csv") - 1))

# ---- broker ----
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
uri="tcp://127.0.0.1:$port"
cat >"$work/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
EOF
taskset -c 1 mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
wait_for "mosquitto on $port" 10 port_open "$port"
blast_args=(--uri "$uri" --site bench --gateways "$gateways" --batch "$batch" --window "$window"
            --timeout-s 600)

echo "dcem-collector bench: $meters meters, 15-minute readings, $gateways gateways x $((meters / gateways))" \
  "meters, batches of $batch readings, window $window batches per gateway" >&2

# ---- 1. ceiling: a null subscriber ----
taskset -c 0 mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -t 'dcem/v1/+/+/data' -F '%U' \
  >"$work/null-sub.out" 2>"$work/null-sub.err" &
sub_pid=$!
pids+=("$sub_pid")
# subscribed once a probe published on a data topic comes back
wait_for "the null subscriber" 10 bash -c "mosquitto_pub -h 127.0.0.1 -p $port -q 1 \
  -t dcem/v1/probe/probe/data -m probe && [[ -s '$work/null-sub.out' ]]"
probes=$(wc -l <"$work/null-sub.out")
echo "1/3 ceiling: null subscriber, $rows1 readings x 30 ..." >&2
c_line=$(taskset -c 1 "$blast" "${blast_args[@]}" --csv "$work/p1.csv" --no-ack --repeat 30 \
  --prefix gw-ceil) || fail "dcem-blast (ceiling): $c_line"
c_batches=$(field batches "$c_line")
wait_for "the null subscriber's last message" 60 \
  bash -c "(( \$(wc -l <'$work/null-sub.out') >= $((probes + c_batches)) ))"
kill -TERM "$sub_pid"
wait "$sub_pid" 2>/dev/null || true
read -r s_msgs s_secs < <(tail -n +$((probes + 1)) "$work/null-sub.out" |
  awk 'NR == 1 { f = $1 } { l = $1 } END { printf "%d %.6f\n", NR, l - f }')
s_rate=$(calc "($s_msgs - 1) / $s_secs * $batch")

# ---- the collectors: unsigned (a lab) and signed ----
# Each gateway gets a key (dcem-blast signs its batches with
# keys/<gateway>.pem), listed in the signed ledger; the signed collector
# verifies every batch against it, keeps its proof and signs its acks.
mkdir -p "$work/keys" "$work/sites-signed"
key_of() { # key_of FILE: the public key of FILE, made first if need be
  if [[ -s $1 ]]; then "$col" --pubkey "$1"; else "$col" --keygen "$1"; fi
}
{
  cat "$site"
  echo "gateways:"
  for ((g = 1; g <= gateways; g++)); do
    id=$(printf 'gw-blast-%02d' "$g")
    printf '  - {id: %s, keys: ["%s"]}\n' "$id" "$(key_of "$work/keys/$id.pem")"
  done
} >"$work/sites-signed/bench.yaml"
key_of "$work/keys/collector.pem" >/dev/null
for mode in unsigned signed; do
  if [[ $mode == unsigned ]]; then
    ledgers=sites identity='{allow_unsigned: true}  # lab: unsigned traffic'
  else
    ledgers=sites-signed identity="{key_file: keys/collector.pem}"
  fi
  cat >"$work/collector-$mode.yaml" <<EOF
collector: bench
sites: $ledgers
policy: $root/configs/policy/beijing-etown-2024.yaml
identity: $identity
mqtt: {uri: "$uri", version: 5}
store: $(if [[ $backend == postgresql ]]; then
  echo "{backend: postgresql, dsn: \"$pg_dsn options='-c search_path=${mode}_1'\"}"
else echo "{path: store-$mode.db}"; fi)
EOF
  [[ $backend == postgresql ]] && sql "CREATE SCHEMA IF NOT EXISTS ${mode}_1" >/dev/null
  "$col" -c "$work/collector-$mode.yaml" --check-config >/dev/null
done

# start_collector MODE: on a fresh store; sets col_pid
# (postgresql: on a fresh schema MODE_ROUND, $schema)
start_collector() {
  rm -f "$work/store-$1.db" "$work/store-$1.db-wal" "$work/store-$1.db-shm"
  if [[ $backend == postgresql ]]; then
    schema=${1}_$r
    sql "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema" >/dev/null
    sed -i "s/search_path=[a-z0-9_]*/search_path=$schema/" "$work/collector-$1.yaml"
  fi
  taskset -c 0 "$col" -c "$work/collector-$1.yaml" >"$work/collector-$1.out" \
    2>"$work/collector-$1.log" &
  col_pid=$!
  pids+=("$col_pid")
  wait_for "the collector's subscription" 10 grep -q "subscribed to" "$work/collector-$1.log"
}
# stop_collector MODE READINGS: stops it and checks that its store holds
# exactly READINGS readings (health line and export), with a proof for
# every batch when signed and none when not; sets h_stored, h_gaps,
# h_failed, h_readings, exported, proofs, warnings
stop_collector() {
  kill -TERM "$col_pid"
  wait "$col_pid" || fail "the $1 collector exited with $?"
  local log="$work/collector-$1.log" health
  health=$(grep "health: received" "$log" | tail -1)
  exported=$("$col" export -c "$work/collector-$1.yaml" --site bench --from 2024-12-01 \
    --to 2025-03-01 | wc -l)
  exported=$((exported - 1)) # the header
  warnings=$(grep -c -E "^(warn|error):" "$log" || true)
  local re='received ([0-9]+), stored ([0-9]+), duplicates ([0-9]+), gaps ([0-9]+), malformed ([0-9]+), .*failed ([0-9]+); readings ([0-9]+)'
  [[ $health =~ $re ]] || fail "cannot read the $1 collector's health line: $health"
  h_stored=${BASH_REMATCH[2]} h_gaps=${BASH_REMATCH[4]} h_failed=${BASH_REMATCH[6]}
  h_readings=${BASH_REMATCH[7]}
  [[ $h_readings == "$2" && $exported == "$2" && $h_failed == 0 ]] ||
    fail "$1: stored $h_readings readings (health), exported $exported, failed $h_failed; sent $2"
  if [[ $backend == postgresql ]]; then
    proofs=$(sql "SELECT count(*) FROM $schema.proofs")
  else
    proofs=$(sqlite3 "$work/store-$1.db" 'SELECT count(*) FROM proofs')
  fi
  if [[ $1 == signed ]]; then
    [[ $proofs == "$h_stored" ]] || fail "signed: $proofs proofs for $h_stored batches"
  else
    [[ $proofs == 0 ]] || fail "unsigned: $proofs proofs"
  fi
}

# ---- 2. throughput, unsigned and signed, alternating ----
# Each round stores the 14 days once per mode, each on a fresh store, in
# the order U S, then S U, ...: a drift in the machine's other load falls
# on both. Ingest CPU = the collector's CPU seconds (utime + stime, all
# threads) from just before the first publish to the last ack, per stored
# reading.
declare -A rate_of cpu_of line_of busy_of lat_of steady_cpu_of steady_busy_of stored_of db_cpu_of
for ((r = 1; r <= rounds; r++)); do
  order=(unsigned signed)
  ((r % 2)) || order=(signed unsigned)
  for mode in "${order[@]}"; do
    echo "2/3 throughput, round $r/$rounds, $mode: $rows1 readings as fast as the collector acks ..." >&2
    start_collector "$mode"
    keys=()
    [[ $mode == signed ]] && keys=(--keys "$work/keys")
    cpu0=$(cpu_s "$col_pid")
    [[ $backend == postgresql ]] && db0=$(db_cpu)
    t_line=$(taskset -c 1 "$blast" "${blast_args[@]}" "${keys[@]}" --csv "$work/p1.csv" \
      --epoch 1) || fail "dcem-blast (throughput, $mode): $t_line"
    cpu1=$(cpu_s "$col_pid")
    [[ $backend == postgresql ]] && db_cpu_of[$mode,$r]=$(calc "($(db_cpu) - $db0) / $rows1 * 1e6")
    rate_of[$mode,$r]=$(field readings_per_s "$t_line")
    cpu_of[$mode,$r]=$(calc "($cpu1 - $cpu0) / $rows1 * 1e6")
    busy_of[$mode,$r]=$(calc "($cpu1 - $cpu0) / $(field elapsed_s "$t_line") * 100")
    line_of[$mode,$r]=$t_line
    # the rows and transactions of this phase, for the ceiling (4.)
    # (postgresql: the schema unsigned_$r is kept; its epoch 1 is this phase)
    [[ $mode == unsigned && $backend == sqlite ]] &&
      sqlite3 "$work/store-unsigned.db" ".backup '$work/snap-$r.db'"
    if ((r < rounds)); then
      stop_collector "$mode" "$rows1"
      continue
    fi
    # ---- 3. latency at a steady rate (the last round, on the same store) ----
    echo "3/3 latency, $mode: $rows2 readings at $rate readings/s ..." >&2
    l_line=$(taskset -c 1 "$blast" "${blast_args[@]}" "${keys[@]}" --csv "$work/p2.csv" \
      --epoch 2 --rate "$rate") || fail "dcem-blast (latency, $mode): $l_line"
    cpu2=$(cpu_s "$col_pid")
    lat_of[$mode]=$l_line
    steady_cpu_of[$mode]=$(calc "($cpu2 - $cpu1) / $rows2 * 1e6")
    steady_busy_of[$mode]=$(calc "($cpu2 - $cpu1) / $(field elapsed_s "$l_line") * 100")
    stop_collector "$mode" "$((rows1 + rows2))"
    stored_of[$mode]="$h_readings readings in $h_stored batches (health line), $exported rows exported, $proofs proofs; gaps $h_gaps, failed $h_failed; warnings/errors logged: $warnings"
  done
done

# ---- where the signed collector's CPU goes (perf, when installed) ----
# The difference of two collectors' CPU per reading also carries the
# difference of their group commits (a collector that falls behind takes
# bigger groups, cheaper per reading) and of the machine's other load; the
# share of the signed collector's own CPU samples inside the signature
# functions does not. One more signed run of phases 2 and 3, each sampled
# with call graphs: perf is enabled just before the first publish (its
# control FIFO acknowledges) and stopped after the last ack.
declare -A perf_verify perf_sign perf_proof perf_crypto perf_samples perf_line
# perf_blast PHASE BLAST-ARGS...: dcem-blast under perf record of the
# collector; its shares into the perf_* arrays under PHASE
perf_blast() {
  local phase=$1 data="$work/perf-$1.data" perf_pid
  shift
  rm -f "$work/perf.ctl" "$work/perf.ack" "$data"
  mkfifo "$work/perf.ctl" "$work/perf.ack"
  perf record -F 999 --call-graph dwarf -D -1 --control "fifo:$work/perf.ctl,$work/perf.ack" \
    -p "$col_pid" -o "$data" 2>"$work/perf-$phase.err" &
  perf_pid=$!
  pids+=("$perf_pid")
  exec 8<>"$work/perf.ctl" 9<>"$work/perf.ack" # read-write: opening never blocks
  echo enable >&8
  read -t 10 -r _ <&9 || fail "perf record did not start: $(tail -3 "$work/perf-$phase.err")"
  perf_line[$phase]=$(taskset -c 1 "$blast" "${blast_args[@]}" --keys "$work/keys" "$@") ||
    fail "dcem-blast (perf, $phase): ${perf_line[$phase]}"
  kill -INT "$perf_pid"
  wait "$perf_pid" || true # 130: stopped by the SIGINT
  exec 8>&- 9>&-
  perf report -i "$data" --children --sort symbol --stdio -g none 2>/dev/null \
    >"$work/perf-$phase-children.txt"
  perf report -i "$data" --no-children --sort dso --stdio -g none -n 2>/dev/null \
    >"$work/perf-$phase-dso.txt" # lines: share, samples, dso
  # share FUNCTION: its inclusive % of the samples (0 when never sampled)
  share() { awk -v f="$1" '$3 == "[.]" && $4 == f { print $1 + 0; found = 1; exit } END { if (!found) print 0 }' \
    "$work/perf-$phase-children.txt"; }
  perf_verify[$phase]=$(share dcem_sig_verify)
  perf_sign[$phase]=$(share dcem_sign_payload)
  perf_proof[$phase]=$(share dcem_store_put_proof)
  perf_crypto[$phase]=$(awk '$3 ~ /^libcrypto/ { print $1 + 0; found = 1; exit } END { if (!found) print 0 }' \
    "$work/perf-$phase-dso.txt")
  perf_samples[$phase]=$(awk '$1 ~ /%$/ && $2 ~ /^[0-9]+$/ { n += $2 } END { print n + 0 }' \
    "$work/perf-$phase-dso.txt")
}
have_perf=0
if command -v perf >/dev/null; then
  have_perf=1
  echo "perf: phases 2 and 3 once more, signed, under perf record ..." >&2
  start_collector signed
  perf_blast full --csv "$work/p1.csv" --epoch 1
  perf_blast steady --csv "$work/p2.csv" --epoch 2 --rate "$rate"
  stop_collector signed "$((rows1 + rows2))"
fi

# ---- 4. the store's ceiling: a bare SQLite loop, the same rows and transactions ----
declare -A ceil_of ceil_cpu ceil_line
store_name=SQLite
[[ $backend == postgresql ]] && store_name=PostgreSQL
for ((r = 1; r <= rounds; r++)); do
  echo "4/4 ceiling: the rows of round $r by a bare $store_name loop ..." >&2
  if [[ $backend == postgresql ]]; then
    ceil_line[$r]=$(taskset -c 0 "$pgceiling" "$pg_dsn" "unsigned_$r" ceiling 1) ||
      fail "dcem-pg-ceiling: ${ceil_line[$r]}"
  else
    ceil_line[$r]=$(taskset -c 0 "$ceiling" "$work/snap-$r.db" "$work/ceiling.db") ||
      fail "dcem-store-ceiling: ${ceil_line[$r]}"
  fi
  ceil_of[,$r]=$(field readings_per_s "${ceil_line[$r]}")
  ceil_cpu[,$r]=$(field cpu_us_per_reading "${ceil_line[$r]}")
done
rm -f "$work"/ceiling.db*

# what one signature costs alone (this thread's CPU time), for a batch of
# the size published here
sig_line=$("$sigbench" --readings "$batch") || fail "dcem-sig-bench: $sig_line"

# ---- report ----
declare -A med_rate med_cpu perf_sig
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
all_rounds() { # all_rounds ARRAY MODE FORMAT: the rounds' values, in round order
  local -n arr=$1
  for ((r = 1; r <= rounds; r++)); do printf "$3 " "${arr[$2,$r]}"; done
}
cvals=()
for ((r = 1; r <= rounds; r++)); do cvals+=("${ceil_of[,$r]}"); done
med_ceil=$(median "${cvals[@]}")
for mode in unsigned signed; do
  vals=() cvals=()
  for ((r = 1; r <= rounds; r++)); do vals+=("${rate_of[$mode,$r]}") cvals+=("${cpu_of[$mode,$r]}"); done
  med_rate[$mode]=$(median "${vals[@]}")
  med_cpu[$mode]=$(median "${cvals[@]}")
done
pct() { calc "($1 - $2) / $2 * 100"; } # pct NEW OLD: NEW's excess over OLD, in % of OLD
d_full=$(pct "${med_cpu[signed]}" "${med_cpu[unsigned]}")
d_steady=$(pct "${steady_cpu_of[signed]}" "${steady_cpu_of[unsigned]}")
pairs=""
for ((r = 1; r <= rounds; r++)); do
  pairs+="$(printf '%+.1f%% ' "$(pct "${cpu_of[signed,$r]}" "${cpu_of[unsigned,$r]}")")"
done
verify_us=$(field verify_us "$sig_line") sign_us=$(field sign_us "$sig_line")
sig_share=$(calc "$verify_us / (${med_cpu[unsigned]} * $batch) * 100")

echo
if [[ $backend == postgresql ]]; then
  store_desc="PostgreSQL $(sql 'SHOW server_version' | cut -d' ' -f1) (fsync, synchronous_commit=on; not pinned)"
else
  store_desc="SQLite $(sqlite3 --version | cut -d' ' -f1) (synchronous=FULL, WAL)"
fi
echo "dcem-collector $("$col" --version | cut -d' ' -f2), mosquitto $(mosquitto -h | sed -n 's/.*version \([0-9.]*\).*/\1/p' | head -1)," \
  "$store_desc, $(openssl version | cut -d' ' -f1-2);"
echo "$meters meters, $gateways gateways, batches of $batch readings, window $window; consumer on core 0," \
  "broker and publisher on core 1"
echo
printf '%-48s %12s %14s %10s\n' "" "readings/s" "batches/s" "seconds"
printf '%-48s %12.0f %14.1f %10.2f\n' "ceiling: null subscriber receives" "$s_rate" \
  "$(calc "($s_msgs - 1) / $s_secs")" "$s_secs"
printf '%-48s %12.0f %14.1f %10.2f\n' "  (dcem-blast publishes, broker PUBACKs)" \
  "$(field readings_per_s "$c_line")" "$(field batches_per_s "$c_line")" "$(field elapsed_s "$c_line")"
l=${ceil_line[$rounds]}
printf '%-48s %12.0f %14s %10.2f\n' "store ceiling: bare $store_name loop, median" "$med_ceil" \
  "$(field transactions "$l") tx" "$(field seconds "$l")"
printf '%-48s %s\n' "  rounds (readings/s)" "$(all_rounds ceil_of '' %.0f)"
printf '%-48s %s\n' "  CPU µs per reading (user + system), rounds" "$(all_rounds ceil_cpu '' %.2f)"
if [[ $backend == postgresql ]]; then
  printf '%-48s %s / %s\n' "  server CPU µs per reading: backend / all, last" \
    "$(field backend_cpu_us_per_reading "${ceil_line[$rounds]}")" \
    "$(field server_cpu_us_per_reading "${ceil_line[$rounds]}")"
fi
printf '%-48s %s\n' "  rows per run, last round" "readings $(field readings "$l"), intervals $(field intervals "$l"), rollup upserts $(field rollups "$l"), meter states $(field states "$l"), batches $(field batches "$l")"
printf '%-48s %12.0f\n' "  rows/s (readings + intervals), last round" "$(field rows_per_s "$l")"
echo
printf '%-48s %14s %14s\n' "dcem-collector" "unsigned (lab)" "signed"
printf '%-48s %14.0f %14.0f\n' "full speed: readings/s stored (acked), median" "${med_rate[unsigned]}" \
  "${med_rate[signed]}"
printf '%-48s %14s %14s\n' "  rounds" "$(all_rounds rate_of unsigned %.0f)" \
  "$(all_rounds rate_of signed %.0f)"
printf '%-48s %13.1f%% %13.1f%%\n' "  of the store ceiling's readings/s (median)" \
  "$(calc "${med_rate[unsigned]} / $med_ceil * 100")" "$(calc "${med_rate[signed]} / $med_ceil * 100")"
printf '%-48s %14.2f %14.2f\n' "  collector CPU µs per stored reading, median" "${med_cpu[unsigned]}" \
  "${med_cpu[signed]}"
printf '%-48s %14s %14s\n' "  rounds" "$(all_rounds cpu_of unsigned %.2f)" \
  "$(all_rounds cpu_of signed %.2f)"
printf '%-48s %14s %14s\n' "  collector CPU busy, rounds (%)" "$(all_rounds busy_of unsigned %.0f)" \
  "$(all_rounds busy_of signed %.0f)"
if [[ $backend == postgresql ]]; then
  printf '%-48s %14s %14s\n' "  PostgreSQL server CPU µs per reading, rounds" \
    "$(all_rounds db_cpu_of unsigned %.2f)" "$(all_rounds db_cpu_of signed %.2f)"
fi
printf '%-48s %14s %14s\n' "  publish to ack p50 / p99 ms, last round" \
  "$(field lat_p50_ms "${line_of[unsigned,$rounds]}") / $(field lat_p99_ms "${line_of[unsigned,$rounds]}")" \
  "$(field lat_p50_ms "${line_of[signed,$rounds]}") / $(field lat_p99_ms "${line_of[signed,$rounds]}")"
printf '%-48s %14.0f %14.0f\n' "steady rate: offered (publisher's schedule)" \
  "$(field publish_readings_per_s "${lat_of[unsigned]}")" "$(field publish_readings_per_s "${lat_of[signed]}")"
printf '%-48s %14s %14s\n' "  publisher behind its schedule, max ms" \
  "$(field max_behind_ms "${lat_of[unsigned]}")" "$(field max_behind_ms "${lat_of[signed]}")"
for m in unsigned signed; do
  l=${lat_of[$m]}
  printf '%-48s %s / %s / %s / %s\n' "  publish to ack, p50 / p90 / p99 / max ms, $m" \
    "$(field lat_p50_ms "$l")" "$(field lat_p90_ms "$l")" "$(field lat_p99_ms "$l")" "$(field lat_max_ms "$l")"
done
printf '%-48s %14.2f %14.2f\n' "  collector CPU µs per stored reading" "${steady_cpu_of[unsigned]}" \
  "${steady_cpu_of[signed]}"
printf '%-48s %13.0f%% %13.0f%%\n' "  collector CPU busy" "${steady_busy_of[unsigned]}" \
  "${steady_busy_of[signed]}"
echo
echo "one signature alone (dcem-sig-bench, CPU µs): a batch of $batch readings, $(field bytes "$sig_line") bytes signed:"
echo "  dcem_sig_verify $verify_us (two ledger keys, the second verifying: $(field verify2_us "$sig_line"))," \
  "dcem_sign_payload $sign_us, of which SHA-256 $(field sha256_us "$sig_line");"
echo "  verification with the key's EVP_PKEY built once: $(field verify_cached_us "$sig_line")"
printf '  -> one verification per batch: %.2f µs per reading; %.1f%% of the unsigned collector'"'"'s CPU per reading at full speed, %.1f%% at %d readings/s\n' \
  "$(calc "$verify_us / $batch")" "$sig_share" \
  "$(calc "$verify_us / (${steady_cpu_of[unsigned]} * $batch) * 100")" "$rate"
echo
printf 'signed - unsigned, collector CPU per stored reading: %+.1f%% at full speed (median of %d rounds; rounds %s), %+.1f%% at %d readings/s\n' \
  "$d_full" "$rounds" "${pairs% }" "$d_steady" "$rate"
if ((have_perf)); then
  echo "signed collector under perf record, inclusive shares of its CPU samples:"
  for ph in full steady; do
    perf_sig[$ph]=$(calc "${perf_verify[$ph]} + ${perf_sign[$ph]} + ${perf_proof[$ph]}")
    printf '  %-6s (%5d samples, %6.0f readings/s): dcem_sig_verify %.1f%%, dcem_sign_payload (acks) %.1f%%, dcem_store_put_proof %.1f%%: %.1f%% (libcrypto alone %.1f%%)\n' \
      "$ph" "${perf_samples[$ph]}" "$(field readings_per_s "${perf_line[$ph]}")" "${perf_verify[$ph]}" \
      "${perf_sign[$ph]}" "${perf_proof[$ph]}" "${perf_sig[$ph]}" "${perf_crypto[$ph]}"
  done
fi
echo
for m in unsigned signed; do echo "stored, $m: ${stored_of[$m]}"; done
echo
met() { lt "$1" "$2" && echo MISSED || echo met; }
t_rate=${med_rate[signed]}
p99=$(field lat_p99_ms "${lat_of[signed]}")
# the verdict: perf's shares when measured (the direct figure), else the
# difference of the medians
if ((have_perf)); then
  worst=$(awk -v a="${perf_sig[full]}" -v b="${perf_sig[steady]}" 'BEGIN { print (a > b ? a : b) }')
  printf 'target signing and verifying < 5%% of ingest CPU: %s (%.1f%% of the signed collector'"'"'s CPU at full speed, %.1f%% at %d readings/s, perf; lower bounds: the proofs'"'"' bytes cost in the commit and checkpoint too)\n' \
    "$(lt "$worst" 5 && echo met || echo MISSED)" "${perf_sig[full]}" "${perf_sig[steady]}" "$rate"
else
  printf 'target signing and verifying < 5%% of ingest CPU: %s (%+.1f%% CPU per reading at full speed, median of %d rounds)\n' \
    "$(lt "$d_full" 5 && echo met || echo MISSED)" "$d_full" "$rounds"
fi
printf 'target >= 100,000 readings/s stored (signed): %s (%.0f, %.2fx)\n' "$(met "$t_rate" 100000)" \
  "$t_rate" "$(calc "$t_rate / 100000")"
printf 'target >= half the null subscriber (%.0f readings/s): %s (%.4fx of the subscriber)\n' \
  "$(calc "$s_rate / 2")" "$(met "$t_rate" "$(calc "$s_rate / 2")")" "$(calc "$t_rate / $s_rate")"
printf 'target p99 <= 500 ms at %d readings/s (signed): %s (p99 %s ms)\n' "$rate" \
  "$(lt 500 "$p99" && echo MISSED || echo met)" "$p99"
printf 'target >= 50%% of the store ceiling (unsigned, the same rows): %s (%.0f of %.0f readings/s, %.1f%%)\n' \
  "$(met "${med_rate[unsigned]}" "$(calc "$med_ceil / 2")")" "${med_rate[unsigned]}" "$med_ceil" \
  "$(calc "${med_rate[unsigned]} / $med_ceil * 100")"
