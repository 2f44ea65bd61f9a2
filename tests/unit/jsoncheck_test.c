/*
 * jsoncheck_test.c - SPEC section 10: one rule decides what a valid spool
 * line is, the same in every mode and for dead letters.  A line is one
 * JSON object in valid UTF-8, and the rule is never more lenient than
 * jansson (json_loadb, flags 0), which handlers and the coalescer parse
 * with: no \u0000, surrogate escapes only as a valid pair, integers
 * within long long, reals that do not overflow a double.  Every line the
 * rule accepts here is also parsed by jansson as an object.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsoncheck.h"

/* What jansson makes of s[0..n): 1 one object, 0 anything else. */
static int jansson_object(const char *s, size_t n)
{
	json_t *j = json_loadb(s, n, 0, NULL);
	int ok = j != NULL && json_is_object(j);
	json_decref(j);
	return ok;
}

struct row {
	const char *why;
	const char *s;
	size_t n; /* 0: strlen */
};

#define ROW(why, s)                                                            \
	{                                                                      \
		why, s, 0                                                      \
	}
#define ROW_N(why, s)                                                          \
	{                                                                      \
		why, s, sizeof s - 1                                           \
	}
#define ROWS(t) (sizeof t / sizeof t[0])

static size_t len_of(const struct row *r)
{
	return r->n != 0 ? r->n : strlen(r->s);
}

/* ---- accepted ------------------------------------------------------------ */

static const struct row good[] = {
    ROW("empty object", "{}"),
    ROW("blanks around and inside", " \t{ \"a\" : 1 ,\r\n\"b\":[ ] }\r\n "),
    ROW("a spool line",
	"{\"id\":\"1764222499123456-1234-1\",\"received\":\"2026-11-27T05:"
	"48:19.123456Z\",\"type\":\"item.create\",\"remote_addr\":\"10.0.0."
	"1\",\"params\":{\"type\":\"item.create\",\"hook_id\":\"5\","
	"\"item_id\":\"7\"}}"),
    ROW("a hook.verify line",
	"{\"id\":\"2\",\"type\":\"hook.verify\",\"params\":{\"code\":\"x\"},"
	"\"verification\":{\"status\":\"skipped\",\"detail\":\"\"}}"),
    ROW("literals", "{\"a\":true,\"b\":false,\"c\":null}"),
    ROW("nested arrays and objects", "{\"a\":[1,[2,[3,{\"b\":{}}]],\"x\"]}"),
    ROW("every simple escape", "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}"),
    ROW("\\u0001", "{\"a\":\"\\u0001\"}"),
    ROW("\\u001f in a key", "{\"\\u001f\":1}"),
    ROW("\\ud7ff, last before the surrogates", "{\"a\":\"\\ud7ff\"}"),
    ROW("\\ue000, first after the surrogates", "{\"a\":\"\\ue000\"}"),
    ROW("\\uffff", "{\"a\":\"\\uFFFF\"}"),
    ROW("\\ud800\\udc00, a valid pair", "{\"a\":\"\\ud800\\udc00\"}"),
    ROW("\\udbff\\udfff, the last pair", "{\"a\":\"\\uDBFF\\uDFFF\"}"),
    ROW("a pair in a key", "{\"\\ud83d\\ude00\":0}"),
    ROW("UTF-8 of 2, 3 and 4 bytes",
	"{\"a\":\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"}"),
    ROW("U+2028 raw", "{\"a\":\"\xe2\x80\xa8\"}"),
    ROW("DEL raw", "{\"a\":\"\x7f\"}"),
    ROW("9223372036854775807, LLONG_MAX", "{\"a\":9223372036854775807}"),
    ROW("-9223372036854775808, LLONG_MIN", "{\"a\":-9223372036854775808}"),
    ROW("-0", "{\"a\":-0}"),
    ROW("0", "{\"a\":0}"),
    ROW("1e-400 underflows to 0", "{\"a\":1e-400}"),
    ROW("-1e-400", "{\"a\":-1e-400}"),
    ROW("1.7976931348623157e308, DBL_MAX", "{\"a\":1.7976931348623157e308}"),
    ROW("reals", "{\"a\":1.5,\"b\":-0.25e+3,\"c\":2E-2,\"d\":0e0}"),
    ROW("9223372036854775808.0 is a real", "{\"a\":9223372036854775808.0}"),
    ROW("1e19 is a real", "{\"a\":1e19}"),
    ROW("duplicate keys", "{\"a\":1,\"a\":2}"),
    ROW("a key that is empty", "{\"\":\"\"}"),
};

