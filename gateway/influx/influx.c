#include "influx.h"
#include "backlog.h"
#include "dcem_log.h"
#include "errors.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZLIB_CONST
#include <zlib.h>

#define MOD "influx"
#define MIB (1024.0 * 1024.0)

/* ---- configuration ---- */

/* clang-format off */
#define C(f) offsetof(dcem_influx_cfg, f)
const dcem_cfg_field dcem_influx_cfg_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = C(line)},
    {.key = "url", .type = DCEM_CFG_STRING, .offset = C(url), .size = DCEM_INFLUX_URL_MAX,
     .flags = DCEM_CFG_REQUIRED, .help = "http(s)://host:port of InfluxDB"},
    {.key = "version", .type = DCEM_CFG_INT, .offset = C(version), .min = 1, .max = 2, .def = 1,
     .help = "1: InfluxDB 1.x /write; 2: InfluxDB 2.x/3.x /api/v2/write"},
    {.key = "db", .type = DCEM_CFG_STRING, .offset = C(db), .size = DCEM_INFLUX_NAME_MAX,
     .help = "v1: database"},
    {.key = "rp", .type = DCEM_CFG_STRING, .offset = C(rp), .size = DCEM_INFLUX_NAME_MAX,
     .help = "v1: retention policy (empty: the database's default)"},
    {.key = "username", .type = DCEM_CFG_STRING, .offset = C(username),
     .size = DCEM_INFLUX_NAME_MAX, .help = "v1: user (HTTP basic auth)"},
    {.key = "password", .type = DCEM_CFG_STRING, .offset = C(password),
     .size = DCEM_INFLUX_SECRET_MAX, .help = "v1: password"},
    {.key = "org", .type = DCEM_CFG_STRING, .offset = C(org), .size = DCEM_INFLUX_NAME_MAX,
     .help = "v2: organisation"},
    {.key = "bucket", .type = DCEM_CFG_STRING, .offset = C(bucket), .size = DCEM_INFLUX_NAME_MAX,
     .help = "v2: bucket"},
    {.key = "token", .type = DCEM_CFG_STRING, .offset = C(token), .size = DCEM_INFLUX_SECRET_MAX,
     .help = "v2: API token with write access to the bucket"},
    {.key = "ca_file", .type = DCEM_CFG_STRING, .offset = C(ca_file),
     .size = DCEM_INFLUX_PATH_MAX, .help = "https: CA bundle (empty: the system's)"},
    {.key = "batch_max_lines", .type = DCEM_CFG_INT, .offset = C(batch_max_lines), .min = 1,
     .max = 1000000, .def = 5000},
    {.key = "batch_max_bytes", .type = DCEM_CFG_INT, .offset = C(batch_max_bytes), .min = 1024,
     .max = 16 << 20, .def = 1 << 20,
     .help = "keep below the server's max body size (1.x: 25 MB)"},
    {.key = "flush_interval_ms", .type = DCEM_CFG_INT, .offset = C(flush_interval_ms), .min = 10,
     .max = 600000, .def = 1000},
    {.key = "gzip", .type = DCEM_CFG_BOOL, .offset = C(gzip), .def = 1},
    {.key = "timeout_ms", .type = DCEM_CFG_INT, .offset = C(timeout_ms), .min = 100,
     .max = 300000, .def = 10000},
    {.key = "retry_initial_ms", .type = DCEM_CFG_INT, .offset = C(retry_initial_ms), .min = 10,
     .max = 600000, .def = 1000},
    {.key = "retry_max_ms", .type = DCEM_CFG_INT, .offset = C(retry_max_ms), .min = 10,
     .max = 3600000, .def = 60000},
    {.key = "backlog_dir", .type = DCEM_CFG_STRING, .offset = C(backlog_dir),
     .size = DCEM_INFLUX_PATH_MAX, .flags = DCEM_CFG_REQUIRED,
     .help = "directory of the on-disk backlog (created if missing)"},
    {.key = "backlog_max_mib", .type = DCEM_CFG_DOUBLE, .offset = C(backlog_max_mib),
     .min = 0.0625, .max = 1 << 20, .def = 256},
    {.key = "backlog_max_batches", .type = DCEM_CFG_INT, .offset = C(backlog_max_batches),
     .min = 1, .max = 10000000, .def = 100000},
    {0},
};
#undef C
/* clang-format on */

