#include "counter.h"

#include <math.h>
#include <string.h>

enum { MODE_NONE, MODE_COUNTER, MODE_POWER };

const char *dcem_reject_name(int reason)
{
    switch (reason) {
    case DCEM_REJECT_NONE: return "none";
    case DCEM_REJECT_ORDER: return "out_of_order";
    case DCEM_REJECT_VALUE: return "out_of_range";
    case DCEM_REJECT_KIND: return "wrong_kind";
    }
    return "unknown";
}

void dcem_counter_init(dcem_counter *c, const dcem_counter_cfg *cfg)
{
    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
}

/* The ratio in force (0: never set, 1). */
static double scale(const dcem_counter *c)
{
    return c->ratio > 0 ? c->ratio : 1;
}

int dcem_counter_set_ratio(dcem_counter *c, double ratio)
{
    if (!(ratio > 0) || !isfinite(ratio)) ratio = 1;
    double old = scale(c);
    if (ratio == old) return 0;
    c->ratio = ratio;
    if (c->mode != MODE_COUNTER || !c->have_anchor) return 0;
    double k = ratio / old;
    c->anchor_v *= k;
    c->pending_v *= k;
    c->late_v *= k;
    c->ratio_break = 1;
    return 1;
}

static double hours(int64_t t0, int64_t t1)
{
    return (double)(t1 - t0) / 3.6e6;
}

enum { IMPLAUSIBLE = 0, PLAUSIBLE = 1, JITTER = 2 };

/* Is a counter step from (t0, v0) to (t1, v1) physically possible? Yes when
 * it is in [0, bound], or wraps at the modulo into that range. A step back by
 * at most one resolution step is register jitter: plausible, zero energy. */
static int plausible(const dcem_counter *c, int64_t t0, double v0, int64_t t1, double v1,
                     double *kwh, unsigned *flags)
{
    /* one step of slack, widened by a hair: 99.99 - 100 is -0.0100000000000051 */
    double step = c->cfg.resolution_kwh * scale(c) * (1 + 1e-6);
    double bound = c->cfg.rated_kw * hours(t0, t1) * c->cfg.margin + step;
    double d = v1 - v0;
    *flags = 0;
    if (d >= 0 && d <= bound) return *kwh = d, PLAUSIBLE;
    if (d < 0 && d >= -step) return *kwh = 0, JITTER;
    if (d < 0 && c->cfg.modulo_kwh > 0) {
        double w = d + c->cfg.modulo_kwh * scale(c);
        if (w >= 0 && w <= bound) return *flags = DCEM_SEG_ROLLOVER, *kwh = w, PLAUSIBLE;
    }
    return IMPLAUSIBLE;
}

static void emit(const dcem_counter *c, dcem_counter_out *out, int64_t t0, int64_t t1, double kwh,
                 unsigned flags)
{
    /* too long to spread with any meaning: the hole shows in completeness */
    if (t1 - t0 > c->cfg.max_gap_ms) return;
    if (t1 - t0 > c->cfg.gap_ms) flags |= DCEM_SEG_GAP;
    if (c->ratio_break && t0 == c->anchor_t) flags |= DCEM_SEG_RESET | DCEM_SEG_RATIO;
    out->seg[out->n_seg++] = (dcem_segment){t0, t1, kwh, flags};
}

/* Moves the anchor to (t, v), except that jitter below the anchor keeps the
 * higher value so that the next difference starts from it. */
static void advance(dcem_counter *c, int64_t t, double v, int how)
{
    if (how != JITTER) c->anchor_v = v;
    c->anchor_t = t;
    c->ratio_break = 0;
}

static void push_power(dcem_counter *c, int64_t t, double kw, dcem_counter_out *out)
{
    if (c->have_anchor)
        emit(c, out, c->anchor_t, t, (c->anchor_v + kw) / 2 * hours(c->anchor_t, t),
             DCEM_SEG_INTEGRATED);
    c->have_anchor = 1;
    c->anchor_t = t;
    c->anchor_v = kw;
}

