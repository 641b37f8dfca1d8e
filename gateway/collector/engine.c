#include "engine.h"
#include "dcem_log.h"
#include "errors.h"
#include "lineproto.h"
#include "marks.h"
#include "meter.h"
#include "period.h"
#include "period_json.h"
#include "sign.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MONTHS_PER_PASS 36

/* Room for one more element in array *arrp of *cap elements of size bytes
 * (doubling, from first): 0, or -1 when memory ran out (the array as it
 * was). Use through ROOM_FOR_ONE. */
static int grow_array(void *arrp, size_t *cap, size_t first, size_t size)
{
    void *old, *p;
    size_t n = *cap ? 2 * *cap : first;
    memcpy(&old, arrp, sizeof old);
    if (!(p = realloc(old, n * size))) return -1;
    memcpy(arrp, &p, sizeof p);
    *cap = n;
    return 0;
}

#define ROOM_FOR_ONE(arr, n, cap, first)                                                   \
    ((n) < (cap) ? 0 : grow_array(&(arr), &(cap), (first), sizeof *(arr)))


/* One reading pushed live in the open group: what it added to the counts,
 * taken back if its meter is rebuilt (the rebuild counts it again). */
typedef struct live_push {
    const struct site_rt *site;
    size_t meter;
    dcem_engine_reply *rep;
    int64_t t_ms;
    int reject; /* its dcem_reject; 0: accepted */
} live_push;

typedef struct meter_rt {
    int loaded;
    int asked;           /* scratch: in the batch's prefetch already */
    dcem_meter_state st; /* what its readings made (common/meter.h) */
    int stale;           /* its meter_stale alert is raised */
    int touched;         /* state to save with this group */
    int late;            /* late readings came: rebuilt from the stored readings at group end */
    int64_t late_from;   /* the earliest of them */
} meter_rt;

/* A batch of the open group, so that readings refused when a meter is
 * rebuilt at the group's end are told to the batch that brought them. */
typedef struct group_batch {
    const struct site_rt *site;
    char gateway[DCEM_ID_MAX];
    uint64_t epoch, seq;
    dcem_engine_reply *rep;
} group_batch;

typedef struct site_rt {
    const dcem_collector_site *cs;
    dcem_zone zone;
    meter_rt *meters;
    dcem_days marks;                /* days whose figures are to be recomputed */
    int64_t marked_ms;              /* when the oldest of them was marked (wall clock) */
    struct range_cache *cache;      /* [CACHE_RANGES]: rollup sums of day ranges (recompute) */
    long long bits_year;            /* year of `bits` */
    unsigned bits;                  /* verdicts of that year, last computed */
    int have_bits;
    size_t current;                 /* meter being processed (interval callback) */
    int in_group;                   /* touched by the open group of batches */
} site_rt;

/* Day rollups of a site over one range of days, summed per meter, kept
 * across recompute passes until a mark falls in the range: the ranges a
 * month and its year ask for (the month, the year to date, the trailing
 * window) end at the last midnight, so live data of today leaves them as
 * they are, and a pass reads from the store only the meters' tails. */
#define CACHE_RANGES 8
typedef struct range_cache {
    int64_t d0, d1;          /* [d0, d1) */
    uint64_t used;           /* last use (the engine's clock); 0: empty */
    dcem_meter_period *sums; /* one per meter of the ledger */
} range_cache;

#define LINES_START (1u << 20) /* line protocol of a group of batches, grown as needed */
#define LINES_MAX (256u << 20)
#define ROWS_CAP 16384          /* intervals stored per store call at most */

/* An alert raised inside a transaction: handed on after its commit. */
typedef struct pending_alert {
    char site[DCEM_ID_MAX], kind[DCEM_ID_MAX], subject[DCEM_ID_MAX];
    int raised;
    char message[DCEM_STORE_MAX_MESSAGE];
    int64_t t_ms;
} pending_alert;

struct dcem_engine {
    const dcem_collector_config *cfg;
    dcem_store *st;
    dcem_engine_line_fn line_fn;
    void *line_ctx;
    dcem_engine_alert_fn alert_fn;
    void *alert_ctx;
    struct {
        char key[2 * DCEM_ID_MAX];
        int online;
    } gateways[256]; /* last known state, to alert on changes only */
    size_t n_gateways;
    char *lines;          /* lines of the batches being stored, handed on after their commit */
    size_t lines_len, lines_cap;
    site_rt *sites;
    dcem_wire_reading *storage;
    dcem_store_interval_row *rows; /* intervals of the group not yet stored, all of rows_site */
    size_t n_rows;
    site_rt *rows_site;
    int in_tx;                     /* alerts wait for the commit */
    int shared;                    /* other collectors share the store and the subscription */
    pending_alert *alerts;
    size_t n_alerts, cap_alerts;
    unsigned char *fresh;          /* per reading of a batch: newly stored (dcem_store_put_batch) */
    group_batch *gb;               /* batches of the open group */
    size_t n_gb, cap_gb;
    struct live_push *live;        /* what the group's live pushes counted (see undo_live) */
    size_t n_live, cap_live;
    int txn_error;
    int txn_rc;                    /* the store's code of the first failure of the group */
    dcem_marks *marks;             /* where committed marks go (another thread recomputes);
                                      NULL: this engine's own sites */
    dcem_days *gdays;              /* [n_sites]: days the open group wrote */
    unsigned char *touched;        /* [n_sites]: sites of the open group (dcem_marks) */
    dcem_store_meter_state_row *state_rows; /* save_meters: one site's, DCEM_SITE_MAX_METERS */
    unsigned char (*state_blobs)[DCEM_METER_STATE_MAX];
    int hold_lines;                /* a recompute pass: lines wait for its commit */
    int use_cache;                 /* inside dcem_engine_recompute */
    uint64_t cache_clock;
    dcem_engine_stats stats;
};

dcem_engine *dcem_engine_new(const dcem_collector_config *cfg, dcem_store *st)
{
    dcem_engine *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->cfg = cfg;
    e->st = st;
    e->shared = cfg->mqtt.share_group[0] != 0;
    e->sites = calloc(cfg->n_sites ? cfg->n_sites : 1, sizeof *e->sites);
    e->storage = calloc(DCEM_WIRE_MAX_READINGS, sizeof *e->storage);
    e->lines = malloc(LINES_START);
    e->lines_cap = LINES_START;
    e->rows = malloc(ROWS_CAP * sizeof *e->rows);
    e->fresh = malloc(DCEM_WIRE_MAX_READINGS);
    e->gdays = calloc(cfg->n_sites ? cfg->n_sites : 1, sizeof *e->gdays);
    e->touched = calloc(cfg->n_sites ? cfg->n_sites : 1, 1);
    e->state_rows = calloc(DCEM_SITE_MAX_METERS, sizeof *e->state_rows);
    e->state_blobs = malloc(DCEM_SITE_MAX_METERS * sizeof *e->state_blobs);
    if (!e->sites || !e->storage || !e->lines || !e->rows || !e->fresh || !e->gdays ||
        !e->touched || !e->state_rows || !e->state_blobs) {
        dcem_engine_free(e);
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_sites; i++) {
        site_rt *s = &e->sites[i];
        s->cs = &cfg->sites[i];
        dcem_zone_init(&s->zone, s->cs->tz);
        s->meters = calloc(s->cs->ledger->n_meters ? s->cs->ledger->n_meters : 1,
                           sizeof *s->meters);
        s->cache = calloc(CACHE_RANGES, sizeof *s->cache);
        if (!s->meters || !s->cache) {
            dcem_engine_free(e);
            return NULL;
        }
    }
    return e;
}

void dcem_engine_free(dcem_engine *e)
{
    if (!e) return;
    if (e->sites)
        for (size_t i = 0; i < e->cfg->n_sites; i++) {
            free(e->sites[i].meters);
            for (size_t k = 0; e->sites[i].cache && k < CACHE_RANGES; k++)
                free(e->sites[i].cache[k].sums);
            free(e->sites[i].cache);
        }
    free(e->sites);
    free(e->storage);
    free(e->lines);
    free(e->rows);
    free(e->fresh);
    free(e->gdays);
    free(e->touched);
    free(e->state_rows);
    free(e->state_blobs);
    free(e->gb);
    free(e->live);
    free(e->alerts);
    free(e);
}

int dcem_engine_verify(dcem_engine *e, const char *topic, const dcem_wire_topic_parts *tp,
                       const void *payload, size_t len, const char **key, char *why,
                       size_t whylen)
{
    const dcem_collector_site *cs = dcem_collector_site_find(e->cfg, tp->site);
    int lab = e->cfg->identity.allow_unsigned;
    if (key) *key = NULL;
    if (!cs) {
        snprintf(why, whylen, "site %s has no ledger", tp->site);
        return DCEM_WIRE_UNKNOWN_GATEWAY;
    }
    const dcem_site *s = cs->ledger;
    const dcem_gateway *g = dcem_site_find_gateway(s, tp->gateway, strlen(tp->gateway));
    if (!g) {
        if (lab) return 0;
        snprintf(why, whylen, "gateway %s is not in the ledger of site %s", tp->gateway,
                 tp->site);
        return DCEM_WIRE_UNKNOWN_GATEWAY;
    }
    if (!g->n_keys) return 0; /* only a lab collector loads a gateway without keys */
    int idx = -1;
    int r = dcem_sig_verify(g->keys, g->n_keys, topic, payload, len, &idx, NULL);
    if (r == DCEM_SIG_VALID) {
        if (key) *key = g->key_text[idx];
        return 0;
    }
    snprintf(why, whylen, "%s",
             r == DCEM_SIG_MISSING ? "the ledger has keys for this gateway; the payload is not signed"
             : r == DCEM_SIG_MALFORMED ? "its \"sig\" is not 64 bytes of base64 as the last member"
                                       : "no key of this gateway in the ledger verifies it");
    return r == DCEM_SIG_MISSING ? DCEM_WIRE_UNSIGNED : DCEM_WIRE_BAD_SIGNATURE;
}

