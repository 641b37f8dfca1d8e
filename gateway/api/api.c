#include "api.h"
#include "api_auth.h"
#include "api_query.h"
#include "api_views.h"
#include "api_reports.h"
#include "dcem_log.h"
#include "errors.h"
#include "parse.h"
#include "store.h"
#include "wire.h"

#include <cJSON.h>
#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef DCEM_VERSION
#define DCEM_VERSION "0"
#endif

#define MAX_PARAMS 16                 /* query parameters per request; more: 400 */
#define CONNECTION_MEMORY (64u << 10) /* per connection: request line and headers */
#define EXPORT_ROWS_PER_CHUNK 4096    /* readings fetched per store query while streaming */
#define EXPORT_BLOCK (64u << 10)      /* bytes MHD asks for at a time */

struct dcem_api_view {
    const dcem_collector_config *cfg;
    dcem_store *st;
    dcem_engine *engine;
};

/* Statuses counted for /metrics. */
static const int counted[] = {200, 400, 401, 403, 404, 405, 500, 501};
#define N_COUNTED (sizeof counted / sizeof counted[0])

/* Threads. The daemon runs a pool of api.threads threads (epoll), so a
 * request that waits — on the view, on a slow client, on a report being
 * written — holds up only the connections of its own thread, and the
 * others keep answering (/healthz above all). Handlers therefore run
 * concurrently, and everything they share is guarded:
 *   - the view (config, the API's SQLite handle, its engine with its caches,
 *     the reports cache) is state that two threads must not use at once:
 *     `lock` serializes every request that reads it (the export takes it
 *     per chunk, and is queued outside it: see deferred_export). One handle
 *     for all threads rather than one per thread: reads are short, the
 *     machine has few cores, and a reload swaps one view, not N.
 *   - /healthz reads no view: the ingest loop's snapshot and the view's
 *     identity (collector id, store backend and schema) sit under
 *     `health_lock`, so a liveness probe never queues behind a long read.
 *   - the request counters are atomics; every handler copies what it reads
 *     into its own memory (no shared scratch buffer).
 *   - libmicrohttpd's log messages, which a flood of refused connections
 *     repeats, are folded under `log_lock`. */
struct dcem_api {
    struct MHD_Daemon *daemon;
    /* the settings the daemon was started with */
    char listen[sizeof((dcem_collector_api *)0)->listen];
    long long max_connections, timeout_s, threads, per_ip_connections;
    /* lock: the view; held for the whole of a request that reads it, taken
     * by the ingest thread only to swap the view on a reload */
    pthread_mutex_t lock;
    dcem_api_view *view;
    /* health_lock: the ingest loop's snapshot and the view's identity */
    pthread_mutex_t health_lock;
    dcem_api_health health;
    char collector[DCEM_ID_MAX], backend[16];
    int schema_version;
    _Atomic uint64_t requests[N_COUNTED + 1]; /* the last: any other status */
    /* log_lock: the last message libmicrohttpd logged, and how often since */
    pthread_mutex_t log_lock;
    char log_last[256];
    unsigned long log_repeats;
    struct timespec log_at;
    dcem_api_reports *reports; /* under lock: forgotten when the view changes */
};

/* ---- views ---- */

int dcem_api_view_open(const dcem_collector_config *cfg, dcem_api_view **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    dcem_api_view *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "api: out of memory");
        return DCEM_ENOMEM;
    }
    v->cfg = cfg;
    dcem_store_opts so = {.synchronous = cfg->store.synchronous,
                          .retention_days = (int)cfg->store.retention_days};
    char why[512];
    int rc = dcem_store_open(cfg->store.backend, dcem_collector_store_target(&cfg->store), &so,
                             &v->st, why, sizeof why);
    if (rc) {
        snprintf(err, errlen, "api: %s", why);
        free(v);
        return rc;
    }
    v->engine = dcem_engine_new(cfg, v->st);
    if (!v->engine) {
        snprintf(err, errlen, "api: out of memory");
        dcem_api_view_free(v);
        return DCEM_ENOMEM;
    }
    *out = v;
    return 0;
}

void dcem_api_view_free(dcem_api_view *v)
{
    if (!v) return;
    dcem_engine_free(v->engine);
    dcem_store_close(v->st);
    free(v);
}

/* ---- responses ---- */

static void count_status(dcem_api *a, int status)
{
    size_t i = 0;
    while (i < N_COUNTED && counted[i] != status)
        i++;
    atomic_fetch_add_explicit(&a->requests[i], 1, memory_order_relaxed);
}

static void common_headers(struct MHD_Response *r, const char *type)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

/* Queues body (malloc'ed, taken) with status. */
static enum MHD_Result send_body(dcem_api *a, struct MHD_Connection *c, int status, char *body,
                                 size_t len, const char *type, const char *extra_header,
                                 const char *extra_value)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    common_headers(r, type);
    if (extra_header) MHD_add_response_header(r, extra_header, extra_value);
    count_status(a, status);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(dcem_api *a, struct MHD_Connection *c, int status, cJSON *o,
                                 const char *extra_header, const char *extra_value)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s) {
        static const char oom[] = "{\"error\":\"out of memory\",\"param\":null}";
        size_t n = sizeof oom - 1;
        char *b = malloc(n);
        if (b) memcpy(b, oom, n);
        return send_body(a, c, 500, b, b ? n : 0, "application/json; charset=utf-8", NULL, NULL);
    }
    return send_body(a, c, status, s, strlen(s), "application/json; charset=utf-8", extra_header,
                     extra_value);
}

