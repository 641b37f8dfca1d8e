/* test_config.c — the YAML config loader through dcem_site_parse and
 * dcem_policy_parse: the shipped files under configs/ (argv[1]) load, broken
 * documents fail with the exact "file:line: key: what is wrong" message, and
 * defaults, certificates and role names come out as documented. Each table
 * row is its own cmocka test so a failure names the row. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "policy.h"
#include "site.h"
#include "table.h"

static const char *configs_dir; /* argv[1]: the repository's configs/ */

/* ---- helpers ---- */

/* The whole file in exactly len bytes on the heap (no NUL), so ASan catches
 * a parser reading past the end. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    size_t cap = 1 << 16, n = 0;
    char *tmp = malloc(cap);
    assert_non_null(tmp);
    size_t got;
    while ((got = fread(tmp + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            tmp = realloc(tmp, cap);
            assert_non_null(tmp);
        }
    }
    fclose(f);
    char *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    memcpy(buf, tmp, n);
    free(tmp);
    *len = n;
    return buf;
}

/* A string literal copied to exactly strlen bytes, for the same reason. */
static char *exact_copy(const char *s, size_t *len)
{
    *len = strlen(s);
    char *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    memcpy(buf, s, *len);
    return buf;
}

static dcem_site *new_site(void)
{
    dcem_site *s = malloc(sizeof *s); /* ~300 KB: not on the stack */
    assert_non_null(s);
    memset(s, 0xA5, sizeof *s); /* garbage: the parser must define every field */
    return s;
}

static int parse_site_str(const char *yaml, dcem_site *s, char *err, size_t errlen)
{
    size_t len;
    char *buf = exact_copy(yaml, &len);
    int rc = dcem_site_parse("site.yaml", buf, len, s, err, errlen);
    free(buf);
    return rc;
}

static int parse_policy_str(const char *yaml, dcem_policy *p, char *err, size_t errlen)
{
    size_t len;
    char *buf = exact_copy(yaml, &len);
    int rc = dcem_policy_parse("policy.yaml", buf, len, p, err, errlen);
    free(buf);
    return rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}


/* ---- shipped files ---- */

static void test_shipped_policy_loads(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/policy/beijing-etown-2024.yaml", configs_dir);
    size_t len;
    char *buf = read_file(path, &len);
    dcem_policy p;
    char err[512] = "";
    int rc = dcem_policy_parse(path, buf, len, &p, err, sizeof err);
    free(buf);
    if (rc) fail_msg("%s", err);

    /* the values the measures fix (docs: shared/policy/etown-2024-8.md) */
    assert_string_equal(p.policy, "beijing-etown-2024");
    assert_string_equal(p.document, "京技管发〔2024〕8号");
    assert_int_equal(p.scope.racks_more_than, 50);
    assert_true(p.scope.rack_power_kw_more_than == 250);
    assert_true(p.pue.limit == 1.4);
    assert_true(p.green.base_percent == 10);
    assert_true(p.green.step_percent == 10);
    assert_int_equal(p.green.step_mode, DCEM_STEP_POINTS);
    assert_int_equal(p.green.base_year, 2024);
    assert_true(p.green.max_percent == 100);
    assert_int_equal(p.pricing.applies_to, DCEM_APPLIES_ALL);
    assert_int_equal(p.pricing.n_tiers, 2);
    assert_true(p.pricing.tiers[0].over_limit_up_to == 1.0);
    assert_true(p.pricing.tiers[0].cny_per_kwh == 0.2);
    assert_true(isnan(p.pricing.tiers[1].over_limit_up_to));
    assert_true(p.pricing.tiers[1].cny_per_kwh == 0.5);
    assert_int_equal(p.cap.n_warning, 2);
    assert_true(p.cap.warning_percent[0] == 80);
    assert_true(p.cap.warning_percent[1] == 90);
    assert_int_equal(p.cap.projection_days, 30);
    assert_true(p.conversion.compute_share_min_percent == 50);
    assert_true(p.data.completeness_min_percent == 90);
    assert_true(p.data.glitch_margin == 1.5);
    assert_true(p.data.gap_intervals == 1.5);
}

