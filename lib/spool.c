#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "layout.h"
#include "log.h"

#define OPEN_FLAGS (O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW)

/* Formats "what path: strerror"; errno is kept for the caller. */
static int fail(char *err, const char *what, const char *path)
{
	int saved = errno;
	snprintf(err, SPOOL_ERR_MAX, "%s %s: %s", what, path, strerror(saved));
	errno = saved;
	return -1;
}

int spool_flock(int fd, int op)
{
	int rc;
	do
		rc = flock(fd, op);
	while (rc != 0 && errno == EINTR);
	return rc;
}

static int fsync_dir(const char *dir, char *err)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return fail(err, "open directory", dir);
	int rc = fsync(dfd);
	if (rc != 0)
		fail(err, "fsync directory", dir);
	close(dfd);
	return rc;
}

/*
 * fd when it is a regular file; else closes it and returns -1 with err
 * set ("is not a regular file": a FIFO planted in the spool would take
 * events and lose them, then block a writer holding the lock).
 */
static int regular(int fd, const char *path, char *err)
{
	struct stat st;
	int e = fstat(fd, &st) != 0    ? errno
		: !S_ISREG(st.st_mode) ? EFTYPE_LAYOUT
				       : 0;
	if (e != 0) {
		snprintf(err, SPOOL_ERR_MAX, "open %s: %s", path,
			 layout_strerror(e));
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/*
 * Opens path (a regular file), creating it with the exact mode when
 * absent.  Returns the descriptor, or -1 with err set.
 */
static int open_spool_file(const char *path, mode_t mode, char *err)
{
	for (int i = 0; i < SPOOL_REOPEN_MAX; i++) {
		/* O_NONBLOCK: opening a FIFO never waits for a reader. */
		int fd = open(path, OPEN_FLAGS | O_NONBLOCK);
		if (fd >= 0 || errno != ENOENT)
			return fd >= 0 ? regular(fd, path, err)
				       : fail(err, "open", path);
		fd = open(path, OPEN_FLAGS | O_CREAT | O_EXCL, mode);
		if (fd < 0 && errno == EEXIST)
			continue; /* another writer created it first */
		if (fd < 0)
			return fail(err, "create", path);
		if (fchmod(fd, mode) != 0) { /* open() applied the umask */
			fail(err, "chmod", path);
			close(fd);
			return -1;
		}
		return fd;
	}
	snprintf(err, SPOOL_ERR_MAX, "create %s: gave up after %d races", path,
		 SPOOL_REOPEN_MAX);
	return -1;
}

/* 1 when fd still is what path names, 0 when not, -1 on error. */
static int still_linked(int fd, const char *path, struct stat *st, char *err)
{
	struct stat ps;
	if (fstat(fd, st) != 0)
		return fail(err, "fstat", path);
	if (stat(path, &ps) != 0) {
		if (errno == ENOENT)
			return 0;
		return fail(err, "stat", path);
	}
	return st->st_dev == ps.st_dev && st->st_ino == ps.st_ino;
}

/* 1 when the file is empty or ends in '\n', 0 when not, -1 on error. */
static int tail_is_clean(int fd, off_t size, const char *path, char *err)
{
	char last;
	if (size == 0)
		return 1;
	ssize_t n = pread(fd, &last, 1, size - 1);
	if (n != 1) {
		if (n == 0)
			errno = EIO;
		return fail(err, "read tail of", path);
	}
	return last == '\n';
}

/* Lines one writev may carry: IOV_MAX less the torn-tail repair. */
#define BATCH_MAX 256

/*
 * Under the lock, on the file path names, whose size is size: repairs a
 * torn tail unless the caller knows the tail is clean, writes the n
 * records of rec in one call, and cuts the file back to its old size when
 * the write falls short.  *end is where the file now ends, -1 when that is
 * not known.
 */
static int write_locked(int fd, off_t size, int known_clean, const char *path,
			const struct iovec *rec, int n, off_t *end, char *err)
{
	struct iovec iov[BATCH_MAX + 1];
	int n_iov = 0;
	size_t want = 0;
	*end = -1;
	int clean = known_clean ? 1 : tail_is_clean(fd, size, path, err);
	if (clean < 0)
		return -1;
	if (!clean) {
		iov[n_iov].iov_base = (void *)"\n";
		iov[n_iov++].iov_len = 1;
	}
	for (int i = 0; i < n; i++) {
		iov[n_iov++] = rec[i];
		want += rec[i].iov_len;
	}
	want += clean ? 0 : 1;
	ssize_t got = writev(fd, iov, n_iov);
	if (got >= 0 && (size_t)got == want) {
		*end = size + (off_t)want;
		return 0;
	}
	if (got >= 0) {
		snprintf(err, SPOOL_ERR_MAX, "short write to %s: %zd of %zu",
			 path, got, want);
	} else {
		fail(err, "write", path);
	}
	if (ftruncate(fd, size) != 0) {
		size_t used = strlen(err);
		snprintf(err + used, SPOOL_ERR_MAX - used,
			 "; truncating back failed: %s", strerror(errno));
	}
	return -1;
}

/*
 * Under the lock, before the first record goes into a new (empty) file:
 * with sync, makes its name durable, so no later writer can answer before
 * the file itself would survive a crash.
 */
static int name_durable(const struct spool *sp, off_t size, char *err)
{
	if (sp->sync && size == 0)
		return fsync_dir(sp->dir, err);
	return 0;
}

/* ---- one descriptor per append (CGI, the command line) ---- */

static int append_once(const struct spool *sp, const char *path,
		       const char *line, size_t len, char *err)
{
	for (int attempt = 0; attempt < SPOOL_REOPEN_MAX; attempt++) {
		struct stat st;
		off_t end;
		int fd = open_spool_file(path, sp->file_mode, err);
		if (fd < 0)
			return -1;
		if (spool_flock(fd, LOCK_EX) != 0) {
			fail(err, "flock", path);
			close(fd);
			return -1;
		}
		int linked = still_linked(fd, path, &st, err);
		if (linked == 0) {
			close(fd); /* claimed by a consumer: start over */
			continue;
		}
		struct iovec rec = {(void *)line, len};
		int rc = linked < 0 ? -1 : name_durable(sp, st.st_size, err);
		if (rc == 0)
			rc = write_locked(fd, st.st_size, 0, path, &rec, 1,
					  &end, err);
		/*
		 * Sync outside the lock: concurrent writers share commits.
		 * Without sync, close() below releases the lock.
		 */
		if (sp->sync && spool_flock(fd, LOCK_UN) != 0 && rc == 0)
			rc = fail(err, "unlock", path);
		if (rc == 0 && sp->sync && fdatasync(fd) != 0)
			rc = fail(err, "fdatasync", path);
		if (close(fd) != 0 && rc == 0)
			rc = fail(err, "close", path);
		return rc;
	}
	snprintf(err, SPOOL_ERR_MAX, "%s kept being renamed; gave up after %d",
		 path, SPOOL_REOPEN_MAX);
	return -1;
}

/* ---- descriptors kept open (a FastCGI process, its threads) ---- */

/*
 * An append with sync, on its own stack, queued while another thread
 * writes and syncs a batch of the same file.  Posted exactly once: with
 * its result, or to lead the next batch (itself and those queued behind
 * it, linked by next).
 */
struct waiter {
	sem_t sem;
	struct iovec rec;    /* the record */
	char *err;	     /* the caller's: the reason when rc is -1 */
	int lead;	     /* posted to write and sync the next batch */
	int rc;		     /* the result, when not lead */
	struct waiter *next; /* queued behind it */
};

/*
 * Which file, through which mount: statx's answer for the descriptor when
 * it was opened, or for the path under the lock.
 */
struct file_id {
	unsigned dev_major;
	unsigned dev_minor;
	unsigned long long ino;
	unsigned long long mnt_id; /* 0: the kernel did not say */
};

/* One open spool file, shared by the threads. */
struct spool_file {
	int fd;
	struct file_id id;     /* of fd, taken when it was opened */
	pthread_mutex_t wlock; /* held from flock to unlock */
	off_t end; /* under wlock: where our last write ended, or -1 */
	/* The rest under spool_open.lock. */
	int refs;	      /* the slot's, plus one per append using it */
	int retired;	      /* in no slot; never picked for a new append */
	int leading;	      /* a batch is being written and synced */
	struct waiter *queue; /* appends waiting for the next batch */
	struct waiter **tail; /* where the next one is queued */
};

struct keep_slot {
	char type[EVENT_TYPE_MAX + 1]; /* "" when free */
	struct spool_file *file;       /* NULL when free; never retired */
	time_t used;		       /* monotonic seconds, last append */
};

struct spool_open {
	pthread_mutex_t lock;
	struct keep_slot slot[SPOOL_KEEP_MAX];
};

static time_t now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec;
}

#define ID_MASK (STATX_INO | STATX_SIZE | STATX_MNT_ID)

/* statx of fd (path NULL) or of path; 0, or -1 and errno. */
static int file_id_of(int fd, const char *path, struct file_id *id, off_t *size)
{
	struct statx sx;
	int rc = path != NULL ? statx(AT_FDCWD, path, 0, ID_MASK, &sx)
			      : statx(fd, "", AT_EMPTY_PATH, ID_MASK, &sx);
	if (rc != 0)
		return -1;
	id->dev_major = sx.stx_dev_major;
	id->dev_minor = sx.stx_dev_minor;
	id->ino = sx.stx_ino;
	id->mnt_id = (sx.stx_mask & STATX_MNT_ID) != 0 ? sx.stx_mnt_id : 0;
	*size = (off_t)sx.stx_size;
	return 0;
}

/*
 * The same file, reached through the same mount: a read-only bind mount
 * laid over the spool makes the path name the file through another mount,
 * and appends through a descriptor of the old one would bypass it.
 */
static int same_file(const struct file_id *a, const struct file_id *b)
{
	return a->dev_major == b->dev_major && a->dev_minor == b->dev_minor &&
	       a->ino == b->ino &&
	       (a->mnt_id == 0 || b->mnt_id == 0 || a->mnt_id == b->mnt_id);
}

/* Takes over fd (closed on failure).  refs is 1: the caller's. */
static struct spool_file *file_new(int fd, const char *path, char *err)
{
	struct file_id id;
	off_t size;
	struct spool_file *f = NULL;
	if (file_id_of(fd, NULL, &id, &size) != 0) {
		fail(err, "fstat", path);
	} else if ((f = calloc(1, sizeof *f)) == NULL) {
		snprintf(err, SPOOL_ERR_MAX, "out of memory opening %s", path);
	} else if (pthread_mutex_init(&f->wlock, NULL) != 0) {
		snprintf(err, SPOOL_ERR_MAX, "cannot make a mutex for %s",
			 path);
		free(f);
		f = NULL;
	}
	if (f == NULL) {
		close(fd);
		return NULL;
	}
	f->fd = fd;
	f->id = id;
	f->end = -1;
	f->refs = 1;
	f->tail = &f->queue;
	return f;
}

/* Once nothing refers to f.  Every write through it was checked already. */
static void file_free(struct spool_file *f)
{
	if (close(f->fd) != 0)
		log_warn("closing a spool file: %s", strerror(errno));
	pthread_mutex_destroy(&f->wlock);
	free(f);
}

static struct keep_slot *slot_of(struct spool_open *o, const char *type)
{
	for (size_t i = 0; i < SPOOL_KEEP_MAX; i++) {
		if (o->slot[i].file != NULL &&
		    strcmp(o->slot[i].type, type) == 0)
			return &o->slot[i];
	}
	return NULL;
}

/* Under o->lock: empties s; returns its file when that was the last ref. */
static struct spool_file *slot_clear(struct keep_slot *s)
{
	struct spool_file *f = s->file;
	s->file = NULL;
	s->type[0] = '\0';
	f->retired = 1;
	return --f->refs == 0 ? f : NULL;
}

/* Under o->lock: marks f retired and takes it out of its slot. */
static void retire_locked(struct spool_open *o, struct spool_file *f)
{
	f->retired = 1;
	for (size_t i = 0; i < SPOOL_KEEP_MAX; i++) {
		if (o->slot[i].file == f)
			(void)slot_clear(&o->slot[i]); /* the caller holds f */
	}
}

/*
 * Under o->lock: a free slot, else the least recently used one whose
 * descriptor no append is using (emptied; its file, to be freed outside
 * the lock, in *doomed), else NULL.
 */
static struct keep_slot *free_slot(struct spool_open *o,
				   struct spool_file **doomed)
{
	struct keep_slot *lru = NULL;
	for (size_t i = 0; i < SPOOL_KEEP_MAX; i++) {
		struct keep_slot *s = &o->slot[i];
		if (s->file == NULL)
			return s;
		if (s->file->refs == 1 && (lru == NULL || s->used < lru->used))
			lru = s;
	}
	if (lru != NULL)
		*doomed = slot_clear(lru);
	return lru;
}

/*
 * The descriptor of type's file, with a reference for the caller (release
 * it with file_put): the kept one, else a newly opened one, kept when a
 * slot is free.  NULL with err set when the file cannot be opened.
 */
static struct spool_file *file_get(const struct spool *sp, const char *type,
				   const char *path, char *err)
{
	struct spool_open *o = sp->open;
	struct spool_file *f;
	struct spool_file *doomed = NULL;
	pthread_mutex_lock(&o->lock);
	struct keep_slot *s = slot_of(o, type);
	if (s != NULL) {
		f = s->file;
		f->refs++;
		s->used = now_s();
		pthread_mutex_unlock(&o->lock);
		return f;
	}
	pthread_mutex_unlock(&o->lock);

	/* Opened outside the lock: it may create the file and sync. */
	int fd = open_spool_file(path, sp->file_mode, err);
	if (fd < 0)
		return NULL;
	f = file_new(fd, path, err);
	if (f == NULL)
		return NULL;

	pthread_mutex_lock(&o->lock);
	s = slot_of(o, type);
	if (s != NULL) { /* another thread opened it meanwhile: use one */
		doomed = f;
		f = s->file;
		f->refs++;
		s->used = now_s();
	} else {
		s = free_slot(o, &doomed);
		if (s != NULL) { /* else all busy: ours only, closed after */
			snprintf(s->type, sizeof s->type, "%s", type);
			s->file = f;
			s->used = now_s();
			f->refs++;
		}
	}
	pthread_mutex_unlock(&o->lock);
	if (doomed != NULL)
		file_free(doomed);
	return f;
}

static void file_put(struct spool_open *o, struct spool_file *f)
{
	pthread_mutex_lock(&o->lock);
	int last = --f->refs == 0;
	pthread_mutex_unlock(&o->lock);
	if (last)
		file_free(f);
}

static void file_retire(struct spool_open *o, struct spool_file *f)
{
	pthread_mutex_lock(&o->lock);
	retire_locked(o, f);
	pthread_mutex_unlock(&o->lock);
}

/*
 * Takes the lock and checks that path still names f.  1: locked, and
 * *size is the file's size; 0: claimed (not locked any more); -1: error,
 * not locked.
 */
static int lock_kept(struct spool_file *f, const char *path, off_t *size,
		     char *err)
{
	struct file_id now;
	if (spool_flock(f->fd, LOCK_EX) != 0)
		return fail(err, "flock", path);
	int st = file_id_of(-1, path, &now, size);
	if (st == 0 && same_file(&f->id, &now))
		return 1; /* *size is ours, and we hold its lock */
	int rc = 0;
	if (st != 0 && errno != ENOENT)
		rc = fail(err, "stat", path);
	if (spool_flock(f->fd, LOCK_UN) != 0 && rc == 0)
		rc = fail(err, "unlock", path);
	return rc;
}

static void post(struct waiter *w)
{
	/* Cannot fail for a valid semaphore that is not at SEM_VALUE_MAX. */
	(void)sem_post(&w->sem);
}

static void wait_posted(struct waiter *w)
{
	while (sem_wait(&w->sem) != 0 && errno == EINTR)
		;
}

/*
 * Writes the n records of rec into the kept file f under its write mutex
 * and its file lock, when path still names f.  0: written; 1: path names
 * f no more (claimed by a consumer), nothing written; -1: error, err says.
 */
static int write_kept(const struct spool *sp, struct spool_file *f,
		      const char *path, const struct iovec *rec, int n,
		      char *err)
{
	off_t size = 0;
	int rc = -1;
	pthread_mutex_lock(&f->wlock);
	int linked = lock_kept(f, path, &size, err);
	if (linked == 1) {
		rc = name_durable(sp, size, err);
		if (rc == 0)
			rc = write_locked(f->fd, size, f->end == size, path,
					  rec, n, &f->end, err);
		if (spool_flock(f->fd, LOCK_UN) != 0 && rc == 0)
			rc = fail(err, "unlock", path);
	} else if (linked == 0) {
		rc = 1;
	}
	pthread_mutex_unlock(&f->wlock);
	return rc;
}

/*
 * Writes the batch (b and those linked behind it, at most BATCH_MAX) to
 * type's file with one writev under the lock: through f while the path
 * still names it, else through the file opened afresh.  Then, with sync,
 * one fdatasync.  Returns 0, or -1 with err set; *used is the file used
 * (a reference the caller drops when it is not f).
 */
static int write_batch(const struct spool *sp, const char *type,
		       const char *path, struct spool_file *f, struct waiter *b,
		       struct spool_file **used, char *err)
{
	struct spool_open *o = sp->open;
	struct iovec rec[BATCH_MAX];
	int n = 0;
	for (struct waiter *w = b; w != NULL; w = w->next)
		rec[n++] = w->rec;
	*used = f;
	for (int attempt = 0; attempt < SPOOL_REOPEN_MAX; attempt++) {
		struct spool_file *u = *used;
		pthread_mutex_lock(&o->lock);
		int retired = u->retired;
		pthread_mutex_unlock(&o->lock);
		if (retired) { /* claimed, or a sync failed: a fresh one */
			u = file_get(sp, type, path, err);
			if (*used != f)
				file_put(o, *used);
			*used = u;
			if (u == NULL)
				return -1;
		}
		int rc = write_kept(sp, u, path, rec, n, err);
		if (rc == 1) { /* claimed by a consumer: start over */
			file_retire(o, u);
			continue;
		}
		if (rc == 0 && sp->sync && fdatasync(u->fd) != 0)
			rc = fail(err, "fdatasync", path);
		if (rc != 0) /* a fresh descriptor for the next batch */
			file_retire(o, u);
		return rc;
	}
	snprintf(err, SPOOL_ERR_MAX, "%s kept being renamed; gave up after %d",
		 path, SPOOL_REOPEN_MAX);
	return -1;
}

/*
 * Leads the batch that starts with me: writes and syncs it, hands the
 * next batch (what was queued meanwhile) on to its first waiter, and posts
 * the others of this one with the result.
 */
static int lead_batch(const struct spool *sp, const char *type,
		      const char *path, struct spool_file *f, struct waiter *me)
{
	struct spool_open *o = sp->open;
	struct spool_file *used;
	int rc = write_batch(sp, type, path, f, me, &used, me->err);
	if (used != NULL && used != f)
		file_put(o, used);
	/* What queued while we wrote and synced: the next batch. */
	pthread_mutex_lock(&o->lock);
	struct waiter *next = f->queue;
	if (next == NULL) {
		f->leading = 0;
	} else {
		struct waiter *last = next;
		for (int n = 1; last->next != NULL && n < BATCH_MAX; n++)
			last = last->next;
		f->queue = last->next;
		if (f->queue == NULL)
			f->tail = &f->queue;
		last->next = NULL;
		next->lead = 1;
		post(next);
	}
	pthread_mutex_unlock(&o->lock);
	for (struct waiter *w = me->next; w != NULL;) {
		struct waiter *after = w->next; /* w may be gone once posted */
		w->rc = rc;
		if (rc != 0)
			memcpy(w->err, me->err, SPOOL_ERR_MAX);
		post(w);
		w = after;
	}
	return rc;
}

/*
 * With sync: the append is written and synced in a batch.  When no batch
 * of the file is in flight the caller writes and syncs at once; else it
 * queues, and the batch in flight's leader hands it the next one.  Every
 * record of a batch is written before its fdatasync begins, so each
 * append is answered after an fdatasync that began after its write
 * completed; appends made while a batch is in flight go into the next.
 */
static int append_batched(const struct spool *sp, const char *type,
			  const char *path, const char *line, size_t len,
			  char *err)
{
	struct spool_open *o = sp->open;
	struct waiter me;
	int rc;
	struct spool_file *f = file_get(sp, type, path, err);
	if (f == NULL)
		return -1;
	memset(&me, 0, sizeof me);
	me.rec.iov_base = (void *)line;
	me.rec.iov_len = len;
	me.err = err;
	pthread_mutex_lock(&o->lock);
	if (!f->leading) {
		f->leading = 1;
		pthread_mutex_unlock(&o->lock);
		rc = lead_batch(sp, type, path, f, &me);
	} else if (sem_init(&me.sem, 0, 0) != 0) {
		pthread_mutex_unlock(&o->lock);
		rc = fail(err, "sem_init for", path);
	} else {
		*f->tail = &me;
		f->tail = &me.next;
		pthread_mutex_unlock(&o->lock);
		wait_posted(&me);
		rc = me.lead ? lead_batch(sp, type, path, f, &me) : me.rc;
		sem_destroy(&me.sem);
	}
	file_put(o, f);
	return rc;
}

/* Without sync: each thread writes its own record under the lock. */
static int append_kept(const struct spool *sp, const char *type,
		       const char *path, const char *line, size_t len,
		       char *err)
{
	struct spool_open *o = sp->open;
	struct iovec rec = {(void *)line, len};
	for (int attempt = 0; attempt < SPOOL_REOPEN_MAX; attempt++) {
		struct spool_file *f = file_get(sp, type, path, err);
		if (f == NULL)
			return -1;
		int rc = write_kept(sp, f, path, &rec, 1, err);
		if (rc == 1) { /* claimed by a consumer: start over */
			file_retire(o, f);
			file_put(o, f);
			continue;
		}
		if (rc != 0) /* a fresh descriptor for the next append */
			file_retire(o, f);
		file_put(o, f);
		return rc;
	}
	snprintf(err, SPOOL_ERR_MAX, "%s kept being renamed; gave up after %d",
		 path, SPOOL_REOPEN_MAX);
	return -1;
}

int spool_append(const struct spool *sp, const char *type, const char *line,
		 size_t len, char err[SPOOL_ERR_MAX])
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof path, "%s/%s.jsonl", sp->dir, type);
	if (n < 0 || (size_t)n >= sizeof path) {
		snprintf(err, SPOOL_ERR_MAX, "spool path too long");
		return -1;
	}
	if (sp->open != NULL && strlen(type) <= EVENT_TYPE_MAX)
		return sp->sync ? append_batched(sp, type, path, line, len, err)
				: append_kept(sp, type, path, line, len, err);
	return append_once(sp, path, line, len, err);
}

