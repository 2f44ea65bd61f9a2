#include "receive.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/event.h"
#include "../lib/form.h"
#include "../lib/log.h"
#include "../lib/record.h"
#include "verify.h"

/* The one table from outcome to HTTP status. */
static const struct {
	int status;
	const char *reason;
} http[OUT_COUNT] = {
    [OUT_OK] = {200, "OK"},
    [OUT_CONFIG] = {500, "Internal Server Error"},
    [OUT_METHOD] = {405, "Method Not Allowed"},
    [OUT_SECRET] = {403, "Forbidden"},
    [OUT_NO_LENGTH] = {411, "Length Required"},
    [OUT_TOO_LARGE] = {413, "Content Too Large"},
    [OUT_MEDIA_TYPE] = {415, "Unsupported Media Type"},
    [OUT_BAD_LENGTH] = {400, "Bad Request"},
    [OUT_SHORT_BODY] = {400, "Bad Request"},
    [OUT_BAD_ESCAPE] = {400, "Bad Request"},
    [OUT_BAD_BYTES] = {400, "Bad Request"},
    [OUT_EMPTY_KEY] = {400, "Bad Request"},
    [OUT_DUP_KEY] = {400, "Bad Request"},
    [OUT_CONFLICT] = {400, "Bad Request"},
    [OUT_TOO_MANY] = {400, "Bad Request"},
    [OUT_BAD_TYPE] = {400, "Bad Request"},
    [OUT_VERIFY_PARAMS] = {400, "Bad Request"},
    [OUT_HOOK_DENIED] = {403, "Forbidden"},
    [OUT_UNKNOWN_TYPE] = {400, "Bad Request"},
    [OUT_SPOOL] = {503, "Service Unavailable"},
};

#define FORM_MEDIA_TYPE "application/x-www-form-urlencoded"

/* Everything one request owns; released by request_free(). */
struct request {
	struct app *app;
	const struct req_io *io;
	char *qbuf; /* decoded query string */
	char *bbuf; /* decoded body */
	size_t clen;
	int body_read;
	enum outcome body_rc;
	struct form query;
	struct form body;
	struct form params;
	char spool_err[SPOOL_ERR_MAX];
};

static const char *param(const struct request *r, const char *name)
{
	return r->io->param(r->io->ctx, name);
}

/* Compares in time that depends only on the configured secret's length. */
static int secret_matches(const char *want, const struct form_field *got)
{
	size_t wlen = strlen(want);
	unsigned char diff = got->val_len != wlen;
	for (size_t i = 0; i < wlen; i++) {
		unsigned char g =
		    i < got->val_len ? (unsigned char)got->val[i] : 0;
		diff |= g ^ (unsigned char)want[i];
	}
	return diff == 0;
}

/* The 411 / 413 / 415 rules; sets r->clen. */
static enum outcome check_headers(struct request *r)
{
	const char *cl = param(r, "CONTENT_LENGTH");
	const char *ct = param(r, "CONTENT_TYPE");
	if (cl == NULL || cl[0] == '\0')
		return OUT_NO_LENGTH;
	size_t n = 0;
	for (const char *p = cl; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return OUT_BAD_LENGTH;
		if (n > r->app->cfg.max_body) /* stop before it can overflow */
			return OUT_TOO_LARGE;
		n = n * 10 + (size_t)(*p - '0');
	}
	if (n > r->app->cfg.max_body)
		return OUT_TOO_LARGE;
	r->clen = n;
	if (ct == NULL)
		return OUT_MEDIA_TYPE;
	size_t mlen = strcspn(ct, ";");
	while (mlen > 0 && (ct[mlen - 1] == ' ' || ct[mlen - 1] == '\t'))
		mlen--;
	while (mlen > 0 && (*ct == ' ' || *ct == '\t')) {
		ct++;
		mlen--;
	}
	if (mlen != strlen(FORM_MEDIA_TYPE) ||
	    strncasecmp(ct, FORM_MEDIA_TYPE, mlen) != 0)
		return OUT_MEDIA_TYPE;
	return OUT_OK;
}

/* Reads exactly clen bytes (or finds the body short) and decodes them. */
static enum outcome read_body(struct request *r)
{
	size_t got = 0;
	r->body_read = 1;
	r->bbuf = malloc(r->clen + 1);
	if (r->bbuf == NULL) {
		snprintf(r->spool_err, sizeof r->spool_err, "out of memory");
		return OUT_SPOOL;
	}
	while (got < r->clen) {
		ssize_t n =
		    r->io->read(r->io->ctx, r->bbuf + got, r->clen - got);
		if (n <= 0)
			return OUT_SHORT_BODY;
		got += (size_t)n;
	}
	return form_parse(&r->body, r->bbuf, r->clen);
}

/*
 * The secret rule.  It comes before the header rules in the table, so a
 * request that cannot deliver a body (no length, too large, wrong type)
 * and has no secret in its query string is simply unauthenticated.
 */
