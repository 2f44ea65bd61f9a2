#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "coalesce.h"
#include "form.h"
#include "jsoncheck.h"
#include "jsonline.h"
#include "log.h"

/* The keys a dead letter carries beyond the spooled line. */
#define KEY_ATTEMPTS   "attempts"
#define KEY_LAST_ERROR "last_error"

/* A work file being drained. */
struct wfile {
	struct claim_work w;
	/*
	 * Its bytes, read into memory (NULL when empty): a copy is immune
	 * to someone truncating the file meanwhile, where a mapping would
	 * fault and kill the drain.
	 */
	const char *map;
	size_t size;
	struct claim_state st;
	/*
	 * Retry entries settled this pass, dropped from st all at once
	 * before it is saved: one by one, each drop would move the rest of
	 * a list that --coalesce can fill with thousands of held events.
	 */
	off_t *gone;
	size_t n_gone;
	size_t cap_gone;
	int usable; /* opened, read, progress loaded */
	int dirty;  /* st changed since it was saved */
	int broken; /* a write failed: nothing more from it in this pass */
};

/* One event to offer, in spool order. */
struct item {
	struct wfile *f;
	off_t off;
	size_t len; /* with its '\n' when it has one */
	unsigned attempts;
	int retry;	/* it has an entry in f->st */
	int terminated; /* ends in '\n' */
	int valid;	/* terminated and one JSON object */
	size_t rep;	/* the item whose verdict settles this one */
	size_t first;	/* as a representative: its first member */
};

/* What happens to an item once a verdict is known. */
enum fate {
	FATE_DONE,	 /* handled */
	FATE_FAILED,	 /* an attempt failed */
	FATE_HOLD,	 /* settled later with its group's representative */
	FATE_QUARANTINE, /* not an event: copied to bad/, then done */
};

/* How often a drain with opt.wait looks whether the lock came free. */
#define LOCK_POLL_MS 100

/* settle()'s answer when the item must stay and its file stop. */
#define SETTLE_KEPT 1

int engine_selected(const struct engine_options *o, const char *type)
{
	if (o->n_types == 0)
		return 1;
	for (size_t i = 0; i < o->n_types; i++) {
		if (fnmatch(o->types[i], type, 0) == 0)
			return 1;
	}
	return 0;
}

static int limited(const struct engine *e)
{
	return e->opt.limit != ENGINE_NO_LIMIT &&
	       e->stats.offered >= e->opt.limit;
}

int engine_done(const struct engine *e)
{
	return limited(e) || e->stats.stopped || e->stats.broken ||
	       (e->opt.stop != NULL && *e->opt.stop != 0);
}

static void problem(struct engine *e, const char *what)
{
	log_error("%s", what);
	e->stats.problems++;
}

/* ---- opening ---------------------------------------------------------- */

/* failed/ or bad/: created like the spool directory itself. */
static int open_sub(struct engine *e, const char *name, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", e->dir, name);
	int fd = layout_open_dir(e->dirfd, name, 1, e->dir_mode & 0777);
	if (fd < 0) {
		log_error("%s: %s", path, layout_strerror(errno));
		e->stats.problems++;
		return -1;
	}
	struct stat st;
	/* mkdirat applied the umask; the spool's own mode is what is meant. */
	if (fstat(fd, &st) == 0 && st.st_uid == geteuid() &&
	    (st.st_mode & 07777) != (e->dir_mode & 07777))
		fchmod(fd, e->dir_mode & 07777);
	return fd;
}

/*
 * The drain lock: at once or not at all, or with opt.wait until it is
 * free or a stop is asked for.  The wait polls (LOCK_NB, then a pause
 * that a signal cuts short) rather than block in flock: a stop that came
 * just before a blocking flock would not end it.  0, or -1 with errno
 * (EINTR: stopped).
 */
