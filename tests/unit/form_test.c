/*
 * form_test.c - SPEC section 4, how a form body or query string decodes:
 * split on '&', each field at its first '=', '+' then %XX, empty fields
 * skipped, empty keys, bad escapes, NUL and invalid UTF-8, duplicates and
 * the 64-field bound refused; query and body merged query first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "form.h"

/* Room for the longest input here plus its terminator and a canary. */
#define BUF_MAX 4096
#define CANARY '\x5a'

struct parsed {
	char buf[BUF_MAX];
	struct form form;
};

/* Query and body buffers: a form points into them, so they are static. */
static struct parsed one;
static struct parsed two;

/*
 * Parses s[0..n) from p's buffer into a fresh form.  Fills the buffer
 * beyond n + 1 with a canary and checks form_parse wrote nothing there:
 * the contract is room for len + 1 bytes, no more.
 */
static enum outcome parse_n(struct parsed *p, const char *s, size_t n)
{
	assert_true(n + 2 < sizeof p->buf);
	memset(p->buf, CANARY, sizeof p->buf);
	memcpy(p->buf, s, n);
	form_init(&p->form);
	enum outcome rc = form_parse(&p->form, p->buf, n);
	for (size_t i = n + 1; i < sizeof p->buf; i++)
		assert_int_equal(p->buf[i], CANARY);
	return rc;
}

static enum outcome parse(struct parsed *p, const char *s)
{
	return parse_n(p, s, strlen(s));
}

/* Checks that field i is exactly key = val, NUL-terminated, with lengths. */
static void expect_field_n(const struct form *f, size_t i, const char *key,
			   const char *val, size_t val_len)
{
	assert_true(i < f->n);
	const struct form_field *fld = &f->f[i];
	assert_int_equal(fld->key_len, strlen(key));
	assert_memory_equal(fld->key, key, strlen(key));
	assert_int_equal(fld->key[fld->key_len], '\0');
	assert_int_equal(fld->val_len, val_len);
	assert_memory_equal(fld->val, val, val_len);
	assert_int_equal(fld->val[fld->val_len], '\0');
}

static void expect_field(const struct form *f, size_t i, const char *key,
			 const char *val)
{
	expect_field_n(f, i, key, val, strlen(val));
}

/*
 * Checks the whole form against a NULL-terminated list of key, value
 * pairs, in order.
 */
static void expect_fields(const struct form *f, const char *const *kv)
{
	size_t n = 0;
	while (kv[2 * n] != NULL) {
		expect_field(f, n, kv[2 * n], kv[2 * n + 1]);
		n++;
	}
	assert_int_equal(f->n, n);
}

/* Parses input and fails naming it when the outcome is not want. */
static void expect_outcome(const char *input, enum outcome want)
{
	enum outcome got = parse(&one, input);
	if (got != want)
		fail_msg("\"%s\": got \"%s\", want \"%s\"", input,
			 outcome_text(got), outcome_text(want));
}

#define FIELDS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- splitting and decoding ------------------------------------------ */

static void plain_fields_in_order(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "type=item.create&item_id=1&hook_id=42"),
			 OUT_OK);
	expect_fields(&one.form, FIELDS("type", "item.create", "item_id", "1",
					"hook_id", "42"));
}

static void empty_input_has_no_fields(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, ""), OUT_OK);
	assert_int_equal(one.form.n, 0);
}

static void plus_decodes_to_space(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "a=b+c&d+e=f&g=++"), OUT_OK);
	expect_fields(&one.form, FIELDS("a", "b c", "d e", "f", "g", "  "));
}

static void escaped_plus_stays_plus(void **state)
{
	(void)state;
	/* '+' becomes a space first, then %XX: %2B is a literal '+'. */
	assert_int_equal(parse(&one, "a=%2B&b=1%2b1"), OUT_OK);
	expect_fields(&one.form, FIELDS("a", "+", "b", "1+1"));
}

static void percent_hex_either_case(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "a=%2f%2F%41%6a%6A&%4B%4b=x"), OUT_OK);
	expect_fields(&one.form, FIELDS("a", "//Ajj", "KK", "x"));
}

