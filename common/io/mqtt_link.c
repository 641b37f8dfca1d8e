#include "mqtt_link.h"
#include "dcem_log.h"

#include <MQTTClient.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/poll.h> /* not <poll.h>: the agent has a poll.h of its own */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROBE_TIMEOUT_MS 3000 /* the TCP probe after a failed connect */

struct dcem_mqtt {
    MQTTClient client;
    dcem_mqtt_cfg cfg;
    dcem_mqtt_opts opts;        /* will_topic/will_payload point into the two below */
    char will_topic[256];
    char will_payload[256];
    atomic_int connected;
    pthread_mutex_t tls_lock;   /* paho reports TLS errors from its own thread */
    char tls_why[200];          /* OpenSSL's first error of the last connect, or "" */
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
    /* topic_len is non-zero only for a topic with an embedded NUL, which
     * MQTT forbids: such a topic is read up to its first NUL. */
    (void)topic_len;
    if (!m->opts.fn(m->opts.ctx, topic, msg->payload,
                    msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0))
        return 0; /* not taken: paho keeps both and delivers again */
    MQTTClient_freeMessage(&msg);
    MQTTClient_free(topic);
    return 1;
}

/* paho's ssl_error_cb: OpenSSL's error lines of a failed handshake, as
 * ERR_print_errors_cb writes them ("<thread>:error:0A000086:SSL routines:
 * <function>:certificate verify failed:<file>:<line>:"). The reason of the
 * first is kept; the whole line if it has no such form. */
static int on_tls_error(const char *str, size_t len, void *u)
{
    dcem_mqtt *m = u;
    while (len && (str[len - 1] == '\n' || str[len - 1] == '\r')) len--;
    const char *end = str + len, *p = NULL;
    for (const char *q = str; q + 6 <= end && !p; q++)
        if (!memcmp(q, "error:", 6)) p = q;
    for (int field = 0; p && field < 4; field++) { /* error, code, library, function */
        p = memchr(p, ':', (size_t)(end - p));
        if (p) p++;
    }
    const char *r = p ? p : str, *rend = p ? memchr(p, ':', (size_t)(end - p)) : NULL;
    size_t n = (size_t)((rend ? rend : end) - r);
    pthread_mutex_lock(&m->tls_lock);
    if (!*m->tls_why && n) {
        if (n >= sizeof m->tls_why) n = sizeof m->tls_why - 1;
        memcpy(m->tls_why, r, n);
        m->tls_why[n] = '\0';
    }
    pthread_mutex_unlock(&m->tls_lock);
    return 0;
}

/* ---- why a connect failed, in words ---- */

/* Host and port of a paho URI (tcp:// mqtt:// ssl:// mqtts:// ws:// wss://,
 * host, [v6 address], optional :port, optional /path); *tls for the TLS
 * schemes. -1 when it cannot be split. */
static int uri_endpoint(const char *uri, char *host, size_t hostlen, char *port, size_t portlen,
                        int *tls)
{
    static const struct {
        const char *scheme, *port;
        int tls;
    } schemes[] = {{"tcp://", "1883", 0}, {"mqtt://", "1883", 0}, {"ssl://", "8883", 1},
                   {"mqtts://", "8883", 1}, {"ws://", "80", 0},    {"wss://", "443", 1}};
    const char *p = NULL, *def = NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes && !p; i++)
        if (!strncmp(uri, schemes[i].scheme, strlen(schemes[i].scheme))) {
            p = uri + strlen(schemes[i].scheme);
            def = schemes[i].port;
            *tls = schemes[i].tls;
        }
    if (!p) return -1;
    const char *end;
    if (*p == '[') { /* [2001:db8::1]:1883 */
        end = strchr(++p, ']');
        if (!end) return -1;
    } else {
        end = p + strcspn(p, ":/");
    }
    if (end == p || (size_t)(end - p) >= hostlen) return -1;
    memcpy(host, p, (size_t)(end - p));
    host[end - p] = '\0';
    if (*end == ']') end++;
    if (*end == ':') {
        size_t n = strcspn(end + 1, "/");
        if (!n || n >= portlen) return -1;
        memcpy(port, end + 1, n);
        port[n] = '\0';
    } else {
        snprintf(port, portlen, "%s", def);
    }
    return 0;
}

/* One non-blocking connect to ai within timeout_ms: 0 or an errno. */
static int probe_one(const struct addrinfo *ai, int timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) return errno;
    int rc = 0;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) rc = errno;
    else if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) rc = 0;
    else if (errno != EINPROGRESS) rc = errno;
    else {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n;
        while ((n = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR) {}
        if (n == 0) {
            rc = ETIMEDOUT;
        } else {
            socklen_t len = sizeof rc;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &len)) rc = errno;
        }
    }
    close(fd);
    return rc;
}

