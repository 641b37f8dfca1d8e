/* wire_batch_cjson.h — the cJSON-tree batch decoder common/wire.c had
 * before issue 12, kept for the tests as the reference of the streaming one
 * (same contract as dcem_wire_decode_batch). */
#ifndef DCEM_WIRE_BATCH_CJSON_H
#define DCEM_WIRE_BATCH_CJSON_H

#include "wire.h"

int dcem_wire_decode_batch_cjson(const char *buf, size_t len, const char *topic_site,
                                 const char *topic_gateway, dcem_wire_reading *storage,
                                 size_t cap, dcem_wire_batch *out, int *reason, char *err,
                                 size_t errlen);

#endif
