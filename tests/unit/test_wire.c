/* test_wire.c — the agent <-> collector wire format (common/wire.c): topics,
 * batch round trips with exact doubles, every malformed payload with the
 * reason the collector counts it under, truncation at every byte, limits,
 * and the ack / ctl / state / metrics payloads. Payloads are decoded from
 * heap copies of exactly their length so ASan catches any read past the end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "table.h"
#include "wire.h"
#include "wire_batch_cjson.h"

#define T0 1735689600000LL /* 2025-01-01T00:00:00.000Z */

/* ---- helpers ---- */

static char *exact(const char *s, size_t len)
{
    char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, s, len);
    return buf;
}

static dcem_wire_reading *storage(void)
{
    dcem_wire_reading *r = calloc(DCEM_WIRE_MAX_READINGS, sizeof *r);
    assert_non_null(r);
    return r;
}

/* Decodes s (len bytes) as a batch on the topic of s1/gw1; returns the
 * status and the reason. */
static int decode(const char *s, size_t len, dcem_wire_reading *st, dcem_wire_batch *b,
                  int *reason, char *err, size_t errlen)
{
    char *buf = exact(s, len);
    int rc = dcem_wire_decode_batch(buf, len, "s1", "gw1", st, DCEM_WIRE_MAX_READINGS, b, reason,
                                    err, errlen);
    free(buf);
    return rc;
}

static int same_double(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0; /* bitwise: -0.0 is not 0.0 */
}

static void assert_readings_equal(const dcem_wire_reading *a, const dcem_wire_reading *b)
{
    assert_string_equal(a->meter, b->meter);
    assert_int_equal(a->t_ms, b->t_ms);
    assert_int_equal(a->quality, b->quality);
    assert_int_equal(a->has_kwh, b->has_kwh);
    assert_int_equal(a->has_kw, b->has_kw);
    if (a->has_kwh) assert_true(same_double(a->kwh, b->kwh));
    if (a->has_kw) assert_true(same_double(a->kw, b->kw));
    assert_int_equal(a->n_values, b->n_values);
    for (size_t i = 0; i < a->n_values; i++) {
        assert_int_equal(a->values[i].quantity, b->values[i].quantity);
        assert_int_equal(a->values[i].phase, b->values[i].phase);
        if (!same_double(a->values[i].value, b->values[i].value))
            fail_msg("value %zu: %.17g != %.17g", i, a->values[i].value, b->values[i].value);
    }
}

static void set_reading(dcem_wire_reading *r, const char *meter, int64_t t, int q)
{
    memset(r, 0, sizeof *r);
    snprintf(r->meter, sizeof r->meter, "%s", meter);
    r->t_ms = t;
    r->quality = q;
}

static void add_value(dcem_wire_reading *r, int quantity, int phase, double v)
{
    r->values[r->n_values++] = (dcem_wire_value){quantity, phase, v};
}

static void batch_init(dcem_wire_batch *b, dcem_wire_reading *r, size_t n)
{
    memset(b, 0, sizeof *b);
    snprintf(b->site, sizeof b->site, "s1");
    snprintf(b->gateway, sizeof b->gateway, "gw1");
    b->epoch = 1732650000;
    b->seq = 123456;
    b->readings = r;
    b->n_readings = n;
}

/* A reading with every value the wire can carry, each 17 digits long. */
static void worst_reading(dcem_wire_reading *r)
{
    set_reading(r, "m", DCEM_WIRE_MAX_T_MS, DCEM_WIRE_Q_OUT_OF_RANGE);
    memset(r->meter, 'm', DCEM_ID_MAX - 1); /* the longest id */
    r->has_kwh = r->has_kw = 1;
    r->kwh = r->kw = -1.2345678901234567e-300;
    for (int q = 0; q < DCEM_Q_COUNT; q++)
        for (int ph = 0; ph < 4; ph++)
            if (dcem_quantity_measured(q) &&
                !(ph == 0 && (q == DCEM_Q_ENERGY_IMPORT_KWH || q == DCEM_Q_POWER_KW)))
                add_value(r, q, ph, -1.2345678901234567e-300);
}

/* ---- topics ---- */

static void test_topic_build(void **state)
{
    (void)state;
    static const struct {
        const char *site, *gw, *leaf, *want; /* want NULL: DCEM_EINVAL */
    } cases[] = {
        {"sh-dc01", "gw-a17", "data", "dcem/v1/sh-dc01/gw-a17/data"},
        {"sh-dc01", "gw-a17", "ack", "dcem/v1/sh-dc01/gw-a17/ack"},
        {"sh-dc01", "gw-a17", "ctl", "dcem/v1/sh-dc01/gw-a17/ctl"},
        {"sh-dc01", "gw-a17", "state", "dcem/v1/sh-dc01/gw-a17/state"},
        {"sh-dc01", "gw-a17", "metrics", "dcem/v1/sh-dc01/gw-a17/metrics"},
        {"Site_1.b", "GW.2", "data", "dcem/v1/Site_1.b/GW.2/data"},
        {"sh-dc01", NULL, "alerts", "dcem/v1/sh-dc01/alerts"},
        {"sh-dc01", NULL, "data", NULL},      /* gateway leaf without a gateway */
        {"sh-dc01", "gw", "alerts", NULL},    /* site leaf under a gateway */
        {"sh-dc01", "gw", "foo", NULL},       /* unknown leaf */
        {"sh-dc01", "gw", "", NULL},
        {"sh+", "gw", "data", NULL},          /* wildcards and separators */
        {"sh", "gw#", "data", NULL},
        {"sh/x", "gw", "data", NULL},
        {"sh", "g w", "data", NULL},
        {"", "gw", "data", NULL},
        {"sh", "", "data", NULL},
        {"s\xc3\xa9", "gw", "data", NULL},    /* non-ASCII */
        {"sh", "gw", NULL, NULL},
        {NULL, "gw", "data", NULL},
        /* 63 characters is the longest id, 64 is one too many */
        {"123456789012345678901234567890123456789012345678901234567890123", "gw", "ack",
         "dcem/v1/123456789012345678901234567890123456789012345678901234567890123/gw/ack"},
        {"1234567890123456789012345678901234567890123456789012345678901234", "gw", "ack", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[DCEM_WIRE_TOPIC_MAX];
        int rc = dcem_wire_topic(buf, sizeof buf, cases[i].site, cases[i].gw, cases[i].leaf);
        if (!cases[i].want) {
            if (rc != DCEM_EINVAL) fail_msg("case %zu: %d, want DCEM_EINVAL", i, rc);
            continue;
        }
        if (rc) fail_msg("case %zu: %s", i, dcem_strerror(rc));
        assert_string_equal(buf, cases[i].want);
        /* and back */
        dcem_wire_topic_parts p;
        assert_int_equal(dcem_wire_topic_parse(buf, strlen(buf), &p), 0);
        assert_string_equal(p.site, cases[i].site);
        assert_string_equal(p.gateway, cases[i].gw ? cases[i].gw : "");
        assert_string_equal(dcem_wire_leaf_name(p.leaf), cases[i].leaf);
    }
    /* the longest topic fits DCEM_WIRE_TOPIC_MAX */
    char id[DCEM_ID_MAX], buf[DCEM_WIRE_TOPIC_MAX];
    memset(id, 'x', DCEM_ID_MAX - 1);
    id[DCEM_ID_MAX - 1] = '\0';
    assert_int_equal(dcem_wire_topic(buf, sizeof buf, id, id, "metrics"), 0);
    /* too small a buffer */
    char small[12] = "zzz";
    assert_int_equal(dcem_wire_topic(small, sizeof small, "s", "g", "data"), DCEM_EFULL);
    assert_string_equal(small, "");
    assert_int_equal(dcem_wire_topic(small, 0, "s", "g", "data"), DCEM_EFULL);
    assert_int_equal(dcem_wire_topic(small, sizeof small, "s", NULL, "alerts"), DCEM_EFULL);
}

static void test_topic_parse(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "dcem/v1",
        "dcem/v1/",
        "dcem/v1/s",
        "dcem/v1/s/g",               /* no leaf */
        "dcem/v2/s/g/data",          /* another version */
        "dcem/v1/s/g/data/x",        /* too deep */
        "dcem/v1/s/g/foo",
        "dcem/v1/s/g/alerts",        /* site leaf at gateway level */
        "dcem/v1/s/data",            /* gateway leaf at site level */
        "dcem/v1//g/data",
        "dcem/v1/s//data",
        "dcem/v1/s/g/",
        "dcem/v1/s+/g/data",
        "dcem/v1/+/+/data",          /* a filter is not a topic */
        "dcem/v1/#",
        "/dcem/v1/s/g/data",
        "DCEM/v1/s/g/data",
        "dcem/v1/s/g/Data",
        "dcem/v1/s/g/data ",
        "xdcm/v1/s/g/data",
        "dcem/v1/1234567890123456789012345678901234567890123456789012345678901234/g/ack",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dcem_wire_topic_parts p;
        size_t len = strlen(bad[i]);
        char *buf = exact(bad[i], len);
        if (dcem_wire_topic_parse(buf, len, &p) != DCEM_EINVAL)
            fail_msg("'%s' parsed", bad[i]);
        free(buf);
    }
    /* exactly len bytes: the rest of the buffer is not part of the topic */
    dcem_wire_topic_parts p;
    const char *t = "dcem/v1/s1/gw1/state/more";
    assert_int_equal(dcem_wire_topic_parse(t, 20, &p), 0);
    assert_string_equal(p.site, "s1");
    assert_string_equal(p.gateway, "gw1");
    assert_int_equal(p.leaf, DCEM_WIRE_STATE);
    assert_int_equal(dcem_wire_topic_parse("dcem/v1/s1/alerts", 17, &p), 0);
    assert_int_equal(p.leaf, DCEM_WIRE_ALERTS);
    assert_string_equal(p.gateway, "");
    assert_null(dcem_wire_leaf_name(DCEM_WIRE_LEAF_COUNT));
    assert_string_equal(DCEM_WIRE_FILTER_DATA, "dcem/v1/+/+/data");
}

/* ---- batches ---- */

