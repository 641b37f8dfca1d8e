#include "collector_config.h"
#include "api_query.h"
#include "cfg.h"
#include "dcem_io.h"
#include "dcem_log.h"
#include "errors.h"
#include "wire.h"

#include <libpq-fe.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The dashboard's files and the policy when the config names none: an
 * installed tree's share/dcem, else the source tree's copies compiled in
 * here (CMake), else /usr/share/dcem (dcem_io_share_path). */
#ifndef DCEM_DASHBOARD_DIR
#define DCEM_DASHBOARD_DIR NULL
#endif
#ifndef DCEM_COLLECTOR_POLICY_FILE
#define DCEM_COLLECTOR_POLICY_FILE NULL
#endif

static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const syncs[] = {"full", "normal", NULL};

#define M(f) offsetof(dcem_mqtt_cfg, f)
static const dcem_cfg_field mqtt_fields[] = {
    DCEM_MQTT_CFG_FIELDS,
    {.key = "share_group", .type = DCEM_CFG_STRING, .offset = M(share_group), .size = 64},
    {.key = "session_expiry_s", .type = DCEM_CFG_INT, .offset = M(session_expiry_s), .min = 0,
     .max = 4294967295.0, .def = 604800},
    {0},
};
#undef M

#define S(f) offsetof(dcem_collector_store, f)
static const dcem_cfg_field store_fields[] = {
    {.key = "backend", .type = DCEM_CFG_STRING, .offset = S(backend), .size = 16,
     .def_str = "sqlite"},
    {.key = "path", .type = DCEM_CFG_STRING, .offset = S(path), .size = DCEM_COLLECTOR_PATH_MAX,
     .help = "sqlite: the store file"},
    {.key = "dsn", .type = DCEM_CFG_STRING, .offset = S(dsn), .size = DCEM_COLLECTOR_DSN_MAX,
     .help = "postgresql: libpq connection string or URI"},
    {.key = "synchronous", .type = DCEM_CFG_ENUM, .offset = S(synchronous), .names = syncs,
     .def = 0},
    {.key = "retention_days", .type = DCEM_CFG_INT, .offset = S(retention_days), .min = 0,
     .max = 36500, .def = 0},
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = S(line)},
    {0},
};
#undef S

#define I(f) offsetof(dcem_collector_ingest, f)
static const dcem_cfg_field ingest_fields[] = {
    {.key = "max_future_skew_s", .type = DCEM_CFG_INT, .offset = I(max_future_skew_s), .min = 0,
     .max = 31536000, .def = 300},
    {.key = "max_resend_requests", .type = DCEM_CFG_INT, .offset = I(max_resend_requests),
     .min = 1, .max = 1000, .def = 5},
    {.key = "resend_interval_ms", .type = DCEM_CFG_INT, .offset = I(resend_interval_ms),
     .min = 100, .max = 600000, .def = 2000},
    {.key = "gateway_msgs_per_s", .type = DCEM_CFG_INT, .offset = I(gateway_msgs_per_s), .min = 1,
     .max = 1000000, .def = 200},
    {.key = "gateway_msgs_burst", .type = DCEM_CFG_INT, .offset = I(gateway_msgs_burst), .min = 1,
     .max = 1000000, .def = 400},
    {.key = "gateway_bytes_per_s", .type = DCEM_CFG_INT, .offset = I(gateway_bytes_per_s),
     .min = 1024, .max = 17179869184.0, .def = 16777216},
    {.key = "gateway_bytes_burst", .type = DCEM_CFG_INT, .offset = I(gateway_bytes_burst),
     .min = DCEM_WIRE_MAX_PAYLOAD, .max = 17179869184.0, .def = 33554432},
    {.key = "gateway_queue_msgs", .type = DCEM_CFG_INT, .offset = I(gateway_queue_msgs), .min = 1,
     .max = 1000000, .def = 512},
    {.key = "gateway_queue_bytes", .type = DCEM_CFG_INT, .offset = I(gateway_queue_bytes),
     .min = DCEM_WIRE_MAX_PAYLOAD, .max = 17179869184.0, .def = 33554432},
    {0},
};
#undef I

