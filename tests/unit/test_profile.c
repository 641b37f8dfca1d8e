/* test_profile.c — meter profiles (common/profile.c): datasheet vectors for
 * every register type in every byte/word order, encode/decode round trips,
 * values with scales and SunSpec scale factors, SunSpec discovery, the read
 * planner, every shipped profile under configs/meters (argv[1] is configs/),
 * and broken profile documents with their exact "file:line: key: what"
 * messages. Each table row is its own cmocka test so a failure names it. */
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
#include "profile.h"
#include "table.h"

static const char *configs_dir; /* argv[1]: the repository's configs/ */

/* ---- helpers ---- */

/* The whole file in exactly len bytes on the heap (no NUL), so ASan catches
 * a parser reading past the end. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    size_t cap = 1 << 16, n = 0, got;
    char *tmp = malloc(cap);
    assert_non_null(tmp);
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

static dcem_profile *new_profile(void)
{
    dcem_profile *p = malloc(sizeof *p);
    assert_non_null(p);
    memset(p, 0xA5, sizeof *p); /* garbage: the parser must define every field */
    return p;
}

/* Parses a string literal copied to exactly strlen bytes, as "profile.yaml". */
static int parse_str(const char *yaml, dcem_profile *p, char *err, size_t errlen)
{
    size_t len = strlen(yaml);
    char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, yaml, len);
    int rc = dcem_profile_parse("profile.yaml", buf, len, p, err, errlen);
    free(buf);
    return rc;
}

static dcem_profile *load_shipped(const char *model)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/meters/%s.yaml", configs_dir, model);
    size_t len;
    char *buf = read_file(path, &len);
    dcem_profile *p = new_profile();
    char err[512] = "";
    int rc = dcem_profile_parse(path, buf, len, p, err, sizeof err);
    free(buf);
    if (rc) fail_msg("%s", err);
    return p;
}

static int reg_index(const dcem_profile *p, const char *name)
{
    for (size_t i = 0; i < p->n_regs; i++)
        if (!strcmp(p->regs[i].name, name)) return (int)i;
    fail_msg("no register '%s' in %s", name, p->model);
    return -1;
}

/* ---- datasheet vectors: every type in every order ---- */

typedef struct vector_case {
    const char *name;
    int type, order;
    uint16_t words[4];
    double want;
    int rc; /* DCEM_ERANGE: NaN or infinite, never a number */
} vector_case;

#define V(n, t, o, w, v) {n, DCEM_##t, DCEM_##o, w, v, 0}
#define W(...) {__VA_ARGS__}
static const vector_case vectors[] = {
    /* SDM630-style float: 12345.67 as float32 = 0x4640E6AE, read back as
     * 12345.669921875 (reference §1.1) */
    V("f32 12345.67 ABCD", F32, ABCD, W(0x4640, 0xE6AE), 12345.669921875),
    V("f32 12345.67 CDAB", F32, CDAB, W(0xE6AE, 0x4640), 12345.669921875),
    V("f32 12345.67 BADC", F32, BADC, W(0x4046, 0xAEE6), 12345.669921875),
    V("f32 12345.67 DCBA", F32, DCBA, W(0xAEE6, 0x4046), 12345.669921875),
    V("f32 -1.5 ABCD", F32, ABCD, W(0xBFC0, 0x0000), -1.5),
    /* Acrel counter: raw 123456 (= 1234.56 kWh at 0.01) */
    V("u32 123456 ABCD", U32, ABCD, W(0x0001, 0xE240), 123456),
    V("u32 123456 CDAB", U32, CDAB, W(0xE240, 0x0001), 123456),
    V("u32 123456 BADC", U32, BADC, W(0x0100, 0x40E2), 123456),
    V("u32 123456 DCBA", U32, DCBA, W(0x40E2, 0x0100), 123456),
    V("u32 max ABCD", U32, ABCD, W(0xFFFF, 0xFFFF), 4294967295.0),
    V("s32 -123456 ABCD", S32, ABCD, W(0xFFFE, 0x1DC0), -123456),
    V("s32 -123456 CDAB (Carlo Gavazzi)", S32, CDAB, W(0x1DC0, 0xFFFE), -123456),
    V("s32 -123456 BADC", S32, BADC, W(0xFEFF, 0xC01D), -123456),
    V("s32 -123456 DCBA", S32, DCBA, W(0xC01D, 0xFEFF), -123456),
    V("s32 min ABCD", S32, ABCD, W(0x8000, 0x0000), -2147483648.0),
    V("s32 max CDAB", S32, CDAB, W(0xFFFF, 0x7FFF), 2147483647.0),
    V("s32 123456 ABCD (positive)", S32, ABCD, W(0x0001, 0xE240), 123456),
    V("u16 0x1234 ABCD", U16, ABCD, W(0x1234), 4660),
    V("u16 0x1234 CDAB (= ABCD)", U16, CDAB, W(0x1234), 4660),
    V("u16 0x1234 BADC", U16, BADC, W(0x3412), 4660),
    V("u16 0x1234 DCBA (= BADC)", U16, DCBA, W(0x3412), 4660),
    V("u16 0xFFFF", U16, ABCD, W(0xFFFF), 65535),
    V("s16 -2 ABCD", S16, ABCD, W(0xFFFE), -2),
    V("s16 -2 CDAB", S16, CDAB, W(0xFFFE), -2),
    V("s16 -2 BADC", S16, BADC, W(0xFEFF), -2),
    V("s16 -2 DCBA", S16, DCBA, W(0xFEFF), -2),
    V("s16 min (SunSpec not implemented)", S16, ABCD, W(0x8000), -32768),
    V("s16 max", S16, ABCD, W(0x7FFF), 32767),
    /* Schneider-style INT64 Wh: 123 456 789 012 Wh = 123 456 789.012 kWh */
    V("u64 123456789012 ABCD", U64, ABCD, W(0x0000, 0x001C, 0xBE99, 0x1A14), 123456789012.0),
    V("u64 123456789012 CDAB", U64, CDAB, W(0x1A14, 0xBE99, 0x001C, 0x0000), 123456789012.0),
    V("u64 123456789012 BADC", U64, BADC, W(0x0000, 0x1C00, 0x99BE, 0x141A), 123456789012.0),
    V("u64 123456789012 DCBA", U64, DCBA, W(0x141A, 0x99BE, 0x1C00, 0x0000), 123456789012.0),
    V("s64 123456789012 ABCD (Schneider Wh)", S64, ABCD, W(0x0000, 0x001C, 0xBE99, 0x1A14),
      123456789012.0),
    V("s64 -123456789012 ABCD", S64, ABCD, W(0xFFFF, 0xFFE3, 0x4166, 0xE5EC), -123456789012.0),
    V("s64 -123456789012 CDAB", S64, CDAB, W(0xE5EC, 0x4166, 0xFFE3, 0xFFFF), -123456789012.0),
    V("s64 -123456789012 BADC", S64, BADC, W(0xFFFF, 0xE3FF, 0x6641, 0xECE5), -123456789012.0),
    V("s64 -123456789012 DCBA", S64, DCBA, W(0xECE5, 0x6641, 0xE3FF, 0xFFFF), -123456789012.0),
    V("s64 -1", S64, ABCD, W(0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF), -1),
    V("s64 min", S64, ABCD, W(0x8000, 0x0000, 0x0000, 0x0000), -9223372036854775808.0),
    V("u64 2^53 (last exact integer step)", U64, ABCD, W(0x0020, 0x0000, 0x0000, 0x0000),
      9007199254740992.0),
    V("f64 12345.6789 ABCD", F64, ABCD, W(0x40C8, 0x1CD6, 0xE631, 0xF8A1), 12345.6789),
    V("f64 12345.6789 CDAB", F64, CDAB, W(0xF8A1, 0xE631, 0x1CD6, 0x40C8), 12345.6789),
    V("f64 12345.6789 BADC", F64, BADC, W(0xC840, 0xD61C, 0x31E6, 0xA1F8), 12345.6789),
    V("f64 12345.6789 DCBA", F64, DCBA, W(0xA1F8, 0x31E6, 0xD61C, 0xC840), 12345.6789),
    V("f64 -0.1 ABCD", F64, ABCD, W(0xBFB9, 0x9999, 0x9999, 0x999A), -0.1),
    /* NaN and infinities are never handed on as numbers */
    {"f32 quiet NaN ABCD", DCEM_F32, DCEM_ABCD, W(0x7FC0, 0x0000), 0, DCEM_ERANGE},
    {"f32 NaN 0xFFC00000 (PM5xxx n/a)", DCEM_F32, DCEM_ABCD, W(0xFFC0, 0x0000), 0, DCEM_ERANGE},
    {"f32 NaN CDAB", DCEM_F32, DCEM_CDAB, W(0x0000, 0x7FC0), 0, DCEM_ERANGE},
    {"f32 NaN DCBA", DCEM_F32, DCEM_DCBA, W(0x0000, 0xC07F), 0, DCEM_ERANGE},
    {"f32 signalling NaN", DCEM_F32, DCEM_ABCD, W(0x7F80, 0x0001), 0, DCEM_ERANGE},
    {"f32 +Inf", DCEM_F32, DCEM_ABCD, W(0x7F80, 0x0000), 0, DCEM_ERANGE},
    {"f32 -Inf BADC", DCEM_F32, DCEM_BADC, W(0x80FF, 0x0000), 0, DCEM_ERANGE},
    {"f64 NaN", DCEM_F64, DCEM_ABCD, W(0x7FF8, 0x0000, 0x0000, 0x0000), 0, DCEM_ERANGE},
    {"f64 NaN CDAB", DCEM_F64, DCEM_CDAB, W(0x0000, 0x0000, 0x0000, 0x7FF8), 0, DCEM_ERANGE},
    {"f64 +Inf", DCEM_F64, DCEM_ABCD, W(0x7FF0, 0x0000, 0x0000, 0x0000), 0, DCEM_ERANGE},
    {"f64 -Inf DCBA", DCEM_F64, DCEM_DCBA, W(0x0000, 0x0000, 0x0000, 0xF0FF), 0, DCEM_ERANGE},
    V("f32 largest finite", F32, ABCD, W(0x7F7F, 0xFFFF), 3.4028234663852886e38),
};
#undef V

