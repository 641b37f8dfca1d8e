#include "meter.h"
#include "errors.h"

#include <math.h>
#include <string.h>

void dcem_meter_init(dcem_meter_state *m, const dcem_tz *tz, int interval_minutes)
{
    static const dcem_counter_cfg none;
    memset(m, 0, sizeof *m);
    dcem_counter_init(&m->counter, &none);
    dcem_splitter_init(&m->split, tz, interval_minutes);
}

typedef struct out_ctx {
    dcem_meter_state *m;
    dcem_interval_fn fn;
    void *ctx;
} out_ctx;

/* Hands over the waiting events of intervals that start before `before`,
 * which no energy reached: intervals of their own. */
static void settle_before(out_ctx *o, int64_t before)
{
    dcem_meter_state *m = o->m;
    int k = 0;
    while (k < m->n_pending && m->pending[k].start_ms < before) {
        const dcem_meter_pending *p = &m->pending[k++];
        dcem_interval iv = {.start_ms = p->start_ms, .end_ms = p->end_ms, .readings = p->readings,
                            .discarded = p->discarded, .rollovers = p->rollovers,
                            .resets = p->resets};
        o->fn(o->ctx, &iv);
    }
    memmove(m->pending, m->pending + k, (size_t)(m->n_pending - k) * sizeof *m->pending);
    m->n_pending -= k;
}

static void on_interval(void *arg, const dcem_interval *iv)
{
    out_ctx *o = arg;
    dcem_meter_state *m = o->m;
    settle_before(o, iv->start_ms);
    dcem_interval x = *iv;
    if (m->n_pending && m->pending[0].start_ms == iv->start_ms) {
        const dcem_meter_pending *p = &m->pending[0];
        x.readings += p->readings;
        x.discarded += p->discarded;
        x.rollovers += p->rollovers;
        x.resets += p->resets;
        memmove(m->pending, m->pending + 1, (size_t)(m->n_pending - 1) * sizeof *m->pending);
        m->n_pending--;
    }
    o->fn(o->ctx, &x);
}

/* The waiting entry of the interval holding t (kept in time order). Every
 * event is at or after the interval the splitter has open, so at most five
 * intervals wait (the open one, a reading held for its value, one held for
 * its time, the newest reading); a full list settles its oldest entry. */
/* An interval's count, one more; it stops at INT32_MAX (a restored state
 * may hold any count dcem_meter_decode accepts). */
static void bump(int32_t *n)
{
    if (*n < INT32_MAX) ++*n;
}

static dcem_meter_pending *pending_at(out_ctx *o, int64_t t)
{
    dcem_meter_state *m = o->m;
    int64_t s, e;
    dcem_zone_interval(&m->split.zone, t, m->split.len_ms, &s, &e);
    int k = 0;
    while (k < m->n_pending && m->pending[k].start_ms < s) k++;
    if (k < m->n_pending && m->pending[k].start_ms == s) return &m->pending[k];
    if (m->n_pending == DCEM_METER_PENDING) {
        settle_before(o, m->pending[0].start_ms + 1);
        if (k) k--;
    }
    memmove(m->pending + k + 1, m->pending + k, (size_t)(m->n_pending - k) * sizeof *m->pending);
    m->n_pending++;
    m->pending[k] = (dcem_meter_pending){.start_ms = s, .end_ms = e};
    return &m->pending[k];
}

/* What the counter made of a reading (or of the end of data): events to
 * their intervals, segments to the splitter. */
static void apply(out_ctx *o, const dcem_counter_out *out)
{
    for (int i = 0; i < out->discarded; i++) {
        dcem_meter_pending *p = pending_at(o, out->discarded_t_ms[i]);
        bump(&p->discarded);
        if (p->readings > 0) p->readings--; /* it was counted when it came */
    }
    for (int i = 0; i < out->n_seg; i++) {
        const dcem_segment *g = &out->seg[i];
        if (g->flags & DCEM_SEG_ROLLOVER) bump(&pending_at(o, g->t1_ms - 1)->rollovers);
        if (g->flags & DCEM_SEG_RESET) bump(&pending_at(o, g->t1_ms - 1)->resets);
        dcem_splitter_add(&o->m->split, g, on_interval, o);
    }
}

/* The counter works in micro-kWh: rules scaled, counter values rounded to
 * whole micro-kWh as they come (the one rounding of a counter's energy), so
 * that differences are whole and telescope: the energy between two readings
 * is exactly the difference of their rounded values, however it is cut. */
static void set_cfg(dcem_meter_state *m, const dcem_counter_cfg *cfg)
{
    dcem_counter_cfg *c = &m->counter.cfg;
    *c = *cfg;
    c->rated_kw *= 1e6;
    c->modulo_kwh *= 1e6;
    c->resolution_kwh *= 1e6;
}

