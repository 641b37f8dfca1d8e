/* calendar.h — civil dates and the periods of a site: intervals (1-60 min),
 * days, calendar months and years in the site's IANA zone. Times are UTC
 * milliseconds since the epoch; boundaries are the UTC instants at which the
 * local clock reads an aligned time, so DST days have 23 or 25 hours and an
 * interval is cut where the clocks jump. */
#ifndef DCEM_CALENDAR_H
#define DCEM_CALENDAR_H

#include "tz.h"

#include <stdint.h>

#define DCEM_MS_PER_S 1000LL
#define DCEM_MS_PER_DAY 86400000LL

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t dcem_days_from_civil(int64_t y, int m, int d);
void dcem_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
int dcem_days_in_month(int64_t y, int m);

/* Floor division that rounds towards minus infinity. */
static inline int64_t dcem_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* A zone with its last offset lookup cached: per-reading paths call
 * dcem_zone_offset, which asks the tz only when t leaves the cached range. */
typedef struct dcem_zone {
    const dcem_tz *tz;
    int64_t from_ms, until_ms; /* cached offset is valid in [from, until) */
    int32_t offset_s;
} dcem_zone;

void dcem_zone_init(dcem_zone *z, const dcem_tz *tz);
int32_t dcem_zone_offset(dcem_zone *z, int64_t t_ms);

/* Local date of instant t. */
void dcem_zone_date(dcem_zone *z, int64_t t_ms, int64_t *y, int *m, int *d);

/* Local day number (days since 1970-01-01 on the local calendar) of t. */
int64_t dcem_zone_day(dcem_zone *z, int64_t t_ms);

/* UTC instant at which local day `day` (local days since the epoch) starts. */
int64_t dcem_zone_day_start(const dcem_zone *z, int64_t day);

/* UTC instant at which the local month starts; month = year*12 + (m-1). */
int64_t dcem_zone_month_start(const dcem_zone *z, int64_t month);

/* The interval of length len_ms (divides an hour) that contains t:
 * *start <= t < *end, aligned on the local clock and cut at offset changes. */
void dcem_zone_interval(dcem_zone *z, int64_t t_ms, int64_t len_ms, int64_t *start,
                        int64_t *end);

#endif
