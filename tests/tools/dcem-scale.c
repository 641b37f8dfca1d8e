/* dcem-scale — the load generator of the scale benchmark
 * (scripts/bench/scale.sh): many gateways, each reporting its meters every
 * interval, in real time, as agents would.
 *
 *   dcem-scale --uri URI --sites N --gateways G --meters M [--prefix P]
 *              [--interval-s 10] [--duration-s 600] [--backlog-s 3600]
 *              [--window 20] [--epoch E] [--timeout-s T]
 *
 * Sites are P-001 … (P: "sc"), each with G gateways gw-1 … gw-G of M meters
 * each (site meters m00000 …, gateway g holding g*M … g*M+M-1: the ledgers
 * scripts/bench/scale-sites.sh writes). Every gateway has its own MQTT
 * connection and publishes, QoS 1, one batch of its M meters' readings per
 * interval, the gateways' slots spread evenly over the interval.
 *
 * Two phases:
 *   live     --duration-s of wall time. The readings are stamped
 *            --backlog-s behind the wall clock (see below).
 *   backlog  the outage: the batches of the last --backlog-s that the
 *            gateways' spools would hold after a broker outage of that
 *            length — their stamps run from where live stopped up to the
 *            wall clock — published at once, each gateway at most --window
 *            batches ahead of the collector's acks (an agent's
 *            mqtt.inflight). Each meter's readings stay in time order, as
 *            after a real outage; the broker itself stays up (the collector
 *            sees the same messages; only the wall time of the outage is not
 *            spent waiting).
 *
 * A meter's counter grows at a steady power (its kw, 30 % of the rating
 * scale-sites.sh gives its role) from 2026-01-01: kwh = base + kw * hours,
 * rounded to the Wh as meters print it.
 *
 * A resend request (ctl resend from seq F, which a collector sends for a
 * hole it sees — in a shared subscription, often one another member is
 * filling) is answered as the agent answers it: batches F.. of what was
 * published are sent again, the same content.
 *
 * Measured per batch: publish to the arrival of the collector's cumulative
 * ack covering it (an ack means committed). Prints key=value lines: live
 * and backlog batches and readings, latency percentiles of each phase, the
 * backlog's drain time and rate. Exit 0 when every batch was acked within
 * the timeout (after the backlog). */
#include "latency.h"
#include "wire.h"

#include <MQTTAsync.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_GATEWAYS 2000

typedef struct gateway {
    char site[DCEM_ID_MAX], id[DCEM_ID_MAX];
    char data_topic[DCEM_WIRE_TOPIC_MAX];
    MQTTAsync client;
    long meter0;          /* its first meter's number in the site */
    uint64_t published;   /* seqs 1..published handed to paho */
    uint64_t acked;       /* the collector's cumulative ack */
    int64_t *pub_ns;      /* per seq (index seq - 1) */
    int64_t *stamp_ms;    /* per seq: its readings' time */
    uint64_t resend_from; /* a resend asked for from this seq (0: none) */
    int64_t *lat_ns;      /* publish to covering ack; -1 until acked */
    unsigned char *phase; /* 0 live, 1 backlog */
    size_t cap;
    int64_t offset_ns;    /* its slot in the interval */
    int connected, subscribed, failed;
} gateway;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long epoch = 1;
static long meters_per_gw;
static int64_t last_ack_ns;
static size_t resent; /* batches sent again for resend requests */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ns(int64_t ns)
{
    if (ns <= 0) return;
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    nanosleep(&ts, NULL);
}

/* The meter's rating as scale-sites.sh writes it (by its number in the
 * site): facility 4000, it 2000, cooling 2000, green_onsite 500 kW. */
static double rated_kw(long m)
{
    switch (m % 8) {
    case 0: case 1: return 4000;
    case 7: return 500;
    default: return 2000;
    }
}

#define T_START_MS 1767196800000LL /* 2026-01-01T00:00:00+08:00 */

