/* dcem-blast — the load generator of the collector benchmark
 * (scripts/bench/collector.sh): reads a readings CSV (time,meter,kwh, as
 * dcem-gen writes it), shares the meters out over G gateways (each meter
 * always on the same one, so its readings stay in time order), encodes every
 * gateway's wire batches before the clock starts, then publishes them QoS 1
 * from G MQTT connections, either as fast as each gateway's window of
 * unacknowledged batches allows, or at a steady rate. It measures, per
 * batch, the time from its publish to the arrival of the collector's
 * cumulative ack that covers it (an ack means durably stored).
 *
 * dcem-replay (one gateway, one batch at a time, each waiting for the
 * broker's PUBACK in paho's synchronous client, which polls every 100 ms) is
 * too slow for this; paho's asynchronous client queues publishes without
 * waiting.
 *
 *   dcem-blast --uri URI --site S --csv FILE [--gateways G] [--batch N]
 *              [--window W] [--rate R] [--epoch E] [--prefix P]
 *              [--no-ack [--repeat N]] [--timeout-s T] [--keys DIR]
 *
 * Gateways are P-01, P-02, ... (P: "gw-blast"). --window: unacknowledged
 * batches per gateway (default 20); --rate: readings/s over all gateways
 * (default 0: as fast as the windows allow); --no-ack: nobody acks (the
 * broker-only ceiling): the window then counts batches the broker has not
 * PUBACKed, and --repeat publishes the batches N times over. --keys: every
 * batch is signed, before the clock starts, with the gateway's private key
 * DIR/<gateway>.pem (as `dcem-agent --keygen` writes it; the ledger lists
 * its public key), so that the collector verifies each. Prints one line
 * of key=value figures (latencies from each batch's first publish); exit 0
 * when every batch was acked (or PUBACKed) within the timeout. */
#include "dcem_io.h"
#include "parse.h"
#include "sign.h"
#include "latency.h"
#include "wire.h"

#include <MQTTAsync.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_GATEWAYS 64
#define MAX_METERS 4096

typedef struct row {
    int64_t t_ms;
    double kwh;
    int meter;
} row;

typedef struct gateway gateway;

/* What a publish's callbacks are told: which batch of which gateway. */
typedef struct pub_ctx {
    gateway *g;
    size_t index;
} pub_ctx;

