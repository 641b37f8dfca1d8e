/* verify.h — `dcem-collector verify`: proves, from the store alone, which
 * gateway sent each stored reading of a site. Every kept proof (a signed
 * batch exactly as received, docs/security.md) is checked again: its
 * signature with the key recorded beside it, that key against the site's
 * ledger today, and each of its readings against the reading the store
 * holds. Then every reading of the period is matched with a proven batch. */
#ifndef DCEM_VERIFY_H
#define DCEM_VERIFY_H

#include "collector_config.h"
#include "store.h"

#include <stdint.h>
#include <stdio.h>

typedef struct dcem_verify_result {
    uint64_t proofs, proofs_bad;        /* signature does not verify, or payload not a batch */
    uint64_t proofs_key_gone;           /* signed by a key the ledger no longer lists */
    uint64_t readings, readings_proven; /* stored in [from, to), and of a proven batch */
    uint64_t readings_differ;           /* a proven batch says otherwise than the store */
} dcem_verify_result;

/* Checks site's proofs and its readings in [from_ms, to_ms), says what it
 * finds on out (a line per problem, at most 20, then a summary). Returns 0
 * when every reading is proven and every proof holds, 1 when not, or a
 * negative dcem_err when the store fails (detail on out). */
int dcem_verify_site(const dcem_collector_config *cfg, dcem_store *st, const char *site,
                     int64_t from_ms, int64_t to_ms, FILE *out, dcem_verify_result *res);

#endif
