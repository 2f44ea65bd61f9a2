/*
 * engine_test.c - SPEC sections 5, 8 and 10: the consumer engine driven by
 * fake handlers, in a scratch spool, without starting a process (fork()
 * only stands in for a drain that crashes).
 *
 *   - events handed over oldest first, byte for byte, at least once;
 *   - a failing event is offered again with its attempts counted, then
 *     moved to failed/{type}.jsonl as the spooled line with "attempts"
 *     and "last_error" added; --retry-failed puts it back byte for byte;
 *   - a line that is not one JSON object (by the one rule), or torn, is
 *     quarantined in bad/ once, in every mode, and never deleted;
 *   - a commit that fails saves no progress; STOP leaves events pending
 *     with their attempts unchanged;
 *   - a drain killed at any point loses nothing;
 *   - symbolic links and files of other kinds planted in the spool are
 *     reported and never followed, and the rest is drained all the same;
 *   - any number of types, --limit, batch mode and coalescing.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "engine.h"
#include "jsoncheck.h"
#include "layout.h"
#include "log.h"
#include "spool.h"

/* ---- log capture --------------------------------------------------------- */

static char *logbuf;
static size_t loglen;
static size_t logcap;

static void capture(const char *line, size_t len)
{
	if (loglen + len + 1 > logcap) {
		size_t cap = (loglen + len + 1) * 2;
		char *g = realloc(logbuf, cap);
		if (g == NULL)
			return;
		logbuf = g;
		logcap = cap;
	}
	memcpy(logbuf + loglen, line, len);
	loglen += len;
	logbuf[loglen] = '\0';
}

static void expect_logged(const char *what)
{
	if (logbuf == NULL || strstr(logbuf, what) == NULL)
		fail_msg("nothing logged about \"%s\"; the log:\n%s", what,
			 logbuf != NULL ? logbuf : "");
}

/* ---- the fake handler ---------------------------------------------------- */

/* One offer as the handler saw it. */
struct got {
	char *out; /* what was handed over */
	size_t len;
	char *line; /* as spooled */
	size_t line_len;
	unsigned attempts;
	char type[EVENT_TYPE_MAX + 1];
	enum engine_verdict verdict;
	size_t call; /* the one/batch call it came with, from 1 */
};

struct rec {
	struct got *g;
	size_t n;
	size_t cap;
	size_t committed; /* with commit: g[0..committed) are final */
	size_t calls;
	size_t commits;
	size_t fail_commit; /* the commit (from 1) that fails; 0: none */
	const char *fail;   /* an event whose line holds this FAILS */
	const char *stop;   /* ... this gets STOP */
	const char *why;    /* the reason given for a failure */
	enum engine_verdict batch_verdict;
	size_t batch_sizes[64];
	/* With stop_flag: set *stop_flag once this many were handed over. */
	volatile sig_atomic_t *stop_flag;
	size_t stop_after;
	/* prepare: events whose line holds these fail or stop there. */
	const char *prep_fail;
	const char *prep_stop;
	size_t prepared;
	/* Spooled from inside the handler, on its first call. */
	const char *spool_dir;
	const char *spool_type;
	const char *spool_line;
};

static void rec_free(struct rec *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->g[i].out);
		free(r->g[i].line);
	}
	free(r->g);
	memset(r, 0, sizeof *r);
}

static char *dup_bytes(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	assert_non_null(d);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static void rec_add(struct rec *r, const struct engine_event *ev,
		    enum engine_verdict v)
{
	if (r->n == r->cap) {
		r->cap = r->cap != 0 ? r->cap * 2 : 64;
		r->g = realloc(r->g, r->cap * sizeof *r->g);
		assert_non_null(r->g);
	}
	struct got *g = &r->g[r->n++];
	memset(g, 0, sizeof *g);
	g->out = dup_bytes(ev->out, ev->out_len);
	g->len = ev->out_len;
	g->line = dup_bytes(ev->line, ev->len);
	g->line_len = ev->len;
	g->attempts = ev->attempts;
	snprintf(g->type, sizeof g->type, "%s", ev->type);
	g->verdict = v;
	g->call = r->calls;
}

static void spool_from_handler(struct rec *r)
{
	char err[SPOOL_ERR_MAX];
	struct spool sp = {r->spool_dir, 0, 0640, NULL};
	if (r->spool_line == NULL)
		return;
	if (spool_append(&sp, r->spool_type, r->spool_line,
			 strlen(r->spool_line), err) != 0)
		fail_msg("spool_append from the handler: %s", err);
	r->spool_line = NULL;
}

static enum engine_verdict verdict_for(struct rec *r,
				       const struct engine_event *ev)
{
	const char *line = dup_bytes(ev->line, ev->len);
	enum engine_verdict v = ENGINE_HANDLED;
	if (r->stop != NULL && strstr(line, r->stop) != NULL)
		v = ENGINE_STOP;
	else if (r->fail != NULL && strstr(line, r->fail) != NULL)
		v = ENGINE_FAILED;
	free((void *)line);
	return v;
}

static size_t handed_count(const struct rec *r)
{
	size_t k = 0;
	for (size_t i = 0; i < r->n; i++)
		k += r->g[i].verdict == ENGINE_HANDLED;
	return k;
}

static enum engine_verdict rec_one(void *ctx, const struct engine_event *ev,
				   char why[ENGINE_WHY_MAX])
{
	struct rec *r = ctx;
	r->calls++;
	spool_from_handler(r);
	enum engine_verdict v = verdict_for(r, ev);
	if (v == ENGINE_FAILED)
		snprintf(why, ENGINE_WHY_MAX, "%s",
			 r->why != NULL ? r->why : "exit status 3");
	rec_add(r, ev, v);
	if (r->stop_flag != NULL && handed_count(r) >= r->stop_after)
		*r->stop_flag = 1;
	return v;
}

static enum engine_verdict rec_batch(void *ctx, const char *type,
				     const struct engine_event *evs, size_t n,
				     char why[ENGINE_WHY_MAX])
{
	struct rec *r = ctx;
	enum engine_verdict v = r->batch_verdict;
	r->calls++;
	if (r->calls <= sizeof r->batch_sizes / sizeof r->batch_sizes[0])
		r->batch_sizes[r->calls - 1] = n;
	assert_true(n > 0);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(evs[i].type, type);
		enum engine_verdict e = verdict_for(r, &evs[i]);
		if (e == ENGINE_STOP || (e == ENGINE_FAILED && v == 0))
			v = e;
	}
	if (v == ENGINE_FAILED)
		snprintf(why, ENGINE_WHY_MAX, "%s",
			 r->why != NULL ? r->why : "batch exit status 4");
	for (size_t i = 0; i < n; i++)
		rec_add(r, &evs[i], v);
	return v;
}

/* Print mode's shape: what was handed over is final only once committed. */
static int rec_commit(void *ctx)
{
	struct rec *r = ctx;
	r->commits++;
	if (r->commits == r->fail_commit) {
		for (size_t i = r->committed; i < r->n; i++) {
			free(r->g[i].out);
			free(r->g[i].line);
		}
		r->n = r->committed;
		return -1;
	}
	r->committed = r->n;
	return 0;
}

/*
 * A prepare callback (the Podio fetch's shape): adds "fetched" to what
 * is handed over, or fails or stops before the handler is called.
 */
static enum engine_verdict rec_prepare(void *ctx, const struct engine_event *ev,
				       char **out, size_t *out_len,
				       char why[ENGINE_WHY_MAX])
{
	struct rec *r = ctx;
	static const char fetched[] = ",\"fetched\":{\"title\":\"x\"}}\n";
	char *line = dup_bytes(ev->line, ev->len);
	enum engine_verdict v = ENGINE_HANDLED;
	r->prepared++;
	if (r->prep_stop != NULL && strstr(line, r->prep_stop) != NULL) {
		v = ENGINE_STOP;
	} else if (r->prep_fail != NULL && strstr(line, r->prep_fail) != NULL) {
		snprintf(why, ENGINE_WHY_MAX, "fetch failed: 503");
		v = ENGINE_FAILED;
	} else {
		/* What the engine would hand over, plus "fetched". */
		size_t n = ev->out_len - 2 + sizeof fetched - 1;
		*out = malloc(n);
		assert_non_null(*out);
		memcpy(*out, ev->out, ev->out_len - 2);
		memcpy(*out + ev->out_len - 2, fetched, sizeof fetched - 1);
		*out_len = n;
	}
	free(line);
	return v;
}

/* ---- fixture ------------------------------------------------------------- */

struct fx {
	char dir[64];	/* the spool */
	char other[64]; /* outside it: link targets */
	mode_t old_umask;
	struct engine_options opt;
	struct engine_handler h;
	struct rec r;
	struct engine_stats st; /* of the last pass */
};

static int setup(void **state)
{
	struct fx *t = calloc(1, sizeof *t);
	if (t == NULL)
		return -1;
	if (tmpdir_make(t->dir, sizeof t->dir, "engine_test") != 0 ||
	    tmpdir_make(t->other, sizeof t->other, "engine_test_other") != 0)
		return -1;
	t->old_umask = umask(022);
	t->opt.max_attempts = 3;
	t->opt.limit = ENGINE_NO_LIMIT;
	t->opt.file_mode = 0640;
	t->h.ctx = &t->r;
	t->h.one = rec_one;
	t->h.commit_every = 1;
	t->r.spool_dir = t->dir;
	loglen = 0;
	if (logbuf != NULL)
		logbuf[0] = '\0';
	log_set_sink(capture);
	log_set_level(LOG_INFO);
	*state = t;
	return 0;
}

/*
 * Makes this process subject to file permission checks (on) or not (off)
 * by lowering or raising CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH in its
 * effective set; for root, as CI runs, that is what makes a mode 000 file
 * unreadable.  Without those capabilities (not root) it changes nothing.
 */
static int permission_checks(int on)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	const uint32_t dac =
	    (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH);
	if (syscall(SYS_capget, &h, d) != 0)
		return -1;
	if (on)
		d[0].effective &= ~dac;
	else
		d[0].effective |= dac & d[0].permitted;
	return (int)syscall(SYS_capset, &h, d);
}

static int teardown(void **state)
{
	struct fx *t = *state;
	umask(t->old_umask);
	log_set_sink(NULL);
	int checks = permission_checks(0); /* if a case failed with them on */
	rec_free(&t->r);
	int rc = checks | tmpdir_remove(t->dir) | tmpdir_remove(t->other);
	free(t);
	return rc;
}

/* Print mode: one handler and a commit every commit_every events. */
static void print_mode(struct fx *t, unsigned commit_every)
{
	t->h.one = rec_one;
	t->h.batch = NULL;
	t->h.commit = rec_commit;
	t->h.commit_every = commit_every;
}

static void batch_mode(struct fx *t)
{
	t->h.one = NULL;
	t->h.batch = rec_batch;
	t->h.commit = NULL;
}

/* engine_open, one pass, engine_close; the pass's result. */
static int pass(struct fx *t)
{
	struct engine e;
	int rc = engine_open(&e, t->dir, &t->opt, &t->h);
	if (rc != 1)
		fail_msg("engine_open returned %d; the log:\n%s", rc,
			 logbuf != NULL ? logbuf : "");
	rc = engine_pass(&e);
	t->st = e.stats;
	engine_close(&e);
	return rc;
}

/* Forgets what the handler saw so far. */
static void rec_reset(struct fx *t)
{
	struct rec keep = t->r;
	memset(&t->r, 0, sizeof t->r);
	t->r.fail = keep.fail;
	t->r.stop = keep.stop;
	t->r.why = keep.why;
	t->r.batch_verdict = keep.batch_verdict;
	t->r.prep_fail = keep.prep_fail;
	t->r.prep_stop = keep.prep_stop;
	t->r.spool_dir = t->dir;
	keep.spool_line = NULL;
	rec_free(&keep);
}

/*
 * In a forked child: cmocka's handlers for crashes would carry on with
 * the test run there; a crash must end the child instead.
 */
static void child_defaults(void)
{
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		signal(sigs[i], SIG_DFL);
}

/* ---- spool content ------------------------------------------------------- */

/* Event k of type: a spool line as the receiver writes it. */
static const char *ev_line(const char *type, int k, const char *item, char *buf,
			   size_t cap)
{
	char own[16];
	if (item == NULL) {
		snprintf(own, sizeof own, "%d", k);
		item = own;
	}
	int n = snprintf(buf, cap,
			 "{\"id\":\"%s-%03d\",\"received\":\"2026-11-27T05:48:"
			 "19.%06dZ\",\"type\":\"%s\",\"remote_addr\":\"10.0.0."
			 "1\",\"params\":{\"type\":\"%s\",\"hook_id\":\"5\","
			 "\"item_id\":\"%s\"}}\n",
			 type, k, k, type, type, item);
	assert_true(n > 0 && (size_t)n < cap);
	return buf;
}

#define EV_LINE_MAX 512

/* A line of the event k of type, in a rotating set of static buffers. */
static const char *L(const char *type, int k)
{
	static char bufs[16][EV_LINE_MAX];
	static unsigned next;
	char *b = bufs[next++ % 16];
	return ev_line(type, k, NULL, b, EV_LINE_MAX);
}

