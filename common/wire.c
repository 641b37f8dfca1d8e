#include "wire.h"
#include "sign.h"
#include "errors.h"

#include <cJSON.h>

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const reason_names[] = {
    "ok", "too_large", "not_json", "wrong_type", "missing_field", "duplicate_field",
    "unsupported_version", "bad_id", "site_mismatch", "gateway_mismatch", "bad_seq",
    "too_many_readings", "bad_meter", "bad_time", "bad_quality", "not_finite", "bad_command",
    "bad_field", "unsigned", "bad_signature", "unknown_gateway"};
_Static_assert(COUNT(reason_names) == DCEM_WIRE_REASON_COUNT, "a name for every reason");

static const char *const quality_names[] = {"ok", "stale", "out_of_range", "comm_error"};
_Static_assert(COUNT(quality_names) == DCEM_WIRE_Q_COUNT, "a name for every quality");

static const char *const ratio_note_names[] = {"", "held", "unknown", "mismatch"};
_Static_assert(COUNT(ratio_note_names) == DCEM_WIRE_RATIO_NOTE_COUNT, "a name for every note");

static const char *const leaf_names[] = {"data", "ack", "ctl", "state", "metrics", "alerts"};
_Static_assert(COUNT(leaf_names) == DCEM_WIRE_LEAF_COUNT, "a name for every leaf");

static const char *const cmd_names[] = {"resend"};
_Static_assert(COUNT(cmd_names) == DCEM_WIRE_CMD_COUNT, "a name for every command");

static const char *const drop_names[] = {"queue_full", "spool_full_batches", "encode", "too_large",
                                         "spool_error"};
_Static_assert(COUNT(drop_names) == DCEM_WIRE_DROP_COUNT, "a name for every drop reason");

static const char *const refuse_names[] = {"unknown_meter", "future", "out_of_range",
                                           "wrong_kind", "quarantined", "too_old"};
_Static_assert(COUNT(refuse_names) == DCEM_REFUSE_COUNT, "a name for every refusal");

static int find_name(const char *const *names, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) return (int)i;
    return -1;
}

const char *dcem_wire_reason_name(int reason)
{
    return reason >= 0 && reason < DCEM_WIRE_REASON_COUNT ? reason_names[reason] : "unknown";
}

const char *dcem_wire_quality_name(int quality)
{
    return quality >= 0 && quality < DCEM_WIRE_Q_COUNT ? quality_names[quality] : "unknown";
}

const char *dcem_wire_ratio_note_name(int note)
{
    return note > 0 && note < DCEM_WIRE_RATIO_NOTE_COUNT ? ratio_note_names[note] : "";
}

const char *dcem_wire_drop_name(int drop)
{
    return drop >= 0 && drop < DCEM_WIRE_DROP_COUNT ? drop_names[drop] : NULL;
}

const char *dcem_refuse_name(int why)
{
    return why >= 0 && why < DCEM_REFUSE_COUNT ? refuse_names[why] : NULL;
}

double dcem_wire_ratio(const dcem_wire_reading *r)
{
    return (r->ct ? r->ct : 1) * (r->pt ? r->pt : 1);
}

const char *dcem_wire_leaf_name(int leaf)
{
    return leaf >= 0 && leaf < DCEM_WIRE_LEAF_COUNT ? leaf_names[leaf] : NULL;
}

int dcem_wire_id_valid(const char *id, size_t len)
{
    return dcem_id_valid(id, len);
}

/* A NUL-terminated id inside a char[DCEM_ID_MAX] (or any string). */
static int id_ok(const char *id)
{
    return id && dcem_wire_id_valid(id, strnlen(id, DCEM_ID_MAX));
}

/* ---- topics ---------------------------------------------------------- */

int dcem_wire_topic(char *buf, size_t len, const char *site, const char *gateway,
                    const char *leaf)
{
    if (!id_ok(site) || !leaf || (gateway && !id_ok(gateway))) return DCEM_EINVAL;
    int l = find_name(leaf_names, COUNT(leaf_names), leaf, strlen(leaf));
    /* alerts is the one site-level leaf; all others belong to a gateway */
    if (l < 0 || (gateway == NULL) != (l == DCEM_WIRE_ALERTS)) return DCEM_EINVAL;
    if (!buf || len == 0) return DCEM_EFULL;
    int n = gateway ? snprintf(buf, len, DCEM_WIRE_ROOT "/%s/%s/%s", site, gateway, leaf)
                    : snprintf(buf, len, DCEM_WIRE_ROOT "/%s/%s", site, leaf);
    if (n < 0 || (size_t)n >= len) {
        buf[0] = '\0';
        return DCEM_EFULL;
    }
    return 0;
}

int dcem_wire_topic_parse(const char *topic, size_t len, dcem_wire_topic_parts *out)
{
    static const char root[] = DCEM_WIRE_ROOT "/";
    const size_t rlen = sizeof root - 1;
    if (!topic || len <= rlen || memcmp(topic, root, rlen) != 0) return DCEM_EINVAL;
    const char *level[3];
    size_t llen[3], n = 0, start = rlen;
    for (size_t i = rlen; i <= len; i++) {
        if (i < len && topic[i] != '/') continue;
        if (n == 3) return DCEM_EINVAL;
        level[n] = topic + start;
        llen[n++] = i - start;
        start = i + 1;
    }
    if (n < 2) return DCEM_EINVAL;
    int leaf = find_name(leaf_names, COUNT(leaf_names), level[n - 1], llen[n - 1]);
    if (leaf < 0 || (n == 2) != (leaf == DCEM_WIRE_ALERTS)) return DCEM_EINVAL;
    for (size_t i = 0; i + 1 < n; i++)
        if (!dcem_wire_id_valid(level[i], llen[i])) return DCEM_EINVAL;
    memcpy(out->site, level[0], llen[0]);
    out->site[llen[0]] = '\0';
    out->gateway[0] = '\0';
    if (n == 3) {
        memcpy(out->gateway, level[1], llen[1]);
        out->gateway[llen[1]] = '\0';
    }
    out->leaf = leaf;
    return 0;
}

/* ---- encoding ---------------------------------------------------------- */

/* The output: grows by doubling, never beyond max bytes (+ NUL). The first
 * error sticks (an encoder may start with DCEM_EINVAL) and later puts do
 * nothing, so encoders check once, in finish(). */
typedef struct wbuf {
    char *p;
    size_t len, cap, max;
    int err;
} wbuf;

