/* The pure half of the collector's HTTP API (gateway/api/api_auth.c,
 * api_query.c) with plain strings: token rules and the constant-time
 * lookup, bearer headers, access, routes, query parameters with the
 * parameter named in every refusal, dashboard paths that must never leave
 * their directory, content types, and listen addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api_auth.h"
#include "api_query.h"
#include "errors.h"

#include <stdio.h>
#include <string.h>

static void test_token_check(void **state)
{
    (void)state;
    char why[128];
    assert_int_equal(dcem_api_token_check("0123456789abcdef", 16, why, sizeof why), 0);
    assert_int_equal(dcem_api_token_check("A-._~+/=aZ09xxxxxx", 18, why, sizeof why), 0);
    assert_int_equal(dcem_api_token_check("0123456789abcde", 15, why, sizeof why), DCEM_EINVAL);
    assert_non_null(strstr(why, "16 to 255"));
    char longer[300];
    memset(longer, 'a', sizeof longer);
    assert_int_equal(dcem_api_token_check(longer, 255, why, sizeof why), 0);
    assert_int_equal(dcem_api_token_check(longer, 256, why, sizeof why), DCEM_EINVAL);
    assert_int_equal(dcem_api_token_check("0123456789 abcdef", 17, why, sizeof why), DCEM_EINVAL);
    assert_non_null(strstr(why, "character 11"));
    assert_int_equal(dcem_api_token_check("0123456789\"abcdef", 17, why, sizeof why), DCEM_EINVAL);
    assert_int_equal(dcem_api_token_check("0123456789\xe4\xb8\xad"
                                          "abcdef",
                                          19, why, sizeof why),
                     DCEM_EINVAL);
}

static void test_bearer(void **state)
{
    (void)state;
    const char *t;
    size_t n;
    assert_int_equal(dcem_api_bearer("Bearer abc", &t, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(t, "abc", 3);
    assert_int_equal(dcem_api_bearer("bEaReR   abc  ", &t, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(dcem_api_bearer("Bearer", &t, &n), DCEM_EINVAL);
    assert_int_equal(dcem_api_bearer("Bearer ", &t, &n), DCEM_EINVAL);
    assert_int_equal(dcem_api_bearer("Bearerabc", &t, &n), DCEM_EINVAL);
    assert_int_equal(dcem_api_bearer("Basic abc", &t, &n), DCEM_EINVAL);
    assert_int_equal(dcem_api_bearer("Bearer a b", &t, &n), DCEM_EINVAL);
    assert_int_equal(dcem_api_bearer("", &t, &n), DCEM_EINVAL);
    assert_int_equal(dcem_api_bearer(NULL, &t, &n), DCEM_EINVAL);
}

static dcem_api_token tokens[4];

static void set_token(size_t i, const char *tok, int role)
{
    memset(&tokens[i], 0, sizeof tokens[i]);
    snprintf(tokens[i].token, sizeof tokens[i].token, "%s", tok);
    tokens[i].role = role;
}

static void test_token_find(void **state)
{
    (void)state;
    set_token(0, "regulator-0123456789", DCEM_API_ROLE_REGULATOR);
    set_token(1, "operator-a-0123456789", DCEM_API_ROLE_OPERATOR);
    set_token(2, "", DCEM_API_ROLE_OPERATOR); /* an unset slot matches nothing */
    set_token(3, "operator-b-0123456789", DCEM_API_ROLE_OPERATOR);
