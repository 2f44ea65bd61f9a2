/*
 * podio.h - a small client for the Podio API (tokens, hooks, validation).
 *
 * OAuth: the app grant (app_id + app_token) or the password grant
 * (username + password), both with client_id and client_secret, sent
 * form-encoded without an Authorization header; refresh_token when a token
 * expires.  API calls send "Authorization: OAuth2 <token>".  A 401 whose
 * error says expired_token or invalid_token refreshes the token and retries
 * once; a call that timed out is never retried.  Any non-2xx answer is a
 * failure, described in one line (Podio's JSON error, or the start of an
 * HTML page).  Tokens, secrets and verification codes are never logged.
 *
 * Tokens live in the struct (a FastCGI process keeps it between requests)
 * and, when cache_path is set, in a file of mode 0600 replaced atomically,
 * for CGI runs that each start afresh.
 */
#ifndef PODIO_PODIO_H
#define PODIO_PODIO_H

#include <jansson.h>
#include <time.h>

#include "config.h"

#define PODIO_ERR_MAX 512

/* Podio tokens live 8 hours; a longer claimed lifetime is cut to a day. */
#define PODIO_TOKEN_TTL_MAX (24LL * 3600)
/* Refresh a token this long before Podio says it expires. */
#define PODIO_TOKEN_MARGIN_S 60

struct podio_token {
	char *access;
	char *refresh;
	long long expires_at; /* seconds since the epoch */
};

struct podio {
	const struct podio_conf *conf;
	char *cache_path;	  /* token file, or NULL */
	struct podio_token tok;	  /* access == NULL: none */
	struct timespec deadline; /* CLOCK_MONOTONIC; bounds every call */
	long status;		  /* the last answer's HTTP status, 0: none */
	int timed_out;		  /* the last failure was the deadline */
	char err[PODIO_ERR_MAX];  /* the last failure, one line */
};

/* conf must outlive p.  cache_path is copied; NULL keeps tokens in memory. */
void podio_init(struct podio *p, const struct podio_conf *conf,
		const char *cache_path);
void podio_free(struct podio *p);

/* Starts a bounded operation: every call until the next begin shares it. */
void podio_begin(struct podio *p, int seconds);

/*
 * One API call with token handling: method, a path below api_url (with its
 * leading '/'), an optional JSON body.  Returns 0 on a 2xx answer, with the
 * parsed answer in *out when out is not NULL (NULL for an empty answer);
 * else -1 with p->err and p->status.
 */
int podio_call(struct podio *p, const char *method, const char *path,
	       json_t *body, json_t **out);

/* Obtains a fresh token with the configured grant (for `check`). */
int podio_authenticate(struct podio *p);

/* POST /hook/{hook_id}/verify/validate {"code":code} */
int podio_validate(struct podio *p, const char *hook_id, const char *code);

#endif