__attribute__((format(printf, 2, 3))) static void put(wbuf *w, const char *fmt, ...)
{
    while (!w->err) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(w->p ? w->p + w->len : NULL, w->cap - w->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            w->err = DCEM_EINVAL;
            return;
        }
        if (w->len + (size_t)n < w->cap) {
            w->len += (size_t)n;
            return;
        }
        size_t need = w->len + (size_t)n + 1, cap = w->cap ? w->cap : 512;
        if (need > w->max + 1) {
            w->err = DCEM_EFULL;
            return;
        }
        while (cap < need) cap *= 2;
        if (cap > w->max + 1) cap = w->max + 1;
        char *p = realloc(w->p, cap);
        if (!p) {
            w->err = DCEM_ENOMEM;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
}

static int finish(wbuf *w, char **json, size_t *len)
{
    if (w->err) free(w->p);
    *json = w->err ? NULL : w->p;
    *len = w->err ? 0 : w->len;
    return w->err;
}

/* The shortest of %.15g, %.16g, %.17g that reads back as exactly v: a
 * counter of 42949672.95 stays "42949672.95", and 17 digits always round-trip
 * (IEEE 754 binary64). v must be finite. */
static void put_number(wbuf *w, const char *sep, const char *key, double v)
{
    char s[32];
    int prec = 15;
    snprintf(s, sizeof s, "%.*g", prec, v);
    while (prec < 17 && strtod(s, NULL) != v) snprintf(s, sizeof s, "%.*g", ++prec, v);
    put(w, "%s\"%s\":%s", sep, key, s);
}

static int int_ok(uint64_t v, uint64_t min)
{
    return v >= min && v <= DCEM_WIRE_MAX_INT;
}

static int time_ok(int64_t t)
{
    return t >= 0 && t <= DCEM_WIRE_MAX_T_MS;
}

/* The reading's own fields, and its values: known quantity, phase 0-3, each
 * (quantity, phase) once, and not one of the two that have their own key. */
static int reading_ok(const dcem_wire_reading *r)
{
    unsigned char seen[DCEM_Q_COUNT][4] = {{0}};
    if (!id_ok(r->meter) || !time_ok(r->t_ms) || r->quality < 0 ||
        r->quality >= DCEM_WIRE_Q_COUNT || r->n_values > DCEM_WIRE_MAX_VALUES ||
        (r->ct && !dcem_ratio_valid(r->ct)) || (r->pt && !dcem_ratio_valid(r->pt)) ||
        r->ratio_note < 0 || r->ratio_note >= DCEM_WIRE_RATIO_NOTE_COUNT)
        return 0;
    for (size_t i = 0; i < r->n_values; i++) {
        int q = r->values[i].quantity, ph = r->values[i].phase;
        if (!dcem_quantity_measured(q) || ph < 0 || ph > 3) return 0;
        if (ph == 0 && (q == DCEM_Q_ENERGY_IMPORT_KWH || q == DCEM_Q_POWER_KW)) return 0;
        if (seen[q][ph]++) return 0;
    }
    return 1;
}

static void put_reading(wbuf *w, const dcem_wire_reading *r)
{
    static const char *const suffix[] = {"", "_l1", "_l2", "_l3"};
    if (!reading_ok(r)) w->err = DCEM_EINVAL;
    /* NaN and Inf are never numbers on the wire: such a value is left out,
     * and the quality says why. A comm error has no values at all. */
    size_t n_finite = 0;
    for (size_t i = 0; i < r->n_values; i++) n_finite += isfinite(r->values[i].value) != 0;
    int quality = r->quality, values = r->quality != DCEM_WIRE_Q_COMM_ERROR;
    if (quality == DCEM_WIRE_Q_OK && ((r->has_kwh && !isfinite(r->kwh)) ||
                                      (r->has_kw && !isfinite(r->kw)) || n_finite < r->n_values))
        quality = DCEM_WIRE_Q_OUT_OF_RANGE;
    put(w, "{\"meter\":\"%s\",\"t\":%" PRId64 ",\"q\":\"%s\"", r->meter, r->t_ms,
        dcem_wire_quality_name(quality));
    double ct = r->ct ? r->ct : 1, pt = r->pt ? r->pt : 1;
    if (values && ct != 1) put_number(w, ",", "ct", ct);
    if (values && pt != 1) put_number(w, ",", "pt", pt);
    if (values && r->ratio_note)
        put(w, ",\"ratio\":\"%s\"", dcem_wire_ratio_note_name(r->ratio_note));
    if (values && r->has_kwh && isfinite(r->kwh)) put_number(w, ",", "kwh", r->kwh);
    if (values && r->has_kw && isfinite(r->kw)) put_number(w, ",", "kw", r->kw);
    if (values && n_finite) {
        const char *sep = ",\"values\":{";
        for (size_t i = 0; i < r->n_values && !w->err; i++) {
            const dcem_wire_value *v = &r->values[i];
            if (!isfinite(v->value)) continue;
            char key[48];
            snprintf(key, sizeof key, "%s%s", dcem_quantity_name(v->quantity), suffix[v->phase]);
            put_number(w, sep, key, v->value);
            sep = ",";
        }
        put(w, "}");
    }
    put(w, "}");
}

int dcem_wire_encode_batch(const dcem_wire_batch *b, char **json, size_t *len)
{
    wbuf w = {.max = DCEM_WIRE_MAX_PAYLOAD - DCEM_SIG_SUFFIX_LEN};
    if (!id_ok(b->site) || !id_ok(b->gateway) || !int_ok(b->epoch, 1) || !int_ok(b->seq, 1) ||
        (b->n_readings && !b->readings))
        w.err = DCEM_EINVAL;
    else if (b->n_readings > DCEM_WIRE_MAX_READINGS)
        w.err = DCEM_EFULL;
    put(&w,
        "{\"v\":%d,\"site\":\"%s\",\"gateway\":\"%s\",\"epoch\":%" PRIu64 ",\"seq\":%" PRIu64
        ",\"readings\":[",
        DCEM_WIRE_VERSION, b->site, b->gateway, b->epoch, b->seq);
    for (size_t i = 0; i < b->n_readings && !w.err; i++) {
        if (i) put(&w, ",");
        put_reading(&w, &b->readings[i]);
    }
    put(&w, "]}");
    return finish(&w, json, len);
}

int dcem_wire_encode_ack(const dcem_wire_ack *a, char **json, size_t *len)
{
    wbuf w = {.max = DCEM_WIRE_MAX_SMALL_PAYLOAD - DCEM_SIG_SUFFIX_LEN};
    if (!int_ok(a->epoch, 1) || !int_ok(a->seq, 0)) w.err = DCEM_EINVAL;
    put(&w, "{\"v\":%d,\"epoch\":%" PRIu64 ",\"seq\":%" PRIu64, DCEM_WIRE_VERSION, a->epoch,
        a->seq);
    /* only the reasons that happened: an ack without refusals is what an
     * older agent has always read (the signature, if any, follows: last) */
    int any = 0;
    for (int i = 0; i < DCEM_REFUSE_COUNT; i++) {
        if (!a->refused[i]) continue;
        put(&w, "%s\"%s\":%" PRIu32, any++ ? "," : ",\"refused\":{", refuse_names[i],
            a->refused[i]);
    }
    put(&w, any ? "}}" : "}");
    return finish(&w, json, len);
}

int dcem_wire_encode_ctl(const dcem_wire_ctl *c, char **json, size_t *len)
{
    wbuf w = {.max = DCEM_WIRE_MAX_SMALL_PAYLOAD - DCEM_SIG_SUFFIX_LEN};
    if (c->cmd < 0 || c->cmd >= DCEM_WIRE_CMD_COUNT || !int_ok(c->epoch, 1) ||
        !int_ok(c->from_seq, 1))
        w.err = DCEM_EINVAL;
    else
        put(&w, "{\"v\":%d,\"cmd\":\"%s\",\"epoch\":%" PRIu64 ",\"from_seq\":%" PRIu64 "}",
            DCEM_WIRE_VERSION, cmd_names[c->cmd], c->epoch, c->from_seq);
    return finish(&w, json, len);
}

/* Printable ASCII without '"' and '\': goes on the wire without escaping. */
static int version_ok(const char *s, size_t len)
{
    if (len == 0 || len >= DCEM_WIRE_VERSION_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\') return 0;
    return 1;
}

int dcem_wire_encode_state(const dcem_wire_state *s, char **json, size_t *len)
{
    wbuf w = {.max = DCEM_WIRE_MAX_SMALL_PAYLOAD - DCEM_SIG_SUFFIX_LEN};
    if (!s->online)
        put(&w, "{\"v\":%d,\"online\":false}", DCEM_WIRE_VERSION);
    else if (!int_ok(s->epoch, 1) || !int_ok(s->next_seq, 1) || s->queued >= s->next_seq ||
             !version_ok(s->version, strnlen(s->version, DCEM_WIRE_VERSION_MAX)))
        w.err = DCEM_EINVAL;
    else
        put(&w,
            "{\"v\":%d,\"online\":true,\"epoch\":%" PRIu64 ",\"next_seq\":%" PRIu64
            ",\"queued\":%" PRIu64 ",\"version\":\"%s\"}",
            DCEM_WIRE_VERSION, s->epoch, s->next_seq, s->queued, s->version);
    return finish(&w, json, len);
}

static int metrics_ok(const dcem_wire_metrics *m)
{
    if (m->has_dropped)
        for (int i = 0; i < DCEM_WIRE_DROP_COUNT; i++)
            if (m->dropped[i] > DCEM_WIRE_MAX_INT) return 0;
    if (m->has_refused)
        for (int i = 0; i < DCEM_REFUSE_COUNT; i++)
            if (m->refused[i] > DCEM_WIRE_MAX_INT) return 0;
    return id_ok(m->site) && id_ok(m->gateway) && time_ok(m->start_ms) && time_ok(m->end_ms) &&
           m->end_ms > m->start_ms && !(m->pue < 0) && !(m->green_share < 0) &&
           !(m->green_share > 1) && !(m->completeness < 0) && !(m->completeness > 1);
}

int dcem_wire_encode_metrics(const dcem_wire_metrics *m, char **json, size_t *len)
{
    wbuf w = {.max = DCEM_WIRE_MAX_SMALL_PAYLOAD - DCEM_SIG_SUFFIX_LEN,
              .err = metrics_ok(m) ? 0 : DCEM_EINVAL};
    put(&w,
        "{\"v\":%d,\"site\":\"%s\",\"gateway\":\"%s\",\"start\":%" PRId64 ",\"end\":%" PRId64
        ",\"kwh\":{",
        DCEM_WIRE_VERSION, m->site, m->gateway, m->start_ms, m->end_ms);
    const char *sep = "";
    for (int r = 0; r < DCEM_ROLE_COUNT; r++) {
        if (!isfinite(m->role_kwh[r])) continue; /* no meter of that role */
        put_number(&w, sep, dcem_role_name(r), m->role_kwh[r]);
        sep = ",";
    }
    put(&w, "}");
    if (isfinite(m->pue)) put_number(&w, ",", "pue", m->pue);
    if (isfinite(m->green_share)) put_number(&w, ",", "green_share", m->green_share);
    if (isfinite(m->completeness)) put_number(&w, ",", "completeness", m->completeness);
    for (int i = 0; m->has_dropped && i < DCEM_WIRE_DROP_COUNT; i++)
        put(&w, "%s\"%s\":%" PRIu64, i ? "," : ",\"dropped\":{", drop_names[i], m->dropped[i]);
    if (m->has_dropped) put(&w, "}");
    for (int i = 0; m->has_refused && i < DCEM_REFUSE_COUNT; i++)
        put(&w, "%s\"%s\":%" PRIu64, i ? "," : ",\"refused\":{", refuse_names[i], m->refused[i]);
    put(&w, m->has_refused ? "}}" : "}");
    return finish(&w, json, len);
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

/* ---- the batch: a streaming reader, no tree ------------------------------

   The hot path of the collector: a batch of 250 readings is 19 KB, and a
   cJSON tree of it was 12 % of the collector's time (docs/benchmarks.md).
   This reader walks the payload once and writes the readings straight into
   the caller's storage. It accepts and refuses exactly what the cJSON
   decoder did (tests/fuzz/wire_batch_cjson.c keeps that decoder, and
   fuzz_wire_diff checks the two agree on every input, messages included):

   - the grammar is cJSON's, not RFC 8259's: any byte <= 0x20 is
     whitespace between tokens, a UTF-8 BOM may open the payload, numbers
     are the longest run of [0-9+-eE.] read by strtod (so "-.5" and "01"
     are numbers), control bytes may stand raw inside strings, at most
     CJSON_NESTING_LIMIT arrays and objects are nested, and an error's byte
     position is where cJSON stopped;
   - a string is what cJSON decodes, up to its first NUL (cJSON hands out C
     strings): "\u00zz" decodes to a NUL, which ends it;
   - syntax comes first: a payload that is not JSON is not_json whatever
     else is wrong with it; then the checks in the cJSON decoder's order —
     v, site, gateway, epoch, seq, readings, then each reading's fields in
     the order meter, t, q, ct, pt, ratio, kwh, kw, values, each value in
     the payload's order — so every field's first occurrence is noted while
     reading, and judged once the payload has been read. */

enum { J_NULL = 1, J_FALSE, J_TRUE, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT };

/* The raw bytes of a string between its quotes, s[a..b); esc: has a '\'. */
typedef struct jstr {
    size_t a, b;
    int esc;
} jstr;

typedef struct jval {
    int type;       /* J_*, 0: absent */
    unsigned count; /* times its key was given */
    double num;
    jstr str;
} jval;

typedef struct jr {
    const unsigned char *s;
    size_t len, off, depth;
    char dp; /* the decimal point strtod reads (cJSON swaps it in for '.') */
} jr;

/* cJSON's whitespace: any byte <= 0x20. At the end of the input it steps
 * back onto the last byte, as cJSON does (only an error's position shows). */
static void jr_ws(jr *r)
{
    if (r->off >= r->len) return;
    while (r->off < r->len && r->s[r->off] <= 32)
        r->off++;
    if (r->off == r->len) r->off--;
}

static unsigned hex4(const unsigned char *p)
{
    unsigned h = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = p[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'A' && ch <= 'F')
            d = 10u + ch - 'A';
        else if (ch >= 'a' && ch <= 'f')
            d = 10u + ch - 'a';
        else
            return 0; /* cJSON reads a bad digit as the code 0 */
        h = h << 4 | d;
    }
    return h;
}

/* A \u escape at s[p] in a string ending at s[e]: its length (6, or 12 for
 * a surrogate pair) and code point; 0 when cJSON refuses it. */
static size_t jr_utf16(const unsigned char *s, size_t p, size_t e, uint32_t *cp)
{
    if (e - p < 6) return 0;
    unsigned first = hex4(s + p + 2);
    if (first >= 0xDC00 && first <= 0xDFFF) return 0;
    if (first < 0xD800 || first > 0xDBFF) {
        *cp = first;
        return 6;
    }
    size_t q = p + 6;
    if (e - q < 6 || s[q] != '\\' || s[q + 1] != 'u') return 0;
    unsigned second = hex4(s + q + 2);
    if (second < 0xDC00 || second > 0xDFFF) return 0;
    *cp = 0x10000 + (((first & 0x3FF) << 10) | (second & 0x3FF));
    return 12;
}

/* A string at s[off]. cJSON finds its end skipping '\' and the byte after,
 * then decodes escapes from the start; a failure leaves off where cJSON's
 * does: after the opening quote, or on the escape it refused. */
static int jr_string(jr *r, jstr *out)
{
    const unsigned char *s = r->s;
    size_t start = r->off, e = start + 1;
    int esc = 0;
    r->off = start + 1;
    if (start >= r->len || s[start] != '"') return -1;
    while (e < r->len && s[e] != '"') {
        if (s[e] == '\\') {
            if (e + 1 >= r->len) return -1;
            esc = 1;
            e++;
        }
        e++;
    }
    if (e >= r->len) return -1;
    for (size_t p = start + 1; esc && p < e;) {
        if (s[p] != '\\') {
            p++;
            continue;
        }
        uint32_t cp;
        size_t n = 2;
        switch (s[p + 1]) { /* p + 1 <= e: at worst the closing quote */
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
        case '"':
        case '\\':
        case '/':
            break;
        case 'u':
            n = jr_utf16(s, p, e, &cp);
            break;
        default:
            n = 0;
        }
        if (!n) {
            r->off = p;
            return -1;
        }
        p += n;
    }
    *out = (jstr){start + 1, e, esc};
    r->off = e + 1;
    return 0;
}

/* The string as cJSON decodes it, cut at its first NUL (where a C string
 * ends): its length, of which at most cap - 1 bytes go to buf (NUL-ended). */
static size_t jstr_get(const jr *r, const jstr *j, char *buf, size_t cap)
{
    const unsigned char *s = r->s;
    size_t n = 0;
    if (!j->esc) { /* no escape, no NUL (refused before parsing): the bytes */
        n = j->b - j->a;
        size_t k = n < cap ? n : cap - 1;
        memcpy(buf, s + j->a, k);
        buf[k] = '\0';
        return n;
    }
    for (size_t p = j->a; p < j->b;) {
        unsigned char out[4];
        size_t k = 1;
        if (s[p] != '\\') {
            out[0] = s[p++];
        } else {
            static const char from[] = "bfnrt\"\\/", to[] = "\b\f\n\r\t\"\\/";
            const char *at = strchr(from, s[p + 1]);
            if (s[p + 1] != 'u') { /* validated by jr_string */
                out[0] = (unsigned char)to[at - from];
                p += 2;
            } else {
                uint32_t cp = 0;
                p += jr_utf16(s, p, j->b, &cp);
                /* UTF-8, as cJSON writes it */
                k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
                static const unsigned char mark[5] = {0, 0, 0xC0, 0xE0, 0xF0};
                for (size_t i = k - 1; i > 0; i--, cp >>= 6)
                    out[i] = (unsigned char)((cp | 0x80) & 0xBF);
                out[0] = (unsigned char)(k > 1 ? (cp | mark[k]) & 0xFF : cp & 0x7F);
            }
        }
        for (size_t i = 0; i < k; i++) {
            if (out[i] == '\0') goto end;
            if (n + 1 < cap) buf[n] = (char)out[i];
            n++;
        }
    }
end:
    buf[n < cap ? n : cap - 1] = '\0';
    return n;
}

/* strcmp(the string, s) == 0 */
static int jstr_eq(const jr *r, const jstr *j, const char *s)
{
    size_t len = strlen(s);
    if (!j->esc) return j->b - j->a == len && memcmp(r->s + j->a, s, len) == 0;
    char small[DCEM_ID_MAX], *buf = len < sizeof small ? small : malloc(len + 1);
    if (!buf) return 0; /* out of memory: as if unequal, a mismatch refused (never acked) */
    int eq = jstr_get(r, j, buf, len + 1) == len && memcmp(buf, s, len) == 0;
    if (buf != small) free(buf);
    return eq;
}

/* A number at s[off]: the run of [0-9+-eE.] after it, read by strtod. */
static int jr_number(jr *r, double *out)
{
    const unsigned char *s = r->s + r->off;
    size_t n = 0, left = r->len - r->off;
    int dot = 0;
    for (; n < left; n++) {
        unsigned char ch = s[n];
        if (ch == '.')
            dot = 1;
        else if (!((ch >= '0' && ch <= '9') || ch == '+' || ch == '-' || ch == 'e' || ch == 'E'))
            break;
    }
    char small[64], *t = n < sizeof small ? small : malloc(n + 1);
    if (!t) return -1; /* cJSON fails the same way when it cannot allocate */
    memcpy(t, s, n);
    t[n] = '\0';
    for (size_t i = 0; dot && r->dp != '.' && i < n; i++)
        if (t[i] == '.') t[i] = r->dp;
    char *end = t;
    double d = strtod(t, &end);
    size_t used = (size_t)(end - t);
    if (t != small) free(t);
    if (used == 0) return -1;
    *out = d;
    r->off += used;
    return 0;
}

typedef int (*jr_elem_fn)(jr *r, void *ctx, size_t i);
typedef int (*jr_member_fn)(jr *r, void *ctx, const jstr *key);
static int jr_value(jr *r, jval *v);

/* An array at s[off] == '['; fn reads each element (NULL: jr_value). */
static int jr_array(jr *r, jr_elem_fn fn, void *ctx)
{
    if (r->depth >= CJSON_NESTING_LIMIT) return -1;
    r->depth++;
    r->off++;
    jr_ws(r);
    if (r->off < r->len && r->s[r->off] == ']') goto done;
    if (r->off >= r->len) {
        r->off--;
        return -1;
    }
    r->off--;
    size_t i = 0;
    do {
        jval skip;
        r->off++;
        jr_ws(r);
        if (fn ? fn(r, ctx, i++) : jr_value(r, &skip)) return -1;
        jr_ws(r);
    } while (r->off < r->len && r->s[r->off] == ',');
    if (r->off >= r->len || r->s[r->off] != ']') return -1;
done:
    r->depth--;
    r->off++;
    return 0;
}

/* An object at s[off] == '{'; fn reads each member's value (NULL: jr_value). */
static int jr_object(jr *r, jr_member_fn fn, void *ctx)
{
    if (r->depth >= CJSON_NESTING_LIMIT) return -1;
    r->depth++;
    r->off++;
    jr_ws(r);
    if (r->off < r->len && r->s[r->off] == '}') goto done;
    if (r->off >= r->len) {
        r->off--;
        return -1;
    }
    r->off--;
    do {
        jstr key;
        jval skip;
        r->off++;
        jr_ws(r);
        if (jr_string(r, &key)) return -1;
        jr_ws(r);
        if (r->off >= r->len || r->s[r->off] != ':') return -1;
        r->off++;
        jr_ws(r);
        if (fn ? fn(r, ctx, &key) : jr_value(r, &skip)) return -1;
        jr_ws(r);
    } while (r->off < r->len && r->s[r->off] == ',');
    if (r->off >= r->len || r->s[r->off] != '}') return -1;
done:
    r->depth--;
    r->off++;
    return 0;
}

/* Any value; its type, and its number or string. */
static int jr_value(jr *r, jval *v)
{
    const unsigned char *s = r->s + r->off;
    size_t left = r->len > r->off ? r->len - r->off : 0;
    if (left >= 4 && memcmp(s, "null", 4) == 0) {
        v->type = J_NULL;
        r->off += 4;
        return 0;
    }
    if (left >= 5 && memcmp(s, "false", 5) == 0) {
        v->type = J_FALSE;
        r->off += 5;
        return 0;
    }
    if (left >= 4 && memcmp(s, "true", 4) == 0) {
        v->type = J_TRUE;
        r->off += 4;
        return 0;
    }
    if (left == 0) return -1;
    switch (s[0]) {
    case '"':
        v->type = J_STRING;
        return jr_string(r, &v->str);
    case '[':
        v->type = J_ARRAY;
        return jr_array(r, NULL, NULL);
    case '{':
        v->type = J_OBJECT;
        return jr_object(r, NULL, NULL);
    default:
        if (s[0] != '-' && (s[0] < '0' || s[0] > '9')) return -1;
        v->type = J_NUMBER;
        return jr_number(r, &v->num);
    }
}

/* Notes a member's value: its first occurrence is kept, all are counted. */
static int jr_note(jr *r, jval *slot)
{
    jval v = {0};
    int rc = jr_value(r, &v);
    if (!rc && slot->count++ == 0) {
        v.count = 1;
        *slot = v;
    }
    return rc;
}

/* A key as the C string cJSON would hold (keys we look for are short: a
 * longer one fits no name). */
static size_t key_of(const jr *r, const jstr *k, char *buf, size_t cap)
{
    return jstr_get(r, k, buf, cap);
}

/* "voltage_v_l2" (n bytes) -> (DCEM_Q_VOLTAGE_V, 2). 0 when not a known quantity. */
static int quantity_key(const char *s, size_t n, int *q, int *phase)
{
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

/* A reading's fields, in the order they are checked. */
enum { F_METER, F_T, F_Q, F_CT, F_PT, F_RATIO, F_KWH, F_KW, F_VALUES, F_COUNT };
static const char *const reading_fields[F_COUNT] = {"meter", "t",   "q",  "ct",    "pt",
                                                    "ratio", "kwh", "kw", "values"};
/* The batch's fields. */
enum { B_V, B_SITE, B_GATEWAY, B_EPOCH, B_SEQ, B_READINGS, B_COUNT };
static const char *const batch_fields[B_COUNT] = {"v",     "site", "gateway",
                                                  "epoch", "seq",  "readings"};

/* Which of names[0..n) the key is; -1: none. */
static int field_of(const jr *r, const jstr *k, const char *const *names, int n)
{
    char buf[16];
    size_t len;
    const char *key;
    if (!k->esc) {
        key = (const char *)r->s + k->a;
        len = k->b - k->a;
    } else {
        len = key_of(r, k, buf, sizeof buf);
        key = buf;
    }
    if (len >= sizeof buf) return -1;
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], key, len) == 0) return i;
    return -1;
}

