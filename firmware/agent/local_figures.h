/* local_figures.h — the agent's own figures for the site it sees: interval
 * energy by meter role, PUE and green share, computed with common/ (the
 * same counter rules and interval split as the collector and dcem-audit) so
 * that a one-gateway site sees its figures even without a collector. They
 * are indicative: compliance figures come from the collector. Needs the
 * site ledger (roles, rated power, time zone, interval length). */
#ifndef DCEM_LOCAL_FIGURES_H
#define DCEM_LOCAL_FIGURES_H

#include "agent_config.h"
#include "wire.h"

typedef struct dcem_local dcem_local;

/* For the devices of c; c must have a ledger and outlive the result. NULL
 * with err set when the ledger's time zone cannot be loaded. */
dcem_local *dcem_local_new(const dcem_agent_config *c, char *err, size_t errlen);
void dcem_local_free(dcem_local *l);

/* Feeds one reading (those with a kwh counter, or kw for power meters). */
void dcem_local_add(dcem_local *l, const dcem_wire_reading *r);

/* When an interval ended at least grace_ms before now_ms, fills *m with its
 * figures, forgets it and returns 1; else 0. Call until it returns 0. */
int dcem_local_take(dcem_local *l, int64_t now_ms, int64_t grace_ms, dcem_wire_metrics *m);

#endif
