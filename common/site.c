#include "site.h"
#include "cfg.h"
#include "errors.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char *const role_names[] = {"facility", "it",      "green_onsite", "compute",
                                         "cooling",  "other",   NULL};
static const char *const green_kinds[] = {"contract", "certificate", NULL};

int dcem_id_valid(const char *id, size_t len)
{
    if (!id || len == 0 || len >= DCEM_ID_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

int dcem_cfg_check_id(const void *value, size_t count, char *why, size_t len)
{
    (void)count;
    const char *id = value;
    if (dcem_id_valid(id, strlen(id))) return 0;
    snprintf(why, len, "'%s': use letters, digits, '-', '_' or '.'", id);
    return 1;
}

static int check_interval(const void *value, size_t count, char *why, size_t len)
{
    (void)count;
    long long m = *(const long long *)value;
    if (60 % m == 0) return 0;
    snprintf(why, len, "%lld does not divide an hour (use 1-6, 10, 12, 15, 20, 30 or 60)", m);
    return 1;
}

#define M(f) offsetof(dcem_meter, f)
static const dcem_cfg_field meter_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = M(line)},
    {.key = "id", .type = DCEM_CFG_STRING, .offset = M(id), .size = DCEM_ID_MAX,
     .flags = DCEM_CFG_REQUIRED, .check = dcem_cfg_check_id, .help = "meter id, unique in the site"},
    {.key = "role", .type = DCEM_CFG_ENUM, .offset = M(role), .flags = DCEM_CFG_REQUIRED,
     .names = role_names, .def = NAN},
    {.key = "rated_kw", .type = DCEM_CFG_DOUBLE, .offset = M(rated_kw),
     .flags = DCEM_CFG_REQUIRED | DCEM_CFG_MIN_EXCL, .min = 0, .max = 1e7, .def = NAN},
    {.key = "counter_modulo_kwh", .type = DCEM_CFG_DOUBLE, .offset = M(counter_modulo_kwh),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = 1e15, .def = NAN},
    {.key = "counter_resolution_kwh", .type = DCEM_CFG_DOUBLE,
     .offset = M(counter_resolution_kwh), .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = 1000,
     .def = 0.01},
    {.key = "ct_ratio", .type = DCEM_CFG_DOUBLE, .offset = M(ct_ratio),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = 100000, .def = 1,
     .help = "current transformer ratio the meter sits behind (2000/5 A: 400)"},
    {.key = "pt_ratio", .type = DCEM_CFG_DOUBLE, .offset = M(pt_ratio),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = 100000, .def = 1,
     .help = "voltage transformer ratio the meter sits behind (10 kV/100 V: 100)"},
    {.key = "model", .type = DCEM_CFG_STRING, .offset = M(model), .size = 96},
    {.key = "accuracy_class", .type = DCEM_CFG_STRING, .offset = M(accuracy_class), .size = 16},
    {.key = "calibrated_on", .type = DCEM_CFG_DATE, .offset = M(calibrated_on)},
    {0},
};
#undef M

#define G(f) offsetof(dcem_green_entry, f)
static const dcem_cfg_field green_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = G(line)},
    {.key = "month", .type = DCEM_CFG_MONTH, .offset = G(month), .flags = DCEM_CFG_REQUIRED},
    {.key = "kwh", .type = DCEM_CFG_DOUBLE, .offset = G(kwh), .min = 0, .max = 1e13, .def = NAN},
    {.key = "certificates", .type = DCEM_CFG_DOUBLE, .offset = G(certificates), .min = 0,
     .max = 1e10, .def = NAN},
    {.key = "kind", .type = DCEM_CFG_ENUM, .offset = G(kind), .flags = DCEM_CFG_REQUIRED,
     .names = green_kinds, .def = NAN},
    {0},
};
#undef G

#define W(f) offsetof(dcem_gateway, f)
static const dcem_cfg_field gateway_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = W(line)},
    {.key = "id", .type = DCEM_CFG_STRING, .offset = W(id), .size = DCEM_ID_MAX,
     .flags = DCEM_CFG_REQUIRED, .check = dcem_cfg_check_id,
     .help = "the gateway id its agent publishes under (agent.yaml gateway:)"},
    {.key = "keys", .type = DCEM_CFG_LIST, .offset = W(key_text), .size = DCEM_PUBKEY_TEXT_MAX,
     .min = 0, .max = DCEM_SIG_MAX_KEYS, .item = DCEM_CFG_STRING, .count_offset = W(n_keys),
     .check = dcem_pubkey_list_check,
     .help = "its Ed25519 public keys, \"ed25519:<base64>\" (two while rotating)"},
    {0},
};
#undef W

