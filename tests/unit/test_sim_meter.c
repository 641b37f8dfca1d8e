/* test_sim_meter.c — dcem-sim's meters and request routing
 * (firmware/sim/sim_meter.c, sim_site.c, sim_fault.c) on the shipped
 * profiles: the served counter is the initial value plus the exact integral
 * of the power, encoded per profile and decoded back by the agent's own
 * dcem_profile_value to within one register step; every register of every
 * profile decodes to the model; SunSpec devices are found by the agent's
 * discovery; rollover, reset, glitch, timeout, exception and slow faults
 * strike when and as often as the scenario says; requests a device would
 * refuse get the exceptions a device gives. A meter behind transformers
 * serves secondary values and its ratio registers the ratios in force; a
 * ratio change leaves the counter where it was and counts on at the new
 * rate; a partial map refuses its registers and holes with exception 02.
 * Initial counters from a history's last readings (dcem-sim --initial) are
 * never served below them, at most one register step above.
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
#include "sim_meter.h"
#include "sim_scenario.h"
#include "sim_site.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define assert_close(a, b, tol) assert_close_((a), (b), (tol), #a, __FILE__, __LINE__)
static void assert_close_(double a, double b, double tol, const char *what, const char *file,
                          int line)
{
    if (fabs(a - b) <= tol) return;
    print_error("%s = %.17g, want %.17g within %g\n", what, a, b, tol);
    _fail(file, line);
}

#define START_MS 1772413200000LL /* 2026-03-02T09:00:00+08:00, a Monday */
#define S(x) ((int64_t)((x)*1000))

/* A meter with transformer ratio registers, as the ADL400 (PT 0x008D, CT
 * 0x008E) and, at a 0.1 step, the DTSU666 PT ratio keep them; independent
 * of the shipped profiles, which may or may not carry them. */
static const char ratio_profile[] =
    "model: ratio-test\nvendor: test\nsources: [test_sim_meter.c]\n"
    "max_registers: 64\nmax_gap: 8\nregisters:\n"
    "  - {name: energy_import, quantity: energy_import_kwh, function: 3, address: 0x000A,"
    " type: u32, scale: 0.01}\n"
    "  - {name: voltage_a, quantity: voltage_v, phase: 1, function: 3, address: 0x0061,"
    " type: u16, scale: 0.01}\n"
    "  - {name: current_a, quantity: current_a, phase: 1, function: 3, address: 0x0064,"
    " type: u16, scale: 0.001}\n"
    "  - {name: pt_ratio, quantity: pt_ratio, function: 3, address: 0x008D, type: u16,"
    " scale: 0.1}\n"
    "  - {name: ct_ratio, quantity: ct_ratio, function: 3, address: 0x008E, type: u16}\n"
    "  - {name: power_total, quantity: power_kw, function: 3, address: 0x016A, type: s32,"
    " scale: 0.000001}\n"
    "  - {name: pf_total, quantity: power_factor, function: 3, address: 0x017F, type: s16,"
    " scale: 0.001}\n";

static int load_from(void *ctx, const char *model, dcem_profile *out, char *err, size_t errlen)
{
    if (!strcmp(model, "ratio-test"))
        return dcem_profile_parse("ratio-test.yaml", ratio_profile, strlen(ratio_profile), out, err,
                                  errlen);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/meters", (const char *)ctx);
    return dcem_io_load_profile(dir, model, out, err, errlen);
}

/* A site from scenario text, starting at START_MS; NULL with the message in
 * err when it does not build. */
static sim_site *try_site(const char *yaml, char *err, size_t errlen)
{
    const char *configs = getenv("DCEM_TEST_CONFIGS");
    assert_non_null(configs);
    sim_scenario *sc = calloc(1, sizeof *sc);
    assert_non_null(sc);
    int rc = sim_scenario_parse("t.yaml", yaml, strlen(yaml), sc, err, errlen);
    sim_site *site = NULL;
    if (!rc) {
        sc->start_ms = START_MS;
        rc = sim_site_new(sc, "t.yaml", load_from, (void *)(uintptr_t)configs, &site, err, errlen);
    }
    free(sc);
    return rc ? NULL : site;
}

/* A site from scenario text, starting at START_MS. */
static sim_site *site_of(const char *yaml)
{
    const char *configs = getenv("DCEM_TEST_CONFIGS");
    assert_non_null(configs);
    sim_scenario *sc = calloc(1, sizeof *sc);
    assert_non_null(sc);
    char err[1024] = "";
    int rc = sim_scenario_parse("t.yaml", yaml, strlen(yaml), sc, err, sizeof err);
    sim_site *site = NULL;
    if (!rc) {
        sc->start_ms = START_MS;
        rc = sim_site_new(sc, "t.yaml", load_from, (void *)(uintptr_t)configs, &site, err,
                          sizeof err);
    }
    free(sc);
    if (rc) {
        print_error("%s\n", err);
        fail();
    }
    return site;
}

/* The register image of one function of a meter, as the server keeps it. */
typedef struct image {
    uint16_t *tab;
    unsigned start, count;
} image;

static image fill(const sim_meter *m, int function, const sim_glitch *g)
{
    image im = {NULL, m->range_start[function == 4], m->range_count[function == 4]};
    im.tab = calloc(im.count ? im.count : 1, sizeof *im.tab);
    assert_non_null(im.tab);
    sim_meter_fill(m, function, im.tab, im.start, im.count, g);
    return im;
}

