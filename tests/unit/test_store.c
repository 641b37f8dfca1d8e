/* The collector's store on a fresh temp directory per test (SQLite) or a
 * fresh schema of a PostgreSQL database (DCEM_TEST_STORE_BACKEND=postgresql,
 * DCEM_TEST_STORE_DSN: tests/integration/store_pg.sh runs it so, as
 * test_store_pg); tests of one backend's own files are skipped on the other.
 * Migrations from
 * empty, an older store upgraded, a newer one refused; idempotent batches,
 * gaps, skips and quarantine; a failure mid-batch leaving nothing;
 * interval revisions keeping hour/day/month rollups exactly the sum of their
 * intervals; retention; counter and splitter state resuming exactly; export
 * order; figures and alerts; kill -9 in a loop of transactions; and the bulk
 * insert rate for 1000-reading batches (printed, not asserted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "calendar.h"
#include "counter.h"
#include "errors.h"
#include "split.h"
#include "store.h"
#include "tmpdir.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIN 60000LL
#define HOUR 3600000LL
#define DAY 86400000LL
#define T0 1735689600000LL /* 2025-01-01T00:00:00Z */
#define SQLITE_SCHEMA_LATEST 9 /* integer site and meter ids */
#define PG_SCHEMA_LATEST 1     /* store_pg.c numbers its own migrations */
#define SCHEMA_LATEST (is_pg ? PG_SCHEMA_LATEST : SQLITE_SCHEMA_LATEST)

/* The backend under test, from the environment (main). */
static const char *backend = "sqlite";
static const char *pg_base_dsn; /* postgresql: the database; each test gets a schema of it */
static const char *pg_restart_cmd; /* postgresql: restarts the server (pg_ctl restart) */
static int is_pg;

typedef struct fx {
    char tmp[64];   /* mkdtemp, removed after the test */
    char db[768];   /* the store: a file inside tmp, or a DSN with the test's schema */
    char schema[32]; /* postgresql: the test's schema */
    char path[256]; /* scratch */
} fx;

/* The SQL of a check on each backend (PostgreSQL names meters by id). */
static const char *Q(const char *sqlite_sql, const char *pg_sql)
{
    return is_pg ? pg_sql : sqlite_sql;
}

static PGconn *pg_connect(const char *dsn)
{
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK) fail_msg("connect: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    return c;
}

static void pg_exec(const char *dsn, const char *sql)
{
    PGconn *c = pg_connect(dsn);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* ---- fixture and helpers ------------------------------------------------------------------ */

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->tmp, sizeof f->tmp, "/tmp/dcem-store-XXXXXX");
    if (!mkdtemp(f->tmp)) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/store.db", f->tmp);
    if (is_pg) {
        static int n;
        snprintf(f->schema, sizeof f->schema, "t%d_%d", (int)getpid(), ++n);
        char sql[96];
        snprintf(sql, sizeof sql, "CREATE SCHEMA %s", f->schema);
        pg_exec(pg_base_dsn, sql);
        snprintf(f->db, sizeof f->db, "%s options='-c search_path=%s'", pg_base_dsn, f->schema);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    if (is_pg) {
        char sql[96];
        snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", f->schema);
        pg_exec(pg_base_dsn, sql);
    }
    rm_rf(f->tmp);
    free(f);
    return 0;
}

static dcem_store *open_opts(fx *f, const dcem_store_opts *o)
{
    dcem_store *st = NULL;
    char err[512];
    int rc = dcem_store_open(backend, f->db, o, &st, err, sizeof err);
    if (rc) fail_msg("open: %d %s", rc, err);
    return st;
}

static dcem_store *open_ok(fx *f)
{
    return open_opts(f, NULL);
}

/* A value of a one-row query on the store file, through a connection of
 * the test's own (the store may be open or closed). */
static int64_t q1(fx *f, const char *sql)
{
    if (is_pg) {
        PGconn *c = pg_connect(f->db);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
        int64_t v = -1;
        if (PQntuples(r) && !PQgetisnull(r, 0, 0)) {
            const char *t = PQgetvalue(r, 0, 0);
            v = !strcmp(t, "t") ? 1 : !strcmp(t, "f") ? 0 : strtoll(t, NULL, 10);
        }
        PQclear(r);
        PQfinish(c);
        return v;
    }
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = -1;
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void sql_exec(fx *f, const char *sql)
{
    if (is_pg) {
        pg_exec(f->db, sql);
        return;
    }
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

/* A batch of n readings: reading i is meter "m<i % meters>" at
 * t0 + (i / meters) seconds, counter t-proportional, power set. */
static dcem_wire_batch batch_of(dcem_wire_reading *r, size_t n, uint64_t epoch, uint64_t seq,
                                int64_t t0, int meters)
{
    dcem_wire_batch b;
    memset(&b, 0, sizeof b);
    snprintf(b.site, sizeof b.site, "sh-dc01");
    snprintf(b.gateway, sizeof b.gateway, "gw-a17");
    b.epoch = epoch;
    b.seq = seq;
    b.readings = r;
    b.n_readings = n;
    for (size_t i = 0; i < n; i++) {
        memset(&r[i], 0, sizeof r[i]);
        snprintf(r[i].meter, sizeof r[i].meter, "m%d", (int)(i % (size_t)meters));
        r[i].t_ms = t0 + (int64_t)(i / (size_t)meters) * 1000;
        r[i].quality = DCEM_WIRE_Q_OK;
        r[i].has_kwh = 1;
        r[i].kwh = 1000.0 + (double)r[i].t_ms / 3.6e6;
        r[i].has_kw = 1;
        r[i].kw = 4.25;
    }
    b.identified = 1;
    return b;
}

static dcem_wire_reading *readings_new(size_t n)
{
    dcem_wire_reading *r = calloc(n, sizeof *r);
    assert_non_null(r);
    return r;
}

typedef struct collect {
    dcem_store_reading r[4096];
    char meter[4096][DCEM_ID_MAX];
    size_t n;
} collect;

static int collect_fn(void *ctx, const dcem_store_reading *r)
{
    collect *c = ctx;
    if (c->n < 4096) {
        c->r[c->n] = *r;
        snprintf(c->meter[c->n], DCEM_ID_MAX, "%s", r->meter);
        c->r[c->n].meter = c->meter[c->n];
        c->r[c->n].site = c->r[c->n].gateway = NULL; /* valid during the callback only */
    }
    c->n++;
    return 0;
}

static size_t count_readings(dcem_store *st)
{
    collect *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(dcem_store_export(st, "sh-dc01", NULL, 0, INT64_MAX, collect_fn, c), 0);
    size_t n = c->n;
    free(c);
    return n;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- migrations --------------------------------------------------------------------------- */

static void test_migrations_from_empty(void **state)
{
    fx *f = *state;
    if (is_pg) skip(); /* the SQLite file itself */
    dcem_store *st = open_ok(f);
    assert_string_equal(dcem_store_backend_name(st), "sqlite");
    assert_int_equal(dcem_store_schema_version(st), SCHEMA_LATEST);
    dcem_store_close(st);
    assert_int_equal(q1(f, "SELECT count(*) FROM schema_version"), SCHEMA_LATEST);
    assert_int_equal(q1(f, "SELECT max(version) FROM schema_version"), SCHEMA_LATEST);
    assert_int_equal(q1(f, "PRAGMA application_id"), 0x6463656d);
    assert_int_equal(q1(f, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                           " ('epochs', 'batches', 'readings', 'quarantine', 'intervals',"
                           " 'rollups', 'meter_state', 'figures', 'alerts')"),
                     9);
    /* the connection's settings: WAL on the file; FULL, foreign keys per connection */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);

    /* reopening applies nothing twice */
    st = open_ok(f);
    assert_int_equal(dcem_store_schema_version(st), SCHEMA_LATEST);
    dcem_store_close(st);
    assert_int_equal(q1(f, "SELECT count(*) FROM schema_version"), SCHEMA_LATEST);
}

static void test_upgrade_and_reopen_keep_data(void **state)
{
    fx *f = *state;
    if (is_pg) skip(); /* the SQLite file itself */
    dcem_store_opts o = {.schema_version = 1};
    dcem_store *st = open_opts(f, &o);
    assert_int_equal(dcem_store_schema_version(st), 1);
    dcem_wire_reading *r = readings_new(20);
    dcem_wire_batch b = batch_of(r, 20, 7, 1, T0, 4);
    int dup = -1;
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 5000, &dup, NULL), 0);
    assert_int_equal(dup, 0);
    /* version 1 has no intervals table: a clear failure, not a crash */
    dcem_interval iv = {.start_ms = T0, .end_ms = T0 + 15 * MIN, .ukwh = 1000000};
    dcem_store_keys k = {T0, 0, 0};
    assert_int_equal(dcem_store_put_interval(st, "sh-dc01", "m0", &iv, &k), DCEM_ESTORAGE);
    assert_non_null(strstr(dcem_store_error(st), "intervals"));
    dcem_store_close(st);
    assert_int_equal(q1(f, "SELECT count(*) FROM sqlite_master WHERE name = 'intervals'"), 0);

    st = open_ok(f); /* upgrades 1 -> latest, keeps the data */
    assert_int_equal(dcem_store_schema_version(st), SCHEMA_LATEST);
    dcem_store_epoch e;
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 7, &e), 0);
    assert_int_equal(e.contiguous_seq, 1);
    assert_int_equal(count_readings(st), 20);
    assert_int_equal(dcem_store_put_interval(st, "sh-dc01", "m0", &iv, &k), 0);
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 9000, &dup, NULL), 0);
    assert_int_equal(dup, 1); /* the batch from before the upgrade is known */
    dcem_store_close(st);

    st = open_ok(f); /* plain reopen */
    dcem_interval back;
    assert_int_equal(dcem_store_get_interval(st, "sh-dc01", "m0", T0, &back), 0);
    assert_int_equal(back.ukwh, 1000000);
    assert_int_equal(count_readings(st), 20);
    dcem_store_close(st);
    assert_int_equal(q1(f, "SELECT count(*) FROM schema_version"), SCHEMA_LATEST);
    free(r);
}

/* A store of schema 6 (REAL kWh intervals, field-by-field meter state)
 * migrated to 7: readings, batches, figures and alerts kept; the intervals,
 * rollups and meter state dropped, the collector rebuilds them. */
static void test_schema6_migrated_keeps_readings_drops_derived(void **state)
{
    fx *f = *state;
    if (is_pg) skip(); /* the SQLite file itself */
    dcem_store_opts o = {.schema_version = 6};
    dcem_store *st = open_opts(f, &o);
    assert_int_equal(dcem_store_schema_version(st), 6);
    dcem_wire_reading *r = readings_new(40);
    dcem_wire_batch b = batch_of(r, 40, 7, 1, T0, 4);
    int dup = -1;
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 5000, &dup, NULL), 0);
    assert_int_equal(
        dcem_store_put_figures(st, "sh-dc01", DCEM_PERIOD_MONTH, 2025 * 12, "{\"pue\":1.5}", 9),
        0);
    dcem_store_alert a = {.site = "sh-dc01", .t_ms = T0, .kind = "meter_stale", .message = "m0",
                          .state = DCEM_STORE_ALERT_RAISED};
    assert_int_equal(dcem_store_add_alert(st, &a, NULL), 0);
    /* the functions of schema 7 refuse an older store clearly */
    unsigned char blob[8] = {1};
    size_t len;
    assert_int_equal(dcem_store_put_meter_state(st, "sh-dc01", "m0", blob, 8, 0, T0),
                     DCEM_ESTORAGE);
    assert_int_equal(dcem_store_get_checkpoint(st, "sh-dc01", "m0", T0, NULL, blob, 8, &len),
                     DCEM_ESTORAGE);
    assert_int_equal(dcem_store_delete_intervals(st, "sh-dc01", "m0", T0), DCEM_ESTORAGE);
    dcem_store_close(st);
    /* rows as a schema-6 collector wrote them */
    sql_exec(f, "INSERT INTO intervals (site, meter, start_ms, end_ms, kwh, estimated_kwh,"
                " integrated_kwh, measured_ms, covered_ms, flags, discarded, rollovers, resets,"
                " hour_ms, day, month) VALUES ('sh-dc01', 'm0', 1735689600000, 1735690500000,"
                " 2.5, 0, 0, 900000, 900000, 0, 0, 0, 0, 1735689600000, 20089, 24300)");
    sql_exec(f, "INSERT INTO rollups (site, kind, key, meter, kwh_ukwh, estimated_ukwh,"
                " integrated_ukwh, measured_ms, covered_ms, intervals, estimated_intervals,"
                " integrated_intervals, discarded, rollovers, resets) VALUES"
                " ('sh-dc01', 2, 20089, 'm0', 2500000, 0, 0, 900000, 900000, 1, 0, 0, 0, 0, 0)");
    sql_exec(f, "INSERT INTO meter_state (site, meter, gap_ms, max_gap_ms, mode, have_anchor,"
                " have_pending, have_late, anchor_t, pending_t, late_t, last_t, split_len_ms,"
                " split_open, cur_start_ms, cur_end_ms, cur_measured_ms, cur_covered_ms,"
                " cur_flags, updated_ms) VALUES ('sh-dc01', 'm0', 3600000, 86400000, 1, 1, 0,"
                " 0, 1735689600000, 0, 0, 1735689600000, 900000, 0, 0, 0, 0, 0, 0, 1)");

    st = open_ok(f);
    assert_int_equal(dcem_store_schema_version(st), SCHEMA_LATEST);
    dcem_store_close(st);
    assert_int_equal(q1(f, "SELECT count(*) FROM readings"), 40);
    assert_int_equal(q1(f, "SELECT count(*) FROM batches"), 1);
    assert_int_equal(q1(f, "SELECT count(*) FROM epochs"), 1);
    assert_int_equal(q1(f, "SELECT count(*) FROM figures"), 1);
    assert_int_equal(q1(f, "SELECT count(*) FROM alerts"), 1);
    assert_int_equal(q1(f, "SELECT count(*) FROM intervals"), 0);
    assert_int_equal(q1(f, "SELECT count(*) FROM rollups"), 0);
    assert_int_equal(q1(f, "SELECT count(*) FROM meter_state"), 0);
    assert_int_equal(q1(f, "SELECT count(*) FROM checkpoints"), 0);
    assert_int_equal(q1(f, "SELECT count(*) FROM pragma_table_info('intervals')"
                           " WHERE name IN ('kwh', 'measured_ms')"),
                     0);

    /* and the migrated store works: the batch is known, the meter has no
     * state (rebuilt from its readings), new intervals and state go in */
    st = open_ok(f);
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 9000, &dup, NULL), 0);
    assert_int_equal(dup, 1);
    assert_int_equal(dcem_store_get_meter_state(st, "sh-dc01", "m0", blob, 8, &len, NULL, NULL),
                     DCEM_ENOTFOUND);
    dcem_interval iv = {.start_ms = T0, .end_ms = T0 + 15 * MIN, .ukwh = 2500000, .readings = 4};
    dcem_store_keys k = {T0, 20089, 2025 * 12};
    assert_int_equal(dcem_store_put_interval(st, "sh-dc01", "m0", &iv, &k), 0);
    assert_int_equal(dcem_store_put_meter_state(st, "sh-dc01", "m0", blob, 8, 0, T0), 0);
    dcem_store_rollup ru;
    assert_int_equal(dcem_store_get_rollup(st, "sh-dc01", "m0", DCEM_PERIOD_DAY, 20089, &ru), 0);
    assert_int_equal(ru.ukwh, 2500000);
    dcem_store_close(st);
    free(r);
}

/* Every row of a query as text (REALs with 17 digits: exact), for
 * comparing a table before and after a migration. Caller frees. */
