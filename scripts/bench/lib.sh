# What the benchmarks share (sourced, not run): the work directory and the
# processes a run starts, stopped on exit; failing with a message; a free
# loopback port; waiting for readiness by polling.
PY=/usr/bin/python3

# bench_work NAME [DIR]: $work is DIR (kept), or a new temp dir
# /tmp/dcem-bench-NAME.XXXXXX removed when the run succeeds; $pids holds the
# processes to stop on exit: TERM, then KILL after 0.3 s for what is left.
bench_work() {
  bench_name=$1
  if [[ -n ${2:-} ]]; then
    work=$2 own_work=0
    mkdir -p "$work"
  else
    work=$(mktemp -d "/tmp/dcem-bench-$1.XXXXXX") own_work=1
  fi
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local rc=$?
  if [[ -n ${pg_data:-} ]]; then
    pg_as "$pg_bin/pg_ctl" -D "$pg_data" -w -t 60 -m fast stop >/dev/null 2>&1 || true
  fi
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if ((rc != 0)); then echo "$bench_name.sh: failed; files kept in $work" >&2
  elif ((own_work)); then rm -rf "$work"; fi
  exit "$rc"
}

fail() { echo "$bench_name.sh: $*" >&2; exit 1; }

free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for DESCRIPTION SECONDS COMMAND... : polls until COMMAND succeeds
wait_for() {
  local what=$1 limit=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out waiting for $what"
    sleep 0.05
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_bench_postgres DIR: a PostgreSQL 15 server of the benchmark's own in
# DIR (as user postgres when run as root) on a free loopback port, durable
# (fsync and synchronous_commit on) and sized for this machine: 2 GB of
# shared buffers, checkpoints no more often than every 4 GB of WAL or 15
# minutes (docs/scaling.md); database dcem; $pg_dsn names it. Stopped on
# exit. PG_OPTS: more server options (e.g. "-c shared_preload_libraries=
# pg_stat_statements" to see where the server's time goes).
pg_bin=/usr/lib/postgresql/15/bin
pg_as() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
start_bench_postgres() {
  local dir=$1 sock=$1/sock port
  mkdir -p "$dir/data" "$sock"
  if [[ $(id -u) -eq 0 ]]; then
    chmod o+x "$work" "$dir"
    chown postgres: "$dir/data" "$sock"
  fi
  pg_as "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C \
    >"$dir/initdb.log" 2>&1 || fail "initdb: $(tail -n 3 "$dir/initdb.log")"
  port=$(free_port)
  pg_as "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $sock -c fsync=on -c synchronous_commit=on \
        -c shared_buffers=2GB -c max_wal_size=4GB -c checkpoint_timeout=15min \
        -c max_connections=50 ${PG_OPTS:-}" >/dev/null ||
    fail "postgres did not start: $(tail -n 5 "$dir/data/server.log")"
  pg_data=$dir/data
  "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U postgres dcem
  pg_dsn="host=127.0.0.1 port=$port user=postgres dbname=dcem"
}
