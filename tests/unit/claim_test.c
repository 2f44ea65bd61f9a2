/*
 * claim_test.c - SPEC sections 5 and 10, the consumer side: claiming a
 * spool file (rename, never over a work file, then wait out a writer that
 * locked it before the rename), work files oldest claim first, progress
 * kept beside a work file in {work}.state (read as "offset 0" when it is
 * damaged, refused when it is a symbolic link), finishing a work file.
 * Nothing is claimed, read or written through a symbolic link or as a
 * file of another kind.  (The names themselves: layout_test.c.)
 *
 * Built with -Wl,--wrap=clock_gettime: a test may freeze the realtime
 * clock that claim stamps come from, to make two claims collide.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "claim.h"
#include "spool.h"

/* ---- a clock that can stand still ------------------------------------- */

int __real_clock_gettime(clockid_t clk, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clk, struct timespec *ts);

/* When frozen.tv_sec is set, CLOCK_REALTIME reads as frozen. */
static struct timespec frozen;

int __wrap_clock_gettime(clockid_t clk, struct timespec *ts)
{
	if (clk == CLOCK_REALTIME && frozen.tv_sec != 0) {
		*ts = frozen;
		return 0;
	}
	return __real_clock_gettime(clk, ts);
}

/* ---- fixture ----------------------------------------------------------- */

struct fx {
	char dir[64];
	char other[64]; /* outside the spool: where planted links point */
	int dirfd;
	struct spool sp;
	char err[CLAIM_ERR_MAX];
};

static int setup(void **state)
{
	struct fx *t = calloc(1, sizeof *t);
	if (t == NULL)
		return -1;
	if (tmpdir_make(t->dir, sizeof t->dir, "claim_test") != 0 ||
	    tmpdir_make(t->other, sizeof t->other, "claim_test_other") != 0) {
		free(t);
		return -1;
	}
	t->dirfd = open(t->dir, O_RDONLY | O_DIRECTORY);
	if (t->dirfd < 0)
		return -1;
	frozen.tv_sec = 0;
	t->sp.dir = t->dir;
	t->sp.sync = 0;
	t->sp.file_mode = 0640;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct fx *t = *state;
	frozen.tv_sec = 0;
	close(t->dirfd);
	int rc = tmpdir_remove(t->dir) | tmpdir_remove(t->other);
	free(t);
	return rc;
}

/* ---- helpers ----------------------------------------------------------- */

static const char L1[] =
    "{\"id\":\"1\",\"received\":\"2026-11-27T05:48:19.123456Z\","
    "\"type\":\"item.create\",\"remote_addr\":\"10.0.0.1\","
    "\"params\":{\"type\":\"item.create\",\"item_id\":\"7\"}}\n";
static const char L2[] = "{\"id\":\"2\",\"x\":\"\xc3\xa9\"}\n";
static const char L3[] = "{\"id\":\"3\"}\n";

static const char *path_in(const struct fx *t, const char *name, char *out,
			   size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", t->dir, name);
	assert_true(n > 0 && (size_t)n < cap);
	return out;
}

static int append(struct fx *t, const char *type, const char *line)
{
	memset(t->err, 0, sizeof t->err);
	int rc = spool_append(&t->sp, type, line, strlen(line), t->err);
	if (rc != 0)
		fail_msg("spool_append: %s", t->err);
	return rc;
}

#define write_file  tmp_write
#define expect_file tmp_expect_file
#define exists	    tmp_exists
#define entries_in  tmp_entries

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static struct claim_work work_named(const char *name)
{
	struct claim_work w;
	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "%s", name);
	assert_int_equal(layout_parse(name, w.type), LAYOUT_WORK);
	return w;
}

/* claim_take in the fixture's spool. */
static int take(struct fx *t, const char *type, struct claim_work *w)
{
	memset(t->err, 0, sizeof t->err);
	return claim_take(t->dirfd, t->dir, type, w, t->err);
}

/* The size claim_state_load is told the work file has. */
#define WORK_SIZE 10000

/* claim_state_load of a work file WORK_SIZE bytes long. */
static int load(struct fx *t, const struct claim_work *w,
		struct claim_state *st)
{
	memset(t->err, 0, sizeof t->err);
	return claim_state_load(t->dirfd, t->dir, w, WORK_SIZE, st, t->err);
}

static int save(struct fx *t, const struct claim_work *w,
		const struct claim_state *st, int durable)
{
	memset(t->err, 0, sizeof t->err);
	return claim_state_save(t->dirfd, t->dir, w, st, durable, t->err);
}

/* ---- claim_take -------------------------------------------------------- */

static void take_absent_file_is_nothing(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	assert_int_equal(take(t, "item.create", &w), 0);
	assert_int_equal(entries_in(t->dir), 0);
}

static void take_empty_file_is_nothing(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	write_file(p, "", 0);
	assert_int_equal(take(t, "item.create", &w), 0);
	/* Left where writers find it. */
	assert_true(exists(p));
	assert_int_equal(entries_in(t->dir), 1);
}

