/* dcem-agent's config: the shipped example loads with its profiles and
 * ledger; broken documents give "file:line: key: what" errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_config.h"
#include "dcem_io.h"
#include "errors.h"
#include "table.h"
#include "tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *configs; /* argv[1]: the repository's configs/ */

static void test_shipped(void **state)
{
    (void)state;
    char path[1024], err[1024] = "", dir[] = "/tmp/dcem-agent-config-XXXXXX", key[64];
    snprintf(path, sizeof path, "%s/agent/agent.yaml", configs);
    /* the shipped file as it is, but for its key: a new one here, since
     * /etc/dcem/gateway.key is the deployment's */
    char *text;
    size_t len;
    assert_int_equal(dcem_io_read_file(path, &text, &len, err, sizeof err), 0);
    char *at = strstr(text, "/etc/dcem/gateway.key");
    assert_non_null(at);
    assert_non_null(mkdtemp(dir));
    snprintf(key, sizeof key, "%s/gw.key", dir);
    dcem_pubkey pub;
    assert_int_equal(dcem_io_keygen(key, &pub, err, sizeof err), 0);
    size_t cut = (size_t)(at - text), tail = strlen("/etc/dcem/gateway.key");
    char *doc = malloc(len + sizeof key);
    assert_non_null(doc);
    int n = snprintf(doc, len + sizeof key, "%.*s%s%s", (int)cut, text, key, at + tail);
    assert_true(n > 0);
    dcem_agent_config *c = dcem_agent_config_parse(path, doc, (size_t)n, err, sizeof err);
    free(text);
    free(doc);
    rm_rf(dir);
    if (!c) fail_msg("%s", err);
    assert_non_null(c->signer);
    assert_int_equal(c->identity.n_collector_keys, 1);
    assert_string_equal(c->gateway, "gw-alpha-1");
    assert_int_equal(c->n_buses, 2);
    assert_int_equal(c->buses[0].kind, DCEM_BUS_TCP);
    assert_string_equal(c->buses[0].host, "127.0.0.1");
    assert_int_equal(c->buses[0].port, 1502);
    assert_int_equal(c->buses[1].kind, DCEM_BUS_RTU);
    assert_int_equal(c->n_devices, 2);
    assert_int_equal(c->n_profiles, 2);
    assert_non_null(c->site_ledger);
    assert_non_null(c->policy); /* the local figures' counter rules, as the collector's */
    assert_true(c->policy->data.glitch_margin > 1);
    assert_string_equal(c->mqtt.client_id, "dcem-yz-alpha-gw-alpha-1");
    dcem_agent_config_free(c);
}

/* A valid document with one line replaced. */
#define BASE                                                                                       \
    "gateway: gw-1\n"                    /* 1 */                                                   \
    "site: yz-alpha\n"                   /* 2 */                                                   \
    "ledger: ../sites/yz-alpha.yaml\n"   /* 3 */                                                   \
    "profiles: ../meters\n"              /* 4 */                                                   \
    "buses:\n"                           /* 5 */                                                   \
    "  - name: b1\n"                     /* 6 */                                                   \
    "    tcp: 127.0.0.1:1502\n"          /* 7 */                                                   \
    "devices:\n"                         /* 8 */                                                   \
    "  - bus: b1\n"                      /* 9 */                                                   \
    "    unit: 1\n"                      /* 10 */                                                  \
    "    profile: eastron-sdm630\n"      /* 11 */                                                  \
    "    meter: alpha-in-a\n"            /* 12 */                                                  \
    "%s"                                 /* 13: extra device */                                    \
    "mqtt:\n"                                                                                      \
    "  uri: tcp://127.0.0.1:1883\n"                                                                \
    "spool:\n"                                                                                     \
    "  dir: /tmp/spool\n"                                                                          \
    "identity: {allow_unsigned: true}\n"

typedef struct bad_case {
    const char *name;
    const char *from, *to; /* replace in BASE; NULL: none */
    const char *extra;     /* inserted at line 13 */
    const char *want;      /* the error after "<file>:" */
} bad_case;

