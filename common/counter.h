/* counter.h — one meter's readings in, energy segments out: the counter
 * rules of docs/figures.md. Cumulative kWh registers give the difference of
 * consecutive readings, with rollover at counter_modulo_kwh, a single
 * implausible reading discarded as a glitch, a confirmed drop or jump opening
 * a new counter epoch (its straddling segment estimated), and segments longer
 * than the gap limit marked estimated. A reading that comes a gap after the
 * previous one is held until the next: an earlier next reading shows its
 * time was a glitch. Segments longer than max_gap_ms are dropped. Meters without an energy register send
 * power (kW), integrated with the trapezoid rule. Readings must come in time
 * order per meter. Pure; state lives in caller storage. */
#ifndef DCEM_COUNTER_H
#define DCEM_COUNTER_H

#include <stdint.h>

typedef struct dcem_counter_cfg {
    double rated_kw;       /* > 0: the most a meter can plausibly record */
    double modulo_kwh;     /* counter wraps to 0 here; NAN or <= 0: never */
    double resolution_kwh; /* one counter step: slack on every bound */
    double margin;         /* plausible kWh <= rated_kw * hours * margin */
    int64_t gap_ms;        /* a segment longer than this is a gap */
    int64_t max_gap_ms;    /* a longer one is not estimated at all */
} dcem_counter_cfg;

/* Segment flags. A segment is estimated when GAP or RESET is set. */
enum {
    DCEM_SEG_GAP = 1u << 0,        /* readings further apart than gap_ms */
    DCEM_SEG_RESET = 1u << 1,      /* straddles a counter epoch change */
    DCEM_SEG_ROLLOVER = 1u << 2,   /* the counter wrapped at its modulo */
    DCEM_SEG_INTEGRATED = 1u << 3, /* from power samples, not a register */
    DCEM_SEG_RATIO = 1u << 4,      /* straddles a change of transformer ratio (with RESET) */
};
#define DCEM_SEG_ESTIMATED (DCEM_SEG_GAP | DCEM_SEG_RESET)

/* Energy kwh consumed during [t0_ms, t1_ms). */
typedef struct dcem_segment {
    int64_t t0_ms, t1_ms;
    double kwh;
    unsigned flags;
} dcem_segment;

/* Why a reading was rejected; stable, used as names in reports. */
typedef enum dcem_reject {
    DCEM_REJECT_NONE = 0,
    DCEM_REJECT_ORDER,      /* not later than the meter's previous reading */
    DCEM_REJECT_VALUE,      /* negative / non-finite, or kW above rated * margin */
    DCEM_REJECT_KIND,       /* no kwh for a counter meter, no kw for a power meter */
    DCEM_REJECT_COUNT
} dcem_reject;

const char *dcem_reject_name(int reason);

/* What one push produced: 0-4 segments, plus what happened to readings. */
typedef struct dcem_counter_out {
    dcem_segment seg[4];
    int n_seg;
    int reject;                 /* dcem_reject for this reading */
    int discarded;              /* held readings found to be glitches (0-2) */
    int64_t discarded_t_ms[2];  /* their times */
    int ratio_changed;          /* dcem_counter_push_ratio: a new ratio, a new epoch */
} dcem_counter_out;

typedef struct dcem_counter {
    dcem_counter_cfg cfg;
    int mode; /* 0 until the first reading, then counter or power */
    int have_anchor;
    int have_pending;   /* a reading with an implausible value, held */
    int have_late;      /* a reading far after the previous one, held */
    int64_t anchor_t, pending_t, late_t, last_t;
    double anchor_v, pending_v, late_v;
    double ratio;       /* ct * pt the held values are scaled by; 0 until set (1) */
    int ratio_break;    /* the ratio changed since the anchor: its next segment straddles it */
} dcem_counter;

void dcem_counter_init(dcem_counter *c, const dcem_counter_cfg *cfg);

/* Meters behind instrument transformers: the readings' counter values are
 * primary side, the register's value times ratio (ct * pt). Sets the ratio
 * of the readings pushed next (a ratio <= 0 or NaN counts as 1); use
 * dcem_counter_push_ratio, which undoes it when the reading is rejected. The counter's modulo and resolution are the
 * register's, so they scale with the ratio. A change is a counter event,
 * like a replacement: the values held (anchor, and readings held for
 * judgement) are rescaled to the new ratio — their register value at the
 * new scale — so the next difference is the register's own difference at
 * the new scale, never a jump; the segment that straddles the change is
 * flagged DCEM_SEG_RESET | DCEM_SEG_RATIO (estimated: part of it flowed at
 * the old ratio). Returns 1 when the ratio changed a running counter. */
int dcem_counter_set_ratio(dcem_counter *c, double ratio);

/* Feeds one reading taken at t_ms: a counter value kwh (has_kwh) and/or a
 * power kw (has_kw). The meter's first accepted reading fixes its mode:
 * counter when it has kwh, power otherwise. Results in *out. */
void dcem_counter_push(dcem_counter *c, int64_t t_ms, int has_kwh, double kwh, int has_kw,
                       double kw, dcem_counter_out *out);

/* dcem_counter_push of a reading taken at transformer ratio `ratio`: sets
 * it first (dcem_counter_set_ratio) and, when the reading is rejected,
 * leaves the counter as it was — a refused reading changes nothing, its
 * ratio included. out->ratio_changed is 1 when it opened a new epoch. */
void dcem_counter_push_ratio(dcem_counter *c, int64_t t_ms, int has_kwh, double kwh, int has_kw,
                             double kw, double ratio, dcem_counter_out *out);

/* End of data: a reading held for its value has no right-hand neighbour to
 * confirm it, so it is discarded; one held only for its time is used. */
void dcem_counter_finish(dcem_counter *c, dcem_counter_out *out);

#endif
