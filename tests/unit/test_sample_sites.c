/* test_sample_sites.c — end to end on the three sample sites of configs/sites:
 * dcem-gen writes a year of 15-minute readings for each, with the exact
 * energy behind them in truth.json; dcem-audit recomputes every figure from
 * the readings alone; and each figure, fault count and verdict must agree
 * with what this test derives from the truth by itself. The verdicts are
 * worked out here from the truth figures and the rules of
 * configs/policy/beijing-etown-2024.yaml restated below, not by the engine.
 *
 * Arguments: the dcem-gen and dcem-audit binaries, the configs directory and
 * a scratch directory for the generated files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *gen_bin, *audit_bin, *configs_dir, *work_dir;

/* ---- the rules, restated from configs/policy/beijing-etown-2024.yaml ---- */
#define SCOPE_RACKS 50      /* in scope: racks > 50 ... */
#define SCOPE_RACK_KW 250.0 /* ... or rack power > 250 kW */
#define PUE_LIMIT 1.4
#define GREEN_THRESHOLD_2025 0.20 /* 10% in 2024, +10 points a year */
#define TIER1_OVER 1.0            /* +0.2 CNY/kWh up to 1x over the limit, +0.5 beyond */
#define TIER1_CNY 0.2
#define TIER2_CNY 0.5
#define CAP_WARN_PERCENT 80.0 /* lowest warning level */
#define PROJECTION_DAYS 30
#define COMPLETENESS_MIN 0.90
#define CONVERSION_SHARE 0.50
#define YEAR 2025

/* dcem-audit prints kWh with 3 decimals and ratios with 6: half a unit of
 * the last printed digit is lost to rounding. */
#define KWH_PRINT 5e-4
#define RATIO_PRINT 5e-7
/* Beyond counter resolution: double sums of ~1e7 kWh over 35,040 steps
 * (engine) and of the exact trapezoids (truth) differ by far less. */
#define FLOAT_REL 1e-11

#define MS_PER_DAY 86400000.0

/* ---- running the programs ---- */

/* Runs argv with stdout to out_path (stderr inherited). Exit status, or -1. */
static int run(char *const argv[], const char *out_path)
{
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa)) return -1;
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out_path, O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        print_error("cannot start %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        assert_non_null(nb);
        buf = nb;
    }
    fclose(f);
    cJSON *j = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!j) fail_msg("%s: not JSON", path);
    return j;
}

static const cJSON *get(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) fail_msg("missing key '%s'", key);
    return v;
}

/* A number, NAN for null. */
static double num(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    if (cJSON_IsNull(v)) return NAN;
    if (!cJSON_IsNumber(v)) fail_msg("'%s' is not a number", key);
    return v->valuedouble;
}

static long count(const cJSON *o, const char *key)
{
    return lround(num(o, key));
}

static const cJSON *period(const cJSON *doc, const char *name)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, get(doc, "periods"))
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(p, "period");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return p;
    }
    fail_msg("no period %s", name);
    return NULL;
}

static int has_verdict(const cJSON *p, const char *name)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, get(p, "verdicts"))
    {
        if (cJSON_IsString(v) && !strcmp(v->valuestring, name)) return 1;
    }
    return 0;
}

static void assert_close(const char *what, const char *per, double got, double want, double tol)
{
    if (isnan(want) && isnan(got)) return;
    if (!(fabs(got - want) <= tol))
        fail_msg("%s %s: audit %.9f, truth %.9f, off by %.3g (tolerance %.3g)", per, what, got,
                 want, got - want, tol);
}

/* ---- tolerances ---- */

/* How far a metered sum can be from the truth. A meter's energy over a
 * period is the difference of two counter readings, each rounded to its
 * resolution: at most one resolution step off. A counter reset adds two more
 * (the new counter's first reading is rounded too, and the step across the
 * swap is estimated from the next, rounded, step). Summed over the meters of
 * the roles (NULL-terminated names), plus printing. */
