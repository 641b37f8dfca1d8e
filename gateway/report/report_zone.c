/* report_zone.c — the zone report: every site of the collector for one
 * month or year, one row each, ranked by status, with totals. Each row is
 * the site report's own figures (dcem_report_build, so never a second
 * computation), laid out as one table (XLSX and CSV) and JSON, with a
 * SHA-256 manifest, written as a site report is (dcem_report_dir_write).
 * docs/reports.md, "The zone report". */
#include "errors.h"
#include "parse.h"
#include "report_private.h"
#include "report_xlsx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The status of a site: its first verdict in this order, most urgent first;
 * a site with none of them is "in scope" (ranked between). */
static const char *const status_order[] = {
    "cap_exceeded",      "differential_pricing_candidate", "cap_projected_to_exceed",
    "cap_warning",       "insufficient_data",              "green_share_below_threshold",
    "pue_above_limit",   "in_scope",                       "reward_eligible",
    "out_of_scope",
};
#define N_STATUS (sizeof status_order / sizeof status_order[0])

typedef struct zone_row {
    const dcem_site *ledger;
    cJSON *doc; /* the period's dcem-audit/1 object (the site report's last) */
    int rank;   /* index in status_order */
} zone_row;

typedef struct zone {
    const dcem_collector_config *cfg;
    int kind;
    char period[32], base[64], generator[64];
    char policy_file[DCEM_REPORT_PATH_MAX], policy_sha[DCEM_SHA256_HEX];
    int64_t generated_ms;
    zone_row *rows;
    size_t n;
    unsigned formats;
    dcem_report_file_list files;
} zone;

static size_t has_verdict(const cJSON *doc, const char *id)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(doc, "verdicts"))
    {
        if (cJSON_IsString(v) && !strcmp(v->valuestring, id)) return 1;
    }
    return 0;
}

static int status_rank(const cJSON *doc)
{
    for (size_t i = 0; i < N_STATUS; i++)
        if (has_verdict(doc, status_order[i])) return (int)i;
    return (int)N_STATUS;
}

/* A number of the period object (key, or key.sub), or NaN. */
static double num(const cJSON *doc, const char *key, const char *sub)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(doc, key);
    if (sub) o = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, sub) : NULL;
    return cJSON_IsNumber(o) ? o->valuedouble : NAN;
}

static int by_status(const void *a, const void *b)
{
    const zone_row *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return strcmp(x->ledger->site, y->ledger->site);
}

/* ---- the totals ---- */

typedef struct totals {
    size_t sites, in_scope, with_pue;
    double total_kwh, it_kwh, green_kwh, surcharge_cny;
    double pue_total_kwh, pue_it_kwh; /* over the sites that have a PUE */
    size_t count[N_STATUS + 1];       /* sites holding each verdict of status_order */
} totals;

static double add(double sum, double v)
{
    return isnan(v) ? sum : sum + v;
}

static void sum_up(const zone *z, totals *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < z->n; i++) {
        const cJSON *d = z->rows[i].doc;
        t->sites++;
        t->in_scope += has_verdict(d, "in_scope");
        t->total_kwh = add(t->total_kwh, num(d, "total_kwh", NULL));
        t->it_kwh = add(t->it_kwh, num(d, "it_kwh", NULL));
        t->green_kwh = add(t->green_kwh, num(d, "green_kwh", NULL));
        t->surcharge_cny = add(t->surcharge_cny, num(d, "surcharge", "cny"));
        if (!isnan(num(d, "pue", NULL))) {
            t->with_pue++;
            t->pue_total_kwh = add(t->pue_total_kwh, num(d, "total_kwh", NULL));
            t->pue_it_kwh = add(t->pue_it_kwh, num(d, "it_kwh", NULL));
        }
        for (size_t k = 0; k < N_STATUS; k++)
            t->count[k] += has_verdict(d, status_order[k]);
    }
}

static double zone_pue(const totals *t)
{
    return t->pue_it_kwh > 0 ? t->pue_total_kwh / t->pue_it_kwh : NAN;
}

static double zone_green_share(const totals *t)
{
    return t->total_kwh > 0 ? t->green_kwh / t->total_kwh : NAN;
}

/* ---- the table ---- */