static void escaped_delimiters_are_data(void **state)
{
	(void)state;
	/* %26 and %3D decode after splitting, so they never split. */
	assert_int_equal(parse(&one, "a=x%26y%3Dz&%26=amp&%3D=eq"), OUT_OK);
	expect_fields(&one.form,
		      FIELDS("a", "x&y=z", "&", "amp", "=", "eq"));
}

static void field_without_equals_has_empty_value(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "flag&a=1&other"), OUT_OK);
	expect_fields(&one.form, FIELDS("flag", "", "a", "1", "other", ""));
}

static void field_with_equals_and_nothing_after_has_empty_value(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "a=&b=2&c="), OUT_OK);
	expect_fields(&one.form, FIELDS("a", "", "b", "2", "c", ""));
}

static void value_containing_equals_is_kept_whole(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "a=b=c&d==&e=x=y=z"), OUT_OK);
	expect_fields(&one.form, FIELDS("a", "b=c", "d", "=", "e", "x=y=z"));
}

static void empty_fields_are_skipped(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "a=1&&b=2"), OUT_OK);
	expect_fields(&one.form, FIELDS("a", "1", "b", "2"));

	assert_int_equal(parse(&one, "a=1&b=2&"), OUT_OK);
	expect_fields(&one.form, FIELDS("a", "1", "b", "2"));

	assert_int_equal(parse(&one, "&a=1&b=2"), OUT_OK);
	expect_fields(&one.form, FIELDS("a", "1", "b", "2"));

	assert_int_equal(parse(&one, "&&a=1&&&b=2&&"), OUT_OK);
	expect_fields(&one.form, FIELDS("a", "1", "b", "2"));

	assert_int_equal(parse(&one, "&&&"), OUT_OK);
	assert_int_equal(one.form.n, 0);
}

static void keys_and_values_are_nul_terminated_with_lengths(void **state)
{
	(void)state;
	/* Decoding shrinks in place; each string still ends where it says. */
	assert_int_equal(parse(&one, "k%41%42=v%43%44&x&y=&%7e=%7E%7e"),
			 OUT_OK);
	expect_fields(&one.form,
		      FIELDS("kAB", "vCD", "x", "", "y", "", "~", "~~"));
	for (size_t i = 0; i < one.form.n; i++) {
		const struct form_field *f = &one.form.f[i];
		assert_int_equal(strlen(f->key), f->key_len);
		assert_int_equal(strlen(f->val), f->val_len);
	}
}

static void parse_uses_only_len_bytes(void **state)
{
	(void)state;
	/* Bytes after len are not part of the input. */
	static char b1[] = "a=1&b=2&c=%zz";
	static char b2[] = "a=1&b=2&c=%zz";
	struct form f;
	form_init(&f);
	assert_int_equal(form_parse(&f, b1, 3), OUT_OK);
	expect_fields(&f, FIELDS("a", "1"));
	form_init(&f);
	assert_int_equal(form_parse(&f, b2, 7), OUT_OK);
	expect_fields(&f, FIELDS("a", "1", "b", "2"));
	/* An escape cut by len is cut, whatever follows in memory. */
	static char b3[] = "a=%41";
	static char b4[] = "%41=1";
	form_init(&f);
	assert_int_equal(form_parse(&f, b3, 4), OUT_BAD_ESCAPE);
	form_init(&f);
	assert_int_equal(form_parse(&f, b4, 2), OUT_BAD_ESCAPE);
}

static void parse_appends_to_a_form(void **state)
{
	(void)state;
	static char b1[] = "a=1";
	static char b2[] = "b=2&a=3";
	struct form f;
	form_init(&f);
	assert_int_equal(form_parse(&f, b1, strlen(b1)), OUT_OK);
	/* A duplicate counts within one buffer only: merging decides. */
	assert_int_equal(form_parse(&f, b2, strlen(b2)), OUT_OK);
	expect_fields(&f, FIELDS("a", "1", "b", "2", "a", "3"));
}

/* ---- refusals -------------------------------------------------------- */

