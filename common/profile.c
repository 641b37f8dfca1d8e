#include "profile.h"
#include "cfg.h"
#include "errors.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {"u16", "s16", "u32", "s32", "u64",
                                         "s64", "f32", "f64", NULL};
static const char *const order_names[] = {"ABCD", "CDAB", "BADC", "DCBA", NULL};
static const char *const quantity_names[] = {
    "energy_import_kwh", "energy_export_kwh", "energy_total_kwh", "power_kw",
    "reactive_kvar",     "apparent_kva",      "voltage_v",        "voltage_ll_v",
    "current_a",         "power_factor",      "frequency_hz",     "scale_factor",
    "ct_ratio",          "pt_ratio",          NULL};

/* Plausible ranges when a register gives no min/max: wide enough for any
 * feeder a data centre has (1 GW, 1 MV, 1 MA), narrow enough to catch a
 * misdecoded word order or an "invalid" pattern such as 0xFFFF.... Power
 * factor gets 0.1% for meters whose float rounds just past unity. */
static const struct {
    double min, max;
} default_range[DCEM_Q_COUNT] = {
    [DCEM_Q_ENERGY_IMPORT_KWH] = {0, 1e12}, [DCEM_Q_ENERGY_EXPORT_KWH] = {0, 1e12},
    [DCEM_Q_ENERGY_TOTAL_KWH] = {0, 1e12},  [DCEM_Q_POWER_KW] = {-1e6, 1e6},
    [DCEM_Q_REACTIVE_KVAR] = {-1e6, 1e6},   [DCEM_Q_APPARENT_KVA] = {-1e6, 1e6},
    [DCEM_Q_VOLTAGE_V] = {0, 1e6},          [DCEM_Q_VOLTAGE_LL_V] = {0, 1e6},
    [DCEM_Q_CURRENT_A] = {-1e6, 1e6},       [DCEM_Q_POWER_FACTOR] = {-1.001, 1.001},
    [DCEM_Q_FREQUENCY_HZ] = {0, 100},       [DCEM_Q_SCALE_FACTOR] = {-10, 10},
    [DCEM_Q_CT_RATIO] = {0, DCEM_RATIO_MAX}, [DCEM_Q_PT_RATIO] = {0, DCEM_RATIO_MAX},
};

/* SunSpec model blocks dcem reads: ID and L plus L registers. */
static unsigned sunspec_block_len(int model)
{
    return model == 203 ? 2 + 105 : model == 213 ? 2 + 124 : 0;
}

const char *dcem_regtype_name(int type)
{
    return type >= 0 && type < DCEM_REGTYPE_COUNT ? type_names[type] : NULL;
}

const char *dcem_wordorder_name(int order)
{
    return order >= DCEM_ABCD && order <= DCEM_DCBA ? order_names[order] : NULL;
}

const char *dcem_quantity_name(int quantity)
{
    return quantity >= 0 && quantity < DCEM_Q_COUNT ? quantity_names[quantity] : NULL;
}

int dcem_quantity_measured(int quantity)
{
    return quantity >= 0 && quantity < DCEM_Q_COUNT && quantity != DCEM_Q_SCALE_FACTOR &&
           quantity != DCEM_Q_CT_RATIO && quantity != DCEM_Q_PT_RATIO;
}

unsigned dcem_regtype_words(int type)
{
    switch (type) {
    case DCEM_U16:
    case DCEM_S16: return 1;
    case DCEM_U64:
    case DCEM_S64:
    case DCEM_F64: return 4;
    default: return 2;
    }
}

int dcem_profile_find(const dcem_profile *p, int quantity, int phase)
{
    for (size_t i = 0; i < p->n_regs; i++)
        if (p->regs[i].quantity == quantity && p->regs[i].phase == phase) return (int)i;
    return -1;
}

static int find_name(const dcem_profile *p, const char *name)
{
    for (size_t i = 0; i < p->n_regs; i++)
        if (!strcmp(p->regs[i].name, name)) return (int)i;
    return -1;
}

