/* delivery.c — the agent's half of the ack protocol as a state machine: a
 * publishing cursor over the spool, the batches in flight, the highest seq
 * published per epoch (what an ack may delete) and the pending birth. */
#include "delivery.h"

#include <stdlib.h>
#include <string.h>

#define EPOCHS_MAX 8 /* epochs whose highest published seq is remembered */

struct dcem_delivery {
    dcem_delivery_spool sp;
    dcem_delivery_opts o;
    int connected;
    dcem_delivery_pos cursor; /* publishing resumes at the first held batch from here */
    int64_t last_progress;    /* an ack freed the window or deleted, or (re)connect */
    int birth_due, birth_now; /* a birth is owed; now: not rate-limited (connect) */
    int births_sent;
    int64_t last_birth;
    /* The highest seq published since start, per epoch: an ack above it
     * would delete batches that were never sent. Oldest epoch evicted. */
    struct {
        uint64_t epoch, seq;
    } sent[EPOCHS_MAX];
    size_t n_sent;
    /* Published since the last rewind and not yet covered by an ack, in
     * publishing order: the in-flight window (cap o.inflight). */
    dcem_delivery_pos *ring;
    size_t r_head, r_len;
    dcem_delivery_stats st;
};

dcem_delivery *dcem_delivery_new(const dcem_delivery_spool *spool, const dcem_delivery_opts *o)
{
    if (!spool || !spool->held || !spool->first || !o || o->inflight < 1 || o->inflight > 1000 ||
        o->resend_after_ms < 1 || o->birth_every_ms < 0)
        return NULL;
    dcem_delivery *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->ring = calloc(o->inflight, sizeof *d->ring);
    if (!d->ring) {
        free(d);
        return NULL;
    }
    d->sp = *spool;
    d->o = *o;
    return d;
}

void dcem_delivery_free(dcem_delivery *d)
{
    if (!d) return;
    free(d->ring);
    free(d);
}

static uint64_t sent_high(const dcem_delivery *d, uint64_t epoch)
{
    for (size_t i = 0; i < d->n_sent; i++)
        if (d->sent[i].epoch == epoch) return d->sent[i].seq;
    return 0;
}

static void sent_note(dcem_delivery *d, dcem_delivery_pos p)
{
    size_t i = 0, oldest = 0;
    while (i < d->n_sent && d->sent[i].epoch != p.epoch) i++;
    if (i == d->n_sent) {
        if (d->n_sent == EPOCHS_MAX) { /* forgetting one only refuses its acks: safe */
            for (size_t k = 1; k < d->n_sent; k++)
                if (d->sent[k].epoch < d->sent[oldest].epoch) oldest = k;
            i = oldest;
        } else {
            d->n_sent++;
        }
        d->sent[i].epoch = p.epoch;
        d->sent[i].seq = 0;
    }
    if (p.seq > d->sent[i].seq) d->sent[i].seq = p.seq;
}

/* Publishing starts again at `from`: what was in flight is sent again. */
static void rewind_to(dcem_delivery *d, dcem_delivery_pos from)
{
    d->cursor = from;
    d->r_head = d->r_len = 0;
}

/* Takes what an ack of (epoch, seq) covers out of the window; returns how many. */
static size_t window_release(dcem_delivery *d, uint64_t epoch, uint64_t seq)
{
    size_t kept = 0, n = d->r_len, cap = d->o.inflight;
    for (size_t i = 0; i < n; i++) {
        dcem_delivery_pos p = d->ring[(d->r_head + i) % cap];
        if (p.epoch == epoch && p.seq <= seq) continue;
        d->ring[(d->r_head + kept) % cap] = p;
        kept++;
    }
    d->r_len = kept;
    return n - kept;
}

/* The oldest held seq of `epoch`: 0 and *first, or -1 when the spool holds
 * none of that epoch. */
static int first_of(dcem_delivery *d, const dcem_delivery_held *h, uint64_t epoch, uint64_t *first)
{
    if (epoch == h->epoch) {
        *first = h->first_seq;
        return 0;
    }
    dcem_delivery_pos at;
    if (epoch > h->epoch || d->sp.first(d->sp.ctx, (dcem_delivery_pos){epoch, 0}, &at) ||
        at.epoch != epoch)
        return -1;
    *first = at.seq; /* an earlier epoch is all on disk: the first publishable is the first held */
    return 0;
}

void dcem_delivery_connected(dcem_delivery *d, int64_t now)
{
    d->connected = 1;
    d->birth_due = d->birth_now = 1; /* the collector learns which batches are held */
    rewind_to(d, (dcem_delivery_pos){0, 0});
    d->last_progress = now;
}

void dcem_delivery_lost(dcem_delivery *d)
{
    d->connected = 0;
}

