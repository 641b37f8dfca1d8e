/* The agent's half of the ack protocol (firmware/agent/delivery.h), driven
 * by events against an in-memory spool: births, publishing in order within
 * the in-flight window, cumulative and idempotent acks, acks of other epochs
 * and acks above what was published (refused: never a batch that was not
 * sent), resend requests below, inside and above what is held, holes
 * answered with a birth, reconnects, the no-ack timeout, and a restart from
 * a spool with an earlier epoch and a torn tail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "delivery.h"

#include <string.h>

#define E1 1700000000u
#define E0 1600000000u
#define MAXREC 512

/* ---- an in-memory spool: records in spool order ---- */

typedef struct rec {
    uint64_t epoch, seq;
    int durable;
} rec;

typedef struct fake {
    uint64_t epoch, next_seq;
    rec r[MAXREC];
    size_t n;
} fake;

static void fake_held(void *ctx, dcem_delivery_held *h)
{
    fake *f = ctx;
    h->epoch = f->epoch;
    h->next_seq = f->next_seq;
    h->first_seq = f->next_seq;
    for (size_t i = 0; i < f->n; i++)
        if (f->r[i].epoch == f->epoch) {
            h->first_seq = f->r[i].seq;
            break;
        }
}

static int fake_first(void *ctx, dcem_delivery_pos from, dcem_delivery_pos *at)
{
    fake *f = ctx;
    for (size_t i = 0; i < f->n; i++) {
        const rec *x = &f->r[i];
        if (!x->durable) continue;
        if (x->epoch > from.epoch || (x->epoch == from.epoch && x->seq >= from.seq)) {
            *at = (dcem_delivery_pos){x->epoch, x->seq};
            return 0;
        }
    }
    return -1;
}

static void append(fake *f, int n)
{
    while (n-- > 0) {
        assert_true(f->n < MAXREC);
        f->r[f->n++] = (rec){f->epoch, f->next_seq++, 1};
    }
}

/* What the spool does with a delete the state machine asked for. */
static void spool_delete(fake *f, dcem_delivery_pos upto)
{
    size_t w = 0;
    for (size_t i = 0; i < f->n; i++)
        if (!(f->r[i].epoch == upto.epoch && f->r[i].seq <= upto.seq)) f->r[w++] = f->r[i];
    f->n = w;
}

/* A record lost to corruption (a hole, or a torn tail). */
static void lose(fake *f, uint64_t seq)
{
    size_t w = 0;
    for (size_t i = 0; i < f->n; i++)
        if (!(f->r[i].epoch == f->epoch && f->r[i].seq == seq)) f->r[w++] = f->r[i];
    f->n = w;
}

static const dcem_delivery_opts opts = {.inflight = 20, .resend_after_ms = 10000,
                                        .birth_every_ms = 2000};

static dcem_delivery *machine(fake *f, const dcem_delivery_opts *o)
{
    dcem_delivery_spool sp = {.ctx = f, .held = fake_held, .first = fake_first};
    dcem_delivery *d = dcem_delivery_new(&sp, o ? o : &opts);
    assert_non_null(d);
    return d;
}

/* ---- driving it ---- */

typedef struct out {
    dcem_delivery_pos pub[MAXREC];
    size_t n_pub;
    dcem_delivery_action births[16];
    size_t n_births;
} out;

/* Does everything it asks for at `now` (each publish succeeds); returns what. */
static out run(dcem_delivery *d, int64_t now)
{
    out o;
    memset(&o, 0, sizeof o);
    dcem_delivery_action a;
    while (dcem_delivery_next(d, now, &a)) {
        if (a.kind == DCEM_DELIVERY_BIRTH) {
            assert_true(o.n_births < 16);
            o.births[o.n_births++] = a;
        } else {
            assert_int_equal(a.kind, DCEM_DELIVERY_PUBLISH);
            assert_true(o.n_pub < MAXREC);
            o.pub[o.n_pub++] = a.pos;
        }
        dcem_delivery_done(d, &a, 1, now);
    }
    return o;
}

