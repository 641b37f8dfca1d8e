/* backlog.c — the InfluxDB writer's on-disk backlog: one file per batch,
 * each file one CRC'd record of the common queue module (common/queue/qrec.h)
 * written whole or not at all in a locked directory (qdir.h). */
#include "backlog.h"
#include "errors.h"
#include "qdir.h"
#include "qrec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR ((uint64_t)DCEM_BACKLOG_HEADER)
#define PREFIX "b-"
#define SUFFIX ".lp"
#define LOCK_NAME "backlog.lock"
#define NAME_CAP DCEM_QDIR_NAME_MAX

typedef struct entry {
    uint64_t seq;
    uint32_t len; /* body bytes */
    uint32_t lines;
} entry;

struct dcem_backlog {
    dcem_qdir dir; /* the directory, its lock, set-aside files */
    uint64_t max_bytes, max_batches;
    entry *e;            /* held batches, oldest at e[head] */
    size_t head, n, cap; /* n held from head; cap allocated */
    uint64_t next_seq;
    dcem_backlog_stat st; /* batches/lines/bytes held, and the since-open counters */
    char err[256];
};

_Static_assert(DCEM_BACKLOG_MAX_ASIDE == DCEM_QDIR_MAX_ASIDE, "one set-aside cap");
_Static_assert(DCEM_BACKLOG_HEADER == DCEM_QREC_HEADER, "the queue's record header");

/* The header's fields of its own: lines at 12, seq at 16 (backlog.h). */
static const dcem_qrec_fmt rec_fmt = {
    .magic = {'D', 'C', 'I', 'B'},
    .version = 1,
    .max_payload = DCEM_BACKLOG_MAX_BODY,
};

static int seterr(dcem_backlog *b, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int seterr(dcem_backlog *b, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, sizeof b->err, fmt, ap);
    va_end(ap);
    return rc;
}

static void file_name(char *out, size_t size, uint64_t seq)
{
    dcem_qdir_name(out, size, PREFIX, seq, SUFFIX);
}

/* Checks a header read from the file of seq: 0 with *len, or -1. */
static int header_ok(const uint8_t *h, uint64_t seq, uint32_t *len)
{
    return dcem_qrec_parse(&rec_fmt, h, len) == 0 && dcem_le_get64(h + 16) == seq ? 0 : -1;
}

/* A bad file goes out of the way: renamed to *.corrupt for a human while
 * fewer than DCEM_QDIR_MAX_ASIDE are there, deleted beyond (or when the
 * rename fails). */
static void set_aside(dcem_backlog *b, uint64_t seq)
{
    char name[NAME_CAP];
    file_name(name, sizeof name, seq);
    if (dcem_qdir_set_aside(&b->dir, name, 0)) unlinkat(b->dir.fd, name, 0);
    b->st.corrupt++;
}

static int reserve(dcem_backlog *b)
{
    if (b->head + b->n < b->cap) return 0;
    if (b->head > 0) { /* reuse the room left by popped batches */
        memmove(b->e, b->e + b->head, b->n * sizeof *b->e);
        b->head = 0;
        if (b->n < b->cap) return 0;
    }
    size_t cap = b->cap ? b->cap * 2 : 64;
    entry *e = realloc(b->e, cap * sizeof *e);
    if (!e) return -1;
    b->e = e;
    b->cap = cap;
    return 0;
}

static void account_remove(dcem_backlog *b, const entry *e)
{
    b->st.batches--;
    b->st.lines -= e->lines;
    b->st.bytes -= HDR + (uint64_t)e->len;
}

/* Drops the oldest batch (a cap was reached): deleted and counted. */
static void drop_oldest(dcem_backlog *b)
{
    entry *e = &b->e[b->head];
    char name[NAME_CAP];
    file_name(name, sizeof name, e->seq);
    unlinkat(b->dir.fd, name, 0);
    b->st.dropped_batches++;
    b->st.dropped_lines += e->lines;
    account_remove(b, e);
    b->head++;
    b->n--;
}

/* Indexes one b-*.lp file by its header; a bad one is set aside. */
static int index_file(dcem_backlog *b, uint64_t seq)
{
    char name[NAME_CAP];
    file_name(name, sizeof name, seq);
    int fd = openat(b->dir.fd, name, O_RDONLY | O_CLOEXEC);
    uint8_t h[DCEM_BACKLOG_HEADER];
    uint32_t len = 0;
    struct stat sb;
    int ok = fd >= 0 && fstat(fd, &sb) == 0 &&
             dcem_qdir_pread(fd, h, sizeof h, 0) == (int64_t)sizeof h && !header_ok(h, seq, &len) &&
             (uint64_t)sb.st_size == HDR + len;
    if (fd >= 0) close(fd);
    if (!ok) {
        set_aside(b, seq);
        return 0;
    }
    if (reserve(b)) return -1;
    uint32_t lines = dcem_le_get32(h + 12);
    b->e[b->head + b->n++] = (entry){.seq = seq, .len = len, .lines = lines};
    b->st.batches++;
    b->st.lines += lines;
    b->st.bytes += HDR + (uint64_t)len;
    return 0;
}

/* Indexes the directory, oldest first; new batches go above every seq seen
 * (temp and set-aside files included), never reusing a name. */
static int scan(dcem_backlog *b)
{
    uint64_t *seqs, max_any;
    size_t n;
    int rc = dcem_qdir_list(&b->dir, PREFIX, SUFFIX, &seqs, &n, &max_any);
    if (rc) return rc;
    b->next_seq = max_any + 1;
    for (size_t i = 0; !rc && i < n; i++)
        if (index_file(b, seqs[i]))
            rc = seterr(b, DCEM_ENOMEM, "%s: out of memory indexing the backlog", b->dir.path);
    free(seqs);
    return rc;
}