static const bad_case bad[] = {
    {"unknown key", "site: yz-alpha\n", "site: yz-alpha\ncolour: red\n", "",
     "3: colour: unknown key (valid: gateway, site, ledger, policy, profiles, log_level, buses, "
     "devices, mqtt, spool, batch, identity)"},
    {"bus with neither tcp nor rtu", "    tcp: 127.0.0.1:1502\n", "    baud: 9600\n", "",
     "6: buses: bus 'b1': give exactly one of 'tcp' or 'rtu'"},
    {"tcp without a port", "127.0.0.1:1502", "127.0.0.1", "",
     "6: buses.tcp: '127.0.0.1': expected host:port"},
    {"device on an unknown bus", "  - bus: b1\n", "  - bus: b9\n", "",
     "9: devices.bus: no bus named 'b9'"},
    {"same unit twice on a bus", NULL, NULL,
     "  - {bus: b1, unit: 1, profile: eastron-sdm630, meter: alpha-in-b}\n",
     "13: devices.unit: unit 1 on bus 'b1' already declared at line 9"},
    {"meter not in the ledger", "meter: alpha-in-a", "meter: alpha-nowhere", "",
     "9: devices.meter: meter 'alpha-nowhere' is not in the site ledger"},
    {"unknown profile", "eastron-sdm630", "eastron-sdm999", "",
     "9: devices.profile: profile 'eastron-sdm999': "},
    {"unit out of range", "    unit: 1\n", "    unit: 300\n", "",
     "10: devices[0].unit: must be <= 255, got 300"},
    {"bad gateway id", "gateway: gw-1", "gateway: gw/1", "",
     "1: gateway: 'gw/1': use letters, digits, '-', '_' or '.'"},
    {"ledger of another site", "site: yz-alpha", "site: yz-beta", "",
     "1: ledger: the ledger is for site 'yz-alpha', not 'yz-beta'"},
    {"missing mqtt", "mqtt:\n  uri: tcp://127.0.0.1:1883\n", "", "",
     "1: mqtt: missing required key 'mqtt'"},
    /* a serial line setting on a TCP bus would be ignored: an error naming it */
    {"baud on a tcp bus", "    tcp: 127.0.0.1:1502\n", "    tcp: 127.0.0.1:1502\n    baud: 9600\n",
     "", "6: buses.baud: bus 'b1' is Modbus TCP: 'baud' is a serial line setting of an rtu bus"},
    {"parity on a tcp bus", "    tcp: 127.0.0.1:1502\n", "    tcp: 127.0.0.1:1502\n    parity: E\n",
     "", "6: buses.parity: bus 'b1' is Modbus TCP: 'parity' is a serial"},
    {"data_bits on a tcp bus", "    tcp: 127.0.0.1:1502\n",
     "    tcp: 127.0.0.1:1502\n    data_bits: 8\n", "",
     "6: buses.data_bits: bus 'b1' is Modbus TCP: 'data_bits' is a serial"},
    {"stop_bits on a tcp bus", "    tcp: 127.0.0.1:1502\n",
     "    tcp: 127.0.0.1:1502\n    stop_bits: 2\n", "",
     "6: buses.stop_bits: bus 'b1' is Modbus TCP: 'stop_bits' is a serial"},
    /* an unknown profile: the error lists the shipped ones */
    {"unknown profile lists the profiles", "eastron-sdm630", "eastron-sdm999", "",
     "9: devices.profile: profile 'eastron-sdm999': no eastron-sdm999.yaml in "},
    {"profiles folder that does not exist", "profiles: ../meters", "profiles: ../nowhere", "",
     "9: devices.profile: profile 'eastron-sdm630': the profiles folder "},
    /* transformer ratios: > 0 and at most 100000 */
    {"ct_ratio 0", NULL, NULL, "  - {bus: b1, unit: 2, profile: eastron-sdm630, meter: alpha-in-b, "
     "ct_ratio: 0}\n", "13: devices[1].ct_ratio: must be > 0, got 0"},
    {"ct_ratio -1", NULL, NULL, "  - {bus: b1, unit: 2, profile: eastron-sdm630, meter: alpha-in-b, "
     "ct_ratio: -1}\n", "13: devices[1].ct_ratio: must be > 0, got -1"},
    {"ct_ratio 200000", NULL, NULL, "  - {bus: b1, unit: 2, profile: eastron-sdm630, meter: "
     "alpha-in-b, ct_ratio: 200000}\n", "13: devices[1].ct_ratio: must be <= 100000, got 200000"},
    {"pt_ratio 0", NULL, NULL, "  - {bus: b1, unit: 2, profile: eastron-sdm630, meter: alpha-in-b, "
     "pt_ratio: 0}\n", "13: devices[1].pt_ratio: must be > 0, got 0"},
    /* MQTT (common/mqtt_cfg.c, shared with the collector): TLS files only
     * with a TLS uri, which would otherwise send in the clear unnoticed */
    {"ca_file on tcp://", "  uri: tcp://127.0.0.1:1883\n",
     "  uri: tcp://127.0.0.1:1883\n  ca_file: ca.crt\n", "",
     "14: mqtt.ca_file: TLS files need a TLS uri (ssl://host:8883), not 'tcp://127.0.0.1:1883'"},
    {"cert_file on mqtt://", "  uri: tcp://127.0.0.1:1883\n",
     "  uri: mqtt://127.0.0.1:1883\n  cert_file: gw.crt\n", "",
     "14: mqtt.cert_file: TLS files need a TLS uri"},
    {"key_file without cert_file", "  uri: tcp://127.0.0.1:1883\n",
     "  uri: ssl://127.0.0.1:8883\n  key_file: gw.key\n", "",
     "14: mqtt.key_file: given without mqtt.cert_file"},
    {"unknown scheme", "tcp://127.0.0.1:1883", "http://127.0.0.1:1883", "",
     "14: mqtt.uri: 'http://127.0.0.1:1883': use tcp://host:1883, or ssl://host:8883 for TLS"},
    {"no host", "tcp://127.0.0.1:1883", "ssl://:8883", "", "14: mqtt.uri: 'ssl://:8883': no host"},
};

