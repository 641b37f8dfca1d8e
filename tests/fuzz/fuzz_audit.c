/* fuzz_audit.c — the readings CSV reader and streaming figures engine behind
 * dcem-audit (common/audit.c) on hostile files: the input is a readings CSV
 * as dcem-audit reads it (a header, then time,meter,kwh[,kw[,ratio]] rows),
 * fed line by line against the sample site yz-alpha and the shipped policy,
 * then every month and year the accepted readings touch is computed, as
 * dcem-audit does. Rows may be refused; nothing may crash, leak or overflow,
 * and the counts must add up. */
#include "fuzz.h"

#include "audit.h"
#include "calendar.h"
#include "dcem_io.h"
#include "errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_YEARS 3 /* a fuzzed span may cover millennia: figure a few years of it */

static dcem_site *site;
static dcem_policy policy;
static dcem_tz *tz;

static void setup(void)
{
    char err[512];
    site = malloc(sizeof *site);
    FUZZ_CHECK(site != NULL);
    if (dcem_io_load_site(DCEM_FUZZ_CONFIGS "/sites/yz-alpha.yaml", site, err, sizeof err) ||
        dcem_io_load_policy(DCEM_FUZZ_CONFIGS "/policy/beijing-etown-2024.yaml", &policy, err,
                            sizeof err) ||
        dcem_io_load_tz(site->timezone, &tz, err, sizeof err)) {
        fprintf(stderr, "fuzz_audit: %s\n", err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!site) setup();
    dcem_audit *a = dcem_audit_new(site, &policy, tz);
    FUZZ_CHECK(a != NULL);
    /* Each line in its own allocation of exactly its length, so a read past
     * its end is caught (dcem-audit's lines sit in a larger buffer). */
    const char *s = (const char *)data, *end = s + size;
    int have_header = 0, stop = 0;
    long long fed = 0;
    while (s < end && !stop) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
        char *line = malloc(len ? len : 1);
        FUZZ_CHECK(line != NULL);
        memcpy(line, s, len);
        if (len == 0 || (len == 1 && line[0] == '\r')) {
            /* blank lines are skipped, as dcem-audit does */
        } else if (!have_header) {
            if (dcem_audit_header(a, line, len)) stop = 1; /* dcem-audit refuses the file */
            have_header = 1;
        } else {
            int r = dcem_audit_row(a, line, len);
            FUZZ_CHECK(r == DCEM_EFULL || (r >= 0 && r < DCEM_ROW_REASON_COUNT));
            if (r == DCEM_EFULL) stop = 1;
            fed++;
        }
        free(line);
        s += len + 1;
    }
    if (!stop) {
        FUZZ_CHECK(dcem_audit_finish(a) == 0);
        const dcem_audit_stats *st = dcem_audit_stats_get(a);
        FUZZ_CHECK(st->rows == fed && st->accepted + st->rejected == st->rows);
        long long sum = 0;
        for (int i = 0; i < DCEM_ROW_REASON_COUNT; i++) sum += st->by_reason[i];
        FUZZ_CHECK(sum == st->rejected && st->by_reason[DCEM_ROW_OK] == 0);
        for (size_t i = 0; i < dcem_audit_unknown_count(a); i++) {
            long long rows = 0;
            FUZZ_CHECK(dcem_audit_unknown(a, i, &rows) != NULL && rows > 0);
        }
        if (st->accepted) {
            FUZZ_CHECK(st->first_ms <= st->last_ms);
            dcem_zone zone;
            dcem_zone_init(&zone, tz);
            int64_t y0, y1;
            int m, d;
            dcem_zone_date(&zone, st->first_ms, &y0, &m, &d);
            dcem_zone_date(&zone, st->last_ms - 1, &y1, &m, &d);
            if (y1 - y0 >= MAX_YEARS) y1 = y0 + MAX_YEARS - 1;
            static dcem_meter_period mp[DCEM_SITE_MAX_METERS];
            for (int64_t y = y0; y <= y1; y++) {
                dcem_figures f;
                dcem_verdicts v;
                dcem_audit_period(a, DCEM_PERIOD_YEAR, (long long)y * 12, 12, INT64_MAX, &f, &v,
                                  mp);
                for (int k = 0; k < 12; k++)
                    dcem_audit_period(a, DCEM_PERIOD_MONTH, (long long)y * 12 + k, 1, INT64_MAX,
                                      &f, &v, mp);
            }
        }
    }
    dcem_audit_free(a);
    return 0;
}
