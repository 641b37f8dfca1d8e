/* fuzz_tz.c — the TZif parser (common/tz.c) on hostile bytes: zoneinfo
 * files are read from disk at start (dcem_io_load_tz), so a damaged or
 * planted file must be refused, never crash the collector. A zone that
 * parses is then queried: the offset ranges it reports must contain the
 * instant asked for and move forward (dcem_tz_local_to_utc walks them), and
 * local-to-UTC must come back for every instant, the int64 ends included. */
#include "fuzz.h"

#include "errors.h"
#include "tz.h"

#include <stdlib.h>
#include <string.h>

#define MAX_OFF 93599 /* +-26 h: tz.c refuses more */

static void check_at(const dcem_tz *tz, int64_t t)
{
    int64_t from, until;
    int32_t off = dcem_tz_offset(tz, t, &from, &until);
    FUZZ_CHECK(off >= -MAX_OFF && off <= MAX_OFF);
    FUZZ_CHECK(from <= t && (t < until || until == INT64_MAX));
    FUZZ_CHECK(dcem_tz_offset(tz, from, NULL, NULL) == off);
    (void)dcem_tz_local_to_utc(tz, t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dcem_tz *tz = NULL;
    char err[160];
    int rc = dcem_tz_parse(data, size, &tz, err, sizeof err);
    if (rc) {
        FUZZ_CHECK(tz == NULL && (rc == DCEM_ETZ || rc == DCEM_ENOMEM));
        return 0;
    }
    FUZZ_CHECK(tz != NULL);
    static const int64_t probes[] = {
        INT64_MIN, INT64_MIN + 1, -(INT64_C(1) << 62), -62135596800 /* 0001-01-01 */,
        -2208988800 /* 1900 */, -1, 0, 1, 1711846800 /* 2024-03-31 01:00Z */,
        1729990800 /* 2024-10-27 01:00Z */, 4102444800 /* 2100 */,
        253402300799 /* 9999-12-31 */, INT64_C(1) << 62, INT64_MAX - 1, INT64_MAX,
    };
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) check_at(tz, probes[i]);
    /* Walk the ranges from 1900 on: each ends where the next begins. */
    int64_t t = -2208988800;
    for (int i = 0; i < 400 && t < INT64_MAX; i++) {
        int64_t from, until;
        (void)dcem_tz_offset(tz, t, &from, &until);
        FUZZ_CHECK(until > t);
        check_at(tz, until == INT64_MAX ? until : until - 1);
        t = until;
    }
    dcem_tz_free(tz);
    return 0;
}
