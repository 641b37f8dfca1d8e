#include "api_query.h"
#include "errors.h"
#include "parse.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- routes ---- */

/* The next '/'-separated segment of *p (without the '/'), advancing *p past
 * it. Returns its length; *seg points at it. */
static size_t segment(const char **p, const char **seg)
{
    const char *s = *p;
    if (*s == '/') s++;
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    *seg = s;
    *p = s + n;
    return n;
}

static int seg_is(const char *seg, size_t n, const char *word)
{
    return n == strlen(word) && !memcmp(seg, word, n);
}

static void set_site(dcem_api_route *r, const char *seg, size_t n)
{
    r->site_ok = n > 0 && n < DCEM_ID_MAX && dcem_id_valid(seg, n);
    if (r->site_ok) {
        memcpy(r->site, seg, n);
        r->site[n] = '\0';
    }
}

/* "2025-03" or "2025" */
static int report_period(dcem_api_route *r, const char *seg, size_t n)
{
    int y;
    if (n == 4 && !dcem_parse_digits(seg, 4, &y) && y >= 1970) {
        r->report_is_year = 1;
        r->report_period = y;
        return 0;
    }
    return n == 7 && !dcem_parse_month(seg, n, &r->report_period) ? 0 : -1;
}

/* A file of a report: a plain name, found later in its manifest. */
static int report_file(dcem_api_route *r, const char *seg, size_t n)
{
    if (n == 0 || n >= sizeof r->report_file || seg[0] == '.') return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)seg[i] < 0x20 || seg[i] == 0x7f || seg[i] == '\\') return -1;
    memcpy(r->report_file, seg, n);
    r->report_file[n] = '\0';
    return 0;
}

int dcem_api_route_site_scoped(int id)
{
    return id == DCEM_API_R_SITE || id == DCEM_API_R_FIGURES || id == DCEM_API_R_VERDICTS ||
           id == DCEM_API_R_ALERTS || id == DCEM_API_R_METERS || id == DCEM_API_R_POWER ||
           id == DCEM_API_R_EXPORT || id == DCEM_API_R_SITE_REPORTS ||
           id == DCEM_API_R_SITE_REPORT || id == DCEM_API_R_SITE_REPORT_FILE;
}

void dcem_api_route_parse(const char *path, dcem_api_route *r)
{
    memset(r, 0, sizeof *r);
    if (!path || path[0] != '/') return; /* DCEM_API_R_NONE */
    if (!strcmp(path, "/healthz")) {
        r->id = DCEM_API_R_HEALTHZ;
        return;
    }
    if (!strcmp(path, "/metrics")) {
        r->id = DCEM_API_R_METRICS;
        return;
    }
    if (strncmp(path, "/api/", 5) && strcmp(path, "/api")) {
        r->id = DCEM_API_R_STATIC;
        return;
    }
    const char *p = path, *s[7];
    size_t n[7];
    int k = 0;
    while (*p && k < 7)
        n[k] = segment(&p, &s[k]), k++;
    if (*p) return; /* more than seven segments */
    /* s[0] "api", s[1] "v1" */
    if (k < 3 || !seg_is(s[1], n[1], "v1")) return;
    if (k == 3 && seg_is(s[2], n[2], "sites"))
        r->id = DCEM_API_R_SITES;
    else if (k == 3 && seg_is(s[2], n[2], "reports"))
        r->id = DCEM_API_R_REPORTS;
    else if (k == 4 && seg_is(s[2], n[2], "public") && seg_is(s[3], n[3], "compliant"))
        r->id = DCEM_API_R_COMPLIANT;
    else if (k >= 5 && seg_is(s[2], n[2], "zone") && seg_is(s[3], n[3], "reports") &&
             !report_period(r, s[4], n[4])) {
        if (k == 5)
            r->id = DCEM_API_R_ZONE_REPORT;
        else if (k == 6 && !report_file(r, s[5], n[5]))
            r->id = DCEM_API_R_ZONE_REPORT_FILE;
        return;
    }
    if (r->id || !seg_is(s[2], n[2], "sites") || k < 4) return;
    static const struct {
        const char *name;
        int id;
    } sub[] = {{"figures", DCEM_API_R_FIGURES},     {"verdicts", DCEM_API_R_VERDICTS},
               {"alerts", DCEM_API_R_ALERTS},       {"meters", DCEM_API_R_METERS},
               {"power", DCEM_API_R_POWER},         {"export", DCEM_API_R_EXPORT},
               {"reports", DCEM_API_R_SITE_REPORTS}};
    if (k == 4) {
        r->id = DCEM_API_R_SITE;
    } else if (k == 5) {
        for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++)
            if (seg_is(s[4], n[4], sub[i].name)) r->id = sub[i].id;
    } else if (seg_is(s[4], n[4], "reports") && !report_period(r, s[5], n[5])) {
        if (k == 6)
            r->id = DCEM_API_R_SITE_REPORT;
        else if (!report_file(r, s[6], n[6]))
            r->id = DCEM_API_R_SITE_REPORT_FILE;
    }
    if (r->id) set_site(r, s[3], n[3]);
}

