/* wire_batch_cjson.c — the batch decoder of common/wire.c as it was before
 * issue 12: a cJSON tree, then the checks. Built only for the tests
 * (tests/fuzz/fuzz_wire_diff.c, tests/unit/test_wire.c), as the reference
 * the streaming decoder must agree with on every input: the same result,
 * reason, message and decoded values. Do not change its behaviour; it is
 * kept as it was, helpers included (the small payloads' decoders in
 * common/wire.c still use the same helpers). */
#include "wire_batch_cjson.h"

#include "errors.h"

#include <cJSON.h>

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const quality_names[] = {"ok", "stale", "out_of_range", "comm_error"};
static const char *const ratio_note_names[] = {"", "held", "unknown", "mismatch"};

static int find_name(const char *const *names, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) return (int)i;
    return -1;
}

/* ---- decoding ---------------------------------------------------------- */

/* One decode: where the first failure's reason and detail go, and what the
 * payload is checked against. */
typedef struct dctx {
    int reason;
    char *err;
    size_t errlen;
    const char *site, *gateway; /* the topic's, or NULL */
    dcem_wire_reading *storage;
    size_t cap;
} dctx;

__attribute__((format(printf, 3, 4))) static int fail(dctx *c, int reason, const char *fmt, ...)
{
    c->reason = reason;
    if (c->err && c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return DCEM_EINVAL;
}

/* The member called name of obj into *item (NULL when absent). A key given
 * twice is an error: which one counts would be up to the parser. */
static int member(dctx *c, const cJSON *obj, const char *path, const char *name, int required,
                  const cJSON **item)
{
    *item = NULL;
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (!it->string || strcmp(it->string, name) != 0) continue;
        if (*item) return fail(c, DCEM_WIRE_DUPLICATE_FIELD, "%s%s: given twice", path, name);
        *item = it;
    }
    if (!*item && required) return fail(c, DCEM_WIRE_MISSING_FIELD, "%s%s: missing", path, name);
    return 0;
}

/* A NUL byte, or a NUL escaped as \u0000: cJSON would end a C string there,
 * so "a\u0000b" would pass as meter "a". A backslash escapes the next byte,
 * which is how "\\u0000" (a backslash, then text) is told apart. */
static int has_nul(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\0') return 1;
        if (buf[i] != '\\') continue;
        if (len - i > 5 && memcmp(buf + i + 1, "u0000", 5) == 0) return 1;
        i++;
    }
    return 0;
}

/* The checks every payload gets, in this order: its size (before any
 * parsing, so a 10 MB payload costs nothing), no NUL, one JSON object with
 * only whitespace after it, and v (a future schema may differ in all else). */
static int parse(dctx *c, const char *buf, size_t len, size_t max, cJSON **root)
{
    if (len > max) return fail(c, DCEM_WIRE_TOO_LARGE, "%zu bytes: the limit is %zu", len, max);
    if (!buf || len == 0) return fail(c, DCEM_WIRE_NOT_JSON, "empty payload");
    if (has_nul(buf, len)) return fail(c, DCEM_WIRE_NOT_JSON, "payload contains a NUL character");
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    size_t at = end && end >= buf ? (size_t)(end - buf) : 0;
    /* cJSON cannot tell a failed allocation from bad syntax; either way the
     * batch is not acked, so the agent sends it again */
    if (!*root) return fail(c, DCEM_WIRE_NOT_JSON, "not JSON (at byte %zu of %zu)", at, len);
    for (size_t i = at; i < len; i++)
        if (!strchr(" \t\r\n", buf[i]))
            return fail(c, DCEM_WIRE_NOT_JSON, "bytes after the JSON value (at byte %zu)", i);
    if (!cJSON_IsObject(*root)) return fail(c, DCEM_WIRE_WRONG_TYPE, "payload is not an object");
    const cJSON *v;
    int rc = member(c, *root, "", "v", 1, &v);
    if (rc) return rc;
    if (!cJSON_IsNumber(v)) return fail(c, DCEM_WIRE_WRONG_TYPE, "v: not a number");
    if (v->valuedouble != DCEM_WIRE_VERSION)
        return fail(c, DCEM_WIRE_BAD_VERSION, "v: %.17g is not supported (this reads v%d)",
                    v->valuedouble, DCEM_WIRE_VERSION);
    return 0;
}

