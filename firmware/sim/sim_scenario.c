#include "sim_scenario.h"
#include "cfg.h"
#include "errors.h"
#include "parse.h"
#include "sim_model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const parity_names[] = {"N", "E", "O", NULL};
const char *const sim_holes_names[] = {"serve", "refuse", NULL};

static int check_id(const void *value, size_t count, char *why, size_t len)
{
    (void)count;
    /* ids travel in MQTT topics and file names (as in site ledgers) */
    for (const char *p = value; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.')) {
            snprintf(why, len, "'%s': use letters, digits, '-', '_' or '.'", (const char *)value);
            return 1;
        }
    return 0;
}

static int check_profile(const void *value, size_t count, char *why, size_t len)
{
    (void)count;
    /* a file name under the profiles directory, never a path */
    const char *s = value;
    if (strchr(s, '/') || s[0] == '.' || check_id(value, 1, why, len)) {
        snprintf(why, len, "'%s': a model name as in configs/meters/<name>.yaml", s);
        return 1;
    }
    return 0;
}

static int check_hostport(const void *value, size_t count, char *why, size_t len)
{
    (void)count;
    char host[SIM_HOST_MAX];
    int port;
    const char *s = value;
    if (!*s || !sim_parse_hostport(s, host, sizeof host, &port)) return 0;
    snprintf(why, len, "'%s': expected IPv4 host:port, e.g. 127.0.0.1:1502", s);
    return 1;
}

static int check_start(const void *value, size_t count, char *why, size_t len)
{
    (void)count;
    const char *s = value;
    int64_t t;
    if (!strcmp(s, "now") || !dcem_parse_time(s, strlen(s), &t)) return 0;
    snprintf(why, len, "'%s': expected 'now' or an RFC 3339 time", s);
    return 1;
}

/* refuse: register names, each once (whether the profile has them is
 * sim_meter_init's check: profiles are not loaded here) */
static int check_refuse(const void *value, size_t count, char *why, size_t len)
{
    const char(*names)[DCEM_REG_NAME_MAX] = value;
    for (size_t i = 0; i < count; i++) {
        if (!names[i][0]) {
            snprintf(why, len, "item %zu: empty register name", i);
            return 1;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(names[i], names[j])) {
                snprintf(why, len, "'%s' listed twice", names[i]);
                return 1;
            }
    }
    return 0;
}

#define F(f) offsetof(sim_fault, f)
static const dcem_cfg_field fault_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = F(line)},
    {.key = "kind", .type = DCEM_CFG_ENUM, .offset = F(kind), .flags = DCEM_CFG_REQUIRED,
     .names = sim_fault_names, .def = NAN},
    {.key = "from_s", .type = DCEM_CFG_DOUBLE, .offset = F(from_s), .min = 0, .max = 1e10,
     .def = NAN, .help = "window start, simulated seconds after the scenario start"},
    {.key = "until_s", .type = DCEM_CFG_DOUBLE, .offset = F(until_s), .min = 0, .max = 1e10,
     .def = NAN, .help = "window end (exclusive); absent: open"},
    {.key = "probability", .type = DCEM_CFG_DOUBLE, .offset = F(probability), .min = 0, .max = 1,
     .def = NAN, .help = "chance per request inside the window; absent: 1"},
    {.key = "at_s", .type = DCEM_CFG_DOUBLE, .offset = F(at_s), .min = 0, .max = 1e10,
     .def = NAN},
    {.key = "after_s", .type = DCEM_CFG_DOUBLE, .offset = F(after_s),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = 1e10, .def = NAN},
    {.key = "value_kwh", .type = DCEM_CFG_DOUBLE, .offset = F(value_kwh), .min = 0, .max = 1e15,
     .def = NAN},
    {.key = "spike_kwh", .type = DCEM_CFG_DOUBLE, .offset = F(spike_kwh),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = 1e15, .def = NAN},
    {.key = "code", .type = DCEM_CFG_INT, .offset = F(code), .min = 1, .max = 255, .def = -1,
     .help = "exception code: 1 function, 2 address, 3 value, 4 server failure, 6 busy"},
    {.key = "delay_ms", .type = DCEM_CFG_INT, .offset = F(delay_ms), .min = 0, .max = 600000,
     .def = -1},
    {.key = "glitch", .type = DCEM_CFG_ENUM, .offset = F(glitch), .names = sim_glitch_names,
     .def = -1},
    {.key = "ct_ratio", .type = DCEM_CFG_DOUBLE, .offset = F(ct_ratio),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = DCEM_RATIO_MAX, .def = NAN,
     .help = "ratio: the CT ratio from from_s on; absent: unchanged"},
    {.key = "pt_ratio", .type = DCEM_CFG_DOUBLE, .offset = F(pt_ratio),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = DCEM_RATIO_MAX, .def = NAN,
     .help = "ratio: the PT ratio from from_s on; absent: unchanged"},
    {0},
};
#undef F

