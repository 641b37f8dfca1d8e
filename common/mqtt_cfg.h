/* mqtt_cfg.h — the MQTT settings of dcem-agent and dcem-collector in one
 * struct, the config-table entries of the keys they share (one fragment
 * both tables include), and the rule that ties TLS to the URI. Pure: the
 * connection itself is common/io/mqtt_link.c. */
#ifndef DCEM_MQTT_CFG_H
#define DCEM_MQTT_CFG_H

#include "cfg.h"

#include <stddef.h>

#define DCEM_MQTT_PATH_MAX 512

typedef struct dcem_mqtt_cfg {
    /* both programs (DCEM_MQTT_CFG_FIELDS) */
    char uri[256];              /* tcp://host:1883; TLS: ssl://host:8883 or mqtts:// */
    char client_id[128];        /* defaulted by each program */
    long long version;          /* 3 (3.1.1) or 5 */
    char username[128], password[128];
    char ca_file[DCEM_MQTT_PATH_MAX], cert_file[DCEM_MQTT_PATH_MAX], key_file[DCEM_MQTT_PATH_MAX];
    long long keepalive_s;
    int line;                   /* of the mqtt map, for cross-field errors */
    /* the agent's keys */
    long long reconnect_max_ms; /* cap of the reconnect backoff */
    long long inflight;         /* batches published and not yet acked by the collector */
    /* the collector's keys */
    char share_group[64];       /* "" or a group: subscribe $share/<group>/dcem/v1/+/+/data */
    long long session_expiry_s; /* MQTT 5: how long the broker keeps the collector's queue */
} dcem_mqtt_cfg;

/* 1 when uri's scheme is a TLS one (ssl://, mqtts://, wss://). */
int dcem_mqtt_cfg_tls(const char *uri);

/* .check of `uri`: a scheme paho knows (tcp mqtt ssl mqtts ws wss) and a host. */
int dcem_mqtt_cfg_check_uri(const void *value, size_t count, char *why, size_t len);

/* The cross-field rule, after parsing: ca_file, cert_file and key_file are
 * for a TLS URI only (they would be ignored on tcp://, and a gateway would
 * send in the clear while its operator believes otherwise), and key_file
 * needs cert_file (cert_file alone may hold the key too). Returns 0, or
 * DCEM_ECONFIG with "file:line: mqtt.KEY: what" in err. */
int dcem_mqtt_cfg_check(const dcem_mqtt_cfg *c, const char *file, char *err, size_t errlen);

#define DCEM_MQTT_CFG_F(f) offsetof(dcem_mqtt_cfg, f)
/* The keys both programs take, for their `mqtt` map's field table:
 *   static const dcem_cfg_field mqtt_fields[] = {DCEM_MQTT_CFG_FIELDS, ...their own..., {0}}; */
#define DCEM_MQTT_CFG_FIELDS                                                                        \
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = DCEM_MQTT_CFG_F(line)},                       \
    {.key = "uri", .type = DCEM_CFG_STRING, .offset = DCEM_MQTT_CFG_F(uri), .size = 256,            \
     .flags = DCEM_CFG_REQUIRED, .check = dcem_mqtt_cfg_check_uri,                                  \
     .help = "tcp://host:1883, or ssl://host:8883 for TLS"},                                        \
    {.key = "client_id", .type = DCEM_CFG_STRING, .offset = DCEM_MQTT_CFG_F(client_id),             \
     .size = 128},                                                                                  \
    {.key = "version", .type = DCEM_CFG_INT, .offset = DCEM_MQTT_CFG_F(version), .min = 3,         \
     .max = 5, .def = 5},                                                                           \
    {.key = "username", .type = DCEM_CFG_STRING, .offset = DCEM_MQTT_CFG_F(username), .size = 128}, \
    {.key = "password", .type = DCEM_CFG_STRING, .offset = DCEM_MQTT_CFG_F(password), .size = 128}, \
    {.key = "ca_file", .type = DCEM_CFG_STRING, .offset = DCEM_MQTT_CFG_F(ca_file),                 \
     .size = DCEM_MQTT_PATH_MAX, .help = "TLS: the CA the broker's certificate must chain to"},     \
    {.key = "cert_file", .type = DCEM_CFG_STRING, .offset = DCEM_MQTT_CFG_F(cert_file),             \
     .size = DCEM_MQTT_PATH_MAX, .help = "TLS: this client's certificate"},                         \
    {.key = "key_file", .type = DCEM_CFG_STRING, .offset = DCEM_MQTT_CFG_F(key_file),               \
     .size = DCEM_MQTT_PATH_MAX, .help = "TLS: this client's private key"},                         \
    {.key = "keepalive_s", .type = DCEM_CFG_INT, .offset = DCEM_MQTT_CFG_F(keepalive_s), .min = 5, \
     .max = 3600, .def = 30}

#endif
