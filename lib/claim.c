#include "claim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "form.h"
#include "num.h"

/* Renames that found their target taken before giving up. */
#define CLAIM_RENAME_TRIES 16
/* A state line: "retry OFF ATTEMPTS " plus an error of CLAIM_ERR_MAX. */
#define STATE_LINE_MAX (64 + 6 * CLAIM_ERR_MAX)

static int fail(char *err, const char *what, const char *dir, const char *name)
{
	int saved = errno;
	snprintf(err, CLAIM_ERR_MAX, "%s %s/%s: %s", what, dir, name,
		 layout_strerror(saved));
	errno = saved;
	return -1;
}

static int name2(char *buf, size_t n, const char *a, const char *b)
{
	int k = snprintf(buf, n, "%s%s", a, b);
	return k > 0 && (size_t)k < n ? 0 : -1;
}

int claim_wait_writers(int fd)
{
	if (spool_flock(fd, LOCK_EX) != 0)
		return -1;
	return spool_flock(fd, LOCK_UN);
}

/* {type}.jsonl.claim-<16-digit µs>[-N] */
static void work_name(struct claim_work *w, const char *type, int n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned long long us = (unsigned long long)ts.tv_sec * 1000000ULL +
				(unsigned long long)ts.tv_nsec / 1000ULL;
	if (n == 0)
		snprintf(w->name, sizeof w->name, "%s%s%016llu", type,
			 LAYOUT_CLAIM_MARK, us);
	else
		snprintf(w->name, sizeof w->name, "%s%s%016llu-%d", type,
			 LAYOUT_CLAIM_MARK, us, n);
}

