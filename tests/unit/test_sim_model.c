/* test_sim_model.c — dcem-sim's power model (firmware/sim/sim_model.c): the
 * energy is the exact integral of the power it serves (checked against an
 * independent midpoint sum, which is exact on each linear piece, and
 * against closed forms), PV is zero at night all year, the load shapes move
 * the way their physics says, and the electrical snapshot is consistent
 * (P the sum of the phases, S = P / PF, I = S / V). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "calendar.h"
#include "sim_model.h"

#include <math.h>

/* cmocka's assert_float_equal compares floats: too coarse here */
#define assert_close(a, b, tol) assert_close_((a), (b), (tol), #a, __FILE__, __LINE__)
static void assert_close_(double a, double b, double tol, const char *what, const char *file,
                          int line)
{
    if (fabs(a - b) <= tol) return;
    print_error("%s = %.17g, want %.17g within %g\n", what, a, b, tol);
    _fail(file, line);
}

#define HOUR_MS 3600000LL
#define DAY_MS (24 * HOUR_MS)
/* 2026-01-05 00:00 local (+08:00), a Monday */
#define MONDAY_MS ((dcem_days_from_civil(2026, 1, 5) * 86400 - 8 * 3600) * 1000LL)

static sim_model make(int shape, double noise, int64_t step_ms)
{
    sim_model_cfg c = {
        .shape = shape,
        .rated_kw = 400,
        .level = shape == SIM_SHAPE_PV ? 0.8 : 0.6,
        .noise = noise,
        .pf = 0.95,
        .v_nominal = 230,
        .hz_nominal = 50,
        .step_ms = step_ms,
        .utc_offset_s = 8 * 3600,
        .seed = 42,
    };
    sim_model m;
    sim_model_init(&m, &c);
    return m;
}

/* The integral by the midpoint rule on pieces that never straddle a knot:
 * exact for a piecewise linear power, and computed only from
 * sim_model_power_kw, not from the knots the model sums. */
static double midpoint_kwh(const sim_model *m, int64_t t0, int64_t t1, int64_t piece)
{
    double sum = 0;
    for (int64_t a = t0; a < t1;) {
        int64_t knot = (dcem_floordiv(a, m->c.step_ms) + 1) * m->c.step_ms;
        int64_t b = a + piece;
        if (b > knot) b = knot;
        if (b > t1) b = t1;
        /* an odd span has no integer midpoint: use the two ends' mean
         * (also exact on a linear piece) */
        double p = (b - a) % 2 ? (sim_model_power_kw(m, a) + sim_model_power_kw(m, b)) / 2
                               : sim_model_power_kw(m, a + (b - a) / 2);
        sum += p * (double)(b - a);
        a = b;
    }
    return sum / (double)HOUR_MS;
}

static void constant_energy_is_power_times_time(void **state)
{
    (void)state;
    sim_model m = make(SIM_SHAPE_CONSTANT, 0, 60000);
    /* 240 kW for 1 h 30 min 0.5 s, from an odd start */
    int64_t t0 = MONDAY_MS + 12345, t1 = t0 + 90 * 60000 + 500;
    double want = 240.0 * (double)(t1 - t0) / (double)HOUR_MS;
    assert_close(sim_model_energy_kwh(&m, t0, t1), want, 1e-9 * want);
    assert_close(sim_model_power_kw(&m, t0), 240.0, 1e-12);
    assert_true(sim_model_energy_kwh(&m, t1, t0) == 0);
}

static void energy_is_the_integral_of_the_served_power(void **state)
{
    (void)state;
    const int shapes[] = {SIM_SHAPE_IT, SIM_SHAPE_COOLING, SIM_SHAPE_PV};
    for (size_t i = 0; i < 3; i++) {
        sim_model m = make(shapes[i], 0.05, 60000);
        /* a day from an instant off the knot grid, to one off it too */
        int64_t t0 = MONDAY_MS + 17 * 1000 + 3, t1 = t0 + DAY_MS + 41 * 1000 + 7;
        double e = sim_model_energy_kwh(&m, t0, t1);
        double want = midpoint_kwh(&m, t0, t1, 7000);
        assert_true(e > 0);
        assert_close(e, want, 1e-9 * want);
    }
}