void dcem_influx_cfg_defaults(dcem_influx_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (const dcem_cfg_field *f = dcem_influx_cfg_fields; f->key; f++) {
        char *p = (char *)cfg + f->offset;
        switch (f->type) {
        case DCEM_CFG_INT:
            if (!isnan(f->def)) *(long long *)p = (long long)f->def;
            break;
        case DCEM_CFG_DOUBLE:
            if (!isnan(f->def)) *(double *)p = f->def;
            break;
        case DCEM_CFG_BOOL:
            *(int *)p = (int)f->def;
            break;
        case DCEM_CFG_STRING:
            if (f->def_str) snprintf(p, f->size, "%s", f->def_str);
            break;
        default:
            break;
        }
    }
}

int dcem_influx_cfg_check(const dcem_influx_cfg *c, const char *name, char *err, size_t errlen)
{
    const char *host = !strncmp(c->url, "http://", 7)    ? c->url + 7
                       : !strncmp(c->url, "https://", 8) ? c->url + 8
                                                         : NULL;
    if (!host || !*host || *host == '/')
        return dcem_cfg_error(err, errlen, name, c->line, "url",
                              "'%s': expected http://host:port or https://host:port", c->url);
    if (strpbrk(c->url, "?# "))
        return dcem_cfg_error(err, errlen, name, c->line, "url",
                              "'%s': no query, fragment or space (the writer adds the query)",
                              c->url);
    static const char *const v1_keys[] = {"db", "rp", "username", "password"};
    static const char *const v2_keys[] = {"org", "bucket", "token"};
    const char *v1[] = {c->db, c->rp, c->username, c->password};
    const char *v2[] = {c->org, c->bucket, c->token};
    if (c->version == 1) {
        if (!*c->db)
            return dcem_cfg_error(err, errlen, name, c->line, "db", "required with version 1");
        for (int i = 0; i < 3; i++)
            if (*v2[i])
                return dcem_cfg_error(err, errlen, name, c->line, v2_keys[i],
                                      "only for version 2 (this section says version 1)");
        if (!*c->username != !*c->password)
            return dcem_cfg_error(err, errlen, name, c->line,
                                  *c->username ? "password" : "username",
                                  "give both username and password, or neither");
    } else {
        for (int i = 0; i < 3; i++)
            if (!*v2[i])
                return dcem_cfg_error(err, errlen, name, c->line, v2_keys[i],
                                      "required with version 2");
        for (int i = 0; i < 4; i++)
            if (*v1[i])
                return dcem_cfg_error(err, errlen, name, c->line, v1_keys[i],
                                      "only for version 1 (this section says version 2)");
    }
    if (c->retry_max_ms < c->retry_initial_ms)
        return dcem_cfg_error(err, errlen, name, c->line, "retry_max_ms",
                              "%lld is below retry_initial_ms (%lld)", c->retry_max_ms,
                              c->retry_initial_ms);
    if (c->backlog_max_mib * MIB < (double)(c->batch_max_bytes + DCEM_BACKLOG_HEADER))
        return dcem_cfg_error(err, errlen, name, c->line, "backlog_max_mib",
                              "%g MiB does not hold one batch of batch_max_bytes (%lld)",
                              c->backlog_max_mib, c->batch_max_bytes);
    if (!*c->backlog_dir)
        return dcem_cfg_error(err, errlen, name, c->line, "backlog_dir", "required");
    return 0;
}

/* ---- the writer ---- */

enum { SENT = 0, REJECTED, RETRY }; /* outcome of one request */

struct dcem_influx {
    dcem_influx_cfg cfg;
    CURL *curl;
    struct curl_slist *headers;
    char *url; /* the write endpoint with its query */
    char curl_err[CURL_ERROR_SIZE];

    char *buf; /* the batch being filled: cap batch_max_bytes */
    size_t len;
    uint32_t lines;
    int64_t since; /* tick clock when its first line came */

    char *req; /* a request assembled from the backlog */
    size_t req_cap;
    unsigned char *gz; /* gzip of the body being sent */
    size_t gz_cap;
    char resp[512]; /* start of the last response body, for the log */
    size_t resp_len;

    dcem_backlog *bl;
    int64_t now; /* last tick */
    int down;    /* requests fail; wait until retry_at */
    int64_t retry_at;
    int64_t delay; /* current backoff */

