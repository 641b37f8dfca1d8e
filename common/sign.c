/* sign.c — Ed25519 payload signatures. The message signed is a SHA-256
 * digest (domain tag, topic, payload prefix), so a payload of any size is
 * hashed as it lies, without a copy. libsodium signs and verifies: its
 * Ed25519 verifies in half the time of OpenSSL 3.0's (docs/benchmarks.md,
 * "Signatures"), which is what keeps a collector's checks cheap; OpenSSL
 * reads and writes the PEM keys and hashes (SHA-256 with the CPU's
 * instructions). Both follow RFC 8032: a signature of one verifies with the
 * other, as tests/integration/security.sh checks against the openssl CLI. */
#include "sign.h"

#include "errors.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIG_HEAD ",\"sig\":\"" /* 8 bytes before the base64 */
#define SIG_HEAD_LEN 8
#define KEY_PREFIX "ed25519:"
#define KEY_PREFIX_LEN 8
#define KEY_B64_LEN 44
#define DOMAIN_TAG "dcem-sig-v1\n"

struct dcem_signer {
    EVP_PKEY *pkey;                             /* for dcem_signer_pem */
    unsigned char sk[crypto_sign_SECRETKEYBYTES]; /* libsodium's: the seed, then the public key */
    dcem_pubkey pub;
};

/* Strict base64 (with padding) of exactly want bytes: the text must be the
 * canonical encoding, so one value has one spelling. */
static int b64_decode(const char *text, size_t len, unsigned char *out, size_t want)
{
    unsigned char buf[96];
    char again[130];
    if (len != 4 * ((want + 2) / 3) || len > 128) return DCEM_EINVAL;
    int n = EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len);
    if (n < 0 || (size_t)n < want) return DCEM_EINVAL;
    EVP_EncodeBlock((unsigned char *)again, buf, (int)want);
    if (memcmp(again, text, len) != 0) return DCEM_EINVAL;
    memcpy(out, buf, want);
    return 0;
}

int dcem_pubkey_parse(const char *text, size_t len, dcem_pubkey *out)
{
    if (len != KEY_PREFIX_LEN + KEY_B64_LEN || memcmp(text, KEY_PREFIX, KEY_PREFIX_LEN) != 0)
        return DCEM_EINVAL;
    return b64_decode(text + KEY_PREFIX_LEN, KEY_B64_LEN, out->raw, DCEM_PUBKEY_BYTES);
}

void dcem_pubkey_format(const dcem_pubkey *k, char out[DCEM_PUBKEY_TEXT_MAX])
{
    memcpy(out, KEY_PREFIX, KEY_PREFIX_LEN);
    EVP_EncodeBlock((unsigned char *)out + KEY_PREFIX_LEN, k->raw, DCEM_PUBKEY_BYTES);
}

int dcem_pubkey_check(const void *value, size_t count, char *why, size_t whylen)
{
    (void)count;
    const char *s = value;
    dcem_pubkey k;
    if (dcem_pubkey_parse(s, strlen(s), &k) == 0) return 0;
    snprintf(why, whylen,
             "not an Ed25519 public key: write \"ed25519:\" and the 44 base64 "
             "characters of its 32 bytes (dcem-agent --keygen prints it)");
    return 1;
}

int dcem_pubkey_list_check(const void *value, size_t count, char *why, size_t whylen)
{
    const char(*keys)[DCEM_PUBKEY_TEXT_MAX] = value;
    for (size_t i = 0; i < count; i++) {
        if (dcem_pubkey_check(keys[i], 1, why, whylen)) return 1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(keys[i], keys[j])) {
                snprintf(why, whylen, "key %zu is key %zu again", i + 1, j + 1);
                return 1;
            }
    }
    return 0;
}

void dcem_pubkey_list_parse(const char (*text)[DCEM_PUBKEY_TEXT_MAX], size_t count,
                            dcem_pubkey *keys)
{
    for (size_t i = 0; i < count; i++) dcem_pubkey_parse(text[i], strlen(text[i]), &keys[i]);
}

