/* The collector's engine (gateway/collector/engine.c) against a real SQLite
 * store in a fresh temp directory per test, configured the way
 * dcem-collector is (a collector.yaml, a sites/ directory of two ledgers, the
 * shipped E-Town policy) and fed batches encoded by the wire codec. Proved:
 * a group of batches of three gateways stores exactly what the same batches
 * fed one by one store; duplicates, gaps, malformed and quarantined
 * payloads inside one group; a store failure inside a group is rolled back
 * and the group retried batch by batch, so only the failing batch fails and
 * no meter's counter state runs ahead of the store; alerts are handed on
 * only after their commit; a store locked by another connection fails the
 * whole group, which is then taken normally once the lock is gone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "collector_config.h"
#include "engine.h"
#include "meter.h"
#include "errors.h"
#include "figures.h"
#include "store.h"
#include "wire.h"
#include "tmpdir.h"

#include <sqlite3.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef DCEM_SOURCE_DIR
#error "DCEM_SOURCE_DIR (the project's source directory) must be defined"
#endif

#define MIN 60000LL
#define T0 1743435000000LL /* 2025-03-31T23:30:00+08:00: a local midnight and a month ahead */
#define NOW (T0 + 2 * 86400000LL) /* received_ms of every batch */
#define EPOCH 1743000000ULL
#define PER_BATCH 10 /* minutes in a batch: one reading per meter and minute */
#define MAX_MSGS 32

/* The meters of the two ledgers written by setup(), with the mean power
 * their counters advance at. */
static const struct {
    const char *id;
    double kw;
} meters[] = {{"fac-a", 400}, {"pv-a", 60},  {"it-a", 300},
              {"fac-b", 250}, {"it-b", 180}, {"pv-b", 30}};
#define N_METERS (sizeof meters / sizeof meters[0])

/* Gateways: meters[first .. first + n) are theirs. */
static const struct {
    const char *site, *gateway;
    int first, n;
} gws[] = {{"eng-a", "gw-1", 0, 2}, {"eng-a", "gw-2", 2, 1}, {"eng-b", "gw-3", 3, 3}};
enum { G1, G2, G3, N_GWS };

static const char ledger_a[] =
    "# engine test site A: two gateways (gw-1: fac-a, pv-a; gw-2: it-a)\n"
    "site: eng-a\n"
    "name: Engine Test A\n"
    "timezone: Asia/Shanghai\n"
    "racks: 60\n"
    "rack_power_kw: 300\n"
    "approved_annual_kwh: 6000000\n"
    "baseline_annual_kwh: 5000000\n"
    "interval_minutes: 15\n"
    "meters:\n"
    "  - id: fac-a\n"
    "    role: facility\n"
    "    rated_kw: 600\n"
    "    counter_resolution_kwh: 0.01\n"
    "  - id: pv-a\n"
    "    role: green_onsite\n"
    "    rated_kw: 100\n"
    "    counter_resolution_kwh: 0.01\n"
    "  - id: it-a\n"
    "    role: it\n"
    "    rated_kw: 500\n"
    "    counter_resolution_kwh: 0.01\n";

static const char ledger_b[] =
    "# engine test site B: one gateway reads all its meters (gw-3: fac-b, it-b, pv-b)\n"
    "site: eng-b\n"
    "name: Engine Test B\n"
    "timezone: Asia/Shanghai\n"
    "racks: 80\n"
    "rack_power_kw: 400\n"
    "approved_annual_kwh: 4000000\n"
    "baseline_annual_kwh: 3000000\n"
    "interval_minutes: 15\n"
    "meters:\n"
    "  - id: fac-b\n"
    "    role: facility\n"
    "    rated_kw: 400\n"
    "    counter_resolution_kwh: 0.01\n"
    "  - id: it-b\n"
    "    role: it\n"
    "    rated_kw: 300\n"
    "    counter_resolution_kwh: 0.01\n"
    "  - id: pv-b\n"
    "    role: green_onsite\n"
    "    rated_kw: 50\n"
    "    counter_resolution_kwh: 0.01\n";

/* Fails the readings of gw-2's batch 2 in the store as a failure that may
 * pass would (json() of a bad document: "malformed JSON", an SQLITE_ERROR
 * like an I/O error, not a refusal of the content): put_batch fails before the
 * engine processes the batch, and the batch is not acked. */
static const char poison_readings[] =
    "CREATE TRIGGER poison BEFORE INSERT ON readings WHEN NEW.gateway = 'gw-2' AND NEW.seq = 2"
    " BEGIN SELECT json('poisoned'); END;";

/* The same failure for the interval of pv-a from minute 15 on: it is stored
 * at the end of the group, after the engine has run the batch's readings
 * through the meters' counters and splitters. */
static const char poison_interval[] =
    "CREATE TRIGGER poison BEFORE INSERT ON intervals WHEN NEW.meter ="
    " (SELECT id FROM names WHERE name = 'pv-a')"
    " AND NEW.start_ms >= 1743435900000 BEGIN SELECT json('poisoned'); END;";

/* The same rows refused for their content, as a CHECK refuses a value
 * (SQLITE_CONSTRAINT): sending the batch again cannot help. */
static const char refuse_readings[] =
    "CREATE TRIGGER poison BEFORE INSERT ON readings WHEN NEW.gateway = 'gw-2' AND NEW.seq = 2"
    " BEGIN SELECT RAISE(ABORT, 'poisoned'); END;";
static const char refuse_interval[] =
    "CREATE TRIGGER poison BEFORE INSERT ON intervals WHEN NEW.meter ="
    " (SELECT id FROM names WHERE name = 'pv-a')"
    " AND NEW.start_ms >= 1743435900000 BEGIN SELECT RAISE(ABORT, 'poisoned'); END;";

typedef struct fx {
    char tmp[64]; /* mkdtemp, removed after the test */
} fx;

/* One engine on its own store file (collector.yaml <name>.yaml, store <name>.db). */
typedef struct env {
    dcem_collector_config *cfg;
    dcem_store *st;
    dcem_engine *e;
    char db[DCEM_COLLECTOR_PATH_MAX];
} env;

/* One message as received on a topic. */
typedef struct msg {
    char topic[DCEM_WIRE_TOPIC_MAX];
    char *payload;
    size_t len;
    int gw;
    uint64_t seq;
    size_t known; /* readings of ledger meters in it */
} msg;

enum { PLAIN = 0, STALE = 1u << 0, POISON = 1u << 1, FUTURE = 1u << 2 };

/* The last millisecond the wire format allows: 9999-12-31T23:59:59.999Z. */
#define T_9999 253402300799999LL

/* ---- fixture and helpers ------------------------------------------------------------------ */

static int write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (!fp) return -1;
    int bad = fputs(text, fp) < 0;
    return fclose(fp) || bad ? -1 : 0;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->tmp, sizeof f->tmp, "/tmp/dcem-engine-XXXXXX");
    if (!mkdtemp(f->tmp)) {
        free(f);
        return -1;
    }
    char p[128];
    int n = snprintf(p, sizeof p, "%s/sites", f->tmp);
    int rc = n < 0 || (size_t)n >= sizeof p || mkdir(p, 0755);
    n = snprintf(p, sizeof p, "%s/sites/eng-a.yaml", f->tmp);
    rc = rc || n < 0 || (size_t)n >= sizeof p || write_file(p, ledger_a);
    n = snprintf(p, sizeof p, "%s/sites/eng-b.yaml", f->tmp);
    rc = rc || n < 0 || (size_t)n >= sizeof p || write_file(p, ledger_b);
    if (rc) {
        rm_rf(f->tmp);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    rm_rf(f->tmp);
    free(f);
    return 0;
}

/* Loads <tmp>/<name>.yaml (written here) as dcem-collector does, opens its
 * store as open_store() in collector.c does (busy_timeout_ms as given) and
 * starts an engine on it. */
static void env_open(fx *f, env *v, const char *name, int busy_timeout_ms)
{
    char path[256], yaml[2048], err[1024];
    int n = snprintf(path, sizeof path, "%s/%s.yaml", f->tmp, name);
    assert_true(n > 0 && (size_t)n < sizeof path);
    n = snprintf(yaml, sizeof yaml,
                 "collector: test-engine\n"
                 "sites: sites\n"
                 "policy: %s/configs/policy/beijing-etown-2024.yaml\n"
                 "identity: {allow_unsigned: true}\n"
                 "recompute_ms: 1000\n"
                 "mqtt:\n"
                 "  uri: tcp://127.0.0.1:1883\n"
                 "store:\n"
                 "  backend: sqlite\n"
                 "  path: %s.db\n"
                 "  synchronous: full\n",
                 DCEM_SOURCE_DIR, name);
    assert_true(n > 0 && (size_t)n < sizeof yaml);
    assert_int_equal(write_file(path, yaml), 0);
    memset(v, 0, sizeof *v);
    v->cfg = dcem_collector_config_load(path, err, sizeof err);
    if (!v->cfg) fail_msg("%s", err);
    assert_int_equal(v->cfg->n_sites, 2);
    n = snprintf(v->db, sizeof v->db, "%s", v->cfg->store.path);
    assert_true(n > 0 && (size_t)n < sizeof v->db);
    dcem_store_opts so = {.synchronous = v->cfg->store.synchronous,
                          .busy_timeout_ms = busy_timeout_ms,
                          .retention_days = (int)v->cfg->store.retention_days};
    int rc =
        dcem_store_open(v->cfg->store.backend, dcem_collector_store_target(&v->cfg->store), &so,
                        &v->st, err, sizeof err);
    if (rc) fail_msg("open %s: %d %s", v->cfg->store.path, rc, err);
    v->e = dcem_engine_new(v->cfg, v->st);
    assert_non_null(v->e);
}