void dcem_engine_set_alerts(dcem_engine *e, dcem_engine_alert_fn fn, void *ctx)
{
    e->alert_fn = fn;
    e->alert_ctx = ctx;
}

static site_rt *site_of(dcem_engine *e, const char *id);

/* A store call of the open group failed: the group is rolled back; rc (the
 * first one) tells a refusal of the content (DCEM_EINVAL) from a failure
 * that may pass (busy, I/O, disk full). */
static void txn_fail(dcem_engine *e, int rc)
{
    if (!e->txn_error) e->txn_rc = rc;
    e->txn_error = 1;
}

static void hand_on(dcem_engine *e, const char *site, const char *kind, const char *subject,
                    int raised, const char *message, int64_t now_ms)
{
    dcem_engine_alert ea = {site, kind, raised, message, now_ms, subject};
    if (e->alert_fn) e->alert_fn(e->alert_ctx, &ea);
}

/* Stores a change of the alert (site, kind, subject) and hands it to the
 * caller — inside a transaction, once it is committed. A change another
 * collector of the store recorded first is neither stored nor handed on:
 * each change is told once. */
static void alert(dcem_engine *e, const char *site, const char *kind, const char *subject,
                  int raised, const char *message, int64_t now_ms)
{
    dcem_store_alert a = {.site = site, .t_ms = now_ms, .kind = kind, .message = message,
                          .state = raised ? DCEM_STORE_ALERT_RAISED : DCEM_STORE_ALERT_CLEARED,
                          .subject = subject};
    int changed = 0;
    int rc = dcem_store_change_alert(e->st, &a, &changed, NULL);
    if (rc && e->in_tx) {
        txn_fail(e, rc);
        return;
    }
    if (rc) {
        DCEM_LOGE("store", "%s: alert %s %s not stored: %s", site, kind,
                  raised ? "raised" : "cleared", dcem_store_error(e->st));
    } else if (!changed) {
        e->stats.alerts_told_elsewhere++;
        return;
    }
    if (!e->in_tx) {
        hand_on(e, site, kind, subject, raised, message, now_ms);
        return;
    }
    if (ROOM_FOR_ONE(e->alerts, e->n_alerts, e->cap_alerts, 8)) {
        /* stored all the same: the API and the reports see it */
        static dcem_complaint nomem;
        dcem_complain(&nomem, DCEM_LOG_WARN, "alert", "out of memory: an alert was stored, not published");
        return;
    }
    pending_alert *p = &e->alerts[e->n_alerts++];
    snprintf(p->site, sizeof p->site, "%s", site);
    snprintf(p->kind, sizeof p->kind, "%s", kind);
    snprintf(p->subject, sizeof p->subject, "%s", subject);
    snprintf(p->message, sizeof p->message, "%s", message);
    p->raised = raised;
    p->t_ms = now_ms;
}

void dcem_engine_gateway_state(dcem_engine *e, const char *site, const char *gateway,
                               const dcem_wire_state *st, int64_t now_ms)
{
    int online = st->online;
    const site_rt *mine = site_of(e, site);
    if (e->cfg->shard.n_sites && !(mine && mine->cs->mine)) return; /* another collector's */
    /* a birth says which batches the agent still holds: those before them
     * it deleted (acked, or dropped from a full spool) and cannot send
     * again — the hole is recorded as missing data (docs/wire-format.md) */
    if (online && st->epoch && st->next_seq > st->queued + 1 && site_of(e, site)) {
        dcem_store_epoch ep;
        uint64_t held_from = st->next_seq - st->queued;
        int rc = dcem_store_gateway_seq(e->st, site, gateway, st->epoch, &ep);
        if ((rc == 0 || rc == DCEM_ENOTFOUND) && ep.contiguous_seq + 1 < held_from) {
            if (dcem_store_skip_to(e->st, site, gateway, st->epoch, held_from - 1))
                DCEM_LOGE("store", "%s/%s: cannot record the batches it no longer holds: %s", site,
                          gateway, dcem_store_error(e->st));
            else
                DCEM_LOGW("ingest",
                          "%s/%s epoch %llu: batches %llu..%llu are gone from the gateway: missing data",
                          site, gateway, (unsigned long long)st->epoch,
                          (unsigned long long)ep.contiguous_seq + 1,
                          (unsigned long long)held_from - 1);
        }
    }
    char key[2 * DCEM_ID_MAX], msg[160];
    snprintf(key, sizeof key, "%s/%s", site, gateway);
    size_t i = 0;
    while (i < e->n_gateways && strcmp(e->gateways[i].key, key)) i++;
    int known = i < e->n_gateways;
    if (known && e->gateways[i].online == online) return;
    if (!known && online) { /* first sight, all well: nothing to say */
        if (i == sizeof e->gateways / sizeof e->gateways[0]) return;
        snprintf(e->gateways[i].key, sizeof e->gateways[i].key, "%s", key);
        e->gateways[i].online = 1;
        e->n_gateways++;
        return;
    }
    if (!known) {
        if (i == sizeof e->gateways / sizeof e->gateways[0]) return;
        snprintf(e->gateways[i].key, sizeof e->gateways[i].key, "%s", key);
        e->n_gateways++;
    }
    e->gateways[i].online = online;
    snprintf(msg, sizeof msg, "gateway %s %s", gateway, online ? "online" : "offline");
    alert(e, site, "gateway_offline", gateway, !online, msg, now_ms);
}

int dcem_engine_give_up(dcem_engine *e, const char *site, const char *gateway, uint64_t epoch,
                        uint64_t up_to_seq)
{
    dcem_store_epoch ep;
    int rc = dcem_store_gateway_seq(e->st, site, gateway, epoch, &ep);
    if (rc && rc != DCEM_ENOTFOUND) return rc;
    if (up_to_seq <= ep.contiguous_seq) return 0; /* filled meanwhile */
    if ((rc = dcem_store_skip_to(e->st, site, gateway, epoch, up_to_seq))) {
        DCEM_LOGE("store", "%s/%s: cannot give up batches %llu..%llu: %s", site, gateway,
                  (unsigned long long)ep.contiguous_seq + 1, (unsigned long long)up_to_seq,
                  dcem_store_error(e->st));
        return rc;
    }
    e->stats.holes_given_up++;
    e->stats.seqs_given_up += up_to_seq - ep.contiguous_seq;
    DCEM_LOGW("ingest",
              "%s/%s epoch %llu: batches %llu..%llu never came for the resend requests: given up "
              "as missing data",
              site, gateway, (unsigned long long)epoch, (unsigned long long)ep.contiguous_seq + 1,
              (unsigned long long)up_to_seq);
    return 0;
}

void dcem_engine_set_sink(dcem_engine *e, dcem_engine_line_fn fn, void *ctx)
{
    e->line_fn = fn;
    e->line_ctx = ctx;
}

/* Appends one point to the lines waiting for the commit (dropped, and said
 * once, if they cannot grow: InfluxDB is a view, the store is the record). */
static void add_line(dcem_engine *e, const dcem_lp_point *p)
{
    if (!e->line_fn) return;
    char why[128];
    static dcem_complaint full;
    int rc;
    while ((rc = dcem_lp_append(e->lines, e->lines_cap, &e->lines_len, p, why, sizeof why)) ==
               DCEM_EFULL &&
           e->lines_cap < LINES_MAX) {
        char *more = realloc(e->lines, 2 * e->lines_cap);
        if (!more) break;
        e->lines = more;
        e->lines_cap *= 2;
    }
    if (rc) dcem_complain(&full, DCEM_LOG_WARN, "influx", "a line was not written: %s", why);
}

static void flush_lines(dcem_engine *e)
{
    if (e->line_fn && e->lines_len) e->line_fn(e->line_ctx, e->lines, e->lines_len);
    e->lines_len = 0;
}

static void reading_line(dcem_engine *e, const dcem_site *s, const char *gateway,
                         const dcem_wire_reading *r, int role)
{
    dcem_lp_tag tags[] = {{"site", s->site}, {"gateway", gateway}, {"meter", r->meter},
                          {"role", role >= 0 ? dcem_role_name(role) : NULL}};
    dcem_lp_field f[3 + DCEM_WIRE_MAX_VALUES];
    char names[DCEM_WIRE_MAX_VALUES][48];
    size_t n = 0;
    f[n++] = (dcem_lp_field){.key = "quality", .type = DCEM_LP_STRING,
                             .s = dcem_wire_quality_name(r->quality)};
    if (r->has_kwh) f[n++] = (dcem_lp_field){.key = "kwh", .type = DCEM_LP_FLOAT, .f = r->kwh};
    if (r->has_kw) f[n++] = (dcem_lp_field){.key = "kw", .type = DCEM_LP_FLOAT, .f = r->kw};
    for (size_t i = 0; i < r->n_values; i++) {
        const dcem_wire_value *v = &r->values[i];
        if (v->phase) snprintf(names[i], sizeof names[i], "%s_l%d", dcem_quantity_name(v->quantity), v->phase);
        else snprintf(names[i], sizeof names[i], "%s", dcem_quantity_name(v->quantity));
        f[n++] = (dcem_lp_field){.key = names[i], .type = DCEM_LP_FLOAT, .f = v->value};
    }
    dcem_lp_point p = {.measurement = "dcem_reading", .tags = tags, .n_tags = 4, .fields = f,
                       .n_fields = n, .has_time = 1, .time = r->t_ms, .precision = DCEM_LP_MS};
    add_line(e, &p);
}

const dcem_engine_stats *dcem_engine_stats_get(const dcem_engine *e)
{
    return &e->stats;
}

static site_rt *site_of(dcem_engine *e, const char *id)
{
    for (size_t i = 0; i < e->cfg->n_sites; i++)
        if (!strcmp(e->sites[i].cs->ledger->site, id)) return &e->sites[i];
    return NULL;
}

