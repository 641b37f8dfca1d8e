#include "figures.h"

#include <math.h>
#include <string.h>

int dcem_role_in_figures(int role)
{
    return role == DCEM_ROLE_FACILITY || role == DCEM_ROLE_IT || role == DCEM_ROLE_GREEN_ONSITE ||
           role == DCEM_ROLE_COMPUTE;
}

int dcem_span_of_kind(int kind)
{
    switch (kind) {
    case DCEM_PERIOD_DAY: return DCEM_SPAN_DAY;
    case DCEM_PERIOD_MONTH: return DCEM_SPAN_MONTH;
    case DCEM_PERIOD_YEAR: return DCEM_SPAN_YEAR;
    }
    return DCEM_SPAN_INTERVAL;
}

int64_t dcem_kwh_ukwh(double kwh)
{
    return (int64_t)llround(kwh * 1e6);
}

void dcem_figures_derive(dcem_figures *f)
{
    for (int r = 0; r < DCEM_ROLE_COUNT; r++) f->role_kwh[r] = dcem_ukwh_kwh(f->role_ukwh[r]);
    f->estimated_kwh = dcem_ukwh_kwh(f->estimated_ukwh);
    f->integrated_kwh = dcem_ukwh_kwh(f->integrated_ukwh);
    f->total_kwh =
        dcem_ukwh_kwh(f->role_ukwh[DCEM_ROLE_FACILITY] + f->role_ukwh[DCEM_ROLE_GREEN_ONSITE]);
    f->it_kwh = f->role_kwh[DCEM_ROLE_IT];
    f->compute_kwh = f->role_kwh[DCEM_ROLE_COMPUTE];
    f->green_kwh = f->role_kwh[DCEM_ROLE_GREEN_ONSITE] + f->green_ledger_kwh;
    f->pue = f->it_kwh > 0 ? f->total_kwh / f->it_kwh : NAN;
    if (f->total_kwh > 0) {
        /* green energy beyond consumption is not counted (ISO/IEC 30134-3:
         * REF <= 1) */
        f->green_share = f->green_kwh >= f->total_kwh ? 1.0 : f->green_kwh / f->total_kwh;
        f->compute_share = f->compute_kwh / f->total_kwh;
    } else {
        f->green_share = NAN;
        f->compute_share = NAN;
    }
}

void dcem_meter_period_add(dcem_meter_period *p, const dcem_meter_period *q)
{
    p->ukwh += q->ukwh;
    for (int k = 0; k < DCEM_SPAN_COUNT; k++) p->estimated_ukwh[k] += q->estimated_ukwh[k];
    p->integrated_ukwh += q->integrated_ukwh;
    p->read_intervals += q->read_intervals;
    p->expected_intervals += q->expected_intervals;
    p->estimated_intervals += q->estimated_intervals;
    p->integrated_intervals += q->integrated_intervals;
    p->discarded_readings += q->discarded_readings;
    p->rollovers += q->rollovers;
    p->resets += q->resets;
}

double dcem_meter_completeness(const dcem_meter_period *m)
{
    if (m->expected_intervals <= 0) return 0;
    double c = (double)m->read_intervals / (double)m->expected_intervals;
    return c > 1 ? 1 : c;
}

void dcem_figures_init(dcem_figures *f, int kind, long long year, int64_t start_ms,
                       int64_t end_ms, int64_t as_of_ms)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->year = year;
    f->start_ms = start_ms;
    f->end_ms = end_ms;
    f->as_of_ms = as_of_ms < end_ms ? as_of_ms : end_ms;
    f->completeness = 1;
}

void dcem_figures_add_meter(dcem_figures *f, int role, const dcem_meter_period *m)
{
    f->role_ukwh[role] += m->ukwh;
    if (!dcem_role_in_figures(role)) return;
    f->estimated_ukwh += m->estimated_ukwh[dcem_span_of_kind(f->kind)];
    f->integrated_ukwh += m->integrated_ukwh;
    f->estimated_intervals += m->estimated_intervals;
    f->integrated_intervals += m->integrated_intervals;
    f->discarded_readings += m->discarded_readings;
    f->rollovers += m->rollovers;
    f->resets += m->resets;
    double c = dcem_meter_completeness(m);
    if (c < f->completeness) f->completeness = c;
}
