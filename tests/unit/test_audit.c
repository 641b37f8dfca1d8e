/* The audit engine end to end on in-memory rows: calendar edges (gap across
 * a month end, New Year in Shanghai, DST days, a leap year), completeness,
 * and rejected rows counted by reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "audit.h"
#include "calendar.h"
#include "dcem_io.h"
#include "parse.h"
#include "period_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN 60000LL
#define HOUR 3600000LL

static const char policy_yaml[] =
    "policy: test\n"
    "scope: {racks_more_than: 50, rack_power_kw_more_than: 250}\n"
    "pue: {limit: 1.4}\n"
    "green_share: {base_percent: 10, step_percent: 10, base_year: 2024}\n"
    "differential_pricing:\n  tiers:\n    - {over_limit_up_to: 1.0, cny_per_kwh: 0.2}\n"
    "    - {cny_per_kwh: 0.5}\n"
    "cap: {warning_percent: [80, 90]}\n";

typedef struct fixture {
    dcem_site site;
    dcem_policy policy;
    dcem_tz *tz;
    dcem_audit *audit;
    dcem_zone zone;
} fixture;

/* A site with a facility meter f1 and an IT meter i1 in zone tz. */
static fixture *setup_site(const char *tz, const char *extra)
{
    fixture *fx = calloc(1, sizeof *fx);
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml,
             "site: t\ntimezone: %s\nracks: 100\nrack_power_kw: 500\n%s"
             "meters:\n"
             "  - {id: f1, role: facility, rated_kw: 500}\n"
             "  - {id: i1, role: it, rated_kw: 500}\n",
             tz, extra);
    int rc = dcem_site_parse("site.yaml", yaml, strlen(yaml), &fx->site, err, sizeof err);
    if (rc) fail_msg("%s", err);
    rc = dcem_policy_parse("policy.yaml", policy_yaml, strlen(policy_yaml), &fx->policy, err,
                           sizeof err);
    if (rc) fail_msg("%s", err);
    rc = dcem_io_load_tz(tz, &fx->tz, err, sizeof err);
    if (rc) fail_msg("%s", err);
    fx->audit = dcem_audit_new(&fx->site, &fx->policy, fx->tz);
    assert_non_null(fx->audit);
    dcem_zone_init(&fx->zone, fx->tz);
    assert_int_equal(dcem_audit_header(fx->audit, "time,meter,kwh", 14), 0);
    return fx;
}

static void teardown_site(fixture *fx)
{
    dcem_audit_free(fx->audit);
    dcem_tz_free(fx->tz);
    free(fx);
}

static int feed(fixture *fx, int64_t t, const char *meter, double kwh)
{
    char line[128], ts[40];
    dcem_format_time(t, 0, ts, sizeof ts);
    int n = snprintf(line, sizeof line, "%s,%s,%.4f", ts, meter, kwh);
    return dcem_audit_row(fx->audit, line, (size_t)n);
}

/* Counter readings of constant power kw every step from t0 to t1 inclusive,
 * skipping (t > skip0 && t < skip1). */
static void feed_constant(fixture *fx, const char *meter, double kw, int64_t t0, int64_t t1,
                          int64_t step, int64_t skip0, int64_t skip1)
{
    for (int64_t t = t0; t <= t1; t += step) {
        if (t > skip0 && t < skip1) continue;
        assert_int_equal(feed(fx, t, meter, 1000 + kw * (double)(t - t0) / HOUR), DCEM_ROW_OK);
    }
}

static int64_t utc(const char *s)
{
    int64_t t;
    assert_int_equal(dcem_parse_time(s, strlen(s), &t), 0);
    return t;
}

static void period(fixture *fx, int kind, long long y, int m, dcem_figures *f, dcem_verdicts *v,
                   dcem_meter_period *mp)
{
    dcem_audit_period(fx->audit, kind, y * 12 + m - 1, kind == DCEM_PERIOD_YEAR ? 12 : 1,
                      INT64_MAX, f, v, mp);
}

