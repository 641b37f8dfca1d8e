#!/usr/bin/env bash
# test_store_pg: the store's unit tests (tests/unit/test_store.c) against a
# PostgreSQL server of their own on a loopback port, which a test restarts
# under load (pg_ctl restart -m fast).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
test_store=$1
make_work store-pg test_store_pg
start_postgres
export DCEM_TEST_STORE_BACKEND=postgresql DCEM_TEST_STORE_DSN=$PG_DSN
if [[ $(id -u) -eq 0 ]]; then
  export DCEM_TEST_PG_RESTART="runuser -u postgres -- $PGBIN/pg_ctl -D $pgdata -w -t 30 -m fast restart >/dev/null"
else
  export DCEM_TEST_PG_RESTART="$PGBIN/pg_ctl -D $pgdata -w -t 30 -m fast restart >/dev/null"
fi
"$test_store"