static void test_vector(void **state)
{
    const vector_case *c = *state;
    double raw = -999;
    int rc = dcem_decode_raw(c->words, c->type, c->order, &raw);
    assert_int_equal(rc, c->rc);
    if (rc) {
        assert_true(raw == -999); /* untouched on error */
        return;
    }
    if (raw != c->want) fail_msg("decoded %.17g, want %.17g", raw, c->want);
    /* and the encoder writes exactly the datasheet's words */
    uint16_t out[4] = {0};
    dcem_encode_raw(c->want, c->type, c->order, out);
    assert_memory_equal(out, c->words, dcem_regtype_words(c->type) * sizeof out[0]);
}

/* ---- encode -> decode round trips, rounding and clamping ---- */

typedef struct trip_case {
    const char *name;
    int type;
    double raw, want; /* want NAN: decodes to DCEM_ERANGE */
} trip_case;

static const trip_case trips[] = {
    {"u16 0", DCEM_U16, 0, 0},
    {"u16 65535", DCEM_U16, 65535, 65535},
    {"u16 70000 clamps to 65535", DCEM_U16, 70000, 65535},
    {"u16 -1 clamps to 0", DCEM_U16, -1, 0},
    {"u16 2.5 rounds half away to 3", DCEM_U16, 2.5, 3},
    {"u16 NaN gives 0", DCEM_U16, NAN, 0},
    {"s16 -32768", DCEM_S16, -32768, -32768},
    {"s16 -40000 clamps to -32768", DCEM_S16, -40000, -32768},
    {"s16 40000 clamps to 32767", DCEM_S16, 40000, 32767},
    {"s16 -2.5 rounds to -3", DCEM_S16, -2.5, -3},
    {"s16 -2.4 rounds to -2", DCEM_S16, -2.4, -2},
    {"u32 4294967295", DCEM_U32, 4294967295.0, 4294967295.0},
    {"u32 5e9 clamps", DCEM_U32, 5e9, 4294967295.0},
    {"u32 -5 clamps to 0", DCEM_U32, -5, 0},
    {"u32 +Inf clamps", DCEM_U32, INFINITY, 4294967295.0},
    {"s32 -2147483648", DCEM_S32, -2147483648.0, -2147483648.0},
    {"s32 -1e10 clamps", DCEM_S32, -1e10, -2147483648.0},
    {"s32 1e10 clamps", DCEM_S32, 1e10, 2147483647.0},
    {"s32 -1", DCEM_S32, -1, -1},
    {"u64 2^53", DCEM_U64, 9007199254740992.0, 9007199254740992.0},
    {"u64 1e20 clamps to 2^64-1", DCEM_U64, 1e20, 18446744073709551615.0},
    {"u64 -1 clamps to 0", DCEM_U64, -1, 0},
    {"s64 -2^53", DCEM_S64, -9007199254740992.0, -9007199254740992.0},
    {"s64 1e19 clamps to 2^63-1", DCEM_S64, 1e19, 9223372036854775807.0},
    {"s64 -1e19 clamps to -2^63", DCEM_S64, -1e19, -9223372036854775808.0},
    {"s64 -123456789012", DCEM_S64, -123456789012.0, -123456789012.0},
    {"f32 12345.67 rounds to float", DCEM_F32, 12345.67, 12345.669921875},
    {"f32 -0.5", DCEM_F32, -0.5, -0.5},
    {"f32 1e39 becomes +Inf", DCEM_F32, 1e39, NAN},
    {"f32 -1e39 becomes -Inf", DCEM_F32, -1e39, NAN},
    {"f32 NaN stays NaN", DCEM_F32, NAN, NAN},
    {"f64 12345.6789", DCEM_F64, 12345.6789, 12345.6789},
    {"f64 -1e300", DCEM_F64, -1e300, -1e300},
    {"f64 NaN stays NaN", DCEM_F64, NAN, NAN},
    {"f64 -Inf stays -Inf", DCEM_F64, -INFINITY, NAN},
};

static void test_round_trip(void **state)
{
    const trip_case *c = *state;
    for (int order = DCEM_ABCD; order <= DCEM_DCBA; order++) {
        uint16_t w[4] = {0};
        double got = -999;
        dcem_encode_raw(c->raw, c->type, order, w);
        int rc = dcem_decode_raw(w, c->type, order, &got);
        if (isnan(c->want)) {
            assert_int_equal(rc, DCEM_ERANGE);
            continue;
        }
        assert_int_equal(rc, 0);
        if (got != c->want)
            fail_msg("%s: got %.17g, want %.17g", dcem_wordorder_name(order), got, c->want);
    }
}

/* ---- names and widths ---- */

static void test_names(void **state)
{
    (void)state;
    static const char *const types[] = {"u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64"};
    static const unsigned widths[] = {1, 1, 2, 2, 4, 4, 2, 4};
    for (int t = 0; t < DCEM_REGTYPE_COUNT; t++) {
        assert_string_equal(dcem_regtype_name(t), types[t]);
        assert_int_equal(dcem_regtype_words(t), widths[t]);
    }
    assert_null(dcem_regtype_name(DCEM_REGTYPE_COUNT));
    assert_null(dcem_regtype_name(-1));
    assert_string_equal(dcem_wordorder_name(DCEM_ABCD), "ABCD");
    assert_string_equal(dcem_wordorder_name(DCEM_CDAB), "CDAB");
    assert_string_equal(dcem_wordorder_name(DCEM_BADC), "BADC");
    assert_string_equal(dcem_wordorder_name(DCEM_DCBA), "DCBA");
    assert_null(dcem_wordorder_name(4));
    assert_string_equal(dcem_quantity_name(DCEM_Q_ENERGY_IMPORT_KWH), "energy_import_kwh");
    assert_string_equal(dcem_quantity_name(DCEM_Q_POWER_KW), "power_kw");
    assert_string_equal(dcem_quantity_name(DCEM_Q_VOLTAGE_LL_V), "voltage_ll_v");
    assert_string_equal(dcem_quantity_name(DCEM_Q_SCALE_FACTOR), "scale_factor");
    for (int q = 0; q < DCEM_Q_COUNT; q++) assert_non_null(dcem_quantity_name(q));
    assert_null(dcem_quantity_name(DCEM_Q_COUNT));
}

