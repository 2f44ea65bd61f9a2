#include "podio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "form.h"
#include "http.h"
#include "layout.h"
#include "log.h"
#include "num.h"

/* The token file's size at most: a few hundred bytes in practice. */
#define CACHE_FILE_MAX (64 * 1024)

/* A form body of credentials: a few hundred bytes in practice. */
#define FORM_BODY_MAX 4096

/*
 * A wait longer than this is not a wait (Podio's longest window is an
 * hour); a larger X-Rate-Limit-Reset is taken as a Unix time.
 */
#define PODIO_RATE_WAIT_MAX (7LL * 24 * 3600)

void podio_init(struct podio *p, const struct podio_conf *conf,
		const char *cache_path)
{
	memset(p, 0, sizeof *p);
	p->conf = conf;
	if (cache_path != NULL)
		p->cache_path = strdup(cache_path);
	podio_begin(p, conf->timeout);
}

static void token_clear(struct podio_token *t)
{
	free(t->access);
	free(t->refresh);
	memset(t, 0, sizeof *t);
}

void podio_free(struct podio *p)
{
	token_clear(&p->tok);
	free(p->cache_path);
	memset(p, 0, sizeof *p);
}

void podio_begin(struct podio *p, int seconds)
{
	clock_gettime(CLOCK_MONOTONIC, &p->deadline);
	p->deadline.tv_sec += seconds;
}

static long remaining_ms(const struct podio *p)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(p->deadline.tv_sec - now.tv_sec) * 1000 +
	       (p->deadline.tv_nsec - now.tv_nsec) / 1000000;
}

/* ---- errors ---- */

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s != NULL ? s : "";
}

/* Describes a non-2xx answer in p->err: Podio's JSON, or the page's start. */
static void describe(struct podio *p, const struct http_response *res,
		     const json_t *j)
{
	if (json_is_object(j)) {
		snprintf(p->err, sizeof p->err, "HTTP %ld: %s%s%s", res->status,
			 jstr(j, "error"),
			 jstr(j, "error_description")[0] != '\0' ? ": " : "",
			 jstr(j, "error_description"));
		utf8_scrub(p->err);
		return;
	}
	char start[120] = "";
	size_t k = 0;
	for (size_t i = 0;
	     res->body != NULL && i < res->body_len && k + 1 < sizeof start;
	     i++) {
		unsigned char c = (unsigned char)res->body[i];
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		if (c == ' ' && (k == 0 || start[k - 1] == ' '))
			continue;
		start[k++] = (char)c;
	}
	start[k] = '\0';
	snprintf(p->err, sizeof p->err, "HTTP %ld: non-JSON answer: %s",
		 res->status, k > 0 ? start : "(empty)");
	utf8_scrub(p->err);
}

static int token_rejected(long status, const json_t *j)
{
	if (status != 401)
		return 0;
	const char *e = jstr(j, "error");
	const char *d = jstr(j, "error_description");
	return strstr(e, "expired_token") != NULL ||
	       strstr(e, "invalid_token") != NULL ||
	       strstr(d, "expired_token") != NULL ||
	       strstr(d, "invalid_token") != NULL;
}

int podio_rate_limited(long status)
{
	return status == 420 || status == 429;
}

static void log_rate_limit(const struct http_response *res)
{
	const struct http_rate *r = &res->rate;
	log_warn("Podio rate limit reached status=%ld limit=%s remaining=%s"
		 "%s%s",
		 res->status, r->limit[0] != '\0' ? r->limit : "-",
		 r->remaining[0] != '\0' ? r->remaining : "-",
		 r->retry_after[0] != '\0' ? " retry_after=" : "",
		 r->retry_after);
}

/*
 * Sends one request within the deadline.  Returns 0 when an answer came,
 * with it in *res (released by the caller) and, for a non-2xx answer, its
 * parsed body in *j (may be NULL) and p->err set; -1 when none came, with
 * p->err set and *res already released.
 */
