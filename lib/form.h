/*
 * form.h - application/x-www-form-urlencoded decoding (podio-hook(1),
 * Answers).
 *
 * Fields are split on '&', each at its first '='.  '+' decodes to a space,
 * then %XX (hex, either case).  A field without '=' is a key with an empty
 * value; empty fields ("a=1&&b=2", a trailing '&') are skipped; a field
 * that starts with '=' has an empty key and is refused.  Decoded keys and
 * values must be NUL-free, valid UTF-8.
 *
 * Decoding is in place: no allocation.  A struct form only points into the
 * buffers it was parsed from, so those outlive it.
 */
#ifndef PODIO_FORM_H
#define PODIO_FORM_H

#include <stddef.h>

#include "outcome.h"

/*
 * Podio sends at most a dozen parameters; 64 leaves room for those a user
 * adds to the hook URL while bounding the work (duplicate checks are
 * quadratic) and the stack a hostile request can claim.
 */
#define FORM_MAX_FIELDS 64

struct form_field {
	const char *key; /* NUL-terminated; key_len == strlen(key) */
	size_t key_len;
	const char *val; /* NUL-terminated; val_len == strlen(val) */
	size_t val_len;
};

struct form {
	size_t n;
	struct form_field f[FORM_MAX_FIELDS];
};

/* Sets form->n to 0. */
void form_init(struct form *form);

/*
 * Decodes buf[0..len) in place and appends its fields to form.  buf must
 * have room for len + 1 bytes (each key and value is NUL-terminated where it
 * ends).  A key that occurs twice within this one buffer is OUT_DUP_KEY;
 * more than FORM_MAX_FIELDS fields in form is OUT_TOO_MANY.  Other errors:
 * OUT_BAD_ESCAPE, OUT_BAD_BYTES, OUT_EMPTY_KEY.  On error, the fields
 * decoded before the bad one stay in form (so a caller may still find a
 * secret in them); the buffer's remainder is unspecified.
 */
enum outcome form_parse(struct form *form, char *buf, size_t len);

/*
 * dst = query's fields in order, then body's fields that query lacks.  A
 * key in both with the same value is kept once, at its query position; with
 * another value it is OUT_CONFLICT.  More than FORM_MAX_FIELDS merged
 * fields is OUT_TOO_MANY.  dst must not alias query or body.
 */
enum outcome form_merge(struct form *dst, const struct form *query,
			const struct form *body);

/* The field named key (NUL-terminated), or NULL. */
const struct form_field *form_get(const struct form *form, const char *key);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
int utf8_valid(const unsigned char *s, size_t n);

/*
 * Makes the NUL-terminated s one line of valid UTF-8 in place, for text
 * from outside (an API's error page) that goes into logs and the spool:
 * a byte that does not belong to a valid sequence (a cut one included)
 * becomes '?', a control character a space.  The length is unchanged.
 */
void utf8_scrub(char *s);

#endif
