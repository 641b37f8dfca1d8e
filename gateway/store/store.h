/* store.h — the collector's durable store: received batches and their
 * readings (idempotent on the batch's (site, gateway, epoch, seq)), interval
 * energy per meter in whole micro-kWh with hour / day / month rollups kept
 * as integer sums, each meter's pipeline state and checkpoints as opaque
 * blobs (common/meter.h encodes them), figures, verdicts and alerts. One
 * small interface over interchangeable backends (store_backend.h): "sqlite",
 * one file, and "postgresql", a server several collectors share. */
#ifndef DCEM_STORE_H
#define DCEM_STORE_H

#include "calendar.h"
#include "figures.h"
#include "split.h"
#include "wire.h"

#include <stddef.h>
#include <stdint.h>

/* A handle is one database connection. It is not thread-safe: use one handle
 * per thread (each opens its own connection to the same store). */
typedef struct dcem_store dcem_store;

#define DCEM_STORE_MAX_JSON (1024 * 1024)  /* a figures document, bytes */
#define DCEM_STORE_MAX_MESSAGE 1024        /* an alert message or quarantine reason */
#define DCEM_STORE_MAX_PRUNE_CHUNK 1000000 /* rows deleted per prune call at most */

enum {
    DCEM_STORE_SYNC_FULL = 0,   /* default: a commit is on stable storage when it returns */
    DCEM_STORE_SYNC_NORMAL = 1, /* survives a process crash, may lose the last commits on
                                   power loss: never where acks depend on it (docs/store.md) */
};

typedef struct dcem_store_opts {
    int synchronous;     /* DCEM_STORE_SYNC_* */
    int busy_timeout_ms; /* wait for another connection's lock; 0: 5000; < 0: do not wait */
    int retention_days;  /* readings older than this are pruned; 0: kept for ever */
    int prune_chunk; /* rows per dcem_store_prune call; 0: 10000; max DCEM_STORE_MAX_PRUNE_CHUNK */
    int schema_version; /* 0: migrate to the newest schema. Tests and tools may stop at an
                           older version; functions needing a later one then fail */
} dcem_store_opts;

/* Opens (creating if missing) the store of `backend` ("sqlite" or
 * "postgresql"; NULL means "sqlite") at `target` (sqlite: a file path; its
 * directory must exist; postgresql: a libpq connection string or URI whose
 * database exists and which the role may create tables in), and
 * applies the pending schema migrations in one transaction. opts may be NULL
 * (defaults). On success *out is a handle freed with dcem_store_close.
 * Returns 0; DCEM_ECONFIG for an unknown backend, bad options, a file that is
 * not a dcem store, or a schema NEWER than this program knows (upgrade the
 * collector: it never writes into a schema it does not understand);
 * DCEM_ESTORAGE when the file cannot be opened, put in WAL mode or migrated,
 * or the server cannot be reached (the reason in err);
 * DCEM_ENOMEM. Detail goes to err (may be NULL). */
int dcem_store_open(const char *backend, const char *target, const dcem_store_opts *opts,
                    dcem_store **out, char *err, size_t errlen);

/* Closes the connection (an open explicit transaction is rolled back) and
 * frees. NULL accepted. */
void dcem_store_close(dcem_store *st);

/* Detail of the last failure on this handle ("" if none); owned by st. */
const char *dcem_store_error(const dcem_store *st);

/* Name of the backend ("sqlite", "postgresql") and the schema version the store is at. */
const char *dcem_store_backend_name(const dcem_store *st);
int dcem_store_schema_version(const dcem_store *st);

