#include "dcem_io.h"
#include "errors.h"

#define DCEM_IO_PATH_MAX 4096

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Every program links this file. On 32-bit targets (armhf) the build must
 * ask for 64-bit file offsets and time (CMakeLists.txt: _FILE_OFFSET_BITS,
 * _TIME_BITS): directories on today's filesystems, and clocks past 2038. */
_Static_assert(sizeof(off_t) == 8, "off_t must be 64 bits: build with _FILE_OFFSET_BITS=64");
_Static_assert(sizeof(time_t) == 8, "time_t must be 64 bits: build with _TIME_BITS=64");

int dcem_io_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
    *buf = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return DCEM_EIO;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    int rc = 0;
    while (b) {
        n += fread(b + n, 1, cap - n, fp);
        if (n < cap) break;
        if (cap >= DCEM_IO_MAX_FILE) {
            snprintf(err, errlen, "%s: larger than %u bytes", path, DCEM_IO_MAX_FILE);
            rc = DCEM_EFULL;
            break;
        }
        char *nb = realloc(b, cap * 2 + 1);
        if (!nb) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    if (!b) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = DCEM_ENOMEM;
    } else if (!rc && ferror(fp)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = DCEM_EIO;
    }
    fclose(fp);
    if (rc) {
        free(b);
        return rc;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

int dcem_io_load_tz(const char *name, dcem_tz **tz, char *err, size_t errlen)
{
    *tz = NULL;
    if (!*name || name[0] == '/' || strstr(name, "..")) {
        snprintf(err, errlen, "time zone '%s': not an IANA zone name", name);
        return DCEM_ETZ;
    }
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    char *buf;
    size_t len;
    int rc = dcem_io_read_file(path, &buf, &len, err, errlen);
    if (rc) {
        char tmp[600];
        snprintf(tmp, sizeof tmp, "time zone '%s': %s", name, err);
        snprintf(err, errlen, "%s", tmp);
        return DCEM_ETZ;
    }
    char why[200];
    rc = dcem_tz_parse((const unsigned char *)buf, len, tz, why, sizeof why);
    if (rc) snprintf(err, errlen, "%s: %s", path, why);
    free(buf);
    return rc;
}

int dcem_io_load_site(const char *path, dcem_site *site, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    int rc = dcem_io_read_file(path, &buf, &len, err, errlen);
    if (rc) return rc;
    rc = dcem_site_parse(path, buf, len, site, err, errlen);
    free(buf);
    return rc;
}

int dcem_io_load_policy(const char *path, dcem_policy *policy, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    int rc = dcem_io_read_file(path, &buf, &len, err, errlen);
    if (rc) return rc;
    rc = dcem_policy_parse(path, buf, len, policy, err, errlen);
    free(buf);
    return rc;
}

int dcem_io_load_profile(const char *dir, const char *model, dcem_profile *profile, char *err,
                         size_t errlen)
{
    char path[1024];
    int n = snprintf(path, sizeof path, "%s/%s.yaml", dir, model);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(err, errlen, "%s/%s.yaml: path too long", dir, model);
        return DCEM_EINVAL;
    }
    char *buf;
    size_t len;
    int rc = dcem_io_read_file(path, &buf, &len, err, errlen);
    if (rc) return rc;
    rc = dcem_profile_parse(path, buf, len, profile, err, errlen);
    free(buf);
    if (!rc) snprintf(profile->model, sizeof profile->model, "%s", model);
    return rc;
}

int dcem_io_resolve(const char *cfgfile, char *path, size_t size)
{
    if (!*path || path[0] == '/') return 0;
    const char *slash = strrchr(cfgfile, '/');
    if (!slash) return 0;
    size_t dir = (size_t)(slash - cfgfile), rel = strlen(path);
    if (dir + 1 + rel + 1 > size) return -1;
    memmove(path + dir + 1, path, rel + 1);
    memcpy(path, cfgfile, dir);
    path[dir] = '/';
    return 0;
}

static int exists(const char *path)
{
    struct stat st;
    return !stat(path, &st);
}

/* Appends ", what" (or "what" first) to tried; quietly stops when full. */
static void note_tried(char *tried, size_t trylen, const char *what)
{
    size_t used = strlen(tried);
    if (used < trylen) snprintf(tried + used, trylen - used, "%s%s", used ? ", " : "", what);
}