static void test_batch_round_trip(void **state)
{
    (void)state;
    dcem_wire_reading r[5];
    set_reading(&r[0], "pdu-a1", T0, DCEM_WIRE_Q_OK);
    r[0].has_kwh = r[0].has_kw = 1;
    r[0].kwh = 42949672.95;       /* u32 counter / 100 at its top */
    r[0].kw = 12345.669921875;    /* a float32 value, exact in binary */
    add_value(&r[0], DCEM_Q_VOLTAGE_V, 1, 230.1);
    add_value(&r[0], DCEM_Q_VOLTAGE_V, 2, 229.99999999999997);
    add_value(&r[0], DCEM_Q_VOLTAGE_V, 3, 0.1 + 0.2);
    add_value(&r[0], DCEM_Q_VOLTAGE_LL_V, 1, 400);
    add_value(&r[0], DCEM_Q_CURRENT_A, 1, -0.0);
    add_value(&r[0], DCEM_Q_POWER_FACTOR, 0, 0.98);
    add_value(&r[0], DCEM_Q_FREQUENCY_HZ, 0, 50.01);
    add_value(&r[0], DCEM_Q_ENERGY_EXPORT_KWH, 0, 9007199254740992.0);
    add_value(&r[0], DCEM_Q_ENERGY_IMPORT_KWH, 2, 1.7976931348623157e308);
    add_value(&r[0], DCEM_Q_POWER_KW, 3, 4.9406564584124654e-324); /* smallest denormal */
    add_value(&r[0], DCEM_Q_REACTIVE_KVAR, 0, -1e-7);
    add_value(&r[0], DCEM_Q_APPARENT_KVA, 0, 123456789012345680000.0);
    add_value(&r[0], DCEM_Q_ENERGY_TOTAL_KWH, 0, 1e21);
    set_reading(&r[1], "pdu-a1", T0 + 15000, DCEM_WIRE_Q_STALE);
    r[1].has_kwh = 1;
    r[1].kwh = 42949672.95;
    set_reading(&r[2], "ups.2_B", T0 + 1, DCEM_WIRE_Q_OUT_OF_RANGE);
    r[2].has_kw = 1;
    r[2].kw = 0;
    set_reading(&r[3], "ups.2_B", T0 + 999, DCEM_WIRE_Q_COMM_ERROR);
    set_reading(&r[4], "m", 0, DCEM_WIRE_Q_OK); /* the epoch itself, no values */
    dcem_wire_batch b, out;
    batch_init(&b, r, 5);
    char *json;
    size_t len;
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), 0);
    assert_int_equal(strlen(json), len);
    /* counters keep their decimals; numbers are the shortest exact form */
    assert_non_null(strstr(json, "\"kwh\":42949672.95,"));
    assert_non_null(strstr(json, "\"kw\":12345.669921875,"));
    assert_non_null(strstr(json, "\"voltage_v_l1\":230.1,"));
    assert_non_null(strstr(json, "\"voltage_v_l3\":0.30000000000000004,"));
    assert_non_null(strstr(json, "\"current_a_l1\":-0,"));
    assert_non_null(strstr(json, "\"frequency_hz\":50.01"));
    assert_non_null(strstr(json, "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\","
                                 "\"epoch\":1732650000,\"seq\":123456,\"readings\":[{"
                                 "\"meter\":\"pdu-a1\",\"t\":1735689600000,\"q\":\"ok\","));
    assert_non_null(
        strstr(json, "{\"meter\":\"ups.2_B\",\"t\":1735689600999,\"q\":\"comm_error\"}"));

    dcem_wire_reading *st = storage();
    int reason = -1;
    char err[256];
    int rc = decode(json, len, st, &out, &reason, err, sizeof err);
    if (rc) fail_msg("%s: %s", dcem_wire_reason_name(reason), err);
    assert_int_equal(reason, DCEM_WIRE_OK);
    assert_string_equal(out.site, "s1");
    assert_string_equal(out.gateway, "gw1");
    assert_true(out.epoch == b.epoch && out.seq == b.seq);
    assert_int_equal(out.identified, 1);
    assert_int_equal(out.unknown_values, 0);
    assert_ptr_equal(out.readings, st);
    assert_int_equal(out.n_readings, 5);
    assert_int_equal(out.listed_readings, 5);
    for (size_t i = 0; i < 5; i++) assert_readings_equal(&st[i], &r[i]);

    /* re-encoding the decoded batch gives the same bytes */
    char *json2;
    size_t len2;
    assert_int_equal(dcem_wire_encode_batch(&out, &json2, &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(json2, json, len);
    free(json2);
    free(json);

    /* an empty batch is valid */
    batch_init(&b, NULL, 0);
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), 0);
    assert_int_equal(decode(json, len, st, &out, &reason, err, sizeof err), 0);
    assert_int_equal(out.n_readings, 0);
    free(json);
    free(st);
}

/* Random finite doubles of every magnitude (bit patterns from a fixed LCG)
 * come back bit for bit. */
static void test_random_doubles(void **state)
{
    (void)state;
    dcem_wire_reading *r = calloc(200, sizeof *r), *st = storage();
    assert_non_null(r);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < 200; i++) {
        set_reading(&r[i], "m1", T0 + (int64_t)i, DCEM_WIRE_Q_OK);
        for (int k = 0; k < 3; k++) {
            double d;
            do {
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                memcpy(&d, &x, sizeof d);
            } while (!isfinite(d));
            if (k == 0) r[i].has_kwh = 1, r[i].kwh = d;
            if (k == 1) r[i].has_kw = 1, r[i].kw = d;
            if (k == 2) add_value(&r[i], DCEM_Q_CURRENT_A, 2, d);
        }
    }
    dcem_wire_batch b, out;
    batch_init(&b, r, 200);
    char *json, err[256];
    size_t len;
    int reason;
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), 0);
    int rc = decode(json, len, st, &out, &reason, err, sizeof err);
    if (rc) fail_msg("%s: %s", dcem_wire_reason_name(reason), err);
    for (size_t i = 0; i < 200; i++) assert_readings_equal(&st[i], &r[i]);
    free(json);
    free(st);
    free(r);
}

static void test_encode_not_finite(void **state)
{
    (void)state;
    dcem_wire_reading r[3];
    set_reading(&r[0], "m1", T0, DCEM_WIRE_Q_OK);
    r[0].has_kwh = r[0].has_kw = 1;
    r[0].kwh = NAN;
    r[0].kw = 5;
    add_value(&r[0], DCEM_Q_VOLTAGE_V, 1, INFINITY);
    add_value(&r[0], DCEM_Q_VOLTAGE_V, 2, 231);
    set_reading(&r[1], "m2", T0, DCEM_WIRE_Q_STALE);
    r[1].has_kwh = 1;
    r[1].kwh = -INFINITY;
    set_reading(&r[2], "m3", T0, DCEM_WIRE_Q_COMM_ERROR);
    r[2].has_kwh = 1;
    r[2].kwh = 17; /* a comm error has no values */
    add_value(&r[2], DCEM_Q_VOLTAGE_V, 1, 230);
    dcem_wire_batch b;
    batch_init(&b, r, 3);
    char *json;
    size_t len;
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), 0);
    assert_null(strstr(json, "nan"));
    assert_null(strstr(json, "inf"));
    assert_null(strstr(json, "null"));
    assert_non_null(strstr(json, "{\"meter\":\"m1\",\"t\":1735689600000,\"q\":\"out_of_range\","
                                 "\"kw\":5,\"values\":{\"voltage_v_l2\":231}}"));
    assert_non_null(strstr(json, "{\"meter\":\"m2\",\"t\":1735689600000,\"q\":\"stale\"}"));
    assert_non_null(strstr(json, "{\"meter\":\"m3\",\"t\":1735689600000,\"q\":\"comm_error\"}"));
    dcem_wire_reading *st = storage();
    dcem_wire_batch out;
    int reason;
    assert_int_equal(decode(json, len, st, &out, &reason, NULL, 0), 0);
    assert_int_equal(st[0].quality, DCEM_WIRE_Q_OUT_OF_RANGE);
    assert_false(st[0].has_kwh);
    assert_int_equal(st[0].n_values, 1);
    free(json);
    free(st);
}

static void test_encode_invalid(void **state)
{
    (void)state;
    dcem_wire_reading r;
    dcem_wire_batch b;
    char *json = (char *)1;
    size_t len = 99;
    /* each mutation of a valid batch, one at a time */
    for (int k = 0; k < 17; k++) {
        set_reading(&r, "m1", T0, DCEM_WIRE_Q_OK);
        add_value(&r, DCEM_Q_VOLTAGE_V, 1, 230);
        batch_init(&b, &r, 1);
        switch (k) {
        case 0: snprintf(r.meter, sizeof r.meter, "m/1"); break;
        case 1: r.meter[0] = '\0'; break;
        case 2: memset(r.meter, 'm', sizeof r.meter); break; /* not terminated */
        case 3: r.t_ms = -1; break;
        case 4: r.t_ms = DCEM_WIRE_MAX_T_MS + 1; break;
        case 5: r.quality = DCEM_WIRE_Q_COUNT; break;
        case 6: add_value(&r, DCEM_Q_SCALE_FACTOR, 0, 1); break;
        case 7: add_value(&r, DCEM_Q_VOLTAGE_V, 4, 1); break;
        case 8: add_value(&r, DCEM_Q_VOLTAGE_V, 1, 231); break; /* twice */
        case 9: add_value(&r, DCEM_Q_ENERGY_IMPORT_KWH, 0, 1); break; /* belongs in kwh */
        case 10: add_value(&r, DCEM_Q_POWER_KW, 0, 1); break;       /* belongs in kw */
        case 11: add_value(&r, DCEM_Q_COUNT, 1, 1); break;
        case 12: b.epoch = 0; break;
        case 13: b.seq = 0; break;
        case 14: b.seq = DCEM_WIRE_MAX_INT + 1; break;
        case 15: snprintf(b.gateway, sizeof b.gateway, "gw#"); break;
        case 16: b.readings = NULL; break;
        }
        int rc = dcem_wire_encode_batch(&b, &json, &len);
        if (rc != DCEM_EINVAL) fail_msg("mutation %d: %d", k, rc);
        assert_null(json);
        assert_int_equal(len, 0);
    }
    /* the largest epoch and seq are fine */
    set_reading(&r, "m1", T0, DCEM_WIRE_Q_OK);
    batch_init(&b, &r, 1);
    b.epoch = b.seq = DCEM_WIRE_MAX_INT;
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), 0);
    assert_non_null(strstr(json, "\"epoch\":9007199254740991,\"seq\":9007199254740991,"));
    free(json);
}