static void take_renames_to_a_work_file_with_exactly_the_bytes(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[256];
	char wp[512];
	char type[EVENT_TYPE_MAX + 1];
	append(t, "item.create", L1);
	append(t, "item.create", L2);
	path_in(t, "item.create.jsonl", p, sizeof p);
	assert_int_equal(take(t, "item.create", &w), 1);
	assert_false(exists(p));
	assert_string_equal(w.type, "item.create");
	assert_int_equal(strncmp(w.name, "item.create" LAYOUT_CLAIM_MARK,
				 strlen("item.create" LAYOUT_CLAIM_MARK)),
			 0);
	const char *stamp = w.name + strlen("item.create" LAYOUT_CLAIM_MARK);
	assert_true(strlen(stamp) > 0);
	assert_int_equal(strspn(stamp, "0123456789"), strlen(stamp));
	assert_int_equal(layout_parse(w.name, type), LAYOUT_WORK);
	assert_string_equal(type, "item.create");
	path_in(t, w.name, wp, sizeof wp);
	char want[1024];
	snprintf(want, sizeof want, "%s%s", L1, L2);
	expect_file(wp, want);
	assert_int_equal(entries_in(t->dir), 1);
}

static void take_keeps_a_torn_tail_as_it_is(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[256];
	char wp[512];
	static const char torn[] = "{\"id\":\"1\"}\n{\"id\":\"2\",\"tr";
	path_in(t, "item.update.jsonl", p, sizeof p);
	write_file(p, torn, strlen(torn));
	assert_int_equal(take(t, "item.update", &w), 1);
	expect_file(path_in(t, w.name, wp, sizeof wp), torn);
}

static void take_leaves_other_types_alone(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[256];
	append(t, "item.create", L1);
	append(t, "comment.create", L3);
	assert_int_equal(take(t, "item.create", &w), 1);
	expect_file(path_in(t, "comment.create.jsonl", p, sizeof p), L3);
}

static void writers_after_a_claim_go_to_a_fresh_file(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[256];
	char wp[512];
	append(t, "item.create", L1);
	assert_int_equal(take(t, "item.create", &w), 1);
	append(t, "item.create", L2);
	expect_file(path_in(t, w.name, wp, sizeof wp), L1);
	expect_file(path_in(t, "item.create.jsonl", p, sizeof p), L2);
	/* And the fresh file is claimed under another name. */
	struct claim_work w2;
	assert_int_equal(take(t, "item.create", &w2), 1);
	assert_string_not_equal(w.name, w2.name);
	expect_file(path_in(t, w2.name, wp, sizeof wp), L2);
	expect_file(path_in(t, w.name, wp, sizeof wp), L1);
}

/*
 * A writer holds the lock on {type}.jsonl (it opened the file before the
 * rename and is mid-append): claim_take renames at once but must not
 * return before the writer has written and released, and the work file
 * then holds the writer's line.
 */
