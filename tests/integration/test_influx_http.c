/* test_influx_http.c — the InfluxDB writer (gateway/influx) against a small
 * HTTP listener of this test's own on a free loopback port: a real socket
 * that records each request (request line, headers, body) and answers with
 * a scripted status, so what goes over the wire is checked byte for byte —
 * including the InfluxDB 2.x request format, which the 1.6 server of
 * test_influx.c cannot take. Also: the config table and its cross-field
 * rules, batching by lines, bytes and time, 4xx dropped and counted, retry
 * with capped exponential backoff on the tick clock, request timeouts, the
 * backlog across restarts, drop-oldest at both caps, corrupt and torn
 * backlog files, and the backlog lock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "backlog.h"
#include "cfg.h"
#include "errors.h"
#include "influx.h"
#include "lineproto.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define T0 1000000 /* tick clock at the start of each test */
#define MAX_REQS 512

/* ---- the listener ---- */

typedef struct http_req {
    char line[512];  /* "POST /write?db=... HTTP/1.1" */
    char head[8192]; /* header lines, "\r\n"-separated, as received */
    char *body;
    size_t body_len;
} http_req;

typedef struct listener {
    int fd, port;
    pthread_t th;
    pthread_mutex_t mu;
    int script[64]; /* statuses to answer, in order; then 204 */
    size_t n_script, next;
    int hang; /* answer nothing until the client gives up */
    int stop;
    http_req reqs[MAX_REQS];
    size_t n_reqs;
} listener;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Case-insensitive search of a header; its value (up to CR) or NULL. */
static const char *header(const char *head, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (const char *p = head; *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > n && p[n] == ':' && !strncasecmp(p, name, n)) {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(p + len - v);
            if (vl >= size) vl = size - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        if (!eol) break;
        p = eol + 2;
    }
    return NULL;
}

static void serve_one(listener *l, int c)
{
    char buf[16384];
    size_t len = 0;
    char *end = NULL;
    while (!end && len < sizeof buf - 1) {
        ssize_t r = recv(c, buf + len, sizeof buf - 1 - len, 0);
        if (r <= 0) return;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end) return;
    http_req q;
    memset(&q, 0, sizeof q);
    char *eol = strstr(buf, "\r\n");
    snprintf(q.line, sizeof q.line, "%.*s", (int)(eol - buf), buf);
    snprintf(q.head, sizeof q.head, "%.*s", (int)(end - eol - 2), eol + 2);
    char cl[32];
    size_t body_len =
        header(q.head, "Content-Length", cl, sizeof cl) ? (size_t)strtoul(cl, NULL, 10) : 0;
    q.body = malloc(body_len + 1);
    size_t have = len - (size_t)(end + 4 - buf);
    if (have > body_len) have = body_len;
    memcpy(q.body, end + 4, have);
    while (have < body_len) {
        ssize_t r = recv(c, q.body + have, body_len - have, 0);
        if (r <= 0) break;
        have += (size_t)r;
    }
    q.body[have] = '\0';
    q.body_len = have;

    pthread_mutex_lock(&l->mu);
    if (l->n_reqs < MAX_REQS)
        l->reqs[l->n_reqs++] = q;
    else
        free(q.body);
    int hang = l->hang;
    int status = l->next < l->n_script ? l->script[l->next++] : 204;
    pthread_mutex_unlock(&l->mu);

    if (hang) { /* until the client hangs up or the test ends */
        while (!l->stop) {
            struct pollfd p = {.fd = c, .events = POLLIN};
            if (poll(&p, 1, 50) > 0 && recv(c, buf, sizeof buf, 0) <= 0) break;
        }
        return;
    }
    const char *body = status == 204 ? "" : "{\"error\":\"scripted failure\"}";
    char resp[512];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d Scripted\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     status, strlen(body), body);
    send(c, resp, (size_t)n, MSG_NOSIGNAL);
}