/*
 * Errors of every function below: 0 on success; DCEM_EINVAL for an invalid
 * argument or a row the schema's CHECK constraints refuse (nothing of the
 * call is stored); DCEM_EFULL when the disk is full; DCEM_ESTORAGE for any
 * other database failure (I/O, lock not obtained within busy_timeout_ms,
 * corruption) — nothing of the call is stored and it may be retried;
 * DCEM_ENOMEM; DCEM_ENOTFOUND where a lookup finds nothing; DCEM_ERETRY
 * (PostgreSQL, inside an explicit transaction) when the transaction was lost
 * to a conflict — a replayed reading or a revised interval met the plain
 * INSERT of the fast path, or a deadlock or serialization failure with
 * another collector: roll back and run the same transaction again (it then
 * takes the careful path throughout). Detail in dcem_store_error().
 *
 * Transactions: every write call is atomic on its own (its own transaction,
 * committed and — with DCEM_STORE_SYNC_FULL — on stable storage when it
 * returns 0). Between dcem_store_begin and dcem_store_commit, write calls
 * join one transaction instead, and nothing is durable before
 * dcem_store_commit returns 0. A call that fails inside it (other than one
 * refused for its arguments before it reaches the store) dooms it, as
 * PostgreSQL does: later write calls and the commit fail, and only a
 * rollback ends it. (A savepoint per call to keep the others' work would
 * cost PostgreSQL two round trips and a subtransaction each; the collector
 * rolls back a failed group and stores its batches one by one instead.)
 * The collector stores a batch, the intervals it produced and its meters'
 * counter state in one such transaction, so a restart resumes exactly.
 */
int dcem_store_begin(dcem_store *st);
int dcem_store_commit(dcem_store *st);   /* on failure the transaction is rolled back */
/* A read transaction: every read until dcem_store_rollback (or commit) sees
 * one committed state of the store — a snapshot — whatever other handles
 * commit meanwhile, and takes no write lock (SQLite in WAL mode; PostgreSQL
 * REPEATABLE READ, READ ONLY). A write call inside it fails (DCEM_EINVAL).
 * The collector's figures thread reads a site's rollups and meter states in
 * one, so they come from the same commit. */
int dcem_store_begin_read(dcem_store *st);
int dcem_store_rollback(dcem_store *st); /* no-op without an open transaction */

/* ---- batches and readings ----------------------------------------------------------------- */

/* Stores batch b (decoded and validated by dcem_wire_decode_batch) received
 * at received_ms (UTC wall clock): its batch row and all its readings, in one
 * transaction, and moves the epoch's contiguous seq. A batch already stored
 * — its (site, gateway, epoch, seq) has a row — changes nothing and sets
 * *duplicate to 1 (re-ack it); otherwise *duplicate is 0. A reading
 * already stored (same site, meter, t_ms: from another batch, or earlier in
 * this one) is kept as it was: readings are identified by (meter, t).
 * fresh, when not NULL, has b->n_readings entries: fresh[i] is set to 1 when
 * this call inserted readings[i], 0 when it was already stored (all 0 for a
 * duplicate batch or a failed call), so the caller pushes each reading into
 * its meter once. duplicate may be NULL. Acking after a 0 return (outside an
 * explicit transaction) is safe. */
int dcem_store_put_batch(dcem_store *st, const dcem_wire_batch *b, int64_t received_ms,
                         int *duplicate, unsigned char *fresh);

/* Records an identified batch that failed validation (docs/wire-format.md,
 * "Malformed payloads"): its raw payload (at most DCEM_WIRE_MAX_PAYLOAD
 * bytes) and reason (dcem_wire_reason_name plus detail, at most
 * DCEM_STORE_MAX_MESSAGE bytes) in the quarantine, and a batch row with no
 * readings, so that it counts as stored for the contiguous seq and is acked
 * like one. Duplicates as dcem_store_put_batch. */
int dcem_store_put_quarantine(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                              uint64_t seq, int64_t received_ms, const char *reason,
                              const void *payload, size_t len, int *duplicate);

/* Keeps the proof of who sent batch (site, gateway, epoch, seq), just
 * stored by dcem_store_put_batch (call it in the same transaction): the
 * payload exactly as received, its signature inside, and the public key
 * (text, "ed25519:...") that verified it, so that `dcem-collector verify`
 * can show later which gateway sent each reading. A batch that has a proof
 * keeps the first. A store held at a schema before proofs keeps none. */