/* The meter's state: as stored, or fresh. A state that has seen a reading
 * stamped beyond now + max_future_skew_s (stored before such readings were
 * refused, or by a collector whose own clock ran ahead) would take every
 * real reading for a late one: it is set aside and the meter starts afresh
 * — its next reading is a new anchor, the span since its last good one
 * missing data. Logged, counted (future_states). A meter with no state
 * but stored readings before t_ms, the reading at hand (its store migrated
 * from a schema whose state cannot be read, or a state this collector
 * cannot decode) is built from them at the end of the group; one without
 * (a new meter) starts with this reading. */
/* Readings before this may have been pruned (retention_days): no rebuild
 * may start before it. INT64_MIN without retention. A day of margin: the
 * checkpoint a rebuild starts from is up to a day before its reading. */
static int64_t pruned_before(const dcem_engine *e, int64_t now_ms)
{
    long long days = e->cfg->store.retention_days;
    return days > 0 ? now_ms - (days - 1) * 86400000LL : INT64_MIN;
}

static int stop_at_first(void *ctx, const dcem_store_reading *r)
{
    (void)r;
    *(int *)ctx = 1;
    return 1;
}

/* Has meter i stored readings before t (0 no, 1 yes, < 0 a store error)? */
static int readings_before(dcem_engine *e, const site_rt *s, size_t i, int64_t t)
{
    const dcem_site *ledger = s->cs->ledger;
    int found = 0;
    int rc = dcem_store_export(e->st, ledger->site, ledger->meters[i].id, INT64_MIN, t,
                               stop_at_first, &found);
    return rc && rc != 1 ? rc : found;
}

/* Meter i from what the store gave of it: its saved state (rc 0: blob,
 * len, stale) or none (rc DCEM_ENOTFOUND; known: the store may hold
 * readings of it). t_ms: its first reading at hand. NULL on a store
 * error. */
static meter_rt *meter_set(dcem_engine *e, site_rt *s, size_t i, int64_t now_ms, int64_t t_ms,
                           int rc, const void *blob, size_t len, int stale, int known)
{
    meter_rt *m = &s->meters[i];
    const dcem_site *ledger = s->cs->ledger;
    m->touched = m->late = 0;
    if (!rc && dcem_meter_decode(&m->st, s->cs->tz, (int)ledger->interval_minutes, blob, len)) {
        DCEM_LOGW("ingest", "%s/%s: its saved state is not one this collector reads: rebuilt "
                  "from its stored readings", ledger->site, ledger->meters[i].id);
        rc = DCEM_ENOTFOUND;
    }
    m->stale = stale;
    if (!rc && dcem_meter_last_ms(&m->st) > now_ms + e->cfg->ingest.max_future_skew_s * 1000) {
        DCEM_LOGW("ingest",
                  "%s/%s: its saved state reaches %lld ms, beyond this collector's clock: set "
                  "aside, the meter starts afresh at its next reading",
                  ledger->site, ledger->meters[i].id, (long long)dcem_meter_last_ms(&m->st));
        e->stats.future_states++;
        m->touched = 1; /* the fresh state is saved with the group */
        dcem_meter_init(&m->st, s->cs->tz, (int)ledger->interval_minutes);
    } else if (rc == DCEM_ENOTFOUND) {
        dcem_meter_init(&m->st, s->cs->tz, (int)ledger->interval_minutes);
        int old = known ? readings_before(e, s, i, t_ms) : 0;
        if (old < 0) return NULL;
        m->touched = 1;
        m->late = old;
        m->late_from = INT64_MIN;
    }
    m->loaded = 1;
    return m;
}

static meter_rt *meter_of(dcem_engine *e, site_rt *s, size_t i, int64_t now_ms, int64_t t_ms)
{
    meter_rt *m = &s->meters[i];
    if (m->loaded) return m;
    const dcem_site *ledger = s->cs->ledger;
    unsigned char blob[DCEM_STORE_MAX_STATE];
    size_t len = 0;
    int stale = 0;
    int rc = dcem_store_get_meter_state(e->st, ledger->site, ledger->meters[i].id, blob,
                                        sizeof blob, &len, &stale, NULL);
    if (rc && rc != DCEM_ENOTFOUND) return NULL;
    return meter_set(e, s, i, now_ms, t_ms, rc, blob, len, stale, 1);
}

typedef struct prefetch_ctx {
    dcem_engine *e;
    site_rt *s;
    const size_t *mi;
    const int64_t *t_ms;
    int64_t now_ms;
} prefetch_ctx;

static int prefetched(void *arg, size_t i, const void *blob, size_t len, int stale, int known)
{
    prefetch_ctx *p = arg;
    return meter_set(p->e, p->s, p->mi[i], p->now_ms, p->t_ms[i], blob ? 0 : DCEM_ENOTFOUND, blob,
                     len, stale, known)
               ? 0
               : DCEM_ESTORAGE;
}

/* Loads the states of batch b's meters not loaded yet in one store call
 * (on PostgreSQL two round trips for the batch, not one or two for each
 * new meter: 100,000 meters first seen cost seconds otherwise). */
static int prefetch(dcem_engine *e, site_rt *s, const dcem_wire_batch *b, int64_t now_ms)
{
    const dcem_site *ledger = s->cs->ledger;
    size_t cap = b->n_readings, n = 0;
    if (!cap) return 0;
    const char **names = malloc(cap * sizeof *names);
    size_t *mi = malloc(cap * sizeof *mi);
    int64_t *t_ms = malloc(cap * sizeof *t_ms);
    int rc = 0;
    if (!names || !mi || !t_ms) {
        rc = DCEM_ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < b->n_readings; k++) {
        const dcem_wire_reading *r = &b->readings[k];
        int i = dcem_site_find_meter(ledger, r->meter, strlen(r->meter));
        if (i < 0 || s->meters[i].loaded || s->meters[i].asked) continue;
        s->meters[i].asked = 1;
        names[n] = ledger->meters[i].id;
        mi[n] = (size_t)i;
        t_ms[n++] = r->t_ms; /* its first reading in the batch: what meter_of would see */
    }
    for (size_t k = 0; k < n; k++) s->meters[mi[k]].asked = 0;
    prefetch_ctx p = {e, s, mi, t_ms, now_ms};
    if (n) rc = dcem_store_get_meter_states(e->st, ledger->site, names, n, prefetched, &p);
out:
    free(names);
    free(mi);
    free(t_ms);
    return rc;
}

/* After a failed transaction the in-memory state ran ahead of the store:
 * forget it, so that it is read back as committed. */
static void forget_site(site_rt *s)
{
    for (size_t i = 0; i < s->cs->ledger->n_meters; i++) {
        s->meters[i].loaded = 0;
        s->meters[i].touched = 0;
        s->meters[i].late = 0;
    }
}

/* The intervals waiting in e->rows, into the store (one call: each rollup
 * row is written once). */
static void store_rows(dcem_engine *e)
{
    int rc;
    if (e->n_rows && !e->txn_error &&
        (rc = dcem_store_put_intervals(e->st, e->rows_site->cs->ledger->site, e->rows, e->n_rows)))
        txn_fail(e, rc);
    e->n_rows = 0;
}

typedef struct cb_ctx {
    dcem_engine *e;
    site_rt *s;
} cb_ctx;

/* Local days [d0, d1] of site s have stored intervals the open group
 * wrote or deleted: their figures are recomputed once it commits. */
static void mark_days(dcem_engine *e, const site_rt *s, int64_t d0, int64_t d1)
{
    dcem_days_add(&e->gdays[s - e->sites], d0, d1);
}

static void on_interval(void *arg, const dcem_interval *iv)
{
    cb_ctx *c = arg;
    site_rt *s = c->s;
    const dcem_site *ledger = s->cs->ledger;
    if (c->e->n_rows == ROWS_CAP) store_rows(c->e);
    dcem_store_interval_row *row = &c->e->rows[c->e->n_rows++];
    *row = (dcem_store_interval_row){.meter = ledger->meters[s->current].id, .iv = *iv};
    dcem_store_period_keys(&s->zone, iv->start_ms, &row->keys);
    c->e->stats.intervals++;
    const dcem_meter *mt = &ledger->meters[s->current];
    dcem_lp_tag tags[] = {{"site", ledger->site}, {"meter", mt->id}, {"role", dcem_role_name(mt->role)}};
    dcem_lp_field fl[] = {
        {.key = "kwh", .type = DCEM_LP_FLOAT, .f = dcem_ukwh_kwh(iv->ukwh)},
        {.key = "estimated_kwh", .type = DCEM_LP_FLOAT,
         .f = dcem_ukwh_kwh(iv->estimated_ukwh[DCEM_SPAN_INTERVAL])}};
    dcem_lp_point lp = {.measurement = "dcem_interval", .tags = tags, .n_tags = 3, .fields = fl,
                        .n_fields = 2, .has_time = 1, .time = iv->start_ms, .precision = DCEM_LP_MS};
    add_line(c->e, &lp);
    mark_days(c->e, s, row->keys.day, row->keys.day);
}

/* Pushes one reading of meter mi through the pipeline under the rules in
 * force (the ledger and policy of now: a reload reaches every meter). At
 * the first reading of a local day, the state the meter had after the
 * previous day is kept as a checkpoint: a rebuild after late data starts
 * from the last one before it. Returns the dcem_reject. */