static void assert_seqs(const out *o, uint64_t epoch, uint64_t from, uint64_t to)
{
    assert_int_equal(o->n_pub, to - from + 1);
    for (size_t i = 0; i < o->n_pub; i++) {
        assert_int_equal(o->pub[i].epoch, epoch);
        assert_int_equal(o->pub[i].seq, from + i);
    }
}

static void assert_birth(const dcem_delivery_action *b, uint64_t epoch, uint64_t next_seq,
                         uint64_t queued)
{
    assert_int_equal(b->kind, DCEM_DELIVERY_BIRTH);
    assert_int_equal(b->epoch, epoch);
    assert_int_equal(b->next_seq, next_seq);
    assert_int_equal(b->queued, queued);
}

static int ack(dcem_delivery *d, fake *f, uint64_t epoch, uint64_t seq, int64_t now)
{
    dcem_delivery_pos del = {0, 0};
    int rc = dcem_delivery_ack(d, epoch, seq, now, &del);
    if (rc == DCEM_DELIVERY_ACK_DELETE) {
        assert_int_equal(del.epoch, epoch);
        assert_int_equal(del.seq, seq);
        spool_delete(f, del);
    }
    return rc;
}

static dcem_delivery_stats stats(const dcem_delivery *d)
{
    dcem_delivery_stats s;
    dcem_delivery_get_stats(d, &s);
    return s;
}

/* ---- tests ---- */

static void test_birth_then_oldest_in_order(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 5);
    dcem_delivery *d = machine(&f, NULL);
    out o = run(d, 0);
    assert_int_equal(o.n_births + o.n_pub, 0); /* not connected: nothing */
    dcem_delivery_connected(d, 0);
    dcem_delivery_action a;
    assert_int_equal(dcem_delivery_next(d, 0, &a), 1); /* the birth comes first */
    assert_birth(&a, E1, 6, 5);
    dcem_delivery_done(d, &a, 0, 0); /* not handed over: offered again */
    o = run(d, 0);
    assert_int_equal(o.n_births, 1);
    assert_birth(&o.births[0], E1, 6, 5);
    assert_seqs(&o, E1, 1, 5);
    append(&f, 1);
    o = run(d, 1);
    assert_seqs(&o, E1, 6, 6);
    assert_int_equal(o.n_births, 0);
    assert_int_equal(stats(d).published, 6);
    assert_int_equal(stats(d).births, 1);
    dcem_delivery_free(d);
}

static void test_inflight_window(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 10);
    dcem_delivery_opts o3 = opts;
    o3.inflight = 3;
    dcem_delivery *d = machine(&f, &o3);
    dcem_delivery_connected(d, 0);
    out o = run(d, 0);
    assert_seqs(&o, E1, 1, 3); /* three await their ack */
    o = run(d, 1);
    assert_int_equal(o.n_pub, 0);
    assert_int_equal(ack(d, &f, E1, 2, 2), DCEM_DELIVERY_ACK_DELETE);
    o = run(d, 2);
    assert_seqs(&o, E1, 4, 5);
    dcem_delivery_action a = {.kind = DCEM_DELIVERY_PUBLISH, .pos = {E1, 6}};
    assert_int_equal(dcem_delivery_next(d, 3, &a), 0);
    /* a failed publish is offered again, the window unchanged */
    assert_int_equal(ack(d, &f, E1, 5, 3), DCEM_DELIVERY_ACK_DELETE);
    assert_int_equal(dcem_delivery_next(d, 3, &a), 1);
    assert_int_equal(a.pos.seq, 6);
    dcem_delivery_done(d, &a, 0, 3);
    o = run(d, 3);
    assert_seqs(&o, E1, 6, 8);
    dcem_delivery_free(d);
}

