/* dcem_io.h — the thin I/O edge of libdcem: reads a config or zoneinfo file
 * into memory for the pure parsers, loads a site ledger, a policy, a meter
 * profile and a time zone by path or name, and finds the folder of the
 * shipped meter profiles. The only part of common/ that opens files. */
#ifndef DCEM_IO_H
#define DCEM_IO_H

#include "policy.h"
#include "profile.h"
#include "sign.h"
#include "site.h"
#include "tz.h"

#include <stddef.h>

#define DCEM_IO_MAX_FILE (16u << 20) /* configs and zoneinfo files are small */

/* Reads the whole file (at most DCEM_IO_MAX_FILE bytes) into a new
 * NUL-terminated buffer the caller frees. Returns 0, DCEM_EIO or DCEM_EFULL
 * with "path: reason" in err. */
int dcem_io_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen);

/* Loads zone `name` ("Asia/Shanghai", "UTC") from the zoneinfo directory
 * (TZDIR if set, else /usr/share/zoneinfo). Names with ".." or a leading
 * "/" are refused. *tz is freed with dcem_tz_free. */
int dcem_io_load_tz(const char *name, dcem_tz **tz, char *err, size_t errlen);

/* Makes path (a buffer of size bytes) relative to the directory of the file
 * cfgfile names, unless it is empty or absolute. Returns 0, or -1 (path
 * unchanged) when the result would not fit. */
int dcem_io_resolve(const char *cfgfile, char *path, size_t size);

/* Reads and parses a site ledger / policy file into caller storage. */
int dcem_io_load_site(const char *path, dcem_site *site, char *err, size_t errlen);
int dcem_io_load_policy(const char *path, dcem_policy *policy, char *err, size_t errlen);

/* Reads and parses the profile of `model` from DIR/<model>.yaml; the
 * profile's model name is set to `model`. */
int dcem_io_load_profile(const char *dir, const char *model, dcem_profile *profile, char *err,
                         size_t errlen);

/* A shipped file or folder (rel: "meters", "policy/beijing-etown-2024.yaml",
 * "dashboard") when a config does not name one. Tried in order, the first
 * that exists wins:
 *   1. <dir of the running binary>/../share/dcem/<rel> (/proc/self/exe): an
 *      installed tree, whatever its prefix (/usr/bin -> /usr/share/dcem/...);
 *   2. built_in, when not NULL: the source tree's copy, compiled into a
 *      build that runs from its build directory;
 *   3. /usr/share/dcem/<rel>.
 * Returns 0 with the path in out (size bytes), or DCEM_ENOTFOUND with the
 * places tried, comma-separated, in tried (trylen bytes), for the message. */
/* The shipped policy, for configs that name none (rel of dcem_io_share_path). */
#define DCEM_IO_DEFAULT_POLICY "policy/beijing-etown-2024.yaml"
int dcem_io_share_path(const char *rel, const char *built_in, char *out, size_t size, char *tried,
                       size_t trylen);

/* The profile names in dir (its *.yaml files, without .yaml), sorted and
 * comma-separated into out (size bytes; a list that does not fit ends with
 * ", ..."). Returns how many there are, or -1 (out empty) when dir cannot be
 * read. For "unknown profile" messages. */
int dcem_io_list_profiles(const char *dir, char *out, size_t size);

/* Reads the start of a secret (a private key, a token): at most cap-1
 * bytes into buf, NUL-terminated, *len the bytes read. A secret others can
 * read is no secret, and reading must not hang --check-config: the file
 * must be a regular file with no group or other permission bits (0600 or
 * stricter). It is stat()ed before it is opened, so a FIFO or a device is
 * refused without being opened (opening a FIFO blocks until a writer comes;
 * a device may act on open), then opened O_NONBLOCK and fstat()ed: what is
 * read is the file that was checked. A symbolic link is followed, to a file
 * that passes the same checks (Kubernetes and systemd hand secrets over as
 * links). 0, or DCEM_EIO with the reason in why ("PATH is readable by
 * group/others (mode 0644); chmod 600 it"). The caller wipes buf after use. */
int dcem_io_read_secret(const char *path, char *buf, size_t cap, size_t *len, char *why,
                        size_t whylen);

/* The Ed25519 private key in path (a secret, as above), for signing.
 * *out is the caller's to free (dcem_signer_free). 0 or a dcem_err with
 * "path: reason" in err. */
int dcem_io_load_signer(const char *path, dcem_signer **out, char *err, size_t errlen);

/* Creates path (which must not exist: never overwrites a key) holding a new
 * Ed25519 private key, mode 0600, synced; its public key into *pub. 0 or a
 * dcem_err with "path: reason" in err. */
int dcem_io_keygen(const char *path, dcem_pubkey *pub, char *err, size_t errlen);

/* The --keygen / --pubkey commands of dcem-agent and dcem-collector: a new
 * key in path (keygen 1) or the key already there, and its public key
 * printed on stdout as the ledger or config wants it. An exit status. */
int dcem_io_key_command(const char *path, int keygen, const char *who);

#endif