static int push(dcem_engine *e, site_rt *s, size_t mi, meter_rt *m, int64_t t, int has_kwh,
                double kwh, int has_kw, double kw, double ratio, dcem_counter_out *out)
{
    const dcem_site *ledger = s->cs->ledger;
    int64_t last = dcem_meter_last_ms(&m->st);
    if (last != INT64_MIN && dcem_zone_day(&s->zone, last) != dcem_zone_day(&s->zone, t)) {
        unsigned char blob[DCEM_METER_STATE_MAX];
        size_t len = dcem_meter_encode(&m->st, blob, sizeof blob);
        int rc = dcem_store_put_checkpoint(e->st, ledger->site, ledger->meters[mi].id, last, blob,
                                           len);
        if (rc) txn_fail(e, rc);
    }
    dcem_counter_cfg cc;
    dcem_policy_counter_cfg(e->cfg->policy, ledger, mi, &cc);
    cb_ctx cb = {e, s};
    s->current = mi;
    m->touched = 1;
    return dcem_meter_push(&m->st, &cc, t, has_kwh, kwh, has_kw, kw, ratio, on_interval, &cb, out);
}

static int refuse_reason(int reject)
{
    return reject == DCEM_REJECT_KIND ? DCEM_REFUSE_WRONG_KIND : DCEM_REFUSE_OUT_OF_RANGE;
}

unsigned dcem_engine_screen_values(dcem_wire_reading *r)
{
    unsigned absurd = 0;
    if (r->has_kwh && !(fabs(r->kwh) <= DCEM_ENGINE_MAX_VALUE)) r->has_kwh = 0, absurd++;
    if (r->has_kw && !(fabs(r->kw) <= DCEM_ENGINE_MAX_VALUE)) r->has_kw = 0, absurd++;
    size_t k = 0;
    for (size_t j = 0; j < r->n_values; j++) {
        if (!(fabs(r->values[j].value) <= DCEM_ENGINE_MAX_VALUE)) {
            absurd++;
            continue;
        }
        r->values[k++] = r->values[j];
    }
    r->n_values = k;
    if (absurd) r->quality = DCEM_WIRE_Q_OUT_OF_RANGE;
    return absurd;
}

/* Readings no collector should take, screened before the batch is stored.
 * Refused (counted, neither stored nor counted in any figure): a meter the
 * ledger does not have, and a time beyond now + max_future_skew_s — a clock
 * that ran ahead would otherwise move the meter's state past every real
 * reading, for ever. Left out: values of a magnitude beyond
 * DCEM_ENGINE_MAX_VALUE (the reading is stored out_of_range, its value
 * never summed). The batch keeps the rest, in order. */
static void screen(dcem_engine *e, const site_rt *s, dcem_wire_batch *b, int64_t now_ms,
                   dcem_engine_reply *rep)
{
    const dcem_site *ledger = s->cs->ledger;
    int64_t horizon = now_ms + e->cfg->ingest.max_future_skew_s * 1000;
    size_t n = 0;
    for (size_t i = 0; i < b->n_readings; i++) {
        dcem_wire_reading *r = &b->readings[i];
        if (dcem_site_find_meter(ledger, r->meter, strlen(r->meter)) < 0) {
            e->stats.unknown_meter_readings++;
            rep->refused[DCEM_REFUSE_UNKNOWN_METER]++;
            continue;
        }
        if (r->t_ms > horizon) {
            e->stats.future_readings++;
            rep->refused[DCEM_REFUSE_FUTURE]++;
            continue;
        }
        unsigned absurd = dcem_engine_screen_values(r);
        e->stats.out_of_range_values += absurd;
        if (absurd && !r->has_kwh && !r->has_kw) rep->refused[DCEM_REFUSE_OUT_OF_RANGE]++;
        if (n != i) b->readings[n] = *r;
        n++;
    }
    b->n_readings = n;
}

static int note_live(dcem_engine *e, const site_rt *s, size_t mi, dcem_engine_reply *rep,
                     int64_t t_ms, int reject)
{
    if (ROOM_FOR_ONE(e->live, e->n_live, e->cap_live, 1024)) return -1;
    e->live[e->n_live++] = (live_push){s, mi, rep, t_ms, reject};
    return 0;
}

/* A meter about to be rebuilt from its readings after from_ms: what its
 * live pushes of this group after it counted is taken back — the rebuild
 * runs those readings again and counts them. */
static void undo_live(dcem_engine *e, const site_rt *s, size_t mi, int64_t from_ms)
{
    for (size_t k = 0; k < e->n_live; k++) {
        const live_push *l = &e->live[k];
        if (l->site != s || l->meter != mi || l->t_ms <= from_ms) continue;
        if (l->reject) {
            e->stats.rejected_readings--;
            l->rep->refused[refuse_reason(l->reject)]--;
        } else {
            e->stats.readings--;
        }
    }
}

/* Runs the batch's new readings through the pipeline, in batch order (per
 * meter, time order). A reading at or before its meter's latest — history
 * imported after live data, a gateway's week offline, a replayed spool —
 * is late: stored like any other, it marks the meter for a rebuild from its
 * stored readings at the end of the group, so its figures are those of the
 * readings in time order, as dcem-audit computes them over the export. */
static int process(dcem_engine *e, site_rt *s, const dcem_wire_batch *b, int64_t now_ms,
                   dcem_engine_reply *rep)
{
    const dcem_site *ledger = s->cs->ledger;
    s->in_group = 1; /* its touched meters' state is saved at the end of the group */
    /* the group's intervals go to the store together (each rollup row
     * written once for all its batches), one site at a time */
    if (e->rows_site != s) store_rows(e);
    e->rows_site = s;
    int pre = prefetch(e, s, b, now_ms);
    if (pre) {
        txn_fail(e, pre);
        return -1;
    }
    for (size_t i = 0; i < b->n_readings && !e->txn_error; i++) {
        const dcem_wire_reading *r = &b->readings[i];
        int mi = dcem_site_find_meter(ledger, r->meter, strlen(r->meter));
        if (mi < 0) continue; /* screened out before: never here */
        reading_line(e, ledger, b->gateway, r, ledger->meters[mi].role);
        meter_rt *m = meter_of(e, s, (size_t)mi, now_ms, r->t_ms);
        if (!m) {
            txn_fail(e, DCEM_ESTORAGE);
            return -1;
        }
        int stale = r->quality == DCEM_WIRE_Q_STALE;
        if (stale != m->stale && r->quality != DCEM_WIRE_Q_COMM_ERROR) {
            char msg[160];
            snprintf(msg, sizeof msg, "meter %s %s", r->meter,
                     stale ? "stale: its counter stopped while power flows" : "counting again");
            alert(e, ledger->site, "meter_stale", r->meter, stale, msg, r->t_ms);
            m->stale = stale;
            m->touched = 1;
        }
        if (!r->has_kwh && !r->has_kw) continue; /* no value: nothing to count */
        if (!e->fresh[i]) continue; /* stored before, from another batch: counted then */
        if (m->late || r->t_ms <= dcem_meter_last_ms(&m->st)) {
            if (r->t_ms < pruned_before(e, now_ms)) {
                /* its meter would be rebuilt from readings already pruned */
                static dcem_complaint old;
                e->stats.too_old_readings++;
                rep->refused[DCEM_REFUSE_TOO_OLD]++;
                dcem_complain(&old, DCEM_LOG_WARN, "ingest",
                              "%s/%s: a late reading older than the store's retention: stored, "
                              "not counted (%llu so far)",
                              ledger->site, r->meter, (unsigned long long)e->stats.too_old_readings);
                continue;
            }
            if (r->t_ms <= dcem_meter_last_ms(&m->st)) e->stats.late_readings++;
            if (!m->late || r->t_ms < m->late_from) m->late_from = r->t_ms;
            m->late = m->touched = 1;
            continue;
        }
        dcem_counter_out out;
        int reject = push(e, s, (size_t)mi, m, r->t_ms, r->has_kwh, r->kwh, r->has_kw, r->kw,
                          dcem_wire_ratio(r), &out);
        if (note_live(e, s, (size_t)mi, rep, r->t_ms, reject)) {
            txn_fail(e, DCEM_ENOMEM);
            return -1;
        }
        if (reject) {
            e->stats.rejected_readings++;
            rep->refused[refuse_reason(reject)]++;
            continue;
        }
        e->stats.readings++;
        e->stats.ratio_changes += (uint64_t)out.ratio_changed;
        if (r->ratio_note > 0 && r->ratio_note < DCEM_WIRE_RATIO_NOTE_COUNT)
            e->stats.ratio_notes[r->ratio_note]++;
    }
    return e->txn_error ? -1 : 0;
}

/* Sets batch b aside in the quarantine with reason_text and answers it
 * like a stored one (acked): sending the same bytes again cannot help. */
static int quarantine(dcem_engine *e, const dcem_engine_msg *msg, const dcem_wire_batch *b,
                      const char *reason_text, int64_t now_ms, dcem_engine_reply *rep)
{
    int dup = 0;
    int rc = dcem_store_put_quarantine(e->st, b->site, b->gateway, b->epoch, b->seq, now_ms,
                                       reason_text, msg->payload, msg->len, &dup);
    if (rc) {
        snprintf(rep->why, sizeof rep->why, "%s", dcem_store_error(e->st));
        txn_fail(e, rc);
        return e->stats.failed++, DCEM_ENGINE_FAILED;
    }
    e->stats.quarantined++;
    rep->ack = 1;
    rep->ack_seq = b->seq;
    memset(rep->refused, 0, sizeof rep->refused); /* the whole batch, whatever screened out */
    rep->refused[DCEM_REFUSE_QUARANTINED] = (uint32_t)b->listed_readings;
    return DCEM_ENGINE_QUARANTINED;
}

/* Keeps batch b of the open group with its reply (see group_batch). */
static int note_batch(dcem_engine *e, const site_rt *s, const dcem_wire_batch *b,
                      dcem_engine_reply *rep)
{
    if (ROOM_FOR_ONE(e->gb, e->n_gb, e->cap_gb, 64)) return -1;
    group_batch *g = &e->gb[e->n_gb++];
    g->site = s;
    snprintf(g->gateway, sizeof g->gateway, "%s", b->gateway);
    g->epoch = b->epoch;
    g->seq = b->seq;
    g->rep = rep;
    return 0;
}

