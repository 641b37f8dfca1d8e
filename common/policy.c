#include "policy.h"
#include "cfg.h"
#include "errors.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>

static const char *const step_modes[] = {"points", "relative", NULL};
static const char *const applies[] = {"all", "excess", NULL};

#define T(f) offsetof(dcem_tier, f)
static const dcem_cfg_field tier_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = T(line)},
    {.key = "over_limit_up_to", .type = DCEM_CFG_DOUBLE, .offset = T(over_limit_up_to),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = 1000, .def = NAN},
    {.key = "cny_per_kwh", .type = DCEM_CFG_DOUBLE, .offset = T(cny_per_kwh),
     .flags = DCEM_CFG_REQUIRED, .min = 0, .max = 100, .def = NAN},
    {0},
};
#undef T

#define P(f) offsetof(dcem_policy, f)
static const dcem_cfg_field scope_fields[] = {
    {.key = "racks_more_than", .type = DCEM_CFG_INT, .offset = 0, .flags = DCEM_CFG_REQUIRED,
     .min = 0, .max = 1e9, .def = NAN},
    {.key = "rack_power_kw_more_than", .type = DCEM_CFG_DOUBLE,
     .offset = offsetof(dcem_policy, scope.rack_power_kw_more_than) - P(scope),
     .flags = DCEM_CFG_REQUIRED, .min = 0, .max = 1e9, .def = NAN},
    {0},
};
static const dcem_cfg_field pue_fields[] = {
    {.key = "limit", .type = DCEM_CFG_DOUBLE, .offset = 0, .flags = DCEM_CFG_REQUIRED, .min = 1,
     .max = 10, .def = NAN},
    {0},
};
#define GR(f) (offsetof(dcem_policy, green.f) - P(green))
static const dcem_cfg_field green_fields[] = {
    {.key = "base_percent", .type = DCEM_CFG_DOUBLE, .offset = GR(base_percent),
     .flags = DCEM_CFG_REQUIRED, .min = 0, .max = 100, .def = NAN},
    {.key = "step_percent", .type = DCEM_CFG_DOUBLE, .offset = GR(step_percent), .min = 0,
     .max = 100, .def = 0},
    {.key = "step_mode", .type = DCEM_CFG_ENUM, .offset = GR(step_mode), .names = step_modes,
     .def = DCEM_STEP_POINTS},
    {.key = "base_year", .type = DCEM_CFG_INT, .offset = GR(base_year),
     .flags = DCEM_CFG_REQUIRED, .min = 1970, .max = 9999, .def = NAN},
    {.key = "max_percent", .type = DCEM_CFG_DOUBLE, .offset = GR(max_percent), .min = 0,
     .max = 100, .def = 100},
    {0},
};
#define PR(f) (offsetof(dcem_policy, pricing.f) - P(pricing))
static const dcem_cfg_field pricing_fields[] = {
    {.key = "applies_to", .type = DCEM_CFG_ENUM, .offset = PR(applies_to), .names = applies,
     .def = DCEM_APPLIES_ALL},
    {.key = "tiers", .type = DCEM_CFG_LIST, .offset = PR(tiers), .size = sizeof(dcem_tier),
     .flags = DCEM_CFG_REQUIRED, .min = 1, .max = DCEM_POLICY_MAX_TIERS, .sub = tier_fields,
     .count_offset = PR(n_tiers)},
    {0},
};
static int check_levels(const void *value, size_t count, char *why, size_t len)
{
    const double *w = value;
    for (size_t i = 0; i < count; i++)
        if (!(w[i] > 0 && w[i] <= 100) || (i > 0 && w[i] <= w[i - 1])) {
            snprintf(why, len, "levels must be ascending percentages in (0, 100]");
            return 1;
        }
    return 0;
}

