#include "poll.h"
#include "dcem_log.h"
#include "errors.h"

#include <errno.h>
#include <math.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_READS DCEM_AGENT_MAX_READS
#define SUNSPEC_BASE 40000u
/* Plans a poll may try while it learns a device's map; each pass that fails
 * learns at least one refused register or hole, so a few suffice for any
 * shipped profile — and the next poll goes on where this one stopped. */
#define MAX_LEARNING_PASSES 8

typedef struct device {
    size_t index;                 /* into the config's devices */
    const dcem_device_cfg *cfg;
    const dcem_profile *profile;
    unsigned base;                /* SunSpec model block address, else 0 */
    int discovered;               /* SunSpec base found */
    dcem_plan_rules rules;        /* what the device has shown of its register map */
    dcem_read_req reads[MAX_READS];
    int n_reads;
    int64_t due_ms;               /* monotonic */
    int64_t map_retry_ms;         /* monotonic: ask for refused registers again then */
    unsigned char told[DCEM_PROFILE_MAX_REGS]; /* refusal of register i logged */
    int refused_by[DCEM_PROFILE_MAX_REGS]; /* the exception that refused register i */
    dcem_device_stats stats;
    dcem_complaint complaint;
    /* the words of each register, as read this poll */
    uint16_t regw[DCEM_PROFILE_MAX_REGS][4];
    unsigned char have[DCEM_PROFILE_MAX_REGS];
    /* transformer ratios */
    int ct_reg, pt_reg;           /* the profile's ratio registers, or -1 */
    double reg_ratio[2];          /* last good ct, pt read from the meter; NAN: none */
    int ratio_held;               /* the last ratio read was 0 or absurd */
    int64_t ratio_due_ms;         /* monotonic: read the ratio registers then */
    double ct, pt;                /* in force at the last poll; 0 before the first */
    int unknown_told, mismatch_told;
    /* staleness: the counter against the energy its own power implies */
    int have_last;
    double last_kwh, last_kw, since_change_kwh;
    int64_t last_t_ms;
} device;

