/* fuzz_wire.c — the wire decoders (common/wire.c) on hostile payloads: what
 * any client of the broker can publish to the collector, and what a rogue
 * collector can send an agent. The first input byte picks the payload kind
 * (below); the rest is the payload. Beyond "no crash, no leak, no UB", a
 * payload that decodes must encode again and decode to the same thing: the
 * decoder never accepts what the encoder would refuse or print otherwise. */
#include "fuzz.h"

#include "errors.h"
#include "wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { K_BATCH, K_BATCH_TOPIC, K_ACK, K_CTL, K_STATE, K_METRICS, K_TOPIC, K_COUNT };

/* Same double, or both NaN (metrics use NaN for "undefined"). */
static int same(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static void batch(const char *buf, size_t len, const char *site, const char *gateway)
{
    /* DCEM_WIRE_MAX_READINGS readings, about 9 MB: once, as the collector does. */
    static dcem_wire_reading *storage, *again;
    if (!storage) {
        storage = calloc(DCEM_WIRE_MAX_READINGS, sizeof *storage);
        again = calloc(DCEM_WIRE_MAX_READINGS, sizeof *again);
        FUZZ_CHECK(storage && again);
    }
    dcem_wire_batch b;
    int reason = -1;
    char err[256];
    int rc = dcem_wire_decode_batch(buf, len, site, gateway, storage, DCEM_WIRE_MAX_READINGS, &b,
                                    &reason, err, sizeof err);
    FUZZ_CHECK(dcem_wire_reason_name(reason) != NULL);
    if (rc) {
        FUZZ_CHECK(rc == DCEM_EINVAL && reason > DCEM_WIRE_OK && b.n_readings == 0);
        return;
    }
    FUZZ_CHECK(reason == DCEM_WIRE_OK && b.identified);
    FUZZ_CHECK(b.n_readings <= DCEM_WIRE_MAX_READINGS);

    char *json = NULL;
    size_t n = 0;
    rc = dcem_wire_encode_batch(&b, &json, &n);
    if (rc == DCEM_ENOMEM) return;
    /* What decoded encodes again, unless it no longer fits: a payload may
     * write numbers shorter than their shortest round-trip form ("1e9"). */
    FUZZ_CHECK(rc == 0 || rc == DCEM_EFULL);
    if (rc) return;
    dcem_wire_batch b2;
    rc = dcem_wire_decode_batch(json, n, site, gateway, again, DCEM_WIRE_MAX_READINGS, &b2,
                                &reason, err, sizeof err);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(!strcmp(b.site, b2.site) && !strcmp(b.gateway, b2.gateway));
    FUZZ_CHECK(b.epoch == b2.epoch && b.seq == b2.seq && b.n_readings == b2.n_readings);
    for (size_t i = 0; i < b.n_readings; i++) {
        const dcem_wire_reading *r = &storage[i], *s = &again[i];
        FUZZ_CHECK(!strcmp(r->meter, s->meter) && r->t_ms == s->t_ms);
        FUZZ_CHECK(r->has_kwh == s->has_kwh && r->has_kw == s->has_kw);
        FUZZ_CHECK(!r->has_kwh || r->kwh == s->kwh);
        FUZZ_CHECK(!r->has_kw || r->kw == s->kw);
        FUZZ_CHECK(r->quality == s->quality && r->ratio_note == s->ratio_note);
        FUZZ_CHECK(r->ct == s->ct && r->pt == s->pt && r->n_values == s->n_values);
        for (size_t k = 0; k < r->n_values; k++)
            FUZZ_CHECK(r->values[k].quantity == s->values[k].quantity &&
                       r->values[k].phase == s->values[k].phase &&
                       r->values[k].value == s->values[k].value);
    }
    free(json);
}

static void ack(const char *buf, size_t len)
{
    dcem_wire_ack a, a2;
    int reason;
    char err[256];
    if (dcem_wire_decode_ack(buf, len, &a, &reason, err, sizeof err)) return;
    char *json = NULL;
    size_t n = 0;
    if (dcem_wire_encode_ack(&a, &json, &n) == DCEM_ENOMEM) return;
    FUZZ_CHECK(json != NULL);
    FUZZ_CHECK(dcem_wire_decode_ack(json, n, &a2, &reason, err, sizeof err) == 0);
    FUZZ_CHECK(a.epoch == a2.epoch && a.seq == a2.seq);
    FUZZ_CHECK(memcmp(a.refused, a2.refused, sizeof a.refused) == 0);
    free(json);
}

static void ctl(const char *buf, size_t len)
{
    dcem_wire_ctl c, c2;
    int reason;
    char err[256];
    if (dcem_wire_decode_ctl(buf, len, &c, &reason, err, sizeof err)) return;
    char *json = NULL;
    size_t n = 0;
    if (dcem_wire_encode_ctl(&c, &json, &n) == DCEM_ENOMEM) return;
    FUZZ_CHECK(json != NULL);
    FUZZ_CHECK(dcem_wire_decode_ctl(json, n, &c2, &reason, err, sizeof err) == 0);
    FUZZ_CHECK(c.cmd == c2.cmd && c.epoch == c2.epoch && c.from_seq == c2.from_seq);
    free(json);
}

static void state(const char *buf, size_t len)
{
    dcem_wire_state s, s2;
    int reason;
    char err[256];
    if (dcem_wire_decode_state(buf, len, &s, &reason, err, sizeof err)) return;
    char *json = NULL;
    size_t n = 0;
    if (dcem_wire_encode_state(&s, &json, &n) == DCEM_ENOMEM) return;
    FUZZ_CHECK(json != NULL);
    FUZZ_CHECK(dcem_wire_decode_state(json, n, &s2, &reason, err, sizeof err) == 0);
    FUZZ_CHECK(s.online == s2.online);
    if (s.online)
        FUZZ_CHECK(s.epoch == s2.epoch && s.next_seq == s2.next_seq && s.queued == s2.queued &&
                   !strcmp(s.version, s2.version));
    free(json);
}

static void metrics(const char *buf, size_t len)
{
    dcem_wire_metrics m, m2;
    int reason;
    char err[256];
    if (dcem_wire_decode_metrics(buf, len, NULL, NULL, &m, &reason, err, sizeof err)) return;
    char *json = NULL;
    size_t n = 0;
    if (dcem_wire_encode_metrics(&m, &json, &n) == DCEM_ENOMEM) return;
    FUZZ_CHECK(json != NULL);
    FUZZ_CHECK(dcem_wire_decode_metrics(json, n, m.site, m.gateway, &m2, &reason, err,
                                        sizeof err) == 0);
    FUZZ_CHECK(m.start_ms == m2.start_ms && m.end_ms == m2.end_ms);
    for (int r = 0; r < DCEM_ROLE_COUNT; r++) FUZZ_CHECK(same(m.role_kwh[r], m2.role_kwh[r]));
    FUZZ_CHECK(same(m.pue, m2.pue) && same(m.green_share, m2.green_share) &&
               same(m.completeness, m2.completeness));
    free(json);
}

static void topic(const char *buf, size_t len)
{
    dcem_wire_topic_parts p;
    if (dcem_wire_topic_parse(buf, len, &p)) return;
    char again[DCEM_WIRE_TOPIC_MAX];
    const char *leaf = dcem_wire_leaf_name(p.leaf);
    FUZZ_CHECK(leaf != NULL);
    FUZZ_CHECK(dcem_wire_topic(again, sizeof again, p.site, *p.gateway ? p.gateway : NULL,
                               leaf) == 0);
    FUZZ_CHECK(strlen(again) == len && !memcmp(again, buf, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    /* The payload in its own allocation of exactly its size (no NUL after
     * it, as an MQTT payload arrives), so ASan sees any read past it. */
    size_t len = size - 1;
    char *buf = malloc(len ? len : 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data + 1, len);
    switch (data[0] % K_COUNT) {
    case K_BATCH: batch(buf, len, NULL, NULL); break;
    /* the collector's case: ids must also match the topic's */
    case K_BATCH_TOPIC: batch(buf, len, "sh-dc01", "gw-a17"); break;
    case K_ACK: ack(buf, len); break;
    case K_CTL: ctl(buf, len); break;
    case K_STATE: state(buf, len); break;
    case K_METRICS: metrics(buf, len); break;
    case K_TOPIC: topic(buf, len); break;
    }
    free(buf);
    return 0;
}