static void env_close(env *v)
{
    dcem_engine_free(v->e);
    dcem_store_close(v->st);
    dcem_collector_config_free(v->cfg);
    memset(v, 0, sizeof *v);
}

/* Counter of meter m after minute k: the power varies from minute to
 * minute, the register shows 0.01 kWh steps. */
static double kwh_at(size_t m, int k)
{
    double v = 1000.0 * (double)(m + 1);
    for (int i = 0; i < k; i++)
        v += meters[m].kw / 60.0 * (0.8 + 0.1 * (double)(((size_t)i * 7 + m) % 5));
    return round(v * 100.0) / 100.0;
}

/* Batch seq of gateway gw, encoded: minutes (seq-1)*PER_BATCH .. seq*PER_BATCH-1
 * after T0, each of its meters once a minute, in time order. STALE: its
 * first meter's readings are stale; POISON: one reading of meter "poison"
 * (no ledger has it) as well; FUTURE: two readings of its first meter
 * stamped in 9999 after the others. */
static void make_batch(msg *out, int gw, uint64_t seq, unsigned flags)
{
    memset(out, 0, sizeof *out);
    out->gw = gw;
    out->seq = seq;
    assert_int_equal(
        dcem_wire_topic(out->topic, sizeof out->topic, gws[gw].site, gws[gw].gateway, "data"), 0);
    size_t cap = PER_BATCH * 3 + 3, n = 0;
    dcem_wire_reading *r = calloc(cap, sizeof *r);
    assert_non_null(r);
    int k0 = (int)(seq - 1) * PER_BATCH;
    for (int k = k0; k < k0 + PER_BATCH; k++) {
        for (int j = 0; j < gws[gw].n; j++) {
            size_t m = (size_t)(gws[gw].first + j);
            dcem_wire_reading *x = &r[n++];
            snprintf(x->meter, sizeof x->meter, "%s", meters[m].id);
            x->t_ms = T0 + k * MIN;
            x->quality = (flags & STALE) && j == 0 ? DCEM_WIRE_Q_STALE : DCEM_WIRE_Q_OK;
            x->has_kwh = 1;
            x->kwh = kwh_at(m, k);
            x->has_kw = 1;
            x->kw = meters[m].kw;
        }
    }
    out->known = n;
    if (flags & POISON) {
        dcem_wire_reading *x = &r[n++];
        snprintf(x->meter, sizeof x->meter, "poison");
        x->t_ms = T0 + k0 * MIN;
        x->quality = DCEM_WIRE_Q_OK;
        x->has_kwh = 1;
        x->kwh = 1.0;
    }
    for (int k = 0; (flags & FUTURE) && k < 2; k++) {
        dcem_wire_reading *x = &r[n++];
        snprintf(x->meter, sizeof x->meter, "%s", meters[gws[gw].first].id);
        x->t_ms = T_9999 - 60000 + k * 60000;
        x->quality = DCEM_WIRE_Q_OK;
        x->has_kwh = 1;
        x->kwh = kwh_at((size_t)gws[gw].first, k0 + PER_BATCH) + k;
    }
    dcem_wire_batch b;
    memset(&b, 0, sizeof b);
    snprintf(b.site, sizeof b.site, "%s", gws[gw].site);
    snprintf(b.gateway, sizeof b.gateway, "%s", gws[gw].gateway);
    b.epoch = EPOCH;
    b.seq = seq;
    b.readings = r;
    b.n_readings = n;
    assert_int_equal(dcem_wire_encode_batch(&b, &out->payload, &out->len), 0);
    free(r);
}

/* A payload given as text, on gateway gw's topic of leaf. */
static void make_raw(msg *out, int gw, const char *leaf, const char *payload)
{
    memset(out, 0, sizeof *out);
    out->gw = gw;
    assert_int_equal(
        dcem_wire_topic(out->topic, sizeof out->topic, gws[gw].site, gws[gw].gateway, leaf), 0);
    out->payload = strdup(payload);
    assert_non_null(out->payload);
    out->len = strlen(payload);
}

static void free_msgs(msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].payload);
}

/* msgs[0..n) as one group (dcem_engine_batches). */
static void feed(env *v, const msg *m, size_t n, dcem_engine_reply *rep, int *out)
{
    dcem_engine_msg em[MAX_MSGS];
    assert_true(n <= MAX_MSGS);
    for (size_t i = 0; i < n; i++)
        em[i] = (dcem_engine_msg){m[i].topic, strlen(m[i].topic), m[i].payload, m[i].len, 0};
    dcem_engine_batches(v->e, em, n, NOW, rep, out);
}

/* One message alone (dcem_engine_batch). */
static int feed1(env *v, const msg *m, dcem_engine_reply *rep)
{
    return dcem_engine_batch(v->e, m->topic, strlen(m->topic), m->payload, m->len, NOW, rep);
}

static void assert_stored(const dcem_engine_reply *r, int outcome, const msg *m)
{
    if (outcome != DCEM_ENGINE_STORED)
        fail_msg("%s seq %llu: outcome %d (%s)", m->topic, (unsigned long long)m->seq, outcome,
                 r->why);
    assert_true(r->ack);
    assert_false(r->resend);
    assert_int_equal(r->epoch, EPOCH);
    assert_int_equal(r->ack_seq, m->seq);
    assert_string_equal(r->site, gws[m->gw].site);
    assert_string_equal(r->gateway, gws[m->gw].gateway);
}

static void assert_failed(const dcem_engine_reply *r, int outcome)
{
    assert_int_equal(outcome, DCEM_ENGINE_FAILED);
    assert_false(r->ack);
    assert_false(r->resend);
    assert_true(r->why[0] != '\0');
}

/* A value of a one-row query, through a connection of the test's own. */
static int64_t q1(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(h));
    int64_t v = -1;
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(h);
    return v;
}

static void sql_exec(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    char *why = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &why) != SQLITE_OK) fail_msg("%s: %s", sql, why);
    sqlite3_close(h);
}

/* Readings stored from one batch. */
static int64_t readings_of(const char *db, const msg *m)
{
    char sql[256];
    int n = snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM readings WHERE gateway = '%s' AND epoch = %llu"
                     " AND seq = %llu",
                     gws[m->gw].gateway, (unsigned long long)EPOCH, (unsigned long long)m->seq);
    assert_true(n > 0 && (size_t)n < sizeof sql);
    return q1(db, sql);
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        assert_non_null(p);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Every row of a query, a line each, doubles in hexadecimal (exact). */
static char *dump(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(h));
    sbuf b = {0};
    sb_add(&b, "", 0);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(s); c++) {
            char v[64];
            int n = 0;
            switch (sqlite3_column_type(s, c)) {
            case SQLITE_INTEGER:
                n = snprintf(v, sizeof v, "%lld", (long long)sqlite3_column_int64(s, c));
                break;
            case SQLITE_FLOAT:
                n = snprintf(v, sizeof v, "%a", sqlite3_column_double(s, c));
                break;
            case SQLITE_TEXT: {
                const char *t = (const char *)sqlite3_column_text(s, c);
                sb_add(&b, t, strlen(t));
                break;
            }
            case SQLITE_NULL:
                n = snprintf(v, sizeof v, "null");
                break;
            default:
                n = snprintf(v, sizeof v, "blob:%d", sqlite3_column_bytes(s, c));
                break;
            }
            assert_true(n >= 0 && (size_t)n < sizeof v);
            sb_add(&b, v, (size_t)n);
            sb_add(&b, "|", 1);
        }
        sb_add(&b, "\n", 1);
    }
    assert_int_equal(rc, SQLITE_DONE);
    sqlite3_finalize(s);
    sqlite3_close(h);
    return b.p;
}

/* What two stores hold is the same, row for row and bit for bit: readings
 * (with the batch that brought each), intervals, hour/day/month rollups,
 * the meters' counter and splitter state, epochs, batches and alerts.
 * Returns the number of intervals. */
static int64_t assert_same_store(const char *a, const char *b)
{
    static const char *const queries[] = {
        "SELECT site, meter, t_ms, kwh, kw, quality, gateway, epoch, seq FROM readings"
        " ORDER BY site, t_ms, meter",
        "SELECT * FROM intervals ORDER BY site, start_ms, meter",
        "SELECT * FROM rollups ORDER BY site, kind, key, meter",
        "SELECT * FROM meter_state ORDER BY site, meter",
        "SELECT site, gateway, epoch, contiguous_seq, max_seq, skipped FROM epochs"
        " ORDER BY site, gateway, epoch",
        "SELECT site, gateway, epoch, seq, n_readings, n_new, quarantined FROM batches"
        " ORDER BY site, gateway, epoch, seq",
        "SELECT site, t_ms, kind, message, state FROM alerts ORDER BY id",
    };
    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        char *x = dump(a, queries[q]), *y = dump(b, queries[q]);
        if (strcmp(x, y)) {
            size_t i = 0, line = 1;
            while (x[i] && x[i] == y[i])
                line += x[i++] == '\n';
            fail_msg("%s: the stores differ at row %zu:\n%s\n--- versus ---\n%s", queries[q], line,
                     x, y);
        }
        free(x);
        free(y);
    }
    return q1(a, "SELECT count(*) FROM intervals");
}

