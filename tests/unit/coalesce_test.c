/*
 * coalesce_test.c - what `drain --coalesce` takes for one event: the key
 * of a line (the object of an update, else the params), the groups in
 * spool order, and the "coalesced" list of ids.  The engine's own tests
 * (engine_test.c) cover when groups are offered and settled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coalesce.h"

static char *key(const char *type, const char *line)
{
	return coalesce_key(type, line, strlen(line));
}

static void expect_key(const char *type, const char *line, const char *want)
{
	char *got = key(type, line);
	if (want == NULL) {
		if (got != NULL)
			fail_msg("%s %s: key %s, want none", type, line, got);
	} else {
		assert_non_null(got);
		assert_string_equal(got, want);
	}
	free(got);
}

static void an_update_is_keyed_by_its_object(void **state)
{
	(void)state;
	expect_key("item.update",
		   "{\"id\":\"a\",\"params\":{\"item_id\":\"7\","
		   "\"item_revision_id\":\"3\",\"hook_id\":\"1\"}}",
		   "o:7");
	expect_key("task.update", "{\"params\":{\"task_id\":\"12\"}}", "o:12");
	expect_key("app.update", "{\"params\":{\"app_id\":\"5\"}}", "o:5");
	expect_key("form.update", "{\"params\":{\"form_id\":\"6\"}}", "o:6");
	expect_key("status.update", "{\"params\":{\"status_id\":\"8\"}}",
		   "o:8");
}

static void other_events_are_keyed_by_their_sorted_params(void **state)
{
	(void)state;
	/* Key order in the line does not matter: a redelivery is one. */
	expect_key("item.create",
		   "{\"params\":{\"item_id\":\"7\",\"a\":\"1\"}}",
		   "p:{\"a\":\"1\",\"item_id\":\"7\"}");
	expect_key("item.create",
		   "{\"params\":{\"a\":\"1\",\"item_id\":\"7\"}}",
		   "p:{\"a\":\"1\",\"item_id\":\"7\"}");
	/* An update without an object of its own, or with an empty id. */
	expect_key("contact.update", "{\"params\":{\"profile_id\":\"4\"}}",
		   "p:{\"profile_id\":\"4\"}");
	expect_key("item.update", "{\"params\":{\"item_id\":\"\"}}",
		   "p:{\"item_id\":\"\"}");
	expect_key("item.update", "{\"params\":{\"item_id\":7}}",
		   "p:{\"item_id\":7}");
	/* The id of another type's object is no object id here. */
	expect_key("task.update", "{\"params\":{\"item_id\":\"7\"}}",
		   "p:{\"item_id\":\"7\"}");
	expect_key("item.create", "{\"params\":{}}", "p:{}");
}

static void a_line_without_params_stands_alone(void **state)
{
	(void)state;
	expect_key("item.update", "{\"id\":\"a\"}", NULL);
	expect_key("item.update", "{\"params\":[\"item_id\",\"7\"]}", NULL);
	expect_key("item.update", "{\"params\":\"7\"}", NULL);
	expect_key("item.update", "{\"params\":{\"item_id\":\"7\"", NULL);
	expect_key("item.update", "", NULL);
	/* Only len bytes are read: the object is cut short. */
	const char *line = "{\"params\":{\"item_id\":\"7\"}}";
	assert_null(coalesce_key("item.update", line, strlen(line) - 1));
}

static void groups_gather_equal_keys_under_their_latest_event(void **state)
{
	(void)state;
	char a[] = "A", b[] = "B", a2[] = "A", a3[] = "A", b2[] = "B";
	char *keys[] = {a, NULL, b, a2, a3, b2, NULL};
	size_t n = sizeof keys / sizeof keys[0];
	size_t rep[7], first[7];
	size_t want_rep[] = {4, 1, 5, 4, 4, 5, 6};
	size_t want_first[] = {0, 1, 2, 3, 0, 2, 6};
	assert_int_equal(coalesce_group(keys, n, rep, first), 0);
	assert_memory_equal(rep, want_rep, sizeof want_rep);
	assert_memory_equal(first, want_first, sizeof want_first);
}

static void no_events_make_no_groups(void **state)
{
	(void)state;
	size_t rep[1] = {9}, first[1] = {9};
	assert_int_equal(coalesce_group(NULL, 0, rep, first), 0);
	assert_int_equal(rep[0], 9);
	char k[] = "K";
	char *one[] = {k};
	assert_int_equal(coalesce_group(one, 1, rep, first), 0);
	assert_int_equal(rep[0], 0);
	assert_int_equal(first[0], 0);
}

static void expect_ids(const char *const *lines, size_t n, const char *want)
{
	size_t lens[8];
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(lines[i]);
	char *got = coalesce_ids(lines, lens, n, &len);
	assert_non_null(got);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	free(got);
}

static void ids_are_listed_in_order_quoted_or_null(void **state)
{
	(void)state;
	expect_ids(NULL, 0, "\"coalesced\":[]");
	const char *two[] = {"{\"id\":\"item.update-1\"}",
			     "{\"id\":\"item.update-2\",\"params\":{}}"};
	expect_ids(two, 2,
		   "\"coalesced\":[\"item.update-1\",\"item.update-2\"]");
	const char *odd[] = {"{\"id\":7}", "{}", "not json",
			     "{\"id\":\"q\\\"\\u0001\\\\\"}"};
	expect_ids(odd, 4,
		   "\"coalesced\":[null,null,null,\"q\\\"\\u0001\\\\\"]");
}

static void long_ids_of_control_bytes_fit(void **state)
{
	(void)state;
	enum { N = 5000 };
	/* {"id":"\u0001...\u0001"}: each byte quoted again takes 6. */
	const size_t lcap = 10 + N * 6, wcap = 20 + N * 6;
	char *line = malloc(lcap);
	char *want = malloc(wcap);
	assert_non_null(line);
	assert_non_null(want);
	size_t l = (size_t)snprintf(line, lcap, "{\"id\":\"");
	size_t w = (size_t)snprintf(want, wcap, "\"coalesced\":[\"");
	for (int i = 0; i < N; i++) {
		l += (size_t)snprintf(line + l, lcap - l, "\\u0001");
		w += (size_t)snprintf(want + w, wcap - w, "\\u0001");
	}
	snprintf(line + l, lcap - l, "\"}");
	snprintf(want + w, wcap - w, "\"]");
	const char *lines[] = {line};
	expect_ids(lines, 1, want);
	free(line);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(an_update_is_keyed_by_its_object),
	    cmocka_unit_test(other_events_are_keyed_by_their_sorted_params),
	    cmocka_unit_test(a_line_without_params_stands_alone),
	    cmocka_unit_test(groups_gather_equal_keys_under_their_latest_event),
	    cmocka_unit_test(no_events_make_no_groups),
	    cmocka_unit_test(ids_are_listed_in_order_quoted_or_null),
	    cmocka_unit_test(long_ids_of_control_bytes_fit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
