/* Calendar and interval attribution: local-aligned intervals, days and
 * months in the site's zone, and segments split in proportion to time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "calendar.h"
#include "dcem_io.h"
#include "parse.h"
#include "split.h"

#include <string.h>

#define MIN 60000LL
#define HOUR 3600000LL

static int64_t utc(const char *s)
{
    int64_t t;
    assert_int_equal(dcem_parse_time(s, strlen(s), &t), 0);
    return t;
}

static dcem_tz *zone(const char *name)
{
    dcem_tz *tz;
    char err[256];
    if (dcem_io_load_tz(name, &tz, err, sizeof err)) fail_msg("%s", err);
    return tz;
}

static void test_civil(void **state)
{
    (void)state;
    assert_int_equal(dcem_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(dcem_days_from_civil(2024, 2, 29), 19782);
    assert_int_equal(dcem_days_from_civil(1969, 12, 31), -1);
    for (int64_t d = -800000; d < 800000; d += 37) {
        int64_t y;
        int m, dd;
        dcem_civil_from_days(d, &y, &m, &dd);
        assert_int_equal(dcem_days_from_civil(y, m, dd), d);
    }
    assert_int_equal(dcem_days_in_month(2024, 2), 29);
    assert_int_equal(dcem_days_in_month(2100, 2), 28);
    assert_int_equal(dcem_days_in_month(2000, 2), 29);
    assert_int_equal(dcem_floordiv(-1, 4), -1);
    assert_int_equal(dcem_floordiv(-4, 4), -1);
    assert_int_equal(dcem_floordiv(7, 4), 1);
}

static void test_zone_periods(void **state)
{
    (void)state;
    dcem_tz *sh = zone("Asia/Shanghai"), *be = zone("Europe/Berlin");
    dcem_zone z;
    dcem_zone_init(&z, sh);
    /* New Year in Shanghai */
    int64_t ny = utc("2025-12-31T16:00:00Z");
    int64_t y;
    int m, d;
    dcem_zone_date(&z, ny, &y, &m, &d);
    assert_true(y == 2026 && m == 1 && d == 1);
    dcem_zone_date(&z, ny - 1, &y, &m, &d);
    assert_true(y == 2025 && m == 12 && d == 31);
    assert_int_equal(dcem_zone_month_start(&z, 2026 * 12), ny);
    /* Berlin: local days of 23 and 25 hours */
    dcem_zone_init(&z, be);
    int64_t d0 = dcem_zone_day(&z, utc("2025-03-30T12:00:00Z"));
    assert_int_equal(dcem_zone_day_start(&z, d0 + 1) - dcem_zone_day_start(&z, d0), 23 * HOUR);
    int64_t d1 = dcem_zone_day(&z, utc("2025-10-26T12:00:00Z"));
    assert_int_equal(dcem_zone_day_start(&z, d1 + 1) - dcem_zone_day_start(&z, d1), 25 * HOUR);
    assert_int_equal(dcem_zone_day_start(&z, d0), utc("2025-03-30T00:00:00+01:00"));
    dcem_tz_free(sh);
    dcem_tz_free(be);
}