static const uint16_t *words_of(const image *im, unsigned address)
{
    assert_true(address >= im->start && address < im->start + im->count);
    return im->tab + (address - im->start);
}

/* Register i decoded as the agent does, from the image. */
static int agent_value(const sim_meter *m, const image *im, size_t i, double *v)
{
    const dcem_profile *p = m->profile;
    const dcem_register *r = &p->regs[i];
    const uint16_t *sf = NULL;
    if (r->scale_register[0])
        for (size_t j = 0; j < p->n_regs; j++)
            if (!strcmp(p->regs[j].name, r->scale_register))
                sf = words_of(im, sim_meter_reg_address(m, j));
    return dcem_profile_value(p, i, words_of(im, sim_meter_reg_address(m, i)), sf, v);
}

static double served_counter(const sim_meter *m, const sim_glitch *g)
{
    const dcem_register *r = &m->profile->regs[m->counter_reg];
    image im = fill(m, r->function, g);
    double v = NAN;
    int rc = agent_value(m, &im, (size_t)m->counter_reg, &v);
    free(im.tab);
    return rc ? NAN : v;
}

static sim_answer ask(sim_site *s, int64_t t_ms, int unit, int function, unsigned address,
                      unsigned count)
{
    sim_answer a;
    sim_site_request(s, t_ms, SIM_BUS_TCP, unit, function, address, count, &a);
    return a;
}

#define ONE(profile, shape, extra)                                                                 \
    "name: t\nmeters:\n  - id: m\n    unit: 1\n    profile: " profile "\n    shape: " shape        \
    "\n    rated_kw: 300\n" extra

static void counter_is_initial_plus_the_integral(void **state)
{
    (void)state;
    sim_site *s = site_of(ONE("acrel-adl400", "it", "    initial_kwh: 1000\n"));
    sim_meter *m = sim_site_meter(s, 1);
    int64_t t = START_MS + S(3 * 3600 + 17.5);
    sim_answer a = ask(s, t, 1, 3, 0x0A, 2);
    assert_int_equal(a.action, SIM_REPLY);
    double e = sim_model_energy_kwh(&m->model, START_MS, t); /* in one sum */
    assert_true(e > 3 * 0.5 * 300);
    assert_close(m->energy_kwh, e, 1e-9 * e);
    assert_close(sim_meter_counter_kwh(m), 1000 + e, 1e-9);
    /* 0.01 kWh counts, completed ones shown */
    double served = served_counter(m, NULL);
    assert_true(served <= 1000 + e + 1e-9 && served > 1000 + e - 0.01);
    assert_close(served * 100, round(served * 100), 1e-6);

    /* advancing in many small steps gives the same counter */
    for (int64_t u = t; u < t + S(3600); u += S(1.234))
        sim_meter_advance(m, u);
    sim_meter_advance(m, t + S(3600));
    double whole = sim_model_energy_kwh(&m->model, START_MS, t + S(3600));
    assert_close(m->energy_kwh, whole, 1e-10 * whole);
    sim_site_free(s);
}

/* dcem-sim --initial: a meter carrying on from a history reads at or above
 * its last reading, by less than one register step; a bad file changes
 * nothing. */
