/* store.c — the backend-independent half of the store: argument checks,
 * statistics and dispatch through the backend table (store_backend.h). */
#include "store_backend.h"

#include "counter.h" /* DCEM_SEG_* */
#include "errors.h"
#include "parse.h"
#include "sign.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dcem_store_backend *const backends[] = {&dcem_store_sqlite_backend,
                                                     &dcem_store_pg_backend};
#define N_BACKENDS (sizeof backends / sizeof backends[0])

void dcem_store_set_error(dcem_store *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* ---- argument checks ---------------------------------------------------------------------- */

static int id_ok(const char *id)
{
    return id && dcem_wire_id_valid(id, strnlen(id, DCEM_ID_MAX));
}

static int seq_ok(uint64_t v)
{
    return v >= 1 && v <= DCEM_WIRE_MAX_INT;
}

static int bad(dcem_store *st, const char *what)
{
    dcem_store_set_error(st, "%s", what);
    return DCEM_EINVAL;
}

/* Guards every call: a NULL handle has nowhere to put its detail. */
#define CHECK_HANDLE(st)                                                                           \
    do {                                                                                           \
        if (!(st)) return DCEM_EINVAL;                                                             \
        (st)->err[0] = '\0';                                                                       \
    } while (0)

static void stat_add(dcem_store_stat *to, const dcem_store_stat *d)
{
    to->batches += d->batches;
    to->duplicates += d->duplicates;
    to->duplicate_mismatch += d->duplicate_mismatch;
    to->quarantined += d->quarantined;
    to->readings += d->readings;
    to->readings_replayed += d->readings_replayed;
    to->intervals += d->intervals;
    to->interval_revisions += d->interval_revisions;
    to->intervals_deleted += d->intervals_deleted;
    to->pruned_readings += d->pruned_readings;
    to->pruned_batches += d->pruned_batches;
    to->failed += d->failed;
}

/* Before a write call: none inside a read transaction
 * (dcem_store_begin_read), none in a transaction an earlier call doomed. */
#define write_start(st)                                                                            \
    do {                                                                                           \
        if ((st)->in_tx == TX_READ) return bad(st, "a write inside a read transaction");           \
        if ((st)->in_tx && (st)->doomed) return lost(st);                                          \
        memset(&(st)->call, 0, sizeof(st)->call);                                                  \
    } while (0)

static int lost(dcem_store *st)
{
    dcem_store_set_error(st, "an earlier call failed inside this transaction: it is lost "
                             "(roll it back)");
    st->stats.failed++;
    return DCEM_ESTORAGE;
}

/* After it: its counts join the open transaction or the totals; a failure
 * inside an explicit transaction dooms it (store.h). */
static int write_end(dcem_store *st, int rc)
{
    if (rc) {
        st->stats.failed++;
        if (st->in_tx == TX_WRITE) st->doomed = 1;
        return rc;
    }
    stat_add(st->in_tx ? &st->pending : &st->stats, &st->call);
    return 0;
}

/* ---- open, close, transactions ------------------------------------------------------------ */

int dcem_store_open(const char *backend, const char *target, const dcem_store_opts *opts,
                    dcem_store **out, char *err, size_t errlen)
{
    if (!out) return DCEM_EINVAL;
    *out = NULL;
    if (!backend) backend = "sqlite";
    const dcem_store_backend *be = NULL;
    for (size_t i = 0; i < N_BACKENDS; i++)
        if (!strcmp(backends[i]->name, backend)) be = backends[i];
    if (!be) {
        if (err && errlen)
            snprintf(err, errlen, "unknown store backend \"%s\" (valid: sqlite, postgresql)", backend);
        return DCEM_ECONFIG;
    }
    if (!target || !*target) {
        set_err(err, errlen, "store: no database given");
        return DCEM_ECONFIG;
    }
    dcem_store_opts o = {0};
    if (opts) o = *opts;
    const char *why = NULL;
    if (o.synchronous != DCEM_STORE_SYNC_FULL && o.synchronous != DCEM_STORE_SYNC_NORMAL)
        why = "synchronous: must be full (0) or normal (1)";
    else if (o.retention_days < 0)
        why = "retention_days: must be >= 0 (0 keeps readings for ever)";
    else if (o.prune_chunk < 0 || o.prune_chunk > DCEM_STORE_MAX_PRUNE_CHUNK)
        why = "prune_chunk: must be 0..1000000";
    else if (o.schema_version < 0)
        why = "schema_version: must be >= 0";
    if (why) {
        set_err(err, errlen, why);
        return DCEM_ECONFIG;
    }
    if (o.busy_timeout_ms == 0) o.busy_timeout_ms = 5000;
    if (o.busy_timeout_ms < 0) o.busy_timeout_ms = 0;
    if (o.prune_chunk == 0) o.prune_chunk = 10000;

    dcem_store *st = calloc(1, sizeof *st);
    if (!st) {
        set_err(err, errlen, "out of memory");
        return DCEM_ENOMEM;
    }
    st->be = be;
    st->opts = o;
    int rc = be->open(st, target);
    if (rc) {
        set_err(err, errlen, st->err);
        be->close(st);
        free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void dcem_store_close(dcem_store *st)
{
    if (!st) return;
    st->be->close(st);
    free(st);
}

const char *dcem_store_error(const dcem_store *st)
{
    return st ? st->err : "no store";
}

const char *dcem_store_backend_name(const dcem_store *st)
{
    return st ? st->be->name : "";
}

int dcem_store_schema_version(const dcem_store *st)
{
    return st ? st->schema_version : 0;
}

int dcem_store_begin(dcem_store *st)
{
    CHECK_HANDLE(st);
    if (st->in_tx) return bad(st, "begin: a transaction is already open");
    int rc = st->be->begin(st);
    if (rc) return rc;
    st->in_tx = TX_WRITE;
    st->doomed = 0;
    memset(&st->pending, 0, sizeof st->pending);
    return 0;
}

int dcem_store_begin_read(dcem_store *st)
{
    CHECK_HANDLE(st);
    if (st->in_tx) return bad(st, "begin_read: a transaction is already open");
    int rc = st->be->begin_read(st);
    if (rc) return rc;
    st->in_tx = TX_READ;
    return 0;
}

int dcem_store_commit(dcem_store *st)
{
    CHECK_HANDLE(st);
    if (!st->in_tx) return bad(st, "commit: no transaction is open");
    if (st->in_tx == TX_READ) return dcem_store_rollback(st); /* nothing to commit */
    if (st->doomed) {
        dcem_store_rollback(st);
        dcem_store_set_error(st, "commit: a call failed inside this transaction: rolled back");
        st->stats.failed++;
        return DCEM_ESTORAGE;
    }
    int rc = st->be->commit(st);
    st->in_tx = 0;
    if (rc) {
        st->stats.failed++;
        return rc;
    }
    stat_add(&st->stats, &st->pending);
    return 0;
}

int dcem_store_rollback(dcem_store *st)
{
    CHECK_HANDLE(st);
    if (!st->in_tx) return 0;
    st->in_tx = 0;
    st->doomed = 0;
    return st->be->rollback(st);
}

/* ---- batches and readings ----------------------------------------------------------------- */

int dcem_store_put_batch(dcem_store *st, const dcem_wire_batch *b, int64_t received_ms,
                         int *duplicate, unsigned char *fresh)
{
    CHECK_HANDLE(st);
    if (duplicate) *duplicate = 0;
    if (!b) return bad(st, "put_batch: no batch");
    if (fresh && b->n_readings <= DCEM_WIRE_MAX_READINGS) memset(fresh, 0, b->n_readings);
    if (!id_ok(b->site) || !id_ok(b->gateway))
        return bad(st, "put_batch: invalid site or gateway id");
    if (!seq_ok(b->epoch) || !seq_ok(b->seq))
        return bad(st, "put_batch: epoch or seq out of range");
    if (b->n_readings > DCEM_WIRE_MAX_READINGS) return bad(st, "put_batch: too many readings");
    if (b->n_readings && !b->readings) return bad(st, "put_batch: no readings array");
    for (size_t i = 0; i < b->n_readings; i++)
        if (!dcem_wire_id_valid(b->readings[i].meter, strnlen(b->readings[i].meter, DCEM_ID_MAX))) {
            dcem_store_set_error(st, "put_batch: readings[%zu].meter: not a valid id", i);
            return DCEM_EINVAL;
        }
    /* the backend always writes into a buffer of its own, so that a caller
     * never sees the marks of a call that failed and was undone */
    unsigned char *mark = calloc(b->n_readings ? b->n_readings : 1, 1);
    if (!mark) {
        dcem_store_set_error(st, "put_batch: out of memory");
        return DCEM_ENOMEM;
    }
    int dup = 0;
    write_start(st);
    int rc = write_end(st, st->be->put_batch(st, b, received_ms, &dup, mark));
    if (!rc && duplicate) *duplicate = dup;
    if (!rc && !dup && fresh) memcpy(fresh, mark, b->n_readings);
    free(mark);
    return rc;
}

int dcem_store_put_quarantine(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                              uint64_t seq, int64_t received_ms, const char *reason,
                              const void *payload, size_t len, int *duplicate)
{
    CHECK_HANDLE(st);
    if (duplicate) *duplicate = 0;
    if (!id_ok(site) || !id_ok(gateway))
        return bad(st, "put_quarantine: invalid site or gateway id");
    if (!seq_ok(epoch) || !seq_ok(seq)) return bad(st, "put_quarantine: epoch or seq out of range");
    if (!reason || strnlen(reason, DCEM_STORE_MAX_MESSAGE + 1) > DCEM_STORE_MAX_MESSAGE)
        return bad(st, "put_quarantine: reason missing or too long");
    if ((!payload && len) || len > DCEM_WIRE_MAX_PAYLOAD)
        return bad(st, "put_quarantine: payload missing or too large");
    int dup = 0;
    write_start(st);
    int rc = write_end(st, st->be->put_quarantine(st, site, gateway, epoch, seq, received_ms,
                                                  reason, payload ? payload : "", len, &dup));
    if (!rc && duplicate) *duplicate = dup;
    return rc;
}

int dcem_store_put_proof(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                         uint64_t seq, const char *key, const void *payload, size_t len)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || !id_ok(gateway)) return bad(st, "put_proof: invalid site or gateway id");
    if (!seq_ok(epoch) || !seq_ok(seq)) return bad(st, "put_proof: epoch or seq out of range");
    if (!key || strnlen(key, DCEM_PUBKEY_TEXT_MAX) != DCEM_PUBKEY_TEXT_MAX - 1)
        return bad(st, "put_proof: not a public key");
    if (!payload || !len || len > DCEM_WIRE_MAX_PAYLOAD)
        return bad(st, "put_proof: payload missing or too large");
    write_start(st);
    return write_end(st, st->be->put_proof(st, site, gateway, epoch, seq, key, payload, len));
}

int dcem_store_get_proof(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                         uint64_t seq, char *key, size_t keylen, void **payload, size_t *len)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || !id_ok(gateway)) return bad(st, "get_proof: invalid site or gateway id");
    if (!seq_ok(epoch) || !seq_ok(seq)) return bad(st, "get_proof: epoch or seq out of range");
    if (!key || keylen < DCEM_PUBKEY_TEXT_MAX || !payload || !len)
        return bad(st, "get_proof: no output");
    *payload = NULL;
    *len = 0;
    return st->be->get_proof(st, site, gateway, epoch, seq, key, keylen, payload, len);
}