static char *dump(fx *f, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    while (sqlite3_step(s) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(s); i++) {
            char v[96];
            switch (sqlite3_column_type(s, i)) {
            case SQLITE_NULL:
                snprintf(v, sizeof v, "NULL");
                break;
            case SQLITE_INTEGER:
                snprintf(v, sizeof v, "%lld", sqlite3_column_int64(s, i));
                break;
            case SQLITE_FLOAT:
                snprintf(v, sizeof v, "%.17g", sqlite3_column_double(s, i));
                break;
            default:
                snprintf(v, sizeof v, "'%s'", (const char *)sqlite3_column_text(s, i));
            }
            int n = snprintf(out + len, cap - len, "%s%s", i ? "," : "", v);
            assert_true(n > 0 && (size_t)n < cap - len);
            len += (size_t)n;
        }
        assert_true(len + 2 < cap);
        out[len++] = '\n';
        out[len] = '\0';
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
}

/* A store written at schema 7 (site and meter as text in every row)
 * migrated to integer ids (9): readings, intervals and rollups hold the
 * same rows, exactly, with the names from the dictionary; the API reads
 * them as before, and the migrated store goes on: duplicates known, an
 * interval revised over a migrated one moves its rollups. */
static void test_schema7_migrated_to_integer_ids_exactly(void **state)
{
    if (is_pg) skip(); /* the SQLite schema's names table */
    fx *f = *state;
    dcem_store_opts o = {.schema_version = 7};
    dcem_store *st = open_opts(f, &o);
    assert_int_equal(dcem_store_schema_version(st), 7);
    dcem_wire_reading *r = readings_new(40);
    dcem_wire_batch b = batch_of(r, 40, 7, 1, T0, 4);
    r[5].quality = DCEM_WIRE_Q_COMM_ERROR; /* no values */
    r[5].has_kwh = r[5].has_kw = 0;
    r[6].ct = 2.5; /* a transformer ratio */
    r[7].kwh = 1234.5678901234567;
    int dup = -1;
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 5000, &dup, NULL), 0);
    /* another site with the same meter names */
    dcem_wire_batch b2 = batch_of(r, 8, 9, 1, T0, 2);
    snprintf(b2.site, sizeof b2.site, "sh-dc02");
    assert_int_equal(dcem_store_put_batch(st, &b2, T0 + 6000, &dup, NULL), 0);
    dcem_store_interval_row rows[6];
    for (int i = 0; i < 6; i++) {
        static const char *const m[] = {"m0", "m1", "m2", "m3", "m0", "m1"};
        rows[i] = (dcem_store_interval_row){m[i],
                                            {.start_ms = T0 + (i / 4) * 15 * MIN,
                                             .end_ms = T0 + (i / 4 + 1) * 15 * MIN,
                                             .ukwh = 1000000 + i * 333,
                                             .covered_ms = 15 * MIN,
                                             .readings = 3 + i,
                                             .flags = i == 2 ? DCEM_SEG_ESTIMATED : 0},
                                            {T0, 20089, 2025 * 12}};
        if (i == 2) rows[i].iv.estimated_ukwh[DCEM_SPAN_DAY] = 777;
    }
    assert_int_equal(dcem_store_put_intervals(st, "sh-dc01", rows, 6), 0);
    rows[0].iv.ukwh = 999; /* a revision: revisions 1, rollups moved */
    assert_int_equal(dcem_store_put_intervals(st, "sh-dc01", rows, 1), 0);
    assert_int_equal(dcem_store_put_intervals(st, "sh-dc02", rows + 1, 2), 0);
    dcem_store_close(st);

    static const char rd7[] = "SELECT site, meter, t_ms, kwh, kw, quality, gateway, epoch, seq,"
                              " ratio FROM readings ORDER BY site, t_ms, meter";
    static const char iv7[] =
        "SELECT site, meter, start_ms, end_ms, ukwh, estimated_ukwh, estimated_day_ukwh,"
        " estimated_month_ukwh, estimated_year_ukwh, integrated_ukwh, covered_ms, readings,"
        " discarded, rollovers, resets, flags, hour_ms, day, month, revisions FROM intervals"
        " ORDER BY site, start_ms, meter";
    static const char ru7[] =
        "SELECT site, kind, key, meter, ukwh, estimated_ukwh, estimated_day_ukwh,"
        " estimated_month_ukwh, estimated_year_ukwh, integrated_ukwh, covered_ms, intervals,"
        " read_intervals, estimated_intervals, integrated_intervals, discarded, rollovers, resets"
        " FROM rollups ORDER BY site, kind, key, meter";
    char *before[3] = {dump(f, rd7), dump(f, iv7), dump(f, ru7)};
    assert_int_equal(q1(f, "SELECT count(*) FROM rollups"), 3 * 4 + 3 * 2);

    st = open_ok(f); /* 7 -> 9 */
    assert_int_equal(dcem_store_schema_version(st), SCHEMA_LATEST);
    dcem_store_close(st);
    /* the same queries, the names joined in */
#define NAMED(t) " FROM " t " x JOIN names s ON s.id = x.site JOIN names m ON m.id = x.meter"
    static const char rd9[] = "SELECT s.name, m.name, t_ms, kwh, kw, quality, gateway, epoch, seq,"
                              " ratio" NAMED("readings") " ORDER BY s.name, t_ms, m.name";
    static const char iv9[] =
        "SELECT s.name, m.name, start_ms, end_ms, ukwh, estimated_ukwh, estimated_day_ukwh,"
        " estimated_month_ukwh, estimated_year_ukwh, integrated_ukwh, covered_ms, readings,"
        " discarded, rollovers, resets, flags, hour_ms, day, month, revisions" NAMED(
            "intervals") " ORDER BY s.name, start_ms, m.name";
    static const char ru9[] =
        "SELECT s.name, kind, key, m.name, ukwh, estimated_ukwh, estimated_day_ukwh,"
        " estimated_month_ukwh, estimated_year_ukwh, integrated_ukwh, covered_ms, intervals,"
        " read_intervals, estimated_intervals, integrated_intervals, discarded, rollovers, "
        "resets" NAMED("rollups") " ORDER BY s.name, kind, key, m.name";
#undef NAMED
    char *after[3] = {dump(f, rd9), dump(f, iv9), dump(f, ru9)};
    for (int i = 0; i < 3; i++) {
        assert_true(strlen(before[i]) > 100);
        assert_string_equal(after[i], before[i]);
        free(before[i]);
        free(after[i]);
    }
    assert_int_equal(q1(f, "SELECT count(*) FROM readings WHERE typeof(site) <> 'integer'"
                           " OR typeof(meter) <> 'integer'"),
                     0);
    assert_int_equal(q1(f, "SELECT count(*) FROM names"), 6); /* 2 sites, 4 meters */

    st = open_ok(f);
    assert_int_equal(count_readings(st), 40);
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 9000, &dup, NULL), 0);
    assert_int_equal(dup, 1); /* known from before the migration */
    dcem_store_rollup ru;
    assert_int_equal(dcem_store_get_rollup(st, "sh-dc01", "m0", DCEM_PERIOD_DAY, 20089, &ru), 0);
    assert_int_equal(ru.ukwh, 999 + 1000000 + 4 * 333);
    rows[4].iv.ukwh = 5; /* revise a migrated interval */
    assert_int_equal(dcem_store_put_intervals(st, "sh-dc01", rows + 4, 1), 0);
    assert_int_equal(dcem_store_get_rollup(st, "sh-dc01", "m0", DCEM_PERIOD_DAY, 20089, &ru), 0);
    assert_int_equal(ru.ukwh, 999 + 5);
    assert_int_equal(ru.intervals, 2);
    assert_int_equal(dcem_store_get_rollup(st, "sh-dc02", "m1", DCEM_PERIOD_HOUR, T0, &ru), 0);
    assert_int_equal(ru.ukwh, 1000333);
    assert_int_equal(dcem_store_get_rollup(st, "sh-dc03", "m1", DCEM_PERIOD_HOUR, T0, &ru),
                     DCEM_ENOTFOUND);
    dcem_store_close(st);
    free(r);
}

/* A name first met in a transaction that is rolled back gets no id: the
 * handle's cache of ids forgets it with the transaction, and the next
 * write that names it adds it again (else its rows would name an id that
 * the dictionary does not hold). */
static void test_ids_rolled_back_with_their_transaction(void **state)
{
    if (is_pg) skip(); /* the SQLite schema's names table */
    fx *f = *state;
    dcem_store *st = open_ok(f);
    dcem_wire_reading *r = readings_new(8);
    dcem_wire_batch b = batch_of(r, 8, 7, 1, T0, 2);
    snprintf(b.site, sizeof b.site, "site-new");
    int dup = -1;
    assert_int_equal(dcem_store_begin(st), 0);
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), 0);
    assert_int_equal(dcem_store_rollback(st), 0);
    assert_int_equal(q1(f, "SELECT count(*) FROM names"), 0);
    /* a failed write of its own: the same */
    dcem_store_interval_row bad = {"m-bad", {.start_ms = T0, .end_ms = T0 - 1}, {T0, 0, 0}};
    assert_int_equal(dcem_store_put_intervals(st, "site-new", &bad, 1), DCEM_EINVAL);
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), 0);
    assert_int_equal(dup, 0);
    assert_int_equal(q1(f, "SELECT count(*) FROM names"), 3);
    assert_int_equal(q1(f, "SELECT count(*) FROM readings r WHERE NOT EXISTS"
                           " (SELECT 1 FROM names WHERE id = r.meter)"
                           " OR NOT EXISTS (SELECT 1 FROM names WHERE id = r.site)"),
                     0);
    collect *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(dcem_store_export(st, "site-new", "m1", 0, INT64_MAX, collect_fn, c), 0);
    assert_int_equal(c->n, 4);
    assert_string_equal(c->meter[0], "m1");
    c->n = 0;
    assert_int_equal(dcem_store_export(st, "site-none", NULL, 0, INT64_MAX, collect_fn, c), 0);
    assert_int_equal(c->n, 0);
    free(c);
    dcem_store_close(st);
    free(r);
}

static void test_newer_schema_refused(void **state)
{
    fx *f = *state;
    dcem_store_close(open_ok(f));
    sql_exec(f, "INSERT INTO schema_version VALUES (99, 'from the future', 0)");
    dcem_store *st = (dcem_store *)1;
    char err[512];
    assert_int_equal(dcem_store_open(backend, f->db, NULL, &st, err, sizeof err), DCEM_ECONFIG);
    assert_null(st);
    assert_non_null(strstr(err, "newer"));
    assert_non_null(strstr(err, "99"));
    /* nothing was written into it */
    assert_int_equal(q1(f, "SELECT max(version) FROM schema_version"), 99);
    /* asking for an older version than the file has is refused too */
    sql_exec(f, "DELETE FROM schema_version WHERE version = 99");
    dcem_store_opts o = {.schema_version = 1};
    if (!is_pg) /* (PostgreSQL has one version yet) */
        assert_int_equal(dcem_store_open(backend, f->db, &o, &st, err, sizeof err), DCEM_ECONFIG);
    o.schema_version = SCHEMA_LATEST + 1;
    assert_int_equal(dcem_store_open(backend, f->db, &o, &st, err, sizeof err), DCEM_ECONFIG);
    /* the store is usable again at its own version */
    dcem_store_close(open_ok(f));
}

static void test_foreign_files_and_options_refused(void **state)
{
    fx *f = *state;
    if (is_pg) skip(); /* the SQLite file itself */
    dcem_store *st = NULL;
    char err[512];
    /* some other program's SQLite database */
    sql_exec(f, "CREATE TABLE t (x); INSERT INTO t VALUES (1)");
    assert_int_equal(dcem_store_open("sqlite", f->db, NULL, &st, err, sizeof err), DCEM_ECONFIG);
    assert_non_null(strstr(err, "not a dcem store"));
    assert_int_equal(q1(f, "SELECT count(*) FROM sqlite_master"), 1);
    assert_int_equal(q1(f, "SELECT journal_mode = 'delete' FROM pragma_journal_mode"), 1);
    /* not a database at all */
    snprintf(f->path, sizeof f->path, "%s/junk.db", f->tmp);
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 4096; i++)
        fputc('x', fp);
    fclose(fp);
    assert_int_equal(dcem_store_open("sqlite", f->path, NULL, &st, err, sizeof err), DCEM_ECONFIG);
    /* a directory that does not exist */
    snprintf(f->path, sizeof f->path, "%s/no/such/dir/s.db", f->tmp);
    assert_int_equal(dcem_store_open("sqlite", f->path, NULL, &st, err, sizeof err), DCEM_ESTORAGE);
    /* options and backends */
    assert_int_equal(dcem_store_open("oracle", "x", NULL, &st, err, sizeof err), DCEM_ECONFIG);
    assert_non_null(strstr(err, "valid: sqlite, postgresql"));
    dcem_store_opts o = {.synchronous = 5};
    assert_int_equal(dcem_store_open(NULL, f->db, &o, &st, err, sizeof err), DCEM_ECONFIG);
    o = (dcem_store_opts){.retention_days = -1};
    assert_int_equal(dcem_store_open(NULL, f->db, &o, &st, err, sizeof err), DCEM_ECONFIG);
    o = (dcem_store_opts){.prune_chunk = DCEM_STORE_MAX_PRUNE_CHUNK + 1};
    assert_int_equal(dcem_store_open(NULL, f->db, &o, &st, err, sizeof err), DCEM_ECONFIG);
    assert_int_equal(dcem_store_open(NULL, "", NULL, &st, err, sizeof err), DCEM_ECONFIG);
    assert_null(st);
    dcem_store_close(NULL);
}

/* ---- batches ------------------------------------------------------------------------------ */

typedef struct epoch_walk {
    dcem_store_epoch e[4];
    int n;
} epoch_walk;

static int epoch_fn(void *ctx, const dcem_store_epoch *e)
{
    epoch_walk *w = ctx;
    if (w->n < 4) w->e[w->n] = *e;
    w->n++;
    return 0;
}

/* The proof of who sent a batch: kept with it, read back byte for byte,
 * the first one kept, refused without its batch, gone with its batch. */
static void test_proofs(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    dcem_wire_reading *r = readings_new(3);
    dcem_wire_batch b = batch_of(r, 3, 9, 1, T0, 10);
    static const char key[] = "ed25519:cl7t/dSv5sAwNK8RA9iBBK1FFnyIwZ6wEgBuiyr2pPk=";
    static const char other[] = "ed25519:yulwsQiovGo2ORj9xQjUVthYJWNijhjd26Tcqxwes5Q=";
    static const char payload[] = "{\"v\":1,\"sig\":\"...\"}";
    char got_key[DCEM_PUBKEY_TEXT_MAX];
    void *got = NULL;
    size_t len = 0;
    assert_int_equal(dcem_store_get_proof(st, "sh-dc01", "gw-a17", 9, 1, got_key, sizeof got_key,
                                          &got, &len),
                     DCEM_ENOTFOUND);
    /* no batch row yet: the foreign key refuses it (a constraint: DCEM_EINVAL) */
    assert_int_equal(dcem_store_put_proof(st, "sh-dc01", "gw-a17", 9, 1, key, payload,
                                          sizeof payload - 1),
                     DCEM_EINVAL);
    assert_non_null(strstr(dcem_store_error(st), "FOREIGN KEY"));
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 1, NULL, NULL), 0);
    assert_int_equal(dcem_store_put_proof(st, "sh-dc01", "gw-a17", 9, 1, key, payload,
                                          sizeof payload - 1),
                     0);
    assert_int_equal(dcem_store_put_proof(st, "sh-dc01", "gw-a17", 9, 1, other, "x", 1), 0);
    assert_int_equal(dcem_store_get_proof(st, "sh-dc01", "gw-a17", 9, 1, got_key, sizeof got_key,
                                          &got, &len),
                     0);
    assert_string_equal(got_key, key);
    assert_int_equal(len, sizeof payload - 1);
    assert_memory_equal(got, payload, len);
    free(got);
    /* bad arguments */
    assert_int_equal(dcem_store_put_proof(st, "sh-dc01", "gw-a17", 9, 1, "ed25519:short", "x", 1),
                     DCEM_EINVAL);
    assert_int_equal(dcem_store_put_proof(st, "sh-dc01", "gw-a17", 9, 1, key, "", 0), DCEM_EINVAL);
    /* pruned with its batch (foreign keys are on in the store's connections) */
    sql_exec(f, Q("PRAGMA foreign_keys = ON; DELETE FROM batches", "DELETE FROM batches"));
    assert_int_equal(q1(f, "SELECT count(*) FROM proofs"), 0);
    dcem_store_close(st);
    free(r);
}

