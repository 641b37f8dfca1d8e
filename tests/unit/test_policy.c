/* test_policy.c — the verdicts of 京技管发〔2024〕8号 at their boundaries:
 * scope, PUE against the limit (strict both ways), the green-share ramp,
 * differential-pricing tiers, the electricity cap and its projection,
 * computing-center conversion and the completeness bar. The policy is the
 * shipped configs/policy/beijing-etown-2024.yaml (argv[1] is configs/),
 * edited in memory where a row needs another setting; the figures are built
 * by hand with dcem_figures_init / dcem_figures_derive. One cmocka test per
 * table row, so a failure names the row. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "figures.h"
#include "policy.h"
#include "site.h"
#include "table.h"

#define DAY_MS 86400000LL

/* 1 January 00:00 in Asia/Shanghai (UTC+8, no DST since 1991), UTC ms. */
static int64_t year_start(long long y)
{
    switch (y) {
    case 2023:
        return 1672502400000LL;
    case 2024:
        return 1704038400000LL;
    case 2025:
        return 1735660800000LL;
    case 2026:
        return 1767196800000LL;
    case 2027:
        return 1798732800000LL;
    }
    fail_msg("no year start for %lld in the test", y);
    return 0;
}
#define FEB_2025 1738339200000LL /* 2025-02-01 00:00 +08:00 */

static char *policy_yaml; /* the shipped policy file */
static size_t policy_len;
static dcem_policy shipped;

/* ---- helpers ---- */

static void read_policy_file(const char *configs)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/policy/beijing-etown-2024.yaml", configs);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    size_t cap = 1 << 16;
    policy_yaml = malloc(cap);
    if (!policy_yaml) exit(2);
    policy_len = fread(policy_yaml, 1, cap, f);
    fclose(f);
    if (policy_len == 0 || policy_len == cap) {
        fprintf(stderr, "%s: empty or larger than the test expects\n", path);
        exit(2);
    }
    char err[512] = "";
    if (dcem_policy_parse(path, policy_yaml, policy_len, &shipped, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        exit(2);
    }
}

/* The shipped policy, or the shipped file with one text edit (from → to,
 * from must occur exactly once) parsed into *p. */
static void policy_with(const char *from, const char *to, dcem_policy *p)
{
    if (!from) {
        *p = shipped;
        return;
    }
    size_t fl = strlen(from), tl = strlen(to);
    const char *hit = NULL;
    for (size_t i = 0; i + fl <= policy_len; i++) {
        if (!memcmp(policy_yaml + i, from, fl)) {
            if (hit) fail_msg("'%s' occurs more than once in the shipped policy", from);
            hit = policy_yaml + i;
        }
    }
    if (!hit) fail_msg("'%s' not in the shipped policy", from);
    size_t pre = (size_t)(hit - policy_yaml), len = policy_len - fl + tl;
    char *buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, policy_yaml, pre);
    memcpy(buf + pre, to, tl);
    memcpy(buf + pre + tl, hit + fl, policy_len - pre - fl);
    char err[512] = "";
    int rc = dcem_policy_parse("edited.yaml", buf, len, p, err, sizeof err);
    free(buf);
    if (rc) fail_msg("edited policy: %s", err);
}

static dcem_site *make_site(long long racks, double rack_kw, double approved, double baseline)
{
    dcem_site *s = calloc(1, sizeof *s); /* ~300 KB: not on the stack */
    assert_non_null(s);
    s->racks = racks;
    s->rack_power_kw = rack_kw;
    s->approved_annual_kwh = approved;
    s->baseline_annual_kwh = baseline;
    s->interval_minutes = 15;
    return s;
}

/* Equal, or both NaN. */
static int same(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static int close_to(double a, double b)
{
    return (isnan(a) && isnan(b)) || fabs(a - b) <= 1e-9 * fmax(1, fmax(fabs(a), fabs(b)));
}

static void verdict_list(unsigned bits, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < DCEM_V_COUNT; i++) {
        if (!(bits & (1u << i))) continue;
        int k = snprintf(buf + used, len - used, "%s%s", used ? " " : "", dcem_verdict_name(i));
        if (k < 0 || used + (size_t)k >= len) break;
        used += (size_t)k;
    }
    if (!used) snprintf(buf, len, "(none)");
}


#define B(v) (1u << DCEM_V_##v)

/* ---- scope ---- */

typedef struct scope_case {
    const char *name;
    long long racks;
    double rack_kw;
    int want;
} scope_case;

static const scope_case scope_cases[] = {
    {"50 racks, 250 kW: out (both exactly at the bar)", 50, 250, 0},
    {"51 racks: in", 51, 0, 1},
    {"250.001 kW: in", 0, 250.001, 1},
    {"51 racks, 250 kW: in", 51, 250, 1},
    {"50 racks, 250.001 kW: in", 50, 250.001, 1},
    {"50 racks, 0 kW: out", 50, 0, 0},
    {"0 racks, 250 kW: out", 0, 250, 0},
    {"0 racks, 0 kW: out", 0, 0, 0},
};

