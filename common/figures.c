#include "figures.h"

#include <math.h>
#include <string.h>

int dcem_role_in_figures(int role)
{
    return role == DCEM_ROLE_FACILITY || role == DCEM_ROLE_IT || role == DCEM_ROLE_GREEN_ONSITE ||
           role == DCEM_ROLE_COMPUTE;
}

void dcem_figures_derive(dcem_figures *f)
{
    f->total_kwh = f->role_kwh[DCEM_ROLE_FACILITY] + f->role_kwh[DCEM_ROLE_GREEN_ONSITE];
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

double dcem_meter_completeness(const dcem_meter_period *m)
{
    if (m->expected_ms <= 0) return 0;
    double c = (double)m->measured_ms / (double)m->expected_ms;
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
    f->role_kwh[role] += m->kwh;
    if (!dcem_role_in_figures(role)) return;
    f->estimated_kwh += m->estimated_kwh;
    f->integrated_kwh += m->integrated_kwh;
    f->estimated_intervals += m->estimated_intervals;
    f->integrated_intervals += m->integrated_intervals;
    f->discarded_readings += m->discarded_readings;
    f->rollovers += m->rollovers;
    f->resets += m->resets;
    double c = dcem_meter_completeness(m);
    if (c < f->completeness) f->completeness = c;
}