static enum outcome authenticate(struct request *r, enum outcome hdr)
{
	const char *want = r->app->cfg.secret;
	if (want == NULL)
		return OUT_OK;
	const struct form_field *got = form_get(&r->query, RECORD_SECRET_KEY);
	if (got == NULL) {
		if (hdr != OUT_OK)
			return OUT_SECRET;
		r->body_rc = read_body(r);
		got = form_get(&r->body, RECORD_SECRET_KEY);
	}
	if (got == NULL || !secret_matches(want, got))
		return OUT_SECRET;
	return OUT_OK;
}

static enum outcome spool_event(struct request *r,
				const struct form_field *type)
{
	struct stamp st;
	struct verify_result vr = {0};
	struct record rec = {
	    .stamp = &st,
	    .type = type->val,
	    .params = &r->params,
	};
	rec.remote_addr = param(r, "REMOTE_ADDR");
	if (rec.remote_addr == NULL)
		rec.remote_addr = "";
	/* Stamped on arrival, before an inline verification's wait. */
	if (record_stamp(&st) != 0) {
		snprintf(r->spool_err, sizeof r->spool_err, "clock_gettime: %s",
			 strerror(errno));
		return OUT_SPOOL;
	}
	if (event_is_verify(type)) {
		verify_hook(r->app, &r->params, &vr);
		rec.verify_status = vr.status;
		rec.verify_detail = vr.detail;
	}
	size_t len;
	char *line = record_encode(&rec, &len);
	if (line == NULL) {
		snprintf(r->spool_err, sizeof r->spool_err, "out of memory");
		return OUT_SPOOL;
	}
	int rc =
	    spool_append(&r->app->spool, type->val, line, len, r->spool_err);
	free(line);
	if (rc != 0)
		return OUT_SPOOL;
	log_debug("spooled type=%s id=%s", type->val, st.id);
	return OUT_OK;
}

/* The status table, in order; the first rule that applies answers. */
static enum outcome decide(struct request *r)
{
	const char *method = param(r, "REQUEST_METHOD");
	const char *qs = param(r, "QUERY_STRING");
	const struct form_field *type;
	enum outcome rc;

	if (r->app->loaded == 0 && app_load(r->app) != 0)
		return OUT_CONFIG;
	if (method == NULL || strcmp(method, "POST") != 0)
		return OUT_METHOD;
	if (qs == NULL)
		qs = "";
	size_t qlen = strlen(qs);
	r->qbuf = malloc(qlen + 1);
	if (r->qbuf == NULL) {
		snprintf(r->spool_err, sizeof r->spool_err, "out of memory");
		return OUT_SPOOL;
	}
	memcpy(r->qbuf, qs, qlen + 1);
	enum outcome query_rc = form_parse(&r->query, r->qbuf, qlen);
	enum outcome hdr = check_headers(r);
	rc = authenticate(r, hdr);
	if (rc != OUT_OK)
		return rc;
	if (hdr != OUT_OK)
		return hdr;
	if (!r->body_read)
		r->body_rc = read_body(r);
	if (r->body_rc != OUT_OK)
		return r->body_rc;
	if (query_rc != OUT_OK)
		return query_rc;
	rc = form_merge(&r->params, &r->query, &r->body);
	if (rc == OUT_OK)
		rc = event_check(&r->params, &r->app->policy, &type);
	if (rc == OUT_OK)
		rc = spool_event(r, type);
	return rc;
}

static int answer(struct request *r, enum outcome o)
{
	char buf[512];
	const char *text = o == OUT_OK ? "OK" : outcome_text(o);
	int n = snprintf(buf, sizeof buf,
			 "Status: %d %s\r\n"
			 "Content-Type: text/plain\r\n"
			 "Cache-Control: no-store\r\n"
			 "%s"
			 "Content-Length: %zu\r\n"
			 "\r\n"
			 "%s\n",
			 http[o].status, http[o].reason,
			 o == OUT_METHOD ? "Allow: POST\r\n" : "",
			 strlen(text) + 1, text);
	if (n < 0 || (size_t)n >= sizeof buf ||
	    r->io->write(r->io->ctx, buf, (size_t)n) != 0)
		log_warn("could not send the answer status=%d", http[o].status);
	return http[o].status;
}

static void report(const struct request *r, enum outcome o)
{
	const char *addr = param(r, "REMOTE_ADDR");
	if (addr == NULL)
		addr = "-";
	if (o == OUT_SPOOL)
		log_error("event not spooled status=503 reason=\"%s\" "
			  "remote_addr=%s",
			  r->spool_err, addr);
	else if (o != OUT_OK && o != OUT_CONFIG)
		log_warn("rejected status=%d reason=\"%s\" remote_addr=%s",
			 http[o].status, outcome_text(o), addr);
}

int receive(struct app *a, const struct req_io *io)
{
	struct request r;
	memset(&r, 0, sizeof r);
	r.app = a;
	r.io = io;
	form_init(&r.query);
	form_init(&r.body);
	enum outcome o = decide(&r);
	report(&r, o);
	int status = answer(&r, o);
	free(r.qbuf);
	free(r.bbuf);
	return status;
}
