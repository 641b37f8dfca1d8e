/* test_sim_modbus.c — dcem-sim end to end: the real binary serving the
 * shipped scenarios on a free loopback TCP port and on a socat pty pair
 * (RTU), read by mbpoll, an independent Modbus client. Every register of
 * the SDM630, ADL400 and DTSU666 of configs/sim/clean-3.yaml must arrive as
 * exactly the words the simulator's truth file says it served, and those
 * words, decoded here by code of this test's own, must equal the model's
 * value to within one register step. A running clock serves a counter
 * between two truth snapshots; the fault scenarios give exceptions and
 * silence; 64 meters answer many clients at once. A partial register map
 * refuses a block read over a register it does not serve with exception 02
 * while each other register alone answers, and meters behind transformers
 * serve their ratio registers and secondary counters (libmodbus as the
 * client here, mbpoll for a second opinion). Processes are awaited by
 * polling (the ready line, the truth file), never by sleeping, and killed
 * in teardown whatever happened.
 *
 * Arguments: the dcem-sim binary, the source tree's configs directory and a
 * scratch directory. mbpoll and socat come from PATH (scripts/deps.sh). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "spawn.h"

#include "parse.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#define WAIT_MS 15000 /* for anything to start, answer or finish */
#define MAX_PROCS 24

typedef struct fixture {
    const char *sim_bin, *configs, *scratch;
    char profiles[512];     /* "": the source tree's configs/meters */
    pid_t procs[MAX_PROCS]; /* everything started: killed in teardown */
    size_t n_procs;
    pid_t sim;
    int sim_out; /* the simulator's stdout */
    int port;
    char truth[512], tty_a[512], tty_b[512];
} fixture;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* ---- processes ---- */

/* Starts argv (PATH searched) with stdout and stderr into a pipe whose read
 * end goes to *out (or to /dev/null when out is NULL). */
static pid_t start(fixture *f, char *const argv[], int *out)
{
    pid_t pid = spawn_child(argv, out, 1, "scripts/deps.sh installs mbpoll and socat");
    assert_true(f->n_procs < MAX_PROCS);
    f->procs[f->n_procs++] = pid;
    return pid;
}

/* Waits for pid to exit; kills it after timeout. Exit status, or -1. */
static int finish(fixture *f, pid_t pid, int timeout_ms)
{
    int status = 0;
    int64_t end = now_ms() + timeout_ms;
    pid_t r;
    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < end)
        pause_ms(5);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        status = -1;
    }
    for (size_t i = 0; i < f->n_procs; i++)
        if (f->procs[i] == pid) f->procs[i] = f->procs[--f->n_procs];
    return status < 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Reads fd to the end (or the deadline) into buf. */
static void drain(int fd, char *buf, size_t len, int64_t deadline)
{
    size_t n = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int wait = (int)(deadline - now_ms());
        if (wait <= 0 || poll(&pfd, 1, wait) <= 0) break;
        ssize_t r = read(fd, buf + n, len - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
        if (n == len - 1) break;
    }
    buf[n] = '\0';
}

/* Runs argv to completion; its output in out. Exit status. */
static int run(fixture *f, char *const argv[], char *out, size_t len)
{
    int fd;
    pid_t pid = start(f, argv, &fd);
    drain(fd, out, len, now_ms() + WAIT_MS);
    close(fd);
    return finish(f, pid, WAIT_MS);
}

/* ---- the simulator ---- */

static void start_sim(fixture *f, const char *scenario, const char *speed, int tcp)
{
    char config[512], profiles[512];
    snprintf(config, sizeof config, "%s/sim/%s.yaml", f->configs, scenario);
    if (f->profiles[0])
        snprintf(profiles, sizeof profiles, "%s", f->profiles);
    else
        snprintf(profiles, sizeof profiles, "%s/meters", f->configs);
    snprintf(f->truth, sizeof f->truth, "%s/truth-%ld.json", f->scratch, (long)getpid());
    unlink(f->truth);
    char *argv[16] = {(char *)f->sim_bin, "-c",          config,    "--profiles", profiles,
                      "--speed",          (char *)speed, "--truth", f->truth,     "--tcp"};
    int n = 10;
    argv[n++] = tcp ? "127.0.0.1:0" : "none";
    if (!tcp) {
        argv[n++] = "--rtu";
        argv[n++] = f->tty_a;
    }
    argv[n] = NULL;
    f->sim = start(f, argv, &f->sim_out);
    /* ready when it says so: "ready tcp=127.0.0.1:PORT rtu=... meters=N" */
    char line[512] = "";
    size_t used = 0;
    int64_t end = now_ms() + WAIT_MS;
    while (!strchr(line, '\n') && used < sizeof line - 1) {
        struct pollfd pfd = {f->sim_out, POLLIN, 0};
        int wait = (int)(end - now_ms());
        if (wait <= 0 || poll(&pfd, 1, wait) <= 0) break;
        ssize_t r = read(f->sim_out, line + used, 1); /* byte by byte: leave the rest */
        if (r <= 0) break;
        line[++used] = '\0';
    }
    if (strncmp(line, "ready ", 6)) {
        print_error("dcem-sim did not get ready: '%s'\n", line);
        fail();
    }
    f->port = -1;
    const char *p = strstr(line, "tcp=127.0.0.1:");
    if (tcp) {
        assert_non_null(p);
        p += strlen("tcp=127.0.0.1:");
        size_t k = strspn(p, "0123456789");
        assert_int_equal(dcem_parse_digits(p, k, &f->port), 0);
        assert_true(f->port > 0);
    }
}

