/*
 * log.h - one line per diagnostic, on standard error by default.
 *
 * Format:  podio-hook[PID]: LEVEL: message key=value ...
 * Under CGI and FastCGI standard error is the web server's error log.  The
 * sink is one indirection so tests can capture lines.  Callers never pass
 * secrets, tokens, passwords or verification codes.
 *
 * A line never holds a control byte of the message: '\n' and '\r' become
 * spaces, every other C0 byte, DEL (0x7f) and a UTF-8 C1 control
 * (U+0080..U+009F) are written as "\xHH" per byte, so values that come
 * from a request may be logged as they are.
 *
 * Thread-safe: each line is formatted on the caller's stack and handed to
 * the sink whole (the default sink writes it with one write(2), so lines
 * of threads and processes never interleave); the level and the sink may
 * be changed while other threads log.
 */
#ifndef PODIO_LOG_H
#define PODIO_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* A sink receives one complete line, '\n' included. */
typedef void (*log_sink_fn)(const char *line, size_t len);

/* Lines above `level` are dropped.  Default: LOG_INFO. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* NULL restores the default sink (one write(2) to fd 2 per line). */
void log_set_sink(log_sink_fn sink);

/* Parses "error|warn|info|debug"; returns 0 and sets *out, or -1. */
int log_level_parse(const char *s, enum log_level *out);

/*
 * printf-style; control bytes escaped as above; the line is cut at 2 KiB
 * (never inside an escape) and always ends in its one '\n'.
 */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