static void test_acks_cumulative_and_idempotent(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 5);
    dcem_delivery *d = machine(&f, NULL);
    dcem_delivery_connected(d, 0);
    run(d, 0);
    assert_int_equal(ack(d, &f, E1, 3, 1), DCEM_DELIVERY_ACK_DELETE);
    assert_int_equal(f.n, 2);
    assert_int_equal(ack(d, &f, E1, 3, 2), DCEM_DELIVERY_ACK_NOOP); /* a duplicate */
    assert_int_equal(ack(d, &f, E1, 1, 2), DCEM_DELIVERY_ACK_NOOP); /* reordered, older */
    assert_int_equal(ack(d, &f, E1, 0, 2), DCEM_DELIVERY_ACK_NOOP); /* "nothing stored yet" */
    assert_int_equal(f.n, 2);
    assert_int_equal(ack(d, &f, E1, 5, 3), DCEM_DELIVERY_ACK_DELETE);
    assert_int_equal(f.n, 0);
    assert_int_equal(ack(d, &f, E1, 5, 4), DCEM_DELIVERY_ACK_NOOP);
    dcem_delivery_stats s = stats(d);
    assert_int_equal(s.acks, 6);
    assert_int_equal(s.acks_applied, 2);
    assert_int_equal(s.acks_ahead + s.acks_other_epoch, 0);
    dcem_delivery_free(d);
}

static void test_ack_of_another_epoch_ignored(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 5);
    dcem_delivery *d = machine(&f, NULL);
    dcem_delivery_connected(d, 0);
    run(d, 0);
    assert_int_equal(ack(d, &f, E1 + 1, 3, 1), DCEM_DELIVERY_ACK_EPOCH); /* a newer epoch */
    assert_int_equal(ack(d, &f, E0, 3, 1), DCEM_DELIVERY_ACK_EPOCH);     /* one not held */
    assert_int_equal(f.n, 5);
    assert_int_equal(stats(d).acks_other_epoch, 2);
    dcem_delivery_free(d);
}

/* A forged or confused ack must never delete a batch that was not sent. */
static void test_ack_above_published_refused(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 10);
    dcem_delivery_opts o4 = opts;
    o4.inflight = 4;
    dcem_delivery *d = machine(&f, &o4);
    dcem_delivery_connected(d, 0);
    out o = run(d, 0);
    assert_seqs(&o, E1, 1, 4);
    assert_int_equal(ack(d, &f, E1, 7, 1), DCEM_DELIVERY_ACK_AHEAD);  /* appended, not sent */
    assert_int_equal(ack(d, &f, E1, 99, 1), DCEM_DELIVERY_ACK_AHEAD); /* not even appended */
    assert_int_equal(f.n, 10);                                         /* nothing deleted */
    assert_int_equal(stats(d).acks_ahead, 2);
    assert_int_equal(stats(d).acks_applied, 0);
    /* the collector has everything sent so far: publishing goes on */
    o = run(d, 1);
    assert_seqs(&o, E1, 5, 8);
    assert_int_equal(ack(d, &f, E1, 7, 2), DCEM_DELIVERY_ACK_DELETE); /* now it was sent */
    assert_int_equal(f.n, 3);
    dcem_delivery_free(d);

    /* after a restart nothing is published yet: the collector's ack of what
     * the last run sent deletes nothing until it is sent again */
    d = machine(&f, &o4);
    dcem_delivery_connected(d, 10);
    assert_int_equal(ack(d, &f, E1, 9, 10), DCEM_DELIVERY_ACK_AHEAD);
    assert_int_equal(f.n, 3);
    o = run(d, 10);
    assert_int_equal(o.n_births, 1);
    assert_seqs(&o, E1, 8, 10);
    assert_int_equal(ack(d, &f, E1, 9, 11), DCEM_DELIVERY_ACK_DELETE);
    assert_int_equal(f.n, 1);
    dcem_delivery_free(d);
}

static void test_resend_below_oldest_starts_at_oldest(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 9);
    spool_delete(&f, (dcem_delivery_pos){E1, 4}); /* 1..4 acked */
    dcem_delivery *d = machine(&f, NULL);
    dcem_delivery_connected(d, 0);
    run(d, 0);
    /* a collector that lost 2..4 (its store restored from a backup) */
    assert_int_equal(dcem_delivery_resend(d, E1, 2, 5000), DCEM_DELIVERY_RESEND_GONE);
    out o = run(d, 5000);
    assert_int_equal(o.n_births, 1);
    assert_birth(&o.births[0], E1, 10, 5); /* held from 5: it can give 2..4 up */
    assert_seqs(&o, E1, 5, 9);
    dcem_delivery_free(d);
}