static void energy_adds_up_over_split_intervals(void **state)
{
    (void)state;
    sim_model m = make(SIM_SHAPE_IT, 0.02, 60000);
    int64_t a = MONDAY_MS - 777, c = a + 7 * DAY_MS;
    double whole = sim_model_energy_kwh(&m, a, c), parts = 0;
    /* what the simulator does: many small advances, irregular in length */
    for (int64_t t = a, k = 1; t < c; k++) {
        int64_t next = t + 1000 * (k % 97) + 13;
        if (next > c) next = c;
        parts += sim_model_energy_kwh(&m, t, next);
        t = next;
    }
    assert_close(parts, whole, 1e-10 * whole);
}

static void linear_between_knots(void **state)
{
    (void)state;
    sim_model m = make(SIM_SHAPE_COOLING, 0.05, 60000);
    int64_t k = dcem_floordiv(MONDAY_MS, 60000) + 600;
    double p0 = sim_model_knot_kw(&m, k), p1 = sim_model_knot_kw(&m, k + 1);
    assert_close(sim_model_power_kw(&m, k * 60000), p0, 1e-12);
    assert_close(sim_model_power_kw(&m, k * 60000 + 15000), p0 + (p1 - p0) / 4, 1e-9);
    /* one step: the trapezoid */
    assert_close(sim_model_energy_kwh(&m, k * 60000, (k + 1) * 60000), (p0 + p1) / 2 / 60, 1e-12);
}

static void knots_stay_within_rating(void **state)
{
    (void)state;
    for (int s = 0; s < SIM_SHAPE_COUNT; s++) {
        sim_model m = make(s, 0.5, 60000);
        m.c.level = 1;
        for (int64_t k = 0; k < 20000; k += 7) {
            double p = sim_model_knot_kw(&m, dcem_floordiv(MONDAY_MS, 60000) + k * 13);
            assert_true(p >= 0 && p <= m.c.rated_kw);
        }
    }
}

static void pv_is_zero_at_night_all_year(void **state)
{
    (void)state;
    sim_model m = make(SIM_SHAPE_PV, 0.05, 60000);
    int64_t jan1 = (dcem_days_from_civil(2026, 1, 1) * 86400 - 8 * 3600) * 1000LL;
    for (int day = 0; day < 365; day += 3) {
        int64_t midnight = jan1 + day * DAY_MS;
        /* local 21:00 to 04:00 next day: the sun is down even at midsummer
         * (day length <= 14.9 h around solar noon at 12:00) */
        int64_t dusk = midnight + 21 * HOUR_MS, dawn = midnight + 28 * HOUR_MS;
        assert_true(sim_model_energy_kwh(&m, dusk, dawn) == 0);
        for (int64_t t = dusk; t <= dawn; t += 15 * 60000)
            assert_true(sim_model_power_kw(&m, t) == 0);
        assert_true(sim_model_power_kw(&m, midnight + 12 * HOUR_MS) > 0.2 * m.c.rated_kw);
    }
    /* summer noon beats winter noon */
    int64_t june = jan1 + 171 * DAY_MS + 12 * HOUR_MS, dec = jan1 + 354 * DAY_MS + 12 * HOUR_MS;
    assert_true(sim_model_shape(&m, june) > 1.5 * sim_model_shape(&m, dec));
}

static void it_is_lighter_on_weekends(void **state)
{
    (void)state;
    sim_model m = make(SIM_SHAPE_IT, 0, 60000);
    int64_t wed = MONDAY_MS + 2 * DAY_MS + 15 * HOUR_MS,
            sat = MONDAY_MS + 5 * DAY_MS + 15 * HOUR_MS;
    assert_close(sim_model_shape(&m, sat), 0.94 * sim_model_shape(&m, wed), 1e-12);
    /* busiest mid-afternoon */
    assert_true(sim_model_shape(&m, wed) > sim_model_shape(&m, wed - 12 * HOUR_MS));
}

