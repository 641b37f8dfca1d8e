/* Counter rules of docs/figures.md, one table row per rule and boundary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "counter.h"

#include <math.h>
#include <string.h>

#define MIN 60000LL
#define HOUR 3600000LL
#define DAY (24 * HOUR)

typedef struct reading {
    int64_t t;
    double kwh; /* NAN: absent */
    double kw;  /* NAN: absent */
} reading;

typedef struct expect_seg {
    int64_t t0, t1;
    double kwh;
    unsigned flags;
} expect_seg;

typedef struct counter_case {
    const char *name;
    double modulo;
    int n;
    reading r[8];
    int n_seg;
    expect_seg seg[8];
    int discarded;                /* glitches reported, finish() included */
    int rejected[DCEM_REJECT_COUNT];
} counter_case;

#define R(t, v) {(t), (v), NAN}
#define P(t, v) {(t), NAN, (v)}

/* rated 100 kW, margin 1.5: at most 150 kWh per hour (+0.01 resolution);
 * 15-min readings; gaps above 22.5 min. */
static const counter_case cases[] = {
    {"consecutive differences", NAN, 3, {R(0, 100), R(15 * MIN, 110), R(30 * MIN, 125)},
     2, {{0, 15 * MIN, 10, 0}, {15 * MIN, 30 * MIN, 15, 0}}, 0, {0}},
    {"rollover at the modulo", 1000, 2, {R(0, 995), R(15 * MIN, 5)},
     1, {{0, 15 * MIN, 10, DCEM_SEG_ROLLOVER}}, 0, {0}},
    {"uint32 rollover 2^32 x 0.01", 42949672.96, 2, {R(0, 42949670.00), R(15 * MIN, 3.5)},
     1, {{0, 15 * MIN, 6.46, DCEM_SEG_ROLLOVER}}, 0, {0}},
    {"drop not plausible modulo is held, then discarded", 1000, 3,
     {R(0, 500), R(15 * MIN, 100), R(30 * MIN, 510)},
     1, {{0, 30 * MIN, 10, DCEM_SEG_GAP}}, 1, {0}},
    {"glitch to zero is discarded, energy around it unchanged", NAN, 4,
     {R(0, 100), R(15 * MIN, 0), R(30 * MIN, 120), R(45 * MIN, 130)},
     2, {{0, 30 * MIN, 20, DCEM_SEG_GAP}, {30 * MIN, 45 * MIN, 10, 0}}, 1, {0}},
    {"spike above rated power is discarded", NAN, 3,
     {R(0, 100), R(15 * MIN, 99999), R(30 * MIN, 120)},
     1, {{0, 30 * MIN, 20, DCEM_SEG_GAP}}, 1, {0}},
    {"jump just inside rated x margin is accepted", NAN, 2, {R(0, 100), R(HOUR, 250.01)},
     1, {{0, HOUR, 150.01, DCEM_SEG_GAP}}, 0, {0}},
    {"jump just beyond rated x margin is held", NAN, 2, {R(0, 100), R(HOUR, 250.02)},
     0, {{0}}, 1, {0}},
    {"confirmed reset opens a new epoch, straddle estimated", NAN, 4,
     {R(0, 100), R(15 * MIN, 110), R(30 * MIN, 2), R(45 * MIN, 12)},
     3,
     {{0, 15 * MIN, 10, 0}, {15 * MIN, 30 * MIN, 10, DCEM_SEG_RESET}, {30 * MIN, 45 * MIN, 10, 0}},
     0, {0}},
    {"confirmed jump (meter replaced by a higher counter)", NAN, 3,
     {R(0, 100), R(15 * MIN, 50000), R(30 * MIN, 50008)},
     2, {{0, 15 * MIN, 8, DCEM_SEG_RESET}, {15 * MIN, 30 * MIN, 8, 0}}, 0, {0}},
    {"reset to zero twice in a row is a reset to zero", NAN, 3,
     {R(0, 100), R(15 * MIN, 0), R(30 * MIN, 0)},
     2, {{0, 15 * MIN, 0, DCEM_SEG_RESET}, {15 * MIN, 30 * MIN, 0, 0}}, 0, {0}},
    {"two implausible readings in a row are both discarded", NAN, 4,
     {R(0, 100), R(15 * MIN, 0), R(30 * MIN, 99999), R(45 * MIN, 130)},
     1, {{0, 45 * MIN, 30, DCEM_SEG_GAP}}, 2, {0}},
    {"jitter one step back is zero energy, not a reset", NAN, 3,
     {R(0, 100), R(15 * MIN, 99.99), R(30 * MIN, 110)},
     2, {{0, 15 * MIN, 0, 0}, {15 * MIN, 30 * MIN, 10, 0}}, 0, {0}},
    {"gap is marked and keeps its energy", NAN, 2, {R(0, 100), R(3 * HOUR, 400)},
     1, {{0, 3 * HOUR, 300, DCEM_SEG_GAP}}, 0, {0}},
    {"held reading at end of data is discarded", NAN, 2, {R(0, 100), R(15 * MIN, 0)},
     0, {{0}}, 1, {0}},
    {"out of order and duplicate times are rejected", NAN, 4,
     {R(15 * MIN, 100), R(0, 90), R(15 * MIN, 100), R(30 * MIN, 110)},
     1, {{15 * MIN, 30 * MIN, 10, 0}}, 0, {[DCEM_REJECT_ORDER] = 2}},
    {"negative, non-finite and beyond-modulo counters are rejected", 1000, 5,
     {R(0, 100), R(MIN, -1), R(2 * MIN, INFINITY), R(3 * MIN, 1000), R(15 * MIN, 110)},
     1, {{0, 15 * MIN, 10, 0}}, 0, {[DCEM_REJECT_VALUE] = 3}},
    {"power-only meter: trapezoid, marked integrated", NAN, 3,
     {P(0, 10), P(HOUR, 20), P(2 * HOUR, 20)},
     2, {{0, HOUR, 15, DCEM_SEG_INTEGRATED | DCEM_SEG_GAP},
         {HOUR, 2 * HOUR, 20, DCEM_SEG_INTEGRATED | DCEM_SEG_GAP}}, 0, {0}},
    {"power above rated x margin or negative is rejected, kwh on a power meter too", NAN, 5,
     {P(0, 40), P(5 * MIN, 151), P(10 * MIN, -1), R(12 * MIN, 5), P(15 * MIN, 40)},
     1, {{0, 15 * MIN, 10, DCEM_SEG_INTEGRATED}}, 0,
     {[DCEM_REJECT_VALUE] = 2, [DCEM_REJECT_KIND] = 1}},
    {"a reading stamped days ahead, then back in time: its clock was wrong", NAN, 5,
     {R(0, 100), R(15 * MIN, 110), R(5 * DAY, 115), R(30 * MIN, 120), R(45 * MIN, 130)},
     3, {{0, 15 * MIN, 10, 0}, {15 * MIN, 30 * MIN, 10, 0}, {30 * MIN, 45 * MIN, 10, 0}}, 1, {0}},
    {"a late reading confirmed by the next is a real gap", NAN, 4,
     {R(0, 100), R(2 * DAY, 1000), R(2 * DAY + 15 * MIN, 1010), R(2 * DAY + 30 * MIN, 1020)},
     3, {{0, 2 * DAY, 900, DCEM_SEG_GAP}, {2 * DAY, 2 * DAY + 15 * MIN, 10, 0},
         {2 * DAY + 15 * MIN, 2 * DAY + 30 * MIN, 10, 0}}, 0, {0}},
    {"same time as the held late reading is a duplicate", NAN, 3,
     {R(0, 100), R(2 * DAY, 1000), R(2 * DAY, 1000)},
     1, {{0, 2 * DAY, 900, DCEM_SEG_GAP}}, 0, {[DCEM_REJECT_ORDER] = 1}},
    {"a gap beyond max_gap_ms is left empty", NAN, 3,
     {R(0, 100), R(100 * DAY, 5000), R(100 * DAY + 15 * MIN, 5010)},
     1, {{100 * DAY, 100 * DAY + 15 * MIN, 10, 0}}, 0, {0}},
    {"kw-only row for a counter meter is rejected", NAN, 3,
     {R(0, 100), P(5 * MIN, 40), R(15 * MIN, 110)},
     1, {{0, 15 * MIN, 10, 0}}, 0, {[DCEM_REJECT_KIND] = 1}},
};

