/* dcem-pg-ceiling — what PostgreSQL alone does with the rows a collector
 * stored: the PostgreSQL ceiling of scripts/bench/collector.sh, as
 * dcem-store-ceiling is SQLite's. It reads the collector's store (schema
 * SOURCE of the database DSN names) and writes the same rows into schema
 * TARGET of the same database, in the same transactions, from a bare libpq
 * loop: no MQTT, no decoding, no engine, no idempotency checks.
 *
 * TARGET is dropped and made again by the store's own migrations
 * (dcem_store_open on it): the very tables, keys, CHECKs and foreign keys
 * of store_pg.c. The dictionary (sites, gateways, meters) and the epochs
 * rows the batches refer to are copied from SOURCE before the clock
 * starts, with the same ids.
 *
 * The transactions: the collector stamps every batch of one transaction
 * with the same received_ms, so the batches' rows grouped by received_ms
 * are its transactions, in order. Each one is: BEGIN; one COPY of its
 * batches rows, one COPY of its readings rows, one COPY of the intervals
 * rows its readings closed (the interval ending at a reading's time, when
 * there is one); one multi-row upsert of the sums of each hour, day and
 * month rollup row those intervals touch (each row once, in key order, as
 * store_pg.c's S_ROLLUP_UPSERT_MANY); one multi-row upsert of each touched
 * meter's state (its stored blob); COMMIT, with synchronous_commit on.
 *
 * Prints one line: rows=... (readings + intervals) readings= intervals=
 * rollups= states= batches= transactions= seconds= rows_per_s=
 * readings_per_s= cpu_us_per_reading= backend_cpu_us_per_reading=
 * server_cpu_us_per_reading=. Only the loop of transactions is timed: wall
 * time on the monotonic clock; this process's CPU time (user + system);
 * the CPU time of the server backend serving it (pg_backend_pid, from
 * /proc); and that of all the server's processes (the postmaster and its
 * children: backend, WAL writer, checkpointer, autovacuum...), where most
 * of the work is. Server figures are -1 when the server is not a process
 * of this machine. A child that exits during the loop takes its CPU time
 * with it.
 *
 * Usage: dcem-pg-ceiling DSN SOURCE TARGET [EPOCH]
 *   DSN: a libpq key=value connection string (an options= is appended to
 *   it to name the schema); SOURCE, TARGET: schema names ([a-z0-9_]);
 *   EPOCH: only the readings of that epoch (collector.sh: 1, the
 *   throughput phase). */
#include "store.h"

#include <libpq-fe.h>

#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_IV 16 /* interval columns after (site, start_ms, meter): end_ms .. month */
#define N_SUMS 14

typedef struct row {
    int64_t group; /* received_ms of its batch */
    int site, meter, gateway;
    int64_t t_ms, epoch, seq;
    double kwh, kw, ratio;
    int has_kwh, has_kw, quality;
    int n_readings, n_new, quarantined; /* its batch's */
    int has_iv;
    int64_t iv_start, iv[N_IV];
} row;

static PGconn *db;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dcem-pg-ceiling: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

static void ok(PGresult *r, const char *what)
{
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_SINGLE_TUPLE)
        die("%s: %s", what, PQresultErrorMessage(r));
}

static void exec(const char *sql)
{
    PGresult *r = PQexec(db, sql);
    ok(r, sql);
    PQclear(r);
}

/* a growable text buffer */
typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void add(buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) die("formatting");
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 1 << 16;
        while (cap < b->n + (size_t)k + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) die("out of memory");
        b->p = p;
        b->cap = cap;
    }
}

static void copy_in(const char *sql, const buf *b)
{
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) die("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    if (PQputCopyData(db, b->p, (int)b->n) != 1 || PQputCopyEnd(db, NULL) != 1)
        die("%s: %s", sql, PQerrorMessage(db));
    r = PQgetResult(db);
    ok(r, sql);
    PQclear(r);
    while ((r = PQgetResult(db)))
        PQclear(r);
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) of process pid and, into *ppid, its parent;
 * -1 when it cannot be read */