/* paho says only "Failure" (-1) when the TCP connection, the TLS handshake
 * or the name lookup fails: find out which with a plain TCP connect to the
 * URI's host and port, and say it in words with what to check. */
static void explain_failure(const char *uri, const char *tls_why, char *out, size_t len)
{
    char host[128], port[16], where[160];
    int tls = 0;
    if (uri_endpoint(uri, host, sizeof host, port, sizeof port, &tls)) {
        snprintf(out, len, "failed (paho: %s)", MQTTClient_strerror(MQTTCLIENT_FAILURE));
        return;
    }
    snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai == EAI_AGAIN) {
        snprintf(out, len, "cannot resolve '%s' now: %s (is a DNS server reachable?)", host,
                 gai_strerror(gai));
        return;
    }
    if (gai) {
        snprintf(out, len, "the name '%s' does not resolve: %s (check mqtt.uri)", host,
                 gai_strerror(gai));
        return;
    }
    int err = ENOENT;
    for (const struct addrinfo *ai = res; ai && err; ai = ai->ai_next)
        err = probe_one(ai, PROBE_TIMEOUT_MS);
    freeaddrinfo(res);
    switch (err) {
    case 0:
        if (tls && *tls_why)
            snprintf(out, len, "the TLS handshake with %s failed: %s (is it the broker's TLS "
                               "port? check mqtt.ca_file, cert_file, key_file)",
                     where, tls_why);
        else if (tls) /* paho checks the name itself, after OpenSSL, and a broker refuses
                         a client's certificate after the handshake (TLS 1.3): no reason */
            snprintf(out, len, "the TLS session with %s failed without a reason from OpenSSL: "
                               "the broker's certificate does not name '%s', or the broker "
                               "refused this client's certificate (mqtt.cert_file, key_file: of "
                               "another CA, expired, revoked?)",
                     where, host);
        else
            snprintf(out, len, "%s accepts TCP connections but no MQTT session came of it (a "
                               "TLS port? use ssl://; else see the broker's log)",
                     where);
        break;
    case ECONNREFUSED:
        snprintf(out, len, "connection refused (is a broker listening on %s?)", where);
        break;
    case ETIMEDOUT:
        snprintf(out, len, "no answer from %s within %d s (the host is down, or a firewall "
                           "drops the port)",
                 where, PROBE_TIMEOUT_MS / 1000);
        break;
    case EHOSTUNREACH:
    case ENETUNREACH:
        snprintf(out, len, "no route to %s: %s (check the address and the network)", where,
                 strerror(err));
        break;
    default: snprintf(out, len, "cannot connect to %s: %s", where, strerror(err)); break;
    }
}

/* A broker's refusal: MQTT 5 reason codes (>= 0x80) and MQTT 3.1.1 CONNACK
 * return codes (1-5), by name, with what to check. */
static void explain_refusal(int rc, int v5, char *out, size_t len)
{
    static const char *const v3[] = {NULL, "unacceptable protocol version",
                                      "client identifier rejected", "server unavailable",
                                      "bad user name or password", "not authorized"};
    char name[80];
    int auth = 0, denied = 0;
    if (v5) {
        const char *s = MQTTReasonCode_toString((enum MQTTReasonCodes)rc);
        size_t i = 0;
        for (; s && s[i] && i + 1 < sizeof name; i++) name[i] = (char)tolower((unsigned char)s[i]);
        name[i] = '\0';
        if (!i) snprintf(name, sizeof name, "reason code %d", rc);
        auth = rc == MQTTREASONCODE_BAD_USER_NAME_OR_PASSWORD ||
               rc == MQTTREASONCODE_BAD_AUTHENTICATION_METHOD;
        denied = rc == MQTTREASONCODE_NOT_AUTHORIZED || rc == MQTTREASONCODE_BANNED;
    } else {
        snprintf(name, sizeof name, "%s", rc >= 1 && rc <= 5 ? v3[rc] : "refused");
        auth = rc == 4;
        denied = rc == 5;
    }
    snprintf(out, len, "refused by the broker: %s (%s %d)%s", name, v5 ? "reason" : "return code",
             rc,
             auth     ? "; check mqtt.username and mqtt.password"
             : denied ? "; check mqtt.username and mqtt.password (or the client certificate), "
                        "and that the broker's ACL allows this client"
                      : "");
}

void dcem_mqtt_global_init(int init_openssl)
{
    MQTTClient_init_options init = MQTTClient_init_options_initializer;
    init.do_openssl_init = init_openssl;
    MQTTClient_global_init(&init);
}

