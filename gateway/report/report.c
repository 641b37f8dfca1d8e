#include "report.h"
#include "counter.h"
#include "dcem_io.h"
#include "engine.h"
#include "errors.h"
#include "parse.h"
#include "report_private.h"
#include "report_xlsx.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONTEXT_READINGS DCEM_REPORT_CONTEXT_READINGS

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

int dcem_report_parse_formats(const char *list, unsigned *formats, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"xlsx", DCEM_REPORT_XLSX}, {"csv", DCEM_REPORT_CSV}, {"json", DCEM_REPORT_JSON}};
    *formats = 0;
    for (const char *p = list;;) {
        size_t n = strcspn(p, ",");
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (n == strlen(names[i].name) && !memcmp(p, names[i].name, n)) bit = names[i].bit;
        if (!bit)
            return fail(err, errlen, DCEM_EINVAL,
                        "--format: '%.*s' is not a format (xlsx, csv, json)",
                        (int)(n < 32 ? n : 32), p);
        *formats |= bit;
        if (!p[n]) break;
        p += n + 1;
    }
    return 0;
}

/* ---- building ---- */

/* The ledger file of site: <sites>/<site>.yaml when it is that site's,
 * otherwise the *.yaml of the sites directory whose ledger names it (the
 * collector loads every *.yaml there, whatever its name). */
static int find_ledger_file(const dcem_collector_config *cfg, const char *site, char *path,
                            size_t n, char *err, size_t errlen)
{
    dcem_site *tmp = malloc(sizeof *tmp);
    if (!tmp) return fail(err, errlen, DCEM_ENOMEM, "out of memory");
    char e[512];
    snprintf(path, n, "%s/%s.yaml", cfg->sites_dir, site);
    if (!dcem_io_load_site(path, tmp, e, sizeof e) && !strcmp(tmp->site, site)) {
        free(tmp);
        return 0;
    }
    int found = 0;
    DIR *d = opendir(cfg->sites_dir);
    for (struct dirent *de; d && !found && (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".yaml") || de->d_name[0] == '.') continue;
        snprintf(path, n, "%s/%s", cfg->sites_dir, de->d_name);
        found = !dcem_io_load_site(path, tmp, e, sizeof e) && !strcmp(tmp->site, site);
    }
    if (d) closedir(d);
    free(tmp);
    if (found) return 0;
    return fail(err, errlen, DCEM_EIO,
                "%s: no ledger file of site %s to pin (changed since the config was loaded?)",
                cfg->sites_dir, site);
}

/* The absolute path of a file: the report names its inputs for an inspector
 * who runs dcem-audit elsewhere, not relative to where dcem-report ran.
 * (getcwd, not the XSI realpath: symbolic links are left as they are.) */
static int absolute(const char *path, char *out, size_t n, char *err, size_t errlen)
{
    char cwd[DCEM_REPORT_PATH_MAX];
    int w;
    if (path[0] == '/') {
        w = snprintf(out, n, "%s", path);
    } else {
        if (!getcwd(cwd, sizeof cwd))
            return fail(err, errlen, DCEM_EIO, "%s: %s", path, strerror(errno));
        while (path[0] == '.' && path[1] == '/')
            path += 2;
        w = snprintf(out, n, "%s/%s", strcmp(cwd, "/") ? cwd : "", path);
    }
    return w < 0 || (size_t)w >= n ? fail(err, errlen, DCEM_EIO, "%s: path too long", path) : 0;
}

typedef struct scan_ctx {
    dcem_report *r;
    struct run {
        int open;
        dcem_report_event ev;
    } * runs; /* per meter: the estimated run being extended */
} scan_ctx;

static void add_event(dcem_report *r, const dcem_report_event *ev)
{
    if (r->n_events == DCEM_REPORT_MAX_EVENTS) {
        r->events_dropped++;
        return;
    }
    r->events[r->n_events++] = *ev;
}

static void close_run(scan_ctx *c, int meter)
{
    if (!c->runs[meter].open) return;
    add_event(c->r, &c->runs[meter].ev);
    c->runs[meter].open = 0;
}

