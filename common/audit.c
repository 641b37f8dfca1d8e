#include "audit.h"
#include "calendar.h"
#include "meter.h"
#include "errors.h"
#include "parse.h"
#include "period.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HASH_SIZE 4096 /* power of two, > 2 * DCEM_SITE_MAX_METERS */
#define MAX_UNKNOWN 64

typedef dcem_meter_period day_sum; /* a meter's sums over one local day */

typedef struct meter_state {
    struct dcem_audit *audit;
    dcem_counter_cfg cfg; /* the ledger's and policy's rules */
    dcem_meter_state meter;
    int64_t first_day; /* local day number of days[0] */
    day_sum *days;
    size_t n_days, cap_days;
} meter_state;

struct dcem_audit {
    const dcem_site *site;
    const dcem_policy *policy;
    dcem_zone zone;
    int ncols;
    int oom;
    meter_state *meters;
    int16_t hash[HASH_SIZE]; /* meter index + 1; 0 = empty */
    dcem_audit_stats stats;
    dcem_audit_interval_fn iv_fn;
    void *iv_ctx;
    struct {
        char id[DCEM_ID_MAX];
        long long rows;
    } unknown[MAX_UNKNOWN];
    size_t n_unknown;
};

static const struct {
    const char *name, *text;
} reasons[DCEM_ROW_REASON_COUNT] = {
    [DCEM_ROW_OK] = {"ok", "accepted"},
    [DCEM_ROW_MALFORMED] = {"malformed", "wrong number of fields or a field too long"},
    [DCEM_ROW_BAD_TIME] = {"bad_time", "time is not RFC 3339"},
    [DCEM_ROW_BAD_KWH] = {"bad_kwh", "kwh is not a finite decimal number"},
    [DCEM_ROW_BAD_KW] = {"bad_kw", "kw is not a finite decimal number"},
    [DCEM_ROW_NO_VALUE] = {"no_value", "neither kwh nor kw given"},
    [DCEM_ROW_UNKNOWN_METER] = {"unknown_meter", "meter is not in the site ledger"},
    [DCEM_ROW_OUT_OF_ORDER] = {"out_of_order", "not later than the meter's previous reading"},
    [DCEM_ROW_OUT_OF_RANGE] = {"out_of_range", "value negative, beyond the counter or rated power"},
    [DCEM_ROW_WRONG_KIND] = {"wrong_kind", "kw-only row for a counter meter, or kwh for a power meter"},
    [DCEM_ROW_BAD_RATIO] = {"bad_ratio", "ratio is not a number above 0 and at most 1e10"},
};

const char *dcem_row_reason_name(int r)
{
    return r >= 0 && r < DCEM_ROW_REASON_COUNT ? reasons[r].name : "unknown";
}

const char *dcem_row_reason_text(int r)
{
    return r >= 0 && r < DCEM_ROW_REASON_COUNT ? reasons[r].text : "unknown";
}

static uint32_t hash_id(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int lookup(const dcem_audit *a, const char *id, size_t n)
{
    for (uint32_t h = hash_id(id, n) & (HASH_SIZE - 1);; h = (h + 1) & (HASH_SIZE - 1)) {
        int k = a->hash[h];
        if (!k) return -1;
        const char *mid = a->site->meters[k - 1].id;
        if (!strncmp(mid, id, n) && mid[n] == '\0') return k - 1;
    }
}

dcem_audit *dcem_audit_new(const dcem_site *site, const dcem_policy *policy, const dcem_tz *tz)
{
    dcem_audit *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->meters = calloc(site->n_meters ? site->n_meters : 1, sizeof *a->meters);
    if (!a->meters) {
        free(a);
        return NULL;
    }
    a->site = site;
    a->policy = policy;
    dcem_zone_init(&a->zone, tz);
    a->stats.first_ms = INT64_MAX;
    a->stats.last_ms = INT64_MIN;
    for (size_t i = 0; i < site->n_meters; i++) {
        const dcem_meter *m = &site->meters[i];
        meter_state *ms = &a->meters[i];
        ms->audit = a;
        dcem_policy_counter_cfg(policy, site, i, &ms->cfg);
        dcem_meter_init(&ms->meter, tz, (int)site->interval_minutes);
        uint32_t h = hash_id(m->id, strlen(m->id)) & (HASH_SIZE - 1);
        while (a->hash[h]) h = (h + 1) & (HASH_SIZE - 1);
        a->hash[h] = (int16_t)(i + 1);
    }
    return a;
}

void dcem_audit_free(dcem_audit *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->site->n_meters; i++) free(a->meters[i].days);
    free(a->meters);
    free(a);
}