struct gateway {
    char id[DCEM_ID_MAX];
    char data_topic[DCEM_WIRE_TOPIC_MAX];
    MQTTAsync client;
    row *rows;
    size_t n_rows, cap_rows;
    char **json;        /* encoded batches, seq i + 1 at [i] */
    size_t *len, *n_readings;
    size_t n_batches;
    size_t total;       /* publishes: n_batches x --repeat */
    int64_t *pub_ns;    /* publish time of each batch */
    int64_t *lat_ns;    /* publish to covering ack; -1 until acked */
    pub_ctx *ctx;
    size_t published;   /* batches handed to paho */
    size_t done;        /* batches acked (by the collector, or the broker with --no-ack) */
    size_t done_readings;
    int connected, subscribed, failed;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t progress = PTHREAD_COND_INITIALIZER;
static char meters[MAX_METERS][DCEM_ID_MAX];
static size_t n_meters;
static unsigned long long epoch = 1;
static int no_ack;
static long repeat = 1;
static int64_t last_done_ns;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Batches 1..seq of g are done at t: their latencies are set. Caller locks. */
static void mark_done(gateway *g, size_t seq, int64_t t)
{
    if (seq > g->n_batches) seq = g->n_batches;
    for (size_t i = g->done; i < seq; i++) {
        if (g->lat_ns[i] < 0) g->lat_ns[i] = t - g->pub_ns[i];
        g->done_readings += g->n_readings[i];
    }
    if (seq > g->done) {
        g->done = seq;
        last_done_ns = t;
        pthread_cond_broadcast(&progress);
    }
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    gateway *g = ctx;
    int64_t t = now_ns();
    dcem_wire_ack a;
    int reason;
    (void)topic_len;
    if (!dcem_wire_decode_ack(m->payload, (size_t)m->payloadlen, &a, &reason, NULL, 0) &&
        a.epoch == epoch) {
        pthread_mutex_lock(&lock);
        mark_done(g, (size_t)a.seq, t);
        pthread_mutex_unlock(&lock);
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

/* --no-ack: the broker's PUBACK of one batch. */
static void on_puback(void *ctx, MQTTAsync_successData *d)
{
    pub_ctx *p = ctx;
    int64_t t = now_ns();
    (void)d;
    pthread_mutex_lock(&lock);
    gateway *g = p->g;
    if (g->lat_ns[p->index] < 0) g->lat_ns[p->index] = t - g->pub_ns[p->index];
    g->done++;
    g->done_readings += g->n_readings[p->index];
    last_done_ns = t;
    pthread_cond_broadcast(&progress);
    pthread_mutex_unlock(&lock);
}

static void on_pub_failure(void *ctx, MQTTAsync_failureData *d)
{
    pub_ctx *p = ctx;
    fprintf(stderr, "dcem-blast: %s: publish failed: %d\n", p->g->id, d ? d->code : 0);
    pthread_mutex_lock(&lock);
    p->g->failed = 1;
    pthread_cond_broadcast(&progress);
    pthread_mutex_unlock(&lock);
}

static void on_subscribed(void *ctx, MQTTAsync_successData *d)
{
    gateway *g = ctx;
    (void)d;
    pthread_mutex_lock(&lock);
    g->subscribed = 1;
    pthread_cond_broadcast(&progress);
    pthread_mutex_unlock(&lock);
}

static void on_failure(void *ctx, MQTTAsync_failureData *d)
{
    gateway *g = ctx;
    fprintf(stderr, "dcem-blast: %s: connect or subscribe failed: %d %s\n", g->id,
            d ? d->code : 0, d && d->message ? d->message : "");
    pthread_mutex_lock(&lock);
    g->failed = 1;
    pthread_cond_broadcast(&progress);
    pthread_mutex_unlock(&lock);
}

static void on_connected(void *ctx, MQTTAsync_successData *d)
{
    gateway *g = ctx;
    (void)d;
    pthread_mutex_lock(&lock);
    g->connected = 1;
    pthread_cond_broadcast(&progress);
    pthread_mutex_unlock(&lock);
}

static void on_lost(void *ctx, char *cause)
{
    gateway *g = ctx;
    fprintf(stderr, "dcem-blast: %s: connection lost%s%s\n", g->id, cause ? ": " : "",
            cause ? cause : "");
    pthread_mutex_lock(&lock);
    g->failed = 1;
    pthread_cond_broadcast(&progress);
    pthread_mutex_unlock(&lock);
}

static int meter_index(const char *id, size_t len)
{
    for (size_t i = 0; i < n_meters; i++)
        if (strlen(meters[i]) == len && !memcmp(meters[i], id, len)) return (int)i;
    if (n_meters == MAX_METERS || len >= DCEM_ID_MAX) return -1;
    memcpy(meters[n_meters], id, len);
    meters[n_meters][len] = '\0';
    return (int)n_meters++;
}

static int load_csv(const char *path, gateway *gws, size_t n_gw, size_t *n_rows)
{
    FILE *f = fopen(path, "r");
    char line[512];
    if (!f || !fgets(line, sizeof line, f)) return -1; /* header */
    *n_rows = 0;
    while (fgets(line, sizeof line, f)) {
        char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        if (!c2) continue;
        row r;
        if (dcem_parse_time(line, (size_t)(c1 - line), &r.t_ms) ||
            dcem_parse_double(c2 + 1, strcspn(c2 + 1, ",\r\n"), &r.kwh) ||
            (r.meter = meter_index(c1 + 1, (size_t)(c2 - c1 - 1))) < 0) {
            fprintf(stderr, "dcem-blast: %s: bad row: %s", path, line);
            fclose(f);
            return -1;
        }
        gateway *g = &gws[(size_t)r.meter % n_gw];
        if (g->n_rows == g->cap_rows) {
            size_t cap = g->cap_rows ? 2 * g->cap_rows : 4096;
            row *p = realloc(g->rows, cap * sizeof *p);
            if (!p) return fclose(f), -1;
            g->rows = p, g->cap_rows = cap;
        }
        g->rows[g->n_rows++] = r;
        ++*n_rows;
    }
    fclose(f);
    return 0;
}

/* signer: NULL, or the gateway's key: each batch is signed for its data
 * topic. */
static int encode_all(gateway *g, const char *site, size_t batch, dcem_wire_reading *rs,
                      const dcem_signer *signer)
{
    size_t n = (g->n_rows + batch - 1) / batch;
    g->json = calloc(n ? n : 1, sizeof *g->json);
    g->len = calloc(n ? n : 1, sizeof *g->len);
    g->n_readings = calloc(n ? n : 1, sizeof *g->n_readings);
    g->pub_ns = calloc(n ? n : 1, sizeof *g->pub_ns);
    g->lat_ns = malloc((n ? n : 1) * sizeof *g->lat_ns);
    g->ctx = calloc(n ? n : 1, sizeof *g->ctx);
    if (!g->json || !g->len || !g->n_readings || !g->pub_ns || !g->lat_ns || !g->ctx) return -1;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        for (size_t j = i * batch; j < g->n_rows && k < batch; j++, k++) {
            dcem_wire_reading *r = &rs[k];
            memset(r, 0, sizeof *r);
            snprintf(r->meter, sizeof r->meter, "%s", meters[g->rows[j].meter]);
            r->t_ms = g->rows[j].t_ms;
            r->quality = DCEM_WIRE_Q_OK;
            r->has_kwh = 1;
            r->kwh = g->rows[j].kwh;
        }
        dcem_wire_batch b = {.epoch = epoch, .seq = i + 1, .readings = rs, .n_readings = k};
        snprintf(b.site, sizeof b.site, "%s", site);
        snprintf(b.gateway, sizeof b.gateway, "%s", g->id);
        if (dcem_wire_encode_batch(&b, &g->json[i], &g->len[i])) return -1;
        if (signer) { /* the encoder leaves room under the limit; the buffer needs it too */
            size_t cap = g->len[i] + DCEM_SIG_SUFFIX_LEN + 1;
            char *p = realloc(g->json[i], cap);
            if (!p) return -1;
            g->json[i] = p;
            if (dcem_sign_payload(signer, g->data_topic, p, &g->len[i], cap)) return -1;
        }
        g->n_readings[i] = k;
        g->lat_ns[i] = -1;
        g->ctx[i] = (pub_ctx){g, i};
    }
    g->n_batches = n;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"uri", required_argument, 0, 'u'},      {"site", required_argument, 0, 's'},
        {"csv", required_argument, 0, 'c'},      {"gateways", required_argument, 0, 'g'},
        {"batch", required_argument, 0, 'b'},    {"window", required_argument, 0, 'w'},
        {"rate", required_argument, 0, 'r'},     {"epoch", required_argument, 0, 'e'},
        {"no-ack", no_argument, 0, 'n'},         {"timeout-s", required_argument, 0, 't'},
        {"prefix", required_argument, 0, 'p'},   {"repeat", required_argument, 0, 'R'},
        {"keys", required_argument, 0, 'k'},     {0, 0, 0, 0}};
    const char *uri = NULL, *site = NULL, *csv = NULL, *prefix = "gw-blast", *keys = NULL;
    long n_gw = 4, batch = 250, window = 20, timeout_s = 300;
    double rate = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'u') uri = optarg;
        else if (o == 's') site = optarg;
        else if (o == 'c') csv = optarg;
        else if (o == 'g') n_gw = strtol(optarg, NULL, 10);
        else if (o == 'b') batch = strtol(optarg, NULL, 10);
        else if (o == 'w') window = strtol(optarg, NULL, 10);
        else if (o == 'r') rate = strtod(optarg, NULL);
        else if (o == 'e') epoch = strtoull(optarg, NULL, 10);
        else if (o == 'n') no_ack = 1;
        else if (o == 't') timeout_s = strtol(optarg, NULL, 10);
        else if (o == 'p') prefix = optarg;
        else if (o == 'R') repeat = strtol(optarg, NULL, 10);
        else if (o == 'k') keys = optarg;
        else return 2;
    }
    if (!uri || !site || !csv || n_gw < 1 || n_gw > MAX_GATEWAYS || batch < 1 ||
        batch > DCEM_WIRE_SAFE_READINGS || window < 1 || window > 60000 || rate < 0 ||
        epoch < 1 || timeout_s < 1 || repeat < 1 || (repeat > 1 && !no_ack)) {
        fputs("usage: dcem-blast --uri URI --site S --csv FILE [--gateways G<=64] "
              "[--batch N<=250] [--window W] [--rate READINGS_PER_S] [--epoch E] [--no-ack] "
              "[--timeout-s T] [--prefix GATEWAY_PREFIX] [--repeat N (with --no-ack)] "
              "[--keys DIR (DIR/<gateway>.pem)]\n",
              stderr);
        return 2;
    }
    gateway *gws = calloc((size_t)n_gw, sizeof *gws);
    dcem_wire_reading *rs = calloc((size_t)batch, sizeof *rs);
    if (!gws || !rs) return 1;
    for (long i = 0; i < n_gw; i++) {
        snprintf(gws[i].id, sizeof gws[i].id, "%s-%02ld", prefix, i + 1);
        if (dcem_wire_topic(gws[i].data_topic, sizeof gws[i].data_topic, site, gws[i].id, "data"))
            return fprintf(stderr, "dcem-blast: bad site or gateway id\n"), 2;
    }
    size_t n_rows = 0, n_batches = 0;
    if (load_csv(csv, gws, (size_t)n_gw, &n_rows)) return 1;
    for (long i = 0; i < n_gw; i++) {
        dcem_signer *signer = NULL;
        if (keys) {
            char path[4096], err[600] = "path too long";
            if ((size_t)snprintf(path, sizeof path, "%s/%s.pem", keys, gws[i].id) >= sizeof path ||
                dcem_io_load_signer(path, &signer, err, sizeof err))
                return fprintf(stderr, "dcem-blast: %s's key: %s\n", gws[i].id, err), 1;
        }
        int rc = encode_all(&gws[i], site, (size_t)batch, rs, signer);
        dcem_signer_free(signer);
        if (rc)
            return fprintf(stderr, "dcem-blast: cannot encode %s's batches\n", gws[i].id), 1;
        n_batches += gws[i].n_batches;
        gws[i].total = gws[i].n_batches * (size_t)repeat;
        free(gws[i].rows);
        gws[i].rows = NULL;
    }
    free(rs);

    /* connect every gateway (clean session, as an agent does) and
     * subscribe to its ack topic before anything is published */
    for (long i = 0; i < n_gw; i++) {
        gateway *g = &gws[i];
        char id[96];
        snprintf(id, sizeof id, "dcem-blast-%s-%ld", g->id, (long)getpid());
        MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
        if (MQTTAsync_createWithOptions(&g->client, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                        &co) != MQTTASYNC_SUCCESS ||
            MQTTAsync_setCallbacks(g->client, g, on_lost, on_message, NULL) != MQTTASYNC_SUCCESS)
            return fprintf(stderr, "dcem-blast: cannot create a client for %s\n", uri), 1;
        MQTTAsync_connectOptions c = MQTTAsync_connectOptions_initializer;
        c.cleansession = 1;
        c.keepAliveInterval = 60;
        c.maxInflight = (int)window + 10;
        c.onSuccess = on_connected;
        c.onFailure = on_failure;
        c.context = g;
        if (MQTTAsync_connect(g->client, &c) != MQTTASYNC_SUCCESS)
            return fprintf(stderr, "dcem-blast: cannot connect to %s\n", uri), 1;
    }
    int64_t deadline = now_ns() + (int64_t)10 * 1000000000;
    pthread_mutex_lock(&lock);
    for (long i = 0; i < n_gw; i++) {
        gateway *g = &gws[i];
        while (!g->connected && !g->failed && now_ns() < deadline) {
            struct timespec ts = {0, 10000000};
            pthread_mutex_unlock(&lock);
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&lock);
        }
        if (!g->connected) return fprintf(stderr, "dcem-blast: %s not connected\n", g->id), 1;
        if (no_ack) continue;
        char topic[DCEM_WIRE_TOPIC_MAX];
        dcem_wire_topic(topic, sizeof topic, site, g->id, "ack");
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        ro.onSuccess = on_subscribed;
        ro.onFailure = on_failure;
        ro.context = g;
        pthread_mutex_unlock(&lock);
        int rc = MQTTAsync_subscribe(g->client, topic, 1, &ro);
        pthread_mutex_lock(&lock);
        if (rc != MQTTASYNC_SUCCESS) return fprintf(stderr, "dcem-blast: cannot subscribe\n"), 1;
        while (!g->subscribed && !g->failed && now_ns() < deadline) {
            struct timespec ts = {0, 10000000};
            pthread_mutex_unlock(&lock);
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&lock);
        }
        if (!g->subscribed) return fprintf(stderr, "dcem-blast: %s not subscribed\n", g->id), 1;
    }
    pthread_mutex_unlock(&lock);

    /* publish: round robin over the gateways, in seq order per gateway */
    int64_t t0 = now_ns(), end_by = t0 + (int64_t)timeout_s * 1000000000;
    size_t sent_readings = 0, total_published = 0, stalls = 0;
    int64_t max_behind_ns = 0, last_pub_ns = t0;
    long next_gw = 0;
    int failed = 0;
    size_t n_total = n_batches * (size_t)repeat;
    while (total_published < n_total && !failed) {
        /* the next gateway with a batch left */
        gateway *g = NULL;
        for (long k = 0; k < n_gw && !g; k++) {
            gateway *c = &gws[(next_gw + k) % n_gw];
            if (c->published < c->total) g = c, next_gw = (next_gw + k + 1) % n_gw;
        }
        if (rate > 0) { /* its turn comes when the readings before it are due */
            int64_t due = t0 + (int64_t)((double)sent_readings / rate * 1e9);
            int64_t t = now_ns();
            if (t < due) {
                struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            } else if (t - due > max_behind_ns) {
                max_behind_ns = t - due;
            }
        }
        pthread_mutex_lock(&lock);
        int stalled = 0;
        while (g->published - g->done >= (size_t)window && !g->failed && now_ns() < end_by) {
            stalled = 1;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 1000000;
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&progress, &lock, &ts);
        }
        stalls += (size_t)stalled;
        if (g->failed || g->published - g->done >= (size_t)window) {
            failed = 1;
            pthread_mutex_unlock(&lock);
            break;
        }
        size_t i = g->published % g->n_batches;
        if (g->published < g->n_batches) g->pub_ns[i] = now_ns();
        pthread_mutex_unlock(&lock);
        MQTTAsync_message m = MQTTAsync_message_initializer;
        m.payload = g->json[i];
        m.payloadlen = (int)g->len[i];
        m.qos = 1;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        if (no_ack) ro.onSuccess = on_puback;
        ro.onFailure = on_pub_failure;
        ro.context = &g->ctx[i];
        int rc;
        while ((rc = MQTTAsync_sendMessage(g->client, g->data_topic, &m, &ro)) ==
               MQTTASYNC_MAX_BUFFERED_MESSAGES) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        if (rc != MQTTASYNC_SUCCESS) {
            fprintf(stderr, "dcem-blast: %s: send: %s\n", g->id, MQTTAsync_strerror(rc));
            failed = 1;
            break;
        }
        pthread_mutex_lock(&lock);
        g->published++;
        pthread_mutex_unlock(&lock);
        last_pub_ns = now_ns();
        sent_readings += g->n_readings[i];
        total_published++;
    }

    /* every batch acked (or PUBACKed) */
    size_t done = 0;
    pthread_mutex_lock(&lock);
    for (;;) {
        done = 0;
        int any_failed = 0;
        for (long i = 0; i < n_gw; i++) done += gws[i].done, any_failed |= gws[i].failed;
        if (done >= n_total || any_failed || now_ns() >= end_by) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&progress, &lock, &ts);
    }
    int64_t t_end = last_done_ns ? last_done_ns : now_ns();
    size_t n_lat = 0, acked_readings = 0;
    int64_t *lat = malloc((n_batches ? n_batches : 1) * sizeof *lat);
    for (long i = 0; lat && i < n_gw; i++) {
        acked_readings += gws[i].done_readings;
        for (size_t k = 0; k < gws[i].n_batches; k++)
            if (gws[i].lat_ns[k] >= 0) lat[n_lat++] = gws[i].lat_ns[k];
    }
    pthread_mutex_unlock(&lock);
    if (!lat) return 1;
    qsort(lat, n_lat, sizeof *lat, dcem_cmp_i64);
    double secs = (double)(t_end - t0) / 1e9, pub_secs = (double)(last_pub_ns - t0) / 1e9;
    printf("gateways=%ld batches=%zu readings=%zu acked_batches=%zu acked_readings=%zu "
           "elapsed_s=%.3f publish_s=%.3f readings_per_s=%.0f batches_per_s=%.1f "
           "publish_readings_per_s=%.0f lat_p50_ms=%.1f lat_p90_ms=%.1f lat_p99_ms=%.1f "
           "lat_max_ms=%.1f window_stalls=%zu max_behind_ms=%.1f\n",
           n_gw, n_total, n_rows * (size_t)repeat, done, acked_readings, secs, pub_secs,
           secs > 0 ? (double)acked_readings / secs : 0, secs > 0 ? (double)done / secs : 0,
           pub_secs > 0 ? (double)sent_readings / pub_secs : 0, dcem_pct_ms(lat, n_lat, 50),
           dcem_pct_ms(lat, n_lat, 90), dcem_pct_ms(lat, n_lat, 99),
           n_lat ? (double)lat[n_lat - 1] / 1e6 : 0,
           stalls, (double)max_behind_ns / 1e6);
    fflush(stdout);
    for (long i = 0; i < n_gw; i++) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.timeout = 1000;
        MQTTAsync_disconnect(gws[i].client, &d);
    }
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    for (long i = 0; i < n_gw; i++) {
        MQTTAsync_destroy(&gws[i].client);
        for (size_t k = 0; k < gws[i].n_batches; k++) free(gws[i].json[k]);
        free(gws[i].json), free(gws[i].len), free(gws[i].n_readings);
        free(gws[i].pub_ns), free(gws[i].lat_ns), free(gws[i].ctx);
    }
    free(gws);
    free(lat);
    return done == n_total && n_lat == n_batches && !failed ? 0 : 1;
}
