/* test_tz.c — tz against the system's zoneinfo files, hand-built TZif
 * buffers (slim, footer-only, version 1) and corrupt input. Epoch constants
 * were computed with python3's datetime/zoneinfo and `TZ=... date`. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "tz.h"

#define H 3600
#define ZONEINFO "/usr/share/zoneinfo/"

/* ---- helpers ---- */

/* Exactly len bytes on the heap, so ASan catches any read past the end. */
static unsigned char *read_zone_file(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "%s%s", ZONEINFO, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s (tzdata installed?)", path);
    unsigned char tmp[65536];
    size_t n = fread(tmp, 1, sizeof tmp, f);
    fclose(f);
    assert_true(n > 0 && n < sizeof tmp);
    unsigned char *buf = malloc(n);
    assert_non_null(buf);
    memcpy(buf, tmp, n);
    *len = n;
    return buf;
}

static dcem_tz *load_zone(const char *name)
{
    size_t len;
    unsigned char *buf = read_zone_file(name, &len);
    dcem_tz *tz = NULL;
    char err[128] = "";
    int rc = dcem_tz_parse(buf, len, &tz, err, sizeof err);
    free(buf);
    if (rc != 0) fail_msg("%s: %s", name, err);
    return tz;
}

struct tzif_spec {
    char version; /* 0, '2', '3' or '4' */
    size_t ntimes;
    const int64_t *times;
    const unsigned char *idx;
    size_t ntypes;
    const int32_t *offs;
    const char *footer; /* v2+ only */
};

struct out {
    unsigned char *p;
    size_t len, cap;
};

static void put(struct out *o, const void *src, size_t n)
{
    if (n == 0) return; /* src may be NULL */
    assert_true(o->len + n <= o->cap);
    memcpy(o->p + o->len, src, n);
    o->len += n;
}

static void put_be(struct out *o, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)(v >> (8 * (n - 1 - i)));
        put(o, &b, 1);
    }
}

static void put_hdr(struct out *o, char version, size_t ntimes, size_t ntypes)
{
    put(o, "TZif", 4);
    put(o, &version, 1);
    put(o, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 15);
    uint32_t counts[6] = {0, 0, 0, (uint32_t)ntimes, (uint32_t)ntypes, 4};
    for (size_t i = 0; i < 6; i++)
        put_be(o, counts[i], 4);
}

static void put_block(struct out *o, const struct tzif_spec *s, size_t tsize)
{
    for (size_t i = 0; i < s->ntimes; i++)
        put_be(o, (uint64_t)s->times[i], tsize);
    put(o, s->idx, s->ntimes);
    for (size_t i = 0; i < s->ntypes; i++) {
        put_be(o, (uint32_t)s->offs[i], 4);
        put(o, "\0\0", 2); /* isdst 0, abbreviation index 0 */
    }
    put(o, "XXX", 4);
}

/* Writes a TZif file; for v2+ the version 1 block is a minimal one, as zic -b
 * slim writes it. Returns the length. */
static size_t build_tzif(unsigned char *buf, size_t cap, const struct tzif_spec *s)
{
    struct out o = {buf, 0, cap};
    if (s->version == 0) {
        put_hdr(&o, 0, s->ntimes, s->ntypes);
        put_block(&o, s, 4);
        return o.len;
    }
    static const int32_t zero = 0;
    struct tzif_spec v1 = {0, 0, NULL, NULL, 1, &zero, NULL};
    put_hdr(&o, s->version, 0, 1);
    put_block(&o, &v1, 4);
    put_hdr(&o, s->version, s->ntimes, s->ntypes);
    put_block(&o, s, 8);
    put(&o, "\n", 1);
    put(&o, s->footer, strlen(s->footer));
    put(&o, "\n", 1);
    return o.len;
}

/* A zone with no transitions: one type of offset std_off, plus the footer. */
static int parse_slim(int32_t std_off, const char *footer, dcem_tz **tz, char *err, size_t errlen)
{
    unsigned char buf[512];
    struct tzif_spec s = {'2', 0, NULL, NULL, 1, &std_off, footer};
    size_t len = build_tzif(buf, sizeof buf, &s);
    return dcem_tz_parse(buf, len, tz, err, errlen);
}

/* ---- real zoneinfo files ---- */

struct offset_case {
    const char *zone;
    int64_t t;
    int32_t off;
};

