/* report.h — a regulator's report of one site for a calendar month or year,
 * built from the collector's store: the figures and verdicts computed now by
 * the collector's engine (the dcem-audit/1 document, never a second copy of
 * the arithmetic), the verdicts with the clause of the measures behind each,
 * the meter inventory from the ledger, counter events, the method, and a
 * readings export with which dcem-audit reproduces every number. Written as
 * XLSX (bilingual headers), CSV and JSON with a SHA-256 manifest. Used by
 * dcem-report and, through the same calls, the collector's HTTP API.
 * docs/reports.md describes every table and cell. */
#ifndef DCEM_REPORT_H
#define DCEM_REPORT_H

#include "collector_config.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
    DCEM_REPORT_XLSX = 1u << 0,
    DCEM_REPORT_CSV = 1u << 1,
    DCEM_REPORT_JSON = 1u << 2,
    DCEM_REPORT_ALL = DCEM_REPORT_XLSX | DCEM_REPORT_CSV | DCEM_REPORT_JSON,
};

/* Counter events listed one by one at most (the counts per meter are
 * always complete); rows beyond are dropped and the report says how many. */
#define DCEM_REPORT_MAX_EVENTS 10000

typedef struct dcem_report_request {
    const char *site;      /* a site id of the config */
    int kind;              /* DCEM_PERIOD_MONTH or DCEM_PERIOD_YEAR */
    long long first_month; /* year*12 + month-1 of the month, or of January for a year */
    int64_t as_of_day;     /* count data before the local midnight starting this local day
                              (days since 1970-01-01); -1: today (the last local midnight) */
    int64_t now_ms;        /* the clock (UTC ms): the generation time, and what "today" is */
    const char *generator; /* "dcem-report 0.1.0", printed in the report; may be NULL */
} dcem_report_request;

typedef struct dcem_report dcem_report;

/* "xlsx,csv,json" (any non-empty subset, any order) into DCEM_REPORT_*
 * bits. 0, or DCEM_EINVAL with the word that is not a format in err. */
int dcem_report_parse_formats(const char *list, unsigned *formats, char *err, size_t errlen);

/* Builds the report of req->site for the requested month or year: computes
 * the figures of the period (for a year: its 12 months and the year), reads
 * the stored intervals for the counter events, and hashes the policy and
 * ledger files it pins. cfg and st must outlive the report (st is read again
 * by dcem_report_write for the readings export). Nothing is written.
 * Returns 0 with *out to free with dcem_report_free; DCEM_ENOTFOUND when cfg
 * has no such site; DCEM_EINVAL when the period starts on or after as_of
 * (nothing to report yet), as_of is after today, or the request is
 * malformed; DCEM_ESTORAGE when the store fails; DCEM_EIO when the policy
 * or ledger file cannot be read; DCEM_ENOMEM. A sentence in err. */
int dcem_report_build(const dcem_collector_config *cfg, dcem_store *st,
                      const dcem_report_request *req, dcem_report **out, char *err, size_t errlen);

/* Writes the report into directory dir: the requested formats (XLSX:
 * <base>.xlsx; JSON: <base>.json; CSV: <base>-<table>.csv per table), the
 * readings export readings.csv (always), and MANIFEST.sha256 over all of
 * them, where <base> is dcem_report_base(). Everything is written into a
 * new directory beside dir, fsynced, and renamed into place, so dir holds a
 * whole report or is left as it was. dir is created (with missing parents)
 * when absent; an existing dir must be empty or hold an earlier report
 * (every file in it listed by its MANIFEST.sha256), which is replaced.
 * Returns 0; DCEM_EINVAL when dir is refused (err says why); DCEM_EIO when a
 * file cannot be written; DCEM_ESTORAGE when the store fails during the
 * export; DCEM_ENOMEM. On failure dir is unchanged. */
int dcem_report_write(dcem_report *r, const char *dir, unsigned formats, char *err, size_t errlen);

/* "yz-alpha-2025-04" or "yz-alpha-2025": the report files' base name. */
const char *dcem_report_base(const dcem_report *r);

/* After dcem_report_write: the file names written (manifest last), owned by r. */
size_t dcem_report_files(const dcem_report *r, const char *const **names);

/* The verdicts of the report's own period (the month, or the year), space
 * separated; owned by r. */
const char *dcem_report_verdicts(const dcem_report *r);

/* The JSON report (format dcem-report/1) as a new string the caller frees;
 * its readings section is filled in once dcem_report_write has run. NULL
 * when out of memory. */
char *dcem_report_json_text(const dcem_report *r);

void dcem_report_free(dcem_report *r);

/* The zone report (docs/reports.md): every site of cfg for req's month or
 * year (req->site is not used), one row each with the figures of its site
 * report (dcem_report_build), ranked by status — cap exceeded,
 * differential-pricing candidate, cap projected to exceed, cap warning,
 * insufficient data, green share below threshold, PUE above the limit, in
 * scope, reward-eligible, out of scope — then by site id, with a totals row;
 * written into dir as zone-<period>.xlsx, zone-<period>-zone.csv,
 * zone-<period>.json (format dcem-zone-report/1) in the requested formats
 * and MANIFEST.sha256, the way dcem_report_write writes a site report. The
 * file paths and a one-line summary go to list when not NULL. Returns what
 * dcem_report_build or dcem_report_write would; DCEM_EINVAL also for a
 * config without sites. */
int dcem_report_zone_write(const dcem_collector_config *cfg, dcem_store *st,
                           const dcem_report_request *req, const char *dir, unsigned formats,
                           FILE *list, char *err, size_t errlen);

#endif
