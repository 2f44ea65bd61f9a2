/*
 * stats_test.c - SPEC section 8, `status`: per type, pending events, the
 * oldest pending one's age, events claimed and in progress, failed and
 * quarantined; any number of types.  SPEC section 10: entries that must
 * be left alone (symbolic links, other kinds of files) are counted as
 * problems, never followed; and status changes nothing in the spool.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "layout.h"
#include "log.h"
#include "stats.h"

/* ---- log capture --------------------------------------------------------- */

static char logged[16384];
static size_t logged_len;

static void capture(const char *line, size_t len)
{
	if (logged_len + len + 1 > sizeof logged)
		return;
	memcpy(logged + logged_len, line, len);
	logged_len += len;
	logged[logged_len] = '\0';
}

static void expect_logged(const char *what)
{
	if (strstr(logged, what) == NULL)
		fail_msg("nothing logged about \"%s\"; the log:\n%s", what,
			 logged);
}

/* ---- fixture ------------------------------------------------------------- */

struct fx {
	char dir[64];
	char other[64];
	struct stats s;
	char err[STATS_ERR_MAX];
};

static int setup(void **state)
{
	struct fx *t = calloc(1, sizeof *t);
	if (t == NULL)
		return -1;
	if (tmpdir_make(t->dir, sizeof t->dir, "stats_test") != 0 ||
	    tmpdir_make(t->other, sizeof t->other, "stats_test_other") != 0)
		return -1;
	logged_len = 0;
	logged[0] = '\0';
	log_set_sink(capture);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct fx *t = *state;
	log_set_sink(NULL);
	stats_free(&t->s);
	int rc = tmpdir_remove(t->dir) | tmpdir_remove(t->other);
	free(t);
	return rc;
}

/* 2026-11-27T05:48:19Z, when the test events were received. */
static double received_at(void)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = 2026 - 1900;
	tm.tm_mon = 10;
	tm.tm_mday = 27;
	tm.tm_hour = 5;
	tm.tm_min = 48;
	tm.tm_sec = 19;
	return (double)timegm(&tm);
}

/* An event of type received at 05:48:SS.uuuuuu. */
static const char *line(const char *type, int sec, int usec, char *buf,
			size_t cap)
{
	int n = snprintf(buf, cap,
			 "{\"id\":\"%d\",\"received\":\"2026-11-27T05:48:%02d."
			 "%06dZ\",\"type\":\"%s\",\"remote_addr\":\"10.0.0.1\","
			 "\"params\":{\"type\":\"%s\"}}\n",
			 sec, sec, usec, type, type);
	assert_true(n > 0 && (size_t)n < cap);
	return buf;
}

/* Writes k events of type into dir/name (received 05:48:19.5 on). */
static size_t write_events(const char *dir, const char *name, const char *type,
			   int k)
{
	char p[512];
	char buf[512];
	size_t size = 0;
	int fd = open(tmp_path(dir, name, p, sizeof p),
		      O_WRONLY | O_CREAT | O_APPEND, 0640);
	assert_true(fd >= 0);
	for (int i = 0; i < k; i++) {
		line(type, 19 + i, 500000, buf, sizeof buf);
		assert_int_equal(write(fd, buf, strlen(buf)),
				 (ssize_t)strlen(buf));
		size += strlen(buf);
	}
	close(fd);
	return size;
}

static const struct stats_type *collect(struct fx *t, const char *type)
{
	stats_free(&t->s);
	memset(t->err, 0, sizeof t->err);
	if (stats_collect(&t->s, t->dir, received_at() + 100, t->err) != 0)
		fail_msg("stats_collect: %s", t->err);
	return type != NULL ? stats_find(&t->s, type) : NULL;
}

static void expect_type(const struct stats_type *c, unsigned long long pending,
			unsigned long long in_progress,
			unsigned long long failed,
			unsigned long long quarantined)
{
	assert_non_null(c);
	if (c->pending != pending || c->in_progress != in_progress ||
	    c->failed != failed || c->quarantined != quarantined)
		fail_msg("%s: pending %llu in_progress %llu failed %llu "
			 "quarantined %llu; want %llu %llu %llu %llu",
			 c->type, c->pending, c->in_progress, c->failed,
			 c->quarantined, pending, in_progress, failed,
			 quarantined);
}

static void mkdir_in(const struct fx *t, const char *name)
{
	char p[512];
	assert_int_equal(mkdir(tmp_path(t->dir, name, p, sizeof p), 0755), 0);
}

/* ---- counts -------------------------------------------------------------- */

static void an_empty_spool_has_no_types(void **state)
{
	struct fx *t = *state;
	collect(t, NULL);
	assert_int_equal(t->s.n, 0);
	assert_int_equal(t->s.problems, 0);
}

