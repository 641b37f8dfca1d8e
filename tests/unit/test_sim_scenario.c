/* test_sim_scenario.c — dcem-sim scenario files (firmware/sim/sim_scenario.c
 * and the profile checks of sim_site.c): every error names file:line and
 * the key, table by table; and every shipped scenario in configs/sim loads
 * with its profiles from configs/meters.
 *
 * Argument: the configs directory of the source tree. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dcem_io.h"
#include "errors.h"
#include "profile.h"
#include "sim_scenario.h"
#include "sim_site.h"
#include "table.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD "name: t\n"
#define METER                                                                                      \
    "  - id: a\n"                                                                                  \
    "    unit: 1\n"                                                                                \
    "    profile: eastron-sdm630\n"                                                                \
    "    shape: it\n"                                                                              \
    "    rated_kw: 10\n"

typedef struct bad_row {
    const char *name;
    const char *yaml;
    const char *want; /* the start of the message */
} bad_row;

static const bad_row bad_rows[] = {
    {"unknown top-level key", HEAD "bogus: 1\nmeters:\n" METER,
     "t.yaml:2: bogus: unknown key (valid: name, description, listen, clock, seed, meters)"},
    {"unknown meter key", HEAD "meters:\n" METER "    colour: red\n",
     "t.yaml:8: meters[0].colour: unknown key"},
    {"missing profile",
     HEAD "meters:\n  - id: a\n    unit: 1\n    shape: it\n    rated_kw: 10\n",
     "t.yaml:3: meters[0]: missing required key 'profile'"},
    {"no meters", HEAD "meters: []\n", "t.yaml:2: meters: at least 1 items required"},
    {"bad shape", HEAD "meters:\n" METER "    level: 0.5\n  - id: b\n    unit: 2\n"
                       "    profile: eastron-sdm630\n    shape: wind\n    rated_kw: 1\n",
     "t.yaml:12: meters[1].shape: 'wind' is not one of: it, cooling, pv, constant"},
    {"unit out of range", HEAD "meters:\n  - id: a\n    unit: 248\n",
     "t.yaml:4: meters[0].unit: must be <= 247, got 248"},
    {"unit used twice",
     HEAD "meters:\n" METER "  - id: b\n    unit: 1\n    profile: acrel-adl400\n"
          "    shape: pv\n    rated_kw: 5\n",
     "t.yaml:8: meters.unit: unit 1 already used by the meter at line 3"},
    {"replicas run past unit 247",
     HEAD "meters:\n  - id: a\n    unit: 2\n    count: 247\n    profile: x\n    shape: it\n"
          "    rated_kw: 1\n",
     "t.yaml:3: meters.count: units 2..248: unit ids end at 247"},
    {"replicas overlap a unit",
     HEAD "meters:\n" METER "    count: 3\n  - id: b\n    unit: 3\n    profile: acrel-adl400\n"
          "    shape: pv\n    rated_kw: 5\n",
     "t.yaml:9: meters.unit: unit 3 already used by the meter at line 3"},
    {"replica id clashes",
     HEAD "meters:\n  - id: rack\n    unit: 1\n    count: 2\n    profile: eastron-sdm630\n"
          "    shape: it\n    rated_kw: 5\n  - id: rack-02\n    unit: 9\n"
          "    profile: eastron-sdm630\n    shape: it\n    rated_kw: 5\n",
     "t.yaml:9: meters.id: 'rack-02' already declared at line 3"},
    {"bad id", HEAD "meters:\n  - id: a/b\n", "t.yaml:3: meters[0].id: 'a/b': use letters"},
    {"profile is a path", HEAD "meters:\n  - id: a\n    unit: 1\n    profile: ../secret\n",
     "t.yaml:5: meters[0].profile: '../secret': a model name"},
    {"duplicate key", HEAD "meters:\n" METER "    rated_kw: 0\n",
     "t.yaml:8: meters[0].rated_kw: duplicate key"},
    {"negative rated_kw",
     HEAD "meters:\n  - id: a\n    unit: 1\n    profile: x\n    shape: it\n    rated_kw: -3\n",
     "t.yaml:7: meters[0].rated_kw: must be > 0, got -3"},
    {"tcp not host:port", HEAD "listen:\n  tcp: localhost:1502\nmeters:\n" METER,
     "t.yaml:3: listen.tcp: 'localhost:1502': expected IPv4 host:port"},
    {"tcp port too big", HEAD "listen:\n  tcp: 127.0.0.1:65536\nmeters:\n" METER,
     "t.yaml:3: listen.tcp: '127.0.0.1:65536'"},
    {"bad parity", HEAD "listen:\n  parity: X\nmeters:\n" METER,
     "t.yaml:3: listen.parity: 'X' is not one of: N, E, O"},
    {"bad start", HEAD "clock:\n  start: yesterday\nmeters:\n" METER,
     "t.yaml:3: clock.start: 'yesterday': expected 'now' or an RFC 3339 time"},
    {"negative speed", HEAD "clock:\n  speed: -1\nmeters:\n" METER,
     "t.yaml:3: clock.speed: must be >= 0, got -1"},
    {"fault kind unknown", HEAD "meters:\n" METER "    faults:\n      - kind: fire\n",
     "t.yaml:9: meters[0].faults[0].kind: 'fire' is not one of: timeout, exception, slow, "
     "rollover, reset, glitch, ratio"},
    {"key foreign to the kind",
     HEAD "meters:\n" METER "    faults:\n      - kind: timeout\n        code: 4\n",
     "t.yaml:9: meters.faults: 'code' does not apply to kind 'timeout'"},
    {"slow without delay", HEAD "meters:\n" METER "    faults:\n      - kind: slow\n",
     "t.yaml:9: meters.faults: kind 'slow' needs 'delay_ms'"},
    {"rollover without after_s",
     HEAD "meters:\n" METER "    faults:\n      - {kind: timeout}\n      - {kind: rollover}\n",
     "t.yaml:10: meters.faults: kind 'rollover' needs 'after_s'"},
    {"reset without at_s", HEAD "meters:\n" METER "    faults:\n      - kind: reset\n",
     "t.yaml:9: meters.faults: kind 'reset' needs 'at_s'"},
    {"probability above 1",
     HEAD "meters:\n" METER "    faults:\n      - kind: timeout\n        probability: 1.5\n",
     "t.yaml:10: meters[0].faults[0].probability: must be <= 1, got 1.5"},
    {"empty window",
     HEAD "meters:\n" METER "    faults:\n      - {kind: timeout, from_s: 60, until_s: 60}\n",
     "t.yaml:9: meters.faults: 'until_s' must be after 'from_s'"},
    {"exception code out of range",
     HEAD "meters:\n" METER "    faults:\n      - {kind: exception, code: 0}\n",
     "t.yaml:9: meters[0].faults[0].code: must be >= 1, got 0"},
    {"glitch once and by chance",
     HEAD "meters:\n" METER "    faults:\n      - {kind: glitch, at_s: 5, probability: 0.1}\n",
     "t.yaml:9: meters.faults: a glitch takes 'at_s' (once) or a window/probability"},
    {"spike size on a zero glitch",
     HEAD "meters:\n" METER "    faults:\n      - {kind: glitch, at_s: 5, spike_kwh: 9}\n",
     "t.yaml:9: meters.faults: 'spike_kwh' needs 'glitch: spike'"},
    {"two rollovers",
     HEAD "meters:\n" METER "    faults:\n      - {kind: rollover, after_s: 5}\n"
          "      - {kind: rollover, after_s: 9}\n",
     "t.yaml:10: meters.faults: at most one rollover per meter"},
    {"rollover and an initial value",
     HEAD "meters:\n" METER "    initial_kwh: 5\n    faults:\n      - {kind: rollover, after_s: 5}\n",
     "t.yaml:3: meters.initial_kwh: a rollover fault sets the initial counter"},
    {"too many faults",
     HEAD "meters:\n" METER "    faults: [{kind: timeout}, {kind: timeout}, {kind: timeout}, "
          "{kind: timeout}, {kind: timeout}, {kind: timeout}, {kind: timeout}, "
          "{kind: timeout}, {kind: timeout}]\n",
     "t.yaml:8: meters[0].faults: at most 8 items allowed, got 9"},
    {"yaml syntax", HEAD "meters:\n  - id: [a\n", "t.yaml:4: (top): YAML syntax"},
    /* transformers */
    {"ct_ratio zero", HEAD "meters:\n" METER "    ct_ratio: 0\n",
     "t.yaml:8: meters[0].ct_ratio: must be > 0, got 0"},
    {"pt_ratio too large", HEAD "meters:\n" METER "    pt_ratio: 200000\n",
     "t.yaml:8: meters[0].pt_ratio: must be <= 100000, got 200000"},
    {"ct_ratio not a number", HEAD "meters:\n" METER "    ct_ratio: 400/5\n",
     "t.yaml:8: meters[0].ct_ratio: expected a number, got '400/5'"},
    {"ratio change without from_s",
     HEAD "meters:\n" METER "    faults:\n      - {kind: ratio, ct_ratio: 800}\n",
     "t.yaml:9: meters.faults: kind 'ratio' needs 'from_s'"},
    {"ratio change without a ratio",
     HEAD "meters:\n" METER "    faults:\n      - {kind: ratio, from_s: 120}\n",
     "t.yaml:9: meters.faults: kind 'ratio' needs 'ct_ratio' or 'pt_ratio'"},
    {"ratio change with a window end",
     HEAD "meters:\n" METER
          "    faults:\n      - {kind: ratio, from_s: 120, until_s: 240, ct_ratio: 800}\n",
     "t.yaml:9: meters.faults: 'until_s' does not apply to kind 'ratio'"},
    {"ratio key on another kind",
     HEAD "meters:\n" METER "    faults:\n      - {kind: reset, at_s: 5, pt_ratio: 100}\n",
     "t.yaml:9: meters.faults: 'pt_ratio' does not apply to kind 'reset'"},
    {"ratio change to zero",
     HEAD "meters:\n" METER "    faults:\n      - {kind: ratio, from_s: 120, ct_ratio: 0}\n",
     "t.yaml:9: meters[0].faults[0].ct_ratio: must be > 0, got 0"},
    {"two ratio changes at once",
     HEAD "meters:\n" METER "    faults:\n      - {kind: ratio, from_s: 60, ct_ratio: 800}\n"
          "      - {kind: ratio, from_s: 60, pt_ratio: 100}\n",
     "t.yaml:10: meters.faults: a ratio change at from_s 60 already at line 9"},
    /* partial maps */
    {"refuse not a list", HEAD "meters:\n" METER "    refuse: pf_l1\n",
     "t.yaml:8: meters[0].refuse: expected a list"},
    {"refuse a name twice", HEAD "meters:\n" METER "    refuse: [pf_l1, pf_l2, pf_l1]\n",
     "t.yaml:8: meters[0].refuse: 'pf_l1' listed twice"},
    {"refuse an empty name", HEAD "meters:\n" METER "    refuse: [pf_l1, \"\"]\n",
     "t.yaml:8: meters[0].refuse: item 1: empty register name"},
    {"refuse a name too long",
     HEAD "meters:\n" METER "    refuse: [a_register_name_longer_than_31_chars]\n",
     "t.yaml:8: meters[0].refuse[0]: longer than 31 characters"},
    {"holes neither serve nor refuse", HEAD "meters:\n" METER "    holes: zero\n",
     "t.yaml:8: meters[0].holes: 'zero' is not one of: serve, refuse"},
};

