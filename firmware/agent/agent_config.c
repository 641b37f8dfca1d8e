#include "agent_config.h"
#include "cfg.h"
#include "dcem_io.h"
#include "dcem_log.h"
#include "errors.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef DCEM_AGENT_PROFILES_DIR /* the source tree's configs/meters (CMake) */
#define DCEM_AGENT_PROFILES_DIR NULL
#endif
#ifndef DCEM_AGENT_POLICY_FILE /* and its policy */
#define DCEM_AGENT_POLICY_FILE NULL
#endif

static const char *const parities[] = {"N", "E", "O", NULL};
static const char *const fsyncs[] = {"always", "interval", "never", NULL};
static const char *const levels[] = {"error", "warn", "info", "debug", NULL};

#define UNSET (-1) /* a key's "absent" value where every valid one is >= 0 */
#define SERIAL_DEFAULT_BAUD 9600
#define SERIAL_DEFAULT_PARITY 0 /* N */
#define SERIAL_DEFAULT_DATA_BITS 8
#define SERIAL_DEFAULT_STOP_BITS 1

#define B(f) offsetof(dcem_bus_cfg, f)
static const dcem_cfg_field bus_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = B(line)},
    {.key = "name", .type = DCEM_CFG_STRING, .offset = B(name), .size = DCEM_ID_MAX,
     .flags = DCEM_CFG_REQUIRED, .check = dcem_cfg_check_id},
    {.key = "tcp", .type = DCEM_CFG_STRING, .offset = B(tcp), .size = 128,
     .help = "host:port of a Modbus TCP device or gateway"},
    {.key = "rtu", .type = DCEM_CFG_STRING, .offset = B(rtu), .size = DCEM_PATH_MAX,
     .help = "serial device of an RS-485 line"},
    /* serial line settings: UNSET when absent, so that finish() can tell a
     * TCP bus that names one (a mistake) from one that does not, then fills
     * the RTU defaults (SERIAL_DEFAULT_*) */
    {.key = "baud", .type = DCEM_CFG_INT, .offset = B(baud), .min = 300, .max = 921600,
     .def = UNSET, .help = "RTU only (default 9600)"},
    {.key = "parity", .type = DCEM_CFG_ENUM, .offset = B(parity), .names = parities,
     .def = UNSET, .help = "RTU only: N, E or O (default N)"},
    {.key = "data_bits", .type = DCEM_CFG_INT, .offset = B(data_bits), .min = 7, .max = 8,
     .def = UNSET, .help = "RTU only (default 8)"},
    {.key = "stop_bits", .type = DCEM_CFG_INT, .offset = B(stop_bits), .min = 1, .max = 2,
     .def = UNSET, .help = "RTU only (default 1)"},
    {.key = "response_timeout_ms", .type = DCEM_CFG_INT, .offset = B(response_timeout_ms),
     .min = 10, .max = 60000, .def = 500},
    {.key = "pause_ms", .type = DCEM_CFG_INT, .offset = B(pause_ms), .min = 0, .max = 10000,
     .def = 0, .help = "quiet time between requests (RS-485 turnaround)"},
    {.key = "connect_pause_ms", .type = DCEM_CFG_INT, .offset = B(connect_pause_ms), .min = 0,
     .max = 10000, .def = 0, .help = "wait after connecting (slow TCP gateways)"},
    {.key = "retries", .type = DCEM_CFG_INT, .offset = B(retries), .min = 0, .max = 5, .def = 1},
    {.key = "backoff_max_ms", .type = DCEM_CFG_INT, .offset = B(backoff_max_ms), .min = 100,
     .max = 3600000, .def = 60000},
    {0},
};
#undef B