static void
every_line_the_rule_accepts_jansson_parses_as_an_object(void **state)
{
	(void)state;
	for (size_t i = 0; i < ROWS(good); i++) {
		size_t n = len_of(&good[i]);
		if (!jsoncheck_object(good[i].s, n))
			fail_msg("refused %s: %s", good[i].why, good[i].s);
		if (!jansson_object(good[i].s, n))
			fail_msg("accepted %s, which jansson refuses: %s",
				 good[i].why, good[i].s);
	}
}

/* ---- refused ------------------------------------------------------------- */

static const struct row bad[] = {
    ROW("nothing", ""),
    ROW("blanks only", "  \n"),
    ROW("an array", "[]"),
    ROW("a string", "\"s\""),
    ROW("a number", "1"),
    ROW("null", "null"),
    ROW("an object cut short", "{\"a\":1"),
    ROW("an object cut in a key", "{\"a"),
    ROW("a brace too many", "{\"a\":1}}"),
    ROW("two objects", "{}{}"),
    ROW("junk after", "{\"a\":1} x"),
    ROW("a trailing comma", "{\"a\":1,}"),
    ROW("a lone comma", "{,}"),
    ROW("no colon", "{\"a\" 1}"),
    ROW("single quotes", "{'a':1}"),
    ROW("a bare key", "{a:1}"),
    ROW("a number as key", "{1:1}"),
    ROW("a leading zero", "{\"a\":01}"),
    ROW("a dot without digits", "{\"a\":1.}"),
    ROW("no digit before the dot", "{\"a\":.5}"),
    ROW("a plus sign", "{\"a\":+1}"),
    ROW("an exponent without digits", "{\"a\":1e}"),
    ROW("NaN", "{\"a\":NaN}"),
    ROW("Infinity", "{\"a\":-Infinity}"),
    ROW("a literal cut short", "{\"a\":tru}"),
    ROW("a literal in capitals", "{\"a\":True}"),
    ROW("an unknown escape", "{\"a\":\"\\x41\"}"),
    ROW("\\u with 3 digits", "{\"a\":\"\\u123\"}"),
    ROW("\\u with a non-hex digit", "{\"a\":\"\\u12g4\"}"),
    ROW("\\u0000", "{\"a\":\"\\u0000\"}"),
    ROW("\\u0000 in a key", "{\"a\\u0000b\":1}"),
    ROW("\\ud800 alone", "{\"a\":\"\\ud800\"}"),
    ROW("\\ud800 at the end of a key", "{\"\\ud800\":1}"),
    ROW("\\udc00 alone", "{\"a\":\"\\udc00\"}"),
    ROW("\\udfff alone", "{\"a\":\"\\uDFFF\"}"),
    ROW("\\ud800 then a letter", "{\"a\":\"\\ud800x\"}"),
    ROW("\\ud800 then \\u0041", "{\"a\":\"\\ud800\\u0041\"}"),
    ROW("\\ud800 then \\ud800", "{\"a\":\"\\ud800\\ud800\"}"),
    ROW("\\ud800 then \\n", "{\"a\":\"\\ud800\\n\"}"),
    ROW("a low then a high surrogate", "{\"a\":\"\\udc00\\ud800\"}"),
    ROW("9223372036854775808, LLONG_MAX + 1", "{\"a\":9223372036854775808}"),
    ROW("-9223372036854775809, LLONG_MIN - 1", "{\"a\":-9223372036854775809}"),
    ROW("20 digits", "{\"a\":99999999999999999999}"),
    ROW("19 digits over the limit", "{\"a\":9999999999999999999}"),
    ROW("1e400 overflows", "{\"a\":1e400}"),
    ROW("-1e400 overflows", "{\"a\":-1e400}"),
    ROW("1.7976931348623159e308 rounds to infinity",
	"{\"a\":1.7976931348623159e308}"),
    ROW("a raw tab in a string", "{\"a\":\"\t\"}"),
    ROW("a raw newline in a string", "{\"a\":\"\n\"}"),
    ROW("a raw control byte", "{\"a\":\"\x01\"}"),
    ROW_N("a raw NUL in a string", "{\"a\":\"\0\"}"),
    ROW_N("a raw NUL after a value", "{\"a\":1\0}"),
    ROW_N("a raw NUL after the object", "{\"a\":1}\0"),
    ROW("a stray byte 0xff", "{\"a\":\"\xff\"}"),
    ROW("a continuation byte alone", "{\"a\":\"\x80\"}"),
    ROW("overlong '/'", "{\"a\":\"\xc0\xaf\"}"),
    ROW("overlong 3 bytes", "{\"a\":\"\xe0\x80\xaf\"}"),
    ROW("a surrogate in UTF-8", "{\"a\":\"\xed\xa0\x80\"}"),
    ROW("above U+10FFFF", "{\"a\":\"\xf4\x90\x80\x80\"}"),
    ROW("a sequence cut short", "{\"a\":\"\xe2\x82\"}"),
    ROW("a lead byte at the end", "{\"a\":1}\xc3"),
    ROW("invalid UTF-8 outside strings", "{\"a\":1 \xa0}"),
    ROW("a BOM", "\xef\xbb\xbf{}"),
    ROW("a comment", "{/* x */}"),
};