/* Appends bytes to dir/name as they are (a torn tail, a bad line...). */
static void put_raw(const char *dir, const char *name, const char *bytes,
		    size_t n)
{
	char p[512];
	int fd = open(tmp_path(dir, name, p, sizeof p),
		      O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0640);
	if (fd < 0)
		fail_msg("open %s: %s", p, strerror(errno));
	assert_int_equal(write(fd, bytes, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

/* Spools a line through the writer protocol. */
static void put_line(struct fx *t, const char *type, const char *line)
{
	char err[SPOOL_ERR_MAX];
	struct spool sp = {t->dir, 0, 0640, NULL};
	if (spool_append(&sp, type, line, strlen(line), err) != 0)
		fail_msg("spool_append: %s", err);
}

/* Spools events from..to (inclusive) of type. */
static void put(struct fx *t, const char *type, int from, int to)
{
	for (int k = from; k <= to; k++)
		put_line(t, type, L(type, k));
}

/* The spooled line with members appended before its final '}'. */
static const char *with(const char *line, const char *members, char *buf,
			size_t cap)
{
	size_t n = strlen(line);
	int k = snprintf(buf, cap, "%.*s,%s}\n", (int)n - 2, line, members);
	assert_true(k > 0 && (size_t)k < cap);
	return buf;
}

/* Work files (and their progress files) left in dir. */
static size_t work_left(const char *dir)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char type[EVENT_TYPE_MAX + 1];
		if (layout_parse(e->d_name, type) == LAYOUT_WORK ||
		    strstr(e->d_name, LAYOUT_STATE_SUFFIX) != NULL)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * Progress files whose work file is gone: a drain killed inside
 * claim_finish (between removing the work file and its progress) leaves
 * one behind.  They hold no event; counted, not failed on.
 */
static size_t orphans;

/* 1 when name is {work}.state or {work}.state.tmp and {work} is gone. */
static int orphan(const char *dir, const char *name)
{
	char work[LAYOUT_NAME_MAX];
	char p[512];
	const char *st = strstr(name, LAYOUT_STATE_SUFFIX);
	if (st == NULL ||
	    (strcmp(st, LAYOUT_STATE_SUFFIX) != 0 &&
	     strcmp(st, LAYOUT_STATE_SUFFIX LAYOUT_TMP_SUFFIX) != 0))
		return 0;
	snprintf(work, sizeof work, "%.*s", (int)(st - name), name);
	return !tmp_exists(tmp_path(dir, work, p, sizeof p));
}

/* Work files, progress files and type files left in dir. */
static size_t spool_left(const char *dir)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char type[EVENT_TYPE_MAX + 1];
		n += !orphan(dir, e->d_name) &&
		     (layout_parse(e->d_name, type) != LAYOUT_OTHER ||
		      strstr(e->d_name, LAYOUT_STATE_SUFFIX) != NULL);
	}
	closedir(d);
	return n;
}

/* Fails, naming them, unless every event file is gone from dir. */
static void expect_drained(const char *dir, const char *what)
{
	char names[2048] = "";
	size_t used = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char type[EVENT_TYPE_MAX + 1];
		if (orphan(dir, e->d_name)) {
			orphans++;
			continue;
		}
		if (layout_parse(e->d_name, type) != LAYOUT_OTHER ||
		    strstr(e->d_name, LAYOUT_STATE_SUFFIX) != NULL)
			used += (size_t)snprintf(
			    names + used,
			    used < sizeof names ? sizeof names - used : 0,
			    " %s", e->d_name);
		if (used >= sizeof names)
			used = sizeof names - 1;
	}
	closedir(d);
	if (names[0] != '\0')
		fail_msg("%s: left in the spool:%s", what, names);
}

/* Fails unless the handler was handed exactly lines[0..n), in order. */
static void expect_handed(const struct fx *t, const char *const *lines,
			  size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < t->r.n; i++) {
		const struct got *g = &t->r.g[i];
		if (g->verdict != ENGINE_HANDLED)
			continue;
		if (k >= n)
			fail_msg("handed over %zu events or more, want %zu; "
				 "extra: %s",
				 k + 1, n, g->out);
		if (g->len != strlen(lines[k]) ||
		    memcmp(g->out, lines[k], g->len) != 0)
			fail_msg("event %zu handed over as\n%s\nwant\n%s", k,
				 g->out, lines[k]);
		k++;
	}
	if (k != n)
		fail_msg("handed over %zu events, want %zu", k, n);
}

/* The file dir/name holds exactly the concatenation of lines[0..n). */
static void expect_lines(const char *dir, const char *name,
			 const char *const *lines, size_t n)
{
	char p[512];
	size_t cap = 1;
	size_t got_len = 0;
	for (size_t i = 0; i < n; i++)
		cap += strlen(lines[i]);
	char *want = malloc(cap);
	assert_non_null(want);
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		memcpy(want + used, lines[i], strlen(lines[i]));
		used += strlen(lines[i]);
	}
	want[used] = '\0';
	char *got = tmp_read(tmp_path(dir, name, p, sizeof p), &got_len);
	int same =
	    got != NULL && got_len == used && memcmp(got, want, used) == 0;
	if (!same)
		print_error("%s holds %zu bytes:\n%s\nwant %zu bytes:\n%s\n", p,
			    got != NULL ? got_len : 0,
			    got != NULL ? got : strerror(errno), used, want);
	free(got);
	free(want);
	if (!same)
		fail_msg("%s: unexpected content", p);
}

static const char *sub(const struct fx *t, const char *name, char *buf,
		       size_t cap)
{
	return tmp_path(t->dir, name, buf, cap);
}

#define N_OF(a) (sizeof a / sizeof a[0])

/* The text of dir/name; the caller frees it. */
static char *slurp(const char *dir, const char *name, size_t *n)
{
	char p[512];
	char *s = tmp_read(tmp_path(dir, name, p, sizeof p), n);
	if (s == NULL)
		fail_msg("read %s: %s", p, strerror(errno));
	return s;
}

/* The one work file of type left in dir: its name into out. */
static void the_work_file(const char *dir, const char *type, char *out,
			  size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char ty[EVENT_TYPE_MAX + 1];
		if (layout_parse(e->d_name, ty) == LAYOUT_WORK &&
		    strcmp(ty, type) == 0) {
			assert_false(found);
			snprintf(out, cap, "%s", e->d_name);
			found = 1;
		}
	}
	closedir(d);
	if (!found)
		fail_msg("no work file of %s in %s", type, dir);
}

/* The progress file of type's one work file holds exactly want. */
static void expect_state(const struct fx *t, const char *type, const char *want)
{
	char w[LAYOUT_NAME_MAX];
	char name[LAYOUT_NAME_MAX + 8];
	char p[512];
	the_work_file(t->dir, type, w, sizeof w);
	snprintf(name, sizeof name, "%s" LAYOUT_STATE_SUFFIX, w);
	tmp_expect_file(tmp_path(t->dir, name, p, sizeof p), want);
}

static void expect_counts(const struct engine_stats *s,
			  unsigned long long offered,
			  unsigned long long handled,
			  unsigned long long retried, unsigned long long dead,
			  unsigned long long quarantined)
{
	if (s->offered != offered || s->handled != handled ||
	    s->retried != retried || s->dead != dead ||
	    s->quarantined != quarantined)
		fail_msg("offered %llu handled %llu retried %llu dead %llu "
			 "quarantined %llu; want %llu %llu %llu %llu %llu",
			 s->offered, s->handled, s->retried, s->dead,
			 s->quarantined, offered, handled, retried, dead,
			 quarantined);
}

/* ---- handing over -------------------------------------------------------- */

static void
print_mode_hands_over_every_event_oldest_first_byte_for_byte(void **state)
{
	struct fx *t = *state;
	print_mode(t, 2);
	put(t, "item.create", 1, 3);
	put(t, "comment.create", 1, 2);
	put(t, "item.update", 1, 1);
	assert_int_equal(pass(t), 0);
	/* Types in name order, each file's events in file order. */
	const char *want[] = {
	    L("comment.create", 1), L("comment.create", 2), L("item.create", 1),
	    L("item.create", 2),    L("item.create", 3),    L("item.update", 1),
	};
	expect_handed(t, want, N_OF(want));
	assert_int_equal(t->r.committed, 6);
	for (size_t i = 0; i < t->r.n; i++) {
		assert_int_equal(t->r.g[i].attempts, 0);
		assert_int_equal(t->r.g[i].len, t->r.g[i].line_len);
		assert_memory_equal(t->r.g[i].out, t->r.g[i].line,
				    t->r.g[i].len);
	}
	assert_string_equal(t->r.g[0].type, "comment.create");
	assert_string_equal(t->r.g[5].type, "item.update");
	expect_counts(&t->st, 6, 6, 0, 0, 0);
	assert_int_equal(t->st.problems, 0);
	assert_int_equal(t->st.stopped, 0);
	assert_int_equal(t->st.broken, 0);
	/* Nothing left but failed/, bad/ and the lock. */
	assert_int_equal(work_left(t->dir), 0);
	assert_int_equal(tmp_entries(t->dir), 3);
	/* A second pass finds nothing to do. */
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 0);
	expect_counts(&t->st, 0, 0, 0, 0, 0);
}

static void an_older_work_file_is_drained_before_a_newer_one(void **state)
{
	struct fx *t = *state;
	char err[CLAIM_ERR_MAX];
	struct claim_work w;
	int dirfd = open(t->dir, O_RDONLY | O_DIRECTORY);
	assert_true(dirfd >= 0);
	put(t, "item.create", 1, 2);
	/* A drain that died after claiming left this one. */
	assert_int_equal(claim_take(dirfd, t->dir, "item.create", &w, err), 1);
	close(dirfd);
	put(t, "item.create", 3, 4);
	assert_int_equal(pass(t), 0);
	const char *want[] = {L("item.create", 1), L("item.create", 2),
			      L("item.create", 3), L("item.create", 4)};
	expect_handed(t, want, N_OF(want));
	assert_int_equal(work_left(t->dir), 0);
}

static void an_event_spooled_during_a_pass_waits_for_the_next_one(void **state)
{
	struct fx *t = *state;
	char late[EV_LINE_MAX];
	put(t, "item.create", 1, 2);
	t->r.spool_type = "item.create";
	t->r.spool_line = ev_line("item.create", 3, NULL, late, sizeof late);
	assert_int_equal(pass(t), 0);
	const char *first[] = {L("item.create", 1), L("item.create", 2)};
	expect_handed(t, first, N_OF(first));
	char p[512];
	tmp_expect_file(sub(t, "item.create.jsonl", p, sizeof p), late);
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	const char *second[] = {late};
	expect_handed(t, second, 1);
	assert_int_equal(work_left(t->dir), 0);
}

static void an_empty_spool_file_is_left_for_the_writers(void **state)
{
	struct fx *t = *state;
	char p[512];
	tmp_write(sub(t, "item.create.jsonl", p, sizeof p), "", 0);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 0);
	assert_true(tmp_exists(p));
	assert_int_equal(work_left(t->dir), 0);
}