static void run_case(const counter_case *c)
{
    dcem_counter_cfg cfg = {.rated_kw = 100, .modulo_kwh = c->modulo, .resolution_kwh = 0.01,
                            .margin = 1.5, .gap_ms = 45 * MIN / 2, .max_gap_ms = 92 * DAY};
    dcem_counter ctr;
    dcem_counter_init(&ctr, &cfg);
    dcem_segment got[16];
    int n_got = 0, discarded = 0, rejected[DCEM_REJECT_COUNT] = {0};
    dcem_counter_out out;
    for (int i = 0; i <= c->n; i++) {
        if (i < c->n) {
            const reading *r = &c->r[i];
            dcem_counter_push(&ctr, r->t, !isnan(r->kwh), r->kwh, !isnan(r->kw), r->kw, &out);
        } else {
            dcem_counter_finish(&ctr, &out);
        }
        rejected[out.reject]++;
        discarded += out.discarded;
        for (int k = 0; k < out.n_seg; k++) got[n_got++] = out.seg[k];
    }
    print_message("case: %s\n", c->name);
    assert_int_equal(n_got, c->n_seg);
    for (int k = 0; k < n_got; k++) {
        assert_int_equal(got[k].t0_ms, c->seg[k].t0);
        assert_int_equal(got[k].t1_ms, c->seg[k].t1);
        assert_float_equal(got[k].kwh, c->seg[k].kwh, 1e-9);
        assert_int_equal(got[k].flags, c->seg[k].flags);
        assert_true(got[k].kwh >= 0); /* energy is never negative */
    }
    assert_int_equal(discarded, c->discarded);
    for (int k = 1; k < DCEM_REJECT_COUNT; k++) assert_int_equal(rejected[k], c->rejected[k]);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
}

