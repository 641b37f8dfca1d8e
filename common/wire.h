/* wire.h — the versioned agent <-> collector wire format (docs/wire-format.md):
 * MQTT topics under dcem/v1/<site>/<gateway>/, and the JSON payloads on them —
 * reading batches, cumulative acks, resend requests, birth / last will and the
 * agent's local metrics. Encoders write JSON directly into a buffer capped at
 * the payload limit; decoders validate everything a collector must not
 * trust — the batch decoder in one pass over the payload, the small ones
 * through a cJSON tree. Pure: no I/O, no clock. */
#ifndef DCEM_WIRE_H
#define DCEM_WIRE_H

#include "profile.h"
#include "site.h"

#include <stddef.h>
#include <stdint.h>

#define DCEM_WIRE_VERSION 1   /* "v" of every payload; +1 on an incompatible change */
#define DCEM_WIRE_ROOT "dcem/v1"

/* Hard limits. A decoder rejects a payload above the byte limit before
 * parsing it; an encoder refuses to produce one (DCEM_EFULL). */
#define DCEM_WIRE_MAX_PAYLOAD (1024 * 1024)  /* batch (data) payload bytes */
#define DCEM_WIRE_MAX_SMALL_PAYLOAD 65536    /* ack, ctl, state, metrics */
#define DCEM_WIRE_MAX_READINGS 10000         /* readings per batch */
#define DCEM_WIRE_MAX_VALUES (DCEM_Q_COUNT * 4) /* each (quantity, phase) once */
/* No encoded reading is longer than this (a test checks the worst case), so a
 * batch of at most DCEM_WIRE_SAFE_READINGS readings always fits the limit. */
#define DCEM_WIRE_READING_MAX_BYTES 4096
#define DCEM_WIRE_SAFE_READINGS 250
#define DCEM_WIRE_MAX_INT 9007199254740991ULL   /* 2^53 - 1: exact in JSON / cJSON */
#define DCEM_WIRE_MAX_T_MS 253402300799999LL    /* 9999-12-31T23:59:59.999Z */
#define DCEM_WIRE_TOPIC_MAX 160                  /* longest topic + NUL */
#define DCEM_WIRE_VERSION_MAX 32                 /* agent version string + NUL */

/* Leaves of a topic. Gateway topics: dcem/v1/<site>/<gateway>/<leaf>; site
 * topics: dcem/v1/<site>/<leaf>. */
typedef enum dcem_wire_leaf {
    DCEM_WIRE_DATA = 0, /* "data"    agent -> collector: batches, QoS 1 */
    DCEM_WIRE_ACK,      /* "ack"     collector -> agent: cumulative acks, QoS 1 */
    DCEM_WIRE_CTL,      /* "ctl"     collector -> agent: commands (resend), QoS 1 */
    DCEM_WIRE_STATE,    /* "state"   agent, retained: birth / last will, QoS 1 */
    DCEM_WIRE_METRICS,  /* "metrics" agent, retained: local figures, QoS 0 */
    DCEM_WIRE_ALERTS,   /* "alerts"  collector, site topic (payload defined later) */
    DCEM_WIRE_LEAF_COUNT
} dcem_wire_leaf;

/* Subscription filters of the collector (prefix data with $share/<group>/). */
#define DCEM_WIRE_FILTER_DATA DCEM_WIRE_ROOT "/+/+/data"
#define DCEM_WIRE_FILTER_STATE DCEM_WIRE_ROOT "/+/+/state"
#define DCEM_WIRE_FILTER_METRICS DCEM_WIRE_ROOT "/+/+/metrics"

/* Why a payload was rejected. Names are stable (metrics label values); codes
 * are never renumbered or reused. */
