/*
 * podio_test.c - when Podio's rate limit lifts (podio_rate_reset), as the
 * api command and hook sync report it (SPEC sections 1, 11 and 12), and
 * which statuses are the rate limit.  The calls themselves are tested
 * against the fake API (tests/podio/).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "podio.h"

/* 2026-11-27T06:00:00Z */
#define NOW 1795759200LL

static const char podio_420[] =
    "{\"error\":\"rate_limit\",\"error_description\":\"You have hit the "
    "rate limit. Please wait 3600 seconds before trying again\"}";

static struct http_rate rate(const char *reset, const char *retry_after)
{
	struct http_rate r;
	memset(&r, 0, sizeof r);
	snprintf(r.limit, sizeof r.limit, "250");
	snprintf(r.remaining, sizeof r.remaining, "0");
	snprintf(r.reset, sizeof r.reset, "%s", reset);
	snprintf(r.retry_after, sizeof r.retry_after, "%s", retry_after);
	return r;
}

static void rate_limited_is_420_or_429(void **state)
{
	(void)state;
	assert_true(podio_rate_limited(420));
	assert_true(podio_rate_limited(429));
	assert_false(podio_rate_limited(200));
	assert_false(podio_rate_limited(401));
	assert_false(podio_rate_limited(503));
	assert_false(podio_rate_limited(0));
}

static void retry_after_in_seconds_comes_first(void **state)
{
	(void)state;
	struct http_rate r = rate("99", "120");
	assert_int_equal(
	    podio_rate_reset(&r, podio_420, strlen(podio_420), NOW), 120);
	r = rate("", "0");
	assert_int_equal(podio_rate_reset(&r, NULL, 0, NOW), 0);
}

static void retry_after_as_an_http_date(void **state)
{
	(void)state;
	struct http_rate r = rate("", "Fri, 27 Nov 2026 06:02:30 GMT");
	assert_int_equal(podio_rate_reset(&r, NULL, 0, NOW), 150);
	/* A date already past: no wait left. */
	r = rate("", "Fri, 27 Nov 2026 05:00:00 GMT");
	assert_int_equal(podio_rate_reset(&r, NULL, 0, NOW), 0);
}

static void x_rate_limit_reset_is_a_wait_or_a_time(void **state)
{
	(void)state;
	struct http_rate r = rate("300", "");
	assert_int_equal(
	    podio_rate_reset(&r, podio_420, strlen(podio_420), NOW), 300);
	r = rate("1795759500", "");
	assert_int_equal(podio_rate_reset(&r, NULL, 0, NOW), 300);
}

static void podio_wait_in_the_description(void **state)
{
	(void)state;
	struct http_rate r = rate("", "");
	assert_int_equal(
	    podio_rate_reset(&r, podio_420, strlen(podio_420), NOW), 3600);
	/* The same sentence in a one-line error such as p->err. */
	const char *err = "HTTP 420: rate_limit: You have hit the rate limit. "
			  "Please wait 60 seconds before trying again";
	assert_int_equal(podio_rate_reset(&r, err, strlen(err), NOW), 60);
}

static void nothing_said_is_minus_one(void **state)
{
	(void)state;
	struct http_rate r = rate("", "");
	assert_int_equal(podio_rate_reset(&r, NULL, 0, NOW), -1);
	const char *other = "{\"error\":\"rate_limit\"}";
	assert_int_equal(podio_rate_reset(&r, other, strlen(other), NOW), -1);
	/* Values that are not what they claim are ignored, not guessed. */
	r = rate("soon", "-5");
	assert_int_equal(podio_rate_reset(&r, NULL, 0, NOW), -1);
	const char *odd = "please wait 12 minutes";
	assert_int_equal(podio_rate_reset(&r, odd, strlen(odd), NOW), -1);
	const char *huge = "wait 99999999999999999999 seconds";
	assert_int_equal(podio_rate_reset(&r, huge, strlen(huge), NOW), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rate_limited_is_420_or_429),
	    cmocka_unit_test(retry_after_in_seconds_comes_first),
	    cmocka_unit_test(retry_after_as_an_http_date),
	    cmocka_unit_test(x_rate_limit_reset_is_a_wait_or_a_time),
	    cmocka_unit_test(podio_wait_in_the_description),
	    cmocka_unit_test(nothing_said_is_minus_one),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