/* One message inside the open transaction. DCEM_ENGINE_FAILED leaves the
 * transaction to be rolled back. refused: not NULL when the store refused
 * this batch's content before (why): it is quarantined, not stored. */
static int ingest(dcem_engine *e, const dcem_engine_msg *msg, int64_t now_ms,
                  dcem_engine_reply *rep, const char *refused)
{
    const char *topic = msg->topic;
    size_t topic_len = msg->topic_len, len = msg->len;
    const void *payload = msg->payload;
    memset(rep, 0, sizeof *rep);
    if (!msg->retry) e->stats.received++;
    dcem_wire_topic_parts tp;
    if (dcem_wire_topic_parse(topic, topic_len, &tp) || tp.leaf != DCEM_WIRE_DATA) {
        rep->reason = DCEM_WIRE_BAD_ID;
        snprintf(rep->why, sizeof rep->why, "not a data topic");
        e->stats.malformed++;
        e->stats.malformed_by_reason[rep->reason]++;
        return DCEM_ENGINE_MALFORMED;
    }
    snprintf(rep->site, sizeof rep->site, "%s", tp.site);
    snprintf(rep->gateway, sizeof rep->gateway, "%s", tp.gateway);
    site_rt *s = site_of(e, tp.site);
    if (!s || !s->cs->mine) { /* no ledger, or another collector's (shard.sites) */
        snprintf(rep->why, sizeof rep->why, "%s",
                 s ? "not in this collector's shard.sites" : "no ledger for it");
        e->stats.unknown_site++;
        return DCEM_ENGINE_UNKNOWN_SITE;
    }
    /* who sent it, before anything of it is believed: a refused payload
     * is not identified (no ack: an ack would speak for another sender) */
    char topic_z[DCEM_WIRE_TOPIC_MAX];
    const char *key = NULL;
    snprintf(topic_z, sizeof topic_z, "%.*s", (int)topic_len, topic);
    int who = dcem_engine_verify(e, topic_z, &tp, payload, len, &key, rep->why, sizeof rep->why);
    if (who) {
        rep->reason = who;
        e->stats.malformed++;
        e->stats.malformed_by_reason[who]++;
        return DCEM_ENGINE_MALFORMED;
    }
    dcem_wire_batch b;
    int reason = 0;
    int rc = dcem_wire_decode_batch(payload, len, tp.site, tp.gateway, e->storage,
                                    DCEM_WIRE_MAX_READINGS, &b, &reason, rep->why,
                                    sizeof rep->why);
    if (rc == DCEM_ENOMEM) {
        snprintf(rep->why, sizeof rep->why, "out of memory");
        txn_fail(e, rc);
        return e->stats.failed++, DCEM_ENGINE_FAILED;
    }
    rep->reason = reason;
    if (rc && !b.identified) {
        e->stats.malformed++;
        if (reason >= 0 && reason < DCEM_WIRE_REASON_COUNT) e->stats.malformed_by_reason[reason]++;
        return DCEM_ENGINE_MALFORMED;
    }
    rep->epoch = b.epoch;
    rep->seq = b.seq;
    dcem_store_epoch ep;
    int g = dcem_store_gateway_seq(e->st, tp.site, tp.gateway, b.epoch, &ep);
    if (g && g != DCEM_ENOTFOUND) {
        snprintf(rep->why, sizeof rep->why, "%s", dcem_store_error(e->st));
        txn_fail(e, g);
        return e->stats.failed++, DCEM_ENGINE_FAILED;
    }
    uint64_t expected = ep.contiguous_seq + 1;
    /* below H: a duplicate — unless the epoch has seqs given up as missing
     * (dcem_store_skip_to) and this may be one of them, coming after all
     * (in a shared group another member was still storing it; an agent
     * answered late): then it is stored, its readings late data, and the
     * store tells a duplicate by its batch row. Nothing a hole's timeout
     * decided may drop a batch that does come. */
    int given_up = b.seq < expected && ep.skipped;
    if (b.seq < expected && !given_up) {
        e->stats.duplicates++;
        rep->ack = 1;
        rep->ack_seq = ep.contiguous_seq;
        return DCEM_ENGINE_DUPLICATE;
    }
    if (b.seq > expected) {
        /* process in order only, so every meter sees its readings in time
         * order, as dcem-audit does over the export */
        if (!msg->retry) e->stats.gaps++;
        rep->resend = 1;
        rep->resend_from = expected;
        return DCEM_ENGINE_GAP;
    }
    char reason_text[DCEM_STORE_MAX_MESSAGE];
    if (rc) { /* identified, but its content is bad: set aside, acked */
        snprintf(reason_text, sizeof reason_text, "%s: %s", dcem_wire_reason_name(reason),
                 rep->why);
        return quarantine(e, msg, &b, reason_text, now_ms, rep);
    }
    if (refused) {
        snprintf(reason_text, sizeof reason_text, "store_refused: %s", refused);
        snprintf(rep->why, sizeof rep->why, "the store refused its content: %s", refused);
        e->stats.store_refused++;
        return quarantine(e, msg, &b, reason_text, now_ms, rep);
    }
    screen(e, s, &b, now_ms, rep);
    int dup = 0;
    int put = dcem_store_put_batch(e->st, &b, now_ms, &dup, e->fresh);
    /* a CHECK refusing a row (DCEM_EINVAL) fails the group like any store
     * failure: the store's transaction is lost (store.h); the batch is
     * quarantined on its own third try (dcem_engine_batches) */
    if (put) txn_fail(e, put);
    if (!put && dup) { /* stored already: given up and filled, or by another collector */
        e->stats.duplicates++;
        rep->ack = 1;
        rep->ack_seq = b.seq > ep.contiguous_seq ? b.seq : ep.contiguous_seq;
        return DCEM_ENGINE_DUPLICATE;
    }
    int proof = 0; /* who sent it, kept with it (docs/security.md) */
    if (!put && key) {
        proof = dcem_store_put_proof(e->st, tp.site, tp.gateway, b.epoch, b.seq, key, payload,
                                     len);
        if (proof) txn_fail(e, proof);
    }
    if (!put && note_batch(e, s, &b, rep)) txn_fail(e, put = DCEM_ENOMEM);
    if (put || proof || process(e, s, &b, now_ms, rep)) {
        e->stats.failed++;
        snprintf(rep->why, sizeof rep->why, "%s", dcem_store_error(e->st));
        return DCEM_ENGINE_FAILED;
    }
    e->stats.stored++;
    if (key) e->stats.signed_batches++;
    else e->stats.unsigned_batches++;
    if (given_up) e->stats.given_up_stored++;
    rep->ack = 1;
    rep->ack_seq = b.seq > ep.contiguous_seq ? b.seq : ep.contiguous_seq;
    return DCEM_ENGINE_STORED;
}

/* ---- late data: a meter rebuilt from its stored readings ---- */

typedef struct replay_reading {
    int64_t t_ms;
    double kwh, kw, ratio;
    int has_kwh, has_kw;
    uint64_t epoch, seq;
    int gw; /* index in the group's batches of the one that brought it; -1: an older one */
} replay_reading;

typedef struct replay_ctx {
    dcem_engine *e;
    const site_rt *s;
    replay_reading *r;
    size_t n, cap;
} replay_ctx;

static int collect(void *arg, const dcem_store_reading *sr)
{
    replay_ctx *c = arg;
    if (!sr->has_kwh && !sr->has_kw) return 0;
    if (ROOM_FOR_ONE(c->r, c->n, c->cap, 4096)) return DCEM_ENOMEM;
    replay_reading *r = &c->r[c->n++];
    *r = (replay_reading){sr->t_ms, sr->kwh, sr->kw, sr->ratio, sr->has_kwh, sr->has_kw,
                          sr->epoch, sr->seq, -1};
    for (size_t k = 0; k < c->e->n_gb; k++) {
        const group_batch *g = &c->e->gb[k];
        if (g->site == c->s && g->epoch == sr->epoch && g->seq == sr->seq &&
            !strcmp(g->gateway, sr->gateway)) {
            r->gw = (int)k;
            break;
        }
    }
    return 0;
}

/* Rebuilds meter mi of site s: from the last checkpoint before its earliest
 * late reading (or from nothing), its intervals from there on removed, its
 * stored readings run again in time order. The figures of every month it
 * touched are recomputed; readings refused on the way are told to the
 * batches of this group that brought them. */
