#include "verify.h"

#include <stdio.h>

#include "../lib/log.h"

void verify_hook(struct app *a, const struct form *params,
		 struct verify_result *out)
{
	const struct form_field *hook = form_get(params, "hook_id");
	if (!config_has_credentials(&a->cfg)) {
		out->status = "skipped";
		snprintf(out->detail, sizeof out->detail,
			 "no Podio credentials configured; validate later with "
			 "'podio-hook hook validate %s CODE'",
			 hook != NULL ? hook->val : "HOOK_ID");
		log_info("hook.verify spooled unvalidated hook_id=%s "
			 "reason=\"no credentials\"",
			 hook != NULL ? hook->val : "-");
		return;
	}
	/* The Podio API client arrives with issue 3. */
	out->status = "skipped";
	snprintf(out->detail, sizeof out->detail,
		 "this build has no Podio API client; validate later with "
		 "'podio-hook hook validate %s CODE'",
		 hook != NULL ? hook->val : "HOOK_ID");
}
