/*
 * engine.h - the consumer engine: hands spooled events to a handler,
 * oldest first, at least once, and never loses or deletes one.
 *
 * One run ("pass"):
 *   1. with retry_failed (first pass only): the dead letters in failed/
 *      go back into the spool as they were spooled ("attempts" and
 *      "last_error" taken off; the count starts afresh);
 *   2. every selected {type}.jsonl is claimed (claim.h);
 *   3. the work files, per type in name order and oldest claim first
 *      within a type, are offered event by event: first the events that
 *      failed before, then the rest, in file order.
 *
 * An offered event is settled by the handler's verdict:
 *   HANDLED  done with: passed in the progress file;
 *   FAILED   offered again by a later pass, until max_attempts failed
 *            attempts move it to failed/{type}.jsonl with "attempts" (a
 *            number) and "last_error" (a string) added as its last keys;
 *   STOP     not attempted: this event and every later one wait for the
 *            next pass and nothing is counted against them (rate limits).
 * A line that is not one JSON object (jsoncheck.h) or lacks its '\n' is
 * quarantined: copied byte for byte to bad/{type}.jsonl, never handed
 * over, never deleted.  Dead letters and progress are written before a
 * work file is removed; a failure to write them keeps the work file.
 *
 * Safety (layout.h): nothing is opened through a symbolic link; a link or
 * a file of another kind, an unreadable work file or progress file is
 * reported by name, counted in stats.problems and left alone, and the
 * other files are drained in the same pass.  One engine runs per spool
 * at a time (flock on .drain.lock, which handlers inherit, so that a
 * handler left running by a killed drain still holds it).
 *
 * The engine speaks through struct engine_handler; it never starts a
 * process or writes to standard output itself.  Diagnostics go to log.h.
 */
#ifndef PODIO_ENGINE_H
#define PODIO_ENGINE_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include "claim.h"

/* Room for a handler's one-line reason. */
#define ENGINE_WHY_MAX 512
/* No --limit. */
#define ENGINE_NO_LIMIT (~0ULL)

enum engine_verdict {
	ENGINE_HANDLED = 0,
	ENGINE_FAILED,
	ENGINE_STOP,
};

/* One event as the handler sees it; valid for the duration of a call. */
struct engine_event {
	const char *type;
	const char *line; /* as spooled, '\n' included */
	size_t len;
	const char *out;   /* what is handed over: line, perhaps with keys */
	size_t out_len;	   /* added ("coalesced", a prepare's) */
	unsigned attempts; /* failed attempts before this offer */
};

struct engine_handler {
	void *ctx;
	/*
	 * Optional, called before an event is handed over: may give other
	 * bytes to hand over in *out (malloc'd; the engine frees it) or
	 * leave *out NULL.  FAILED counts an attempt with why; STOP stops
	 * the pass before this event.
	 */
	enum engine_verdict (*prepare)(void *ctx, const struct engine_event *ev,
				       char **out, size_t *out_len,
				       char why[ENGINE_WHY_MAX]);
	/* Exactly one of one and batch is set. */
	enum engine_verdict (*one)(void *ctx, const struct engine_event *ev,
				   char why[ENGINE_WHY_MAX]);
	/* Every event offered from one work file, in order, at once. */
	enum engine_verdict (*batch)(void *ctx, const char *type,
				     const struct engine_event *evs, size_t n,
				     char why[ENGINE_WHY_MAX]);
	/*
	 * Optional: makes what was handed over so far final (print mode
	 * flushes its output) before progress is saved.  0, or -1 when it
	 * could not: the pass stops and nothing since the last commit counts.
	 */
	int (*commit)(void *ctx);
	/* With one: events between commits (and progress saves); >= 1. */
	unsigned commit_every;
};

struct engine_options {
	const char *const *types; /* fnmatch globs; n_types 0: every type */
	size_t n_types;
	unsigned max_attempts;	  /* >= 1 */
	unsigned long long limit; /* events offered at most, all passes */
	int retry_failed;
	int coalesce; /* see coalesce.h */
	int wait; /* wait for the lock (until a stop) instead of giving up */
	mode_t file_mode; /* of the files the engine creates */
	/*
	 * Offer no event that failed before (held ones still are): for
	 * passes woken by new events, so that a failing handler is not run
	 * again at every arrival.  May be changed between passes.
	 */
	int new_only;
	/*
	 * Optional: when it becomes non-zero, the pass stops between events,
	 * and a wait for the lock ends at the signal that set it.
	 */
	const volatile sig_atomic_t *stop;
};

struct engine_stats {
	unsigned long long offered; /* events offered (quarantined ones too) */
	unsigned long long handled;
	unsigned long long retried; /* failed, to be offered again */
	unsigned long long dead;    /* moved to failed/ */
	unsigned long long quarantined;
	unsigned long long coalesced; /* settled with a later event */
	unsigned long long requeued;  /* dead letters put back */
	unsigned problems; /* files or entries reported and left alone */
	int stopped;	   /* a STOP verdict ended a pass */
	int broken;	   /* an error stopped a pass (output, memory) */
};

/* Everything a pass needs; fields are the engine's own. */
struct engine {
	const char *dir;
	int dirfd;
	int lockfd;
	int failedfd;
	int badfd;
	mode_t dir_mode; /* the spool directory's, for failed/ and bad/ */
	char failed_path[4096];
	char bad_path[4096];
	struct engine_options opt;
	struct engine_handler h;
	struct engine_stats stats;
	unsigned since_commit;
	int requeue_done;
};

/*
 * Opens the spool directory dir (which must outlive e) and takes the
 * drain lock.  Returns 1 ready, 0 another engine holds the lock (nothing
 * was touched; with wait, a stop came first), -1 on error (logged).  o
 * and h are copied.
 */
int engine_open(struct engine *e, const char *dir,
		const struct engine_options *o, const struct engine_handler *h);

/* One pass (see above).  0, or -1 when the pass stopped on an error. */
int engine_pass(struct engine *e);

/* 1 when the limit is reached or a stop was asked for or happened. */
int engine_done(const struct engine *e);

/* Releases the lock and the descriptors. */
void engine_close(struct engine *e);

/* 1 when type matches the options' globs (or there are none). */
int engine_selected(const struct engine_options *o, const char *type);

#endif