/* ---- documents that load ---- */

/* lines 1-5 of most test documents */
#define HEAD "model: m\nvendor: v\nsources: [s]\nmax_registers: 10\nregisters:\n"
/* a valid import counter, one line */
#define EI "  - {name: e, quantity: energy_import_kwh, function: 3, address: 0, type: u32}\n"

static void test_defaults(void **state)
{
    (void)state;
    dcem_profile *p = new_profile();
    char err[512] = "";
    int rc = parse_str(HEAD EI "  - name: p\n"
                               "    quantity: power_kw\n"
                               "    function: 4\n"
                               "    address: 0x0034\n"
                               "    type: f32\n"
                               "    order: CDAB\n"
                               "    phase: 2\n"
                               "    scale: 0.001\n"
                               "    min: -5\n"
                               "    max: 5\n"
                               "  - {name: f, quantity: frequency_hz, function: 4, address: 0072, "
                               "type: u16}\n",
                       p, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(p->model, "m");
    assert_string_equal(p->vendor, "v");
    assert_string_equal(p->description, "");
    assert_int_equal(p->max_registers, 10);
    assert_int_equal(p->max_gap, 0);
    assert_int_equal(p->sunspec_model, 0);
    assert_int_equal(p->n_regs, 3);
    const dcem_register *e = &p->regs[0], *pw = &p->regs[1], *f = &p->regs[2];
    assert_string_equal(e->name, "e");
    assert_int_equal(e->quantity, DCEM_Q_ENERGY_IMPORT_KWH);
    assert_int_equal(e->phase, 0);
    assert_int_equal(e->function, 3);
    assert_int_equal(e->address, 0);
    assert_int_equal(e->type, DCEM_U32);
    assert_int_equal(e->order, DCEM_ABCD);
    assert_true(e->scale == 1);
    assert_string_equal(e->scale_register, "");
    assert_true(e->min == 0 && e->max == 1e12); /* energy: never negative */
    assert_int_equal(e->line, 6);
    assert_int_equal(pw->address, 0x34);
    assert_int_equal(pw->order, DCEM_CDAB);
    assert_int_equal(pw->phase, 2);
    assert_true(pw->scale == 0.001);
    assert_true(pw->min == -5 && pw->max == 5);
    assert_int_equal(pw->line, 7);
    assert_int_equal(f->address, 72); /* leading zeros are decimal, not octal */
    assert_true(f->min == 0 && f->max == 100);
    assert_int_equal(dcem_profile_find(p, DCEM_Q_POWER_KW, 2), 1);
    assert_int_equal(dcem_profile_find(p, DCEM_Q_POWER_KW, 0), -1);
    assert_int_equal(dcem_profile_find(p, DCEM_Q_ENERGY_IMPORT_KWH, 0), 0);
    assert_int_equal(dcem_profile_find(p, DCEM_Q_FREQUENCY_HZ, 0), 2);
    free(p);
}

/* ---- broken documents ---- */

typedef struct bad_case {
    const char *name;
    const char *yaml;
    const char *want; /* the whole error message */
} bad_case;

#define PROFILE_KEYS                                                                               \
    "model, vendor, description, sources, max_registers, max_gap, sunspec_model, registers"
#define REG_KEYS                                                                                   \
    "name, quantity, phase, function, address, type, order, scale, scale_register, min, max"
#define REG(rest) "  - {name: r, quantity: power_kw, function: 3, address: 0, " rest "}\n"

static const bad_case bad_cases[] = {
    {"unknown top-level key names the valid keys", HEAD EI "colour: red\n",
     "profile.yaml:7: colour: unknown key (valid: " PROFILE_KEYS ")"},
    {"unknown key in a register names the valid keys",
     HEAD "  - {name: e, quantity: energy_import_kwh, function: 3, address: 0, type: u32, "
          "colour: red}\n",
     "profile.yaml:6: registers[0].colour: unknown key (valid: " REG_KEYS ")"},
    {"bad type name", HEAD EI REG("type: float"),
     "profile.yaml:7: registers[1].type: 'float' is not one of: u16, s16, u32, s32, u64, s64, "
     "f32, f64"},
    {"bad order", HEAD EI REG("type: f32, order: ADCB"),
     "profile.yaml:7: registers[1].order: 'ADCB' is not one of: ABCD, CDAB, BADC, DCBA"},
    {"lower-case order", HEAD EI REG("type: f32, order: abcd"),
     "profile.yaml:7: registers[1].order: 'abcd' is not one of: ABCD, CDAB, BADC, DCBA"},
    {"bad quantity", HEAD EI "  - {name: r, quantity: power_w, function: 3, address: 0, "
                            "type: u16}\n",
     "profile.yaml:7: registers[1].quantity: 'power_w' is not one of: energy_import_kwh, "
     "energy_export_kwh, energy_total_kwh, power_kw, reactive_kvar, apparent_kva, voltage_v, "
     "voltage_ll_v, current_a, power_factor, frequency_hz, scale_factor, ct_ratio, pt_ratio"},
    {"function 5", HEAD EI "  - {name: r, quantity: power_kw, function: 5, address: 0, "
                          "type: u16}\n",
     "profile.yaml:7: registers[1].function: 5: use 3 (holding registers) or 4 (input "
     "registers)"},
    {"function 0x03 is not an integer", HEAD EI "  - {name: r, quantity: power_kw, function: "
                                               "0x03, address: 0, type: u16}\n",
     "profile.yaml:7: registers[1].function: expected an integer, got '0x03'"},
    {"duplicate register name points at the first",
     HEAD EI "  - {name: e, quantity: power_kw, function: 3, address: 2, type: u16}\n",
     "profile.yaml:7: registers[1].name: 'e' already declared at line 6"},
    {"register name with a space", HEAD EI "  - {name: p w, quantity: power_kw, function: 3, "
                                          "address: 2, type: u16}\n",
     "profile.yaml:7: registers[1].name: 'p w': use letters, digits, '_', '-' or '.'"},
    {"unknown scale_register", HEAD EI REG("type: s16, scale_register: W_SF"),
     "profile.yaml:7: registers[1].scale_register: 'W_SF' is not a register of this profile"},
    {"scale_register that is not a scale factor", HEAD EI REG("type: s16, scale_register: e"),
     "profile.yaml:7: registers[1].scale_register: 'e' is not a scale_factor register"},
    {"scale factor read with another function",
     HEAD EI "  - {name: sf, quantity: scale_factor, function: 4, address: 9, type: s16}\n" REG(
         "type: s16, scale_register: sf"),
     "profile.yaml:8: registers[2].scale_register: 'sf' is read with another function"},
    {"scale factor that is not s16",
     HEAD EI "  - {name: sf, quantity: scale_factor, function: 3, address: 9, type: u16}\n",
     "profile.yaml:7: registers[1].type: a scale_factor register must be s16, got u16"},
    {"scale factor with a scale factor",
     HEAD EI "  - {name: sf, quantity: scale_factor, function: 3, address: 9, type: s16, "
             "scale_register: sf}\n",
     "profile.yaml:7: registers[1].scale_register: a scale_factor register cannot have one"},
    {"duplicate key in a register", HEAD EI REG("address: 0xFFFF, type: u32"),
     "profile.yaml:7: registers[1].address: duplicate key"},
    {"address overflow: u32 at 0xFFFF",
     HEAD EI "  - {name: r, quantity: power_kw, function: 3, address: 0xFFFF, type: u32}\n",
     "profile.yaml:7: registers[1].address: 65535 + 2 registers of u32 runs past register "
     "65535"},
    {"address overflow: f64 at 65533",
     HEAD EI "  - {name: r, quantity: power_kw, function: 3, address: 65533, type: f64}\n",
     "profile.yaml:7: registers[1].address: 65533 + 4 registers of f64 runs past register "
     "65535"},
    {"address 65536", HEAD EI "  - {name: r, quantity: power_kw, function: 3, address: 65536, "
                             "type: u16}\n",
     "profile.yaml:7: registers[1].address: '65536' is not a register address (0-65535, "
     "decimal or 0x hex)"},
    {"address 0x10000", HEAD EI "  - {name: r, quantity: power_kw, function: 3, address: "
                               "0x10000, type: u16}\n",
     "profile.yaml:7: registers[1].address: '0x10000' is not a register address (0-65535, "
     "decimal or 0x hex)"},
    {"address 0x1G", HEAD EI "  - {name: r, quantity: power_kw, function: 3, address: 0x1G, "
                            "type: u16}\n",
     "profile.yaml:7: registers[1].address: '0x1G' is not a register address (0-65535, "
     "decimal or 0x hex)"},
    {"address -1", HEAD EI "  - {name: r, quantity: power_kw, function: 3, address: -1, "
                          "type: u16}\n",
     "profile.yaml:7: registers[1].address: '-1' is not a register address (0-65535, decimal "
     "or 0x hex)"},
    {"address 0x (no digits)", HEAD EI "  - {name: r, quantity: power_kw, function: 3, "
                                      "address: 0x, type: u16}\n",
     "profile.yaml:7: registers[1].address: '0x' is not a register address (0-65535, decimal "
     "or 0x hex)"},
    {"missing address", HEAD EI "  - {name: r, quantity: power_kw, function: 3, type: u16}\n",
     "profile.yaml:7: registers[1]: missing required key 'address'"},
    {"missing energy register", HEAD REG("type: u16"),
     "profile.yaml:1: registers: no energy_import_kwh register at phase 0 (the counter dcem "
     "sums)"},
    {"import counter only per phase",
     HEAD "  - {name: e1, quantity: energy_import_kwh, phase: 1, function: 3, address: 0, "
          "type: u32}\n",
     "profile.yaml:1: registers: no energy_import_kwh register at phase 0 (the counter dcem "
     "sums)"},
    {"two import counters at phase 0",
     HEAD EI "  - {name: e2, quantity: energy_import_kwh, function: 3, address: 2, type: u32}\n",
     "profile.yaml:7: registers[1].quantity: energy_import_kwh at phase 0 is already read by 'e' "
     "(line 6)"},
    {"two total powers",
     HEAD EI REG("type: u16") "  - {name: r2, quantity: power_kw, function: 3, address: 4, "
                              "type: u16}\n",
     "profile.yaml:8: registers[2].quantity: power_kw at phase 0 is already read by 'r' (line "
     "7)"},
    {"phase 4", HEAD EI REG("type: u16, phase: 4"),
     "profile.yaml:7: registers[1].phase: must be <= 3, got 4"},
    {"scale 0", HEAD EI REG("type: u16, scale: 0"),
     "profile.yaml:7: registers[1].scale: must not be 0"},
    {"min above max", HEAD EI REG("type: u16, min: 10, max: 5"),
     "profile.yaml:7: registers[1].min: 10 is above max 5"},
    {"min above the default max", HEAD EI REG("type: u16, min: 2e6"),
     "profile.yaml:7: registers[1].min: 2e+06 is above max 1e+06"},
    {"u64 wider than max_registers",
     "model: m\nvendor: v\nsources: [s]\nmax_registers: 2\nregisters:\n"
     "  - {name: e, quantity: energy_import_kwh, function: 3, address: 0, type: u64}\n",
     "profile.yaml:6: registers[0].type: u64 takes 4 registers, more than max_registers 2"},
    {"max_registers 126", "model: m\nvendor: v\nsources: [s]\nmax_registers: 126\n"
                          "registers:\n" EI,
     "profile.yaml:4: max_registers: must be <= 125, got 126"},
    {"max_registers 0", "model: m\nvendor: v\nsources: [s]\nmax_registers: 0\nregisters:\n" EI,
     "profile.yaml:4: max_registers: must be >= 1, got 0"},
    {"max_gap 126", HEAD EI "max_gap: 126\n", "profile.yaml:7: max_gap: must be <= 125, got 126"},
    {"missing max_registers", "model: m\nvendor: v\nsources: [s]\nregisters:\n" EI,
     "profile.yaml:1: max_registers: missing required key 'max_registers'"},
    {"missing sources", "model: m\nvendor: v\nmax_registers: 10\nregisters:\n" EI,
     "profile.yaml:1: sources: missing required key 'sources'"},
    {"empty sources", "model: m\nvendor: v\nsources: []\nmax_registers: 10\nregisters:\n" EI,
     "profile.yaml:3: sources: at least 1 items required, got 0"},
    {"model with a slash", "model: a/b\nvendor: v\nsources: [s]\nmax_registers: 10\n"
                           "registers:\n" EI,
     "profile.yaml:1: model: 'a/b': use letters, digits, '_', '-' or '.'"},
    {"empty registers", "model: m\nvendor: v\nsources: [s]\nmax_registers: 10\nregisters: []\n",
     "profile.yaml:5: registers: at least 1 items required, got 0"},
    {"sunspec_model 202", HEAD EI "sunspec_model: 202\n",
     "profile.yaml:7: sunspec_model: 202: use 0 (plain map), 203 or 213"},
    {"SunSpec offset past the 203 block", HEAD EI "  - {name: r, quantity: power_kw, function: "
                                                 "3, address: 106, type: s32}\n"
                                                 "sunspec_model: 203\n",
     "profile.yaml:7: registers[1].address: offset 106 + 2 runs past the end of SunSpec model "
     "203 (107 registers)"},
    {"SunSpec register read with function 4",
     HEAD "  - {name: e, quantity: energy_import_kwh, function: 4, address: 46, type: u32}\n"
          "sunspec_model: 213\n",
     "profile.yaml:6: registers[0].function: SunSpec models are holding registers: use 3"},
    {"YAML syntax error", HEAD EI "  - {name: r, quantity: power_kw\n",
     "profile.yaml:8: (top): YAML syntax: did not find expected ',' or '}'"},
    {"a register given as a list", HEAD "  - [e, energy_import_kwh, 3, 0, u32]\n",
     "profile.yaml:6: registers[0]: expected a mapping of keys to values"},
};

static void test_bad_document(void **state)
{
    const bad_case *c = *state;
    dcem_profile *p = new_profile();
    char err[1024] = "";
    int rc = parse_str(c->yaml, p, err, sizeof err);
    free(p);
    assert_string_equal(err, c->want);
    assert_int_equal(rc, DCEM_ECONFIG);
}

/* ---- values: scales, scale factors, sentinels, ranges ---- */

/* A SunSpec 203 fragment (offsets) and a plain map, for dcem_profile_value. */
static const char sunspec_doc[] =
    "model: s\nvendor: v\nsources: [s]\nmax_registers: 100\nsunspec_model: 203\nregisters:\n"
    "  - {name: W, quantity: power_kw, function: 3, address: 18, type: s16, scale: 0.001, "
    "scale_register: W_SF}\n"
    "  - {name: W_SF, quantity: scale_factor, function: 3, address: 22, type: s16}\n"
    "  - {name: PF, quantity: power_factor, function: 3, address: 33, type: s16, scale: 0.01, "
    "scale_register: PF_SF}\n"
    "  - {name: PF_SF, quantity: scale_factor, function: 3, address: 37, type: s16}\n"
    "  - {name: E, quantity: energy_import_kwh, function: 3, address: 46, type: u32, "
    "scale: 0.001, scale_register: E_SF}\n"
    "  - {name: E_SF, quantity: scale_factor, function: 3, address: 54, type: s16}\n"
    "  - {name: Hz, quantity: frequency_hz, function: 3, address: 16, type: u16}\n";

static const char plain_doc[] =
    "model: p\nvendor: v\nsources: [s]\nmax_registers: 100\nregisters:\n"
    "  - {name: E, quantity: energy_import_kwh, function: 3, address: 10, type: u32, "
    "scale: 0.01}\n"
    "  - {name: Wh, quantity: energy_export_kwh, function: 3, address: 20, type: s64, "
    "scale: 0.001}\n"
    "  - {name: V, quantity: voltage_v, function: 3, address: 0x61, type: u16, scale: 0.1}\n"
    "  - {name: P, quantity: power_kw, function: 4, address: 0x28, type: s32, order: CDAB, "
    "scale: 0.0001}\n"
    "  - {name: PF, quantity: power_factor, function: 4, address: 0x3E, type: f32}\n";

typedef struct value_case {
    const char *name;
    int sunspec; /* 1: sunspec_doc, 0: plain_doc */
    const char *reg;
    uint16_t words[4];
    int16_t sf;     /* scale factor word, when has_sf */
    int has_sf;     /* 0: sf_words NULL */
    double want;    /* exact */
    int rc;
} value_case;

static const value_case value_cases[] = {
    {"Acrel energy: raw 123456 at 0.01 is 1234.56 kWh", 0, "E", W(0x0001, 0xE240), 0, 0,
     1234.56, 0},
    {"Schneider INT64 123456789 Wh is 123456.789 kWh", 0, "Wh", W(0, 0, 0x075B, 0xCD15), 0, 0,
     123456.789, 0},
    {"u16 0.1 V: 2301 is 230.1 V", 0, "V", W(2301), 0, 0, 230.1, 0},
    {"plain map: 0xFFFF is no sentinel (6553.5 V)", 0, "V", W(0xFFFF), 0, 0, 6553.5, 0},
    {"CDAB s32 0.1 W: -123456 is -12.3456 kW", 0, "P", W(0x1DC0, 0xFFFE), 0, 0, -12.3456, 0},
    {"PF 1.5 is out of range", 0, "PF", W(0x3FC0, 0x0000), 0, 0, 0, DCEM_ERANGE},
    {"PF -0.5 is in range", 0, "PF", W(0xBF00, 0x0000), 0, 0, -0.5, 0},
    {"PF NaN", 0, "PF", W(0x7FC0, 0x0000), 0, 0, 0, DCEM_ERANGE},
    {"negative energy is out of range", 0, "Wh", W(0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF), 0, 0, 0,
     DCEM_ERANGE},
    {"SunSpec W 1234 x 10^-1 W is 0.1234 kW", 1, "W", W(1234), -1, 1, 0.1234, 0},
    {"SunSpec W -1234 x 10^2 W is -123.4 kW", 1, "W", W((uint16_t)-1234), 2, 1, -123.4, 0},
    {"SunSpec PF 9950 x 10^-2 % is 0.995", 1, "PF", W(9950), -2, 1, 0.995, 0},
    {"SunSpec PF -85 % at SF 0 is -0.85", 1, "PF", W((uint16_t)-85), 0, 1, -0.85, 0},
    {"SunSpec TotWhImp 12345678 Wh is 12345.678 kWh", 1, "E", W(0x00BC, 0x614E), 0, 1,
     12345.678, 0},
    {"SunSpec TotWhImp x 10^3 Wh", 1, "E", W(0x0000, 0x3039), 3, 1, 12345, 0},
    {"SunSpec W 0x8000 is not implemented", 1, "W", W(0x8000), 0, 1, 0, DCEM_ENOTFOUND},
    {"SunSpec sunssf 0x8000 is not implemented", 1, "W", W(100), -32768, 1, 0, DCEM_ENOTFOUND},
    {"SunSpec SF 11 is out of range", 1, "W", W(100), 11, 1, 0, DCEM_ERANGE},
    {"SunSpec SF -10 is allowed", 1, "W", W(1), -10, 1, 1e-13, 0},
    {"SunSpec acc32 0 is not accumulated", 1, "E", W(0, 0), 0, 1, 0, DCEM_ENOTFOUND},
    {"SunSpec acc32 0xFFFFFFFF is not implemented", 1, "E", W(0xFFFF, 0xFFFF), 0, 1, 0,
     DCEM_ENOTFOUND},
    {"SunSpec u16 0xFFFF is not implemented", 1, "Hz", W(0xFFFF), 0, 0, 0, DCEM_ENOTFOUND},
    {"SunSpec u16 50 Hz", 1, "Hz", W(50), 0, 0, 50, 0},
    {"scale register words missing", 1, "W", W(100), 0, 0, 0, DCEM_EINVAL},
};

static void test_value(void **state)
{
    const value_case *c = *state;
    dcem_profile *p = new_profile();
    char err[512] = "";
    int rc = parse_str(c->sunspec ? sunspec_doc : plain_doc, p, err, sizeof err);
    if (rc) fail_msg("%s", err);
    uint16_t sf = (uint16_t)c->sf;
    double v = -999;
    rc = dcem_profile_value(p, (size_t)reg_index(p, c->reg), c->words, c->has_sf ? &sf : NULL,
                            &v);
    free(p);
    assert_int_equal(rc, c->rc);
    if (!rc && v != c->want) fail_msg("got %.17g, want %.17g", v, c->want);
    if (rc) assert_true(v == -999);
}

static void test_value_bad_index(void **state)
{
    (void)state;
    dcem_profile *p = new_profile();
    char err[512] = "";
    if (parse_str(plain_doc, p, err, sizeof err)) fail_msg("%s", err);
    uint16_t w[4] = {0};
    double v;
    assert_int_equal(dcem_profile_value(p, p->n_regs, w, NULL, &v), DCEM_EINVAL);
    free(p);
}

/* ---- SunSpec discovery ---- */

#define SUNS 0x5375, 0x6E53

typedef struct sunspec_case {
    const char *name;
    uint16_t head[8];  /* the first words; the rest of the buffer is 0 */
    size_t n;          /* words given */
    size_t model1_len; /* 0: none; else a model 1 header at words[2] with this L */
    int model;
    int rc;
    unsigned want_addr, want_len;
} sunspec_case;

static const sunspec_case sunspec_cases[] = {
    {"model 1 (L 66) then 203", {SUNS}, 180, 66, 203, 0, 40070, 105},
    {"model 1 (L 65, older) then 203", {SUNS}, 180, 65, 203, 0, 40069, 105},
    {"model 1 then 213", {SUNS}, 200, 66, 213, 0, 40070, 124},
    {"model 1 then 203 then end: 213 absent", {SUNS}, 200, 66, 213, DCEM_ERANGE, 0, 0},
    {"only the marker and model 1: read on at 40070", {SUNS}, 70, 66, 203, DCEM_EFULL, 40070, 0},
    {"half a header is not a header", {SUNS}, 71, 66, 203, DCEM_EFULL, 40070, 0},
    {"end marker at once", {SUNS, 0xFFFF, 0}, 4, 0, 203, DCEM_ERANGE, 0, 0},
    {"no marker", {0x0000, 0x0000}, 4, 0, 203, DCEM_EINVAL, 0, 0},
    {"byte-swapped marker", {0x7553, 0x536E}, 4, 0, 203, DCEM_EINVAL, 0, 0},
    {"one word", {0x5375}, 1, 0, 203, DCEM_EINVAL, 0, 0},
    {"a header whose L leaves the address space", {SUNS, 1, 0xFFF0}, 8, 0, 203, DCEM_EINVAL, 0,
     0},
};

static void test_sunspec_find(void **state)
{
    const sunspec_case *c = *state;
    uint16_t words[256] = {0};
    memcpy(words, c->head, sizeof c->head);
    if (c->model1_len) {
        /* model 1, then 203 (L 105) or, after it, 213 (L 124) per the case's
         * model; "absent" cases end the chain after 203 */
        size_t at = 2;
        words[at] = 1, words[at + 1] = (uint16_t)c->model1_len;
        at += 2 + c->model1_len;
        words[at] = c->model == 213 && c->rc == 0 ? 213 : 203;
        words[at + 1] = words[at] == 213 ? 124 : 105;
        at += 2 + words[at + 1];
        if (at + 1 < sizeof words / sizeof words[0]) words[at] = 0xFFFF, words[at + 1] = 0;
    }
    unsigned addr = 0, len = 0;
    int rc = dcem_sunspec_find(words, c->n, 40000, c->model, &addr, &len);
    assert_int_equal(rc, c->rc);
    if (rc == 0 || rc == DCEM_EFULL) assert_int_equal(addr, c->want_addr);
    if (rc == 0) assert_int_equal(len, c->want_len);
}

/* ---- the read planner ---- */

typedef struct plan_reg {
    int function;
    unsigned address;
    int type;
} plan_reg;

typedef struct plan_case {
    const char *name;
    unsigned max_registers, max_gap, base;
    plan_reg regs[6];
    size_t n_regs, max;
    int want_n; /* or an error */
    dcem_read_req want[4];
} plan_case;

static const plan_case plan_cases[] = {
    {"adjacent registers coalesce", 125, 0, 0,
     {{3, 0, DCEM_F32}, {3, 2, DCEM_F32}, {3, 4, DCEM_U16}}, 3, 8, 1, {{3, 0, 5}}},
    {"a gap of max_gap is bridged", 125, 2, 0, {{3, 0, DCEM_F32}, {3, 4, DCEM_F32}}, 2, 8, 1,
     {{3, 0, 6}}},
    {"a gap above max_gap splits", 125, 1, 0, {{3, 0, DCEM_F32}, {3, 4, DCEM_F32}}, 2, 8, 2,
     {{3, 0, 2}, {3, 4, 2}}},
    {"a gap with max_gap 0 splits", 125, 0, 0, {{4, 10, DCEM_U16}, {4, 12, DCEM_U16}}, 2, 8, 2,
     {{4, 10, 1}, {4, 12, 1}}},
    {"the span limit splits", 4, 0, 0, {{3, 0, DCEM_F32}, {3, 2, DCEM_F32}, {3, 4, DCEM_F32}}, 3,
     8, 2, {{3, 0, 4}, {3, 4, 2}}},
    {"a span of exactly max_registers fits", 6, 0, 0,
     {{3, 0, DCEM_F32}, {3, 2, DCEM_F32}, {3, 4, DCEM_F32}}, 3, 8, 1, {{3, 0, 6}}},
    {"a bridged gap counts toward the span", 5, 2, 0, {{3, 0, DCEM_F32}, {3, 4, DCEM_F32}}, 2,
     8, 2, {{3, 0, 2}, {3, 4, 2}}},
    {"two functions never merge", 125, 125, 0, {{3, 0, DCEM_U16}, {4, 1, DCEM_U16}}, 2, 8, 2,
     {{3, 0, 1}, {4, 1, 1}}},
    {"same address, two functions", 125, 0, 0, {{4, 0, DCEM_U32}, {3, 0, DCEM_U32}}, 2, 8, 2,
     {{3, 0, 2}, {4, 0, 2}}},
    {"unsorted input comes out sorted", 125, 0, 0,
     {{4, 20, DCEM_U16}, {3, 9, DCEM_U16}, {4, 10, DCEM_U16}, {3, 1, DCEM_U16}}, 4, 8, 4,
     {{3, 1, 1}, {3, 9, 1}, {4, 10, 1}, {4, 20, 1}}},
    {"overlapping registers share a request", 125, 0, 0, {{3, 0, DCEM_U32}, {3, 1, DCEM_U16}},
     2, 8, 1, {{3, 0, 2}}},
    {"a register inside another", 125, 0, 0, {{3, 0, DCEM_U64}, {3, 1, DCEM_U16}}, 2, 8, 1,
     {{3, 0, 4}}},
    {"SunSpec base shifts every address", 125, 8, 40070,
     {{3, 18, DCEM_S16}, {3, 22, DCEM_S16}, {3, 46, DCEM_U32}, {3, 54, DCEM_S16}}, 4, 8, 2,
     {{3, 40088, 5}, {3, 40116, 9}}},
    {"the last register 65535", 125, 0, 0, {{3, 65535, DCEM_U16}}, 1, 8, 1, {{3, 65535, 1}}},
    {"base + address past 65535", 125, 0, 65535, {{3, 0, DCEM_U32}}, 1, 8, DCEM_ERANGE, {{0}}},
    {"more requests than room", 125, 0, 0, {{3, 0, DCEM_U16}, {3, 5, DCEM_U16}}, 2, 1,
     DCEM_EFULL, {{0}}},
    {"a register wider than max_registers", 2, 0, 0, {{3, 0, DCEM_U64}}, 1, 8, DCEM_EINVAL,
     {{0}}},
    {"no registers, no requests", 125, 0, 0, {{0}}, 0, 8, 0, {{0}}},
};

static void test_plan(void **state)
{
    const plan_case *c = *state;
    dcem_profile *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->max_registers = c->max_registers;
    p->max_gap = c->max_gap;
    p->n_regs = c->n_regs;
    for (size_t i = 0; i < c->n_regs; i++) {
        p->regs[i].function = c->regs[i].function;
        p->regs[i].address = c->regs[i].address;
        p->regs[i].type = c->regs[i].type;
    }
    dcem_read_req out[8];
    memset(out, 0xA5, sizeof out);
    int n = dcem_profile_plan(p, c->base, out, c->max);
    int counted = dcem_profile_plan(p, c->base, NULL, 0); /* count only */
    free(p);
    assert_int_equal(n, c->want_n);
    if (n < 0) return;
    assert_int_equal(counted, n);
    for (int i = 0; i < n; i++) {
        if (out[i].function != c->want[i].function || out[i].address != c->want[i].address ||
            out[i].count != c->want[i].count)
            fail_msg("request %d: got fc%d %u+%u, want fc%d %u+%u", i, out[i].function,
                     out[i].address, out[i].count, c->want[i].function, c->want[i].address,
                     c->want[i].count);
    }
}

/* Every register of p lies wholly inside exactly one request of its function
 * (the ct_ratio/pt_ratio registers inside none: a poll does not read them),
 * and the requests respect the device's limit and come out sorted. */
static void check_plan_covers(const dcem_profile *p, unsigned base, const dcem_read_req *req,
                              int n)
{
    for (int k = 0; k < n; k++) {
        assert_true(req[k].count >= 1 && req[k].count <= p->max_registers);
        if (k > 0)
            assert_true(req[k - 1].function < req[k].function ||
                        (req[k - 1].function == req[k].function &&
                         req[k - 1].address + req[k - 1].count <= req[k].address));
    }
    for (size_t i = 0; i < p->n_regs; i++) {
        const dcem_register *r = &p->regs[i];
        unsigned a = base + r->address, w = dcem_regtype_words(r->type);
        int hits = 0;
        for (int k = 0; k < n; k++)
            hits += req[k].function == r->function && a >= req[k].address &&
                    a + w <= req[k].address + req[k].count;
        int want = dcem_register_is_ratio(r) ? 0 : 1;
        if (hits != want)
            fail_msg("%s: '%s' is in %d requests, want %d", p->model, r->name, hits, want);
    }
}

/* The request holding register i (its function and wire address). */
static int request_of(const dcem_profile *p, size_t i, unsigned base, const dcem_read_req *req,
                      int n)
{
    const dcem_register *r = &p->regs[i];
    for (int k = 0; k < n; k++)
        if (req[k].function == r->function && base + r->address >= req[k].address &&
            base + r->address < req[k].address + req[k].count)
            return k;
    return -1;
}

/* SDM630: 0x0000-0x004B is 76 registers (<= 80, holes <= max_gap 20), and
 * the per-phase import counters at 0x015A-0x015F are 266 registers further
 * on, beyond any single read: 2 requests is the minimum, and the planner must
 * find it. */
static void test_plan_sdm630(void **state)
{
    (void)state;
    dcem_profile *p = load_shipped("eastron-sdm630");
    assert_int_equal(p->max_registers, 80);
    dcem_read_req req[16];
    int n = dcem_profile_plan(p, 0, req, 16);
    assert_int_equal(n, 2);
    assert_int_equal(req[0].function, 4);
    assert_int_equal(req[0].address, 0x0000);
    assert_int_equal(req[0].count, 76);
    assert_int_equal(req[1].function, 4);
    assert_int_equal(req[1].address, 0x0156);
    assert_int_equal(req[1].count, 10);
    check_plan_covers(p, 0, req, n);
    /* without gap bridging every cluster is its own read */
    p->max_gap = 0;
    assert_int_equal(dcem_profile_plan(p, 0, NULL, 0), 7);
    free(p);
}

/* Plans around what a device refuses: a refused register is never covered
 * and a cut ends a request, and the rest stays coalesced. */
static void test_plan_rules(void **state)
{
    (void)state;
    dcem_profile *p = load_shipped("eastron-sdm630");
    dcem_plan_rules rules;
    dcem_plan_rules_init(&rules, p);
    dcem_read_req req[16];
    assert_int_equal(dcem_profile_plan_rules(p, 0, &rules, req, 16), 2); /* as without rules */
    int pf1 = dcem_profile_find(p, DCEM_Q_POWER_FACTOR, 1);
    int freq = dcem_profile_find(p, DCEM_Q_FREQUENCY_HZ, 0);
    int l1 = dcem_profile_find(p, DCEM_Q_ENERGY_IMPORT_KWH, 1);
    int l2 = dcem_profile_find(p, DCEM_Q_ENERGY_IMPORT_KWH, 2);
    int l3 = dcem_profile_find(p, DCEM_Q_ENERGY_IMPORT_KWH, 3);
    assert_true(pf1 >= 0 && freq >= 0 && l1 >= 0 && l2 >= 0 && l3 >= 0);
    /* pf_l1 (0x001E) refused: the first read splits around it */
    rules.reg[pf1] = DCEM_PLAN_REFUSED;
    int n = dcem_profile_plan_rules(p, 0, &rules, req, 16);
    assert_int_equal(n, 3);
    assert_int_equal(req[0].address, 0x0000);
    assert_int_equal(req[0].count, 0x0012); /* V, I, P: up to 0x0011 */
    assert_int_equal(req[1].address, 0x0020); /* pf_l2 on, up to export 0x004B */
    assert_int_equal(req[1].count, 0x004C - 0x0020);
    for (int k = 0; k < n; k++) /* no request touches 0x001E-0x001F */
        assert_true(req[k].address + req[k].count <= 0x001E || req[k].address >= 0x0020);
    /* a cut after the frequency (0x0046): the counter at 0x0048 starts anew */
    rules.cut[freq] = 1;
    n = dcem_profile_plan_rules(p, 0, &rules, req, 16);
    assert_int_equal(n, 4);
    assert_int_equal(req[1].address + req[1].count, 0x0048);
    assert_int_equal(req[2].address, 0x0048);
    /* the per-phase counters refused: 0x0156 read alone */
    rules.reg[l1] = rules.reg[l2] = rules.reg[l3] = DCEM_PLAN_REFUSED;
    n = dcem_profile_plan_rules(p, 0, &rules, req, 16);
    assert_int_equal(n, 4);
    assert_int_equal(req[3].address, 0x0156);
    assert_int_equal(req[3].count, 2);
    /* SKIP registers are not read but may be read across */
    dcem_plan_rules_init(&rules, p);
    rules.reg[pf1] = DCEM_PLAN_SKIP;
    n = dcem_profile_plan_rules(p, 0, &rules, req, 16);
    assert_int_equal(n, 2);
    assert_int_equal(req[0].count, 76);
    free(p);
    /* the ratio registers are never in the per-poll plan, only on demand */
    p = load_shipped("acrel-adl400");
    int ct = dcem_profile_find(p, DCEM_Q_CT_RATIO, 0), pt = dcem_profile_find(p, DCEM_Q_PT_RATIO, 0);
    assert_true(ct >= 0 && pt >= 0);
    n = dcem_profile_plan(p, 0, req, 16);
    for (int k = 0; k < n; k++)
        assert_true(req[k].address > 0x008E || req[k].address + req[k].count <= 0x008D);
    memset(&rules, 0, sizeof rules);
    for (size_t i = 0; i < p->n_regs; i++) rules.reg[i] = DCEM_PLAN_SKIP;
    rules.reg[ct] = rules.reg[pt] = DCEM_PLAN_READ;
    assert_int_equal(dcem_profile_plan_rules(p, 0, &rules, req, 16), 1);
    assert_int_equal(req[0].address, 0x008D);
    assert_int_equal(req[0].count, 2);
    free(p);
}

/* SunSpec 203: every value and its scale factor in the same request (the
 * SF may change between reads), here all in one. */
static void test_plan_sunspec203(void **state)
{
    (void)state;
    dcem_profile *p = load_shipped("sunspec-203");
    dcem_read_req req[16];
    int n = dcem_profile_plan(p, 40070, req, 16);
    assert_int_equal(n, 1);
    assert_int_equal(req[0].function, 3);
    assert_int_equal(req[0].address, 40072);
    assert_int_equal(req[0].count, 53);
    check_plan_covers(p, 40070, req, n);
    for (size_t i = 0; i < p->n_regs; i++) {
        if (!p->regs[i].scale_register[0]) continue;
        size_t j = (size_t)reg_index(p, p->regs[i].scale_register);
        assert_int_equal(request_of(p, i, 40070, req, n), request_of(p, j, 40070, req, n));
    }
    free(p);
}

/* ---- shipped profiles ---- */

/* What a profile reads besides its import counter (which every one has). */
enum {
    HAS_P = 1,    /* total active power */
    HAS_V = 2,    /* L1-N voltage */
    HAS_I = 4,    /* L1 current */
    HAS_HZ = 8,   /* frequency */
    HAS_EXP = 16, /* export counter */
    HAS_PF = 32,  /* total or per-phase power factor */
    HAS_METER = HAS_P | HAS_V | HAS_I | HAS_HZ | HAS_EXP,
};

typedef struct shipped_case {
    const char *name; /* the model = file stem */
    int sunspec_model;
    int requests;       /* what the per-poll plan needs, at base 40070 for SunSpec */
    int has;            /* HAS_* of the profile, exactly */
    int ratio_requests; /* 0: primary-side values, no ratio registers; else the
                           requests of a ratio refresh (ct_ratio + pt_ratio) */
} shipped_case;

/* The request counts are pinned: a profile edit that changes how many reads
 * a poll takes must change this table too (and say why in the file). */
static const shipped_case shipped[] = {
    {"eastron-sdm630", 0, 2, HAS_METER | HAS_PF, 0},
    {"acrel-adl400", 0, 4, HAS_METER | HAS_PF, 1},  /* secondary side */
    {"chint-dtsu666", 0, 4, HAS_METER | HAS_PF, 1}, /* secondary side */
    {"schneider-pm5xxx", 0, 3, HAS_METER, 0},
    {"abb-b23", 0, 5, HAS_METER | HAS_PF, 0},
    {"janitza-umg", 0, 2, HAS_METER | HAS_PF, 0},
    {"carlo-gavazzi-em24", 0, 3, HAS_METER | HAS_PF, 0},
    {"sunspec-203", 203, 1, HAS_METER | HAS_PF, 0},
    {"sunspec-213", 213, 1, HAS_METER | HAS_PF, 0},
    {"schneider-iem3xxx", 0, 3, HAS_METER, 0},
    {"siemens-pac3200", 0, 2, HAS_METER | HAS_PF, 0},
    {"janitza-umg604", 0, 3, HAS_METER, 0},
    {"acrel-pz-e4", 0, 1, HAS_EXP, 0}, /* primary float counters only */
    {"ups-generic", 0, 1, HAS_P, 0},   /* template: one counter + power */
};

static void test_shipped_profile(void **state)
{
    const shipped_case *c = *state;
    dcem_profile *p = load_shipped(c->name);
    assert_string_equal(p->model, c->name);
    assert_true(p->vendor[0] != '\0');
    assert_int_equal(p->sunspec_model, c->sunspec_model);
    /* the counter dcem sums, and the figures the dashboard shows */
    int e = dcem_profile_find(p, DCEM_Q_ENERGY_IMPORT_KWH, 0);
    assert_true(e >= 0);
    assert_true(p->regs[e].min >= 0);
    int has = (dcem_profile_find(p, DCEM_Q_POWER_KW, 0) >= 0 ? HAS_P : 0) |
              (dcem_profile_find(p, DCEM_Q_VOLTAGE_V, 1) >= 0 ? HAS_V : 0) |
              (dcem_profile_find(p, DCEM_Q_CURRENT_A, 1) >= 0 ? HAS_I : 0) |
              (dcem_profile_find(p, DCEM_Q_FREQUENCY_HZ, 0) >= 0 ? HAS_HZ : 0) |
              (dcem_profile_find(p, DCEM_Q_ENERGY_EXPORT_KWH, 0) >= 0 ? HAS_EXP : 0) |
              (dcem_profile_find(p, DCEM_Q_POWER_FACTOR, 0) >= 0 ||
                       dcem_profile_find(p, DCEM_Q_POWER_FACTOR, 1) >= 0
                   ? HAS_PF
                   : 0);
    if (has != c->has) fail_msg("%s reads 0x%x, want 0x%x (HAS_*)", c->name, has, c->has);
    /* secondary-side meters declare both ratios, primary-side ones neither;
     * a ratio refresh reads just the two ratio registers */
    int ct = dcem_profile_find(p, DCEM_Q_CT_RATIO, 0),
        pt = dcem_profile_find(p, DCEM_Q_PT_RATIO, 0);
    assert_int_equal(ct >= 0, c->ratio_requests > 0);
    assert_int_equal(pt >= 0, c->ratio_requests > 0);
    if (c->ratio_requests) {
        dcem_plan_rules only;
        memset(&only, 0, sizeof only);
        for (size_t i = 0; i < p->n_regs; i++)
            only.reg[i] = DCEM_PLAN_SKIP;
        only.reg[ct] = only.reg[pt] = DCEM_PLAN_READ;
        assert_int_equal(dcem_profile_plan_rules(p, 0, &only, NULL, 0), c->ratio_requests);
    }
    for (size_t i = 0; i < p->n_regs; i++) {
        const dcem_register *r = &p->regs[i];
        assert_false(isnan(r->min) || isnan(r->max));
        assert_true(r->min <= r->max);
        /* power is kW: a W register must say scale 0.001 or smaller */
        if (r->quantity == DCEM_Q_POWER_KW && r->type != DCEM_F32)
            assert_true(fabs(r->scale) <= 0.001);
    }
    unsigned base = p->sunspec_model ? 40070 : 0;
    dcem_read_req req[32];
    int n = dcem_profile_plan(p, base, req, 32);
    if (n == c->requests) check_plan_covers(p, base, req, n);
    free(p);
    if (n != c->requests) fail_msg("%s plans %d requests, want %d", c->name, n, c->requests);
}

/* Every .yaml in configs/meters is one of the tested profiles, and loads. */
static void test_shipped_directory(void **state)
{
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/meters", configs_dir);
    DIR *d = opendir(dir);
    if (!d) fail_msg("no %s", dir);
    struct dirent *ent;
    size_t found = 0;
    while ((ent = readdir(d)) != NULL) {
        size_t len = strlen(ent->d_name);
        if (ent->d_name[0] == '.' || len < 5 || strcmp(ent->d_name + len - 5, ".yaml")) continue;
        int known = 0;
        for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++)
            known |= strlen(shipped[i].name) == len - 5 &&
                     !strncmp(shipped[i].name, ent->d_name, len - 5);
        if (!known) {
            closedir(d);
            fail_msg("%s/%s has no row in the shipped table", dir, ent->d_name);
        }
        found++;
    }
    closedir(d);
    assert_int_equal(found, sizeof shipped / sizeof shipped[0]);
}

