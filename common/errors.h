/* errors.h — the one error enum of libdcem and its strerror.
 * Every fallible function returns 0 or one of these negative codes; human
 * detail goes into a caller buffer. Codes are never renumbered or reused. */
#ifndef DCEM_ERRORS_H
#define DCEM_ERRORS_H

typedef enum dcem_err {
    DCEM_OK = 0,
    DCEM_ENOMEM = -1,  /* allocation failed */
    DCEM_EINVAL = -2,  /* malformed input or invalid argument */
    DCEM_ERANGE = -3,  /* value outside its allowed range */
    DCEM_ECONFIG = -4, /* configuration error; detail in the caller's buffer */
    DCEM_ETZ = -5,     /* time-zone data malformed or unsupported */
    DCEM_EIO = -6,     /* a file could not be read (dcem_io only) */
    DCEM_EFULL = -7,   /* a hard capacity limit was reached */
    DCEM_ESTORAGE = -8,  /* creating, writing, syncing, renaming or reading a stored file failed */
    DCEM_ENOTFOUND = -9, /* no such item (e.g. no spooled record at or after a seq) */
    DCEM_ERETRY = -10,   /* a transaction lost to a conflict: roll back and run it again */
} dcem_err;

/* Static English text for an error code; never NULL. */
const char *dcem_strerror(int err);

#endif
