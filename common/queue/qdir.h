/* qdir.h — the directory of a dcem on-disk queue (the agent's spool, the
 * InfluxDB backlog): created with its parents and locked to one process;
 * files named <prefix><20-digit id><suffix>, written whole or not at all
 * (temp, fdatasync, rename, directory fsync); damaged files set aside as
 * *.corrupt for a human, under a cap. The I/O half of the queue module
 * (qrec.h is the pure half); docs/spool.md, "On disk". */
#ifndef DCEM_QDIR_H
#define DCEM_QDIR_H

#include "qrec.h"

#include <stddef.h>
#include <stdint.h>

#define DCEM_QDIR_PATH_MAX 4096
#define DCEM_QDIR_NAME_MAX 96 /* names the owners make, "*.corrupt.N.tmp" included */
#define DCEM_QDIR_MAX_ASIDE 8u /* *.corrupt files kept; beyond, damaged data is not copied */

/* An open queue directory, in the owner's storage. Every function returns 0
 * or a negative DCEM_E* code with "path/name: what: why" in the owner's
 * error buffer given to dcem_qdir_open. `sync` arguments: 0 skips every
 * fsync/fdatasync (the spool's FSYNC_NEVER). */
typedef struct dcem_qdir {
    char path[DCEM_QDIR_PATH_MAX];
    int fd;     /* the directory, or -1 */
    int lockfd; /* holds the fcntl lock, or -1 */
    unsigned file_mode;
    char *err;
    size_t errlen;
    uint64_t aside_discarded; /* set-asides with no copy kept: the cap was reached */
} dcem_qdir;

/* Creates dir and its parents (mode dir_mode), opens it and takes an fcntl
 * lock on dir/lock_name (created with dir_mode & 0666, as are files made
 * later). Detail of a failure goes to err (errlen bytes), which the handle
 * keeps for its later failures too. DCEM_EINVAL (no dir, or a path too
 * long), DCEM_ESTORAGE (mkdir, open, or "in use: ... held by another
 * process"). On failure d is closed; dcem_qdir_close is safe either way. */
int dcem_qdir_open(dcem_qdir *d, const char *dir, const char *lock_name, unsigned dir_mode,
                   char *err, size_t errlen);

/* Releases the lock and closes the directory. Idempotent. */
void dcem_qdir_close(dcem_qdir *d);

/* printf-style detail into the error buffer; returns code. */
int dcem_qdir_fail(dcem_qdir *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "<prefix><20-digit id><suffix>" into buf (cap bytes). */
void dcem_qdir_name(char *buf, size_t cap, const char *prefix, uint64_t id, const char *suffix);

/* Parses "<prefix><20 digits><rest>": 0 with *id and *rest, or -1. */
int dcem_qdir_parse_name(const char *name, const char *prefix, uint64_t *id, const char **rest);

/* The ids of the files "<prefix><id><suffix>", ascending, in a new array the
 * caller frees (*ids NULL when none). Leftover temp files of the queue
 * ("<prefix>*.tmp": a write a crash interrupted) are deleted. *max_any (may
 * be NULL): the largest id of any "<prefix><id>.*" name, temp and *.corrupt
 * included, 0 when none: ids above it were never used. */
int dcem_qdir_list(dcem_qdir *d, const char *prefix, const char *suffix, uint64_t **ids, size_t *n,
                   uint64_t *max_any);

/* Reads up to n bytes at off: the count (short only at end of file) or -1. */
int64_t dcem_qdir_pread(int fd, void *buf, uint64_t n, uint64_t off);
/* Writes all n bytes at off: 0 or -1. */
int dcem_qdir_pwrite(int fd, const void *buf, uint64_t n, uint64_t off);

/* A dcem_qrec reader of the file open on fd (which must outlive it). */
dcem_qrec_reader dcem_qdir_reader(int fd);

/* A file written whole or not at all, in two steps: tmp_create opens tmp
 * (truncated) for writing into *fd; tmp_commit fdatasyncs and closes fd,
 * renames tmp over name and fsyncs the directory. On failure tmp is deleted
 * (name stays as it was, or is the new file if only the directory fsync
 * failed) and fd is closed in every case. */
int dcem_qdir_tmp_create(dcem_qdir *d, const char *tmp, int *fd);
int dcem_qdir_tmp_commit(dcem_qdir *d, int fd, const char *tmp, const char *name, int sync);

/* Both steps for a file of a then b (b may be NULL with blen 0): temp
 * "<name>.tmp". */
int dcem_qdir_write_file(dcem_qdir *d, const char *name, const void *a, size_t alen, const void *b,
                         size_t blen, int sync);

/* Moves file name out of the way, to "<name>.corrupt" (".corrupt.N" when
 * taken), for a human; deletes it instead when DCEM_QDIR_MAX_ASIDE set-aside
 * files are already in the directory (counted in aside_discarded), so a
 * failing medium cannot fill the disk with copies. */
int dcem_qdir_set_aside(dcem_qdir *d, const char *name, int sync);

/* Copies the file open on fd (fsize bytes) to "<name>.corrupt" (temp,
 * fdatasync, rename), leaving it in place to be repaired; no copy at the cap
 * (counted as above). buf (cap bytes) is scratch. */
int dcem_qdir_copy_aside(dcem_qdir *d, int fd, uint64_t fsize, const char *name, void *buf,
                         size_t cap, int sync);

#endif
