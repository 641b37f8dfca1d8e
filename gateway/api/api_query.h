/* api_query.h — the pure half of the collector's HTTP API: which route a
 * path names, what its query parameters say (with a reason naming the
 * parameter when they are wrong), which dashboard file a path may name, and
 * that file's content type. No sockets, no clock, no files: unit-tested with
 * plain strings (tests/unit/test_api_query.c). docs/api.md is the contract. */
#ifndef DCEM_API_QUERY_H
#define DCEM_API_QUERY_H

#include "site.h"

#include <stddef.h>
#include <stdint.h>

typedef enum dcem_api_route_id {
    DCEM_API_R_NONE = 0, /* unknown: 404 */
    DCEM_API_R_STATIC,   /* a dashboard file: any path outside /api/, /healthz, /metrics */
    DCEM_API_R_HEALTHZ,
    DCEM_API_R_METRICS,
    DCEM_API_R_SITES,
    DCEM_API_R_SITE, /* the ledger */
    DCEM_API_R_FIGURES,
    DCEM_API_R_VERDICTS,
    DCEM_API_R_ALERTS,
    DCEM_API_R_METERS,
    DCEM_API_R_POWER,
    DCEM_API_R_EXPORT,
    DCEM_API_R_REPORTS,          /* /api/v1/reports */
    DCEM_API_R_SITE_REPORTS,     /* /api/v1/sites/{site}/reports */
    DCEM_API_R_SITE_REPORT,      /* /api/v1/sites/{site}/reports/{YYYY-MM|YYYY} */
    DCEM_API_R_SITE_REPORT_FILE, /* /api/v1/sites/{site}/reports/{YYYY-MM|YYYY}/{file} */
    DCEM_API_R_COMPLIANT,
    DCEM_API_R_ZONE_REPORT,      /* /api/v1/zone/reports/{YYYY-MM|YYYY} */
    DCEM_API_R_ZONE_REPORT_FILE, /* /api/v1/zone/reports/{YYYY-MM|YYYY}/{file} */
} dcem_api_route_id;

#define DCEM_API_FILE_MAX 128 /* a report file's name, NUL included */

typedef struct dcem_api_route {
    int id;                 /* dcem_api_route_id */
    char site[DCEM_ID_MAX]; /* site-scoped routes: the {site} segment, when site_ok */
    int site_ok;            /* 0: the segment is not a valid site id (answer 404) */
    /* DCEM_API_R_SITE_REPORT, _FILE */
    int report_is_year;
    long long report_period;             /* a year, or year * 12 + month - 1 */
    char report_file[DCEM_API_FILE_MAX]; /* _FILE: a plain name (no '/', no leading '.') */
} dcem_api_route;

/* 1 for the routes under /api/v1/sites/{site}/ (they need a readable site). */
int dcem_api_route_site_scoped(int id);

/* The route of a (percent-decoded) request path. Never fails: an unknown
 * path under /api/ is DCEM_API_R_NONE, anything else outside /api/ is
 * DCEM_API_R_STATIC (the dashboard; see dcem_api_static_path). */
void dcem_api_route_parse(const char *path, dcem_api_route *r);

/* Checks a request target (path and query) as the client sent it, before
 * it is percent-decoded: a %00 decodes to a NUL that cuts C strings short,
 * so the path or a parameter would read as something it is not. Returns 0
 * with why "" when the target is fine, else DCEM_EINVAL with the reason in
 * why: a %00, a '%' not followed by two hex digits, or bytes that, decoded,
 * are not UTF-8 (RFC 3629: no overlong forms, no surrogates). */
int dcem_api_uri_check(const char *uri, char *why, size_t whylen);

/* ---- query parameters ---- */

/* The dates the API takes: from 1970-01-01 to 9999-12-31; times from
 * 1970-01-01T00:00:00Z up to (not including) 10000-01-01T00:00:00Z. */
#define DCEM_API_YEAR_MIN 1970
#define DCEM_API_YEAR_MAX 9999
#define DCEM_API_T_MAX_MS 253402300800000LL /* 10000-01-01T00:00:00Z */

typedef enum dcem_api_period {
    DCEM_API_P_INTERVAL = 0,
    DCEM_API_P_DAY,
    DCEM_API_P_MONTH,
    DCEM_API_P_YTD,
    DCEM_API_P_ROLLING12,
    DCEM_API_P_YEAR,
    DCEM_API_P_COUNT
} dcem_api_period;

/* "interval", "day", ... */
const char *dcem_api_period_name(int period);

