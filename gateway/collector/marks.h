/* marks.h — what the ingest thread changed, for the figures thread: the
 * local days of each site whose stored intervals a committed group wrote,
 * handed over under a mutex after the commit. The figures thread reads a
 * site in one read transaction (dcem_store_begin_read), so what it reads
 * after taking the marks holds every commit they mark. */
#ifndef DCEM_MARKS_H
#define DCEM_MARKS_H

#include <stddef.h>
#include <stdint.h>

/* A set of local days (dcem_zone_day numbers) as at most DCEM_DAYS_MAX
 * ranges, sorted, disjoint. Beyond that many, the two closest ranges are
 * merged: the set grows (a day marked that was not changed costs a
 * recompute, never a wrong figure), it never loses one. */
#define DCEM_DAYS_MAX 16
typedef struct dcem_days {
    size_t n;
    int64_t lo[DCEM_DAYS_MAX], hi[DCEM_DAYS_MAX]; /* [lo, hi], inclusive */
} dcem_days;

void dcem_days_add(dcem_days *d, int64_t lo, int64_t hi);
void dcem_days_merge(dcem_days *into, const dcem_days *from);
/* Has d a day in [lo, hi]? */
int dcem_days_overlap(const dcem_days *d, int64_t lo, int64_t hi);
/* Leaves in d only the days before `day`. */
void dcem_days_keep_before(dcem_days *d, int64_t day);

typedef struct dcem_marks dcem_marks;

/* For n_sites sites (the config's, by index). NULL when out of memory. */
dcem_marks *dcem_marks_new(size_t n_sites);
void dcem_marks_free(dcem_marks *m);

/* Ingest: a group that touched the sites with touched[i] != 0 committed at
 * now_ms (wall clock); days[i] are the days of site i it wrote. */
void dcem_marks_add(dcem_marks *m, const unsigned char *touched, const dcem_days *days,
                    int64_t now_ms);

/* Figures: the days of site i marked since the last take, merged into
 * *into; *since_ms gets when the oldest of them was marked (0: none). */
void dcem_marks_take(dcem_marks *m, size_t i, dcem_days *into, int64_t *since_ms);

/* Moves what is marked for site `from` of m to site `to` of n (a reload:
 * the same site at another index). */
void dcem_marks_move(dcem_marks *m, size_t from, dcem_marks *n, size_t to);

#endif