/* Stops the simulator the way a user would and checks it stopped cleanly. */
static void stop_sim(fixture *f)
{
    kill(f->sim, SIGTERM);
    assert_int_equal(finish(f, f->sim, WAIT_MS), 0);
    close(f->sim_out);
    f->sim_out = -1;
}

static cJSON *load_json(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    enum { CAP = 4 << 20 }; /* 64 meters of registers fit many times over */
    char *buf = malloc(CAP);
    assert_non_null(buf);
    size_t n = fread(buf, 1, CAP - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    assert_non_null(j);
    return j;
}

/* A fresh truth snapshot: SIGUSR1, then poll for the file (renamed into
 * place whole). The caller frees it. */
static cJSON *truth(fixture *f)
{
    unlink(f->truth);
    kill(f->sim, SIGUSR1);
    struct stat st;
    int64_t end = now_ms() + WAIT_MS;
    while (stat(f->truth, &st) && now_ms() < end)
        pause_ms(5);
    return load_json(f->truth);
}

static cJSON *meter_of(cJSON *t, int unit)
{
    cJSON *m;
    cJSON_ArrayForEach(
        m, cJSON_GetObjectItem(t, "meters")) if (cJSON_GetObjectItem(m, "unit")->valueint ==
                                                 unit) return m;
    fail_msg("no meter at unit %d in the truth", unit);
    return NULL;
}

static cJSON *register_of(cJSON *meter, const char *name)
{
    cJSON *r;
    cJSON_ArrayForEach(
        r, cJSON_GetObjectItem(
               meter, "registers")) if (!strcmp(cJSON_GetObjectItem(r, "name")->valuestring,
                                                name)) return r;
    fail_msg("no register %s", name);
    return NULL;
}

static double num(cJSON *o, const char *key)
{
    cJSON *v = cJSON_GetObjectItem(o, key);
    assert_non_null(v);
    return v->valuedouble;
}

static const char *str(cJSON *o, const char *key)
{
    cJSON *v = cJSON_GetObjectItem(o, key);
    assert_true(v && cJSON_IsString(v));
    return v->valuestring;
}

/* ---- reading with mbpoll ---- */

typedef struct reading {
    int ok;
    uint16_t words[4];
    unsigned n;
    char out[4096];
} reading;

/* Reads count registers at address from unit with mbpoll in hex, over TCP
 * (f->port) or RTU (f->tty_b). timeout: mbpoll's -o seconds. */
static reading mbpoll(fixture *f, int unit, int function, unsigned address, unsigned count,
                      const char *timeout)
{
    char a[16], r[16], c[16], p[16];
    snprintf(a, sizeof a, "%d", unit);
    snprintf(r, sizeof r, "%u", address);
    snprintf(c, sizeof c, "%u", count);
    snprintf(p, sizeof p, "%d", f->port);
    char *argv[32] = {"mbpoll",
                      "-1",
                      "-0",
                      "-a",
                      a,
                      "-r",
                      r,
                      "-c",
                      c,
                      "-o",
                      (char *)timeout,
                      "-t",
                      function == 3 ? "4:hex" : "3:hex"};
    int n = 13;
    if (f->port > 0) {
        char *tcp[] = {"-m", "tcp", "-p", p, "127.0.0.1"};
        for (size_t k = 0; k < 5; k++)
            argv[n++] = tcp[k];
    } else {
        char *rtu[] = {"-m", "rtu", "-b", "9600", "-P", "none", "-d", "8", "-s", "1", f->tty_b};
        for (size_t k = 0; k < 11; k++)
            argv[n++] = rtu[k];
    }
    argv[n] = NULL;
    reading rd;
    memset(&rd, 0, sizeof rd);
    int status = run(f, argv, rd.out, sizeof rd.out);
    /* "[72]: \t0x474B" per register */
    for (const char *q = rd.out; (q = strstr(q, "]: \t0x")) && rd.n < 4; q += 6) {
        unsigned v = 0;
        for (int k = 0; k < 4; k++) {
            char h = q[6 + k];
            v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        rd.words[rd.n++] = (uint16_t)v;
    }
    rd.ok = status == 0 && rd.n == count;
    return rd;
}

/* The words as the truth file writes them: "474B 2002". */
static void words_text(const reading *rd, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned k = 0; k < rd->n; k++)
        used += (size_t)snprintf(buf + used, len - used, "%s%04X", k ? " " : "", rd->words[k]);
}

/* This test's own decoder (big-endian words, most significant first, as
 * the three meters use): the raw number. */
static double decode(const uint16_t *w, const char *type)
{
    uint32_t u32 = (uint32_t)w[0] << 16 | w[1];
    if (!strcmp(type, "u16")) return w[0];
    if (!strcmp(type, "s16")) return (int16_t)w[0];
    if (!strcmp(type, "u32")) return u32;
    if (!strcmp(type, "s32")) return (int32_t)u32;
    if (!strcmp(type, "f32")) {
        float x;
        memcpy(&x, &u32, sizeof x);
        return x;
    }
    fail_msg("type %s not decoded here", type);
    return NAN;
}

static unsigned words_of_type(const char *type)
{
    return type[1] == '1' ? 1 : type[1] == '3' ? 2 : 4;
}

/* Every register of the meter at unit: the words on the wire are those
 * the truth says were served, and decode to the model's value. */
static void check_meter(fixture *f, cJSON *t, int unit)
{
    cJSON *m = meter_of(t, unit), *r;
    int checked = 0;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(m, "registers"))
    {
        const char *type = str(r, "type"), *name = str(r, "name");
        assert_string_equal(str(r, "order"), "ABCD");
        unsigned n = words_of_type(type);
        reading rd = mbpoll(f, unit, (int)num(r, "function"), (unsigned)num(r, "address"), n, "2");
        if (!rd.ok) {
            print_error("unit %d %s: mbpoll failed:\n%s\n", unit, name, rd.out);
            fail();
        }
        char got[32];
        words_text(&rd, got, sizeof got);
        if (strcmp(got, str(r, "words"))) {
            print_error("unit %d %s: read %s, served %s\n", unit, name, got, str(r, "words"));
            fail();
        }
        double step = num(r, "unit"), value = decode(rd.words, type) * step;
        double model = num(r, "value"), served = num(r, "served");
        int counter = strstr(str(r, "quantity"), "energy") != NULL;
        double tol = !strcmp(type, "f32") ? 1e-6 * fabs(model) + 1e-12
                     : counter            ? step * (1 + 1e-9) /* counts completed */
                                          : step * (0.5 + 1e-9);         /* rounded */
        if (fabs(value - model) > tol || fabs(value - served) > 1e-9 * fabs(served) + 1e-12) {
            print_error("unit %d %s: decoded %.12g, served %.12g, model %.12g (step %g)\n", unit,
                        name, value, served, model, step);
            fail();
        }
        checked++;
    }
    assert_true(checked >= 20);
}

