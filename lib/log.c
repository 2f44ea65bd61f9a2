#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* One line must fit one write(2) so concurrent processes do not interleave. */
#define LOG_LINE_MAX 2048

/*
 * Read by every thread of a FastCGI process, set when a config is
 * (re)loaded: atomics, so a reload never tears them.  A line already
 * being formatted may still use the old level; that is harmless.
 */
static atomic_int threshold = LOG_INFO;
static _Atomic(log_sink_fn) sink;

static const char *const names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&threshold, (int)level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&threshold,
						    memory_order_relaxed);
}

void log_set_sink(log_sink_fn fn)
{
	atomic_store(&sink, fn);
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void stderr_sink(const char *line, size_t len)
{
	/* A log line that cannot be written has nowhere else to go. */
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, line, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		line += n;
		len -= (size_t)n;
	}
}

/*
 * Appends the message m[0..n) to out[0..*len) without a control byte: '\n'
 * and '\r' become spaces (one line whatever the message holds), any other
 * C0 byte, DEL and the UTF-8 encoding of a C1 control (U+0080..U+009F)
 * become "\xHH" per byte.  Request values (hook ids, types) reach log
 * lines; a sender's ESC must not reach a terminal reading the log.  Stops
 * before out[cap], never in the middle of an escape.
 */
static size_t escape(char *out, size_t len, size_t cap, const char *m, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)m[i];
		int c1 = b == 0xc2 && i + 1 < n &&
			 (unsigned char)m[i + 1] >= 0x80 &&
			 (unsigned char)m[i + 1] <= 0x9f;
		size_t bytes = c1 ? 2 : 1;
		if (b == '\n' || b == '\r') {
			if (len + 1 > cap)
				break;
			out[len++] = ' ';
		} else if (b < 0x20 || b == 0x7f || c1) {
			if (len + 4 * bytes > cap)
				break;
			for (size_t k = 0; k < bytes; k++) {
				unsigned char e = (unsigned char)m[i + k];
				out[len++] = '\\';
				out[len++] = 'x';
				out[len++] = hex[e >> 4];
				out[len++] = hex[e & 0xf];
			}
			i += bytes - 1;
		} else {
			if (len + 1 > cap)
				break;
			out[len++] = (char)b;
		}
	}
	return len;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	char msg[LOG_LINE_MAX];
	int saved = errno;
	if (level > log_get_level())
		return;
	int head =
	    snprintf(line, sizeof line, "podio-hook[%ld]: %s: ", (long)getpid(),
		     names[level]);
	if (head < 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int body = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	size_t n = body > 0 ? (size_t)body : 0;
	if (n > sizeof msg - 1)
		n = sizeof msg - 1;
	/* Room for the '\n' and the '\0'. */
	size_t len = escape(line, (size_t)head, sizeof line - 2, msg, n);
	line[len++] = '\n';
	line[len] = '\0';
	log_sink_fn fn = atomic_load(&sink);
	(fn != NULL ? fn : stderr_sink)(line, len);
	errno = saved;
}
