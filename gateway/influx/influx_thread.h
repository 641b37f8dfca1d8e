/* influx_thread.h — the InfluxDB writer (influx.h) on a thread of its own,
 * so that a slow or dead InfluxDB never holds up the thread that makes the
 * lines: that thread only copies them into a bounded hand-off and returns;
 * the writer's thread batches, sends, and — while InfluxDB is down, or while
 * one of its requests hangs — moves them to the on-disk backlog. */
#ifndef DCEM_INFLUX_THREAD_H
#define DCEM_INFLUX_THREAD_H

#include "influx.h"

#include <stddef.h>

/* The hand-off's cap (bytes of line protocol waiting for the writer's
 * thread). Beyond it lines are dropped, counted in dropped_lines and
 * logged once: the writer's thread empties it to the backlog whenever it
 * is half full, even in the middle of a request, so only a disk slower than
 * the lines come fills it. */
#define DCEM_INFLUX_HANDOFF_BYTES (32u << 20)

typedef struct dcem_influx_thread dcem_influx_thread;

/* Opens the writer (dcem_influx_new: its errors, with err) and starts its
 * thread. cfg is copied. curl_global_init must have run. Returns 0 with
 * *out (stop with dcem_influx_thread_stop), or the error of dcem_influx_new,
 * or DCEM_ENOMEM (no memory or no thread). */
int dcem_influx_thread_start(const dcem_influx_cfg *cfg, dcem_influx_thread **out, char *err,
                             size_t errlen);

/* Hands len bytes of complete lines (each ending in '\n') to the writer:
 * copied under a lock held only for the copy, never waiting for the writer
 * or the network. Returns 0, or DCEM_EFULL when the hand-off cannot take
 * them all (nothing taken, the lines counted as dropped). Any thread. */
int dcem_influx_thread_add(dcem_influx_thread *t, const char *lines, size_t len);

/* The writer's counters as of its last step (at most about 50 ms old, or
 * one second inside a hanging request), with the hand-off's lines in
 * lines_buffered / bytes_buffered and its drops in dropped_lines. Any
 * thread. */
void dcem_influx_thread_stats(dcem_influx_thread *t, dcem_influx_stats *st);

/* Stops the thread: what the hand-off holds is handed to the writer, its
 * batch flushed (sent if InfluxDB answers within timeout_ms, else to the
 * backlog), the thread joined and everything freed. NULL accepted. */
void dcem_influx_thread_stop(dcem_influx_thread *t);

#endif
