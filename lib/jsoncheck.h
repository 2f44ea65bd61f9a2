/*
 * jsoncheck.h - the one rule for what a valid spool line is: one JSON
 * object, checked without building it.
 *
 * Every consumer path (print, --exec, --batch, dead letters, --retry-
 * failed, status) decides with jsoncheck_object whether a line is handed
 * over or quarantined.  Parsing each line into a jansson tree would cost
 * most of a print run; this validator reads the bytes once and allocates
 * nothing.  It is never more lenient than jansson (json_loadb with flags
 * 0): a line it accepts always parses there, so a path that needs a tree
 * never meets a line the rule let through and jansson refuses.  That
 * means, beyond RFC 8259: no \u0000, surrogate escapes only as a valid
 * pair, integers within long long, reals that do not overflow a double
 * (and at most 256 characters long).  tests/fuzz/fuzz_jsoncheck.c holds
 * it to that against jansson.
 */
#ifndef PODIO_JSONCHECK_H
#define PODIO_JSONCHECK_H

#include <stddef.h>

/* Nesting deeper than this is refused (spool lines nest 3 deep). */
#define JSONCHECK_DEPTH_MAX 64

/*
 * 1 when s[0..n) is exactly one JSON object (RFC 8259; surrounding blanks
 * allowed), with valid UTF-8 throughout; else 0.
 */
int jsoncheck_object(const char *s, size_t n);

/* Where one top-level member of an object lies in the input. */
struct jsoncheck_span {
	size_t key; /* offset of the key's opening quote */
	size_t end; /* offset just past the member's value */
};

/*
 * jsoncheck_object, also giving the spans of the object's top-level
 * members in order: the first max go to spans, *count says how many
 * there are (possibly more than max; spans may be NULL with max 0 to
 * count them only).
 */
int jsoncheck_members(const char *s, size_t n, struct jsoncheck_span *spans,
		      size_t max, size_t *count);

#endif
