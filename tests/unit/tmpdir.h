/* tmpdir.h — the unit tests' scratch directories: removing one with all it
 * holds (the tests make them with mkdtemp and remove them in teardown). */
#ifndef DCEM_TEST_TMPDIR_H
#define DCEM_TEST_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Removes path: a file, or a directory and everything below it. */
static inline void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[1024];
        int n = snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        if (n < 0 || (size_t)n >= sizeof p) continue; /* never a cut path: not ours */
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_rf(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(path);
}

#endif