static void test_put_batch_idempotent(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    dcem_wire_reading *r = readings_new(100);
    dcem_wire_batch b = batch_of(r, 100, 1732650000, 1, T0, 10);
    int dup = -1;
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 1, &dup, NULL), 0);
    assert_int_equal(dup, 0);
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 2, &dup, NULL), 0);
    assert_int_equal(dup, 1);
    assert_int_equal(count_readings(st), 100);
    assert_int_equal(q1(f, "SELECT count(*) FROM batches"), 1);
    dcem_store_stat s;
    dcem_store_stats(st, &s);
    assert_int_equal(s.batches, 1);
    assert_int_equal(s.duplicates, 1);
    assert_int_equal(s.readings, 100);
    assert_int_equal(s.duplicate_mismatch, 0);

    dcem_store_epoch e;
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 1732650000, &e), 0);
    assert_int_equal(e.contiguous_seq, 1);
    assert_int_equal(e.max_seq, 1);
    assert_int_equal(e.first_ms, T0 + 1);
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 5, &e), DCEM_ENOTFOUND);
    assert_int_equal(e.contiguous_seq, 0); /* expect seq 1 */
    /* the same gateway id at another site is another gateway */
    assert_int_equal(dcem_store_gateway_seq(st, "bj-dc02", "gw-a17", 1732650000, &e),
                     DCEM_ENOTFOUND);

    /* seq 2 repeats half of the readings (a resend after the agent's spool
     * was rebuilt): those are kept as they were */
    dcem_wire_reading *r2 = readings_new(100);
    dcem_wire_batch b2 = batch_of(r2, 100, 1732650000, 2, T0 + 5000, 10);
    for (size_t i = 0; i < 100; i++)
        r2[i].kwh = -1; /* would differ if overwritten */
    assert_int_equal(dcem_store_put_batch(st, &b2, T0 + 3, &dup, NULL), 0);
    assert_int_equal(dup, 0);
    dcem_store_stats(st, &s);
    assert_int_equal(s.readings, 150);
    assert_int_equal(s.readings_replayed, 50);
    assert_int_equal(count_readings(st), 150);
    assert_int_equal(q1(f, "SELECT count(*) FROM readings WHERE kwh = -1"), 50);
    assert_int_equal(q1(f, "SELECT n_new FROM batches WHERE seq = 2"), 50);

    /* gaps: 4 before 3, then 3 closes it; 7 with 5 and 6 missing */
    dcem_wire_batch g = batch_of(r2, 1, 1732650000, 4, T0 + 100000, 1);
    assert_int_equal(dcem_store_put_batch(st, &g, T0 + 4, &dup, NULL), 0);
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 1732650000, &e), 0);
    assert_int_equal(e.contiguous_seq, 2);
    assert_int_equal(e.max_seq, 4);
    g = batch_of(r2, 1, 1732650000, 3, T0 + 101000, 1);
    assert_int_equal(dcem_store_put_batch(st, &g, T0 + 5, &dup, NULL), 0);
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 1732650000, &e), 0);
    assert_int_equal(e.contiguous_seq, 4);
    g = batch_of(r2, 1, 1732650000, 7, T0 + 102000, 1);
    assert_int_equal(dcem_store_put_batch(st, &g, T0 + 6, &dup, NULL), 0);
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 1732650000, &e), 0);
    assert_int_equal(e.contiguous_seq, 4);
    assert_int_equal(e.max_seq, 7);
    /* the agent's birth says it holds nothing before 7: give up 5 and 6 */
    assert_int_equal(dcem_store_skip_to(st, "sh-dc01", "gw-a17", 1732650000, 6), 0);
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 1732650000, &e), 0);
    assert_int_equal(e.contiguous_seq, 7);
    assert_int_equal(e.skipped, 2);
    assert_int_equal(dcem_store_skip_to(st, "sh-dc01", "gw-a17", 1732650000, 3), 0); /* no-op */
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 1732650000, &e), 0);
    assert_int_equal(e.skipped, 2);
    /* 5 came after all (it raced the birth): stored, not a duplicate */
    g = batch_of(r2, 1, 1732650000, 5, T0 + 103000, 1);
    assert_int_equal(dcem_store_put_batch(st, &g, T0 + 7, &dup, NULL), 0);
    assert_int_equal(dup, 0);

    /* an identified but invalid batch: quarantined, and it counts for the ack */
    const char raw[] = "{\"v\":1,\"site\":\"sh-dc01\",\"readings\":[{\"t\":-5}]}";
    assert_int_equal(dcem_store_put_quarantine(st, "sh-dc01", "gw-a17", 1732650000, 8, T0 + 8,
                                               "bad_time: readings[0].t", raw, sizeof raw - 1,
                                               &dup),
                     0);
    assert_int_equal(dup, 0);
    assert_int_equal(dcem_store_put_quarantine(st, "sh-dc01", "gw-a17", 1732650000, 8, T0 + 9,
                                               "bad_time", raw, sizeof raw - 1, &dup),
                     0);
    assert_int_equal(dup, 1);
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 1732650000, &e), 0);
    assert_int_equal(e.contiguous_seq, 8);
    assert_int_equal(q1(f, "SELECT length(payload) FROM quarantine"), (int64_t)(sizeof raw - 1));

    /* a seq reused for other content is still a duplicate, and counted */
    g = batch_of(r2, 3, 1732650000, 1, T0 + 200000, 1);
    assert_int_equal(dcem_store_put_batch(st, &g, T0 + 10, &dup, NULL), 0);
    assert_int_equal(dup, 1);
    dcem_store_stats(st, &s);
    assert_int_equal(s.duplicate_mismatch, 1);
    assert_int_equal(s.quarantined, 1);

    /* the same gateway id and (epoch, seq) at another site is another batch */
    g = batch_of(r2, 2, 1732650000, 1, T0 + 400000, 1);
    snprintf(g.site, sizeof g.site, "bj-dc02");
    assert_int_equal(dcem_store_put_batch(st, &g, T0 + 10, &dup, NULL), 0);
    assert_int_equal(dup, 0);
    assert_int_equal(dcem_store_gateway_seq(st, "bj-dc02", "gw-a17", 1732650000, &e), 0);
    assert_int_equal(e.contiguous_seq, 1);

    /* a second epoch; the walk lists both, in order */
    g = batch_of(r2, 1, 1732659999, 1, T0 + 300000, 1);
    assert_int_equal(dcem_store_put_batch(st, &g, T0 + 11, &dup, NULL), 0);
    dcem_store_close(st);

    st = open_ok(f); /* survives a restart */
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 1732650000, &e), 0);
    assert_int_equal(e.contiguous_seq, 8);
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 12, &dup, NULL), 0);
    assert_int_equal(dup, 1);
    epoch_walk w = {0};
    assert_int_equal(dcem_store_epochs(st, epoch_fn, &w), 0);
    assert_int_equal(w.n, 3);
    assert_string_equal(w.e[0].site, "bj-dc02");
    assert_string_equal(w.e[1].site, "sh-dc01");
    assert_int_equal(w.e[1].epoch, 1732650000);
    assert_int_equal(w.e[1].contiguous_seq, 8);
    assert_int_equal(w.e[1].skipped, 2);
    assert_int_equal(w.e[2].epoch, 1732659999);
    assert_int_equal(w.e[2].contiguous_seq, 1);
    dcem_store_close(st);
    free(r);
    free(r2);
}

static void test_bad_arguments(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    dcem_wire_reading *r = readings_new(2);
    dcem_wire_batch b = batch_of(r, 2, 1, 1, T0, 2);
    int dup;
    b.seq = 0;
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), DCEM_EINVAL);
    b.seq = DCEM_WIRE_MAX_INT + 1;
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), DCEM_EINVAL);
    b.seq = 1;
    snprintf(b.gateway, sizeof b.gateway, "gw/a");
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), DCEM_EINVAL);
    assert_non_null(strstr(dcem_store_error(st), "gateway"));
    assert_int_equal(dcem_store_put_batch(st, NULL, T0, &dup, NULL), DCEM_EINVAL);
    assert_int_equal(dcem_store_put_batch(NULL, &b, T0, &dup, NULL), DCEM_EINVAL);
    assert_int_equal(dcem_store_get_rollup(st, "sh-dc01", "m0", DCEM_PERIOD_YEAR, 0, NULL),
                     DCEM_EINVAL);
    assert_int_equal(dcem_store_commit(st), DCEM_EINVAL); /* none open */
    assert_int_equal(dcem_store_rollback(st), 0);
    assert_int_equal(dcem_store_begin(st), 0);
    assert_int_equal(dcem_store_begin(st), DCEM_EINVAL);
    assert_int_equal(dcem_store_rollback(st), 0);
    assert_int_equal(q1(f, "SELECT count(*) FROM batches"), 0);
    dcem_store_close(st);
    free(r);
}

/* ---- atomicity ---------------------------------------------------------------------------- */

static void test_failure_mid_batch_leaves_nothing(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    dcem_wire_reading *r = readings_new(1000);
    int dup;
    struct {
        const char *what;
        int rc;
    } cases[] = {{"quality", DCEM_EINVAL}, {"inf", DCEM_EINVAL},   {"comm_error", DCEM_EINVAL},
                 {"nan", DCEM_EINVAL},     {"meter", DCEM_EINVAL}, {"time", DCEM_EINVAL}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dcem_wire_batch b = batch_of(r, 1000, 3, 1, T0, 10);
        dcem_wire_reading *bad = &r[700]; /* 700 rows are in when it fails */
        if (c == 0) bad->quality = 9;
        if (c == 1) bad->kwh = INFINITY;
        if (c == 2) bad->quality = DCEM_WIRE_Q_COMM_ERROR;
        if (c == 3) bad->kw = NAN;
        if (c == 4) snprintf(bad->meter, sizeof bad->meter, "m 7");
        if (c == 5) bad->t_ms = -1;
        assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), cases[c].rc);
        assert_non_null(strstr(dcem_store_error(st), "readings[700]"));
        assert_int_equal(count_readings(st), 0);
        assert_int_equal(q1(f, "SELECT count(*) FROM readings"), 0);
        assert_int_equal(q1(f, "SELECT count(*) FROM batches"), 0);
        assert_int_equal(q1(f, "SELECT count(*) FROM epochs"), 0);
        dcem_store_epoch e;
        assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 3, &e), DCEM_ENOTFOUND);
    }
    dcem_store_stat s;
    dcem_store_stats(st, &s);
    /* the bad meter id is refused before the database (an argument error):
     * the other five failed in it and were undone */
    assert_int_equal(s.failed, 5);
    assert_int_equal(s.readings, 0);

    /* the good batch goes in afterwards: the failures left no lock or state */
    dcem_wire_batch b = batch_of(r, 1000, 3, 1, T0, 10);
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), 0);
    assert_int_equal(count_readings(st), 1000);

    /* inside an explicit transaction a failing call dooms it: later write
     * calls and the commit fail, and nothing of it is stored */
    dcem_interval iv = {.start_ms = T0,
                        .end_ms = T0 + 15 * MIN,
                        .ukwh = 2500000,
                        .covered_ms = 15 * MIN,
                        .readings = 15};
    dcem_store_keys k = {T0, 20089, 2025 * 12};
    assert_int_equal(dcem_store_begin(st), 0);
    b = batch_of(r, 1000, 3, 2, T0 + 100 * 1000, 10);
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), 0);
    dcem_wire_batch bad = batch_of(r, 1000, 3, 3, T0 + 200 * 1000, 10);
    r[999].quality = 9;
    assert_int_equal(dcem_store_put_batch(st, &bad, T0, &dup, NULL), DCEM_EINVAL);
    assert_int_equal(dcem_store_put_interval(st, "sh-dc01", "m1", &iv, &k), DCEM_ESTORAGE);
    assert_non_null(strstr(dcem_store_error(st), "roll it back"));
    assert_int_equal(dcem_store_commit(st), DCEM_ESTORAGE);
    assert_non_null(strstr(dcem_store_error(st), "rolled back"));
    assert_int_equal(count_readings(st), 1000);
    assert_int_equal(dcem_store_get_interval(st, "sh-dc01", "m1", T0, &(dcem_interval){0}),
                     DCEM_ENOTFOUND);
    dcem_store_stats(st, &s);
    assert_int_equal(s.batches, 1);
    /* the store is usable again: the same good work in a new transaction */
    assert_int_equal(dcem_store_begin(st), 0);
    b = batch_of(r, 1000, 3, 2, T0 + 100 * 1000, 10);
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), 0);
    assert_int_equal(dup, 0);
    assert_int_equal(dcem_store_put_interval(st, "sh-dc01", "m1", &iv, &k), 0);
    dcem_store_stats(st, &s);
    assert_int_equal(s.batches, 1); /* joins at commit */
    assert_int_equal(dcem_store_commit(st), 0);
    dcem_store_stats(st, &s);
    assert_int_equal(s.batches, 2);
    assert_int_equal(s.intervals, 1);
    assert_int_equal(count_readings(st), 2000);
    dcem_store_epoch e;
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 3, &e), 0);
    assert_int_equal(e.contiguous_seq, 2);
    assert_int_equal(e.max_seq, 2);

    /* and a rolled-back transaction leaves nothing */
    assert_int_equal(dcem_store_begin(st), 0);
    b = batch_of(r, 1000, 3, 3, T0 + 300 * 1000, 10);
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), 0);
    iv.ukwh = 99000000;
    /* a revision: DCEM_ERETRY on PostgreSQL (its fast path met the stored row) */
    int rc = dcem_store_put_interval(st, "sh-dc01", "m1", &iv, &k);
    assert_true(rc == 0 || rc == DCEM_ERETRY);
    assert_int_equal(dcem_store_rollback(st), 0);
    assert_int_equal(count_readings(st), 2000);
    dcem_interval back;
    assert_int_equal(dcem_store_get_interval(st, "sh-dc01", "m1", T0, &back), 0);
    assert_int_equal(back.ukwh, 2500000);
    dcem_store_rollup ru;
    assert_int_equal(dcem_store_get_rollup(st, "sh-dc01", "m1", DCEM_PERIOD_DAY, 20089, &ru), 0);
    assert_int_equal(ru.ukwh, 2500000);
    assert_int_equal(ru.read_intervals, 1);
    dcem_store_stats(st, &s);
    assert_int_equal(s.batches, 2);
    /* an open transaction is rolled back by close */
    assert_int_equal(dcem_store_begin(st), 0);
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), 0);
    dcem_store_close(st);
    assert_int_equal(q1(f, "SELECT count(*) FROM readings"), 2000);
    free(r);
}

/* ---- intervals and rollups ---------------------------------------------------------------- */

