/* profile.h — meter profiles: the register map of one meter model, loaded
 * from configs/meters/<model>.yaml; the decoding of Modbus register words
 * into values in canonical units; and the plan of coalesced reads that
 * fetches a profile's registers in the fewest requests the device allows.
 * Pure: no I/O. The agent polls with it, dcem-sim serves with it. */
#ifndef DCEM_PROFILE_H
#define DCEM_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#define DCEM_PROFILE_MAX_REGS 96
#define DCEM_REG_NAME_MAX 32
#define DCEM_RATIO_MAX 100000.0 /* a CT or PT ratio above this is a mistake, never applied */

/* Register value types, as named in profile files: u16 s16 u32 s32 u64 s64
 * f32 f64 (f32/f64: IEEE 754). */
typedef enum dcem_regtype {
    DCEM_U16 = 0, DCEM_S16, DCEM_U32, DCEM_S32, DCEM_U64, DCEM_S64, DCEM_F32, DCEM_F64,
    DCEM_REGTYPE_COUNT
} dcem_regtype;

/* Byte and word order of multi-register values, named by where the bytes of
 * a big-endian value ABCD(EFGH) land on the wire, register by register:
 *   ABCD  big-endian words, most significant word first (Modbus "standard")
 *   CDAB  big-endian words, least significant word first (word swap)
 *   BADC  bytes swapped in each word, most significant word first
 *   DCBA  fully little-endian: bytes swapped, least significant word first
 * For 64-bit types the same rule extends to four words. u16/s16 use the
 * byte rule only (ABCD = CDAB, BADC = DCBA). */
typedef enum dcem_wordorder { DCEM_ABCD = 0, DCEM_CDAB, DCEM_BADC, DCEM_DCBA } dcem_wordorder;

/* What a register measures; the canonical unit is in the name. Values are
 * converted to it by the register's scale. */
typedef enum dcem_quantity {
    DCEM_Q_ENERGY_IMPORT_KWH = 0, /* the cumulative counter dcem sums */
    DCEM_Q_ENERGY_EXPORT_KWH,
    DCEM_Q_ENERGY_TOTAL_KWH,
    DCEM_Q_POWER_KW,
    DCEM_Q_REACTIVE_KVAR,
    DCEM_Q_APPARENT_KVA,
    DCEM_Q_VOLTAGE_V,    /* line to neutral */
    DCEM_Q_VOLTAGE_LL_V, /* line to line */
    DCEM_Q_CURRENT_A,
    DCEM_Q_POWER_FACTOR,
    DCEM_Q_FREQUENCY_HZ,
    DCEM_Q_SCALE_FACTOR, /* SunSpec *_SF: signed power of ten for other registers */
    DCEM_Q_CT_RATIO,     /* current transformer ratio the meter is set to (2000/5 A: 400) */
    DCEM_Q_PT_RATIO,     /* voltage (potential) transformer ratio (10 kV/100 V: 100) */
    DCEM_Q_COUNT
} dcem_quantity;

typedef struct dcem_register {
    char name[DCEM_REG_NAME_MAX]; /* unique in the profile, e.g. "energy_import" */
    int quantity;                 /* dcem_quantity */
    int phase;                    /* 0: total or none; 1-3: L1-L3 */
    int function;                 /* 3: holding registers, 4: input registers */
    unsigned address;             /* 0-based wire address; SunSpec: offset in the model block */
    int type;                     /* dcem_regtype */
    int order;                    /* dcem_wordorder */
    double scale;                 /* value = raw * scale [* 10^sf] in the canonical unit */
    char scale_register[DCEM_REG_NAME_MAX]; /* SunSpec: name of its sf register, or "" */
    double min, max;              /* plausible range of the value; outside: out of range */
    int line;                     /* where it is declared, for messages */
} dcem_register;

