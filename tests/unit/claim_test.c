/*
 * claim_test.c - SPEC section 5, the consumer side: claiming a spool file
 * (rename, then wait out a writer that locked it before the rename), the
 * names of spool and work files, work files oldest claim first, progress
 * kept beside a work file in {work}.state (and read as "offset 0" when it
 * is damaged), finishing a work file.
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

/* ---- fixture ----------------------------------------------------------- */

struct fx {
	char dir[64];
	struct spool sp;
	char err[CLAIM_ERR_MAX];
};

static int setup(void **state)
{
	struct fx *t = calloc(1, sizeof *t);
	if (t == NULL)
		return -1;
	if (tmpdir_make(t->dir, sizeof t->dir, "claim_test") != 0) {
		free(t);
		return -1;
	}
	t->sp.dir = t->dir;
	t->sp.sync = 0;
	t->sp.file_mode = 0640;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct fx *t = *state;
	int rc = tmpdir_remove(t->dir);
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

static void write_file(const char *path, const char *content, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

/* Fails unless the file holds exactly want[0..n). */
static void expect_bytes(const char *path, const char *want, size_t n)
{
	char got[8192];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	ssize_t k = read(fd, got, sizeof got);
	close(fd);
	assert_true(k >= 0 && (size_t)k < sizeof got);
	if ((size_t)k != n || memcmp(got, want, n) != 0)
		fail_msg("%s holds\n%.*s\nwant\n%.*s", path, (int)k, got,
			 (int)n, want);
}

static void expect_file(const char *path, const char *want)
{
	expect_bytes(path, want, strlen(want));
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static size_t entries_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	}
	closedir(d);
	return n;
}

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
	char kind;
	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "%s", name);
	assert_int_equal(claim_parse_name(name, w.type, &kind), 0);
	assert_int_equal(kind, 'w');
	return w;
}

/* ---- claim_take -------------------------------------------------------- */

static void take_absent_file_is_nothing(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	assert_int_equal(claim_take(t->dir, "item.create", &w, t->err), 0);
	assert_int_equal(entries_in(t->dir), 0);
}

static void take_empty_file_is_nothing(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	write_file(p, "", 0);
	assert_int_equal(claim_take(t->dir, "item.create", &w, t->err), 0);
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
	char type[65];
	char kind = 0;
	append(t, "item.create", L1);
	append(t, "item.create", L2);
	path_in(t, "item.create.jsonl", p, sizeof p);
	assert_int_equal(claim_take(t->dir, "item.create", &w, t->err), 1);
	assert_false(exists(p));
	assert_string_equal(w.type, "item.create");
	assert_int_equal(strncmp(w.name, "item.create" CLAIM_MARK,
				 strlen("item.create" CLAIM_MARK)),
			 0);
	const char *stamp = w.name + strlen("item.create" CLAIM_MARK);
	assert_true(strlen(stamp) > 0);
	assert_int_equal(strspn(stamp, "0123456789"), strlen(stamp));
	assert_int_equal(claim_parse_name(w.name, type, &kind), 0);
	assert_int_equal(kind, 'w');
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
	assert_int_equal(claim_take(t->dir, "item.update", &w, t->err), 1);
	expect_file(path_in(t, w.name, wp, sizeof wp), torn);
}

static void take_leaves_other_types_alone(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[256];
	append(t, "item.create", L1);
	append(t, "comment.create", L3);
	assert_int_equal(claim_take(t->dir, "item.create", &w, t->err), 1);
	expect_file(path_in(t, "comment.create.jsonl", p, sizeof p), L3);
}

