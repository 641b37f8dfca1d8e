/* dcem-collector — the site compliance gateway: receives the agents' batches
 * over MQTT (a persistent session, QoS 1, optionally a shared subscription),
 * stores each once and only then acknowledges it, computes interval energy,
 * figures and verdicts with common/ (the same engine as dcem-audit), and
 * publishes verdict changes as alerts. With an `api` section it serves the
 * HTTP API (docs/api.md) from its own thread.
 *
 *   dcem-collector -c collector.yaml [--check-config]
 *   dcem-collector export -c collector.yaml --site S --from TIME --to TIME
 *   dcem-collector figures -c collector.yaml --site S (--year Y | --month YYYY-MM)
 */
#include "api.h"
#include "collector_config.h"
#include "dcem_io.h"
#include "dcem_log.h"
#include "engine.h"
#include "errors.h"
#include "inbox.h"
#include "influx_thread.h"
#include "marks.h"
#include "mqtt_link.h"
#include "parse.h"
#include "recompute.h"
#include "store.h"
#include "verify.h"

#include <curl/curl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef DCEM_VERSION
#define DCEM_VERSION "0"
#endif

#define PRUNE_EVERY_MS 600000
#define API_HEALTH_EVERY_MS 250 /* how fresh /metrics and /healthz are */

