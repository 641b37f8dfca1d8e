#include "period.h"

#include <string.h>

/* Total facility energy (facility + green_onsite) over local days [d0, d1). */
static int64_t total_days(const dcem_site *site, dcem_meter_days_fn days, void *ctx, int64_t d0,
                         int64_t d1)
{
    int64_t sum = 0;
    for (size_t i = 0; i < site->n_meters; i++) {
        int role = site->meters[i].role;
        if (role != DCEM_ROLE_FACILITY && role != DCEM_ROLE_GREEN_ONSITE) continue;
        dcem_meter_period p;
        memset(&p, 0, sizeof p);
        days(ctx, i, d0, d1, &p);
        sum += p.ukwh;
    }
    return sum;
}

long dcem_expected_intervals(const dcem_site *site, int64_t start_ms, int64_t as_of_ms)
{
    int64_t len = site->interval_minutes * 60000LL;
    return as_of_ms > start_ms ? (long)((as_of_ms - start_ms + len - 1) / len) : 0;
}

void dcem_period_figures(const dcem_site *site, const dcem_policy *policy, dcem_zone *z,
                         dcem_meter_days_fn days, void *ctx, int kind, long long first_month,
                         int n_months, int64_t as_of_ms, dcem_figures *f, dcem_verdicts *v,
                         dcem_meter_period *meters)
{
    long long year = dcem_floordiv(first_month, 12);
    int64_t start = dcem_zone_month_start(z, first_month);
    int64_t end = dcem_zone_month_start(z, first_month + n_months);
    dcem_figures_init(f, kind, year, start, end, as_of_ms < start ? start : as_of_ms);
    int64_t d0 = dcem_zone_day(z, start), d1 = dcem_zone_day(z, f->as_of_ms);
    long expected = dcem_expected_intervals(site, start, f->as_of_ms);

    for (size_t i = 0; i < site->n_meters; i++) {
        dcem_meter_period p;
        memset(&p, 0, sizeof p);
        days(ctx, i, d0, d1, &p);
        p.expected_intervals = expected;
        if (meters) meters[i] = p;
        dcem_figures_add_meter(f, site->meters[i].role, &p);
    }
    f->green_ledger_kwh = dcem_site_green_kwh(site, z, start, f->as_of_ms);

    /* the cap is annual: year to date at as_of, projected from the trailing
     * window (kept inside the year) */
    int64_t yd0 = dcem_zone_day(z, dcem_zone_month_start(z, year * 12));
    int64_t td0 = d1 - policy->cap.projection_days;
    if (td0 < yd0) td0 = yd0;
    f->year_end_ms = dcem_zone_month_start(z, (year + 1) * 12);
    f->ytd_total_kwh = dcem_ukwh_kwh(total_days(site, days, ctx, yd0, d1));
    f->trailing_total_kwh = dcem_ukwh_kwh(total_days(site, days, ctx, td0, d1));
    f->trailing_ms = dcem_zone_day_start(z, d1) - dcem_zone_day_start(z, td0);

    dcem_figures_derive(f);
    dcem_policy_evaluate(policy, site, f, v);
}