int dcem_delivery_ack(dcem_delivery *d, uint64_t epoch, uint64_t seq, int64_t now,
                      dcem_delivery_pos *del)
{
    dcem_delivery_held h;
    uint64_t first;
    d->st.acks++;
    d->sp.held(d->sp.ctx, &h);
    if (first_of(d, &h, epoch, &first)) {
        d->st.acks_other_epoch++;
        return DCEM_DELIVERY_ACK_EPOCH;
    }
    /* whatever the collector says it has, it is no longer waited for: even
     * an ack refused below frees the window, so that after a restart the
     * collector's re-acks of the last run's batches keep publishing going */
    if (window_release(d, epoch, seq)) d->last_progress = now;
    if (seq < first) return DCEM_DELIVERY_ACK_NOOP;
    if (seq > sent_high(d, epoch)) {
        d->st.acks_ahead++;
        return DCEM_DELIVERY_ACK_AHEAD;
    }
    d->st.acks_applied++;
    d->last_progress = now;
    *del = (dcem_delivery_pos){epoch, seq};
    return DCEM_DELIVERY_ACK_DELETE;
}

int dcem_delivery_resend(dcem_delivery *d, uint64_t epoch, uint64_t from_seq, int64_t now)
{
    (void)now;
    dcem_delivery_held h;
    uint64_t first;
    d->st.resends++;
    d->sp.held(d->sp.ctx, &h);
    if (first_of(d, &h, epoch, &first)) {
        d->st.resends_gone++;
        d->birth_due = 1;
        return DCEM_DELIVERY_RESEND_EPOCH;
    }
    /* never past what is appended: a batch appended later must not be skipped */
    uint64_t from = epoch == h.epoch && from_seq > h.next_seq ? h.next_seq : from_seq;
    rewind_to(d, (dcem_delivery_pos){epoch, from});
    dcem_delivery_pos at;
    if (from_seq >= first && (epoch != h.epoch || from_seq < h.next_seq) &&
        !d->sp.first(d->sp.ctx, d->cursor, &at) && at.epoch == epoch && at.seq == from_seq)
        return DCEM_DELIVERY_RESEND_OK;
    /* acked, dropped at the cap, lost to corruption, or never appended: the
     * birth says what is held, so the collector can give the hole up */
    d->st.resends_gone++;
    d->birth_due = 1;
    return DCEM_DELIVERY_RESEND_GONE;
}

int dcem_delivery_tick(dcem_delivery *d, int64_t now)
{
    dcem_delivery_pos at;
    if (!d->connected || now - d->last_progress <= d->o.resend_after_ms ||
        d->sp.first(d->sp.ctx, (dcem_delivery_pos){0, 0}, &at))
        return 0;
    d->st.timeouts++;
    rewind_to(d, (dcem_delivery_pos){0, 0});
    d->last_progress = now;
    return 1;
}

int dcem_delivery_next(dcem_delivery *d, int64_t now, dcem_delivery_action *act)
{
    memset(act, 0, sizeof *act);
    if (!d->connected) return 0;
    if (d->birth_due && (d->birth_now || !d->births_sent ||
                         now - d->last_birth >= d->o.birth_every_ms)) {
        dcem_delivery_held h;
        d->sp.held(d->sp.ctx, &h);
        act->kind = DCEM_DELIVERY_BIRTH;
        act->epoch = h.epoch;
        act->next_seq = h.next_seq;
        /* next_seq - queued is the oldest seq still held: a collector gives up
         * only what lies below it (holes above it are answered one by one) */
        act->queued = h.first_seq <= h.next_seq ? h.next_seq - h.first_seq : 0;
        return 1;
    }
    if (d->r_len >= d->o.inflight) return 0;
    dcem_delivery_pos at;
    if (d->sp.first(d->sp.ctx, d->cursor, &at)) return 0;
    act->kind = DCEM_DELIVERY_PUBLISH;
    act->pos = at;
    return 1;
}

void dcem_delivery_done(dcem_delivery *d, const dcem_delivery_action *act, int ok, int64_t now)
{
    if (!ok) return;
    if (act->kind == DCEM_DELIVERY_BIRTH) {
        d->birth_due = d->birth_now = 0;
        d->births_sent = 1;
        d->last_birth = now;
        d->st.births++;
    } else if (act->kind == DCEM_DELIVERY_PUBLISH && d->r_len < d->o.inflight) {
        d->ring[(d->r_head + d->r_len) % d->o.inflight] = act->pos;
        d->r_len++;
        sent_note(d, act->pos);
        d->cursor = (dcem_delivery_pos){act->pos.epoch, act->pos.seq + 1};
        d->st.published++;
    }
}

void dcem_delivery_get_stats(const dcem_delivery *d, dcem_delivery_stats *s)
{
    if (d) *s = d->st;
    else memset(s, 0, sizeof *s);
}