static void
failed_and_bad_take_the_spool_mode_and_files_the_file_mode(void **state)
{
	struct fx *t = *state;
	struct stat st;
	char p[512];
	assert_int_equal(chmod(t->dir, 02770), 0);
	t->opt.file_mode = 0660;
	t->opt.max_attempts = 1;
	t->r.fail = "item.create-001";
	put(t, "item.create", 1, 1);
	put_raw(t->dir, "item.create.jsonl", "torn", 4);
	assert_int_equal(pass(t), 0);
	assert_int_equal(lstat(sub(t, "failed", p, sizeof p), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 02770);
	assert_int_equal(lstat(sub(t, "bad", p, sizeof p), &st), 0);
	assert_int_equal(st.st_mode & 07777, 02770);
	assert_int_equal(
	    lstat(sub(t, "failed/item.create.jsonl", p, sizeof p), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(
	    lstat(sub(t, "bad/item.create.jsonl", p, sizeof p), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(lstat(sub(t, ".drain.lock", p, sizeof p), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
}

/* ---- failures, retries, dead letters ------------------------------------- */

static void
a_failing_event_is_retried_with_attempts_then_dead_lettered(void **state)
{
	struct fx *t = *state;
	char p[512];
	char buf[1024];
	char st[256];
	t->opt.max_attempts = 3;
	t->r.fail = "item.create-002";
	put(t, "item.create", 1, 3);
	size_t l1 = strlen(L("item.create", 1));
	size_t all =
	    l1 + strlen(L("item.create", 2)) + strlen(L("item.create", 3));

	/* 1: the events after it are not held back. */
	assert_int_equal(pass(t), 0);
	const char *handled[] = {L("item.create", 1), L("item.create", 3)};
	expect_handed(t, handled, N_OF(handled));
	expect_counts(&t->st, 3, 2, 1, 0, 0);
	assert_int_equal(t->r.g[1].verdict, ENGINE_FAILED);
	assert_int_equal(t->r.g[1].attempts, 0);
	snprintf(st, sizeof st, "offset %zu\nretry %zu 1 \"exit status 3\"\n",
		 all, l1);
	expect_state(t, "item.create", st);

	/* 2: only the failed one is offered, with its attempt counted. */
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 1);
	assert_int_equal(t->r.g[0].attempts, 1);
	assert_memory_equal(t->r.g[0].out, L("item.create", 2), t->r.g[0].len);
	expect_counts(&t->st, 1, 0, 1, 0, 0);
	snprintf(st, sizeof st, "offset %zu\nretry %zu 2 \"exit status 3\"\n",
		 all, l1);
	expect_state(t, "item.create", st);
	assert_false(
	    tmp_exists(sub(t, "failed/item.create.jsonl", p, sizeof p)));

	/* 3: the third failure moves it to failed/, exactly so. */
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 1);
	assert_int_equal(t->r.g[0].attempts, 2);
	expect_counts(&t->st, 1, 0, 0, 1, 0);
	const char *dead[] = {
	    with(L("item.create", 2),
		 "\"attempts\":3,\"last_error\":\"exit status 3\"", buf,
		 sizeof buf)};
	expect_lines(t->dir, "failed/item.create.jsonl", dead, 1);
	assert_int_equal(work_left(t->dir), 0);
	expect_logged("event failed for good type=item.create");

	/* It parses: attempts a number, last_error a string. */
	size_t n = 0;
	char *s = slurp(t->dir, "failed/item.create.jsonl", &n);
	json_t *j = json_loadb(s, n, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 3);
	assert_string_equal(json_string_value(json_object_get(j, "last_error")),
			    "exit status 3");
	json_decref(j);
	free(s);

	/* 4: nothing more. */
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 0);
}

static void max_attempts_one_dead_letters_at_the_first_failure(void **state)
{
	struct fx *t = *state;
	char buf[1024];
	t->opt.max_attempts = 1;
	t->r.fail = "item.create-001";
	put(t, "item.create", 1, 2);
	assert_int_equal(pass(t), 0);
	expect_counts(&t->st, 2, 1, 0, 1, 0);
	const char *dead[] = {
	    with(L("item.create", 1),
		 "\"attempts\":1,\"last_error\":\"exit status 3\"", buf,
		 sizeof buf)};
	expect_lines(t->dir, "failed/item.create.jsonl", dead, 1);
	assert_int_equal(work_left(t->dir), 0);
}

static void last_error_is_one_line_of_valid_utf8_in_a_json_string(void **state)
{
	struct fx *t = *state;
	char buf[1024];
	t->opt.max_attempts = 1;
	t->r.fail = "item.create-001";
	t->r.why = "exit \"3\"\nline two\t\xff end \\ \xc3";
	put(t, "item.create", 1, 1);
	assert_int_equal(pass(t), 0);
	const char *dead[] = {with(L("item.create", 1),
				   "\"attempts\":1,\"last_error\":\"exit "
				   "\\\"3\\\" line two ? end \\\\ ?\"",
				   buf, sizeof buf)};
	expect_lines(t->dir, "failed/item.create.jsonl", dead, 1);
}

/*
 * A handler's reason is any text: one that is not valid UTF-8 must not
 * stop the progress from being saved (else the event would be offered
 * again and again with the same count, and never dead-lettered).
 */
static void a_reason_that_is_not_utf8_does_not_stop_progress(void **state)
{
	struct fx *t = *state;
	char buf[1024];
	t->opt.max_attempts = 2;
	t->r.fail = "item.create-001";
	t->r.why = "caf\xe9 \xff exit 1";
	put(t, "item.create", 1, 2);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->st.problems, 0);
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	/* Offered once more, with its attempt counted, then dead. */
	assert_int_equal(t->r.n, 1);
	assert_int_equal(t->r.g[0].attempts, 1);
	assert_int_equal(t->st.dead, 1);
	const char *dead[] = {with(L("item.create", 1),
				   "\"attempts\":2,\"last_error\":\"caf? ? "
				   "exit 1\"",
				   buf, sizeof buf)};
	expect_lines(t->dir, "failed/item.create.jsonl", dead, 1);
	assert_int_equal(work_left(t->dir), 0);
}

/* A dead letter after one torn by a crash starts on a line of its own. */
static void a_dead_letter_after_a_torn_one_starts_a_new_line(void **state)
{
	struct fx *t = *state;
	char p[512];
	char buf[1024];
	assert_int_equal(mkdir(sub(t, "failed", p, sizeof p), 0755), 0);
	put_raw(t->dir, "failed/item.create.jsonl", "{\"id\":\"cut", 10);
	t->opt.max_attempts = 1;
	t->r.fail = "item.create-001";
	put(t, "item.create", 1, 1);
	assert_int_equal(pass(t), 0);
	const char *lines[] = {
	    "{\"id\":\"cut\n",
	    with(L("item.create", 1),
		 "\"attempts\":1,\"last_error\":\"exit status 3\"", buf,
		 sizeof buf)};
	expect_lines(t->dir, "failed/item.create.jsonl", lines, 2);
}

static void a_dead_letter_carries_one_attempts_and_one_last_error(void **state)
{
	struct fx *t = *state;
	static const char line[] =
	    "{\"id\":\"x\",\"attempts\":9,\"p\":{\"attempts\":1},"
	    "\"last_error\":\"old\"}\n";
	t->opt.max_attempts = 1;
	t->r.fail = "\"x\"";
	put_raw(t->dir, "item.create.jsonl", line, strlen(line));
	assert_int_equal(pass(t), 0);
	const char *dead[] = {
	    "{\"id\":\"x\",\"p\":{\"attempts\":1},\"attempts\":1,"
	    "\"last_error\":\"exit status 3\"}\n"};
	expect_lines(t->dir, "failed/item.create.jsonl", dead, 1);
}

/* ---- --retry-failed ------------------------------------------------------ */

static void retry_failed_offers_dead_letters_again_byte_for_byte(void **state)
{
	struct fx *t = *state;
	char p[512];
	char l2[EV_LINE_MAX];
	char l3[EV_LINE_MAX];
	t->opt.max_attempts = 1;
	t->r.fail = "\"item_id\":\"doomed\"";
	put(t, "item.create", 1, 1);
	put_line(t, "item.create",
		 ev_line("item.create", 2, "doomed", l2, sizeof l2));
	put_line(t, "item.create",
		 ev_line("item.create", 3, "doomed", l3, sizeof l3));
	put(t, "item.create", 4, 4);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->st.dead, 2);

	rec_reset(t);
	t->r.fail = NULL;
	t->opt.retry_failed = 1;
	assert_int_equal(pass(t), 0);
	const char *want[] = {l2, l3};
	expect_handed(t, want, N_OF(want));
	for (size_t i = 0; i < t->r.n; i++)
		assert_int_equal(t->r.g[i].attempts, 0);
	assert_int_equal(t->st.requeued, 2);
	assert_int_equal(t->st.handled, 2);
	assert_int_equal(t->st.problems, 0);
	/* failed/ is empty: no dead letters, no work files, no progress. */
	assert_int_equal(tmp_entries(sub(t, "failed", p, sizeof p)), 0);
	assert_int_equal(work_left(t->dir), 0);
}

static void retry_failed_counts_attempts_afresh(void **state)
{
	struct fx *t = *state;
	char buf[1024];
	t->opt.max_attempts = 2;
	t->r.fail = "item.create-001";
	put(t, "item.create", 1, 1);
	assert_int_equal(pass(t), 0);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->st.dead, 1);

	rec_reset(t);
	t->opt.retry_failed = 1;
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 1);
	assert_int_equal(t->r.g[0].attempts, 0);
	assert_int_equal(t->st.retried, 1);
	t->opt.retry_failed = 0;
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.g[1].attempts, 1);
	assert_int_equal(t->st.dead, 1);
	/* One dead letter, its attempts counted since it was put back. */
	const char *dead[] = {
	    with(L("item.create", 1),
		 "\"attempts\":2,\"last_error\":\"exit status 3\"", buf,
		 sizeof buf)};
	expect_lines(t->dir, "failed/item.create.jsonl", dead, 1);
}

static void
retry_failed_quarantines_what_it_cannot_put_back_never_dropping_it(void **state)
{
	struct fx *t = *state;
	char p[512];
	char d1[1024];
	char d2[1024];
	static const char *const junk[] = {
	    "not json\n",
	    "{\"id\":\"n\",\"s\":\"\\u0000\",\"attempts\":1,\"last_error\":"
	    "\"e\"}\n",
	    "{\"id\":\"s\",\"s\":\"\\ud800\",\"attempts\":1,\"last_error\":"
	    "\"e\"}\n",
	    "{\"id\":\"i\",\"n\":99999999999999999999,\"attempts\":1}\n",
	};
	static const char torn[] = "{\"id\":\"t\",\"attempts\":1";
	assert_int_equal(mkdir(sub(t, "failed", p, sizeof p), 0755), 0);
	with(L("item.create", 1), "\"attempts\":5,\"last_error\":\"x\"", d1,
	     sizeof d1);
	with(L("item.create", 2), "\"attempts\":5,\"last_error\":\"y\"", d2,
	     sizeof d2);
	put_raw(t->dir, "failed/item.create.jsonl", d1, strlen(d1));
	for (size_t i = 0; i < N_OF(junk); i++)
		put_raw(t->dir, "failed/item.create.jsonl", junk[i],
			strlen(junk[i]));
	put_raw(t->dir, "failed/item.create.jsonl", d2, strlen(d2));
	put_raw(t->dir, "failed/item.create.jsonl", torn, strlen(torn));
	t->opt.retry_failed = 1;
	assert_int_equal(pass(t), 0);
	const char *want[] = {L("item.create", 1), L("item.create", 2)};
	expect_handed(t, want, N_OF(want));
	assert_int_equal(t->st.requeued, 2);
	assert_int_equal(t->st.quarantined, 5);
	const char *bad[] = {junk[0], junk[1], junk[2], junk[3],
			     "{\"id\":\"t\",\"attempts\":1\n"};
	expect_lines(t->dir, "bad/item.create.jsonl", bad, N_OF(bad));
	expect_logged("quarantined");
	assert_int_equal(tmp_entries(sub(t, "failed", p, sizeof p)), 0);
	/* Quarantined once: a second run adds nothing. */
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 0);
	expect_lines(t->dir, "bad/item.create.jsonl", bad, N_OF(bad));
}

static void retry_failed_puts_back_a_line_with_hundreds_of_keys(void **state)
{
	struct fx *t = *state;
	char p[512];
	size_t cap = 16384;
	char *line = malloc(cap);
	char *dead = malloc(cap);
	size_t n = 0;
	assert_non_null(line);
	assert_non_null(dead);
	n += (size_t)snprintf(line, cap, "{\"id\":\"wide\"");
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(line + n, cap - n, ",\"k%d\":%d", i, i);
	n += (size_t)snprintf(line + n, cap - n, "}\n");
	snprintf(dead, cap, "%.*s,\"attempts\":5,\"last_error\":\"x\"}\n",
		 (int)n - 2, line);
	assert_int_equal(mkdir(sub(t, "failed", p, sizeof p), 0755), 0);
	put_raw(t->dir, "failed/item.create.jsonl", dead, strlen(dead));
	t->opt.retry_failed = 1;
	assert_int_equal(pass(t), 0);
	const char *want[] = {line};
	expect_handed(t, want, 1);
	assert_int_equal(t->st.broken, 0);
	free(line);
	free(dead);
}

static void retry_failed_leaves_a_symlinked_dead_letter_file_alone(void **state)
{
	struct fx *t = *state;
	char p[512];
	char target[256];
	char d1[1024];
	struct tmp_snap before;
	tmp_path(t->other, "dead.jsonl", target, sizeof target);
	with(L("item.create", 1), "\"attempts\":5,\"last_error\":\"x\"", d1,
	     sizeof d1);
	tmp_write_str(target, d1);
	tmp_snap_take(target, &before);
	assert_int_equal(mkdir(sub(t, "failed", p, sizeof p), 0755), 0);
	assert_int_equal(
	    symlink(target, sub(t, "failed/item.create.jsonl", p, sizeof p)),
	    0);
	put(t, "comment.create", 1, 1);
	t->opt.retry_failed = 1;
	pass(t);
	const char *want[] = {L("comment.create", 1)};
	expect_handed(t, want, 1);
	assert_true(t->st.problems >= 1);
	expect_logged("item.create.jsonl");
	assert_true(tmp_is_link(p));
	tmp_snap_same(target, &before);
	assert_false(tmp_exists(sub(t, "bad/item.create.jsonl", p, sizeof p)));
}

/* ---- quarantine ---------------------------------------------------------- */

/* Lines that are not one JSON object by the one rule (jsoncheck.h). */
static const char *const NOT_JSON[] = {
    "not json\n",
    "{\"id\":\"sur\",\"s\":\"\\ud800\"}\n",
    "{\"id\":\"big\",\"n\":9223372036854775808}\n",
    "{\"id\":\"nul\",\"s\":\"\\u0000\"}\n",
    "{\"id\":\"inf\",\"n\":1e400}\n",
    "[\"an\",\"array\"]\n",
    "\n",
    "{\"id\":\"utf\",\"s\":\"\xff\"}\n",
};
static const char TORN[] = "{\"id\":\"torn\",\"type\":\"item.cr";

/*
 * A spool file with good events between bad lines and a torn tail: the
 * good ones are handed over, the others copied to bad/ byte for byte
 * (the torn one with a '\n'), once, and the work file is finished.
 */
static void quarantine_scenario(struct fx *t)
{
	put(t, "item.create", 1, 1);
	for (size_t i = 0; i < N_OF(NOT_JSON); i++)
		put_raw(t->dir, "item.create.jsonl", NOT_JSON[i],
			strlen(NOT_JSON[i]));
	put(t, "item.create", 2, 2);
	put_raw(t->dir, "item.create.jsonl", TORN, strlen(TORN));
	assert_int_equal(pass(t), 0);
	const char *good[] = {L("item.create", 1), L("item.create", 2)};
	expect_handed(t, good, N_OF(good));
	expect_counts(&t->st, 2 + N_OF(NOT_JSON) + 1, 2, 0, 0,
		      N_OF(NOT_JSON) + 1);
	const char *bad[N_OF(NOT_JSON) + 1];
	for (size_t i = 0; i < N_OF(NOT_JSON); i++)
		bad[i] = NOT_JSON[i];
	bad[N_OF(NOT_JSON)] = "{\"id\":\"torn\",\"type\":\"item.cr\n";
	expect_lines(t->dir, "bad/item.create.jsonl", bad, N_OF(bad));
	expect_logged("quarantined line type=item.create");
	expect_logged("no terminating newline");
	assert_int_equal(work_left(t->dir), 0);
	/* Once: the next pass has nothing to hand over or copy. */
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 0);
	expect_counts(&t->st, 0, 0, 0, 0, 0);
	expect_lines(t->dir, "bad/item.create.jsonl", bad, N_OF(bad));
}

static void one_mode_quarantines_torn_and_invalid_lines_once(void **state)
{
	quarantine_scenario(*state);
}

static void print_mode_quarantines_torn_and_invalid_lines_once(void **state)
{
	struct fx *t = *state;
	print_mode(t, 3);
	quarantine_scenario(t);
}

static void batch_mode_quarantines_torn_and_invalid_lines_once(void **state)
{
	struct fx *t = *state;
	batch_mode(t);
	quarantine_scenario(t);
	assert_int_equal(t->r.calls, 0);
}

/*
 * The defect behind SPEC section 10's "one rule": a line jansson refuses
 * in a batch that fails must be quarantined once and its progress saved,
 * not sent again and again.
 */
