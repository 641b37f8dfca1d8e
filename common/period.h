/* period.h — the figures and verdicts of a site over calendar months or a
 * year, from per-meter sums over local days. One computation for every
 * caller: dcem-audit sums its in-memory day buckets, the collector its
 * stored day rollups, so both give the same figures from the same readings.
 * Pure: the sums come through a callback. */
#ifndef DCEM_PERIOD_H
#define DCEM_PERIOD_H

#include "calendar.h"
#include "figures.h"
#include "policy.h"
#include "site.h"

/* Sums of site->meters[meter] over local days [d0, d1) into *out (zeroed by
 * the caller's callback; expected_intervals is set by dcem_period_figures). */
typedef void (*dcem_meter_days_fn)(void *ctx, size_t meter, int64_t d0, int64_t d1,
                                   dcem_meter_period *out);

/* Readings a meter of site is expected to send in [start_ms, as_of_ms): one
 * per interval of the site, a partial interval counting as one
 * (completeness, docs/figures.md). */
long dcem_expected_intervals(const dcem_site *site, int64_t start_ms, int64_t as_of_ms);

/* Figures, verdicts and per-meter sums of months [first_month, first_month
 * + n_months) (month = year*12 + month-1, local calendar); kind is
 * DCEM_PERIOD_MONTH or DCEM_PERIOD_YEAR. Data counts before as_of_ms, a
 * local midnight (later than the period's end: the whole period). The cap
 * figures are the calendar year's to date at as_of, projected from the
 * policy's trailing days (kept inside the year). meters, when not NULL,
 * receives site->n_meters entries. */
void dcem_period_figures(const dcem_site *site, const dcem_policy *policy, dcem_zone *zone,
                         dcem_meter_days_fn days, void *ctx, int kind, long long first_month,
                         int n_months, int64_t as_of_ms, dcem_figures *f, dcem_verdicts *v,
                         dcem_meter_period *meters);

#endif