#define S(f) offsetof(dcem_site, f)
static const dcem_cfg_field site_fields[] = {
    {.key = "site", .type = DCEM_CFG_STRING, .offset = S(site), .size = DCEM_ID_MAX,
     .flags = DCEM_CFG_REQUIRED, .check = dcem_cfg_check_id},
    {.key = "name", .type = DCEM_CFG_STRING, .offset = S(name), .size = 128},
    {.key = "timezone", .type = DCEM_CFG_STRING, .offset = S(timezone), .size = 64,
     .def_str = "Asia/Shanghai"},
    {.key = "racks", .type = DCEM_CFG_INT, .offset = S(racks), .flags = DCEM_CFG_REQUIRED,
     .min = 0, .max = 1e7, .def = NAN},
    {.key = "rack_power_kw", .type = DCEM_CFG_DOUBLE, .offset = S(rack_power_kw),
     .flags = DCEM_CFG_REQUIRED, .min = 0, .max = 1e8, .def = NAN},
    {.key = "approved_annual_kwh", .type = DCEM_CFG_DOUBLE, .offset = S(approved_annual_kwh),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = 1e13, .def = NAN},
    {.key = "baseline_annual_kwh", .type = DCEM_CFG_DOUBLE, .offset = S(baseline_annual_kwh),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = 1e13, .def = NAN},
    {.key = "interval_minutes", .type = DCEM_CFG_INT, .offset = S(interval_minutes), .min = 1,
     .max = 60, .def = 15, .check = check_interval},
    {.key = "meters", .type = DCEM_CFG_LIST, .offset = S(meters), .size = sizeof(dcem_meter),
     .flags = DCEM_CFG_REQUIRED, .min = 1, .max = DCEM_SITE_MAX_METERS, .sub = meter_fields,
     .count_offset = S(n_meters)},
    {.key = "green", .type = DCEM_CFG_LIST, .offset = S(green),
     .size = sizeof(dcem_green_entry), .min = 0, .max = DCEM_SITE_MAX_GREEN, .sub = green_fields,
     .count_offset = S(n_green)},
    {.key = "gateways", .type = DCEM_CFG_LIST, .offset = S(gateways),
     .size = sizeof(dcem_gateway), .min = 0, .max = DCEM_SITE_MAX_GATEWAYS,
     .sub = gateway_fields, .count_offset = S(n_gateways)},
    {0},
};
#undef S

const char *dcem_role_name(int role)
{
    return role >= 0 && role < DCEM_ROLE_COUNT ? role_names[role] : "unknown";
}

/* id (idlen bytes, not terminated) against a NUL-terminated meter id. */
static int id_cmp(const char *id, size_t idlen, const char *meter)
{
    size_t n = strnlen(meter, DCEM_ID_MAX);
    int c = memcmp(id, meter, idlen < n ? idlen : n);
    return c ? c : (idlen > n) - (idlen < n);
}

const dcem_gateway *dcem_site_find_gateway(const dcem_site *s, const char *id, size_t idlen)
{
    for (size_t i = 0; i < s->n_gateways; i++)
        if (!id_cmp(id, idlen, s->gateways[i].id)) return &s->gateways[i];
    return NULL;
}

int dcem_site_find_meter(const dcem_site *s, const char *id, size_t idlen)
{
    size_t lo = 0, hi = s->n_meters; /* binary search of by_id */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = id_cmp(id, idlen, s->meters[s->by_id[mid]].id);
        if (!c) return s->by_id[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return -1;
}

double dcem_site_green_month_kwh(const dcem_site *s, int month)
{
    double sum = 0;
    for (size_t i = 0; i < s->n_green; i++) {
        const dcem_green_entry *g = &s->green[i];
        if (g->month == month)
            sum += isnan(g->kwh) ? g->certificates * DCEM_KWH_PER_CERTIFICATE : g->kwh;
    }
    return sum;
}

double dcem_site_green_kwh(const dcem_site *s, dcem_zone *z, int64_t t0_ms, int64_t t1_ms)
{
    double sum = 0;
    for (size_t i = 0; i < s->n_green; i++) {
        const dcem_green_entry *g = &s->green[i];
        int64_t m0 = dcem_zone_month_start(z, g->month), m1 = dcem_zone_month_start(z, g->month + 1);
        int64_t lo = t0_ms > m0 ? t0_ms : m0, hi = t1_ms < m1 ? t1_ms : m1;
        if (hi <= lo) continue;
        double kwh = isnan(g->kwh) ? g->certificates * DCEM_KWH_PER_CERTIFICATE : g->kwh;
        sum += hi - lo == m1 - m0 ? kwh : kwh * (double)(hi - lo) / (double)(m1 - m0);
    }
    return sum;
}


int dcem_site_parse(const char *name, const char *buf, size_t len, dcem_site *out, char *err,
                    size_t errlen)
{
    int rc = dcem_cfg_parse(name, buf, len, site_fields, out, err, errlen);
    if (rc) return rc;
    /* by_id: insertion sort of the indexes by id; equal ids are duplicates */
    for (size_t i = 0; i < out->n_meters; i++) {
        const dcem_meter *m = &out->meters[i];
        size_t j = i;
        for (; j > 0; j--) {
            const dcem_meter *prev = &out->meters[out->by_id[j - 1]];
            int c = strcmp(prev->id, m->id);
            if (!c)
                return dcem_cfg_error(err, errlen, name, m->line, "meters.id",
                                      "'%s' already declared at line %d", m->id, prev->line);
            if (c < 0) break;
            out->by_id[j] = out->by_id[j - 1];
        }
        out->by_id[j] = (unsigned short)i;
    }
    for (size_t i = 0; i < out->n_gateways; i++) {
        dcem_gateway *g = &out->gateways[i];
        for (size_t j = 0; j < i; j++)
            if (!strcmp(out->gateways[j].id, g->id))
                return dcem_cfg_error(err, errlen, name, g->line, "gateways.id",
                                      "'%s' already declared at line %d", g->id,
                                      out->gateways[j].line);
        dcem_pubkey_list_parse(g->key_text, g->n_keys, g->keys);
    }
    for (size_t i = 0; i < out->n_green; i++) {
        const dcem_green_entry *g = &out->green[i];
        if (isnan(g->kwh) == isnan(g->certificates))
            return dcem_cfg_error(err, errlen, name, g->line, "green",
                                  "give exactly one of 'kwh' or 'certificates'");
    }
    return 0;
}