static int exchange(struct podio *p, struct http_request *req,
		    struct http_response *res, json_t **j)
{
	*j = NULL;
	p->status = 0;
	p->timed_out = 0;
	memset(&p->rate, 0, sizeof p->rate);
	req->timeout_ms = remaining_ms(p);
	req->ca_file = p->conf->ca_file;
	if (req->timeout_ms <= 0) {
		memset(res, 0, sizeof *res);
		p->timed_out = 1;
		snprintf(p->err, sizeof p->err, "timed out before %s %s",
			 req->method, req->url);
		return -1;
	}
	if (http_perform(req, res) != 0) {
		p->timed_out = res->timed_out;
		snprintf(p->err, sizeof p->err, "%s %s: %s", req->method,
			 req->url, res->error);
		utf8_scrub(p->err);
		http_response_free(res);
		return -1;
	}
	p->status = res->status;
	p->rate = res->rate;
	if (res->status < 200 || res->status > 299) {
		if (res->body_len > 0)
			*j = json_loadb(res->body, res->body_len, 0, NULL);
		describe(p, res, *j);
	}
	if (podio_rate_limited(res->status))
		log_rate_limit(res);
	return 0;
}

/*
 * exchange() for the token request: 0 on 2xx with the parsed answer in *j
 * (may be NULL); -1 otherwise with p->err set.
 */
static int send_req(struct podio *p, struct http_request *req, json_t **j)
{
	struct http_response res;
	if (exchange(p, req, &res, j) != 0)
		return -1;
	int ok = res.status >= 200 && res.status <= 299;
	if (ok && res.body_len > 0)
		*j = json_loadb(res.body, res.body_len, 0, NULL);
	http_response_free(&res);
	return ok ? 0 : -1;
}

/* ---- tokens ---- */

static void now_s(long long *out)
{
	*out = (long long)time(NULL);
}

static int token_fresh(const struct podio_token *t)
{
	long long now;
	now_s(&now);
	return t->access != NULL && t->expires_at > now + PODIO_TOKEN_MARGIN_S;
}

/* A lifetime from an answer or a file, bounded so sums cannot overflow. */
static long long clamp_ttl(long long v)
{
	return v < 0 ? 0 : v > PODIO_TOKEN_TTL_MAX ? PODIO_TOKEN_TTL_MAX : v;
}

/* Whose token: a cached token from other credentials is not ours. */
static void token_owner(const struct podio *p, char *buf, size_t n)
{
	const struct podio_conf *c = p->conf;
	if (c->app_id != NULL)
		snprintf(buf, n, "%s app %s", c->client_id, c->app_id);
	else
		snprintf(buf, n, "%s user %s", c->client_id,
			 c->username != NULL ? c->username : "");
}

/*
 * The process's newest token, shared by every struct podio in it: the
 * threads of a FastCGI process each verify with their own struct, and a
 * token one of them obtained serves the others.  Guarded by shared_lock;
 * copied in and out, never lent.
 */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char owner[512];
	struct podio_token tok;
} shared;

static void token_copy(struct podio_token *dst, const struct podio_token *src)
{
	token_clear(dst);
	dst->access = src->access != NULL ? strdup(src->access) : NULL;
	dst->refresh = src->refresh != NULL ? strdup(src->refresh) : NULL;
	dst->expires_at = dst->access != NULL ? src->expires_at : 0;
}

/* Takes the shared token when it is our owner's and outlives ours. */
static void shared_load(struct podio *p)
{
	char owner[512];
	token_owner(p, owner, sizeof owner);
	pthread_mutex_lock(&shared_lock);
	if (shared.tok.access != NULL && strcmp(shared.owner, owner) == 0 &&
	    shared.tok.expires_at > p->tok.expires_at)
		token_copy(&p->tok, &shared.tok);
	pthread_mutex_unlock(&shared_lock);
}

static void shared_store(const struct podio *p)
{
	pthread_mutex_lock(&shared_lock);
	token_owner(p, shared.owner, sizeof shared.owner);
	token_copy(&shared.tok, &p->tok);
	pthread_mutex_unlock(&shared_lock);
}

