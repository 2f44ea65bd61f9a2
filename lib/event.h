/*
 * event.h - what makes a decoded request an event (podio-hook(1), Answers).
 */
#ifndef PODIO_EVENT_H
#define PODIO_EVENT_H

#include <stddef.h>

#include "form.h"
#include "outcome.h"

/*
 * A type becomes a file name ({type}.jsonl); 64 characters keeps the name
 * far below NAME_MAX with any suffix a consumer adds, and Podio's longest
 * type is 14.
 */
#define EVENT_TYPE_MAX 64

/* The receiver's policy, taken from the config by the caller. */
struct event_policy {
	const char *const *allowed_hooks; /* NULL or n_allowed strings */
	size_t n_allowed;		  /* 0: every hook_id is allowed */
	int reject_unknown;		  /* unknown_types = reject */
};

/*
 * 1 when t[0..n) matches [a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+ and n is at
 * most EVENT_TYPE_MAX.
 */
int event_type_wellformed(const char *t, size_t n);

/* 1 when t is one of the 26 types Podio documents (hook.verify included). */
int event_type_known(const char *t);

/* The documented types, NULL-terminated, for tests and documentation. */
extern const char *const event_known_types[];

/*
 * Applies the event rules to the merged parameters, in the table's
 * order: type missing or malformed (OUT_BAD_TYPE); hook.verify without a
 * non-empty hook_id or code (OUT_VERIFY_PARAMS); allowed_hooks set and
 * hook_id absent or not listed (OUT_HOOK_DENIED); unknown type under
 * reject (OUT_UNKNOWN_TYPE).  On OUT_OK *type points at the type field.
 */
enum outcome event_check(const struct form *params,
			 const struct event_policy *policy,
			 const struct form_field **type);

/*
 * The Podio object an event of this type names, for handlers that fetch
 * it: the param that holds its id (*id_param, e.g. "item_id") and the
 * API path before the id (returned, e.g. "/item/").  NULL for types that
 * name no object that can still be read (deletes, members, contacts,
 * hook.verify).
 */
const char *event_object_path(const char *type, const char **id_param);

/* 1 when the type is hook.verify. */
int event_is_verify(const struct form_field *type);

#endif