/* Energy is conserved over a long run with every fault mixed in: the sum
 * of segments equals the true energy, whatever was discarded on the way. */
static void test_conservation(void **state)
{
    (void)state;
    dcem_counter_cfg cfg = {.rated_kw = 100, .modulo_kwh = 1000, .resolution_kwh = 0.01,
                            .margin = 1.5, .gap_ms = 45 * MIN / 2, .max_gap_ms = 92 * DAY};
    dcem_counter ctr;
    dcem_counter_init(&ctr, &cfg);
    double v = 900, sum = 0, truth = 0;
    dcem_counter_out out;
    for (int i = 1; i <= 2000; i++) {
        double e = 10 + (i % 7); /* kWh per 15 min, under 150 kWh/h */
        truth += e;
        v = fmod(v + e, 1000);
        double shown = v;
        if (i % 97 == 0) shown = 0;              /* glitch to zero */
        if (i % 89 == 0) shown = v + 500;        /* spike */
        if (i % 50 == 25) continue;              /* lost reading */
        dcem_counter_push(&ctr, (int64_t)i * 15 * MIN, 1, shown, 0, 0, &out);
        for (int k = 0; k < out.n_seg; k++) sum += out.seg[k].kwh;
    }
    /* the first reading anchors; energy before it is not in the data */
    assert_float_equal(sum, truth - (10 + 1), 1e-6);
}

/* Readings of a meter behind transformers: the counter values are the
 * register's times the ratio, and a ratio change opens a new epoch at the
 * new scale instead of a jump. rated 100 kW x 1.5 over 15 min: 37.5 kWh. */
static void push_at(dcem_counter *c, int64_t t, double reg, double ratio, dcem_counter_out *out,
                    int *changed)
{
    dcem_counter_push_ratio(c, t, 1, reg * ratio, 0, 0, ratio, out);
    *changed = out->ratio_changed;
}

