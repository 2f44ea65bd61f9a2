/*
 * record_test.c - SPEC section 5, one spool line per event: exact bytes,
 * keys in order, params in arrival order without "secret", control
 * characters escaped, UTF-8 passed through, verification last; and the
 * id and received stamps.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* timegm, strptime */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <regex.h>

#include "form.h"
#include "record.h"

static const struct stamp fixed = {
	.id = "X",
	.received = "2026-11-27T05:48:19.123456Z",
};

#define HEAD                                                  \
	"{\"id\":\"X\",\"received\":\"2026-11-27T05:48:19.123456Z\"," \
	"\"type\":\"item.create\",\"remote_addr\":\"127.0.0.1\","

static char buf[4096];
static struct form params;

/* Parses a form body the way the receiver does. */
static const struct form *form_of(const char *s)
{
	size_t n = strlen(s);
	assert_true(n < sizeof buf);
	memcpy(buf, s, n + 1);
	form_init(&params);
	assert_int_equal(form_parse(&params, buf, n), OUT_OK);
	return &params;
}

/* Appends a field by hand: key and value are n-byte strings. */
static void add(struct form *f, const char *key, const char *val)
{
	assert_true(f->n < FORM_MAX_FIELDS);
	f->f[f->n].key = key;
	f->f[f->n].key_len = strlen(key);
	f->f[f->n].val = val;
	f->f[f->n].val_len = strlen(val);
	f->n++;
}

static struct record rec(const struct form *p)
{
	struct record r = {
		.stamp = &fixed,
		.type = "item.create",
		.remote_addr = "127.0.0.1",
		.params = p,
		.verify_status = NULL,
		.verify_detail = NULL,
	};
	return r;
}

/* Encodes r and compares the whole line, '\n' included, byte for byte. */
static void expect_line(const struct record *r, const char *want)
{
	size_t len = 0;
	char *line = record_encode(r, &len);
	assert_non_null(line);
	if (len != strlen(want) || memcmp(line, want, len) != 0)
		fail_msg("got  %.*s\nwant %s", (int)len, line, want);
	free(line);
}

/* ---- golden lines ------------------------------------------------------ */

static void golden_line(void **state)
{
	(void)state;
	struct record r = rec(form_of("type=item.create&item_id=1"));
	expect_line(&r, HEAD "\"params\":{\"type\":\"item.create\","
			     "\"item_id\":\"1\"}}\n");
}

static void params_keep_arrival_order(void **state)
{
	(void)state;
	/* Not sorted: the order the fields came in. */
	struct record r = rec(form_of("type=item.create&zeta=1&hook_id=9"
				      "&alpha=2&item_revision_id=3"));
	expect_line(&r, HEAD "\"params\":{\"type\":\"item.create\","
			     "\"zeta\":\"1\",\"hook_id\":\"9\",\"alpha\":\"2\","
			     "\"item_revision_id\":\"3\"}}\n");
}

static void secret_is_never_spooled(void **state)
{
	(void)state;
	struct record r = rec(form_of("secret=s3cr3t&type=item.create"
				      "&item_id=1"));
	expect_line(&r, HEAD "\"params\":{\"type\":\"item.create\","
			     "\"item_id\":\"1\"}}\n");
	r = rec(form_of("type=item.create&secret=s3cr3t"));
	expect_line(&r, HEAD "\"params\":{\"type\":\"item.create\"}}\n");
	/* Only the exact key: these are ordinary parameters. */
	r = rec(form_of("type=item.create&secrets=a&Secret=b&secret_x=c"));
	expect_line(&r, HEAD "\"params\":{\"type\":\"item.create\","
			     "\"secrets\":\"a\",\"Secret\":\"b\","
			     "\"secret_x\":\"c\"}}\n");
}

static void empty_values_and_empty_params(void **state)
{
	(void)state;
	struct form f;
	form_init(&f);
	struct record r = rec(&f);
	r.remote_addr = "";
	expect_line(&r, "{\"id\":\"X\",\"received\":\"2026-11-27T05:48:19."
			"123456Z\",\"type\":\"item.create\",\"remote_addr\":"
			"\"\",\"params\":{}}\n");
	r = rec(form_of("type=item.create&flag&e="));
	expect_line(&r, HEAD "\"params\":{\"type\":\"item.create\","
			     "\"flag\":\"\",\"e\":\"\"}}\n");
}