struct dcem_bus {
    const dcem_agent_config *config;
    const dcem_bus_cfg *cfg;
    modbus_t *mb;
    int connected;
    device *devices;
    size_t n_devices;
    unsigned long requests;       /* Modbus requests sent, all devices */
    int64_t silence_us;           /* RTU: the 3.5-character silence between frames; 0 on TCP */
    int64_t quiet_until_us;       /* monotonic: no request before this */
    dcem_complaint connect_complaint;
};

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dcem_now_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t dcem_now_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_us(int64_t t)
{
    int64_t d = t - now_us();
    if (d <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)(d / 1000000), .tv_nsec = (long)(d % 1000000) * 1000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

/* The map a device is first asked for: everything but the ratio registers. */
static void plan_afresh(device *d)
{
    dcem_plan_rules_init(&d->rules, d->profile);
    d->n_reads = d->discovered ? dcem_profile_plan_rules(d->profile, d->base, &d->rules, d->reads,
                                                         MAX_READS)
                               : 0;
}

dcem_bus *dcem_bus_new(const dcem_agent_config *c, size_t bus_index)
{
    dcem_bus *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->config = c;
    b->cfg = &c->buses[bus_index];
    b->devices = calloc(c->n_devices ? c->n_devices : 1, sizeof *b->devices);
    if (!b->devices) {
        free(b);
        return NULL;
    }
    int64_t now = dcem_now_mono_ms();
    for (size_t i = 0; i < c->n_devices; i++) {
        if (c->devices[i].bus_index != (int)bus_index) continue;
        device *d = &b->devices[b->n_devices++];
        d->index = i;
        d->cfg = &c->devices[i];
        d->profile = &c->profiles[d->cfg->profile_index];
        d->due_ms = now;
        d->ratio_due_ms = now;
        d->map_retry_ms = now + d->cfg->map_retry_s * 1000;
        d->ct_reg = dcem_profile_find(d->profile, DCEM_Q_CT_RATIO, 0);
        d->pt_reg = dcem_profile_find(d->profile, DCEM_Q_PT_RATIO, 0);
        d->reg_ratio[0] = d->reg_ratio[1] = NAN;
        d->discovered = !d->profile->sunspec_model;
        plan_afresh(d);
    }
    const dcem_bus_cfg *bc = b->cfg;
    if (bc->kind == DCEM_BUS_TCP) {
        char port[8];
        snprintf(port, sizeof port, "%d", bc->port);
        b->mb = modbus_new_tcp_pi(bc->host, port);
    } else {
        b->mb = modbus_new_rtu(bc->rtu, (int)bc->baud, "NEO"[bc->parity], (int)bc->data_bits,
                               (int)bc->stop_bits);
    }
    if (!b->mb) {
        dcem_bus_free(b);
        return NULL;
    }
    if (bc->kind == DCEM_BUS_RTU) {
        /* Modbus over serial line: frames are separated by at least 3.5
         * characters of silence (1.75 ms above 19200 baud); a request sent
         * sooner may be read by a strict meter as the tail of the last frame */
        long long bits = 1 + bc->data_bits + (bc->parity != 0) + bc->stop_bits;
        b->silence_us = bc->baud > 19200 ? 1750 : 3500000LL * bits / bc->baud;
    }
    uint32_t to = (uint32_t)bc->response_timeout_ms;
    modbus_set_response_timeout(b->mb, to / 1000, (to % 1000) * 1000);
    return b;
}

void dcem_bus_free(dcem_bus *b)
{
    if (!b) return;
    if (b->mb) {
        if (b->connected) modbus_close(b->mb);
        modbus_free(b->mb);
    }
    free(b->devices);
    free(b);
}

/* What went wrong with a request, in words: libmodbus's own texts name
 * exceptions by their number's meaning only, and a timeout as "Connection
 * timed out" even on a serial line. */
static void describe(const dcem_bus *b, int err, char *buf, size_t len)
{
    if (err >= EMBXILFUN && err <= EMBXGTAR)
        snprintf(buf, len, "exception %02d (%s)", err - MODBUS_ENOBASE, modbus_strerror(err));
    else if (err == ETIMEDOUT)
        snprintf(buf, len, "no answer within %lld ms", b->cfg->response_timeout_ms);
    else if (err == EMBBADCRC)
        snprintf(buf, len, "bad CRC (noise on the line, wrong baud rate or parity?)");
    else
        snprintf(buf, len, "%s", modbus_strerror(err));
}

static void describe_read(const dcem_bus *b, const dcem_read_req *q, int err, char *why,
                          size_t len)
{
    char what[96];
    describe(b, err, what, sizeof what);
    snprintf(why, len, "read %u+%u (fc %d): %s", q->address, q->count, q->function, what);
}

/* 0, or the errno of the failed connect (ENOENT: no such serial device). */
static int bus_connect(dcem_bus *b)
{
    if (b->connected) return 0;
    if (modbus_connect(b->mb) == -1) {
        int err = errno ? errno : EIO;
        if (b->cfg->kind == DCEM_BUS_RTU)
            dcem_complain(&b->connect_complaint, DCEM_LOG_WARN, "poll", "bus %s: cannot open %s: %s",
                          b->cfg->name, b->cfg->rtu, strerror(err));
        else
            dcem_complain(&b->connect_complaint, DCEM_LOG_WARN, "poll",
                          "bus %s: cannot connect to %s: %s", b->cfg->name, b->cfg->tcp,
                          strerror(err));
        return err;
    }
    dcem_release(&b->connect_complaint, "poll", "bus %s: connected", b->cfg->name);
    b->connected = 1;
    sleep_ms(b->cfg->connect_pause_ms);
    return 0;
}

static void bus_disconnect(dcem_bus *b)
{
    if (!b->connected) return;
    modbus_close(b->mb);
    b->connected = 0;
}

/* One request with the bus's retries. Counts what happened. 0 or errno. */
static int request(dcem_bus *b, device *d, int function, unsigned addr, unsigned count,
                   uint16_t *dest)
{
    int err = 0;
    for (long long attempt = 0; attempt <= b->cfg->retries; attempt++) {
        if ((err = bus_connect(b))) return err;
        modbus_set_slave(b->mb, (int)d->cfg->unit);
        sleep_until_us(b->quiet_until_us);
        d->stats.requests++;
        b->requests++;
        int n = function == 4 ? modbus_read_input_registers(b->mb, (int)addr, (int)count, dest)
                              : modbus_read_registers(b->mb, (int)addr, (int)count, dest);
        err = n == (int)count ? 0 : (n < 0 ? errno : EMBBADDATA);
        /* the line stays quiet for pause_ms (a slow meter's turnaround), and
         * at least the frame silence, before the next request */
        int64_t quiet = b->cfg->pause_ms * 1000;
        b->quiet_until_us = now_us() + (quiet > b->silence_us ? quiet : b->silence_us);
        if (!err) return 0;
        if (err >= EMBXILFUN && err <= EMBXGTAR) {
            d->stats.exceptions++;
            return err; /* the device answered: asking again changes nothing */
        }
        if (err == ETIMEDOUT) d->stats.timeouts++;
        else if (err == EMBBADCRC) d->stats.crc_errors++;
        else d->stats.other_errors++;
        if (b->cfg->kind == DCEM_BUS_RTU) modbus_flush(b->mb); /* drop a late answer */
        else if (err != ETIMEDOUT) {
            bus_disconnect(b); /* a broken TCP stream: start a fresh one */
            d->stats.reconnects++;
        }
    }
    return err;
}

/* SunSpec: "SunS" at 40000, then the chain of model blocks; find ours.
 * Reads the chain from the marker on, as far as dcem_sunspec_find asks. */
static int discover(dcem_bus *b, device *d, char *why, size_t len)
{
    enum { MAX_WORDS = 1024 };
    uint16_t w[MAX_WORDS];
    size_t n = 0, want = 2;
    unsigned chunk = d->profile->max_registers;
    for (;;) {
        while (n < want) {
            unsigned count = (unsigned)(want - n) < chunk ? (unsigned)(want - n) : chunk;
            int err = request(b, d, 3, SUNSPEC_BASE + (unsigned)n, count, w + n);
            if (err) {
                char what[96];
                describe(b, err, what, sizeof what);
                return snprintf(why, len, "SunSpec discovery: %s", what), err;
            }
            n += count;
        }
        unsigned addr;
        int rc = dcem_sunspec_find(w, n, SUNSPEC_BASE, d->profile->sunspec_model, &addr, NULL);
        if (!rc) {
            d->base = addr;
            d->discovered = 1;
            plan_afresh(d);
            if (d->n_reads > 0) return 0;
            d->discovered = 0;
            return snprintf(why, len, "SunSpec block at %u: cannot plan reads", addr), EMBBADDATA;
        }
        if (rc != DCEM_EFULL || addr + 2 - SUNSPEC_BASE > MAX_WORDS) {
            snprintf(why, len, "SunSpec model %d not found", d->profile->sunspec_model);
            return EMBBADDATA;
        }
        want = addr + 2 - SUNSPEC_BASE;
    }
}

/* ---- reads that survive partial register maps ---- */

/* Exceptions that say "not this part of the map": illegal data address
 * (02), illegal data value (03: often a count across an unserved hole) and
 * server device failure (04, what some firmware answers for both). Busy
 * (06) and the rest are a device's passing trouble, not its map. */
static int map_refusal(int err)
{
    return err == EMBXILADD || err == EMBXILVAL || err == EMBXSFAIL;
}

static unsigned reg_addr(const device *d, size_t i)
{
    return d->profile->regs[i].address + d->base;
}

/* The registers marked READ in rules that request q covers, in address
 * order (the order dcem_profile_plan_rules built it in). */
static size_t covered(const device *d, const dcem_plan_rules *rules, const dcem_read_req *q,
                      size_t *idx)
{
    const dcem_profile *p = d->profile;
    size_t n = 0;
    for (size_t i = 0; i < p->n_regs; i++) {
        const dcem_register *g = &p->regs[i];
        unsigned a = reg_addr(d, i), w = dcem_regtype_words(g->type);
        if (rules->reg[i] != DCEM_PLAN_READ || g->function != q->function || a < q->address ||
            a + w > q->address + q->count)
            continue;
        size_t j = n++;
        for (; j > 0 && reg_addr(d, idx[j - 1]) > a; j--) idx[j] = idx[j - 1];
        idx[j] = i;
    }
    return n;
}

/* One request for registers idx[0..n) (same function, address order); on
 * success their words are kept in d->regw. */
static int read_regs(dcem_bus *b, device *d, const size_t *idx, size_t n)
{
    const dcem_profile *p = d->profile;
    unsigned from = reg_addr(d, idx[0]), to = from;
    for (size_t k = 0; k < n; k++) {
        unsigned e = reg_addr(d, idx[k]) + dcem_regtype_words(p->regs[idx[k]].type);
        if (e > to) to = e;
    }
    uint16_t w[125];
    int err = request(b, d, p->regs[idx[0]].function, from, to - from, w);
    if (err) return err;
    for (size_t k = 0; k < n; k++) {
        size_t i = idx[k];
        memcpy(d->regw[i], w + (reg_addr(d, i) - from),
               dcem_regtype_words(p->regs[i].type) * sizeof(uint16_t));
        d->have[i] = 1;
        d->told[i] = 0; /* served again: a later refusal is news */
    }
    return 0;
}

static int isolate(dcem_bus *b, device *d, dcem_plan_rules *rules, const size_t *idx, size_t n,
                   int *whole);

/* Registers idx[0..n) were refused together with exception err: halves
 * them until the refused registers stand alone, marked REFUSED in rules;
 * two halves that are served alone but not together mark the hole between
 * them as a cut. Returns 0 (everything served was read) or an error that is
 * not a map refusal (the poll fails). */
static int split(dcem_bus *b, device *d, dcem_plan_rules *rules, const size_t *idx, size_t n,
                 int err)
{
    if (n == 1) {
        rules->reg[idx[0]] = DCEM_PLAN_REFUSED;
        d->refused_by[idx[0]] = err;
        return 0;
    }
    size_t h = n / 2;
    int w1, w2;
    if ((err = isolate(b, d, rules, idx, h, &w1))) return err;
    if ((err = isolate(b, d, rules, idx + h, n - h, &w2))) return err;
    if (w1 && w2) rules->cut[idx[h - 1]] = 1;
    return 0;
}

/* Reads registers idx[0..n), split as above when refused; *whole is 1 when
 * one request did it. */
static int isolate(dcem_bus *b, device *d, dcem_plan_rules *rules, const size_t *idx, size_t n,
                   int *whole)
{
    int err = read_regs(b, d, idx, n);
    *whole = !err;
    if (!err) return 0;
    return map_refusal(err) ? split(b, d, rules, idx, n, err) : err;
}

/* Reads what rules marks READ with the given requests, learning into rules
 * what the device refuses. When a refused request holds the energy counter,
 * the counter is asked for alone first: a meter that refuses it fails the
 * poll at the cost of one request, not of a split of everything. */
static int read_planned(dcem_bus *b, device *d, dcem_plan_rules *rules, const dcem_read_req *reads,
                        int n_reads, char *why, size_t len)
{
    size_t idx[DCEM_PROFILE_MAX_REGS];
    int e = dcem_profile_find(d->profile, DCEM_Q_ENERGY_IMPORT_KWH, 0);
    const dcem_read_req *q = NULL;
    int err = 0;
    for (int k = 0; k < n_reads && !err; k++) {
        q = &reads[k];
        size_t n = covered(d, rules, q, idx);
        if (!n || !(err = read_regs(b, d, idx, n))) continue;
        if (!map_refusal(err)) break;
        for (size_t j = 0; n > 1 && j < n; j++) {
            if (idx[j] != (size_t)e) continue;
            int cerr = read_regs(b, d, idx + j, 1);
            if (map_refusal(cerr)) {
                rules->reg[e] = DCEM_PLAN_REFUSED;
                d->refused_by[e] = cerr;
                return 0;
            }
            if (cerr) {
                describe_read(b, q, cerr, why, len);
                return cerr;
            }
        }
        err = split(b, d, rules, idx, n, err);
    }
    if (err) describe_read(b, q, err, why, len);
    return err;
}

/* The 1-based number manuals give a register (30001 + address for input
 * registers, 40001 + address for holding registers), to find it there. */
static unsigned doc_ref(const dcem_register *g, unsigned addr)
{
    return (g->function == 4 ? 30001u : 40001u) + addr;
}

/* Logs each register newly refused, once, with its addresses. */
static void tell_refused(dcem_bus *b, device *d)
{
    const dcem_profile *p = d->profile;
    for (size_t i = 0; i < p->n_regs; i++) {
        if (d->rules.reg[i] != DCEM_PLAN_REFUSED || d->told[i]) continue;
        const dcem_register *g = &p->regs[i];
        char what[96];
        describe(b, d->refused_by[i], what, sizeof what);
        DCEM_LOGW("poll",
                  "meter %s (bus %s unit %lld): register %s (fc %d, 0x%04X = %u) refused: %s; "
                  "left out of the plan, asked for again in %lld s",
                  d->cfg->meter, b->cfg->name, d->cfg->unit, g->name, g->function, reg_addr(d, i),
                  doc_ref(g, reg_addr(d, i)), what, d->cfg->map_retry_s);
        d->told[i] = 1;
    }
}

/* ---- transformer ratios ---- */

/* Reads the profile's ratio registers (at the first poll and every
 * ratio_every_s). A ratio the meter gives as 0 or absurd is not applied:
 * the last good one stays and readings say so until a good one is read. */
static int read_ratios(dcem_bus *b, device *d, char *why, size_t len)
{
    const dcem_profile *p = d->profile;
    dcem_plan_rules only;
    memset(&only, 0, sizeof only);
    for (size_t i = 0; i < p->n_regs; i++) {
        only.reg[i] = d->rules.reg[i] == DCEM_PLAN_REFUSED ? DCEM_PLAN_REFUSED : DCEM_PLAN_SKIP;
        only.cut[i] = d->rules.cut[i];
    }
    int regs[2] = {d->ct_reg, d->pt_reg};
    for (int k = 0; k < 2; k++)
        if (regs[k] >= 0 && only.reg[regs[k]] != DCEM_PLAN_REFUSED)
            only.reg[regs[k]] = DCEM_PLAN_READ;
    dcem_read_req reads[2];
    int n = dcem_profile_plan_rules(p, d->base, &only, reads, 2);
    if (n < 0) n = 0;
    int err = read_planned(b, d, &only, reads, n, why, len);
    if (err) return err;
    int held = 0;
    for (int k = 0; k < 2; k++) {
        if (regs[k] < 0) continue;
        if (only.reg[regs[k]] == DCEM_PLAN_REFUSED) {
            d->rules.reg[regs[k]] = DCEM_PLAN_REFUSED;
            continue;
        }
        double v;
        if (d->have[regs[k]] &&
            !dcem_profile_value(p, (size_t)regs[k], d->regw[regs[k]], NULL, &v) &&
            dcem_ratio_valid(v))
            d->reg_ratio[k] = v;
        else
            held = 1;
    }
    if (held && !d->ratio_held)
        DCEM_LOGW("poll", "meter %s (bus %s unit %lld): a ratio register reads 0 or above %g: "
                  "keeping the last good ratio", d->cfg->meter, b->cfg->name, d->cfg->unit,
                  DCEM_RATIO_MAX);
    d->ratio_held = held;
    return 0;
}

/* The ratio in force for k (0: CT, 1: PT): the config's, else the meter's
 * register's, else 1. */
static double ratio_in_force(device *d, int k, int *source)
{
    double cfg = k ? d->cfg->pt_ratio : d->cfg->ct_ratio;
    int reg = k ? d->pt_reg : d->ct_reg;
    if (!isnan(cfg)) return *source = DCEM_RATIO_CONFIG, cfg;
    if (!isnan(d->reg_ratio[k])) return *source = DCEM_RATIO_REGISTER, d->reg_ratio[k];
    *source = reg >= 0 ? DCEM_RATIO_UNKNOWN : DCEM_RATIO_NONE;
    return 1;
}

static void apply_ratios(dcem_bus *b, device *d, dcem_poll_result *r)
{
    r->ct = ratio_in_force(d, 0, &r->ct_source);
    r->pt = ratio_in_force(d, 1, &r->pt_source);
    r->ratio_held = d->ratio_held;
    const char *m = d->cfg->meter;
    if ((r->ct_source == DCEM_RATIO_UNKNOWN || r->pt_source == DCEM_RATIO_UNKNOWN) &&
        !d->unknown_told) {
        DCEM_LOGW("poll", "meter %s (bus %s unit %lld): its transformer ratio is unknown (the "
                  "meter refuses its ratio register and none is configured): publishing with "
                  "ratio 1", m, b->cfg->name, d->cfg->unit);
        d->unknown_told = 1;
    }
    for (int k = 0; k < 2; k++) {
        double cfg = k ? d->cfg->pt_ratio : d->cfg->ct_ratio, reg = d->reg_ratio[k];
        if (isnan(cfg) || isnan(reg) || cfg == reg) continue;
        r->ratio_mismatch = 1;
        if (!(d->mismatch_told & (1 << k)))
            DCEM_LOGW("poll", "meter %s (bus %s unit %lld): configured %s_ratio %g differs from "
                      "the meter's register (%g): the configured one is applied",
                      m, b->cfg->name, d->cfg->unit, k ? "pt" : "ct", cfg, reg);
        d->mismatch_told |= 1 << k;
    }
    if (d->ct && (d->ct != r->ct || d->pt != r->pt)) {
        d->stats.ratio_changes++;
        DCEM_LOGI("poll", "meter %s (bus %s unit %lld): ratios now CT %g PT %g (were %g, %g): "
                  "its counter starts a new epoch at the new scale", m, b->cfg->name,
                  d->cfg->unit, r->ct, r->pt, d->ct, d->pt);
    }
    d->ct = r->ct;
    d->pt = r->pt;
}

/* Decodes every measured register into r, primary side. */
static void decode(const device *d, dcem_poll_result *r)
{
    const dcem_profile *p = d->profile;
    r->n_values = 0;
    for (size_t i = 0; i < p->n_regs; i++) {
        const dcem_register *g = &p->regs[i];
        if (!dcem_quantity_measured(g->quantity)) continue;
        const uint16_t *sf = NULL;
        int refused = d->rules.reg[i] == DCEM_PLAN_REFUSED;
        if (g->scale_register[0])
            for (size_t k = 0; k < p->n_regs; k++)
                if (!strcmp(p->regs[k].name, g->scale_register)) {
                    sf = d->have[k] ? d->regw[k] : NULL;
                    refused |= d->rules.reg[k] == DCEM_PLAN_REFUSED;
                }
        dcem_poll_value *v = &r->values[r->n_values++];
        v->reg = (int)i;
        v->quantity = g->quantity;
        v->phase = g->phase;
        v->unsupported = refused;
        int rc = refused ? DCEM_ENOTFOUND
                 : d->have[i] ? dcem_profile_value(p, i, d->regw[i], sf, &v->value)
                              : DCEM_EINVAL;
        v->valid = rc == 0;
        v->absent = rc == DCEM_ENOTFOUND;
        if (v->valid) v->value *= dcem_ratio_factor(g->quantity, r->ct, r->pt);
        if (!v->valid && g->quantity == DCEM_Q_ENERGY_IMPORT_KWH && g->phase == 0)
            r->quality = DCEM_WIRE_Q_OUT_OF_RANGE;
    }
}

#define STALE_MIN_KWH 1.0

/* A counter is stale when it has not moved although the device's own power
 * readings say that more than two counter steps (and at least 1 kWh) have
 * flowed since it last did: a frozen register, not a quiet load. The step
 * of a float counter grows with its value (2^-23 of it for f32); that of an
 * integer counter is its scale times the ratios. */
static void check_stale(device *d, dcem_poll_result *r)
{
    double kwh = NAN, kw = NAN;
    for (size_t i = 0; i < r->n_values; i++) {
        const dcem_poll_value *v = &r->values[i];
        if (!v->valid || v->phase) continue;
        if (v->quantity == DCEM_Q_ENERGY_IMPORT_KWH) kwh = v->value;
        if (v->quantity == DCEM_Q_POWER_KW) kw = v->value;
    }
    if (isnan(kwh)) return;
    if (d->have_last && !isnan(kw) && !isnan(d->last_kw) && r->t_ms > d->last_t_ms)
        d->since_change_kwh += (d->last_kw + kw) / 2 * (double)(r->t_ms - d->last_t_ms) / 3.6e6;
    if (!d->have_last || kwh != d->last_kwh) d->since_change_kwh = 0;
    int e = dcem_profile_find(d->profile, DCEM_Q_ENERGY_IMPORT_KWH, 0);
    const dcem_register *g = &d->profile->regs[e];
    double step = g->type == DCEM_F32 ? fabs(kwh) * 0x1p-23
                  : g->type == DCEM_F64 ? fabs(kwh) * 0x1p-52
                                        : fabs(g->scale) * r->ct * r->pt;
    if (d->since_change_kwh > fmax(2 * step, STALE_MIN_KWH) && r->quality == DCEM_WIRE_Q_OK)
        r->quality = DCEM_WIRE_Q_STALE;
    d->have_last = 1;
    d->last_kwh = kwh;
    d->last_kw = kw;
    d->last_t_ms = r->t_ms;
}

/* Reads the device's registers for one poll: the ratios when due, then the
 * plan; learns what the device refuses. 0, or an error with why set. */
static int read_device(dcem_bus *b, device *d, int64_t now, char *why, size_t len)
{
    memset(d->have, 0, sizeof d->have);
    if (now >= d->map_retry_ms) { /* firmware can be replaced: ask for everything again */
        d->map_retry_ms = now + d->cfg->map_retry_s * 1000;
        plan_afresh(d);
    }
    dcem_plan_rules before = d->rules;
    int ratios_due = (d->ct_reg >= 0 || d->pt_reg >= 0) && now >= d->ratio_due_ms;
    int err = ratios_due ? read_ratios(b, d, why, len) : 0;
    if (err) return err;
    if (memcmp(&before, &d->rules, sizeof before)) /* a refused ratio register: read around it */
        d->n_reads = dcem_profile_plan_rules(d->profile, d->base, &d->rules, d->reads, MAX_READS);
    /* A pass that learns what the device refuses plans again and reads
     * again, until a plan is served whole: from the next poll on the device
     * costs exactly the requests of the map it serves. */
    for (int pass = 0; pass < MAX_LEARNING_PASSES; pass++) {
        dcem_plan_rules learned = d->rules;
        err = read_planned(b, d, &learned, d->reads, d->n_reads, why, len);
        if (err) return err;
        /* The energy counter is never lost to an optional value, and a meter
         * that refuses its counter is failing, not partial: nothing is learned. */
        int e = dcem_profile_find(d->profile, DCEM_Q_ENERGY_IMPORT_KWH, 0);
        if (learned.reg[e] == DCEM_PLAN_REFUSED) {
            const dcem_register *g = &d->profile->regs[e];
            char what[96];
            describe(b, d->refused_by[e], what, sizeof what);
            snprintf(why, len, "energy counter %s (fc %d, 0x%04X = %u) refused: %s", g->name,
                     g->function, reg_addr(d, (size_t)e), doc_ref(g, reg_addr(d, (size_t)e)), what);
            d->rules = before;
            d->n_reads =
                dcem_profile_plan_rules(d->profile, d->base, &d->rules, d->reads, MAX_READS);
            return d->refused_by[e];
        }
        if (!memcmp(&learned, &d->rules, sizeof learned)) break;
        d->rules = learned;
        d->n_reads = dcem_profile_plan_rules(d->profile, d->base, &d->rules, d->reads, MAX_READS);
        unsigned long refused = 0;
        for (size_t i = 0; i < d->profile->n_regs; i++)
            refused += learned.reg[i] == DCEM_PLAN_REFUSED;
        d->stats.unsupported = refused;
    }
    if (ratios_due) d->ratio_due_ms = now + d->cfg->ratio_every_s * 1000;
    return 0;
}

/* Polls one device now. */
static void poll_device(dcem_bus *b, device *d, dcem_poll_fn fn, void *ctx)
{
    dcem_poll_result r = {.device = d->index, .meter = d->cfg->meter};
    d->stats.polls++;
    unsigned long requests = b->requests;
    int err = 0;
    if (!d->discovered) err = discover(b, d, r.why, sizeof r.why);
    if (!err) err = read_device(b, d, dcem_now_mono_ms(), r.why, sizeof r.why);
    r.requests = b->requests - requests;
    /* the values were measured when the device answered */
    r.t_ms = dcem_now_wall_ms();
    int64_t now = dcem_now_mono_ms();
    if (err) {
        r.quality = DCEM_WIRE_Q_COMM_ERROR;
        d->stats.failed++;
        int64_t poll = d->cfg->poll_ms;
        d->stats.backoff_ms = d->stats.backoff_ms ? d->stats.backoff_ms * 2 : poll;
        if (d->stats.backoff_ms > b->cfg->backoff_max_ms) d->stats.backoff_ms = b->cfg->backoff_max_ms;
        d->due_ms = now + d->stats.backoff_ms;
        dcem_complain(&d->complaint, DCEM_LOG_WARN, "poll", "meter %s (bus %s unit %lld): %s",
                      d->cfg->meter, b->cfg->name, d->cfg->unit, r.why);
    } else {
        tell_refused(b, d);
        apply_ratios(b, d, &r);
        decode(d, &r);
        check_stale(d, &r);
        d->stats.ok++;
        d->stats.backoff_ms = 0;
        dcem_release(&d->complaint, "poll", "meter %s (bus %s unit %lld): answering again",
                     d->cfg->meter, b->cfg->name, d->cfg->unit);
        /* keep the schedule; after a stall, start afresh from now */
        d->due_ms += d->cfg->poll_ms;
        if (d->due_ms <= now) d->due_ms = now + d->cfg->poll_ms;
    }
    fn(ctx, &r);
}

void dcem_bus_poll_once(dcem_bus *b, dcem_poll_fn fn, void *ctx)
{
    for (size_t i = 0; i < b->n_devices; i++) poll_device(b, &b->devices[i], fn, ctx);
}

#define STATS_EVERY_MS 300000

/* One line per device with its counters (from the bus's own thread). */
static void log_stats(const dcem_bus *b)
{
    for (size_t i = 0; i < b->n_devices; i++) {
        const device *d = &b->devices[i];
        const dcem_device_stats *s = &d->stats;
        DCEM_LOGI("poll",
                  "meter %s (bus %s unit %lld): %lu polls, %lu ok, %lu failed; %lu requests, "
                  "%lu exceptions, %lu timeouts, %lu crc errors, %lu other, %lu reconnects; "
                  "%lu unsupported registers, %lu ratio changes",
                  d->cfg->meter, b->cfg->name, d->cfg->unit, s->polls, s->ok, s->failed,
                  s->requests, s->exceptions, s->timeouts, s->crc_errors, s->other_errors,
                  s->reconnects, s->unsupported, s->ratio_changes);
    }
}

void dcem_bus_run(dcem_bus *b, atomic_int *stop, dcem_poll_fn fn, void *ctx)
{
    int64_t stats_at = dcem_now_mono_ms() + STATS_EVERY_MS;
    while (!atomic_load(stop) && b->n_devices) {
        if (dcem_now_mono_ms() >= stats_at) {
            log_stats(b);
            stats_at += STATS_EVERY_MS;
        }
        device *next = &b->devices[0];
        for (size_t i = 1; i < b->n_devices; i++)
            if (b->devices[i].due_ms < next->due_ms) next = &b->devices[i];
        /* sleep in short steps so a stop request is honoured quickly */
        for (int64_t wait; !atomic_load(stop) && (wait = next->due_ms - dcem_now_mono_ms()) > 0;)
            sleep_ms(wait < 100 ? wait : 100);
        if (atomic_load(stop)) break;
        poll_device(b, next, fn, ctx);
    }
    log_stats(b);
    bus_disconnect(b);
}

int dcem_bus_stats(const dcem_bus *b, size_t i, size_t *device_index, dcem_device_stats *s)
{
    if (i >= b->n_devices) return -1;
    *device_index = b->devices[i].index;
    *s = b->devices[i].stats;
    return 0;
}