/* What the engine hands to InfluxDB: dcem_reading lines, and those of
 * meter "poison". */
typedef struct sink {
    size_t readings, poison, calls;
} sink;

static void on_lines(void *ctx, const char *lines, size_t len)
{
    sink *k = ctx;
    k->calls++;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && lines[j] != '\n')
            j++;
        static const char rd[] = "dcem_reading,", pz[] = ",meter=poison";
        if (j - i >= sizeof rd - 1 && !memcmp(lines + i, rd, sizeof rd - 1)) k->readings++;
        for (size_t p = i; p + sizeof pz <= j; p++) /* the tag, then ',' or ' ' */
            if (!memcmp(lines + p, pz, sizeof pz - 1) &&
                (lines[p + sizeof pz - 1] == ',' || lines[p + sizeof pz - 1] == ' ')) {
                k->poison++;
                break;
            }
        i = j + 1;
    }
}

/* Alerts handed on, with what another connection saw committed then. */
typedef struct rec {
    const char *db;
    size_t n;
    struct {
        char site[DCEM_ID_MAX], kind[DCEM_ID_MAX], message[256];
        int raised;
        int64_t t_ms;
        int64_t batches, alerts; /* committed when it was handed on */
    } a[16];
} rec;

static void on_alert(void *ctx, const dcem_engine_alert *a)
{
    rec *r = ctx;
    if (r->n < sizeof r->a / sizeof r->a[0]) {
        snprintf(r->a[r->n].site, sizeof r->a[r->n].site, "%s", a->site);
        snprintf(r->a[r->n].kind, sizeof r->a[r->n].kind, "%s", a->kind);
        snprintf(r->a[r->n].message, sizeof r->a[r->n].message, "%s", a->message);
        r->a[r->n].raised = a->raised;
        r->a[r->n].t_ms = a->t_ms;
        r->a[r->n].batches = q1(r->db, "SELECT count(*) FROM batches");
        r->a[r->n].alerts = q1(r->db, "SELECT count(*) FROM alerts");
    }
    r->n++;
}

/* Interval kWh of (site, meter) summed through the store API. */
typedef struct iv_sum {
    const char *meter;
    double kwh;
    int n;
} iv_sum;

static int iv_sum_fn(void *ctx, const char *meter, const dcem_interval *iv)
{
    iv_sum *s = ctx;
    if (!strcmp(meter, s->meter)) s->kwh += dcem_ukwh_kwh(iv->ukwh), s->n++;
    return 0;
}

typedef struct day_sum {
    const char *meter;
    double kwh;
    long intervals[4];
    int n;
} day_sum;

static int day_sum_fn(void *ctx, const dcem_store_rollup *r)
{
    day_sum *d = ctx;
    if (strcmp(r->meter, d->meter)) return 0;
    if (d->n < 4) d->intervals[d->n] = r->intervals;
    d->n++;
    d->kwh += dcem_ukwh_kwh(r->ukwh);
    return 0;
}

static const char *site_of_meter(size_t m)
{
    for (int g = 0; g < N_GWS; g++)
        if ((int)m >= gws[g].first && (int)m < gws[g].first + gws[g].n) return gws[g].site;
    return NULL;
}

/* ---- 1. a group equals the same batches one by one ----------------------------------------- */

