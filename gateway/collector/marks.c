#include "marks.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>


static void remove_at(dcem_days *d, size_t k)
{
    memmove(&d->lo[k], &d->lo[k + 1], (d->n - k - 1) * sizeof d->lo[0]);
    memmove(&d->hi[k], &d->hi[k + 1], (d->n - k - 1) * sizeof d->hi[0]);
    d->n--;
}

void dcem_days_add(dcem_days *d, int64_t lo, int64_t hi)
{
    if (hi < lo) return;
    size_t k = 0;
    while (k < d->n && d->hi[k] < lo - 1) k++; /* ranges wholly before, not adjacent */
    /* swallow every range that overlaps or touches [lo, hi] */
    while (k < d->n && d->lo[k] <= hi + 1) {
        if (d->lo[k] < lo) lo = d->lo[k];
        if (d->hi[k] > hi) hi = d->hi[k];
        remove_at(d, k);
    }
    if (d->n == DCEM_DAYS_MAX) {
        /* full: the two closest neighbours become one (the set only
         * grows), then [lo, hi] goes in as into a set with room */
        size_t best = 0;
        for (size_t j = 1; j + 1 < d->n; j++)
            if (d->lo[j + 1] - d->hi[j] < d->lo[best + 1] - d->hi[best]) best = j;
        d->hi[best] = d->hi[best + 1];
        remove_at(d, best + 1);
        dcem_days_add(d, lo, hi);
        return;
    }
    memmove(&d->lo[k + 1], &d->lo[k], (d->n - k) * sizeof d->lo[0]);
    memmove(&d->hi[k + 1], &d->hi[k], (d->n - k) * sizeof d->hi[0]);
    d->lo[k] = lo;
    d->hi[k] = hi;
    d->n++;
}

void dcem_days_merge(dcem_days *into, const dcem_days *from)
{
    for (size_t k = 0; k < from->n; k++) dcem_days_add(into, from->lo[k], from->hi[k]);
}

int dcem_days_overlap(const dcem_days *d, int64_t lo, int64_t hi)
{
    for (size_t k = 0; k < d->n; k++)
        if (d->lo[k] <= hi && d->hi[k] >= lo) return 1;
    return 0;
}

void dcem_days_keep_before(dcem_days *d, int64_t day)
{
    size_t n = 0;
    for (size_t k = 0; k < d->n; k++) {
        if (d->lo[k] >= day) break;
        d->lo[n] = d->lo[k];
        d->hi[n] = d->hi[k] < day ? d->hi[k] : day - 1;
        n++;
    }
    d->n = n;
}

struct dcem_marks {
    pthread_mutex_t mu;
    size_t n;
    dcem_days *days;   /* per site */
    int64_t *since_ms; /* per site: when its oldest untaken mark was made */
};

dcem_marks *dcem_marks_new(size_t n_sites)
{
    dcem_marks *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->n = n_sites;
    m->days = calloc(n_sites ? n_sites : 1, sizeof *m->days);
    m->since_ms = calloc(n_sites ? n_sites : 1, sizeof *m->since_ms);
    if (!m->days || !m->since_ms) {
        free(m->days);
        free(m->since_ms);
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void dcem_marks_free(dcem_marks *m)
{
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m->days);
    free(m->since_ms);
    free(m);
}

void dcem_marks_add(dcem_marks *m, const unsigned char *touched, const dcem_days *days,
                    int64_t now_ms)
{
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n; i++) {
        if (!touched[i] || !days[i].n) continue;
        if (!m->days[i].n) m->since_ms[i] = now_ms;
        dcem_days_merge(&m->days[i], &days[i]);
    }
    pthread_mutex_unlock(&m->mu);
}

void dcem_marks_take(dcem_marks *m, size_t i, dcem_days *into, int64_t *since_ms)
{
    pthread_mutex_lock(&m->mu);
    *since_ms = m->days[i].n ? m->since_ms[i] : 0;
    dcem_days_merge(into, &m->days[i]);
    m->days[i].n = 0;
    pthread_mutex_unlock(&m->mu);
}

void dcem_marks_move(dcem_marks *m, size_t from, dcem_marks *n, size_t to)
{
    dcem_days d;
    pthread_mutex_lock(&m->mu);
    d = m->days[from];
    int64_t since = m->since_ms[from];
    m->days[from].n = 0;
    pthread_mutex_unlock(&m->mu);
    pthread_mutex_lock(&n->mu);
    if (d.n && (!n->days[to].n || since < n->since_ms[to])) n->since_ms[to] = since;
    dcem_days_merge(&n->days[to], &d);
    pthread_mutex_unlock(&n->mu);
}
