#include "commission.h"
#include "wire.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct entry {
    int have;    /* a result came in */
    int quality; /* as the agent would publish it */
    dcem_poll_result r;
} entry;

struct dcem_commission {
    const dcem_agent_config *cfg;
    entry *e; /* one per configured device, in config order */
};

dcem_commission *dcem_commission_new(const dcem_agent_config *c)
{
    dcem_commission *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->cfg = c;
    o->e = calloc(c->n_devices ? c->n_devices : 1, sizeof *o->e);
    if (!o->e) {
        free(o);
        return NULL;
    }
    return o;
}

void dcem_commission_free(dcem_commission *o)
{
    if (!o) return;
    free(o->e);
    free(o);
}

void dcem_commission_add(dcem_commission *o, const dcem_poll_result *r, int quality)
{
    if (r->device >= o->cfg->n_devices) return;
    entry *e = &o->e[r->device];
    e->have = 1;
    e->quality = quality;
    e->r = *r;
}

/* The quality of device i: a device without a result failed. */
static int quality_of(const dcem_commission *o, size_t i)
{
    return o->e[i].have ? o->e[i].quality : DCEM_WIRE_Q_COMM_ERROR;
}

static const char *why_of(const dcem_commission *o, size_t i)
{
    if (!o->e[i].have) return "not polled: its bus could not be set up (out of memory?)";
    return *o->e[i].r.why ? o->e[i].r.why : "no answer";
}

size_t dcem_commission_failed(const dcem_commission *o)
{
    size_t n = 0;
    for (size_t i = 0; i < o->cfg->n_devices; i++)
        n += quality_of(o, i) == DCEM_WIRE_Q_COMM_ERROR;
    return n;
}

/* ---- naming things ---- */

static const char *unit_of(int quantity)
{
    switch (quantity) {
    case DCEM_Q_ENERGY_IMPORT_KWH:
    case DCEM_Q_ENERGY_EXPORT_KWH:
    case DCEM_Q_ENERGY_TOTAL_KWH:
        return "kWh";
    case DCEM_Q_POWER_KW:
        return "kW";
    case DCEM_Q_REACTIVE_KVAR:
        return "kvar";
    case DCEM_Q_APPARENT_KVA:
        return "kVA";
    case DCEM_Q_VOLTAGE_V:
    case DCEM_Q_VOLTAGE_LL_V:
        return "V";
    case DCEM_Q_CURRENT_A:
        return "A";
    case DCEM_Q_FREQUENCY_HZ:
        return "Hz";
    default:
        return ""; /* power factor, ratios, scale factors: no unit */
    }
}

static const char *phase_label(int quantity, int phase)
{
    static const char *const ln[] = {"", "L1", "L2", "L3"};
    static const char *const ll[] = {"", "L1-L2", "L2-L3", "L3-L1"};
    if (phase < 0 || phase > 3) return "?";
    return quantity == DCEM_Q_VOLTAGE_LL_V ? ll[phase] : ln[phase];
}

static const char *value_status(const dcem_poll_value *v)
{
    if (v->unsupported) return "unsupported";
    if (v->absent) return "absent";
    return v->valid ? "ok" : "out_of_range";
}

static const char *source_name(int source)
{
    switch (source) {
    case DCEM_RATIO_NONE:
        return "none";
    case DCEM_RATIO_REGISTER:
        return "register";
    case DCEM_RATIO_CONFIG:
        return "config";
    default:
        return "unknown";
    }
}

static const dcem_profile *profile_of(const dcem_commission *o, size_t i)
{
    int p = o->cfg->devices[i].profile_index;
    return p >= 0 && (size_t)p < o->cfg->n_profiles ? &o->cfg->profiles[p] : NULL;
}

static const dcem_register *reg_of(const dcem_profile *p, const dcem_poll_value *v)
{
    return p && v->reg >= 0 && (size_t)v->reg < p->n_regs ? &p->regs[v->reg] : NULL;
}

/* The 1-based number manuals give a register: 30001 + address for input
 * registers (fc 4), 40001 + address for holding registers (fc 3). 0 for a
 * SunSpec offset, whose wire address depends on where the model block is. */
static unsigned doc_ref(const dcem_profile *p, const dcem_register *g)
{
    if (p->sunspec_model) return 0;
    return (g->function == 4 ? 30001u : 40001u) + g->address;
}

/* ---- JSON ---- */