static void test_group_equals_one_by_one(void **state)
{
    fx *f = *state;
    msg m[MAX_MSGS];
    size_t n = 0, readings = 0;
    for (uint64_t seq = 1; seq <= 6; seq++)
        for (int g = 0; g < N_GWS; g++) {
            make_batch(&m[n], g, seq, PLAIN);
            readings += m[n++].known;
        }
    env a, b;
    env_open(f, &a, "group", 0);
    env_open(f, &b, "single", 0);
    sink ka = {0}, kb = {0};
    dcem_engine_set_sink(a.e, on_lines, &ka);
    dcem_engine_set_sink(b.e, on_lines, &kb);

    dcem_engine_reply rep[MAX_MSGS];
    int out[MAX_MSGS];
    feed(&a, m, n, rep, out);
    for (size_t i = 0; i < n; i++)
        assert_stored(&rep[i], out[i], &m[i]);
    /* one group, one hand-over of its lines, after the commit */
    assert_int_equal(ka.calls, 1);
    for (size_t i = 0; i < n; i++) {
        dcem_engine_reply r;
        int o = feed1(&b, &m[i], &r);
        assert_stored(&r, o, &m[i]);
    }

    /* 6 meters x 60 readings a minute apart from 23:30: [23:30, 23:45),
     * [23:45, 0:00) and [0:00, 0:15) are complete */
    const dcem_engine_stats *sa = dcem_engine_stats_get(a.e), *sb = dcem_engine_stats_get(b.e);
    assert_int_equal(sa->received, n);
    assert_int_equal(sa->stored, n);
    assert_int_equal(sa->duplicates + sa->gaps + sa->quarantined + sa->malformed, 0);
    assert_int_equal(sa->unknown_site + sa->failed, 0);
    assert_int_equal(sa->readings, readings);
    assert_int_equal(sa->unknown_meter_readings + sa->rejected_readings, 0);
    assert_int_equal(sa->intervals, N_METERS * 3);
    assert_int_equal(sb->received, sa->received);
    assert_int_equal(sb->stored, sa->stored);
    assert_int_equal(sb->readings, sa->readings);
    assert_int_equal(sb->intervals, sa->intervals);
    assert_int_equal(ka.readings, readings);
    assert_int_equal(kb.readings, readings);

    /* every reading stored once, with the batch that brought it */
    assert_int_equal(q1(a.db, "SELECT count(*) FROM readings"), (int64_t)readings);
    assert_int_equal(q1(a.db, "SELECT count(*) FROM batches"), (int64_t)n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(readings_of(a.db, &m[i]), (int64_t)m[i].known);
    for (int g = 0; g < N_GWS; g++) {
        dcem_store_epoch ep;
        assert_int_equal(dcem_store_gateway_seq(a.st, gws[g].site, gws[g].gateway, EPOCH, &ep), 0);
        assert_int_equal(ep.contiguous_seq, 6);
        assert_int_equal(ep.max_seq, 6);
    }

    /* the energy is the counters' advance over the complete intervals, in
     * the intervals and in the day rollups (23:30-0:00 on one local day,
     * 0:00-0:15 on the next) */
    for (size_t k = 0; k < N_METERS; k++) {
        double want = kwh_at(k, 45) - kwh_at(k, 0);
        iv_sum is = {.meter = meters[k].id};
        assert_int_equal(dcem_store_intervals(a.st, site_of_meter(k), 0, INT64_MAX, iv_sum_fn, &is),
                         0);
        assert_int_equal(is.n, 3);
        assert_true(fabs(is.kwh - want) < 1e-6);
        day_sum ds = {.meter = meters[k].id};
        assert_int_equal(dcem_store_rollups(a.st, site_of_meter(k), DCEM_PERIOD_DAY, 0, INT64_MAX,
                                            day_sum_fn, &ds),
                         0);
        assert_int_equal(ds.n, 2);
        assert_int_equal(ds.intervals[0], 2);
        assert_int_equal(ds.intervals[1], 1);
        assert_true(fabs(ds.kwh - want) < 1e-5);
    }

    /* and the group stored bit for bit what the batches one by one stored */
    assert_int_equal(assert_same_store(a.db, b.db), (int64_t)N_METERS * 3);
    env_close(&a);
    env_close(&b);
    free_msgs(m, n);
}

/* ---- 2. duplicates, gaps, malformed and quarantined payloads in one group ------------------ */

static void test_duplicate_gap_malformed_in_one_group(void **state)
{
    fx *f = *state;
    char quarantine[512];
    int qn = snprintf(quarantine, sizeof quarantine,
                      "{\"v\":1,\"site\":\"eng-b\",\"gateway\":\"gw-3\",\"epoch\":%llu,\"seq\":1,"
                      "\"readings\":[{\"meter\":\"fac-b\",\"t\":%lld,\"q\":\"bogus\"}]}",
                      (unsigned long long)EPOCH, (long long)T0);
    assert_true(qn > 0 && (size_t)qn < sizeof quarantine);

    msg m[10];
    make_batch(&m[0], G1, 1, PLAIN);
    make_batch(&m[1], G1, 2, PLAIN);
    make_batch(&m[2], G1, 2, PLAIN); /* the same batch again */
    make_batch(&m[3], G2, 1, PLAIN);
    make_batch(&m[4], G2, 3, PLAIN);                                    /* seq 2 of gw-2 missing */
    make_raw(&m[5], G2, "data", "{\"v\":1,\"site\":\"eng-a\",\"gatew"); /* truncated */
    make_batch(&m[6], G1, 1, PLAIN);                                    /* an older one again */
    make_batch(&m[7], G1, 3, PLAIN);
    make_raw(&m[8], G2, "ack", "{\"v\":1,\"epoch\":1,\"seq\":1}"); /* not a data topic */
    make_raw(&m[9], G3, "data", quarantine);                       /* sound header, bad reading */
    m[9].seq = 1;

    env v;
    env_open(f, &v, "store", 0);
    dcem_engine_reply rep[10];
    int out[10];
    feed(&v, m, 10, rep, out);

    assert_stored(&rep[0], out[0], &m[0]);
    assert_stored(&rep[1], out[1], &m[1]);
    /* a duplicate of a batch stored earlier in the same group: re-acked */
    assert_int_equal(out[2], DCEM_ENGINE_DUPLICATE);
    assert_true(rep[2].ack);
    assert_int_equal(rep[2].epoch, EPOCH);
    assert_int_equal(rep[2].ack_seq, 2);
    assert_stored(&rep[3], out[3], &m[3]);
    /* a gap: a resend from the missing seq, no ack */
    assert_int_equal(out[4], DCEM_ENGINE_GAP);
    assert_false(rep[4].ack);
    assert_true(rep[4].resend);
    assert_int_equal(rep[4].epoch, EPOCH);
    assert_int_equal(rep[4].resend_from, 2);
    assert_int_equal(out[5], DCEM_ENGINE_MALFORMED);
    assert_int_equal(rep[5].reason, DCEM_WIRE_NOT_JSON);
    assert_false(rep[5].ack);
    assert_false(rep[5].resend);
    assert_int_equal(out[6], DCEM_ENGINE_DUPLICATE);
    assert_true(rep[6].ack);
    assert_int_equal(rep[6].ack_seq, 2); /* cumulative: all of 1..2 stored */
    assert_stored(&rep[7], out[7], &m[7]);
    assert_int_equal(out[8], DCEM_ENGINE_MALFORMED);
    assert_int_equal(rep[8].reason, DCEM_WIRE_BAD_ID);
    assert_false(rep[8].ack);
    assert_int_equal(out[9], DCEM_ENGINE_QUARANTINED);
    assert_int_equal(rep[9].reason, DCEM_WIRE_BAD_QUALITY);
    assert_true(rep[9].ack);
    assert_int_equal(rep[9].ack_seq, 1);

    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->received, 10);
    assert_int_equal(s->stored, 4);
    assert_int_equal(s->duplicates, 2);
    assert_int_equal(s->gaps, 1);
    assert_int_equal(s->malformed, 2);
    assert_int_equal(s->malformed_by_reason[DCEM_WIRE_NOT_JSON], 1);
    assert_int_equal(s->malformed_by_reason[DCEM_WIRE_BAD_ID], 1);
    assert_int_equal(s->quarantined, 1);
    assert_int_equal(s->failed + s->unknown_site, 0);
    size_t good = m[0].known + m[1].known + m[3].known + m[7].known;
    assert_int_equal(s->readings, good);

    /* the good ones stored once; nothing of the gap, the malformed or the
     * quarantined batch but the quarantine row */
    assert_int_equal(q1(v.db, "SELECT count(*) FROM readings"), (int64_t)good);
    assert_int_equal(readings_of(v.db, &m[4]), 0);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM batches WHERE quarantined = 0"), 4);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM quarantine WHERE gateway = 'gw-3'"), 1);
    dcem_store_epoch ep;
    assert_int_equal(dcem_store_gateway_seq(v.st, "eng-a", "gw-1", EPOCH, &ep), 0);
    assert_int_equal(ep.contiguous_seq, 3);
    assert_int_equal(dcem_store_gateway_seq(v.st, "eng-a", "gw-2", EPOCH, &ep), 0);
    assert_int_equal(ep.contiguous_seq, 1);
    assert_int_equal(ep.max_seq, 1);

    /* the same intervals as a store given only the good batches */
    env r;
    env_open(f, &r, "reference", 0);
    msg good_m[4] = {m[0], m[1], m[3], m[7]};
    feed(&r, good_m, 4, rep, out);
    for (size_t i = 0; i < 4; i++)
        assert_stored(&rep[i], out[i], &good_m[i]);
    /* (the reference has no quarantine row: compare everything but batches) */
    assert_int_equal(q1(v.db, "SELECT count(*) FROM intervals"),
                     q1(r.db, "SELECT count(*) FROM intervals"));
    char *x = dump(v.db, "SELECT * FROM intervals ORDER BY site, start_ms, meter");
    char *y = dump(r.db, "SELECT * FROM intervals ORDER BY site, start_ms, meter");
    assert_string_equal(x, y);
    free(x);
    free(y);
    x = dump(v.db, "SELECT * FROM rollups ORDER BY site, kind, key, meter");
    y = dump(r.db, "SELECT * FROM rollups ORDER BY site, kind, key, meter");
    assert_string_equal(x, y);
    free(x);
    free(y);
    env_close(&r);

    /* once the missing batch comes, the one that made the gap is taken */
    msg later[2];
    make_batch(&later[0], G2, 2, PLAIN);
    make_batch(&later[1], G2, 3, PLAIN);
    feed(&v, later, 2, rep, out);
    assert_stored(&rep[0], out[0], &later[0]);
    assert_stored(&rep[1], out[1], &later[1]);
    assert_int_equal(readings_of(v.db, &later[1]), (int64_t)later[1].known);
    free_msgs(later, 2);
    env_close(&v);
    free_msgs(m, 10);
}

/* ---- 3. a store failure inside a group ----------------------------------------------------- */

/* The readings of gw-2's batch 2 fail in the store: the group is rolled back and
 * tried again batch by batch; only the poisoned batch fails, the others are
 * stored once, and what the store holds equals a store that never saw the
 * poisoned batch — then, with the trigger gone, one that never failed. */
static void test_store_failure_retried_batch_by_batch(void **state)
{
    fx *f = *state;
    msg m[8];
    size_t n = 0;
    make_batch(&m[n++], G1, 1, PLAIN);
    make_batch(&m[n++], G2, 1, PLAIN);
    make_batch(&m[n++], G3, 1, PLAIN);
    make_batch(&m[n++], G1, 2, PLAIN);
    make_batch(&m[n++], G2, 2, POISON); /* the last of gw-2: nothing after it waits on it */
    make_batch(&m[n++], G3, 2, PLAIN);
    make_batch(&m[n++], G1, 3, PLAIN);
    make_batch(&m[n++], G3, 3, PLAIN);
    const size_t bad = 4;

    env v;
    env_open(f, &v, "store", 0);
    sink k = {0};
    dcem_engine_set_sink(v.e, on_lines, &k);
    sql_exec(v.db, poison_readings);
    dcem_engine_reply rep[8];
    int out[8];
    feed(&v, m, n, rep, out);

    size_t good = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == bad) continue;
        assert_stored(&rep[i], out[i], &m[i]);
        good += m[i].known;
    }
    assert_failed(&rep[bad], out[bad]);
    if (!strstr(rep[bad].why, "malformed JSON")) fail_msg("why: %s", rep[bad].why);

    /* counted once each: the rolled-back attempt left no trace in the stats */
    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->received, n);
    assert_int_equal(s->stored, n - 1);
    assert_int_equal(s->failed, 1);
    assert_int_equal(s->duplicates + s->gaps + s->malformed + s->quarantined, 0);
    assert_int_equal(s->readings, good);
    assert_int_equal(s->unknown_meter_readings + s->rejected_readings, 0);
    assert_int_equal(s->intervals, (uint64_t)q1(v.db, "SELECT count(*) FROM intervals"));
    /* InfluxDB gets the readings stored, once, none of the poisoned batch */
    assert_int_equal(k.readings, good);
    assert_int_equal(k.poison, 0);

    /* the others stored once, nothing of the poisoned batch */
    assert_int_equal(q1(v.db, "SELECT count(*) FROM readings"), (int64_t)good);
    assert_int_equal(readings_of(v.db, &m[bad]), 0);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM readings WHERE meter = (SELECT id FROM names "
                              "WHERE name = 'poison')"),
                     0);
    dcem_store_epoch ep;
    assert_int_equal(dcem_store_gateway_seq(v.st, "eng-a", "gw-2", EPOCH, &ep), 0);
    assert_int_equal(ep.contiguous_seq, 1);
    assert_int_equal(ep.max_seq, 1);
    {
        env r;
        env_open(f, &r, "without", 0);
        msg rest[7];
        size_t nr = 0;
        for (size_t i = 0; i < n; i++)
            if (i != bad) rest[nr++] = m[i];
        feed(&r, rest, nr, rep, out);
        for (size_t i = 0; i < nr; i++)
            assert_stored(&rep[i], out[i], &rest[i]);
        assert_true(assert_same_store(v.db, r.db) > 0);
        env_close(&r);
    }

    /* the trigger gone, the same batch is stored; then the next of gw-2 */
    sql_exec(v.db, "DROP TRIGGER poison");
    dcem_engine_reply r1;
    assert_stored(&r1, feed1(&v, &m[bad], &r1), &m[bad]);
    msg next;
    make_batch(&next, G2, 3, PLAIN);
    assert_stored(&r1, feed1(&v, &next, &r1), &next);
    /* the reading of "poison", a meter of no ledger, is counted, not stored */
    assert_int_equal(readings_of(v.db, &m[bad]), (int64_t)m[bad].known);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM readings WHERE meter = (SELECT id FROM names "
                              "WHERE name = 'poison')"),
                     0);
    assert_int_equal(s->unknown_meter_readings, 1);
    assert_int_equal(s->failed, 1);
    assert_int_equal(s->received, n + 2);
    assert_int_equal(k.poison, 0);

    /* equal to a run that never failed: it-a's counter was not advanced by
     * the rolled-back attempts */
    env r;
    env_open(f, &r, "never-failed", 0);
    feed(&r, m, n, rep, out);
    for (size_t i = 0; i < n; i++)
        assert_stored(&rep[i], out[i], &m[i]);
    assert_stored(&r1, feed1(&r, &next, &r1), &next);
    assert_true(assert_same_store(v.db, r.db) > 0);
    assert_int_equal(dcem_engine_stats_get(r.e)->intervals, s->intervals);
    env_close(&r);

    free(next.payload);
    env_close(&v);
    free_msgs(m, n);
}