static void test_scope(void **state)
{
    const scope_case *c = *state;
    dcem_site *s = make_site(c->racks, c->rack_kw, NAN, NAN);
    int got = dcem_policy_in_scope(&shipped, s);
    free(s);
    assert_int_equal(got, c->want);
}

/* ---- green-share threshold ---- */

typedef struct threshold_case {
    const char *name;
    const char *edit_from, *edit_to;
    long long year;
    double want; /* fraction */
} threshold_case;

#define RELATIVE "step_mode: points", "step_mode: relative"
#define SHIPPED NULL, NULL

static const threshold_case threshold_cases[] = {
    {"2024 (base year): 10%", SHIPPED, 2024, 0.10},
    {"2025: 20%", SHIPPED, 2025, 0.20},
    {"2026: 30%", SHIPPED, 2026, 0.30},
    {"2023 (before the base year): 10%", SHIPPED, 2023, 0.10},
    {"2000: 10%", SHIPPED, 2000, 0.10},
    {"2033: 100%", SHIPPED, 2033, 1.00},
    {"2034: capped at 100%", SHIPPED, 2034, 1.00},
    {"2040: capped at 100%", SHIPPED, 2040, 1.00},
    {"relative 2024: 10%", RELATIVE, 2024, 0.10},
    {"relative 2025: 11%", RELATIVE, 2025, 0.11},
    {"relative 2026: 12.1%", RELATIVE, 2026, 0.121},
    {"relative 2023: 10%", RELATIVE, 2023, 0.10},
    {"max_percent 35, 2026: 30%", "max_percent: 100", "max_percent: 35", 2026, 0.30},
    {"max_percent 35, 2027: capped at 35%", "max_percent: 100", "max_percent: 35", 2027, 0.35},
};

static void test_threshold(void **state)
{
    const threshold_case *c = *state;
    dcem_policy p;
    policy_with(c->edit_from, c->edit_to, &p);
    double got = dcem_policy_green_threshold(&p, c->year);
    if (!close_to(got, c->want)) fail_msg("got %.17g, want %.17g", got, c->want);
}

/* ---- dcem_cmp ---- */

typedef struct cmp_case {
    const char *name;
    double a, b;
    int want;
} cmp_case;

static const cmp_case cmp_cases[] = {
    {"1.4 = 1.4", 1.4, 1.4, 0},
    {"1.4000000000000001 = 1.4", 1.4000000000000001, 1.4, 0},
    {"1.3999999999999997 = 1.4", 1.3999999999999997, 1.4, 0},
    {"1.4 + 1e-10 = 1.4 (within 1e-9 relative)", 1.4 + 1e-10, 1.4, 0},
    {"1.4 + 1e-8 > 1.4", 1.4 + 1e-8, 1.4, 1},
    {"1.3999 < 1.4", 1.3999, 1.4, -1},
    {"1.4001 > 1.4", 1.4001, 1.4, 1},
    {"0 = 0", 0, 0, 0},
    {"0 < 1e-300", 0, 1e-300, -1},
    {"-1 < 1", -1, 1, -1},
    {"80 = 100 * 0.8", 80, 100 * 0.8, 0},
    {"57 = 0.57 * 100", 57, 0.57 * 100, 0},
};

static void test_cmp(void **state)
{
    const cmp_case *c = *state;
    assert_int_equal(dcem_cmp(c->a, c->b), c->want);
    assert_int_equal(dcem_cmp(c->b, c->a), -c->want);
}

/* ---- figures ---- */

typedef struct derive_case {
    const char *name;
    double facility, it, onsite, ledger, compute, cooling;
    double total, it_kwh, green, compute_kwh, pue, green_share, compute_share;
} derive_case;

static const derive_case derive_cases[] = {
    {"facility 1300, IT 1000", 1300, 1000, 0, 0, 0, 0, 1300, 1000, 0, 0, 1.3, 0, 0},
    {"on-site green counts in total and green", 1000, 900, 200, 100, 300, 0, 1200, 900, 300, 300,
     1200.0 / 900, 0.25, 0.25},
    {"cooling is not added to total", 1000, 800, 0, 0, 0, 500, 1000, 800, 0, 0, 1.25, 0, 0},
    {"IT 0: PUE NaN", 1000, 0, 0, 100, 0, 0, 1000, 0, 100, 0, NAN, 0.1, 0},
    {"nothing metered: all ratios NaN", 0, 0, 0, 100, 0, 0, 0, 0, 100, 0, NAN, NAN, NAN},
    {"green above total: share capped at 1 (ISO/IEC 30134-3 REF <= 1)", 1000, 800, 0, 5000, 0, 0,
     1000, 800, 5000, 0, 1.25, 1, 0},
    {"green equal to total: share 1", 800, 700, 200, 800, 0, 0, 1000, 700, 1000, 0, 1000.0 / 700, 1,
     0},
    {"0.14 / 0.1 = 1.4000000000000001", 0.14, 0.1, 0, 0, 0, 0, 0.14, 0.1, 0, 0, 1.4000000000000001,
     0, 0},
};

