#include "tz.h"
#include "calendar.h"
#include "errors.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 8536 asks for UT offsets within (-25 h, +26 h); we reject anything
 * beyond +-26 h so local_to_utc can search a bounded window. */
#define TZ_MAX_OFF 93599
#define DAY 86400
/* The Gregorian calendar, weekdays included, repeats every 400 years. */
#define CYCLE_S (INT64_C(146097) * DAY)

/* One date of a POSIX TZ rule: Jn (1-365, Feb 29 never counted), n (0-365)
 * or Mm.w.d, plus the local time of day it takes effect (may be < 0 or
 * > 24 h, RFC 8536 section 3.3.1). */
struct tz_date {
    char kind;   /* 'J', 'D' or 'M' */
    int m, w, d; /* d: the weekday for 'M', else n */
    int32_t time;
};

struct tz_rule {
    int32_t std_off, dst_off; /* seconds east of UTC */
    bool has_dst;
    struct tz_date start, end;
};

struct dcem_tz {
    size_t n;      /* transitions that change the offset */
    int64_t *at;   /* ascending UTC instants; the arrays live in the same allocation */
    int32_t *off;  /* offset from at[i] on */
    int32_t off0;  /* offset before at[0] */
    int64_t span;  /* every offset of the zone is below this in magnitude */
    bool has_rule; /* footer rule governs t >= rule_from */
    int64_t rule_from;
    struct tz_rule rule;
};

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b) return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b) return INT64_MIN;
    return a + b;
}

static int64_t jan1(int64_t y)
{
    return dcem_days_from_civil(y, 1, 1);
}

static bool is_leap(int64_t y)
{
    return dcem_days_in_month(y, 2) == 29;
}

static int64_t year_of_day(int64_t day)
{
    int64_t y;
    int m, d;
    dcem_civil_from_days(day, &y, &m, &d);
    return y;
}

/* Day (since the epoch) a rule date falls on in the year starting on day j1. */
static int64_t rule_day(const struct tz_date *d, int64_t j1, bool leap)
{
    static const int cum[13] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365};
    if (d->kind == 'J') return j1 + d->d - 1 + (leap && d->d >= 60);
    if (d->kind == 'D') return j1 + d->d;
    int64_t first = j1 + cum[d->m - 1] + (leap && d->m > 2);
    int len = cum[d->m] - cum[d->m - 1] + (leap && d->m == 2);
    /* Day 0 (1970-01-01) was a Thursday, weekday 4. */
    int64_t wd = first + 4 - dcem_floordiv(first + 4, 7) * 7;
    int64_t mday = (d->d - wd + 7) % 7 + 7 * (d->w - 1);
    while (mday >= len) /* "week 5" means the last such weekday */
        mday -= 7;
    return first + mday;
}

struct tz_event {
    int64_t t;
    int32_t off;
};

/* Offset of the footer rule at t and the range around it. Works on t folded
 * into +-400 years of the epoch, so the calendar arithmetic cannot overflow. */
static int32_t rule_offset(const struct tz_rule *r, int64_t t, int64_t *from, int64_t *until)
{
    *from = INT64_MIN;
    *until = INT64_MAX;
    if (!r->has_dst) return r->std_off;

    int64_t shift = t / CYCLE_S * CYCLE_S;
    t -= shift;
    int64_t y = year_of_day(dcem_floordiv(t, DAY));
    /* Each transition holds until the next one. Rule times of up to 167 h
     * move transitions across New Year, so take five years: with the parse
     * limits, the last transition <= t and the next one are both among them.
     * Stable insertion keeps a same-instant "end, then next start" in year
     * order, which makes all-year DST ("0/0,J365/25") come out. */
    struct tz_event ev[10];
    size_t n = 0;
    for (int64_t yy = y - 2; yy <= y + 2; yy++) {
        int64_t j1 = jan1(yy);
        bool leap = is_leap(yy);
        struct tz_event pair[2] = {
            {rule_day(&r->start, j1, leap) * DAY + r->start.time - r->std_off, r->dst_off},
            {rule_day(&r->end, j1, leap) * DAY + r->end.time - r->dst_off, r->std_off}};
        for (size_t k = 0; k < 2; k++) {
            size_t i = n++;
            for (; i > 0 && ev[i - 1].t > pair[k].t; i--)
                ev[i] = ev[i - 1];
            ev[i] = pair[k];
        }
    }
    size_t k = 1; /* ev[0] <= t < ev[n - 1]; the bounds only guard ev[] */
    while (k < n - 1 && ev[k].t <= t)
        k++;
    *from = sat_add(ev[k - 1].t, shift);
    *until = sat_add(ev[k].t, shift);
    return ev[k - 1].off;
}