static int has(const dcem_verdicts *v, int id)
{
    return (v->bits >> id) & 1;
}

/* Readings missing from 31 Jan 20:00 to 1 Feb 04:00 local: the energy
 * between the readings on both sides is spread over the gap in proportion
 * to time, half in each month, marked estimated; nothing lost or doubled. */
static void test_gap_across_month_end(void **state)
{
    (void)state;
    fixture *fx = setup_site("Asia/Shanghai", "");
    int64_t t0 = utc("2025-01-25T00:00:00+08:00"), t1 = utc("2025-02-05T00:00:00+08:00");
    int64_t g0 = utc("2025-01-31T20:00:00+08:00"), g1 = utc("2025-02-01T04:00:00+08:00");
    feed_constant(fx, "f1", 140, t0, t1, 15 * MIN, g0, g1);
    feed_constant(fx, "i1", 100, t0, t1, 15 * MIN, -1, -1);
    assert_int_equal(dcem_audit_finish(fx->audit), 0);
    dcem_figures jan, feb;
    dcem_verdicts v;
    dcem_meter_period mp[2];
    period(fx, DCEM_PERIOD_MONTH, 2025, 1, &jan, &v, mp);
    assert_int_equal(mp[0].ukwh, 140LL * 7 * 24 * 1000000);
    /* measured between 20:00 and 04:00; only its split across the month's
     * end is estimated: the 4 h in each month */
    assert_int_equal(mp[0].estimated_ukwh[DCEM_SPAN_MONTH], 140LL * 4 * 1000000);
    assert_int_equal(mp[0].estimated_ukwh[DCEM_SPAN_YEAR], 0);
    /* 15 readings missing (20:15 to 23:45) of the 7 days' 672 */
    assert_int_equal(mp[0].read_intervals, 7 * 96 - 15);
    assert_int_equal(mp[0].expected_intervals, 31 * 96);
    assert_int_equal(mp[0].estimated_intervals, 16);
    period(fx, DCEM_PERIOD_MONTH, 2025, 2, &feb, &v, mp);
    assert_int_equal(mp[0].ukwh, 140LL * 4 * 24 * 1000000);
    assert_int_equal(mp[0].estimated_ukwh[DCEM_SPAN_MONTH], 140LL * 4 * 1000000);
    assert_float_equal(jan.estimated_kwh, 140.0 * 4, 1e-6);
    teardown_site(fx);
}

/* 2025-12-31T16:00Z is already 2026 in Shanghai. */
static void test_new_year_in_shanghai(void **state)
{
    (void)state;
    fixture *fx = setup_site("Asia/Shanghai", "");
    int64_t t0 = utc("2025-12-31T15:00:00Z"), t1 = utc("2025-12-31T17:00:00Z");
    feed_constant(fx, "f1", 140, t0, t1, 15 * MIN, -1, -1);
    feed_constant(fx, "i1", 100, t0, t1, 15 * MIN, -1, -1);
    assert_int_equal(dcem_audit_finish(fx->audit), 0);
    dcem_figures dec, jan, y25, y26;
    dcem_verdicts v;
    dcem_meter_period mp[2];
    period(fx, DCEM_PERIOD_MONTH, 2025, 12, &dec, &v, mp);
    period(fx, DCEM_PERIOD_MONTH, 2026, 1, &jan, &v, mp);
    period(fx, DCEM_PERIOD_YEAR, 2025, 1, &y25, &v, mp);
    period(fx, DCEM_PERIOD_YEAR, 2026, 1, &y26, &v, mp);
    assert_int_equal(jan.start_ms, utc("2025-12-31T16:00:00Z"));
    assert_float_equal(dec.total_kwh, 140, 1e-9);
    assert_float_equal(jan.total_kwh, 140, 1e-9);
    assert_float_equal(y25.total_kwh, 140, 1e-9);
    assert_float_equal(y26.total_kwh, 140, 1e-9);
    assert_int_equal(y26.year, 2026);
    teardown_site(fx);
}