/* 1 when {name}.state exists (whatever it is), or its name is too long. */
static int progress_left(int dirfd, const char *name)
{
	char state[LAYOUT_NAME_MAX];
	struct stat st;
	if (name2(state, sizeof state, name, LAYOUT_STATE_SUFFIX) != 0)
		return 1;
	return fstatat(dirfd, state, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int claim_take(int dirfd, const char *dir, const char *type,
	       struct claim_work *out, char err[CLAIM_ERR_MAX])
{
	char from[LAYOUT_NAME_MAX];
	struct stat st;
	if (name2(from, sizeof from, type, LAYOUT_SUFFIX) != 0) {
		snprintf(err, CLAIM_ERR_MAX, "type name too long");
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(out->type, sizeof out->type, "%s", type);
	if (fstatat(dirfd, from, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : fail(err, "stat", dir, from);
	if (!S_ISREG(st.st_mode)) {
		errno = S_ISLNK(st.st_mode) ? ELOOP : EFTYPE_LAYOUT;
		return fail(err, "claim", dir, from);
	}
	if (st.st_size == 0)
		return 0;
	int renamed = 0;
	for (int i = 0; i < CLAIM_RENAME_TRIES && !renamed; i++) {
		work_name(out, type, i);
		/*
		 * Not under a name whose progress file is still there (left
		 * by a crash inside claim_finish, the clock since stepped
		 * back): the new file would inherit its offset.
		 */
		if (progress_left(dirfd, out->name))
			continue;
		/* Never over a work file: that would lose its events. */
		if (renameat2(dirfd, from, dirfd, out->name,
			      RENAME_NOREPLACE) == 0)
			renamed = 1;
		else if (errno == ENOENT)
			return 0; /* claimed by another consumer */
		else if (errno != EEXIST)
			return fail(err, "rename", dir, from);
	}
	if (!renamed) {
		errno = EEXIST; /* every name tried is taken */
		return fail(err, "rename", dir, from);
	}
	/* Wait out a writer that locked the file before the rename. */
	int fd = layout_open_file(dirfd, out->name, O_RDONLY);
	if (fd < 0)
		return fail(err, "open", dir, out->name);
	if (claim_wait_writers(fd) != 0) {
		fail(err, "flock", dir, out->name);
		close(fd);
		return -1;
	}
	close(fd); /* releases the lock */
	return 1;
}

static int by_claim_age(const void *a, const void *b)
{
	const struct claim_work *x = a;
	const struct claim_work *y = b;
	const char *sx = strstr(x->name, LAYOUT_CLAIM_MARK);
	const char *sy = strstr(y->name, LAYOUT_CLAIM_MARK);
	size_t lx = strlen(sx);
	size_t ly = strlen(sy);
	/* Stamps are fixed-width; a "-N" suffix sorts after its base. */
	int c = strcmp(sx, sy);
	if (lx != ly && strncmp(sx, sy, lx < ly ? lx : ly) == 0)
		c = lx < ly ? -1 : 1;
	return c != 0 ? c : strcmp(x->name, y->name);
}

ssize_t claim_list(int dirfd, const char *dir, struct claim_work **out,
		   char err[CLAIM_ERR_MAX])
{
	DIR *d = layout_read_dir(dirfd);
	struct dirent *e;
	size_t n = 0;
	size_t cap = 0;
	struct claim_work *v = NULL;
	*out = NULL;
	if (d == NULL)
		return fail(err, "read directory", dir, "");
	for (;;) {
		errno = 0;
		e = readdir(d);
		if (e == NULL)
			break;
		struct claim_work w;
		if (strlen(e->d_name) >= sizeof w.name ||
		    layout_parse(e->d_name, w.type) != LAYOUT_WORK)
			continue;
		if (n == cap) {
			cap = cap != 0 ? cap * 2 : 16;
			struct claim_work *g = realloc(v, cap * sizeof *v);
			if (g == NULL) {
				free(v);
				closedir(d);
				snprintf(err, CLAIM_ERR_MAX, "out of memory");
				errno = ENOMEM;
				return -1;
			}
			v = g;
		}
		snprintf(w.name, sizeof w.name, "%s", e->d_name);
		v[n++] = w;
	}
	int rerr = errno;
	closedir(d);
	if (rerr != 0) {
		free(v);
		errno = rerr;
		return fail(err, "read directory", dir, "");
	}
	if (n > 1)
		qsort(v, n, sizeof *v, by_claim_age);
	*out = v;
	return (ssize_t)n;
}

void claim_state_free(struct claim_state *st)
{
	for (size_t i = 0; i < st->n_retry; i++)
		free(st->retry[i].last_error);
	free(st->retry);
	memset(st, 0, sizeof *st);
}

/* The index of the first entry at or after off. */
static size_t lower_bound(const struct claim_state *st, off_t off)
{
	size_t lo = 0;
	size_t hi = st->n_retry;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (st->retry[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

ssize_t claim_state_find(const struct claim_state *st, off_t off)
{
	size_t i = lower_bound(st, off);
	return i < st->n_retry && st->retry[i].off == off ? (ssize_t)i : -1;
}

int claim_state_retry(struct claim_state *st, off_t off, unsigned attempts,
		      const char *last_error)
{
	char *e = strdup(last_error);
	if (e == NULL)
		return -1;
	/* The state file holds JSON strings: UTF-8 only. */
	if (!utf8_valid((const unsigned char *)e, strlen(e)))
		utf8_scrub(e);
	size_t i = lower_bound(st, off);
	if (i < st->n_retry && st->retry[i].off == off) {
		free(st->retry[i].last_error);
	} else {
		if (st->n_retry == st->cap) {
			size_t cap = st->cap > 0 ? st->cap * 2 : 16;
			struct claim_retry *g =
			    realloc(st->retry, cap * sizeof *g);
			if (g == NULL) {
				free(e);
				return -1;
			}
			st->retry = g;
			st->cap = cap;
		}
		memmove(&st->retry[i + 1], &st->retry[i],
			(st->n_retry - i) * sizeof *st->retry);
		st->n_retry++;
	}
	st->retry[i].off = off;
	st->retry[i].attempts = attempts;
	st->retry[i].last_error = e;
	return 0;
}

void claim_state_drop(struct claim_state *st, size_t i)
{
	free(st->retry[i].last_error);
	memmove(&st->retry[i], &st->retry[i + 1],
		(st->n_retry - i - 1) * sizeof *st->retry);
	st->n_retry--;
}

static int by_off(const void *a, const void *b)
{
	off_t x = *(const off_t *)a;
	off_t y = *(const off_t *)b;
	return (x > y) - (x < y);
}

void claim_state_drop_all(struct claim_state *st, off_t *offs, size_t n)
{
	size_t kept = 0;
	size_t k = 0;
	if (n == 0)
		return; /* offs may be NULL */
	qsort(offs, n, sizeof *offs, by_off);
	for (size_t i = 0; i < st->n_retry; i++) {
		while (k < n && offs[k] < st->retry[i].off)
			k++;
		if (k < n && offs[k] == st->retry[i].off)
			free(st->retry[i].last_error);
		else
			st->retry[kept++] = st->retry[i];
	}
	st->n_retry = kept;
}

/*
 * A number of digits ending at the byte stop; *p moves past the stop.
 * 0, or -1 when the digits are missing, out of range or not followed by
 * stop.
 */
static int field_num(char **p, char stop, unsigned long long max,
		     unsigned long long *out)
{
	char *end = strchr(*p, stop);
	if (end == NULL ||
	    num_parse_n(*p, (size_t)(end - *p), 10, 0, max, out) != NUM_OK)
		return -1;
	*p = end + 1;
	return 0;
}

/* Parses "retry OFF ATTEMPTS JSON" (no '\n'); 0 or -1. */
static int parse_retry(struct claim_state *st, char *line)
{
	unsigned long long off;
	unsigned long long att;
	char *p = line + 6;
	if (strncmp(line, "retry ", 6) != 0 ||
	    field_num(&p, ' ', LLONG_MAX, &off) != 0 ||
	    field_num(&p, ' ', CLAIM_ATTEMPTS_MAX, &att) != 0 ||
	    (off_t)off >= st->offset || claim_state_find(st, (off_t)off) >= 0)
		return -1;
	json_t *j = json_loads(p, JSON_DECODE_ANY, NULL);
	const char *e = json_string_value(j);
	int rc = e != NULL ? claim_state_retry(st, (off_t)off, (unsigned)att, e)
			   : -1;
	json_decref(j);
	return rc;
}

/* Reads a whole state from f into st; 0, or -1 when damaged. */
static int parse_state(FILE *f, struct claim_state *st, off_t size)
{
	char *line = malloc(STATE_LINE_MAX);
	int ok = line != NULL && fgets(line, STATE_LINE_MAX, f) != NULL &&
		 strncmp(line, "offset ", 7) == 0;
	if (ok) {
		char *p = line + 7;
		unsigned long long off;
		ok = field_num(&p, '\n', (unsigned long long)size, &off) == 0;
		st->offset = ok ? (off_t)off : 0;
	}
	while (ok && fgets(line, STATE_LINE_MAX, f) != NULL) {
		size_t n = strlen(line);
		ok = n > 0 && line[n - 1] == '\n';
		if (ok) {
			line[n - 1] = '\0';
			ok = parse_retry(st, line) == 0;
		}
	}
	free(line);
	return ok && !ferror(f) ? 0 : -1;
}

int claim_state_load(int dirfd, const char *dir, const struct claim_work *w,
		     off_t size, struct claim_state *st,
		     char err[CLAIM_ERR_MAX])
{
	char name[LAYOUT_NAME_MAX];
	memset(st, 0, sizeof *st);
	if (name2(name, sizeof name, w->name, LAYOUT_STATE_SUFFIX) != 0)
		return 0; /* cannot exist */
	int fd = layout_open_file(dirfd, name, O_RDONLY);
	if (fd < 0)
		return errno == ENOENT ? 0 : fail(err, "progress", dir, name);
	FILE *f = fdopen(fd, "r");
	if (f == NULL) {
		close(fd);
		return fail(err, "progress", dir, name);
	}
	if (parse_state(f, st, size) != 0) {
		/* Damaged: offer everything again rather than skip anything. */
		claim_state_free(st);
	}
	fclose(f);
	return 0;
}

/* Writes st to an open file; 0 or -1. */
static int write_state(FILE *f, const struct claim_state *st)
{
	if (fprintf(f, "offset %lld\n", (long long)st->offset) < 0)
		return -1;
	for (size_t i = 0; i < st->n_retry; i++) {
		json_t *js = json_string(st->retry[i].last_error);
		char *e = js != NULL ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
		json_decref(js);
		int bad = e == NULL || fprintf(f, "retry %lld %u %s\n",
					       (long long)st->retry[i].off,
					       st->retry[i].attempts, e) < 0;
		free(e);
		if (bad)
			return -1;
	}
	return 0;
}

/*
 * Creates the temporary state file.  A regular one left by a run that
 * died is replaced; anything else there is left alone (an error).
 */
static int create_tmp(int dirfd, const char *dir, const char *tmp, char *err)
{
	const int flags =
	    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
	int fd = openat(dirfd, tmp, flags, 0640);
	if (fd < 0 && errno == EEXIST) {
		struct stat st;
		if (fstatat(dirfd, tmp, &st, AT_SYMLINK_NOFOLLOW) != 0)
			return fail(err, "stat", dir, tmp);
		if (!S_ISREG(st.st_mode)) {
			errno = S_ISLNK(st.st_mode) ? ELOOP : EFTYPE_LAYOUT;
			return fail(err, "create", dir, tmp);
		}
		if (unlinkat(dirfd, tmp, 0) != 0)
			return fail(err, "remove stale", dir, tmp);
		fd = openat(dirfd, tmp, flags, 0640);
	}
	if (fd < 0)
		return fail(err, "create", dir, tmp);
	return fd;
}

int claim_state_save(int dirfd, const char *dir, const struct claim_work *w,
		     const struct claim_state *st, int durable,
		     char err[CLAIM_ERR_MAX])
{
	char name[LAYOUT_NAME_MAX];
	char tmp[LAYOUT_NAME_MAX];
	if (name2(name, sizeof name, w->name, LAYOUT_STATE_SUFFIX) != 0 ||
	    name2(tmp, sizeof tmp, name, LAYOUT_TMP_SUFFIX) != 0) {
		snprintf(err, CLAIM_ERR_MAX, "%s/%s: name too long", dir,
			 w->name);
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = create_tmp(dirfd, dir, tmp, err);
	if (fd < 0)
		return -1;
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		fail(err, "write", dir, tmp);
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	int bad = write_state(f, st) != 0 || fflush(f) != 0 ||
		  (durable && fsync(fileno(f)) != 0);
	int saved = errno;
	if (fclose(f) != 0 && !bad) {
		bad = 1;
		saved = errno;
	}
	errno = saved;
	if (bad || renameat(dirfd, tmp, dirfd, name) != 0) {
		fail(err, "write", dir, tmp);
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	return 0;
}

int claim_finish(int dirfd, const char *dir, const struct claim_work *w,
		 char err[CLAIM_ERR_MAX])
{
	char name[LAYOUT_NAME_MAX];
	if (unlinkat(dirfd, w->name, 0) != 0 && errno != ENOENT)
		return fail(err, "remove", dir, w->name);
	/* The state goes last: without it the file would be offered anew. */
	if (name2(name, sizeof name, w->name, LAYOUT_STATE_SUFFIX) == 0 &&
	    unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
		return fail(err, "remove", dir, name);
	return 0;
}