    dcem_influx_progress_fn progress;
    void *progress_ctx;
    int in_progress; /* inside the progress function: no re-entry */

    dcem_influx_stats st;              /* request counters; the rest is filled on demand */
    uint64_t lost_batches, lost_lines; /* backlog writes that failed */
    dcem_complaint c_down, c_rejected, c_disk;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    dcem_influx *w = arg;
    size_t n = size * nmemb, room = sizeof w->resp - 1 - w->resp_len;
    size_t k = n < room ? n : room;
    memcpy(w->resp + w->resp_len, ptr, k);
    w->resp_len += k;
    w->resp[w->resp_len] = '\0';
    return n; /* the rest is read and discarded */
}

/* The response body as one printable line for the log. */
static const char *resp_text(dcem_influx *w)
{
    for (size_t i = 0; i < w->resp_len; i++)
        if ((unsigned char)w->resp[i] < 0x20) w->resp[i] = ' ';
    while (w->resp_len && w->resp[w->resp_len - 1] == ' ')
        w->resp[--w->resp_len] = '\0';
    return w->resp_len ? w->resp : "(no body)";
}

static int grow(void *pp, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    void *p = realloc(*(void **)pp, need);
    if (!p) return -1;
    *(void **)pp = p;
    *cap = need;
    return 0;
}

/* gzip of body into w->gz; returns its length, or 0 when it failed (the
 * body then goes uncompressed). */
static size_t gzip_body(dcem_influx *w, const char *body, size_t len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    size_t bound = deflateBound(&z, (uLong)len);
    size_t out = 0;
    if (!grow(&w->gz, &w->gz_cap, bound)) {
        z.next_in = (const Bytef *)body;
        z.avail_in = (uInt)len;
        z.next_out = w->gz;
        z.avail_out = (uInt)bound;
        if (deflate(&z, Z_FINISH) == Z_STREAM_END) out = (size_t)z.total_out;
    }
    deflateEnd(&z);
    return out;
}

static void backoff(dcem_influx *w)
{
    if (!w->delay)
        w->delay = w->cfg.retry_initial_ms;
    else
        w->delay = w->delay * 2 > w->cfg.retry_max_ms ? w->cfg.retry_max_ms : w->delay * 2;
    w->down = 1;
    w->retry_at = w->now + w->delay;
}

static void up_again(dcem_influx *w)
{
    if (w->down || w->c_down.count) {
        dcem_backlog_stat bs;
        dcem_backlog_stats(w->bl, &bs);
        dcem_release(&w->c_down, MOD, "%s answers again; sending the backlog of %llu lines",
                     w->cfg.url, (unsigned long long)bs.lines);
    }
    w->down = 0;
    w->delay = 0;
    w->retry_at = 0;
}

/* 2xx: written. Other 4xx: this batch is bad (unparsable, too large, a
 * field type conflict): resending it cannot succeed, so it is dropped and
 * counted. 401/403/404 are configuration (credentials, database or bucket
 * not created yet) and 408/429 ask to come back later: like 5xx and network
 * errors they are retried, the batches waiting in the bounded backlog. */
static int classify(long status)
{
    if (status >= 200 && status < 300) return SENT;
    if (status >= 400 && status < 500 && status != 401 && status != 403 && status != 404 &&
        status != 408 && status != 429)
        return REJECTED;
    return RETRY;
}

