/* engine.h — what the collector does with one batch: validate it against the
 * wire format, store it once (idempotent on gateway, epoch, seq), run its
 * readings through common/'s counter rules and interval split per meter,
 * store the intervals (rollups follow) and the meters' state in the same
 * transaction, and say what to acknowledge. Periodically, the figures and
 * verdicts of the months touched are recomputed from the stored day rollups
 * with common/period — the same computation as dcem-audit — and stored, and
 * verdict changes become alerts. No MQTT here: the caller publishes. */
#ifndef DCEM_ENGINE_H
#define DCEM_ENGINE_H

#include "collector_config.h"
#include "store.h"

#include <cJSON.h>

#include <stddef.h>
#include <stdint.h>

typedef enum dcem_engine_outcome {
    DCEM_ENGINE_STORED = 0,   /* stored and processed: ack */
    DCEM_ENGINE_DUPLICATE,    /* stored before: ack again, nothing changed */
    DCEM_ENGINE_GAP,          /* an earlier batch is missing: ask for a resend, not stored */
    DCEM_ENGINE_QUARANTINED,  /* identified but invalid, or its content refused by the
                                 store: kept aside and acked */
    DCEM_ENGINE_MALFORMED,    /* not acceptable at all: dropped, counted by reason */
    DCEM_ENGINE_UNKNOWN_SITE, /* no ledger for its site: dropped (the agent keeps it) */
    DCEM_ENGINE_FAILED,       /* the store failed: not acked, the agent will resend */
} dcem_engine_outcome;

/* What to send back for a batch. */
typedef struct dcem_engine_reply {
    char site[DCEM_ID_MAX], gateway[DCEM_ID_MAX];
    int ack;          /* publish an ack of (epoch, ack_seq) */
    int resend;       /* publish a resend from (epoch, resend_from) */
    uint64_t epoch, ack_seq, resend_from;
    uint64_t seq;     /* the batch's own seq, once identified */
    int reason;       /* dcem_wire_reason for MALFORMED / QUARANTINED */
    uint32_t refused[DCEM_REFUSE_COUNT]; /* the batch's readings not counted, by DCEM_REFUSE_*
                                            (STORED, QUARANTINED; 0 otherwise): sent in its ack */
    char why[256];
} dcem_engine_reply;

typedef struct dcem_engine_stats {
    uint64_t received, stored, duplicates, gaps, quarantined, malformed, unknown_site, failed;
    uint64_t signed_batches;   /* stored with a verified signature (and its proof) */
    uint64_t unsigned_batches; /* stored unsigned: a lab collector (identity.allow_unsigned) */
    uint64_t readings, unknown_meter_readings, rejected_readings, intervals, recomputes;
    int64_t figures_lag_ms;     /* the last pass that computed: the longest a site's data waited
                                   from its commit to its stored figures */
    int64_t figures_lag_max_ms; /* the longest since start */
    uint64_t future_readings;   /* stamped beyond now + max_future_skew_s: refused, not stored */
    uint64_t out_of_range_values; /* absurd magnitudes left out (the reading out_of_range) */
    uint64_t store_refused;     /* batches whose content the store refused: quarantined */
    uint64_t future_states;     /* meter states found beyond now + skew, started afresh */
    uint64_t holes_given_up, seqs_given_up; /* dcem_engine_give_up */
    uint64_t given_up_stored;   /* batches of given-up seqs that came after all: stored (late) */
    uint64_t malformed_by_reason[DCEM_WIRE_REASON_COUNT];
    uint64_t late_readings;     /* at or before their meter's latest: the meter rebuilt */
    uint64_t rebuilds;          /* meters rebuilt from their stored readings */
    uint64_t rebuilt_readings;  /* readings run again in those rebuilds */
    uint64_t too_old_readings;  /* late, older than the retention allows to rebuild: not counted */
    uint64_t alerts_told_elsewhere; /* changes another collector of the store recorded first */
    uint64_t group_retries;     /* transactions run again after the store said DCEM_ERETRY */
    uint64_t ratio_changes;                          /* meters' transformer ratio changed */
    uint64_t ratio_notes[DCEM_WIRE_RATIO_NOTE_COUNT]; /* readings by their ratio note */
} dcem_engine_stats;

