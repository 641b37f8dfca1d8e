/* report_manifest.h — SHA-256 (libcrypto's EVP) of the files a report is
 * made of and of the inputs it pins (policy, ledger), and the report's
 * MANIFEST.sha256: one "HEX  NAME" line per file, the format `sha256sum -c`
 * checks. */
#ifndef DCEM_REPORT_MANIFEST_H
#define DCEM_REPORT_MANIFEST_H

#include <stddef.h>

#define DCEM_MANIFEST_NAME "MANIFEST.sha256"
#define DCEM_SHA256_HEX 65 /* 64 hex digits and a NUL */

/* Lower-case hex SHA-256 of len bytes. 0, or DCEM_ENOMEM. */
int dcem_sha256_hex(const void *buf, size_t len, char hex[DCEM_SHA256_HEX]);

/* Of a whole file, read in chunks. 0, DCEM_EIO with "path: reason" in err,
 * or DCEM_ENOMEM. */
int dcem_sha256_file(const char *path, char hex[DCEM_SHA256_HEX], char *err, size_t errlen);

/* Writes DIR/MANIFEST.sha256 (flushed and fsynced) for the files names[0..n)
 * of dir, in the order given (the caller sorts). Names are plain file names
 * without '/' or line breaks (DCEM_EINVAL otherwise). 0, DCEM_EIO with
 * detail in err, or DCEM_ENOMEM. */
int dcem_manifest_write(const char *dir, const char *const *names, size_t n, char *err,
                        size_t errlen);

/* 1 when the manifest at path (at most 1 MiB) has a line for name, 0 when it
 * does not or cannot be read. */
int dcem_manifest_lists(const char *path, const char *name);

#endif
