/* inbox.h — what the collector has received and not yet stored, one queue
 * per source, so that no gateway's flood (nor junk on any topic) delays
 * another gateway's batches: every gateway the ledgers know has a queue, a
 * token bucket (messages/s and bytes/s with a burst) and a cap of its own;
 * every other topic shares one `unknown` source with the same limits. What
 * is over a limit is dropped (never acked: a real agent sends it again) and
 * counted per source. Messages are taken round robin across the sources
 * with messages waiting, one at a time. Thread-safe: paho's thread puts,
 * the ingest loop takes. Docs: docs/collector.md, "Hostile and broken input". */
#ifndef DCEM_INBOX_H
#define DCEM_INBOX_H

#include "collector_config.h"

#include <stddef.h>
#include <stdint.h>

#define DCEM_INBOX_MAX_SOURCES 512        /* gateways with a queue of their own, `unknown` included */
#define DCEM_INBOX_MAX_BYTES (256u << 20) /* every queue together: beyond it, arrivals are dropped */
#define DCEM_INBOX_UNKNOWN 0              /* the source of every topic no ledger knows */

typedef struct dcem_inbox dcem_inbox;

/* One received message. payload is NULL when len is above the wire
 * format's largest payload: it is refused by its size alone, never read,
 * and costs no memory. */
typedef struct dcem_inbox_msg {
    struct dcem_inbox_msg *next;
    char *topic;
    void *payload;
    size_t len;
    int source; /* index of its source */
    int tried;  /* taken before and found ahead of its predecessor */
    uint64_t epoch, seq; /* a held batch's, as its first try read them */
    int64_t queued_ms;   /* when it was put (monotonic) */
} dcem_inbox_msg;

enum {
    DCEM_INBOX_TAKEN = 0,
    DCEM_INBOX_RATE,    /* over its source's messages/s or bytes/s: dropped */
    DCEM_INBOX_FULL,    /* its source's queue, or all of them, full: dropped */
};

/* A source's counters, as dcem_inbox_sources copies them. */
typedef struct dcem_inbox_source {
    char name[2 * DCEM_ID_MAX]; /* "site/gateway", or "unknown" */
    size_t queued, bytes;
    uint64_t taken, dropped_rate, dropped_full;
} dcem_inbox_source;

/* cfg (its ledgers and its ingest limits) must outlive the inbox, or be
 * replaced with dcem_inbox_set_config first. NULL when out of memory. */
dcem_inbox *dcem_inbox_new(const dcem_collector_config *cfg);
/* Frees the inbox and every message still in it. NULL accepted. */
void dcem_inbox_free(dcem_inbox *in);
void dcem_inbox_set_config(dcem_inbox *in, const dcem_collector_config *cfg);

/* One message received on topic, at monotonic time now_ms: queued on its
 * source (copied), or dropped. Returns a DCEM_INBOX_* outcome, or
 * DCEM_ENOMEM (nothing kept: paho may deliver it again). */
int dcem_inbox_put(dcem_inbox *in, const char *topic, size_t topic_len, const void *payload,
                   size_t len, int64_t now_ms);

/* The next message, round robin over the sources with messages waiting;
 * NULL when none. The caller frees it with dcem_inbox_msg_free. */
dcem_inbox_msg *dcem_inbox_take(dcem_inbox *in);
void dcem_inbox_msg_free(dcem_inbox_msg *m);

/* The name of source i ("site/gateway" or "unknown"); "" when there is no
 * such source. Names never change once given. */
const char *dcem_inbox_source_name(dcem_inbox *in, int i);

/* Copies the counters of sources 0.. into out (at most cap); returns how
 * many sources there are. */
size_t dcem_inbox_sources(dcem_inbox *in, dcem_inbox_source *out, size_t cap);

#endif
