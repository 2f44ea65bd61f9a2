#include "jsoncheck.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

/* A real number longer than this is refused rather than measured. */
#define REAL_TEXT_MAX 256

struct cur {
	const unsigned char *start;
	const unsigned char *p;
	const unsigned char *end;
};

static int value(struct cur *c, int depth);

static void blanks(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' ||
				 *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* The value of 4 hex digits, or -1. */
static long hex4(const unsigned char *p)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned char h = p[i];
		int d = h >= '0' && h <= '9'   ? h - '0'
			: h >= 'a' && h <= 'f' ? h - 'a' + 10
			: h >= 'A' && h <= 'F' ? h - 'A' + 10
					       : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/*
 * After "\u": 4 hex digits naming a character jansson accepts: not U+0000,
 * and a surrogate only as a high one followed by an escaped low one.
 */
static int unicode_escape(struct cur *c)
{
	if (c->end - c->p < 4)
		return 0;
	long u = hex4(c->p);
	c->p += 4;
	if (u <= 0 || (u >= 0xDC00 && u <= 0xDFFF))
		return 0;
	if (u < 0xD800 || u > 0xDBFF)
		return 1;
	if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u')
		return 0;
	long low = hex4(c->p + 2);
	c->p += 6;
	return low >= 0xDC00 && low <= 0xDFFF;
}

/* A string; UTF-8 was checked for the whole input beforehand. */
static int string(struct cur *c)
{
	if (c->p >= c->end || *c->p != '"')
		return 0;
	c->p++;
	while (c->p < c->end) {
		unsigned char ch = *c->p++;
		if (ch == '"')
			return 1;
		if (ch < 0x20)
			return 0;
		if (ch != '\\')
			continue;
		if (c->p >= c->end)
			return 0;
		ch = *c->p++;
		if (ch == 'u') {
			if (!unicode_escape(c))
				return 0;
		} else if (strchr("\"\\/bfnrt", ch) == NULL || ch == '\0') {
			return 0;
		}
	}
	return 0;
}

static int digits(struct cur *c)
{
	const unsigned char *start = c->p;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
		c->p++;
	return c->p > start;
}

/* An integer jansson can hold: within long long. */
static int integer_fits(const unsigned char *p, size_t n)
{
	static const char max[] = "9223372036854775807";
	int neg = p[0] == '-';
	p += neg;
	n -= (size_t)neg;
	if (n != sizeof max - 1)
		return n < sizeof max - 1;
	int c = memcmp(p, max, n);
	/* -9223372036854775808 is the one value past max that fits. */
	return c <= 0 || (neg && memcmp(p, "9223372036854775808", n) == 0);
}

/* A real jansson can hold: strtod does not overflow. */
static int real_fits(const unsigned char *p, size_t n)
{
	char buf[REAL_TEXT_MAX + 1];
	if (n > REAL_TEXT_MAX)
		return 0;
	memcpy(buf, p, n);
	buf[n] = '\0';
	errno = 0;
	double v = strtod(buf, NULL);
	return !(errno == ERANGE && isinf(v));
}

static int number(struct cur *c)
{
	const unsigned char *start = c->p;
	int real = 0;
	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (c->p < c->end && *c->p == '0')
		c->p++;
	else if (!digits(c))
		return 0;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		real = 1;
		if (!digits(c))
			return 0;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		real = 1;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!digits(c))
			return 0;
	}
	size_t n = (size_t)(c->p - start);
	return real ? real_fits(start, n) : integer_fits(start, n);
}

static int literal(struct cur *c, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return 0;
	c->p += n;
	return 1;
}

/*
 * An object or array after its opening bracket.  With count (the top
 * level only), members are counted and the first max spans recorded.
 */
static int members_at(struct cur *c, int depth, int object,
		      struct jsoncheck_span *spans, size_t max, size_t *count)
{
	unsigned char close = object ? '}' : ']';
	blanks(c);
	if (c->p < c->end && *c->p == close) {
		c->p++;
		return 1;
	}
	for (;;) {
		const unsigned char *key = c->p;
		if (object) {
			if (!string(c))
				return 0;
			blanks(c);
			if (c->p >= c->end || *c->p++ != ':')
				return 0;
		}
		if (!value(c, depth + 1))
			return 0;
		if (count != NULL) {
			if (spans != NULL && *count < max) {
				spans[*count].key = (size_t)(key - c->start);
				spans[*count].end = (size_t)(c->p - c->start);
			}
			(*count)++;
		}
		blanks(c);
		if (c->p >= c->end)
			return 0;
		unsigned char ch = *c->p++;
		if (ch == close)
			return 1;
		if (ch != ',')
			return 0;
		blanks(c);
	}
}

static int value(struct cur *c, int depth)
{
	if (depth > JSONCHECK_DEPTH_MAX)
		return 0;
	blanks(c);
	if (c->p >= c->end)
		return 0;
	switch (*c->p) {
	case '{':
		c->p++;
		return members_at(c, depth, 1, NULL, 0, NULL);
	case '[':
		c->p++;
		return members_at(c, depth, 0, NULL, 0, NULL);
	case '"':
		return string(c);
	case 't':
		return literal(c, "true");
	case 'f':
		return literal(c, "false");
	case 'n':
		return literal(c, "null");
	default:
		return number(c);
	}
}

/* The whole input is one object; its members counted when count is set. */
static int object(const char *s, size_t n, struct jsoncheck_span *spans,
		  size_t max, size_t *count)
{
	const unsigned char *u = (const unsigned char *)s;
	struct cur c = {u, u, u + n};
	if (!utf8_valid(c.p, n))
		return 0;
	blanks(&c);
	if (c.p >= c.end || *c.p != '{')
		return 0;
	c.p++;
	if (!members_at(&c, 0, 1, spans, max, count))
		return 0;
	blanks(&c);
	return c.p == c.end;
}

int jsoncheck_object(const char *s, size_t n)
{
	return object(s, n, NULL, 0, NULL);
}

int jsoncheck_members(const char *s, size_t n, struct jsoncheck_span *spans,
		      size_t max, size_t *count)
{
	*count = 0;
	return object(s, n, spans, max, count);
}