static void writers_after_a_claim_go_to_a_fresh_file(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	char p[256];
	char wp[512];
	append(t, "item.create", L1);
	assert_int_equal(claim_take(t->dir, "item.create", &w, t->err), 1);
	append(t, "item.create", L2);
	expect_file(path_in(t, w.name, wp, sizeof wp), L1);
	expect_file(path_in(t, "item.create.jsonl", p, sizeof p), L2);
	/* And the fresh file is claimed under another name. */
	struct claim_work w2;
	assert_int_equal(claim_take(t->dir, "item.create", &w2, t->err), 1);
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
	int rc = claim_take(t->dir, "item.create", &w, t->err);
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

/* ---- claim_parse_name -------------------------------------------------- */

static const struct {
	const char *name;
	int rc;
	char kind;
	const char *type;
} names[] = {
    {"item.create.jsonl", 0, 'p', "item.create"},
    {"hook.verify.jsonl", 0, 'p', "hook.verify"},
    {"a.b.c.jsonl", 0, 'p', "a.b.c"},
    {"app_field.x9_y.jsonl", 0, 'p', "app_field.x9_y"},
    {"item.create.jsonl.claim-0001764222499123456", 0, 'w', "item.create"},
    {"item.create.jsonl.claim-1", 0, 'w', "item.create"},
    {"comment.delete.jsonl.claim-1764222499123456", 0, 'w',
     "comment.delete"},
    /* progress files and their temporaries */
    {"item.create.jsonl.claim-0001764222499123456.state", -1, 0, NULL},
    {"item.create.jsonl.claim-0001764222499123456.state.tmp", -1, 0, NULL},
    {"item.create.jsonl.state", -1, 0, NULL},
    /* dotfiles: the drain lock, the token cache, hidden copies */
    {".drain.lock", -1, 0, NULL},
    {".podio-token", -1, 0, NULL},
    {".item.create.jsonl", -1, 0, NULL},
    {".item.create.jsonl.claim-1", -1, 0, NULL},
    {".jsonl", -1, 0, NULL},
    /* claim stamps */
    {"item.create.jsonl.claim-", -1, 0, NULL},
    {"item.create.jsonl.claim-12x", -1, 0, NULL},
    {"item.create.jsonl.claim-1 ", -1, 0, NULL},
    {"item.create.jsonl.claimed", -1, 0, NULL},
    {"item.create.jsonl.claim", -1, 0, NULL},
    /* other suffixes */
    {"item.create.json", -1, 0, NULL},
    {"item.create.jsonl~", -1, 0, NULL},
    {"item.create.jsonl.tmp", -1, 0, NULL},
    {"item.create.jsonl.bak", -1, 0, NULL},
    {"item.create", -1, 0, NULL},
    {"failed", -1, 0, NULL},
    {"bad", -1, 0, NULL},
    {"", -1, 0, NULL},
    /* bad types */
    {"item.jsonl", -1, 0, NULL},
    {"Item.create.jsonl", -1, 0, NULL},
    {"item.Create.jsonl", -1, 0, NULL},
    {"item..create.jsonl", -1, 0, NULL},
    {"item.create..jsonl", -1, 0, NULL},
    {"1item.create.jsonl", -1, 0, NULL},
    {"item.1create.jsonl", -1, 0, NULL},
    {"item-x.create.jsonl", -1, 0, NULL},
    {"item create.jsonl", -1, 0, NULL},
    {"item.create.jsonl.claim-1/..", -1, 0, NULL},
    {"..jsonl", -1, 0, NULL},
    {"a..jsonl.claim-1", -1, 0, NULL},
};

static void parse_name_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char type[65] = "unset";
		char kind = 0;
		int rc = claim_parse_name(names[i].name, type, &kind);
		if (rc != names[i].rc)
			fail_msg("claim_parse_name(\"%s\") = %d, want %d",
				 names[i].name, rc, names[i].rc);
		if (rc != 0)
			continue;
		if (kind != names[i].kind || strcmp(type, names[i].type) != 0)
			fail_msg("claim_parse_name(\"%s\"): type \"%s\" kind "
				 "'%c', want \"%s\" '%c'",
				 names[i].name, type, kind, names[i].type,
				 names[i].kind);
	}
}

static void parse_name_type_length_limit(void **state)
{
	(void)state;
	char type64[65];
	char name[128];
	char got[65];
	char kind;
	memset(type64, 'a', 64);
	type64[1] = '.';
	type64[64] = '\0';
	snprintf(name, sizeof name, "%s.jsonl", type64);
	assert_int_equal(claim_parse_name(name, got, &kind), 0);
	assert_string_equal(got, type64);
	assert_int_equal(kind, 'p');
	snprintf(name, sizeof name, "%s.jsonl.claim-1", type64);
	assert_int_equal(claim_parse_name(name, got, &kind), 0);
	assert_int_equal(kind, 'w');
	snprintf(name, sizeof name, "%sa.jsonl", type64);
	assert_int_equal(claim_parse_name(name, got, &kind), -1);
	snprintf(name, sizeof name, "%sa.jsonl.claim-1", type64);
	assert_int_equal(claim_parse_name(name, got, &kind), -1);
}

/*
 * Any well-formed type is a spool file name (SPEC section 4), including
 * one with a segment that begins with "jsonl": with unknown_types =
 * accept the receiver spools it, so the consumer must recognise it.
 */
static void parse_name_type_with_a_jsonl_segment(void **state)
{
	(void)state;
	static const struct {
		const char *name, *type;
		char kind;
	} odd[] = {
	    {"item.jsonl.jsonl", "item.jsonl", 'p'},
	    {"custom.jsonlx.jsonl", "custom.jsonlx", 'p'},
	    {"a.jsonl_b.jsonl.claim-0001764222499123456", "a.jsonl_b", 'w'},
	};
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		char type[65] = "unset";
		char kind = 0;
		int rc = claim_parse_name(odd[i].name, type, &kind);
		if (rc != 0 || kind != odd[i].kind ||
		    strcmp(type, odd[i].type) != 0)
			fail_msg("claim_parse_name(\"%s\") = %d type \"%s\" "
				 "kind '%c', want 0 \"%s\" '%c' (a well-formed "
				 "type the receiver spools)",
				 odd[i].name, rc, rc == 0 ? type : "-",
				 kind ? kind : '-', odd[i].type, odd[i].kind);
	}
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
	ssize_t n = claim_list(t->dir, &ws, t->err);
	assert_int_equal(n, (ssize_t)(sizeof want / sizeof want[0]));
	for (ssize_t i = 0; i < n; i++) {
		if (strcmp(ws[i].name, want[i]) != 0)
			fail_msg("claim_list[%zd] = %s, want %s", i,
				 ws[i].name, want[i]);
		assert_int_equal(strncmp(ws[i].name, ws[i].type,
					 strlen(ws[i].type)),
				 0);
		assert_int_equal(ws[i].type[3], '\0');
	}
	free(ws);
}