#define RV_METERS 2
#define RV_DAYS 4
#define RV_IV (RV_DAYS * 96)

typedef struct rv_model {
    dcem_interval iv[RV_METERS][RV_IV];
    dcem_store_keys keys[RV_IV];
} rv_model;

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* 0..n-1 */
static int64_t urand(uint64_t *s, int64_t n)
{
    return (int64_t)(xorshift(s) % (uint64_t)n);
}

/* An interval as common/meter.h makes them, with its counter events and
 * readings in it; energies in whole micro-kWh, some negative (a revision
 * may lower one). */
static void random_interval(uint64_t *rng, dcem_interval *iv, int64_t start, int64_t end)
{
    memset(iv, 0, sizeof *iv);
    iv->start_ms = start;
    iv->end_ms = end;
    iv->ukwh = urand(rng, 50000001) - 1000;
    iv->covered_ms = urand(rng, end - start + 1);
    iv->readings = (int32_t)urand(rng, 16);
    unsigned r = (unsigned)urand(rng, 8);
    if (r == 0) {
        iv->flags = DCEM_SEG_GAP;
        for (int sp = 0; sp < DCEM_SPAN_COUNT; sp++)
            iv->estimated_ukwh[sp] = urand(rng, iv->ukwh > 0 ? iv->ukwh + 1 : 1) / (sp + 1);
    } else if (r == 1) {
        iv->flags = DCEM_SEG_INTEGRATED;
        iv->integrated_ukwh = iv->ukwh;
    } else if (r == 2) {
        iv->flags = DCEM_SEG_RESET | DCEM_SEG_ROLLOVER;
        for (int sp = 0; sp < DCEM_SPAN_COUNT; sp++)
            iv->estimated_ukwh[sp] = iv->ukwh / 3;
    }
    iv->discarded = (int32_t)urand(rng, 3);
    iv->rollovers = (iv->flags & DCEM_SEG_ROLLOVER) ? 1 : 0;
    iv->resets = (iv->flags & DCEM_SEG_RESET) ? 1 : 0;
}

typedef struct sums {
    int64_t ukwh, est[DCEM_SPAN_COUNT], integ, covered;
    long n, n_read, n_est, n_integ, discarded, rollovers, resets;
} sums;

/* The rollup of (meter, kind, key) the model says, from its intervals
 * (end_ms 0: none). */
static sums model_sum(const rv_model *m, int meter, int kind, int64_t key)
{
    sums s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < RV_IV; i++) {
        const dcem_store_keys *k = &m->keys[i];
        int64_t ik = kind == DCEM_PERIOD_HOUR  ? k->hour_ms
                     : kind == DCEM_PERIOD_DAY ? k->day
                                               : k->month;
        if (ik != key || m->iv[meter][i].end_ms == 0) continue;
        const dcem_interval *iv = &m->iv[meter][i];
        s.ukwh += iv->ukwh;
        for (int sp = 0; sp < DCEM_SPAN_COUNT; sp++)
            s.est[sp] += iv->estimated_ukwh[sp];
        s.integ += iv->integrated_ukwh;
        s.covered += iv->covered_ms;
        s.n++;
        s.n_read += iv->readings > 0;
        s.n_est += (iv->flags & DCEM_SEG_ESTIMATED) != 0;
        s.n_integ += (iv->flags & DCEM_SEG_INTEGRATED) != 0;
        s.discarded += iv->discarded;
        s.rollovers += iv->rollovers;
        s.resets += iv->resets;
    }
    return s;
}

static void check_rollup(dcem_store *st, const rv_model *m, int meter, int kind, int64_t key)
{
    char id[16];
    snprintf(id, sizeof id, "m%d", meter);
    sums s = model_sum(m, meter, kind, key);
    dcem_store_rollup r;
    int rc = dcem_store_get_rollup(st, "sh-dc01", id, kind, key, &r);
    if (s.n == 0) {
        assert_int_equal(rc, DCEM_ENOTFOUND);
        return;
    }
    assert_int_equal(rc, 0);
    /* exact: integer sums, whatever the order of the revisions and deletions */
    assert_int_equal(r.ukwh, s.ukwh);
    for (int sp = 0; sp < DCEM_SPAN_COUNT; sp++)
        assert_int_equal(r.estimated_ukwh[sp], s.est[sp]);
    assert_int_equal(r.integrated_ukwh, s.integ);
    assert_int_equal(r.covered_ms, s.covered);
    assert_int_equal(r.intervals, s.n);
    assert_int_equal(r.read_intervals, s.n_read);
    assert_int_equal(r.estimated_intervals, s.n_est);
    assert_int_equal(r.integrated_intervals, s.n_integ);
    assert_int_equal(r.discarded_readings, s.discarded);
    assert_int_equal(r.rollovers, s.rollovers);
    assert_int_equal(r.resets, s.resets);
}

static int count_rollup_fn(void *ctx, const dcem_store_rollup *r)
{
    (void)r;
    ++*(int *)ctx;
    return 0;
}

/* A replayed reading inside an explicit transaction: SQLite keeps the
 * first at once; PostgreSQL's fast path (a plain INSERT) meets the stored
 * row and the transaction is lost (DCEM_ERETRY), and the same transaction
 * run again — careful from its start — stores exactly the new readings,
 * with their marks. Then a revision the same way, and the fast path back
 * for new rows once the careful transactions are spent. */
static void test_replay_in_transaction_runs_again(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    int dup;
    dcem_wire_reading *r = readings_new(100);
    dcem_wire_batch b = batch_of(r, 100, 9, 1, T0, 10);
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), 0);
    /* seq 2: readings 50..99 of seq 1 again, and 50 new */
    dcem_wire_reading *r2 = readings_new(100);
    dcem_wire_batch b2 = batch_of(r2, 100, 9, 2, T0 + 5000, 10);
    unsigned char fresh[100];
    int retries = 0, rc;
    for (;;) {
        assert_int_equal(dcem_store_begin(st), 0);
        rc = dcem_store_put_batch(st, &b2, T0 + 1, &dup, fresh);
        if (!rc) rc = dcem_store_commit(st);
        if (rc != DCEM_ERETRY) break;
        assert_non_null(strstr(dcem_store_error(st), "run it again"));
        assert_int_equal(dcem_store_rollback(st), 0);
        assert_true(++retries < 2);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(retries, strcmp(dcem_store_backend_name(st), "postgresql") ? 0 : 1);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(fresh[i], i >= 50);
    dcem_store_stat s;
    dcem_store_stats(st, &s);
    assert_int_equal(s.batches, 2);
    assert_int_equal(s.readings, 150);
    assert_int_equal(s.readings_replayed, 50);
    assert_int_equal(count_readings(st), 150);
    assert_int_equal(q1(f, "SELECT n_new FROM batches WHERE seq = 2"), 50);

    /* a revised interval in a transaction: the same */
    dcem_interval iv = {.start_ms = T0, .end_ms = T0 + 15 * MIN, .ukwh = 2500000,
                        .covered_ms = 15 * MIN, .readings = 15};
    dcem_store_keys k = {T0, 20089, 2025 * 12};
    assert_int_equal(dcem_store_put_interval(st, "sh-dc01", "m1", &iv, &k), 0);
    iv.ukwh = 3000000;
    retries = 0;
    for (;;) {
        assert_int_equal(dcem_store_begin(st), 0);
        rc = dcem_store_put_interval(st, "sh-dc01", "m1", &iv, &k);
        if (!rc) rc = dcem_store_commit(st);
        if (rc != DCEM_ERETRY) break;
        assert_int_equal(dcem_store_rollback(st), 0);
        assert_true(++retries < 2);
    }
    assert_int_equal(rc, 0);
    dcem_store_rollup ru;
    assert_int_equal(dcem_store_get_rollup(st, "sh-dc01", "m1", DCEM_PERIOD_DAY, 20089, &ru), 0);
    assert_int_equal(ru.ukwh, 3000000);
    assert_int_equal(ru.intervals, 1);
    dcem_store_stats(st, &s);
    assert_int_equal(s.interval_revisions, 1);
    /* many transactions later, new batches still go in (fast path again) */
    for (uint64_t seq = 3; seq < 3 + 150; seq++) {
        b2 = batch_of(r2, 10, 9, seq, T0 + (int64_t)seq * 100000, 10);
        assert_int_equal(dcem_store_begin(st), 0);
        assert_int_equal(dcem_store_put_batch(st, &b2, T0 + 2, &dup, NULL), 0);
        assert_int_equal(dcem_store_commit(st), 0);
    }
    assert_int_equal(count_readings(st), 150 + 1500);
    free(r);
    free(r2);
    dcem_store_close(st);
}

static void test_interval_revisions_keep_rollups_exact(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    rv_model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    /* +05:30: local hours are not UTC hours, and the days cross a month end */
    dcem_tz *tz = dcem_tz_new_fixed(5 * 3600 + 1800);
    assert_non_null(tz);
    dcem_zone z;
    dcem_zone_init(&z, tz);
    int64_t start = dcem_zone_day_start(&z, dcem_days_from_civil(2025, 1, 30));
    for (int i = 0; i < RV_IV; i++)
        dcem_store_period_keys(&z, start + i * 15 * MIN, &m->keys[i]);
    assert_int_equal(m->keys[0].hour_ms % HOUR, HOUR / 2); /* local hour = UTC half hour */
    assert_int_equal(m->keys[0].month, 2025 * 12 + 0);
    assert_int_equal(m->keys[RV_IV - 1].month, 2025 * 12 + 1);

    uint64_t rng = 0x853c49e6748fea9bull;
    /* first pass: every interval, a day per transaction */
    for (int i = 0; i < RV_IV; i++) {
        if (i % 96 == 0) assert_int_equal(dcem_store_begin(st), 0);
        for (int me = 0; me < RV_METERS; me++) {
            char id[8];
            snprintf(id, sizeof id, "m%d", me);
            random_interval(&rng, &m->iv[me][i], start + i * 15 * MIN, start + (i + 1) * 15 * MIN);
            assert_int_equal(dcem_store_put_interval(st, "sh-dc01", id, &m->iv[me][i], &m->keys[i]),
                             0);
        }
        if (i % 96 == 95) assert_int_equal(dcem_store_commit(st), 0);
    }
    /* revisions: random intervals replaced many times, late data style —
     * one by one, then 97 rows per dcem_store_put_intervals call, where one
     * interval is often revised twice within a call */
    static const char *ids[RV_METERS];
    static char id_text[RV_METERS][8];
    for (int me = 0; me < RV_METERS; me++) {
        snprintf(id_text[me], sizeof id_text[me], "m%d", me);
        ids[me] = id_text[me];
    }
    dcem_store_interval_row rows[97];
    size_t n_rows = 0;
    /* in one transaction, run again from the same random state when the
     * store loses it to a conflict (DCEM_ERETRY: PostgreSQL's fast path met
     * a stored row; its careful path takes the rest) */
    uint64_t rng0 = rng;
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        rng = rng0;
        n_rows = 0;
        assert_int_equal(dcem_store_begin(st), 0);
        for (int r = 0; r < 6000 && !rc; r++) {
            int i = (int)(xorshift(&rng) % (r < 3000 ? RV_IV : 40));
            int me = (int)(xorshift(&rng) % RV_METERS);
            random_interval(&rng, &m->iv[me][i], start + i * 15 * MIN, start + (i + 1) * 15 * MIN);
            if (r < 3000) {
                rc = dcem_store_put_interval(st, "sh-dc01", ids[me], &m->iv[me][i], &m->keys[i]);
                continue;
            }
            rows[n_rows++] = (dcem_store_interval_row){ids[me], m->iv[me][i], m->keys[i]};
            if (n_rows == 97 || r == 5999) {
                rc = dcem_store_put_intervals(st, "sh-dc01", rows, n_rows);
                n_rows = 0;
            }
        }
        if (!rc) rc = dcem_store_commit(st);
        if (rc != DCEM_ERETRY || attempt == 1) break;
        assert_int_equal(dcem_store_rollback(st), 0);
        rc = 0;
    }
    if (rc) fail_msg("revisions: %s", dcem_store_error(st));
    /* a caller that got the keys wrong and corrects them: the wrong rows go */
    dcem_store_keys wrong = {m->keys[5].hour_ms + 7 * HOUR, m->keys[5].day + 9,
                             m->keys[5].month + 3};
    assert_int_equal(
        dcem_store_put_interval(st, "sh-dc01", "m0", &m->iv[0][5], &wrong), 0);
    dcem_store_rollup ru;
    assert_int_equal(
        dcem_store_get_rollup(st, "sh-dc01", "m0", DCEM_PERIOD_MONTH, wrong.month, &ru), 0);
    assert_int_equal(ru.intervals, 1);
    assert_int_equal(
        dcem_store_put_interval(st, "sh-dc01", "m0", &m->iv[0][5], &m->keys[5]), 0);
    assert_int_equal(
        dcem_store_get_rollup(st, "sh-dc01", "m0", DCEM_PERIOD_MONTH, wrong.month, &ru),
        DCEM_ENOTFOUND);
    /* the same within one call: wrong keys, then corrected */
    rows[0] = (dcem_store_interval_row){"m1", m->iv[1][7], wrong};
    rows[1] = (dcem_store_interval_row){"m1", m->iv[1][7], m->keys[7]};
    assert_int_equal(dcem_store_put_intervals(st, "sh-dc01", rows, 2), 0);
    assert_int_equal(
        dcem_store_get_rollup(st, "sh-dc01", "m1", DCEM_PERIOD_DAY, wrong.day, &ru),
        DCEM_ENOTFOUND);
    /* an invalid row fails the whole call: nothing of it is stored */
    dcem_interval before;
    assert_int_equal(dcem_store_get_interval(st, "sh-dc01", "m0", m->iv[0][3].start_ms, &before), 0);
    rows[0] = (dcem_store_interval_row){"m0", m->iv[0][3], m->keys[3]};
    rows[0].iv.ukwh += 1;
    rows[1] = rows[0];
    rows[1].iv.estimated_ukwh[DCEM_SPAN_YEAR] = DCEM_STORE_MAX_UKWH + 1;
    assert_int_equal(dcem_store_put_intervals(st, "sh-dc01", rows, 2), DCEM_EINVAL);
    dcem_interval after;
    assert_int_equal(dcem_store_get_interval(st, "sh-dc01", "m0", m->iv[0][3].start_ms, &after), 0);
    assert_int_equal(after.ukwh, before.ukwh);
    assert_memory_equal(&after, &m->iv[0][3], sizeof after);

    /* late data: m0's intervals from day 3 on are deleted (before its replay
     * from a checkpoint) and some put back revised; the rollups follow */
    int cut = 2 * 96 + 37;
    assert_int_equal(dcem_store_delete_intervals(st, "sh-dc01", "m0", m->iv[0][cut].start_ms), 0);
    dcem_store_stat ds;
    dcem_store_stats(st, &ds);
    assert_int_equal(ds.intervals_deleted, RV_IV - cut);
    for (int i = cut; i < RV_IV; i++)
        m->iv[0][i].end_ms = 0; /* gone from the model */
    assert_int_equal(dcem_store_get_interval(st, "sh-dc01", "m0", start + cut * 15 * MIN, &after),
                     DCEM_ENOTFOUND);
    assert_int_equal(dcem_store_get_interval(st, "sh-dc01", "m1", start + cut * 15 * MIN, &after),
                     0);
    /* the local day holding the cut keeps a rollup; the day after has none */
    assert_int_equal(
        dcem_store_get_rollup(st, "sh-dc01", "m0", DCEM_PERIOD_DAY, m->keys[3 * 96].day, &ru),
        DCEM_ENOTFOUND);
    for (int i = cut; i < cut + 20; i++) {
        random_interval(&rng, &m->iv[0][i], start + i * 15 * MIN, start + (i + 1) * 15 * MIN);
        assert_int_equal(dcem_store_put_interval(st, "sh-dc01", "m0", &m->iv[0][i], &m->keys[i]),
                         0);
    }
    /* nothing to delete is no error */
    assert_int_equal(dcem_store_delete_intervals(st, "sh-dc01", "m0", start + RV_IV * 15 * MIN), 0);
    dcem_store_close(st);

    st = open_ok(f);
    int hours = 0, days = 0, months = 0;
    for (int me = 0; me < RV_METERS; me++) {
        for (int i = 0; i < RV_IV; i++) {
            check_rollup(st, m, me, DCEM_PERIOD_HOUR, m->keys[i].hour_ms);
            if (i % 4 == 0) check_rollup(st, m, me, DCEM_PERIOD_DAY, m->keys[i].day);
            if (i % 96 == 0) check_rollup(st, m, me, DCEM_PERIOD_MONTH, m->keys[i].month);
            char id[8];
            snprintf(id, sizeof id, "m%d", me);
            dcem_interval back;
            if (m->iv[me][i].end_ms == 0) {
                assert_int_equal(dcem_store_get_interval(st, "sh-dc01", id,
                                                         start + i * 15 * MIN, &back),
                                 DCEM_ENOTFOUND);
                continue;
            }
            assert_int_equal(dcem_store_get_interval(st, "sh-dc01", id, m->iv[me][i].start_ms, &back),
                             0);
            assert_memory_equal(&back, &m->iv[me][i], sizeof back); /* every field */
        }
    }
    /* one row per local hour, day and month per meter (the days are whole local days) */
    assert_int_equal(dcem_store_rollups(st, "sh-dc01", DCEM_PERIOD_HOUR, INT64_MIN, INT64_MAX,
                                        count_rollup_fn, &hours),
                     0);
    assert_int_equal(dcem_store_rollups(st, "sh-dc01", DCEM_PERIOD_DAY, INT64_MIN, INT64_MAX,
                                        count_rollup_fn, &days),
                     0);
    assert_int_equal(dcem_store_rollups(st, "sh-dc01", DCEM_PERIOD_MONTH, INT64_MIN, INT64_MAX,
                                        count_rollup_fn, &months),
                     0);
    /* m0 lost its intervals from cut + 20 on: it keeps (cut + 20) / 4 hours
     * rounded up, 3 days (the third partly: 1 February) and both months */
    assert_int_equal(m->keys[cut + 20].month, 2025 * 12 + 1);
    assert_int_equal(hours, RV_DAYS * 24 + (cut + 20 + 3) / 4);
    assert_int_equal(days, RV_DAYS + 3);
    assert_int_equal(months, 2 + 2);
    /* month = sum of its days = sum of its hours, exactly */
    for (int me = 0; me < RV_METERS; me++) {
        int64_t by_day = 0, by_hour = 0;
        for (int i = 0; i < RV_IV; i++) { /* local hours start at i % 4 == 0, days at i % 96 */
            if (m->keys[i].month != 2025 * 12) continue;
            if (i % 4 == 0) by_hour += model_sum(m, me, DCEM_PERIOD_HOUR, m->keys[i].hour_ms).ukwh;
            if (i % 96 == 0) by_day += model_sum(m, me, DCEM_PERIOD_DAY, m->keys[i].day).ukwh;
        }
        char id[8];
        snprintf(id, sizeof id, "m%d", me);
        assert_int_equal(
            dcem_store_get_rollup(st, "sh-dc01", id, DCEM_PERIOD_MONTH, 2025 * 12, &ru), 0);
        assert_int_equal(ru.ukwh, by_day);
        assert_int_equal(ru.ukwh, by_hour);
        dcem_meter_period mp;
        memset(&mp, 0, sizeof mp);
        dcem_store_rollup_add(&mp, &ru);
        dcem_store_rollup_add(&mp, &ru);
        assert_int_equal(mp.ukwh, 2 * ru.ukwh);
        for (int sp = 0; sp < DCEM_SPAN_COUNT; sp++)
            assert_int_equal(mp.estimated_ukwh[sp], 2 * ru.estimated_ukwh[sp]);
        assert_int_equal(mp.integrated_ukwh, 2 * ru.integrated_ukwh);
        assert_int_equal(mp.read_intervals, 2 * ru.read_intervals);
        assert_int_equal(mp.estimated_intervals, 2 * ru.estimated_intervals);
        assert_int_equal(mp.integrated_intervals, 2 * ru.integrated_intervals);
        assert_int_equal(mp.discarded_readings, 2 * ru.discarded_readings);
        assert_int_equal(mp.rollovers, 2 * ru.rollovers);
        assert_int_equal(mp.resets, 2 * ru.resets);
        assert_int_equal(mp.expected_intervals, 0); /* the caller's */
    }
    dcem_store_stat s;
    dcem_store_stats(st, &s);
    assert_int_equal(s.intervals, 0); /* since this open */
    dcem_store_close(st);
    assert_int_equal(q1(f, "SELECT count(*) FROM intervals"), RV_METERS * RV_IV - (RV_IV - cut - 20));
    assert_true(q1(f, "SELECT sum(revisions) FROM intervals") >= 3000);
    dcem_tz_free(tz);
    free(m);
}