int dcem_store_proofs(dcem_store *st, const char *site, dcem_store_proof_fn fn, void *ctx)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || !fn) return bad(st, "proofs: invalid site or no callback");
    return st->be->proofs(st, site, fn, ctx);
}

int dcem_store_gateway_seq(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                           dcem_store_epoch *out)
{
    CHECK_HANDLE(st);
    if (!out) return bad(st, "gateway_seq: no output");
    memset(out, 0, sizeof *out);
    if (!id_ok(site) || !id_ok(gateway)) return bad(st, "gateway_seq: invalid site or gateway id");
    if (!seq_ok(epoch)) return bad(st, "gateway_seq: epoch out of range");
    memcpy(out->site, site, strlen(site) + 1);
    memcpy(out->gateway, gateway, strlen(gateway) + 1);
    out->epoch = epoch;
    return st->be->gateway_seq(st, out);
}

int dcem_store_skip_to(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                       uint64_t seq)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || !id_ok(gateway)) return bad(st, "skip_to: invalid site or gateway id");
    if (!seq_ok(epoch) || seq > DCEM_WIRE_MAX_INT)
        return bad(st, "skip_to: epoch or seq out of range");
    write_start(st);
    return write_end(st, st->be->skip_to(st, site, gateway, epoch, seq));
}

