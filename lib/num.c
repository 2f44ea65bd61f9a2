#include "num.h"

#include <limits.h>
#include <string.h>

enum num_status num_parse_n(const char *s, size_t len, unsigned base,
			    unsigned long long min, unsigned long long max,
			    unsigned long long *out)
{
	unsigned long long v = 0;
	int overflow = 0;
	if (len == 0)
		return NUM_SYNTAX;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)((unsigned char)s[i] - '0');
		if (d >= base || d > 9)
			return NUM_SYNTAX;
		if (v > (ULLONG_MAX - d) / base)
			overflow = 1; /* keep checking the syntax */
		else
			v = v * base + d;
	}
	if (overflow || v < min || v > max)
		return NUM_RANGE;
	*out = v;
	return NUM_OK;
}

enum num_status num_parse(const char *s, unsigned long long min,
			  unsigned long long max, unsigned long long *out)
{
	return num_parse_n(s, strlen(s), 10, min, max, out);
}