typedef struct iv_walk {
    int n;
    int64_t last_start;
    char last_meter[DCEM_ID_MAX];
} iv_walk;

static int iv_walk_fn(void *ctx, const char *meter, const dcem_interval *iv)
{
    iv_walk *w = ctx;
    assert_true(iv->start_ms > w->last_start ||
                (iv->start_ms == w->last_start && strcmp(meter, w->last_meter) > 0));
    w->last_start = iv->start_ms;
    snprintf(w->last_meter, sizeof w->last_meter, "%s", meter);
    w->n++;
    return 0;
}

static void test_intervals_walk(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    assert_int_equal(dcem_store_begin(st), 0);
    for (int i = 9; i >= 0; i--) {
        for (int me = 2; me >= 0; me--) {
            char id[8];
            snprintf(id, sizeof id, "m%d", me);
            dcem_interval iv = {
                .start_ms = T0 + i * 15 * MIN, .end_ms = T0 + (i + 1) * 15 * MIN, .ukwh = i + me};
            dcem_store_keys k = {T0 + (i / 4) * HOUR, 20089, 2025 * 12};
            assert_int_equal(dcem_store_put_interval(st, "sh-dc01", id, &iv, &k), 0);
        }
    }
    assert_int_equal(dcem_store_commit(st), 0);
    iv_walk w = {0, INT64_MIN, ""};
    assert_int_equal(
        dcem_store_intervals(st, "sh-dc01", T0 + 15 * MIN, T0 + 45 * MIN, iv_walk_fn, &w), 0);
    assert_int_equal(w.n, 6);
    /* every rule of put_interval, one field wrong at a time */
    const dcem_interval good = {.start_ms = T0, .end_ms = T0 + 15 * MIN, .ukwh = 1,
                                .covered_ms = 15 * MIN};
    dcem_store_keys k = {T0, 0, 0};
    dcem_interval bad[16];
    int nb = 0;
    for (int i = 0; i < 16; i++)
        bad[i] = good;
    bad[nb++].end_ms = T0;
    bad[nb++].end_ms = T0 + HOUR + 1;
    bad[nb].covered_ms = 15 * MIN + 1, nb++;
    bad[nb++].covered_ms = -1;
    bad[nb++].ukwh = DCEM_STORE_MAX_UKWH + 1;
    bad[nb++].ukwh = INT64_MIN;
    bad[nb++].estimated_ukwh[DCEM_SPAN_INTERVAL] = -DCEM_STORE_MAX_UKWH - 1;
    bad[nb++].estimated_ukwh[DCEM_SPAN_MONTH] = DCEM_STORE_MAX_UKWH + 1;
    bad[nb++].integrated_ukwh = INT64_MAX;
    bad[nb++].readings = -1;
    bad[nb++].discarded = -1;
    bad[nb++].rollovers = -1;
    bad[nb++].resets = -1;
    for (int i = 0; i < nb; i++)
        if (dcem_store_put_interval(st, "sh-dc01", "m0", &bad[i], &k) != DCEM_EINVAL)
            fail_msg("bad interval %d accepted", i);
    /* the limits themselves are accepted */
    dcem_interval edge = good;
    edge.start_ms = T0 - HOUR, edge.end_ms = T0;
    edge.ukwh = -DCEM_STORE_MAX_UKWH;
    edge.estimated_ukwh[DCEM_SPAN_YEAR] = DCEM_STORE_MAX_UKWH;
    edge.covered_ms = 0;
    assert_int_equal(dcem_store_put_interval(st, "sh-dc01", "m5", &edge, &k), 0);
    dcem_interval back;
    assert_int_equal(dcem_store_get_interval(st, "sh-dc01", "m0", T0, &back), 0);
    assert_int_equal(back.ukwh, 0);
    assert_int_equal(dcem_store_get_interval(st, "sh-dc01", "m9", T0, &back), DCEM_ENOTFOUND);
    dcem_store_close(st);
}

/* ---- retention ---------------------------------------------------------------------------- */