static void pending_counts_the_lines_of_each_type_file(void **state)
{
	struct fx *t = *state;
	char p[512];
	write_events(t->dir, "item.create.jsonl", "item.create", 3);
	write_events(t->dir, "comment.create.jsonl", "comment.create", 1);
	/* A torn last line counts as a line. */
	int fd = open(tmp_path(t->dir, "comment.create.jsonl", p, sizeof p),
		      O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "{\"id\":", 6), 6);
	close(fd);
	collect(t, NULL);
	assert_int_equal(t->s.n, 2);
	/* Sorted by type. */
	assert_string_equal(t->s.t[0].type, "comment.create");
	assert_string_equal(t->s.t[1].type, "item.create");
	expect_type(stats_find(&t->s, "item.create"), 3, 0, 0, 0);
	expect_type(stats_find(&t->s, "comment.create"), 2, 0, 0, 0);
	assert_null(stats_find(&t->s, "item.update"));
	assert_int_equal(t->s.problems, 0);
}

static void oldest_pending_age_is_measured_from_the_first_line(void **state)
{
	struct fx *t = *state;
	/* Received 05:48:19.5 and later; now is 05:49:59. */
	write_events(t->dir, "item.create.jsonl", "item.create", 3);
	const struct stats_type *c = collect(t, "item.create");
	assert_non_null(c);
	assert_true(c->oldest_pending_age > 99.5 - 1e-3);
	assert_true(c->oldest_pending_age < 99.5 + 1e-3);
	/* A first line that cannot be read says 0, not garbage. */
	char p[512];
	tmp_write_str(tmp_path(t->dir, "hook.verify.jsonl", p, sizeof p),
		      "not json\n");
	c = collect(t, "hook.verify");
	assert_non_null(c);
	assert_int_equal(c->pending, 1);
	assert_true(c->oldest_pending_age == 0);
}

static void last_received_is_the_newest_mtime_of_a_types_files(void **state)
{
	struct fx *t = *state;
	char p[512];
	struct timespec times[2] = {{1700000000, 0}, {1700000000, 0}};
	write_events(t->dir, "item.create.jsonl", "item.create", 1);
	write_events(t->dir, "item.create.jsonl.claim-0000000000000001",
		     "item.create", 1);
	assert_int_equal(
	    utimensat(AT_FDCWD,
		      tmp_path(t->dir, "item.create.jsonl", p, sizeof p), times,
		      0),
	    0);
	times[0].tv_sec = times[1].tv_sec = 1700000500;
	assert_int_equal(
	    utimensat(AT_FDCWD,
		      tmp_path(t->dir,
			       "item.create.jsonl.claim-0000000000000001", p,
			       sizeof p),
		      times, 0),
	    0);
	const struct stats_type *c = collect(t, "item.create");
	assert_true(c->last_received == 1700000500.0);
}

static void in_progress_counts_what_work_files_have_left_to_offer(void **state)
{
	struct fx *t = *state;
	char p[512];
	char st[128];
	char buf[512];
	/* 5 events; 2 offered, the first of them to be offered again. */
	write_events(t->dir, "item.create.jsonl.claim-0000000000000001",
		     "item.create", 5);
	size_t l1 = strlen(line("item.create", 19, 500000, buf, sizeof buf));
	size_t l2 = strlen(line("item.create", 20, 500000, buf, sizeof buf));
	snprintf(st, sizeof st, "offset %zu\nretry 0 2 \"exit status 3\"\n",
		 l1 + l2);
	tmp_write_str(tmp_path(t->dir,
			       "item.create.jsonl.claim-0000000000000001.state",
			       p, sizeof p),
		      st);
	/* Another, never offered. */
	write_events(t->dir, "item.create.jsonl.claim-0000000000000002",
		     "item.create", 2);
	/* A damaged progress file reads as offset 0. */
	write_events(t->dir, "task.create.jsonl.claim-0000000000000003",
		     "task.create", 4);
	tmp_write_str(tmp_path(t->dir,
			       "task.create.jsonl.claim-0000000000000003.state",
			       p, sizeof p),
		      "garbage\n");
	write_events(t->dir, "item.create.jsonl", "item.create", 1);
	collect(t, NULL);
	expect_type(stats_find(&t->s, "item.create"), 1, 3 + 1 + 2, 0, 0);
	expect_type(stats_find(&t->s, "task.create"), 0, 4, 0, 0);
	assert_int_equal(t->s.problems, 0);
}