static double energy_tol(const cJSON *truth, int m0, int m1, const char *const *roles)
{
    double tol = KWH_PRINT;
    const cJSON *meters = get(truth, "meters");
    const cJSON *periods = get(truth, "periods");
    int n = cJSON_GetArraySize(meters);
    for (int i = 0; i < n; i++) {
        const cJSON *m = cJSON_GetArrayItem(meters, i);
        const char *role = get(m, "role")->valuestring;
        int in = 0;
        for (const char *const *r = roles; *r; r++)
            in |= !strcmp(*r, role);
        if (!in) continue;
        long resets = 0;
        for (int mo = m0; mo < m1; mo++) {
            const cJSON *pm = cJSON_GetArrayItem(get(cJSON_GetArrayItem(periods, mo), "meters"), i);
            resets += count(pm, "resets");
        }
        tol += num(m, "resolution_kwh") * (double)(1 + 2 * resets);
    }
    return tol;
}

static const char *const R_TOTAL[] = {"facility", "green_onsite", NULL};
static const char *const R_IT[] = {"it", NULL};
static const char *const R_GREEN[] = {"green_onsite", NULL};
static const char *const R_FACILITY[] = {"facility", NULL};
static const char *const R_COMPUTE[] = {"compute", NULL};
static const char *const R_COOLING[] = {"cooling", NULL};
static const char *const R_OTHER[] = {"other", NULL};

/* ---- verdicts worked out from the truth ---- */

enum {
    V_IN_SCOPE,
    V_OUT_OF_SCOPE,
    V_INSUFFICIENT,
    V_PROVISIONAL,
    V_PUE_BELOW,
    V_PUE_ABOVE,
    V_GREEN_ABOVE,
    V_REWARD,
    V_PRICING,
    V_CAP_WARNING,
    V_CAP_PROJECTED,
    V_CAP_EXCEEDED,
    V_CONVERSION,
    V_GREEN_BELOW,
    V_COUNT
};
static const char *const vnames[V_COUNT] = {"in_scope",
                                            "out_of_scope",
                                            "insufficient_data",
                                            "provisional",
                                            "pue_below_limit",
                                            "pue_above_limit",
                                            "green_share_above_threshold",
                                            "reward_eligible",
                                            "differential_pricing_candidate",
                                            "cap_warning",
                                            "cap_projected_to_exceed",
                                            "cap_exceeded",
                                            "computing_center_conversion",
                                            "green_share_below_threshold"};

typedef struct expect {
    int want[V_COUNT];
    int sure[V_COUNT]; /* 0: the truth is too close to the threshold to call */
} expect;

/* +1 / -1 when a is clearly above / below b, 0 within tol. */
static int cmp_tol(double a, double b, double tol)
{
    return a > b + tol ? 1 : a < b - tol ? -1 : 0;
}

static void set(expect *e, int v, int want, int sure)
{
    e->want[v] = want;
    e->sure[v] = sure;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && ((y % 4 == 0 && y % 100) || y % 400 == 0) ? 29 : d[m - 1];
}

/* Cap figures at the end of months [0, m1) from the truth's day totals:
 * year to date and the projection from the trailing PROJECTION_DAYS. */
static void cap_truth(const cJSON *truth, int m1, double *ytd, double *projected)
{
    const cJSON *days = get(truth, "day_total_kwh");
    int ndays = cJSON_GetArraySize(days), d1 = 0;
    for (int m = 1; m <= m1; m++)
        d1 += days_in_month(YEAR, m);
    double sum = 0, trailing = 0;
    int td0 = d1 - PROJECTION_DAYS < 0 ? 0 : d1 - PROJECTION_DAYS;
    for (int d = 0; d < d1; d++) {
        double v = cJSON_GetArrayItem(days, d)->valuedouble;
        sum += v;
        if (d >= td0) trailing += v;
    }
    double rate = d1 > td0 ? trailing / ((double)(d1 - td0) * MS_PER_DAY) : 0;
    *ytd = sum;
    *projected = sum + rate * (double)(ndays - d1) * MS_PER_DAY;
}