static void test_encode_limits(void **state)
{
    (void)state;
    dcem_wire_reading *r = calloc(DCEM_WIRE_MAX_READINGS + 1, sizeof *r);
    assert_non_null(r);
    dcem_wire_batch b;
    char *json;
    size_t len;
    /* the worst-case reading stays within DCEM_WIRE_READING_MAX_BYTES */
    worst_reading(&r[0]);
    batch_init(&b, r, 1);
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), 0);
    assert_true(len < DCEM_WIRE_READING_MAX_BYTES);
    print_message("worst-case reading: %zu bytes\n", len);
    free(json);
    /* so DCEM_WIRE_SAFE_READINGS of them always fit, with the longest ids */
    for (size_t i = 1; i < DCEM_WIRE_SAFE_READINGS; i++) r[i] = r[0];
    memset(b.site, 's', DCEM_ID_MAX - 1);
    memset(b.gateway, 'g', DCEM_ID_MAX - 1);
    b.epoch = b.seq = DCEM_WIRE_MAX_INT;
    b.n_readings = DCEM_WIRE_SAFE_READINGS;
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), 0);
    assert_true(len <= DCEM_WIRE_MAX_PAYLOAD);
    /* the decoder reads back what the encoder wrote at this size */
    dcem_wire_reading *st = storage();
    dcem_wire_batch out;
    int reason;
    char err[256];
    char *buf = exact(json, len);
    int rc = dcem_wire_decode_batch(buf, len, NULL, NULL, st, DCEM_WIRE_MAX_READINGS, &out,
                                    &reason, err, sizeof err);
    if (rc) fail_msg("%s: %s", dcem_wire_reason_name(reason), err);
    assert_readings_equal(&st[DCEM_WIRE_SAFE_READINGS - 1], &r[0]);
    free(buf);
    free(json);
    /* more than the limit holds: DCEM_EFULL, nothing returned */
    size_t over = DCEM_WIRE_MAX_PAYLOAD / DCEM_WIRE_READING_MAX_BYTES * 4;
    for (size_t i = DCEM_WIRE_SAFE_READINGS; i < over; i++) r[i] = r[0];
    b.n_readings = over;
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), DCEM_EFULL);
    assert_null(json);
    /* 10,000 small readings fit; one more is refused */
    for (size_t i = 0; i <= DCEM_WIRE_MAX_READINGS; i++)
        set_reading(&r[i], "m", T0, DCEM_WIRE_Q_COMM_ERROR);
    batch_init(&b, r, DCEM_WIRE_MAX_READINGS);
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), 0);
    assert_int_equal(decode(json, len, st, &out, &reason, err, sizeof err), 0);
    assert_int_equal(out.n_readings, DCEM_WIRE_MAX_READINGS);
    free(json);
    b.n_readings = DCEM_WIRE_MAX_READINGS + 1;
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), DCEM_EFULL);
    free(st);
    free(r);
}

/* ---- malformed batches ---- */

#define HDR "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":7,\"seq\":42,"
#define ONE(fields) HDR "\"readings\":[{" fields "}]}"
#define OK_R "\"meter\":\"m1\",\"t\":1735689600000,\"q\":\"ok\""

typedef struct bad_case {
    const char *name;
    const char *json;
    int reason;
    int identified; /* epoch and seq known despite the error */
} bad_case;

static const bad_case bad_cases[] = {
    /* not JSON */
    {"empty", "", DCEM_WIRE_NOT_JSON, 0},
    {"whitespace only", "  \n", DCEM_WIRE_NOT_JSON, 0},
    {"text", "hello", DCEM_WIRE_NOT_JSON, 0},
    {"open brace", "{", DCEM_WIRE_NOT_JSON, 0},
    {"trailing comma", "{\"v\":1,}", DCEM_WIRE_NOT_JSON, 0},
    {"bytes after the object", ONE(OK_R) " x", DCEM_WIRE_NOT_JSON, 0},
    {"two objects", ONE(OK_R) ONE(OK_R), DCEM_WIRE_NOT_JSON, 0},
    {"NaN literal", ONE(OK_R ",\"kwh\":NaN"), DCEM_WIRE_NOT_JSON, 0},
    {"nan literal", ONE(OK_R ",\"kwh\":nan"), DCEM_WIRE_NOT_JSON, 0},
    {"Infinity literal", ONE(OK_R ",\"kwh\":Infinity"), DCEM_WIRE_NOT_JSON, 0},
    {"-Infinity literal", ONE(OK_R ",\"kwh\":-Infinity"), DCEM_WIRE_NOT_JSON, 0},
    {"hex number", ONE(OK_R ",\"kwh\":0x10"), DCEM_WIRE_NOT_JSON, 0},
    {"single quotes", "{'v':1}", DCEM_WIRE_NOT_JSON, 0},
    /* the wrong shape */
    {"array payload", "[1,2]", DCEM_WIRE_WRONG_TYPE, 0},
    {"number payload", "1", DCEM_WIRE_WRONG_TYPE, 0},
    {"string payload", "\"v\"", DCEM_WIRE_WRONG_TYPE, 0},
    /* version first: a future schema may differ in everything else */
    {"v missing", "{\"site\":\"s1\"}", DCEM_WIRE_MISSING_FIELD, 0},
    {"v string", "{\"v\":\"1\"}", DCEM_WIRE_WRONG_TYPE, 0},
    {"v 2", "{\"v\":2,\"whatever\":[]}", DCEM_WIRE_BAD_VERSION, 0},
    {"v 2 with a valid v1 body",
     "{\"v\":2,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":7,\"seq\":42,\"readings\":[]}",
     DCEM_WIRE_BAD_VERSION, 0},
    {"v 0", "{\"v\":0}", DCEM_WIRE_BAD_VERSION, 0},
    {"v 1.5", "{\"v\":1.5}", DCEM_WIRE_BAD_VERSION, 0},
    {"v twice", "{\"v\":1,\"v\":2}", DCEM_WIRE_DUPLICATE_FIELD, 0},
    /* site and gateway */
    {"site missing", "{\"v\":1,\"gateway\":\"gw1\",\"epoch\":7,\"seq\":42,\"readings\":[]}",
     DCEM_WIRE_MISSING_FIELD, 0},
    {"gateway missing", "{\"v\":1,\"site\":\"s1\",\"epoch\":7,\"seq\":42,\"readings\":[]}",
     DCEM_WIRE_MISSING_FIELD, 0},
    {"site a number", "{\"v\":1,\"site\":1}", DCEM_WIRE_WRONG_TYPE, 0},
    {"another site", "{\"v\":1,\"site\":\"s2\",\"gateway\":\"gw1\",\"epoch\":7,\"seq\":42,"
                     "\"readings\":[]}", DCEM_WIRE_SITE_MISMATCH, 0},
    {"another gateway's id", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw2\",\"epoch\":7,"
                             "\"seq\":42,\"readings\":[]}", DCEM_WIRE_GATEWAY_MISMATCH, 0},
    {"gateway differs in case", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"GW1\",\"epoch\":7,"
                                "\"seq\":42,\"readings\":[]}", DCEM_WIRE_GATEWAY_MISMATCH, 0},
    {"gateway with a wildcard", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1/#\",\"epoch\":7,"
                                "\"seq\":42,\"readings\":[]}", DCEM_WIRE_GATEWAY_MISMATCH, 0},
    {"gateway twice", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"gateway\":\"gw2\","
                      "\"epoch\":7,\"seq\":42,\"readings\":[]}", DCEM_WIRE_DUPLICATE_FIELD, 0},
    /* epoch and seq */
    {"seq missing", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":7,\"readings\":[]}",
     DCEM_WIRE_MISSING_FIELD, 0},
    {"epoch missing", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"seq\":7,\"readings\":[]}",
     DCEM_WIRE_MISSING_FIELD, 0},
    {"negative seq", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":7,\"seq\":-1,"
                     "\"readings\":[]}", DCEM_WIRE_BAD_SEQ, 0},
    {"seq 0", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":7,\"seq\":0,"
              "\"readings\":[]}", DCEM_WIRE_BAD_SEQ, 0},
    {"fractional seq", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":7,\"seq\":4.5,"
                       "\"readings\":[]}", DCEM_WIRE_BAD_SEQ, 0},
    {"seq 2^53", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":7,"
                 "\"seq\":9007199254740992,\"readings\":[]}", DCEM_WIRE_BAD_SEQ, 0},
    {"seq 2^53+1 (rounds to 2^53)", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":7,"
                                    "\"seq\":9007199254740993,\"readings\":[]}",
     DCEM_WIRE_BAD_SEQ, 0},
    {"seq 1e999", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":7,\"seq\":1e999,"
                  "\"readings\":[]}", DCEM_WIRE_BAD_SEQ, 0},
    {"seq a string", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":7,\"seq\":\"42\","
                     "\"readings\":[]}", DCEM_WIRE_WRONG_TYPE, 0},
    {"seq null", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":7,\"seq\":null,"
                 "\"readings\":[]}", DCEM_WIRE_WRONG_TYPE, 0},
    {"epoch 0", "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":0,\"seq\":1,"
                "\"readings\":[]}", DCEM_WIRE_BAD_SEQ, 0},
    /* readings: from here on the batch is identified */
    {"readings missing", HDR "\"x\":1}", DCEM_WIRE_MISSING_FIELD, 1},
    {"readings an object", HDR "\"readings\":{}}", DCEM_WIRE_WRONG_TYPE, 1},
    {"reading a number", HDR "\"readings\":[1]}", DCEM_WIRE_WRONG_TYPE, 1},
    {"reading null", HDR "\"readings\":[null]}", DCEM_WIRE_WRONG_TYPE, 1},
    {"meter missing", ONE("\"t\":1735689600000,\"q\":\"ok\""), DCEM_WIRE_MISSING_FIELD, 1},
    {"meter a number", ONE("\"meter\":7,\"t\":1735689600000,\"q\":\"ok\""),
     DCEM_WIRE_WRONG_TYPE, 1},
    {"meter empty", ONE("\"meter\":\"\",\"t\":1735689600000,\"q\":\"ok\""),
     DCEM_WIRE_BAD_METER, 1},
    {"meter with a slash", ONE("\"meter\":\"a/b\",\"t\":1735689600000,\"q\":\"ok\""),
     DCEM_WIRE_BAD_METER, 1},
    {"meter with a space", ONE("\"meter\":\"a b\",\"t\":1735689600000,\"q\":\"ok\""),
     DCEM_WIRE_BAD_METER, 1},
    /* cJSON would end the string at an escaped NUL: "a\u0000b" would read as "a" */
    {"meter with an escaped NUL", ONE("\"meter\":\"a\\u0000b\",\"t\":1735689600000,\"q\":\"ok\""),
     DCEM_WIRE_NOT_JSON, 0},
    {"escaped NUL in an unknown field", ONE(OK_R ",\"x\":\"\\u0000\""), DCEM_WIRE_NOT_JSON, 0},
    {"escaped backslash, then u0000: a bad meter",
     ONE("\"meter\":\"\\\\u0000\",\"t\":0,\"q\":\"ok\""), DCEM_WIRE_BAD_METER, 1},
    {"meter 64 characters",
     ONE("\"meter\":\"1234567890123456789012345678901234567890123456789012345678901234\","
         "\"t\":1735689600000,\"q\":\"ok\""),
     DCEM_WIRE_BAD_METER, 1},
    {"t missing", ONE("\"meter\":\"m1\",\"q\":\"ok\""), DCEM_WIRE_MISSING_FIELD, 1},
    {"t negative", ONE("\"meter\":\"m1\",\"t\":-1,\"q\":\"ok\""), DCEM_WIRE_BAD_TIME, 1},
    {"t fractional", ONE("\"meter\":\"m1\",\"t\":1735689600000.5,\"q\":\"ok\""),
     DCEM_WIRE_BAD_TIME, 1},
    {"t after 9999", ONE("\"meter\":\"m1\",\"t\":253402300800000,\"q\":\"ok\""),
     DCEM_WIRE_BAD_TIME, 1},
    {"t 1e300", ONE("\"meter\":\"m1\",\"t\":1e300,\"q\":\"ok\""), DCEM_WIRE_BAD_TIME, 1},
    {"t an RFC 3339 string", ONE("\"meter\":\"m1\",\"t\":\"2025-01-01T00:00:00.000Z\","
                                 "\"q\":\"ok\""), DCEM_WIRE_WRONG_TYPE, 1},
    {"q missing", ONE("\"meter\":\"m1\",\"t\":1735689600000"), DCEM_WIRE_MISSING_FIELD, 1},
    {"q unknown", ONE("\"meter\":\"m1\",\"t\":1735689600000,\"q\":\"good\""),
     DCEM_WIRE_BAD_QUALITY, 1},
    {"q upper case", ONE("\"meter\":\"m1\",\"t\":1735689600000,\"q\":\"OK\""),
     DCEM_WIRE_BAD_QUALITY, 1},
    {"q a number", ONE("\"meter\":\"m1\",\"t\":1735689600000,\"q\":0"), DCEM_WIRE_WRONG_TYPE, 1},
    {"comm_error with kwh", ONE("\"meter\":\"m1\",\"t\":1735689600000,\"q\":\"comm_error\","
                                "\"kwh\":1"), DCEM_WIRE_BAD_QUALITY, 1},
    {"comm_error with values", ONE("\"meter\":\"m1\",\"t\":1735689600000,\"q\":\"comm_error\","
                                   "\"values\":{\"voltage_v\":230}"), DCEM_WIRE_BAD_QUALITY, 1},
    /* numbers that are not finite: cJSON reads 1e999 as infinity; null is
     * what cJSON and JavaScript print for NaN */
    {"kwh 1e999", ONE(OK_R ",\"kwh\":1e999"), DCEM_WIRE_NOT_FINITE, 1},
    {"kw -1e999", ONE(OK_R ",\"kw\":-1e999"), DCEM_WIRE_NOT_FINITE, 1},
    {"kwh null", ONE(OK_R ",\"kwh\":null"), DCEM_WIRE_NOT_FINITE, 1},
    {"value 1e400", ONE(OK_R ",\"values\":{\"voltage_v_l1\":1e400}"), DCEM_WIRE_NOT_FINITE, 1},
    {"value null", ONE(OK_R ",\"values\":{\"current_a\":null}"), DCEM_WIRE_NOT_FINITE, 1},
    {"kwh a string", ONE(OK_R ",\"kwh\":\"12.5\""), DCEM_WIRE_WRONG_TYPE, 1},
    {"kw true", ONE(OK_R ",\"kw\":true"), DCEM_WIRE_WRONG_TYPE, 1},
    {"value an array", ONE(OK_R ",\"values\":{\"voltage_v\":[230]}"), DCEM_WIRE_WRONG_TYPE, 1},
    {"values an array", ONE(OK_R ",\"values\":[230]"), DCEM_WIRE_WRONG_TYPE, 1},
    /* each thing once */
    {"kwh twice", ONE(OK_R ",\"kwh\":1,\"kwh\":2"), DCEM_WIRE_DUPLICATE_FIELD, 1},
    {"value twice", ONE(OK_R ",\"values\":{\"voltage_v_l1\":1,\"voltage_v_l1\":2}"),
     DCEM_WIRE_DUPLICATE_FIELD, 1},
    {"import counter in values", ONE(OK_R ",\"values\":{\"energy_import_kwh\":1}"),
     DCEM_WIRE_DUPLICATE_FIELD, 1},
    {"total power in values", ONE(OK_R ",\"values\":{\"power_kw\":1}"),
     DCEM_WIRE_DUPLICATE_FIELD, 1},
    {"second reading bad",
     HDR "\"readings\":[{" OK_R "},{\"meter\":\"m1\",\"t\":-5,\"q\":\"ok\"}]}",
     DCEM_WIRE_BAD_TIME, 1},
    /* transformer ratios: never 0, negative or absurd, never on a comm error */
    {"ct 0", ONE(OK_R ",\"ct\":0,\"kwh\":1"), DCEM_WIRE_BAD_FIELD, 1},
    {"ct negative", ONE(OK_R ",\"ct\":-400,\"kwh\":1"), DCEM_WIRE_BAD_FIELD, 1},
    {"pt above 100000", ONE(OK_R ",\"pt\":100001,\"kwh\":1"), DCEM_WIRE_BAD_FIELD, 1},
    {"ct 1e999", ONE(OK_R ",\"ct\":1e999"), DCEM_WIRE_NOT_FINITE, 1},
    {"ct a string", ONE(OK_R ",\"ct\":\"400\""), DCEM_WIRE_WRONG_TYPE, 1},
    {"ratio note unknown", ONE(OK_R ",\"ratio\":\"odd\""), DCEM_WIRE_BAD_FIELD, 1},
    {"ratio note a number", ONE(OK_R ",\"ratio\":1"), DCEM_WIRE_WRONG_TYPE, 1},
    {"comm_error with ct", ONE("\"meter\":\"m1\",\"t\":1735689600000,\"q\":\"comm_error\","
                               "\"ct\":400"), DCEM_WIRE_BAD_QUALITY, 1},
};

