/* test_influx.c — the InfluxDB writer (gateway/influx) and the line-protocol
 * encoder (common/lineproto) against a real InfluxDB 1.6 (Debian `influxdb`,
 * influxd started here on free loopback ports with its own meta, data and
 * wal directories). Readiness is awaited by polling GET /ping for 204.
 *
 * Scenarios (one per run, argv[1]):
 *   roundtrip   writes before the database exists (404: kept, retried) and
 *               after; every value read back with /query exactly (floats
 *               bit for bit, integral floats stay floats, strings and tags
 *               with every escaped character); a batch with a field type
 *               conflict is refused (400), counted and not retried; gzip on
 *   plain       the same without gzip
 *   outage      influxd stopped for OUTAGE seconds (argv[3], default 60)
 *               while points keep coming and the writer restarts once; then
 *               influxd restarts on the same port and directories, the
 *               backlog drains, and every point is there exactly once
 *   cap         influxd absent while far more than the backlog cap is
 *               written: the oldest are dropped and counted, and exactly
 *               the newest points arrive once it is up
 * argv[2] is a scratch directory (emptied first). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "errors.h"
#include "influx.h"
#include "lineproto.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define T_BASE 1735689600000LL /* 2025-01-01T00:00:00Z, ms */
#define WAIT_MS 30000

static const char *g_scenario, *g_scratch;
static int g_outage_s = 60;

/* ---- clock ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* ---- HTTP (libcurl, independent of the writer) ---- */

typedef struct resp {
    char *data;
    size_t len;
} resp;

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    resp *r = arg;
    size_t k = size * n;
    char *d = realloc(r->data, r->len + k + 1);
    if (!d) return 0;
    memcpy(d + r->len, p, k);
    r->data = d;
    r->len += k;
    r->data[r->len] = '\0';
    return k;
}

/* GET (post == NULL) or POST; returns the status (0: no answer); the body
 * in *out (caller frees) when out != NULL. */
static long http(const char *url, const char *post, char **out)
{
    CURL *c = curl_easy_init();
    resp r = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    if (post) curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (out)
        *out = r.data;
    else
        free(r.data);
    return status;
}

/* ---- influxd ---- */

typedef struct influxd {
    char dir[512], conf[600], log[600];
    int http_port, rpc_port;
    pid_t pid;
} influxd;

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

/* The config of services.md, plus the RPC (backup) listener moved off its
 * fixed default 127.0.0.1:8088 so that parallel runs do not collide, and no
 * _internal monitoring database. */
static void influxd_config(influxd *d, const char *dir)
{
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    snprintf(d->conf, sizeof d->conf, "%s/influxd.conf", dir);
    snprintf(d->log, sizeof d->log, "%s/influxd.log", dir);
    d->http_port = free_port();
    do
        d->rpc_port = free_port();
    while (d->rpc_port == d->http_port);
    FILE *f = fopen(d->conf, "w");
    assert_non_null(f);
    fprintf(f,
            "reporting-disabled = true\n"
            "bind-address = \"127.0.0.1:%d\"\n"
            "[meta]\n  dir = \"%s/meta\"\n"
            "[data]\n  dir = \"%s/data\"\n  wal-dir = \"%s/wal\"\n  query-log-enabled = false\n"
            "[http]\n  bind-address = \"127.0.0.1:%d\"\n  log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            "[rpc]\n[coordinator]\n",
            d->rpc_port, dir, dir, dir, d->http_port);
    fclose(f);
}

static void url_of(const influxd *d, char *out, size_t size, const char *path)
{
    snprintf(out, size, "http://127.0.0.1:%d%s", d->http_port, path);
}