typedef enum dcem_wire_reason {
    DCEM_WIRE_OK = 0,
    DCEM_WIRE_TOO_LARGE,         /* "too_large": above the byte limit, not parsed */
    DCEM_WIRE_NOT_JSON,          /* "not_json": syntax error, truncated, NUL, trailing bytes */
    DCEM_WIRE_WRONG_TYPE,        /* "wrong_type": a field has the wrong JSON type */
    DCEM_WIRE_MISSING_FIELD,     /* "missing_field" */
    DCEM_WIRE_DUPLICATE_FIELD,   /* "duplicate_field": a key twice, or kwh/kw in values */
    DCEM_WIRE_BAD_VERSION,       /* "unsupported_version": v is not 1 */
    DCEM_WIRE_BAD_ID,            /* "bad_id": site/gateway not a valid id */
    DCEM_WIRE_SITE_MISMATCH,     /* "site_mismatch": payload site != topic site */
    DCEM_WIRE_GATEWAY_MISMATCH,  /* "gateway_mismatch": payload gateway != topic gateway */
    DCEM_WIRE_BAD_SEQ,           /* "bad_seq": epoch/seq not an integer in range */
    DCEM_WIRE_TOO_MANY_READINGS, /* "too_many_readings" */
    DCEM_WIRE_BAD_METER,         /* "bad_meter": meter id empty, too long or bad chars */
    DCEM_WIRE_BAD_TIME,          /* "bad_time": t not integer ms in 0..MAX_T_MS */
    DCEM_WIRE_BAD_QUALITY,       /* "bad_quality": unknown q, or values on comm_error */
    DCEM_WIRE_NOT_FINITE,        /* "not_finite": a value overflowed (1e999) or null */
    DCEM_WIRE_BAD_COMMAND,       /* "bad_command": unknown ctl cmd */
    DCEM_WIRE_BAD_FIELD,         /* "bad_field": any other out-of-range field */
    DCEM_WIRE_UNSIGNED,          /* "unsigned": no signature where one is required */
    DCEM_WIRE_BAD_SIGNATURE,     /* "bad_signature": a signature no key of the sender verifies */
    DCEM_WIRE_UNKNOWN_GATEWAY,   /* "unknown_gateway": a gateway its site's ledger does not list */
    DCEM_WIRE_REASON_COUNT
} dcem_wire_reason;

/* Stable name of a reason ("too_large"); "unknown" outside the enum. */
const char *dcem_wire_reason_name(int reason);

/* Reading quality, the same order as the agent's poll results. */
typedef enum dcem_wire_quality {
    DCEM_WIRE_Q_OK = 0,       /* "ok" */
    DCEM_WIRE_Q_STALE,        /* "stale": the counter has not moved for too long */
    DCEM_WIRE_Q_OUT_OF_RANGE, /* "out_of_range": a value was non-finite or implausible
                                 and is omitted */
    DCEM_WIRE_Q_COMM_ERROR,   /* "comm_error": no answer; the reading has no values */
    DCEM_WIRE_Q_COUNT
} dcem_wire_quality;

const char *dcem_wire_quality_name(int quality);

/* 1 when id[0..len) is a valid site, gateway or meter id: 1..DCEM_ID_MAX-1
 * letters, digits, '-', '_' or '.' (so never '+', '#', '/' in a topic). */
int dcem_wire_id_valid(const char *id, size_t len);

/* Writes the topic of leaf ("data", "ack", "ctl", "state", "metrics") for a
 * gateway, or of a site leaf ("alerts") when gateway is NULL. Returns 0,
 * DCEM_EINVAL for an invalid id or unknown leaf, DCEM_EFULL when buf is too
 * small (DCEM_WIRE_TOPIC_MAX always suffices). */
int dcem_wire_topic(char *buf, size_t len, const char *site, const char *gateway,
                    const char *leaf);

typedef struct dcem_wire_topic_parts {
    char site[DCEM_ID_MAX];
    char gateway[DCEM_ID_MAX]; /* "" for a site topic */
    int leaf;                  /* dcem_wire_leaf */
} dcem_wire_topic_parts;

/* Splits a received topic (len bytes, no NUL needed). Returns 0, or
 * DCEM_EINVAL when it is not a dcem/v1 topic with valid ids and a known leaf
 * at its level. */
int dcem_wire_topic_parse(const char *topic, size_t len, dcem_wire_topic_parts *out);

/* Name of a leaf ("data"); NULL outside the enum. */
const char *dcem_wire_leaf_name(int leaf);