static cJSON *device_json(const dcem_commission *o, size_t i)
{
    const dcem_device_cfg *d = &o->cfg->devices[i];
    const entry *e = &o->e[i];
    const dcem_profile *p = profile_of(o, i);
    int q = quality_of(o, i);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "meter", d->meter);
    cJSON_AddStringToObject(j, "bus", d->bus);
    cJSON_AddNumberToObject(j, "unit", (double)d->unit);
    cJSON_AddStringToObject(j, "profile", d->profile);
    if (e->have)
        cJSON_AddNumberToObject(j, "t", (double)e->r.t_ms);
    else
        cJSON_AddNullToObject(j, "t");
    cJSON_AddStringToObject(j, "result", dcem_wire_quality_name(q));
    if (q == DCEM_WIRE_Q_COMM_ERROR) cJSON_AddStringToObject(j, "why", why_of(o, i));
    cJSON_AddNumberToObject(j, "requests", e->have ? (double)e->r.requests : 0);
    if (e->have && q != DCEM_WIRE_Q_COMM_ERROR) {
        cJSON *rt = cJSON_AddObjectToObject(j, "ratios");
        cJSON_AddNumberToObject(rt, "ct", e->r.ct);
        cJSON_AddStringToObject(rt, "ct_source", source_name(e->r.ct_source));
        cJSON_AddNumberToObject(rt, "pt", e->r.pt);
        cJSON_AddStringToObject(rt, "pt_source", source_name(e->r.pt_source));
        cJSON_AddBoolToObject(rt, "held", e->r.ratio_held);
        cJSON_AddBoolToObject(rt, "mismatch", e->r.ratio_mismatch);
    } else {
        cJSON_AddNullToObject(j, "ratios");
    }
    cJSON *vals = cJSON_AddArrayToObject(j, "values");
    cJSON *uns = cJSON_AddArrayToObject(j, "unsupported");
    for (size_t k = 0; e->have && k < e->r.n_values; k++) {
        const dcem_poll_value *v = &e->r.values[k];
        const dcem_register *g = reg_of(p, v);
        cJSON *jv = cJSON_CreateObject();
        cJSON_AddStringToObject(jv, "register", g ? g->name : "?");
        const char *qn = dcem_quantity_name(v->quantity);
        cJSON_AddStringToObject(jv, "quantity", qn ? qn : "?");
        cJSON_AddNumberToObject(jv, "phase", v->phase);
        cJSON_AddStringToObject(jv, "unit", unit_of(v->quantity));
        if (v->valid)
            cJSON_AddNumberToObject(jv, "value", v->value);
        else
            cJSON_AddNullToObject(jv, "value");
        cJSON_AddStringToObject(jv, "status", value_status(v));
        cJSON_AddItemToArray(vals, jv);
        if (!v->unsupported || !g) continue;
        cJSON *ju = cJSON_CreateObject();
        char addr[16];
        snprintf(addr, sizeof addr, "0x%04X", g->address);
        cJSON_AddStringToObject(ju, "register", g->name);
        cJSON_AddNumberToObject(ju, "function", g->function);
        cJSON_AddStringToObject(ju, "address", addr);
        unsigned ref = doc_ref(p, g);
        if (ref)
            cJSON_AddNumberToObject(ju, "ref", ref);
        else
            cJSON_AddNullToObject(ju, "ref"); /* SunSpec: address is the block offset */
        cJSON_AddItemToArray(uns, ju);
    }
    return j;
}

char *dcem_commission_json(const dcem_commission *o)
{
    cJSON *doc = cJSON_CreateObject();
    if (!doc) return NULL;
    cJSON_AddStringToObject(doc, "format", "dcem-agent-once/1");
    cJSON_AddStringToObject(doc, "site", o->cfg->site);
    cJSON_AddStringToObject(doc, "gateway", o->cfg->gateway);
    cJSON *devs = cJSON_AddArrayToObject(doc, "devices");
    for (size_t i = 0; i < o->cfg->n_devices; i++)
        cJSON_AddItemToArray(devs, device_json(o, i));
    size_t failed = dcem_commission_failed(o);
    cJSON *sum = cJSON_AddObjectToObject(doc, "summary");
    cJSON_AddNumberToObject(sum, "devices", (double)o->cfg->n_devices);
    cJSON_AddNumberToObject(sum, "answered", (double)(o->cfg->n_devices - failed));
    cJSON_AddNumberToObject(sum, "failed", (double)failed);
    /* an allocation that failed on the way leaves a member out: print
     * nothing rather than a document that lies by omission */
    char *s =
        cJSON_GetArraySize(devs) == (int)o->cfg->n_devices && cJSON_GetObjectItem(doc, "summary")
            ? cJSON_PrintUnformatted(doc)
            : NULL;
    cJSON_Delete(doc);
    return s;
}

/* ---- the table ---- */

static const char *result_note(int q)
{
    switch (q) {
    case DCEM_WIRE_Q_STALE:
        return ": the counter stands still while power flows";
    case DCEM_WIRE_Q_OUT_OF_RANGE:
        return ": a value is NaN or outside its range (below)";
    default:
        return "";
    }
}

