/*
 * claim.h - the consumer side of the spool's files (layout.h names them).
 *
 * Claim protocol: rename {type}.jsonl to {type}.jsonl.claim-<stamp> (a
 * name writers never open; never over an existing file, nor beside a
 * progress file left from an earlier work file of that name), then
 * flock(LOCK_EX) the renamed file and release it: a writer that opened
 * the old name before the rename either finished its append under the
 * lock, or will find the name gone and start over.  From then on the
 * claimed file (a "work file") never changes.  A consumer that died
 * between the rename and the wait leaves a work file whose writers were
 * not waited for: claim_wait_writers is called again before every read.
 *
 * Progress of a work file lives beside it in {work}.state, replaced
 * atomically (a temporary file, then rename):
 *   line 1: "offset N"   bytes [0, N) have been offered
 *   then:   "retry OFF ATTEMPTS LAST_ERROR_JSON" for each event in [0, N)
 *           that is to be offered again (ATTEMPTS failed attempts so far;
 *           0 for an event held back to be settled with a later one)
 * A missing or damaged state reads as "offset 0": events are offered
 * again (at-least-once), never skipped.
 *
 * Every name is opened relative to a descriptor of its directory, never
 * through a symbolic link (layout.h).  Functions that fail return -1 with
 * errno set and a one-line reason, naming the file, in err.
 */
#ifndef PODIO_CLAIM_H
#define PODIO_CLAIM_H

#include <stddef.h>
#include <sys/types.h>

#include "event.h"
#include "layout.h"
#include "spool.h"

#define CLAIM_ERR_MAX SPOOL_ERR_MAX

/* What a state file records for one event (ATTEMPTS fits in here). */
#define CLAIM_ATTEMPTS_MAX 1000000u

struct claim_retry {
	off_t off;	   /* start of the event's line in the work file */
	unsigned attempts; /* failed attempts so far */
	char *last_error;  /* owned; "" when attempts is 0 */
};

/*
 * Progress of one work file.  Invariants: retry[0..n_retry) is sorted by
 * off, without repeats, and every off < offset <= the work file's size.
 * The struct owns retry and each last_error: release with
 * claim_state_free.  A zeroed struct is the state "offset 0".
 */
struct claim_state {
	off_t offset;
	size_t n_retry;
	struct claim_retry *retry;
	size_t cap; /* entries allocated at retry */
};

/* A work file: its name in its directory, and its event type. */
struct claim_work {
	char name[LAYOUT_NAME_MAX];
	char type[EVENT_TYPE_MAX + 1];
};

/*
 * Takes and releases flock(LOCK_EX) on a claimed file: a writer that locked
 * it before the rename has finished its append.  0, or -1 and errno.
 */
int claim_wait_writers(int fd);

/*
 * Claims {type}.jsonl in dirfd (dir is its path, for messages).  Returns 1
 * with the work file in *out, 0 when there is nothing to claim (absent or
 * empty), -1 with err set (errno ELOOP / EFTYPE_LAYOUT when the name is a
 * symbolic link or not a regular file: it is left alone).
 */
int claim_take(int dirfd, const char *dir, const char *type,
	       struct claim_work *out, char err[CLAIM_ERR_MAX]);

/*
 * The work files in dirfd, oldest claim first.  *out is malloc'd (the
 * caller frees it); returns the count, or -1 with err set.
 */
ssize_t claim_list(int dirfd, const char *dir, struct claim_work **out,
		   char err[CLAIM_ERR_MAX]);

/*
 * Loads the state of w, a work file of size bytes.  A missing, damaged or
 * foreign state (an offset past size) reads as offset 0 and returns 0.
 * Returns -1 with err when the state exists but must not or cannot be
 * read (a symbolic link, not a regular file, no permission): the caller
 * leaves the work file alone.
 */
int claim_state_load(int dirfd, const char *dir, const struct claim_work *w,
		     off_t size, struct claim_state *st,
		     char err[CLAIM_ERR_MAX]);

/* Replaces the state of w atomically; fsyncs when durable.  0 or -1. */
int claim_state_save(int dirfd, const char *dir, const struct claim_work *w,
		     const struct claim_state *st, int durable,
		     char err[CLAIM_ERR_MAX]);

/*
 * Records an event at off to be offered again after attempts failed
 * attempts, with last_error (copied; text that is not valid UTF-8 is
 * kept through utf8_scrub, form.h).  Adds or updates the entry; 0, or
 * -1 when out of memory (st unchanged).
 */
int claim_state_retry(struct claim_state *st, off_t off, unsigned attempts,
		      const char *last_error);

/* The index of the entry at off, or -1. */
ssize_t claim_state_find(const struct claim_state *st, off_t off);

/* Removes the entry at index i. */
void claim_state_drop(struct claim_state *st, size_t i);

/*
 * Removes the entries at offs[0..n) (any order; offsets without an entry
 * are ignored) in one pass over the list, sorting offs: what many single
 * drops would do in time linear in the list.
 */
void claim_state_drop_all(struct claim_state *st, off_t *offs, size_t n);

void claim_state_free(struct claim_state *st);

/* Removes a finished work file, then its state.  0 or -1. */
int claim_finish(int dirfd, const char *dir, const struct claim_work *w,
		 char err[CLAIM_ERR_MAX]);

#endif
