/* test_sim_rtu_timing.c — dcem-sim's RTU wire time: the real binary on a
 * socat pty pair, read by libmodbus as the agent reads, must take at least
 * the time a real line takes. The expected times are computed here from
 * the Modbus serial-line rules, independently of the simulator's code: a
 * character is 1 start + data + parity (unless N) + stop bits; frames are
 * separated by 3.5 characters of silence (1.75 ms above 19200 baud); a
 * meter answers 3.5 characters plus its turnaround after the request's
 * last character. Reads are checked against that lower bound, which a
 * loaded machine can only exceed; the upper bounds are a generous factor,
 * there only to catch a wildly wrong model. Also: the first byte of a long
 * answer comes when a real line delivers it (a response timeout shorter
 * than the whole answer still succeeds), and --wire-time off answers at
 * once.
 *
 * Arguments: the dcem-sim binary, the source tree's configs directory and
 * a scratch directory. socat comes from PATH (scripts/deps.sh). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <modbus.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#define WAIT_MS 15000 /* for anything to start */

typedef struct fixture {
    const char *sim_bin, *configs, *scratch;
    pid_t socat, sim;
    int sim_out;
    char tty_a[512], tty_b[512];
    modbus_t *mb;
} fixture;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* ---- the line's arithmetic, from the Modbus serial-line rules ---- */

typedef struct line {
    int baud;
    char parity;
    int stop, turnaround_ms;
} line;

static double char_ms(const line *l)
{
    return (1 + 8 + (l->parity != 'N') + l->stop) * 1000.0 / l->baud;
}

static double silence_ms(const line *l)
{
    return l->baud > 19200 ? 1.75 : 3.5 * char_ms(l);
}

/* From a request's first character to its answer's last: request, silence,
 * turnaround, answer. */
static double read_ms(const line *l, int registers)
{
    return (8 + 5 + 2 * registers) * char_ms(l) + silence_ms(l) + l->turnaround_ms;
}

/* ---- processes ---- */

static pid_t spawn(char *const argv[], int *out)
{
    return spawn_child(argv, out, 0, "scripts/deps.sh installs socat");
}

/* A socat pty pair, dcem-sim on one end with extra options (NULL-ended),
 * and a libmodbus client on the other with the same line settings. */
static void start(fixture *f, const line *l, const char *const *extra)
{
    unlink(f->tty_a);
    unlink(f->tty_b);
    char a[600], b[600];
    snprintf(a, sizeof a, "pty,raw,echo=0,link=%s", f->tty_a);
    snprintf(b, sizeof b, "pty,raw,echo=0,link=%s", f->tty_b);
    char *socat[] = {"socat", a, b, NULL};
    f->socat = spawn(socat, NULL);
    struct stat st;
    int64_t end = now_ns() + WAIT_MS * 1000000LL;
    while ((stat(f->tty_a, &st) || stat(f->tty_b, &st)) && now_ns() < end)
        pause_ms(5);
    assert_int_equal(stat(f->tty_b, &st), 0);

    char config[512], profiles[512], baud[16], parity[2] = {l->parity, 0}, stop[4], ta[16];
    snprintf(config, sizeof config, "%s/sim/clean-3.yaml", f->configs);
    snprintf(profiles, sizeof profiles, "%s/meters", f->configs);
    snprintf(baud, sizeof baud, "%d", l->baud);
    snprintf(stop, sizeof stop, "%d", l->stop);
    snprintf(ta, sizeof ta, "%d", l->turnaround_ms);
    char *argv[32];
    int n = 0;
    const char *opts[][2] = {
        {"-c", config},       {"--profiles", profiles}, {"--speed", "0"},
        {"--tcp", "none"},    {"--rtu", f->tty_a},      {"--baud", baud},
        {"--parity", parity}, {"--stop", stop},         {"--turnaround-ms", ta}};
    argv[n++] = (char *)f->sim_bin;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        argv[n++] = (char *)opts[i][0];
        argv[n++] = (char *)opts[i][1];
    }
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    f->sim = spawn(argv, &f->sim_out);
    char buf[256] = "";
    size_t used = 0;
    while (!strchr(buf, '\n') && used < sizeof buf - 1) {
        struct pollfd pfd = {f->sim_out, POLLIN, 0};
        int wait = (int)((end - now_ns()) / 1000000);
        if (wait <= 0 || poll(&pfd, 1, wait) <= 0) break;
        ssize_t r = read(f->sim_out, buf + used, sizeof buf - 1 - used);
        if (r <= 0) break;
        used += (size_t)r;
        buf[used] = '\0';
    }
    if (strncmp(buf, "ready ", 6)) {
        print_error("dcem-sim did not get ready: '%s'\n", buf);
        fail();
    }
    f->mb = modbus_new_rtu(f->tty_b, l->baud, l->parity, 8, l->stop);
    assert_non_null(f->mb);
    assert_int_equal(modbus_connect(f->mb), 0);
    modbus_set_slave(f->mb, 1);
    modbus_set_response_timeout(f->mb, 3, 0);
}

/* One read of the SDM630's first `registers` input registers, as the agent
 * reads them; its duration in ms. */
