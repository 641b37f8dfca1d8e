#include "sim_meter.h"
#include "cfg.h"
#include "errors.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int is_counter(int quantity)
{
    return quantity == DCEM_Q_ENERGY_IMPORT_KWH || quantity == DCEM_Q_ENERGY_TOTAL_KWH ||
           quantity == DCEM_Q_ENERGY_EXPORT_KWH;
}

static int is_float(int type)
{
    return type == DCEM_F32 || type == DCEM_F64;
}

/* Largest raw magnitude an integer type holds. */
static double type_max(int type)
{
    switch (type) {
    case DCEM_U16:
        return 65535.0;
    case DCEM_S16:
        return 32767.0;
    case DCEM_U32:
        return 4294967295.0;
    case DCEM_S32:
        return 2147483647.0;
    case DCEM_U64:
    case DCEM_S64:
        return 9.0e18;
    default:
        return INFINITY;
    }
}

/* The largest value a register of this quantity can show on this meter:
 * what its scale factor must leave room for. */
static double quantity_bound(const sim_model *m, int quantity)
{
    double rated = m->c.rated_kw;
    switch (quantity) {
    case DCEM_Q_POWER_KW:
    case DCEM_Q_REACTIVE_KVAR:
    case DCEM_Q_APPARENT_KVA:
        return 2 * rated; /* S = P / PF, PF >= 0.5 */
    case DCEM_Q_VOLTAGE_V:
        return 1.3 * m->c.v_nominal;
    case DCEM_Q_VOLTAGE_LL_V:
        return 1.3 * 1.8 * m->c.v_nominal;
    case DCEM_Q_CURRENT_A:
        return 2.2 * rated * 1000 / m->c.v_nominal;
    case DCEM_Q_POWER_FACTOR:
        return 1;
    case DCEM_Q_FREQUENCY_HZ:
        return 1.2 * m->c.hz_nominal;
    default:
        return 0;
    }
}

/* SunSpec scale factors: counters get 0 (the register wraps like a real
 * accumulator); other values the finest power of ten in -3..9 at which the
 * largest plausible value still fits the type. */
static void choose_scale_factors(sim_meter *m)
{
    const dcem_profile *p = m->profile;
    memset(m->sf, 0, sizeof m->sf);
    for (size_t s = 0; s < p->n_regs; s++) {
        if (p->regs[s].quantity != DCEM_Q_SCALE_FACTOR) continue;
        int sf = -3, counter = 0;
        for (size_t i = 0; i < p->n_regs; i++) {
            const dcem_register *r = &p->regs[i];
            if (strcmp(r->scale_register, p->regs[s].name)) continue;
            if (is_counter(r->quantity)) counter = 1;
            if (is_float(r->type) || is_counter(r->quantity)) continue;
            /* secondary values: the largest is the one on the smallest ratio */
            double f = INFINITY;
            for (size_t k = 0; k < m->n_ratio; k++)
                f = fmin(f, dcem_ratio_factor(r->quantity, m->ratio[k].ct, m->ratio[k].pt));
            double bound = quantity_bound(&m->model, r->quantity) / f, max = type_max(r->type);
            while (sf < 9 && bound / (r->scale * pow(10, sf)) > max)
                sf++;
        }
        if (counter) sf = 0;
        m->sf[s] = sf;
        for (size_t i = 0; i < p->n_regs; i++)
            if (!strcmp(p->regs[i].scale_register, p->regs[s].name)) m->sf[i] = sf;
    }
}

double sim_meter_reg_unit(const sim_meter *m, size_t i)
{
    const dcem_register *r = &m->profile->regs[i];
    if (r->quantity == DCEM_Q_SCALE_FACTOR || !r->scale_register[0]) return r->scale;
    return r->scale * pow(10, m->sf[i]);
}

double sim_meter_reg_wrap(const sim_meter *m, size_t i)
{
    const dcem_register *r = &m->profile->regs[i];
    if (!is_counter(r->quantity) || is_float(r->type)) return INFINITY;
    unsigned bits = 16 * dcem_regtype_words(r->type);
    int is_signed = r->type == DCEM_S16 || r->type == DCEM_S32 || r->type == DCEM_S64;
    /* a signed counter restarts from 0 past its largest positive value */
    return ldexp(1.0, (int)bits - is_signed) * sim_meter_reg_unit(m, i);
}

