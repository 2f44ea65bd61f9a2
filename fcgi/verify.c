#include "verify.h"

#include <stdio.h>

#include "../lib/http.h"
#include "../lib/log.h"
#include "../lib/slot.h"

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

/* No free slot: spooled now, to be validated by `hook validate`. */
static void deferred(struct verify_result *out, const struct app *a,
		     const char *hook, int rc, const char *slot_err)
{
	char why[VERIFY_DETAIL_MAX];
	out->status = "deferred";
	if (rc == SLOT_BUSY)
		snprintf(why, sizeof why,
			 "%d inline verification(s) already in flight "
			 "(inline_verifications)",
			 a->cfg.podio.inline_verifications);
	else
		snprintf(why, sizeof why, "no verification slot: %s", slot_err);
	snprintf(out->detail, sizeof out->detail,
		 "%s; validate later with 'podio-hook hook validate %s CODE'",
		 why, hook);
	utf8_scrub(out->detail);
	if (rc == SLOT_BUSY)
		log_info("hook.verify deferred hook_id=%s reason=\"%s\"", hook,
			 why);
	else
		log_warn("hook.verify deferred hook_id=%s reason=\"%s\"", hook,
			 why);
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
	char slot_err[SLOT_ERR_MAX];
	int slot = slot_take(a->cfg.spool_dir, VERIFY_SLOT_PREFIX,
			     (unsigned)a->cfg.podio.inline_verifications,
			     a->cfg.file_mode, slot_err);
	if (slot < 0) {
		deferred(out, a, hook, slot, slot_err);
		return;
	}
	/* Our own: other threads may be verifying with the same config. */
	struct podio p;
	podio_init(&p, &a->cfg.podio, a->podio.cache_path);
	podio_begin(&p, a->cfg.podio.timeout);
	int rc = podio_validate(&p, hook, code);
	slot_release(slot);
	if (rc == 0) {
		out->status = "validated";
		out->detail[0] = '\0';
		log_info("hook.verify validated hook_id=%s", hook);
	} else if (!http_loaded()) {
		skipped(out, hook, p.err);
	} else {
		out->status = "failed";
		snprintf(out->detail, sizeof out->detail, "%s", p.err);
		utf8_scrub(out->detail);
		log_warn("hook.verify failed hook_id=%s reason=\"%s\"", hook,
			 p.err);
	}
	podio_free(&p);
}