static int scan_interval(void *arg, const char *meter, const dcem_interval *iv)
{
    scan_ctx *c = arg;
    dcem_report *r = c->r;
    int i = dcem_site_find_meter(r->ledger, meter, strlen(meter));
    if (i < 0) return 0; /* not in the ledger: it enters no figure */
    dcem_store_keys k;
    dcem_store_period_keys(&r->zone, iv->start_ms, &k);
    int est = (iv->flags & DCEM_SEG_ESTIMATED) != 0, integ = (iv->flags & DCEM_SEG_INTEGRATED) != 0;
    size_t nm = r->ledger->n_meters;
    int p = r->kind == DCEM_PERIOD_YEAR ? (int)(k.month - r->first_month) : 0;
    if (p >= 0 && p < r->n_periods) {
        r->est_iv[(size_t)p * nm + (size_t)i] += est;
        r->int_iv[(size_t)p * nm + (size_t)i] += integ;
    }
    if (r->kind == DCEM_PERIOD_YEAR) {
        r->est_iv[12 * nm + (size_t)i] += est;
        r->int_iv[12 * nm + (size_t)i] += integ;
    }
    struct run *run = &c->runs[i];
    if (est) {
        if (run->open && run->ev.to_ms == iv->start_ms) {
            run->ev.to_ms = iv->end_ms;
            run->ev.count++;
            run->ev.ukwh += iv->estimated_ukwh[dcem_span_of_kind(r->kind)];
            run->ev.cause |= iv->flags & DCEM_SEG_ESTIMATED;
        } else {
            close_run(c, i);
            run->open = 1;
            run->ev = (dcem_report_event){.meter = i,
                                          .kind = EV_ESTIMATED,
                                          .cause = iv->flags & DCEM_SEG_ESTIMATED,
                                          .from_ms = iv->start_ms,
                                          .to_ms = iv->end_ms,
                                          .count = 1,
                                          .ukwh = iv->estimated_ukwh[dcem_span_of_kind(r->kind)]};
        }
    } else {
        close_run(c, i);
    }
    const int counts[] = {
        [EV_DISCARDED] = iv->discarded, [EV_ROLLOVER] = iv->rollovers, [EV_RESET] = iv->resets};
    for (int kind = EV_DISCARDED; kind < EV_COUNT; kind++)
        if (counts[kind] > 0)
            add_event(r, &(dcem_report_event){.meter = i,
                                              .kind = kind,
                                              .from_ms = iv->start_ms,
                                              .to_ms = iv->end_ms,
                                              .count = counts[kind]});
    return 0;
}

static int by_time(const void *a, const void *b)
{
    const dcem_report_event *x = a, *y = b;
    if (x->from_ms != y->from_ms) return x->from_ms < y->from_ms ? -1 : 1;
    if (x->meter != y->meter) return x->meter < y->meter ? -1 : 1;
    return x->kind - y->kind;
}

static int scan_events(dcem_report *r, char *err, size_t errlen)
{
    size_t nm = r->ledger->n_meters ? r->ledger->n_meters : 1;
    r->est_iv = calloc((size_t)r->n_periods * nm, sizeof *r->est_iv);
    r->int_iv = calloc((size_t)r->n_periods * nm, sizeof *r->int_iv);
    r->events = malloc(DCEM_REPORT_MAX_EVENTS * sizeof *r->events);
    scan_ctx c = {.r = r, .runs = calloc(nm, sizeof *c.runs)};
    if (!r->est_iv || !r->int_iv || !r->events || !c.runs) {
        free(c.runs);
        return fail(err, errlen, DCEM_ENOMEM, "out of memory");
    }
    int rc =
        dcem_store_intervals(r->st, r->ledger->site, r->start_ms, r->as_of_ms, scan_interval, &c);
    for (size_t i = 0; i < r->ledger->n_meters; i++)
        close_run(&c, (int)i);
    free(c.runs);
    if (rc)
        return fail(err, errlen, DCEM_ESTORAGE, "reading the intervals of %s: %s", r->ledger->site,
                    dcem_store_error(r->st));
    qsort(r->events, r->n_events, sizeof *r->events, by_time);
    return 0;
}

