#include "period_json.h"
#include "parse.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

cJSON *dcem_json_num(double v, int decimals)
{
    if (isnan(v) || isinf(v)) return cJSON_CreateNull();
    char b[400];
    snprintf(b, sizeof b, "%.*f", decimals, v);
    if (!strcmp(b, "-0") || !strncmp(b, "-0.", 3)) {
        int zero = 1;
        for (const char *p = b + 1; *p; p++) zero &= *p == '0' || *p == '.';
        if (zero) memmove(b, b + 1, strlen(b));
    }
    return cJSON_CreateRaw(b);
}

cJSON *dcem_json_time(int64_t t_ms, dcem_zone *z)
{
    char b[40];
    dcem_format_time(t_ms, dcem_zone_offset(z, t_ms), b, sizeof b);
    return cJSON_CreateString(b);
}

void dcem_period_name(const dcem_figures *f, dcem_zone *z, char *b, size_t n)
{
    if (f->kind == DCEM_PERIOD_YEAR) {
        snprintf(b, n, "%lld", f->year);
    } else {
        int64_t y;
        int m, d;
        dcem_zone_date(z, f->start_ms, &y, &m, &d);
        snprintf(b, n, "%lld-%02d", (long long)y, m);
    }
}

cJSON *dcem_period_json(const dcem_site *site, const dcem_policy *pol, const dcem_figures *f,
                        const dcem_verdicts *v, const dcem_meter_period *mp, dcem_zone *z)
{
    char name[32];
    dcem_period_name(f, z, name, sizeof name);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "period", name);
    cJSON_AddStringToObject(o, "kind", f->kind == DCEM_PERIOD_YEAR ? "year" : "month");
    cJSON_AddItemToObject(o, "start", dcem_json_time(f->start_ms, z));
    cJSON_AddItemToObject(o, "end", dcem_json_time(f->end_ms, z));
    cJSON_AddItemToObject(o, "as_of", dcem_json_time(f->as_of_ms, z));
    cJSON_AddItemToObject(o, "total_kwh", dcem_json_num(f->total_kwh, 3));
    cJSON_AddItemToObject(o, "it_kwh", dcem_json_num(f->it_kwh, 3));
    cJSON_AddItemToObject(o, "green_kwh", dcem_json_num(f->green_kwh, 3));
    cJSON_AddItemToObject(o, "green_onsite_kwh", dcem_json_num(f->role_kwh[DCEM_ROLE_GREEN_ONSITE], 3));
    cJSON_AddItemToObject(o, "green_ledger_kwh", dcem_json_num(f->green_ledger_kwh, 3));
    cJSON_AddItemToObject(o, "facility_kwh", dcem_json_num(f->role_kwh[DCEM_ROLE_FACILITY], 3));
    cJSON_AddItemToObject(o, "compute_kwh", dcem_json_num(f->compute_kwh, 3));
    cJSON_AddItemToObject(o, "cooling_kwh", dcem_json_num(f->role_kwh[DCEM_ROLE_COOLING], 3));
    cJSON_AddItemToObject(o, "other_kwh", dcem_json_num(f->role_kwh[DCEM_ROLE_OTHER], 3));
    cJSON_AddItemToObject(o, "pue", dcem_json_num(f->pue, 6));
    cJSON_AddItemToObject(o, "green_share", dcem_json_num(f->green_share, 6));
    cJSON_AddItemToObject(o, "green_threshold", dcem_json_num(v->green_threshold, 6));
    cJSON_AddItemToObject(o, "compute_share", dcem_json_num(f->compute_share, 6));
    cJSON_AddItemToObject(o, "completeness", dcem_json_num(f->completeness, 6));
    cJSON_AddItemToObject(o, "estimated_kwh", dcem_json_num(f->estimated_kwh, 3));
    cJSON_AddItemToObject(o, "integrated_kwh", dcem_json_num(f->integrated_kwh, 3));
    cJSON_AddNumberToObject(o, "estimated_intervals", (double)f->estimated_intervals);
    cJSON_AddNumberToObject(o, "integrated_intervals", (double)f->integrated_intervals);
    cJSON_AddNumberToObject(o, "discarded_readings", (double)f->discarded_readings);
    cJSON_AddNumberToObject(o, "rollovers", (double)f->rollovers);
    cJSON_AddNumberToObject(o, "resets", (double)f->resets);
    if (isnan(v->cap_kwh)) {
        cJSON_AddNullToObject(o, "cap");
    } else {
        cJSON *c = cJSON_AddObjectToObject(o, "cap");
        cJSON_AddItemToObject(c, "approved_kwh", dcem_json_num(v->cap_kwh, 3));
        cJSON_AddItemToObject(c, "ytd_kwh", dcem_json_num(f->ytd_total_kwh, 3));
        cJSON_AddItemToObject(c, "usage", dcem_json_num(v->cap_usage, 6));
        cJSON_AddItemToObject(c, "projected_kwh", dcem_json_num(v->cap_projected_kwh, 3));
        cJSON_AddItemToObject(c, "warning_percent", dcem_json_num(v->cap_warning_percent, 1));
    }
    if (v->bits & 1u << DCEM_V_DIFFERENTIAL_PRICING) {
        cJSON *s = cJSON_AddObjectToObject(o, "surcharge");
        cJSON_AddStringToObject(s, "applies_to",
                                pol->pricing.applies_to == DCEM_APPLIES_EXCESS ? "excess" : "all");
        cJSON_AddItemToObject(s, "kwh", dcem_json_num(v->surcharge_kwh, 3));
        cJSON_AddItemToObject(s, "cny_per_kwh", dcem_json_num(v->surcharge_cny_per_kwh, 4));
        cJSON_AddItemToObject(s, "cny", dcem_json_num(v->surcharge_cny, 2));
    } else {
        cJSON_AddNullToObject(o, "surcharge");
    }
    cJSON *vs = cJSON_AddArrayToObject(o, "verdicts");
    for (int i = 0; i < DCEM_V_COUNT; i++)
        if (v->bits & 1u << i) cJSON_AddItemToArray(vs, cJSON_CreateString(dcem_verdict_name(i)));
    if (!mp) return o;
    cJSON *ms = cJSON_AddArrayToObject(o, "meters");
    for (size_t i = 0; i < site->n_meters; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", site->meters[i].id);
        cJSON_AddStringToObject(m, "role", dcem_role_name(site->meters[i].role));
        cJSON_AddItemToObject(m, "kwh", dcem_json_num(dcem_ukwh_kwh(mp[i].ukwh), 3));
        cJSON_AddItemToObject(
            m, "estimated_kwh",
            dcem_json_num(dcem_ukwh_kwh(mp[i].estimated_ukwh[dcem_span_of_kind(f->kind)]), 3));
        cJSON_AddItemToObject(m, "completeness", dcem_json_num(dcem_meter_completeness(&mp[i]), 6));
        cJSON_AddNumberToObject(m, "readings", (double)mp[i].read_intervals);
        cJSON_AddNumberToObject(m, "expected_readings", (double)mp[i].expected_intervals);
        cJSON_AddNumberToObject(m, "discarded_readings", (double)mp[i].discarded_readings);
        cJSON_AddNumberToObject(m, "rollovers", (double)mp[i].rollovers);
        cJSON_AddNumberToObject(m, "resets", (double)mp[i].resets);
        cJSON_AddItemToArray(ms, m);
    }
    return o;
}


