/* backlog.h — the InfluxDB writer's on-disk backlog: batches of line
 * protocol that could not be written while InfluxDB was unreachable, kept
 * in order across restarts under a hard cap (drop-oldest, counted), and
 * handed back oldest first when it answers again. */
#ifndef DCEM_INFLUX_BACKLOG_H
#define DCEM_INFLUX_BACKLOG_H

#include <stddef.h>
#include <stdint.h>

/*
 * Directory layout (docs/influxdb.md, "Backlog"):
 *   b-<20-digit seq>.lp          one batch per file, seq increasing
 *   b-<20-digit seq>.lp.tmp      a batch being written (deleted at open, as is
 *                                the b-<seq>.tmp of earlier versions)
 *   b-<20-digit seq>.lp.corrupt  a batch that failed its checks, set aside
 *                                (earlier versions: b-<seq>.corrupt)
 *   backlog.lock                 fcntl lock: one process per backlog
 *
 * A file is one record of the common queue module (common/queue/qrec.h),
 * a 32-byte header (integers little-endian) and the body:
 *   off len  field
 *     0   4  magic "DCIB"
 *     4   1  version (1)
 *     5   3  reserved (0)
 *     8   4  body length, <= DCEM_BACKLOG_MAX_BODY
 *    12   4  lines in the body
 *    16   8  seq (equals the file name's)
 *    24   4  reserved (0)
 *    28   4  CRC-32 (zlib) over bytes 0..27 and then the body
 *    32   n  body: line protocol, each line ending in '\n'
 * Written as .tmp, fdatasynced, renamed, directory fsynced: a batch is
 * either whole on disk or absent. Sent batches are unlinked without a
 * directory sync; one that reappears after a crash is sent again, which
 * InfluxDB absorbs (a point with the same series and time is overwritten
 * with the same values).
 */
#define DCEM_BACKLOG_HEADER 32u
#define DCEM_BACKLOG_MAX_BODY (64u << 20) /* a corrupt length never allocates more */
#define DCEM_BACKLOG_MAX_ASIDE 8u         /* *.corrupt files kept; beyond, deleted (qdir.h's cap) */

typedef struct dcem_backlog dcem_backlog;

typedef struct dcem_backlog_stat {
    uint64_t batches, lines, bytes;          /* held now; bytes include headers */
    uint64_t dropped_batches, dropped_lines; /* drop-oldest at a cap, since open */
    uint64_t corrupt;                        /* files set aside or deleted as bad, since open */
} dcem_backlog_stat;

/* Opens (creating it and its parents if missing) the backlog in dir and
 * indexes what is there: *.tmp files are deleted, files with a bad header
 * or a size that disagrees with it are set aside. max_bytes (headers
 * included) and max_batches are hard caps. Returns 0 with *out (free with
 * dcem_backlog_close); DCEM_EINVAL for a cap of 0; DCEM_ESTORAGE when the
 * directory cannot be created or read, or another process holds its lock;
 * DCEM_ENOMEM. Detail goes to err. */
int dcem_backlog_open(const char *dir, uint64_t max_bytes, uint64_t max_batches, dcem_backlog **out,
                      char *err, size_t errlen);

/* Releases the lock and frees; batches stay on disk. NULL accepted. */
void dcem_backlog_close(dcem_backlog *b);

/* Appends a batch (body copied to disk; lines as counted by the caller).
 * When held bytes or batches would pass a cap, the oldest batches are
 * deleted first and counted as dropped. Returns 0 when the batch is on
 * stable storage; DCEM_ERANGE when it can never fit (larger than max_bytes
 * or DCEM_BACKLOG_MAX_BODY: nothing dropped); DCEM_ESTORAGE when writing
 * failed (nothing added; detail in dcem_backlog_error). */
int dcem_backlog_push(dcem_backlog *b, const char *body, size_t len, uint32_t lines);

/* Copies the i-th oldest held batch (0: the oldest) into buf. A batch whose
 * file is missing, unreadable or fails its CRC is set aside, counted in
 * corrupt, and the next one takes its place. Returns 0 with *len and
 * *lines; DCEM_ENOTFOUND when fewer than i + 1 batches are held; DCEM_ERANGE
 * when cap is smaller than the body (*len set to its size, nothing copied). */
int dcem_backlog_read(dcem_backlog *b, size_t i, char *buf, size_t cap, size_t *len,
                      uint32_t *lines);

/* Deletes the n oldest batches (fewer if fewer are held): they were sent. */
void dcem_backlog_pop(dcem_backlog *b, size_t n);

/* Number of batches held. */
size_t dcem_backlog_count(const dcem_backlog *b);

void dcem_backlog_stats(const dcem_backlog *b, dcem_backlog_stat *st);

/* Detail of the last failure ("" if none); owned by b. */
const char *dcem_backlog_error(const dcem_backlog *b);

#endif
