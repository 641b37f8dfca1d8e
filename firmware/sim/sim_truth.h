/* sim_truth.h — what dcem-sim served, as JSON for tests: per meter the true
 * energy since start (the exact integral), the counter the registers carry,
 * the decoded value of every register as it is served now, and how many
 * requests each fault struck. Written atomically (temp file, fsync, rename)
 * so a reader polling for the file never sees half of it. */
#ifndef DCEM_SIM_TRUTH_H
#define DCEM_SIM_TRUTH_H

#include "sim_site.h"

#include <stddef.h>
#include <stdint.h>

/* The truth at simulated time t_ms as a JSON string the caller frees, or
 * NULL when out of memory. Advances every meter to t_ms. seq numbers the
 * snapshots of one run. */
char *sim_truth_json(sim_site *s, int64_t t_ms, unsigned long seq);

/* Writes sim_truth_json to path (via path.tmp). Returns 0, or DCEM_EIO /
 * DCEM_ENOMEM with "path: reason" in err. */
int sim_truth_write(sim_site *s, int64_t t_ms, unsigned long seq, const char *path, char *err,
                    size_t errlen);

#endif
