#include "api_views.h"
#include "errors.h"
#include "meter.h"
#include "parse.h"
#include "period.h"
#include "period_json.h"
#include "policy.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int store_failed(dcem_api_error *e, const dcem_api_ctx *c)
{
    return fail(e, 500, "the store failed: %s", dcem_store_error(c->st));
}

static int no_memory(dcem_api_error *e)
{
    return fail(e, 500, "out of memory");
}

/* A JSON object, or 500 when it could not be made (cJSON returns NULL out
 * of memory, and cJSON_Add* on NULL are no-ops, so one check at the end
 * suffices). */
static int done(cJSON *o, cJSON **out, dcem_api_error *e)
{
    if (!o) return no_memory(e);
    *out = o;
    return 200;
}

static void add_time(cJSON *o, const char *key, int64_t t_ms, dcem_zone *z)
{
    cJSON_AddItemToObject(o, key, dcem_json_time(t_ms, z));
}

static void add_num(cJSON *o, const char *key, double v, int decimals)
{
    cJSON_AddItemToObject(o, key, dcem_json_num(v, decimals));
}

/* "YYYY-MM"; "?" for a month whose name does not fit b (no stored time
 * reaches one: readings beyond the clock's skew are refused) */
static void month_name(long long month, char *b, size_t n)
{
    int w = snprintf(b, n, "%04lld-%02lld", (long long)dcem_floordiv(month, 12),
                     month - 12 * (long long)dcem_floordiv(month, 12) + 1);
    if (w < 0 || (size_t)w >= n) snprintf(b, n, "?");
}

static void day_name(int64_t day, char *b, size_t n)
{
    int64_t y;
    int m, d;
    dcem_civil_from_days(day, &y, &m, &d);
    snprintf(b, n, "%04lld-%02d-%02d", (long long)y, m, d);
}

int64_t dcem_api_instant(const dcem_collector_site *s, const dcem_api_when *w)
{
    if (w->kind == DCEM_API_W_TIME) return w->t_ms;
    dcem_zone z;
    dcem_zone_init(&z, s->tz);
    return dcem_zone_day_start(&z, w->day);
}

/* ---- sites and ledgers ---- */

static void site_fields(cJSON *o, const dcem_collector_config *cfg, const dcem_site *l)
{
    cJSON_AddStringToObject(o, "site", l->site);
    cJSON_AddStringToObject(o, "name", l->name);
    cJSON_AddStringToObject(o, "timezone", l->timezone);
    cJSON_AddNumberToObject(o, "racks", (double)l->racks);
    add_num(o, "rack_power_kw", l->rack_power_kw, 3);
    add_num(o, "approved_annual_kwh", l->approved_annual_kwh, 3);
    add_num(o, "baseline_annual_kwh", l->baseline_annual_kwh, 3);
    cJSON_AddNumberToObject(o, "interval_minutes", (double)l->interval_minutes);
    cJSON_AddBoolToObject(o, "in_scope", dcem_policy_in_scope(cfg->policy, l));
}

static int by_site_id(const void *a, const void *b)
{
    const dcem_collector_site *x = *(const dcem_collector_site *const *)a;
    const dcem_collector_site *y = *(const dcem_collector_site *const *)b;
    return strcmp(x->ledger->site, y->ledger->site);
}

/* The configured sites in id order (ledgers are loaded in file-name order). */
static size_t sites_sorted(const dcem_collector_config *cfg, const dcem_collector_site **out)
{
    for (size_t i = 0; i < cfg->n_sites; i++)
        out[i] = &cfg->sites[i];
    qsort(out, cfg->n_sites, sizeof *out, by_site_id);
    return cfg->n_sites;
}

int dcem_api_view_sites(const dcem_api_ctx *c, int role, const dcem_api_token *t, cJSON **out,
                        dcem_api_error *e)
{
    const dcem_collector_site *sorted[DCEM_COLLECTOR_MAX_SITES];
    size_t n = sites_sorted(c->cfg, sorted);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "sites");
    for (size_t i = 0; i < n; i++) {
        const dcem_site *l = sorted[i]->ledger;
        if (!dcem_api_may_read_site(role, t, l->site)) continue;
        cJSON *s = cJSON_CreateObject();
        site_fields(s, c->cfg, l);
        cJSON_AddNumberToObject(s, "meters", (double)l->n_meters);
        cJSON_AddItemToArray(arr, s);
    }
    return done(o, out, e);
}