static void initial_counters_carry_on_from_a_history(void **state)
{
    (void)state;
    sim_site *s =
        site_of("name: t\nmeters:\n"
                "  - {id: f, unit: 1, profile: chint-dtsu666, shape: it, rated_kw: 300}\n"
                "  - {id: u, unit: 2, profile: acrel-adl400, shape: it, rated_kw: 300}\n"
                "  - {id: w, unit: 3, profile: schneider-pm5xxx, shape: it, rated_kw: 300}\n"
                "  - {id: r, unit: 4, profile: acrel-adl400, shape: it, rated_kw: 300,"
                " faults: [{kind: rollover, after_s: 60}]}\n");
    char err[512] = "";
    /* f32 at 2.6 GWh steps 0.25 kWh: 2641437.57 is no float; the last row counts */
    static const char csv[] = "time,meter,kwh\r\n"
                              "2026-03-02T09:00:00+08:00,f,1.5\n"
                              "2026-03-02T09:00:00+08:00,u,1234.56\n"
                              "2026-03-02T09:00:00+08:00,w,27061115.65\n"
                              "2026-03-02T09:00:00+08:00,f,2641437.57\n";
    assert_int_equal(sim_site_initial_counters(s, "c.csv", csv, strlen(csv), err, sizeof err), 0);
    double f = served_counter(sim_site_meter(s, 1), NULL);
    assert_true(f >= 2641437.57 && f < 2641437.57 + 0.25);
    assert_close(served_counter(sim_site_meter(s, 2), NULL), 1234.56, 1e-9);
    /* 27061115.65 / 0.001 floors to a count below without the raise */
    assert_close(served_counter(sim_site_meter(s, 3), NULL), 27061115.65, 1e-6);
    assert_true(served_counter(sim_site_meter(s, 3), NULL) >= 27061115.65 * (1 - 1e-12));
    assert_close(sim_meter_counter_kwh(sim_site_meter(s, 1)), f, 0);

    static const struct {
        const char *csv, *err;
    } bad[] = {
        {"2026-03-02T09:00:00Z,x,1\n", "c.csv:1: meter: 'x' is not a meter of the scenario"},
        {"time,meter,kwh\n2026-03-02T09:00:00Z,u\n", "c.csv:2: row: expected time,meter,kwh"},
        {"t,u,-1\n", "c.csv:1: kwh: '-1' is not a counter value"},
        {"t,u,5\nt,r,7\n", "c.csv:2: kwh: r cannot start at 7.000 kWh: it has a rollover fault"},
        {"t,u,5\nt,u,1e12\n",
         "c.csv:2: kwh: u cannot start at 1000000000000.000 kWh: beyond its register"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(
            sim_site_initial_counters(s, "c.csv", bad[i].csv, strlen(bad[i].csv), err, sizeof err),
            DCEM_ECONFIG);
        assert_string_equal(err, bad[i].err);
        assert_close(served_counter(sim_site_meter(s, 2), NULL), 1234.56, 1e-9); /* unchanged */
    }
    sim_site_free(s);
}

static void float_counter_is_the_float_of_the_counter(void **state)
{
    (void)state;
    sim_site *s = site_of(ONE("eastron-sdm630", "pv", "    initial_kwh: 12345.67\n"));
    sim_meter *m = sim_site_meter(s, 1);
    sim_meter_advance(m, START_MS + S(7200));
    double c = sim_meter_counter_kwh(m);
    assert_true(c > 12345.67 + 10); /* a March morning makes some PV energy */
    assert_true(served_counter(m, NULL) == (double)(float)c);
    sim_site_free(s);
}

/* Every register of every shipped profile, decoded by the agent's code,
 * is the model's value to within one step of the register. */
static void every_profile_register_decodes_to_the_model(void **state)
{
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/meters", getenv("DCEM_TEST_CONFIGS"));
    DIR *d = opendir(dir);
    assert_non_null(d);
    int profiles = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".yaml")) continue;
        char yaml[512], model[128];
        snprintf(model, sizeof model, "%.*s", (int)(len - 5), de->d_name);
        snprintf(yaml, sizeof yaml,
                 "name: t\nmeters:\n  - id: m\n    unit: 7\n    profile: %s\n    shape: it\n"
                 "    rated_kw: 180\n    initial_kwh: 54321.5\n",
                 model);
        sim_site *s = site_of(yaml);
        sim_meter *m = sim_site_meter(s, 7);
        sim_meter_advance(m, START_MS + S(5 * 3600 + 3));
        sim_electrical e;
        sim_model_electrical(&m->model, m->t_ms, &e);
        image im[2] = {fill(m, 3, NULL), fill(m, 4, NULL)};
        const dcem_profile *p = m->profile;
        for (size_t i = 0; i < p->n_regs; i++) {
            const dcem_register *r = &p->regs[i];
            double want = sim_meter_reg_value(m, i, &e, NULL), got;
            int rc = agent_value(m, &im[r->function == 4], i, &got);
            if (r->quantity == DCEM_Q_ENERGY_EXPORT_KWH && p->sunspec_model &&
                r->type != DCEM_F32) {
                /* nothing exported: a SunSpec accumulator (acc32) at 0 means
                 * "not implemented": the agent treats the value as absent */
                assert_int_equal(rc, DCEM_ENOTFOUND);
                continue;
            }
            if (rc) {
                print_error("%s %s: the agent refuses it (%d)\n", model, r->name, rc);
                fail();
            }
            double unit = sim_meter_reg_unit(m, i);
            double tol = r->type == DCEM_F32   ? 1e-6 * fabs(want) + 1e-30
                         : r->type == DCEM_F64 ? 1e-12 * fabs(want)
                                               : unit * (1 + 1e-9);
            if (fabs(got - want) > tol) {
                print_error("%s %s: served %.10g, model %.10g (step %g)\n", model, r->name, got,
                            want, unit);
                fail();
            }
            /* what dcem-sim reports as served is what the agent decodes */
            double served;
            assert_int_equal(
                sim_meter_reg_decode(
                    m, i, words_of(&im[r->function == 4], sim_meter_reg_address(m, i)), &served),
                0);
            assert_true(served == got);
        }
        free(im[0].tab);
        free(im[1].tab);
        sim_site_free(s);
        profiles++;
    }
    closedir(d);
    assert_true(profiles >= 3);
}

static void sunspec_is_found_by_discovery(void **state)
{
    (void)state;
    const struct {
        const char *profile;
        int model;
        unsigned len;
    } cases[] = {{"sunspec-203", 203, 105}, {"sunspec-213", 213, 124}};
    for (size_t k = 0; k < 2; k++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml,
                 "name: t\nmeters:\n  - id: m\n    unit: 1\n    profile: %s\n    shape: it\n"
                 "    rated_kw: 300\n    initial_kwh: 777\n",
                 cases[k].profile);
        sim_site *s = site_of(yaml);
        sim_meter *m = sim_site_meter(s, 1);
        image im = fill(m, 3, NULL);
        assert_int_equal(im.start, SIM_SUNSPEC_BASE);
        unsigned addr = 0, len = 0;
        assert_int_equal(dcem_sunspec_find(im.tab, im.count, im.start, cases[k].model, &addr, &len),
                         0);
        assert_int_equal(addr, SIM_SUNSPEC_MODEL_ADDR);
        assert_int_equal(len, cases[k].len);
        /* the chain ends after the meter model */
        assert_int_equal(*words_of(&im, addr + 2 + len), 0xFFFF);
        assert_int_equal(dcem_sunspec_find(im.tab, im.count, im.start, 999, &addr, &len),
                         DCEM_ERANGE);
        /* the common block names the meter */
        assert_int_equal(*words_of(&im, SIM_SUNSPEC_BASE + 2), 1);
        assert_int_equal(*words_of(&im, SIM_SUNSPEC_BASE + 4 + 48), ('m' << 8));
        assert_close(served_counter(m, NULL), 777, 0.001);
        free(im.tab);
        sim_site_free(s);
    }
}