/* One measured value other than the import counter and total power. */
typedef struct dcem_wire_value {
    int quantity; /* dcem_quantity, not DCEM_Q_SCALE_FACTOR */
    int phase;    /* 0: total or none; 1-3: L1-L3 (voltage_ll_v: L1-L2, L2-L3, L3-L1) */
    double value; /* canonical unit */
} dcem_wire_value;

/* A note on the transformer ratios of a reading ("ratio" on the wire). */
typedef enum dcem_wire_ratio_note {
    DCEM_WIRE_RATIO_FINE = 0, /* (absent) */
    DCEM_WIRE_RATIO_HELD,     /* "held": the meter's ratio register read 0 or absurd; the
                                 last good ratio is applied */
    DCEM_WIRE_RATIO_UNKNOWN,  /* "unknown": the meter refuses its ratio register and none
                                 is configured: ratio 1 is applied, maybe wrongly */
    DCEM_WIRE_RATIO_MISMATCH, /* "mismatch": the configured ratio (applied) differs from
                                 the meter's register */
    DCEM_WIRE_RATIO_NOTE_COUNT
} dcem_wire_ratio_note;

const char *dcem_wire_ratio_note_name(int note);

typedef struct dcem_wire_reading {
    char meter[DCEM_ID_MAX]; /* ledger meter id */
    int64_t t_ms;            /* UTC ms when measured (not when sent) */
    int quality;             /* dcem_wire_quality */
    int has_kwh, has_kw;
    double kwh;              /* energy import counter (energy_import_kwh, phase 0) */
    double kw;               /* total active power (power_kw, phase 0) */
    /* Transformer ratios already applied to every value (all are primary
     * side): "ct" and "pt" on the wire, left out when 1. 0 counts as 1 when
     * encoding; a decoded reading always has them (1 when absent). */
    double ct, pt;
    int ratio_note;          /* dcem_wire_ratio_note */
    dcem_wire_value values[DCEM_WIRE_MAX_VALUES];
    size_t n_values;
} dcem_wire_reading;

typedef struct dcem_wire_batch {
    char site[DCEM_ID_MAX];
    char gateway[DCEM_ID_MAX];
    uint64_t epoch;          /* 1..2^53-1: changes only when the agent's spool is lost */
    uint64_t seq;            /* 1..2^53-1: +1 per batch within an epoch */
    dcem_wire_reading *readings; /* encode: caller's array; decode: the storage given */
    size_t n_readings;
    /* decode only */
    int identified;          /* 1 once v, site, gateway, epoch and seq are valid, also
                                when a later check fails (the batch can be acked and
                                quarantined: resending the same bytes cannot succeed) */
    size_t unknown_values;   /* "values" keys of quantities this version does not know */
    size_t listed_readings;  /* elements of its "readings" array, also when a check of
                                them fails: what a quarantined batch withholds (0 when
                                "readings" is missing or not an array) */
} dcem_wire_batch;

/* The product ct * pt of a reading (0 read as 1): what its counter is
 * scaled by. A change of it between two readings of a meter is a counter
 * event (docs/figures.md). */
double dcem_wire_ratio(const dcem_wire_reading *r);

/* Encodes a batch into a new NUL-terminated buffer *json (caller frees with
 * free()) of *len bytes. Numbers are printed in the shortest form that reads
 * back to the same double. A non-finite kwh, kw or value is omitted (never
 * printed) and an "ok" reading then goes out as "out_of_range"; a comm_error
 * reading goes out without values. Returns 0; DCEM_EINVAL for an invalid id,
 * epoch/seq, time, quality, quantity, phase, or a (quantity, phase) given
 * twice or belonging in kwh/kw; DCEM_EFULL for more than
 * DCEM_WIRE_MAX_READINGS readings or more than DCEM_WIRE_MAX_PAYLOAD bytes
 * less room for a signature (DCEM_SIG_SUFFIX_LEN: every encoder leaves it,
 * so a signed payload is still within the limit) — split the batch;
 * DCEM_ENOMEM. On error *json is NULL. */
