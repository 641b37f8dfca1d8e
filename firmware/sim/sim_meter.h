/* sim_meter.h — one simulated meter: its profile's register map filled from
 * the power model, with the energy counter as the exact integral of that
 * power from an initial value, wrapping where its register wraps and
 * restarting at a reset fault. A meter behind current/voltage transformers
 * serves secondary values (primary / ratio) and its ratio registers; the
 * ratios may change in service. A partial map refuses some registers, or
 * reads that span unmapped words, as strict firmware does. SunSpec profiles
 * are served behind "SunS" at 40000 and a common block (model 1), with
 * scale factors chosen to fit the meter's rating. Pure: time comes in as
 * simulated UTC milliseconds. */
#ifndef DCEM_SIM_METER_H
#define DCEM_SIM_METER_H

#include "profile.h"
#include "sim_fault.h"
#include "sim_model.h"
#include "sim_scenario.h"

#include <stddef.h>
#include <stdint.h>

#define SIM_SUNSPEC_BASE 40000u   /* "SunS" */
#define SIM_SUNSPEC_COMMON_LEN 66 /* model 1 length (current SunSpec json) */
/* the meter model's ID register: after "SunS" (2), model 1's ID and L (2)
 * and its 66 registers */
#define SIM_SUNSPEC_MODEL_ADDR (SIM_SUNSPEC_BASE + 4 + SIM_SUNSPEC_COMMON_LEN)

typedef struct sim_meter_stats {
    unsigned long requests;   /* addressed to this unit */
    unsigned long answered;   /* with data */
    unsigned long dropped;    /* timeout fault: no answer */
    unsigned long exceptions; /* exception replies, faults and protocol */
    unsigned long delayed;    /* slow fault */
    unsigned long glitches;   /* answers with a glitched counter */
    unsigned long refused;    /* exception 02 for a refused register or a hole */
} sim_meter_stats;

/* A stretch of time on the same transformer ratios: the meter's own
 * ct_ratio/pt_ratio from the start, then one per ratio fault. */
typedef struct sim_ratio_seg {
    int64_t from_ms;            /* simulated UTC */
    double ct, pt;              /* the ratios in force */
    int line;                   /* where they are declared */
    double energy_kwh;          /* primary energy in the stretch so far */
    double secondary_start_kwh; /* the meter's counter (secondary, unwrapped) as it began */
} sim_ratio_seg;

#define SIM_MAX_RATIO_SEGS (1 + SIM_MAX_FAULTS)

/* A run of contiguous words the meter serves, for holes: refuse. */
typedef struct sim_word_run {
    int function;
    unsigned start, end; /* [start, end) */
} sim_word_run;

/* A glitch to apply to the counter registers of one answer. */
typedef struct sim_glitch {
    int active;
    int kind;         /* SIM_GLITCH_ZERO or SIM_GLITCH_SPIKE */
    double spike_kwh; /* added for a spike */
} sim_glitch;

typedef struct sim_meter {
    char id[SIM_ID_MAX];
    int unit;
    const dcem_profile *profile; /* borrowed; outlives the meter */
    sim_model model;
    sim_fault faults[SIM_MAX_FAULTS];
    size_t n_faults;
    int64_t start_ms;
    /* the energy integral since start, advanced to t_ms */
    int64_t t_ms;
    double energy_kwh;    /* primary */
    double secondary_kwh; /* what the meter counted: energy / (ct * pt) stretch by stretch */
    double initial_kwh;   /* the primary counter at start */
    double initial_secondary_kwh; /* the meter's counter at start */
    int64_t reset_ms;             /* INT64_MAX: no reset */
    double reset_value_kwh;       /* primary */
    int reset_done;
    double energy_at_reset, secondary_at_reset;
    double reset_secondary_kwh; /* the meter's counter right after the reset */
    /* transformer ratios, stretch by stretch, sorted; seg: the one in force */
    sim_ratio_seg ratio[SIM_MAX_RATIO_SEGS];
    size_t n_ratio, seg;
    /* the partial map */
    unsigned char refused[DCEM_PROFILE_MAX_REGS]; /* 1: exception 02 for any read of it */
    int holes;                                    /* SIM_HOLES_* */
    sim_word_run runs[DCEM_PROFILE_MAX_REGS + 1]; /* served words, merged */
    size_t n_runs;
    /* the register image */
    unsigned base;                           /* SunSpec: SIM_SUNSPEC_MODEL_ADDR, else 0 */
    unsigned sunspec_len;                    /* SunSpec: the meter model's L */
    int sf[DCEM_PROFILE_MAX_REGS];           /* 10^sf applied to the register (its sf register's
                                                value); for an sf register: the value it serves */
    int counter_reg;                         /* index of the import counter (phase 0) */
    unsigned range_start[2], range_count[2]; /* [0]: FC3, [1]: FC4; count 0: none */
    sim_meter_stats stats;
} sim_meter;