static void test_retention_prunes_readings_only(void **state)
{
    fx *f = *state;
    dcem_store_opts o = {.retention_days = 30, .prune_chunk = 100};
    dcem_store *st = open_opts(f, &o);
    const int64_t now = T0 + 60 * DAY;
    dcem_wire_reading *r = readings_new(240);
    int dup;
    /* 60 days of readings, 4 meters, one batch per day of 60 readings (15 per meter) */
    assert_int_equal(dcem_store_begin(st), 0);
    for (int d = 0; d < 60; d++) {
        dcem_wire_batch b = batch_of(r, 60, 11, (uint64_t)d + 1, T0 + d * DAY, 4);
        /* batches of the first 40 days were received then; the rest now */
        assert_int_equal(dcem_store_put_batch(st, &b, d < 40 ? T0 + d * DAY + 1000 : now, &dup, NULL), 0);
        dcem_interval iv = {.start_ms = T0 + d * DAY,
                            .end_ms = T0 + d * DAY + 15 * MIN,
                            .ukwh = 1500000,
                            .covered_ms = 15 * MIN};
        dcem_store_keys k = {T0 + d * DAY, 20089 + d, 2025 * 12 + d / 31};
        assert_int_equal(dcem_store_put_interval(st, "sh-dc01", "m0", &iv, &k), 0);
    }
    assert_int_equal(dcem_store_commit(st), 0);
    assert_int_equal(count_readings(st), 3600);
    /* an epoch with a gap: its batch above H must stay */
    dcem_wire_batch g = batch_of(r, 1, 12, 5, T0 + 500, 1);
    assert_int_equal(dcem_store_put_batch(st, &g, T0, &dup, NULL), 0);

    size_t total = 0, n = 0;
    int calls = 0;
    do {
        assert_int_equal(dcem_store_prune(st, now, &n), 0);
        assert_true(n <= 100);
        total += n;
        calls++;
    } while (n == 100);
    /* days 0..29 are older than 30 days: 30 * 60 readings + the gap batch's one */
    assert_int_equal(total, 30 * 60 + 1);
    assert_int_equal(calls, 19);
    assert_int_equal(count_readings(st), 30 * 60);
    assert_int_equal(q1(f, "SELECT min(t_ms) FROM readings"), now - 30 * DAY);
    /* intervals and rollups stay */
    assert_int_equal(q1(f, "SELECT count(*) FROM intervals"), 60);
    dcem_store_rollup ru;
    assert_int_equal(dcem_store_get_rollup(st, "sh-dc01", "m0", DCEM_PERIOD_MONTH, 2025 * 12, &ru),
                     0);
    assert_int_equal(ru.intervals, 31);
    assert_int_equal(ru.ukwh, 31 * 1500000);
    /* batch rows received before the cutoff and covered by H are gone; the
     * gap batch and the epochs' seqs stay, so acks and gap checks are intact */
    assert_int_equal(q1(f, "SELECT count(*) FROM batches WHERE epoch = 11"), 30);
    assert_int_equal(q1(f, "SELECT count(*) FROM batches WHERE epoch = 12"), 1);
    dcem_store_epoch e;
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 11, &e), 0);
    assert_int_equal(e.contiguous_seq, 60);
    dcem_store_stat s;
    dcem_store_stats(st, &s);
    assert_int_equal(s.pruned_readings, 30 * 60 + 1);
    assert_int_equal(s.pruned_batches, 30);
    dcem_store_close(st);

    /* retention 0 keeps everything */
    st = open_ok(f);
    assert_int_equal(dcem_store_prune(st, now + 1000 * DAY, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(count_readings(st), 30 * 60);
    dcem_store_close(st);
    free(r);
}

/* ---- meter state and checkpoints --------------------------------------------------------- */

static void test_meter_state_round_trip(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    unsigned char blob[DCEM_STORE_MAX_STATE], back[DCEM_STORE_MAX_STATE + 1];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (unsigned char)(i * 7 + 3);
    size_t len = 99;
    int stale = -1;
    int64_t upd = -1;
    assert_int_equal(dcem_store_get_meter_state(st, "sh-dc01", "m0", back, sizeof back, &len,
                                                &stale, &upd),
                     DCEM_ENOTFOUND);
    assert_int_equal(len, 0);

    /* kept byte for byte, replaced by the next put */
    assert_int_equal(dcem_store_put_meter_state(st, "sh-dc01", "m0", blob, 300, 1, T0 + 26 * MIN),
                     0);
    assert_int_equal(dcem_store_get_meter_state(st, "sh-dc01", "m0", back, sizeof back, &len,
                                                &stale, &upd),
                     0);
    assert_int_equal(len, 300);
    assert_memory_equal(back, blob, 300);
    assert_int_equal(stale, 1);
    assert_int_equal(upd, T0 + 26 * MIN);
    assert_int_equal(dcem_store_put_meter_state(st, "sh-dc01", "m0", blob + 1,
                                                DCEM_STORE_MAX_STATE - 1, 0, T0),
                     0);
    /* stale and updated_ms may be left out */
    assert_int_equal(
        dcem_store_get_meter_state(st, "sh-dc01", "m0", back, sizeof back, &len, NULL, NULL), 0);
    assert_int_equal(len, DCEM_STORE_MAX_STATE - 1);
    assert_memory_equal(back, blob + 1, len);
    /* too small a buffer: EFULL and the size needed */
    assert_int_equal(dcem_store_get_meter_state(st, "sh-dc01", "m0", back, 10, &len, NULL, NULL),
                     DCEM_EFULL);
    assert_int_equal(len, DCEM_STORE_MAX_STATE - 1);
    /* an empty state is a state */
    assert_int_equal(dcem_store_put_meter_state(st, "sh-dc01", "m1", NULL, 0, 0, T0), 0);
    assert_int_equal(dcem_store_get_meter_state(st, "sh-dc01", "m1", NULL, 0, &len, &stale, NULL),
                     0);
    assert_int_equal(len, 0);
    /* refused */
    assert_int_equal(dcem_store_put_meter_state(st, "sh-dc01", "m0", blob,
                                                DCEM_STORE_MAX_STATE + 1, 0, T0),
                     DCEM_EINVAL);
    assert_int_equal(dcem_store_put_meter_state(st, "sh-dc01", "m0", NULL, 5, 0, T0), DCEM_EINVAL);
    assert_int_equal(dcem_store_put_meter_state(st, "sh-dc01", "m0", blob, 5, 2, T0), DCEM_EINVAL);
    assert_int_equal(dcem_store_put_meter_state(st, "sh-dc01", "m 0", blob, 5, 0, T0),
                     DCEM_EINVAL);
    assert_int_equal(dcem_store_get_meter_state(st, "sh-dc01", "m0", back, sizeof back, NULL, NULL,
                                                NULL),
                     DCEM_EINVAL);
    dcem_store_close(st);
    assert_int_equal(q1(f, "SELECT count(*) FROM meter_state"), 2);
    assert_int_equal(q1(f, Q("SELECT length(state) FROM meter_state WHERE meter = 'm0'",
                             "SELECT length(state) FROM meter_state s JOIN meters m"
                             " ON m.id = s.meter_id WHERE m.name = 'm0'")),
                     DCEM_STORE_MAX_STATE - 1);
}

static void test_checkpoints(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    unsigned char blob[64], back[64];
    size_t len = 0;
    int64_t t = 0;
    assert_int_equal(
        dcem_store_get_checkpoint(st, "sh-dc01", "m0", INT64_MAX, &t, back, sizeof back, &len),
        DCEM_ENOTFOUND);
    /* one a day for ten days, m0 and m1 each, the blob saying which */
    for (int d = 0; d < 10; d++)
        for (int me = 0; me < 2; me++) {
            memset(blob, 0, sizeof blob);
            blob[0] = (unsigned char)d, blob[1] = (unsigned char)me;
            assert_int_equal(dcem_store_put_checkpoint(st, "sh-dc01", me ? "m1" : "m0",
                                                       T0 + d * DAY, blob, 2 + (size_t)d),
                             0);
        }
    /* the latest strictly before */
    assert_int_equal(
        dcem_store_get_checkpoint(st, "sh-dc01", "m0", T0 + 5 * DAY, &t, back, sizeof back, &len),
        0);
    assert_int_equal(t, T0 + 4 * DAY);
    assert_int_equal(len, 6);
    assert_int_equal(back[0], 4);
    assert_int_equal(back[1], 0);
    assert_int_equal(dcem_store_get_checkpoint(st, "sh-dc01", "m1", T0 + 5 * DAY + 1, NULL, back,
                                               sizeof back, &len),
                     0);
    assert_int_equal(back[0], 5);
    assert_int_equal(back[1], 1);
    assert_int_equal(
        dcem_store_get_checkpoint(st, "sh-dc01", "m0", T0, &t, back, sizeof back, &len),
        DCEM_ENOTFOUND);
    assert_int_equal(dcem_store_get_checkpoint(st, "sh-dc01", "m0", T0 + 5 * DAY, &t, back, 3, &len),
                     DCEM_EFULL);
    assert_int_equal(len, 6);
    /* a put at the same time replaces */
    blob[0] = 42;
    assert_int_equal(dcem_store_put_checkpoint(st, "sh-dc01", "m0", T0 + 4 * DAY, blob, 1), 0);
    assert_int_equal(
        dcem_store_get_checkpoint(st, "sh-dc01", "m0", T0 + 5 * DAY, &t, back, sizeof back, &len),
        0);
    assert_int_equal(len, 1);
    assert_int_equal(back[0], 42);
    /* a late reading at day 6 + 1 ms makes m0's checkpoints from then on wrong */
    assert_int_equal(dcem_store_drop_checkpoints(st, "sh-dc01", "m0", T0 + 6 * DAY + 1), 0);
    assert_int_equal(
        dcem_store_get_checkpoint(st, "sh-dc01", "m0", INT64_MAX, &t, back, sizeof back, &len), 0);
    assert_int_equal(t, T0 + 6 * DAY);
    assert_int_equal(
        dcem_store_get_checkpoint(st, "sh-dc01", "m1", INT64_MAX, &t, back, sizeof back, &len), 0);
    assert_int_equal(t, T0 + 9 * DAY); /* another meter's stay */
    /* inside a transaction, undone by rollback */
    assert_int_equal(dcem_store_begin(st), 0);
    assert_int_equal(dcem_store_drop_checkpoints(st, "sh-dc01", "m1", INT64_MIN), 0);
    assert_int_equal(dcem_store_rollback(st), 0);
    assert_int_equal(
        dcem_store_put_checkpoint(st, "sh-dc01", "m0", T0, blob, DCEM_STORE_MAX_STATE + 1),
        DCEM_EINVAL);
    assert_int_equal(dcem_store_put_checkpoint(st, "sh-dc01", "m0", T0, NULL, 1), DCEM_EINVAL);
    assert_int_equal(
        dcem_store_get_checkpoint(st, "sh-dc01", "m0", T0, &t, back, sizeof back, NULL),
        DCEM_EINVAL);
    dcem_store_close(st);
    assert_int_equal(q1(f, Q("SELECT count(*) FROM checkpoints WHERE meter = 'm0'",
                             "SELECT count(*) FROM checkpoints c JOIN meters m"
                             " ON m.id = c.meter_id WHERE m.name = 'm0'")),
                     7);
    assert_int_equal(q1(f, Q("SELECT count(*) FROM checkpoints WHERE meter = 'm1'",
                             "SELECT count(*) FROM checkpoints c JOIN meters m"
                             " ON m.id = c.meter_id WHERE m.name = 'm1'")),
                     10);
}

/* put_batch marks each reading it inserted: what the collector pushes into
 * the meter pipeline, once. */
static void test_put_batch_marks_fresh_readings(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    dcem_wire_reading *r = readings_new(40);
    unsigned char fresh[40];
    int dup = -1;
    /* 20 readings of 4 meters */
    dcem_wire_batch b = batch_of(r, 20, 7, 1, T0, 4);
    memset(fresh, 7, sizeof fresh);
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, fresh), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(fresh[i], 1);
    /* the same batch again: a duplicate, nothing fresh */
    memset(fresh, 7, sizeof fresh);
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, fresh), 0);
    assert_int_equal(dup, 1);
    for (int i = 0; i < 20; i++)
        assert_int_equal(fresh[i], 0);
    /* another batch with half of them replayed (a resent spool), and one
     * reading twice within it */
    dcem_wire_reading *r2 = readings_new(40);
    for (int i = 0; i < 10; i++)
        r2[i] = r[i + 10];
    dcem_wire_batch b2 = batch_of(r2 + 10, 10, 7, 2, T0 + 1000 * MIN, 4);
    memcpy(r2 + 20, r2 + 10, sizeof *r2); /* same meter and time as r2[10] */
    b2.readings = r2;
    b2.n_readings = 21;
    memset(fresh, 7, sizeof fresh);
    assert_int_equal(dcem_store_put_batch(st, &b2, T0, &dup, fresh), 0);
    assert_int_equal(dup, 0);
    for (int i = 0; i < 21; i++)
        if (fresh[i] != (i >= 10 && i < 20)) fail_msg("fresh[%d] = %d", i, fresh[i]);
    assert_int_equal(count_readings(st), 30);
    /* a failing batch marks nothing */
    dcem_wire_batch b3 = batch_of(r2 + 10, 10, 7, 3, T0 + 2000 * MIN, 4);
    r2[19].quality = 9;
    memset(fresh, 7, sizeof fresh);
    assert_int_not_equal(dcem_store_put_batch(st, &b3, T0, &dup, fresh), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(fresh[i], 0);
    dcem_store_close(st);
    free(r);
    free(r2);
}

static void test_export_order(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    dcem_wire_reading r[8];
    dcem_wire_batch b = batch_of(r, 8, 1, 1, T0, 1);
    /* scrambled times and meters over two batches */
    const char *meters[8] = {"pdu-b", "pdu-a", "ups-1", "pdu-a", "pdu-b", "ups-1", "pdu-a", "pv"};
    const int64_t ts[8] = {3000, 1000, 1000, 2000, 1000, 3000, 3000, 2000};
    for (int i = 0; i < 8; i++) {
        snprintf(r[i].meter, sizeof r[i].meter, "%s", meters[i]);
        r[i].t_ms = T0 + ts[i];
    }
    r[7].has_kwh = 0; /* power only */
    r[5].quality = DCEM_WIRE_Q_COMM_ERROR;
    r[5].has_kwh = r[5].has_kw = 0;
    b.n_readings = 4;
    int dup;
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 10000, &dup, NULL), 0);
    b.readings = r + 4;
    b.seq = 2;
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 10000, &dup, NULL), 0);

    collect *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(dcem_store_export(st, "sh-dc01", NULL, T0, T0 + 4000, collect_fn, c), 0);
    const char *want_m[8] = {"pdu-a", "pdu-b", "ups-1", "pdu-a", "pv", "pdu-a", "pdu-b", "ups-1"};
    const int64_t want_t[8] = {1000, 1000, 1000, 2000, 2000, 3000, 3000, 3000};
    assert_int_equal(c->n, 8);
    for (int i = 0; i < 8; i++) {
        assert_string_equal(c->r[i].meter, want_m[i]);
        assert_int_equal(c->r[i].t_ms, T0 + want_t[i]);
    }
    assert_int_equal(c->r[4].has_kwh, 0); /* pv */
    assert_int_equal(c->r[4].has_kw, 1);
    assert_true(c->r[4].kw == 4.25);
    assert_int_equal(c->r[7].quality, DCEM_WIRE_Q_COMM_ERROR); /* ups-1 at 3000 */
    assert_int_equal(c->r[7].has_kwh, 0);
    assert_int_equal(c->r[7].seq, 2);
    assert_int_equal(c->r[0].seq, 1);
    assert_true(c->r[0].kwh == r[1].kwh);

    /* [from, to) */
    c->n = 0;
    assert_int_equal(dcem_store_export(st, "sh-dc01", NULL, T0 + 1000, T0 + 3000, collect_fn, c),
                     0);
    assert_int_equal(c->n, 5);
    /* one meter, in time order */
    c->n = 0;
    assert_int_equal(dcem_store_export(st, "sh-dc01", "pdu-a", 0, INT64_MAX, collect_fn, c), 0);
    assert_int_equal(c->n, 3);
    assert_true(c->r[0].t_ms < c->r[1].t_ms && c->r[1].t_ms < c->r[2].t_ms);
    /* another site has nothing */
    c->n = 0;
    assert_int_equal(dcem_store_export(st, "bj-dc02", NULL, 0, INT64_MAX, collect_fn, c), 0);
    assert_int_equal(c->n, 0);
    free(c);
    dcem_store_close(st);
}

static int stop_after_two(void *ctx, const dcem_store_reading *r)
{
    (void)r;
    return ++*(int *)ctx == 2 ? 42 : 0;
}

static void test_export_callback_stops(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    dcem_wire_reading r[5];
    dcem_wire_batch b = batch_of(r, 5, 1, 1, T0, 1);
    int dup, n = 0;
    assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), 0);
    assert_int_equal(dcem_store_export(st, "sh-dc01", NULL, 0, INT64_MAX, stop_after_two, &n), 42);
    assert_int_equal(n, 2);
    n = 0; /* the statement was reset: a new walk starts from the beginning */
    assert_int_equal(dcem_store_export(st, "sh-dc01", NULL, 0, INT64_MAX, stop_after_two, &n), 42);
    dcem_store_close(st);
}

/* ---- figures and alerts ------------------------------------------------------------------- */

static int fig_fn(void *ctx, int64_t key, const char *json, int64_t computed_ms)
{
    int *n = ctx;
    assert_int_equal(key, 2025 * 12 + *n);
    assert_non_null(strstr(json, "pue"));
    assert_true(computed_ms > 0);
    ++*n;
    return 0;
}

typedef struct alert_walk {
    int n;
    int64_t ids[8];
    int states[8];
} alert_walk;

static int alert_fn(void *ctx, const dcem_store_alert *a)
{
    alert_walk *w = ctx;
    if (w->n < 8) {
        w->ids[w->n] = a->id;
        w->states[w->n] = a->state;
    }
    w->n++;
    return 0;
}

typedef struct subject_walk {
    int n;
    char subjects[8][DCEM_ID_MAX];
} subject_walk;

static int subject_fn(void *ctx, const dcem_store_alert *a)
{
    subject_walk *w = ctx;
    if (w->n < 8) snprintf(w->subjects[w->n], sizeof w->subjects[0], "%s", a->subject);
    w->n++;
    return 0;
}

/* Many meters' states in one call: each read back as saved (blobs with
 * every byte value, empty ones, stale flags); a meter twice or a bad row
 * fails the whole call and saves nothing. */
static void test_put_meter_states(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    unsigned char blobs[3][300];
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 300; i++) blobs[k][i] = (unsigned char)(i * 7 + k);
    dcem_store_meter_state_row rows[3] = {
        {.meter = "m0", .blob = blobs[0], .len = 300, .stale = 0, .updated_ms = 5},
        {.meter = "m1", .blob = blobs[1], .len = 256, .stale = 1, .updated_ms = 6},
        {.meter = "m2", .blob = NULL, .len = 0, .stale = 0, .updated_ms = 7},
    };
    assert_int_equal(dcem_store_put_meter_states(st, "sh-dc01", rows, 3), 0);
    for (int k = 0; k < 3; k++) {
        unsigned char buf[DCEM_STORE_MAX_STATE];
        size_t len = 999;
        int stale = -1;
        int64_t at = -1;
        assert_int_equal(
            dcem_store_get_meter_state(st, "sh-dc01", rows[k].meter, buf, sizeof buf, &len, &stale, &at),
            0);
        assert_int_equal(len, rows[k].len);
        if (len) assert_memory_equal(buf, blobs[k], len);
        assert_int_equal(stale, rows[k].stale);
        assert_int_equal(at, rows[k].updated_ms);
    }
    /* replaced, in a transaction too */
    rows[0].len = 10;
    assert_int_equal(dcem_store_begin(st), 0);
    assert_int_equal(dcem_store_put_meter_states(st, "sh-dc01", rows, 1), 0);
    assert_int_equal(dcem_store_commit(st), 0);
    unsigned char buf[DCEM_STORE_MAX_STATE];
    size_t len = 0;
    assert_int_equal(dcem_store_get_meter_state(st, "sh-dc01", "m0", buf, sizeof buf, &len, NULL, NULL), 0);
    assert_int_equal(len, 10);
    /* refused whole */
    dcem_store_meter_state_row bad[2] = {
        {.meter = "m3", .blob = blobs[0], .len = 1},
        {.meter = "m3", .blob = blobs[1], .len = 1},
    };
    assert_int_equal(dcem_store_put_meter_states(st, "sh-dc01", bad, 2), DCEM_EINVAL);
    bad[1].meter = "m4";
    bad[1].stale = 2;
    assert_int_equal(dcem_store_put_meter_states(st, "sh-dc01", bad, 2), DCEM_EINVAL);
    assert_int_equal(dcem_store_get_meter_state(st, "sh-dc01", "m3", buf, sizeof buf, &len, NULL, NULL),
                     DCEM_ENOTFOUND);
    dcem_store_close(st);
}

typedef struct got_state {
    int calls, stop_at;
    size_t i[8];
    int has_blob[8], stale[8], known[8];
    size_t len[8];
    unsigned char first[8];
} got_state;

static int got_one(void *ctx, size_t i, const void *blob, size_t len, int stale, int known)
{
    got_state *g = ctx;
    int k = g->calls++;
    if (k >= 8) return 1;
    g->i[k] = i;
    g->has_blob[k] = blob != NULL;
    g->len[k] = len;
    g->first[k] = len ? *(const unsigned char *)blob : 0;
    g->stale[k] = stale;
    g->known[k] = known;
    return g->stop_at && g->calls == g->stop_at ? 42 : 0;
}

/* Many meters' states in one call: each meter once, in order; a meter with
 * nothing stored (no state, no reading) is told apart where the backend
 * can (PostgreSQL's dictionary); the callback can stop it. */
