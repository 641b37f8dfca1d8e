/* common/meter: the one pipeline. Random streams of readings (rollovers,
 * resets, glitches, gaps across month ends, ratio changes) through it: the
 * intervals come out in order, once each; readings are counted once; and a
 * meter restored from its encoded state at any reading, its intervals from
 * its frontier on dropped, gives exactly the intervals of the uninterrupted
 * run — what the collector relies on to rebuild a meter after late data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "dcem_io.h"
#include "errors.h"
#include "meter.h"
#include "parse.h"

#include <stdlib.h>
#include <string.h>

#define MIN 60000LL
#define MAXR 3000
#define MAXI 20000

typedef struct reading {
    int64_t t;
    double kwh, ratio;
} reading;

typedef struct ivs {
    dcem_interval iv[MAXI];
    int n;
} ivs;

static void collect(void *ctx, const dcem_interval *iv)
{
    ivs *c = ctx;
    assert_true(c->n < MAXI);
    c->iv[c->n++] = *iv;
}

static uint64_t rng;
static unsigned rnd(unsigned n)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((rng >> 33) % n);
}

/* A counter meter at about 100 kW behind a ratio, read every 15 min with
 * jitter, from 28 January on: gaps, glitches, resets, rollovers, ratio
 * changes. */
static int stream(reading *r, int64_t t0)
{
    int n = 0;
    double reg = 990000 + rnd(9000), ratio = 1; /* register, near the modulo 1e6 */
    int64_t t = t0;
    while (n < MAXR) {
        t += 15 * MIN + (int64_t)rnd(120000) - 60000;
        if (!rnd(60)) t += (int64_t)(1 + rnd(40)) * 15 * MIN; /* a gap */
        reg += (100 + rnd(50)) * 0.25 / ratio;
        if (reg >= 1e6) reg -= 1e6;             /* rollover */
        if (!rnd(400)) reg = rnd(100);          /* replaced / reset */
        if (!rnd(500)) ratio = ratio == 1 ? 2 : 1; /* CTs changed */
        double v = reg * ratio;
        if (!rnd(150)) v = v * 3 + 5000;         /* a glitch */
        r[n++] = (reading){t, v, ratio};
    }
    return n;
}

static const dcem_counter_cfg cfg = {.rated_kw = 400, .modulo_kwh = 1e6, .resolution_kwh = 0.01,
                                     .margin = 1.5, .gap_ms = 45 * MIN,
                                     .max_gap_ms = 7 * 24 * 60 * MIN};

static int same_iv(const dcem_interval *a, const dcem_interval *b)
{
    return !memcmp(a, b, sizeof *a);
}