int32_t dcem_tz_offset(const dcem_tz *tz, int64_t t_s, int64_t *from, int64_t *until)
{
    int32_t off;
    int64_t f, u;
    if (tz->has_rule && t_s >= tz->rule_from) {
        off = rule_offset(&tz->rule, t_s, &f, &u);
        if (f < tz->rule_from) f = tz->rule_from;
    } else {
        size_t lo = 0, hi = tz->n; /* lo ends as the count of at[] <= t_s */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (tz->at[mid] <= t_s)
                lo = mid + 1;
            else
                hi = mid;
        }
        off = lo ? tz->off[lo - 1] : tz->off0;
        f = lo ? tz->at[lo - 1] : INT64_MIN;
        u = lo < tz->n ? tz->at[lo] : tz->has_rule ? tz->rule_from : INT64_MAX;
    }
    if (from) *from = f;
    if (until) *until = u;
    return off;
}

int64_t dcem_tz_local_to_utc(const dcem_tz *tz, int64_t local_s)
{
    /* Every instant u with u + offset(u) == local_s lies within span of
     * local_s, so walk the offset ranges across that window in order: the
     * first match is the earliest, and a forward jump over local_s is a gap. */
    int64_t u = sat_add(local_s, -tz->span);
    int64_t stop = sat_add(local_s, tz->span);
    int32_t prev = 0;
    bool have_prev = false;
    for (;;) {
        int64_t f, until;
        int32_t off = dcem_tz_offset(tz, u, &f, &until);
        if (have_prev && off > prev && local_s >= sat_add(u, prev) && local_s < sat_add(u, off))
            return u;
        int64_t c = sat_add(local_s, -(int64_t)off);
        if (c >= f && c < until) return c;
        if (until >= stop) break;
        u = until;
        prev = off;
        have_prev = true;
    }
    /* Only reached at the ends of the int64 range, where saturation bites. */
    return sat_add(local_s, -(int64_t)dcem_tz_offset(tz, local_s, NULL, NULL));
}

/* ---- POSIX TZ string (the TZif footer) ---- */

struct cur {
    const char *p, *end;
};

