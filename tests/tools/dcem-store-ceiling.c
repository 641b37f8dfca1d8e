/* dcem-store-ceiling — what SQLite alone does with the rows a collector
 * stored: the ceiling of scripts/bench/collector.sh. It reads a collector's
 * store (SOURCE, any schema from 7 on) and writes the same rows into a fresh
 * file (TARGET) in the same transactions, with the collector's settings
 * (WAL, synchronous=FULL, 16 MiB page cache, temp_store=MEMORY), from a
 * bare loop of prepared statements: no MQTT, no decoding, no engine.
 *
 * The transactions: the collector stamps every batch of one transaction
 * with the same received_ms, so the batches' rows grouped by received_ms
 * are its transactions, in order. In each one, per batch: its batches row;
 * per reading: its readings row and the intervals row it closed (the
 * interval ending at its time, when there is one); then once per
 * transaction each hour, day and month rollup row its intervals touch (an
 * upsert of their sums) and each touched meter's state (its stored blob),
 * as dcem_store_put_intervals and the engine do. The tables are those of
 * the store's latest schema: integer site and meter ids from a dictionary
 * (assigned before the clock starts), the same keys and CHECKs.
 *
 * Prints one line: rows=... (readings + intervals) readings= intervals=
 * rollups= states= batches= transactions= seconds= rows_per_s=
 * readings_per_s= cpu_us_per_reading=. Only the loop of transactions is
 * timed: wall time on the monotonic clock, and the process's CPU time (user
 * + system, without the time it waits for fsync), which the load of other
 * processes on the machine moves much less.
 *
 * Usage: dcem-store-ceiling SOURCE.db TARGET.db   (TARGET is overwritten) */
#include <sqlite3.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_IV 16 /* interval columns after (site, start_ms, meter): end_ms .. month */
#define N_SUMS 14

typedef struct row {
    int64_t group; /* received_ms of its batch */
    int meter;     /* index into names */
    int64_t t_ms, epoch, seq;
    double kwh, kw, ratio;
    int has_kwh, has_kw, quality;
    char gateway[64];
    int has_iv;
    int64_t iv_start, iv[N_IV];
} row;

static const char *names[4096];
static int n_names;

static void die(const char *what, sqlite3 *db)
{
    fprintf(stderr, "dcem-store-ceiling: %s: %s\n", what, db ? sqlite3_errmsg(db) : "failed");
    exit(1);
}

static int name_id(const char *s)
{
    for (int i = 0; i < n_names; i++)
        if (!strcmp(names[i], s)) return i;
    if (n_names == (int)(sizeof names / sizeof names[0])) die("too many meters", NULL);
    names[n_names] = strdup(s);
    if (!names[n_names]) die("out of memory", NULL);
    return n_names++;
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "dcem-store-ceiling: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
        die(sql, db);
    return s;
}