#define CP(f) (offsetof(dcem_policy, cap.f) - P(cap))
static const dcem_cfg_field cap_fields[] = {
    {.key = "warning_percent", .type = DCEM_CFG_LIST, .offset = CP(warning_percent),
     .size = sizeof(double), .min = 0, .max = DCEM_POLICY_MAX_LEVELS, .item = DCEM_CFG_DOUBLE,
     .count_offset = CP(n_warning), .check = check_levels},
    {.key = "projection_days", .type = DCEM_CFG_INT, .offset = CP(projection_days), .min = 1,
     .max = 366, .def = 30},
    {0},
};
static const dcem_cfg_field conversion_fields[] = {
    {.key = "compute_share_min_percent", .type = DCEM_CFG_DOUBLE, .offset = 0, .min = 0,
     .max = 100, .def = 50},
    {0},
};
#define DQ(f) (offsetof(dcem_policy, data.f) - P(data))
static const dcem_cfg_field data_fields[] = {
    {.key = "completeness_min_percent", .type = DCEM_CFG_DOUBLE,
     .offset = DQ(completeness_min_percent), .min = 0, .max = 100, .def = 90},
    {.key = "glitch_margin", .type = DCEM_CFG_DOUBLE, .offset = DQ(glitch_margin), .min = 1,
     .max = 100, .def = 1.5},
    {.key = "gap_intervals", .type = DCEM_CFG_DOUBLE, .offset = DQ(gap_intervals), .min = 1,
     .max = 1000, .def = 1.5},
    {.key = "max_gap_days", .type = DCEM_CFG_INT, .offset = DQ(max_gap_days), .min = 1,
     .max = 366, .def = 92},
    {0},
};
static const dcem_cfg_field policy_fields[] = {
    {.key = "policy", .type = DCEM_CFG_STRING, .offset = P(policy), .size = 64,
     .flags = DCEM_CFG_REQUIRED},
    {.key = "name", .type = DCEM_CFG_STRING, .offset = P(name), .size = 192},
    {.key = "document", .type = DCEM_CFG_STRING, .offset = P(document), .size = 96},
    {.key = "scope", .type = DCEM_CFG_MAP, .offset = P(scope), .flags = DCEM_CFG_REQUIRED,
     .sub = scope_fields},
    {.key = "pue", .type = DCEM_CFG_MAP, .offset = P(pue), .flags = DCEM_CFG_REQUIRED,
     .sub = pue_fields},
    {.key = "green_share", .type = DCEM_CFG_MAP, .offset = P(green), .flags = DCEM_CFG_REQUIRED,
     .sub = green_fields},
    {.key = "differential_pricing", .type = DCEM_CFG_MAP, .offset = P(pricing),
     .flags = DCEM_CFG_REQUIRED, .sub = pricing_fields},
    {.key = "cap", .type = DCEM_CFG_MAP, .offset = P(cap), .sub = cap_fields},
    {.key = "conversion", .type = DCEM_CFG_MAP, .offset = P(conversion), .sub = conversion_fields},
    {.key = "data", .type = DCEM_CFG_MAP, .offset = P(data), .sub = data_fields},
    {0},
};
#undef P

int dcem_policy_parse(const char *name, const char *buf, size_t len, dcem_policy *out, char *err,
                      size_t errlen)
{
    int rc = dcem_cfg_parse(name, buf, len, policy_fields, out, err, errlen);
    if (rc) return rc;
    for (size_t i = 0; i < out->pricing.n_tiers; i++) {
        const dcem_tier *t = &out->pricing.tiers[i];
        int last = i + 1 == out->pricing.n_tiers;
        if (last != isnan(t->over_limit_up_to))
            return dcem_cfg_error(err, errlen, name, t->line,
                                  "differential_pricing.tiers.over_limit_up_to",
                                  last ? "the last tier must have no upper bound"
                                       : "only the last tier may omit its upper bound");
        if (i > 0 && !last && t->over_limit_up_to <= out->pricing.tiers[i - 1].over_limit_up_to)
            return dcem_cfg_error(err, errlen, name, t->line,
                                  "differential_pricing.tiers.over_limit_up_to",
                                  "tiers must be in ascending order");
    }
    return 0;
}