static void *listener_main(void *arg)
{
    listener *l = arg;
    while (!l->stop) {
        struct pollfd p = {.fd = l->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(l->fd, NULL, NULL);
        if (c < 0) continue;
        serve_one(l, c);
        close(c);
    }
    return NULL;
}

/* A free loopback port: bound to 0, read back, closed. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static listener *listener_start(int port)
{
    listener *l = calloc(1, sizeof *l);
    assert_non_null(l);
    pthread_mutex_init(&l->mu, NULL);
    l->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(l->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l->fd, 16), 0);
    assert_int_equal(getsockname(l->fd, (struct sockaddr *)&a, &al), 0);
    l->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&l->th, NULL, listener_main, l), 0);
    return l;
}

static void listener_stop(listener *l)
{
    if (!l) return;
    l->stop = 1;
    pthread_join(l->th, NULL);
    close(l->fd);
    for (size_t i = 0; i < l->n_reqs; i++)
        free(l->reqs[i].body);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static void script(listener *l, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    pthread_mutex_lock(&l->mu);
    l->n_script = l->next = 0;
    for (int i = 0; i < n; i++)
        l->script[l->n_script++] = va_arg(ap, int);
    pthread_mutex_unlock(&l->mu);
    va_end(ap);
}

static size_t n_reqs(listener *l)
{
    pthread_mutex_lock(&l->mu);
    size_t n = l->n_reqs;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* Body of request i, gunzipped when it says Content-Encoding: gzip. Caller
 * frees. */
static char *body_of(listener *l, size_t i)
{
    assert_true(i < n_reqs(l));
    http_req *q = &l->reqs[i];
    char enc[32];
    if (!header(q->head, "Content-Encoding", enc, sizeof enc)) return strdup(q->body);
    assert_string_equal(enc, "gzip");
    size_t cap = 1 << 24;
    char *out = malloc(cap + 1);
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)q->body;
    z.avail_in = (uInt)q->body_len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    out[z.total_out] = '\0';
    inflateEnd(&z);
    return out;
}

static void assert_body(listener *l, size_t i, const char *want)
{
    char *b = body_of(l, i);
    assert_string_equal(b, want);
    free(b);
}

/* ---- fixture ---- */

