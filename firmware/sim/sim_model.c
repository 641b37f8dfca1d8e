#include "sim_model.h"
#include "calendar.h"

#include <math.h>

#define PI 3.14159265358979323846
#define MS_PER_HOUR 3600000.0
#define DAYS_PER_YEAR 365.2425

const char *const sim_shape_names[] = {"it", "cooling", "pv", "constant", NULL};

static uint64_t splitmix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

double sim_model_unit(uint64_t seed, uint64_t what, uint64_t k)
{
    uint64_t h = splitmix(splitmix(seed ^ splitmix(what)) ^ k);
    return (double)(h >> 11) / 9007199254740992.0; /* 53 bits: [0, 1) */
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Local civil position of t: hour of day (0..24), day of year (0-based),
 * weekday (0 = Monday). */
typedef struct local_time {
    double hod;
    double doy;
    int weekday;
} local_time;

static local_time local_of(const sim_model *m, int64_t t_ms)
{
    int64_t local_ms = t_ms + (int64_t)m->c.utc_offset_s * 1000;
    int64_t day = dcem_floordiv(local_ms, 86400000);
    int64_t y;
    int mo, d;
    dcem_civil_from_days(day, &y, &mo, &d);
    local_time lt;
    lt.hod = (double)(local_ms - day * 86400000) / MS_PER_HOUR;
    lt.doy = (double)(day - dcem_days_from_civil(y, 1, 1));
    lt.weekday = (int)(((day % 7) + 7 + 3) % 7); /* 1970-01-01 was a Thursday */
    return lt;
}

void sim_model_init(sim_model *m, const sim_model_cfg *cfg)
{
    m->c = *cfg;
    /* up to ±2 % imbalance between phases, fixed per meter */
    double a = 0.04 * (sim_model_unit(cfg->seed, 1, 0) - 0.5);
    double b = 0.04 * (sim_model_unit(cfg->seed, 1, 1) - 0.5);
    m->share[0] = 1.0 / 3 + a;
    m->share[1] = 1.0 / 3 + b;
    m->share[2] = 1.0 - m->share[0] - m->share[1];
    for (int i = 0; i < 3; i++) {
        double spread = 0.02 * (sim_model_unit(cfg->seed, 2, (uint64_t)i) - 0.5);
        m->pf_phase[i] = clampd(cfg->pf + spread, 0.5, 1.0);
        m->v_offset[i] = 0.02 * (sim_model_unit(cfg->seed, 3, (uint64_t)i) - 0.5);
    }
}

double sim_model_outside_c(const sim_model *m, int64_t t_ms)
{
    local_time lt = local_of(m, t_ms);
    return 12.5 - 15.5 * cos(2 * PI * (lt.doy - 15) / DAYS_PER_YEAR) +
           5.5 * cos(2 * PI * (lt.hod - 15) / 24);
}

double sim_model_shape(const sim_model *m, int64_t t_ms)
{
    local_time lt = local_of(m, t_ms);
    switch (m->c.shape) {
    case SIM_SHAPE_IT: {
        /* busiest mid-afternoon; batch and office load lighter on weekends */
        double daily = 1 + 0.05 * cos(2 * PI * (lt.hod - 15) / 24);
        return m->c.level * daily * (lt.weekday >= 5 ? 0.94 : 1.0);
    }
    case SIM_SHAPE_COOLING: {
        /* chillers work harder the warmer it is; free cooling floors it */
        double temp = sim_model_outside_c(m, t_ms);
        return m->c.level * (0.45 + 0.55 * clampd((temp + 5) / 30, 0, 1.4));
    }
    case SIM_SHAPE_PV: {
        double daylen = 12 + 2.9 * sin(2 * PI * (lt.doy - 80) / DAYS_PER_YEAR);
        double x = (lt.hod - (12 - daylen / 2)) / daylen;
        if (!(x > 0 && x < 1)) return 0; /* night */
        double season = 0.75 + 0.25 * cos(2 * PI * (lt.doy - 172) / DAYS_PER_YEAR);
        return m->c.level * season * pow(sin(PI * x), 1.3);
    }
    case SIM_SHAPE_CONSTANT:
    default:
        return m->c.level;
    }
}

double sim_model_knot_kw(const sim_model *m, int64_t k)
{
    double f = sim_model_shape(m, k * m->c.step_ms);
    if (m->c.noise > 0) f *= 1 + m->c.noise * (2 * sim_model_unit(m->c.seed, 4, (uint64_t)k) - 1);
    return m->c.rated_kw * clampd(f, 0, 1);
}

double sim_model_power_kw(const sim_model *m, int64_t t_ms)
{
    int64_t k = dcem_floordiv(t_ms, m->c.step_ms);
    int64_t into = t_ms - k * m->c.step_ms;
    double p0 = sim_model_knot_kw(m, k);
    if (into == 0) return p0;
    double p1 = sim_model_knot_kw(m, k + 1);
    return p0 + (p1 - p0) * (double)into / (double)m->c.step_ms;
}

double sim_model_energy_kwh(const sim_model *m, int64_t t0_ms, int64_t t1_ms)
{
    if (t1_ms <= t0_ms) return 0;
    const int64_t step = m->c.step_ms;
    int64_t k = dcem_floordiv(t0_ms, step);
    double pk = sim_model_knot_kw(m, k), pk1 = sim_model_knot_kw(m, k + 1);
    int64_t a = t0_ms;
    double pa = pk + (pk1 - pk) * (double)(a - k * step) / (double)step;
    /* Neumaier summation: a year is half a million trapezoids */
    double sum = 0, comp = 0;
    while (a < t1_ms) {
        int64_t end = (k + 1) * step;
        int64_t b = end < t1_ms ? end : t1_ms;
        double pb = b == end ? pk1 : pk + (pk1 - pk) * (double)(b - k * step) / (double)step;
        double x = (pa + pb) * 0.5 * (double)(b - a); /* kW * ms */
        double s = sum + x;
        comp += fabs(sum) >= fabs(x) ? (sum - s) + x : (x - s) + sum;
        sum = s;
        a = b;
        pa = pb;
        if (b == end) {
            k++;
            pk = pk1;
            if (a < t1_ms) pk1 = sim_model_knot_kw(m, k + 1);
        }
    }
    return (sum + comp) / MS_PER_HOUR;
}

void sim_model_electrical(const sim_model *m, int64_t t_ms, sim_electrical *e)
{
    local_time lt = local_of(m, t_ms);
    double p = sim_model_power_kw(m, t_ms);
    double t_s = (double)t_ms / 1000;
    e->p_kw[0] = p;
    e->q_kvar[0] = e->s_kva[0] = e->i_a[0] = 0;
    double v_sum = 0, weighted = 0;
    for (int i = 1; i <= 3; i++) {
        double pf = m->pf_phase[i - 1];
        /* phase 3 takes the remainder so the phases add up to the total */
        double pi = i < 3 ? p * m->share[i - 1] : p - e->p_kw[1] - e->p_kw[2];
        double v = m->c.v_nominal *
                   (1 + m->v_offset[i - 1] + 0.006 * sin(2 * PI * lt.hod / 24 + 2 * PI * i / 3));
        e->p_kw[i] = pi;
        e->s_kva[i] = pi / pf;
        e->q_kvar[i] = sqrt(fmax(0, e->s_kva[i] * e->s_kva[i] - pi * pi));
        e->pf[i] = pf;
        e->v[i] = v;
        e->i_a[i] = e->s_kva[i] * 1000 / v;
        e->q_kvar[0] += e->q_kvar[i];
        e->s_kva[0] += e->s_kva[i];
        e->i_a[0] += e->i_a[i];
        v_sum += v;
        weighted += m->share[i - 1] / pf;
    }
    e->v[0] = v_sum / 3;
    /* line-to-line from phasors 120° apart: |Va - Vb| = sqrt(Va² + Vb² + Va·Vb) */
    for (int i = 1; i <= 3; i++) {
        double va = e->v[i], vb = e->v[i % 3 + 1];
        e->v_ll[i] = sqrt(va * va + vb * vb + va * vb);
    }
    e->v_ll[0] = (e->v_ll[1] + e->v_ll[2] + e->v_ll[3]) / 3;
    /* P / S, and the same ratio when idle (no power: it is the phase mix) */
    e->pf[0] = e->s_kva[0] > 0 ? p / e->s_kva[0] : 1 / weighted;
    e->hz = m->c.hz_nominal + 0.02 * sin(2 * PI * t_s / 420) + 0.01 * sin(2 * PI * t_s / 97);
}
