#include "drain.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/claim.h"
#include "../lib/jsoncheck.h"
#include "../lib/log.h"
#include "child.h"

/* Print mode hands lines over in writes of about this size. */
#define PRINT_CHUNK (256u * 1024u)
/* A Podio event has about a dozen params; room for the extras. */
#define ENV_MAX 80

/* Bounds of the numeric options. */
#define DRAIN_ATTEMPTS_DEFAULT 5
#define DRAIN_ATTEMPTS_MAX     1000000 /* what a progress file records */
#define DRAIN_TIMEOUT_DEFAULT  60
#define DRAIN_TIMEOUT_MAX      86400 /* a handler that runs a day is hung */
#define DRAIN_LIMIT_MAX	       1000000000000ULL

static const char drain_usage[] =
    "usage: podio-hook drain [--type GLOB]... [--exec CMD | --batch CMD]\n"
    "         [--max-attempts N] [--timeout S] [--limit N] [--wait]\n"
    "         [--retry-failed] [--config PATH] [-v]\n"
    "\n"
    "Claims the spool files and hands their events over, oldest first:\n"
    "printed to standard output, or given to CMD (through /bin/sh -c) on\n"
    "its standard input, one event per run with --exec, one file per run\n"
    "with --batch.  Exit 0 from CMD means handled; otherwise the event is\n"
    "offered again on the next run, and after N attempts (default 5) moved\n"
    "to failed/.\n"
    "\n"
    "  --type GLOB       only types matching GLOB (repeatable)\n"
    "  --exec CMD        run CMD once per event\n"
    "  --batch CMD       run CMD once per claimed file\n"
    "  --max-attempts N  attempts before an event is moved to failed/\n"
    "  --timeout S       kill a handler after S seconds (default 60)\n"
    "  --limit N         offer at most N events in this run\n"
    "  --wait            wait for a running drain instead of exiting\n"
    "  --retry-failed    offer the events in failed/ again\n"
    "\n"
    "Exit 0 all handled, 1 some left for retry or failed, 2 usage or\n"
    "config error.\n";

struct drain {
	struct app *a;
	const char *types[64];
	size_t n_types;
	const char *exec_cmd;
	const char *batch_cmd;
	unsigned max_attempts;
	int timeout_s;
	long limit; /* < 0: none */
	int wait;
	int retry_failed;
	int verbose;
	const char *dir;
	struct spool failed;
	struct spool bad;
	char failed_dir[PATH_MAX];
	char bad_dir[PATH_MAX];
	long offered, handled, retried, dead, quarantined;
	int broken; /* an I/O error stopped the run */
	char *out;  /* print mode: lines not yet written */
	size_t out_len;
	int tty;
	long long shown_ms;
};

/* One event in a work file. */
struct ev {
	off_t off;
	size_t len;	/* with its '\n' when it has one */
	int terminated; /* ends in '\n' */
	unsigned attempts;
};

static int type_selected(const struct drain *d, const char *type)
{
	if (d->n_types == 0)
		return 1;
	for (size_t i = 0; i < d->n_types; i++) {
		if (fnmatch(d->types[i], type, 0) == 0)
			return 1;
	}
	return 0;
}