/* ---- decoding ---- */

static int lsw_first(int order)
{
    return order == DCEM_CDAB || order == DCEM_DCBA;
}

static int bytes_swapped(int order)
{
    return order == DCEM_BADC || order == DCEM_DCBA;
}

static uint16_t swap16(uint16_t x)
{
    return (uint16_t)((x >> 8) | (x << 8));
}

/* The big-endian integer ABCD(EFGH) from n words in the given order. */
static uint64_t assemble(const uint16_t *words, unsigned n, int order)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        uint16_t w = words[lsw_first(order) ? n - 1 - i : i];
        v = v << 16 | (bytes_swapped(order) ? swap16(w) : w);
    }
    return v;
}

static void disassemble(uint64_t v, unsigned n, int order, uint16_t *words)
{
    for (unsigned i = 0; i < n; i++) {
        uint16_t w = (uint16_t)(v >> (16 * (n - 1 - i)));
        words[lsw_first(order) ? n - 1 - i : i] = bytes_swapped(order) ? swap16(w) : w;
    }
}

static int is_signed(int type)
{
    return type == DCEM_S16 || type == DCEM_S32 || type == DCEM_S64;
}

int dcem_decode_raw(const uint16_t *words, int type, int order, double *raw)
{
    unsigned n = dcem_regtype_words(type);
    uint64_t v = assemble(words, n, order);
    if (type == DCEM_F32) {
        uint32_t u = (uint32_t)v;
        float f;
        memcpy(&f, &u, sizeof f);
        if (!isfinite(f)) return DCEM_ERANGE;
        *raw = (double)f;
    } else if (type == DCEM_F64) {
        double d;
        memcpy(&d, &v, sizeof d);
        if (!isfinite(d)) return DCEM_ERANGE;
        *raw = d;
    } else {
        unsigned bits = 16 * n;
        uint64_t mask = bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
        /* two's complement by hand: no implementation-defined narrowing */
        if (is_signed(type) && (v >> (bits - 1)) & 1) *raw = -(double)((~v + 1) & mask);
        else *raw = (double)v;
    }
    return 0;
}

/* raw rounded and clamped to an integer type of `bits`, as its bit pattern */
static uint64_t integer_bits(double raw, int type, unsigned bits)
{
    uint64_t mask = bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
    double r = isnan(raw) ? 0 : round(raw);
    if (!is_signed(type)) {
        if (r <= 0) return 0;
        return r >= ldexp(1, (int)bits) ? mask : (uint64_t)r;
    }
    double half = ldexp(1, (int)bits - 1);
    if (r >= half) return mask >> 1;        /* 0x7FFF... */
    if (r <= -half) return (mask >> 1) + 1; /* 0x8000... */
    if (r >= 0) return (uint64_t)r;
    return (~(uint64_t)(-r) + 1) & mask;
}

void dcem_encode_raw(double raw, int type, int order, uint16_t *words)
{
    unsigned n = dcem_regtype_words(type);
    uint64_t v;
    if (type == DCEM_F32) {
        /* out of float range is undefined in C, not infinity: say so */
        float f = raw > FLT_MAX ? INFINITY : raw < -FLT_MAX ? -INFINITY : (float)raw;
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        v = u;
    } else if (type == DCEM_F64) {
        memcpy(&v, &raw, sizeof v);
    } else {
        v = integer_bits(raw, type, 16 * n);
    }
    disassemble(v, n, order, words);
}

/* raw * 10^sf * scale in one rounding where it can be: 10^-n and a scale of
 * 1/k (k an integer: 0.01, 0.001 are not exact doubles) go into one exact
 * divisor, so 123456 at 0.01 is exactly the double nearest 1234.56 and 1234
 * at 10^-1 x 0.001 the one nearest 0.1234. */
static double apply_scale(double raw, int sf, double scale)
{
    double num = sf > 0 ? pow(10, sf) : 1, den = sf < 0 ? pow(10, -sf) : 1;
    double k = 1 / scale;
    if (fabs(scale) < 1 && fabs(k - round(k)) < 1e-9 * fabs(k)) den *= round(k);
    else num *= scale;
    return raw * num / den;
}