/* Ratios travel with every reading: left out when 1, read back as 1 when
 * absent, and the note by name. */
static void test_ratio_round_trip(void **state)
{
    (void)state;
    dcem_wire_reading r[3];
    set_reading(&r[0], "incomer", 1735689600000, DCEM_WIRE_Q_OK);
    r[0].has_kwh = 1;
    r[0].kwh = 1234.56 * 400;
    r[0].ct = 400;
    r[0].pt = 100;
    r[0].ratio_note = DCEM_WIRE_RATIO_MISMATCH;
    set_reading(&r[1], "it-1", 1735689600000, DCEM_WIRE_Q_OK);
    r[1].has_kwh = 1;
    r[1].kwh = 7;
    set_reading(&r[2], "ups", 1735689600000, DCEM_WIRE_Q_OK);
    r[2].has_kwh = 1;
    r[2].kwh = 8;
    r[2].ct = 1;
    r[2].pt = 2.5;
    r[2].ratio_note = DCEM_WIRE_RATIO_HELD;
    dcem_wire_batch b;
    batch_init(&b, r, 3);
    char *json;
    size_t len;
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), 0);
    assert_non_null(strstr(json, "\"ct\":400,\"pt\":100,\"ratio\":\"mismatch\",\"kwh\":493824"));
    assert_non_null(strstr(json, "{\"meter\":\"it-1\",\"t\":1735689600000,\"q\":\"ok\",\"kwh\":7}"));
    assert_non_null(strstr(json, "\"q\":\"ok\",\"pt\":2.5,\"ratio\":\"held\",\"kwh\":8"));
    dcem_wire_reading *st = storage();
    dcem_wire_batch out;
    int reason;
    assert_int_equal(decode(json, len, st, &out, &reason, NULL, 0), 0);
    assert_int_equal(out.n_readings, 3);
    assert_true(out.readings[0].ct == 400 && out.readings[0].pt == 100);
    assert_int_equal(out.readings[0].ratio_note, DCEM_WIRE_RATIO_MISMATCH);
    assert_true(out.readings[1].ct == 1 && out.readings[1].pt == 1);
    assert_int_equal(out.readings[1].ratio_note, DCEM_WIRE_RATIO_FINE);
    assert_true(dcem_wire_ratio(&out.readings[0]) == 40000);
    assert_true(dcem_wire_ratio(&out.readings[2]) == 2.5);
    assert_int_equal(out.readings[2].ratio_note, DCEM_WIRE_RATIO_HELD);
    free(json);
    /* an encoder never writes a ratio it would refuse */
    r[1].ct = 0.0 - 5;
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), DCEM_EINVAL);
    assert_null(json);
    free(st);
}

static void test_bad_batch(void **state)
{
    const bad_case *c = *state;
    dcem_wire_reading *st = storage();
    dcem_wire_batch out;
    int reason = -1;
    char err[256] = "unset";
    int rc = decode(c->json, strlen(c->json), st, &out, &reason, err, sizeof err);
    if (rc != DCEM_EINVAL || reason != c->reason)
        fail_msg("%s: got %d %s (%s), want %s", c->name, rc, dcem_wire_reason_name(reason), err,
                 dcem_wire_reason_name(c->reason));
    assert_true(err[0] != '\0' && strcmp(err, "unset") != 0);
    assert_int_equal(out.identified, c->identified);
    if (c->identified) assert_true(out.epoch == 7 && out.seq == 42);
    assert_int_equal(out.n_readings, 0);
    free(st);
}

/* Unknown fields are ignored (forward compatibility); unknown quantities in
 * values are skipped and counted. */
static void test_unknown_fields(void **state)
{
    (void)state;
    const char *json =
        "\xef\xbb\xbf {\"v\":1.0,\"x\":{\"nested\":[1,{\"y\":null}]},\"site\":\"s1\","
        "\"gateway\":\"gw1\",\"epoch\":7,\"seq\":42.0,\"agent\":\"0.2.0\",\"readings\":[{"
        "\"meter\":\"m1\",\"t\":1735689600000,\"q\":\"ok\",\"kwh\":12.5,\"note\":\"x\","
        "\"values\":{\"thd_v_pct\":3.5,\"scale_factor\":2,\"voltage_v_l4\":1,\"voltage_v\":230,"
        "\"voltage_v_l2\":231,\"later\":\"text\"}}],\"z\":null}\r\n\t ";
    dcem_wire_reading *st = storage();
    dcem_wire_batch out;
    int reason;
    char err[256];
    int rc = decode(json, strlen(json), st, &out, &reason, err, sizeof err);
    if (rc) fail_msg("%s: %s", dcem_wire_reason_name(reason), err);
    assert_int_equal(out.unknown_values, 4);
    assert_int_equal(out.n_readings, 1);
    assert_int_equal(st[0].n_values, 2);
    assert_int_equal(st[0].values[1].quantity, DCEM_Q_VOLTAGE_V);
    assert_int_equal(st[0].values[1].phase, 2);
    assert_true(st[0].kwh == 12.5);
    /* a NUL byte anywhere is refused before parsing */
    char nul[] = "{\"v\":1}\0";
    assert_int_equal(decode(nul, sizeof nul - 1, st, &out, &reason, err, sizeof err),
                     DCEM_EINVAL);
    assert_int_equal(reason, DCEM_WIRE_NOT_JSON);
    /* without a topic, the ids are only checked for validity */
    const char *b = "{\"v\":1,\"site\":\"s 1\",\"gateway\":\"gw1\",\"epoch\":1,\"seq\":1,"
                    "\"readings\":[]}";
    assert_int_equal(dcem_wire_decode_batch(b, strlen(b), NULL, NULL, st, 10, &out, &reason,
                                            err, sizeof err),
                     DCEM_EINVAL);
    assert_int_equal(reason, DCEM_WIRE_BAD_ID);
    free(st);
}