int dcem_api_view_site(const dcem_api_ctx *c, const dcem_collector_site *cs, cJSON **out,
                       dcem_api_error *e)
{
    const dcem_site *l = cs->ledger;
    const dcem_policy *p = c->cfg->policy;
    cJSON *o = cJSON_CreateObject();
    site_fields(o, c->cfg, l);
    cJSON *pol = cJSON_AddObjectToObject(o, "policy");
    cJSON_AddStringToObject(pol, "policy", p->policy);
    cJSON_AddStringToObject(pol, "document", p->document);
    add_num(pol, "pue_limit", p->pue.limit, 6);
    cJSON *ms = cJSON_AddArrayToObject(o, "meters");
    for (size_t i = 0; i < l->n_meters; i++) {
        const dcem_meter *m = &l->meters[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", m->id);
        cJSON_AddStringToObject(j, "role", dcem_role_name(m->role));
        cJSON_AddStringToObject(j, "model", m->model);
        cJSON_AddNumberToObject(j, "ct_ratio", m->ct_ratio);
        cJSON_AddNumberToObject(j, "pt_ratio", m->pt_ratio);
        cJSON_AddStringToObject(j, "accuracy_class", m->accuracy_class);
        if (m->calibrated_on[0])
            cJSON_AddStringToObject(j, "calibrated_on", m->calibrated_on);
        else
            cJSON_AddNullToObject(j, "calibrated_on");
        add_num(j, "rated_kw", m->rated_kw, 3);
        add_num(j, "counter_modulo_kwh", m->counter_modulo_kwh, 3);
        add_num(j, "counter_resolution_kwh", m->counter_resolution_kwh, 3);
        cJSON_AddItemToArray(ms, j);
    }
    cJSON *gs = cJSON_AddArrayToObject(o, "green");
    for (size_t i = 0; i < l->n_green; i++) {
        const dcem_green_entry *g = &l->green[i];
        char month[16];
        month_name(g->month, month, sizeof month);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "month", month);
        cJSON_AddStringToObject(j, "kind",
                                g->kind == DCEM_GREEN_CERTIFICATE ? "certificate" : "contract");
        /* a certificate entry counts certificates x 1000 kWh (site.h) */
        add_num(j, "kwh", isnan(g->kwh) ? g->certificates * DCEM_KWH_PER_CERTIFICATE : g->kwh, 3);
        if (isnan(g->kwh))
            add_num(j, "certificates", g->certificates, 0);
        else
            cJSON_AddNullToObject(j, "certificates");
        cJSON_AddItemToArray(gs, j);
    }
    return done(o, out, e);
}

/* ---- figures ---- */

/* Today, this month, this year of the site at now. */
typedef struct local_now {
    int64_t day;
    long long month, year;
} local_now;

static local_now local_of(dcem_zone *z, int64_t t_ms)
{
    int64_t y;
    int m, d;
    dcem_zone_date(z, t_ms, &y, &m, &d);
    return (local_now){dcem_zone_day(z, t_ms), y * 12 + m - 1, y};
}

static int parse_doc(const char *json, cJSON **doc, dcem_api_error *e)
{
    *doc = json ? cJSON_Parse(json) : NULL;
    return *doc ? 0 : fail(e, 500, "a figures document could not be read back");
}

static void set_string(cJSON *o, const char *key, const char *v)
{
    cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_CreateString(v));
}

typedef struct sums_ctx {
    const dcem_site *l;
    dcem_meter_period *mp;
} sums_ctx;

static int sum_rollup(void *arg, const dcem_store_rollup *r)
{
    sums_ctx *s = arg;
    int i = dcem_site_find_meter(s->l, r->meter, strlen(r->meter));
    if (i >= 0) dcem_store_rollup_add(&s->mp[i], r);
    return 0;
}

/* An interval sums like a day: as the store sums it into its rollups. */
static int sum_interval(void *arg, const char *meter, const dcem_interval *iv)
{
    dcem_store_rollup r;
    dcem_store_rollup_of_interval(iv, &r);
    snprintf(r.meter, sizeof r.meter, "%s", meter);
    return sum_rollup(arg, &r);
}

/* The figures object of a day or an interval: the fields of the period
 * object (period_json.h) that do not need the policy's judgement. */
