#include "calendar.h"

/* Howard Hinnant's days_from_civil / civil_from_days: exact for the whole
 * proleptic Gregorian calendar, no tables, no loops. */
int64_t dcem_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = dcem_floordiv(y, 400);
    int64_t yoe = y - era * 400;
    int64_t mp = (m + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void dcem_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = dcem_floordiv(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int dcem_days_in_month(int64_t y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : days[m - 1];
}

void dcem_zone_init(dcem_zone *z, const dcem_tz *tz)
{
    z->tz = tz;
    z->from_ms = 1; /* empty range: the first lookup asks the tz */
    z->until_ms = 0;
    z->offset_s = 0;
}

static int64_t sat_ms(int64_t s)
{
    if (s >= INT64_MAX / 1000) return INT64_MAX;
    if (s <= INT64_MIN / 1000) return INT64_MIN;
    return s * 1000;
}

int32_t dcem_zone_offset(dcem_zone *z, int64_t t_ms)
{
    if (t_ms >= z->from_ms && t_ms < z->until_ms) return z->offset_s;
    int64_t from, until;
    z->offset_s = dcem_tz_offset(z->tz, dcem_floordiv(t_ms, 1000), &from, &until);
    z->from_ms = sat_ms(from);
    z->until_ms = sat_ms(until);
    return z->offset_s;
}

int64_t dcem_zone_day(dcem_zone *z, int64_t t_ms)
{
    int64_t local = t_ms + (int64_t)dcem_zone_offset(z, t_ms) * DCEM_MS_PER_S;
    return dcem_floordiv(local, DCEM_MS_PER_DAY);
}

void dcem_zone_date(dcem_zone *z, int64_t t_ms, int64_t *y, int *m, int *d)
{
    dcem_civil_from_days(dcem_zone_day(z, t_ms), y, m, d);
}

int64_t dcem_zone_day_start(const dcem_zone *z, int64_t day)
{
    return dcem_tz_local_to_utc(z->tz, day * 86400) * DCEM_MS_PER_S;
}

int64_t dcem_zone_month_start(const dcem_zone *z, int64_t month)
{
    int64_t y = dcem_floordiv(month, 12);
    int m = (int)(month - y * 12) + 1;
    return dcem_zone_day_start(z, dcem_days_from_civil(y, m, 1));
}

void dcem_zone_interval(dcem_zone *z, int64_t t_ms, int64_t len_ms, int64_t *start, int64_t *end)
{
    int64_t off_ms = (int64_t)dcem_zone_offset(z, t_ms) * DCEM_MS_PER_S;
    int64_t s = dcem_floordiv(t_ms + off_ms, len_ms) * len_ms - off_ms;
    int64_t e = s + len_ms;
    /* the offset in force at t holds on [from, until): an interval that
     * crosses a clock change is cut there */
    if (s < z->from_ms) s = z->from_ms;
    if (e > z->until_ms) e = z->until_ms;
    *start = s;
    *end = e;
}
