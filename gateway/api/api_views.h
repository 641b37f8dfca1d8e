/* api_views.h — what each JSON endpoint of the collector's HTTP API answers
 * (docs/api.md), built from the configuration's ledgers, the store and a
 * read-only engine: figures through common/period (as dcem-audit) and
 * common/figures, never a formula of their own. No HTTP here, and no clock:
 * the request's time comes in `now_ms`, so the views are testable alone. */
#ifndef DCEM_API_VIEWS_H
#define DCEM_API_VIEWS_H

#include "api_auth.h"
#include "api_query.h"
#include "collector_config.h"
#include "engine.h"
#include "store.h"

#include <cJSON.h>

/* What a view reads. The store handle and the engine belong to the API's
 * thread (one handle per thread, store.h); the engine was made with cfg and
 * st and is used only for read-only computations. */
typedef struct dcem_api_ctx {
    const dcem_collector_config *cfg;
    dcem_store *st;
    dcem_engine *engine;
    int64_t now_ms; /* UTC wall clock of the request */
} dcem_api_ctx;

/* Every view returns 200 with *out a new JSON object the caller frees with
 * cJSON_Delete, or another HTTP status with e->why (and, for 400, e->param)
 * saying what went wrong: 400 bad parameter, 500 the store failed or memory
 * ran out. Site views take a site the caller has found and may read. */

int dcem_api_view_sites(const dcem_api_ctx *c, int role, const dcem_api_token *t, cJSON **out,
                        dcem_api_error *e);
int dcem_api_view_site(const dcem_api_ctx *c, const dcem_collector_site *s, cJSON **out,
                       dcem_api_error *e);
int dcem_api_view_figures(const dcem_api_ctx *c, const dcem_collector_site *s,
                          const dcem_api_query *q, cJSON **out, dcem_api_error *e);
int dcem_api_view_verdicts(const dcem_api_ctx *c, const dcem_collector_site *s,
                           const dcem_api_query *q, cJSON **out, dcem_api_error *e);
int dcem_api_view_alerts(const dcem_api_ctx *c, const dcem_collector_site *s,
                         const dcem_api_query *q, cJSON **out, dcem_api_error *e);
int dcem_api_view_meters(const dcem_api_ctx *c, const dcem_collector_site *s,
                         const dcem_api_query *q, cJSON **out, dcem_api_error *e);
int dcem_api_view_power(const dcem_api_ctx *c, const dcem_collector_site *s,
                        const dcem_api_query *q, cJSON **out, dcem_api_error *e);
int dcem_api_view_compliant(const dcem_api_ctx *c, const dcem_api_query *q, cJSON **out,
                            dcem_api_error *e);

/* The UTC instant a from / to parameter names in site s's zone (a date: its
 * local midnight). */
int64_t dcem_api_instant(const dcem_collector_site *s, const dcem_api_when *w);

/* How far back the meters view looks for each meter's last reading. */
#define DCEM_API_LOOKBACK_MS (7 * 86400000LL)
/* How far back the power view looks for a meter's latest value. */
#define DCEM_API_POWER_WINDOW_MS (2 * 3600000LL)

#endif
