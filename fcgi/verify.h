/*
 * verify.h - hook.verify handled inline, with the Podio API.
 */
#ifndef PODIO_VERIFY_H
#define PODIO_VERIFY_H

#include "../lib/form.h"
#include "app.h"

#define VERIFY_DETAIL_MAX 512

/*
 * The inline verification slots in the spool directory: .verify-slot-0,
 * .verify-slot-1 ... ([podio] inline_verifications of them; see slot.h).
 */
#define VERIFY_SLOT_PREFIX ".verify-slot-"

struct verify_result {
	/* "validated", "failed", "skipped" or "deferred" */
	const char *status;
	char detail[VERIFY_DETAIL_MAX];
};

/*
 * Validates params' hook_id and code with the Podio API when credentials
 * are configured, within [podio] timeout.  At most [podio]
 * inline_verifications validations run at once across every process on
 * the spool: without a free slot the result is "deferred" at once, so a
 * slow API never holds more request slots than that.  Always fills *out;
 * never logs the code or a token.  Thread-safe: a validation uses its own
 * struct podio (tokens are shared through podio.c).
 */
void verify_hook(struct app *a, const struct form *params,
		 struct verify_result *out);

#endif
