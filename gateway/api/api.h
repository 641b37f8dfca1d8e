/* api.h — the collector's HTTP API server (docs/api.md): libmicrohttpd with
 * its own pool of threads, so requests never hold up the ingest loop and a
 * slow client holds up no other (api.c, "Threads"). What a
 * request reads is a "view": the configuration, the API's OWN store handle
 * (a second connection to the same SQLite file: WAL readers never block the
 * writer, and a handle is one thread's) and its own read-only engine. The
 * ingest loop hands over its health counters as a snapshot under a mutex;
 * a reload swaps the view (and rebinds the listener when it moved). */
#ifndef DCEM_API_H
#define DCEM_API_H

#include "collector_config.h"
#include "engine.h"
#include "influx.h"

#include <stddef.h>
#include <stdint.h>

typedef struct dcem_api dcem_api;
typedef struct dcem_api_view dcem_api_view;

/* (source, reason) pairs: the collector's sources are bounded (inbox.h) */
#define DCEM_API_MAX_REFUSALS 1024

/* Refused payloads of one gateway for one reason (docs/wire-format.md). */
typedef struct dcem_api_refusal {
    char gateway[2 * DCEM_ID_MAX]; /* "site/gateway", or "?" */
    char reason[48];               /* a wire-format reason name, or "unknown_site" */
    uint64_t count;
} dcem_api_refusal;

/* The collector's health as its log line states it, for /metrics and
 * /healthz. */
typedef struct dcem_api_health {
    dcem_engine_stats engine;
    int have_influx;
    dcem_influx_stats influx;
    int mqtt_connected;
    int store_ok; /* 0 while store writes fail */
    int64_t uptime_s;
    uint64_t resend_requests; /* sent for holes (docs/collector.md) */
    uint64_t held_tries;      /* batches held for their predecessor, tried again */
    size_t held;              /* batches held now */
    dcem_api_refusal refusals[DCEM_API_MAX_REFUSALS];
    size_t n_refusals;
} dcem_api_health;

/* A view of cfg: opens a new store handle on cfg's store and an engine over
 * it. cfg must outlive the view. Returns 0, or a dcem error with detail in
 * err; *out is freed with dcem_api_view_free (NULL accepted). */
int dcem_api_view_open(const dcem_collector_config *cfg, dcem_api_view **out, char *err,
                       size_t errlen);
void dcem_api_view_free(dcem_api_view *v);

/* Starts the API of view's cfg->api (whose line must be non-zero): binds
 * the listener and starts its thread. Takes v (freed on failure too).
 * Returns 0, or DCEM_ECONFIG / DCEM_ESTORAGE with detail in err (e.g. the
 * address is in use). */
int dcem_api_start(dcem_api_view *v, dcem_api **out, char *err, size_t errlen);

/* Swaps in a new view (waits for a request in progress, then frees the old
 * view). Takes v. The listener stays as it is: see dcem_api_same_listener. */
void dcem_api_repoint(dcem_api *a, dcem_api_view *v);

/* 1 when b can be served by the listener started for a (same address, same
 * limits, timeout and threads); otherwise the API is restarted. */
int dcem_api_same_listener(const dcem_collector_api *a, const dcem_collector_api *b);

/* Restarts the listener with the current view's settings, in place (on the
 * same address: the old one is closed first). 0, or an error in err: the
 * API then serves nothing until the next successful restart. */
int dcem_api_restart(dcem_api *a, char *err, size_t errlen);

/* Stops the listener (waiting for a request in progress) and frees
 * everything. NULL accepted. */
void dcem_api_stop(dcem_api *a);

/* The ingest loop's health snapshot, copied under the API's lock. */
void dcem_api_set_health(dcem_api *a, const dcem_api_health *h);

#endif