int dcem_io_share_path(const char *rel, const char *built_in, char *out, size_t size, char *tried,
                       size_t trylen)
{
    if (trylen) *tried = '\0';
    char exe[DCEM_IO_PATH_MAX], cand[2 * DCEM_IO_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0 && (size_t)n < sizeof exe - 1) {
        exe[n] = '\0';
        /* /usr/bin/dcem-agent -> /usr -> /usr/share/dcem/<rel> */
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(cand, sizeof cand, "%s/share/dcem/%s", exe, rel);
            if (exists(cand) && strlen(cand) < size) return snprintf(out, size, "%s", cand), 0;
            note_tried(tried, trylen, cand);
        }
    }
    if (built_in && *built_in) {
        if (exists(built_in) && strlen(built_in) < size)
            return snprintf(out, size, "%s", built_in), 0;
        note_tried(tried, trylen, built_in);
    }
    snprintf(cand, sizeof cand, "/usr/share/dcem/%s", rel);
    if (exists(cand) && strlen(cand) < size) return snprintf(out, size, "%s", cand), 0;
    note_tried(tried, trylen, cand);
    return DCEM_ENOTFOUND;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int dcem_io_list_profiles(const char *dir, char *out, size_t size)
{
    enum { MAX_NAMES = 256 }; /* a profile library is tens of files */
    if (size) *out = '\0';
    DIR *d = opendir(dir);
    if (!d) return -1;
    char *names[MAX_NAMES];
    size_t n = 0;
    int total = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || e->d_name[0] == '.' || strcmp(e->d_name + len - 5, ".yaml")) continue;
        total++;
        if (n < MAX_NAMES && (names[n] = malloc(len - 4))) {
            memcpy(names[n], e->d_name, len - 5);
            names[n++][len - 5] = '\0';
        }
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const char *sep = i ? ", " : "";
        size_t want = strlen(sep) + strlen(names[i]);
        if (used + want + 6 >= size) { /* room for ", ..." and the NUL */
            if (used + 6 <= size) snprintf(out + used, size - used, ", ...");
            used = size;
        }
        if (used < size) used += (size_t)snprintf(out + used, size - used, "%s%s", sep, names[i]);
        free(names[i]);
    }
    return total;
}

static const char *file_kind(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket"
           : S_ISCHR(m) || S_ISBLK(m) ? "a device"
                                      : "not a regular file";
}

int dcem_io_read_secret(const char *path, char *buf, size_t cap, size_t *len, char *why,
                        size_t whylen)
{
    struct stat st, fst;
    if (stat(path, &st)) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return DCEM_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "%s is not a regular file (%s)", path, file_kind(st.st_mode));
        return DCEM_EIO;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return DCEM_EIO;
    }
    if (fstat(fd, &fst) || !S_ISREG(fst.st_mode) || fst.st_dev != st.st_dev ||
        fst.st_ino != st.st_ino) {
        snprintf(why, whylen, "%s changed while it was opened", path);
        close(fd);
        return DCEM_EIO;
    }
    unsigned mode = (unsigned)(fst.st_mode & 07777);
    if (mode & 077) {
        snprintf(why, whylen, "%s is %s by group/others (mode %04o); chmod 600 it", path,
                 mode & 044 ? "readable" : "writable or executable", mode);
        close(fd);
        return DCEM_EIO;
    }
    size_t n = 0;
    while (n < cap - 1) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(why, whylen, "%s: %s", path, strerror(errno));
            close(fd);
            return DCEM_EIO;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return 0;
}

int dcem_io_load_signer(const char *path, dcem_signer **out, char *err, size_t errlen)
{
    char pem[4096], why[200];
    size_t len;
    *out = NULL;
    int rc = dcem_io_read_secret(path, pem, sizeof pem, &len, err, errlen);
    if (rc) return rc;
    rc = dcem_signer_from_pem(pem, len, out, why, sizeof why);
    memset(pem, 0, sizeof pem);
    if (rc) snprintf(err, errlen, "%s: %s", path, why);
    return rc;
}

int dcem_io_keygen(const char *path, dcem_pubkey *pub, char *err, size_t errlen)
{
    dcem_signer *s = NULL;
    char pem[4096];
    size_t len = 0;
    int rc = dcem_signer_generate(&s);
    if (!rc) rc = dcem_signer_pem(s, pem, sizeof pem, &len);
    if (rc) {
        snprintf(err, errlen, "%s: cannot make a key: %s", path, dcem_strerror(rc));
        dcem_signer_free(s);
        return rc;
    }
    dcem_signer_public(s, pub);
    dcem_signer_free(s);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s%s", path, strerror(errno),
                 errno == EEXIST ? " (a key is never overwritten: move it away first)" : "");
        memset(pem, 0, sizeof pem);
        return DCEM_EIO;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, pem + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        off += (size_t)n;
    }
    memset(pem, 0, sizeof pem);
    if (off < len || fsync(fd) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return DCEM_ESTORAGE;
    }
    close(fd);
    return 0;
}

int dcem_io_key_command(const char *path, int keygen, const char *who)
{
    char err[600], text[DCEM_PUBKEY_TEXT_MAX];
    dcem_pubkey pub;
    if (keygen) {
        if (dcem_io_keygen(path, &pub, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", who, err);
            return 1;
        }
        fprintf(stderr, "%s: new private key in %s (mode 0600); its public key:\n", who, path);
    } else {
        dcem_signer *s = NULL;
        if (dcem_io_load_signer(path, &s, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", who, err);
            return 1;
        }
        dcem_signer_public(s, &pub);
        dcem_signer_free(s);
    }
    dcem_pubkey_format(&pub, text);
    printf("%s\n", text);
    return 0;
}