unsigned sim_meter_reg_address(const sim_meter *m, size_t i)
{
    return m->base + m->profile->regs[i].address;
}

static unsigned sunspec_len(int model)
{
    if (model >= 201 && model <= 204) return 105;
    if (model >= 211 && model <= 214) return 124;
    return 0;
}

/* The runs of contiguous words the meter serves per function, merged: a
 * read without holes lies inside one run. */
static void compute_runs(sim_meter *m)
{
    const dcem_profile *p = m->profile;
    sim_word_run *w = m->runs;
    size_t n = 0;
    for (size_t i = 0; i < p->n_regs; i++) {
        unsigned a = sim_meter_reg_address(m, i);
        w[n++] = (sim_word_run){p->regs[i].function, a, a + dcem_regtype_words(p->regs[i].type)};
    }
    if (m->base) /* a SunSpec device serves its whole chain, unimplemented points too */
        w[n++] = (sim_word_run){3, SIM_SUNSPEC_BASE, m->base + 2 + m->sunspec_len + 2};
    for (size_t i = 1; i < n; i++) { /* insertion sort by function, start: n <= 97 */
        sim_word_run x = w[i];
        size_t j = i;
        for (; j > 0 && (w[j - 1].function > x.function ||
                         (w[j - 1].function == x.function && w[j - 1].start > x.start));
             j--)
            w[j] = w[j - 1];
        w[j] = x;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && w[k - 1].function == w[i].function && w[i].start <= w[k - 1].end) {
            if (w[i].end > w[k - 1].end) w[k - 1].end = w[i].end;
        } else {
            w[k++] = w[i];
        }
    }
    m->n_runs = k;
}

int sim_meter_refuses(const sim_meter *m, int function, unsigned address, unsigned count)
{
    const dcem_profile *p = m->profile;
    unsigned end = address + count;
    for (size_t i = 0; i < p->n_regs; i++) {
        if (!m->refused[i] || p->regs[i].function != function) continue;
        unsigned a = sim_meter_reg_address(m, i);
        if (a < end && address < a + dcem_regtype_words(p->regs[i].type)) return 1;
    }
    if (m->holes != SIM_HOLES_REFUSE) return 0;
    for (size_t k = 0; k < m->n_runs; k++)
        if (m->runs[k].function == function && m->runs[k].start <= address && end <= m->runs[k].end)
            return 0;
    return 1;
}

static void compute_ranges(sim_meter *m)
{
    unsigned lo[2] = {0xFFFFFFFFu, 0xFFFFFFFFu}, hi[2] = {0, 0};
    const dcem_profile *p = m->profile;
    for (size_t i = 0; i < p->n_regs; i++) {
        int f = p->regs[i].function == 4;
        unsigned a = sim_meter_reg_address(m, i);
        unsigned end = a + dcem_regtype_words(p->regs[i].type);
        if (a < lo[f]) lo[f] = a;
        if (end > hi[f]) hi[f] = end;
    }
    if (m->base) { /* "SunS" through the end marker, on holding registers */
        if (SIM_SUNSPEC_BASE < lo[0]) lo[0] = SIM_SUNSPEC_BASE;
        unsigned end = m->base + 2 + m->sunspec_len + 2;
        if (end > hi[0]) hi[0] = end;
    }
    for (int f = 0; f < 2; f++) {
        m->range_start[f] = hi[f] ? lo[f] : 0;
        m->range_count[f] = hi[f] ? hi[f] - lo[f] : 0;
    }
}

/* The stretches of constant ratios: the meter's own from the start, then
 * one per ratio fault in time order, each changing what it names. */
