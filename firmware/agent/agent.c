/* dcem-agent — polls the meters of one gateway over Modbus and delivers
 * every reading to the collector over MQTT, losing nothing: readings are
 * batched, each batch goes to the on-disk spool first, is published QoS 1,
 * and leaves the spool only when the collector acknowledges it. */
#include "agent_config.h"
#include "commission.h"
#include "dcem_io.h"
#include "dcem_log.h"
#include "delivery.h"
#include "local_figures.h"
#include "errors.h"
#include "mqtt_link.h"
#include "parse.h"
#include "poll.h"
#include "spool.h"
#include "wire.h"

#include <MQTTClient.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef DCEM_VERSION
#define DCEM_VERSION "0"
#endif

#define QUEUE_CAP 4096          /* readings between the pollers and the batcher */
#define RESEND_AFTER_MS 10000   /* no collector ack for this long: publish again */
#define BIRTH_EVERY_MS 2000     /* births that answer resend requests: at most one this often */
#define INBOX_CAP 16            /* acks and ctl between paho's thread and the main loop */
#define INBOX_MSG_MAX 1024      /* a longer ack or ctl is refused (they are < 200 bytes) */
#define STATS_EVERY_MS 300000   /* the agent's counters in the log */
#define DROP_QUIET_MS 10000     /* a spell of drops is over after this long without one */

static volatile sig_atomic_t got_term, got_hup;

static void on_signal(int sig)
{
    if (sig == SIGHUP) got_hup = 1;
    else got_term = 1;
}

typedef struct bus_thread {
    struct agent *agent;
    dcem_bus *bus;
    pthread_t thread;
    int started;
} bus_thread;

/* An ack or ctl payload as received, for the main loop to check and apply. */
typedef struct inbound {
    int leaf; /* DCEM_WIRE_ACK or DCEM_WIRE_CTL */
    size_t len;
    char payload[INBOX_MSG_MAX];
} inbound;

typedef struct agent {
    dcem_agent_config *cfg;
    dcem_spool *spool;
    dcem_mqtt *mqtt;
    dcem_delivery *delivery;       /* the ack protocol over the spool */
    char topic_data[DCEM_WIRE_TOPIC_MAX], topic_ack[DCEM_WIRE_TOPIC_MAX],
        topic_ctl[DCEM_WIRE_TOPIC_MAX], topic_state[DCEM_WIRE_TOPIC_MAX],
        topic_metrics[DCEM_WIRE_TOPIC_MAX];
    dcem_local *local;             /* local figures; NULL without a ledger */

    /* pollers -> batcher: bounded queue, drop-oldest when full (counted) */
    pthread_mutex_t lock;
    dcem_wire_reading *queue;
    size_t q_head, q_len;
    uint64_t q_dropped;            /* under lock; the main loop copies it into dropped[] */
    /* paho's thread -> main loop: acks and ctl as received, drop-oldest when full */
    inbound *inbox;
    size_t in_head, in_len;
    unsigned long in_dropped, in_too_large;

    /* the batch being filled */
    dcem_wire_reading *batch;
    size_t n_batch;
    int64_t batch_started_ms;

    /* publishing */
    int64_t reconnect_at_ms, reconnect_backoff_ms;
    int64_t next_sync_ms;
    unsigned long malformed_in, bad_command;
    unsigned long unauthentic_in;  /* acks and ctl no collector key verifies: ignored */
    dcem_complaint unauthentic;
    char *buf;                     /* spool read buffer (room for a signature) */
    char *small;                   /* births, wills and metrics, signed (SMALL_PAYLOAD bytes) */
    dcem_delivery_pos buf_pos;     /* the batch in buf (buf_len bytes), if buf_full */
    size_t buf_len;
    int buf_full;

    /* what was dropped before the spool since start, by dcem_wire_drop;
     * a spell of drops is logged when it starts and once it is over */
    uint64_t dropped[DCEM_WIRE_DROP_COUNT];
    uint64_t spool_dropped_before; /* spool_full_batches of spools closed by reloads */
    uint64_t drop_seen[DCEM_WIRE_DROP_COUNT], drop_spell[DCEM_WIRE_DROP_COUNT];
    int64_t drop_last_ms[DCEM_WIRE_DROP_COUNT];
    int dropping[DCEM_WIRE_DROP_COUNT];

    /* readings the collector refused to count since start, by DCEM_REFUSE_*:
     * added up from the acks that delete (acks repeat; refusals come once) */
    uint64_t refused[DCEM_REFUSE_COUNT];

    dcem_complaint ack_ahead, ack_epoch, resend_gone;
    dcem_delivery_stats delivery_before; /* of state machines ended by reloads */
    unsigned long spooled;
    int64_t stats_at_ms;

    int importing;                 /* --import: not a live gateway: no goodbye, its state cleared */
    atomic_int stop_buses;
    bus_thread *buses;
    size_t n_buses;
} agent;

/* ---- pollers ---- */

static void to_wire(const dcem_agent_config *c, const dcem_poll_result *r, dcem_wire_reading *w)
{
    memset(w, 0, sizeof *w);
    snprintf(w->meter, sizeof w->meter, "%s", r->meter);
    w->t_ms = r->t_ms;
    w->quality = r->quality;
    (void)c;
    if (r->quality == DCEM_WIRE_Q_COMM_ERROR) return;
    w->ct = r->ct;
    w->pt = r->pt;
    w->ratio_note = r->ratio_held ? DCEM_WIRE_RATIO_HELD
                    : r->ct_source == DCEM_RATIO_UNKNOWN || r->pt_source == DCEM_RATIO_UNKNOWN
                        ? DCEM_WIRE_RATIO_UNKNOWN
                    : r->ratio_mismatch ? DCEM_WIRE_RATIO_MISMATCH
                                        : DCEM_WIRE_RATIO_FINE;
    for (size_t i = 0; i < r->n_values; i++) {
        const dcem_poll_value *v = &r->values[i];
        if (!v->valid) {
            /* flagged, never published as a number; a value the device does
             * not implement is simply not there */
            if (w->quality == DCEM_WIRE_Q_OK && !v->absent) w->quality = DCEM_WIRE_Q_OUT_OF_RANGE;
            continue;
        }
        if (v->quantity == DCEM_Q_ENERGY_IMPORT_KWH && v->phase == 0) {
            w->has_kwh = 1;
            w->kwh = v->value;
        } else if (v->quantity == DCEM_Q_POWER_KW && v->phase == 0) {
            w->has_kw = 1;
            w->kw = v->value;
        } else if (w->n_values < DCEM_WIRE_MAX_VALUES) {
            w->values[w->n_values++] = (dcem_wire_value){v->quantity, v->phase, v->value};
        }
    }
}