static void test_derive(void **state)
{
    const derive_case *c = *state;
    dcem_figures f;
    dcem_figures_init(&f, DCEM_PERIOD_YEAR, 2025, year_start(2025), year_start(2026),
                      year_start(2026));
    f.role_ukwh[DCEM_ROLE_FACILITY] = dcem_kwh_ukwh(c->facility);
    f.role_ukwh[DCEM_ROLE_IT] = dcem_kwh_ukwh(c->it);
    f.role_ukwh[DCEM_ROLE_GREEN_ONSITE] = dcem_kwh_ukwh(c->onsite);
    f.role_ukwh[DCEM_ROLE_COMPUTE] = dcem_kwh_ukwh(c->compute);
    f.role_ukwh[DCEM_ROLE_COOLING] = dcem_kwh_ukwh(c->cooling);
    f.green_ledger_kwh = c->ledger;
    dcem_figures_derive(&f);
    if (!same(f.total_kwh, c->total)) fail_msg("total %.17g, want %.17g", f.total_kwh, c->total);
    if (!same(f.it_kwh, c->it_kwh)) fail_msg("it %.17g, want %.17g", f.it_kwh, c->it_kwh);
    if (!same(f.green_kwh, c->green)) fail_msg("green %.17g, want %.17g", f.green_kwh, c->green);
    if (!same(f.compute_kwh, c->compute_kwh))
        fail_msg("compute %.17g, want %.17g", f.compute_kwh, c->compute_kwh);
    if (!same(f.pue, c->pue)) fail_msg("pue %.17g, want %.17g", f.pue, c->pue);
    if (!same(f.green_share, c->green_share))
        fail_msg("green_share %.17g, want %.17g", f.green_share, c->green_share);
    if (!same(f.compute_share, c->compute_share))
        fail_msg("compute_share %.17g, want %.17g", f.compute_share, c->compute_share);
}

typedef struct meter_in {
    int role;
    double kwh;
    int64_t measured_ms, expected_ms;
    long counts; /* each of the five counters, and estimated/integrated kWh */
} meter_in;

typedef struct add_case {
    const char *name;
    meter_in m[4];
    size_t n;
    double facility, it, cooling; /* role_kwh after adding */
    double completeness;
    long counts; /* each summed counter, over the roles in the figures */
} add_case;

static const add_case add_cases[] = {
    {"one facility meter, complete",
     {{DCEM_ROLE_FACILITY, 100, 1000, 1000, 1}},
     1,
     100,
     0,
     0,
     1,
     1},
    {"lowest meter wins: 0.95 and 0.899",
     {{DCEM_ROLE_FACILITY, 100, 950, 1000, 1}, {DCEM_ROLE_IT, 80, 899, 1000, 2}},
     2,
     100,
     80,
     0,
     0.899,
     3},
    {"two IT meters add up",
     {{DCEM_ROLE_IT, 80, 1000, 1000, 0}, {DCEM_ROLE_IT, 20, 1000, 1000, 0}},
     2,
     0,
     100,
     0,
     1,
     0},
    {"cooling: energy kept, completeness and counts not",
     {{DCEM_ROLE_FACILITY, 100, 1000, 1000, 1}, {DCEM_ROLE_COOLING, 30, 500, 1000, 7}},
     2,
     100,
     0,
     30,
     1,
     1},
    {"measured above expected counts as 1", {{DCEM_ROLE_IT, 1, 1100, 1000, 0}}, 1, 0, 1, 0, 1, 0},
    {"an empty period counts as 0", {{DCEM_ROLE_IT, 0, 0, 0, 0}}, 1, 0, 0, 0, 0, 0},
    {"81 of 90 is exactly 0.9", {{DCEM_ROLE_FACILITY, 5, 81, 90, 0}}, 1, 5, 0, 0, 0.9, 0},
};