/* The SDM630's energy register decodes the reference's float vector. */
static void test_shipped_sdm630_energy(void **state)
{
    (void)state;
    dcem_profile *p = load_shipped("eastron-sdm630");
    int e = dcem_profile_find(p, DCEM_Q_ENERGY_IMPORT_KWH, 0);
    assert_int_equal(p->regs[e].address, 0x0048);
    assert_int_equal(p->regs[e].function, 4);
    static const uint16_t w[2] = {0x4640, 0xE6AE};
    double v;
    assert_int_equal(dcem_profile_value(p, (size_t)e, w, NULL, &v), 0);
    assert_true(v == 12345.669921875);
    int pw = dcem_profile_find(p, DCEM_Q_POWER_KW, 0);
    uint16_t pw_words[2];
    dcem_encode_raw(52300, DCEM_F32, DCEM_ABCD, pw_words); /* 52.3 kW in W */
    assert_int_equal(dcem_profile_value(p, (size_t)pw, pw_words, NULL, &v), 0);
    assert_true(v == 52.3);
    free(p);
}

/* The ratio registers of the secondary-side profiles decode to the ratio:
 * ADL400 CT 0x008E u16 (1000/5 A: 200), PT 0x008D u16; DTSU666 IrAt 0x0006
 * s16, UrAt 0x0007 s16 in 0.1 (10 = 1.0, a direct-connected meter). A 0 or
 * negative word is a value dcem_ratio_valid refuses, so it is never applied. */
