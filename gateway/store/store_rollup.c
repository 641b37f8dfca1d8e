#include "store_rollup.h"

#include "errors.h"

#include <stdlib.h>
#include <string.h>

dcem_contrib dcem_contrib_of(const dcem_interval *iv)
{
    dcem_store_rollup r;
    dcem_store_rollup_of_interval(iv, &r);
    dcem_contrib c = {{r.ukwh, r.estimated_ukwh[DCEM_SPAN_INTERVAL],
                       r.estimated_ukwh[DCEM_SPAN_DAY], r.estimated_ukwh[DCEM_SPAN_MONTH],
                       r.estimated_ukwh[DCEM_SPAN_YEAR], r.integrated_ukwh, r.covered_ms,
                       r.intervals, r.read_intervals, r.estimated_intervals,
                       r.integrated_intervals, r.discarded_readings, r.rollovers, r.resets}};
    return c;
}

int dcem_contrib_add(dcem_contrib *to, const dcem_contrib *d, int sign)
{
    for (int i = 0; i < DCEM_CONTRIB_N; i++) {
        int64_t r;
        int over = sign > 0 ? __builtin_add_overflow(to->v[i], d->v[i], &r)
                            : __builtin_sub_overflow(to->v[i], d->v[i], &r);
        if (over) return DCEM_EINVAL;
        to->v[i] = r;
    }
    return 0;
}

int dcem_contrib_row_ok(const dcem_contrib *c)
{
    const int64_t *v = c->v; /* 6 covered_ms, 7 intervals, 8-10 read/estimated/integrated */
    for (int i = 6; i < DCEM_CONTRIB_N; i++)
        if (v[i] < 0) return 0;
    return v[8] <= v[7] && v[9] <= v[7] && v[10] <= v[7];
}

static const int kinds[3] = {DCEM_PERIOD_HOUR, DCEM_PERIOD_DAY, DCEM_PERIOD_MONTH};

void dcem_rollup_deltas_new(dcem_rollup_delta *out, size_t *n, const char *meter, int64_t mid,
                            const dcem_store_interval_row *r)
{
    const int64_t nk[3] = {r->keys.hour_ms, r->keys.day, r->keys.month};
    dcem_contrib nw = dcem_contrib_of(&r->iv);
    for (int k = 0; k < 3; k++)
        out[(*n)++] = (dcem_rollup_delta){meter, mid, kinds[k], nk[k], 0, nw};
}

void dcem_rollup_deltas_revised(dcem_rollup_delta *out, size_t *n, const char *meter, int64_t mid,
                                const dcem_store_interval_row *r, const dcem_interval *old,
                                const dcem_store_keys *old_keys)
{
    const int64_t nk[3] = {r->keys.hour_ms, r->keys.day, r->keys.month};
    const int64_t ok[3] = {old_keys->hour_ms, old_keys->day, old_keys->month};
    dcem_contrib nw = dcem_contrib_of(&r->iv), od = dcem_contrib_of(old);
    for (int k = 0; k < 3; k++) {
        if (ok[k] == nk[k]) { /* always, unless a caller corrects the keys */
            dcem_contrib d = nw;
            dcem_contrib_add(&d, &od, -1); /* both within DCEM_STORE_MAX_UKWH: cannot overflow */
            out[(*n)++] = (dcem_rollup_delta){meter, mid, kinds[k], nk[k], 0, d};
            continue;
        }
        out[(*n)++] = (dcem_rollup_delta){meter, mid, kinds[k], nk[k], 0, nw};
        dcem_contrib neg = {{0}};
        dcem_contrib_add(&neg, &od, -1);
        out[(*n)++] = (dcem_rollup_delta){meter, mid, kinds[k], ok[k], 1, neg};
    }
}

void dcem_rollup_deltas_deleted(dcem_rollup_delta *out, size_t *n, const char *meter, int64_t mid,
                                const dcem_interval *iv, const dcem_store_keys *keys)
{
    const int64_t k3[3] = {keys->hour_ms, keys->day, keys->month};
    dcem_contrib neg = {{0}}, c = dcem_contrib_of(iv);
    dcem_contrib_add(&neg, &c, -1);
    for (int k = 0; k < 3; k++)
        out[(*n)++] = (dcem_rollup_delta){meter, mid, kinds[k], k3[k], 1, neg};
}

static int delta_cmp(const void *pa, const void *pb)
{
    const dcem_rollup_delta *a = pa, *b = pb;
    if (a->mid != b->mid) return a->mid < b->mid ? -1 : 1;
    int c = a->mid ? 0 : strcmp(a->meter, b->meter);
    if (c) return c;
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    return a->key < b->key ? -1 : a->key > b->key;
}

int dcem_rollup_deltas_sum(dcem_store *st, dcem_rollup_delta *d, size_t n, size_t *rows)
{
    qsort(d, n, sizeof *d, delta_cmp);
    size_t out = 0;
    for (size_t i = 0; i < n;) {
        dcem_rollup_delta sum = d[i];
        size_t j = i + 1;
        for (; j < n && delta_cmp(&d[j], &sum) == 0; j++) {
            if (dcem_contrib_add(&sum.d, &d[j].d, 1)) {
                dcem_store_set_error(st, "put_intervals: a rollup of %s would overflow",
                                     sum.meter ? sum.meter : "a meter");
                return DCEM_EINVAL;
            }
            sum.drop_empty |= d[j].drop_empty;
        }
        d[out++] = sum;
        i = j;
    }
    *rows = out;
    return 0;
}
