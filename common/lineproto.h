/* lineproto.h — InfluxDB line-protocol encoder: one point (measurement, tags,
 * fields, timestamp) appended as one line to a caller buffer with a hard cap,
 * escaped exactly as InfluxDB reads it back, or refused when it cannot be.
 * Pure: no I/O, no allocation, no locale state (see dcem_lp_append). The
 * collector's InfluxDB writer (gateway/influx) sends what this produces;
 * docs/influxdb.md lists the measurements. */
#ifndef DCEM_LINEPROTO_H
#define DCEM_LINEPROTO_H

#include <stddef.h>
#include <stdint.h>

#define DCEM_LP_MAX_TAGS 64      /* tags per point (sorted on the stack) */
#define DCEM_LP_MAX_FIELDS 256   /* fields per point (checked for duplicates) */
#define DCEM_LP_MAX_STRING 65536 /* bytes of a string field value (InfluxDB's limit) */

/* What the point's time counts; the same word goes into the write URL
 * (?precision=, dcem_lp_precision_name). dcem writes milliseconds. */
typedef enum dcem_lp_precision {
    DCEM_LP_MS = 0, /* "ms" */
    DCEM_LP_S,      /* "s" */
    DCEM_LP_US,     /* "us" */
    DCEM_LP_NS,     /* "ns" */
    DCEM_LP_PRECISION_COUNT
} dcem_lp_precision;

typedef enum dcem_lp_type {
    DCEM_LP_FLOAT = 0, /* f: finite double, written without 'i' even when integral ("6800") */
    DCEM_LP_INT,       /* i: int64, written "42i" */
    DCEM_LP_BOOL,      /* b: 0 false, anything else true */
    DCEM_LP_STRING,    /* s: NUL-terminated, at most DCEM_LP_MAX_STRING bytes */
} dcem_lp_type;

typedef struct dcem_lp_tag {
    const char *key;
    const char *value; /* NULL or "": the tag is left out (InfluxDB has no empty tag) */
} dcem_lp_tag;

typedef struct dcem_lp_field {
    const char *key;
    int type; /* dcem_lp_type */
    union {
        double f;
        int64_t i;
        int b;
        const char *s;
    };
} dcem_lp_field;

typedef struct dcem_lp_point {
    const char *measurement;
    const dcem_lp_tag *tags; /* any order: written sorted by key (byte order) */
    size_t n_tags;
    const dcem_lp_field *fields; /* written in the order given; at least one */
    size_t n_fields;
    int has_time;  /* 0: no timestamp (the server stamps arrival time: avoid) */
    int64_t time;  /* in units of precision */
    int precision; /* dcem_lp_precision */
} dcem_lp_point;

/* Appends the point as one line ending in '\n' at buf + *len and advances
 * *len; buf stays NUL-terminated. Nothing is written past cap, and on any
 * error *len is unchanged and buf[*len] is '\0' again (when *len < cap).
 *
 * Escaping (docs/influxdb.md, "Line protocol"): measurement ',' and ' ';
 * tag keys, tag values and field keys ',' '=' ' '; string field values '"'
 * and '\'. A backslash is otherwise written as is, so no measurement, key or
 * tag value may end in '\' (the escape would swallow the separator).
 *
 * Numbers do not depend on the locale: a float is printed in the shortest
 * of 15, 16 or 17 significant digits that reads back as exactly the same
 * double, and whatever decimal separator the C library's current LC_NUMERIC
 * uses ("," or a multibyte one) is written as '.'. dcem never calls
 * setlocale, but a library or a future caller might.
 *
 * Returns 0, or:
 *   DCEM_EINVAL  unrepresentable: an empty or NULL measurement, key or
 *                string pointer; any byte below 0x20 (newline, CR, tab and
 *                the other C0 controls) in any element; a measurement
 *                starting with '#' (a comment line); an identifier ending in
 *                '\'; tag key "_measurement", "_field" or "time"; field key
 *                "time"; a tag or field key given twice; no field; more than
 *                DCEM_LP_MAX_TAGS tags or DCEM_LP_MAX_FIELDS fields; unknown
 *                type or precision
 *   DCEM_ERANGE  a float NaN or infinite; a string over DCEM_LP_MAX_STRING
 *                bytes; a time outside +-9223372036854775806 ns
 *   DCEM_EFULL   the line and its NUL do not fit in cap
 * why (may be NULL) receives what was wrong, e.g. "tag key 'a\': ends in a
 * backslash". */
int dcem_lp_append(char *buf, size_t cap, size_t *len, const dcem_lp_point *p, char *why,
                   size_t whylen);

/* Converts nanoseconds since 1970 to the precision's unit, truncating toward
 * the earlier instant as InfluxDB's encoders do (-1 ns is -1 ms). Returns the
 * converted time; an unknown precision gives ns unchanged. */
int64_t dcem_lp_time_from_ns(int64_t ns, int precision);

/* "ms", "s", "us", "ns"; NULL for an unknown precision. */
const char *dcem_lp_precision_name(int precision);

/* Formats a finite double as dcem_lp_append writes it (shortest round trip,
 * '.' whatever the locale) into out (at least 32 bytes). Returns the length,
 * or 0 when v is not finite or out is too small. */
size_t dcem_lp_format_float(char *out, size_t size, double v);

#endif
