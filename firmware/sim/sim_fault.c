#include "sim_fault.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const sim_fault_names[] = {"timeout", "exception", "slow",  "rollover",
                                       "reset",   "glitch",    "ratio", NULL};
const char *const sim_glitch_names[] = {"zero", "spike", NULL};

double sim_fault_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

/* Inside the fault's window, and the dice (if any) say yes. The dice are
 * thrown only inside the window, so a window does not shift later draws. */
static int strikes(const sim_fault *f, double t_s, uint64_t *rng)
{
    double from = isnan(f->from_s) ? 0 : f->from_s;
    if (t_s < from) return 0;
    if (!isnan(f->until_s) && t_s >= f->until_s) return 0;
    if (isnan(f->probability) || f->probability >= 1) return 1;
    return sim_fault_random(rng) < f->probability;
}

void sim_fault_decide(const sim_fault *faults, size_t n, double t_s, uint64_t *rng, sim_fate *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        const sim_fault *f = &faults[i];
        switch (f->kind) {
        case SIM_FAULT_TIMEOUT:
            if (strikes(f, t_s, rng)) out->drop = 1;
            break;
        case SIM_FAULT_EXCEPTION:
            if (strikes(f, t_s, rng) && !out->exception)
                out->exception = f->code > 0 ? (int)f->code : 4;
            break;
        case SIM_FAULT_SLOW:
            if (strikes(f, t_s, rng) && f->delay_ms > out->delay_ms) out->delay_ms = f->delay_ms;
            break;
        default:
            break;
        }
    }
    if (out->drop) out->exception = 0;
}

int sim_fault_glitch(sim_fault *faults, size_t n, double t_s, uint64_t *rng, int *kind,
                     double *spike_kwh)
{
    for (size_t i = 0; i < n; i++) {
        sim_fault *f = &faults[i];
        if (f->kind != SIM_FAULT_GLITCH) continue;
        int hit;
        if (!isnan(f->at_s)) {
            hit = !f->fired && t_s >= f->at_s;
            if (hit) f->fired = 1;
        } else {
            hit = strikes(f, t_s, rng);
        }
        if (hit) {
            *kind = f->glitch < 0 ? SIM_GLITCH_ZERO : f->glitch;
            *spike_kwh = f->spike_kwh;
            return 1;
        }
    }
    return 0;
}

/* Which keys each kind takes. */
enum {
    K_WINDOW = 1u << 0, /* from_s, until_s, probability */
    K_CODE = 1u << 1,
    K_DELAY = 1u << 2,
    K_AFTER = 1u << 3,
    K_AT = 1u << 4,
    K_VALUE = 1u << 5,
    K_GLITCH = 1u << 6, /* glitch, spike_kwh */
    K_FROM = 1u << 7,   /* from_s alone (a window's start is part of K_WINDOW) */
    K_RATIO = 1u << 8,  /* ct_ratio, pt_ratio */
};

static const unsigned takes[SIM_FAULT_COUNT] = {
    [SIM_FAULT_TIMEOUT] = K_WINDOW,        [SIM_FAULT_EXCEPTION] = K_WINDOW | K_CODE,
    [SIM_FAULT_SLOW] = K_WINDOW | K_DELAY, [SIM_FAULT_ROLLOVER] = K_AFTER,
    [SIM_FAULT_RESET] = K_AT | K_VALUE,    [SIM_FAULT_GLITCH] = K_WINDOW | K_AT | K_GLITCH,
    [SIM_FAULT_RATIO] = K_FROM | K_RATIO,
};

int sim_fault_check(const sim_fault *f, char *why, size_t whylen)
{
    if (f->kind < 0 || f->kind >= SIM_FAULT_COUNT) {
        snprintf(why, whylen, "unknown kind");
        return 1;
    }
    const char *kind = sim_fault_names[f->kind];
    unsigned t = takes[f->kind];
    struct {
        const char *key;
        int given;
        unsigned group;
    } keys[] = {
        {"from_s", !isnan(f->from_s), K_WINDOW | K_FROM},
        {"until_s", !isnan(f->until_s), K_WINDOW},
        {"probability", !isnan(f->probability), K_WINDOW},
        {"code", f->code >= 0, K_CODE},
        {"delay_ms", f->delay_ms >= 0, K_DELAY},
        {"after_s", !isnan(f->after_s), K_AFTER},
        {"at_s", !isnan(f->at_s), K_AT},
        {"value_kwh", !isnan(f->value_kwh), K_VALUE},
        {"glitch", f->glitch >= 0, K_GLITCH},
        {"spike_kwh", !isnan(f->spike_kwh), K_GLITCH},
        {"ct_ratio", !isnan(f->ct_ratio), K_RATIO},
        {"pt_ratio", !isnan(f->pt_ratio), K_RATIO},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].given && !(t & keys[i].group)) {
            snprintf(why, whylen, "'%s' does not apply to kind '%s'", keys[i].key, kind);
            return 1;
        }
    if ((t & K_DELAY) && f->delay_ms < 0) {
        snprintf(why, whylen, "kind '%s' needs 'delay_ms'", kind);
        return 1;
    }
    if ((t & K_AFTER) && isnan(f->after_s)) {
        snprintf(why, whylen, "kind '%s' needs 'after_s'", kind);
        return 1;
    }
    if (f->kind == SIM_FAULT_RESET && isnan(f->at_s)) {
        snprintf(why, whylen, "kind 'reset' needs 'at_s'");
        return 1;
    }
    if (f->kind == SIM_FAULT_RATIO) {
        if (isnan(f->from_s)) {
            snprintf(why, whylen, "kind 'ratio' needs 'from_s'");
            return 1;
        }
        if (isnan(f->ct_ratio) && isnan(f->pt_ratio)) {
            snprintf(why, whylen, "kind 'ratio' needs 'ct_ratio' or 'pt_ratio'");
            return 1;
        }
    }
    if (f->kind == SIM_FAULT_GLITCH) {
        int window = !isnan(f->from_s) || !isnan(f->until_s) || !isnan(f->probability);
        if (!isnan(f->at_s) && window) {
            snprintf(why, whylen, "a glitch takes 'at_s' (once) or a window/probability, not both");
            return 1;
        }
        if (!isnan(f->spike_kwh) && f->glitch != SIM_GLITCH_SPIKE) {
            snprintf(why, whylen, "'spike_kwh' needs 'glitch: spike'");
            return 1;
        }
    }
    if (!isnan(f->from_s) && !isnan(f->until_s) && f->until_s <= f->from_s) {
        snprintf(why, whylen, "'until_s' must be after 'from_s'");
        return 1;
    }
    return 0;
}