static double kwh_at(long m, int64_t t_ms)
{
    double kw = 0.3 * rated_kw(m);
    double v = 1000.0 + (double)(m % 97) * 10.0 + kw * (double)(t_ms - T_START_MS) / 3.6e6;
    return round(v * 1000.0) / 1000.0;
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    gateway *g = ctx;
    int64_t t = now_ns();
    dcem_wire_ack a;
    dcem_wire_ctl c;
    int reason;
    (void)topic_len;
    size_t tl = strlen(topic);
    if (tl > 4 && !strcmp(topic + tl - 4, "/ctl")) {
        if (!dcem_wire_decode_ctl(m->payload, (size_t)m->payloadlen, &c, &reason, NULL, 0) &&
            c.cmd == DCEM_WIRE_CMD_RESEND && c.epoch == epoch && c.from_seq >= 1) {
            pthread_mutex_lock(&lock);
            if (!g->resend_from || c.from_seq < g->resend_from) g->resend_from = c.from_seq;
            pthread_mutex_unlock(&lock);
        }
    } else if (!dcem_wire_decode_ack(m->payload, (size_t)m->payloadlen, &a, &reason, NULL, 0) &&
               a.epoch == epoch) {
        pthread_mutex_lock(&lock);
        uint64_t seq = a.seq > g->published ? g->published : a.seq;
        for (uint64_t s = g->acked; s < seq; s++)
            if (g->lat_ns[s] < 0) g->lat_ns[s] = t - g->pub_ns[s];
        if (seq > g->acked) {
            g->acked = seq;
            last_ack_ns = t;
        }
        pthread_mutex_unlock(&lock);
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static void flag(int *what)
{
    pthread_mutex_lock(&lock);
    *what = 1;
    pthread_mutex_unlock(&lock);
}

static void on_connected(void *ctx, MQTTAsync_successData *d)
{
    gateway *g = ctx;
    (void)d;
    flag(&g->connected);
}

static void on_subscribed(void *ctx, MQTTAsync_successData *d)
{
    gateway *g = ctx;
    (void)d;
    flag(&g->subscribed);
}

static void on_failure(void *ctx, MQTTAsync_failureData *d)
{
    gateway *g = ctx;
    fprintf(stderr, "dcem-scale: %s/%s: connect, subscribe or publish failed: %d\n", g->site, g->id,
            d ? d->code : 0);
    flag(&g->failed);
}

static void on_lost(void *ctx, char *cause)
{
    gateway *g = ctx;
    fprintf(stderr, "dcem-scale: %s/%s: connection lost%s%s\n", g->site, g->id, cause ? ": " : "",
            cause ? cause : "");
    flag(&g->failed);
}

/* Sends batch seq of g, its readings stamped stamp_ms. */
static int send_batch(gateway *g, uint64_t seq, int64_t stamp_ms, dcem_wire_reading *rs)
{
    for (long k = 0; k < meters_per_gw; k++) {
        dcem_wire_reading *r = &rs[k];
        long m = g->meter0 + k;
        memset(r, 0, sizeof *r);
        snprintf(r->meter, sizeof r->meter, "m%05ld", m);
        r->t_ms = stamp_ms;
        r->quality = DCEM_WIRE_Q_OK;
        r->has_kwh = r->has_kw = 1;
        r->kwh = kwh_at(m, stamp_ms);
        r->kw = 0.3 * rated_kw(m);
    }
    dcem_wire_batch b = {.epoch = epoch, .seq = seq, .readings = rs,
                         .n_readings = (size_t)meters_per_gw};
    snprintf(b.site, sizeof b.site, "%s", g->site);
    snprintf(b.gateway, sizeof b.gateway, "%s", g->id);
    char *json;
    size_t len;
    if (dcem_wire_encode_batch(&b, &json, &len)) {
        fprintf(stderr, "dcem-scale: cannot encode a batch\n");
        return -1;
    }
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onFailure = on_failure;
    ro.context = g;
    int rc;
    while ((rc = MQTTAsync_send(g->client, g->data_topic, (int)len, json, 1, 0, &ro)) ==
           MQTTASYNC_MAX_BUFFERED_MESSAGES)
        sleep_ns(1000000);
    free(json);
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "dcem-scale: %s/%s: publish: %d\n", g->site, g->id, rc);
        return -1;
    }
    return 0;
}