int spool_keep_open(struct spool *sp)
{
	struct spool_open *o = calloc(1, sizeof *o);
	if (o == NULL)
		return -1;
	if (pthread_mutex_init(&o->lock, NULL) != 0) {
		free(o);
		return -1;
	}
	sp->open = o;
	return 0;
}

void spool_close_idle(struct spool *sp, unsigned idle_s)
{
	struct spool_open *o = sp->open;
	struct spool_file *doomed[SPOOL_KEEP_MAX];
	size_t n = 0;
	if (o == NULL)
		return;
	time_t now = now_s();
	pthread_mutex_lock(&o->lock);
	for (size_t i = 0; i < SPOOL_KEEP_MAX; i++) {
		struct keep_slot *s = &o->slot[i];
		if (s->file != NULL && s->file->refs == 1 &&
		    now - s->used >= (time_t)idle_s)
			doomed[n++] = slot_clear(s);
	}
	pthread_mutex_unlock(&o->lock);
	for (size_t i = 0; i < n; i++)
		file_free(doomed[i]);
}

void spool_close(struct spool *sp)
{
	struct spool_open *o = sp->open;
	if (o == NULL)
		return;
	for (size_t i = 0; i < SPOOL_KEEP_MAX; i++) {
		if (o->slot[i].file != NULL) {
			struct spool_file *f = slot_clear(&o->slot[i]);
			if (f != NULL)
				file_free(f);
		}
	}
	pthread_mutex_destroy(&o->lock);
	free(o);
	sp->open = NULL;
}