/* {"error": why, "param": param or null} */
static enum MHD_Result send_error(dcem_api *a, struct MHD_Connection *c, int status,
                                  const char *param, const char *why)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", why);
    if (param && *param)
        cJSON_AddStringToObject(o, "param", param);
    else
        cJSON_AddNullToObject(o, "param");
    const char *h = NULL, *v = NULL;
    if (status == 401) h = MHD_HTTP_HEADER_WWW_AUTHENTICATE, v = "Bearer realm=\"dcem\"";
    if (status == 405) h = MHD_HTTP_HEADER_ALLOW, v = "GET, HEAD";
    return send_json(a, c, status, o, h, v);
}

/* ---- authentication ---- */

typedef struct caller {
    int role;                /* dcem_api_role */
    const dcem_api_token *t; /* NULL for the public */
    int bad_token;           /* an Authorization header that is no configured token */
} caller;

static caller who(const dcem_api_view *v, struct MHD_Connection *c)
{
    caller w = {.role = DCEM_API_ROLE_PUBLIC};
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h) return w;
    const char *tok;
    size_t len;
    int i = -1;
    if (!dcem_api_bearer(h, &tok, &len))
        i = dcem_api_token_find(v->cfg->api.tokens, v->cfg->api.n_tokens, tok, len);
    if (i < 0) {
        w.bad_token = 1;
        return w;
    }
    w.t = &v->cfg->api.tokens[i];
    w.role = w.t->role;
    return w;
}

static enum MHD_Result unauthorized(dcem_api *a, struct MHD_Connection *c, const caller *w)
{
    if (w->bad_token) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", "unknown bearer token");
        cJSON_AddNullToObject(o, "param");
        return send_json(a, c, 401, o, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                         "Bearer realm=\"dcem\", error=\"invalid_token\"");
    }
    return send_error(a, c, 401, NULL, "this needs a bearer token (Authorization: Bearer <token>)");
}

/* ---- query parameters ---- */

typedef struct params {
    dcem_api_param p[MAX_PARAMS];
    size_t n;
    int too_many;
} params;

static enum MHD_Result take_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    params *ps = cls;
    if (ps->n == MAX_PARAMS) {
        ps->too_many = 1;
        return MHD_NO;
    }
    ps->p[ps->n++] = (dcem_api_param){key, value};
    return MHD_YES;
}

/* ---- /metrics and /healthz ---- */

typedef struct text {
    char *b;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !t->failed; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->b ? t->b + t->len : NULL, t->b ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->b && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *b = realloc(t->b, cap);
        if (!b) {
            t->failed = 1;
            return;
        }
        t->b = b;
        t->cap = cap;
    }
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void put_label(text *t, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            put(t, "\\\\");
        else if (*v == '"')
            put(t, "\\\"");
        else if (*v == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *v);
    }
}

static void metric(text *t, const char *name, const char *type, const char *help, uint64_t v)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
        (unsigned long long)v);
}

static void metric_f(text *t, const char *name, const char *type, const char *help, double v)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n%s %.3f\n", name, help, name, type, name, v);
}

/* A copy of the ingest loop's snapshot (too large for a handler's stack),
 * freed by the caller; NULL when out of memory. */
static dcem_api_health *health_copy(dcem_api *a)
{
    dcem_api_health *h = malloc(sizeof *h);
    if (!h) return NULL;
    pthread_mutex_lock(&a->health_lock);
    *h = a->health;
    pthread_mutex_unlock(&a->health_lock);
    return h;
}

