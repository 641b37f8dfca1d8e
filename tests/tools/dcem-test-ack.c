/* dcem-test-ack — plays the collector's acknowledging role in the agent's
 * integration tests until dcem-collector exists: subscribes to every data
 * topic, validates each batch with the wire codec, stores its readings once
 * (appending them to a JSON-lines file and fsyncing), and only then acks it
 * cumulatively. Duplicates are re-acked, a gap gets a resend request.
 *
 *   dcem-test-ack --uri tcp://127.0.0.1:PORT --out readings.jsonl
 *                 [--ack-delay-ms N] [--no-ack] [--key FILE]
 *
 * --key: acks and resend requests are signed with the Ed25519 private key
 * in FILE (dcem-collector --keygen writes one), as the collector signs
 * them, for agents that list its public key in identity.collector_keys
 * (without it they go unsigned, for lab agents). Batches are not verified.
 *
 * Each stored reading is one line: {"gateway","epoch","seq","meter","t","q",
 * "kwh","kw"}. SIGTERM prints the counters as one JSON line on stdout. */
#include "dcem_io.h"
#include "sign.h"
#include "wire.h"

#include <MQTTClient.h>
#include <pthread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

#define MAX_GW 64

typedef struct gw_state {
    char key[2 * DCEM_ID_MAX + 2]; /* site/gateway */
    char site[DCEM_ID_MAX], gateway[DCEM_ID_MAX];
    uint64_t epoch, expected;      /* next seq to store */
    /* replies for the main thread: paho's API must not be called from its
     * own callback thread (it can deadlock while reconnecting) */
    int ack_due, resend_due;
    uint64_t ack_epoch, ack_seq, resend_epoch, resend_seq;
} gw_state;

typedef struct ctx {
    MQTTClient client;
    pthread_mutex_t lock;
    volatile int lost; /* set on paho's thread when the connection drops */
    FILE *out;
    gw_state gws[MAX_GW];
    size_t n_gws;
    dcem_wire_reading *storage;
    long ack_delay_ms;
    int no_ack;
    dcem_signer *signer; /* NULL: replies go unsigned */
    unsigned long batches, stored, readings, duplicates, gaps, malformed;
} ctx;

static void publish(ctx *c, const char *site, const char *gw, const char *leaf, const char *json,
                    size_t len)
{
    char topic[DCEM_WIRE_TOPIC_MAX], buf[512];
    if (dcem_wire_topic(topic, sizeof topic, site, gw, leaf)) return;
    if (c->signer) { /* acks and commands are tiny: a reply that does not fit is not sent */
        if (len >= sizeof buf - DCEM_SIG_SUFFIX_LEN) return;
        memcpy(buf, json, len);
        if (dcem_sign_payload(c->signer, topic, buf, &len, sizeof buf)) return;
        json = buf;
    }
    MQTTClient_deliveryToken tok;
    MQTTClient_publish(c->client, topic, (int)len, json, 1, 0, &tok);
}

static void ack(ctx *c, gw_state *g, uint64_t epoch, uint64_t seq)
{
    if (c->no_ack) return;
    g->ack_due = 1;
    g->ack_epoch = epoch;
    g->ack_seq = seq;
}

/* Main thread: sends the acks and resend requests the callback decided on.
 * They are copied out under the lock and published after releasing it: the
 * callback holds paho's lock while it waits for ours. */
static void send_replies(ctx *c)
{
    gw_state due[MAX_GW];
    size_t n = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n_gws; i++) {
        gw_state *g = &c->gws[i];
        if (!g->ack_due && !g->resend_due) continue;
        due[n++] = *g;
        g->ack_due = g->resend_due = 0;
    }
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < n; i++) {
        const gw_state *g = &due[i];
        char *json = NULL;
        size_t len;
        if (g->ack_due) {
            if (c->ack_delay_ms > 0) {
                struct timespec ts = {c->ack_delay_ms / 1000, (c->ack_delay_ms % 1000) * 1000000};
                nanosleep(&ts, NULL);
            }
            dcem_wire_ack a = {.epoch = g->ack_epoch, .seq = g->ack_seq};
            if (!dcem_wire_encode_ack(&a, &json, &len))
                publish(c, g->site, g->gateway, "ack", json, len);
            free(json);
        }
        if (g->resend_due) {
            dcem_wire_ctl ctl = {.cmd = DCEM_WIRE_CMD_RESEND, .epoch = g->resend_epoch,
                                 .from_seq = g->resend_seq};
            json = NULL;
            if (!dcem_wire_encode_ctl(&ctl, &json, &len))
                publish(c, g->site, g->gateway, "ctl", json, len);
            free(json);
        }
    }
}

static gw_state *state_of(ctx *c, const char *site, const char *gw)
{
    char key[sizeof c->gws[0].key];
    snprintf(key, sizeof key, "%s/%s", site, gw);
    for (size_t i = 0; i < c->n_gws; i++)
        if (!strcmp(c->gws[i].key, key)) return &c->gws[i];
    if (c->n_gws == MAX_GW) return NULL;
    gw_state *g = &c->gws[c->n_gws++];
    memset(g, 0, sizeof *g);
    snprintf(g->key, sizeof g->key, "%s", key);
    snprintf(g->site, sizeof g->site, "%s", site);
    snprintf(g->gateway, sizeof g->gateway, "%s", gw);
    return g;
}

static void on_lost(void *arg, char *cause)
{
    (void)cause;
    ((ctx *)arg)->lost = 1;
}