static const struct {
    const char *zh, *en;
    double width;
} zone_cols[] = {
    {"数据中心", "Site", 12},
    {"名称", "Name", 28},
    {"状态", "Status", 28},
    {"适用本措施", "In scope", 9},
    {"电能利用效率", "PUE", 9},
    {"绿电占比", "Green share", 9},
    {"当年绿电占比要求", "Green-share threshold", 10},
    {"用电总量", "Total energy (kWh)", 16},
    {"IT设备用电量", "IT energy (kWh)", 16},
    {"批复年用电量", "Approved annual energy (kWh)", 16},
    {"批复用电量使用率", "Cap usage", 9},
    {"预计全年用电量", "Projected year energy (kWh)", 16},
    {"估算差别电价电费", "Estimated surcharge (CNY)", 14},
    {"数据完整率", "Completeness", 9},
    {"结果", "Result", 12},
    {"判定", "Verdicts", 44},
    {"判定代码", "Verdict ids", 30},
};
#define N_ZONE_COLS (sizeof zone_cols / sizeof zone_cols[0])

/* The status in words: "已超出批复用电量 Approved cap exceeded". */
static void status_words(int rank, char *buf, size_t n)
{
    const char *id = rank < (int)N_STATUS ? status_order[rank] : "in_scope";
    snprintf(buf, n, "%s %s", dcem_report_verdict_words(id, 0), dcem_report_verdict_words(id, 1));
}

static int put_num(dcem_rt_table *t, size_t col, double v, int style)
{
    return dcem_rt_num(t, col, v, style); /* NaN: an empty cell */
}

static int site_row(dcem_rt_table *t, const zone_row *row)
{
    const cJSON *d = row->doc;
    char buf[2048];
    int rc = dcem_rt_row(t);
    if (!rc) rc = dcem_rt_text(t, 0, row->ledger->site);
    if (!rc) rc = dcem_rt_text(t, 1, row->ledger->name);
    status_words(row->rank, buf, sizeof buf);
    if (!rc) rc = dcem_rt_text(t, 2, buf);
    if (!rc) rc = dcem_rt_bool(t, 3, has_verdict(d, "in_scope") != 0);
    if (!rc) rc = put_num(t, 4, num(d, "pue", NULL), DCEM_RT_RATIO);
    if (!rc) rc = put_num(t, 5, num(d, "green_share", NULL), DCEM_RT_SHARE);
    if (!rc) rc = put_num(t, 6, num(d, "green_threshold", NULL), DCEM_RT_SHARE);
    if (!rc) rc = put_num(t, 7, num(d, "total_kwh", NULL), DCEM_RT_KWH);
    if (!rc) rc = put_num(t, 8, num(d, "it_kwh", NULL), DCEM_RT_KWH);
    if (!rc) rc = put_num(t, 9, num(d, "cap", "approved_kwh"), DCEM_RT_KWH);
    if (!rc) rc = put_num(t, 10, num(d, "cap", "usage"), DCEM_RT_SHARE);
    if (!rc) rc = put_num(t, 11, num(d, "cap", "projected_kwh"), DCEM_RT_KWH);
    if (!rc) rc = put_num(t, 12, num(d, "surcharge", "cny"), DCEM_RT_CNY);
    if (!rc) rc = put_num(t, 13, num(d, "completeness", NULL), DCEM_RT_SHARE);
    if (!rc)
        rc = dcem_rt_text(t, 14,
                          has_verdict(d, "provisional") ? "临时 Provisional" : "最终 Final");
    size_t used = 0;
    buf[0] = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(d, "verdicts"))
    {
        const char *zh = cJSON_IsString(v) ? dcem_report_verdict_words(v->valuestring, 0) : NULL;
        if (!zh) continue;
        int k = snprintf(buf + used, sizeof buf - used, "%s%s %s", used ? "\n" : "", zh,
                         dcem_report_verdict_words(v->valuestring, 1));
        if (k < 0 || (size_t)k >= sizeof buf - used) break;
        used += (size_t)k;
    }
    if (!rc) rc = dcem_rt_text(t, 15, buf);
    char *ids = dcem_report_join(cJSON_GetObjectItemCaseSensitive(d, "verdicts"));
    if (!ids) return DCEM_ENOMEM;
    if (!rc) rc = dcem_rt_text(t, 16, ids);
    free(ids);
    return rc;
}