/* One decode of a batch: the checks' context and what reading noted. */
typedef struct bctx {
    dctx *c;
    jr *r;
    jval f[B_COUNT];
    size_t limit;        /* readings decoded at most: min(cap, DCEM_WIRE_MAX_READINGS) */
    size_t listed;       /* elements of the first "readings" array */
    size_t unknown;      /* unknown values of the readings that passed */
    int failed;          /* a reading failed its checks: */
    int fail_reason;     /*   its reason, */
    size_t fail_unknown; /*   out->unknown_values as the cJSON decoder left it, */
    char fail_msg[320];  /*   its message */
    /* the reading being read */
    jval rf[F_COUNT];
    dcem_wire_reading *cur;
    unsigned char seen[DCEM_Q_COUNT][4];
    size_t v_unknown; /* its unknown values before its values' first error */
    int v_reason;     /* that error (0: none) */
    char v_msg[160];
    size_t index;
} bctx;

__attribute__((format(printf, 3, 4))) static void vfail(bctx *x, int reason, const char *fmt, ...)
{
    x->v_reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->v_msg, sizeof x->v_msg, fmt, ap);
    va_end(ap);
}

/* A member of a reading's "values": checked in the payload's order. */
static int values_member(jr *r, void *ctx, const jstr *key)
{
    bctx *x = ctx;
    jval v = {0};
    if (jr_value(r, &v)) return -1;
    if (x->v_reason) return 0; /* past the first error: only the syntax matters */
    char k[DCEM_ID_MAX];
    size_t n = key_of(r, key, k, sizeof k);
    int q, ph;
    if (n >= sizeof k || !quantity_key(k, n, &q, &ph)) {
        x->v_unknown++; /* measured by a newer agent: skipped, counted */
        return 0;
    }
    char vpath[48];
    snprintf(vpath, sizeof vpath, "readings[%zu].values.", x->index);
    if (x->seen[q][ph]++)
        vfail(x, DCEM_WIRE_DUPLICATE_FIELD, "%s%s: given twice", vpath, k);
    else if (ph == 0 && (q == DCEM_Q_ENERGY_IMPORT_KWH || q == DCEM_Q_POWER_KW))
        vfail(x, DCEM_WIRE_DUPLICATE_FIELD, "%s%s: belongs in %s", vpath, k,
              q == DCEM_Q_POWER_KW ? "kw" : "kwh");
    else if (v.type == J_NULL)
        vfail(x, DCEM_WIRE_NOT_FINITE, "%s%s: null (omit a value that is not finite)", vpath, k);
    else if (v.type != J_NUMBER)
        vfail(x, DCEM_WIRE_WRONG_TYPE, "%s%s: not a number", vpath, k);
    else if (!isfinite(v.num))
        vfail(x, DCEM_WIRE_NOT_FINITE, "%s%s: not a finite number", vpath, k);
    else
        x->cur->values[x->cur->n_values++] = (dcem_wire_value){q, ph, v.num};
    return 0;
}