static void test_add_meter(void **state)
{
    const add_case *c = *state;
    dcem_figures f;
    dcem_figures_init(&f, DCEM_PERIOD_DAY, 2025, 0, DAY_MS, DAY_MS);
    for (size_t i = 0; i < c->n; i++) {
        const meter_in *in = &c->m[i];
        int64_t u = in->counts * 1000000LL;
        dcem_meter_period m = {.ukwh = dcem_kwh_ukwh(in->kwh),
                               .estimated_ukwh = {u, u, u, u},
                               .integrated_ukwh = u,
                               .read_intervals = (long)in->measured_ms,
                               .expected_intervals = (long)in->expected_ms,
                               .estimated_intervals = in->counts,
                               .integrated_intervals = in->counts,
                               .discarded_readings = in->counts,
                               .rollovers = in->counts,
                               .resets = in->counts};
        dcem_figures_add_meter(&f, in->role, &m);
    }
    dcem_figures_derive(&f);
    if (!same(f.role_kwh[DCEM_ROLE_FACILITY], c->facility) ||
        !same(f.role_kwh[DCEM_ROLE_IT], c->it) || !same(f.role_kwh[DCEM_ROLE_COOLING], c->cooling))
        fail_msg("role kWh facility %g it %g cooling %g, want %g %g %g",
                 f.role_kwh[DCEM_ROLE_FACILITY], f.role_kwh[DCEM_ROLE_IT],
                 f.role_kwh[DCEM_ROLE_COOLING], c->facility, c->it, c->cooling);
    if (!same(f.completeness, c->completeness))
        fail_msg("completeness %.17g, want %.17g", f.completeness, c->completeness);
    assert_int_equal(f.estimated_intervals, c->counts);
    assert_int_equal(f.integrated_intervals, c->counts);
    assert_int_equal(f.discarded_readings, c->counts);
    assert_int_equal(f.rollovers, c->counts);
    assert_int_equal(f.resets, c->counts);
    assert_true(f.estimated_kwh == (double)c->counts);
    assert_true(f.integrated_kwh == (double)c->counts);
}

/* init: zero sums, completeness 1, as_of clamped to the period end */
static void test_figures_init(void **state)
{
    (void)state;
    dcem_figures f;
    memset(&f, 0xA5, sizeof f);
    dcem_figures_init(&f, DCEM_PERIOD_MONTH, 2025, year_start(2025), FEB_2025, FEB_2025 + DAY_MS);
    assert_int_equal(f.kind, DCEM_PERIOD_MONTH);
    assert_int_equal(f.year, 2025);
    assert_int_equal(f.start_ms, year_start(2025));
    assert_int_equal(f.end_ms, FEB_2025);
    assert_int_equal(f.as_of_ms, FEB_2025);
    assert_true(f.completeness == 1);
    for (int r = 0; r < DCEM_ROLE_COUNT; r++)
        assert_true(f.role_kwh[r] == 0);
    assert_true(f.green_ledger_kwh == 0 && f.ytd_total_kwh == 0 && f.trailing_total_kwh == 0);
    assert_int_equal(f.estimated_intervals + f.discarded_readings + f.rollovers + f.resets, 0);

    /* a period counted to its end is not provisional */
    dcem_site *s = make_site(120, 600, NAN, NAN);
    f.role_ukwh[DCEM_ROLE_FACILITY] = dcem_kwh_ukwh(1300);
    f.role_ukwh[DCEM_ROLE_IT] = dcem_kwh_ukwh(1000);
    dcem_figures_derive(&f);
    dcem_verdicts v;
    dcem_policy_evaluate(&shipped, s, &f, &v);
    free(s);
    assert_int_equal(v.bits, B(IN_SCOPE) | B(PUE_BELOW_LIMIT) | B(GREEN_SHARE_BELOW_THRESHOLD));
}

typedef struct completeness_case {
    const char *name;
    int64_t measured, expected;
    double want;
} completeness_case;

static const completeness_case completeness_cases[] = {
    {"81 / 90 = 0.9", 81, 90, 0.9}, {"899 / 1000 = 0.899", 899, 1000, 0.899},
    {"all of it", 900, 900, 1},     {"more than expected: 1", 1000, 900, 1},
    {"empty period: 0", 0, 0, 0},   {"nothing measured: 0", 0, 900, 0},
};

static void test_completeness(void **state)
{
    const completeness_case *c = *state;
    dcem_meter_period m = {.read_intervals = (long)c->measured, .expected_intervals = (long)c->expected};
    double got = dcem_meter_completeness(&m);
    if (!same(got, c->want)) fail_msg("got %.17g, want %.17g", got, c->want);
}

/* ---- verdicts ---- */

/* One evaluation. Fields left 0 take the default in the comment. The site
 * has 120 racks / 600 kW (in scope) unless out_of_scope; the period is the
 * calendar year (Asia/Shanghai) unless month (January 2025). */
typedef struct eval_case {
    const char *name;
    const char *edit_from, *edit_to; /* text edit of the shipped policy; NULL: none */
    int out_of_scope;                /* 50 racks / 250 kW */
    int month;                       /* January 2025 instead of the year */
    long long year;                  /* 0: 2025 */
    double facility, it, onsite, ledger, compute;
    double completeness;        /* 0: 1 */
    double days_left;           /* as_of this long before the period end */
    double approved, baseline;  /* 0: not in the ledger (NAN) */
    double ytd, trailing;       /* trailing: kWh over the 30 days before as_of */
    unsigned want;              /* the exact set of verdicts */
    double rate, surcharge_kwh; /* checked when pricing is in want */
    double warning;             /* cap_warning_percent */
    double projected;           /* checked when not 0 */
} eval_case;