static const struct {
    const char *name, *clause;
} verdicts[DCEM_V_COUNT] = {
    [DCEM_V_IN_SCOPE] = {"in_scope", "scope"},
    [DCEM_V_OUT_OF_SCOPE] = {"out_of_scope", "scope"},
    [DCEM_V_INSUFFICIENT_DATA] = {"insufficient_data", "1"},
    [DCEM_V_PROVISIONAL] = {"provisional", "-"},
    [DCEM_V_PUE_BELOW_LIMIT] = {"pue_below_limit", "2"},
    [DCEM_V_PUE_ABOVE_LIMIT] = {"pue_above_limit", "5"},
    [DCEM_V_GREEN_SHARE_ABOVE_THRESHOLD] = {"green_share_above_threshold", "2"},
    [DCEM_V_REWARD_ELIGIBLE] = {"reward_eligible", "2"},
    [DCEM_V_DIFFERENTIAL_PRICING] = {"differential_pricing_candidate", "5"},
    [DCEM_V_CAP_WARNING] = {"cap_warning", "9"},
    [DCEM_V_CAP_PROJECTED] = {"cap_projected_to_exceed", "9"},
    [DCEM_V_CAP_EXCEEDED] = {"cap_exceeded", "9"},
    [DCEM_V_CONVERSION] = {"computing_center_conversion", "2"},
    [DCEM_V_GREEN_SHARE_BELOW_THRESHOLD] = {"green_share_below_threshold", "2"},
};

const char *dcem_verdict_name(int id)
{
    return id >= 0 && id < DCEM_V_COUNT ? verdicts[id].name : "unknown";
}

const char *dcem_verdict_clause(int id)
{
    return id >= 0 && id < DCEM_V_COUNT ? verdicts[id].clause : "";
}

int dcem_cmp(double a, double b)
{
    double tol = 1e-9 * fmax(fabs(a), fabs(b));
    if (a > b + tol) return 1;
    if (a < b - tol) return -1;
    return 0;
}

double dcem_policy_green_threshold(const dcem_policy *p, long long year)
{
    long long n = year > p->green.base_year ? year - p->green.base_year : 0;
    double pct = p->green.step_mode == DCEM_STEP_RELATIVE
                     ? p->green.base_percent * pow(1 + p->green.step_percent / 100, (double)n)
                     : p->green.base_percent + p->green.step_percent * (double)n;
    return fmin(pct, p->green.max_percent) / 100;
}

int dcem_policy_in_scope(const dcem_policy *p, const dcem_site *s)
{
    return s->racks > p->scope.racks_more_than ||
           s->rack_power_kw > p->scope.rack_power_kw_more_than;
}

static void evaluate_pricing(const dcem_policy *p, const dcem_figures *f, dcem_verdicts *v)
{
    double limit = p->pue.limit;
    double over = (f->pue - limit) / limit; /* 1.0: energy use twice the limit */
    const dcem_tier *tier = &p->pricing.tiers[p->pricing.n_tiers - 1];
    for (size_t i = 0; i + 1 < p->pricing.n_tiers; i++) {
        if (dcem_cmp(over, p->pricing.tiers[i].over_limit_up_to) <= 0) {
            tier = &p->pricing.tiers[i];
            break;
        }
    }
    v->surcharge_kwh = p->pricing.applies_to == DCEM_APPLIES_EXCESS
                           ? f->total_kwh - limit * f->it_kwh
                           : f->total_kwh;
    v->surcharge_cny_per_kwh = tier->cny_per_kwh;
    v->surcharge_cny = v->surcharge_kwh * tier->cny_per_kwh;
}

/* Cap verdicts rest on energy already metered, a lower bound of the true
 * use, so they stand even when data is incomplete. */