static void test_replay_from_any_state(void **state)
{
    (void)state;
    dcem_tz *tz;
    char err[256];
    if (dcem_io_load_tz("Asia/Shanghai", &tz, err, sizeof err)) fail_msg("%s", err);
    static reading r[MAXR];
    static ivs full, part;
    static unsigned char blobs[MAXR][DCEM_METER_STATE_MAX];
    static size_t lens[MAXR];
    static int emitted[MAXR];
    long seen[4] = {0}; /* discarded, rollovers, resets, ratio changes: the streams have them */
    for (uint64_t seed = 1; seed <= 20; seed++) {
        rng = seed;
        int64_t t0;
        assert_int_equal(dcem_parse_time("2025-01-28T00:00:00+08:00", 25, &t0), 0);
        int n = stream(r, t0);
        dcem_meter_state m;
        dcem_meter_init(&m, tz, 15);
        full.n = 0;
        long accepted = 0, discarded = 0;
        for (int i = 0; i < n; i++) {
            dcem_counter_out out;
            if (!dcem_meter_push(&m, &cfg, r[i].t, 1, r[i].kwh, 0, 0, r[i].ratio, collect, &full,
                                 &out))
                accepted++;
            discarded += out.discarded;
            seen[3] += out.ratio_changed;
            lens[i] = dcem_meter_encode(&m, blobs[i], sizeof blobs[i]);
            assert_true(lens[i] > 0);
            emitted[i] = full.n;
        }
        discarded += dcem_meter_finish(&m, &cfg, collect, &full);
        /* in order, once each; every good reading counted once */
        long readings = 0, events = 0;
        for (int k = 0; k < full.n; k++) {
            if (k) assert_true(full.iv[k].start_ms >= full.iv[k - 1].end_ms);
            readings += full.iv[k].readings;
            events += full.iv[k].discarded;
            seen[0] += full.iv[k].discarded;
            seen[1] += full.iv[k].rollovers;
            seen[2] += full.iv[k].resets;
        }
        assert_int_equal(readings, accepted - discarded);
        assert_int_equal(events, discarded);
        /* from the state after reading i, the rest of the stream */
        for (int trial = 0; trial < 30; trial++) {
            int i = (int)rnd((unsigned)n);
            dcem_meter_state x;
            assert_int_equal(dcem_meter_decode(&x, tz, 15, blobs[i], lens[i]), 0);
            int64_t f = dcem_meter_frontier_ms(&x);
            for (int k = 0; k < emitted[i]; k++) assert_true(full.iv[k].start_ms < f);
            part.n = 0;
            for (int j = i + 1; j < n; j++)
                dcem_meter_push(&x, &cfg, r[j].t, 1, r[j].kwh, 0, 0, r[j].ratio, collect, &part,
                                NULL);
            dcem_meter_finish(&x, &cfg, collect, &part);
            assert_int_equal(part.n, full.n - emitted[i]);
            for (int k = 0; k < part.n; k++) {
                assert_true(part.iv[k].start_ms >= f);
                assert_true(same_iv(&part.iv[k], &full.iv[emitted[i] + k]));
            }
        }
    }
    for (int k = 0; k < 4; k++)
        if (seen[k] < 5) fail_msg("event %d seen %ld times", k, seen[k]);
    dcem_tz_free(tz);
}

static void test_state_encoding(void **state)
{
    (void)state;
    dcem_tz *tz = dcem_tz_new_fixed(8 * 3600);
    dcem_meter_state m, x;
    dcem_meter_init(&m, tz, 15);
    ivs *sink = calloc(1, sizeof *sink);
    for (int i = 0; i < 10; i++)
        dcem_meter_push(&m, &cfg, 1700000000000LL + i * 7 * MIN, 1, 100 + i, 0, 0, 1, collect, sink,
                        NULL);
    unsigned char a[DCEM_METER_STATE_MAX], b[DCEM_METER_STATE_MAX];
    size_t la = dcem_meter_encode(&m, a, sizeof a);
    assert_true(la > 0);
    assert_int_equal(dcem_meter_encode(&m, a, 10), 0); /* too small */
    la = dcem_meter_encode(&m, a, sizeof a);
    assert_int_equal(dcem_meter_decode(&x, tz, 15, a, la), 0);
    size_t lb = dcem_meter_encode(&x, b, sizeof b);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    assert_int_equal(dcem_meter_last_ms(&x), dcem_meter_last_ms(&m));
    /* not a state of this version: refused, the meter untouched */
    assert_int_equal(dcem_meter_decode(&x, tz, 15, a, la - 1), DCEM_EINVAL);
    a[0] = 99;
    assert_int_equal(dcem_meter_decode(&x, tz, 15, a, la), DCEM_EINVAL);
    a[0] = 1;
    a[1] = 7; /* mode 7 */
    assert_int_equal(dcem_meter_decode(&x, tz, 15, a, la), DCEM_EINVAL);
    assert_int_equal(dcem_meter_decode(&x, tz, 15, a, 0), DCEM_EINVAL);
    /* a value whose micro-kWh would not fit: out of range, nothing moves */
    int64_t last = dcem_meter_last_ms(&m);
    assert_int_equal(dcem_meter_push(&m, &cfg, last + MIN, 1, 1e300, 0, 0, 1, collect, sink, NULL),
                     DCEM_REJECT_VALUE);
    assert_int_equal(dcem_meter_last_ms(&m), last);
    free(sink);
    dcem_tz_free(tz);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_from_any_state),
        cmocka_unit_test(test_state_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