typedef struct dcem_profile {
    char model[64];         /* "eastron-sdm630" (file name without .yaml) */
    char vendor[64];
    char description[160];
    unsigned max_registers; /* per request (device limit, at most 125) */
    unsigned max_gap;       /* unused registers one request may bridge */
    int sunspec_model;      /* 0: plain map; 203 or 213: addresses are offsets in
                               that SunSpec model block, found from "SunS" at 40000 */
    dcem_register regs[DCEM_PROFILE_MAX_REGS];
    size_t n_regs;
} dcem_profile;

/* Parses a profile file (configs/meters/<model>.yaml; keys in docs/agent.md).
 * Checks: names unique, scale_register names an existing SCALE_FACTOR
 * register (s16, same function), function 3 or 4, address + words within
 * 0..65535 (SunSpec: within the model block, function 3), no register wider
 * than max_registers, at most one register per quantity and phase (scale
 * factors aside), exactly one ENERGY_IMPORT_KWH register at phase 0. Absent
 * min/max get the quantity's default range. Returns 0, DCEM_ECONFIG with
 * "file:line: key: what" in err, or DCEM_ENOMEM; out is defined either way. */
int dcem_profile_parse(const char *name, const char *buf, size_t len, dcem_profile *out,
                       char *err, size_t errlen);

/* Index of the register measuring quantity at phase, or -1. */
int dcem_profile_find(const dcem_profile *p, int quantity, int phase);

/* Registers (16-bit words) a value of this type occupies: 1, 2 or 4. */
unsigned dcem_regtype_words(int type);

/* 1 for the quantities a reading carries as measured values: all but
 * scale_factor, ct_ratio and pt_ratio, which only serve to read others. */
int dcem_quantity_measured(int quantity);

/* Type and order names as in profile files ("u32", "CDAB"); NULL if unknown. */
const char *dcem_regtype_name(int type);
const char *dcem_wordorder_name(int order);
const char *dcem_quantity_name(int quantity);

/* Decodes a value from its words as read from the wire (register order).
 * Integers are exact up to 2^53. Returns 0, or DCEM_ERANGE when a float is
 * NaN or infinite (never handed on as a number). */
int dcem_decode_raw(const uint16_t *words, int type, int order, double *raw);

/* The inverse, for the simulator and tests: raw is rounded to the nearest
 * integer (half away from zero) for integer types and clamped to the
 * type's range, NaN giving 0; for f32 a value beyond its range becomes an
 * infinity. NaN and infinities encode as such, for fault simulation. */
void dcem_encode_raw(double raw, int type, int order, uint16_t *words);

/* The value of register i of p in its canonical unit: raw * scale, times
 * 10^sf when the register has a scale_register. words are its own
 * dcem_regtype_words(type) words as read; sf_words those of its scale
 * register (NULL when it has none). Returns 0; DCEM_ENOTFOUND when the
 * value or its scale factor is a SunSpec "not implemented" pattern (profiles
 * with sunspec_model only: s16 0x8000, u16 0xFFFF, s32 0x80000000, u32
 * 0xFFFFFFFF, and 0 in an energy accumulator): the device has no such value;
 * DCEM_ERANGE when the words are a NaN or infinite float, the scale factor is
 * outside its register's min..max, or the value is outside [min, max]; DCEM_EINVAL
 * when i is not a register of p or sf_words is missing. A scale of 1/k (k an
 * integer) divides by k, so 123456 * 0.01 gives exactly the double 1234.56. */
int dcem_profile_value(const dcem_profile *p, size_t i, const uint16_t *words,
                       const uint16_t *sf_words, double *value);

/* SunSpec discovery. A SunSpec device holds "SunS" (0x5375 0x6E53) at
 * 40000 (else 0 or 50000), then a chain of model blocks [ID, L, L words]
 * that ends with ID 0xFFFF. Given the n words read from address start
 * onwards (words[0..1] the marker), finds the block of `model`: returns 0
 * with *addr the address of its ID register (the base of a profile with
 * sunspec_model) and *len its L (len may be NULL); DCEM_ERANGE when the chain
 * ends without it; DCEM_EFULL when the chain leaves the words given — *addr
 * is then the address of the next header: read on from there (at least 2
 * words) and call again with the longer run; DCEM_EINVAL when the marker is
 * missing or the chain runs past register 65535. Pure: the caller reads. */
