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