static void bad_scenario(void **state)
{
    const bad_row *row = *state;
    sim_scenario *sc = calloc(1, sizeof *sc);
    assert_non_null(sc);
    char err[512] = "";
    int rc = sim_scenario_parse("t.yaml", row->yaml, strlen(row->yaml), sc, err, sizeof err);
    free(sc);
    if (rc != DCEM_ECONFIG || strncmp(err, row->want, strlen(row->want))) {
        print_error("rc %d, message:\n  %s\nwanted it to start with:\n  %s\n", rc, err,
                    row->want);
        fail();
    }
}

/* ---- with profiles ---- */

static int load_from(void *ctx, const char *model, dcem_profile *out, char *err, size_t errlen)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/meters", (const char *)ctx);
    return dcem_io_load_profile(dir, model, out, err, errlen);
}

typedef struct site_row {
    const char *name;
    const char *yaml;
    const char *want;
} site_row;

static const site_row site_rows[] = {
    {"rollover on a float counter",
     HEAD "meters:\n" METER "    faults:\n      - {kind: timeout}\n"
          "      - {kind: rollover, after_s: 60}\n",
     "t.yaml:10: meters.faults: rollover: the counter of 'eastron-sdm630' is f32 and never "
     "wraps"},
    {"no such profile",
     HEAD "meters:\n  - id: a\n    unit: 1\n    profile: no-such-meter\n    shape: it\n"
          "    rated_kw: 3\n",
     "t.yaml:3: meters.profile: 'no-such-meter': "},
    {"refuse names no register of the profile",
     HEAD "meters:\n" METER "    refuse: [pf_l1, pf_l9]\n",
     "t.yaml:3: meters.refuse: 'pf_l9' is not a register of 'eastron-sdm630' (valid: "
     "voltage_l1, voltage_l2, voltage_l3, current_l1, "},
    {"refuse names a register of another profile",
     HEAD "meters:\n  - {id: a, unit: 1, profile: acrel-adl400, shape: it, rated_kw: 9,"
          " refuse: [pf_l1]}\n",
     "t.yaml:3: meters.refuse: 'pf_l1' is not a register of 'acrel-adl400'"},
};

