#include "parse.h"
#include "calendar.h"
#include "errors.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

int dcem_parse_double(const char *s, size_t len, double *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    uint64_t mant = 0;
    int digits = 0, frac = 0, any = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (mant || s[i] != '0') digits++;
        mant = mant * 10 + (uint64_t)(s[i++] - '0');
        any = 1;
        if (digits > 15) goto slow;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (mant || s[i] != '0') digits++;
            mant = mant * 10 + (uint64_t)(s[i++] - '0');
            frac++;
            any = 1;
            if (digits > 15 || frac > 22) goto slow;
        }
    }
    if (!any) return DCEM_EINVAL;
    if (i < len) goto slow; /* exponent or junk: let the careful path decide */
    /* mant < 10^15 and 10^frac are exact doubles, so one division is
     * correctly rounded (Clinger's fast path). */
    *out = (double)mant / pow10_exact[frac];
    if (neg) *out = -*out;
    return 0;

slow: {
    char buf[64];
    if (len >= sizeof buf) return DCEM_EINVAL;
    for (size_t k = 0; k < len; k++) {
        char c = s[k];
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' ||
              c == '-'))
            return DCEM_EINVAL; /* no nan, inf, hex or spaces */
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + len || errno == ERANGE || !isfinite(v)) return DCEM_EINVAL;
    *out = v;
    return 0;
}
}

int dcem_parse_digits(const char *s, size_t n, int *out)
{
    int x = 0;
    if (n > 9) return DCEM_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return DCEM_EINVAL;
        x = x * 10 + (s[i] - '0');
    }
    *out = x;
    return 0;
}

static int digits(const char *s, size_t n, int *v)
{
    return dcem_parse_digits(s, n, v);
}

int dcem_parse_month(const char *s, size_t len, long long *month)
{
    int y, m;
    if (len != 7 || s[4] != '-' || digits(s, 4, &y) || digits(s + 5, 2, &m) || m < 1 || m > 12 ||
        y < 1970)
        return DCEM_EINVAL;
    *month = (long long)y * 12 + m - 1;
    return 0;
}

int dcem_parse_date(const char *s, size_t len, int64_t *day)
{
    long long month;
    int d;
    if (len != 10 || s[7] != '-' || dcem_parse_month(s, 7, &month) || digits(s + 8, 2, &d) ||
        d < 1 || d > dcem_days_in_month(month / 12, (int)(month % 12) + 1))
        return DCEM_EINVAL;
    *day = dcem_days_from_civil(month / 12, (int)(month % 12) + 1, d);
    return 0;
}

int dcem_parse_time(const char *s, size_t len, int64_t *t_ms)
{
    int y, mo, d, h, mi, se;
    if (len < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
        return DCEM_EINVAL;
    if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
        digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &se))
        return DCEM_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > dcem_days_in_month(y, mo) || h > 23 || mi > 59 ||
        se > 59)
        return DCEM_EINVAL;
    size_t i = 19;
    int64_t ms = 0;
    if (s[i] == '.') {
        int n = 0;
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (n < 3) ms = ms * 10 + (s[i] - '0');
            n++, i++;
        }
        if (n == 0) return DCEM_EINVAL;
        for (; n < 3; n++) ms *= 10;
    }
    int64_t off = 0;
    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return DCEM_EINVAL;
        off = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return DCEM_EINVAL;
    }
    int64_t days = dcem_days_from_civil(y, mo, d);
    *t_ms = ((days * 86400 + h * 3600 + mi * 60 + se) - off) * 1000 + ms;
    return 0;
}

size_t dcem_format_time(int64_t t_ms, int32_t offset_s, char *buf, size_t len)
{
    int64_t local = t_ms + (int64_t)offset_s * 1000;
    int64_t days = dcem_floordiv(local, DCEM_MS_PER_DAY);
    int64_t rem = local - days * DCEM_MS_PER_DAY;
    int64_t y;
    int m, d;
    dcem_civil_from_days(days, &y, &m, &d);
    int hh = (int)(rem / 3600000), mm = (int)(rem / 60000 % 60), ss = (int)(rem / 1000 % 60);
    int ms = (int)(rem % 1000);
    char frac[16] = "", zone[16] = "Z";
    if (ms) snprintf(frac, sizeof frac, ".%03d", ms);
    if (offset_s) {
        int a = offset_s < 0 ? -offset_s : offset_s;
        snprintf(zone, sizeof zone, "%c%02d:%02d", offset_s < 0 ? '-' : '+', a / 3600,
                 a / 60 % 60);
    }
    int n = snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02d%s%s", (long long)y, m, d, hh, mm,
                     ss, frac, zone);
    return n < 0 ? 0 : ((size_t)n < len ? (size_t)n : len - 1);
}