static void take_waits_for_a_writer_holding_the_lock(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[256];
	char wp[512];
	int ready[2];
	int done[2];
	append(t, "item.create", L1);
	path_in(t, "item.create.jsonl", p, sizeof p);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(done), 0);
	pid_t writer = fork();
	assert_true(writer >= 0);
	if (writer == 0) {
		close(ready[0]);
		close(done[0]);
		int fd = open(p, O_WRONLY | O_APPEND);
		if (fd < 0 || flock(fd, LOCK_EX) != 0)
			_exit(2);
		if (write(ready[1], "L", 1) != 1)
			_exit(2);
		sleep_ms(200);
		long long at = now_ms();
		if (write(fd, L2, strlen(L2)) != (ssize_t)strlen(L2))
			_exit(2);
		/* Tell when the line went in, then release the lock. */
		if (write(done[1], &at, sizeof at) != (ssize_t)sizeof at)
			_exit(2);
		close(fd);
		_exit(0);
	}
	close(ready[1]);
	close(done[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	long long start = now_ms();
	int rc = take(t, "item.create", &w);
	long long returned = now_ms();
	/* Read the work file before anything else can change it. */
	char want[1024];
	snprintf(want, sizeof want, "%s%s", L1, L2);
	path_in(t, w.name, wp, sizeof wp);
	char got[1024];
	int fd = open(wp, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, got, sizeof got);
	close(fd);
	long long wrote_at = 0;
	assert_int_equal(read(done[0], &wrote_at, sizeof wrote_at),
			 (ssize_t)sizeof wrote_at);
	int status = 0;
	assert_int_equal(waitpid(writer, &status, 0), writer);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(ready[0]);
	close(done[0]);
	if (rc != 1)
		fail_msg("claim_take returned %d: %s", rc, t->err);
	if (returned < wrote_at)
		fail_msg("claim_take returned %lld ms before the writer wrote",
			 wrote_at - returned);
	if (returned - start < 150)
		fail_msg("claim_take returned after %lld ms; the writer held "
			 "the lock for 200 ms",
			 returned - start);
	if (n != (ssize_t)strlen(want) || memcmp(got, want, (size_t)n) != 0)
		fail_msg("work file holds\n%.*s\nwant\n%s", (int)n, got, want);
	/* The writer's line did not land in a new {type}.jsonl. */
	assert_false(exists(p));
}

/* ---- claim_take: what is not a regular file is left alone --------------- */

static void take_leaves_a_symlinked_pending_file_alone(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	struct tmp_snap before;
	char target[256];
	char p[256];
	tmp_path(t->other, "passwd", target, sizeof target);
	write_file(target, L1, strlen(L1));
	tmp_snap_take(target, &before);
	assert_int_equal(
	    symlink(target, path_in(t, "item.create.jsonl", p, sizeof p)), 0);
	errno = 0;
	assert_int_equal(take(t, "item.create", &w), -1);
	assert_int_equal(errno, ELOOP);
	assert_non_null(strstr(t->err, "item.create.jsonl"));
	assert_non_null(strstr(t->err, "symbolic link"));
	assert_true(tmp_is_link(p));
	assert_int_equal(entries_in(t->dir), 1);
	tmp_snap_same(target, &before);
}

static void take_leaves_a_pending_directory_alone(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[256];
	char inner[512];
	assert_int_equal(mkdir(path_in(t, "aaa.bbb.jsonl", p, sizeof p), 0750),
			 0);
	tmp_path(p, "x", inner, sizeof inner);
	write_file(inner, L3, strlen(L3));
	errno = 0;
	assert_int_equal(take(t, "aaa.bbb", &w), -1);
	assert_int_equal(errno, EFTYPE_LAYOUT);
	assert_non_null(strstr(t->err, "aaa.bbb.jsonl"));
	assert_int_equal(entries_in(t->dir), 1);
	expect_file(inner, L3);
	/* Another type beside it is claimed as usual. */
	append(t, "item.create", L1);
	assert_int_equal(take(t, "item.create", &w), 1);
}

static void take_leaves_a_pending_fifo_alone_without_blocking(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[256];
	assert_int_equal(
	    mkfifo(path_in(t, "item.create.jsonl", p, sizeof p), 0640), 0);
	alarm(10); /* a hang would otherwise stall the whole run */
	int rc = take(t, "item.create", &w);
	alarm(0);
	assert_int_equal(rc, -1);
	assert_int_equal(errno, EFTYPE_LAYOUT);
	assert_int_equal(entries_in(t->dir), 1);
}

/* ---- claim_take: never over an existing work file ------------------------ */

/* The clock reads 1764222499.123456 s: stamps are 1764222499123456. */
#define FROZEN_STAMP "1764222499123456"

static void freeze_clock(void)
{
	frozen.tv_sec = 1764222499;
	frozen.tv_nsec = 123456789;
}

static void take_never_replaces_an_existing_work_file(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[512];
	static const char *taken[] = {
	    "item.create.jsonl.claim-" FROZEN_STAMP,
	    "item.create.jsonl.claim-" FROZEN_STAMP "-1",
	};
	struct tmp_snap before[2];
	for (size_t i = 0; i < 2; i++) {
		write_file(path_in(t, taken[i], p, sizeof p), L2, strlen(L2));
		tmp_snap_take(p, &before[i]);
	}
	freeze_clock();
	append(t, "item.create", L1);
	assert_int_equal(take(t, "item.create", &w), 1);
	assert_string_equal(w.name,
			    "item.create.jsonl.claim-" FROZEN_STAMP "-2");
	expect_file(path_in(t, w.name, p, sizeof p), L1);
	for (size_t i = 0; i < 2; i++)
		tmp_snap_same(path_in(t, taken[i], p, sizeof p), &before[i]);
	/* Listed oldest first: the base stamp, then -1, then -2. */
	struct claim_work *ws = NULL;
	assert_int_equal(claim_list(t->dirfd, t->dir, &ws, t->err), 3);
	assert_string_equal(ws[0].name, taken[0]);
	assert_string_equal(ws[1].name, taken[1]);
	assert_string_equal(ws[2].name, w.name);
	free(ws);
}

static void take_gives_up_rather_than_replace_a_work_file(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[512];
	char name[LAYOUT_NAME_MAX];
	struct tmp_snap before[16];
	/* Every name claim_take would try, 16 of them, is taken. */
	for (int i = 0; i < 16; i++) {
		if (i == 0)
			snprintf(name, sizeof name,
				 "item.create.jsonl.claim-" FROZEN_STAMP);
		else
			snprintf(name, sizeof name,
				 "item.create.jsonl.claim-" FROZEN_STAMP "-%d",
				 i);
		write_file(path_in(t, name, p, sizeof p), L2, strlen(L2));
		tmp_snap_take(p, &before[i]);
	}
	freeze_clock();
	append(t, "item.create", L1);
	assert_int_equal(take(t, "item.create", &w), -1);
	assert_non_null(strstr(t->err, "item.create.jsonl"));
	/* The pending file stays where writers and the next run find it. */
	expect_file(path_in(t, "item.create.jsonl", p, sizeof p), L1);
	assert_int_equal(entries_in(t->dir), 17);
	for (int i = 0; i < 16; i++) {
		if (i == 0)
			snprintf(name, sizeof name,
				 "item.create.jsonl.claim-" FROZEN_STAMP);
		else
			snprintf(name, sizeof name,
				 "item.create.jsonl.claim-" FROZEN_STAMP "-%d",
				 i);
		tmp_snap_same(path_in(t, name, p, sizeof p), &before[i]);
	}
	/* The clock moves on: the next claim succeeds. */
	frozen.tv_sec = 0;
	assert_int_equal(take(t, "item.create", &w), 1);
	expect_file(path_in(t, w.name, p, sizeof p), L1);
}

/*
 * claim_finish removes the work file, then its progress: a crash between
 * the two leaves a progress file alone.  A later claim under the same
 * name (the clock stepped back) must not inherit it, or events would be
 * skipped as if offered.
 */
static void take_never_pairs_a_work_file_with_progress_left_behind(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	struct claim_state st;
	char p[512];
	static const char orphan[] =
	    "item.create.jsonl.claim-" FROZEN_STAMP ".state";
	write_file(path_in(t, orphan, p, sizeof p), "offset 10\n", 10);
	freeze_clock();
	append(t, "item.create", L1);
	assert_int_equal(take(t, "item.create", &w), 1);
	assert_string_not_equal(w.name,
				"item.create.jsonl.claim-" FROZEN_STAMP);
	memset(t->err, 0, sizeof t->err);
	assert_int_equal(claim_state_load(t->dirfd, t->dir, &w,
					  (off_t)strlen(L1), &st, t->err),
			 0);
	assert_int_equal(st.offset, 0);
	claim_state_free(&st);
	expect_file(p, "offset 10\n");
}

/* ---- claim_list -------------------------------------------------------- */

static void list_orders_work_files_by_claim_time(void **state)
{
	struct fx *t = *state;
	char p[512];
	/* Made by hand: stamps out of name order. */
	static const char *files[] = {
	    "b.x.jsonl.claim-0000000000000002",
	    "a.x.jsonl.claim-0000000000000003",
	    "c.x.jsonl.claim-0000000000000001",
	    "a.x.jsonl.claim-0000000000000002",
	    /* not work files */
	    "a.x.jsonl",
	    "c.x.jsonl.claim-0000000000000001.state",
	    "c.x.jsonl.claim-0000000000000001.state.tmp",
	    ".drain.lock",
	    ".a.x.jsonl.claim-0000000000000000",
	    "Bad.x.jsonl.claim-0000000000000000",
	    "junk.txt",
	};
	static const char *want[] = {
	    "c.x.jsonl.claim-0000000000000001",
	    "a.x.jsonl.claim-0000000000000002",
	    "b.x.jsonl.claim-0000000000000002",
	    "a.x.jsonl.claim-0000000000000003",
	};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		write_file(path_in(t, files[i], p, sizeof p), L3, strlen(L3));
	char sub[512];
	assert_int_equal(mkdir(path_in(t, "failed", sub, sizeof sub), 0750), 0);
	struct claim_work *ws = NULL;
	ssize_t n = claim_list(t->dirfd, t->dir, &ws, t->err);
	assert_int_equal(n, (ssize_t)(sizeof want / sizeof want[0]));
	for (ssize_t i = 0; i < n; i++) {
		if (strcmp(ws[i].name, want[i]) != 0)
			fail_msg("claim_list[%zd] = %s, want %s", i, ws[i].name,
				 want[i]);
		assert_int_equal(
		    strncmp(ws[i].name, ws[i].type, strlen(ws[i].type)), 0);
		assert_int_equal(ws[i].type[3], '\0');
	}
	free(ws);
}

static void list_follows_successive_claims(void **state)
{
	struct fx *t = *state;
	struct claim_work taken[6];
	static const char *types[] = {"zeta.create",  "alpha.create",
				      "zeta.create",  "mid.update",
				      "alpha.create", "zeta.create"};
	for (size_t i = 0; i < 6; i++) {
		append(t, types[i], L3);
		assert_int_equal(take(t, types[i], &taken[i]), 1);
		sleep_ms(2); /* distinct microsecond stamps */
	}
	struct claim_work *ws = NULL;
	ssize_t n = claim_list(t->dirfd, t->dir, &ws, t->err);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < 6; i++) {
		if (strcmp(ws[i].name, taken[i].name) != 0)
			fail_msg("claim_list[%zu] = %s, claimed as %s", i,
				 ws[i].name, taken[i].name);
		assert_string_equal(ws[i].type, types[i]);
	}
	free(ws);
}