static enum MHD_Result metrics(dcem_api *a, struct MHD_Connection *c)
{
    dcem_api_health *h = health_copy(a);
    if (!h) return send_error(a, c, 500, NULL, "out of memory");
    const dcem_engine_stats *s = &h->engine;
    text t = {0};
    metric(&t, "dcem_batches_received_total", "counter", "Batches received on data topics.",
           s->received);
    metric(&t, "dcem_batches_stored_total", "counter", "Batches stored and processed.", s->stored);
    metric(&t, "dcem_batches_signed_total", "counter",
           "Batches stored with a verified signature and its proof (docs/security.md).",
           s->signed_batches);
    metric(&t, "dcem_batches_unsigned_total", "counter",
           "Batches stored unsigned: only a lab collector (identity.allow_unsigned) does.",
           s->unsigned_batches);
    metric(&t, "dcem_batches_duplicate_total", "counter", "Batches stored before, acked again.",
           s->duplicates);
    metric(&t, "dcem_batch_gaps_total", "counter",
           "Batches that came ahead of a missing one (a resend was asked for).", s->gaps);
    metric(&t, "dcem_batches_malformed_total", "counter", "Payloads refused as malformed.",
           s->malformed);
    put(&t,
        "# HELP dcem_batches_malformed_by_reason_total Malformed payloads by wire-format reason.\n"
        "# TYPE dcem_batches_malformed_by_reason_total counter\n");
    for (int i = 1; i < DCEM_WIRE_REASON_COUNT; i++) { /* 0 is "ok" */
        put(&t, "dcem_batches_malformed_by_reason_total{reason=\"");
        put_label(&t, dcem_wire_reason_name(i));
        put(&t, "\"} %llu\n", (unsigned long long)s->malformed_by_reason[i]);
    }
    metric(&t, "dcem_batches_quarantined_total", "counter", "Batches set aside and acked.",
           s->quarantined);
    metric(&t, "dcem_batches_unknown_site_total", "counter", "Batches for a site without a ledger.",
           s->unknown_site);
    metric(&t, "dcem_batches_failed_total", "counter", "Batches the store failed to take.",
           s->failed);
    metric(&t, "dcem_readings_total", "counter", "Readings run through the counter rules.",
           s->readings);
    metric(&t, "dcem_readings_unknown_meter_total", "counter",
           "Readings of meters not in the ledger.", s->unknown_meter_readings);
    metric(&t, "dcem_readings_rejected_total", "counter", "Readings the counter rules rejected.",
           s->rejected_readings);
    metric(&t, "dcem_readings_late_total", "counter",
           "Readings at or before their meter's latest: stored, the meter rebuilt.",
           s->late_readings);
    metric(&t, "dcem_meter_rebuilds_total", "counter",
           "Meters rebuilt from their stored readings (late data, or no saved state).",
           s->rebuilds);
    metric(&t, "dcem_meter_rebuilt_readings_total", "counter",
           "Stored readings run again in those rebuilds.", s->rebuilt_readings);
    metric(&t, "dcem_alerts_recorded_elsewhere_total", "counter",
           "Alert changes another collector of the store had recorded first: not told again.",
           s->alerts_told_elsewhere);
    metric(&t, "dcem_store_retries_total", "counter",
           "Ingest transactions run again: lost to a conflict in the store (PostgreSQL: a "
           "replayed row, a deadlock with another collector).", s->group_retries);
    metric(&t, "dcem_readings_too_old_total", "counter",
           "Late readings older than the store's retention allows to rebuild: stored, not counted.",
           s->too_old_readings);
    metric(&t, "dcem_ratio_changes_total", "counter",
           "Meters whose transformer ratio changed (a new counter epoch each).", s->ratio_changes);
    put(&t, "# HELP dcem_readings_ratio_note_total Readings whose transformer ratio was held "
            "(the meter's register read 0), unknown (ratio 1 applied) or a mismatch (config over "
            "register).\n"
            "# TYPE dcem_readings_ratio_note_total counter\n");
    for (int i = 1; i < DCEM_WIRE_RATIO_NOTE_COUNT; i++) {
        put(&t, "dcem_readings_ratio_note_total{note=\"");
        put_label(&t, dcem_wire_ratio_note_name(i));
        put(&t, "\"} %llu\n", (unsigned long long)s->ratio_notes[i]);
    }
    metric(&t, "dcem_readings_future_total", "counter",
           "Readings stamped beyond the collector's clock + max_future_skew_s: refused.",
           s->future_readings);
    metric(&t, "dcem_values_out_of_range_total", "counter",
           "Values of absurd magnitude left out (their reading stored out_of_range).",
           s->out_of_range_values);
    metric(&t, "dcem_batches_store_refused_total", "counter",
           "Batches whose content the store refused: quarantined and acked.", s->store_refused);
    metric(&t, "dcem_meter_states_future_total", "counter",
           "Meter states found beyond the collector's clock: set aside, the meter started afresh.",
           s->future_states);
    metric(&t, "dcem_resend_requests_total", "counter", "Resend requests sent for holes.",
           h->resend_requests);
    metric(&t, "dcem_held_batches", "gauge",
           "Batches held (unacknowledged) for their predecessor.", (uint64_t)h->held);
    metric(&t, "dcem_held_batches_tried_total", "counter",
           "Held batches tried again once their predecessor may have been stored.",
           h->held_tries);
    metric(&t, "dcem_holes_given_up_total", "counter",
           "Holes given up after max_resend_requests unanswered requests.", s->holes_given_up);
    metric(&t, "dcem_batches_given_up_total", "counter",
           "Batches given up in those holes: missing data.", s->seqs_given_up);
    metric(&t, "dcem_batches_given_up_stored_total", "counter",
           "Batches of given-up seqs that came after all: stored, their readings late data.",
           s->given_up_stored);
    metric(&t, "dcem_intervals_total", "counter", "Intervals produced.", s->intervals);
    metric(&t, "dcem_recomputes_total", "counter", "Periods whose figures were recomputed.",
           s->recomputes);
    metric_f(&t, "dcem_figures_lag_seconds", "gauge",
             "In the last figures pass, the longest a site's committed data waited for its figures.",
             (double)s->figures_lag_ms / 1000.0);
    metric_f(&t, "dcem_figures_lag_max_seconds", "gauge",
             "The longest committed data waited for its figures since the collector started.",
             (double)s->figures_lag_max_ms / 1000.0);
    put(&t, "# HELP dcem_refused_payloads_total Refused or dropped payloads by gateway "
            "(site/gateway, or unknown) and reason.\n"
            "# TYPE dcem_refused_payloads_total counter\n");
    for (size_t i = 0; i < h->n_refusals; i++) {
        put(&t, "dcem_refused_payloads_total{gateway=\"");
        put_label(&t, h->refusals[i].gateway);
        put(&t, "\",reason=\"");
        put_label(&t, h->refusals[i].reason);
        put(&t, "\"} %llu\n", (unsigned long long)h->refusals[i].count);
    }
    metric(&t, "dcem_mqtt_connected", "gauge", "1 while subscribed to the broker.",
           (uint64_t)h->mqtt_connected);
    metric(&t, "dcem_store_ok", "gauge", "0 while store writes fail.", (uint64_t)h->store_ok);
    if (h->have_influx) {
        const dcem_influx_stats *is = &h->influx;
        metric(&t, "dcem_influx_lines_written_total", "counter", "Lines InfluxDB accepted.",
               is->lines_written);
        metric(&t, "dcem_influx_requests_failed_total", "counter", "Write requests that failed.",
               is->requests_failed);
        metric(&t, "dcem_influx_dropped_lines_total", "counter",
               "Lines dropped (backlog full, or refused by InfluxDB).", is->dropped_lines);
        metric(&t, "dcem_influx_backlog_lines", "gauge", "Lines waiting in the backlog.",
               is->backlog_lines);
        metric(&t, "dcem_influx_down", "gauge", "1 while InfluxDB is unreachable.",
               (uint64_t)is->down);
    }
    put(&t, "# HELP dcem_api_requests_total Requests this API answered, by status.\n"
            "# TYPE dcem_api_requests_total counter\n");
    uint64_t n[N_COUNTED + 1];
    for (size_t i = 0; i <= N_COUNTED; i++)
        n[i] = atomic_load_explicit(&a->requests[i], memory_order_relaxed);
    n[0]++; /* this request is counted as the 200 it will be */
    for (size_t i = 0; i < N_COUNTED; i++)
        put(&t, "dcem_api_requests_total{code=\"%d\"} %llu\n", counted[i],
            (unsigned long long)n[i]);
    put(&t, "dcem_api_requests_total{code=\"other\"} %llu\n", (unsigned long long)n[N_COUNTED]);
    metric(&t, "dcem_uptime_seconds", "gauge", "Seconds since the collector started.",
           (uint64_t)(h->uptime_s > 0 ? h->uptime_s : 0));
    free(h);
    if (t.failed) {
        free(t.b);
        return send_error(a, c, 500, NULL, "out of memory");
    }
    return send_body(a, c, 200, t.b, t.len, "text/plain; version=0.0.4; charset=utf-8", NULL, NULL);
}