int dcem_wire_encode_batch(const dcem_wire_batch *b, char **json, size_t *len);

/* Validates and decodes a batch received on the data topic of topic_site /
 * topic_gateway (both NULL: ids are only checked for validity). Readings go
 * into storage (cap entries; pass DCEM_WIRE_MAX_READINGS, about 9 MB: allocate
 * it once and reuse it) and out->readings points there. Returns 0, or
 * DCEM_EINVAL with *reason (a dcem_wire_reason; reason may be NULL) and
 * "path: what" in err (err may be NULL). On error out->n_readings is 0 and
 * out->identified says whether epoch and seq are valid. Unknown fields are
 * ignored; unknown quantity names in values are skipped and counted in
 * out->unknown_values. It reads the payload once, building no tree, with
 * the grammar, checks, reasons and messages of the cJSON-based decoder it
 * replaced (docs/wire-format.md, "Rules for every payload"); it allocates
 * only for a number longer than 63 characters, and a failed allocation is
 * "not_json" as in cJSON (safe: such a batch is never acked and the agent
 * sends it again). No state of its own and no global: threads may decode
 * at once. */
int dcem_wire_decode_batch(const char *buf, size_t len, const char *topic_site,
                           const char *topic_gateway, dcem_wire_reading *storage, size_t cap,
                           dcem_wire_batch *out, int *reason, char *err, size_t errlen);

/* Why the collector refused to count a reading of a batch it stored (or set
 * aside) and acknowledged: reported back in the ack ("refused"). Names are
 * stable (ack keys, the agent's log); codes are never renumbered or reused. */
enum {
    DCEM_REFUSE_UNKNOWN_METER = 0, /* "unknown_meter": a meter its site's ledger does not list */
    DCEM_REFUSE_FUTURE,            /* "future": stamped beyond the collector's clock plus
                                      ingest.max_future_skew_s */
    DCEM_REFUSE_OUT_OF_RANGE,      /* "out_of_range": a value the counter rules refuse
                                      (a negative or absurd counter, say) */
    DCEM_REFUSE_WRONG_KIND,        /* "wrong_kind": a reading its meter's kind in the ledger
                                      cannot take */
    DCEM_REFUSE_QUARANTINED,       /* "quarantined": every reading of a batch set aside
                                      (identified but invalid, or refused by the store) */
    DCEM_REFUSE_TOO_OLD,           /* "too_old": late, and older than the store's retention:
                                      the readings its meter would be rebuilt from are pruned */
    DCEM_REFUSE_COUNT
};

/* "unknown_meter", ...; NULL for a code out of range. */
const char *dcem_refuse_name(int why);

/* ack: all batches of epoch with seq <= seq are durably stored (seq 0: none).
 * refused: readings of the batches this ack answers that the collector
 * refused to count, by DCEM_REFUSE_* (all 0: none, and no "refused" member
 * on the wire). An ack answers the batches stored since the collector's
 * previous ack of that epoch, so the same refusals are never reported
 * twice by one collector — but a repeated ack (a duplicate batch re-acked,
 * an ack after a reconnect) carries none. */
typedef struct dcem_wire_ack {
    uint64_t epoch, seq;
    uint32_t refused[DCEM_REFUSE_COUNT];
} dcem_wire_ack;

/* ctl commands. */
typedef enum dcem_wire_cmd {
    DCEM_WIRE_CMD_RESEND = 0, /* "resend": send again from from_seq of epoch, in order */
    DCEM_WIRE_CMD_COUNT
} dcem_wire_cmd;

typedef struct dcem_wire_ctl {
    int cmd; /* dcem_wire_cmd */
    uint64_t epoch, from_seq;
} dcem_wire_ctl;

/* state: birth (online) or last will / goodbye (offline). */
typedef struct dcem_wire_state {
    int online;
    /* online only: */
    uint64_t epoch;
    uint64_t next_seq; /* seq the next new batch gets */
    uint64_t queued;   /* batches on the spool not yet acked: seqs
                          next_seq - queued .. next_seq - 1 */
    char version[DCEM_WIRE_VERSION_MAX]; /* agent version: printable ASCII, no '"' or '\' */
} dcem_wire_state;