static void the_rule_refuses_what_is_not_one_json_object(void **state)
{
	(void)state;
	for (size_t i = 0; i < ROWS(bad); i++) {
		if (jsoncheck_object(bad[i].s, len_of(&bad[i])))
			fail_msg("accepted %s: %s", bad[i].why, bad[i].s);
	}
}

/* A real longer than 256 characters is refused rather than measured. */
static void a_real_of_more_than_256_characters_is_refused(void **state)
{
	(void)state;
	char line[600];
	size_t n = 0;
	n += (size_t)snprintf(line, sizeof line, "{\"a\":1.");
	/* 1. and 254 zeros: 256 characters */
	memset(line + n, '0', 254);
	n += 254;
	memcpy(line + n, "}", 1);
	assert_true(jsoncheck_object(line, n + 1));
	assert_true(jansson_object(line, n + 1));
	memmove(line + n + 1, line + n, 1);
	line[n] = '0';
	assert_false(jsoncheck_object(line, n + 2));
}

/* ---- depth --------------------------------------------------------------- */

/* {"a": then k arrays nested, then closed. */
static int nested(size_t k)
{
	size_t n = 5 + 2 * k + 1;
	char *s = malloc(n);
	assert_non_null(s);
	memcpy(s, "{\"a\":", 5);
	memset(s + 5, '[', k);
	memset(s + 5 + k, ']', k);
	s[n - 1] = '}';
	int ok = jsoncheck_object(s, n);
	if (ok && !jansson_object(s, n))
		fail_msg("depth %zu accepted, refused by jansson", k);
	free(s);
	return ok;
}

static void nesting_deeper_than_the_limit_is_refused(void **state)
{
	(void)state;
	assert_int_equal(JSONCHECK_DEPTH_MAX, 64);
	assert_true(nested(1));
	assert_true(nested(JSONCHECK_DEPTH_MAX - 1));
	/* The object itself and 64 arrays inside it. */
	assert_true(nested(JSONCHECK_DEPTH_MAX));
	assert_false(nested(JSONCHECK_DEPTH_MAX + 1));
	assert_false(nested(100000)); /* no stack overflow either */
}

/* ---- against jansson, exhaustively where it is cheap -----------------------
 */

static void every_single_unicode_escape_is_judged_as_jansson_does(void **state)
{
	(void)state;
	char s[32];
	unsigned accepted = 0;
	for (unsigned u = 0; u <= 0xffff; u++) {
		int n = snprintf(s, sizeof s, "{\"a\":\"x\\u%04x\"}", u);
		int ours = jsoncheck_object(s, (size_t)n);
		int theirs = jansson_object(s, (size_t)n);
		if (ours != theirs)
			fail_msg("\\u%04x: jsoncheck %d, jansson %d", u, ours,
				 theirs);
		accepted += (unsigned)ours;
	}
	/* All but U+0000 and the 2048 surrogates. */
	assert_int_equal(accepted, 0x10000 - 1 - 0x800);
}