/* Without the view lock (see "Threads" above). */
static enum MHD_Result healthz(dcem_api *a, struct MHD_Connection *c)
{
    dcem_api_health *h = malloc(sizeof *h);
    if (!h) return send_error(a, c, 500, NULL, "out of memory");
    char collector[sizeof a->collector], backend[sizeof a->backend];
    pthread_mutex_lock(&a->health_lock);
    *h = a->health;
    memcpy(collector, a->collector, sizeof collector);
    memcpy(backend, a->backend, sizeof backend);
    int schema_version = a->schema_version;
    pthread_mutex_unlock(&a->health_lock);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", h->mqtt_connected && h->store_ok ? "ok" : "degraded");
    cJSON_AddStringToObject(o, "collector", collector);
    cJSON_AddStringToObject(o, "version", DCEM_VERSION);
    cJSON_AddNumberToObject(o, "uptime_s", (double)h->uptime_s);
    cJSON *m = cJSON_AddObjectToObject(o, "mqtt");
    cJSON_AddBoolToObject(m, "connected", h->mqtt_connected);
    cJSON *s = cJSON_AddObjectToObject(o, "store");
    cJSON_AddBoolToObject(s, "ok", h->store_ok);
    cJSON_AddStringToObject(s, "backend", backend);
    cJSON_AddNumberToObject(s, "schema_version", schema_version);
    if (h->have_influx) {
        cJSON *i = cJSON_AddObjectToObject(o, "influx");
        cJSON_AddBoolToObject(i, "down", h->influx.down);
        cJSON_AddNumberToObject(i, "backlog_lines", (double)h->influx.backlog_lines);
    } else {
        cJSON_AddNullToObject(o, "influx");
    }
    free(h);
    return send_json(a, c, 200, o, NULL, NULL);
}

/* ---- the dashboard's files ---- */

/* Opens dir/rel one segment at a time without following a symbolic link
 * anywhere (O_NOFOLLOW on every segment, not only the last); a regular file
 * only. Returns the fd, or -1. */
static int open_static(const char *dir, const char *rel, struct stat *st)
{
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) return -1;
    char seg[256];
    const char *p = rel;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || n >= sizeof seg) break;
        memcpy(seg, p, n);
        seg[n] = '\0';
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (e ? O_DIRECTORY : O_NONBLOCK);
        int f = openat(d, seg, flags);
        close(d);
        if (f < 0) return -1;
        if (!e) {
            if (fstat(f, st) || !S_ISREG(st->st_mode)) {
                close(f);
                return -1;
            }
            return f;
        }
        d = f;
        p = e + 1;
    }
    close(d);
    return -1;
}

static enum MHD_Result static_file(dcem_api *a, struct MHD_Connection *c, const char *url)
{
    char rel[1024];
    struct stat st;
    int fd = -1;
    if (!dcem_api_static_path(url, rel, sizeof rel))
        fd = open_static(a->view->cfg->api.dashboard_dir, rel, &st);
    if (fd < 0) return send_error(a, c, 404, NULL, "no such file");
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd); /* takes fd */
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, dcem_api_content_type(rel));
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    count_status(a, 200);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- the readings export, streamed ---- */

