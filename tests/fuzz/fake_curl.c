/*
 * fake_curl.c - a stand-in for libcurl.so.4, for fuzz_podio.
 *
 * lib/http.c dlopen()s libcurl and resolves eight functions; this library
 * has the same names and plays answers from a script the fuzz target sets
 * (fake_curl_script), so the Podio client's answer handling runs without a
 * network.  Built as a plain shared object; the fuzz target dlopen()s the
 * same path to reach the script and the statistics.
 *
 * Script: a sequence of answers, one per curl_easy_perform:
 *   byte c: c % 8 < 5 an HTTP answer; 5 a timeout; 6 a TLS failure
 *           whose CURLOPT_ERRORBUFFER text is the next byte n and n
 *           bytes; 7 an answer with status 0.  c / 8 is the body chunk size
 *           (0: the whole body in one callback).
 *   byte s: the status: a table entry when s < 240, else s itself.
 *   byte h, then h bytes of header lines (delivered split at '\n').
 *   2 bytes little-endian body length, then the body (cut at the end).
 * An exhausted script answers "could not connect".
 */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fake_curl_stats {
	int performs;
	int token_calls;	  /* POST .../oauth/token */
	int api_calls;		  /* everything else */
	int after_timeout;	  /* performs after one timed out */
	int form_token_with_auth; /* token calls that sent Authorization */
};

struct handle {
	char url[4096];
	const char *method;
	struct curl_slist *headers;
	curl_write_callback write_fn;
	void *write_data;
	curl_write_callback header_fn;
	void *header_data;
	long status;
	char *errbuf; /* CURLOPT_ERRORBUFFER, CURL_ERROR_SIZE bytes */
};

static const uint8_t *script;
static size_t script_len;
static size_t script_pos;
static int timed_out;
static struct fake_curl_stats stats;

void fake_curl_script(const uint8_t *data, size_t len)
{
	script = data;
	script_len = len;
	script_pos = 0;
	timed_out = 0;
	memset(&stats, 0, sizeof stats);
}

const struct fake_curl_stats *fake_curl_stats(void)
{
	return &stats;
}

CURL *curl_easy_init(void)
{
	return calloc(1, sizeof(struct handle));
}

CURLcode curl_easy_setopt(CURL *c, CURLoption opt, ...)
{
	struct handle *h = c;
	va_list ap;
	va_start(ap, opt);
	switch (opt) {
	case CURLOPT_URL:
		snprintf(h->url, sizeof h->url, "%s", va_arg(ap, const char *));
		break;
	case CURLOPT_CUSTOMREQUEST:
		h->method = va_arg(ap, const char *);
		break;
	case CURLOPT_HTTPHEADER:
		h->headers = va_arg(ap, struct curl_slist *);
		break;
	case CURLOPT_WRITEFUNCTION:
		h->write_fn = va_arg(ap, curl_write_callback);
		break;
	case CURLOPT_WRITEDATA:
		h->write_data = va_arg(ap, void *);
		break;
	case CURLOPT_HEADERFUNCTION:
		h->header_fn = va_arg(ap, curl_write_callback);
		break;
	case CURLOPT_HEADERDATA:
		h->header_data = va_arg(ap, void *);
		break;
	case CURLOPT_ERRORBUFFER:
		h->errbuf = va_arg(ap, char *);
		break;
	default:
		break;
	}
	va_end(ap);
	return CURLE_OK;
}

static int next(void)
{
	return script_pos < script_len ? script[script_pos++] : -1;
}

static const long statuses[16] = {200, 201, 204, 400, 401, 401, 403, 404,
				  420, 500, 502, 503, 302, 299, 199, 600};

