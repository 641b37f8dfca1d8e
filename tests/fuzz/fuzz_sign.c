/* fuzz_sign.c — the signature codec (common/sign.c) on hostile bytes: the
 * "sig" member of every payload a collector or an agent receives, the public
 * keys of ledgers and configs, and private-key PEM files. The first input
 * byte picks the mode (below); the rest is the text or payload.
 *
 * Two fixed test keys, made once from constant 32-byte seeds, make a valid
 * signature reachable: the seeds in corpus/fuzz_sign/ were signed with key 0
 * for TOPIC, so mutations start from payloads that verify. M_SIGN goes the
 * other way: it signs the input itself and checks that exactly the signed
 * bytes, on exactly that topic, verify, with exactly the key that signed. */
#include "fuzz.h"

#include "errors.h"
#include "sign.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ui.h>

#include <stdlib.h>
#include <string.h>

enum { M_PUBKEY, M_LIST, M_PREFIX, M_VERIFY, M_SIGN, M_PEM, M_COUNT };

#define TOPIC "dcem/v1/sh-dc01/gw-a17/data"
#define OTHER_TOPIC "dcem/v1/sh-dc01/gw-a18/data"
#define LIST_MAX 8        /* entries M_LIST builds, beyond DCEM_SIG_MAX_KEYS */
#define FLIPS_MAX 24      /* one-byte changes M_SIGN checks per input */
#define PEM_CAP 1024      /* an Ed25519 PKCS#8 PEM is 119 bytes */

static dcem_signer *signer[2];
static dcem_pubkey pub[2];

static int no_prompt(UI *ui, UI_STRING *what)
{
    (void)ui, (void)what;
    fuzz_fail(__FILE__, __LINE__, "OpenSSL asked the terminal for a passphrase");
}

/* The fixed signers, from constant seeds: key i's seed is 32 bytes of
 * 0x11 * (i + 1) — corpus/fuzz_sign/README says how the seeds used them. */
static void keys_once(void)
{
    if (signer[0]) return;
    /* Nothing here may ask a terminal for a passphrase (a daemon would
     * wait for it): OpenSSL's prompts go through this UI method. */
    UI_METHOD *ui = UI_create_method("fuzz_sign: no prompts");
    FUZZ_CHECK(ui && UI_method_set_writer(ui, no_prompt) == 0 &&
               UI_method_set_reader(ui, no_prompt) == 0);
    UI_set_default_method(ui);
    for (int i = 0; i < 2; i++) {
        unsigned char seed[32];
        memset(seed, 0x11 * (i + 1), sizeof seed);
        EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof seed);
        BIO *b = BIO_new(BIO_s_mem());
        char *pem = NULL;
        FUZZ_CHECK(k && b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1);
        long n = BIO_get_mem_data(b, &pem);
        char err[256];
        FUZZ_CHECK(n > 0 && dcem_signer_from_pem(pem, (size_t)n, &signer[i], err, sizeof err) == 0);
        dcem_signer_public(signer[i], &pub[i]);
        BIO_free(b);
        EVP_PKEY_free(k);
    }
}

/* A result, checked: a known one, with a name. */
static int verify(const dcem_pubkey *keys, size_t n, const char *topic, const char *buf,
                  size_t len, int *idx)
{
    unsigned char sig[DCEM_SIG_BYTES];
    *idx = -1;
    int r = dcem_sig_verify(keys, n, topic, buf, len, idx, sig);
    FUZZ_CHECK(r >= DCEM_SIG_VALID && r < DCEM_SIG_RESULT_COUNT);
    FUZZ_CHECK(strcmp(dcem_sig_result_name(r), "?") != 0);
    FUZZ_CHECK(r == DCEM_SIG_VALID ? *idx >= 0 && (size_t)*idx < n : *idx == -1);
    return r;
}

/* Text that parses formats back to itself, and any 32 bytes format to text
 * that parses back to them. */
static void pubkey(const char *buf, size_t len)
{
    dcem_pubkey k, k2;
    char text[DCEM_PUBKEY_TEXT_MAX], why[256];
    if (dcem_pubkey_parse(buf, len, &k) == 0) {
        dcem_pubkey_format(&k, text);
        FUZZ_CHECK(strlen(text) == len && memcmp(text, buf, len) == 0);
        FUZZ_CHECK(dcem_pubkey_check(text, 1, why, sizeof why) == 0);
    }
    if (len < DCEM_PUBKEY_BYTES) return;
    memcpy(k.raw, buf, DCEM_PUBKEY_BYTES);
    dcem_pubkey_format(&k, text);
    FUZZ_CHECK(strlen(text) == DCEM_PUBKEY_TEXT_MAX - 1);
    FUZZ_CHECK(dcem_pubkey_parse(text, strlen(text), &k2) == 0);
    FUZZ_CHECK(memcmp(k.raw, k2.raw, DCEM_PUBKEY_BYTES) == 0);
}

