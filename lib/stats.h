/*
 * stats.h - what is in a spool, per event type, for `status`: pending
 * events, the oldest pending one's age, events claimed and in progress,
 * dead letters and quarantined lines.  Read-only: never claims, moves or
 * locks anything, so it can run beside receivers and a drain.
 *
 * Any number of types (no fixed table).  Entries that must be left alone
 * (layout.h: symbolic links, other kinds of files, unreadable ones) are
 * reported through log.h and counted in problems.
 */
#ifndef PODIO_STATS_H
#define PODIO_STATS_H

#include <stddef.h>

#include "event.h"

#define STATS_ERR_MAX 512

struct stats_type {
	char type[EVENT_TYPE_MAX + 1];
	unsigned long long pending;	/* lines in {type}.jsonl */
	double oldest_pending_age;	/* s since the first one's "received" */
	unsigned long long in_progress; /* offered or to be, in work files */
	unsigned long long failed;	/* dead letters in failed/ */
	unsigned long long quarantined; /* lines in bad/ */
	double last_received; /* newest mtime of {type}.jsonl and its work
				 files, s since the epoch; 0: none */
};

/* The report; release with stats_free.  t is sorted by type. */
struct stats {
	struct stats_type *t;
	size_t n;
	size_t cap;
	unsigned problems;
};

/*
 * Fills s (zeroed first) from the spool directory dir; now is the time
 * ages are measured against (s since the epoch).  Returns 0, or -1 with
 * err when dir itself cannot be read.  A torn last line counts as a line.
 */
int stats_collect(struct stats *s, const char *dir, double now,
		  char err[STATS_ERR_MAX]);

void stats_free(struct stats *s);

/* The entry for type, or NULL. */
const struct stats_type *stats_find(const struct stats *s, const char *type);

#endif
