#include "http.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The libcurl functions we use, resolved once from the dlopen()ed library. */
static struct {
	int tried;
	void *handle;
	char why[HTTP_ERR_MAX];
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	CURLcode (*global_init)(long);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} cu;

static const char *soname = "libcurl.so.4";

/*
 * Threads of a FastCGI process may verify at once: loading (and libcurl's
 * global initialisation, which is not thread-safe in every version) is
 * done once, under this lock; afterwards cu is only read.
 */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

void http_set_library(const char *name)
{
	pthread_mutex_lock(&load_lock);
	soname = name;
	pthread_mutex_unlock(&load_lock);
}

int http_loaded(void)
{
	pthread_mutex_lock(&load_lock);
	int loaded = cu.handle != NULL;
	pthread_mutex_unlock(&load_lock);
	return loaded;
}

#define RESOLVE(field, sym)                                                    \
	do {                                                                   \
		*(void **)&cu.field = dlsym(cu.handle, sym);                   \
		if (cu.field == NULL) {                                        \
			snprintf(cu.why, sizeof cu.why, "%s lacks %s", soname, \
				 sym);                                         \
			return -1;                                             \
		}                                                              \
	} while (0)

static int resolve_all(void)
{
	RESOLVE(easy_init, "curl_easy_init");
	RESOLVE(easy_setopt, "curl_easy_setopt");
	RESOLVE(easy_perform, "curl_easy_perform");
	RESOLVE(easy_getinfo, "curl_easy_getinfo");
	RESOLVE(easy_cleanup, "curl_easy_cleanup");
	RESOLVE(easy_reset, "curl_easy_reset");
	RESOLVE(easy_strerror, "curl_easy_strerror");
	RESOLVE(slist_append, "curl_slist_append");
	RESOLVE(slist_free_all, "curl_slist_free_all");
	/* Optional: without it curl_easy_init initialises on first use. */
	*(void **)&cu.global_init = dlsym(cu.handle, "curl_global_init");
	return 0;
}

static int load_locked(void)
{
	if (cu.tried)
		return cu.handle != NULL ? 0 : -1;
	cu.tried = 1;
	cu.handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (cu.handle == NULL) {
		const char *e = dlerror();
		snprintf(cu.why, sizeof cu.why, "libcurl not available: %s",
			 e != NULL ? e : soname);
		return -1;
	}
	if (resolve_all() != 0) {
		dlclose(cu.handle);
		cu.handle = NULL;
		return -1;
	}
	if (cu.global_init != NULL &&
	    cu.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(cu.why, sizeof cu.why, "%s: curl_global_init failed",
			 soname);
		dlclose(cu.handle);
		cu.handle = NULL;
		return -1;
	}
	return 0;
}

static int load(void)
{
	pthread_mutex_lock(&load_lock);
	int rc = load_locked();
	pthread_mutex_unlock(&load_lock);
	return rc;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct http_response *res = ctx;
	size_t n = size * nmemb;
	if (res->body_len + n > HTTP_BODY_MAX)
		return 0; /* makes libcurl fail the transfer */
	char *grown = realloc(res->body, res->body_len + n + 1);
	if (grown == NULL)
		return 0;
	memcpy(grown + res->body_len, data, n);
	res->body = grown;
	res->body_len += n;
	res->body[res->body_len] = '\0';
	return n;
}