static void build_ratios(sim_meter *m, const sim_meter_cfg *c)
{
    m->ratio[0] = (sim_ratio_seg){
        .from_ms = m->start_ms, .ct = c->ct_ratio, .pt = c->pt_ratio, .line = c->line};
    m->n_ratio = 1;
    for (size_t k = 0; k < c->n_faults; k++) {
        const sim_fault *f = &c->faults[k];
        if (f->kind != SIM_FAULT_RATIO) continue;
        sim_ratio_seg g = {.from_ms = m->start_ms + (int64_t)llround(f->from_s * 1000),
                           .ct = f->ct_ratio,
                           .pt = f->pt_ratio,
                           .line = f->line};
        size_t j = m->n_ratio++;
        for (; j > 1 && m->ratio[j - 1].from_ms > g.from_ms; j--)
            m->ratio[j] = m->ratio[j - 1];
        m->ratio[j] = g;
    }
    for (size_t j = 1; j < m->n_ratio; j++) { /* absent: unchanged */
        if (isnan(m->ratio[j].ct)) m->ratio[j].ct = m->ratio[j - 1].ct;
        if (isnan(m->ratio[j].pt)) m->ratio[j].pt = m->ratio[j - 1].pt;
    }
    /* a change at from_s 0 is in force from the start */
    m->seg = 0;
    while (m->seg + 1 < m->n_ratio && m->ratio[m->seg + 1].from_ms <= m->start_ms)
        m->seg++;
}

/* Every ratio in force must be one the profile's ratio registers can show:
 * a whole number of steps within the register type (a meter cannot be set
 * to a ratio it cannot display, and the truth would disagree with the wire). */
static int check_ratio_registers(const sim_meter *m, const char *name, char *err, size_t errlen)
{
    const dcem_profile *p = m->profile;
    for (size_t i = 0; i < p->n_regs; i++) {
        const dcem_register *r = &p->regs[i];
        int ct = r->quantity == DCEM_Q_CT_RATIO;
        if (!ct && r->quantity != DCEM_Q_PT_RATIO) continue;
        if (is_float(r->type)) continue; /* any ratio within 2^24 steps is exact enough */
        double unit = sim_meter_reg_unit(m, i);
        for (size_t k = 0; k < m->n_ratio; k++) {
            double v = ct ? m->ratio[k].ct : m->ratio[k].pt, raw = v / unit;
            if (fabs(raw - round(raw)) <= 1e-6 * fmax(1, raw) && round(raw) <= type_max(r->type))
                continue;
            return dcem_cfg_error(err, errlen, name, m->ratio[k].line,
                                  k    ? "meters.faults"
                                  : ct ? "meters.ct_ratio"
                                       : "meters.pt_ratio",
                                  "%s %g: register '%s' of '%s' (%s, step %g) cannot hold it",
                                  ct ? "ct_ratio" : "pt_ratio", v, r->name, p->model,
                                  dcem_regtype_name(r->type), unit);
        }
    }
    return 0;
}

static int resolve_refused(sim_meter *m, const sim_meter_cfg *c, const char *name, char *err,
                           size_t errlen)
{
    const dcem_profile *p = m->profile;
    m->holes = c->holes;
    for (size_t k = 0; k < c->n_refuse; k++) {
        int found = -1;
        for (size_t i = 0; i < p->n_regs && found < 0; i++)
            if (!strcmp(p->regs[i].name, c->refuse[k])) found = (int)i;
        if (found >= 0) {
            m->refused[found] = 1;
            continue;
        }
        char valid[640] = "";
        size_t used = 0;
        for (size_t i = 0; i < p->n_regs; i++) {
            int n =
                snprintf(valid + used, sizeof valid - used, "%s%s", i ? ", " : "", p->regs[i].name);
            if (n < 0 || used + (size_t)n >= sizeof valid) break;
            used += (size_t)n;
        }
        return dcem_cfg_error(err, errlen, name, c->line, "meters.refuse",
                              "'%s' is not a register of '%s' (valid: %s)", c->refuse[k], p->model,
                              valid);
    }
    return 0;
}