static void empty_key_is_refused(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "=x"), OUT_EMPTY_KEY);
	assert_int_equal(parse(&one, "="), OUT_EMPTY_KEY);
	assert_int_equal(parse(&one, "a=1&=x&b=2"), OUT_EMPTY_KEY);
	assert_int_equal(parse(&one, "a=1&="), OUT_EMPTY_KEY);
}

static void fields_before_an_error_stay(void **state)
{
	(void)state;
	/* The caller may still need the secret to choose 403 over 400. */
	assert_int_equal(parse(&one, "secret=s3&type=a.b&x=%zz&y=1"),
			 OUT_BAD_ESCAPE);
	expect_fields(&one.form, FIELDS("secret", "s3", "type", "a.b"));
	assert_int_equal(parse(&one, "secret=s3&=x"), OUT_EMPTY_KEY);
	expect_fields(&one.form, FIELDS("secret", "s3"));
}

static void bad_escapes_are_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"a=%zz",   /* not hex */
		"a=%4",    /* one digit at the end */
		"a=%",     /* nothing after % */
		"a=%4&b=1", /* one digit before the next field */
		"a=%&b=1", /* nothing before the next field */
		"a=%g1",   /* first digit not hex */
		"a=%1g",   /* second digit not hex */
		"a=%+1",   /* '+' is not a hex digit */
		"a=% 1",
		"%zz=1",   /* in a key */
		"%4",      /* key without '=' */
		"a%=1",
		"a=1&b=%x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		expect_outcome(bad[i], OUT_BAD_ESCAPE);
	}
}

static void nul_after_decoding_is_refused(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "a=%00"), OUT_BAD_BYTES);
	assert_int_equal(parse(&one, "a=x%00y"), OUT_BAD_BYTES);
	assert_int_equal(parse(&one, "k%00=v"), OUT_BAD_BYTES);
	assert_int_equal(parse(&one, "%00"), OUT_BAD_BYTES);
	/* A raw NUL inside len is refused as well. */
	assert_int_equal(parse_n(&one, "a=x\0y", 5), OUT_BAD_BYTES);
	assert_int_equal(parse_n(&one, "a\0=y", 4), OUT_BAD_BYTES);
}

static void invalid_utf8_is_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"a=%ff",             /* never in UTF-8 */
		"a=%fe",
		"a=%80",             /* lone continuation byte */
		"a=%bf",
		"a=%c0%af",          /* overlong '/' */
		"a=%c1%bf",          /* overlong */
		"a=%e0%80%af",       /* overlong, 3 bytes */
		"a=%e0%9f%bf",       /* overlong U+07FF */
		"a=%f0%80%80%af",    /* overlong, 4 bytes */
		"a=%f0%8f%bf%bf",    /* overlong U+FFFF */
		"a=%ed%a0%80",       /* surrogate U+D800 */
		"a=%ed%bf%bf",       /* surrogate U+DFFF */
		"a=%f4%90%80%80",    /* U+110000 > U+10FFFF */
		"a=%f5%80%80%80",    /* lead byte past F4 */
		"a=%f8%88%80%80%80", /* 5-byte form */
		"a=%c3",             /* truncated at the end */
		"a=%e6%bc",          /* truncated 3-byte (漢 is e6 bc a2) */
		"a=%f0%9f%98",       /* truncated 4-byte (😀 is f0 9f 98 80) */
		"a=%c3&b=%a9",       /* a sequence cannot span fields */
		"a=%c3x",            /* lead byte, then ASCII */
		"a=%e6%bcx",
		"a=%c3%c3",          /* lead byte, then lead byte */
		"%ff=1",             /* in a key */
		"%c3",               /* key without '=' */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		expect_outcome(bad[i], OUT_BAD_BYTES);
	}
	/* Raw (unescaped) bytes are held to the same rule. */
	assert_int_equal(parse(&one, "a=\xff"), OUT_BAD_BYTES);
	assert_int_equal(parse(&one, "a=\xc0\xaf"), OUT_BAD_BYTES);
	assert_int_equal(parse(&one, "\xed\xa0\x80=1"), OUT_BAD_BYTES);
}