static void rollover_wraps_when_asked(void **state)
{
    (void)state;
    sim_site *s = site_of(ONE("acrel-adl400", "it",
                              "    faults:\n"
                              "      - {kind: rollover, after_s: 300}\n"));
    sim_meter *m = sim_site_meter(s, 1);
    double wrap = sim_meter_reg_wrap(m, (size_t)m->counter_reg);
    assert_close(wrap, 4294967296.0 * 0.01, 1e-3);
    sim_meter_advance(m, START_MS + S(299));
    double before = served_counter(m, NULL);
    assert_true(before > wrap - 1 && before < wrap);
    sim_meter_advance(m, START_MS + S(302));
    double after = served_counter(m, NULL);
    assert_true(after >= 0 && after < 1);
    /* the counter runs on unwrapped; energy never stops */
    assert_true(sim_meter_counter_kwh(m) > wrap);
    assert_close(after + wrap - before,
                 m->energy_kwh - sim_model_energy_kwh(&m->model, START_MS, START_MS + S(299)),
                 0.02);
    sim_site_free(s);
}

static void reset_restarts_the_counter(void **state)
{
    (void)state;
    sim_site *s = site_of(ONE("acrel-adl400", "it",
                              "    initial_kwh: 98765.43\n    faults:\n"
                              "      - {kind: reset, at_s: 600}\n"));
    sim_meter *m = sim_site_meter(s, 1);
    sim_meter_advance(m, START_MS + S(599));
    assert_close(sim_meter_counter_kwh(m),
                 98765.43 + sim_model_energy_kwh(&m->model, START_MS, START_MS + S(599)), 1e-9);
    sim_meter_advance(m, START_MS + S(900));
    double since = sim_model_energy_kwh(&m->model, START_MS + S(600), START_MS + S(900));
    assert_close(sim_meter_counter_kwh(m), since, 1e-9);
    assert_true(served_counter(m, NULL) < since + 1e-9 && served_counter(m, NULL) > since - 0.01);
    /* the true energy runs straight through */
    assert_close(m->energy_kwh, sim_model_energy_kwh(&m->model, START_MS, START_MS + S(900)), 1e-9);
    sim_site_free(s);
}

static void glitch_strikes_one_counter_read(void **state)
{
    (void)state;
    sim_site *s = site_of(
        "name: t\nmeters:\n"
        "  - {id: a, unit: 1, profile: acrel-adl400, shape: it, rated_kw: 300, initial_kwh: 500,"
        " faults: [{kind: glitch, at_s: 300}]}\n"
        "  - {id: b, unit: 2, profile: eastron-sdm630, shape: it, rated_kw: 300, initial_kwh: 500,"
        " faults: [{kind: glitch, at_s: 300, glitch: spike}]}\n");
    sim_answer a = ask(s, START_MS + S(200), 1, 3, 0, 30);
    assert_false(a.glitch.active);
    a = ask(s, START_MS + S(310), 1, 3, 0x61, 3); /* voltages: not the counter */
    assert_false(a.glitch.active);
    a = ask(s, START_MS + S(320), 1, 3, 0x0A, 2);
    assert_true(a.glitch.active);
    assert_int_equal(a.glitch.kind, SIM_GLITCH_ZERO);
    assert_true(served_counter(a.meter, &a.glitch) == 0);
    assert_true(served_counter(a.meter, NULL) > 500);
    a = ask(s, START_MS + S(330), 1, 3, 0x0A, 2);
    assert_false(a.glitch.active);
    assert_int_equal(a.meter->stats.glitches, 1);

    a = ask(s, START_MS + S(301), 2, 4, 0x48, 2);
    assert_true(a.glitch.active);
    double c = sim_meter_counter_kwh(a.meter);
    assert_close(served_counter(a.meter, &a.glitch), c + 24 * 300, 0.01);
    sim_site_free(s);
}

static void timeout_window_silences_the_meter(void **state)
{
    (void)state;
    sim_site *s = site_of(ONE("eastron-sdm630", "it",
                              "    faults:\n"
                              "      - {kind: timeout, from_s: 60, until_s: 120}\n"));
    assert_int_equal(ask(s, START_MS + S(30), 1, 4, 0, 2).action, SIM_REPLY);
    assert_int_equal(ask(s, START_MS + S(60), 1, 4, 0, 2).action, SIM_IGNORE);
    assert_int_equal(ask(s, START_MS + S(119.9), 1, 4, 0, 2).action, SIM_IGNORE);
    assert_int_equal(ask(s, START_MS + S(120), 1, 4, 0, 2).action, SIM_REPLY);
    sim_meter *m = sim_site_meter(s, 1);
    assert_int_equal(m->stats.requests, 4);
    assert_int_equal(m->stats.dropped, 2);
    assert_int_equal(m->stats.answered, 2);
    sim_site_free(s);
}