static void test_bad(void **state)
{
    const bad_case *c = *state;
    char doc[4096], body[4096], name[1024], err[1024] = "";
    snprintf(body, sizeof body, BASE, c->extra);
    if (c->from) {
        char *at = strstr(body, c->from);
        assert_non_null(at);
        snprintf(doc, sizeof doc, "%.*s%s%s", (int)(at - body), body, c->to,
                 at + strlen(c->from));
    } else {
        snprintf(doc, sizeof doc, "%s", body);
    }
    snprintf(name, sizeof name, "%s/agent/test.yaml", configs);
    dcem_agent_config *cfg = dcem_agent_config_parse(name, doc, strlen(doc), err, sizeof err);
    assert_null(cfg);
    char want[2048];
    snprintf(want, sizeof want, "%s:%s", name, c->want);
    if (strncmp(err, want, strlen(want))) fail_msg("got  %s\nwant %s", err, want);
}

/* Parses BASE with one replacement; the config or NULL (err set). */
static dcem_agent_config *parse_with(const char *from, const char *to, char *err, size_t errlen)
{
    char body[4096], doc[4096], name[1024];
    snprintf(body, sizeof body, BASE, "");
    char *at = strstr(body, from);
    assert_non_null(at);
    snprintf(doc, sizeof doc, "%.*s%s%s", (int)(at - body), body, to, at + strlen(from));
    snprintf(name, sizeof name, "%s/agent/test.yaml", configs);
    return dcem_agent_config_parse(name, doc, strlen(doc), err, errlen);
}

/* The unknown-profile error names every shipped profile. */
static void test_unknown_profile_lists(void **state)
{
    (void)state;
    char err[1024] = "";
    assert_null(parse_with("eastron-sdm630", "eastron-sdm999", err, sizeof err));
    static const char *const shipped[] = {"abb-b23", "acrel-adl400", "chint-dtsu666",
                                          "eastron-sdm630", "sunspec-213"};
    if (!strstr(err, "; the profiles there: abb-b23, acrel-adl400, ")) fail_msg("%s", err);
    for (size_t i = 0; i < sizeof shipped / sizeof *shipped; i++)
        if (!strstr(err, shipped[i])) fail_msg("'%s' not listed: %s", shipped[i], err);
}