/* Lines as a config's list of keys (each cut to fit, as the cfg layer's
 * strings are): the check accepts exactly a list of distinct keys. */
static void list(const char *buf, size_t len)
{
    char keys[LIST_MAX][DCEM_PUBKEY_TEXT_MAX];
    size_t n = 0;
    for (size_t at = 0; at <= len && n < LIST_MAX; n++) {
        const char *nl = memchr(buf + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - buf) : len, w = end - at;
        if (w > DCEM_PUBKEY_TEXT_MAX - 1) w = DCEM_PUBKEY_TEXT_MAX - 1;
        memcpy(keys[n], buf + at, w);
        keys[n][w] = 0;
        at = end + 1;
    }
    int want = 0;
    dcem_pubkey k;
    for (size_t i = 0; i < n; i++) {
        if (dcem_pubkey_parse(keys[i], strlen(keys[i]), &k)) want = 1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(keys[i], keys[j])) want = 1;
    }
    char why[256];
    why[0] = 0;
    int r = dcem_pubkey_list_check(keys, n, why, sizeof why);
    FUZZ_CHECK(r == want);
    FUZZ_CHECK(r == 0 || (why[0] && memchr(why, 0, sizeof why)));
    if (r) return;
    dcem_pubkey parsed[LIST_MAX];
    char text[DCEM_PUBKEY_TEXT_MAX];
    dcem_pubkey_list_parse((const char(*)[DCEM_PUBKEY_TEXT_MAX])keys, n, parsed);
    for (size_t i = 0; i < n; i++) {
        dcem_pubkey_format(&parsed[i], text);
        FUZZ_CHECK(!strcmp(text, keys[i]));
    }
}

/* The prefix never reaches past the payload, and is shorter exactly when a
 * "sig" member of the right size ends it. */
static void prefix(const char *buf, size_t len)
{
    size_t p = dcem_sig_prefix_len(buf, len);
    FUZZ_CHECK(p <= len);
    FUZZ_CHECK(p == len || p == len - DCEM_SIG_SUFFIX_LEN);
    int idx, r = verify(pub, 2, TOPIC, buf, len, &idx);
    if (p == len) FUZZ_CHECK(r == DCEM_SIG_MISSING || r == DCEM_SIG_MALFORMED);
    if (r == DCEM_SIG_MISSING) FUZZ_CHECK(p == len);
}

/* Any payload against the fixed keys: valid only where a key signed it,
 * never with no key, never on another topic. */
static void verify_any(const char *buf, size_t len)
{
    int idx, idx2;
    int r = verify(pub, 2, TOPIC, buf, len, &idx);
    int none = verify(pub, 0, TOPIC, buf, len, &idx2);
    FUZZ_CHECK(none != DCEM_SIG_VALID);
    FUZZ_CHECK(r == DCEM_SIG_VALID ? none == DCEM_SIG_INVALID : none == r);
    if (r != DCEM_SIG_VALID) return;
    FUZZ_CHECK(dcem_sig_prefix_len(buf, len) == len - DCEM_SIG_SUFFIX_LEN);
    FUZZ_CHECK(verify(pub, 2, OTHER_TOPIC, buf, len, &idx2) == DCEM_SIG_INVALID);
    /* the other key alone does not verify it */
    FUZZ_CHECK(verify(&pub[1 - idx], 1, TOPIC, buf, len, &idx2) == DCEM_SIG_INVALID);
}

/* "{" input "}" signed with key 0 in a buffer of exactly the size it needs:
 * it verifies with key 0 (index 0, or 1 when listed second), not with key 1
 * alone, not on another topic, and no one-byte change of it verifies. */