static int totals_row(dcem_rt_table *t, const totals *s)
{
    char buf[256];
    int rc = dcem_rt_row(t);
    if (!rc) rc = dcem_rt_text(t, 0, "合计 Total");
    snprintf(buf, sizeof buf, "%zu 个数据中心 %zu sites, %zu 适用 in scope", s->sites, s->sites,
             s->in_scope);
    if (!rc) rc = dcem_rt_text(t, 1, buf);
    if (!rc) rc = put_num(t, 4, zone_pue(s), DCEM_RT_RATIO);
    if (!rc) rc = put_num(t, 5, zone_green_share(s), DCEM_RT_SHARE);
    if (!rc) rc = put_num(t, 7, s->total_kwh, DCEM_RT_KWH);
    if (!rc) rc = put_num(t, 8, s->it_kwh, DCEM_RT_KWH);
    if (!rc) rc = put_num(t, 12, s->surcharge_cny, DCEM_RT_CNY);
    return rc;
}

static int zone_table(const zone *z, dcem_rt_table *t)
{
    t->wrap = 1; /* the verdicts in words, one per line */
    int rc = 0;
    for (size_t j = 0; j < N_ZONE_COLS && !rc; j++)
        rc = dcem_rt_column_add(t, zone_cols[j].zh, zone_cols[j].en, zone_cols[j].width);
    for (size_t i = 0; i < z->n && !rc; i++)
        rc = site_row(t, &z->rows[i]);
    totals s;
    sum_up(z, &s);
    if (!rc) rc = totals_row(t, &s);
    return rc;
}

/* ---- JSON ---- */

static void add_number(cJSON *o, const char *key, double v)
{
    if (isnan(v))
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, v);
}

static char *zone_json(const zone *z)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    char t[40];
    cJSON_AddStringToObject(root, "format", "dcem-zone-report/1");
    cJSON_AddStringToObject(root, "period", z->period);
    cJSON_AddStringToObject(root, "kind", z->kind == DCEM_PERIOD_YEAR ? "year" : "month");
    dcem_format_time(z->generated_ms, 0, t, sizeof t);
    cJSON_AddStringToObject(root, "generated", t);
    cJSON_AddStringToObject(root, "generator", z->generator);
    cJSON *pol = cJSON_AddObjectToObject(root, "policy");
    cJSON_AddStringToObject(pol, "policy", z->cfg->policy->policy);
    cJSON_AddStringToObject(pol, "file", dcem_report_file_name(z->policy_file));
    cJSON_AddStringToObject(pol, "sha256", z->policy_sha);
    cJSON *sites = cJSON_AddArrayToObject(root, "sites");
    for (size_t i = 0; i < z->n; i++) {
        cJSON *s = cJSON_CreateObject();
        char status[256];
        status_words(z->rows[i].rank, status, sizeof status);
        cJSON_AddStringToObject(s, "site", z->rows[i].ledger->site);
        cJSON_AddStringToObject(s, "name", z->rows[i].ledger->name);
        cJSON_AddStringToObject(s, "status",
                                z->rows[i].rank < (int)N_STATUS ? status_order[z->rows[i].rank]
                                                                : "in_scope");
        cJSON_AddStringToObject(s, "status_words", status);
        cJSON_AddBoolToObject(s, "final", has_verdict(z->rows[i].doc, "provisional") == 0);
        cJSON_AddItemToObject(s, "figures", cJSON_Duplicate(z->rows[i].doc, 1));
        cJSON_AddItemToArray(sites, s);
    }
    totals s;
    sum_up(z, &s);
    cJSON *tot = cJSON_AddObjectToObject(root, "totals");
    cJSON_AddNumberToObject(tot, "sites", (double)s.sites);
    cJSON_AddNumberToObject(tot, "in_scope", (double)s.in_scope);
    add_number(tot, "total_kwh", s.total_kwh);
    add_number(tot, "it_kwh", s.it_kwh);
    add_number(tot, "green_kwh", s.green_kwh);
    add_number(tot, "pue", zone_pue(&s));
    cJSON_AddNumberToObject(tot, "pue_sites", (double)s.with_pue);
    add_number(tot, "green_share", zone_green_share(&s));
    add_number(tot, "surcharge_cny", s.surcharge_cny);
    cJSON *counts = cJSON_AddObjectToObject(tot, "sites_with");
    for (size_t k = 0; k < N_STATUS; k++)
        cJSON_AddNumberToObject(counts, status_order[k], (double)s.count[k]);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

/* ---- files ---- */