typedef int (*body_fn)(dctx *c, const cJSON *root, void *out);

/* parse, then the payload's own checks; *reason and err as documented. */
static int decode(dctx *c, const char *buf, size_t len, size_t max, body_fn body, void *out,
                  int *reason)
{
    cJSON *root = NULL;
    if (c->err && c->errlen) c->err[0] = '\0';
    int rc = parse(c, buf, len, max, &root);
    if (!rc) rc = body(c, root, out);
    cJSON_Delete(root);
    if (reason) *reason = c->reason;
    return rc;
}

/* An integer in [min, max]. cJSON reads numbers as doubles, which are exact
 * up to 2^53: the wire's limit. "5.0" passes as 5; "5.5" does not. */
static int integer(dctx *c, const cJSON *obj, const char *path, const char *name, double min,
                   double max, int reason, double *out)
{
    const cJSON *it;
    int rc = member(c, obj, path, name, 1, &it);
    if (rc) return rc;
    if (!cJSON_IsNumber(it)) return fail(c, DCEM_WIRE_WRONG_TYPE, "%s%s: not a number", path, name);
    double d = it->valuedouble;
    if (!(d >= min && d <= max) || d != floor(d))
        return fail(c, reason, "%s%s: %.17g is not an integer in %.17g..%.17g", path, name, d, min,
                    max);
    *out = d;
    return 0;
}

static int u64(dctx *c, const cJSON *obj, const char *name, uint64_t min, uint64_t *out)
{
    double d = 0;
    int rc = integer(c, obj, "", name, (double)min, (double)DCEM_WIRE_MAX_INT, DCEM_WIRE_BAD_SEQ,
                     &d);
    *out = (uint64_t)d;
    return rc;
}

static int time_ms(dctx *c, const cJSON *obj, const char *path, const char *name, int64_t *out)
{
    double d = 0;
    int rc = integer(c, obj, path, name, 0, (double)DCEM_WIRE_MAX_T_MS, DCEM_WIRE_BAD_TIME, &d);
    *out = (int64_t)d;
    return rc;
}

/* A measured value: a finite number. null is what JavaScript and cJSON
 * print for NaN, so it is counted as not finite; 1e999 parses as infinity. */
static int number(dctx *c, const cJSON *it, const char *path, const char *name, double *out)
{
    if (cJSON_IsNull(it))
        return fail(c, DCEM_WIRE_NOT_FINITE, "%s%s: null (omit a value that is not finite)", path,
                    name);
    if (!cJSON_IsNumber(it)) return fail(c, DCEM_WIRE_WRONG_TYPE, "%s%s: not a number", path, name);
    if (!isfinite(it->valuedouble))
        return fail(c, DCEM_WIRE_NOT_FINITE, "%s%s: not a finite number", path, name);
    *out = it->valuedouble;
    return 0;
}

static int opt_number(dctx *c, const cJSON *obj, const char *path, const char *name, int *has,
                      double *out)
{
    const cJSON *it;
    int rc = member(c, obj, path, name, 0, &it);
    if (rc || !it) return rc;
    *has = 1;
    return number(c, it, path, name, out);
}

/* A required string; its length in *n. */
static int string(dctx *c, const cJSON *obj, const char *path, const char *name, const char **s,
                  size_t *n)
{
    const cJSON *it;
    *s = "";
    *n = 0;
    int rc = member(c, obj, path, name, 1, &it);
    if (rc) return rc;
    if (!cJSON_IsString(it)) return fail(c, DCEM_WIRE_WRONG_TYPE, "%s%s: not a string", path, name);
    *s = it->valuestring;
    *n = strlen(*s);
    return 0;
}

/* site or gateway: equal to the topic's (when given) and a valid id. The
 * payload's string is not echoed: it may be anything. */
