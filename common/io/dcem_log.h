/* dcem_log.h — one small logging module for the dcem programs: levels, a
 * module prefix, the level checked before formatting, and "complain once"
 * for failures that repeat every poll (collectd's c_complain/c_release): the
 * first failure is logged, repeats are counted, the recovery is logged once
 * with the count. Lines go to stderr (journald adds the timestamps). */
#ifndef DCEM_LOG_H
#define DCEM_LOG_H

#include <stdarg.h>

typedef enum dcem_log_level {
    DCEM_LOG_ERROR = 0,
    DCEM_LOG_WARN,
    DCEM_LOG_INFO,
    DCEM_LOG_DEBUG,
} dcem_log_level;

/* Process-wide threshold (set once at start or on reload). */
void dcem_log_set_level(int level);
int dcem_log_get_level(void);

/* "error", "warn", "info", "debug" -> level, or -1. */
int dcem_log_level_parse(const char *name);

#define dcem_log_enabled(level) ((level) <= dcem_log_get_level())

void dcem_log(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define DCEM_LOGE(mod, ...) dcem_log(DCEM_LOG_ERROR, mod, __VA_ARGS__)
#define DCEM_LOGW(mod, ...) dcem_log(DCEM_LOG_WARN, mod, __VA_ARGS__)
#define DCEM_LOGI(mod, ...) dcem_log(DCEM_LOG_INFO, mod, __VA_ARGS__)
#define DCEM_LOGD(mod, ...)                                                                        \
    do {                                                                                           \
        if (dcem_log_enabled(DCEM_LOG_DEBUG)) dcem_log(DCEM_LOG_DEBUG, mod, __VA_ARGS__);         \
    } while (0)

/* A repeating failure: caller storage, zero-initialised. */
typedef struct dcem_complaint {
    unsigned long count; /* failures since the last recovery */
} dcem_complaint;

/* Logs the first failure at `level`; later ones only count. */
void dcem_complain(dcem_complaint *c, int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Logs the recovery once (with how many failures it ended), if there was a
 * failure; resets the count. */
void dcem_release(dcem_complaint *c, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