/* Every prefix of a valid batch is refused as not JSON, and every single
 * byte change decodes or fails cleanly (no crash, no overread under ASan). */
static void test_truncated_and_mutated(void **state)
{
    (void)state;
    dcem_wire_reading r[2];
    set_reading(&r[0], "pdu-a1", T0, DCEM_WIRE_Q_OK);
    r[0].has_kwh = r[0].has_kw = 1;
    r[0].kwh = 42949672.95;
    r[0].kw = -3.5e-7;
    add_value(&r[0], DCEM_Q_VOLTAGE_V, 1, 230.1);
    add_value(&r[0], DCEM_Q_POWER_FACTOR, 0, 0.98);
    set_reading(&r[1], "ups-1", T0 + 5, DCEM_WIRE_Q_COMM_ERROR);
    dcem_wire_batch b, out;
    batch_init(&b, r, 2);
    char *json, err[256];
    size_t len;
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), 0);
    dcem_wire_reading *st = storage();
    int reason;
    for (size_t cut = 0; cut < len; cut++) {
        int rc = decode(json, cut, st, &out, &reason, err, sizeof err);
        if (rc != DCEM_EINVAL || reason != DCEM_WIRE_NOT_JSON)
            fail_msg("cut at %zu: %d %s", cut, rc, dcem_wire_reason_name(reason));
    }
    static const char subst[] = {'"', '{', '}', '[', ']', ',', ':', '0', '-', 'e', '.', '\\', 'x',
                                 ' ', '\x80'};
    char *m = malloc(len);
    assert_non_null(m);
    for (size_t i = 0; i < len; i++)
        for (size_t k = 0; k < sizeof subst; k++) {
            memcpy(m, json, len);
            m[i] = subst[k];
            int rc = dcem_wire_decode_batch(m, len, "s1", "gw1", st, DCEM_WIRE_MAX_READINGS, &out,
                                            &reason, err, sizeof err);
            assert_true(rc == 0 || rc == DCEM_EINVAL);
            assert_true(rc ? reason > 0 && reason < DCEM_WIRE_REASON_COUNT : reason == 0);
        }
    free(m);
    free(json);
    free(st);
}

/* The streaming batch decoder against the cJSON one it replaced
 * (tests/fuzz/wire_batch_cjson.c): the same result, reason, message and
 * batch fields on the payload of len bytes (a heap copy of exactly that
 * size), decoded on the topic of s1/gw1 or on none, with room for cap
 * readings; the same readings when it decodes. Returns the reason. */
static int agree(const char *s, size_t len, int topic, size_t cap)
{
    static dcem_wire_reading *a, *b;
    if (!a) {
        a = storage();
        b = storage();
    }
    char *buf = exact(s, len);
    dcem_wire_batch x, y;
    int rx = -1, ry = -2;
    char ex[256] = "x", ey[256] = "y";
    int cx = dcem_wire_decode_batch(buf, len, topic ? "s1" : NULL, topic ? "gw1" : NULL, a, cap, &x,
                                    &rx, ex, sizeof ex);
    int cy = dcem_wire_decode_batch_cjson(buf, len, topic ? "s1" : NULL, topic ? "gw1" : NULL, b,
                                          cap, &y, &ry, ey, sizeof ey);
    free(buf);
    if (cx != cy || rx != ry || strcmp(ex, ey) != 0)
        fail_msg("%.*s\n  streaming: %d %s '%s'\n  cJSON:     %d %s '%s'",
                 (int)(len < 300 ? len : 300), s, cx, dcem_wire_reason_name(rx), ex, cy,
                 dcem_wire_reason_name(ry), ey);
    assert_string_equal(x.site, y.site);
    assert_string_equal(x.gateway, y.gateway);
    assert_true(x.epoch == y.epoch && x.seq == y.seq && x.identified == y.identified);
    assert_int_equal(x.unknown_values, y.unknown_values);
    assert_int_equal(x.listed_readings, y.listed_readings);
    assert_int_equal(x.n_readings, y.n_readings);
    for (size_t i = 0; i < x.n_readings; i++) {
        assert_readings_equal(&a[i], &b[i]);
        assert_true(same_double(a[i].ct, b[i].ct) && same_double(a[i].pt, b[i].pt));
        assert_int_equal(a[i].ratio_note, b[i].ratio_note);
    }
    return rx;
}

#define AGREE(lit, topic) agree(lit, sizeof(lit) - 1, topic, DCEM_WIRE_MAX_READINGS)

/* Where cJSON's grammar is not RFC 8259's, the streaming decoder follows
 * cJSON: every malformed-batch case of the table, payloads with the quirks
 * (escapes, control bytes, a BOM, numbers strtod reads, deep nesting, NULs
 * smuggled in by bad \u escapes), and every prefix and one-byte change of
 * an encoded batch decode the same way with both decoders. */
static void test_streaming_equals_cjson(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        agree(bad_cases[i].json, strlen(bad_cases[i].json), 1, DCEM_WIRE_MAX_READINGS);
        agree(bad_cases[i].json, strlen(bad_cases[i].json), 0, 2);
    }
#define HEAD "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"epoch\":7,\"seq\":42,\"readings\":["
    /* decoded the same, with the same values */
    assert_int_equal(AGREE(HEAD "{\"m\\u0065ter\":\"m\\u00311\",\"t\":1735689600000,\"q\":"
                                "\"\\u006fk\",\"kwh\":-.5,\"kw\":01,\"values\":{\"frequency_hz\":"
                                "1.e1,\"voltage_v_l\\u0031\":2.3E+2,\"x\":[1,{\"y\":[]}]}}]}",
                           1),
                     DCEM_WIRE_OK);
    assert_int_equal(AGREE("\xef\xbb\xbf\x01\x1f " HEAD "]}\r\n", 1), DCEM_WIRE_OK);
    assert_int_equal(AGREE(HEAD "{\"meter\":\"m1\",\"t\":1,\"q\":\"ok\",\"kwh\":1."
                                "00000000000000000000000000000000000000000000000000000000000000"
                                "00000000000000001e-2}]}",
                           1),
                     DCEM_WIRE_OK);
    /* a bad \u escape is a NUL to cJSON, which ends its C string: "m1" */
    assert_int_equal(AGREE(HEAD "{\"meter\":\"m1\\uzzzzx\",\"t\":1,\"q\":\"ok\"}]}", 1),
                     DCEM_WIRE_OK);
    assert_int_equal(AGREE(HEAD "{\"meter\":\"m\\u00\\\\1\",\"t\":1,\"q\":\"ok\"}]}", 1),
                     DCEM_WIRE_OK);
    /* refused the same, for the same reason and in the same words */
    assert_int_equal(AGREE(HEAD "{\"meter\":\"m\x01\",\"t\":1,\"q\":\"ok\"}]}", 1),
                     DCEM_WIRE_BAD_METER);
    assert_int_equal(AGREE(HEAD "{\"meter\":\"\\ud83d\\ude00\",\"t\":1,\"q\":\"ok\"}]}", 1),
                     DCEM_WIRE_BAD_METER);
    assert_int_equal(AGREE(HEAD "{\"meter\":\"\\udc00\",\"t\":1,\"q\":\"ok\"}]}", 1),
                     DCEM_WIRE_NOT_JSON);
    assert_int_equal(AGREE(HEAD "{\"meter\":\"m\\q\",\"t\":1,\"q\":\"ok\"}]}", 1),
                     DCEM_WIRE_NOT_JSON);
    assert_int_equal(AGREE("{\"v\":1,\"site\":\"s\\u0031\",\"gateway\":\"gw\\u0032\",\"epoch\""
                           ":7,\"seq\":42,\"readings\":[]}",
                           1),
                     DCEM_WIRE_GATEWAY_MISMATCH);
    assert_int_equal(AGREE(HEAD "{\"meter\":\"m1\",\"t\":1,\"q\":\"ok\",\"values\":{\"u\":1,"
                                "\"voltage_v\":1,\"w\":2,\"voltage_v\":null}}]}",
                           1),
                     DCEM_WIRE_DUPLICATE_FIELD);
    /* only unknown values: nothing a comm_error reading may not have */
    assert_int_equal(AGREE(HEAD "{\"meter\":\"m1\",\"t\":1,\"q\":\"comm_error\",\"values\":{"
                                "\"u\":1}},{\"meter\":\"m1\",\"t\":2,\"q\":\"ok\"}]}",
                           1),
                     DCEM_WIRE_OK);
    assert_int_equal(AGREE(HEAD "{\"meter\":\"m1\",\"t\":1,\"q\":\"comm_error\",\"values\":{"
                                "\"u\":1,\"voltage_v\":2}}]}",
                           1),
                     DCEM_WIRE_BAD_QUALITY);
    assert_int_equal(AGREE(HEAD "{\"meter\":\"m1\",\"t\":1,\"q\":\"ok\",\"values\":{\"u\":1},"
                                "\"values\":{}},{}]}",
                           1),
                     DCEM_WIRE_DUPLICATE_FIELD);
    assert_int_equal(AGREE(HEAD "{\"meter\":\"m1\",\"t\":1,\"q\":\"ok\"},7,{\"meter\":1}]}", 1),
                     DCEM_WIRE_WRONG_TYPE);
    assert_int_equal(AGREE(HEAD "{\"meter\":\"m1\",\"t\":1,\"q\":\"ok\",\"ratio\":\"\"}]}", 1),
                     DCEM_WIRE_BAD_FIELD);
    assert_int_equal(AGREE(HEAD "{\"meter\":\"m1\",\"t\":1,\"q\":\"ok\"}],\"readings\":[]}", 1),
                     DCEM_WIRE_DUPLICATE_FIELD);
    assert_int_equal(AGREE(HEAD "]} x", 1), DCEM_WIRE_NOT_JSON);
    assert_int_equal(AGREE(HEAD "]}\x01", 1), DCEM_WIRE_NOT_JSON);
    assert_int_equal(AGREE("[" HEAD "]}]", 1), DCEM_WIRE_WRONG_TYPE);
    assert_int_equal(AGREE("\"\\u00", 1), DCEM_WIRE_NOT_JSON);
    assert_int_equal(AGREE("{\"v\":1,", 1), DCEM_WIRE_NOT_JSON);
    assert_int_equal(AGREE("{\"v\":1 ", 1), DCEM_WIRE_NOT_JSON);
    assert_int_equal(AGREE("{\"v\":-", 1), DCEM_WIRE_NOT_JSON);
    assert_int_equal(AGREE("{\"v\":1e", 1), DCEM_WIRE_NOT_JSON);
    assert_int_equal(AGREE("{\"v\":2,\"x\":1}", 1), DCEM_WIRE_BAD_VERSION);
