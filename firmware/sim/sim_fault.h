/* sim_fault.h — the faults a simulated meter can be told to show, and the
 * decision, request by request, of which of them strike: no answer, an
 * exception reply, a slow answer, a glitched counter. Counter rollover and
 * reset shape the counter itself, and a ratio change the transformer ratios
 * it measures behind (sim_meter). Pure: the random draws come
 * from a caller-held xorshift state, so a seed replays a run. */
#ifndef DCEM_SIM_FAULT_H
#define DCEM_SIM_FAULT_H

#include <stddef.h>
#include <stdint.h>

typedef enum sim_fault_kind {
    SIM_FAULT_TIMEOUT = 0, /* the request gets no answer */
    SIM_FAULT_EXCEPTION,   /* an exception reply with code */
    SIM_FAULT_SLOW,        /* the answer comes delay_ms late */
    SIM_FAULT_ROLLOVER,    /* the counter starts after_s short of its wrap */
    SIM_FAULT_RESET,       /* the counter restarts from value_kwh at at_s */
    SIM_FAULT_GLITCH,      /* one answer carries 0 or a spike as the counter */
    SIM_FAULT_RATIO,       /* from from_s the meter runs on other CT/PT ratios */
    SIM_FAULT_COUNT
} sim_fault_kind;

/* Names as in scenario files, NULL-terminated, indexed by sim_fault_kind. */
extern const char *const sim_fault_names[];

enum { SIM_GLITCH_ZERO = 0, SIM_GLITCH_SPIKE = 1 };
extern const char *const sim_glitch_names[]; /* "zero", "spike" */

/* One fault as declared in a scenario. Times are simulated seconds after the
 * scenario's start. Absent doubles are NAN, absent integers -1. */
typedef struct sim_fault {
    int kind;           /* sim_fault_kind */
    double from_s;      /* window start (timeout, exception, slow, glitch); ratio: when */
    double until_s;     /* window end, exclusive; NAN: open */
    double probability; /* per request inside the window; NAN: 1 */
    double at_s;        /* reset: when; glitch: the first request from then */
    double after_s;     /* rollover: the counter wraps this long after start */
    double value_kwh;   /* reset: the counter's new value (NAN: 0) */
    double spike_kwh;   /* glitch spike: primary kWh added to the counter (NAN: 24 h at
                           rated) */
    double ct_ratio;    /* ratio: the new CT ratio (NAN: unchanged) */
    double pt_ratio;    /* ratio: the new PT ratio (NAN: unchanged) */
    long long code;     /* exception code 1..255 (-1: 4, server failure) */
    long long delay_ms; /* slow: how late */
    int glitch;         /* SIM_GLITCH_*; -1: zero */
    int line;           /* where it is declared */
    int fired;          /* run time: a one-shot glitch has been served */
} sim_fault;

/* What the faults do to one request. */
typedef struct sim_fate {
    int drop;         /* 1: no answer */
    int exception;    /* > 0: answer this exception code instead */
    int64_t delay_ms; /* answer this late (the largest active slow fault) */
} sim_fate;

/* The fate of a request arriving t_s simulated seconds after start. A drop
 * outranks an exception, which outranks a delay. */
void sim_fault_decide(const sim_fault *faults, size_t n, double t_s, uint64_t *rng, sim_fate *out);

/* Whether a request that reads the counter at t_s gets a glitch, and which
 * (SIM_GLITCH_*) with what spike (NAN: 24 h at rated). One-shot glitches
 * (at_s) are marked fired. Returns 1 when a glitch strikes. */
int sim_fault_glitch(sim_fault *faults, size_t n, double t_s, uint64_t *rng, int *kind,
                     double *spike_kwh);

/* Checks the keys given for a fault's kind: rejects keys that do not apply
 * and missing required ones. Returns 0, or 1 with the reason in why. */
int sim_fault_check(const sim_fault *f, char *why, size_t whylen);

/* xorshift64*: next value in [0, 1); *state must be non-zero. */
double sim_fault_random(uint64_t *state);

#endif
