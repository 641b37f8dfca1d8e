/* store_rollup.h — what the backends share to keep the rollups exact when
 * intervals are put (private to gateway/store). An interval adds its
 * contribution (a contrib) to its hour, day and month rollup rows; a
 * revision adds the difference, new minus old, and when its keys changed
 * takes the old contribution off the old rows. The differences of one call
 * are summed per rollup row, so that each row is written once. */
#ifndef DCEM_STORE_ROLLUP_H
#define DCEM_STORE_ROLLUP_H

#include "store_backend.h"

#include <stddef.h>
#include <stdint.h>

#define DCEM_CONTRIB_N 14 /* the rollups' sums, in the tables' ROLLUP_COLS order */

typedef struct dcem_contrib {
    int64_t v[DCEM_CONTRIB_N];
} dcem_contrib;

/* What one interval adds to each of its rollups (dcem_store_rollup_of_interval). */
dcem_contrib dcem_contrib_of(const dcem_interval *iv);
/* to += sign * d; DCEM_EINVAL (to unchanged in the failing sum) when a sum leaves int64. */
int dcem_contrib_add(dcem_contrib *to, const dcem_contrib *d, int sign);
/* 1 when c is a valid rollups row itself (new intervals, most revisions):
 * the tables' CHECKs hold on it, so it can be an upsert's proposed row. */
int dcem_contrib_row_ok(const dcem_contrib *c);

/* One rollup row's difference: the meter by id (mid, when the backend has
 * ids) or by name (meter, when mid is 0). */
typedef struct dcem_rollup_delta {
    const char *meter;
    int64_t mid;
    int kind; /* DCEM_PERIOD_HOUR, _DAY, _MONTH */
    int64_t key;
    int drop_empty; /* intervals left it: deleted if it is left empty */
    dcem_contrib d;
} dcem_rollup_delta;

/* Appends to out[*n] the 3 differences of interval r stored new. */
void dcem_rollup_deltas_new(dcem_rollup_delta *out, size_t *n, const char *meter, int64_t mid,
                            const dcem_store_interval_row *r);
/* Appends the 3 to 6 differences of r replacing old (stored with old_keys). */
void dcem_rollup_deltas_revised(dcem_rollup_delta *out, size_t *n, const char *meter, int64_t mid,
                                const dcem_store_interval_row *r, const dcem_interval *old,
                                const dcem_store_keys *old_keys);
/* Appends the 3 differences of deleting stored interval iv (its keys). */
void dcem_rollup_deltas_deleted(dcem_rollup_delta *out, size_t *n, const char *meter, int64_t mid,
                                const dcem_interval *iv, const dcem_store_keys *keys);
/* Sorts d[0..n) by (meter, kind, key) and sums the differences of each
 * row in place: *rows of them are left. DCEM_EINVAL (detail in st) when a
 * sum would overflow. */
int dcem_rollup_deltas_sum(dcem_store *st, dcem_rollup_delta *d, size_t n, size_t *rows);

#endif
