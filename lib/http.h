/*
 * http.h - the few HTTPS requests podio-hook makes, over libcurl loaded on
 * first use.
 *
 * The receiver's ordinary events never touch this module, so a CGI run
 * never pays for dynamic linking of libcurl and its TLS stack, and a host
 * without libcurl still receives and spools events.  libcurl is opened with
 * dlopen() the first time a request is made and its few functions are
 * resolved once.  TLS peer and host verification are always on.
 * Thread-safe: the library is loaded and initialised once, under a lock;
 * each request uses its own handle.
 */
#ifndef PODIO_HTTP_H
#define PODIO_HTTP_H

#include <stddef.h>

/* Podio's answers are small; anything larger is not an API answer. */
#define HTTP_BODY_MAX (4u * 1024u * 1024u)
#define HTTP_ERR_MAX  256

struct http_request {
	const char *method; /* "GET", "POST", "PUT" or "DELETE" */
	const char *url;
	const char *content_type; /* with body; NULL: no body */
	const char *body;
	size_t body_len;
	const char *oauth_token; /* "Authorization: OAuth2 <t>", or NULL */
	const char *ca_file;	 /* CA bundle, or NULL for the system's */
	long timeout_ms;	 /* the whole request, connect included */
};

/*
 * What an answer said about a rate limit: each header's value as received
 * (blanks trimmed, cut to fit), "" when the header was absent.  Podio sends
 * X-Rate-Limit-Limit and X-Rate-Limit-Remaining; gateways in front of an
 * API answer 429 with Retry-After (seconds, or an HTTP date).
 */
struct http_rate {
	char limit[24];	      /* X-Rate-Limit-Limit */
	char remaining[24];   /* X-Rate-Limit-Remaining */
	char reset[24];	      /* X-Rate-Limit-Reset */
	char retry_after[40]; /* Retry-After */
};

struct http_response {
	long status; /* HTTP status; 0 when no answer came */
	char *body;  /* malloc'd, NUL-terminated; may be NULL */
	size_t body_len;
	int timed_out;		  /* the request ran out of time */
	struct http_rate rate;	  /* from the answer's headers */
	char error[HTTP_ERR_MAX]; /* why status is 0 */
};

/*
 * Which library to dlopen (default "libcurl.so.4"); call before the first
 * request.  The string must outlive the process's use of this module.
 */
void http_set_library(const char *soname);

/* 1 once libcurl has been loaded into this process. */
int http_loaded(void);

/*
 * Performs req.  Returns 0 when an HTTP answer came (any status), -1
 * otherwise (libcurl missing, DNS, TLS, timeout ...) with res->error set.
 * A POST or PUT without content_type is sent with an empty body and no
 * Content-Type.  res needs no initialisation; release it with
 * http_response_free().
 */
int http_perform(const struct http_request *req, struct http_response *res);

void http_response_free(struct http_response *res);

/*
 * Closes the calling thread's kept connections (http_perform reuses them
 * between requests).  Harmless when there are none.
 */
void http_release(void);

/*
 * Appends s URL-encoded (application/x-www-form-urlencoded) to buf of size
 * n at *used.  Returns 0, or -1 when it does not fit.
 */
int http_form_append(char *buf, size_t n, size_t *used, const char *key,
		     const char *val);

#endif