int dcem_meter_push(dcem_meter_state *m, const dcem_counter_cfg *cfg, int64_t t_ms, int has_kwh,
                    double kwh, int has_kw, double kw, double ratio, dcem_interval_fn fn,
                    void *ctx, dcem_counter_out *out)
{
    dcem_counter_out local;
    if (!out) out = &local;
    set_cfg(m, cfg);
    if (has_kwh && !(fabs(kwh) <= DCEM_METER_MAX_VALUE)) { /* NaN fails too */
        memset(out, 0, sizeof *out);
        return out->reject = DCEM_REJECT_VALUE;
    }
    double ukwh = has_kwh ? (double)llround(kwh * 1e6) : 0;
    dcem_counter_push_ratio(&m->counter, t_ms, has_kwh, ukwh, has_kw, kw * 1e6, ratio, out);
    if (out->reject) return out->reject;
    out_ctx o = {m, fn, ctx};
    bump(&pending_at(&o, t_ms)->readings);
    apply(&o, out);
    return DCEM_REJECT_NONE;
}

int dcem_meter_finish(dcem_meter_state *m, const dcem_counter_cfg *cfg, dcem_interval_fn fn, void *ctx)
{
    dcem_counter_out out;
    out_ctx o = {m, fn, ctx};
    set_cfg(m, cfg);
    dcem_counter_finish(&m->counter, &out);
    apply(&o, &out);
    dcem_splitter_flush(&m->split, on_interval, &o);
    settle_before(&o, INT64_MAX);
    return out.discarded;
}

int64_t dcem_meter_last_ms(const dcem_meter_state *m)
{
    const dcem_counter *c = &m->counter;
    if (!c->mode) return INT64_MIN;
    int64_t t = c->last_t;
    if (c->have_late && c->late_t > t) t = c->late_t;
    if (c->have_pending && c->pending_t > t) t = c->pending_t;
    return t;
}

int64_t dcem_meter_frontier_ms(const dcem_meter_state *m)
{
    const dcem_counter *c = &m->counter;
    if (!c->mode || !c->have_anchor) return INT64_MIN;
    dcem_zone z = m->split.zone;
    int64_t s, e;
    dcem_zone_interval(&z, c->anchor_t, m->split.len_ms, &s, &e);
    if (m->split.open && m->split.cur.start_ms < s) s = m->split.cur.start_ms;
    if (m->n_pending && m->pending[0].start_ms < s) s = m->pending[0].start_ms;
    return s;
}

/* ---- the state as bytes: version 1, little-endian, fixed layout ---- */

enum { STATE_VERSION = 1 };

typedef struct wbuf {
    unsigned char *p;
    size_t len, off;
    int bad;
} wbuf;

static void put_u64(wbuf *w, uint64_t v)
{
    if (w->off + 8 > w->len) {
        w->bad = 1;
        return;
    }
    for (int i = 0; i < 8; i++) w->p[w->off++] = (unsigned char)(v >> (8 * i));
}

static void put_i64(wbuf *w, int64_t v)
{
    put_u64(w, (uint64_t)v);
}

static void put_f64(wbuf *w, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    put_u64(w, v);
}

static uint64_t get_u64(wbuf *w)
{
    uint64_t v = 0;
    if (w->off + 8 > w->len) {
        w->bad = 1;
        return 0;
    }
    for (int i = 0; i < 8; i++) v |= (uint64_t)w->p[w->off++] << (8 * i);
    return v;
}

static int64_t get_i64(wbuf *w)
{
    return (int64_t)get_u64(w);
}