int sim_meter_init(sim_meter *m, const sim_meter_cfg *c, long long r, const dcem_profile *p,
                   const sim_scenario *sc, const char *name, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    sim_meter_cfg_id(c, r, m->id, sizeof m->id);
    m->unit = (int)(c->unit + r);
    m->profile = p;
    sim_model_cfg mc = {
        .shape = c->shape,
        .rated_kw = c->rated_kw,
        .level = isnan(c->level) ? sim_shape_default_level(c->shape) : c->level,
        .noise = c->noise,
        .pf = isnan(c->pf) ? sim_shape_default_pf(c->shape) : c->pf,
        .v_nominal = c->v_nominal,
        .hz_nominal = c->hz_nominal,
        .step_ms = sc->clock.step_s * 1000,
        .utc_offset_s = (int32_t)lround(sc->clock.utc_offset_hours * 3600),
        /* replicas differ: the seed mixes the scenario seed and the unit */
        .seed = (uint64_t)sc->seed * UINT64_C(0x100000001B3) + (uint64_t)m->unit,
    };
    sim_model_init(&m->model, &mc);
    memcpy(m->faults, c->faults, c->n_faults * sizeof c->faults[0]);
    m->n_faults = c->n_faults;
    m->start_ms = m->t_ms = sc->start_ms;
    m->reset_ms = INT64_MAX;

    m->counter_reg = dcem_profile_find(p, DCEM_Q_ENERGY_IMPORT_KWH, 0);
    if (m->counter_reg < 0)
        return dcem_cfg_error(err, errlen, name, c->line, "meters.profile",
                              "profile '%s' has no import energy register", p->model);
    if (p->sunspec_model) {
        m->base = SIM_SUNSPEC_MODEL_ADDR;
        m->sunspec_len = sunspec_len(p->sunspec_model);
        if (!m->sunspec_len)
            return dcem_cfg_error(err, errlen, name, c->line, "meters.profile",
                                  "profile '%s': SunSpec model %d is not served (201-204, "
                                  "211-214 are)",
                                  p->model, p->sunspec_model);
    }
    build_ratios(m, c);
    choose_scale_factors(m);
    compute_ranges(m);
    compute_runs(m);
    int rc = resolve_refused(m, c, name, err, errlen);
    if (!rc) rc = check_ratio_registers(m, name, err, errlen);
    if (rc) return rc;

    const sim_ratio_seg *g0 = sim_meter_ratio(m);
    m->initial_kwh = isnan(c->initial_kwh) ? 0 : c->initial_kwh;
    m->initial_secondary_kwh = m->initial_kwh / (g0->ct * g0->pt);
    for (size_t k = 0; k < m->n_faults; k++) {
        sim_fault *f = &m->faults[k];
        f->fired = 0;
        if (f->kind == SIM_FAULT_RESET) {
            m->reset_ms = m->start_ms + (int64_t)llround(f->at_s * 1000);
            m->reset_value_kwh = isnan(f->value_kwh) ? 0 : f->value_kwh;
        } else if (f->kind == SIM_FAULT_ROLLOVER) {
            double wrap = sim_meter_reg_wrap(m, (size_t)m->counter_reg);
            if (isinf(wrap))
                return dcem_cfg_error(err, errlen, name, f->line, "meters.faults",
                                      "rollover: the counter of '%s' is %s and never wraps",
                                      p->model, dcem_regtype_name(p->regs[m->counter_reg].type));
            /* the served (secondary) counter wraps: what it counts by then */
            int64_t at = m->start_ms + (int64_t)llround(f->after_s * 1000);
            double e = 0;
            for (size_t k2 = m->seg; k2 < m->n_ratio && m->ratio[k2].from_ms < at; k2++) {
                int64_t a = m->ratio[k2].from_ms > m->start_ms ? m->ratio[k2].from_ms : m->start_ms;
                int64_t b = k2 + 1 < m->n_ratio && m->ratio[k2 + 1].from_ms < at
                                ? m->ratio[k2 + 1].from_ms
                                : at;
                e += sim_model_energy_kwh(&m->model, a, b) / (m->ratio[k2].ct * m->ratio[k2].pt);
            }
            double unit = sim_meter_reg_unit(m, (size_t)m->counter_reg);
            /* no energy by then (PV at night): wrap on the first count */
            m->initial_secondary_kwh = wrap - (e > unit ? e : unit);
            m->initial_kwh = m->initial_secondary_kwh * g0->ct * g0->pt;
        }
    }
    for (size_t k = 0; k <= m->seg; k++)
        m->ratio[k].secondary_start_kwh = m->initial_secondary_kwh;
    return 0;
}