typedef struct fx {
    char dir[64];
    listener *l;
    dcem_influx_cfg cfg;
    dcem_influx *w;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/dcem-influx-http-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->l = listener_start(0);
    dcem_influx_cfg_defaults(&f->cfg);
    snprintf(f->cfg.url, sizeof f->cfg.url, "http://127.0.0.1:%d", f->l->port);
    snprintf(f->cfg.db, sizeof f->cfg.db, "dcem");
    snprintf(f->cfg.backlog_dir, sizeof f->cfg.backlog_dir, "%s/backlog", f->dir);
    f->cfg.gzip = 0;
    f->cfg.retry_initial_ms = 100;
    f->cfg.retry_max_ms = 400;
    f->cfg.timeout_ms = 2000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    dcem_influx_free(f->w);
    listener_stop(f->l);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void open_writer(fx *f)
{
    char err[256];
    int rc = dcem_influx_new(&f->cfg, &f->w, err, sizeof err);
    if (rc) fail_msg("dcem_influx_new: %d %s", rc, err);
    assert_int_equal(dcem_influx_tick(f->w, T0), 0);
}

static dcem_influx_stats stats(fx *f)
{
    dcem_influx_stats st;
    dcem_influx_stats_get(f->w, &st);
    return st;
}

static void add(fx *f, const char *line)
{
    assert_int_equal(dcem_influx_add(f->w, line, strlen(line)), 0);
}

/* ---- config ---- */

typedef struct wrap {
    dcem_influx_cfg influx;
} wrap;

static const dcem_cfg_field wrap_fields[] = {
    {.key = "influx",
     .type = DCEM_CFG_MAP,
     .offset = offsetof(wrap, influx),
     .flags = DCEM_CFG_REQUIRED,
     .sub = dcem_influx_cfg_fields},
    {0},
};

/* Parses the YAML, then the cross-field check; the first error or "". */
static int parse(const char *yaml, wrap *w, char *err, size_t errlen)
{
    err[0] = '\0';
    int rc = dcem_cfg_parse("collector.yaml", yaml, strlen(yaml), wrap_fields, w, err, errlen);
    if (!rc) rc = dcem_influx_cfg_check(&w->influx, "collector.yaml", err, errlen);
    return rc;
}

static void test_config(void **state)
{
    (void)state;
    wrap w;
    char err[512];
    assert_int_equal(parse("influx:\n  url: http://db:8086\n  db: dcem\n  backlog_dir: /var/b\n",
                           &w, err, sizeof err),
                     0);
    dcem_influx_cfg d;
    dcem_influx_cfg_defaults(&d);
    assert_int_equal(w.influx.version, 1);
    assert_int_equal(w.influx.batch_max_lines, 5000);
    assert_int_equal(w.influx.batch_max_bytes, 1 << 20);
    assert_int_equal(w.influx.flush_interval_ms, 1000);
    assert_int_equal(w.influx.gzip, 1);
    assert_int_equal(w.influx.timeout_ms, 10000);
    assert_int_equal(w.influx.retry_max_ms, 60000);
    assert_true(w.influx.backlog_max_mib == 256);
    /* dcem_influx_cfg_defaults gives the same as the table. */
    assert_int_equal(d.batch_max_lines, 5000);
    assert_int_equal(d.gzip, 1);
    assert_true(d.backlog_max_mib == 256);
    assert_int_equal(d.backlog_max_batches, 100000);

    assert_int_equal(parse("influx:\n  url: https://h\n  version: 2\n  org: o\n  bucket: b\n"
                           "  token: t\n  backlog_dir: /b\n",
                           &w, err, sizeof err),
                     0);
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"influx:\n  url: http://h\n  backlog_dir: /b\n", "collector.yaml:2: db: required"},
        {"influx:\n  url: ftp://h\n  db: d\n  backlog_dir: /b\n", "collector.yaml:2: url:"},
        {"influx:\n  url: http://\n  db: d\n  backlog_dir: /b\n", "collector.yaml:2: url:"},
        {"influx:\n  url: http://h/?x=1\n  db: d\n  backlog_dir: /b\n", "collector.yaml:2: url:"},
        {"influx:\n  url: http://h\n  db: d\n  token: t\n  backlog_dir: /b\n",
         "collector.yaml:2: token: only for version 2"},
        {"influx:\n  url: http://h\n  db: d\n  username: u\n  backlog_dir: /b\n",
         "collector.yaml:2: password: give both"},
        {"influx:\n  url: http://h\n  version: 2\n  org: o\n  bucket: b\n  backlog_dir: /b\n",
         "collector.yaml:2: token: required with version 2"},
        {"influx:\n  url: http://h\n  version: 2\n  org: o\n  bucket: b\n  token: t\n  db: d\n"
         "  backlog_dir: /b\n",
         "collector.yaml:2: db: only for version 1"},
        {"influx:\n  url: http://h\n  version: 3\n  db: d\n  backlog_dir: /b\n", "version"},
        {"influx:\n  url: http://h\n  db: d\n  backlog_dir: /b\n  retry_initial_ms: 5000\n"
         "  retry_max_ms: 1000\n",
         "collector.yaml:2: retry_max_ms:"},
        {"influx:\n  url: http://h\n  db: d\n  backlog_dir: /b\n  backlog_max_mib: 1\n"
         "  batch_max_bytes: 2000000\n",
         "collector.yaml:2: backlog_max_mib:"},
        {"influx:\n  url: http://h\n  db: d\n", "backlog_dir"},
        {"influx:\n  url: http://h\n  db: d\n  backlog_dir: /b\n  bogus: 1\n", "bogus"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse(bad[i].yaml, &w, err, sizeof err);
        if (rc != DCEM_ECONFIG || !strstr(err, bad[i].want))
            fail_msg("case %zu: rc %d, err '%s', want '%s'", i, rc, err, bad[i].want);
    }
}

static void test_add_validation(void **state)
{
    fx *f = *state;
    f->cfg.batch_max_bytes = 1024;
    open_writer(f);
    assert_int_equal(dcem_influx_add(f->w, "", 0), DCEM_EINVAL);
    assert_int_equal(dcem_influx_add(f->w, "\n", 1), DCEM_EINVAL);
    assert_int_equal(dcem_influx_add(f->w, "m v=1\nm v=2", 11), DCEM_EINVAL);
    assert_int_equal(dcem_influx_add(f->w, "m v=1\r", 6), DCEM_EINVAL);
    char big[1100];
    memset(big, 'a', sizeof big);
    assert_int_equal(dcem_influx_add(f->w, big, 1024), DCEM_ERANGE); /* 1024 + '\n' > 1024 */
    assert_int_equal(dcem_influx_add(f->w, big, 1023), 0);
    assert_int_equal(dcem_influx_add(f->w, "m v=1\n", 6), 0); /* its '\n' is not doubled */
    dcem_influx_stats st = stats(f);
    assert_int_equal(st.lines_buffered, 1); /* the big line went out alone */
    assert_int_equal(st.bytes_buffered, 6);
    assert_int_equal(n_reqs(f->l), 1);
    assert_int_equal(f->l->reqs[0].body_len, 1024);
    assert_int_equal(st.lines_written, 1);
}

