/*
 * jsonline_test.c - SPEC section 8: a dead letter is the spooled line with
 * "attempts" (a number) and "last_error" (a string) added, and
 * --retry-failed offers it again "as it was spooled", byte for byte.
 * jsonline adds keys before the object's final '}' and takes top-level
 * keys away without re-encoding anything else, so appending keys and
 * dropping them again gives back the original bytes exactly.
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
#include "jsonline.h"

static const char SPOOLED[] =
    "{\"id\":\"1764222499123456-42-1\",\"received\":\"2026-11-27T05:48:19."
    "123456Z\",\"type\":\"item.create\",\"remote_addr\":\"10.0.0.1\","
    "\"params\":{\"type\":\"item.create\",\"hook_id\":\"5\",\"item_id\":"
    "\"7\",\"attempts\":\"nested, not top-level\"}}\n";

static const char *const DEAD_KEYS[] = {"attempts", "last_error"};

/* Fails unless got[0..n) is want, then frees got. */
static void expect_line(char *got, size_t n, const char *want)
{
	if (got == NULL)
		fail_msg("NULL, want %s", want);
	if (n != strlen(want) || memcmp(got, want, n) != 0)
		fail_msg("got  %.*s\nwant %s", (int)n, got, want);
	/* Results are lines: valid by the one rule, and jansson agrees. */
	assert_int_equal(got[n - 1], '\n');
	assert_true(jsoncheck_object(got, n - 1));
	json_t *j = json_loadb(got, n - 1, 0, NULL);
	assert_non_null(j);
	assert_true(json_is_object(j));
	json_decref(j);
	free(got);
}

static char *append_str(const char *line, const char *members, size_t *n)
{
	return jsonline_append(line, strlen(line), members, strlen(members), n);
}

/* ---- jsonline_append ------------------------------------------------------
 */

static void append_puts_the_keys_last_before_the_closing_brace(void **state)
{
	(void)state;
	size_t n = 0;
	char *got = append_str(
	    SPOOLED, "\"attempts\":5,\"last_error\":\"exit status 3\"", &n);
	char want[1024];
	snprintf(want, sizeof want, "%.*s,%s}\n", (int)strlen(SPOOLED) - 2,
		 SPOOLED, "\"attempts\":5,\"last_error\":\"exit status 3\"");
	expect_line(got, n, want);
}

static void append_to_an_empty_object_adds_no_comma(void **state)
{
	(void)state;
	size_t n = 0;
	char *got = append_str("{}\n", "\"a\":1", &n);
	expect_line(got, n, "{\"a\":1}\n");
	got = append_str("{ }\n", "\"a\":1", &n);
	expect_line(got, n, "{ \"a\":1}\n");
}

static void append_keeps_blanks_of_the_line_as_they_are(void **state)
{
	(void)state;
	size_t n = 0;
	char *got = append_str(" {\"a\":1 }\t\n", "\"b\":2", &n);
	expect_line(got, n, " {\"a\":1 ,\"b\":2}\t\n");
	/* A '}' inside a string at the end is not the closing brace. */
	got = append_str("{\"a\":\"}\"}\n", "\"b\":2", &n);
	expect_line(got, n, "{\"a\":\"}\",\"b\":2}\n");
}

static void append_refuses_what_is_not_a_valid_line(void **state)
{
	(void)state;
	size_t n = 0;
	static const char *const bad[] = {
	    "",
	    "\n",
	    "{\"a\":1}",	      /* no '\n' */
	    "{\"a\":1\n",	      /* torn */
	    "[1]\n",		      /* not an object */
	    "{\"a\":\"\\ud800\"}\n",  /* the rule refuses it */
	    "{\"a\":1}\n{\"b\":2}\n", /* two lines */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *got = append_str(bad[i], "\"k\":1", &n);
		if (got != NULL)
			fail_msg("appended to \"%s\": %.*s", bad[i], (int)n,
				 got);
	}
}

/* ---- jsonline_drop --------------------------------------------------------
 */

static char *drop_str(const char *line, const char *const *keys, size_t nkeys,
		      size_t *n)
{
	return jsonline_drop(line, strlen(line), keys, nkeys, n);
}