static void list_of_an_empty_or_unreadable_dir(void **state)
{
	struct fx *t = *state;
	struct claim_work *ws = NULL;
	assert_int_equal(claim_list(t->dirfd, t->dir, &ws, t->err), 0);
	free(ws);
	ws = NULL;
	/* A descriptor that is not open: the error names the directory. */
	assert_int_equal(claim_list(-1, "/spool/that/is/gone", &ws, t->err),
			 -1);
	assert_non_null(strstr(t->err, "/spool/that/is/gone"));
	assert_null(ws);
}

/* ---- state ------------------------------------------------------------- */

/*
 * Thousands of entries in any order, then dropping a scattered half in
 * one call (with offsets that have no entry, and one twice): the list
 * stays sorted, without the dropped ones, each last_error still its own.
 */
static void many_retries_and_one_drop_of_many(void **state)
{
	(void)state;
	enum { N = 5000 };
	struct claim_state st;
	off_t drop[N / 2 + 3];
	size_t nd = 0;
	char e[32];
	memset(&st, 0, sizeof st);
	st.offset = (off_t)N * 100;
	/* 0, 100, ... inserted in a scrambled order (7919 is prime). */
	for (size_t i = 0; i < N; i++) {
		off_t off = (off_t)((i * 7919) % N) * 100;
		snprintf(e, sizeof e, "e%lld", (long long)off);
		assert_int_equal(claim_state_retry(&st, off, 1, e), 0);
	}
	assert_int_equal(st.n_retry, N);
	for (size_t i = 0; i < N; i += 2)
		drop[nd++] = (off_t)(N - 2 - i) * 100; /* descending */
	drop[nd++] = 50;			       /* no entry there */
	drop[nd++] = (off_t)N * 100;		       /* past the last */
	drop[nd++] = 200;			       /* twice */
	claim_state_drop_all(&st, drop, nd);
	assert_int_equal(st.n_retry, N / 2);
	for (size_t i = 0; i < st.n_retry; i++) {
		off_t want = (off_t)(2 * i + 1) * 100;
		assert_int_equal(st.retry[i].off, want);
		snprintf(e, sizeof e, "e%lld", (long long)want);
		assert_string_equal(st.retry[i].last_error, e);
		assert_int_equal(claim_state_find(&st, want), (ssize_t)i);
		assert_int_equal(claim_state_find(&st, want - 100), -1);
	}
	/* Nothing to drop, or an empty list: nothing changes. */
	claim_state_drop_all(&st, drop, 0);
	assert_int_equal(st.n_retry, N / 2);
	claim_state_free(&st);
	claim_state_drop_all(&st, drop, nd);
	assert_int_equal(st.n_retry, 0);
}