static void influxd_start(influxd *d)
{
    pid_t parent = getpid();
    d->pid = fork();
    assert_true(d->pid >= 0);
    if (d->pid == 0) {
        /* Dies with this test, however it ends (an abort, a CTest timeout):
         * no influxd is ever left behind holding a port. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(127);
        execlp("influxd", "influxd", "-config", d->conf, (char *)NULL);
        _exit(127); /* not installed: scripts/deps.sh installs it */
    }
    char url[128];
    url_of(d, url, sizeof url, "/ping");
    int64_t t0 = mono_ms();
    for (;;) {
        if (http(url, NULL, NULL) == 204) break;
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            fail_msg("influxd exited during start (status %d); see %s", st, d->log);
        }
        if (mono_ms() - t0 > WAIT_MS) fail_msg("influxd not ready after %d ms", WAIT_MS);
        nap_ms(50);
    }
    printf("influxd ready on port %d after %lld ms\n", d->http_port, (long long)(mono_ms() - t0));
}

static void influxd_stop(influxd *d)
{
    if (d->pid <= 0) return;
    kill(d->pid, SIGTERM);
    int64_t t0 = mono_ms();
    int st;
    while (waitpid(d->pid, &st, WNOHANG) == 0) {
        if (mono_ms() - t0 > 15000) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &st, 0);
            break;
        }
        nap_ms(20);
    }
    d->pid = 0;
}

static void create_db(influxd *d, const char *db)
{
    char url[128], q[160];
    url_of(d, url, sizeof url, "/query");
    snprintf(q, sizeof q, "q=CREATE DATABASE %s", db);
    assert_int_equal(http(url, q, NULL), 200);
}

/* Runs an InfluxQL query on db dcem with ms epochs; the parsed response
 * (caller deletes). */
static cJSON *query(influxd *d, const char *q)
{
    CURL *c = curl_easy_init();
    char *esc = curl_easy_escape(c, q, 0);
    curl_easy_cleanup(c);
    size_t n = strlen(esc) + 128;
    char *url = malloc(n);
    snprintf(url, n, "http://127.0.0.1:%d/query?db=dcem&epoch=ms&q=%s", d->http_port, esc);
    curl_free(esc);
    char *body = NULL;
    long status = http(url, NULL, &body);
    free(url);
    if (status != 200) fail_msg("query '%s': HTTP %ld: %s", q, status, body ? body : "");
    cJSON *j = cJSON_Parse(body);
    free(body);
    assert_non_null(j);
    return j;
}

/* The first series of the first result, or NULL when there is none. */
static cJSON *series(cJSON *j)
{
    cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "results"), 0);
    assert_non_null(r);
    cJSON *err = cJSON_GetObjectItem(r, "error");
    if (err) fail_msg("query error: %s", cJSON_GetStringValue(err));
    return cJSON_GetArrayItem(cJSON_GetObjectItem(r, "series"), 0);
}

static int column(cJSON *s, const char *name)
{
    cJSON *cols = cJSON_GetObjectItem(s, "columns");
    for (int i = 0; i < cJSON_GetArraySize(cols); i++)
        if (!strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(cols, i)), name)) return i;
    fail_msg("no column %s", name);
    return -1;
}

static long long count_of(influxd *d, const char *run)
{
    char q[160];
    snprintf(q, sizeof q, "SELECT COUNT(seq) FROM dcem_test WHERE run = '%s'", run);
    cJSON *j = query(d, q);
    cJSON *s = series(j);
    long long n = 0;
    if (s) {
        cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "values"), 0);
        n = (long long)cJSON_GetArrayItem(row, column(s, "count"))->valuedouble;
    }
    cJSON_Delete(j);
    return n;
}

/* ---- the points ---- */

/* Point seq of a run: its values follow from seq, so a reader can check
 * each one exactly. kwh is a counter with a fractional part no decimal
 * rounding survives (x.95 + k/10 + 1/3); every 7th is integral. */
static double kwh_of(long long seq)
{
    return seq % 7 == 0 ? 6800.0 + (double)seq : 42949672.95 + (double)seq / 10.0 + 1.0 / 3.0;
}

static const char *meter_of(long long seq)
{
    static const char *const m[] = {"pdu-a1", "ups 2", "pv,roof", "rack=7", "eas\\t", "x\\ "};
    return m[seq % 6];
}