static void encode(const sim_meter *m, size_t i, double value, uint16_t *words);

int sim_meter_set_initial(sim_meter *m, double kwh)
{
    if (!isfinite(kwh) || kwh < 0) return DCEM_EINVAL;
    for (size_t k = 0; k < m->n_faults; k++)
        if (m->faults[k].kind == SIM_FAULT_ROLLOVER) return DCEM_EINVAL;
    size_t i = (size_t)m->counter_reg;
    const sim_ratio_seg *g0 = sim_meter_ratio(m);
    double k = g0->ct * g0->pt, want = kwh / k, s = want;
    if (s >= sim_meter_reg_wrap(m, i)) return DCEM_ERANGE;
    int type = m->profile->regs[i].type;
    /* served below want: the register's next value up. A few rounds at
     * most: the first lands on the register's grid */
    for (int round = 0;; round++) {
        uint16_t words[4];
        double v;
        encode(m, i, s, words);
        if (sim_meter_reg_decode(m, i, words, &v)) return DCEM_ERANGE;
        /* a whole count decoded a few ulps below its decimal is the same
         * value to the counter rules (jitter, not a drop) */
        if (v >= want * (1 - 1e-12)) break;
        if (round == 8) return DCEM_ERANGE;
        double unit = sim_meter_reg_unit(m, i);
        if (type == DCEM_F32)
            s = (double)nextafterf((float)v, INFINITY);
        else if (type == DCEM_F64)
            s = nextafter(v, INFINITY);
        else /* mid-way into the next count: floor() cannot miss it */
            s = (floor(v / unit + 0.5) + 1.5) * unit;
        if (s >= sim_meter_reg_wrap(m, i)) return DCEM_ERANGE;
    }
    m->initial_secondary_kwh = s;
    m->initial_kwh = s * k;
    for (size_t r = 0; r <= m->seg; r++)
        m->ratio[r].secondary_start_kwh = s;
    return 0;
}

const sim_ratio_seg *sim_meter_ratio(const sim_meter *m)
{
    return &m->ratio[m->seg];
}

/* Integrates the energy up to t (> m->t_ms), stretch by stretch of constant
 * ratios, entering each stretch as its time comes. */
static void integrate(sim_meter *m, int64_t t)
{
    while (m->t_ms < t) {
        sim_ratio_seg *g = &m->ratio[m->seg];
        int64_t end = t;
        if (m->seg + 1 < m->n_ratio && m->ratio[m->seg + 1].from_ms < end)
            end = m->ratio[m->seg + 1].from_ms;
        double e = sim_model_energy_kwh(&m->model, m->t_ms, end);
        m->energy_kwh += e;
        g->energy_kwh += e;
        m->secondary_kwh += e / (g->ct * g->pt);
        m->t_ms = end;
        /* the counter does not jump at a change: it counts on at the new rate */
        while (m->seg + 1 < m->n_ratio && m->ratio[m->seg + 1].from_ms <= m->t_ms) {
            m->seg++;
            m->ratio[m->seg].secondary_start_kwh = sim_meter_secondary_kwh(m);
        }
    }
}

void sim_meter_advance(sim_meter *m, int64_t t_ms)
{
    if (!m->reset_done && t_ms >= m->reset_ms) {
        integrate(m, m->reset_ms);
        const sim_ratio_seg *g = sim_meter_ratio(m);
        m->energy_at_reset = m->energy_kwh;
        m->secondary_at_reset = m->secondary_kwh;
        m->reset_secondary_kwh = m->reset_value_kwh / (g->ct * g->pt);
        m->reset_done = 1;
        /* a stretch that began at this very instant begins after the reset */
        if (m->ratio[m->seg].from_ms == m->reset_ms)
            m->ratio[m->seg].secondary_start_kwh = m->reset_secondary_kwh;
    }
    integrate(m, t_ms);
}

