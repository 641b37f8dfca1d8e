/* dcem-replay — plays an agent in the collector's tests: reads a readings
 * CSV (time,meter,kwh — dcem-gen's or an export) and publishes it as wire
 * batches of one gateway, in seq order, QoS 1, then waits until the
 * collector has acknowledged the last one. Like an agent, it publishes
 * again from the seq a `resend` on its ctl topic names, and from the first
 * unacknowledged batch when no ack came for 10 s (a batch the collector
 * received but lost, killed before storing it, is asked for again).
 *
 *   dcem-replay --uri URI --site S --gateway G --csv FILE [--epoch E]
 *               [--batch N] [--timeout-s N]
 * Exit 0 when every batch was acked; prints "acked EPOCH SEQ". */
#include "parse.h"
#include "wire.h"

#include <MQTTClient.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RESEND_AFTER_MS 10000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t acked, resend_from; /* under lock; resend_from 0: none asked */
static unsigned long long epoch = 1;

static int on_message(void *ctx, char *topic, int tl, MQTTClient_message *m)
{
    (void)ctx;
    (void)tl;
    dcem_wire_ack a;
    dcem_wire_ctl c;
    int reason;
    char err[128];
    size_t len = (size_t)m->payloadlen;
    pthread_mutex_lock(&lock);
    if (strstr(topic, "/ack")) {
        if (!dcem_wire_decode_ack(m->payload, len, &a, &reason, err, sizeof err) &&
            a.epoch == epoch && a.seq > acked)
            acked = a.seq;
    } else if (!dcem_wire_decode_ctl(m->payload, len, &c, &reason, err, sizeof err) &&
               c.cmd == DCEM_WIRE_CMD_RESEND && c.epoch == epoch &&
               (!resend_from || c.from_seq < resend_from)) {
        resend_from = c.from_seq;
    }
    pthread_mutex_unlock(&lock);
    MQTTClient_freeMessage(&m);
    MQTTClient_free(topic);
    return 1;
}

