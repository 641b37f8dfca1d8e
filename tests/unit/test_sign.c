/* test_sign.c — common/sign: Ed25519 payload signatures. A payload signed
 * for one topic verifies there and nowhere else, with the key that signed it
 * and no other; any change to a signed byte breaks it; keys survive PEM and
 * text round trips; malformed signatures are told from missing ones. */
#include "errors.h"
#include "sign.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define TOPIC "dcem/v1/yz-alpha/gw-alpha-1/data"
#define BATCH                                                                                      \
    "{\"v\":1,\"site\":\"yz-alpha\",\"gateway\":\"gw-alpha-1\",\"epoch\":7,\"seq\":1,"             \
    "\"readings\":[]}"

static dcem_signer *new_signer(void)
{
    dcem_signer *s = NULL;
    assert_int_equal(dcem_signer_generate(&s), 0);
    assert_non_null(s);
    return s;
}

/* BATCH signed for topic into buf; returns its length. */
static size_t signed_batch(const dcem_signer *s, const char *topic, char *buf, size_t cap)
{
    size_t len = strlen(BATCH);
    memcpy(buf, BATCH, len + 1);
    assert_int_equal(dcem_sign_payload(s, topic, buf, &len, cap), 0);
    assert_int_equal(len, strlen(BATCH) - 1 + DCEM_SIG_SUFFIX_LEN);
    assert_int_equal(buf[len], 0);
    return len;
}

static void test_sign_verify(void **state)
{
    (void)state;
    dcem_signer *s = new_signer();
    dcem_pubkey k;
    dcem_signer_public(s, &k);
    char buf[512];
    size_t len = signed_batch(s, TOPIC, buf, sizeof buf);
    /* the unsigned object is the prefix plus its closing brace */
    assert_int_equal(dcem_sig_prefix_len(buf, len), strlen(BATCH) - 1);
    assert_memory_equal(buf, BATCH, strlen(BATCH) - 1);
    assert_string_equal(buf + len - 2, "\"}");

    int idx = -1;
    unsigned char sig[DCEM_SIG_BYTES];
    assert_int_equal(dcem_sig_verify(&k, 1, TOPIC, buf, len, &idx, sig), DCEM_SIG_VALID);
    assert_int_equal(idx, 0);

    /* the second of two keys (rotation) */
    dcem_signer *other = new_signer();
    dcem_pubkey two[2];
    dcem_signer_public(other, &two[0]);
    two[1] = k;
    assert_int_equal(dcem_sig_verify(two, 2, TOPIC, buf, len, &idx, NULL), DCEM_SIG_VALID);
    assert_int_equal(idx, 1);
    /* another key only; no keys at all */
    assert_int_equal(dcem_sig_verify(two, 1, TOPIC, buf, len, NULL, NULL), DCEM_SIG_INVALID);
    assert_int_equal(dcem_sig_verify(NULL, 0, TOPIC, buf, len, NULL, NULL), DCEM_SIG_INVALID);
    /* another topic: another gateway, another kind of message */
    assert_int_equal(
        dcem_sig_verify(&k, 1, "dcem/v1/yz-alpha/gw-alpha-2/data", buf, len, NULL, NULL),
        DCEM_SIG_INVALID);
    assert_int_equal(
        dcem_sig_verify(&k, 1, "dcem/v1/yz-alpha/gw-alpha-1/state", buf, len, NULL, NULL),
        DCEM_SIG_INVALID);
    /* any byte of the signed part, or of the signature, changed */
    for (size_t i = 0; i < len; i++) {
        char copy[512];
        memcpy(copy, buf, len);
        copy[i] ^= 0x01;
        assert_int_not_equal(dcem_sig_verify(&k, 1, TOPIC, copy, len, NULL, NULL), DCEM_SIG_VALID);
    }
    dcem_signer_free(other);
    dcem_signer_free(s);
}

static void test_missing_and_malformed(void **state)
{
    (void)state;
    dcem_signer *s = new_signer();
    dcem_pubkey k;
    dcem_signer_public(s, &k);
    assert_int_equal(dcem_sig_verify(&k, 1, TOPIC, BATCH, strlen(BATCH), NULL, NULL),
                     DCEM_SIG_MISSING);
    assert_int_equal(dcem_sig_verify(&k, 1, TOPIC, "", 0, NULL, NULL), DCEM_SIG_MISSING);
    assert_int_equal(dcem_sig_prefix_len(BATCH, strlen(BATCH)), strlen(BATCH));

    char buf[512];
    size_t len = signed_batch(s, TOPIC, buf, sizeof buf);
    /* cut short, trailing space, non-canonical or non-base64 characters */
    assert_int_equal(dcem_sig_verify(&k, 1, TOPIC, buf, len - 3, NULL, NULL), DCEM_SIG_MALFORMED);
    char copy[512];
    memcpy(copy, buf, len);
    copy[len] = ' ';
    assert_int_equal(dcem_sig_verify(&k, 1, TOPIC, copy, len + 1, NULL, NULL), DCEM_SIG_MALFORMED);
    memcpy(copy, buf, len);
    copy[len - 5] = '!';
    assert_int_equal(dcem_sig_verify(&k, 1, TOPIC, copy, len, NULL, NULL), DCEM_SIG_MALFORMED);
    /* a "sig" that is not the last member */
    static const char early[] = "{\"sig\":\"AAAA\",\"v\":1}";
    assert_int_equal(dcem_sig_verify(&k, 1, TOPIC, early, strlen(early), NULL, NULL),
                     DCEM_SIG_MALFORMED);
    assert_string_equal(dcem_sig_result_name(DCEM_SIG_MISSING), "unsigned");
    assert_string_equal(dcem_sig_result_name(DCEM_SIG_INVALID), "bad_signature");
    dcem_signer_free(s);
}