/* ---- the raw request target ---- */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int dcem_api_uri_check(const char *uri, char *why, size_t whylen)
{
    const char *part = "path";
    unsigned need = 0;                  /* UTF-8 continuation bytes still to come */
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the next one */
    if (whylen) why[0] = '\0';
    for (const char *p = uri; *p; p++) {
        unsigned char b = (unsigned char)*p;
        if (b == '?' && part[0] == 'p') { /* a raw '?' ends the path; %3F does not */
            if (need) goto not_utf8;
            part = "query";
            continue;
        }
        if (b == '%') {
            int h = hex_digit(p[1]), l = h < 0 ? -1 : hex_digit(p[2]);
            if (l < 0) {
                snprintf(why, whylen, "a '%%' in the %s is not followed by two hex digits", part);
                return DCEM_EINVAL;
            }
            b = (unsigned char)(h * 16 + l);
            p += 2;
            if (!b) {
                snprintf(why, whylen, "the %s holds %%00 (a NUL byte)", part);
                return DCEM_EINVAL;
            }
        }
        if (need) {
            if (b < lo || b > hi) goto not_utf8;
            need--;
            lo = 0x80, hi = 0xbf;
        } else if (b >= 0x80) {
            if (b >= 0xc2 && b <= 0xdf)
                need = 1;
            else if (b == 0xe0)
                need = 2, lo = 0xa0; /* no overlong forms */
            else if (b == 0xed)
                need = 2, hi = 0x9f; /* no surrogates */
            else if (b >= 0xe1 && b <= 0xef)
                need = 2;
            else if (b == 0xf0)
                need = 3, lo = 0x90;
            else if (b >= 0xf1 && b <= 0xf3)
                need = 3;
            else if (b == 0xf4)
                need = 3, hi = 0x8f; /* nothing above U+10FFFF */
            else
                goto not_utf8; /* a continuation byte first, C0, C1, F5..FF */
        }
    }
    if (!need) return 0;
not_utf8:
    snprintf(why, whylen, "the %s is not UTF-8 (once percent-decoded)", part);
    return DCEM_EINVAL;
}

/* ---- query parameters ---- */

static const char *const period_names[DCEM_API_P_COUNT] = {"interval", "day",       "month",
                                                           "ytd",      "rolling12", "year"};

const char *dcem_api_period_name(int period)
{
    return period >= 0 && period < DCEM_API_P_COUNT ? period_names[period] : "?";
}

static const struct {
    const char *key;
    unsigned bit;
} keys[] = {{"period", DCEM_API_Q_PERIOD}, {"at", DCEM_API_Q_AT}, {"year", DCEM_API_Q_YEAR},
            {"from", DCEM_API_Q_FROM},     {"to", DCEM_API_Q_TO}, {"limit", DCEM_API_Q_LIMIT},
            {"cursor", DCEM_API_Q_CURSOR}};
#define N_KEYS (sizeof keys / sizeof keys[0])

static int bad(dcem_api_error *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(dcem_api_error *e, const char *param, const char *fmt, ...)
{
    /* the parameter's name as given may be anything: keep it short and printable */
    size_t i = 0;
    for (; param[i] && i < sizeof e->param - 1; i++)
        e->param[i] = (param[i] >= 0x20 && param[i] < 0x7f) ? param[i] : '?';
    e->param[i] = '\0';
    int n = snprintf(e->why, sizeof e->why, "%s: ", e->param);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof e->why)
        vsnprintf(e->why + n, sizeof e->why - (size_t)n, fmt, ap);
    va_end(ap);
    return DCEM_EINVAL;
}