static void test_get_meter_states(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    dcem_wire_reading r[6];
    dcem_wire_batch b = batch_of(r, 6, 1, 1, T0, 6); /* readings of m0..m5 */
    int dup = 0;
    assert_int_equal(dcem_store_put_batch(st, &b, T0 + 5000, &dup, NULL), 0);
    unsigned char blobs[2][300];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 300; i++) blobs[k][i] = (unsigned char)(i * 7 + k + 1);
    dcem_store_meter_state_row rows[3] = {
        {.meter = "m0", .blob = blobs[0], .len = 300, .stale = 0, .updated_ms = 5},
        {.meter = "m1", .blob = blobs[1], .len = 256, .stale = 1, .updated_ms = 6},
        {.meter = "m2", .blob = NULL, .len = 0, .stale = 0, .updated_ms = 7},
    };
    assert_int_equal(dcem_store_put_meter_states(st, "sh-dc01", rows, 3), 0);
    const char *ask[5] = {"m9", "m1", "m5", "m0", "m2"};
    got_state g = {0};
    assert_int_equal(dcem_store_get_meter_states(st, "sh-dc01", ask, 5, got_one, &g), 0);
    assert_int_equal(g.calls, 5);
    for (int k = 0; k < 5; k++) assert_int_equal(g.i[k], k);
    /* m9: nothing of it stored */
    assert_false(g.has_blob[0]);
    assert_int_equal(g.known[0], is_pg ? 0 : 1); /* SQLite asks per meter: always "may" */
    /* m1 and m0: their states, as saved */
    assert_true(g.has_blob[1] && g.len[1] == 256 && g.first[1] == blobs[1][0] && g.stale[1] == 1);
    assert_true(g.has_blob[3] && g.len[3] == 300 && g.first[3] == blobs[0][0] && g.stale[3] == 0);
    /* m5: readings, no state */
    assert_false(g.has_blob[2]);
    assert_int_equal(g.known[2], 1);
    /* m2: an empty state is a state */
    assert_true(g.has_blob[4] && g.len[4] == 0);
    for (int k = 1; k < 5; k++) assert_int_equal(g.known[k], 1);
    /* the same as one at a time */
    unsigned char buf[DCEM_STORE_MAX_STATE];
    size_t len = 0;
    assert_int_equal(dcem_store_get_meter_state(st, "sh-dc01", "m1", buf, sizeof buf, &len, NULL, NULL), 0);
    assert_int_equal(len, 256);
    assert_memory_equal(buf, blobs[1], len);
    /* a site with nothing stored: every meter unknown where the backend can tell */
    got_state none = {0};
    assert_int_equal(dcem_store_get_meter_states(st, "bj-none", ask, 2, got_one, &none), 0);
    assert_int_equal(none.calls, 2);
    assert_false(none.has_blob[0] || none.has_blob[1]);
    assert_int_equal(none.known[1], is_pg ? 0 : 1);
    /* the callback stops it */
    got_state stop = {.stop_at = 2};
    assert_int_equal(dcem_store_get_meter_states(st, "sh-dc01", ask, 5, got_one, &stop), 42);
    assert_int_equal(stop.calls, 2);
    /* refused: a meter twice, a bad id; nothing is called */
    const char *twice[2] = {"m1", "m1"}, *bad[1] = {"m 1"};
    got_state no = {0};
    assert_int_equal(dcem_store_get_meter_states(st, "sh-dc01", twice, 2, got_one, &no), DCEM_EINVAL);
    assert_int_equal(dcem_store_get_meter_states(st, "sh-dc01", bad, 1, got_one, &no), DCEM_EINVAL);
    assert_int_equal(no.calls, 0);
    dcem_store_close(st);
}

/* A read transaction sees one committed state: what another handle
 * commits meanwhile shows only after it ends; writes inside it are refused
 * and it holds no write lock. */
static void test_read_snapshot(void **state)
{
    fx *f = *state;
    dcem_store *rd = open_ok(f), *wr = open_ok(f);
    dcem_wire_reading *r = readings_new(20);
    dcem_wire_batch b = batch_of(r, 20, 7, 1, T0, 4);
    assert_int_equal(dcem_store_put_batch(wr, &b, T0, NULL, NULL), 0);
    assert_int_equal(dcem_store_begin_read(rd), 0);
    assert_int_equal(count_readings(rd), 20);
    b = batch_of(r, 20, 7, 2, T0 + 60000, 4);
    assert_int_equal(dcem_store_put_batch(wr, &b, T0, NULL, NULL), 0); /* not blocked */
    assert_int_equal(count_readings(wr), 40);
    assert_int_equal(count_readings(rd), 20); /* still the state it began with */
    assert_int_equal(dcem_store_put_figures(rd, "sh-dc01", DCEM_PERIOD_MONTH, 1, "{}", 1),
                     DCEM_EINVAL);
    assert_int_equal(dcem_store_begin(rd), DCEM_EINVAL); /* one transaction at a time */
    assert_int_equal(dcem_store_rollback(rd), 0);
    assert_int_equal(count_readings(rd), 40);
    free(r);
    dcem_store_close(rd);
    dcem_store_close(wr);
}

/* Two collectors (two handles on one store) see the same changes: each
 * change of (site, kind, subject) is recorded and appended once. */
static void test_alert_changes_once(void **state)
{
    fx *f = *state;
    dcem_store *a_st = open_ok(f), *b_st = open_ok(f);
    dcem_store_alert a = {.site = "sh-dc01", .t_ms = T0, .kind = "meter_stale",
                          .message = "meter m1 stale", .state = DCEM_STORE_ALERT_RAISED,
                          .subject = "m1"};
    int changed = -1;
    int64_t id = -1;
    assert_int_equal(dcem_store_change_alert(a_st, &a, &changed, &id), 0);
    assert_int_equal(changed, 1);
    assert_true(id > 0);
    a.t_ms = T0 + 1; /* the other collector, a moment later */
    assert_int_equal(dcem_store_change_alert(b_st, &a, &changed, &id), 0);
    assert_int_equal(changed, 0);
    assert_int_equal(id, 0);
    a.subject = "m2"; /* another meter: its own state */
    assert_int_equal(dcem_store_change_alert(b_st, &a, &changed, NULL), 0);
    assert_int_equal(changed, 1);
    a.subject = "m1";
    a.state = DCEM_STORE_ALERT_CLEARED;
    a.message = "meter m1 counting again";
    assert_int_equal(dcem_store_change_alert(b_st, &a, &changed, NULL), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(dcem_store_change_alert(a_st, &a, &changed, NULL), 0);
    assert_int_equal(changed, 0);
    /* a change undone with its transaction is not recorded: told later */
    a.state = DCEM_STORE_ALERT_RAISED;
    assert_int_equal(dcem_store_begin(a_st), 0);
    assert_int_equal(dcem_store_change_alert(a_st, &a, &changed, NULL), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(dcem_store_rollback(a_st), 0);
    assert_int_equal(dcem_store_change_alert(b_st, &a, &changed, NULL), 0);
    assert_int_equal(changed, 1);
    /* the first ever state of a subject is recorded, even a clearing one
     * (a store from before alert states) */
    dcem_store_alert c = {.site = "sh-dc01", .t_ms = T0 + 2, .kind = "cap_warning",
                          .message = "cap_warning cleared for 2025", .subject = "2025",
                          .state = DCEM_STORE_ALERT_CLEARED};
    assert_int_equal(dcem_store_change_alert(a_st, &c, &changed, NULL), 0);
    assert_int_equal(changed, 1);
    c.subject = "bad subject";
    assert_int_equal(dcem_store_change_alert(a_st, &c, &changed, NULL), DCEM_EINVAL);
    assert_int_equal(changed, 0);

    subject_walk w = {0};
    assert_int_equal(dcem_store_alerts(a_st, "sh-dc01", 0, INT64_MAX, subject_fn, &w), 0);
    assert_int_equal(w.n, 5); /* m1 raised, m2 raised, m1 cleared, m1 raised, 2025 cleared */
    assert_string_equal(w.subjects[0], "m1");
    assert_string_equal(w.subjects[1], "m2");
    assert_string_equal(w.subjects[4], "2025");
    dcem_store_close(a_st);
    dcem_store_close(b_st);
}

static void test_figures_and_alerts(void **state)
{
    fx *f = *state;
    dcem_store *st = open_ok(f);
    const int64_t m0 = 2025 * 12;
    assert_int_equal(
        dcem_store_put_figures(st, "sh-dc01", DCEM_PERIOD_MONTH, m0, "{\"pue\":1.52}", 100), 0);
    assert_int_equal(dcem_store_put_figures(st, "sh-dc01", DCEM_PERIOD_MONTH, m0 + 1,
                                            "{\"pue\":1.38,\"verdicts\":[\"pue_below_limit\"]}",
                                            200),
                     0);
    /* recomputed after late data: replaced */
    assert_int_equal(
        dcem_store_put_figures(st, "sh-dc01", DCEM_PERIOD_MONTH, m0, "{\"pue\":1.51}", 300), 0);
    char *json = NULL;
    int64_t at = 0;
    assert_int_equal(dcem_store_get_figures(st, "sh-dc01", DCEM_PERIOD_MONTH, m0, &json, &at), 0);
    assert_string_equal(json, "{\"pue\":1.51}");
    assert_int_equal(at, 300);
    free(json);
    assert_int_equal(dcem_store_get_figures(st, "sh-dc01", DCEM_PERIOD_YEAR, 2025, &json, NULL),
                     DCEM_ENOTFOUND);
    assert_null(json);
    assert_int_equal(dcem_store_put_figures(st, "sh-dc01", DCEM_PERIOD_MONTH, m0, "{\"pue\":", 1),
                     DCEM_EINVAL); /* not JSON: the CHECK refuses it */
    assert_int_equal(dcem_store_put_figures(st, "sh-dc01", 9, m0, "{}", 1), DCEM_EINVAL);
    int n = 0;
    assert_int_equal(dcem_store_figures(st, "sh-dc01", DCEM_PERIOD_MONTH, m0, m0 + 12, fig_fn, &n),
                     0);
    assert_int_equal(n, 2);

    dcem_store_alert a = {.site = "sh-dc01",
                          .t_ms = T0 + 10,
                          .kind = "cap_warning",
                          .message = "year-to-date 80% of the approved 12 GWh",
                          .state = DCEM_STORE_ALERT_RAISED};
    int64_t id1 = 0, id2 = 0, id3 = 0;
    assert_int_equal(dcem_store_add_alert(st, &a, &id1), 0);
    a.t_ms = T0 + 20;
    a.state = DCEM_STORE_ALERT_CLEARED;
    assert_int_equal(dcem_store_add_alert(st, &a, &id2), 0);
    a.site = "bj-dc02";
    a.t_ms = T0 + 15;
    a.state = DCEM_STORE_ALERT_RAISED;
    assert_int_equal(dcem_store_add_alert(st, &a, &id3), 0);
    assert_true(id1 < id2 && id2 < id3);
    a.kind = "cap warning";
    assert_int_equal(dcem_store_add_alert(st, &a, NULL), DCEM_EINVAL);
    alert_walk w = {0};
    assert_int_equal(dcem_store_alerts(st, "sh-dc01", 0, INT64_MAX, alert_fn, &w), 0);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.ids[0], id1);
    assert_int_equal(w.states[1], DCEM_STORE_ALERT_CLEARED);
    memset(&w, 0, sizeof w);
    assert_int_equal(dcem_store_alerts(st, NULL, 0, INT64_MAX, alert_fn, &w), 0);
    assert_int_equal(w.n, 3);
    assert_int_equal(w.ids[1], id3); /* by time */
    dcem_store_close(st);
}

/* ---- kill -9 in the middle of transactions ------------------------------------------------ */

#define CR_READINGS 200

/* The child: one explicit transaction per batch — the batch, one interval
 * and the meter state — and reports each seq through the pipe after commit
 * returned. Resumes after the contiguous seq of the store it finds. */
static void crash_child(const char *db, int wfd)
{
    dcem_store *st = NULL;
    char err[512];
    if (dcem_store_open(backend, db, NULL, &st, err, sizeof err)) _exit(2);
    dcem_store_epoch e;
    int rc = dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 9, &e);
    if (rc && rc != DCEM_ENOTFOUND) _exit(3);
    dcem_wire_reading *r = calloc(CR_READINGS, sizeof *r);
    if (!r) _exit(4);
    unsigned char blob[200] = {0};
    for (uint64_t seq = e.contiguous_seq + 1;; seq++) {
        int64_t t0 = T0 + (int64_t)seq * 60000;
        dcem_wire_batch b = batch_of(r, CR_READINGS, 9, seq, t0, 5);
        dcem_interval iv = {.start_ms = t0,
                            .end_ms = t0 + MIN,
                            .ukwh = (int64_t)seq * 142857,
                            .covered_ms = MIN,
                            .readings = 1};
        dcem_store_keys k = {t0 - t0 % HOUR, t0 / DAY, 2025 * 12};
        memcpy(blob, &seq, sizeof seq);
        int dup;
        if (dcem_store_begin(st) || dcem_store_put_batch(st, &b, t0, &dup, NULL) || dup ||
            dcem_store_put_interval(st, "sh-dc01", "m0", &iv, &k) ||
            dcem_store_put_meter_state(st, "sh-dc01", "m0", blob, sizeof blob, 0, (int64_t)seq) ||
            dcem_store_put_checkpoint(st, "sh-dc01", "m0", t0, blob, sizeof blob) ||
            dcem_store_commit(st))
            _exit(5);
        if (write(wfd, &seq, sizeof seq) != (ssize_t)sizeof seq) _exit(6);
    }
}

static void drain(int fd, uint64_t *reported, int wait_ms)
{
    uint8_t buf[8 * 64];
    size_t have = 0;
    int64_t until = now_ms() + wait_ms;
    for (;;) {
        int left = wait_ms < 0 ? -1 : (int)(until - now_ms());
        if (wait_ms >= 0 && left <= 0) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) break;
        ssize_t n = read(fd, buf + have, sizeof buf - have);
        if (n <= 0) break;
        have += (size_t)n;
        size_t k = 0;
        for (; k + 8 <= have; k += 8)
            memcpy(reported, buf + k, 8);
        memmove(buf, buf + k, have - k);
        have -= k;
    }
}

