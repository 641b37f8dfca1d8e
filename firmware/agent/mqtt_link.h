/* mqtt_link.h — the agent's MQTT connection (paho-mqtt-c, MQTT 3.1.1 or 5):
 * connect with a retained last will, TLS and credentials, subscribe, publish
 * QoS 1, and hand received messages to a callback (called on paho's thread).
 * Delivery is made lossless one level up, by the spool and collector acks:
 * the session is clean and paho keeps nothing on disk. */
#ifndef DCEM_MQTT_LINK_H
#define DCEM_MQTT_LINK_H

#include "agent_config.h"

#include <stddef.h>

typedef struct dcem_mqtt dcem_mqtt;

/* Called on paho's thread for each message on a subscribed topic. */
typedef void (*dcem_mqtt_msg_fn)(void *ctx, const char *topic, const void *payload, size_t len);

/* A link for cfg (copied). will_topic/will_payload: the retained message the
 * broker publishes when the link dies uncleanly. NULL on error (err set). */
dcem_mqtt *dcem_mqtt_new(const dcem_mqtt_cfg *cfg, const char *will_topic,
                         const char *will_payload, dcem_mqtt_msg_fn fn, void *ctx, char *err,
                         size_t errlen);

/* Connects and subscribes (QoS 1) to topics. 0, or -1 with err set. */
int dcem_mqtt_connect(dcem_mqtt *m, const char *const *topics, size_t n, char *err, size_t errlen);

/* 1 while connected (the connection-lost callback clears it). */
int dcem_mqtt_is_connected(dcem_mqtt *m);

/* Publishes; does not wait for the broker's PUBACK. 0, or -1 (not connected,
 * too many in flight, ...) with err set. */
int dcem_mqtt_publish(dcem_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                      int retain, char *err, size_t errlen);

/* Clean disconnect (no last will); safe when not connected. */
void dcem_mqtt_disconnect(dcem_mqtt *m);

void dcem_mqtt_free(dcem_mqtt *m);

#endif