#define DCEM_SUNSPEC_MARKER0 0x5375u /* "Su" */
#define DCEM_SUNSPEC_MARKER1 0x6E53u /* "nS" */
int dcem_sunspec_find(const uint16_t *words, size_t n, unsigned start, int model,
                      unsigned *addr, unsigned *len);

/* One Modbus read request. */
typedef struct dcem_read_req {
    int function;    /* 3 or 4 */
    unsigned address; /* first register */
    unsigned count;   /* registers, <= max_registers */
} dcem_read_req;

/* Instrument transformers. A meter behind CTs and PTs measures on their
 * secondary side; the primary value is the secondary one times the factor
 * of its quantity: ct * pt for energy, power, reactive and apparent power,
 * ct for current, pt for voltage, 1 for anything else (power factor,
 * frequency, the ratios themselves). */
double dcem_ratio_factor(int quantity, double ct, double pt);

/* 1 when r is a ratio dcem applies: finite, > 0 and <= DCEM_RATIO_MAX. */
int dcem_ratio_valid(double r);

/* 1 for the registers a poll does not read every time: ct_ratio and
 * pt_ratio (read when a device is first reached and then now and then). */
int dcem_register_is_ratio(const dcem_register *r);

/* What a device has shown of its register map, for planning around it.
 * reg[i]: DCEM_PLAN_READ (fetch it), DCEM_PLAN_SKIP (not wanted now; a
 * request may still read across it), DCEM_PLAN_REFUSED (the device answers
 * an exception for it: no request may cover any of its words). cut[i]: 1
 * when the device refuses a request that reads register i together with a
 * register at a higher address of the same function (a hole after i it
 * does not serve); register i then ends its request. Indexes are the
 * profile's. */
enum { DCEM_PLAN_READ = 0, DCEM_PLAN_SKIP, DCEM_PLAN_REFUSED };
typedef struct dcem_plan_rules {
    unsigned char reg[DCEM_PROFILE_MAX_REGS];
    unsigned char cut[DCEM_PROFILE_MAX_REGS];
} dcem_plan_rules;

/* The rules of a device nothing has been learned of: every register READ
 * but the ratio registers, which are SKIP. */
void dcem_plan_rules_init(dcem_plan_rules *r, const dcem_profile *p);

/* Plans the reads that fetch every register of p (the ratio registers
 * aside, see below), registers at address +
 * base (base: 0, or the SunSpec model block's address): registers of the
 * same function are coalesced into one request while the span stays within
 * max_registers and no hole exceeds max_gap. Requests come out sorted by
 * function and address. Greedy: a request grows while the next register
 * fits, which gives the fewest requests these two limits allow. Returns
 * the number of requests; DCEM_EFULL when more than max are needed (out
 * may be NULL to count them); DCEM_ERANGE when base + address runs past
 * register 65535; DCEM_EINVAL when max_registers is not 1..125 or a
 * register is wider than it (dcem_profile_parse rejects both). */
int dcem_profile_plan(const dcem_profile *p, unsigned base, dcem_read_req *out, size_t max);

/* The same plan for the READ registers of rules only (NULL: the rules of
 * dcem_plan_rules_init — which is what dcem_profile_plan uses, so it never
 * reads the ratio registers), never covering a REFUSED register's words
 * and never joining a register marked cut with a later one. With the rules
 * a device has shown, the greedy plan is again the fewest requests that
 * device serves. */
int dcem_profile_plan_rules(const dcem_profile *p, unsigned base, const dcem_plan_rules *rules,
                            dcem_read_req *out, size_t max);

#endif