/* mbpoll's own float decoding of the counter, for good measure. */
static void check_float_counter(fixture *f, cJSON *t, int unit, int function, unsigned address)
{
    char a[16], r[16], p[16];
    snprintf(a, sizeof a, "%d", unit);
    snprintf(r, sizeof r, "%u", address);
    snprintf(p, sizeof p, "%d", f->port);
    char *argv[] = {"mbpoll", "-1",  "-0", "-B", "-a",        a,
                    "-r",     r,     "-c", "1",  "-t",        function == 3 ? "4:float" : "3:float",
                    "-m",     "tcp", "-p", p,    "127.0.0.1", NULL};
    char out[4096];
    assert_int_equal(run(f, argv, out, sizeof out), 0);
    const char *q = strstr(out, "]: \t");
    assert_non_null(q);
    q += 4;
    double v;
    assert_int_equal(dcem_parse_double(q, strcspn(q, " \r\n"), &v), 0);
    double served = num(meter_of(t, unit), "served_kwh");
    assert_true(fabs(v - served) <= 1e-5 * served); /* mbpoll prints 6 digits */
}

/* ---- fixtures ---- */

static int setup(void **state)
{
    fixture *f = *state;
    f->n_procs = 0;
    f->sim_out = -1;
    f->port = -1;
    f->profiles[0] = '\0';
    snprintf(f->tty_a, sizeof f->tty_a, "%s/tty-sim-%ld", f->scratch, (long)getpid());
    snprintf(f->tty_b, sizeof f->tty_b, "%s/tty-client-%ld", f->scratch, (long)getpid());
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < f->n_procs; i++)
        kill(f->procs[i], SIGKILL);
    for (size_t i = 0; i < f->n_procs; i++)
        waitpid(f->procs[i], NULL, 0);
    f->n_procs = 0;
    if (f->sim_out >= 0) close(f->sim_out);
    f->sim_out = -1;
    unlink(f->truth);
    unlink(f->tty_a); /* socat, killed, leaves its links behind */
    unlink(f->tty_b);
    return 0;
}

