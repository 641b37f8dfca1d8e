/* period_json.h — the JSON document of a site's figures and verdicts for
 * one period (format dcem-audit/1, docs/audit.md): dcem-audit prints it and
 * the collector stores it, so an inspector can compare them field by field.
 * Numbers are fixed-point (kWh 3 decimals, ratios 6, CNY 2); null for NaN. */
#ifndef DCEM_PERIOD_JSON_H
#define DCEM_PERIOD_JSON_H

#include "calendar.h"
#include "figures.h"
#include "policy.h"
#include "site.h"

#include <cJSON.h>

/* A number with a fixed number of decimals, null when not finite, never "-0". */
cJSON *dcem_json_num(double v, int decimals);

/* An RFC 3339 string of t_ms in the zone's local time. */
cJSON *dcem_json_time(int64_t t_ms, dcem_zone *z);

/* "2025-01" for a month, "2025" for a year. */
void dcem_period_name(const dcem_figures *f, dcem_zone *z, char *b, size_t n);

/* Adds the members a dcem-audit/1 document opens with to doc: "format",
 * "site" (the ledger's identity, scope and caps) and "policy". */
void dcem_audit_doc_head(cJSON *doc, const dcem_site *site, const dcem_policy *pol);

/* The period object: figures, cap, surcharge, verdicts and, when mp is not
 * NULL, one entry per meter of the site. The caller owns the result. */
cJSON *dcem_period_json(const dcem_site *site, const dcem_policy *pol, const dcem_figures *f,
                        const dcem_verdicts *v, const dcem_meter_period *mp, dcem_zone *z);

#endif