/* Berlin: 30 March 2025 has 23 hours, 26 October 25. A month of constant
 * power is its true number of hours, and fully covered is fully complete. */
static void test_dst_months(void **state)
{
    (void)state;
    fixture *fx = setup_site("Europe/Berlin", "");
    int64_t t0 = utc("2025-03-01T00:00:00+01:00"), t1 = utc("2025-11-01T00:00:00+01:00");
    feed_constant(fx, "f1", 140, t0, t1, 15 * MIN, -1, -1);
    feed_constant(fx, "i1", 100, t0, t1, 15 * MIN, -1, -1);
    assert_int_equal(dcem_audit_finish(fx->audit), 0);
    dcem_figures f;
    dcem_verdicts v;
    dcem_meter_period mp[2];
    period(fx, DCEM_PERIOD_MONTH, 2025, 3, &f, &v, mp);
    assert_int_equal(f.end_ms - f.start_ms, (31 * 24 - 1) * HOUR);
    assert_float_equal(f.total_kwh, 140.0 * (31 * 24 - 1), 1e-6);
    assert_float_equal(f.completeness, 1.0, 0);
    period(fx, DCEM_PERIOD_MONTH, 2025, 10, &f, &v, mp);
    assert_int_equal(f.end_ms - f.start_ms, (31 * 24 + 1) * HOUR);
    assert_float_equal(f.total_kwh, 140.0 * (31 * 24 + 1), 1e-6);
    assert_float_equal(f.completeness, 1.0, 0);
    /* PUE exactly 1.4 end to end: neither below nor above the limit */
    assert_false(has(&v, DCEM_V_PUE_BELOW_LIMIT));
    assert_false(has(&v, DCEM_V_PUE_ABOVE_LIMIT));
    assert_false(has(&v, DCEM_V_DIFFERENTIAL_PRICING));
    assert_false(has(&v, DCEM_V_INSUFFICIENT_DATA));
    teardown_site(fx);
}

static void test_leap_year(void **state)
{
    (void)state;
    fixture *fx = setup_site("Asia/Shanghai", "");
    int64_t t0 = utc("2024-02-01T00:00:00+08:00"), t1 = utc("2024-03-01T00:00:00+08:00");
    feed_constant(fx, "f1", 130, t0, t1, 15 * MIN, -1, -1);
    feed_constant(fx, "i1", 100, t0, t1, 15 * MIN, -1, -1);
    assert_int_equal(dcem_audit_finish(fx->audit), 0);
    dcem_figures f;
    dcem_verdicts v;
    period(fx, DCEM_PERIOD_MONTH, 2024, 2, &f, &v, NULL);
    assert_float_equal(f.total_kwh, 130.0 * 29 * 24, 1e-6);
    assert_float_equal(f.pue, 1.3, 1e-12);
    assert_float_equal(f.completeness, 1.0, 0);
    assert_true(has(&v, DCEM_V_PUE_BELOW_LIMIT));
    teardown_site(fx);
}

/* Two weeks of a month missing from the IT meter: no verdict but
 * insufficient data, though the energy that was metered still counts. */