/* The verdicts of truth period tp, months [m0, m1) of the year. */
static void expected_verdicts(const cJSON *truth, const cJSON *tp, int m0, int m1, expect *e)
{
    memset(e, 0, sizeof *e);
    for (int v = 0; v < V_COUNT; v++)
        e->sure[v] = 1;
    int in_scope = num(truth, "racks") > SCOPE_RACKS || num(truth, "rack_power_kw") > SCOPE_RACK_KW;
    set(e, V_IN_SCOPE, in_scope, 1);
    set(e, V_OUT_OF_SCOPE, !in_scope, 1);
    if (!in_scope) return;

    double cap = num(truth, "approved_annual_kwh");
    if (!isnan(cap)) {
        double ytd, proj;
        cap_truth(truth, m1, &ytd, &proj);
        double tol = energy_tol(truth, 0, m1, R_TOTAL);
        int exceeded = cmp_tol(ytd, cap, tol);
        set(e, V_CAP_EXCEEDED, exceeded > 0, exceeded != 0);
        if (exceeded <= 0) {
            int sure = exceeded != 0;
            int warn = cmp_tol(ytd / cap * 100, CAP_WARN_PERCENT, tol / cap * 100);
            set(e, V_CAP_WARNING, warn > 0, sure && warn != 0);
            /* the projection's rate error is the trailing sum's, scaled up by
             * the rest of the year: generously 13 x the energy tolerance */
            int over = cmp_tol(proj, cap, 13 * tol);
            set(e, V_CAP_PROJECTED, over > 0, sure && over != 0);
        }
    }

    double pue = num(tp, "pue"), share = num(tp, "green_share"), c = num(tp, "completeness");
    int insufficient = isnan(pue) || c < COMPLETENESS_MIN;
    set(e, V_INSUFFICIENT, insufficient, 1);
    if (insufficient) return;
    double pue_tol = 1e-6 * pue;
    int pc = cmp_tol(pue, PUE_LIMIT, pue_tol);
    set(e, V_PUE_BELOW, pc < 0, pc != 0);
    set(e, V_PUE_ABOVE, pc > 0, pc != 0);
    set(e, V_PRICING, pc > 0, pc != 0);
    int gc = cmp_tol(share, GREEN_THRESHOLD_2025, 1e-6 * share);
    set(e, V_GREEN_ABOVE, gc > 0, gc != 0);
    set(e, V_GREEN_BELOW, gc < 0, gc != 0);
    set(e, V_REWARD, pc < 0 && gc > 0, pc != 0 && gc != 0);
    double baseline = num(truth, "baseline_annual_kwh");
    if (m1 - m0 == 12 && !isnan(baseline)) {
        double total = num(tp, "total_kwh"), tol = energy_tol(truth, m0, m1, R_TOTAL);
        int sc = cmp_tol(num(tp, "compute_share"), CONVERSION_SHARE, 1e-6);
        int bc = cmp_tol(total, baseline, tol);
        set(e, V_CONVERSION, sc >= 0 && bc <= 0, sc != 0 && bc != 0);
    }
}

static void check_verdicts(const char *name, const cJSON *ap, const expect *e)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, get(ap, "verdicts"))
    {
        int k = 0;
        while (k < V_COUNT && strcmp(vnames[k], v->valuestring))
            k++;
        if (k == V_COUNT) fail_msg("%s: unknown verdict %s", name, v->valuestring);
        if (e->sure[k] && !e->want[k])
            fail_msg("%s: audit says %s, the truth does not", name, vnames[k]);
    }
    for (int k = 0; k < V_COUNT; k++) {
        if (!e->sure[k])
            print_message("%s: %s too close to call, not checked\n", name, vnames[k]);
        else if (e->want[k] && !has_verdict(ap, vnames[k]))
            fail_msg("%s: the truth gives %s, the audit does not", name, vnames[k]);
    }
}

/* ---- one site ---- */

typedef struct site_case {
    const char *site;
    const char *seed;
    int faults;
} site_case;

typedef struct result {
    cJSON *truth, *audit;
} result;

