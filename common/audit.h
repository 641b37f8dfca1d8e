/* audit.h — the streaming figures engine behind dcem-audit: readings rows
 * ("time,meter,kwh[,kw]") in, per-meter daily sums kept, figures and verdicts
 * of any month or year out. Memory grows with meters and days, never with
 * rows. Pure: the caller reads the file and feeds lines. */
#ifndef DCEM_AUDIT_H
#define DCEM_AUDIT_H

#include "figures.h"
#include "policy.h"
#include "site.h"
#include "split.h"
#include "tz.h"

#include <stddef.h>
#include <stdint.h>

/* Why a row was not used; stable names via dcem_row_reason_name. */
typedef enum dcem_row_reason {
    DCEM_ROW_OK = 0,
    DCEM_ROW_MALFORMED,      /* wrong number of fields, or a field too long */
    DCEM_ROW_BAD_TIME,       /* not an RFC 3339 time */
    DCEM_ROW_BAD_KWH,        /* kwh not a finite decimal number */
    DCEM_ROW_BAD_KW,         /* kw not a finite decimal number */
    DCEM_ROW_NO_VALUE,       /* neither kwh nor kw given */
    DCEM_ROW_UNKNOWN_METER,  /* meter not in the site ledger */
    DCEM_ROW_OUT_OF_ORDER,   /* not later than the meter's previous reading */
    DCEM_ROW_OUT_OF_RANGE,   /* negative, at or above the counter modulo, or kW > rated */
    DCEM_ROW_WRONG_KIND,     /* kw-only row for a counter meter, or the reverse */
    DCEM_ROW_BAD_RATIO,      /* ratio not a number in (0, 1e10] */
    DCEM_ROW_REASON_COUNT
} dcem_row_reason;

const char *dcem_row_reason_name(int reason);
const char *dcem_row_reason_text(int reason);

typedef struct dcem_audit dcem_audit;

typedef struct dcem_audit_stats {
    long long rows;                      /* data rows seen (header excluded) */
    long long accepted;
    long long rejected;                  /* sum of by_reason */
    long long by_reason[DCEM_ROW_REASON_COUNT];
    long long discarded;                 /* accepted readings later found to be glitches */
    int64_t first_ms, last_ms;           /* span of accepted readings */
} dcem_audit_stats;

/* site, policy and tz must outlive the audit. NULL when out of memory. */
dcem_audit *dcem_audit_new(const dcem_site *site, const dcem_policy *policy, const dcem_tz *tz);
void dcem_audit_free(dcem_audit *a);

/* Checks the header line: "time,meter,kwh", "time,meter,kwh,kw" or
 * "time,meter,kwh,kw,ratio" (ratio: the transformer ratio ct * pt the kwh
 * of a meter behind CTs/PTs was scaled by; empty = 1. A change of it is a
 * counter event, see dcem_counter_set_ratio). Returns 0 or DCEM_EINVAL. */
#define DCEM_AUDIT_RATIO_MAX 1e10 /* ct and pt each at most 100000 */
int dcem_audit_header(dcem_audit *a, const char *line, size_t len);

/* Feeds one data row (without its newline; a trailing CR is ignored).
 * Returns DCEM_ROW_OK or the reason it was not used; rows of one meter must
 * come in time order. DCEM_EFULL (negative) when out of memory. */
int dcem_audit_row(dcem_audit *a, const char *line, size_t len);

/* End of input: closes every meter's counter and open interval. Returns 0,
 * or DCEM_EFULL when memory ran out on the way (the figures are not whole). */
int dcem_audit_finish(dcem_audit *a);

const dcem_audit_stats *dcem_audit_stats_get(const dcem_audit *a);

/* Every interval of every meter as the pipeline hands it over (per meter in
 * time order; meters interleaved), for `dcem-audit --intervals`. Set before
 * the first row; fn NULL: none. */
typedef void (*dcem_audit_interval_fn)(void *ctx, size_t meter, const dcem_interval *iv);
void dcem_audit_on_interval(dcem_audit *a, dcem_audit_interval_fn fn, void *ctx);

/* Unknown meter ids seen (at most 64 kept) and their row counts. */
size_t dcem_audit_unknown_count(const dcem_audit *a);
const char *dcem_audit_unknown(const dcem_audit *a, size_t i, long long *rows);

/* Figures, verdicts and per-meter sums of months [first_month, first_month
 * + n_months) (month = year*12 + month-1, local calendar); kind is
 * DCEM_PERIOD_MONTH or DCEM_PERIOD_YEAR. Data is counted before as_of_ms,
 * which must be a local midnight (INT64_MAX: the whole period). meters, when
 * not NULL, receives site->n_meters entries. */
void dcem_audit_period(dcem_audit *a, int kind, long long first_month, int n_months,
                       int64_t as_of_ms, dcem_figures *f, dcem_verdicts *v,
                       dcem_meter_period *meters);

#endif