static void add_point(dcem_influx *w, const char *run, long long seq)
{
    char note[64];
    snprintf(note, sizeof note, "say \"%lld\" \\ back", seq);
    dcem_lp_tag tags[] = {{"run", run}, {"meter", meter_of(seq)}, {"empty", ""}};
    dcem_lp_field fields[] = {
        {.key = "seq", .type = DCEM_LP_INT, .i = seq},
        {.key = "kwh", .type = DCEM_LP_FLOAT, .f = kwh_of(seq)},
        {.key = "ok", .type = DCEM_LP_BOOL, .b = (int)(seq % 2)},
        {.key = "note", .type = DCEM_LP_STRING, .s = note},
    };
    dcem_lp_point p = {.measurement = "dcem_test",
                       .tags = tags,
                       .n_tags = 3,
                       .fields = fields,
                       .n_fields = 4,
                       .has_time = 1,
                       .time = T_BASE + seq};
    char line[512];
    size_t len = 0;
    char why[128];
    int rc = dcem_lp_append(line, sizeof line, &len, &p, why, sizeof why);
    if (rc) fail_msg("encode: %s", why);
    assert_int_equal(dcem_influx_add(w, line, len), 0);
}

/* Every point of run with seq in [from, to) is there exactly once with its
 * exact values, and nothing else is. */
static void check_run(influxd *d, const char *run, long long from, long long to)
{
    char q[200];
    snprintf(q, sizeof q, "SELECT seq, kwh, ok, note, meter FROM dcem_test WHERE run = '%s'", run);
    cJSON *j = query(d, q);
    cJSON *s = series(j);
    long long n = to - from;
    if (!s) {
        assert_int_equal(n, 0);
        cJSON_Delete(j);
        return;
    }
    int c_t = column(s, "time"), c_seq = column(s, "seq"), c_kwh = column(s, "kwh"),
        c_ok = column(s, "ok"), c_note = column(s, "note"), c_meter = column(s, "meter");
    cJSON *values = cJSON_GetObjectItem(s, "values");
    unsigned char *seen = calloc((size_t)n, 1);
    int rows = cJSON_GetArraySize(values);
    for (int i = 0; i < rows; i++) {
        cJSON *row = cJSON_GetArrayItem(values, i);
        long long seq = (long long)cJSON_GetArrayItem(row, c_seq)->valuedouble;
        if (seq < from || seq >= to) fail_msg("run %s: unexpected seq %lld", run, seq);
        if (seen[seq - from]++) fail_msg("run %s: seq %lld twice", run, seq);
        assert_true(cJSON_GetArrayItem(row, c_t)->valuedouble == (double)(T_BASE + seq));
        double kwh = cJSON_GetArrayItem(row, c_kwh)->valuedouble;
        if (kwh != kwh_of(seq)) fail_msg("seq %lld: kwh %.17g != %.17g", seq, kwh, kwh_of(seq));
        assert_true(cJSON_IsBool(cJSON_GetArrayItem(row, c_ok)));
        assert_int_equal(cJSON_IsTrue(cJSON_GetArrayItem(row, c_ok)), seq % 2);
        char note[64];
        snprintf(note, sizeof note, "say \"%lld\" \\ back", seq);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(row, c_note)), note);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(row, c_meter)), meter_of(seq));
    }
    free(seen);
    cJSON_Delete(j);
    assert_int_equal(rows, n);
    assert_int_equal(count_of(d, run), n);
}

/* ---- writer helpers ---- */

typedef struct fx {
    char dir[400];
    influxd db;
    dcem_influx_cfg cfg;
    dcem_influx *w;
} fx;

static void writer_open(fx *f)
{
    char err[256];
    int rc = dcem_influx_new(&f->cfg, &f->w, err, sizeof err);
    if (rc) fail_msg("dcem_influx_new: %s", err);
}