typedef struct export_ctx {
    dcem_api *a;
    char site[DCEM_ID_MAX];
    int64_t cur, to; /* readings [cur, to) not yet fetched */
    char *buf;
    size_t len, off, cap;
    int done, failed;
    /* while fetching */
    size_t rows;
    int64_t last_t, stop_at;
    int stopped;
} export_ctx;

static int export_append(export_ctx *x, const char *s, size_t n)
{
    if (x->len + n > x->cap) {
        size_t cap = x->cap ? x->cap : 1u << 16;
        while (cap < x->len + n)
            cap *= 2;
        char *b = realloc(x->buf, cap);
        if (!b) return -1;
        x->buf = b;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, s, n);
    x->len += n;
    return 0;
}

/* One row exactly as `dcem-collector export` prints it. */
static int export_row(void *ctx, const dcem_store_reading *r)
{
    export_ctx *x = ctx;
    if (x->rows >= EXPORT_ROWS_PER_CHUNK && r->t_ms != x->last_t) {
        /* a chunk ends between two times, never inside one */
        x->stop_at = r->t_ms;
        x->stopped = 1;
        return 1;
    }
    char line[DCEM_STORE_CSV_ROW_MAX];
    int n = dcem_store_reading_csv(r, line, sizeof line);
    if (n == 0) return 0;
    if (n < 0 || export_append(x, line, (size_t)n)) {
        x->failed = 1;
        return 1;
    }
    x->rows++;
    x->last_t = r->t_ms;
    return 0;
}

static int export_fill(export_ctx *x)
{
    x->len = x->off = 0;
    x->rows = 0;
    x->stopped = 0;
    dcem_api *a = x->a;
    pthread_mutex_lock(&a->lock);
    int rc = dcem_store_export(a->view->st, x->site, NULL, x->cur, x->to, export_row, x);
    if (rc < 0) DCEM_LOGW("api", "export of %s failed: %s", x->site, dcem_store_error(a->view->st));
    pthread_mutex_unlock(&a->lock);
    if (rc < 0 || x->failed) return -1;
    if (x->stopped)
        x->cur = x->stop_at;
    else
        x->done = 1;
    return 0;
}

static ssize_t export_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    export_ctx *x = cls;
    while (x->off == x->len) {
        if (x->done) return MHD_CONTENT_READER_END_OF_STREAM;
        if (export_fill(x)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = x->len - x->off < max ? x->len - x->off : max;
    memcpy(out, x->buf + x->off, n);
    x->off += n;
    return (ssize_t)n;
}

static void export_free(void *cls)
{
    export_ctx *x = cls;
    free(x->buf);
    free(x);
}

static enum MHD_Result export(dcem_api *a, struct MHD_Connection *c, const char *site, int64_t from,
                              int64_t to) {
    export_ctx *x = calloc(1, sizeof *x);
    if (!x) return send_error(a, c, 500, NULL, "out of memory");
    static const char header[] = DCEM_STORE_CSV_HEADER; x->a = a;
    snprintf(x->site, sizeof x->site, "%s", site); x->cur = from; x->to = to;
    if (export_append(x, header, sizeof header - 1)){
        export_free(x); return send_error(a, c, 500, NULL, "out of memory");}
struct MHD_Response *r =
    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, EXPORT_BLOCK, export_read, x, export_free);
if (!r) {
    export_free(x);
    return MHD_NO;
}
char disposition[128];
snprintf(disposition, sizeof disposition, "attachment; filename=\"%s-readings.csv\"", site);
common_headers(r, "text/csv; charset=utf-8");
MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disposition);
count_status(a, 200);
enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
MHD_destroy_response(r);
return ret;
}

/* ---- routing ---- */

/* Query parameters each endpoint takes. */
static unsigned allowed_params(int route, unsigned *required)
{
    *required = 0;
    switch (route) {
    case DCEM_API_R_FIGURES:
        return DCEM_API_Q_PERIOD | DCEM_API_Q_AT;
    case DCEM_API_R_VERDICTS:
    case DCEM_API_R_COMPLIANT:
        return DCEM_API_Q_YEAR;
    case DCEM_API_R_ALERTS:
        return DCEM_API_Q_FROM | DCEM_API_Q_TO | DCEM_API_Q_LIMIT | DCEM_API_Q_CURSOR;
    case DCEM_API_R_METERS:
    case DCEM_API_R_POWER:
        return DCEM_API_Q_AT;
    case DCEM_API_R_EXPORT:
        *required = DCEM_API_Q_FROM | DCEM_API_Q_TO;
        return DCEM_API_Q_FROM | DCEM_API_Q_TO;
    default:
        return 0;
    }
}

static int regulator_only(int route)
{
    return route == DCEM_API_R_EXPORT || route == DCEM_API_R_REPORTS ||
           route == DCEM_API_R_SITE_REPORTS || route == DCEM_API_R_SITE_REPORT ||
           route == DCEM_API_R_SITE_REPORT_FILE || route == DCEM_API_R_ZONE_REPORT ||
           route == DCEM_API_R_ZONE_REPORT_FILE;
}