int dcem_store_put_proof(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                         uint64_t seq, const char *key, const void *payload, size_t len);

/* The proof of that batch: its key into key (keylen bytes), its payload in
 * a new buffer *payload of *len bytes the caller frees. 0, DCEM_ENOTFOUND
 * (none: the batch was stored unsigned by a lab collector, or not at all)
 * or an error. */
int dcem_store_get_proof(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                         uint64_t seq, char *key, size_t keylen, void **payload, size_t *len);

/* One stored proof, for dcem_store_proofs. Pointers valid during the call. */
typedef struct dcem_store_proof {
    const char *site, *gateway, *key;
    uint64_t epoch, seq;
    const void *payload;
    size_t len;
} dcem_store_proof;

typedef int (*dcem_store_proof_fn)(void *ctx, const dcem_store_proof *p);

/* Every proof of site's batches, by gateway, epoch and seq; fn returning
 * non-zero stops the walk (and is returned). 0 or an error. */
int dcem_store_proofs(dcem_store *st, const char *site, dcem_store_proof_fn fn, void *ctx);

/* What the store knows of one (site, gateway, epoch). */
typedef struct dcem_store_epoch {
    char site[DCEM_ID_MAX];
    char gateway[DCEM_ID_MAX];
    uint64_t epoch;
    uint64_t contiguous_seq;   /* H: every batch 1..H is stored (or was skipped); ack (epoch, H) */
    uint64_t max_seq;          /* highest seq stored; > H means a gap: ask for resend from H + 1 */
    uint64_t skipped;          /* seqs given up by dcem_store_skip_to (known missing data) */
    int64_t first_ms, last_ms; /* received_ms of its first and latest stored batch */
} dcem_store_epoch;

/* The contiguous and highest stored seq of (site, gateway, epoch). The next
 * expected seq is out->contiguous_seq + 1. DCEM_ENOTFOUND (out zeroed, ids
 * and epoch filled in) when nothing of that epoch was stored: expect seq 1. */
int dcem_store_gateway_seq(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                           dcem_store_epoch *out);

/* Gives up on the batches of (site, gateway, epoch) up to seq — the agent no
 * longer holds them (its birth says so) — so the contiguous seq moves to at
 * least seq (and past any later batches already stored). The count of seqs
 * given up is added to `skipped`: the hole shows as missing data. No-op when
 * seq <= H. */
int dcem_store_skip_to(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                       uint64_t seq);

/* Calls fn for every (site, gateway, epoch) stored, ordered by site, gateway,
 * epoch — on start, the collector re-acks each gateway's latest epoch. A
 * non-zero return from fn stops the walk and is returned. fn must not call
 * back into the store. */
typedef int (*dcem_store_epoch_fn)(void *ctx, const dcem_store_epoch *e);
int dcem_store_epochs(dcem_store *st, dcem_store_epoch_fn fn, void *ctx);

/* One stored reading; strings are valid during the callback only. */
typedef struct dcem_store_reading {
    const char *site, *meter, *gateway;
    int64_t t_ms;
    int quality; /* dcem_wire_quality */
    int has_kwh, has_kw;
    double kwh, kw;
    uint64_t epoch, seq; /* the batch that brought it */
    double ratio;        /* transformer ratio ct * pt its values were scaled by (1: none) */
} dcem_store_reading;

typedef int (*dcem_store_reading_fn)(void *ctx, const dcem_store_reading *r);

/* The dcem-audit CSV of readings (docs/audit.md): its header line, and one
 * reading as a row — RFC 3339 UTC time, meter, kwh and kw in the shortest
 * form that reads back exactly (empty when absent), the ratio (empty when
 * 1). Writes the row with its newline into buf; returns its length, 0 for a
 * reading without a value (no row), or -1 when buf is too small
 * (DCEM_STORE_CSV_ROW_MAX always suffices). Every export writes with it, so
 * `dcem-collector export`, the API and a report's readings.csv agree byte
 * for byte. */
