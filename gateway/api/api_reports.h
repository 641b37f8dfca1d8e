/* api_reports.h — the regulators' reports through the HTTP API: the report
 * library (gateway/report, the code of dcem-report) builds and writes a
 * site's month or year report into the API's reports directory, where it is
 * kept and served file by file for the rest of the local day (it counts
 * data up to the last local midnight, so it would not change before the
 * next). Runs in the API's thread with the API's store handle. */
#ifndef DCEM_API_REPORTS_H
#define DCEM_API_REPORTS_H

#include "api_views.h"

#include <cJSON.h>

typedef struct dcem_api_reports dcem_api_reports;

/* The cache of reports written today (a few dozen, least recently used
 * replaced). NULL when out of memory. */
dcem_api_reports *dcem_api_reports_new(void);
void dcem_api_reports_free(dcem_api_reports *r);

/* Forgets what was written (a new configuration may judge differently);
 * the directories stay and are replaced when asked for again. */
void dcem_api_reports_forget(dcem_api_reports *r);

/* The periods a report can be made of (those with stored figures that
 * start before the last local midnight): for one site, or (s NULL) every
 * site the caller may read — a regulator: all. 200 or 500 as views do. */
int dcem_api_view_report_periods(const dcem_api_ctx *c, const dcem_collector_site *s, cJSON **out,
                                 dcem_api_error *e);

/* The report of site s for the month or year (is_year, period): written now
 * unless it was today, then listed with its files, sizes and SHA-256 (from
 * its manifest). s NULL: the zone report (every site, dcem_report_zone_write),
 * kept in reports_dir/@zone/. 200; 404 when the period has nothing to report
 * yet; 500. */
int dcem_api_view_report(dcem_api_reports *cache, const dcem_api_ctx *c,
                         const dcem_collector_site *s, int is_year, long long period, cJSON **out,
                         dcem_api_error *e);

/* The directory holding the report (written now unless it was today) into
 * dir; then a file of it may be served if its manifest lists it. Statuses
 * as dcem_api_view_report. */
int dcem_api_report_dir(dcem_api_reports *cache, const dcem_api_ctx *c,
                        const dcem_collector_site *s, int is_year, long long period, char *dir,
                        size_t dirlen, dcem_api_error *e);

/* 1 when name is listed in the manifest of the report in dir (the manifest
 * itself included). */
int dcem_api_report_lists(const char *dir, const char *name);

#endif
