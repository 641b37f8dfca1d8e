/* influx.h — the collector's InfluxDB writer: buffers line protocol, sends
 * it in batches over HTTP (InfluxDB 1.x /write or 2.x /api/v2/write, libcurl,
 * optionally gzip), and while InfluxDB is unreachable keeps the batches in a
 * bounded on-disk backlog that survives restarts and drains in order once
 * it answers again. docs/influxdb.md describes the measurements, the
 * configuration and what happens when things fail. */
#ifndef DCEM_INFLUX_H
#define DCEM_INFLUX_H

#include "cfg.h"

#include <stddef.h>
#include <stdint.h>

#define DCEM_INFLUX_URL_MAX 256
#define DCEM_INFLUX_NAME_MAX 128
#define DCEM_INFLUX_SECRET_MAX 256
#define DCEM_INFLUX_PATH_MAX 512

/* The "influx:" section of the collector's config (keys and defaults in
 * dcem_influx_cfg_fields and docs/influxdb.md). */
typedef struct dcem_influx_cfg {
    char url[DCEM_INFLUX_URL_MAX];       /* http://127.0.0.1:8086 (a path prefix is kept) */
    long long version;                   /* 1: /write (InfluxDB 1.x); 2: /api/v2/write */
    char db[DCEM_INFLUX_NAME_MAX];       /* v1: database (required) */
    char rp[DCEM_INFLUX_NAME_MAX];       /* v1: retention policy ("" = the default) */
    char username[DCEM_INFLUX_NAME_MAX]; /* v1: HTTP basic auth (with password) */
    char password[DCEM_INFLUX_SECRET_MAX];
    char org[DCEM_INFLUX_NAME_MAX];     /* v2 (required) */
    char bucket[DCEM_INFLUX_NAME_MAX];  /* v2 (required) */
    char token[DCEM_INFLUX_SECRET_MAX]; /* v2: "Authorization: Token <token>" (required) */
    char ca_file[DCEM_INFLUX_PATH_MAX]; /* https: CA bundle ("" = the system's) */
    long long batch_max_lines;          /* a batch is sent when it has this many lines */
    long long batch_max_bytes;          /* ... or would grow past this many bytes */
    long long flush_interval_ms;        /* ... or its first line is this old */
    int gzip;                           /* Content-Encoding: gzip */
    long long timeout_ms;               /* whole request, connect included */
    long long retry_initial_ms;         /* first wait after a failed request; doubles */
    long long retry_max_ms;             /* cap of the wait */
    char backlog_dir[DCEM_INFLUX_PATH_MAX];
    double backlog_max_mib;        /* hard cap of the backlog on disk (drop-oldest) */
    long long backlog_max_batches; /* hard cap of its files (drop-oldest) */
    int line;                      /* where the section starts, for messages */
} dcem_influx_cfg;

/* Field table of the section, for dcem_cfg_parse (embed it as a
 * DCEM_CFG_MAP whose sub is this table). */
extern const dcem_cfg_field dcem_influx_cfg_fields[];

/* Fills cfg with the table's defaults (strings empty unless defaulted). */
void dcem_influx_cfg_defaults(dcem_influx_cfg *cfg);

/* Cross-field rules: url is http(s)://host...; v1 needs db and takes no v2
 * key, v2 needs org, bucket and token and takes no v1 key; username and
 * password come together; retry_max_ms >= retry_initial_ms; the backlog
 * holds at least one full batch. name is the config file for messages.
 * Returns 0 or DCEM_ECONFIG with "name:line: key: what is wrong" in err. */
int dcem_influx_cfg_check(const dcem_influx_cfg *cfg, const char *name, char *err, size_t errlen);

typedef struct dcem_influx dcem_influx;

/* Checks cfg (as dcem_influx_cfg_check, name "influx"), opens the backlog
 * and prepares the HTTP handle; nothing is sent yet. cfg is copied. Call
 * curl_global_init(CURL_GLOBAL_DEFAULT) once at program start, before any
 * thread exists (libcurl requires it; otherwise the first handle does it
 * lazily, which is not thread-safe). Returns 0 with *out (free with
 * dcem_influx_free); DCEM_ECONFIG; DCEM_ESTORAGE (backlog directory or
 * lock); DCEM_ENOMEM. Detail goes to err. */