/* Copies the value of header `name` if line is that header. */
static void grab(const char *line, size_t n, const char *name, char *out,
		 size_t size)
{
	size_t nl = strlen(name);
	if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	const char *v = line + nl + 1;
	size_t vl = n - nl - 1;
	while (vl > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl > 0 &&
	       (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
		vl--;
	snprintf(out, size, "%.*s", (int)vl, v);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct http_response *res = ctx;
	size_t n = size * nmemb;
	struct http_rate *r = &res->rate;
	grab(data, n, "X-Rate-Limit-Limit", r->limit, sizeof r->limit);
	grab(data, n, "X-Rate-Limit-Remaining", r->remaining,
	     sizeof r->remaining);
	grab(data, n, "X-Rate-Limit-Reset", r->reset, sizeof r->reset);
	grab(data, n, "Retry-After", r->retry_after, sizeof r->retry_after);
	return n;
}

/* 1 when req is sent with a body (perhaps an empty one). */
static int has_body(const struct http_request *req)
{
	return req->content_type != NULL || strcmp(req->method, "POST") == 0 ||
	       strcmp(req->method, "PUT") == 0;
}

static struct curl_slist *headers_for(const struct http_request *req, int *bad)
{
	char line[1024];
	struct curl_slist *h = NULL;
	struct curl_slist *next;
	/* No "Expect: 100-continue" round trip for our small bodies. */
	const char *fixed[] = {"Accept: application/json", "Expect:"};
	for (size_t i = 0; i < 2 && !*bad; i++) {
		next = cu.slist_append(h, fixed[i]);
		*bad = next == NULL;
		h = next != NULL ? next : h;
	}
	if (!*bad && has_body(req)) {
		/* "Content-Type:" alone drops the form type libcurl would
		 * give an empty body. */
		snprintf(line, sizeof line, "Content-Type:%s%s",
			 req->content_type != NULL ? " " : "",
			 req->content_type != NULL ? req->content_type : "");
		next = cu.slist_append(h, line);
		*bad = next == NULL;
		h = next != NULL ? next : h;
	}
	if (!*bad && req->oauth_token != NULL) {
		int n = snprintf(line, sizeof line, "Authorization: OAuth2 %s",
				 req->oauth_token);
		next = n > 0 && (size_t)n < sizeof line
			   ? cu.slist_append(h, line)
			   : NULL;
		*bad = next == NULL;
		h = next != NULL ? next : h;
	}
	return h;
}

static CURLcode setup(CURL *c, const struct http_request *req,
		      struct http_response *res, struct curl_slist *h)
{
	CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                          \
	do {                                                                   \
		if (rc == CURLE_OK)                                            \
			rc = cu.easy_setopt(c, opt, val);                      \
	} while (0)
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, req->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, req->timeout_ms);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_USERAGENT, "podio-hook");
	SET(CURLOPT_HTTPHEADER, h);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, res);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, res);
	if (req->ca_file != NULL)
		SET(CURLOPT_CAINFO, req->ca_file);
	if (strcmp(req->method, "GET") != 0)
		SET(CURLOPT_CUSTOMREQUEST, req->method);
	if (req->content_type != NULL) {
		SET(CURLOPT_POSTFIELDS, req->body);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	} else if (has_body(req)) {
		SET(CURLOPT_POSTFIELDS, "");
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	}
#undef SET
	return rc;
}

/*
 * Each thread keeps one easy handle between requests: its connection
 * cache lets the next request to the API reuse the TCP connection and TLS
 * session instead of a new handshake (drain --fetch makes one call per
 * event; the token request and the call go to the same host).
 */
static __thread CURL *kept;

void http_release(void)
{
	if (kept != NULL)
		cu.easy_cleanup(kept);
	kept = NULL;
}

int http_perform(const struct http_request *req, struct http_response *res)
{
	memset(res, 0, sizeof *res);
	if (load() != 0) {
		snprintf(res->error, sizeof res->error, "%s", cu.why);
		return -1;
	}
	if (kept != NULL)
		cu.easy_reset(kept); /* options off, connections kept */
	else
		kept = cu.easy_init();
	CURL *c = kept;
	int bad = c == NULL;
	struct curl_slist *h = bad ? NULL : headers_for(req, &bad);
	CURLcode rc = CURLE_OUT_OF_MEMORY;
	char detail[CURL_ERROR_SIZE] = "";
	if (!bad) {
		rc = setup(c, req, res, h);
		if (rc == CURLE_OK)
			rc = cu.easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
		if (rc == CURLE_OK)
			rc = cu.easy_perform(c);
	}
	if (rc == CURLE_OK)
		cu.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
	else if (detail[0] != '\0') /* names the cause: which certificate */
		snprintf(res->error, sizeof res->error, "%s: %s",
			 cu.easy_strerror(rc), detail);
	else
		snprintf(res->error, sizeof res->error, "%s",
			 cu.easy_strerror(rc));
	res->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
	cu.slist_free_all(h);
	if (rc != CURLE_OK)
		http_release(); /* a failed connection is not worth keeping */
	if (rc != CURLE_OK || res->status == 0) {
		res->status = 0;
		if (res->error[0] == '\0')
			snprintf(res->error, sizeof res->error, "no answer");
		return -1;
	}
	return 0;
}

void http_response_free(struct http_response *res)
{
	free(res->body);
	res->body = NULL;
	res->body_len = 0;
}

int http_form_append(char *buf, size_t n, size_t *used, const char *key,
		     const char *val)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *parts[2] = {key, val};
	size_t u = *used;
	if (u > 0) {
		if (u + 1 >= n)
			return -1;
		buf[u++] = '&';
	}
	for (int p = 0; p < 2; p++) {
		if (p == 1) {
			if (u + 1 >= n)
				return -1;
			buf[u++] = '=';
		}
		for (const unsigned char *s = (const unsigned char *)parts[p];
		     *s != '\0'; s++) {
			int plain = (*s >= 'a' && *s <= 'z') ||
				    (*s >= 'A' && *s <= 'Z') ||
				    (*s >= '0' && *s <= '9') || *s == '-' ||
				    *s == '_' || *s == '.' || *s == '~';
			if (u + (plain ? 1 : 3) >= n)
				return -1;
			if (plain) {
				buf[u++] = (char)*s;
			} else {
				buf[u++] = '%';
				buf[u++] = hex[*s >> 4];
				buf[u++] = hex[*s & 15];
			}
		}
	}
	buf[u] = '\0';
	*used = u;
	return 0;
}