/* A failure at the end of the group, after the engine has run the batches'
 * readings through the counters (an interval of pv-a refused): the retry
 * alone fails that batch only, and the meters it moved in memory are read
 * back as committed — with the trigger gone the same batch and the next
 * ones give exactly the store of a run that never failed. */
static void test_failure_after_processing_leaves_counters_as_committed(void **state)
{
    fx *f = *state;
    msg m[12];
    size_t n = 0;
    for (uint64_t seq = 1; seq <= 4; seq++)
        for (int g = 0; g < N_GWS; g++)
            make_batch(&m[n++], g, seq, PLAIN);
    const size_t bad = 9; /* gw-1 seq 4: reaches 0:00, closes pv-a's [23:45, 0:00) */
    assert_int_equal(m[bad].gw, G1);
    assert_int_equal(m[bad].seq, 4);

    env v;
    env_open(f, &v, "store", 0);
    sql_exec(v.db, poison_interval);
    dcem_engine_reply rep[12];
    int out[12];
    feed(&v, m, n, rep, out);
    for (size_t i = 0; i < n; i++)
        if (i != bad) assert_stored(&rep[i], out[i], &m[i]);
    assert_failed(&rep[bad], out[bad]);
    if (!strstr(rep[bad].why, "malformed JSON")) fail_msg("why: %s", rep[bad].why);
    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->received, n);
    assert_int_equal(s->stored, n - 1);
    assert_int_equal(s->failed, 1);
    assert_int_equal(s->readings, (uint64_t)q1(v.db, "SELECT count(*) FROM readings"));
    assert_int_equal(s->intervals, (uint64_t)q1(v.db, "SELECT count(*) FROM intervals"));
    assert_int_equal(readings_of(v.db, &m[bad]), 0);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM intervals WHERE meter IN"
                              " (SELECT id FROM names WHERE name IN ('fac-a', 'pv-a'))"),
                     2);

    sql_exec(v.db, "DROP TRIGGER poison");
    msg more[3];
    assert_stored(&rep[0], feed1(&v, &m[bad], &rep[0]), &m[bad]);
    make_batch(&more[0], G1, 5, PLAIN);
    make_batch(&more[1], G1, 6, PLAIN);
    make_batch(&more[2], G1, 7, PLAIN);
    feed(&v, more, 3, rep, out);
    for (size_t i = 0; i < 3; i++)
        assert_stored(&rep[i], out[i], &more[i]);
    assert_int_equal(s->rejected_readings, 0);

    env r;
    env_open(f, &r, "never-failed", 0);
    feed(&r, m, n, rep, out);
    for (size_t i = 0; i < n; i++)
        assert_stored(&rep[i], out[i], &m[i]);
    feed(&r, more, 3, rep, out);
    for (size_t i = 0; i < 3; i++)
        assert_stored(&rep[i], out[i], &more[i]);
    /* fac-a, pv-a: 70 minutes, 4 intervals each */
    assert_int_equal(q1(r.db, "SELECT count(*) FROM intervals WHERE meter IN"
                              " (SELECT id FROM names WHERE name IN ('fac-a', 'pv-a'))"),
                     8);
    assert_true(assert_same_store(v.db, r.db) > 0);
    assert_int_equal(dcem_engine_stats_get(r.e)->readings, s->readings);
    assert_int_equal(dcem_engine_stats_get(r.e)->intervals, s->intervals);
    env_close(&r);

    env_close(&v);
    free_msgs(more, 3);
    free_msgs(m, n);
}

/* ---- 4. alerts after the commit only ------------------------------------------------------- */

static void test_alerts_after_commit(void **state)
{
    fx *f = *state;
    env v;
    env_open(f, &v, "store", 0);
    rec r = {.db = v.db};
    dcem_engine_set_alerts(v.e, on_alert, &r);
    dcem_engine_reply rep[3];
    int out[3];

    /* fac-a's readings stale: meter_stale raised once, after the group's commit */
    msg m[3];
    make_batch(&m[0], G1, 1, STALE);
    make_batch(&m[1], G2, 1, PLAIN);
    make_batch(&m[2], G3, 1, PLAIN);
    feed(&v, m, 3, rep, out);
    for (size_t i = 0; i < 3; i++)
        assert_stored(&rep[i], out[i], &m[i]);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.a[0].site, "eng-a");
    assert_string_equal(r.a[0].kind, "meter_stale");
    assert_int_equal(r.a[0].raised, 1);
    assert_non_null(strstr(r.a[0].message, "fac-a"));
    assert_int_equal(r.a[0].t_ms, T0);
    assert_int_equal(r.a[0].batches, 3); /* the whole group was committed when it came */
    assert_int_equal(r.a[0].alerts, 1);  /* and the alert stored with it */
    free_msgs(m, 3);

    /* still stale: nothing new */
    make_batch(&m[0], G1, 2, STALE);
    make_batch(&m[1], G2, 2, PLAIN);
    feed(&v, m, 2, rep, out);
    for (size_t i = 0; i < 2; i++)
        assert_stored(&rep[i], out[i], &m[i]);
    assert_int_equal(r.n, 1);
    free_msgs(m, 2);

    /* counting again: cleared, once */
    make_batch(&m[0], G1, 3, PLAIN);
    feed(&v, m, 1, rep, out);
    assert_stored(&rep[0], out[0], &m[0]);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.a[1].kind, "meter_stale");
    assert_int_equal(r.a[1].raised, 0);
    assert_int_equal(r.a[1].t_ms, T0 + 2 * PER_BATCH * MIN);
    assert_int_equal(r.a[1].batches, 6);
    assert_int_equal(r.a[1].alerts, 2);
    free_msgs(m, 1);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM alerts WHERE kind = 'meter_stale'"), 2);
    env_close(&v);
}

/* A group rolled back by the poisoned batch hands on none of its alerts;
 * the retry that stores the stale batch raises it, once. */
/* A restart (a new engine on the same store) knows a meter is stale: no
 * second raise while it stays stale, one clear when it counts again. */
static void test_stale_survives_restart(void **state)
{
    fx *f = *state;
    env v;
    env_open(f, &v, "store", 0);
    rec r = {.db = v.db};
    dcem_engine_set_alerts(v.e, on_alert, &r);
    dcem_engine_reply rep[1];
    int out[1];
    msg m[1];
    make_batch(&m[0], G1, 1, STALE);
    feed(&v, m, 1, rep, out);
    assert_stored(&rep[0], out[0], &m[0]);
    assert_int_equal(r.n, 1);
    free_msgs(m, 1);
    env_close(&v);

    env_open(f, &v, "store", 0);
    r = (rec){.db = v.db};
    dcem_engine_set_alerts(v.e, on_alert, &r);
    make_batch(&m[0], G1, 2, STALE);
    feed(&v, m, 1, rep, out);
    assert_stored(&rep[0], out[0], &m[0]);
    assert_int_equal(r.n, 0);
    free_msgs(m, 1);
    env_close(&v);

    env_open(f, &v, "store", 0);
    r = (rec){.db = v.db};
    dcem_engine_set_alerts(v.e, on_alert, &r);
    make_batch(&m[0], G1, 3, PLAIN);
    feed(&v, m, 1, rep, out);
    assert_stored(&rep[0], out[0], &m[0]);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.a[0].raised, 0);
    free_msgs(m, 1);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM alerts WHERE kind = 'meter_stale'"), 2);
    env_close(&v);
}

/* A birth says which batches the gateway still holds (next_seq - queued ..
 * next_seq - 1): those before are given up as missing data, so its next
 * batch is stored instead of waiting for a resend that cannot come. A birth
 * that holds what the collector expects next changes nothing. */
