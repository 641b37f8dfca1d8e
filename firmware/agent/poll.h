/* poll.h — polls the devices of one Modbus bus with libmodbus, TCP or RTU:
 * each device's registers in the coalesced reads its profile plans, on the
 * monotonic clock, each device isolated with its own retries and a capped
 * exponential backoff reset on success, so one dead device costs the others
 * at most its own timeout. Values are decoded with common/profile and
 * stamped with the time they were measured. */
#ifndef DCEM_POLL_H
#define DCEM_POLL_H

#include "agent_config.h"
#include "wire.h"

#include <stdatomic.h>
#include <stdint.h>


typedef struct dcem_poll_value {
    int reg;        /* index into the profile's registers */
    int quantity;   /* dcem_quantity */
    int phase;
    double value;   /* canonical unit */
    int valid;      /* 0: NaN/Inf/out of range: never handed on as a number */
    int absent;     /* the device says it does not implement this value */
    int unsupported; /* the device refuses the register (exception 02/03/04): left
                        out of its plan until the map is tried again */
} dcem_poll_value;

/* Where the transformer ratios applied to a reading come from. */
typedef enum dcem_ratio_source {
    DCEM_RATIO_NONE = 0,   /* a primary-side meter: no ratio registers, none configured */
    DCEM_RATIO_REGISTER,   /* read from the meter's ct_ratio / pt_ratio registers */
    DCEM_RATIO_CONFIG,     /* devices[].ct_ratio / pt_ratio (wins over a register) */
    DCEM_RATIO_UNKNOWN,    /* the profile has ratio registers, the meter refused them and
                              nothing is configured: 1 is applied (said once in the log) */
} dcem_ratio_source;

typedef struct dcem_poll_result {
    size_t device;            /* index into the config's devices */
    const char *meter;        /* the device's meter id */
    int64_t t_ms;             /* UTC ms when the values were measured */
    int quality;              /* dcem_wire_quality */
    dcem_poll_value values[DCEM_PROFILE_MAX_REGS];
    size_t n_values;
    double ct, pt;            /* ratios in force, applied to every value (1: none) */
    int ct_source, pt_source; /* dcem_ratio_source */
    int ratio_held;           /* a ratio register read 0 or absurd: the last good one kept */
    int ratio_mismatch;       /* the configured ratio differs from the meter's register */
    size_t requests;          /* Modbus requests this poll took */
    char why[160];            /* for a comm error: what failed */
} dcem_poll_result;

typedef void (*dcem_poll_fn)(void *ctx, const dcem_poll_result *r);

/* Counters of one device, since start. */
typedef struct dcem_device_stats {
    unsigned long polls, ok, failed;
    unsigned long requests, exceptions, timeouts, crc_errors, other_errors;
    unsigned long reconnects;
    unsigned long unsupported;  /* registers refused at the last learning of the map */
    unsigned long ratio_changes; /* ratios in force changed while running */
    int64_t backoff_ms;       /* current, 0 when healthy */
} dcem_device_stats;

typedef struct dcem_bus dcem_bus;

/* The bus of c->buses[bus_index] with the devices configured on it. c must
 * outlive the bus. NULL when out of memory. */
dcem_bus *dcem_bus_new(const dcem_agent_config *c, size_t bus_index);
void dcem_bus_free(dcem_bus *b);

/* Polls each device when due until *stop becomes non-zero, handing each
 * result to fn (called from this thread). Returns when stopped. */
void dcem_bus_run(dcem_bus *b, atomic_int *stop, dcem_poll_fn fn, void *ctx);

/* Polls every device of the bus once, now, in order (dcem-agent --once). */
void dcem_bus_poll_once(dcem_bus *b, dcem_poll_fn fn, void *ctx);

/* Stats of the bus's i-th device; returns the config index of that device
 * through *device. 0, or -1 when i is past the last device. */
int dcem_bus_stats(const dcem_bus *b, size_t i, size_t *device, dcem_device_stats *s);

/* Monotonic and wall clocks in ms (CLOCK_MONOTONIC, CLOCK_REALTIME). */
int64_t dcem_now_mono_ms(void);
int64_t dcem_now_wall_ms(void);

#endif