/* SunSpec "not implemented" patterns (int16 0x8000, uint16 0xFFFF, int32
 * 0x80000000, uint32 0xFFFFFFFF; accumulators 0). */
static int sunspec_unimplemented(const dcem_register *r, double raw)
{
    int counter = r->quantity <= DCEM_Q_ENERGY_TOTAL_KWH;
    switch (r->type) {
    case DCEM_S16: return raw == -32768.0;
    case DCEM_U16: return raw == 65535.0 || (counter && raw == 0);
    case DCEM_S32: return raw == -2147483648.0;
    case DCEM_U32: return raw == 4294967295.0 || (counter && raw == 0);
    case DCEM_U64: return counter && raw == 0;
    default: return 0;
    }
}

int dcem_profile_value(const dcem_profile *p, size_t i, const uint16_t *words,
                       const uint16_t *sf_words, double *value)
{
    if (i >= p->n_regs) return DCEM_EINVAL;
    const dcem_register *r = &p->regs[i];
    double raw;
    int rc = dcem_decode_raw(words, r->type, r->order, &raw);
    if (rc) return rc;
    if (p->sunspec_model && sunspec_unimplemented(r, raw)) return DCEM_ENOTFOUND;
    int e = 0;
    if (r->scale_register[0]) {
        int j = find_name(p, r->scale_register);
        if (j < 0 || !sf_words) return DCEM_EINVAL;
        const dcem_register *s = &p->regs[j];
        double sf;
        if (dcem_decode_raw(sf_words, s->type, s->order, &sf)) return DCEM_ERANGE;
        if (p->sunspec_model && sunspec_unimplemented(s, sf)) return DCEM_ENOTFOUND;
        if (sf < s->min || sf > s->max || sf != floor(sf)) return DCEM_ERANGE;
        e = (int)sf;
    }
    double v = apply_scale(raw, e, r->scale);
    if (!(v >= r->min && v <= r->max)) return DCEM_ERANGE;
    *value = v;
    return 0;
}

/* ---- SunSpec discovery ---- */

int dcem_sunspec_find(const uint16_t *words, size_t n, unsigned start, int model,
                      unsigned *addr, unsigned *len)
{
    if (n < 2 || words[0] != DCEM_SUNSPEC_MARKER0 || words[1] != DCEM_SUNSPEC_MARKER1)
        return DCEM_EINVAL;
    size_t pos = 2;
    for (;;) {
        if (start + pos > 65534) return DCEM_EINVAL; /* a chain past the address space */
        if (pos + 2 > n) {
            *addr = (unsigned)(start + pos);
            return DCEM_EFULL;
        }
        unsigned id = words[pos], l = words[pos + 1];
        if (id == 0xFFFF) return DCEM_ERANGE;
        if ((int)id == model) {
            *addr = (unsigned)(start + pos);
            if (len) *len = l;
            return 0;
        }
        pos += 2 + (size_t)l;
    }
}

/* ---- the plan of reads ---- */

/* Appends req to out (or only counts it when out is NULL). */
static int emit(dcem_read_req *out, size_t max, size_t *n, dcem_read_req req)
{
    if (out && *n >= max) return DCEM_EFULL;
    if (out) out[*n] = req;
    (*n)++;
    return 0;
}

double dcem_ratio_factor(int quantity, double ct, double pt)
{
    switch (quantity) {
    case DCEM_Q_ENERGY_IMPORT_KWH:
    case DCEM_Q_ENERGY_EXPORT_KWH:
    case DCEM_Q_ENERGY_TOTAL_KWH:
    case DCEM_Q_POWER_KW:
    case DCEM_Q_REACTIVE_KVAR:
    case DCEM_Q_APPARENT_KVA: return ct * pt;
    case DCEM_Q_CURRENT_A: return ct;
    case DCEM_Q_VOLTAGE_V:
    case DCEM_Q_VOLTAGE_LL_V: return pt;
    default: return 1;
    }
}

