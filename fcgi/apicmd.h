/*
 * apicmd.h - `podio-hook api METHOD PATH [--data ...]` (podio-hook(1)):
 * one authenticated Podio API call for handler scripts, on the token
 * cache that verification and the hook commands share.
 *
 * The answer's body goes to standard output as received, with a final
 * newline added when it has none.  Exit 0 on a 2xx answer; 1 on another
 * answer or none (the status and Podio's error on standard error); 3 on
 * the rate limit (420, or 429), saying when it resets; 2 usage or config
 * error.
 */
#ifndef PODIO_APICMD_H
#define PODIO_APICMD_H

#include "app.h"

/* Exit status of a command stopped by Podio's rate limit. */
#define EXIT_RATE_LIMITED 3

/* argv[0] is "api"; the config is loaded here. */
int apicmd_main(struct app *a, int argc, char **argv);

/*
 * One line on standard error: Podio's rate limit stopped `cmd`, with
 * p->err, the X-Rate-Limit-* figures of p->rate, and when the limit
 * resets (podio_rate_reset over p->rate and text, which may be NULL).
 */
void api_report_rate_limit(const char *cmd, const struct podio *p,
			   const char *text, size_t text_len);

#endif