static void test_birth_gives_up_what_the_gateway_no_longer_holds(void **state)
{
    fx *f = *state;
    env v;
    env_open(f, &v, "store", 0);
    dcem_engine_reply rep[1];
    int out[1];
    msg m[1];
    /* seq 1 stored; the gateway then says it holds 5..6 only */
    make_batch(&m[0], G1, 1, PLAIN);
    feed(&v, m, 1, rep, out);
    assert_stored(&rep[0], out[0], &m[0]);
    free_msgs(m, 1);
    make_batch(&m[0], G1, 5, PLAIN);
    feed(&v, m, 1, rep, out);
    assert_int_equal(out[0], DCEM_ENGINE_GAP);
    assert_int_equal(rep[0].resend_from, 2);
    free_msgs(m, 1);
    dcem_wire_state birth = {.online = 1, .epoch = EPOCH, .next_seq = 7, .queued = 2};
    dcem_engine_gateway_state(v.e, gws[G1].site, gws[G1].gateway, &birth, NOW);
    dcem_store_epoch ep;
    assert_int_equal(dcem_store_gateway_seq(v.st, gws[G1].site, gws[G1].gateway, EPOCH, &ep), 0);
    assert_int_equal(ep.contiguous_seq, 4);
    assert_int_equal(ep.skipped, 3); /* 2, 3 and 4: missing data */
    make_batch(&m[0], G1, 5, PLAIN);
    feed(&v, m, 1, rep, out);
    assert_stored(&rep[0], out[0], &m[0]);
    assert_int_equal(rep[0].ack_seq, 5);
    free_msgs(m, 1);
    /* it holds 6 and later: what comes next — nothing to give up */
    birth.next_seq = 8;
    dcem_engine_gateway_state(v.e, gws[G1].site, gws[G1].gateway, &birth, NOW);
    assert_int_equal(dcem_store_gateway_seq(v.st, gws[G1].site, gws[G1].gateway, EPOCH, &ep), 0);
    assert_int_equal(ep.contiguous_seq, 5);
    assert_int_equal(ep.skipped, 3);
    /* seq 3, given up, comes after all (a late answer, or another member of
     * a shared group that was still storing it): stored, not dropped as a
     * duplicate; acked with the epoch's H; its repeat is a duplicate */
    make_batch(&m[0], G1, 3, PLAIN);
    feed(&v, m, 1, rep, out);
    assert_int_equal(out[0], DCEM_ENGINE_STORED);
    assert_true(rep[0].ack);
    assert_int_equal(rep[0].ack_seq, 5);
    msg five = m[0];
    five.seq = 5; /* the same shape of batch, stored in order above */
    assert_true(readings_of(v.db, &m[0]) > 0);
    assert_int_equal(readings_of(v.db, &m[0]), readings_of(v.db, &five));
    assert_int_equal(dcem_engine_stats_get(v.e)->given_up_stored, 1);
    feed(&v, m, 1, rep, out);
    assert_int_equal(out[0], DCEM_ENGINE_DUPLICATE);
    assert_int_equal(rep[0].ack_seq, 5);
    free_msgs(m, 1);
    /* a birth of a site without a ledger is ignored */
    dcem_engine_gateway_state(v.e, "eng-nowhere", "gw-9", &birth, NOW);
    assert_int_equal(dcem_store_gateway_seq(v.st, "eng-nowhere", "gw-9", EPOCH, &ep), DCEM_ENOTFOUND);
    env_close(&v);
}

static void test_alerts_not_on_rollback(void **state)
{
    fx *f = *state;
    env v;
    env_open(f, &v, "store", 0);
    rec r = {.db = v.db};
    dcem_engine_set_alerts(v.e, on_alert, &r);
    sql_exec(v.db, poison_readings);
    msg m[3];
    make_batch(&m[0], G1, 1, STALE);
    make_batch(&m[1], G2, 1, PLAIN);
    make_batch(&m[2], G2, 2, POISON);
    dcem_engine_reply rep[3];
    int out[3];
    feed(&v, m, 3, rep, out);
    assert_stored(&rep[0], out[0], &m[0]);
    assert_stored(&rep[1], out[1], &m[1]);
    assert_failed(&rep[2], out[2]);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.a[0].raised, 1);
    assert_string_equal(r.a[0].kind, "meter_stale");
    /* handed on by the retry of the stale batch alone, committed then */
    assert_int_equal(r.a[0].batches, 1);
    assert_int_equal(r.a[0].alerts, 1);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM alerts"), 1);
    free_msgs(m, 3);

    /* fac-a still stale in a group rolled back again: the raise committed
     * above stands, the retry raises nothing new */
    make_batch(&m[0], G1, 2, STALE);
    make_batch(&m[1], G2, 2, POISON);
    feed(&v, m, 2, rep, out);
    assert_stored(&rep[0], out[0], &m[0]);
    assert_failed(&rep[1], out[1]);
    assert_int_equal(r.n, 1);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM alerts"), 1);
    assert_int_equal(dcem_engine_stats_get(v.e)->failed, 2);
    env_close(&v);
    free_msgs(m, 2);
}

/* The stale batch itself rolled back after it was processed (an interval
 * of its group refused): no alert, and the meter's stale flag is as
 * committed — once stored, the alert is raised, once. */
static void test_stale_of_rolled_back_batch_raised_once(void **state)
{
    fx *f = *state;
    env v;
    env_open(f, &v, "store", 0);
    rec r = {.db = v.db};
    dcem_engine_set_alerts(v.e, on_alert, &r);
    sql_exec(v.db, poison_interval);
    msg m[4];
    for (uint64_t seq = 1; seq <= 4; seq++)
        make_batch(&m[seq - 1], G1, seq, seq == 4 ? STALE : 0);
    dcem_engine_reply rep[4];
    int out[4];
    feed(&v, m, 4, rep, out);
    for (size_t i = 0; i < 3; i++)
        assert_stored(&rep[i], out[i], &m[i]);
    assert_failed(&rep[3], out[3]);
    assert_int_equal(r.n, 0);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM alerts"), 0);

    sql_exec(v.db, "DROP TRIGGER poison");
    assert_stored(&rep[0], feed1(&v, &m[3], &rep[0]), &m[3]);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.a[0].raised, 1);
    assert_int_equal(r.a[0].t_ms, T0 + 3 * PER_BATCH * MIN);
    assert_int_equal(r.a[0].batches, 4);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM alerts"), 1);
    env_close(&v);
    free_msgs(m, 4);
}

/* ---- 5. the store locked by another connection --------------------------------------------- */

static void test_locked_store_fails_whole_group(void **state)
{
    fx *f = *state;
    env v;
    env_open(f, &v, "store", -1); /* no waiting for the lock */
    msg m[5];
    size_t n = 0;
    make_batch(&m[n++], G1, 1, PLAIN);
    make_batch(&m[n++], G2, 1, PLAIN);
    make_batch(&m[n++], G3, 1, PLAIN);
    make_batch(&m[n++], G1, 2, STALE);
    make_batch(&m[n++], G3, 2, PLAIN);
    rec r = {.db = v.db};
    dcem_engine_set_alerts(v.e, on_alert, &r);

    sqlite3 *lock = NULL;
    assert_int_equal(sqlite3_open_v2(v.db, &lock, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    dcem_engine_reply rep[5];
    int out[5];
    feed(&v, m, n, rep, out);
    for (size_t i = 0; i < n; i++)
        assert_failed(&rep[i], out[i]);
    if (!strstr(rep[0].why, "locked") && !strstr(rep[0].why, "busy"))
        fail_msg("why: %s", rep[0].why);
    dcem_engine_reply one;
    assert_failed(&one, feed1(&v, &m[0], &one));
    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->received, n + 1);
    assert_int_equal(s->failed, n + 1);
    assert_int_equal(s->stored + s->readings + s->intervals, 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM batches"), 0);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM readings"), 0);

    assert_int_equal(sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);

    /* the same messages, as the agents send them again */
    feed(&v, m, n, rep, out);
    for (size_t i = 0; i < n; i++)
        assert_stored(&rep[i], out[i], &m[i]);
    assert_int_equal(s->received, 2 * n + 1);
    assert_int_equal(s->stored, n);
    assert_int_equal(s->failed, n + 1);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.a[0].batches, (int64_t)n);

    env ref;
    env_open(f, &ref, "reference", 0);
    feed(&ref, m, n, rep, out);
    for (size_t i = 0; i < n; i++)
        assert_stored(&rep[i], out[i], &m[i]);
    assert_true(assert_same_store(v.db, ref.db) > 0);
    assert_int_equal(dcem_engine_stats_get(ref.e)->readings, s->readings);
    env_close(&ref);
    env_close(&v);
    free_msgs(m, n);
}

/* ---- 6. what no single message may do ----------------------------------------------------- */

/* Two readings stamped in 9999 (a clock that jumped, or a forger) would move
 * fac-a's counter there, and every real reading after them would be out of
 * order for ever: they are refused and counted, the rest of their batch is
 * stored, and the store is the one of a run that never saw them. */