static void run(sqlite3 *db, sqlite3_stmt *s)
{
    if (sqlite3_step(s) != SQLITE_DONE) die("step", db);
    sqlite3_reset(s);
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct rollup {
    int meter, kind;
    int64_t key;
    int64_t v[N_SUMS];
} rollup;

static int rollup_cmp(const void *pa, const void *pb)
{
    const rollup *a = pa, *b = pb;
    if (a->meter != b->meter) return a->meter < b->meter ? -1 : 1;
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    return a->key < b->key ? -1 : a->key > b->key;
}

/* The same sums as the store's rollups (dcem_store_rollup_of_interval),
 * near enough for the cost: the interval's energies and counts. */
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

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: dcem-store-ceiling SOURCE.db TARGET.db\n");
        return 2;
    }
    sqlite3 *src = NULL, *db = NULL;
    if (sqlite3_open_v2(argv[1], &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) die(argv[1], src);
    sqlite3_stmt *s = prep(src, "SELECT max(version) FROM schema_version");
    if (sqlite3_step(s) != SQLITE_ROW) die("schema_version", src);
    int version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (version < 7) die("a store of schema 7 or later is needed", NULL);
    /* schema 9 on: site and meter are ids into names */
    int ids = 0;
    s = prep(src, "SELECT count(*) FROM sqlite_master WHERE name = 'names'");
    if (sqlite3_step(s) == SQLITE_ROW) ids = sqlite3_column_int(s, 0) > 0;
    sqlite3_finalize(s);
    const char *meter_expr = ids ? "(SELECT name FROM names WHERE id = r.meter)" : "r.meter";
    char sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT b.received_ms, %s, r.t_ms, r.kwh, r.kw, r.quality, r.gateway, r.epoch,"
             " r.seq, r.ratio, i.start_ms, i.end_ms, i.ukwh, i.estimated_ukwh,"
             " i.estimated_day_ukwh, i.estimated_month_ukwh, i.estimated_year_ukwh,"
             " i.integrated_ukwh, i.covered_ms, i.readings, i.discarded, i.rollovers, i.resets,"
             " i.flags, i.hour_ms, i.day, i.month"
             " FROM readings r CROSS JOIN batches b ON b.gateway = r.gateway AND b.epoch = r.epoch"
             "  AND b.seq = r.seq AND b.site = %s"
             " LEFT JOIN temp.iv i ON i.site = r.site AND i.meter = r.meter AND i.end_ms = r.t_ms"
             " ORDER BY b.received_ms, b.gateway, b.epoch, b.seq, r.t_ms, r.meter",
             meter_expr, ids ? "(SELECT name FROM names WHERE id = r.site)" : "r.site");
    /* readings drive the join (CROSS JOIN keeps that order); the intervals by
     * their end (the store keys them by their start): a
     * temporary copy with an index, or the join is quadratic */
    exec(src, "CREATE TEMP TABLE iv AS SELECT * FROM intervals;"
              " CREATE INDEX temp.iv_end ON iv (site, meter, end_ms)");
    s = prep(src, sql);
    size_t n = 0, cap = 1 << 16;
    row *rows = malloc(cap * sizeof *rows);
    if (!rows) die("out of memory", NULL);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap && !(rows = realloc(rows, (cap *= 2) * sizeof *rows)))
            die("out of memory", NULL);
        row *r = &rows[n++];
        memset(r, 0, sizeof *r);
        r->group = sqlite3_column_int64(s, 0);
        r->meter = name_id((const char *)sqlite3_column_text(s, 1));
        r->t_ms = sqlite3_column_int64(s, 2);
        r->has_kwh = sqlite3_column_type(s, 3) != SQLITE_NULL;
        r->kwh = sqlite3_column_double(s, 3);
        r->has_kw = sqlite3_column_type(s, 4) != SQLITE_NULL;
        r->kw = sqlite3_column_double(s, 4);
        r->quality = sqlite3_column_int(s, 5);
        snprintf(r->gateway, sizeof r->gateway, "%s", (const char *)sqlite3_column_text(s, 6));
        r->epoch = sqlite3_column_int64(s, 7);
        r->seq = sqlite3_column_int64(s, 8);
        r->ratio = sqlite3_column_double(s, 9);
        r->has_iv = sqlite3_column_type(s, 10) != SQLITE_NULL;
        r->iv_start = sqlite3_column_int64(s, 10);
        for (int k = 0; k < N_IV; k++)
            r->iv[k] = sqlite3_column_int64(s, 11 + k);
    }
    if (rc != SQLITE_DONE) die("reading the source", src);
    sqlite3_finalize(s);
    /* each meter's stored state: the blob written once per transaction */
    unsigned char state[1024];
    int state_len = 0;
    s = prep(src, "SELECT state FROM meter_state LIMIT 1");
    if (sqlite3_step(s) == SQLITE_ROW) {
        state_len = sqlite3_column_bytes(s, 0);
        if (state_len > (int)sizeof state) state_len = (int)sizeof state;
        memcpy(state, sqlite3_column_blob(s, 0), (size_t)state_len);
    }
    sqlite3_finalize(s);
    sqlite3_close(src);
    if (n == 0) die("no readings in the source", NULL);

    char wal[4096];
    unlink(argv[2]);
    snprintf(wal, sizeof wal, "%s-wal", argv[2]);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", argv[2]);
    unlink(wal);
    if (sqlite3_open(argv[2], &db) != SQLITE_OK) die(argv[2], db);
    exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -16384;"
             " PRAGMA temp_store = MEMORY; PRAGMA journal_size_limit = 67108864");
    /* the tables of the store's latest schema (store_sqlite.c, migration 9) */
    exec(db, "CREATE TABLE names (id INTEGER PRIMARY KEY,"
             " name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 63)) STRICT;"
             "CREATE TABLE batches (site TEXT NOT NULL, gateway TEXT NOT NULL,"
             " epoch INTEGER NOT NULL, seq INTEGER NOT NULL, received_ms INTEGER NOT NULL,"
             " n_readings INTEGER NOT NULL, n_new INTEGER NOT NULL DEFAULT 0,"
             " quarantined INTEGER NOT NULL DEFAULT 0, UNIQUE (site, gateway, epoch, seq)) STRICT;"
             "CREATE TABLE readings (site INTEGER NOT NULL, meter INTEGER NOT NULL,"
             " t_ms INTEGER NOT NULL CHECK (t_ms BETWEEN 0 AND 253402300799999),"
             " kwh REAL CHECK (kwh BETWEEN -1e308 AND 1e308),"
             " kw REAL CHECK (kw BETWEEN -1e308 AND 1e308),"
             " quality INTEGER NOT NULL CHECK (quality BETWEEN 0 AND 3),"
             " gateway TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,"
             " ratio REAL NOT NULL DEFAULT 1 CHECK (ratio > 0 AND ratio <= 1e10),"
             " CHECK (quality <> 3 OR (kwh IS NULL AND kw IS NULL)),"
             " PRIMARY KEY (site, t_ms, meter)) STRICT, WITHOUT ROWID;"
             "CREATE TABLE intervals (site INTEGER NOT NULL, meter INTEGER NOT NULL,"
             " start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, ukwh INTEGER NOT NULL,"
             " estimated_ukwh INTEGER NOT NULL, estimated_day_ukwh INTEGER NOT NULL,"
             " estimated_month_ukwh INTEGER NOT NULL, estimated_year_ukwh INTEGER NOT NULL,"
             " integrated_ukwh INTEGER NOT NULL, covered_ms INTEGER NOT NULL,"
             " readings INTEGER NOT NULL, discarded INTEGER NOT NULL, rollovers INTEGER NOT NULL,"
             " resets INTEGER NOT NULL, flags INTEGER NOT NULL, hour_ms INTEGER NOT NULL,"
             " day INTEGER NOT NULL, month INTEGER NOT NULL, revisions INTEGER NOT NULL DEFAULT 0,"
             " CHECK (end_ms > start_ms AND end_ms - start_ms <= 3600000),"
             " CHECK (covered_ms BETWEEN 0 AND end_ms - start_ms),"
             " CHECK (ukwh BETWEEN -1000000000000000 AND 1000000000000000"
             "  AND estimated_ukwh BETWEEN -1000000000000000 AND 1000000000000000"
             "  AND estimated_day_ukwh BETWEEN -1000000000000000 AND 1000000000000000"
             "  AND estimated_month_ukwh BETWEEN -1000000000000000 AND 1000000000000000"
             "  AND estimated_year_ukwh BETWEEN -1000000000000000 AND 1000000000000000"
             "  AND integrated_ukwh BETWEEN -1000000000000000 AND 1000000000000000),"
             " CHECK (readings >= 0 AND discarded >= 0 AND rollovers >= 0 AND resets >= 0"
             "  AND flags >= 0),"
             " PRIMARY KEY (site, start_ms, meter)) STRICT, WITHOUT ROWID;"
             "CREATE TABLE rollups (site INTEGER NOT NULL, kind INTEGER NOT NULL"
             " CHECK (kind IN (1, 2, 3)), key INTEGER NOT NULL, meter INTEGER NOT NULL,"
             " ukwh INTEGER NOT NULL, estimated_ukwh INTEGER NOT NULL,"
             " estimated_day_ukwh INTEGER NOT NULL, estimated_month_ukwh INTEGER NOT NULL,"
             " estimated_year_ukwh INTEGER NOT NULL, integrated_ukwh INTEGER NOT NULL,"
             " covered_ms INTEGER NOT NULL, intervals INTEGER NOT NULL,"
             " read_intervals INTEGER NOT NULL, estimated_intervals INTEGER NOT NULL,"
             " integrated_intervals INTEGER NOT NULL, discarded INTEGER NOT NULL,"
             " rollovers INTEGER NOT NULL, resets INTEGER NOT NULL,"
             " CHECK (intervals >= 0 AND read_intervals BETWEEN 0 AND intervals"
             "  AND estimated_intervals BETWEEN 0 AND intervals"
             "  AND integrated_intervals BETWEEN 0 AND intervals AND covered_ms >= 0"
             "  AND discarded >= 0 AND rollovers >= 0 AND resets >= 0),"
             " PRIMARY KEY (site, kind, key, meter)) STRICT, WITHOUT ROWID;"
             "CREATE TABLE meter_state (site TEXT NOT NULL, meter TEXT NOT NULL,"
             " state BLOB NOT NULL, stale INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
             " PRIMARY KEY (site, meter)) STRICT, WITHOUT ROWID;");
    /* the dictionary, before the clock: the site is id 1, meter i is id i + 2 */
    exec(db, "BEGIN");
    sqlite3_stmt *nm = prep(db, "INSERT INTO names (id, name) VALUES (?1, ?2)");
    sqlite3_bind_int(nm, 1, 1);
    sqlite3_bind_text(nm, 2, "bench-site", -1, SQLITE_STATIC);
    run(db, nm);
    for (int i = 0; i < n_names; i++) {
        sqlite3_bind_int(nm, 1, i + 2);
        sqlite3_bind_text(nm, 2, names[i], -1, SQLITE_STATIC);
        run(db, nm);
    }
    sqlite3_finalize(nm);
    exec(db, "COMMIT");

    sqlite3_stmt *begin = prep(db, "BEGIN IMMEDIATE"), *commit = prep(db, "COMMIT");
    sqlite3_stmt *bi = prep(db, "INSERT INTO batches (site, gateway, epoch, seq, received_ms,"
                                " n_readings, quarantined) VALUES ('bench', ?1, ?2, ?3, ?4, 250, 0)"
                                " ON CONFLICT (site, gateway, epoch, seq) DO NOTHING");
    sqlite3_stmt *ri = prep(db, "INSERT INTO readings (site, meter, t_ms, kwh, kw, quality,"
                                " gateway, epoch, seq, ratio) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6,"
                                " ?7, ?8, ?9) ON CONFLICT (site, t_ms, meter) DO NOTHING");
    sqlite3_stmt *ii = prep(db, "INSERT INTO intervals (site, start_ms, meter, end_ms, ukwh,"
                                " estimated_ukwh, estimated_day_ukwh, estimated_month_ukwh,"
                                " estimated_year_ukwh, integrated_ukwh, covered_ms, readings,"
                                " discarded, rollovers, resets, flags, hour_ms, day, month)"
                                " VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
                                " ?13, ?14, ?15, ?16, ?17, ?18)"
                                " ON CONFLICT (site, start_ms, meter) DO NOTHING");
    sqlite3_stmt *ru = prep(
        db, "INSERT INTO rollups (site, kind, key, meter, ukwh, estimated_ukwh,"
            " estimated_day_ukwh, estimated_month_ukwh, estimated_year_ukwh, integrated_ukwh,"
            " covered_ms, intervals, read_intervals, estimated_intervals, integrated_intervals,"
            " discarded, rollovers, resets) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
            " ?11, ?12, ?13, ?14, ?15, ?16, ?17) ON CONFLICT (site, kind, key, meter) DO UPDATE"
            " SET ukwh = ukwh + ?4, estimated_ukwh = estimated_ukwh + ?5,"
            " estimated_day_ukwh = estimated_day_ukwh + ?6,"
            " estimated_month_ukwh = estimated_month_ukwh + ?7,"
            " estimated_year_ukwh = estimated_year_ukwh + ?8,"
            " integrated_ukwh = integrated_ukwh + ?9, covered_ms = covered_ms + ?10,"
            " intervals = intervals + ?11, read_intervals = read_intervals + ?12,"
            " estimated_intervals = estimated_intervals + ?13,"
            " integrated_intervals = integrated_intervals + ?14, discarded = discarded + ?15,"
            " rollovers = rollovers + ?16, resets = resets + ?17");
    sqlite3_stmt *si = prep(db, "INSERT OR REPLACE INTO meter_state (site, meter, state, stale,"
                                " updated_ms) VALUES ('bench', ?1, ?2, 0, ?3)");
    rollup *rus = malloc(3 * n * sizeof *rus);
    unsigned char *touched = calloc((size_t)n_names, 1);
    if (!rus || !touched) die("out of memory", NULL);
    uint64_t n_iv = 0, n_ru = 0, n_st = 0, n_b = 0, n_tx = 0;

    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (size_t i = 0; i < n;) {
        size_t j = i, nr = 0;
        run(db, begin);
        for (; j < n && rows[j].group == rows[i].group; j++) {
            const row *r = &rows[j];
            if (j == i || r->seq != rows[j - 1].seq || strcmp(r->gateway, rows[j - 1].gateway)) {
                sqlite3_bind_text(bi, 1, r->gateway, -1, SQLITE_STATIC);
                sqlite3_bind_int64(bi, 2, r->epoch);
                sqlite3_bind_int64(bi, 3, r->seq);
                sqlite3_bind_int64(bi, 4, r->group);
                run(db, bi);
                n_b++;
            }
            sqlite3_bind_int(ri, 1, r->meter + 2);
            sqlite3_bind_int64(ri, 2, r->t_ms);
            if (r->has_kwh)
                sqlite3_bind_double(ri, 3, r->kwh);
            else
                sqlite3_bind_null(ri, 3);
            if (r->has_kw)
                sqlite3_bind_double(ri, 4, r->kw);
            else
                sqlite3_bind_null(ri, 4);
            sqlite3_bind_int(ri, 5, r->quality);
            sqlite3_bind_text(ri, 6, r->gateway, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ri, 7, r->epoch);
            sqlite3_bind_int64(ri, 8, r->seq);
            sqlite3_bind_double(ri, 9, r->ratio);
            run(db, ri);
            touched[r->meter] = 1;
            if (!r->has_iv) continue;
            sqlite3_bind_int64(ii, 1, r->iv_start);
            sqlite3_bind_int(ii, 2, r->meter + 2);
            for (int k = 0; k < N_IV; k++)
                sqlite3_bind_int64(ii, 3 + k, r->iv[k]);
            run(db, ii);
            n_iv++;
            const int64_t keys[3] = {r->iv[13], r->iv[14], r->iv[15]};
            for (int k = 0; k < 3; k++) {
                rollup *u = &rus[nr++];
                u->meter = r->meter;
                u->kind = k + 1;
                u->key = keys[k];
                contrib(r, u->v);
            }
        }
        /* one upsert per rollup row: the sums of the transaction's intervals */
        qsort(rus, nr, sizeof *rus, rollup_cmp);
        for (size_t a = 0; a < nr;) {
            rollup sum = rus[a];
            size_t b = a + 1;
            for (; b < nr && rollup_cmp(&rus[b], &sum) == 0; b++)
                for (int k = 0; k < N_SUMS; k++)
                    sum.v[k] += rus[b].v[k];
            sqlite3_bind_int(ru, 1, sum.kind);
            sqlite3_bind_int64(ru, 2, sum.key);
            sqlite3_bind_int(ru, 3, sum.meter + 2);
            for (int k = 0; k < N_SUMS; k++)
                sqlite3_bind_int64(ru, 4 + k, sum.v[k]);
            run(db, ru);
            n_ru++;
            a = b;
        }
        for (int m = 0; m < n_names; m++) {
            if (!touched[m]) continue;
            touched[m] = 0;
            sqlite3_bind_text(si, 1, names[m], -1, SQLITE_STATIC);
            sqlite3_bind_blob(si, 2, state, state_len, SQLITE_STATIC);
            sqlite3_bind_int64(si, 3, rows[i].group);
            run(db, si);
            n_st++;
        }
        run(db, commit);
        n_tx++;
        i = j;
    }
    double secs = clock_s(CLOCK_MONOTONIC) - t0, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;

    sqlite3_stmt *all[] = {begin, commit, bi, ri, ii, ru, si};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        sqlite3_finalize(all[k]);
    if (sqlite3_close(db) != SQLITE_OK) die("close", db);
    printf("rows=%" PRIu64 " readings=%zu intervals=%" PRIu64 " rollups=%" PRIu64 " states=%" PRIu64
           " batches=%" PRIu64 " transactions=%" PRIu64
           " seconds=%.3f rows_per_s=%.0f readings_per_s=%.0f cpu_us_per_reading=%.2f\n",
           (uint64_t)n + n_iv, n, n_iv, n_ru, n_st, n_b, n_tx, secs,
           (double)((uint64_t)n + n_iv) / secs, (double)n / secs, cpu * 1e6 / (double)n);
    free(rus);
    free(touched);
    free(rows);
    return 0;
}
