/* sign.h — who sent a message: Ed25519 signatures over dcem's MQTT payloads
 * (libsodium signs and verifies; OpenSSL reads PEM keys and hashes). Gateways sign their batches and births, collectors
 * their acks and resend requests; whoever can publish on a topic still
 * cannot speak for a gateway or a collector without its private key.
 * Pure: keys and payloads come in as bytes; nothing is read or logged here.
 *
 * A signed payload is a JSON object whose LAST member is "sig":
 *
 *     {"v":1,...,"sig":"<base64 of 64 bytes>"}
 *
 * The signature is Ed25519 over SHA-256("dcem-sig-v1\n" topic "\n" prefix),
 * where prefix is the payload up to (not including) the ,"sig": member. The
 * topic is signed too, so a message signed for one gateway or one topic
 * (an ack, a birth) is worthless on another. docs/wire-format.md
 * "Signatures" is the contract. */
#ifndef DCEM_SIGN_H
#define DCEM_SIGN_H

#include <stddef.h>

#define DCEM_SIG_MAX_KEYS 4       /* keys one identity may hold at once (rotation) */
#define DCEM_SIG_BYTES 64         /* an Ed25519 signature */
#define DCEM_SIG_B64_LEN 88       /* its base64, with padding */
#define DCEM_SIG_SUFFIX_LEN 98    /* ,"sig":"<88>"} */
#define DCEM_PUBKEY_BYTES 32
#define DCEM_PUBKEY_TEXT_MAX 53   /* "ed25519:" + 44 base64 + NUL */

/* A public key: the 32 raw bytes of an Ed25519 key. In text (ledgers,
 * configs) it is "ed25519:" followed by their base64 — what
 * `openssl pkey -pubout -outform DER | tail -c 32 | base64` prints after
 * the prefix. */
typedef struct dcem_pubkey {
    unsigned char raw[DCEM_PUBKEY_BYTES];
} dcem_pubkey;

/* Parses "ed25519:<base64>" (exactly; no spaces). 0 or DCEM_EINVAL. */
int dcem_pubkey_parse(const char *text, size_t len, dcem_pubkey *out);

/* Writes k's text form, NUL-terminated, into out. */
void dcem_pubkey_format(const dcem_pubkey *k, char out[DCEM_PUBKEY_TEXT_MAX]);

/* A dcem_cfg_field check: a NUL-terminated string that dcem_pubkey_parse
 * accepts (see cfg.h). */
int dcem_pubkey_check(const void *value, size_t count, char *why, size_t whylen);

/* The same for a DCEM_CFG_LIST of such strings, each a
 * char[DCEM_PUBKEY_TEXT_MAX]: every one a key, none twice. */
int dcem_pubkey_list_check(const void *value, size_t count, char *why, size_t whylen);

/* Parses count such strings (already checked) into keys. */
void dcem_pubkey_list_parse(const char (*text)[DCEM_PUBKEY_TEXT_MAX], size_t count,
                            dcem_pubkey *keys);

/* A private key, held by the signer. Opaque. */
typedef struct dcem_signer dcem_signer;

/* A signer from a PEM private key (PKCS#8, as `openssl genpkey -algorithm
 * ed25519` and dcem_signer_pem write). 0, DCEM_EINVAL (not an Ed25519
 * private key, or an encrypted one: why in err; no passphrase is ever asked
 * for) or DCEM_ENOMEM. *out is the caller's to free. */
int dcem_signer_from_pem(const char *pem, size_t len, dcem_signer **out, char *err,
                         size_t errlen);

/* A new random key. 0 or DCEM_ENOMEM (or DCEM_EINVAL when the system's
 * random source fails). */
int dcem_signer_generate(dcem_signer **out);

/* The private key as PEM (PKCS#8) into buf (cap bytes, NUL-terminated);
 * *len its length. 0 or DCEM_EFULL. Keep it secret: mode 0600. */
int dcem_signer_pem(const dcem_signer *s, char *buf, size_t cap, size_t *len);

/* The signer's public key. */
void dcem_signer_public(const dcem_signer *s, dcem_pubkey *out);

void dcem_signer_free(dcem_signer *s);

/* Signs, in place, the JSON object in buf[0..*len) (it must end in '}')
 * for publication on topic: the closing '}' becomes ,"sig":"..."} and *len
 * grows by DCEM_SIG_SUFFIX_LEN - 1. cap is buf's size. 0, DCEM_EFULL (no
 * room), DCEM_EINVAL (not an object, or "{}": an object with no member) or
 * DCEM_ENOMEM. Thread-safe: a signer may be shared by threads. */
int dcem_sign_payload(const dcem_signer *s, const char *topic, char *buf, size_t *len,
                      size_t cap);

typedef enum dcem_sig_result {
    DCEM_SIG_VALID = 0,   /* one of the keys signed it */
    DCEM_SIG_MISSING,     /* the payload carries no "sig" member at its end */
    DCEM_SIG_MALFORMED,   /* a "sig" member that is not 64 bytes of base64 */
    DCEM_SIG_INVALID,     /* no key given verifies it (forged, altered, another topic, no keys) */
    DCEM_SIG_RESULT_COUNT
} dcem_sig_result;

/* Stable lower-case name of a result ("valid", "unsigned", "malformed",
 * "bad_signature"): the refusal reasons of logs and /metrics. */
const char *dcem_sig_result_name(int result);

/* Checks payload[0..len) received on topic against keys[0..n) (n may be 0:
 * every signed payload is then DCEM_SIG_INVALID). On DCEM_SIG_VALID,
 * *key_index (may be NULL) is the key that verified and sig (may be NULL)
 * receives the 64 signature bytes, kept as the proof of who sent it.
 * Never reads past len; a payload need not be NUL-terminated. */
int dcem_sig_verify(const dcem_pubkey *keys, size_t n, const char *topic, const void *payload,
                    size_t len, int *key_index, unsigned char sig[DCEM_SIG_BYTES]);

/* The unsigned part of a signed payload: its length without the "sig"
 * member (the prefix; the object is that plus "}"), or len when it has no
 * well-formed "sig" member. For tools that show or re-verify. */
size_t dcem_sig_prefix_len(const void *payload, size_t len);

#endif