static int limited(const struct drain *d)
{
	return d->limit >= 0 && d->offered >= d->limit;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void progress(struct drain *d, int last)
{
	if (!d->verbose || !d->tty)
		return;
	long long now = mono_ms();
	if (!last && now - d->shown_ms < 200)
		return;
	d->shown_ms = now;
	fprintf(stderr, "\rdrain: %ld offered, %ld handled%s", d->offered,
		d->handled, last ? "\n" : "");
}

static struct ev line_at(const char *map, size_t size, off_t off)
{
	struct ev e = {off, 0, 0, 0};
	const char *p = map + off;
	const char *nl = memchr(p, '\n', size - (size_t)off);
	e.terminated = nl != NULL;
	e.len = nl != NULL ? (size_t)(nl - p) + 1 : size - (size_t)off;
	return e;
}

/* 1 when the line is handed over, 0 when it must be quarantined. */
static int event_valid(const char *map, const struct ev *e)
{
	return e->terminated && jsoncheck_object(map + e->off, e->len - 1);
}

/* The event as JSON, or NULL when it must be quarantined. */
static json_t *parse_event(const char *map, const struct ev *e)
{
	if (!e->terminated)
		return NULL;
	json_t *j = json_loadb(map + e->off, e->len - 1, JSON_ALLOW_NUL, NULL);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

static int quarantine(struct drain *d, const struct claim_work *w,
		      const char *map, const struct ev *e)
{
	char err[SPOOL_ERR_MAX];
	size_t n = e->len + (e->terminated ? 0 : 1);
	char *copy = malloc(n);
	if (copy == NULL)
		return -1;
	memcpy(copy, map + e->off, e->len);
	copy[n - 1] = '\n';
	int rc = spool_append(&d->bad, w->type, copy, n, err);
	free(copy);
	if (rc != 0) {
		log_error("cannot quarantine: %s", err);
		return -1;
	}
	log_warn("quarantined line type=%s file=%s offset=%lld reason=\"%s\"",
		 w->type, w->name, (long long)e->off,
		 e->terminated ? "not valid JSON" : "no terminating newline");
	d->quarantined++;
	return 0;
}

static int dead_letter(struct drain *d, const struct claim_work *w, json_t *j,
		       unsigned attempts, const char *why)
{
	char err[SPOOL_ERR_MAX];
	json_object_set_new(j, "attempts", json_integer(attempts));
	json_object_set_new(j, "last_error", json_string(why));
	size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);
	char *line = n > 0 ? malloc(n + 1) : NULL;
	int rc = -1;
	if (line != NULL && json_dumpb(j, line, n, JSON_COMPACT) == n) {
		line[n] = '\n';
		rc = spool_append(&d->failed, w->type, line, n + 1, err);
		if (rc != 0)
			log_error("cannot move an event to %s: %s",
				  d->failed_dir, err);
	}
	free(line);
	if (rc == 0) {
		log_warn("event failed for good type=%s id=%s attempts=%u "
			 "last_error=\"%s\"",
			 w->type, json_string_value(json_object_get(j, "id")),
			 attempts, why);
		d->dead++;
	}
	return rc;
}

/* PODIO_<PARAM>: upper-cased, anything but [A-Z0-9] becomes '_'. */
static char *env_name(const char *key)
{
	size_t n = strlen(key);
	char *s = malloc(n + 7);
	if (s == NULL)
		return NULL;
	memcpy(s, "PODIO_", 6);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)key[i];
		s[6 + i] = isalnum(c) ? (char)toupper(c) : '_';
	}
	s[6 + n] = '\0';
	return s;
}

static int exec_event(struct drain *d, const char *map, const struct ev *e,
		      json_t *j, char *why)
{
	struct child_env env[ENV_MAX];
	char *names[ENV_MAX];
	size_t n = 0;
	const char *key;
	json_t *val;
	json_object_foreach(json_object_get(j, "params"), key, val)
	{
		if (n >= ENV_MAX - 2 || !json_is_string(val))
			continue;
		names[n] = env_name(key);
		if (names[n] == NULL)
			break;
		env[n].name = names[n];
		env[n].value = json_string_value(val);
		n++;
	}
	size_t owned = n;
	const char *id = json_string_value(json_object_get(j, "id"));
	const char *type = json_string_value(json_object_get(j, "type"));
	env[n].name = "PODIO_EVENT_ID";
	env[n++].value = id != NULL ? id : "";
	env[n].name = "PODIO_EVENT_TYPE";
	env[n++].value = type != NULL ? type : "";
	struct iovec seg = {(void *)(map + e->off), e->len};
	int rc = child_run(d->exec_cmd, &seg, 1, env, n, d->timeout_s, why);
	for (size_t i = 0; i < owned; i++)
		free(names[i]);
	return rc;
}