static void on_reading(void *ctx, const dcem_poll_result *r)
{
    agent *a = ctx;
    pthread_mutex_lock(&a->lock);
    if (a->q_len == QUEUE_CAP) { /* the batcher is stuck: drop the oldest, count it */
        a->q_head = (a->q_head + 1) % QUEUE_CAP;
        a->q_len--;
        a->q_dropped++;
    }
    to_wire(a->cfg, r, &a->queue[(a->q_head + a->q_len) % QUEUE_CAP]);
    a->q_len++;
    pthread_mutex_unlock(&a->lock);
}

static void *bus_main(void *arg)
{
    bus_thread *t = arg;
    dcem_bus_run(t->bus, &t->agent->stop_buses, on_reading, t->agent);
    return NULL;
}

static int start_buses(agent *a)
{
    a->n_buses = a->cfg->n_buses;
    a->buses = calloc(a->n_buses, sizeof *a->buses);
    if (!a->buses) return -1;
    atomic_store(&a->stop_buses, 0);
    for (size_t i = 0; i < a->n_buses; i++) {
        bus_thread *t = &a->buses[i];
        t->agent = a;
        t->bus = dcem_bus_new(a->cfg, i);
        if (!t->bus || pthread_create(&t->thread, NULL, bus_main, t)) {
            DCEM_LOGE("agent", "bus %s: cannot start", a->cfg->buses[i].name);
            return -1;
        }
        t->started = 1;
    }
    return 0;
}

static void stop_buses(agent *a)
{
    atomic_store(&a->stop_buses, 1);
    for (size_t i = 0; i < a->n_buses; i++) {
        if (a->buses[i].started) pthread_join(a->buses[i].thread, NULL);
        dcem_bus_free(a->buses[i].bus);
    }
    free(a->buses);
    a->buses = NULL;
    a->n_buses = 0;
}

/* ---- MQTT messages (paho's thread) ---- */

/* Keeps an ack or ctl payload for the main loop, which alone touches the
 * spool and the delivery state: nothing is decoded or trusted here. Always
 * takes the message (1): the inbox is bounded by dropping its oldest. */
static int on_message(void *ctx, const char *topic, const void *payload, size_t len)
{
    agent *a = ctx;
    int leaf = !strcmp(topic, a->topic_ack)   ? DCEM_WIRE_ACK
               : !strcmp(topic, a->topic_ctl) ? DCEM_WIRE_CTL
                                              : -1;
    if (leaf < 0) return 1;
    pthread_mutex_lock(&a->lock);
    if (len > INBOX_MSG_MAX) {
        a->in_too_large++;
    } else {
        if (a->in_len == INBOX_CAP) { /* acks are cumulative and repeated: the oldest goes */
            a->in_head = (a->in_head + 1) % INBOX_CAP;
            a->in_len--;
            a->in_dropped++;
        }
        inbound *m = &a->inbox[(a->in_head + a->in_len) % INBOX_CAP];
        m->leaf = leaf;
        m->len = len;
        memcpy(m->payload, payload, len);
        a->in_len++;
    }
    pthread_mutex_unlock(&a->lock);
    return 1;
}

/* ---- batching and publishing ---- */

static int flush_batch(agent *a)
{
    if (!a->n_batch) return 0;
    if (!a->spool) return -1; /* a reload could not reopen it: the readings wait */
    dcem_wire_batch b = {.epoch = dcem_spool_epoch(a->spool),
                         .seq = dcem_spool_next_seq(a->spool),
                         .readings = a->batch,
                         .n_readings = a->n_batch};
    snprintf(b.site, sizeof b.site, "%s", a->cfg->site);
    snprintf(b.gateway, sizeof b.gateway, "%s", a->cfg->gateway);
    char *json;
    size_t len;
    int rc = dcem_wire_encode_batch(&b, &json, &len);
    if (rc) {
        DCEM_LOGE("agent", "cannot encode batch %llu: %s", (unsigned long long)b.seq,
                  dcem_strerror(rc));
        a->dropped[DCEM_WIRE_DROP_ENCODE] += a->n_batch;
        a->n_batch = 0; /* cannot happen for readings we built; do not loop on it */
        return -1;
    }
    rc = dcem_spool_append(a->spool, b.seq, json, len);
    free(json);
    if (rc == DCEM_ERANGE) { /* never fits: retrying would hold up every later reading */
        a->dropped[DCEM_WIRE_DROP_TOO_LARGE] += a->n_batch;
        a->n_batch = 0;
        return -1;
    }
    if (rc) { /* keep the readings and try again next round */
        static dcem_complaint c;
        dcem_complain(&c, DCEM_LOG_ERROR, "spool", "append failed: %s",
                      dcem_spool_error(a->spool));
        return -1;
    }
    DCEM_LOGD("agent", "batch %llu: %zu readings spooled", (unsigned long long)b.seq, a->n_batch);
    a->n_batch = 0;
    a->spooled++;
    return 0;
}

/* Publishes buf[0..len) on topic signed with the gateway's key (as it is
 * in a lab without one): the signature is made at each publication, so a
 * key rotated meanwhile signs what the spool held. buf has room for the
 * signature (cap bytes) and is left as it was. 0 or -1. */
static int publish_signed(agent *a, const char *topic, char *buf, size_t len, size_t cap,
                          int qos, int retain)
{
    char err[200];
    size_t n = len;
    if (a->cfg->signer && dcem_sign_payload(a->cfg->signer, topic, buf, &n, cap)) {
        static dcem_complaint c;
        dcem_complain(&c, DCEM_LOG_ERROR, "agent", "cannot sign a payload for %s", topic);
        return -1;
    }
    int rc = dcem_mqtt_publish(a->mqtt, topic, buf, n, qos, retain, err, sizeof err);
    if (n != len) buf[len - 1] = '}'; /* the prefix is intact: the payload as it was */
    return rc;
}

/* The same for an encoder's output (json, len bytes; freed here), copied
 * into the small-payload buffer. */
static int publish_small(agent *a, const char *topic, char *json, size_t len, int qos,
                         int retain)
{
    int rc = -1;
    if (len < DCEM_WIRE_MAX_SMALL_PAYLOAD - DCEM_SIG_SUFFIX_LEN) {
        memcpy(a->small, json, len);
        rc = publish_signed(a, topic, a->small, len, DCEM_WIRE_MAX_SMALL_PAYLOAD, qos, retain);
    }
    free(json);
    return rc;
}