int dcem_ratio_valid(double r)
{
    return r > 0 && r <= DCEM_RATIO_MAX; /* NaN fails both */
}

int dcem_register_is_ratio(const dcem_register *r)
{
    return r->quantity == DCEM_Q_CT_RATIO || r->quantity == DCEM_Q_PT_RATIO;
}

void dcem_plan_rules_init(dcem_plan_rules *r, const dcem_profile *p)
{
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < p->n_regs && i < DCEM_PROFILE_MAX_REGS; i++)
        r->reg[i] = dcem_register_is_ratio(&p->regs[i]) ? DCEM_PLAN_SKIP : DCEM_PLAN_READ;
}

/* 1 when a request of function fn covering [from, to) would touch a
 * register the rules say the device refuses. */
static int covers_refused(const dcem_profile *p, unsigned base, const dcem_plan_rules *rules,
                          int fn, unsigned long from, unsigned long to)
{
    for (size_t i = 0; i < p->n_regs; i++) {
        const dcem_register *r = &p->regs[i];
        if (rules->reg[i] != DCEM_PLAN_REFUSED || r->function != fn) continue;
        unsigned long a = (unsigned long)base + r->address, w = dcem_regtype_words(r->type);
        if (a < to && a + w > from) return 1;
    }
    return 0;
}

int dcem_profile_plan_rules(const dcem_profile *p, unsigned base, const dcem_plan_rules *rules,
                            dcem_read_req *out, size_t max)
{
    if (p->max_registers < 1 || p->max_registers > 125 || p->n_regs > DCEM_PROFILE_MAX_REGS)
        return DCEM_EINVAL;
    dcem_plan_rules initial;
    if (!rules) {
        dcem_plan_rules_init(&initial, p);
        rules = &initial;
    }
    size_t idx[DCEM_PROFILE_MAX_REGS], m = 0;
    for (size_t i = 0; i < p->n_regs; i++) { /* insertion sort by (function, address) */
        if (rules->reg[i] != DCEM_PLAN_READ) continue;
        const dcem_register *r = &p->regs[i];
        size_t j = m++;
        for (; j > 0; j--) {
            const dcem_register *q = &p->regs[idx[j - 1]];
            if (q->function < r->function ||
                (q->function == r->function && q->address <= r->address))
                break;
            idx[j] = idx[j - 1];
        }
        idx[j] = i;
    }
    size_t n = 0;
    dcem_read_req cur = {0};
    unsigned long cur_end = 0;
    int cut = 0; /* the current request's last register ends it */
    for (size_t k = 0; k < m; k++) {
        const dcem_register *r = &p->regs[idx[k]];
        unsigned long a = (unsigned long)base + r->address, w = dcem_regtype_words(r->type);
        if (a + w > 65536) return DCEM_ERANGE;
        if (w > p->max_registers) return DCEM_EINVAL;
        unsigned long end = a + w > cur_end ? a + w : cur_end;
        if (cur.count && !cut && r->function == cur.function && a <= cur_end + p->max_gap &&
            end - cur.address <= p->max_registers &&
            !covers_refused(p, base, rules, r->function, cur_end, a)) {
            cur_end = end;
            cur.count = (unsigned)(cur_end - cur.address);
            cut = rules->cut[idx[k]];
            continue;
        }
        if (cur.count && emit(out, max, &n, cur)) return DCEM_EFULL;
        cur = (dcem_read_req){r->function, (unsigned)a, (unsigned)w};
        cur_end = a + w;
        cut = rules->cut[idx[k]];
    }
    if (cur.count && emit(out, max, &n, cur)) return DCEM_EFULL;
    return (int)n;
}

int dcem_profile_plan(const dcem_profile *p, unsigned base, dcem_read_req *out, size_t max)
{
    return dcem_profile_plan_rules(p, base, NULL, out, max);
}

/* ---- parsing ---- */

