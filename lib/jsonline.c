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

char *jsonline_drop(const char *line, size_t len, const char *const *keys,
		    size_t nkeys, size_t *outlen)
{
	struct jsoncheck_span *sp;
	size_t count;
	sp = malloc(JSONLINE_MEMBERS_MAX * sizeof *sp);
	char *out = malloc(len);
	if (sp == NULL || out == NULL || len == 0 || line[len - 1] != '\n' ||
	    !jsoncheck_members(line, len - 1, sp, JSONLINE_MEMBERS_MAX,
			       &count) ||
	    count > JSONLINE_MEMBERS_MAX) {
		free(sp);
		free(out);
		return NULL;
	}
	/*
	 * Copy what lies between kept members: from the start to the first
	 * kept member's key, then ",member" for each further kept one, then
	 * from the last member's end to the end of the line.
	 */
	size_t n = 0;
	size_t kept = 0;
	size_t head = count > 0 ? sp[0].key : closing_brace(line, len);
	memcpy(out, line, head);
	n = head;
	for (size_t i = 0; i < count; i++) {
		if (named(line, &sp[i], keys, nkeys))
			continue;
		if (kept++ > 0)
			out[n++] = ',';
		memcpy(out + n, line + sp[i].key, sp[i].end - sp[i].key);
		n += sp[i].end - sp[i].key;
	}
	size_t tail = count > 0 ? sp[count - 1].end : head;
	memcpy(out + n, line + tail, len - tail);
	n += len - tail;
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