static int fill_zone(void *ctx, const char *tmp, char *err, size_t errlen)
{
    zone *z = ctx;
    char path[DCEM_REPORT_PATH_MAX + 128], name[128];
    dcem_rt_table *t = dcem_rt_new("zone", "全区 Zone");
    int rc = t ? zone_table(z, t) : DCEM_ENOMEM;
    if (rc) snprintf(err, errlen, "laying out the zone table: %s", dcem_strerror(rc));
    if (!rc && (z->formats & DCEM_REPORT_XLSX)) {
        snprintf(name, sizeof name, "%s.xlsx", z->base);
        snprintf(path, sizeof path, "%s/%s", tmp, name);
        char title[128];
        snprintf(title, sizeof title, "%s 全区数据中心能耗报告 Zone data-center energy report",
                 z->period);
        dcem_report_xlsx_props props = {.title = title,
                                        .subject = z->cfg->policy->document,
                                        .keywords = "dcem, PUE, 绿电, energy, zone",
                                        .comments = z->generator,
                                        .created = (time_t)(z->generated_ms / 1000)};
        dcem_rt_table *tables[1] = {t};
        rc = dcem_report_xlsx_write(path, tmp, tables, 1, &props, err, errlen);
        if (!rc) rc = dcem_report_list_add(&z->files, name);
    }
    if (!rc && (z->formats & DCEM_REPORT_CSV)) {
        snprintf(name, sizeof name, "%s-zone.csv", z->base);
        rc = dcem_report_put_csv(tmp, name, t, &z->files, err, errlen);
    }
    dcem_rt_free(t);
    if (!rc && (z->formats & DCEM_REPORT_JSON)) {
        snprintf(name, sizeof name, "%s.json", z->base);
        char *text = zone_json(z);
        rc = text ? dcem_report_put_text(tmp, name, text, &z->files, err, errlen) : DCEM_ENOMEM;
        free(text);
    }
    return rc ? rc : dcem_report_put_manifest(tmp, &z->files, err, errlen);
}

static void zone_free(zone *z)
{
    for (size_t i = 0; i < z->n; i++)
        cJSON_Delete(z->rows[i].doc);
    free(z->rows);
    dcem_report_list_free(&z->files);
}

int dcem_report_zone_write(const dcem_collector_config *cfg, dcem_store *st,
                           const dcem_report_request *req, const char *dir, unsigned formats,
                           FILE *list, char *err, size_t errlen)
{
    zone z = {.cfg = cfg, .kind = req->kind, .formats = formats, .generated_ms = req->now_ms};
    snprintf(z.generator, sizeof z.generator, "%s", req->generator ? req->generator : "dcem");
    if (!cfg->n_sites) {
        snprintf(err, errlen, "the config has no sites");
        return DCEM_EINVAL;
    }
    if (!(z.rows = calloc(cfg->n_sites, sizeof *z.rows))) return DCEM_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < cfg->n_sites && !rc; i++) {
        dcem_report_request one = *req;
        one.site = cfg->sites[i].ledger->site;
        dcem_report *r = NULL;
        rc = dcem_report_build(cfg, st, &one, &r, err, errlen);
        if (!rc) {
            zone_row *row = &z.rows[z.n];
            row->ledger = r->ledger;
            row->doc = cJSON_Duplicate(r->doc[r->n_periods - 1], 1);
            row->rank = row->doc ? status_rank(row->doc) : 0;
            if (!row->doc) rc = DCEM_ENOMEM;
            else z.n++;
            if (!rc && i == 0) { /* one policy for every site: the config's */
                snprintf(z.period, sizeof z.period, "%s", r->period);
                snprintf(z.policy_file, sizeof z.policy_file, "%s", r->policy_file);
                snprintf(z.policy_sha, sizeof z.policy_sha, "%s", r->policy_sha);
            }
        }
        dcem_report_free(r);
    }
    qsort(z.rows, z.n, sizeof *z.rows, by_status);
    snprintf(z.base, sizeof z.base, "zone-%s", z.period);
    if (!rc) rc = dcem_report_dir_write(dir, fill_zone, &z, err, errlen);
    for (size_t i = 0; !rc && list && i < z.files.n; i++)
        fprintf(list, "%s/%s\n", dir, z.files.name[i]);
    if (!rc && list) {
        totals s;
        sum_up(&z, &s);
        fprintf(list, "%s: %zu sites, %zu in scope, %zu differential-pricing candidates, %zu over "
                      "their cap\n",
                z.base, s.sites, s.in_scope, s.count[1], s.count[0]);
    }
    zone_free(&z);
    return rc;
}