static cJSON *short_figures(const dcem_collector_config *cfg, const dcem_site *l,
                            const dcem_figures *f, const dcem_meter_period *mp, dcem_zone *z,
                            const char *name, const char *kind)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "period", name);
    cJSON_AddStringToObject(o, "kind", kind);
    add_time(o, "start", f->start_ms, z);
    add_time(o, "end", f->end_ms, z);
    add_time(o, "as_of", f->as_of_ms, z);
    add_num(o, "total_kwh", f->total_kwh, 3);
    add_num(o, "it_kwh", f->it_kwh, 3);
    add_num(o, "green_kwh", f->green_kwh, 3);
    add_num(o, "green_onsite_kwh", f->role_kwh[DCEM_ROLE_GREEN_ONSITE], 3);
    add_num(o, "green_ledger_kwh", f->green_ledger_kwh, 3);
    add_num(o, "facility_kwh", f->role_kwh[DCEM_ROLE_FACILITY], 3);
    add_num(o, "compute_kwh", f->compute_kwh, 3);
    add_num(o, "cooling_kwh", f->role_kwh[DCEM_ROLE_COOLING], 3);
    add_num(o, "other_kwh", f->role_kwh[DCEM_ROLE_OTHER], 3);
    add_num(o, "pue", f->pue, 6);
    add_num(o, "green_share", f->green_share, 6);
    add_num(o, "green_threshold", dcem_policy_green_threshold(cfg->policy, f->year), 6);
    add_num(o, "compute_share", f->compute_share, 6);
    add_num(o, "completeness", f->completeness, 6);
    add_num(o, "estimated_kwh", f->estimated_kwh, 3);
    add_num(o, "integrated_kwh", f->integrated_kwh, 3);
    cJSON_AddNumberToObject(o, "estimated_intervals", (double)f->estimated_intervals);
    cJSON_AddNumberToObject(o, "integrated_intervals", (double)f->integrated_intervals);
    cJSON_AddNumberToObject(o, "discarded_readings", (double)f->discarded_readings);
    cJSON_AddNumberToObject(o, "rollovers", (double)f->rollovers);
    cJSON_AddNumberToObject(o, "resets", (double)f->resets);
    cJSON *ms = cJSON_AddArrayToObject(o, "meters");
    for (size_t i = 0; i < l->n_meters; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", l->meters[i].id);
        cJSON_AddStringToObject(m, "role", dcem_role_name(l->meters[i].role));
        add_num(m, "kwh", dcem_ukwh_kwh(mp[i].ukwh), 3);
        add_num(m, "estimated_kwh", dcem_ukwh_kwh(mp[i].estimated_ukwh[dcem_span_of_kind(f->kind)]),
                3);
        add_num(m, "completeness", dcem_meter_completeness(&mp[i]), 6);
        cJSON_AddNumberToObject(m, "discarded_readings", (double)mp[i].discarded_readings);
        cJSON_AddNumberToObject(m, "rollovers", (double)mp[i].rollovers);
        cJSON_AddNumberToObject(m, "resets", (double)mp[i].resets);
        cJSON_AddItemToArray(ms, m);
    }
    return o;
}

/* Figures of [start, end) counted up to as_of from per-meter sums that
 * `fill` puts into mp: a day from its day rollups, an interval from its
 * intervals. common/figures does the arithmetic. */
static int short_period(const dcem_api_ctx *c, const dcem_collector_site *cs, int kind,
                        int64_t start, int64_t end, int64_t as_of, const char *name,
                        cJSON **figures, dcem_api_error *e)
{
    const dcem_site *l = cs->ledger;
    dcem_zone z;
    dcem_zone_init(&z, cs->tz);
    dcem_meter_period *mp = calloc(l->n_meters ? l->n_meters : 1, sizeof *mp);
    if (!mp) return no_memory(e);
    sums_ctx sc = {l, mp};
    int rc = kind == DCEM_PERIOD_DAY
                 ? dcem_store_rollups(c->st, l->site, DCEM_PERIOD_DAY, dcem_zone_day(&z, start),
                                      dcem_zone_day(&z, start) + 1, sum_rollup, &sc)
                 : dcem_store_intervals(c->st, l->site, start, end, sum_interval, &sc);
    if (rc) {
        free(mp);
        return store_failed(e, c);
    }
    dcem_figures f;
    int64_t y;
    int mo, d;
    dcem_zone_date(&z, start, &y, &mo, &d);
    dcem_figures_init(&f, kind, y, start, end, as_of < start ? start : as_of);
    long expected = dcem_expected_intervals(l, start, f.as_of_ms);
    for (size_t i = 0; i < l->n_meters; i++) {
        mp[i].expected_intervals = expected;
        dcem_figures_add_meter(&f, l->meters[i].role, &mp[i]);
    }
    f.green_ledger_kwh = dcem_site_green_kwh(l, &z, start, f.as_of_ms);
    dcem_figures_derive(&f);
    *figures =
        short_figures(c->cfg, l, &f, mp, &z, name, kind == DCEM_PERIOD_DAY ? "day" : "interval");
    free(mp);
    return *figures ? 200 : no_memory(e);
}