static int reading_member(jr *r, void *ctx, const jstr *key)
{
    bctx *x = ctx;
    int f = field_of(r, key, reading_fields, F_COUNT);
    if (f < 0) {
        jval skip;
        return jr_value(r, &skip);
    }
    jval *slot = &x->rf[f];
    if (f != F_VALUES || slot->count || r->off >= r->len || r->s[r->off] != '{')
        return jr_note(r, slot);
    slot->type = J_OBJECT;
    slot->count = 1;
    return jr_object(r, values_member, x);
}

/* The checks of a member of a reading or of the batch, in the cJSON
 * decoder's words. */
static int j_member(dctx *c, const jval *v, const char *path, const char *name, int required)
{
    if (v->count > 1) return fail(c, DCEM_WIRE_DUPLICATE_FIELD, "%s%s: given twice", path, name);
    if (!v->count && required) return fail(c, DCEM_WIRE_MISSING_FIELD, "%s%s: missing", path, name);
    return 0;
}

static int j_integer(dctx *c, const jval *v, const char *path, const char *name, double min,
                     double max, int reason, double *out)
{
    int rc = j_member(c, v, path, name, 1);
    if (rc) return rc;
    if (v->type != J_NUMBER) return fail(c, DCEM_WIRE_WRONG_TYPE, "%s%s: not a number", path, name);
    double d = v->num;
    if (!(d >= min && d <= max) || d != floor(d))
        return fail(c, reason, "%s%s: %.17g is not an integer in %.17g..%.17g", path, name, d, min,
                    max);
    *out = d;
    return 0;
}