#define D(f) offsetof(dcem_device_cfg, f)
static const dcem_cfg_field device_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = D(line)},
    {.key = "bus", .type = DCEM_CFG_STRING, .offset = D(bus), .size = DCEM_ID_MAX,
     .flags = DCEM_CFG_REQUIRED},
    {.key = "unit", .type = DCEM_CFG_INT, .offset = D(unit), .flags = DCEM_CFG_REQUIRED,
     .min = 0, .max = 255, .def = NAN},
    {.key = "profile", .type = DCEM_CFG_STRING, .offset = D(profile), .size = 64,
     .flags = DCEM_CFG_REQUIRED, .check = dcem_cfg_check_id},
    {.key = "meter", .type = DCEM_CFG_STRING, .offset = D(meter), .size = DCEM_ID_MAX,
     .flags = DCEM_CFG_REQUIRED, .check = dcem_cfg_check_id},
    {.key = "poll_ms", .type = DCEM_CFG_INT, .offset = D(poll_ms), .min = 100, .max = 3600000,
     .def = 1000},
    {.key = "ct_ratio", .type = DCEM_CFG_DOUBLE, .offset = D(ct_ratio), .min = 0,
     .max = DCEM_RATIO_MAX, .def = NAN, .flags = DCEM_CFG_MIN_EXCL,
     .help = "current transformer ratio (2000/5 A: 400); wins over the meter's register"},
    {.key = "pt_ratio", .type = DCEM_CFG_DOUBLE, .offset = D(pt_ratio), .min = 0,
     .max = DCEM_RATIO_MAX, .def = NAN, .flags = DCEM_CFG_MIN_EXCL,
     .help = "voltage transformer ratio (10 kV/100 V: 100); wins over the meter's register"},
    {.key = "ratio_every_s", .type = DCEM_CFG_INT, .offset = D(ratio_every_s), .min = 1,
     .max = 86400, .def = 300, .help = "how often the meter's ratio registers are read again"},
    {.key = "map_retry_s", .type = DCEM_CFG_INT, .offset = D(map_retry_s), .min = 1,
     .max = 604800, .def = 3600,
     .help = "how often registers the meter refused are asked for again"},
    {0},
};
#undef D

#define M(f) offsetof(dcem_mqtt_cfg, f)
static const dcem_cfg_field mqtt_fields[] = {
    DCEM_MQTT_CFG_FIELDS,
    {.key = "reconnect_max_ms", .type = DCEM_CFG_INT, .offset = M(reconnect_max_ms), .min = 100,
     .max = 600000, .def = 30000},
    {.key = "inflight", .type = DCEM_CFG_INT, .offset = M(inflight), .min = 1, .max = 1000,
     .def = 20},
    {0},
};
#undef M

#define S(f) offsetof(dcem_spool_cfg, f)
static const dcem_cfg_field spool_fields[] = {
    {.key = "dir", .type = DCEM_CFG_STRING, .offset = S(dir), .size = DCEM_PATH_MAX,
     .flags = DCEM_CFG_REQUIRED},
    {.key = "max_mib", .type = DCEM_CFG_DOUBLE, .offset = S(max_mib), .min = 1, .max = 1 << 20,
     .def = 64},
    {.key = "fsync", .type = DCEM_CFG_ENUM, .offset = S(fsync), .names = fsyncs, .def = 0},
    {.key = "fsync_interval_ms", .type = DCEM_CFG_INT, .offset = S(fsync_interval_ms), .min = 10,
     .max = 600000, .def = 1000},
    {0},
};
#undef S

#define BT(f) offsetof(dcem_batch_cfg, f)
static const dcem_cfg_field batch_fields[] = {
    {.key = "max_readings", .type = DCEM_CFG_INT, .offset = BT(max_readings), .min = 1,
     .max = 10000, .def = 500},
    {.key = "max_delay_ms", .type = DCEM_CFG_INT, .offset = BT(max_delay_ms), .min = 0,
     .max = 600000, .def = 1000},
    {0},
};
#undef BT

#define I(f) offsetof(dcem_identity_cfg, f)
static const dcem_cfg_field identity_fields[] = {
    {.key = "key_file", .type = DCEM_CFG_STRING, .offset = I(key_file), .size = DCEM_PATH_MAX,
     .help = "the gateway's Ed25519 private key (dcem-agent --keygen FILE), mode 0600"},
    {.key = "collector_keys", .type = DCEM_CFG_LIST, .offset = I(collector_key_text),
     .size = DCEM_PUBKEY_TEXT_MAX, .min = 0, .max = DCEM_SIG_MAX_KEYS, .item = DCEM_CFG_STRING,
     .count_offset = I(n_collector_keys), .check = dcem_pubkey_list_check,
     .help = "the collectors' public keys, \"ed25519:<base64>\": acks must verify with one"},
    {.key = "allow_unsigned", .type = DCEM_CFG_BOOL, .offset = I(allow_unsigned), .def = 0,
     .help = "lab only: run without key_file or collector_keys"},
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = I(line)},
    {0},
};
#undef I