#define FIND(s, len) dcem_api_token_find(tokens, 4, s, len)
    assert_int_equal(FIND("regulator-0123456789", 20), 0);
    assert_int_equal(FIND("operator-a-0123456789", 21), 1);
    assert_int_equal(FIND("operator-b-0123456789", 21), 3);
    assert_int_equal(FIND("operator-b-012345678", 20), -1);   /* a prefix */
    assert_int_equal(FIND("operator-b-01234567890", 22), -1); /* longer */
    assert_int_equal(FIND("operator-b-0123456789", 20), -1);  /* the length counts */
    assert_int_equal(FIND("", 0), -1);
    assert_int_equal(FIND("regulator-0123456789\0", 21), -1); /* a NUL inside */
    char big[400];
    memset(big, 'x', sizeof big);
    memcpy(big, "regulator-0123456789", 20);
    assert_int_equal(FIND(big, sizeof big), -1); /* longer than a slot */
    assert_int_equal(dcem_api_token_find(tokens, 0, "regulator-0123456789", 20), -1);
#undef FIND
}

static void test_may_read(void **state)
{
    (void)state;
    dcem_api_token t = {.role = DCEM_API_ROLE_OPERATOR, .n_sites = 2};
    snprintf(t.sites[0], sizeof t.sites[0], "yz-alpha");
    snprintf(t.sites[1], sizeof t.sites[1], "yz-gamma");
    assert_true(dcem_api_may_read_site(DCEM_API_ROLE_OPERATOR, &t, "yz-alpha"));
    assert_true(dcem_api_may_read_site(DCEM_API_ROLE_OPERATOR, &t, "yz-gamma"));
    assert_false(dcem_api_may_read_site(DCEM_API_ROLE_OPERATOR, &t, "yz-beta"));
    assert_false(dcem_api_may_read_site(DCEM_API_ROLE_OPERATOR, &t, "yz-alph"));
    assert_true(dcem_api_may_read_site(DCEM_API_ROLE_REGULATOR, NULL, "anything"));
    assert_false(dcem_api_may_read_site(DCEM_API_ROLE_PUBLIC, NULL, "yz-alpha"));
}