static dcem_influx_stats stats(fx *f)
{
    dcem_influx_stats st;
    dcem_influx_stats_get(f->w, &st);
    return st;
}

/* Ticks on the real clock until nothing is buffered or in the backlog. */
static void drain(fx *f, int64_t limit_ms)
{
    int64_t t0 = mono_ms();
    for (;;) {
        dcem_influx_tick(f->w, mono_ms());
        dcem_influx_stats st = stats(f);
        if (!st.lines_buffered && !st.backlog_batches) break;
        if (mono_ms() - t0 > limit_ms)
            fail_msg("not drained after %lld ms: %llu buffered, %llu in the backlog",
                     (long long)limit_ms, (unsigned long long)st.lines_buffered,
                     (unsigned long long)st.backlog_lines);
        nap_ms(20);
    }
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    int n = snprintf(f->dir, sizeof f->dir, "%s/%s", g_scratch, g_scenario);
    if (n < 0 || (size_t)n >= sizeof f->dir) fail_msg("scratch path too long");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
    influxd_config(&f->db, f->dir);
    dcem_influx_cfg_defaults(&f->cfg);
    snprintf(f->cfg.url, sizeof f->cfg.url, "http://127.0.0.1:%d", f->db.http_port);
    snprintf(f->cfg.db, sizeof f->cfg.db, "dcem");
    snprintf(f->cfg.backlog_dir, sizeof f->cfg.backlog_dir, "%s/backlog", f->dir);
    f->cfg.flush_interval_ms = 200;
    f->cfg.retry_initial_ms = 200;
    f->cfg.retry_max_ms = 2000;
    f->cfg.timeout_ms = 5000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    dcem_influx_free(f->w);
    influxd_stop(&f->db);
    free(f);
    return 0;
}

/* ---- scenarios ---- */

