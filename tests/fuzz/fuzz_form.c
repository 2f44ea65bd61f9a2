/*
 * fuzz_form.c - form_parse, form_merge and utf8_valid on arbitrary bytes.
 *
 * Each result is compared with a small reference decoder written from the
 * SPEC's words (section 4), not from lib/form.c:
 *   split on '&', skip empty fields, split each at its first '=', '+' is a
 *   space, then %XX; NUL or invalid UTF-8 after decoding, an empty key, a
 *   key twice, more than FORM_MAX_FIELDS fields: refused.
 * On success the fields must match byte for byte; on failure the fields
 * kept must be exactly those before the bad one (form.h promises that).
 *
 * Input: the whole input is one form; it is also split at its first '#'
 * (never part of a real query string or body) into a query and a body that
 * are parsed separately and merged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "fuzz_util.h"

struct ref_field {
	char *key;
	size_t klen;
	char *val;
	size_t vlen;
};

struct ref_form {
	size_t n;
	struct ref_field f[FORM_MAX_FIELDS];
	int ok;
};

static int hexdigit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes in[0..n) into a fresh buffer; NULL when the SPEC refuses it. */
static char *ref_decode(const char *in, size_t n, size_t *out_len)
{
	char *out = malloc(n + 1);
	size_t w = 0;
	CHECK(out != NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)in[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (i + 2 >= n) {
				free(out);
				return NULL;
			}
			int h = hexdigit((unsigned char)in[i + 1]);
			int l = hexdigit((unsigned char)in[i + 2]);
			if (h < 0 || l < 0) {
				free(out);
				return NULL;
			}
			c = h * 16 + l;
			i += 2;
		}
		out[w++] = (char)c;
	}
	out[w] = '\0';
	if (memchr(out, '\0', w) != NULL ||
	    !fz_utf8_ok((const unsigned char *)out, w)) {
		free(out);
		return NULL;
	}
	*out_len = w;
	return out;
}

static void ref_free(struct ref_form *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->f[i].key);
		free(r->f[i].val);
	}
	r->n = 0;
}

static void ref_parse(struct ref_form *r, const char *s, size_t len)
{
	size_t start = 0;
	r->n = 0;
	r->ok = 1;
	while (start <= len && r->ok) {
		size_t end = start;
		while (end < len && s[end] != '&')
			end++;
		if (end > start) {
			const char *fld = s + start;
			size_t flen = end - start;
			const char *eq = memchr(fld, '=', flen);
			size_t kraw = eq != NULL ? (size_t)(eq - fld) : flen;
			struct ref_field f = {0};
			if (kraw == 0 || r->n == FORM_MAX_FIELDS) {
				r->ok = 0;
				break;
			}
			f.key = ref_decode(fld, kraw, &f.klen);
			if (f.key != NULL && eq != NULL)
				f.val = ref_decode(eq + 1, flen - kraw - 1,
						   &f.vlen);
			else if (f.key != NULL)
				f.val = ref_decode("", 0, &f.vlen);
			for (size_t i = 0; f.val != NULL && i < r->n; i++) {
				if (r->f[i].klen == f.klen &&
				    memcmp(r->f[i].key, f.key, f.klen) == 0) {
					free(f.val);
					f.val = NULL;
				}
			}
			if (f.key == NULL || f.val == NULL) {
				free(f.key);
				free(f.val);
				r->ok = 0;
				break;
			}
			r->f[r->n++] = f;
		}
		start = end + 1;
	}
}

/* The invariants form.h states for every field of a parsed form. */
static void check_fields(const struct form *f, size_t from)
{
	CHECK(f->n <= FORM_MAX_FIELDS, "n=%zu", f->n);
	for (size_t i = from; i < f->n; i++) {
		const struct form_field *x = &f->f[i];
		CHECK(x->key != NULL && x->val != NULL, "field %zu", i);
		CHECK(x->key_len > 0, "field %zu has an empty key", i);
		CHECK(x->key[x->key_len] == '\0', "key %zu unterminated", i);
		CHECK(x->val[x->val_len] == '\0', "val %zu unterminated", i);
		CHECK(strlen(x->key) == x->key_len, "NUL inside key %zu", i);
		CHECK(strlen(x->val) == x->val_len, "NUL inside val %zu", i);
		CHECK(fz_utf8_ok((const unsigned char *)x->key, x->key_len),
		      "key %zu not UTF-8", i);
		CHECK(fz_utf8_ok((const unsigned char *)x->val, x->val_len),
		      "val %zu not UTF-8", i);
		for (size_t k = from; k < i; k++) {
			CHECK(!(f->f[k].key_len == x->key_len &&
				memcmp(f->f[k].key, x->key, x->key_len) == 0),
			      "duplicate key at %zu and %zu", k, i);
		}
		CHECK(form_get(f, x->key) != NULL, "form_get misses %zu", i);
	}
}