static int send_batch(dcem_influx *w, const char *body, size_t len, uint32_t lines)
{
    const char *data = body;
    size_t dlen = len;
    if (w->cfg.gzip) {
        size_t z = gzip_body(w, body, len);
        if (!z) {
            /* The header says gzip: without it the body would be refused. */
            DCEM_LOGE(MOD, "gzip of a %zu-byte batch failed; retrying later", len);
            w->st.requests_failed++;
            backoff(w);
            return RETRY;
        }
        data = (const char *)w->gz;
        dlen = z;
    }
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)dlen);
    w->resp_len = 0;
    w->resp[0] = '\0';
    w->curl_err[0] = '\0';
    CURLcode cc = curl_easy_perform(w->curl);
    w->st.requests++;
    long status = 0;
    if (cc == CURLE_OK) curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
    w->st.last_status = status;
    int outcome = cc == CURLE_OK ? classify(status) : RETRY;
    if (outcome == SENT) {
        w->st.lines_written += lines;
        up_again(w);
        dcem_release(&w->c_rejected, MOD, "batches are accepted again");
        DCEM_LOGD(MOD, "wrote %u lines (%zu bytes, %zu sent)", (unsigned)lines, len, dlen);
        return SENT;
    }
    w->st.requests_failed++;
    if (outcome == REJECTED) {
        w->st.batches_rejected++;
        w->st.lines_rejected += lines;
        up_again(w); /* it answered: the server is up */
        dcem_complain(&w->c_rejected, DCEM_LOG_ERROR, MOD,
                      "%s refused a batch of %u lines: HTTP %ld: %.300s; dropped (counted in "
                      "lines_rejected)",
                      w->cfg.url, (unsigned)lines, status, resp_text(w));
        return REJECTED;
    }
    backoff(w);
    if (cc != CURLE_OK)
        dcem_complain(&w->c_down, DCEM_LOG_WARN, MOD,
                      "%s: %s; batches wait in the backlog %s, retrying every %lld..%lld ms",
                      w->cfg.url, w->curl_err[0] ? w->curl_err : curl_easy_strerror(cc),
                      w->cfg.backlog_dir, w->cfg.retry_initial_ms, w->cfg.retry_max_ms);
    else
        dcem_complain(&w->c_down, DCEM_LOG_WARN, MOD,
                      "%s: HTTP %ld: %.300s%s; batches wait in the backlog %s, retrying every "
                      "%lld..%lld ms",
                      w->cfg.url, status, resp_text(w),
                      status == 401 || status == 403 || status == 404
                          ? " (check the database/bucket and the credentials)"
                          : "",
                      w->cfg.backlog_dir, w->cfg.retry_initial_ms, w->cfg.retry_max_ms);
    return RETRY;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    dcem_influx *w = arg;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    if (w->progress && !w->in_progress) {
        w->in_progress = 1;
        w->progress(w->progress_ctx);
        w->in_progress = 0;
    }
    return 0; /* go on: the request's own timeout bounds it */
}

void dcem_influx_set_progress(dcem_influx *w, dcem_influx_progress_fn fn, void *ctx)
{
    w->progress = fn;
    w->progress_ctx = ctx;
    curl_easy_setopt(w->curl, CURLOPT_XFERINFOFUNCTION, fn ? on_progress : NULL);
    curl_easy_setopt(w->curl, CURLOPT_XFERINFODATA, w);
    curl_easy_setopt(w->curl, CURLOPT_NOPROGRESS, fn ? 0L : 1L);
}

/* One batch of spilled lines to the backlog, or lost and counted. */
static void spill_push(dcem_influx *w, const char *body, size_t len, uint32_t lines)
{
    int rc = dcem_backlog_push(w->bl, body, len, lines);
    if (rc) {
        w->lost_batches++;
        w->lost_lines += lines;
        dcem_complain(&w->c_disk, DCEM_LOG_ERROR, MOD,
                      "backlog: %s; a batch of %u lines is lost (counted in dropped_lines)",
                      dcem_backlog_error(w->bl), (unsigned)lines);
    } else {
        dcem_release(&w->c_disk, MOD, "backlog %s writable again", w->cfg.backlog_dir);
    }
}

void dcem_influx_spill(dcem_influx *w, const char *lines, size_t len)
{
    size_t start = 0, at = 0;
    uint32_t n = 0;
    while (at < len) {
        const char *nl = memchr(lines + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - lines) + 1 : len;
        /* the batch from start would grow past a limit with this line */
        if (n && (n + 1 > (uint64_t)w->cfg.batch_max_lines ||
                  end - start > (size_t)w->cfg.batch_max_bytes)) {
            spill_push(w, lines + start, at - start, n);
            start = at;
            n = 0;
        }
        n++;
        at = end;
    }
    if (n) spill_push(w, lines + start, at - start, n);
}

static void clear_batch(dcem_influx *w)
{
    w->len = 0;
    w->lines = 0;
}

/* The buffered batch goes to the backlog; if even that fails it is lost,
 * and counted. */
static void spill(dcem_influx *w)
{
    spill_push(w, w->buf, w->len, w->lines);
    clear_batch(w);
}

static int may_send(const dcem_influx *w)
{
    return !w->down || w->now >= w->retry_at;
}