static void evaluate_cap(const dcem_policy *p, const dcem_site *s, const dcem_figures *f,
                         dcem_verdicts *v)
{
    double cap = s->approved_annual_kwh;
    v->cap_kwh = cap;
    if (isnan(cap)) return;
    v->cap_usage = f->ytd_total_kwh / cap;
    double rate = f->trailing_ms > 0 ? f->trailing_total_kwh / (double)f->trailing_ms : 0;
    int64_t left = f->year_end_ms > f->as_of_ms ? f->year_end_ms - f->as_of_ms : 0;
    v->cap_projected_kwh = f->ytd_total_kwh + rate * (double)left;
    if (dcem_cmp(f->ytd_total_kwh, cap) > 0) {
        v->bits |= 1u << DCEM_V_CAP_EXCEEDED;
        return;
    }
    for (size_t i = 0; i < p->cap.n_warning; i++)
        if (dcem_cmp(v->cap_usage * 100, p->cap.warning_percent[i]) >= 0)
            v->cap_warning_percent = p->cap.warning_percent[i];
    if (v->cap_warning_percent > 0) v->bits |= 1u << DCEM_V_CAP_WARNING;
    if (dcem_cmp(v->cap_projected_kwh, cap) > 0) v->bits |= 1u << DCEM_V_CAP_PROJECTED;
}

void dcem_policy_evaluate(const dcem_policy *p, const dcem_site *s, const dcem_figures *f,
                          dcem_verdicts *v)
{
    *v = (dcem_verdicts){.green_threshold = dcem_policy_green_threshold(p, f->year),
                         .cap_kwh = NAN,
                         .cap_usage = NAN,
                         .cap_projected_kwh = NAN};
    if (f->as_of_ms < f->end_ms) v->bits |= 1u << DCEM_V_PROVISIONAL;
    if (!dcem_policy_in_scope(p, s)) {
        v->bits |= 1u << DCEM_V_OUT_OF_SCOPE;
        return;
    }
    v->bits |= 1u << DCEM_V_IN_SCOPE;
    evaluate_cap(p, s, f, v);

    /* no pass, and no charge, is ever given on missing data, nor on a PUE
     * below 1, which says the facility meters miss part of the load */
    if (isnan(f->pue) || f->pue < 1 ||
        dcem_cmp(f->completeness * 100, p->data.completeness_min_percent) < 0) {
        v->bits |= 1u << DCEM_V_INSUFFICIENT_DATA;
        return;
    }
    int pue_cmp = dcem_cmp(f->pue, p->pue.limit);
    if (pue_cmp < 0) v->bits |= 1u << DCEM_V_PUE_BELOW_LIMIT;
    if (pue_cmp > 0) {
        v->bits |= 1u << DCEM_V_PUE_ABOVE_LIMIT | 1u << DCEM_V_DIFFERENTIAL_PRICING;
        evaluate_pricing(p, f, v);
    }
    int green_ok = !isnan(f->green_share) && dcem_cmp(f->green_share, v->green_threshold) > 0;
    v->bits |= 1u << (green_ok ? DCEM_V_GREEN_SHARE_ABOVE_THRESHOLD
                               : DCEM_V_GREEN_SHARE_BELOW_THRESHOLD);
    if (pue_cmp < 0 && green_ok) v->bits |= 1u << DCEM_V_REWARD_ELIGIBLE;

    if (f->kind == DCEM_PERIOD_YEAR && !isnan(s->baseline_annual_kwh) && !isnan(f->compute_share) &&
        dcem_cmp(f->compute_share * 100, p->conversion.compute_share_min_percent) >= 0 &&
        dcem_cmp(f->total_kwh, s->baseline_annual_kwh) <= 0)
        v->bits |= 1u << DCEM_V_CONVERSION;
}

void dcem_policy_counter_cfg(const dcem_policy *p, const dcem_site *s, size_t i,
                             dcem_counter_cfg *out)
{
    const dcem_meter *m = &s->meters[i];
    int64_t interval_ms = s->interval_minutes * 60000LL;
    *out = (dcem_counter_cfg){
        .rated_kw = m->rated_kw,
        .modulo_kwh = m->counter_modulo_kwh,
        .resolution_kwh = m->counter_resolution_kwh,
        .margin = p->data.glitch_margin,
        .gap_ms = (int64_t)(p->data.gap_intervals * (double)interval_ms),
        .max_gap_ms = p->data.max_gap_days * 86400000LL,
    };
}
