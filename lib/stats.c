#include "stats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "claim.h"
#include "layout.h"
#include "log.h"

/* Reads of this size when counting lines. */
#define COUNT_CHUNK 65536

enum where { IN_SPOOL, IN_FAILED, IN_BAD };

/* The entry for type, added (zeroed, in order) when missing; or NULL. */
static struct stats_type *slot(struct stats *s, const char *type)
{
	size_t lo = 0;
	size_t hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->t[mid].type, type);
		if (c == 0)
			return &s->t[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap != 0 ? s->cap * 2 : 32;
		struct stats_type *g = realloc(s->t, cap * sizeof *g);
		if (g == NULL)
			return NULL;
		s->t = g;
		s->cap = cap;
	}
	memmove(&s->t[lo + 1], &s->t[lo], (s->n - lo) * sizeof *s->t);
	s->n++;
	memset(&s->t[lo], 0, sizeof s->t[lo]);
	snprintf(s->t[lo].type, sizeof s->t[lo].type, "%s", type);
	return &s->t[lo];
}

const struct stats_type *stats_find(const struct stats *s, const char *type)
{
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->t[i].type, type) == 0)
			return &s->t[i];
	}
	return NULL;
}

/* Lines from byte off on (a torn last line counts); -1 on error. */
static long long count_lines(int fd, off_t off)
{
	char *buf = malloc(COUNT_CHUNK);
	long long lines = 0;
	char last = '\n';
	if (buf == NULL)
		return -1;
	for (;;) {
		ssize_t n = pread(fd, buf, COUNT_CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		for (const char *p = buf;
		     (p = memchr(p, '\n', (size_t)(buf + n - p))) != NULL; p++)
			lines++;
		last = buf[n - 1];
		off += n;
	}
	free(buf);
	return lines + (last != '\n');
}

/* Seconds since the first line's "received"; 0 when it cannot be read. */
static double first_age(int fd, double now)
{
	char *line = NULL;
	size_t cap = 0;
	struct tm tm;
	double age = 0;
	int dfd = dup(fd);
	FILE *f = dfd >= 0 ? fdopen(dfd, "r") : NULL;
	if (f == NULL) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	json_t *j = n > 0 ? json_loadb(line, (size_t)n, 0, NULL) : NULL;
	free(line);
	const char *rcv = json_string_value(json_object_get(j, "received"));
	memset(&tm, 0, sizeof tm);
	const char *rest =
	    rcv != NULL ? strptime(rcv, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (rest != NULL) {
		double t = (double)timegm(&tm) +
			   (rest[0] == '.' ? strtod(rest, NULL) : 0);
		age = now - t > 0 ? now - t : 0;
	}
	json_decref(j);
	return age;
}

static double mtime_of(const struct stat *st)
{
	return (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9;
}

/* Adds one spool file (fd open on name in dir) to its type's counts. */
static int add_file(struct stats *s, int dirfd, const char *dir,
		    const char *name, enum layout_kind kind, const char *type,
		    enum where where, int fd, double now)
{
	char err[CLAIM_ERR_MAX];
	struct claim_state st;
	struct stat sb;
	struct stats_type *c = slot(s, type);
	if (c == NULL || fstat(fd, &sb) != 0)
		return -1;
	memset(&st, 0, sizeof st);
	if (kind == LAYOUT_WORK) {
		struct claim_work w;
		snprintf(w.name, sizeof w.name, "%s", name);
		if (claim_state_load(dirfd, dir, &w, sb.st_size, &st, err) !=
		    0) {
			log_warn("%s", err);
			s->problems++;
		}
	}
	long long n = count_lines(fd, st.offset);
	if (n < 0) {
		claim_state_free(&st);
		return -1;
	}
	if (where == IN_FAILED) {
		c->failed += (unsigned long long)n + st.n_retry;
	} else if (where == IN_BAD) {
		c->quarantined += (unsigned long long)n;
	} else if (kind == LAYOUT_WORK) {
		c->in_progress += (unsigned long long)n + st.n_retry;
	} else if (n > 0) {
		c->pending += (unsigned long long)n;
		c->oldest_pending_age = first_age(fd, now);
	}
	if (where == IN_SPOOL && mtime_of(&sb) > c->last_received)
		c->last_received = mtime_of(&sb);
	claim_state_free(&st);
	return 0;
}

/* Adds the files of one folder; 0, or -1 when it cannot be read. */
static int scan(struct stats *s, int dirfd, const char *dir, enum where where,
		double now)
{
	DIR *d = layout_read_dir(dirfd);
	struct dirent *e;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char type[EVENT_TYPE_MAX + 1];
		enum layout_kind kind = layout_parse(e->d_name, type);
		if (kind == LAYOUT_OTHER)
			continue;
		int f = layout_open_file(dirfd, e->d_name, O_RDONLY);
		if (f < 0) {
			if (errno == ENOENT)
				continue; /* claimed or finished meanwhile */
			log_warn("%s/%s: %s", dir, e->d_name,
				 layout_strerror(errno));
			s->problems++;
			continue;
		}
		if (add_file(s, dirfd, dir, e->d_name, kind, type, where, f,
			     now) != 0) {
			log_warn("%s/%s: cannot count: %s", dir, e->d_name,
				 strerror(errno));
			s->problems++;
		}
		close(f);
	}
	closedir(d);
	return 0;
}

/* failed/ or bad/, when present and a real directory. */
static void scan_sub(struct stats *s, int dirfd, const char *dir,
		     const char *name, enum where where, double now)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = layout_open_dir(dirfd, name, 0, 0);
	if (fd < 0) {
		if (errno != ENOENT) {
			log_warn("%s: %s", path, layout_strerror(errno));
			s->problems++;
		}
		return;
	}
	if (scan(s, fd, path, where, now) != 0) {
		log_warn("%s: %s", path, strerror(errno));
		s->problems++;
	}
	close(fd);
}

int stats_collect(struct stats *s, const char *dir, double now,
		  char err[STATS_ERR_MAX])
{
	memset(s, 0, sizeof *s);
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || scan(s, dirfd, dir, IN_SPOOL, now) != 0) {
		snprintf(err, STATS_ERR_MAX, "spool directory %s: %s", dir,
			 strerror(errno));
		if (dirfd >= 0)
			close(dirfd);
		return -1;
	}
	scan_sub(s, dirfd, dir, LAYOUT_FAILED_DIR, IN_FAILED, now);
	scan_sub(s, dirfd, dir, LAYOUT_BAD_DIR, IN_BAD, now);
	close(dirfd);
	return 0;
}

void stats_free(struct stats *s)
{
	free(s->t);
	memset(s, 0, sizeof *s);
}
