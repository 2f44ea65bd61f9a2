/*
 * record.h - one spool line per event (podio-hook(1), THE SPOOL).
 *
 * {"id":…,"received":…,"type":…,"remote_addr":…,"params":{…}[,"verification":{"status":…,"detail":…}]}\n
 *
 * Keys and values are the decoded bytes, already checked to be NUL-free
 * UTF-8 (form.h), so every line is valid JSON that round-trips exactly.
 */
#ifndef PODIO_RECORD_H
#define PODIO_RECORD_H

#include <stddef.h>

#include "form.h"

/* 16 digits of microseconds, '-', a pid: fits with room to spare. */
#define RECORD_ID_MAX 40
/* 2026-11-27T05:48:19.123456Z */
#define RECORD_TIME_MAX 32

struct stamp {
	char id[RECORD_ID_MAX];
	char received[RECORD_TIME_MAX];
};

/*
 * Fills st from the real-time clock.  id is "<µs since epoch, 16 digits>-
 * <pid>": unique in a spool shared by processes of one host, and, within
 * one process, strictly increasing as a plain string even if the clock steps
 * back.  received is RFC 3339 UTC with microseconds.  Returns 0, or -1 if
 * the clock cannot be read.  Thread-safe: threads of one process never get
 * the same id.
 */
int record_stamp(struct stamp *st);

struct record {
	const struct stamp *stamp;
	const char *type;
	const char *remote_addr;   /* "" when unknown */
	const struct form *params; /* every field but "secret" is written */
	const char *verify_status; /* NULL: no "verification" key */
	const char *verify_detail; /* with verify_status; NULL means "" */
};

/*
 * Encodes r as one compact JSON line ending in '\n'.  Returns a malloc'd
 * buffer (the caller frees it) and its length in *len, or NULL when memory
 * runs out.
 */
char *record_encode(const struct record *r, size_t *len);

/* The key that is never spooled or logged. */
#define RECORD_SECRET_KEY "secret"

#endif