/* Opens {type}.jsonl in dirfd for appending, creating it; fd or -1. */
static int open_at(int dirfd, const char *dir, const char *name, mode_t mode,
		   int *created, char *err)
{
	const int flags = OPEN_FLAGS | O_NONBLOCK;
	struct stat st;
	for (int i = 0; i < SPOOL_REOPEN_MAX; i++) {
		int fd = openat(dirfd, name, flags);
		*created = fd < 0 && errno == ENOENT;
		if (*created)
			fd =
			    openat(dirfd, name, flags | O_CREAT | O_EXCL, mode);
		if (fd < 0 && *created && errno == EEXIST)
			continue; /* another writer created it first */
		int e = 0;
		if (fd < 0)
			e = errno;
		else if (fstat(fd, &st) != 0)
			e = errno;
		else if (!S_ISREG(st.st_mode))
			e = EFTYPE_LAYOUT;
		else if (*created && fchmod(fd, mode) != 0)
			e = errno;
		if (e == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		snprintf(err, SPOOL_ERR_MAX, "open %s/%s: %s", dir, name,
			 layout_strerror(e));
		errno = e;
		return -1;
	}
	snprintf(err, SPOOL_ERR_MAX, "create %s/%s: gave up after %d races",
		 dir, name, SPOOL_REOPEN_MAX);
	return -1;
}

int spool_append_at(int dirfd, const char *dir, const char *type,
		    const char *line, size_t len, int sync, mode_t mode,
		    char err[SPOOL_ERR_MAX])
{
	char name[LAYOUT_NAME_MAX];
	char path[PATH_MAX];
	int n = snprintf(name, sizeof name, "%s%s", type, LAYOUT_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof name) {
		snprintf(err, SPOOL_ERR_MAX, "%s: type name too long", dir);
		return -1;
	}
	snprintf(path, sizeof path, "%s/%s", dir, name);
	for (int attempt = 0; attempt < SPOOL_REOPEN_MAX; attempt++) {
		struct stat st;
		struct stat ps;
		int created;
		int fd = open_at(dirfd, dir, name, mode, &created, err);
		if (fd < 0)
			return -1;
		int rc = spool_flock(fd, LOCK_EX) == 0
			     ? 0
			     : fail(err, "flock", path);
		if (rc == 0 && fstat(fd, &st) != 0)
			rc = fail(err, "fstat", path);
		if (rc == 0 &&
		    (fstatat(dirfd, name, &ps, AT_SYMLINK_NOFOLLOW) != 0 ||
		     ps.st_dev != st.st_dev || ps.st_ino != st.st_ino)) {
			close(fd); /* claimed meanwhile: start over */
			continue;
		}
		if (rc == 0 && sync && created && fsync(dirfd) != 0)
			rc = fail(err, "fsync directory", dir);
		struct iovec rec = {(void *)line, len};
		off_t end;
		if (rc == 0)
			rc = write_locked(fd, st.st_size, 0, path, &rec, 1,
					  &end, err);
		if (rc == 0 && sync && fdatasync(fd) != 0)
			rc = fail(err, "fdatasync", path);
		if (close(fd) != 0 && rc == 0)
			rc = fail(err, "close", path);
		return rc;
	}
	snprintf(err, SPOOL_ERR_MAX, "%s kept being renamed; gave up after %d",
		 path, SPOOL_REOPEN_MAX);
	return -1;
}

/* Filesystems on which O_APPEND or flock are not atomic across hosts. */
static const struct {
	unsigned long magic;
	const char *name;
} remote_fs[] = {
    {0x6969, "nfs"},	  {0x517b, "smb"},	{0xff534d42, "cifs"},
    {0xfe534d42, "smb2"}, {0x564c, "ncp"},	{0x73757245, "coda"},
    {0x5346414f, "afs"},  {0x6b414653, "kafs"}, {0x01021997, "9p"},
    {0x00c36400, "ceph"}, {0x47504653, "gpfs"}, {0x0bd00bd0, "lustre"},
};

int spool_check_dir(const char *dir, char err[SPOOL_ERR_MAX])
{
	struct stat st;
	struct statfs fs;
	if (stat(dir, &st) != 0)
		return fail(err, "spool directory", dir);
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, SPOOL_ERR_MAX,
			 "spool directory %s: not a directory", dir);
		errno = ENOTDIR;
		return -1;
	}
	if (statfs(dir, &fs) != 0)
		return fail(err, "statfs", dir);
	for (size_t i = 0; i < sizeof remote_fs / sizeof remote_fs[0]; i++) {
		if ((unsigned long)fs.f_type == remote_fs[i].magic) {
			snprintf(
			    err, SPOOL_ERR_MAX,
			    "spool directory %s is on a network filesystem "
			    "(%s): O_APPEND and flock are not safe there; "
			    "use a local directory",
			    dir, remote_fs[i].name);
			errno = EREMOTE;
			return -1;
		}
	}
	return 0;
}