static unsigned long drops_of(void)
{
    sim_site *s = site_of(ONE("eastron-sdm630", "it",
                              "    faults:\n"
                              "      - {kind: timeout, probability: 0.3}\n"));
    for (int i = 0; i < 4000; i++)
        ask(s, START_MS + i * 250, 1, 4, 0, 2);
    unsigned long d = sim_site_meter(s, 1)->stats.dropped;
    sim_site_free(s);
    return d;
}

static void probability_is_a_rate_and_replays(void **state)
{
    (void)state;
    unsigned long d = drops_of();
    assert_true(d > 0.27 * 4000 && d < 0.33 * 4000);
    assert_int_equal(drops_of(), d); /* the seed replays the run */
}

static void exception_and_slow_faults(void **state)
{
    (void)state;
    sim_site *s = site_of(
        "name: t\nmeters:\n"
        "  - {id: a, unit: 1, profile: eastron-sdm630, shape: it, rated_kw: 30,"
        " faults: [{kind: exception, until_s: 60}, {kind: exception, code: 6, from_s: 60}]}\n"
        "  - {id: b, unit: 2, profile: eastron-sdm630, shape: it, rated_kw: 30,"
        " faults: [{kind: slow, delay_ms: 1500}, {kind: slow, delay_ms: 300}]}\n"
        "  - {id: c, unit: 3, profile: eastron-sdm630, shape: it, rated_kw: 30,"
        " faults: [{kind: exception, code: 2}, {kind: timeout}]}\n");
    sim_answer a = ask(s, START_MS + S(10), 1, 4, 0, 2);
    assert_int_equal(a.action, SIM_EXCEPTION);
    assert_int_equal(a.exception, 4);
    a = ask(s, START_MS + S(70), 1, 4, 0, 2);
    assert_int_equal(a.exception, 6);
    a = ask(s, START_MS + S(10), 2, 4, 0, 2);
    assert_int_equal(a.action, SIM_REPLY);
    assert_int_equal(a.delay_ms, 1500); /* the longest delay wins */
    a = ask(s, START_MS + S(10), 3, 4, 0, 2);
    assert_int_equal(a.action, SIM_IGNORE); /* silence outranks an exception */
    sim_site_free(s);
}

static void requests_a_device_refuses(void **state)
{
    (void)state;
    sim_site *s = site_of(ONE("eastron-sdm630", "it", ""));
    assert_int_equal(ask(s, START_MS, 1, 6, 0, 1).exception, 1);  /* write: illegal function */
    assert_int_equal(ask(s, START_MS, 1, 4, 0, 0).exception, 3);  /* count 0 */
    assert_int_equal(ask(s, START_MS, 1, 4, 0, 81).exception, 3); /* over max_registers 80 */
    assert_int_equal(ask(s, START_MS, 1, 4, 0, 80).action, SIM_REPLY);
    assert_int_equal(ask(s, START_MS, 1, 3, 0, 2).exception, 2);     /* no holding registers */
    assert_int_equal(ask(s, START_MS, 1, 4, 0x15F, 2).exception, 2); /* past the last one */
    sim_answer a = ask(s, START_MS, 9, 4, 0, 2);                     /* nobody at unit 9 */
    assert_int_equal(a.action, SIM_EXCEPTION);
    assert_int_equal(a.exception, 11);
    assert_null(a.meter);
    sim_site_request(s, START_MS, SIM_BUS_RTU, 9, 4, 0, 2, &a);
    assert_int_equal(a.action, SIM_IGNORE); /* a bus stays silent */
    assert_int_equal(s->unknown_unit, 2);
    sim_site_free(s);
}

/* ---- transformers ---- */

static int reg_index(const sim_meter *m, const char *name)
{
    for (size_t i = 0; i < m->profile->n_regs; i++)
        if (!strcmp(m->profile->regs[i].name, name)) return (int)i;
    fail_msg("no register %s", name);
    return -1;
}

/* Register `name` as the agent decodes it from the served image. */
static double served_reg(const sim_meter *m, const char *name)
{
    int i = reg_index(m, name);
    image im = fill(m, m->profile->regs[i].function, NULL);
    double v = NAN;
    assert_int_equal(agent_value(m, &im, (size_t)i, &v), 0);
    free(im.tab);
    return v;
}

static uint16_t served_word(const sim_meter *m, const char *name)
{
    int i = reg_index(m, name);
    image im = fill(m, m->profile->regs[i].function, NULL);
    uint16_t w = *words_of(&im, sim_meter_reg_address(m, (size_t)i));
    free(im.tab);
    return w;
}

/* Behind CT 400 and PT 10 every value is the primary one divided by its
 * factor (energy and power ct * pt, current ct, voltage pt, PF 1), and the
 * ratio registers serve 400 and 10 (raw 100 at a 0.1 step). */