static int id_field(dctx *c, const cJSON *obj, const char *name, const char *topic_id,
                    int mismatch, char *out)
{
    const char *s;
    size_t n;
    int rc = string(c, obj, "", name, &s, &n);
    if (rc) return rc;
    if (topic_id && strcmp(s, topic_id) != 0)
        return fail(c, mismatch, "%s: the payload names another %s than the topic's '%s'", name,
                    name, topic_id);
    if (!dcem_wire_id_valid(s, n)) return fail(c, DCEM_WIRE_BAD_ID, "%s: not a valid id", name);
    memcpy(out, s, n + 1);
    return 0;
}

/* "voltage_v_l2" -> (DCEM_Q_VOLTAGE_V, 2). 0 when not a known quantity. */
static int quantity_key(const char *s, int *q, int *phase)
{
    if (!s) return 0;
    size_t n = strlen(s);
    *phase = 0;
    if (n > 3 && s[n - 3] == '_' && s[n - 2] == 'l' && s[n - 1] >= '1' && s[n - 1] <= '3') {
        *phase = s[n - 1] - '0';
        n -= 3;
    }
    for (*q = 0; *q < DCEM_Q_COUNT; (*q)++) {
        const char *name = dcem_quantity_name(*q);
        if (dcem_quantity_measured(*q) && strlen(name) == n && memcmp(name, s, n) == 0) return 1;
    }
    return 0;
}

static int values(dctx *c, const cJSON *obj, const char *path, dcem_wire_reading *r,
                  size_t *unknown)
{
    unsigned char seen[DCEM_Q_COUNT][4] = {{0}};
    char vpath[48];
    snprintf(vpath, sizeof vpath, "%svalues.", path);
    if (!cJSON_IsObject(obj)) return fail(c, DCEM_WIRE_WRONG_TYPE, "%svalues: not an object", path);
    for (const cJSON *it = obj->child; it; it = it->next) {
        int q, ph;
        if (!quantity_key(it->string, &q, &ph)) {
            (*unknown)++; /* measured by a newer agent: skipped, counted */
            continue;
        }
        if (seen[q][ph]++)
            return fail(c, DCEM_WIRE_DUPLICATE_FIELD, "%s%s: given twice", vpath, it->string);
        if (ph == 0 && (q == DCEM_Q_ENERGY_IMPORT_KWH || q == DCEM_Q_POWER_KW))
            return fail(c, DCEM_WIRE_DUPLICATE_FIELD, "%s%s: belongs in %s", vpath, it->string,
                        q == DCEM_Q_POWER_KW ? "kw" : "kwh");
        dcem_wire_value *v = &r->values[r->n_values];
        int rc = number(c, it, vpath, it->string, &v->value);
        if (rc) return rc;
        v->quantity = q;
        v->phase = ph;
        r->n_values++; /* at most DCEM_WIRE_MAX_VALUES: each (q, ph) once */
    }
    return 0;
}