static void state_round_trip_with_retries(void **state)
{
	struct fx *t = *state;
	struct claim_work w = work_named("item.create.jsonl.claim-42");
	struct claim_state st;
	char p[512];
	static const char *e1 = "exit status 3";
	static const char *e2 = "say \"hi\"\nsecond line\ttab \\ backslash";
	static const char *e3 = "caf\xc3\xa9 \xe2\x80\xa8 and \x01 control";
	memset(&st, 0, sizeof st);
	st.offset = 1234;
	/* Out of order: the list keeps ascending offsets. */
	assert_int_equal(claim_state_retry(&st, 500, 2, e3), 0);
	assert_int_equal(claim_state_retry(&st, 0, 1, e1), 0);
	assert_int_equal(claim_state_retry(&st, 100, 4, "old"), 0);
	assert_int_equal(claim_state_retry(&st, 100, 4, e2), 0); /* update */
	assert_int_equal(st.n_retry, 3);
	assert_int_equal(save(t, &w, &st, 1), 0);
	path_in(t, "item.create.jsonl.claim-42.state", p, sizeof p);
	assert_true(exists(p));
	/* Replaced atomically: no temporary left behind. */
	assert_int_equal(entries_in(t->dir), 1);

	struct claim_state got;
	memset(&got, 0x5a, sizeof got);
	assert_int_equal(load(t, &w, &got), 0);
	assert_int_equal(got.offset, 1234);
	assert_int_equal(got.n_retry, 3);
	assert_int_equal(got.retry[0].off, 0);
	assert_int_equal(got.retry[0].attempts, 1);
	assert_string_equal(got.retry[0].last_error, e1);
	assert_int_equal(got.retry[1].off, 100);
	assert_int_equal(got.retry[1].attempts, 4);
	assert_string_equal(got.retry[1].last_error, e2);
	assert_int_equal(got.retry[2].off, 500);
	assert_int_equal(got.retry[2].attempts, 2);
	assert_string_equal(got.retry[2].last_error, e3);

	/* Dropping one and saving again replaces the file. */
	claim_state_drop(&got, 1);
	assert_int_equal(got.n_retry, 2);
	got.offset = 2000;
	assert_int_equal(save(t, &w, &got, 0), 0);
	struct claim_state again;
	assert_int_equal(load(t, &w, &again), 0);
	assert_int_equal(again.offset, 2000);
	assert_int_equal(again.n_retry, 2);
	assert_int_equal(again.retry[0].off, 0);
	assert_int_equal(again.retry[1].off, 500);
	assert_string_equal(again.retry[1].last_error, e3);
	assert_int_equal(entries_in(t->dir), 1);
	claim_state_free(&again);
	claim_state_free(&got);
	claim_state_free(&st);
	assert_int_equal(st.n_retry, 0);
	assert_null(st.retry);
}

