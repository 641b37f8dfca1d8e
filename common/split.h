/* split.h — energy segments to interval energy. A segment's energy is
 * attributed to the intervals it overlaps in proportion to time, and each
 * interval is handed to a callback as soon as a segment reaches its end.
 * Pure; state lives in caller storage. */
#ifndef DCEM_SPLIT_H
#define DCEM_SPLIT_H

#include "calendar.h"
#include "counter.h"

#include <stdint.h>

typedef struct dcem_interval {
    int64_t start_ms, end_ms; /* local-aligned, see dcem_zone_interval */
    double kwh;               /* all energy attributed to the interval */
    double estimated_kwh;     /* part from gap or reset segments */
    double integrated_kwh;    /* part from power integration */
    int64_t measured_ms;      /* time covered by non-estimated segments */
    int64_t covered_ms;       /* time covered by any segment */
    unsigned flags;           /* OR of the flags of the segments in it */
} dcem_interval;

typedef void (*dcem_interval_fn)(void *ctx, const dcem_interval *iv);

typedef struct dcem_splitter {
    dcem_zone zone;
    int64_t len_ms;
    dcem_interval cur;
    int open;
} dcem_splitter;

/* interval_minutes must divide 60. tz must outlive the splitter. */
void dcem_splitter_init(dcem_splitter *s, const dcem_tz *tz, int interval_minutes);

/* Adds a segment (t0 < t1, segments in time order, not overlapping). */
void dcem_splitter_add(dcem_splitter *s, const dcem_segment *seg, dcem_interval_fn fn, void *ctx);

/* Hands over the interval still open (partly covered), if any. */
void dcem_splitter_flush(dcem_splitter *s, dcem_interval_fn fn, void *ctx);

#endif
