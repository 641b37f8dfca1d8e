#include "split.h"

#include <string.h>

void dcem_splitter_init(dcem_splitter *s, const dcem_tz *tz, int interval_minutes)
{
    memset(s, 0, sizeof *s);
    dcem_zone_init(&s->zone, tz);
    s->len_ms = (int64_t)interval_minutes * 60000;
}

void dcem_splitter_flush(dcem_splitter *s, dcem_interval_fn fn, void *ctx)
{
    if (s->open) fn(ctx, &s->cur);
    s->open = 0;
}

void dcem_splitter_add(dcem_splitter *s, const dcem_segment *seg, dcem_interval_fn fn, void *ctx)
{
    int64_t dur = seg->t1_ms - seg->t0_ms;
    int estimated = (seg->flags & DCEM_SEG_ESTIMATED) != 0;
    int integrated = (seg->flags & DCEM_SEG_INTEGRATED) != 0;
    double left = seg->kwh;
    for (int64_t t = seg->t0_ms; t < seg->t1_ms;) {
        if (s->open && t >= s->cur.end_ms) dcem_splitter_flush(s, fn, ctx);
        if (!s->open) {
            memset(&s->cur, 0, sizeof s->cur);
            dcem_zone_interval(&s->zone, t, s->len_ms, &s->cur.start_ms, &s->cur.end_ms);
            s->open = 1;
        }
        int64_t end = seg->t1_ms < s->cur.end_ms ? seg->t1_ms : s->cur.end_ms;
        /* the last piece takes what is left, so the pieces sum to the
         * segment's energy exactly: nothing lost or doubled to rounding */
        double part = end == seg->t1_ms ? left : seg->kwh * (double)(end - t) / (double)dur;
        left -= part;
        s->cur.kwh += part;
        if (estimated) s->cur.estimated_kwh += part;
        else s->cur.measured_ms += end - t;
        if (integrated) s->cur.integrated_kwh += part;
        s->cur.covered_ms += end - t;
        s->cur.flags |= seg->flags;
        t = end;
        if (t == s->cur.end_ms) dcem_splitter_flush(s, fn, ctx);
    }
}
