/* spawn.h — starting the real programs an integration test talks to
 * (dcem-sim, socat, mbpoll): one posix_spawnp with the child's output in a
 * pipe or thrown away. For the cmocka integration tests; needs <cmocka.h>
 * (and what it needs) included first. */
#ifndef DCEM_TEST_SPAWN_H
#define DCEM_TEST_SPAWN_H

#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* Starts argv (PATH searched). With out, the child's stdout (and its stderr
 * too when with_stderr) goes to a pipe whose read end is *out; without, its
 * stdout goes to /dev/null. A program that cannot be started fails the test,
 * naming it and `hint` (what installs it). */
static pid_t spawn_child(char *const argv[], int *out, int with_stderr, const char *hint)
{
    int p[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    if (out) {
        assert_int_equal(pipe(p), 0);
        posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
        if (with_stderr) posix_spawn_file_actions_adddup2(&fa, p[1], STDERR_FILENO);
        posix_spawn_file_actions_addclose(&fa, p[0]);
        posix_spawn_file_actions_addclose(&fa, p[1]);
    } else {
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (out) close(p[1]);
    if (rc) {
        print_error("cannot start %s: %s (%s)\n", argv[0], strerror(rc), hint);
        if (out) close(p[0]);
        fail();
    }
    if (out) *out = p[0];
    return pid;
}

#endif
