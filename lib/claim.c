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

#include "event.h"
#include "num.h"

static int fail(char *err, const char *what, const char *path)
{
	int saved = errno;
	snprintf(err, CLAIM_ERR_MAX, "%s %s: %s", what, path, strerror(saved));
	errno = saved;
	return -1;
}

static int join(char *buf, size_t n, const char *dir, const char *name,
		const char *suffix)
{
	int k = snprintf(buf, n, "%s/%s%s", dir, name, suffix);
	return k > 0 && (size_t)k < n ? 0 : -1;
}

int claim_parse_name(const char *name, char type[65], char *kind)
{
	static const char suffix[] = ".jsonl";
	size_t n = strlen(name);
	size_t slen = sizeof suffix - 1;
	size_t tlen;
	const char *mark = NULL;
	/* A type may hold ".jsonl" itself ("a.jsonl"): look from the end. */
	for (const char *p = strstr(name, CLAIM_MARK); p != NULL;
	     p = strstr(p + 1, CLAIM_MARK))
		mark = p;
	if (n > slen && strcmp(name + n - slen, suffix) == 0) {
		*kind = 'p';
		tlen = n - slen;
	} else if (mark != NULL) {
		const char *stamp = mark + strlen(CLAIM_MARK);
		if (stamp[0] == '\0' ||
		    strspn(stamp, "0123456789-") != strlen(stamp))
			return -1;
		*kind = 'w';
		tlen = (size_t)(mark - name);
	} else {
		return -1;
	}
	if (!event_type_wellformed(name, tlen))
		return -1;
	memcpy(type, name, tlen);
	type[tlen] = '\0';
	return 0;
}

int claim_wait_writers(int fd)
{
	if (spool_flock(fd, LOCK_EX) != 0)
		return -1;
	return spool_flock(fd, LOCK_UN);
}

int claim_take(const char *dir, const char *type, struct claim_work *out,
	       char err[CLAIM_ERR_MAX])
{
	char from[PATH_MAX];
	char to[PATH_MAX];
	struct timespec ts;
	struct stat st;
	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned long long us = (unsigned long long)ts.tv_sec * 1000000ULL +
				(unsigned long long)ts.tv_nsec / 1000ULL;
	snprintf(out->type, sizeof out->type, "%s", type);
	snprintf(out->name, sizeof out->name, "%s%s%016llu", type, CLAIM_MARK,
		 us);
	if (join(from, sizeof from, dir, type, ".jsonl") != 0 ||
	    join(to, sizeof to, dir, out->name, "") != 0) {
		snprintf(err, CLAIM_ERR_MAX, "path too long");
		return -1;
	}
	if (stat(from, &st) != 0)
		return errno == ENOENT ? 0 : fail(err, "stat", from);
	if (st.st_size == 0)
		return 0;
	if (rename(from, to) != 0)
		return errno == ENOENT ? 0 : fail(err, "rename", from);
	/* Wait out a writer that locked the file before the rename. */
	int fd = open(to, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, "open", to);
	if (claim_wait_writers(fd) != 0) {
		fail(err, "flock", to);
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
	const char *sx = strstr(x->name, CLAIM_MARK);
	const char *sy = strstr(y->name, CLAIM_MARK);
	int c = strcmp(sx, sy);
	return c != 0 ? c : strcmp(x->name, y->name);
}

ssize_t claim_list(const char *dir, struct claim_work **out,
		   char err[CLAIM_ERR_MAX])
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	size_t cap = 0;
	struct claim_work *v = NULL;
	*out = NULL;
	if (d == NULL)
		return fail(err, "opendir", dir);
	errno = 0;
	while ((e = readdir(d)) != NULL) {
		struct claim_work w;
		char kind;
		if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof w.name ||
		    claim_parse_name(e->d_name, w.type, &kind) != 0 ||
		    kind != 'w')
			continue;
		if (n == cap) {
			cap = cap != 0 ? cap * 2 : 16;
			struct claim_work *g = realloc(v, cap * sizeof *v);
			if (g == NULL) {
				free(v);
				closedir(d);
				snprintf(err, CLAIM_ERR_MAX, "out of memory");
				return -1;
			}
			v = g;
		}
		snprintf(w.name, sizeof w.name, "%s", e->d_name);
		v[n++] = w;
	}
	closedir(d);
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

