/* spool.c — append-only segments of CRC'd records, a small metadata file
 * replaced atomically, and the recovery that makes both trustworthy again
 * after a crash. The record and metadata layouts are in spool.h; the record
 * codec, the scanner recovery runs and the directory (lock, whole-file writes,
 * set-aside) are the common queue module's (common/queue). */
#include "spool.h"

#include "errors.h"
#include "qdir.h"
#include "qrec.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define HDR ((uint64_t)DCEM_SPOOL_HEADER_BYTES)
#define META_BYTES 44u
#define REC_VERSION 1u
#define META_VERSION 1u
#define DEFAULT_MAX_BYTES (64ull << 20)
#define DEFAULT_SEGMENT_BYTES (1ull << 20)
#define MIN_BYTES 64u
/* Largest segment file recovery reads: a full segment plus one record. A
 * larger file is not one of ours: it is set aside unread. */
#define MAX_SEGMENT_FILE ((uint64_t)DCEM_SPOOL_MAX_SEGMENT + HDR + DCEM_SPOOL_MAX_PAYLOAD)
#define NAME_CAP DCEM_QDIR_NAME_MAX
#define META_NAME "spool.meta"
#define META_TMP "spool.meta.tmp"
#define LOCK_NAME "spool.lock"
#define SEG_PREFIX "seg-"
#define SEG_SUFFIX ".log"

_Static_assert(DCEM_SPOOL_MAX_ASIDE == DCEM_QDIR_MAX_ASIDE, "one set-aside cap");
_Static_assert(DCEM_SPOOL_HEADER_BYTES == DCEM_QREC_HEADER, "the queue's record header");

static const uint8_t meta_magic[4] = {'D', 'C', 'S', 'M'};

/* One segment file. Records in it share one epoch and have increasing seqs;
 * those at or below `floor` are acked or dropped and lie before `head`. */
/* The largest epoch a spool reopens (its metadata refuses more: an epoch
 * must leave room for a new one the wire can carry). */
#define EPOCH_MAX (DCEM_SPOOL_MAX_ID - 2)

typedef struct seg {
    uint64_t id;
    uint64_t epoch;
    uint64_t floor;
    uint64_t size;      /* file length: whole valid records only */
    uint64_t head;      /* offset of the first held record; size when none */
    uint64_t first_seq; /* seq at head when count > 0 */
    uint64_t last_seq;  /* seq of the last record in the file */
    uint64_t count;     /* held records (all of them lie in head..size) */
} seg;

struct dcem_spool {
    dcem_qdir dir; /* the directory, its lock, set-aside files */
    int policy;
    uint64_t max_bytes, segment_bytes;

    uint64_t epoch, acked, gone, next_seq, durable;
    int meta_dirty; /* acked/gone/next_seq changed since the metadata was written */
    int dir_dirty;  /* a segment was created and the directory not fsynced (INTERVAL) */
    int tail_dirty; /* appended and not fdatasynced (INTERVAL) */
    int repairing;  /* a segment repair is running: a second failure is an error */

    seg *segs; /* oldest first */
    size_t nsegs, capsegs;
    uint64_t next_id;

    int wfd; /* the newest segment, open for appending, or -1 */
    uint64_t wfd_id;
    int rfd; /* one segment open for reading, or -1 */
    uint64_t rfd_id;

    /* Read cursor: in segment cur_id the record at cur_off is the first one
     * with seq >= cur_min, so sequential reads do not rescan the segment. */
    int cur_ok;
    uint64_t cur_id, cur_off, cur_min;

    uint8_t *buf; /* one payload, for recovery and salvage (DCEM_SPOOL_MAX_PAYLOAD) */
    dcem_spool_stat st; /* the counters part */
    char err[256];
};

/* ---- small helpers ---------------------------------------------------------------------- */

