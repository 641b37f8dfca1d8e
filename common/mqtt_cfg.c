#include "mqtt_cfg.h"
#include "errors.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *scheme;
    int tls;
} schemes[] = {{"tcp://", 0}, {"mqtt://", 0}, {"ssl://", 1},
               {"mqtts://", 1}, {"ws://", 0},   {"wss://", 1}};

/* The scheme's entry, or -1. */
static int scheme_of(const char *uri)
{
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
        if (!strncmp(uri, schemes[i].scheme, strlen(schemes[i].scheme))) return (int)i;
    return -1;
}

int dcem_mqtt_cfg_tls(const char *uri)
{
    int i = scheme_of(uri);
    return i >= 0 && schemes[i].tls;
}

int dcem_mqtt_cfg_check_uri(const void *value, size_t count, char *why, size_t len)
{
    (void)count;
    const char *uri = value;
    int i = scheme_of(uri);
    if (i < 0)
        return snprintf(why, len, "'%s': use tcp://host:1883, or ssl://host:8883 for TLS "
                                  "(also mqtt://, mqtts://, ws://, wss://)",
                        uri),
               1;
    const char *host = uri + strlen(schemes[i].scheme);
    if (!*host || *host == ':' || *host == '/')
        return snprintf(why, len, "'%s': no host", uri), 1;
    return 0;
}

int dcem_mqtt_cfg_check(const dcem_mqtt_cfg *c, const char *file, char *err, size_t errlen)
{
    static const struct {
        const char *key;
        size_t offset;
    } files[] = {{"mqtt.ca_file", DCEM_MQTT_CFG_F(ca_file)},
                 {"mqtt.cert_file", DCEM_MQTT_CFG_F(cert_file)},
                 {"mqtt.key_file", DCEM_MQTT_CFG_F(key_file)}};
    if (!dcem_mqtt_cfg_tls(c->uri))
        for (size_t i = 0; i < sizeof files / sizeof *files; i++)
            if (*((const char *)c + files[i].offset))
                return dcem_cfg_error(err, errlen, file, c->line, files[i].key,
                                      "TLS files need a TLS uri (ssl://host:8883), not '%s'",
                                      c->uri);
    if (*c->key_file && !*c->cert_file)
        return dcem_cfg_error(err, errlen, file, c->line, "mqtt.key_file",
                              "given without mqtt.cert_file");
    return 0;
}