/* An alert, handed to the caller to publish and log. */
typedef struct dcem_engine_alert {
    const char *site;
    const char *kind;     /* a verdict name, meter_stale, gateway_offline */
    int raised;           /* 1 raised, 0 cleared */
    const char *message;
    int64_t t_ms;
    const char *subject;  /* the meter, the gateway, the year ("" for the site) */
} dcem_engine_alert;

typedef void (*dcem_engine_alert_fn)(void *ctx, const dcem_engine_alert *a);

typedef struct dcem_engine dcem_engine;

/* cfg and st must outlive the engine. NULL when out of memory. */
dcem_engine *dcem_engine_new(const dcem_collector_config *cfg, dcem_store *st);
void dcem_engine_free(dcem_engine *e);

/* The largest magnitude of a reading's value taken (kWh, kW or any other
 * value): a value beyond it is left out and the reading marked
 * out_of_range, never summed. 1e15 kWh is 40 years of the world's
 * electricity; every double difference of two such values is exact enough
 * and far inside the store's bounds. */
#define DCEM_ENGINE_MAX_VALUE 1e15

/* Leaves out of r every value beyond DCEM_ENGINE_MAX_VALUE (or not finite)
 * and makes it out_of_range if one was: what the engine stores of a reading
 * (dcem-collector verify applies it to a signed reading before comparing).
 * Returns how many values were left out. */
unsigned dcem_engine_screen_values(dcem_wire_reading *r);

/* One message received on a data topic: stored, processed and committed
 * (with DCEM_STORE_SYNC_FULL: on stable storage) before it returns, so its
 * reply's ack may be published. Returns a dcem_engine_outcome. */
int dcem_engine_batch(dcem_engine *e, const char *topic, size_t topic_len, const void *payload,
                      size_t len, int64_t now_ms, dcem_engine_reply *reply);

typedef struct dcem_engine_msg {
    const char *topic;
    size_t topic_len;
    const void *payload;
    size_t len;
    int retry; /* tried before and found ahead of its predecessor: not counted again as
                  received or as a gap */
} dcem_engine_msg;

/* n messages as n dcem_engine_batch calls in that order, in ONE transaction:
 * one commit, one fsync for all (group commit — what lets the collector
 * keep up with many gateways). replies[i] and outcomes[i] answer msgs[i];
 * acks may be published when it returns. Should the store fail, the group
 * is rolled back and each message is tried again alone, so only the one
 * the store refuses ends DCEM_ENGINE_FAILED. InfluxDB lines and alerts of
 * the group are handed on after its commit. */
void dcem_engine_batches(dcem_engine *e, const dcem_engine_msg *msgs, size_t n, int64_t now_ms,
                         dcem_engine_reply *replies, int *outcomes);

/* Where alerts go (stored by the engine first): verdict changes of the
 * current year, a meter whose readings turn stale or fresh again, and
 * gateway_online/offline from dcem_engine_gateway_state. NULL: stored only. */
void dcem_engine_set_alerts(dcem_engine *e, dcem_engine_alert_fn fn, void *ctx);

/* Recomputes the figures and verdicts of every month (and its year) whose
 * days batches changed since the last call — the engine's own batches, or
 * with dcem_engine_set_marks those marked by another engine — as of the
 * last local midnight before now_ms (whole days), stores them (one short
 * transaction per site, with the alerts of the verdicts that changed), and
 * reports verdict changes of the current year (and settled past years).
 * Sites nobody touched are not read; the day rollups of a range of days are
 * kept between calls until a mark falls in it (not in a shared group:
 * other collectors write them). A month's marks that could not be computed
 * (the store failed) are kept for the next call. Returns the number of
 * periods computed. */
