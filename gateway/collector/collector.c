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
#include "influx.h"
#include "mqtt_link.h"
#include "parse.h"
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

#define QUEUE_MAX_BYTES (64u << 20) /* received, not yet stored: beyond it paho redelivers later */
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

typedef struct msg {
    struct msg *next;
    char *topic;
    void *payload;
    size_t len;
    int64_t wait_until; /* a batch ahead of its predecessor: retried until then (0: not yet) */
} msg;

typedef struct inbox {
    pthread_mutex_t lock;
    msg *head, *tail;
    size_t bytes;
} inbox;

static int on_message(void *ctx, const char *topic, const void *payload, size_t len)
{
    inbox *in = ctx;
    size_t tl = strlen(topic);
    pthread_mutex_lock(&in->lock);
    size_t queued = in->bytes;
    pthread_mutex_unlock(&in->lock);
    if (queued > QUEUE_MAX_BYTES) {
        /* bounded: not taken now, paho delivers it again (and the broker
         * holds the rest). Never wait here: the main thread may itself be
         * waiting on this thread to read a PUBACK. */
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
        return 0;
    }
    msg *x = malloc(sizeof *x);
    char *t = malloc(tl + 1);
    void *p = malloc(len ? len : 1);
    if (!x || !t || !p) { /* not taken: paho delivers it again */
        free(x), free(t), free(p);
        return 0;
    }
    memcpy(t, topic, tl);
    t[tl] = '\0';
    memcpy(p, payload, len);
    *x = (msg){NULL, t, p, len, 0};
    pthread_mutex_lock(&in->lock);
    if (in->tail) in->tail->next = x;
    else in->head = x;
    in->tail = x;
    in->bytes += len;
    pthread_mutex_unlock(&in->lock);
    return 1;
}

static msg *inbox_pop(inbox *in)
{
    pthread_mutex_lock(&in->lock);
    msg *x = in->head;
    if (x) {
        in->head = x->next;
        if (!in->head) in->tail = NULL;
        in->bytes -= x->len;
    }
    pthread_mutex_unlock(&in->lock);
    return x;
}

static void msg_free(msg *x)
{
    if (!x) return;
    free(x->topic);
    free(x->payload);
    free(x);
}

/* ---- MQTT ---- */

/* Refused payloads by gateway and reason (docs/wire-format.md, "Malformed
 * payloads"): counted, logged once until that gateway sends a good one. */
typedef struct refusal {
    char gateway[2 * DCEM_ID_MAX]; /* "site/gateway", or "?" when the topic names none */
    int reason;                    /* a dcem_wire_reason, or REASON_UNKNOWN_SITE */
    uint64_t count;
    dcem_complaint complaint;
} refusal;

#define MAX_REFUSALS 256 /* (gateway, reason) pairs tracked; the rest share the last one */
#define REASON_UNKNOWN_SITE (-1)

typedef struct collector {
    dcem_collector_config *cfg;
    dcem_store *store;
    dcem_engine *engine;
    dcem_influx *influx; /* NULL without an influx section */
    dcem_mqtt *mqtt;
    inbox in;
    int64_t reconnect_at, backoff;
    dcem_complaint connect_complaint, store_complaint;
    refusal refusals[MAX_REFUSALS];
    size_t n_refusals, complaining; /* pairs in use; of those, with a complaint open */
    msg *waiting;                   /* batches waiting for their predecessor (shared group) */
    size_t n_waiting;
    dcem_api *api;                  /* NULL without an api section */
    dcem_api_health health;         /* what the API is handed (big: kept here, not on the stack) */
    int64_t started_ms;             /* monotonic */
} collector;

static const char *reason_name(int reason)
{
    return reason == REASON_UNKNOWN_SITE ? "unknown_site" : dcem_wire_reason_name(reason);
}

static refusal *refusal_of(collector *c, const char *gateway, int reason)
{
    for (size_t i = 0; i < c->n_refusals; i++)
        if (c->refusals[i].reason == reason && !strcmp(c->refusals[i].gateway, gateway))
            return &c->refusals[i];
    if (c->n_refusals == MAX_REFUSALS) return &c->refusals[MAX_REFUSALS - 1];
    refusal *r = &c->refusals[c->n_refusals++];
    snprintf(r->gateway, sizeof r->gateway, "%s", gateway);
    r->reason = reason;
    return r;
}

/* A refused payload: counted, and logged if it is the first of its
 * gateway and reason since that gateway's last good payload. */