/*
 * Any last_error can be saved and read back: text that is not valid
 * UTF-8 (a handler's raw output) is kept scrubbed, never refused.
 */
static void state_keeps_a_last_error_that_is_not_utf8_scrubbed(void **state)
{
	struct fx *t = *state;
	struct claim_work w = work_named("item.create.jsonl.claim-42");
	struct claim_state st;
	struct claim_state got;
	memset(&st, 0, sizeof st);
	st.offset = 77;
	assert_int_equal(claim_state_retry(&st, 10, 1, "caf\xe9 \xff\xc3"), 0);
	assert_int_equal(save(t, &w, &st, 0), 0);
	assert_int_equal(load(t, &w, &got), 0);
	assert_int_equal(got.offset, 77);
	assert_int_equal(got.n_retry, 1);
	assert_string_equal(got.retry[0].last_error, "caf? ??");
	claim_state_free(&got);
	claim_state_free(&st);
}

static void state_file_format(void **state)
{
	struct fx *t = *state;
	struct claim_work w = work_named("item.create.jsonl.claim-42");
	struct claim_state st;
	char p[512];
	memset(&st, 0, sizeof st);
	st.offset = 77;
	assert_int_equal(claim_state_retry(&st, 10, 3, "a \"b\"\n"), 0);
	assert_int_equal(save(t, &w, &st, 0), 0);
	expect_file(path_in(t, "item.create.jsonl.claim-42.state", p, sizeof p),
		    "offset 77\nretry 10 3 \"a \\\"b\\\"\\n\"\n");
	claim_state_free(&st);
}

static void state_missing_is_offset_zero(void **state)
{
	struct fx *t = *state;
	struct claim_work w = work_named("item.create.jsonl.claim-42");
	struct claim_state st;
	memset(&st, 0x5a, sizeof st);
	assert_int_equal(load(t, &w, &st), 0);
	assert_int_equal(st.offset, 0);
	assert_int_equal(st.n_retry, 0);
	claim_state_free(&st);
}

static void state_damaged_is_offset_zero(void **state)
{
	struct fx *t = *state;
	struct claim_work w = work_named("item.create.jsonl.claim-42");
	char p[512];
	static const struct {
		const char *why;
		const char *text;
		size_t len; /* 0: strlen */
	} bad[] = {
	    {"empty", "", 0},
	    {"garbage", "garbage\n", 0},
	    {"binary", "\x00\x01\x02offset 5\n", 12},
	    {"offset without newline", "offset 12", 0},
	    {"offset with junk", "offset 12abc\n", 0},
	    {"offset with a space before newline", "offset 12 \n", 0},
	    {"negative offset", "offset -5\n", 0},
	    {"offset out of range", "offset 99999999999999999999999\n", 0},
	    {"no offset line", "retry 0 1 \"x\"\n", 0},
	    {"retry line truncated", "offset 100\nretry 10 1 \"x\"", 0},
	    {"retry line cut in its JSON", "offset 100\nretry 10 1 \"x", 0},
	    {"retry offset == offset", "offset 100\nretry 100 1 \"x\"\n", 0},
	    {"retry offset > offset", "offset 100\nretry 150 1 \"x\"\n", 0},
	    {"retry offset negative", "offset 100\nretry -1 1 \"x\"\n", 0},
	    {"offset past the work file's end", "offset 10001\n", 0},
	    {"retry attempts too many", "offset 100\nretry 10 1000001 \"x\"\n",
	     0},
	    {"retry offsets repeated",
	     "offset 100\nretry 10 1 \"x\"\nretry 10 2 \"y\"\n", 0},
	    {"retry error not JSON", "offset 100\nretry 10 1 x\n", 0},
	    {"retry error not a string", "offset 100\nretry 10 1 5\n", 0},
	    {"retry fields missing", "offset 100\nretry 10\n", 0},
	    {"unknown line", "offset 100\nretry 10 1 \"x\"\nfoo\n", 0},
	    {"second good, then garbage",
	     "offset 100\nretry 10 1 \"x\"\nretry 20 2 \"y\"\n\n", 0},
	};
	path_in(t, "item.create.jsonl.claim-42.state", p, sizeof p);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct claim_state st;
		size_t n = bad[i].len != 0 ? bad[i].len : strlen(bad[i].text);
		write_file(p, bad[i].text, n);
		memset(&st, 0x5a, sizeof st);
		assert_int_equal(load(t, &w, &st), 0);
		if (st.offset != 0 || st.n_retry != 0)
			fail_msg("%s: loaded offset %lld with %zu retries, "
				 "want offset 0 and none",
				 bad[i].why, (long long)st.offset, st.n_retry);
		claim_state_free(&st);
	}
	/* The same file made good loads again. */
	write_file(p, "offset 100\nretry 10 1 \"x\"\n",
		   strlen("offset 100\nretry 10 1 \"x\"\n"));
	struct claim_state st;
	assert_int_equal(load(t, &w, &st), 0);
	assert_int_equal(st.offset, 100);
	assert_int_equal(st.n_retry, 1);
	assert_int_equal(st.retry[0].off, 10);
	claim_state_free(&st);
}