/* The day bucket of local day `day`, growing the meter's array as needed.
 * Days mostly come in order, so the array grows at its end; a discarded
 * reading can name a later day before the intervals of an earlier one
 * arrive, so it can also grow at the front. */
static day_sum *day_at(meter_state *m, int64_t day)
{
    if (!m->n_days) m->first_day = day;
    size_t front = day < m->first_day ? (size_t)(m->first_day - day) : 0;
    size_t need = front + (day < m->first_day ? m->n_days : (size_t)(day - m->first_day) + 1);
    if (need > m->n_days) {
        if (need > m->cap_days) {
            size_t cap = m->cap_days ? m->cap_days : 64;
            while (cap < need) cap *= 2;
            day_sum *d = realloc(m->days, cap * sizeof *d);
            if (!d) return m->audit->oom = 1, NULL;
            m->days = d;
            m->cap_days = cap;
        }
        if (front) {
            memmove(m->days + front, m->days, m->n_days * sizeof *m->days);
            memset(m->days, 0, front * sizeof *m->days);
            m->first_day = day;
        }
        memset(m->days + front + m->n_days, 0, (need - front - m->n_days) * sizeof *m->days);
        m->n_days = need;
    }
    return &m->days[day - m->first_day];
}

static day_sum *day_of(meter_state *m, int64_t t_ms)
{
    return day_at(m, dcem_zone_day(&m->audit->zone, t_ms));
}

void dcem_audit_on_interval(dcem_audit *a, dcem_audit_interval_fn fn, void *ctx)
{
    a->iv_fn = fn;
    a->iv_ctx = ctx;
}

static void on_interval(void *ctx, const dcem_interval *iv)
{
    meter_state *m = ctx;
    if (m->audit->iv_fn) m->audit->iv_fn(m->audit->iv_ctx, (size_t)(m - m->audit->meters), iv);
    day_sum *d = day_of(m, iv->start_ms);
    if (d) dcem_meter_period_add_interval(d, iv);
}

/* Splits line into at most max fields at commas; returns the count, or
 * max + 1 when there are more. */
static int split_fields(const char *line, size_t len, const char **f, size_t *fl, int max)
{
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || line[i] == ',') {
            if (n == max) return max + 1;
            f[n] = line + start;
            fl[n++] = i - start;
            start = i + 1;
        }
    }
    return n;
}

int dcem_audit_header(dcem_audit *a, const char *line, size_t len)
{
    if (len && line[len - 1] == '\r') len--;
    static const char h3[] = "time,meter,kwh", h4[] = "time,meter,kwh,kw",
                      h5[] = "time,meter,kwh,kw,ratio";
    if (len == sizeof h3 - 1 && !memcmp(line, h3, len)) a->ncols = 3;
    else if (len == sizeof h4 - 1 && !memcmp(line, h4, len)) a->ncols = 4;
    else if (len == sizeof h5 - 1 && !memcmp(line, h5, len)) a->ncols = 5;
    else return DCEM_EINVAL;
    return 0;
}

static int reject(dcem_audit *a, int reason)
{
    a->stats.rejected++;
    a->stats.by_reason[reason]++;
    return reason;
}

static void note_unknown(dcem_audit *a, const char *id, size_t n)
{
    /* Only an id that fits and has no NUL inside is kept or matched (the
     * others are counted in stats anyway): strncmp stops at a NUL, so
     * "m\0\0...", 80 bytes long, matched a kept "m" and the check of its
     * id[n] then read past the 64-byte id (found by fuzz_audit). */
    if (n >= DCEM_ID_MAX || memchr(id, '\0', n)) return;
    for (size_t i = 0; i < a->n_unknown; i++)
        if (!strncmp(a->unknown[i].id, id, n) && a->unknown[i].id[n] == '\0') {
            a->unknown[i].rows++;
            return;
        }
    if (a->n_unknown == MAX_UNKNOWN) return; /* counted in stats anyway */
    memcpy(a->unknown[a->n_unknown].id, id, n);
    a->unknown[a->n_unknown].id[n] = '\0';
    a->unknown[a->n_unknown++].rows = 1;
}