static void rebuild(dcem_engine *e, site_rt *s, size_t mi, meter_rt *m, int64_t now_ms)
{
    const dcem_site *ledger = s->cs->ledger;
    const char *site = ledger->site, *meter = ledger->meters[mi].id;
    int interval = (int)ledger->interval_minutes;
    unsigned char blob[DCEM_STORE_MAX_STATE];
    size_t len = 0;
    int64_t from = INT64_MIN;
    int rc = m->late_from == INT64_MIN
                 ? DCEM_ENOTFOUND
                 : dcem_store_get_checkpoint(e->st, site, meter, m->late_from, &from, blob,
                                             sizeof blob, &len);
    if (rc && rc != DCEM_ENOTFOUND) {
        txn_fail(e, rc);
        return;
    }
    int64_t cut = pruned_before(e, now_ms); /* what retention has pruned: before cut - 1 day */
    if (cut != INT64_MIN && (rc ? m->late_from != INT64_MIN : from < cut - 86400000LL)) {
        /* the readings a rebuild would run again are partly pruned: the
         * meter goes on from its state at the start of the group (the one
         * committed), the group's readings after it run in time order; the
         * late ones before it stay stored, not counted */
        static dcem_complaint pruned;
        dcem_complain(&pruned, DCEM_LOG_WARN, "ingest",
                      "%s/%s: late readings whose rebuild would start before the store's "
                      "retention: stored, not counted", site, meter);
        e->stats.too_old_readings++;
        rc = dcem_store_get_meter_state(e->st, site, meter, blob, sizeof blob, &len, NULL, NULL);
        if (rc && rc != DCEM_ENOTFOUND) {
            txn_fail(e, rc);
            return;
        }
        if (rc || dcem_meter_decode(&m->st, s->cs->tz, interval, blob, len))
            dcem_meter_init(&m->st, s->cs->tz, interval);
        from = dcem_meter_last_ms(&m->st);
    } else if (rc || dcem_meter_decode(&m->st, s->cs->tz, interval, blob, len)) {
        dcem_meter_init(&m->st, s->cs->tz, interval);
        from = INT64_MIN;
    }
    int64_t frontier = dcem_meter_frontier_ms(&m->st);
    if ((rc = dcem_store_delete_intervals(e->st, site, meter, frontier)) ||
        (rc = dcem_store_drop_checkpoints(e->st, site, meter, from == INT64_MIN ? from : from + 1))) {
        txn_fail(e, rc);
        return;
    }
    replay_ctx c = {.e = e, .s = s};
    rc = dcem_store_export(e->st, site, meter, from == INT64_MIN ? from : from + 1, INT64_MAX,
                           collect, &c);
    if (rc) {
        free(c.r);
        txn_fail(e, rc);
        return;
    }
    if (frontier != INT64_MIN) /* its intervals from there on deleted: those days, up to now */
        mark_days(e, s, dcem_zone_day(&s->zone, frontier),
                  dcem_zone_day(&s->zone, now_ms) + 1);
    if (e->rows_site != s) store_rows(e);
    e->rows_site = s;
    undo_live(e, s, mi, from);
    for (size_t i = 0; i < c.n && !e->txn_error; i++) {
        const replay_reading *r = &c.r[i];
        int reject = push(e, s, mi, m, r->t_ms, r->has_kwh, r->kwh, r->has_kw, r->kw, r->ratio,
                          NULL);
        if (reject && r->gw >= 0) e->gb[r->gw].rep->refused[refuse_reason(reject)]++;
        if (reject && r->gw >= 0) e->stats.rejected_readings++;
        if (!reject && r->gw >= 0) e->stats.readings++;
    }
    e->stats.rebuilds++;
    e->stats.rebuilt_readings += c.n;
    free(c.r);
    m->late = 0;
    m->touched = 1;
}

/* The state of every meter the group moved, in its transaction — after the
 * rebuilds late data asked for: a restart resumes exactly where the
 * committed data ends. */
static void save_meters(dcem_engine *e, int64_t now_ms)
{
    for (size_t i = 0; i < e->cfg->n_sites; i++) {
        site_rt *s = &e->sites[i];
        const dcem_site *ledger = s->cs->ledger;
        for (size_t k = 0; s->in_group && k < ledger->n_meters && !e->txn_error; k++)
            if (s->meters[k].late) rebuild(e, s, k, &s->meters[k], now_ms);
        store_rows(e);
        /* the site's touched meters in one call: with many meters a group
         * touches thousands, and a call each is a round trip each on a
         * database server */
        size_t n = 0;
        for (size_t k = 0; s->in_group && k < ledger->n_meters; k++) {
            meter_rt *m = &s->meters[k];
            if (!m->touched || e->txn_error) continue;
            e->state_rows[n] = (dcem_store_meter_state_row){
                .meter = ledger->meters[k].id,
                .blob = e->state_blobs[n],
                .len = dcem_meter_encode(&m->st, e->state_blobs[n], DCEM_METER_STATE_MAX),
                .stale = m->stale,
            };
            n++;
            m->touched = 0;
        }
        int rc = 0;
        if (n && !e->txn_error)
            rc = dcem_store_put_meter_states(e->st, ledger->site, e->state_rows, n);
        if (rc) txn_fail(e, rc);
    }
}

/* Runs msgs[0..n) in one transaction. Returns 0 when it committed; -1 when
 * it was rolled back (a store failure, its detail in the failing reply):
 * then nothing of it happened — counters, meter state, lines and alerts are
 * as they were before. */
static int group(dcem_engine *e, const dcem_engine_msg *msgs, size_t n, int64_t now_ms,
                 dcem_engine_reply *replies, int *outcomes, const char *refused)
{
    dcem_engine_stats before = e->stats;
    e->txn_error = 0;
    e->txn_rc = 0;
    e->lines_len = 0;
    e->n_alerts = 0;
    e->n_gb = 0;
    e->n_live = 0;
    for (size_t i = 0; i < e->cfg->n_sites; i++) {
        e->sites[i].in_group = 0;
        e->gdays[i].n = 0;
        /* in a shared subscription another collector may have moved the
         * meters since: read their state again inside this transaction */
        if (e->shared) forget_site(&e->sites[i]);
    }
    int rc = dcem_store_begin(e->st);
    int failed = rc != 0;
    if (failed) {
        txn_fail(e, rc);
        memset(&replies[0], 0, sizeof replies[0]);
        snprintf(replies[0].why, sizeof replies[0].why, "%s", dcem_store_error(e->st));
    }
    e->in_tx = 1;
    for (size_t i = 0; i < n && !failed; i++) {
        outcomes[i] = ingest(e, &msgs[i], now_ms, &replies[i], refused);
        failed = outcomes[i] == DCEM_ENGINE_FAILED;
    }
    if (!failed) {
        store_rows(e);
        save_meters(e, now_ms);
        failed = e->txn_error;
        if (failed)
            snprintf(replies[n - 1].why, sizeof replies[n - 1].why, "%s", dcem_store_error(e->st));
    }
    e->n_rows = 0;
    if (!failed) {
        if ((rc = dcem_store_commit(e->st))) {
            txn_fail(e, rc);
            failed = 1;
            snprintf(replies[n - 1].why, sizeof replies[n - 1].why, "%s", dcem_store_error(e->st));
        }
        /* the marks of what it wrote reach the figures thread after the
         * commit, so that its next read sees what they mark */
        for (size_t i = 0; i < e->cfg->n_sites; i++) e->touched[i] = (unsigned char)e->sites[i].in_group;
        if (e->marks && !failed) dcem_marks_add(e->marks, e->touched, e->gdays, now_ms);
        else if (!failed)
            for (size_t i = 0; i < e->cfg->n_sites; i++) {
                if (e->gdays[i].n && !e->sites[i].marks.n) e->sites[i].marked_ms = now_ms;
                dcem_days_merge(&e->sites[i].marks, &e->gdays[i]);
            }
    }
    e->in_tx = 0;
    if (failed) {
        dcem_store_rollback(e->st);
        for (size_t i = 0; i < e->cfg->n_sites; i++)
            if (e->sites[i].in_group) forget_site(&e->sites[i]);
        e->stats = before;
        e->lines_len = 0;
        e->n_alerts = 0;
        return -1;
    }
    flush_lines(e);
    for (size_t i = 0; i < e->n_alerts; i++) {
        const pending_alert *p = &e->alerts[i];
        hand_on(e, p->site, p->kind, p->subject, p->raised, p->message, p->t_ms);
    }
    e->n_alerts = 0;
    return 0;
}

void dcem_engine_batches(dcem_engine *e, const dcem_engine_msg *msgs, size_t n, int64_t now_ms,
                         dcem_engine_reply *replies, int *outcomes)
{
    if (n == 0 || !group(e, msgs, n, now_ms, replies, outcomes, NULL)) return;
    /* lost to a conflict the store could not settle inside the transaction
     * (PostgreSQL: a replayed row met its fast path, a deadlock or a
     * serialization failure with another collector): the same group once
     * more, the store now on its careful path */
    if (e->txn_rc == DCEM_ERETRY) {
        e->stats.group_retries++;
        if (!group(e, msgs, n, now_ms, replies, outcomes, NULL)) return;
    }
    /* the group failed as a whole: each message alone, so that only the
     * one the store refuses is refused (and the rest is acked) */
    for (size_t i = 0; i < n; i++) {
        if (n > 1 && !group(e, &msgs[i], 1, now_ms, &replies[i], &outcomes[i], NULL)) continue;
        if (e->txn_rc == DCEM_EINVAL) {
            /* refused for its content (say, an interval its readings close
             * breaks a CHECK): it would fail every time, and block its
             * gateway for good — quarantined and acked instead. A failure
             * that may pass (busy, I/O, disk full) is not acked. */
            char why[sizeof replies[i].why];
            snprintf(why, sizeof why, "%s", replies[i].why);
            if (!group(e, &msgs[i], 1, now_ms, &replies[i], &outcomes[i], why)) continue;
        }
        if (!msgs[i].retry) e->stats.received++;
        e->stats.failed++;
        outcomes[i] = DCEM_ENGINE_FAILED;
        replies[i].ack = replies[i].resend = 0; /* replies[i].why says what failed */
    }
}

int dcem_engine_batch(dcem_engine *e, const char *topic, size_t topic_len, const void *payload,
                      size_t len, int64_t now_ms, dcem_engine_reply *rep)
{
    dcem_engine_msg m = {topic, topic_len, payload, len, 0};
    int out;
    dcem_engine_batches(e, &m, 1, now_ms, rep, &out);
    return out;
}

/* ---- figures ---- */

/* What every meter's committed state holds — its open interval, readings
 * held for judgement, events waiting for their interval — settled as at
 * the end of data, on a copy (the meter goes on as it was). Added to the
 * stored rollups, the figures are at every moment those dcem-audit gives
 * over the export of the readings stored so far. */
typedef struct tail_iv {
    size_t meter;
    int64_t day;
    dcem_interval iv;
} tail_iv;

typedef struct tail {
    site_rt *s;
    tail_iv *iv;
    size_t n, cap;
    size_t current; /* meter being settled */
    int failed;
} tail;