static void test_incomplete_month(void **state)
{
    (void)state;
    fixture *fx = setup_site("Asia/Shanghai", "approved_annual_kwh: 100000\n");
    int64_t t0 = utc("2025-06-01T00:00:00+08:00"), t1 = utc("2025-07-01T00:00:00+08:00");
    feed_constant(fx, "f1", 200, t0, t1, 15 * MIN, -1, -1);
    /* 1440 of June's 2880 readings: the last at 15 June 23:45 */
    feed_constant(fx, "i1", 100, t0, utc("2025-06-16T00:00:00+08:00") - 15 * MIN, 15 * MIN, -1, -1);
    assert_int_equal(dcem_audit_finish(fx->audit), 0);
    dcem_figures f;
    dcem_verdicts v;
    period(fx, DCEM_PERIOD_MONTH, 2025, 6, &f, &v, NULL);
    assert_float_equal(f.completeness, 0.5, 1e-12);
    assert_true(has(&v, DCEM_V_INSUFFICIENT_DATA));
    assert_false(has(&v, DCEM_V_DIFFERENTIAL_PRICING)); /* PUE looks 4.0, but no charge */
    assert_true(has(&v, DCEM_V_CAP_EXCEEDED));          /* 144 MWh metered > 100 MWh cap */
    teardown_site(fx);
}

static void test_rejected_rows(void **state)
{
    (void)state;
    fixture *fx = setup_site("Asia/Shanghai", "");
    static const struct {
        const char *row;
        int reason;
    } rows[] = {
        {"2025-01-01T00:00:00+08:00,f1,100", DCEM_ROW_OK},
        {"2025-01-01T00:15:00+08:00,f1,110\r", DCEM_ROW_OK},
        {"2025-01-01T00:30:00+08:00,f1", DCEM_ROW_MALFORMED},
        {"2025-01-01T00:30:00+08:00,f1,1,2", DCEM_ROW_MALFORMED},
        {"2025-01-01 00:30,f1,120", DCEM_ROW_BAD_TIME},
        {"2025-01-01T00:30:00+08:00,f1,12O", DCEM_ROW_BAD_KWH},
        {"2025-01-01T00:30:00+08:00,f1,nan", DCEM_ROW_BAD_KWH},
        {"2025-01-01T00:30:00+08:00,f1,", DCEM_ROW_NO_VALUE},
        {"2025-01-01T00:30:00+08:00,ghost,1", DCEM_ROW_UNKNOWN_METER},
        {"2025-01-01T00:30:00+08:00,ghost,2", DCEM_ROW_UNKNOWN_METER},
        {"2025-01-01T00:15:00+08:00,f1,110", DCEM_ROW_OUT_OF_ORDER},
        {"2025-01-01T00:30:00+08:00,f1,-5", DCEM_ROW_OUT_OF_RANGE},
        {"2025-01-01T00:30:00+08:00,f1,120", DCEM_ROW_OK},
    };
    size_t n = sizeof rows / sizeof rows[0];
    for (size_t i = 0; i < n; i++)
        assert_int_equal(dcem_audit_row(fx->audit, rows[i].row, strlen(rows[i].row)),
                         rows[i].reason);
    const dcem_audit_stats *st = dcem_audit_stats_get(fx->audit);
    assert_int_equal(st->rows, n);
    assert_int_equal(st->accepted, 3);
    assert_int_equal(st->rejected, n - 3);
    assert_int_equal(st->by_reason[DCEM_ROW_MALFORMED], 2);
    assert_int_equal(st->by_reason[DCEM_ROW_UNKNOWN_METER], 2);
    assert_int_equal(dcem_audit_unknown_count(fx->audit), 1);
    long long urows;
    assert_string_equal(dcem_audit_unknown(fx->audit, 0, &urows), "ghost");
    assert_int_equal(urows, 2);
    assert_int_equal(dcem_audit_header(fx->audit, "time,meter,kwh,kw", 17), 0);
    assert_int_not_equal(dcem_audit_header(fx->audit, "meter,time,kwh", 14), 0);
    assert_int_equal(dcem_audit_finish(fx->audit), 0);
    dcem_figures f;
    dcem_verdicts v;
    period(fx, DCEM_PERIOD_MONTH, 2025, 1, &f, &v, NULL);
    assert_float_equal(f.role_kwh[DCEM_ROLE_FACILITY], 20, 1e-9);
    teardown_site(fx);
}