int dcem_store_epochs(dcem_store *st, dcem_store_epoch_fn fn, void *ctx)
{
    CHECK_HANDLE(st);
    if (!fn) return bad(st, "epochs: no callback");
    return st->be->epochs(st, fn, ctx);
}

int dcem_store_export(dcem_store *st, const char *site, const char *meter, int64_t from_ms,
                      int64_t to_ms, dcem_store_reading_fn fn, void *ctx)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || (meter && !id_ok(meter)))
        return bad(st, "export: invalid site or meter id");
    if (!fn) return bad(st, "export: no callback");
    if (from_ms >= to_ms) return 0;
    return st->be->export_readings(st, site, meter, from_ms, to_ms, fn, ctx);
}

int dcem_store_last_reading_ms(dcem_store *st, const char *site, int64_t *t_ms)
{
    CHECK_HANDLE(st);
    if (!id_ok(site)) return bad(st, "last_reading_ms: invalid site id");
    if (!t_ms) return bad(st, "last_reading_ms: no output");
    return st->be->last_reading_ms(st, site, t_ms);
}

int dcem_store_latest_readings(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                               dcem_store_reading_fn fn, void *ctx)
{
    CHECK_HANDLE(st);
    if (!id_ok(site)) return bad(st, "latest_readings: invalid site id");
    if (!fn) return bad(st, "latest_readings: no callback");
    if (from_ms >= to_ms) return 0;
    return st->be->latest_readings(st, site, from_ms, to_ms, fn, ctx);
}