static double proc_cpu(long pid, long *ppid, char comm[32])
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    char *open = strchr(line, '('), *close = strrchr(line, ')');
    if (!open || !close || close < open) return -1;
    if (comm) snprintf(comm, 32, "%.*s", (int)(close - open - 1), open + 1);
    /* after the state: ppid pgrp session tty_nr tpgid flags minflt cminflt
     * majflt cmajflt utime stime (proc(5)) */
    const char *q = close + 2;
    if (!*q) return -1;
    q++; /* the state */
    long long v[12];
    for (int k = 0; k < 12; k++) {
        char *end;
        v[k] = strtoll(q, &end, 10);
        if (end == q) return -1;
        q = end;
    }
    if (ppid) *ppid = (long)v[0];
    return (double)(v[10] + v[11]) / (double)sysconf(_SC_CLK_TCK);
}

/* the CPU seconds of the postmaster pm and all its children */
static double server_cpu(long pm)
{
    double total = proc_cpu(pm, NULL, NULL);
    if (total < 0) return -1;
    DIR *d = opendir("/proc");
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        long pid = strtol(e->d_name, NULL, 10), parent = 0;
        double c = proc_cpu(pid, &parent, NULL);
        if (c >= 0 && parent == pm) total += c;
    }
    closedir(d);
    return total;
}

typedef struct rollup {
    int site, kind, meter;
    int64_t key;
    int64_t v[N_SUMS];
} rollup;

/* the key order of the rollups' primary key (site, kind, key, meter) */
static int rollup_cmp(const void *pa, const void *pb)
{
    const rollup *a = pa, *b = pb;
    if (a->site != b->site) return a->site < b->site ? -1 : 1;
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return a->meter < b->meter ? -1 : a->meter > b->meter;
}

/* The same sums as the store's rollups (dcem_store_rollup_of_interval),
 * near enough for the cost, as dcem-store-ceiling: the interval's energies
 * and counts. */
static void contrib(const row *r, int64_t v[N_SUMS])
{
    const int64_t *iv = r->iv; /* end_ms, ukwh, est, est_day, est_month, est_year, integ, covered,
                                  readings, discarded, rollovers, resets, flags, hour, day, month */
    v[0] = iv[1];
    v[1] = iv[2];
    v[2] = iv[3];
    v[3] = iv[4];
    v[4] = iv[5];
    v[5] = iv[6];
    v[6] = iv[7];
    v[7] = 1;
    v[8] = iv[8] > 0;
    v[9] = (iv[12] & 1) != 0;
    v[10] = (iv[12] & 2) != 0;
    v[11] = iv[9];
    v[12] = iv[10];
    v[13] = iv[11];
}

static int schema_name(const char *s)
{
    if (!*s || strlen(s) > 63) return 0;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_')) return 0;
    return 1;
}