/* ---- request format ---- */

static void test_v2_format(void **state)
{
    fx *f = *state;
    f->cfg.version = 2;
    f->cfg.db[0] = '\0';
    snprintf(f->cfg.org, sizeof f->cfg.org, "my org");
    snprintf(f->cfg.bucket, sizeof f->cfg.bucket, "dcem/raw");
    snprintf(f->cfg.token, sizeof f->cfg.token, "s3cr3t-T0ken==");
    size_t n = strlen(f->cfg.url);
    snprintf(f->cfg.url + n, sizeof f->cfg.url - n, "/"); /* a trailing slash is dropped */
    open_writer(f);

    /* A line as the collector makes it. */
    char line[256];
    size_t len = 0;
    dcem_lp_tag tags[] = {{"site", "sh-dc01"}, {"meter", "pdu a1"}};
    dcem_lp_field fields[] = {{.key = "kwh", .type = DCEM_LP_FLOAT, .f = 42949672.95},
                              {.key = "quality", .type = DCEM_LP_STRING, .s = "ok"}};
    dcem_lp_point p = {.measurement = "dcem_reading",
                       .tags = tags,
                       .n_tags = 2,
                       .fields = fields,
                       .n_fields = 2,
                       .has_time = 1,
                       .time = 1735689600000};
    assert_int_equal(dcem_lp_append(line, sizeof line, &len, &p, NULL, 0), 0);
    assert_int_equal(dcem_influx_add(f->w, line, len), 0);
    add(f, "m v=2i 1735689600001");
    dcem_influx_flush(f->w);

    assert_int_equal(n_reqs(f->l), 1);
    http_req *q = &f->l->reqs[0];
    assert_string_equal(q->line,
                        "POST /api/v2/write?org=my%20org&bucket=dcem%2Fraw&precision=ms HTTP/1.1");
    char v[256];
    assert_non_null(header(q->head, "Authorization", v, sizeof v));
    assert_string_equal(v, "Token s3cr3t-T0ken==");
    assert_non_null(header(q->head, "Content-Type", v, sizeof v));
    assert_string_equal(v, "text/plain; charset=utf-8");
    assert_null(header(q->head, "Content-Encoding", v, sizeof v));
    assert_null(header(q->head, "Expect", v, sizeof v));
    assert_non_null(header(q->head, "Content-Length", v, sizeof v));
    assert_body(f->l, 0,
                "dcem_reading,meter=pdu\\ a1,site=sh-dc01 kwh=42949672.95,quality=\"ok\" "
                "1735689600000\nm v=2i 1735689600001\n");
    dcem_influx_stats st = stats(f);
    assert_int_equal(st.lines_written, 2);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.requests_failed, 0);
    assert_int_equal(st.last_status, 204);
    assert_int_equal(st.lines_buffered, 0);
}

static void test_v2_gzip(void **state)
{
    fx *f = *state;
    f->cfg.version = 2;
    f->cfg.db[0] = '\0';
    snprintf(f->cfg.org, sizeof f->cfg.org, "o");
    snprintf(f->cfg.bucket, sizeof f->cfg.bucket, "b");
    snprintf(f->cfg.token, sizeof f->cfg.token, "t");
    f->cfg.gzip = 1;
    open_writer(f);
    char want[64 * 40 + 1] = "";
    for (int i = 0; i < 64; i++) {
        char line[40];
        snprintf(line, sizeof line, "dcem_reading,meter=m%02d kwh=%d.5 %d", i, i, 1000 + i);
        add(f, line);
        size_t n = strlen(want);
        snprintf(want + n, sizeof want - n, "%s\n", line);
    }
    dcem_influx_flush(f->w);
    assert_int_equal(n_reqs(f->l), 1);
    http_req *q = &f->l->reqs[0];
    char v[64];
    assert_non_null(header(q->head, "Content-Encoding", v, sizeof v));
    assert_string_equal(v, "gzip");
    assert_true(q->body_len < strlen(want)); /* it did compress */
    assert_body(f->l, 0, want);
}