static void transformers_serve_secondary_values(void **state)
{
    (void)state;
    sim_site *s = site_of(ONE("ratio-test", "constant",
                              "    initial_kwh: 400000\n    ct_ratio: 400\n    pt_ratio: 10\n"));
    sim_meter *m = sim_site_meter(s, 1);
    /* at start the meter holds the primary counter / (ct * pt) */
    assert_close(m->initial_kwh, 400000, 0);
    assert_close(sim_meter_secondary_kwh(m), 100, 1e-12);
    assert_close(served_counter(m, NULL), 100, 0.01 + 1e-9);
    int64_t t = START_MS + S(3600 + 7);
    sim_meter_advance(m, t);
    double e = sim_model_energy_kwh(&m->model, START_MS, t);
    assert_true(e > 100);
    assert_close(sim_meter_counter_kwh(m), 400000 + e, 1e-9);
    assert_close(sim_meter_secondary_kwh(m), 100 + e / 4000, 1e-9);
    double sc = served_counter(m, NULL);
    assert_true(sc <= 100 + e / 4000 + 1e-9 && sc > 100 + e / 4000 - 0.01);

    sim_electrical el;
    sim_model_electrical(&m->model, m->t_ms, &el);
    assert_close(served_reg(m, "voltage_a"), el.v[1] / 10, 0.005 + 1e-9);
    assert_close(served_reg(m, "current_a"), el.i_a[1] / 400, 0.0005 + 1e-9);
    assert_close(served_reg(m, "power_total"), el.p_kw[0] / 4000, 0.0000005 + 1e-12);
    assert_close(served_reg(m, "pf_total"), el.pf[0], 0.0005 + 1e-9);
    assert_close(served_reg(m, "ct_ratio"), 400, 0);
    assert_close(served_reg(m, "pt_ratio"), 10, 1e-12);
    assert_int_equal(served_word(m, "ct_ratio"), 400);
    assert_int_equal(served_word(m, "pt_ratio"), 100);
    /* the agent's figure: served value times the factor is the primary one */
    assert_close(served_reg(m, "voltage_a") * dcem_ratio_factor(DCEM_Q_VOLTAGE_V, 400, 10), el.v[1],
                 0.05 + 1e-9);
    sim_site_free(s);

    /* no transformers: the ratio registers say 1, values are primary */
    s = site_of(ONE("ratio-test", "constant", ""));
    m = sim_site_meter(s, 1);
    assert_int_equal(served_word(m, "ct_ratio"), 1);
    assert_int_equal(served_word(m, "pt_ratio"), 10);
    assert_close(served_reg(m, "pt_ratio"), 1, 1e-12);
    sim_model_electrical(&m->model, m->t_ms, &el);
    assert_close(served_reg(m, "voltage_a"), el.v[1], 0.005 + 1e-9);
    sim_site_free(s);

    /* a profile without ratio registers (the agent is told the ratio) */
    s = site_of(ONE("eastron-sdm630", "it", "    initial_kwh: 8000\n    ct_ratio: 40\n"));
    m = sim_site_meter(s, 1);
    sim_meter_advance(m, START_MS + S(600));
    sim_model_electrical(&m->model, m->t_ms, &el);
    assert_close(served_reg(m, "current_l2"), el.i_a[2] / 40, 1e-6 * el.i_a[2] / 40);
    assert_close(served_reg(m, "voltage_l2"), el.v[2], 1e-6 * el.v[2]); /* pt 1 */
    assert_close(served_reg(m, "power_total"), el.p_kw[0] / 40, 1e-6 * el.p_kw[0] / 40);
    assert_close(served_counter(m, NULL), (8000 + m->energy_kwh) / 40, 1e-4);
    /* per-phase counters share the secondary counter */
    assert_close(served_reg(m, "energy_import_l1"), sim_meter_secondary_kwh(m) * m->model.share[0],
                 1e-4);
    sim_site_free(s);
}

/* CT 400 -> 800 at 120 s: the counter does not jump, it counts on at half
 * the rate; the ct register follows; the stretches give back the primary
 * energy from the served counter. */
static void ratio_change_keeps_the_counter(void **state)
{
    (void)state;
    sim_site *s = site_of(ONE("ratio-test", "it",
                              "    initial_kwh: 800000\n    ct_ratio: 400\n    faults:\n"
                              "      - {kind: ratio, from_s: 120, ct_ratio: 800}\n"));
    sim_meter *m = sim_site_meter(s, 1);
    const int64_t change = START_MS + S(120);
    sim_meter_advance(m, change - 1);
    assert_int_equal(served_word(m, "ct_ratio"), 400);
    assert_close(sim_meter_ratio(m)->ct, 400, 0);
    sim_meter_advance(m, change);
    assert_int_equal(served_word(m, "ct_ratio"), 800);
    assert_close(sim_meter_ratio(m)->ct, 800, 0);
    assert_close(sim_meter_ratio(m)->pt, 1, 0); /* not named: unchanged */
    double e1 = sim_model_energy_kwh(&m->model, START_MS, change);
    double at_change = 2000 + e1 / 400;
    assert_close(sim_meter_secondary_kwh(m), at_change, 1e-9);
    assert_close(m->ratio[1].secondary_start_kwh, at_change, 1e-9);

    int64_t t = START_MS + S(3 * 3600);
    sim_meter_advance(m, t);
    double e2 = sim_model_energy_kwh(&m->model, change, t);
    assert_close(sim_meter_secondary_kwh(m), at_change + e2 / 800, 1e-9);
    assert_close(m->energy_kwh, e1 + e2, 1e-9 * (e1 + e2));
    assert_close(sim_meter_counter_kwh(m), 800000 + e1 + e2, 1e-6);
    /* what the truth lists: each stretch's ratios and energy */
    assert_int_equal(m->n_ratio, 2);
    assert_int_equal(m->seg, 1);
    assert_close(m->ratio[0].energy_kwh, e1, 1e-9 * e1);
    assert_close(m->ratio[1].energy_kwh, e2, 1e-9 * e2);
    /* an agent applying the ratio in force to each counter delta gets the
     * primary energy back */
    double primary = (m->ratio[1].secondary_start_kwh - m->ratio[0].secondary_start_kwh) * 400 +
                     (sim_meter_secondary_kwh(m) - m->ratio[1].secondary_start_kwh) * 800;
    assert_close(primary, m->energy_kwh, 1e-6);
    double sc = served_counter(m, NULL);
    assert_true(sc <= at_change + e2 / 800 + 1e-9 && sc > at_change + e2 / 800 - 0.01);
    sim_site_free(s);

    /* a reset after the change restarts the counter at value / (ct * pt) */
    s = site_of(ONE("ratio-test", "it",
                    "    ct_ratio: 400\n    faults:\n"
                    "      - {kind: ratio, from_s: 60, ct_ratio: 800, pt_ratio: 2}\n"
                    "      - {kind: reset, at_s: 600, value_kwh: 16000}\n"));
    m = sim_site_meter(s, 1);
    sim_meter_advance(m, START_MS + S(900));
    double since = sim_model_energy_kwh(&m->model, START_MS + S(600), START_MS + S(900));
    assert_close(sim_meter_secondary_kwh(m), 10 + since / 1600, 1e-9);
    assert_close(sim_meter_counter_kwh(m), 16000 + since, 1e-9);
    assert_close(served_reg(m, "pt_ratio"), 2, 1e-12);
    sim_site_free(s);
}

