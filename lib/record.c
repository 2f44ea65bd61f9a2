#include "record.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Writes v as exactly width decimal digits, zero-padded; returns the end. */
static char *digits(char *p, unsigned long long v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + width;
}

int record_stamp(struct stamp *st)
{
	/* Shared by a FastCGI process's threads: ids stay unique. */
	static _Atomic unsigned long long last_us;
	static atomic_long pid;
	struct timespec ts;
	struct tm tm;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 ||
	    gmtime_r(&ts.tv_sec, &tm) == NULL || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 0)
		return -1;
	long me = atomic_load_explicit(&pid, memory_order_relaxed);
	if (me == 0) {
		me = (long)getpid();
		atomic_store_explicit(&pid, me, memory_order_relaxed);
	}
	unsigned long long now = (unsigned long long)ts.tv_sec * 1000000ULL +
				 (unsigned long long)ts.tv_nsec / 1000ULL;
	unsigned long long last = atomic_load(&last_us);
	unsigned long long us;
	do
		us = now > last ? now : last + 1;
	while (!atomic_compare_exchange_weak(&last_us, &last, us));

	/* 2026-11-27T05:48:19.123456Z, without strftime's locale work. */
	char *p = st->received;
	p = digits(p, (unsigned)tm.tm_year + 1900, 4);
	*p++ = '-';
	p = digits(p, (unsigned)tm.tm_mon + 1, 2);
	*p++ = '-';
	p = digits(p, (unsigned)tm.tm_mday, 2);
	*p++ = 'T';
	p = digits(p, (unsigned)tm.tm_hour, 2);
	*p++ = ':';
	p = digits(p, (unsigned)tm.tm_min, 2);
	*p++ = ':';
	p = digits(p, (unsigned)tm.tm_sec, 2);
	*p++ = '.';
	p = digits(p, (unsigned long long)ts.tv_nsec / 1000u % 1000000u, 6);
	*p++ = 'Z';
	*p = '\0';

	/* <µs, 16 digits>-<pid> */
	p = digits(st->id, us, 16);
	*p++ = '-';
	char rev[24];
	int n = 0;
	for (unsigned long v = (unsigned long)me; n == 0 || v > 0; v /= 10)
		rev[n++] = (char)('0' + v % 10);
	while (n > 0)
		*p++ = rev[--n];
	*p = '\0';
	return 0;
}

/*
 * The line is written directly rather than through a jansson tree: this
 * is the receiver's hot path, and the input is already known to be
 * NUL-free UTF-8, so only quoting remains.  The bytes are those jansson's
 * compact dump gives (tests/unit/record_test.c compares and decodes them).
 */

/* A byte escaped as \u00XX takes 6 bytes: the bound for a quoted string. */
static size_t quoted_max(size_t n)
{
	return 2 + 6 * n;
}

static char *quoted(char *p, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	*p++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			*p++ = (char)c;
			continue;
		}
		*p++ = '\\';
		switch (c) {
		case '"':
		case '\\':
			*p++ = (char)c;
			break;
		case '\b':
			*p++ = 'b';
			break;
		case '\f':
			*p++ = 'f';
			break;
		case '\n':
			*p++ = 'n';
			break;
		case '\r':
			*p++ = 'r';
			break;
		case '\t':
			*p++ = 't';
			break;
		default:
			memcpy(p, "u00", 3);
			p[3] = hex[c >> 4];
			p[4] = hex[c & 15];
			p += 5;
		}
	}
	*p++ = '"';
	return p;
}

static char *raw(char *p, const char *s)
{
	size_t n = strlen(s);
	memcpy(p, s, n);
	return p + n;
}

/* ,"key":"value" (the comma omitted for the first member). */
static char *member(char *p, int first, const char *key, const char *val,
		    size_t vlen)
{
	if (!first)
		*p++ = ',';
	p = quoted(p, key, strlen(key));
	*p++ = ':';
	return quoted(p, val, vlen);
}

static int skipped(const struct form_field *f)
{
	return strcmp(f->key, RECORD_SECRET_KEY) == 0;
}

char *record_encode(const struct record *r, size_t *len)
{
	const char *detail = r->verify_detail != NULL ? r->verify_detail : "";
	/* Keys and punctuation fit in 128 bytes; values are bounded above. */
	size_t max = 128 + quoted_max(strlen(r->stamp->id)) +
		     quoted_max(strlen(r->stamp->received)) +
		     quoted_max(strlen(r->type)) +
		     quoted_max(strlen(r->remote_addr));
	for (size_t i = 0; i < r->params->n; i++) {
		const struct form_field *f = &r->params->f[i];
		max += 2 + quoted_max(f->key_len) + quoted_max(f->val_len);
	}
	if (r->verify_status != NULL)
		max += 64 + quoted_max(strlen(r->verify_status)) +
		       quoted_max(strlen(detail));
	char *line = malloc(max);
	if (line == NULL)
		return NULL;

	char *p = line;
	*p++ = '{';
	p = member(p, 1, "id", r->stamp->id, strlen(r->stamp->id));
	p = member(p, 0, "received", r->stamp->received,
		   strlen(r->stamp->received));
	p = member(p, 0, "type", r->type, strlen(r->type));
	p = member(p, 0, "remote_addr", r->remote_addr, strlen(r->remote_addr));
	p = raw(p, ",\"params\":{");
	int first = 1;
	for (size_t i = 0; i < r->params->n; i++) {
		const struct form_field *f = &r->params->f[i];
		if (skipped(f))
			continue;
		if (!first)
			*p++ = ',';
		first = 0;
		p = quoted(p, f->key, f->key_len);
		*p++ = ':';
		p = quoted(p, f->val, f->val_len);
	}
	*p++ = '}';
	if (r->verify_status != NULL) {
		p = raw(p, ",\"verification\":{");
		p = member(p, 1, "status", r->verify_status,
			   strlen(r->verify_status));
		p = member(p, 0, "detail", detail, strlen(detail));
		*p++ = '}';
	}
	*p++ = '}';
	*p++ = '\n';
	*len = (size_t)(p - line);
	return line;
}