static void generate_and_audit(const site_case *sc, result *r)
{
    char ledger[1024], policy[1024], csv[1024], truth[1024], audit[1024], log[1024];
    snprintf(ledger, sizeof ledger, "%s/sites/%s.yaml", configs_dir, sc->site);
    snprintf(policy, sizeof policy, "%s/policy/beijing-etown-2024.yaml", configs_dir);
    snprintf(csv, sizeof csv, "%s/%s.csv", work_dir, sc->site);
    snprintf(truth, sizeof truth, "%s/%s.truth.json", work_dir, sc->site);
    snprintf(audit, sizeof audit, "%s/%s.audit.json", work_dir, sc->site);
    snprintf(log, sizeof log, "%s/%s.gen.out", work_dir, sc->site);

    char *gen_argv[] = {(char *)gen_bin,
                        "--site",
                        ledger,
                        "--year",
                        "2025",
                        "--out",
                        csv,
                        "--truth",
                        truth,
                        "--seed",
                        (char *)sc->seed,
                        sc->faults ? "--faults" : NULL,
                        NULL};
    assert_int_equal(run(gen_argv, log), 0);
    char *audit_argv[] = {
        (char *)audit_bin, "--site", ledger,   "--policy", policy, "--readings", csv,
        "--year",          "2025",   "--json", NULL};
    assert_int_equal(run(audit_argv, audit), 0);
    r->truth = load_json(truth);
    r->audit = load_json(audit);
}