static void test_shipped_ratio_registers(void **state)
{
    (void)state;
    double v;
    dcem_profile *p = load_shipped("acrel-adl400");
    int ct = dcem_profile_find(p, DCEM_Q_CT_RATIO, 0),
        pt = dcem_profile_find(p, DCEM_Q_PT_RATIO, 0);
    assert_int_equal(p->regs[ct].address, 0x008E);
    assert_int_equal(p->regs[pt].address, 0x008D);
    static const uint16_t w200[1] = {200}, w1[1] = {1}, w0[1] = {0};
    assert_int_equal(dcem_profile_value(p, (size_t)ct, w200, NULL, &v), 0);
    assert_true(v == 200);
    assert_int_equal(dcem_profile_value(p, (size_t)pt, w1, NULL, &v), 0);
    assert_true(v == 1);
    /* 1000/5 A CTs, no PT: 1234.56 kWh at the terminals is 246 912 kWh */
    assert_true(dcem_ratio_factor(DCEM_Q_ENERGY_IMPORT_KWH, 200, 1) * 1234.56 == 246912.0);
    assert_int_equal(dcem_profile_value(p, (size_t)ct, w0, NULL, &v), 0);
    assert_false(dcem_ratio_valid(v));
    free(p);

    p = load_shipped("chint-dtsu666");
    ct = dcem_profile_find(p, DCEM_Q_CT_RATIO, 0);
    pt = dcem_profile_find(p, DCEM_Q_PT_RATIO, 0);
    assert_int_equal(p->regs[ct].address, 0x0006);
    assert_int_equal(p->regs[pt].address, 0x0007);
    static const uint16_t w10[1] = {10}, w20[1] = {20}, wneg[1] = {0xFFFF};
    assert_int_equal(dcem_profile_value(p, (size_t)pt, w10, NULL, &v), 0);
    assert_true(v == 1.0);
    assert_int_equal(dcem_profile_value(p, (size_t)ct, w20, NULL, &v), 0);
    assert_true(v == 20);
    /* -1 is below the ratio range: rejected before it could be applied */
    assert_int_not_equal(dcem_profile_value(p, (size_t)ct, wneg, NULL, &v), 0);
    free(p);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CONFIGS_DIR\n", argv[0]);
        return 2;
    }
    configs_dir = argv[1];
    const struct CMUnitTest misc[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_value_bad_index),
        cmocka_unit_test(test_plan_sdm630),
        cmocka_unit_test(test_plan_rules),
        cmocka_unit_test(test_plan_sunspec203),
        cmocka_unit_test(test_shipped_directory),
        cmocka_unit_test(test_shipped_sdm630_energy),
        cmocka_unit_test(test_shipped_ratio_registers),
    };
    int failed = cmocka_run_group_tests_name("profiles", misc, NULL, NULL);
    failed += RUN_TABLE("datasheet vectors", test_vector, vectors);
    failed += RUN_TABLE("encode/decode round trips", test_round_trip, trips);
    failed += RUN_TABLE("broken documents", test_bad_document, bad_cases);
    failed += RUN_TABLE("values", test_value, value_cases);
    failed += RUN_TABLE("SunSpec discovery", test_sunspec_find, sunspec_cases);
    failed += RUN_TABLE("read planner", test_plan, plan_cases);
    failed += RUN_TABLE("shipped profiles", test_shipped_profile, shipped);
    return failed ? 1 : 0;
}
