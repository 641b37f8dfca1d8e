#include "lineproto.h"
#include "errors.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest |time| InfluxDB stores, in ns (models/points.go MaxNanoTime; the
 * minimum is its negative: MinNanoTime is one above INT64_MIN + 1). */
#define LP_MAX_NS 9223372036854775806LL

/* Characters escaped with a backslash, per element (InfluxDB's own escapers). */
static const char MEASUREMENT_SPECIALS[] = ", ";
static const char KEY_SPECIALS[] = ",= "; /* tag keys, tag values, field keys */

typedef struct out {
    char *buf;
    size_t cap, len; /* len: bytes written so far (the line being built) */
    int full;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = 1;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void putc1(out *o, char c)
{
    put(o, &c, 1);
}

static int fail(int rc, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(int rc, char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Whether an identifier (measurement, key, tag value) can be written: no C0
 * control, and no trailing backslash. what names it in messages. */
static int ident_ok(const char *s, const char *what, char *why, size_t whylen)
{
    if (!s || !*s) return fail(DCEM_EINVAL, why, whylen, "%s is empty", what);
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return fail(DCEM_EINVAL, why, whylen, "%s '%.64s': control character 0x%02x", what, s,
                        (unsigned)(unsigned char)s[i]);
    if (s[n - 1] == '\\')
        return fail(DCEM_EINVAL, why, whylen, "%s '%.64s': ends in a backslash", what, s);
    return 0;
}

static void put_escaped(out *o, const char *s, const char *specials)
{
    for (; *s; s++) {
        if (strchr(specials, *s)) putc1(o, '\\');
        putc1(o, *s);
    }
}

static int tag_present(const dcem_lp_tag *t)
{
    return t->value && *t->value;
}

size_t dcem_lp_format_float(char *dst, size_t size, double v)
{
    if (!isfinite(v) || size < 32) return 0;
    /* The shortest of %.15g, %.16g, %.17g that reads back as exactly v; 17
     * significant digits always do (IEEE 754 binary64). snprintf and strtod
     * share the current LC_NUMERIC, so the round-trip check holds in any
     * locale; the separator is normalised below. */
    char raw[64];
    int prec = 15;
    snprintf(raw, sizeof raw, "%.*g", prec, v);
    while (prec < 17 && strtod(raw, NULL) != v)
        snprintf(raw, sizeof raw, "%.*g", ++prec, v);
    /* %g writes only digits, '-', '+', 'e' and the locale's decimal point;
     * any other run of bytes is that point (",", or a multibyte one such as
     * U+066B) and becomes '.'. */
    size_t n = 0;
    for (const char *p = raw; *p && n + 1 < size;) {
        char c = *p;
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e') {
            dst[n++] = c;
            p++;
            continue;
        }
        dst[n++] = '.';
        while (*p && !((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == 'e'))
            p++;
    }
    dst[n] = '\0';
    return n;
}

static void put_i64(out *o, int64_t v)
{
    char digits[24];
    size_t n = 0;
    /* Digits of |v| from the end; unsigned so INT64_MIN has a magnitude. */
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + (int)(m % 10));
        m /= 10;
    } while (m);
    if (v < 0) digits[sizeof digits - 1 - n++] = '-';
    put(o, digits + sizeof digits - n, n);
}

static const int64_t NS_PER[DCEM_LP_PRECISION_COUNT] = {
    [DCEM_LP_MS] = 1000000, [DCEM_LP_S] = 1000000000, [DCEM_LP_US] = 1000, [DCEM_LP_NS] = 1};

const char *dcem_lp_precision_name(int precision)
{
    static const char *const names[DCEM_LP_PRECISION_COUNT] = {
        [DCEM_LP_MS] = "ms", [DCEM_LP_S] = "s", [DCEM_LP_US] = "us", [DCEM_LP_NS] = "ns"};
    return precision >= 0 && precision < DCEM_LP_PRECISION_COUNT ? names[precision] : NULL;
}

int64_t dcem_lp_time_from_ns(int64_t ns, int precision)
{
    if (precision < 0 || precision >= DCEM_LP_PRECISION_COUNT) return ns;
    int64_t d = NS_PER[precision];
    int64_t q = ns / d;
    if (ns % d < 0) q--; /* C truncates toward zero; time truncates toward the past */
    return q;
}

static int check_fields(const dcem_lp_point *p, char *why, size_t whylen)
{
    if (!p->fields || p->n_fields == 0) return fail(DCEM_EINVAL, why, whylen, "no field");
    if (p->n_fields > DCEM_LP_MAX_FIELDS)
        return fail(DCEM_EINVAL, why, whylen, "%zu fields: at most %d", p->n_fields,
                    DCEM_LP_MAX_FIELDS);
    for (size_t i = 0; i < p->n_fields; i++) {
        const dcem_lp_field *f = &p->fields[i];
        int rc = ident_ok(f->key, "field key", why, whylen);
        if (rc) return rc;
        if (!strcmp(f->key, "time"))
            return fail(DCEM_EINVAL, why, whylen, "field key 'time' is reserved");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(p->fields[j].key, f->key))
                return fail(DCEM_EINVAL, why, whylen, "field key '%.64s' given twice", f->key);
        switch (f->type) {
        case DCEM_LP_FLOAT:
            if (!isfinite(f->f))
                return fail(DCEM_ERANGE, why, whylen,
                            "field '%.64s': %s is not a number InfluxDB stores", f->key,
                            isnan(f->f) ? "NaN" : "infinity");
            break;
        case DCEM_LP_INT:
        case DCEM_LP_BOOL:
            break;
        case DCEM_LP_STRING: {
            if (!f->s) return fail(DCEM_EINVAL, why, whylen, "field '%.64s': NULL string", f->key);
            size_t n = strlen(f->s);
            if (n > DCEM_LP_MAX_STRING)
                return fail(DCEM_ERANGE, why, whylen,
                            "field '%.64s': string of %zu bytes, at most %d", f->key, n,
                            DCEM_LP_MAX_STRING);
            for (size_t k = 0; k < n; k++)
                if ((unsigned char)f->s[k] < 0x20)
                    return fail(DCEM_EINVAL, why, whylen,
                                "field '%.64s': control character 0x%02x in the string", f->key,
                                (unsigned)(unsigned char)f->s[k]);
            break;
        }
        default:
            return fail(DCEM_EINVAL, why, whylen, "field '%.64s': unknown type %d", f->key,
                        f->type);
        }
    }
    return 0;
}