#define DCEM_STORE_CSV_HEADER "time,meter,kwh,kw,ratio\n"
#define DCEM_STORE_CSV_ROW_MAX 256
int dcem_store_reading_csv(const dcem_store_reading *r, char *buf, size_t len);

/* Readings of site with from_ms <= t_ms < to_ms, ordered by (t_ms, meter) —
 * the dcem-audit CSV export, and, with meter not NULL (only that meter, in
 * time order), the collector's replay of a meter after late data. fn as in
 * dcem_store_epochs. */
int dcem_store_export(dcem_store *st, const char *site, const char *meter, int64_t from_ms,
                      int64_t to_ms, dcem_store_reading_fn fn, void *ctx);

/* The newest reading time of site (any meter, any quality) into *t_ms;
 * DCEM_ENOTFOUND when the site has none. */
int dcem_store_last_reading_ms(dcem_store *st, const char *site, int64_t *t_ms);

/* For every meter of site with a reading that carries a value (kwh or kw)
 * at from_ms <= t_ms < to_ms: its latest such reading, one call per meter,
 * ordered by meter. The cost grows with the readings in the range, so the
 * caller bounds it (the API: a few days before the site's newest reading).
 * fn as in dcem_store_epochs. */
int dcem_store_latest_readings(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                               dcem_store_reading_fn fn, void *ctx);

/* Deletes at most prune_chunk readings (one transaction) older than
 * now_ms - retention_days, and at most as many batch rows (with their
 * quarantine) received before then, of those the contiguous seq covers (a
 * batch above it still has to close its gap). Intervals, rollups, meter
 * state, checkpoints, figures, alerts and the epochs' seqs are never pruned. *deleted
 * (may be NULL) gets the readings deleted: call again while it equals
 * prune_chunk. A no-op when retention_days is 0. */
int dcem_store_prune(dcem_store *st, int64_t now_ms, size_t *deleted);

/* ---- interval energy and rollups ---------------------------------------------------------- */

/* The periods an interval counts in, computed by the caller in the site's
 * zone (the store computes no time zones): dcem_store_period_keys does it. */
typedef struct dcem_store_keys {
    int64_t hour_ms; /* UTC instant the local hour holding the interval starts */
    int64_t day;     /* local day number (dcem_zone_day) */
    int64_t month;   /* local year * 12 + (month - 1) */
} dcem_store_keys;

/* Keys of the local hour, day and month holding instant t_ms (pass an
 * interval's start_ms). Pure: the zone is the caller's. */
void dcem_store_period_keys(dcem_zone *z, int64_t t_ms, dcem_store_keys *out);

/* The largest energy of one interval the store accepts, in micro-kWh (1e9
 * kWh), for each of ukwh, estimated_ukwh[] and integrated_ukwh. */
#define DCEM_STORE_MAX_UKWH INT64_C(1000000000000000)

/* Inserts or REPLACES the interval of (site, meter) starting at
 * iv->start_ms — late data revises an interval, it never adds to it — and
 * applies the difference (new - old) to the meter's hour, day and month
 * rollups in the same transaction. The interval carries its own counter
 * events and readings (split.h). Refused (DCEM_EINVAL): an energy beyond
 * DCEM_STORE_MAX_UKWH in magnitude, start >= end, end - start > 1 h,
 * covered_ms outside 0..end - start, a negative count. */
int dcem_store_put_interval(dcem_store *st, const char *site, const char *meter,
                            const dcem_interval *iv, const dcem_store_keys *keys);

/* One interval for dcem_store_put_intervals. */
typedef struct dcem_store_interval_row {
    const char *meter;
    dcem_interval iv;
    dcem_store_keys keys;
} dcem_store_interval_row;

#define DCEM_STORE_MAX_INTERVAL_ROWS 65536 /* rows per dcem_store_put_intervals call */

/* Stores n intervals of site exactly as n dcem_store_put_interval calls in
 * that order would (a later row of the same interval revises an earlier
 * one), atomically, but touches each rollup row once: the contributions of
 * all rows are summed in memory first. A batch of readings costs one write
 * per interval plus one per rollup it touches, not four per interval. Any
 * invalid row fails the whole call (DCEM_EINVAL, nothing stored). */