#define PROFILE_MAX_SOURCES 8

/* What the file says, before it is checked and converted into a profile. */
typedef struct reg_doc {
    char name[DCEM_REG_NAME_MAX];
    int quantity, type, order, line;
    long long phase, function;
    char address[16];
    double scale, min, max;
    char scale_register[DCEM_REG_NAME_MAX];
} reg_doc;

typedef struct profile_doc {
    char model[64], vendor[64], description[160];
    long long max_registers, max_gap, sunspec_model;
    char sources[PROFILE_MAX_SOURCES][256];
    size_t n_sources;
    reg_doc regs[DCEM_PROFILE_MAX_REGS];
    size_t n_regs;
} profile_doc;

/* "72", "0072" (decimal, never octal) or "0x0048"; at most 65535 */
static int parse_address(const char *s, unsigned *out)
{
    unsigned base = 10;
    unsigned long v = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) base = 16, s += 2;
    if (!*s) return -1;
    for (; *s; s++) {
        unsigned d = *s >= '0' && *s <= '9'   ? (unsigned)(*s - '0')
                     : *s >= 'a' && *s <= 'f' ? (unsigned)(*s - 'a' + 10)
                     : *s >= 'A' && *s <= 'F' ? (unsigned)(*s - 'A' + 10)
                                              : 99;
        if (d >= base || (v = v * base + d) > 65535) return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int check_address(const void *value, size_t count, char *why, size_t len)
{
    unsigned a;
    (void)count;
    if (!parse_address(value, &a)) return 0;
    snprintf(why, len, "'%s' is not a register address (0-65535, decimal or 0x hex)",
             (const char *)value);
    return 1;
}

static int check_name(const void *value, size_t count, char *why, size_t len)
{
    const char *s = value;
    (void)count;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c >= '0' && *c <= '9') || *c == '_' || (*c == '-' && c != s) ||
              (*c == '.' && c != s)))
            goto bad;
    if (*s) return 0;
bad:
    snprintf(why, len, "'%s': use letters, digits, '_', '-' or '.'", s);
    return 1;
}

static int check_function(const void *value, size_t count, char *why, size_t len)
{
    long long f = *(const long long *)value;
    (void)count;
    if (f == 3 || f == 4) return 0;
    snprintf(why, len, "%lld: use 3 (holding registers) or 4 (input registers)", f);
    return 1;
}

static int check_scale(const void *value, size_t count, char *why, size_t len)
{
    (void)count;
    if (*(const double *)value != 0) return 0;
    snprintf(why, len, "must not be 0");
    return 1;
}

static int check_sunspec(const void *value, size_t count, char *why, size_t len)
{
    long long m = *(const long long *)value;
    (void)count;
    if (m == 0 || sunspec_block_len((int)m)) return 0;
    snprintf(why, len, "%lld: use 0 (plain map), 203 or 213", m);
    return 1;
}

#define R(f) offsetof(reg_doc, f)
static const dcem_cfg_field reg_fields[] = {
    {.key = "@line", .type = DCEM_CFG_LINE, .offset = R(line)},
    {.key = "name", .type = DCEM_CFG_STRING, .offset = R(name), .size = DCEM_REG_NAME_MAX,
     .flags = DCEM_CFG_REQUIRED, .check = check_name},
    {.key = "quantity", .type = DCEM_CFG_ENUM, .offset = R(quantity),
     .flags = DCEM_CFG_REQUIRED, .names = quantity_names, .def = NAN},
    {.key = "phase", .type = DCEM_CFG_INT, .offset = R(phase), .min = 0, .max = 3, .def = 0},
    {.key = "function", .type = DCEM_CFG_INT, .offset = R(function), .flags = DCEM_CFG_REQUIRED,
     .min = NAN, .max = NAN, .def = NAN, .check = check_function},
    {.key = "address", .type = DCEM_CFG_STRING, .offset = R(address), .size = 16,
     .flags = DCEM_CFG_REQUIRED, .check = check_address},
    {.key = "type", .type = DCEM_CFG_ENUM, .offset = R(type), .flags = DCEM_CFG_REQUIRED,
     .names = type_names, .def = NAN},
    {.key = "order", .type = DCEM_CFG_ENUM, .offset = R(order), .names = order_names,
     .def = DCEM_ABCD},
    {.key = "scale", .type = DCEM_CFG_DOUBLE, .offset = R(scale), .min = NAN, .max = NAN,
     .def = 1, .check = check_scale},
    {.key = "scale_register", .type = DCEM_CFG_STRING, .offset = R(scale_register),
     .size = DCEM_REG_NAME_MAX},
    {.key = "min", .type = DCEM_CFG_DOUBLE, .offset = R(min), .min = NAN, .max = NAN, .def = NAN},
    {.key = "max", .type = DCEM_CFG_DOUBLE, .offset = R(max), .min = NAN, .max = NAN, .def = NAN},
    {0},
};
#undef R