static void list_follows_successive_claims(void **state)
{
	struct fx *t = *state;
	struct claim_work taken[6];
	static const char *types[] = {"zeta.create", "alpha.create",
				      "zeta.create", "mid.update",
				      "alpha.create", "zeta.create"};
	for (size_t i = 0; i < 6; i++) {
		append(t, types[i], L3);
		assert_int_equal(
		    claim_take(t->dir, types[i], &taken[i], t->err), 1);
		sleep_ms(2); /* distinct microsecond stamps */
	}
	struct claim_work *ws = NULL;
	ssize_t n = claim_list(t->dir, &ws, t->err);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < 6; i++) {
		if (strcmp(ws[i].name, taken[i].name) != 0)
			fail_msg("claim_list[%zu] = %s, claimed as %s", i,
				 ws[i].name, taken[i].name);
		assert_string_equal(ws[i].type, types[i]);
	}
	free(ws);
}

static void list_of_an_empty_or_missing_dir(void **state)
{
	struct fx *t = *state;
	struct claim_work *ws = NULL;
	char p[256];
	assert_int_equal(claim_list(t->dir, &ws, t->err), 0);
	free(ws);
	ws = NULL;
	path_in(t, "nope", p, sizeof p);
	assert_int_equal(claim_list(p, &ws, t->err), -1);
	assert_non_null(strstr(t->err, p));
	free(ws);
}

/* ---- state ------------------------------------------------------------- */

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
	assert_int_equal(claim_state_save(t->dir, &w, &st, 1, t->err), 0);
	path_in(t, "item.create.jsonl.claim-42.state", p, sizeof p);
	assert_true(exists(p));
	/* Replaced atomically: no temporary left behind. */
	assert_int_equal(entries_in(t->dir), 1);

	struct claim_state got;
	memset(&got, 0x5a, sizeof got);
	claim_state_load(t->dir, &w, &got);
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
	assert_int_equal(claim_state_save(t->dir, &w, &got, 0, t->err), 0);
	struct claim_state again;
	claim_state_load(t->dir, &w, &again);
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

static void state_file_format(void **state)
{
	struct fx *t = *state;
	struct claim_work w = work_named("item.create.jsonl.claim-42");
	struct claim_state st;
	char p[512];
	memset(&st, 0, sizeof st);
	st.offset = 77;
	assert_int_equal(claim_state_retry(&st, 10, 3, "a \"b\"\n"), 0);
	assert_int_equal(claim_state_save(t->dir, &w, &st, 0, t->err), 0);
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
	claim_state_load(t->dir, &w, &st);
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
	    {"retry attempts 0", "offset 100\nretry 10 0 \"x\"\n", 0},
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
		claim_state_load(t->dir, &w, &st);
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
	claim_state_load(t->dir, &w, &st);
	assert_int_equal(st.offset, 100);
	assert_int_equal(st.n_retry, 1);
	assert_int_equal(st.retry[0].off, 10);
	claim_state_free(&st);
}

/* ---- claim_finish ------------------------------------------------------ */

static void finish_removes_work_file_and_state(void **state)
{
	struct fx *t = *state;
	struct claim_work w;
	struct claim_state st;
	char p[512];
	append(t, "item.create", L1);
	assert_int_equal(claim_take(t->dir, "item.create", &w, t->err), 1);
	append(t, "item.create", L2); /* a new pending file: not touched */
	memset(&st, 0, sizeof st);
	st.offset = (off_t)strlen(L1);
	assert_int_equal(claim_state_save(t->dir, &w, &st, 0, t->err), 0);
	assert_int_equal(entries_in(t->dir), 3);
	assert_int_equal(claim_finish(t->dir, &w, t->err), 0);
	assert_int_equal(entries_in(t->dir), 1);
	expect_file(path_in(t, "item.create.jsonl", p, sizeof p), L2);
	/* Finishing again (or without a state) is fine. */
	assert_int_equal(claim_finish(t->dir, &w, t->err), 0);
	struct claim_work w2;
	assert_int_equal(claim_take(t->dir, "item.create", &w2, t->err), 1);
	assert_int_equal(claim_finish(t->dir, &w2, t->err), 0);
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
		T(parse_name_table),
		T(parse_name_type_length_limit),
		T(parse_name_type_with_a_jsonl_segment),
		T(list_orders_work_files_by_claim_time),
		T(list_follows_successive_claims),
		T(list_of_an_empty_or_missing_dir),
		T(state_round_trip_with_retries),
		T(state_file_format),
		T(state_missing_is_offset_zero),
		T(state_damaged_is_offset_zero),
		T(finish_removes_work_file_and_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