/* A socat pty pair: the simulator on tty_a, mbpoll on tty_b. */
static void start_line(fixture *f)
{
    unlink(f->tty_a);
    unlink(f->tty_b);
    char a[600], b[600];
    snprintf(a, sizeof a, "pty,raw,echo=0,link=%s", f->tty_a);
    snprintf(b, sizeof b, "pty,raw,echo=0,link=%s", f->tty_b);
    char *argv[] = {"socat", a, b, NULL};
    start(f, argv, NULL);
    struct stat st;
    int64_t end = now_ms() + WAIT_MS;
    while ((stat(f->tty_a, &st) || stat(f->tty_b, &st)) && now_ms() < end)
        pause_ms(5);
    assert_int_equal(stat(f->tty_b, &st), 0);
}

/* ---- tests ---- */

static void tcp_serves_what_the_truth_says(void **state)
{
    fixture *f = *state;
    start_sim(f, "clean-3", "0", 1); /* frozen clock: every read sees the same instant */
    cJSON *t = truth(f);
    for (int unit = 1; unit <= 3; unit++)
        check_meter(f, t, unit);
    check_float_counter(f, t, 1, 4, 0x48);   /* SDM630 */
    check_float_counter(f, t, 3, 3, 0x101E); /* DTSU666 */
    /* the counters carry the scenario's initial values (frozen: no energy) */
    assert_true(fabs(num(meter_of(t, 2), "served_kwh") - 345678.9) < 0.006);
    assert_true(num(meter_of(t, 1), "energy_kwh") == 0);
    /* a unit nobody serves: a gateway's exception 0x0B */
    reading rd = mbpoll(f, 9, 3, 0, 1, "1");
    assert_false(rd.ok);
    assert_non_null(strstr(rd.out, "Target device failed to respond"));
    cJSON_Delete(t);
    stop_sim(f);
}

static void rtu_serves_what_the_truth_says(void **state)
{
    fixture *f = *state;
    start_line(f);
    start_sim(f, "clean-3", "0", 0);
    cJSON *t = truth(f);
    for (int unit = 1; unit <= 3; unit++)
        check_meter(f, t, unit);
    /* a unit nobody serves: silence on a shared line */
    reading rd = mbpoll(f, 9, 3, 0, 1, "0.3");
    assert_false(rd.ok);
    assert_non_null(strstr(rd.out, "timed out"));
    /* and the line still works after it */
    assert_true(mbpoll(f, 2, 3, 0x0A, 2, "2").ok);
    cJSON_Delete(t);
    stop_sim(f);
}

static void running_clock_counts_between_snapshots(void **state)
{
    fixture *f = *state;
    start_sim(f, "clean-3", "600", 1); /* ten simulated minutes a second */
    cJSON *t1 = truth(f);
    reading rd = mbpoll(f, 2, 3, 0x0A, 2, "2"); /* ADL400 import, u32 0.01 kWh */
    cJSON *t2 = truth(f);
    assert_true(rd.ok);
    double read = decode(rd.words, "u32") * 0.01;
    double lo = num(meter_of(t1, 2), "served_kwh"), hi = num(meter_of(t2, 2), "served_kwh");
    assert_true(lo <= read + 1e-9 && read <= hi + 1e-9);
    assert_true(num(t2, "time_ms") > num(t1, "time_ms"));
    for (int unit = 1; unit <= 3; unit++) {
        double e1 = num(meter_of(t1, unit), "energy_kwh"),
               e2 = num(meter_of(t2, unit), "energy_kwh");
        assert_true(e2 > e1 && e1 >= 0);
        /* the counter is the initial value plus the energy */
        cJSON *m = meter_of(t2, unit);
        assert_true(fabs(num(m, "counter_kwh") - num(m, "initial_kwh") - e2) < 1e-6);
    }
    cJSON_Delete(t1);
    cJSON_Delete(t2);
    stop_sim(f);
    /* and the exit snapshot is later still */
    cJSON *t3 = load_json(f->truth);
    assert_true(num(meter_of(t3, 2), "served_kwh") >= hi);
    cJSON_Delete(t3);
}