static int take_lock(const struct engine *e)
{
	const struct timespec pause = {0, LOCK_POLL_MS * 1000000L};
	for (;;) {
		if (e->opt.stop != NULL && *e->opt.stop) {
			errno = EINTR;
			return -1;
		}
		if (flock(e->lockfd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if ((errno != EWOULDBLOCK && errno != EINTR) || !e->opt.wait)
			return -1;
		nanosleep(&pause, NULL);
	}
}

int engine_open(struct engine *e, const char *dir,
		const struct engine_options *o, const struct engine_handler *h)
{
	struct stat st;
	memset(e, 0, sizeof *e);
	e->dir = dir;
	e->opt = *o;
	e->h = *h;
	if (e->h.commit_every == 0)
		e->h.commit_every = 1;
	e->lockfd = e->failedfd = e->badfd = -1;
	e->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (e->dirfd < 0 || fstat(e->dirfd, &st) != 0) {
		log_error("spool directory %s: %s", dir, strerror(errno));
		engine_close(e);
		return -1;
	}
	e->dir_mode = st.st_mode;
	/*
	 * Not O_CLOEXEC: handlers inherit the descriptor, so the lock lasts
	 * as long as any handler we started, even one orphaned by a drain
	 * killed mid-event; the next drain cannot run that event meanwhile.
	 */
	e->lockfd = openat(e->dirfd, LAYOUT_DRAIN_LOCK,
			   O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0600);
	if (e->lockfd < 0 || fstat(e->lockfd, &st) != 0 ||
	    !S_ISREG(st.st_mode)) {
		int err = e->lockfd < 0 ? errno : EFTYPE_LAYOUT;
		log_error("%s/%s: %s", dir, LAYOUT_DRAIN_LOCK,
			  layout_strerror(err));
		engine_close(e);
		return -1;
	}
	if (take_lock(e) != 0) {
		int busy = errno == EWOULDBLOCK || errno == EINTR;
		if (!busy)
			log_error("%s/%s: flock: %s", dir, LAYOUT_DRAIN_LOCK,
				  strerror(errno));
		engine_close(e);
		return busy ? 0 : -1;
	}
	e->failedfd = open_sub(e, LAYOUT_FAILED_DIR, e->failed_path,
			       sizeof e->failed_path);
	e->badfd = open_sub(e, LAYOUT_BAD_DIR, e->bad_path, sizeof e->bad_path);
	return 1;
}

void engine_close(struct engine *e)
{
	int *fds[] = {&e->badfd, &e->failedfd, &e->lockfd, &e->dirfd};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* ---- work files ------------------------------------------------------- */

static void release_bytes(struct wfile *f)
{
	free((void *)f->map);
	f->map = NULL;
}

/* f->size bytes of fd into f->map (fewer when it was cut meanwhile). */
static int load_bytes(int fd, struct wfile *f)
{
	char *buf = malloc(f->size);
	size_t got = 0;
	if (buf == NULL)
		return -1;
	while (got < f->size) {
		ssize_t n = pread(fd, buf + got, f->size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* Shorter than fstat said: truncated meanwhile. */
			if (n == 0)
				f->size = got;
			if (n < 0) {
				int err = errno;
				free(buf);
				errno = err;
				return -1;
			}
			break;
		}
		got += (size_t)n;
	}
	f->map = buf;
	return 0;
}

/* Opens, waits out writers, reads and loads progress; 0 or -1 (reported). */
static int open_work(struct engine *e, int dirfd, const char *dir,
		     struct wfile *f)
{
	char err[CLAIM_ERR_MAX];
	char msg[CLAIM_ERR_MAX + 64];
	struct stat st;
	int fd = layout_open_file(dirfd, f->w.name, O_RDONLY);
	/*
	 * A drain that died between claiming and waiting out the writers
	 * left this file: wait for them here, every time, before reading.
	 */
	if (fd < 0 || claim_wait_writers(fd) != 0 || fstat(fd, &st) != 0) {
		snprintf(msg, sizeof msg, "work file %s/%s: %s", dir, f->w.name,
			 layout_strerror(errno));
		if (fd >= 0)
			close(fd);
		problem(e, msg);
		return -1;
	}
	f->size = (size_t)st.st_size;
	f->map = NULL;
	if (f->size > 0 && load_bytes(fd, f) != 0) {
		snprintf(msg, sizeof msg, "work file %s/%s: %s", dir, f->w.name,
			 strerror(errno));
		close(fd);
		problem(e, msg);
		return -1;
	}
	close(fd);
	if (claim_state_load(dirfd, dir, &f->w, (off_t)f->size, &f->st, err) !=
	    0) {
		problem(e, err);
		release_bytes(f);
		return -1;
	}
	f->usable = 1;
	return 0;
}

static void close_work(struct wfile *f)
{
	release_bytes(f);
	f->map = NULL;
	claim_state_free(&f->st);
	free(f->gone);
	f->gone = NULL;
	f->n_gone = f->cap_gone = 0;
	f->usable = 0;
}

/* The item starting at off in f. */
static struct item item_at(struct wfile *f, off_t off)
{
	struct item it;
	memset(&it, 0, sizeof it);
	it.f = f;
	it.off = off;
	const char *p = f->map + off;
	const char *nl = memchr(p, '\n', f->size - (size_t)off);
	it.terminated = nl != NULL;
	it.len = nl != NULL ? (size_t)(nl - p) + 1 : f->size - (size_t)off;
	it.valid = it.terminated && jsoncheck_object(p, it.len - 1);
	return it;
}

static const char *item_line(const struct item *it)
{
	return it->f->map + it->off;
}

/* ---- settling --------------------------------------------------------- */

/* Drops the entries settled meanwhile from f's retry list. */
static void drop_gone(struct wfile *f)
{
	claim_state_drop_all(&f->st, f->gone, f->n_gone);
	f->n_gone = 0;
}

/* Notes off as settled, to leave the retry list at the next drop_gone. */
static int gone(struct wfile *f, off_t off)
{
	if (f->n_gone == f->cap_gone) {
		size_t cap = f->cap_gone > 0 ? f->cap_gone * 2 : 64;
		off_t *g = realloc(f->gone, cap * sizeof *g);
		if (g == NULL)
			return -1;
		f->gone = g;
		f->cap_gone = cap;
	}
	f->gone[f->n_gone++] = off;
	return 0;
}

static void settle_done(struct item *it)
{
	struct wfile *f = it->f;
	if (it->retry) {
		ssize_t i = gone(f, it->off) == 0
				? -1
				: claim_state_find(&f->st, it->off);
		if (i >= 0) /* out of memory: drop it now, the slow way */
			claim_state_drop(&f->st, (size_t)i);
	} else {
		f->st.offset = it->off + (off_t)it->len;
	}
	f->dirty = 1;
}

/* Keeps it to be offered again with attempts; 0 or -1 (memory). */
static int settle_retry(struct item *it, unsigned attempts, const char *why)
{
	struct wfile *f = it->f;
	if (claim_state_retry(&f->st, it->off, attempts, why) != 0)
		return -1;
	if (!it->retry) {
		f->st.offset = it->off + (off_t)it->len;
		it->retry = 1;
	}
	f->dirty = 1;
	return 0;
}

/* Copies the line to bad/; 0, or -1 (reported; the line stays). */
static int quarantine(struct engine *e, struct item *it)
{
	char err[SPOOL_ERR_MAX];
	const struct wfile *f = it->f;
	size_t n = it->len + (it->terminated ? 0 : 1);
	char *copy = e->badfd >= 0 ? malloc(n) : NULL;
	int rc = -1;
	if (copy != NULL) {
		memcpy(copy, item_line(it), it->len);
		copy[n - 1] = '\n';
		rc = spool_append_at(e->badfd, e->bad_path, f->w.type, copy, n,
				     1, e->opt.file_mode, err);
		free(copy);
	} else {
		snprintf(err, sizeof err, "%s",
			 e->badfd < 0 ? "bad/ is not usable" : "out of memory");
	}
	if (rc != 0) {
		log_error("cannot quarantine a line of %s (kept): %s",
			  f->w.name, err);
		e->stats.problems++;
		return -1;
	}
	log_warn("quarantined line type=%s file=%s offset=%lld reason=\"%s\"",
		 f->w.type, f->w.name, (long long)it->off,
		 it->terminated ? "not one JSON object"
				: "no terminating newline");
	e->stats.quarantined++;
	return 0;
}

/* The dead letter of it: its line with attempts and last_error last. */
static char *dead_line(const struct item *it, unsigned attempts,
		       const char *why, size_t *n)
{
	static const char *const keys[] = {KEY_ATTEMPTS, KEY_LAST_ERROR};
	char members[ENGINE_WHY_MAX * 6 + 64];
	char clean[ENGINE_WHY_MAX];
	size_t used;
	snprintf(clean, sizeof clean, "%s", why);
	utf8_scrub(clean);
	used = (size_t)snprintf(
	    members, sizeof members,
	    "\"" KEY_ATTEMPTS "\":%u,\"" KEY_LAST_ERROR "\":", attempts);
	if (jsonline_quote(members, sizeof members, &used, clean) != 0)
		return NULL;
	size_t blen;
	char *bare = jsonline_drop(item_line(it), it->len, keys, 2, &blen);
	if (bare == NULL)
		return NULL;
	char *out = jsonline_append(bare, blen, members, used, n);
	free(bare);
	return out;
}

/* Moves it to failed/; 0, or -1 (reported: it stays to be retried). */
static int dead_letter(struct engine *e, struct item *it, unsigned attempts,
		       const char *why)
{
	char err[SPOOL_ERR_MAX];
	size_t n = 0;
	char *line = e->failedfd >= 0 ? dead_line(it, attempts, why, &n) : NULL;
	int rc = -1;
	if (line != NULL)
		rc = spool_append_at(e->failedfd, e->failed_path, it->f->w.type,
				     line, n, 1, e->opt.file_mode, err);
	else
		snprintf(err, sizeof err, "%s",
			 e->failedfd < 0 ? "failed/ is not usable"
					 : "out of memory");
	free(line);
	if (rc != 0) {
		log_error("cannot move an event of %s to failed/ (kept): %s",
			  it->f->w.name, err);
		e->stats.problems++;
		return -1;
	}
	log_warn("event failed for good type=%s file=%s offset=%lld "
		 "attempts=%u",
		 it->f->w.type, it->f->w.name, (long long)it->off, attempts);
	e->stats.dead++;
	settle_done(it);
	return 0;
}

/* A failed attempt: retry later, or dead letter.  0, or -1 (memory). */
static int settle_failed(struct engine *e, struct item *it, const char *why)
{
	unsigned attempts = it->attempts < CLAIM_ATTEMPTS_MAX
				? it->attempts + 1
				: CLAIM_ATTEMPTS_MAX;
	if (attempts >= e->opt.max_attempts) {
		if (dead_letter(e, it, attempts, why) == 0)
			return 0;
		it->f->broken = 1; /* kept; offered again next pass */
	} else {
		e->stats.retried++;
	}
	return settle_retry(it, attempts, why);
}

/*
 * Applies a fate to an item: 0; SETTLE_KEPT when it could not be moved
 * where it goes (it stays, and its file takes no more this pass); -1 when
 * the pass must stop (memory).
 */
static int settle(struct engine *e, struct item *it, enum fate fate,
		  const char *why)
{
	switch (fate) {
	case FATE_DONE:
		settle_done(it);
		return 0;
	case FATE_QUARANTINE:
		if (quarantine(e, it) != 0) {
			it->f->broken = 1;
			return SETTLE_KEPT;
		}
		settle_done(it);
		return 0;
	case FATE_FAILED:
		return settle_failed(e, it, why);
	case FATE_HOLD:
		return it->retry ? 0 : settle_retry(it, it->attempts, "");
	}
	return -1;
}

/* ---- commits ------------------------------------------------------------ */

/* Saves the progress of f when it changed; a failure stops f. */
static void save(struct engine *e, int dirfd, const char *dir, struct wfile *f)
{
	char err[CLAIM_ERR_MAX];
	if (!f->usable || !f->dirty)
		return;
	drop_gone(f);
	if (claim_state_save(dirfd, dir, &f->w, &f->st, 0, err) != 0) {
		problem(e, err);
		f->broken = 1;
	}
	f->dirty = 0;
}

/*
 * Events handed over between two commits: the handler's commit_every,
 * or more while the retry lists are long (--coalesce holds back every
 * event but the latest of its object): each save writes the whole list,
 * so it comes at most once per 1/1024 of its entries, and what saving
 * writes stays in proportion to the events handed over.  A drain killed
 * in between offers those events again (at-least-once).
 */
static unsigned commit_due(const struct engine *e, const struct wfile *fs,
			   size_t n)
{
	size_t entries = 0;
	for (size_t i = 0; i < n; i++)
		entries += fs[i].st.n_retry;
	size_t due = entries / 1024;
	return due > e->h.commit_every
		   ? (unsigned)(due < UINT_MAX ? due : UINT_MAX)
		   : e->h.commit_every;
}

/*
 * Makes the handler's work final, then saves progress.  0, or -1 when
 * the handler could not (the pass stops; no progress is saved).
 */
static int commit(struct engine *e, struct wfile *fs, size_t n)
{
	e->since_commit = 0;
	if (e->h.commit != NULL && e->h.commit(e->h.ctx) != 0) {
		e->stats.broken = 1;
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		save(e, e->dirfd, e->dir, &fs[i]);
	return 0;
}

/* ---- coalescing --------------------------------------------------------- */

/*
 * Groups the items (coalesce.h): every member settles with its group's
 * latest event, its representative (rep), handed over at its own place.
 * 0, or -1 when out of memory.
 */
static int plan(struct item *its, size_t n)
{
	size_t cap = n > 0 ? n : 1;
	char **keys = calloc(cap, sizeof *keys);
	size_t *rep = calloc(cap, sizeof *rep);
	size_t *first = calloc(cap, sizeof *first);
	int rc = keys != NULL && rep != NULL && first != NULL ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (its[i].valid)
			keys[i] =
			    coalesce_key(its[i].f->w.type, item_line(&its[i]),
					 its[i].len - 1);
	}
	if (rc == 0)
		rc = coalesce_group(keys, n, rep, first);
	for (size_t i = 0; i < n && keys != NULL; i++) {
		if (rc == 0) {
			its[i].rep = rep[i];
			its[i].first = first[i];
		}
		free(keys[i]);
	}
	free(keys);
	free(rep);
	free(first);
	return rc;
}

/* The "coalesced" member of rep's event (coalesce.h), or NULL. */
static char *coalesced_members(const struct item *its, size_t rep, size_t *len)
{
	size_t n = 0;
	for (size_t m = its[rep].first; m < rep; m++)
		n += its[m].rep == rep;
	const char **lines = calloc(n > 0 ? n : 1, sizeof *lines);
	size_t *lens = calloc(n > 0 ? n : 1, sizeof *lens);
	char *ids = NULL;
	if (lines != NULL && lens != NULL) {
		size_t k = 0;
		for (size_t m = its[rep].first; m < rep; m++) {
			if (its[m].rep != rep)
				continue;
			lines[k] = item_line(&its[m]);
			lens[k++] = its[m].len - 1;
		}
		ids = coalesce_ids(lines, lens, n, len);
	}
	free(lines);
	free(lens);
	return ids;
}

/* Settles the members of rep with fate (their representative's). */
static int settle_members(struct engine *e, struct item *its, size_t rep,
			  enum fate fate, const char *why)
{
	int rc = 0;
	for (size_t m = its[rep].first; rc == 0 && m < rep; m++) {
		if (its[m].rep != rep)
			continue;
		e->stats.coalesced++;
		rc = settle(e, &its[m], fate, why);
	}
	return rc;
}

/* ---- handing over ------------------------------------------------------- */

/*
 * The bytes to hand over for its[i] into ev (with "coalesced" when it
 * represents others, then what prepare adds), *owned to be freed.
 */
static enum engine_verdict make_event(struct engine *e, struct item *its,
				      size_t i, struct engine_event *ev,
				      char **owned, char *why)
{
	struct item *it = &its[i];
	memset(ev, 0, sizeof *ev);
	ev->type = it->f->w.type;
	ev->line = ev->out = item_line(it);
	ev->len = ev->out_len = it->len;
	ev->attempts = it->attempts;
	*owned = NULL;
	if (its != NULL && it->first < i) {
		size_t mlen;
		char *members = coalesced_members(its, i, &mlen);
		*owned = members != NULL
			     ? jsonline_append(ev->line, ev->len, members, mlen,
					       &ev->out_len)
			     : NULL;
		free(members);
		if (*owned == NULL) {
			snprintf(why, ENGINE_WHY_MAX, "out of memory");
			e->stats.broken = 1;
			return ENGINE_STOP;
		}
		ev->out = *owned;
	}
	if (e->h.prepare == NULL)
		return ENGINE_HANDLED;
	char *out = NULL;
	size_t out_len = 0;
	enum engine_verdict v = e->h.prepare(e->h.ctx, ev, &out, &out_len, why);
	if (out != NULL) {
		free(*owned);
		*owned = out;
		ev->out = out;
		ev->out_len = out_len;
	}
	return v;
}

static enum fate fate_of(enum engine_verdict v)
{
	return v == ENGINE_HANDLED ? FATE_DONE : FATE_FAILED;
}

/*
 * Offers its[i] (one mode).  its may be a one-item array of a plain
 * pass.  0 to go on, -1 to stop the pass.
 */
static int offer_one(struct engine *e, struct item *its, size_t i)
{
	char why[ENGINE_WHY_MAX] = "";
	struct item *it = &its[i];
	struct engine_event ev;
	char *owned;
	if (it->rep != i)
		return settle(e, it, FATE_HOLD, "");
	e->stats.offered++;
	if (!it->valid)
		return settle(e, it, FATE_QUARANTINE, "") < 0 ? -1 : 0;
	enum engine_verdict v = make_event(e, its, i, &ev, &owned, why);
	if (v == ENGINE_HANDLED)
		v = e->h.one(e->h.ctx, &ev, why);
	free(owned);
	if (v == ENGINE_STOP) {
		e->stats.offered--;
		e->stats.stopped = !e->stats.broken;
		return -1;
	}
	if (v == ENGINE_HANDLED)
		e->stats.handled++;
	else
		log_info("handler failed type=%s file=%s offset=%lld "
			 "attempt=%u reason=\"%s\"",
			 it->f->w.type, it->f->w.name, (long long)it->off,
			 it->attempts + 1, why);
	if (settle_members(e, its, i, fate_of(v), why) != 0 ||
	    settle(e, it, fate_of(v), why) != 0) {
		e->stats.broken = 1;
		return -1;
	}
	return 0;
}

static int room(struct engine *e, size_t pending)
{
	return e->opt.limit == ENGINE_NO_LIMIT ||
	       e->stats.offered + pending < e->opt.limit;
}

static int push(struct item **its, size_t *n, size_t *cap, struct item it)
{
	if (*n == *cap) {
		*cap = *cap != 0 ? *cap * 2 : 256;
		struct item *g = realloc(*its, *cap * sizeof *g);
		if (g == NULL)
			return -1;
		*its = g;
	}
	it.rep = it.first = *n;
	(*its)[(*n)++] = it;
	return 0;
}

/*
 * Appends the items of f to *its (*n of *cap): the events that failed
 * before, then the rest, within the limit.  0, or -1 (memory).
 */
static int collect(struct engine *e, struct wfile *f, struct item **its,
		   size_t *n, size_t *cap)
{
	for (size_t r = 0; r < f->st.n_retry && room(e, *n); r++) {
		if (e->opt.new_only && f->st.retry[r].attempts > 0)
			continue;
		struct item it = item_at(f, f->st.retry[r].off);
		it.attempts = f->st.retry[r].attempts;
		it.retry = 1;
		if (push(its, n, cap, it) != 0)
			return -1;
	}
	for (off_t next = f->st.offset;
	     (size_t)next < f->size && room(e, *n);) {
		struct item it = item_at(f, next);
		next += (off_t)it.len;
		if (push(its, n, cap, it) != 0)
			return -1;
	}
	return 0;
}

/* One mode, no coalescing: event by event, streaming.  0 or -1 (stop). */
static int one_file(struct engine *e, struct wfile *f)
{
	size_t nr = f->st.n_retry;
	off_t *offs = malloc((nr > 0 ? nr : 1) * sizeof *offs);
	if (offs == NULL) {
		e->stats.broken = 1;
		return -1;
	}
	/* The retry list changes as events settle: walk a copy. */
	for (size_t r = 0; r < nr; r++)
		offs[r] = f->st.retry[r].off;
	int rc = 0;
	for (size_t r = 0; rc == 0 && r < nr && !f->broken; r++) {
		ssize_t k = claim_state_find(&f->st, offs[r]);
		if (engine_done(e) || k < 0 ||
		    (e->opt.new_only && f->st.retry[k].attempts > 0))
			continue;
		struct item it = item_at(f, offs[r]);
		it.attempts = f->st.retry[k].attempts;
		it.retry = 1;
		rc = offer_one(e, &it, 0);
		if (rc == 0 && ++e->since_commit >= commit_due(e, f, 1))
			rc = commit(e, f, 1);
	}
	free(offs);
	while (rc == 0 && !f->broken && !engine_done(e) &&
	       (size_t)f->st.offset < f->size) {
		struct item it = item_at(f, f->st.offset);
		rc = offer_one(e, &it, 0);
		if (rc == 0 && ++e->since_commit >= commit_due(e, f, 1))
			rc = commit(e, f, 1);
	}
	return rc;
}

/* Per-item scratch of a batch. */
struct slot {
	enum fate fate;
	int offered; /* a representative that reached the handler */
	char *why;   /* a prepare's reason (owned), or NULL */
};

static void free_batch(struct engine_event *evs, char **owned, size_t nev,
		       struct slot *sl, size_t nsl)
{
	for (size_t k = 0; owned != NULL && k < nev; k++)
		free(owned[k]);
	for (size_t k = 0; sl != NULL && k < nsl; k++)
		free(sl[k].why);
	free(evs);
	free(owned);
	free(sl);
}

/*
 * Offers all[from..to) to prepare and collects what goes into the batch
 * (evs, owned, nev).  Returns the index of the first item not offered
 * (to, or where a STOP or a failed quarantine ended it).
 */
static size_t gather(struct engine *e, struct item *all, size_t from, size_t to,
		     struct engine_event *evs, char **owned, size_t *nev,
		     struct slot *sl)
{
	char why[ENGINE_WHY_MAX];
	size_t i = from;
	for (; i < to && !engine_done(e); i++) {
		struct item *it = &all[i];
		struct slot *s = &sl[i - from];
		s->fate = FATE_HOLD;
		if (it->rep != i)
			continue;
		e->stats.offered++;
		if (!it->valid) {
			/* Copied when the batch settles: a STOP settles none.
			 */
			s->fate = FATE_QUARANTINE;
			continue;
		}
		why[0] = '\0';
		enum engine_verdict v =
		    make_event(e, all, i, &evs[*nev], &owned[*nev], why);
		if (v != ENGINE_HANDLED) {
			free(owned[*nev]);
			owned[*nev] = NULL;
		}
		if (v == ENGINE_STOP) {
			e->stats.offered--;
			e->stats.stopped = !e->stats.broken;
			break;
		}
		if (v == ENGINE_FAILED) {
			s->fate = FATE_FAILED;
			s->why = strdup(why);
			continue;
		}
		s->offered = 1;
		(*nev)++;
	}
	return i;
}

/*
 * Batch mode: all[from..to) are the items of one work file, handed over
 * at once.  0 or -1 (stop).
 */
static int batch_file(struct engine *e, struct item *all, size_t from,
		      size_t to)
{
	char why[ENGINE_WHY_MAX] = "";
	size_t cap = to - from + 1;
	struct engine_event *evs = calloc(cap, sizeof *evs);
	char **owned = calloc(cap, sizeof *owned);
	struct slot *sl = calloc(cap, sizeof *sl);
	size_t nev = 0;
	if (evs == NULL || owned == NULL || sl == NULL) {
		free_batch(evs, owned, 0, sl, 0);
		e->stats.broken = 1;
		return -1;
	}
	/* Items from end on were not offered: they wait. */
	size_t end = gather(e, all, from, to, evs, owned, &nev, sl);
	enum engine_verdict v = ENGINE_HANDLED;
	if (nev > 0)
		v = e->h.batch(e->h.ctx, all[from].f->w.type, evs, nev, why);
	if (v == ENGINE_STOP) {
		e->stats.offered -= nev;
		e->stats.stopped = !e->stats.broken;
		free_batch(evs, owned, nev, sl, cap);
		return -1;
	}
	if (nev > 0 && v == ENGINE_FAILED)
		log_info("batch handler failed type=%s file=%s events=%zu "
			 "reason=\"%s\"",
			 all[from].f->w.type, all[from].f->w.name, nev, why);
	if (v == ENGINE_HANDLED)
		e->stats.handled += nev;
	/* Settle in file order, so that the offset only moves forward. */
	int rc = 0;
	for (size_t k = from; rc == 0 && k < end; k++) {
		struct slot *s = &sl[k - from];
		const char *reason = s->why != NULL ? s->why : "";
		if (s->offered) {
			s->fate = fate_of(v);
			reason = why;
		}
		if (all[k].rep == k)
			rc = settle_members(e, all, k, s->fate, reason);
		if (rc == 0)
			rc = settle(e, &all[k], s->fate, reason);
	}
	free_batch(evs, owned, nev, sl, cap);
	if (rc == SETTLE_KEPT)
		rc = 0; /* the file stops; the rest of it waits */
	if (rc != 0)
		e->stats.broken = 1;
	return rc;
}

/* ---- a type's work files ---------------------------------------------- */

/* Removes f when everything in it is settled, else saves its progress. */
static void finalize(struct engine *e, int dirfd, const char *dir,
		     struct wfile *f)
{
	char err[CLAIM_ERR_MAX];
	if (!f->usable)
		return;
	drop_gone(f);
	if (!e->stats.broken) {
		if ((size_t)f->st.offset >= f->size && f->st.n_retry == 0 &&
		    !f->broken) {
			if (claim_finish(dirfd, dir, &f->w, err) != 0)
				problem(e, err);
		} else {
			save(e, dirfd, dir, f);
		}
	}
	close_work(f);
}

/* Plans and offers a type's items: coalescing, or batch mode. */
static int offer_planned(struct engine *e, struct wfile *fs, size_t nf)
{
	struct item *its = NULL;
	size_t n = 0;
	size_t cap = 0;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < nf; i++) {
		if (fs[i].usable)
			rc = collect(e, &fs[i], &its, &n, &cap);
	}
	if (rc == 0 && e->opt.coalesce)
		rc = plan(its, n);
	if (rc != 0)
		e->stats.broken = 1;
	for (size_t a = 0; rc == 0 && a < n && !engine_done(e);) {
		size_t b = a + 1;
		while (b < n && its[b].f == its[a].f)
			b++;
		if (e->h.batch != NULL) {
			rc = its[a].f->broken ? 0 : batch_file(e, its, a, b);
		} else {
			for (size_t i = a; rc == 0 && i < b &&
					   !engine_done(e) && !its[a].f->broken;
			     i++) {
				/* A held event needs no save of its own. */
				int held = its[i].rep != i;
				rc = offer_one(e, its, i);
				if (rc == 0 && !held &&
				    ++e->since_commit >= commit_due(e, fs, nf))
					rc = commit(e, fs, nf);
			}
		}
		if (rc == 0)
			rc = commit(e, fs, nf);
		a = b;
	}
	free(its);
	return rc;
}

/* Drains the work files ws[0..n) of one type, oldest first. */
static int drain_type(struct engine *e, const struct claim_work *ws, size_t n)
{
	struct wfile *fs = calloc(n, sizeof *fs);
	int rc = 0;
	if (fs == NULL) {
		e->stats.broken = 1;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		fs[i].w = ws[i];
		open_work(e, e->dirfd, e->dir, &fs[i]);
	}
	if (e->opt.coalesce || e->h.batch != NULL) {
		rc = offer_planned(e, fs, n);
	} else {
		for (size_t i = 0; rc == 0 && i < n && !engine_done(e); i++) {
			if (fs[i].usable)
				rc = one_file(e, &fs[i]);
			if (rc == 0)
				rc = commit(e, &fs[i], 1);
		}
	}
	if (rc == 0 || e->stats.stopped) {
		if (commit(e, fs, n) != 0)
			rc = -1;
	}
	for (size_t i = 0; i < n; i++)
		finalize(e, e->dirfd, e->dir, &fs[i]);
	free(fs);
	return e->stats.stopped ? 0 : rc;
}

/* ---- claiming ------------------------------------------------------------ */

/* 1 when name is {work}.state or {work}.state.tmp and {work} is gone. */
static int orphan_progress(int dirfd, const char *name)
{
	char work[LAYOUT_NAME_MAX];
	char type[EVENT_TYPE_MAX + 1];
	struct stat st;
	const char *suffix = strstr(name, LAYOUT_CLAIM_MARK);
	suffix = suffix != NULL ? strstr(suffix, LAYOUT_STATE_SUFFIX) : NULL;
	if (suffix == NULL ||
	    (strcmp(suffix, LAYOUT_STATE_SUFFIX) != 0 &&
	     strcmp(suffix, LAYOUT_STATE_SUFFIX LAYOUT_TMP_SUFFIX) != 0))
		return 0;
	snprintf(work, sizeof work, "%.*s", (int)(suffix - name), name);
	if (layout_parse(work, type) != LAYOUT_WORK)
		return 0;
	return fstatat(dirfd, work, &st, AT_SYMLINK_NOFOLLOW) != 0 &&
	       errno == ENOENT &&
	       fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode);
}

/*
 * Removes progress files whose work file is gone: a drain killed between
 * the two removals of claim_finish leaves one.  It holds no event (its
 * work file was settled to the end), only keeps the spool from emptying.
 */
static void sweep_orphans(int dirfd, const char *dir)
{
	DIR *d = layout_read_dir(dirfd);
	struct dirent *de;
	if (d == NULL)
		return; /* claim_all reports an unreadable directory */
	while ((de = readdir(d)) != NULL) {
		if (!orphan_progress(dirfd, de->d_name))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0)
			log_info("removed %s/%s: its work file was finished",
				 dir, de->d_name);
	}
	closedir(d);
}