dcem_mqtt *dcem_mqtt_new(const dcem_mqtt_cfg *cfg, const dcem_mqtt_opts *opts, char *err,
                         size_t errlen)
{
    dcem_mqtt *m = calloc(1, sizeof *m);
    if (!m) return snprintf(err, errlen, "out of memory"), NULL;
    m->cfg = *cfg;
    m->opts = *opts;
    if (opts->will_topic) {
        snprintf(m->will_topic, sizeof m->will_topic, "%s", opts->will_topic);
        snprintf(m->will_payload, sizeof m->will_payload, "%s",
                 opts->will_payload ? opts->will_payload : "");
        m->opts.will_topic = m->will_topic;
        m->opts.will_payload = m->will_payload;
    }
    if (m->opts.inflight < 1) m->opts.inflight = 1;
    pthread_mutex_init(&m->tls_lock, NULL);
    MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
    co.MQTTVersion = cfg->version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
    int rc = MQTTClient_createWithOptions(&m->client, cfg->uri, cfg->client_id,
                                          MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc == MQTTCLIENT_SUCCESS)
        rc = MQTTClient_setCallbacks(m->client, m, on_lost, on_message, NULL);
    if (rc != MQTTCLIENT_SUCCESS) {
        snprintf(err, errlen, "mqtt %s: %s", cfg->uri, MQTTClient_strerror(rc));
        if (m->client) MQTTClient_destroy(&m->client);
        pthread_mutex_destroy(&m->tls_lock);
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
    if (m->opts.will_topic) {
        will.topicName = m->will_topic;
        will.message = m->will_payload;
        will.qos = 1;
        will.retained = 1;
        o.will = &will;
    }
    o.keepAliveInterval = (int)c->keepalive_s;
    if (v5) o.cleanstart = !m->opts.persistent;
    else o.cleansession = !m->opts.persistent;
    o.connectTimeout = 10;
    /* paho's synchronous client otherwise keeps one QoS 1 message in flight
     * and sleeps 100 ms at a time waiting for its PUBACK */
    o.maxInflightMessages = m->opts.inflight;
    if (*c->username) o.username = c->username;
    if (*c->password) o.password = c->password;
    /* The one TLS rule: the URI's scheme says (the config refuses TLS files
     * on a plain URI). The broker's certificate must chain to ca_file (only
     * to it when given: a site CA, not every public one) and name the
     * URI's host. */
    if (dcem_mqtt_cfg_tls(c->uri)) {
        if (*c->ca_file) ssl.trustStore = c->ca_file, ssl.disableDefaultTrustStore = 1;
        if (*c->cert_file) ssl.keyStore = c->cert_file;
        if (*c->key_file) ssl.privateKey = c->key_file;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;
        ssl.ssl_error_cb = on_tls_error;
        ssl.ssl_error_context = m;
        o.ssl = &ssl;
    }
    pthread_mutex_lock(&m->tls_lock);
    m->tls_why[0] = '\0';
    pthread_mutex_unlock(&m->tls_lock);
    int rc;
    if (v5) {
        MQTTProperties props = MQTTProperties_initializer;
        if (m->opts.persistent) {
            MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
                              .value.integer4 = (unsigned)c->session_expiry_s};
            MQTTProperties_add(&props, &p);
        }
        MQTTResponse r = MQTTClient_connect5(m->client, &o, &props, NULL);
        rc = r.reasonCode;
        MQTTResponse_free(r);
        MQTTProperties_free(&props);
    } else {
        rc = MQTTClient_connect(m->client, &o);
    }
    if (rc != MQTTCLIENT_SUCCESS) {
        char why[768], tls_why[sizeof m->tls_why];
        pthread_mutex_lock(&m->tls_lock);
        memcpy(tls_why, m->tls_why, sizeof tls_why);
        pthread_mutex_unlock(&m->tls_lock);
        if (rc == MQTTCLIENT_FAILURE) explain_failure(c->uri, tls_why, why, sizeof why);
        else if (rc > 0) explain_refusal(rc, v5, why, sizeof why);
        else snprintf(why, sizeof why, "%s (paho %d)", MQTTClient_strerror(rc), rc);
        snprintf(err, errlen, "mqtt connect %s: %s", c->uri, why);
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
            char why[300];
            if (v5 && rc > 0) explain_refusal(rc, 1, why, sizeof why);
            else if (rc == 0x80) snprintf(why, sizeof why, "refused by the broker (its ACL?)");
            else snprintf(why, sizeof why, "%s (paho %d)", MQTTClient_strerror(rc), rc);
            snprintf(err, errlen, "mqtt subscribe %s: %s", topics[i], why);
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
    pthread_mutex_destroy(&m->tls_lock);
    free(m);
}
