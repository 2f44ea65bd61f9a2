#include "event.h"

#include <string.h>

const char *const event_known_types[] = {
    "item.create",    "item.update",	"item.delete",
    "comment.create", "comment.delete", "file.change",
    "app.create",     "app.update",	"app.delete",
    "form.create",    "form.update",	"form.delete",
    "tag.add",	      "tag.delete",	"task.create",
    "task.update",    "task.delete",	"member.add",
    "member.remove",  "contact.create", "contact.update",
    "contact.delete", "status.create",	"status.update",
    "status.delete",  "hook.verify",	NULL,
};

static int is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

static int is_word(char c)
{
	return is_lower(c) || (c >= '0' && c <= '9') || c == '_';
}

int event_type_wellformed(const char *t, size_t n)
{
	int dots = 0;
	if (n == 0 || n > EVENT_TYPE_MAX || !is_lower(t[0]))
		return 0;
	for (size_t i = 1; i < n; i++) {
		if (t[i] == '.') {
			/* Each dot starts a segment that begins with a letter.
			 */
			if (i + 1 >= n || !is_lower(t[i + 1]))
				return 0;
			dots++;
		} else if (!is_word(t[i])) {
			return 0;
		}
	}
	return dots > 0;
}

int event_type_known(const char *t)
{
	for (size_t i = 0; event_known_types[i] != NULL; i++) {
		if (strcmp(event_known_types[i], t) == 0)
			return 1;
	}
	return 0;
}

int event_is_verify(const struct form_field *type)
{
	return strcmp(type->val, "hook.verify") == 0;
}

static int present(const struct form *params, const char *key)
{
	const struct form_field *f = form_get(params, key);
	return f != NULL && f->val_len > 0;
}

static int hook_allowed(const struct form_field *hook,
			const struct event_policy *policy)
{
	if (hook == NULL)
		return 0;
	for (size_t i = 0; i < policy->n_allowed; i++) {
		if (strcmp(policy->allowed_hooks[i], hook->val) == 0)
			return 1;
	}
	return 0;
}

enum outcome event_check(const struct form *params,
			 const struct event_policy *policy,
			 const struct form_field **type)
{
	const struct form_field *t = form_get(params, "type");
	if (t == NULL || !event_type_wellformed(t->val, t->val_len))
		return OUT_BAD_TYPE;
	if (event_is_verify(t) &&
	    (!present(params, "hook_id") || !present(params, "code")))
		return OUT_VERIFY_PARAMS;
	if (policy->n_allowed > 0 &&
	    !hook_allowed(form_get(params, "hook_id"), policy))
		return OUT_HOOK_DENIED;
	if (policy->reject_unknown && !event_type_known(t->val))
		return OUT_UNKNOWN_TYPE;
	*type = t;
	return OUT_OK;
}

/* The object behind each type that names one still readable. */
static const struct {
	const char *type;
	const char *id_param;
	const char *path;
} objects[] = {
    {"item.create", "item_id", "/item/"},
    {"item.update", "item_id", "/item/"},
    {"comment.create", "item_id", "/item/"},
    {"file.change", "item_id", "/item/"},
    {"tag.add", "item_id", "/item/"},
    {"tag.delete", "item_id", "/item/"},
    {"task.create", "task_id", "/task/"},
    {"task.update", "task_id", "/task/"},
    {"app.create", "app_id", "/app/"},
    {"app.update", "app_id", "/app/"},
    {"form.create", "form_id", "/form/"},
    {"form.update", "form_id", "/form/"},
    {"status.create", "status_id", "/status/"},
    {"status.update", "status_id", "/status/"},
};

const char *event_object_path(const char *type, const char **id_param)
{
	for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++) {
		if (strcmp(objects[i].type, type) == 0) {
			*id_param = objects[i].id_param;
			return objects[i].path;
		}
	}
	return NULL;
}
