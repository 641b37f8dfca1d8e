/* marks.h — what the ingest thread changed, for the figures thread: the
 * local days of each site whose stored intervals a committed group wrote,
 * handed over under a mutex, and per site a count of commits begun and
 * ended, so that the figures thread knows whether what it read of a site
 * (rollups on one statement, meter states on others: no one snapshot) saw
 * no commit half-way — and, if it keeps missing, can hold the site's next
 * commit back for the few milliseconds of one read. */
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

/* Ingest: a group that touched the sites with touched[i] != 0 is about to
 * commit. Waits while the figures thread holds one of them (a read of a
 * few ms; see dcem_marks_take). */
void dcem_marks_commit_start(dcem_marks *m, const unsigned char *touched);

/* Ingest: that commit is over. days[i]: the days of site i it wrote (when
 * committed; NULL or committed == 0: none, it was rolled back). */
void dcem_marks_commit_end(dcem_marks *m, const unsigned char *touched, const dcem_days *days,
                           int committed);

/* Figures: the days of site i marked since the last take, merged into
 * *into, and a token for dcem_marks_check. With hold, first waits for the
 * site's commit in flight (if any), then holds its next commit back until
 * dcem_marks_check: what is read of the site meanwhile is one state. */
void dcem_marks_take(dcem_marks *m, size_t i, dcem_days *into, uint64_t *token, int hold);

/* Figures: 1 when no commit of site i began since dcem_marks_take gave
 * token, and none was in flight then: what was read in between is one
 * committed state of the site. Releases a hold. */
int dcem_marks_check(dcem_marks *m, size_t i, uint64_t token);

/* Moves what is marked for site `from` of m to site `to` of n (a reload:
 * the same site at another index). */
void dcem_marks_move(dcem_marks *m, size_t from, dcem_marks *n, size_t to);

#endif