double sim_meter_counter_kwh(const sim_meter *m)
{
    if (m->reset_done) return m->reset_value_kwh + (m->energy_kwh - m->energy_at_reset);
    return m->initial_kwh + m->energy_kwh;
}

double sim_meter_secondary_kwh(const sim_meter *m)
{
    if (m->reset_done) return m->reset_secondary_kwh + (m->secondary_kwh - m->secondary_at_reset);
    return m->initial_secondary_kwh + m->secondary_kwh;
}

double sim_meter_reg_value(const sim_meter *m, size_t i, const sim_electrical *e,
                           const sim_glitch *g)
{
    const dcem_register *r = &m->profile->regs[i];
    int ph = r->phase >= 0 && r->phase <= 3 ? r->phase : 0;
    const sim_ratio_seg *ratio = sim_meter_ratio(m);
    double factor = dcem_ratio_factor(r->quantity, ratio->ct, ratio->pt);
    switch (r->quantity) {
    case DCEM_Q_ENERGY_IMPORT_KWH:
    case DCEM_Q_ENERGY_TOTAL_KWH: { /* nothing is exported: total = import */
        double share = ph ? m->model.share[ph - 1] : 1;
        double v = sim_meter_secondary_kwh(m) * share; /* already secondary */
        if (g && g->active) {
            double spike = isnan(g->spike_kwh) ? 24 * m->model.c.rated_kw : g->spike_kwh;
            v = g->kind == SIM_GLITCH_ZERO ? 0 : v + share * spike / factor;
        }
        double wrap = sim_meter_reg_wrap(m, i);
        return isinf(wrap) ? v : fmod(v, wrap);
    }
    case DCEM_Q_ENERGY_EXPORT_KWH:
        return 0;
    case DCEM_Q_POWER_KW:
        return e->p_kw[ph] / factor;
    case DCEM_Q_REACTIVE_KVAR:
        return e->q_kvar[ph] / factor;
    case DCEM_Q_APPARENT_KVA:
        return e->s_kva[ph] / factor;
    case DCEM_Q_VOLTAGE_V:
        return e->v[ph] / factor;
    case DCEM_Q_VOLTAGE_LL_V:
        return e->v_ll[ph] / factor;
    case DCEM_Q_CURRENT_A:
        return e->i_a[ph] / factor;
    case DCEM_Q_POWER_FACTOR:
        return e->pf[ph];
    case DCEM_Q_FREQUENCY_HZ:
        return e->hz;
    case DCEM_Q_SCALE_FACTOR:
        return m->sf[i];
    case DCEM_Q_CT_RATIO:
        return ratio->ct;
    case DCEM_Q_PT_RATIO:
        return ratio->pt;
    default:
        return 0;
    }
}

static void encode(const sim_meter *m, size_t i, double value, uint16_t *words)
{
    const dcem_register *r = &m->profile->regs[i];
    double unit = sim_meter_reg_unit(m, i), raw;
    if (is_counter(r->quantity) && !is_float(r->type)) {
        /* a meter shows the counts it has completed; the epsilon keeps
         * 1234.56 / 0.01 = 123455.99999999999 from losing a count */
        raw = floor(value / unit + 1e-9);
        double counts = sim_meter_reg_wrap(m, i) / unit;
        if (raw >= counts) raw -= counts;
    } else {
        raw = value / unit;
    }
    dcem_encode_raw(raw, r->type, r->order, words);
}

int sim_meter_reg_decode(const sim_meter *m, size_t i, const uint16_t *words, double *value)
{
    const dcem_profile *p = m->profile;
    const dcem_register *r = &p->regs[i];
    /* as the agent decodes it, with the scale factor this meter serves ... */
    uint16_t sf_words[4] = {0};
    const uint16_t *sf = NULL;
    for (size_t j = 0; r->scale_register[0] && j < p->n_regs; j++)
        if (!strcmp(p->regs[j].name, r->scale_register)) {
            dcem_encode_raw((double)m->sf[j], p->regs[j].type, p->regs[j].order, sf_words);
            sf = sf_words;
        }
    if (!dcem_profile_value(p, i, words, sf, value)) return 0;
    /* ... or, where the agent would refuse it (a SunSpec "not implemented"
     * pattern, out of the plausible range), as the raw words say */
    double raw;
    int rc = dcem_decode_raw(words, r->type, r->order, &raw);
    if (rc) return rc;
    *value = raw * sim_meter_reg_unit(m, i);
    return 0;
}

