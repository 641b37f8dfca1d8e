/* qdir.c — the queue directory of qdir.h: creation, lock, names, whole-file
 * writes and set-aside. */
#include "qdir.h"

#include "errors.h"

#include <dirent.h>
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

#define ID_DIGITS 20u

int dcem_qdir_fail(dcem_qdir *d, int code, const char *fmt, ...)
{
    if (!d->err || !d->errlen) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, d->errlen, fmt, ap);
    va_end(ap);
    return code;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static int make_dirs(dcem_qdir *d, unsigned mode)
{
    char p[sizeof d->path];
    memcpy(p, d->path, sizeof p);
    for (char *c = p + 1; *c; c++) {
        if (*c != '/') continue;
        *c = '\0';
        if (mkdir(p, (mode_t)mode) && errno != EEXIST)
            return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s: mkdir: %s", p, strerror(errno));
        *c = '/';
    }
    if (mkdir(p, (mode_t)mode) && errno != EEXIST)
        return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s: mkdir: %s", p, strerror(errno));
    d->fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->fd < 0) return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s: %s", p, strerror(errno));
    return 0;
}

static int take_lock(dcem_qdir *d, const char *lock_name)
{
    d->lockfd = openat(d->fd, lock_name, O_RDWR | O_CREAT | O_CLOEXEC, (mode_t)d->file_mode);
    if (d->lockfd < 0)
        return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s/%s: %s", d->path, lock_name, strerror(errno));
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(d->lockfd, F_SETLK, &fl) == -1) {
        if (errno == EACCES || errno == EAGAIN)
            return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s: in use: %s held by another process",
                                  d->path, lock_name);
        return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s/%s: lock: %s", d->path, lock_name,
                              strerror(errno));
    }
    return 0;
}

int dcem_qdir_open(dcem_qdir *d, const char *dir, const char *lock_name, unsigned dir_mode,
                   char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->fd = d->lockfd = -1;
    d->err = err;
    d->errlen = errlen;
    d->file_mode = dir_mode & 0666u;
    if (!dir || !*dir) return dcem_qdir_fail(d, DCEM_EINVAL, "no directory given");
    size_t n = strlen(dir);
    if (n >= sizeof d->path) return dcem_qdir_fail(d, DCEM_EINVAL, "directory path too long");
    memcpy(d->path, dir, n + 1);
    int rc = make_dirs(d, dir_mode);
    if (!rc) rc = take_lock(d, lock_name);
    if (rc) dcem_qdir_close(d);
    return rc;
}

void dcem_qdir_close(dcem_qdir *d)
{
    if (d->lockfd >= 0) close(d->lockfd); /* releases the fcntl lock */
    if (d->fd >= 0) close(d->fd);
    d->lockfd = d->fd = -1;
}

void dcem_qdir_name(char *buf, size_t cap, const char *prefix, uint64_t id, const char *suffix)
{
    snprintf(buf, cap, "%s%020" PRIu64 "%s", prefix, id, suffix);
}

int dcem_qdir_parse_name(const char *name, const char *prefix, uint64_t *id, const char **rest)
{
    size_t pre = strlen(prefix);
    if (strncmp(name, prefix, pre)) return -1;
    uint64_t v = 0;
    for (unsigned i = 0; i < ID_DIGITS; i++) {
        char c = name[pre + i];
        if (c < '0' || c > '9') return -1;
        uint64_t dg = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - dg) / 10) return -1;
        v = v * 10 + dg;
    }
    *id = v;
    *rest = name + pre + ID_DIGITS;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int dcem_qdir_list(dcem_qdir *d, const char *prefix, const char *suffix, uint64_t **ids, size_t *n,
                   uint64_t *max_any)
{
    *ids = NULL;
    *n = 0;
    if (max_any) *max_any = 0;
    /* a descriptor of its own: readdir moves the one it is given */
    int fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        if (fd >= 0) close(fd);
        return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s: %s", d->path, strerror(errno));
    }
    size_t cap = 0;
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(dir)) != NULL) {
        const char *nm = de->d_name, *rest;
        uint64_t id;
        int named = dcem_qdir_parse_name(nm, prefix, &id, &rest) == 0;
        if (named && max_any && *rest == '.' && id > *max_any) *max_any = id;
        if (!strncmp(nm, prefix, strlen(prefix)) && ends_with(nm, ".tmp")) {
            unlinkat(d->fd, nm, 0); /* an interrupted write: never made whole */
            continue;
        }
        if (!named || strcmp(rest, suffix)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            uint64_t *m = realloc(*ids, cap * sizeof *m);
            if (!m) {
                rc = dcem_qdir_fail(d, DCEM_ENOMEM, "%s: out of memory listing it", d->path);
                break;
            }
            *ids = m;
        }
        (*ids)[(*n)++] = id;
    }
    closedir(dir);
    if (rc) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return rc;
    }
    if (*n) qsort(*ids, *n, sizeof **ids, cmp_u64);
    return 0;
}

int64_t dcem_qdir_pread(int fd, void *buf, uint64_t n, uint64_t off)
{
    uint64_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, (size_t)(n - done), (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        done += (uint64_t)r;
    }
    return (int64_t)done;
}