/* Why the agent dropped data before its spool (metrics "dropped"). Names
 * are stable; codes are never renumbered or reused. */
typedef enum dcem_wire_drop {
    DCEM_WIRE_DROP_QUEUE_FULL = 0,     /* "queue_full": readings; the queue from the pollers
                                          to the spool was full (oldest dropped) */
    DCEM_WIRE_DROP_SPOOL_FULL_BATCHES, /* "spool_full_batches": whole batches dropped,
                                          oldest first, from a full spool */
    DCEM_WIRE_DROP_ENCODE,             /* "encode": readings of a batch the encoder refused */
    DCEM_WIRE_DROP_TOO_LARGE,          /* "too_large": readings of a batch larger than the
                                          spool can ever hold */
    DCEM_WIRE_DROP_SPOOL_ERROR,        /* "spool_error": readings not written at stop because
                                          the spool failed */
    DCEM_WIRE_DROP_COUNT
} dcem_wire_drop;

/* "queue_full", ...; NULL for a code out of range. */
const char *dcem_wire_drop_name(int drop);

/* The agent's own figures over one interval, for local display only: the
 * collector computes compliance figures from the readings, never from these. */
typedef struct dcem_wire_metrics {
    char site[DCEM_ID_MAX];
    char gateway[DCEM_ID_MAX];
    int64_t start_ms, end_ms;          /* [start, end) UTC */
    double role_kwh[DCEM_ROLE_COUNT];  /* interval energy by meter role; NAN: no meter */
    double pue;                        /* NAN: undefined (no IT energy) */
    double green_share;                /* NAN: undefined */
    double completeness;               /* 0..1; NAN: unknown */
    /* Optional: what the agent dropped before its spool since it started,
     * by dcem_wire_drop (a reason absent on the wire reads as 0; unknown
     * reasons are ignored). has_dropped 0: not sent. */
    int has_dropped;
    uint64_t dropped[DCEM_WIRE_DROP_COUNT]; /* each <= DCEM_WIRE_MAX_INT */
    /* Optional: the readings the collector refused to count since the agent
     * started, by DCEM_REFUSE_* (added up from its acks; same rules as
     * dropped). has_refused 0: not sent. */
    int has_refused;
    uint64_t refused[DCEM_REFUSE_COUNT]; /* each <= DCEM_WIRE_MAX_INT */
} dcem_wire_metrics;

/* Encoders of the small payloads: same contract as dcem_wire_encode_batch
 * (DCEM_EINVAL for values outside the ranges documented above). */
int dcem_wire_encode_ack(const dcem_wire_ack *a, char **json, size_t *len);
int dcem_wire_encode_ctl(const dcem_wire_ctl *c, char **json, size_t *len);
int dcem_wire_encode_state(const dcem_wire_state *s, char **json, size_t *len);
int dcem_wire_encode_metrics(const dcem_wire_metrics *m, char **json, size_t *len);

/* Decoders of the small payloads: same contract as dcem_wire_decode_batch,
 * with the limit DCEM_WIRE_MAX_SMALL_PAYLOAD. A ctl with an unknown cmd is
 * DCEM_EINVAL / DCEM_WIRE_BAD_COMMAND (an older agent ignores it). They
 * build a cJSON tree: a failed allocation is "not_json", and cJSON writes
 * its last error position to a global (a benign race when several threads
 * decode at once). */
int dcem_wire_decode_ack(const char *buf, size_t len, dcem_wire_ack *out, int *reason,
                         char *err, size_t errlen);
int dcem_wire_decode_ctl(const char *buf, size_t len, dcem_wire_ctl *out, int *reason,
                         char *err, size_t errlen);
int dcem_wire_decode_state(const char *buf, size_t len, dcem_wire_state *out, int *reason,
                           char *err, size_t errlen);
int dcem_wire_decode_metrics(const char *buf, size_t len, const char *topic_site,
                             const char *topic_gateway, dcem_wire_metrics *out, int *reason,
                             char *err, size_t errlen);

#endif