static void state_keeps_held_back_events_and_an_offset_at_the_end(void **state)
{
	struct fx *t = *state;
	struct claim_work w = work_named("item.create.jsonl.claim-42");
	struct claim_state st;
	char p[512];
	/* attempts 0: held back to be settled with a later event. */
	write_file(path_in(t, "item.create.jsonl.claim-42.state", p, sizeof p),
		   "offset 10000\nretry 10 0 \"\"\nretry 20 1000000 \"e\"\n",
		   strlen("offset 10000\nretry 10 0 \"\"\n"
			  "retry 20 1000000 \"e\"\n"));
	assert_int_equal(load(t, &w, &st), 0);
	assert_int_equal(st.offset, WORK_SIZE);
	assert_int_equal(st.n_retry, 2);
	assert_int_equal(st.retry[0].off, 10);
	assert_int_equal(st.retry[0].attempts, 0);
	assert_string_equal(st.retry[0].last_error, "");
	assert_int_equal(st.retry[1].attempts, CLAIM_ATTEMPTS_MAX);
	claim_state_free(&st);
}

static void
state_that_is_a_symlink_fails_to_load_and_is_left_alone(void **state)
{
	struct fx *t = *state;
	struct claim_work w = work_named("item.create.jsonl.claim-42");
	struct claim_state st;
	struct tmp_snap before;
	char target[256];
	char p[512];
	tmp_path(t->other, "shadow", target, sizeof target);
	write_file(target, "offset 5\n", 9);
	tmp_snap_take(target, &before);
	path_in(t, "item.create.jsonl.claim-42.state", p, sizeof p);
	assert_int_equal(symlink(target, p), 0);
	memset(&st, 0x5a, sizeof st);
	assert_int_equal(load(t, &w, &st), -1);
	assert_int_equal(errno, ELOOP);
	assert_non_null(strstr(t->err, "item.create.jsonl.claim-42.state"));
	assert_non_null(strstr(t->err, "symbolic link"));
	/* Nothing was read through it, and st is "offset 0" all the same. */
	assert_int_equal(st.offset, 0);
	assert_int_equal(st.n_retry, 0);
	claim_state_free(&st);
	assert_true(tmp_is_link(p));
	tmp_snap_same(target, &before);
	/* A dangling link too: it is not "missing". */
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink("/nonexistent/podio-hook-claim-test", p), 0);
	assert_int_equal(load(t, &w, &st), -1);
	assert_int_equal(errno, ELOOP);
	assert_true(tmp_is_link(p));
}

static void state_that_is_not_a_regular_file_fails_to_load(void **state)
{
	struct fx *t = *state;
	struct claim_work w = work_named("item.create.jsonl.claim-42");
	struct claim_state st;
	char p[512];
	path_in(t, "item.create.jsonl.claim-42.state", p, sizeof p);
	assert_int_equal(mkdir(p, 0750), 0);
	assert_int_equal(load(t, &w, &st), -1);
	assert_int_equal(errno, EFTYPE_LAYOUT);
	assert_non_null(strstr(t->err, "item.create.jsonl.claim-42.state"));
	assert_int_equal(rmdir(p), 0);
	assert_int_equal(mkfifo(p, 0640), 0);
	alarm(10);
	int rc = load(t, &w, &st);
	alarm(0);
	assert_int_equal(rc, -1);
	assert_int_equal(errno, EFTYPE_LAYOUT);
}

static void save_replaces_a_stale_regular_tmp(void **state)
{
	struct fx *t = *state;
	struct claim_work w = work_named("item.create.jsonl.claim-42");
	struct claim_state st;
	char p[512];
	/* Left by a run that died while saving. */
	write_file(
	    path_in(t, "item.create.jsonl.claim-42.state.tmp", p, sizeof p),
	    "offset 9", 8);
	memset(&st, 0, sizeof st);
	st.offset = 77;
	assert_int_equal(save(t, &w, &st, 1), 0);
	assert_false(exists(p));
	expect_file(path_in(t, "item.create.jsonl.claim-42.state", p, sizeof p),
		    "offset 77\n");
	assert_int_equal(entries_in(t->dir), 1);
}