static void test_v1_format_auth(void **state)
{
    fx *f = *state;
    snprintf(f->cfg.db, sizeof f->cfg.db, "dc em&x");
    snprintf(f->cfg.rp, sizeof f->cfg.rp, "one_year");
    snprintf(f->cfg.username, sizeof f->cfg.username, "dcem");
    snprintf(f->cfg.password, sizeof f->cfg.password, "s3cret");
    open_writer(f);
    add(f, "m v=1 1");
    dcem_influx_flush(f->w);
    assert_int_equal(n_reqs(f->l), 1);
    http_req *q = &f->l->reqs[0];
    assert_string_equal(q->line, "POST /write?db=dc%20em%26x&rp=one_year&precision=ms HTTP/1.1");
    char v[128];
    assert_non_null(header(q->head, "Authorization", v, sizeof v));
    assert_string_equal(v, "Basic ZGNlbTpzM2NyZXQ=");
    assert_body(f->l, 0, "m v=1 1\n");
}

static void test_v1_no_rp_no_auth(void **state)
{
    fx *f = *state;
    open_writer(f);
    add(f, "m v=1 1");
    dcem_influx_flush(f->w);
    assert_string_equal(f->l->reqs[0].line, "POST /write?db=dcem&precision=ms HTTP/1.1");
    char v[128];
    assert_null(header(f->l->reqs[0].head, "Authorization", v, sizeof v));
}

/* ---- batching ---- */

static void test_flush_by_lines_and_bytes(void **state)
{
    fx *f = *state;
    f->cfg.batch_max_lines = 3;
    f->cfg.batch_max_bytes = 1024;
    open_writer(f);
    for (int i = 0; i < 7; i++) {
        char line[32];
        snprintf(line, sizeof line, "m v=%di %d", i, i);
        add(f, line);
    }
    /* 7 lines in batches of 3: two requests, one line still buffered. */
    assert_int_equal(n_reqs(f->l), 2);
    assert_body(f->l, 0, "m v=0i 0\nm v=1i 1\nm v=2i 2\n");
    assert_body(f->l, 1, "m v=3i 3\nm v=4i 4\nm v=5i 5\n");
    assert_int_equal(stats(f).lines_buffered, 1);
    dcem_influx_flush(f->w);
    assert_body(f->l, 2, "m v=6i 6\n");

    /* By bytes: 3 lines of 400 bytes (401 with '\n') do not fit 1024. */
    char line[401];
    memset(line, 'x', 400);
    memcpy(line, "m s=\"", 5);
    line[399] = '"';
    line[400] = '\0';
    add(f, line);
    add(f, line);
    assert_int_equal(n_reqs(f->l), 3);
    add(f, line);
    assert_int_equal(n_reqs(f->l), 4);
    assert_int_equal(f->l->reqs[3].body_len, 802);
    assert_int_equal(stats(f).lines_buffered, 1);
}

static void test_flush_by_time(void **state)
{
    fx *f = *state;
    f->cfg.flush_interval_ms = 1000;
    open_writer(f);
    dcem_influx_tick(f->w, T0 + 100);
    add(f, "m v=1 1"); /* stamped with the last tick: T0 + 100 */
    dcem_influx_tick(f->w, T0 + 500);
    add(f, "m v=2 2");
    dcem_influx_tick(f->w, T0 + 1099);
    assert_int_equal(n_reqs(f->l), 0);
    dcem_influx_tick(f->w, T0 + 1100);
    assert_int_equal(n_reqs(f->l), 1);
    assert_body(f->l, 0, "m v=1 1\nm v=2 2\n");
    dcem_influx_tick(f->w, T0 + 5000); /* nothing buffered: no request */
    assert_int_equal(n_reqs(f->l), 1);
}

/* ---- failures ---- */

static void test_rejected_400(void **state)
{
    fx *f = *state;
    open_writer(f);
    script(f->l, 1, 400);
    add(f, "m v=1 1");
    dcem_influx_flush(f->w);
    dcem_influx_stats st = stats(f);
    assert_int_equal(st.batches_rejected, 1);
    assert_int_equal(st.lines_rejected, 1);
    assert_int_equal(st.requests_failed, 1);
    assert_int_equal(st.last_status, 400);
    assert_int_equal(st.backlog_batches, 0);
    assert_int_equal(st.down, 0);
    /* Never sent again; the next batch goes straight through. */
    for (int t = 1; t <= 10; t++)
        dcem_influx_tick(f->w, T0 + t * 1000);
    assert_int_equal(n_reqs(f->l), 1);
    add(f, "m v=2 2");
    dcem_influx_flush(f->w);
    assert_int_equal(n_reqs(f->l), 2);
    assert_body(f->l, 1, "m v=2 2\n");
    st = stats(f);
    assert_int_equal(st.lines_written, 1);
    assert_int_equal(st.batches_rejected, 1);

    /* 413 (too large) is a bad batch too. */
    script(f->l, 1, 413);
    add(f, "m v=3 3");
    dcem_influx_flush(f->w);
    assert_int_equal(stats(f).batches_rejected, 2);
    assert_int_equal(stats(f).backlog_batches, 0);
}

