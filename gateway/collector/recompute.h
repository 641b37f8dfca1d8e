/* recompute.h — the collector's figures thread: its own store handle (a
 * handle is one connection, not shared between threads) and its own engine,
 * recomputing every recompute_ms the figures of the (site, day) the ingest
 * thread marked (marks.h), off the thread that acknowledges batches. Its
 * verdict alerts are queued for the ingest thread to publish. */
#ifndef DCEM_RECOMPUTE_H
#define DCEM_RECOMPUTE_H

#include "engine.h"
#include "marks.h"

#define DCEM_RECOMPUTE_ALERTS 256 /* alerts waiting to be published; beyond, stored only */

typedef struct dcem_recompute dcem_recompute;

/* Opens cfg's store again and starts the thread over marks (both must
 * outlive it). sink (may be NULL) gets the dcem_figures lines, on the
 * thread. Returns 0 with *out; the store's error (detail in err); or
 * DCEM_ENOMEM. */
int dcem_recompute_start(const dcem_collector_config *cfg, dcem_marks *marks,
                         dcem_engine_line_fn sink, void *sink_ctx, dcem_recompute **out,
                         char *err, size_t errlen);

/* Hands the queued alerts to fn on the caller's thread, oldest first, and
 * forgets them. Returns how many. */
size_t dcem_recompute_alerts(dcem_recompute *r, dcem_engine_alert_fn fn, void *ctx);

/* Periods computed so far, alerts not published because the queue was
 * full (stored all the same), and how long data waited from its commit to
 * its stored figures: in the last pass that computed, and at most since
 * start (the engine's figures_lag_ms, figures_lag_max_ms). */
void dcem_recompute_counts(dcem_recompute *r, uint64_t *periods, uint64_t *unpublished,
                           int64_t *lag_ms, int64_t *lag_max_ms);

/* One last pass over what is marked (its transaction finishes), then the
 * thread ends; the store handle is closed. Queued alerts are kept for
 * dcem_recompute_alerts until dcem_recompute_free. */
void dcem_recompute_stop(dcem_recompute *r);
void dcem_recompute_free(dcem_recompute *r); /* stops it first if needed; NULL accepted */

#endif