int dcem_influx_new(const dcem_influx_cfg *cfg, dcem_influx **out, char *err, size_t errlen);

/* Buffers one line of line protocol (len bytes, with or without its final
 * '\n'; timestamps in ms, as dcem_lp_append writes with DCEM_LP_MS). When
 * the batch is full (batch_max_lines, or batch_max_bytes with this line) it
 * is flushed first, which may send a request (at most timeout_ms). Returns
 * 0 once the line is buffered; DCEM_EINVAL for an empty line or one with
 * '\n' or '\r' inside; DCEM_ERANGE for a line that can never fit a batch.
 * What happens to the batch later is in the counters, never in this code. */
int dcem_influx_add(dcem_influx *w, const char *line, size_t len);

/* Drives the writer from the collector's loop; now_ms is a monotonic clock
 * in ms (the seam: tests pass their own). Once the retry wait is over, sends
 * the backlog oldest first (several backlog batches per request, up to the
 * batch limits, at most DCEM_INFLUX_DRAIN_REQUESTS requests per call), then
 * flushes the buffered batch if its first line is flush_interval_ms old.
 * Each request takes at most timeout_ms. Returns 0 (outcomes are counted). */
#define DCEM_INFLUX_DRAIN_REQUESTS 8
int dcem_influx_tick(dcem_influx *w, int64_t now_ms);

/* Flushes the buffered batch now: sent if InfluxDB is up and the backlog is
 * empty, else appended to the backlog. For shutdown, before free. */
void dcem_influx_flush(dcem_influx *w);

/* Appends the buffered batch to the backlog (no network: it is sent after
 * the next start) and frees everything. NULL accepted. */
void dcem_influx_free(dcem_influx *w);

/* Called on the writer's thread while a request is in flight (libcurl's
 * progress callback: several times a second while data moves, about once a
 * second while the server is silent), so that a writer on its own thread
 * can move what piled up meanwhile to the backlog (dcem_influx_spill)
 * instead of letting it wait in memory. NULL: none. */
typedef void (*dcem_influx_progress_fn)(void *ctx);
void dcem_influx_set_progress(dcem_influx *w, dcem_influx_progress_fn fn, void *ctx);

/* Appends lines (len bytes of complete lines, each ending in '\n', n of
 * them) straight to the backlog, in batches of the batch limits, without
 * touching the buffered batch and without any request: for lines that
 * arrive faster than InfluxDB takes them. They are sent with the backlog,
 * possibly ahead of lines buffered before them (InfluxDB does not care
 * about order: a point is its series and time). A batch the disk refuses is
 * lost and counted in dropped_lines. May be called from the progress
 * function. */
void dcem_influx_spill(dcem_influx *w, const char *lines, size_t len);

typedef struct dcem_influx_stats {
    uint64_t lines_written;    /* lines in requests InfluxDB answered 2xx */
    uint64_t requests;         /* write requests made */
    uint64_t requests_failed;  /* of those, not answered 2xx (network, 4xx, 5xx) */
    uint64_t batches_rejected; /* answered 4xx as bad (400, 413, 422, ...): dropped */
    uint64_t lines_rejected;
    uint64_t lines_buffered; /* in memory, not yet flushed */
    uint64_t bytes_buffered;
    uint64_t backlog_batches; /* on disk now */
    uint64_t backlog_lines;
    uint64_t backlog_bytes;   /* headers included */
    uint64_t dropped_batches; /* lost: backlog caps (drop-oldest), or a backlog */
    uint64_t dropped_lines;   /*   write that failed */
    uint64_t corrupt_batches; /* backlog files that failed their checks, set aside */
    long last_status;         /* HTTP status of the last request; 0: no answer */
    int down;                 /* 1 while requests fail and the writer waits to retry */
    int64_t retry_at_ms;      /* when down: the next attempt, on the tick clock */
} dcem_influx_stats;

void dcem_influx_stats_get(const dcem_influx *w, dcem_influx_stats *st);

#endif
