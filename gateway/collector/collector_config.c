#include "collector_config.h"
#include "cfg.h"
#include "dcem_io.h"
#include "dcem_log.h"
#include "errors.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const syncs[] = {"full", "normal", NULL};

#define M(f) offsetof(dcem_collector_mqtt, f)
static const dcem_cfg_field mqtt_fields[] = {
    {.key = "uri", .type = DCEM_CFG_STRING, .offset = M(uri), .size = 256,
     .flags = DCEM_CFG_REQUIRED},
    {.key = "client_id", .type = DCEM_CFG_STRING, .offset = M(client_id), .size = 128},
    {.key = "version", .type = DCEM_CFG_INT, .offset = M(version), .min = 3, .max = 5, .def = 5},
    {.key = "username", .type = DCEM_CFG_STRING, .offset = M(username), .size = 128},
    {.key = "password", .type = DCEM_CFG_STRING, .offset = M(password), .size = 128},
    {.key = "ca_file", .type = DCEM_CFG_STRING, .offset = M(ca_file), .size = DCEM_COLLECTOR_PATH_MAX},
    {.key = "cert_file", .type = DCEM_CFG_STRING, .offset = M(cert_file),
     .size = DCEM_COLLECTOR_PATH_MAX},
    {.key = "key_file", .type = DCEM_CFG_STRING, .offset = M(key_file),
     .size = DCEM_COLLECTOR_PATH_MAX},
    {.key = "keepalive_s", .type = DCEM_CFG_INT, .offset = M(keepalive_s), .min = 5, .max = 3600,
     .def = 30},
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
     .flags = DCEM_CFG_REQUIRED},
    {.key = "synchronous", .type = DCEM_CFG_ENUM, .offset = S(synchronous), .names = syncs,
     .def = 0},
    {.key = "retention_days", .type = DCEM_CFG_INT, .offset = S(retention_days), .min = 0,
     .max = 36500, .def = 0},
    {0},
};
#undef S

#define C(f) offsetof(dcem_collector_config, f)
static const dcem_cfg_field fields[] = {
    {.key = "collector", .type = DCEM_CFG_STRING, .offset = C(collector), .size = DCEM_ID_MAX,
     .flags = DCEM_CFG_REQUIRED, .check = dcem_cfg_check_id},
    {.key = "sites", .type = DCEM_CFG_STRING, .offset = C(sites_dir),
     .size = DCEM_COLLECTOR_PATH_MAX, .flags = DCEM_CFG_REQUIRED},
    {.key = "policy", .type = DCEM_CFG_STRING, .offset = C(policy_file),
     .size = DCEM_COLLECTOR_PATH_MAX, .flags = DCEM_CFG_REQUIRED},
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
    {.key = "influx", .type = DCEM_CFG_MAP, .offset = C(influx), .sub = dcem_influx_cfg_fields},
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

dcem_collector_config *dcem_collector_config_parse(const char *name, const char *buf, size_t len,
                                                   char *err, size_t errlen)
{
    dcem_collector_config *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    snprintf(c->file, sizeof c->file, "%s", name);
    int rc = dcem_cfg_parse(name, buf, len, fields, c, err, errlen);
    if (!rc && (dcem_io_resolve(name, c->sites_dir, sizeof c->sites_dir) ||
                dcem_io_resolve(name, c->policy_file, sizeof c->policy_file) ||
                dcem_io_resolve(name, c->store.path, sizeof c->store.path) ||
                dcem_io_resolve(name, c->influx.backlog_dir, sizeof c->influx.backlog_dir)))
        rc = dcem_cfg_error(err, errlen, name, 1, "", "a path is too long");
    if (!rc && c->influx.line) rc = dcem_influx_cfg_check(&c->influx, name, err, errlen);
    if (!rc && strcmp(c->store.backend, "sqlite"))
        rc = dcem_cfg_error(err, errlen, name, 1, "store.backend",
                            "'%s': this build has the sqlite backend only", c->store.backend);
    if (!rc && !*c->mqtt.client_id)
        snprintf(c->mqtt.client_id, sizeof c->mqtt.client_id, "dcem-collector-%s", c->collector);
    if (!rc) {
        c->policy = malloc(sizeof *c->policy);
        rc = c->policy ? dcem_io_load_policy(c->policy_file, c->policy, err, errlen) : DCEM_ENOMEM;
    }
    if (!rc) rc = load_sites(c, name, err, errlen);
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
    for (size_t i = 0; i < c->n_sites; i++) {
        free(c->sites[i].ledger);
        dcem_tz_free(c->sites[i].tz);
    }
    free(c->policy);
    free(c);
}

const dcem_collector_site *dcem_collector_site_find(const dcem_collector_config *c,
                                                    const char *id)
{
    for (size_t i = 0; i < c->n_sites; i++)
        if (!strcmp(c->sites[i].ledger->site, id)) return &c->sites[i];
    return NULL;
}