/* The retained state: a birth (what dcem_delivery_next computed from the
 * spool) or, with birth NULL, the goodbye. 0 or -1. */
static int publish_state(agent *a, const dcem_delivery_action *birth)
{
    dcem_wire_state s = {.online = birth != NULL};
    if (birth) {
        s.epoch = birth->epoch;
        s.next_seq = birth->next_seq;
        s.queued = birth->queued;
    }
    snprintf(s.version, sizeof s.version, "%s", DCEM_VERSION);
    char *json;
    size_t len;
    if (dcem_wire_encode_state(&s, &json, &len)) return -1;
    return publish_small(a, a->topic_state, json, len, 1, 1);
}

static void try_connect(agent *a, int64_t now)
{
    if (dcem_mqtt_is_connected(a->mqtt) || now < a->reconnect_at_ms) return;
    const char *topics[] = {a->topic_ack, a->topic_ctl};
    char err[300];
    static dcem_complaint c;
    if (dcem_mqtt_connect(a->mqtt, topics, 2, err, sizeof err)) {
        dcem_complain(&c, DCEM_LOG_WARN, "mqtt", "%s", err);
        a->reconnect_backoff_ms = a->reconnect_backoff_ms ? a->reconnect_backoff_ms * 2 : 500;
        if (a->reconnect_backoff_ms > a->cfg->mqtt.reconnect_max_ms)
            a->reconnect_backoff_ms = a->cfg->mqtt.reconnect_max_ms;
        a->reconnect_at_ms = now + a->reconnect_backoff_ms;
        return;
    }
    dcem_release(&c, "mqtt", "connected to %s", a->cfg->mqtt.uri);
    DCEM_LOGI("mqtt", "connected to %s as %s", a->cfg->mqtt.uri, a->cfg->mqtt.client_id);
    a->reconnect_backoff_ms = 0;
    /* a birth, then every held batch again from the oldest */
    dcem_delivery_connected(a->delivery, now);
}

static const char *const refuse_why[] = {
    "of meters the collector's ledger of the site does not list",
    "stamped beyond the collector's clock: is this gateway's clock ahead?",
    "values the counter rules refuse, a negative or absurd counter",
    "readings their meter's kind in the ledger cannot take",
    "every reading of batches the collector set aside in its quarantine",
    "late readings older than the collector's retention: it can no longer fold them in",
};
_Static_assert(sizeof refuse_why / sizeof *refuse_why == DCEM_REFUSE_COUNT, "a why for each");

/* Adds up what an ack that deleted batches says the collector refused to
 * count; each reason is logged the first time it comes (the stats line and
 * the metrics carry the counts since). */
static void note_refused(agent *a, const dcem_wire_ack *ack)
{
    for (int i = 0; i < DCEM_REFUSE_COUNT; i++) {
        if (!ack->refused[i]) continue;
        if (!a->refused[i])
            DCEM_LOGW("agent",
                      "the collector refused to count readings up to epoch %llu seq %llu: %lu "
                      "%s, %s (later ones are counted in the stats line)",
                      (unsigned long long)ack->epoch, (unsigned long long)ack->seq,
                      (unsigned long)ack->refused[i], dcem_refuse_name(i), refuse_why[i]);
        a->refused[i] += ack->refused[i];
    }
}

/* The one place where a received ack or ctl payload is checked, decoded and
 * handed to the delivery state machine (anything that authenticates a
 * payload belongs at its top, before a byte of it is decoded); what the
 * state machine decides is applied here. Main loop only. */
static void on_control(agent *a, int leaf, const char *payload, size_t len, int64_t now)
{
    char err[200];
    int reason;
    /* only what a collector signed for this topic is obeyed: a forged ack
     * would delete batches nobody stored (a lab without collector_keys
     * believes anything) */
    const dcem_identity_cfg *id = &a->cfg->identity;
    if (id->n_collector_keys) {
        const char *topic = leaf == DCEM_WIRE_ACK ? a->topic_ack : a->topic_ctl;
        int r = dcem_sig_verify(id->collector_keys, id->n_collector_keys, topic, payload, len,
                                NULL, NULL);
        if (r != DCEM_SIG_VALID) {
            a->unauthentic_in++;
            dcem_complain(&a->unauthentic, DCEM_LOG_WARN, "agent",
                          "%s on %s ignored: %s (no collector key verifies it; repeats counted)",
                          leaf == DCEM_WIRE_ACK ? "ack" : "command", topic,
                          dcem_sig_result_name(r));
            return;
        }
        dcem_release(&a->unauthentic, "agent", "signed acks again");
    }
    if (leaf == DCEM_WIRE_ACK) {
        dcem_wire_ack ack;
        if (dcem_wire_decode_ack(payload, len, &ack, &reason, err, sizeof err)) {
            a->malformed_in++;
            return;
        }
        dcem_delivery_pos del;
        switch (dcem_delivery_ack(a->delivery, ack.epoch, ack.seq, now, &del)) {
        case DCEM_DELIVERY_ACK_DELETE:
            dcem_release(&a->ack_ahead, "agent", "acks apply again (epoch %llu seq %llu)",
                         (unsigned long long)ack.epoch, (unsigned long long)ack.seq);
            note_refused(a, &ack);
            if (dcem_spool_ack(a->spool, del.epoch, del.seq) == DCEM_ESTORAGE) {
                static dcem_complaint c;
                dcem_complain(&c, DCEM_LOG_ERROR, "spool", "ack: %s", dcem_spool_error(a->spool));
            }
            break;
        case DCEM_DELIVERY_ACK_AHEAD:
            dcem_complain(&a->ack_ahead, DCEM_LOG_WARN, "agent",
                          "ack for epoch %llu seq %llu is above the newest batch published since "
                          "start: nothing deleted (normal for a few acks after a restart)",
                          (unsigned long long)ack.epoch, (unsigned long long)ack.seq);
            break;
        case DCEM_DELIVERY_ACK_EPOCH:
            dcem_complain(&a->ack_epoch, DCEM_LOG_WARN, "agent",
                          "ack for epoch %llu, which the spool does not hold (epoch %llu): ignored",
                          (unsigned long long)ack.epoch,
                          (unsigned long long)dcem_spool_epoch(a->spool));
            break;
        default: break;
        }
        return;
    }
    dcem_wire_ctl ctl;
    if (dcem_wire_decode_ctl(payload, len, &ctl, &reason, err, sizeof err)) {
        if (reason == DCEM_WIRE_BAD_COMMAND) a->bad_command++; /* a newer collector's */
        else a->malformed_in++;
        return;
    }
    DCEM_LOGI("agent", "collector asks to resend from epoch %llu seq %llu",
              (unsigned long long)ctl.epoch, (unsigned long long)ctl.from_seq);
    if (dcem_delivery_resend(a->delivery, ctl.epoch, ctl.from_seq, now) == DCEM_DELIVERY_RESEND_OK) {
        dcem_release(&a->resend_gone, "agent", "resend requests are for held batches again");
        return;
    }
    dcem_spool_stat st;
    dcem_spool_stats(a->spool, &st);
    dcem_complain(&a->resend_gone, DCEM_LOG_WARN, "agent",
                  "resend from epoch %llu seq %llu: not held (acked, dropped or lost) or not yet "
                  "appended; a birth says what is: epoch %llu seqs %llu..%llu",
                  (unsigned long long)ctl.epoch, (unsigned long long)ctl.from_seq,
                  (unsigned long long)st.epoch, (unsigned long long)st.first_seq,
                  (unsigned long long)st.next_seq - 1);
}

