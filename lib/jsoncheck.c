#include "jsoncheck.h"

#include <string.h>

#include "form.h"

struct cur {
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

static int hex4(const unsigned char *p)
{
	for (int i = 0; i < 4; i++) {
		unsigned char h = p[i];
		if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
		      (h >= 'A' && h <= 'F')))
			return 0;
	}
	return 1;
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
			if (c->end - c->p < 4 || !hex4(c->p))
				return 0;
			c->p += 4;
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

static int number(struct cur *c)
{
	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (c->p < c->end && *c->p == '0')
		c->p++;
	else if (!digits(c))
		return 0;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (!digits(c))
			return 0;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!digits(c))
			return 0;
	}
	return 1;
}

static int literal(struct cur *c, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return 0;
	c->p += n;
	return 1;
}

/* An object or array after its opening bracket. */
static int members(struct cur *c, int depth, int object)
{
	unsigned char close = object ? '}' : ']';
	blanks(c);
	if (c->p < c->end && *c->p == close) {
		c->p++;
		return 1;
	}
	for (;;) {
		if (object) {
			if (!string(c))
				return 0;
			blanks(c);
			if (c->p >= c->end || *c->p++ != ':')
				return 0;
		}
		if (!value(c, depth + 1))
			return 0;
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
		return members(c, depth, 1);
	case '[':
		c->p++;
		return members(c, depth, 0);
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

int jsoncheck_object(const char *s, size_t n)
{
	struct cur c = {(const unsigned char *)s, (const unsigned char *)s + n};
	if (!utf8_valid(c.p, n))
		return 0;
	blanks(&c);
	if (c.p >= c.end || *c.p != '{' || !value(&c, 0))
		return 0;
	blanks(&c);
	return c.p == c.end;
}