/* A value for a message: at most 40 bytes, non-printable bytes as '?'. */
static const char *shown(const char *v, char *buf, size_t len)
{
    size_t i = 0;
    for (; v[i] && i + 1 < len && i < 40; i++)
        buf[i] = (v[i] >= 0x20 && v[i] < 0x7f) || (unsigned char)v[i] >= 0x80 ? v[i] : '?';
    buf[i] = '\0';
    if (v[i] && len > 4 && i + 4 < len) memcpy(buf + i, "...", 4);
    return buf;
}

static int parse_year(const char *v, long long *y)
{
    int x;
    if (strlen(v) != 4 || dcem_parse_digits(v, 4, &x) || x < DCEM_API_YEAR_MIN) return -1;
    *y = x;
    return 0;
}

/* The supported range (DCEM_API_YEAR_MIN/MAX), as messages state it. Dates
 * and months below 1970 do not parse (dcem_parse_date/_month), above 9999
 * they cannot be written in four digits; a time can, with year 0000 or an
 * offset past the end of 9999, so it is checked once parsed. */
#define RANGE_DATES "1970-01-01 to 9999-12-31"
#define RANGE_MONTHS "1970-01 to 9999-12"
#define RANGE_TIMES "1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"

/* An RFC 3339 time: 0, -1 when it is not one, -2 when it is out of range. */
static int parse_time_in_range(const char *v, size_t len, int64_t *t_ms)
{
    if (dcem_parse_time(v, len, t_ms)) return -1;
    return *t_ms < 0 || *t_ms >= DCEM_API_T_MAX_MS ? -2 : 0;
}

/* from / to: an RFC 3339 time or a local date; as parse_time_in_range */
static int parse_instant(const char *v, dcem_api_when *w)
{
    size_t len = strlen(v);
    if (len == 10 && !dcem_parse_date(v, len, &w->day)) return w->kind = DCEM_API_W_DATE, 0;
    int rc = parse_time_in_range(v, len, &w->t_ms);
    if (!rc) w->kind = DCEM_API_W_TIME;
    return rc;
}

static int out_of_range(dcem_api_error *e, const char *param, const char *v)
{
    char b[48];
    return bad(e, param, "'%s' is outside the supported range " RANGE_TIMES, shown(v, b, sizeof b));
}

static int parse_at(const dcem_api_query *q, const char *v, dcem_api_when *w, dcem_api_error *e,
                    int by_period)
{
    char b[48];
    size_t len = strlen(v);
    const char *name = dcem_api_period_name(q->period);
    int rc;
    switch (by_period ? q->period : -1) {
    case -1: /* no period: a time */
    case DCEM_API_P_INTERVAL:
        if (!(rc = parse_time_in_range(v, len, &w->t_ms))) return w->kind = DCEM_API_W_TIME, 0;
        if (rc == -2) return out_of_range(e, "at", v);
        return bad(e, "at", "expected an RFC 3339 time with an offset%s%s, got '%s'",
                   by_period ? " for period=" : "", by_period ? name : "", shown(v, b, sizeof b));
    case DCEM_API_P_MONTH:
        if (len == 7 && !dcem_parse_month(v, len, &w->month)) return w->kind = DCEM_API_W_MONTH, 0;
        return bad(e, "at", "expected YYYY-MM (" RANGE_MONTHS ") for period=%s, got '%s'", name,
                   shown(v, b, sizeof b));
    case DCEM_API_P_YEAR:
        if (!parse_year(v, &w->year)) return w->kind = DCEM_API_W_YEAR, 0;
        return bad(e, "at", "expected YYYY (1970-9999) for period=%s, got '%s'", name,
                   shown(v, b, sizeof b));
    default:
        if (len == 10 && !dcem_parse_date(v, len, &w->day)) return w->kind = DCEM_API_W_DATE, 0;
        return bad(e, "at", "expected a date YYYY-MM-DD (" RANGE_DATES ") for period=%s, got '%s'",
                   name, shown(v, b, sizeof b));
    }
}