static void test_intervals_local_aligned(void **state)
{
    (void)state;
    dcem_tz *ktm = zone("Asia/Kathmandu"), *be = zone("Europe/Berlin");
    dcem_zone z;
    int64_t s, e;
    /* +05:45: hourly intervals start at local hh:00, i.e. UTC hh:15 */
    dcem_zone_init(&z, ktm);
    dcem_zone_interval(&z, utc("2025-06-01T10:20:00Z"), HOUR, &s, &e);
    assert_int_equal(s, utc("2025-06-01T10:15:00Z"));
    assert_int_equal(e, utc("2025-06-01T11:15:00Z"));
    dcem_zone_interval(&z, utc("2025-06-01T10:14:59.999Z"), 15 * MIN, &s, &e);
    assert_int_equal(s, utc("2025-06-01T10:00:00Z"));
    /* Berlin spring forward 02:00 -> 03:00 local: the interval before ends
     * at the jump, the next starts at 03:00 local */
    dcem_zone_init(&z, be);
    dcem_zone_interval(&z, utc("2025-03-30T00:50:00Z"), 15 * MIN, &s, &e);
    assert_int_equal(s, utc("2025-03-30T01:45:00+01:00"));
    assert_int_equal(e, utc("2025-03-30T03:00:00+02:00"));
    dcem_zone_interval(&z, utc("2025-03-30T01:00:00Z"), 15 * MIN, &s, &e);
    assert_int_equal(s, utc("2025-03-30T03:00:00+02:00"));
    /* fall back: the repeated hour gets its own intervals, by UTC */
    dcem_zone_interval(&z, utc("2025-10-26T00:10:00Z"), HOUR, &s, &e);
    assert_int_equal(s, utc("2025-10-26T02:00:00+02:00"));
    assert_int_equal(e, utc("2025-10-26T01:00:00Z"));
    dcem_zone_interval(&z, utc("2025-10-26T01:10:00Z"), HOUR, &s, &e);
    assert_int_equal(s, utc("2025-10-26T02:00:00+01:00"));
    assert_int_equal(e, utc("2025-10-26T03:00:00+01:00"));
    dcem_tz_free(ktm);
    dcem_tz_free(be);
}

typedef struct collected {
    dcem_interval iv[64];
    int n;
} collected;

static void collect(void *ctx, const dcem_interval *iv)
{
    collected *c = ctx;
    assert_true(c->n < 64);
    c->iv[c->n++] = *iv;
}

static void test_split_proportional(void **state)
{
    (void)state;
    dcem_tz *sh = zone("Asia/Shanghai");
    dcem_splitter sp;
    dcem_splitter_init(&sp, sh, 15);
    collected c = {.n = 0};
    int64_t base = utc("2025-01-01T00:00:00Z");
    /* readings at :07 — every segment straddles a boundary */
    dcem_segment a = {base + 7 * MIN, base + 22 * MIN, 15e6, 0};
    dcem_segment b = {base + 22 * MIN, base + 37 * MIN, 30e6, 0};
    /* a gap of 1 h 30 (estimated) spread by time */
    dcem_segment g = {base + 37 * MIN, base + 127 * MIN, 90e6, DCEM_SEG_GAP};
    dcem_splitter_add(&sp, &a, collect, &c);
    dcem_splitter_add(&sp, &b, collect, &c);
    dcem_splitter_add(&sp, &g, collect, &c);
    dcem_splitter_flush(&sp, collect, &c);
    int64_t sum = 0;
    for (int i = 0; i < c.n; i++) sum += c.iv[i].ukwh;
    assert_true(sum == 135000000); /* exactly: the last piece takes the remainder */
    assert_int_equal(c.n, 9);
    assert_int_equal(c.iv[0].start_ms, base);
    assert_int_equal(c.iv[0].ukwh, 8000000); /* 8 of a's 15 minutes */
    assert_int_equal(c.iv[0].covered_ms, 8 * MIN);
    /* a crosses the interval's boundary: its split is estimated, seen from
     * the interval; seen from the day (08:07 to 08:22 local) it is measured */
    assert_int_equal(c.iv[0].estimated_ukwh[DCEM_SPAN_INTERVAL], 8000000);
    assert_int_equal(c.iv[0].estimated_ukwh[DCEM_SPAN_DAY], 0);
    assert_int_equal(c.iv[1].ukwh, 7000000 + 16000000); /* rest of a, 8 min of b */
    assert_int_equal(c.iv[2].ukwh, 14000000 + 8000000); /* 7 min of b, 8 of the gap */
    assert_true(c.iv[2].flags & DCEM_SEG_GAP);
    assert_int_equal(c.iv[2].estimated_ukwh[DCEM_SPAN_YEAR], 0); /* a gap is measured energy */
    assert_int_equal(c.iv[3].ukwh, 15000000);
    assert_int_equal(c.iv[8].start_ms, base + 120 * MIN); /* partial, flushed */
    assert_int_equal(c.iv[8].covered_ms, 7 * MIN);
    dcem_tz_free(sh);
}

/* Pieces are whole micro-kWh that sum to the segment; estimated energy is
 * what a segment's split puts across each span's boundary; a reset is
 * estimated from every span. */