static int64_t i64(const PGresult *r, int col)
{
    return strtoll(PQgetvalue(r, 0, col), NULL, 10);
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: dcem-pg-ceiling DSN SOURCE-SCHEMA TARGET-SCHEMA [EPOCH]\n");
        return 2;
    }
    const char *dsn = argv[1], *src = argv[2], *tgt = argv[3];
    if (!schema_name(src) || !schema_name(tgt) || !strcmp(src, tgt))
        die("SOURCE and TARGET: two different schema names of [a-z0-9_]");
    long long epoch = 0;
    if (argc == 5) {
        char *end;
        epoch = strtoll(argv[4], &end, 10);
        if (*end || epoch < 1) die("EPOCH: a positive integer");
    }
    db = PQconnectdb(dsn);
    if (PQstatus(db) != CONNECTION_OK) die("%s", PQerrorMessage(db));
    char sql[4096];
    exec("SET client_min_messages = warning"); /* no NOTICE of DROP SCHEMA ... CASCADE */

    /* ---- the rows the collector stored ---- */
    snprintf(sql, sizeof sql, "SET search_path = %s", src);
    exec(sql);
    PGresult *r = PQexec(db, "SELECT to_regclass('schema_version') IS NOT NULL");
    ok(r, "schema_version");
    if (strcmp(PQgetvalue(r, 0, 0), "t")) die("no dcem store in schema %s", src);
    PQclear(r);
    char where[64] = "";
    if (epoch) snprintf(where, sizeof where, " WHERE r.epoch = %lld", epoch);
    snprintf(sql, sizeof sql,
             "SELECT b.received_ms, r.site_id, r.meter_id, r.gateway_id, r.t_ms, r.epoch, r.seq,"
             " r.kwh, r.kw, r.quality, r.ratio, b.n_readings, b.n_new, b.quarantined,"
             " i.start_ms, i.end_ms, i.ukwh, i.estimated_ukwh, i.estimated_day_ukwh,"
             " i.estimated_month_ukwh, i.estimated_year_ukwh, i.integrated_ukwh, i.covered_ms,"
             " i.readings, i.discarded, i.rollovers, i.resets, i.flags, i.hour_ms, i.day,"
             " i.month"
             " FROM readings r JOIN batches b ON b.site_id = r.site_id"
             "  AND b.gateway_id = r.gateway_id AND b.epoch = r.epoch AND b.seq = r.seq"
             " LEFT JOIN intervals i ON i.site_id = r.site_id AND i.meter_id = r.meter_id"
             "  AND i.end_ms = r.t_ms%s"
             " ORDER BY b.received_ms, b.gateway_id, b.epoch, b.seq, r.t_ms, r.meter_id",
             where);
    if (!PQsendQuery(db, sql) || !PQsetSingleRowMode(db)) die("%s", PQerrorMessage(db));
    size_t n = 0, cap = 1 << 16;
    row *rows = malloc(cap * sizeof *rows);
    if (!rows) die("out of memory");
    int max_meter = 0;
    while ((r = PQgetResult(db))) {
        ok(r, "reading the source");
        if (PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
            if (n == cap && !(rows = realloc(rows, (cap *= 2) * sizeof *rows)))
                die("out of memory");
            row *w = &rows[n++];
            memset(w, 0, sizeof *w);
            w->group = i64(r, 0);
            w->site = (int)i64(r, 1);
            w->meter = (int)i64(r, 2);
            w->gateway = (int)i64(r, 3);
            w->t_ms = i64(r, 4);
            w->epoch = i64(r, 5);
            w->seq = i64(r, 6);
            w->has_kwh = !PQgetisnull(r, 0, 7);
            w->kwh = strtod(PQgetvalue(r, 0, 7), NULL);
            w->has_kw = !PQgetisnull(r, 0, 8);
            w->kw = strtod(PQgetvalue(r, 0, 8), NULL);
            w->quality = (int)i64(r, 9);
            w->ratio = strtod(PQgetvalue(r, 0, 10), NULL);
            w->n_readings = (int)i64(r, 11);
            w->n_new = (int)i64(r, 12);
            w->quarantined = (int)i64(r, 13);
            w->has_iv = !PQgetisnull(r, 0, 14);
            w->iv_start = i64(r, 14);
            for (int k = 0; k < N_IV; k++)
                w->iv[k] = i64(r, 15 + k);
            if (w->meter < 0) die("meter id %d", w->meter);
            if (w->meter > max_meter) max_meter = w->meter;
        }
        PQclear(r);
    }
    if (n == 0) die("no readings in schema %s", src);
    /* each meter's stored state (hex text), written once per transaction */
    char **states = calloc((size_t)max_meter + 1, sizeof *states);
    int *site_of = calloc((size_t)max_meter + 1, sizeof *site_of);
    unsigned char *touched = calloc((size_t)max_meter + 1, 1);
    if (!states || !site_of || !touched) die("out of memory");
    for (size_t i = 0; i < n; i++)
        site_of[rows[i].meter] = rows[i].site;
    r = PQexec(db, "SELECT meter_id, state FROM meter_state");
    ok(r, "meter_state");
    for (int i = 0; i < PQntuples(r); i++) {
        long m = strtol(PQgetvalue(r, i, 0), NULL, 10);
        if (m >= 0 && m <= max_meter && !(states[m] = strdup(PQgetvalue(r, i, 1))))
            die("out of memory");
    }
    PQclear(r);
    for (int m = 0; m <= max_meter; m++)
        if (!states[m] && !(states[m] = strdup("\\x00"))) die("out of memory");

    /* ---- the target: store_pg.c's own migrations, the dictionary ---- */
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", tgt, tgt);
    exec(sql);
    {
        char target[4096], err[512];
        snprintf(target, sizeof target, "%s options='-c search_path=%s'", dsn, tgt);
        dcem_store *st = NULL;
        if (dcem_store_open("postgresql", target, NULL, &st, err, sizeof err))
            die("migrating schema %s: %s", tgt, err);
        dcem_store_close(st);
    }
    snprintf(sql, sizeof sql,
             "BEGIN; INSERT INTO %s.sites SELECT * FROM %s.sites;"
             " INSERT INTO %s.gateways SELECT * FROM %s.gateways;"
             " INSERT INTO %s.meters SELECT * FROM %s.meters;"
             " INSERT INTO %s.epochs SELECT * FROM %s.epochs; COMMIT;"
             " SET search_path = %s; SET synchronous_commit = on",
             tgt, src, tgt, src, tgt, src, tgt, src, tgt);
    exec(sql);
    /* the sums of several rollup rows in one statement, each key once, in
     * key order: store_pg.c's S_ROLLUP_UPSERT_MANY (the site a column here) */
    r = PQprepare(db, "rollups",
                  "INSERT INTO rollups (site_id, kind, key, meter_id, ukwh, estimated_ukwh,"
                  " estimated_day_ukwh, estimated_month_ukwh, estimated_year_ukwh,"
                  " integrated_ukwh, covered_ms, intervals, read_intervals, estimated_intervals,"
                  " integrated_intervals, discarded, rollovers, resets)"
                  " SELECT * FROM unnest($1::integer[], $2::smallint[], $3::bigint[],"
                  " $4::integer[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],"
                  " $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[],"
                  " $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[])"
                  " ON CONFLICT (site_id, kind, key, meter_id) DO UPDATE SET"
                  " ukwh = rollups.ukwh + excluded.ukwh,"
                  " estimated_ukwh = rollups.estimated_ukwh + excluded.estimated_ukwh,"
                  " estimated_day_ukwh = rollups.estimated_day_ukwh + excluded.estimated_day_ukwh,"
                  " estimated_month_ukwh = rollups.estimated_month_ukwh"
                  "  + excluded.estimated_month_ukwh,"
                  " estimated_year_ukwh = rollups.estimated_year_ukwh"
                  "  + excluded.estimated_year_ukwh,"
                  " integrated_ukwh = rollups.integrated_ukwh + excluded.integrated_ukwh,"
                  " covered_ms = rollups.covered_ms + excluded.covered_ms,"
                  " intervals = rollups.intervals + excluded.intervals,"
                  " read_intervals = rollups.read_intervals + excluded.read_intervals,"
                  " estimated_intervals = rollups.estimated_intervals"
                  "  + excluded.estimated_intervals,"
                  " integrated_intervals = rollups.integrated_intervals"
                  "  + excluded.integrated_intervals,"
                  " discarded = rollups.discarded + excluded.discarded,"
                  " rollovers = rollups.rollovers + excluded.rollovers,"
                  " resets = rollups.resets + excluded.resets",
                  0, NULL);
    ok(r, "prepare rollups");
    PQclear(r);
    r = PQprepare(db, "states",
                  "INSERT INTO meter_state (site_id, meter_id, state, stale, updated_ms)"
                  " SELECT u.s, u.m, u.b, 0, $4 FROM unnest($1::integer[], $2::integer[],"
                  " $3::bytea[]) AS u(s, m, b) ON CONFLICT (site_id, meter_id) DO UPDATE"
                  " SET state = excluded.state, stale = excluded.stale,"
                  " updated_ms = excluded.updated_ms",
                  0, NULL);
    ok(r, "prepare states");
    PQclear(r);
    r = PQexec(db, "SELECT pg_backend_pid()");
    ok(r, "pg_backend_pid");
    long backend = strtol(PQgetvalue(r, 0, 0), NULL, 10), pm = -1;
    PQclear(r);
    char comm[32] = "";
    if (proc_cpu(backend, &pm, comm) < 0 || strcmp(comm, "postgres")) backend = pm = -1;

    rollup *rus = malloc(3 * n * sizeof *rus);
    if (!rus) die("out of memory");
    buf bb = {0}, rb = {0}, ib = {0}, a[18] = {{0}};
    uint64_t n_iv = 0, n_ru = 0, n_st = 0, n_b = 0, n_tx = 0;

    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    double b0 = backend > 0 ? proc_cpu(backend, NULL, NULL) : -1;
    double s0 = pm > 0 ? server_cpu(pm) : -1;
    for (size_t i = 0; i < n;) {
        size_t j = i, nr = 0;
        bb.n = rb.n = ib.n = 0;
        exec("BEGIN");
        for (; j < n && rows[j].group == rows[i].group; j++) {
            const row *w = &rows[j];
            if (j == i || w->seq != rows[j - 1].seq || w->gateway != rows[j - 1].gateway ||
                w->epoch != rows[j - 1].epoch) {
                add(&bb, "%d\t%d\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%d\t%d\t%d\n", w->site,
                    w->gateway, w->epoch, w->seq, w->group, w->n_readings, w->n_new,
                    w->quarantined);
                n_b++;
            }
            char kwh[32] = "\\N", kw[32] = "\\N";
            if (w->has_kwh) snprintf(kwh, sizeof kwh, "%.17g", w->kwh);
            if (w->has_kw) snprintf(kw, sizeof kw, "%.17g", w->kw);
            add(&rb, "%d\t%" PRId64 "\t%d\t%s\t%s\t%d\t%d\t%" PRId64 "\t%" PRId64 "\t%.17g\n",
                w->site, w->t_ms, w->meter, kwh, kw, w->quality, w->gateway, w->epoch, w->seq,
                w->ratio);
            touched[w->meter] = 1;
            if (!w->has_iv) continue;
            add(&ib, "%d\t%" PRId64 "\t%d", w->site, w->iv_start, w->meter);
            for (int k = 0; k < N_IV; k++)
                add(&ib, "\t%" PRId64, w->iv[k]);
            add(&ib, "\n");
            n_iv++;
            const int64_t keys[3] = {w->iv[13], w->iv[14], w->iv[15]};
            for (int k = 0; k < 3; k++) {
                rollup *u = &rus[nr++];
                u->site = w->site;
                u->meter = w->meter;
                u->kind = k + 1;
                u->key = keys[k];
                contrib(w, u->v);
            }
        }
        copy_in("COPY batches (site_id, gateway_id, epoch, seq, received_ms, n_readings, n_new,"
                " quarantined) FROM STDIN",
                &bb);
        copy_in("COPY readings (site_id, t_ms, meter_id, kwh, kw, quality, gateway_id, epoch,"
                " seq, ratio) FROM STDIN",
                &rb);
        if (ib.n)
            copy_in("COPY intervals (site_id, start_ms, meter_id, end_ms, ukwh, estimated_ukwh,"
                    " estimated_day_ukwh, estimated_month_ukwh, estimated_year_ukwh,"
                    " integrated_ukwh, covered_ms, readings, discarded, rollovers, resets, flags,"
                    " hour_ms, day, month) FROM STDIN",
                    &ib);
        /* one row per rollup key: the sums of the transaction's intervals */
        if (nr) {
            qsort(rus, nr, sizeof *rus, rollup_cmp);
            for (int k = 0; k < 18; k++) {
                a[k].n = 0;
                add(&a[k], "{");
            }
            for (size_t x = 0; x < nr;) {
                rollup sum = rus[x];
                size_t y = x + 1;
                for (; y < nr && rollup_cmp(&rus[y], &sum) == 0; y++)
                    for (int k = 0; k < N_SUMS; k++)
                        sum.v[k] += rus[y].v[k];
                const char *sep = x ? "," : "";
                add(&a[0], "%s%d", sep, sum.site);
                add(&a[1], "%s%d", sep, sum.kind);
                add(&a[2], "%s%" PRId64, sep, sum.key);
                add(&a[3], "%s%d", sep, sum.meter);
                for (int k = 0; k < N_SUMS; k++)
                    add(&a[4 + k], "%s%" PRId64, sep, sum.v[k]);
                n_ru++;
                x = y;
            }
            const char *v[18];
            for (int k = 0; k < 18; k++) {
                add(&a[k], "}");
                v[k] = a[k].p;
            }
            r = PQexecPrepared(db, "rollups", 18, v, NULL, NULL, 0);
            ok(r, "rollups");
            PQclear(r);
        }
        for (int k = 0; k < 3; k++) {
            a[k].n = 0;
            add(&a[k], "{");
        }
        int ns = 0;
        for (int m = 0; m <= max_meter; m++) {
            if (!touched[m]) continue;
            touched[m] = 0;
            const char *sep = ns++ ? "," : "";
            add(&a[0], "%s%d", sep, site_of[m]);
            add(&a[1], "%s%d", sep, m);
            add(&a[2], "%s\"\\%s\"", sep, states[m]); /* "\\x..": the hex form, quoted */
            n_st++;
        }
        for (int k = 0; k < 3; k++)
            add(&a[k], "}");
        char updated[24];
        snprintf(updated, sizeof updated, "%" PRId64, rows[i].group);
        const char *v[4] = {a[0].p, a[1].p, a[2].p, updated};
        r = PQexecPrepared(db, "states", 4, v, NULL, NULL, 0);
        ok(r, "states");
        PQclear(r);
        r = PQexec(db, "COMMIT");
        ok(r, "COMMIT");
        if (strcmp(PQcmdStatus(r), "COMMIT")) die("COMMIT: %s", PQcmdStatus(r));
        PQclear(r);
        n_tx++;
        i = j;
    }
    double secs = clock_s(CLOCK_MONOTONIC) - t0, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    double b1 = backend > 0 ? proc_cpu(backend, NULL, NULL) : -1;
    double s1 = pm > 0 ? server_cpu(pm) : -1;
    double bcpu = b0 >= 0 && b1 >= 0 ? (b1 - b0) * 1e6 / (double)n : -1;
    double scpu = s0 >= 0 && s1 >= 0 ? (s1 - s0) * 1e6 / (double)n : -1;

    printf("rows=%" PRIu64 " readings=%zu intervals=%" PRIu64 " rollups=%" PRIu64 " states=%" PRIu64
           " batches=%" PRIu64 " transactions=%" PRIu64
           " seconds=%.3f rows_per_s=%.0f readings_per_s=%.0f cpu_us_per_reading=%.2f"
           " backend_cpu_us_per_reading=%.2f server_cpu_us_per_reading=%.2f\n",
           (uint64_t)n + n_iv, n, n_iv, n_ru, n_st, n_b, n_tx, secs,
           (double)((uint64_t)n + n_iv) / secs, (double)n / secs, cpu * 1e6 / (double)n, bcpu,
           scpu);
    PQfinish(db);
    for (int k = 0; k < 18; k++)
        free(a[k].p);
    free(bb.p);
    free(rb.p);
    free(ib.p);
    for (int m = 0; m <= max_meter; m++)
        free(states[m]);
    free(states);
    free(site_of);
    free(touched);
    free(rus);
    free(rows);
    return 0;
}
