#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* One line must fit one write(2) so concurrent processes do not interleave. */
#define LOG_LINE_MAX 2048

static enum log_level threshold = LOG_INFO;
static log_sink_fn sink;

static const char *const names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
	threshold = level;
}

enum log_level log_get_level(void)
{
	return threshold;
}

void log_set_sink(log_sink_fn fn)
{
	sink = fn;
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

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	int saved = errno;
	if (level > threshold)
		return;
	int head =
	    snprintf(line, sizeof line, "podio-hook[%ld]: %s: ", (long)getpid(),
		     names[level]);
	if (head < 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int body = vsnprintf(line + head, sizeof line - (size_t)head, fmt, ap);
	va_end(ap);
	size_t len = (size_t)head;
	if (body > 0)
		len += (size_t)body;
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	/* Keep it one line whatever the message holds. */
	for (size_t i = (size_t)head; i < len; i++) {
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	}
	line[len++] = '\n';
	line[len] = '\0';
	(sink != NULL ? sink : stderr_sink)(line, len);
	errno = saved;
}
