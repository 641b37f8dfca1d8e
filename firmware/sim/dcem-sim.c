/* dcem-sim — a Modbus TCP/RTU server of simulated meters of the shipped
 * profiles, for the agent's tests, demos and benchmarks. A scenario file
 * (configs/sim/<name>.yaml) names the meters, their load shapes and faults; the
 * energy they count is the exact integral of the modelled power on a
 * simulated clock that can run a year in minutes. --truth writes what was
 * served (SIGUSR1 and at exit). docs/sim.md has the details.
 *
 *   dcem-sim -c SCENARIO [--tcp HOST:PORT|none] [--rtu DEVICE --baud N
 *            --parity N|E|O --data 7|8 --stop 1|2 --wire-time on|off
 *            --turnaround-ms N] [--speed X] [--start T|now]
 *            [--initial FILE] [--truth FILE] [--profiles DIR] [--check-config]
 */
#include "dcem_io.h"
#include "errors.h"
#include "parse.h"
#include "profile.h"
#include "sim_scenario.h"
#include "sim_server.h"
#include "sim_site.h"
#include "sim_truth.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef DCEM_SIM_PROFILES_DIR
#define DCEM_SIM_PROFILES_DIR "configs/meters"
#endif

enum { SIG_STOP = 1, SIG_TRUTH = 2 };

/* The one global: signals set bits here, the loop reads and clears them
 * with the signals blocked (they are only let through inside pselect). */
static volatile sig_atomic_t signal_flags;

static void on_signal(int sig)
{
    signal_flags |= sig == SIGUSR1 ? SIG_TRUTH : SIG_STOP;
}

static int64_t mono_ns(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *out)
{
    fputs("usage: dcem-sim -c SCENARIO.yaml [options]\n"
          "Serves the simulated meters of a scenario over Modbus TCP and/or RTU.\n"
          "  -c, --config FILE    scenario (configs/sim/<name>.yaml)\n"
          "  --tcp HOST:PORT      TCP listener (port 0: any free port); 'none': no TCP\n"
          "  --rtu DEVICE         RTU line: a serial device or a socat pty link\n"
          "  --baud N --parity N|E|O --data 7|8 --stop 1|2   RTU line settings\n"
          "  --wire-time on|off   RTU: frames take a real line's time (default on)\n"
          "  --turnaround-ms N    RTU: the meter's answer delay after the request (default 5)\n"
          "  --speed X            simulated seconds per real second (0: frozen)\n"
          "  --start TIME|now     simulated start time (RFC 3339)\n"
          "  --initial FILE       initial counters: each meter's last row of a readings CSV\n"
          "                       (time,meter,kwh), e.g. dcem-gen --end-counters\n"
          "  --truth FILE         write what is served as JSON on SIGUSR1 and at exit\n"
          "  --profiles DIR       meter profiles (default: beside the install prefix, else\n"
          "                       " DCEM_SIM_PROFILES_DIR ", else /usr/share/dcem/meters)\n"
          "  --check-config       load the scenario and its profiles, then exit\n"
          "Prints 'ready tcp=HOST:PORT rtu=DEVICE meters=N' once serving.\n"
          "Stops cleanly on SIGINT/SIGTERM.\n",
          out);
}

/* Bounded integer option. */
static int parse_int(const char *s, long lo, long hi, long *out)
{
    double v;
    if (dcem_parse_double(s, strlen(s), &v) || v != (double)(long)v || v < (double)lo ||
        v > (double)hi)
        return -1;
    *out = (long)v;
    return 0;
}

typedef struct options {
    const char *config, *tcp, *rtu, *truth, *profiles, *start, *initial;
    long baud, data, stop;
    long turnaround_ms; /* < 0: the scenario's */
    int wire_time;      /* < 0: the scenario's */
    char parity;
    double speed; /* < 0: the scenario's */
    int check;
} options;