static void roundtrip(fx *f)
{
    influxd_start(&f->db);
    writer_open(f);

    /* No database yet: 404 is configuration, not a bad batch: kept. */
    for (long long i = 0; i < 10; i++)
        add_point(f->w, "pre", i);
    dcem_influx_flush(f->w);
    dcem_influx_stats st = stats(f);
    assert_int_equal(st.last_status, 404);
    assert_int_equal(st.down, 1);
    assert_int_equal(st.backlog_lines, 10);
    assert_int_equal(st.batches_rejected, 0);
    create_db(&f->db, "dcem");
    drain(f, 10000);
    check_run(&f->db, "pre", 0, 10);

    /* 20000 points in batches of batch_max_lines (5000). */
    int64_t t0 = mono_ms();
    for (long long i = 0; i < 20000; i++)
        add_point(f->w, "r", i);
    drain(f, 30000);
    printf("20000 points written in %lld ms\n", (long long)(mono_ms() - t0));
    check_run(&f->db, "r", 0, 20000);

    /* Types as stored: the integral floats did not make kwh an integer. */
    cJSON *j = query(&f->db, "SHOW FIELD KEYS FROM dcem_test");
    cJSON *s = series(j);
    static const char *const want[][2] = {
        {"kwh", "float"}, {"note", "string"}, {"ok", "boolean"}, {"seq", "integer"}};
    cJSON *values = cJSON_GetObjectItem(s, "values");
    assert_int_equal(cJSON_GetArraySize(values), 4);
    for (int i = 0; i < 4; i++) {
        cJSON *row = cJSON_GetArrayItem(values, i);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(row, 0)), want[i][0]);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(row, 1)), want[i][1]);
    }
    cJSON_Delete(j);

    /* The reference's escaping cases, as InfluxDB reads them back. */
    static const char *const tricky[] = {"east west", "\\,,=east", "east\\ ", "\\ east",
                                         "eas\\t",    "\"a",       "a,b=c d"};
    for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
        dcem_lp_tag tags[] = {{"regions", tricky[i]}, {"reg\\=ion", "k"}};
        dcem_lp_field fl[] = {{.key = "name=bar baz,x", .type = DCEM_LP_INT, .i = (int64_t)i}};
        dcem_lp_point p = {.measurement = "cpu main,x=y",
                           .tags = tags,
                           .n_tags = 2,
                           .fields = fl,
                           .n_fields = 1,
                           .has_time = 1,
                           .time = T_BASE + (int64_t)i};
        char line[256];
        size_t len = 0;
        assert_int_equal(dcem_lp_append(line, sizeof line, &len, &p, NULL, 0), 0);
        assert_int_equal(dcem_influx_add(f->w, line, len), 0);
    }
    drain(f, 10000);
    j = query(&f->db, "SELECT * FROM \"cpu main,x=y\"");
    s = series(j);
    assert_non_null(s);
    int c_k = column(s, "name=bar baz,x"), c_r = column(s, "regions"), c_e = column(s, "reg\\=ion");
    values = cJSON_GetObjectItem(s, "values");
    assert_int_equal(cJSON_GetArraySize(values), sizeof tricky / sizeof tricky[0]);
    for (int i = 0; i < cJSON_GetArraySize(values); i++) {
        cJSON *row = cJSON_GetArrayItem(values, i);
        int k = (int)cJSON_GetArrayItem(row, c_k)->valuedouble;
        assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(row, c_r)), tricky[k]);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(row, c_e)), "k");
    }
    cJSON_Delete(j);

    /* A field type conflict is a bad batch: 400, dropped, counted, never
     * retried; the writer carries on. */
    uint64_t req0 = stats(f).requests;
    const char *bad = "dcem_test,run=conflict seq=\"text\" 1735689600000";
    assert_int_equal(dcem_influx_add(f->w, bad, strlen(bad)), 0);
    dcem_influx_flush(f->w);
    st = stats(f);
    assert_int_equal(st.last_status, 400);
    assert_int_equal(st.batches_rejected, 1);
    assert_int_equal(st.lines_rejected, 1);
    assert_int_equal(st.backlog_batches, 0);
    assert_int_equal(st.down, 0);
    for (int i = 0; i < 5; i++) {
        dcem_influx_tick(f->w, mono_ms());
        nap_ms(50);
    }
    assert_int_equal(stats(f).requests, req0 + 1);
    for (long long i = 0; i < 10; i++)
        add_point(f->w, "post", i);
    drain(f, 10000);
    check_run(&f->db, "post", 0, 10);
    st = stats(f);
    assert_int_equal(st.dropped_lines, 0);
    assert_int_equal(st.corrupt_batches, 0);
    assert_int_equal(st.lines_written, 10 + 20000 + 7 + 10);
}

static void test_roundtrip(void **state)
{
    fx *f = *state;
    f->cfg.gzip = 1;
    roundtrip(f);
}

static void test_plain(void **state)
{
    fx *f = *state;
    f->cfg.gzip = 0;
    roundtrip(f);
}