/* Figures, counts and verdicts of every month and the year. */
static void check_site(const result *r, int faults)
{
    const cJSON *truth = r->truth, *audit = r->audit;
    assert_int_equal(cJSON_GetArraySize(get(truth, "warnings")), 0);

    /* every row accepted; the glitch and the spike discarded, nothing else */
    const cJSON *rd = get(audit, "readings");
    assert_int_equal(count(rd, "rows"), count(truth, "rows"));
    assert_int_equal(count(rd, "accepted"), count(truth, "rows"));
    assert_int_equal(count(rd, "rejected"), 0);
    assert_int_equal(count(rd, "discarded_glitches"), count(truth, "discarded_readings"));
    assert_int_equal(cJSON_GetArraySize(get(rd, "unknown_meters")), 0);

    const cJSON *tmeters = get(truth, "meters");
    for (int pi = 0; pi < 13; pi++) {
        int m0 = pi < 12 ? pi : 0, m1 = pi < 12 ? pi + 1 : 12;
        const cJSON *tp = cJSON_GetArrayItem(get(truth, "periods"), pi);
        const char *name = get(tp, "period")->valuestring;
        const cJSON *ap = period(audit, name);
        static const struct {
            const char *key;
            const char *const *roles;
        } sums[] = {{"total_kwh", R_TOTAL},       {"it_kwh", R_IT},
                    {"green_kwh", R_GREEN},       {"green_onsite_kwh", R_GREEN},
                    {"facility_kwh", R_FACILITY}, {"compute_kwh", R_COMPUTE},
                    {"cooling_kwh", R_COOLING},   {"other_kwh", R_OTHER}};
        for (size_t i = 0; i < sizeof sums / sizeof sums[0]; i++) {
            double want = num(tp, sums[i].key);
            double tol = energy_tol(truth, m0, m1, sums[i].roles) + FLOAT_REL * fabs(want);
            assert_close(sums[i].key, name, num(ap, sums[i].key), want, tol);
        }
        /* ledger green is exact: whole months of contracts and certificates */
        assert_close("green_ledger_kwh", name, num(ap, "green_ledger_kwh"),
                     num(tp, "green_ledger_kwh"), KWH_PRINT);
        /* ratios: 1e-6 relative; the audit prints 6 decimals, so half a unit
         * of the sixth decimal on top (the energy tolerances above move
         * them by less than 1e-7 relative) */
        static const char *const ratios[] = {"pue", "green_share", "compute_share"};
        for (size_t i = 0; i < 3; i++) {
            double want = num(tp, ratios[i]);
            assert_close(ratios[i], name, num(ap, ratios[i]), want,
                         1e-6 * fabs(want) + RATIO_PRINT);
        }
        /* the estimated steps are exactly those the faults made */
        assert_close("completeness", name, num(ap, "completeness"), num(tp, "completeness"),
                     RATIO_PRINT + 1e-12);
        static const char *const counts[] = {"rollovers", "resets", "discarded_readings",
                                             "estimated_intervals"};
        for (size_t i = 0; i < 4; i++)
            if (count(ap, counts[i]) != count(tp, counts[i]))
                fail_msg("%s %s: audit %ld, generator injected %ld", name, counts[i],
                         count(ap, counts[i]), count(tp, counts[i]));

        /* per meter: energy and fault counts */
        const cJSON *am = get(ap, "meters"), *tm = get(tp, "meters");
        assert_int_equal(cJSON_GetArraySize(am), cJSON_GetArraySize(tm));
        for (int i = 0; i < cJSON_GetArraySize(tm); i++) {
            const cJSON *a = cJSON_GetArrayItem(am, i), *t = cJSON_GetArrayItem(tm, i);
            const char *id = get(t, "id")->valuestring;
            assert_string_equal(get(a, "id")->valuestring, id);
            double res = num(cJSON_GetArrayItem(tmeters, i), "resolution_kwh");
            double want = num(t, "kwh");
            char what[128];
            snprintf(what, sizeof what, "meter %s kwh", id);
            assert_close(what, name, num(a, "kwh"), want,
                         res * (double)(1 + 2 * count(t, "resets")) + KWH_PRINT + FLOAT_REL * want);
            snprintf(what, sizeof what, "meter %s completeness", id);
            assert_close(what, name, num(a, "completeness"), num(t, "completeness"),
                         RATIO_PRINT + 1e-12);
            static const char *const mc[] = {"rollovers", "resets", "discarded_readings"};
            for (size_t k = 0; k < 3; k++)
                if (count(a, mc[k]) != count(t, mc[k]))
                    fail_msg("%s meter %s %s: audit %ld, generator %ld", name, id, mc[k],
                             count(a, mc[k]), count(t, mc[k]));
        }

        /* cap: year to date and usage against the truth's day totals */
        double cap = num(truth, "approved_annual_kwh");
        const cJSON *ac = get(ap, "cap");
        if (isnan(cap)) {
            assert_true(cJSON_IsNull(ac));
        } else {
            double ytd, proj, tol = energy_tol(truth, 0, m1, R_TOTAL);
            cap_truth(truth, m1, &ytd, &proj);
            assert_close("cap.approved_kwh", name, num(ac, "approved_kwh"), cap, KWH_PRINT);
            assert_close("cap.ytd_kwh", name, num(ac, "ytd_kwh"), ytd, tol + FLOAT_REL * ytd);
            assert_close("cap.usage", name, num(ac, "usage"), ytd / cap,
                         tol / cap + RATIO_PRINT + 1e-9);
            assert_close("cap.projected_kwh", name, num(ac, "projected_kwh"), proj,
                         13 * tol + FLOAT_REL * proj);
        }

        /* surcharge: all energy of the period at the tier of its PUE */
        const cJSON *as = get(ap, "surcharge");
        if (has_verdict(ap, "differential_pricing_candidate")) {
            double pue = num(tp, "pue"), total = num(tp, "total_kwh");
            double rate = (pue - PUE_LIMIT) / PUE_LIMIT <= TIER1_OVER ? TIER1_CNY : TIER2_CNY;
            double tol = energy_tol(truth, m0, m1, R_TOTAL) + FLOAT_REL * total;
            assert_string_equal(get(as, "applies_to")->valuestring, "all");
            assert_close("surcharge.kwh", name, num(as, "kwh"), total, tol);
            assert_close("surcharge.cny_per_kwh", name, num(as, "cny_per_kwh"), rate, 5e-5);
            assert_close("surcharge.cny", name, num(as, "cny"), total * rate, rate * tol + 0.005);
            /* and consistent with itself: cny = kwh x rate */
            assert_close("surcharge.cny vs kwh", name, num(as, "cny"), num(as, "kwh") * rate,
                         rate * KWH_PRINT + 0.005);
        } else {
            assert_true(cJSON_IsNull(as));
        }

        expect e;
        expected_verdicts(truth, tp, m0, m1, &e);
        check_verdicts(name, ap, &e);
        if (pi == 12)
            for (int k = 0; k < V_COUNT; k++)
                if (!e.sure[k]) fail_msg("year: %s must not be near its threshold", vnames[k]);
    }

    /* the year: complete enough, and the faults the generator injected are
     * the ones the audit found */
    const cJSON *ay = period(audit, "2025");
    assert_true(num(ay, "completeness") >= 0.99);
    int kinds[5] = {0};
    static const char *const fk[] = {"rollover", "reset", "glitch", "spike", "gap"};
    const cJSON *f;
    cJSON_ArrayForEach(f, get(truth, "faults"))
    {
        for (int k = 0; k < 5; k++)
            kinds[k] += !strcmp(get(f, "kind")->valuestring, fk[k]);
    }
    if (faults) {
        for (int k = 0; k < 5; k++)
            if (kinds[k] != 1) fail_msg("%d %s faults in truth.json, expected 1", kinds[k], fk[k]);
        assert_int_equal(count(ay, "rollovers"), 1);
        assert_int_equal(count(ay, "resets"), 1);
        assert_int_equal(count(ay, "discarded_readings"), 2);
        /* glitch 2 + spike 2 + gap 9 + reset 1 estimated intervals */
        assert_int_equal(count(ay, "estimated_intervals"), 14);
    } else {
        assert_int_equal(cJSON_GetArraySize(get(truth, "faults")), 0);
        assert_int_equal(count(ay, "rollovers"), 0);
        assert_int_equal(count(ay, "resets"), 0);
        assert_int_equal(count(ay, "discarded_readings"), 0);
        assert_int_equal(count(ay, "estimated_intervals"), 0);
        assert_true(num(ay, "completeness") == 1.0);
    }
}