/* Every .yaml file in configs/sites loads; there may be none yet. */
static void test_shipped_sites_load(void **state)
{
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/sites", configs_dir);
    DIR *d = opendir(dir);
    if (!d) {
        print_message("no %s: nothing to load\n", dir);
        return;
    }
    dcem_site *s = new_site();
    int loaded = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, ".yaml")) continue;
        char path[4096 + 256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        char *buf = read_file(path, &len);
        char err[512] = "";
        int rc = dcem_site_parse(path, buf, len, s, err, sizeof err);
        free(buf);
        if (rc) {
            closedir(d);
            free(s);
            fail_msg("%s", err);
        }
        assert_true(s->n_meters > 0);
        loaded++;
    }
    closedir(d);
    free(s);
    print_message("%d site file(s) loaded from %s\n", loaded, dir);
}

/* ---- broken documents ---- */

enum { SITE, POLICY };

typedef struct bad_case {
    const char *name;
    int kind; /* SITE: parsed as "site.yaml", POLICY: as "policy.yaml" */
    const char *yaml;
    const char *want; /* the whole error message */
} bad_case;

/* lines 1-3 of most site documents */
#define SITE_HEAD "site: a\nracks: 1\nrack_power_kw: 1\n"
/* two lines: a valid meters list */
#define ONE_METER "meters:\n  - {id: m, role: it, rated_kw: 1}\n"

/* lines 1-9 of most policy documents */
#define POLICY_HEAD                                                                                \
    "policy: p\n"                                                                                  \
    "scope:\n"                                                                                     \
    "  racks_more_than: 50\n"                                                                      \
    "  rack_power_kw_more_than: 250\n"                                                             \
    "pue:\n"                                                                                       \
    "  limit: 1.4\n"                                                                               \
    "green_share:\n"                                                                               \
    "  base_percent: 10\n"                                                                         \
    "  base_year: 2024\n"
/* lines 10-14: valid tiers */
#define TIERS_OK                                                                                   \
    "differential_pricing:\n"                                                                      \
    "  tiers:\n"                                                                                   \
    "    - over_limit_up_to: 1.0\n"                                                                \
    "      cny_per_kwh: 0.2\n"                                                                     \
    "    - cny_per_kwh: 0.5\n"

#define LONG64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

#define SITE_KEYS                                                                                  \
    "site, name, timezone, racks, rack_power_kw, approved_annual_kwh, baseline_annual_kwh, "       \
    "interval_minutes, meters, green, gateways"
#define KEY_A "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define KEY_B "ed25519:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="
#define METER_KEYS                                                                                 \
    "id, role, rated_kw, counter_modulo_kwh, counter_resolution_kwh, ct_ratio, pt_ratio, model, "  \
    "accuracy_class, calibrated_on"
#define POLICY_KEYS                                                                                \
    "policy, name, document, scope, pue, green_share, differential_pricing, cap, conversion, "     \
    "data"