static void test_kill9_keeps_every_committed_batch(void **state)
{
    fx *f = *state;
    uint64_t reported = 0, rng = 0x2545f4914f6cdd1dull;
    int64_t t0 = now_ms();
    dcem_store_close(open_ok(f)); /* created (and migrated) before the first kill */
    const int kills = 12;
    for (int iter = 0; iter < kills; iter++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(f->db, fds[1]);
        }
        close(fds[1]);
        drain(fds[0], &reported, 30 + (int)(xorshift(&rng) % 120));
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status)); /* killed, not an early exit with an error */
        drain(fds[0], &reported, -1);
        close(fds[0]);
        /* a server still finishes the COMMIT the killed child had sent:
         * read once its session has ended */
        for (int i = 0; is_pg && i < 500; i++) {
            if (q1(f, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dcem'"
                      " AND pid <> pg_backend_pid()") == 0)
                break;
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }

        dcem_store *st = open_ok(f);
        dcem_store_epoch e;
        assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 9, &e), 0);
        /* every reported commit is there; at most one more committed unreported */
        assert_true(e.contiguous_seq >= reported);
        assert_true(e.contiguous_seq <= reported + 1);
        assert_int_equal(e.max_seq, e.contiguous_seq);
        /* none partially: every batch row has all its readings, its interval
         * and the state it wrote, and nothing exists without its batch */
        int64_t nb = q1(f, "SELECT count(*) FROM batches");
        assert_int_equal(nb, (int64_t)e.contiguous_seq);
        assert_int_equal(q1(f,
                            "SELECT count(*) FROM batches b LEFT JOIN"
                            " (SELECT epoch, seq, count(*) AS n FROM readings GROUP BY epoch, seq)"
                            " r USING (epoch, seq) WHERE coalesce(r.n, 0) <> b.n_readings"),
                         0);
        assert_int_equal(q1(f, "SELECT count(*) FROM readings"), nb * CR_READINGS);
        assert_int_equal(q1(f, "SELECT count(*) FROM intervals"), nb);
        if (nb) assert_int_equal(q1(f, "SELECT updated_ms FROM meter_state"), nb);
        dcem_store_rollup ru;
        if (nb) {
            assert_int_equal(
                dcem_store_get_rollup(st, "sh-dc01", "m0", DCEM_PERIOD_MONTH, 2025 * 12, &ru), 0);
            assert_int_equal(ru.intervals, nb);
            assert_int_equal(ru.ukwh, 142857 * nb * (nb + 1) / 2);
            assert_int_equal(ru.read_intervals, nb);
            assert_int_equal(q1(f, "SELECT count(*) FROM checkpoints"), nb);
        }
        dcem_store_close(st);
        reported = e.contiguous_seq;
    }
    fprintf(stderr, "kill -9 loop: %d kills, %llu batches of %d readings committed, %lld ms\n",
            kills, (unsigned long long)reported, CR_READINGS, (long long)(now_ms() - t0));
    assert_true(reported > 0);
}

/* ---- PostgreSQL: its schema, a server restarted under load, several writers --------------- */

static void test_pg_schema_and_refusals(void **state)
{
    fx *f = *state;
    if (!is_pg) skip();
    dcem_store *st = open_ok(f);
    assert_string_equal(dcem_store_backend_name(st), "postgresql");
    assert_int_equal(dcem_store_schema_version(st), PG_SCHEMA_LATEST);
    dcem_store_close(st);
    assert_int_equal(q1(f, "SELECT count(*) FROM schema_version"), PG_SCHEMA_LATEST);
    assert_int_equal(q1(f, "SELECT count(*) FROM unnest(ARRAY['sites', 'gateways', 'meters',"
                           " 'epochs', 'batches', 'quarantine', 'proofs', 'readings', 'intervals',"
                           " 'rollups', 'meter_state', 'checkpoints', 'figures', 'alerts',"
                           " 'alert_state']) t WHERE to_regclass(t) IS NOT NULL"),
                     15);
    /* integer ids in the hot tables */
    assert_int_equal(q1(f, "SELECT count(*) FROM information_schema.columns WHERE table_schema ="
                           " current_schema() AND table_name IN ('readings', 'intervals',"
                           " 'rollups') AND column_name IN ('site_id', 'meter_id')"
                           " AND data_type = 'integer'"),
                     6);
    /* reopening applies nothing twice */
    st = open_ok(f);
    dcem_store_close(st);
    assert_int_equal(q1(f, "SELECT count(*) FROM schema_version"), PG_SCHEMA_LATEST);
    /* a commit is durable before it returns */
    assert_int_equal(q1(f, "SELECT current_setting('synchronous_commit') <> 'off'"), 1);

    /* a server that is not there: the reason, and a retryable code */
    dcem_store *none = (dcem_store *)1;
    char err[512];
    assert_int_equal(dcem_store_open("postgresql", "host=127.0.0.1 port=1 dbname=x user=x"
                                                   " connect_timeout=2",
                                     NULL, &none, err, sizeof err),
                     DCEM_ESTORAGE);
    assert_null(none);
    assert_non_null(strstr(err, "cannot connect"));
    assert_non_null(strstr(err, "refused"));
    /* a connection string that is not one */
    assert_int_equal(dcem_store_open("postgresql", "no_such_key=1", NULL, &none, err, sizeof err),
                     DCEM_ECONFIG);
    assert_non_null(strstr(err, "no_such_key"));

    /* another program's tables in the schema are left alone */
    char other[sizeof f->db];
    snprintf(other, sizeof other, "%s", f->db);
    char *opt = strstr(other, "search_path=");
    assert_non_null(opt);
    pg_exec(pg_base_dsn, "CREATE SCHEMA IF NOT EXISTS foreign_app");
    pg_exec(pg_base_dsn, "DROP TABLE IF EXISTS foreign_app.readings;"
                         " CREATE TABLE foreign_app.readings (x int)");
    snprintf(opt, sizeof other - (size_t)(opt - other), "search_path=foreign_app'");
    assert_int_equal(dcem_store_open("postgresql", other, NULL, &none, err, sizeof err),
                     DCEM_ECONFIG);
    assert_non_null(strstr(err, "not a dcem store"));
    pg_exec(pg_base_dsn, "DROP TABLE foreign_app.readings;"
                         " CREATE TABLE foreign_app.schema_version (version int)");
    assert_int_equal(dcem_store_open("postgresql", other, NULL, &none, err, sizeof err),
                     DCEM_ECONFIG);
    assert_non_null(strstr(err, "not a dcem store"));
    pg_exec(pg_base_dsn, "DROP SCHEMA foreign_app CASCADE");
}

/* Several collectors on one store: writers in their own processes put the
 * batches of one gateway epoch (interleaved seqs) and revise the same
 * meters' intervals at the same time. The contiguous seq is the number of
 * batches, every reading is there once, and each rollup is exactly the sum
 * of its intervals. */
#define CW_WRITERS 3
#define CW_BATCHES 40

static void concurrent_writer(const char *db, int w)
{
    dcem_store *st = NULL;
    char err[512];
    if (dcem_store_open(backend, db, NULL, &st, err, sizeof err)) _exit(2);
    dcem_wire_reading r[20];
    for (int i = 0; i < CW_BATCHES; i++) {
        uint64_t seq = (uint64_t)(i * CW_WRITERS + w) + 1;
        int64_t t0 = T0 + (int64_t)seq * MIN;
        dcem_wire_batch b = batch_of(r, 20, 5, seq, t0, 4);
        /* each writer revises the same four intervals of every meter */
        for (int attempt = 0;; attempt++) {
            int dup, rc = dcem_store_begin(st);
            if (!rc) rc = dcem_store_put_batch(st, &b, t0, &dup, NULL);
            for (int m = 0; m < 4 && !rc; m++) {
                char id[8];
                snprintf(id, sizeof id, "m%d", m);
                dcem_interval iv = {.start_ms = T0 + (i % 4) * 15 * MIN,
                                    .end_ms = T0 + (i % 4 + 1) * 15 * MIN,
                                    .ukwh = 1000 * (w + 1) + i,
                                    .covered_ms = 60000,
                                    .readings = 1 + w};
                dcem_store_keys k = {T0 + ((i % 4) / 4) * HOUR, 20089, 2025 * 12};
                rc = dcem_store_put_interval(st, "sh-dc01", id, &iv, &k);
            }
            if (!rc) rc = dcem_store_commit(st);
            if (!rc) break;
            dcem_store_rollback(st);
            if (attempt > 20) _exit(3); /* a deadlock may fail a try; not all of them */
        }
    }
    dcem_store_close(st);
    _exit(0);
}

static void test_concurrent_writers(void **state)
{
    fx *f = *state;
    if (!is_pg) skip(); /* SQLite: one writer at a time by design */
    dcem_store_close(open_ok(f));
    pid_t pids[CW_WRITERS];
    for (int w = 0; w < CW_WRITERS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) concurrent_writer(f->db, w);
    }
    for (int w = 0; w < CW_WRITERS; w++) {
        int status;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    dcem_store *st = open_ok(f);
    dcem_store_epoch e;
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 5, &e), 0);
    assert_int_equal(e.contiguous_seq, CW_WRITERS * CW_BATCHES);
    assert_int_equal(e.max_seq, CW_WRITERS * CW_BATCHES);
    assert_int_equal(q1(f, "SELECT count(*) FROM batches"), CW_WRITERS * CW_BATCHES);
    assert_int_equal(q1(f, "SELECT count(*) FROM readings"), CW_WRITERS * CW_BATCHES * 20);
    assert_int_equal(q1(f, "SELECT count(*) FROM meters"), 4);
    /* every rollup is the sum of its intervals, whatever the interleaving */
    assert_int_equal(q1(f, "SELECT count(*) FROM rollups r WHERE r.ukwh <> (SELECT sum(i.ukwh)"
                           " FROM intervals i WHERE i.site_id = r.site_id AND i.meter_id ="
                           " r.meter_id AND CASE r.kind WHEN 1 THEN i.hour_ms WHEN 2 THEN i.day"
                           " ELSE i.month END = r.key) OR r.intervals <> (SELECT count(*) FROM"
                           " intervals i WHERE i.site_id = r.site_id AND i.meter_id = r.meter_id"
                           " AND CASE r.kind WHEN 1 THEN i.hour_ms WHEN 2 THEN i.day ELSE"
                           " i.month END = r.key)"),
                     0);
    dcem_store_rollup ru;
    assert_int_equal(dcem_store_get_rollup(st, "sh-dc01", "m2", DCEM_PERIOD_DAY, 20089, &ru), 0);
    assert_int_equal(ru.intervals, 4);
    assert_int_equal(q1(f, "SELECT sum(revisions) FROM intervals"),
                     4 * (CW_WRITERS * CW_BATCHES - 4));
    dcem_store_close(st);
}

/* The server restarted (pg_ctl restart -m fast) while a client writes: the
 * calls during the outage fail, the handle reconnects by itself, and every
 * call that returned 0 is stored, none twice. */
static void test_pg_restart_under_load(void **state)
{
    fx *f = *state;
    if (!is_pg || !pg_restart_cmd) skip();
    dcem_store *st = open_ok(f);
    dcem_wire_reading *r = readings_new(100);
    pid_t restarter = fork();
    assert_true(restarter >= 0);
    if (restarter == 0) {
        struct timespec ts = {0, 300 * 1000000L};
        nanosleep(&ts, NULL);
        execl("/bin/sh", "sh", "-c", pg_restart_cmd, (char *)NULL);
        _exit(127);
    }
    uint64_t acked = 0;
    long failed = 0, after = 0, dups = 0;
    int restarted = 0;
    int64_t deadline = now_ms() + 40000;
    /* write until the restart is over and 30 batches went in after it */
    while (after < 30 && now_ms() < deadline) {
        uint64_t seq = acked + 1;
        dcem_wire_batch b = batch_of(r, 100, 9, seq, T0 + (int64_t)seq * MIN, 10);
        dcem_interval iv = {.start_ms = T0 + (int64_t)seq * MIN,
                            .end_ms = T0 + (int64_t)(seq + 1) * MIN,
                            .ukwh = 1000,
                            .covered_ms = MIN,
                            .readings = 1};
        dcem_store_keys k = {T0, 20089, 2025 * 12};
        int dup = 0;
        int rc = dcem_store_begin(st);
        if (!rc) rc = dcem_store_put_batch(st, &b, T0, &dup, NULL);
        if (!rc && !dup) rc = dcem_store_put_interval(st, "sh-dc01", "m0", &iv, &k);
        if (!rc) rc = dcem_store_commit(st);
        if (rc) {
            dcem_store_rollback(st);
            assert_int_equal(rc, DCEM_ESTORAGE);
            failed++;
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        dups += dup; /* a commit whose answer was lost, sent again: re-acked */
        acked = seq;
        if (!restarted) {
            int status;
            pid_t p = waitpid(restarter, &status, WNOHANG);
            if (p == restarter) {
                assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                restarted = 1;
            }
        } else {
            after++;
        }
    }
    if (!restarted) {
        int status;
        assert_int_equal(waitpid(restarter, &status, 0), restarter);
    }
    fprintf(stderr, "restart under load: %llu batches acked, %ld calls failed during the"
                    " outage, %ld re-acked as duplicates\n",
            (unsigned long long)acked, failed, dups);
    assert_int_equal(after, 30);
    assert_true(failed > 0); /* the restart did happen under the writer */
    dcem_store_epoch e;
    assert_int_equal(dcem_store_gateway_seq(st, "sh-dc01", "gw-a17", 9, &e), 0);
    assert_int_equal(e.contiguous_seq, acked);
    assert_int_equal(e.max_seq, acked);
    assert_int_equal(q1(f, "SELECT count(*) FROM batches"), (int64_t)acked);
    assert_int_equal(q1(f, "SELECT count(*) FROM readings"), (int64_t)acked * 100);
    assert_int_equal(q1(f, "SELECT count(*) FROM intervals"), (int64_t)acked);
    dcem_store_rollup ru;
    assert_int_equal(dcem_store_get_rollup(st, "sh-dc01", "m0", DCEM_PERIOD_MONTH, 2025 * 12, &ru),
                     0);
    assert_int_equal(ru.intervals, (long)acked);
    assert_int_equal(ru.ukwh, 1000 * (int64_t)acked);
    dcem_store_close(st);
    free(r);
}

/* ---- throughput --------------------------------------------------------------------------- */

static double insert_rate(fx *f, int sync, int batches, uint64_t epoch, int64_t t_base)
{
    dcem_store_opts o = {.synchronous = sync};
    dcem_store *st = open_opts(f, &o);
    dcem_wire_reading *r = readings_new(1000);
    int64_t t0 = now_ms();
    for (int i = 0; i < batches; i++) {
        /* 50 meters, 20 readings each per batch, times moving on */
        dcem_wire_batch b =
            batch_of(r, 1000, epoch, (uint64_t)i + 1, t_base + (int64_t)i * 20000, 50);
        int dup;
        assert_int_equal(dcem_store_put_batch(st, &b, T0, &dup, NULL), 0);
        assert_int_equal(dup, 0);
    }
    int64_t ms = now_ms() - t0;
    dcem_store_close(st);
    free(r);
    return (double)batches * 1000.0 / ((double)(ms ? ms : 1) / 1000.0);
}

static void test_bulk_insert_rate(void **state)
{
    fx *f = *state;
    const int n = 200;
    double full = insert_rate(f, DCEM_STORE_SYNC_FULL, n, 1, T0);
    double normal = insert_rate(f, DCEM_STORE_SYNC_NORMAL, n, 2, T0 + DAY);
    fprintf(stderr,
            "bulk insert, %d batches of 1000 readings, one transaction each: "
            "synchronous=FULL %.0f readings/s, NORMAL %.0f readings/s\n",
            n, full, normal);
    assert_int_equal(q1(f, "SELECT count(*) FROM readings"), 2 * n * 1000);
}

int main(void)
{
    const char *b = getenv("DCEM_TEST_STORE_BACKEND");
    if (b && *b) backend = b;
    is_pg = !strcmp(backend, "postgresql");
    if (is_pg) {
        pg_base_dsn = getenv("DCEM_TEST_STORE_DSN");
        pg_restart_cmd = getenv("DCEM_TEST_PG_RESTART");
        if (!pg_base_dsn || !*pg_base_dsn) {
            fprintf(stderr, "test_store: postgresql needs DCEM_TEST_STORE_DSN\n");
            return 2;
        }
    }
    fprintf(stderr, "test_store: backend %s\n", backend);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations_from_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_and_reopen_keep_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema6_migrated_keeps_readings_drops_derived, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_schema7_migrated_to_integer_ids_exactly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ids_rolled_back_with_their_transaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_files_and_options_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_batch_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proofs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_mid_batch_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_in_transaction_runs_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interval_revisions_keep_rollups_exact, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_intervals_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_prunes_readings_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meter_state_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_batch_marks_fresh_readings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_callback_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_figures_and_alerts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alert_changes_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_meter_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_meter_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_keeps_every_committed_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_insert_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_schema_and_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_restart_under_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