int dcem_audit_row(dcem_audit *a, const char *line, size_t len)
{
    const char *f[5];
    size_t fl[5];
    if (len && line[len - 1] == '\r') len--;
    a->stats.rows++;
    int ncols = a->ncols ? a->ncols : 3;
    if (split_fields(line, len, f, fl, 5) != ncols) return reject(a, DCEM_ROW_MALFORMED);
    int64_t t;
    if (dcem_parse_time(f[0], fl[0], &t)) return reject(a, DCEM_ROW_BAD_TIME);
    int has_kwh = fl[2] > 0, has_kw = ncols == 4 && fl[3] > 0;
    double kwh = 0, kw = 0;
    if (has_kwh && dcem_parse_double(f[2], fl[2], &kwh)) return reject(a, DCEM_ROW_BAD_KWH);
    if (has_kw && dcem_parse_double(f[3], fl[3], &kw)) return reject(a, DCEM_ROW_BAD_KW);
    if (!has_kwh && !has_kw) return reject(a, DCEM_ROW_NO_VALUE);
    double ratio = 1; /* an empty ratio: none */
    if (ncols == 5 && fl[4] &&
        (dcem_parse_double(f[4], fl[4], &ratio) || !(ratio > 0 && ratio <= DCEM_AUDIT_RATIO_MAX)))
        return reject(a, DCEM_ROW_BAD_RATIO);
    int idx = lookup(a, f[1], fl[1]);
    if (idx < 0) {
        note_unknown(a, f[1], fl[1]);
        return reject(a, DCEM_ROW_UNKNOWN_METER);
    }
    meter_state *m = &a->meters[idx];
    dcem_counter_out out;
    dcem_meter_push(&m->meter, &m->cfg, t, has_kwh, kwh, has_kw, kw, ratio, on_interval, m, &out);
    switch (out.reject) {
    case DCEM_REJECT_ORDER: return reject(a, DCEM_ROW_OUT_OF_ORDER);
    case DCEM_REJECT_VALUE: return reject(a, DCEM_ROW_OUT_OF_RANGE);
    case DCEM_REJECT_KIND: return reject(a, DCEM_ROW_WRONG_KIND);
    default: break;
    }
    a->stats.accepted++;
    a->stats.discarded += out.discarded;
    if (t < a->stats.first_ms) a->stats.first_ms = t;
    if (t > a->stats.last_ms) a->stats.last_ms = t;
    return a->oom ? DCEM_EFULL : DCEM_ROW_OK;
}

int dcem_audit_finish(dcem_audit *a)
{
    for (size_t i = 0; i < a->site->n_meters; i++) {
        meter_state *m = &a->meters[i];
        a->stats.discarded += dcem_meter_finish(&m->meter, &m->cfg, on_interval, m);
    }
    return a->oom ? DCEM_EFULL : 0;
}

const dcem_audit_stats *dcem_audit_stats_get(const dcem_audit *a)
{
    return &a->stats;
}

size_t dcem_audit_unknown_count(const dcem_audit *a)
{
    return a->n_unknown;
}

const char *dcem_audit_unknown(const dcem_audit *a, size_t i, long long *rows)
{
    if (i >= a->n_unknown) return NULL;
    if (rows) *rows = a->unknown[i].rows;
    return a->unknown[i].id;
}

/* One meter's sums over local days [d0, d1). */
static void meter_days(const meter_state *m, int64_t d0, int64_t d1, dcem_meter_period *p)
{
    memset(p, 0, sizeof *p);
    for (int64_t d = d0; d < d1; d++) {
        if (d < m->first_day || d - m->first_day >= (int64_t)m->n_days) continue;
        dcem_meter_period_add(p, &m->days[d - m->first_day]);
    }
}

static void audit_days(void *ctx, size_t meter, int64_t d0, int64_t d1, dcem_meter_period *out)
{
    const dcem_audit *a = ctx;
    meter_days(&a->meters[meter], d0, d1, out);
}

void dcem_audit_period(dcem_audit *a, int kind, long long first_month, int n_months,
                       int64_t as_of_ms, dcem_figures *f, dcem_verdicts *v,
                       dcem_meter_period *meters)
{
    dcem_period_figures(a->site, a->policy, &a->zone, audit_days, a, kind, first_month, n_months,
                        as_of_ms, f, v, meters);
}
