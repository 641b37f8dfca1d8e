#include "local_figures.h"
#include "dcem_io.h"
#include "dcem_log.h"
#include "figures.h"
#include "meter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Intervals waiting to be published: a meter's reading after a gap fills
 * every interval of the gap at once, so they grow as needed, up to a day
 * of 1-minute intervals (beyond: counted, logged once). */
#define SLOTS_MAX 1440

typedef struct slot {
    int used;
    int64_t start_ms, end_ms;
    int64_t role_ukwh[DCEM_ROLE_COUNT];
    int32_t *readings; /* per device: good readings in the interval */
} slot;

typedef struct meter {
    int role; /* -1: not in the ledger */
    dcem_counter_cfg cfg; /* the rules of the policy in force, as the collector and dcem-audit apply */
    dcem_meter_state st;
} meter;

struct dcem_local {
    const dcem_agent_config *cfg;
    dcem_tz *tz;
    dcem_zone zone;
    meter *meters;    /* one per device */
    slot *slots;
    size_t n_slots, cap_slots;
    unsigned long lost;  /* interval contributions beyond SLOTS_MAX */
    size_t current;   /* device being fed, for the interval callback */
};

dcem_local *dcem_local_new(const dcem_agent_config *c, char *err, size_t errlen)
{
    const dcem_site *s = c->site_ledger;
    dcem_local *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->cfg = c;
    l->meters = calloc(c->n_devices, sizeof *l->meters);
    if (!l->meters || dcem_io_load_tz(s->timezone, &l->tz, err, errlen)) {
        dcem_local_free(l);
        return NULL;
    }
    dcem_zone_init(&l->zone, l->tz);
    for (size_t i = 0; i < c->n_devices; i++) {
        int k = dcem_site_find_meter(s, c->devices[i].meter, strlen(c->devices[i].meter));
        meter *m = &l->meters[i];
        m->role = k < 0 ? -1 : s->meters[k].role;
        if (k < 0) continue;
        dcem_policy_counter_cfg(c->policy, s, (size_t)k, &m->cfg);
        dcem_meter_init(&m->st, l->tz, (int)s->interval_minutes);
    }
    return l;
}

void dcem_local_free(dcem_local *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n_slots; i++) free(l->slots[i].readings);
    free(l->slots);
    free(l->meters);
    dcem_tz_free(l->tz);
    free(l);
}

static slot *slot_for(dcem_local *l, const dcem_interval *iv)
{
    slot *free_slot = NULL;
    for (size_t i = 0; i < l->n_slots; i++) {
        slot *s = &l->slots[i];
        if (s->used && s->start_ms == iv->start_ms) return s;
        if (!s->used && !free_slot) free_slot = s;
    }
    if (!free_slot && l->n_slots < SLOTS_MAX) {
        if (l->n_slots == l->cap_slots) {
            size_t cap = l->cap_slots ? 2 * l->cap_slots : 8;
            slot *more = realloc(l->slots, cap * sizeof *more);
            if (!more) return NULL;
            l->slots = more;
            l->cap_slots = cap;
        }
        slot *n = &l->slots[l->n_slots];
        memset(n, 0, sizeof *n);
        if (!(n->readings = calloc(l->cfg->n_devices ? l->cfg->n_devices : 1, sizeof(int32_t))))
            return NULL;
        free_slot = &l->slots[l->n_slots++];
    }
    if (!free_slot) return NULL;
    memset(free_slot->role_ukwh, 0, sizeof free_slot->role_ukwh);
    memset(free_slot->readings, 0, l->cfg->n_devices * sizeof(int32_t));
    free_slot->used = 1;
    free_slot->start_ms = iv->start_ms;
    free_slot->end_ms = iv->end_ms;
    return free_slot;
}

static void on_interval(void *ctx, const dcem_interval *iv)
{
    dcem_local *l = ctx;
    slot *s = slot_for(l, iv);
    if (!s) { /* a gap of more than SLOTS_MAX intervals at once, or no memory */
        static dcem_complaint full;
        l->lost++;
        dcem_complain(&full, DCEM_LOG_WARN, "local",
                      "an interval's local figures were not kept (%lu so far): a gap of more "
                      "than %d intervals",
                      l->lost, SLOTS_MAX);
        return;
    }
    s->role_ukwh[l->meters[l->current].role] += iv->ukwh;
    s->readings[l->current] += iv->readings;
}

void dcem_local_add(dcem_local *l, const dcem_wire_reading *r)
{
    for (size_t i = 0; i < l->cfg->n_devices; i++) {
        if (strcmp(l->cfg->devices[i].meter, r->meter)) continue;
        meter *m = &l->meters[i];
        /* every reading with a value, as the collector counts them */
        if (m->role < 0 || (!r->has_kwh && !r->has_kw)) return;
        l->current = i;
        dcem_meter_push(&m->st, &m->cfg, r->t_ms, r->has_kwh, r->kwh, r->has_kw, r->kw,
                        dcem_wire_ratio(r), on_interval, l, NULL);
        return;
    }
}

int dcem_local_take(dcem_local *l, int64_t now_ms, int64_t grace_ms, dcem_wire_metrics *m)
{
    slot *s = NULL;
    for (size_t i = 0; i < l->n_slots; i++)
        if (l->slots[i].used && l->slots[i].end_ms + grace_ms <= now_ms &&
            (!s || l->slots[i].start_ms < s->start_ms))
            s = &l->slots[i];
    if (!s) return 0;
    const dcem_agent_config *c = l->cfg;
    memset(m, 0, sizeof *m);
    snprintf(m->site, sizeof m->site, "%s", c->site);
    snprintf(m->gateway, sizeof m->gateway, "%s", c->gateway);
    m->start_ms = s->start_ms;
    m->end_ms = s->end_ms;
    int present[DCEM_ROLE_COUNT] = {0};
    dcem_figures f;
    dcem_figures_init(&f, DCEM_PERIOD_INTERVAL, 0, s->start_ms, s->end_ms, s->end_ms);
    for (size_t i = 0; i < c->n_devices; i++) {
        int role = l->meters[i].role;
        if (role < 0) continue;
        present[role] = 1;
        /* one reading expected in the interval */
        dcem_meter_period p = {.read_intervals = s->readings[i] > 0, .expected_intervals = 1};
        dcem_figures_add_meter(&f, role, &p);
    }
    memcpy(f.role_ukwh, s->role_ukwh, sizeof f.role_ukwh);
    f.green_ledger_kwh = dcem_site_green_kwh(c->site_ledger, &l->zone, s->start_ms, s->end_ms);
    dcem_figures_derive(&f);
    for (int r = 0; r < DCEM_ROLE_COUNT; r++) m->role_kwh[r] = present[r] ? f.role_kwh[r] : NAN;
    m->pue = f.pue;
    m->green_share = f.green_share;
    m->completeness = f.completeness;
    s->used = 0;
    return 1;
}