#undef HEAD
    /* nesting: 1000 levels of arrays and objects are JSON to cJSON, 1001 are not */
    for (int depth = 997; depth <= 1001; depth++) {
        /* {"v":1,"x":[{"k":[{"k":...0...]}]}: depth arrays and objects in all */
        size_t cap = 6 * (size_t)depth + 64;
        char *deep = malloc(cap);
        assert_non_null(deep);
        size_t n = (size_t)snprintf(deep, cap, "{\"v\":1,\"x\":");
        for (int i = 1; i < depth; i++)
            n += (size_t)snprintf(deep + n, cap - n, "%s", i % 2 ? "[" : "{\"k\":");
        deep[n++] = '0';
        for (int i = depth - 1; i >= 1; i--)
            deep[n++] = i % 2 ? ']' : '}';
        deep[n++] = '}';
        int why = agree(deep, n, 1, DCEM_WIRE_MAX_READINGS);
        assert_int_equal(why, depth <= 1000 ? DCEM_WIRE_MISSING_FIELD : DCEM_WIRE_NOT_JSON);
        free(deep);
    }

    /* every prefix and every one-byte change of a real batch */
    dcem_wire_reading r[3];
    set_reading(&r[0], "pdu-a1", T0, DCEM_WIRE_Q_OK);
    r[0].has_kwh = r[0].has_kw = 1;
    r[0].kwh = 42949672.95;
    r[0].kw = -3.5e-7;
    r[0].ct = 400;
    r[0].ratio_note = DCEM_WIRE_RATIO_HELD;
    add_value(&r[0], DCEM_Q_VOLTAGE_V, 1, 230.1);
    add_value(&r[0], DCEM_Q_POWER_FACTOR, 0, 0.98);
    set_reading(&r[1], "ups-1", T0 + 5, DCEM_WIRE_Q_COMM_ERROR);
    set_reading(&r[2], "ups-2", T0 + 9, DCEM_WIRE_Q_STALE);
    r[2].has_kwh = 1;
    r[2].kwh = 1e-300;
    dcem_wire_batch b;
    batch_init(&b, r, 3);
    char *json;
    size_t len;
    assert_int_equal(dcem_wire_encode_batch(&b, &json, &len), 0);
    static const char subst[] = {'"', '{', '}',  '[', ']', ',', ':',    '0',    '9', '-', '+',
                                 'e', '.', '\\', 'u', 'x', ' ', '\x01', '\x80', 'n', 't', 'f'};
    char *m = malloc(len);
    assert_non_null(m);
    for (size_t i = 0; i <= len; i++) {
        agree(json, i, 1, DCEM_WIRE_MAX_READINGS);
        for (size_t k = 0; i < len && k < sizeof subst; k++) {
            memcpy(m, json, len);
            m[i] = subst[k];
            agree(m, len, (int)(k % 2), k % 3 ? DCEM_WIRE_MAX_READINGS : 2);
        }
    }
    free(m);
    free(json);
}

static void test_too_large(void **state)
{
    (void)state;
    dcem_wire_reading *st = storage();
    dcem_wire_batch out;
    int reason;
    char err[256];
    /* 10 MB of bytes that are not JSON: too_large, so it was never parsed */
    size_t big = 10u * 1000 * 1000;
    char *buf = malloc(big);
    assert_non_null(buf);
    memset(buf, 'x', big);
    assert_int_equal(dcem_wire_decode_batch(buf, big, "s1", "gw1", st, DCEM_WIRE_MAX_READINGS,
                                            &out, &reason, err, sizeof err),
                     DCEM_EINVAL);
    assert_int_equal(reason, DCEM_WIRE_TOO_LARGE);
    assert_int_equal(out.identified, 0);
    /* a valid batch padded with whitespace to exactly the limit is fine... */
    const char *json = ONE(OK_R ",\"kwh\":1");
    size_t n = strlen(json);
    memcpy(buf, json, n);
    memset(buf + n, ' ', DCEM_WIRE_MAX_PAYLOAD + 1 - n);
    assert_int_equal(dcem_wire_decode_batch(buf, DCEM_WIRE_MAX_PAYLOAD, "s1", "gw1", st,
                                            DCEM_WIRE_MAX_READINGS, &out, &reason, err, sizeof err),
                     0);
    /* ...and one byte more is not */
    assert_int_equal(dcem_wire_decode_batch(buf, DCEM_WIRE_MAX_PAYLOAD + 1, "s1", "gw1", st,
                                            DCEM_WIRE_MAX_READINGS, &out, &reason, err, sizeof err),
                     DCEM_EINVAL);
    assert_int_equal(reason, DCEM_WIRE_TOO_LARGE);
    /* the small payloads have their own limit */
    dcem_wire_ack ack;
    memset(buf, ' ', DCEM_WIRE_MAX_SMALL_PAYLOAD + 1);
    memcpy(buf, "{\"v\":1,\"epoch\":1,\"seq\":1}", 25);
    assert_int_equal(dcem_wire_decode_ack(buf, DCEM_WIRE_MAX_SMALL_PAYLOAD, &ack, &reason, err,
                                          sizeof err), 0);
    assert_int_equal(dcem_wire_decode_ack(buf, DCEM_WIRE_MAX_SMALL_PAYLOAD + 1, &ack, &reason,
                                          err, sizeof err), DCEM_EINVAL);
    assert_int_equal(reason, DCEM_WIRE_TOO_LARGE);
    free(buf);
    free(st);
}

static void test_too_many_readings(void **state)
{
    (void)state;
    static const char one[] = "{\"meter\":\"m\",\"t\":0,\"q\":\"comm_error\"}";
    size_t n = DCEM_WIRE_MAX_READINGS + 1, cap = sizeof HDR + 16 + n * sizeof one;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t len = (size_t)snprintf(buf, cap, "%s\"readings\":[", HDR);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "," : "", one);
    len += (size_t)snprintf(buf + len, cap - len, "]}");
    assert_true(len < DCEM_WIRE_MAX_PAYLOAD); /* the count trips, not the size */
    dcem_wire_reading *st = storage();
    dcem_wire_batch out;
    int reason;
    char err[256];
    assert_int_equal(decode(buf, len, st, &out, &reason, err, sizeof err), DCEM_EINVAL);
    assert_int_equal(reason, DCEM_WIRE_TOO_MANY_READINGS);
    assert_int_equal(out.identified, 1);
    assert_true(out.epoch == 7 && out.seq == 42);
    assert_int_equal(out.n_readings, 0);
    assert_int_equal(out.listed_readings, n); /* what a quarantine withholds */
    /* storage smaller than the limit: its size is the cap */
    const char *three = HDR "\"readings\":[{\"meter\":\"a\",\"t\":1,\"q\":\"ok\"},"
                            "{\"meter\":\"b\",\"t\":1,\"q\":\"ok\"},"
                            "{\"meter\":\"c\",\"t\":1,\"q\":\"ok\"}]}";
    assert_int_equal(dcem_wire_decode_batch(three, strlen(three), "s1", "gw1", st, 2, &out,
                                            &reason, err, sizeof err), DCEM_EINVAL);
    assert_int_equal(reason, DCEM_WIRE_TOO_MANY_READINGS);
    assert_int_equal(dcem_wire_decode_batch(three, strlen(three), "s1", "gw1", st, 3, &out,
                                            &reason, err, sizeof err), 0);
    assert_string_equal(st[2].meter, "c");
    /* a bad reading: nothing decoded, all three listed */
    const char *bad = HDR "\"readings\":[{\"meter\":\"a\",\"t\":1,\"q\":\"ok\"},"
                          "{\"meter\":\"b\",\"t\":-1,\"q\":\"ok\"},"
                          "{\"meter\":\"c\",\"t\":1,\"q\":\"ok\"}]}";
    assert_int_equal(dcem_wire_decode_batch(bad, strlen(bad), "s1", "gw1", st, 3, &out, &reason,
                                            err, sizeof err), DCEM_EINVAL);
    assert_int_equal(reason, DCEM_WIRE_BAD_TIME);
    assert_true(out.identified && out.n_readings == 0 && out.listed_readings == 3);
    free(st);
    free(buf);
}

/* ---- ack, ctl, state, metrics ---- */

static void test_ack_ctl_round_trip(void **state)
{
    (void)state;
    char *json;
    size_t len;
    int reason;
    char err[256];
    dcem_wire_ack a = {.epoch = 1732650000, .seq = 123456}, ao;
    assert_int_equal(dcem_wire_encode_ack(&a, &json, &len), 0);
    assert_string_equal(json, "{\"v\":1,\"epoch\":1732650000,\"seq\":123456}");
    assert_int_equal(dcem_wire_decode_ack(json, len, &ao, &reason, err, sizeof err), 0);
    assert_true(ao.epoch == a.epoch && ao.seq == a.seq);
    free(json);
    a.seq = 0; /* nothing of this epoch stored yet */
    assert_int_equal(dcem_wire_encode_ack(&a, &json, &len), 0);
    assert_int_equal(dcem_wire_decode_ack(json, len, &ao, &reason, err, sizeof err), 0);
    assert_true(ao.seq == 0);
    free(json);
    a.epoch = 0;
    assert_int_equal(dcem_wire_encode_ack(&a, &json, &len), DCEM_EINVAL);
    a.epoch = 1;
    a.seq = DCEM_WIRE_MAX_INT + 1;
    assert_int_equal(dcem_wire_encode_ack(&a, &json, &len), DCEM_EINVAL);

    /* refusals: only the reasons that happened, in enum order, before a
     * signature would go (last) */
    a = (dcem_wire_ack){.epoch = 7, .seq = 9};
    a.refused[DCEM_REFUSE_QUARANTINED] = 250;
    a.refused[DCEM_REFUSE_OUT_OF_RANGE] = 3;
    a.refused[DCEM_REFUSE_UNKNOWN_METER] = UINT32_MAX;
    assert_int_equal(dcem_wire_encode_ack(&a, &json, &len), 0);
    assert_string_equal(json, "{\"v\":1,\"epoch\":7,\"seq\":9,\"refused\":{\"unknown_meter\":"
                              "4294967295,\"out_of_range\":3,\"quarantined\":250}}");
    assert_int_equal(dcem_wire_decode_ack(json, len, &ao, &reason, err, sizeof err), 0);
    assert_true(ao.epoch == 7 && ao.seq == 9);
    assert_memory_equal(ao.refused, a.refused, sizeof a.refused);
    free(json);
    memset(a.refused, 0, sizeof a.refused);
    assert_int_equal(dcem_wire_encode_ack(&a, &json, &len), 0);
    assert_string_equal(json, "{\"v\":1,\"epoch\":7,\"seq\":9}"); /* none: no member */
    free(json);
    for (int i = 0; i < DCEM_REFUSE_COUNT; i++) {
        const char *n = dcem_refuse_name(i);
        assert_true(n && *n);
        for (int j = 0; j < i; j++) assert_string_not_equal(n, dcem_refuse_name(j));
    }
    assert_string_equal(dcem_refuse_name(DCEM_REFUSE_OUT_OF_RANGE), "out_of_range");
    assert_null(dcem_refuse_name(DCEM_REFUSE_COUNT));
    assert_null(dcem_refuse_name(-1));

    dcem_wire_ctl c = {.cmd = DCEM_WIRE_CMD_RESEND, .epoch = 3, .from_seq = 17}, co;
    assert_int_equal(dcem_wire_encode_ctl(&c, &json, &len), 0);
    assert_string_equal(json, "{\"v\":1,\"cmd\":\"resend\",\"epoch\":3,\"from_seq\":17}");
    assert_int_equal(dcem_wire_decode_ctl(json, len, &co, &reason, err, sizeof err), 0);
    assert_true(co.cmd == c.cmd && co.epoch == 3 && co.from_seq == 17);
    free(json);
    c.from_seq = 0;
    assert_int_equal(dcem_wire_encode_ctl(&c, &json, &len), DCEM_EINVAL);
    c.from_seq = 1;
    c.cmd = DCEM_WIRE_CMD_COUNT;
    assert_int_equal(dcem_wire_encode_ctl(&c, &json, &len), DCEM_EINVAL);
}