/* A rollover wraps the served (secondary) counter after_s from the start. */
static void rollover_behind_transformers(void **state)
{
    (void)state;
    sim_site *s = site_of(ONE("acrel-adl400", "it",
                              "    ct_ratio: 400\n    faults:\n"
                              "      - {kind: rollover, after_s: 300}\n"));
    sim_meter *m = sim_site_meter(s, 1);
    double wrap = sim_meter_reg_wrap(m, (size_t)m->counter_reg);
    assert_close(m->initial_kwh, m->initial_secondary_kwh * 400, 1e-6);
    sim_meter_advance(m, START_MS + S(299));
    double before = served_counter(m, NULL);
    assert_true(before > wrap - 1 && before < wrap);
    sim_meter_advance(m, START_MS + S(302));
    assert_true(served_counter(m, NULL) < 0.1);
    sim_site_free(s);
}

/* A ratio the profile's ratio register cannot show is a scenario error. */
static void ratio_registers_must_hold_the_ratio(void **state)
{
    (void)state;
    const struct {
        const char *extra, *want;
    } rows[] = {
        {"    ct_ratio: 2.5\n",
         "t.yaml:3: meters.ct_ratio: ct_ratio 2.5: register 'ct_ratio' of 'ratio-test' (u16, "
         "step 1) cannot hold it"},
        {"    pt_ratio: 0.05\n",
         "t.yaml:3: meters.pt_ratio: pt_ratio 0.05: register 'pt_ratio' of 'ratio-test' (u16, "
         "step 0.1) cannot hold it"},
        {"    faults:\n      - {kind: ratio, from_s: 5, ct_ratio: 70000}\n",
         "t.yaml:9: meters.faults: ct_ratio 70000: register 'ct_ratio'"},
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        char yaml[512], err[1024] = "";
        snprintf(yaml, sizeof yaml, ONE("ratio-test", "it", "%s"), rows[k].extra);
        sim_site *s = try_site(yaml, err, sizeof err);
        sim_site_free(s);
        if (s || strncmp(err, rows[k].want, strlen(rows[k].want))) {
            print_error("got:\n  %s\nwanted:\n  %s\n", err, rows[k].want);
            fail();
        }
    }
    /* a profile without ratio registers takes any valid ratio */
    sim_site_free(site_of(ONE("eastron-sdm630", "it", "    ct_ratio: 2.5\n")));
}

/* ---- partial maps ---- */

static void refused_registers_answer_02(void **state)
{
    (void)state;
    sim_site *s = site_of(ONE("eastron-sdm630", "it", "    refuse: [pf_l1, energy_import_l2]\n"));
    sim_meter *m = sim_site_meter(s, 1);
    const struct {
        unsigned address, count;
        int refused;
    } rows[] = {
        {0x001E, 2, 1},    /* pf_l1 itself */
        {0x001F, 1, 1},    /* one word of it */
        {0x001C, 3, 1},    /* a span touching its first word */
        {0x0000, 80, 1},   /* a block read across it */
        {0x0000, 0x1E, 0}, /* everything before it */
        {0x0020, 2, 0},    /* pf_l2 alone */
        {0x0012, 4, 0},    /* holes are served (holes: serve) */
        {0x015A, 6, 1},    /* the per-phase block, l2 inside */
        {0x015A, 2, 0},    /* l1 alone */
        {0x015E, 2, 0},    /* l3 alone */
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        assert_int_equal(sim_meter_refuses(m, 4, rows[k].address, rows[k].count), rows[k].refused);
        sim_answer a = ask(s, START_MS, 1, 4, rows[k].address, rows[k].count);
        if (rows[k].refused) {
            assert_int_equal(a.action, SIM_EXCEPTION);
            assert_int_equal(a.exception, 2);
        } else {
            assert_int_equal(a.action, SIM_REPLY);
        }
    }
    assert_int_equal(m->stats.refused, 5);
    assert_int_equal(m->stats.exceptions, 5);
    /* the function matters: fc 3 is outside this meter anyway (range check) */
    assert_int_equal(sim_meter_refuses(m, 3, 0x001E, 2), 0);
    sim_site_free(s);

    /* the import counter itself may be refused */
    s = site_of(ONE("acrel-adl400", "it", "    refuse: [energy_import]\n"));
    assert_int_equal(ask(s, START_MS, 1, 3, 0x000A, 2).exception, 2);
    assert_int_equal(ask(s, START_MS, 1, 3, 0x0000, 22).exception, 2);
    assert_int_equal(ask(s, START_MS, 1, 3, 0x0000, 2).action, SIM_REPLY);
    sim_site_free(s);
}