int dcem_backlog_open(const char *dir, uint64_t max_bytes, uint64_t max_batches, dcem_backlog **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    if (!dir || !*dir || max_bytes == 0 || max_batches == 0) {
        snprintf(err, errlen, "backlog: a directory and caps above 0 are required");
        return DCEM_EINVAL;
    }
    dcem_backlog *b = calloc(1, sizeof *b);
    if (!b) return DCEM_ENOMEM;
    b->max_bytes = max_bytes;
    b->max_batches = max_batches;
    int rc = dcem_qdir_open(&b->dir, dir, LOCK_NAME, 0700, b->err, sizeof b->err);
    if (!rc) rc = scan(b);
    if (rc) goto fail;
    /* Caps may have shrunk since the files were written. */
    while (b->n && (b->st.bytes > b->max_bytes || b->n > b->max_batches))
        drop_oldest(b);
    *out = b;
    return 0;
fail:
    snprintf(err, errlen, "%s", b->err);
    dcem_backlog_close(b);
    return rc;
}

void dcem_backlog_close(dcem_backlog *b)
{
    if (!b) return;
    dcem_qdir_close(&b->dir); /* releases the fcntl lock */
    free(b->e);
    free(b);
}

int dcem_backlog_push(dcem_backlog *b, const char *body, size_t len, uint32_t lines)
{
    b->err[0] = '\0';
    uint64_t size = HDR + (uint64_t)len;
    if (len > DCEM_BACKLOG_MAX_BODY || size > b->max_bytes)
        return seterr(b, DCEM_ERANGE, "a batch of %zu bytes never fits the backlog cap", len);
    if (reserve(b)) return seterr(b, DCEM_ENOMEM, "out of memory");
    /* Drop first, then write: on a full disk the room freed is what lets
     * the newest batch in. */
    while (b->n && (b->st.bytes + size > b->max_bytes || b->n + 1 > b->max_batches))
        drop_oldest(b);

    uint64_t seq = b->next_seq;
    char name[NAME_CAP];
    file_name(name, sizeof name, seq);
    uint8_t h[DCEM_BACKLOG_HEADER] = {0};
    dcem_le_put32(h + 12, lines);
    dcem_le_put64(h + 16, seq);
    dcem_qrec_encode(&rec_fmt, h, body, (uint32_t)len);
    /* After a crash a b-*.lp file is whole or absent. */
    int rc = dcem_qdir_write_file(&b->dir, name, h, sizeof h, body, len, 1);
    if (rc) {
        unlinkat(b->dir.fd, name, 0); /* only the directory fsync failed: not added either */
        return rc;
    }
    b->next_seq = seq + 1;
    b->e[b->head + b->n++] = (entry){.seq = seq, .len = (uint32_t)len, .lines = lines};
    b->st.batches++;
    b->st.lines += lines;
    b->st.bytes += size;
    return 0;
}

/* Removes held entry i (oldest = 0) from the index after its file went bad. */
static void forget(dcem_backlog *b, size_t i)
{
    entry *e = &b->e[b->head + i];
    set_aside(b, e->seq);
    account_remove(b, e);
    memmove(e, e + 1, (b->n - i - 1) * sizeof *e);
    b->n--;
}

int dcem_backlog_read(dcem_backlog *b, size_t i, char *buf, size_t cap, size_t *len,
                      uint32_t *lines)
{
    while (i < b->n) {
        const entry *e = &b->e[b->head + i];
        char name[NAME_CAP];
        file_name(name, sizeof name, e->seq);
        if (cap < e->len) {
            *len = e->len;
            return DCEM_ERANGE;
        }
        uint8_t h[DCEM_BACKLOG_HEADER];
        uint32_t n = 0;
        struct stat sb;
        int fd = openat(b->dir.fd, name, O_RDONLY | O_CLOEXEC);
        /* the header it was indexed with, the body it announces, its CRC, and nothing after */
        int ok = fd >= 0 && fstat(fd, &sb) == 0 && (uint64_t)sb.st_size == HDR + e->len;
        if (ok) {
            dcem_qrec_reader rd = dcem_qdir_reader(fd);
            ok = dcem_qrec_read(&rec_fmt, &rd, HDR + e->len, 0, h, buf, e->len, &n) ==
                     DCEM_QREC_OK &&
                 !header_ok(h, e->seq, &n) && n == e->len;
        }
        if (fd >= 0) close(fd);
        if (ok) {
            *len = e->len;
            *lines = e->lines;
            return 0;
        }
        seterr(b, DCEM_ESTORAGE, "%s/%s: unreadable or failed its CRC; set aside", b->dir.path,
               name);
        forget(b, i); /* the next one takes its place */
    }
    return DCEM_ENOTFOUND;
}

void dcem_backlog_pop(dcem_backlog *b, size_t n)
{
    for (size_t k = 0; k < n && b->n; k++) {
        entry *e = &b->e[b->head];
        char name[NAME_CAP];
        file_name(name, sizeof name, e->seq);
        unlinkat(b->dir.fd, name, 0);
        account_remove(b, e);
        b->head++;
        b->n--;
    }
    if (!b->n) b->head = 0;
}

size_t dcem_backlog_count(const dcem_backlog *b)
{
    return b->n;
}

void dcem_backlog_stats(const dcem_backlog *b, dcem_backlog_stat *st)
{
    *st = b->st;
}

const char *dcem_backlog_error(const dcem_backlog *b)
{
    return b->err;
}
