/* report_private.h — what a dcem_report holds, shared by report.c (which
 * gathers it from the engine, the store and the files) and report_layout.c
 * (which lays it out as tables, JSON and the method text). Not installed. */
#ifndef DCEM_REPORT_PRIVATE_H
#define DCEM_REPORT_PRIVATE_H

#include "calendar.h"
#include "collector_config.h"
#include "report.h"
#include "report_manifest.h"
#include "report_table.h"
#include "store.h"

#include <cJSON.h>
#include <stdint.h>

#define DCEM_REPORT_MAX_PERIODS 13 /* a year: 12 months and the year */
#define DCEM_REPORT_MAX_FILES 16
#define DCEM_REPORT_PATH_MAX 4096

/* Readings of each meter kept beyond the export's range on either side, so
 * that dcem-audit starts every meter from the same anchor as the collector
 * did and closes the last interval the same way: the anchor, a reading the
 * counter rules held, the reading that decided it, and one more. */
#define DCEM_REPORT_CONTEXT_READINGS 4

enum { EV_ESTIMATED = 0, EV_DISCARDED, EV_ROLLOVER, EV_RESET, EV_COUNT };

/* One line of the event log: a run of consecutive estimated intervals of a
 * meter, or one interval's discarded readings, rollovers or resets. */
typedef struct dcem_report_event {
    int meter;      /* index in the ledger */
    int kind;       /* EV_* */
    unsigned cause; /* EV_ESTIMATED: DCEM_SEG_GAP and/or DCEM_SEG_RESET */
    int64_t from_ms, to_ms;
    long count; /* intervals of the run, or events in the interval */
    int64_t ukwh; /* EV_ESTIMATED: estimated energy of the run, at the report's span */
} dcem_report_event;

/* The files a report's directory holds, as they are written (names owned). */
typedef struct dcem_report_file_list {
    char *name[DCEM_REPORT_MAX_FILES];
    size_t n;
} dcem_report_file_list;

struct dcem_report {
    const dcem_collector_config *cfg;
    const dcem_site *ledger;
    const dcem_policy *pol;
    dcem_store *st;
    dcem_zone zone;
    int kind; /* DCEM_PERIOD_MONTH or DCEM_PERIOD_YEAR */
    long long first_month;
    int n_periods; /* 1, or 13: months then the year (the report's own period last) */
    int64_t start_ms, end_ms, as_of_ms; /* as_of within [start, end] */
    int64_t generated_ms;
    char period[32]; /* "2025-04" or "2025" */
    char base[DCEM_ID_MAX + 40];
    char generator[64];
    char *doc_text[DCEM_REPORT_MAX_PERIODS]; /* the engine's dcem-audit/1 period objects */
    cJSON *doc[DCEM_REPORT_MAX_PERIODS];
    char *verdicts;        /* of the last period, space separated */
    long *est_iv, *int_iv; /* per (period, meter): estimated / integrated intervals */
    dcem_report_event *events;
    size_t n_events;
    long events_dropped;
    char policy_sha[DCEM_SHA256_HEX], ledger_sha[DCEM_SHA256_HEX];
    char ledger_file[DCEM_REPORT_PATH_MAX]; /* absolute, as pinned and printed */
    char policy_file[DCEM_REPORT_PATH_MAX];
    /* the readings export, filled in by dcem_report_write */
    int exported;
    long long readings_rows, context_rows;
    int64_t export_from_ms, export_to_ms;
    int64_t pruned_before_ms; /* INT64_MIN: the store keeps readings for ever */
    dcem_report_file_list files;
};

/* report_layout.c */

/* The report's tables in sheet order (summary, figures, verdicts, meters,
 * meter energy, events, method); *n receives the count. 0 or DCEM_ENOMEM /
 * DCEM_EFULL; on failure nothing is left allocated. */
#define DCEM_REPORT_N_TABLES 7
int dcem_report_tables(const dcem_report *r, dcem_rt_table *tables[DCEM_REPORT_N_TABLES]);

/* The strings of a JSON array joined with spaces: a new string the caller
 * frees ("" for an empty or missing array), NULL when out of memory. */
char *dcem_report_join(const cJSON *array);

/* The local RFC 3339 text of t_ms in the site's zone (buf of 40 bytes). */
void dcem_report_time(const dcem_report *r, int64_t t_ms, char *buf, size_t n);

/* The dcem-audit command that recomputes r's figures from its export:
 * the two file paths and at most 160 bytes more. With names set, the
 * ledger and policy files by name only (what people read: the XLSX, CSV
 * and method text, where the SHA-256 identifies them); else by the paths
 * on the machine that made the report (the JSON, for tools). */
#define DCEM_REPORT_COMMAND_MAX (2 * DCEM_REPORT_PATH_MAX + 160)
void dcem_report_audit_command(const dcem_report *r, int names, char *buf, size_t n);

/* Fills the new directory tmp with a report's files (manifest included);
 * 0, or an error with a sentence in err. */
typedef int (*dcem_report_fill_fn)(void *ctx, const char *tmp, char *err, size_t errlen);

/* The directory handling of dcem_report_write for any report: dir is
 * checked (absent, empty, or an earlier report: every file listed by its
 * MANIFEST.sha256), fill writes into a new directory beside it, which is
 * fsynced and renamed into place; dir holds the new report or is as it
 * was. Returns 0 or what fill or the file system failed with. */
int dcem_report_dir_write(const char *dir, dcem_report_fill_fn fill, void *ctx, char *err,
                          size_t errlen);

/* fflush, fsync and fclose: 0, or -1 when any of them failed. */
int dcem_report_close_synced(FILE *f);

/* What a site report and the zone report write alike into the new
 * directory tmp: each file flushed to disk and added to the list l, or an
 * error (DCEM_EIO with "path: reason" in err; DCEM_EFULL, DCEM_ENOMEM). */
int dcem_report_list_add(dcem_report_file_list *l, const char *name);
void dcem_report_list_free(dcem_report_file_list *l);
/* text and a line break, as tmp/name */
int dcem_report_put_text(const char *tmp, const char *name, const char *text,
                         dcem_report_file_list *l, char *err, size_t errlen);
/* a table as CSV (dcem_rt_write_csv), as tmp/name */
int dcem_report_put_csv(const char *tmp, const char *name, const dcem_rt_table *t,
                        dcem_report_file_list *l, char *err, size_t errlen);
/* MANIFEST.sha256 over the files listed (sorted by name first), listed last */
int dcem_report_put_manifest(const char *tmp, dcem_report_file_list *l, char *err, size_t errlen);

/* A verdict id in words, Chinese (en 0) or English (en 1); NULL for an id
 * the engine does not have. */
const char *dcem_report_verdict_words(const char *id, int en);

/* The last component of a path. */
const char *dcem_report_file_name(const char *path);

#endif