int dcem_store_prune(dcem_store *st, int64_t now_ms, size_t *deleted)
{
    CHECK_HANDLE(st);
    if (deleted) *deleted = 0;
    if (st->opts.retention_days == 0) return 0;
    int64_t keep_ms = (int64_t)st->opts.retention_days * DCEM_MS_PER_DAY;
    if (now_ms < INT64_MIN + keep_ms) return 0;
    size_t n = 0;
    write_start(st);
    int rc = write_end(st, st->be->prune(st, now_ms - keep_ms, (size_t)st->opts.prune_chunk, &n));
    if (!rc && deleted) *deleted = n;
    return rc;
}

/* ---- interval energy and rollups ---------------------------------------------------------- */

void dcem_store_period_keys(dcem_zone *z, int64_t t_ms, dcem_store_keys *out)
{
    int64_t end, y;
    int m, d;
    dcem_zone_interval(z, t_ms, 3600 * DCEM_MS_PER_S, &out->hour_ms, &end);
    out->day = dcem_zone_day(z, t_ms);
    dcem_zone_date(z, t_ms, &y, &m, &d);
    out->month = y * 12 + (m - 1);
}

static int ukwh_ok(int64_t v)
{
    return v >= -DCEM_STORE_MAX_UKWH && v <= DCEM_STORE_MAX_UKWH;
}

/* The rules the schema's CHECKs also hold, checked first so that a bad row
 * is named. */
static const char *interval_invalid(const dcem_interval *iv)
{
    if (!ukwh_ok(iv->ukwh) || !ukwh_ok(iv->integrated_ukwh)) return "energy above 1e9 kWh";
    for (int i = 0; i < DCEM_SPAN_COUNT; i++)
        if (!ukwh_ok(iv->estimated_ukwh[i])) return "estimated energy above 1e9 kWh";
    if (iv->start_ms >= iv->end_ms || iv->end_ms - iv->start_ms > 3600 * DCEM_MS_PER_S)
        return "start not before end, or longer than an hour";
    if (iv->covered_ms < 0 || iv->covered_ms > iv->end_ms - iv->start_ms)
        return "covered_ms outside 0..end - start";
    if (iv->readings < 0 || iv->discarded < 0 || iv->rollovers < 0 || iv->resets < 0)
        return "negative count";
    return NULL;
}

int dcem_store_put_interval(dcem_store *st, const char *site, const char *meter,
                            const dcem_interval *iv, const dcem_store_keys *keys)
{
    CHECK_HANDLE(st);
    if (!iv || !keys) return bad(st, "put_interval: no interval or keys");
    dcem_store_interval_row row = {.meter = meter, .iv = *iv, .keys = *keys};
    return dcem_store_put_intervals(st, site, &row, 1);
}