static void exception_scenario_gives_exceptions(void **state)
{
    fixture *f = *state;
    start_sim(f, "fault-exception", "1", 1);
    reading rd = mbpoll(f, 2, 3, 0x101E, 2, "2");
    assert_false(rd.ok);
    assert_non_null(strstr(rd.out, "Slave device or server failure")); /* exception 04 */
    assert_true(mbpoll(f, 1, 4, 0x48, 2, "2").ok);
    cJSON *t = truth(f);
    assert_true(num(cJSON_GetObjectItem(meter_of(t, 2), "stats"), "exceptions") >= 1);
    assert_true(num(cJSON_GetObjectItem(meter_of(t, 1), "stats"), "answered") >= 1);
    cJSON_Delete(t);
    stop_sim(f);
}

static void timeout_scenario_times_out(void **state)
{
    fixture *f = *state;
    start_sim(f, "fault-timeout", "1", 1);
    reading rd = mbpoll(f, 2, 3, 0x0A, 2, "0.5");
    assert_false(rd.ok);
    assert_non_null(strstr(rd.out, "timed out"));
    assert_true(mbpoll(f, 1, 4, 0x48, 2, "2").ok); /* the rest of the bus answers */
    cJSON *t = truth(f);
    assert_true(num(cJSON_GetObjectItem(meter_of(t, 2), "stats"), "dropped") >= 1);
    cJSON_Delete(t);
    stop_sim(f);
}

static void slow_scenario_answers_late_without_blocking(void **state)
{
    fixture *f = *state;
    start_sim(f, "fault-slow", "1", 1);
    char a[16] = "2", p[16];
    snprintf(p, sizeof p, "%d", f->port);
    char *slow[] = {"mbpoll", "-1", "-0",    "-a", a,     "-r", "10", "-c",        "2", "-o",
                    "5",      "-t", "4:hex", "-m", "tcp", "-p", p,    "127.0.0.1", NULL};
    int fd;
    int64_t t0 = now_ms();
    pid_t pid = start(f, slow, &fd);
    /* once unit 2 holds its answer back (the truth counts it) ... */
    for (int64_t end = now_ms() + WAIT_MS;;) {
        cJSON *t = truth(f);
        double delayed = num(cJSON_GetObjectItem(meter_of(t, 2), "stats"), "delayed");
        cJSON_Delete(t);
        if (delayed >= 1) break;
        assert_true(now_ms() < end);
        pause_ms(10);
    }
    /* ... unit 1 answers another client while unit 2's still waits */
    assert_true(mbpoll(f, 1, 4, 0x48, 2, "2").ok);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
    char out[4096];
    drain(fd, out, sizeof out, now_ms() + WAIT_MS);
    close(fd);
    assert_int_equal(finish(f, pid, WAIT_MS), 0);
    assert_true(now_ms() - t0 >= 1400);
    assert_non_null(strstr(out, "[11]: \t0x"));
    stop_sim(f);
}

static void sixty_four_meters_many_clients(void **state)
{
    fixture *f = *state;
    start_sim(f, "bench-64", "0", 1);
    cJSON *t = truth(f);
    /* an idle client holds a connection open the whole time */
    int idle = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)f->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(idle, (struct sockaddr *)&sa, sizeof sa), 0);
    /* 16 clients at once, on units 4, 8, ..., 64 */
    enum { N = 16 };
    pid_t pids[N];
    int fds[N];
    char units[N][8], p[16];
    snprintf(p, sizeof p, "%d", f->port);
    for (int i = 0; i < N; i++) {
        snprintf(units[i], sizeof units[i], "%d", 4 * (i + 1));
        char *argv[] = {"mbpoll", "-1", "-0",    "-a", units[i], "-r", "72", "-c",        "2", "-o",
                        "5",      "-t", "3:hex", "-m", "tcp",    "-p", p,    "127.0.0.1", NULL};
        pids[i] = start(f, argv, &fds[i]);
    }
    for (int i = 0; i < N; i++) {
        char out[4096];
        drain(fds[i], out, sizeof out, now_ms() + WAIT_MS);
        close(fds[i]);
        assert_int_equal(finish(f, pids[i], WAIT_MS), 0);
        const char *want = str(register_of(meter_of(t, 4 * (i + 1)), "energy_import"), "words");
        char w[16];
        snprintf(w, sizeof w, "0x%.4s", want);
        assert_non_null(strstr(out, w));
        snprintf(w, sizeof w, "0x%.4s", want + 5);
        assert_non_null(strstr(out, w));
    }
    close(idle);
    assert_string_equal(str(meter_of(t, 64), "id"), "rack-64");
    cJSON_Delete(t);
    stop_sim(f);
}