#define P(f) offsetof(profile_doc, f)
static const dcem_cfg_field profile_fields[] = {
    {.key = "model", .type = DCEM_CFG_STRING, .offset = P(model), .size = 64,
     .flags = DCEM_CFG_REQUIRED, .check = check_name},
    {.key = "vendor", .type = DCEM_CFG_STRING, .offset = P(vendor), .size = 64,
     .flags = DCEM_CFG_REQUIRED},
    {.key = "description", .type = DCEM_CFG_STRING, .offset = P(description), .size = 160},
    {.key = "sources", .type = DCEM_CFG_LIST, .offset = P(sources), .size = 256,
     .flags = DCEM_CFG_REQUIRED, .min = 1, .max = PROFILE_MAX_SOURCES,
     .item = DCEM_CFG_STRING, .count_offset = P(n_sources)},
    {.key = "max_registers", .type = DCEM_CFG_INT, .offset = P(max_registers),
     .flags = DCEM_CFG_REQUIRED, .min = 1, .max = 125, .def = NAN},
    {.key = "max_gap", .type = DCEM_CFG_INT, .offset = P(max_gap), .min = 0, .max = 125,
     .def = 0},
    {.key = "sunspec_model", .type = DCEM_CFG_INT, .offset = P(sunspec_model), .min = NAN,
     .max = NAN, .def = 0, .check = check_sunspec},
    {.key = "registers", .type = DCEM_CFG_LIST, .offset = P(regs), .size = sizeof(reg_doc),
     .flags = DCEM_CFG_REQUIRED, .min = 1, .max = DCEM_PROFILE_MAX_REGS, .sub = reg_fields,
     .count_offset = P(n_regs)},
    {0},
};
#undef P

