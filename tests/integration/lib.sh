# Helpers the integration scripts share (sourced, not run): failing with a
# message, a free loopback port, and waiting for readiness by polling.
PY=/usr/bin/python3

fail() { echo "FAIL: $*" >&2; exit 1; }

free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for DESCRIPTION SECONDS COMMAND... : polls until COMMAND succeeds
wait_for() {
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out waiting for $what"
    sleep 0.1
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# make_work NAME: a fresh work directory $work (/tmp/dcem-NAME.XXXXXX) and
# $pids, the processes the test starts; on exit they are stopped (TERM,
# then waited for) and the directory is removed if the test passed, kept
# and named if it failed. A LABEL after NAME names the test in that message.
make_work() {
  work=$(mktemp -d "/tmp/dcem-$1.XXXXXX")
  work_label=${2:-$(basename "$0")}
  pids=()
  trap stop_work EXIT
}

stop_work() {
  local rc=$?
  stop_postgres
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if ((rc == 0)); then rm -rf "$work"; else echo "$work_label failed; files kept in $work" >&2; fi
  exit "$rc"
}

# start_mosquitto [NAME [CONFIG-LINE...]]: a broker of the test's own on a
# free loopback port (no persistence, no queue limit, and the CONFIG-LINEs),
# awaited; sets $port and $uri, adds it to $pids. NAME (default mosquitto)
# names its config and log in $work.
start_mosquitto() {
  local name=${1:-mosquitto} line
  shift || true
  port=$(free_port)
  uri="tcp://127.0.0.1:$port"
  {
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n' \
      "$port"
    for line in "$@"; do echo "$line"; done
  } >"$work/$name.conf"
  mosquitto -c "$work/$name.conf" >"$work/$name.log" 2>&1 &
  pids+=($!)
  wait_for "$name" 10 port_open "$port"
}

# start_postgres: a PostgreSQL 15 server of the test's own, in $work/pg
# (initdb; as user postgres when run as root: the server refuses root),
# listening on a free loopback port and a socket in $work/pgsock, fsync on,
# awaited with pg_isready, with an empty database dcem. Sets $pgport, $pgdata,
# and exports PG_DSN (a libpq conninfo). stop_work stops it (pg_ctl -m fast);
# pg_restart restarts it (pg_ctl restart -m fast, as a crash-safe restart).
PGBIN=/usr/lib/postgresql/15/bin
pg_as() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
start_postgres() {
  pgdata=$work/pg
  local sock=$work/pgsock
  mkdir -p "$pgdata" "$sock"
  if [[ $(id -u) -eq 0 ]]; then
    chmod o+x "$work" # the server's user reaches its directories through $work
    chown postgres: "$pgdata" "$sock"
  fi
  pg_as "$PGBIN/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
    >"$work/initdb.log" 2>&1 || fail "initdb: $(tail -n 3 "$work/initdb.log")"
  pgport=$(free_port)
  pg_as "$PGBIN/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 30 start \
    -o "-c listen_addresses=127.0.0.1 -p $pgport -k $sock -c fsync=on" >/dev/null ||
    fail "postgres did not start: $(tail -n 5 "$pgdata/server.log")"
  pg_started=1
  wait_for postgres 30 "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$pgport"
  "$PGBIN/createdb" -h 127.0.0.1 -p "$pgport" -U postgres dcem
  export PG_DSN="host=127.0.0.1 port=$pgport user=postgres dbname=dcem"
}
pg_restart() {
  pg_as "$PGBIN/pg_ctl" -D "$pgdata" -w -t 30 -m fast restart >/dev/null
}
stop_postgres() {
  if [[ -n ${pg_started:-} ]]; then
    pg_as "$PGBIN/pg_ctl" -D "$pgdata" -w -t 30 -m fast stop >/dev/null 2>&1 || true
    pg_started=
  fi
}
# psql_q SQL: one value from the test's database
psql_q() { "$PGBIN/psql" -X -A -t -q -v ON_ERROR_STOP=1 -d "$PG_DSN" -c "$1"; }

# import_agent_config FILE GATEWAY LEDGER SPOOL METER[:POLL_MS]...: the config
# of an agent that only imports (dcem-agent --import) into the broker at
# $uri: no bus of its own (a closed port), one device per METER (poll_ms
# default 60000), unsigned; checked with --check-config ($agent).
import_agent_config() {
  local file=$1 gateway=$2 ledger=$3 spool=$4 unit=0 dev
  shift 4
  {
    printf 'gateway: %s\nsite: %s\nledger: %s\nprofiles: %s/configs/meters\n' "$gateway" \
      "$(sed -n 's/^site: *//p' "$ledger")" "$ledger" "$src"
    printf 'buses:\n  - {name: none, tcp: "127.0.0.1:1"}\ndevices:\n'
    for dev in "$@"; do
      unit=$((unit + 1))
      printf '  - {bus: none, unit: %d, profile: eastron-sdm630, meter: %s, poll_ms: %s}\n' \
        "$unit" "${dev%%:*}" "$([[ $dev == *:* ]] && echo "${dev#*:}" || echo 60000)"
    done
    printf 'mqtt: {uri: "%s", version: 5, reconnect_max_ms: 1000}\n' "$uri"
    printf 'spool: {dir: "%s", fsync: interval}\nidentity: {allow_unsigned: true}\n' "$spool"
    printf 'batch: {max_readings: 250}\n'
  } >"$file"
  "$agent" -c "$file" --check-config >/dev/null
}

# start_influxd [PORT]: InfluxDB 1.x (Debian influxdb) with its own
# directories in $work and loopback ports (its HTTP port PORT when given),
# awaited, with an empty database dcem; sets $ihttp (its HTTP port), adds
# it to $pids.
start_influxd() {
  ihttp=${1:-$(free_port)}
  local irpc
  irpc=$(free_port)
  cat >"$work/influxd.conf" <<EOC
reporting-disabled = true
bind-address = "127.0.0.1:$irpc"
[meta]
  dir = "$work/influx/meta"
[data]
  dir = "$work/influx/data"
  wal-dir = "$work/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$ihttp"
  log-enabled = false
[monitor]
  store-enabled = false
[rpc]
[coordinator]
EOC
  influxd -config "$work/influxd.conf" >"$work/influxd.log" 2>&1 &
  pids+=($!)
  wait_for "influxd" 30 influx_ping
  curl -s -XPOST "http://127.0.0.1:$ihttp/query" --data-urlencode 'q=CREATE DATABASE dcem' >/dev/null
}

influx_ping() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ihttp/ping") == 204 ]]; }

# spool_records DIR [cut N]: an agent spool's records as "epoch seq" lines
# (whole valid records only, segments in order), read with the layout of
# docs/spool.md; with cut N, first cuts N bytes off the newest segment.
spool_records() {
  $PY - "$@" <<'EOF'
import glob, os, struct, sys, zlib
segs = sorted(glob.glob(os.path.join(sys.argv[1], "seg-*.log")))
if len(sys.argv) > 3 and sys.argv[2] == "cut":
    n = int(sys.argv[3])
    os.truncate(segs[-1], os.path.getsize(segs[-1]) - n)
for seg in segs:
    b = open(seg, "rb").read()
    off = 0
    while off + 32 <= len(b):
        h = b[off:off + 32]
        length, epoch, seq, crc = struct.unpack_from("<IQQI", h, 8)
        if h[:4] != b"DCSP" or off + 32 + length > len(b):
            break
        if zlib.crc32(b[off + 32:off + 32 + length], zlib.crc32(h[:28])) != crc:
            break
        print(epoch, seq)
        off += 32 + length
EOF
}