static int parse_digits_ll(const char *s, size_t n, long long *out)
{
    if (n == 0 || n > 18) return -1;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static void valid_keys(unsigned allowed, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_KEYS; i++) {
        if (!(allowed & keys[i].bit)) continue;
        int k = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", keys[i].key);
        if (k < 0 || used + (size_t)k >= len) break;
        used += (size_t)k;
    }
    if (!used) snprintf(buf, len, "none");
}

/* Compares two from/to values of the same kind; -2 when they cannot be
 * compared without the site's zone (a date against a time). */
static int when_cmp(const dcem_api_when *a, const dcem_api_when *b)
{
    if (a->kind != b->kind) return -2;
    int64_t x = a->kind == DCEM_API_W_DATE ? a->day : a->t_ms;
    int64_t y = b->kind == DCEM_API_W_DATE ? b->day : b->t_ms;
    return x < y ? -1 : x > y;
}

int dcem_api_query_parse(const dcem_api_param *ps, size_t n, unsigned allowed, unsigned required,
                         dcem_api_query *q, dcem_api_error *e)
{
    memset(q, 0, sizeof *q);
    memset(e, 0, sizeof *e);
    q->period = DCEM_API_P_MONTH;
    q->limit = DCEM_API_LIMIT_DEFAULT;
    const char *at = NULL;
    char b[48];
    for (size_t i = 0; i < n; i++) {
        const char *k = ps[i].key ? ps[i].key : "", *v = ps[i].value;
        size_t j = 0;
        while (j < N_KEYS && strcmp(keys[j].key, k))
            j++;
        if (j == N_KEYS || !(allowed & keys[j].bit)) {
            char valid[128];
            valid_keys(allowed, valid, sizeof valid);
            return bad(e, k, "unknown parameter (valid: %s)", valid);
        }
        unsigned bit = keys[j].bit;
        if (q->have & bit) return bad(e, k, "given more than once");
        if (!v || !*v) return bad(e, k, "empty value");
        q->have |= bit;
        switch (bit) {
        case DCEM_API_Q_PERIOD: {
            int p = 0;
            while (p < DCEM_API_P_COUNT && strcmp(period_names[p], v))
                p++;
            if (p == DCEM_API_P_COUNT)
                return bad(e, k,
                           "expected one of interval, day, month, ytd, rolling12, year, got '%s'",
                           shown(v, b, sizeof b));
            q->period = p;
            break;
        }
        case DCEM_API_Q_AT:
            at = v;
            break;
        case DCEM_API_Q_YEAR:
            if (parse_year(v, &q->year))
                return bad(e, k, "expected YYYY (1970-9999), got '%s'", shown(v, b, sizeof b));
            break;
        case DCEM_API_Q_FROM:
        case DCEM_API_Q_TO: {
            int rc = parse_instant(v, bit == DCEM_API_Q_FROM ? &q->from : &q->to);
            if (rc == -2) return out_of_range(e, k, v);
            if (rc)
                return bad(e, k,
                           "expected an RFC 3339 time with an offset or a date YYYY-MM-DD "
                           "(" RANGE_DATES "), got '%s'",
                           shown(v, b, sizeof b));
            break;
        }
        case DCEM_API_Q_LIMIT: {
            long long l;
            if (parse_digits_ll(v, strlen(v), &l) || l < 1 || l > DCEM_API_LIMIT_MAX)
                return bad(e, k, "expected a whole number from 1 to %d, got '%s'",
                           DCEM_API_LIMIT_MAX, shown(v, b, sizeof b));
            q->limit = (long)l;
            break;
        }
        case DCEM_API_Q_CURSOR: {
            const char *dot = strchr(v, '.');
            long long t, id;
            if (!dot || parse_digits_ll(v, (size_t)(dot - v), &t) ||
                parse_digits_ll(dot + 1, strlen(dot + 1), &id))
                return bad(
                    e, k,
                    "not a cursor of this API (use the \"next\" of a previous page), got '%s'",
                    shown(v, b, sizeof b));
            q->cursor_t_ms = t;
            q->cursor_id = id;
            break;
        }
        }
    }
    for (size_t j = 0; j < N_KEYS; j++)
        if ((required & keys[j].bit) && !(q->have & keys[j].bit))
            return bad(e, keys[j].key, "missing (required)");
    if (at && parse_at(q, at, &q->at, e, (allowed & DCEM_API_Q_PERIOD) != 0)) return DCEM_EINVAL;
    if ((q->have & DCEM_API_Q_FROM) && (q->have & DCEM_API_Q_TO) &&
        when_cmp(&q->from, &q->to) != -1 && when_cmp(&q->from, &q->to) != -2)
        return bad(e, "to", "must be later than from");
    return 0;
}

