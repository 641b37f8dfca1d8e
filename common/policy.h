/* policy.h — the rule set of a jurisdiction (configs/policy/ files) and the
 * verdicts it gives a site's figures for a period. No threshold is in code:
 * scope, PUE limit, the yearly green-share ramp, differential-pricing tiers,
 * cap warnings and projection, computing-center conversion and the
 * completeness bar all come from the policy file. Pure. */
#ifndef DCEM_POLICY_H
#define DCEM_POLICY_H

#include "counter.h"
#include "figures.h"
#include "site.h"

#include <stddef.h>

#define DCEM_POLICY_MAX_TIERS 8
#define DCEM_POLICY_MAX_LEVELS 8

typedef enum { DCEM_STEP_POINTS = 0, DCEM_STEP_RELATIVE } dcem_step_mode;
typedef enum { DCEM_APPLIES_ALL = 0, DCEM_APPLIES_EXCESS } dcem_applies_to;

typedef struct dcem_tier {
    double over_limit_up_to; /* (PUE - limit) / limit, inclusive; NAN: no bound */
    double cny_per_kwh;
    int line;
} dcem_tier;

typedef struct dcem_policy {
    char policy[64];
    char name[192];
    char document[96];
    struct {
        long long racks_more_than;
        double rack_power_kw_more_than;
    } scope;
    struct {
        double limit;
    } pue;
    struct {
        double base_percent, step_percent, max_percent;
        int step_mode; /* dcem_step_mode */
        long long base_year;
    } green;
    struct {
        int applies_to; /* dcem_applies_to */
        dcem_tier tiers[DCEM_POLICY_MAX_TIERS];
        size_t n_tiers;
    } pricing;
    struct {
        double warning_percent[DCEM_POLICY_MAX_LEVELS];
        size_t n_warning;
        long long projection_days;
    } cap;
    struct {
        double compute_share_min_percent;
    } conversion;
    struct {
        double completeness_min_percent, glitch_margin, gap_intervals;
        long long max_gap_days;
    } data;
} dcem_policy;

/* Parses a policy file; cross-field rules checked (tiers ascending, only the
 * last unbounded; warning levels ascending). 0 or DCEM_ECONFIG + err. */
int dcem_policy_parse(const char *name, const char *buf, size_t len, dcem_policy *out, char *err,
                      size_t errlen);

/* Verdicts: stable identifiers, one bit each, never renumbered. */
typedef enum dcem_verdict_id {
    DCEM_V_IN_SCOPE = 0,
    DCEM_V_OUT_OF_SCOPE,
    DCEM_V_INSUFFICIENT_DATA,
    DCEM_V_PROVISIONAL,
    DCEM_V_PUE_BELOW_LIMIT,
    DCEM_V_PUE_ABOVE_LIMIT,
    DCEM_V_GREEN_SHARE_ABOVE_THRESHOLD,
    DCEM_V_REWARD_ELIGIBLE,
    DCEM_V_DIFFERENTIAL_PRICING,
    DCEM_V_CAP_WARNING,
    DCEM_V_CAP_PROJECTED,
    DCEM_V_CAP_EXCEEDED,
    DCEM_V_CONVERSION,
    DCEM_V_GREEN_SHARE_BELOW_THRESHOLD, /* the negative said, not left to be inferred */
    DCEM_V_COUNT
} dcem_verdict_id;

/* "reward_eligible", ... and the clause of 京技管发〔2024〕8号 behind it. */
const char *dcem_verdict_name(int id);
const char *dcem_verdict_clause(int id);

typedef struct dcem_verdicts {
    unsigned bits;            /* 1u << dcem_verdict_id */
    double green_threshold;   /* fraction for the period's year */
    double surcharge_kwh;     /* energy the differential price applies to */
    double surcharge_cny_per_kwh;
    double surcharge_cny;
    double cap_kwh;           /* approved annual kWh; NAN without a cap */
    double cap_usage;         /* year-to-date / cap */
    double cap_projected_kwh; /* year-end projection */
    double cap_warning_percent; /* highest warning level reached, 0 if none */
} dcem_verdicts;

/* Green-share threshold (fraction) of calendar year y. */
double dcem_policy_green_threshold(const dcem_policy *p, long long year);

/* 1 when the site is in scope of the measures. */
int dcem_policy_in_scope(const dcem_policy *p, const dcem_site *s);

/* Verdicts of figures f (derived with dcem_figures_derive) of site s. */
void dcem_policy_evaluate(const dcem_policy *p, const dcem_site *s, const dcem_figures *f,
                          dcem_verdicts *v);

/* The counter rules' settings for meter i of site s under this policy's data
 * section (glitch margin, gap, longest gap); every engine uses this one. */
void dcem_policy_counter_cfg(const dcem_policy *p, const dcem_site *s, size_t i,
                             dcem_counter_cfg *out);

/* a compared with b: -1, 0 or +1, equal within a relative 1e-9 so that a
 * figure computed as 1.4000000000000001 is "exactly 1.4". */
int dcem_cmp(double a, double b);

#endif