/* Serial settings: the defaults on an RTU bus, what is given otherwise. */
static void test_serial_defaults(void **state)
{
    (void)state;
    char err[1024] = "";
    dcem_agent_config *c = parse_with("    tcp: 127.0.0.1:1502\n", "    rtu: /dev/null\n", err,
                                      sizeof err);
    if (!c) fail_msg("%s", err);
    assert_int_equal(c->buses[0].kind, DCEM_BUS_RTU);
    assert_int_equal(c->buses[0].baud, 9600);
    assert_int_equal(c->buses[0].parity, 0);
    assert_int_equal(c->buses[0].data_bits, 8);
    assert_int_equal(c->buses[0].stop_bits, 1);
    dcem_agent_config_free(c);
    c = parse_with("    tcp: 127.0.0.1:1502\n",
                   "    rtu: /dev/null\n    baud: 38400\n    parity: E\n    stop_bits: 2\n", err,
                   sizeof err);
    if (!c) fail_msg("%s", err);
    assert_int_equal(c->buses[0].baud, 38400);
    assert_int_equal(c->buses[0].parity, 1);
    assert_int_equal(c->buses[0].data_bits, 8);
    assert_int_equal(c->buses[0].stop_bits, 2);
    dcem_agent_config_free(c);
}

/* --check-config's serial device check: loading never looks at the device
 * (a reload with an adapter unplugged is not refused); the check names a
 * missing one and one that is not a character device, with file:line. */
static void test_serial_device(void **state)
{
    (void)state;
    char err[1024] = "", want[1200];
    dcem_agent_config *c = parse_with("    tcp: 127.0.0.1:1502\n",
                                      "    rtu: /dev/ttyDCEM-none\n", err, sizeof err);
    if (!c) fail_msg("loading must not look at the device: %s", err);
    assert_int_equal(dcem_agent_config_check_devices(c, err, sizeof err), DCEM_ECONFIG);
    snprintf(want, sizeof want, "%s:6: buses.rtu: /dev/ttyDCEM-none: No such file or directory",
             c->file);
    assert_string_equal(err, want);
    dcem_agent_config_free(c);

    char path[1024];
    snprintf(path, sizeof path, "    rtu: %s/agent/agent.yaml\n", configs); /* a plain file */
    c = parse_with("    tcp: 127.0.0.1:1502\n", path, err, sizeof err);
    if (!c) fail_msg("%s", err);
    assert_int_equal(dcem_agent_config_check_devices(c, err, sizeof err), DCEM_ECONFIG);
    if (!strstr(err, ":6: buses.rtu: ") || !strstr(err, "agent.yaml: not a character device"))
        fail_msg("%s", err);
    dcem_agent_config_free(c);

    c = parse_with("    tcp: 127.0.0.1:1502\n", "    rtu: /dev/null\n", err, sizeof err);
    if (!c) fail_msg("%s", err);
    assert_int_equal(dcem_agent_config_check_devices(c, err, sizeof err), 0);
    dcem_agent_config_free(c);

    c = parse_with("profiles: ../meters\n", "profiles: ../meters\n", err, sizeof err);
    if (!c) fail_msg("%s", err);
    assert_int_equal(dcem_agent_config_check_devices(c, err, sizeof err), 0); /* TCP only */
    dcem_agent_config_free(c);
}

/* Without `profiles:`, a build finds the source tree's configs/meters (the
 * test binary has no ../share/dcem/meters beside it). */
static void test_default_profiles(void **state)
{
    (void)state;
    char err[1024] = "", want[1024];
    dcem_agent_config *c = parse_with("profiles: ../meters\n", "", err, sizeof err);
    if (!c) fail_msg("%s", err);
    snprintf(want, sizeof want, "%s/meters", configs);
    assert_string_equal(c->profiles_dir, want);
    assert_int_equal(c->n_profiles, 1);
    dcem_agent_config_free(c);
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    configs = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped),
        cmocka_unit_test(test_unknown_profile_lists),
        cmocka_unit_test(test_serial_defaults),
        cmocka_unit_test(test_serial_device),
        cmocka_unit_test(test_default_profiles),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + RUN_TABLE("broken agent configs", test_bad, bad);
}