static void test_resend_inside_what_is_held(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 9);
    dcem_delivery *d = machine(&f, NULL);
    dcem_delivery_connected(d, 0);
    run(d, 0);
    assert_int_equal(dcem_delivery_resend(d, E1, 6, 5000), DCEM_DELIVERY_RESEND_OK);
    out o = run(d, 5000);
    assert_int_equal(o.n_births, 0);
    assert_seqs(&o, E1, 6, 9);
    assert_int_equal(stats(d).resends, 1);
    assert_int_equal(stats(d).resends_gone, 0);
    dcem_delivery_free(d);
}

static void test_resend_above_what_is_held(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 5);
    dcem_delivery *d = machine(&f, NULL);
    dcem_delivery_connected(d, 0);
    run(d, 0);
    assert_int_equal(dcem_delivery_resend(d, E1, 9, 5000), DCEM_DELIVERY_RESEND_GONE);
    out o = run(d, 5000);
    assert_int_equal(o.n_births, 1);
    assert_birth(&o.births[0], E1, 6, 5);
    assert_int_equal(o.n_pub, 0);
    /* nothing appended later is skipped for it */
    append(&f, 4);
    o = run(d, 5001);
    assert_seqs(&o, E1, 6, 9);
    dcem_delivery_free(d);
}

static void test_resend_of_another_epoch(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 3);
    dcem_delivery *d = machine(&f, NULL);
    dcem_delivery_connected(d, 0);
    run(d, 0);
    assert_int_equal(dcem_delivery_resend(d, E0, 1, 5000), DCEM_DELIVERY_RESEND_EPOCH);
    out o = run(d, 5000);
    assert_int_equal(o.n_pub, 0); /* the cursor did not move */
    assert_int_equal(o.n_births, 1);
    assert_birth(&o.births[0], E1, 4, 3); /* the current epoch, for the collector */
    dcem_delivery_free(d);
}

/* Adversarial case 5: seq 230 lost from the spool's tail (its seq is not
 * reused). The birth says what is held; a resend for 230 gets a birth, at
 * most one per birth_every_ms, none lost. */
static void test_lost_seq_answered_with_birth(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 230);
    lose(&f, 230);
    dcem_delivery *d = machine(&f, NULL);
    dcem_delivery_connected(d, 0);
    out o = run(d, 0);
    assert_birth(&o.births[0], E1, 231, 230); /* held from 1, never "from 2" */
    assert_int_equal(o.n_pub, 20);
    for (int64_t t = 1; f.n; t++) { /* the collector stores and acks as they come */
        assert_int_equal(ack(d, &f, E1, o.pub[o.n_pub - 1].seq, t), DCEM_DELIVERY_ACK_DELETE);
        o = run(d, t);
        if (f.n) assert_true(o.n_pub > 0);
    }
    /* it has 1..229, the birth said 231 is next: it asks for 230 */
    assert_int_equal(dcem_delivery_resend(d, E1, 230, 100), DCEM_DELIVERY_RESEND_GONE);
    o = run(d, 100);
    assert_int_equal(o.n_births + o.n_pub, 0); /* the connect birth was 100 ms ago */
    o = run(d, 1999);
    assert_int_equal(o.n_births, 0);
    o = run(d, 2000);
    assert_int_equal(o.n_births, 1);
    assert_birth(&o.births[0], E1, 231, 0); /* nothing below 231 held: 230 can be given up */
    assert_int_equal(o.n_pub, 0);
    /* asked again at once: one more birth, after the interval */
    assert_int_equal(dcem_delivery_resend(d, E1, 230, 2100), DCEM_DELIVERY_RESEND_GONE);
    assert_int_equal(run(d, 3000).n_births, 0);
    assert_int_equal(run(d, 4000).n_births, 1);
    assert_int_equal(stats(d).resends_gone, 2);
    assert_int_equal(stats(d).births, 3);
    /* a batch appended after the hole goes out; a gap resend for the hole
     * tells what is held from 231 on, and starts there */
    append(&f, 1);
    assert_seqs((o = run(d, 4001), &o), E1, 231, 231);
    assert_int_equal(dcem_delivery_resend(d, E1, 230, 6001), DCEM_DELIVERY_RESEND_GONE);
    o = run(d, 6001);
    assert_birth(&o.births[0], E1, 232, 1);
    assert_seqs(&o, E1, 231, 231);
    dcem_delivery_free(d);
}