static int signer_wrap(EVP_PKEY *pkey, dcem_signer **out)
{
    dcem_signer *s = calloc(1, sizeof *s);
    unsigned char seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES];
    size_t n = DCEM_PUBKEY_BYTES, m = sizeof seed;
    if (!s || sodium_init() < 0) {
        EVP_PKEY_free(pkey);
        free(s);
        return DCEM_ENOMEM;
    }
    /* the same key for libsodium: its seed is the RFC 8032 private key */
    int ok = EVP_PKEY_get_raw_public_key(pkey, s->pub.raw, &n) == 1 && n == DCEM_PUBKEY_BYTES &&
             EVP_PKEY_get_raw_private_key(pkey, seed, &m) == 1 && m == sizeof seed &&
             crypto_sign_seed_keypair(pk, s->sk, seed) == 0 &&
             memcmp(pk, s->pub.raw, sizeof pk) == 0;
    sodium_memzero(seed, sizeof seed);
    if (!ok) {
        EVP_PKEY_free(pkey);
        sodium_memzero(s->sk, sizeof s->sk);
        free(s);
        return DCEM_EINVAL;
    }
    s->pkey = pkey;
    *out = s;
    return 0;
}

/* A pem_password_cb that gives no passphrase, noting it was asked. */
static int no_passphrase(char *buf, int size, int rwflag, void *asked)
{
    (void)buf, (void)size, (void)rwflag;
    *(int *)asked = 1;
    return -1;
}

int dcem_signer_from_pem(const char *pem, size_t len, dcem_signer **out, char *err, size_t errlen)
{
    *out = NULL;
    if (len > 1 << 16) {
        snprintf(err, errlen, "not a PEM private key (%zu bytes)", len);
        return DCEM_EINVAL;
    }
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    if (!b) return DCEM_ENOMEM;
    /* No callback would be OpenSSL's default one, which asks the terminal
     * for the passphrase of an encrypted key and waits (fuzz_sign found it:
     * corpus/fuzz_sign/regress-pem-encrypted); a daemon's key is read
     * unencrypted, so the passphrase is refused instead. */
    int asked = 0;
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, &asked);
    BIO_free(b);
    if (!pkey) {
        snprintf(err, errlen,
                 asked ? "an encrypted private key: dcem reads keys unencrypted (mode 0600)"
                       : "not a PEM private key (an unencrypted PKCS#8 \"PRIVATE KEY\")");
        return DCEM_EINVAL;
    }
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
        snprintf(err, errlen, "a %s key, not Ed25519", OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)));
        EVP_PKEY_free(pkey);
        return DCEM_EINVAL;
    }
    int rc = signer_wrap(pkey, out);
    if (rc == DCEM_EINVAL) snprintf(err, errlen, "the key's public half cannot be derived");
    return rc;
}

int dcem_signer_generate(dcem_signer **out)
{
    *out = NULL;
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!pkey) return DCEM_EINVAL;
    return signer_wrap(pkey, out);
}

int dcem_signer_pem(const dcem_signer *s, char *buf, size_t cap, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    int rc = DCEM_EFULL;
    if (!b) return DCEM_ENOMEM;
    if (PEM_write_bio_PrivateKey(b, s->pkey, NULL, NULL, 0, NULL, NULL) == 1) {
        long n = BIO_get_mem_data(b, &data);
        if (n > 0 && (size_t)n < cap) {
            memcpy(buf, data, (size_t)n);
            buf[n] = 0;
            *len = (size_t)n;
            rc = 0;
        }
    }
    BIO_free(b);
    return rc;
}

void dcem_signer_public(const dcem_signer *s, dcem_pubkey *out)
{
    *out = s->pub;
}

void dcem_signer_free(dcem_signer *s)
{
    if (!s) return;
    EVP_PKEY_free(s->pkey);
    sodium_memzero(s->sk, sizeof s->sk);
    free(s);
}

