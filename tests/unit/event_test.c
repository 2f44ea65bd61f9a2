/*
 * event_test.c - SPEC section 4, what makes decoded parameters an event:
 * a well-formed type, hook.verify's parameters, allowed_hooks and
 * unknown_types, checked in the order of the SPEC's table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "event.h"
#include "form.h"

/* ---- event_type_wellformed ------------------------------------------- */

struct type_case {
	const char *t;
	int ok;
};

static void check_types(const struct type_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int got = event_type_wellformed(cases[i].t, strlen(cases[i].t));
		if (got != cases[i].ok)
			fail_msg("type \"%s\": wellformed gave %d, want %d",
				 cases[i].t, got, cases[i].ok);
	}
}

static void wellformed_types_are_accepted(void **state)
{
	(void)state;
	static const struct type_case cases[] = {
		{"item.create", 1},  {"a.b", 1},
		{"a_1.b2", 1},       {"x.y.z", 1},
		{"hook.verify", 1},  {"a.b_", 1},
		{"a_.b", 1},         {"a.b.c.d.e", 1},
		{"a9.z9_", 1},       {"file.change", 1},
	};
	check_types(cases, sizeof cases / sizeof cases[0]);
}

static void malformed_types_are_refused(void **state)
{
	(void)state;
	static const struct type_case cases[] = {
		{"", 0},
		{"item", 0},          /* needs a dot */
		{"Item.create", 0},   /* upper case */
		{"item.Create", 0},
		{"item.", 0},         /* empty last segment */
		{".item", 0},         /* empty first segment */
		{"item..create", 0},  /* empty middle segment */
		{"1a.b", 0},          /* segment starts with a digit */
		{"a.1b", 0},
		{"_a.b", 0},          /* segment starts with '_' */
		{"a._b", 0},
		{"item-create", 0},   /* '-' */
		{"item.create-x", 0},
		{"item create", 0},
		{"item.create ", 0},
		{"item.create\n", 0},
		{"item/create", 0},   /* would escape the spool directory */
		{"../etc.passwd", 0},
		{"a.b/c", 0},
		{"\xc3\xa9.b", 0},    /* non-ASCII */
		{".", 0},
		{"..", 0},
	};
	check_types(cases, sizeof cases / sizeof cases[0]);
}

static void type_length_is_at_most_64(void **state)
{
	(void)state;
	char t[EVENT_TYPE_MAX + 2];
	assert_int_equal(EVENT_TYPE_MAX, 64);
	/* "a." then b's: exactly 64 characters. */
	memset(t, 'b', sizeof t);
	t[0] = 'a';
	t[1] = '.';
	t[64] = '\0';
	assert_int_equal(strlen(t), 64);
	assert_int_equal(event_type_wellformed(t, 64), 1);
	t[64] = 'b';
	t[65] = '\0';
	assert_int_equal(strlen(t), 65);
	assert_int_equal(event_type_wellformed(t, 65), 0);
}

static void wellformed_reads_only_n_bytes(void **state)
{
	(void)state;
	/* The length is the type's; what follows is not looked at. */
	assert_int_equal(event_type_wellformed("item.create", 4), 0);
	assert_int_equal(event_type_wellformed("item.create", 5), 0);
	assert_int_equal(event_type_wellformed("item.create", 6), 1);
	assert_int_equal(event_type_wellformed("a.b-junk", 3), 1);
}

/* ---- known types ------------------------------------------------------- */

static void known_types_are_the_26_documented(void **state)
{
	(void)state;
	size_t n = 0;
	while (event_known_types[n] != NULL) {
		const char *t = event_known_types[n];
		if (!event_type_known(t))
			fail_msg("%s listed but not known", t);
		if (!event_type_wellformed(t, strlen(t)))
			fail_msg("%s listed but not well-formed", t);
		for (size_t k = 0; k < n; k++) {
			if (strcmp(event_known_types[k], t) == 0)
				fail_msg("%s listed twice", t);
		}
		n++;
	}
	assert_int_equal(n, 26);
}

static void spec_types_are_known(void **state)
{
	(void)state;
	/* SPEC section 1, family by family. */
	static const char *const spec[] = {
		"item.create",    "item.update",    "item.delete",
		"comment.create", "comment.delete", "file.change",
		"app.create",     "app.update",     "app.delete",
		"form.create",    "form.update",    "form.delete",
		"tag.add",        "tag.delete",     "task.create",
		"task.update",    "task.delete",    "member.add",
		"member.remove",  "contact.create", "contact.update",
		"contact.delete", "status.create",  "status.update",
		"status.delete",  "hook.verify",
	};
	for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
		if (!event_type_known(spec[i]))
			fail_msg("%s is not known", spec[i]);
	}
}

