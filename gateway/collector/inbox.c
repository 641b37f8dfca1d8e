#include "inbox.h"
#include "errors.h"
#include "wire.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_SLOTS 1024 /* a power of two, twice the sources at most: probes stay short */

typedef struct source {
    char name[2 * DCEM_ID_MAX];
    dcem_inbox_msg *head, *tail;
    size_t n, bytes;
    double tok_msgs, tok_bytes; /* token buckets, refilled from `refill_ms` on */
    int64_t refill_ms;
    int active;                 /* in the ring of sources with messages waiting */
    uint64_t taken, dropped_rate, dropped_full;
} source;

struct dcem_inbox {
    pthread_mutex_t lock;
    const dcem_collector_config *cfg;
    source src[DCEM_INBOX_MAX_SOURCES];
    int n_src;
    int slot[HASH_SLOTS]; /* source index + 1; 0: empty */
    int ring[DCEM_INBOX_MAX_SOURCES]; /* round robin: sources with messages, in turn */
    int ring_head, ring_n;
    size_t bytes;
};

/* Whether site/gateway gets a queue (a source) of its own. */
static int gateway_known(const dcem_collector_config *cfg, const char *site, const char *gateway)
{
    /* a gateway of a ledger has a queue of its own; any other name shares
     * the one `unknown` source, so junk names cannot push a real gateway's
     * out. A lab (identity.allow_unsigned) takes unlisted gateways too, and
     * then junk names can use up the sources. */
    const dcem_collector_site *cs = dcem_collector_site_find(cfg, site);
    return cs && (cfg->identity.allow_unsigned ||
                  dcem_site_find_gateway(cs->ledger, gateway, strlen(gateway)) != NULL);
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

dcem_inbox *dcem_inbox_new(const dcem_collector_config *cfg)
{
    dcem_inbox *in = calloc(1, sizeof *in);
    if (!in) return NULL;
    pthread_mutex_init(&in->lock, NULL);
    in->cfg = cfg;
    snprintf(in->src[0].name, sizeof in->src[0].name, "unknown");
    in->src[0].tok_msgs = (double)cfg->ingest.gateway_msgs_burst;
    in->src[0].tok_bytes = (double)cfg->ingest.gateway_bytes_burst;
    in->n_src = 1;
    return in;
}

void dcem_inbox_msg_free(dcem_inbox_msg *m)
{
    if (!m) return;
    free(m->topic);
    free(m->payload);
    free(m);
}

void dcem_inbox_free(dcem_inbox *in)
{
    if (!in) return;
    for (int i = 0; i < in->n_src; i++)
        for (dcem_inbox_msg *m = in->src[i].head, *next; m; m = next) {
            next = m->next;
            dcem_inbox_msg_free(m);
        }
    pthread_mutex_destroy(&in->lock);
    free(in);
}

void dcem_inbox_set_config(dcem_inbox *in, const dcem_collector_config *cfg)
{
    pthread_mutex_lock(&in->lock);
    in->cfg = cfg;
    pthread_mutex_unlock(&in->lock);
}

/* The source of topic (under the lock): its gateway's, made on first
 * sight when the gateway is known and there is room, else `unknown`. */
static int source_of(dcem_inbox *in, const char *topic, size_t topic_len, int64_t now_ms)
{
    dcem_wire_topic_parts tp;
    if (dcem_wire_topic_parse(topic, topic_len, &tp) || !tp.gateway[0]) return DCEM_INBOX_UNKNOWN;
    char name[2 * DCEM_ID_MAX];
    snprintf(name, sizeof name, "%s/%s", tp.site, tp.gateway);
    uint32_t at = hash(name) & (HASH_SLOTS - 1);
    for (; in->slot[at]; at = (at + 1) & (HASH_SLOTS - 1))
        if (!strcmp(in->src[in->slot[at] - 1].name, name)) return in->slot[at] - 1;
    if (in->n_src == DCEM_INBOX_MAX_SOURCES || !gateway_known(in->cfg, tp.site, tp.gateway))
        return DCEM_INBOX_UNKNOWN;
    int i = in->n_src++;
    source *s = &in->src[i];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->tok_msgs = (double)in->cfg->ingest.gateway_msgs_burst;
    s->tok_bytes = (double)in->cfg->ingest.gateway_bytes_burst;
    s->refill_ms = now_ms;
    in->slot[at] = i + 1;
    return i;
}

static void refill(source *s, const dcem_collector_ingest *lim, int64_t now_ms)
{
    if (now_ms <= s->refill_ms) return;
    double dt = (double)(now_ms - s->refill_ms) / 1000.0;
    s->refill_ms = now_ms;
    s->tok_msgs += dt * (double)lim->gateway_msgs_per_s;
    if (s->tok_msgs > (double)lim->gateway_msgs_burst) s->tok_msgs = (double)lim->gateway_msgs_burst;
    s->tok_bytes += dt * (double)lim->gateway_bytes_per_s;
    if (s->tok_bytes > (double)lim->gateway_bytes_burst)
        s->tok_bytes = (double)lim->gateway_bytes_burst;
}

int dcem_inbox_put(dcem_inbox *in, const char *topic, size_t topic_len, const void *payload,
                   size_t len, int64_t now_ms)
{
    size_t held = len > DCEM_WIRE_MAX_PAYLOAD ? 0 : len;
    /* allocated before the lock: the ingest loop waits on it as little as possible */
    dcem_inbox_msg *x = calloc(1, sizeof *x);
    char *t = malloc(topic_len + 1);
    void *p = held ? malloc(held) : NULL;
    if (!x || !t || (held && !p)) {
        free(x), free(t), free(p);
        return DCEM_ENOMEM;
    }
    memcpy(t, topic, topic_len);
    t[topic_len] = '\0';
    if (held) memcpy(p, payload, held);
    *x = (dcem_inbox_msg){.topic = t, .payload = p, .len = len, .queued_ms = now_ms};

    pthread_mutex_lock(&in->lock);
    const dcem_collector_ingest *lim = &in->cfg->ingest;
    int i = source_of(in, t, topic_len, now_ms);
    source *s = &in->src[i];
    refill(s, lim, now_ms);
    int rc = DCEM_INBOX_TAKEN;
    if (s->tok_msgs < 1 || s->tok_bytes < (double)held) {
        rc = DCEM_INBOX_RATE;
        s->dropped_rate++;
    } else if (s->n >= (size_t)lim->gateway_queue_msgs ||
               s->bytes + held > (size_t)lim->gateway_queue_bytes ||
               in->bytes + held > DCEM_INBOX_MAX_BYTES) {
        rc = DCEM_INBOX_FULL; /* the newest is dropped: the queue keeps its order */
        s->dropped_full++;
    } else {
        s->tok_msgs -= 1;
        s->tok_bytes -= (double)held;
        x->source = i;
        if (s->tail) s->tail->next = x;
        else s->head = x;
        s->tail = x;
        s->n++;
        s->bytes += held;
        in->bytes += held;
        if (!s->active) {
            s->active = 1;
            in->ring[(in->ring_head + in->ring_n++) % DCEM_INBOX_MAX_SOURCES] = i;
        }
    }
    pthread_mutex_unlock(&in->lock);
    if (rc) dcem_inbox_msg_free(x);
    return rc;
}

dcem_inbox_msg *dcem_inbox_take(dcem_inbox *in)
{
    pthread_mutex_lock(&in->lock);
    dcem_inbox_msg *x = NULL;
    if (in->ring_n) {
        int i = in->ring[in->ring_head];
        in->ring_head = (in->ring_head + 1) % DCEM_INBOX_MAX_SOURCES;
        in->ring_n--;
        source *s = &in->src[i];
        x = s->head;
        s->head = x->next;
        if (!s->head) s->tail = NULL;
        size_t held = x->payload ? x->len : 0;
        s->n--;
        s->bytes -= held;
        in->bytes -= held;
        s->taken++;
        if (s->n) /* its turn again after every other source's */
            in->ring[(in->ring_head + in->ring_n++) % DCEM_INBOX_MAX_SOURCES] = i;
        else
            s->active = 0;
    }
    pthread_mutex_unlock(&in->lock);
    if (x) x->next = NULL;
    return x;
}

const char *dcem_inbox_source_name(dcem_inbox *in, int i)
{
    pthread_mutex_lock(&in->lock);
    const char *name = i >= 0 && i < in->n_src ? in->src[i].name : "";
    pthread_mutex_unlock(&in->lock);
    return name;
}

size_t dcem_inbox_sources(dcem_inbox *in, dcem_inbox_source *out, size_t cap)
{
    pthread_mutex_lock(&in->lock);
    size_t n = (size_t)in->n_src;
    for (size_t i = 0; i < n && i < cap; i++) {
        const source *s = &in->src[i];
        dcem_inbox_source *o = &out[i];
        snprintf(o->name, sizeof o->name, "%s", s->name);
        o->queued = s->n;
        o->bytes = s->bytes;
        o->taken = s->taken;
        o->dropped_rate = s->dropped_rate;
        o->dropped_full = s->dropped_full;
    }
    pthread_mutex_unlock(&in->lock);
    return n;
}
