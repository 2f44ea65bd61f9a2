/*
 * fetch.h - `drain --fetch`: the Podio object an event names, read with
 * the credentials and token cache that verification uses, and attached
 * to the line handed over as its last key:
 *
 *   "fetched":{"path":"/item/123","status":200,"body":{...}}
 *
 * body is the API's JSON as received (its line breaks, which JSON allows
 * only between tokens, turned into spaces so the event stays one line),
 * or null when the object is gone (404, 410).  Types that name no object
 * (deletes, members, contacts, hook.verify) get no key.
 */
#ifndef PODIO_FETCH_H
#define PODIO_FETCH_H

#include "../lib/engine.h"
#include "app.h"

struct fetcher {
	struct app *a;
	unsigned long long calls; /* objects requested */
	unsigned long long gone;  /* answered 404 or 410 */
};

/*
 * A prepare step for the engine (engine.h): HANDLED with the line to hand
 * over in *out (NULL: no object to fetch), FAILED with a why starting
 * "fetch:" (network, timeout, 5xx, a 401 after one renewal, an id that is
 * not a number, an answer that is not JSON), or STOP when Podio's rate
 * limit (420, 429) answered: said on standard error with when it resets.
 */
enum engine_verdict fetch_event(struct fetcher *f,
				const struct engine_event *ev, char **out,
				size_t *out_len, char why[ENGINE_WHY_MAX]);

#endif
