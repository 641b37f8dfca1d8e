/* sim_server.h — the Modbus side of dcem-sim: a TCP listener serving many
 * clients at once (select over the connections, one libmodbus mapping per
 * unit id) and an RTU line (a serial device or a socat pty) shared by several
 * unit ids, answering only its own. Each request is decided by sim_site at
 * the simulated time it arrives; slow answers wait in a bounded queue while
 * other clients are served. On the RTU line, frames take the time a real
 * line would (wire_time): a pty delivers bytes at once, so the server keeps
 * the line's timeline itself and writes each answer no earlier than its
 * bytes would have arrived. */
#ifndef DCEM_SIM_SERVER_H
#define DCEM_SIM_SERVER_H

#include "sim_scenario.h"
#include "sim_site.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_MAX_CONN 64     /* TCP clients at once; more are accepted and closed */
#define SIM_MAX_PENDING 256 /* answers waiting (delayed, or for the RTU line); full: dropped */

typedef struct sim_listen {
    char tcp_host[SIM_HOST_MAX];
    int tcp_port;         /* < 0: no TCP listener; 0: any free port */
    char rtu_device[256]; /* "": no RTU line */
    int baud;
    char parity; /* 'N', 'E' or 'O' */
    int data_bits, stop_bits;
    /* RTU timing. With wire_time, a character takes (1 start + data bits +
     * 1 parity bit unless 'N' + stop bits) / baud seconds, frames are
     * separated by 3.5 characters of silence (1.75 ms above 19200 baud), and
     * an answer starts 3.5 characters + turnaround_ms after the request's
     * last character. Without, answers are written at once (turnaround_ms
     * unused). A pty keeps no time of its own, so this is what makes a
     * benchmark over one cost what a real bus costs. */
    int wire_time;
    int turnaround_ms;
} sim_listen;

/* Monotonic nanoseconds: the seam tests and the main program fill. The RTU
 * line's timeline is kept on it to the nanosecond, so that frame times do
 * not drift by rounding. */
typedef int64_t (*sim_now_fn)(void *ctx);

typedef struct sim_server_stats {
    unsigned long accepted, refused; /* TCP connections; refused: over SIM_MAX_CONN */
    unsigned long requests;          /* frames received, any unit */
    unsigned long bad_frames;        /* RTU: CRC errors, unknown functions, stray bytes */
    unsigned long early;             /* RTU, wire time: requests begun within the silence
                                        after the previous frame (started after it) */
    unsigned long pending_dropped;   /* answers lost to a full queue (delayed, or RTU) */
    unsigned long send_errors;       /* replies the peer did not take */
} sim_server_stats;

typedef struct sim_server sim_server;

/* Binds the listeners of l for site (borrowed). Real time starts now: the
 * simulated clock reads sim_site_time(site, ms since this call).
 * Returns 0, or DCEM_EIO with "what: reason" in err. */
int sim_server_new(sim_site *site, const sim_listen *l, sim_now_fn now, void *now_ctx,
                   sim_server **out, char *err, size_t errlen);
void sim_server_free(sim_server *s);

/* The bound TCP port (the one chosen for port 0), or -1. */
int sim_server_tcp_port(const sim_server *s);

/* The simulated time now. */
int64_t sim_server_sim_time(const sim_server *s);

/* Serves for at most max_wait_ms: waits with pselect() under sigmask (so a
 * signal blocked elsewhere ends the wait), then handles what arrived and
 * what fell due. Returns 0, or DCEM_EIO with the reason in err when the RTU
 * line is gone. */
int sim_server_poll(sim_server *s, int max_wait_ms, const sigset_t *sigmask, char *err,
                    size_t errlen);

const sim_server_stats *sim_server_get_stats(const sim_server *s);

#endif