static int check_tags(const dcem_lp_point *p, size_t *order, size_t *n_order, char *why,
                      size_t whylen)
{
    if (p->n_tags > DCEM_LP_MAX_TAGS)
        return fail(DCEM_EINVAL, why, whylen, "%zu tags: at most %d", p->n_tags, DCEM_LP_MAX_TAGS);
    if (p->n_tags && !p->tags) return fail(DCEM_EINVAL, why, whylen, "tags: NULL array");
    size_t n = 0;
    for (size_t i = 0; i < p->n_tags; i++) {
        const dcem_lp_tag *t = &p->tags[i];
        int rc = ident_ok(t->key, "tag key", why, whylen);
        if (rc) return rc;
        if (!strcmp(t->key, "_measurement") || !strcmp(t->key, "_field") || !strcmp(t->key, "time"))
            return fail(DCEM_EINVAL, why, whylen, "tag key '%s' is reserved", t->key);
        /* Keys given twice are refused even when one value is empty: the
         * caller's data is ambiguous either way. */
        for (size_t j = 0; j < i; j++)
            if (!strcmp(p->tags[j].key, t->key))
                return fail(DCEM_EINVAL, why, whylen, "tag key '%.64s' given twice", t->key);
        if (!tag_present(t)) continue;
        rc = ident_ok(t->value, "tag value", why, whylen);
        if (rc) return rc;
        /* Insertion sort by key, byte order (strcmp compares as unsigned
         * char, like Go's bytes.Compare): at most DCEM_LP_MAX_TAGS. */
        size_t k = n++;
        while (k > 0 && strcmp(p->tags[order[k - 1]].key, t->key) > 0) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = i;
    }
    *n_order = n;
    return 0;
}

int dcem_lp_append(char *buf, size_t cap, size_t *len, const dcem_lp_point *p, char *why,
                   size_t whylen)
{
    if (why && whylen) why[0] = '\0';
    if (!buf || !len || !p || *len >= cap)
        return fail(DCEM_EINVAL, why, whylen, "no buffer, or *len >= cap");
    buf[*len] = '\0';
    int rc = ident_ok(p->measurement, "measurement", why, whylen);
    if (rc) return rc;
    if (p->measurement[0] == '#')
        return fail(DCEM_EINVAL, why, whylen, "measurement '%.64s' starts with '#' (a comment)",
                    p->measurement);
    size_t order[DCEM_LP_MAX_TAGS], n_order = 0;
    if ((rc = check_tags(p, order, &n_order, why, whylen))) return rc;
    if ((rc = check_fields(p, why, whylen))) return rc;
    if (p->precision < 0 || p->precision >= DCEM_LP_PRECISION_COUNT)
        return fail(DCEM_EINVAL, why, whylen, "unknown precision %d", p->precision);
    if (p->has_time) {
        int64_t lim = LP_MAX_NS / NS_PER[p->precision];
        if (p->time > lim || p->time < -lim)
            return fail(DCEM_ERANGE, why, whylen, "time %lld %s is outside InfluxDB's range",
                        (long long)p->time, dcem_lp_precision_name(p->precision));
    }

    /* Leave room for the NUL: the line fits only with it. */
    out o = {.buf = buf, .cap = cap - 1, .len = *len};
    put_escaped(&o, p->measurement, MEASUREMENT_SPECIALS);
    for (size_t i = 0; i < n_order; i++) {
        const dcem_lp_tag *t = &p->tags[order[i]];
        putc1(&o, ',');
        put_escaped(&o, t->key, KEY_SPECIALS);
        putc1(&o, '=');
        put_escaped(&o, t->value, KEY_SPECIALS);
    }
    for (size_t i = 0; i < p->n_fields; i++) {
        const dcem_lp_field *f = &p->fields[i];
        putc1(&o, i ? ',' : ' ');
        put_escaped(&o, f->key, KEY_SPECIALS);
        putc1(&o, '=');
        switch (f->type) {
        case DCEM_LP_FLOAT: {
            char num[40];
            size_t n = dcem_lp_format_float(num, sizeof num, f->f);
            put(&o, num, n);
            break;
        }
        case DCEM_LP_INT:
            put_i64(&o, f->i);
            putc1(&o, 'i');
            break;
        case DCEM_LP_BOOL:
            f->b ? put(&o, "true", 4) : put(&o, "false", 5);
            break;
        default: /* DCEM_LP_STRING, checked above */
            putc1(&o, '"');
            for (const char *s = f->s; *s; s++) {
                if (*s == '"' || *s == '\\') putc1(&o, '\\');
                putc1(&o, *s);
            }
            putc1(&o, '"');
            break;
        }
    }
    if (p->has_time) {
        putc1(&o, ' ');
        put_i64(&o, p->time);
    }
    putc1(&o, '\n');
    if (o.full) {
        buf[*len] = '\0';
        return fail(DCEM_EFULL, why, whylen, "the line does not fit in %zu bytes", cap - *len);
    }
    buf[o.len] = '\0';
    *len = o.len;
    return 0;
}
