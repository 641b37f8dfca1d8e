/* meter.h — one meter's pipeline, the only one: readings in, intervals out.
 * Counter rules (counter.h), the split into intervals in whole micro-kWh
 * (split.h), and the attribution of counter events and good readings to the
 * interval holding their time. dcem-audit, the collector and the agent's
 * local figures all run their readings through it, so the same readings
 * give the same micro-kWh on every path, by construction.
 *
 * The configuration (counter rules, the ledger's and policy's in force) is
 * passed on every call and never kept: the state holds only what the
 * readings made. The state encodes to a small versioned blob a store keeps
 * without knowing what is inside. Pure. */
#ifndef DCEM_METER_H
#define DCEM_METER_H

#include "counter.h"
#include "split.h"

#include <stddef.h>
#include <stdint.h>

/* The largest counter or power value a meter can report: micro-kWh of
 * anything larger would not fit 63 bits. Larger values are out_of_range. */
#define DCEM_METER_MAX_VALUE 9e12

#define DCEM_METER_PENDING 8 /* intervals waiting for events; 5 can be in use */

/* Events and readings whose interval has not been handed over yet. */
typedef struct dcem_meter_pending {
    int64_t start_ms, end_ms;
    int32_t readings, discarded, rollovers, resets;
} dcem_meter_pending;

typedef struct dcem_meter_state {
    dcem_counter counter; /* counter.cfg is set from the caller's on every call */
    dcem_splitter split;
    int n_pending;
    dcem_meter_pending pending[DCEM_METER_PENDING];
} dcem_meter_state;

/* A fresh meter. tz must outlive it. */
void dcem_meter_init(dcem_meter_state *m, const dcem_tz *tz, int interval_minutes);

/* Pushes one reading taken at t_ms (counter value kwh when has_kwh, power kw
 * when has_kw, transformer ratio ratio: see dcem_counter_push_ratio) under
 * the rules cfg. Intervals it completes go to fn, in time order. Returns
 * the dcem_reject (DCEM_REJECT_NONE: accepted); a rejected reading changes
 * nothing. out, when not NULL, receives what the counter did. */
int dcem_meter_push(dcem_meter_state *m, const dcem_counter_cfg *cfg, int64_t t_ms, int has_kwh,
                    double kwh, int has_kw, double kw, double ratio, dcem_interval_fn fn,
                    void *ctx, dcem_counter_out *out);

/* End of data: settles held readings and hands over every interval left.
 * Returns how many held readings it found to be glitches. */
int dcem_meter_finish(dcem_meter_state *m, const dcem_counter_cfg *cfg, dcem_interval_fn fn,
                       void *ctx);

/* The latest reading time the meter has taken or holds (INT64_MIN: none).
 * A reading at or before it is late: it cannot be pushed; the meter is
 * rebuilt from its stored readings instead. */
int64_t dcem_meter_last_ms(const dcem_meter_state *m);

/* Every interval handed over after this state starts at or after the
 * returned time; every one handed over before it started earlier. A replay
 * from a saved state first removes the intervals from there on. */
int64_t dcem_meter_frontier_ms(const dcem_meter_state *m);

/* Versioned encoding of the state (no configuration in it). */
#define DCEM_METER_STATE_MAX 512
size_t dcem_meter_encode(const dcem_meter_state *m, unsigned char *buf, size_t len); /* 0: too small */

/* Restores an encoded state into a meter working in tz at interval_minutes.
 * 0, or DCEM_EINVAL when buf is not a state this version reads. */
int dcem_meter_decode(dcem_meter_state *m, const dcem_tz *tz, int interval_minutes, const void *buf,
                      size_t len);

#endif