#define A(f) offsetof(dcem_agent_config, f)
static const dcem_cfg_field agent_fields[] = {
    {.key = "gateway", .type = DCEM_CFG_STRING, .offset = A(gateway), .size = DCEM_ID_MAX,
     .flags = DCEM_CFG_REQUIRED, .check = dcem_cfg_check_id},
    {.key = "site", .type = DCEM_CFG_STRING, .offset = A(site), .size = DCEM_ID_MAX,
     .flags = DCEM_CFG_REQUIRED, .check = dcem_cfg_check_id},
    {.key = "ledger", .type = DCEM_CFG_STRING, .offset = A(ledger), .size = DCEM_PATH_MAX},
    {.key = "policy", .type = DCEM_CFG_STRING, .offset = A(policy_file), .size = DCEM_PATH_MAX,
     .help = "with a ledger: the policy file whose counter rules the local figures apply "
             "(default: the shipped one, see dcem_io_share_path)"},
    {.key = "profiles", .type = DCEM_CFG_STRING, .offset = A(profiles_dir), .size = DCEM_PATH_MAX,
     .help = "folder of meter profiles (default: see dcem_io_share_path)"},
    {.key = "log_level", .type = DCEM_CFG_ENUM, .offset = A(log_level), .names = levels,
     .def = DCEM_LOG_INFO},
    {.key = "buses", .type = DCEM_CFG_LIST, .offset = A(buses), .size = sizeof(dcem_bus_cfg),
     .flags = DCEM_CFG_REQUIRED, .min = 1, .max = DCEM_AGENT_MAX_BUSES, .sub = bus_fields,
     .count_offset = A(n_buses)},
    {.key = "devices", .type = DCEM_CFG_LIST, .offset = A(devices),
     .size = sizeof(dcem_device_cfg), .flags = DCEM_CFG_REQUIRED, .min = 1,
     .max = DCEM_AGENT_MAX_DEVICES, .sub = device_fields, .count_offset = A(n_devices)},
    {.key = "mqtt", .type = DCEM_CFG_MAP, .offset = A(mqtt), .flags = DCEM_CFG_REQUIRED,
     .sub = mqtt_fields},
    {.key = "spool", .type = DCEM_CFG_MAP, .offset = A(spool), .flags = DCEM_CFG_REQUIRED,
     .sub = spool_fields},
    {.key = "batch", .type = DCEM_CFG_MAP, .offset = A(batch), .sub = batch_fields},
    {.key = "identity", .type = DCEM_CFG_MAP, .offset = A(identity), .sub = identity_fields},
    {0},
};
#undef A

static int split_host_port(dcem_bus_cfg *b)
{
    const char *colon = strrchr(b->tcp, ':');
    if (!colon || colon == b->tcp || (size_t)(colon - b->tcp) >= sizeof b->host) return -1;
    long port = 0;
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5) return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535) return -1;
    memcpy(b->host, b->tcp, (size_t)(colon - b->tcp));
    b->host[colon - b->tcp] = '\0';
    b->port = (int)port;
    return 0;
}

/* The serial line settings belong to an RTU bus: on a TCP bus they would be
 * silently ignored (a TCP-to-serial gateway's serial side is set up on the
 * gateway), so naming one there is an error. Absent ones get the defaults. */
static int serial_settings(dcem_bus_cfg *b, const char *name, char *err, size_t errlen)
{
    long long parity = b->parity;
    const struct {
        const char *key;
        long long *value;
        long long def;
    } keys[] = {{"baud", &b->baud, SERIAL_DEFAULT_BAUD},
                {"parity", &parity, SERIAL_DEFAULT_PARITY},
                {"data_bits", &b->data_bits, SERIAL_DEFAULT_DATA_BITS},
                {"stop_bits", &b->stop_bits, SERIAL_DEFAULT_STOP_BITS}};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        if (*keys[k].value == UNSET) {
            *keys[k].value = keys[k].def;
        } else if (b->kind == DCEM_BUS_TCP) {
            char key[32];
            snprintf(key, sizeof key, "buses.%s", keys[k].key);
            return dcem_cfg_error(err, errlen, name, b->line, key,
                                  "bus '%s' is Modbus TCP: '%s' is a serial line setting of an "
                                  "rtu bus (a TCP-to-serial gateway's line is set up on the "
                                  "gateway)",
                                  b->name, keys[k].key);
        }
    }
    b->parity = (int)parity;
    return 0;
}