static int j_opt_number(dctx *c, const jval *v, const char *path, const char *name, int *has,
                        double *out)
{
    int rc = j_member(c, v, path, name, 0);
    if (rc || !v->count) return rc;
    *has = 1;
    if (v->type == J_NULL)
        return fail(c, DCEM_WIRE_NOT_FINITE, "%s%s: null (omit a value that is not finite)", path,
                    name);
    if (v->type != J_NUMBER) return fail(c, DCEM_WIRE_WRONG_TYPE, "%s%s: not a number", path, name);
    if (!isfinite(v->num))
        return fail(c, DCEM_WIRE_NOT_FINITE, "%s%s: not a finite number", path, name);
    *out = v->num;
    return 0;
}

/* A required string, as a C string of at most cap - 1 bytes in buf; its
 * length in *n (>= cap: longer than buf, which then holds its start). */
static int j_string(dctx *c, const jr *r, const jval *v, const char *path, const char *name,
                    char *buf, size_t cap, size_t *n)
{
    buf[0] = '\0';
    *n = 0;
    int rc = j_member(c, v, path, name, 1);
    if (rc) return rc;
    if (v->type != J_STRING) return fail(c, DCEM_WIRE_WRONG_TYPE, "%s%s: not a string", path, name);
    *n = jstr_get(r, &v->str, buf, cap);
    return 0;
}

