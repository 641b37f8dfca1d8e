/* dcem-audit — recompute a site's figures and verdicts from a readings CSV.
 * All arithmetic is libdcem's (audit.c and what it calls); this file reads
 * the files, prints rejected rows and formats the results. */
#include "audit.h"
#include "calendar.h"
#include "dcem_io.h"
#include "errors.h"
#include "parse.h"
#include "period_json.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (1u << 20)

typedef struct options {
    const char *site, *policy, *readings;
    long long year;      /* 0: not given */
    long long month;     /* year*12+m-1, or -1 */
    int64_t as_of_ms;    /* INT64_MAX: whole periods */
    const char *as_of;   /* as given */
    int json;
    long max_errors;
    const char *intervals; /* --intervals: every interval written here */
} options;

/* --intervals: one CSV row per interval of a meter, in whole micro-kWh. */
#define INTERVALS_HEADER                                                                       \
    "meter,start,end,ukwh,estimated_ukwh,estimated_day_ukwh,estimated_month_ukwh,"              \
    "estimated_year_ukwh,integrated_ukwh,covered_ms,readings,discarded,rollovers,resets\n"

typedef struct iv_out {
    FILE *fp;
    const dcem_site *site;
    int err;
} iv_out;

static void write_interval(void *ctx, size_t meter, const dcem_interval *iv)
{
    iv_out *o = ctx;
    char a[40], b[40];
    dcem_format_time(iv->start_ms, 0, a, sizeof a);
    dcem_format_time(iv->end_ms, 0, b, sizeof b);
    if (fprintf(o->fp, "%s,%s,%s,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%d,%d,%d,%d\n",
                o->site->meters[meter].id, a, b, (long long)iv->ukwh,
                (long long)iv->estimated_ukwh[DCEM_SPAN_INTERVAL],
                (long long)iv->estimated_ukwh[DCEM_SPAN_DAY],
                (long long)iv->estimated_ukwh[DCEM_SPAN_MONTH],
                (long long)iv->estimated_ukwh[DCEM_SPAN_YEAR], (long long)iv->integrated_ukwh,
                (long long)iv->covered_ms, iv->readings, iv->discarded, iv->rollovers,
                iv->resets) < 0)
        o->err = 1;
}

static void usage(FILE *out)
{
    fputs("usage: dcem-audit --site FILE --policy FILE --readings FILE.csv\n"
          "                  [--year YYYY | --month YYYY-MM] [--as-of YYYY-MM-DD]\n"
          "                  [--json] [--max-errors N] [--intervals FILE.csv]\n"
          "Recomputes PUE, green share, cap usage and the verdicts of the policy\n"
          "for every month and year of the readings (CSV: time,meter,kwh[,kw[,ratio]]).\n"
          "--readings - reads standard input. See docs/audit.md.\n",
          out);
}

static int parse_int(const char *s, size_t len, long long *v)
{
    if (!len || len > 18) return -1;
    long long x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"site", required_argument, 0, 's'},  {"policy", required_argument, 0, 'p'},
        {"readings", required_argument, 0, 'r'}, {"year", required_argument, 0, 'y'},
        {"month", required_argument, 0, 'm'}, {"as-of", required_argument, 0, 'a'},
        {"json", no_argument, 0, 'j'},        {"max-errors", required_argument, 0, 'e'},
        {"help", no_argument, 0, 'h'},        {"version", no_argument, 0, 'V'},
        {"intervals", required_argument, 0, 'i'},
        {0, 0, 0, 0},
    };
    *o = (options){.month = -1, .as_of_ms = INT64_MAX, .max_errors = 20};
    int c;
    long long v;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's': o->site = optarg; break;
        case 'i': o->intervals = optarg; break;
        case 'p': o->policy = optarg; break;
        case 'r': o->readings = optarg; break;
        case 'j': o->json = 1; break;
        case 'y':
            if (parse_int(optarg, strlen(optarg), &o->year) || o->year < 1970 || o->year > 9999) {
                fprintf(stderr, "dcem-audit: --year %s: expected YYYY\n", optarg);
                return 2;
            }
            break;
        case 'm':
            if (dcem_parse_month(optarg, strlen(optarg), &o->month)) {
                fprintf(stderr, "dcem-audit: --month %s: expected YYYY-MM\n", optarg);
                return 2;
            }
            break;
        case 'a': o->as_of = optarg; break;
        case 'e':
            if (parse_int(optarg, strlen(optarg), &v)) {
                fprintf(stderr, "dcem-audit: --max-errors %s: expected a count\n", optarg);
                return 2;
            }
            o->max_errors = (long)v;
            break;
        case 'h': usage(stdout); exit(0);
        case 'V': puts("dcem-audit " DCEM_VERSION); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (!o->site || !o->policy || !o->readings || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (o->year && o->month >= 0) {
        fputs("dcem-audit: give --year or --month, not both\n", stderr);
        return 2;
    }
    return 0;
}