static void cooling_follows_the_weather(void **state)
{
    (void)state;
    sim_model m = make(SIM_SHAPE_COOLING, 0, 60000);
    int64_t jan1 = (dcem_days_from_civil(2026, 1, 1) * 86400 - 8 * 3600) * 1000LL;
    int64_t jan15 = jan1 + 14 * DAY_MS + 15 * HOUR_MS, jul15 = jan1 + 195 * DAY_MS + 15 * HOUR_MS;
    assert_true(sim_model_outside_c(&m, jul15) > 25);
    assert_true(sim_model_outside_c(&m, jan15) < 10);
    assert_true(sim_model_shape(&m, jul15) > 1.5 * sim_model_shape(&m, jan15));
    /* a July afternoon is warmer than the night before */
    assert_true(sim_model_outside_c(&m, jul15) > sim_model_outside_c(&m, jul15 - 12 * HOUR_MS));
}

static void electrical_is_consistent(void **state)
{
    (void)state;
    const int shapes[] = {SIM_SHAPE_IT, SIM_SHAPE_COOLING, SIM_SHAPE_PV, SIM_SHAPE_CONSTANT};
    for (size_t s = 0; s < 4; s++) {
        sim_model m = make(shapes[s], 0.02, 60000);
        for (int64_t t = MONDAY_MS; t < MONDAY_MS + DAY_MS; t += 37 * 60000 + 11) {
            sim_electrical e;
            sim_model_electrical(&m, t, &e);
            assert_close(e.p_kw[0], sim_model_power_kw(&m, t), 1e-12);
            assert_close(e.p_kw[1] + e.p_kw[2] + e.p_kw[3], e.p_kw[0], 1e-9);
            double i_sum = 0;
            for (int k = 1; k <= 3; k++) {
                assert_close(e.s_kva[k] * e.pf[k], e.p_kw[k], 1e-9);
                assert_close(e.s_kva[k] * e.s_kva[k],
                             e.p_kw[k] * e.p_kw[k] + e.q_kvar[k] * e.q_kvar[k], 1e-6);
                assert_close(e.i_a[k] * e.v[k] / 1000, e.s_kva[k], 1e-9);
                assert_true(e.v[k] > 220 && e.v[k] < 240);
                assert_true(e.v_ll[k] > 1.70 * 220 && e.v_ll[k] < 1.74 * 240);
                i_sum += e.i_a[k];
            }
            assert_close(e.i_a[0], i_sum, 1e-9);
            assert_true(e.pf[0] > 0.5 && e.pf[0] <= 1);
            if (e.s_kva[0] > 0) assert_close(e.pf[0], e.p_kw[0] / e.s_kva[0], 1e-12);
            assert_true(fabs(e.hz - 50) < 0.05);
        }
    }
}

static void deterministic_per_seed(void **state)
{
    (void)state;
    sim_model a = make(SIM_SHAPE_IT, 0.05, 60000), b = make(SIM_SHAPE_IT, 0.05, 60000);
    sim_model_cfg c = b.c;
    c.seed = 43;
    sim_model other;
    sim_model_init(&other, &c);
    int64_t t0 = MONDAY_MS, t1 = t0 + DAY_MS;
    assert_true(sim_model_energy_kwh(&a, t0, t1) == sim_model_energy_kwh(&b, t0, t1));
    assert_true(sim_model_energy_kwh(&a, t0, t1) != sim_model_energy_kwh(&other, t0, t1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(constant_energy_is_power_times_time),
        cmocka_unit_test(energy_is_the_integral_of_the_served_power),
        cmocka_unit_test(energy_adds_up_over_split_intervals),
        cmocka_unit_test(linear_between_knots),
        cmocka_unit_test(knots_stay_within_rating),
        cmocka_unit_test(pv_is_zero_at_night_all_year),
        cmocka_unit_test(it_is_lighter_on_weekends),
        cmocka_unit_test(cooling_follows_the_weather),
        cmocka_unit_test(electrical_is_consistent),
        cmocka_unit_test(deterministic_per_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