static void
batch_mode_quarantines_a_line_jansson_refuses_once_when_the_batch_fails(
    void **state)
{
	struct fx *t = *state;
	char b1[1024];
	char b2[1024];
	batch_mode(t);
	t->r.batch_verdict = ENGINE_FAILED;
	t->opt.max_attempts = 3;
	put(t, "item.create", 1, 1);
	put_raw(t->dir, "item.create.jsonl", NOT_JSON[1], strlen(NOT_JSON[1]));
	put(t, "item.create", 2, 2);
	const char *bad[] = {NOT_JSON[1]};

	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.calls, 1);
	assert_int_equal(t->r.batch_sizes[0], 2);
	expect_counts(&t->st, 3, 0, 2, 0, 1);
	expect_lines(t->dir, "bad/item.create.jsonl", bad, 1);

	for (unsigned run = 2; run <= 3; run++) {
		rec_reset(t);
		assert_int_equal(pass(t), 0);
		assert_int_equal(t->r.calls, 1);
		assert_int_equal(t->r.n, 2);
		assert_memory_equal(t->r.g[0].out, L("item.create", 1),
				    t->r.g[0].len);
		assert_memory_equal(t->r.g[1].out, L("item.create", 2),
				    t->r.g[1].len);
		assert_int_equal(t->r.g[0].attempts, run - 1);
		assert_int_equal(t->r.g[1].attempts, run - 1);
		assert_int_equal(t->st.quarantined, 0);
		expect_lines(t->dir, "bad/item.create.jsonl", bad, 1);
	}
	/* The third failure moved both to failed/, each once. */
	assert_int_equal(t->st.dead, 2);
	const char *dead[] = {
	    with(L("item.create", 1),
		 "\"attempts\":3,\"last_error\":\"batch exit status 4\"", b1,
		 sizeof b1),
	    with(L("item.create", 2),
		 "\"attempts\":3,\"last_error\":\"batch exit status 4\"", b2,
		 sizeof b2),
	};
	expect_lines(t->dir, "failed/item.create.jsonl", dead, 2);
	assert_int_equal(work_left(t->dir), 0);
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.calls, 0);
	expect_lines(t->dir, "failed/item.create.jsonl", dead, 2);
}

/* ---- commit -------------------------------------------------------------- */

static void a_commit_that_fails_saves_no_progress(void **state)
{
	struct fx *t = *state;
	char st[64];
	print_mode(t, 2);
	t->r.fail_commit = 2;
	put(t, "item.create", 1, 5);
	assert_int_equal(pass(t), -1);
	assert_int_equal(t->st.broken, 1);
	/* Events 1 and 2 were committed; 3 and 4 were not, nor saved. */
	assert_int_equal(t->r.committed, 2);
	snprintf(st, sizeof st, "offset %zu\n",
		 strlen(L("item.create", 1)) + strlen(L("item.create", 2)));
	expect_state(t, "item.create", st);
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	const char *rest[] = {L("item.create", 3), L("item.create", 4),
			      L("item.create", 5)};
	expect_handed(t, rest, N_OF(rest));
	assert_int_equal(t->r.committed, 3);
	assert_int_equal(work_left(t->dir), 0);
}

static void
a_first_commit_that_fails_leaves_every_event_to_offer_again(void **state)
{
	struct fx *t = *state;
	char w[LAYOUT_NAME_MAX];
	char name[LAYOUT_NAME_MAX + 8];
	char p[512];
	print_mode(t, 2);
	t->r.fail_commit = 1;
	put(t, "item.create", 1, 3);
	put(t, "item.update", 1, 1);
	assert_int_equal(pass(t), -1);
	assert_int_equal(t->r.committed, 0);
	the_work_file(t->dir, "item.create", w, sizeof w);
	snprintf(name, sizeof name, "%s.state", w);
	/* No progress, or progress at offset 0. */
	if (tmp_exists(tmp_path(t->dir, name, p, sizeof p)))
		tmp_expect_file(p, "offset 0\n");
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	const char *all[] = {L("item.create", 1), L("item.create", 2),
			     L("item.create", 3), L("item.update", 1)};
	expect_handed(t, all, N_OF(all));
	assert_int_equal(work_left(t->dir), 0);
}

/* ---- STOP and the stop flag ---------------------------------------------- */

static void
stop_leaves_the_event_and_later_ones_pending_with_attempts_unchanged(
    void **state)
{
	struct fx *t = *state;
	char st[64];
	t->r.stop = "a.x-003";
	put(t, "a.x", 1, 4);
	put(t, "b.x", 1, 2);
	assert_int_equal(pass(t), 0);
	const char *first[] = {L("a.x", 1), L("a.x", 2)};
	expect_handed(t, first, N_OF(first));
	assert_int_equal(t->st.stopped, 1);
	expect_counts(&t->st, 2, 2, 0, 0, 0);
	snprintf(st, sizeof st, "offset %zu\n",
		 strlen(L("a.x", 1)) + strlen(L("a.x", 2)));
	expect_state(t, "a.x", st);

	rec_reset(t);
	t->r.stop = NULL;
	assert_int_equal(pass(t), 0);
	const char *rest[] = {L("a.x", 3), L("a.x", 4), L("b.x", 1),
			      L("b.x", 2)};
	expect_handed(t, rest, N_OF(rest));
	for (size_t i = 0; i < t->r.n; i++)
		assert_int_equal(t->r.g[i].attempts, 0);
	assert_int_equal(work_left(t->dir), 0);
}

static void stop_on_an_event_offered_again_keeps_its_attempts(void **state)
{
	struct fx *t = *state;
	char st[128];
	size_t l1 = strlen(L("a.x", 1));
	size_t all = l1 + strlen(L("a.x", 2)) + strlen(L("a.x", 3));
	t->r.fail = "a.x-002";
	put(t, "a.x", 1, 3);
	assert_int_equal(pass(t), 0);
	snprintf(st, sizeof st, "offset %zu\nretry %zu 1 \"exit status 3\"\n",
		 all, l1);
	expect_state(t, "a.x", st);

	rec_reset(t);
	t->r.fail = NULL;
	t->r.stop = "a.x-002";
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->st.stopped, 1);
	expect_counts(&t->st, 0, 0, 0, 0, 0);
	expect_state(t, "a.x", st);

	rec_reset(t);
	t->r.stop = NULL;
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 1);
	assert_int_equal(t->r.g[0].attempts, 1);
	assert_int_equal(t->st.handled, 1);
	assert_int_equal(work_left(t->dir), 0);
}

static void batch_stop_hands_nothing_over_and_counts_nothing(void **state)
{
	struct fx *t = *state;
	batch_mode(t);
	t->r.stop = "a.x-002";
	put(t, "a.x", 1, 3);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->st.stopped, 1);
	expect_counts(&t->st, 0, 0, 0, 0, 0);
	rec_reset(t);
	t->r.stop = NULL;
	assert_int_equal(pass(t), 0);
	const char *all[] = {L("a.x", 1), L("a.x", 2), L("a.x", 3)};
	expect_handed(t, all, N_OF(all));
	for (size_t i = 0; i < t->r.n; i++)
		assert_int_equal(t->r.g[i].attempts, 0);
}

/*
 * A batch the handler answers STOP for settles nothing, quarantined lines
 * included: they are copied to bad/ when their batch settles, so a line
 * is quarantined once, not once per stopped pass.
 */
static void a_stopped_batch_quarantines_its_bad_lines_once_later(void **state)
{
	struct fx *t = *state;
	char p[512];
	batch_mode(t);
	t->r.stop = "item.create-002";
	put(t, "item.create", 1, 1);
	put_raw(t->dir, "item.create.jsonl", NOT_JSON[1], strlen(NOT_JSON[1]));
	put(t, "item.create", 2, 2);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->st.stopped, 1);
	assert_int_equal(t->st.quarantined, 0);
	assert_false(tmp_exists(sub(t, "bad/item.create.jsonl", p, sizeof p)));
	rec_reset(t);
	t->r.stop = NULL;
	assert_int_equal(pass(t), 0);
	const char *all[] = {L("item.create", 1), L("item.create", 2)};
	expect_handed(t, all, N_OF(all));
	const char *bad[] = {NOT_JSON[1]};
	expect_lines(t->dir, "bad/item.create.jsonl", bad, 1);
	assert_int_equal(t->st.quarantined, 1);
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	expect_lines(t->dir, "bad/item.create.jsonl", bad, 1);
}

static void the_stop_flag_ends_a_pass_between_events(void **state)
{
	struct fx *t = *state;
	volatile sig_atomic_t flag = 0;
	t->opt.stop = &flag;
	t->r.stop_flag = &flag;
	t->r.stop_after = 2;
	put(t, "a.x", 1, 5);
	assert_int_equal(pass(t), 0);
	const char *first[] = {L("a.x", 1), L("a.x", 2)};
	expect_handed(t, first, N_OF(first));
	rec_reset(t);
	flag = 0;
	assert_int_equal(pass(t), 0);
	const char *rest[] = {L("a.x", 3), L("a.x", 4), L("a.x", 5)};
	expect_handed(t, rest, N_OF(rest));
}

/* ---- prepare ------------------------------------------------------------- */

static void
prepare_adds_to_what_is_handed_over_not_to_what_is_kept(void **state)
{
	struct fx *t = *state;
	char b1[1024];
	char b2[1024];
	t->h.prepare = rec_prepare;
	put(t, "item.create", 1, 2);
	assert_int_equal(pass(t), 0);
	const char *want[] = {
	    with(L("item.create", 1), "\"fetched\":{\"title\":\"x\"}", b1,
		 sizeof b1),
	    with(L("item.create", 2), "\"fetched\":{\"title\":\"x\"}", b2,
		 sizeof b2),
	};
	expect_handed(t, want, N_OF(want));
	assert_memory_equal(t->r.g[0].line, L("item.create", 1),
			    t->r.g[0].line_len);
	assert_int_equal(t->r.prepared, 2);
	assert_int_equal(work_left(t->dir), 0);
}

static void
a_failing_prepare_counts_an_attempt_and_dead_letters_the_spooled_line(
    void **state)
{
	struct fx *t = *state;
	char buf[1024];
	t->h.prepare = rec_prepare;
	t->r.prep_fail = "item.create-001";
	t->opt.max_attempts = 2;
	put(t, "item.create", 1, 2);
	assert_int_equal(pass(t), 0);
	/* The handler never saw it; the event after it went on. */
	assert_int_equal(t->r.n, 1);
	expect_counts(&t->st, 2, 1, 1, 0, 0);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->st.dead, 1);
	const char *dead[] = {with(L("item.create", 1),
				   "\"attempts\":2,\"last_error\":\"fetch "
				   "failed: 503\"",
				   buf, sizeof buf)};
	expect_lines(t->dir, "failed/item.create.jsonl", dead, 1);
	assert_int_equal(work_left(t->dir), 0);
}

static void a_prepare_that_stops_leaves_the_event_pending(void **state)
{
	struct fx *t = *state;
	t->h.prepare = rec_prepare;
	t->r.prep_stop = "item.create-002";
	put(t, "item.create", 1, 3);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->st.stopped, 1);
	expect_counts(&t->st, 1, 1, 0, 0, 0);
	rec_reset(t);
	t->r.prep_stop = NULL;
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 2);
	assert_int_equal(t->r.g[0].attempts, 0);
	assert_int_equal(work_left(t->dir), 0);
}

static void in_batch_mode_a_failing_prepare_fails_only_its_event(void **state)
{
	struct fx *t = *state;
	batch_mode(t);
	t->h.prepare = rec_prepare;
	t->r.prep_fail = "a.x-002";
	put(t, "a.x", 1, 3);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.calls, 1);
	assert_int_equal(t->r.batch_sizes[0], 2);
	expect_counts(&t->st, 3, 2, 1, 0, 0);
	rec_reset(t);
	t->r.prep_fail = NULL;
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 1);
	assert_int_equal(t->r.g[0].attempts, 1);
	assert_memory_equal(t->r.g[0].line, L("a.x", 2), t->r.g[0].line_len);
	assert_int_equal(work_left(t->dir), 0);
}

/* ---- kill points --------------------------------------------------------- */

/*
 * A drain killed at any point loses nothing (SPEC section 8).  A child
 * process runs a pass whose handler records every event it hands over
 * in a file outside the spool and _exit()s after crash_at of them (or in
 * the middle of a commit or a batch); then this process drains what is
 * left with the same handler.  Every spooled event must be in the record
 * at least once; duplicates are allowed and counted.
 */
enum kmode {
	K_ONE,		  /* an --exec handler: handed over when it returns */
	K_PRINT,	  /* print: handed over when a commit writes it */
	K_COMMIT,	  /* print, dying inside a commit after writing */
	K_UNWRITTEN,	  /* print, dying inside a commit before writing */
	K_BATCH,	  /* batch: dies partway through a batch */
	K_COALESCE,	  /* one, coalescing */
	K_BATCH_COALESCE, /* batch, coalescing */
	K_FAILING,	  /* one; some events always fail, max_attempts 2 */
};

static const char *const kmode_name[] = {
    "one",   "print",	 "commit",	   "unwritten",
    "batch", "coalesce", "batch+coalesce", "failing"};

struct kctx {
	enum kmode mode;
	int fd;		 /* the record, O_APPEND */
	size_t handled;	 /* events handed over so far */
	size_t crash_at; /* _exit(0) when handled reaches it */
	char buf[8192];	 /* print: not yet committed */
	size_t used;
};

/* "id\n" of an event, and of every event it settles ("coalesced"). */
static void k_ids(const struct engine_event *ev, char *out, size_t cap,
		  size_t *used)
{
	json_t *j = json_loadb(ev->out, ev->out_len, 0, NULL);
	json_t *c = json_object_get(j, "coalesced");
	size_t i;
	json_t *v;
	if (j == NULL)
		_exit(90);
	*used += (size_t)snprintf(out + *used, cap - *used, "%s\n",
				  json_string_value(json_object_get(j, "id")));
	json_array_foreach(c, i, v)
	{
		*used += (size_t)snprintf(out + *used, cap - *used, "%s\n",
					  json_string_value(v));
	}
	json_decref(j);
	if (*used >= cap)
		_exit(91);
}