CURLcode curl_easy_perform(CURL *c)
{
	struct handle *h = c;
	stats.performs++;
	if (timed_out)
		stats.after_timeout++;
	if (strstr(h->url, "/oauth/token") != NULL) {
		stats.token_calls++;
		for (struct curl_slist *s = h->headers; s != NULL; s = s->next)
			if (strncmp(s->data, "Authorization:", 14) == 0)
				stats.form_token_with_auth++;
	} else {
		stats.api_calls++;
	}
	int ctl = next();
	if (ctl < 0)
		return CURLE_COULDNT_CONNECT;
	if (ctl % 8 == 5) {
		timed_out = 1;
		return CURLE_OPERATION_TIMEDOUT;
	}
	if (ctl % 8 == 6) {
		int n = next();
		size_t len = n < 0 ? 0 : (size_t)n;
		if (len > script_len - script_pos)
			len = script_len - script_pos;
		if (len > CURL_ERROR_SIZE - 1)
			len = CURL_ERROR_SIZE - 1;
		if (h->errbuf != NULL) {
			memcpy(h->errbuf, script + script_pos, len);
			h->errbuf[len] = '\0';
		}
		script_pos += len;
		return CURLE_PEER_FAILED_VERIFICATION;
	}
	int s = next();
	h->status = s < 0 ? 200 : s < 240 ? statuses[s % 16] : s;
	if (ctl % 8 == 7)
		h->status = 0;
	int hl = next();
	size_t hlen = hl < 0 ? 0 : (size_t)hl;
	if (hlen > script_len - script_pos)
		hlen = script_len - script_pos;
	const char *hd = (const char *)script + script_pos;
	script_pos += hlen;
	while (hlen > 0) {
		const char *nl = memchr(hd, '\n', hlen);
		size_t n = nl != NULL ? (size_t)(nl - hd) + 1 : hlen;
		char line[512];
		if (n > sizeof line)
			n = sizeof line;
		memcpy(line, hd, n); /* a callback may not keep a const */
		if (h->header_fn(line, 1, n, h->header_data) != n)
			return CURLE_WRITE_ERROR;
		hd += n;
		hlen -= n;
	}
	int lo = next();
	int hi = next();
	size_t blen = (size_t)(lo < 0 ? 0 : lo) | (size_t)(hi < 0 ? 0 : hi)
						      << 8;
	if (blen > script_len - script_pos)
		blen = script_len - script_pos;
	const char *bd = (const char *)script + script_pos;
	script_pos += blen;
	size_t chunk = (size_t)(ctl / 8);
	char buf[2048 * 8];
	while (blen > 0) {
		size_t n = chunk == 0 || chunk > blen ? blen : chunk;
		if (n > sizeof buf)
			n = sizeof buf;
		memcpy(buf, bd, n);
		if (h->write_fn(buf, 1, n, h->write_data) != n)
			return CURLE_WRITE_ERROR;
		bd += n;
		blen -= n;
	}
	return CURLE_OK;
}

CURLcode curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
	struct handle *h = c;
	va_list ap;
	va_start(ap, info);
	if (info == CURLINFO_RESPONSE_CODE)
		*va_arg(ap, long *) = h->status;
	va_end(ap);
	return CURLE_OK;
}

void curl_easy_cleanup(CURL *c)
{
	free(c);
}

const char *curl_easy_strerror(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return "Timeout was reached";
	case CURLE_PEER_FAILED_VERIFICATION:
		return "SSL peer certificate or SSH remote key was not OK";
	case CURLE_WRITE_ERROR:
		return "Failed writing received data to disk/application";
	default:
		return "Couldn't connect to server";
	}
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *s)
{
	struct curl_slist *n = malloc(sizeof *n);
	if (n == NULL)
		return NULL;
	n->data = strdup(s);
	n->next = NULL;
	if (n->data == NULL) {
		free(n);
		return NULL;
	}
	if (list == NULL)
		return n;
	struct curl_slist *t = list;
	while (t->next != NULL)
		t = t->next;
	t->next = n;
	return list;
}

void curl_slist_free_all(struct curl_slist *list)
{
	while (list != NULL) {
		struct curl_slist *n = list->next;
		free(list->data);
		free(list);
		list = n;
	}
}