static int write_all(const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("drain: writing to standard output: %s",
				  strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Print mode: writes what is buffered.  0, or -1 (nothing committed). */
static int flush_out(struct drain *d)
{
	int rc = write_all(d->out, d->out_len);
	d->out_len = 0;
	return rc;
}

/* Print mode: hands a line over; committed with the next flush. */
static int print_line(struct drain *d, const char *p, size_t len)
{
	if (len > PRINT_CHUNK - d->out_len) {
		if (flush_out(d) != 0)
			return -1;
		if (len > PRINT_CHUNK)
			return write_all(p, len);
	}
	memcpy(d->out + d->out_len, p, len);
	d->out_len += len;
	return 0;
}

/* The event is dealt with: off the retry list, or passed in the file. */
static void settled(struct claim_state *st, const struct ev *e, size_t retry_i)
{
	if (e->attempts > 0)
		claim_state_drop(st, retry_i);
	else
		st->offset = e->off + (off_t)e->len;
}

/*
 * Its handler failed: the event is offered again on the next run, or after
 * the last attempt moved to failed/.  0, or -1 to stop the run.
 */
static int handler_failed(struct drain *d, const struct claim_work *w,
			  struct claim_state *st, const struct ev *e,
			  size_t retry_i, json_t *j, const char *why)
{
	unsigned attempts = e->attempts + 1;
	log_info("handler failed type=%s offset=%lld attempt=%u reason=\"%s\"",
		 w->type, (long long)e->off, attempts, why);
	if (attempts >= d->max_attempts) {
		if (dead_letter(d, w, j, attempts, why) != 0)
			return -1;
		settled(st, e, retry_i);
		return 0;
	}
	if (claim_state_retry(st, e->off, attempts, why) != 0)
		return -1;
	d->retried++;
	if (e->attempts == 0)
		st->offset = e->off + (off_t)e->len;
	return 0;
}

/*
 * Offers one event; updates st (offset for a new event, the retry list
 * for an old one).  retry_i is the event's index in st->retry when
 * e->attempts > 0.  Returns 0, or -1 to stop the run.
 */
static int offer(struct drain *d, const struct claim_work *w, const char *map,
		 struct claim_state *st, const struct ev *e, size_t retry_i)
{
	char why[CHILD_WHY_MAX];
	int rc;
	d->offered++;
	if (d->exec_cmd == NULL) {
		/* Print mode needs no tree: checking the line is enough. */
		int valid = event_valid(map, e);
		rc = valid ? print_line(d, map + e->off, e->len)
			   : quarantine(d, w, map, e);
		d->handled += valid && rc == 0;
	} else {
		json_t *j = parse_event(map, e);
		if (j == NULL) {
			rc = quarantine(d, w, map, e);
		} else if (exec_event(d, map, e, j, why) == 0) {
			rc = 0;
			d->handled++;
		} else {
			rc = handler_failed(d, w, st, e, retry_i, j, why);
			json_decref(j);
			return rc;
		}
		json_decref(j);
	}
	if (rc == 0)
		settled(st, e, retry_i);
	return rc;
}

/* Commits progress: print mode writes its lines first. */
static int commit(struct drain *d, const struct claim_work *w,
		  const struct claim_state *st, int durable)
{
	char err[CLAIM_ERR_MAX];
	if (d->exec_cmd == NULL && d->batch_cmd == NULL && flush_out(d) != 0)
		return -1;
	if (claim_state_save(d->dir, w, st, durable, err) != 0) {
		log_error("drain: %s", err);
		return -1;
	}
	return 0;
}

static int one_by_one(struct drain *d, const struct claim_work *w,
		      const char *map, size_t size, struct claim_state *st)
{
	size_t i = 0;
	int print = d->exec_cmd == NULL;
	while (i < st->n_retry && !limited(d)) {
		struct ev e = line_at(map, size, st->retry[i].off);
		size_t before = st->n_retry;
		e.attempts = st->retry[i].attempts;
		if (offer(d, w, map, st, &e, i) != 0 ||
		    commit(d, w, st, 0) != 0)
			return -1;
		if (st->n_retry == before)
			i++;
		progress(d, 0);
	}
	while ((size_t)st->offset < size && !limited(d)) {
		struct ev e = line_at(map, size, st->offset);
		/* Print mode commits a chunk of lines at a time. */
		if (print && d->out_len > 0 &&
		    d->out_len + e.len > PRINT_CHUNK &&
		    commit(d, w, st, 0) != 0)
			return -1;
		if (offer(d, w, map, st, &e, 0) != 0)
			return -1;
		if (!print && commit(d, w, st, 0) != 0)
			return -1;
		progress(d, 0);
	}
	return commit(d, w, st, 0);
}

/* --batch: one command for the file's remaining events. */
static int batch(struct drain *d, const struct claim_work *w, const char *map,
		 size_t size, struct claim_state *st)
{
	size_t cap = st->n_retry + 1024;
	size_t n = 0;
	struct ev *evs = malloc(cap * sizeof *evs);
	struct iovec *segs = malloc(cap * sizeof *segs);
	char why[CHILD_WHY_MAX];
	int rc = evs != NULL && segs != NULL ? 0 : -1;
	off_t next = st->offset;
	size_t ri = 0;
	while (rc == 0 && !limited(d)) {
		struct ev e;
		if (ri < st->n_retry) {
			e = line_at(map, size, st->retry[ri].off);
			e.attempts = st->retry[ri++].attempts;
		} else if ((size_t)next < size) {
			e = line_at(map, size, next);
			next += (off_t)e.len;
		} else {
			break;
		}
		d->offered++;
		if (!event_valid(map, &e)) {
			rc = quarantine(d, w, map, &e);
			e.attempts = UINT_MAX; /* settled: not in the batch */
		}
		if (n == cap) {
			cap *= 2;
			struct ev *g1 = realloc(evs, cap * sizeof *evs);
			evs = g1 != NULL ? g1 : evs;
			struct iovec *g2 = realloc(segs, cap * sizeof *segs);
			segs = g2 != NULL ? g2 : segs;
			if (g1 == NULL || g2 == NULL)
				rc = -1;
		}
		if (rc == 0)
			evs[n++] = e;
	}
	size_t nseg = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (evs[i].attempts == UINT_MAX)
			continue;
		segs[nseg].iov_base = (void *)(map + evs[i].off);
		segs[nseg++].iov_len = evs[i].len;
	}
	int ok =
	    rc == 0 && (nseg == 0 || child_run(d->batch_cmd, segs, nseg, NULL,
					       0, d->timeout_s, why) == 0);
	if (rc == 0 && !ok)
		log_info("batch handler failed type=%s file=%s events=%zu "
			 "reason=\"%s\"",
			 w->type, w->name, nseg, why);
	/* Settle every event of the batch in the state. */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct ev *e = &evs[i];
		size_t k = 0;
		while (k < st->n_retry && st->retry[k].off != e->off)
			k++;
		if (e->attempts == UINT_MAX || ok) {
			if (e->attempts != UINT_MAX)
				d->handled++;
			if (k < st->n_retry)
				claim_state_drop(st, k);
			continue;
		}
		unsigned attempts = e->attempts + 1;
		if (attempts >= d->max_attempts) {
			json_t *j = parse_event(map, e);
			rc = j != NULL ? dead_letter(d, w, j, attempts, why)
				       : -1;
			json_decref(j);
			if (rc == 0 && k < st->n_retry)
				claim_state_drop(st, k);
		} else {
			rc = claim_state_retry(st, e->off, attempts, why);
			d->retried++;
		}
	}
	if (rc == 0)
		st->offset = next;
	free(evs);
	free(segs);
	return rc == 0 ? commit(d, w, st, 0) : -1;
}