static void k_write(int fd, const char *s, size_t n)
{
	if (write(fd, s, n) != (ssize_t)n)
		_exit(92);
}

static void k_maybe_crash(struct kctx *k)
{
	if (k->handled == k->crash_at)
		_exit(0);
}

static enum engine_verdict k_one(void *ctx, const struct engine_event *ev,
				 char why[ENGINE_WHY_MAX])
{
	struct kctx *k = ctx;
	char ids[1024];
	size_t n = 0;
	if (k->mode == K_FAILING &&
	    memmem(ev->line, ev->len, "\"item_id\":\"doomed\"", 18) != NULL) {
		snprintf(why, ENGINE_WHY_MAX, "doomed");
		return ENGINE_FAILED;
	}
	if (k->mode != K_COMMIT && k->mode != K_UNWRITTEN)
		k_maybe_crash(k);
	k_ids(ev, ids, sizeof ids, &n);
	if (k->mode == K_PRINT || k->mode == K_COMMIT ||
	    k->mode == K_UNWRITTEN) {
		if (k->used + n > sizeof k->buf)
			_exit(93);
		memcpy(k->buf + k->used, ids, n);
		k->used += n;
	} else {
		k_write(k->fd, ids, n);
	}
	k->handled++;
	return ENGINE_HANDLED;
}

static int k_commit(void *ctx)
{
	struct kctx *k = ctx;
	if (k->mode == K_UNWRITTEN && k->handled >= k->crash_at)
		_exit(0); /* nothing of it out yet */
	k_write(k->fd, k->buf, k->used);
	k->used = 0;
	if (k->mode == K_COMMIT && k->handled >= k->crash_at)
		_exit(0); /* written, but progress not saved */
	return 0;
}

static enum engine_verdict k_batch(void *ctx, const char *type,
				   const struct engine_event *evs, size_t n,
				   char why[ENGINE_WHY_MAX])
{
	struct kctx *k = ctx;
	(void)type;
	(void)why;
	for (size_t i = 0; i < n; i++) {
		char ids[1024];
		size_t used = 0;
		k_maybe_crash(k);
		k_ids(&evs[i], ids, sizeof ids, &used);
		k_write(k->fd, ids, used);
		k->handled++;
	}
	return ENGINE_HANDLED;
}

static void k_handler(struct fx *t, struct kctx *k)
{
	memset(&t->h, 0, sizeof t->h);
	t->h.ctx = k;
	t->h.commit_every = 1;
	t->opt.coalesce = k->mode == K_COALESCE || k->mode == K_BATCH_COALESCE;
	t->opt.max_attempts = k->mode == K_FAILING ? 2 : 3;
	if (k->mode == K_BATCH || k->mode == K_BATCH_COALESCE) {
		t->h.batch = k_batch;
	} else {
		t->h.one = k_one;
		if (k->mode == K_PRINT || k->mode == K_COMMIT ||
		    k->mode == K_UNWRITTEN) {
			t->h.commit = k_commit;
			t->h.commit_every = 3;
		}
	}
}

/* The spool of a kill run: ids into ids[], "doomed" ones marked. */
static size_t k_spool(struct fx *t, enum kmode mode, char ids[][32],
		      int doomed[])
{
	static const struct {
		const char *type;
		const char *item;
	} evs[] = {
	    {"a.x", "1"},
	    {"a.x", "2"},
	    {"a.x", "doomed"},
	    {"a.x", "3"},
	    {"item.update", "7"},
	    {"item.update", "8"},
	    {"item.update", "7"},
	    {"item.update", "7"},
	    {"item.update", "doomed"},
	    {"item.update", "8"},
	    {"b.x", "1"},
	    {"b.x", "2"},
	};
	size_t n = 0;
	for (size_t i = 0; i < N_OF(evs); i++) {
		char line[EV_LINE_MAX];
		int is_doomed = strcmp(evs[i].item, "doomed") == 0;
		if (is_doomed && mode != K_FAILING)
			continue;
		ev_line(evs[i].type, (int)i, evs[i].item, line, sizeof line);
		put_line(t, evs[i].type, line);
		snprintf(ids[n], 32, "%s-%03d", evs[i].type, (int)i);
		doomed[n] = is_doomed;
		n++;
	}
	return n;
}

/* How many lines of text are s. */
static size_t count_of(const char *text, const char *s)
{
	size_t n = 0;
	size_t len = strlen(s);
	for (const char *p = text; (p = strstr(p, s)) != NULL; p += len) {
		if ((p == text || p[-1] == '\n') && p[len] == '\n')
			n++;
	}
	return n;
}

/* Empties the spool between runs. */
static void k_clear(struct fx *t)
{
	char p[512];
	assert_int_equal(tmpdir_remove(t->dir), 0);
	assert_int_equal(mkdir(t->dir, 0700), 0);
	tmp_path(t->other, "record", p, sizeof p);
	unlink(p);
}

/* Runs the kill points 0..n+1 of mode; returns the duplicates seen. */
static size_t kill_points(struct fx *t, enum kmode mode)
{
	size_t dups = 0;
	for (size_t crash_at = 0;; crash_at++) {
		char ids[16][32];
		int doomed[16];
		char p[512];
		k_clear(t);
		size_t n = k_spool(t, mode, ids, doomed);
		if (crash_at > n + 1)
			break;
		struct kctx k;
		memset(&k, 0, sizeof k);
		k.mode = mode;
		k.crash_at = crash_at;
		k.fd = open(tmp_path(t->other, "record", p, sizeof p),
			    O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0600);
		assert_true(k.fd >= 0);
		k_handler(t, &k);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			child_defaults();
			child_defaults();
			struct engine e;
			if (engine_open(&e, t->dir, &t->opt, &t->h) != 1)
				_exit(80);
			engine_pass(&e);
			_exit(0);
		}
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("%s, crash at %zu: the child ended with "
				 "status %#x",
				 kmode_name[mode], crash_at, status);
		/* What is left, drained here: a few passes for retries. */
		k.crash_at = SIZE_MAX;
		k.used = 0;
		for (int i = 0; i < 4 && spool_left(t->dir) > 0; i++)
			pass(t);
		expect_drained(t->dir, "after the passes that follow");
		close(k.fd);
		size_t len = 0;
		char *rec = slurp(t->other, "record", &len);
		size_t total = 0;
		for (size_t i = 0; i < n; i++) {
			size_t c = count_of(rec, ids[i]);
			if (doomed[i]) {
				char name[64];
				size_t flen = 0;
				int tlen = (int)(strrchr(ids[i], '-') - ids[i]);
				snprintf(name, sizeof name, "failed/%.*s.jsonl",
					 tlen, ids[i]);
				char *f = slurp(t->dir, name, &flen);
				if (c != 0)
					fail_msg("%s: %s always fails, yet it "
						 "was handed over",
						 kmode_name[mode], ids[i]);
				if (strstr(f, ids[i]) == NULL)
					fail_msg("%s, crash at %zu: %s is "
						 "neither handed over nor in "
						 "failed/",
						 kmode_name[mode], crash_at,
						 ids[i]);
				free(f);
				continue;
			}
			if (c == 0)
				fail_msg("%s, crash at %zu: %s was lost; "
					 "handed over:\n%s",
					 kmode_name[mode], crash_at, ids[i],
					 rec);
			total += c;
			dups += c - 1;
		}
		/* Nothing but spooled events was handed over. */
		size_t lines = 0;
		for (const char *q = rec; (q = strchr(q, '\n')) != NULL; q++)
			lines++;
		assert_int_equal(lines, total);
		free(rec);
	}
	return dups;
}

static void a_drain_killed_after_any_event_loses_nothing(void **state)
{
	struct fx *t = *state;
	static const enum kmode modes[] = {
	    K_ONE,   K_PRINT,	 K_COMMIT,	   K_UNWRITTEN,
	    K_BATCH, K_COALESCE, K_BATCH_COALESCE, K_FAILING};
	for (size_t i = 0; i < N_OF(modes); i++) {
		size_t dups = kill_points(t, modes[i]);
		print_message("# kill points, %s: none lost, %zu duplicates\n",
			      kmode_name[modes[i]], dups);
	}
}

/*
 * SIGKILL from outside, at moments that fall anywhere: while claiming,
 * while saving progress, between a handler's return and the save.
 */
static void a_drain_killed_at_random_moments_loses_nothing(void **state)
{
	struct fx *t = *state;
	size_t dups = 0;
	size_t runs = 0;
	orphans = 0;
	for (long delay_us = 0; delay_us <= 6000; delay_us += 300) {
		char p[512];
		k_clear(t);
		for (int i = 0; i < 60; i++) {
			char line[EV_LINE_MAX];
			const char *type = i % 3 == 0 ? "a.x" : "b.x";
			put_line(t, type,
				 ev_line(type, i, NULL, line, sizeof line));
		}
		struct kctx k;
		memset(&k, 0, sizeof k);
		k.mode = K_ONE;
		k.crash_at = SIZE_MAX;
		k.fd = open(tmp_path(t->other, "record", p, sizeof p),
			    O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0600);
		assert_true(k.fd >= 0);
		k_handler(t, &k);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			child_defaults();
			child_defaults();
			struct engine e;
			if (engine_open(&e, t->dir, &t->opt, &t->h) != 1)
				_exit(80);
			engine_pass(&e);
			_exit(0);
		}
		struct timespec ts = {0, delay_us * 1000};
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		for (int i = 0; i < 3 && spool_left(t->dir) > 0; i++)
			pass(t);
		expect_drained(t->dir, "after the passes that follow");
		close(k.fd);
		size_t len = 0;
		char *rec = slurp(t->other, "record", &len);
		for (int i = 0; i < 60; i++) {
			char id[32];
			snprintf(id, sizeof id, "%s-%03d",
				 i % 3 == 0 ? "a.x" : "b.x", i);
			size_t c = count_of(rec, id);
			if (c == 0)
				fail_msg("killed after %ld us: %s was lost",
					 delay_us, id);
			dups += c - 1;
		}
		free(rec);
		runs++;
	}
	print_message("# random kills: %zu runs, none lost, %zu duplicates, "
		      "%zu orphaned progress files\n",
		      runs, dups, orphans);
}

/*
 * --retry-failed killed while it puts dead letters back: none is lost
 * (each is handed over at least once by the runs that follow).
 */
static void
a_retry_failed_killed_at_random_moments_loses_no_dead_letter(void **state)
{
	struct fx *t = *state;
	enum { DEAD = 200 };
	size_t dups = 0;
	size_t runs = 0;
	orphans = 0;
	for (long delay_us = 0; delay_us <= 4000; delay_us += 400) {
		char p[512];
		char line[EV_LINE_MAX];
		char dead[1024];
		k_clear(t);
		assert_int_equal(mkdir(sub(t, "failed", p, sizeof p), 0755), 0);
		for (int i = 0; i < DEAD; i++) {
			with(ev_line("a.x", i, NULL, line, sizeof line),
			     "\"attempts\":5,\"last_error\":\"x\"", dead,
			     sizeof dead);
			put_raw(t->dir, "failed/a.x.jsonl", dead, strlen(dead));
		}
		struct kctx k;
		memset(&k, 0, sizeof k);
		k.mode = K_ONE;
		k.crash_at = SIZE_MAX;
		k.fd = open(tmp_path(t->other, "record", p, sizeof p),
			    O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0600);
		assert_true(k.fd >= 0);
		k_handler(t, &k);
		t->opt.retry_failed = 1;
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			child_defaults();
			child_defaults();
			struct engine e;
			if (engine_open(&e, t->dir, &t->opt, &t->h) != 1)
				_exit(80);
			engine_pass(&e);
			_exit(0);
		}
		struct timespec ts = {0, delay_us * 1000};
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		for (int i = 0; i < 3; i++)
			pass(t);
		expect_drained(t->dir, "after the passes that follow");
		assert_int_equal(tmp_entries(sub(t, "failed", p, sizeof p)), 0);
		close(k.fd);
		size_t len = 0;
		char *rec = slurp(t->other, "record", &len);
		for (int i = 0; i < DEAD; i++) {
			char id[32];
			snprintf(id, sizeof id, "a.x-%03d", i);
			size_t c = count_of(rec, id);
			if (c == 0)
				fail_msg("killed after %ld us: dead letter %s "
					 "was lost",
					 delay_us, id);
			dups += c - 1;
		}
		free(rec);
		runs++;
	}
	t->opt.retry_failed = 0;
	print_message("# random kills of --retry-failed: %zu runs, none "
		      "lost, %zu duplicates, %zu orphaned progress files\n",
		      runs, dups, orphans);
}

/* ---- what must be left alone --------------------------------------------- */

/*
 * A file outside the spool, holding valid events, that a planted link
 * points to: if anything followed the link, they would be handed over,
 * copied, or the file changed.
 */
static const char *bait(struct fx *t, const char *name, char *out, size_t cap,
			struct tmp_snap *before)
{
	tmp_path(t->other, name, out, cap);
	tmp_write_str(out, L("item.create", 99));
	tmp_snap_take(out, before);
	return out;
}

/* The other type was drained as usual beside what was left alone. */
static void expect_others_drained(struct fx *t)
{
	const char *want[] = {L("comment.create", 1), L("comment.create", 2)};
	expect_handed(t, want, N_OF(want));
	char p[512];
	assert_false(tmp_exists(sub(t, "comment.create.jsonl", p, sizeof p)));
}

static void
a_symlink_as_a_type_file_is_reported_and_never_followed(void **state)
{
	struct fx *t = *state;
	char target[256];
	char p[512];
	struct tmp_snap before;
	bait(t, "passwd", target, sizeof target, &before);
	assert_int_equal(
	    symlink(target, sub(t, "item.create.jsonl", p, sizeof p)), 0);
	put(t, "comment.create", 1, 2);
	pass(t);
	expect_others_drained(t);
	assert_int_equal(t->st.problems, 1);
	expect_logged("item.create.jsonl: is a symbolic link");
	assert_true(tmp_is_link(p));
	tmp_snap_same(target, &before);
	assert_false(tmp_exists(sub(t, "bad/item.create.jsonl", p, sizeof p)));
	assert_int_equal(work_left(t->dir), 0);
}