int dcem_store_put_intervals(dcem_store *st, const char *site,
                             const dcem_store_interval_row *rows, size_t n);

/* The stored interval of (site, meter) starting at start_ms. DCEM_ENOTFOUND
 * when there is none. */
int dcem_store_get_interval(dcem_store *st, const char *site, const char *meter, int64_t start_ms,
                            dcem_interval *iv);

/* Intervals of site with from_ms <= start_ms < to_ms, ordered by (start_ms,
 * meter); meter (valid during the callback) names each one's meter. */
typedef int (*dcem_store_interval_fn)(void *ctx, const char *meter, const dcem_interval *iv);
int dcem_store_intervals(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                         dcem_store_interval_fn fn, void *ctx);

/* Deletes the intervals of (site, meter) with start_ms >= from_ms and takes
 * them off the meter's hour, day and month rollups (a rollup left with no
 * interval is deleted), atomically: before the collector replays the meter
 * from a checkpoint (dcem_meter_frontier_ms of its state). */
int dcem_store_delete_intervals(dcem_store *st, const char *site, const char *meter,
                                int64_t from_ms);

/* One meter's sums over one hour, day or month: integer sums of its
 * intervals' fields, so a rollup is exactly the sum of its intervals
 * whatever the order of revisions and deletions. */
typedef struct dcem_store_rollup {
    char meter[DCEM_ID_MAX];
    int kind;    /* DCEM_PERIOD_HOUR, DCEM_PERIOD_DAY or DCEM_PERIOD_MONTH */
    int64_t key; /* hour_ms, day or month as in dcem_store_keys */
    int64_t ukwh;                            /* micro-kWh */
    int64_t estimated_ukwh[DCEM_SPAN_COUNT]; /* sums of the intervals' at each span */
    int64_t integrated_ukwh;
    int64_t covered_ms;
    long intervals;
    long read_intervals;       /* intervals with readings > 0 */
    long estimated_intervals;  /* intervals with flags & DCEM_SEG_ESTIMATED */
    long integrated_intervals; /* intervals with flags & DCEM_SEG_INTEGRATED */
    long discarded_readings, rollovers, resets;
} dcem_store_rollup;

/* What one interval adds to each rollup it counts in (meter and key left
 * empty): the single definition of the sums, for readers summing intervals
 * themselves (the API's interval figures) as the store sums them. */
void dcem_store_rollup_of_interval(const dcem_interval *iv, dcem_store_rollup *out);

/* The rollup of (site, meter, kind, key); DCEM_ENOTFOUND when no interval
 * counts in it. */
int dcem_store_get_rollup(dcem_store *st, const char *site, const char *meter, int kind,
                          int64_t key, dcem_store_rollup *out);

/* Rollups of every meter of site of one kind with from_key <= key < to_key,
 * ordered by (key, meter). */
typedef int (*dcem_store_rollup_fn)(void *ctx, const dcem_store_rollup *r);
int dcem_store_rollups(dcem_store *st, const char *site, int kind, int64_t from_key, int64_t to_key,
                       dcem_store_rollup_fn fn, void *ctx);

/* Adds every field of a rollup into the sums common/figures.h takes (call
 * once per rollup of the period); expected_intervals is left to the caller. */
void dcem_store_rollup_add(dcem_meter_period *m, const dcem_store_rollup *r);

/* ---- per-meter state and checkpoints ------------------------------------------------------ */

/* A meter's state is a blob the store keeps without reading it
 * (dcem_meter_encode makes it): at most this many bytes. */
#define DCEM_STORE_MAX_STATE 1024

/* Saves the state of (site, meter) — blob (len bytes, 0..DCEM_STORE_MAX_STATE;
 * blob may be NULL when len is 0), whether its meter_stale alert is raised
 * (stale 0 or 1) and the time it was saved — replacing what was saved. */