static void control_characters_are_escaped(void **state)
{
	(void)state;
	struct record r = rec(form_of("type=item.create"
				      "&v=a%0Ab%09c%01d%0De%08f%0Cg%1Fh"
				      "&k%0Ay=1"));
	expect_line(&r, HEAD "\"params\":{\"type\":\"item.create\","
			     "\"v\":\"a\\nb\\tc\\u0001d\\re\\bf\\fg\\u001Fh\","
			     "\"k\\ny\":\"1\"}}\n");
}

static void quotes_and_backslashes_are_escaped(void **state)
{
	(void)state;
	struct record r = rec(form_of("type=item.create"
				      "&q=say+%22hi%22+%5C+back%5C"
				      "&%22k%5C=%5C%5C"));
	expect_line(&r, HEAD "\"params\":{\"type\":\"item.create\","
			     "\"q\":\"say \\\"hi\\\" \\\\ back\\\\\","
			     "\"\\\"k\\\\\":\"\\\\\\\\\"}}\n");
}

static void utf8_is_written_raw(void **state)
{
	(void)state;
	struct record r = rec(form_of("type=item.create"
				      "&n=caf%C3%A9+%E6%BC%A2+%F0%9F%98%80"
				      "&%C3%A9=%EF%BF%BF"));
	expect_line(&r, HEAD "\"params\":{\"type\":\"item.create\","
			     "\"n\":\"caf\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80\","
			     "\"\xc3\xa9\":\"\xef\xbf\xbf\"}}\n");
}

static void slash_is_not_escaped(void **state)
{
	(void)state;
	struct record r = rec(form_of("type=item.create"
				      "&url=https%3A%2F%2Fexample.com%2Fa%2Fb"));
	expect_line(&r, HEAD "\"params\":{\"type\":\"item.create\","
			     "\"url\":\"https://example.com/a/b\"}}\n");
}

static void verification_is_the_last_key(void **state)
{
	(void)state;
	struct record r = rec(form_of("type=hook.verify&hook_id=7&code=abc"));
	r.type = "hook.verify";
	r.verify_status = "validated";
	r.verify_detail = "HTTP 204";
	expect_line(&r, "{\"id\":\"X\",\"received\":\"2026-11-27T05:48:19."
			"123456Z\",\"type\":\"hook.verify\",\"remote_addr\":"
			"\"127.0.0.1\",\"params\":{\"type\":\"hook.verify\","
			"\"hook_id\":\"7\",\"code\":\"abc\"},\"verification\":"
			"{\"status\":\"validated\",\"detail\":\"HTTP 204\"}}\n");
}

static void verification_detail_null_is_empty(void **state)
{
	(void)state;
	struct record r = rec(form_of("type=hook.verify&hook_id=7&code=abc"));
	r.type = "hook.verify";
	r.verify_status = "skipped";
	r.verify_detail = NULL;
	expect_line(&r, "{\"id\":\"X\",\"received\":\"2026-11-27T05:48:19."
			"123456Z\",\"type\":\"hook.verify\",\"remote_addr\":"
			"\"127.0.0.1\",\"params\":{\"type\":\"hook.verify\","
			"\"hook_id\":\"7\",\"code\":\"abc\"},\"verification\":"
			"{\"status\":\"skipped\",\"detail\":\"\"}}\n");
	r.verify_status = "failed";
	r.verify_detail = "401 \"invalid_token\"\n";
	expect_line(&r, "{\"id\":\"X\",\"received\":\"2026-11-27T05:48:19."
			"123456Z\",\"type\":\"hook.verify\",\"remote_addr\":"
			"\"127.0.0.1\",\"params\":{\"type\":\"hook.verify\","
			"\"hook_id\":\"7\",\"code\":\"abc\"},\"verification\":"
			"{\"status\":\"failed\",\"detail\":\"401 "
			"\\\"invalid_token\\\"\\n\"}}\n");
}