/* 503, 500, 429, 404, 401: retried, waiting retry_initial_ms doubling to
 * retry_max_ms on the tick clock; batches made meanwhile queue behind and
 * all go in order in one request once it answers. */
static void test_retry_backoff(void **state)
{
    fx *f = *state;
    open_writer(f);
    script(f->l, 6, 503, 500, 429, 404, 401, 503);
    add(f, "m v=1 1");
    dcem_influx_flush(f->w); /* request 1: 503 */
    dcem_influx_stats st = stats(f);
    assert_int_equal(st.down, 1);
    assert_int_equal(st.retry_at_ms, T0 + 100);
    assert_int_equal(st.backlog_batches, 1);
    assert_int_equal(st.backlog_lines, 1);
    assert_int_equal(st.last_status, 503);

    static const struct {
        int64_t at;
        size_t reqs;
        int64_t retry_at;
    } steps[] = {
        {T0 + 99, 1, T0 + 100},    {T0 + 100, 2, T0 + 300}, /* 500: wait 200 */
        {T0 + 299, 2, T0 + 300},   {T0 + 300, 3, T0 + 700}, /* 429: wait 400 */
        {T0 + 700, 4, T0 + 1100},                           /* 404: wait 400 (the cap) */
        {T0 + 1100, 5, T0 + 1500},                          /* 401 */
        {T0 + 1500, 6, T0 + 1900},                          /* 503 */
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        dcem_influx_tick(f->w, steps[i].at);
        if (i == 2) {
            add(f, "m v=2 2"); /* while down: queued behind the first */
            dcem_influx_flush(f->w);
        }
        assert_int_equal(n_reqs(f->l), steps[i].reqs);
        st = stats(f);
        assert_int_equal(st.down, 1);
        assert_int_equal(st.retry_at_ms, steps[i].retry_at);
    }
    assert_int_equal(st.backlog_batches, 2);
    assert_int_equal(st.requests_failed, 6);
    assert_int_equal(st.batches_rejected, 0);
    add(f, "m v=3 3");                 /* buffered, not due yet */
    dcem_influx_tick(f->w, T0 + 1900); /* 204: the backlog in one request */
    assert_int_equal(n_reqs(f->l), 7);
    assert_body(f->l, 6, "m v=1 1\nm v=2 2\n");
    st = stats(f);
    assert_int_equal(st.down, 0);
    assert_int_equal(st.backlog_batches, 0);
    assert_int_equal(st.lines_written, 2);
    assert_int_equal(st.lines_buffered, 1);
    dcem_influx_tick(f->w, T0 + 5000);
    assert_body(f->l, 7, "m v=3 3\n");
    /* Each retry carried the same batches: the first alone until the
     * second had queued behind it. */
    assert_body(f->l, 1, "m v=1 1\n");
    for (size_t i = 2; i < 6; i++)
        assert_body(f->l, i, "m v=1 1\nm v=2 2\n");
    /* Recovery reset the backoff: the next failure waits retry_initial_ms. */
    script(f->l, 1, 502);
    add(f, "m v=4 4");
    dcem_influx_flush(f->w);
    assert_int_equal(stats(f).retry_at_ms, T0 + 5000 + 100);
}

/* A server that accepts and never answers costs at most timeout_ms. */
static void test_timeout(void **state)
{
    fx *f = *state;
    f->cfg.timeout_ms = 300;
    open_writer(f);
    f->l->hang = 1;
    add(f, "m v=1 1");
    int64_t t = mono_ms();
    dcem_influx_flush(f->w);
    int64_t took = mono_ms() - t;
    assert_true(took >= 250 && took < 2000);
    dcem_influx_stats st = stats(f);
    assert_int_equal(st.down, 1);
    assert_int_equal(st.last_status, 0);
    assert_int_equal(st.backlog_batches, 1);
    f->l->hang = 0;
    dcem_influx_tick(f->w, T0 + 100);
    assert_int_equal(stats(f).backlog_batches, 0);
    assert_int_equal(stats(f).lines_written, 1);
    assert_body(f->l, n_reqs(f->l) - 1, "m v=1 1\n");
}