static void drop_takes_top_level_keys_away_wherever_they_are(void **state)
{
	(void)state;
	size_t n = 0;
	static const struct {
		const char *line, *want;
	} rows[] = {
	    {"{\"id\":\"1\",\"attempts\":3,\"last_error\":\"x\"}\n",
	     "{\"id\":\"1\"}\n"},
	    {"{\"attempts\":3,\"id\":\"1\",\"last_error\":\"x\"}\n",
	     "{\"id\":\"1\"}\n"},
	    {"{\"attempts\":3,\"last_error\":\"x\",\"id\":\"1\"}\n",
	     "{\"id\":\"1\"}\n"},
	    {"{\"attempts\":3,\"last_error\":\"x\"}\n", "{}\n"},
	    {"{\"attempts\":3}\n", "{}\n"},
	    {"{\"a\":1,\"attempts\":3,\"b\":2}\n", "{\"a\":1,\"b\":2}\n"},
	    /* every copy of a repeated key */
	    {"{\"attempts\":1,\"a\":1,\"attempts\":2}\n", "{\"a\":1}\n"},
	    /* nested keys of the same name stay */
	    {"{\"p\":{\"attempts\":1},\"attempts\":2}\n",
	     "{\"p\":{\"attempts\":1}}\n"},
	    /* names compared exactly, as written */
	    {"{\"Attempts\":1,\"attempts2\":2,\"attempt\":3,\"att\\u0065mpts\""
	     ":4}\n",
	     "{\"Attempts\":1,\"attempts2\":2,\"attempt\":3,\"att\\u0065mpts\""
	     ":4}\n"},
	    /* a line without them comes back as it is */
	    {"{}\n", "{}\n"},
	    {"{\"id\":\"1\"}\n", "{\"id\":\"1\"}\n"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char *got = drop_str(rows[i].line, DEAD_KEYS, 2, &n);
		if (got == NULL || n != strlen(rows[i].want) ||
		    memcmp(got, rows[i].want, n) != 0)
			fail_msg("drop from %s gave %.*s, want %s",
				 rows[i].line, got != NULL ? (int)n : 4,
				 got != NULL ? got : "NULL", rows[i].want);
		expect_line(got, n, rows[i].want);
	}
}

static void drop_keeps_the_blanks_around_the_members_it_keeps(void **state)
{
	(void)state;
	size_t n = 0;
	static const struct {
		const char *line, *want;
	} rows[] = {
	    {"{ \"a\" : 1 , \"attempts\" : 3 }\n", "{ \"a\" : 1  }\n"},
	    {"{ \"attempts\" : 3 , \"a\" : 1 }\n", "{ \"a\" : 1 }\n"},
	    {"{ \"attempts\":3 }\n", "{  }\n"},
	    {"{\"attempts\":3 , \"a\":1 ,\"last_error\":\"x\" }\n",
	     "{\"a\":1  }\n"},
	    {"  {\"a\":1}  \n", "  {\"a\":1}  \n"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char *got = drop_str(rows[i].line, DEAD_KEYS, 2, &n);
		if (got == NULL || n != strlen(rows[i].want) ||
		    memcmp(got, rows[i].want, n) != 0)
			fail_msg("drop from \"%s\" gave \"%.*s\", want \"%s\"",
				 rows[i].line, got != NULL ? (int)n : 4,
				 got != NULL ? got : "NULL", rows[i].want);
		expect_line(got, n, rows[i].want);
	}
}

static void drop_refuses_what_is_not_a_valid_line(void **state)
{
	(void)state;
	size_t n = 0;
	assert_null(drop_str("{\"attempts\":1}", DEAD_KEYS, 2, &n));
	assert_null(drop_str("{\"attempts\":1\n", DEAD_KEYS, 2, &n));
	assert_null(drop_str("not json\n", DEAD_KEYS, 2, &n));
	assert_null(drop_str("{\"a\":\"\\u0000\"}\n", DEAD_KEYS, 2, &n));
}

/* ---- append, then drop ------------------------------------------------------
 */

static const char *const ROUND_TRIP[] = {
    SPOOLED,
    "{}\n",
    "{ }\n",
    "{\"id\":\"x\"}\n",
    "{\"id\":\"\\u00e9\\ud83d\\ude00 caf\xc3\xa9\",\"n\":-1.5e-3}\n",
    " { \"a\" : [ 1 , 2 ] , \"b\" : { } }  \n",
    "{\"a\":1 }\n",
    "{\"a\":1\t,\t\"b\":2\r}\r\n",
    "{\"last_error_not\":1,\"attempts_x\":2}\n",
};

static void append_then_drop_gives_back_the_line_byte_for_byte(void **state)
{
	(void)state;
	static const char members[] =
	    "\"attempts\":4,\"last_error\":\"say \\\"hi\\\"\\n\"";
	for (size_t i = 0; i < sizeof ROUND_TRIP / sizeof ROUND_TRIP[0]; i++) {
		const char *line = ROUND_TRIP[i];
		size_t n1 = 0;
		size_t n2 = 0;
		char *dead = append_str(line, members, &n1);
		assert_non_null(dead);
		assert_true(jsoncheck_object(dead, n1 - 1));
		char *back = jsonline_drop(dead, n1, DEAD_KEYS, 2, &n2);
		if (back == NULL || n2 != strlen(line) ||
		    memcmp(back, line, n2) != 0)
			fail_msg("line   \"%s\"\ndead   \"%.*s\"\nback   "
				 "\"%.*s\"",
				 line, (int)n1, dead,
				 back != NULL ? (int)n2 : 4,
				 back != NULL ? back : "NULL");
		/* A dead letter that failed again: one set of keys, not two. */
		char *bare = jsonline_drop(dead, n1, DEAD_KEYS, 2, &n2);
		size_t n3 = 0;
		char *again =
		    jsonline_append(bare, n2, members, strlen(members), &n3);
		assert_int_equal(n3, n1);
		assert_memory_equal(again, dead, n1);
		free(again);
		free(bare);
		free(back);
		free(dead);
	}
}

/* ---- many members ----------------------------------------------------------
 */

/* {"k0":0,...,"k{n-1}":n-1} plus "attempts":1 and '\n'; malloc'd. */
static char *wide_line(size_t members, size_t *len)
{
	size_t cap = members * 24 + 64;
	char *s = malloc(cap);
	size_t n = 0;
	assert_non_null(s);
	s[n++] = '{';
	for (size_t i = 0; i < members; i++)
		n += (size_t)snprintf(s + n, cap - n, "\"k%zu\":%zu,", i, i);
	n += (size_t)snprintf(s + n, cap - n, "\"attempts\":1}\n");
	*len = n;
	return s;
}

static void drop_works_on_a_line_with_many_members(void **state)
{
	(void)state;
	size_t members[] = {255, 256, 1000};
	for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
		size_t len = 0;
		size_t n = 0;
		char *line = wide_line(members[i], &len);
		char *got = jsonline_drop(line, len, DEAD_KEYS, 2, &n);
		if (got == NULL)
			fail_msg("drop from a line of %zu members: NULL",
				 members[i] + 1);
		/* The line without ,"attempts":1 */
		size_t tail = strlen(",\"attempts\":1}\n");
		assert_int_equal(n, len - tail + 2);
		assert_memory_equal(got, line, len - tail);
		assert_memory_equal(got + len - tail, "}\n", 2);
		free(got);
		free(line);
	}
}

/* ---- jsonline_quote --------------------------------------------------------
 */

static void quote_escapes_what_json_requires_and_nothing_else(void **state)
{
	(void)state;
	char buf[256];
	size_t used = 3;
	memcpy(buf, "xx:", 3);
	static const char s[] = "a\"b\\c\nd\te\rf\x01g\x1fh\x7fi/\xc3\xa9"
				"\xe2\x80\xa8";
	assert_int_equal(jsonline_quote(buf, sizeof buf, &used, s), 0);
	static const char want[] =
	    "xx:\"a\\\"b\\\\c\\nd\\te\\rf\\u0001g\\u001fh\\u007fi/\xc3\xa9"
	    "\xe2\x80\xa8\"";
	assert_int_equal(used, strlen(want));
	assert_memory_equal(buf, want, used);
	/* It reads back as the same string. */
	json_t *j = json_loadb(buf + 3, used - 3, JSON_DECODE_ANY, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(j), s);
	json_decref(j);
}

static void quote_fails_cleanly_when_it_does_not_fit(void **state)
{
	(void)state;
	char buf[16];
	/* "abc" quoted is 5 bytes. */
	for (size_t cap = 0; cap <= 8; cap++) {
		size_t used = 0;
		memset(buf, '#', sizeof buf);
		int rc = jsonline_quote(buf, cap, &used, "abc");
		if (cap >= 5) {
			assert_int_equal(rc, 0);
			assert_int_equal(used, 5);
			assert_memory_equal(buf, "\"abc\"", 5);
		} else {
			assert_int_equal(rc, -1);
			assert_int_equal(used, 0);
		}
		/* Nothing written past cap. */
		for (size_t k = cap; k < sizeof buf; k++)
			assert_int_equal(buf[k], '#');
	}
	/* An escape that would be cut is not half written into *used. */
	size_t used = 10;
	assert_int_equal(jsonline_quote(buf, 14, &used, "\x01"), -1);
	assert_int_equal(used, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		append_puts_the_keys_last_before_the_closing_brace),
	    cmocka_unit_test(append_to_an_empty_object_adds_no_comma),
	    cmocka_unit_test(append_keeps_blanks_of_the_line_as_they_are),
	    cmocka_unit_test(append_refuses_what_is_not_a_valid_line),
	    cmocka_unit_test(drop_takes_top_level_keys_away_wherever_they_are),
	    cmocka_unit_test(drop_keeps_the_blanks_around_the_members_it_keeps),
	    cmocka_unit_test(drop_refuses_what_is_not_a_valid_line),
	    cmocka_unit_test(
		append_then_drop_gives_back_the_line_byte_for_byte),
	    cmocka_unit_test(drop_works_on_a_line_with_many_members),
	    cmocka_unit_test(quote_escapes_what_json_requires_and_nothing_else),
	    cmocka_unit_test(quote_fails_cleanly_when_it_does_not_fit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