static int reading(dctx *c, const cJSON *obj, size_t i, dcem_wire_reading *r, size_t *unknown)
{
    char path[40];
    snprintf(path, sizeof path, "readings[%zu].", i);
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(obj))
        return fail(c, DCEM_WIRE_WRONG_TYPE, "readings[%zu]: not an object", i);
    const char *s;
    size_t n;
    const cJSON *it;
    int rc = string(c, obj, path, "meter", &s, &n);
    if (rc) return rc;
    if (!dcem_wire_id_valid(s, n))
        return fail(c, DCEM_WIRE_BAD_METER, "%smeter: not a valid meter id", path);
    memcpy(r->meter, s, n + 1);
    if ((rc = time_ms(c, obj, path, "t", &r->t_ms)) || (rc = string(c, obj, path, "q", &s, &n)))
        return rc;
    if ((r->quality = find_name(quality_names, COUNT(quality_names), s, n)) < 0)
        return fail(c, DCEM_WIRE_BAD_QUALITY, "%sq: not ok, stale, out_of_range or comm_error",
                    path);
    int has_ct = 0, has_pt = 0;
    if ((rc = opt_number(c, obj, path, "ct", &has_ct, &r->ct)) ||
        (rc = opt_number(c, obj, path, "pt", &has_pt, &r->pt)) ||
        (rc = member(c, obj, path, "ratio", 0, &it)))
        return rc;
    if ((has_ct && !dcem_ratio_valid(r->ct)) || (has_pt && !dcem_ratio_valid(r->pt)))
        return fail(c, DCEM_WIRE_BAD_FIELD, "%s%s: a transformer ratio must be > 0 and <= %g",
                    path, has_ct && !dcem_ratio_valid(r->ct) ? "ct" : "pt", DCEM_RATIO_MAX);
    if (!has_ct) r->ct = 1;
    if (!has_pt) r->pt = 1;
    if (it) {
        if (!cJSON_IsString(it))
            return fail(c, DCEM_WIRE_WRONG_TYPE, "%sratio: not a string", path);
        r->ratio_note = find_name(ratio_note_names, COUNT(ratio_note_names), it->valuestring,
                                  strlen(it->valuestring));
        if (r->ratio_note <= 0)
            return fail(c, DCEM_WIRE_BAD_FIELD, "%sratio: not held, unknown or mismatch", path);
    }
    if ((rc = opt_number(c, obj, path, "kwh", &r->has_kwh, &r->kwh)) ||
        (rc = opt_number(c, obj, path, "kw", &r->has_kw, &r->kw)) ||
        (rc = member(c, obj, path, "values", 0, &it)) ||
        (it && (rc = values(c, it, path, r, unknown))))
        return rc;
    if (r->quality == DCEM_WIRE_Q_COMM_ERROR &&
        (r->has_kwh || r->has_kw || r->n_values || has_ct || has_pt || r->ratio_note))
        return fail(c, DCEM_WIRE_BAD_QUALITY, "%sq: a comm_error reading has no values", path);
    return 0;
}

static int batch(dctx *c, const cJSON *root, void *p)
{
    dcem_wire_batch *out = p;
    int rc;
    if ((rc = id_field(c, root, "site", c->site, DCEM_WIRE_SITE_MISMATCH, out->site)) ||
        (rc = id_field(c, root, "gateway", c->gateway, DCEM_WIRE_GATEWAY_MISMATCH,
                       out->gateway)) ||
        (rc = u64(c, root, "epoch", 1, &out->epoch)) || (rc = u64(c, root, "seq", 1, &out->seq)))
        return rc;
    out->identified = 1;
    const cJSON *list;
    if ((rc = member(c, root, "", "readings", 1, &list))) return rc;
    if (!cJSON_IsArray(list)) return fail(c, DCEM_WIRE_WRONG_TYPE, "readings: not an array");
    size_t limit = c->cap < DCEM_WIRE_MAX_READINGS ? c->cap : DCEM_WIRE_MAX_READINGS, n = 0;
    for (const cJSON *it = list->child; it; it = it->next) n++;
    out->listed_readings = n; /* within the byte limit: counting them all is cheap */
    if (n > limit) return fail(c, DCEM_WIRE_TOO_MANY_READINGS, "readings: more than %zu", limit);
    n = 0;
    for (const cJSON *it = list->child; it; it = it->next, n++)
        if ((rc = reading(c, it, n, &c->storage[n], &out->unknown_values))) return rc;
    out->n_readings = n;
    return 0;
}

int dcem_wire_decode_batch_cjson(const char *buf, size_t len, const char *topic_site,
                           const char *topic_gateway, dcem_wire_reading *storage, size_t cap,
                           dcem_wire_batch *out, int *reason, char *err, size_t errlen)
{
    dctx c = {0, err, errlen, topic_site, topic_gateway, storage, cap};
    memset(out, 0, sizeof *out);
    out->readings = storage;
    int rc = decode(&c, buf, len, DCEM_WIRE_MAX_PAYLOAD, batch, out, reason);
    if (rc) out->n_readings = 0;
    return rc;
}

