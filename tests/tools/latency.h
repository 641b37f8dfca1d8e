/* latency.h — the load generators' latency figures (dcem-blast,
 * dcem-scale): sorting nanosecond latencies and reading a percentile of
 * them in milliseconds, the same way in both. */
#ifndef DCEM_TOOLS_LATENCY_H
#define DCEM_TOOLS_LATENCY_H

#include <stddef.h>
#include <stdint.h>

/* qsort comparator of int64_t. */
static inline int dcem_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile (nearest rank) of n sorted nanosecond values, in ms;
 * 0 when n is 0. */
static inline double dcem_pct_ms(const int64_t *sorted, size_t n, double p)
{
    if (!n) return 0;
    size_t i = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (i < 1) i = 1;
    if (i > n) i = n;
    return (double)sorted[i - 1] / 1e6;
}

#endif