static void sign(const char *in, size_t len)
{
    size_t n = len + 2, cap = n + DCEM_SIG_SUFFIX_LEN;
    char *buf = malloc(cap);
    FUZZ_CHECK(buf != NULL);
    buf[0] = '{';
    memcpy(buf + 1, in, len);
    buf[n - 1] = '}';
    size_t got = n;
    int rc = dcem_sign_payload(signer[0], TOPIC, buf, &got, cap - 1);
    /* "{}" has no member to put the "sig" member after */
    FUZZ_CHECK(len ? rc == DCEM_EFULL : rc == DCEM_EINVAL);
    FUZZ_CHECK(got == n);
    rc = len ? dcem_sign_payload(signer[0], TOPIC, buf, &got, cap) : DCEM_EINVAL;
    if (rc == DCEM_ENOMEM || len == 0) {
        free(buf);
        return;
    }
    FUZZ_CHECK(rc == 0 && got == n - 1 + DCEM_SIG_SUFFIX_LEN && buf[got] == 0);
    FUZZ_CHECK(memcmp(buf + 1, in, len) == 0);
    FUZZ_CHECK(dcem_sig_prefix_len(buf, got) == n - 1);

    int idx;
    dcem_pubkey swapped[2] = {pub[1], pub[0]};
    FUZZ_CHECK(verify(pub, 2, TOPIC, buf, got, &idx) == DCEM_SIG_VALID && idx == 0);
    FUZZ_CHECK(verify(swapped, 2, TOPIC, buf, got, &idx) == DCEM_SIG_VALID && idx == 1);
    FUZZ_CHECK(verify(&pub[1], 1, TOPIC, buf, got, &idx) == DCEM_SIG_INVALID);
    FUZZ_CHECK(verify(pub, 2, OTHER_TOPIC, buf, got, &idx) == DCEM_SIG_INVALID);

    /* Each check costs an Ed25519 verification: at most FLIPS_MAX
     * positions, spread over the payload (signature included), and where
     * the spread starts depends on the input, so every byte gets its turn. */
    size_t step = got / FLIPS_MAX + 1, start = len ? (unsigned char)in[0] % step : 0;
    for (size_t i = start; i < got; i += step) {
        char was = buf[i];
        buf[i] = (char)((unsigned char)was ^ (1u << (i % 8)));
        FUZZ_CHECK(verify(pub, 2, TOPIC, buf, got, &idx) != DCEM_SIG_VALID);
        buf[i] = was;
    }
    free(buf);
}

/* A PEM that loads is an Ed25519 key: it writes out as PEM that loads to the
 * same key, and what it signs its own public key verifies. */
static void pem(const char *buf, size_t len)
{
    dcem_signer *s = NULL, *s2 = NULL;
    char err[256], again[PEM_CAP], payload[7 + DCEM_SIG_SUFFIX_LEN] = "{\"v\":1}";
    err[0] = 0;
    int rc = dcem_signer_from_pem(buf, len, &s, err, sizeof err);
    if (rc) {
        FUZZ_CHECK(s == NULL && (rc == DCEM_EINVAL || rc == DCEM_ENOMEM));
        FUZZ_CHECK(rc == DCEM_ENOMEM || (err[0] && memchr(err, 0, sizeof err)));
        return;
    }
    FUZZ_CHECK(s != NULL);
    dcem_pubkey k, k2;
    dcem_signer_public(s, &k);
    size_t n = 0;
    FUZZ_CHECK(dcem_signer_pem(s, again, sizeof again, &n) == 0 && n == strlen(again));
    FUZZ_CHECK(dcem_signer_from_pem(again, n, &s2, err, sizeof err) == 0);
    dcem_signer_public(s2, &k2);
    FUZZ_CHECK(memcmp(k.raw, k2.raw, DCEM_PUBKEY_BYTES) == 0);
    size_t plen = 7;
    int idx;
    if (dcem_sign_payload(s, TOPIC, payload, &plen, sizeof payload) == 0)
        FUZZ_CHECK(verify(&k, 1, TOPIC, payload, plen, &idx) == DCEM_SIG_VALID);
    dcem_signer_free(s2);
    dcem_signer_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    keys_once();
    /* The rest in its own allocation of exactly its size (no NUL after it,
     * as an MQTT payload arrives), so ASan sees any read past it. */
    size_t len = size - 1;
    char *buf = malloc(len ? len : 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data + 1, len);
    switch (data[0] % M_COUNT) {
    case M_PUBKEY: pubkey(buf, len); break;
    case M_LIST: list(buf, len); break;
    case M_PREFIX: prefix(buf, len); break;
    case M_VERIFY: verify_any(buf, len); break;
    case M_SIGN: sign(buf, len); break;
    case M_PEM: pem(buf, len); break;
    }
    free(buf);
    return 0;
}
