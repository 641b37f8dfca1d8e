/* parse.h — bounded, checked parsers for untrusted text fields: decimal
 * numbers and RFC 3339 timestamps. They read exactly len bytes (no NUL
 * needed), never allocate, and reject anything they do not fully consume.
 * (STYLE.md bans atoi/sscanf/strtok for input; these replace them.) */
#ifndef DCEM_PARSE_H
#define DCEM_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* A finite decimal number: [+-]digits[.digits][(e|E)[+-]digits]. Up to 15
 * significant digits without exponent take an exact fast path (correctly
 * rounded); others go through strtod on a bounded copy. Returns 0, or
 * DCEM_EINVAL for anything else (empty, nan, inf, hex, trailing bytes). */
int dcem_parse_double(const char *s, size_t len, double *out);

/* RFC 3339 date-time: YYYY-MM-DD(T|t| )HH:MM:SS[.frac](Z|z|+HH:MM|-HH:MM).
 * Fractions beyond milliseconds are truncated. A leap second (:60) is
 * rejected. Returns 0 with *t_ms = UTC milliseconds since the epoch, or
 * DCEM_EINVAL. */
int dcem_parse_time(const char *s, size_t len, int64_t *t_ms);

/* Exactly n decimal digits (no sign) into *out; n <= 9. 0 or DCEM_EINVAL. */
int dcem_parse_digits(const char *s, size_t n, int *out);

/* "YYYY-MM" (years 1970-9999) into year * 12 + (month - 1). */
int dcem_parse_month(const char *s, size_t len, long long *month);

/* "YYYY-MM-DD", a real calendar date (years 1970-9999), into days since
 * 1970-01-01. */
int dcem_parse_date(const char *s, size_t len, int64_t *day);

/* Formats t_ms as RFC 3339 in the given UTC offset with milliseconds only
 * when non-zero: "2026-01-01T00:00:00+08:00". Returns the length written
 * (buf always NUL-terminated; needs 30 bytes). */
size_t dcem_format_time(int64_t t_ms, int32_t offset_s, char *buf, size_t len);

#endif
