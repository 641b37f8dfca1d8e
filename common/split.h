/* split.h — energy segments to interval energy, in whole micro-kWh. A
 * segment's energy (in micro-kWh: common/meter.h runs the counter in them;
 * a fraction, from power or a reset's estimate, is rounded here) is
 * attributed to the intervals it overlaps in proportion to time, by integer
 * arithmetic, the last piece taking what is left, so the pieces sum to the
 * segment exactly. Each interval is handed to a callback
 * as soon as a segment reaches its end. Pure; state lives in caller storage.
 *
 * Estimated energy depends on the period it is seen from (docs/figures.md,
 * "Estimated energy"): energy between two good readings is measured; only
 * its split across a boundary is estimated. A piece is estimated for a
 * span (the interval itself, its local day, month or year) when its
 * segment crosses a boundary of that span, and for every span when the
 * segment straddles a counter reset (DCEM_SEG_RESET). */
#ifndef DCEM_SPLIT_H
#define DCEM_SPLIT_H

#include "calendar.h"
#include "counter.h"
#include "figures.h"

#include <stdint.h>

typedef struct dcem_interval {
    int64_t start_ms, end_ms;     /* local-aligned, see dcem_zone_interval */
    int64_t ukwh;                 /* all energy attributed to the interval */
    int64_t estimated_ukwh[DCEM_SPAN_COUNT]; /* of it, estimated as seen from each span */
    int64_t integrated_ukwh;      /* of it, from power integration */
    int64_t covered_ms;           /* time covered by any segment */
    int32_t readings;             /* good readings taken in it (not rejected, not discarded) */
    int32_t discarded, rollovers, resets; /* counter events at a time inside it */
    unsigned flags;               /* OR of the flags of the segments in it */
} dcem_interval;

typedef void (*dcem_interval_fn)(void *ctx, const dcem_interval *iv);

/* Adds interval iv to a meter's sums: its energies, and as counts whether
 * it was read (a good reading in it), estimated, integrated, and its
 * counter events. The one definition dcem-audit's days, the store's
 * rollups and the collector's figures sum with. */
void dcem_meter_period_add_interval(dcem_meter_period *p, const dcem_interval *iv);

typedef struct dcem_splitter {
    dcem_zone zone;
    int64_t len_ms;
    dcem_interval cur;
    int open;
    int have_bounds;                 /* bounds of cur's day, month, year known */
    int64_t span_start[DCEM_SPAN_COUNT], span_end[DCEM_SPAN_COUNT];
} dcem_splitter;

/* interval_minutes must divide 60. tz must outlive the splitter. */
void dcem_splitter_init(dcem_splitter *s, const dcem_tz *tz, int interval_minutes);

/* a * b / c exactly, truncated toward zero as C's division is; for
 * 0 <= b <= c and c > 0, so that |result| <= |a|. The product may need 128
 * bits: dcem_muldiv uses the compiler's __int128 where it has one (64-bit
 * targets) and dcem_muldiv_portable elsewhere (32-bit ARM), which works in
 * two 64-bit halves. */
int64_t dcem_muldiv(int64_t a, int64_t b, int64_t c);
int64_t dcem_muldiv_portable(int64_t a, int64_t b, int64_t c);

/* Adds a segment of seg->kwh MICRO-kWh (t0 < t1, segments in time order,
 * not overlapping). */
void dcem_splitter_add(dcem_splitter *s, const dcem_segment *seg, dcem_interval_fn fn, void *ctx);

/* Hands over the interval still open (partly covered), if any. */
void dcem_splitter_flush(dcem_splitter *s, dcem_interval_fn fn, void *ctx);

#endif