/* Publishes g's next batch, its readings stamped stamp_ms. Caller does not
 * hold the lock. */
static int publish(gateway *g, int64_t stamp_ms, int phase, dcem_wire_reading *rs)
{
    uint64_t seq = g->published + 1;
    if (seq > g->cap) {
        fprintf(stderr, "dcem-scale: %s/%s: more batches than planned\n", g->site, g->id);
        return -1;
    }
    pthread_mutex_lock(&lock);
    g->pub_ns[seq - 1] = now_ns();
    g->stamp_ms[seq - 1] = stamp_ms;
    g->phase[seq - 1] = (unsigned char)phase;
    g->published = seq;
    pthread_mutex_unlock(&lock);
    if (send_batch(g, seq, stamp_ms, rs)) return -1;
    return 0;
}

/* Latency figures of one phase, of its batches from seq index `from` on
 * (0: all of them). Caller holds the lock. */
static void report(const char *name, gateway *gws, size_t n_gw, int phase, uint64_t from)
{
    size_t n = 0, acked = 0;
    for (size_t i = 0; i < n_gw; i++)
        for (uint64_t s = from; s < gws[i].published; s++) n += gws[i].phase[s] == phase;
    int64_t *lat = malloc((n ? n : 1) * sizeof *lat);
    if (!lat) return;
    for (size_t i = 0; i < n_gw; i++)
        for (uint64_t s = from; s < gws[i].published; s++)
            if (gws[i].phase[s] == phase && gws[i].lat_ns[s] >= 0) lat[acked++] = gws[i].lat_ns[s];
    qsort(lat, acked, sizeof *lat, dcem_cmp_i64);
    printf("%s_batches=%zu %s_readings=%zu %s_acked=%zu %s_p50_ms=%.1f %s_p99_ms=%.1f "
           "%s_max_ms=%.1f\n",
           name, n, name, n * (size_t)meters_per_gw, name, acked, name, dcem_pct_ms(lat, acked, 50),
           name, dcem_pct_ms(lat, acked, 99), name, acked ? (double)lat[acked - 1] / 1e6 : 0.0);
    free(lat);
}

/* The live phase's p99 round by round (round k: every gateway's seq k):
 * a warm-up, a checkpoint or a stall shows where it happened. Caller holds
 * the lock. */
static void report_rounds(gateway *gws, size_t n_gw)
{
    int64_t *lat = malloc((n_gw ? n_gw : 1) * sizeof *lat);
    if (!lat) return;
    printf("live_round_p99_ms=");
    for (uint64_t s = 0;; s++) {
        size_t n = 0;
        for (size_t i = 0; i < n_gw; i++)
            if (s < gws[i].published && gws[i].phase[s] == 0 && gws[i].lat_ns[s] >= 0)
                lat[n++] = gws[i].lat_ns[s];
        if (!n) break;
        qsort(lat, n, sizeof *lat, dcem_cmp_i64);
        printf("%s%.0f", s ? "," : "", dcem_pct_ms(lat, n, 99));
    }
    printf("\n");
    free(lat);
}