typedef struct feeder {
    dcem_audit *audit;
    const char *name;
    long long line;
    long long printed;
    long max_errors;
    int have_header;
} feeder;

/* One line (no newline) of the readings file. */
static int feed_line(feeder *fd, const char *s, size_t len)
{
    fd->line++;
    if (len == 0 || (len == 1 && s[0] == '\r')) return 0;
    if (!fd->have_header) {
        if (dcem_audit_header(fd->audit, s, len)) {
            fprintf(stderr, "%s:%lld: header must be time,meter,kwh, time,meter,kwh,kw or "
                            "time,meter,kwh,kw,ratio\n", fd->name, fd->line);
            return -1;
        }
        fd->have_header = 1;
        return 0;
    }
    int r = dcem_audit_row(fd->audit, s, len);
    if (r == DCEM_EFULL) {
        fprintf(stderr, "%s:%lld: out of memory\n", fd->name, fd->line);
        return -1;
    }
    if (r != DCEM_ROW_OK && fd->printed++ < fd->max_errors)
        fprintf(stderr, "%s:%lld: %s: %s\n", fd->name, fd->line, dcem_row_reason_name(r),
                dcem_row_reason_text(r));
    return 0;
}

static int feed_file(feeder *fd, FILE *fp)
{
    char *buf = malloc(CHUNK);
    if (!buf) return -1;
    size_t have = 0;
    int skipping = 0; /* inside a line longer than the buffer */
    for (;;) {
        size_t n = fread(buf + have, 1, CHUNK - have, fp);
        int eof = n == 0;
        have += n;
        size_t start = 0;
        for (;;) {
            char *nl = memchr(buf + start, '\n', have - start);
            if (!nl) break;
            size_t len = (size_t)(nl - (buf + start));
            if (skipping) {
                skipping = 0;
                fd->line++;
                dcem_audit_row(fd->audit, "", 0); /* counted as malformed */
                if (fd->printed++ < fd->max_errors)
                    fprintf(stderr, "%s:%lld: malformed: line longer than %u bytes\n",
                            fd->name, fd->line, CHUNK);
            } else if (feed_line(fd, buf + start, len)) {
                free(buf);
                return -1;
            }
            start += len + 1;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (eof) break;
        if (have == CHUNK) { /* no newline in a whole buffer */
            skipping = 1;
            have = 0;
        }
    }
    int rc = 0;
    if (ferror(fp)) {
        fprintf(stderr, "%s: read error\n", fd->name);
        rc = -1;
    } else if (have && !skipping) {
        rc = feed_line(fd, buf, have); /* last line without a newline */
    }
    free(buf);
    if (!rc && !fd->have_header) {
        fprintf(stderr, "%s: empty file: no header line\n", fd->name);
        rc = -1;
    }
    return rc;
}

/* ---- output ---- */

static void verdict_list(const dcem_verdicts *v, char *b, size_t n)
{
    size_t used = 0;
    b[0] = '\0';
    for (int i = 0; i < DCEM_V_COUNT; i++) {
        if (!(v->bits & 1u << i) || i == DCEM_V_IN_SCOPE) continue;
        int k = snprintf(b + used, n - used, "%s%s", used ? " " : "", dcem_verdict_name(i));
        if (k < 0 || used + (size_t)k >= n) break;
        used += (size_t)k;
    }
}

static void print_row(const dcem_figures *f, const dcem_verdicts *v, dcem_zone *zone)
{
    char name[32], verdicts[512], pue[16] = "-", share[16] = "-", cap[16] = "-", cny[24] = "-";
    dcem_period_name(f, zone, name, sizeof name);
    verdict_list(v, verdicts, sizeof verdicts);
    if (!isnan(f->pue)) snprintf(pue, sizeof pue, "%.4f", f->pue);
    if (!isnan(f->green_share)) snprintf(share, sizeof share, "%.2f", f->green_share * 100);
    if (!isnan(v->cap_usage)) snprintf(cap, sizeof cap, "%.1f", v->cap_usage * 100);
    if (v->bits & 1u << DCEM_V_DIFFERENTIAL_PRICING)
        snprintf(cny, sizeof cny, "%.2f", v->surcharge_cny);
    printf("%-8s %14.3f %14.3f %13.3f %7s %6s %5.1f %7.2f %11.3f %6s %12s  %s\n", name,
           f->total_kwh, f->it_kwh, f->green_kwh, pue, share, v->green_threshold * 100,
           f->completeness * 100, f->estimated_kwh, cap, cny, verdicts);
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;

    char err[1024];
    dcem_site *site = malloc(sizeof *site);
    dcem_policy *pol = malloc(sizeof *pol);
    dcem_tz *tz = NULL;
    dcem_audit *audit = NULL;
    FILE *fp = NULL;
    cJSON *root = NULL;
    iv_out ivo = {.site = site};
    rc = 1;
    if (!site || !pol) goto out;
    if (dcem_io_load_site(o.site, site, err, sizeof err) ||
        dcem_io_load_policy(o.policy, pol, err, sizeof err) ||
        dcem_io_load_tz(site->timezone, &tz, err, sizeof err)) {
        fprintf(stderr, "dcem-audit: %s\n", err);
        goto out;
    }
    dcem_zone zone;
    dcem_zone_init(&zone, tz);
    if (o.as_of) {
        int64_t day;
        if (dcem_parse_date(o.as_of, strlen(o.as_of), &day)) {
            fprintf(stderr, "dcem-audit: --as-of %s: expected YYYY-MM-DD\n", o.as_of);
            rc = 2;
            goto out;
        }
        o.as_of_ms = dcem_zone_day_start(&zone, day);
    }
    audit = dcem_audit_new(site, pol, tz);
    if (!audit) goto out;
    if (o.intervals) {
        if (!(ivo.fp = fopen(o.intervals, "w")) || fputs(INTERVALS_HEADER, ivo.fp) < 0) {
            fprintf(stderr, "dcem-audit: %s: %s\n", o.intervals, strerror(errno));
            goto out;
        }
        dcem_audit_on_interval(audit, write_interval, &ivo);
    }
    fp = strcmp(o.readings, "-") ? fopen(o.readings, "rb") : stdin;
    if (!fp) {
        fprintf(stderr, "dcem-audit: %s: %s\n", o.readings, strerror(errno));
        goto out;
    }
    feeder fd = {.audit = audit, .name = o.readings, .max_errors = o.max_errors};
    if (feed_file(&fd, fp)) goto out;
    if (dcem_audit_finish(audit)) {
        fprintf(stderr, "dcem-audit: out of memory\n");
        goto out;
    }
    if (ivo.fp && (fclose(ivo.fp) || ivo.err)) {
        ivo.fp = NULL;
        fprintf(stderr, "dcem-audit: %s: write error\n", o.intervals);
        goto out;
    }
    ivo.fp = NULL;
    const dcem_audit_stats *st = dcem_audit_stats_get(audit);
    if (fd.printed > o.max_errors)
        fprintf(stderr, "%s: ... and %lld more rejected rows\n", o.readings,
                fd.printed - o.max_errors);

    /* the months to report: as asked, or every year the readings touch */
    long long m0, m1; /* [m0, m1) */
    if (o.month >= 0) {
        m0 = o.month;
        m1 = o.month + 1;
    } else if (o.year) {
        m0 = o.year * 12;
        m1 = m0 + 12;
    } else if (st->accepted) {
        int64_t y0, y1;
        int m, d;
        dcem_zone_date(&zone, st->first_ms, &y0, &m, &d);
        dcem_zone_date(&zone, st->last_ms - 1, &y1, &m, &d);
        m0 = y0 * 12;
        m1 = (y1 + 1) * 12;
    } else {
        m0 = m1 = 0;
    }

    dcem_meter_period *mp = calloc(site->n_meters, sizeof *mp);
    if (!mp) goto out;
    cJSON *periods = NULL;
    if (o.json) {
        root = cJSON_CreateObject();
        dcem_audit_doc_head(root, site, pol);
        cJSON *r = cJSON_AddObjectToObject(root, "readings");
        cJSON_AddStringToObject(r, "file", o.readings);
        cJSON_AddNumberToObject(r, "rows", (double)st->rows);
        cJSON_AddNumberToObject(r, "accepted", (double)st->accepted);
        cJSON_AddNumberToObject(r, "rejected", (double)st->rejected);
        cJSON *by = cJSON_AddObjectToObject(r, "rejected_by_reason");
        for (int i = 1; i < DCEM_ROW_REASON_COUNT; i++)
            cJSON_AddNumberToObject(by, dcem_row_reason_name(i), (double)st->by_reason[i]);
        cJSON_AddNumberToObject(r, "discarded_glitches", (double)st->discarded);
        cJSON *unk = cJSON_AddArrayToObject(r, "unknown_meters");
        for (size_t i = 0; i < dcem_audit_unknown_count(audit); i++) {
            long long rows;
            const char *id = dcem_audit_unknown(audit, i, &rows);
            cJSON *u = cJSON_CreateObject();
            cJSON_AddStringToObject(u, "id", id);
            cJSON_AddNumberToObject(u, "rows", (double)rows);
            cJSON_AddItemToArray(unk, u);
        }
        periods = cJSON_AddArrayToObject(root, "periods");
    } else {
        printf("site %s (%s), %s, policy %s\n", site->site, site->name, site->timezone,
               pol->policy);
        printf("readings: %lld rows, %lld accepted, %lld rejected, %lld discarded as glitches\n",
               st->rows, st->accepted, st->rejected, st->discarded);
        for (int i = 1; i < DCEM_ROW_REASON_COUNT; i++)
            if (st->by_reason[i])
                printf("  rejected %-14s %lld  (%s)\n", dcem_row_reason_name(i), st->by_reason[i],
                       dcem_row_reason_text(i));
        for (size_t i = 0; i < dcem_audit_unknown_count(audit); i++) {
            long long rows;
            const char *id = dcem_audit_unknown(audit, i, &rows);
            printf("  unknown meter %s: %lld rows\n", id, rows);
        }
        printf("\n%-8s %14s %14s %13s %7s %6s %5s %7s %11s %6s %12s  %s\n", "period",
               "total kWh", "IT kWh", "green kWh", "PUE", "green%", "thr%", "compl%", "estim. kWh",
               "cap%", "surcharge", "verdicts");
    }

    for (long long y = dcem_floordiv(m0, 12); y * 12 < m1; y++) {
        long long a = m0 > y * 12 ? m0 : y * 12, b = m1 < (y + 1) * 12 ? m1 : (y + 1) * 12;
        for (long long m = a; m <= b; m++) {
            dcem_figures f;
            dcem_verdicts v;
            int is_year = m == b;
            if (is_year && (o.month >= 0)) break; /* --month: that month only */
            if (is_year) dcem_audit_period(audit, DCEM_PERIOD_YEAR, y * 12, 12, o.as_of_ms, &f, &v, mp);
            else dcem_audit_period(audit, DCEM_PERIOD_MONTH, m, 1, o.as_of_ms, &f, &v, mp);
            if (o.json) cJSON_AddItemToArray(periods, dcem_period_json(site, pol, &f, &v, mp, &zone));
            else print_row(&f, &v, &zone);
        }
    }
    free(mp);
    if (o.json) {
        char *text = cJSON_Print(root);
        if (!text) goto out;
        puts(text);
        cJSON_free(text);
    }
    rc = 0;
out:
    if (fp && fp != stdin) fclose(fp);
    if (ivo.fp) fclose(ivo.fp);
    cJSON_Delete(root);
    dcem_audit_free(audit);
    dcem_tz_free(tz);
    free(site);
    free(pol);
    return rc;
}
