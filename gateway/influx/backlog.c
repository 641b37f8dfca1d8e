#include "backlog.h"
#include "errors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define SEQ_DIGITS 20
#define NAME_MAX_LEN 48 /* "b-" + 20 digits + ".corrupt" + NUL, rounded up */

typedef struct entry {
    uint64_t seq;
    uint32_t len; /* body bytes */
    uint32_t lines;
} entry;

struct dcem_backlog {
    char *dir;
    int dir_fd, lock_fd;
    uint64_t max_bytes, max_batches;
    entry *e;            /* held batches, oldest at e[head] */
    size_t head, n, cap; /* n held from head; cap allocated */
    uint64_t next_seq;
    unsigned aside;       /* *.corrupt files in the directory */
    dcem_backlog_stat st; /* batches/lines/bytes held, and the since-open counters */
    char err[256];
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

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t le32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void file_name(char *out, size_t size, uint64_t seq, const char *suffix)
{
    snprintf(out, size, "b-%020llu.%s", (unsigned long long)seq, suffix);
}

/* "b-<20 digits>.<suffix>": the seq and which suffix, or 0. */
static int parse_name(const char *name, uint64_t *seq, const char **suffix)
{
    if (strncmp(name, "b-", 2) != 0) return 0;
    uint64_t v = 0;
    for (int i = 0; i < SEQ_DIGITS; i++) {
        char c = name[2 + i];
        if (c < '0' || c > '9') return 0;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    if (name[2 + SEQ_DIGITS] != '.') return 0;
    *seq = v;
    *suffix = name + 2 + SEQ_DIGITS + 1;
    return 1;
}

static void header_encode(unsigned char *h, uint64_t seq, const char *body, size_t len,
                          uint32_t lines)
{
    memset(h, 0, DCEM_BACKLOG_HEADER);
    memcpy(h, "DCIB", 4);
    h[4] = 1;
    put_le32(h + 8, (uint32_t)len);
    put_le32(h + 12, lines);
    put_le64(h + 16, seq);
    uLong crc = crc32(0L, h, 28);
    crc = crc32(crc, (const Bytef *)body, (uInt)len);
    put_le32(h + 28, (uint32_t)crc);
}

/* Checks a header read from the file of seq. */
static int header_ok(const unsigned char *h, uint64_t seq)
{
    return memcmp(h, "DCIB", 4) == 0 && h[4] == 1 && le32(h + 8) <= DCEM_BACKLOG_MAX_BODY &&
           le64(h + 16) == seq;
}

static int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t r = write(fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* A bad file goes out of the way: renamed to *.corrupt for a human while
 * fewer than DCEM_BACKLOG_MAX_ASIDE are there, deleted beyond. */
static void set_aside(dcem_backlog *b, uint64_t seq)
{
    char from[NAME_MAX_LEN], to[NAME_MAX_LEN];
    file_name(from, sizeof from, seq, "lp");
    file_name(to, sizeof to, seq, "corrupt");
    if (b->aside < DCEM_BACKLOG_MAX_ASIDE && renameat(b->dir_fd, from, b->dir_fd, to) == 0)
        b->aside++;
    else
        unlinkat(b->dir_fd, from, 0);
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
    b->st.bytes -= DCEM_BACKLOG_HEADER + (uint64_t)e->len;
}

/* Drops the oldest batch (a cap was reached): deleted and counted. */
static void drop_oldest(dcem_backlog *b)
{
    entry *e = &b->e[b->head];
    char name[NAME_MAX_LEN];
    file_name(name, sizeof name, e->seq, "lp");
    unlinkat(b->dir_fd, name, 0);
    b->st.dropped_batches++;
    b->st.dropped_lines += e->lines;
    account_remove(b, e);
    b->head++;
    b->n--;
}

static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc && errno != EEXIST) return -1;
    }
    if (mkdir(path, 0700) && errno != EEXIST) return -1;
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    uint64_t x = ((const entry *)a)->seq, y = ((const entry *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Indexes one b-*.lp file by its header; a bad one is set aside. */
static int index_file(dcem_backlog *b, uint64_t seq, const char *name)
{
    int fd = openat(b->dir_fd, name, O_RDONLY | O_CLOEXEC);
    unsigned char h[DCEM_BACKLOG_HEADER];
    struct stat sb;
    int ok = fd >= 0 && fstat(fd, &sb) == 0 && read_full(fd, h, sizeof h) == 0 &&
             header_ok(h, seq) && (uint64_t)sb.st_size == DCEM_BACKLOG_HEADER + le32(h + 8);
    if (fd >= 0) close(fd);
    if (!ok) {
        set_aside(b, seq);
        return 0;
    }
    if (reserve(b)) return -1;
    b->e[b->head + b->n++] = (entry){.seq = seq, .len = le32(h + 8), .lines = le32(h + 12)};
    b->st.batches++;
    b->st.lines += le32(h + 12);
    b->st.bytes += DCEM_BACKLOG_HEADER + (uint64_t)le32(h + 8);
    return 0;
}

static int scan(dcem_backlog *b)
{
    int fd = openat(b->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return seterr(b, DCEM_ESTORAGE, "%s: %s", b->dir, strerror(errno));
    }
    /* First pass: names only (set_aside renames while we read the directory
     * otherwise, and readdir may then report a file twice). */
    uint64_t *lp = NULL;
    size_t n_lp = 0, cap_lp = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t seq;
        const char *suffix;
        if (!parse_name(de->d_name, &seq, &suffix)) continue;
        if (seq >= b->next_seq) b->next_seq = seq + 1;
        if (!strcmp(suffix, "tmp")) {
            unlinkat(b->dir_fd, de->d_name, 0); /* a write that never completed */
        } else if (!strcmp(suffix, "corrupt")) {
            b->aside++;
        } else if (!strcmp(suffix, "lp")) {
            if (n_lp == cap_lp) {
                size_t c = cap_lp ? cap_lp * 2 : 64;
                uint64_t *p = realloc(lp, c * sizeof *p);
                if (!p) {
                    rc = DCEM_ENOMEM;
                    break;
                }
                lp = p;
                cap_lp = c;
            }
            lp[n_lp++] = seq;
        }
    }
    closedir(d);
    for (size_t i = 0; !rc && i < n_lp; i++) {
        char name[NAME_MAX_LEN];
        file_name(name, sizeof name, lp[i], "lp");
        if (index_file(b, lp[i], name)) rc = DCEM_ENOMEM;
    }
    free(lp);
    if (rc) return seterr(b, rc, "%s: out of memory indexing the backlog", b->dir);
    if (b->n) qsort(b->e + b->head, b->n, sizeof *b->e, cmp_entry);
    return 0;
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
    if (!b || !(b->dir = strdup(dir))) {
        free(b);
        return DCEM_ENOMEM;
    }
    b->dir_fd = b->lock_fd = -1;
    b->max_bytes = max_bytes;
    b->max_batches = max_batches;
    b->next_seq = 1;
    int rc = 0;
    if (mkdirs(b->dir) || (b->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = seterr(b, DCEM_ESTORAGE, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    b->lock_fd = openat(b->dir_fd, "backlog.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (b->lock_fd < 0 || fcntl(b->lock_fd, F_SETLK, &fl) < 0) {
        rc = seterr(b, DCEM_ESTORAGE, "%s/backlog.lock: %s", dir,
                    errno == EACCES || errno == EAGAIN ? "held by another process"
                                                       : strerror(errno));
        goto fail;
    }
    if ((rc = scan(b))) goto fail;
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
    if (b->lock_fd >= 0) close(b->lock_fd); /* releases the fcntl lock */
    if (b->dir_fd >= 0) close(b->dir_fd);
    free(b->e);
    free(b->dir);
    free(b);
}

int dcem_backlog_push(dcem_backlog *b, const char *body, size_t len, uint32_t lines)
{
    b->err[0] = '\0';
    uint64_t size = DCEM_BACKLOG_HEADER + (uint64_t)len;
    if (len > DCEM_BACKLOG_MAX_BODY || size > b->max_bytes)
        return seterr(b, DCEM_ERANGE, "a batch of %zu bytes never fits the backlog cap", len);
    if (reserve(b)) return seterr(b, DCEM_ENOMEM, "out of memory");
    /* Drop first, then write: on a full disk the room freed is what lets
     * the newest batch in. */
    while (b->n && (b->st.bytes + size > b->max_bytes || b->n + 1 > b->max_batches))
        drop_oldest(b);

    uint64_t seq = b->next_seq;
    char tmp[NAME_MAX_LEN], name[NAME_MAX_LEN];
    file_name(tmp, sizeof tmp, seq, "tmp");
    file_name(name, sizeof name, seq, "lp");
    unsigned char h[DCEM_BACKLOG_HEADER];
    header_encode(h, seq, body, len, lines);
    int fd = openat(b->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return seterr(b, DCEM_ESTORAGE, "%s/%s: %s", b->dir, tmp, strerror(errno));
    /* The data reaches the disk before the name does: after a crash a
     * b-*.lp file is whole or absent (a leftover .tmp is deleted at open). */
    if (write_full(fd, h, sizeof h) || write_full(fd, body, len) || fdatasync(fd)) {
        int e = errno;
        close(fd);
        unlinkat(b->dir_fd, tmp, 0);
        return seterr(b, DCEM_ESTORAGE, "%s/%s: %s", b->dir, tmp, strerror(e));
    }
    if (close(fd) || renameat(b->dir_fd, tmp, b->dir_fd, name) || fsync(b->dir_fd)) {
        int e = errno;
        unlinkat(b->dir_fd, tmp, 0);
        unlinkat(b->dir_fd, name, 0);
        return seterr(b, DCEM_ESTORAGE, "%s/%s: %s", b->dir, name, strerror(e));
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
        char name[NAME_MAX_LEN];
        file_name(name, sizeof name, e->seq, "lp");
        if (cap < e->len) {
            *len = e->len;
            return DCEM_ERANGE;
        }
        unsigned char h[DCEM_BACKLOG_HEADER];
        int fd = openat(b->dir_fd, name, O_RDONLY | O_CLOEXEC);
        int ok = fd >= 0 && read_full(fd, h, sizeof h) == 0 && header_ok(h, e->seq) &&
                 le32(h + 8) == e->len && read_full(fd, buf, e->len) == 0;
        if (ok) {
            char extra;
            ok = read(fd, &extra, 1) == 0; /* nothing after the body */
        }
        if (fd >= 0) close(fd);
        if (ok) {
            uLong crc = crc32(0L, h, 28);
            crc = crc32(crc, (const Bytef *)buf, (uInt)e->len);
            ok = (uint32_t)crc == le32(h + 28);
        }
        if (ok) {
            *len = e->len;
            *lines = e->lines;
            return 0;
        }
        seterr(b, DCEM_ESTORAGE, "%s/%s: unreadable or failed its CRC; set aside", b->dir, name);
        forget(b, i); /* the next one takes its place */
    }
    return DCEM_ENOTFOUND;
}

void dcem_backlog_pop(dcem_backlog *b, size_t n)
{
    for (size_t k = 0; k < n && b->n; k++) {
        entry *e = &b->e[b->head];
        char name[NAME_MAX_LEN];
        file_name(name, sizeof name, e->seq, "lp");
        unlinkat(b->dir_fd, name, 0);
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