static void holes_refuse_needs_contiguous_registers(void **state)
{
    (void)state;
    sim_site *s = site_of(ONE("eastron-sdm630", "it", "    holes: refuse\n"));
    sim_meter *m = sim_site_meter(s, 1);
    const struct {
        unsigned address, count;
        int refused;
    } rows[] = {
        {0x0000, 0x12, 0}, /* V, I, P per phase: contiguous */
        {0x0000, 0x13, 1}, /* ... and the first unmapped word */
        {0x0012, 1, 1},    /* a hole alone */
        {0x0046, 6, 0},    /* frequency, import, export */
        {0x001E, 6, 0},    /* pf_l1..l3 */
        {0x001E, 7, 1},    /* and the word after pf_l3 */
        {0x003E, 10, 1},   /* pf_total .. frequency across 0x40-0x45 */
        {0x0156, 2, 0},    /* energy_total */
        {0x0156, 6, 1},    /* 0x0158-0x0159 unmapped */
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        if (sim_meter_refuses(m, 4, rows[k].address, rows[k].count) != rows[k].refused) {
            print_error("row %zu: %#x+%u\n", k, rows[k].address, rows[k].count);
            fail();
        }
        assert_int_equal(ask(s, START_MS, 1, 4, rows[k].address, rows[k].count).action,
                         rows[k].refused ? SIM_EXCEPTION : SIM_REPLY);
    }
    sim_site_free(s);

    /* refuse and holes together: the refused register is no longer a bridge */
    s = site_of(ONE("acrel-adl400", "it", "    holes: refuse\n    refuse: [voltage_b]\n"));
    m = sim_site_meter(s, 1);
    assert_int_equal(sim_meter_refuses(m, 3, 0x0061, 1), 0);
    assert_int_equal(sim_meter_refuses(m, 3, 0x0061, 2), 1);
    assert_int_equal(sim_meter_refuses(m, 3, 0x0063, 4), 0);
    assert_int_equal(sim_meter_refuses(m, 3, 0x0000, 2), 0);
    assert_int_equal(sim_meter_refuses(m, 3, 0x0000, 12), 1); /* tariff gap 0x02-0x09 */
    sim_site_free(s);

    /* SunSpec: the whole chain is served, unimplemented points too */
    s = site_of(ONE("sunspec-203", "it", "    initial_kwh: 5\n    holes: refuse\n"));
    m = sim_site_meter(s, 1);
    assert_int_equal(sim_meter_refuses(m, 3, SIM_SUNSPEC_BASE, 100), 0);
    assert_int_equal(sim_meter_refuses(m, 3, SIM_SUNSPEC_MODEL_ADDR, 100), 0);
    assert_int_equal(ask(s, START_MS, 1, 3, SIM_SUNSPEC_BASE, 100).action, SIM_REPLY);
    sim_site_free(s);
}

static void simulated_clock(void **state)
{
    (void)state;
    sim_site *s =
        site_of("name: t\nclock: {speed: 3600}\nmeters:\n"
                "  - {id: a, unit: 1, profile: eastron-sdm630, shape: it, rated_kw: 3}\n");
    assert_true(sim_site_time(s, 0) == START_MS);
    assert_true(sim_site_time(s, 1000) == START_MS + 3600 * 1000);
    s->speed = 0;
    assert_true(sim_site_time(s, 123456) == START_MS);
    sim_site_free(s);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_sim_meter CONFIGS_DIR\n");
        return 2;
    }
    setenv("DCEM_TEST_CONFIGS", argv[1], 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counter_is_initial_plus_the_integral),
        cmocka_unit_test(float_counter_is_the_float_of_the_counter),
        cmocka_unit_test(every_profile_register_decodes_to_the_model),
        cmocka_unit_test(sunspec_is_found_by_discovery),
        cmocka_unit_test(rollover_wraps_when_asked),
        cmocka_unit_test(reset_restarts_the_counter),
        cmocka_unit_test(glitch_strikes_one_counter_read),
        cmocka_unit_test(timeout_window_silences_the_meter),
        cmocka_unit_test(probability_is_a_rate_and_replays),
        cmocka_unit_test(exception_and_slow_faults),
        cmocka_unit_test(requests_a_device_refuses),
        cmocka_unit_test(transformers_serve_secondary_values),
        cmocka_unit_test(ratio_change_keeps_the_counter),
        cmocka_unit_test(rollover_behind_transformers),
        cmocka_unit_test(ratio_registers_must_hold_the_ratio),
        cmocka_unit_test(refused_registers_answer_02),
        cmocka_unit_test(holes_refuse_needs_contiguous_registers),
        cmocka_unit_test(simulated_clock),
        cmocka_unit_test(initial_counters_carry_on_from_a_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
