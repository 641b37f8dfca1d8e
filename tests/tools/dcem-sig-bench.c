/* dcem-sig-bench — what one signature costs (scripts/bench/collector.sh and
 * agent.sh print it next to their process figures): CPU µs per
 * dcem_sign_payload and per dcem_sig_verify of a wire batch of N readings,
 * encoded by the wire codec as the agent and dcem-blast encode theirs.
 *
 *   dcem-sig-bench [--readings N]... [--min-ms MS]
 *
 * For each N (default 1, 64 and 250; at most DCEM_WIRE_SAFE_READINGS) one
 * line of key=value figures:
 *   bytes         the signed payload's size;
 *   sign_us       dcem_sign_payload (SHA-256 of the prefix, one Ed25519 sign);
 *   verify_us     dcem_sig_verify against the one key that signed it;
 *   verify2_us    against two keys, the second the signer's (a key being
 *                 rotated: the first one tried fails);
 *   sha256_us     the SHA-256 of the same bytes alone, the part that grows
 *                 with the payload;
 *   verify_cached_us  the same check with the public key's EVP_PKEY built
 *                 once, not per call as common/sign.c does: what building
 *                 it once per ledger key would give. Re-implements the
 *                 documented format (docs/wire-format.md "Signatures") and
 *                 checks that it accepts what dcem_sig_verify accepts.
 * Times are this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), each the mean
 * over as many calls as fill --min-ms (default 300) of CPU, so other load on
 * the machine does not inflate them. Exit 0, or 1 when a signature made here
 * does not verify. */
#include "errors.h"
#include "sign.h"
#include "wire.h"

#include <getopt.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SIZES 8
#define DOMAIN_TAG "dcem-sig-v1\n"

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef struct job {
    const dcem_signer *signer;
    const dcem_pubkey *keys;
    size_t n_keys;
    const char *topic;
    char *buf;            /* the unsigned payload; room for the signature */
    size_t len, cap;
    const char *signed_payload;
    size_t signed_len;
    EVP_PKEY *cached;     /* the signer's public key, built once */
    EVP_MD_CTX *md_ctx;
    int failed;
} job;

static void op_sign(job *j)
{
    size_t n = j->len;
    if (dcem_sign_payload(j->signer, j->topic, j->buf, &n, j->cap)) j->failed = 1;
    j->buf[j->len - 1] = '}'; /* unsigned again, as the agent leaves its spool copy */
}

static void op_verify(job *j)
{
    if (dcem_sig_verify(j->keys, j->n_keys, j->topic, j->signed_payload, j->signed_len, NULL,
                        NULL) != DCEM_SIG_VALID)
        j->failed = 1;
}

static int digest(const char *topic, const void *p, size_t len, unsigned char md[32])
{
    unsigned int n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(c, DOMAIN_TAG, sizeof DOMAIN_TAG - 1) == 1 &&
             EVP_DigestUpdate(c, topic, strlen(topic)) == 1 && EVP_DigestUpdate(c, "\n", 1) == 1 &&
             EVP_DigestUpdate(c, p, len) == 1 && EVP_DigestFinal_ex(c, md, &n) == 1 && n == 32;
    EVP_MD_CTX_free(c);
    return ok ? 0 : -1;
}

static void op_sha256(job *j)
{
    unsigned char md[32];
    if (digest(j->topic, j->signed_payload, dcem_sig_prefix_len(j->signed_payload, j->signed_len),
               md))
        j->failed = 1;
}

/* dcem_sig_verify's work with the key's EVP_PKEY made once: the signature
 * decoded from its base64, the digest, one EVP_DigestVerify. */
static void op_verify_cached(job *j)
{
    size_t prefix = dcem_sig_prefix_len(j->signed_payload, j->signed_len);
    unsigned char md[32], raw[66]; /* 88 base64 characters decode to 66 bytes, 2 of padding */
    if (prefix == j->signed_len ||
        EVP_DecodeBlock(raw, (const unsigned char *)j->signed_payload + prefix + 8,
                        DCEM_SIG_B64_LEN) != 66 ||
        digest(j->topic, j->signed_payload, prefix, md) ||
        EVP_DigestVerifyInit(j->md_ctx, NULL, NULL, NULL, j->cached) != 1 ||
        EVP_DigestVerify(j->md_ctx, raw, DCEM_SIG_BYTES, md, sizeof md) != 1)
        j->failed = 1;
    EVP_MD_CTX_reset(j->md_ctx);
}

/* Mean CPU µs of op over at least min_ms of CPU (and 20 calls). */
static double measure(void (*op)(job *), job *j, double min_ms)
{
    op(j); /* warm */
    long calls = 0;
    double t0 = cpu_ns(), t = t0;
    while (calls < 20 || t - t0 < min_ms * 1e6) {
        for (int k = 0; k < 10; k++) op(j);
        calls += 10;
        t = cpu_ns();
    }
    return (t - t0) / (double)calls / 1e3;
}

