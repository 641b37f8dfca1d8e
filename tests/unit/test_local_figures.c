/* The agent's local figures: interval energy by role, PUE and completeness
 * from its own readings, computed with common/'s counter rules and interval
 * split, published once an interval has closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_config.h"
#include "local_figures.h"
#include "parse.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *configs;

static const char doc[] = "gateway: gw-1\n"
                          "site: yz-alpha\n"
                          "ledger: ../sites/yz-alpha.yaml\n"
                          "profiles: ../meters\n"
                          "buses: [{name: b1, tcp: \"127.0.0.1:1502\"}]\n"
                          "devices:\n"
                          "  - {bus: b1, unit: 1, profile: acrel-adl400, meter: alpha-in-a}\n"
                          "  - {bus: b1, unit: 2, profile: eastron-sdm630, meter: alpha-ups-a}\n"
                          "mqtt: {uri: \"tcp://127.0.0.1:1883\"}\n"
                          "spool: {dir: /tmp/unused}\n"
                          "identity: {allow_unsigned: true}\n";

static dcem_wire_reading reading(const char *meter, int64_t t, double kwh)
{
    dcem_wire_reading r = {.t_ms = t, .quality = DCEM_WIRE_Q_OK, .has_kwh = 1, .kwh = kwh};
    snprintf(r.meter, sizeof r.meter, "%s", meter);
    return r;
}

static void test_intervals(void **state)
{
    (void)state;
    char name[1024], err[1024] = "";
    snprintf(name, sizeof name, "%s/agent/test.yaml", configs);
    dcem_agent_config *c = dcem_agent_config_parse(name, doc, strlen(doc), err, sizeof err);
    if (!c) fail_msg("%s", err);
    dcem_local *l = dcem_local_new(c, err, sizeof err);
    if (!l) fail_msg("%s", err);
    int64_t t0;
    assert_int_equal(dcem_parse_time("2025-06-01T00:00:00+08:00", 25, &t0), 0);
    /* facility 130 kW, IT 100 kW, a reading a minute for 45 minutes; the IT
     * meter sends nothing from minute 15 to 30: the whole second interval
     * has no reading of it, its energy is spread by time */
    for (int i = 0; i <= 45; i++) { /* the reading after the gap is held until the next */
        int64_t t = t0 + i * 60000LL;
        dcem_wire_reading f = reading("alpha-in-a", t, 5000 + 130.0 * i / 60);
        dcem_local_add(l, &f);
        if (i >= 15 && i <= 30) continue;
        dcem_wire_reading it = reading("alpha-ups-a", t, 7000 + 100.0 * i / 60);
        dcem_local_add(l, &it);
    }
    dcem_wire_reading late = reading("nobody", t0, 1); /* not one of ours: ignored */
    dcem_local_add(l, &late);

    dcem_wire_metrics m;
    /* nothing before an interval has ended and its grace passed */
    assert_int_equal(dcem_local_take(l, t0 + 15 * 60000LL + 4999, 5000, &m), 0);
    assert_int_equal(dcem_local_take(l, t0 + 15 * 60000LL + 5000, 5000, &m), 1);
    assert_int_equal(m.start_ms, t0);
    assert_int_equal(m.end_ms, t0 + 15 * 60000LL);
    assert_float_equal(m.role_kwh[DCEM_ROLE_FACILITY], 130.0 / 4, 1e-9);
    assert_float_equal(m.role_kwh[DCEM_ROLE_IT], 100.0 / 4, 1e-9);
    assert_true(isnan(m.role_kwh[DCEM_ROLE_COOLING])); /* no such meter here */
    assert_float_equal(m.pue, 1.3, 1e-12);
    assert_float_equal(m.completeness, 1.0, 1e-12);
    assert_int_equal(dcem_local_take(l, t0 + 15 * 60000LL + 5000, 5000, &m), 0);

    /* the second interval: the IT energy of the gap is spread by time (exact
     * at constant power, to the micro-kWh) and no reading came in it:
     * completeness 0 (readings received / expected, docs/figures.md) */
    assert_int_equal(dcem_local_take(l, t0 + 30 * 60000LL + 5000, 5000, &m), 1);
    assert_int_equal(m.start_ms, t0 + 15 * 60000LL);
    assert_float_equal(m.role_kwh[DCEM_ROLE_IT], 25, 1e-9);
    assert_float_equal(m.role_kwh[DCEM_ROLE_FACILITY], 32.5, 1e-9);
    assert_float_equal(m.completeness, 0, 1e-12);
    /* green share: the ledger's green contracts of June, pro rata */
    assert_true(m.green_share >= 0 && m.green_share <= 1);
    dcem_local_free(l);
    dcem_agent_config_free(c);
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    configs = argv[1];
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_intervals)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