static void test_state_round_trip(void **state)
{
    (void)state;
    char *json;
    size_t len;
    int reason;
    char err[256];
    dcem_wire_state s = {.online = 1, .epoch = 5, .next_seq = 101, .queued = 100}, so;
    snprintf(s.version, sizeof s.version, "0.1.0 (abc123)");
    assert_int_equal(dcem_wire_encode_state(&s, &json, &len), 0);
    assert_string_equal(json, "{\"v\":1,\"online\":true,\"epoch\":5,\"next_seq\":101,"
                              "\"queued\":100,\"version\":\"0.1.0 (abc123)\"}");
    assert_int_equal(dcem_wire_decode_state(json, len, &so, &reason, err, sizeof err), 0);
    assert_true(so.online && so.epoch == 5 && so.next_seq == 101 && so.queued == 100);
    assert_string_equal(so.version, s.version);
    free(json);
    /* the last will */
    dcem_wire_state will = {.online = 0};
    assert_int_equal(dcem_wire_encode_state(&will, &json, &len), 0);
    assert_string_equal(json, "{\"v\":1,\"online\":false}");
    assert_int_equal(dcem_wire_decode_state(json, len, &so, &reason, err, sizeof err), 0);
    assert_false(so.online);
    free(json);
    /* encoder refusals */
    s.queued = 101;
    assert_int_equal(dcem_wire_encode_state(&s, &json, &len), DCEM_EINVAL);
    s.queued = 0;
    snprintf(s.version, sizeof s.version, "a\"b");
    assert_int_equal(dcem_wire_encode_state(&s, &json, &len), DCEM_EINVAL);
    s.version[0] = '\0';
    assert_int_equal(dcem_wire_encode_state(&s, &json, &len), DCEM_EINVAL);
}

typedef struct small_case {
    const char *name;
    int kind; /* 0 ack, 1 ctl, 2 state, 3 metrics (topic s1/gw1) */
    const char *json;
    int reason;
} small_case;

#define MHDR "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"start\":0,\"end\":900000,"

static const small_case small_cases[] = {
    {"ack ok", 0, "{\"v\":1,\"epoch\":1,\"seq\":0}", DCEM_WIRE_OK},
    {"ack not JSON", 0, "{\"v\":1,\"epoch\":1,\"seq\":", DCEM_WIRE_NOT_JSON},
    {"ack v 2", 0, "{\"v\":2,\"epoch\":1,\"seq\":1}", DCEM_WIRE_BAD_VERSION},
    {"ack epoch 0", 0, "{\"v\":1,\"epoch\":0,\"seq\":1}", DCEM_WIRE_BAD_SEQ},
    {"ack negative seq", 0, "{\"v\":1,\"epoch\":1,\"seq\":-1}", DCEM_WIRE_BAD_SEQ},
    {"ack seq missing", 0, "{\"v\":1,\"epoch\":1}", DCEM_WIRE_MISSING_FIELD},
    {"ack seq string", 0, "{\"v\":1,\"epoch\":1,\"seq\":\"1\"}", DCEM_WIRE_WRONG_TYPE},
    {"ack old field name", 0, "{\"v\":1,\"epoch\":1,\"acked_seq\":3}", DCEM_WIRE_MISSING_FIELD},
#define AHDR "{\"v\":1,\"epoch\":1,\"seq\":2,"
    {"ack refused", 0, AHDR "\"refused\":{\"future\":1,\"quarantined\":4294967295}}",
     DCEM_WIRE_OK},
    {"ack refused empty", 0, AHDR "\"refused\":{}}", DCEM_WIRE_OK},
    {"ack refused zero", 0, AHDR "\"refused\":{\"future\":0}}", DCEM_WIRE_OK},
    {"ack refused by a newer reason", 0, AHDR "\"refused\":{\"some_newer_reason\":\"any\"}}",
     DCEM_WIRE_OK},
    {"ack refused null", 0, AHDR "\"refused\":null}", DCEM_WIRE_WRONG_TYPE},
    {"ack refused an array", 0, AHDR "\"refused\":[1]}", DCEM_WIRE_WRONG_TYPE},
    {"ack refused twice", 0, AHDR "\"refused\":{},\"refused\":{}}", DCEM_WIRE_DUPLICATE_FIELD},
    {"ack refused a reason twice", 0, AHDR "\"refused\":{\"future\":1,\"future\":1}}",
     DCEM_WIRE_DUPLICATE_FIELD},
    {"ack refused above 2^32-1", 0, AHDR "\"refused\":{\"out_of_range\":4294967296}}",
     DCEM_WIRE_BAD_FIELD},
    {"ack refused negative", 0, AHDR "\"refused\":{\"unknown_meter\":-1}}",
     DCEM_WIRE_BAD_FIELD},
    {"ack refused fraction", 0, AHDR "\"refused\":{\"wrong_kind\":1.5}}", DCEM_WIRE_BAD_FIELD},
    {"ack refused a string", 0, AHDR "\"refused\":{\"future\":\"3\"}}", DCEM_WIRE_WRONG_TYPE},
    {"ctl ok", 1, "{\"v\":1,\"cmd\":\"resend\",\"epoch\":2,\"from_seq\":9,\"why\":\"gap\"}",
     DCEM_WIRE_OK},
    {"ctl unknown cmd", 1, "{\"v\":1,\"cmd\":\"reboot\",\"epoch\":2}", DCEM_WIRE_BAD_COMMAND},
    {"ctl cmd missing", 1, "{\"v\":1,\"epoch\":2,\"from_seq\":9}", DCEM_WIRE_MISSING_FIELD},
    {"ctl cmd a number", 1, "{\"v\":1,\"cmd\":0,\"epoch\":2,\"from_seq\":9}",
     DCEM_WIRE_WRONG_TYPE},
    {"ctl from_seq missing", 1, "{\"v\":1,\"cmd\":\"resend\",\"epoch\":2}",
     DCEM_WIRE_MISSING_FIELD},
    {"ctl from_seq 0", 1, "{\"v\":1,\"cmd\":\"resend\",\"epoch\":2,\"from_seq\":0}",
     DCEM_WIRE_BAD_SEQ},
    {"state birth ok", 2, "{\"v\":1,\"online\":true,\"epoch\":1,\"next_seq\":1,\"queued\":0,"
                          "\"version\":\"1\"}", DCEM_WIRE_OK},
    {"state will ok", 2, "{\"v\":1,\"online\":false}", DCEM_WIRE_OK},
    {"state online missing", 2, "{\"v\":1}", DCEM_WIRE_MISSING_FIELD},
    {"state online a string", 2, "{\"v\":1,\"online\":\"yes\"}", DCEM_WIRE_WRONG_TYPE},
    {"state online 1", 2, "{\"v\":1,\"online\":1}", DCEM_WIRE_WRONG_TYPE},
    {"state birth without seq", 2, "{\"v\":1,\"online\":true,\"epoch\":1}",
     DCEM_WIRE_MISSING_FIELD},
    {"state queued past next_seq", 2, "{\"v\":1,\"online\":true,\"epoch\":1,\"next_seq\":5,"
                                      "\"queued\":5,\"version\":\"1\"}", DCEM_WIRE_BAD_SEQ},
    {"state version empty", 2, "{\"v\":1,\"online\":true,\"epoch\":1,\"next_seq\":5,"
                               "\"queued\":0,\"version\":\"\"}", DCEM_WIRE_BAD_FIELD},
    {"state version control char", 2, "{\"v\":1,\"online\":true,\"epoch\":1,\"next_seq\":5,"
                                      "\"queued\":0,\"version\":\"a\\nb\"}", DCEM_WIRE_BAD_FIELD},
    {"state version too long", 2, "{\"v\":1,\"online\":true,\"epoch\":1,\"next_seq\":5,"
                                  "\"queued\":0,\"version\":\"12345678901234567890123456789012\"}",
     DCEM_WIRE_BAD_FIELD},
    {"metrics ok", 3, MHDR "\"kwh\":{\"it\":1,\"solar\":2}}", DCEM_WIRE_OK},
    {"metrics other gateway", 3, "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw9\",\"start\":0,"
                                 "\"end\":1,\"kwh\":{}}", DCEM_WIRE_GATEWAY_MISMATCH},
    {"metrics end before start", 3, "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\",\"start\":5,"
                                    "\"end\":5,\"kwh\":{}}", DCEM_WIRE_BAD_TIME},
    {"metrics kwh missing", 3, MHDR "\"pue\":1.4}", DCEM_WIRE_MISSING_FIELD},
    {"metrics role inf", 3, MHDR "\"kwh\":{\"it\":1e999}}", DCEM_WIRE_NOT_FINITE},
    {"metrics pue null", 3, MHDR "\"kwh\":{},\"pue\":null}", DCEM_WIRE_NOT_FINITE},
    {"metrics share above 1", 3, MHDR "\"kwh\":{},\"green_share\":1.5}", DCEM_WIRE_BAD_FIELD},
    {"metrics negative pue", 3, MHDR "\"kwh\":{},\"pue\":-1}", DCEM_WIRE_BAD_FIELD},
    /* "dropped" is optional (an older agent has none); a newer agent's reasons are ignored */
    {"metrics dropped ok", 3, MHDR "\"kwh\":{},\"dropped\":{\"queue_full\":3,\"lost_in_space\":1}}",
     DCEM_WIRE_OK},
    {"metrics dropped empty", 3, MHDR "\"kwh\":{},\"dropped\":{}}", DCEM_WIRE_OK},
    {"metrics dropped an array", 3, MHDR "\"kwh\":{},\"dropped\":[1]}", DCEM_WIRE_WRONG_TYPE},
    {"metrics dropped negative", 3, MHDR "\"kwh\":{},\"dropped\":{\"queue_full\":-1}}",
     DCEM_WIRE_BAD_FIELD},
    {"metrics dropped fraction", 3, MHDR "\"kwh\":{},\"dropped\":{\"encode\":1.5}}",
     DCEM_WIRE_BAD_FIELD},
    {"metrics dropped above 2^53", 3,
     MHDR "\"kwh\":{},\"dropped\":{\"too_large\":9007199254740992}}", DCEM_WIRE_BAD_FIELD},
    {"metrics dropped a string", 3, MHDR "\"kwh\":{},\"dropped\":{\"spool_error\":\"2\"}}",
     DCEM_WIRE_WRONG_TYPE},
    {"metrics dropped twice", 3,
     MHDR "\"kwh\":{},\"dropped\":{\"queue_full\":1,\"queue_full\":2}}",
     DCEM_WIRE_DUPLICATE_FIELD},
    {"metrics refused", 3, MHDR "\"kwh\":{},\"refused\":{\"future\":3,\"newer\":[]}}",
     DCEM_WIRE_OK},
    {"metrics refused not an object", 3, MHDR "\"kwh\":{},\"refused\":3}", DCEM_WIRE_WRONG_TYPE},
    {"metrics refused negative", 3, MHDR "\"kwh\":{},\"refused\":{\"future\":-3}}",
     DCEM_WIRE_BAD_FIELD},
    {"metrics refused twice", 3, MHDR "\"kwh\":{},\"refused\":{},\"refused\":{}}",
     DCEM_WIRE_DUPLICATE_FIELD},
};