static void every_surrogate_pair_edge_is_judged_as_jansson_does(void **state)
{
	(void)state;
	static const unsigned edge[] = {
	    0x0000, 0x0041, 0xd7ff, 0xd800, 0xd801, 0xdb7f, 0xdb80,
	    0xdbff, 0xdc00, 0xdc01, 0xdfff, 0xe000, 0xfffd, 0xffff,
	};
	char s[48];
	for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
		for (size_t k = 0; k < sizeof edge / sizeof edge[0]; k++) {
			int n =
			    snprintf(s, sizeof s, "{\"a\":\"\\u%04x\\u%04x\"}",
				     edge[i], edge[k]);
			int ours = jsoncheck_object(s, (size_t)n);
			int theirs = jansson_object(s, (size_t)n);
			if (ours != theirs)
				fail_msg("%s: jsoncheck %d, jansson %d", s,
					 ours, theirs);
		}
	}
}

static void numbers_near_the_limits_are_judged_as_jansson_does(void **state)
{
	(void)state;
	static const char *const nums[] = {
	    "9223372036854775806",
	    "9223372036854775807",
	    "9223372036854775808",
	    "9223372036854775809",
	    "9223372036854775810",
	    "18446744073709551615",
	    "18446744073709551616",
	    "-9223372036854775807",
	    "-9223372036854775808",
	    "-9223372036854775809",
	    "-9223372036854775810",
	    "922337203685477580",
	    "-922337203685477580",
	    "10000000000000000000",
	    "1e308",
	    "1e309",
	    "-1e308",
	    "-1e309",
	    "1.7976931348623157e308",
	    "1.7976931348623158e308",
	    "1.7976931348623159e308",
	    "2e308",
	    "4.9e-324",
	    "2e-324",
	    "1e-324",
	    "1e-400",
	    "1e-99999",
	    "1e99999",
	    "0.0000000000000000000000000001",
	    "123456789012345678901234567890.5",
	    "0e400",
	    "-0e-400",
	    "0.0e99999",
	    "1E+308",
	};
	char s[128];
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		int n = snprintf(s, sizeof s, "{\"a\":%s}", nums[i]);
		int ours = jsoncheck_object(s, (size_t)n);
		int theirs = jansson_object(s, (size_t)n);
		if (ours != theirs)
			fail_msg("%s: jsoncheck %d, jansson %d", nums[i], ours,
				 theirs);
	}
}

/* ---- jsoncheck_members -----------------------------------------------------
 */

static void members_gives_the_span_of_each_top_level_member(void **state)
{
	(void)state;
	static const char s[] =
	    "{\"a\":1, \"b\" : [1,{\"x\":2}] ,\"c\":{\"d\":\"}\"}}";
	struct jsoncheck_span sp[8];
	size_t count = 99;
	assert_true(jsoncheck_members(s, strlen(s), sp, 8, &count));
	assert_int_equal(count, 3);
	static const char *const want[] = {
	    "\"a\":1",
	    "\"b\" : [1,{\"x\":2}]",
	    "\"c\":{\"d\":\"}\"}",
	};
	for (size_t i = 0; i < 3; i++) {
		size_t n = sp[i].end - sp[i].key;
		if (n != strlen(want[i]) || memcmp(s + sp[i].key, want[i], n))
			fail_msg("member %zu spans \"%.*s\", want \"%s\"", i,
				 (int)n, s + sp[i].key, want[i]);
	}
	/* Fewer spans than members: the count still says all. */
	struct jsoncheck_span one[1];
	assert_true(jsoncheck_members(s, strlen(s), one, 1, &count));
	assert_int_equal(count, 3);
	assert_int_equal(one[0].key, sp[0].key);
	assert_int_equal(one[0].end, sp[0].end);
	assert_true(jsoncheck_members(s, strlen(s), NULL, 0, &count));
	assert_int_equal(count, 3);
	/* An empty object has none; a refused line says 0. */
	assert_true(jsoncheck_members("{ }", 3, sp, 8, &count));
	assert_int_equal(count, 0);
	assert_false(
	    jsoncheck_members("{\"a\":\"\\ud800\"}", 14, sp, 8, &count));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		every_line_the_rule_accepts_jansson_parses_as_an_object),
	    cmocka_unit_test(the_rule_refuses_what_is_not_one_json_object),
	    cmocka_unit_test(a_real_of_more_than_256_characters_is_refused),
	    cmocka_unit_test(nesting_deeper_than_the_limit_is_refused),
	    cmocka_unit_test(
		every_single_unicode_escape_is_judged_as_jansson_does),
	    cmocka_unit_test(
		every_surrogate_pair_edge_is_judged_as_jansson_does),
	    cmocka_unit_test(
		numbers_near_the_limits_are_judged_as_jansson_does),
	    cmocka_unit_test(members_gives_the_span_of_each_top_level_member),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
