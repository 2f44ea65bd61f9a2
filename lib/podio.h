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
 * Tokens live in the struct (a FastCGI process keeps it between requests),
 * in one copy per process that every struct podio shares (under a mutex,
 * copied in and out), and, when cache_path is set, in a file of mode 0600
 * replaced atomically, for CGI runs that each start afresh.
 *
 * Threads: a struct podio holds the state of one operation (deadline,
 * status, err) and is used by one thread at a time; threads that call the
 * API at once each use their own, and still share tokens.
 */
#ifndef PODIO_PODIO_H
#define PODIO_PODIO_H

#include <jansson.h>
#include <time.h>

#include "config.h"
#include "http.h"

#define PODIO_ERR_MAX 512

/* A path below api_url, query included: Podio's longest are far shorter. */
#define PODIO_PATH_MAX 1024

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
	struct http_rate rate;	  /* the last answer's rate-limit headers */
	int timed_out;		  /* the last failure was the deadline */
	char err[PODIO_ERR_MAX];  /* the last failure, one line */
};

/*
 * An answer as received, for callers that hand Podio's JSON on (the api
 * command, drain --fetch).  Owned by the caller: podio_answer_free().
 */
struct podio_answer {
	long status; /* the call's HTTP status, > 0 */
	char *body;  /* malloc'd, NUL-terminated; NULL when empty */
	size_t body_len;
	struct http_rate rate; /* its rate-limit headers */
};

/* conf must outlive p.  cache_path is copied; NULL keeps tokens in memory. */
void podio_init(struct podio *p, const struct podio_conf *conf,
		const char *cache_path);
void podio_free(struct podio *p);

/* Starts a bounded operation: every call until the next begin shares it. */
void podio_begin(struct podio *p, int seconds);

/*
 * One API call with token handling, its answer handed back as received:
 * method ("GET", "POST", "PUT", "DELETE"), a path below api_url (leading
 * '/', at most PODIO_PATH_MAX bytes), and body_len bytes of JSON sent with
 * Content-Type: application/json, or body NULL for none.  The token comes
 * from memory, else the cache file, else a grant; a 401 saying
 * expired_token or invalid_token renews it once and repeats the call (the
 * answer is then the repeated call's).
 *
 * Returns 0 when the call got an HTTP answer, whatever its status: *ans
 * holds it, p->status and p->rate say the same, and p->err describes a
 * non-2xx one in one line.  Returns -1 when it got none: a network or TLS
 * failure, the deadline (p->timed_out), no token (the token request
 * failed: then p->status and p->rate are that request's, so a 420 there
 * is a rate limit too); p->err says why.  *ans needs no initialisation
 * and is empty after -1; podio_answer_free() is harmless either way.
 */
int podio_request(struct podio *p, const char *method, const char *path,
		  const char *body, size_t body_len, struct podio_answer *ans);

/* Releases ans->body; leaves *ans empty. */
void podio_answer_free(struct podio_answer *ans);

/*
 * podio_request for JSON in and out.  Returns 0 on a 2xx answer, with the
 * parsed answer in *out when out is not NULL (NULL for an empty or
 * non-JSON answer); else -1 with p->err and p->status (0 when no answer
 * came).
 */
int podio_call(struct podio *p, const char *method, const char *path,
	       json_t *body, json_t **out);

/* 1 for Podio's rate limit (420), and 429 as gateways answer it. */
int podio_rate_limited(long status);

/*
 * Seconds until a rate limit lifts, from the answer of a rate-limited
 * call: Retry-After (seconds, or an HTTP date), else X-Rate-Limit-Reset (a
 * number of seconds, or a Unix time when it is that large), else the
 * "wait N seconds" of Podio's error_description in body (the answer's
 * JSON, or any NUL-free text such as p->err; may be NULL).  -1 when
 * nothing says.  now is the current Unix time.
 */
long long podio_rate_reset(const struct http_rate *rate, const char *body,
			   size_t body_len, long long now);

/* Obtains a fresh token with the configured grant (for `check`). */
int podio_authenticate(struct podio *p);

/*
 * POST /hook/{hook_id}/verify/validate {"code":code}.  On failure p->err
 * holds "[code]" wherever Podio's text repeated the code.
 */
int podio_validate(struct podio *p, const char *hook_id, const char *code);

#endif