static double timed_read(fixture *f, int registers)
{
    uint16_t w[125];
    int64_t t0 = now_ns();
    int n = modbus_read_input_registers(f->mb, 0, registers, w);
    double ms = (double)(now_ns() - t0) / 1e6;
    if (n != registers) {
        print_error("read of %d registers: %s\n", registers, modbus_strerror(errno));
        fail();
    }
    return ms;
}

static int setup(void **state)
{
    fixture *f = *state;
    f->socat = f->sim = -1;
    f->sim_out = -1;
    f->mb = NULL;
    snprintf(f->tty_a, sizeof f->tty_a, "%s/tty-sim-%ld", f->scratch, (long)getpid());
    snprintf(f->tty_b, sizeof f->tty_b, "%s/tty-client-%ld", f->scratch, (long)getpid());
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->mb) {
        modbus_close(f->mb);
        modbus_free(f->mb);
    }
    pid_t pids[] = {f->sim, f->socat};
    for (size_t i = 0; i < 2; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
    if (f->sim_out >= 0) close(f->sim_out);
    unlink(f->tty_a); /* socat, killed, leaves its links behind */
    unlink(f->tty_b);
    return 0;
}

/* ---- tests ---- */

/* 9600 8N1: one 76-register read (the SDM630's first read) takes its wire
 * time, 180.5 ms with 5 ms turnaround; ten back to back take ten of them
 * and the nine silences between, so the line's timeline does not lose the
 * silence after an answer and does not drift. */
static void read_takes_wire_time_8n1(void **state)
{
    fixture *f = *state;
    line l = {9600, 'N', 1, 5};
    start(f, &l, NULL);
    double want = read_ms(&l, 76);
    double got = timed_read(f, 76);
    print_message("9600 8N1, 76 registers: %.1f ms (wire time %.1f ms)\n", got, want);
    assert_true(got >= want);
    assert_true(got < 4 * want);
    int64_t t0 = now_ns();
    for (int i = 0; i < 10; i++)
        timed_read(f, 76);
    double ten = (double)(now_ns() - t0) / 1e6, ten_want = 10 * want + 9 * silence_ms(&l);
    print_message("ten back to back: %.1f ms (wire time %.1f ms)\n", ten, ten_want);
    assert_true(ten >= ten_want);
    assert_true(ten < 4 * ten_want);
}

/* 9600 8E1 (11 bits a character) and a slow meter: 197.1 ms + 20 ms. */
static void read_takes_wire_time_8e1(void **state)
{
    fixture *f = *state;
    line l = {9600, 'E', 1, 20};
    start(f, &l, NULL);
    double want = read_ms(&l, 76);
    double got = timed_read(f, 76);
    print_message("9600 8E1, 76 registers, turnaround 20 ms: %.1f ms (wire time %.1f ms)\n", got,
                  want);
    assert_true(got >= want);
    assert_true(got < 4 * want);
    /* a short read costs its own length, not the long one's */
    double short_want = read_ms(&l, 10), short_got = timed_read(f, 10);
    assert_true(short_got >= short_want);
    assert_true(short_got < want);
}

/* Above 19200 baud the silence is a fixed 1.75 ms. */
static void read_takes_wire_time_38400(void **state)
{
    fixture *f = *state;
    line l = {38400, 'N', 2, 0};
    start(f, &l, NULL);
    double want = read_ms(&l, 76);
    double got = timed_read(f, 76);
    print_message("38400 8N2, 76 registers: %.1f ms (wire time %.1f ms)\n", got, want);
    assert_true(got >= want);
    assert_true(got < 4 * want + 20);
}

/* The answer's first byte comes when a real line delivers it (after 8 + 3.5
 * + 1 characters and the turnaround, 18 ms here), not with its last: a
 * 150 ms response timeout suffices for a 180 ms read, as on a real bus. */
static void first_byte_on_time(void **state)
{
    fixture *f = *state;
    line l = {9600, 'N', 1, 5};
    start(f, &l, NULL);
    modbus_set_response_timeout(f->mb, 0, 150000);
    modbus_set_byte_timeout(f->mb, 0, 100000);
    double got = timed_read(f, 76);
    assert_true(got >= read_ms(&l, 76));
}

/* --wire-time off: answers at once; the turnaround is not applied. */
static void wire_time_off_answers_at_once(void **state)
{
    fixture *f = *state;
    line l = {9600, 'E', 1, 1000};
    const char *off[] = {"--wire-time", "off", NULL};
    start(f, &l, off);
    double got = timed_read(f, 76);
    print_message("wire time off: %.1f ms (on it would be %.1f ms)\n", got, read_ms(&l, 76));
    assert_true(got < 1000);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: test_sim_rtu_timing DCEM_SIM CONFIGS_DIR SCRATCH_DIR\n");
        return 2;
    }
    mkdir(argv[3], 0755);
    signal(SIGPIPE, SIG_IGN);
    fixture f = {.sim_bin = argv[1], .configs = argv[2], .scratch = argv[3]};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(read_takes_wire_time_8n1, setup, teardown, &f),
        cmocka_unit_test_prestate_setup_teardown(read_takes_wire_time_8e1, setup, teardown, &f),
        cmocka_unit_test_prestate_setup_teardown(read_takes_wire_time_38400, setup, teardown, &f),
        cmocka_unit_test_prestate_setup_teardown(first_byte_on_time, setup, teardown, &f),
        cmocka_unit_test_prestate_setup_teardown(wire_time_off_answers_at_once, setup, teardown,
                                                 &f),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