static void free_result(result *r)
{
    cJSON_Delete(r->truth);
    cJSON_Delete(r->audit);
}

/* ---- the three sites and what they were designed to show ---- */

/* yz-alpha: reward-eligible (PUE < 1.4, green share > 20%), cap far off. */
static void test_alpha_reward_eligible(void **state)
{
    (void)state;
    static const site_case sc = {"yz-alpha", "1", 1};
    result r;
    generate_and_audit(&sc, &r);
    check_site(&r, 1);
    const cJSON *ty = cJSON_GetArrayItem(get(r.truth, "periods"), 12);
    const cJSON *ay = period(r.audit, "2025");
    assert_true(num(ty, "pue") < PUE_LIMIT && num(ty, "green_share") > GREEN_THRESHOLD_2025);
    assert_true(has_verdict(ay, "reward_eligible"));
    assert_false(has_verdict(ay, "differential_pricing_candidate"));
    assert_false(has_verdict(ay, "cap_exceeded") || has_verdict(ay, "cap_warning"));
    free_result(&r);
}

/* yz-beta: differential-pricing candidate at the first tier. */
static void test_beta_differential_pricing(void **state)
{
    (void)state;
    static const site_case sc = {"yz-beta", "2", 1};
    result r;
    generate_and_audit(&sc, &r);
    check_site(&r, 1);
    const cJSON *ty = cJSON_GetArrayItem(get(r.truth, "periods"), 12);
    const cJSON *ay = period(r.audit, "2025");
    double pue = num(ty, "pue");
    assert_true(pue > PUE_LIMIT && num(ty, "green_share") < GREEN_THRESHOLD_2025);
    assert_true(has_verdict(ay, "differential_pricing_candidate"));
    assert_true(has_verdict(ay, "pue_above_limit"));
    assert_false(has_verdict(ay, "reward_eligible"));
    const cJSON *s = get(ay, "surcharge");
    double rate = (pue - PUE_LIMIT) / PUE_LIMIT <= TIER1_OVER ? TIER1_CNY : TIER2_CNY;
    assert_true(rate == TIER1_CNY); /* designed for the first tier */
    assert_close("surcharge.cny", "2025", num(s, "cny"), num(s, "kwh") * rate,
                 rate * KWH_PRINT + 0.005);
    print_message("yz-beta 2025: PUE %.4f, surcharge %.2f CNY on %.0f kWh\n", num(ay, "pue"),
                  num(s, "cny"), num(s, "kwh"));
    free_result(&r);
}