static uint64_t get_acked(void)
{
    pthread_mutex_lock(&lock);
    uint64_t a = acked;
    pthread_mutex_unlock(&lock);
    return a;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every batch published so far, encoded, by seq (1-based). */
static char **payloads;
static size_t *lengths;
static const char *data_topic;

static void publish(MQTTClient client, uint64_t seq)
{
    MQTTClient_deliveryToken tok;
    while (MQTTClient_publish(client, data_topic, (int)lengths[seq - 1], payloads[seq - 1], 1, 0,
                              &tok) != MQTTCLIENT_SUCCESS) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    MQTTClient_waitForCompletion(client, tok, 10000);
}

/* Publishes again what the collector asked for, or everything unacked
 * after RESEND_AFTER_MS without progress; *progress_ms tracks the acks. */
static void serve_resends(MQTTClient client, uint64_t seq, uint64_t *last_acked,
                          int64_t *progress_ms)
{
    pthread_mutex_lock(&lock);
    uint64_t from = resend_from, a = acked;
    resend_from = 0;
    pthread_mutex_unlock(&lock);
    int64_t now = mono_ms();
    if (a != *last_acked) *last_acked = a, *progress_ms = now;
    if (!from && a < seq && now - *progress_ms > RESEND_AFTER_MS) from = a + 1;
    if (!from) return;
    if (from <= a) from = a + 1;
    for (uint64_t s = from; s <= seq; s++) publish(client, s);
    *progress_ms = now;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"uri", required_argument, 0, 'u'},   {"site", required_argument, 0, 's'},
        {"gateway", required_argument, 0, 'g'}, {"csv", required_argument, 0, 'c'},
        {"epoch", required_argument, 0, 'e'}, {"batch", required_argument, 0, 'b'},
        {"timeout-s", required_argument, 0, 't'}, {0, 0, 0, 0}};
    const char *uri = NULL, *site = NULL, *gw = NULL, *csv = NULL;
    long batch = 250, timeout_s = 120;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'u') uri = optarg;
        else if (o == 's') site = optarg;
        else if (o == 'g') gw = optarg;
        else if (o == 'c') csv = optarg;
        else if (o == 'e') epoch = strtoull(optarg, NULL, 10);
        else if (o == 'b') batch = strtol(optarg, NULL, 10);
        else if (o == 't') timeout_s = strtol(optarg, NULL, 10);
        else return 2;
    }
    if (!uri || !site || !gw || !csv || batch < 1 || batch > DCEM_WIRE_SAFE_READINGS) {
        fputs("usage: dcem-replay --uri URI --site S --gateway G --csv FILE [--epoch E] "
              "[--batch N<=250] [--timeout-s N]\n",
              stderr);
        return 2;
    }
    FILE *f = fopen(csv, "r");
    dcem_wire_reading *rs = calloc((size_t)batch, sizeof *rs);
    if (!f || !rs) return 1;
    MQTTClient client;
    char id[64], ack_topic[DCEM_WIRE_TOPIC_MAX], ctl_topic[DCEM_WIRE_TOPIC_MAX];
    static char data[DCEM_WIRE_TOPIC_MAX];
    snprintf(id, sizeof id, "dcem-replay-%s-%s", site, gw); /* one per gateway of a site */
    dcem_wire_topic(ack_topic, sizeof ack_topic, site, gw, "ack");
    dcem_wire_topic(ctl_topic, sizeof ctl_topic, site, gw, "ctl");
    dcem_wire_topic(data, sizeof data, site, gw, "data");
    data_topic = data;
    MQTTClient_create(&client, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    MQTTClient_setCallbacks(client, NULL, NULL, on_message, NULL);
    MQTTClient_connectOptions co = MQTTClient_connectOptions_initializer;
    if (MQTTClient_connect(client, &co) != MQTTCLIENT_SUCCESS ||
        MQTTClient_subscribe(client, ack_topic, 1) != MQTTCLIENT_SUCCESS ||
        MQTTClient_subscribe(client, ctl_topic, 1) != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "dcem-replay: cannot connect to %s\n", uri);
        return 1;
    }
    char line[512];
    uint64_t seq = 0, last_acked = 0;
    int64_t progress_ms = mono_ms();
    size_t n = 0, cap = 0;
    int eof = 0;
    if (!fgets(line, sizeof line, f)) return 1; /* header */
    while (!eof) {
        eof = !fgets(line, sizeof line, f);
        if (!eof) {
            char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
            if (!c2) continue;
            size_t vl = strcspn(c2 + 1, ",\r\n");
            dcem_wire_reading *r = &rs[n];
            memset(r, 0, sizeof *r);
            if (dcem_parse_time(line, (size_t)(c1 - line), &r->t_ms) ||
                (size_t)(c2 - c1 - 1) >= sizeof r->meter ||
                dcem_parse_double(c2 + 1, vl, &r->kwh))
                continue;
            memcpy(r->meter, c1 + 1, (size_t)(c2 - c1 - 1));
            r->has_kwh = 1;
            n++;
        }
        if (n == (size_t)batch || (eof && n)) {
            dcem_wire_batch b = {.epoch = epoch, .seq = ++seq, .readings = rs, .n_readings = n};
            snprintf(b.site, sizeof b.site, "%s", site);
            snprintf(b.gateway, sizeof b.gateway, "%s", gw);
            if (seq > cap) {
                cap = cap ? 2 * cap : 256;
                payloads = realloc(payloads, cap * sizeof *payloads);
                lengths = realloc(lengths, cap * sizeof *lengths);
                if (!payloads || !lengths) return 1;
            }
            if (dcem_wire_encode_batch(&b, &payloads[seq - 1], &lengths[seq - 1])) return 1;
            publish(client, seq);
            n = 0;
            /* keep at most 100 batches ahead of the collector's acks */
            for (int i = 0; seq > get_acked() + 100 && i < 100 * timeout_s; i++) {
                struct timespec ts = {0, 10000000};
                nanosleep(&ts, NULL);
                serve_resends(client, seq, &last_acked, &progress_ms);
            }
            serve_resends(client, seq, &last_acked, &progress_ms);
        }
    }
    for (int i = 0; get_acked() < seq && i < 100 * timeout_s; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        serve_resends(client, seq, &last_acked, &progress_ms);
    }
    uint64_t done = get_acked();
    printf("acked %llu %llu of %llu\n", epoch, (unsigned long long)done, (unsigned long long)seq);
    MQTTClient_disconnect(client, 1000);
    MQTTClient_destroy(&client);
    fclose(f);
    free(rs);
    for (uint64_t i = 0; i < seq; i++) free(payloads[i]);
    free(payloads);
    free(lengths);
    return done == seq ? 0 : 1;
}
