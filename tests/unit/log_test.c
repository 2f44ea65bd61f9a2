/*
 * log_test.c - one line per diagnostic,
 * "podio-hook[PID]: LEVEL: message key=value", levels filtered, the line
 * always one line, bounded, and free of control bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

#define MAX_LINES 16

/* What the sink received: each call is one line. */
static struct {
	char line[MAX_LINES][4096];
	size_t len[MAX_LINES];
	int n;
} got;

static void capture(const char *line, size_t len)
{
	assert_true(got.n < MAX_LINES);
	assert_true(len < sizeof got.line[0]);
	memcpy(got.line[got.n], line, len);
	got.line[got.n][len] = '\0';
	got.len[got.n] = len;
	got.n++;
}

static int setup(void **state)
{
	(void)state;
	memset(&got, 0, sizeof got);
	log_set_level(LOG_INFO);
	log_set_sink(capture);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_set_sink(NULL);
	log_set_level(LOG_INFO);
	return 0;
}

/* "podio-hook[PID]: " for this process. */
static const char *prefix(void)
{
	static char p[64];
	snprintf(p, sizeof p, "podio-hook[%ld]: ", (long)getpid());
	return p;
}

static void expect_line(int i, const char *level, const char *msg)
{
	char want[4096];
	int w = snprintf(want, sizeof want, "%s%s: %s\n", prefix(), level, msg);
	assert_true(w > 0 && (size_t)w < sizeof want);
	assert_true(i < got.n);
	assert_int_equal(got.len[i], strlen(want));
	assert_string_equal(got.line[i], want);
}

static void default_level_is_info(void **state)
{
	(void)state;
	/* Runs first, before any test sets a level. */
	assert_int_equal(log_get_level(), LOG_INFO);
}

static void line_format(void **state)
{
	(void)state;
	log_warn("message k=%s", "v");
	assert_int_equal(got.n, 1);
	expect_line(0, "warn", "message k=v");
	/* Exactly, with this pid. */
	char want[128];
	snprintf(want, sizeof want, "podio-hook[%ld]: warn: message k=v\n",
		 (long)getpid());
	assert_string_equal(got.line[0], want);
}

static void every_level_has_its_name(void **state)
{
	(void)state;
	log_set_level(LOG_DEBUG);
	log_error("e n=%d", 1);
	log_warn("w");
	log_info("i path=%s", "/var/spool");
	log_debug("d");
	log_msg(LOG_WARN, "via %s", "log_msg");
	assert_int_equal(got.n, 5);
	expect_line(0, "error", "e n=1");
	expect_line(1, "warn", "w");
	expect_line(2, "info", "i path=/var/spool");
	expect_line(3, "debug", "d");
	expect_line(4, "warn", "via log_msg");
}

static void levels_above_the_threshold_are_dropped(void **state)
{
	(void)state;
	log_set_level(LOG_WARN);
	assert_int_equal(log_get_level(), LOG_WARN);
	log_error("kept 1");
	log_warn("kept 2");
	log_info("dropped");
	log_debug("dropped");
	assert_int_equal(got.n, 2);
	expect_line(0, "error", "kept 1");
	expect_line(1, "warn", "kept 2");

	memset(&got, 0, sizeof got);
	log_set_level(LOG_ERROR);
	log_warn("dropped");
	log_error("kept");
	assert_int_equal(got.n, 1);
	expect_line(0, "error", "kept");

	memset(&got, 0, sizeof got);
	log_set_level(LOG_INFO);
	log_debug("dropped");
	log_info("kept");
	assert_int_equal(got.n, 1);
	expect_line(0, "info", "kept");
}

static void newlines_in_the_message_become_spaces(void **state)
{
	(void)state;
	log_warn("first\nsecond\r\nthird %s", "a\nb");
	assert_int_equal(got.n, 1);
	expect_line(0, "warn", "first second  third a b");
	/* One '\n', at the end. */
	assert_ptr_equal(strchr(got.line[0], '\n'),
			 got.line[0] + got.len[0] - 1);
}

static void control_bytes_from_a_request_are_escaped(void **state)
{
	(void)state;
	/* A hook_id as a sender may send it: ESC [ 2 J, a tab, DEL, BEL. */
	log_warn("hook_id=%s type=%s", "7\x1b[2J\t\x7f\a", "a.b\x01");
	assert_int_equal(got.n, 1);
	expect_line(0, "warn",
		    "hook_id=7\\x1b[2J\\x09\\x7f\\x07 type=a.b\\x01");
	for (size_t i = 0; i + 1 < got.len[0]; i++) {
		unsigned char b = (unsigned char)got.line[0][i];
		if (b < 0x20 || b == 0x7f)
			fail_msg("control byte 0x%02x at %zu", b, i);
	}
}