static void test_future_readings_refused(void **state)
{
    fx *f = *state;
    msg m[4], ref[4];
    make_batch(&m[0], G1, 1, PLAIN);
    make_batch(&m[1], G1, 2, FUTURE);
    make_batch(&m[2], G1, 3, PLAIN);
    make_batch(&m[3], G1, 4, PLAIN);
    for (uint64_t seq = 1; seq <= 4; seq++)
        make_batch(&ref[seq - 1], G1, seq, PLAIN);
    env v, r;
    env_open(f, &v, "store", 0);
    env_open(f, &r, "reference", 0);
    dcem_engine_reply rep[4];
    for (size_t i = 0; i < 4; i++) { /* one by one: the 9999 readings committed before the next */
        assert_stored(&rep[0], feed1(&v, &m[i], &rep[0]), &m[i]);
        assert_stored(&rep[0], feed1(&r, &ref[i], &rep[0]), &ref[i]);
    }
    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->future_readings, 2);
    assert_int_equal(s->rejected_readings, 0);
    assert_int_equal(s->readings, dcem_engine_stats_get(r.e)->readings);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM readings WHERE t_ms > 4102444800000"), 0);
    assert_true(assert_same_store(v.db, r.db) > 0);
    env_close(&r);
    env_close(&v);
    free_msgs(m, 4);
    free_msgs(ref, 4);
}

/* A store from before that rule, whose fac-a state is in 9999 (fed here by
 * an engine whose clock said 9999): the meter is started afresh at its
 * next reading instead of rejecting every reading for ever. */
static void test_future_state_set_aside(void **state)
{
    fx *f = *state;
    msg m[4];
    make_batch(&m[0], G1, 1, PLAIN);
    make_batch(&m[1], G1, 2, FUTURE);
    make_batch(&m[2], G1, 3, PLAIN);
    make_batch(&m[3], G1, 4, PLAIN);
    env v;
    env_open(f, &v, "store", 0);
    dcem_engine_reply rep;
    for (size_t i = 0; i < 2; i++) {
        dcem_engine_msg em = {m[i].topic, strlen(m[i].topic), m[i].payload, m[i].len, 0};
        int out;
        dcem_engine_batches(v.e, &em, 1, T_9999, &rep, &out);
        assert_stored(&rep, out, &m[i]);
    }
    assert_int_equal(q1(v.db, "SELECT count(*) FROM readings WHERE t_ms > 4102444800000"), 2);
    env_close(&v);

    env_open(f, &v, "store", 0);
    for (size_t i = 2; i < 4; i++)
        assert_stored(&rep, feed1(&v, &m[i], &rep), &m[i]);
    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->future_states, 1);
    assert_int_equal(s->rejected_readings, 0);
    assert_int_equal(s->readings, m[2].known + m[3].known);
    /* fac-a counts again from its first reading of batch 3 (minute 20) on:
     * [23:45, 0:00) is closed by minute 30, measured from 23:50 */
    assert_int_equal(q1(v.db, "SELECT count(*) FROM intervals WHERE meter = "
                              "(SELECT id FROM names WHERE name = 'fac-a')"
                              " AND start_ms = 1743435900000 AND covered_ms = 600000"),
                     1);
    /* the state saved now is the fresh one's: it has seen nothing of 9999 */
    unsigned char blob[DCEM_STORE_MAX_STATE];
    size_t len;
    assert_int_equal(dcem_store_get_meter_state(v.st, "eng-a", "fac-a", blob, sizeof blob, &len,
                                                NULL, NULL),
                     0);
    dcem_tz *tz = dcem_tz_new_fixed(8 * 3600);
    dcem_meter_state ms;
    assert_int_equal(dcem_meter_decode(&ms, tz, 15, blob, len), 0);
    assert_true(dcem_meter_last_ms(&ms) < 4102444800000LL);
    dcem_tz_free(tz);
    env_close(&v);
    free_msgs(m, 4);
}

/* "kwh": 1.5e308 passes the wire format but no meter reads it: the value is
 * left out, the reading stored out_of_range and never summed, the batch
 * stored and acked. */
/* A reload (a new engine on the same store) applies the ledger in force to
 * meters that already have state: the state holds no rules (common/meter.h
 * takes them on every call), so fac-a's new rated_kw is what judges its
 * next readings; they are counted from the state as saved. */
static void test_reload_applies_the_ledger(void **state)
{
    fx *f = *state;
    msg m[2];
    make_batch(&m[0], G1, 1, PLAIN);
    make_batch(&m[1], G1, 2, PLAIN);
    env v;
    dcem_engine_reply rep;
    env_open(f, &v, "store", 0);
    assert_stored(&rep, feed1(&v, &m[0], &rep), &m[0]);
    env_close(&v);
    char path[256], db[256];
    int n = snprintf(path, sizeof path, "%s/sites/eng-a.yaml", f->tmp);
    assert_true(n > 0 && (size_t)n < sizeof path);
    n = snprintf(db, sizeof db, "%s/store.db", f->tmp);
    assert_true(n > 0 && (size_t)n < sizeof db);
    assert_int_equal(q1(db, "SELECT count(*) FROM meter_state WHERE meter = 'fac-a'"), 1);
    /* the operator corrects fac-a's rating in the ledger, and reloads */
    const char *at = strstr(ledger_a, "    rated_kw: 600\n");
    assert_non_null(at);
    char text[sizeof ledger_a + 8];
    n = snprintf(text, sizeof text, "%.*s    rated_kw: 750\n%s", (int)(at - ledger_a), ledger_a,
                 at + strlen("    rated_kw: 600\n"));
    assert_true(n > 0 && (size_t)n < sizeof text);
    assert_int_equal(write_file(path, text), 0);
    env_open(f, &v, "store", 0);
    assert_stored(&rep, feed1(&v, &m[1], &rep), &m[1]);
    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->readings, m[1].known);
    assert_int_equal(s->rejected_readings + s->rebuilds, 0); /* resumed, not rebuilt */
    env_close(&v);
    free_msgs(m, 2);
}

/* A late reading: at or before its meter's latest. Within the store's
 * retention the meter is rebuilt (collector_late, pipeline_property test
 * that end to end); older, its meter would be rebuilt from readings
 * already pruned: stored, not counted, refused as too_old in the ack. */
static void test_late_reading_beyond_retention(void **state)
{
    fx *f = *state;
    msg m[2];
    make_batch(&m[0], G2, 1, PLAIN);
    char late[512];
    int n = snprintf(late, sizeof late,
                     "{\"v\":1,\"site\":\"eng-a\",\"gateway\":\"gw-2\",\"epoch\":%llu,\"seq\":2,"
                     "\"readings\":[{\"meter\":\"it-a\",\"t\":%lld,\"q\":\"ok\",\"kwh\":1}]}",
                     (unsigned long long)EPOCH, (long long)(T0 + 30000));
    assert_true(n > 0 && (size_t)n < sizeof late);
    make_raw(&m[1], G2, "data", late);
    m[1].seq = 2;
    env v;
    env_open(f, &v, "store", 0);
    dcem_engine_reply rep;
    assert_stored(&rep, feed1(&v, &m[0], &rep), &m[0]);
    for (int k = 0; k < DCEM_REFUSE_COUNT; k++) assert_int_equal(rep.refused[k], 0);
    v.cfg->store.retention_days = 1; /* now NOW: everything before it may be pruned */
    assert_stored(&rep, feed1(&v, &m[1], &rep), &m[1]);
    assert_int_equal(rep.refused[DCEM_REFUSE_TOO_OLD], 1);
    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->too_old_readings, 1);
    assert_int_equal(s->late_readings + s->rebuilds, 0);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM readings WHERE meter = "
                              "(SELECT id FROM names WHERE name = 'it-a') AND seq = 2"),
                     1);
    env_close(&v);
    free_msgs(m, 2);
}

/* A late reading in a group after live readings of its meter: the meter is
 * rebuilt, and every reading of the group is counted once — the live
 * pushes the rebuild runs again are taken back — and a reading the rebuild
 * refuses is told to the batch that brought it. */
static void test_late_reading_counted_once(void **state)
{
    fx *f = *state;
    msg m[3];
    make_batch(&m[0], G2, 1, PLAIN);
    make_batch(&m[1], G2, 2, PLAIN);
    char late[512];
    int n = snprintf(late, sizeof late,
                     "{\"v\":1,\"site\":\"eng-a\",\"gateway\":\"gw-2\",\"epoch\":%llu,\"seq\":3,"
                     "\"readings\":[{\"meter\":\"it-a\",\"t\":%lld,\"q\":\"ok\",\"kwh\":3001},"
                     "{\"meter\":\"it-a\",\"t\":%lld,\"q\":\"ok\",\"kwh\":-5}]}",
                     (unsigned long long)EPOCH, (long long)(T0 + 30000),
                     (long long)(T0 + 20 * MIN + 30000));
    assert_true(n > 0 && (size_t)n < sizeof late);
    make_raw(&m[2], G2, "data", late);
    m[2].seq = 3;
    env v;
    env_open(f, &v, "store", 0);
    dcem_engine_reply rep[3];
    assert_stored(&rep[0], feed1(&v, &m[0], &rep[0]), &m[0]);
    int out[2];
    feed(&v, &m[1], 2, &rep[1], out); /* one group: live readings, then a late one */
    for (int i = 0; i < 2; i++)
        if (out[i] != DCEM_ENGINE_STORED) fail_msg("batch %d: outcome %d (%s)", i + 2, out[i], rep[i + 1].why);
    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->late_readings, 1);
    assert_int_equal(s->rebuilds, 1);
    assert_int_equal(s->readings, m[0].known + m[1].known + 1);
    assert_int_equal(s->rejected_readings, 1);
    for (int k = 0; k < DCEM_REFUSE_COUNT; k++) {
        assert_int_equal(rep[1].refused[k], 0);
        assert_int_equal(rep[2].refused[k], k == DCEM_REFUSE_OUT_OF_RANGE);
    }
    env_close(&v);
    free_msgs(m, 3);
}