static void test_ratio(void **state)
{
    (void)state;
    dcem_counter_cfg cfg = {.rated_kw = 100, .modulo_kwh = 1000, .resolution_kwh = 0.01,
                            .margin = 1.5, .gap_ms = 45 * MIN / 2, .max_gap_ms = 92 * DAY};
    dcem_counter c;
    dcem_counter_out out;
    int changed;
    dcem_counter_init(&c, &cfg);
    push_at(&c, 0, 100, 2, &out, &changed); /* the first ratio is no event */
    assert_int_equal(changed, 0);
    assert_int_equal(out.n_seg, 0);
    push_at(&c, 15 * MIN, 105, 2, &out, &changed);
    assert_int_equal(out.n_seg, 1);
    assert_float_equal(out.seg[0].kwh, 10, 1e-9);
    assert_int_equal(out.seg[0].flags, 0);
    /* CT swapped, ratio 2 -> 4: the register goes on from 105 to 110 */
    push_at(&c, 30 * MIN, 110, 4, &out, &changed);
    assert_int_equal(changed, 1);
    assert_int_equal(out.reject, 0);
    assert_int_equal(out.n_seg, 1);
    assert_float_equal(out.seg[0].kwh, 20, 1e-9); /* 5 register kWh at the new scale */
    assert_int_equal(out.seg[0].flags, DCEM_SEG_RESET | DCEM_SEG_RATIO);
    push_at(&c, 45 * MIN, 115, 4, &out, &changed);
    assert_int_equal(changed, 0);
    assert_float_equal(out.seg[0].kwh, 20, 1e-9);
    assert_int_equal(out.seg[0].flags, 0);
    /* the modulo is the register's: at ratio 4 the counter wraps at 4000 */
    push_at(&c, 60 * MIN, 995, 4, &out, &changed); /* an implausible jump: held */
    assert_int_equal(out.n_seg, 0);
    push_at(&c, 75 * MIN, 1000 - 0.5, 4, &out, &changed); /* confirms it: new epoch */
    assert_int_equal(out.n_seg, 2);
    assert_int_equal(out.seg[0].flags, DCEM_SEG_RESET);
    assert_float_equal(out.seg[1].kwh, 4.5 * 4, 1e-9);
    push_at(&c, 90 * MIN, 2, 4, &out, &changed); /* 999.5 -> 2 wraps at 1000 */
    assert_int_equal(out.reject, 0);
    assert_int_equal(out.n_seg, 1);
    assert_float_equal(out.seg[0].kwh, 2.5 * 4, 1e-9);
    assert_int_equal(out.seg[0].flags, DCEM_SEG_ROLLOVER);
    /* a ratio change while a reading is held for its value: both rescaled */
    push_at(&c, 105 * MIN, 500, 4, &out, &changed); /* jump: held */
    assert_int_equal(out.n_seg, 0);
    push_at(&c, 120 * MIN, 502, 8, &out, &changed); /* confirms it at the new scale */
    assert_int_equal(changed, 1);
    assert_int_equal(out.n_seg, 2);
    assert_int_equal(out.seg[0].flags, DCEM_SEG_RESET | DCEM_SEG_RATIO);
    assert_float_equal(out.seg[1].kwh, 2 * 8, 1e-9);
    assert_int_equal(out.seg[1].flags, 0);
    /* a value at or past the scaled modulo is impossible */
    push_at(&c, 135 * MIN, 1000, 8, &out, &changed);
    assert_int_equal(out.reject, DCEM_REJECT_VALUE);
    for (int k = 0; k < out.n_seg; k++) assert_true(out.seg[k].kwh >= 0);
    /* a rejected reading leaves the ratio as it was */
    push_at(&c, 120 * MIN, 503, 16, &out, &changed); /* not after the last: out of order */
    assert_int_equal(out.reject, DCEM_REJECT_ORDER);
    push_at(&c, 135 * MIN, 503, 8, &out, &changed);
    assert_int_equal(changed, 0);
    assert_float_equal(out.seg[0].kwh, 8, 1e-9);
    assert_int_equal(out.seg[0].flags, 0);
    /* no ratio, 0 or NaN: 1 */
    dcem_counter_init(&c, &cfg);
    assert_int_equal(dcem_counter_set_ratio(&c, 0), 0);
    assert_int_equal(dcem_counter_set_ratio(&c, NAN), 0);
    assert_int_equal(dcem_counter_set_ratio(&c, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_conservation),
        cmocka_unit_test(test_ratio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
