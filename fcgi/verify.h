/*
 * verify.h - hook.verify handled inline, with the Podio API.
 */
#ifndef PODIO_VERIFY_H
#define PODIO_VERIFY_H

#include "../lib/form.h"
#include "app.h"

#define VERIFY_DETAIL_MAX 512

struct verify_result {
	const char *status; /* "validated", "failed" or "skipped" */
	char detail[VERIFY_DETAIL_MAX];
};

/*
 * Validates params' hook_id and code with the Podio API when credentials
 * are configured, within [podio] timeout.  Always fills *out; never logs
 * the code or a token.
 */
void verify_hook(struct app *a, const struct form *params,
		 struct verify_result *out);

#endif