/* memset through a volatile pointer: a wipe before free() is a dead store
 * the compiler may otherwise drop. */
static void *(*const volatile wipe)(void *, int, size_t) = memset;

static const char *const roles[] = {"operator", "regulator", NULL};
static const char *const metrics_access[] = {"regulator", "token", "public", NULL};

/* A list of site ids (an operator token's sites). */
static int check_ids(const void *value, size_t count, char *why, size_t whylen)
{
    const char(*ids)[DCEM_ID_MAX] = value;
    for (size_t i = 0; i < count; i++)
        if (dcem_cfg_check_id(ids[i], 1, why, whylen)) return 1;
    return 0;
}

static int check_listen(const void *value, size_t count, char *why, size_t whylen)
{
    (void)count;
    dcem_api_listen l;
    return dcem_api_listen_parse(value, &l, why, whylen) ? 1 : 0;
}

#define T(f) offsetof(dcem_api_token, f)
static const dcem_cfg_field token_fields[] = {
    {.key = "name", .type = DCEM_CFG_STRING, .offset = T(name), .size = 64},
    {.key = "role", .type = DCEM_CFG_ENUM, .offset = T(role), .names = roles,
     .flags = DCEM_CFG_REQUIRED, .def = NAN},
    {.key = "sites", .type = DCEM_CFG_LIST, .offset = T(sites), .size = DCEM_ID_MAX,
     .item = DCEM_CFG_STRING, .min = 0, .max = DCEM_API_MAX_TOKEN_SITES,
     .count_offset = T(n_sites), .check = check_ids},
    {.key = "token", .type = DCEM_CFG_STRING, .offset = T(token), .size = DCEM_API_TOKEN_MAX},
    {.key = "token_file", .type = DCEM_CFG_STRING, .offset = T(token_file),
     .size = DCEM_API_PATH_MAX},
    {.key = "token_env", .type = DCEM_CFG_STRING, .offset = T(token_env), .size = 64},
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = T(line)},
    {0},
};
#undef T

#define A(f) offsetof(dcem_collector_api, f)
static const dcem_cfg_field api_fields[] = {
    {.key = "listen", .type = DCEM_CFG_STRING, .offset = A(listen), .size = 128,
     .def_str = "127.0.0.1:8080", .check = check_listen},
    {.key = "dashboard_dir", .type = DCEM_CFG_STRING, .offset = A(dashboard_dir),
     .size = DCEM_COLLECTOR_PATH_MAX},
    {.key = "reports_dir", .type = DCEM_CFG_STRING, .offset = A(reports_dir),
     .size = DCEM_COLLECTOR_PATH_MAX},
    {.key = "metrics", .type = DCEM_CFG_ENUM, .offset = A(metrics), .names = metrics_access,
     .def = DCEM_API_METRICS_REGULATOR},
    {.key = "max_connections", .type = DCEM_CFG_INT, .offset = A(max_connections), .min = 1,
     .max = 1024, .def = 256},
    {.key = "per_ip_connections", .type = DCEM_CFG_INT, .offset = A(per_ip_connections),
     .min = 0, .max = 1024, .def = 32},
    {.key = "timeout_s", .type = DCEM_CFG_INT, .offset = A(timeout_s), .min = 1, .max = 3600,
     .def = 15},
    {.key = "threads", .type = DCEM_CFG_INT, .offset = A(threads), .min = 1, .max = 64, .def = 4},
    {.key = "silent_intervals", .type = DCEM_CFG_INT, .offset = A(silent_intervals), .min = 1,
     .max = 10000, .def = 3},
    {.key = "tokens", .type = DCEM_CFG_LIST, .offset = A(tokens), .size = sizeof(dcem_api_token),
     .min = 0, .max = DCEM_API_MAX_TOKENS, .sub = token_fields, .count_offset = A(n_tokens)},
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = A(line)},
    {0},
};
#undef A