void dcem_influx_flush(dcem_influx *w)
{
    if (!w || !w->len) return;
    /* Behind a backlog, or while waiting to retry, the batch queues on disk
     * so that batches reach InfluxDB in the order they were made. */
    if (dcem_backlog_count(w->bl) || !may_send(w)) {
        spill(w);
        return;
    }
    if (send_batch(w, w->buf, w->len, w->lines) == RETRY)
        spill(w);
    else
        clear_batch(w);
}

/* Sends the backlog oldest first, several batches per request up to the
 * batch limits, until it is empty, a request fails, or the per-tick budget
 * is spent. */
static void drain(dcem_influx *w)
{
    for (int r = 0; r < DCEM_INFLUX_DRAIN_REQUESTS && dcem_backlog_count(w->bl) && may_send(w);
         r++) {
        size_t len = 0, n = 0;
        uint64_t lines = 0;
        for (;;) {
            size_t blen = 0;
            uint32_t bl = 0;
            int rc = dcem_backlog_read(w->bl, n, w->req + len, w->req_cap - len, &blen, &bl);
            if (rc == DCEM_ERANGE && n == 0) {
                /* Written under a larger batch_max_bytes: send it alone. */
                if (grow(&w->req, &w->req_cap, blen)) {
                    DCEM_LOGE(MOD, "out of memory reading the backlog");
                    return;
                }
                continue;
            }
            if (rc) break; /* none left, or the next does not fit this request */
            if (n && lines + bl > (uint64_t)w->cfg.batch_max_lines) break;
            len += blen;
            lines += bl;
            n++;
        }
        if (!n) break; /* what was left failed its checks and was set aside */
        int outcome = send_batch(w, w->req, len, (uint32_t)lines);
        if (outcome == RETRY) break;
        dcem_backlog_pop(w->bl, n);
        if (!dcem_backlog_count(w->bl)) DCEM_LOGI(MOD, "backlog sent: it is empty");
    }
}

int dcem_influx_tick(dcem_influx *w, int64_t now_ms)
{
    w->now = now_ms;
    if (dcem_backlog_count(w->bl) && may_send(w)) drain(w);
    if (w->len && now_ms - w->since >= w->cfg.flush_interval_ms) dcem_influx_flush(w);
    return 0;
}

int dcem_influx_add(dcem_influx *w, const char *line, size_t len)
{
    if (len && line[len - 1] == '\n') len--;
    if (!len || memchr(line, '\n', len) || memchr(line, '\r', len)) return DCEM_EINVAL;
    if (len + 1 > (size_t)w->cfg.batch_max_bytes) return DCEM_ERANGE;
    if (w->lines + 1 > (uint64_t)w->cfg.batch_max_lines ||
        w->len + len + 1 > (size_t)w->cfg.batch_max_bytes)
        dcem_influx_flush(w); /* always leaves the buffer empty */
    if (!w->len) w->since = w->now;
    memcpy(w->buf + w->len, line, len);
    w->buf[w->len + len] = '\n';
    w->len += len + 1;
    w->lines++;
    return 0;
}

/* base + path + query, with the names URL-escaped. */
static char *build_url(CURL *curl, const dcem_influx_cfg *c)
{
    size_t base = strlen(c->url);
    while (base && c->url[base - 1] == '/')
        base--;
    const char *k1 = c->version == 1 ? "db" : "org", *k2 = c->version == 1 ? "rp" : "bucket";
    char *v1 = curl_easy_escape(curl, c->version == 1 ? c->db : c->org, 0);
    char *v2 = curl_easy_escape(curl, c->version == 1 ? c->rp : c->bucket, 0);
    char *url = NULL;
    if (v1 && v2) {
        const char *path = c->version == 1 ? "/write" : "/api/v2/write";
        int second = *v2 != '\0'; /* v1 rp is optional */
        int n =
            snprintf(NULL, 0, "%.*s%s?%s=%s%s%s%s%s&precision=ms", (int)base, c->url, path, k1, v1,
                     second ? "&" : "", second ? k2 : "", second ? "=" : "", second ? v2 : "");
        if (n > 0 && (url = malloc((size_t)n + 1)))
            snprintf(url, (size_t)n + 1, "%.*s%s?%s=%s%s%s%s%s&precision=ms", (int)base, c->url,
                     path, k1, v1, second ? "&" : "", second ? k2 : "", second ? "=" : "",
                     second ? v2 : "");
    }
    curl_free(v1);
    curl_free(v2);
    return url;
}