/* A saved state this collector cannot read (a newer version, a damaged
 * row): the meter is rebuilt from its stored readings, and comes out as
 * if nothing had happened — the same intervals, every reading counted. */
static void test_unreadable_state_rebuilt(void **state)
{
    fx *f = *state;
    msg m[2];
    make_batch(&m[0], G2, 1, PLAIN);
    make_batch(&m[1], G2, 2, PLAIN);
    env v;
    dcem_engine_reply rep;
    env_open(f, &v, "store", 0);
    assert_stored(&rep, feed1(&v, &m[0], &rep), &m[0]);
    env_close(&v);
    char db[256];
    int n = snprintf(db, sizeof db, "%s/store.db", f->tmp);
    assert_true(n > 0 && (size_t)n < sizeof db);
    sql_exec(db, "UPDATE meter_state SET state = x'63' WHERE meter = 'it-a'");
    env_open(f, &v, "store", 0);
    assert_stored(&rep, feed1(&v, &m[1], &rep), &m[1]);
    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->rebuilds, 1);
    assert_int_equal(s->late_readings + s->rejected_readings, 0);
    assert_int_equal(s->readings, m[1].known);
    env_close(&v);
    /* 20 minutes of it-a, a reading a minute from T0 (23:30 local): the
     * interval 23:30-23:45 closed, as in one uninterrupted run */
    assert_int_equal(q1(db, "SELECT count(*) FROM intervals WHERE meter = "
                            "(SELECT id FROM names WHERE name = 'it-a')"),
                     1);
    int64_t want = llround(kwh_at(2, 15) * 1e6) - llround(kwh_at(2, 0) * 1e6);
    assert_int_equal(q1(db, "SELECT sum(ukwh) FROM intervals WHERE meter = "
                            "(SELECT id FROM names WHERE name = 'it-a')"),
                     want);
    free_msgs(m, 2);
}

static void test_absurd_value_left_out(void **state)
{
    fx *f = *state;
    char big[512];
    int n = snprintf(big, sizeof big,
                     "{\"v\":1,\"site\":\"eng-a\",\"gateway\":\"gw-2\",\"epoch\":%llu,\"seq\":2,"
                     "\"readings\":[{\"meter\":\"it-a\",\"t\":%lld,\"q\":\"ok\",\"kwh\":1.5e308,"
                     "\"kw\":300,\"values\":{\"voltage_v_l1\":-1e300,\"current_a_l1\":12.5}}]}",
                     (unsigned long long)EPOCH, (long long)(T0 + 10 * MIN + 30000));
    assert_true(n > 0 && (size_t)n < sizeof big);
    msg m[3];
    make_batch(&m[0], G2, 1, PLAIN);
    make_raw(&m[1], G2, "data", big);
    m[1].seq = 2;
    make_batch(&m[2], G2, 3, PLAIN);
    env v;
    env_open(f, &v, "store", 0);
    dcem_engine_reply rep[3];
    int out[3];
    feed(&v, m, 3, rep, out);
    for (size_t i = 0; i < 3; i++)
        if (out[i] != DCEM_ENGINE_STORED) fail_msg("batch %zu: outcome %d (%s)", i, out[i], rep[i].why);
    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->out_of_range_values, 2);
    assert_int_equal(s->quarantined + s->failed, 0);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM readings WHERE seq = 2 AND kwh IS NULL"
                              " AND kw = 300 AND quality = 2"),
                     1);
    /* it-a's energy is its counter's, as if the reading had not come */
    char empty[256];
    n = snprintf(empty, sizeof empty,
                 "{\"v\":1,\"site\":\"eng-a\",\"gateway\":\"gw-2\",\"epoch\":%llu,\"seq\":2,"
                 "\"readings\":[]}",
                 (unsigned long long)EPOCH);
    assert_true(n > 0 && (size_t)n < sizeof empty);
    free(m[1].payload);
    make_raw(&m[1], G2, "data", empty);
    m[1].seq = 2;
    env r;
    env_open(f, &r, "reference", 0);
    feed(&r, m, 3, rep, out);
    for (size_t i = 0; i < 3; i++)
        if (out[i] != DCEM_ENGINE_STORED) fail_msg("reference %zu: outcome %d (%s)", i, out[i], rep[i].why);
    assert_true(q1(v.db, "SELECT count(*) FROM intervals") > 0);
    char *x = dump(v.db, "SELECT * FROM intervals ORDER BY site, start_ms, meter");
    char *y = dump(r.db, "SELECT * FROM intervals ORDER BY site, start_ms, meter");
    assert_string_equal(x, y);
    free(x);
    free(y);
    env_close(&r);
    env_close(&v);
    free_msgs(m, 3);
}

/* The store refuses a batch's readings for their content (a trigger stands
 * in for a CHECK): sending it again cannot help, so it is quarantined with
 * the reason and acked, and its gateway's next batches are stored — where
 * today it would be refused, unacked, for ever. */
static void test_content_refusal_quarantined(void **state)
{
    fx *f = *state;
    msg m[5];
    size_t n = 0;
    make_batch(&m[n++], G1, 1, PLAIN);
    make_batch(&m[n++], G2, 1, PLAIN);
    make_batch(&m[n++], G2, 2, PLAIN); /* refused */
    make_batch(&m[n++], G1, 2, PLAIN);
    make_batch(&m[n++], G2, 3, PLAIN);
    env v;
    env_open(f, &v, "store", 0);
    sql_exec(v.db, refuse_readings);
    dcem_engine_reply rep[5];
    int out[5];
    feed(&v, m, n, rep, out);
    for (size_t i = 0; i < n; i++)
        if (i != 2) assert_stored(&rep[i], out[i], &m[i]);
    assert_int_equal(out[2], DCEM_ENGINE_QUARANTINED);
    assert_true(rep[2].ack);
    assert_int_equal(rep[2].ack_seq, 2);
    if (!strstr(rep[2].why, "poisoned")) fail_msg("why: %s", rep[2].why);
    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->store_refused, 1);
    assert_int_equal(s->quarantined, 1);
    assert_int_equal(s->failed, 0);
    assert_int_equal(s->stored, n - 1);
    assert_int_equal(readings_of(v.db, &m[2]), 0);
    assert_int_equal(q1(v.db, "SELECT count(*) FROM quarantine WHERE gateway = 'gw-2' AND seq = 2"
                              " AND reason LIKE 'store_refused: %poisoned%'"),
                     1);
    env_close(&v);
    free_msgs(m, n);
}

/* The same when the refusal comes after the readings ran through the
 * counters (an interval they close): the batch is quarantined on a third
 * try, the meters are as committed, and the gateway's next batches are
 * stored; a failure that may pass (test 3) is still not acked. */
static void test_content_refusal_after_processing_quarantined(void **state)
{
    fx *f = *state;
    msg m[7];
    for (uint64_t seq = 1; seq <= 7; seq++)
        make_batch(&m[seq - 1], G1, seq, PLAIN);
    env v;
    env_open(f, &v, "store", 0);
    sql_exec(v.db, refuse_interval);
    dcem_engine_reply rep[7];
    int out[7];
    feed(&v, m, 4, rep, out); /* seq 4 reaches 0:00 and closes pv-a's [23:45, 0:00) */
    for (size_t i = 0; i < 3; i++)
        assert_stored(&rep[i], out[i], &m[i]);
    assert_int_equal(out[3], DCEM_ENGINE_QUARANTINED);
    assert_true(rep[3].ack);
    assert_int_equal(rep[3].ack_seq, 4);
    const dcem_engine_stats *s = dcem_engine_stats_get(v.e);
    assert_int_equal(s->store_refused, 1);
    assert_int_equal(s->failed, 0);
    assert_int_equal(readings_of(v.db, &m[3]), 0);
    sql_exec(v.db, "DROP TRIGGER poison");
    feed(&v, m + 4, 3, rep, out);
    for (size_t i = 0; i < 3; i++)
        assert_stored(&rep[i], out[i], &m[4 + i]);
    assert_int_equal(s->rejected_readings, 0);
    assert_int_equal(s->readings, (uint64_t)q1(v.db, "SELECT count(*) FROM readings"));
    env_close(&v);
    free_msgs(m, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_equals_one_by_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_gap_malformed_in_one_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_failure_retried_batch_by_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_after_processing_leaves_counters_as_committed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_alerts_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alerts_not_on_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_birth_gives_up_what_the_gateway_no_longer_holds, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stale_of_rolled_back_batch_raised_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_locked_store_fails_whole_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_future_readings_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_future_state_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_reading_beyond_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_reading_counted_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_state_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absurd_value_left_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_applies_the_ledger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_refusal_quarantined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_refusal_after_processing_quarantined, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
