/* verify.c — `dcem-collector verify` (verify.h). */
#include "verify.h"

#include "engine.h"
#include "errors.h"
#include "sign.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SAID 20        /* problems printed one by one; the rest are counted */
#define MAX_GATEWAYS 1024  /* gateway names among the proofs of one site */

typedef struct batch_key {
    uint32_t gw; /* index into names */
    uint64_t epoch, seq;
} batch_key;

typedef struct verifier {
    const dcem_site *site;
    dcem_store *st;
    FILE *out;
    dcem_verify_result *res;
    dcem_wire_reading *storage;
    char (*names)[DCEM_ID_MAX];
    size_t n_names;
    batch_key *proven;
    size_t n_proven, cap_proven;
    uint64_t said;
    /* the reading being looked up */
    const dcem_wire_reading *want;
    const char *want_gw;
    uint64_t want_epoch, want_seq;
    int found; /* 0 absent, 1 same batch and values, 2 another batch, 3 same batch, other values */
} verifier;

/* A problem about batch (gw, e, s): printed while there are few. */
static void say(verifier *v, const char *what, const char *gw, uint64_t e, uint64_t s,
                const char *problem)
{
    if (v->said++ < MAX_SAID)
        fprintf(v->out, "%s%s%s epoch %llu seq %llu: %s\n", what, *what ? " from " : "", gw,
                (unsigned long long)e, (unsigned long long)s, problem);
}

static int name_index(verifier *v, const char *gw)
{
    for (size_t i = 0; i < v->n_names; i++)
        if (!strcmp(v->names[i], gw)) return (int)i;
    if (v->n_names == MAX_GATEWAYS) return -1;
    snprintf(v->names[v->n_names], DCEM_ID_MAX, "%s", gw);
    return (int)v->n_names++;
}

