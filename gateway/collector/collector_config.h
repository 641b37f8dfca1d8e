/* collector_config.h — dcem-collector's configuration (collector.yaml): the
 * site ledgers and the policy it judges them by, its MQTT subscription, the
 * store, logging, and its HTTP API (listener, tokens, dashboard). Parsed and checked whole before it replaces a running
 * one, so a bad reload changes nothing. */
#ifndef DCEM_COLLECTOR_CONFIG_H
#define DCEM_COLLECTOR_CONFIG_H

#include "api_auth.h"
#include "influx.h"
#include "mqtt_cfg.h"
#include "policy.h"
#include "site.h"
#include "tz.h"

#include <stddef.h>

#define DCEM_COLLECTOR_MAX_SITES 256
#define DCEM_COLLECTOR_PATH_MAX 512

#define DCEM_COLLECTOR_DSN_MAX 1024

typedef struct dcem_collector_store {
    char backend[16];           /* "sqlite" (default) or "postgresql" */
    char path[DCEM_COLLECTOR_PATH_MAX]; /* sqlite: the file (resolved) */
    char dsn[DCEM_COLLECTOR_DSN_MAX];   /* postgresql: libpq conninfo or URI (may hold a
                                           password: wiped on free, never logged) */
    char label[DCEM_COLLECTOR_PATH_MAX]; /* for logs and reports: the path, or the DSN's
                                            host, port, database and user */
    int synchronous;            /* 0 full, 1 normal */
    long long retention_days;   /* readings; 0 = for ever */
    int line;
} dcem_collector_store;

/* What dcem_store_open takes as target: the path (sqlite) or the DSN. */
const char *dcem_collector_store_target(const dcem_collector_store *s);

/* 1 when a and b open the same store the same way (where the section sits
 * in the file does not matter). */
int dcem_collector_store_same(const dcem_collector_store *a, const dcem_collector_store *b);

/* Who may read /metrics (docs/api.md). */
enum { DCEM_API_METRICS_REGULATOR = 0, DCEM_API_METRICS_TOKEN, DCEM_API_METRICS_PUBLIC };

/* The HTTP API (docs/api.md). line == 0: no api section, no API. */
typedef struct dcem_collector_api {
    char listen[128];           /* "127.0.0.1:8080" (checked by dcem_api_listen_parse) */
    char dashboard_dir[DCEM_COLLECTOR_PATH_MAX]; /* resolved; may not exist (404s then) */
    char reports_dir[DCEM_COLLECTOR_PATH_MAX];   /* resolved; default: "reports" beside the store */
    int metrics;                /* DCEM_API_METRICS_* */
    long long max_connections;  /* at once, over all threads */
    long long per_ip_connections; /* at once from one address; 0: no limit */
    long long timeout_s;        /* connections idle this long are closed */
    long long threads;          /* the server's thread pool */
    long long silent_intervals; /* a meter without a value this many intervals is silent */
    dcem_api_token tokens[DCEM_API_MAX_TOKENS]; /* token filled in from token_file / token_env */
    size_t n_tokens;
    int line;
} dcem_collector_api;

/* Who the collector is and whom it believes (docs/security.md). */
typedef struct dcem_collector_identity {
    char key_file[DCEM_COLLECTOR_PATH_MAX]; /* Ed25519 private key: signs acks and resends */
    int allow_unsigned;  /* lab only: accept unsigned batches and births from gateways their
                            ledger lists without keys or does not list (a gateway listed with
                            keys must still sign), and send unsigned acks without key_file */
    int line;
} dcem_collector_identity;

/* What the collector takes from whom (docs/collector.md, "Hostile and broken
 * input"): clocks, holes, per-gateway rates and queues. */
typedef struct dcem_collector_ingest {
    long long max_future_skew_s;   /* readings stamped further ahead of our clock are refused */
    long long max_resend_requests; /* for one hole; then it is given up as missing data */
    long long resend_interval_ms;  /* between two resend requests for the same hole */
    long long gateway_msgs_per_s, gateway_msgs_burst;   /* token bucket per gateway */
    long long gateway_bytes_per_s, gateway_bytes_burst; /* the same in payload bytes */
    long long gateway_queue_msgs, gateway_queue_bytes;  /* received, not yet stored */
} dcem_collector_ingest;

/* The sites this collector takes (docs/scaling.md): n_sites == 0 (no
 * shard section) takes every site of the ledgers. */
typedef struct dcem_collector_shard {
    char sites[DCEM_COLLECTOR_MAX_SITES][DCEM_ID_MAX];
    size_t n_sites;
    int line;
} dcem_collector_shard;

/* One site: its ledger and time zone. */
typedef struct dcem_collector_site {
    dcem_site *ledger;          /* owned */
    dcem_tz *tz;                /* owned */
    int mine;                   /* this collector ingests it and computes its figures (shard) */
} dcem_collector_site;

typedef struct dcem_collector_config {
    char file[DCEM_COLLECTOR_PATH_MAX];
    char collector[DCEM_ID_MAX];
    char sites_dir[DCEM_COLLECTOR_PATH_MAX];
    char policy_file[DCEM_COLLECTOR_PATH_MAX];
    int log_level;
    long long health_log_s;
    long long recompute_ms;
    dcem_mqtt_cfg mqtt;         /* the collector's keys: share_group, session_expiry_s */
    dcem_collector_store store;
    dcem_collector_ingest ingest;
    dcem_influx_cfg influx;     /* influx.line == 0: no InfluxDB section, SQLite alone */
    dcem_collector_api api;     /* api.line == 0: no HTTP API */
    dcem_collector_identity identity;
    dcem_collector_shard shard;
    /* loaded with the config */
    dcem_signer *signer;        /* owned; NULL without identity.key_file */
    dcem_policy *policy;        /* owned */
    dcem_collector_site sites[DCEM_COLLECTOR_MAX_SITES];
    size_t n_sites;
} dcem_collector_config;

/* Parses buf (name: for messages; relative paths resolve against its
 * directory), loads the policy and every *.yaml ledger of the sites
 * directory with its time zone, and the API tokens from their files or
 * environment variables. NULL with "file:line: key: what" in err. */
dcem_collector_config *dcem_collector_config_parse(const char *name, const char *buf, size_t len,
                                                   char *err, size_t errlen);
dcem_collector_config *dcem_collector_config_load(const char *path, char *err, size_t errlen);
void dcem_collector_config_free(dcem_collector_config *c);

/* The site with id, or NULL. */
const dcem_collector_site *dcem_collector_site_find(const dcem_collector_config *c,
                                                    const char *id);

#endif
