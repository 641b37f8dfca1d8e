/* sim_model.h — the physics behind one simulated meter: a load shape (IT,
 * cooling, PV, constant) gives the power at knots every step_ms; the power is
 * linear between knots, so the energy over any interval is an exact sum of
 * trapezoids; phases, voltages, currents, PF and frequency derive from that
 * same power. Pure and deterministic: time is UTC milliseconds, noise is a
 * hash of the seed and the knot. */
#ifndef DCEM_SIM_MODEL_H
#define DCEM_SIM_MODEL_H

#include <stdint.h>

typedef enum sim_shape {
    SIM_SHAPE_IT = 0,   /* IT load: flat-ish, a daily swing, lighter weekends */
    SIM_SHAPE_COOLING,  /* follows the outside temperature (seasonal + daily) */
    SIM_SHAPE_PV,       /* follows the sun: zero at night */
    SIM_SHAPE_CONSTANT, /* level * rated, always */
    SIM_SHAPE_COUNT
} sim_shape;

/* Names as in scenario files ("it", "cooling", "pv", "constant"), NULL-
 * terminated, indexed by sim_shape. */
extern const char *const sim_shape_names[];

typedef struct sim_model_cfg {
    int shape;            /* sim_shape */
    double rated_kw;      /* > 0 */
    double level;         /* fraction of rated: mean (it, constant), at 25 °C
                             (cooling), at the summer noon peak (pv) */
    double noise;         /* relative amplitude of per-knot noise, 0..0.5 */
    double pf;            /* mean power factor, 0.5..1 */
    double v_nominal;     /* phase-to-neutral volts, e.g. 230 */
    double hz_nominal;    /* 50 or 60 */
    int64_t step_ms;      /* knot spacing, > 0 */
    int32_t utc_offset_s; /* local time = UTC + this, for days and seasons */
    uint64_t seed;        /* per meter: noise, phase imbalance, PF spread */
} sim_model_cfg;

typedef struct sim_model {
    sim_model_cfg c;
    double share[3];    /* phase shares of the active power, summing to 1 */
    double pf_phase[3]; /* power factor per phase */
    double v_offset[3]; /* fixed relative voltage offset per phase */
} sim_model;

/* Derives the per-phase constants from cfg (copied). */
void sim_model_init(sim_model *m, const sim_model_cfg *cfg);

/* Outside temperature (°C) the cooling shape follows: a Beijing-like year
 * (-3 °C mean in mid-January, 28 °C in mid-July) plus a daily swing. */
double sim_model_outside_c(const sim_model *m, int64_t t_ms);

/* The shape's fraction of rated power at t, without noise (0 at night for
 * PV). */
double sim_model_shape(const sim_model *m, int64_t t_ms);

/* Power at knot k (time k * step_ms), kW, noise applied, clamped to
 * 0..rated. */
double sim_model_knot_kw(const sim_model *m, int64_t k);

/* Power at any time: linear between the surrounding knots. */
double sim_model_power_kw(const sim_model *m, int64_t t_ms);

/* Exact energy of the piecewise linear power over [t0_ms, t1_ms], kWh;
 * 0 when t1 <= t0. Work is proportional to the knots crossed. */
double sim_model_energy_kwh(const sim_model *m, int64_t t0_ms, int64_t t1_ms);

/* Electrical state at t. Index 0 is the total (power: sum; voltage: mean of
 * phases; current: sum of phases; PF: P / S), 1-3 the phases. v_ll[1..3]
 * are AB, BC, CA. P = the sum of the phases; S = P / PF per phase;
 * Q = sqrt(S^2 - P^2); I = S / V. */
typedef struct sim_electrical {
    double p_kw[4], q_kvar[4], s_kva[4];
    double v[4], v_ll[4], i_a[4], pf[4];
    double hz;
} sim_electrical;

void sim_model_electrical(const sim_model *m, int64_t t_ms, sim_electrical *out);

/* A deterministic hash in [0, 1) of (seed, what, k); for noise and faults. */
double sim_model_unit(uint64_t seed, uint64_t what, uint64_t k);

#endif
