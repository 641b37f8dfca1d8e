/* api_auth.h — who may read what through the collector's HTTP API: the
 * configured bearer tokens, found in constant time, and the access rules of
 * docs/api.md (operators their own sites, regulators everything, the public
 * the compliant list). Pure: no sockets, no clock, no files. */
#ifndef DCEM_API_AUTH_H
#define DCEM_API_AUTH_H

#include "site.h"

#include <stddef.h>

#define DCEM_API_TOKEN_MIN 16  /* characters: a guessable token is no token */
#define DCEM_API_TOKEN_MAX 256 /* buffer: tokens are at most 255 characters */
#define DCEM_API_MAX_TOKENS 64
#define DCEM_API_MAX_TOKEN_SITES 64
#define DCEM_API_PATH_MAX 512

typedef enum dcem_api_role {
    DCEM_API_ROLE_OPERATOR = 0, /* reads its own sites */
    DCEM_API_ROLE_REGULATOR,    /* reads every site, exports and reports */
    DCEM_API_ROLE_PUBLIC,       /* no token: the compliant list, /healthz */
} dcem_api_role;

/* One configured token (collector.yaml, api.tokens[]). The token itself is
 * given literally, or read from token_file or the environment variable
 * token_env when the configuration is loaded. */
typedef struct dcem_api_token {
    char name[64];                  /* a label for the log; never the token */
    int role;                       /* DCEM_API_ROLE_OPERATOR or _REGULATOR */
    char token[DCEM_API_TOKEN_MAX]; /* the secret, NUL-padded */
    char token_file[DCEM_API_PATH_MAX];
    char token_env[64];
    char sites[DCEM_API_MAX_TOKEN_SITES][DCEM_ID_MAX]; /* an operator's sites */
    size_t n_sites;
    int line; /* where it is declared, for messages */
} dcem_api_token;

/* 0 when s[0..len) can be a token: DCEM_API_TOKEN_MIN to DCEM_API_TOKEN_MAX - 1
 * characters of RFC 6750's b64token alphabet (A-Z a-z 0-9 - . _ ~ + / =);
 * otherwise DCEM_EINVAL with the reason in why. */
int dcem_api_token_check(const char *s, size_t len, char *why, size_t whylen);

/* The credentials of an Authorization header value: "Bearer <token>" (the
 * scheme case-insensitive, one or more spaces). Returns 0 with *tok / *len
 * pointing into header; DCEM_EINVAL when header is not a bearer credential. */
int dcem_api_bearer(const char *header, const char **tok, size_t *len);

/* Index of the configured token equal to presented[0..len), or -1. Takes
 * the same time whatever presented holds and whichever token (if any) it
 * equals: every byte of every token slot is compared, lengths included, and
 * the match is selected without a branch on secret data. */
int dcem_api_token_find(const dcem_api_token *tokens, size_t n, const char *presented, size_t len);

/* 1 when a client of `role` (token t, NULL for the public) may read the
 * site-scoped endpoints of site. */
int dcem_api_may_read_site(int role, const dcem_api_token *t, const char *site);

#endif