/* Nothing listens: connection refused, batches to disk; a restarted writer
 * finds them and sends them, in order, when the server is there. */
static void test_backlog_across_restart(void **state)
{
    fx *f = *state;
    int port = free_port();
    snprintf(f->cfg.url, sizeof f->cfg.url, "http://127.0.0.1:%d", port);
    open_writer(f);
    for (int i = 1; i <= 3; i++) {
        char line[32];
        snprintf(line, sizeof line, "m v=%d %d", i, i);
        add(f, line);
        dcem_influx_flush(f->w);
        dcem_influx_tick(f->w, T0 + i * 1000); /* each retry is refused too */
    }
    add(f, "m v=4 4");
    dcem_influx_stats st = stats(f);
    assert_int_equal(st.backlog_batches, 3);
    assert_int_equal(st.lines_buffered, 1);
    assert_int_equal(st.last_status, 0);
    assert_true(st.requests_failed >= 2);
    dcem_influx_free(f->w); /* the buffered line goes to disk too */
    f->w = NULL;

    listener_stop(f->l);
    f->l = listener_start(port);
    open_writer(f); /* ticks at T0: drains */
    st = stats(f);
    assert_int_equal(st.backlog_batches, 0);
    assert_int_equal(st.lines_written, 4);
    assert_int_equal(n_reqs(f->l), 1);
    assert_body(f->l, 0, "m v=1 1\nm v=2 2\nm v=3 3\nm v=4 4\n");
}

/* The backlog is drained in requests of at most batch_max_lines lines and
 * DCEM_INFLUX_DRAIN_REQUESTS requests per tick. */
static void test_drain_limits(void **state)
{
    fx *f = *state;
    f->cfg.batch_max_lines = 2;
    int port = free_port();
    snprintf(f->cfg.url, sizeof f->cfg.url, "http://127.0.0.1:%d", port);
    open_writer(f);
    for (int i = 0; i < 40; i++) { /* 40 batches of one line */
        char line[32];
        snprintf(line, sizeof line, "m v=%d %d", i, i);
        add(f, line);
        dcem_influx_flush(f->w);
    }
    assert_int_equal(stats(f).backlog_batches, 40);
    dcem_influx_free(f->w);
    f->w = NULL;
    listener_stop(f->l);
    f->l = listener_start(port);
    open_writer(f);
    assert_int_equal(n_reqs(f->l), DCEM_INFLUX_DRAIN_REQUESTS);
    assert_int_equal(stats(f).backlog_batches, 40 - 2 * DCEM_INFLUX_DRAIN_REQUESTS);
    for (int t = 1; t < 10; t++)
        dcem_influx_tick(f->w, T0 + t);
    assert_int_equal(n_reqs(f->l), 20);
    for (size_t i = 0; i < 20; i++) {
        char want[64];
        snprintf(want, sizeof want, "m v=%zu %zu\nm v=%zu %zu\n", 2 * i, 2 * i, 2 * i + 1,
                 2 * i + 1);
        assert_body(f->l, i, want);
    }
}

/* At either cap the oldest batches go, counted; the newest are kept. */
static void test_drop_oldest(void **state)
{
    fx *f = *state;
    f->cfg.batch_max_bytes = 1024;
    f->cfg.backlog_max_mib = 0.0625; /* 65536 bytes: 32 batches of 1024 + 32 - 8 */
    int port = free_port();
    snprintf(f->cfg.url, sizeof f->cfg.url, "http://127.0.0.1:%d", port);
    open_writer(f);
    char line[1024];
    for (int i = 0; i < 100; i++) {
        memset(line, 'x', sizeof line);
        int n = snprintf(line, sizeof line, "m seq=%03di,s=\"", i);
        line[n] = 'x'; /* keep the padding */
        line[1021] = '"';
        line[1022] = '\0'; /* 1022 bytes + '\n' = 1023: one line per batch */
        add(f, line);
        dcem_influx_flush(f->w);
    }
    dcem_influx_stats st = stats(f);
    /* 1023 + 32 = 1055 bytes a file: floor(65536 / 1055) = 62 fit. */
    assert_int_equal(st.backlog_batches, 62);
    assert_int_equal(st.backlog_bytes, 62 * 1055);
    assert_int_equal(st.dropped_batches, 38);
    assert_int_equal(st.dropped_lines, 38);
    dcem_influx_free(f->w);
    f->w = NULL;

    /* Reopened with a batch-count cap of 5: only the newest 5 stay. */
    f->cfg.backlog_max_batches = 5;
    listener_stop(f->l);
    f->l = listener_start(port);
    f->cfg.batch_max_lines = 100;
    f->cfg.batch_max_bytes = 16384;
    f->cfg.backlog_max_mib = 1;
    open_writer(f);
    st = stats(f);
    assert_int_equal(st.dropped_batches, 62 - 5);
    assert_int_equal(st.backlog_batches, 0);
    assert_int_equal(st.lines_written, 5);
    char *b = body_of(f->l, 0);
    for (int i = 95; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "seq=%03di", i);
        assert_non_null(strstr(b, key));
    }
    assert_null(strstr(b, "seq=094i"));
    free(b);
}