#define I(f) offsetof(dcem_collector_identity, f)
static const dcem_cfg_field identity_fields[] = {
    {.key = "key_file", .type = DCEM_CFG_STRING, .offset = I(key_file),
     .size = DCEM_COLLECTOR_PATH_MAX,
     .help = "the collector's Ed25519 private key (dcem-collector --keygen FILE), mode 0600"},
    {.key = "allow_unsigned", .type = DCEM_CFG_BOOL, .offset = I(allow_unsigned), .def = 0,
     .help = "lab only: accept unsigned traffic from gateways without keys"},
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = I(line)},
    {0},
};
#undef I

#define SH(f) offsetof(dcem_collector_shard, f)
static const dcem_cfg_field shard_fields[] = {
    {.key = "sites", .type = DCEM_CFG_LIST, .offset = SH(sites), .size = DCEM_ID_MAX,
     .item = DCEM_CFG_STRING, .min = 1, .max = DCEM_COLLECTOR_MAX_SITES,
     .count_offset = SH(n_sites), .check = check_ids, .flags = DCEM_CFG_REQUIRED,
     .help = "the site ids this collector ingests and computes; the other collectors of the "
             "store take the others"},
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = SH(line)},
    {0},
};
#undef SH

#define C(f) offsetof(dcem_collector_config, f)
static const dcem_cfg_field fields[] = {
    {.key = "collector", .type = DCEM_CFG_STRING, .offset = C(collector), .size = DCEM_ID_MAX,
     .flags = DCEM_CFG_REQUIRED, .check = dcem_cfg_check_id},
    {.key = "sites", .type = DCEM_CFG_STRING, .offset = C(sites_dir),
     .size = DCEM_COLLECTOR_PATH_MAX, .flags = DCEM_CFG_REQUIRED},
    {.key = "policy", .type = DCEM_CFG_STRING, .offset = C(policy_file),
     .size = DCEM_COLLECTOR_PATH_MAX,
     .help = "the policy file (default: the shipped one, see dcem_io_share_path)"},
    {.key = "log_level", .type = DCEM_CFG_ENUM, .offset = C(log_level), .names = levels,
     .def = DCEM_LOG_INFO},
    {.key = "health_log_s", .type = DCEM_CFG_INT, .offset = C(health_log_s), .min = 1,
     .max = 86400, .def = 60},
    {.key = "recompute_ms", .type = DCEM_CFG_INT, .offset = C(recompute_ms), .min = 10,
     .max = 3600000, .def = 1000},
    {.key = "mqtt", .type = DCEM_CFG_MAP, .offset = C(mqtt), .flags = DCEM_CFG_REQUIRED,
     .sub = mqtt_fields},
    {.key = "store", .type = DCEM_CFG_MAP, .offset = C(store), .flags = DCEM_CFG_REQUIRED,
     .sub = store_fields},
    {.key = "ingest", .type = DCEM_CFG_MAP, .offset = C(ingest), .sub = ingest_fields},
    {.key = "influx", .type = DCEM_CFG_MAP, .offset = C(influx), .sub = dcem_influx_cfg_fields},
    {.key = "api", .type = DCEM_CFG_MAP, .offset = C(api), .sub = api_fields},
    {.key = "identity", .type = DCEM_CFG_MAP, .offset = C(identity), .sub = identity_fields},
    {.key = "shard", .type = DCEM_CFG_MAP, .offset = C(shard), .sub = shard_fields},
    {0},
};
#undef C

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.yaml of the sites directory, in name order, with its zone. */
static int load_sites(dcem_collector_config *c, const char *name, char *err, size_t errlen)
{
    DIR *d = opendir(c->sites_dir);
    if (!d) return dcem_cfg_error(err, errlen, name, 1, "sites", "%s: cannot open", c->sites_dir);
    char *names[DCEM_COLLECTOR_MAX_SITES];
    size_t n = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") || e->d_name[0] == '.') continue;
        if (n == DCEM_COLLECTOR_MAX_SITES) {
            rc = dcem_cfg_error(err, errlen, name, 1, "sites", "more than %d ledgers",
                                DCEM_COLLECTOR_MAX_SITES);
            break;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        if (!rc && !names[i]) rc = DCEM_ENOMEM;
        if (rc) {
            free(names[i]);
            continue;
        }
        char path[DCEM_COLLECTOR_PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", c->sites_dir, names[i]);
        dcem_collector_site *s = &c->sites[c->n_sites];
        s->ledger = malloc(sizeof *s->ledger);
        if (!s->ledger) rc = DCEM_ENOMEM;
        else if ((rc = dcem_io_load_site(path, s->ledger, err, errlen)) ||
                 (rc = dcem_io_load_tz(s->ledger->timezone, &s->tz, err, errlen))) {
            free(s->ledger);
            s->ledger = NULL;
        } else {
            for (size_t j = 0; j < c->n_sites && !rc; j++)
                if (!strcmp(c->sites[j].ledger->site, s->ledger->site))
                    rc = dcem_cfg_error(err, errlen, path, 1, "site",
                                        "'%s' is also the site of another ledger",
                                        s->ledger->site);
            c->n_sites++;
        }
        free(names[i]);
    }
    return rc;
}

#define TOKEN_FILE_READ 1024 /* bytes read of a token file: its first line is the token */

/* The token of t from its file (first line) or environment variable. */
static int token_source(dcem_api_token *t, const char *name, const char *key, char *err,
                        size_t errlen)
{
    int sources = (t->token[0] != 0) + (t->token_file[0] != 0) + (t->token_env[0] != 0);
    if (sources != 1)
        return dcem_cfg_error(err, errlen, name, t->line, key,
                              "give exactly one of token, token_file, token_env (%d given)",
                              sources);
    const char *v = NULL;
    char buf[TOKEN_FILE_READ], why[DCEM_API_PATH_MAX + 128];
    size_t len = 0, got = 0;
    if (t->token_file[0]) {
        if (dcem_io_resolve(name, t->token_file, sizeof t->token_file))
            return dcem_cfg_error(err, errlen, name, t->line, key, "token_file: path too long");
        if (dcem_io_read_secret(t->token_file, buf, sizeof buf, &got, why, sizeof why)) {
            wipe(buf, 0, sizeof buf);
            return dcem_cfg_error(err, errlen, name, t->line, key, "token_file: %s", why);
        }
        while (len < got && buf[len] != '\r' && buf[len] != '\n')
            len++; /* the first line (a NUL in it is refused below); a trailing newline is usual */
        v = buf;
    } else if (t->token_env[0]) {
        v = getenv(t->token_env);
        if (!v || !*v)
            return dcem_cfg_error(err, errlen, name, t->line, key,
                                  "token_env: the environment variable %s is not set or empty",
                                  t->token_env);
        len = strlen(v);
    } else {
        v = t->token;
        len = strlen(v);
    }
    int rc = dcem_api_token_check(v, len, why, sizeof why);
    if (!rc && v != t->token) {
        memcpy(t->token, v, len);
        memset(t->token + len, 0, sizeof t->token - len);
    }
    wipe(buf, 0, sizeof buf); /* a secret: not left on the stack */
    if (rc) return dcem_cfg_error(err, errlen, name, t->line, key, "%s", why);
    return 0;
}

/* The api section's rules beyond types and ranges; after the ledgers are
 * loaded (an operator's sites must have one). */
const char *dcem_collector_store_target(const dcem_collector_store *s)
{
    return strcmp(s->backend, "postgresql") ? s->path : s->dsn;
}

int dcem_collector_store_same(const dcem_collector_store *a, const dcem_collector_store *b)
{
    dcem_collector_store x = *a, y = *b;
    x.line = y.line = 0;
    return !memcmp(&x, &y, sizeof x);
}

/* The store section's cross-field rules: which of path and dsn the backend
 * takes; a DSN that libpq cannot parse is refused here, with its line. */
static int check_store(dcem_collector_config *c, const char *name, char *err, size_t errlen)
{
    dcem_collector_store *s = &c->store;
    int line = s->line ? s->line : 1;
    if (!strcmp(s->backend, "sqlite")) {
        if (!s->path[0])
            return dcem_cfg_error(err, errlen, name, line, "store.path",
                                  "required with backend sqlite: the store file");
        if (s->dsn[0])
            return dcem_cfg_error(err, errlen, name, line, "store.dsn",
                                  "is for backend postgresql; sqlite takes path");
        if (dcem_io_resolve(name, s->path, sizeof s->path))
            return dcem_cfg_error(err, errlen, name, line, "store.path", "path too long");
        snprintf(s->label, sizeof s->label, "%s", s->path);
        return 0;
    }
    if (strcmp(s->backend, "postgresql"))
        return dcem_cfg_error(err, errlen, name, line, "store.backend",
                              "'%s': valid are sqlite, postgresql", s->backend);
    if (!s->dsn[0])
        return dcem_cfg_error(err, errlen, name, line, "store.dsn",
                              "required with backend postgresql: a libpq connection string"
                              " (\"host=... dbname=... user=...\") or URI");
    if (s->path[0])
        return dcem_cfg_error(err, errlen, name, line, "store.path",
                              "is for backend sqlite; postgresql takes dsn");
    char *why = NULL;
    PQconninfoOption *o = PQconninfoParse(s->dsn, &why);
    if (!o) {
        int rc = dcem_cfg_error(err, errlen, name, line, "store.dsn", "%s",
                                why ? why : "out of memory");
        PQfreemem(why);
        return rc;
    }
    /* a label without the password: host, port, database, user */
    size_t n = (size_t)snprintf(s->label, sizeof s->label, "postgresql");
    for (PQconninfoOption *p = o; p->keyword; p++) {
        const char *k = p->keyword;
        if (!p->val || !*p->val || n >= sizeof s->label) continue;
        if (strcmp(k, "host") && strcmp(k, "hostaddr") && strcmp(k, "port") &&
            strcmp(k, "dbname") && strcmp(k, "user"))
            continue;
        n += (size_t)snprintf(s->label + n, sizeof s->label - n, " %s=%s", k, p->val);
    }
    PQconninfoFree(o);
    return 0;
}

static int check_api(dcem_collector_config *c, const char *name, char *err, size_t errlen)
{
    dcem_collector_api *a = &c->api;
    if (!a->line) return 0;
    if (a->max_connections < a->threads)
        return dcem_cfg_error(err, errlen, name, a->line, "api.max_connections",
                              "%lld is fewer than api.threads (%lld): each thread needs one",
                              a->max_connections, a->threads);
    char tried[3 * DCEM_COLLECTOR_PATH_MAX];
    if (!a->dashboard_dir[0] &&
        dcem_io_share_path("dashboard", DCEM_DASHBOARD_DIR, a->dashboard_dir,
                           sizeof a->dashboard_dir, tried, sizeof tried))
        return dcem_cfg_error(err, errlen, name, a->line, "api.dashboard_dir",
                              "not given, and no dashboard files found (tried %s)", tried);
    if (dcem_io_resolve(name, a->dashboard_dir, sizeof a->dashboard_dir))
        return dcem_cfg_error(err, errlen, name, a->line, "api.dashboard_dir", "path too long");
    if (a->reports_dir[0]) {
        if (dcem_io_resolve(name, a->reports_dir, sizeof a->reports_dir))
            return dcem_cfg_error(err, errlen, name, a->line, "api.reports_dir", "path too long");
    } else { /* beside the store file (already resolved), or the config file (postgresql) */
        const char *beside = c->store.path[0] ? c->store.path : name;
        const char *slash = strrchr(beside, '/');
        int dir = slash ? (int)(slash - beside) : 0;
        int n = slash ? snprintf(a->reports_dir, sizeof a->reports_dir, "%.*s/reports", dir,
                                 beside)
                      : snprintf(a->reports_dir, sizeof a->reports_dir, "reports");
        if (n < 0 || (size_t)n >= sizeof a->reports_dir)
            return dcem_cfg_error(err, errlen, name, a->line, "api.reports_dir", "path too long");
    }
    for (size_t i = 0; i < a->n_tokens; i++) {
        dcem_api_token *t = &a->tokens[i];
        char key[64];
        snprintf(key, sizeof key, "api.tokens[%zu]", i);
        if (!t->name[0]) snprintf(t->name, sizeof t->name, "tokens[%zu]", i);
        int rc = token_source(t, name, key, err, errlen);
        if (rc) return rc;
        if (t->role == DCEM_API_ROLE_REGULATOR && t->n_sites)
            return dcem_cfg_error(err, errlen, name, t->line, key,
                                  "a regulator reads every site: remove 'sites'");
        if (t->role == DCEM_API_ROLE_OPERATOR && !t->n_sites)
            return dcem_cfg_error(err, errlen, name, t->line, key,
                                  "an operator needs 'sites': the site ids it may read");
        for (size_t k = 0; k < t->n_sites; k++)
            if (!dcem_collector_site_find(c, t->sites[k]))
                return dcem_cfg_error(err, errlen, name, t->line, key,
                                      "sites: no ledger for site '%s' in %s", t->sites[k],
                                      c->sites_dir);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(a->tokens[k].token, t->token))
                return dcem_cfg_error(err, errlen, name, t->line, key,
                                      "the same token as %s: give each its own",
                                      a->tokens[k].name);
    }
    return 0;
}

