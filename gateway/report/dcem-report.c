/* dcem-report — writes a regulator's report of one site for a month or a
 * year from the collector's store (report.h does the work; this file reads
 * the command line, the clock and the config). docs/reports.md.
 *
 *   dcem-report -c collector.yaml --site S (--month YYYY-MM | --year YYYY)
 *               [--format xlsx,csv,json] --out DIR [--as-of YYYY-MM-DD]
 *
 * Exit status: 0 written; 1 the config, the store or writing failed; 2 a
 * usage error (bad or missing option, unknown site, nothing to report yet).
 * Nothing is written unless the exit status is 0. */
#include "calendar.h"
#include "collector_config.h"
#include "dcem_log.h"
#include "errors.h"
#include "figures.h"
#include "parse.h"
#include "report.h"
#include "store.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void usage(FILE *f)
{
    fputs("usage: dcem-report -c collector.yaml (--site S | --zone) (--month YYYY-MM | --year YYYY)\n"
          "                   [--format xlsx,csv,json] --out DIR [--as-of YYYY-MM-DD]\n"
          "Writes the site's report for the month or year into DIR: XLSX (bilingual),\n"
          "CSV, JSON, the readings export for dcem-audit and MANIFEST.sha256.\n"
          "--zone: the zone report instead, every site of the config in one table,\n"
          "ranked by status, with totals (XLSX, CSV, JSON, MANIFEST.sha256).\n"
          "--as-of counts data before that local date (default: today). docs/reports.md.\n",
          f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dcem-report: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    return 2;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* a label on the report, not a schedule */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"site", required_argument, 0, 's'},
        {"month", required_argument, 0, 'm'},  {"year", required_argument, 0, 'y'},
        {"format", required_argument, 0, 'f'}, {"out", required_argument, 0, 'o'},
        {"as-of", required_argument, 0, 'a'},  {"version", no_argument, 0, 'V'},
        {"zone", no_argument, 0, 'z'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *file = NULL, *site = NULL, *out = NULL;
    int zone = 0;
    long long month = -1, year = -1;
    int64_t as_of_day = -1;
    unsigned formats = DCEM_REPORT_ALL;
    char err[2048];
    int o;
    while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            file = optarg;
            break;
        case 's':
            site = optarg;
            break;
        case 'z':
            zone = 1;
            break;
        case 'o':
            out = optarg;
            break;
        case 'm':
            if (dcem_parse_month(optarg, strlen(optarg), &month))
                return usage_error("--month '%s': expected YYYY-MM", optarg);
            break;
        case 'y': {
            int y;
            if (strlen(optarg) != 4 || dcem_parse_digits(optarg, 4, &y) || y < 1970)
                return usage_error("--year '%s': expected YYYY", optarg);
            year = y;
            break;
        }
        case 'a':
            if (dcem_parse_date(optarg, strlen(optarg), &as_of_day))
                return usage_error("--as-of '%s': expected a date YYYY-MM-DD", optarg);
            break;
        case 'f':
            if (dcem_report_parse_formats(optarg, &formats, err, sizeof err))
                return usage_error("%s", err);
            break;
        case 'V':
            puts("dcem-report " DCEM_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (!file) return usage_error("%s", "-c collector.yaml is required");
    if (!site == !zone) return usage_error("%s", "give --site S or --zone");
    if ((month < 0) == (year < 0)) return usage_error("%s", "give --month YYYY-MM or --year YYYY");
    if (!out) return usage_error("%s", "--out DIR is required");

    dcem_collector_config *cfg = dcem_collector_config_load(file, err, sizeof err);
    if (!cfg) return fprintf(stderr, "dcem-report: %s\n", err), 1;
    dcem_log_set_level(cfg->log_level);
    if (site && !dcem_collector_site_find(cfg, site)) {
        fprintf(stderr, "dcem-report: --site %s: no such site in %s (sites:", site, file);
        for (size_t i = 0; i < cfg->n_sites; i++)
            fprintf(stderr, "%s %s", i ? "," : "", cfg->sites[i].ledger->site);
        fputs(cfg->n_sites ? ")\n" : " none)\n", stderr);
        dcem_collector_config_free(cfg);
        return 2;
    }
    /* opening a store creates it when missing: a report must not */
    struct stat sb;
    if (!strcmp(cfg->store.backend, "sqlite") && stat(cfg->store.path, &sb)) {
        fprintf(stderr, "dcem-report: store %s: %s (store.path in %s)\n", cfg->store.path,
                strerror(errno), file);
        dcem_collector_config_free(cfg);
        return 1;
    }
    dcem_store_opts so = {.synchronous = cfg->store.synchronous,
                          .retention_days = (int)cfg->store.retention_days};
    dcem_store *st = NULL;
    if (dcem_store_open(cfg->store.backend, dcem_collector_store_target(&cfg->store), &so, &st,
                        err, sizeof err)) {
        fprintf(stderr, "dcem-report: %s\n", err);
        dcem_collector_config_free(cfg);
        return 1;
    }
    dcem_report_request req = {.site = site,
                               .kind = month >= 0 ? DCEM_PERIOD_MONTH : DCEM_PERIOD_YEAR,
                               .first_month = month >= 0 ? month : year * 12,
                               .as_of_day = as_of_day,
                               .now_ms = now_ms(),
                               .generator = "dcem-report " DCEM_VERSION};
    dcem_report *r = NULL;
    int status = 0, rc;
    if (zone) {
        rc = dcem_report_zone_write(cfg, st, &req, out, formats, stdout, err, sizeof err);
        if (rc) {
            status = rc == DCEM_EINVAL || rc == DCEM_ENOTFOUND ? 2 : 1;
            fprintf(stderr, "dcem-report: %s\n", err);
        }
        dcem_store_close(st);
        dcem_collector_config_free(cfg);
        return status;
    }
    rc = dcem_report_build(cfg, st, &req, &r, err, sizeof err);
    if (rc) {
        /* the request cannot be answered (a period not begun, --as-of ahead): usage */
        status = rc == DCEM_EINVAL || rc == DCEM_ENOTFOUND ? 2 : 1;
    } else if ((rc = dcem_report_write(r, out, formats, err, sizeof err))) {
        status = 1; /* the directory refused, or writing failed */
    }
    if (rc) {
        fprintf(stderr, "dcem-report: %s\n", err);
    } else {
        const char *const *names;
        size_t n = dcem_report_files(r, &names);
        for (size_t i = 0; i < n; i++)
            printf("%s/%s\n", out, names[i]);
        printf("%s: verdicts %s\n", dcem_report_base(r), dcem_report_verdicts(r));
    }
    dcem_report_free(r);
    dcem_store_close(st);
    dcem_collector_config_free(cfg);
    return status;
}
