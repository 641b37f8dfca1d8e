/* spool.h — the agent's on-disk spool: every batch is appended here (with a
 * CRC) before it is published, and leaves the disk only when the COLLECTOR
 * acknowledges it, so broker, network or power loss loses nothing. */
#ifndef DCEM_SPOOL_H
#define DCEM_SPOOL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Directory layout (docs/spool.md has the full story):
 *   seg-<20-digit id>.log   segments, appended in id order; rotated past
 *                           segment_bytes; deleted when no held record is left
 *   spool.meta              epoch, acked_seq, gone_seq, next_seq (below)
 *   spool.lock              fcntl lock: one process per spool
 *   *.corrupt               segments or metadata set aside by recovery
 *
 * Record (all integers little-endian), 32-byte header then the payload (a
 * record of the common queue module, common/queue/qrec.h):
 *   off len  field
 *     0   4  magic "DCSP"
 *     4   1  version (1)
 *     5   1  flags (written 0, ignored on read)
 *     6   2  reserved (0)
 *     8   4  payload length, <= DCEM_SPOOL_MAX_PAYLOAD
 *    12   8  epoch
 *    20   8  seq
 *    28   4  CRC-32 (zlib) over bytes 0..27 and then the payload
 *    32   n  payload
 *
 * Metadata (44 bytes, replaced by temp -> fsync -> rename -> fsync dir):
 *   magic "DCSM", version 1, 3 zero bytes, epoch, acked_seq, gone_seq (every
 *   seq <= gone_seq of this epoch was acked or dropped), next_seq, CRC-32 of
 *   bytes 0..39.
 */
#define DCEM_SPOOL_HEADER_BYTES 32u
#define DCEM_SPOOL_MAX_PAYLOAD (1u << 20) /* a corrupt length never allocates more */
#define DCEM_SPOOL_MAX_SEGMENT (64u << 20)
#define DCEM_SPOOL_MAX_ASIDE 8u /* *.corrupt files kept; beyond, damaged data is not copied */
/* Epochs and seqs go on the wire, which carries integers up to 2^53 - 1
 * (docs/wire-format.md). A record holding one at or above that is corrupt;
 * so is a segment whose epoch or last seq is DCEM_SPOOL_MAX_ID - 1 or more,
 * and metadata whose epoch is, or whose next seq reaches the limit: there
 * must be room for the next seq and for a new epoch above every epoch on
 * disk, so that the spool never hands out a number it refuses to read back
 * and the agent cannot publish (it would drop every new batch). */
#define DCEM_SPOOL_MAX_ID 9007199254740991ULL

enum {
    DCEM_SPOOL_FSYNC_ALWAYS = 0,   /* fdatasync every append (and every ack's metadata) */
    DCEM_SPOOL_FSYNC_INTERVAL = 1, /* caller calls dcem_spool_sync() periodically */
    DCEM_SPOOL_FSYNC_NEVER = 2,    /* no fsync at all: survives a process crash, not power loss */
};

/* Why the current epoch is what it is (dcem_spool_stat.epoch_reason). */
enum {
    DCEM_SPOOL_EPOCH_RESUMED = 0,   /* read from intact metadata */
    DCEM_SPOOL_EPOCH_CREATED = 1,   /* empty directory: a new spool */
    DCEM_SPOOL_EPOCH_META_LOST = 2, /* metadata missing, corrupt or older than the records */
    DCEM_SPOOL_EPOCH_UNCERTAIN = 3, /* newest segment ended in corrupt data: next seq unknown */
};

typedef struct dcem_spool_opts {
    uint64_t max_bytes;     /* hard cap on held records, headers included; 0 = 64 MiB */
    uint64_t segment_bytes; /* rotate past this; 0 = 1 MiB; 64 B .. DCEM_SPOOL_MAX_SEGMENT */
    int fsync;              /* DCEM_SPOOL_FSYNC_* */
} dcem_spool_opts;

typedef struct dcem_spool_stat {
    uint64_t epoch;       /* current epoch: new appends carry it */
    uint64_t next_seq;    /* seq the next append must carry */
    uint64_t acked_seq;   /* current epoch: collector has every seq <= this */
    uint64_t durable_seq; /* current epoch: highest seq readable (on stable storage) */
    uint64_t first_seq;   /* current epoch: the oldest seq held, durable or not (next_seq
                             when none): what a birth says is still there */
    uint64_t records;     /* held: appended, not acked, not dropped (all epochs) */
    uint64_t bytes;       /* their size on disk, headers included (<= max_bytes) */
    uint64_t disk_bytes;  /* all segment files, acked prefixes included */
    uint64_t segments;    /* segment files */
    uint64_t oldest_epoch, oldest_seq; /* oldest held record; 0, 0 when none */
    uint64_t old_epoch_records;        /* held records of earlier epochs */
    int epoch_reason;                  /* DCEM_SPOOL_EPOCH_* for this open */
    /* Since open: */
    uint64_t dropped_records, dropped_bytes; /* drop-oldest at max_bytes */
    uint64_t rejected_acks;                  /* wrong epoch or future seq, ignored */
    uint64_t truncated_bytes;                /* torn tail cut off at open */
    uint64_t corrupt_segments;               /* segments set aside (copy kept as *.corrupt) */
    uint64_t corrupt_bytes;                  /* bytes of them not carried over */
    uint64_t aside_discarded; /* no *.corrupt copy kept: DCEM_SPOOL_MAX_ASIDE already there */
} dcem_spool_stat;