/* ---- partial maps and transformers, with libmodbus as the client ---- */

static modbus_t *client(fixture *f, int unit)
{
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", f->port);
    assert_non_null(ctx);
    assert_int_equal(modbus_set_slave(ctx, unit), 0);
    modbus_set_response_timeout(ctx, 2, 0);
    if (modbus_connect(ctx)) {
        print_error("connect: %s\n", modbus_strerror(errno));
        modbus_free(ctx);
        fail();
    }
    return ctx;
}

static void client_free(modbus_t *ctx)
{
    modbus_close(ctx);
    modbus_free(ctx);
}

/* Reads count registers of function at address into out: 0, the Modbus
 * exception code the device answered, or -1 for anything else. */
static int mb_read(modbus_t *ctx, int function, unsigned address, unsigned count, uint16_t *out)
{
    int rc = function == 3 ? modbus_read_registers(ctx, (int)address, (int)count, out)
                           : modbus_read_input_registers(ctx, (int)address, (int)count, out);
    if (rc == (int)count) return 0;
    if (rc < 0 && errno > MODBUS_ENOBASE && errno < MODBUS_ENOBASE + 256)
        return errno - MODBUS_ENOBASE;
    return -1;
}

static int is_refused(cJSON *reg)
{
    return cJSON_IsTrue(cJSON_GetObjectItem(reg, "refused"));
}

/* Every register of the meter at unit read alone: refused ones get
 * exception 02, the others exactly the words the truth says (a frozen
 * clock). Returns how many were refused. */
static int each_register_alone(fixture *f, cJSON *t, int unit)
{
    modbus_t *ctx = client(f, unit);
    cJSON *r;
    int refused = 0;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(meter_of(t, unit), "registers"))
    {
        uint16_t w[4];
        unsigned n = words_of_type(str(r, "type"));
        int rc = mb_read(ctx, (int)num(r, "function"), (unsigned)num(r, "address"), n, w);
        if (is_refused(r)) {
            assert_int_equal(rc, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
            refused++;
            continue;
        }
        if (rc) {
            print_error("unit %d %s: rc %d\n", unit, str(r, "name"), rc);
            fail();
        }
        reading rd = {.ok = 1, .n = n};
        memcpy(rd.words, w, n * sizeof w[0]);
        char got[32];
        words_text(&rd, got, sizeof got);
        assert_string_equal(got, str(r, "words"));
    }
    client_free(ctx);
    return refused;
}

static double stat_of(cJSON *t, int unit, const char *key)
{
    return num(cJSON_GetObjectItem(meter_of(t, unit), "stats"), key);
}

