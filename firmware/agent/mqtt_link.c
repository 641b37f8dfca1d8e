#include "mqtt_link.h"
#include "dcem_log.h"

#include <MQTTClient.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dcem_mqtt {
    MQTTClient client;
    dcem_mqtt_cfg cfg;
    char will_topic[256];
    char will_payload[256];
    dcem_mqtt_msg_fn fn;
    void *ctx;
    atomic_int connected;
};

static void on_lost(void *ctx, char *cause)
{
    dcem_mqtt *m = ctx;
    atomic_store(&m->connected, 0);
    DCEM_LOGW("mqtt", "connection to %s lost%s%s", m->cfg.uri, cause ? ": " : "",
              cause ? cause : "");
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTClient_message *msg)
{
    dcem_mqtt *m = ctx;
    char t[256];
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    if (tl < sizeof t) {
        memcpy(t, topic, tl);
        t[tl] = '\0';
        m->fn(m->ctx, t, msg->payload, msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0);
    }
    MQTTClient_freeMessage(&msg);
    MQTTClient_free(topic);
    return 1;
}

dcem_mqtt *dcem_mqtt_new(const dcem_mqtt_cfg *cfg, const char *will_topic,
                         const char *will_payload, dcem_mqtt_msg_fn fn, void *ctx, char *err,
                         size_t errlen)
{
    dcem_mqtt *m = calloc(1, sizeof *m);
    if (!m) return snprintf(err, errlen, "out of memory"), NULL;
    m->cfg = *cfg;
    m->fn = fn;
    m->ctx = ctx;
    snprintf(m->will_topic, sizeof m->will_topic, "%s", will_topic);
    snprintf(m->will_payload, sizeof m->will_payload, "%s", will_payload);
    MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
    co.MQTTVersion = cfg->version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
    int rc = MQTTClient_createWithOptions(&m->client, cfg->uri, cfg->client_id,
                                          MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc == MQTTCLIENT_SUCCESS)
        rc = MQTTClient_setCallbacks(m->client, m, on_lost, on_message, NULL);
    if (rc != MQTTCLIENT_SUCCESS) {
        snprintf(err, errlen, "mqtt %s: %s", cfg->uri, MQTTClient_strerror(rc));
        if (m->client) MQTTClient_destroy(&m->client);
        free(m);
        return NULL;
    }
    return m;
}

int dcem_mqtt_connect(dcem_mqtt *m, const char *const *topics, size_t n, char *err, size_t errlen)
{
    const dcem_mqtt_cfg *c = &m->cfg;
    int v5 = c->version == 5;
    MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
    MQTTClient_connectOptions o5 = MQTTClient_connectOptions_initializer5;
    if (v5) o = o5;
    MQTTClient_willOptions will = MQTTClient_willOptions_initializer;
    MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
    will.topicName = m->will_topic;
    will.message = m->will_payload;
    will.qos = 1;
    will.retained = 1;
    o.will = &will;
    o.keepAliveInterval = (int)c->keepalive_s;
    if (v5) o.cleanstart = 1;
    else o.cleansession = 1;
    o.connectTimeout = 10;
    o.maxInflightMessages = (int)c->inflight;
    if (*c->username) o.username = c->username;
    if (*c->password) o.password = c->password;
    if (*c->ca_file || *c->cert_file || !strncmp(c->uri, "ssl://", 6) ||
        !strncmp(c->uri, "mqtts://", 8)) {
        if (*c->ca_file) ssl.trustStore = c->ca_file;
        if (*c->cert_file) ssl.keyStore = c->cert_file;
        if (*c->key_file) ssl.privateKey = c->key_file;
        ssl.enableServerCertAuth = 1;
        o.ssl = &ssl;
    }
    int rc;
    if (v5) {
        MQTTProperties props = MQTTProperties_initializer;
        MQTTResponse r = MQTTClient_connect5(m->client, &o, &props, NULL);
        rc = r.reasonCode;
        MQTTResponse_free(r);
    } else {
        rc = MQTTClient_connect(m->client, &o);
    }
    if (rc != MQTTCLIENT_SUCCESS) {
        snprintf(err, errlen, "mqtt connect %s: %s (%d)", c->uri,
                 rc < 0 ? MQTTClient_strerror(rc) : "refused by the broker", rc);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (v5) {
            MQTTSubscribe_options so = MQTTSubscribe_options_initializer;
            MQTTResponse r = MQTTClient_subscribe5(m->client, topics[i], 1, &so, NULL);
            rc = r.reasonCode == MQTTREASONCODE_GRANTED_QOS_1 ? MQTTCLIENT_SUCCESS : (int)r.reasonCode;
            MQTTResponse_free(r);
        } else {
            rc = MQTTClient_subscribe(m->client, topics[i], 1);
        }
        if (rc != MQTTCLIENT_SUCCESS) {
            snprintf(err, errlen, "mqtt subscribe %s: %d", topics[i], rc);
            MQTTClient_disconnect(m->client, 1000);
            return -1;
        }
    }
    atomic_store(&m->connected, 1);
    return 0;
}

int dcem_mqtt_is_connected(dcem_mqtt *m)
{
    return atomic_load(&m->connected) && MQTTClient_isConnected(m->client);
}

int dcem_mqtt_publish(dcem_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                      int retain, char *err, size_t errlen)
{
    if (!dcem_mqtt_is_connected(m)) return snprintf(err, errlen, "not connected"), -1;
    int rc;
    MQTTClient_deliveryToken token;
    if (m->cfg.version == 5) {
        MQTTResponse r = MQTTClient_publish5(m->client, topic, (int)len, payload, qos, retain,
                                             NULL, &token);
        rc = r.reasonCode;
        MQTTResponse_free(r);
    } else {
        rc = MQTTClient_publish(m->client, topic, (int)len, payload, qos, retain, &token);
    }
    if (rc != MQTTCLIENT_SUCCESS) {
        snprintf(err, errlen, "publish %s: %s", topic, MQTTClient_strerror(rc));
        return -1;
    }
    return 0;
}

void dcem_mqtt_disconnect(dcem_mqtt *m)
{
    if (m && MQTTClient_isConnected(m->client)) {
        if (m->cfg.version == 5) MQTTClient_disconnect5(m->client, 2000, MQTTREASONCODE_SUCCESS, NULL);
        else MQTTClient_disconnect(m->client, 2000);
    }
    if (m) atomic_store(&m->connected, 0);
}

void dcem_mqtt_free(dcem_mqtt *m)
{
    if (!m) return;
    dcem_mqtt_disconnect(m);
    MQTTClient_destroy(&m->client);
    free(m);
}
