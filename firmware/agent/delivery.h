/* delivery.h — the agent's half of the ack protocol (docs/wire-format.md,
 * "Ack protocol"): which held batch to publish next, what a collector's ack
 * may delete, where a resend request starts, when to publish a birth and
 * what it says. Pure: events in, actions out, what the spool holds through a
 * small seam; no MQTT, no files, no clock (the caller passes `now`). */
#ifndef DCEM_DELIVERY_H
#define DCEM_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

/* A place in spool order: older epochs first, then by seq. */
typedef struct dcem_delivery_pos {
    uint64_t epoch, seq;
} dcem_delivery_pos;

/* What the spool holds of its current epoch. */
typedef struct dcem_delivery_held {
    uint64_t epoch;     /* new batches carry it */
    uint64_t next_seq;  /* the seq the next new batch gets */
    uint64_t first_seq; /* the oldest seq of this epoch still held, on disk yet or not
                           (next_seq when none) */
} dcem_delivery_held;

/* The seam to the spool. The state machine only asks; the caller reads,
 * publishes and deletes. */
typedef struct dcem_delivery_spool {
    void *ctx;
    void (*held)(void *ctx, dcem_delivery_held *h);
    /* The first batch at or after `from` in spool order that may be
     * published now (on disk) into *at: returns 0, or -1 when there is none. */
    int (*first)(void *ctx, dcem_delivery_pos from, dcem_delivery_pos *at);
} dcem_delivery_spool;

typedef struct dcem_delivery_opts {
    unsigned inflight;       /* batches published ahead of the acks, 1..1000 */
    int64_t resend_after_ms; /* no ack progress for this long: publish again from the oldest */
    int64_t birth_every_ms;  /* answers to resend requests: at most one birth this often */
} dcem_delivery_opts;

/* What the caller does next (dcem_delivery_next). */
enum {
    DCEM_DELIVERY_BIRTH = 1,   /* publish the birth: epoch, next_seq, queued */
    DCEM_DELIVERY_PUBLISH = 2, /* publish the held batch at pos */
};

typedef struct dcem_delivery_action {
    int kind;
    dcem_delivery_pos pos;            /* PUBLISH */
    uint64_t epoch, next_seq, queued; /* BIRTH: the birth's fields */
} dcem_delivery_action;

/* What an ack did (dcem_delivery_ack). */
enum {
    DCEM_DELIVERY_ACK_DELETE = 0, /* delete every batch of *del's epoch with seq <= del->seq */
    DCEM_DELIVERY_ACK_NOOP = 1,   /* at or below what is already gone: nothing to delete */
    DCEM_DELIVERY_ACK_AHEAD = 2,  /* above the highest seq published since start: refused */
    DCEM_DELIVERY_ACK_EPOCH = 3,  /* an epoch the spool does not hold: ignored */
};

/* What a resend request did (dcem_delivery_resend). */
enum {
    DCEM_DELIVERY_RESEND_OK = 0,    /* publishing again from the seq asked for */
    DCEM_DELIVERY_RESEND_GONE = 1,  /* that seq is not held (acked, dropped or lost) or not
                                       appended: publishing from the next held one, and a
                                       birth says what is held */
    DCEM_DELIVERY_RESEND_EPOCH = 2, /* an epoch the spool does not hold: a birth answers */
};

typedef struct dcem_delivery_stats {
    unsigned long published;          /* batches handed to MQTT */
    unsigned long births;             /* births handed to MQTT */
    unsigned long acks, acks_applied; /* received; that deleted something */
    unsigned long acks_ahead;         /* refused: above what was published (forged, confused,
                                         or re-acks of the last run's batches after a restart) */
    unsigned long acks_other_epoch;   /* ignored: an epoch not held */
    unsigned long resends;            /* resend requests received */
    unsigned long resends_gone;       /* for seqs not held, or an epoch not held */
    unsigned long timeouts;           /* no ack progress for resend_after_ms: published again */
} dcem_delivery_stats;

typedef struct dcem_delivery dcem_delivery;

/* A state machine over `spool` (copied; its ctx must outlive the handle).
 * Starts disconnected. NULL when out of memory or opts are out of range.
 * Free with dcem_delivery_free (NULL accepted). */
dcem_delivery *dcem_delivery_new(const dcem_delivery_spool *spool, const dcem_delivery_opts *o);
void dcem_delivery_free(dcem_delivery *d);

/* Events. */

/* The broker connection is up (subscriptions in place): a birth first, then
 * every held batch again from the oldest, in order — whatever was published
 * before may be lost with the old connection. */
void dcem_delivery_connected(dcem_delivery *d, int64_t now);
/* The connection is gone: nothing is published until it is back. */
void dcem_delivery_lost(dcem_delivery *d);

/* A collector's cumulative ack (epoch, seq). Acks are idempotent; one may
 * delete only what this state machine has published (so never a batch that
 * was not sent). Returns DCEM_DELIVERY_ACK_*; on ACK_DELETE the caller
 * deletes up to *del from the spool. */
int dcem_delivery_ack(dcem_delivery *d, uint64_t epoch, uint64_t seq, int64_t now,
                      dcem_delivery_pos *del);

/* A collector's resend request from (epoch, from_seq). Returns
 * DCEM_DELIVERY_RESEND_*. A request for what is not held and never will be
 * is answered with a birth (at most one per birth_every_ms; a later one is
 * kept pending, not lost), so that the collector can give the hole up. */
int dcem_delivery_resend(dcem_delivery *d, uint64_t epoch, uint64_t from_seq, int64_t now);

/* Time passes: returns 1 when no ack made progress for resend_after_ms while
 * batches are held, so publishing starts again from the oldest. */
int dcem_delivery_tick(dcem_delivery *d, int64_t now);

/* Actions. */

/* The next thing to publish, if any now: a pending birth first, then the
 * next held batch while fewer than `inflight` await their ack. Returns 1
 * with *act filled, 0 when there is nothing to do (or not connected). */
int dcem_delivery_next(dcem_delivery *d, int64_t now, dcem_delivery_action *act);

/* The outcome of the action dcem_delivery_next gave: ok 1 when it was
 * handed to MQTT; 0 and it is offered again by the next call. */
void dcem_delivery_done(dcem_delivery *d, const dcem_delivery_action *act, int ok, int64_t now);

void dcem_delivery_get_stats(const dcem_delivery *d, dcem_delivery_stats *s);

#endif
