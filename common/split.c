#include "split.h"

#include <math.h>
#include <string.h>

void dcem_splitter_init(dcem_splitter *s, const dcem_tz *tz, int interval_minutes)
{
    memset(s, 0, sizeof *s);
    dcem_zone_init(&s->zone, tz);
    s->len_ms = (int64_t)interval_minutes * 60000;
}

void dcem_meter_period_add_interval(dcem_meter_period *p, const dcem_interval *iv)
{
    p->ukwh += iv->ukwh;
    for (int k = 0; k < DCEM_SPAN_COUNT; k++) p->estimated_ukwh[k] += iv->estimated_ukwh[k];
    p->integrated_ukwh += iv->integrated_ukwh;
    p->read_intervals += iv->readings > 0;
    p->estimated_intervals += (iv->flags & DCEM_SEG_ESTIMATED) != 0;
    p->integrated_intervals += (iv->flags & DCEM_SEG_INTEGRATED) != 0;
    p->discarded_readings += iv->discarded;
    p->rollovers += iv->rollovers;
    p->resets += iv->resets;
}

void dcem_splitter_flush(dcem_splitter *s, dcem_interval_fn fn, void *ctx)
{
    if (s->open) fn(ctx, &s->cur);
    s->open = 0;
}

/* The local day, month and year of the open interval (asked only for a
 * segment that crosses the interval's boundary). */
static void bounds(dcem_splitter *s)
{
    if (s->have_bounds) return;
    dcem_zone *z = &s->zone;
    int64_t t = s->cur.start_ms, day = dcem_zone_day(z, t), y;
    int m, d;
    dcem_zone_date(z, t, &y, &m, &d);
    s->span_start[DCEM_SPAN_INTERVAL] = s->cur.start_ms;
    s->span_end[DCEM_SPAN_INTERVAL] = s->cur.end_ms;
    s->span_start[DCEM_SPAN_DAY] = dcem_zone_day_start(z, day);
    s->span_end[DCEM_SPAN_DAY] = dcem_zone_day_start(z, day + 1);
    s->span_start[DCEM_SPAN_MONTH] = dcem_zone_month_start(z, y * 12 + m - 1);
    s->span_end[DCEM_SPAN_MONTH] = dcem_zone_month_start(z, y * 12 + m);
    s->span_start[DCEM_SPAN_YEAR] = dcem_zone_month_start(z, y * 12);
    s->span_end[DCEM_SPAN_YEAR] = dcem_zone_month_start(z, y * 12 + 12);
    s->have_bounds = 1;
}

int64_t dcem_muldiv_portable(int64_t a, int64_t b, int64_t c)
{
    uint64_t ua = a < 0 ? 0 - (uint64_t)a : (uint64_t)a, ub = (uint64_t)b, uc = (uint64_t)c;
    /* hi:lo = ua * ub, from 32-bit halves */
    uint64_t a0 = ua & 0xffffffffu, a1 = ua >> 32, b0 = ub & 0xffffffffu, b1 = ub >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (p01 & 0xffffffffu) + (p10 & 0xffffffffu);
    uint64_t lo = (mid << 32) | (p00 & 0xffffffffu);
    uint64_t hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    /* hi:lo / uc, a bit at a time; hi < uc because ub <= uc, so the
     * remainder always fits (a carry out of it means it exceeds uc) */
    uint64_t q = 0, r = hi;
    for (int i = 63; i >= 0; i--) {
        int carry = (r >> 63) != 0;
        r = (r << 1) | ((lo >> i) & 1u);
        q <<= 1;
        if (carry || r >= uc) {
            r -= uc;
            q |= 1u;
        }
    }
    if (a >= 0) return (int64_t)q;
    return q > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)q;
}

int64_t dcem_muldiv(int64_t a, int64_t b, int64_t c)
{
#ifdef __SIZEOF_INT128__
    return (int64_t)((__int128)a * b / c);
#else
    return dcem_muldiv_portable(a, b, c);
#endif
}

void dcem_splitter_add(dcem_splitter *s, const dcem_segment *seg, dcem_interval_fn fn, void *ctx)
{
    int64_t dur = seg->t1_ms - seg->t0_ms;
    int reset = (seg->flags & DCEM_SEG_RESET) != 0;
    int integrated = (seg->flags & DCEM_SEG_INTEGRATED) != 0;
    int64_t total = llround(seg->kwh), left = total; /* whole micro-kWh */
    for (int64_t t = seg->t0_ms; t < seg->t1_ms;) {
        if (s->open && t >= s->cur.end_ms) dcem_splitter_flush(s, fn, ctx);
        if (!s->open) {
            memset(&s->cur, 0, sizeof s->cur);
            dcem_zone_interval(&s->zone, t, s->len_ms, &s->cur.start_ms, &s->cur.end_ms);
            s->open = 1;
            s->have_bounds = 0;
        }
        int64_t end = seg->t1_ms < s->cur.end_ms ? seg->t1_ms : s->cur.end_ms;
        /* in proportion to time, in integers; the last piece takes what is
         * left, so the pieces sum to the segment exactly */
        int64_t part = end == seg->t1_ms
                           ? left
                           : dcem_muldiv(total, end - t, dur);
        left -= part;
        dcem_interval *c = &s->cur;
        c->ukwh += part;
        if (reset) {
            for (int k = 0; k < DCEM_SPAN_COUNT; k++) c->estimated_ukwh[k] += part;
        } else if (seg->t0_ms < c->start_ms || seg->t1_ms > c->end_ms) {
            /* measured between its readings; where it lies, interpolated:
             * estimated for each span whose boundary it crosses */
            bounds(s);
            for (int k = 0; k < DCEM_SPAN_COUNT; k++)
                if (seg->t0_ms < s->span_start[k] || seg->t1_ms > s->span_end[k])
                    c->estimated_ukwh[k] += part;
        }
        if (integrated) c->integrated_ukwh += part;
        c->covered_ms += end - t;
        c->flags |= seg->flags;
        t = end;
        if (t == c->end_ms) dcem_splitter_flush(s, fn, ctx);
    }
}
