/*
 * jsonline.h - byte-exact edits of a spool line.
 *
 * The receiver writes each line once; consumers add a key (a dead
 * letter's "attempts" and "last_error", a handed-over event's "coalesced"
 * and "fetched") or take one away (--retry-failed) without re-encoding
 * the rest, so an event offered again is the line that was spooled, byte
 * for byte.  Lines passed in must be valid by jsoncheck.h and end in '\n';
 * results are valid and end in '\n' too.
 */
#ifndef PODIO_JSONLINE_H
#define PODIO_JSONLINE_H

#include <stddef.h>

/*
 * The line with members (",key:value" pairs without the leading comma,
 * e.g. "\"attempts\":3") inserted as the object's last members.  Returns
 * a malloc'd line (the caller frees it) with its length in *outlen, or
 * NULL when out of memory or line is not a valid object.
 */
char *jsonline_append(const char *line, size_t len, const char *members,
		      size_t mlen, size_t *outlen);

/*
 * The line without its top-level members named keys[0..nkeys) (the key
 * bytes as written, compared exactly), each taken away with one comma;
 * everything else stays byte for byte, blanks included, so dropping what
 * jsonline_append added gives back the original line.  Any number of
 * members.  Returns a malloc'd line and its length, or NULL when out of
 * memory or line is not a valid object.
 */
char *jsonline_drop(const char *line, size_t len, const char *const *keys,
		    size_t nkeys, size_t *outlen);

/*
 * Appends s as a JSON string (quotes included, control characters and
 * '"' and '\\' escaped, other bytes as they are: s must be UTF-8) to
 * buf[*used..cap).  Returns 0, or -1 when it does not fit.
 */
int jsonline_quote(char *buf, size_t cap, size_t *used, const char *s);

#endif