/* Claims every selected {type}.jsonl in dirfd. */
static void claim_all(struct engine *e, int dirfd, const char *dir)
{
	char err[CLAIM_ERR_MAX];
	DIR *d = layout_read_dir(dirfd);
	struct dirent *de;
	if (d == NULL) {
		log_error("read directory %s: %s", dir, strerror(errno));
		e->stats.problems++;
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char type[EVENT_TYPE_MAX + 1];
		struct claim_work w;
		if (layout_parse(de->d_name, type) != LAYOUT_PENDING ||
		    !engine_selected(&e->opt, type))
			continue;
		if (claim_take(dirfd, dir, type, &w, err) < 0)
			problem(e, err);
	}
	closedir(d);
}

struct typed {
	struct claim_work w;
	size_t i;
};

static int by_type_then_age(const void *a, const void *b)
{
	const struct typed *x = a;
	const struct typed *y = b;
	int c = strcmp(x->w.type, y->w.type);
	return c != 0 ? c : (x->i > y->i) - (x->i < y->i);
}

/* The selected work files in dirfd, by type, oldest claim first. */
static ssize_t work_files(struct engine *e, int dirfd, const char *dir,
			  struct claim_work **out)
{
	char err[CLAIM_ERR_MAX];
	struct claim_work *ws;
	ssize_t n = claim_list(dirfd, dir, &ws, err);
	*out = NULL;
	if (n < 0) {
		problem(e, err);
		return -1;
	}
	struct typed *t = calloc((size_t)n + 1, sizeof *t);
	if (t == NULL) {
		free(ws);
		return -1;
	}
	size_t k = 0;
	for (ssize_t i = 0; i < n; i++) {
		if (engine_selected(&e->opt, ws[i].type)) {
			t[k].w = ws[i];
			t[k].i = (size_t)i;
			k++;
		}
	}
	qsort(t, k, sizeof *t, by_type_then_age);
	for (size_t i = 0; i < k; i++)
		ws[i] = t[i].w;
	free(t);
	*out = ws;
	return (ssize_t)k;
}

