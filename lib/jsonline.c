#include "jsonline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsoncheck.h"

/* The offset of the object's closing '}' (the line is valid). */
static size_t closing_brace(const char *line, size_t len)
{
	size_t i = len;
	while (i > 0 && line[i - 1] != '}')
		i--;
	return i - 1;
}

char *jsonline_append(const char *line, size_t len, const char *members,
		      size_t mlen, size_t *outlen)
{
	size_t count;
	struct jsoncheck_span first;
	if (len == 0 || line[len - 1] != '\n' ||
	    !jsoncheck_members(line, len - 1, &first, 1, &count))
		return NULL;
	size_t brace = closing_brace(line, len);
	size_t comma = count > 0 ? 1 : 0;
	size_t n = brace + comma + mlen + (len - brace);
	char *out = malloc(n);
	if (out == NULL)
		return NULL;
	memcpy(out, line, brace);
	if (comma)
		out[brace] = ',';
	memcpy(out + brace + comma, members, mlen);
	memcpy(out + brace + comma + mlen, line + brace, len - brace);
	*outlen = n;
	return out;
}

/* 1 when the member at span is one of keys. */
static int named(const char *line, const struct jsoncheck_span *span,
		 const char *const *keys, size_t nkeys)
{
	const char *k = line + span->key + 1;
	for (size_t i = 0; i < nkeys; i++) {
		size_t n = strlen(keys[i]);
		if (strncmp(k, keys[i], n) == 0 && k[n] == '"')
			return 1;
	}
	return 0;
}

/* The offset of the ',' between two members (blanks around it). */
static size_t comma_between(const char *line, size_t from, size_t to)
{
	const char *c = memchr(line + from, ',', to - from);
	return (size_t)(c - line);
}

char *jsonline_drop(const char *line, size_t len, const char *const *keys,
		    size_t nkeys, size_t *outlen)
{
	size_t count = 0;
	if (len == 0 || line[len - 1] != '\n' ||
	    !jsoncheck_members(line, len - 1, NULL, 0, &count))
		return NULL;
	struct jsoncheck_span *sp =
	    malloc((count > 0 ? count : 1) * sizeof *sp);
	char *out = malloc(len);
	if (sp == NULL || out == NULL) {
		free(sp);
		free(out);
		return NULL;
	}
	jsoncheck_members(line, len - 1, sp, count, &count);
	/*
	 * Cut each dropped member with one separator, so that what stays
	 * (blanks included) is byte for byte what was there: after a kept
	 * member, cut ",member" from the comma on; before any kept one,
	 * cut "member," up to the next member's key.  Appending members
	 * and dropping them again thus gives back the original line.
	 */
	size_t n = 0;
	size_t from = 0;
	int kept = 0;
	for (size_t i = 0; i < count; i++) {
		size_t cut;
		size_t to;
		if (!named(line, &sp[i], keys, nkeys)) {
			kept = 1;
			continue;
		}
		if (kept) {
			cut = comma_between(line, sp[i - 1].end, sp[i].key);
			to = sp[i].end;
		} else {
			cut = sp[i].key;
			to = i + 1 < count ? sp[i + 1].key : sp[i].end;
		}
		memcpy(out + n, line + from, cut - from);
		n += cut - from;
		from = to;
	}
	memcpy(out + n, line + from, len - from);
	n += len - from;
	free(sp);
	*outlen = n;
	return out;
}

int jsonline_quote(char *buf, size_t cap, size_t *used, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = *used;
	if (n >= cap)
		return -1;
	buf[n++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0';
	     p++) {
		char esc = *p == '"'	? '"'
			   : *p == '\\' ? '\\'
			   : *p == '\n' ? 'n'
			   : *p == '\t' ? 't'
			   : *p == '\r' ? 'r'
					: 0;
		size_t need = esc != 0 ? 2 : *p < 0x20 || *p == 0x7f ? 6 : 1;
		if (cap - n < need + 1)
			return -1;
		if (esc != 0) {
			buf[n++] = '\\';
			buf[n++] = esc;
		} else if (need == 6) {
			memcpy(buf + n, "\\u00", 4);
			buf[n + 4] = hex[*p >> 4];
			buf[n + 5] = hex[*p & 15];
			n += 6;
		} else {
			buf[n++] = (char)*p;
		}
	}
	if (cap - n < 1)
		return -1;
	buf[n++] = '"';
	*used = n;
	return 0;
}