/* A hole in the middle (a record lost to corruption): the resend for it
 * starts at the next held batch, and the birth, once the collector's ack
 * took everything before the hole, says the hole is gone. */
static void test_hole_in_the_middle(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 9);
    lose(&f, 5);
    dcem_delivery *d = machine(&f, NULL);
    dcem_delivery_connected(d, 0);
    out o = run(d, 0);
    assert_int_equal(o.n_pub, 8);
    assert_int_equal(ack(d, &f, E1, 4, 1), DCEM_DELIVERY_ACK_DELETE);
    assert_int_equal(dcem_delivery_resend(d, E1, 5, 2000), DCEM_DELIVERY_RESEND_GONE);
    o = run(d, 2000);
    assert_birth(&o.births[0], E1, 10, 4); /* held from 6 */
    assert_seqs(&o, E1, 6, 9);
    dcem_delivery_free(d);
}

static void test_reconnect_resends_from_oldest_in_order(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 5);
    dcem_delivery *d = machine(&f, NULL);
    dcem_delivery_connected(d, 0);
    run(d, 0);
    assert_int_equal(ack(d, &f, E1, 2, 1), DCEM_DELIVERY_ACK_DELETE);
    dcem_delivery_lost(d);
    append(&f, 2);
    out o = run(d, 2);
    assert_int_equal(o.n_births + o.n_pub, 0); /* not while the connection is down */
    dcem_delivery_connected(d, 3);
    o = run(d, 3); /* a birth at once (not rate-limited), then 3.. again */
    assert_int_equal(o.n_births, 1);
    assert_birth(&o.births[0], E1, 8, 5);
    assert_seqs(&o, E1, 3, 7);
    dcem_delivery_free(d);
}

static void test_no_ack_publishes_again(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    append(&f, 3);
    dcem_delivery *d = machine(&f, NULL);
    dcem_delivery_connected(d, 0);
    run(d, 0);
    assert_int_equal(dcem_delivery_tick(d, 10000), 0);
    assert_int_equal(dcem_delivery_tick(d, 10001), 1);
    out o = run(d, 10001);
    assert_seqs(&o, E1, 1, 3);
    assert_int_equal(o.n_births, 0);
    /* an ack that makes progress restarts the wait */
    assert_int_equal(ack(d, &f, E1, 1, 15000), DCEM_DELIVERY_ACK_DELETE);
    assert_int_equal(dcem_delivery_tick(d, 25000), 0);
    assert_int_equal(dcem_delivery_tick(d, 25001), 1);
    /* nothing held: nothing to wait for */
    assert_int_equal(ack(d, &f, E1, 3, 25002), DCEM_DELIVERY_ACK_DELETE);
    assert_int_equal(dcem_delivery_tick(d, 90000), 0);
    dcem_delivery_lost(d);
    append(&f, 1);
    assert_int_equal(dcem_delivery_tick(d, 190000), 0); /* not while disconnected */
    assert_int_equal(stats(d).timeouts, 2);
    dcem_delivery_free(d);
}

/* A restarted agent: its spool holds batches of an earlier epoch (its
 * metadata was lost) before those of the current one, and one appended but
 * not yet on disk (fsync: interval). */
