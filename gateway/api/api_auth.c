#include "api_auth.h"
#include "errors.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

static int b64token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

int dcem_api_token_check(const char *s, size_t len, char *why, size_t whylen)
{
    if (len < DCEM_API_TOKEN_MIN || len >= DCEM_API_TOKEN_MAX) {
        snprintf(why, whylen, "a token must be %d to %d characters, this one has %zu",
                 DCEM_API_TOKEN_MIN, DCEM_API_TOKEN_MAX - 1, len);
        return DCEM_EINVAL;
    }
    for (size_t i = 0; i < len; i++)
        if (!b64token_char((unsigned char)s[i])) {
            /* the offending character is not echoed: it is part of a secret */
            snprintf(why, whylen,
                     "character %zu is not one of A-Z a-z 0-9 - . _ ~ + / = (RFC 6750)", i + 1);
            return DCEM_EINVAL;
        }
    return 0;
}

int dcem_api_bearer(const char *header, const char **tok, size_t *len)
{
    static const char scheme[] = "bearer";
    if (!header) return DCEM_EINVAL;
    for (size_t i = 0; i < sizeof scheme - 1; i++) {
        char c = header[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != scheme[i]) return DCEM_EINVAL;
    }
    const char *p = header + sizeof scheme - 1;
    if (*p != ' ') return DCEM_EINVAL;
    while (*p == ' ')
        p++;
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (!n) return DCEM_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (p[i] == ' ' || p[i] == '\t') return DCEM_EINVAL;
    *tok = p;
    *len = n;
    return 0;
}

int dcem_api_token_find(const dcem_api_token *tokens, size_t n, const char *presented, size_t len)
{
    /* presented, NUL-padded to the slot size like the configured tokens:
     * equal buffers mean equal tokens, lengths included. Configured tokens
     * hold no NUL (dcem_api_token_check), so a presented NUL or a presented
     * token too long for a slot can match nothing. */
    unsigned char buf[DCEM_API_TOKEN_MAX];
    unsigned bad = len >= DCEM_API_TOKEN_MAX;
    for (size_t i = 0; i < DCEM_API_TOKEN_MAX; i++) {
        unsigned char c = i < len ? (unsigned char)presented[i] : 0;
        bad |= (unsigned)(i < len && c == 0);
        buf[i] = c;
    }
    unsigned found = UINT_MAX;
    for (size_t k = 0; k < n; k++) {
        const unsigned char *t = (const unsigned char *)tokens[k].token;
        unsigned diff = bad;
        for (size_t i = 0; i < DCEM_API_TOKEN_MAX; i++)
            diff |= (unsigned)(t[i] ^ buf[i]);
        /* an unset slot (empty token) never matches */
        diff |= (unsigned)(t[0] == 0);
        unsigned eq = ((diff | (0u - diff)) >> (sizeof diff * CHAR_BIT - 1)) ^ 1u; /* diff == 0 */
        unsigned mask = 0u - eq;
        found = (found & ~mask) | ((unsigned)k & mask);
    }
    return found == UINT_MAX ? -1 : (int)found;
}

int dcem_api_may_read_site(int role, const dcem_api_token *t, const char *site)
{
    if (role == DCEM_API_ROLE_REGULATOR) return 1;
    if (role != DCEM_API_ROLE_OPERATOR || !t) return 0;
    for (size_t i = 0; i < t->n_sites; i++)
        if (!strcmp(t->sites[i], site)) return 1;
    return 0;
}