int dcem_store_put_intervals(dcem_store *st, const char *site,
                             const dcem_store_interval_row *rows, size_t n)
{
    CHECK_HANDLE(st);
    if (!id_ok(site)) return bad(st, "put_interval: invalid site id");
    if (n == 0) return 0;
    if (!rows || n > DCEM_STORE_MAX_INTERVAL_ROWS) return bad(st, "put_intervals: no rows or too many");
    for (size_t i = 0; i < n; i++) {
        const dcem_store_interval_row *r = &rows[i];
        if (!id_ok(r->meter)) return bad(st, "put_interval: invalid site or meter id");
        const char *why = interval_invalid(&r->iv);
        if (why) {
            dcem_store_set_error(st, "put_interval: %s (meter %s, start %lld)", why, r->meter,
                                 (long long)r->iv.start_ms);
            return DCEM_EINVAL;
        }
    }
    write_start(st);
    return write_end(st, st->be->put_intervals(st, site, rows, n));
}

int dcem_store_get_interval(dcem_store *st, const char *site, const char *meter, int64_t start_ms,
                            dcem_interval *iv)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || !id_ok(meter)) return bad(st, "get_interval: invalid site or meter id");
    if (!iv) return bad(st, "get_interval: no output");
    return st->be->get_interval(st, site, meter, start_ms, iv);
}

int dcem_store_intervals(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                         dcem_store_interval_fn fn, void *ctx)
{
    CHECK_HANDLE(st);
    if (!id_ok(site)) return bad(st, "intervals: invalid site id");
    if (!fn) return bad(st, "intervals: no callback");
    if (from_ms >= to_ms) return 0;
    return st->be->intervals(st, site, from_ms, to_ms, fn, ctx);
}

int dcem_store_delete_intervals(dcem_store *st, const char *site, const char *meter,
                                int64_t from_ms)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || !id_ok(meter))
        return bad(st, "delete_intervals: invalid site or meter id");
    write_start(st);
    return write_end(st, st->be->delete_intervals(st, site, meter, from_ms));
}

static int rollup_kind_ok(int kind)
{
    return kind == DCEM_PERIOD_HOUR || kind == DCEM_PERIOD_DAY || kind == DCEM_PERIOD_MONTH;
}

int dcem_store_get_rollup(dcem_store *st, const char *site, const char *meter, int kind,
                          int64_t key, dcem_store_rollup *out)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || !id_ok(meter)) return bad(st, "get_rollup: invalid site or meter id");
    if (!rollup_kind_ok(kind)) return bad(st, "get_rollup: kind must be hour, day or month");
    if (!out) return bad(st, "get_rollup: no output");
    return st->be->get_rollup(st, site, meter, kind, key, out);
}

int dcem_store_rollups(dcem_store *st, const char *site, int kind, int64_t from_key, int64_t to_key,
                       dcem_store_rollup_fn fn, void *ctx)
{
    CHECK_HANDLE(st);
    if (!id_ok(site)) return bad(st, "rollups: invalid site id");
    if (!rollup_kind_ok(kind)) return bad(st, "rollups: kind must be hour, day or month");
    if (!fn) return bad(st, "rollups: no callback");
    if (from_key >= to_key) return 0;
    return st->be->rollups(st, site, kind, from_key, to_key, fn, ctx);
}

void dcem_store_rollup_of_interval(const dcem_interval *iv, dcem_store_rollup *out)
{
    dcem_meter_period p = {0};
    dcem_meter_period_add_interval(&p, iv); /* what an interval counts: common/split.h */
    memset(out, 0, sizeof *out);
    out->ukwh = p.ukwh;
    memcpy(out->estimated_ukwh, p.estimated_ukwh, sizeof out->estimated_ukwh);
    out->integrated_ukwh = p.integrated_ukwh;
    out->covered_ms = iv->covered_ms;
    out->intervals = 1;
    out->read_intervals = p.read_intervals;
    out->estimated_intervals = p.estimated_intervals;
    out->integrated_intervals = p.integrated_intervals;
    out->discarded_readings = p.discarded_readings;
    out->rollovers = p.rollovers;
    out->resets = p.resets;
}

void dcem_store_rollup_add(dcem_meter_period *m, const dcem_store_rollup *r)
{
    dcem_meter_period p = {.ukwh = r->ukwh,
                           .integrated_ukwh = r->integrated_ukwh,
                           .read_intervals = r->read_intervals,
                           .estimated_intervals = r->estimated_intervals,
                           .integrated_intervals = r->integrated_intervals,
                           .discarded_readings = r->discarded_readings,
                           .rollovers = r->rollovers,
                           .resets = r->resets};
    memcpy(p.estimated_ukwh, r->estimated_ukwh, sizeof p.estimated_ukwh);
    dcem_meter_period_add(m, &p);
}