static volatile sig_atomic_t got_term, got_hup;
static void on_signal(int sig)
{
    if (sig == SIGHUP) got_hup = 1;
    else got_term = 1;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- messages from paho's thread ---- */

typedef dcem_inbox_msg msg;

/* What paho's thread shares with the ingest loop: the queues, and whether
 * the connection was lost. */
typedef struct inbox {
    dcem_inbox *q;
} inbox;

static int on_message(void *ctx, const char *topic, const void *payload, size_t len)
{
    inbox *in = ctx;
    /* queued, or dropped by its source's limits (counted there): never
     * waited on here, so one gateway's flood cannot hold up the others'
     * messages behind it on the connection */
    if (dcem_inbox_put(in->q, topic, strlen(topic), payload, len, mono_ms()) == DCEM_ENOMEM)
        return 0; /* not taken: paho delivers it again */
    return 1;
}

static void msg_free(msg *x)
{
    dcem_inbox_msg_free(x);
}

/* ---- MQTT ---- */

/* Refused payloads by source (the inbox's: a gateway the ledgers know, or
 * `unknown`) and reason (docs/wire-format.md, "Malformed payloads";
 * docs/collector.md, "Hostile and broken input"): counted, logged once
 * until that gateway sends a good one. Bounded by the inbox's sources, so
 * no number of junk names can push a real gateway's refusals out. */
typedef struct refusal {
    uint64_t count;
    uint64_t at_health; /* count at the last health line (drops: quiet since then ends them) */
    dcem_complaint complaint;
} refusal;

#define REASON_UNKNOWN_SITE (-1)
#define REASON_RATE DCEM_WIRE_REASON_COUNT        /* over its source's rate: dropped */
#define REASON_FULL (DCEM_WIRE_REASON_COUNT + 1)  /* its source's queue full: dropped */
#define N_REASONS (DCEM_WIRE_REASON_COUNT + 3)    /* index: reason + 1 */

/* A hole in a gateway's seqs the collector asks to be filled: resend
 * requests every resend_interval_ms, given up after max_resend_requests
 * unanswered. In a shared group the store is looked at first
 * (share_poll): while another member's commits move the gateway's H,
 * nothing is asked for and nothing given up. */
typedef struct hole {
    char site[DCEM_ID_MAX], gateway[DCEM_ID_MAX];
    uint64_t epoch, from; /* the first seq missing (H + 1) */
    int source;           /* the inbox's source of its gateway */
    uint64_t lowest;      /* the lowest seq above it that came */
    long long requests;   /* resend requests sent for `from` */
    int64_t next_ms;      /* the next request, or giving up (monotonic) */
    int64_t poll_ms;      /* shared group: the next look at the store's H (monotonic) */
} hole;

/* holes tracked, one per gateway and epoch; beyond, a gap is answered at once, unheld */
#define MAX_HOLES DCEM_INBOX_MAX_SOURCES
/* batches held for their predecessor, all gateways: in a shared group
 * after an outage, each gateway's window is spread over the members and
 * most of a member's share waits for the others' */
#define MAX_WAITING 8192
#define MAX_WAITING_BYTES (128u << 20)
#define MAX_WAITING_PER_SOURCE 256
/* shared group: each hole's gateway looked up in the store every 20 ms,
 * or less often with many holes — about 2,500 lookups a second in all */
#define SHARE_POLL_MIN_MS 20
#define SHARE_LOOKUPS_PER_S 2500

typedef struct collector {
    dcem_collector_config *cfg;
    dcem_store *store;
    dcem_engine *engine;
    dcem_influx_thread *influx; /* NULL without an influx section */
    dcem_marks *marks;          /* what the ingest's commits wrote, for the figures thread */
    dcem_recompute *figures;    /* the figures thread */
    dcem_mqtt *mqtt;
    inbox in;
    int64_t reconnect_at, backoff;
    dcem_complaint connect_complaint, store_complaint;
    refusal (*refusals)[N_REASONS]; /* [DCEM_INBOX_MAX_SOURCES] */
    dcem_complaint *set_aside;      /* [DCEM_INBOX_MAX_SOURCES]: batches quarantined */
    size_t complaining;             /* refusals with a complaint open */
    dcem_inbox_source *sources;     /* scratch: [DCEM_INBOX_MAX_SOURCES] */
    msg *waiting, *waiting_tail;    /* batches held for their predecessor, oldest first */
    size_t n_waiting, waiting_bytes;
    size_t waiting_of[DCEM_INBOX_MAX_SOURCES];
    unsigned char moved[DCEM_INBOX_MAX_SOURCES]; /* its H moved: try its held batches again */
    unsigned char retry_now[DCEM_INBOX_MAX_SOURCES];
    int any_moved;
    /* each gateway's next expected seq (the store's H + 1) in one epoch,
     * as last learned (0: not known): a held batch above it is not tried
     * again — it would only be found ahead of its predecessor again */
    uint64_t next_epoch[DCEM_INBOX_MAX_SOURCES], next_seq[DCEM_INBOX_MAX_SOURCES];
    hole holes[MAX_HOLES];
    size_t n_holes;
    uint64_t resend_requests;       /* sent */
    int64_t queue_wait_ms;          /* how long the last message taken waited in the inbox */
    uint64_t held_tries;            /* held batches tried again */
    dcem_api *api;                  /* NULL without an api section */
    dcem_api_health health;         /* what the API is handed (big: kept here, not on the stack) */
    int64_t started_ms;             /* monotonic */
} collector;

static const char *reason_name(int reason)
{
    if (reason == REASON_UNKNOWN_SITE) return "unknown_site";
    if (reason == REASON_RATE) return "rate_limited";
    if (reason == REASON_FULL) return "queue_full";
    return dcem_wire_reason_name(reason);
}

/* A refused payload: counted, and logged if it is the first of its
 * source and reason since that source's last good payload. */
static void refuse(collector *c, const dcem_engine_reply *r, int reason, const msg *x)
{
    refusal *f = &c->refusals[x->source][reason + 1];
    const char *gw = dcem_inbox_source_name(c->in.q, x->source);
    f->count++;
    if (!f->complaint.count) c->complaining++;
    if (reason == REASON_UNKNOWN_SITE)
        dcem_complain(&f->complaint, DCEM_LOG_WARN, "ingest",
                      "%s: batch for site %s not acked: %s (from %.160s; repeats counted)", gw,
                      r->site, r->why, x->topic);
    else
        dcem_complain(&f->complaint, DCEM_LOG_WARN, "ingest",
                      "%s: malformed payload on %.160s dropped: %s: %s (repeats counted)", gw,
                      x->topic, reason_name(reason), r->why);
}

/* A good payload from a source ends its complaints about payloads (drops
 * end when they stop: sync_drops). */
static void accept_from(collector *c, int source)
{
    if (c->set_aside[source].count)
        dcem_release(&c->set_aside[source], "ingest", "%s: batches stored again",
                     dcem_inbox_source_name(c->in.q, source));
    if (!c->complaining) return;
    for (int k = 0; k < N_REASONS; k++) {
        refusal *f = &c->refusals[source][k];
        if (!f->complaint.count || k == REASON_RATE + 1 || k == REASON_FULL + 1) continue;
        dcem_release(&f->complaint, "ingest", "%s: good payloads again after %s",
                     dcem_inbox_source_name(c->in.q, source), reason_name(k - 1));
        c->complaining--;
    }
}

/* The inbox's drops into the refusal counts: logged once when a source
 * starts dropping; with `ended`, a source that dropped nothing since the
 * last call with `ended` is told to be well again. */
static void sync_drops(collector *c, int ended)
{
    size_t n = dcem_inbox_sources(c->in.q, c->sources, DCEM_INBOX_MAX_SOURCES);
    for (size_t i = 0; i < n && i < DCEM_INBOX_MAX_SOURCES; i++) {
        const dcem_inbox_source *s = &c->sources[i];
        uint64_t now[2] = {s->dropped_rate, s->dropped_full};
        for (int k = 0; k < 2; k++) {
            int reason = k ? REASON_FULL : REASON_RATE;
            refusal *f = &c->refusals[i][reason + 1];
            if (now[k] > f->count) {
                if (!f->complaint.count) c->complaining++;
                dcem_complain(&f->complaint, DCEM_LOG_WARN, "ingest",
                              "%s: messages dropped: %s (a real agent sends them again: they "
                              "were not acked; repeats counted)",
                              s->name, k ? "its queue is full" : "over its rate limit");
                f->count = now[k];
            } else if (ended && f->complaint.count && f->count == f->at_health) {
                dcem_release(&f->complaint, "ingest", "%s: no drops (%s) any more", s->name,
                             reason_name(reason));
                c->complaining--;
            }
            if (ended) f->at_health = f->count;
        }
    }
}

static int publish(collector *c, const char *topic, const char *json, size_t len, int retained)
{
    char err[300];
    return dcem_mqtt_publish(c->mqtt, topic, json, len, 1, retained, err, sizeof err);
}

/* Publishes an ack or a command, signed with the collector's key (a lab
 * collector without one sends it unsigned): an agent believes only what
 * the collector signed for its own topic. */
static void publish_signed(collector *c, const char *topic, char *json, size_t len)
{
    char buf[512];
    if (c->cfg->signer) {
        if (len >= sizeof buf - DCEM_SIG_SUFFIX_LEN) return; /* acks and commands are tiny */
        memcpy(buf, json, len);
        if (dcem_sign_payload(c->cfg->signer, topic, buf, &len, sizeof buf)) return;
        json = buf;
    }
    publish(c, topic, json, len, 0);
}

/* refused: the readings of the batches this ack answers that were not
 * counted, by DCEM_REFUSE_* (NULL: none — a re-ack answers no new batch). */
static void send_ack(collector *c, const char *site, const char *gw, uint64_t epoch, uint64_t seq,
                     const uint32_t *refused)
{
    char topic[DCEM_WIRE_TOPIC_MAX], *json;
    size_t len;
    dcem_wire_ack a = {.epoch = epoch, .seq = seq};
    if (refused) memcpy(a.refused, refused, sizeof a.refused);
    if (dcem_wire_topic(topic, sizeof topic, site, gw, "ack") ||
        dcem_wire_encode_ack(&a, &json, &len))
        return;
    publish_signed(c, topic, json, len);
    free(json);
}

static void send_resend(collector *c, const char *site, const char *gw, uint64_t epoch,
                        uint64_t from)
{
    char topic[DCEM_WIRE_TOPIC_MAX], *json;
    size_t len;
    dcem_wire_ctl ctl = {.cmd = DCEM_WIRE_CMD_RESEND, .epoch = epoch, .from_seq = from};
    if (dcem_wire_topic(topic, sizeof topic, site, gw, "ctl") ||
        dcem_wire_encode_ctl(&ctl, &json, &len))
        return;
    publish_signed(c, topic, json, len);
    free(json);
}

/* After a (re)connect every gateway hears where it stands: an agent that
 * missed an ack stops waiting for it. */
static int reack(void *ctx, const dcem_store_epoch *e)
{
    collector *c = ctx;
    const dcem_collector_site *s = dcem_collector_site_find(c->cfg, e->site);
    if (c->cfg->shard.n_sites && !(s && s->mine)) return 0; /* another collector's */
    send_ack(c, e->site, e->gateway, e->epoch, e->contiguous_seq, NULL);
    return 0;
}

static void try_connect(collector *c, int64_t now)
{
    if (dcem_mqtt_is_connected(c->mqtt) || now < c->reconnect_at) return;
    const dcem_mqtt_cfg *m = &c->cfg->mqtt;
    const dcem_collector_shard *sh = &c->cfg->shard;
    char err[1024], share[80] = "";
    if (*m->share_group) snprintf(share, sizeof share, "$share/%s/", m->share_group);
    /* every site's data and state, or those of the shard's sites */
    size_t n = sh->n_sites ? sh->n_sites : 1;
    char(*filters)[2][DCEM_WIRE_TOPIC_MAX + sizeof share] = calloc(n, sizeof *filters);
    const char **topics = calloc(2 * n, sizeof *topics);
    if (!filters || !topics) {
        free(filters);
        free(topics);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *site = sh->n_sites ? sh->sites[i] : "+";
        snprintf(filters[i][0], sizeof filters[i][0], "%s" DCEM_WIRE_ROOT "/%s/+/data", share, site);
        snprintf(filters[i][1], sizeof filters[i][1], DCEM_WIRE_ROOT "/%s/+/state", site);
        topics[2 * i] = filters[i][0];
        topics[2 * i + 1] = filters[i][1];
    }
    char data[sizeof filters[0][0] + 40];
    snprintf(data, sizeof data, "%s%s", filters[0][0], n > 1 ? " (and the shard's other sites)" : "");
    int rc = dcem_mqtt_connect(c->mqtt, topics, 2 * n, err, sizeof err);
    free(filters);
    free(topics);
    if (rc) {
        dcem_complain(&c->connect_complaint, DCEM_LOG_WARN, "mqtt", "%s", err);
        c->backoff = c->backoff ? (c->backoff * 2 > 30000 ? 30000 : c->backoff * 2) : 500;
        c->reconnect_at = now + c->backoff;
        return;
    }
    dcem_release(&c->connect_complaint, "mqtt", "connected to %s", m->uri);
    DCEM_LOGI("mqtt", "subscribed to %s on %s as %s", data, m->uri, m->client_id);
    c->backoff = 0;
    dcem_store_epochs(c->store, reack, c);
}

static void on_alert(void *ctx, const dcem_engine_alert *a)
{
    collector *c = ctx;
    DCEM_LOGW("alert", "site %s: %s", a->site, a->message);
    char topic[DCEM_WIRE_TOPIC_MAX], json[512];
    if (dcem_wire_topic(topic, sizeof topic, a->site, NULL, "alerts")) return;
    int n = snprintf(json, sizeof json,
                     "{\"v\":1,\"site\":\"%s\",\"kind\":\"%s\",\"subject\":\"%s\","
                     "\"state\":\"%s\",\"t\":%lld,\"message\":\"%s\"}",
                     a->site, a->kind, a->subject ? a->subject : "", a->raised ? "raised" : "cleared",
                     (long long)a->t_ms, a->message);
    if (n > 0 && (size_t)n < sizeof json && dcem_mqtt_is_connected(c->mqtt))
        publish(c, topic, json, (size_t)n, 1);
}

/* A gateway's birth or last will. */
static void handle_state(collector *c, const msg *x, const dcem_wire_topic_parts *tp, int64_t now)
{
    dcem_wire_state s;
    int reason;
    char err[200];
    dcem_engine_reply r = {0};
    snprintf(r.site, sizeof r.site, "%s", tp->site);
    snprintf(r.gateway, sizeof r.gateway, "%s", tp->gateway);
    /* an empty retained message only clears the last one (an import's end) */
    if (!x->len || !dcem_collector_site_find(c->cfg, tp->site)) return;
    /* a birth moves what the collector waits for: only its gateway may say it */
    reason = dcem_engine_verify(c->engine, x->topic, tp, x->payload, x->len, NULL, r.why,
                                sizeof r.why);
    if (reason) {
        refuse(c, &r, reason, x);
        return;
    }
    if (!dcem_wire_decode_state(x->payload, x->len, &s, &reason, err, sizeof err)) {
        DCEM_LOGI("gateway", "%s/%s is %s", tp->site, tp->gateway, s.online ? "online" : "offline");
        dcem_engine_gateway_state(c->engine, tp->site, tp->gateway, &s, now);
    }
}

#define GROUP_MAX 64               /* batches stored in one transaction at most */
#define GROUP_BYTES (16u << 20)    /* and this much payload */

/* One ack or resend per (site, gateway, epoch) for a group: the highest
 * cumulative ack, the lowest resend, and the refusals of every batch it
 * answers (each stored batch is answered by exactly one group, so the
 * agent hears each refusal once). */
typedef struct answer {
    const dcem_engine_reply *r;
    uint64_t ack_seq, resend_from;
    int ack, resend;
    uint32_t refused[DCEM_REFUSE_COUNT];
} answer;

static void answer_add(answer *as, size_t *n, const dcem_engine_reply *r)
{
    size_t i = 0;
    while (i < *n && !(as[i].r->epoch == r->epoch && !strcmp(as[i].r->site, r->site) &&
                       !strcmp(as[i].r->gateway, r->gateway)))
        i++;
    if (i == *n) as[(*n)++] = (answer){.r = r};
    answer *a = &as[i];
    if (r->ack && (!a->ack || r->ack_seq > a->ack_seq)) a->ack = 1, a->ack_seq = r->ack_seq;
    if (r->resend && (!a->resend || r->resend_from < a->resend_from))
        a->resend = 1, a->resend_from = r->resend_from;
    /* at most 64 batches of 10,000 readings: the cap is never reached */
    for (int k = 0; k < DCEM_REFUSE_COUNT; k++)
        a->refused[k] = r->refused[k] > UINT32_MAX - a->refused[k] ? UINT32_MAX
                                                                    : a->refused[k] + r->refused[k];
}

/* ---- holes: batches ahead of a missing one ---- */

/* A batch that came ahead of a missing one is held here (unacked, bounded:
 * MAX_WAITING, MAX_WAITING_PER_SOURCE; beyond, it is dropped and its agent
 * sends it again) and tried again once its gateway's seqs move. Returns 1
 * when x was kept. */
static int hold(collector *c, msg *x)
{
    if (c->n_waiting == MAX_WAITING || c->waiting_of[x->source] == MAX_WAITING_PER_SOURCE ||
        c->waiting_bytes + x->len > MAX_WAITING_BYTES)
        return 0;
    x->tried = 1;
    x->next = NULL;
    if (c->waiting_tail) c->waiting_tail->next = x;
    else c->waiting = x;
    c->waiting_tail = x;
    c->n_waiting++;
    c->waiting_bytes += x->len;
    c->waiting_of[x->source]++;
    return 1;
}

static msg *unhold(collector *c)
{
    msg *x = c->waiting;
    if (!x) return NULL;
    c->waiting = x->next;
    if (!c->waiting) c->waiting_tail = NULL;
    x->next = NULL;
    c->n_waiting--;
    c->waiting_bytes -= x->len;
    c->waiting_of[x->source]--;
    return x;
}

/* The store's H of source's gateway in epoch is at least next - 1. */
static void learn(collector *c, int source, uint64_t epoch, uint64_t next)
{
    if (c->next_epoch[source] != epoch || c->next_seq[source] < next)
        c->next_epoch[source] = epoch, c->next_seq[source] = next;
}

/* How often a hole's gateway is looked up in the store (shared group). */
static int64_t poll_every_ms(const collector *c)
{
    int64_t ms = (int64_t)c->n_holes * 1000 / SHARE_LOOKUPS_PER_S;
    return ms < SHARE_POLL_MIN_MS ? SHARE_POLL_MIN_MS : ms;
}

/* How long a hole waits for its gateway's seqs to move before it is asked
 * for (first: the first time): a single collector asks at once, then
 * every resend_interval_ms; in a shared group, another member may be
 * storing the batch, behind a queue about as long as this one's (a
 * backlog: seconds) — asking early only brings the gateway's window
 * again, as duplicates, into queues already full. */
static int64_t hole_wait_ms(const collector *c, int first)
{
    if (!c->cfg->mqtt.share_group[0]) return first ? 0 : c->cfg->ingest.resend_interval_ms;
    return c->cfg->ingest.resend_interval_ms + 4 * c->queue_wait_ms;
}

static int hole_is(const hole *h, const char *site, const char *gateway, uint64_t epoch)
{
    return h->epoch == epoch && !strcmp(h->site, site) && !strcmp(h->gateway, gateway);
}

static void hole_remove(collector *c, size_t i)
{
    c->holes[i] = c->holes[--c->n_holes];
}

/* Batch seq of site/gateway's epoch came ahead of the missing `from`: the
 * hole it shows, tracked (the first request at once, or after
 * resend_interval_ms in a shared group, where another member may be
 * storing it). NULL when MAX_HOLES are tracked already. */
static hole *hole_note(collector *c, const char *site, const char *gateway, uint64_t epoch,
                       uint64_t from, uint64_t seq, int source, int64_t now)
{
    hole *h = NULL;
    for (size_t i = 0; i < c->n_holes && !h; i++)
        if (hole_is(&c->holes[i], site, gateway, epoch)) h = &c->holes[i];
    if (h && h->from == from) {
        if (seq < h->lowest) h->lowest = seq;
        return h;
    }
    if (!h) {
        if (c->n_holes == MAX_HOLES) return NULL;
        h = &c->holes[c->n_holes++];
        snprintf(h->site, sizeof h->site, "%s", site);
        snprintf(h->gateway, sizeof h->gateway, "%s", gateway);
        h->epoch = epoch;
        h->source = source;
    }
    /* new, or its gateway's seqs moved on to another hole */
    h->from = from;
    h->lowest = seq;
    h->requests = 0;
    h->next_ms = now + hole_wait_ms(c, 1);
    h->poll_ms = now + poll_every_ms(c);
    return h;
}

/* Batches up to seq of site/gateway's epoch are stored (or acked): the
 * holes they filled are closed, and the batches held behind them tried
 * again — also when a duplicate told it (another member stored the
 * batch): nothing else would. */
static void holes_filled(collector *c, const char *site, const char *gateway, uint64_t epoch,
                         uint64_t seq)
{
    for (size_t i = c->n_holes; i-- > 0;)
        if (hole_is(&c->holes[i], site, gateway, epoch) && c->holes[i].from <= seq) {
            c->moved[c->holes[i].source] = 1;
            c->any_moved = 1;
            hole_remove(c, i);
        }
}

/* In a shared group: what the store says of each hole's gateway, every
 * poll_every_ms. Another member storing its batches moves its H: the
 * batches held here behind it are tried again, and the hole's requests
 * and giving up wait (its timer starts again). */
static void share_poll(collector *c, int64_t now)
{
    if (!c->cfg->mqtt.share_group[0]) return;
    for (size_t i = 0; i < c->n_holes; i++) {
        hole *h = &c->holes[i];
        if (now < h->poll_ms) continue;
        h->poll_ms = now + poll_every_ms(c);
        dcem_store_epoch ep;
        if (dcem_store_gateway_seq(c->store, h->site, h->gateway, h->epoch, &ep) ||
            ep.contiguous_seq + 1 <= h->from)
            continue; /* nothing new (a store failure: the store's own complaint) */
        h->from = ep.contiguous_seq + 1;
        h->requests = 0;
        h->next_ms = now + hole_wait_ms(c, 1);
        learn(c, h->source, h->epoch, h->from);
        c->moved[h->source] = 1;
        c->any_moved = 1;
    }
}

/* Asks for each hole again every resend_interval_ms (hole_wait_ms); after
 * max_resend_requests unanswered, gives it up as missing data (up to the
 * lowest batch that came after it), so the batches held behind it are
 * stored: a gateway that cannot fill a hole never stalls. */
static void holes_tick(collector *c, int64_t now)
{
    const dcem_collector_ingest *lim = &c->cfg->ingest;
    for (size_t i = c->n_holes; i-- > 0;) {
        hole *h = &c->holes[i];
        if (now < h->next_ms) continue;
        h->next_ms = now + hole_wait_ms(c, 0);
        if (h->requests < lim->max_resend_requests) {
            send_resend(c, h->site, h->gateway, h->epoch, h->from);
            h->requests++;
            c->resend_requests++;
        } else if (!dcem_engine_give_up(c->engine, h->site, h->gateway, h->epoch, h->lowest - 1)) {
            learn(c, h->source, h->epoch, h->lowest);
            c->moved[h->source] = 1;
            c->any_moved = 1;
            hole_remove(c, i);
        } /* else the store failed: tried again at the next interval */
    }
}

/* Whether held batch x must wait still: it is above its gateway's next
 * seq as far as the collector knows, and the hole before it is tracked
 * (noted again if it was closed meanwhile — the collector stored the
 * batch it lacked, not the next — so that it is asked for, or in a shared
 * group looked for in the store). */
static int must_wait(collector *c, msg *x, int64_t now)
{
    dcem_wire_topic_parts tp;
    if (c->next_epoch[x->source] != x->epoch || x->seq <= c->next_seq[x->source] ||
        dcem_wire_topic_parse(x->topic, strlen(x->topic), &tp))
        return 0;
    return hole_note(c, tp.site, tp.gateway, x->epoch, c->next_seq[x->source], x->seq, x->source,
                     now) != NULL;
}

/* Stores a group of data messages in one transaction, then answers: acks
 * only after the commit. Frees the messages, except those held. */
static void store_group(collector *c, msg **xs, size_t n, int64_t now)
{
    dcem_engine_msg ms[GROUP_MAX];
    static dcem_engine_reply rs[GROUP_MAX];
    int out[GROUP_MAX];
    answer as[GROUP_MAX];
    size_t na = 0;
    for (size_t i = 0; i < n; i++)
        ms[i] = (dcem_engine_msg){xs[i]->topic, strlen(xs[i]->topic), xs[i]->payload, xs[i]->len,
                                  xs[i]->tried};
    dcem_engine_batches(c->engine, ms, n, now, rs, out);
    for (size_t i = 0; i < n; i++) {
        const dcem_engine_reply *r = &rs[i];
        switch (out[i]) {
        case DCEM_ENGINE_QUARANTINED:
            dcem_complain(&c->set_aside[xs[i]->source], DCEM_LOG_WARN, "ingest",
                          "%s/%s batch %llu set aside: %s (repeats counted)", r->site, r->gateway,
                          (unsigned long long)r->ack_seq, r->why);
            /* fall through */
        case DCEM_ENGINE_STORED:
        case DCEM_ENGINE_DUPLICATE:
            dcem_release(&c->store_complaint, "store", "storing again");
            if (out[i] != DCEM_ENGINE_QUARANTINED) accept_from(c, xs[i]->source);
            holes_filled(c, r->site, r->gateway, r->epoch, r->ack_seq);
            if (r->ack) learn(c, xs[i]->source, r->epoch, r->ack_seq + 1);
            if (out[i] != DCEM_ENGINE_DUPLICATE) c->moved[xs[i]->source] = 1, c->any_moved = 1;
            answer_add(as, &na, r);
            break;
        case DCEM_ENGINE_GAP: {
            hole *h = hole_note(c, r->site, r->gateway, r->epoch, r->resend_from, r->seq,
                                xs[i]->source, mono_ms());
            learn(c, xs[i]->source, r->epoch, r->resend_from);
            xs[i]->epoch = r->epoch;
            xs[i]->seq = r->seq;
            if (h && hold(c, xs[i])) {
                xs[i] = NULL;
                break;
            }
            /* not held: dropped unacked (its agent sends it again); an
             * untracked hole is asked for at once */
            if (!h) answer_add(as, &na, r);
            break;
        }
        case DCEM_ENGINE_MALFORMED: refuse(c, r, r->reason, xs[i]); break;
        case DCEM_ENGINE_UNKNOWN_SITE: refuse(c, r, REASON_UNKNOWN_SITE, xs[i]); break;
        default:
            dcem_complain(&c->store_complaint, DCEM_LOG_ERROR, "store",
                          "cannot store a batch: %s", r->why);
            break;
        }
    }
    for (size_t i = 0; i < na; i++) {
        if (as[i].ack)
            send_ack(c, as[i].r->site, as[i].r->gateway, as[i].r->epoch, as[i].ack_seq,
                     as[i].refused);
        if (as[i].resend)
            send_resend(c, as[i].r->site, as[i].r->gateway, as[i].r->epoch, as[i].resend_from);
    }
    for (size_t i = 0; i < n; i++) msg_free(xs[i]);
}

/* Takes what the inbox holds, round robin across its sources: data
 * messages in groups, a state message between them on its own; first the
 * batches held for their predecessor whose gateway's seqs moved since they
 * were last tried (in this collector's commits, a birth's, or in a shared
 * group another member's: share_poll), and of those only the ones that
 * may be next. Returns the number taken from the inbox. */
static size_t drain(collector *c)
{
    msg *xs[GROUP_MAX];
    size_t n = 0, bytes = 0, taken = 0, waiting = 0;
    if (c->any_moved) {
        waiting = c->n_waiting;
        memcpy(c->retry_now, c->moved, sizeof c->moved);
        memset(c->moved, 0, sizeof c->moved);
        c->any_moved = 0;
    }
    for (;;) {
        msg *x = taken < waiting                ? unhold(c)
                 : taken < 4 * GROUP_MAX + waiting ? dcem_inbox_take(c->in.q)
                                                   : NULL;
        if (x && taken < waiting && (!c->retry_now[x->source] || must_wait(c, x, mono_ms()))) {
            hold(c, x); /* not yet: to the back, untried */
            taken++;
            continue;
        }
        if (x && taken < waiting) c->held_tries++;
        else if (x) c->queue_wait_ms = mono_ms() - x->queued_ms;
        else if (taken < 4 * GROUP_MAX + waiting) c->queue_wait_ms = 0; /* the inbox is empty */
        dcem_wire_topic_parts tp;
        int state = x && !dcem_wire_topic_parse(x->topic, strlen(x->topic), &tp) &&
                    tp.leaf == DCEM_WIRE_STATE;
        if (n && (!x || state || n == GROUP_MAX || bytes + x->len > GROUP_BYTES)) {
            store_group(c, xs, n, wall_ms());
            n = bytes = 0;
        }
        if (!x) break;
        taken++;
        if (state) {
            handle_state(c, x, &tp, wall_ms());
            c->moved[x->source] = 1; /* a birth may have given batches up */
            c->any_moved = 1;
            c->next_epoch[x->source] = c->next_seq[x->source] = 0;
            msg_free(x);
            continue;
        }
        xs[n++] = x;
        bytes += x->payload ? x->len : 0;
    }
    return taken - waiting;
}

/* An engine's lines to the InfluxDB writer's hand-off (a copy: its
 * thread sends them; a full hand-off drops and counts them). ctx: the
 * writer — from the ingest thread and the figures thread alike. */
static void to_influx(void *ctx, const char *lines, size_t len)
{
    dcem_influx_thread_add(ctx, lines, len);
}

static void log_health(collector *c)
{
    const dcem_engine_stats *s = dcem_engine_stats_get(c->engine);
    DCEM_LOGI("health",
              "received %llu, stored %llu, duplicates %llu, gaps %llu, malformed %llu, "
              "quarantined %llu, unknown site %llu, failed %llu; readings %llu, intervals %llu",
              (unsigned long long)s->received, (unsigned long long)s->stored,
              (unsigned long long)s->duplicates, (unsigned long long)s->gaps,
              (unsigned long long)s->malformed, (unsigned long long)s->quarantined,
              (unsigned long long)s->unknown_site, (unsigned long long)s->failed,
              (unsigned long long)s->readings, (unsigned long long)s->intervals);
    if (c->figures) {
        uint64_t periods, unpublished;
        int64_t lag, lag_max;
        dcem_recompute_counts(c->figures, &periods, &unpublished, &lag, &lag_max);
        DCEM_LOGI("health", "figures: %llu periods computed; data waited %lld ms for its figures "
                  "in the last pass (at most %lld ms)",
                  (unsigned long long)periods, (long long)lag, (long long)lag_max);
    }
    sync_drops(c, 1);
    size_t n = dcem_inbox_sources(c->in.q, c->sources, DCEM_INBOX_MAX_SOURCES);
    for (size_t i = 0; i < n && i < DCEM_INBOX_MAX_SOURCES; i++)
        for (int k = 0; k < N_REASONS; k++)
            if (c->refusals[i][k].count)
                DCEM_LOGI("health", "refused from %s: %s %llu", c->sources[i].name,
                          reason_name(k - 1), (unsigned long long)c->refusals[i][k].count);
    if (s->future_readings || s->future_states || s->out_of_range_values || s->store_refused ||
        s->unknown_meter_readings)
        DCEM_LOGI("health",
                  "readings refused: stamped in the future %llu, unknown meter %llu; values of "
                  "absurd size left out %llu; meter states from the future set aside %llu; "
                  "batches the store refused (quarantined) %llu",
                  (unsigned long long)s->future_readings,
                  (unsigned long long)s->unknown_meter_readings,
                  (unsigned long long)s->out_of_range_values,
                  (unsigned long long)s->future_states, (unsigned long long)s->store_refused);
    if (s->group_retries)
        DCEM_LOGI("health", "store conflicts: %llu transactions run again (a replayed row met "
                  "the fast path, or another collector)", (unsigned long long)s->group_retries);
    if (s->late_readings || s->rebuilds)
        DCEM_LOGI("health", "late readings %llu: %llu meter rebuilds ran %llu stored readings again",
                  (unsigned long long)s->late_readings, (unsigned long long)s->rebuilds,
                  (unsigned long long)s->rebuilt_readings);
    if (c->resend_requests || s->holes_given_up || c->held_tries)
        DCEM_LOGI("health", "holes: %llu resend requests, %llu holes given up (%llu batches, "
                  "%llu of them came later and were stored); %zu open, %zu batches held, "
                  "held batches tried again %llu times",
                  (unsigned long long)c->resend_requests, (unsigned long long)s->holes_given_up,
                  (unsigned long long)s->seqs_given_up, (unsigned long long)s->given_up_stored,
                  c->n_holes, c->n_waiting, (unsigned long long)c->held_tries);
    const uint64_t *rn = s->ratio_notes;
    if (s->ratio_changes || rn[DCEM_WIRE_RATIO_HELD] || rn[DCEM_WIRE_RATIO_UNKNOWN] ||
        rn[DCEM_WIRE_RATIO_MISMATCH])
        DCEM_LOGI("health", "transformer ratios: %llu changes; readings held %llu, unknown %llu, "
                  "mismatch %llu", (unsigned long long)s->ratio_changes,
                  (unsigned long long)rn[DCEM_WIRE_RATIO_HELD],
                  (unsigned long long)rn[DCEM_WIRE_RATIO_UNKNOWN],
                  (unsigned long long)rn[DCEM_WIRE_RATIO_MISMATCH]);
    if (c->influx) {
        dcem_influx_stats is;
        dcem_influx_thread_stats(c->influx, &is);
        DCEM_LOGI("health",
                  "influxdb: written %llu lines, %llu failed requests, backlog %llu lines, "
                  "dropped %llu lines%s",
                  (unsigned long long)is.lines_written, (unsigned long long)is.requests_failed,
                  (unsigned long long)is.backlog_lines, (unsigned long long)is.dropped_lines,
                  is.down ? " (down)" : "");
    }
}

/* The health counters of the log line, handed to the API's thread (it
 * reads a copy under its lock: the engine itself is this thread's). */
static void share_health(collector *c, int64_t now)
{
    if (!c->api) return;
    dcem_api_health *h = &c->health;
    h->engine = *dcem_engine_stats_get(c->engine);
    uint64_t unpublished;
    if (c->figures)
        dcem_recompute_counts(c->figures, &h->engine.recomputes, &unpublished,
                              &h->engine.figures_lag_ms, &h->engine.figures_lag_max_ms);
    h->have_influx = c->influx != NULL;
    if (c->influx) dcem_influx_thread_stats(c->influx, &h->influx);
    h->mqtt_connected = dcem_mqtt_is_connected(c->mqtt);
    h->store_ok = c->store_complaint.count == 0;
    h->uptime_s = (now - c->started_ms) / 1000;
    h->resend_requests = c->resend_requests;
    h->held_tries = c->held_tries;
    h->held = c->n_waiting;
    sync_drops(c, 0);
    size_t n = dcem_inbox_sources(c->in.q, c->sources, DCEM_INBOX_MAX_SOURCES);
    h->n_refusals = 0;
    for (size_t i = 0; i < n && i < DCEM_INBOX_MAX_SOURCES; i++)
        for (int k = 0; k < N_REASONS && h->n_refusals < DCEM_API_MAX_REFUSALS; k++) {
            if (!c->refusals[i][k].count) continue;
            dcem_api_refusal *r = &h->refusals[h->n_refusals++];
            snprintf(r->gateway, sizeof r->gateway, "%s", c->sources[i].name);
            snprintf(r->reason, sizeof r->reason, "%s", reason_name(k - 1));
            r->count = c->refusals[i][k].count;
        }
    dcem_api_set_health(c->api, h);
}

/* The API of cfg, started: its own store handle and engine, its listener. */
static int start_api(const dcem_collector_config *cfg, dcem_api **out, char *err, size_t errlen)
{
    dcem_api_view *v;
    int rc = dcem_api_view_open(cfg, &v, err, errlen);
    return rc ? rc : dcem_api_start(v, out, err, errlen);
}

/* The collector's link: a persistent session (the broker keeps our
 * subscription and queues batches while we are away), no will, and up to
 * ACKS_IN_FLIGHT acks in flight: paho's synchronous client sleeps 100 ms at
 * a time while its window is full, on the ingest thread, so the window must
 * hold every ack a burst of many gateways' batches makes (500 gateways
 * draining a backlog 20 batches ahead each kept a window of 100 full and
 * the ingest at a third of its speed: docs/benchmarks.md, scale). */
#define ACKS_IN_FLIGHT 10000
static dcem_mqtt *new_link(inbox *in, const dcem_mqtt_cfg *m, char *err, size_t errlen)
{
    dcem_mqtt_opts o = {.persistent = 1, .inflight = ACKS_IN_FLIGHT, .fn = on_message, .ctx = in};
    return dcem_mqtt_new(m, &o, err, errlen);
}

static dcem_store *open_store(const dcem_collector_config *cfg, char *err, size_t errlen);

static int influx_same(const dcem_influx_cfg *a, const dcem_influx_cfg *b)
{
    dcem_influx_cfg x = *a, y = *b;
    x.line = y.line = 0; /* where it is in the file does not matter */
    return !memcmp(&x, &y, sizeof x);
}

static int mqtt_same(const dcem_mqtt_cfg *a, const dcem_mqtt_cfg *b)
{
    dcem_mqtt_cfg x, y; /* memcpy: the padding too, zero in both (calloc'd configs) */
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    x.line = y.line = 0; /* where it is in the file does not matter */
    return !memcmp(&x, &y, sizeof x);
}

/* SIGHUP: the configuration file again, whole. Ledgers, policy, logging
 * and timers change in place; a changed store, InfluxDB or MQTT section
 * opens its part anew (MQTT: a new session — the old one's queue stays with
 * the broker until it expires). The API gets a new view (its own store
 * handle and engine over the new file); a moved listener is bound anew
 * before the old one closes. Everything new is set up before anything old
 * is let go: a reload that fails at any step changes nothing. */
static void reload(collector *c, const char *file)
{
    char err[1024] = "";
    dcem_collector_config *n = dcem_collector_config_load(file, err, sizeof err);
    dcem_store *st = NULL;
    dcem_influx_thread *ix = NULL;
    dcem_mqtt *link = NULL;
    dcem_engine *e = NULL;
    dcem_api *api = NULL;     /* a new listener (first one, or moved) */
    dcem_api_view *view = NULL; /* the running listener's new view */
    dcem_marks *marks = NULL;
    dcem_recompute *figures = NULL;
    int new_store = 0, new_influx = 0, new_mqtt = 0, relimit = 0;
    if (!n) goto refused;
    new_store = !dcem_collector_store_same(&n->store, &c->cfg->store);
    new_influx = !influx_same(&n->influx, &c->cfg->influx);
    new_mqtt = !mqtt_same(&n->mqtt, &c->cfg->mqtt) ||
               memcmp(&n->shard.sites, &c->cfg->shard.sites, sizeof n->shard.sites) ||
               n->shard.n_sites != c->cfg->shard.n_sites; /* subscribed anew */
    if (new_store && !(st = open_store(n, err, sizeof err))) goto refused;
    if (new_influx && n->influx.line && dcem_influx_thread_start(&n->influx, &ix, err, sizeof err))
        goto refused;
    if (new_mqtt && !(link = new_link(&c->in, &n->mqtt, err, sizeof err))) goto refused;
    if (!(e = dcem_engine_new(n, st ? st : c->store)) || !(marks = dcem_marks_new(n->n_sites))) {
        snprintf(err, sizeof err, "out of memory");
        goto refused;
    }
    dcem_influx_thread *sink = new_influx ? ix : c->influx;
    if (dcem_recompute_start(n, marks, sink ? to_influx : NULL, sink, &figures, err, sizeof err))
        goto refused;
    if (n->api.line) {
        int moved = !c->api || strcmp(n->api.listen, c->cfg->api.listen) != 0;
        if (moved && start_api(n, &api, err, sizeof err)) goto refused;
        if (!moved && dcem_api_view_open(n, &view, err, sizeof err)) goto refused;
        relimit = !moved && !dcem_api_same_listener(&c->cfg->api, &n->api);
    }
    /* committed: nothing below fails (but a listener restarted in place) */
    if (api || !n->api.line) { /* the old API reads the old config: gone before it */
        dcem_api_stop(c->api);
        c->api = api;
    } else {
        dcem_api_repoint(c->api, view);
        if (relimit && dcem_api_restart(c->api, err, sizeof err))
            DCEM_LOGE("collector", "reload: the API is down until the next reload: %s", err);
    }
    /* the old figures thread: a last pass over what the old engine marked
     * (it reads the old config, the old store); what it had not taken yet
     * moves to the new marks, site by site */
    dcem_recompute_stop(c->figures);
    dcem_recompute_alerts(c->figures, on_alert, c);
    dcem_recompute_free(c->figures);
    c->figures = figures;
    for (size_t i = 0; i < c->cfg->n_sites; i++) {
        const dcem_collector_site *ns = dcem_collector_site_find(n, c->cfg->sites[i].ledger->site);
        if (ns) dcem_marks_move(c->marks, i, marks, (size_t)(ns - n->sites));
    }
    dcem_marks_free(c->marks);
    c->marks = marks;
    dcem_engine_set_marks(e, marks);
    dcem_engine_free(c->engine);
    c->engine = e;
    if (new_store) {
        dcem_store_close(c->store);
        c->store = st;
    }
    if (new_influx) {
        dcem_influx_thread_stop(c->influx); /* its lines sent, or in its backlog */
        c->influx = ix;
    }
    if (new_mqtt) {
        dcem_mqtt_free(c->mqtt);
        c->mqtt = link;
        c->reconnect_at = 0;
        c->backoff = 0;
    }
    if (c->influx) dcem_engine_set_sink(e, to_influx, c->influx);
    dcem_engine_set_alerts(e, on_alert, c);
    dcem_inbox_set_config(c->in.q, n);
    dcem_collector_config_free(c->cfg);
    c->cfg = n;
    dcem_log_set_level(n->log_level);
    DCEM_LOGI("collector", "reloaded %s: %zu sites%s%s%s%s", file, n->n_sites,
              new_store ? "; store reopened" : "", new_influx ? "; InfluxDB writer anew" : "",
              new_mqtt ? "; MQTT anew" : "", api ? "; API listener anew" : "");
    return;
refused:
    dcem_recompute_free(figures);
    dcem_marks_free(marks);
    dcem_engine_free(e);
    dcem_api_stop(api);
    dcem_api_view_free(view);
    dcem_mqtt_free(link);
    dcem_influx_thread_stop(ix);
    dcem_store_close(st);
    dcem_collector_config_free(n);
    DCEM_LOGE("collector", "reload refused, keeping the running config: %s", err);
}

/* ---- commands ---- */

static dcem_store *open_store(const dcem_collector_config *cfg, char *err, size_t errlen)
{
    dcem_store_opts so = {.synchronous = cfg->store.synchronous,
                          .retention_days = (int)cfg->store.retention_days};
    dcem_store *st = NULL;
    if (dcem_store_open(cfg->store.backend, dcem_collector_store_target(&cfg->store), &so, &st,
                        err, errlen))
        return NULL;
    return st;
}

static int print_row(void *ctx, const dcem_store_reading *r)
{
    char row[DCEM_STORE_CSV_ROW_MAX];
    int n = dcem_store_reading_csv(r, row, sizeof row);
    if (n > 0) fwrite(row, 1, (size_t)n, ctx);
    return 0;
}

static int parse_when(const char *s, int64_t *t)
{
    int64_t day;
    if (!dcem_parse_date(s, strlen(s), &day)) return *t = day * DCEM_MS_PER_DAY, 0;
    return dcem_parse_time(s, strlen(s), t);
}

static int cmd_export(dcem_collector_config *cfg, const char *site, const char *from,
                      const char *to)
{
    int64_t t0, t1;
    char err[1024];
    if (!site || !from || !to || parse_when(from, &t0) || parse_when(to, &t1)) {
        fputs("dcem-collector export: --site S --from TIME --to TIME (RFC 3339 or YYYY-MM-DD, UTC)\n",
              stderr);
        return 2;
    }
    dcem_store *st = open_store(cfg, err, sizeof err);
    if (!st) return fprintf(stderr, "dcem-collector: %s\n", err), 1;
    fputs(DCEM_STORE_CSV_HEADER, stdout);
    int rc = dcem_store_export(st, site, NULL, t0, t1, print_row, stdout);
    if (rc) fprintf(stderr, "dcem-collector: export: %s\n", dcem_store_error(st));
    dcem_store_close(st);
    return rc ? 1 : 0;
}

static int cmd_verify(dcem_collector_config *cfg, const char *site, const char *from,
                      const char *to)
{
    int64_t t0, t1;
    char err[1024];
    if (!site || !from || !to || parse_when(from, &t0) || parse_when(to, &t1)) {
        fputs("dcem-collector verify: --site S --from TIME --to TIME (RFC 3339 or YYYY-MM-DD, UTC)\n",
              stderr);
        return 2;
    }
    dcem_store *st = open_store(cfg, err, sizeof err);
    if (!st) return fprintf(stderr, "dcem-collector: %s\n", err), 1;
    dcem_verify_result res;
    int rc = dcem_verify_site(cfg, st, site, t0, t1, stdout, &res);
    dcem_store_close(st);
    return rc ? 1 : 0;
}

static int cmd_figures(dcem_collector_config *cfg, const char *site, long long year,
                       long long month)
{
    char err[1024];
    if (!site || (year < 0 && month < 0)) {
        fputs("dcem-collector figures: --site S (--year YYYY | --month YYYY-MM)\n", stderr);
        return 2;
    }
    dcem_store *st = open_store(cfg, err, sizeof err);
    if (!st) return fprintf(stderr, "dcem-collector: %s\n", err), 1;
    dcem_engine *e = dcem_engine_new(cfg, st);
    int rc = 0;
    long long m0 = month >= 0 ? month : year * 12, m1 = month >= 0 ? month + 1 : year * 12 + 12;
    fputs("[", stdout);
    for (long long m = m0; e && m <= m1 && !rc; m++) {
        int is_year = m == m1;
        if (is_year && month >= 0) break;
        char *json = dcem_engine_period_json(e, site, is_year ? DCEM_PERIOD_YEAR : DCEM_PERIOD_MONTH,
                                             is_year ? year * 12 : m, INT64_MAX);
        if (!json) rc = 1;
        else printf("%s%s\n", m == m0 ? "" : ",", json);
        free(json);
    }
    puts("]");
    if (rc || !e) fprintf(stderr, "dcem-collector: no such site, or the store failed\n");
    dcem_engine_free(e);
    dcem_store_close(st);
    return rc || !e ? 1 : 0;
}

static void usage(FILE *f)
{
    fputs("usage: dcem-collector -c FILE [--check-config]\n"
          "       dcem-collector export -c FILE --site S --from TIME --to TIME\n"
          "       dcem-collector figures -c FILE --site S (--year YYYY | --month YYYY-MM)\n"
          "       dcem-collector verify -c FILE --site S --from TIME --to TIME\n"
          "       dcem-collector --keygen FILE | --pubkey FILE\n"
          "       dcem-collector --version\n",
          f);
}

int main(int argc, char **argv)
{
    const char *command = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    if (command) argc--, argv++;
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"check-config", no_argument, 0, 'k'},
        {"site", required_argument, 0, 's'},   {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},     {"year", required_argument, 0, 'y'},
        {"month", required_argument, 0, 'm'},  {"version", no_argument, 0, 'V'},
        {"help", no_argument, 0, 'h'},         {"keygen", required_argument, 0, 'g'},
        {"pubkey", required_argument, 0, 'p'}, {0, 0, 0, 0}};
    const char *file = NULL, *site = NULL, *from = NULL, *to = NULL;
    long long year = -1, month = -1;
    int check = 0, o;
    while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (o) {
        case 'c': file = optarg; break;
        case 'k': check = 1; break;
        case 's': site = optarg; break;
        case 'f': from = optarg; break;
        case 't': to = optarg; break;
        case 'y': {
            int y;
            if (strlen(optarg) != 4 || dcem_parse_digits(optarg, 4, &y)) return usage(stderr), 2;
            year = y;
            break;
        }
        case 'm':
            if (dcem_parse_month(optarg, strlen(optarg), &month)) return usage(stderr), 2;
            break;
        case 'V': puts("dcem-collector " DCEM_VERSION); return 0;
        case 'g': return dcem_io_key_command(optarg, 1, "dcem-collector");
        case 'p': return dcem_io_key_command(optarg, 0, "dcem-collector");
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!file || optind != argc) return usage(stderr), 2;
    char err[1024];
    dcem_collector_config *cfg = dcem_collector_config_load(file, err, sizeof err);
    if (!cfg) return fprintf(stderr, "dcem-collector: %s\n", err), 1;
    dcem_log_set_level(cfg->log_level);
    if (command && !strcmp(command, "export")) {
        int rc = cmd_export(cfg, site, from, to);
        dcem_collector_config_free(cfg);
        return rc;
    }
    if (command && !strcmp(command, "verify")) {
        int rc = cmd_verify(cfg, site, from, to);
        dcem_collector_config_free(cfg);
        return rc;
    }
    if (command && !strcmp(command, "figures")) {
        int rc = cmd_figures(cfg, site, year, month);
        dcem_collector_config_free(cfg);
        return rc;
    }
    if (command) return usage(stderr), dcem_collector_config_free(cfg), 2;
    if (check) {
        /* a server store is reached (and its schema checked) now, not at the
         * first batch; a SQLite file is left alone (opening creates it) */
        if (!strcmp(cfg->store.backend, "postgresql")) {
            dcem_store *st = open_store(cfg, err, sizeof err);
            if (!st) {
                fprintf(stderr, "dcem-collector: %s: store (%s): %s\n", file, cfg->store.label,
                        err);
                dcem_collector_config_free(cfg);
                return 1;
            }
            dcem_store_close(st);
        }
        printf("%s: ok (%zu sites, policy %s from %s, store %s%s%s)\n", file, cfg->n_sites,
               cfg->policy->policy, cfg->policy_file, cfg->store.label,
               cfg->api.line ? ", dashboard " : "", cfg->api.line ? cfg->api.dashboard_dir : "");
        dcem_collector_config_free(cfg);
        return 0;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    dcem_mqtt_global_init(0); /* curl initialises OpenSSL */
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread */

    collector c = {.cfg = cfg};
    int rc = 1;
    c.in.q = dcem_inbox_new(cfg);
    c.refusals = calloc(DCEM_INBOX_MAX_SOURCES, sizeof *c.refusals);
    c.sources = calloc(DCEM_INBOX_MAX_SOURCES, sizeof *c.sources);
    c.set_aside = calloc(DCEM_INBOX_MAX_SOURCES, sizeof *c.set_aside);
    if (!c.in.q || !c.refusals || !c.sources || !c.set_aside) {
        fprintf(stderr, "dcem-collector: out of memory\n");
        goto out;
    }
    c.store = open_store(cfg, err, sizeof err);
    if (!c.store) {
        fprintf(stderr, "dcem-collector: %s\n", err);
        goto out;
    }
    c.engine = dcem_engine_new(cfg, c.store);
    if (c.engine && cfg->influx.line) {
        if (dcem_influx_thread_start(&cfg->influx, &c.influx, err, sizeof err)) {
            fprintf(stderr, "dcem-collector: %s\n", err);
            goto out;
        }
        dcem_engine_set_sink(c.engine, to_influx, c.influx);
    }
    if (c.engine) dcem_engine_set_alerts(c.engine, on_alert, &c);
    if (!c.engine) {
        fprintf(stderr, "dcem-collector: out of memory\n");
        goto out;
    }
    if (!(c.marks = dcem_marks_new(cfg->n_sites))) {
        fprintf(stderr, "dcem-collector: out of memory\n");
        goto out;
    }
    dcem_engine_set_marks(c.engine, c.marks);
    if (dcem_recompute_start(cfg, c.marks, c.influx ? to_influx : NULL, c.influx, &c.figures, err,
                             sizeof err)) {
        fprintf(stderr, "dcem-collector: %s\n", err);
        goto out;
    }
    if (!(c.mqtt = new_link(&c.in, &cfg->mqtt, err, sizeof err))) {
        fprintf(stderr, "dcem-collector: %s\n", err);
        goto out;
    }
    c.started_ms = mono_ms();
    if (cfg->api.line && start_api(cfg, &c.api, err, sizeof err)) {
        fprintf(stderr, "dcem-collector: %s\n", err);
        goto out;
    }
    DCEM_LOGI("collector", "%s: %zu sites, policy %s, store %s", cfg->collector, cfg->n_sites,
              cfg->policy->policy, cfg->store.label);
    int64_t next_health = mono_ms() + cfg->health_log_s * 1000,
            next_prune = mono_ms() + PRUNE_EVERY_MS, next_api = 0;
    while (!got_term) {
        int64_t now = mono_ms();
        if (got_hup) {
            got_hup = 0;
            reload(&c, file);
            cfg = c.cfg;
        }
        try_connect(&c, now);
        share_poll(&c, now);
        size_t busy = drain(&c);
        holes_tick(&c, now);
        /* the figures thread's verdict alerts, published from here (the
         * MQTT link is this thread's) */
        dcem_recompute_alerts(c.figures, on_alert, &c);
        if (now >= next_health) {
            log_health(&c);
            next_health = now + cfg->health_log_s * 1000;
        }
        if (now >= next_api) {
            share_health(&c, now);
            next_api = now + API_HEALTH_EVERY_MS;
        }
        if (now >= next_prune) {
            size_t deleted = 0;
            dcem_store_prune(c.store, wall_ms(), &deleted);
            next_prune = now + (deleted ? 1000 : PRUNE_EVERY_MS);
        }
        if (!busy) {
            struct timespec ts = {0, 10 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    DCEM_LOGI("collector", "stopping");
    /* the figures thread's last pass (its transaction finishes), its
     * alerts published while the link is up */
    dcem_recompute_stop(c.figures);
    dcem_recompute_alerts(c.figures, on_alert, &c);
    log_health(&c);
    rc = 0;
out:
    dcem_api_stop(c.api); /* first: it reads the config and the store file */
    dcem_recompute_free(c.figures); /* before the writer its lines go to */
    dcem_mqtt_free(c.mqtt);
    while (c.waiting) msg_free(unhold(&c));
    dcem_inbox_free(c.in.q);
    free(c.refusals);
    free(c.sources);
    free(c.set_aside);
    dcem_influx_thread_stop(c.influx);
    dcem_engine_free(c.engine);
    dcem_marks_free(c.marks);
    dcem_store_close(c.store);
    dcem_collector_config_free(c.cfg);
    curl_global_cleanup();
    return rc;
}