/* A reading, once read: its checks in the cJSON decoder's order; its
 * unknown values counted into *unknown as that decoder counted them. */
static int reading_check(dctx *c, bctx *x, dcem_wire_reading *rd, size_t *unknown)
{
    const jval *f = x->rf;
    const jr *r = x->r;
    char path[40], s[DCEM_ID_MAX];
    size_t n;
    snprintf(path, sizeof path, "readings[%zu].", x->index);
    int rc = j_string(c, r, &f[F_METER], path, "meter", s, sizeof s, &n);
    if (rc) return rc;
    if (n >= sizeof s || !dcem_wire_id_valid(s, n))
        return fail(c, DCEM_WIRE_BAD_METER, "%smeter: not a valid meter id", path);
    memcpy(rd->meter, s, n + 1);
    double t = 0;
    rc = j_integer(c, &f[F_T], path, "t", 0, (double)DCEM_WIRE_MAX_T_MS, DCEM_WIRE_BAD_TIME, &t);
    rd->t_ms = (int64_t)t;
    if (rc || (rc = j_string(c, r, &f[F_Q], path, "q", s, sizeof s, &n))) return rc;
    if ((rd->quality = n >= sizeof s ? -1 : find_name(quality_names, COUNT(quality_names), s, n)) <
        0)
        return fail(c, DCEM_WIRE_BAD_QUALITY, "%sq: not ok, stale, out_of_range or comm_error",
                    path);
    int has_ct = 0, has_pt = 0;
    if ((rc = j_opt_number(c, &f[F_CT], path, "ct", &has_ct, &rd->ct)) ||
        (rc = j_opt_number(c, &f[F_PT], path, "pt", &has_pt, &rd->pt)) ||
        (rc = j_member(c, &f[F_RATIO], path, "ratio", 0)))
        return rc;
    if ((has_ct && !dcem_ratio_valid(rd->ct)) || (has_pt && !dcem_ratio_valid(rd->pt)))
        return fail(c, DCEM_WIRE_BAD_FIELD, "%s%s: a transformer ratio must be > 0 and <= %g", path,
                    has_ct && !dcem_ratio_valid(rd->ct) ? "ct" : "pt", DCEM_RATIO_MAX);
    if (!has_ct) rd->ct = 1;
    if (!has_pt) rd->pt = 1;
    if (f[F_RATIO].count) {
        if (f[F_RATIO].type != J_STRING)
            return fail(c, DCEM_WIRE_WRONG_TYPE, "%sratio: not a string", path);
        n = jstr_get(r, &f[F_RATIO].str, s, sizeof s);
        rd->ratio_note =
            n >= sizeof s ? -1 : find_name(ratio_note_names, COUNT(ratio_note_names), s, n);
        if (rd->ratio_note <= 0)
            return fail(c, DCEM_WIRE_BAD_FIELD, "%sratio: not held, unknown or mismatch", path);
    }
    if ((rc = j_opt_number(c, &f[F_KWH], path, "kwh", &rd->has_kwh, &rd->kwh)) ||
        (rc = j_opt_number(c, &f[F_KW], path, "kw", &rd->has_kw, &rd->kw)) ||
        (rc = j_member(c, &f[F_VALUES], path, "values", 0)))
        return rc;
    if (f[F_VALUES].count) {
        if (f[F_VALUES].type != J_OBJECT)
            return fail(c, DCEM_WIRE_WRONG_TYPE, "%svalues: not an object", path);
        *unknown += x->v_unknown;
        if (x->v_reason) return fail(c, x->v_reason, "%s", x->v_msg);
    }
    if (rd->quality == DCEM_WIRE_Q_COMM_ERROR &&
        (rd->has_kwh || rd->has_kw || rd->n_values || has_ct || has_pt || rd->ratio_note))
        return fail(c, DCEM_WIRE_BAD_QUALITY, "%sq: a comm_error reading has no values", path);
    return 0;
}

/* An element of the batch's "readings": a reading is decoded into its
 * storage slot and checked at once; after the first that fails, or beyond
 * the limit, elements are only read. */
static int readings_elem(jr *r, void *ctx, size_t i)
{
    bctx *x = ctx;
    x->listed = i + 1;
    jval skip;
    if (x->failed || i >= x->limit) return jr_value(r, &skip);
    if (r->off >= r->len || r->s[r->off] != '{') {
        if (jr_value(r, &skip)) return -1;
        x->failed = 1;
        x->fail_reason = DCEM_WIRE_WRONG_TYPE;
        x->fail_unknown = x->unknown;
        snprintf(x->fail_msg, sizeof x->fail_msg, "readings[%zu]: not an object", i);
        return 0;
    }
    dcem_wire_reading *rd = &x->c->storage[i];
    memset(rd, 0, sizeof *rd);
    memset(x->rf, 0, sizeof x->rf);
    memset(x->seen, 0, sizeof x->seen);
    x->cur = rd;
    x->v_unknown = 0;
    x->v_reason = 0;
    x->index = i;
    if (jr_object(r, reading_member, x)) return -1;
    dctx rc_ctx = {0, x->fail_msg, sizeof x->fail_msg, NULL, NULL, NULL, 0};
    size_t unknown = x->unknown;
    if (reading_check(&rc_ctx, x, rd, &unknown)) {
        x->failed = 1;
        x->fail_reason = rc_ctx.reason;
        x->fail_unknown = unknown;
        return 0;
    }
    x->unknown = unknown;
    return 0;
}