static void params_built_by_hand(void **state)
{
	(void)state;
	/* record.h needs only a struct form, not form_parse. */
	struct form f;
	form_init(&f);
	add(&f, "type", "item.create");
	add(&f, "secret", "x");
	add(&f, "item_id", "1");
	struct record r = rec(&f);
	expect_line(&r, HEAD "\"params\":{\"type\":\"item.create\","
			     "\"item_id\":\"1\"}}\n");
}

/* ---- round trip -------------------------------------------------------- */

static void line_round_trips_through_a_json_parser(void **state)
{
	(void)state;
	/* Every byte value a param may hold (1..0x7f), plus multibyte. */
	char body[2048];
	size_t used = 0;
	used += (size_t)snprintf(body, sizeof body, "type=item.create&all=");
	for (int c = 1; c < 0x80; c++)
		used += (size_t)snprintf(body + used, sizeof body - used,
					 "%%%02X", c);
	snprintf(body + used, sizeof body - used,
		 "&%%01k%%22%%5C%%2F=%%C3%%A9%%E6%%BC%%A2%%F0%%9F%%98%%80"
		 "&secret=no&last=%%7F");
	const struct form *p = form_of(body);
	struct record r = rec(p);
	r.type = "item.create";
	r.verify_status = "failed";
	r.verify_detail = "d\x01";

	size_t len = 0;
	char *line = record_encode(&r, &len);
	assert_non_null(line);
	assert_true(len > 0);
	assert_int_equal(line[len - 1], '\n');
	assert_null(memchr(line, '\n', len - 1)); /* one line */

	json_error_t jerr;
	json_t *root = json_loadb(line, len, 0, &jerr);
	if (root == NULL)
		fail_msg("not JSON: %s", jerr.text);
	assert_string_equal(json_string_value(json_object_get(root, "id")),
			    "X");
	assert_string_equal(
		json_string_value(json_object_get(root, "received")),
		"2026-11-27T05:48:19.123456Z");
	json_t *jp = json_object_get(root, "params");
	assert_true(json_is_object(jp));

	/* Every param but secret, same bytes, same order. */
	void *it = json_object_iter(jp);
	size_t seen = 0;
	for (size_t i = 0; i < p->n; i++) {
		const struct form_field *f = &p->f[i];
		if (strcmp(f->key, "secret") == 0)
			continue;
		assert_non_null(it);
		const char *k = json_object_iter_key(it);
		json_t *v = json_object_iter_value(it);
		assert_int_equal(strlen(k), f->key_len);
		assert_memory_equal(k, f->key, f->key_len);
		assert_true(json_is_string(v));
		assert_int_equal(json_string_length(v), f->val_len);
		assert_memory_equal(json_string_value(v), f->val, f->val_len);
		it = json_object_iter_next(jp, it);
		seen++;
	}
	assert_null(it);
	assert_int_equal(seen, p->n - 1);
	assert_int_equal(json_object_size(jp), p->n - 1);

	json_t *v = json_object_get(root, "verification");
	assert_string_equal(json_string_value(json_object_get(v, "status")),
			    "failed");
	assert_string_equal(json_string_value(json_object_get(v, "detail")),
			    "d\x01");
	json_decref(root);
	free(line);
}

static void top_level_keys_in_order(void **state)
{
	(void)state;
	static const char *const want[] = {"id", "received", "type",
					   "remote_addr", "params",
					   "verification"};
	struct record r = rec(form_of("type=hook.verify&hook_id=1&code=c"));
	r.verify_status = "skipped";
	size_t len = 0;
	char *line = record_encode(&r, &len);
	assert_non_null(line);
	json_t *root = json_loadb(line, len, 0, NULL);
	assert_non_null(root);
	size_t i = 0;
	for (void *it = json_object_iter(root); it != NULL;
	     it = json_object_iter_next(root, it)) {
		assert_true(i < 6);
		assert_string_equal(json_object_iter_key(it), want[i]);
		i++;
	}
	assert_int_equal(i, 6);
	json_decref(root);
	free(line);
}