static void valid_multibyte_is_kept_byte_exact(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "e=%C3%A9&k=%e6%bc%a2&s=%F0%9F%98%80"
				     "&%c3%a9t%C3%A9=%e2%82%ac"),
			 OUT_OK);
	expect_fields(&one.form,
		      FIELDS("e", "\xc3\xa9", "k", "\xe6\xbc\xa2", "s",
			     "\xf0\x9f\x98\x80", "\xc3\xa9t\xc3\xa9",
			     "\xe2\x82\xac"));
	/* Raw UTF-8, as a client that does not escape it would send. */
	assert_int_equal(parse(&one, "n=caf\xc3\xa9+\xe6\xbc\xa2\xf0\x9f\x98\x80"),
			 OUT_OK);
	expect_fields(&one.form,
		      FIELDS("n", "caf\xc3\xa9 \xe6\xbc\xa2\xf0\x9f\x98\x80"));
}

static void utf8_boundaries_are_accepted(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "a=%c2%80&b=%df%bf&c=%e0%a0%80"
				     "&d=%ed%9f%bf&e=%ee%80%80&f=%ef%bf%bf"
				     "&g=%f0%90%80%80&h=%f4%8f%bf%bf&i=%7f%01"),
			 OUT_OK);
	expect_fields(&one.form,
		      FIELDS("a", "\xc2\x80",         /* U+0080 */
			     "b", "\xdf\xbf",         /* U+07FF */
			     "c", "\xe0\xa0\x80",     /* U+0800 */
			     "d", "\xed\x9f\xbf",     /* U+D7FF */
			     "e", "\xee\x80\x80",     /* U+E000 */
			     "f", "\xef\xbf\xbf",     /* U+FFFF */
			     "g", "\xf0\x90\x80\x80", /* U+10000 */
			     "h", "\xf4\x8f\xbf\xbf", /* U+10FFFF */
			     "i", "\x7f\x01"));       /* controls are data */
}

static void duplicate_key_is_refused(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "a=1&a=2"), OUT_DUP_KEY);
	assert_int_equal(parse(&one, "a=1&a=1"), OUT_DUP_KEY);
	assert_int_equal(parse(&one, "a&a"), OUT_DUP_KEY);
	assert_int_equal(parse(&one, "a=1&b=2&a="), OUT_DUP_KEY);
	expect_fields(&one.form, FIELDS("a", "1", "b", "2"));
}

static void duplicate_is_found_after_decoding(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "a=1&%61=2"), OUT_DUP_KEY);
	assert_int_equal(parse(&one, "a+b=1&a%20b=2"), OUT_DUP_KEY);
	assert_int_equal(parse(&one, "%C3%A9=1&%c3%a9=2"), OUT_DUP_KEY);
	/* Keys differ by case: not duplicates. */
	assert_int_equal(parse(&one, "a=1&A=2"), OUT_OK);
	/* A prefix is not a duplicate. */
	assert_int_equal(parse(&one, "item=1&item_id=2&it=3"), OUT_OK);
	assert_int_equal(one.form.n, 3);
}

/* Writes "k0=v0&k1=v1&…" with n fields into out. */
static void make_fields(char *out, size_t cap, const char *prefix, size_t n)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(out + used, cap - used, "%s%s%zu=v%zu",
				 i > 0 ? "&" : "", prefix, i, i);
		assert_true(w > 0 && (size_t)w < cap - used);
		used += (size_t)w;
	}
}

static void sixty_four_fields_are_accepted(void **state)
{
	(void)state;
	char s[BUF_MAX];
	make_fields(s, sizeof s, "k", FORM_MAX_FIELDS);
	assert_int_equal(FORM_MAX_FIELDS, 64);
	assert_int_equal(parse(&one, s), OUT_OK);
	assert_int_equal(one.form.n, 64);
	expect_field(&one.form, 0, "k0", "v0");
	expect_field(&one.form, 63, "k63", "v63");
	/* Empty fields do not count. */
	memcpy(s + strlen(s), "&&&", 4);
	assert_int_equal(parse(&one, s), OUT_OK);
	assert_int_equal(one.form.n, 64);
}