void dcem_api_cursor_format(int64_t t_ms, int64_t id, char *buf, size_t len)
{
    snprintf(buf, len, "%lld.%lld", (long long)t_ms, (long long)id);
}

int dcem_api_manifest_line(const char *line, size_t len, char *hex, const char **name,
                           size_t *name_len)
{
    if (len < 64 + 2 + 1 || line[64] != ' ' || line[65] != ' ') return DCEM_EINVAL;
    for (size_t i = 0; i < 64; i++) {
        char ch = line[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return DCEM_EINVAL;
        hex[i] = ch;
    }
    hex[64] = '\0';
    *name = line + 66;
    *name_len = len - 66;
    for (size_t i = 0; i < *name_len; i++)
        if ((*name)[i] == '/' || (unsigned char)(*name)[i] < 0x20) return DCEM_EINVAL;
    return 0;
}

/* ---- the listener ---- */

int dcem_api_listen_parse(const char *s, dcem_api_listen *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) {
        snprintf(why, whylen, "expected ADDRESS:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)");
        return DCEM_EINVAL;
    }
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[') {
        if (hl < 3 || s[hl - 1] != ']') {
            snprintf(why, whylen, "an IPv6 address goes in brackets: [::1]:8080");
            return DCEM_EINVAL;
        }
        out->ipv6 = 1;
        s++, hl -= 2;
    }
    if (hl >= sizeof host) {
        snprintf(why, whylen, "the address is too long");
        return DCEM_EINVAL;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (inet_pton(out->ipv6 ? AF_INET6 : AF_INET, host, out->addr) != 1) {
        snprintf(why, whylen, "'%s' is not a numeric %s address", host,
                 out->ipv6 ? "IPv6" : "IPv4");
        return DCEM_EINVAL;
    }
    long long port;
    const char *ps = colon + 1;
    if (parse_digits_ll(ps, strlen(ps), &port) || port < 1 || port > 65535) {
        snprintf(why, whylen, "the port must be 1 to 65535");
        return DCEM_EINVAL;
    }
    out->port = (int)port;
    return 0;
}

int dcem_api_listen_is_loopback(const dcem_api_listen *l)
{
    static const unsigned char v6_loopback[16] = {[15] = 1};
    return l->ipv6 ? !memcmp(l->addr, v6_loopback, 16) : l->addr[0] == 127;
}

/* ---- dashboard files ---- */

int dcem_api_static_path(const char *path, char *out, size_t outlen)
{
    static const char index[] = "index.html";
    if (!path || path[0] != '/' || !outlen) return DCEM_EINVAL;
    size_t o = 0;
    const char *p = path + 1;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || p[0] == '.') return DCEM_EINVAL; /* "//"; ".", "..", hidden files */
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c < 0x20 || c == 0x7f || c == '\\' || c == ':') return DCEM_EINVAL;
        }
        if (o + n + 2 > outlen) return DCEM_EINVAL;
        memcpy(out + o, p, n);
        o += n;
        if (!e) {
            out[o] = '\0';
            return 0;
        }
        out[o++] = '/';
        p = e + 1;
    }
    /* "/" or a path ending in '/': that directory's index */
    if (o + sizeof index > outlen) return DCEM_EINVAL;
    memcpy(out + o, index, sizeof index);
    return 0;
}

const char *dcem_api_content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".htm", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json; charset=utf-8"},
        {".map", "application/json; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},
        {".webp", "image/webp"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".woff", "font/woff"},
        {".ttf", "font/ttf"},
        {".txt", "text/plain; charset=utf-8"},
        {".csv", "text/csv; charset=utf-8"},
        {".wasm", "application/wasm"},
        {".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
        {".sha256", "text/plain; charset=utf-8"},
    };
    size_t len = strlen(path);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t el = strlen(types[i].ext);
        if (len > el && !strcmp(path + len - el, types[i].ext)) return types[i].type;
    }
    return "application/octet-stream";
}
