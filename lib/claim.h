/*
 * claim.h - the consumer side of the spool (podio-hook(1), THE SPOOL).
 *
 * Claim protocol: rename {type}.jsonl to {type}.jsonl.claim-<µs> (a name
 * writers never open), then flock(LOCK_EX) the renamed file and release
 * it: a writer that opened the old name before the rename either finished
 * its append under the lock, or will find the name gone and start over.
 * From then on the claimed file ("work file") never changes.
 *
 * Progress of a work file lives beside it in {work}.state, replaced
 * atomically (temporary file + rename):
 *   line 1: "offset N"   bytes [0, N) have been offered
 *   then:   "retry OFF ATTEMPTS LAST_ERROR_JSON" for each event in [0, N)
 *           that failed and is to be offered again
 * A missing or unreadable state means "offset 0": the events are offered
 * again (at-least-once), never skipped.
 */
#ifndef PODIO_CLAIM_H
#define PODIO_CLAIM_H

#include <stddef.h>
#include <sys/types.h>

#include "spool.h"

#define CLAIM_MARK	   ".jsonl.claim-"
#define CLAIM_STATE_SUFFIX ".state"
#define CLAIM_ERR_MAX	   SPOOL_ERR_MAX

struct claim_retry {
	off_t off;	   /* start of the event's line in the work file */
	unsigned attempts; /* failed attempts so far (>= 1) */
	char *last_error;  /* malloc'd */
};

struct claim_state {
	off_t offset;
	size_t n_retry;
	struct claim_retry *retry; /* ascending off */
};

/* A work file: its name in the spool directory and its event type. */
struct claim_work {
	char name[256];
	char type[65];
};

/*
 * Takes and releases flock(LOCK_EX) on a claimed file: a writer that locked
 * it before the rename has finished its append.  0, or -1 and errno.
 */
int claim_wait_writers(int fd);

/*
 * Claims {dir}/{type}.jsonl.  Returns 1 and the work file's name in *out,
 * 0 when there is nothing to claim (absent or empty), -1 with err set.
 */
int claim_take(const char *dir, const char *type, struct claim_work *out,
	       char err[CLAIM_ERR_MAX]);

/*
 * The work files in dir (claimed earlier, maybe by a run that died), oldest
 * claim first.  *out is malloc'd (free it); returns the count or -1.
 */
ssize_t claim_list(const char *dir, struct claim_work **out,
		   char err[CLAIM_ERR_MAX]);

/* Loads {dir}/{work}.state; a missing or damaged one reads as offset 0. */
void claim_state_load(const char *dir, const struct claim_work *w,
		      struct claim_state *st);

/* Replaces {dir}/{work}.state atomically; fsyncs when durable.  0 or -1. */
int claim_state_save(const char *dir, const struct claim_work *w,
		     const struct claim_state *st, int durable,
		     char err[CLAIM_ERR_MAX]);

/* Adds or updates the retry entry at off; 0 or -1 (out of memory). */
int claim_state_retry(struct claim_state *st, off_t off, unsigned attempts,
		      const char *last_error);

/* Removes the retry entry at index i. */
void claim_state_drop(struct claim_state *st, size_t i);

void claim_state_free(struct claim_state *st);

/* Removes a finished work file and its state.  0 or -1. */
int claim_finish(const char *dir, const struct claim_work *w,
		 char err[CLAIM_ERR_MAX]);

/*
 * The type a spool file name stands for: "item.create.jsonl" gives
 * "item.create" (kind 'p', pending) and "item.create.jsonl.claim-1" gives
 * "item.create" (kind 'w', work file).  Returns 0, or -1 for other names.
 */
int claim_parse_name(const char *name, char type[65], char *kind);

#endif