static int key_cmp(const void *pa, const void *pb)
{
    const batch_key *a = pa, *b = pb;
    if (a->gw != b->gw) return a->gw < b->gw ? -1 : 1;
    if (a->epoch != b->epoch) return a->epoch < b->epoch ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

static int same_value(int has_a, double a, int has_b, double b)
{
    return has_a == has_b && (!has_a || a == b);
}

static int on_stored(void *ctx, const dcem_store_reading *r)
{
    verifier *v = ctx;
    const dcem_wire_reading *w = v->want;
    if (strcmp(r->gateway, v->want_gw) || r->epoch != v->want_epoch || r->seq != v->want_seq) {
        v->found = 2;
        return 0;
    }
    v->found = r->quality == w->quality && same_value(r->has_kwh, r->kwh, w->has_kwh, w->kwh) &&
                       same_value(r->has_kw, r->kw, w->has_kw, w->kw)
                   ? 1
                   : 3;
    return 0;
}

/* One kept proof: its signature, its key, and its readings against the store. */
static int on_proof(void *ctx, const dcem_store_proof *p)
{
    verifier *v = ctx;
    v->res->proofs++;
    char topic[DCEM_WIRE_TOPIC_MAX];
    dcem_pubkey key;
    int bad = dcem_wire_topic(topic, sizeof topic, p->site, p->gateway, "data") ||
              dcem_pubkey_parse(p->key, strlen(p->key), &key) ||
              dcem_sig_verify(&key, 1, topic, p->payload, p->len, NULL, NULL) != DCEM_SIG_VALID;
    dcem_wire_batch b;
    if (!bad)
        bad = dcem_wire_decode_batch(p->payload, p->len, p->site, p->gateway, v->storage,
                                     DCEM_WIRE_MAX_READINGS, &b, NULL, NULL, 0) != 0 ||
              b.epoch != p->epoch || b.seq != p->seq;
    if (bad) {
        v->res->proofs_bad++;
        say(v, "", p->gateway, p->epoch, p->seq, "the kept proof does not verify");
        return 0;
    }
    const dcem_gateway *g = dcem_site_find_gateway(v->site, p->gateway, strlen(p->gateway));
    int listed = 0;
    for (size_t k = 0; g && k < g->n_keys; k++) listed |= !strcmp(g->key_text[k], p->key);
    if (!listed) {
        v->res->proofs_key_gone++;
        say(v, "", p->gateway, p->epoch, p->seq, "signed by a key the ledger no longer lists");
    }
    int differ = 0;
    for (size_t i = 0; i < b.n_readings; i++) {
        dcem_wire_reading *w = &b.readings[i];
        dcem_engine_screen_values(w); /* what the engine stores of it */
        v->want = w, v->want_gw = p->gateway, v->want_epoch = p->epoch, v->want_seq = p->seq;
        v->found = 0;
        int rc = dcem_store_export(v->st, p->site, w->meter, w->t_ms, w->t_ms + 1, on_stored, v);
        if (rc) return rc;
        differ += v->found == 3; /* absent: refused at ingest; another batch: stored first */
    }
    if (differ) {
        v->res->readings_differ += (uint64_t)differ;
        say(v, "", p->gateway, p->epoch, p->seq,
            "the store holds other values than the batch signed");
        return 0;
    }
    int gw = name_index(v, p->gateway);
    if (gw < 0) return DCEM_EFULL;
    if (v->n_proven == v->cap_proven) {
        size_t cap = v->cap_proven ? v->cap_proven * 2 : 1024;
        batch_key *nk = realloc(v->proven, cap * sizeof *nk);
        if (!nk) return DCEM_ENOMEM;
        v->proven = nk, v->cap_proven = cap;
    }
    v->proven[v->n_proven++] = (batch_key){(uint32_t)gw, p->epoch, p->seq};
    return 0;
}

/* One stored reading of the period: of a proven batch? */
static int on_reading(void *ctx, const dcem_store_reading *r)
{
    verifier *v = ctx;
    v->res->readings++;
    batch_key k = {UINT32_MAX, r->epoch, r->seq};
    for (size_t i = 0; i < v->n_names; i++)
        if (!strcmp(v->names[i], r->gateway)) k.gw = (uint32_t)i;
    if (k.gw != UINT32_MAX && bsearch(&k, v->proven, v->n_proven, sizeof k, key_cmp)) {
        v->res->readings_proven++;
        return 0;
    }
    char what[2 * DCEM_ID_MAX + 32];
    snprintf(what, sizeof what, "%s at %lld", r->meter, (long long)r->t_ms);
    say(v, what, r->gateway, r->epoch, r->seq,
        "no proven batch (stored unsigned, or its proof failed)");
    return 0;
}

int dcem_verify_site(const dcem_collector_config *cfg, dcem_store *st, const char *site,
                     int64_t from_ms, int64_t to_ms, FILE *out, dcem_verify_result *res)
{
    memset(res, 0, sizeof *res);
    const dcem_collector_site *cs = dcem_collector_site_find(cfg, site);
    if (!cs) {
        fprintf(out, "verify: no ledger for site %s\n", site);
        return DCEM_EINVAL;
    }
    verifier v = {.site = cs->ledger, .st = st, .out = out, .res = res};
    v.storage = calloc(DCEM_WIRE_MAX_READINGS, sizeof *v.storage);
    v.names = calloc(MAX_GATEWAYS, sizeof *v.names);
    int rc = v.storage && v.names ? 0 : DCEM_ENOMEM;
    if (!rc) rc = dcem_store_proofs(st, site, on_proof, &v);
    if (!rc) {
        qsort(v.proven, v.n_proven, sizeof *v.proven, key_cmp);
        rc = dcem_store_export(st, site, NULL, from_ms, to_ms, on_reading, &v);
    }
    if (rc) fprintf(out, "verify: %s\n", rc == DCEM_ENOMEM ? "out of memory" : dcem_store_error(st));
    else {
        if (v.said > MAX_SAID)
            fprintf(out, "... and %llu more\n", (unsigned long long)(v.said - MAX_SAID));
        fprintf(out,
                "%s: %llu proofs (%llu do not verify, %llu signed by a key no longer in the "
                "ledger, %llu readings differ from what was signed); %llu of %llu readings "
                "proven\n",
                site, (unsigned long long)res->proofs, (unsigned long long)res->proofs_bad,
                (unsigned long long)res->proofs_key_gone, (unsigned long long)res->readings_differ,
                (unsigned long long)res->readings_proven, (unsigned long long)res->readings);
    }
    free(v.storage);
    free(v.names);
    free(v.proven);
    if (rc) return rc;
    return res->proofs_bad || res->readings_differ || res->readings_proven < res->readings;
}