static int batch_member(jr *r, void *ctx, const jstr *key)
{
    bctx *x = ctx;
    int f = field_of(r, key, batch_fields, B_COUNT);
    if (f < 0) {
        jval skip;
        return jr_value(r, &skip);
    }
    jval *slot = &x->f[f];
    if (f != B_READINGS || slot->count || r->off >= r->len || r->s[r->off] != '[')
        return jr_note(r, slot);
    slot->type = J_ARRAY;
    slot->count = 1;
    return jr_array(r, readings_elem, x);
}

/* site or gateway: as id_field. */
static int j_id(dctx *c, const jr *r, const jval *v, const char *name, const char *topic_id,
                int mismatch, char *out)
{
    char s[DCEM_ID_MAX];
    size_t n;
    int rc = j_string(c, r, v, "", name, s, sizeof s, &n);
    if (rc) return rc;
    if (topic_id && !jstr_eq(r, &v->str, topic_id))
        return fail(c, mismatch, "%s: the payload names another %s than the topic's '%s'", name,
                    name, topic_id);
    if (n >= sizeof s || !dcem_wire_id_valid(s, n))
        return fail(c, DCEM_WIRE_BAD_ID, "%s: not a valid id", name);
    memcpy(out, s, n + 1);
    return 0;
}

static int j_u64(dctx *c, const jval *v, const char *name, uint64_t min, uint64_t *out)
{
    double d = 0;
    int rc =
        j_integer(c, v, "", name, (double)min, (double)DCEM_WIRE_MAX_INT, DCEM_WIRE_BAD_SEQ, &d);
    *out = (uint64_t)d;
    return rc;
}

/* The payload read, its syntax sound: the checks, in the cJSON decoder's order. */
static int batch_check(dctx *c, bctx *x, dcem_wire_batch *out)
{
    const jval *f = x->f;
    int rc = j_member(c, &f[B_V], "", "v", 1);
    if (rc) return rc;
    if (f[B_V].type != J_NUMBER) return fail(c, DCEM_WIRE_WRONG_TYPE, "v: not a number");
    if (f[B_V].num != DCEM_WIRE_VERSION)
        return fail(c, DCEM_WIRE_BAD_VERSION, "v: %.17g is not supported (this reads v%d)",
                    f[B_V].num, DCEM_WIRE_VERSION);
    if ((rc = j_id(c, x->r, &f[B_SITE], "site", c->site, DCEM_WIRE_SITE_MISMATCH, out->site)) ||
        (rc = j_id(c, x->r, &f[B_GATEWAY], "gateway", c->gateway, DCEM_WIRE_GATEWAY_MISMATCH,
                   out->gateway)) ||
        (rc = j_u64(c, &f[B_EPOCH], "epoch", 1, &out->epoch)) ||
        (rc = j_u64(c, &f[B_SEQ], "seq", 1, &out->seq)))
        return rc;
    out->identified = 1;
    if ((rc = j_member(c, &f[B_READINGS], "", "readings", 1))) return rc;
    if (f[B_READINGS].type != J_ARRAY)
        return fail(c, DCEM_WIRE_WRONG_TYPE, "readings: not an array");
    out->listed_readings = x->listed;
    if (x->listed > x->limit)
        return fail(c, DCEM_WIRE_TOO_MANY_READINGS, "readings: more than %zu", x->limit);
    if (x->failed) {
        out->unknown_values = x->fail_unknown;
        return fail(c, x->fail_reason, "%s", x->fail_msg);
    }
    out->unknown_values = x->unknown;
    out->n_readings = x->listed;
    return 0;
}

int dcem_wire_decode_batch(const char *buf, size_t len, const char *topic_site,
                           const char *topic_gateway, dcem_wire_reading *storage, size_t cap,
                           dcem_wire_batch *out, int *reason, char *err, size_t errlen)
{
    dctx c = {0, err, errlen, topic_site, topic_gateway, storage, cap};
    memset(out, 0, sizeof *out);
    out->readings = storage;
    if (err && errlen) err[0] = '\0';
    int rc;
    if (len > DCEM_WIRE_MAX_PAYLOAD) {
        rc = fail(&c, DCEM_WIRE_TOO_LARGE, "%zu bytes: the limit is %zu", len,
                  (size_t)DCEM_WIRE_MAX_PAYLOAD);
    } else if (!buf || len == 0) {
        rc = fail(&c, DCEM_WIRE_NOT_JSON, "empty payload");
    } else if (has_nul(buf, len)) {
        rc = fail(&c, DCEM_WIRE_NOT_JSON, "payload contains a NUL character");
    } else {
        bctx bx = {0}, *x = &bx;
        jr r = {(const unsigned char *)buf, len, 0, 0, '.'};
        const char *dp = localeconv()->decimal_point;
        if (dp && dp[0]) r.dp = dp[0];
        {
            x->c = &c;
            x->r = &r;
            x->limit = cap < DCEM_WIRE_MAX_READINGS ? cap : DCEM_WIRE_MAX_READINGS;
            /* a UTF-8 byte order mark, which cJSON skips in a payload of 5+ bytes */
            if (len >= 5 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) r.off = 3;
            jr_ws(&r);
            jval root = {0};
            if (r.off < len && buf[r.off] == '{') {
                root.type = J_OBJECT;
                rc = jr_object(&r, batch_member, x);
            } else {
                rc = jr_value(&r, &root);
            }
            if (rc) {
                size_t at = r.off < len ? r.off : len - 1;
                rc = fail(&c, DCEM_WIRE_NOT_JSON, "not JSON (at byte %zu of %zu)", at, len);
            }
            for (size_t i = r.off; !rc && i < len; i++)
                if (!strchr(" \t\r\n", buf[i]))
                    rc =
                        fail(&c, DCEM_WIRE_NOT_JSON, "bytes after the JSON value (at byte %zu)", i);
            if (!rc && root.type != J_OBJECT)
                rc = fail(&c, DCEM_WIRE_WRONG_TYPE, "payload is not an object");
            if (!rc) rc = batch_check(&c, x, out);
        }
    }
    if (reason) *reason = c.reason;
    if (rc) out->n_readings = 0;
    return rc;
}

static int ack(dctx *c, const cJSON *root, void *p)
{
    dcem_wire_ack *out = p;
    const cJSON *refused;
    int rc;
    if ((rc = u64(c, root, "epoch", 1, &out->epoch)) || (rc = u64(c, root, "seq", 0, &out->seq)) ||
        (rc = member(c, root, "", "refused", 0, &refused)) || !refused)
        return rc;
    if (!cJSON_IsObject(refused)) return fail(c, DCEM_WIRE_WRONG_TYPE, "refused: not an object");
    for (int i = 0; i < DCEM_REFUSE_COUNT; i++) {
        const cJSON *it;
        double d;
        if ((rc = member(c, refused, "refused.", refuse_names[i], 0, &it))) return rc;
        if (!it) continue; /* other keys: reasons of a newer collector, ignored */
        if ((rc = integer(c, refused, "refused.", refuse_names[i], 0, (double)UINT32_MAX,
                          DCEM_WIRE_BAD_FIELD, &d)))
            return rc;
        out->refused[i] = (uint32_t)d;
    }
    return 0;
}

