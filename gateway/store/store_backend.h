/* store_backend.h — what a storage backend implements (libmodbus's
 * modbus_backend_t pattern): a table of functions over an opaque connection.
 * store.c checks every argument and keeps the statistics, then dispatches;
 * a backend receives only valid ids, ranges and pointers. Private to
 * gateway/store: callers use store.h. */
#ifndef DCEM_STORE_BACKEND_H
#define DCEM_STORE_BACKEND_H

#include "store.h"

/* Each function gets the handle; its connection is st->impl. Return codes,
 * transactions and callbacks as documented in store.h. Write functions add
 * what they did to st->call (zeroed by store.c before the call, merged into
 * the statistics when the call — or the explicit transaction — commits) and
 * must leave nothing behind when they fail. Detail of a failure goes through
 * dcem_store_set_error. */
typedef struct dcem_store_backend {
    const char *name;

    /* Connects to target, applies the schema migrations up to
     * st->opts.schema_version (0: all), sets st->impl and st->schema_version.
     * On failure st->impl is left NULL (or close must cope with it). */
    int (*open)(dcem_store *st, const char *target);
    void (*close)(dcem_store *st);

    int (*begin)(dcem_store *st);
    /* a read-only transaction on one snapshot; ended by rollback */
    int (*begin_read)(dcem_store *st);
    int (*commit)(dcem_store *st);
    int (*rollback)(dcem_store *st);

    /* fresh never NULL, zeroed, b->n_readings entries */
    int (*put_batch)(dcem_store *st, const dcem_wire_batch *b, int64_t received_ms, int *duplicate,
                     unsigned char *fresh);
    int (*put_quarantine)(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                          uint64_t seq, int64_t received_ms, const char *reason,
                          const void *payload, size_t len, int *duplicate);
    int (*put_proof)(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                     uint64_t seq, const char *key, const void *payload, size_t len);
    int (*get_proof)(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                     uint64_t seq, char *key, size_t keylen, void **payload, size_t *len);
    int (*proofs)(dcem_store *st, const char *site, dcem_store_proof_fn fn, void *ctx);
    /* io->site, io->gateway and io->epoch are set; the rest is filled in */
    int (*gateway_seq)(dcem_store *st, dcem_store_epoch *io);
    int (*skip_to)(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                   uint64_t seq);
    int (*epochs)(dcem_store *st, dcem_store_epoch_fn fn, void *ctx);
    int (*export_readings)(dcem_store *st, const char *site, const char *meter, int64_t from_ms,
                           int64_t to_ms, dcem_store_reading_fn fn, void *ctx);
    /* cutoff_ms already computed from retention_days; chunk >= 1 */
    int (*prune)(dcem_store *st, int64_t cutoff_ms, size_t chunk, size_t *deleted);

    /* rows checked by store.c; 1 <= n <= DCEM_STORE_MAX_INTERVAL_ROWS */
    int (*put_intervals)(dcem_store *st, const char *site, const dcem_store_interval_row *rows,
                         size_t n);
    int (*get_interval)(dcem_store *st, const char *site, const char *meter, int64_t start_ms,
                        dcem_interval *iv);
    int (*intervals)(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                     dcem_store_interval_fn fn, void *ctx);
    int (*get_rollup)(dcem_store *st, const char *site, const char *meter, int kind, int64_t key,
                      dcem_store_rollup *out);
    int (*rollups)(dcem_store *st, const char *site, int kind, int64_t from_key, int64_t to_key,
                   dcem_store_rollup_fn fn, void *ctx);
    int (*delete_intervals)(dcem_store *st, const char *site, const char *meter, int64_t from_ms);

    /* blob not NULL (a zero-length one when len is 0); len <= DCEM_STORE_MAX_STATE */
    int (*put_meter_state)(dcem_store *st, const char *site, const char *meter, const void *blob,
                           size_t len, int stale, int64_t updated_ms);
    /* rows checked by store.c (1 <= n <= DCEM_STORE_MAX_STATE_ROWS, meters distinct);
     * NULL: store.c calls put_meter_state for each */
    int (*put_meter_states)(dcem_store *st, const char *site,
                            const dcem_store_meter_state_row *rows, size_t n);
    /* no pointer NULL */
    int (*get_meter_state)(dcem_store *st, const char *site, const char *meter, void *buf,
                           size_t cap, size_t *len, int *stale, int64_t *updated_ms);
    /* meters checked by store.c (1 <= n <= DCEM_STORE_MAX_STATE_ROWS, distinct); NULL:
     * store.c calls get_meter_state for each (known always 1) */
    int (*get_meter_states)(dcem_store *st, const char *site, const char *const *meters,
                            size_t n, dcem_store_state_fn fn, void *ctx);
    int (*put_checkpoint)(dcem_store *st, const char *site, const char *meter, int64_t t_ms,
                          const void *blob, size_t len);
    int (*get_checkpoint)(dcem_store *st, const char *site, const char *meter, int64_t before_ms,
                          int64_t *t_ms, void *buf, size_t cap, size_t *len);
    int (*drop_checkpoints)(dcem_store *st, const char *site, const char *meter, int64_t from_ms);

    int (*put_figures)(dcem_store *st, const char *site, int kind, int64_t period_key,
                       const char *json, size_t len, int64_t computed_ms);
    int (*get_figures)(dcem_store *st, const char *site, int kind, int64_t period_key, char **json,
                       int64_t *computed_ms);
    int (*figures)(dcem_store *st, const char *site, int kind, int64_t from_key, int64_t to_key,
                   dcem_store_figures_fn fn, void *ctx);
    /* a->subject never NULL */
    int (*add_alert)(dcem_store *st, const dcem_store_alert *a, int64_t *id);
    /* changed and id never NULL; a->subject never NULL */
    int (*change_alert)(dcem_store *st, const dcem_store_alert *a, int *changed, int64_t *id);
    int (*alerts)(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                  dcem_store_alert_fn fn, void *ctx);

    /* read functions for the HTTP API */
    int (*last_reading_ms)(dcem_store *st, const char *site, int64_t *t_ms);
    int (*latest_readings)(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                           dcem_store_reading_fn fn, void *ctx);
    int (*alerts_page)(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                       int64_t before_t_ms, int64_t before_id, long limit,
                       dcem_store_alert_fn fn, void *ctx);
} dcem_store_backend;

struct dcem_store {
    const dcem_store_backend *be;
    void *impl;           /* the backend's connection */
    dcem_store_opts opts; /* defaults applied */
    int schema_version;
    int in_tx;               /* TX_*: between dcem_store_begin(_read) and commit / rollback */
    int doomed;              /* a write call failed inside the open transaction */
    dcem_store_stat stats;   /* committed */
    dcem_store_stat pending; /* done inside the open explicit transaction */
    dcem_store_stat call;    /* done by the current write call */
    char err[512];
};

enum { TX_NONE = 0, TX_WRITE = 1, TX_READ = 2 };

/* Formats the detail of a failure into st->err. */
void dcem_store_set_error(dcem_store *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The backends built in. */
extern const dcem_store_backend dcem_store_sqlite_backend;
extern const dcem_store_backend dcem_store_pg_backend;

#endif