static double get_f64(wbuf *w)
{
    uint64_t v = get_u64(w);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

/* One pass for both directions: enc 1 writes *fields, enc 0 reads them. */
#define F_I64(x) (enc ? put_i64(w, (int64_t)(x)) : (void)((x) = (__typeof__(x))get_i64(w)))
#define F_F64(x) (enc ? put_f64(w, (x)) : (void)((x) = get_f64(w)))

static void fields(wbuf *w, dcem_meter_state *m, int enc)
{
    dcem_counter *c = &m->counter;
    int64_t bits = (int64_t)c->mode | (int64_t)c->have_anchor << 8 | (int64_t)c->have_pending << 9 |
                   (int64_t)c->have_late << 10 | (int64_t)c->ratio_break << 11 |
                   (int64_t)m->split.open << 12 | (int64_t)m->n_pending << 16;
    F_I64(bits);
    F_I64(c->anchor_t);
    F_I64(c->pending_t);
    F_I64(c->late_t);
    F_I64(c->last_t);
    F_F64(c->anchor_v);
    F_F64(c->pending_v);
    F_F64(c->late_v);
    F_F64(c->ratio);
    dcem_interval *iv = &m->split.cur;
    F_I64(iv->start_ms);
    F_I64(iv->end_ms);
    F_I64(iv->ukwh);
    for (int k = 0; k < DCEM_SPAN_COUNT; k++) F_I64(iv->estimated_ukwh[k]);
    F_I64(iv->integrated_ukwh);
    F_I64(iv->covered_ms);
    int64_t flags = iv->flags;
    F_I64(flags);
    if (!enc) {
        if (flags < 0 || flags > 0xff) w->bad = 1; /* DCEM_SEG_* */
        iv->flags = (unsigned)flags;
        c->mode = (int)(bits & 0xff);
        c->have_anchor = (int)(bits >> 8 & 1);
        c->have_pending = (int)(bits >> 9 & 1);
        c->have_late = (int)(bits >> 10 & 1);
        c->ratio_break = (int)(bits >> 11 & 1);
        m->split.open = (int)(bits >> 12 & 1);
        m->n_pending = (int)(bits >> 16 & 0xff);
        if (c->mode > 2 || (bits & ~(int64_t)0xff1fff) || m->n_pending > DCEM_METER_PENDING) {
            w->bad = 1;
            return;
        }
    }
    for (int k = 0; k < m->n_pending; k++) {
        dcem_meter_pending *p = &m->pending[k];
        int64_t n[4] = {p->readings, p->discarded, p->rollovers, p->resets};
        F_I64(p->start_ms);
        F_I64(p->end_ms);
        for (int j = 0; j < 4; j++) F_I64(n[j]);
        if (!enc) {
            for (int j = 0; j < 4; j++)
                if (n[j] < INT32_MIN || n[j] > INT32_MAX) w->bad = 1;
            p->readings = (int32_t)n[0];
            p->discarded = (int32_t)n[1];
            p->rollovers = (int32_t)n[2];
            p->resets = (int32_t)n[3];
        }
    }
}

/* What a meter's own pushes can make: an open interval and waiting ones
 * that are intervals, in time order, with counts that are not negative. */
#define T_LIMIT INT64_C(1000000000000000) /* |t| in ms: 31,700 years; no overflow below */

static int in_time(int64_t t)
{
    return t >= -T_LIMIT && t <= T_LIMIT;
}

static int consistent(const dcem_meter_state *m)
{
    const dcem_counter *c = &m->counter;
    if (!in_time(c->anchor_t) || !in_time(c->pending_t) || !in_time(c->late_t) ||
        !in_time(c->last_t) || !in_time(m->split.cur.start_ms) || !in_time(m->split.cur.end_ms))
        return 0;
    if (!c->mode && (c->have_anchor || c->have_pending || c->have_late)) return 0;
    if ((c->have_pending || c->have_late) && !c->have_anchor) return 0;
    /* readings are taken in time order: anchor <= held value <= last < held time */
    if (c->have_anchor && c->anchor_t > c->last_t) return 0;
    if (c->have_pending && !(c->anchor_t < c->pending_t && c->pending_t <= c->last_t)) return 0;
    if (c->have_late && !(c->late_t > c->last_t)) return 0;
    const dcem_interval *iv = &m->split.cur;
    int64_t prev = INT64_MIN;
    if (m->split.open) {
        /* the last segment ended inside it (or, dropped as too long a gap
         * of power, after it): the anchor is past its start */
        int64_t upto = c->anchor_t < iv->end_ms ? c->anchor_t : iv->end_ms;
        if (!(iv->start_ms < iv->end_ms) || iv->end_ms - iv->start_ms > 3600000 ||
            !c->have_anchor || c->anchor_t <= iv->start_ms || iv->covered_ms < 0 ||
            iv->covered_ms > upto - iv->start_ms)
            return 0;
        prev = iv->start_ms - 1;
    }
    for (int k = 0; k < m->n_pending; k++) {
        const dcem_meter_pending *p = &m->pending[k];
        if (!in_time(p->start_ms) || !in_time(p->end_ms) || !(p->start_ms > prev && p->start_ms < p->end_ms) ||
            p->end_ms - p->start_ms > 3600000 || p->readings < 0 || p->discarded < 0 ||
            p->rollovers < 0 || p->resets < 0)
            return 0;
        prev = p->start_ms;
    }
    return 1;
}

size_t dcem_meter_encode(const dcem_meter_state *m, unsigned char *buf, size_t len)
{
    wbuf w = {buf, len, 0, 0};
    if (len < 1) return 0;
    buf[w.off++] = STATE_VERSION;
    fields(&w, (dcem_meter_state *)m, 1);
    return w.bad ? 0 : w.off;
}

int dcem_meter_decode(dcem_meter_state *m, const dcem_tz *tz, int interval_minutes, const void *buf,
                      size_t len)
{
    dcem_meter_state x;
    dcem_meter_init(&x, tz, interval_minutes);
    wbuf w = {(unsigned char *)buf, len, 0, 0};
    if (len < 1 || w.p[w.off++] != STATE_VERSION) return DCEM_EINVAL;
    fields(&w, &x, 0);
    if (w.bad || w.off != len || !consistent(&x)) return DCEM_EINVAL;
    *m = x;
    return 0;
}