static void
failed_and_quarantined_count_the_lines_in_failed_and_bad(void **state)
{
	struct fx *t = *state;
	mkdir_in(t, "failed");
	mkdir_in(t, "bad");
	write_events(t->dir, "failed/item.create.jsonl", "item.create", 2);
	/* --retry-failed was putting these back when it stopped. */
	write_events(t->dir, "failed/item.create.jsonl.claim-0000000000000001",
		     "item.create", 3);
	write_events(t->dir, "bad/item.create.jsonl", "item.create", 4);
	/* Types with nothing pending are listed too. */
	write_events(t->dir, "bad/form.update.jsonl", "form.update", 1);
	write_events(t->dir, "failed/task.delete.jsonl", "task.delete", 1);
	collect(t, NULL);
	assert_int_equal(t->s.n, 3);
	expect_type(stats_find(&t->s, "item.create"), 0, 0, 5, 4);
	expect_type(stats_find(&t->s, "form.update"), 0, 0, 0, 1);
	expect_type(stats_find(&t->s, "task.delete"), 0, 0, 1, 0);
	/* Dead letters and quarantined lines are not "received". */
	assert_true(stats_find(&t->s, "form.update")->last_received == 0);
}

static void six_hundred_and_fifty_types_are_all_counted(void **state)
{
	struct fx *t = *state;
	enum { TYPES = 650 };
	mkdir_in(t, "failed");
	for (int i = 0; i < TYPES; i++) {
		char name[64];
		char type[32];
		snprintf(type, sizeof type, "junk%04d.create", i);
		snprintf(name, sizeof name, "%s.jsonl", type);
		write_events(t->dir, name, type, 1 + i % 3);
	}
	/* The one a user looks for sorts last, past the 512th. */
	write_events(t->dir, "failed/zz.create.jsonl", "zz.create", 1);
	collect(t, NULL);
	assert_int_equal(t->s.n, TYPES + 1);
	for (size_t i = 1; i < t->s.n; i++)
		assert_true(strcmp(t->s.t[i - 1].type, t->s.t[i].type) < 0);
	for (int i = 0; i < TYPES; i++) {
		char type[32];
		snprintf(type, sizeof type, "junk%04d.create", i);
		expect_type(stats_find(&t->s, type), (unsigned)(1 + i % 3), 0,
			    0, 0);
	}
	expect_type(stats_find(&t->s, "zz.create"), 0, 0, 1, 0);
}

static void what_is_not_a_spool_file_is_not_counted(void **state)
{
	struct fx *t = *state;
	write_events(t->dir, ".drain.lock", "item.create", 1);
	write_events(t->dir, ".podio-token", "item.create", 1);
	write_events(t->dir, "notes.txt", "item.create", 1);
	write_events(t->dir, "Item.create.jsonl", "item.create", 1);
	write_events(t->dir, "item.create.jsonl.claim-1.state.tmp",
		     "item.create", 1);
	collect(t, NULL);
	assert_int_equal(t->s.n, 0);
	assert_int_equal(t->s.problems, 0);
}

/* ---- left alone ---------------------------------------------------------- */

/* A file outside the spool with events in it, that links point to. */
static void bait(struct fx *t, const char *name, char *out, size_t cap,
		 struct tmp_snap *before)
{
	tmp_path(t->other, name, out, cap);
	write_events(t->other, name, "item.create", 7);
	tmp_snap_take(out, before);
}

static void symlinks_are_problems_never_followed(void **state)
{
	struct fx *t = *state;
	char target[256];
	char p[512];
	struct tmp_snap before;
	struct tmp_snap dir_before;
	bait(t, "events", target, sizeof target, &before);
	tmp_snap_take(t->other, &dir_before);
	assert_int_equal(
	    symlink(target, tmp_path(t->dir, "item.create.jsonl", p, sizeof p)),
	    0);
	assert_int_equal(
	    symlink(target,
		    tmp_path(t->dir, "item.update.jsonl.claim-1", p, sizeof p)),
	    0);
	assert_int_equal(
	    symlink(t->other, tmp_path(t->dir, "failed", p, sizeof p)), 0);
	assert_int_equal(
	    symlink(t->other, tmp_path(t->dir, "bad", p, sizeof p)), 0);
	write_events(t->dir, "comment.create.jsonl", "comment.create", 2);
	collect(t, NULL);
	assert_int_equal(t->s.problems, 4);
	expect_logged("item.create.jsonl: is a symbolic link");
	expect_logged("item.update.jsonl.claim-1: is a symbolic link");
	expect_logged("/failed: is a symbolic link");
	expect_logged("/bad: is a symbolic link");
	/* Nothing of the target was counted. */
	const struct stats_type *c = stats_find(&t->s, "item.create");
	if (c != NULL)
		expect_type(c, 0, 0, 0, 0);
	c = stats_find(&t->s, "item.update");
	if (c != NULL)
		expect_type(c, 0, 0, 0, 0);
	expect_type(stats_find(&t->s, "comment.create"), 2, 0, 0, 0);
	tmp_snap_same(target, &before);
	tmp_snap_same(t->other, &dir_before);
}