/* A file of a report (site's, or the zone's: site NULL), written today (now
 * if not yet), if its manifest lists it. */
static enum MHD_Result report_file(dcem_api *a, struct MHD_Connection *c, const dcem_api_ctx *ctx,
                                   const dcem_collector_site *site, const dcem_api_route *r)
{
    char dir[DCEM_COLLECTOR_PATH_MAX + 128];
    dcem_api_error e = {0};
    int status = dcem_api_report_dir(a->reports, ctx, site, r->report_is_year, r->report_period,
                                     dir, sizeof dir, &e);
    if (status != 200) {
        if (status == 500) DCEM_LOGW("api", "report: %s", e.why);
        return send_error(a, c, status, NULL, e.why);
    }
    struct stat st;
    int fd =
        dcem_api_report_lists(dir, r->report_file) ? open_static(dir, r->report_file, &st) : -1;
    if (fd < 0)
        return send_error(a, c, 404, NULL, "no such file in this report (see its manifest)");
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    char disposition[DCEM_API_FILE_MAX + 40];
    snprintf(disposition, sizeof disposition, "attachment; filename=\"%s\"", r->report_file);
    common_headers(resp, dcem_api_content_type(r->report_file));
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disposition);
    count_status(a, 200);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* An export asked for, started once the view is unlocked: libmicrohttpd
 * calls the export's reader with the response's own mutex held, and the
 * reader then takes the view lock; queueing that response under the view
 * lock would take the two in the other order. */
typedef struct deferred_export {
    int wanted;
    char site[DCEM_ID_MAX];
    int64_t from, to;
} deferred_export;

/* One request but /healthz, with the view locked; an export is left in *x. */
static enum MHD_Result route(dcem_api *a, struct MHD_Connection *c, const char *url,
                             const dcem_api_route *rp, deferred_export *x)
{
    const dcem_api_view *v = a->view;
    dcem_api_route r = *rp;
    if (r.id == DCEM_API_R_NONE)
        return send_error(a, c, 404, NULL, "no such endpoint (docs/api.md)");
    if (r.id == DCEM_API_R_STATIC) return static_file(a, c, url);
    caller w = who(v, c);

    /* who may: 401 before 403 before 404 before 400 */
    if (r.id == DCEM_API_R_METRICS) {
        int access = v->cfg->api.metrics;
        if (access != DCEM_API_METRICS_PUBLIC) {
            if (w.role == DCEM_API_ROLE_PUBLIC) return unauthorized(a, c, &w);
            if (access == DCEM_API_METRICS_REGULATOR && w.role != DCEM_API_ROLE_REGULATOR)
                return send_error(a, c, 403, NULL,
                                  "/metrics is for regulator tokens (api.metrics)");
        }
    } else if (r.id != DCEM_API_R_COMPLIANT) {
        if (w.role == DCEM_API_ROLE_PUBLIC) return unauthorized(a, c, &w);
        if (regulator_only(r.id) && w.role != DCEM_API_ROLE_REGULATOR)
            return send_error(a, c, 403, NULL,
                              r.id == DCEM_API_R_EXPORT ? "exports are for regulator tokens"
                                                        : "reports are for regulator tokens");
    }
    const dcem_collector_site *site = NULL;
    if (dcem_api_route_site_scoped(r.id)) {
        if (r.site_ok) site = dcem_collector_site_find(v->cfg, r.site);
        if (w.role == DCEM_API_ROLE_OPERATOR &&
            (!site || !dcem_api_may_read_site(w.role, w.t, r.site)))
            return send_error(a, c, 403, NULL, "this token may not read that site");
        if (!site) return send_error(a, c, 404, NULL, "no such site");
    }

    params ps = {0};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, take_param, &ps);
    dcem_api_query q;
    dcem_api_error e;
    unsigned required, allowed = allowed_params(r.id, &required);
    if (ps.too_many) {
        snprintf(e.why, sizeof e.why, "more than %d query parameters", MAX_PARAMS);
        return send_error(a, c, 400, NULL, e.why);
    }
    if (dcem_api_query_parse(ps.p, ps.n, allowed, required, &q, &e))
        return send_error(a, c, 400, e.param, e.why);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    dcem_api_ctx ctx = {v->cfg, v->st, v->engine, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000};
    cJSON *out = NULL;
    int status;
    memset(&e, 0, sizeof e);
    switch (r.id) {
    case DCEM_API_R_METRICS:
        return metrics(a, c);
    case DCEM_API_R_SITES:
        status = dcem_api_view_sites(&ctx, w.role, w.t, &out, &e);
        break;
    case DCEM_API_R_SITE:
        status = dcem_api_view_site(&ctx, site, &out, &e);
        break;
    case DCEM_API_R_FIGURES:
        status = dcem_api_view_figures(&ctx, site, &q, &out, &e);
        break;
    case DCEM_API_R_VERDICTS:
        status = dcem_api_view_verdicts(&ctx, site, &q, &out, &e);
        break;
    case DCEM_API_R_ALERTS:
        status = dcem_api_view_alerts(&ctx, site, &q, &out, &e);
        break;
    case DCEM_API_R_METERS:
        status = dcem_api_view_meters(&ctx, site, &q, &out, &e);
        break;
    case DCEM_API_R_POWER:
        status = dcem_api_view_power(&ctx, site, &q, &out, &e);
        break;
    case DCEM_API_R_COMPLIANT:
        status = dcem_api_view_compliant(&ctx, &q, &out, &e);
        break;
    case DCEM_API_R_EXPORT: {
        int64_t from = dcem_api_instant(site, &q.from), to = dcem_api_instant(site, &q.to);
        if (from >= to) return send_error(a, c, 400, "to", "to: must be later than from");
        snprintf(x->site, sizeof x->site, "%s", site->ledger->site);
        x->from = from, x->to = to, x->wanted = 1;
        return MHD_YES;
    }
    case DCEM_API_R_REPORTS:
        status = dcem_api_view_report_periods(&ctx, NULL, &out, &e);
        break;
    case DCEM_API_R_SITE_REPORTS:
        status = dcem_api_view_report_periods(&ctx, site, &out, &e);
        break;
    case DCEM_API_R_SITE_REPORT:
        status = dcem_api_view_report(a->reports, &ctx, site, r.report_is_year, r.report_period,
                                      &out, &e);
        break;
    case DCEM_API_R_SITE_REPORT_FILE:
        return report_file(a, c, &ctx, site, &r);
    case DCEM_API_R_ZONE_REPORT:
        status = dcem_api_view_report(a->reports, &ctx, NULL, r.report_is_year, r.report_period,
                                      &out, &e);
        break;
    case DCEM_API_R_ZONE_REPORT_FILE:
        return report_file(a, c, &ctx, NULL, &r);
    default:
        return send_error(a, c, 404, NULL, "no such endpoint (docs/api.md)");
    }
    if (status != 200) {
        if (status == 500) DCEM_LOGW("api", "%s: %s", url, e.why);
        return send_error(a, c, status, e.param, e.why);
    }
    return send_json(a, c, 200, out, NULL, NULL);
}