static void test_split_spans(void **state)
{
    (void)state;
    dcem_tz *sh = zone("Asia/Shanghai");
    dcem_splitter sp;
    dcem_splitter_init(&sp, sh, 15);
    collected c = {.n = 0};
    /* 1 kWh over three whole intervals: 333333 + 333333 + 333334 */
    int64_t t = utc("2025-03-10T02:00:00Z");
    dcem_segment a = {t, t + 45 * MIN, 1e6, 0};
    dcem_splitter_add(&sp, &a, collect, &c);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.iv[0].ukwh, 333333);
    assert_int_equal(c.iv[1].ukwh, 333333);
    assert_int_equal(c.iv[2].ukwh, 333334);
    /* across local midnight of 31 January (16:00 UTC): day and month spans
     * see an interpolation, the year does not */
    c.n = 0;
    dcem_splitter_init(&sp, sh, 15);
    int64_t m = utc("2025-01-31T16:00:00Z");
    dcem_segment b = {m - 10 * MIN, m + 10 * MIN, 2e6, 0};
    dcem_splitter_add(&sp, &b, collect, &c);
    dcem_splitter_flush(&sp, collect, &c);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.iv[0].ukwh, 1000000);
    assert_int_equal(c.iv[0].estimated_ukwh[DCEM_SPAN_INTERVAL], 1000000);
    assert_int_equal(c.iv[0].estimated_ukwh[DCEM_SPAN_DAY], 1000000);
    assert_int_equal(c.iv[0].estimated_ukwh[DCEM_SPAN_MONTH], 1000000);
    assert_int_equal(c.iv[0].estimated_ukwh[DCEM_SPAN_YEAR], 0);
    assert_int_equal(c.iv[1].estimated_ukwh[DCEM_SPAN_MONTH], 1000000);
    /* a reset inside an interval: estimated from every span */
    c.n = 0;
    dcem_splitter_init(&sp, sh, 15);
    dcem_segment r = {t + MIN, t + 2 * MIN, 0.5e6, DCEM_SEG_RESET};
    dcem_splitter_add(&sp, &r, collect, &c);
    dcem_splitter_flush(&sp, collect, &c);
    assert_int_equal(c.n, 1);
    for (int k = 0; k < DCEM_SPAN_COUNT; k++) assert_int_equal(c.iv[0].estimated_ukwh[k], 500000);
    dcem_tz_free(sh);
}

/* The splitter's proportion: exact where the product needs 128 bits, on
 * every target; the portable form agrees with __int128 where there is one. */
static void test_muldiv(void **state)
{
    (void)state;
    int64_t (*const fn[])(int64_t, int64_t, int64_t) = {dcem_muldiv, dcem_muldiv_portable};
    for (int f = 0; f < 2; f++) {
        assert_int_equal(fn[f](INT64_MAX, 30000000000, 30000000000), INT64_MAX);
        assert_int_equal(fn[f](INT64_MIN, 7, 7), INT64_MIN);
        assert_int_equal(fn[f](INT64_MIN, 1, 2), INT64_MIN / 2);
        assert_int_equal(fn[f](-7, 1, 2), -3); /* toward zero */
        assert_int_equal(fn[f](7, 1, 2), 3);
        assert_int_equal(fn[f](5, 0, 9), 0);
        /* 10^18 micro-kWh over a year in ms, all but the last ms of it:
         * 10^18 - 10^18 / 31536000000 = 10^18 - 31709791.98... */
        assert_int_equal(fn[f](1000000000000000000, 31535999999, 31536000000),
                         999999999968290208);
    }
#ifdef __SIZEOF_INT128__
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t a = (int64_t)x;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t c = (int64_t)(x >> (1 + x % 63)) + 1;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t b = (int64_t)(x % ((uint64_t)c + 1));
        assert_int_equal(dcem_muldiv_portable(a, b, c), (int64_t)((__int128)a * b / c));
    }
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_civil),
        cmocka_unit_test(test_zone_periods),
        cmocka_unit_test(test_intervals_local_aligned),
        cmocka_unit_test(test_split_proportional),
        cmocka_unit_test(test_split_spans),
        cmocka_unit_test(test_muldiv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