static void compare(const struct form *f, const struct ref_form *r)
{
	CHECK(f->n == r->n, "form has %zu fields, reference %zu", f->n, r->n);
	for (size_t i = 0; i < f->n; i++) {
		const struct form_field *x = &f->f[i];
		CHECK(x->key_len == r->f[i].klen &&
			  memcmp(x->key, r->f[i].key, x->key_len) == 0,
		      "key %zu differs from the reference", i);
		CHECK(x->val_len == r->f[i].vlen &&
			  memcmp(x->val, r->f[i].val, x->val_len) == 0,
		      "value %zu differs from the reference", i);
	}
}

/* Parses s[0..n) into *f (buffer kept in *buf) and checks it. */
static enum outcome parse_checked(struct form *f, char **buf, const char *s,
				  size_t n)
{
	struct ref_form r;
	*buf = malloc(n + 1);
	CHECK(*buf != NULL, "out of memory");
	memcpy(*buf, s, n);
	(*buf)[n] = '\x7f'; /* form_parse may only write buf[len] as a NUL */
	form_init(f);
	enum outcome rc = form_parse(f, *buf, n);
	ref_parse(&r, s, n);
	check_fields(f, 0);
	CHECK((rc == OUT_OK) == (r.ok != 0), "form_parse says %d, ref %s",
	      (int)rc, r.ok ? "ok" : "refused");
	CHECK(rc == OUT_OK || rc == OUT_BAD_ESCAPE || rc == OUT_BAD_BYTES ||
		  rc == OUT_EMPTY_KEY || rc == OUT_DUP_KEY ||
		  rc == OUT_TOO_MANY,
	      "unexpected outcome %d", (int)rc);
	compare(f, &r);
	ref_free(&r);
	return rc;
}

static int same_key(const struct form_field *a, const struct form_field *b)
{
	return a->key_len == b->key_len &&
	       memcmp(a->key, b->key, a->key_len) == 0;
}

/* form.h's merge rules, restated. */
static void check_merge(const struct form *q, const struct form *b)
{
	struct form m;
	enum outcome rc = form_merge(&m, q, b);
	int conflict = 0;
	size_t want = q->n;
	for (size_t i = 0; i < b->n; i++) {
		const struct form_field *in_q = NULL;
		for (size_t k = 0; k < q->n; k++) {
			if (same_key(&q->f[k], &b->f[i]))
				in_q = &q->f[k];
		}
		if (in_q == NULL)
			want++;
		else if (in_q->val_len != b->f[i].val_len ||
			 memcmp(in_q->val, b->f[i].val, in_q->val_len) != 0)
			conflict = 1;
	}
	if (rc == OUT_CONFLICT) {
		CHECK(conflict, "OUT_CONFLICT without a conflicting key");
		return;
	}
	if (rc == OUT_TOO_MANY) {
		CHECK(want > FORM_MAX_FIELDS, "OUT_TOO_MANY with %zu", want);
		return;
	}
	CHECK(rc == OUT_OK, "form_merge: unexpected outcome %d", (int)rc);
	CHECK(!conflict, "a conflicting key was merged");
	CHECK(want <= FORM_MAX_FIELDS && m.n == want, "merged %zu, want %zu",
	      m.n, want);
	check_fields(&m, 0);
	size_t w = 0;
	for (size_t i = 0; i < q->n; i++, w++) {
		CHECK(m.f[w].key == q->f[i].key && m.f[w].val == q->f[i].val,
		      "query field %zu not kept in place", i);
	}
	for (size_t i = 0; i < b->n; i++) {
		if (form_get(q, b->f[i].key) != NULL)
			continue;
		CHECK(m.f[w].key == b->f[i].key && m.f[w].val == b->f[i].val,
		      "body field %zu not appended in order", i);
		w++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct form whole;
	struct form q;
	struct form b;
	char *wbuf;
	char *qbuf;
	char *bbuf;

	CHECK(utf8_valid(data, size) == fz_utf8_ok(data, size),
	      "utf8_valid disagrees with the reference");
	parse_checked(&whole, &wbuf, s, size);
	free(wbuf);

	const char *hash = memchr(s, '#', size);
	size_t qlen = hash != NULL ? (size_t)(hash - s) : 0;
	const char *body = hash != NULL ? hash + 1 : s;
	size_t blen = size - (size_t)(body - s);
	enum outcome qrc = parse_checked(&q, &qbuf, s, qlen);
	enum outcome brc = parse_checked(&b, &bbuf, body, blen);
	if (qrc == OUT_OK && brc == OUT_OK)
		check_merge(&q, &b);
	free(qbuf);
	free(bbuf);
	return 0;
}