static void test_routes(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        int id, site_ok;
        const char *site;
    } cases[] = {
        {"/healthz", DCEM_API_R_HEALTHZ, 0, NULL},
        {"/metrics", DCEM_API_R_METRICS, 0, NULL},
        {"/", DCEM_API_R_STATIC, 0, NULL},
        {"/js/app.js", DCEM_API_R_STATIC, 0, NULL},
        {"/apiary.html", DCEM_API_R_STATIC, 0, NULL},
        {"/api", DCEM_API_R_NONE, 0, NULL},
        {"/api/", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites", DCEM_API_R_SITES, 0, NULL},
        {"/api/v1/sites/", DCEM_API_R_SITE, 0, NULL},
        {"/api/v2/sites", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/reports", DCEM_API_R_REPORTS, 0, NULL},
        {"/api/v1/public/compliant", DCEM_API_R_COMPLIANT, 0, NULL},
        {"/api/v1/public/other", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/yz-alpha", DCEM_API_R_SITE, 1, "yz-alpha"},
        {"/api/v1/sites/yz-alpha/figures", DCEM_API_R_FIGURES, 1, "yz-alpha"},
        {"/api/v1/sites/yz-alpha/verdicts", DCEM_API_R_VERDICTS, 1, "yz-alpha"},
        {"/api/v1/sites/yz-alpha/alerts", DCEM_API_R_ALERTS, 1, "yz-alpha"},
        {"/api/v1/sites/yz-alpha/meters", DCEM_API_R_METERS, 1, "yz-alpha"},
        {"/api/v1/sites/yz-alpha/power", DCEM_API_R_POWER, 1, "yz-alpha"},
        {"/api/v1/sites/yz-alpha/export", DCEM_API_R_EXPORT, 1, "yz-alpha"},
        {"/api/v1/sites/yz-alpha/reports", DCEM_API_R_SITE_REPORTS, 1, "yz-alpha"},
        {"/api/v1/sites/yz-alpha/reports/2025-03", DCEM_API_R_SITE_REPORT, 1, "yz-alpha"},
        {"/api/v1/sites/yz-alpha/reports/2025", DCEM_API_R_SITE_REPORT, 1, "yz-alpha"},
        {"/api/v1/sites/yz-alpha/reports/2025-03/yz-alpha-2025-03.xlsx",
         DCEM_API_R_SITE_REPORT_FILE, 1, "yz-alpha"},
        {"/api/v1/sites/yz-alpha/reports/2025/MANIFEST.sha256", DCEM_API_R_SITE_REPORT_FILE, 1,
         "yz-alpha"},
        {"/api/v1/sites/yz-alpha/reports/2025-13", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/yz-alpha/reports/1969", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/yz-alpha/reports/2025-3", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/yz-alpha/reports/2025.json", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/yz-alpha/reports/2025/..", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/yz-alpha/reports/2025/.hidden", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/yz-alpha/reports/2025/", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/yz-alpha/reports/2025/a/b", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/yz-alpha/figures/", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/zone/reports/2025", DCEM_API_R_ZONE_REPORT, 0, NULL},
        {"/api/v1/zone/reports/2025-11", DCEM_API_R_ZONE_REPORT, 0, NULL},
        {"/api/v1/zone/reports/2025-11/zone-2025-11.xlsx", DCEM_API_R_ZONE_REPORT_FILE, 0, NULL},
        {"/api/v1/zone/reports/2025/MANIFEST.sha256", DCEM_API_R_ZONE_REPORT_FILE, 0, NULL},
        {"/api/v1/zone/reports", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/zone/reports/2025-13", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/zone/reports/2025/..", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/zone/reports/2025/a/b", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/zone/other/2025", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/yz-alpha/figures/x/y", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/yz-alpha/nothing", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/bad id/figures", DCEM_API_R_FIGURES, 0, NULL},
        {"/api/v1/sites/../figures", DCEM_API_R_FIGURES, 1, ".."}, /* an id, found nowhere */
        {"/api/v1/sites/a/b/c/d/e/f/g", DCEM_API_R_NONE, 0, NULL},
        {"/api/v1/sites/a/reports/2025/f/g", DCEM_API_R_NONE, 0, NULL},
        {"", DCEM_API_R_NONE, 0, NULL},
        {"api/v1/sites", DCEM_API_R_NONE, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dcem_api_route r;
        dcem_api_route_parse(cases[i].path, &r);
        if (r.id != cases[i].id || r.site_ok != cases[i].site_ok)
            fail_msg("%s: route %d site_ok %d, expected %d %d", cases[i].path, r.id, r.site_ok,
                     cases[i].id, cases[i].site_ok);
        if (cases[i].site) assert_string_equal(r.site, cases[i].site);
    }
    dcem_api_route r;
    dcem_api_route_parse("/api/v1/sites/s/reports/2025-03/s-2025-03.xlsx", &r);
    assert_int_equal(r.report_is_year, 0);
    assert_int_equal(r.report_period, 2025 * 12 + 2);
    assert_string_equal(r.report_file, "s-2025-03.xlsx");
    dcem_api_route_parse("/api/v1/sites/s/reports/2025", &r);
    assert_int_equal(r.report_is_year, 1);
    assert_int_equal(r.report_period, 2025);
    assert_string_equal(r.report_file, "");
    /* which routes need a readable site */
    assert_true(dcem_api_route_site_scoped(DCEM_API_R_SITE_REPORT_FILE));
    assert_true(dcem_api_route_site_scoped(DCEM_API_R_FIGURES));
    assert_false(dcem_api_route_site_scoped(DCEM_API_R_REPORTS));
    assert_false(dcem_api_route_site_scoped(DCEM_API_R_SITES));
    assert_false(dcem_api_route_site_scoped(DCEM_API_R_COMPLIANT));
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int parse(const dcem_api_param *ps, size_t n, unsigned allowed, unsigned required,
                 dcem_api_query *q, dcem_api_error *e)
{
    return dcem_api_query_parse(ps, n, allowed, required, q, e);
}

static void test_query_ok(void **state)
{
    (void)state;
    dcem_api_query q;
    dcem_api_error e;
    const unsigned fig = DCEM_API_Q_PERIOD | DCEM_API_Q_AT;
    assert_int_equal(parse(NULL, 0, fig, 0, &q, &e), 0);
    assert_int_equal(q.period, DCEM_API_P_MONTH);
    assert_int_equal(q.at.kind, DCEM_API_W_NONE);
    assert_int_equal(q.limit, DCEM_API_LIMIT_DEFAULT);

    static const struct {
        const char *period, *at;
        int p, kind;
    } ok[] = {
        {"month", "2025-03", DCEM_API_P_MONTH, DCEM_API_W_MONTH},
        {"year", "2025", DCEM_API_P_YEAR, DCEM_API_W_YEAR},
        {"day", "2025-03-15", DCEM_API_P_DAY, DCEM_API_W_DATE},
        {"ytd", "2025-03-15", DCEM_API_P_YTD, DCEM_API_W_DATE},
        {"rolling12", "2025-03-15", DCEM_API_P_ROLLING12, DCEM_API_W_DATE},
        {"interval", "2025-03-15T10:00:00+08:00", DCEM_API_P_INTERVAL, DCEM_API_W_TIME},
    };
    for (size_t i = 0; i < N(ok); i++) {
        /* at before period: the period decides how at reads */
        dcem_api_param ps[] = {{"at", ok[i].at}, {"period", ok[i].period}};
        assert_int_equal(parse(ps, 2, fig, 0, &q, &e), 0);
        assert_int_equal(q.period, ok[i].p);
        assert_int_equal(q.at.kind, ok[i].kind);
    }
    dcem_api_param m[] = {{"period", "month"}, {"at", "2025-03"}};
    parse(m, 2, fig, 0, &q, &e);
    assert_int_equal(q.at.month, 2025 * 12 + 2);
    dcem_api_param iv[] = {{"period", "interval"}, {"at", "2025-01-01T00:00:00Z"}};
    parse(iv, 2, fig, 0, &q, &e);
    assert_int_equal(q.at.t_ms, 1735689600000LL);

    const unsigned al = DCEM_API_Q_FROM | DCEM_API_Q_TO | DCEM_API_Q_LIMIT | DCEM_API_Q_CURSOR;
    dcem_api_param a[] = {{"from", "2025-01-01"},
                          {"to", "2025-02-01T00:00:00+08:00"},
                          {"limit", "1000"},
                          {"cursor", "1735689600000.42"}};
    assert_int_equal(parse(a, N(a), al, 0, &q, &e), 0);
    assert_int_equal(q.from.kind, DCEM_API_W_DATE);
    assert_int_equal(q.to.kind, DCEM_API_W_TIME);
    assert_int_equal(q.limit, 1000);
    assert_int_equal(q.cursor_t_ms, 1735689600000LL);
    assert_int_equal(q.cursor_id, 42);
    char cur[48];
    dcem_api_cursor_format(q.cursor_t_ms, q.cursor_id, cur, sizeof cur);
    assert_string_equal(cur, "1735689600000.42");

    dcem_api_param y[] = {{"year", "2025"}};
    assert_int_equal(parse(y, 1, DCEM_API_Q_YEAR, 0, &q, &e), 0);
    assert_int_equal(q.year, 2025);
    /* without a period, at is a time */
    dcem_api_param t[] = {{"at", "2025-06-01T12:00:00Z"}};
    assert_int_equal(parse(t, 1, DCEM_API_Q_AT, 0, &q, &e), 0);
    assert_int_equal(q.at.kind, DCEM_API_W_TIME);
}

static void test_query_refused(void **state)
{
    (void)state;
    static const struct {
        const char *k1, *v1, *k2, *v2;
        unsigned allowed, required;
        const char *param, *why;
    } bad[] = {
        {"period", "week", NULL, NULL, DCEM_API_Q_PERIOD, 0, "period", "expected one of"},
        {"period", "month", "at", "2025", DCEM_API_Q_PERIOD | DCEM_API_Q_AT, 0, "at", "YYYY-MM"},
        {"period", "year", "at", "2025-03", DCEM_API_Q_PERIOD | DCEM_API_Q_AT, 0, "at", "YYYY"},
        {"period", "day", "at", "2025-02-29", DCEM_API_Q_PERIOD | DCEM_API_Q_AT, 0, "at",
         "YYYY-MM-DD"},
        {"period", "interval", "at", "2025-01-01T00:00:00", DCEM_API_Q_PERIOD | DCEM_API_Q_AT, 0,
         "at", "RFC 3339"},
        {"at", "2025-01-01", NULL, NULL, DCEM_API_Q_AT, 0, "at", "RFC 3339"},
        {"period", "month", "period", "year", DCEM_API_Q_PERIOD, 0, "period", "more than once"},
        {"colour", "red", NULL, NULL, DCEM_API_Q_PERIOD | DCEM_API_Q_AT, 0, "colour",
         "unknown parameter (valid: period, at)"},
        {"year", "2025", NULL, NULL, 0, 0, "year", "unknown parameter (valid: none)"},
        {"period", "", NULL, NULL, DCEM_API_Q_PERIOD, 0, "period", "empty value"},
        {"period", NULL, NULL, NULL, DCEM_API_Q_PERIOD, 0, "period", "empty value"},
        {"year", "1969", NULL, NULL, DCEM_API_Q_YEAR, 0, "year", "1970-9999"},
        {"year", "+2025", NULL, NULL, DCEM_API_Q_YEAR, 0, "year", "YYYY"},
        {"limit", "0", NULL, NULL, DCEM_API_Q_LIMIT, 0, "limit", "1 to 1000"},
        {"limit", "1001", NULL, NULL, DCEM_API_Q_LIMIT, 0, "limit", "1 to 1000"},
        {"limit", "-5", NULL, NULL, DCEM_API_Q_LIMIT, 0, "limit", "1 to 1000"},
        {"limit", "99999999999999999999", NULL, NULL, DCEM_API_Q_LIMIT, 0, "limit", "1 to 1000"},
        {"cursor", "12", NULL, NULL, DCEM_API_Q_CURSOR, 0, "cursor", "not a cursor"},
        {"cursor", "12.x", NULL, NULL, DCEM_API_Q_CURSOR, 0, "cursor", "not a cursor"},
        {"from", "2025-01-01", NULL, NULL, DCEM_API_Q_FROM | DCEM_API_Q_TO,
         DCEM_API_Q_FROM | DCEM_API_Q_TO, "to", "missing"},
        {"from", "2025-02-01", "to", "2025-01-01", DCEM_API_Q_FROM | DCEM_API_Q_TO, 0, "to",
         "later than from"},
        {"from", "2025-01-01T00:00:00Z", "to", "2025-01-01T00:00:00Z",
         DCEM_API_Q_FROM | DCEM_API_Q_TO, 0, "to", "later than from"},
        {"from", "yesterday", NULL, NULL, DCEM_API_Q_FROM, 0, "from", "RFC 3339"},
        /* outside the supported range, which the message names */
        {"from", "0000-01-01", NULL, NULL, DCEM_API_Q_FROM, 0, "from", "1970-01-01 to 9999-12-31"},
        {"from", "1969-12-31", NULL, NULL, DCEM_API_Q_FROM, 0, "from", "1970-01-01 to 9999-12-31"},
        {"to", "10000-01-01", NULL, NULL, DCEM_API_Q_TO, 0, "to", "1970-01-01 to 9999-12-31"},
        {"to", "2025-13-01", NULL, NULL, DCEM_API_Q_TO, 0, "to", "1970-01-01 to 9999-12-31"},
        {"from", "0000-01-01T00:00:00Z", NULL, NULL, DCEM_API_Q_FROM, 0, "from",
         "outside the supported range 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"},
        {"from", "1970-01-01T07:59:59+08:00", NULL, NULL, DCEM_API_Q_FROM, 0, "from",
         "outside the supported range"},
        {"to", "9999-12-31T23:00:00-01:00", NULL, NULL, DCEM_API_Q_TO, 0, "to",
         "outside the supported range"},
        {"at", "1969-12-31T23:59:59.999Z", NULL, NULL, DCEM_API_Q_AT, 0, "at",
         "outside the supported range"},
        {"period", "interval", "at", "0001-01-01T00:00:00Z", DCEM_API_Q_PERIOD | DCEM_API_Q_AT, 0,
         "at", "outside the supported range"},
        {"period", "day", "at", "1969-12-31", DCEM_API_Q_PERIOD | DCEM_API_Q_AT, 0, "at",
         "1970-01-01 to 9999-12-31"},
        {"period", "month", "at", "2025-13", DCEM_API_Q_PERIOD | DCEM_API_Q_AT, 0, "at",
         "1970-01 to 9999-12"},
        {"period", "month", "at", "0000-01", DCEM_API_Q_PERIOD | DCEM_API_Q_AT, 0, "at",
         "1970-01 to 9999-12"},
        {"period", "year", "at", "0000", DCEM_API_Q_PERIOD | DCEM_API_Q_AT, 0, "at", "1970-9999"},
        {"year", "10000", NULL, NULL, DCEM_API_Q_YEAR, 0, "year", "1970-9999"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        dcem_api_param ps[2] = {{bad[i].k1, bad[i].v1}, {bad[i].k2, bad[i].v2}};
        dcem_api_query q;
        dcem_api_error e;
        int rc = parse(ps, bad[i].k2 ? 2 : 1, bad[i].allowed, bad[i].required, &q, &e);
        if (rc != DCEM_EINVAL || strcmp(e.param, bad[i].param) || !strstr(e.why, bad[i].why))
            fail_msg("case %zu: rc %d param '%s' why '%s'", i, rc, e.param, e.why);
        /* the message starts with the parameter's name */
        assert_int_equal(strncmp(e.why, bad[i].param, strlen(bad[i].param)), 0);
    }
    /* a parameter name that is not printable is not echoed as is */
    dcem_api_param ps[] = {{"a\nb", "1"}};
    dcem_api_query q;
    dcem_api_error e;
    assert_int_equal(parse(ps, 1, 0, 0, &q, &e), DCEM_EINVAL);
    assert_string_equal(e.param, "a?b");
}

static void test_query_range_edges(void **state)
{
    (void)state;
    dcem_api_query q;
    dcem_api_error e;
    const unsigned ft = DCEM_API_Q_FROM | DCEM_API_Q_TO;
    dcem_api_param first[] = {{"from", "1970-01-01T00:00:00Z"}, {"to", "1970-01-01"}};
    assert_int_equal(parse(first, 2, ft, 0, &q, &e), 0);
    assert_int_equal(q.from.t_ms, 0);
    dcem_api_param last[] = {{"from", "9999-12-31"}, {"to", "9999-12-31T23:59:59.999Z"}};
    assert_int_equal(parse(last, 2, ft, 0, &q, &e), 0);
    assert_int_equal(q.to.t_ms, DCEM_API_T_MAX_MS - 1);
    dcem_api_param y[] = {{"period", "year"}, {"at", "9999"}};
    assert_int_equal(parse(y, 2, DCEM_API_Q_PERIOD | DCEM_API_Q_AT, 0, &q, &e), 0);
}

static void test_uri_check(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "/",
        "/api/v1/sites/yz-alpha/figures?period=month&at=2025-03",
        "/api/v1/sites/yz-%61lpha",
        "/%E4%B8%AD%E6%96%87?q=%F0%9F%98%80", /* 3- and 4-byte characters */
        "/\xe4\xb8\xad?x=\xc3\xa9",           /* raw UTF-8 */
        "/a?b=%3F%25%2B+c",                   /* escaped ?, %, + */
        "/a%3Fb?c=%ED%9F%BF",                 /* U+D7FF, just below the surrogates */
        "/%F4%8F%BF%BF",                      /* U+10FFFF */
    };
    char why[160];
    for (size_t i = 0; i < N(ok); i++) {
        snprintf(why, sizeof why, "x");
        if (dcem_api_uri_check(ok[i], why, sizeof why) || why[0])
            fail_msg("ok case %zu (%s): %s", i, ok[i], why);
    }
    static const struct {
        const char *uri, *why;
    } bad[] = {
        {"/api/v1/sites/yz-alpha%00/figures", "the path holds %00 (a NUL byte)"},
        {"/healthz?x=%00", "the query holds %00 (a NUL byte)"},
        {"/a?period%00x=month", "the query holds %00"},
        {"/a%", "a '%' in the path is not followed by two hex digits"},
        {"/a%4", "a '%' in the path is not followed by two hex digits"},
        {"/a?x=%g0", "a '%' in the query is not followed by two hex digits"},
        {"/yz-%C3%28", "the path is not UTF-8"},    /* a lead byte without its continuation */
        {"/yz-%C3", "the path is not UTF-8"},       /* cut at the end */
        {"/yz-%C3?x=%A9", "the path is not UTF-8"}, /* cut by the '?' */
        {"/\xff", "the path is not UTF-8"},         /* raw */
        {"/%80", "the path is not UTF-8"},          /* a continuation byte first */
        {"/%C0%AF", "the path is not UTF-8"},       /* overlong '/' */
        {"/%E0%80%AF", "the path is not UTF-8"},    /* overlong, 3 bytes */
        {"/%F0%80%80%AF", "the path is not UTF-8"}, /* overlong, 4 bytes */
        {"/%ED%A0%80", "the path is not UTF-8"},    /* U+D800, a surrogate */
        {"/%F4%90%80%80", "the path is not UTF-8"}, /* above U+10FFFF */
        {"/%F5%80%80%80", "the path is not UTF-8"},
        {"/a?x=%E2%82", "the query is not UTF-8"},
        {"/a?x=%FF", "the query is not UTF-8"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        int rc = dcem_api_uri_check(bad[i].uri, why, sizeof why);
        if (rc != DCEM_EINVAL || !strstr(why, bad[i].why))
            fail_msg("bad case %zu (%s): rc %d why '%s'", i, bad[i].uri, rc, why);
    }
}

static void test_static_path(void **state)
{
    (void)state;
    static const struct {
        const char *path, *rel; /* rel NULL: refused */
    } cases[] = {
        {"/", "index.html"},
        {"/index.html", "index.html"},
        {"/js/app.js", "js/app.js"},
        {"/sub/", "sub/index.html"},
        {"/a/b/c.css", "a/b/c.css"},
        {"/..", NULL},
        {"/../secret", NULL},
        {"/js/../../secret", NULL},
        {"/js/..", NULL},
        {"/./index.html", NULL},
        {"/.hidden", NULL},
        {"/js/.git/config", NULL},
        {"//etc/passwd", NULL},
        {"/js//app.js", NULL},
        {"/js\\..\\secret", NULL},
        {"/c:/windows", NULL},
        {"/a\x01.js", NULL},
        {"", NULL},
        {"index.html", NULL},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char out[64];
        int rc = dcem_api_static_path(cases[i].path, out, sizeof out);
        if (cases[i].rel) {
            if (rc) fail_msg("%s refused", cases[i].path);
            assert_string_equal(out, cases[i].rel);
        } else if (rc != DCEM_EINVAL) {
            fail_msg("%s accepted as %s", cases[i].path, out);
        }
    }
    char small[10];
    assert_int_equal(dcem_api_static_path("/", small, sizeof small), DCEM_EINVAL);
    assert_int_equal(dcem_api_static_path("/abcdefghij", small, sizeof small), DCEM_EINVAL);
}

static void test_content_type(void **state)
{
    (void)state;
    assert_string_equal(dcem_api_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(dcem_api_content_type("js/app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(dcem_api_content_type("a.css"), "text/css; charset=utf-8");
    assert_string_equal(dcem_api_content_type("i18n/zh.json"), "application/json; charset=utf-8");
    assert_string_equal(dcem_api_content_type("logo.svg"), "image/svg+xml");
    assert_string_equal(dcem_api_content_type("f.woff2"), "font/woff2");
    assert_string_equal(dcem_api_content_type("s-2025.xlsx"),
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    assert_string_equal(dcem_api_content_type("MANIFEST.sha256"), "text/plain; charset=utf-8");
    assert_string_equal(dcem_api_content_type("data.bin"), "application/octet-stream");
    assert_string_equal(dcem_api_content_type("js"), "application/octet-stream");
    assert_string_equal(dcem_api_content_type(".js"), "application/octet-stream");
}

static void test_manifest_line(void **state)
{
    (void)state;
    char hex[65];
    const char *name;
    size_t n;
    static const char good[] =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  yz-alpha-2025.xlsx";
    assert_int_equal(dcem_api_manifest_line(good, sizeof good - 1, hex, &name, &n), 0);
    assert_string_equal(hex, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_int_equal(n, strlen("yz-alpha-2025.xlsx"));
    assert_memory_equal(name, "yz-alpha-2025.xlsx", n);
    static const char *const bad[] = {
        "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef  a.csv", /* upper */
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde  a.csv",  /* short */
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef a.csv",  /* one space */
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  ",      /* no name */
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  ../x",  /* a path */
        ""};
    for (size_t i = 0; i < N(bad); i++)
        if (!dcem_api_manifest_line(bad[i], strlen(bad[i]), hex, &name, &n))
            fail_msg("manifest line %zu accepted", i);
}

static void test_listen(void **state)
{
    (void)state;
    dcem_api_listen l;
    char why[128];
    assert_int_equal(dcem_api_listen_parse("127.0.0.1:8080", &l, why, sizeof why), 0);
    assert_int_equal(l.ipv6, 0);
    assert_int_equal(l.port, 8080);
    assert_true(dcem_api_listen_is_loopback(&l));
    assert_int_equal(dcem_api_listen_parse("0.0.0.0:80", &l, why, sizeof why), 0);
    assert_false(dcem_api_listen_is_loopback(&l));
    assert_int_equal(dcem_api_listen_parse("[::1]:8080", &l, why, sizeof why), 0);
    assert_int_equal(l.ipv6, 1);
    assert_true(dcem_api_listen_is_loopback(&l));
    assert_int_equal(dcem_api_listen_parse("[::]:8080", &l, why, sizeof why), 0);
    assert_false(dcem_api_listen_is_loopback(&l));
    static const char *const bad[] = {
        "localhost:8080", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:80a",
        "::1:8080",       "[::1:8080", ":8080",       "127.0.0.1:",      "[]:80"};
    for (size_t i = 0; i < N(bad); i++)
        if (dcem_api_listen_parse(bad[i], &l, why, sizeof why) != DCEM_EINVAL)
            fail_msg("%s accepted", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_check),   cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_token_find),    cmocka_unit_test(test_may_read),
        cmocka_unit_test(test_routes),        cmocka_unit_test(test_query_ok),
        cmocka_unit_test(test_query_refused), cmocka_unit_test(test_query_range_edges),
        cmocka_unit_test(test_uri_check),     cmocka_unit_test(test_static_path),
        cmocka_unit_test(test_content_type),  cmocka_unit_test(test_manifest_line),
        cmocka_unit_test(test_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