void dcem_audit_doc_head(cJSON *doc, const dcem_site *site, const dcem_policy *pol)
{
    cJSON_AddStringToObject(doc, "format", "dcem-audit/1");
    cJSON *s = cJSON_AddObjectToObject(doc, "site");
    cJSON_AddStringToObject(s, "site", site->site);
    cJSON_AddStringToObject(s, "name", site->name);
    cJSON_AddStringToObject(s, "timezone", site->timezone);
    cJSON_AddNumberToObject(s, "racks", (double)site->racks);
    cJSON_AddItemToObject(s, "rack_power_kw", dcem_json_num(site->rack_power_kw, 3));
    cJSON_AddBoolToObject(s, "in_scope", dcem_policy_in_scope(pol, site));
    cJSON_AddItemToObject(s, "approved_annual_kwh", dcem_json_num(site->approved_annual_kwh, 3));
    cJSON_AddItemToObject(s, "baseline_annual_kwh", dcem_json_num(site->baseline_annual_kwh, 3));
    cJSON *p = cJSON_AddObjectToObject(doc, "policy");
    cJSON_AddStringToObject(p, "policy", pol->policy);
    cJSON_AddStringToObject(p, "document", pol->document);
    cJSON_AddItemToObject(p, "pue_limit", dcem_json_num(pol->pue.limit, 6));
}
