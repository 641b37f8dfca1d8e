#include "marks.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NOT_CLEAN UINT64_MAX /* a token taken while a commit was in flight */

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

typedef struct site_marks {
    dcem_days days;
    uint64_t started, ended; /* commits that touched the site */
    int held;                /* the figures thread reads it: commits wait */
} site_marks;

struct dcem_marks {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t n;
    site_marks *s;
};

dcem_marks *dcem_marks_new(size_t n_sites)
{
    dcem_marks *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->n = n_sites;
    m->s = calloc(n_sites ? n_sites : 1, sizeof *m->s);
    if (!m->s) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    return m;
}

void dcem_marks_free(dcem_marks *m)
{
    if (!m) return;
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m->s);
    free(m);
}

static int any_held(const dcem_marks *m, const unsigned char *touched)
{
    for (size_t i = 0; i < m->n; i++)
        if (touched[i] && m->s[i].held) return 1;
    return 0;
}

void dcem_marks_commit_start(dcem_marks *m, const unsigned char *touched)
{
    pthread_mutex_lock(&m->mu);
    while (any_held(m, touched)) pthread_cond_wait(&m->cv, &m->mu);
    for (size_t i = 0; i < m->n; i++)
        if (touched[i]) m->s[i].started++;
    pthread_mutex_unlock(&m->mu);
}

void dcem_marks_commit_end(dcem_marks *m, const unsigned char *touched, const dcem_days *days,
                           int committed)
{
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n; i++) {
        if (!touched[i]) continue;
        if (committed && days) dcem_days_merge(&m->s[i].days, &days[i]);
        m->s[i].ended++;
    }
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

void dcem_marks_take(dcem_marks *m, size_t i, dcem_days *into, uint64_t *token, int hold)
{
    pthread_mutex_lock(&m->mu);
    site_marks *s = &m->s[i];
    if (hold) {
        while (s->started != s->ended) pthread_cond_wait(&m->cv, &m->mu);
        s->held = 1;
    }
    dcem_days_merge(into, &s->days);
    s->days.n = 0;
    *token = s->started == s->ended ? s->started : NOT_CLEAN;
    pthread_mutex_unlock(&m->mu);
}

int dcem_marks_check(dcem_marks *m, size_t i, uint64_t token)
{
    pthread_mutex_lock(&m->mu);
    site_marks *s = &m->s[i];
    int ok = token != NOT_CLEAN && s->started == token;
    if (s->held) {
        s->held = 0;
        pthread_cond_broadcast(&m->cv);
    }
    pthread_mutex_unlock(&m->mu);
    return ok;
}

void dcem_marks_move(dcem_marks *m, size_t from, dcem_marks *n, size_t to)
{
    dcem_days d;
    pthread_mutex_lock(&m->mu);
    d = m->s[from].days;
    m->s[from].days.n = 0;
    pthread_mutex_unlock(&m->mu);
    pthread_mutex_lock(&n->mu);
    dcem_days_merge(&n->s[to].days, &d);
    pthread_mutex_unlock(&n->mu);
}