static void on_tail(void *arg, const dcem_interval *iv)
{
    tail *t = arg;
    if (ROOM_FOR_ONE(t->iv, t->n, t->cap, 64)) {
        t->failed = 1;
        return;
    }
    t->iv[t->n++] = (tail_iv){t->current, dcem_zone_day(&t->s->zone, iv->start_ms), *iv};
}

/* The tail of every meter of site s into *t (freed with free(t->iv));
 * t->failed when the store failed or memory ran out. */
static void load_tail(dcem_engine *e, site_rt *s, tail *t)
{
    const dcem_site *ledger = s->cs->ledger;
    *t = (tail){.s = s};
    for (size_t i = 0; i < ledger->n_meters && !t->failed; i++) {
        unsigned char blob[DCEM_STORE_MAX_STATE];
        size_t len = 0;
        int rc = dcem_store_get_meter_state(e->st, ledger->site, ledger->meters[i].id, blob,
                                            sizeof blob, &len, NULL, NULL);
        if (rc == DCEM_ENOTFOUND) continue;
        dcem_meter_state m;
        if (rc || dcem_meter_decode(&m, s->cs->tz, (int)ledger->interval_minutes, blob, len)) {
            t->failed = rc != 0;
            continue;
        }
        dcem_counter_cfg cc;
        dcem_policy_counter_cfg(e->cfg->policy, ledger, i, &cc);
        t->current = i;
        dcem_meter_finish(&m, &cc, on_tail, t);
    }
}

/* Day sums of every meter of a site over [d0, d1), fetched once per range
 * (dcem_period_figures asks for each meter in turn over the same ranges),
 * with the meters' tail. */
typedef struct days_ctx {
    dcem_engine *e;
    site_rt *s;
    int64_t d0, d1;            /* range cached in sums; d0 > d1: none */
    dcem_meter_period *sums;   /* one per meter of the ledger */
    const tail *tail;
    int failed;
} days_ctx;

typedef struct rollup_ctx {
    const site_rt *s;
    dcem_meter_period *sums;
} rollup_ctx;

static int add_rollup(void *arg, const dcem_store_rollup *r)
{
    rollup_ctx *d = arg;
    int i = dcem_site_find_meter(d->s->cs->ledger, r->meter, strlen(r->meter));
    if (i >= 0) dcem_store_rollup_add(&d->sums[i], r);
    return 0;
}

/* The day rollups of s over [d0, d1) into sums (zeroed here): from the
 * range cache inside a recompute pass, else from the store. -1 when the
 * store failed. */
static int range_sums(dcem_engine *e, site_rt *s, int64_t d0, int64_t d1, dcem_meter_period *sums)
{
    size_t n = s->cs->ledger->n_meters, bytes = (n ? n : 1) * sizeof *sums;
    range_cache *slot = NULL;
    if (e->use_cache) {
        for (size_t k = 0; k < CACHE_RANGES; k++) {
            range_cache *c = &s->cache[k];
            if (c->used && c->d0 == d0 && c->d1 == d1) {
                c->used = ++e->cache_clock;
                memcpy(sums, c->sums, bytes);
                return 0;
            }
            if (!slot || c->used < slot->used) slot = c; /* the empty, or least recently used */
        }
        slot->used = 0;
        if (!slot->sums && !(slot->sums = malloc(bytes))) slot = NULL;
    }
    memset(sums, 0, bytes);
    rollup_ctx rc = {s, sums};
    if (d0 < d1 &&
        dcem_store_rollups(e->st, s->cs->ledger->site, DCEM_PERIOD_DAY, d0, d1, add_rollup, &rc))
        return -1;
    if (slot) {
        memcpy(slot->sums, sums, bytes);
        slot->d0 = d0;
        slot->d1 = d1;
        slot->used = ++e->cache_clock;
    }
    return 0;
}

static void store_days(void *arg, size_t meter, int64_t d0, int64_t d1, dcem_meter_period *out)
{
    days_ctx *d = arg;
    if (d0 != d->d0 || d1 != d->d1) {
        d->d0 = d0;
        d->d1 = d1;
        if (range_sums(d->e, d->s, d0, d1, d->sums)) d->failed = 1;
        for (size_t k = 0; k < d->tail->n; k++) {
            const tail_iv *t = &d->tail->iv[k];
            if (t->day >= d0 && t->day < d1) dcem_meter_period_add_interval(&d->sums[t->meter], &t->iv);
        }
    }
    *out = d->sums[meter];
}

/* The period object of dcem_period_json (NULL when the store failed or
 * memory ran out); hands its dcem_figures line to the sink. tl: the
 * site's tail when the caller has it (a recompute pass: one load for all
 * its periods), NULL to load it here. */
static cJSON *period_obj(dcem_engine *e, site_rt *s, int kind, long long first_month,
                         int n_months, int64_t as_of_ms, unsigned *bits, const tail *tl)
{
    const dcem_site *ledger = s->cs->ledger;
    tail own = {0};
    if (!tl) {
        load_tail(e, s, &own);
        tl = &own;
    }
    if (tl->failed) {
        free(own.iv);
        return NULL;
    }
    dcem_meter_period *mp = calloc(ledger->n_meters ? ledger->n_meters : 1, sizeof *mp);
    dcem_figures f;
    dcem_verdicts v;
    days_ctx d = {.e = e, .s = s, .d0 = 1, .d1 = 0, .tail = tl,
                  .sums = calloc(ledger->n_meters ? ledger->n_meters : 1, sizeof *d.sums)};
    if (!mp || !d.sums) {
        free(mp);
        free(d.sums);
        free(own.iv);
        return NULL;
    }
    dcem_period_figures(ledger, e->cfg->policy, &s->zone, store_days, &d, kind, first_month,
                        n_months, as_of_ms, &f, &v, mp);
    cJSON *o = NULL;
    if (!d.failed) {
        o = dcem_period_json(ledger, e->cfg->policy, &f, &v, mp, &s->zone);
        dcem_lp_tag tags[] = {{"site", ledger->site},
                              {"period", kind == DCEM_PERIOD_YEAR ? "year" : "month"}};
        dcem_lp_field fl[6];
        size_t n = 0;
        fl[n++] = (dcem_lp_field){.key = "total_kwh", .type = DCEM_LP_FLOAT, .f = f.total_kwh};
        fl[n++] = (dcem_lp_field){.key = "it_kwh", .type = DCEM_LP_FLOAT, .f = f.it_kwh};
        fl[n++] = (dcem_lp_field){.key = "green_kwh", .type = DCEM_LP_FLOAT, .f = f.green_kwh};
        if (isfinite(f.pue)) fl[n++] = (dcem_lp_field){.key = "pue", .type = DCEM_LP_FLOAT, .f = f.pue};
        if (isfinite(f.green_share))
            fl[n++] = (dcem_lp_field){.key = "green_share", .type = DCEM_LP_FLOAT, .f = f.green_share};
        fl[n++] = (dcem_lp_field){.key = "completeness", .type = DCEM_LP_FLOAT, .f = f.completeness};
        dcem_lp_point lp = {.measurement = "dcem_figures", .tags = tags, .n_tags = 2, .fields = fl,
                            .n_fields = n, .has_time = 1, .time = f.start_ms, .precision = DCEM_LP_MS};
        if (!e->hold_lines) e->lines_len = 0;
        add_line(e, &lp);
        if (!e->hold_lines) flush_lines(e);
    }
    free(mp);
    free(d.sums);
    free(own.iv);
    if (bits) *bits = v.bits;
    return o;
}

static char *period_doc(dcem_engine *e, site_rt *s, int kind, long long first_month,
                        int n_months, int64_t as_of_ms, unsigned *bits, const tail *tl)
{
    cJSON *o = period_obj(e, s, kind, first_month, n_months, as_of_ms, bits, tl);
    char *json = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return json;
}

char *dcem_engine_period_json(dcem_engine *e, const char *site, int kind, long long first_month,
                              int64_t as_of_ms)
{
    site_rt *s = site_of(e, site);
    return s ? period_doc(e, s, kind, first_month, kind == DCEM_PERIOD_YEAR ? 12 : 1, as_of_ms,
                          NULL, NULL)
             : NULL;
}

cJSON *dcem_engine_months_obj(dcem_engine *e, const char *site, int kind, long long first_month,
                              int n_months, int64_t as_of_ms)
{
    site_rt *s = site_of(e, site);
    if (!s || n_months < 1 || n_months > 12 * 100) return NULL;
    return period_obj(e, s, kind, first_month, n_months, as_of_ms, NULL, NULL);
}

/* Verdicts that operators are told about when they change. */
static const int alerting[] = {DCEM_V_INSUFFICIENT_DATA, DCEM_V_DIFFERENTIAL_PRICING,
                               DCEM_V_CAP_WARNING, DCEM_V_CAP_PROJECTED, DCEM_V_CAP_EXCEEDED};

static unsigned bits_of_doc(const char *json)
{
    unsigned bits = 0;
    cJSON *o = cJSON_Parse(json);
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(o, "verdicts"), *it;
    cJSON_ArrayForEach(it, vs)
        for (int i = 0; i < DCEM_V_COUNT && cJSON_IsString(it); i++)
            if (!strcmp(it->valuestring, dcem_verdict_name(i))) bits |= 1u << i;
    cJSON_Delete(o);
    return bits;
}

static void report_changes(dcem_engine *e, site_rt *s, long long year, unsigned before,
                           unsigned bits, int64_t now_ms)
{
    for (size_t k = 0; k < sizeof alerting / sizeof alerting[0]; k++) {
        unsigned bit = 1u << alerting[k];
        if ((bits & bit) == (before & bit)) continue;
        int raised = (bits & bit) != 0;
        char msg[256];
        snprintf(msg, sizeof msg, "%s %s for %lld (clause %s)", dcem_verdict_name(alerting[k]),
                 raised ? "raised" : "cleared", year, dcem_verdict_clause(alerting[k]));
        char subject[24];
        snprintf(subject, sizeof subject, "%lld", year);
        alert(e, s->cs->ledger->site, dcem_verdict_name(alerting[k]), subject, raised, msg, now_ms);
    }
}