static void push_counter(dcem_counter *c, int64_t t, double v, dcem_counter_out *out)
{
    double kwh;
    unsigned fl;
    if (!c->have_anchor) {
        c->have_anchor = 1;
        c->anchor_t = t;
        c->anchor_v = v;
        return;
    }
    int how;
    if (!c->have_pending) {
        if ((how = plausible(c, c->anchor_t, c->anchor_v, t, v, &kwh, &fl))) {
            emit(c, out, c->anchor_t, t, kwh, fl);
            advance(c, t, v, how);
        } else { /* hold it: the next reading tells a glitch from a reset */
            c->have_pending = 1;
            c->pending_t = t;
            c->pending_v = v;
        }
        return;
    }
    if ((how = plausible(c, c->anchor_t, c->anchor_v, t, v, &kwh, &fl))) {
        /* the held reading disagrees with both neighbours: a glitch */
        out->discarded_t_ms[out->discarded++] = c->pending_t;
        c->have_pending = 0;
        emit(c, out, c->anchor_t, t, kwh, fl);
        advance(c, t, v, how);
    } else if (plausible(c, c->pending_t, c->pending_v, t, v, &kwh, &fl)) {
        /* the next reading confirms the drop or jump: a new counter epoch.
         * Energy across the change is unknown; estimate it at the rate the
         * new epoch shows, so it is never negative and never the jump. */
        double rate = kwh / (double)(t - c->pending_t);
        emit(c, out, c->anchor_t, c->pending_t, rate * (double)(c->pending_t - c->anchor_t),
             DCEM_SEG_RESET);
        emit(c, out, c->pending_t, t, kwh, fl);
        c->have_pending = 0;
        c->anchor_t = t;
        c->anchor_v = v;
        c->ratio_break = 0;
    } else { /* implausible against both: the held one was a glitch, hold this */
        out->discarded_t_ms[out->discarded++] = c->pending_t;
        c->pending_t = t;
        c->pending_v = v;
    }
}

/* Uses a reading whose time and value passed every check. */
static void take(dcem_counter *c, int64_t t, double v, dcem_counter_out *out)
{
    c->last_t = t;
    if (c->mode == MODE_COUNTER) push_counter(c, t, v, out);
    else push_power(c, t, v, out);
}

void dcem_counter_push(dcem_counter *c, int64_t t_ms, int has_kwh, double kwh, int has_kw,
                       double kw, dcem_counter_out *out)
{
    memset(out, 0, sizeof *out);
    if (c->mode == MODE_NONE) {
        if (has_kwh) c->mode = MODE_COUNTER;
        else if (has_kw) c->mode = MODE_POWER;
        else {
            out->reject = DCEM_REJECT_KIND;
            return;
        }
    } else if (t_ms <= c->last_t) {
        out->reject = DCEM_REJECT_ORDER;
        return;
    }
    double v;
    if (c->mode == MODE_COUNTER) {
        if (!has_kwh) {
            out->reject = DCEM_REJECT_KIND;
            return;
        }
        if (!(kwh >= 0) || !isfinite(kwh) ||
            (c->cfg.modulo_kwh > 0 && kwh >= c->cfg.modulo_kwh * scale(c))) {
            out->reject = DCEM_REJECT_VALUE;
            return;
        }
        v = kwh;
    } else {
        if (!has_kw) {
            out->reject = DCEM_REJECT_KIND;
            return;
        }
        if (!(kw >= 0 && kw <= c->cfg.rated_kw * c->cfg.margin)) { /* NaN fails too */
            out->reject = DCEM_REJECT_VALUE;
            return;
        }
        v = kw;
    }
    if (c->have_late) {
        if (t_ms == c->late_t) {
            out->reject = DCEM_REJECT_ORDER;
            return;
        }
        c->have_late = 0;
        if (t_ms < c->late_t) /* came back in time: the late one's clock was wrong */
            out->discarded_t_ms[out->discarded++] = c->late_t;
        else
            take(c, c->late_t, c->late_v, out);
    }
    if (c->have_anchor && t_ms - c->last_t > c->cfg.gap_ms) {
        c->have_late = 1;
        c->late_t = t_ms;
        c->late_v = v;
        return;
    }
    take(c, t_ms, v, out);
}

void dcem_counter_finish(dcem_counter *c, dcem_counter_out *out)
{
    memset(out, 0, sizeof *out);
    if (c->have_late) { /* nothing contradicts its time */
        c->have_late = 0;
        take(c, c->late_t, c->late_v, out);
    }
    if (c->have_pending) {
        out->discarded_t_ms[out->discarded++] = c->pending_t;
        c->have_pending = 0;
    }
}

void dcem_counter_push_ratio(dcem_counter *c, int64_t t_ms, int has_kwh, double kwh, int has_kw,
                             double kw, double ratio, dcem_counter_out *out)
{
    dcem_counter before = *c;
    int changed = dcem_counter_set_ratio(c, ratio);
    dcem_counter_push(c, t_ms, has_kwh, kwh, has_kw, kw, out);
    if (out->reject) *c = before;
    else out->ratio_changed = changed;
}