static void sixty_five_fields_are_too_many(void **state)
{
	(void)state;
	char s[BUF_MAX];
	make_fields(s, sizeof s, "k", FORM_MAX_FIELDS + 1);
	assert_int_equal(parse(&one, s), OUT_TOO_MANY);
	assert_int_equal(one.form.n, 64);
}

static void too_many_counts_the_whole_form(void **state)
{
	(void)state;
	static char b1[BUF_MAX];
	static char b2[BUF_MAX];
	struct form f;
	make_fields(b1, sizeof b1, "q", 40);
	make_fields(b2, sizeof b2, "b", 25);
	form_init(&f);
	assert_int_equal(form_parse(&f, b1, strlen(b1)), OUT_OK);
	assert_int_equal(form_parse(&f, b2, strlen(b2)), OUT_TOO_MANY);
	assert_int_equal(f.n, 64);
}

/* ---- form_merge -------------------------------------------------------- */

static void merge_puts_query_first(void **state)
{
	(void)state;
	struct form m;
	assert_int_equal(parse(&one, "type=item.create&x=1"), OUT_OK);
	assert_int_equal(parse(&two, "item_id=5&y=2"), OUT_OK);
	assert_int_equal(form_merge(&m, &one.form, &two.form), OUT_OK);
	expect_fields(&m, FIELDS("type", "item.create", "x", "1", "item_id",
				 "5", "y", "2"));
}

static void merge_keeps_same_value_once_at_query_position(void **state)
{
	(void)state;
	struct form m;
	assert_int_equal(parse(&one, "a=1&hook_id=7&b=2"), OUT_OK);
	assert_int_equal(parse(&two, "c=3&hook_id=7&b=2&d=4"), OUT_OK);
	assert_int_equal(form_merge(&m, &one.form, &two.form), OUT_OK);
	expect_fields(&m, FIELDS("a", "1", "hook_id", "7", "b", "2", "c", "3",
				 "d", "4"));
	/* Empty values: "k" and "k=" are the same value. */
	assert_int_equal(parse(&one, "k"), OUT_OK);
	assert_int_equal(parse(&two, "k="), OUT_OK);
	assert_int_equal(form_merge(&m, &one.form, &two.form), OUT_OK);
	expect_fields(&m, FIELDS("k", ""));
}

static void merge_refuses_different_values(void **state)
{
	(void)state;
	struct form m;
	assert_int_equal(parse(&one, "type=item.create"), OUT_OK);
	assert_int_equal(parse(&two, "type=item.update"), OUT_OK);
	assert_int_equal(form_merge(&m, &one.form, &two.form), OUT_CONFLICT);
	/* One value a prefix of the other. */
	assert_int_equal(parse(&one, "a=1"), OUT_OK);
	assert_int_equal(parse(&two, "a=12"), OUT_OK);
	assert_int_equal(form_merge(&m, &one.form, &two.form), OUT_CONFLICT);
	assert_int_equal(form_merge(&m, &two.form, &one.form), OUT_CONFLICT);
	/* Empty against non-empty. */
	assert_int_equal(parse(&one, "a"), OUT_OK);
	assert_int_equal(parse(&two, "b=1&a=x"), OUT_OK);
	assert_int_equal(form_merge(&m, &one.form, &two.form), OUT_CONFLICT);
}

static void merge_compares_decoded_values(void **state)
{
	(void)state;
	struct form m;
	assert_int_equal(parse(&one, "a=x+y&b=%41"), OUT_OK);
	assert_int_equal(parse(&two, "a=x%20y&b=A"), OUT_OK);
	assert_int_equal(form_merge(&m, &one.form, &two.form), OUT_OK);
	expect_fields(&m, FIELDS("a", "x y", "b", "A"));
}

static void merge_with_an_empty_side(void **state)
{
	(void)state;
	struct form m;
	/* type may come from the query string alone. */
	assert_int_equal(parse(&one, "type=item.create&item_id=1"), OUT_OK);
	assert_int_equal(parse(&two, ""), OUT_OK);
	assert_int_equal(form_merge(&m, &one.form, &two.form), OUT_OK);
	expect_fields(&m, FIELDS("type", "item.create", "item_id", "1"));
	assert_int_equal(form_merge(&m, &two.form, &one.form), OUT_OK);
	expect_fields(&m, FIELDS("type", "item.create", "item_id", "1"));
	assert_int_equal(form_merge(&m, &two.form, &two.form), OUT_OK);
	assert_int_equal(m.n, 0);
}