static int parse_options(int argc, char **argv, options *o)
{
    enum {
        O_TCP = 256,
        O_RTU,
        O_BAUD,
        O_PARITY,
        O_DATA,
        O_STOP,
        O_WIRE_TIME,
        O_TURNAROUND,
        O_SPEED,
        O_START,
        O_INITIAL,
        O_TRUTH,
        O_PROFILES,
        O_CHECK
    };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"tcp", required_argument, NULL, O_TCP},
        {"rtu", required_argument, NULL, O_RTU},
        {"baud", required_argument, NULL, O_BAUD},
        {"parity", required_argument, NULL, O_PARITY},
        {"data", required_argument, NULL, O_DATA},
        {"stop", required_argument, NULL, O_STOP},
        {"wire-time", required_argument, NULL, O_WIRE_TIME},
        {"turnaround-ms", required_argument, NULL, O_TURNAROUND},
        {"speed", required_argument, NULL, O_SPEED},
        {"start", required_argument, NULL, O_START},
        {"initial", required_argument, NULL, O_INITIAL},
        {"truth", required_argument, NULL, O_TRUTH},
        {"profiles", required_argument, NULL, O_PROFILES},
        {"check-config", no_argument, NULL, O_CHECK},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->baud = o->data = o->stop = o->turnaround_ms = -1;
    o->wire_time = -1;
    o->speed = -1;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case O_TCP:
            o->tcp = optarg;
            break;
        case O_RTU:
            o->rtu = optarg;
            break;
        case O_BAUD:
            if (parse_int(optarg, 300, 921600, &o->baud)) bad = "--baud";
            break;
        case O_PARITY:
            if (strlen(optarg) != 1 || !strchr("NEO", optarg[0]))
                bad = "--parity (N, E or O)";
            else
                o->parity = optarg[0];
            break;
        case O_DATA:
            if (parse_int(optarg, 7, 8, &o->data)) bad = "--data (7 or 8)";
            break;
        case O_STOP:
            if (parse_int(optarg, 1, 2, &o->stop)) bad = "--stop (1 or 2)";
            break;
        case O_WIRE_TIME:
            if (!strcmp(optarg, "on"))
                o->wire_time = 1;
            else if (!strcmp(optarg, "off"))
                o->wire_time = 0;
            else
                bad = "--wire-time (on or off)";
            break;
        case O_TURNAROUND:
            if (parse_int(optarg, 0, 10000, &o->turnaround_ms)) bad = "--turnaround-ms (0..10000)";
            break;
        case O_SPEED:
            if (dcem_parse_double(optarg, strlen(optarg), &o->speed) || o->speed < 0 ||
                o->speed > 1e7)
                bad = "--speed (0..1e7)";
            break;
        case O_START:
            o->start = optarg;
            break;
        case O_INITIAL:
            o->initial = optarg;
            break;
        case O_TRUTH:
            o->truth = optarg;
            break;
        case O_PROFILES:
            o->profiles = optarg;
            break;
        case O_CHECK:
            o->check = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "dcem-sim: bad value for %s: '%s'\n", bad, optarg);
            return -1;
        }
    }
    if (!o->config || optind != argc) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* The profiles directory: --profiles, else where the agent looks too
 * (dcem_io_share_path: an installed tree, the source tree's, then
 * /usr/share/dcem/meters). 0, or -1 with the places tried in err. */
static int profiles_dir(const options *o, char *dir, size_t size, char *err, size_t errlen)
{
    if (o->profiles) return snprintf(dir, size, "%s", o->profiles) >= (int)size ? -1 : 0;
    char tried[1024];
    if (!dcem_io_share_path("meters", DCEM_SIM_PROFILES_DIR, dir, size, tried, sizeof tried))
        return 0;
    snprintf(err, errlen, "no meter profiles folder (tried %.600s): give --profiles DIR", tried);
    return -1;
}

static int load_profile(void *ctx, const char *model, dcem_profile *out, char *err, size_t errlen)
{
    return dcem_io_load_profile(ctx, model, out, err, errlen);
}

/* Scenario file plus command-line overrides. */
static int load_scenario(const options *o, sim_scenario *sc, sim_listen *l, char *err,
                         size_t errlen)
{
    char *buf;
    size_t len;
    int rc = dcem_io_read_file(o->config, &buf, &len, err, errlen);
    if (rc) return rc;
    rc = sim_scenario_parse(o->config, buf, len, sc, err, errlen);
    free(buf);
    if (rc) return rc;

    if (o->start) {
        if (!strcmp(o->start, "now")) {
            sc->start_now = 1;
        } else if (dcem_parse_time(o->start, strlen(o->start), &sc->start_ms)) {
            snprintf(err, errlen, "--start: '%s' is not 'now' or an RFC 3339 time", o->start);
            return DCEM_EINVAL;
        } else {
            sc->start_now = 0;
        }
    }
    if (sc->start_now) sc->start_ms = wall_ms();
    if (o->speed >= 0) sc->clock.speed = o->speed;

    memset(l, 0, sizeof *l);
    const char *tcp = o->tcp ? o->tcp : sc->listen.tcp;
    l->tcp_port = -1;
    if (*tcp && strcmp(tcp, "none") &&
        sim_parse_hostport(tcp, l->tcp_host, sizeof l->tcp_host, &l->tcp_port)) {
        snprintf(err, errlen, "--tcp: '%s': expected IPv4 host:port or 'none'", tcp);
        return DCEM_EINVAL;
    }
    snprintf(l->rtu_device, sizeof l->rtu_device, "%s", o->rtu ? o->rtu : sc->listen.rtu);
    l->baud = (int)(o->baud > 0 ? o->baud : sc->listen.baud);
    l->parity = o->parity ? o->parity : "NEO"[sc->listen.parity];
    l->data_bits = (int)(o->data > 0 ? o->data : sc->listen.data_bits);
    l->stop_bits = (int)(o->stop > 0 ? o->stop : sc->listen.stop_bits);
    l->wire_time = o->wire_time >= 0 ? o->wire_time : sc->listen.wire_time;
    l->turnaround_ms = (int)(o->turnaround_ms >= 0 ? o->turnaround_ms : sc->listen.turnaround_ms);
    return 0;
}