static void other_types_are_unknown(void **state)
{
	(void)state;
	assert_int_equal(event_type_known("item.created"), 0);
	assert_int_equal(event_type_known("item"), 0);
	assert_int_equal(event_type_known("Item.create"), 0);
	assert_int_equal(event_type_known("x.y"), 0);
	assert_int_equal(event_type_known(""), 0);
	assert_int_equal(event_type_known("hook.verify "), 0);
}

/* ---- event_check ------------------------------------------------------- */

static char buf[1024];
static struct form params;

static const struct form *form_of(const char *s)
{
	size_t n = strlen(s);
	assert_true(n < sizeof buf);
	memcpy(buf, s, n + 1);
	form_init(&params);
	assert_int_equal(form_parse(&params, buf, n), OUT_OK);
	return &params;
}

static const struct event_policy accept_all = {NULL, 0, 0};
static const struct event_policy reject_unknown = {NULL, 0, 1};
static const char *const hooks_7_12[] = {"7", "12"};
static const struct event_policy hooks_only = {hooks_7_12, 2, 0};
static const struct event_policy hooks_and_reject = {hooks_7_12, 2, 1};

/* Runs event_check on s and fails naming s when the outcome is not want. */
static const struct form_field *check(const char *s,
				      const struct event_policy *p,
				      enum outcome want)
{
	const struct form_field *type = NULL;
	enum outcome got = event_check(form_of(s), p, &type);
	if (got != want)
		fail_msg("\"%s\": got \"%s\", want \"%s\"", s,
			 outcome_text(got), outcome_text(want));
	return type;
}

static void accepted_event_points_at_its_type(void **state)
{
	(void)state;
	const struct form_field *t =
		check("item_id=1&type=item.create", &accept_all, OUT_OK);
	assert_ptr_equal(t, form_get(&params, "type"));
	assert_string_equal(t->val, "item.create");
}

static void missing_type_is_bad_type(void **state)
{
	(void)state;
	check("item_id=1", &accept_all, OUT_BAD_TYPE);
	check("", &accept_all, OUT_BAD_TYPE);
	check("Type=item.create", &accept_all, OUT_BAD_TYPE);
	check("type", &accept_all, OUT_BAD_TYPE);
	check("type=", &accept_all, OUT_BAD_TYPE);
}

static void malformed_type_is_bad_type(void **state)
{
	(void)state;
	check("type=item", &accept_all, OUT_BAD_TYPE);
	check("type=Item.create", &accept_all, OUT_BAD_TYPE);
	check("type=item%2Fcreate", &accept_all, OUT_BAD_TYPE);
	check("type=..%2F..%2Fetc.x", &accept_all, OUT_BAD_TYPE);
}

static void bad_type_comes_first(void **state)
{
	(void)state;
	/* Before hook.verify's parameters, allowed_hooks and reject. */
	check("hook_id=99", &hooks_and_reject, OUT_BAD_TYPE);
	check("type=HOOK.verify", &hooks_and_reject, OUT_BAD_TYPE);
}

static void verify_needs_hook_id_and_code(void **state)
{
	(void)state;
	check("type=hook.verify&code=abc", &accept_all, OUT_VERIFY_PARAMS);
	check("type=hook.verify&hook_id=7", &accept_all, OUT_VERIFY_PARAMS);
	check("type=hook.verify", &accept_all, OUT_VERIFY_PARAMS);
	check("type=hook.verify&hook_id=7&code=", &accept_all,
	      OUT_VERIFY_PARAMS);
	check("type=hook.verify&hook_id=7&code", &accept_all,
	      OUT_VERIFY_PARAMS);
	check("type=hook.verify&hook_id=&code=abc", &accept_all,
	      OUT_VERIFY_PARAMS);
	const struct form_field *t =
		check("type=hook.verify&hook_id=7&code=abc", &accept_all,
		      OUT_OK);
	assert_int_equal(event_is_verify(t), 1);
}

static void other_types_do_not_need_hook_id(void **state)
{
	(void)state;
	/* hook_id may accompany any event; only hook.verify requires it. */
	const struct form_field *t =
		check("type=item.create&item_id=1", &accept_all, OUT_OK);
	assert_int_equal(event_is_verify(t), 0);
	check("type=comment.create&code=", &accept_all, OUT_OK);
}