int dcem_engine_recompute(dcem_engine *e, int64_t now_ms);

/* The figures on a thread of their own (docs/collector.md, "Threads"): the
 * ingest engine hands what each commit wrote to m after the commit, a
 * second engine on its own store handle recomputes from m
 * (dcem_engine_recompute), reading each site in one read transaction. The
 * same m on both; it must outlive them; sites by index in the config both
 * were made with. NULL: the engine's own marks (one thread). */
struct dcem_marks;
void dcem_engine_set_marks(dcem_engine *e, struct dcem_marks *m);

/* A gateway's state message (birth or last will) on its state topic: an
 * offline gateway raises gateway_offline for its site, a birth clears it.
 * A birth also says which batches the agent still holds: the ones of its
 * epoch before those are given up as missing data (dcem_store_skip_to). */
void dcem_engine_gateway_state(dcem_engine *e, const char *site, const char *gateway,
                               const dcem_wire_state *state, int64_t now_ms);

/* A hole the gateway cannot fill (resend requests unanswered): the seqs
 * of its epoch up to up_to_seq that are not stored are given up as missing
 * data (dcem_store_skip_to), counted, and logged. Returns 0, or a store
 * error (nothing given up: ask again later). */
int dcem_engine_give_up(dcem_engine *e, const char *site, const char *gateway, uint64_t epoch,
                        uint64_t up_to_seq);

/* Figures of one site and period computed now from the store (for tools and
 * tests): kind DCEM_PERIOD_MONTH or DCEM_PERIOD_YEAR, month = y*12+m-1 (the
 * first month for a year), as_of_ms a local midnight. A new JSON document
 * the caller frees, or NULL. */
char *dcem_engine_period_json(dcem_engine *e, const char *site, int kind, long long first_month,
                              int64_t as_of_ms);

/* The same for any run of whole months [first_month, first_month +
 * n_months) (1 to 1200), with the kind the document and the policy see
 * (the API's year to date and rolling 12 months), as the cJSON object
 * itself (its numbers raw, fixed-point) for the caller to embed; the caller
 * frees it with cJSON_Delete. Read-only: stores nothing (an engine with a
 * line sink hands on one dcem_figures line). NULL for an unknown site, a
 * store failure or no memory. */
cJSON *dcem_engine_months_obj(dcem_engine *e, const char *site, int kind, long long first_month,
                              int n_months, int64_t as_of_ms);

const dcem_engine_stats *dcem_engine_stats_get(const dcem_engine *e);

/* Who sent a message (docs/security.md): payload, received on topic (the
 * data or state topic of a gateway, parsed into tp), checked against its
 * site's ledger before anything of it is believed. A gateway the ledger
 * lists with keys must have signed it with one of them, always; one it
 * lists without keys, or does not list, is accepted unsigned by a lab
 * collector only (identity.allow_unsigned), and is unknown otherwise. Returns 0 — accepted; *key (may be NULL) is
 * the text of the key that verified it, or NULL when it was accepted
 * unsigned — or the dcem_wire_reason of the refusal (DCEM_WIRE_UNSIGNED,
 * _BAD_SIGNATURE, _UNKNOWN_GATEWAY) with the detail in why. The site must
 * be one of the config's. */
int dcem_engine_verify(dcem_engine *e, const char *topic, const dcem_wire_topic_parts *tp,
                       const void *payload, size_t len, const char **key, char *why,
                       size_t whylen);

/* Where the engine hands InfluxDB line-protocol lines (docs/influxdb.md):
 * dcem_reading for every stored reading, dcem_interval for every interval,
 * dcem_figures for every period recomputed. Lines end with a newline. NULL:
 * none. Called after the store has committed what they describe. */
typedef void (*dcem_engine_line_fn)(void *ctx, const char *line, size_t len);
void dcem_engine_set_sink(dcem_engine *e, dcem_engine_line_fn fn, void *ctx);

#endif