/* The shard: every site it names has a ledger, none twice; the sites it
 * names are this collector's (all of them without a shard). */
static int check_shard(dcem_collector_config *c, const char *name, char *err, size_t errlen)
{
    const dcem_collector_shard *sh = &c->shard;
    for (size_t k = 0; k < sh->n_sites; k++) {
        size_t i = 0;
        while (i < c->n_sites && strcmp(c->sites[i].ledger->site, sh->sites[k])) i++;
        if (i == c->n_sites)
            return dcem_cfg_error(err, errlen, name, sh->line, "shard.sites",
                                  "no ledger for site '%s' in %s", sh->sites[k], c->sites_dir);
        if (c->sites[i].mine)
            return dcem_cfg_error(err, errlen, name, sh->line, "shard.sites",
                                  "site '%s' is listed twice", sh->sites[k]);
        c->sites[i].mine = 1;
    }
    if (!sh->n_sites)
        for (size_t i = 0; i < c->n_sites; i++) c->sites[i].mine = 1;
    return 0;
}

/* The identity section: the collector's key loaded, and no gateway left
 * that could only ever be refused. */
static int check_identity(dcem_collector_config *c, const char *name, char *err, size_t errlen)
{
    dcem_collector_identity *id = &c->identity;
    int line = id->line ? id->line : 1;
    if (id->key_file[0]) {
        char why[700];
        if (dcem_io_resolve(name, id->key_file, sizeof id->key_file))
            return dcem_cfg_error(err, errlen, name, line, "identity.key_file", "path too long");
        if (dcem_io_load_signer(id->key_file, &c->signer, why, sizeof why))
            return dcem_cfg_error(err, errlen, name, line, "identity.key_file", "%s", why);
    } else if (!id->allow_unsigned) {
        return dcem_cfg_error(err, errlen, name, line, "identity.key_file",
                              "required: the collector signs its acks (dcem-collector --keygen "
                              "FILE makes one), or allow_unsigned: true for a lab");
    }
    if (id->allow_unsigned) return 0;
    for (size_t i = 0; i < c->n_sites; i++) {
        const dcem_site *s = c->sites[i].ledger;
        if (!s->n_gateways)
            return dcem_cfg_error(err, errlen, name, line, "identity",
                                  "site '%s' lists no gateways with keys: every batch would be "
                                  "refused (add gateways: to its ledger, or allow_unsigned: true "
                                  "for a lab)",
                                  s->site);
        for (size_t g = 0; g < s->n_gateways; g++)
            if (!s->gateways[g].n_keys)
                return dcem_cfg_error(err, errlen, name, line, "identity",
                                      "gateway '%s' of site '%s' has no keys in its ledger "
                                      "(line %d): its batches would be refused",
                                      s->gateways[g].id, s->site, s->gateways[g].line);
    }
    return 0;
}