static void refuse(collector *c, const dcem_engine_reply *r, int reason, const char *topic)
{
    char gw[2 * DCEM_ID_MAX];
    if (*r->gateway) snprintf(gw, sizeof gw, "%.63s/%.63s", r->site, r->gateway);
    else snprintf(gw, sizeof gw, "?");
    refusal *f = refusal_of(c, gw, reason);
    f->count++;
    if (!f->complaint.count) c->complaining++;
    if (reason == REASON_UNKNOWN_SITE)
        dcem_complain(&f->complaint, DCEM_LOG_WARN, "ingest",
                      "%s: batch for site %s, which has no ledger, not acked (repeats counted)",
                      gw, r->site);
    else
        dcem_complain(&f->complaint, DCEM_LOG_WARN, "ingest",
                      "%s: malformed payload on %s dropped: %s: %s (repeats counted)", gw, topic,
                      reason_name(reason), r->why);
}

/* A good payload from site/gateway ends its complaints. */
static void accept_from(collector *c, const char *site, const char *gateway)
{
    if (!c->complaining) return;
    char gw[2 * DCEM_ID_MAX];
    snprintf(gw, sizeof gw, "%.63s/%.63s", site, gateway);
    for (size_t i = 0; i < c->n_refusals; i++) {
        refusal *f = &c->refusals[i];
        if (!f->complaint.count || strcmp(f->gateway, gw)) continue;
        dcem_release(&f->complaint, "ingest", "%s: good payloads again after %s", gw,
                     reason_name(f->reason));
        c->complaining--;
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

static void send_ack(collector *c, const char *site, const char *gw, uint64_t epoch, uint64_t seq)
{
    char topic[DCEM_WIRE_TOPIC_MAX], *json;
    size_t len;
    dcem_wire_ack a = {.epoch = epoch, .seq = seq};
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
    send_ack(c, e->site, e->gateway, e->epoch, e->contiguous_seq);
    return 0;
}

static void try_connect(collector *c, int64_t now)
{
    if (dcem_mqtt_is_connected(c->mqtt) || now < c->reconnect_at) return;
    const dcem_mqtt_cfg *m = &c->cfg->mqtt;
    char data[160], err[1024];
    if (*m->share_group) snprintf(data, sizeof data, "$share/%s/%s", m->share_group, DCEM_WIRE_FILTER_DATA);
    else snprintf(data, sizeof data, "%s", DCEM_WIRE_FILTER_DATA);
    const char *topics[] = {data, DCEM_WIRE_FILTER_STATE};
    if (dcem_mqtt_connect(c->mqtt, topics, 2, err, sizeof err)) {
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
                     "{\"v\":1,\"site\":\"%s\",\"kind\":\"%s\",\"state\":\"%s\",\"t\":%lld,"
                     "\"message\":\"%s\"}",
                     a->site, a->kind, a->raised ? "raised" : "cleared", (long long)a->t_ms,
                     a->message);
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
        refuse(c, &r, reason, x->topic);
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
 * cumulative ack, the lowest resend. */
typedef struct answer {
    const dcem_engine_reply *r;
    uint64_t ack_seq, resend_from;
    int ack, resend;
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
}

#define GAP_WAIT_MS 2000 /* shared group: how long a batch waits for another collector to store
                            its predecessor before a resend is asked for */
#define MAX_WAITING 1024

/* In a shared subscription, batch n + 1 of a gateway often reaches this
 * collector while another member is still storing batch n: it waits here
 * (unacked) and is tried again, and only a predecessor still missing after
 * GAP_WAIT_MS is asked for again. Returns 1 when x was kept. */
static int wait_for_predecessor(collector *c, msg *x, int64_t now)
{
    if (!c->cfg->mqtt.share_group[0] || c->n_waiting == MAX_WAITING) return 0;
    if (!x->wait_until) x->wait_until = now + GAP_WAIT_MS;
    if (now >= x->wait_until) return 0;
    x->next = c->waiting;
    c->waiting = x;
    c->n_waiting++;
    return 1;
}

/* Stores a group of data messages in one transaction, then answers: acks
 * only after the commit. Frees the messages, except those kept waiting. */
static void store_group(collector *c, msg **xs, size_t n, int64_t now)
{
    dcem_engine_msg ms[GROUP_MAX];
    static dcem_engine_reply rs[GROUP_MAX];
    int out[GROUP_MAX];
    answer as[GROUP_MAX];
    size_t na = 0;
    for (size_t i = 0; i < n; i++)
        ms[i] = (dcem_engine_msg){xs[i]->topic, strlen(xs[i]->topic), xs[i]->payload, xs[i]->len,
                                  xs[i]->wait_until != 0};
    dcem_engine_batches(c->engine, ms, n, now, rs, out);
    for (size_t i = 0; i < n; i++) {
        const dcem_engine_reply *r = &rs[i];
        switch (out[i]) {
        case DCEM_ENGINE_QUARANTINED:
            DCEM_LOGW("ingest", "%s/%s batch %llu set aside: %s", r->site, r->gateway,
                      (unsigned long long)r->ack_seq, r->why);
            /* fall through */
        case DCEM_ENGINE_STORED:
        case DCEM_ENGINE_DUPLICATE:
            dcem_release(&c->store_complaint, "store", "storing again");
            if (out[i] != DCEM_ENGINE_QUARANTINED) accept_from(c, r->site, r->gateway);
            answer_add(as, &na, r);
            break;
        case DCEM_ENGINE_GAP:
            if (wait_for_predecessor(c, xs[i], mono_ms())) {
                xs[i] = NULL;
                break;
            }
            answer_add(as, &na, r);
            break;
        case DCEM_ENGINE_MALFORMED: refuse(c, r, r->reason, xs[i]->topic); break;
        case DCEM_ENGINE_UNKNOWN_SITE: refuse(c, r, REASON_UNKNOWN_SITE, xs[i]->topic); break;
        default:
            dcem_complain(&c->store_complaint, DCEM_LOG_ERROR, "store",
                          "cannot store a batch: %s", r->why);
            break;
        }
    }
    for (size_t i = 0; i < na; i++) {
        if (as[i].ack) send_ack(c, as[i].r->site, as[i].r->gateway, as[i].r->epoch, as[i].ack_seq);
        if (as[i].resend)
            send_resend(c, as[i].r->site, as[i].r->gateway, as[i].r->epoch, as[i].resend_from);
    }
    for (size_t i = 0; i < n; i++) msg_free(xs[i]);
}

/* The next message: a waiting batch (oldest first), else the inbox's. */
static msg *next_msg(collector *c, int take_waiting)
{
    if (take_waiting && c->waiting) {
        msg **p = &c->waiting; /* the list is newest first: take its tail */
        while ((*p)->next) p = &(*p)->next;
        msg *x = *p;
        *p = NULL;
        c->n_waiting--;
        return x;
    }
    return inbox_pop(&c->in);
}

/* Takes what the inbox holds, in order: data messages in groups, a state
 * message between them on its own; first, with retry_waiting, the batches
 * that wait for their predecessor. Returns the number taken from the inbox. */
static size_t drain(collector *c, int retry_waiting)
{
    msg *xs[GROUP_MAX];
    size_t n = 0, bytes = 0, taken = 0, waiting = retry_waiting ? c->n_waiting : 0;
    for (;;) {
        msg *x = taken < 4 * GROUP_MAX + waiting ? next_msg(c, taken < waiting) : NULL;
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
            msg_free(x);
            continue;
        }
        xs[n++] = x;
        bytes += x->len;
    }
    return taken - waiting;
}

/* The engine's lines, one by one, to the InfluxDB writer. */
static void to_influx(void *ctx, const char *lines, size_t len)
{
    collector *c = ctx;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(lines + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (lines + at)) : len - at;
        if (n) dcem_influx_add(c->influx, lines + at, n);
        at += n + 1;
    }
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
    for (size_t i = 0; i < c->n_refusals; i++)
        DCEM_LOGI("health", "refused from %s: %s %llu", c->refusals[i].gateway,
                  reason_name(c->refusals[i].reason), (unsigned long long)c->refusals[i].count);
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
        dcem_influx_stats_get(c->influx, &is);
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
    h->have_influx = c->influx != NULL;
    if (c->influx) dcem_influx_stats_get(c->influx, &h->influx);
    h->mqtt_connected = dcem_mqtt_is_connected(c->mqtt);
    h->store_ok = c->store_complaint.count == 0;
    h->uptime_s = (now - c->started_ms) / 1000;
    h->n_refusals = 0;
    for (size_t i = 0; i < c->n_refusals && i < DCEM_API_MAX_REFUSALS; i++) {
        dcem_api_refusal *r = &h->refusals[h->n_refusals++];
        snprintf(r->gateway, sizeof r->gateway, "%s", c->refusals[i].gateway);
        snprintf(r->reason, sizeof r->reason, "%s", reason_name(c->refusals[i].reason));
        r->count = c->refusals[i].count;
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
 * 100 acks in flight (paho's synchronous client otherwise sleeps 100 ms at
 * a time waiting for each PUBACK: acks would queue). */
static dcem_mqtt *new_link(inbox *in, const dcem_mqtt_cfg *m, char *err, size_t errlen)
{
    dcem_mqtt_opts o = {.persistent = 1, .inflight = 100, .fn = on_message, .ctx = in};
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
    dcem_influx *ix = NULL;
    dcem_mqtt *link = NULL;
    dcem_engine *e = NULL;
    dcem_api *api = NULL;     /* a new listener (first one, or moved) */
    dcem_api_view *view = NULL; /* the running listener's new view */
    int new_store = 0, new_influx = 0, new_mqtt = 0, relimit = 0;
    if (!n) goto refused;
    new_store = memcmp(&n->store, &c->cfg->store, sizeof n->store) != 0;
    new_influx = !influx_same(&n->influx, &c->cfg->influx);
    new_mqtt = !mqtt_same(&n->mqtt, &c->cfg->mqtt);
    if (new_store && !(st = open_store(n, err, sizeof err))) goto refused;
    if (new_influx && n->influx.line && dcem_influx_new(&n->influx, &ix, err, sizeof err))
        goto refused;
    if (new_mqtt && !(link = new_link(&c->in, &n->mqtt, err, sizeof err))) goto refused;
    if (!(e = dcem_engine_new(n, st ? st : c->store))) {
        snprintf(err, sizeof err, "out of memory");
        goto refused;
    }
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
    dcem_engine_free(c->engine);
    c->engine = e;
    if (new_store) {
        dcem_store_close(c->store);
        c->store = st;
    }
    if (new_influx) {
        if (c->influx) dcem_influx_flush(c->influx);
        dcem_influx_free(c->influx);
        c->influx = ix;
    }
    if (new_mqtt) {
        dcem_mqtt_free(c->mqtt);
        c->mqtt = link;
        c->reconnect_at = 0;
        c->backoff = 0;
    }
    if (c->influx) dcem_engine_set_sink(e, to_influx, c);
    dcem_engine_set_alerts(e, on_alert, c);
    dcem_collector_config_free(c->cfg);
    c->cfg = n;
    dcem_log_set_level(n->log_level);
    DCEM_LOGI("collector", "reloaded %s: %zu sites%s%s%s%s", file, n->n_sites,
              new_store ? "; store reopened" : "", new_influx ? "; InfluxDB writer anew" : "",
              new_mqtt ? "; MQTT anew" : "", api ? "; API listener anew" : "");
    return;
refused:
    dcem_engine_free(e);
    dcem_api_stop(api);
    dcem_api_view_free(view);
    dcem_mqtt_free(link);
    dcem_influx_free(ix);
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
    if (dcem_store_open(cfg->store.backend, cfg->store.path, &so, &st, err, errlen)) return NULL;
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
        printf("%s: ok (%zu sites, policy %s)\n", file, cfg->n_sites, cfg->policy->policy);
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
    pthread_mutex_init(&c.in.lock, NULL);
    int rc = 1;
    c.store = open_store(cfg, err, sizeof err);
    if (!c.store) {
        fprintf(stderr, "dcem-collector: %s\n", err);
        goto out;
    }
    c.engine = dcem_engine_new(cfg, c.store);
    if (c.engine && cfg->influx.line) {
        if (dcem_influx_new(&cfg->influx, &c.influx, err, sizeof err)) {
            fprintf(stderr, "dcem-collector: %s\n", err);
            goto out;
        }
        dcem_engine_set_sink(c.engine, to_influx, &c);
    }
    if (c.engine) dcem_engine_set_alerts(c.engine, on_alert, &c);
    if (!c.engine) {
        fprintf(stderr, "dcem-collector: out of memory\n");
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
              cfg->policy->policy, cfg->store.path);
    int64_t next_recompute = 0, next_retry = 0, next_health = mono_ms() + cfg->health_log_s * 1000,
            next_prune = mono_ms() + PRUNE_EVERY_MS, next_api = 0;
    while (!got_term) {
        int64_t now = mono_ms();
        if (got_hup) {
            got_hup = 0;
            reload(&c, file);
            cfg = c.cfg;
        }
        try_connect(&c, now);
        /* batches waiting for their predecessor are tried again every 20 ms */
        int retry = now >= next_retry;
        if (retry) next_retry = now + 20;
        size_t busy = drain(&c, retry);
        if (now >= next_recompute) {
            dcem_engine_recompute(c.engine, wall_ms());
            next_recompute = now + cfg->recompute_ms;
        }
        if (c.influx) dcem_influx_tick(c.influx, now);
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
    log_health(&c);
    rc = 0;
out:
    dcem_api_stop(c.api); /* first: it reads the config and the store file */
    dcem_mqtt_free(c.mqtt);
    for (msg *x; (x = inbox_pop(&c.in));) msg_free(x);
    while (c.waiting) msg_free(next_msg(&c, 1));
    if (c.influx) dcem_influx_flush(c.influx);
    dcem_influx_free(c.influx);
    dcem_engine_free(c.engine);
    dcem_store_close(c.store);
    dcem_collector_config_free(c.cfg);
    curl_global_cleanup();
    return rc;
}