static int compute_figures(dcem_report *r, char *err, size_t errlen)
{
    dcem_engine *e = dcem_engine_new(r->cfg, r->st);
    if (!e) return fail(err, errlen, DCEM_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < r->n_periods && !rc; i++) {
        int is_year = r->kind == DCEM_PERIOD_YEAR && i == 12;
        long long m = is_year ? r->first_month : r->first_month + i;
        r->doc_text[i] = dcem_engine_period_json(
            e, r->ledger->site, is_year ? DCEM_PERIOD_YEAR : DCEM_PERIOD_MONTH, m, r->as_of_ms);
        r->doc[i] = r->doc_text[i] ? cJSON_Parse(r->doc_text[i]) : NULL;
        if (!r->doc[i])
            rc =
                fail(err, errlen, DCEM_ESTORAGE, "computing the figures of %s: %s", r->ledger->site,
                     *dcem_store_error(r->st) ? dcem_store_error(r->st) : "out of memory");
    }
    dcem_engine_free(e);
    if (rc) return rc;
    /* the verdicts of the report's own period, for the caller to print */
    r->verdicts =
        dcem_report_join(cJSON_GetObjectItemCaseSensitive(r->doc[r->n_periods - 1], "verdicts"));
    return r->verdicts ? 0 : fail(err, errlen, DCEM_ENOMEM, "out of memory");
}