/* A meter's second reading stamped days ahead: discarded once the third
 * comes back in time, and the energy of the first days is all there (the
 * discarded reading's day is booked before the earlier days' intervals). */
static void test_clock_glitch_early(void **state)
{
    (void)state;
    fixture *fx = setup_site("Asia/Shanghai", "");
    int64_t t0 = utc("2025-01-01T00:00:00+08:00");
    assert_int_equal(feed(fx, t0, "f1", 1000), DCEM_ROW_OK);
    assert_int_equal(feed(fx, t0 + 5 * 24 * HOUR, "f1", 1100), DCEM_ROW_OK);
    for (int i = 1; i <= 96 * 2; i++)
        assert_int_equal(feed(fx, t0 + i * 15 * MIN, "f1", 1000 + 10.0 * i), DCEM_ROW_OK);
    assert_int_equal(dcem_audit_finish(fx->audit), 0);
    assert_int_equal(dcem_audit_stats_get(fx->audit)->discarded, 1);
    dcem_figures f;
    dcem_verdicts v;
    dcem_meter_period mp[2];
    period(fx, DCEM_PERIOD_MONTH, 2025, 1, &f, &v, mp);
    assert_int_equal(mp[0].ukwh, 1920000000);
    /* 193 readings, one per interval; the glitch is not one of them */
    assert_int_equal(mp[0].read_intervals, 193);
    assert_int_equal(mp[0].discarded_readings, 1);
    teardown_site(fx);
}

/* The ratio column: a facility meter behind CTs, reprogrammed from 400 to
 * 800 mid-month. Its register moves 0.1 kWh per 15 min (40 kWh primary
 * at 400, 80 at 800); the change is a counter event at the new scale,
 * never a jump, and a bad ratio is a rejected row that changes nothing. */