int dcem_store_put_meter_state(dcem_store *st, const char *site, const char *meter,
                               const void *blob, size_t len, int stale, int64_t updated_ms);

/* One meter's state for dcem_store_put_meter_states. */
typedef struct dcem_store_meter_state_row {
    const char *meter;
    const void *blob; /* len bytes; may be NULL when len is 0 */
    size_t len;
    int stale;
    int64_t updated_ms;
} dcem_store_meter_state_row;

#define DCEM_STORE_MAX_STATE_ROWS 65536 /* rows per dcem_store_put_meter_states call */

/* Saves the states of n meters of site (each meter at most once) as n
 * dcem_store_put_meter_state calls would, atomically, in one statement
 * where the backend can (PostgreSQL: one round trip for all instead of
 * one per meter). Any invalid row fails the whole
 * call (DCEM_EINVAL, nothing saved). */
int dcem_store_put_meter_states(dcem_store *st, const char *site,
                                const dcem_store_meter_state_row *rows, size_t n);

/* The saved state: the blob into buf (cap bytes), its length into *len,
 * stale and updated_ms into *stale and *updated_ms (either may be NULL).
 * DCEM_ENOTFOUND when nothing was saved (start a fresh meter, or rebuild it
 * from its stored readings); DCEM_EFULL (*len set) when cap is too small —
 * DCEM_STORE_MAX_STATE always suffices. */
int dcem_store_get_meter_state(dcem_store *st, const char *site, const char *meter, void *buf,
                               size_t cap, size_t *len, int *stale, int64_t *updated_ms);

/* One meter's saved state as dcem_store_get_meter_states hands it on: i
 * its index in meters[]; blob NULL (len 0, stale 0) when none is saved;
 * known 0 when the store holds nothing at all of the meter (no state, no
 * reading: a new meter), 1 when it may. Nonzero from fn ends the call,
 * which returns it. */
typedef int (*dcem_store_state_fn)(void *ctx, size_t i, const void *blob, size_t len, int stale,
                                   int known);

/* The saved states of meters[0..n) of site (each meter at most once, n at
 * most DCEM_STORE_MAX_STATE_ROWS), as n dcem_store_get_meter_state calls
 * would, in two round trips where the backend can (PostgreSQL: one
 * instead of one or two per meter). fn is called once for every meter,
 * in order. */
int dcem_store_get_meter_states(dcem_store *st, const char *site, const char *const *meters,
                                size_t n, dcem_store_state_fn fn, void *ctx);

/* A checkpoint is a meter's state after all its readings up to t_ms
 * (included), from which a replay of the later readings starts. Inserts
 * the checkpoint of (site, meter) at t_ms, or replaces it. blob as for
 * dcem_store_put_meter_state. */
int dcem_store_put_checkpoint(dcem_store *st, const char *site, const char *meter, int64_t t_ms,
                              const void *blob, size_t len);

/* The latest checkpoint of (site, meter) with t_ms < before_ms: its time
 * into *t_ms (may be NULL), its blob into buf and *len as for
 * dcem_store_get_meter_state. DCEM_ENOTFOUND when there is none (replay
 * from a fresh meter). */
int dcem_store_get_checkpoint(dcem_store *st, const char *site, const char *meter,
                              int64_t before_ms, int64_t *t_ms, void *buf, size_t cap,
                              size_t *len);

/* Deletes the checkpoints of (site, meter) with t_ms >= from_ms: those a
 * late reading at from_ms made wrong. */
int dcem_store_drop_checkpoints(dcem_store *st, const char *site, const char *meter,
                                int64_t from_ms);

/* ---- figures, verdicts, alerts ------------------------------------------------------------ */

/* Inserts or replaces the figures-and-verdicts JSON document (NUL-terminated,
 * valid JSON, at most DCEM_STORE_MAX_JSON bytes) of site for one period:
 * kind is a dcem_period_kind; period_key the interval's or hour's start_ms,
 * the local day number, the month (year*12+m-1) or the year. */
int dcem_store_put_figures(dcem_store *st, const char *site, int kind, int64_t period_key,
                           const char *json, int64_t computed_ms);