static int on_message(void *arg, char *topic, int topic_len, MQTTClient_message *m)
{
    ctx *c = arg;
    dcem_wire_topic_parts tp;
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    dcem_wire_batch b;
    int reason;
    char err[256];
    if (dcem_wire_topic_parse(topic, tl, &tp) || tp.leaf != DCEM_WIRE_DATA ||
        dcem_wire_decode_batch(m->payload, (size_t)m->payloadlen, tp.site, tp.gateway,
                               c->storage, DCEM_WIRE_MAX_READINGS, &b, &reason, err,
                               sizeof err)) {
        c->malformed++;
        fprintf(stderr, "dcem-test-ack: malformed batch on %.*s: %s\n", (int)tl, topic, err);
        goto done;
    }
    c->batches++;
    pthread_mutex_lock(&c->lock);
    gw_state *g = state_of(c, b.site, b.gateway);
    if (!g) goto unlock;
    if (g->epoch != b.epoch) { /* first sight, or a new epoch: start where it starts */
        g->epoch = b.epoch;
        g->expected = b.seq;
    }
    if (b.seq < g->expected) { /* stored already: ack again, store nothing */
        c->duplicates++;
        ack(c, g, b.epoch, g->expected - 1);
    } else if (b.seq > g->expected) { /* a gap: ask for what is missing */
        c->gaps++;
        g->resend_due = 1;
        g->resend_epoch = b.epoch;
        g->resend_seq = g->expected;
    } else {
        for (size_t i = 0; i < b.n_readings; i++) {
            const dcem_wire_reading *r = &b.readings[i];
            char kwh[32] = "null", kw[32] = "null";
            if (r->has_kwh) snprintf(kwh, sizeof kwh, "%.17g", r->kwh);
            if (r->has_kw) snprintf(kw, sizeof kw, "%.17g", r->kw);
            fprintf(c->out,
                    "{\"gateway\":\"%s\",\"epoch\":%llu,\"seq\":%llu,\"meter\":\"%s\","
                    "\"t\":%lld,\"q\":\"%s\",\"kwh\":%s,\"kw\":%s}\n",
                    b.gateway, (unsigned long long)b.epoch, (unsigned long long)b.seq, r->meter,
                    (long long)r->t_ms, dcem_wire_quality_name(r->quality), kwh, kw);
        }
        fflush(c->out);
        fsync(fileno(c->out)); /* durably stored, then acked */
        c->stored++;
        c->readings += b.n_readings;
        g->expected++;
        ack(c, g, b.epoch, b.seq);
    }
unlock:
    pthread_mutex_unlock(&c->lock);
done:
    MQTTClient_freeMessage(&m);
    MQTTClient_free(topic);
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"uri", required_argument, 0, 'u'},
                                         {"out", required_argument, 0, 'o'},
                                         {"ack-delay-ms", required_argument, 0, 'd'},
                                         {"no-ack", no_argument, 0, 'n'},
                                         {"key", required_argument, 0, 'k'},
                                         {0, 0, 0, 0}};
    const char *uri = NULL, *out = NULL, *key = NULL;
    ctx c = {0};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'u') uri = optarg;
        else if (o == 'o') out = optarg;
        else if (o == 'd') c.ack_delay_ms = strtol(optarg, NULL, 10);
        else if (o == 'n') c.no_ack = 1;
        else if (o == 'k') key = optarg;
        else return 2;
    }
    if (!uri || !out) {
        fputs("usage: dcem-test-ack --uri URI --out FILE [--ack-delay-ms N] [--no-ack] "
              "[--key FILE]\n",
              stderr);
        return 2;
    }
    char err[600];
    if (key && dcem_io_load_signer(key, &c.signer, err, sizeof err)) {
        fprintf(stderr, "dcem-test-ack: %s\n", err);
        return 2;
    }
    c.out = fopen(out, "a");
    c.storage = calloc(DCEM_WIRE_MAX_READINGS, sizeof *c.storage);
    if (!c.out || !c.storage) return 1;
    pthread_mutex_init(&c.lock, NULL);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    char id[64];
    snprintf(id, sizeof id, "dcem-test-ack-%d", (int)getpid());
    MQTTClient_create(&c.client, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    MQTTClient_setCallbacks(c.client, &c, on_lost, on_message, NULL);
    int announced = 0;
    while (!stop) {
        if (c.lost || !MQTTClient_isConnected(c.client)) {
            c.lost = 0;
            /* a persistent session, so batches sent while we reconnect wait */
            MQTTClient_connectOptions co = MQTTClient_connectOptions_initializer;
            co.cleansession = 0;
            co.keepAliveInterval = 10;
            if (MQTTClient_connect(c.client, &co) == MQTTCLIENT_SUCCESS &&
                MQTTClient_subscribe(c.client, DCEM_WIRE_FILTER_DATA, 1) == MQTTCLIENT_SUCCESS) {
                if (!announced++) {
                    printf("ready\n");
                    fflush(stdout);
                } else {
                    fprintf(stderr, "dcem-test-ack: reconnected\n");
                }
            } else {
                c.lost = 1; /* try again */
            }
        }
        if (MQTTClient_isConnected(c.client)) send_replies(&c);
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    printf("{\"batches\":%lu,\"stored\":%lu,\"readings\":%lu,\"duplicates\":%lu,\"gaps\":%lu,"
           "\"malformed\":%lu}\n",
           c.batches, c.stored, c.readings, c.duplicates, c.gaps, c.malformed);
    MQTTClient_disconnect(c.client, 1000);
    MQTTClient_destroy(&c.client);
    fclose(c.out);
    free(c.storage);
    dcem_signer_free(c.signer);
    return 0;
}
