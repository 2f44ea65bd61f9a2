/*
 * fuzz_jsoncheck.c - the one rule for a valid spool line (jsoncheck.h)
 * against jansson, and the byte-exact edits built on it (jsonline.h).
 *
 * 1. jsoncheck_object accepting a line means jansson (json_loadb, flags
 *    0) parses it as an object: no excuse in that direction, since
 *    handlers and the coalescer parse what the rule lets through.
 * 2. jansson accepting an object means the rule accepts it, except
 *    where the rule is knowingly stricter: nesting deeper than
 *    JSONCHECK_DEPTH_MAX, a raw NUL byte jansson's lexer lets through, a
 *    real number longer than 256 characters.
 * 3. jsoncheck_members agrees with jsoncheck_object, and its spans are
 *    the top-level members in order, separated by one comma and blanks.
 * 4. On an accepted line, jsonline_append then jsonline_drop of the key
 *    added gives back the line byte for byte, and dropping any of its
 *    keys leaves a valid line without it.
 *
 * Input: the bytes of one line (without its '\n').
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "jsoncheck.h"
#include "jsonline.h"

/* What the rule refuses in a real number (jsoncheck.c). */
#define REAL_TEXT_MAX 256

static size_t depth(const json_t *j)
{
	size_t d = 0;
	size_t k;
	const char *key;
	json_t *v;
	if (json_is_object(j)) {
		json_object_foreach((json_t *)j, key, v)
		{
			k = depth(v);
			d = k > d ? k : d;
		}
		return d + 1;
	}
	if (json_is_array(j)) {
		json_array_foreach(j, k, v)
		{
			size_t e = depth(v);
			d = e > d ? e : d;
		}
		return d + 1;
	}
	return 0;
}

/* 1 when s holds a run of more than REAL_TEXT_MAX number characters. */
static int long_number(const uint8_t *s, size_t n)
{
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		int c = s[i];
		int num = (c >= '0' && c <= '9') || c == '.' || c == 'e' ||
			  c == 'E' || c == '+' || c == '-';
		run = num ? run + 1 : 0;
		if (run > REAL_TEXT_MAX)
			return 1;
	}
	return 0;
}

static int blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Property 3. */
static void check_spans(const char *s, size_t n)
{
	struct jsoncheck_span sp[64];
	size_t count = 0;
	size_t count2 = 0;
	int ok = jsoncheck_members(s, n, sp, 64, &count);
	CHECK(ok == 1, "jsoncheck_members refused what jsoncheck_object took");
	CHECK(jsoncheck_members(s, n, NULL, 0, &count2) == 1 && count2 == count,
	      "counting alone says %zu members, with spans %zu", count2, count);
	size_t shown = count < 64 ? count : 64;
	for (size_t i = 0; i < shown; i++) {
		CHECK(sp[i].key < sp[i].end && sp[i].end <= n, "span %zu", i);
		CHECK(s[sp[i].key] == '"', "span %zu does not start a key", i);
		if (i == 0)
			continue;
		size_t commas = 0;
		CHECK(sp[i - 1].end <= sp[i].key, "spans %zu overlap", i);
		for (size_t k = sp[i - 1].end; k < sp[i].key; k++) {
			commas += s[k] == ',';
			CHECK(s[k] == ',' || blank(s[k]),
			      "byte %zu between members", k);
		}
		CHECK(commas == 1, "%zu commas between members", commas);
	}
}

/* 1 when the line has a top-level key written exactly as key. */
static int has_key(const char *s, size_t n, const char *key)
{
	size_t count = 0;
	size_t klen = strlen(key);
	int found = 0;
	jsoncheck_members(s, n, NULL, 0, &count);
	struct jsoncheck_span *sp = malloc((count + 1) * sizeof *sp);
	if (sp == NULL)
		abort();
	jsoncheck_members(s, n, sp, count, &count);
	for (size_t i = 0; i < count && !found; i++) {
		found = sp[i].end - sp[i].key > klen + 1 &&
			memcmp(s + sp[i].key + 1, key, klen) == 0 &&
			s[sp[i].key + 1 + klen] == '"';
	}
	free(sp);
	return found;
}

static void check_valid_line(const char *s, size_t n, const char *what)
{
	CHECK(n > 0 && s[n - 1] == '\n', "%s: not a line", what);
	CHECK(jsoncheck_object(s, n - 1), "%s: not valid by the rule", what);
	json_t *j = json_loadb(s, n - 1, 0, NULL);
	CHECK(json_is_object(j), "%s: jansson refuses it", what);
	json_decref(j);
}

/* Property 4. */
static void check_edits(const uint8_t *data, size_t size)
{
	static const char key[] = "zz_fuzz_added";
	static const char members[] = "\"zz_fuzz_added\":[1,\"\\n\"]";
	const char *const keys[] = {key};
	char *line = malloc(size + 1);
	size_t n = 0;
	size_t m = 0;
	if (line == NULL)
		return;
	memcpy(line, data, size);
	line[size] = '\n';
	char *added =
	    jsonline_append(line, size + 1, members, sizeof members - 1, &n);
	CHECK(added != NULL, "jsonline_append refused a valid line");
	check_valid_line(added, n, "appended");
	if (!has_key(line, size, key)) {
		char *back = jsonline_drop(added, n, keys, 1, &m);
		CHECK(back != NULL, "jsonline_drop refused a valid line");
		CHECK(m == size + 1 && memcmp(back, line, m) == 0,
		      "append then drop changed the line");
		free(back);
	}
	free(added);
	/* Drop the first member's key, whatever it is. */
	struct jsoncheck_span sp[1];
	size_t count = 0;
	jsoncheck_members(line, size, sp, 1, &count);
	if (count > 0) {
		size_t klen = 0;
		const char *k = line + sp[0].key + 1;
		while (k[klen] != '"') {
			klen += k[klen] == '\\' ? 2 : 1;
		}
		char *first = malloc(klen + 1);
		if (first != NULL) {
			memcpy(first, k, klen);
			first[klen] = '\0';
			const char *const drop[] = {first};
			char *less = jsonline_drop(line, size + 1, drop, 1, &m);
			CHECK(less != NULL, "jsonline_drop refused a line");
			check_valid_line(less, m, "dropped");
			CHECK(!has_key(less, m - 1, first),
			      "the key dropped is still there");
			free(less);
			free(first);
		}
	}
	free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t err;
	int ours = jsoncheck_object((const char *)data, size);
	CHECK(ours == 0 || ours == 1, "jsoncheck_object returned %d", ours);
	json_t *j = json_loadb((const char *)data, size, 0, &err);
	int theirs = j != NULL && json_is_object(j);
	/* 1: never more lenient than jansson. */
	CHECK(!ours || theirs, "the rule accepts what jansson refuses (%s)",
	      j == NULL ? err.text : "not an object");
	/* 2: stricter only where it says so. */
	if (theirs && !ours) {
		/* The object and JSONCHECK_DEPTH_MAX levels inside it. */
		int deep = depth(j) > JSONCHECK_DEPTH_MAX + 1;
		int nul = memchr(data, '\0', size) != NULL;
		int longnum = long_number(data, size);
		CHECK(deep || nul || longnum,
		      "the rule refuses an object jansson parses");
	}
	json_decref(j);
	if (ours) {
		check_spans((const char *)data, size);
		check_edits(data, size);
	}
	return 0;
}