/* A SunSpec string point: two characters per register, big-endian, NUL
 * padded. */
static void put_string(uint16_t *tab, unsigned regs, const char *s)
{
    size_t n = strlen(s);
    for (unsigned k = 0; k < regs; k++) {
        unsigned hi = 2 * k < n ? (unsigned char)s[2 * k] : 0;
        unsigned lo = 2 * k + 1 < n ? (unsigned char)s[2 * k + 1] : 0;
        tab[k] = (uint16_t)(hi << 8 | lo);
    }
}

static void fill_sunspec(const sim_meter *m, uint16_t *tab, unsigned start, unsigned count)
{
    uint16_t hdr[4 + SIM_SUNSPEC_COMMON_LEN];
    hdr[0] = 0x5375; /* "Su" */
    hdr[1] = 0x6E53; /* "nS" */
    hdr[2] = 1;      /* common model */
    hdr[3] = SIM_SUNSPEC_COMMON_LEN;
    uint16_t *d = hdr + 4;
    put_string(d, 16, "dcem");                 /* Mn */
    put_string(d + 16, 16, m->profile->model); /* Md */
    put_string(d + 32, 8, "");                 /* Opt */
    put_string(d + 40, 8, "dcem-sim");         /* Vr */
    put_string(d + 48, 16, m->id);             /* SN */
    d[64] = (uint16_t)m->unit;                 /* DA */
    d[65] = 0x8000;                            /* Pad */
    for (unsigned k = 0; k < sizeof hdr / sizeof hdr[0]; k++) {
        unsigned a = SIM_SUNSPEC_BASE + k;
        if (a >= start && a < start + count) tab[a - start] = hdr[k];
    }
    const unsigned marks[4][2] = {
        {m->base, (unsigned)m->profile->sunspec_model},
        {m->base + 1, m->sunspec_len},
        {m->base + 2 + m->sunspec_len, 0xFFFF}, /* end of the model chain */
        {m->base + 3 + m->sunspec_len, 0},
    };
    for (int k = 0; k < 4; k++)
        if (marks[k][0] >= start && marks[k][0] < start + count)
            tab[marks[k][0] - start] = (uint16_t)marks[k][1];
}

void sim_meter_fill(const sim_meter *m, int function, uint16_t *tab, unsigned start, unsigned count,
                    const sim_glitch *g)
{
    sim_electrical e;
    sim_model_electrical(&m->model, m->t_ms, &e);
    if (function == 3 && m->base) fill_sunspec(m, tab, start, count);
    const dcem_profile *p = m->profile;
    for (size_t i = 0; i < p->n_regs; i++) {
        const dcem_register *r = &p->regs[i];
        if (r->function != function) continue;
        unsigned a = sim_meter_reg_address(m, i), words = dcem_regtype_words(r->type);
        if (a < start || a + words > start + count) continue;
        encode(m, i, sim_meter_reg_value(m, i, &e, g), tab + (a - start));
    }
}

int sim_meter_reads_counter(const sim_meter *m, int function, unsigned address, unsigned count)
{
    const dcem_profile *p = m->profile;
    for (size_t i = 0; i < p->n_regs; i++) {
        const dcem_register *r = &p->regs[i];
        if (r->function != function ||
            (r->quantity != DCEM_Q_ENERGY_IMPORT_KWH && r->quantity != DCEM_Q_ENERGY_TOTAL_KWH))
            continue;
        unsigned a = sim_meter_reg_address(m, i), end = a + dcem_regtype_words(r->type);
        if (a < address + count && address < end) return 1;
    }
    return 0;
}