static void merge_of_more_than_64_is_too_many(void **state)
{
	(void)state;
	char q[BUF_MAX];
	char b[BUF_MAX];
	struct form m;
	make_fields(q, sizeof q, "q", 40);
	make_fields(b, sizeof b, "b", 25);
	assert_int_equal(parse(&one, q), OUT_OK);
	assert_int_equal(parse(&two, b), OUT_OK);
	assert_int_equal(form_merge(&m, &one.form, &two.form), OUT_TOO_MANY);

	/* 40 + 24 = 64 is fine. */
	make_fields(b, sizeof b, "b", 24);
	assert_int_equal(parse(&two, b), OUT_OK);
	assert_int_equal(form_merge(&m, &one.form, &two.form), OUT_OK);
	assert_int_equal(m.n, 64);
	expect_field(&m, 39, "q39", "v39");
	expect_field(&m, 40, "b0", "v0");
	expect_field(&m, 63, "b23", "v23");

	/* 64 + 64 with every key shared, same values: still 64. */
	make_fields(q, sizeof q, "k", 64);
	assert_int_equal(parse(&one, q), OUT_OK);
	assert_int_equal(parse(&two, q), OUT_OK);
	assert_int_equal(form_merge(&m, &one.form, &two.form), OUT_OK);
	assert_int_equal(m.n, 64);
}

/* ---- form_get ---------------------------------------------------------- */

static void get_finds_by_exact_key(void **state)
{
	(void)state;
	assert_int_equal(parse(&one, "item_id=1&item=2&type=a.b&flag"),
			 OUT_OK);
	const struct form_field *f = form_get(&one.form, "item");
	assert_non_null(f);
	assert_ptr_equal(f, &one.form.f[1]);
	assert_string_equal(f->val, "2");
	f = form_get(&one.form, "flag");
	assert_non_null(f);
	assert_string_equal(f->val, "");
	assert_null(form_get(&one.form, "ite"));
	assert_null(form_get(&one.form, "item_id_"));
	assert_null(form_get(&one.form, "Type"));
	assert_null(form_get(&one.form, ""));
	assert_null(form_get(&one.form, "missing"));
}

static void get_on_an_empty_form_is_null(void **state)
{
	(void)state;
	struct form f;
	form_init(&f);
	assert_int_equal(f.n, 0);
	assert_null(form_get(&f, "type"));
}

/* ---- utf8_valid -------------------------------------------------------- */

struct utf8_case {
	const char *s;
	size_t n;
	int valid;
};

#define U(str, v) {str, sizeof str - 1, v}