static int profile_exists(const char *dir, const char *model)
{
    char path[DCEM_PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/%s.yaml", dir, model);
    struct stat st;
    return !stat(path, &st);
}

/* The identity section: the gateway's key loaded, the collector's keys
 * decoded, and nothing missing that would leave it speaking or listening
 * unsigned outside a lab. */
static int check_identity(dcem_agent_config *c, const char *name, char *err, size_t errlen)
{
    dcem_identity_cfg *id = &c->identity;
    int line = id->line ? id->line : 1;
    dcem_pubkey_list_parse(id->collector_key_text, id->n_collector_keys, id->collector_keys);
    if (id->key_file[0]) {
        char why[DCEM_PATH_MAX + 200];
        if (dcem_io_resolve(name, id->key_file, sizeof id->key_file))
            return dcem_cfg_error(err, errlen, name, line, "identity.key_file", "path too long");
        if (dcem_io_load_signer(id->key_file, &c->signer, why, sizeof why))
            return dcem_cfg_error(err, errlen, name, line, "identity.key_file", "%s", why);
    } else if (!id->allow_unsigned) {
        return dcem_cfg_error(err, errlen, name, line, "identity.key_file",
                              "required: the gateway signs its batches (dcem-agent --keygen FILE "
                              "makes one), or allow_unsigned: true for a lab");
    }
    if (!id->n_collector_keys && !id->allow_unsigned)
        return dcem_cfg_error(err, errlen, name, line, "identity.collector_keys",
                              "required: the collector's public keys, so that no one else can "
                              "ack (dcem-collector --pubkey FILE prints one), or allow_unsigned: "
                              "true for a lab");
    return 0;
}

/* Cross-field rules and loading what the config names. */
static int finish(dcem_agent_config *c, const char *name, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->n_buses; i++) {
        dcem_bus_cfg *b = &c->buses[i];
        if (!*b->tcp == !*b->rtu)
            return dcem_cfg_error(err, errlen, name, b->line, "buses",
                                  "bus '%s': give exactly one of 'tcp' or 'rtu'", b->name);
        if (*b->tcp && split_host_port(b))
            return dcem_cfg_error(err, errlen, name, b->line, "buses.tcp",
                                  "'%s': expected host:port", b->tcp);
        b->kind = *b->tcp ? DCEM_BUS_TCP : DCEM_BUS_RTU;
        if (serial_settings(b, name, err, errlen)) return DCEM_ECONFIG;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(c->buses[j].name, b->name))
                return dcem_cfg_error(err, errlen, name, b->line, "buses.name",
                                      "'%s' already declared at line %d", b->name,
                                      c->buses[j].line);
    }
    c->profiles = calloc(c->n_devices, sizeof *c->profiles);
    if (!c->profiles) return DCEM_ENOMEM;
    for (size_t i = 0; i < c->n_devices; i++) {
        dcem_device_cfg *d = &c->devices[i];
        d->bus_index = -1;
        for (size_t j = 0; j < c->n_buses; j++)
            if (!strcmp(c->buses[j].name, d->bus)) d->bus_index = (int)j;
        if (d->bus_index < 0)
            return dcem_cfg_error(err, errlen, name, d->line, "devices.bus",
                                  "no bus named '%s'", d->bus);
        if (c->buses[d->bus_index].kind == DCEM_BUS_RTU && (d->unit < 1 || d->unit > 247))
            return dcem_cfg_error(err, errlen, name, d->line, "devices.unit",
                                  "an RTU unit id must be 1-247, got %lld", d->unit);
        for (size_t j = 0; j < i; j++) {
            const dcem_device_cfg *o = &c->devices[j];
            if (o->bus_index == d->bus_index && o->unit == d->unit)
                return dcem_cfg_error(err, errlen, name, d->line, "devices.unit",
                                      "unit %lld on bus '%s' already declared at line %d",
                                      d->unit, d->bus, o->line);
            if (!strcmp(o->meter, d->meter))
                return dcem_cfg_error(err, errlen, name, d->line, "devices.meter",
                                      "meter '%s' already declared at line %d", d->meter,
                                      o->line);
        }
        if (c->site_ledger && dcem_site_find_meter(c->site_ledger, d->meter, strlen(d->meter)) < 0)
            return dcem_cfg_error(err, errlen, name, d->line, "devices.meter",
                                  "meter '%s' is not in the site ledger %s", d->meter, c->ledger);
        d->profile_index = -1;
        for (size_t j = 0; j < c->n_profiles; j++)
            if (!strcmp(c->profiles[j].model, d->profile)) d->profile_index = (int)j;
        if (d->profile_index < 0) {
            char why[512];
            dcem_profile *p = &c->profiles[c->n_profiles];
            int rc = dcem_io_load_profile(c->profiles_dir, d->profile, p, why, sizeof why);
            if (rc == DCEM_ECONFIG) /* why says file:line in the profile */
                return dcem_cfg_error(err, errlen, name, d->line, "devices.profile", "%s", why);
            if (rc == DCEM_EIO && !profile_exists(c->profiles_dir, d->profile)) {
                char have[400];
                int n = dcem_io_list_profiles(c->profiles_dir, have, sizeof have);
                if (n > 0)
                    return dcem_cfg_error(err, errlen, name, d->line, "devices.profile",
                                          "profile '%s': no %s.yaml in %s; the profiles there: %s",
                                          d->profile, d->profile, c->profiles_dir, have);
                if (n < 0)
                    return dcem_cfg_error(err, errlen, name, d->line, "devices.profile",
                                          "profile '%s': the profiles folder %s: %s", d->profile,
                                          c->profiles_dir, strerror(errno));
                return dcem_cfg_error(err, errlen, name, d->line, "devices.profile",
                                      "profile '%s': no %s.yaml in %s, which holds no profiles "
                                      "('profiles' names the folder of configs/meters)",
                                      d->profile, d->profile, c->profiles_dir);
            }
            if (rc)
                return dcem_cfg_error(err, errlen, name, d->line, "devices.profile",
                                      "profile '%s': %s", d->profile, why);
            int reads = dcem_profile_plan(p, 0, NULL, 0);
            if (reads < 0 || reads > DCEM_AGENT_MAX_READS)
                return dcem_cfg_error(err, errlen, name, d->line, "devices.profile",
                                      "profile '%s' needs %d reads per poll (at most %d)",
                                      d->profile, reads, DCEM_AGENT_MAX_READS);
            d->profile_index = (int)c->n_profiles++;
        }
    }
    return 0;
}