/* ---- --retry-failed ------------------------------------------------------ */

/* Puts the dead letters of one failed/ work file back; 0 or -1. */
static int requeue_file(struct engine *e, struct wfile *f)
{
	static const char *const keys[] = {KEY_ATTEMPTS, KEY_LAST_ERROR};
	char err[SPOOL_ERR_MAX];
	int rc = 0;
	/* Progress after each one: a kill puts at most one back twice. */
	while (rc == 0 && !f->broken && (size_t)f->st.offset < f->size) {
		struct item it = item_at(f, f->st.offset);
		size_t n;
		char *line = it.valid ? jsonline_drop(item_line(&it), it.len,
						      keys, 2, &n)
				      : NULL;
		if (it.valid && line == NULL) {
			e->stats.broken = 1;
			return -1;
		}
		if (line != NULL) {
			rc = spool_append_at(e->dirfd, e->dir, f->w.type, line,
					     n, 1, e->opt.file_mode, err);
			if (rc != 0)
				problem(e, err);
			else
				e->stats.requeued++;
		} else {
			rc = quarantine(e, &it);
		}
		free(line);
		if (rc == 0) {
			settle_done(&it);
			save(e, e->failedfd, e->failed_path, f);
		}
	}
	if (rc != 0)
		f->broken = 1;
	return rc;
}