/* Applies what paho's thread received, in arrival order. */
static void take_inbox(agent *a, int64_t now)
{
    inbound m;
    for (;;) {
        pthread_mutex_lock(&a->lock);
        int have = a->in_len > 0;
        if (have) {
            const inbound *x = &a->inbox[a->in_head];
            m.leaf = x->leaf;
            m.len = x->len;
            memcpy(m.payload, x->payload, x->len);
            a->in_head = (a->in_head + 1) % INBOX_CAP;
            a->in_len--;
        }
        pthread_mutex_unlock(&a->lock);
        if (!have) return;
        on_control(a, m.leaf, m.payload, m.len, now);
    }
}

/* ---- the delivery state machine's view of the spool ---- */

static void spool_held(void *ctx, dcem_delivery_held *h)
{
    agent *a = ctx;
    dcem_spool_stat st;
    dcem_spool_stats(a->spool, &st);
    h->epoch = st.epoch;
    h->next_seq = st.next_seq;
    h->first_seq = st.first_seq;
}

/* Reads the batch into a->buf while finding it: the publish that usually
 * follows needs no second read. */
static int spool_first(void *ctx, dcem_delivery_pos from, dcem_delivery_pos *at)
{
    agent *a = ctx;
    dcem_spool_rec rec;
    a->buf_full = 0;
    if (dcem_spool_read(a->spool, from.epoch, from.seq, a->buf, DCEM_WIRE_MAX_PAYLOAD, &rec))
        return -1;
    *at = a->buf_pos = (dcem_delivery_pos){rec.epoch, rec.seq};
    a->buf_len = rec.len;
    a->buf_full = 1;
    return 0;
}

static int publish_batch(agent *a, dcem_delivery_pos pos)
{
    dcem_delivery_pos at;
    if ((!a->buf_full || a->buf_pos.epoch != pos.epoch || a->buf_pos.seq != pos.seq) &&
        (spool_first(a, pos, &at) || at.epoch != pos.epoch || at.seq != pos.seq))
        return -1; /* gone meanwhile: the next round finds what is there */
    return publish_signed(a, a->topic_data, a->buf, a->buf_len, DCEM_WIRE_MAX_PAYLOAD, 1, 0);
}

/* Publishes what the delivery state machine asks for: a birth, then held
 * batches in spool order, at most `inflight` ahead of the collector's acks. */
static void publish_pending(agent *a, int64_t now)
{
    if (!dcem_mqtt_is_connected(a->mqtt)) {
        dcem_delivery_lost(a->delivery);
        return;
    }
    if (dcem_delivery_tick(a->delivery, now))
        DCEM_LOGI("agent", "no ack for %d s: publishing again from the oldest batch",
                  RESEND_AFTER_MS / 1000);
    dcem_delivery_action act;
    for (int n = 0; n < 64 && dcem_delivery_next(a->delivery, now, &act); n++) {
        int ok = act.kind == DCEM_DELIVERY_BIRTH ? !publish_state(a, &act)
                                                 : !publish_batch(a, act.pos);
        dcem_delivery_done(a->delivery, &act, ok, now);
        if (!ok) break; /* try again next round */
    }
}

/* Publishes the local figures of intervals that have closed (retained, QoS 0:
 * a live view, not a record). */
static void publish_metrics(agent *a)
{
    if (!a->local) return;
    int64_t grace = 5000;
    for (size_t i = 0; i < a->cfg->n_devices; i++)
        if (a->cfg->devices[i].poll_ms * 2 > grace) grace = a->cfg->devices[i].poll_ms * 2;
    dcem_wire_metrics m;
    while (dcem_local_take(a->local, dcem_now_wall_ms(), grace, &m)) {
        m.has_dropped = 1;
        memcpy(m.dropped, a->dropped, sizeof m.dropped);
        m.has_refused = 1;
        memcpy(m.refused, a->refused, sizeof m.refused);
        char *json;
        size_t len;
        if (dcem_wire_encode_metrics(&m, &json, &len)) continue;
        if (dcem_mqtt_is_connected(a->mqtt)) publish_small(a, a->topic_metrics, json, len, 0, 1);
        else free(json);
    }
}

/* ---- setup ---- */

/* What the spool holds after its recovery, and what recovery found: the
 * birth will say the same. */
static void log_spool_open(agent *a)
{
    static const char *const why[] = {"resumed", "created", "metadata lost",
                                      "its newest record unreadable"};
    dcem_spool_stat st;
    dcem_spool_stats(a->spool, &st);
    DCEM_LOGI("spool", "%s: epoch %llu (%s), next seq %llu; %llu batches held (%llu of earlier "
              "epochs), seqs %llu.. of this epoch",
              a->cfg->spool.dir, (unsigned long long)st.epoch,
              st.epoch_reason >= 0 && st.epoch_reason < 4 ? why[st.epoch_reason] : "?",
              (unsigned long long)st.next_seq, (unsigned long long)st.records,
              (unsigned long long)st.old_epoch_records, (unsigned long long)st.first_seq);
    if (st.truncated_bytes || st.corrupt_segments || st.aside_discarded || st.dropped_records)
        DCEM_LOGW("spool",
                  "recovery: %llu bytes of a torn tail cut off, %llu segments set aside "
                  "(%llu bytes lost, %llu without a copy), %llu batches dropped to fit max_mib",
                  (unsigned long long)st.truncated_bytes, (unsigned long long)st.corrupt_segments,
                  (unsigned long long)st.corrupt_bytes, (unsigned long long)st.aside_discarded,
                  (unsigned long long)st.dropped_records);
}