int dcem_report_build(const dcem_collector_config *cfg, dcem_store *st,
                      const dcem_report_request *req, dcem_report **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!req->site || (req->kind != DCEM_PERIOD_MONTH && req->kind != DCEM_PERIOD_YEAR) ||
        req->first_month < 1970 * 12 || req->first_month >= 10000 * 12 ||
        (req->kind == DCEM_PERIOD_YEAR && req->first_month % 12))
        return fail(err, errlen, DCEM_EINVAL,
                    "a report is of one site for a month or a year (1970-9999)");
    const dcem_collector_site *cs = dcem_collector_site_find(cfg, req->site);
    if (!cs) {
        char ids[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < cfg->n_sites && used + 1 < sizeof ids; i++) {
            int w = snprintf(ids + used, sizeof ids - used, "%s%s", i ? ", " : "",
                             cfg->sites[i].ledger->site);
            if (w < 0) break;
            used += (size_t)w;
        }
        if (used >= sizeof ids) used = sizeof ids - 1;
        return fail(err, errlen, DCEM_ENOTFOUND, "no site '%.64s' in %s (its sites: %s)", req->site,
                    cfg->file, cfg->n_sites ? ids : "none");
    }
    dcem_report *r = calloc(1, sizeof *r);
    if (!r) return fail(err, errlen, DCEM_ENOMEM, "out of memory");
    r->cfg = cfg;
    r->ledger = cs->ledger;
    r->pol = cfg->policy;
    r->st = st;
    r->kind = req->kind;
    r->first_month = req->first_month;
    r->n_periods = req->kind == DCEM_PERIOD_YEAR ? 13 : 1;
    r->generated_ms = req->now_ms - req->now_ms % 1000; /* shown to the second */
    r->pruned_before_ms = INT64_MIN;
    snprintf(r->generator, sizeof r->generator, "%s", req->generator ? req->generator : "dcem");
    dcem_zone_init(&r->zone, cs->tz);
    int y = (int)(req->first_month / 12), m = (int)(req->first_month % 12) + 1; /* checked above */
    if (req->kind == DCEM_PERIOD_YEAR)
        snprintf(r->period, sizeof r->period, "%04d", y);
    else
        snprintf(r->period, sizeof r->period, "%04d-%02d", y, m);
    snprintf(r->base, sizeof r->base, "%s-%s", r->ledger->site, r->period);
    r->start_ms = dcem_zone_month_start(&r->zone, req->first_month);
    r->end_ms = dcem_zone_month_start(&r->zone, req->first_month + (r->n_periods == 13 ? 12 : 1));

    int64_t today = dcem_zone_day(&r->zone, req->now_ms);
    int64_t as_of_day = req->as_of_day >= 0 ? req->as_of_day : today;
    int rc = 0;
    char when[40];
    if (as_of_day > today) {
        dcem_report_time(r, dcem_zone_day_start(&r->zone, today), when, sizeof when);
        rc = fail(err, errlen, DCEM_EINVAL, "--as-of is after today (%.10s in %s)", when,
                  r->ledger->timezone);
    }
    r->as_of_ms = dcem_zone_day_start(&r->zone, as_of_day);
    if (!rc && r->as_of_ms <= r->start_ms) {
        dcem_report_time(r, r->as_of_ms, when, sizeof when);
        rc = fail(err, errlen, DCEM_EINVAL,
                  "%s starts at or after %s, the time data are counted to: nothing to report yet",
                  r->period, when);
    }
    if (r->as_of_ms > r->end_ms) r->as_of_ms = r->end_ms;
    if (!rc) rc = compute_figures(r, err, errlen);
    if (!rc) rc = scan_events(r, err, errlen);
    char ledger[DCEM_REPORT_PATH_MAX];
    if (!rc) rc = find_ledger_file(cfg, r->ledger->site, ledger, sizeof ledger, err, errlen);
    if (!rc) rc = absolute(cfg->policy_file, r->policy_file, sizeof r->policy_file, err, errlen);
    if (!rc) rc = absolute(ledger, r->ledger_file, sizeof r->ledger_file, err, errlen);
    if (!rc) rc = dcem_sha256_file(r->policy_file, r->policy_sha, err, errlen);
    if (!rc) rc = dcem_sha256_file(r->ledger_file, r->ledger_sha, err, errlen);
    if (rc) {
        dcem_report_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---- the readings export ---- */

typedef struct ctx_row {
    int64_t t_ms;
    const char *meter; /* the ledger's id */
    int has_kwh, has_kw;
    double kwh, kw, ratio;
} ctx_row;

typedef struct rows_ctx {
    const char *meter;
    ctx_row *rows; /* the ring of the last CONTEXT_READINGS, or the first ones */
    size_t n, next;
    int first; /* keep the first rows and stop, instead of the last ones */
} rows_ctx;

static int keep_row(void *arg, const dcem_store_reading *rd)
{
    rows_ctx *c = arg;
    if (!rd->has_kwh && !rd->has_kw) return 0;
    ctx_row row = {rd->t_ms, c->meter, rd->has_kwh, rd->has_kw, rd->kwh, rd->kw, rd->ratio};
    if (c->first) {
        c->rows[c->n++] = row;
        return c->n == CONTEXT_READINGS ? 1 : 0; /* enough: stop the walk */
    }
    c->rows[c->next] = row;
    c->next = (c->next + 1) % CONTEXT_READINGS;
    if (c->n < CONTEXT_READINGS) c->n++;
    return 0;
}

static int by_row_time(const void *a, const void *b)
{
    const ctx_row *x = a, *y = b;
    if (x->t_ms != y->t_ms) return x->t_ms < y->t_ms ? -1 : 1;
    return strcmp(x->meter, y->meter);
}

/* One CSV row exactly as `dcem-collector export` prints it. */
static int put_row(FILE *f, const dcem_store_reading *rd)
{
    char row[DCEM_STORE_CSV_ROW_MAX];
    int n = dcem_store_reading_csv(rd, row, sizeof row);
    return n < 0 || fwrite(row, 1, (size_t)n, f) != (size_t)n ? -1 : 0;
}

typedef struct main_ctx {
    FILE *f;
    long long rows;
    int failed;
} main_ctx;

static int main_row(void *arg, const dcem_store_reading *rd)
{
    main_ctx *c = arg;
    if (!rd->has_kwh && !rd->has_kw) return 0;
    if (put_row(c->f, rd)) {
        c->failed = 1;
        return -1;
    }
    c->rows++;
    return 0;
}

/* The context rows of every meter before from (last ones) or from to on
 * (first ones), sorted by (time, meter), into *rows (caller frees). */
static int context_rows(dcem_report *r, int after, int64_t at, ctx_row **rows, size_t *n, char *err,
                        size_t errlen)
{
    size_t nm = r->ledger->n_meters;
    int64_t reach = (r->pol->data.max_gap_days + 1) * DCEM_MS_PER_DAY;
    *n = 0;
    *rows = malloc((nm ? nm : 1) * CONTEXT_READINGS * sizeof **rows);
    if (!*rows) return fail(err, errlen, DCEM_ENOMEM, "out of memory");
    for (size_t i = 0; i < nm; i++) {
        ctx_row ring[CONTEXT_READINGS];
        rows_ctx c = {.meter = r->ledger->meters[i].id, .rows = ring, .first = after};
        int rc;
        if (after) {
            rc = dcem_store_export(r->st, r->ledger->site, c.meter, at, at + reach, keep_row, &c);
            if (rc == 1) rc = 0;
        } else {
            /* widen the window backwards until the meter has enough rows:
             * most meters read every interval, so one day is plenty */
            for (int64_t w = DCEM_MS_PER_DAY;; w = w * 4 < reach ? w * 4 : reach) {
                c.n = c.next = 0;
                rc = dcem_store_export(r->st, r->ledger->site, c.meter, at - w, at, keep_row, &c);
                if (rc || c.n == CONTEXT_READINGS || w == reach) break;
            }
        }
        if (rc)
            return fail(err, errlen, DCEM_ESTORAGE, "exporting the readings of %s: %s", c.meter,
                        dcem_store_error(r->st));
        size_t start = c.n < CONTEXT_READINGS || after ? 0 : c.next;
        for (size_t k = 0; k < c.n; k++)
            (*rows)[(*n)++] = ring[(start + k) % CONTEXT_READINGS];
    }
    qsort(*rows, *n, sizeof **rows, by_row_time);
    return 0;
}

static int write_rows(FILE *f, const ctx_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dcem_store_reading rd = {.meter = rows[i].meter, .t_ms = rows[i].t_ms,
                                 .has_kwh = rows[i].has_kwh, .has_kw = rows[i].has_kw,
                                 .kwh = rows[i].kwh, .kw = rows[i].kw, .ratio = rows[i].ratio};
        if (put_row(f, &rd)) return -1;
    }
    return 0;
}