/* A batch of n kWh + kW readings from 25 meters, 15 minutes apart, like
 * dcem-blast's; *json the caller's to free, with room for the signature. */
static int make_batch(size_t n, char **json, size_t *len, size_t *cap)
{
    dcem_wire_reading *rs = calloc(n, sizeof *rs);
    if (!rs) return DCEM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        snprintf(rs[i].meter, sizeof rs[i].meter, "m%03zu", (i % 25) * 8);
        rs[i].t_ms = 1735660800000 + (int64_t)(i / 25) * 900000;
        rs[i].quality = DCEM_WIRE_Q_OK;
        rs[i].has_kwh = rs[i].has_kw = 1;
        rs[i].kwh = 123456.789 + 37.25 * (double)i;
        rs[i].kw = 148.3 + (double)(i % 7);
    }
    dcem_wire_batch b = {.epoch = 1732650000, .seq = 123456, .readings = rs, .n_readings = n};
    snprintf(b.site, sizeof b.site, "bench");
    snprintf(b.gateway, sizeof b.gateway, "gw-blast-01");
    char *p = NULL;
    int rc = dcem_wire_encode_batch(&b, &p, len);
    free(rs);
    if (rc) return rc;
    *cap = *len + DCEM_SIG_SUFFIX_LEN + 1;
    char *q = realloc(p, *cap);
    if (!q) return free(p), DCEM_ENOMEM;
    *json = q;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"readings", required_argument, 0, 'n'},
                                         {"min-ms", required_argument, 0, 'm'},
                                         {0, 0, 0, 0}};
    long sizes[MAX_SIZES] = {1, 64, 250};
    size_t n_sizes = 0;
    double min_ms = 300;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        if (o == 'n' && n_sizes < MAX_SIZES) {
            sizes[n_sizes++] = strtol(optarg, &end, 10);
            if (*end || sizes[n_sizes - 1] < 1 || sizes[n_sizes - 1] > DCEM_WIRE_SAFE_READINGS)
                return fprintf(stderr, "dcem-sig-bench: --readings 1..%d\n",
                               DCEM_WIRE_SAFE_READINGS), 2;
        } else if (o == 'm') {
            min_ms = strtod(optarg, &end);
            if (*end || min_ms < 1 || min_ms > 60000)
                return fputs("dcem-sig-bench: --min-ms 1..60000\n", stderr), 2;
        } else {
            fputs("usage: dcem-sig-bench [--readings N]... [--min-ms MS]\n", stderr);
            return 2;
        }
    }
    if (!n_sizes) n_sizes = 3;

    dcem_signer *signer = NULL, *other = NULL;
    if (dcem_signer_generate(&signer) || dcem_signer_generate(&other))
        return fputs("dcem-sig-bench: cannot make keys\n", stderr), 1;
    dcem_pubkey keys[2];
    dcem_signer_public(other, &keys[0]); /* tried first, fails: a key being rotated */
    dcem_signer_public(signer, &keys[1]);
    EVP_PKEY *cached =
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, keys[1].raw, DCEM_PUBKEY_BYTES);
    EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
    if (!cached || !md_ctx) return fputs("dcem-sig-bench: out of memory\n", stderr), 1;

    int failed = 0;
    for (size_t s = 0; s < n_sizes; s++) {
        char *buf = NULL, *sig_buf = NULL;
        size_t len = 0, cap = 0;
        if (make_batch((size_t)sizes[s], &buf, &len, &cap) || !(sig_buf = malloc(cap))) {
            fprintf(stderr, "dcem-sig-bench: cannot encode a batch of %ld\n", sizes[s]);
            return 1;
        }
        const char *topic = "dcem/v1/bench/gw-blast-01/data";
        memcpy(sig_buf, buf, len);
        size_t sig_len = len;
        if (dcem_sign_payload(signer, topic, sig_buf, &sig_len, cap)) return 1;
        job j = {signer, &keys[1], 1, topic, buf, len, cap, sig_buf, sig_len, cached, md_ctx, 0};
        double sign_us = measure(op_sign, &j, min_ms);
        double verify_us = measure(op_verify, &j, min_ms);
        j.keys = keys, j.n_keys = 2;
        double verify2_us = measure(op_verify, &j, min_ms);
        double sha_us = measure(op_sha256, &j, min_ms);
        double cached_us = measure(op_verify_cached, &j, min_ms);
        printf("readings=%ld bytes=%zu sign_us=%.1f verify_us=%.1f verify2_us=%.1f "
               "sha256_us=%.1f verify_cached_us=%.1f%s\n",
               sizes[s], sig_len, sign_us, verify_us, verify2_us, sha_us, cached_us,
               j.failed ? " FAILED" : "");
        failed |= j.failed;
        free(buf);
        free(sig_buf);
    }
    EVP_MD_CTX_free(md_ctx);
    EVP_PKEY_free(cached);
    dcem_signer_free(signer);
    dcem_signer_free(other);
    return failed ? 1 : 0;
}