static int open_io(agent *a, char *err, size_t errlen)
{
    dcem_agent_config *c = a->cfg;
    dcem_wire_topic(a->topic_data, sizeof a->topic_data, c->site, c->gateway, "data");
    dcem_wire_topic(a->topic_ack, sizeof a->topic_ack, c->site, c->gateway, "ack");
    dcem_wire_topic(a->topic_ctl, sizeof a->topic_ctl, c->site, c->gateway, "ctl");
    dcem_wire_topic(a->topic_state, sizeof a->topic_state, c->site, c->gateway, "state");
    dcem_wire_topic(a->topic_metrics, sizeof a->topic_metrics, c->site, c->gateway, "metrics");
    if (c->site_ledger && !(a->local = dcem_local_new(c, err, errlen))) return -1;
    dcem_spool_opts so = {.max_bytes = (uint64_t)(c->spool.max_mib * 1048576.0),
                          .fsync = c->spool.fsync};
    int rc = dcem_spool_open(c->spool.dir, &so, time(NULL), &a->spool, err, errlen);
    if (rc) return rc;
    log_spool_open(a);
    dcem_delivery_spool seam = {.ctx = a, .held = spool_held, .first = spool_first};
    dcem_delivery_opts dopts = {.inflight = (unsigned)c->mqtt.inflight,
                                .resend_after_ms = RESEND_AFTER_MS,
                                .birth_every_ms = BIRTH_EVERY_MS};
    if (!(a->delivery = dcem_delivery_new(&seam, &dopts)))
        return snprintf(err, errlen, "out of memory"), -1;
    dcem_wire_state will = {.online = 0};
    char *json, signed_will[256];
    size_t len;
    if (dcem_wire_encode_state(&will, &json, &len)) return snprintf(err, errlen, "state"), -1;
    /* the will is signed too: the collector believes no unsigned state */
    int bad = len >= sizeof signed_will;
    if (!bad) {
        memcpy(signed_will, json, len + 1);
        if (c->signer)
            bad = dcem_sign_payload(c->signer, a->topic_state, signed_will, &len,
                                    sizeof signed_will) != 0;
    }
    free(json);
    if (bad) return snprintf(err, errlen, "cannot sign the last will"), -1;
    /* a clean session: the spool and the collector's acks make delivery lossless */
    dcem_mqtt_opts mo = {.will_topic = a->topic_state, .will_payload = signed_will,
                         .inflight = (int)c->mqtt.inflight, .fn = on_message, .ctx = a};
    a->mqtt = dcem_mqtt_new(&c->mqtt, &mo, err, errlen);
    return a->mqtt ? 0 : -1;
}

static void close_io(agent *a)
{
    flush_batch(a);
    dcem_local_free(a->local);
    a->local = NULL;
    if (a->mqtt && dcem_mqtt_is_connected(a->mqtt)) {
        char err[200];
        if (!a->importing) publish_state(a, NULL);
        else /* an import is over, not a gateway gone: its retained birth is removed */
            dcem_mqtt_publish(a->mqtt, a->topic_state, "", 0, 1, 1, err, sizeof err);
    }
    dcem_mqtt_free(a->mqtt);
    a->mqtt = NULL;
    if (a->delivery) { /* counters survive a reload */
        dcem_delivery_stats d, *t = &a->delivery_before;
        dcem_delivery_get_stats(a->delivery, &d);
        t->published += d.published;
        t->births += d.births;
        t->acks += d.acks;
        t->acks_applied += d.acks_applied;
        t->acks_ahead += d.acks_ahead;
        t->acks_other_epoch += d.acks_other_epoch;
        t->resends += d.resends;
        t->resends_gone += d.resends_gone;
        t->timeouts += d.timeouts;
    }
    dcem_delivery_free(a->delivery);
    a->delivery = NULL;
    if (a->spool) {
        dcem_spool_stat st;
        dcem_spool_stats(a->spool, &st);
        a->spool_dropped_before += st.dropped_records;
    }
    dcem_spool_close(a->spool);
    a->spool = NULL;
}

static const char *const drop_why[DCEM_WIRE_DROP_COUNT] = {
    "readings dropped: the queue from the pollers to the spool is full (can the spool be written?)",
    "batches dropped, oldest first: the spool is full (spool.max_mib)",
    "readings dropped: the encoder refused a batch",
    "readings dropped: a batch is larger than the spool can ever hold (spool.max_mib)",
    "readings dropped at stop: the spool could not be written",
};

/* Brings dropped[] up to date and logs each reason's spell of drops once
 * when it starts and once when none came for DROP_QUIET_MS (collectd's
 * c_complain / c_release, with the count of what was dropped). */
static void note_drops(agent *a, int64_t now, int final)
{
    pthread_mutex_lock(&a->lock);
    a->dropped[DCEM_WIRE_DROP_QUEUE_FULL] = a->q_dropped;
    pthread_mutex_unlock(&a->lock);
    dcem_spool_stat st;
    dcem_spool_stats(a->spool, &st); /* zeros without a spool */
    a->dropped[DCEM_WIRE_DROP_SPOOL_FULL_BATCHES] = a->spool_dropped_before + st.dropped_records;
    for (int i = 0; i < DCEM_WIRE_DROP_COUNT; i++) {
        const char *name = dcem_wire_drop_name(i);
        if (a->dropped[i] > a->drop_seen[i]) {
            if (!a->dropping[i]) {
                DCEM_LOGW("agent", "%s: %s", name, drop_why[i]);
                a->drop_spell[i] = a->drop_seen[i];
                a->dropping[i] = 1;
            }
            a->drop_seen[i] = a->dropped[i];
            a->drop_last_ms[i] = now;
        }
        if (a->dropping[i] && (final || now - a->drop_last_ms[i] >= DROP_QUIET_MS)) {
            DCEM_LOGI("agent", "%s: %llu dropped in that spell%s (%llu since start)", name,
                      (unsigned long long)(a->dropped[i] - a->drop_spell[i]),
                      final ? "" : ", none since", (unsigned long long)a->dropped[i]);
            a->dropping[i] = 0;
        }
    }
}