/* One request as the URI callback saw it, before libmicrohttpd decoded
 * its target; freed when the request completes. */
typedef struct request {
    int headers_seen;  /* the access handler was called once */
    char refused[160]; /* why the target is refused (a 400), "" when it is not */
} request;

/* Called once per request with the target as the client sent it: a %00
 * would decode into a NUL that cuts the strings libmicrohttpd hands
 * on_request (the path or a parameter would read as something shorter),
 * so the raw target is judged here. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls, (void)c;
    request *rq = calloc(1, sizeof *rq);
    if (rq) dcem_api_uri_check(uri, rq->refused, sizeof rq->refused); /* "" when fine */
    return rq;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)c, (void)why;
    free(*req_cls);
    *req_cls = NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    (void)version, (void)upload;
    dcem_api *a = cls;
    request *rq = *req_cls; /* from on_uri */
    if (!rq) return send_error(a, c, 500, NULL, "out of memory");
    /* Another method is answered at once, before any body is read (the
     * connection is then closed: nobody can make us read a large body). A
     * GET is answered on the second call, once its headers are complete:
     * libmicrohttpd then keeps the connection alive; a GET with a body is
     * refused as soon as the body shows. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return send_error(a, c, 405, NULL, "only GET and HEAD");
    if (!rq->headers_seen) {
        if (rq->refused[0]) return send_error(a, c, 400, NULL, rq->refused);
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if ((cl && strcmp(cl, "0")) ||
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
            return send_error(a, c, 400, NULL, "a GET request has no body");
        rq->headers_seen = 1;
        return MHD_YES;
    }
    *upload_size = 0; /* none: refused above */
    dcem_api_route r;
    dcem_api_route_parse(url, &r);
    enum MHD_Result ret;
    if (r.id == DCEM_API_R_HEALTHZ) {
        ret = healthz(a, c);
    } else {
        deferred_export x = {0};
        pthread_mutex_lock(&a->lock);
        ret = route(a, c, url, &r, &x);
        pthread_mutex_unlock(&a->lock);
        if (x.wanted) ret = export(a, c, x.site, x.from, x.to);
    }
    DCEM_LOGD("api", "%s %s", method, url);
    return ret;
}

#define LOG_FOLD_S 60 /* a message repeated within this is counted, not logged */

/* libmicrohttpd's messages (a refused connection, a socket error) into our
 * log. One a client can repeat at will — every connection over a limit —
 * is logged once and then counted: the count is logged with the next other
 * message, or with the same one after LOG_FOLD_S. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    dcem_api *a = cls;
    char b[256];
    vsnprintf(b, sizeof b, fmt, ap);
    size_t n = strlen(b);
    while (n && (b[n - 1] == '\n' || b[n - 1] == '\r'))
        b[--n] = '\0';
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&a->log_lock);
    int same = !strcmp(b, a->log_last);
    if (same && now.tv_sec - a->log_at.tv_sec < LOG_FOLD_S) {
        a->log_repeats++;
        pthread_mutex_unlock(&a->log_lock);
        return;
    }
    if (a->log_repeats) DCEM_LOGW("api", "%s (%lu more times)", a->log_last, a->log_repeats);
    a->log_repeats = 0;
    a->log_at = now;
    memcpy(a->log_last, b, sizeof b);
    pthread_mutex_unlock(&a->log_lock);
    if (!same) DCEM_LOGW("api", "%s", b);
}

/* ---- start, stop, reload ---- */

