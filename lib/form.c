#include "form.h"

#include <string.h>

void form_init(struct form *form)
{
	form->n = 0;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t more;
		unsigned long cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			cp = c & 0x07;
		} else {
			return 0; /* continuation byte, 0xc0/0xc1, or > 0xf4 */
		}
		if (n - i <= more)
			return 0;
		for (size_t k = 1; k <= more; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += more + 1;
	}
	return 1;
}

/* The length of the valid UTF-8 sequence at s[0..n), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80 ? 1 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	return len <= n && utf8_valid(s, len) ? len : 0;
}

void utf8_scrub(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t n = strlen(s);
	size_t i = 0;
	while (i < n) {
		size_t len = utf8_seq(p + i, n - i);
		if (len == 0) {
			p[i++] = '?';
			continue;
		}
		if (len == 1 && (p[i] < 0x20 || p[i] == 0x7f))
			p[i] = ' ';
		i += len;
	}
}

/*
 * Decodes s[0..n) in place; returns the decoded length via *out_len and
 * NUL-terminates the result (which is never longer than the input, so the
 * terminator lands at most on the delimiter that ended the input).
 */
static enum outcome decode(char *s, size_t n, size_t *out_len)
{
	size_t w = 0;
	for (size_t r = 0; r < n; r++) {
		unsigned char c = (unsigned char)s[r];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (n - r < 3)
				return OUT_BAD_ESCAPE;
			int hi = hexval((unsigned char)s[r + 1]);
			int lo = hexval((unsigned char)s[r + 2]);
			if (hi < 0 || lo < 0)
				return OUT_BAD_ESCAPE;
			c = (unsigned char)(hi << 4 | lo);
			r += 2;
		}
		if (c == '\0')
			return OUT_BAD_BYTES;
		s[w++] = (char)c;
	}
	if (!utf8_valid((const unsigned char *)s, w))
		return OUT_BAD_BYTES;
	s[w] = '\0';
	*out_len = w;
	return OUT_OK;
}

static int same_key(const struct form_field *a, const struct form_field *b)
{
	return a->key_len == b->key_len &&
	       memcmp(a->key, b->key, a->key_len) == 0;
}

static enum outcome parse_field(struct form *form, size_t first, char *s,
				size_t n)
{
	static char empty[1];
	char *eq = memchr(s, '=', n);
	size_t klen_raw = eq != NULL ? (size_t)(eq - s) : n;
	struct form_field fld;
	enum outcome rc;

	if (klen_raw == 0)
		return OUT_EMPTY_KEY;
	if (form->n >= FORM_MAX_FIELDS)
		return OUT_TOO_MANY;
	rc = decode(s, klen_raw, &fld.key_len);
	if (rc != OUT_OK)
		return rc;
	fld.key = s;
	if (eq != NULL) {
		rc = decode(eq + 1, n - klen_raw - 1, &fld.val_len);
		if (rc != OUT_OK)
			return rc;
		fld.val = eq + 1;
	} else {
		fld.val = empty;
		fld.val_len = 0;
	}
	for (size_t i = first; i < form->n; i++) {
		if (same_key(&form->f[i], &fld))
			return OUT_DUP_KEY;
	}
	form->f[form->n++] = fld;
	return OUT_OK;
}

enum outcome form_parse(struct form *form, char *buf, size_t len)
{
	size_t first = form->n;
	size_t start = 0;
	while (start < len) {
		char *amp = memchr(buf + start, '&', len - start);
		size_t end = amp != NULL ? (size_t)(amp - buf) : len;
		if (end > start) {
			enum outcome rc =
			    parse_field(form, first, buf + start, end - start);
			if (rc != OUT_OK)
				return rc;
		}
		start = end + 1;
	}
	return OUT_OK;
}

const struct form_field *form_get(const struct form *form, const char *key)
{
	size_t klen = strlen(key);
	for (size_t i = 0; i < form->n; i++) {
		const struct form_field *f = &form->f[i];
		if (f->key_len == klen && memcmp(f->key, key, klen) == 0)
			return f;
	}
	return NULL;
}

enum outcome form_merge(struct form *dst, const struct form *query,
			const struct form *body)
{
	*dst = *query;
	for (size_t i = 0; i < body->n; i++) {
		const struct form_field *b = &body->f[i];
		const struct form_field *q = NULL;
		for (size_t k = 0; k < query->n; k++) {
			if (same_key(&query->f[k], b)) {
				q = &query->f[k];
				break;
			}
		}
		if (q != NULL) {
			if (q->val_len != b->val_len ||
			    memcmp(q->val, b->val, b->val_len) != 0)
				return OUT_CONFLICT;
			continue;
		}
		if (dst->n >= FORM_MAX_FIELDS)
			return OUT_TOO_MANY;
		dst->f[dst->n++] = *b;
	}
	return OUT_OK;
}