/* SHA-256 of the domain tag, the topic and the payload's prefix. */
static int digest(const char *topic, const void *prefix, size_t len, unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, DOMAIN_TAG, sizeof DOMAIN_TAG - 1) == 1 &&
             EVP_DigestUpdate(ctx, topic, strlen(topic)) == 1 &&
             EVP_DigestUpdate(ctx, "\n", 1) == 1 && EVP_DigestUpdate(ctx, prefix, len) == 1 &&
             EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == 32;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : DCEM_ENOMEM;
}

int dcem_sign_payload(const dcem_signer *s, const char *topic, char *buf, size_t *len, size_t cap)
{
    size_t n = *len;
    unsigned char md[32], sig[DCEM_SIG_BYTES];
    /* At least one member: "{}" would become {,"sig":...}, which is not
     * JSON and too short for dcem_sig_verify to find its "sig" (fuzz_sign
     * found it: corpus/fuzz_sign/regress-sign-empty-object). */
    if (n < 3 || buf[0] != '{' || buf[n - 1] != '}') return DCEM_EINVAL;
    if (cap < n - 1 + DCEM_SIG_SUFFIX_LEN + 1) return DCEM_EFULL;
    if (digest(topic, buf, n - 1, md)) return DCEM_ENOMEM;
    if (crypto_sign_detached(sig, NULL, md, sizeof md, s->sk) != 0) return DCEM_ENOMEM;
    char *p = buf + n - 1;
    memcpy(p, SIG_HEAD, SIG_HEAD_LEN);
    EVP_EncodeBlock((unsigned char *)p + SIG_HEAD_LEN, sig, sizeof sig);
    memcpy(p + SIG_HEAD_LEN + DCEM_SIG_B64_LEN, "\"}", 3);
    *len = n - 1 + DCEM_SIG_SUFFIX_LEN;
    return 0;
}

static const char *const result_names[DCEM_SIG_RESULT_COUNT] = {
    "valid",
    "unsigned",
    "malformed_signature",
    "bad_signature",
};

const char *dcem_sig_result_name(int result)
{
    if (result < 0 || result >= DCEM_SIG_RESULT_COUNT) return "?";
    return result_names[result];
}

/* 1 when p[0..len) ends in a "sig" member of the right length. */
static int has_sig_member(const char *p, size_t len)
{
    return len >= DCEM_SIG_SUFFIX_LEN + 2 && p[0] == '{' &&
           memcmp(p + len - DCEM_SIG_SUFFIX_LEN, SIG_HEAD, SIG_HEAD_LEN) == 0 &&
           memcmp(p + len - 2, "\"}", 2) == 0;
}

size_t dcem_sig_prefix_len(const void *payload, size_t len)
{
    return has_sig_member(payload, len) ? len - DCEM_SIG_SUFFIX_LEN : len;
}

int dcem_sig_verify(const dcem_pubkey *keys, size_t n, const char *topic, const void *payload,
                    size_t len, int *key_index, unsigned char sig[DCEM_SIG_BYTES])
{
    const char *p = payload;
    unsigned char s[DCEM_SIG_BYTES], md[32];
    if (!has_sig_member(p, len)) {
        /* A "sig" member elsewhere, or of another length, is a signature
         * that cannot be checked, not an unsigned payload. */
        static const char key[] = "\"sig\"";
        for (size_t i = 0; i + sizeof key - 1 <= len; i++)
            if (memcmp(p + i, key, sizeof key - 1) == 0) return DCEM_SIG_MALFORMED;
        return DCEM_SIG_MISSING;
    }
    size_t prefix = len - DCEM_SIG_SUFFIX_LEN;
    if (b64_decode(p + prefix + SIG_HEAD_LEN, DCEM_SIG_B64_LEN, s, sizeof s))
        return DCEM_SIG_MALFORMED;
    if (n == 0 || sodium_init() < 0 || digest(topic, p, prefix, md)) return DCEM_SIG_INVALID;
    int found = -1;
    for (size_t i = 0; i < n && found < 0; i++)
        if (crypto_sign_verify_detached(s, md, sizeof md, keys[i].raw) == 0) found = (int)i;
    if (found < 0) return DCEM_SIG_INVALID;
    if (key_index) *key_index = found;
    if (sig) memcpy(sig, s, sizeof s);
    return DCEM_SIG_VALID;
}
