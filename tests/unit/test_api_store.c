/* The store's reads added for the HTTP API (gateway/store: last_reading_ms,
 * latest_readings, alerts_page) on a real SQLite file: each meter's latest
 * reading that carries a value, inside the range only, valueless
 * (comm_error) readings skipped; alert pages newest first with ties in time
 * broken by id, a cursor that neither repeats nor skips an alert, and the
 * arguments store.c refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "errors.h"
#include "store.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fx {
    char dir[64], db[96];
    dcem_store *st;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/dcem-api-store.XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->db, sizeof f->db, "%s/store.db", f->dir);
    char err[256];
    if (dcem_store_open("sqlite", f->db, NULL, &f->st, err, sizeof err)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    dcem_store_close(f->st);
    char p[128];
    static const char *const files[] = {"store.db", "store.db-wal", "store.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", f->dir, files[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static dcem_wire_reading reading(const char *meter, int64_t t, int q, int has_kwh, double kwh,
                                 int has_kw, double kw)
{
    dcem_wire_reading r;
    memset(&r, 0, sizeof r);
    snprintf(r.meter, sizeof r.meter, "%s", meter);
    r.t_ms = t;
    r.quality = q;
    r.has_kwh = has_kwh, r.kwh = kwh;
    r.has_kw = has_kw, r.kw = kw;
    return r;
}

static void put(fx *f, uint64_t seq, dcem_wire_reading *rs, size_t n)
{
    dcem_wire_batch b = {.epoch = 1, .seq = seq, .readings = rs, .n_readings = n};
    snprintf(b.site, sizeof b.site, "s1");
    snprintf(b.gateway, sizeof b.gateway, "gw");
    assert_int_equal(dcem_store_put_batch(f->st, &b, 1000, NULL, NULL), 0);
}

typedef struct seen {
    char meter[8][DCEM_ID_MAX];
    int64_t t[8];
    double kwh[8], kw[8];
    int has_kw[8], quality[8];
    int n;
} seen;

static int collect(void *ctx, const dcem_store_reading *r)
{
    seen *s = ctx;
    if (s->n == 8) return -1;
    snprintf(s->meter[s->n], DCEM_ID_MAX, "%s", r->meter);
    s->t[s->n] = r->t_ms;
    s->kwh[s->n] = r->kwh;
    s->kw[s->n] = r->kw;
    s->has_kw[s->n] = r->has_kw;
    s->quality[s->n] = r->quality;
    s->n++;
    return 0;
}

static void test_latest_readings(void **state)
{
    fx *f = *state;
    int64_t t;
    assert_int_equal(dcem_store_last_reading_ms(f->st, "s1", &t), DCEM_ENOTFOUND);
    dcem_wire_reading a[] = {
        reading("m-a", 1000, DCEM_WIRE_Q_OK, 1, 10, 0, 0),
        reading("m-b", 1000, DCEM_WIRE_Q_OK, 1, 20, 0, 0),
        reading("m-a", 2000, DCEM_WIRE_Q_OK, 1, 11, 1, 5.5),
        reading("m-b", 2000, DCEM_WIRE_Q_STALE, 1, 20, 0, 0),
        reading("m-a", 3000, DCEM_WIRE_Q_COMM_ERROR, 0, 0, 0, 0), /* no value: not a latest */
        reading("m-c", 500, DCEM_WIRE_Q_OK, 0, 0, 1, 7),
    };
    put(f, 1, a, sizeof a / sizeof a[0]);
    assert_int_equal(dcem_store_last_reading_ms(f->st, "s1", &t), 0);
    assert_int_equal(t, 3000);
    assert_int_equal(dcem_store_last_reading_ms(f->st, "s2", &t), DCEM_ENOTFOUND);

    seen s = {0};
    assert_int_equal(dcem_store_latest_readings(f->st, "s1", 0, INT64_MAX, collect, &s), 0);
    assert_int_equal(s.n, 3); /* ordered by meter */
    assert_string_equal(s.meter[0], "m-a");
    assert_int_equal(s.t[0], 2000);
    assert_true(s.kwh[0] == 11 && s.has_kw[0] && s.kw[0] == 5.5);
    assert_string_equal(s.meter[1], "m-b");
    assert_int_equal(s.t[1], 2000);
    assert_int_equal(s.quality[1], DCEM_WIRE_Q_STALE);
    assert_string_equal(s.meter[2], "m-c");
    assert_int_equal(s.t[2], 500);

    /* only inside [from, to) */
    memset(&s, 0, sizeof s);
    assert_int_equal(dcem_store_latest_readings(f->st, "s1", 600, 2000, collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.t[0], 1000);
    assert_true(s.kwh[0] == 10);
    assert_int_equal(s.t[1], 1000);
    memset(&s, 0, sizeof s);
    assert_int_equal(dcem_store_latest_readings(f->st, "s1", 2000, 2000, collect, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(dcem_store_latest_readings(f->st, "bad id", 0, 1, collect, &s), DCEM_EINVAL);
    assert_int_equal(dcem_store_latest_readings(f->st, "s1", 0, 1, NULL, &s), DCEM_EINVAL);
    assert_int_equal(dcem_store_last_reading_ms(f->st, "s1", NULL), DCEM_EINVAL);
}

typedef struct page {
    int64_t id[16], t[16];
    int n;
} page;

static int take(void *ctx, const dcem_store_alert *a)
{
    page *p = ctx;
    if (p->n == 16) return -1;
    p->id[p->n] = a->id;
    p->t[p->n++] = a->t_ms;
    return 0;
}

static void test_alerts_page(void **state)
{
    fx *f = *state;
    /* ids 1..6; times not in id order, two ties */
    static const int64_t times[] = {300, 100, 300, 200, 300, 50};
    for (size_t i = 0; i < 6; i++) {
        dcem_store_alert a = {.site = "s1", .t_ms = times[i], .kind = "k", .message = "m"};
        assert_int_equal(dcem_store_add_alert(f->st, &a, NULL), 0);
    }
    dcem_store_alert other = {.site = "s2", .t_ms = 1000, .kind = "k", .message = "m"};
    assert_int_equal(dcem_store_add_alert(f->st, &other, NULL), 0);

    page all = {0};
    assert_int_equal(dcem_store_alerts_page(f->st, "s1", INT64_MIN, INT64_MAX, INT64_MAX, INT64_MAX,
                                            100, take, &all),
                     0);
    static const int64_t order[] = {5, 3, 1, 4, 2, 6}; /* (t, id) descending */
    assert_int_equal(all.n, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(all.id[i], order[i]);

    /* pages of two, each from the last alert of the previous */
    int64_t bt = INT64_MAX, bid = INT64_MAX;
    int k = 0;
    for (int pg = 0; pg < 3; pg++) {
        page p = {0};
        assert_int_equal(
            dcem_store_alerts_page(f->st, "s1", INT64_MIN, INT64_MAX, bt, bid, 2, take, &p), 0);
        assert_int_equal(p.n, 2);
        for (int i = 0; i < 2; i++)
            assert_int_equal(p.id[i], order[k++]);
        bt = p.t[1], bid = p.id[1];
    }
    page last = {0};
    assert_int_equal(
        dcem_store_alerts_page(f->st, "s1", INT64_MIN, INT64_MAX, bt, bid, 2, take, &last), 0);
    assert_int_equal(last.n, 0);

    /* a time range */
    page r = {0};
    assert_int_equal(
        dcem_store_alerts_page(f->st, "s1", 100, 300, INT64_MAX, INT64_MAX, 10, take, &r), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.id[0], 4);
    assert_int_equal(r.id[1], 2);
    assert_int_equal(dcem_store_alerts_page(f->st, "s1", 0, 1, INT64_MAX, INT64_MAX, 0, take, &r),
                     DCEM_EINVAL);
    assert_int_equal(dcem_store_alerts_page(f->st, NULL, 0, 1, INT64_MAX, INT64_MAX, 1, take, &r),
                     DCEM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_latest_readings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alerts_page, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
