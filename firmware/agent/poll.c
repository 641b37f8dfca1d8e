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

typedef struct device {
    size_t index;                 /* into the config's devices */
    const dcem_device_cfg *cfg;
    const dcem_profile *profile;
    unsigned base;                /* SunSpec model block address, else 0 */
    int discovered;               /* SunSpec base found */
    dcem_read_req reads[MAX_READS];
    int n_reads;
    int64_t due_ms;               /* monotonic */
    dcem_device_stats stats;
    dcem_complaint complaint;
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
    uint16_t (*words)[125];       /* MAX_READS answers of the device being polled */
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

static void sleep_ms(int64_t ms)
{
    if (ms <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

dcem_bus *dcem_bus_new(const dcem_agent_config *c, size_t bus_index)
{
    dcem_bus *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->config = c;
    b->cfg = &c->buses[bus_index];
    b->devices = calloc(c->n_devices ? c->n_devices : 1, sizeof *b->devices);
    b->words = calloc(MAX_READS, sizeof *b->words);
    if (!b->devices || !b->words) {
        free(b->devices);
        free(b->words);
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
        if (!d->profile->sunspec_model) {
            d->n_reads = dcem_profile_plan(d->profile, 0, d->reads, MAX_READS);
            d->discovered = 1;
        }
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
    free(b->words);
    free(b);
}

static int bus_connect(dcem_bus *b)
{
    if (b->connected) return 0;
    if (modbus_connect(b->mb) == -1) {
        dcem_complain(&b->connect_complaint, DCEM_LOG_WARN, "poll", "bus %s: cannot connect: %s",
                      b->cfg->name, modbus_strerror(errno));
        return -1;
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
        if (bus_connect(b)) return ECONNREFUSED;
        modbus_set_slave(b->mb, (int)d->cfg->unit);
        d->stats.requests++;
        int n = function == 4 ? modbus_read_input_registers(b->mb, (int)addr, (int)count, dest)
                              : modbus_read_registers(b->mb, (int)addr, (int)count, dest);
        err = n == (int)count ? 0 : (n < 0 ? errno : EMBBADDATA);
        sleep_ms(b->cfg->pause_ms);
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
            if (err) return snprintf(why, len, "SunSpec discovery: %s", modbus_strerror(err)), err;
            n += count;
        }
        unsigned addr;
        int rc = dcem_sunspec_find(w, n, SUNSPEC_BASE, d->profile->sunspec_model, &addr, NULL);
        if (!rc) {
            d->base = addr;
            d->n_reads = dcem_profile_plan(d->profile, d->base, d->reads, MAX_READS);
            d->discovered = d->n_reads > 0;
            if (d->discovered) return 0;
            return snprintf(why, len, "SunSpec block at %u: cannot plan reads", addr), EMBBADDATA;
        }
        if (rc != DCEM_EFULL || addr + 2 - SUNSPEC_BASE > MAX_WORDS) {
            snprintf(why, len, "SunSpec model %d not found", d->profile->sunspec_model);
            return EMBBADDATA;
        }
        want = addr + 2 - SUNSPEC_BASE;
    }
}

/* The words of register g from the answers of the device's reads. */
static const uint16_t *words_of(const device *d, uint16_t (*words)[125], const dcem_register *g)
{
    unsigned a = g->address + d->base, n = dcem_regtype_words(g->type);
    for (int k = 0; k < d->n_reads; k++) {
        const dcem_read_req *q = &d->reads[k];
        if (q->function == g->function && a >= q->address && a + n <= q->address + q->count)
            return &words[k][a - q->address];
    }
    return NULL;
}

/* Decodes every register of the profile (scale factors apart) into r. */
static void decode(const device *d, uint16_t (*words)[125], dcem_poll_result *r)
{
    const dcem_profile *p = d->profile;
    r->n_values = 0;
    for (size_t i = 0; i < p->n_regs; i++) {
        const dcem_register *g = &p->regs[i];
        if (g->quantity == DCEM_Q_SCALE_FACTOR) continue;
        const uint16_t *sf = NULL;
        if (g->scale_register[0])
            for (size_t k = 0; k < p->n_regs; k++)
                if (!strcmp(p->regs[k].name, g->scale_register)) sf = words_of(d, words, &p->regs[k]);
        const uint16_t *own = words_of(d, words, g);
        dcem_poll_value *v = &r->values[r->n_values++];
        v->reg = (int)i;
        v->quantity = g->quantity;
        v->phase = g->phase;
        int rc = own ? dcem_profile_value(p, i, own, sf, &v->value) : DCEM_EINVAL;
        v->valid = rc == 0;
        v->absent = rc == DCEM_ENOTFOUND;
        if (!v->valid && g->quantity == DCEM_Q_ENERGY_IMPORT_KWH && g->phase == 0)
            r->quality = DCEM_WIRE_Q_OUT_OF_RANGE;
    }
}

#define STALE_MIN_KWH 1.0

/* A counter is stale when it has not moved although the device's own power
 * readings say that more than two counter steps (and at least 1 kWh) have
 * flowed since it last did: a frozen register, not a quiet load. The step
 * of a float counter grows with its value (2^-23 of it for f32). */
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
                                        : fabs(g->scale);
    if (d->since_change_kwh > fmax(2 * step, STALE_MIN_KWH) && r->quality == DCEM_WIRE_Q_OK)
        r->quality = DCEM_WIRE_Q_STALE;
    d->have_last = 1;
    d->last_kwh = kwh;
    d->last_kw = kw;
    d->last_t_ms = r->t_ms;
}

/* Polls one device now. */
static void poll_device(dcem_bus *b, device *d, dcem_poll_fn fn, void *ctx)
{
    dcem_poll_result r = {.device = d->index, .meter = d->cfg->meter};
    d->stats.polls++;
    int err = 0;
    if (!d->discovered) err = discover(b, d, r.why, sizeof r.why);
    uint16_t (*w)[125] = b->words;
    for (int k = 0; !err && k < d->n_reads; k++) {
        const dcem_read_req *q = &d->reads[k];
        err = request(b, d, q->function, q->address, q->count, w[k]);
        if (err)
            snprintf(r.why, sizeof r.why, "read %u+%u (fc %d): %s", q->address, q->count,
                     q->function, modbus_strerror(err));
    }
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
        decode(d, w, &r);
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
                  "%lu exceptions, %lu timeouts, %lu crc errors, %lu other, %lu reconnects",
                  d->cfg->meter, b->cfg->name, d->cfg->unit, s->polls, s->ok, s->failed,
                  s->requests, s->exceptions, s->timeouts, s->crc_errors, s->other_errors,
                  s->reconnects);
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