static int setup_curl(dcem_influx *w)
{
    const dcem_influx_cfg *c = &w->cfg;
    if (!(w->curl = curl_easy_init()) || !(w->url = build_url(w->curl, c))) return -1;
    struct curl_slist *h = NULL, *t;
    char auth[DCEM_INFLUX_SECRET_MAX + 32];
    snprintf(auth, sizeof auth, "Authorization: Token %s", c->token);
    const char *lines[] = {"Content-Type: text/plain; charset=utf-8", "Accept: application/json",
                           "Expect:", /* no 100-continue round trip */
                           c->gzip ? "Content-Encoding: gzip" : NULL,
                           c->version == 2 ? auth : NULL};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (!lines[i]) continue;
        if (!(t = curl_slist_append(h, lines[i]))) {
            curl_slist_free_all(h);
            return -1;
        }
        h = t;
    }
    memset(auth, 0, sizeof auth);
    w->headers = h;
    CURL *k = w->curl;
    curl_easy_setopt(k, CURLOPT_URL, w->url);
    curl_easy_setopt(k, CURLOPT_POST, 1L);
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, w->headers);
    curl_easy_setopt(k, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(k, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM for DNS timeouts: threads */
    curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(k, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(k, CURLOPT_ERRORBUFFER, w->curl_err);
    curl_easy_setopt(k, CURLOPT_USERAGENT, "dcem-collector");
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(k, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(k, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (*c->ca_file) curl_easy_setopt(k, CURLOPT_CAINFO, c->ca_file);
    if (c->version == 1 && *c->username) {
        curl_easy_setopt(k, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(k, CURLOPT_USERNAME, c->username);
        curl_easy_setopt(k, CURLOPT_PASSWORD, c->password);
    }
    return 0;
}

int dcem_influx_new(const dcem_influx_cfg *cfg, dcem_influx **out, char *err, size_t errlen)
{
    *out = NULL;
    int rc = dcem_influx_cfg_check(cfg, "influx", err, errlen);
    if (rc) return rc;
    dcem_influx *w = calloc(1, sizeof *w);
    if (!w) return DCEM_ENOMEM;
    w->cfg = *cfg;
    w->buf = malloc((size_t)cfg->batch_max_bytes);
    w->req_cap = (size_t)cfg->batch_max_bytes;
    w->req = malloc(w->req_cap);
    if (!w->buf || !w->req || setup_curl(w)) {
        snprintf(err, errlen, "influx: out of memory (or libcurl could not start)");
        dcem_influx_free(w);
        return DCEM_ENOMEM;
    }
    rc = dcem_backlog_open(cfg->backlog_dir, (uint64_t)(cfg->backlog_max_mib * MIB),
                           (uint64_t)cfg->backlog_max_batches, &w->bl, err, errlen);
    if (rc) {
        dcem_influx_free(w);
        return rc;
    }
    dcem_backlog_stat bs;
    dcem_backlog_stats(w->bl, &bs);
    if (bs.batches)
        DCEM_LOGI(MOD, "backlog %s: %llu lines in %llu batches to send to %s", cfg->backlog_dir,
                  (unsigned long long)bs.lines, (unsigned long long)bs.batches, cfg->url);
    *out = w;
    return 0;
}

void dcem_influx_free(dcem_influx *w)
{
    if (!w) return;
    if (w->len && w->bl) spill(w);
    dcem_backlog_close(w->bl);
    curl_slist_free_all(w->headers);
    if (w->curl) curl_easy_cleanup(w->curl);
    free(w->url);
    free(w->buf);
    free(w->req);
    free(w->gz);
    memset(&w->cfg, 0, sizeof w->cfg); /* credentials */
    free(w);
}

void dcem_influx_stats_get(const dcem_influx *w, dcem_influx_stats *st)
{
    *st = w->st;
    dcem_backlog_stat bs;
    dcem_backlog_stats(w->bl, &bs);
    st->lines_buffered = w->lines;
    st->bytes_buffered = w->len;
    st->backlog_batches = bs.batches;
    st->backlog_lines = bs.lines;
    st->backlog_bytes = bs.bytes;
    st->dropped_batches = bs.dropped_batches + w->lost_batches;
    st->dropped_lines = bs.dropped_lines + w->lost_lines;
    st->corrupt_batches = bs.corrupt;
    st->down = w->down;
    st->retry_at_ms = w->down ? w->retry_at : 0;
}
