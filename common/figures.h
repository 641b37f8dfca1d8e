/* figures.h — the figures of one site over one period, from metered energy
 * per role: total facility energy, IT, green, compute, PUE, green share,
 * compute share, with the data-quality counts behind them. The sums are
 * filled by the caller (dcem_audit, the collector's rollups); derive()
 * computes the ratios, the same way for every caller. Pure. */
#ifndef DCEM_FIGURES_H
#define DCEM_FIGURES_H

#include "site.h"

#include <stdint.h>

/* The spans estimated energy is counted for (split.h): a period's estimated
 * energy is the sum over its intervals at the period's own span. */
enum { DCEM_SPAN_INTERVAL = 0, DCEM_SPAN_DAY, DCEM_SPAN_MONTH, DCEM_SPAN_YEAR, DCEM_SPAN_COUNT };

/* The span of a period kind (dcem_period_kind): an hour counts as its intervals. */
int dcem_span_of_kind(int kind);

/* Energy sums are whole micro-kWh (int64_t, "ukwh"); as kWh for printing
 * and ratios only. */
static inline double dcem_ukwh_kwh(int64_t ukwh)
{
    return (double)ukwh / 1e6;
}

/* kWh rounded to the nearest micro-kWh (|kwh| must be below 9e12). */
int64_t dcem_kwh_ukwh(double kwh);

typedef enum dcem_period_kind {
    DCEM_PERIOD_INTERVAL = 0,
    DCEM_PERIOD_HOUR,
    DCEM_PERIOD_DAY,
    DCEM_PERIOD_MONTH,
    DCEM_PERIOD_YEAR,
} dcem_period_kind;

typedef struct dcem_figures {
    int kind;                 /* dcem_period_kind */
    long long year;           /* calendar year of the period (local) */
    int64_t start_ms, end_ms; /* [start, end) in UTC */
    int64_t as_of_ms;         /* data counted up to here; < end: provisional */

    /* inputs: whole micro-kWh, summed exactly */
    int64_t role_ukwh[DCEM_ROLE_COUNT]; /* metered energy per meter role */
    int64_t estimated_ukwh;   /* estimated part of the energy in the figures, at the period's span */
    int64_t integrated_ukwh;  /* part from power integration */
    double green_ledger_kwh;  /* green contracts and certificates of the period */
    double completeness;      /* site: lowest of the meters in the figures */
    long estimated_intervals, integrated_intervals, discarded_readings, rollovers, resets;
    double ytd_total_kwh;     /* total from 1 January to as_of, for the cap */
    double trailing_total_kwh;/* total over the trailing window ending at as_of */
    int64_t trailing_ms;      /* length of that window */
    int64_t year_end_ms;      /* end of the calendar year of the period */

    /* derived by dcem_figures_derive */
    double role_kwh[DCEM_ROLE_COUNT]; /* role_ukwh in kWh */
    double estimated_kwh, integrated_kwh;
    double total_kwh;     /* facility + green_onsite */
    double it_kwh;
    double green_kwh;     /* green_onsite + ledger */
    double compute_kwh;
    double pue;           /* total / IT; NAN when IT is 0 */
    double green_share;   /* green / total, at most 1; NAN when total is 0 */
    double compute_share; /* compute / total; NAN when total is 0 */
} dcem_figures;

/* One meter's sums over a period (from its intervals or day rollups). */
typedef struct dcem_meter_period {
    int64_t ukwh;                               /* micro-kWh */
    int64_t estimated_ukwh[DCEM_SPAN_COUNT];    /* estimated, as seen from each span */
    int64_t integrated_ukwh;
    long read_intervals;     /* intervals with at least one good reading */
    long expected_intervals; /* intervals of the period up to as_of (set by the caller) */
    long estimated_intervals, integrated_intervals, discarded_readings, rollovers, resets;
} dcem_meter_period;

/* Adds q's sums and counts to p's (expected_intervals included). */
void dcem_meter_period_add(dcem_meter_period *p, const dcem_meter_period *q);

/* Readings received / readings expected at the site's interval (the
 * national online-monitoring rule, docs/figures.md): read_intervals /
 * expected_intervals, in [0, 1]; 0 for an empty period. */
double dcem_meter_completeness(const dcem_meter_period *m);

/* Starts a period's figures: zero sums, completeness 1 (lowered by each
 * meter added), the period's bounds and the time data is counted to. */
void dcem_figures_init(dcem_figures *f, int kind, long long year, int64_t start_ms,
                       int64_t end_ms, int64_t as_of_ms);

/* Adds one meter of the given role: its energy to the role, its counts, and
 * its completeness to the site's (the lowest of the meters in the figures). */
void dcem_figures_add_meter(dcem_figures *f, int role, const dcem_meter_period *m);

/* Roles whose meters enter the figures (and so the completeness). */
int dcem_role_in_figures(int role);

/* Computes the derived fields from the inputs. */
void dcem_figures_derive(dcem_figures *f);

#endif
