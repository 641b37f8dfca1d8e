/* tz.h — IANA time zones from TZif data: the UTC offset in force at any
 * instant, and local wall-clock time back to UTC. Pure: the caller reads the
 * zoneinfo file (dcem_io_load_tz does) and hands the bytes to dcem_tz_parse.
 * Handles TZif versions 1-4, 64-bit transitions and the POSIX TZ footer rule
 * for instants after the last transition (slim zoneinfo files need it). */
#ifndef DCEM_TZ_H
#define DCEM_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct dcem_tz dcem_tz; /* opaque, immutable after creation */

/* Parses TZif bytes. On success *out is a new zone the caller frees with
 * dcem_tz_free. On failure returns DCEM_ETZ (or DCEM_ENOMEM) and writes a
 * one-line reason into err (may be NULL). buf is not retained. */
int dcem_tz_parse(const unsigned char *buf, size_t len, dcem_tz **out, char *err, size_t errlen);

/* A zone with a fixed offset (seconds east of UTC), e.g. 0 for UTC.
 * Returns NULL when out of memory. */
dcem_tz *dcem_tz_new_fixed(int32_t offset_s);

/* Frees a zone; NULL is accepted. */
void dcem_tz_free(dcem_tz *tz);

/* Offset in seconds east of UTC in force at UTC instant t_s (seconds since
 * the epoch). When from/until are not NULL they receive the UTC range
 * [*from, *until) over which the same offset stays in force, so callers can
 * cache it (INT64_MIN / INT64_MAX when unbounded). */
int32_t dcem_tz_offset(const dcem_tz *tz, int64_t t_s, int64_t *from, int64_t *until);

/* UTC instant of local wall-clock time local_s (seconds since the epoch, as
 * if the local clock were UTC). A local time that occurs twice (clocks set
 * back) maps to the earlier instant; one that does not exist (clocks set
 * forward) maps to the transition instant, so a day that starts inside a
 * skipped hour starts when the clocks jump. */
int64_t dcem_tz_local_to_utc(const dcem_tz *tz, int64_t local_s);

#endif