static void partial_map_refuses_like_firmware(void **state)
{
    fixture *f = *state;
    start_sim(f, "partial-map", "0", 1);
    cJSON *t = truth(f);
    uint16_t w[125];

    /* unit 2, an ADL400 without reactive power: the coalesced read over
     * 0x0164-0x017F fails, the same registers around it read fine */
    cJSON *q = register_of(meter_of(t, 2), "reactive_total");
    assert_true(is_refused(q));
    unsigned qa = (unsigned)num(q, "address");
    modbus_t *ctx = client(f, 2);
    assert_int_equal(mb_read(ctx, 3, 0x0164, 28, w), MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
    assert_int_equal(mb_read(ctx, 3, 0x0164, qa - 0x0164, w), 0);
    assert_int_equal(mb_read(ctx, 3, qa + 2, 0x0180 - (qa + 2), w), 0);
    assert_int_equal(mb_read(ctx, 3, qa + 1, 1, w), MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
    assert_int_equal(mb_read(ctx, 3, 0x0000, 22, w), 0); /* holes: serve */
    client_free(ctx);
    assert_int_equal(each_register_alone(f, t, 2), 1);

    /* unit 1, a strict SDM630: six registers refused, and no read across
     * words no register holds */
    ctx = client(f, 1);
    assert_int_equal(mb_read(ctx, 4, 0x0000, 0x12, w), 0);
    assert_int_equal(mb_read(ctx, 4, 0x0000, 0x14, w), MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
    assert_int_equal(mb_read(ctx, 4, 0x0046, 6, w), 0);
    client_free(ctx);
    assert_int_equal(each_register_alone(f, t, 1), 6);

    /* unit 4: even the import counter */
    ctx = client(f, 4);
    assert_int_equal(mb_read(ctx, 3, 0x000A, 2, w), MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
    assert_int_equal(mb_read(ctx, 3, 0x0000, 2, w), 0);
    client_free(ctx);
    /* unit 3 serves everything */
    assert_int_equal(each_register_alone(f, t, 3), 0);

    /* mbpoll, an independent client, hears the same */
    reading rd = mbpoll(f, 2, 3, qa, 2, "2");
    assert_false(rd.ok);
    assert_non_null(strstr(rd.out, "Illegal data address"));
    assert_true(mbpoll(f, 2, 3, qa - 2, 2, "2").ok);

    cJSON *t2 = truth(f);
    /* unit 2: the block, qa + 1, reactive_total alone, mbpoll's read */
    assert_int_equal(stat_of(t2, 2, "refused"), 4);
    assert_int_equal(stat_of(t2, 1, "refused"), 7); /* a hole, six registers */
    assert_int_equal(stat_of(t2, 4, "refused"), 1);
    assert_int_equal(stat_of(t2, 3, "refused"), 0);
    assert_string_equal(str(meter_of(t2, 1), "holes"), "refuse");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(meter_of(t2, 1), "refused")), 6);
    cJSON_Delete(t2);
    cJSON_Delete(t);
    stop_sim(f);
}

/* Copies the profile src to dst; with add_ratios, when it has no ratio
 * registers, adds the ADL400's (PT 0x008D, CT 0x008E, u16): the test holds
 * before and after the shipped profile gains them. */
static void copy_profile(const char *src, const char *dst, int add_ratios)
{
    FILE *in = fopen(src, "rb");
    assert_non_null(in);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, in);
    fclose(in);
    buf[n] = '\0';
    FILE *out = fopen(dst, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(buf, 1, n, out), n);
    if (add_ratios && !strstr(buf, "quantity: ct_ratio")) {
        if (n && buf[n - 1] != '\n') fputc('\n', out);
        fputs("  - {name: pt_ratio, quantity: pt_ratio, function: 3, address: 0x008D, type: u16}\n"
              "  - {name: ct_ratio, quantity: ct_ratio, function: 3, address: 0x008E, type: u16}\n",
              out);
    }
    assert_int_equal(fclose(out), 0);
}

static cJSON *register_of_quantity(cJSON *meter, const char *quantity)
{
    cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(meter, "registers"))
    {
        if (!strcmp(str(r, "quantity"), quantity)) return r;
    }
    fail_msg("no %s register", quantity);
    return NULL;
}

