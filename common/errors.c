#include "errors.h"

const char *dcem_strerror(int err)
{
    switch (err) {
    case DCEM_OK: return "success";
    case DCEM_ENOMEM: return "out of memory";
    case DCEM_EINVAL: return "malformed input";
    case DCEM_ERANGE: return "value out of range";
    case DCEM_ECONFIG: return "configuration error";
    case DCEM_ETZ: return "bad time-zone data";
    case DCEM_EIO: return "file could not be read";
    case DCEM_EFULL: return "capacity limit reached";
    case DCEM_ESTORAGE: return "storage I/O failed";
    case DCEM_ENOTFOUND: return "not found";
    case DCEM_ERETRY: return "conflict: run the transaction again";
    }
    return "unknown error";
}