static int count_suffix(const char *dir, const char *suffix)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '\\.%s$' > %s.count", dir, suffix, dir);
    if (system(cmd) == -1) return -1;
    char path[160];
    snprintf(path, sizeof path, "%s.count", dir);
    FILE *fp = fopen(path, "r");
    char buf[16] = "";
    if (fp) {
        if (!fgets(buf, sizeof buf, fp)) buf[0] = '\0';
        fclose(fp);
    }
    unlink(path);
    return (int)strtol(buf, NULL, 10);
}

/* A torn .tmp is deleted, a file with a bad header is set aside at open, a
 * body that fails its CRC is set aside when read; the rest is sent. */
static void test_corrupt_backlog(void **state)
{
    fx *f = *state;
    int port = free_port();
    snprintf(f->cfg.url, sizeof f->cfg.url, "http://127.0.0.1:%d", port);
    open_writer(f);
    for (int i = 1; i <= 4; i++) {
        char line[32];
        snprintf(line, sizeof line, "m v=%d %d", i, i);
        add(f, line);
        dcem_influx_flush(f->w);
    }
    dcem_influx_free(f->w);
    f->w = NULL;
    const char *d = f->cfg.backlog_dir;
    char path[DCEM_INFLUX_PATH_MAX + 64];
    /* batch 2: a flipped body byte */
    snprintf(path, sizeof path, "%s/b-%020d.lp", d, 2);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, DCEM_BACKLOG_HEADER + 2), 1);
    close(fd);
    /* batch 3: a bad magic */
    snprintf(path, sizeof path, "%s/b-%020d.lp", d, 3);
    fd = open(path, O_RDWR);
    assert_int_equal(pwrite(fd, "XXXX", 4, 0), 4);
    close(fd);
    /* a torn write and a stranger */
    snprintf(path, sizeof path, "%s/b-%020d.tmp", d, 5);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_int_equal(write(fd, "DCIB", 4), 4);
    close(fd);
    snprintf(path, sizeof path, "%s/notes.txt", d);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    close(fd);

    listener_stop(f->l);
    f->l = listener_start(port);
    open_writer(f);
    dcem_influx_stats st = stats(f);
    assert_int_equal(st.corrupt_batches, 2);
    assert_int_equal(st.backlog_batches, 0);
    assert_int_equal(st.lines_written, 2);
    assert_body(f->l, 0, "m v=1 1\nm v=4 4\n");
    assert_int_equal(count_suffix(d, "corrupt"), 2);
    assert_int_equal(count_suffix(d, "tmp"), 0);
    assert_int_equal(count_suffix(d, "lp"), 0);
    snprintf(path, sizeof path, "%s/notes.txt", d);
    assert_int_equal(access(path, F_OK), 0); /* not ours: left alone */

    /* New batches continue above every seq seen, never reusing a name. */
    script(f->l, 1, 503);
    add(f, "m v=6 6");
    dcem_influx_flush(f->w);
    snprintf(path, sizeof path, "%s/b-%020d.lp", d, 6);
    assert_int_equal(access(path, F_OK), 0);
}

/* One process per backlog directory (fcntl locks are per process, so the
 * second opener is a child). */
static void test_lock(void **state)
{
    fx *f = *state;
    open_writer(f);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dcem_backlog *b = NULL;
        char err[256];
        int rc = dcem_backlog_open(f->cfg.backlog_dir, 1 << 20, 10, &b, err, sizeof err);
        _exit(rc == DCEM_ESTORAGE && strstr(err, "held by another process") ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test_setup_teardown(test_add_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_format_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_no_rp_no_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_by_lines_and_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_by_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_across_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
