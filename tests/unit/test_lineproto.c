/* test_lineproto.c — the InfluxDB line-protocol encoder (common/lineproto.c)
 * against the cases of /work/shared/reference/line-protocol.md §2.3 (from
 * influxdata/line-protocol's corpus and influxdb models/points_test.go):
 * escaping per element, trailing backslashes, control characters, NaN and
 * infinity, integral floats, sorted and omitted tags, reserved keys,
 * precision and time range, the hard cap at every size, and numbers under
 * a locale whose decimal separator is not '.'. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "lineproto.h"
#include "table.h"

#define NT 4
#define NF 3

/* One encode case: a point given as raw strings, and the exact line (without
 * its '\n') or the error. */
typedef struct lp_case {
    const char *name;
    const char *measurement;
    dcem_lp_tag tags[NT];
    dcem_lp_field fields[NF];
    int has_time;
    int64_t time;
    int precision;
    const char *want; /* NULL: an error */
    int rc;           /* the error when want is NULL */
} lp_case;

/* One case per row reads better than one field per line. */
/* clang-format off */
#define F(k, v) {.key = k, .type = DCEM_LP_FLOAT, .f = v}
#define I(k, v) {.key = k, .type = DCEM_LP_INT, .i = v}
#define B(k, v) {.key = k, .type = DCEM_LP_BOOL, .b = v}
#define S(k, v) {.key = k, .type = DCEM_LP_STRING, .s = v}