static void test_restart_from_a_spool(void **state)
{
    (void)state;
    fake f = {.epoch = E0, .next_seq = 7};
    append(&f, 2); /* E0: 7, 8 */
    f.epoch = E1;
    f.next_seq = 1;
    append(&f, 3); /* E1: 1, 2, 3 */
    f.r[f.n - 1].durable = 0;
    dcem_delivery *d = machine(&f, NULL);
    dcem_delivery_connected(d, 0);
    out o = run(d, 0);
    /* the birth counts 3 (held, if not on disk yet): a collector must not give it up */
    assert_birth(&o.births[0], E1, 4, 3);
    assert_int_equal(o.n_pub, 4);
    assert_true(o.pub[0].epoch == E0 && o.pub[0].seq == 7);
    assert_true(o.pub[1].epoch == E0 && o.pub[1].seq == 8);
    assert_true(o.pub[2].epoch == E1 && o.pub[2].seq == 1);
    assert_true(o.pub[3].epoch == E1 && o.pub[3].seq == 2);
    f.r[f.n - 1].durable = 1;
    o = run(d, 1);
    assert_seqs(&o, E1, 3, 3);
    /* acks of each epoch delete what was sent of it */
    assert_int_equal(ack(d, &f, E0, 9, 2), DCEM_DELIVERY_ACK_AHEAD);
    assert_int_equal(ack(d, &f, E0, 7, 2), DCEM_DELIVERY_ACK_DELETE);
    assert_int_equal(ack(d, &f, E1, 3, 2), DCEM_DELIVERY_ACK_DELETE);
    assert_int_equal(f.n, 1);
    assert_int_equal(ack(d, &f, E0, 8, 3), DCEM_DELIVERY_ACK_DELETE);
    assert_int_equal(f.n, 0);
    assert_int_equal(ack(d, &f, E0, 8, 4), DCEM_DELIVERY_ACK_EPOCH); /* not held any more */
    /* a resend of the old epoch starts there */
    fake g = {.epoch = E0, .next_seq = 7};
    append(&g, 2);
    g.epoch = E1;
    g.next_seq = 1;
    append(&g, 1);
    dcem_delivery *d2 = machine(&g, NULL);
    dcem_delivery_connected(d2, 0);
    run(d2, 0);
    assert_int_equal(dcem_delivery_resend(d2, E0, 8, 1), DCEM_DELIVERY_RESEND_OK);
    o = run(d2, 1);
    assert_int_equal(o.n_pub, 2);
    assert_true(o.pub[0].epoch == E0 && o.pub[0].seq == 8);
    assert_true(o.pub[1].epoch == E1 && o.pub[1].seq == 1);
    dcem_delivery_free(d2);
    dcem_delivery_free(d);
}

static void test_bad_options(void **state)
{
    (void)state;
    fake f = {.epoch = E1, .next_seq = 1};
    dcem_delivery_spool sp = {.ctx = &f, .held = fake_held, .first = fake_first};
    dcem_delivery_opts o = opts;
    o.inflight = 0;
    assert_null(dcem_delivery_new(&sp, &o));
    o.inflight = 1001;
    assert_null(dcem_delivery_new(&sp, &o));
    o = opts;
    sp.first = NULL;
    assert_null(dcem_delivery_new(&sp, &o));
    dcem_delivery_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_birth_then_oldest_in_order),
        cmocka_unit_test(test_inflight_window),
        cmocka_unit_test(test_acks_cumulative_and_idempotent),
        cmocka_unit_test(test_ack_of_another_epoch_ignored),
        cmocka_unit_test(test_ack_above_published_refused),
        cmocka_unit_test(test_resend_below_oldest_starts_at_oldest),
        cmocka_unit_test(test_resend_inside_what_is_held),
        cmocka_unit_test(test_resend_above_what_is_held),
        cmocka_unit_test(test_resend_of_another_epoch),
        cmocka_unit_test(test_lost_seq_answered_with_birth),
        cmocka_unit_test(test_hole_in_the_middle),
        cmocka_unit_test(test_reconnect_resends_from_oldest_in_order),
        cmocka_unit_test(test_no_ack_publishes_again),
        cmocka_unit_test(test_restart_from_a_spool),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