int claim_state_retry(struct claim_state *st, off_t off, unsigned attempts,
		      const char *last_error)
{
	size_t i = 0;
	char *e = strdup(last_error);
	if (e == NULL)
		return -1;
	while (i < st->n_retry && st->retry[i].off < off)
		i++;
	if (i < st->n_retry && st->retry[i].off == off) {
		free(st->retry[i].last_error);
	} else {
		struct claim_retry *g =
		    realloc(st->retry, (st->n_retry + 1) * sizeof *g);
		if (g == NULL) {
			free(e);
			return -1;
		}
		st->retry = g;
		memmove(&g[i + 1], &g[i], (st->n_retry - i) * sizeof *g);
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

/* Parses "retry OFF ATTEMPTS JSON"; 0 or -1. */
static int parse_retry(struct claim_state *st, char *line)
{
	unsigned long long off;
	unsigned long long att;
	char *p = line + 6;
	if (strncmp(line, "retry ", 6) != 0 ||
	    field_num(&p, ' ', LLONG_MAX, &off) != 0 ||
	    field_num(&p, ' ', 1000000, &att) != 0 || att == 0)
		return -1;
	json_t *j = json_loads(p, JSON_DECODE_ANY, NULL);
	const char *e = json_string_value(j);
	int rc = e != NULL && (off_t)off < st->offset
		     ? claim_state_retry(st, (off_t)off, (unsigned)att, e)
		     : -1;
	json_decref(j);
	return rc;
}

void claim_state_load(const char *dir, const struct claim_work *w,
		      struct claim_state *st)
{
	char path[PATH_MAX];
	char line[4096];
	memset(st, 0, sizeof *st);
	if (join(path, sizeof path, dir, w->name, CLAIM_STATE_SUFFIX) != 0)
		return;
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return;
	int ok = 0;
	if (fgets(line, sizeof line, f) != NULL &&
	    strncmp(line, "offset ", 7) == 0) {
		char *p = line + 7;
		unsigned long long off;
		ok = field_num(&p, '\n', LLONG_MAX, &off) == 0;
		st->offset = ok ? (off_t)off : 0;
	}
	while (ok && fgets(line, sizeof line, f) != NULL) {
		size_t n = strlen(line);
		ok = n > 0 && line[n - 1] == '\n';
		if (ok) {
			line[n - 1] = '\0';
			ok = parse_retry(st, line) == 0;
		}
	}
	if (!ok || ferror(f)) {
		/* Damaged: offer everything again rather than skip anything. */
		claim_state_free(st);
	}
	fclose(f);
}

int claim_state_save(const char *dir, const struct claim_work *w,
		     const struct claim_state *st, int durable,
		     char err[CLAIM_ERR_MAX])
{
	char path[PATH_MAX];
	char tmp[PATH_MAX];
	if (join(path, sizeof path, dir, w->name, CLAIM_STATE_SUFFIX) != 0 ||
	    join(tmp, sizeof tmp, dir, w->name, CLAIM_STATE_SUFFIX ".tmp") !=
		0) {
		snprintf(err, CLAIM_ERR_MAX, "path too long");
		return -1;
	}
	FILE *f = fopen(tmp, "we");
	if (f == NULL)
		return fail(err, "create", tmp);
	int bad = fprintf(f, "offset %lld\n", (long long)st->offset) < 0;
	for (size_t i = 0; !bad && i < st->n_retry; i++) {
		json_t *js = json_string(st->retry[i].last_error);
		char *e = js != NULL ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
		json_decref(js);
		bad = e == NULL || fprintf(f, "retry %lld %u %s\n",
					   (long long)st->retry[i].off,
					   st->retry[i].attempts, e) < 0;
		free(e);
	}
	bad = bad || fflush(f) != 0 || (durable && fsync(fileno(f)) != 0);
	if (fclose(f) != 0)
		bad = 1;
	if (bad || rename(tmp, path) != 0) {
		fail(err, "write", tmp);
		unlink(tmp);
		return -1;
	}
	return 0;
}

int claim_finish(const char *dir, const struct claim_work *w,
		 char err[CLAIM_ERR_MAX])
{
	char path[PATH_MAX];
	if (join(path, sizeof path, dir, w->name, "") != 0) {
		snprintf(err, CLAIM_ERR_MAX, "path too long");
		return -1;
	}
	if (unlink(path) != 0 && errno != ENOENT)
		return fail(err, "unlink", path);
	/* The state goes last: without it the file would be offered anew. */
	if (join(path, sizeof path, dir, w->name, CLAIM_STATE_SUFFIX) == 0 &&
	    unlink(path) != 0 && errno != ENOENT)
		return fail(err, "unlink", path);
	return 0;
}