static void test_outage(void **state)
{
    fx *f = *state;
    influxd_start(&f->db);
    create_db(&f->db, "dcem");
    writer_open(f);
    for (long long i = 0; i < 500; i++)
        add_point(f->w, "before", i);
    drain(f, 10000);
    check_run(&f->db, "before", 0, 500);

    /* influxd goes away; a point every 50 ms keeps coming, the loop ticks,
     * and halfway through the writer itself restarts. */
    influxd_stop(&f->db);
    printf("influxd stopped; outage of %d s\n", g_outage_s);
    long long seq = 0;
    int64_t t0 = mono_ms(), end = t0 + g_outage_s * 1000LL;
    int restarted = 0;
    while (mono_ms() < end) {
        add_point(f->w, "during", seq++);
        dcem_influx_tick(f->w, mono_ms());
        if (!restarted && mono_ms() - t0 >= g_outage_s * 500LL) {
            dcem_influx_stats st = stats(f);
            assert_int_equal(st.down, 1);
            assert_true(st.backlog_lines > 0);
            dcem_influx_free(f->w); /* buffered lines go to the backlog too */
            f->w = NULL;
            writer_open(f);
            st = stats(f);
            printf("writer restarted: %llu lines in %llu backlog batches\n",
                   (unsigned long long)st.backlog_lines, (unsigned long long)st.backlog_batches);
            assert_int_equal(st.backlog_lines, (uint64_t)seq);
            restarted = 1;
        }
        nap_ms(50);
    }
    dcem_influx_stats st = stats(f);
    printf("during the outage: %lld points; backlog %llu lines, %llu batches, %llu bytes; "
           "%llu failed requests\n",
           seq, (unsigned long long)st.backlog_lines, (unsigned long long)st.backlog_batches,
           (unsigned long long)st.backlog_bytes, (unsigned long long)st.requests_failed);
    assert_int_equal(st.down, 1);
    assert_int_equal(st.last_status, 0);
    assert_int_equal(st.lines_written, 0); /* this writer has written nothing yet */

    influxd_start(&f->db); /* same port, same directories */
    int64_t t1 = mono_ms();
    for (int i = 0; i < 10; i++)
        add_point(f->w, "during", seq++); /* still coming */
    drain(f, 60000);
    printf("backlog drained %lld ms after influxd answered again\n", (long long)(mono_ms() - t1));
    st = stats(f);
    assert_int_equal(st.down, 0);
    assert_int_equal(st.dropped_lines, 0);
    assert_int_equal(st.lines_rejected, 0);
    assert_int_equal(st.corrupt_batches, 0);
    check_run(&f->db, "during", 0, seq);
    check_run(&f->db, "before", 0, 500);
}

static void test_cap(void **state)
{
    fx *f = *state;
    f->cfg.batch_max_lines = 20;
    f->cfg.batch_max_bytes = 4096;
    f->cfg.backlog_max_mib = 0.0625; /* 64 KiB */
    writer_open(f);
    const long long total = 3000;
    for (long long i = 0; i < total; i++) {
        add_point(f->w, "capped", i);
        dcem_influx_tick(f->w, mono_ms());
    }
    dcem_influx_flush(f->w);
    dcem_influx_stats st = stats(f);
    printf("backlog: %llu lines in %llu batches, %llu bytes; dropped %llu lines in %llu "
           "batches\n",
           (unsigned long long)st.backlog_lines, (unsigned long long)st.backlog_batches,
           (unsigned long long)st.backlog_bytes, (unsigned long long)st.dropped_lines,
           (unsigned long long)st.dropped_batches);
    assert_true(st.backlog_bytes <= 65536);
    assert_true(st.dropped_lines > 0);
    assert_int_equal(st.backlog_lines + st.dropped_lines, (uint64_t)total);
    uint64_t kept = st.backlog_lines;

    influxd_start(&f->db);
    create_db(&f->db, "dcem");
    drain(f, 30000);
    st = stats(f);
    assert_int_equal(st.lines_written, kept);
    /* Exactly the newest points, each once. */
    check_run(&f->db, "capped", total - (long long)kept, total);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s roundtrip|plain|outage|cap SCRATCH_DIR [OUTAGE_S]\n", argv[0]);
        return 2;
    }
    g_scenario = argv[1];
    g_scratch = argv[2];
    if (argc > 3) g_outage_s = (int)strtol(argv[3], NULL, 10);
    if (g_outage_s < 1) g_outage_s = 1;
    static const struct {
        const char *name;
        CMUnitTestFunction fn;
    } all[] = {{"roundtrip", test_roundtrip},
               {"plain", test_plain},
               {"outage", test_outage},
               {"cap", test_cap}};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(all[i].name, g_scenario)) continue;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        const struct CMUnitTest t[] = {{all[i].name, all[i].fn, setup, teardown, NULL}};
        int failed = _cmocka_run_group_tests(all[i].name, t, 1, NULL, NULL);
        curl_global_cleanup();
        return failed;
    }
    fprintf(stderr, "unknown scenario %s\n", g_scenario);
    return 2;
}