static bool eat(struct cur *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_alpha(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

/* A decimal number up to max, with no more digits than max has. */
static bool num(struct cur *c, int max, int *out)
{
    int v = 0, k = 0, kmax = 1;
    for (int m = max; m >= 10; m /= 10)
        kmax++;
    while (k < kmax && c->p < c->end && is_digit(*c->p)) {
        v = v * 10 + (*c->p++ - '0');
        k++;
    }
    if (k == 0 || v > max || (c->p < c->end && is_digit(*c->p))) return false;
    *out = v;
    return true;
}

/* An abbreviation is not needed, only skipped: "EST" or "<+0545>". */
static bool name(struct cur *c)
{
    const char *s;
    if (eat(c, '<')) {
        s = c->p;
        while (c->p < c->end &&
               (is_alpha(*c->p) || is_digit(*c->p) || *c->p == '+' || *c->p == '-'))
            c->p++;
        return c->p - s >= 3 && eat(c, '>');
    }
    s = c->p;
    while (c->p < c->end && is_alpha(*c->p))
        c->p++;
    return c->p - s >= 3;
}

/* [+-]h[h[h]][:mm[:ss]] in seconds. */
static bool hms(struct cur *c, int max_h, int32_t *out)
{
    int sign = 1, h, m = 0, s = 0;
    if (eat(c, '-'))
        sign = -1;
    else
        eat(c, '+');
    if (!num(c, max_h, &h)) return false;
    if (eat(c, ':') && (!num(c, 59, &m) || (eat(c, ':') && !num(c, 59, &s)))) return false;
    *out = sign * (h * 3600 + m * 60 + s);
    return true;
}

static bool date(struct cur *c, struct tz_date *d)
{
    bool ok;
    d->time = 7200;
    if (eat(c, 'M')) {
        d->kind = 'M';
        ok = num(c, 12, &d->m) && d->m >= 1 && eat(c, '.') && num(c, 5, &d->w) && d->w >= 1 &&
             eat(c, '.') && num(c, 6, &d->d);
    } else if (eat(c, 'J')) {
        d->kind = 'J';
        ok = num(c, 365, &d->d) && d->d >= 1;
    } else {
        d->kind = 'D';
        ok = num(c, 365, &d->d);
    }
    return ok && (!eat(c, '/') || hms(c, 167, &d->time));
}

static bool parse_rule(const char *s, size_t len, struct tz_rule *r)
{
    struct cur c = {s, s + len};
    int32_t o;
    memset(r, 0, sizeof *r);
    if (!name(&c) || !hms(&c, 24, &o)) return false;
    r->std_off = -o; /* POSIX counts west of UTC */
    if (c.p == c.end) return true;
    if (!name(&c)) return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (c.p < c.end && *c.p != ',') {
        if (!hms(&c, 24, &o)) return false;
        r->dst_off = -o;
    }
    if (c.p == c.end) { /* no dates: implementation-defined; tzcode and glibc use US rules */
        r->start = (struct tz_date){'M', 3, 2, 0, 7200};
        r->end = (struct tz_date){'M', 11, 1, 0, 7200};
        return true;
    }
    return eat(&c, ',') && date(&c, &r->start) && eat(&c, ',') && date(&c, &r->end) && c.p == c.end;
}

/* ---- TZif ---- */

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t n, const char *fmt, ...)
{
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return DCEM_ETZ;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Converting an out-of-range unsigned value to signed is
 * implementation-defined, so two's complement is spelt out. */
static int32_t be32s(const unsigned char *p)
{
    uint32_t v = be32(p);
    return v <= INT32_MAX ? (int32_t)v : -(int32_t)~v - 1;
}

static int64_t be_time(const unsigned char *p, size_t size)
{
    if (size == 4) return be32s(p);
    uint64_t v = (uint64_t)be32(p) << 32 | be32(p + 4);
    return v <= INT64_MAX ? (int64_t)v : -(int64_t)(~v) - 1;
}

struct tzif_hdr {
    uint32_t isut, isstd, leap, time, type, chars;
};

#define HDR_LEN 44

static void read_hdr(const unsigned char *p, struct tzif_hdr *h)
{
    h->isut = be32(p + 20);
    h->isstd = be32(p + 24);
    h->leap = be32(p + 28);
    h->time = be32(p + 32);
    h->type = be32(p + 36);
    h->chars = be32(p + 40);
}

/* Counts are at most 2^32 - 1 and tsize at most 8, so this cannot wrap. */
static uint64_t block_len(const struct tzif_hdr *h, size_t tsize)
{
    return (uint64_t)h->time * (tsize + 1) + (uint64_t)h->type * 6 + h->chars +
           (uint64_t)h->leap * (tsize + 4) + h->isstd + h->isut;
}

static dcem_tz *tz_alloc(size_t n)
{
    dcem_tz *tz = calloc(1, sizeof *tz + n * (sizeof(int64_t) + sizeof(int32_t)));
    if (!tz) return NULL;
    _Static_assert(sizeof *tz % sizeof(int64_t) == 0, "at[] must be aligned");
    tz->at = (int64_t *)(void *)(tz + 1);
    tz->off = (int32_t *)(void *)(tz->at + n);
    return tz;
}

int dcem_tz_parse(const unsigned char *buf, size_t len, dcem_tz **out, char *err, size_t errlen)
{
    struct tzif_hdr h;
    *out = NULL;
    if (len < HDR_LEN || memcmp(buf, "TZif", 4) != 0)
        return fail(err, errlen, "not a TZif file (bad magic)");
    unsigned char ver = buf[4];
    if (ver != 0 && (ver < '2' || ver > '4'))
        return fail(err, errlen, "unsupported TZif version 0x%02x", (unsigned)ver);
    read_hdr(buf, &h);
    size_t pos = HDR_LEN, tsize = 4;
    if (ver != 0) { /* skip the 32-bit block; the 64-bit one follows it */
        uint64_t v1 = block_len(&h, 4);
        if (v1 > len - pos || len - pos - (size_t)v1 < HDR_LEN)
            return fail(err, errlen, "truncated: version 1 block needs %llu bytes",
                        (unsigned long long)v1);
        pos += (size_t)v1;
        if (memcmp(buf + pos, "TZif", 4) != 0)
            return fail(err, errlen, "bad magic in second header");
        read_hdr(buf + pos, &h);
        pos += HDR_LEN;
        tsize = 8;
    }
    if (h.type == 0) return fail(err, errlen, "no local time types");
    if ((h.isstd && h.isstd != h.type) || (h.isut && h.isut != h.type))
        return fail(err, errlen, "isstdcnt/isutcnt do not match typecnt");
    if (h.leap) return fail(err, errlen, "leap-second zones (right/) are not supported");
    uint64_t need = block_len(&h, tsize);
    if (need > len - pos)
        return fail(err, errlen, "truncated: data block needs %llu bytes, %zu left",
                    (unsigned long long)need, len - pos);

    const unsigned char *times = buf + pos;
    const unsigned char *idx = times + (size_t)h.time * tsize;
    const unsigned char *types = idx + h.time;
    for (uint32_t i = 0; i < h.type; i++) {
        int32_t o = be32s(types + 6 * i);
        if (o < -TZ_MAX_OFF || o > TZ_MAX_OFF)
            return fail(err, errlen, "type %u: offset %ld out of range", i, (long)o);
        if (types[6 * i + 4] > 1 || types[6 * i + 5] >= h.chars)
            return fail(err, errlen, "type %u: bad isdst or abbreviation index", i);
    }
    for (uint32_t i = 0; i < h.time; i++) {
        if (idx[i] >= h.type)
            return fail(err, errlen, "transition %u: type %u out of range", i, (unsigned)idx[i]);
        if (i && be_time(times + i * tsize, tsize) <= be_time(times + (i - 1) * tsize, tsize))
            return fail(err, errlen, "transition %u: times not ascending", i);
    }

    struct tz_rule rule = {0};
    bool has_rule = false;
    if (ver != 0) {
        size_t p = pos + (size_t)need;
        const unsigned char *nl = p + 1 < len ? memchr(buf + p + 1, '\n', len - p - 1) : NULL;
        if (p >= len || buf[p] != '\n' || !nl) return fail(err, errlen, "missing TZ footer");
        size_t flen = (size_t)(nl - (buf + p + 1));
        if (flen) {
            if (!parse_rule((const char *)buf + p + 1, flen, &rule))
                return fail(err, errlen, "bad TZ footer \"%.*s\"", (int)(flen > 64 ? 64 : flen),
                            (const char *)buf + p + 1);
            has_rule = true;
        }
    }

    dcem_tz *tz = tz_alloc(h.time);
    if (!tz) return DCEM_ENOMEM;
    tz->off0 = be32s(types);
    tz->span = TZ_MAX_OFF + 1; /* footer offsets cannot exceed it either */
    int32_t last = tz->off0;
    for (uint32_t i = 0; i < h.time; i++) {
        /* Transitions that only change the abbreviation or isdst are dropped,
         * so ranges span all time with the same offset. */
        int32_t o = be32s(types + 6 * idx[i]);
        if (o == last) continue;
        tz->at[tz->n] = be_time(times + i * tsize, tsize);
        tz->off[tz->n++] = last = o;
    }
    tz->has_rule = has_rule;
    tz->rule = rule;
    tz->rule_from = h.time ? be_time(times + (h.time - 1) * tsize, tsize) : INT64_MIN;
    *out = tz;
    return 0;
}

dcem_tz *dcem_tz_new_fixed(int32_t offset_s)
{
    dcem_tz *tz = tz_alloc(0);
    if (!tz) return NULL;
    tz->off0 = offset_s;
    tz->span = (offset_s < 0 ? -(int64_t)offset_s : offset_s) + 1;
    return tz;
}

void dcem_tz_free(dcem_tz *tz)
{
    free(tz);
}
