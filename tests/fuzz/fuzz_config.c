/* fuzz_config.c — the YAML config layer (common/cfg.c) and the parsers
 * built on it, on hostile bytes: a site ledger (dcem_site_parse), a table
 * with every field type the layer knows, a policy file and a meter profile.
 * The first input byte picks which; the rest is the file. Every parser takes
 * bytes (no file is opened). A parse that succeeds must leave a struct the
 * rest of the code can trust: checked below for what callers rely on. */
#include "fuzz.h"

#include "cfg.h"
#include "errors.h"
#include "policy.h"
#include "profile.h"
#include "site.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum { K_SITE, K_TABLE, K_POLICY, K_PROFILE, K_COUNT };

/* Every dcem_cfg_type, nested maps, lists of maps and of scalars, ranges,
 * exclusive minimums, required keys and a check: the generic layer as no
 * single real config uses it. */
typedef struct item {
    char id[DCEM_ID_MAX];
    double weight;
    int line;
} item;

typedef struct nested {
    long long depth;
    struct {
        double x;
    } inner;
    int line;
} nested;

typedef struct every {
    long long count;
    double ratio;
    char label[16];
    int enabled;
    int mode;
    char since[11];
    int month;
    nested nested;
    item items[4];
    size_t n_items;
    double levels[3];
    size_t n_levels;
    char names[2][8];
    size_t n_names;
    int line;
} every;

static const char *const modes[] = {"off", "slow", "fast", NULL};

#define E(f) offsetof(every, f)
static const dcem_cfg_field inner_fields[] = {
    {.key = "x", .type = DCEM_CFG_DOUBLE, .offset = 0, .min = -1, .max = 1, .def = 0},
    {.key = NULL},
};
static const dcem_cfg_field nested_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = offsetof(nested, line)},
    {.key = "depth", .type = DCEM_CFG_INT, .offset = 0, .min = NAN, .max = NAN, .def = 3},
    {.key = "inner", .type = DCEM_CFG_MAP,
     .offset = offsetof(nested, inner), .sub = inner_fields},
    {.key = NULL},
};
static const dcem_cfg_field item_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = offsetof(item, line)},
    {.key = "id", .type = DCEM_CFG_STRING, .offset = offsetof(item, id), .size = DCEM_ID_MAX,
     .flags = DCEM_CFG_REQUIRED, .check = dcem_cfg_check_id},
    {.key = "weight", .type = DCEM_CFG_DOUBLE, .offset = offsetof(item, weight),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = 1e9, .def = 1},
    {.key = NULL},
};
static const dcem_cfg_field every_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = E(line)},
    {.key = "count", .type = DCEM_CFG_INT, .offset = E(count), .flags = DCEM_CFG_REQUIRED,
     .min = -5, .max = 1e18, .def = NAN},
    {.key = "ratio", .type = DCEM_CFG_DOUBLE, .offset = E(ratio), .flags = DCEM_CFG_MIN_EXCL,
     .min = 0, .max = NAN, .def = NAN},
    {.key = "label", .type = DCEM_CFG_STRING, .offset = E(label), .size = 16, .def_str = "none"},
    {.key = "enabled", .type = DCEM_CFG_BOOL, .offset = E(enabled), .def = 1},
    {.key = "mode", .type = DCEM_CFG_ENUM, .offset = E(mode), .names = modes, .def = 1},
    {.key = "since", .type = DCEM_CFG_DATE, .offset = E(since), .def_str = "2024-01-01"},
    {.key = "month", .type = DCEM_CFG_MONTH, .offset = E(month)},
    {.key = "nested", .type = DCEM_CFG_MAP, .offset = E(nested), .sub = nested_fields},
    {.key = "items", .type = DCEM_CFG_LIST, .offset = E(items), .size = sizeof(item), .min = 1,
     .max = 4, .sub = item_fields, .count_offset = E(n_items)},
    {.key = "levels", .type = DCEM_CFG_LIST, .offset = E(levels), .size = sizeof(double),
     .min = 0, .max = 3, .item = DCEM_CFG_DOUBLE, .count_offset = E(n_levels)},
    {.key = "names", .type = DCEM_CFG_LIST, .offset = E(names), .size = 8, .min = NAN,
     .max = 2, .item = DCEM_CFG_STRING, .count_offset = E(n_names)},
    {.key = NULL},
};