static const struct offset_case offset_cases[] = {
    {"Asia/Shanghai", 1751328000, 8 * H},     /* 2025-07-01 */
    {"Asia/Shanghai", 473385600, 8 * H},      /* 1985-01-01 */
    {"Asia/Shanghai", 583718400, 9 * H},      /* 1988-07-01, DST 1986-1991 */
    {"Asia/Shanghai", 577216800 - 1, 8 * H},  /* 1988-04-16T18:00Z - 1 s */
    {"Asia/Shanghai", 577216800, 9 * H},      /* 1988-04-16T18:00Z */
    {"Asia/Shanghai", 684867600 - 1, 9 * H},  /* 1991-09-14T17:00Z - 1 s, last DST end */
    {"Asia/Shanghai", 684867600, 8 * H},      /* 1991-09-14T17:00Z */
    {"Europe/Berlin", 1743296400 - 1, 1 * H}, /* 2025-03-30T01:00Z - 1 s */
    {"Europe/Berlin", 1743296400, 2 * H},     /* 2025-03-30T01:00Z spring forward */
    {"Europe/Berlin", 1761440400 - 1, 2 * H}, /* 2025-10-26T01:00Z - 1 s */
    {"Europe/Berlin", 1761440400, 1 * H},     /* 2025-10-26T01:00Z fall back */
    {"America/New_York", 1752573600, -4 * H}, /* 2025-07-15T10:00Z */
    {"America/New_York", 1736942400, -5 * H}, /* 2025-01-15T12:00Z */
    /* 2050 lies past Debian's last transition (2037): the footer rule. */
    {"America/New_York", 2540289600, -4 * H},     /* 2050-07-01T12:00Z */
    {"America/New_York", 2525860800, -5 * H},     /* 2050-01-15T12:00Z */
    {"America/New_York", 2530767600 - 1, -5 * H}, /* 2050-03-13T07:00Z - 1 s */
    {"America/New_York", 2530767600, -4 * H},     /* 2050-03-13T07:00Z */
    {"America/New_York", 2551327200 - 1, -4 * H}, /* 2050-11-06T06:00Z - 1 s */
    {"America/New_York", 2551327200, -5 * H},     /* 2050-11-06T06:00Z */
    {"America/New_York", 15153548400, -4 * H},    /* 2450-03-13T07:00Z (folded by 400 y) */
    {"America/New_York", 15174108000 - 1, -4 * H},
    {"America/New_York", 15174108000, -5 * H},    /* 2450-11-06T06:00Z */
    {"Asia/Kathmandu", 1751328000, 5 * H + 2700}, /* 2025-07-01, +5:45 */
    {"Asia/Kathmandu", 504901800 - 1, 5 * H + 1800},
    {"Asia/Kathmandu", 504901800, 5 * H + 2700}, /* 1985-12-31T18:30Z */
    {"UTC", 0, 0},
    {"UTC", 1751328000, 0},
};

static void test_offsets(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof offset_cases / sizeof offset_cases[0]; i++) {
        const struct offset_case *c = &offset_cases[i];
        dcem_tz *tz = load_zone(c->zone);
        int64_t from, until;
        int32_t off = dcem_tz_offset(tz, c->t, &from, &until);
        if (off != c->off)
            fail_msg("%s at %lld: got %ld, want %ld", c->zone, (long long)c->t, (long)off,
                     (long)c->off);
        assert_true(from <= c->t && c->t < until);
        assert_int_equal(dcem_tz_offset(tz, from, NULL, NULL), off);
        if (until != INT64_MAX) assert_int_equal(dcem_tz_offset(tz, until - 1, NULL, NULL), off);
        dcem_tz_free(tz);
    }
}

struct range_case {
    const char *zone;
    int64_t t, from, until;
};

static const struct range_case range_cases[] = {
    {"Europe/Berlin", 1748736000, 1743296400, 1761440400},       /* 2025-06-01: CEST 2025 */
    {"America/New_York", 2540289600, 2530767600, 2551327200},    /* EDT 2050 (footer) */
    {"America/New_York", 2525860800, 2519877600, 2530767600},    /* EST 2049/50 (footer) */
    {"America/New_York", 15160000000, 15153548400, 15174108000}, /* EDT 2450 */
    {"Asia/Shanghai", 1751328000, 684867600, INT64_MAX},         /* CST since 1991 */
    {"UTC", 1751328000, INT64_MIN, INT64_MAX},
};

static void test_ranges(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof range_cases / sizeof range_cases[0]; i++) {
        const struct range_case *c = &range_cases[i];
        dcem_tz *tz = load_zone(c->zone);
        int64_t from = 0, until = 0;
        dcem_tz_offset(tz, c->t, &from, &until);
        assert_int_equal(from, c->from);
        assert_int_equal(until, c->until);
        dcem_tz_free(tz);
    }
}