static void c1_controls_in_utf8_are_escaped_other_text_kept(void **state)
{
	(void)state;
	/* U+009B (CSI) and U+0085 (NEL) are controls; é and € are text. */
	log_info("x=%s", "a\xc2\x9b"
			 "1m\xc2\x85"
			 "b \xc3\xa9\xe2\x82\xac");
	assert_int_equal(got.n, 1);
	expect_line(0, "info",
		    "x=a\\xc2\\x9b1m\\xc2\\x85b \xc3\xa9\xe2\x82\xac");
}

static void a_cut_never_splits_an_escape(void **state)
{
	(void)state;
	static char msg[3000];
	memset(msg, '\x1b', sizeof msg - 1);
	msg[sizeof msg - 1] = '\0';
	log_error("%s", msg);
	assert_int_equal(got.n, 1);
	size_t len = got.len[0];
	assert_true(len <= 2048);
	const char *body = got.line[0] + strlen(prefix()) + strlen("error: ");
	size_t blen = (size_t)(got.line[0] + len - 1 - body);
	/* Whole "\x1b" escapes only, and nearly 2 KiB of them. */
	assert_int_equal(blen % 4, 0);
	assert_true(len >= 2040);
	for (size_t i = 0; i < blen; i += 4)
		assert_memory_equal(body + i, "\\x1b", 4);
	assert_int_equal(got.line[0][len - 1], '\n');
}

static void empty_message_is_still_a_line(void **state)
{
	(void)state;
	log_info("%s", "");
	assert_int_equal(got.n, 1);
	expect_line(0, "info", "");
}

static void very_long_message_is_cut_and_ends_in_newline(void **state)
{
	(void)state;
	static char msg[5000];
	memset(msg, 'x', sizeof msg - 1);
	msg[sizeof msg - 1] = '\0';
	log_warn("long=%s", msg);
	assert_int_equal(got.n, 1);
	size_t len = got.len[0];
	/* "cut at 2 KiB": no longer, and not cut far short of it. */
	assert_true(len <= 2048);
	assert_true(len >= 2000);
	assert_int_equal(got.line[0][len - 1], '\n');
	assert_ptr_equal(strchr(got.line[0], '\n'), got.line[0] + len - 1);
	assert_int_equal(strncmp(got.line[0], prefix(), strlen(prefix())), 0);
	const char *body = got.line[0] + strlen(prefix()) + strlen("warn: ");
	assert_int_equal(strncmp(body, "long=xxx", 8), 0);
	for (const char *p = body + 5; p < got.line[0] + len - 1; p++)
		assert_int_equal(*p, 'x');
}

static void long_message_with_newlines_stays_one_line(void **state)
{
	(void)state;
	static char msg[3000];
	for (size_t i = 0; i < sizeof msg - 1; i++)
		msg[i] = i % 7 == 0 ? '\n' : 'y';
	msg[sizeof msg - 1] = '\0';
	log_error("%s", msg);
	assert_int_equal(got.n, 1);
	assert_ptr_equal(strchr(got.line[0], '\n'),
			 got.line[0] + got.len[0] - 1);
}

static void level_names_parse(void **state)
{
	(void)state;
	enum log_level l = LOG_INFO;
	assert_int_equal(log_level_parse("error", &l), 0);
	assert_int_equal(l, LOG_ERROR);
	assert_int_equal(log_level_parse("warn", &l), 0);
	assert_int_equal(l, LOG_WARN);
	assert_int_equal(log_level_parse("info", &l), 0);
	assert_int_equal(l, LOG_INFO);
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOG_DEBUG);
}

static void other_level_names_are_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {"",	   "warning", "verbose", "err",
					  "info ", " info",   "trace",	 "0"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum log_level l = LOG_DEBUG;
		if (log_level_parse(bad[i], &l) != -1)
			fail_msg("\"%s\" parsed as a level", bad[i]);
		assert_int_equal(l, LOG_DEBUG); /* untouched */
	}
}

static void default_sink_writes_one_line_to_stderr(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/log_test.XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	log_set_sink(NULL);
	log_warn("to stderr k=%d", 7);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);

	char buf[256];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	char want[128];
	snprintf(want, sizeof want, "%swarn: to stderr k=7\n", prefix());
	assert_string_equal(buf, want);
	assert_int_equal(got.n, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(default_level_is_info),
	    T(line_format),
	    T(every_level_has_its_name),
	    T(levels_above_the_threshold_are_dropped),
	    T(newlines_in_the_message_become_spaces),
	    T(control_bytes_from_a_request_are_escaped),
	    T(c1_controls_in_utf8_are_escaped_other_text_kept),
	    T(a_cut_never_splits_an_escape),
	    T(empty_message_is_still_a_line),
	    T(very_long_message_is_cut_and_ends_in_newline),
	    T(long_message_with_newlines_stays_one_line),
	    T(level_names_parse),
	    T(other_level_names_are_refused),
	    T(default_sink_writes_one_line_to_stderr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
