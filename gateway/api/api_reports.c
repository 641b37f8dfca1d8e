#include "api_reports.h"
#include "dcem_io.h"
#include "dcem_log.h"
#include "errors.h"
#include "period_json.h"
#include "report.h"
#include "report_manifest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef DCEM_VERSION
#define DCEM_VERSION "0"
#endif

#define CACHE_MAX 32 /* reports remembered as written today; the least recently used goes */

typedef struct entry {
    int valid;
    char site[DCEM_ID_MAX];
    int is_year;
    long long period;
    int64_t as_of_day; /* the local day whose midnight the report counts to */
    int64_t generated_ms;
    uint64_t used;      /* when last asked for, in cache ticks */
    char verdicts[512]; /* of the report's own period, space separated */
} entry;

struct dcem_api_reports {
    entry e[CACHE_MAX];
    uint64_t tick;
};

dcem_api_reports *dcem_api_reports_new(void)
{
    return calloc(1, sizeof(dcem_api_reports));
}

void dcem_api_reports_free(dcem_api_reports *r)
{
    free(r);
}

void dcem_api_reports_forget(dcem_api_reports *r)
{
    if (r) memset(r->e, 0, sizeof r->e);
}

static int fail(dcem_api_error *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(dcem_api_error *e, int status, const char *fmt, ...)
{
    e->param[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->why, sizeof e->why, fmt, ap);
    va_end(ap);
    return status;
}

/* "2025" or "2025-03"; periods are of years 1970-9999 (the routes and the
 * store's keys say so), so b needs 8 bytes, 32 leaves room for any int. */
static void period_name(int is_year, long long p, char *b, size_t n)
{
    if (is_year)
        snprintf(b, n, "%04d", (int)p);
    else
        snprintf(b, n, "%04d-%02d", (int)(p / 12), (int)(p % 12 + 1));
}

/* The zone report's folder in reports_dir: '@' is in no site id. */
#define ZONE_DIR "@zone"

/* reports_dir/<site>/<period>, or reports_dir/@zone/<period> (site "") */
static int report_path(const dcem_api_ctx *c, const char *site, int is_year, long long period,
                       char *dir, size_t n)
{
    char name[32];
    period_name(is_year, period, name, sizeof name);
    int k = snprintf(dir, n, "%s/%s/%s", c->cfg->api.reports_dir, *site ? site : ZONE_DIR, name);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* The site whose time zone says what "today" is: s, or for the zone report
 * (s NULL) the config's first site; NULL when there is none. */
static const dcem_collector_site *clock_site(const dcem_api_ctx *c, const dcem_collector_site *s)
{
    return s ? s : c->cfg->n_sites ? &c->cfg->sites[0] : NULL;
}

static int file_exists(const char *dir, const char *name)
{
    char p[DCEM_COLLECTOR_PATH_MAX + 256];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return !stat(p, &st) && S_ISREG(st.st_mode);
}

/* The cache entry of a report written today, writing it first if needed:
 * site s's, or the zone report (s NULL). Returns 200 with *out, or 404 /
 * 500 with e. */
static int get_report(dcem_api_reports *cache, const dcem_api_ctx *c, const dcem_collector_site *s,
                      int is_year, long long period, char *dir, size_t dirlen, entry **out,
                      dcem_api_error *e)
{
    const char *site = s ? s->ledger->site : "";
    const dcem_collector_site *cs = clock_site(c, s);
    if (!cs) return fail(e, 404, "no report: the collector has no sites");
    if (report_path(c, site, is_year, period, dir, dirlen))
        return fail(e, 500, "api.reports_dir: the report's path is too long");
    dcem_zone z;
    dcem_zone_init(&z, cs->tz);
    int64_t today = dcem_zone_day(&z, c->now_ms);
    entry *hit = NULL, *victim = &cache->e[0];
    for (size_t i = 0; i < CACHE_MAX; i++) {
        entry *x = &cache->e[i];
        if (x->valid && x->is_year == is_year && x->period == period && !strcmp(x->site, site))
            hit = x;
        if (!x->valid || (victim->valid && x->used < victim->used)) victim = x;
    }
    cache->tick++;
    if (hit && hit->as_of_day == today && file_exists(dir, DCEM_MANIFEST_NAME)) {
        hit->used = cache->tick;
        *out = hit;
        return 200;
    }
    dcem_report_request req = {.site = site,
                               .kind = is_year ? DCEM_PERIOD_YEAR : DCEM_PERIOD_MONTH,
                               .first_month = is_year ? period * 12 : period,
                               .as_of_day = -1,
                               .now_ms = c->now_ms,
                               .generator = "dcem-collector " DCEM_VERSION " (HTTP API)"};
    dcem_report *r = NULL;
    char err[1024];
    int rc;
    if (s) {
        rc = dcem_report_build(c->cfg, c->st, &req, &r, err, sizeof err);
        if (rc == DCEM_EINVAL) return fail(e, 404, "no report: %s", err);
        if (!rc) rc = dcem_report_write(r, dir, DCEM_REPORT_ALL, err, sizeof err);
    } else {
        rc = dcem_report_zone_write(c->cfg, c->st, &req, dir, DCEM_REPORT_ALL, NULL, err,
                                    sizeof err);
        if (rc == DCEM_EINVAL) return fail(e, 404, "no report: %s", err);
    }
    if (rc) {
        dcem_report_free(r);
        if (hit) hit->valid = 0;
        return fail(e, 500, "the report could not be made: %s", err);
    }
    entry *x = hit ? hit : victim;
    memset(x, 0, sizeof *x);
    x->valid = 1;
    snprintf(x->site, sizeof x->site, "%s", site);
    x->is_year = is_year;
    x->period = period;
    x->as_of_day = today;
    x->generated_ms = c->now_ms;
    x->used = cache->tick;
    snprintf(x->verdicts, sizeof x->verdicts, "%s", r ? dcem_report_verdicts(r) : "");
    dcem_report_free(r);
    DCEM_LOGI("api", "report %s written for %s", dir, s ? site : "the zone");
    *out = x;
    return 200;
}

int dcem_api_report_dir(dcem_api_reports *cache, const dcem_api_ctx *c,
                        const dcem_collector_site *s, int is_year, long long period, char *dir,
                        size_t dirlen, dcem_api_error *e)
{
    entry *x;
    return get_report(cache, c, s, is_year, period, dir, dirlen, &x, e);
}

int dcem_api_report_lists(const char *dir, const char *name)
{
    char p[DCEM_COLLECTOR_PATH_MAX + 256];
    snprintf(p, sizeof p, "%s/%s", dir, DCEM_MANIFEST_NAME);
    if (!strcmp(name, DCEM_MANIFEST_NAME)) return file_exists(dir, name);
    return dcem_manifest_lists(p, name);
}

/* The URL of a site's report (or of the zone report: site ""), or of a file of it. */
static void url_of(char *b, size_t n, const char *site, int is_year, long long period,
                   const char *file)
{
    char name[32];
    period_name(is_year, period, name, sizeof name);
    if (*site)
        snprintf(b, n, "/api/v1/sites/%s/reports/%s%s%s", site, name, file ? "/" : "",
                 file ? file : "");
    else
        snprintf(b, n, "/api/v1/zone/reports/%s%s%s", name, file ? "/" : "", file ? file : "");
}

int dcem_api_view_report(dcem_api_reports *cache, const dcem_api_ctx *c,
                         const dcem_collector_site *s, int is_year, long long period, cJSON **out,
                         dcem_api_error *e)
{
    char dir[DCEM_COLLECTOR_PATH_MAX + 128], name[32], url[256];
    entry *x;
    int status = get_report(cache, c, s, is_year, period, dir, sizeof dir, &x, e);
    if (status != 200) return status;
    char path[sizeof dir + 32], *buf = NULL, why[256];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", dir, DCEM_MANIFEST_NAME);
    if (dcem_io_read_file(path, &buf, &len, why, sizeof why))
        return fail(e, 500, "the report's manifest: %s", why);
    const char *site = s ? s->ledger->site : "";
    dcem_zone z;
    dcem_zone_init(&z, clock_site(c, s)->tz); /* get_report answered: there is one */
    long long first = is_year ? period * 12 : period;
    int64_t end = dcem_zone_month_start(&z, first + (is_year ? 12 : 1));
    int64_t as_of = dcem_zone_day_start(&z, x->as_of_day);
    period_name(is_year, period, name, sizeof name);
    cJSON *o = cJSON_CreateObject();
    if (s)
        cJSON_AddStringToObject(o, "site", site);
    else
        cJSON_AddBoolToObject(o, "zone", 1);
    cJSON_AddStringToObject(o, "period", name);
    cJSON_AddStringToObject(o, "kind", is_year ? "year" : "month");
    cJSON_AddItemToObject(o, "as_of", dcem_json_time(as_of < end ? as_of : end, &z));
    cJSON_AddItemToObject(o, "generated_at", dcem_json_time(x->generated_ms, &z));
    cJSON *vs = s ? cJSON_AddArrayToObject(o, "verdicts") : NULL; /* the zone: none (x's "") */
    for (const char *p = x->verdicts; *p;) {
        size_t n = strcspn(p, " ");
        char v[64];
        if (n && n < sizeof v) {
            memcpy(v, p, n);
            v[n] = '\0';
            cJSON_AddItemToArray(vs, cJSON_CreateString(v));
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    cJSON *files = cJSON_AddArrayToObject(o, "files");
    for (size_t at = 0; at < len && files;) {
        const char *line = buf + at, *nl = memchr(line, '\n', len - at);
        size_t ll = nl ? (size_t)(nl - line) : len - at;
        at += ll + 1;
        char hex[65];
        const char *fname;
        size_t fl;
        char fn[DCEM_API_FILE_MAX];
        if (dcem_api_manifest_line(line, ll, hex, &fname, &fl) || fl >= sizeof fn) continue;
        memcpy(fn, fname, fl);
        fn[fl] = '\0';
        char fp[sizeof dir + DCEM_API_FILE_MAX + 2];
        struct stat st;
        snprintf(fp, sizeof fp, "%s/%s", dir, fn);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", fn);
        cJSON_AddNumberToObject(f, "bytes", stat(fp, &st) ? -1.0 : (double)st.st_size);
        cJSON_AddStringToObject(f, "sha256", hex);
        url_of(url, sizeof url, site, is_year, period, fn);
        cJSON_AddStringToObject(f, "url", url);
        cJSON_AddItemToArray(files, f);
    }
    free(buf);
    url_of(url, sizeof url, site, is_year, period, DCEM_MANIFEST_NAME);
    cJSON_AddStringToObject(o, "manifest", url);
    if (!files) {
        cJSON_Delete(o);
        return fail(e, 500, "out of memory");
    }
    *out = o;
    return 200;
}

/* ---- the periods there is something to report of ---- */

typedef struct keys_ctx {
    long long key[1200];
    size_t n;
} keys_ctx;

static int take_key(void *arg, int64_t key, const char *json, int64_t computed_ms)
{
    (void)json, (void)computed_ms;
    keys_ctx *k = arg;
    if (k->n < sizeof k->key / sizeof k->key[0]) k->key[k->n++] = key;
    return 0;
}

static int site_periods(const dcem_api_ctx *c, const dcem_collector_site *s, cJSON *arr,
                        keys_ctx *years, keys_ctx *months)
{
    const char *site = s->ledger->site;
    years->n = months->n = 0;
    if (dcem_store_figures(c->st, site, DCEM_PERIOD_YEAR, 1970, 10000, take_key, years) ||
        dcem_store_figures(c->st, site, DCEM_PERIOD_MONTH, 1970 * 12, 10000 * 12, take_key, months))
        return -1;
    dcem_zone z;
    dcem_zone_init(&z, s->tz);
    int64_t midnight = dcem_zone_day_start(&z, dcem_zone_day(&z, c->now_ms));
    char name[32], url[256];
    /* each year, then its months: those that start before the last midnight */
    for (size_t i = 0; i < years->n; i++) {
        long long y = years->key[i];
        for (size_t m = 0; m <= months->n; m++) {
            int is_year = m == 0;
            long long p = is_year ? y : months->key[m - 1];
            if (!is_year && p / 12 != y) continue;
            if (dcem_zone_month_start(&z, is_year ? y * 12 : p) >= midnight) continue;
            cJSON *j = cJSON_CreateObject();
            period_name(is_year, p, name, sizeof name);
            cJSON_AddStringToObject(j, "period", name);
            cJSON_AddStringToObject(j, "kind", is_year ? "year" : "month");
            url_of(url, sizeof url, site, is_year, p, NULL);
            cJSON_AddStringToObject(j, "url", url);
            cJSON_AddItemToArray(arr, j);
        }
    }
    return 0;
}

static int by_site(const void *a, const void *b)
{
    const dcem_collector_site *x = *(const dcem_collector_site *const *)a;
    const dcem_collector_site *y = *(const dcem_collector_site *const *)b;
    return strcmp(x->ledger->site, y->ledger->site);
}

int dcem_api_view_report_periods(const dcem_api_ctx *c, const dcem_collector_site *s, cJSON **out,
                                 dcem_api_error *e)
{
    keys_ctx *years = malloc(sizeof *years), *months = malloc(sizeof *months);
    cJSON *o = cJSON_CreateObject();
    int failed = !years || !months || !o;
    if (s) {
        cJSON_AddStringToObject(o, "site", s->ledger->site);
        cJSON *arr = cJSON_AddArrayToObject(o, "periods");
        failed = failed || !arr || site_periods(c, s, arr, years, months);
    } else {
        const dcem_collector_site *sorted[DCEM_COLLECTOR_MAX_SITES];
        for (size_t i = 0; i < c->cfg->n_sites; i++)
            sorted[i] = &c->cfg->sites[i];
        qsort(sorted, c->cfg->n_sites, sizeof *sorted, by_site);
        cJSON *arr = cJSON_AddArrayToObject(o, "reports");
        for (size_t i = 0; i < c->cfg->n_sites && !failed; i++) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "site", sorted[i]->ledger->site);
            cJSON *ps = cJSON_AddArrayToObject(j, "periods");
            cJSON_AddItemToArray(arr, j);
            failed = !arr || !ps || site_periods(c, sorted[i], ps, years, months);
        }
    }
    free(years);
    free(months);
    if (failed) {
        cJSON_Delete(o);
        return fail(e, 500, "the store failed: %s", dcem_store_error(c->st));
    }
    *out = o;
    return 200;
}