/* Sets up replica r of entry c on profile p (borrowed), starting at
 * start_ms with the scenario's clock and seed. Checks what needs the
 * profile: a rollover needs an integer counter register, refuse names
 * registers of the profile, and every ratio in force is one the profile's
 * ratio registers (if any) can hold. Returns 0, or DCEM_ECONFIG with
 * "name:line: key: what" in err. */
int sim_meter_init(sim_meter *m, const sim_meter_cfg *c, long long r, const dcem_profile *p,
                   const sim_scenario *sc, const char *name, char *err, size_t errlen);

/* Makes the primary counter at start the first value the meter's import
 * counter register can show at or above kwh: a meter carrying on from a
 * history's last reading (dcem-sim --initial) must never read below it, and
 * a float or a whole-count register cannot always hold that value exactly,
 * so the value served is at most one register step above it. Call right
 * after sim_meter_init, before the meter is advanced. Returns 0;
 * DCEM_EINVAL for a negative or non-finite kwh or a meter with a rollover
 * fault (which sets the start itself); DCEM_ERANGE when the register cannot
 * show it without wrapping. */
int sim_meter_set_initial(sim_meter *m, double kwh);

/* Advances the energy integral to t_ms; earlier times are ignored (the
 * meter serves at the latest time it has seen). */
void sim_meter_advance(sim_meter *m, int64_t t_ms);

/* The primary counter at t_ms: initial + energy, or after a reset its
 * value + the energy since. What an agent that applies the ratios in force
 * stretch by stretch would count. */
double sim_meter_counter_kwh(const sim_meter *m);

/* The counter the meter holds (secondary side, before wrapping): initial /
 * (ct * pt) at start + each stretch's energy / its ct * pt; after a reset,
 * value / (ct * pt) then + the same since. Equals sim_meter_counter_kwh on a
 * meter without transformers. */
double sim_meter_secondary_kwh(const sim_meter *m);

/* The ratios in force at the meter's time. */
const sim_ratio_seg *sim_meter_ratio(const sim_meter *m);

/* Value per raw count of register i (scale * 10^sf), and where an integer
 * counter register wraps (kWh; INFINITY for floats and non-counters). */
double sim_meter_reg_unit(const sim_meter *m, size_t i);
double sim_meter_reg_wrap(const sim_meter *m, size_t i);

/* Absolute wire address of register i. */
unsigned sim_meter_reg_address(const sim_meter *m, size_t i);

/* The value register i holds at the meter's time (canonical unit, as the
 * meter measures it: secondary side, the primary value divided by
 * dcem_ratio_factor for the ratios in force; counters wrapped; ratio
 * registers the ratios in force), for electrical state e. */
double sim_meter_reg_value(const sim_meter *m, size_t i, const sim_electrical *e,
                           const sim_glitch *g);

/* Writes every register of function (3 or 4) at the meter's time into tab,
 * which holds count registers from address start (the meter's range for
 * that function): profile registers, and for SunSpec the "SunS" marker,
 * the common block and the end marker. */
void sim_meter_fill(const sim_meter *m, int function, uint16_t *tab, unsigned start, unsigned count,
                    const sim_glitch *g);

/* Whether the meter refuses a read of [address, address + count) of
 * function (exception 02): it touches a word of a refused register of that
 * function, or, with holes: refuse, a word no register of that function
 * holds (SunSpec: the whole block from "SunS" to the end marker is held).
 * Says nothing about the range check (sim_site does that first). */
int sim_meter_refuses(const sim_meter *m, int function, unsigned address, unsigned count);

/* Whether [address, address + count) of function overlaps a counter
 * register (energy import or total), which a glitch would hit. */
int sim_meter_reads_counter(const sim_meter *m, int function, unsigned address, unsigned count);

/* Decodes register i from the words it occupies (as served) into the
 * canonical unit. Returns 0, or DCEM_ERANGE for a NaN/infinite float. */
int sim_meter_reg_decode(const sim_meter *m, size_t i, const uint16_t *words, double *value);

#endif