static void write_truth(sim_site *site, sim_server *srv, const char *path, unsigned long *seq)
{
    char err[512];
    int64_t t = sim_server_sim_time(srv);
    if (sim_truth_write(site, t, ++*seq, path, err, sizeof err))
        fprintf(stderr, "dcem-sim: truth: %s\n", err);
}

static int serve(sim_site *site, const sim_listen *l, const char *truth)
{
    char err[512];
    /* signals wait blocked; pselect lets them in */
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_mask = block;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL); /* a client gone mid-reply is an error return, not death */

    sim_server *srv;
    int rc = sim_server_new(site, l, mono_ns, NULL, &srv, err, sizeof err);
    if (rc) {
        fprintf(stderr, "dcem-sim: %s\n", err);
        return 1;
    }
    char tcp[SIM_HOST_MAX + 16] = "none";
    if (sim_server_tcp_port(srv) >= 0)
        snprintf(tcp, sizeof tcp, "%s:%d", l->tcp_host, sim_server_tcp_port(srv));
    printf("ready tcp=%s rtu=%s meters=%zu\n", tcp, l->rtu_device[0] ? l->rtu_device : "none",
           site->n_meters);
    fflush(stdout);

    unsigned long seq = 0;
    int status = 0;
    for (;;) {
        rc = sim_server_poll(srv, 1000, &waitmask, err, sizeof err);
        if (rc) {
            fprintf(stderr, "dcem-sim: %s\n", err);
            status = 1;
            break;
        }
        int flags = signal_flags; /* signals are blocked here: no update is lost */
        signal_flags = 0;
        if (flags & SIG_TRUTH && truth) write_truth(site, srv, truth, &seq);
        if (flags & SIG_STOP) break;
    }
    if (truth) write_truth(site, srv, truth, &seq);
    const sim_server_stats *st = sim_server_get_stats(srv);
    fprintf(stderr,
            "dcem-sim: stopped: %lu requests, %lu connections (%lu refused), %lu bad RTU frames, "
            "%lu early RTU requests, %lu delayed answers dropped, %lu send errors, "
            "%lu for unknown units\n",
            st->requests, st->accepted, st->refused, st->bad_frames, st->early, st->pending_dropped,
            st->send_errors, site->unknown_unit);
    sim_server_free(srv);
    return status;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_options(argc, argv, &o)) return 2;
    char err[1024];
    sim_scenario *sc = calloc(1, sizeof *sc);
    if (!sc) {
        fprintf(stderr, "dcem-sim: out of memory\n");
        return 1;
    }
    sim_listen l;
    int rc = load_scenario(&o, sc, &l, err, sizeof err);
    sim_site *site = NULL;
    char dir[1024];
    if (!rc && profiles_dir(&o, dir, sizeof dir, err, sizeof err)) rc = DCEM_ENOTFOUND;
    if (!rc)
        rc = sim_site_new(sc, o.config, load_profile, (void *)(uintptr_t)dir, &site, err,
                          sizeof err);
    free(sc);
    if (!rc && o.initial) {
        /* a history's last readings: the meters carry on from there */
        char *buf;
        size_t len;
        rc = dcem_io_read_file(o.initial, &buf, &len, err, sizeof err);
        if (!rc) {
            rc = sim_site_initial_counters(site, o.initial, buf, len, err, sizeof err);
            free(buf);
        }
        if (rc && rc != DCEM_ENOMEM) rc = DCEM_ECONFIG;
    }
    if (rc) {
        sim_site_free(site);
        fprintf(stderr, "dcem-sim: %s\n", rc == DCEM_ENOMEM ? "out of memory" : err);
        return rc == DCEM_ENOMEM ? 1 : 2;
    }
    int status = 0;
    if (o.check)
        printf("%s: ok, %zu meters\n", o.config, site->n_meters);
    else
        status = serve(site, &l, o.truth);
    sim_site_free(site);
    return status;
}