#define EXCESS "applies_to: all", "applies_to: excess"
#define BAR57 "completeness_min_percent: 90", "completeness_min_percent: 57"
#define IN B(IN_SCOPE)
#define BELOW B(PUE_BELOW_LIMIT)
#define NOT_GREEN B(GREEN_SHARE_BELOW_THRESHOLD) /* said, not left to be inferred */
#define ABOVE (B(PUE_ABOVE_LIMIT) | B(DIFFERENTIAL_PRICING))
#define GREEN B(GREEN_SHARE_ABOVE_THRESHOLD)
#define REWARD (B(PUE_BELOW_LIMIT) | B(GREEN_SHARE_ABOVE_THRESHOLD) | B(REWARD_ELIGIBLE))

static const eval_case eval_cases[] = {
    /* PUE against the limit 1.4: strictly below for the reward, strictly
     * above for the differential price; exactly 1.4 is neither */
    {"PUE 1400/1000 = 1.4: neither below nor above", .facility = 1400, .it = 1000, .want = IN | NOT_GREEN},
    {"PUE 0.14/0.1 = 1.4000000000000001: neither", .facility = 0.14, .it = 0.1, .want = IN | NOT_GREEN},
    {"PUE 1.134/0.81 = 1.3999999999999997: neither", .facility = 1.134, .it = 0.81, .want = IN | NOT_GREEN},
    {"PUE 1.4 with green above: no reward", .facility = 1400, .it = 1000, .ledger = 500,
     .want = IN | GREEN},
    {"PUE 1.3999: below", .facility = 1399.9, .it = 1000, .want = IN | BELOW | NOT_GREEN},
    {"PUE 1.4001: above, 0.2 CNY/kWh on all", .facility = 1400.1, .it = 1000, .want = IN | ABOVE | NOT_GREEN,
     .rate = 0.2, .surcharge_kwh = 1400.1},
    {"PUE 2.8 (exactly 1x over): 0.2 CNY/kWh", .facility = 2800, .it = 1000, .want = IN | ABOVE | NOT_GREEN,
     .rate = 0.2, .surcharge_kwh = 2800},
    {"PUE 2.81: 0.5 CNY/kWh", .facility = 2810, .it = 1000, .want = IN | ABOVE | NOT_GREEN, .rate = 0.5,
     .surcharge_kwh = 2810},
    {"PUE 2.8 with on-site green in total: 0.2 on all 2800", .facility = 2500, .it = 1000,
     .onsite = 300, .want = IN | ABOVE | NOT_GREEN, .rate = 0.2, .surcharge_kwh = 2800},
    {"excess: PUE 2.0, 2000 - 1.4 x 1000 = 600 kWh at 0.2", EXCESS, .facility = 2000, .it = 1000,
     .want = IN | ABOVE | NOT_GREEN, .rate = 0.2, .surcharge_kwh = 600},
    {"excess: PUE 2.81, 1410 kWh at 0.5", EXCESS, .facility = 2810, .it = 1000, .want = IN | ABOVE | NOT_GREEN,
     .rate = 0.5, .surcharge_kwh = 1410},
    {"PUE above with green above: no reward", .facility = 2000, .it = 1000, .ledger = 1000,
     .want = IN | ABOVE | GREEN, .rate = 0.2, .surcharge_kwh = 2000},

    /* green share strictly above the year's threshold (PUE 1.25) */
    {"2025: share exactly 0.20: not above", .facility = 1000, .it = 800, .ledger = 200,
     .want = IN | BELOW | NOT_GREEN},
    {"2025: share 0.2001: reward", .facility = 1000, .it = 800, .ledger = 200.1,
     .want = IN | REWARD},
    {"2025: on-site 200 of 1000 = 0.20: not above", .facility = 800, .it = 800, .onsite = 200,
     .want = IN | BELOW | NOT_GREEN},
    {"2025: share 0.15 (above 2024's bar only)", .facility = 1000, .it = 800, .ledger = 150,
     .want = IN | BELOW | NOT_GREEN},
    {"2024: share exactly 0.10: not above", .year = 2024, .facility = 1000, .it = 800,
     .ledger = 100, .want = IN | BELOW | NOT_GREEN},
    {"2024: share 0.1001: reward", .year = 2024, .facility = 1000, .it = 800, .ledger = 100.1,
     .want = IN | REWARD},
    {"2026: share exactly 0.30: not above", .year = 2026, .facility = 1000, .it = 800,
     .ledger = 300, .want = IN | BELOW | NOT_GREEN},
    {"2026: share 0.3001: reward", .year = 2026, .facility = 1000, .it = 800, .ledger = 300.1,
     .want = IN | REWARD},
    {"green 5x total: share capped at 1, reward", .facility = 1000, .it = 800, .ledger = 5000,
     .want = IN | REWARD},
    {"relative 2026: share 0.121 = threshold: not above", RELATIVE, .year = 2026, .facility = 1000,
     .it = 800, .ledger = 121, .want = IN | BELOW | NOT_GREEN},
    {"relative 2026: share 0.13: reward", RELATIVE, .year = 2026, .facility = 1000, .it = 800,
     .ledger = 130, .want = IN | REWARD},

    /* scope: an out-of-scope site gets nothing else */
    {"out of scope: only out_of_scope", .out_of_scope = 1, .facility = 3000, .it = 1000,
     .ledger = 2000, .compute = 600, .approved = 1000, .baseline = 5000, .ytd = 3000,
     .want = B(OUT_OF_SCOPE)},
    {"out of scope, provisional", .out_of_scope = 1, .days_left = 10, .facility = 3000, .it = 1000,
     .approved = 1000, .ytd = 3000, .want = B(OUT_OF_SCOPE) | B(PROVISIONAL)},

    /* data completeness: no pass and no charge on missing data; cap
     * verdicts rest on metered energy and stand */
    {"completeness 0.899: insufficient, cap_exceeded still given", .facility = 2000, .it = 1000,
     .ledger = 1000, .completeness = 0.899, .approved = 10000, .ytd = 10001,
     .want = IN | B(INSUFFICIENT_DATA) | B(CAP_EXCEEDED)},
    {"completeness 0.899: no reward, no conversion", .facility = 1000, .it = 800, .ledger = 500,
     .compute = 600, .baseline = 2000, .completeness = 0.899, .want = IN | B(INSUFFICIENT_DATA)},
    {"completeness exactly 0.9: sufficient", .facility = 1000, .it = 800, .ledger = 500,
     .compute = 500, .baseline = 1200, .completeness = 0.9, .want = IN | REWARD | B(CONVERSION)},
    {"completeness 0.57 with bar 57%: sufficient (at the bar)", BAR57, .facility = 1000, .it = 800,
     .completeness = 0.57, .want = IN | BELOW | NOT_GREEN},
    {"completeness 0.5699 with bar 57%: insufficient", BAR57, .facility = 1000, .it = 800,
     .completeness = 0.5699, .want = IN | B(INSUFFICIENT_DATA)},
    {"IT 0: PUE NaN, insufficient", .facility = 1000, .it = 0, .ledger = 500,
     .want = IN | B(INSUFFICIENT_DATA)},
    {"nothing metered: insufficient", .want = IN | B(INSUFFICIENT_DATA)},
    {"PUE 0.9 (facility meters miss load): insufficient, no reward", .facility = 900,
     .it = 1000, .ledger = 500, .want = IN | B(INSUFFICIENT_DATA)},
    {"no facility energy: PUE 0, share NaN: no conversion", .facility = 0, .it = 100,
     .compute = 60, .baseline = 1200, .want = IN | B(INSUFFICIENT_DATA)},

    /* provisional */
    {"as_of a day before the end: provisional", .days_left = 1, .facility = 1000, .it = 800,
     .want = IN | B(PROVISIONAL) | BELOW | NOT_GREEN},
    {"January counted to its end: final", .month = 1, .facility = 1000, .it = 800,
     .want = IN | BELOW | NOT_GREEN},

    /* cap (approved 10000 kWh) */
    {"cap: 79.99%: no warning", .facility = 1000, .it = 800, .approved = 10000, .ytd = 7999,
     .want = IN | BELOW | NOT_GREEN, .projected = 7999},
    {"cap: exactly 80%: warning 80", .facility = 1000, .it = 800, .approved = 10000, .ytd = 8000,
     .want = IN | BELOW | B(CAP_WARNING) | NOT_GREEN, .warning = 80},
    {"cap: 95%: warning 90", .facility = 1000, .it = 800, .approved = 10000, .ytd = 9500,
     .want = IN | BELOW | B(CAP_WARNING) | NOT_GREEN, .warning = 90},
    {"cap: exactly 100%: warning 90, not exceeded", .facility = 1000, .it = 800, .approved = 10000,
     .ytd = 10000, .want = IN | BELOW | B(CAP_WARNING) | NOT_GREEN, .warning = 90},
    {"cap: 100.01%: exceeded, no warning", .facility = 1000, .it = 800, .approved = 10000,
     .ytd = 10001, .want = IN | BELOW | B(CAP_EXCEEDED) | NOT_GREEN},
    {"cap: 8000 + 2500 in the last 30 of 30 days left: projected 10500", .days_left = 30,
     .facility = 1000, .it = 800, .approved = 10000, .ytd = 8000, .trailing = 2500,
     .want = IN | B(PROVISIONAL) | BELOW | B(CAP_WARNING) | B(CAP_PROJECTED) | NOT_GREEN, .warning = 80,
     .projected = 10500},
    {"cap: projected exactly 10000: not exceeding", .days_left = 30, .facility = 1000, .it = 800,
     .approved = 10000, .ytd = 8000, .trailing = 2000,
     .want = IN | B(PROVISIONAL) | BELOW | B(CAP_WARNING) | NOT_GREEN, .warning = 80, .projected = 10000},
    {"cap: projected 9000", .days_left = 30, .facility = 1000, .it = 800, .approved = 10000,
     .ytd = 7000, .trailing = 2000, .want = IN | B(PROVISIONAL) | BELOW | NOT_GREEN, .projected = 9000},
    {"cap: as_of = year end: projection = ytd", .facility = 1000, .it = 800, .approved = 10000,
     .ytd = 9000, .trailing = 5000, .want = IN | BELOW | B(CAP_WARNING) | NOT_GREEN, .warning = 90,
     .projected = 9000},
    {"cap: January: projected to the year end, not the month end", .month = 1, .facility = 1000,
     .it = 800, .approved = 10000, .ytd = 1000, .trailing = 1000,
     .want = IN | BELOW | B(CAP_PROJECTED) | NOT_GREEN, .projected = 1000 + 1000.0 / 30 * 334},
    {"no cap in the ledger: no cap verdicts", .facility = 1000, .it = 800, .ytd = 1e9,
     .trailing = 1e9, .days_left = 30, .want = IN | B(PROVISIONAL) | BELOW | NOT_GREEN},

    /* computing-center conversion: year only, baseline set, compute share
     * at least 50%, total not above the baseline */
    {"conversion: compute 50% exactly", .facility = 1000, .it = 800, .compute = 500,
     .baseline = 1200, .want = IN | BELOW | B(CONVERSION) | NOT_GREEN},
    {"conversion: compute 49.9%: no", .facility = 1000, .it = 800, .compute = 499, .baseline = 1200,
     .want = IN | BELOW | NOT_GREEN},
    {"conversion: total above baseline: no", .facility = 1300, .it = 1000, .compute = 650,
     .baseline = 1200, .want = IN | BELOW | NOT_GREEN},
    {"conversion: total equal to baseline: yes", .facility = 1200, .it = 1000, .compute = 600,
     .baseline = 1200, .want = IN | BELOW | B(CONVERSION) | NOT_GREEN},
    {"conversion: a month: no", .month = 1, .facility = 1000, .it = 800, .compute = 500,
     .baseline = 1200, .want = IN | BELOW | NOT_GREEN},
    {"conversion: no baseline: no", .facility = 1000, .it = 800, .compute = 500,
     .want = IN | BELOW | NOT_GREEN},
    {"conversion does not depend on PUE", .facility = 1000, .it = 500, .compute = 500,
     .baseline = 1200, .want = IN | ABOVE | B(CONVERSION) | NOT_GREEN, .rate = 0.2, .surcharge_kwh = 1000},
};

