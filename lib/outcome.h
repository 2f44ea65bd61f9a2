/*
 * outcome.h - the one list of what can become of a request.
 *
 * lib/ functions return an enum outcome; fcgi/ owns the single table that
 * maps each outcome to an HTTP status (fcgi/answer.c).  lib/ never speaks
 * HTTP.  Order is irrelevant; OUT_OK is 0 so "if (rc != OUT_OK)" reads well.
 */
#ifndef PODIO_OUTCOME_H
#define PODIO_OUTCOME_H

enum outcome {
	OUT_OK = 0,
	OUT_CONFIG,	   /* config missing or invalid */
	OUT_METHOD,	   /* not POST */
	OUT_SECRET,	   /* secret configured and not matched */
	OUT_NO_LENGTH,	   /* no CONTENT_LENGTH */
	OUT_TOO_LARGE,	   /* CONTENT_LENGTH > max_body */
	OUT_MEDIA_TYPE,	   /* not application/x-www-form-urlencoded */
	OUT_BAD_LENGTH,	   /* CONTENT_LENGTH is not a number */
	OUT_SHORT_BODY,	   /* fewer bytes than CONTENT_LENGTH */
	OUT_BAD_ESCAPE,	   /* malformed %XX */
	OUT_BAD_BYTES,	   /* NUL or invalid UTF-8 after decoding */
	OUT_EMPTY_KEY,	   /* a field starting with '=' */
	OUT_DUP_KEY,	   /* a key twice in one source */
	OUT_CONFLICT,	   /* a key in query and body with other values */
	OUT_TOO_MANY,	   /* more than FORM_MAX_FIELDS fields */
	OUT_BAD_TYPE,	   /* type missing or malformed */
	OUT_VERIFY_PARAMS, /* hook.verify without hook_id or code */
	OUT_HOOK_DENIED,   /* allowed_hooks set, hook_id absent or not listed */
	OUT_UNKNOWN_TYPE, /* well-formed unknown type, unknown_types = reject */
	OUT_SPOOL,	  /* not durably spooled */
	OUT_COUNT
};

/* A short human text for logs and one-line answers; never NULL. */
const char *outcome_text(enum outcome o);

#endif
