#include "dcem_io.h"
#include "errors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