static void
a_symlink_as_a_work_file_is_reported_and_never_followed(void **state)
{
	struct fx *t = *state;
	char target[256];
	char p[512];
	struct tmp_snap before;
	bait(t, "passwd", target, sizeof target, &before);
	assert_int_equal(
	    symlink(target, sub(t, "item.create.jsonl.claim-0000000000000001",
				p, sizeof p)),
	    0);
	put(t, "comment.create", 1, 2);
	pass(t);
	expect_others_drained(t);
	assert_int_equal(t->st.problems, 1);
	expect_logged("item.create.jsonl.claim-0000000000000001");
	expect_logged("symbolic link");
	assert_true(tmp_is_link(p));
	tmp_snap_same(target, &before);
	assert_false(tmp_exists(sub(t,
				    "item.create.jsonl.claim-"
				    "0000000000000001.state",
				    p, sizeof p)));
	assert_false(tmp_exists(sub(t, "bad/item.create.jsonl", p, sizeof p)));
}

static void a_symlink_as_progress_leaves_its_work_file_alone(void **state)
{
	struct fx *t = *state;
	char target[256];
	char p[512];
	char w[512];
	struct tmp_snap before;
	struct tmp_snap work;
	tmp_path(t->other, "state", target, sizeof target);
	tmp_write_str(target, "offset 0\n");
	tmp_snap_take(target, &before);
	sub(t, "item.create.jsonl.claim-0000000000000001", w, sizeof w);
	tmp_write_str(w, L("item.create", 1));
	tmp_snap_take(w, &work);
	assert_int_equal(symlink(target, sub(t,
					     "item.create.jsonl.claim-"
					     "0000000000000001.state",
					     p, sizeof p)),
			 0);
	put(t, "comment.create", 1, 2);
	pass(t);
	expect_others_drained(t);
	assert_int_equal(t->st.problems, 1);
	expect_logged("item.create.jsonl.claim-0000000000000001.state");
	assert_true(tmp_is_link(p));
	tmp_snap_same(target, &before);
	/* Not handed over, not removed: kept for someone to look at. */
	tmp_snap_same(w, &work);
}

static void a_symlink_as_progress_tmp_is_never_written_through(void **state)
{
	struct fx *t = *state;
	char target[256];
	char p[512];
	struct tmp_snap before;
	bait(t, "precious", target, sizeof target, &before);
	put(t, "item.create", 1, 3);
	/* Claim it and plant the link where the progress is written. */
	int dirfd = open(t->dir, O_RDONLY | O_DIRECTORY);
	char err[CLAIM_ERR_MAX];
	struct claim_work w;
	assert_int_equal(claim_take(dirfd, t->dir, "item.create", &w, err), 1);
	close(dirfd);
	char name[LAYOUT_NAME_MAX + 16];
	snprintf(name, sizeof name, "%s.state.tmp", w.name);
	assert_int_equal(symlink(target, sub(t, name, p, sizeof p)), 0);
	t->r.fail = "item.create-002"; /* progress must be saved */
	put(t, "comment.create", 1, 2);
	pass(t);
	assert_true(t->st.problems >= 1);
	expect_logged(name);
	tmp_snap_same(target, &before);
	assert_true(tmp_is_link(p));
	/* The other type was drained all the same. */
	char q[512];
	assert_false(tmp_exists(sub(t, "comment.create.jsonl", q, sizeof q)));
	/* Nothing lost: once the link is gone, the rest is handed over. */
	assert_int_equal(unlink(p), 0);
	t->r.fail = NULL;
	for (int i = 0; i < 3 && work_left(t->dir) > 0; i++)
		pass(t);
	assert_int_equal(work_left(t->dir), 0);
	for (int k = 1; k <= 3; k++) {
		int seen = 0;
		for (size_t i = 0; i < t->r.n; i++)
			seen |= t->r.g[i].verdict == ENGINE_HANDLED &&
				strcmp(t->r.g[i].out, L("item.create", k)) == 0;
		if (!seen)
			fail_msg("item.create-%03d was lost", k);
	}
}

static void
a_symlink_as_failed_is_never_written_through_and_nothing_is_lost(void **state)
{
	struct fx *t = *state;
	char p[512];
	char buf[1024];
	struct tmp_snap before;
	tmp_snap_take(t->other, &before);
	assert_int_equal(symlink(t->other, sub(t, "failed", p, sizeof p)), 0);
	t->opt.max_attempts = 1;
	t->r.fail = "item.create-001";
	put(t, "item.create", 1, 2);
	put(t, "comment.create", 1, 2);
	pass(t);
	assert_true(t->st.problems >= 1);
	assert_int_equal(t->st.dead, 0);
	expect_logged("/failed: is a symbolic link");
	assert_true(tmp_is_link(p));
	/* Nothing was created in the folder it points to. */
	tmp_snap_same(t->other, &before);
	assert_int_equal(tmp_entries(t->other), 0);
	char q[512];
	assert_false(tmp_exists(sub(t, "comment.create.jsonl", q, sizeof q)));
	/*
	 * The event is kept; with a real failed/ it is dead-lettered,
	 * counting the attempt made while failed/ could not be written.
	 */
	assert_int_equal(unlink(p), 0);
	rec_reset(t);
	pass(t);
	assert_true(t->r.n >= 1);
	assert_memory_equal(t->r.g[0].out, L("item.create", 1), t->r.g[0].len);
	assert_int_equal(t->r.g[0].attempts, 1);
	assert_int_equal(t->st.dead, 1);
	/* The event after it, held back or not, is handed over once. */
	size_t seen = 0;
	for (size_t i = 0; i < t->r.n; i++)
		seen += strcmp(t->r.g[i].out, L("item.create", 2)) == 0;
	assert_int_equal(seen, 1);
	const char *dead[] = {
	    with(L("item.create", 1),
		 "\"attempts\":2,\"last_error\":\"exit status 3\"", buf,
		 sizeof buf)};
	expect_lines(t->dir, "failed/item.create.jsonl", dead, 1);
	assert_int_equal(work_left(t->dir), 0);
}

static void
a_symlink_as_bad_is_never_written_through_and_nothing_is_lost(void **state)
{
	struct fx *t = *state;
	char p[512];
	struct tmp_snap before;
	tmp_snap_take(t->other, &before);
	assert_int_equal(symlink(t->other, sub(t, "bad", p, sizeof p)), 0);
	put(t, "item.create", 1, 1);
	put_raw(t->dir, "item.create.jsonl", NOT_JSON[0], strlen(NOT_JSON[0]));
	put(t, "item.create", 2, 2);
	put(t, "comment.create", 1, 2);
	pass(t);
	assert_true(t->st.problems >= 1);
	assert_int_equal(t->st.quarantined, 0);
	expect_logged("/bad: is a symbolic link");
	assert_true(tmp_is_link(p));
	tmp_snap_same(t->other, &before);
	assert_int_equal(tmp_entries(t->other), 0);
	char q[512];
	assert_false(tmp_exists(sub(t, "comment.create.jsonl", q, sizeof q)));
	/* The bad line is kept; with a real bad/ it is quarantined. */
	assert_int_equal(unlink(p), 0);
	for (int i = 0; i < 3 && work_left(t->dir) > 0; i++)
		pass(t);
	assert_int_equal(work_left(t->dir), 0);
	const char *bad[] = {NOT_JSON[0]};
	expect_lines(t->dir, "bad/item.create.jsonl", bad, 1);
	for (int k = 1; k <= 2; k++) {
		int seen = 0;
		for (size_t i = 0; i < t->r.n; i++)
			seen |= strcmp(t->r.g[i].out, L("item.create", k)) == 0;
		if (!seen)
			fail_msg("item.create-%03d was lost", k);
	}
}

static void
failed_and_bad_that_are_not_folders_are_reported_and_nothing_is_lost(
    void **state)
{
	struct fx *t = *state;
	char p[512];
	tmp_write_str(sub(t, "failed", p, sizeof p), "not a folder\n");
	tmp_write_str(sub(t, "bad", p, sizeof p), "not a folder\n");
	t->opt.max_attempts = 1;
	t->r.fail = "item.create-001";
	put(t, "item.create", 1, 1);
	put_raw(t->dir, "item.create.jsonl", NOT_JSON[0], strlen(NOT_JSON[0]));
	put(t, "comment.create", 1, 2);
	pass(t);
	expect_others_drained(t);
	assert_true(t->st.problems >= 2);
	expect_logged("/failed: is not a directory");
	expect_logged("/bad: is not a directory");
	tmp_expect_file(sub(t, "failed", p, sizeof p), "not a folder\n");
	tmp_expect_file(sub(t, "bad", p, sizeof p), "not a folder\n");
	assert_int_equal(t->st.dead, 0);
	assert_int_equal(t->st.quarantined, 0);
	/* Both lines are still in the spool. */
	assert_true(work_left(t->dir) > 0);
}

static void a_symlink_in_failed_or_bad_is_never_written_through(void **state)
{
	struct fx *t = *state;
	char p[512];
	char t1[256];
	char t2[256];
	struct tmp_snap b1;
	struct tmp_snap b2;
	bait(t, "dead-target", t1, sizeof t1, &b1);
	bait(t, "bad-target", t2, sizeof t2, &b2);
	assert_int_equal(mkdir(sub(t, "failed", p, sizeof p), 0755), 0);
	assert_int_equal(mkdir(sub(t, "bad", p, sizeof p), 0755), 0);
	assert_int_equal(
	    symlink(t1, sub(t, "failed/item.create.jsonl", p, sizeof p)), 0);
	assert_int_equal(
	    symlink(t2, sub(t, "bad/item.create.jsonl", p, sizeof p)), 0);
	t->opt.max_attempts = 1;
	t->r.fail = "item.create-001";
	put(t, "item.create", 1, 1);
	put_raw(t->dir, "item.create.jsonl", NOT_JSON[0], strlen(NOT_JSON[0]));
	put(t, "comment.create", 1, 2);
	pass(t);
	expect_others_drained(t);
	assert_true(t->st.problems >= 1);
	expect_logged("item.create.jsonl: is a symbolic link");
	tmp_snap_same(t1, &b1);
	tmp_snap_same(t2, &b2);
	assert_true(
	    tmp_is_link(sub(t, "failed/item.create.jsonl", p, sizeof p)));
	assert_true(tmp_is_link(sub(t, "bad/item.create.jsonl", p, sizeof p)));
	assert_int_equal(t->st.dead, 0);
	assert_true(work_left(t->dir) > 0);
}

static void a_symlink_as_the_drain_lock_is_never_followed(void **state)
{
	struct fx *t = *state;
	char target[256];
	char p[512];
	struct tmp_snap before;
	struct engine e;
	bait(t, "nologin", target, sizeof target, &before);
	assert_int_equal(symlink(target, sub(t, ".drain.lock", p, sizeof p)),
			 0);
	put(t, "item.create", 1, 1);
	assert_int_equal(engine_open(&e, t->dir, &t->opt, &t->h), -1);
	expect_logged(".drain.lock: is a symbolic link");
	tmp_snap_same(target, &before);
	assert_true(tmp_is_link(p));
	/* Nothing was touched: the type file is still where it was. */
	assert_true(tmp_exists(sub(t, "item.create.jsonl", p, sizeof p)));
	assert_int_equal(work_left(t->dir), 0);
	/* A dangling one: its target is not created. */
	char ghost[256];
	tmp_path(t->other, "ghost", ghost, sizeof ghost);
	assert_int_equal(unlink(sub(t, ".drain.lock", p, sizeof p)), 0);
	assert_int_equal(symlink(ghost, p), 0);
	assert_int_equal(engine_open(&e, t->dir, &t->opt, &t->h), -1);
	assert_false(tmp_exists(ghost));
}

static void
a_directory_named_like_a_type_file_blocks_no_other_type(void **state)
{
	struct fx *t = *state;
	char p[512];
	assert_int_equal(mkdir(sub(t, "aaa.bbb.jsonl", p, sizeof p), 0755), 0);
	assert_int_equal(
	    mkdir(sub(t, "aaa.ccc.jsonl.claim-0000000000000001", p, sizeof p),
		  0755),
	    0);
	put(t, "comment.create", 1, 2);
	for (int run = 0; run < 2; run++) {
		rec_reset(t);
		if (run == 1)
			put(t, "comment.create", 1, 2);
		assert_int_equal(pass(t), 0);
		expect_others_drained(t);
		assert_int_equal(t->st.problems, 2);
		expect_logged("aaa.bbb.jsonl: is not a regular file");
		expect_logged("aaa.ccc.jsonl.claim-0000000000000001");
	}
	assert_true(tmp_exists(sub(t, "aaa.bbb.jsonl", p, sizeof p)));
}

static void a_fifo_in_the_spool_blocks_nothing(void **state)
{
	struct fx *t = *state;
	char p[512];
	assert_int_equal(mkfifo(sub(t, "aaa.bbb.jsonl", p, sizeof p), 0640), 0);
	assert_int_equal(
	    mkfifo(sub(t, "aaa.ccc.jsonl.claim-0000000000000001", p, sizeof p),
		   0640),
	    0);
	put(t, "comment.create", 1, 2);
	alarm(20); /* a blocked open would stall the whole run */
	pass(t);
	alarm(0);
	expect_others_drained(t);
	assert_int_equal(t->st.problems, 2);
}

static void
an_unreadable_work_file_is_reported_and_the_rest_drained(void **state)
{
	struct fx *t = *state;
	char p[512];
	put(t, "item.create", 1, 1);
	int dirfd = open(t->dir, O_RDONLY | O_DIRECTORY);
	char err[CLAIM_ERR_MAX];
	struct claim_work w;
	assert_int_equal(claim_take(dirfd, t->dir, "item.create", &w, err), 1);
	close(dirfd);
	assert_int_equal(chmod(sub(t, w.name, p, sizeof p), 0), 0);
	put(t, "comment.create", 1, 2);
	/* Root reads a mode 000 file all the same: not while the pass runs. */
	assert_int_equal(permission_checks(1), 0);
	pass(t);
	assert_int_equal(permission_checks(0), 0);
	expect_others_drained(t);
	assert_int_equal(t->st.problems, 1);
	expect_logged(w.name);
	assert_true(tmp_exists(p));
}