/* Answers g's resend request, if any: batches from..published again. */
static int answer_resend(gateway *g, dcem_wire_reading *rs)
{
    pthread_mutex_lock(&lock);
    uint64_t from = g->resend_from, to = g->published;
    g->resend_from = 0;
    pthread_mutex_unlock(&lock);
    for (uint64_t seq = from; from && seq <= to; seq++) {
        if (send_batch(g, seq, g->stamp_ms[seq - 1], rs)) return -1;
        pthread_mutex_lock(&lock);
        resent++;
        pthread_mutex_unlock(&lock);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"uri", required_argument, 0, 'u'},        {"sites", required_argument, 0, 's'},
        {"gateways", required_argument, 0, 'g'},   {"meters", required_argument, 0, 'm'},
        {"prefix", required_argument, 0, 'p'},     {"interval-s", required_argument, 0, 'i'},
        {"duration-s", required_argument, 0, 'd'}, {"backlog-s", required_argument, 0, 'b'},
        {"window", required_argument, 0, 'w'},     {"epoch", required_argument, 0, 'e'},
        {"timeout-s", required_argument, 0, 't'},  {0, 0, 0, 0}};
    const char *uri = NULL, *prefix = "sc";
    long n_sites = 0, gw_per_site = 0, interval_s = 10, duration_s = 600, backlog_s = 3600;
    long window = 20, timeout_s = 1800;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'u') uri = optarg;
        else if (o == 's') n_sites = strtol(optarg, NULL, 10);
        else if (o == 'g') gw_per_site = strtol(optarg, NULL, 10);
        else if (o == 'm') meters_per_gw = strtol(optarg, NULL, 10);
        else if (o == 'p') prefix = optarg;
        else if (o == 'i') interval_s = strtol(optarg, NULL, 10);
        else if (o == 'd') duration_s = strtol(optarg, NULL, 10);
        else if (o == 'b') backlog_s = strtol(optarg, NULL, 10);
        else if (o == 'w') window = strtol(optarg, NULL, 10);
        else if (o == 'e') epoch = strtoull(optarg, NULL, 10);
        else if (o == 't') timeout_s = strtol(optarg, NULL, 10);
        else return 2;
    }
    long n_gw = n_sites * gw_per_site;
    if (!uri || n_sites < 1 || gw_per_site < 1 || n_gw > MAX_GATEWAYS || meters_per_gw < 1 ||
        meters_per_gw > DCEM_WIRE_SAFE_READINGS || interval_s < 1 || duration_s < interval_s ||
        backlog_s < 0 || window < 1 || epoch < 1 || timeout_s < 1) {
        fputs("usage: dcem-scale --uri URI --sites N --gateways G --meters M<=250 [--prefix P] "
              "[--interval-s 10] [--duration-s 600] [--backlog-s 3600] [--window 20] "
              "[--epoch E] [--timeout-s T]   (N * G <= 2000)\n",
              stderr);
        return 2;
    }
    long live_n = duration_s / interval_s, backlog_n = backlog_s / interval_s;
    gateway *gws = calloc((size_t)n_gw, sizeof *gws);
    dcem_wire_reading *rs = calloc((size_t)meters_per_gw, sizeof *rs);
    if (!gws || !rs) return 1;
    for (long i = 0; i < n_gw; i++) {
        gateway *g = &gws[i];
        snprintf(g->site, sizeof g->site, "%s-%03ld", prefix, i / gw_per_site + 1);
        snprintf(g->id, sizeof g->id, "gw-%ld", i % gw_per_site + 1);
        g->meter0 = (i % gw_per_site) * meters_per_gw;
        g->cap = (size_t)(live_n + backlog_n + 2);
        g->pub_ns = calloc(g->cap, sizeof *g->pub_ns);
        g->stamp_ms = calloc(g->cap, sizeof *g->stamp_ms);
        g->lat_ns = malloc(g->cap * sizeof *g->lat_ns);
        g->phase = calloc(g->cap, 1);
        if (!g->pub_ns || !g->stamp_ms || !g->lat_ns || !g->phase) return 1;
        for (size_t s = 0; s < g->cap; s++) g->lat_ns[s] = -1;
        g->offset_ns = (int64_t)interval_s * 1000000000 * i / n_gw;
        if (dcem_wire_topic(g->data_topic, sizeof g->data_topic, g->site, g->id, "data"))
            return fprintf(stderr, "dcem-scale: bad site or gateway id\n"), 2;
        char id[2 * DCEM_ID_MAX + 16];
        snprintf(id, sizeof id, "dcem-scale-%s-%s", g->site, g->id);
        MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
        co.maxBufferedMessages = (int)window + 100;
        if (MQTTAsync_createWithOptions(&g->client, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                        &co) != MQTTASYNC_SUCCESS ||
            MQTTAsync_setCallbacks(g->client, g, on_lost, on_message, NULL) != MQTTASYNC_SUCCESS)
            return fprintf(stderr, "dcem-scale: cannot create a client for %s\n", uri), 1;
        MQTTAsync_connectOptions c = MQTTAsync_connectOptions_initializer;
        c.cleansession = 1;
        c.keepAliveInterval = 60;
        c.maxInflight = (int)window + 10;
        c.onSuccess = on_connected;
        c.onFailure = on_failure;
        c.context = g;
        if (MQTTAsync_connect(g->client, &c) != MQTTASYNC_SUCCESS)
            return fprintf(stderr, "dcem-scale: cannot connect to %s\n", uri), 1;
    }
    /* every gateway connected and subscribed to its acks before the clock */
    int64_t deadline = now_ns() + (int64_t)60 * 1000000000;
    for (long i = 0; i < n_gw; i++) {
        gateway *g = &gws[i];
        int ok = 0;
        while (now_ns() < deadline) {
            pthread_mutex_lock(&lock);
            ok = g->failed ? -1 : g->connected;
            pthread_mutex_unlock(&lock);
            if (ok) break;
            sleep_ns(5000000);
        }
        if (ok != 1) return fprintf(stderr, "dcem-scale: %s/%s not connected\n", g->site, g->id), 1;
        char ack[DCEM_WIRE_TOPIC_MAX], ctl[DCEM_WIRE_TOPIC_MAX];
        dcem_wire_topic(ack, sizeof ack, g->site, g->id, "ack");
        dcem_wire_topic(ctl, sizeof ctl, g->site, g->id, "ctl");
        char *topics[2] = {ack, ctl};
        int qos[2] = {1, 1};
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        ro.onSuccess = on_subscribed;
        ro.onFailure = on_failure;
        ro.context = g;
        if (MQTTAsync_subscribeMany(g->client, 2, topics, qos, &ro) != MQTTASYNC_SUCCESS)
            return fprintf(stderr, "dcem-scale: cannot subscribe\n"), 1;
    }
    for (long i = 0; i < n_gw; i++) {
        int ok = 0;
        while (now_ns() < deadline) {
            pthread_mutex_lock(&lock);
            ok = gws[i].failed ? -1 : gws[i].subscribed;
            pthread_mutex_unlock(&lock);
            if (ok) break;
            sleep_ns(5000000);
        }
        if (ok != 1) return fprintf(stderr, "dcem-scale: %s not subscribed\n", gws[i].id), 1;
    }

    /* live: batch k of every gateway at t0 + k * interval + its offset,
     * stamped backlog_s behind the wall clock */
    const int64_t iv_ns = (int64_t)interval_s * 1000000000, iv_ms = interval_s * 1000;
    int64_t stamp0 = (wall_ms() / iv_ms + 1) * iv_ms - backlog_s * 1000;
    int64_t t0 = now_ns() + (int64_t)(stamp0 + backlog_s * 1000 - wall_ms()) * 1000000;
    fprintf(stderr, "dcem-scale: %ld gateways, %ld meters, a batch each every %ld s: live for %ld s\n",
            n_gw, n_gw * meters_per_gw, interval_s, duration_s);
    size_t stalls = 0;
    for (long k = 0; k < live_n; k++) {
        for (long i = 0; i < n_gw; i++) {
            gateway *g = &gws[i];
            sleep_ns(t0 + k * iv_ns + g->offset_ns - now_ns());
            pthread_mutex_lock(&lock);
            int behind = g->published - g->acked >= (uint64_t)window;
            int failed = g->failed;
            pthread_mutex_unlock(&lock);
            if (failed) return 1;
            if (behind) stalls++; /* an agent would keep it in its spool: sent later */
            if (answer_resend(g, rs) || publish(g, stamp0 + k * iv_ms, 0, rs)) return 1;
        }
    }
    int64_t live_end = now_ns();
    /* wait for the live phase's acks (a few seconds) before the backlog */
    while (now_ns() < live_end + (int64_t)30 * 1000000000) {
        int all = 1;
        for (long i = 0; i < n_gw; i++)
            if (answer_resend(&gws[i], rs)) return 1;
        pthread_mutex_lock(&lock);
        for (long i = 0; i < n_gw && all; i++) all = gws[i].acked == gws[i].published;
        pthread_mutex_unlock(&lock);
        if (all) break;
        sleep_ns(10000000);
    }
    pthread_mutex_lock(&lock);
    report("live", gws, (size_t)n_gw, 0, 0);
    /* after the first minute, when a new store has met every meter */
    report("live_warm", gws, (size_t)n_gw, 0, (uint64_t)((60 + interval_s - 1) / interval_s));
    report_rounds(gws, (size_t)n_gw);
    printf("live_stalls=%zu live_end_ms=%lld\n", stalls, (long long)wall_ms());
    pthread_mutex_unlock(&lock);
    fflush(stdout);

    /* backlog: what the spools hold after the outage, each gateway at
     * most `window` ahead of the acks */
    int64_t b0 = now_ns(), end_by = b0 + (int64_t)timeout_s * 1000000000;
    long *next = calloc((size_t)n_gw, sizeof *next);
    if (!next) return 1;
    long left = n_gw * backlog_n;
    fprintf(stderr, "dcem-scale: backlog: %ld batches (%ld s of every gateway)\n", left, backlog_s);
    while (left && now_ns() < end_by) {
        int sent = 0;
        for (long i = 0; i < n_gw; i++) {
            gateway *g = &gws[i];
            if (answer_resend(g, rs)) return 1;
            if (next[i] == backlog_n) continue;
            pthread_mutex_lock(&lock);
            int room = g->published - g->acked < (uint64_t)window, failed = g->failed;
            pthread_mutex_unlock(&lock);
            if (failed) return 1;
            if (!room) continue;
            if (publish(g, stamp0 + (live_n + next[i]) * iv_ms, 1, rs)) return 1;
            next[i]++, left--, sent = 1;
        }
        if (!sent) sleep_ns(1000000);
    }
    int all = 0;
    while (!all && now_ns() < end_by) {
        all = 1;
        for (long i = 0; i < n_gw; i++)
            if (answer_resend(&gws[i], rs)) return 1;
        pthread_mutex_lock(&lock);
        for (long i = 0; i < n_gw && all; i++) all = gws[i].acked == gws[i].published;
        pthread_mutex_unlock(&lock);
        if (!all) sleep_ns(10000000);
    }
    pthread_mutex_lock(&lock);
    report("backlog", gws, (size_t)n_gw, 1, 0);
    double drain_s = (double)(last_ack_ns - b0) / 1e9;
    size_t backlog_readings = (size_t)(n_gw * backlog_n * meters_per_gw);
    printf("backlog_drain_s=%.1f backlog_rate=%.0f\n", backlog_n ? drain_s : 0.0,
           backlog_n && drain_s > 0 ? (double)backlog_readings / drain_s : 0.0);
    size_t total = 0, unacked = 0;
    for (long i = 0; i < n_gw; i++) {
        total += gws[i].published;
        unacked += gws[i].published - gws[i].acked;
    }
    printf("batches=%zu readings=%zu unacked=%zu resent=%zu stamp_from_ms=%lld stamp_to_ms=%lld\n",
           total, total * (size_t)meters_per_gw, unacked, resent, (long long)stamp0,
           (long long)(stamp0 + (live_n + backlog_n - 1) * iv_ms));
    pthread_mutex_unlock(&lock);
    for (long i = 0; i < n_gw; i++) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.timeout = 1000;
        MQTTAsync_disconnect(gws[i].client, &d);
    }
    sleep_ns(200000000);
    for (long i = 0; i < n_gw; i++) MQTTAsync_destroy(&gws[i].client);
    return unacked ? 1 : 0;
}
