/* Bounded parsers for untrusted fields: numbers and RFC 3339 times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "errors.h"
#include "parse.h"

#include <stdlib.h>
#include <string.h>

static void test_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        double v;
    } ok[] = {
        {"0", 0},           {"12", 12},         {"12.5", 12.5},       {"-3.25", -3.25},
        {"+7", 7},          {".5", 0.5},        {"1.", 1},            {"0.01", 0.01},
        {"42949672.96", 42949672.96},           {"123456789012.345", 123456789012.345},
        {"1e3", 1000},      {"2.5E-2", 0.025},  {"00000000000000000000001", 1},
        {"1234567890123456789", 1234567890123456789.0},
        {"0.1234567890123456789", 0.1234567890123456789},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double v = -1;
        assert_int_equal(dcem_parse_double(ok[i].s, strlen(ok[i].s), &v), 0);
        /* the fast path must round exactly like strtod */
        assert_true(v == strtod(ok[i].s, NULL));
        assert_true(v == ok[i].v);
    }
    static const char *const bad[] = {"", "-", ".", "1,5", "nan", "inf", "0x10", " 1", "1 ",
                                      "1e", "1e999", "12kWh", "--1", "1.2.3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v;
        assert_int_equal(dcem_parse_double(bad[i], strlen(bad[i]), &v), DCEM_EINVAL);
    }
    /* reads exactly len bytes: a number followed by more text in the buffer */
    double v;
    assert_int_equal(dcem_parse_double("12.5,99", 4, &v), 0);
    assert_true(v == 12.5);
}

static void test_times(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        long long ms;
    } ok[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2025-12-31T16:00:00Z", 1767196800000LL},
        {"2026-01-01T00:00:00+08:00", 1767196800000LL}, /* New Year in Shanghai */
        {"2026-01-01 00:00:00+08:00", 1767196800000LL},
        {"2024-02-29T12:00:00.5Z", 1709208000500LL},     /* leap day */
        {"2024-02-29T12:00:00.123456z", 1709208000123LL}, /* truncated to ms */
        {"2025-03-30T01:00:00-05:30", 1743316200000LL},
        {"1969-12-31T23:59:59.999Z", -1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t t = 0;
        assert_int_equal(dcem_parse_time(ok[i].s, strlen(ok[i].s), &t), 0);
        assert_int_equal(t, ok[i].ms);
    }
    static const char *const bad[] = {
        "2025-02-29T00:00:00Z", /* not a leap year */
        "2025-13-01T00:00:00Z", "2025-01-01T24:00:00Z", "2025-01-01T00:60:00Z",
        "2025-01-01T00:00:60Z", /* leap seconds are not readings */
        "2025-01-01T00:00:00",  /* no zone: ambiguous */
        "2025-01-01T00:00:00.Z", "2025-01-01T00:00:00+0800", "2025-01-01", "2025/01/01T00:00:00Z",
        "2025-01-01T00:00:00Zjunk", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t;
        assert_int_equal(dcem_parse_time(bad[i], strlen(bad[i]), &t), DCEM_EINVAL);
    }
}

static void test_months_and_dates(void **state)
{
    (void)state;
    long long m;
    int64_t d;
    assert_int_equal(dcem_parse_month("2025-12", 7, &m), 0);
    assert_int_equal(m, 2025 * 12 + 11);
    assert_int_equal(dcem_parse_date("2024-02-29", 10, &d), 0);
    assert_int_equal(d, 19782);
    static const char *const bad_months[] = {"2025-13", "2025-00", "1969-12", "2025-1", "25-01",
                                             "2025/01", "2025-01-01", ""};
    for (size_t i = 0; i < sizeof bad_months / sizeof bad_months[0]; i++)
        assert_int_equal(dcem_parse_month(bad_months[i], strlen(bad_months[i]), &m), DCEM_EINVAL);
    static const char *const bad_dates[] = {"2025-02-29", "2025-04-31", "2025-01-00", "2025-01",
                                            "2025-01-1x", "1969-12-31", "2025-01-01T"};
    for (size_t i = 0; i < sizeof bad_dates / sizeof bad_dates[0]; i++)
        assert_int_equal(dcem_parse_date(bad_dates[i], strlen(bad_dates[i]), &d), DCEM_EINVAL);
}

static void test_format(void **state)
{
    (void)state;
    char b[40];
    dcem_format_time(1767196800000LL, 8 * 3600, b, sizeof b);
    assert_string_equal(b, "2026-01-01T00:00:00+08:00");
    dcem_format_time(1709208000500LL, 0, b, sizeof b);
    assert_string_equal(b, "2024-02-29T12:00:00.500Z");
    dcem_format_time(-1, -(5 * 3600 + 30 * 60), b, sizeof b);
    assert_string_equal(b, "1969-12-31T18:29:59.999-05:30");
    int64_t t;
    assert_int_equal(dcem_parse_time(b, strlen(b), &t), 0);
    assert_int_equal(t, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_months_and_dates),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