/* yz-gamma: over its approved cap; clean data (no faults). */
static void test_gamma_cap_exceeded(void **state)
{
    (void)state;
    static const site_case sc = {"yz-gamma", "3", 0};
    result r;
    generate_and_audit(&sc, &r);
    check_site(&r, 0);
    const cJSON *ty = cJSON_GetArrayItem(get(r.truth, "periods"), 12);
    const cJSON *ay = period(r.audit, "2025");
    double cap = num(r.truth, "approved_annual_kwh"), total = num(ty, "total_kwh");
    assert_true(total > cap);
    assert_true(has_verdict(ay, "cap_exceeded"));
    assert_close("cap.usage", "2025", num(get(ay, "cap"), "usage"), total / cap,
                 energy_tol(r.truth, 0, 12, R_TOTAL) / cap + RATIO_PRINT + 1e-9);
    /* designed to pass the cap late in the year: October or November */
    int first = 0;
    for (int m = 1; m <= 12 && !first; m++) {
        char name[16];
        snprintf(name, sizeof name, "2025-%02d", m);
        if (has_verdict(period(r.audit, name), "cap_exceeded")) first = m;
    }
    print_message("yz-gamma: cap %.0f kWh, 2025 use %.0f kWh (%.1f%%), exceeded in month %d\n", cap,
                  total, total / cap * 100, first);
    assert_true(first == 10 || first == 11);
    free_result(&r);
}

/* Appends the data rows of src (all but its header line) to dst. */
static void append_rows(const char *dst, const char *src)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "ab");
    assert_non_null(in);
    assert_non_null(out);
    char line[512];
    for (int first = 1; fgets(line, sizeof line, in); first = 0)
        if (!first) fputs(line, out);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* The last data row of a CSV, without its newline. */
static void last_row(const char *path, char *row, size_t size)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char line[512];
    row[0] = 0;
    while (fgets(line, sizeof line, fp))
        snprintf(row, size, "%.*s", (int)strcspn(line, "\n"), line);
    fclose(fp);
}

/* --end-counters, --start-counters and --until: 2025 and 2026 up to
 * 10:07:30 on 15 June make one unbroken history (no reset at the year's
 * turn, the start row not written twice), whose 2026 figures equal the
 * truth of the cut year; the last readings are at --until, and are the end
 * counters. */
