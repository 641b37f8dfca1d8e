#!/usr/bin/env bash
# dcem-collector on a PostgreSQL store (a server of the test's own on a
# loopback port), and what --check-config says about the store section.
#
#   collector_pg.sh BUILD_DIR SOURCE_DIR
#
# Proves: store.backend/dsn/path mistakes are refused with file:line; a DSN
# that cannot connect fails --check-config with the reason; a good one
# passes (and migrates); a schema newer than the program is refused; a month
# of an agent's batches stored through a PostgreSQL restart (pg_ctl restart
# -m fast) mid-stream: every reading once, the collector's figures equal
# dcem-audit's over its own export; its first week replayed under a new
# epoch: the store's fast path meets the stored readings, the collector
# runs those transactions again (counted in the health log) and stores no
# reading twice.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
col=$build/gateway/collector/dcem-collector
replay=$build/tests/dcem-replay
gen=$build/tests/dcem-gen
audit=$build/gateway/audit/dcem-audit
make_work collector-pg

mkdir -p "$work/sites"
cp "$src/configs/sites/yz-alpha.yaml" "$work/sites/"
# config STORE-LINE: a collector.yaml with that store section
config() {
  cat <<EOC
collector: test
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "tcp://127.0.0.1:${port:-1}", version: 5}
recompute_ms: 2000
$1
EOC
}
# refused CONFIG-LINE PATTERN: --check-config fails, stderr matches PATTERN
refused() {
  config "$1" >"$work/bad.yaml"
  if "$col" -c "$work/bad.yaml" --check-config >"$work/check.out" 2>&1; then
    fail "accepted: $1"
  fi
  grep -Eq "$2" "$work/check.out" || fail "for '$1': $(cat "$work/check.out")"
}
refused 'store: {backend: postgresql}' 'bad.yaml:7: store.dsn: required'
refused 'store: {backend: postgresql, path: x.db, dsn: "dbname=x"}' 'bad.yaml:7: store.path: is for backend sqlite'
refused 'store: {path: x.db, dsn: "dbname=x"}' 'bad.yaml:7: store.dsn: is for backend postgresql'
refused 'store: {backend: mysql, path: x.db}' "bad.yaml:7: store.backend: 'mysql': valid are sqlite, postgresql"
refused 'store: {backend: postgresql, dsn: "host=127.0.0.1 colour=blue"}' 'bad.yaml:7: store.dsn: .*colour'
# a server that is not there: the reason, before anything else starts
closed=$(free_port)
refused "store: {backend: postgresql, dsn: \"host=127.0.0.1 port=$closed dbname=dcem user=postgres password=s3cret\"}" \
  "bad.yaml: store \(postgresql .*port=$closed.*\): postgresql: cannot connect: .*Connection refused"
grep -q s3cret "$work/check.out" && fail "the password was printed"

start_postgres
start_mosquitto
config "store: {backend: postgresql, dsn: \"$PG_DSN\"}" >"$work/collector.yaml"
"$col" -c "$work/collector.yaml" --check-config | grep -q "store postgresql .*host=127.0.0.1" ||
  fail "--check-config did not name the store"
[[ $(psql_q "SELECT max(version) FROM schema_version") == 1 ]] || fail "not migrated by --check-config"
# a schema from a newer dcem is refused, and left as it is
psql_q "INSERT INTO schema_version VALUES (99, 'from the future', 0)"
"$col" -c "$work/collector.yaml" --check-config >"$work/check.out" 2>&1 && fail "a newer schema was accepted"
grep -q "store schema version 99 is newer than this program's 1" "$work/check.out" ||
  fail "newer schema: $(cat "$work/check.out")"
psql_q "DELETE FROM schema_version WHERE version = 99"

# a month of batches; PostgreSQL restarted while they stream in
"$gen" --site "$work/sites/yz-alpha.yaml" --year 2025 --faults --out "$work/alpha.csv" \
  --truth "$work/truth.json" >/dev/null
awk -F, 'NR == 1 || substr($1, 1, 10) < "2025-02-01" || substr($1, 1, 19) == "2025-02-01T00:00:00"' \
  "$work/alpha.csv" >"$work/month.csv"
mv "$work/month.csv" "$work/alpha.csv"
"$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.err" &
col_pid=$!
pids+=("$col_pid")
wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$work/collector.err"
"$replay" --uri "tcp://127.0.0.1:$port" --site yz-alpha --gateway gw-1 --csv "$work/alpha.csv" \
  --timeout-s 120 >"$work/replay.out" 2>&1 &