int dcem_report_close_synced(FILE *f)
{
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    return (fclose(f) != 0 || bad) ? -1 : 0;
}

/* readings.csv: for the year to date of the period (the cap needs it) up to
 * as_of, plus each meter's context rows on either side. */
static int export_readings(dcem_report *r, const char *path, char *err, size_t errlen)
{
    int64_t from = dcem_zone_month_start(&r->zone, r->first_month - r->first_month % 12);
    int64_t to = r->as_of_ms;
    r->export_from_ms = from;
    r->export_to_ms = to;
    if (r->cfg->store.retention_days > 0)
        r->pruned_before_ms = r->generated_ms - r->cfg->store.retention_days * DCEM_MS_PER_DAY;
    ctx_row *head = NULL, *tail = NULL;
    size_t n_head = 0, n_tail = 0;
    int rc = context_rows(r, 0, from, &head, &n_head, err, errlen);
    if (!rc) rc = context_rows(r, 1, to, &tail, &n_tail, err, errlen);
    FILE *f = rc ? NULL : fopen(path, "wb");
    if (!rc && !f) rc = fail(err, errlen, DCEM_EIO, "%s: %s", path, strerror(errno));
    main_ctx m = {.f = f};
    if (!rc && (fputs(DCEM_STORE_CSV_HEADER, f) < 0 || write_rows(f, head, n_head))) m.failed = 1;
    if (!rc && !m.failed &&
        dcem_store_export(r->st, r->ledger->site, NULL, from, to, main_row, &m) && !m.failed)
        rc = fail(err, errlen, DCEM_ESTORAGE, "exporting the readings of %s: %s", r->ledger->site,
                  dcem_store_error(r->st));
    if (!rc && !m.failed && write_rows(f, tail, n_tail)) m.failed = 1;
    if (f && dcem_report_close_synced(f) && !rc) m.failed = 1;
    if (!rc && m.failed) rc = fail(err, errlen, DCEM_EIO, "%s: write failed", path);
    free(head);
    free(tail);
    r->readings_rows = m.rows + (long long)(n_head + n_tail);
    r->context_rows = (long long)(n_head + n_tail);
    r->exported = !rc;
    return rc;
}

/* ---- the output directory ---- */

static int mkdir_parents(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int rc = mkdir(path, 0755) && errno != EEXIST ? -1 : 0;
        *p = '/';
        if (rc) return -1;
    }
    return 0;
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Whether dir may receive the report: absent (*state 0), an empty
 * directory (1), or one holding exactly an earlier report (2). */