/* The agent's counters since start, every STATS_EVERY_MS and at stop. */
static void log_stats(agent *a)
{
    dcem_delivery_stats d = a->delivery_before, c;
    dcem_delivery_get_stats(a->delivery, &c); /* zeros without one */
    d.published += c.published;
    d.births += c.births;
    d.acks += c.acks;
    d.acks_applied += c.acks_applied;
    d.acks_ahead += c.acks_ahead;
    d.acks_other_epoch += c.acks_other_epoch;
    d.resends += c.resends;
    d.resends_gone += c.resends_gone;
    d.timeouts += c.timeouts;
    dcem_spool_stat st;
    dcem_spool_stats(a->spool, &st);
    pthread_mutex_lock(&a->lock);
    unsigned long in_dropped = a->in_dropped, in_too_large = a->in_too_large;
    pthread_mutex_unlock(&a->lock);
    const uint64_t *x = a->dropped, *y = a->refused;
    DCEM_LOGI("agent",
              "%lu batches spooled, %lu published, %lu births; acks: %lu, %lu applied, %lu above "
              "what was published, %lu for other epochs; %lu resend requests (%lu for batches "
              "not held); %lu no-ack timeouts; spool: %llu batches, %llu bytes; dropped: %llu "
              "queue_full, %llu spool_full_batches, %llu encode, %llu too_large, %llu "
              "spool_error; refused by the collector: %llu unknown_meter, %llu future, %llu "
              "out_of_range, %llu wrong_kind, %llu quarantined, %llu too_old; acks and ctl: %lu malformed, "
              "%lu unknown commands, %lu too large, %lu overflowed, %lu not signed by a collector",
              a->spooled, d.published, d.births, d.acks, d.acks_applied, d.acks_ahead,
              d.acks_other_epoch, d.resends, d.resends_gone, d.timeouts,
              (unsigned long long)st.records, (unsigned long long)st.bytes,
              (unsigned long long)x[DCEM_WIRE_DROP_QUEUE_FULL],
              (unsigned long long)x[DCEM_WIRE_DROP_SPOOL_FULL_BATCHES],
              (unsigned long long)x[DCEM_WIRE_DROP_ENCODE],
              (unsigned long long)x[DCEM_WIRE_DROP_TOO_LARGE],
              (unsigned long long)x[DCEM_WIRE_DROP_SPOOL_ERROR],
              (unsigned long long)y[DCEM_REFUSE_UNKNOWN_METER],
              (unsigned long long)y[DCEM_REFUSE_FUTURE],
              (unsigned long long)y[DCEM_REFUSE_OUT_OF_RANGE],
              (unsigned long long)y[DCEM_REFUSE_WRONG_KIND],
              (unsigned long long)y[DCEM_REFUSE_QUARANTINED],
              (unsigned long long)y[DCEM_REFUSE_TOO_OLD], a->malformed_in, a->bad_command,
              in_too_large, in_dropped, a->unauthentic_in);
}

/* A missing serial device is not a config error for the running agent (a
 * USB adapter may come back; the other buses keep polling): say it clearly
 * once, at start and at each reload. */
static void warn_missing_devices(const dcem_agent_config *c)
{
    char err[1024];
    for (size_t i = 0; i < c->n_buses; i++)
        if (dcem_agent_config_check_device(c, i, err, sizeof err))
            DCEM_LOGW("agent", "%s (its devices report comm_error until it is there)", err);
}

static void reload(agent *a)
{
    char err[1024];
    dcem_agent_config *n = dcem_agent_config_load(a->cfg->file, err, sizeof err);
    if (!n) {
        DCEM_LOGE("agent", "reload refused, keeping the running config: %s", err);
        return;
    }
    DCEM_LOGI("agent", "reloading %s", n->file);
    warn_missing_devices(n);
    stop_buses(a);
    close_io(a);
    dcem_agent_config_free(a->cfg);
    a->cfg = n;
    dcem_log_set_level(n->log_level);
    if (open_io(a, err, sizeof err)) DCEM_LOGE("agent", "%s", err);
    a->reconnect_at_ms = 0;
    start_buses(a);
}

/* ---- --once ---- */

typedef struct once_ctx {
    const dcem_agent_config *cfg;
    dcem_commission *report;
} once_ctx;

static void on_once(void *ctx, const dcem_poll_result *r)
{
    once_ctx *o = ctx;
    /* the verdict the agent would publish: to_wire weighs the values too */
    dcem_wire_reading w;
    to_wire(o->cfg, r, &w);
    dcem_commission_add(o->report, r, w.quality);
}

/* Polls every device once and prints the report: JSON when asked or when
 * stdout is not a terminal, else the table. Exit status: 0 when every
 * device answered, 1 when any failed (or printing failed). */
static int run_once(dcem_agent_config *c, int json)
{
    once_ctx o = {.cfg = c, .report = dcem_commission_new(c)};
    if (!o.report) return 1;
    for (size_t i = 0; i < c->n_buses; i++) {
        dcem_bus *b = dcem_bus_new(c, i);
        if (!b) continue; /* its devices are reported as not polled */
        dcem_bus_poll_once(b, on_once, &o);
        dcem_bus_free(b);
    }
    int rc = dcem_commission_failed(o.report) ? 1 : 0;
    if (json) {
        char *doc = dcem_commission_json(o.report);
        if (doc) puts(doc);
        else rc = 1;
        free(doc);
    } else {
        dcem_commission_print_table(o.report, stdout);
    }
    if (fflush(stdout)) rc = 1;
    dcem_commission_free(o.report);
    return rc;
}

/* ---- --import ---- */

/* Readings from a CSV in the dcem-audit format (time,meter,kwh[,kw], RFC 3339
 * times) instead of the buses: history from before the agent ran — a BMS
 * export, a meter's own log, the demo's generated year — delivered exactly
 * as polled readings are: batched, spooled, published, held until the
 * collector acknowledges them. The file is read only as fast as the
 * collector acknowledges, so the spool never fills. */
typedef struct importer {
    FILE *f;
    const char *path;
    long line;
    unsigned long rows, skipped;
    int eof;
} importer;

static void import_skip(importer *im, const char *why)
{
    if (++im->skipped <= 10) fprintf(stderr, "dcem-agent: %s:%ld: %s: skipped\n", im->path, im->line, why);
}