replay_pid=$!
pids+=("$replay_pid")
wait_for "the first batches stored" 20 bash -c "[[ \$($PGBIN/psql -X -A -t -d '$PG_DSN' -c 'SELECT count(*) FROM batches') -ge 10 ]]"
pg_restart
wait "$replay_pid" || fail "replay through the restart: $(tail -n 5 "$work/replay.out")"
kill -0 "$col_pid" || fail "the collector died with the server restart"
# the calls during the outage failed (and were retried); the log says why
grep -Em 2 "57P01|not connected|closed the connection|terminating connection" "$work/collector.err" ||
  fail "the restart left no failed store call in the log"
kill -TERM "$col_pid"
wait "$col_pid" || true
grep "health:" "$work/collector.err" | tail -1

gen_rows=$(($(wc -l <"$work/alpha.csv") - 1))
[[ $(psql_q "SELECT count(*) FROM readings") == "$gen_rows" ]] ||
  fail "$(psql_q "SELECT count(*) FROM readings") readings stored, $gen_rows generated"

# the gateway's first week again under a new epoch (a spool replayed after
# its epoch was lost): every reading is stored already, so the fast path's
# plain INSERT meets them, the store loses the group's transaction
# (DCEM_ERETRY) and the collector runs it again on the careful path —
# counted, and nothing stored twice
awk -F, 'NR == 1 || substr($1, 1, 10) < "2025-01-08"' "$work/alpha.csv" >"$work/week.csv"
week_rows=$(($(wc -l <"$work/week.csv") - 1))
"$col" -c "$work/collector.yaml" >"$work/collector2.out" 2>"$work/collector2.err" &
col_pid=$!
pids+=("$col_pid")
wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$work/collector2.err"
"$replay" --uri "tcp://127.0.0.1:$port" --site yz-alpha --gateway gw-1 --csv "$work/week.csv" \
  --epoch 2 --timeout-s 120 >"$work/replay2.out" 2>&1 || fail "the replayed week: $(tail -n 3 "$work/replay2.out")"
kill -TERM "$col_pid"
wait "$col_pid" || fail "the collector exited with $?"
grep "health:" "$work/collector2.err" | tail -3
grep -Eq "health: store conflicts: [1-9][0-9]* transactions run again" "$work/collector2.err" ||
  fail "the replay ran no transaction again: $(grep health: "$work/collector2.err")"
grep -Eq "failed 0; readings 0," "$work/collector2.err" ||
  fail "the replay stored new readings or failed: $(grep 'health: received' "$work/collector2.err")"
[[ $(psql_q "SELECT sum(n_readings), sum(n_new) FROM batches WHERE epoch = 2") == "$week_rows|0" ]] ||
  fail "epoch 2: $(psql_q "SELECT sum(n_readings), sum(n_new) FROM batches WHERE epoch = 2") (n_readings|n_new), want $week_rows|0"
[[ $(psql_q "SELECT count(*) FROM readings") == "$gen_rows" ]] ||
  fail "$(psql_q "SELECT count(*) FROM readings") readings stored, $gen_rows generated"
[[ $(psql_q "SELECT count(*) FROM batches b JOIN epochs e USING (site_id, gateway_id, epoch)
  WHERE b.seq > e.contiguous_seq") == 0 ]] || fail "a gap left in the seqs"
"$col" figures -c "$work/collector.yaml" --site yz-alpha --month 2025-01 >"$work/collector-figures.json"
"$col" export -c "$work/collector.yaml" --site yz-alpha --from 2024-12-01 --to 2026-02-01 \
  >"$work/export.csv"
"$audit" --site "$work/sites/yz-alpha.yaml" --policy "$src/configs/policy/beijing-etown-2024.yaml" \
  --readings "$work/export.csv" --month 2025-01 --json >"$work/audit.json"
$PY - "$work" "$gen_rows" <<'PYEOF'
import json, sys
w, gen_rows = sys.argv[1], int(sys.argv[2])
col = json.load(open(f"{w}/collector-figures.json"))
aud = json.load(open(f"{w}/audit.json"))
bad = []
rows = sum(1 for _ in open(f"{w}/export.csv")) - 1
if rows != gen_rows: bad.append(f"export has {rows} readings, {gen_rows} were generated")
if len(col) != len(aud["periods"]): bad.append("period count differs")
for c, a in zip(col, aud["periods"]):
    for k, v in a.items():
        if c.get(k) != v: bad.append(f"{a['period']} {k}: collector {c.get(k)!r}, dcem-audit {v!r}")
print(f"{len(col)} period(s) identical to dcem-audit; total {col[0]['total_kwh']} kWh")
if bad: print("\n".join(bad[:20])); sys.exit(1)
PYEOF
echo "collector_pg.sh: passed"