static void test_small_case(void **state)
{
    const small_case *c = *state;
    size_t len = strlen(c->json);
    char *buf = exact(c->json, len), err[256] = "";
    int reason = -1, rc = -99;
    dcem_wire_ack a;
    dcem_wire_ctl ctl;
    dcem_wire_state s;
    dcem_wire_metrics m;
    switch (c->kind) {
    case 0: rc = dcem_wire_decode_ack(buf, len, &a, &reason, err, sizeof err); break;
    case 1: rc = dcem_wire_decode_ctl(buf, len, &ctl, &reason, err, sizeof err); break;
    case 2: rc = dcem_wire_decode_state(buf, len, &s, &reason, err, sizeof err); break;
    case 3:
        rc = dcem_wire_decode_metrics(buf, len, "s1", "gw1", &m, &reason, err, sizeof err);
        break;
    }
    free(buf);
    if (reason != c->reason || rc != (c->reason ? DCEM_EINVAL : 0))
        fail_msg("%s: got %d %s (%s), want %s", c->name, rc, dcem_wire_reason_name(reason), err,
                 dcem_wire_reason_name(c->reason));
}

static void test_metrics_round_trip(void **state)
{
    (void)state;
    dcem_wire_metrics m = {.start_ms = T0, .end_ms = T0 + 900000, .pue = 1.2345678901234567,
                           .green_share = NAN, .completeness = 1};
    snprintf(m.site, sizeof m.site, "s1");
    snprintf(m.gateway, sizeof m.gateway, "gw1");
    for (int r = 0; r < DCEM_ROLE_COUNT; r++) m.role_kwh[r] = NAN;
    m.role_kwh[DCEM_ROLE_FACILITY] = 1234.5;
    m.role_kwh[DCEM_ROLE_IT] = 1000.0000000000001;
    m.role_kwh[DCEM_ROLE_GREEN_ONSITE] = 0;
    char *json, err[256];
    size_t len;
    int reason;
    assert_int_equal(dcem_wire_encode_metrics(&m, &json, &len), 0);
    assert_string_equal(json, "{\"v\":1,\"site\":\"s1\",\"gateway\":\"gw1\","
                              "\"start\":1735689600000,\"end\":1735690500000,\"kwh\":{"
                              "\"facility\":1234.5,\"it\":1000.0000000000001,\"green_onsite\":0},"
                              "\"pue\":1.2345678901234567,\"completeness\":1}");
    dcem_wire_metrics o;
    int rc = dcem_wire_decode_metrics(json, len, "s1", "gw1", &o, &reason, err, sizeof err);
    if (rc) fail_msg("%s: %s", dcem_wire_reason_name(reason), err);
    assert_true(o.start_ms == m.start_ms && o.end_ms == m.end_ms);
    for (int r = 0; r < DCEM_ROLE_COUNT; r++)
        assert_true(isnan(m.role_kwh[r]) ? isnan(o.role_kwh[r]) : o.role_kwh[r] == m.role_kwh[r]);
    assert_true(o.pue == m.pue && isnan(o.green_share) && o.completeness == 1);
    free(json);
    m.completeness = 1.5;
    assert_int_equal(dcem_wire_encode_metrics(&m, &json, &len), DCEM_EINVAL);
    m.completeness = 1;
    m.end_ms = m.start_ms;
    assert_int_equal(dcem_wire_encode_metrics(&m, &json, &len), DCEM_EINVAL);
    m.end_ms = m.start_ms + 900000;
    assert_false(o.has_dropped); /* not sent, not invented */

    /* the agent's drop counters: every known reason, zeros included */
    m.has_dropped = 1;
    m.dropped[DCEM_WIRE_DROP_QUEUE_FULL] = 12;
    m.dropped[DCEM_WIRE_DROP_SPOOL_FULL_BATCHES] = 3;
    m.dropped[DCEM_WIRE_DROP_SPOOL_ERROR] = DCEM_WIRE_MAX_INT;
    assert_int_equal(dcem_wire_encode_metrics(&m, &json, &len), 0);
    assert_non_null(strstr(json, ",\"completeness\":1,\"dropped\":{\"queue_full\":12,"
                                 "\"spool_full_batches\":3,\"encode\":0,\"too_large\":0,"
                                 "\"spool_error\":9007199254740991}}"));
    rc = dcem_wire_decode_metrics(json, len, "s1", "gw1", &o, &reason, err, sizeof err);
    if (rc) fail_msg("%s: %s", dcem_wire_reason_name(reason), err);
    assert_true(o.has_dropped);
    assert_memory_equal(o.dropped, m.dropped, sizeof m.dropped);
    free(json);
    m.dropped[DCEM_WIRE_DROP_ENCODE] = DCEM_WIRE_MAX_INT + 1; /* not exact in JSON */
    assert_int_equal(dcem_wire_encode_metrics(&m, &json, &len), DCEM_EINVAL);
    m.dropped[DCEM_WIRE_DROP_ENCODE] = 0;
    assert_false(o.has_refused);

    /* what the collector refused, from the acks: every known reason, after dropped */
    m.has_refused = 1;
    m.refused[DCEM_REFUSE_FUTURE] = 2;
    m.refused[DCEM_REFUSE_QUARANTINED] = 250;
    assert_int_equal(dcem_wire_encode_metrics(&m, &json, &len), 0);
    assert_non_null(strstr(json, "\"spool_error\":9007199254740991},\"refused\":{"
                                 "\"unknown_meter\":0,\"future\":2,\"out_of_range\":0,"
                                 "\"wrong_kind\":0,\"quarantined\":250,\"too_old\":0}}"));
    rc = dcem_wire_decode_metrics(json, len, "s1", "gw1", &o, &reason, err, sizeof err);
    if (rc) fail_msg("%s: %s", dcem_wire_reason_name(reason), err);
    assert_true(o.has_refused && o.has_dropped);
    assert_memory_equal(o.refused, m.refused, sizeof m.refused);
    free(json);
    m.has_dropped = 0; /* either without the other */
    assert_int_equal(dcem_wire_encode_metrics(&m, &json, &len), 0);
    assert_non_null(strstr(json, ",\"completeness\":1,\"refused\":{\"unknown_meter\":0,"));
    rc = dcem_wire_decode_metrics(json, len, "s1", "gw1", &o, &reason, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_true(o.has_refused && !o.has_dropped);
    free(json);
    m.refused[DCEM_REFUSE_WRONG_KIND] = DCEM_WIRE_MAX_INT + 1;
    assert_int_equal(dcem_wire_encode_metrics(&m, &json, &len), DCEM_EINVAL);
    for (int i = 0; i < DCEM_WIRE_DROP_COUNT; i++) {
        const char *n = dcem_wire_drop_name(i);
        assert_true(n && *n);
        for (int j = 0; j < i; j++) assert_string_not_equal(n, dcem_wire_drop_name(j));
    }
    assert_null(dcem_wire_drop_name(DCEM_WIRE_DROP_COUNT));
}

static void test_names(void **state)
{
    (void)state;
    for (int i = 0; i < DCEM_WIRE_REASON_COUNT; i++) {
        const char *n = dcem_wire_reason_name(i);
        assert_true(n && *n && strcmp(n, "unknown") != 0);
        for (int j = 0; j < i; j++) assert_string_not_equal(n, dcem_wire_reason_name(j));
    }
    assert_string_equal(dcem_wire_reason_name(DCEM_WIRE_TOO_LARGE), "too_large");
    assert_string_equal(dcem_wire_reason_name(DCEM_WIRE_GATEWAY_MISMATCH), "gateway_mismatch");
    assert_string_equal(dcem_wire_reason_name(DCEM_WIRE_BAD_VERSION), "unsupported_version");
    assert_string_equal(dcem_wire_reason_name(DCEM_WIRE_REASON_COUNT), "unknown");
    assert_string_equal(dcem_wire_reason_name(-1), "unknown");
    assert_string_equal(dcem_wire_quality_name(DCEM_WIRE_Q_OUT_OF_RANGE), "out_of_range");
    assert_string_equal(dcem_wire_quality_name(DCEM_WIRE_Q_COMM_ERROR), "comm_error");
    assert_string_equal(dcem_wire_quality_name(9), "unknown");
    assert_true(dcem_wire_id_valid("a-b_c.D9", 8));
    assert_false(dcem_wire_id_valid("a-b_c.D9", 0));
    assert_false(dcem_wire_id_valid(NULL, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_build),
        cmocka_unit_test(test_topic_parse),
        cmocka_unit_test(test_batch_round_trip),
        cmocka_unit_test(test_random_doubles),
        cmocka_unit_test(test_encode_not_finite),
        cmocka_unit_test(test_encode_invalid),
        cmocka_unit_test(test_encode_limits),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_truncated_and_mutated),
        cmocka_unit_test(test_streaming_equals_cjson),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_too_many_readings),
        cmocka_unit_test(test_ack_ctl_round_trip),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_metrics_round_trip),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ratio_round_trip),
    };
    int failed = cmocka_run_group_tests_name("wire", tests, NULL, NULL);
    failed += RUN_TABLE("malformed batches", test_bad_batch, bad_cases);
    failed += RUN_TABLE("ack, ctl, state, metrics payloads", test_small_case, small_cases);
    return failed ? 1 : 0;
}
