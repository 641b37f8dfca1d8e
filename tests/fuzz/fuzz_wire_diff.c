/* fuzz_wire_diff.c — the streaming batch decoder (dcem_wire_decode_batch,
 * common/wire.c) against the cJSON-tree decoder it replaced
 * (wire_batch_cjson.c, kept for this): on every input both must give the
 * same result, reason and message, the same batch fields (also on failure:
 * identified, listed and unknown counts), and bit-identical readings.
 * Byte 0: bit 0 decodes on the topic of sh-dc01/gw-a17 (else no topic),
 * bit 1 with room for 3 readings only (else DCEM_WIRE_MAX_READINGS), bit 2
 * with a 24-byte message buffer (else 512); the rest is the payload, in an
 * allocation of exactly its size. */
#include "fuzz.h"

#include "wire.h"
#include "wire_batch_cjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the same double, bit for bit (-0.0 is not 0.0 here) */
static int bits(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static void same_reading(const dcem_wire_reading *a, const dcem_wire_reading *b)
{
    FUZZ_CHECK(!strcmp(a->meter, b->meter) && a->t_ms == b->t_ms && a->quality == b->quality);
    FUZZ_CHECK(a->has_kwh == b->has_kwh && a->has_kw == b->has_kw);
    FUZZ_CHECK(bits(a->kwh, b->kwh) && bits(a->kw, b->kw));
    FUZZ_CHECK(bits(a->ct, b->ct) && bits(a->pt, b->pt) && a->ratio_note == b->ratio_note);
    FUZZ_CHECK(a->n_values == b->n_values);
    for (size_t k = 0; k < a->n_values; k++)
        FUZZ_CHECK(a->values[k].quantity == b->values[k].quantity &&
                   a->values[k].phase == b->values[k].phase &&
                   bits(a->values[k].value, b->values[k].value));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dcem_wire_reading *mine, *ref;
    if (!mine) {
        mine = calloc(DCEM_WIRE_MAX_READINGS, sizeof *mine);
        ref = calloc(DCEM_WIRE_MAX_READINGS, sizeof *ref);
        FUZZ_CHECK(mine && ref);
    }
    if (size < 1) return 0;
    size_t len = size - 1;
    char *buf = malloc(len ? len : 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data + 1, len);
    const char *site = data[0] & 1 ? "sh-dc01" : NULL, *gw = data[0] & 1 ? "gw-a17" : NULL;
    size_t cap = data[0] & 2 ? 3 : DCEM_WIRE_MAX_READINGS;
    size_t errlen = data[0] & 4 ? 24 : 512;
    char e1[512], e2[512];
    memset(e1, 'x', sizeof e1);
    memset(e2, 'y', sizeof e2);
    dcem_wire_batch a, b;
    int ra = -1, rb = -2;
    int rc1 = dcem_wire_decode_batch(buf, len, site, gw, mine, cap, &a, &ra, e1, errlen);
    int rc2 = dcem_wire_decode_batch_cjson(buf, len, site, gw, ref, cap, &b, &rb, e2, errlen);
    if (rc1 != rc2 || ra != rb || strcmp(e1, e2) != 0)
        fprintf(stderr, "streaming: %d %s '%s'\ncJSON:     %d %s '%s'\n", rc1,
                dcem_wire_reason_name(ra), e1, rc2, dcem_wire_reason_name(rb), e2);
    FUZZ_CHECK(rc1 == rc2 && ra == rb);
    FUZZ_CHECK(strcmp(e1, e2) == 0);
    FUZZ_CHECK(!strcmp(a.site, b.site) && !strcmp(a.gateway, b.gateway));
    FUZZ_CHECK(a.epoch == b.epoch && a.seq == b.seq && a.identified == b.identified);
    FUZZ_CHECK(a.unknown_values == b.unknown_values && a.listed_readings == b.listed_readings);
    FUZZ_CHECK(a.n_readings == b.n_readings && a.readings == mine && b.readings == ref);
    for (size_t i = 0; i < a.n_readings; i++)
        same_reading(&mine[i], &ref[i]);
    free(buf);
    return 0;
}
