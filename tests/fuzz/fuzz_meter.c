/* fuzz_meter.c — a meter's saved state (common/meter.c) on hostile bytes:
 * the blob the store keeps for each meter and each daily checkpoint, read
 * back by the collector after a restart or for a rebuild. What decodes must
 * re-encode to the same bytes, and a meter restored from it must take
 * readings (decoded from the rest of the input) without breaking the
 * pipeline's invariants: intervals in time order, pieces that fit. */
#include "fuzz.h"

#include "errors.h"
#include "meter.h"

#include <string.h>

typedef struct sink {
    int64_t last_end;
    int n;
} sink;

static void on_interval(void *ctx, const dcem_interval *iv)
{
    sink *s = ctx;
    FUZZ_CHECK(iv->start_ms < iv->end_ms);
    FUZZ_CHECK(iv->covered_ms >= 0 && iv->covered_ms <= iv->end_ms - iv->start_ms);
    s->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dcem_tz *tz;
    if (!tz) tz = dcem_tz_new_fixed(8 * 3600);
    if (size < 2) return 0;
    size_t len = data[0] % (DCEM_METER_STATE_MAX + 1);
    if (len > size - 1) len = size - 1;
    const uint8_t *blob = data + 1, *rest = data + 1 + len;
    size_t nrest = size - 1 - len;
    dcem_meter_state m;
    if (dcem_meter_decode(&m, tz, 15, blob, len)) return 0;
    unsigned char again[DCEM_METER_STATE_MAX];
    size_t n = dcem_meter_encode(&m, again, sizeof again);
    FUZZ_CHECK(n == len && !memcmp(again, blob, len));
    static const dcem_counter_cfg cfg = {.rated_kw = 1000, .modulo_kwh = 1e6,
                                         .resolution_kwh = 0.01, .margin = 1.5,
                                         .gap_ms = 1350000, .max_gap_ms = 86400000LL * 92};
    sink s = {0};
    int64_t t = dcem_meter_last_ms(&m);
    if (t == INT64_MIN || t > INT64_C(4102444800000) || t < 0) t = INT64_C(1735660800000);
    /* 6 bytes a reading: time step (s), value */
    for (size_t i = 0; i + 6 <= nrest && i < 6 * 64; i += 6) {
        t += (int64_t)(rest[i] | rest[i + 1] << 8) * 1000;
        uint32_t v = (uint32_t)rest[i + 2] | (uint32_t)rest[i + 3] << 8 |
                     (uint32_t)rest[i + 4] << 16 | (uint32_t)rest[i + 5] << 24;
        dcem_meter_push(&m, &cfg, t, 1, v / 100.0, 0, 0, 1, on_interval, &s, NULL);
    }
    dcem_meter_finish(&m, &cfg, on_interval, &s);
    return 0;
}
