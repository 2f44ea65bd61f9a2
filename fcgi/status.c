#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/claim.h"
#include "../lib/log.h"
#include "drain.h"

/* Distinct event types a status report lists; Podio has 26. */
#define STATUS_TYPES_MAX 512

struct counts {
	char type[65];
	long pending;
	double oldest_age; /* seconds; 0 when nothing is pending */
	long in_progress;
	long failed;
	long quarantined;
};

static const char status_usage[] =
    "usage: podio-hook status [--json] [--config PATH] [-v]\n"
    "\n"
    "Per event type: events pending, the oldest pending one's age,\n"
    "events claimed by a drain in progress, failed (in failed/) and\n"
    "quarantined (in bad/).  --json prints one object.\n"
    "Exit 0, 1 when anything is failed or quarantined, 2 when the spool\n"
    "cannot be read.\n";

struct report {
	struct counts t[STATUS_TYPES_MAX];
	size_t n;
	int broken;
};

static struct counts *slot(struct report *r, const char *type)
{
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->t[i].type, type) == 0)
			return &r->t[i];
	}
	if (r->n == STATUS_TYPES_MAX)
		return NULL;
	struct counts *c = &r->t[r->n++];
	memset(c, 0, sizeof *c);
	snprintf(c->type, sizeof c->type, "%s", type);
	return c;
}

/* Lines from byte off on (a torn last line counts); -1 on error. */
static long count_lines(const char *path, off_t off)
{
	char buf[65536];
	long lines = 0;
	char last = '\n';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (off > 0 && lseek(fd, off, SEEK_SET) < 0) {
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		for (const char *p = buf;
		     (p = memchr(p, '\n', (size_t)(buf + n - p))) != NULL; p++)
			lines++;
		last = buf[n - 1];
	}
	close(fd);
	return lines + (last != '\n');
}

/* Seconds since the first line's "received"; 0 when it cannot be read. */
static double first_age(const char *path)
{
	char *line = NULL;
	size_t cap = 0;
	struct tm tm;
	double age = 0;
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return 0;
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	json_t *j = n > 0 ? json_loadb(line, (size_t)n, 0, NULL) : NULL;
	free(line);
	const char *rcv = json_string_value(json_object_get(j, "received"));
	memset(&tm, 0, sizeof tm);
	const char *rest =
	    rcv != NULL ? strptime(rcv, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (rest != NULL) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		double t = (double)timegm(&tm) +
			   (rest[0] == '.' ? strtod(rest, NULL) : 0);
		age = (double)now.tv_sec + now.tv_nsec / 1e9 - t;
		if (age < 0)
			age = 0;
	}
	json_decref(j);
	return age;
}

/* Adds the files of one folder; which field depends on where it is. */
static void scan(struct report *r, const char *dir, char where)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (d == NULL) {
		if (errno != ENOENT)
			r->broken = 1;
		return;
	}
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX];
		char type[65];
		char kind;
		if (e->d_name[0] == '.' ||
		    claim_parse_name(e->d_name, type, &kind) != 0)
			continue;
		struct counts *c = slot(r, type);
		if (c == NULL)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		off_t from = 0;
		struct claim_state st = {0};
		if (where == 's' && kind == 'w') {
			struct claim_work w;
			snprintf(w.name, sizeof w.name, "%s", e->d_name);
			claim_state_load(dir, &w, &st);
			from = st.offset;
		}
		long n = count_lines(path, from);
		if (n < 0) {
			r->broken = 1;
			n = 0;
		}
		if (where == 'f')
			c->failed += n;
		else if (where == 'b')
			c->quarantined += n;
		else if (kind == 'w')
			c->in_progress += n + (long)st.n_retry;
		else if (n > 0) {
			c->pending += n;
			c->oldest_age = first_age(path);
		}
		claim_state_free(&st);
	}
	closedir(d);
}

static int by_type(const void *a, const void *b)
{
	return strcmp(((const struct counts *)a)->type,
		      ((const struct counts *)b)->type);
}

static void print_json(const struct report *r, const char *dir)
{
	json_t *types = json_object();
	for (size_t i = 0; i < r->n; i++) {
		const struct counts *c = &r->t[i];
		json_object_set_new(
		    types, c->type,
		    json_pack("{s:I, s:f, s:I, s:I, s:I}", "pending",
			      (json_int_t)c->pending, "oldest_pending_age_s",
			      c->oldest_age, "in_progress",
			      (json_int_t)c->in_progress, "failed",
			      (json_int_t)c->failed, "quarantined",
			      (json_int_t)c->quarantined));
	}
	json_t *root = json_pack("{s:s, s:o}", "spool", dir, "types", types);
	json_dumpf(root, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
	putchar('\n');
	json_decref(root);
}

static void print_table(const struct report *r)
{
	printf("%-24s %8s %10s %12s %8s %12s\n", "TYPE", "PENDING", "OLDEST_S",
	       "IN_PROGRESS", "FAILED", "QUARANTINED");
	for (size_t i = 0; i < r->n; i++) {
		const struct counts *c = &r->t[i];
		printf("%-24s %8ld %10.1f %12ld %8ld %12ld\n", c->type,
		       c->pending, c->oldest_age, c->in_progress, c->failed,
		       c->quarantined);
	}
}

int status_main(struct app *a, int argc, char **argv)
{
	static struct report r;
	char sub[PATH_MAX];
	int json = 0;
	char *args[1];
	int nargs;
	const struct cli_option opts[] = {
	    {"--json", CLI_FLAG, &json, 0, 0},
	    {NULL, CLI_FLAG, NULL, 0, 0},
	};
	const struct cli_command cmd = {"status", status_usage, opts, 0, 0};
	enum cli_result cr =
	    cli_parse(&cmd, &a->opt, argc - 1, argv + 1, args, &nargs);
	if (cr != CLI_OK)
		return cli_exit(cr);
	if (app_load(a) != 0)
		return 2;
	const char *dir = a->cfg.spool_dir;
	scan(&r, dir, 's');
	snprintf(sub, sizeof sub, "%s/%s", dir, DRAIN_FAILED_DIR);
	scan(&r, sub, 'f');
	snprintf(sub, sizeof sub, "%s/%s", dir, DRAIN_BAD_DIR);
	scan(&r, sub, 'b');
	qsort(r.t, r.n, sizeof r.t[0], by_type);
	if (json)
		print_json(&r, dir);
	else
		print_table(&r);
	if (fflush(stdout) != 0 || r.broken) {
		fprintf(stderr, "podio-hook: status: cannot read all of %s\n",
			dir);
		return 2;
	}
	for (size_t i = 0; i < r.n; i++) {
		if (r.t[i].failed > 0 || r.t[i].quarantined > 0)
			return 1;
	}
	return 0;
}