static void bad_site(void **state)
{
    const site_row *row = *state;
    const char *configs = getenv("DCEM_TEST_CONFIGS");
    assert_non_null(configs);
    sim_scenario *sc = calloc(1, sizeof *sc);
    assert_non_null(sc);
    char err[512] = "";
    assert_int_equal(sim_scenario_parse("t.yaml", row->yaml, strlen(row->yaml), sc, err, sizeof err),
                     0);
    sim_site *site = NULL;
    int rc = sim_site_new(sc, "t.yaml", load_from, (void *)(uintptr_t)configs, &site, err,
                          sizeof err);
    free(sc);
    sim_site_free(site);
    if (rc != DCEM_ECONFIG || strncmp(err, row->want, strlen(row->want))) {
        print_error("rc %d, message:\n  %s\nwanted it to start with:\n  %s\n", rc, err,
                    row->want);
        fail();
    }
}

/* Every configs/sim/<name>.yaml parses and builds, and each has what its name
 * promises. */
static void shipped_scenarios_load(void **state)
{
    (void)state;
    const char *configs = getenv("DCEM_TEST_CONFIGS");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sim", configs);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml")) continue;
        char path[2048], err[1024] = "";
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *buf;
        size_t blen;
        assert_int_equal(dcem_io_read_file(path, &buf, &blen, err, sizeof err), 0);
        sim_scenario *sc = calloc(1, sizeof *sc);
        assert_non_null(sc);
        int rc = sim_scenario_parse(path, buf, blen, sc, err, sizeof err);
        free(buf);
        sim_site *site = NULL;
        if (!rc) {
            sc->start_ms = sc->start_now ? 1767225600000 : sc->start_ms;
            rc = sim_site_new(sc, path, load_from, (void *)(uintptr_t)configs, &site, err,
                              sizeof err);
        }
        if (rc) {
            print_error("%s\n", err);
            fail();
        }
        if (!strcmp(e->d_name, "bench-64.yaml")) {
            assert_int_equal(site->n_meters, 64);
            for (int u = 1; u <= 64; u++) {
                assert_non_null(sim_site_meter(site, u));
                assert_string_equal(sim_site_meter(site, u)->profile->model, "eastron-sdm630");
            }
            assert_string_equal(sim_site_meter(site, 64)->id, "rack-64");
        }
        if (!strcmp(e->d_name, "clean-3.yaml")) {
            assert_int_equal(site->n_meters, 3);
            const char *want[] = {"eastron-sdm630", "acrel-adl400", "chint-dtsu666"};
            for (int u = 1; u <= 3; u++)
                assert_string_equal(sim_site_meter(site, u)->profile->model, want[u - 1]);
            for (size_t i = 0; i < site->n_meters; i++)
                assert_int_equal(site->meters[i].n_faults, 0);
        }
        if (!strcmp(e->d_name, "partial-map.yaml")) {
            /* a strict SDM630 with six registers missing, an ADL400 missing
             * one inside a block, a clean meter, one without its counter */
            sim_meter *m = sim_site_meter(site, 1);
            assert_string_equal(m->profile->model, "eastron-sdm630");
            assert_int_equal(m->holes, SIM_HOLES_REFUSE);
            size_t refused = 0;
            for (size_t i = 0; i < m->profile->n_regs; i++) refused += m->refused[i];
            assert_int_equal(refused, 6);
            assert_true(m->refused[dcem_profile_find(m->profile, DCEM_Q_POWER_FACTOR, 1)]);
            m = sim_site_meter(site, 2);
            assert_string_equal(m->profile->model, "acrel-adl400");
            assert_int_equal(m->holes, SIM_HOLES_SERVE);
            m = sim_site_meter(site, 3);
            for (size_t i = 0; i < m->profile->n_regs; i++) assert_false(m->refused[i]);
            m = sim_site_meter(site, 4);
            assert_true(m->refused[m->counter_reg]);
        }
        if (!strcmp(e->d_name, "ct-ratio.yaml")) {
            sim_meter *m = sim_site_meter(site, 1);
            assert_string_equal(m->profile->model, "acrel-adl400");
            assert_true(sim_meter_ratio(m)->ct == 400 && sim_meter_ratio(m)->pt == 1);
            m = sim_site_meter(site, 2);
            assert_string_equal(m->profile->model, "eastron-sdm630");
            assert_true(sim_meter_ratio(m)->ct == 40);
            m = sim_site_meter(site, 3);
            assert_int_equal(m->n_ratio, 2);
            assert_true(m->ratio[0].ct == 400 && m->ratio[1].ct == 800);
            assert_true(m->ratio[1].from_ms == site->start_ms + 120000);
        }
        if (!strncmp(e->d_name, "fault-", 6)) { /* a fault scenario has faults */
            size_t faults = 0;
            for (size_t i = 0; i < site->n_meters; i++) faults += site->meters[i].n_faults;
            assert_true(faults > 0);
        }
        sim_site_free(site);
        free(sc);
        n++;
    }
    closedir(d);
    assert_true(n >= 8);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_sim_scenario CONFIGS_DIR\n");
        return 2;
    }
    setenv("DCEM_TEST_CONFIGS", argv[1], 1);
    int failed = RUN_TABLE("bad scenario", bad_scenario, bad_rows);
    failed += RUN_TABLE("bad site", bad_site, site_rows);
    const struct CMUnitTest tests[] = {cmocka_unit_test(shipped_scenarios_load)};
    failed += cmocka_run_group_tests(tests, NULL, NULL);
    return failed;
}
