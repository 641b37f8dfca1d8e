/* sim_site.h — the simulated meters of a scenario and what each Modbus
 * request gets: routed by unit id, passed through the meter's faults
 * (silence, exception, delay, glitch), checked like a device would (function,
 * register count, address range, registers and holes a partial map
 * refuses), and answered from the meter advanced to
 * the request's simulated time. Pure: profiles come through a loader
 * callback, time comes in as an argument. The transport is sim_server. */
#ifndef DCEM_SIM_SITE_H
#define DCEM_SIM_SITE_H

#include "profile.h"
#include "sim_meter.h"
#include "sim_scenario.h"

#include <stddef.h>
#include <stdint.h>

#define SIM_MAX_PROFILES 16 /* distinct models in one scenario */

/* Loads profile `model` into *out; 0, or non-zero with the reason in err. */
typedef int (*sim_profile_loader)(void *ctx, const char *model, dcem_profile *out, char *err,
                                  size_t errlen);

typedef struct sim_site {
    char name[64];
    int64_t start_ms; /* simulated time at real elapsed 0 */
    double speed;     /* simulated ms per real ms; 0: frozen */
    uint64_t rng;     /* fault dice (xorshift state, never 0) */
    sim_meter *meters;
    size_t n_meters;
    int unit_index[SIM_MAX_UNITS + 1]; /* meter index per unit id, -1: none */
    dcem_profile *profiles;            /* loaded once per model */
    size_t n_profiles;
    unsigned long unknown_unit; /* requests for units nobody serves */
} sim_site;

/* Builds the site of scenario sc (its start_ms must be set when start is
 * "now"): every replica of every meter entry, each model's profile loaded
 * once by load. name is the scenario file, for messages. Returns 0, or
 * DCEM_ECONFIG / DCEM_ENOMEM with the reason in err; *out is freed with
 * sim_site_free. */
int sim_site_new(const sim_scenario *sc, const char *name, sim_profile_loader load, void *load_ctx,
                 sim_site **out, char *err, size_t errlen);
void sim_site_free(sim_site *s);

/* Initial counters from a readings CSV (time,meter,kwh, the format
 * dcem-agent --import and dcem-audit read; a header line allowed), as
 * dcem-gen --end-counters writes it: each meter it names starts at its last
 * row's kwh, raised to what the meter's register can show
 * (sim_meter_set_initial); the times are not used. name is the file, for
 * messages. Returns 0, or DCEM_ECONFIG with "name:line: what" in err (a
 * row that is not three fields, a meter the scenario lacks, a value the
 * meter cannot start from); nothing is changed then. */
int sim_site_initial_counters(sim_site *s, const char *name, const char *buf, size_t len, char *err,
                              size_t errlen);

/* Simulated time after real_elapsed_ms of running. */
int64_t sim_site_time(const sim_site *s, int64_t real_elapsed_ms);

/* The meter serving unit, or NULL. */
sim_meter *sim_site_meter(sim_site *s, int unit);

enum {
    SIM_BUS_TCP = 0, /* a gateway: unknown units get exception 0x0B */
    SIM_BUS_RTU = 1, /* a shared line: unknown units get silence */
};

typedef enum sim_action {
    SIM_IGNORE = 0,    /* send nothing */
    SIM_EXCEPTION = 1, /* reply exception `exception` */
    SIM_REPLY = 2,     /* fill the meter's registers (with glitch) and reply */
} sim_action;

typedef struct sim_answer {
    int action;        /* sim_action */
    int exception;     /* Modbus exception code for SIM_EXCEPTION */
    int64_t delay_ms;  /* send this much later (real ms) */
    sim_meter *meter;  /* NULL when the unit is unknown */
    sim_glitch glitch; /* for SIM_REPLY */
} sim_answer;

/* What a request for unit, function, [address, address + count) arriving at
 * simulated time t_ms on bus gets. Advances the meter to t_ms and counts the
 * request in its stats. */
void sim_site_request(sim_site *s, int64_t t_ms, int bus, int unit, int function, unsigned address,
                      unsigned count, sim_answer *a);

#endif