static void test_sign_refuses(void **state)
{
    (void)state;
    dcem_signer *s = new_signer();
    char buf[512];
    size_t len = strlen(BATCH);
    memcpy(buf, BATCH, len + 1);
    /* no room for the signature: nothing written */
    assert_int_equal(dcem_sign_payload(s, TOPIC, buf, &len, len + 50), DCEM_EFULL);
    assert_int_equal(len, strlen(BATCH));
    assert_string_equal(buf, BATCH);
    /* not an object */
    memcpy(buf, "[1]", 4);
    len = 3;
    assert_int_equal(dcem_sign_payload(s, TOPIC, buf, &len, sizeof buf), DCEM_EINVAL);
    dcem_signer_free(s);
}

static void test_keys_round_trip(void **state)
{
    (void)state;
    dcem_signer *s = new_signer();
    char pem[1024];
    size_t pem_len = 0;
    assert_int_equal(dcem_signer_pem(s, pem, sizeof pem, &pem_len), 0);
    assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
    assert_int_equal(dcem_signer_pem(s, pem, 10, &pem_len), DCEM_EFULL);
    assert_int_equal(dcem_signer_pem(s, pem, sizeof pem, &pem_len), 0);

    dcem_signer *back = NULL;
    char err[256];
    assert_int_equal(dcem_signer_from_pem(pem, pem_len, &back, err, sizeof err), 0);
    dcem_pubkey a, b, c;
    dcem_signer_public(s, &a);
    dcem_signer_public(back, &b);
    assert_memory_equal(a.raw, b.raw, DCEM_PUBKEY_BYTES);

    /* signed by the reloaded key, verified with the original's public key */
    char buf[512];
    size_t len = signed_batch(back, TOPIC, buf, sizeof buf);
    assert_int_equal(dcem_sig_verify(&a, 1, TOPIC, buf, len, NULL, NULL), DCEM_SIG_VALID);

    char text[DCEM_PUBKEY_TEXT_MAX];
    dcem_pubkey_format(&a, text);
    assert_int_equal(strlen(text), DCEM_PUBKEY_TEXT_MAX - 1);
    assert_memory_equal(text, "ed25519:", 8);
    assert_int_equal(dcem_pubkey_parse(text, strlen(text), &c), 0);
    assert_memory_equal(a.raw, c.raw, DCEM_PUBKEY_BYTES);
    assert_int_equal(dcem_pubkey_check(text, 1, err, sizeof err), 0);

    /* wrong prefix, short, bad characters, non-canonical last character */
    char bad[DCEM_PUBKEY_TEXT_MAX];
    memcpy(bad, text, sizeof bad);
    bad[0] = 'E';
    assert_int_equal(dcem_pubkey_parse(bad, strlen(bad), &c), DCEM_EINVAL);
    assert_int_equal(dcem_pubkey_parse(text, strlen(text) - 1, &c), DCEM_EINVAL);
    memcpy(bad, text, sizeof bad);
    bad[20] = '*';
    assert_int_equal(dcem_pubkey_parse(bad, strlen(bad), &c), DCEM_EINVAL);
    memcpy(bad, text, sizeof bad);
    bad[DCEM_PUBKEY_TEXT_MAX - 3] = bad[DCEM_PUBKEY_TEXT_MAX - 3] == 'A' ? 'B' : 'A';
    /* 32 bytes leave 4 spare bits in the last character: only one spelling
     * decodes, so this may or may not stay valid; it must never decode to
     * the same key under another text */
    if (dcem_pubkey_parse(bad, strlen(bad), &c) == 0)
        assert_memory_not_equal(a.raw, c.raw, DCEM_PUBKEY_BYTES);
    assert_int_not_equal(dcem_pubkey_check("ed25519:", 1, err, sizeof err), 0);

    dcem_signer_free(back);
    /* not a PEM key at all */
    dcem_signer *none = NULL;
    assert_int_equal(dcem_signer_from_pem("hello", 5, &none, err, sizeof err), DCEM_EINVAL);
    assert_null(none);
    dcem_signer_free(s);
    dcem_signer_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_missing_and_malformed),
        cmocka_unit_test(test_sign_refuses),
        cmocka_unit_test(test_keys_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