/* The stored document: *json is a new NUL-terminated copy the caller frees
 * with free(); computed_ms may be NULL. DCEM_ENOTFOUND when there is none. */
int dcem_store_get_figures(dcem_store *st, const char *site, int kind, int64_t period_key,
                           char **json, int64_t *computed_ms);

/* Documents of site of one kind with from_key <= period_key < to_key, in
 * key order; json is valid during the callback only. */
typedef int (*dcem_store_figures_fn)(void *ctx, int64_t period_key, const char *json,
                                     int64_t computed_ms);
int dcem_store_figures(dcem_store *st, const char *site, int kind, int64_t from_key, int64_t to_key,
                       dcem_store_figures_fn fn, void *ctx);

enum { DCEM_STORE_ALERT_RAISED = 0, DCEM_STORE_ALERT_CLEARED = 1 };

/* An alert: appended, never updated — a change of state is a new row. */
typedef struct dcem_store_alert {
    int64_t id;          /* set by the store */
    const char *site;    /* an id */
    int64_t t_ms;        /* when it was raised / cleared */
    const char *kind;    /* an id, e.g. a verdict name ("cap_exceeded") */
    const char *message; /* at most DCEM_STORE_MAX_MESSAGE bytes */
    int state;           /* DCEM_STORE_ALERT_* */
    const char *subject; /* what in the site it is about: a meter, a gateway, a year;
                            "" or NULL (read back as "") for the site as a whole */
} dcem_store_alert;

/* Appends alert a; *id (may be NULL) receives its id. */
int dcem_store_add_alert(dcem_store *st, const dcem_store_alert *a, int64_t *id);

/* Records a change of state of the alert (a->site, a->kind, a->subject),
 * once however many collectors share the store: atomically, when no state
 * of it is recorded yet or the recorded one differs from a->state, records
 * a->state and appends a as dcem_store_add_alert does (*changed = 1, *id its
 * id); otherwise changes nothing (*changed = 0, *id = 0). The collector
 * stores and publishes an alert only when *changed. changed and id may be
 * NULL. */
int dcem_store_change_alert(dcem_store *st, const dcem_store_alert *a, int *changed, int64_t *id);

/* Alerts of site (NULL: every site) with from_ms <= t_ms < to_ms, ordered by
 * (t_ms, id); strings valid during the callback. */
typedef int (*dcem_store_alert_fn)(void *ctx, const dcem_store_alert *a);
int dcem_store_alerts(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                      dcem_store_alert_fn fn, void *ctx);

/* One page of the alerts of site with from_ms <= t_ms < to_ms, NEWEST
 * first — ordered by (t_ms, id) descending — starting after the alert
 * (before_t_ms, before_id) of the previous page (INT64_MAX, INT64_MAX for
 * the first page): at most limit (1..100000) calls of fn. fn as in
 * dcem_store_alerts. */
int dcem_store_alerts_page(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                           int64_t before_t_ms, int64_t before_id, long limit,
                           dcem_store_alert_fn fn, void *ctx);

/* ---- health ------------------------------------------------------------------------------- */

/* Since open; counts of a write call inside an explicit transaction join at
 * its commit. */
typedef struct dcem_store_stat {
    uint64_t batches;            /* stored */
    uint64_t duplicates;         /* put_batch / put_quarantine that found the batch stored */
    uint64_t duplicate_mismatch; /* of those, the stored row has another reading count */
    uint64_t quarantined;
    uint64_t readings;           /* inserted */
    uint64_t readings_replayed;  /* already stored from another batch: kept as they were */
    uint64_t intervals;          /* inserted */
    uint64_t interval_revisions; /* replaced */
    uint64_t intervals_deleted;  /* by dcem_store_delete_intervals */
    uint64_t pruned_readings, pruned_batches;
    uint64_t failed; /* write calls that failed and were undone */
} dcem_store_stat;

void dcem_store_stats(const dcem_store *st, dcem_store_stat *out);

#endif