static const lp_case cases[] = {
    /* §2.3 rows 1-11: escaping of measurement, tag keys/values, field keys. */
    {"01 comma everywhere", "cpu,main", {{"tag,bar", "value"}}, {F("name,bar", 1)}, 1, 0, 0,
     "cpu\\,main,tag\\,bar=value name\\,bar=1 0", 0},
    {"02 space everywhere", "cpu main", {{"tag bar", "value"}}, {F("name bar", 1)}, 1, 0, 0,
     "cpu\\ main,tag\\ bar=value name\\ bar=1 0", 0},
    {"03 equals literal in measurement", "cpu=main", {{"tag=bar", "value=foo"}}, {F("name=bar", 1)},
     1, 0, 0, "cpu=main,tag\\=bar=value\\=foo name\\=bar=1 0", 0},
    {"04 tag value with space", "cpu", {{"regions", "east west"}}, {F("value", 1)}, 1, 0, 0,
     "cpu,regions=east\\ west value=1 0", 0},
    {"05 backslash comma equals", "cpu", {{"regions", "\\,,=east"}}, {F("value", 1)}, 1, 0, 0,
     "cpu,regions=\\\\,\\,\\=east value=1 0", 0},
    {"06 backslash then space at the end", "cpu", {{"regions", "east\\ "}}, {F("value", 1)}, 1, 0,
     0, "cpu,regions=east\\\\  value=1 0", 0},
    {"07 backslash then space at the start", "cpu", {{"regions", "\\ east"}}, {F("value", 1)}, 1, 0,
     0, "cpu,regions=\\\\ east value=1 0", 0},
    {"08 literal backslash-t unchanged", "cpu", {{"regions", "eas\\t"}}, {F("value", 1)}, 1, 0, 0,
     "cpu,regions=eas\\t value=1 0", 0},
    {"09 tag key a single space", "cpu", {{" ", "east"}}, {F("value", 1)}, 1, 0, 0,
     "cpu,\\ =east value=1 0", 0},
    {"10 tag key backslash equals", "cpu", {{"reg\\=ion", "east"}}, {F("value", 1)}, 1, 0, 0,
     "cpu,reg\\\\=ion=east value=1 0", 0},
    {"11 field key backslash-a", "cpu", {{0}}, {I("\\a", 1)}, 1, 0, 0, "cpu \\a=1i 0", 0},
    /* Rows 12-16: string fields escape only '"' and '\'. */
    {"12 string with quote", "m", {{0}}, {S("str", "foo \" bar")}, 0, 0, 0,
     "m str=\"foo \\\" bar\"", 0},
    {"13 string ending in backslash", "m", {{0}}, {S("value", "test\\")}, 0, 0, 0,
     "m value=\"test\\\\\"", 0},
    {"14 string backslash quote", "m", {{0}}, {S("value", "test\\\"")}, 0, 0, 0,
     "m value=\"test\\\\\\\"\"", 0},
    {"15 string mixed", "m", {{0}}, {S("value", "{Hello\"{\\,}\" World}")}, 0, 0, 0,
     "m value=\"{Hello\\\"{\\\\,}\\\" World}\"", 0},
    {"16 no escaping of , = inside quotes", "m", {{0}},
     {S("str", "foo,bar"), S("s2", "foo=bar"), S("value", "1,0")}, 0, 0, 0,
     "m str=\"foo,bar\",s2=\"foo=bar\",value=\"1,0\"", 0},
    {"16b empty string", "m", {{0}}, {S("s", "")}, 0, 0, 0, "m s=\"\"", 0},
    {"16c utf-8 passes through", "m", {{"site", "\xe4\xb8\x8a\xe6\xb5\xb7"}}, {S("s", "\xc2\xb0")},
     0, 0, 0, "m,site=\xe4\xb8\x8a\xe6\xb5\xb7 s=\"\xc2\xb0\"", 0},
    /* Row 17: quotes outside string fields are literal. */
    {"17 quotes literal", "baz", {{"mytag", "\"a"}}, {F("x", 1)}, 1, 1441103862125, 0,
     "baz,mytag=\"a x=1 1441103862125", 0},
    {"17b quoted measurement", "\"cpu\"", {{"host", "a"}}, {F("x", 1)}, 0, 0, 0,
     "\"cpu\",host=a x=1", 0},
    /* Row 18: int vs integral float: the float never gets 'i'. */
    {"18 int", "m", {{0}}, {I("value", 6632243)}, 0, 0, 0, "m value=6632243i", 0},
    {"18 integral float", "m", {{0}}, {F("value", 6632243.0)}, 0, 0, 0, "m value=6632243", 0},
    {"18 p_w 6800", "m", {{0}}, {F("p_w", 6800.0)}, 0, 0, 0, "m p_w=6800", 0},
    {"18 float zero and negative zero", "m", {{0}}, {F("a", 0.0), F("b", -0.0)}, 0, 0, 0,
     "m a=0,b=-0", 0},
    {"18 big float exponent", "m", {{0}}, {F("a", 1e21), F("b", -1.234e+78)}, 0, 0, 0,
     "m a=1e+21,b=-1.234e+78", 0},
    /* Row 19: int64 limits. */
    {"19 int64 max and min", "m", {{0}}, {I("a", INT64_MAX), I("b", INT64_MIN), I("c", -1)}, 0, 0,
     0, "m a=9223372036854775807i,b=-9223372036854775808i,c=-1i", 0},
    /* Row 21: bools are written true/false. */
    {"21 bools", "m", {{0}}, {B("t", 1), B("f", 0), B("x", 7)}, 0, 0, 0, "m t=true,f=false,x=true",
     0},
    /* Row 22: NaN and infinity are not encodable. */
    {"22 NaN", "cpu", {{0}}, {F("value", NAN)}, 0, 0, 0, NULL, DCEM_ERANGE},
    {"22 +Inf", "cpu", {{0}}, {F("value", INFINITY)}, 0, 0, 0, NULL, DCEM_ERANGE},
    {"22 -Inf", "cpu", {{0}}, {F("ok", 1), F("value", -INFINITY)}, 0, 0, 0, NULL, DCEM_ERANGE},
    /* Row 23: an empty tag value is left out. */
    {"23 empty tag omitted", "cpu", {{"something", ""}, {"host", "a"}, {"rack", NULL}},
     {F("value", 1)}, 1, 0, 0, "cpu,host=a value=1 0", 0},
    {"23 all tags empty", "cpu", {{"something", ""}}, {F("value", 1)}, 1, 0, 0, "cpu value=1 0", 0},
    /* Row 24: reserved tag keys. */
    {"24 tag _measurement", "cpu", {{"_measurement", "x"}}, {F("v", 1)}, 0, 0, 0, NULL,
     DCEM_EINVAL},
    {"24 tag _field", "cpu", {{"_field", "x"}}, {F("v", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"24 tag time", "cpu", {{"time", "x"}}, {F("v", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"24 field time", "cpu", {{0}}, {F("time", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    /* Row 25: tags sorted by key in byte order. */
    {"25 sorted", "cpu", {{"last", "1"}, {"first", "2"}}, {F("x", 1)}, 0, 0, 0,
     "cpu,first=2,last=1 x=1", 0},
    {"25 byte order: upper case first, then _", "m", {{"site", "s"}, {"_x", "u"}, {"Z", "z"},
     {"role", "it"}}, {F("x", 1)}, 0, 0, 0, "m,Z=z,_x=u,role=it,site=s x=1", 0},
    {"25 byte order: high bytes last", "m", {{"\xc3\xa9", "e"}, {"z", "z"}}, {F("x", 1)}, 0, 0, 0,
     "m,z=z,\xc3\xa9=e x=1", 0},
    {"25 duplicate tag key", "m", {{"a", "1"}, {"a", "2"}}, {F("x", 1)}, 0, 0, 0, NULL,
     DCEM_EINVAL},
    {"25 duplicate field key", "m", {{0}}, {F("x", 1), I("x", 2)}, 0, 0, 0, NULL, DCEM_EINVAL},
    /* Row 26: newline and other C0 controls are refused in every element. */
    {"26 newline in string", "m", {{0}}, {S("str", "foo\nbar")}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"26 CR in string", "m", {{0}}, {S("str", "foo\rbar")}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"26 tab in string", "m", {{0}}, {S("str", "a\tb")}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"26 newline in measurement", "c\npu", {{0}}, {F("v", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"26 newline in tag key", "m", {{"a\nb", "x"}}, {F("v", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"26 newline in tag value", "m", {{"a", "x\n"}}, {F("v", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"26 CR in field key", "m", {{0}}, {F("v\r", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"26 escape char 0x1b in tag value", "m", {{"a", "x\x1b"}}, {F("v", 1)}, 0, 0, 0, NULL,
     DCEM_EINVAL},
    /* Row 27: no identifier may end in a backslash. */
    {"27 measurement trailing backslash", "x\\", {{0}}, {F("v", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"27 tag key trailing backslash", "m", {{"k\\", "v"}}, {F("v", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"27 tag value trailing backslash", "m", {{"k", "v\\"}}, {F("v", 1)}, 0, 0, 0, NULL,
     DCEM_EINVAL},
    {"27 field key trailing backslash", "m", {{0}}, {F("v\\", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"27 inner backslash is fine", "m\\x", {{0}}, {F("v", 1)}, 0, 0, 0, "m\\x v=1", 0},
    /* Other refusals. */
    {"empty measurement", "", {{0}}, {F("v", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"NULL measurement", NULL, {{0}}, {F("v", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"comment measurement", "#cpu", {{0}}, {F("v", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"'#' inside is fine", "c#pu", {{0}}, {F("v", 1)}, 0, 0, 0, "c#pu v=1", 0},
    {"empty tag key", "m", {{"", "x"}}, {F("v", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"empty field key", "m", {{0}}, {F("", 1)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"NULL string", "m", {{0}}, {S("s", NULL)}, 0, 0, 0, NULL, DCEM_EINVAL},
    {"unknown type", "m", {{0}}, {{.key = "v", .type = 9}}, 0, 0, 0, NULL, DCEM_EINVAL},
    /* Row 28-29: time in the point's precision; range +-9223372036854775806 ns. */
    {"28 ms", "cpu", {{0}}, {F("value", 1)}, 1, 946730096789, DCEM_LP_MS,
     "cpu value=1 946730096789", 0},
    {"29 negative time", "cpu", {{0}}, {F("value", 1)}, 1, -1, DCEM_LP_NS, "cpu value=1 -1", 0},
    {"29 ns min", "cpu", {{0}}, {F("value", 1)}, 1, -9223372036854775806LL, DCEM_LP_NS,
     "cpu value=1 -9223372036854775806", 0},
    {"29 ns max", "cpu", {{0}}, {F("value", 1)}, 1, 9223372036854775806LL, DCEM_LP_NS,
     "cpu value=1 9223372036854775806", 0},
    {"29 ns above max", "cpu", {{0}}, {F("value", 1)}, 1, INT64_MAX, DCEM_LP_NS, NULL, DCEM_ERANGE},
    {"29 ns below min", "cpu", {{0}}, {F("value", 1)}, 1, INT64_MIN, DCEM_LP_NS, NULL, DCEM_ERANGE},
    {"29 ms max", "cpu", {{0}}, {F("value", 1)}, 1, 9223372036854LL, DCEM_LP_MS,
     "cpu value=1 9223372036854", 0},
    {"29 ms above max", "cpu", {{0}}, {F("value", 1)}, 1, 9223372036855LL, DCEM_LP_MS, NULL,
     DCEM_ERANGE},
    {"29 s max", "cpu", {{0}}, {F("value", 1)}, 1, 9223372036LL, DCEM_LP_S,
     "cpu value=1 9223372036", 0},
    {"29 s above max", "cpu", {{0}}, {F("value", 1)}, 1, -9223372037LL, DCEM_LP_S, NULL,
     DCEM_ERANGE},
    {"unknown precision", "cpu", {{0}}, {F("value", 1)}, 1, 0, 7, NULL, DCEM_EINVAL},
    /* A dcem reading as docs/influxdb.md describes it. */
    {"dcem_reading", "dcem_reading",
     {{"site", "sh-dc01"}, {"gateway", "gw-a17"}, {"meter", "pdu-a1"}, {"role", "it"}},
     {F("kwh", 42949672.95), F("kw", 12345.669921875), S("quality", "ok")},
     1, 1735689600000, DCEM_LP_MS,
     "dcem_reading,gateway=gw-a17,meter=pdu-a1,role=it,site=sh-dc01 "
     "kwh=42949672.95,kw=12345.669921875,quality=\"ok\" 1735689600000",
     0},
};
/* clang-format on */

static size_t count_tags(const lp_case *c)
{
    size_t n = 0;
    while (n < NT && c->tags[n].key)
        n++;
    return n;
}

static size_t count_fields(const lp_case *c)
{
    size_t n = 0;
    while (n < NF && c->fields[n].key)
        n++;
    return n;
}

static dcem_lp_point point_of(const lp_case *c)
{
    dcem_lp_point p = {.measurement = c->measurement,
                       .tags = c->tags,
                       .n_tags = count_tags(c),
                       .fields = c->fields,
                       .n_fields = count_fields(c),
                       .has_time = c->has_time,
                       .time = c->time,
                       .precision = c->precision};
    return p;
}

static void test_case(void **state)
{
    const lp_case *c = *state;
    char buf[512], why[160];
    memcpy(buf, "prefix\n", 8);
    size_t len = 7; /* appends after what is there */
    dcem_lp_point p = point_of(c);
    int rc = dcem_lp_append(buf, sizeof buf, &len, &p, why, sizeof why);
    if (c->want) {
        if (rc) fail_msg("%s: rc %d (%s)", c->name, rc, why);
        char want[512];
        snprintf(want, sizeof want, "prefix\n%s\n", c->want);
        assert_string_equal(buf, want);
        assert_int_equal(len, strlen(want));
    } else {
        assert_int_equal(rc, c->rc);
        assert_int_equal(len, 7);
        assert_string_equal(buf, "prefix\n"); /* untouched, NUL-terminated */
        assert_true(why[0] != '\0');          /* says what was wrong */
    }
}

/* Every cap from "nothing fits" up to one byte short of line + NUL is
 * DCEM_EFULL with nothing written past cap and the buffer as it was; the
 * exact size fits. */
static void test_cap_every_size(void **state)
{
    (void)state;
    const lp_case *c = &cases[sizeof cases / sizeof cases[0] - 1];
    dcem_lp_point p = point_of(c);
    size_t need = strlen(c->want) + 2; /* '\n' and NUL */
    for (size_t cap = 1; cap <= need; cap++) {
        char *buf = malloc(cap); /* exactly cap bytes: ASan sees any overrun */
        assert_non_null(buf);
        memset(buf, 'x', cap);
        size_t len = 0;
        int rc = dcem_lp_append(buf, cap, &len, &p, NULL, 0);
        if (cap < need) {
            assert_int_equal(rc, DCEM_EFULL);
            assert_int_equal(len, 0);
            assert_int_equal(buf[0], '\0');
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(len, need - 1);
            assert_int_equal(buf[len], '\0');
        }
        free(buf);
    }
    /* *len at or past cap is a caller error, not an overrun. */
    char b[8];
    size_t len = 8;
    assert_int_equal(dcem_lp_append(b, sizeof b, &len, &p, NULL, 0), DCEM_EINVAL);
}

static void test_many_lines(void **state)
{
    (void)state;
    char buf[4096];
    size_t len = 0;
    dcem_lp_field f = {.key = "v", .type = DCEM_LP_INT};
    dcem_lp_point p = {.measurement = "m", .fields = &f, .n_fields = 1, .has_time = 1};
    int rc = 0, n = 0;
    while ((rc = dcem_lp_append(buf, sizeof buf, &len, &p, NULL, 0)) == 0) {
        f.i = ++n;
        p.time = n;
    }
    assert_int_equal(rc, DCEM_EFULL);
    assert_true(len < sizeof buf && strlen(buf) == len);
    /* Each line is whole: the last character is the last line's '\n'. */
    assert_int_equal(buf[len - 1], '\n');
}

static void test_limits(void **state)
{
    (void)state;
    char buf[256];
    size_t len = 0;
    dcem_lp_tag tags[DCEM_LP_MAX_TAGS + 1];
    char keys[DCEM_LP_MAX_TAGS + 1][8];
    for (int i = 0; i <= DCEM_LP_MAX_TAGS; i++) {
        snprintf(keys[i], sizeof keys[i], "t%02d", DCEM_LP_MAX_TAGS - i);
        tags[i] = (dcem_lp_tag){keys[i], "v"};
    }
    dcem_lp_field f = {.key = "v", .type = DCEM_LP_FLOAT, .f = 1};
    dcem_lp_point p = {.measurement = "m",
                       .tags = tags,
                       .n_tags = DCEM_LP_MAX_TAGS + 1,
                       .fields = &f,
                       .n_fields = 1};
    assert_int_equal(dcem_lp_append(buf, sizeof buf, &len, &p, NULL, 0), DCEM_EINVAL);
    /* DCEM_LP_MAX_TAGS tags, given in reverse: sorted, but the line is too long here. */
    p.n_tags = DCEM_LP_MAX_TAGS;
    assert_int_equal(dcem_lp_append(buf, sizeof buf, &len, &p, NULL, 0), DCEM_EFULL);
    char big[1024];
    len = 0;
    assert_int_equal(dcem_lp_append(big, sizeof big, &len, &p, NULL, 0), 0);
    assert_true(strncmp(big, "m,t01=v,t02=v,", 14) == 0);
    assert_non_null(strstr(big, ",t64=v v=1\n"));

    /* A string of exactly DCEM_LP_MAX_STRING bytes is fine, one more is not. */
    char *s = malloc(DCEM_LP_MAX_STRING + 2);
    char *line = malloc(DCEM_LP_MAX_STRING + 64);
    assert_non_null(s);
    assert_non_null(line);
    memset(s, 'a', DCEM_LP_MAX_STRING + 1);
    s[DCEM_LP_MAX_STRING] = '\0';
    dcem_lp_field sf = {.key = "s", .type = DCEM_LP_STRING, .s = s};
    dcem_lp_point sp = {.measurement = "m", .fields = &sf, .n_fields = 1};
    len = 0;
    assert_int_equal(dcem_lp_append(line, DCEM_LP_MAX_STRING + 64, &len, &sp, NULL, 0), 0);
    s[DCEM_LP_MAX_STRING] = 'a';
    s[DCEM_LP_MAX_STRING + 1] = '\0';
    len = 0;
    assert_int_equal(dcem_lp_append(line, DCEM_LP_MAX_STRING + 64, &len, &sp, NULL, 0),
                     DCEM_ERANGE);
    free(s);
    free(line);

    /* No field at all. */
    dcem_lp_point nf = {.measurement = "m"};
    len = 0;
    assert_int_equal(dcem_lp_append(buf, sizeof buf, &len, &nf, NULL, 0), DCEM_EINVAL);
}

/* Doubles print in the shortest form that reads back exactly. */
static void test_float_round_trip(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } rows[] = {
        {0.1, "0.1"},
        {0.1 + 0.2, "0.30000000000000004"},
        {42949672.95, "42949672.95"},
        {12345.669921875, "12345.669921875"},
        {6800, "6800"},
        {-1.5, "-1.5"},
        {1e-300, "1e-300"},
        {5e-324, "4.94065645841247e-324"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {123456789012345680.0, "1.2345678901234568e+17"},
        {1.5e-7, "1.5e-07"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char s[40];
        size_t n = dcem_lp_format_float(s, sizeof s, rows[i].v);
        assert_int_equal(n, strlen(rows[i].want));
        assert_string_equal(s, rows[i].want);
        assert_true(strtod(s, NULL) == rows[i].v);
    }
    char s[40];
    assert_int_equal(dcem_lp_format_float(s, sizeof s, NAN), 0);
    assert_int_equal(dcem_lp_format_float(s, 16, 1.0), 0);
    /* Many random doubles: exact round trip, no 'i', no ','. */
    unsigned long long x = 88172645463325252ULL;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (!isfinite(v)) continue;
        assert_true(dcem_lp_format_float(s, sizeof s, v) > 0);
        assert_true(strtod(s, NULL) == v);
        assert_null(strpbrk(s, ",i"));
    }
}

/* 2000-01-01T12:34:56.789012345Z at each precision, truncated (§2.3 row 28),
 * and pre-1970 times truncate toward the past. */
static void test_precision(void **state)
{
    (void)state;
    const int64_t ns = 946730096789012345LL;
    assert_int_equal(dcem_lp_time_from_ns(ns, DCEM_LP_S), 946730096LL);
    assert_int_equal(dcem_lp_time_from_ns(ns, DCEM_LP_MS), 946730096789LL);
    assert_int_equal(dcem_lp_time_from_ns(ns, DCEM_LP_US), 946730096789012LL);
    assert_int_equal(dcem_lp_time_from_ns(ns, DCEM_LP_NS), ns);
    assert_int_equal(dcem_lp_time_from_ns(1615196563299053942LL, DCEM_LP_S), 1615196563LL);
    assert_int_equal(dcem_lp_time_from_ns(1615196563299053942LL, DCEM_LP_US), 1615196563299053LL);
    assert_int_equal(dcem_lp_time_from_ns(-1, DCEM_LP_MS), -1);
    assert_int_equal(dcem_lp_time_from_ns(-1000000, DCEM_LP_MS), -1);
    assert_int_equal(dcem_lp_time_from_ns(-1000001, DCEM_LP_MS), -2);
    assert_string_equal(dcem_lp_precision_name(DCEM_LP_MS), "ms");
    assert_string_equal(dcem_lp_precision_name(DCEM_LP_S), "s");
    assert_string_equal(dcem_lp_precision_name(DCEM_LP_US), "us");
    assert_string_equal(dcem_lp_precision_name(DCEM_LP_NS), "ns");
    assert_null(dcem_lp_precision_name(-1));
    assert_null(dcem_lp_precision_name(DCEM_LP_PRECISION_COUNT));

    /* The same instant as a line at each precision. */
    static const char *const want[] = {"m v=1 946730096789\n", "m v=1 946730096\n",
                                       "m v=1 946730096789012\n", "m v=1 946730096789012345\n"};
    for (int prec = 0; prec < DCEM_LP_PRECISION_COUNT; prec++) {
        dcem_lp_field f = {.key = "v", .type = DCEM_LP_FLOAT, .f = 1};
        dcem_lp_point p = {.measurement = "m",
                           .fields = &f,
                           .n_fields = 1,
                           .has_time = 1,
                           .time = dcem_lp_time_from_ns(ns, prec),
                           .precision = prec};
        char buf[64];
        size_t len = 0;
        assert_int_equal(dcem_lp_append(buf, sizeof buf, &len, &p, NULL, 0), 0);
        assert_string_equal(buf, want[prec]);
    }
}

/* Builds a locale with localedef into a temporary LOCPATH (no root, nothing
 * installed) and switches LC_NUMERIC to it. 0 when that is not possible. */
static int use_locale(const char *dir, const char *src, const char *name)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "localedef -i %s -f UTF-8 -c %s/%s >/dev/null 2>&1", src, dir, name);
    if (system(cmd) != 0) return 0;
    if (setenv("LOCPATH", dir, 1)) return 0;
    return setlocale(LC_NUMERIC, name) != NULL;
}

/* Under de_DE (decimal ',') and ps_AF (decimal U+066B, two bytes) the line
 * is byte for byte what the C locale gives. */
static void test_locale(void **state)
{
    (void)state;
    char dir[] = "/tmp/dcem-lp-locale-XXXXXX";
    if (!mkdtemp(dir)) skip();
    static const char *const locales[][2] = {{"de_DE", "de_DE.UTF-8"}, {"ps_AF", "ps_AF.UTF-8"}};
    dcem_lp_field f[] = {{.key = "a", .type = DCEM_LP_FLOAT, .f = 1.5},
                         {.key = "b", .type = DCEM_LP_FLOAT, .f = 0.30000000000000004},
                         {.key = "c", .type = DCEM_LP_FLOAT, .f = -2.5e-7},
                         {.key = "d", .type = DCEM_LP_INT, .i = -1234567}};
    dcem_lp_point p = {
        .measurement = "m", .fields = f, .n_fields = 4, .has_time = 1, .time = 1735689600000};
    const char *want = "m a=1.5,b=0.30000000000000004,c=-2.5e-07,d=-1234567i 1735689600000\n";
    int tried = 0;
    for (size_t i = 0; i < 2; i++) {
        if (!use_locale(dir, locales[i][0], locales[i][1])) continue;
        tried++;
        char probe[32];
        snprintf(probe, sizeof probe, "%.1f", 1.5);
        assert_string_not_equal(probe, "1.5"); /* the locale really is in force */
        char buf[128];
        size_t len = 0;
        int rc = dcem_lp_append(buf, sizeof buf, &len, &p, NULL, 0);
        setlocale(LC_NUMERIC, "C");
        assert_int_equal(rc, 0);
        assert_string_equal(buf, want);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf %s/%s", dir, locales[i][1]);
        assert_int_equal(system(cmd), 0);
    }
    rmdir(dir);
    if (!tried) skip(); /* no localedef or locale sources on this machine */
}

int main(void)
{
    int failed = RUN_TABLE("lineproto_cases", test_case, cases);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_every_size), cmocka_unit_test(test_many_lines),
        cmocka_unit_test(test_limits),         cmocka_unit_test(test_float_round_trip),
        cmocka_unit_test(test_precision),      cmocka_unit_test(test_locale),
    };
    return failed + cmocka_run_group_tests(tests, NULL, NULL);
}
