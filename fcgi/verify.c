#include "verify.h"

#include <stdio.h>

#include "../lib/http.h"
#include "../lib/log.h"

static void skipped(struct verify_result *out, const char *hook,
		    const char *why)
{
	/* Only a Podio id is quoted: hook_id is the sender's bytes. */
	int id = app_is_id(hook);
	out->status = "skipped";
	snprintf(out->detail, sizeof out->detail,
		 "%s; validate later with 'podio-hook hook validate %s CODE'",
		 why, id ? hook : "HOOK_ID");
	utf8_scrub(out->detail); /* the cut may split a character */
	log_info("hook.verify spooled unvalidated hook_id=%s reason=\"%s\"",
		 id ? hook : "?", why);
}

void verify_hook(struct app *a, const struct form *params,
		 struct verify_result *out)
{
	/* event_check guarantees both are present and non-empty. */
	const char *hook = form_get(params, "hook_id")->val;
	const char *code = form_get(params, "code")->val;
	if (!config_has_credentials(&a->cfg)) {
		skipped(out, hook, "no Podio credentials configured");
		return;
	}
	if (!app_is_id(hook)) {
		out->status = "failed";
		snprintf(out->detail, sizeof out->detail,
			 "hook_id is not a number");
		log_warn("hook.verify failed hook_id=? reason=\"%s\"",
			 out->detail);
		return;
	}
	podio_begin(&a->podio, a->cfg.podio.timeout);
	if (podio_validate(&a->podio, hook, code) == 0) {
		out->status = "validated";
		out->detail[0] = '\0';
		log_info("hook.verify validated hook_id=%s", hook);
		return;
	}
	if (!http_loaded()) {
		skipped(out, hook, a->podio.err);
		return;
	}
	out->status = "failed";
	snprintf(out->detail, sizeof out->detail, "%s", a->podio.err);
	utf8_scrub(out->detail);
	log_warn("hook.verify failed hook_id=%s reason=\"%s\"", hook,
		 a->podio.err);
}
