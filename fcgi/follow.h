/*
 * follow.h - `drain --follow`: the engine run again whenever a spool file
 * changes, until told to stop.
 *
 * inotify on the spool directory wakes a pass as soon as a receiver
 * appends to, creates or renames in a {type}.jsonl; such passes offer only
 * new events, so that a failing handler is not run again at every
 * arrival.  Every rescan_s seconds (and at the start) a full pass offers
 * the events that failed before too, and catches anything inotify missed
 * (its queue overflowing, a filesystem without it).
 */
#ifndef PODIO_FOLLOW_H
#define PODIO_FOLLOW_H

#include <signal.h>

#include "../lib/engine.h"

/*
 * Runs passes of e until *stop becomes non-zero (the handler in flight
 * finishes first; progress is saved), the engine's limit is reached, or
 * an error stops it.  A pass stopped by a rate limit (STOP) is retried at
 * the next full pass.  Returns 0, or -1 after logging an error.
 */
int follow_run(struct engine *e, const volatile sig_atomic_t *stop,
	       unsigned rescan_s);

#endif
