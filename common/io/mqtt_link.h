/* mqtt_link.h — the one MQTT connection of dcem-agent and dcem-collector
 * (paho-mqtt-c, MQTT 3.1.1 or 5): TLS by one rule (on for ssl:// and
 * mqtts:// URIs, the broker's certificate checked against the CA and the
 * URI's host name), credentials, a clean session with a retained last will
 * (the agent) or a persistent one (the collector), subscriptions at QoS 1,
 * QoS 1 publishing, received messages handed to a callback on paho's
 * thread, and why a connect failed in words. */
#ifndef DCEM_MQTT_LINK_H
#define DCEM_MQTT_LINK_H

#include "mqtt_cfg.h"

#include <stddef.h>

typedef struct dcem_mqtt dcem_mqtt;

/* Called on paho's thread for each message on a subscribed topic (topic is
 * NUL-terminated; payload and topic are valid during the call only).
 * Returns 1 when it took the message, 0 when it cannot now: paho keeps it
 * and delivers it again later (the broker holds back the rest meanwhile). */
typedef int (*dcem_mqtt_msg_fn)(void *ctx, const char *topic, const void *payload, size_t len);

typedef struct dcem_mqtt_opts {
    /* NULL, or the retained message (QoS 1) the broker publishes on topic
     * will_topic when the link dies uncleanly. Copied; at most 255 bytes each. */
    const char *will_topic, *will_payload;
    /* 0: a clean session (the agent: its spool and the collector's acks
     * make delivery lossless, paho keeps nothing). 1: the broker keeps the
     * subscriptions and queues messages while the client is away (MQTT 5:
     * for cfg->session_expiry_s). */
    int persistent;
    int inflight;               /* QoS 1 messages in flight to the broker at once (>= 1) */
    dcem_mqtt_msg_fn fn;
    void *ctx;
} dcem_mqtt_opts;

/* Once, before any thread and any link: paho's global state. init_openssl
 * 0 when another library (curl) initialises OpenSSL in this process. */
void dcem_mqtt_global_init(int init_openssl);

/* A link for cfg (copied). NULL on error (err set). */
dcem_mqtt *dcem_mqtt_new(const dcem_mqtt_cfg *cfg, const dcem_mqtt_opts *opts, char *err,
                         size_t errlen);

/* Connects and subscribes (QoS 1) to topics. 0, or -1 with why in words in
 * err ("mqtt connect ssl://h:8883: the TLS handshake with h:8883 failed:
 * certificate verify failed (...)"). A refused subscription is an error
 * too (the broker's ACL), and the link is then disconnected. */
int dcem_mqtt_connect(dcem_mqtt *m, const char *const *topics, size_t n, char *err, size_t errlen);

/* 1 while connected (the connection-lost callback clears it). */
int dcem_mqtt_is_connected(dcem_mqtt *m);

/* Publishes; does not wait for the broker's PUBACK. 0, or -1 (not connected,
 * too many in flight, ...) with err set. */
int dcem_mqtt_publish(dcem_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                      int retain, char *err, size_t errlen);

/* Clean disconnect (no last will); safe when not connected. */
void dcem_mqtt_disconnect(dcem_mqtt *m);

/* Disconnects and frees; NULL is fine. */
void dcem_mqtt_free(dcem_mqtt *m);

#endif
