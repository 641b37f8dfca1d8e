#include "sim_site.h"
#include "cfg.h"
#include "errors.h"
#include "parse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Modbus exception codes (the protocol's, so as not to need libmodbus) */
enum {
    EX_ILLEGAL_FUNCTION = 1,
    EX_ILLEGAL_ADDRESS = 2,
    EX_ILLEGAL_VALUE = 3,
    EX_GATEWAY_TARGET = 11,
};

void sim_site_free(sim_site *s)
{
    if (!s) return;
    free(s->meters);
    free(s->profiles);
    free(s);
}

static const dcem_profile *find_or_load(sim_site *s, const sim_meter_cfg *c, const char *name,
                                        sim_profile_loader load, void *ctx, char *err,
                                        size_t errlen)
{
    for (size_t i = 0; i < s->n_profiles; i++)
        if (!strcmp(s->profiles[i].model, c->profile)) return &s->profiles[i];
    if (s->n_profiles == SIM_MAX_PROFILES) {
        dcem_cfg_error(err, errlen, name, c->line, "meters.profile",
                       "more than %d distinct profiles", SIM_MAX_PROFILES);
        return NULL;
    }
    dcem_profile *p = &s->profiles[s->n_profiles];
    char why[512];
    if (load(ctx, c->profile, p, why, sizeof why)) {
        dcem_cfg_error(err, errlen, name, c->line, "meters.profile", "'%s': %s", c->profile, why);
        return NULL;
    }
    /* the file name is the model, whatever the file says */
    size_t n = strlen(c->profile);
    memcpy(p->model, c->profile, n + 1);
    s->n_profiles++;
    return p;
}

int sim_site_new(const sim_scenario *sc, const char *name, sim_profile_loader load, void *load_ctx,
                 sim_site **out, char *err, size_t errlen)
{
    *out = NULL;
    size_t n = 0;
    for (size_t i = 0; i < sc->n_meters; i++)
        n += (size_t)sc->meters[i].count;
    sim_site *s = calloc(1, sizeof *s);
    if (!s) return DCEM_ENOMEM;
    s->meters = calloc(n, sizeof *s->meters);
    s->profiles = calloc(SIM_MAX_PROFILES, sizeof *s->profiles);
    if (!s->meters || !s->profiles) {
        sim_site_free(s);
        return DCEM_ENOMEM;
    }
    memcpy(s->name, sc->name, sizeof s->name);
    s->start_ms = sc->start_ms;
    s->speed = sc->clock.speed;
    s->rng = (uint64_t)sc->seed * 0x9E3779B97F4A7C15ull ^ 0xD1B54A32D192ED03ull;
    if (!s->rng) s->rng = 1;
    for (int u = 0; u <= SIM_MAX_UNITS; u++)
        s->unit_index[u] = -1;

    for (size_t i = 0; i < sc->n_meters; i++) {
        const sim_meter_cfg *c = &sc->meters[i];
        const dcem_profile *p = find_or_load(s, c, name, load, load_ctx, err, errlen);
        if (!p) {
            sim_site_free(s);
            return DCEM_ECONFIG;
        }
        for (long long r = 0; r < c->count; r++) {
            sim_meter *m = &s->meters[s->n_meters];
            int rc = sim_meter_init(m, c, r, p, sc, name, err, errlen);
            if (rc) {
                sim_site_free(s);
                return rc;
            }
            s->unit_index[m->unit] = (int)s->n_meters++;
        }
    }
    *out = s;
    return 0;
}

int64_t sim_site_time(const sim_site *s, int64_t real_elapsed_ms)
{
    return s->start_ms + (int64_t)llround((double)real_elapsed_ms * s->speed);
}