#define M(f) offsetof(sim_meter_cfg, f)
static const dcem_cfg_field meter_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = M(line)},
    {.key = "id", .type = DCEM_CFG_STRING, .offset = M(id), .size = SIM_ID_MAX - 4,
     .flags = DCEM_CFG_REQUIRED, .check = check_id},
    {.key = "unit", .type = DCEM_CFG_INT, .offset = M(unit), .flags = DCEM_CFG_REQUIRED, .min = 1,
     .max = SIM_MAX_UNITS, .def = NAN},
    {.key = "count", .type = DCEM_CFG_INT, .offset = M(count), .min = 1, .max = SIM_MAX_UNITS,
     .def = 1, .help = "replicas on consecutive unit ids"},
    {.key = "profile", .type = DCEM_CFG_STRING, .offset = M(profile),
     .size = SIM_PROFILE_NAME_MAX, .flags = DCEM_CFG_REQUIRED, .check = check_profile},
    {.key = "shape", .type = DCEM_CFG_ENUM, .offset = M(shape), .flags = DCEM_CFG_REQUIRED,
     .names = sim_shape_names, .def = NAN},
    {.key = "rated_kw", .type = DCEM_CFG_DOUBLE, .offset = M(rated_kw),
     .flags = DCEM_CFG_REQUIRED | DCEM_CFG_MIN_EXCL, .min = 0, .max = 1e6, .def = NAN},
    {.key = "level", .type = DCEM_CFG_DOUBLE, .offset = M(level), .min = 0, .max = 1, .def = NAN},
    {.key = "noise", .type = DCEM_CFG_DOUBLE, .offset = M(noise), .min = 0, .max = 0.5,
     .def = 0.01},
    {.key = "pf", .type = DCEM_CFG_DOUBLE, .offset = M(pf), .min = 0.5, .max = 1, .def = NAN},
    {.key = "v_nominal", .type = DCEM_CFG_DOUBLE, .offset = M(v_nominal), .min = 50, .max = 1000,
     .def = 230},
    {.key = "hz_nominal", .type = DCEM_CFG_DOUBLE, .offset = M(hz_nominal), .min = 45, .max = 65,
     .def = 50},
    {.key = "initial_kwh", .type = DCEM_CFG_DOUBLE, .offset = M(initial_kwh), .min = 0,
     .max = 1e15, .def = NAN, .help = "the primary counter at start"},
    {.key = "ct_ratio", .type = DCEM_CFG_DOUBLE, .offset = M(ct_ratio),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = DCEM_RATIO_MAX, .def = 1,
     .help = "CT ratio the meter sits behind: it serves secondary values"},
    {.key = "pt_ratio", .type = DCEM_CFG_DOUBLE, .offset = M(pt_ratio),
     .flags = DCEM_CFG_MIN_EXCL, .min = 0, .max = DCEM_RATIO_MAX, .def = 1,
     .help = "PT ratio the meter sits behind"},
    {.key = "refuse", .type = DCEM_CFG_LIST, .offset = M(refuse), .size = DCEM_REG_NAME_MAX,
     .item = DCEM_CFG_STRING, .min = 0, .max = DCEM_PROFILE_MAX_REGS,
     .count_offset = M(n_refuse), .check = check_refuse,
     .help = "profile registers the meter answers exception 02 for"},
    {.key = "holes", .type = DCEM_CFG_ENUM, .offset = M(holes), .names = sim_holes_names,
     .def = SIM_HOLES_SERVE, .help = "refuse: a read spanning an unmapped word gets 02"},
    {.key = "faults", .type = DCEM_CFG_LIST, .offset = M(faults), .size = sizeof(sim_fault),
     .min = 0, .max = SIM_MAX_FAULTS, .sub = fault_fields, .count_offset = M(n_faults)},
    {0},
};
#undef M

