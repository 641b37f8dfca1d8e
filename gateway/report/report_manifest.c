#include "report_manifest.h"
#include "errors.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64u << 10)
#define MAX_MANIFEST (1u << 20)

static void to_hex(const unsigned char *md, unsigned n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * n] = 0;
}

int dcem_sha256_hex(const void *buf, size_t len, char hex[DCEM_SHA256_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL) || n != 32) return DCEM_ENOMEM;
    to_hex(md, n, hex);
    return 0;
}

int dcem_sha256_file(const char *path, char hex[DCEM_SHA256_HEX], char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return DCEM_EIO;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = malloc(CHUNK);
    int rc = ctx && buf && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ? 0 : DCEM_ENOMEM;
    size_t got;
    while (!rc && (got = fread(buf, 1, CHUNK, f)) > 0)
        if (!EVP_DigestUpdate(ctx, buf, got)) rc = DCEM_ENOMEM;
    if (!rc && ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = DCEM_EIO;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!rc && (!EVP_DigestFinal_ex(ctx, md, &n) || n != 32)) rc = DCEM_ENOMEM;
    if (!rc) to_hex(md, n, hex);
    if (rc == DCEM_ENOMEM) snprintf(err, errlen, "%s: SHA-256 failed (out of memory)", path);
    EVP_MD_CTX_free(ctx);
    free(buf);
    fclose(f);
    return rc;
}

int dcem_manifest_write(const char *dir, const char *const *names, size_t n, char *err,
                        size_t errlen)
{
    if (errlen) *err = 0;
    for (size_t i = 0; i < n; i++)
        if (!*names[i] || strpbrk(names[i], "/\r\n\\")) {
            snprintf(err, errlen, "'%s': not a plain file name", names[i]);
            return DCEM_EINVAL;
        }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, DCEM_MANIFEST_NAME);
    FILE *out = fopen(path, "wb");
    if (!out) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return DCEM_EIO;
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char file[4096], hex[DCEM_SHA256_HEX];
        snprintf(file, sizeof file, "%s/%s", dir, names[i]);
        rc = dcem_sha256_file(file, hex, err, errlen);
        /* two spaces: sha256sum's text mode, which it checks like binary on POSIX */
        if (!rc && fprintf(out, "%s  %s\n", hex, names[i]) < 0) rc = DCEM_EIO;
    }
    if (!rc && (fflush(out) || fsync(fileno(out)))) rc = DCEM_EIO;
    if (fclose(out) && !rc) rc = DCEM_EIO;
    if (rc == DCEM_EIO && !*err) snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return rc;
}

int dcem_manifest_lists(const char *path, const char *name)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char *buf = malloc(MAX_MANIFEST + 1);
    size_t len = buf ? fread(buf, 1, MAX_MANIFEST, f) : 0;
    fclose(f);
    if (!buf) return 0;
    buf[len] = 0;
    int found = 0;
    size_t nlen = strlen(name);
    for (char *line = buf; *line && !found;) {
        char *end = strchr(line, '\n');
        size_t l = end ? (size_t)(end - line) : strlen(line);
        /* "HEX  NAME" or "HEX *NAME" (sha256sum's binary mode) */
        if (l == 66 + nlen && line[64] == ' ' && (line[65] == ' ' || line[65] == '*') &&
            !memcmp(line + 66, name, nlen))
            found = 1;
        line = end ? end + 1 : line + l;
    }
    free(buf);
    return found;
}