/* Adds rows to the batch until it holds max readings or the file ends. */
static void import_fill(agent *a, importer *im, size_t max)
{
    char line[512];
    while (a->n_batch < max && !im->eof) {
        if (!fgets(line, sizeof line, im->f)) {
            im->eof = 1;
            break;
        }
        im->line++;
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (im->line == 1 && !strncmp(line, "time,", 5)) continue; /* the header */
        if (!n) continue;
        char *f[5] = {line, NULL, NULL, NULL, NULL};
        size_t nf = 1;
        for (char *p = line; *p && nf <= 5; p++)
            if (*p == ',') {
                *p = '\0';
                if (nf < 5) f[nf] = p + 1;
                nf++;
            }
        if (nf < 3 || nf > 5) {
            import_skip(im, "expected time,meter,kwh[,kw[,ratio]]");
            continue;
        }
        dcem_wire_reading *r = &a->batch[a->n_batch];
        memset(r, 0, sizeof *r);
        const dcem_site *ledger = a->cfg->site_ledger;
        size_t ml = strlen(f[1]);
        if (dcem_parse_time(f[0], strlen(f[0]), &r->t_ms)) {
            import_skip(im, "time: not an RFC 3339 time");
            continue;
        }
        if (!dcem_wire_id_valid(f[1], ml) || (ledger && dcem_site_find_meter(ledger, f[1], ml) < 0)) {
            import_skip(im, "meter: not a meter of the site's ledger");
            continue;
        }
        memcpy(r->meter, f[1], ml + 1);
        if (*f[2]) {
            if (dcem_parse_double(f[2], strlen(f[2]), &r->kwh) || !isfinite(r->kwh)) {
                import_skip(im, "kwh: not a number");
                continue;
            }
            r->has_kwh = 1;
        }
        if (nf == 4 && *f[3]) {
            if (dcem_parse_double(f[3], strlen(f[3]), &r->kw) || !isfinite(r->kw)) {
                import_skip(im, "kw: not a number");
                continue;
            }
            r->has_kw = 1;
        }
        if (!r->has_kwh && !r->has_kw) {
            import_skip(im, "neither kwh nor kw");
            continue;
        }
        /* the export's ratio is ct * pt, which is all the counter rules use:
         * it travels as ct (and pt for what ct cannot carry) */
        double ratio = 1;
        if (nf == 5 && *f[4] &&
            (dcem_parse_double(f[4], strlen(f[4]), &ratio) || !(ratio > 0) ||
             ratio > DCEM_RATIO_MAX * DCEM_RATIO_MAX)) {
            import_skip(im, "ratio: not a number above 0 and at most 1e10");
            continue;
        }
        r->ct = ratio > DCEM_RATIO_MAX ? DCEM_RATIO_MAX : ratio;
        r->pt = ratio / r->ct;
        r->quality = DCEM_WIRE_Q_OK;
        a->n_batch++;
        im->rows++;
    }
}

/* One round of an import: spools batches while fewer than two windows of
 * them wait for acks. Returns 1 once everything is read and acknowledged. */
static int import_round(agent *a, importer *im)
{
    size_t max = (size_t)a->cfg->batch.max_readings;
    if (max > DCEM_WIRE_SAFE_READINGS) max = DCEM_WIRE_SAFE_READINGS;
    dcem_spool_stat st;
    dcem_spool_stats(a->spool, &st);
    while (!im->eof && st.records < 2 * (uint64_t)a->cfg->mqtt.inflight) {
        import_fill(a, im, max);
        if (a->n_batch && (a->n_batch == max || im->eof) && flush_batch(a)) break;
        dcem_spool_stats(a->spool, &st);
    }
    return im->eof && !a->n_batch && st.records == 0;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fputs("usage: dcem-agent -c FILE [--check-config | --once [--json] | --import CSV] | --version\n"
          "       dcem-agent --keygen FILE | --pubkey FILE\n"
          "Polls the meters of agent.yaml over Modbus and publishes their readings\n"
          "over MQTT, spooled on disk until the collector acknowledges them.\n"
          "  --check-config  load and check the config (profiles, ledger, serial devices),\n"
          "                  then exit\n"
          "  --once          poll every device once and print what each answered: a table\n"
          "                  on a terminal, JSON when piped or with --json\n"
          "  --import CSV    deliver the readings of CSV (time,meter,kwh[,kw]) instead of\n"
          "                  polling, and exit once the collector acknowledged them all,\n"
          "                  printing what it refused to count, by reason\n"
          "  --keygen FILE   make the gateway's Ed25519 key in FILE (mode 0600, never\n"
          "                  overwritten) and print its public key for the site ledger\n"
          "  --pubkey FILE   print the public key of the private key in FILE\n"
          "Exit status: 0 ok; 1 a device failed (--once), rows skipped or readings the\n"
          "collector refused (--import), or a runtime error; 2 a usage or config error.\n"
          "SIGHUP reloads the config (a bad one is refused); SIGTERM stops cleanly.\n",
          f);
}


