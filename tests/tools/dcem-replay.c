/* dcem-replay — plays an agent in the collector's tests: reads a readings
 * CSV (time,meter,kwh — dcem-gen's or an export) and publishes it as wire
 * batches of one gateway, in seq order, QoS 1, then waits until the
 * collector has acknowledged the last one.
 *
 *   dcem-replay --uri URI --site S --gateway G --csv FILE [--epoch E]
 *               [--batch N] [--timeout-s N]
 * Exit 0 when every batch was acked; prints "acked EPOCH SEQ". */
#include "parse.h"
#include "wire.h"

#include <MQTTClient.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile uint64_t acked;

static int on_message(void *ctx, char *topic, int tl, MQTTClient_message *m)
{
    (void)ctx;
    (void)tl;
    dcem_wire_ack a;
    int reason;
    char err[128];
    if (!dcem_wire_decode_ack(m->payload, (size_t)m->payloadlen, &a, &reason, err, sizeof err) &&
        a.seq > acked)
        acked = a.seq;
    MQTTClient_freeMessage(&m);
    MQTTClient_free(topic);
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"uri", required_argument, 0, 'u'},   {"site", required_argument, 0, 's'},
        {"gateway", required_argument, 0, 'g'}, {"csv", required_argument, 0, 'c'},
        {"epoch", required_argument, 0, 'e'}, {"batch", required_argument, 0, 'b'},
        {"timeout-s", required_argument, 0, 't'}, {0, 0, 0, 0}};
    const char *uri = NULL, *site = NULL, *gw = NULL, *csv = NULL;
    unsigned long long epoch = 1;
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
    char id[64], ack_topic[DCEM_WIRE_TOPIC_MAX], data_topic[DCEM_WIRE_TOPIC_MAX];
    snprintf(id, sizeof id, "dcem-replay-%s", gw);
    dcem_wire_topic(ack_topic, sizeof ack_topic, site, gw, "ack");
    dcem_wire_topic(data_topic, sizeof data_topic, site, gw, "data");
    MQTTClient_create(&client, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    MQTTClient_setCallbacks(client, NULL, NULL, on_message, NULL);
    MQTTClient_connectOptions co = MQTTClient_connectOptions_initializer;
    if (MQTTClient_connect(client, &co) != MQTTCLIENT_SUCCESS ||
        MQTTClient_subscribe(client, ack_topic, 1) != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "dcem-replay: cannot connect to %s\n", uri);
        return 1;
    }
    char line[512];
    uint64_t seq = 0;
    size_t n = 0;
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
            char *json;
            size_t len;
            if (dcem_wire_encode_batch(&b, &json, &len)) return 1;
            MQTTClient_deliveryToken tok;
            while (MQTTClient_publish(client, data_topic, (int)len, json, 1, 0, &tok) !=
                   MQTTCLIENT_SUCCESS) {
                struct timespec ts = {0, 10000000};
                nanosleep(&ts, NULL);
            }
            MQTTClient_waitForCompletion(client, tok, 10000);
            free(json);
            n = 0;
            /* keep at most 100 batches ahead of the collector's acks */
            for (int i = 0; seq > acked + 100 && i < 100 * timeout_s; i++) {
                struct timespec ts = {0, 10000000};
                nanosleep(&ts, NULL);
            }
        }
    }
    for (int i = 0; acked < seq && i < 100 * timeout_s; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    printf("acked %llu %llu of %llu\n", epoch, (unsigned long long)acked, (unsigned long long)seq);
    MQTTClient_disconnect(client, 1000);
    MQTTClient_destroy(&client);
    fclose(f);
    free(rs);
    return acked == seq ? 0 : 1;
}