static void a_symlinked_progress_file_is_a_problem_and_not_read(void **state)
{
	struct fx *t = *state;
	char target[256];
	char p[512];
	struct tmp_snap before;
	tmp_path(t->other, "state", target, sizeof target);
	tmp_write_str(target, "offset 1\n");
	tmp_snap_take(target, &before);
	write_events(t->dir, "item.create.jsonl.claim-0000000000000001",
		     "item.create", 3);
	assert_int_equal(
	    symlink(target,
		    tmp_path(t->dir,
			     "item.create.jsonl.claim-0000000000000001.state",
			     p, sizeof p)),
	    0);
	collect(t, NULL);
	assert_int_equal(t->s.problems, 1);
	expect_logged("item.create.jsonl.claim-0000000000000001.state");
	/* Counted as if nothing had been offered. */
	expect_type(stats_find(&t->s, "item.create"), 0, 3, 0, 0);
	tmp_snap_same(target, &before);
}

static void
directories_and_fifos_named_like_spool_files_are_problems(void **state)
{
	struct fx *t = *state;
	char p[512];
	mkdir_in(t, "aaa.bbb.jsonl");
	mkdir_in(t, "aaa.ccc.jsonl.claim-1");
	assert_int_equal(
	    mkfifo(tmp_path(t->dir, "aaa.ddd.jsonl", p, sizeof p), 0640), 0);
	mkdir_in(t, "bad");
	assert_int_equal(
	    mkfifo(tmp_path(t->dir, "bad/aaa.eee.jsonl", p, sizeof p), 0640),
	    0);
	write_events(t->dir, "comment.create.jsonl", "comment.create", 2);
	alarm(20); /* a blocked open would stall the whole run */
	collect(t, NULL);
	alarm(0);
	assert_int_equal(t->s.problems, 4);
	expect_logged("aaa.bbb.jsonl: is not a regular file");
	expect_logged("aaa.ddd.jsonl: is not a regular file");
	expect_type(stats_find(&t->s, "comment.create"), 2, 0, 0, 0);
}

static void a_failed_that_is_a_file_is_a_problem(void **state)
{
	struct fx *t = *state;
	char p[512];
	tmp_write_str(tmp_path(t->dir, "failed", p, sizeof p), "x\n");
	collect(t, NULL);
	assert_int_equal(t->s.problems, 1);
	expect_logged("/failed: is not a directory");
}

static void status_changes_nothing_in_the_spool(void **state)
{
	struct fx *t = *state;
	char p[512];
	struct tmp_snap dir;
	struct tmp_snap files[3];
	static const char *const names[] = {
	    "item.create.jsonl", "item.create.jsonl.claim-0000000000000001",
	    "item.create.jsonl.claim-0000000000000001.state"};
	write_events(t->dir, names[0], "item.create", 2);
	write_events(t->dir, names[1], "item.create", 2);
	/* Damaged: status reads it as offset 0 and repairs nothing. */
	tmp_write_str(tmp_path(t->dir, names[2], p, sizeof p), "offset x\n");
	for (size_t i = 0; i < 3; i++)
		tmp_snap_take(tmp_path(t->dir, names[i], p, sizeof p),
			      &files[i]);
	tmp_snap_take(t->dir, &dir);
	collect(t, NULL);
	for (size_t i = 0; i < 3; i++)
		tmp_snap_same(tmp_path(t->dir, names[i], p, sizeof p),
			      &files[i]);
	tmp_snap_same(t->dir, &dir);
	assert_int_equal(tmp_entries(t->dir), 3);
}

static void a_spool_that_cannot_be_read_is_an_error_naming_it(void **state)
{
	struct fx *t = *state;
	char p[512];
	tmp_path(t->dir, "nope", p, sizeof p);
	assert_int_equal(stats_collect(&t->s, p, 0, t->err), -1);
	assert_non_null(strstr(t->err, p));
	assert_int_equal(t->s.n, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(an_empty_spool_has_no_types),
	    T(pending_counts_the_lines_of_each_type_file),
	    T(oldest_pending_age_is_measured_from_the_first_line),
	    T(last_received_is_the_newest_mtime_of_a_types_files),
	    T(in_progress_counts_what_work_files_have_left_to_offer),
	    T(failed_and_quarantined_count_the_lines_in_failed_and_bad),
	    T(six_hundred_and_fifty_types_are_all_counted),
	    T(what_is_not_a_spool_file_is_not_counted),
	    T(symlinks_are_problems_never_followed),
	    T(a_symlinked_progress_file_is_a_problem_and_not_read),
	    T(directories_and_fifos_named_like_spool_files_are_problems),
	    T(a_failed_that_is_a_file_is_a_problem),
	    T(status_changes_nothing_in_the_spool),
	    T(a_spool_that_cannot_be_read_is_an_error_naming_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
