#include "dcem_log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static atomic_int threshold = DCEM_LOG_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};

void dcem_log_set_level(int level)
{
    atomic_store(&threshold, level);
}

int dcem_log_get_level(void)
{
    return atomic_load(&threshold);
}

int dcem_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

static void vlog(int level, const char *module, const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "%s: %s: ", names[level < 0 ? 0 : level > 3 ? 3 : level],
                     module);
    if (n < 0) return;
    if ((size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    /* one write per line, so lines of threads do not interleave */
    fprintf(stderr, "%s\n", line);
}

void dcem_log(int level, const char *module, const char *fmt, ...)
{
    if (!dcem_log_enabled(level)) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, module, fmt, ap);
    va_end(ap);
}

void dcem_complain(dcem_complaint *c, int level, const char *module, const char *fmt, ...)
{
    if (c->count++ > 0 || !dcem_log_enabled(level)) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, module, fmt, ap);
    va_end(ap);
}

void dcem_release(dcem_complaint *c, const char *module, const char *fmt, ...)
{
    if (c->count == 0) return;
    unsigned long n = c->count;
    c->count = 0;
    if (!dcem_log_enabled(DCEM_LOG_INFO)) return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dcem_log(DCEM_LOG_INFO, module, "%s (after %lu failure%s)", msg, n, n == 1 ? "" : "s");
}