static void take_listener(dcem_api *a, const dcem_collector_api *cfg)
{
    snprintf(a->listen, sizeof a->listen, "%s", cfg->listen);
    a->max_connections = cfg->max_connections;
    a->timeout_s = cfg->timeout_s;
    a->threads = cfg->threads;
    a->per_ip_connections = cfg->per_ip_connections;
}

/* The view's identity, for /healthz (under health_lock). v is not yet
 * shared, or is the current view under `lock`. */
static void take_identity(dcem_api *a, const dcem_api_view *v)
{
    pthread_mutex_lock(&a->health_lock);
    snprintf(a->collector, sizeof a->collector, "%s", v->cfg->collector);
    snprintf(a->backend, sizeof a->backend, "%s", dcem_store_backend_name(v->st));
    a->schema_version = dcem_store_schema_version(v->st);
    pthread_mutex_unlock(&a->health_lock);
}

static int listen_on(dcem_api *a, char *err, size_t errlen)
{
    dcem_api_listen l;
    char why[256];
    if (dcem_api_listen_parse(a->listen, &l, why, sizeof why)) {
        snprintf(err, errlen, "api.listen: %s", why);
        return DCEM_ECONFIG;
    }
    struct sockaddr_in sin = {0};
    struct sockaddr_in6 sin6 = {0};
    const struct sockaddr *sa;
    /* a pool of threads, each with its own epoll set (see "Threads") */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (l.ipv6) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)l.port);
        memcpy(&sin6.sin6_addr, l.addr, 16);
        sa = (const struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)l.port);
        memcpy(&sin.sin_addr, l.addr, 4);
        sa = (const struct sockaddr *)&sin;
    }
    /* max_connections is split between the threads; per_ip_connections
     * is counted across all of them (0: no limit). timeout_s closes a
     * connection that sent and was sent nothing for that long. */
    a->daemon = MHD_start_daemon(
        flags, (uint16_t)l.port, NULL, NULL, on_request, a,
        /* first, so that MHD's own messages go to our log too */
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a, MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)a->threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)a->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)a->per_ip_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)a->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY, MHD_OPTION_URI_LOG_CALLBACK,
        on_uri, a, MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_END);
    if (!a->daemon) {
        snprintf(err, errlen, "api: cannot listen on %s (in use, or not an address of this host)",
                 a->listen);
        return DCEM_ESTORAGE;
    }
    DCEM_LOGI("api", "listening on http://%s%s (%lld threads, %lld connections, %lld per address)",
              a->listen,
              dcem_api_listen_is_loopback(&l) ? "" : " (not loopback: put TLS in front of it)",
              a->threads, a->max_connections, a->per_ip_connections);
    return 0;
}

int dcem_api_start(dcem_api_view *v, dcem_api **out, char *err, size_t errlen)
{
    *out = NULL;
    dcem_api *a = calloc(1, sizeof *a);
    if (!a) {
        dcem_api_view_free(v);
        snprintf(err, errlen, "api: out of memory");
        return DCEM_ENOMEM;
    }
    pthread_mutex_init(&a->lock, NULL);
    pthread_mutex_init(&a->health_lock, NULL);
    pthread_mutex_init(&a->log_lock, NULL);
    a->view = v;
    take_identity(a, v);
    if (!(a->reports = dcem_api_reports_new())) {
        dcem_api_stop(a);
        snprintf(err, errlen, "api: out of memory");
        return DCEM_ENOMEM;
    }
    take_listener(a, &v->cfg->api);
    a->health.store_ok = 1;
    int rc = listen_on(a, err, errlen);
    if (rc) {
        dcem_api_stop(a);
        return rc;
    }
    *out = a;
    return 0;
}

void dcem_api_repoint(dcem_api *a, dcem_api_view *v)
{
    take_identity(a, v);
    pthread_mutex_lock(&a->lock);
    dcem_api_view *old = a->view;
    a->view = v;
    dcem_api_reports_forget(a->reports); /* the new config may judge differently */
    pthread_mutex_unlock(&a->lock);
    dcem_api_view_free(old);
}

int dcem_api_same_listener(const dcem_collector_api *x, const dcem_collector_api *y)
{
    return !strcmp(x->listen, y->listen) && x->max_connections == y->max_connections &&
           x->timeout_s == y->timeout_s && x->threads == y->threads &&
           x->per_ip_connections == y->per_ip_connections;
}

int dcem_api_restart(dcem_api *a, char *err, size_t errlen)
{
    if (a->daemon) MHD_stop_daemon(a->daemon);
    a->daemon = NULL;
    pthread_mutex_lock(&a->lock);
    take_listener(a, &a->view->cfg->api);
    pthread_mutex_unlock(&a->lock);
    return listen_on(a, err, errlen);
}

void dcem_api_stop(dcem_api *a)
{
    if (!a) return;
    if (a->daemon) MHD_stop_daemon(a->daemon); /* joins its thread */
    dcem_api_view_free(a->view);
    dcem_api_reports_free(a->reports);
    pthread_mutex_destroy(&a->lock);
    pthread_mutex_destroy(&a->health_lock);
    pthread_mutex_destroy(&a->log_lock);
    free(a);
}

void dcem_api_set_health(dcem_api *a, const dcem_api_health *h)
{
    pthread_mutex_lock(&a->health_lock);
    a->health = *h;
    pthread_mutex_unlock(&a->health_lock);
}