static void verify_params_come_before_allowed_hooks(void **state)
{
	(void)state;
	check("type=hook.verify&hook_id=99", &hooks_and_reject,
	      OUT_VERIFY_PARAMS);
	check("type=hook.verify&code=x", &hooks_and_reject, OUT_VERIFY_PARAMS);
}

static void allowed_hooks_refuse_absent_hook_id(void **state)
{
	(void)state;
	check("type=item.create&item_id=1", &hooks_only, OUT_HOOK_DENIED);
	check("type=item.create&hook_id=", &hooks_only, OUT_HOOK_DENIED);
	check("type=item.create&hook_id", &hooks_only, OUT_HOOK_DENIED);
}

static void allowed_hooks_refuse_unlisted_hook_id(void **state)
{
	(void)state;
	check("type=item.create&hook_id=8", &hooks_only, OUT_HOOK_DENIED);
	check("type=item.create&hook_id=1", &hooks_only, OUT_HOOK_DENIED);
	check("type=item.create&hook_id=127", &hooks_only, OUT_HOOK_DENIED);
	check("type=item.create&hook_id=07", &hooks_only, OUT_HOOK_DENIED);
	check("type=item.create&hook_id=7+", &hooks_only, OUT_HOOK_DENIED);
	check("type=hook.verify&hook_id=8&code=c", &hooks_only,
	      OUT_HOOK_DENIED);
}

static void allowed_hooks_accept_listed_hook_id(void **state)
{
	(void)state;
	check("type=item.create&hook_id=7", &hooks_only, OUT_OK);
	check("type=item.create&hook_id=12", &hooks_only, OUT_OK);
	check("type=hook.verify&hook_id=12&code=c", &hooks_only, OUT_OK);
	/* A well-formed unknown type is accepted without reject. */
	check("type=x.y&hook_id=7", &hooks_only, OUT_OK);
}

static void without_allowed_hooks_every_hook_id_passes(void **state)
{
	(void)state;
	check("type=item.create&hook_id=424242", &accept_all, OUT_OK);
	check("type=item.create", &accept_all, OUT_OK);
}

static void allowed_hooks_come_before_unknown_type(void **state)
{
	(void)state;
	check("type=x.y&hook_id=99", &hooks_and_reject, OUT_HOOK_DENIED);
	check("type=x.y&hook_id=7", &hooks_and_reject, OUT_UNKNOWN_TYPE);
}

static void unknown_type_rejected_or_accepted_by_policy(void **state)
{
	(void)state;
	check("type=x.y", &reject_unknown, OUT_UNKNOWN_TYPE);
	check("type=item.created", &reject_unknown, OUT_UNKNOWN_TYPE);
	check("type=item.create", &reject_unknown, OUT_OK);
	check("type=hook.verify&hook_id=1&code=c", &reject_unknown, OUT_OK);
	const struct form_field *t = check("type=x.y", &accept_all, OUT_OK);
	assert_string_equal(t->val, "x.y");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(wellformed_types_are_accepted),
		cmocka_unit_test(malformed_types_are_refused),
		cmocka_unit_test(type_length_is_at_most_64),
		cmocka_unit_test(wellformed_reads_only_n_bytes),
		cmocka_unit_test(known_types_are_the_26_documented),
		cmocka_unit_test(spec_types_are_known),
		cmocka_unit_test(other_types_are_unknown),
		cmocka_unit_test(accepted_event_points_at_its_type),
		cmocka_unit_test(missing_type_is_bad_type),
		cmocka_unit_test(malformed_type_is_bad_type),
		cmocka_unit_test(bad_type_comes_first),
		cmocka_unit_test(verify_needs_hook_id_and_code),
		cmocka_unit_test(other_types_do_not_need_hook_id),
		cmocka_unit_test(verify_params_come_before_allowed_hooks),
		cmocka_unit_test(allowed_hooks_refuse_absent_hook_id),
		cmocka_unit_test(allowed_hooks_refuse_unlisted_hook_id),
		cmocka_unit_test(allowed_hooks_accept_listed_hook_id),
		cmocka_unit_test(without_allowed_hooks_every_hook_id_passes),
		cmocka_unit_test(allowed_hooks_come_before_unknown_type),
		cmocka_unit_test(unknown_type_rejected_or_accepted_by_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