/* Truncates every work file of the spool from inside the handler. */
static enum engine_verdict truncating_one(void *ctx,
					  const struct engine_event *ev,
					  char why[ENGINE_WHY_MAX])
{
	const char *dir = ctx;
	char p[512];
	DIR *d = opendir(dir);
	struct dirent *e;
	(void)ev;
	(void)why;
	if (d == NULL)
		_exit(70);
	while ((e = readdir(d)) != NULL) {
		char type[EVENT_TYPE_MAX + 1];
		if (layout_parse(e->d_name, type) == LAYOUT_WORK &&
		    strcmp(type, "a.x") == 0 &&
		    truncate(tmp_path(dir, e->d_name, p, sizeof p), 0) != 0)
			_exit(71);
	}
	closedir(d);
	return ENGINE_HANDLED;
}

/*
 * Spools a.x and b.x events (with a.x padded past pad_mib MiB when set),
 * then a pass whose handler truncates a.x's work file at its first event:
 * the drain must neither fault nor stop before b.x.
 */
static void truncation_scenario(struct fx *t, size_t pad_mib)
{
	put(t, "a.x", 1, 1);
	if (pad_mib > 0) {
		char p[512];
		size_t chunk = 1u << 20;
		char *x = malloc(chunk);
		assert_non_null(x);
		memset(x, 'x', chunk);
		int fd =
		    open(sub(t, "a.x.jsonl", p, sizeof p), O_WRONLY | O_APPEND);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "{\"pad\":\"", 8), 8);
		for (size_t i = 0; i < pad_mib + 1; i++)
			assert_int_equal(write(fd, x, chunk), (ssize_t)chunk);
		assert_int_equal(write(fd, "\"}\n", 3), 3);
		close(fd);
		free(x);
	}
	put(t, "a.x", 2, 3);
	put(t, "b.x", 1, 2);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		child_defaults();
		struct engine e;
		struct engine_handler h;
		memset(&h, 0, sizeof h);
		h.ctx = t->dir;
		h.one = truncating_one;
		h.commit_every = 1;
		if (engine_open(&e, t->dir, &t->opt, &h) != 1)
			_exit(80);
		engine_pass(&e);
		engine_close(&e);
		_exit(0);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("the drain was killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	char p[512];
	assert_false(tmp_exists(sub(t, "b.x.jsonl", p, sizeof p)));
	size_t n = 0;
	DIR *d = opendir(t->dir);
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char type[EVENT_TYPE_MAX + 1];
		n += layout_parse(e->d_name, type) == LAYOUT_WORK &&
		     strcmp(type, "b.x") == 0;
	}
	closedir(d);
	assert_int_equal(n, 0);
}

/*
 * A work file truncated by someone else while a pass reads it: the drain
 * reads a copy, so it neither faults nor stops before the other types
 * (one bad file never blocks the rest).
 */
static void
a_work_file_truncated_during_a_pass_blocks_no_other_type(void **state)
{
	truncation_scenario(*state, 0);
}

/* The same past 64 MiB, where work files were once mapped, not read. */
static void
a_large_work_file_truncated_during_a_pass_blocks_nothing(void **state)
{
	truncation_scenario(*state, 65);
}

/*
 * A drain killed between the two removals of claim_finish leaves a
 * progress file without its work file: the next pass removes it (a
 * regular one; a symbolic link is left), so the spool empties.
 */
static void
a_progress_file_orphaned_by_a_kill_is_removed_next_pass(void **state)
{
	struct fx *t = *state;
	char p[512];
	char q[512];
	char l[512];
	put_raw(t->dir, "item.create.jsonl.claim-0000000000000001.state",
		"offset 10\n", 10);
	put_raw(t->dir, "item.create.jsonl.claim-0000000000000002.state.tmp",
		"offset 0\n", 9);
	assert_int_equal(
	    symlink("/etc/passwd",
		    sub(t, "item.create.jsonl.claim-0000000000000003.state", l,
			sizeof l)),
	    0);
	put(t, "item.create", 1, 1);
	assert_int_equal(pass(t), 0);
	const char *all[] = {L("item.create", 1)};
	expect_handed(t, all, N_OF(all));
	assert_false(tmp_exists(sub(
	    t, "item.create.jsonl.claim-0000000000000001.state", p, sizeof p)));
	assert_false(tmp_exists(sub(t,
				    "item.create.jsonl.claim-0000000000000002"
				    ".state.tmp",
				    q, sizeof q)));
	struct stat st;
	assert_int_equal(lstat(l, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
}

/* ---- many types, --limit ------------------------------------------------- */

static void six_hundred_and_fifty_types_are_all_drained(void **state)
{
	struct fx *t = *state;
	enum { TYPES = 650 };
	print_mode(t, 100);
	for (int i = 0; i < TYPES; i++) {
		char type[32];
		snprintf(type, sizeof type, "t%04d.create", i);
		put(t, type, 1, 1);
	}
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->st.handled, TYPES);
	assert_int_equal(t->r.committed, TYPES);
	for (int i = 0; i < TYPES; i++) {
		char type[32];
		snprintf(type, sizeof type, "t%04d.create", i);
		assert_string_equal(t->r.g[i].type, type);
		assert_memory_equal(t->r.g[i].out, L(type, 1), t->r.g[i].len);
	}
	assert_int_equal(work_left(t->dir), 0);
	assert_int_equal(tmp_entries(t->dir), 3);
}

static void limit_offers_at_most_that_many_events(void **state)
{
	struct fx *t = *state;
	t->opt.limit = 4;
	put(t, "a.x", 1, 6);
	put(t, "b.x", 1, 4);
	struct engine e;
	assert_int_equal(engine_open(&e, t->dir, &t->opt, &t->h), 1);
	assert_int_equal(engine_pass(&e), 0);
	assert_true(engine_done(&e));
	t->st = e.stats;
	engine_close(&e);
	const char *first[] = {L("a.x", 1), L("a.x", 2), L("a.x", 3),
			       L("a.x", 4)};
	expect_handed(t, first, N_OF(first));
	assert_int_equal(t->st.offered, 4);
	rec_reset(t);
	t->opt.limit = ENGINE_NO_LIMIT;
	assert_int_equal(pass(t), 0);
	const char *rest[] = {L("a.x", 5), L("a.x", 6), L("b.x", 1),
			      L("b.x", 2), L("b.x", 3), L("b.x", 4)};
	expect_handed(t, rest, N_OF(rest));
}

static void limit_counts_failures_and_quarantined_lines_too(void **state)
{
	struct fx *t = *state;
	t->opt.limit = 3;
	t->r.fail = "a.x-001";
	put(t, "a.x", 1, 1);
	put_raw(t->dir, "a.x.jsonl", NOT_JSON[0], strlen(NOT_JSON[0]));
	put(t, "a.x", 2, 4);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->st.offered, 3);
	expect_counts(&t->st, 3, 1, 1, 0, 1);
}

static void limit_in_batch_mode_cuts_the_batch(void **state)
{
	struct fx *t = *state;
	batch_mode(t);
	t->opt.limit = 2;
	put(t, "a.x", 1, 5);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.calls, 1);
	assert_int_equal(t->r.batch_sizes[0], 2);
	rec_reset(t);
	t->opt.limit = ENGINE_NO_LIMIT;
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.calls, 1);
	const char *rest[] = {L("a.x", 3), L("a.x", 4), L("a.x", 5)};
	expect_handed(t, rest, N_OF(rest));
}

static void type_globs_select_what_is_claimed_and_drained(void **state)
{
	struct fx *t = *state;
	char p[512];
	static const char *const globs[] = {"item.*", "task.create"};
	t->opt.types = globs;
	t->opt.n_types = 2;
	put(t, "item.create", 1, 1);
	put(t, "item.update", 1, 1);
	put(t, "task.create", 1, 1);
	put(t, "task.update", 1, 1);
	put(t, "hook.verify", 1, 1);
	assert_int_equal(pass(t), 0);
	const char *want[] = {L("item.create", 1), L("item.update", 1),
			      L("task.create", 1)};
	expect_handed(t, want, N_OF(want));
	/* The others are not even claimed. */
	tmp_expect_file(sub(t, "task.update.jsonl", p, sizeof p),
			L("task.update", 1));
	tmp_expect_file(sub(t, "hook.verify.jsonl", p, sizeof p),
			L("hook.verify", 1));
	assert_int_equal(work_left(t->dir), 0);
	assert_true(engine_selected(&t->opt, "item.x"));
	assert_false(engine_selected(&t->opt, "task.update"));
}

static void new_only_offers_no_event_that_failed_before(void **state)
{
	struct fx *t = *state;
	t->r.fail = "a.x-002";
	put(t, "a.x", 1, 3);
	assert_int_equal(pass(t), 0);
	rec_reset(t);
	t->r.fail = NULL;
	t->opt.new_only = 1;
	put(t, "a.x", 4, 4);
	assert_int_equal(pass(t), 0);
	const char *fresh[] = {L("a.x", 4)};
	expect_handed(t, fresh, 1);
	/* It waits, its count kept, for a full pass. */
	rec_reset(t);
	t->opt.new_only = 0;
	assert_int_equal(pass(t), 0);
	const char *again[] = {L("a.x", 2)};
	expect_handed(t, again, 1);
	assert_int_equal(t->r.g[0].attempts, 1);
	assert_int_equal(work_left(t->dir), 0);
}

static void new_only_still_offers_events_held_for_coalescing(void **state)
{
	struct fx *t = *state;
	char u[3][EV_LINE_MAX];
	char out[1024];
	t->opt.coalesce = 1;
	t->r.stop = "item.update-003";
	for (int i = 0; i < 3; i++)
		put_line(t, "item.update",
			 ev_line("item.update", i + 1, "7", u[i], sizeof u[i]));
	/* The latest stops the pass: the two before it are held. */
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->st.stopped, 1);
	assert_int_equal(handed_count(&t->r), 0);
	rec_reset(t);
	t->r.stop = NULL;
	t->opt.new_only = 1;
	assert_int_equal(pass(t), 0);
	const char *want[] = {with(
	    u[2], "\"coalesced\":[\"item.update-001\",\"item.update-002\"]",
	    out, sizeof out)};
	expect_handed(t, want, 1);
	assert_int_equal(work_left(t->dir), 0);
}

/* ---- batch mode ---------------------------------------------------------- */

static void batch_mode_makes_one_call_per_work_file(void **state)
{
	struct fx *t = *state;
	batch_mode(t);
	put(t, "a.x", 1, 2);
	int dirfd = open(t->dir, O_RDONLY | O_DIRECTORY);
	char err[CLAIM_ERR_MAX];
	struct claim_work w;
	assert_int_equal(claim_take(dirfd, t->dir, "a.x", &w, err), 1);
	close(dirfd);
	put(t, "a.x", 3, 5);
	put(t, "b.x", 1, 1);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.calls, 3);
	assert_int_equal(t->r.batch_sizes[0], 2);
	assert_int_equal(t->r.batch_sizes[1], 3);
	assert_int_equal(t->r.batch_sizes[2], 1);
	const char *all[] = {L("a.x", 1), L("a.x", 2), L("a.x", 3),
			     L("a.x", 4), L("a.x", 5), L("b.x", 1)};
	expect_handed(t, all, N_OF(all));
	assert_int_equal(t->r.g[0].call, 1);
	assert_int_equal(t->r.g[1].call, 1);
	assert_int_equal(t->r.g[2].call, 2);
	assert_int_equal(t->r.g[5].call, 3);
	expect_counts(&t->st, 6, 6, 0, 0, 0);
	assert_int_equal(work_left(t->dir), 0);
}

static void a_failed_batch_offers_all_its_events_again(void **state)
{
	struct fx *t = *state;
	batch_mode(t);
	t->r.fail = "a.x-002";
	put(t, "a.x", 1, 3);
	assert_int_equal(pass(t), 0);
	expect_counts(&t->st, 3, 0, 3, 0, 0);
	rec_reset(t);
	t->r.fail = NULL;
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.calls, 1);
	const char *all[] = {L("a.x", 1), L("a.x", 2), L("a.x", 3)};
	expect_handed(t, all, N_OF(all));
	for (size_t i = 0; i < t->r.n; i++)
		assert_int_equal(t->r.g[i].attempts, 1);
	assert_int_equal(work_left(t->dir), 0);
}

/* ---- coalescing ---------------------------------------------------------- */

static void coalescing_hands_over_the_latest_of_each_item_once(void **state)
{
	struct fx *t = *state;
	char u[6][EV_LINE_MAX];
	char c[3][EV_LINE_MAX];
	char out1[1024];
	char out2[1024];
	t->opt.coalesce = 1;
	/* item.update: items 7, 8, 7, 7; item.create: one delivered twice. */
	static const char *const items[] = {"7", "8", "7", "7"};
	for (int i = 0; i < 4; i++)
		put_line(
		    t, "item.update",
		    ev_line("item.update", i + 1, items[i], u[i], sizeof u[i]));
	/* Same params, other id: Podio delivering one event twice. */
	ev_line("item.create", 1, "5", c[0], sizeof c[0]);
	ev_line("item.create", 2, "5", c[1], sizeof c[1]);
	ev_line("item.create", 3, "6", c[2], sizeof c[2]);
	for (int i = 0; i < 3; i++)
		put_line(t, "item.create", c[i]);
	assert_int_equal(pass(t), 0);
	const char *want[] = {
	    with(c[1], "\"coalesced\":[\"item.create-001\"]", out1,
		 sizeof out1),
	    c[2],
	    u[1],
	    with(u[3],
		 "\"coalesced\":[\"item.update-001\",\"item.update-003\"]",
		 out2, sizeof out2),
	};
	expect_handed(t, want, N_OF(want));
	/* What was spooled is still given beside what is handed over. */
	assert_memory_equal(t->r.g[3].line, u[3], t->r.g[3].line_len);
	assert_int_equal(t->st.handled, 4);
	assert_int_equal(t->st.coalesced, 3);
	assert_int_equal(work_left(t->dir), 0);
	rec_reset(t);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 0);
}

