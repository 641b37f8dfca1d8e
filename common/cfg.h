/* cfg.h — declarative YAML config tables (key, type, default, range) that
 * fill a plain C struct, with errors of the form "file:line: key: what is
 * wrong". Pure: the caller hands in the file's bytes. Unknown and duplicate
 * keys are errors that name the valid keys. Used by every dcem config: the
 * site ledger, the policy file, and later the agent and collector configs. */
#ifndef DCEM_CFG_H
#define DCEM_CFG_H

#include <stddef.h>

typedef enum dcem_cfg_type {
    DCEM_CFG_END = 0, /* terminates a field table */
    DCEM_CFG_INT,     /* long long */
    DCEM_CFG_DOUBLE,  /* double; finite */
    DCEM_CFG_STRING,  /* char[size], NUL-terminated, max size-1 bytes */
    DCEM_CFG_BOOL,    /* int 0/1; true/false/yes/no/on/off */
    DCEM_CFG_ENUM,    /* int: index into names[] */
    DCEM_CFG_DATE,    /* char[11] "YYYY-MM-DD", a real calendar date */
    DCEM_CFG_MONTH,   /* int: year * 12 + (month - 1), from "YYYY-MM" */
    DCEM_CFG_MAP,     /* nested struct at offset, described by sub */
    DCEM_CFG_LIST,    /* array at offset of up to max items of size bytes,
                         count (size_t) at count_offset; items are maps
                         (sub != NULL) or scalars of type item */
    DCEM_CFG_LINE,    /* not a key: int receiving the map's line number */
} dcem_cfg_type;

enum {
    DCEM_CFG_REQUIRED = 1u << 0, /* absent key is an error */
    DCEM_CFG_MIN_EXCL = 1u << 1, /* value must be > min, not >= min */
};

typedef struct dcem_cfg_field {
    const char *key;
    dcem_cfg_type type;
    size_t offset;
    size_t size;       /* STRING: buffer size; LIST: item size */
    unsigned flags;    /* DCEM_CFG_* */
    double min, max;   /* INT/DOUBLE: range; LIST: item count range */
    double def;        /* INT/DOUBLE/BOOL/ENUM default when absent (NAN: none) */
    const char *def_str;               /* STRING default when absent */
    const char *const *names;          /* ENUM: NULL-terminated */
    const struct dcem_cfg_field *sub;  /* MAP, LIST of maps */
    dcem_cfg_type item;                /* LIST of scalars: their type */
    size_t count_offset;               /* LIST: where the item count goes */
    /* Optional rule beyond type and range, run as soon as the value is
     * stored, so the error carries the value's line: value points at the
     * stored value (a LIST: its first item, with count items). Returns 0,
     * or non-zero with a reason in why. */
    int (*check)(const void *value, size_t count, char *why, size_t whylen);
    const char *help;                  /* one line for docs and errors */
} dcem_cfg_field;

/* Fills the struct at out from the YAML document in buf (len bytes) per the
 * field table (top level must be a mapping). Defaults are applied first, so
 * out is fully defined even on error. name is used in messages ("file").
 * Returns 0, or DCEM_ECONFIG with "name:line: key: what is wrong" in err,
 * or DCEM_ENOMEM. Cross-field rules are the caller's: see dcem_cfg_error. */
int dcem_cfg_parse(const char *name, const char *buf, size_t len, const dcem_cfg_field *table,
                   void *out, char *err, size_t errlen);

/* Formats "name:line: key: message" into err; returns DCEM_ECONFIG. For the
 * caller's cross-field checks. */
int dcem_cfg_error(char *err, size_t errlen, const char *name, int line, const char *key,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