static void utf8_valid_edge_cases(void **state)
{
	(void)state;
	static const struct utf8_case cases[] = {
		U("", 1),
		U("plain ascii", 1),
		U("\x00", 1), /* NUL is UTF-8; form.c refuses it separately */
		U("\x7f", 1),
		U("\x80", 0),
		U("\xbf", 0),
		U("\xc0\x80", 0),         /* overlong NUL */
		U("\xc1\xbf", 0),         /* overlong */
		U("\xc2\x80", 1),         /* U+0080 */
		U("\xdf\xbf", 1),         /* U+07FF */
		U("\xc2", 0),             /* truncated */
		U("\xc2\x41", 0),         /* bad continuation */
		U("\xc2\xc2\x80", 0),
		U("\xe0\x9f\xbf", 0),     /* overlong U+07FF */
		U("\xe0\xa0\x80", 1),     /* U+0800 */
		U("\xe6\xbc\xa2", 1),     /* 漢 */
		U("\xe6\xbc", 0),         /* truncated */
		U("\xe6\x3c\xa2", 0),     /* bad second byte */
		U("\xe6\xbc\x22", 0),     /* bad third byte */
		U("\xed\x9f\xbf", 1),     /* U+D7FF */
		U("\xed\xa0\x80", 0),     /* U+D800 */
		U("\xed\xbf\xbf", 0),     /* U+DFFF */
		U("\xee\x80\x80", 1),     /* U+E000 */
		U("\xef\xbf\xbf", 1),     /* U+FFFF */
		U("\xf0\x8f\xbf\xbf", 0), /* overlong U+FFFF */
		U("\xf0\x90\x80\x80", 1), /* U+10000 */
		U("\xf0\x9f\x98\x80", 1), /* 😀 */
		U("\xf4\x8f\xbf\xbf", 1), /* U+10FFFF */
		U("\xf4\x90\x80\x80", 0), /* U+110000 */
		U("\xf5\x80\x80\x80", 0),
		U("\xf7\xbf\xbf\xbf", 0),
		U("\xf8\x88\x80\x80\x80", 0),
		U("\xfc\x84\x80\x80\x80\x80", 0),
		U("\xfe", 0),
		U("\xff", 0),
		U("\xf0\x9f\x98", 0),     /* truncated */
		U("\xf0\x9f", 0),
		U("\xf0", 0),
		U("ok \xc3\xa9 then \xff", 0),
		U("caf\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80", 1),
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got = utf8_valid((const unsigned char *)cases[i].s,
				     cases[i].n);
		if (got != cases[i].valid)
			fail_msg("case %zu: utf8_valid gave %d, want %d", i,
				 got, cases[i].valid);
	}
}

static void utf8_valid_reads_only_n_bytes(void **state)
{
	(void)state;
	const unsigned char s[] = "ab\xc3\xa9\xff";
	assert_int_equal(utf8_valid(s, 4), 1);  /* "ab" + é */
	assert_int_equal(utf8_valid(s, 3), 0);  /* é cut in half */
	assert_int_equal(utf8_valid(s, 5), 0);  /* 0xff included */
	assert_int_equal(utf8_valid(s, 0), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_fields_in_order),
		cmocka_unit_test(empty_input_has_no_fields),
		cmocka_unit_test(plus_decodes_to_space),
		cmocka_unit_test(escaped_plus_stays_plus),
		cmocka_unit_test(percent_hex_either_case),
		cmocka_unit_test(escaped_delimiters_are_data),
		cmocka_unit_test(field_without_equals_has_empty_value),
		cmocka_unit_test(field_with_equals_and_nothing_after_has_empty_value),
		cmocka_unit_test(value_containing_equals_is_kept_whole),
		cmocka_unit_test(empty_fields_are_skipped),
		cmocka_unit_test(keys_and_values_are_nul_terminated_with_lengths),
		cmocka_unit_test(parse_uses_only_len_bytes),
		cmocka_unit_test(parse_appends_to_a_form),
		cmocka_unit_test(empty_key_is_refused),
		cmocka_unit_test(fields_before_an_error_stay),
		cmocka_unit_test(bad_escapes_are_refused),
		cmocka_unit_test(nul_after_decoding_is_refused),
		cmocka_unit_test(invalid_utf8_is_refused),
		cmocka_unit_test(valid_multibyte_is_kept_byte_exact),
		cmocka_unit_test(utf8_boundaries_are_accepted),
		cmocka_unit_test(duplicate_key_is_refused),
		cmocka_unit_test(duplicate_is_found_after_decoding),
		cmocka_unit_test(sixty_four_fields_are_accepted),
		cmocka_unit_test(sixty_five_fields_are_too_many),
		cmocka_unit_test(too_many_counts_the_whole_form),
		cmocka_unit_test(merge_puts_query_first),
		cmocka_unit_test(merge_keeps_same_value_once_at_query_position),
		cmocka_unit_test(merge_refuses_different_values),
		cmocka_unit_test(merge_compares_decoded_values),
		cmocka_unit_test(merge_with_an_empty_side),
		cmocka_unit_test(merge_of_more_than_64_is_too_many),
		cmocka_unit_test(get_finds_by_exact_key),
		cmocka_unit_test(get_on_an_empty_form_is_null),
		cmocka_unit_test(utf8_valid_edge_cases),
		cmocka_unit_test(utf8_valid_reads_only_n_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