static void cache_load(struct podio *p)
{
	char owner[512];
	struct stat st;
	if (p->cache_path == NULL)
		return;
	/*
	 * Never through a link, never blocking on a FIFO planted in the
	 * spool; a few hundred bytes in practice.
	 */
	int fd = layout_open_file(AT_FDCWD, p->cache_path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size > CACHE_FILE_MAX) {
		if (fd >= 0 || errno != ENOENT)
			log_warn("token cache %s not read: %s", p->cache_path,
				 fd >= 0 ? "larger than 64 KiB"
					 : layout_strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	json_t *j = json_loadfd(fd, 0, NULL);
	close(fd);
	token_owner(p, owner, sizeof owner);
	if (json_is_object(j) && strcmp(jstr(j, "owner"), owner) == 0 &&
	    jstr(j, "access_token")[0] != '\0') {
		token_clear(&p->tok);
		p->tok.access = strdup(jstr(j, "access_token"));
		if (jstr(j, "refresh_token")[0] != '\0')
			p->tok.refresh = strdup(jstr(j, "refresh_token"));
		long long now;
		now_s(&now);
		long long at =
		    json_integer_value(json_object_get(j, "expires_at"));
		p->tok.expires_at = now + clamp_ttl(at > now ? at - now : 0);
	}
	json_decref(j);
}

/* Writes the token file: a temporary file of mode 0600, then rename. */
static void cache_store(struct podio *p)
{
	char owner[512];
	char tmp[4096];
	if (p->cache_path == NULL || p->tok.access == NULL)
		return;
	token_owner(p, owner, sizeof owner);
	json_t *j =
	    json_pack("{s:s, s:s, s:s?, s:I}", "owner", owner, "access_token",
		      p->tok.access, "refresh_token", p->tok.refresh,
		      "expires_at", (json_int_t)p->tok.expires_at);
	snprintf(tmp, sizeof tmp, "%s.XXXXXX", p->cache_path);
	int fd = j != NULL ? mkstemp(tmp) : -1;
	int ok = fd >= 0 && fchmod(fd, 0600) == 0 &&
		 json_dumpfd(j, fd, JSON_COMPACT) == 0 && fsync(fd) == 0;
	if (fd >= 0 && close(fd) != 0)
		ok = 0;
	struct stat st;
	if (ok && lstat(p->cache_path, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* Planted (a link, a FIFO): left for `check` to report. */
		errno = S_ISLNK(st.st_mode) ? ELOOP : EFTYPE_LAYOUT;
		ok = 0;
	}
	if (ok && rename(tmp, p->cache_path) != 0)
		ok = 0;
	if (!ok) {
		log_warn("cannot cache the Podio token in %s: %s",
			 p->cache_path, layout_strerror(errno));
		if (fd >= 0)
			unlink(tmp);
	}
	json_decref(j);
}

/* Asks /oauth/token with the configured grant, or a refresh. */
static int grant(struct podio *p, int use_refresh)
{
	const struct podio_conf *c = p->conf;
	char body[FORM_BODY_MAX];
	char url[1024];
	size_t used = 0;
	int bad = 0;
	/* The form's fields, as key, value pairs. */
	const char *f[10];
	size_t nf = 0;
	if (use_refresh) {
		f[nf++] = "grant_type";
		f[nf++] = "refresh_token";
		f[nf++] = "refresh_token";
		f[nf++] = p->tok.refresh;
	} else if (c->app_id != NULL && c->app_token != NULL) {
		f[nf++] = "grant_type";
		f[nf++] = "app";
		f[nf++] = "app_id";
		f[nf++] = c->app_id;
		f[nf++] = "app_token";
		f[nf++] = c->app_token;
	} else if (c->username != NULL && c->password != NULL) {
		f[nf++] = "grant_type";
		f[nf++] = "password";
		f[nf++] = "username";
		f[nf++] = c->username;
		f[nf++] = "password";
		f[nf++] = c->password;
	} else {
		snprintf(p->err, sizeof p->err,
			 "no Podio credentials configured");
		return -1;
	}
	if (c->client_id == NULL || c->client_secret == NULL) {
		snprintf(p->err, sizeof p->err,
			 "client_id and client_secret are required");
		return -1;
	}
	f[nf++] = "client_id";
	f[nf++] = c->client_id;
	f[nf++] = "client_secret";
	f[nf++] = c->client_secret;
	body[0] = '\0';
	for (size_t i = 0; i < nf; i += 2)
		bad |=
		    http_form_append(body, sizeof body, &used, f[i], f[i + 1]);
	if (bad) {
		snprintf(p->err, sizeof p->err, "credentials too long");
		return -1;
	}
	snprintf(url, sizeof url, "%s/oauth/token", c->api_url);
	struct http_request req = {
	    .method = "POST",
	    .url = url,
	    .content_type = "application/x-www-form-urlencoded",
	    .body = body,
	    .body_len = used,
	};
	json_t *j;
	int rc = send_req(p, &req, &j);
	if (rc == 0 && jstr(j, "access_token")[0] == '\0') {
		snprintf(p->err, sizeof p->err,
			 "token answer without access_token");
		rc = -1;
	}
	if (rc == 0) {
		long long now;
		now_s(&now);
		json_int_t ttl =
		    json_integer_value(json_object_get(j, "expires_in"));
		token_clear(&p->tok);
		p->tok.access = strdup(jstr(j, "access_token"));
		if (jstr(j, "refresh_token")[0] != '\0')
			p->tok.refresh = strdup(jstr(j, "refresh_token"));
		p->tok.expires_at = now + clamp_ttl(ttl);
		if (p->tok.access == NULL) {
			snprintf(p->err, sizeof p->err, "out of memory");
			rc = -1;
		} else {
			shared_store(p);
			cache_store(p);
		}
	} else {
		size_t n = strlen(p->err);
		snprintf(p->err + n, sizeof p->err - n, " (token request)");
	}
	json_decref(j);
	return rc;
}

/*
 * A new token after an old one expired or was rejected: refresh_token when
 * there is one (falling back to a new grant if Podio refuses it, but not
 * after a timeout), else a new grant.
 */
static int renew(struct podio *p)
{
	if (p->tok.refresh != NULL) {
		if (grant(p, 1) == 0)
			return 0;
		if (p->timed_out)
			return -1;
	}
	return grant(p, 0);
}

static int ensure_token(struct podio *p)
{
	if (token_fresh(&p->tok))
		return 0;
	shared_load(p);
	if (token_fresh(&p->tok))
		return 0;
	cache_load(p);
	if (token_fresh(&p->tok))
		return 0;
	return p->tok.access != NULL ? renew(p) : grant(p, 0);
}

int podio_authenticate(struct podio *p)
{
	return grant(p, 0);
}

static int call_once(struct podio *p, const char *method, const char *url,
		     const char *body, size_t body_len,
		     struct http_response *res, json_t **j)
{
	struct http_request req = {
	    .method = method,
	    .url = url,
	    .content_type = body != NULL ? "application/json" : NULL,
	    .body = body,
	    .body_len = body_len,
	    .oauth_token = p->tok.access,
	};
	return exchange(p, &req, res, j);
}

void podio_answer_free(struct podio_answer *ans)
{
	free(ans->body);
	memset(ans, 0, sizeof *ans);
}

int podio_request(struct podio *p, const char *method, const char *path,
		  const char *body, size_t body_len, struct podio_answer *ans)
{
	char url[PODIO_PATH_MAX + 1024];
	struct http_response res;
	json_t *j = NULL;
	memset(ans, 0, sizeof *ans);
	if (strlen(path) > PODIO_PATH_MAX || path[0] != '/') {
		p->status = 0;
		snprintf(p->err, sizeof p->err,
			 "the path must start with '/' and be at most %d "
			 "bytes",
			 PODIO_PATH_MAX);
		return -1;
	}
	int n = snprintf(url, sizeof url, "%s%s", p->conf->api_url, path);
	if (n < 0 || (size_t)n >= sizeof url) {
		p->status = 0;
		snprintf(p->err, sizeof p->err, "api_url and path too long");
		return -1;
	}
	if (ensure_token(p) != 0)
		return -1;
	if (call_once(p, method, url, body, body_len, &res, &j) != 0)
		return -1;
	if (token_rejected(res.status, j)) {
		log_info("Podio token rejected; renewing it once");
		json_decref(j);
		j = NULL;
		http_response_free(&res);
		if (renew(p) != 0 ||
		    call_once(p, method, url, body, body_len, &res, &j) != 0)
			return -1;
	}
	json_decref(j);
	/* The body moves to the caller. */
	ans->status = res.status;
	ans->body = res.body;
	ans->body_len = res.body_len;
	ans->rate = res.rate;
	return 0;
}

int podio_call(struct podio *p, const char *method, const char *path,
	       json_t *body, json_t **out)
{
	char *text = NULL;
	struct podio_answer ans;
	if (out != NULL)
		*out = NULL;
	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		snprintf(p->err, sizeof p->err, "out of memory");
		return -1;
	}
	int rc = podio_request(p, method, path, text,
			       text != NULL ? strlen(text) : 0, &ans);
	free(text);
	if (rc == 0 && (ans.status < 200 || ans.status > 299))
		rc = -1; /* p->err describes it */
	if (rc == 0 && out != NULL && ans.body_len > 0)
		*out = json_loadb(ans.body, ans.body_len, 0, NULL);
	podio_answer_free(&ans);
	return rc;
}

/*
 * Replaces each occurrence of code in p->err by "[code]": an error text
 * from Podio may repeat the code, and codes are never logged.
 */
static void redact(struct podio *p, const char *code)
{
	char out[sizeof p->err];
	const char *s = p->err;
	size_t used = 0;
	size_t n = strlen(code);
	size_t len = strlen(p->err);
	int cut = 0;
	if (n == 0)
		return;
	/* A text cut to fit p->err may end in the first bytes of the code. */
	for (size_t k = n - 1 < len ? n - 1 : len;
	     len + 1 >= sizeof p->err && k > 0; k--) {
		if (memcmp(p->err + len - k, code, k) == 0) {
			p->err[len - k] = '\0';
			cut = 1;
			break;
		}
	}
	if (!cut && strstr(s, code) == NULL)
		return;
	out[0] = '\0';
	while (*s != '\0' && used + 1 < sizeof out) {
		const char *hit = strstr(s, code);
		size_t plain = hit != NULL ? (size_t)(hit - s) : strlen(s);
		int k = snprintf(out + used, sizeof out - used, "%.*s%s",
				 (int)plain, s, hit != NULL ? "[code]" : "");
		if (k < 0 || (size_t)k >= sizeof out - used) {
			/* Cut where it had to be, never inside a code. */
			used = strlen(out);
			break;
		}
		used += (size_t)k;
		s = hit != NULL ? hit + n : s + plain;
	}
	if (cut && used + sizeof "[code]" <= sizeof out)
		memcpy(out + used, "[code]", sizeof "[code]");
	memcpy(p->err, out, sizeof out);
}

int podio_validate(struct podio *p, const char *hook_id, const char *code)
{
	char path[256];
	snprintf(path, sizeof path, "/hook/%s/verify/validate", hook_id);
	json_t *body = json_pack("{s:s}", "code", code);
	if (body == NULL) {
		snprintf(p->err, sizeof p->err, "out of memory");
		return -1;
	}
	int rc = podio_call(p, "POST", path, body, NULL);
	json_decref(body);
	if (rc != 0)
		redact(p, code);
	return rc;
}

/* Digits only, within [0, max]; -1 otherwise. */
static long long digits(const char *s, size_t n, unsigned long long max)
{
	unsigned long long v;
	if (num_parse_n(s, n, 10, 0, max, &v) != NUM_OK)
		return -1;
	return (long long)v;
}

/* An HTTP date (RFC 7231's preferred form) as a Unix time, or -1. */
static long long http_date(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	return (long long)timegm(&tm);
}

/* "... wait 3600 seconds ..." in text, or -1. */
static long long wait_in(const char *text)
{
	const char *w = text;
	while ((w = strstr(w, "wait ")) != NULL) {
		w += 5;
		size_t n = strspn(w, "0123456789");
		if (n > 0 && strncmp(w + n, " second", 7) == 0)
			return digits(w, n, PODIO_RATE_WAIT_MAX);
	}
	return -1;
}

/* The wait in Podio's error_description, or in the text itself. */
static long long wait_in_answer(const char *body, size_t len)
{
	if (body == NULL)
		return -1;
	json_t *j = json_loadb(body, len, 0, NULL);
	long long v =
	    json_is_object(j) ? wait_in(jstr(j, "error_description")) : -1;
	if (!json_is_object(j) && strlen(body) == len)
		v = wait_in(body);
	json_decref(j);
	return v;
}

long long podio_rate_reset(const struct http_rate *rate, const char *body,
			   size_t body_len, long long now)
{
	const char *ra = rate->retry_after;
	long long v;
	if (ra[0] != '\0') {
		v = digits(ra, strlen(ra), PODIO_RATE_WAIT_MAX);
		if (v >= 0)
			return v;
		v = http_date(ra);
		if (v >= 0)
			return v > now ? v - now : 0;
	}
	if (rate->reset[0] != '\0') {
		v = digits(rate->reset, strlen(rate->reset), UINT32_MAX);
		/* A number that large is a time, not a wait. */
		if (v >= PODIO_RATE_WAIT_MAX)
			return v > now ? v - now : 0;
		if (v >= 0)
			return v;
	}
	return wait_in_answer(body, body_len);
}