static void test_evaluate(void **state)
{
    const eval_case *c = *state;
    dcem_policy p;
    policy_with(c->edit_from, c->edit_to, &p);
    dcem_site *s = c->out_of_scope ? make_site(50, 250, NAN, NAN) : make_site(120, 600, NAN, NAN);
    s->approved_annual_kwh = c->approved > 0 ? c->approved : NAN;
    s->baseline_annual_kwh = c->baseline > 0 ? c->baseline : NAN;

    long long year = c->year ? c->year : 2025;
    int64_t start = year_start(year), year_end = year_start(year + 1);
    int64_t end = c->month ? FEB_2025 : year_end;
    int64_t as_of = end - (int64_t)(c->days_left * (double)DAY_MS);
    dcem_figures f;
    dcem_figures_init(&f, c->month ? DCEM_PERIOD_MONTH : DCEM_PERIOD_YEAR, year, start, end, as_of);
    f.role_ukwh[DCEM_ROLE_FACILITY] = dcem_kwh_ukwh(c->facility);
    f.role_ukwh[DCEM_ROLE_IT] = dcem_kwh_ukwh(c->it);
    f.role_ukwh[DCEM_ROLE_GREEN_ONSITE] = dcem_kwh_ukwh(c->onsite);
    f.role_ukwh[DCEM_ROLE_COMPUTE] = dcem_kwh_ukwh(c->compute);
    f.green_ledger_kwh = c->ledger;
    f.completeness = c->completeness > 0 ? c->completeness : 1;
    f.ytd_total_kwh = c->ytd;
    f.trailing_total_kwh = c->trailing;
    f.trailing_ms = c->trailing > 0 ? 30 * DAY_MS : 0;
    f.year_end_ms = year_end;
    dcem_figures_derive(&f);

    dcem_verdicts v;
    memset(&v, 0xA5, sizeof v);
    dcem_policy_evaluate(&p, s, &f, &v);
    free(s);

    if (v.bits != c->want) {
        char got[512], want[512];
        verdict_list(v.bits, got, sizeof got);
        verdict_list(c->want, want, sizeof want);
        fail_msg("PUE %.17g green share %.17g: got [%s], want [%s]", f.pue, f.green_share, got,
                 want);
    }
    if (c->want & B(DIFFERENTIAL_PRICING)) {
        if (!close_to(v.surcharge_cny_per_kwh, c->rate))
            fail_msg("rate %.17g, want %.17g", v.surcharge_cny_per_kwh, c->rate);
        if (!close_to(v.surcharge_kwh, c->surcharge_kwh))
            fail_msg("surcharge kWh %.17g, want %.17g", v.surcharge_kwh, c->surcharge_kwh);
        if (!close_to(v.surcharge_cny, c->surcharge_kwh * c->rate))
            fail_msg("surcharge CNY %.17g, want %.17g", v.surcharge_cny,
                     c->surcharge_kwh * c->rate);
    } else if (v.surcharge_kwh != 0 || v.surcharge_cny != 0 || v.surcharge_cny_per_kwh != 0) {
        fail_msg("no pricing, yet surcharge %g kWh x %g = %g CNY", v.surcharge_kwh,
                 v.surcharge_cny_per_kwh, v.surcharge_cny);
    }
    if (!c->out_of_scope && c->approved > 0) {
        assert_true(v.cap_kwh == c->approved);
        if (!close_to(v.cap_usage, c->ytd / c->approved))
            fail_msg("cap usage %.17g, want %.17g", v.cap_usage, c->ytd / c->approved);
    } else {
        assert_true(isnan(v.cap_kwh));
        assert_true(isnan(v.cap_usage));
        assert_true(isnan(v.cap_projected_kwh));
    }
    if (v.cap_warning_percent != c->warning)
        fail_msg("cap_warning_percent %g, want %g", v.cap_warning_percent, c->warning);
    if (c->projected != 0 && !close_to(v.cap_projected_kwh, c->projected))
        fail_msg("projected %.17g kWh, want %.17g", v.cap_projected_kwh, c->projected);
    if (!close_to(v.green_threshold, dcem_policy_green_threshold(&p, year)))
        fail_msg("green_threshold %.17g", v.green_threshold);
}