typedef struct dcem_spool dcem_spool;

/* Position of a record handed out by dcem_spool_read. */
typedef struct dcem_spool_rec {
    uint64_t epoch, seq;
    size_t len; /* payload bytes */
} dcem_spool_rec;

/* Opens (creating if missing, parents included) the spool in `dir` and
 * recovers it: a torn tail is truncated, a segment with corrupt records is
 * copied to *.corrupt and rewritten with its valid records, missing or
 * corrupt metadata starts a new epoch (max(now_s, newest epoch on disk + 1))
 * and the old records stay held under their own epoch. `opts` may be NULL
 * (defaults). now_s is the wall clock, used only to label a new epoch.
 * On success *out is a handle freed with dcem_spool_close. Returns 0;
 * DCEM_EINVAL for bad opts; DCEM_ESTORAGE when the directory, lock or
 * metadata cannot be created or written (also when another process holds
 * the spool); DCEM_ENOMEM. Detail goes to err. Corrupt data is never fatal. */
int dcem_spool_open(const char *dir, const dcem_spool_opts *opts, int64_t now_s, dcem_spool **out,
                    char *err, size_t errlen);

/* Flushes (as dcem_spool_sync; FSYNC_NEVER only persists the metadata),
 * releases the lock and frees. NULL accepted. */
void dcem_spool_close(dcem_spool *sp);

/* The epoch and seq the next batch must carry: encode them into the payload,
 * then append. */
uint64_t dcem_spool_epoch(const dcem_spool *sp);
uint64_t dcem_spool_next_seq(const dcem_spool *sp);

/* Appends one batch (payload copied; len may be 0). seq must equal
 * dcem_spool_next_seq. If the held records would exceed max_bytes, the
 * oldest are dropped first (whole records, counted in dropped_records).
 * With FSYNC_ALWAYS the record is on stable storage when this returns.
 * Returns 0; DCEM_EINVAL (wrong seq); DCEM_ERANGE (payload over
 * DCEM_SPOOL_MAX_PAYLOAD or a record larger than max_bytes: never fits);
 * DCEM_ESTORAGE (write/sync failed: nothing appended, retry the same seq). */
int dcem_spool_append(dcem_spool *sp, uint64_t seq, const void *payload, size_t len);

/* Copies into buf the first held record at or after position (epoch, seq),
 * in spool order: older epochs first, then by seq. (0, 0) is the oldest.
 * Records of the current epoch past durable_seq are not handed out (a batch
 * is published only once it is on disk). Continue with (rec.epoch, rec.seq + 1);
 * rec.seq > seq in the same epoch means records in between were acked,
 * dropped or lost to corruption. The CRC is checked: a corrupt record is
 * never returned (its segment is set aside and the next one is served).
 * Returns 0; DCEM_ENOTFOUND when there is none; DCEM_ERANGE when cap is
 * smaller than the payload (rec filled, nothing copied); DCEM_ESTORAGE. */
int dcem_spool_read(dcem_spool *sp, uint64_t epoch, uint64_t seq, void *buf, size_t cap,
                    dcem_spool_rec *rec);

/* Cumulative collector ack: every record of `epoch` with seq <= `seq` is
 * durably stored and may go. Metadata is written (ALWAYS, NEVER) or marked
 * for the next dcem_spool_sync (INTERVAL); emptied segments are deleted only
 * after that metadata write. An ack at or below acked_seq is a no-op.
 * Returns 0; DCEM_ERANGE when ignored (an epoch the spool does not hold, or a
 * seq not yet appended; counted in rejected_acks); DCEM_ESTORAGE when the
 * metadata write failed (the ack is kept in memory and retried). */
int dcem_spool_ack(dcem_spool *sp, uint64_t epoch, uint64_t seq);

/* fdatasyncs the open segment, the directory and pending metadata, deletes
 * acked segments, and advances durable_seq to the last append. Any policy.
 * Returns 0 or DCEM_ESTORAGE. */
int dcem_spool_sync(dcem_spool *sp);

/* Fills *st with the figures and counters above (never fails). */
void dcem_spool_stats(const dcem_spool *sp, dcem_spool_stat *st);

/* Detail of the last failure on this handle ("" if none); owned by sp. */
const char *dcem_spool_error(const dcem_spool *sp);

#endif