static void requeue_failed(struct engine *e)
{
	struct claim_work *ws;
	if (e->failedfd < 0)
		return;
	sweep_orphans(e->failedfd, e->failed_path);
	claim_all(e, e->failedfd, e->failed_path);
	ssize_t n = work_files(e, e->failedfd, e->failed_path, &ws);
	for (ssize_t i = 0; i < n && !e->stats.broken; i++) {
		struct wfile f;
		memset(&f, 0, sizeof f);
		f.w = ws[i];
		if (open_work(e, e->failedfd, e->failed_path, &f) == 0)
			requeue_file(e, &f);
		finalize(e, e->failedfd, e->failed_path, &f);
	}
	free(ws);
}

/* ---- a pass -------------------------------------------------------------- */

int engine_pass(struct engine *e)
{
	struct claim_work *ws;
	if (e->opt.retry_failed && !e->requeue_done) {
		requeue_failed(e);
		e->requeue_done = 1;
	}
	if (e->stats.broken)
		return -1;
	sweep_orphans(e->dirfd, e->dir);
	claim_all(e, e->dirfd, e->dir);
	ssize_t n = work_files(e, e->dirfd, e->dir, &ws);
	if (n < 0)
		return -1;
	for (ssize_t a = 0; a < n && !engine_done(e);) {
		ssize_t b = a + 1;
		while (b < n && strcmp(ws[a].type, ws[b].type) == 0)
			b++;
		drain_type(e, &ws[a], (size_t)(b - a));
		a = b;
	}
	free(ws);
	return e->stats.broken ? -1 : 0;
}
