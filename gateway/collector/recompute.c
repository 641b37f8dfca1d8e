#include "recompute.h"
#include "dcem_log.h"
#include "errors.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct queued {
    char site[DCEM_ID_MAX], kind[DCEM_ID_MAX], subject[DCEM_ID_MAX];
    int raised;
    char message[DCEM_STORE_MAX_MESSAGE];
    int64_t t_ms;
} queued;

struct dcem_recompute {
    const dcem_collector_config *cfg;
    dcem_store *st;
    dcem_engine *e;
    pthread_t th;
    int running;
    pthread_mutex_t mu; /* guards stop, the queue and the counts */
    pthread_cond_t cv;
    int stop;
    queued q[DCEM_RECOMPUTE_ALERTS];
    size_t n_q;
    uint64_t periods, unpublished;
    int64_t lag_ms, lag_max_ms; /* the engine's figures_lag_ms, figures_lag_max_ms */
    dcem_complaint c_full;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The engine's alert, on the thread: queued for the ingest thread (which
 * owns the MQTT link). Already stored. */
static void on_alert(void *ctx, const dcem_engine_alert *a)
{
    dcem_recompute *r = ctx;
    pthread_mutex_lock(&r->mu);
    if (r->n_q == DCEM_RECOMPUTE_ALERTS) {
        r->unpublished++;
        dcem_complain(&r->c_full, DCEM_LOG_WARN, "alert",
                      "%u alerts wait to be published: this one is stored only",
                      DCEM_RECOMPUTE_ALERTS);
    } else {
        queued *x = &r->q[r->n_q++];
        snprintf(x->site, sizeof x->site, "%s", a->site);
        snprintf(x->kind, sizeof x->kind, "%s", a->kind);
        snprintf(x->subject, sizeof x->subject, "%s", a->subject ? a->subject : "");
        snprintf(x->message, sizeof x->message, "%s", a->message);
        x->raised = a->raised;
        x->t_ms = a->t_ms;
    }
    pthread_mutex_unlock(&r->mu);
}

static void *run(void *arg)
{
    dcem_recompute *r = arg;
    for (;;) {
        int n = dcem_engine_recompute(r->e, wall_ms());
        const dcem_engine_stats *es = dcem_engine_stats_get(r->e);
        pthread_mutex_lock(&r->mu);
        r->periods += (uint64_t)n;
        r->lag_ms = es->figures_lag_ms;
        r->lag_max_ms = es->figures_lag_max_ms;
        if (r->stop) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long ms = r->cfg->recompute_ms;
        until.tv_sec += (time_t)(ms / 1000);
        until.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        if (!r->stop) pthread_cond_timedwait(&r->cv, &r->mu, &until);
        /* stop: one more pass, for what the last groups marked */
        pthread_mutex_unlock(&r->mu);
    }
    return NULL;
}

int dcem_recompute_start(const dcem_collector_config *cfg, dcem_marks *marks,
                         dcem_engine_line_fn sink, void *sink_ctx, dcem_recompute **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    dcem_recompute *r = calloc(1, sizeof *r);
    if (!r) return DCEM_ENOMEM;
    r->cfg = cfg;
    dcem_store_opts so = {.synchronous = cfg->store.synchronous,
                          .retention_days = (int)cfg->store.retention_days};
    int rc = dcem_store_open(cfg->store.backend, dcem_collector_store_target(&cfg->store), &so,
                             &r->st, err, errlen);
    if (rc) {
        free(r);
        return rc;
    }
    if (!(r->e = dcem_engine_new(cfg, r->st))) {
        snprintf(err, errlen, "out of memory");
        dcem_store_close(r->st);
        free(r);
        return DCEM_ENOMEM;
    }
    dcem_engine_set_marks(r->e, marks);
    dcem_engine_set_alerts(r->e, on_alert, r);
    if (sink) dcem_engine_set_sink(r->e, sink, sink_ctx);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->th, NULL, run, r)) {
        snprintf(err, errlen, "cannot start the figures thread");
        dcem_recompute_free(r);
        return DCEM_ENOMEM;
    }
    r->running = 1;
    *out = r;
    return 0;
}

size_t dcem_recompute_alerts(dcem_recompute *r, dcem_engine_alert_fn fn, void *ctx)
{
    queued q[16];
    size_t total = 0, n;
    do { /* a few at a time: fn publishes, outside the lock */
        pthread_mutex_lock(&r->mu);
        n = r->n_q < 16 ? r->n_q : 16;
        memcpy(q, r->q, n * sizeof q[0]);
        memmove(r->q, r->q + n, (r->n_q - n) * sizeof q[0]);
        r->n_q -= n;
        pthread_mutex_unlock(&r->mu);
        for (size_t i = 0; i < n; i++) {
            dcem_engine_alert a = {q[i].site,    q[i].kind, q[i].raised,
                                   q[i].message, q[i].t_ms, q[i].subject};
            fn(ctx, &a);
        }
        total += n;
    } while (n);
    return total;
}

void dcem_recompute_counts(dcem_recompute *r, uint64_t *periods, uint64_t *unpublished,
                           int64_t *lag_ms, int64_t *lag_max_ms)
{
    pthread_mutex_lock(&r->mu);
    *periods = r->periods;
    *unpublished = r->unpublished;
    *lag_ms = r->lag_ms;
    *lag_max_ms = r->lag_max_ms;
    pthread_mutex_unlock(&r->mu);
}

void dcem_recompute_stop(dcem_recompute *r)
{
    if (!r || !r->running) return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    r->running = 0;
    dcem_engine_free(r->e);
    r->e = NULL;
    dcem_store_close(r->st);
    r->st = NULL;
}

void dcem_recompute_free(dcem_recompute *r)
{
    if (!r) return;
    dcem_recompute_stop(r);
    dcem_engine_free(r->e);
    dcem_store_close(r->st);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