dcem_agent_config *dcem_agent_config_parse(const char *name, const char *buf, size_t len,
                                           char *err, size_t errlen)
{
    dcem_agent_config *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    snprintf(c->file, sizeof c->file, "%s", name);
    int rc = dcem_cfg_parse(name, buf, len, agent_fields, c, err, errlen);
    if (!rc) {
        int bad = dcem_io_resolve(name, c->ledger, sizeof c->ledger) |
                  dcem_io_resolve(name, c->profiles_dir, sizeof c->profiles_dir) |
                  dcem_io_resolve(name, c->spool.dir, sizeof c->spool.dir) |
                  dcem_io_resolve(name, c->mqtt.ca_file, sizeof c->mqtt.ca_file) |
                  dcem_io_resolve(name, c->mqtt.cert_file, sizeof c->mqtt.cert_file) |
                  dcem_io_resolve(name, c->mqtt.key_file, sizeof c->mqtt.key_file);
        for (size_t i = 0; i < c->n_buses; i++)
            bad |= dcem_io_resolve(name, c->buses[i].rtu, sizeof c->buses[i].rtu);
        if (bad)
            rc = dcem_cfg_error(err, errlen, name, 1, "", "a path is longer than %d bytes "
                                "once made relative to this file's directory", DCEM_PATH_MAX - 1);
        if (!rc && *c->ledger) {
            c->site_ledger = malloc(sizeof *c->site_ledger);
            char why[512];
            if (!c->site_ledger) rc = DCEM_ENOMEM;
            else if (dcem_io_load_site(c->ledger, c->site_ledger, why, sizeof why))
                rc = dcem_cfg_error(err, errlen, name, 1, "ledger", "%s", why);
            else if (strcmp(c->site_ledger->site, c->site))
                rc = dcem_cfg_error(err, errlen, name, 1, "ledger",
                                    "the ledger is for site '%s', not '%s'",
                                    c->site_ledger->site, c->site);
        }
        if (!rc && *c->ledger) { /* the same counter rules as the collector and dcem-audit */
            char why[3 * DCEM_PATH_MAX + 200];
            if (!*c->policy_file) {
                if (dcem_io_share_path(DCEM_IO_DEFAULT_POLICY, DCEM_AGENT_POLICY_FILE,
                                       c->policy_file, sizeof c->policy_file, why, sizeof why))
                    rc = dcem_cfg_error(err, errlen, name, 1, "policy",
                                        "not given, and no shipped policy found (tried %s)", why);
            } else if (dcem_io_resolve(name, c->policy_file, sizeof c->policy_file))
                rc = dcem_cfg_error(err, errlen, name, 1, "policy", "path too long");
            if (!rc && !(c->policy = malloc(sizeof *c->policy))) rc = DCEM_ENOMEM;
            else if (!rc && dcem_io_load_policy(c->policy_file, c->policy, why, sizeof why))
                rc = dcem_cfg_error(err, errlen, name, 1, "policy",
                                    "%s (with a ledger, the local figures need the policy's "
                                    "counter rules: set 'policy')",
                                    why);
        }
    }
    if (!rc && !*c->profiles_dir) {
        char tried[3 * DCEM_PATH_MAX];
        if (dcem_io_share_path("meters", DCEM_AGENT_PROFILES_DIR, c->profiles_dir,
                               sizeof c->profiles_dir, tried, sizeof tried))
            rc = dcem_cfg_error(err, errlen, name, 1, "profiles",
                                "not given, and no folder of meter profiles found (tried %s): "
                                "set 'profiles' to the folder of configs/meters",
                                tried);
    }
    if (!rc) rc = dcem_mqtt_cfg_check(&c->mqtt, name, err, errlen);
    if (!rc && !*c->mqtt.client_id)
        /* a gateway id is unique within its site only: two sites may both have a gw-1 */
        snprintf(c->mqtt.client_id, sizeof c->mqtt.client_id, "dcem-%.60s-%.60s", c->site, c->gateway);
    if (!rc) rc = finish(c, name, err, errlen);
    if (!rc) rc = check_identity(c, name, err, errlen);
    if (rc) {
        if (rc == DCEM_ENOMEM) snprintf(err, errlen, "%s: out of memory", name);
        dcem_agent_config_free(c);
        return NULL;
    }
    return c;
}