int dcem_qdir_pwrite(int fd, const void *buf, uint64_t n, uint64_t off)
{
    uint64_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(fd, (const char *)buf + done, (size_t)(n - done), (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        done += (uint64_t)r;
    }
    return 0;
}

static int64_t fd_pread(void *ctx, void *buf, uint64_t n, uint64_t off)
{
    return dcem_qdir_pread((int)(intptr_t)ctx, buf, n, off);
}

dcem_qrec_reader dcem_qdir_reader(int fd)
{
    return (dcem_qrec_reader){.pread = fd_pread, .ctx = (void *)(intptr_t)fd};
}

int dcem_qdir_tmp_create(dcem_qdir *d, const char *tmp, int *fd)
{
    *fd = openat(d->fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)d->file_mode);
    if (*fd < 0) return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s/%s: %s", d->path, tmp, strerror(errno));
    return 0;
}

int dcem_qdir_tmp_commit(dcem_qdir *d, int fd, const char *tmp, const char *name, int sync)
{
    /* The data reaches the disk before the name does: after a crash the
     * file is whole or absent (a leftover temp is deleted by dcem_qdir_list). */
    const char *what = NULL;
    if (sync && fdatasync(fd)) what = "fdatasync";
    int e = errno;
    if (close(fd) && !what) {
        what = "close";
        e = errno;
    }
    if (!what && renameat(d->fd, tmp, d->fd, name)) {
        what = "rename";
        e = errno;
    }
    if (what) {
        unlinkat(d->fd, tmp, 0);
        return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s/%s: %s: %s", d->path, name, what, strerror(e));
    }
    if (sync && fsync(d->fd))
        return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s: fsync: %s", d->path, strerror(errno));
    return 0;
}

int dcem_qdir_write_file(dcem_qdir *d, const char *name, const void *a, size_t alen, const void *b,
                         size_t blen, int sync)
{
    char tmp[DCEM_QDIR_NAME_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd, rc = dcem_qdir_tmp_create(d, tmp, &fd);
    if (rc) return rc;
    if (dcem_qdir_pwrite(fd, a, alen, 0) || dcem_qdir_pwrite(fd, b, blen, alen)) {
        int e = errno;
        close(fd);
        unlinkat(d->fd, tmp, 0);
        return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s/%s: write: %s", d->path, tmp, strerror(e));
    }
    return dcem_qdir_tmp_commit(d, fd, tmp, name, sync);
}

/* Picks "<name>.corrupt" or, if taken, "<name>.corrupt.N". */
static void corrupt_name(const dcem_qdir *d, const char *name, char *dst, size_t cap)
{
    struct stat st;
    snprintf(dst, cap, "%s.corrupt", name);
    for (unsigned i = 1; i < 1000 && fstatat(d->fd, dst, &st, 0) == 0; i++)
        snprintf(dst, cap, "%s.corrupt.%u", name, i);
}

/* Whether another set-aside file may be kept. Counted in the directory each
 * time, so the files a human deletes make room again. */
static int aside_room(dcem_qdir *d)
{
    int fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        if (fd >= 0) close(fd);
        return 0;
    }
    unsigned n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL)
        if (strstr(de->d_name, ".corrupt") && !ends_with(de->d_name, ".tmp")) n++;
    closedir(dir);
    if (n < DCEM_QDIR_MAX_ASIDE) return 1;
    d->aside_discarded++;
    return 0;
}

int dcem_qdir_set_aside(dcem_qdir *d, const char *name, int sync)
{
    char dst[DCEM_QDIR_NAME_MAX + 32];
    if (!aside_room(d)) {
        if (unlinkat(d->fd, name, 0) && errno != ENOENT)
            return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s/%s: unlink: %s", d->path, name,
                                  strerror(errno));
    } else {
        corrupt_name(d, name, dst, sizeof dst);
        if (renameat(d->fd, name, d->fd, dst))
            return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s/%s: rename: %s", d->path, name,
                                  strerror(errno));
    }
    if (sync && fsync(d->fd))
        return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s: fsync: %s", d->path, strerror(errno));
    return 0;
}

int dcem_qdir_copy_aside(dcem_qdir *d, int fd, uint64_t fsize, const char *name, void *buf,
                         size_t cap, int sync)
{
    char dst[DCEM_QDIR_NAME_MAX + 32], tmp[DCEM_QDIR_NAME_MAX + 48];
    if (!aside_room(d)) return 0;
    corrupt_name(d, name, dst, sizeof dst);
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    int out, rc = dcem_qdir_tmp_create(d, tmp, &out);
    if (rc) return rc;
    for (uint64_t off = 0; off < fsize;) {
        uint64_t want = fsize - off < cap ? fsize - off : cap;
        int64_t n = dcem_qdir_pread(fd, buf, want, off);
        if (n <= 0 || dcem_qdir_pwrite(out, buf, (uint64_t)n, off)) {
            int e = n == 0 ? EIO : errno;
            close(out);
            unlinkat(d->fd, tmp, 0);
            return dcem_qdir_fail(d, DCEM_ESTORAGE, "%s/%s: copy: %s", d->path, dst, strerror(e));
        }
        off += (uint64_t)n;
    }
    return dcem_qdir_tmp_commit(d, out, tmp, dst, sync);
}