/* ---- per-meter state and checkpoints ------------------------------------------------------ */

int dcem_store_put_meter_state(dcem_store *st, const char *site, const char *meter,
                               const void *blob, size_t len, int stale, int64_t updated_ms)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || !id_ok(meter)) return bad(st, "put_meter_state: invalid site or meter id");
    if ((!blob && len) || len > DCEM_STORE_MAX_STATE)
        return bad(st, "put_meter_state: state missing or above DCEM_STORE_MAX_STATE bytes");
    if (stale != 0 && stale != 1) return bad(st, "put_meter_state: stale must be 0 or 1");
    write_start(st);
    return write_end(st, st->be->put_meter_state(st, site, meter, blob ? blob : "", len, stale,
                                                 updated_ms));
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether names[0..n) holds a name twice: 1 yes, 0 no, DCEM_ENOMEM. */
static int named_twice(const char *const *names, size_t n)
{
    const char **sorted = malloc(n * sizeof *sorted);
    if (!sorted) return DCEM_ENOMEM;
    memcpy(sorted, names, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, by_name);
    int twice = 0;
    for (size_t i = 1; i < n && !twice; i++) twice = !strcmp(sorted[i - 1], sorted[i]);
    free(sorted);
    return twice;
}

int dcem_store_put_meter_states(dcem_store *st, const char *site,
                                const dcem_store_meter_state_row *rows, size_t n)
{
    CHECK_HANDLE(st);
    if (!id_ok(site)) return bad(st, "put_meter_states: invalid site id");
    if (n > DCEM_STORE_MAX_STATE_ROWS) return bad(st, "put_meter_states: too many rows");
    if (!n) return 0;
    if (!rows) return bad(st, "put_meter_states: no rows");
    for (size_t i = 0; i < n; i++) {
        const dcem_store_meter_state_row *r = &rows[i];
        if (!r->meter || !id_ok(r->meter)) return bad(st, "put_meter_states: invalid meter id");
        if ((!r->blob && r->len) || r->len > DCEM_STORE_MAX_STATE)
            return bad(st, "put_meter_states: state missing or above DCEM_STORE_MAX_STATE bytes");
        if (r->stale != 0 && r->stale != 1) return bad(st, "put_meter_states: stale must be 0 or 1");
    }
    const char **names = malloc(n * sizeof *names);
    if (!names) return DCEM_ENOMEM;
    for (size_t i = 0; i < n; i++) names[i] = rows[i].meter;
    int twice = named_twice(names, n);
    free(names);
    if (twice == DCEM_ENOMEM) return twice;
    if (twice) return bad(st, "put_meter_states: a meter given twice");
    write_start(st);
    if (st->be->put_meter_states) return write_end(st, st->be->put_meter_states(st, site, rows, n));
    /* one call each, in a transaction of their own when none is open */
    int own = !st->in_tx, rc = 0;
    if (own) {
        if ((rc = st->be->begin(st))) return write_end(st, rc);
        st->in_tx = TX_WRITE;
    }
    for (size_t i = 0; i < n && !rc; i++)
        rc = st->be->put_meter_state(st, site, rows[i].meter, rows[i].blob ? rows[i].blob : "",
                                     rows[i].len, rows[i].stale, rows[i].updated_ms);
    if (own) {
        if (!rc) rc = st->be->commit(st);
        else st->be->rollback(st);
        st->in_tx = TX_NONE;
    }
    return write_end(st, rc);
}

int dcem_store_get_meter_state(dcem_store *st, const char *site, const char *meter, void *buf,
                               size_t cap, size_t *len, int *stale, int64_t *updated_ms)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || !id_ok(meter)) return bad(st, "get_meter_state: invalid site or meter id");
    if ((!buf && cap) || !len) return bad(st, "get_meter_state: no output");
    *len = 0;
    int stale_d;
    int64_t updated_d;
    char none;
    return st->be->get_meter_state(st, site, meter, buf ? buf : &none, cap, len,
                                   stale ? stale : &stale_d, updated_ms ? updated_ms : &updated_d);
}