static void print_ratio(FILE *f, const char *what, double r, int source)
{
    fprintf(f, "%s %g", what, r);
    switch (source) {
    case DCEM_RATIO_NONE:
        fputs(" (none: a primary-side meter)", f);
        break;
    case DCEM_RATIO_REGISTER:
        fputs(" (read from the meter)", f);
        break;
    case DCEM_RATIO_CONFIG:
        fputs(" (from the config)", f);
        break;
    default:
        fputs(" (UNKNOWN: the meter refused its ratio register, none configured)", f);
        break;
    }
}

static void print_device(const dcem_commission *o, size_t i, FILE *f)
{
    const dcem_device_cfg *d = &o->cfg->devices[i];
    const entry *e = &o->e[i];
    const dcem_profile *p = profile_of(o, i);
    int q = quality_of(o, i);
    size_t nq = e->have ? e->r.requests : 0;
    fprintf(f, "\n%s  (bus %s, unit %lld, %s)  %s (%zu request%s)", d->meter, d->bus, d->unit,
            d->profile, dcem_wire_quality_name(q), nq, nq == 1 ? "" : "s");
    if (q == DCEM_WIRE_Q_COMM_ERROR)
        fprintf(f, ": %s\n", why_of(o, i));
    else
        fprintf(f, "%s\n", result_note(q));
    if (!e->have) return;
    if (q != DCEM_WIRE_Q_COMM_ERROR) {
        fputs("  ratios: ", f);
        print_ratio(f, "CT", e->r.ct, e->r.ct_source);
        fputs(", ", f);
        print_ratio(f, "PT", e->r.pt, e->r.pt_source);
        fputc('\n', f);
        if (e->r.ratio_held)
            fputs("  a ratio register read 0 or an absurd value: the last good ratio is kept\n", f);
        if (e->r.ratio_mismatch)
            fputs("  the configured ratio differs from the meter's register: the config's is "
                  "applied; check which is right\n",
                  f);
    }
    int w = 8, n_uns = 0;
    for (size_t k = 0; k < e->r.n_values; k++) {
        const dcem_register *g = reg_of(p, &e->r.values[k]);
        if (g && (int)strlen(g->name) > w) w = (int)strlen(g->name);
        n_uns += e->r.values[k].unsupported != 0;
    }
    if (e->r.n_values)
        fprintf(f, "  %-*s  %-17s  %-5s  %15s  %s\n", w, "register", "quantity", "phase", "value",
                "unit");
    for (size_t k = 0; k < e->r.n_values; k++) {
        const dcem_poll_value *v = &e->r.values[k];
        const dcem_register *g = reg_of(p, v);
        const char *qn = dcem_quantity_name(v->quantity);
        fprintf(f, "  %-*s  %-17s  %-5s  ", w, g ? g->name : "?", qn ? qn : "?",
                phase_label(v->quantity, v->phase));
        const char *unit = unit_of(v->quantity);
        if (v->valid)
            fprintf(f, "%15.3f%s%s\n", v->value, *unit ? "  " : "", unit);
        else
            fprintf(f, "%15s  (%s)\n", "-", value_status(v));
    }
    if (!n_uns) return;
    fprintf(f,
            "  refused by the device (exception reply; left out of its reads, asked for again "
            "every %lld s):\n",
            d->map_retry_s);
    for (size_t k = 0; k < e->r.n_values; k++) {
        const dcem_poll_value *v = &e->r.values[k];
        const dcem_register *g = reg_of(p, v);
        if (!v->unsupported || !g) continue;
        unsigned ref = doc_ref(p, g);
        fprintf(f, "  %-*s  fc %d  0x%04X", w, g->name, g->function, g->address);
        if (ref)
            fprintf(f, "  (%u)\n", ref);
        else
            fprintf(f, "  (offset in the SunSpec model %d block)\n", p->sunspec_model);
    }
}

void dcem_commission_print_table(const dcem_commission *o, FILE *f)
{
    int64_t t = 0;
    for (size_t i = 0; i < o->cfg->n_devices && !t; i++)
        if (o->e[i].have) t = o->e[i].r.t_ms;
    char when[40] = "";
    time_t secs = (time_t)(t / 1000);
    struct tm tm;
    if (t && gmtime_r(&secs, &tm)) strftime(when, sizeof when, ", %Y-%m-%d %H:%M:%S UTC", &tm);
    size_t failed = dcem_commission_failed(o), n = o->cfg->n_devices;
    fprintf(f, "site %s, gateway %s%s: %zu device%s, %zu answered, %zu failed\n", o->cfg->site,
            o->cfg->gateway, when, n, n == 1 ? "" : "s", n - failed, failed);
    for (size_t i = 0; i < n; i++)
        print_device(o, i, f);
}
