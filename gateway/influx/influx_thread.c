#include "influx_thread.h"
#include "dcem_log.h"
#include "errors.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MOD "influx"
#define WAKE_MS 50 /* the writer looks at the hand-off and its clock this often */

/* A buffer of whole lines, grown up to DCEM_INFLUX_HANDOFF_BYTES. */
typedef struct lines {
    char *p;
    size_t len, cap;
    uint64_t n; /* lines in it */
} lines;

struct dcem_influx_thread {
    dcem_influx *w; /* the writer's thread's alone once started */
    pthread_t th;
    pthread_mutex_t mu; /* guards in, stop, snap, dropped, c_full */
    pthread_cond_t cv;
    lines in;    /* the hand-off: filled by any thread */
    lines work;  /* the writer's: what it feeds to w */
    lines spare; /* the writer's: what the progress function spills */
    size_t wake_bytes;
    int stop;
    dcem_influx_stats snap; /* w's counters as of the writer's last step */
    uint64_t dropped;       /* lines the hand-off could not take, or w refused */
    dcem_complaint c_full;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t count_lines(const char *p, size_t len)
{
    uint64_t n = 0;
    for (const char *q = p, *end = p + len; (q = memchr(q, '\n', (size_t)(end - q))); q++) n++;
    return n;
}

static void swap(lines *a, lines *b)
{
    lines t = *a;
    *a = *b;
    *b = t;
}

/* Writer's thread: its counters for the other threads. */
static void publish_stats(dcem_influx_thread *t)
{
    dcem_influx_stats st;
    dcem_influx_stats_get(t->w, &st);
    pthread_mutex_lock(&t->mu);
    t->snap = st;
    pthread_mutex_unlock(&t->mu);
}

/* Inside a request: a hand-off half full goes to the backlog at once, so
 * that a request hanging for timeout_ms never fills it. */
static void on_progress(void *ctx)
{
    dcem_influx_thread *t = ctx;
    pthread_mutex_lock(&t->mu);
    int full = t->in.len >= DCEM_INFLUX_HANDOFF_BYTES / 2;
    if (full) swap(&t->in, &t->spare);
    pthread_mutex_unlock(&t->mu);
    if (!full) return;
    DCEM_LOGD(MOD, "a request is slow: %llu lines from the hand-off to the backlog",
              (unsigned long long)t->spare.n);
    dcem_influx_spill(t->w, t->spare.p, t->spare.len);
    t->spare.len = 0;
    t->spare.n = 0;
    publish_stats(t);
}

/* The lines of t->work into the writer's batch (which may send it). */
static void feed(dcem_influx_thread *t)
{
    uint64_t refused = 0;
    for (size_t at = 0; at < t->work.len;) {
        const char *nl = memchr(t->work.p + at, '\n', t->work.len - at);
        size_t n = nl ? (size_t)(nl - (t->work.p + at)) : t->work.len - at;
        if (n && dcem_influx_add(t->w, t->work.p + at, n)) refused++;
        at += n + 1;
    }
    t->work.len = 0;
    t->work.n = 0;
    if (refused) {
        pthread_mutex_lock(&t->mu);
        t->dropped += refused;
        pthread_mutex_unlock(&t->mu);
    }
}

static void *run(void *arg)
{
    dcem_influx_thread *t = arg;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        if (!t->stop && t->in.len < t->wake_bytes) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += WAKE_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&t->cv, &t->mu, &until);
        }
        int stop = t->stop;
        swap(&t->in, &t->work);
        pthread_mutex_unlock(&t->mu);
        feed(t);
        if (stop) break;
        dcem_influx_tick(t->w, mono_ms());
        publish_stats(t);
    }
    dcem_influx_flush(t->w); /* sent, or to the backlog */
    publish_stats(t);
    return NULL;
}

int dcem_influx_thread_start(const dcem_influx_cfg *cfg, dcem_influx_thread **out, char *err,
                             size_t errlen)
{
    *out = NULL;
    dcem_influx_thread *t = calloc(1, sizeof *t);
    if (!t) return DCEM_ENOMEM;
    int rc = dcem_influx_new(cfg, &t->w, err, errlen);
    if (rc) {
        free(t);
        return rc;
    }
    t->wake_bytes = (size_t)cfg->batch_max_bytes;
    if (t->wake_bytes > DCEM_INFLUX_HANDOFF_BYTES / 4) t->wake_bytes = DCEM_INFLUX_HANDOFF_BYTES / 4;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    dcem_influx_set_progress(t->w, on_progress, t);
    dcem_influx_tick(t->w, mono_ms()); /* its clock starts now */
    dcem_influx_stats_get(t->w, &t->snap);
    if (pthread_create(&t->th, NULL, run, t)) {
        snprintf(err, errlen, "influx: cannot start the writer's thread");
        dcem_influx_free(t->w);
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return DCEM_ENOMEM;
    }
    *out = t;
    return 0;
}

/* Room for need more bytes in b, within the hand-off's cap. */
static int room(lines *b, size_t need)
{
    if (b->len + need <= b->cap) return 0;
    if (b->len + need > DCEM_INFLUX_HANDOFF_BYTES) return -1;
    size_t cap = b->cap ? b->cap : 64 * 1024;
    while (cap < b->len + need) cap *= 2;
    if (cap > DCEM_INFLUX_HANDOFF_BYTES) cap = DCEM_INFLUX_HANDOFF_BYTES;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int dcem_influx_thread_add(dcem_influx_thread *t, const char *p, size_t len)
{
    if (!len) return 0;
    uint64_t n = count_lines(p, len);
    pthread_mutex_lock(&t->mu);
    int rc = room(&t->in, len);
    if (rc) {
        t->dropped += n;
        dcem_complain(&t->c_full, DCEM_LOG_WARN, MOD,
                      "the writer's hand-off is full (%u MiB): lines dropped (counted in "
                      "dropped_lines; the backlog's disk is slower than the lines come)",
                      DCEM_INFLUX_HANDOFF_BYTES >> 20);
    } else {
        memcpy(t->in.p + t->in.len, p, len);
        t->in.len += len;
        t->in.n += n;
        if (t->in.len >= t->wake_bytes) pthread_cond_signal(&t->cv);
        if (t->c_full.count) dcem_release(&t->c_full, MOD, "the writer's hand-off takes lines again");
    }
    pthread_mutex_unlock(&t->mu);
    return rc ? DCEM_EFULL : 0;
}

void dcem_influx_thread_stats(dcem_influx_thread *t, dcem_influx_stats *st)
{
    pthread_mutex_lock(&t->mu);
    *st = t->snap;
    st->lines_buffered += t->in.n;
    st->bytes_buffered += t->in.len;
    st->dropped_lines += t->dropped;
    pthread_mutex_unlock(&t->mu);
}

void dcem_influx_thread_stop(dcem_influx_thread *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->th, NULL);
    dcem_influx_free(t->w);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t->in.p);
    free(t->work.p);
    free(t->spare.p);
    free(t);
}