int dcem_store_get_meter_states(dcem_store *st, const char *site, const char *const *meters,
                                size_t n, dcem_store_state_fn fn, void *ctx)
{
    CHECK_HANDLE(st);
    if (!id_ok(site)) return bad(st, "get_meter_states: invalid site id");
    if (n > DCEM_STORE_MAX_STATE_ROWS) return bad(st, "get_meter_states: too many meters");
    if (!n) return 0;
    if (!meters || !fn) return bad(st, "get_meter_states: no meters or no callback");
    for (size_t i = 0; i < n; i++)
        if (!meters[i] || !id_ok(meters[i])) return bad(st, "get_meter_states: invalid meter id");
    int twice = named_twice(meters, n);
    if (twice == DCEM_ENOMEM) return twice;
    if (twice) return bad(st, "get_meter_states: a meter given twice");
    if (st->be->get_meter_states) return st->be->get_meter_states(st, site, meters, n, fn, ctx);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char buf[DCEM_STORE_MAX_STATE];
        size_t len = 0;
        int stale = 0;
        int64_t updated;
        rc = st->be->get_meter_state(st, site, meters[i], buf, sizeof buf, &len, &stale, &updated);
        if (rc == DCEM_ENOTFOUND) rc = fn(ctx, i, NULL, 0, 0, 1);
        else if (!rc) rc = fn(ctx, i, buf, len, stale, 1);
    }
    return rc;
}

int dcem_store_put_checkpoint(dcem_store *st, const char *site, const char *meter, int64_t t_ms,
                              const void *blob, size_t len)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || !id_ok(meter)) return bad(st, "put_checkpoint: invalid site or meter id");
    if ((!blob && len) || len > DCEM_STORE_MAX_STATE)
        return bad(st, "put_checkpoint: state missing or above DCEM_STORE_MAX_STATE bytes");
    write_start(st);
    return write_end(st, st->be->put_checkpoint(st, site, meter, t_ms, blob ? blob : "", len));
}

int dcem_store_get_checkpoint(dcem_store *st, const char *site, const char *meter,
                              int64_t before_ms, int64_t *t_ms, void *buf, size_t cap,
                              size_t *len)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || !id_ok(meter)) return bad(st, "get_checkpoint: invalid site or meter id");
    if ((!buf && cap) || !len) return bad(st, "get_checkpoint: no output");
    *len = 0;
    int64_t t_d;
    char none;
    return st->be->get_checkpoint(st, site, meter, before_ms, t_ms ? t_ms : &t_d,
                                  buf ? buf : &none, cap, len);
}

int dcem_store_drop_checkpoints(dcem_store *st, const char *site, const char *meter,
                                int64_t from_ms)
{
    CHECK_HANDLE(st);
    if (!id_ok(site) || !id_ok(meter))
        return bad(st, "drop_checkpoints: invalid site or meter id");
    write_start(st);
    return write_end(st, st->be->drop_checkpoints(st, site, meter, from_ms));
}

/* ---- figures, verdicts, alerts ------------------------------------------------------------ */

static int figure_kind_ok(int kind)
{
    return kind >= DCEM_PERIOD_INTERVAL && kind <= DCEM_PERIOD_YEAR;
}

int dcem_store_put_figures(dcem_store *st, const char *site, int kind, int64_t period_key,
                           const char *json, int64_t computed_ms)
{
    CHECK_HANDLE(st);
    if (!id_ok(site)) return bad(st, "put_figures: invalid site id");
    if (!figure_kind_ok(kind)) return bad(st, "put_figures: unknown period kind");
    size_t len = json ? strnlen(json, DCEM_STORE_MAX_JSON + 1) : 0;
    if (!json || len > DCEM_STORE_MAX_JSON)
        return bad(st, "put_figures: document missing or too large");
    write_start(st);
    return write_end(st, st->be->put_figures(st, site, kind, period_key, json, len, computed_ms));
}

int dcem_store_get_figures(dcem_store *st, const char *site, int kind, int64_t period_key,
                           char **json, int64_t *computed_ms)
{
    CHECK_HANDLE(st);
    if (!json) return bad(st, "get_figures: no output");
    *json = NULL;
    if (!id_ok(site)) return bad(st, "get_figures: invalid site id");
    if (!figure_kind_ok(kind)) return bad(st, "get_figures: unknown period kind");
    int64_t dummy;
    return st->be->get_figures(st, site, kind, period_key, json,
                               computed_ms ? computed_ms : &dummy);
}