#define S(f) offsetof(sim_scenario, f)
static const dcem_cfg_field listen_fields[] = {
    {.key = "tcp", .type = DCEM_CFG_STRING, .offset = S(listen.tcp) - S(listen),
     .size = SIM_HOST_MAX + 8, .check = check_hostport},
    {.key = "rtu", .type = DCEM_CFG_STRING, .offset = S(listen.rtu) - S(listen), .size = 256},
    {.key = "baud", .type = DCEM_CFG_INT, .offset = S(listen.baud) - S(listen), .min = 300,
     .max = 921600, .def = 9600},
    {.key = "parity", .type = DCEM_CFG_ENUM, .offset = S(listen.parity) - S(listen),
     .names = parity_names, .def = 0},
    {.key = "data_bits", .type = DCEM_CFG_INT, .offset = S(listen.data_bits) - S(listen),
     .min = 7, .max = 8, .def = 8},
    {.key = "stop_bits", .type = DCEM_CFG_INT, .offset = S(listen.stop_bits) - S(listen),
     .min = 1, .max = 2, .def = 1},
    {.key = "wire_time", .type = DCEM_CFG_BOOL, .offset = S(listen.wire_time) - S(listen),
     .def = 1, .help = "RTU: frames take the time a real line takes (docs/sim.md)"},
    {.key = "turnaround_ms", .type = DCEM_CFG_INT,
     .offset = S(listen.turnaround_ms) - S(listen), .min = 0, .max = 10000, .def = 5,
     .help = "RTU: the device's answer delay after a request's end and 3.5 characters"},
    {0},
};

static const dcem_cfg_field clock_fields[] = {
    {.key = "start", .type = DCEM_CFG_STRING, .offset = S(clock.start) - S(clock), .size = 40,
     .def_str = "now", .check = check_start},
    {.key = "speed", .type = DCEM_CFG_DOUBLE, .offset = S(clock.speed) - S(clock), .min = 0,
     .max = 1e7, .def = 1},
    {.key = "utc_offset_hours", .type = DCEM_CFG_DOUBLE,
     .offset = S(clock.utc_offset_hours) - S(clock), .min = -12, .max = 14, .def = 8},
    {.key = "step_s", .type = DCEM_CFG_INT, .offset = S(clock.step_s) - S(clock), .min = 1,
     .max = 3600, .def = 60},
    {0},
};

static const dcem_cfg_field scenario_fields[] = {
    {.key = "name", .type = DCEM_CFG_STRING, .offset = S(name), .size = 64,
     .flags = DCEM_CFG_REQUIRED, .check = check_id},
    {.key = "description", .type = DCEM_CFG_STRING, .offset = S(description), .size = 200},
    {.key = "listen", .type = DCEM_CFG_MAP, .offset = S(listen), .sub = listen_fields},
    {.key = "clock", .type = DCEM_CFG_MAP, .offset = S(clock), .sub = clock_fields},
    {.key = "seed", .type = DCEM_CFG_INT, .offset = S(seed), .min = 0, .max = 9.2e18, .def = 1},
    {.key = "meters", .type = DCEM_CFG_LIST, .offset = S(meters), .size = sizeof(sim_meter_cfg),
     .flags = DCEM_CFG_REQUIRED, .min = 1, .max = SIM_MAX_METER_CFG, .sub = meter_fields,
     .count_offset = S(n_meters)},
    {0},
};
#undef S

double sim_shape_default_level(int shape)
{
    static const double level[SIM_SHAPE_COUNT] = {0.66, 0.6, 0.8, 0.5};
    return shape >= 0 && shape < SIM_SHAPE_COUNT ? level[shape] : 0.5;
}

double sim_shape_default_pf(int shape)
{
    static const double pf[SIM_SHAPE_COUNT] = {0.97, 0.86, 0.99, 0.95};
    return shape >= 0 && shape < SIM_SHAPE_COUNT ? pf[shape] : 0.95;
}

void sim_meter_cfg_id(const sim_meter_cfg *c, long long r, char *buf, size_t len)
{
    if (c->count <= 1) {
        snprintf(buf, len, "%s", c->id);
        return;
    }
    int width = c->count >= 100 ? 3 : 2;
    snprintf(buf, len, "%s-%0*lld", c->id, width, r + 1);
}