int dcem_api_view_figures(const dcem_api_ctx *c, const dcem_collector_site *cs,
                          const dcem_api_query *q, cJSON **out, dcem_api_error *e)
{
    const dcem_site *l = cs->ledger;
    dcem_zone z;
    dcem_zone_init(&z, cs->tz);
    local_now now = local_of(&z, c->now_ms);
    int64_t midnight = dcem_zone_day_start(&z, now.day); /* whole days, as the engine's figures */
    const dcem_api_when *at = &q->at;
    char at_name[48], name[48] = "";
    cJSON *fig = NULL;
    int rc = 200, computed = 1; /* computed: by the engine (NULL: the store failed) */
    switch (q->period) {
    case DCEM_API_P_MONTH: {
        long long m = at->kind ? at->month : now.month;
        month_name(m, at_name, sizeof at_name);
        fig = dcem_engine_months_obj(c->engine, l->site, DCEM_PERIOD_MONTH, m, 1, midnight);
        break;
    }
    case DCEM_API_P_YEAR: {
        long long y = at->kind ? at->year : now.year;
        snprintf(at_name, sizeof at_name, "%lld", y);
        fig = dcem_engine_months_obj(c->engine, l->site, DCEM_PERIOD_YEAR, y * 12, 12, midnight);
        break;
    }
    case DCEM_API_P_YTD:
    case DCEM_API_P_ROLLING12: {
        int64_t day = at->kind ? at->day : now.day, y;
        int m, d;
        int64_t as_of = dcem_zone_day_start(&z, day);
        day_name(day, at_name, sizeof at_name);
        if (q->period == DCEM_API_P_YTD) {
            dcem_civil_from_days(day, &y, &m, &d);
            fig = dcem_engine_months_obj(c->engine, l->site, DCEM_PERIOD_YEAR, y * 12, 12, as_of);
        } else {
            /* the 12 months ending with the month of the day before `at` */
            dcem_civil_from_days(day - 1, &y, &m, &d);
            long long last = y * 12 + m - 1, first = last - 11;
            fig = dcem_engine_months_obj(c->engine, l->site, DCEM_PERIOD_MONTH, first, 12, as_of);
            char a[16], b[16];
            month_name(first, a, sizeof a);
            month_name(last, b, sizeof b);
            snprintf(name, sizeof name, "%s/%s", a, b);
        }
        break;
    }
    case DCEM_API_P_DAY: {
        int64_t day = at->kind ? at->day : now.day;
        int64_t start = dcem_zone_day_start(&z, day), end = dcem_zone_day_start(&z, day + 1);
        day_name(day, at_name, sizeof at_name);
        computed = 0;
        rc = short_period(c, cs, DCEM_PERIOD_DAY, start, end, c->now_ms, at_name, &fig, e);
        break;
    }
    default: { /* interval */
        int64_t len = l->interval_minutes * 60000LL, start, end;
        /* default: the last interval that has ended */
        int64_t t = at->kind ? at->t_ms : c->now_ms - len;
        dcem_zone_interval(&z, t, len, &start, &end);
        dcem_format_time(start, dcem_zone_offset(&z, start), at_name, sizeof at_name);
        computed = 0;
        rc = short_period(c, cs, DCEM_PERIOD_INTERVAL, start, end, end, at_name, &fig, e);
        break;
    }
    }
    if (rc != 200) return rc;
    if (computed && !fig) return store_failed(e, c);
    if (q->period == DCEM_API_P_YTD) set_string(fig, "kind", "ytd");
    if (q->period == DCEM_API_P_ROLLING12) {
        set_string(fig, "kind", "rolling12");
        set_string(fig, "period", name);
        /* the cap is the calendar year's (clause 9): a window across two
         * years has none, and no cap verdict */
        cJSON_ReplaceItemInObjectCaseSensitive(fig, "cap", cJSON_CreateNull());
        cJSON *vs = cJSON_GetObjectItemCaseSensitive(fig, "verdicts");
        static const int cap_verdicts[] = {DCEM_V_CAP_WARNING, DCEM_V_CAP_PROJECTED,
                                           DCEM_V_CAP_EXCEEDED};
        for (int i = cJSON_GetArraySize(vs) - 1; i >= 0; i--) {
            const cJSON *it = cJSON_GetArrayItem(vs, i);
            for (size_t k = 0; k < sizeof cap_verdicts / sizeof cap_verdicts[0]; k++)
                if (cJSON_IsString(it) &&
                    !strcmp(it->valuestring, dcem_verdict_name(cap_verdicts[k]))) {
                    cJSON_DeleteItemFromArray(vs, i);
                    break;
                }
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site", l->site);
    cJSON_AddStringToObject(o, "period", dcem_api_period_name(q->period));
    cJSON_AddStringToObject(o, "at", at_name);
    if (!o) {
        cJSON_Delete(fig);
        return no_memory(e);
    }
    cJSON_AddItemToObject(o, "figures", fig);
    return done(o, out, e);
}

/* ---- verdicts ---- */

static int verdict_id(const char *name)
{
    for (int i = 0; i < DCEM_V_COUNT; i++)
        if (!strcmp(dcem_verdict_name(i), name)) return i;
    return -1;
}

/* [{"id": …, "clause": …}] of a stored document's verdict names. */
static cJSON *verdict_list(const cJSON *doc)
{
    cJSON *arr = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(doc, "verdicts"))
    {
        if (!cJSON_IsString(it)) continue;
        cJSON *v = cJSON_CreateObject();
        cJSON_AddStringToObject(v, "id", it->valuestring);
        cJSON_AddStringToObject(v, "clause", dcem_verdict_clause(verdict_id(it->valuestring)));
        cJSON_AddItemToArray(arr, v);
    }
    return arr;
}

static cJSON *copy_item(const cJSON *doc, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(doc, key);
    return x ? cJSON_Duplicate(x, 1) : cJSON_CreateNull();
}

static int month_verdicts(void *arg, int64_t key, const char *json, int64_t computed_ms)
{
    (void)key, (void)computed_ms;
    cJSON *months = arg;
    cJSON *doc = cJSON_Parse(json);
    if (!doc) return 0; /* the store checks json_valid: cannot happen */
    cJSON *m = cJSON_CreateObject();
    cJSON_AddItemToObject(m, "period", copy_item(doc, "period"));
    cJSON_AddItemToObject(m, "as_of", copy_item(doc, "as_of"));
    cJSON_AddItemToObject(m, "verdicts", verdict_list(doc));
    cJSON_AddItemToArray(months, m);
    cJSON_Delete(doc);
    return 0;
}

int dcem_api_view_verdicts(const dcem_api_ctx *c, const dcem_collector_site *cs,
                           const dcem_api_query *q, cJSON **out, dcem_api_error *e)
{
    const dcem_site *l = cs->ledger;
    dcem_zone z;
    dcem_zone_init(&z, cs->tz);
    long long year = (q->have & DCEM_API_Q_YEAR) ? q->year : local_of(&z, c->now_ms).year;
    char *json = NULL;
    int64_t computed = 0;
    int rc = dcem_store_get_figures(c->st, l->site, DCEM_PERIOD_YEAR, year, &json, &computed);
    if (rc && rc != DCEM_ENOTFOUND) return store_failed(e, c);
    cJSON *doc = NULL;
    if (json && parse_doc(json, &doc, e)) {
        free(json);
        return 500;
    }
    free(json);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site", l->site);
    cJSON_AddNumberToObject(o, "year", (double)year);
    if (doc)
        add_time(o, "computed_at", computed, &z);
    else
        cJSON_AddNullToObject(o, "computed_at");
    cJSON_AddItemToObject(o, "as_of", doc ? copy_item(doc, "as_of") : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "verdicts", doc ? verdict_list(doc) : cJSON_CreateArray());
    cJSON_Delete(doc);
    cJSON *months = cJSON_AddArrayToObject(o, "months");
    if (months && dcem_store_figures(c->st, l->site, DCEM_PERIOD_MONTH, year * 12, year * 12 + 12,
                                     month_verdicts, months)) {
        cJSON_Delete(o);
        return store_failed(e, c);
    }
    return done(o, out, e);
}

/* ---- alerts ---- */

typedef struct alerts_ctx {
    cJSON *arr;
    dcem_zone *z;
    long limit, n;
    int64_t last_t, last_id;
    int more;
} alerts_ctx;

static int add_alert(void *arg, const dcem_store_alert *a)
{
    alerts_ctx *x = arg;
    if (x->n == x->limit) { /* the one past the page: there is a next page */
        x->more = 1;
        return 1;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "id", (double)a->id);
    add_time(j, "t", a->t_ms, x->z);
    cJSON_AddStringToObject(j, "kind", a->kind);
    cJSON_AddStringToObject(j, "subject", a->subject ? a->subject : "");
    cJSON_AddStringToObject(j, "state",
                            a->state == DCEM_STORE_ALERT_CLEARED ? "cleared" : "raised");
    cJSON_AddStringToObject(j, "message", a->message);
    cJSON_AddItemToArray(x->arr, j);
    x->n++;
    x->last_t = a->t_ms;
    x->last_id = a->id;
    return 0;
}

int dcem_api_view_alerts(const dcem_api_ctx *c, const dcem_collector_site *cs,
                         const dcem_api_query *q, cJSON **out, dcem_api_error *e)
{
    const dcem_site *l = cs->ledger;
    dcem_zone z;
    dcem_zone_init(&z, cs->tz);
    int64_t from = (q->have & DCEM_API_Q_FROM) ? dcem_api_instant(cs, &q->from) : INT64_MIN;
    int64_t to = (q->have & DCEM_API_Q_TO) ? dcem_api_instant(cs, &q->to) : INT64_MAX;
    if (from >= to) {
        fail(e, 400, "to: must be later than from");
        snprintf(e->param, sizeof e->param, "to");
        return 400;
    }
    int64_t bt = INT64_MAX, bid = INT64_MAX;
    if (q->have & DCEM_API_Q_CURSOR) bt = q->cursor_t_ms, bid = q->cursor_id;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site", l->site);
    alerts_ctx x = {.arr = cJSON_AddArrayToObject(o, "alerts"), .z = &z, .limit = q->limit};
    if (!x.arr) {
        cJSON_Delete(o);
        return no_memory(e);
    }
    int rc = dcem_store_alerts_page(c->st, l->site, from, to, bt, bid, q->limit + 1, add_alert, &x);
    if (rc < 0) {
        cJSON_Delete(o);
        return store_failed(e, c);
    }
    if (x.more) {
        char cur[48];
        dcem_api_cursor_format(x.last_t, x.last_id, cur, sizeof cur);
        cJSON_AddStringToObject(o, "next", cur);
    } else {
        cJSON_AddNullToObject(o, "next");
    }
    return done(o, out, e);
}

/* ---- meters and power ---- */

/* Each meter's latest reading with a value, indexed like the ledger. */
typedef struct latest {
    int have;
    int64_t t_ms;
    int has_kwh, has_kw, quality;
    double kwh, kw;
} latest;

typedef struct latest_ctx {
    const dcem_site *l;
    latest *out;
} latest_ctx;

static int take_latest(void *arg, const dcem_store_reading *r)
{
    latest_ctx *x = arg;
    int i = dcem_site_find_meter(x->l, r->meter, strlen(r->meter));
    if (i >= 0) x->out[i] = (latest){1, r->t_ms, r->has_kwh, r->has_kw, r->quality, r->kwh, r->kw};
    return 0;
}

/* The latest readings of every meter of site at or before `until`
 * (INT64_MAX: all), looking back `lookback_ms` from the site's newest
 * reading (or from until). */
static int latest_readings(const dcem_api_ctx *c, const dcem_site *l, int64_t until,
                           int64_t lookback_ms, latest *out)
{
    int64_t newest;
    int rc = dcem_store_last_reading_ms(c->st, l->site, &newest);
    if (rc == DCEM_ENOTFOUND) return 0;
    if (rc) return rc;
    int64_t ref = newest < until ? newest : until;
    latest_ctx x = {l, out};
    return dcem_store_latest_readings(c->st, l->site, ref - lookback_ms,
                                      until == INT64_MAX ? INT64_MAX : until + 1, take_latest, &x);
}

typedef struct rollups_ctx {
    const dcem_site *l;
    dcem_store_rollup *out; /* indexed like the ledger */
} rollups_ctx;

static int month_rollup(void *arg, const dcem_store_rollup *r)
{
    rollups_ctx *s = arg;
    int i = dcem_site_find_meter(s->l, r->meter, strlen(r->meter));
    if (i >= 0) s->out[i] = *r;
    return 0;
}

int dcem_api_view_meters(const dcem_api_ctx *c, const dcem_collector_site *cs,
                         const dcem_api_query *q, cJSON **out, dcem_api_error *e)
{
    const dcem_site *l = cs->ledger;
    dcem_zone z;
    dcem_zone_init(&z, cs->tz);
    int explicit_at = (q->have & DCEM_API_Q_AT) != 0;
    int64_t at = explicit_at ? q->at.t_ms : c->now_ms;
    int64_t silent_ms = c->cfg->api.silent_intervals * l->interval_minutes * 60000LL;
    int64_t lookback = silent_ms * 2 > DCEM_API_LOOKBACK_MS ? silent_ms * 2 : DCEM_API_LOOKBACK_MS;
    size_t n = l->n_meters ? l->n_meters : 1;
    latest *lt = calloc(n, sizeof *lt);
    dcem_store_rollup *month = calloc(n, sizeof *month);
    dcem_meter_state *mt = malloc(sizeof *mt);
    unsigned char *blob = malloc(DCEM_STORE_MAX_STATE);
    cJSON *o = NULL;
    int rc = 200;
    if (!lt || !month || !mt || !blob) {
        rc = no_memory(e);
        goto out;
    }
    local_now ln = local_of(&z, at);
    rollups_ctx sc = {l, month};
    if (latest_readings(c, l, explicit_at ? at : INT64_MAX, lookback, lt) ||
        dcem_store_rollups(c->st, l->site, DCEM_PERIOD_MONTH, ln.month, ln.month + 1, month_rollup,
                           &sc)) {
        rc = store_failed(e, c);
        goto out;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site", l->site);
    add_time(o, "at", at, &z);
    cJSON_AddNumberToObject(o, "silent_after_s", (double)(silent_ms / 1000));
    cJSON *arr = cJSON_AddArrayToObject(o, "meters");
    char mname[16];
    month_name(ln.month, mname, sizeof mname);
    for (size_t i = 0; i < l->n_meters && arr; i++) {
        const dcem_meter *m = &l->meters[i];
        size_t blen;
        int stale = 0;
        int st = dcem_store_get_meter_state(c->st, l->site, m->id, blob, DCEM_STORE_MAX_STATE,
                                            &blen, &stale, NULL);
        if (st && st != DCEM_ENOTFOUND) {
            rc = store_failed(e, c);
            goto out;
        }
        int have_state = st == 0;
        /* the time its meter last took a reading, from the state (a state
         * this version cannot read is as none: the collector rebuilds it) */
        int64_t last_ms = INT64_MIN;
        if (have_state &&
            dcem_meter_decode(mt, cs->tz, (int)l->interval_minutes, blob, blen) == 0)
            last_ms = dcem_meter_last_ms(mt);
        const char *status = "ok";
        if (!lt[i].have || at - lt[i].t_ms > silent_ms)
            status = "silent";
        else if (have_state && stale)
            status = "stale";
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", m->id);
        cJSON_AddStringToObject(j, "role", dcem_role_name(m->role));
        cJSON_AddStringToObject(j, "model", m->model);
        add_num(j, "rated_kw", m->rated_kw, 3);
        cJSON_AddStringToObject(j, "status", status);
        if (lt[i].have) {
            cJSON *r = cJSON_AddObjectToObject(j, "last_reading");
            add_time(r, "t", lt[i].t_ms, &z);
            add_num(r, "kwh", lt[i].has_kwh ? lt[i].kwh : NAN, 3);
            add_num(r, "kw", lt[i].has_kw ? lt[i].kw : NAN, 3);
            cJSON_AddStringToObject(r, "quality", dcem_wire_quality_name(lt[i].quality));
        } else if (last_ms != INT64_MIN) {
            /* older than the lookback: the time its meter last took */
            cJSON *r = cJSON_AddObjectToObject(j, "last_reading");
            add_time(r, "t", last_ms, &z);
            cJSON_AddNullToObject(r, "kwh");
            cJSON_AddNullToObject(r, "kw");
            cJSON_AddNullToObject(r, "quality");
        } else {
            cJSON_AddNullToObject(j, "last_reading");
        }
        if (month[i].intervals) {
            const dcem_store_rollup *r = &month[i];
            cJSON *mj = cJSON_AddObjectToObject(j, "month");
            cJSON_AddStringToObject(mj, "period", mname);
            add_num(mj, "kwh", dcem_ukwh_kwh(r->ukwh), 3);
            cJSON_AddNumberToObject(mj, "intervals", (double)r->intervals);
            cJSON_AddNumberToObject(mj, "estimated_intervals", (double)r->estimated_intervals);
            cJSON_AddNumberToObject(mj, "integrated_intervals", (double)r->integrated_intervals);
            cJSON_AddNumberToObject(mj, "discarded_readings", (double)r->discarded_readings);
            cJSON_AddNumberToObject(mj, "rollovers", (double)r->rollovers);
            cJSON_AddNumberToObject(mj, "resets", (double)r->resets);
        } else {
            cJSON_AddNullToObject(j, "month");
        }
        cJSON_AddItemToArray(arr, j);
    }
    if (!arr) rc = no_memory(e);
out:
    free(lt);
    free(month);
    free(mt);
    free(blob);
    if (rc == 200) return done(o, out, e);
    cJSON_Delete(o);
    return rc;
}

/* Each meter's latest interval in the window that has ended by `at` (they
 * come in start order). */
typedef struct power_ctx {
    const dcem_site *l;
    int64_t at;
    dcem_interval *iv;
    int *have;
} power_ctx;

static int latest_interval(void *arg, const char *meter, const dcem_interval *iv)
{
    power_ctx *p = arg;
    int i = dcem_site_find_meter(p->l, meter, strlen(meter));
    if (i >= 0 && iv->end_ms <= p->at) {
        p->iv[i] = *iv;
        p->have[i] = 1;
    }
    return 0;
}

int dcem_api_view_power(const dcem_api_ctx *c, const dcem_collector_site *cs,
                        const dcem_api_query *q, cJSON **out, dcem_api_error *e)
{
    const dcem_site *l = cs->ledger;
    dcem_zone z;
    dcem_zone_init(&z, cs->tz);
    int64_t at = (q->have & DCEM_API_Q_AT) ? q->at.t_ms : c->now_ms;
    size_t n = l->n_meters ? l->n_meters : 1;
    latest *lt = calloc(n, sizeof *lt);
    dcem_interval *iv = calloc(n, sizeof *iv);
    int *have = calloc(n, sizeof *have);
    cJSON *o = NULL;
    int rc = 200;
    if (!lt || !iv || !have) {
        rc = no_memory(e);
        goto out;
    }
    power_ctx pc = {l, at, iv, have};
    latest_ctx lc = {l, lt};
    if (dcem_store_latest_readings(c->st, l->site, at - DCEM_API_POWER_WINDOW_MS, at + 1,
                                   take_latest, &lc) ||
        dcem_store_intervals(c->st, l->site, at - DCEM_API_POWER_WINDOW_MS, at, latest_interval,
                             &pc)) {
        rc = store_failed(e, c);
        goto out;
    }
    /* kW per role summed as figures sum kWh: common/figures says what the
     * total is (facility + green_onsite), the ratio arithmetic is not used */
    dcem_figures f;
    dcem_figures_init(&f, DCEM_PERIOD_INTERVAL, 0, at, at + 1, at);
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site", l->site);
    add_time(o, "at", at, &z);
    cJSON *arr = cJSON_AddArrayToObject(o, "meters");
    for (size_t i = 0; i < l->n_meters && arr; i++) {
        const dcem_meter *m = &l->meters[i];
        double kw = NAN;
        int64_t t = 0;
        const char *source = NULL;
        if (lt[i].have && lt[i].has_kw) {
            kw = lt[i].kw, t = lt[i].t_ms, source = "reading";
        } else if (have[i] && iv[i].end_ms > iv[i].start_ms) {
            kw = dcem_ukwh_kwh(iv[i].ukwh) / ((double)(iv[i].end_ms - iv[i].start_ms) / 3600000.0);
            t = iv[i].start_ms, source = "interval";
        }
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", m->id);
        cJSON_AddStringToObject(j, "role", dcem_role_name(m->role));
        add_num(j, "kw", kw, 3);
        if (source) {
            add_time(j, "t", t, &z);
            cJSON_AddStringToObject(j, "source", source);
            /* in micro-kW; a value beyond what a meter can report (the
             * engine refuses it as out_of_range) enters no total */
            if (fabs(kw) <= DCEM_METER_MAX_VALUE) f.role_ukwh[m->role] += dcem_kwh_ukwh(kw);
        } else {
            cJSON_AddNullToObject(j, "t");
            cJSON_AddNullToObject(j, "source");
        }
        cJSON_AddItemToArray(arr, j);
    }
    dcem_figures_derive(&f);
    cJSON *roles = cJSON_AddObjectToObject(o, "roles");
    for (int r = 0; r < DCEM_ROLE_COUNT; r++)
        add_num(roles, dcem_role_name(r), f.role_kwh[r], 3);
    add_num(o, "total_kw", f.total_kwh, 3);
    if (!arr) rc = no_memory(e);
out:
    free(lt);
    free(iv);
    free(have);
    if (rc == 200) return done(o, out, e);
    cJSON_Delete(o);
    return rc;
}

/* ---- the clause 3 list ---- */

/* A number of a stored document (read back as a double: printed again
 * with the document's fixed decimals), NAN when null or absent. */
static double number_of(const cJSON *doc, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(doc, key);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static int has_verdict(const cJSON *doc, int id)
{
    const cJSON *it;
    cJSON_ArrayForEach(
        it, cJSON_GetObjectItemCaseSensitive(
                doc, "verdicts")) if (cJSON_IsString(it) &&
                                      !strcmp(it->valuestring, dcem_verdict_name(id))) return 1;
    return 0;
}

int dcem_api_view_compliant(const dcem_api_ctx *c, const dcem_api_query *q, cJSON **out,
                            dcem_api_error *e)
{
    long long year;
    if (q->have & DCEM_API_Q_YEAR) {
        year = q->year;
    } else { /* the latest complete calendar year */
        int64_t y;
        int m, d;
        dcem_civil_from_days(dcem_floordiv(c->now_ms, DCEM_MS_PER_DAY), &y, &m, &d);
        year = y - 1;
    }
    const dcem_policy *p = c->cfg->policy;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "year", (double)year);
    cJSON_AddStringToObject(o, "policy", p->policy);
    cJSON_AddStringToObject(o, "document", p->document);
    cJSON_AddStringToObject(o, "definition",
                            "reward_eligible and not cap_exceeded in the year's verdicts "
                            "(clauses 2, 3, 9)");
    cJSON *arr = cJSON_AddArrayToObject(o, "sites");
    const dcem_collector_site *sorted[DCEM_COLLECTOR_MAX_SITES];
    size_t n = sites_sorted(c->cfg, sorted);
    for (size_t i = 0; i < n && arr; i++) {
        const dcem_site *l = sorted[i]->ledger;
        char *json = NULL;
        int rc = dcem_store_get_figures(c->st, l->site, DCEM_PERIOD_YEAR, year, &json, NULL);
        if (rc == DCEM_ENOTFOUND) continue;
        if (rc) {
            cJSON_Delete(o);
            return store_failed(e, c);
        }
        cJSON *doc = cJSON_Parse(json);
        free(json);
        if (doc && has_verdict(doc, DCEM_V_REWARD_ELIGIBLE) &&
            !has_verdict(doc, DCEM_V_CAP_EXCEEDED)) {
            cJSON *s = cJSON_CreateObject();
            cJSON_AddStringToObject(s, "site", l->site);
            cJSON_AddStringToObject(s, "name", l->name);
            add_num(s, "pue", number_of(doc, "pue"), 6);
            add_num(s, "green_share", number_of(doc, "green_share"), 6);
            add_num(s, "green_threshold", number_of(doc, "green_threshold"), 6);
            cJSON_AddBoolToObject(s, "provisional", has_verdict(doc, DCEM_V_PROVISIONAL));
            cJSON_AddItemToObject(s, "as_of", copy_item(doc, "as_of"));
            cJSON_AddItemToArray(arr, s);
        }
        cJSON_Delete(doc);
    }
    if (!arr) {
        cJSON_Delete(o);
        return no_memory(e);
    }
    return done(o, out, e);
}