/* "file:line: registers[i].key: message" at the register's line. */
static int reg_error(char *err, size_t errlen, const char *name, size_t i, int line,
                     const char *key, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static int reg_error(char *err, size_t errlen, const char *name, size_t i, int line,
                     const char *key, const char *fmt, ...)
{
    char path[64], msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(path, sizeof path, "registers[%zu].%s", i, key);
    return dcem_cfg_error(err, errlen, name, line, path, "%s", msg);
}

/* Cross-field rules of register i, on the converted profile. */
static int check_register(const dcem_profile *p, size_t i, const char *name, char *err,
                          size_t errlen)
{
    const dcem_register *r = &p->regs[i];
    unsigned w = dcem_regtype_words(r->type);
    const char *tn = type_names[r->type];
#define FAIL(key, ...) return reg_error(err, errlen, name, i, r->line, key, __VA_ARGS__)
    for (size_t j = 0; j < i; j++) {
        const dcem_register *q = &p->regs[j];
        if (!strcmp(q->name, r->name))
            FAIL("name", "'%s' already declared at line %d", r->name, q->line);
        if (r->quantity != DCEM_Q_SCALE_FACTOR && q->quantity == r->quantity &&
            q->phase == r->phase)
            FAIL("quantity", "%s at phase %d is already read by '%s' (line %d)",
                 quantity_names[r->quantity], r->phase, q->name, q->line);
    }
    if (r->address + w > 65536)
        FAIL("address", "%u + %u registers of %s runs past register 65535", r->address, w, tn);
    if (w > p->max_registers)
        FAIL("type", "%s takes %u registers, more than max_registers %u", tn, w,
             p->max_registers);
    if (p->sunspec_model) {
        unsigned blk = sunspec_block_len(p->sunspec_model);
        if (r->function != 3) FAIL("function", "SunSpec models are holding registers: use 3");
        if (r->address + w > blk)
            FAIL("address", "offset %u + %u runs past the end of SunSpec model %d (%u registers)",
                 r->address, w, p->sunspec_model, blk);
    }
    if (dcem_register_is_ratio(r) && r->phase)
        FAIL("phase", "a transformer ratio is one per meter: leave phase out");
    if (r->quantity == DCEM_Q_SCALE_FACTOR && r->type != DCEM_S16)
        FAIL("type", "a scale_factor register must be s16, got %s", tn);
    if (r->scale_register[0]) {
        int j = find_name(p, r->scale_register);
        if (j < 0)
            FAIL("scale_register", "'%s' is not a register of this profile", r->scale_register);
        if (p->regs[j].quantity != DCEM_Q_SCALE_FACTOR)
            FAIL("scale_register", "'%s' is not a scale_factor register", r->scale_register);
        if (r->quantity == DCEM_Q_SCALE_FACTOR)
            FAIL("scale_register", "a scale_factor register cannot have one");
        if (p->regs[j].function != r->function)
            FAIL("scale_register", "'%s' is read with another function", r->scale_register);
    }
    if (r->min > r->max) FAIL("min", "%g is above max %g", r->min, r->max);
#undef FAIL
    return 0;
}

static void convert(const profile_doc *d, dcem_profile *p)
{
    memset(p, 0, sizeof *p);
    memcpy(p->model, d->model, sizeof p->model);
    memcpy(p->vendor, d->vendor, sizeof p->vendor);
    memcpy(p->description, d->description, sizeof p->description);
    p->max_registers = (unsigned)d->max_registers;
    p->max_gap = (unsigned)d->max_gap;
    p->sunspec_model = (int)d->sunspec_model;
    p->n_regs = d->n_regs;
    for (size_t i = 0; i < d->n_regs; i++) {
        const reg_doc *s = &d->regs[i];
        dcem_register *r = &p->regs[i];
        memcpy(r->name, s->name, sizeof r->name);
        memcpy(r->scale_register, s->scale_register, sizeof r->scale_register);
        r->quantity = s->quantity;
        r->phase = (int)s->phase;
        r->function = (int)s->function;
        parse_address(s->address, &r->address); /* checked while parsing */
        r->type = s->type;
        r->order = s->order;
        r->scale = s->scale;
        r->min = isnan(s->min) ? default_range[s->quantity].min : s->min;
        r->max = isnan(s->max) ? default_range[s->quantity].max : s->max;
        r->line = s->line;
    }
}

int dcem_profile_parse(const char *name, const char *buf, size_t len, dcem_profile *out,
                       char *err, size_t errlen)
{
    profile_doc *d = malloc(sizeof *d); /* ~16 KB: off the caller's stack */
    if (!d) return DCEM_ENOMEM;
    int rc = dcem_cfg_parse(name, buf, len, profile_fields, d, err, errlen);
    convert(d, out); /* out is defined even on error */
    free(d);
    if (rc) return rc;
    int counters = 0;
    for (size_t i = 0; i < out->n_regs; i++) {
        rc = check_register(out, i, name, err, errlen);
        if (rc) return rc;
        counters += out->regs[i].quantity == DCEM_Q_ENERGY_IMPORT_KWH && out->regs[i].phase == 0;
    }
    if (!counters)
        return dcem_cfg_error(err, errlen, name, 1, "registers",
                              "no energy_import_kwh register at phase 0 (the counter dcem sums)");
    return 0;
}
