/*
 * fuzz_jsoncheck.c - jsoncheck_object, drain's "is this spool line JSON?"
 * (jsoncheck.h), against jansson: both must agree on every input, except
 * where jansson is knowingly stricter than RFC 8259 (\u0000, unpaired
 * surrogate escapes, numbers too large for it) or more lenient (nesting
 * deeper than JSONCHECK_DEPTH_MAX, raw NUL bytes).  A line jsoncheck accepts is handed
 * to handlers that parse it; a line it refuses is quarantined.
 *
 * Input: the bytes of one line (without its '\n').
 */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "jsoncheck.h"

static size_t depth(const json_t *j)
{
	size_t d = 0;
	size_t k;
	const char *key;
	json_t *v;
	if (json_is_object(j)) {
		json_object_foreach((json_t *)j, key, v) {
			k = depth(v);
			d = k > d ? k : d;
		}
		return d + 1;
	}
	if (json_is_array(j)) {
		json_array_foreach(j, k, v) {
			size_t e = depth(v);
			d = e > d ? e : d;
		}
		return d + 1;
	}
	return 0;
}

/* jansson's refusals that RFC 8259's grammar does not share. */
static int jansson_only(const char *why)
{
	return strstr(why, "\\u0000 is not allowed") != NULL ||
	       strstr(why, "NUL byte") != NULL ||
	       strstr(why, "invalid Unicode") != NULL ||
	       strstr(why, "too big") != NULL ||
	       strstr(why, "overflow") != NULL ||
	       strstr(why, "maximum parsing depth") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t err;
	int ours = jsoncheck_object((const char *)data, size);
	CHECK(ours == 0 || ours == 1, "jsoncheck_object returned %d", ours);
	json_t *j = json_loadb((const char *)data, size, 0, &err);
	int theirs = j != NULL && json_is_object(j);
	if (ours != theirs) {
		int deep = j != NULL && depth(j) > JSONCHECK_DEPTH_MAX - 2;
		/* jansson's lexer lets a raw NUL through in places
		 * ({"a":1<NUL>}); RFC 8259 does not. */
		int nul = j != NULL && memchr(data, '\0', size) != NULL;
		int excused = deep || nul || (j == NULL && jansson_only(err.text));
		CHECK(excused, "jsoncheck says %d, jansson %d (%s)", ours,
		      theirs, j == NULL ? err.text : "parsed");
	}
	json_decref(j);
	return 0;
}