/* ---- record_stamp ------------------------------------------------------ */

static void stamp_received_is_rfc3339_utc_microseconds(void **state)
{
	(void)state;
	regex_t re;
	struct stamp st;
	assert_int_equal(
		regcomp(&re,
			"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
			"[0-9]{2}\\.[0-9]{6}Z$",
			REG_EXTENDED | REG_NOSUB),
		0);
	/* A local zone far from UTC must not leak into the stamp. */
	setenv("TZ", "Pacific/Kiritimati", 1);
	tzset();
	/* time() may read a coarser clock; compare with the same one. */
	struct timespec before;
	struct timespec after;
	assert_int_equal(clock_gettime(CLOCK_REALTIME, &before), 0);
	assert_int_equal(record_stamp(&st), 0);
	assert_int_equal(clock_gettime(CLOCK_REALTIME, &after), 0);
	if (regexec(&re, st.received, 0, NULL, 0) != 0)
		fail_msg("received \"%s\" is not RFC 3339 UTC with µs",
			 st.received);
	regfree(&re);

	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *rest = strptime(st.received, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(rest);
	time_t t = timegm(&tm);
	assert_true(t >= before.tv_sec && t <= after.tv_sec);
	unsetenv("TZ");
	tzset();
}

static void stamp_id_holds_microseconds_and_pid(void **state)
{
	(void)state;
	struct stamp st;
	char pid[32];
	regex_t re;
	assert_int_equal(record_stamp(&st), 0);
	snprintf(pid, sizeof pid, "-%ld", (long)getpid());
	assert_true(strlen(st.id) > 0);
	assert_true(strlen(st.id) < RECORD_ID_MAX);
	assert_int_equal(regcomp(&re, "^[0-9]{16}-[0-9]+$",
				 REG_EXTENDED | REG_NOSUB),
			 0);
	if (regexec(&re, st.id, 0, NULL, 0) != 0)
		fail_msg("id \"%s\" is not <16 digits>-<pid>", st.id);
	regfree(&re);
	size_t n = strlen(st.id);
	size_t p = strlen(pid);
	assert_true(n > p);
	assert_string_equal(st.id + n - p, pid);

	/* The microseconds are the received time's, give or take a step. */
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	assert_non_null(strptime(st.received, "%Y-%m-%dT%H:%M:%S", &tm));
	long long secs = (long long)timegm(&tm);
	long long id_secs = strtoll(st.id, NULL, 10) / 1000000;
	assert_true(id_secs >= secs && id_secs <= secs + 1);
}

static void stamp_ids_strictly_increase_as_strings(void **state)
{
	(void)state;
	struct stamp prev;
	struct stamp cur;
	assert_int_equal(record_stamp(&prev), 0);
	for (int i = 0; i < 10000; i++) {
		assert_int_equal(record_stamp(&cur), 0);
		if (strcmp(prev.id, cur.id) >= 0)
			fail_msg("call %d: \"%s\" does not sort after \"%s\"",
				 i, cur.id, prev.id);
		prev = cur;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(golden_line),
		cmocka_unit_test(params_keep_arrival_order),
		cmocka_unit_test(secret_is_never_spooled),
		cmocka_unit_test(empty_values_and_empty_params),
		cmocka_unit_test(control_characters_are_escaped),
		cmocka_unit_test(quotes_and_backslashes_are_escaped),
		cmocka_unit_test(utf8_is_written_raw),
		cmocka_unit_test(slash_is_not_escaped),
		cmocka_unit_test(verification_is_the_last_key),
		cmocka_unit_test(verification_detail_null_is_empty),
		cmocka_unit_test(params_built_by_hand),
		cmocka_unit_test(line_round_trips_through_a_json_parser),
		cmocka_unit_test(top_level_keys_in_order),
		cmocka_unit_test(stamp_received_is_rfc3339_utc_microseconds),
		cmocka_unit_test(stamp_id_holds_microseconds_and_pid),
		cmocka_unit_test(stamp_ids_strictly_increase_as_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