int sim_site_initial_counters(sim_site *s, const char *name, const char *buf, size_t len, char *err,
                              size_t errlen)
{
    size_t n_alloc = s->n_meters ? s->n_meters : 1;
    double *kwh = malloc(n_alloc * sizeof *kwh);
    int *at = malloc(n_alloc * sizeof *at); /* the line each value came from */
    if (!kwh || !at) {
        free(kwh);
        free(at);
        return DCEM_ENOMEM;
    }
    for (size_t i = 0; i < s->n_meters; i++)
        kwh[i] = NAN;
    int rc = 0;
    long line = 0;
    /* first every row, so that a bad file changes nothing */
    for (size_t pos = 0; !rc && pos < len; line++) {
        const char *l = buf + pos, *nl = memchr(l, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - l) : len - pos;
        pos += n + 1;
        if (n && l[n - 1] == '\r') n--;
        if (!n || (line == 0 && n >= 5 && !memcmp(l, "time,", 5))) continue;
        const char *c1 = memchr(l, ',', n),
                   *c2 = c1 ? memchr(c1 + 1, ',', n - (size_t)(c1 + 1 - l)) : NULL;
        const char *end = l + n;
        size_t i = 0;
        double v;
        if (!c2 || memchr(c2 + 1, ',', (size_t)(end - c2 - 1))) {
            rc = dcem_cfg_error(err, errlen, name, (int)line + 1, "row", "expected time,meter,kwh");
            break;
        }
        size_t idn = (size_t)(c2 - c1 - 1);
        while (i < s->n_meters &&
               (strlen(s->meters[i].id) != idn || memcmp(s->meters[i].id, c1 + 1, idn)))
            i++;
        if (i == s->n_meters)
            rc = dcem_cfg_error(err, errlen, name, (int)line + 1, "meter",
                                "'%.*s' is not a meter of the scenario", (int)idn, c1 + 1);
        else if (dcem_parse_double(c2 + 1, (size_t)(end - c2 - 1), &v) || !isfinite(v) || v < 0)
            rc = dcem_cfg_error(err, errlen, name, (int)line + 1, "kwh",
                                "'%.*s' is not a counter value", (int)(end - c2 - 1), c2 + 1);
        else {
            kwh[i] = v;
            at[i] = (int)line + 1;
        }
    }
    /* then set them, on copies: a value one meter cannot take changes nothing */
    sim_meter *copy = rc ? NULL : malloc((s->n_meters ? s->n_meters : 1) * sizeof *copy);
    if (!rc && !copy) rc = DCEM_ENOMEM;
    if (!rc) memcpy(copy, s->meters, s->n_meters * sizeof *copy);
    for (size_t i = 0; !rc && i < s->n_meters; i++) {
        if (isnan(kwh[i])) continue;
        int r = sim_meter_set_initial(&copy[i], kwh[i]);
        if (r)
            rc = dcem_cfg_error(
                err, errlen, name, at[i], "kwh", "%s cannot start at %.3f kWh: %s", copy[i].id,
                kwh[i], r == DCEM_ERANGE ? "beyond its register" : "it has a rollover fault");
    }
    if (!rc) memcpy(s->meters, copy, s->n_meters * sizeof *copy);
    free(copy);
    free(kwh);
    free(at);
    return rc;
}

sim_meter *sim_site_meter(sim_site *s, int unit)
{
    if (unit < 1 || unit > SIM_MAX_UNITS || s->unit_index[unit] < 0) return NULL;
    return &s->meters[s->unit_index[unit]];
}

void sim_site_request(sim_site *s, int64_t t_ms, int bus, int unit, int function, unsigned address,
                      unsigned count, sim_answer *a)
{
    memset(a, 0, sizeof *a);
    sim_meter *m = sim_site_meter(s, unit);
    if (!m) {
        s->unknown_unit++;
        a->action = bus == SIM_BUS_TCP ? SIM_EXCEPTION : SIM_IGNORE;
        a->exception = EX_GATEWAY_TARGET;
        return;
    }
    a->meter = m;
    m->stats.requests++;
    sim_meter_advance(m, t_ms);

    double t_s = (double)(t_ms - m->start_ms) / 1000;
    sim_fate fate;
    sim_fault_decide(m->faults, m->n_faults, t_s, &s->rng, &fate);
    if (fate.drop) {
        m->stats.dropped++;
        a->action = SIM_IGNORE;
        return;
    }
    a->delay_ms = fate.delay_ms;
    if (fate.delay_ms) m->stats.delayed++;
    a->action = SIM_EXCEPTION;
    if (fate.exception) {
        a->exception = fate.exception;
    } else if (function != 3 && function != 4) {
        a->exception = EX_ILLEGAL_FUNCTION; /* a meter: read-only registers */
    } else if (count == 0 || count > 125 ||
               (m->profile->max_registers && count > m->profile->max_registers)) {
        a->exception = EX_ILLEGAL_VALUE; /* the device's own request limit */
    } else {
        int f = function == 4;
        unsigned lo = m->range_start[f], n = m->range_count[f];
        if (!n || address < lo || address + count > lo + n) {
            a->exception = EX_ILLEGAL_ADDRESS;
        } else if (sim_meter_refuses(m, function, address, count)) {
            a->exception = EX_ILLEGAL_ADDRESS; /* a partial map: what strict firmware says */
            m->stats.refused++;
        } else {
            a->action = SIM_REPLY;
            m->stats.answered++;
            if (sim_meter_reads_counter(m, function, address, count) &&
                sim_fault_glitch(m->faults, m->n_faults, t_s, &s->rng, &a->glitch.kind,
                                 &a->glitch.spike_kwh)) {
                a->glitch.active = 1;
                m->stats.glitches++;
            }
            return;
        }
    }
    m->stats.exceptions++;
}