static const bad_case bad_cases[] = {
    /* keys */
    {"unknown top-level key names the valid keys", SITE, SITE_HEAD "colour: blue\n" ONE_METER,
     "site.yaml:4: colour: unknown key (valid: " SITE_KEYS ")"},
    {"unknown key inside a meter", SITE,
     SITE_HEAD "meters:\n  - id: m\n    role: it\n    rated_kw: 1\n    phase: L1\n",
     "site.yaml:8: meters[0].phase: unknown key (valid: " METER_KEYS ")"},
    /* gateways and their keys */
    {"a gateway twice", SITE,
     SITE_HEAD ONE_METER "gateways:\n  - {id: g, keys: [" KEY_A "]}\n  - {id: g}\n",
     "site.yaml:8: gateways.id: 'g' already declared at line 7"},
    {"a key that is no key", SITE,
     SITE_HEAD ONE_METER "gateways:\n  - id: g\n    keys: [\"ed25519:AAAA\"]\n",
     "site.yaml:8: gateways[0].keys: not an Ed25519 public key: write \"ed25519:\" and the 44 "
     "base64 characters of its 32 bytes (dcem-agent --keygen prints it)"},
    {"a key twice", SITE,
     SITE_HEAD ONE_METER "gateways:\n  - id: g\n    keys: [" KEY_A ", " KEY_A "]\n",
     "site.yaml:8: gateways[0].keys: key 2 is key 1 again"},
    {"five keys", SITE,
     SITE_HEAD ONE_METER "gateways:\n  - id: g\n    keys: [" KEY_A ", " KEY_B ", " KEY_A
     ", " KEY_B ", " KEY_A "]\n",
     "site.yaml:8: gateways[0].keys: at most 4 items allowed, got 5"},
    {"duplicate top-level key", SITE, "site: a\nracks: 1\nracks: 2\nrack_power_kw: 1\n" ONE_METER,
     "site.yaml:3: racks: duplicate key"},
    {"duplicate key inside a meter", SITE,
     SITE_HEAD "meters:\n  - id: m\n    role: it\n    role: facility\n    rated_kw: 1\n",
     "site.yaml:7: meters[0].role: duplicate key"},
    {"missing site", SITE, "racks: 1\nrack_power_kw: 1\n" ONE_METER,
     "site.yaml:1: site: missing required key 'site'"},
    {"missing meters", SITE, SITE_HEAD, "site.yaml:1: meters: missing required key 'meters'"},
    {"missing a meter's role", SITE,
     SITE_HEAD "meters:\n  - {id: a, role: it, rated_kw: 1}\n  - id: b\n    rated_kw: 1\n",
     "site.yaml:6: meters[1]: missing required key 'role'"},

    /* types and ranges */
    {"racks: many is not an integer", SITE, "site: a\nracks: many\nrack_power_kw: 1\n" ONE_METER,
     "site.yaml:2: racks: expected an integer, got 'many'"},
    {"racks: 1.5 is not an integer", SITE, "site: a\nracks: 1.5\nrack_power_kw: 1\n" ONE_METER,
     "site.yaml:2: racks: expected an integer, got '1.5'"},
    {"rack_power_kw: lots is not a number", SITE,
     "site: a\nracks: 1\nrack_power_kw: lots\n" ONE_METER,
     "site.yaml:3: rack_power_kw: expected a number, got 'lots'"},
    {"racks: -1 is below 0", SITE, "site: a\nracks: -1\nrack_power_kw: 1\n" ONE_METER,
     "site.yaml:2: racks: must be >= 0, got -1"},
    {"rated_kw: 0 must be > 0", SITE,
     SITE_HEAD "meters:\n  - id: m\n    role: it\n    rated_kw: 0\n",
     "site.yaml:7: meters[0].rated_kw: must be > 0, got 0"},
    {"approved_annual_kwh: 0 must be > 0", SITE, SITE_HEAD "approved_annual_kwh: 0\n" ONE_METER,
     "site.yaml:4: approved_annual_kwh: must be > 0, got 0"},
    {"interval_minutes: 0 is below 1", SITE, SITE_HEAD "interval_minutes: 0\n" ONE_METER,
     "site.yaml:4: interval_minutes: must be >= 1, got 0"},
    {"interval_minutes: 90 is above 60", SITE, SITE_HEAD "interval_minutes: 90\n" ONE_METER,
     "site.yaml:4: interval_minutes: must be <= 60, got 90"},
    {"racks given a mapping", SITE, "site: a\nracks: {n: 1}\nrack_power_kw: 1\n" ONE_METER,
     "site.yaml:2: racks: expected a single value"},

    /* enums, dates, months */
    {"role: lighting lists the valid roles", SITE,
     SITE_HEAD "meters:\n  - id: m\n    role: lighting\n    rated_kw: 1\n",
     "site.yaml:6: meters[0].role: 'lighting' is not one of: facility, it, green_onsite, "
     "compute, cooling, other"},
    {"ct_ratio 0", SITE, SITE_HEAD "meters:\n  - id: m\n    role: it\n    rated_kw: 1\n    ct_ratio: 0\n",
     "site.yaml:8: meters[0].ct_ratio: must be > 0, got 0"},
    {"pt_ratio absurd", SITE,
     SITE_HEAD "meters:\n  - id: m\n    role: it\n    rated_kw: 1\n    pt_ratio: 200000\n",
     "site.yaml:8: meters[0].pt_ratio: must be <= 100000, got 200000"},
    {"calibrated_on: 2024-02-30 is not a date", SITE,
     SITE_HEAD "meters:\n  - id: m\n    role: it\n    rated_kw: 1\n    calibrated_on: 2024-02-30\n",
     "site.yaml:8: meters[0].calibrated_on: expected a date YYYY-MM-DD, got '2024-02-30'"},
    {"calibrated_on: 2023-02-29 (not a leap year)", SITE,
     SITE_HEAD "meters:\n  - id: m\n    role: it\n    rated_kw: 1\n    calibrated_on: 2023-02-29\n",
     "site.yaml:8: meters[0].calibrated_on: expected a date YYYY-MM-DD, got '2023-02-29'"},
    {"green month: 2025-13", SITE,
     SITE_HEAD ONE_METER "green:\n  - month: 2025-13\n    kind: contract\n    kwh: 100\n",
     "site.yaml:7: green[0].month: expected a month YYYY-MM, got '2025-13'"},
    {"green month: 2025-1 (one digit)", SITE,
     SITE_HEAD ONE_METER "green:\n  - {month: 2025-1, kind: contract, kwh: 100}\n",
     "site.yaml:7: green[0].month: expected a month YYYY-MM, got '2025-1'"},
    {"green kind: voucher", SITE,
     SITE_HEAD ONE_METER "green:\n  - {month: 2025-01, kind: voucher, kwh: 100}\n",
     "site.yaml:7: green[0].kind: 'voucher' is not one of: contract, certificate"},

    /* cross-field rules */
    {"green entry with both kwh and certificates", SITE,
     SITE_HEAD ONE_METER "green:\n"
                         "  - {month: 2025-01, kind: contract, kwh: 5}\n"
                         "  - month: 2025-02\n"
                         "    kind: certificate\n"
                         "    kwh: 100\n"
                         "    certificates: 1\n",
     "site.yaml:8: green: give exactly one of 'kwh' or 'certificates'"},
    {"green entry with neither kwh nor certificates", SITE,
     SITE_HEAD ONE_METER "green:\n  - month: 2025-01\n    kind: contract\n",
     "site.yaml:7: green: give exactly one of 'kwh' or 'certificates'"},
    {"duplicate meter id points at the earlier line", SITE,
     SITE_HEAD "meters:\n"
               "  - {id: m, role: facility, rated_kw: 1}\n"
               "  - {id: x, role: it, rated_kw: 1}\n"
               "  - {id: m, role: it, rated_kw: 1}\n",
     "site.yaml:7: meters.id: 'm' already declared at line 5"},
    {"meter id with a slash", SITE, SITE_HEAD "meters:\n  - {id: m/1, role: it, rated_kw: 1}\n",
     "site.yaml:5: meters[0].id: 'm/1': use letters, digits, '-', '_' or '.'"},
    /* the line of the offending key, not line 1 */
    {"interval_minutes: 7 does not divide an hour", SITE,
     SITE_HEAD "interval_minutes: 7\n" ONE_METER,
     "site.yaml:4: interval_minutes: 7 does not divide an hour (use 1-6, 10, 12, 15, 20, 30 or "
     "60)"},
    {"site id with a space (on line 2)", SITE, "racks: 1\nsite: a b\nrack_power_kw: 1\n" ONE_METER,
     "site.yaml:2: site: 'a b': use letters, digits, '-', '_' or '.'"},

    /* document shape */
    /* libyaml's own wording after "YAML syntax: "; the line is the point */
    {"YAML syntax error: a key indented under a scalar", SITE,
     "site: a\nracks: 1\n  bad: 2\nrack_power_kw: 1\n" ONE_METER,
     "site.yaml:3: (top): YAML syntax: mapping values are not allowed in this context"},
    {"YAML syntax error: a tab in the indentation", SITE,
     "site: a\n\tracks: 1\nrack_power_kw: 1\n" ONE_METER,
     "site.yaml:2: (top): YAML syntax: found a tab character that violates indentation"},
    {"empty document", SITE, "", "site.yaml:1: (top): empty document"},
    {"comment-only document", SITE, "# nothing here\n", "site.yaml:1: (top): empty document"},
    {"a list at the top level", SITE, "- site: a\n- racks: 1\n",
     "site.yaml:1: (top): expected a mapping of keys to values"},
    {"a list where a meter map is expected", SITE, SITE_HEAD "meters:\n  - [m, it, 1]\n",
     "site.yaml:5: meters[0]: expected a mapping of keys to values"},
    {"a scalar where the meters list is expected", SITE, SITE_HEAD "meters: incomer\n",
     "site.yaml:4: meters: expected a list"},
    {"site id of 64 characters", SITE, "site: " LONG64 "\nracks: 1\nrack_power_kw: 1\n" ONE_METER,
     "site.yaml:1: site: longer than 63 characters"},
    {"meter model of 96 characters", SITE,
     SITE_HEAD "meters:\n  - id: m\n    role: it\n    rated_kw: 1\n"
               "    model: " LONG64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
     "site.yaml:8: meters[0].model: longer than 95 characters"},

    /* policy */
    {"policy: unknown top-level key", POLICY, POLICY_HEAD TIERS_OK "version: 2\n",
     "policy.yaml:15: version: unknown key (valid: " POLICY_KEYS ")"},
    {"policy: missing pue.limit", POLICY,
     "policy: p\nscope:\n  racks_more_than: 50\n  rack_power_kw_more_than: 250\npue: {}\n"
     "green_share:\n  base_percent: 10\n  base_year: 2024\n" TIERS_OK,
     "policy.yaml:5: pue: missing required key 'limit'"},
    {"policy: a list where the pue map is expected", POLICY,
     "policy: p\nscope:\n  racks_more_than: 50\n  rack_power_kw_more_than: 250\npue: [1.4]\n"
     "green_share:\n  base_percent: 10\n  base_year: 2024\n" TIERS_OK,
     "policy.yaml:5: pue: expected a mapping of keys to values"},
    {"policy: step_mode: linear", POLICY, POLICY_HEAD "  step_mode: linear\n" TIERS_OK,
     "policy.yaml:10: green_share.step_mode: 'linear' is not one of: points, relative"},
    {"policy: id of 64 characters", POLICY,
     "policy: " LONG64 "\nscope:\n  racks_more_than: 50\n  rack_power_kw_more_than: 250\n"
     "pue:\n  limit: 1.4\ngreen_share:\n  base_percent: 10\n  base_year: 2024\n" TIERS_OK,
     "policy.yaml:1: policy: longer than 63 characters"},
    {"policy: over_limit_up_to: 0 must be > 0", POLICY,
     POLICY_HEAD "differential_pricing:\n  tiers:\n    - {over_limit_up_to: 0, cny_per_kwh: 0.2}\n"
                 "    - cny_per_kwh: 0.5\n",
     "policy.yaml:12: differential_pricing.tiers[0].over_limit_up_to: must be > 0, got 0"},
    {"policy: a middle tier without an upper bound", POLICY,
     POLICY_HEAD "differential_pricing:\n"
                 "  tiers:\n"
                 "    - over_limit_up_to: 0.5\n"
                 "      cny_per_kwh: 0.1\n"
                 "    - cny_per_kwh: 0.2\n"
                 "    - cny_per_kwh: 0.5\n",
     "policy.yaml:14: differential_pricing.tiers.over_limit_up_to: only the last tier may omit "
     "its upper bound"},
    {"policy: the last tier with an upper bound", POLICY,
     POLICY_HEAD "differential_pricing:\n"
                 "  tiers:\n"
                 "    - over_limit_up_to: 1.0\n"
                 "      cny_per_kwh: 0.2\n"
                 "    - over_limit_up_to: 2.0\n"
                 "      cny_per_kwh: 0.5\n",
     "policy.yaml:14: differential_pricing.tiers.over_limit_up_to: the last tier must have no "
     "upper bound"},
    {"policy: descending tiers", POLICY,
     POLICY_HEAD "differential_pricing:\n"
                 "  tiers:\n"
                 "    - {over_limit_up_to: 1.0, cny_per_kwh: 0.2}\n"
                 "    - {over_limit_up_to: 0.5, cny_per_kwh: 0.3}\n"
                 "    - {cny_per_kwh: 0.5}\n",
     "policy.yaml:13: differential_pricing.tiers.over_limit_up_to: tiers must be in ascending "
     "order"},
    {"policy: equal tiers", POLICY,
     POLICY_HEAD "differential_pricing:\n"
                 "  tiers:\n"
                 "    - {over_limit_up_to: 1.0, cny_per_kwh: 0.2}\n"
                 "    - {over_limit_up_to: 1.0, cny_per_kwh: 0.3}\n"
                 "    - {cny_per_kwh: 0.5}\n",
     "policy.yaml:13: differential_pricing.tiers.over_limit_up_to: tiers must be in ascending "
     "order"},
    /* the line of the offending key, not line 1 */
    {"policy: warning_percent descending", POLICY,
     POLICY_HEAD TIERS_OK "cap:\n  warning_percent: [90, 80]\n",
     "policy.yaml:16: cap.warning_percent: levels must be ascending percentages in (0, 100]"},
    {"policy: warning_percent above 100", POLICY,
     POLICY_HEAD TIERS_OK "cap:\n  warning_percent: [80, 101]\n",
     "policy.yaml:16: cap.warning_percent: levels must be ascending percentages in (0, 100]"},
};