/*
 * --exec commits after every event, but an event held back for a later
 * one of its object is not handed over and needs no save: 300 updates of
 * 3 items make 3 handler calls and a commit after each (and two at the
 * end), not 300 saves of a growing retry list.
 */
static void held_events_need_no_commit_of_their_own(void **state)
{
	struct fx *t = *state;
	char line[EV_LINE_MAX];
	static const char *const items[] = {"1", "2", "3"};
	t->opt.coalesce = 1;
	t->h.commit = rec_commit;
	t->h.commit_every = 1;
	for (int k = 1; k <= 300; k++)
		put_line(
		    t, "item.update",
		    ev_line("item.update", k, items[k % 3], line, sizeof line));
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 3);
	assert_int_equal(t->st.handled, 3);
	assert_int_equal(t->st.coalesced, 297);
	/* One per handler call, one when the file is done, one at the end. */
	assert_int_equal(t->r.commits, 5);
	assert_int_equal(work_left(t->dir), 0);
}

/*
 * With thousands of events held, progress (which lists every one) is
 * saved once per 1/1024 of them rather than after every event, and the
 * pass still hands over every item once and leaves nothing behind.
 */
static void long_retry_lists_are_saved_in_proportion(void **state)
{
	struct fx *t = *state;
	char line[EV_LINE_MAX];
	char item[16];
	enum { ITEMS = 2000, ROUNDS = 5 };
	t->opt.coalesce = 1;
	t->h.commit = rec_commit;
	t->h.commit_every = 1;
	for (int k = 0; k < ITEMS * ROUNDS; k++) {
		snprintf(item, sizeof item, "%d", k % ITEMS);
		put_line(t, "item.update",
			 ev_line("item.update", k, item, line, sizeof line));
	}
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, ITEMS);
	assert_int_equal(t->st.handled, ITEMS);
	assert_int_equal(t->st.coalesced, ITEMS * (ROUNDS - 1));
	/*
	 * 8000 held when the first item is handed over (a save per 7
	 * handed over), fewer as items are: about 660 saves, not 2000.
	 */
	if (t->r.commits > ITEMS / 2 || t->r.commits < 2)
		fail_msg("%zu commits for %d events handed over", t->r.commits,
			 ITEMS);
	assert_int_equal(work_left(t->dir), 0);
}

static void coalesced_events_share_their_latest_events_verdict(void **state)
{
	struct fx *t = *state;
	char u[3][EV_LINE_MAX];
	char b[3][1024];
	t->opt.coalesce = 1;
	t->opt.max_attempts = 2;
	t->r.fail = "item.update-003";
	for (int i = 0; i < 3; i++)
		put_line(t, "item.update",
			 ev_line("item.update", i + 1, "7", u[i], sizeof u[i]));
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 1);
	assert_int_equal(t->st.handled, 0);

	rec_reset(t);
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.n, 1);
	assert_int_equal(t->r.g[0].attempts, 1);
	/* All three failed twice: each is a dead letter of its own line. */
	const char *dead[] = {
	    with(u[0], "\"attempts\":2,\"last_error\":\"exit status 3\"", b[0],
		 sizeof b[0]),
	    with(u[1], "\"attempts\":2,\"last_error\":\"exit status 3\"", b[1],
		 sizeof b[1]),
	    with(u[2], "\"attempts\":2,\"last_error\":\"exit status 3\"", b[2],
		 sizeof b[2]),
	};
	expect_lines(t->dir, "failed/item.update.jsonl", dead, N_OF(dead));
	assert_int_equal(work_left(t->dir), 0);
}

static void coalescing_reaches_across_work_files_of_a_type(void **state)
{
	struct fx *t = *state;
	char u[3][EV_LINE_MAX];
	char out[1024];
	t->opt.coalesce = 1;
	put_line(t, "item.update",
		 ev_line("item.update", 1, "7", u[0], sizeof u[0]));
	int dirfd = open(t->dir, O_RDONLY | O_DIRECTORY);
	char err[CLAIM_ERR_MAX];
	struct claim_work w;
	assert_int_equal(claim_take(dirfd, t->dir, "item.update", &w, err), 1);
	close(dirfd);
	put_line(t, "item.update",
		 ev_line("item.update", 2, "8", u[1], sizeof u[1]));
	put_line(t, "item.update",
		 ev_line("item.update", 3, "7", u[2], sizeof u[2]));
	assert_int_equal(pass(t), 0);
	const char *want[] = {
	    u[1],
	    with(u[2], "\"coalesced\":[\"item.update-001\"]", out, sizeof out)};
	expect_handed(t, want, N_OF(want));
	assert_int_equal(work_left(t->dir), 0);
}

static void coalescing_in_batch_mode_hands_each_item_over_once(void **state)
{
	struct fx *t = *state;
	char u[4][EV_LINE_MAX];
	char out[1024];
	static const char *const items[] = {"7", "8", "7", "7"};
	batch_mode(t);
	t->opt.coalesce = 1;
	for (int i = 0; i < 4; i++)
		put_line(
		    t, "item.update",
		    ev_line("item.update", i + 1, items[i], u[i], sizeof u[i]));
	assert_int_equal(pass(t), 0);
	assert_int_equal(t->r.calls, 1);
	const char *want[] = {
	    u[1],
	    with(u[3],
		 "\"coalesced\":[\"item.update-001\",\"item.update-003\"]", out,
		 sizeof out)};
	expect_handed(t, want, N_OF(want));
	assert_int_equal(t->st.coalesced, 2);
	assert_int_equal(work_left(t->dir), 0);
}

static void coalescing_with_a_limit_loses_nothing(void **state)
{
	struct fx *t = *state;
	char u[5][EV_LINE_MAX];
	t->opt.coalesce = 1;
	t->opt.limit = 2;
	for (int i = 0; i < 5; i++)
		put_line(t, "item.update",
			 ev_line("item.update", i + 1, "7", u[i], sizeof u[i]));
	for (int i = 0; i < 4 && spool_left(t->dir) > 0; i++)
		pass(t);
	expect_drained(t->dir, "after the passes that follow");
	/* Every id was handed over, itself or among "coalesced". */
	for (int k = 1; k <= 5; k++) {
		char id[32];
		int seen = 0;
		snprintf(id, sizeof id, "\"item.update-%03d\"", k);
		for (size_t i = 0; i < t->r.n; i++)
			seen |= t->r.g[i].verdict == ENGINE_HANDLED &&
				strstr(t->r.g[i].out, id) != NULL;
		if (!seen)
			fail_msg("%s was lost", id);
	}
}

static void retry_failed_puts_back_only_the_selected_types(void **state)
{
	struct fx *t = *state;
	char p[512];
	char d1[1024];
	char d2[1024];
	static const char *const globs[] = {"item.*"};
	assert_int_equal(mkdir(sub(t, "failed", p, sizeof p), 0755), 0);
	with(L("item.create", 1), "\"attempts\":5,\"last_error\":\"x\"", d1,
	     sizeof d1);
	with(L("task.create", 1), "\"attempts\":5,\"last_error\":\"x\"", d2,
	     sizeof d2);
	put_raw(t->dir, "failed/item.create.jsonl", d1, strlen(d1));
	put_raw(t->dir, "failed/task.create.jsonl", d2, strlen(d2));
	t->opt.types = globs;
	t->opt.n_types = 1;
	t->opt.retry_failed = 1;
	assert_int_equal(pass(t), 0);
	const char *want[] = {L("item.create", 1)};
	expect_handed(t, want, 1);
	const char *kept[] = {d2};
	expect_lines(t->dir, "failed/task.create.jsonl", kept, 1);
	assert_int_equal(tmp_entries(sub(t, "failed", p, sizeof p)), 1);
}

/* ---- one engine at a time ------------------------------------------------ */

static void a_second_engine_gives_way_touching_nothing(void **state)
{
	struct fx *t = *state;
	int go[2];
	int ready[2];
	char p[512];
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		child_defaults();
		struct engine e;
		char c = 0;
		close(go[1]);
		close(ready[0]);
		if (engine_open(&e, t->dir, &t->opt, &t->h) != 1)
			_exit(1);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	close(go[0]);
	close(ready[1]);
	char c = 0;
	assert_int_equal(read(ready[0], &c, 1), 1);
	put(t, "item.create", 1, 1);
	struct engine e;
	assert_int_equal(engine_open(&e, t->dir, &t->opt, &t->h), 0);
	assert_true(tmp_exists(sub(t, "item.create.jsonl", p, sizeof p)));
	assert_int_equal(work_left(t->dir), 0);
	assert_int_equal(write(go[1], "g", 1), 1);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(go[1]);
	close(ready[0]);
	/* Once the first is gone, the next one runs. */
	assert_int_equal(pass(t), 0);
	const char *want[] = {L("item.create", 1)};
	expect_handed(t, want, 1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(print_mode_hands_over_every_event_oldest_first_byte_for_byte),
	    T(an_older_work_file_is_drained_before_a_newer_one),
	    T(an_event_spooled_during_a_pass_waits_for_the_next_one),
	    T(an_empty_spool_file_is_left_for_the_writers),
	    T(failed_and_bad_take_the_spool_mode_and_files_the_file_mode),
	    T(a_failing_event_is_retried_with_attempts_then_dead_lettered),
	    T(max_attempts_one_dead_letters_at_the_first_failure),
	    T(last_error_is_one_line_of_valid_utf8_in_a_json_string),
	    T(a_reason_that_is_not_utf8_does_not_stop_progress),
	    T(a_dead_letter_after_a_torn_one_starts_a_new_line),
	    T(a_dead_letter_carries_one_attempts_and_one_last_error),
	    T(retry_failed_offers_dead_letters_again_byte_for_byte),
	    T(retry_failed_counts_attempts_afresh),
	    T(retry_failed_quarantines_what_it_cannot_put_back_never_dropping_it),
	    T(retry_failed_puts_back_a_line_with_hundreds_of_keys),
	    T(retry_failed_leaves_a_symlinked_dead_letter_file_alone),
	    T(one_mode_quarantines_torn_and_invalid_lines_once),
	    T(print_mode_quarantines_torn_and_invalid_lines_once),
	    T(batch_mode_quarantines_torn_and_invalid_lines_once),
	    T(batch_mode_quarantines_a_line_jansson_refuses_once_when_the_batch_fails),
	    T(a_commit_that_fails_saves_no_progress),
	    T(a_first_commit_that_fails_leaves_every_event_to_offer_again),
	    T(stop_leaves_the_event_and_later_ones_pending_with_attempts_unchanged),
	    T(stop_on_an_event_offered_again_keeps_its_attempts),
	    T(batch_stop_hands_nothing_over_and_counts_nothing),
	    T(a_stopped_batch_quarantines_its_bad_lines_once_later),
	    T(the_stop_flag_ends_a_pass_between_events),
	    T(prepare_adds_to_what_is_handed_over_not_to_what_is_kept),
	    T(a_failing_prepare_counts_an_attempt_and_dead_letters_the_spooled_line),
	    T(a_prepare_that_stops_leaves_the_event_pending),
	    T(in_batch_mode_a_failing_prepare_fails_only_its_event),
	    T(a_drain_killed_after_any_event_loses_nothing),
	    T(a_drain_killed_at_random_moments_loses_nothing),
	    T(a_retry_failed_killed_at_random_moments_loses_no_dead_letter),
	    T(a_symlink_as_a_type_file_is_reported_and_never_followed),
	    T(a_symlink_as_a_work_file_is_reported_and_never_followed),
	    T(a_symlink_as_progress_leaves_its_work_file_alone),
	    T(a_symlink_as_progress_tmp_is_never_written_through),
	    T(a_symlink_as_failed_is_never_written_through_and_nothing_is_lost),
	    T(a_symlink_as_bad_is_never_written_through_and_nothing_is_lost),
	    T(failed_and_bad_that_are_not_folders_are_reported_and_nothing_is_lost),
	    T(a_symlink_in_failed_or_bad_is_never_written_through),
	    T(a_symlink_as_the_drain_lock_is_never_followed),
	    T(a_directory_named_like_a_type_file_blocks_no_other_type),
	    T(a_fifo_in_the_spool_blocks_nothing),
	    T(an_unreadable_work_file_is_reported_and_the_rest_drained),
	    T(a_work_file_truncated_during_a_pass_blocks_no_other_type),
	    T(a_large_work_file_truncated_during_a_pass_blocks_nothing),
	    T(a_progress_file_orphaned_by_a_kill_is_removed_next_pass),
	    T(six_hundred_and_fifty_types_are_all_drained),
	    T(limit_offers_at_most_that_many_events),
	    T(limit_counts_failures_and_quarantined_lines_too),
	    T(limit_in_batch_mode_cuts_the_batch),
	    T(type_globs_select_what_is_claimed_and_drained),
	    T(new_only_offers_no_event_that_failed_before),
	    T(new_only_still_offers_events_held_for_coalescing),
	    T(batch_mode_makes_one_call_per_work_file),
	    T(a_failed_batch_offers_all_its_events_again),
	    T(coalescing_hands_over_the_latest_of_each_item_once),
	    T(coalesced_events_share_their_latest_events_verdict),
	    T(held_events_need_no_commit_of_their_own),
	    T(long_retry_lists_are_saved_in_proportion),
	    T(coalescing_reaches_across_work_files_of_a_type),
	    T(coalescing_in_batch_mode_hands_each_item_over_once),
	    T(coalescing_with_a_limit_loses_nothing),
	    T(retry_failed_puts_back_only_the_selected_types),
	    T(a_second_engine_gives_way_touching_nothing),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(logbuf);
	return rc;
}