struct l2u_case {
    const char *zone;
    int64_t local, utc;
    const char *what;
};

static const struct l2u_case l2u_cases[] = {
    {"Europe/Berlin", 1752580800, 1752573600, "2025-07-15 12:00 CEST"},
    {"Europe/Berlin", 1761445800, 1761438600, "2025-10-26 02:30 twice: the CEST one"},
    {"Europe/Berlin", 1743301800, 1743296400, "2025-03-30 02:30 skipped: 01:00Z"},
    {"Europe/Berlin", 1743303600, 1743296400, "2025-03-30 03:00, first instant after the gap"},
    {"Europe/Berlin", 1761444000, 1761436800, "2025-10-26 02:00 twice: the CEST one"},
    {"Europe/Berlin", 1761447600, 1761444000, "2025-10-26 03:00, once (CET)"},
    {"Europe/Berlin", 1743292800, 1743289200, "2025-03-30 00:00"},
    {"Europe/Berlin", 1743379200, 1743372000, "2025-03-31 00:00"},
    {"Europe/Berlin", 1761436800, 1761429600, "2025-10-26 00:00"},
    {"Europe/Berlin", 1761523200, 1761519600, "2025-10-27 00:00"},
    {"Asia/Shanghai", 1767225600, 1767196800, "2026-01-01 00:00"},
    {"America/New_York", 2551311000, 2551325400, "2050-11-06 01:30 twice: the EDT one"},
    {"America/New_York", 2530751400, 2530767600, "2050-03-13 02:30 skipped"},
    {"Asia/Kathmandu", 1751328000 + 5 * H + 2700, 1751328000, "2025-07-01 05:45"},
    {"UTC", 1751328000, 1751328000, "UTC"},
};

static void test_local_to_utc(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof l2u_cases / sizeof l2u_cases[0]; i++) {
        const struct l2u_case *c = &l2u_cases[i];
        dcem_tz *tz = load_zone(c->zone);
        int64_t got = dcem_tz_local_to_utc(tz, c->local);
        if (got != c->utc)
            fail_msg("%s %s: got %lld, want %lld", c->zone, c->what, (long long)got,
                     (long long)c->utc);
        dcem_tz_free(tz);
    }
}

static void test_local_day_length(void **state)
{
    (void)state;
    dcem_tz *tz = load_zone("Europe/Berlin");
    const int64_t d0330 = 1743292800, d1026 = 1761436800, d0715 = 1752537600; /* local midnights */
    assert_int_equal(dcem_tz_local_to_utc(tz, d0330 + 86400) - dcem_tz_local_to_utc(tz, d0330),
                     23 * H);
    assert_int_equal(dcem_tz_local_to_utc(tz, d1026 + 86400) - dcem_tz_local_to_utc(tz, d1026),
                     25 * H);
    assert_int_equal(dcem_tz_local_to_utc(tz, d0715 + 86400) - dcem_tz_local_to_utc(tz, d0715),
                     24 * H);
    dcem_tz_free(tz);
}

static void test_shanghai_new_year(void **state)
{
    (void)state;
    dcem_tz *tz = load_zone("Asia/Shanghai");
    const int64_t t = 1767196800;                                        /* 2025-12-31T16:00:00Z */
    assert_int_equal(t + dcem_tz_offset(tz, t, NULL, NULL), 1767225600); /* 2026-01-01 00:00 */
    assert_int_equal(t - 1 + dcem_tz_offset(tz, t - 1, NULL, NULL), 1767225600 - 1);
    dcem_tz_free(tz);
}

/* Every instant maps to a local time that maps back to it, or to the earlier
 * instant when that local time occurs twice; crosses New York's change from
 * the transition table to the footer rule in 2037. */
static void test_round_trip_sweep(void **state)
{
    (void)state;
    const char *zones[] = {"America/New_York", "Europe/Berlin", "Asia/Shanghai"};
    for (size_t z = 0; z < 3; z++) {
        dcem_tz *tz = load_zone(zones[z]);
        for (int64_t t = 1577836800; t < 2208988800; t += 1800 + 7) { /* 2020..2040 */
            int64_t local = t + dcem_tz_offset(tz, t, NULL, NULL);
            int64_t u = dcem_tz_local_to_utc(tz, local);
            assert_true(u <= t);
            assert_int_equal(u + dcem_tz_offset(tz, u, NULL, NULL), local);
        }
        dcem_tz_free(tz);
    }
}

