/*
 * num.h - the one checked number parser.
 *
 * Every number that comes from a user (a command-line option, a config
 * key, a line of a progress file) goes through num_parse: digits only (no
 * sign, no blank, no "0x"), within a range, never a silently wrapped or
 * truncated value.  strtoul and friends are banned elsewhere (tests/banned)
 * because they accept "-1", " 7" and "4294967297" without complaint.
 */
#ifndef PODIO_NUM_H
#define PODIO_NUM_H

#include <stddef.h>

enum num_status {
	NUM_OK = 0,
	NUM_SYNTAX, /* empty, or a byte that is not a digit of the base */
	NUM_RANGE,  /* digits, but below min or above max (or overflowing) */
};

/*
 * Parses s[0..len) in base 8 or 10 into *out when it lies in [min, max].
 * *out is untouched unless NUM_OK is returned.
 */
enum num_status num_parse_n(const char *s, size_t len, unsigned base,
			    unsigned long long min, unsigned long long max,
			    unsigned long long *out);

/* num_parse_n over the whole NUL-terminated string, base 10. */
enum num_status num_parse(const char *s, unsigned long long min,
			  unsigned long long max, unsigned long long *out);

#endif