static void test_bad_document(void **state)
{
    const bad_case *c = *state;
    char err[1024] = "";
    int rc;
    if (c->kind == SITE) {
        dcem_site *s = new_site();
        rc = parse_site_str(c->yaml, s, err, sizeof err);
        free(s);
    } else {
        dcem_policy p;
        rc = parse_policy_str(c->yaml, &p, err, sizeof err);
    }
    assert_string_equal(err, c->want);
    assert_int_equal(rc, DCEM_ECONFIG);
}

/* A message longer than the caller's buffer is cut, still NUL-terminated. */
static void test_error_truncated(void **state)
{
    (void)state;
    char err[16];
    memset(err, 'x', sizeof err);
    dcem_site *s = new_site();
    int rc = parse_site_str(SITE_HEAD "colour: blue\n" ONE_METER, s, err, sizeof err);
    free(s);
    assert_int_equal(rc, DCEM_ECONFIG);
    assert_string_equal(err, "site.yaml:4: co");
}

/* ---- documents that load ---- */

static void test_site_defaults(void **state)
{
    (void)state;
    dcem_site *s = new_site();
    char err[512] = "";
    int rc = parse_site_str(SITE_HEAD ONE_METER, s, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(s->site, "a");
    assert_string_equal(s->name, "");
    assert_string_equal(s->timezone, "Asia/Shanghai");
    assert_int_equal(s->racks, 1);
    assert_true(s->rack_power_kw == 1);
    assert_true(isnan(s->approved_annual_kwh));
    assert_true(isnan(s->baseline_annual_kwh));
    assert_int_equal(s->interval_minutes, 15);
    assert_int_equal(s->n_meters, 1);
    assert_int_equal(s->n_green, 0);
    const dcem_meter *m = &s->meters[0];
    assert_string_equal(m->id, "m");
    assert_int_equal(m->role, DCEM_ROLE_IT);
    assert_true(m->rated_kw == 1);
    assert_true(isnan(m->counter_modulo_kwh));
    assert_true(m->counter_resolution_kwh == 0.01);
    assert_string_equal(m->model, "");
    assert_string_equal(m->accuracy_class, "");
    assert_string_equal(m->calibrated_on, "");
    assert_int_equal(m->line, 5);
    free(s);
}

static const char full_site[] =
    "site: etown-dc1\n"                                             /* 1 */
    "name: E-Town DC 1\n"                                           /* 2 */
    "timezone: UTC\n"                                               /* 3 */
    "racks: 120\n"                                                  /* 4 */
    "rack_power_kw: 600.5\n"                                        /* 5 */
    "approved_annual_kwh: 8000000\n"                                /* 6 */
    "baseline_annual_kwh: 7500000\n"                                /* 7 */
    "interval_minutes: 5\n"                                         /* 8 */
    "meters:\n"                                                     /* 9 */
    "  - id: incomer-1\n"                                           /* 10 */
    "    role: facility\n"                                          /* 11 */
    "    rated_kw: 2000\n"                                          /* 12 */
    "    counter_modulo_kwh: 99999999\n"                            /* 13 */
    "    counter_resolution_kwh: 0.1\n"                             /* 14 */
    "    model: Acrel DTSD1352\n"                                   /* 15 */
    "    accuracy_class: '0.5S'\n"                                  /* 16 */
    "    calibrated_on: 2024-02-29\n"                               /* 17 */
    "  - {id: ups_1.out, role: it, rated_kw: 1200}\n"               /* 18 */
    "  - {id: pv, role: green_onsite, rated_kw: 300}\n"             /* 19 */
    "  - {id: gpu, role: compute, rated_kw: 800}\n"                 /* 20 */
    "  - {id: chiller, role: cooling, rated_kw: 500}\n"             /* 21 */
    "  - {id: lights, role: other, rated_kw: 20}\n"                 /* 22 */
    "green:\n"                                                      /* 23 */
    "  - {month: 2025-01, kind: certificate, certificates: 12.5}\n" /* 24 */
    "  - {month: 2025-01, kind: contract, kwh: 300}\n"              /* 25 */
    "  - {month: 2025-02, kind: contract, kwh: 0}\n"                /* 26 */
    "  - {month: 2025-12, kind: certificate, certificates: 1}\n";   /* 27 */

static void test_site_explicit(void **state)
{
    (void)state;
    dcem_site *s = new_site();
    char err[512] = "";
    int rc = parse_site_str(full_site, s, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(s->site, "etown-dc1");
    assert_string_equal(s->name, "E-Town DC 1");
    assert_string_equal(s->timezone, "UTC");
    assert_int_equal(s->racks, 120);
    assert_true(s->rack_power_kw == 600.5);
    assert_true(s->approved_annual_kwh == 8000000);
    assert_true(s->baseline_annual_kwh == 7500000);
    assert_int_equal(s->interval_minutes, 5);
    assert_int_equal(s->n_meters, 6);
    const dcem_meter *m = &s->meters[0];
    assert_string_equal(m->id, "incomer-1");
    assert_int_equal(m->role, DCEM_ROLE_FACILITY);
    assert_true(m->counter_modulo_kwh == 99999999);
    assert_true(m->counter_resolution_kwh == 0.1);
    assert_string_equal(m->model, "Acrel DTSD1352");
    assert_string_equal(m->accuracy_class, "0.5S");
    assert_string_equal(m->calibrated_on, "2024-02-29");
    assert_int_equal(m->line, 10);
    static const int roles[] = {DCEM_ROLE_FACILITY, DCEM_ROLE_IT,      DCEM_ROLE_GREEN_ONSITE,
                                DCEM_ROLE_COMPUTE,  DCEM_ROLE_COOLING, DCEM_ROLE_OTHER};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(s->meters[i].role, roles[i]);
        assert_true(s->meters[i].counter_resolution_kwh == (i ? 0.01 : 0.1));
    }
    assert_int_equal(s->meters[5].line, 22);
    assert_int_equal(dcem_site_find_meter(s, "ups_1.out", 9), 1);
    assert_int_equal(dcem_site_find_meter(s, "ups_1.outX", 9), 1); /* idlen bounds the id */
    assert_int_equal(dcem_site_find_meter(s, "ups_1", 5), -1);
    assert_int_equal(dcem_site_find_meter(s, "lights", 6), 5);
    assert_int_equal(dcem_site_find_meter(s, "nope", 4), -1);

    assert_int_equal(s->n_green, 4);
    assert_int_equal(s->green[0].month, 2025 * 12 + 0);
    assert_int_equal(s->green[0].kind, DCEM_GREEN_CERTIFICATE);
    assert_true(isnan(s->green[0].kwh));
    assert_true(s->green[0].certificates == 12.5);
    assert_int_equal(s->green[0].line, 24);
    assert_int_equal(s->green[1].kind, DCEM_GREEN_CONTRACT);
    assert_true(isnan(s->green[1].certificates));
    assert_int_equal(s->green[3].month, 2025 * 12 + 11);
    free(s);
}

/* 1 certificate (绿证) = 1000 kWh; contracts count their kWh. */
typedef struct green_case {
    const char *name;
    int month;
    double want_kwh;
} green_case;

static const green_case green_cases[] = {
    {"2025-01: 12.5 certificates + 300 kWh", 2025 * 12 + 0, 12.5 * 1000 + 300},
    {"2025-02: a 0 kWh contract", 2025 * 12 + 1, 0},
    {"2025-03: no entry", 2025 * 12 + 2, 0},
    {"2025-12: 1 certificate", 2025 * 12 + 11, 1000},
    {"2024-12: no entry (year boundary)", 2024 * 12 + 11, 0},
};

static void test_green_month(void **state)
{
    const green_case *c = *state;
    dcem_site *s = new_site();
    char err[512] = "";
    int rc = parse_site_str(full_site, s, err, sizeof err);
    if (rc) fail_msg("%s", err);
    double got = dcem_site_green_month_kwh(s, c->month);
    free(s);
    if (got != c->want_kwh) fail_msg("got %.17g kWh, want %.17g", got, c->want_kwh);
}

static void test_certificate_constant(void **state)
{
    (void)state;
    assert_true(DCEM_KWH_PER_CERTIFICATE == 1000.0);
}

typedef struct role_case {
    const char *name;
    int role;
    const char *want;
} role_case;

static const role_case role_cases[] = {
    {"facility", DCEM_ROLE_FACILITY, "facility"},
    {"it", DCEM_ROLE_IT, "it"},
    {"green_onsite", DCEM_ROLE_GREEN_ONSITE, "green_onsite"},
    {"compute", DCEM_ROLE_COMPUTE, "compute"},
    {"cooling", DCEM_ROLE_COOLING, "cooling"},
    {"other", DCEM_ROLE_OTHER, "other"},
    {"DCEM_ROLE_COUNT is unknown", DCEM_ROLE_COUNT, "unknown"},
    {"-1 is unknown", -1, "unknown"},
};

static void test_role_name(void **state)
{
    const role_case *c = *state;
    assert_string_equal(dcem_role_name(c->role), c->want);
}

/* A policy with only the required keys gets the documented defaults. */
static void test_policy_defaults(void **state)
{
    (void)state;
    dcem_policy p;
    memset(&p, 0xA5, sizeof p);
    char err[512] = "";
    int rc = parse_policy_str(POLICY_HEAD TIERS_OK, &p, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(p.policy, "p");
    assert_string_equal(p.name, "");
    assert_string_equal(p.document, "");
    assert_true(p.green.step_percent == 0);
    assert_int_equal(p.green.step_mode, DCEM_STEP_POINTS);
    assert_true(p.green.max_percent == 100);
    assert_int_equal(p.pricing.applies_to, DCEM_APPLIES_ALL);
    assert_int_equal(p.pricing.n_tiers, 2);
    assert_int_equal(p.pricing.tiers[0].line, 12);
    assert_int_equal(p.pricing.tiers[1].line, 14);
    assert_int_equal(p.cap.n_warning, 0);
    assert_int_equal(p.cap.projection_days, 30);
    assert_true(p.conversion.compute_share_min_percent == 50);
    assert_true(p.data.completeness_min_percent == 90);
    assert_true(p.data.glitch_margin == 1.5);
    assert_true(p.data.gap_intervals == 1.5);
}

static void test_policy_relative_excess(void **state)
{
    (void)state;
    dcem_policy p;
    char err[512] = "";
    int rc = parse_policy_str(POLICY_HEAD "  step_mode: relative\n"
                                          "differential_pricing:\n"
                                          "  applies_to: excess\n"
                                          "  tiers: [{cny_per_kwh: 0.3}]\n"
                                          "cap:\n"
                                          "  warning_percent: [50, 75, 100]\n"
                                          "  projection_days: 7\n",
                              &p, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(p.green.step_mode, DCEM_STEP_RELATIVE);
    assert_int_equal(p.pricing.applies_to, DCEM_APPLIES_EXCESS);
    assert_int_equal(p.pricing.n_tiers, 1);
    assert_true(isnan(p.pricing.tiers[0].over_limit_up_to));
    assert_int_equal(p.cap.n_warning, 3);
    assert_true(p.cap.warning_percent[2] == 100);
    assert_int_equal(p.cap.projection_days, 7);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CONFIGS_DIR\n", argv[0]);
        return 2;
    }
    configs_dir = argv[1];
    const struct CMUnitTest shipped[] = {
        cmocka_unit_test(test_shipped_policy_loads),
        cmocka_unit_test(test_shipped_sites_load),
    };
    const struct CMUnitTest loads[] = {
        cmocka_unit_test(test_site_defaults),          cmocka_unit_test(test_site_explicit),
        cmocka_unit_test(test_certificate_constant),   cmocka_unit_test(test_policy_defaults),
        cmocka_unit_test(test_policy_relative_excess), cmocka_unit_test(test_error_truncated),
    };
    int failed = cmocka_run_group_tests_name("shipped configs", shipped, NULL, NULL);
    failed += cmocka_run_group_tests_name("documents that load", loads, NULL, NULL);
    failed += RUN_TABLE("broken documents", test_bad_document, bad_cases);
    failed += RUN_TABLE("green kWh per month", test_green_month, green_cases);
    failed += RUN_TABLE("role names", test_role_name, role_cases);
    return failed ? 1 : 0;
}