static void test_ratio_column(void **state)
{
    (void)state;
    fixture *fx = setup_site("Asia/Shanghai", "");
    assert_int_equal(dcem_audit_header(fx->audit, "time,meter,kwh,kw,ratio", 23), 0);
    int64_t t0 = utc("2025-01-01T00:00:00+08:00");
    char line[160], ts[40];
    double reg = 1000;
    for (int i = 0; i <= 8; i++, reg += 0.1) {
        double ratio = i < 4 ? 400 : 800;
        dcem_format_time(t0 + i * 15 * MIN, 0, ts, sizeof ts);
        int n = snprintf(line, sizeof line, "%s,f1,%.6f,,%g", ts, reg * ratio, ratio);
        assert_int_equal(dcem_audit_row(fx->audit, line, (size_t)n), DCEM_ROW_OK);
    }
    static const char *const bad[] = {
        "2025-01-01T02:15:00+08:00,f1,1,,0",   "2025-01-01T02:15:00+08:00,f1,1,,-2",
        "2025-01-01T02:15:00+08:00,f1,1,,1e11", "2025-01-01T02:15:00+08:00,f1,1,,x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(dcem_audit_row(fx->audit, bad[i], strlen(bad[i])), DCEM_ROW_BAD_RATIO);
    assert_int_equal(dcem_audit_finish(fx->audit), 0);
    assert_int_equal(dcem_audit_stats_get(fx->audit)->by_reason[DCEM_ROW_BAD_RATIO], 4);
    dcem_figures f;
    dcem_verdicts v;
    dcem_meter_period mp[2];
    period(fx, DCEM_PERIOD_MONTH, 2025, 1, &f, &v, mp);
    /* 3 x 40 at 400, the straddling 15 min at the new scale (80), 4 x 80 */
    assert_float_equal(f.role_kwh[DCEM_ROLE_FACILITY], 120 + 80 + 320, 1e-6);
    assert_int_equal(mp[0].resets, 1);
    teardown_site(fx);
}

/* Random corruptions of valid rows never crash the engine (ASan/UBSan run
 * this too) and every row is either accepted or rejected with a reason. */
static void test_corrupt_rows(void **state)
{
    (void)state;
    fixture *fx = setup_site("Asia/Shanghai", "");
    uint32_t x = 2463534242u; /* xorshift32: deterministic */
    static const char alphabet[] = "0123456789-+:.,TZe \t\r\"f1i1nax";
    int64_t t = utc("2025-01-01T00:00:00+08:00");
    long long corrupted = 0, clean_rejected = 0;
    for (int i = 0; i < 20000; i++) {
        char line[128], ts[40];
        dcem_format_time(t + (int64_t)i * 15 * MIN, 8 * 3600, ts, sizeof ts);
        int n = snprintf(line, sizeof line, "%s,%s,%d.%02d", ts, i % 2 ? "f1" : "i1", 1000 + i,
                         i % 100);
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        int hits = i < 2 || x % 8 ? 0 : 1 + (int)(x >> 29); /* 1 row in 8, first rows clean */
        for (int k = 0; k < hits; k++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            size_t pos = (x >> 8) % (size_t)n;
            line[pos] = alphabet[(x >> 20) % (sizeof alphabet - 1)];
        }
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t len = (size_t)n - (x % 64 == 0 ? (x >> 4) % (size_t)n : 0); /* truncations */
        int r = dcem_audit_row(fx->audit, line, len);
        assert_true(r >= 0 && r < DCEM_ROW_REASON_COUNT);
        if (hits || len != (size_t)n) corrupted++;
        else if (r) clean_rejected++;
    }
    assert_int_equal(dcem_audit_finish(fx->audit), 0);
    const dcem_audit_stats *st = dcem_audit_stats_get(fx->audit);
    long long sum = 0;
    for (int i = 1; i < DCEM_ROW_REASON_COUNT; i++) sum += st->by_reason[i];
    assert_int_equal(st->rows, 20000);
    assert_int_equal(st->accepted + st->rejected, st->rows);
    assert_int_equal(sum, st->rejected);
    print_message("accepted %lld, rejected %lld, discarded %lld\n", st->accepted, st->rejected,
                  st->discarded);
    /* a corrupt row costs itself, never a clean neighbour */
    assert_int_equal(clean_rejected, 0);
    assert_true(st->rejected <= corrupted);
    assert_true(corrupted > 2000);
    dcem_figures f;
    dcem_verdicts v;
    period(fx, DCEM_PERIOD_MONTH, 2025, 1, &f, &v, NULL);
    assert_true(f.total_kwh >= 0 && f.it_kwh >= 0);
    teardown_site(fx);
}

/* Numbers print as given, to the decimals asked, without a negative zero. */
static void test_json_num(void **state)
{
    (void)state;
    /* sums are exact micro-kWh now, so two paths give the same double: the
     * formatter prints what it is given, rounded once by printf */
    struct {
        double v;
        int decimals;
        const char *want;
    } cases[] = {{1.25, 6, "1.250000"}, {-0.0001, 3, "0.000"}, {1234567.891, 3, "1234567.891"},
                 {1e9, 3, "1000000000.000"}, {0.1 + 0.2, 6, "0.300000"}, {2.675, 2, "2.67"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *n = dcem_json_num(cases[i].v, cases[i].decimals);
        char *txt = cJSON_PrintUnformatted(n);
        assert_string_equal(txt, cases[i].want);
        free(txt);
        cJSON_Delete(n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_num),
        cmocka_unit_test(test_gap_across_month_end), cmocka_unit_test(test_new_year_in_shanghai),
        cmocka_unit_test(test_dst_months),           cmocka_unit_test(test_leap_year),
        cmocka_unit_test(test_incomplete_month),     cmocka_unit_test(test_rejected_rows),
        cmocka_unit_test(test_clock_glitch_early),
        cmocka_unit_test(test_ratio_column),   cmocka_unit_test(test_corrupt_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