dcem_agent_config *dcem_agent_config_load(const char *path, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    if (dcem_io_read_file(path, &buf, &len, err, errlen)) return NULL;
    dcem_agent_config *c = dcem_agent_config_parse(path, buf, len, err, errlen);
    free(buf);
    return c;
}

void dcem_agent_config_free(dcem_agent_config *c)
{
    if (!c) return;
    free(c->profiles);
    free(c->site_ledger);
    free(c->policy);
    dcem_signer_free(c->signer);
    free(c);
}

int dcem_agent_config_check_device(const dcem_agent_config *c, size_t bus, char *err,
                                   size_t errlen)
{
    const dcem_bus_cfg *b = &c->buses[bus];
    if (b->kind != DCEM_BUS_RTU) return 0;
    struct stat st;
    if (stat(b->rtu, &st))
        return dcem_cfg_error(err, errlen, c->file, b->line, "buses.rtu", "%s: %s", b->rtu,
                              strerror(errno));
    if (!S_ISCHR(st.st_mode))
        return dcem_cfg_error(err, errlen, c->file, b->line, "buses.rtu",
                              "%s: not a character device (a serial port is /dev/ttyUSB0, "
                              "/dev/ttyS1, /dev/serial/by-id/...)",
                              b->rtu);
    return 0;
}

int dcem_agent_config_check_devices(const dcem_agent_config *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->n_buses; i++) {
        int rc = dcem_agent_config_check_device(c, i, err, errlen);
        if (rc) return rc;
    }
    return 0;
}