static int drain_work(struct drain *d, const struct claim_work *w)
{
	char path[PATH_MAX];
	char err[CLAIM_ERR_MAX];
	struct claim_state st;
	struct stat sb;
	snprintf(path, sizeof path, "%s/%s", d->dir, w->name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	/*
	 * A drain that died between claiming and waiting out the writers left
	 * this file: wait for them here, every time, before reading.
	 */
	if (fd >= 0 && claim_wait_writers(fd) != 0) {
		close(fd);
		fd = -1;
	}
	if (fd < 0 || fstat(fd, &sb) != 0) {
		log_error("drain: open %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	size_t size = (size_t)sb.st_size;
	const char *map = NULL;
	if (size > 0) {
		map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			log_error("drain: mmap %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
	}
	close(fd);
	claim_state_load(d->dir, w, &st);
	if ((size_t)st.offset > size) { /* not ours: offer it all again */
		claim_state_free(&st);
		memset(&st, 0, sizeof st);
	}
	int rc = d->batch_cmd != NULL ? batch(d, w, map, size, &st)
				      : one_by_one(d, w, map, size, &st);
	if (rc == 0 && (size_t)st.offset >= size && st.n_retry == 0 &&
	    claim_finish(d->dir, w, err) != 0) {
		log_error("drain: %s", err);
		rc = -1;
	}
	claim_state_free(&st);
	if (map != NULL)
		munmap((void *)map, size);
	return rc;
}

/* Claims every selected {type}.jsonl in dir. */
static int claim_all(struct drain *d, const char *dir)
{
	DIR *dh = opendir(dir);
	struct dirent *e;
	char err[CLAIM_ERR_MAX];
	int rc = 0;
	if (dh == NULL) {
		log_error("drain: opendir %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(dh)) != NULL) {
		char type[65];
		char kind;
		struct claim_work w;
		if (e->d_name[0] == '.' ||
		    claim_parse_name(e->d_name, type, &kind) != 0 ||
		    kind != 'p' || !type_selected(d, type))
			continue;
		if (claim_take(dir, type, &w, err) < 0) {
			log_error("drain: %s", err);
			rc = -1;
		}
	}
	closedir(dh);
	return rc;
}

/* --retry-failed: dead letters back into the spool, fields removed. */
static int retry_failed(struct drain *d)
{
	struct claim_work *ws;
	char err[CLAIM_ERR_MAX];
	if (access(d->failed_dir, F_OK) != 0)
		return 0;
	if (claim_all(d, d->failed_dir) != 0)
		return -1;
	ssize_t n = claim_list(d->failed_dir, &ws, err);
	if (n < 0) {
		log_error("drain: %s", err);
		return -1;
	}
	int rc = 0;
	for (ssize_t i = 0; rc == 0 && i < n; i++) {
		char path[PATH_MAX];
		char *line = NULL;
		size_t cap = 0;
		if (!type_selected(d, ws[i].type))
			continue;
		snprintf(path, sizeof path, "%s/%s", d->failed_dir, ws[i].name);
		FILE *f = fopen(path, "re");
		if (f == NULL) {
			rc = -1;
			break;
		}
		while (rc == 0 && getline(&line, &cap, f) > 0) {
			json_t *j = json_loads(line, 0, NULL);
			char *s = NULL;
			if (j != NULL) {
				json_object_del(j, "attempts");
				json_object_del(j, "last_error");
				s = json_dumps(j, JSON_COMPACT);
			}
			if (s != NULL) {
				size_t len = strlen(s);
				s[len] = '\n'; /* json_dumps left room: NUL */
				rc = spool_append(&d->a->spool, ws[i].type, s,
						  len + 1, err);
				if (rc != 0)
					log_error("drain: %s", err);
			}
			free(s);
			json_decref(j);
		}
		free(line);
		fclose(f);
		if (rc == 0 && claim_finish(d->failed_dir, &ws[i], err) != 0)
			rc = -1;
	}
	free(ws);
	return rc;
}

/* 0: run; otherwise exit with *status (usage printed, or an error). */
static int parse_args(struct drain *d, int argc, char **argv, int *status)
{
	struct cli_list types = {{0}, 0};
	unsigned long long max_attempts = DRAIN_ATTEMPTS_DEFAULT;
	unsigned long long timeout = DRAIN_TIMEOUT_DEFAULT;
	unsigned long long limit = ULLONG_MAX;
	const struct cli_option opts[] = {
	    {"--type", CLI_LIST, &types, 0, 0},
	    {"--exec", CLI_STRING, &d->exec_cmd, 0, 0},
	    {"--batch", CLI_STRING, &d->batch_cmd, 0, 0},
	    {"--max-attempts", CLI_NUMBER, &max_attempts, 1,
	     DRAIN_ATTEMPTS_MAX},
	    {"--timeout", CLI_NUMBER, &timeout, 1, DRAIN_TIMEOUT_MAX},
	    {"--limit", CLI_NUMBER, &limit, 0, DRAIN_LIMIT_MAX},
	    {"--wait", CLI_FLAG, &d->wait, 0, 0},
	    {"--retry-failed", CLI_FLAG, &d->retry_failed, 0, 0},
	    {NULL, CLI_FLAG, NULL, 0, 0},
	};
	const struct cli_command cmd = {"drain", drain_usage, opts, 0, 0};
	char *args[1]; /* no arguments are accepted */
	int nargs;
	enum cli_result r =
	    cli_parse(&cmd, &d->a->opt, argc - 1, argv + 1, args, &nargs);
	*status = cli_exit(r);
	if (r != CLI_OK)
		return -1;
	*status = 2;
	if (d->exec_cmd != NULL && d->batch_cmd != NULL) {
		cli_error("drain", "--exec and --batch exclude each other");
		return -1;
	}
	for (size_t i = 0; i < types.n; i++) {
		if (types.v[i][0] == '\0') {
			cli_error("drain",
				  "--type wants a glob such as 'item.*'");
			return -1;
		}
		d->types[i] = types.v[i];
	}
	d->n_types = types.n;
	d->max_attempts = (unsigned)max_attempts;
	d->timeout_s = (int)timeout;
	d->limit = limit == ULLONG_MAX ? -1 : (long)limit;
	d->verbose = d->a->opt.verbose;
	return 0;
}

/* Takes the drain lock; 1 held, 0 another drain has it, -1 error. */
static int take_lock(struct drain *d)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", d->dir, DRAIN_LOCK_NAME);
	/*
	 * Not O_CLOEXEC: handlers inherit the descriptor, so the lock lasts
	 * as long as any handler we started, even one orphaned by a drain
	 * killed mid-event; the next drain cannot run that event meanwhile.
	 */
	int fd = open(path, O_RDWR | O_CREAT, 0600);
	if (fd < 0) {
		log_error("drain: %s: %s", path, strerror(errno));
		return -1;
	}
	if (spool_flock(fd, LOCK_EX | (d->wait ? 0 : LOCK_NB)) != 0) {
		int busy = errno == EWOULDBLOCK;
		close(fd);
		return busy ? 0 : -1;
	}
	return 1; /* the descriptor stays open until exit */
}

static int prepare(struct drain *d)
{
	d->dir = d->a->cfg.spool_dir;
	snprintf(d->failed_dir, sizeof d->failed_dir, "%s/%s", d->dir,
		 DRAIN_FAILED_DIR);
	snprintf(d->bad_dir, sizeof d->bad_dir, "%s/%s", d->dir, DRAIN_BAD_DIR);
	d->failed = d->a->spool;
	d->failed.dir = d->failed_dir;
	d->failed.sync = 1; /* a dead letter is the last copy of an event */
	d->bad = d->failed;
	d->bad.dir = d->bad_dir;
	if ((mkdir(d->failed_dir, 0750) != 0 && errno != EEXIST) ||
	    (mkdir(d->bad_dir, 0750) != 0 && errno != EEXIST)) {
		log_error("drain: mkdir: %s", strerror(errno));
		return -1;
	}
	d->out = d->exec_cmd == NULL && d->batch_cmd == NULL
		     ? malloc(PRINT_CHUNK)
		     : NULL;
	if (d->exec_cmd == NULL && d->batch_cmd == NULL && d->out == NULL)
		return -1;
	d->tty = isatty(STDERR_FILENO);
	child_setup();
	return 0;
}

int drain_main(struct app *a, int argc, char **argv)
{
	struct drain d = {0};
	struct claim_work *ws = NULL;
	char err[CLAIM_ERR_MAX];
	d.a = a;
	int rc;
	if (parse_args(&d, argc, argv, &rc) != 0)
		return rc;
	if (app_load(a) != 0)
		return 2;
	if (spool_check_dir(a->cfg.spool_dir, err) != 0) {
		fprintf(stderr, "podio-hook: drain: %s\n", err);
		return 2;
	}
	d.dir = a->cfg.spool_dir;
	int locked = take_lock(&d);
	if (locked <= 0) {
		if (locked == 0 && d.verbose)
			fprintf(stderr, "podio-hook: drain: another drain is "
					"running; nothing done\n");
		return locked == 0 ? 0 : 1;
	}
	if (prepare(&d) != 0 || (d.retry_failed && retry_failed(&d) != 0) ||
	    claim_all(&d, d.dir) != 0)
		d.broken = 1;
	ssize_t n = d.broken ? -1 : claim_list(d.dir, &ws, err);
	if (n < 0 && !d.broken) {
		log_error("drain: %s", err);
		d.broken = 1;
	}
	for (ssize_t i = 0; i < n && !d.broken && !limited(&d); i++) {
		if (type_selected(&d, ws[i].type) &&
		    drain_work(&d, &ws[i]) != 0)
			d.broken = 1;
	}
	free(ws);
	free(d.out);
	progress(&d, 1);
	if (d.verbose)
		fprintf(stderr,
			"podio-hook: drain: %ld handled, %ld to retry, %ld "
			"failed, %ld quarantined\n",
			d.handled, d.retried, d.dead, d.quarantined);
	return d.broken || d.retried > 0 || d.dead > 0 || d.quarantined > 0;
}
