/*
 * num_test.c - the one number parser: digits only, a range, no wrapping
 * (SPEC section 8: "--max-attempts 4294967297 is exit 2, never a wrapped
 * value").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "num.h"

struct num_case {
	const char *s;
	unsigned long long min, max;
	enum num_status want;
	unsigned long long value; /* with NUM_OK */
};

static void check(const struct num_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned long long v = 777;
		enum num_status got =
		    num_parse(cases[i].s, cases[i].min, cases[i].max, &v);
		if (got != cases[i].want)
			fail_msg("\"%s\" in [%llu, %llu]: status %d, want %d",
				 cases[i].s, cases[i].min, cases[i].max,
				 (int)got, (int)cases[i].want);
		if (got == NUM_OK && v != cases[i].value)
			fail_msg("\"%s\": value %llu, want %llu", cases[i].s, v,
				 cases[i].value);
		if (got != NUM_OK && v != 777)
			fail_msg("\"%s\": refused, yet *out was written",
				 cases[i].s);
	}
}

static void decimal_digits_within_range_are_accepted(void **state)
{
	(void)state;
	static const struct num_case cases[] = {
	    {"0", 0, 10, NUM_OK, 0},
	    {"10", 0, 10, NUM_OK, 10},
	    {"007", 1, 10, NUM_OK, 7},
	    {"18446744073709551615", 0, ULLONG_MAX, NUM_OK, ULLONG_MAX},
	};
	check(cases, sizeof cases / sizeof cases[0]);
}

static void anything_but_digits_is_a_syntax_error(void **state)
{
	(void)state;
	static const struct num_case cases[] = {
	    {"", 0, 10, NUM_SYNTAX, 0},	     {"-1", 0, 10, NUM_SYNTAX, 0},
	    {"+1", 0, 10, NUM_SYNTAX, 0},    {" 1", 0, 10, NUM_SYNTAX, 0},
	    {"1 ", 0, 10, NUM_SYNTAX, 0},    {"0x10", 0, 99, NUM_SYNTAX, 0},
	    {"1e3", 0, 9999, NUM_SYNTAX, 0}, {"1.5", 0, 10, NUM_SYNTAX, 0},
	    {"٣", 0, 10, NUM_SYNTAX, 0},
	};
	check(cases, sizeof cases / sizeof cases[0]);
}

static void values_outside_the_range_never_wrap(void **state)
{
	(void)state;
	static const struct num_case cases[] = {
	    {"4294967297", 1, 1000000, NUM_RANGE, 0},
	    {"18446744073709551616", 0, ULLONG_MAX, NUM_RANGE, 0},
	    {"99999999999999999999999999", 0, ULLONG_MAX, NUM_RANGE, 0},
	    {"0", 1, 5, NUM_RANGE, 0},
	    {"6", 1, 5, NUM_RANGE, 0},
	};
	check(cases, sizeof cases / sizeof cases[0]);
}

static void
an_overflowing_number_with_a_bad_byte_is_a_syntax_error(void **state)
{
	(void)state;
	static const struct num_case cases[] = {
	    {"99999999999999999999999x", 0, ULLONG_MAX, NUM_SYNTAX, 0},
	};
	check(cases, sizeof cases / sizeof cases[0]);
}

static void octal_modes_parse_in_base_eight(void **state)
{
	(void)state;
	unsigned long long v = 0;
	assert_int_equal(num_parse_n("0640", 4, 8, 0, 0777, &v), NUM_OK);
	assert_int_equal(v, 0640);
	assert_int_equal(num_parse_n("0680", 4, 8, 0, 0777, &v), NUM_SYNTAX);
	assert_int_equal(num_parse_n("1000", 4, 8, 0, 0777, &v), NUM_RANGE);
	/* Only len bytes count: "12" of "123". */
	assert_int_equal(num_parse_n("123", 2, 10, 0, 99, &v), NUM_OK);
	assert_int_equal(v, 12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(decimal_digits_within_range_are_accepted),
	    cmocka_unit_test(anything_but_digits_is_a_syntax_error),
	    cmocka_unit_test(values_outside_the_range_never_wrap),
	    cmocka_unit_test(
		an_overflowing_number_with_a_bad_byte_is_a_syntax_error),
	    cmocka_unit_test(octal_modes_parse_in_base_eight),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