static int check_dir(const char *dir, int *state, char *err, size_t errlen)
{
    struct stat sb;
    if (lstat(dir, &sb)) {
        if (errno == ENOENT) return *state = 0, 0;
        return fail(err, errlen, DCEM_EINVAL, "%s: %s", dir, strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode))
        return fail(err, errlen, DCEM_EINVAL, "%s exists and is not a directory", dir);
    char manifest[4096];
    snprintf(manifest, sizeof manifest, "%s/%s", dir, DCEM_MANIFEST_NAME);
    DIR *d = opendir(dir);
    if (!d) return fail(err, errlen, DCEM_EINVAL, "%s: %s", dir, strerror(errno));
    int rc = 0;
    *state = 1;
    for (struct dirent *de; !rc && (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        *state = 2;
        if (!strcmp(de->d_name, DCEM_MANIFEST_NAME)) continue;
        if (!dcem_manifest_lists(manifest, de->d_name))
            rc = fail(err, errlen, DCEM_EINVAL,
                      "%s is not empty and %s is not part of an earlier report (not in its %s): "
                      "give a new or empty directory",
                      dir, de->d_name, DCEM_MANIFEST_NAME);
    }
    closedir(d);
    if (!rc && *state == 2 && access(manifest, R_OK))
        rc = fail(err, errlen, DCEM_EINVAL,
                  "%s is not empty and holds no %s: give a new or empty directory", dir,
                  DCEM_MANIFEST_NAME);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int dcem_report_list_add(dcem_report_file_list *l, const char *name)
{
    if (l->n == DCEM_REPORT_MAX_FILES) return DCEM_EFULL;
    char *s = strdup(name);
    if (!s) return DCEM_ENOMEM;
    l->name[l->n++] = s;
    return 0;
}

void dcem_report_list_free(dcem_report_file_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->name[i]);
    l->n = 0;
}

int dcem_report_put_text(const char *tmp, const char *name, const char *text,
                         dcem_report_file_list *l, char *err, size_t errlen)
{
    char path[DCEM_REPORT_PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "wb");
    int bad = !f || fputs(text, f) < 0 || fputc('\n', f) == EOF;
    if (f && dcem_report_close_synced(f)) bad = 1;
    if (bad) return fail(err, errlen, DCEM_EIO, "%s: %s", path, strerror(errno));
    return dcem_report_list_add(l, name);
}

int dcem_report_put_csv(const char *tmp, const char *name, const dcem_rt_table *t,
                        dcem_report_file_list *l, char *err, size_t errlen)
{
    char path[DCEM_REPORT_PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "wb");
    if (!f) return fail(err, errlen, DCEM_EIO, "%s: %s", path, strerror(errno));
    int bad = dcem_rt_write_csv(t, f) != 0;
    if (dcem_report_close_synced(f)) bad = 1;
    if (bad) return fail(err, errlen, DCEM_EIO, "%s: write failed", path);
    return dcem_report_list_add(l, name);
}

int dcem_report_put_manifest(const char *tmp, dcem_report_file_list *l, char *err, size_t errlen)
{
    qsort(l->name, l->n, sizeof *l->name, by_name);
    int rc = dcem_manifest_write(tmp, (const char *const *)l->name, l->n, err, errlen);
    return rc ? rc : dcem_report_list_add(l, DCEM_MANIFEST_NAME);
}

static int write_files(dcem_report *r, const char *tmp, unsigned formats, char *err, size_t errlen)
{
    char path[4096], name[256];
    snprintf(path, sizeof path, "%s/readings.csv", tmp);
    int rc = export_readings(r, path, err, errlen);
    if (!rc) rc = dcem_report_list_add(&r->files, "readings.csv");
    dcem_rt_table *tables[DCEM_REPORT_N_TABLES] = {0};
    if (!rc && (formats & (DCEM_REPORT_XLSX | DCEM_REPORT_CSV)) &&
        (rc = dcem_report_tables(r, tables)))
        fail(err, errlen, rc, "laying out the tables: %s", dcem_strerror(rc));
    if (!rc && (formats & DCEM_REPORT_XLSX)) {
        snprintf(name, sizeof name, "%s.xlsx", r->base);
        snprintf(path, sizeof path, "%s/%s", tmp, name);
        char title[256], subject[320];
        snprintf(title, sizeof title, "%s %s %s", r->ledger->site, r->period,
                 r->kind == DCEM_PERIOD_YEAR ? "年度能源消费报告 Annual energy consumption report"
                                             : "月度能耗报告 Monthly energy report");
        snprintf(subject, sizeof subject, "%s %s", r->pol->document, r->pol->name);
        dcem_report_xlsx_props props = {.title = title,
                                        .subject = subject,
                                        .keywords = "dcem, PUE, 绿电, energy",
                                        .comments = r->generator,
                                        .created = (time_t)(r->generated_ms / 1000)};
        rc = dcem_report_xlsx_write(path, tmp, tables, DCEM_REPORT_N_TABLES, &props, err, errlen);
        if (!rc) rc = dcem_report_list_add(&r->files, name);
    }
    for (size_t i = 0; !rc && (formats & DCEM_REPORT_CSV) && i < DCEM_REPORT_N_TABLES; i++) {
        snprintf(name, sizeof name, "%s-%s.csv", r->base, tables[i]->file);
        rc = dcem_report_put_csv(tmp, name, tables[i], &r->files, err, errlen);
    }
    for (size_t i = 0; i < DCEM_REPORT_N_TABLES; i++)
        dcem_rt_free(tables[i]);
    if (!rc && (formats & DCEM_REPORT_JSON)) {
        char *text = dcem_report_json_text(r);
        if (!text) return fail(err, errlen, DCEM_ENOMEM, "out of memory");
        snprintf(name, sizeof name, "%s.json", r->base);
        rc = dcem_report_put_text(tmp, name, text, &r->files, err, errlen);
        free(text);
    }
    return rc ? rc : dcem_report_put_manifest(tmp, &r->files, err, errlen);
}

int dcem_report_dir_write(const char *dir, dcem_report_fill_fn fill, void *ctx, char *err,
                          size_t errlen)
{
    if (err && errlen) *err = 0;
    char d[DCEM_COLLECTOR_PATH_MAX + 64];
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    if (!len || len >= sizeof d - 16 || (len == 1 && dir[0] == '/'))
        return fail(err, errlen, DCEM_EINVAL, "--out '%s': not a usable directory name", dir);
    memcpy(d, dir, len);
    d[len] = 0;
    int state, rc = check_dir(d, &state, err, errlen);
    if (rc) return rc;
    if (mkdir_parents(d))
        return fail(err, errlen, DCEM_EIO, "%s: cannot create its parent: %s", d, strerror(errno));
    char tmp[sizeof d + 16], old[sizeof d + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", d);
    if (!mkdtemp(tmp)) return fail(err, errlen, DCEM_EIO, "%s: %s", tmp, strerror(errno));
    rc = fill(ctx, tmp, err, errlen);
    if (!rc && chmod(tmp, 0755)) rc = fail(err, errlen, DCEM_EIO, "%s: %s", tmp, strerror(errno));
    if (!rc) sync_dir(tmp);
    /* into place: an absent or empty dir is replaced in one rename; an
     * earlier report is moved aside first and removed after */
    old[0] = 0;
    if (!rc && state == 2) {
        snprintf(old, sizeof old, "%s.old-XXXXXX", d);
        if (!mkdtemp(old) || rename(d, old)) {
            rc = fail(err, errlen, DCEM_EIO, "%s: cannot move the earlier report aside: %s", d,
                      strerror(errno));
            if (*old) rmdir(old);
            old[0] = 0;
        }
    }
    if (!rc && rename(tmp, d)) {
        rc = fail(err, errlen, DCEM_EIO, "%s: %s", d, strerror(errno));
        if (*old) rename(old, d);
        old[0] = 0;
    }
    if (rc) {
        remove_tree(tmp);
        return rc;
    }
    if (*old) remove_tree(old);
    char parent[sizeof d];
    snprintf(parent, sizeof parent, "%s", d);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = 0;
    sync_dir(slash ? (*parent ? parent : "/") : ".");
    return 0;
}

typedef struct site_fill {
    dcem_report *r;
    unsigned formats;
} site_fill;

static int fill_site(void *ctx, const char *tmp, char *err, size_t errlen)
{
    site_fill *f = ctx;
    return write_files(f->r, tmp, f->formats, err, errlen);
}

int dcem_report_write(dcem_report *r, const char *dir, unsigned formats, char *err, size_t errlen)
{
    dcem_report_list_free(&r->files);
    r->exported = 0;
    site_fill f = {r, formats};
    return dcem_report_dir_write(dir, fill_site, &f, err, errlen);
}

/* ---- accessors ---- */

const char *dcem_report_base(const dcem_report *r)
{
    return r->base;
}

size_t dcem_report_files(const dcem_report *r, const char *const **names)
{
    *names = (const char *const *)r->files.name;
    return r->files.n;
}

const char *dcem_report_verdicts(const dcem_report *r)
{
    return r->verdicts ? r->verdicts : "";
}

void dcem_report_free(dcem_report *r)
{
    if (!r) return;
    for (int i = 0; i < DCEM_REPORT_MAX_PERIODS; i++) {
        free(r->doc_text[i]);
        cJSON_Delete(r->doc[i]);
    }
    dcem_report_list_free(&r->files);
    free(r->verdicts);
    free(r->est_iv);
    free(r->int_iv);
    free(r->events);
    free(r);
}