/* ---- verdict names: stable identifiers, never renumbered ---- */

typedef struct name_case {
    const char *name;
    int id, number;
    const char *want, *clause;
} name_case;

static const name_case name_cases[] = {
    {"in_scope", DCEM_V_IN_SCOPE, 0, "in_scope", "scope"},
    {"out_of_scope", DCEM_V_OUT_OF_SCOPE, 1, "out_of_scope", "scope"},
    {"insufficient_data", DCEM_V_INSUFFICIENT_DATA, 2, "insufficient_data", "1"},
    {"provisional", DCEM_V_PROVISIONAL, 3, "provisional", "-"},
    {"pue_below_limit", DCEM_V_PUE_BELOW_LIMIT, 4, "pue_below_limit", "2"},
    {"pue_above_limit", DCEM_V_PUE_ABOVE_LIMIT, 5, "pue_above_limit", "5"},
    {"green_share_above_threshold", DCEM_V_GREEN_SHARE_ABOVE_THRESHOLD, 6,
     "green_share_above_threshold", "2"},
    {"reward_eligible", DCEM_V_REWARD_ELIGIBLE, 7, "reward_eligible", "2"},
    {"differential_pricing_candidate", DCEM_V_DIFFERENTIAL_PRICING, 8,
     "differential_pricing_candidate", "5"},
    {"cap_warning", DCEM_V_CAP_WARNING, 9, "cap_warning", "9"},
    {"cap_projected_to_exceed", DCEM_V_CAP_PROJECTED, 10, "cap_projected_to_exceed", "9"},
    {"cap_exceeded", DCEM_V_CAP_EXCEEDED, 11, "cap_exceeded", "9"},
    {"computing_center_conversion", DCEM_V_CONVERSION, 12, "computing_center_conversion", "2"},
    {"green_share_below_threshold", DCEM_V_GREEN_SHARE_BELOW_THRESHOLD, 13,
     "green_share_below_threshold", "2"},
    {"DCEM_V_COUNT is unknown", DCEM_V_COUNT, 14, "unknown", ""},
    {"-1 is unknown", -1, -1, "unknown", ""},
};

static void test_verdict_name(void **state)
{
    const name_case *c = *state;
    assert_int_equal(c->id, c->number);
    assert_string_equal(dcem_verdict_name(c->id), c->want);
    assert_string_equal(dcem_verdict_clause(c->id), c->clause);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CONFIGS_DIR\n", argv[0]);
        return 2;
    }
    read_policy_file(argv[1]);
    const struct CMUnitTest single[] = {cmocka_unit_test(test_figures_init)};
    int failed = RUN_TABLE("scope", test_scope, scope_cases);
    failed += RUN_TABLE("green-share threshold", test_threshold, threshold_cases);
    failed += RUN_TABLE("dcem_cmp", test_cmp, cmp_cases);
    failed += RUN_TABLE("figures derive", test_derive, derive_cases);
    failed += RUN_TABLE("figures add meter", test_add_meter, add_cases);
    failed += RUN_TABLE("meter completeness", test_completeness, completeness_cases);
    failed += cmocka_run_group_tests_name("figures init", single, NULL, NULL);
    failed += RUN_TABLE("verdicts", test_evaluate, eval_cases);
    failed += RUN_TABLE("verdict names", test_verdict_name, name_cases);
    free(policy_yaml);
    return failed ? 1 : 0;
}