/* The parameters an endpoint takes (a mask of them says which). */
enum {
    DCEM_API_Q_PERIOD = 1u << 0, /* interval|day|month|ytd|rolling12|year */
    DCEM_API_Q_AT = 1u << 1,     /* per period (see dcem_api_when); without period: a time */
    DCEM_API_Q_YEAR = 1u << 2,   /* YYYY */
    DCEM_API_Q_FROM = 1u << 3,   /* RFC 3339 time or YYYY-MM-DD */
    DCEM_API_Q_TO = 1u << 4,
    DCEM_API_Q_LIMIT = 1u << 5,  /* 1..DCEM_API_LIMIT_MAX */
    DCEM_API_Q_CURSOR = 1u << 6, /* "T.ID" from a previous page */
};

#define DCEM_API_LIMIT_MAX 1000
#define DCEM_API_LIMIT_DEFAULT 100

/* A point in time as a query gave it: an instant, or a calendar value the
 * caller places in the site's zone. */
typedef enum dcem_api_when_kind {
    DCEM_API_W_NONE = 0, /* not given */
    DCEM_API_W_TIME,     /* t_ms, an instant (RFC 3339 with offset) */
    DCEM_API_W_DATE,     /* day, a local date (days since 1970-01-01) */
    DCEM_API_W_MONTH,    /* month = year * 12 + month - 1 */
    DCEM_API_W_YEAR,     /* year */
} dcem_api_when_kind;

typedef struct dcem_api_when {
    int kind; /* dcem_api_when_kind */
    int64_t t_ms, day;
    long long month, year;
} dcem_api_when;

typedef struct dcem_api_query {
    unsigned have; /* DCEM_API_Q_* given */
    int period;    /* dcem_api_period; DCEM_API_P_MONTH when not given */
    dcem_api_when at, from, to;
    long long year;
    long limit; /* DCEM_API_LIMIT_DEFAULT when not given */
    int64_t cursor_t_ms, cursor_id;
} dcem_api_query;

/* One query parameter, percent-decoded; value NULL when it had no '='. */
typedef struct dcem_api_param {
    const char *key, *value;
} dcem_api_param;

/* What is wrong with a request's parameters, for a 400. */
typedef struct dcem_api_error {
    char param[32];
    char why[256];
} dcem_api_error;

/* Parses the n parameters of a request for an endpoint that takes those of
 * `allowed` and needs those of `required`. `at` is read per period: interval
 * an RFC 3339 time, day / ytd / rolling12 a date YYYY-MM-DD, month YYYY-MM,
 * year YYYY; without DCEM_API_Q_PERIOD in allowed, a time. Returns 0, or
 * DCEM_EINVAL with *e naming the parameter and saying why: unknown,
 * repeated, empty, malformed, out of range (a date or time outside the
 * supported range above, which the message states), missing, or from not
 * before to. */
int dcem_api_query_parse(const dcem_api_param *ps, size_t n, unsigned allowed, unsigned required,
                         dcem_api_query *q, dcem_api_error *e);

/* The cursor of the page after an alert (t_ms, id), "T.ID", into buf
 * (at least 48 bytes). */
void dcem_api_cursor_format(int64_t t_ms, int64_t id, char *buf, size_t len);

/* One line of a report's MANIFEST.sha256 ("<64 hex>  <name>", the format
 * `sha256sum -c` reads), without its newline: 0 with hex (65 bytes) and
 * *name / *name_len pointing into line, or DCEM_EINVAL. */
int dcem_api_manifest_line(const char *line, size_t len, char *hex, const char **name,
                           size_t *name_len);

/* ---- the listener ---- */

typedef struct dcem_api_listen {
    int ipv6;               /* 0: addr[0..4) is IPv4 */
    unsigned char addr[16]; /* network byte order */
    int port;               /* 1..65535 */
} dcem_api_listen;

/* "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:8080": a numeric address (no
 * host names: the listener must not depend on DNS) and a port. Returns 0,
 * or DCEM_EINVAL with the reason in why. */
int dcem_api_listen_parse(const char *s, dcem_api_listen *out, char *why, size_t whylen);

/* 1 when the address is a loopback one (127.0.0.0/8, ::1). */
int dcem_api_listen_is_loopback(const dcem_api_listen *l);

/* ---- dashboard files ---- */

/* The file under the dashboard directory that a request path names, as a
 * relative path into out: "/" is "index.html", a path ending in '/' its
 * index.html. Returns DCEM_EINVAL for any path that could leave the
 * directory or name what is not a published file: a ".." or "." segment, a
 * hidden segment (leading '.'), an empty segment, a backslash, a control
 * byte, or a result longer than outlen - 1. */
int dcem_api_static_path(const char *path, char *out, size_t outlen);

/* The Content-Type of a file by its extension (application/octet-stream
 * for unknown ones). */
const char *dcem_api_content_type(const char *path);

#endif