static void continued_until(void **state)
{
    (void)state;
    char ledger[1024], policy[1024], a[1024], b[1024], ae[1024], be[1024], at[1024], bt[1024];
    char both[1024], audit[1024], log[1024];
    snprintf(ledger, sizeof ledger, "%s/sites/yz-gamma.yaml", configs_dir);
    snprintf(policy, sizeof policy, "%s/policy/beijing-etown-2024.yaml", configs_dir);
    snprintf(a, sizeof a, "%s/cont-2025.csv", work_dir);
    snprintf(b, sizeof b, "%s/cont-2026.csv", work_dir);
    snprintf(ae, sizeof ae, "%s/cont-2025-end.csv", work_dir);
    snprintf(be, sizeof be, "%s/cont-2026-end.csv", work_dir);
    snprintf(at, sizeof at, "%s/cont-2025.json", work_dir);
    snprintf(bt, sizeof bt, "%s/cont-2026.json", work_dir);
    snprintf(both, sizeof both, "%s/cont.csv", work_dir);
    snprintf(audit, sizeof audit, "%s/cont.audit.json", work_dir);
    snprintf(log, sizeof log, "%s/cont.gen.out", work_dir);
    char *gen_a[] = {(char *)gen_bin, "--site", ledger,           "--year", "2025", "--out", a,
                     "--truth",       at,       "--end-counters", ae,       NULL};
    assert_int_equal(run(gen_a, log), 0);
    char *gen_b[] = {(char *)gen_bin,
                     "--site",
                     ledger,
                     "--year",
                     "2026",
                     "--out",
                     b,
                     "--truth",
                     bt,
                     "--start-counters",
                     ae,
                     "--until",
                     "2026-06-15T02:07:30Z",
                     "--end-counters",
                     be,
                     NULL};
    assert_int_equal(run(gen_b, log), 0);
    /* faults need their own start values */
    char *gen_c[] = {
        (char *)gen_bin,    "--site", ledger,     "--year", "2026", "--out", b, "--truth", bt,
        "--start-counters", ae,       "--faults", NULL};
    assert_int_equal(run(gen_c, log), 2);
    assert_int_equal(run(gen_b, log), 0);

    /* the start row is 2025's last; 2026's last rows are at --until */
    FILE *fp = fopen(b, "rb");
    assert_non_null(fp);
    char line[512];
    assert_non_null(fgets(line, sizeof line, fp));
    assert_non_null(fgets(line, sizeof line, fp));
    fclose(fp);
    assert_true(!strncmp(line, "2026-01-01T00:15:00+08:00,", 26));
    char rb[512], re[512];
    last_row(b, rb, sizeof rb);
    last_row(be, re, sizeof re);
    assert_string_equal(rb, re);
    assert_true(!strncmp(rb, "2026-06-15T10:07:30+08:00,", 26));

    fp = fopen(both, "wb");
    assert_non_null(fp);
    fputs("time,meter,kwh\n", fp);
    fclose(fp);
    append_rows(both, a);
    append_rows(both, b);
    char *audit_argv[] = {
        (char *)audit_bin, "--site", ledger,   "--policy", policy, "--readings", both,
        "--year",          "2026",   "--json", NULL};
    assert_int_equal(run(audit_argv, audit), 0);
    cJSON *truth = load_json(bt), *au = load_json(audit);
    assert_string_equal(get(truth, "until")->valuestring, "2026-06-15T10:07:30+08:00");
    assert_int_equal(cJSON_GetArraySize(get(truth, "periods")), 7); /* January-June, the year */
    assert_int_equal(count(get(au, "readings"), "rejected"), 0);
    for (int pi = 0; pi < 7; pi++) {
        int m0 = pi < 6 ? pi : 0, m1 = pi < 6 ? pi + 1 : 6;
        const cJSON *tp = cJSON_GetArrayItem(get(truth, "periods"), pi);
        const char *name = get(tp, "period")->valuestring;
        const cJSON *ap = period(au, name);
        double want = num(tp, "total_kwh");
        assert_close("total_kwh", name, num(ap, "total_kwh"), want,
                     energy_tol(truth, m0, m1, R_TOTAL) + FLOAT_REL * want);
        want = num(tp, "it_kwh");
        assert_close("it_kwh", name, num(ap, "it_kwh"), want,
                     energy_tol(truth, m0, m1, R_IT) + FLOAT_REL * want);
        assert_int_equal(count(ap, "resets"), 0);
        assert_int_equal(count(ap, "discarded_readings"), 0);
        assert_int_equal(count(ap, "estimated_intervals"), 0);
        if (pi < 5) /* whole months: every interval has its reading */
            assert_close("completeness", name, num(ap, "completeness"), 1, RATIO_PRINT);
    }
    assert_close("truth completeness", "2026",
                 num(cJSON_GetArrayItem(get(truth, "periods"), 6), "completeness"), 1, 1e-12);
    cJSON_Delete(truth);
    cJSON_Delete(au);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s DCEM-GEN DCEM-AUDIT CONFIGS-DIR WORK-DIR\n", argv[0]);
        return 2;
    }
    gen_bin = argv[1];
    audit_bin = argv[2];
    configs_dir = argv[3];
    work_dir = argv[4];
    if (mkdir(work_dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "%s: %s\n", work_dir, strerror(errno));
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpha_reward_eligible),
        cmocka_unit_test(test_beta_differential_pricing),
        cmocka_unit_test(test_gamma_cap_exceeded),
        cmocka_unit_test(continued_until),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