int dcem_store_figures(dcem_store *st, const char *site, int kind, int64_t from_key, int64_t to_key,
                       dcem_store_figures_fn fn, void *ctx)
{
    CHECK_HANDLE(st);
    if (!id_ok(site)) return bad(st, "figures: invalid site id");
    if (!figure_kind_ok(kind)) return bad(st, "figures: unknown period kind");
    if (!fn) return bad(st, "figures: no callback");
    if (from_key >= to_key) return 0;
    return st->be->figures(st, site, kind, from_key, to_key, fn, ctx);
}

/* Checks alert a; a copy with its subject never NULL into *out. */
static int badf(dcem_store *st, const char *what, const char *why)
{
    dcem_store_set_error(st, "%s: %s", what, why);
    return DCEM_EINVAL;
}

static int alert_ok(dcem_store *st, const char *what, const dcem_store_alert *a,
                    dcem_store_alert *out)
{
    if (!a) return badf(st, what, "no alert");
    if (!id_ok(a->site) || !id_ok(a->kind)) return badf(st, what, "invalid site or kind");
    if (a->subject && *a->subject && !id_ok(a->subject))
        return badf(st, what, "invalid subject");
    if (!a->message || strnlen(a->message, DCEM_STORE_MAX_MESSAGE + 1) > DCEM_STORE_MAX_MESSAGE)
        return badf(st, what, "message missing or too long");
    if (a->state != DCEM_STORE_ALERT_RAISED && a->state != DCEM_STORE_ALERT_CLEARED)
        return badf(st, what, "unknown state");
    *out = *a;
    if (!out->subject) out->subject = "";
    return 0;
}

int dcem_store_add_alert(dcem_store *st, const dcem_store_alert *a, int64_t *id)
{
    CHECK_HANDLE(st);
    dcem_store_alert ok;
    int rc = alert_ok(st, "add_alert", a, &ok);
    if (rc) return rc;
    int64_t dummy;
    write_start(st);
    return write_end(st, st->be->add_alert(st, &ok, id ? id : &dummy));
}

int dcem_store_change_alert(dcem_store *st, const dcem_store_alert *a, int *changed, int64_t *id)
{
    int dummy_changed;
    int64_t dummy_id;
    if (!changed) changed = &dummy_changed;
    if (!id) id = &dummy_id;
    *changed = 0;
    *id = 0;
    CHECK_HANDLE(st);
    dcem_store_alert ok;
    int rc = alert_ok(st, "change_alert", a, &ok);
    if (rc) return rc;
    write_start(st);
    rc = write_end(st, st->be->change_alert(st, &ok, changed, id));
    if (rc) *changed = 0, *id = 0;
    return rc;
}

int dcem_store_alerts(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                      dcem_store_alert_fn fn, void *ctx)
{
    CHECK_HANDLE(st);
    if (site && !id_ok(site)) return bad(st, "alerts: invalid site id");
    if (!fn) return bad(st, "alerts: no callback");
    if (from_ms >= to_ms) return 0;
    return st->be->alerts(st, site, from_ms, to_ms, fn, ctx);
}

int dcem_store_alerts_page(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                           int64_t before_t_ms, int64_t before_id, long limit,
                           dcem_store_alert_fn fn, void *ctx)
{
    CHECK_HANDLE(st);
    if (!id_ok(site)) return bad(st, "alerts_page: invalid site id");
    if (!fn) return bad(st, "alerts_page: no callback");
    if (limit < 1 || limit > 100000) return bad(st, "alerts_page: limit must be 1..100000");
    if (from_ms >= to_ms) return 0;
    return st->be->alerts_page(st, site, from_ms, to_ms, before_t_ms, before_id, limit, fn, ctx);
}

void dcem_store_stats(const dcem_store *st, dcem_store_stat *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (st) *out = st->stats;
}

int dcem_store_reading_csv(const dcem_store_reading *r, char *buf, size_t len)
{
    if (!r->has_kwh && !r->has_kw) return 0;
    char t[40], kwh[32] = "", kw[32] = "", ratio[32] = "";
    dcem_format_time(r->t_ms, 0, t, sizeof t);
    if (r->has_kwh) snprintf(kwh, sizeof kwh, "%.17g", r->kwh);
    if (r->has_kw) snprintf(kw, sizeof kw, "%.17g", r->kw);
    if (r->ratio != 1 && r->ratio > 0) snprintf(ratio, sizeof ratio, "%.17g", r->ratio);
    int n = snprintf(buf, len, "%s,%s,%s,%s,%s\n", t, r->meter, kwh, kw, ratio);
    return n < 0 || (size_t)n >= len ? -1 : n;
}