/* ---- the footer rule ---- */

/* A slim file must give exactly the transitions Debian's fat file lists. */
static void test_slim_matches_fat(void **state)
{
    (void)state;
    static const struct {
        const char *zone, *footer;
        int32_t std_off;
        int64_t begin, end;
    } cases[] = {
        {"America/New_York", "EST5EDT,M3.2.0,M11.1.0", -5 * H, 1199145600, 2114380800},
        {"Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3", 1 * H, 852076800, 2114380800},
    }; /* 2008 resp. 1997 to 2037-01-01 */
    for (size_t i = 0; i < 2; i++) {
        dcem_tz *fat = load_zone(cases[i].zone), *slim = NULL;
        assert_int_equal(parse_slim(cases[i].std_off, cases[i].footer, &slim, NULL, 0), 0);
        int n = 0;
        for (int64_t t = cases[i].begin; t < cases[i].end; n++) {
            int64_t f1, u1, f2, u2;
            assert_int_equal(dcem_tz_offset(fat, t, &f1, &u1), dcem_tz_offset(slim, t, &f2, &u2));
            assert_int_equal(u1, u2);
            t = u1;
        }
        assert_true(n >= 58);
        dcem_tz_free(fat);
        dcem_tz_free(slim);
    }
}

struct footer_case {
    const char *footer;
    int64_t t;
    int32_t off;
};