static int fail(dcem_spool *sp, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(dcem_spool *sp, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sp->err, sizeof sp->err, fmt, ap);
    va_end(ap);
    return code;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* Whether to fsync: unless the policy is NEVER (or `force`). */
static int syncing(const dcem_spool *sp, int force)
{
    return sp->policy != DCEM_SPOOL_FSYNC_NEVER || force;
}

static void seg_name(char *buf, size_t cap, uint64_t id)
{
    dcem_qdir_name(buf, cap, SEG_PREFIX, id, SEG_SUFFIX);
}

/* ---- records (the layout is common/queue/qrec.h's) ------------------------------------- */

typedef struct rhdr {
    uint32_t len;
    uint64_t epoch, seq;
} rhdr;

/* Out of the wire's range (see DCEM_SPOOL_MAX_ID): never written by us. */
static int rec_check(const uint8_t *h)
{
    uint64_t epoch = dcem_le_get64(h + 12), seq = dcem_le_get64(h + 20);
    return !epoch || epoch >= DCEM_SPOOL_MAX_ID || seq >= DCEM_SPOOL_MAX_ID ? -1 : 0;
}

/* A segment's records share one epoch and have increasing seqs from 1. */
static int rec_follows(const uint8_t *prev, const uint8_t *h)
{
    uint64_t seq = dcem_le_get64(h + 20);
    if (!prev) return seq >= 1 ? DCEM_QREC_NEXT : DCEM_QREC_APART;
    uint64_t last = dcem_le_get64(prev + 20);
    if (dcem_le_get64(h + 12) != dcem_le_get64(prev + 12) || seq <= last) return DCEM_QREC_APART;
    return seq == last + 1 ? DCEM_QREC_NEXT : DCEM_QREC_LATER;
}

static const dcem_qrec_fmt rec_fmt = {
    .magic = {'D', 'C', 'S', 'P'},
    .version = REC_VERSION,
    .max_payload = DCEM_SPOOL_MAX_PAYLOAD,
    .check = rec_check,
    .follows = rec_follows,
};

static void rec_encode(uint8_t *h, uint32_t len, uint64_t epoch, uint64_t seq, const void *payload)
{
    memset(h, 0, HDR);
    dcem_le_put64(h + 12, epoch);
    dcem_le_put64(h + 20, seq);
    dcem_qrec_encode(&rec_fmt, h, payload, len);
}

/* Checks what the header alone can tell: magic, version, length and id bounds. */
static int rec_parse(const uint8_t *h, rhdr *r)
{
    if (dcem_qrec_parse(&rec_fmt, h, &r->len)) return -1;
    r->epoch = dcem_le_get64(h + 12);
    r->seq = dcem_le_get64(h + 20);
    return 0;
}

/* ---- segment recovery ------------------------------------------------------------------- */

typedef struct scan {
    uint64_t fsize;
    uint64_t epoch, first_seq, last_seq, nrec; /* of the valid records */
    uint64_t valid_bytes, valid_end;
    int bad_mid, bad_tail, tail_torn; /* as in dcem_qrec_scanned */
} scan;

/* Where a salvage copies the valid records of a segment. */
typedef struct salvage {
    dcem_spool *sp;
    int fd;
    uint64_t off;
    int failed;
} salvage;

static int salvage_record(void *ctx, const uint8_t *h, const void *payload, uint32_t len)
{
    salvage *sv = ctx;
    if (dcem_qdir_pwrite(sv->fd, h, HDR, sv->off) ||
        dcem_qdir_pwrite(sv->fd, payload, len, sv->off + HDR)) {
        sv->failed = 1;
        return fail(sv->sp, DCEM_ESTORAGE, "%s: salvage write: %s", sv->sp->dir.path,
                    strerror(errno));
    }
    sv->off += HDR + len;
    return 0;
}

/* Validates every record of the segment open on fd (dcem_qrec_scan with the
 * spool's rules: same epoch, larger seq). With outfd >= 0 the valid records
 * are copied there (salvage). */
static int scan_segment(dcem_spool *sp, int fd, uint64_t fsize, int outfd, scan *sc)
{
    dcem_qrec_reader rd = dcem_qdir_reader(fd);
    salvage sv = {.sp = sp, .fd = outfd};
    dcem_qrec_sink sink = {.record = salvage_record, .ctx = &sv};
    dcem_qrec_scanned q;
    int rc = dcem_qrec_scan(&rec_fmt, &rd, fsize, sp->buf, DCEM_SPOOL_MAX_PAYLOAD,
                            outfd >= 0 ? &sink : NULL, &q);
    if (rc) return sv.failed ? rc : fail(sp, rc, "%s: read: %s", sp->dir.path, strerror(errno));
    *sc = (scan){.fsize = fsize, .nrec = q.nrec, .valid_bytes = q.valid_bytes,
                 .valid_end = q.valid_end, .bad_mid = q.bad_mid, .bad_tail = q.bad_tail,
                 .tail_torn = q.tail_torn};
    if (q.nrec) {
        sc->epoch = dcem_le_get64(q.first + 12);
        sc->first_seq = dcem_le_get64(q.first + 20);
        sc->last_seq = dcem_le_get64(q.last + 20);
    }
    return 0;
}

/* Moves a file out of the way, to *.corrupt (deleted at the cap). */
static int set_aside(dcem_spool *sp, const char *name)
{
    return dcem_qdir_set_aside(&sp->dir, name, syncing(sp, 0));
}

/* Recovers segment `id`: validates it; a torn tail (only allowed when
 * `newest`: the one segment an append can have been cut off in) is truncated;
 * any other invalid bytes make it corrupt: a copy goes to *.corrupt and the
 * segment is rewritten with its valid records (before and after the damage),
 * temp -> fsync -> rename. *uncertain: the newest segment ended in invalid
 * data that is not a cut-off append, so its last seq is unknown. A segment
 * that cannot be ours (too large, or out of order after prev_*) is set
 * aside whole and *kept is 0. */
static int seg_recover(dcem_spool *sp, uint64_t id, int newest, uint64_t prev_epoch,
                       uint64_t prev_last, scan *sc, int *uncertain, int *kept)
{
    char name[NAME_CAP], tmp[NAME_CAP + 8];
    seg_name(name, sizeof name, id);
    *kept = 0;
    memset(sc, 0, sizeof *sc);
    int fd = openat(sp->dir.fd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0) return fail(sp, DCEM_ESTORAGE, "%s/%s: %s", sp->dir.path, name, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return fail(sp, DCEM_ESTORAGE, "%s/%s: %s", sp->dir.path, name, strerror(errno));
    }
    uint64_t fsize = (uint64_t)st.st_size;
    int rc = 0;
    if (fsize > MAX_SEGMENT_FILE) {
        close(fd);
        sp->st.corrupt_segments++;
        sp->st.corrupt_bytes += fsize;
        return set_aside(sp, name);
    }
    rc = scan_segment(sp, fd, fsize, -1, sc);
    if (rc) goto out;
    if (sc->nrec && (sc->epoch < prev_epoch ||
                     (sc->epoch == prev_epoch && sc->first_seq <= prev_last))) {
        close(fd);
        sp->st.corrupt_segments++;
        sp->st.corrupt_bytes += fsize;
        return set_aside(sp, name);
    }
    /* No room above its epoch or its last seq: a new epoch, or the next
     * seq, would be a number the spool refuses when read back (and the wire
     * cannot carry). Never written by us (fuzz_spool found one: corpus
     * regress-epoch-without-room). */
    if (sc->nrec &&
        (sc->epoch >= DCEM_SPOOL_MAX_ID - 1 || sc->last_seq >= DCEM_SPOOL_MAX_ID - 1)) {
        close(fd);
        sp->st.corrupt_segments++;
        sp->st.corrupt_bytes += fsize;
        return set_aside(sp, name);
    }
    *kept = 1;
    if (!sc->bad_mid && !sc->bad_tail) goto out;
    if (!sc->bad_mid && newest && sc->tail_torn) {
        /* redis aof-load-truncated: the last append never completed, so it
         * was never reported, never published: cut it off */
        if (ftruncate(fd, (off_t)sc->valid_end) || (syncing(sp, 0) && fsync(fd))) {
            rc = fail(sp, DCEM_ESTORAGE, "%s/%s: truncate: %s", sp->dir.path, name, strerror(errno));
            goto out;
        }
        sp->st.truncated_bytes += fsize - sc->valid_end;
        sc->fsize = sc->valid_end;
        goto out;
    }
    if (newest && sc->bad_tail && !sc->tail_torn) *uncertain = 1;
    rc = dcem_qdir_copy_aside(&sp->dir, fd, fsize, name, sp->buf, DCEM_SPOOL_MAX_PAYLOAD,
                              syncing(sp, 0));
    if (rc) goto out;
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int out;
    if ((rc = dcem_qdir_tmp_create(&sp->dir, tmp, &out))) goto out;
    rc = scan_segment(sp, fd, fsize, out, sc);
    if (rc) {
        close(out);
        unlinkat(sp->dir.fd, tmp, 0);
        goto out;
    }
    if ((rc = dcem_qdir_tmp_commit(&sp->dir, out, tmp, name, syncing(sp, 0)))) goto out;
    sp->st.corrupt_segments++;
    sp->st.corrupt_bytes += fsize - sc->valid_bytes;
    sc->fsize = sc->valid_bytes;
out:
    close(fd);
    return rc;
}

/* ---- metadata --------------------------------------------------------------------------- */

typedef struct meta {
    uint64_t epoch, acked, gone, next_seq;
} meta;

enum { META_OK = 0, META_MISSING = 1, META_CORRUPT = 2 };

static int meta_read(dcem_spool *sp, meta *m)
{
    int fd = openat(sp->dir.fd, META_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return META_MISSING;
        return fail(sp, DCEM_ESTORAGE, "%s/" META_NAME ": %s", sp->dir.path, strerror(errno));
    }
    uint8_t b[META_BYTES + 1];
    int64_t n = dcem_qdir_pread(fd, b, sizeof b, 0);
    close(fd);
    if (n != META_BYTES || memcmp(b, meta_magic, 4) || b[4] != META_VERSION ||
        dcem_le_get32(b + 40) != dcem_qrec_crc32(0, b, 40))
        return META_CORRUPT;
    m->epoch = dcem_le_get64(b + 8);
    m->acked = dcem_le_get64(b + 16);
    m->gone = dcem_le_get64(b + 24);
    m->next_seq = dcem_le_get64(b + 32);
    if (!m->epoch || m->acked > m->gone || m->next_seq <= m->gone) return META_CORRUPT;
    /* room for one more: a new epoch above it, the next seq, both readable */
    if (m->epoch >= DCEM_SPOOL_MAX_ID - 1 || m->next_seq >= DCEM_SPOOL_MAX_ID) return META_CORRUPT;
    return META_OK;
}

/* Replaces the metadata: temp -> fsync -> rename -> fsync dir (no fsync
 * under FSYNC_NEVER unless forced). */
static int meta_write(dcem_spool *sp, int force)
{
    uint8_t b[META_BYTES] = {0};
    memcpy(b, meta_magic, 4);
    b[4] = META_VERSION;
    dcem_le_put64(b + 8, sp->epoch);
    dcem_le_put64(b + 16, sp->acked);
    dcem_le_put64(b + 24, sp->gone);
    dcem_le_put64(b + 32, sp->next_seq);
    dcem_le_put32(b + 40, dcem_qrec_crc32(0, b, 40));
    int rc = dcem_qdir_write_file(&sp->dir, META_NAME, b, sizeof b, NULL, 0, syncing(sp, force));
    if (rc) return rc;
    sp->meta_dirty = 0;
    return 0;
}

/* ---- segments at run time --------------------------------------------------------------- */

static int read_fd(dcem_spool *sp, size_t i)
{
    if (sp->rfd >= 0 && sp->rfd_id == sp->segs[i].id) return sp->rfd;
    close_fd(&sp->rfd);
    char name[NAME_CAP];
    seg_name(name, sizeof name, sp->segs[i].id);
    sp->rfd = openat(sp->dir.fd, name, O_RDONLY | O_CLOEXEC);
    if (sp->rfd < 0) return fail(sp, DCEM_ESTORAGE, "%s/%s: %s", sp->dir.path, name, strerror(errno));
    sp->rfd_id = sp->segs[i].id;
    return sp->rfd;
}

/* Reads and checks the header at off of segs[i] (not the CRC). Returns 0;
 * 1 when it does not check out (the file changed under us); DCEM_ESTORAGE. */
static int seg_hdr(dcem_spool *sp, size_t i, uint64_t off, uint8_t *h, rhdr *r)
{
    const seg *s = &sp->segs[i];
    int fd = read_fd(sp, i);
    if (fd < 0) return fd;
    if (off + HDR > s->size) return 1;
    int64_t n = dcem_qdir_pread(fd, h, HDR, off);
    if (n < 0) return fail(sp, DCEM_ESTORAGE, "%s: read: %s", sp->dir.path, strerror(errno));
    if ((uint64_t)n < HDR || rec_parse(h, r) || off + HDR + r->len > s->size ||
        r->epoch != s->epoch)
        return 1;
    return 0;
}

static int seg_advance(dcem_spool *sp, size_t i, uint64_t upto);

/* A record of segs[i] failed its check after open (the medium changed under
 * us): salvage the segment as recovery does and re-derive its state. The
 * metadata is rewritten so that next_seq survives a restart even if the
 * newest records were the ones lost. */
static int seg_repair(dcem_spool *sp, size_t i)
{
    seg *s = &sp->segs[i];
    if (sp->repairing)
        return fail(sp, DCEM_ESTORAGE, "%s: segment %" PRIu64 " still invalid after repair",
                    sp->dir.path, s->id);
    if (sp->wfd >= 0 && sp->wfd_id == s->id) {
        if (sp->tail_dirty && fdatasync(sp->wfd) == 0) sp->tail_dirty = 0;
        close_fd(&sp->wfd);
    }
    if (sp->rfd_id == s->id) close_fd(&sp->rfd);
    sp->cur_ok = 0;
    scan sc;
    int unc = 0, kept = 0;
    int rc = seg_recover(sp, s->id, 0, 0, 0, &sc, &unc, &kept);
    if (rc) return rc;
    s->head = 0;
    s->size = kept ? sc.fsize : 0;
    s->count = kept && sc.epoch == s->epoch ? sc.nrec : 0;
    s->first_seq = sc.first_seq;
    if (s->count) s->last_seq = sc.last_seq;
    else s->head = s->size;
    sp->repairing = 1;
    rc = seg_advance(sp, i, s->floor);
    sp->repairing = 0;
    if (rc) return rc;
    sp->meta_dirty = 1;
    return sp->epoch ? meta_write(sp, 0) : 0; /* during open, recovery writes it */
}

/* Removes the held record at the head of segs[i]: *nbytes and *seq say what
 * went (0 when a repair found nothing left). */
static int seg_pop(dcem_spool *sp, size_t i, uint64_t *nbytes, uint64_t *seq)
{
    *nbytes = *seq = 0;
    for (int attempt = 0;; attempt++) {
        seg *s = &sp->segs[i];
        if (!s->count) return 0;
        uint8_t h[HDR];
        rhdr r = {0}, r2 = {0};
        int rc = seg_hdr(sp, i, s->head, h, &r);
        if (rc == 0 && r.seq != s->first_seq) rc = 1;
        uint64_t next = s->head + HDR + (rc ? 0 : r.len), nseq = 0;
        if (rc == 0 && s->count > 1) {
            rc = seg_hdr(sp, i, next, h, &r2);
            if (rc == 0 && r2.seq <= r.seq) rc = 1;
            nseq = r2.seq;
        }
        if (rc == 0) {
            s->head = next;
            s->count--;
            s->first_seq = nseq;
            if (r.seq > s->floor) s->floor = r.seq;
            *nbytes = HDR + r.len;
            *seq = r.seq;
            return 0;
        }
        if (rc < 0) return rc;
        if (attempt)
            return fail(sp, DCEM_ESTORAGE, "%s: segment %" PRIu64 " still invalid after repair",
                        sp->dir.path, s->id);
        rc = seg_repair(sp, i);
        if (rc) return rc;
    }
}

/* Forgets the records of segs[i] with seq <= upto. */
static int seg_advance(dcem_spool *sp, size_t i, uint64_t upto)
{
    if (upto > sp->segs[i].floor) sp->segs[i].floor = upto;
    while (sp->segs[i].count > 0 && sp->segs[i].first_seq <= upto) {
        seg *s = &sp->segs[i];
        if (s->last_seq <= upto) { /* the whole rest: no need to walk it */
            s->head = s->size;
            s->count = 0;
            break;
        }
        uint64_t nbytes, seq;
        int rc = seg_pop(sp, i, &nbytes, &seq);
        if (rc) return rc;
    }
    return 0;
}

/* Deletes the segments that hold no record. Called only right after the
 * metadata covering them was written: a segment that vanished before its
 * ack (or drop) was recorded could otherwise let a seq be handed out twice. */
static int delete_dead(dcem_spool *sp)
{
    size_t w = 0;
    int rc = 0;
    for (size_t i = 0; i < sp->nsegs; i++) {
        seg *s = &sp->segs[i];
        if (s->count == 0 && !rc) {
            char name[NAME_CAP];
            seg_name(name, sizeof name, s->id);
            if (sp->wfd >= 0 && sp->wfd_id == s->id) {
                close_fd(&sp->wfd);
                sp->tail_dirty = 0; /* nothing held is left unsynced */
                sp->durable = sp->next_seq - 1;
            }
            if (sp->rfd >= 0 && sp->rfd_id == s->id) close_fd(&sp->rfd);
            if (sp->cur_id == s->id) sp->cur_ok = 0;
            if (unlinkat(sp->dir.fd, name, 0) == 0 || errno == ENOENT) continue;
            rc = fail(sp, DCEM_ESTORAGE, "%s/%s: unlink: %s", sp->dir.path, name, strerror(errno));
        }
        sp->segs[w++] = *s;
    }
    sp->nsegs = w;
    return rc;
}

/* Writes pending metadata, then deletes what it made dead. */
static int commit(dcem_spool *sp, int force)
{
    if (sp->meta_dirty || force) {
        int rc = meta_write(sp, force);
        if (rc) return rc;
    }
    return delete_dead(sp);
}

static uint64_t held_bytes(const dcem_spool *sp)
{
    uint64_t n = 0;
    for (size_t i = 0; i < sp->nsegs; i++) n += sp->segs[i].size - sp->segs[i].head;
    return n;
}

/* Drop-oldest at max_bytes: one whole record, counted. */
static int drop_oldest(dcem_spool *sp)
{
    size_t i = 0;
    while (i < sp->nsegs && sp->segs[i].count == 0) i++;
    if (i == sp->nsegs) return fail(sp, DCEM_ESTORAGE, "%s: nothing left to drop", sp->dir.path);
    uint64_t nbytes, seq;
    int rc = seg_pop(sp, i, &nbytes, &seq);
    if (rc) return rc;
    if (nbytes) {
        sp->st.dropped_records++;
        sp->st.dropped_bytes += nbytes;
        if (sp->segs[i].epoch == sp->epoch && seq > sp->gone) {
            sp->gone = seq;
            sp->meta_dirty = 1;
        }
    }
    if (sp->segs[i].count == 0) return commit(sp, 0);
    return 0;
}

/* The segment the next record (need bytes) goes to, open on sp->wfd:
 * the newest one if it is of this epoch and has room, else a new one. */
static int tail_for(dcem_spool *sp, uint64_t need, size_t *out)
{
    char name[NAME_CAP];
    if (sp->nsegs) {
        size_t t = sp->nsegs - 1;
        seg *s = &sp->segs[t];
        if (s->epoch == sp->epoch && (s->size == 0 || s->size + need <= sp->segment_bytes)) {
            if (sp->wfd < 0 || sp->wfd_id != s->id) {
                close_fd(&sp->wfd);
                seg_name(name, sizeof name, s->id);
                sp->wfd = openat(sp->dir.fd, name, O_WRONLY | O_CLOEXEC);
                if (sp->wfd < 0)
                    return fail(sp, DCEM_ESTORAGE, "%s/%s: %s", sp->dir.path, name, strerror(errno));
                sp->wfd_id = s->id;
            }
            *out = t;
            return 0;
        }
    }
    if (sp->wfd >= 0) { /* rotation: the old tail's unsynced appends become durable first */
        if (sp->tail_dirty && fdatasync(sp->wfd))
            return fail(sp, DCEM_ESTORAGE, "%s: fdatasync: %s", sp->dir.path, strerror(errno));
        sp->tail_dirty = 0;
        sp->durable = sp->next_seq - 1;
        close_fd(&sp->wfd);
    }
    if (sp->nsegs == sp->capsegs) {
        size_t cap = sp->capsegs ? sp->capsegs * 2 : 16;
        seg *n = realloc(sp->segs, cap * sizeof *n);
        if (!n) return fail(sp, DCEM_ENOMEM, "out of memory");
        sp->segs = n;
        sp->capsegs = cap;
    }
    uint64_t id = sp->next_id;
    seg_name(name, sizeof name, id);
    int fd = openat(sp->dir.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return fail(sp, DCEM_ESTORAGE, "%s/%s: %s", sp->dir.path, name, strerror(errno));
    if (sp->policy == DCEM_SPOOL_FSYNC_ALWAYS && fsync(sp->dir.fd)) {
        int e = errno;
        close(fd);
        unlinkat(sp->dir.fd, name, 0);
        return fail(sp, DCEM_ESTORAGE, "%s: fsync: %s", sp->dir.path, strerror(e));
    }
    if (sp->policy == DCEM_SPOOL_FSYNC_INTERVAL) sp->dir_dirty = 1;
    sp->next_id++;
    sp->wfd = fd;
    sp->wfd_id = id;
    sp->segs[sp->nsegs] = (seg){.id = id, .epoch = sp->epoch, .floor = sp->gone};
    *out = sp->nsegs++;
    return 0;
}

/* ---- public API ------------------------------------------------------------------------- */

uint64_t dcem_spool_epoch(const dcem_spool *sp)
{
    return sp ? sp->epoch : 0;
}

uint64_t dcem_spool_next_seq(const dcem_spool *sp)
{
    return sp ? sp->next_seq : 0;
}

const char *dcem_spool_error(const dcem_spool *sp)
{
    return sp ? sp->err : "";
}

int dcem_spool_append(dcem_spool *sp, uint64_t seq, const void *payload, size_t len)
{
    if (!sp || (!payload && len)) return DCEM_EINVAL;
    if (seq != sp->next_seq)
        return fail(sp, DCEM_EINVAL, "append: seq %" PRIu64 ", expected %" PRIu64, seq,
                    sp->next_seq);
    uint64_t need = HDR + (uint64_t)len;
    if (len > DCEM_SPOOL_MAX_PAYLOAD || need > sp->max_bytes)
        return fail(sp, DCEM_ERANGE, "append: a %zu-byte payload never fits (cap %" PRIu64 ")",
                    len, sp->max_bytes);
    while (held_bytes(sp) + need > sp->max_bytes) {
        int rc = drop_oldest(sp);
        if (rc) return rc;
    }
    size_t t = 0;
    int rc = tail_for(sp, need, &t);
    if (rc) return rc;
    seg *s = &sp->segs[t];
    uint8_t h[HDR];
    rec_encode(h, (uint32_t)len, sp->epoch, seq, payload);
    if (dcem_qdir_pwrite(sp->wfd, h, HDR, s->size) ||
        dcem_qdir_pwrite(sp->wfd, payload, (uint64_t)len, s->size + HDR) ||
        (sp->policy == DCEM_SPOOL_FSYNC_ALWAYS && fdatasync(sp->wfd))) {
        int e = errno;
        /* leave no partial record behind: the caller retries the same seq */
        if (ftruncate(sp->wfd, (off_t)s->size)) close_fd(&sp->wfd);
        return fail(sp, DCEM_ESTORAGE, "%s: append: %s", sp->dir.path, strerror(e));
    }
    if (s->count == 0) {
        s->head = s->size;
        s->first_seq = seq;
    }
    s->size += need;
    s->last_seq = seq;
    s->count++;
    sp->next_seq++;
    if (sp->policy == DCEM_SPOOL_FSYNC_INTERVAL) sp->tail_dirty = 1;
    else sp->durable = seq;
    return 0;
}

int dcem_spool_read(dcem_spool *sp, uint64_t epoch, uint64_t seq, void *buf, size_t cap,
                    dcem_spool_rec *rec)
{
    if (!sp || !rec || (!buf && cap)) return DCEM_EINVAL;
    memset(rec, 0, sizeof *rec);
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t i = 0;
        while (i < sp->nsegs && (sp->segs[i].count == 0 || sp->segs[i].epoch < epoch ||
                                 (sp->segs[i].epoch == epoch && sp->segs[i].last_seq < seq)))
            i++;
        if (i == sp->nsegs) return DCEM_ENOTFOUND;
        seg *s = &sp->segs[i];
        uint64_t want = s->epoch > epoch ? 0 : seq;
        uint64_t off = s->head;
        if (sp->cur_ok && sp->cur_id == s->id && sp->cur_off >= s->head && want >= sp->cur_min)
            off = sp->cur_off;
        uint8_t h[HDR];
        rhdr r;
        int rc;
        while ((rc = seg_hdr(sp, i, off, h, &r)) == 0 && r.seq < want) off += HDR + r.len;
        if (rc < 0) return rc;
        if (rc == 0) {
            if (s->epoch == sp->epoch && r.seq > sp->durable) return DCEM_ENOTFOUND;
            rec->epoch = s->epoch;
            rec->seq = r.seq;
            rec->len = r.len;
            if (r.len > cap)
                return fail(sp, DCEM_ERANGE, "read: record %" PRIu64 " has %" PRIu32
                            " bytes, buffer %zu", r.seq, r.len, cap);
            int64_t n = dcem_qdir_pread(sp->rfd, buf, r.len, off + HDR);
            if (n < 0) return fail(sp, DCEM_ESTORAGE, "%s: read: %s", sp->dir.path, strerror(errno));
            if ((uint64_t)n == r.len && dcem_qrec_crc_ok(h, buf, r.len)) {
                sp->cur_ok = 1;
                sp->cur_id = s->id;
                sp->cur_off = off + HDR + r.len;
                sp->cur_min = r.seq + 1;
                return 0;
            }
        }
        /* a header or CRC that checked out at open no longer does: never hand
         * it out; set the segment aside, keep its valid records, retry */
        memset(rec, 0, sizeof *rec);
        rc = seg_repair(sp, i);
        if (rc) return rc;
    }
    return fail(sp, DCEM_ESTORAGE, "%s: read: segment still invalid after repair", sp->dir.path);
}

int dcem_spool_ack(dcem_spool *sp, uint64_t epoch, uint64_t seq)
{
    if (!sp) return DCEM_EINVAL;
    if (epoch == sp->epoch) {
        if (seq >= sp->next_seq) {
            sp->st.rejected_acks++;
            return fail(sp, DCEM_ERANGE, "ack: seq %" PRIu64 " not appended yet (next %" PRIu64 ")",
                        seq, sp->next_seq);
        }
        if (seq > sp->acked) {
            sp->acked = seq;
            if (seq > sp->gone) sp->gone = seq;
            sp->meta_dirty = 1;
        }
    } else {
        size_t i = 0;
        while (i < sp->nsegs && sp->segs[i].epoch != epoch) i++;
        if (i == sp->nsegs) {
            sp->st.rejected_acks++;
            return fail(sp, DCEM_ERANGE, "ack: epoch %" PRIu64 " not held (current %" PRIu64 ")",
                        epoch, sp->epoch);
        }
    }
    for (size_t i = 0; i < sp->nsegs; i++) {
        if (sp->segs[i].epoch != epoch) continue;
        int rc = seg_advance(sp, i, seq);
        if (rc) return rc;
    }
    if (sp->policy == DCEM_SPOOL_FSYNC_INTERVAL) return 0;
    return commit(sp, 0);
}

int dcem_spool_sync(dcem_spool *sp)
{
    if (!sp) return DCEM_EINVAL;
    if (sp->wfd >= 0 && sp->tail_dirty) {
        if (fdatasync(sp->wfd))
            return fail(sp, DCEM_ESTORAGE, "%s: fdatasync: %s", sp->dir.path, strerror(errno));
        sp->tail_dirty = 0;
    }
    sp->durable = sp->next_seq - 1;
    if (sp->dir_dirty) {
        if (fsync(sp->dir.fd))
            return fail(sp, DCEM_ESTORAGE, "%s: fsync: %s", sp->dir.path, strerror(errno));
        sp->dir_dirty = 0;
    }
    return commit(sp, sp->meta_dirty);
}

void dcem_spool_stats(const dcem_spool *sp, dcem_spool_stat *st)
{
    memset(st, 0, sizeof *st);
    if (!sp) return;
    *st = sp->st;
    st->aside_discarded = sp->dir.aside_discarded;
    st->epoch = sp->epoch;
    st->next_seq = sp->next_seq;
    st->acked_seq = sp->acked;
    st->durable_seq = sp->durable;
    st->segments = sp->nsegs;
    st->first_seq = sp->next_seq;
    for (size_t i = 0; i < sp->nsegs; i++) {
        const seg *s = &sp->segs[i];
        st->records += s->count;
        st->bytes += s->size - s->head;
        st->disk_bytes += s->size;
        if (s->epoch != sp->epoch) st->old_epoch_records += s->count;
        else if (s->count && st->first_seq == sp->next_seq) st->first_seq = s->first_seq;
        if (s->count && !st->oldest_epoch) {
            st->oldest_epoch = s->epoch;
            st->oldest_seq = s->first_seq;
        }
    }
}

/* Closes and frees without writing anything. */
static void spool_free(dcem_spool *sp)
{
    close_fd(&sp->wfd);
    close_fd(&sp->rfd);
    dcem_qdir_close(&sp->dir); /* releases the fcntl lock */
    free(sp->segs);
    free(sp->buf);
    free(sp);
}

void dcem_spool_close(dcem_spool *sp)
{
    if (!sp) return;
    /* persist next_seq and the acks even when nothing else is pending */
    sp->meta_dirty = 1;
    if (sp->policy == DCEM_SPOOL_FSYNC_NEVER) (void)commit(sp, 0);
    else (void)dcem_spool_sync(sp);
    spool_free(sp);
}

/* ---- open and recovery ------------------------------------------------------------------ */

static int recover(dcem_spool *sp, int64_t now_s)
{
    uint64_t *ids;
    size_t nids;
    unlinkat(sp->dir.fd, META_TMP, 0); /* an interrupted metadata write */
    int rc = dcem_qdir_list(&sp->dir, SEG_PREFIX, SEG_SUFFIX, &ids, &nids, NULL);
    if (rc) return rc;
    meta m = {0};
    int ms = meta_read(sp, &m);
    if (ms < 0) {
        free(ids);
        return ms;
    }
    uint64_t prev_epoch = 0, prev_last = 0, max_epoch = 0, unc_epoch = 0;
    int uncertain = 0;
    for (size_t k = 0; k < nids && !rc; k++) {
        scan sc;
        int unc = 0, kept = 0;
        sp->next_id = ids[k] + 1;
        rc = seg_recover(sp, ids[k], k + 1 == nids, prev_epoch, prev_last, &sc, &unc, &kept);
        if (rc || !kept) continue;
        if (unc) {
            uncertain = 1;
            unc_epoch = sc.nrec ? sc.epoch : 0; /* 0: nothing valid, epoch unknown */
        }
        if (!sc.nrec) { /* empty, or torn before its first record completed */
            char name[NAME_CAP];
            seg_name(name, sizeof name, ids[k]);
            if (unlinkat(sp->dir.fd, name, 0) && errno != ENOENT)
                rc = fail(sp, DCEM_ESTORAGE, "%s/%s: unlink: %s", sp->dir.path, name, strerror(errno));
            continue;
        }
        if (sp->nsegs == sp->capsegs) {
            size_t cap = sp->capsegs ? sp->capsegs * 2 : 16;
            seg *n = realloc(sp->segs, cap * sizeof *n);
            if (!n) {
                rc = fail(sp, DCEM_ENOMEM, "out of memory");
                continue;
            }
            sp->segs = n;
            sp->capsegs = cap;
        }
        sp->segs[sp->nsegs++] = (seg){.id = ids[k], .epoch = sc.epoch, .size = sc.fsize,
                                      .first_seq = sc.first_seq, .last_seq = sc.last_seq,
                                      .count = sc.nrec};
        prev_epoch = sc.epoch;
        prev_last = sc.last_seq;
        max_epoch = max_u64(max_epoch, sc.epoch);
    }
    free(ids);
    if (rc) return rc;
    if (!sp->next_id) sp->next_id = 1;

    /* Which epoch: the metadata's, unless it is missing, corrupt, older than
     * the records (a stale copy), or the newest segment ended in data we
     * cannot read (its last seq is unknown: never guess, start a new epoch). */
    uint64_t meta_epoch = 0, meta_next = 1;
    if (ms == META_OK && max_epoch <= m.epoch) {
        meta_epoch = m.epoch;
        sp->st.epoch_reason = DCEM_SPOOL_EPOCH_RESUMED;
        if (uncertain && (!unc_epoch || unc_epoch == m.epoch))
            sp->st.epoch_reason = DCEM_SPOOL_EPOCH_UNCERTAIN;
    } else if (ms == META_MISSING && nids == 0) {
        sp->st.epoch_reason = DCEM_SPOOL_EPOCH_CREATED;
    } else {
        sp->st.epoch_reason = DCEM_SPOOL_EPOCH_META_LOST;
        if (ms == META_CORRUPT) {
            rc = set_aside(sp, META_NAME);
            if (rc) return rc;
        }
    }
    for (size_t i = 0; i < sp->nsegs && meta_epoch; i++) {
        if (sp->segs[i].epoch != meta_epoch) continue;
        rc = seg_advance(sp, i, m.gone);
        if (rc) return rc;
    }
    if (sp->st.epoch_reason == DCEM_SPOOL_EPOCH_RESUMED) {
        sp->epoch = m.epoch;
        sp->acked = m.acked;
        sp->gone = m.gone;
        meta_next = m.next_seq;
    } else {
        /* A new epoch: the wall clock, but always above every epoch still on
         * disk so the collector can never take new data for a duplicate.
         * The largest epoch the spool reopens is EPOCH_MAX; segments of an
         * epoch with no room above it (never written by us: epochs are
         * seconds of the wall clock) are set aside, or the new epoch would be
         * one the next open refuses (fuzz_spool: regress-new-epoch-no-room). */
        uint64_t above = max_u64(max_epoch, meta_epoch) + 1;
        if (above > EPOCH_MAX) {
            size_t kept = 0;
            max_epoch = 0;
            for (size_t i = 0; i < sp->nsegs; i++) {
                if (sp->segs[i].epoch < EPOCH_MAX) {
                    max_epoch = max_u64(max_epoch, sp->segs[i].epoch);
                    sp->segs[kept++] = sp->segs[i];
                    continue;
                }
                char name[NAME_CAP];
                seg_name(name, sizeof name, sp->segs[i].id);
                sp->st.corrupt_segments++;
                sp->st.corrupt_bytes += sp->segs[i].size;
                if ((rc = set_aside(sp, name))) return rc;
            }
            sp->nsegs = kept;
            above = max_epoch + 1;
        }
        uint64_t e = now_s > 0 && (uint64_t)now_s <= EPOCH_MAX ? (uint64_t)now_s : 1;
        e = max_u64(e, above);
        sp->epoch = e;
        sp->acked = sp->gone = 0;
    }
    uint64_t last = 0;
    for (size_t i = 0; i < sp->nsegs; i++)
        if (sp->segs[i].epoch == sp->epoch) last = max_u64(last, sp->segs[i].last_seq);
    sp->next_seq = max_u64(max_u64(sp->gone, last), meta_next - 1) + 1;
    sp->durable = sp->next_seq - 1;

    /* What a crashed process left in the page cache is made durable before
     * it is handed out as such. */
    if (sp->nsegs && sp->policy != DCEM_SPOOL_FSYNC_NEVER) {
        char name[NAME_CAP];
        seg_name(name, sizeof name, sp->segs[sp->nsegs - 1].id);
        int fd = openat(sp->dir.fd, name, O_RDONLY | O_CLOEXEC);
        int bad = fd < 0 || fsync(fd) || fsync(sp->dir.fd);
        if (fd >= 0) close(fd);
        if (bad)
            return fail(sp, DCEM_ESTORAGE, "%s/%s: fsync: %s", sp->dir.path, name, strerror(errno));
    }
    rc = commit(sp, 1);
    while (!rc && held_bytes(sp) > sp->max_bytes) rc = drop_oldest(sp);
    if (!rc && sp->meta_dirty) rc = commit(sp, 0);
    return rc;
}

int dcem_spool_open(const char *dir, const dcem_spool_opts *opts, int64_t now_s, dcem_spool **out,
                    char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!out) return DCEM_EINVAL;
    *out = NULL;
    dcem_spool_opts o = {0};
    if (opts) o = *opts;
    if (!o.max_bytes) o.max_bytes = DEFAULT_MAX_BYTES;
    if (!o.segment_bytes) o.segment_bytes = DEFAULT_SEGMENT_BYTES;
    const char *why = NULL;
    if (!dir || !*dir) why = "spool: no directory given";
    else if (strlen(dir) >= DCEM_QDIR_PATH_MAX) why = "spool: directory path too long";
    else if (o.segment_bytes < MIN_BYTES || o.segment_bytes > DCEM_SPOOL_MAX_SEGMENT)
        why = "spool: segment_bytes must be 64 B .. 64 MiB";
    else if (o.max_bytes < MIN_BYTES) why = "spool: max_bytes must be at least 64 B";
    else if (o.fsync < DCEM_SPOOL_FSYNC_ALWAYS || o.fsync > DCEM_SPOOL_FSYNC_NEVER)
        why = "spool: fsync must be always, interval or never";
    if (why) {
        if (err && errlen) snprintf(err, errlen, "%s", why);
        return DCEM_EINVAL;
    }
    dcem_spool *sp = calloc(1, sizeof *sp);
    uint8_t *buf = malloc(DCEM_SPOOL_MAX_PAYLOAD);
    if (!sp || !buf) {
        free(sp);
        free(buf);
        if (err && errlen) snprintf(err, errlen, "spool: out of memory");
        return DCEM_ENOMEM;
    }
    sp->buf = buf;
    sp->dir.fd = sp->dir.lockfd = sp->wfd = sp->rfd = -1;
    sp->policy = o.fsync;
    sp->max_bytes = o.max_bytes;
    sp->segment_bytes = o.segment_bytes;
    int rc = dcem_qdir_open(&sp->dir, dir, LOCK_NAME, 0755, sp->err, sizeof sp->err);
    if (!rc) rc = recover(sp, now_s);
    if (rc) {
        if (err && errlen) snprintf(err, errlen, "%s", sp->err);
        spool_free(sp);
        return rc;
    }
    *out = sp;
    return 0;
}