dcem_collector_config *dcem_collector_config_parse(const char *name, const char *buf, size_t len,
                                                   char *err, size_t errlen)
{
    dcem_collector_config *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    snprintf(c->file, sizeof c->file, "%s", name);
    int rc = dcem_cfg_parse(name, buf, len, fields, c, err, errlen);
    if (!rc && (dcem_io_resolve(name, c->sites_dir, sizeof c->sites_dir) ||
                dcem_io_resolve(name, c->policy_file, sizeof c->policy_file) ||
                dcem_io_resolve(name, c->influx.backlog_dir, sizeof c->influx.backlog_dir) ||
                dcem_io_resolve(name, c->mqtt.ca_file, sizeof c->mqtt.ca_file) ||
                dcem_io_resolve(name, c->mqtt.cert_file, sizeof c->mqtt.cert_file) ||
                dcem_io_resolve(name, c->mqtt.key_file, sizeof c->mqtt.key_file)))
        rc = dcem_cfg_error(err, errlen, name, 1, "", "a path is too long");
    if (!rc && c->influx.line) rc = dcem_influx_cfg_check(&c->influx, name, err, errlen);
    if (!rc) rc = check_store(c, name, err, errlen);
    if (!rc) rc = dcem_mqtt_cfg_check(&c->mqtt, name, err, errlen);
    if (!rc && !*c->mqtt.client_id)
        snprintf(c->mqtt.client_id, sizeof c->mqtt.client_id, "dcem-collector-%s", c->collector);
    if (!rc && !*c->policy_file) {
        char tried[3 * DCEM_COLLECTOR_PATH_MAX];
        if (dcem_io_share_path(DCEM_IO_DEFAULT_POLICY, DCEM_COLLECTOR_POLICY_FILE, c->policy_file,
                               sizeof c->policy_file, tried, sizeof tried))
            rc = dcem_cfg_error(err, errlen, name, 1, "policy",
                                "not given, and no shipped policy found (tried %s)", tried);
    }
    if (!rc) {
        c->policy = malloc(sizeof *c->policy);
        rc = c->policy ? dcem_io_load_policy(c->policy_file, c->policy, err, errlen) : DCEM_ENOMEM;
    }
    if (!rc) rc = load_sites(c, name, err, errlen);
    if (!rc) rc = check_api(c, name, err, errlen);
    if (!rc) rc = check_identity(c, name, err, errlen);
    if (!rc) rc = check_shard(c, name, err, errlen);
    if (rc) {
        if (rc == DCEM_ENOMEM) snprintf(err, errlen, "%s: out of memory", name);
        dcem_collector_config_free(c);
        return NULL;
    }
    return c;
}

dcem_collector_config *dcem_collector_config_load(const char *path, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    if (dcem_io_read_file(path, &buf, &len, err, errlen)) return NULL;
    dcem_collector_config *c = dcem_collector_config_parse(path, buf, len, err, errlen);
    free(buf);
    return c;
}

void dcem_collector_config_free(dcem_collector_config *c)
{
    if (!c) return;
    /* the tokens are secrets: not left in freed memory */
    wipe(c->api.tokens, 0, sizeof c->api.tokens);
    wipe(c->store.dsn, 0, sizeof c->store.dsn); /* may hold a password */
    for (size_t i = 0; i < c->n_sites; i++) {
        free(c->sites[i].ledger);
        dcem_tz_free(c->sites[i].tz);
    }
    free(c->policy);
    dcem_signer_free(c->signer);
    free(c);
}

const dcem_collector_site *dcem_collector_site_find(const dcem_collector_config *c,
                                                    const char *id)
{
    for (size_t i = 0; i < c->n_sites; i++)
        if (!strcmp(c->sites[i].ledger->site, id)) return &c->sites[i];
    return NULL;
}