/* From `TZ=footer date -d @t +%::z` (glibc), except where marked. */
static const struct footer_case footer_cases[] = {
    {"CST-8", 1906502400, 28800},
    {"<+0545>-5:45", 1906502400, 20700},
    {"EST5EDT,M3.2.0,M11.1.0", 1899356399, -18000}, /* 2030-03-10T07:00Z - 1 s */
    {"EST5EDT,M3.2.0,M11.1.0", 1899356400, -14400},
    {"EST5EDT,M3.2.0,M11.1.0", 1919915999, -14400}, /* 2030-11-03T06:00Z - 1 s */
    {"EST5EDT,M3.2.0,M11.1.0", 1919916000, -18000},
    {"EST5EDT", 1899356399, -18000}, /* no dates: the US rules */
    {"EST5EDT", 1899356400, -14400},
    {"EST5EDT", 1919915999, -14400},
    {"EST5EDT", 1919916000, -18000},
    {"CET-1CEST,M3.5.0,M10.5.0/3", 1901149199, 3600}, /* 2030-03-31T01:00Z - 1 s */
    {"CET-1CEST,M3.5.0,M10.5.0/3", 1901149200, 7200},
    {"CET-1CEST,M3.5.0,M10.5.0/3", 1919293199, 7200}, /* 2030-10-27T01:00Z - 1 s */
    {"CET-1CEST,M3.5.0,M10.5.0/3", 1919293200, 3600},
    {"AEST-10AEDT,M10.1.0,M4.1.0/3", 1901721599, 39600}, /* 2030-04-06T16:00Z - 1 s */
    {"AEST-10AEDT,M10.1.0,M4.1.0/3", 1901721600, 36000},
    {"AEST-10AEDT,M10.1.0,M4.1.0/3", 1917446399, 36000}, /* 2030-10-05T16:00Z - 1 s */
    {"AEST-10AEDT,M10.1.0,M4.1.0/3", 1917446400, 39600},
    {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", 1901149199, -7200}, /* 2030-03-31T01:00Z - 1 s */
    {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", 1901149200, -3600},
    {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", 1919293199, -3600}, /* 2030-10-27T01:00Z - 1 s */
    {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", 1919293200, -7200},
    {"IST-2IDT,M3.4.4/26,M10.5.0", 1900972799, 7200}, /* 2030-03-29T00:00Z - 1 s */
    {"IST-2IDT,M3.4.4/26,M10.5.0", 1900972800, 10800},
    {"IST-2IDT,M3.4.4/26,M10.5.0", 1919285999, 10800}, /* 2030-10-26T23:00Z - 1 s */
    {"IST-2IDT,M3.4.4/26,M10.5.0", 1919286000, 7200},
    {"EST5EDT,J60/2,J300/2", 1835506799, -18000}, /* 2028-03-01T07:00Z - 1 s (leap year) */
    {"EST5EDT,J60/2,J300/2", 1835506800, -14400},
    {"EST5EDT,J60/2,J300/2", 1856239199, -14400}, /* 2028-10-27T06:00Z - 1 s */
    {"EST5EDT,J60/2,J300/2", 1856239200, -18000},
    {"EST5EDT,J60/2,J300/2", 1898578799, -18000}, /* 2030-03-01T07:00Z - 1 s */
    {"EST5EDT,J60/2,J300/2", 1898578800, -14400},
    {"EST5EDT,59/2,299/2", 1835420399, -18000}, /* 2028-02-29T07:00Z - 1 s */
    {"EST5EDT,59/2,299/2", 1835420400, -14400},
    {"EST5EDT,59/2,299/2", 1856152799, -14400}, /* 2028-10-26T06:00Z - 1 s */
    {"EST5EDT,59/2,299/2", 1856152800, -18000},
    {"EST5EDT,59/2,299/2", 1898578799, -18000}, /* 2030-03-01T07:00Z - 1 s */
    {"EST5EDT,59/2,299/2", 1898578800, -14400},
    {"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 1901717999, 39600}, /* 2030-04-06T15:00Z - 1 s */
    {"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 1901718000, 37800},
    {"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 1917444599, 37800}, /* 2030-10-05T15:30Z - 1 s */
    {"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 1917444600, 39600},
    {"XXX3:30YYY2:30:15,M3.2.0/-167,M11.1.0/167", 1898742599, -12600}, /* 2030-03-03T04:30Z */
    {"XXX3:30YYY2:30:15,M3.2.0/-167,M11.1.0/167", 1898742600, -9015},
    {"XXX3:30YYY2:30:15,M3.2.0/-167,M11.1.0/167", 1920504614, -9015}, /* 2030-11-10T01:30:15Z */
    {"XXX3:30YYY2:30:15,M3.2.0/-167,M11.1.0/167", 1920504615, -12600},
    /* Southern hemisphere with a February end (old Sao Paulo rule). */
    {"<-03>3<-02>,M11.1.0/0,M2.3.0/0", 1897523999, -7200}, /* 2030-02-17T02:00Z - 1 s */
    {"<-03>3<-02>,M11.1.0/0,M2.3.0/0", 1897524000, -10800},
    {"<-03>3<-02>,M11.1.0/0,M2.3.0/0", 1919905199, -10800}, /* 2030-11-03T03:00Z - 1 s */
    {"<-03>3<-02>,M11.1.0/0,M2.3.0/0", 1919905200, -7200},
    {"<-03>3<-02>,M11.1.0/0,M2.3.0/0", 1928973599, -7200}, /* 2031-02-16T02:00Z - 1 s */
    {"<-03>3<-02>,M11.1.0/0,M2.3.0/0", 1928973600, -10800},
    /* RFC 8536 3.3.1: DST all year. glibc evaluates per local year and
     * briefly shows EST around New Year (1893473999, 1925009999). */
    {"EST5EDT,0/0,J365/25", 1893473999, -14400},
    {"EST5EDT,0/0,J365/25", 1893474000, -14400},
    {"EST5EDT,0/0,J365/25", 1925009999, -14400},
    {"EST5EDT,0/0,J365/25", 1925010000, -14400},
    /* DST starts Dec 31 25:00, i.e. 2031-01-01T04:00Z, and ends Mar 1: the
     * start crosses New Year (glibc already shows DST at 00:00Z, before
     * clocks go forward). */
    {"<-03>3<-02>,J365/25,J60", 1925006399, -10800},
    {"<-03>3<-02>,J365/25,J60", 1925006400, -7200},
    {"<-03>3<-02>,J365/25,J60", 1930103999, -7200}, /* 2031-03-01T04:00Z - 1 s */
    {"<-03>3<-02>,J365/25,J60", 1930104000, -10800},
    /* Year 1500, 400-year folding backwards: 2nd Sunday in March 07:00Z. */
    {"EST5EDT,M3.2.0,M11.1.0", -14825782800 - 1, -18000},
    {"EST5EDT,M3.2.0,M11.1.0", -14825782800, -14400},
    {"EST5EDT,M3.2.0,M11.1.0", -14805223200 - 1, -14400},
    {"EST5EDT,M3.2.0,M11.1.0", -14805223200, -18000},
};

static void test_footer_rules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof footer_cases / sizeof footer_cases[0]; i++) {
        const struct footer_case *c = &footer_cases[i];
        dcem_tz *tz = NULL;
        char err[128] = "";
        if (parse_slim(0, c->footer, &tz, err, sizeof err) != 0)
            fail_msg("\"%s\": %s", c->footer, err);
        int64_t from, until;
        int32_t off = dcem_tz_offset(tz, c->t, &from, &until);
        if (off != c->off)
            fail_msg("\"%s\" at %lld: got %ld, want %ld", c->footer, (long long)c->t, (long)off,
                     (long)c->off);
        assert_true(from <= c->t && c->t < until);
        if (from != INT64_MIN) assert_int_equal(dcem_tz_offset(tz, from, NULL, NULL), off);
        if (until != INT64_MAX) assert_int_equal(dcem_tz_offset(tz, until - 1, NULL, NULL), off);
        dcem_tz_free(tz);
    }
}

/* Ranges from the rule must agree with the offsets at their ends, also for
 * rules whose transitions cross New Year or whose DST periods overlap (a
 * later transition overrides an earlier one). */
static void test_footer_ranges_consistent(void **state)
{
    (void)state;
    static const char *rules[] = {
        "EST5EDT,M3.2.0,M11.1.0",
        "AEST-10AEDT,M10.1.0,M4.1.0/3",
        "EST5EDT,0/0,J365/25",
        "EST5EDT,0/0,J365/50",
        "<-03>3<-02>,J365/25,J60",
        "XXX3:30YYY2:30:15,M3.2.0/-167,M11.1.0/167",
        "<+14>-14<+15>,M12.5.6/167,J1/-167",
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        dcem_tz *tz = NULL;
        assert_int_equal(parse_slim(0, rules[i], &tz, NULL, 0), 0);
        for (int64_t t = -30000000000; t < 30000000000; t += 86400 * 3 + 3607) {
            int64_t from, until;
            int32_t off = dcem_tz_offset(tz, t, &from, &until);
            assert_true(from <= t && t < until);
            if (dcem_tz_offset(tz, from, NULL, NULL) != off ||
                (until != INT64_MAX && dcem_tz_offset(tz, until - 1, NULL, NULL) != off))
                fail_msg("\"%s\" at %lld: range [%lld, %lld) disagrees", rules[i], (long long)t,
                         (long long)from, (long long)until);
        }
        dcem_tz_free(tz);
    }
}

static void test_footer_invalid(void **state)
{
    (void)state;
    static const char *bad[] = {
        "EST",                            /* no offset */
        "ES5",                            /* name too short */
        "<+0>-5",                         /* quoted name too short */
        "<+05-5",                         /* unterminated */
        "EST25",                          /* hours > 24 */
        "EST5:60",                        /* minutes > 59 */
        "EST5EDT,M3.2.0",                 /* one date */
        "EST5EDT,M13.1.0,M11.1.0",        /* month */
        "EST5EDT,M3.6.0,M11.1.0",         /* week */
        "EST5EDT,M3.2.7,M11.1.0",         /* weekday */
        "EST5EDT,J0,J300",                /* Jn starts at 1 */
        "EST5EDT,366,J300",               /* n ends at 365 */
        "EST5EDT,M3.2.0/168,M11.1.0",     /* time > 167 h */
        "EST5EDT,M3.2.0,M11.1.0x",        /* trailing */
        "EST5 ",                          /* trailing */
        "EST5EDT,M3.2.0,M11.1.0/2:00:000" /* 4 digits */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char junk;
        dcem_tz *tz = (dcem_tz *)(void *)&junk; /* must come back NULL */
        char err[128] = "";
        if (parse_slim(0, bad[i], &tz, err, sizeof err) != DCEM_ETZ)
            fail_msg("footer \"%s\" accepted", bad[i]);
        assert_null(tz);
        assert_non_null(strstr(err, "footer"));
    }
}

/* ---- hand-built files ---- */

static void test_version1_file(void **state)
{
    (void)state;
    /* Type 2 repeats type 1's offset: that transition is no change. */
    static const int64_t times[] = {-1000, 1000000, 1500000, 2000000};
    static const unsigned char idx[] = {1, 0, 2, 1};
    static const int32_t offs[] = {-3 * H, 2 * H, -3 * H};
    unsigned char buf[256];
    struct tzif_spec s = {0, 4, times, idx, 3, offs, NULL};
    size_t len = build_tzif(buf, sizeof buf, &s);
    dcem_tz *tz = NULL;
    assert_int_equal(dcem_tz_parse(buf, len, &tz, NULL, 0), 0);
    int64_t from, until;
    assert_int_equal(dcem_tz_offset(tz, -1001, &from, &until), -3 * H); /* before: type 0 */
    assert_true(from == INT64_MIN && until == -1000);
    assert_int_equal(dcem_tz_offset(tz, -1000, &from, &until), 2 * H);
    assert_true(from == -1000 && until == 1000000);
    assert_int_equal(dcem_tz_offset(tz, 1700000, &from, &until), -3 * H);
    assert_true(from == 1000000 && until == 2000000);
    assert_int_equal(dcem_tz_offset(tz, 2000000, &from, &until), 2 * H); /* no footer in v1 */
    assert_true(from == 2000000 && until == INT64_MAX);
    dcem_tz_free(tz);
}

/* The footer governs from the last transition on, even when it disagrees
 * with that transition's type. */
static void test_footer_after_last_transition(void **state)
{
    (void)state;
    static const int64_t times[] = {1000};
    static const unsigned char idx[] = {1};
    static const int32_t offs[] = {0, 1 * H};
    unsigned char buf[256];
    struct tzif_spec s = {'4', 1, times, idx, 2, offs, "<+02>-2"};
    size_t len = build_tzif(buf, sizeof buf, &s);
    dcem_tz *tz = NULL;
    assert_int_equal(dcem_tz_parse(buf, len, &tz, NULL, 0), 0);
    int64_t from, until;
    assert_int_equal(dcem_tz_offset(tz, 999, &from, &until), 0);
    assert_int_equal(until, 1000);
    assert_int_equal(dcem_tz_offset(tz, 1000, &from, &until), 2 * H);
    assert_true(from == 1000 && until == INT64_MAX);
    dcem_tz_free(tz);
}

static void test_fixed(void **state)
{
    (void)state;
    dcem_tz *tz = dcem_tz_new_fixed(5 * H + 1800);
    assert_non_null(tz);
    int64_t from, until;
    assert_int_equal(dcem_tz_offset(tz, 1751328000, &from, &until), 5 * H + 1800);
    assert_true(from == INT64_MIN && until == INT64_MAX);
    assert_int_equal(dcem_tz_local_to_utc(tz, 1751328000 + 5 * H + 1800), 1751328000);
    dcem_tz_free(tz);
    /* Offsets far beyond any real zone still work. */
    tz = dcem_tz_new_fixed(INT32_MIN);
    assert_int_equal(dcem_tz_local_to_utc(tz, 0), -(int64_t)INT32_MIN);
    assert_int_equal(dcem_tz_local_to_utc(tz, INT64_MAX), INT64_MAX);
    dcem_tz_free(tz);
    dcem_tz_free(NULL);
}

/* The ends of int64: no overflow (UBSan aborts) and sane answers. */
static void test_extremes(void **state)
{
    (void)state;
    static const int64_t ts[] = {INT64_MIN, INT64_MIN + 1,    -(INT64_C(1) << 59), -1,
                                 0,         INT64_C(1) << 59, INT64_MAX - 1,       INT64_MAX};
    dcem_tz *zones[6] = {load_zone("America/New_York"), load_zone("Europe/Berlin"),
                         load_zone("Asia/Shanghai"),    load_zone("UTC"),
                         dcem_tz_new_fixed(-12 * H),    NULL};
    assert_int_equal(parse_slim(-5 * H, "EST5EDT,M3.2.0,M11.1.0", &zones[5], NULL, 0), 0);
    for (size_t z = 0; z < 6; z++) {
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            int64_t from, until;
            int32_t off = dcem_tz_offset(zones[z], ts[i], &from, &until);
            assert_true(off > -26 * H && off < 26 * H);
            assert_true(from <= ts[i] && (ts[i] < until || until == INT64_MAX));
            int64_t u = dcem_tz_local_to_utc(zones[z], ts[i]);
            if (ts[i] > INT64_MIN + 26 * H && ts[i] < INT64_MAX - 26 * H)
                assert_true(u >= ts[i] - 26 * H && u <= ts[i] + 26 * H);
        }
        dcem_tz_free(zones[z]);
    }
}

/* ---- corrupt input ---- */

/* needle: a word the reason must contain, or NULL. */
static void expect_etz(const unsigned char *buf, size_t len, const char *why, const char *needle)
{
    /* Copy to an exact-size heap block so ASan sees any over-read. */
    unsigned char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, buf, len);
    char junk;
    dcem_tz *tz = (dcem_tz *)(void *)&junk; /* must come back NULL */
    char err[128] = "";
    int rc = dcem_tz_parse(copy, len, &tz, err, sizeof err);
    if (rc != DCEM_ETZ) fail_msg("%s: rc %d, want DCEM_ETZ", why, rc);
    assert_null(tz);
    assert_true(err[0] != '\0');
    if (needle && !strstr(err, needle))
        fail_msg("%s: reason \"%s\" lacks \"%s\"", why, err, needle);
    assert_int_equal(dcem_tz_parse(copy, len, &tz, NULL, 0), DCEM_ETZ); /* no err buffer */
    free(copy);
}

static void put32_at(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void test_truncated(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = read_zone_file("Europe/Berlin", &len);
    for (size_t n = 0; n < len; n++) /* the footer's final newline is needed too */
        expect_etz(buf, n, "truncated Europe/Berlin", NULL);
    free(buf);
}

static void test_corrupt(void **state)
{
    (void)state;
    static const int64_t times[] = {100, 200};
    static const unsigned char idx[] = {1, 0};
    static const int32_t offs[] = {0, 1 * H};
    const struct tzif_spec good = {'2', 2, times, idx, 2, offs, "CET-1"};
    /* Layout: v1 header (44) + v1 block (6 + 4) = 54, so the second header
     * is at 54 and its counts at 54 + 20; its data starts at 98. */
    const size_t h2 = 54, data = 98, types = data + 2 * 9;
    unsigned char base[256], b[256];
    size_t len = build_tzif(base, sizeof base, &good);
    dcem_tz *tz = NULL;
    assert_int_equal(dcem_tz_parse(base, len, &tz, NULL, 0), 0);
    dcem_tz_free(tz);

#define CORRUPT(what, needle, stmt)                                                                \
    do {                                                                                           \
        memcpy(b, base, len);                                                                      \
        stmt;                                                                                      \
        expect_etz(b, len, what, needle);                                                          \
    } while (0)
    CORRUPT("bad magic", "magic", b[3] = 'F');
    CORRUPT("bad second magic", "second header", b[h2] = 'X');
    CORRUPT("unknown version", "version", (b[4] = '5', b[h2 + 4] = '5'));
    CORRUPT("v1 timecnt huge", "version 1 block", put32_at(b + 32, 0xffffffffu));
    CORRUPT("v1 typecnt too big", "version 1 block", put32_at(b + 36, 1000));
    CORRUPT("timecnt huge", "data block", put32_at(b + h2 + 32, 0xffffffffu));
    CORRUPT("timecnt too big", "data block", put32_at(b + h2 + 32, 20));
    CORRUPT("typecnt huge", "data block", put32_at(b + h2 + 36, 0x80000000u));
    CORRUPT("charcnt too big", "data block", put32_at(b + h2 + 40, 100));
    CORRUPT("leapcnt", "leap", put32_at(b + h2 + 28, 1));
    CORRUPT("typecnt 0", "no local time types", put32_at(b + h2 + 36, 0));
    CORRUPT("isstdcnt != typecnt", "isstdcnt",
            (put32_at(b + h2 + 24, 1), put32_at(b + h2 + 40, 3))); /* same size */
    CORRUPT("type index", "type 2 out of range", b[data + 16] = 2);
    CORRUPT("times not ascending", "ascending", b[data + 15] = 100);
    CORRUPT("offset out of range", "offset", put32_at(b + types, 0x7fffffffu));
    CORRUPT("isdst not 0/1", "isdst", b[types + 4] = 2);
    CORRUPT("abbreviation index", "abbreviation", b[types + 5] = 4);
    CORRUPT("footer without leading newline", "footer", b[len - 7] = 'x');
    CORRUPT("footer without final newline", "footer", b[len - 1] = 'x');
    CORRUPT("bad footer", "bad TZ footer", b[len - 2] = 'x');
#undef CORRUPT
    expect_etz((const unsigned char *)"TZif", 4, "header only", "magic");

    /* A short err buffer still gets a terminated prefix. */
    char err[8];
    memcpy(b, base, len);
    b[0] = 'X';
    assert_int_equal(dcem_tz_parse(b, len, &tz, err, sizeof err), DCEM_ETZ);
    assert_int_equal(strlen(err), sizeof err - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_local_to_utc),
        cmocka_unit_test(test_local_day_length),
        cmocka_unit_test(test_shanghai_new_year),
        cmocka_unit_test(test_round_trip_sweep),
        cmocka_unit_test(test_slim_matches_fat),
        cmocka_unit_test(test_footer_rules),
        cmocka_unit_test(test_footer_ranges_consistent),
        cmocka_unit_test(test_footer_invalid),
        cmocka_unit_test(test_version1_file),
        cmocka_unit_test(test_footer_after_last_transition),
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