int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"check-config", no_argument, 0, 'k'},
                                         {"once", no_argument, 0, 'o'},
                                         {"json", no_argument, 0, 'j'},
                                         {"import", required_argument, 0, 'i'},
                                         {"version", no_argument, 0, 'V'},
                                         {"help", no_argument, 0, 'h'},
                                         {"keygen", required_argument, 0, 'g'},
                                         {"pubkey", required_argument, 0, 'p'},
                                         {0, 0, 0, 0}};
    const char *file = NULL;
    int check = 0, once = 0, json = 0, opt;
    importer im = {0};
    while ((opt = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': file = optarg; break;
        case 'k': check = 1; break;
        case 'o': once = 1; break;
        case 'j': json = 1; break;
        case 'i': im.path = optarg; break;
        case 'V': puts("dcem-agent " DCEM_VERSION); return 0;
        case 'g': return dcem_io_key_command(optarg, 1, "dcem-agent");
        case 'p': return dcem_io_key_command(optarg, 0, "dcem-agent");
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!file || optind != argc || check + once + !!im.path > 1 || (json && !once)) {
        usage(stderr);
        return 2;
    }
    char err[1024];
    agent a = {0};
    a.cfg = dcem_agent_config_load(file, err, sizeof err);
    /* --check-config and --once are run by a person at the gateway: a serial
     * device that is not there is an error of the config for them */
    if (a.cfg && (check || once) && dcem_agent_config_check_devices(a.cfg, err, sizeof err)) {
        dcem_agent_config_free(a.cfg);
        a.cfg = NULL;
    }
    if (!a.cfg) {
        fprintf(stderr, "dcem-agent: %s\n", err);
        return 2;
    }
    dcem_log_set_level(a.cfg->log_level);
    if (check) {
        printf("%s: ok (%zu buses, %zu devices, %zu profiles from %s)\n", file, a.cfg->n_buses,
               a.cfg->n_devices, a.cfg->n_profiles, a.cfg->profiles_dir);
        dcem_agent_config_free(a.cfg);
        return 0;
    }
    if (once) {
        int rc = run_once(a.cfg, json || !isatty(STDOUT_FILENO));
        dcem_agent_config_free(a.cfg);
        return rc;
    }
    if (!im.path) warn_missing_devices(a.cfg);
    if (im.path && !(im.f = fopen(im.path, "r"))) {
        fprintf(stderr, "dcem-agent: %s: %s\n", im.path, strerror(errno));
        dcem_agent_config_free(a.cfg);
        return 1;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* OpenSSL 3 initialises itself when TLS is first used; paho's eager
     * init would make every agent pay for it (about 1.5 MiB resident) */
    MQTTClient_init_options init = MQTTClient_init_options_initializer;
    init.do_openssl_init = 0;
    MQTTClient_global_init(&init);

    pthread_mutex_init(&a.lock, NULL);
    a.queue = calloc(QUEUE_CAP, sizeof *a.queue);
    a.inbox = calloc(INBOX_CAP, sizeof *a.inbox);
    a.batch = calloc(DCEM_WIRE_SAFE_READINGS, sizeof *a.batch);
    a.buf = malloc(DCEM_WIRE_MAX_PAYLOAD);
    a.small = malloc(DCEM_WIRE_MAX_SMALL_PAYLOAD);
    int rc = 1;
    if (!a.queue || !a.inbox || !a.batch || !a.buf || !a.small) goto out;
    if (open_io(&a, err, sizeof err)) {
        fprintf(stderr, "dcem-agent: %s\n", err);
        goto out;
    }
    a.importing = im.f != NULL;
    if (im.f) {
        DCEM_LOGI("agent", "gateway %s of site %s: importing %s, spool %s", a.cfg->gateway,
                  a.cfg->site, im.path, a.cfg->spool.dir);
    } else {
        if (start_buses(&a)) goto out;
        DCEM_LOGI("agent", "gateway %s of site %s: %zu devices on %zu buses, spool %s",
                  a.cfg->gateway, a.cfg->site, a.cfg->n_devices, a.cfg->n_buses, a.cfg->spool.dir);
    }
    int imported = 0;

    while (!got_term) {
        int64_t now = dcem_now_mono_ms();
        if (got_hup) {
            got_hup = 0;
            reload(&a);
        }
        /* move readings from the queue into the batch */
        size_t max = (size_t)a.cfg->batch.max_readings;
        if (max > DCEM_WIRE_SAFE_READINGS) max = DCEM_WIRE_SAFE_READINGS;
        pthread_mutex_lock(&a.lock);
        while (a.q_len && a.n_batch < max) {
            if (!a.n_batch) a.batch_started_ms = now;
            if (a.local) dcem_local_add(a.local, &a.queue[a.q_head]);
            a.batch[a.n_batch++] = a.queue[a.q_head];
            a.q_head = (a.q_head + 1) % QUEUE_CAP;
            a.q_len--;
        }
        /* an empty ring starts again at its first slot, so only as much of
         * it as was ever full at once becomes resident, not all of it */
        if (!a.q_len) a.q_head = 0;
        pthread_mutex_unlock(&a.lock);
        if (a.spool && a.n_batch &&
            (a.n_batch >= max || now - a.batch_started_ms >= a.cfg->batch.max_delay_ms))
            flush_batch(&a);
        if (a.spool && a.cfg->spool.fsync == DCEM_SPOOL_FSYNC_INTERVAL && now >= a.next_sync_ms) {
            dcem_spool_sync(a.spool);
            a.next_sync_ms = now + a.cfg->spool.fsync_interval_ms;
        }
        note_drops(&a, now, 0);
        if (now >= a.stats_at_ms) {
            if (a.stats_at_ms) log_stats(&a);
            a.stats_at_ms = now + STATS_EVERY_MS;
        }
        if (a.spool && a.mqtt && a.delivery) {
            try_connect(&a, now);
            take_inbox(&a, now);
            if (im.f && import_round(&a, &im)) {
                imported = 1;
                break;
            }
            publish_pending(&a, now);
            publish_metrics(&a);
        }
        struct timespec ts = {0, (im.f ? 2 : 20) * 1000000};
        nanosleep(&ts, NULL);
    }
    uint64_t refused = 0;
    if (im.f) {
        DCEM_LOGI("agent", "import of %s %s: %lu readings delivered and acknowledged, %lu rows skipped",
                  im.path, imported ? "complete" : "stopped", im.rows, im.skipped);
        fclose(im.f);
        /* delivered is not counted: say what the collector would not take */
        char line[256];
        size_t n = 0;
        for (int i = 0; i < DCEM_REFUSE_COUNT; i++) {
            if (!a.refused[i]) continue;
            refused += a.refused[i];
            int w = snprintf(line + n, sizeof line - n, "%s%llu %s", n ? ", " : "",
                             (unsigned long long)a.refused[i], dcem_refuse_name(i));
            if (w > 0 && (size_t)w < sizeof line - n) n += (size_t)w;
        }
        if (refused) fprintf(stderr, "dcem-agent: %s: collector refused: %s\n", im.path, line);
    }
    DCEM_LOGI("agent", "stopping");
    stop_buses(&a);
    /* the last readings go to the spool: they are delivered after a restart */
    pthread_mutex_lock(&a.lock);
    while (a.q_len) {
        if (a.n_batch == DCEM_WIRE_SAFE_READINGS && flush_batch(&a) && a.n_batch) {
            a.dropped[DCEM_WIRE_DROP_SPOOL_ERROR] += a.n_batch; /* nowhere left to keep them */
            a.n_batch = 0;
        }
        a.batch[a.n_batch++] = a.queue[a.q_head];
        a.q_head = (a.q_head + 1) % QUEUE_CAP;
        a.q_len--;
    }
    pthread_mutex_unlock(&a.lock);
    if (flush_batch(&a) && a.n_batch) {
        a.dropped[DCEM_WIRE_DROP_SPOOL_ERROR] += a.n_batch;
        a.n_batch = 0;
    }
    note_drops(&a, dcem_now_mono_ms(), 1);
    log_stats(&a);
    rc = im.path && (!imported || im.skipped || refused) ? 1 : 0;
out:
    if (a.buses) stop_buses(&a);
    if (a.spool) close_io(&a);
    else dcem_mqtt_free(a.mqtt);
    free(a.queue);
    free(a.inbox);
    free(a.batch);
    free(a.buf);
    free(a.small);
    dcem_agent_config_free(a.cfg);
    pthread_mutex_destroy(&a.lock);
    return rc;
}