static void site(const char *buf, size_t len, char *err, size_t errlen)
{
    static dcem_site *s; /* about 200 kB: once */
    if (!s) FUZZ_CHECK((s = malloc(sizeof *s)) != NULL);
    if (dcem_site_parse("fuzz.yaml", buf, len, s, err, errlen)) return;
    FUZZ_CHECK(s->n_meters <= DCEM_SITE_MAX_METERS && s->n_green <= DCEM_SITE_MAX_GREEN);
    FUZZ_CHECK(s->interval_minutes >= 1 && 60 % s->interval_minutes == 0);
    for (size_t i = 0; i < s->n_meters; i++) {
        const dcem_meter *m = &s->meters[i];
        FUZZ_CHECK(dcem_id_valid(m->id, strlen(m->id)));
        FUZZ_CHECK(m->role >= 0 && m->role < DCEM_ROLE_COUNT);
        /* ids are unique, and the sorted index finds each one */
        FUZZ_CHECK(dcem_site_find_meter(s, m->id, strlen(m->id)) == (int)i);
    }
    for (size_t i = 0; i < s->n_green; i++) (void)dcem_site_green_month_kwh(s, s->green[i].month);
}

static void table(const char *buf, size_t len, char *err, size_t errlen)
{
    every e;
    int rc = dcem_cfg_parse("fuzz.yaml", buf, len, every_fields, &e, err, errlen);
    FUZZ_CHECK(rc == 0 || rc == DCEM_ECONFIG || rc == DCEM_ENOMEM);
    /* defaults applied, so the struct is defined even on error */
    FUZZ_CHECK(memchr(e.label, '\0', sizeof e.label) && memchr(e.since, '\0', sizeof e.since));
    FUZZ_CHECK(e.mode >= 0 && e.mode <= 2 && (e.enabled == 0 || e.enabled == 1));
    if (rc) {
        FUZZ_CHECK(rc == DCEM_ENOMEM || *err);
        return;
    }
    FUZZ_CHECK(e.count >= -5 && e.n_items <= 4); /* items: min 1 when given */
    FUZZ_CHECK(e.n_levels <= 3 && e.n_names <= 2);
    FUZZ_CHECK(isnan(e.ratio) || e.ratio > 0);
    FUZZ_CHECK(e.nested.inner.x >= -1 && e.nested.inner.x <= 1);
    for (size_t i = 0; i < e.n_items; i++) {
        FUZZ_CHECK(dcem_id_valid(e.items[i].id, strlen(e.items[i].id)));
        FUZZ_CHECK(e.items[i].weight > 0 && e.items[i].weight <= 1e9);
    }
    for (size_t i = 0; i < e.n_names; i++) FUZZ_CHECK(memchr(e.names[i], '\0', 8));
}

static void policy(const char *buf, size_t len, char *err, size_t errlen)
{
    dcem_policy p;
    if (dcem_policy_parse("fuzz.yaml", buf, len, &p, err, errlen)) return;
    FUZZ_CHECK(p.pricing.n_tiers >= 1 && p.pricing.n_tiers <= DCEM_POLICY_MAX_TIERS);
    FUZZ_CHECK(p.cap.n_warning <= DCEM_POLICY_MAX_LEVELS);
}

static void profile(const char *buf, size_t len, char *err, size_t errlen)
{
    static dcem_profile *p;
    if (!p) FUZZ_CHECK((p = malloc(sizeof *p)) != NULL);
    if (dcem_profile_parse("fuzz.yaml", buf, len, p, err, errlen)) return;
    /* a profile that loads can be planned: the agent does so at once */
    dcem_read_req reqs[DCEM_PROFILE_MAX_REGS];
    int n = dcem_profile_plan(p, 0, reqs, DCEM_PROFILE_MAX_REGS);
    FUZZ_CHECK(n >= 0 && n <= DCEM_PROFILE_MAX_REGS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t len = size - 1;
    char *buf = malloc(len ? len : 1); /* exactly the file's bytes: no NUL after them */
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data + 1, len);
    char err[512] = "";
    switch (data[0] % K_COUNT) {
    case K_SITE: site(buf, len, err, sizeof err); break;
    case K_TABLE: table(buf, len, err, sizeof err); break;
    case K_POLICY: policy(buf, len, err, sizeof err); break;
    case K_PROFILE: profile(buf, len, err, sizeof err); break;
    }
    free(buf);
    return 0;
}