static void ratio_registers_read_back(void **state)
{
    fixture *f = *state;
    snprintf(f->profiles, sizeof f->profiles, "%s/profiles-%ld", f->scratch, (long)getpid());
    mkdir(f->profiles, 0755);
    const char *models[] = {"acrel-adl400", "eastron-sdm630"};
    for (int k = 0; k < 2; k++) {
        char src[1024], dst[1024];
        snprintf(src, sizeof src, "%s/meters/%s.yaml", f->configs, models[k]);
        snprintf(dst, sizeof dst, "%s/%s.yaml", f->profiles, models[k]);
        copy_profile(src, dst, k == 0);
    }
    start_sim(f, "ct-ratio", "600", 1); /* ten minutes a second: the 120 s change comes soon */

    /* unit 1, an ADL400 on CT 400, PT 1: its ratio registers say so */
    cJSON *t = truth(f);
    cJSON *ct = register_of_quantity(meter_of(t, 1), "ct_ratio");
    cJSON *pt = register_of_quantity(meter_of(t, 1), "pt_ratio");
    assert_string_equal(str(ct, "words"), "0190");
    modbus_t *ctx = client(f, 1);
    uint16_t w[2];
    assert_int_equal(mb_read(ctx, (int)num(ct, "function"), (unsigned)num(ct, "address"), 1, w), 0);
    assert_int_equal(w[0], 400);
    assert_int_equal(mb_read(ctx, (int)num(pt, "function"), (unsigned)num(pt, "address"), 1, w), 0);
    assert_int_equal(w[0], 1);
    client_free(ctx);
    reading rd = mbpoll(f, 1, 3, (unsigned)num(ct, "address"), 1, "2"); /* a second opinion */
    assert_true(rd.ok);
    assert_int_equal(rd.words[0], 0x0190);

    /* unit 3: CT 400 until 120 s, then 800 */
    ct = register_of_quantity(meter_of(t, 3), "ct_ratio");
    ctx = client(f, 3);
    int64_t end = now_ms() + WAIT_MS;
    do {
        assert_int_equal(mb_read(ctx, 3, (unsigned)num(ct, "address"), 1, w), 0);
        assert_true(w[0] == 400 || w[0] == 800);
        if (w[0] == 400) pause_ms(20);
    } while (w[0] != 800 && now_ms() < end);
    assert_int_equal(w[0], 800);
    client_free(ctx);
    cJSON_Delete(t);

    t = truth(f);
    for (int unit = 1; unit <= 3; unit++) {
        cJSON *m = meter_of(t, unit);
        double ct_now = num(m, "ct_ratio"), pt_now = num(m, "pt_ratio");
        /* the primary counter is the initial value plus the energy */
        double energy = num(m, "energy_kwh"), counter = num(m, "counter_kwh");
        assert_true(energy > 0);
        assert_true(fabs(counter - num(m, "initial_kwh") - energy) < 1e-6);
        assert_true(fabs(num(m, "served_primary_kwh") - num(m, "served_kwh") * ct_now * pt_now) <
                    1e-6);
        /* the stretches: the counter runs on from one to the next, and
         * their secondary advances times their ratios give the energy */
        cJSON *g, *ratios = cJSON_GetObjectItem(m, "ratios");
        double sum = 0, at = num(cJSON_GetArrayItem(ratios, 0), "secondary_start_kwh");
        cJSON_ArrayForEach(g, ratios)
        {
            assert_true(fabs(num(g, "secondary_start_kwh") - at) < 1e-9 * at);
            at += num(g, "secondary_kwh");
            sum += num(g, "secondary_kwh") * num(g, "ct_ratio") * num(g, "pt_ratio");
        }
        assert_true(fabs(at - num(m, "secondary_kwh")) < 1e-9 * at);
        assert_true(fabs(sum - energy) < 1e-9 * energy);
        /* one stretch: served times the ratios is the primary counter, to
         * one count of the meter (0.01 kWh secondary; float32 for the SDM) */
        double step = unit == 2 ? 1e-6 * counter : 0.01 * ct_now * pt_now;
        if (unit != 3) assert_true(fabs(num(m, "served_primary_kwh") - counter) <= step);
    }
    cJSON *m3 = meter_of(t, 3), *ratios = cJSON_GetObjectItem(m3, "ratios");
    assert_int_equal(cJSON_GetArraySize(ratios), 2);
    assert_true(num(cJSON_GetArrayItem(ratios, 1), "from_s") == 120);
    assert_true(num(cJSON_GetArrayItem(ratios, 1), "ct_ratio") == 800);
    assert_true(num(m3, "ct_ratio") == 800);
    /* an SDM630 on CT 40: current is a fortieth, voltage as it is */
    cJSON *i1 = register_of(meter_of(t, 2), "current_l1");
    assert_true(fabs(num(i1, "primary") - 40 * num(i1, "value")) < 1e-9 * num(i1, "primary"));
    cJSON *v1 = register_of(meter_of(t, 2), "voltage_l1");
    assert_true(num(v1, "primary") == num(v1, "value"));
    cJSON_Delete(t);
    stop_sim(f);
    for (int k = 0; k < 2; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.yaml", f->profiles, models[k]);
        unlink(path);
    }
    rmdir(f->profiles);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: test_sim_modbus DCEM_SIM CONFIGS_DIR SCRATCH_DIR\n");
        return 2;
    }
    mkdir(argv[3], 0755);
    fixture f = {.sim_bin = argv[1], .configs = argv[2], .scratch = argv[3], .sim_out = -1};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(tcp_serves_what_the_truth_says, setup, teardown,
                                                 &f),
        cmocka_unit_test_prestate_setup_teardown(rtu_serves_what_the_truth_says, setup, teardown,
                                                 &f),
        cmocka_unit_test_prestate_setup_teardown(running_clock_counts_between_snapshots, setup,
                                                 teardown, &f),
        cmocka_unit_test_prestate_setup_teardown(exception_scenario_gives_exceptions, setup,
                                                 teardown, &f),
        cmocka_unit_test_prestate_setup_teardown(timeout_scenario_times_out, setup, teardown, &f),
        cmocka_unit_test_prestate_setup_teardown(slow_scenario_answers_late_without_blocking, setup,
                                                 teardown, &f),
        cmocka_unit_test_prestate_setup_teardown(sixty_four_meters_many_clients, setup, teardown,
                                                 &f),
        cmocka_unit_test_prestate_setup_teardown(partial_map_refuses_like_firmware, setup, teardown,
                                                 &f),
        cmocka_unit_test_prestate_setup_teardown(ratio_registers_read_back, setup, teardown, &f),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