int sim_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return DCEM_EINVAL;
    size_t hl = (size_t)(colon - s);
    if (hl >= hostlen) return DCEM_EINVAL;
    /* dotted quad: libmodbus binds with inet_addr, which takes no names */
    int dots = 0, digits = 0;
    long part = 0;
    for (size_t i = 0; i < hl; i++) {
        if (s[i] == '.') {
            if (!digits) return DCEM_EINVAL;
            dots++;
            digits = 0;
            part = 0;
        } else if (s[i] >= '0' && s[i] <= '9') {
            part = part * 10 + (s[i] - '0');
            if (++digits > 3 || part > 255) return DCEM_EINVAL;
        } else {
            return DCEM_EINVAL;
        }
    }
    if (dots != 3 || !digits) return DCEM_EINVAL;
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (!pl || pl > 5) return DCEM_EINVAL;
    long v = 0;
    for (size_t i = 0; i < pl; i++) {
        if (p[i] < '0' || p[i] > '9') return DCEM_EINVAL;
        v = v * 10 + (p[i] - '0');
    }
    if (v > 65535) return DCEM_EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (int)v;
    return 0;
}

int sim_scenario_parse(const char *name, const char *buf, size_t len, sim_scenario *out,
                       char *err, size_t errlen)
{
    int rc = dcem_cfg_parse(name, buf, len, scenario_fields, out, err, errlen);
    if (rc) return rc;

    out->start_now = !strcmp(out->clock.start, "now");
    out->start_ms = 0;
    if (!out->start_now &&
        dcem_parse_time(out->clock.start, strlen(out->clock.start), &out->start_ms))
        return dcem_cfg_error(err, errlen, name, 1, "clock.start", "not a time"); /* checked */

    unsigned char unit_entry[SIM_MAX_UNITS + 1];
    memset(unit_entry, 0xff, sizeof unit_entry);
    for (size_t i = 0; i < out->n_meters; i++) {
        const sim_meter_cfg *m = &out->meters[i];
        if (m->unit + m->count - 1 > SIM_MAX_UNITS)
            return dcem_cfg_error(err, errlen, name, m->line, "meters.count",
                                  "units %lld..%lld: unit ids end at %d", m->unit,
                                  m->unit + m->count - 1, SIM_MAX_UNITS);
        for (long long u = m->unit; u < m->unit + m->count; u++) {
            if (unit_entry[u] != 0xff)
                return dcem_cfg_error(err, errlen, name, m->line, "meters.unit",
                                      "unit %lld already used by the meter at line %d", u,
                                      out->meters[unit_entry[u]].line);
            unit_entry[u] = (unsigned char)i;
        }
        /* replica ids differ by their suffix; across entries compare all */
        for (size_t j = 0; j < i; j++) {
            const sim_meter_cfg *o = &out->meters[j];
            for (long long r = 0; r < m->count; r++) {
                char a[SIM_ID_MAX];
                sim_meter_cfg_id(m, r, a, sizeof a);
                for (long long q = 0; q < o->count; q++) {
                    char b[SIM_ID_MAX];
                    sim_meter_cfg_id(o, q, b, sizeof b);
                    if (!strcmp(a, b))
                        return dcem_cfg_error(err, errlen, name, m->line, "meters.id",
                                              "'%s' already declared at line %d", a, o->line);
                }
            }
        }
        int rollover = 0;
        for (size_t k = 0; k < m->n_faults; k++) {
            const sim_fault *f = &m->faults[k];
            char why[160];
            if (sim_fault_check(f, why, sizeof why))
                return dcem_cfg_error(err, errlen, name, f->line, "meters.faults", "%s", why);
            if (f->kind == SIM_FAULT_ROLLOVER && rollover++)
                return dcem_cfg_error(err, errlen, name, f->line, "meters.faults",
                                      "at most one rollover per meter");
            for (size_t j = 0; f->kind == SIM_FAULT_RATIO && j < k; j++)
                if (m->faults[j].kind == SIM_FAULT_RATIO && m->faults[j].from_s == f->from_s)
                    return dcem_cfg_error(err, errlen, name, f->line, "meters.faults",
                                          "a ratio change at from_s %g already at line %d",
                                          f->from_s, m->faults[j].line);
        }
        if (rollover && !isnan(m->initial_kwh))
            return dcem_cfg_error(err, errlen, name, m->line, "meters.initial_kwh",
                                  "a rollover fault sets the initial counter; drop one");
    }
    return 0;
}