static void save_leaves_a_symlinked_tmp_alone(void **state)
{
	struct fx *t = *state;
	struct claim_work w = work_named("item.create.jsonl.claim-42");
	struct claim_state st;
	struct tmp_snap before;
	char target[256];
	char tmp[512];
	char p[512];
	tmp_path(t->other, "precious", target, sizeof target);
	write_file(target, "precious\n", 9);
	tmp_snap_take(target, &before);
	path_in(t, "item.create.jsonl.claim-42.state", p, sizeof p);
	write_file(p, "offset 5\n", 9);
	path_in(t, "item.create.jsonl.claim-42.state.tmp", tmp, sizeof tmp);
	assert_int_equal(symlink(target, tmp), 0);
	memset(&st, 0, sizeof st);
	st.offset = 77;
	assert_int_equal(save(t, &w, &st, 0), -1);
	assert_int_equal(errno, ELOOP);
	assert_non_null(strstr(t->err, "item.create.jsonl.claim-42.state.tmp"));
	assert_true(tmp_is_link(tmp));
	tmp_snap_same(target, &before);
	/* The progress saved before is kept as it was. */
	expect_file(p, "offset 5\n");
	/* Nor is a dangling link's target created. */
	char ghost[256];
	tmp_path(t->other, "ghost", ghost, sizeof ghost);
	assert_int_equal(unlink(tmp), 0);
	assert_int_equal(symlink(ghost, tmp), 0);
	assert_int_equal(save(t, &w, &st, 0), -1);
	assert_false(exists(ghost));
	assert_true(tmp_is_link(tmp));
	expect_file(p, "offset 5\n");
}

static void save_never_writes_through_a_symlinked_state(void **state)
{
	struct fx *t = *state;
	struct claim_work w = work_named("item.create.jsonl.claim-42");
	struct claim_state st;
	struct tmp_snap before;
	char target[256];
	char p[512];
	tmp_path(t->other, "precious", target, sizeof target);
	write_file(target, "precious\n", 9);
	tmp_snap_take(target, &before);
	path_in(t, "item.create.jsonl.claim-42.state", p, sizeof p);
	assert_int_equal(symlink(target, p), 0);
	memset(&st, 0, sizeof st);
	st.offset = 77;
	save(t, &w, &st, 0);
	tmp_snap_same(target, &before);
}

/* ---- claim_finish ------------------------------------------------------ */

static void finish_removes_work_file_and_state(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	struct claim_state st;
	char p[512];
	append(t, "item.create", L1);
	assert_int_equal(take(t, "item.create", &w), 1);
	append(t, "item.create", L2); /* a new pending file: not touched */
	memset(&st, 0, sizeof st);
	st.offset = (off_t)strlen(L1);
	assert_int_equal(save(t, &w, &st, 0), 0);
	assert_int_equal(entries_in(t->dir), 3);
	assert_int_equal(claim_finish(t->dirfd, t->dir, &w, t->err), 0);
	assert_int_equal(entries_in(t->dir), 1);
	expect_file(path_in(t, "item.create.jsonl", p, sizeof p), L2);
	/* Finishing again (or without a state) is fine. */
	assert_int_equal(claim_finish(t->dirfd, t->dir, &w, t->err), 0);
	struct claim_work w2;
	assert_int_equal(take(t, "item.create", &w2), 1);
	assert_int_equal(claim_finish(t->dirfd, t->dir, &w2, t->err), 0);
	assert_int_equal(entries_in(t->dir), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(take_absent_file_is_nothing),
	    T(take_empty_file_is_nothing),
	    T(take_renames_to_a_work_file_with_exactly_the_bytes),
	    T(take_keeps_a_torn_tail_as_it_is),
	    T(take_leaves_other_types_alone),
	    T(writers_after_a_claim_go_to_a_fresh_file),
	    T(take_waits_for_a_writer_holding_the_lock),
	    T(take_leaves_a_symlinked_pending_file_alone),
	    T(take_leaves_a_pending_directory_alone),
	    T(take_leaves_a_pending_fifo_alone_without_blocking),
	    T(take_never_replaces_an_existing_work_file),
	    T(take_gives_up_rather_than_replace_a_work_file),
	    T(take_never_pairs_a_work_file_with_progress_left_behind),
	    T(list_orders_work_files_by_claim_time),
	    T(list_follows_successive_claims),
	    T(list_of_an_empty_or_unreadable_dir),
	    T(many_retries_and_one_drop_of_many),
	    T(state_round_trip_with_retries),
	    T(state_file_format),
	    T(state_keeps_a_last_error_that_is_not_utf8_scrubbed),
	    T(state_missing_is_offset_zero),
	    T(state_damaged_is_offset_zero),
	    T(state_keeps_held_back_events_and_an_offset_at_the_end),
	    T(state_that_is_a_symlink_fails_to_load_and_is_left_alone),
	    T(state_that_is_not_a_regular_file_fails_to_load),
	    T(save_replaces_a_stale_regular_tmp),
	    T(save_leaves_a_symlinked_tmp_alone),
	    T(save_never_writes_through_a_symlinked_state),
	    T(finish_removes_work_file_and_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