/* The verdicts of `year` as last stored (0: none stored) and when they
 * were computed (INT64_MAX: never). */
static unsigned stored_bits(dcem_engine *e, site_rt *s, long long year, int64_t *computed_ms)
{
    char *prev = NULL;
    unsigned bits = 0;
    int64_t at = INT64_MAX;
    if (!dcem_store_get_figures(e->st, s->cs->ledger->site, DCEM_PERIOD_YEAR, year, &prev, &at))
        bits = bits_of_doc(prev);
    else
        at = INT64_MAX;
    free(prev);
    if (computed_ms) *computed_ms = at;
    return bits;
}

/* A past year's verdicts are settled when they have not been recomputed
 * for this long: late data that changes them then is alerted. While its
 * history streams in (an import), they change with every group: no alert. */
#define SETTLED_MS (24 * 3600 * 1000LL)

/* Figures of a pass over one site, computed, to be stored together. */
typedef struct doc {
    int kind;
    long long key;
    char *json;
} doc;

/* A year's verdicts in a pass: what to alert and remember once stored. */
typedef struct year_bits {
    long long year;
    unsigned before, bits;
    int tell, current;
} year_bits;

typedef struct site_pass {
    doc docs[2 * MAX_MONTHS_PER_PASS];
    size_t n_docs;
    year_bits years[MAX_MONTHS_PER_PASS];
    size_t n_years;
    long long first_month; /* the earliest month computed */
} site_pass;

static void pass_free(site_pass *p)
{
    for (size_t k = 0; k < p->n_docs; k++) free(p->docs[k].json);
    p->n_docs = p->n_years = 0;
}

static long long month_of_day(site_rt *s, int64_t day)
{
    dcem_store_keys k;
    dcem_store_period_keys(&s->zone, dcem_zone_day_start(&s->zone, day), &k);
    return k.month;
}

/* The months s->marks touch, the latest MAX_MONTHS_PER_PASS of them, in
 * increasing order, into m. Returns how many. */
static size_t marked_months(site_rt *s, long long *m)
{
    size_t n = 0;
    for (size_t r = s->marks.n; r-- > 0 && n < MAX_MONTHS_PER_PASS;) {
        long long lo = month_of_day(s, s->marks.lo[r]), hi = month_of_day(s, s->marks.hi[r]);
        for (long long x = hi; x >= lo && n < MAX_MONTHS_PER_PASS; x--)
            if (!n || m[n - 1] > x) m[n++] = x;
    }
    for (size_t i = 0; i < n / 2; i++) {
        long long t = m[i];
        m[i] = m[n - 1 - i];
        m[n - 1 - i] = t;
    }
    return n;
}

/* Reads and computes the figures of the marked months of s (and their
 * years) into p; stores nothing. -1 when the store failed or memory ran
 * out. */
static int compute_site(dcem_engine *e, site_rt *s, int64_t now_ms, site_pass *p)
{
    long long months[MAX_MONTHS_PER_PASS];
    size_t nm = marked_months(s, months);
    int64_t as_of = dcem_zone_day_start(&s->zone, dcem_zone_day(&s->zone, now_ms));
    int64_t y_now;
    int m_now, d_now;
    dcem_zone_date(&s->zone, now_ms, &y_now, &m_now, &d_now);
    p->n_docs = p->n_years = 0;
    p->first_month = nm ? months[0] : 0;
    tail tl;
    load_tail(e, s, &tl); /* once for every period of the pass */
    int failed = tl.failed;
    for (size_t k = 0; k < nm && !failed; k++) {
        long long m = months[k];
        char *json = period_doc(e, s, DCEM_PERIOD_MONTH, m, 1, as_of, NULL, &tl);
        if (!json) failed = 1;
        else p->docs[p->n_docs++] = (doc){DCEM_PERIOD_MONTH, m, json};
        long long year = dcem_floordiv(m, 12);
        if (failed || (k + 1 < nm && dcem_floordiv(months[k + 1], 12) == year)) continue;
        year_bits *yb = &p->years[p->n_years++];
        *yb = (year_bits){.year = year, .current = year == y_now};
        /* the verdicts last stored, so that a restart (or another collector
         * of the group) does not alert again; a past year changes only by
         * late data (an import of its history, a gateway back after a
         * week): what it changes in verdicts that had settled is told like
         * this year's */
        int64_t computed = INT64_MAX;
        if (yb->current && !e->shared && s->have_bits && s->bits_year == year)
            yb->before = s->bits;
        else
            yb->before = stored_bits(e, s, year, yb->current ? NULL : &computed);
        yb->tell = yb->current || (computed != INT64_MAX && now_ms - computed >= SETTLED_MS);
        json = period_doc(e, s, DCEM_PERIOD_YEAR, year * 12, 12, as_of, &yb->bits, &tl);
        if (!json) failed = 1;
        else p->docs[p->n_docs++] = (doc){DCEM_PERIOD_YEAR, year, json};
    }
    free(tl.iv);
    return failed ? -1 : 0;
}

/* Stores what compute_site made in one short transaction with the alerts
 * of the verdicts it changed; hands the alerts and dcem_figures lines on
 * after the commit. -1 when the store failed (nothing stored, nothing
 * told). */
static int store_site(dcem_engine *e, site_rt *s, int64_t now_ms, site_pass *p)
{
    const char *site = s->cs->ledger->site;
    e->txn_error = 0;
    e->n_alerts = 0;
    int rc = dcem_store_begin(e->st);
    if (rc) txn_fail(e, rc);
    e->in_tx = 1;
    for (size_t k = 0; k < p->n_docs && !e->txn_error; k++)
        if ((rc = dcem_store_put_figures(e->st, site, p->docs[k].kind, p->docs[k].key,
                                         p->docs[k].json, now_ms)))
            txn_fail(e, rc);
    for (size_t k = 0; k < p->n_years && !e->txn_error; k++)
        if (p->years[k].tell)
            report_changes(e, s, p->years[k].year, p->years[k].before, p->years[k].bits, now_ms);
    if (!e->txn_error && (rc = dcem_store_commit(e->st))) txn_fail(e, rc);
    e->in_tx = 0;
    if (e->txn_error) {
        static dcem_complaint failed;
        dcem_complain(&failed, DCEM_LOG_ERROR, "figures", "%s: cannot store figures: %s (tried "
                      "again at the next pass)", site, dcem_store_error(e->st));
        dcem_store_rollback(e->st);
        e->lines_len = 0;
        e->n_alerts = 0;
        return -1;
    }
    for (size_t k = 0; k < p->n_years; k++)
        if (p->years[k].current) {
            s->bits = p->years[k].bits;
            s->bits_year = p->years[k].year;
            s->have_bits = 1;
        }
    flush_lines(e);
    for (size_t k = 0; k < e->n_alerts; k++) {
        const pending_alert *a = &e->alerts[k];
        hand_on(e, a->site, a->kind, a->subject, a->raised, a->message, a->t_ms);
    }
    e->n_alerts = 0;
    return 0;
}

int dcem_engine_recompute(dcem_engine *e, int64_t now_ms)
{
    int n = 0;
    site_pass *p = calloc(1, sizeof *p);
    if (!p) return 0;
    e->use_cache = !e->shared; /* other collectors write rollups no mark tells of */
    e->hold_lines = 1;
    int64_t pass_lag = 0; /* the longest a site's marks waited for their figures */
    for (size_t i = 0; i < e->cfg->n_sites; i++) {
        site_rt *s = &e->sites[i];
        /* marks are handed over after their commit: the snapshot below
         * holds what they mark */
        if (e->marks) {
            int64_t since = 0;
            int had = s->marks.n != 0;
            dcem_marks_take(e->marks, i, &s->marks, &since);
            if (since && (!had || since < s->marked_ms)) s->marked_ms = since;
        }
        if (!s->marks.n) continue;
        for (size_t k = 0; k < CACHE_RANGES; k++) {
            range_cache *c = &s->cache[k];
            if (c->used && (!e->use_cache || dcem_days_overlap(&s->marks, c->d0, c->d1 - 1)))
                c->used = 0;
        }
        e->lines_len = 0;
        /* rollups, meter states and stored verdicts of one committed state
         * (several statements: one read transaction) */
        int failed = dcem_store_begin_read(e->st);
        if (!failed) failed = compute_site(e, s, now_ms, p);
        dcem_store_rollback(e->st); /* ends the read */
        if (failed) {
            static dcem_complaint cannot;
            dcem_complain(&cannot, DCEM_LOG_ERROR, "figures", "%s: cannot compute its figures: "
                          "%s (tried again at the next pass)", s->cs->ledger->site,
                          dcem_store_error(e->st));
        }
        n += (int)p->n_docs;
        if (!failed && !store_site(e, s, now_ms, p)) {
            /* the months before the earliest one computed (beyond
             * MAX_MONTHS_PER_PASS) wait for the next pass */
            dcem_days_keep_before(&s->marks,
                                  dcem_zone_day(&s->zone,
                                                dcem_zone_month_start(&s->zone, p->first_month)));
            if (!s->marks.n && s->marked_ms) { /* all it marked is in the stored figures */
                int64_t lag = now_ms - s->marked_ms;
                if (lag > pass_lag) pass_lag = lag;
                s->marked_ms = 0;
            }
        }
        pass_free(p);
    }
    e->hold_lines = 0;
    e->use_cache = 0;
    e->lines_len = 0;
    free(p);
    e->stats.recomputes += (uint64_t)n;
    if (n) e->stats.figures_lag_ms = pass_lag;
    if (pass_lag > e->stats.figures_lag_max_ms) e->stats.figures_lag_max_ms = pass_lag;
    return n;
}

void dcem_engine_set_marks(dcem_engine *e, struct dcem_marks *m)
{
    e->marks = m;
}