int dcem_wire_decode_ack(const char *buf, size_t len, dcem_wire_ack *out, int *reason,
                         char *err, size_t errlen)
{
    dctx c = {0, err, errlen, NULL, NULL, NULL, 0};
    memset(out, 0, sizeof *out);
    return decode(&c, buf, len, DCEM_WIRE_MAX_SMALL_PAYLOAD, ack, out, reason);
}

static int ctl(dctx *c, const cJSON *root, void *p)
{
    dcem_wire_ctl *out = p;
    const char *s;
    size_t n;
    int rc = string(c, root, "", "cmd", &s, &n);
    if (rc) return rc;
    /* the command decides which fields follow, so it is checked first */
    if ((out->cmd = find_name(cmd_names, COUNT(cmd_names), s, n)) < 0)
        return fail(c, DCEM_WIRE_BAD_COMMAND, "cmd: unknown command");
    rc = u64(c, root, "epoch", 1, &out->epoch);
    return rc ? rc : u64(c, root, "from_seq", 1, &out->from_seq);
}

int dcem_wire_decode_ctl(const char *buf, size_t len, dcem_wire_ctl *out, int *reason,
                         char *err, size_t errlen)
{
    dctx c = {0, err, errlen, NULL, NULL, NULL, 0};
    memset(out, 0, sizeof *out);
    return decode(&c, buf, len, DCEM_WIRE_MAX_SMALL_PAYLOAD, ctl, out, reason);
}

static int state(dctx *c, const cJSON *root, void *p)
{
    dcem_wire_state *out = p;
    const cJSON *it;
    const char *s;
    size_t n;
    int rc = member(c, root, "", "online", 1, &it);
    if (rc) return rc;
    if (!cJSON_IsBool(it)) return fail(c, DCEM_WIRE_WRONG_TYPE, "online: not true or false");
    out->online = cJSON_IsTrue(it);
    if (!out->online) return 0; /* a last will knows nothing more */
    if ((rc = u64(c, root, "epoch", 1, &out->epoch)) ||
        (rc = u64(c, root, "next_seq", 1, &out->next_seq)) ||
        (rc = u64(c, root, "queued", 0, &out->queued)))
        return rc;
    if (out->queued >= out->next_seq)
        return fail(c, DCEM_WIRE_BAD_SEQ, "queued: %" PRIu64 " batches before next_seq %" PRIu64,
                    out->queued, out->next_seq);
    if ((rc = string(c, root, "", "version", &s, &n))) return rc;
    if (!version_ok(s, n))
        return fail(c, DCEM_WIRE_BAD_FIELD, "version: 1-%d printable characters",
                    DCEM_WIRE_VERSION_MAX - 1);
    memcpy(out->version, s, n + 1);
    return 0;
}

int dcem_wire_decode_state(const char *buf, size_t len, dcem_wire_state *out, int *reason,
                           char *err, size_t errlen)
{
    dctx c = {0, err, errlen, NULL, NULL, NULL, 0};
    memset(out, 0, sizeof *out);
    return decode(&c, buf, len, DCEM_WIRE_MAX_SMALL_PAYLOAD, state, out, reason);
}

/* An optional object of counts by reason (metrics "dropped", "refused"):
 * *has 1 when present; each known reason an integer 0..2^53-1 into out[]
 * (absent: 0); other keys, reasons of a newer agent, are ignored. */
static int counts(dctx *c, const cJSON *root, const char *name, const char *const *names,
                  int n, int *has, uint64_t *out)
{
    const cJSON *obj;
    char path[24];
    int rc;
    if ((rc = member(c, root, "", name, 0, &obj)) || !obj) return rc;
    if (!cJSON_IsObject(obj)) return fail(c, DCEM_WIRE_WRONG_TYPE, "%s: not an object", name);
    *has = 1;
    snprintf(path, sizeof path, "%s.", name);
    for (int i = 0; i < n; i++) {
        const cJSON *it;
        double d;
        if ((rc = member(c, obj, path, names[i], 0, &it))) return rc;
        if (!it) continue;
        if ((rc = integer(c, obj, path, names[i], 0, (double)DCEM_WIRE_MAX_INT,
                          DCEM_WIRE_BAD_FIELD, &d)))
            return rc;
        out[i] = (uint64_t)d;
    }
    return 0;
}

static int metrics(dctx *c, const cJSON *root, void *p)
{
    dcem_wire_metrics *out = p;
    int rc, has;
    const cJSON *kwh;
    if ((rc = id_field(c, root, "site", c->site, DCEM_WIRE_SITE_MISMATCH, out->site)) ||
        (rc = id_field(c, root, "gateway", c->gateway, DCEM_WIRE_GATEWAY_MISMATCH,
                       out->gateway)) ||
        (rc = time_ms(c, root, "", "start", &out->start_ms)) ||
        (rc = time_ms(c, root, "", "end", &out->end_ms)))
        return rc;
    if (out->end_ms <= out->start_ms) return fail(c, DCEM_WIRE_BAD_TIME, "end: not after start");
    if ((rc = member(c, root, "", "kwh", 1, &kwh))) return rc;
    if (!cJSON_IsObject(kwh)) return fail(c, DCEM_WIRE_WRONG_TYPE, "kwh: not an object");
    for (int r = 0; r < DCEM_ROLE_COUNT; r++)
        if ((rc = opt_number(c, kwh, "kwh.", dcem_role_name(r), &has, &out->role_kwh[r])))
            return rc; /* other keys: roles of a newer version, ignored */
    if ((rc = opt_number(c, root, "", "pue", &has, &out->pue)) ||
        (rc = opt_number(c, root, "", "green_share", &has, &out->green_share)) ||
        (rc = opt_number(c, root, "", "completeness", &has, &out->completeness)))
        return rc;
    if (!metrics_ok(out))
        return fail(c, DCEM_WIRE_BAD_FIELD, "pue below 0, or a share outside 0..1");
    if ((rc = counts(c, root, "dropped", drop_names, DCEM_WIRE_DROP_COUNT, &out->has_dropped,
                     out->dropped)))
        return rc;
    return counts(c, root, "refused", refuse_names, DCEM_REFUSE_COUNT, &out->has_refused,
                  out->refused);
}

int dcem_wire_decode_metrics(const char *buf, size_t len, const char *topic_site,
                             const char *topic_gateway, dcem_wire_metrics *out, int *reason,
                             char *err, size_t errlen)
{
    dctx c = {0, err, errlen, topic_site, topic_gateway, NULL, 0};
    memset(out, 0, sizeof *out);
    for (int r = 0; r < DCEM_ROLE_COUNT; r++) out->role_kwh[r] = NAN;
    out->pue = out->green_share = out->completeness = NAN;
    return decode(&c, buf, len, DCEM_WIRE_MAX_SMALL_PAYLOAD, metrics, out, reason);
}
