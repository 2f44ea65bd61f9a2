/*
 * layout_test.c - SPEC sections 5 and 10, the names in a spool directory
 * and how they are opened: which entries are pending files and which are
 * work files (and their event type), and that nothing inside the spool is
 * opened through a symbolic link, as a file of another kind, or in a way
 * that a FIFO planted there could block.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "layout.h"

/* ---- fixture ----------------------------------------------------------- */

struct fx {
	char dir[64];
	int dirfd;
	char other[64]; /* outside the spool: where planted links point */
};

static int setup(void **state)
{
	struct fx *t = calloc(1, sizeof *t);
	if (t == NULL)
		return -1;
	if (tmpdir_make(t->dir, sizeof t->dir, "layout_test") != 0 ||
	    tmpdir_make(t->other, sizeof t->other, "layout_test_other") != 0) {
		free(t);
		return -1;
	}
	t->dirfd = open(t->dir, O_RDONLY | O_DIRECTORY);
	*state = t;
	return t->dirfd >= 0 ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *t = *state;
	close(t->dirfd);
	int rc = tmpdir_remove(t->dir) | tmpdir_remove(t->other);
	free(t);
	return rc;
}

static const char *in(const struct fx *t, const char *name, char *buf,
		      size_t cap)
{
	return tmp_path(t->dir, name, buf, cap);
}

static const char *kind_name(enum layout_kind k)
{
	return k == LAYOUT_PENDING ? "pending"
	       : k == LAYOUT_WORK  ? "work"
				   : "other";
}

/*
 * Runs open_fn in a child and returns what it gave (fd >= 0 turned into
 * 0, else errno), or fails the test when it has not returned within 5 s:
 * a FIFO must never hang the open.
 */
static int bounded(const struct fx *t, const char *name, int flags, int dir)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		int fd = dir ? layout_open_dir(t->dirfd, name, 0, 0)
			     : layout_open_file(t->dirfd, name, flags);
		int got = fd >= 0 ? 0 : errno;
		if (write(pfd[1], &got, sizeof got) != (ssize_t)sizeof got)
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	int status = 0;
	for (int waited = 0; waited < 500; waited++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		assert_int_equal(r, 0);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
		if (waited == 499) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(pfd[0]);
			fail_msg("opening %s blocked for 5 s", name);
		}
	}
	int got = -1;
	assert_int_equal(read(pfd[0], &got, sizeof got), (ssize_t)sizeof got);
	close(pfd[0]);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return got;
}

/* ---- layout_parse ------------------------------------------------------ */

static const struct {
	const char *name;
	enum layout_kind kind;
	const char *type;
} names[] = {
    {"item.create.jsonl", LAYOUT_PENDING, "item.create"},
    {"hook.verify.jsonl", LAYOUT_PENDING, "hook.verify"},
    {"a.b.c.jsonl", LAYOUT_PENDING, "a.b.c"},
    {"app_field.x9_y.jsonl", LAYOUT_PENDING, "app_field.x9_y"},
    {"item.create.jsonl.claim-0001764222499123456", LAYOUT_WORK, "item.create"},
    {"item.create.jsonl.claim-1", LAYOUT_WORK, "item.create"},
    {"comment.delete.jsonl.claim-1764222499123456", LAYOUT_WORK,
     "comment.delete"},
    /* a second claim in the same microsecond */
    {"item.create.jsonl.claim-0001764222499123456-3", LAYOUT_WORK,
     "item.create"},
    /* progress files and their temporaries */
    {"item.create.jsonl.claim-0001764222499123456.state", LAYOUT_OTHER, NULL},
    {"item.create.jsonl.claim-0001764222499123456.state.tmp", LAYOUT_OTHER,
     NULL},
    {"item.create.jsonl.state", LAYOUT_OTHER, NULL},
    /* dotfiles: the drain lock, the token cache, hidden copies */
    {".drain.lock", LAYOUT_OTHER, NULL},
    {".podio-token", LAYOUT_OTHER, NULL},
    {".item.create.jsonl", LAYOUT_OTHER, NULL},
    {".item.create.jsonl.claim-1", LAYOUT_OTHER, NULL},
    {".jsonl", LAYOUT_OTHER, NULL},
    /* claim stamps */
    {"item.create.jsonl.claim-", LAYOUT_OTHER, NULL},
    {"item.create.jsonl.claim-12x", LAYOUT_OTHER, NULL},
    {"item.create.jsonl.claim-1 ", LAYOUT_OTHER, NULL},
    {"item.create.jsonl.claimed", LAYOUT_OTHER, NULL},
    {"item.create.jsonl.claim", LAYOUT_OTHER, NULL},
    /* other suffixes */
    {"item.create.json", LAYOUT_OTHER, NULL},
    {"item.create.jsonl~", LAYOUT_OTHER, NULL},
    {"item.create.jsonl.tmp", LAYOUT_OTHER, NULL},
    {"item.create.jsonl.bak", LAYOUT_OTHER, NULL},
    {"item.create", LAYOUT_OTHER, NULL},
    {"failed", LAYOUT_OTHER, NULL},
    {"bad", LAYOUT_OTHER, NULL},
    {"", LAYOUT_OTHER, NULL},
    /* bad types */
    {"item.jsonl", LAYOUT_OTHER, NULL},
    {"Item.create.jsonl", LAYOUT_OTHER, NULL},
    {"item.Create.jsonl", LAYOUT_OTHER, NULL},
    {"item..create.jsonl", LAYOUT_OTHER, NULL},
    {"item.create..jsonl", LAYOUT_OTHER, NULL},
    {"1item.create.jsonl", LAYOUT_OTHER, NULL},
    {"item.1create.jsonl", LAYOUT_OTHER, NULL},
    {"item-x.create.jsonl", LAYOUT_OTHER, NULL},
    {"item create.jsonl", LAYOUT_OTHER, NULL},
    {"item.create.jsonl.claim-1/..", LAYOUT_OTHER, NULL},
    {"..jsonl", LAYOUT_OTHER, NULL},
    {"a..jsonl.claim-1", LAYOUT_OTHER, NULL},
    {"item.create.jsonl.claim-1.jsonl", LAYOUT_OTHER, NULL},
    {"a.jsonl.claim-1.jsonl.claim-2", LAYOUT_OTHER, NULL},
};

static void
parse_tells_pending_and_work_files_from_everything_else(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char type[EVENT_TYPE_MAX + 1] = "unset";
		enum layout_kind k = layout_parse(names[i].name, type);
		if (k != names[i].kind)
			fail_msg("layout_parse(\"%s\") = %s, want %s",
				 names[i].name, kind_name(k),
				 kind_name(names[i].kind));
		if (k == LAYOUT_OTHER)
			continue;
		if (strcmp(type, names[i].type) != 0)
			fail_msg("layout_parse(\"%s\"): type \"%s\", want "
				 "\"%s\"",
				 names[i].name, type, names[i].type);
	}
}

static void parse_takes_types_up_to_64_characters_and_no_longer(void **state)
{
	(void)state;
	char type64[EVENT_TYPE_MAX + 1];
	char name[128];
	char got[EVENT_TYPE_MAX + 1];
	assert_int_equal(EVENT_TYPE_MAX, 64);
	memset(type64, 'a', 64);
	type64[1] = '.';
	type64[64] = '\0';
	snprintf(name, sizeof name, "%s.jsonl", type64);
	assert_int_equal(layout_parse(name, got), LAYOUT_PENDING);
	assert_string_equal(got, type64);
	snprintf(name, sizeof name, "%s.jsonl.claim-1", type64);
	assert_int_equal(layout_parse(name, got), LAYOUT_WORK);
	assert_string_equal(got, type64);
	snprintf(name, sizeof name, "%sa.jsonl", type64);
	assert_int_equal(layout_parse(name, got), LAYOUT_OTHER);
	snprintf(name, sizeof name, "%sa.jsonl.claim-1", type64);
	assert_int_equal(layout_parse(name, got), LAYOUT_OTHER);
}

/*
 * Any well-formed type is a spool file name (SPEC section 4), including
 * one with a segment that begins with "jsonl": with unknown_types =
 * accept the receiver spools it, so the consumer must recognise it.
 */
static void parse_knows_types_with_a_jsonl_segment(void **state)
{
	(void)state;
	static const struct {
		const char *name, *type;
		enum layout_kind kind;
	} odd[] = {
	    {"item.jsonl.jsonl", "item.jsonl", LAYOUT_PENDING},
	    {"custom.jsonlx.jsonl", "custom.jsonlx", LAYOUT_PENDING},
	    {"a.jsonl_b.jsonl.claim-0001764222499123456", "a.jsonl_b",
	     LAYOUT_WORK},
	    {"a.jsonl.jsonl.claim-0001764222499123456", "a.jsonl", LAYOUT_WORK},
	};
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		char type[EVENT_TYPE_MAX + 1] = "unset";
		enum layout_kind k = layout_parse(odd[i].name, type);
		if (k != odd[i].kind || strcmp(type, odd[i].type) != 0)
			fail_msg("layout_parse(\"%s\") = %s type \"%s\", want "
				 "%s \"%s\" (a well-formed type the receiver "
				 "spools)",
				 odd[i].name, kind_name(k),
				 k != LAYOUT_OTHER ? type : "-",
				 kind_name(odd[i].kind), odd[i].type);
	}
}

/* ---- layout_open_file -------------------------------------------------- */

static void open_file_opens_a_regular_file_blocking_again(void **state)
{
	struct fx *t = *state;
	char p[256];
	tmp_write_str(in(t, "item.create.jsonl", p, sizeof p), "{}\n");
	int fd = layout_open_file(t->dirfd, "item.create.jsonl", O_RDONLY);
	assert_true(fd >= 0);
	char buf[8];
	assert_int_equal(read(fd, buf, sizeof buf), 3);
	int fl = fcntl(fd, F_GETFL);
	assert_true(fl >= 0);
	/* O_NONBLOCK was only for the open. */
	assert_int_equal(fl & O_NONBLOCK, 0);
	assert_true((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	close(fd);
}

static void open_file_of_a_missing_name_is_enoent(void **state)
{
	struct fx *t = *state;
	errno = 0;
	assert_int_equal(layout_open_file(t->dirfd, "nope.x.jsonl", O_RDONLY),
			 -1);
	assert_int_equal(errno, ENOENT);
}

static void open_file_refuses_a_symbolic_link_with_eloop(void **state)
{
	struct fx *t = *state;
	char target[256];
	char p[256];
	struct tmp_snap before;
	tmp_path(t->other, "secret", target, sizeof target);
	tmp_write_str(target, "{\"id\":\"not yours\"}\n");
	tmp_snap_take(target, &before);
	assert_int_equal(
	    symlink(target, in(t, "item.create.jsonl", p, sizeof p)), 0);
	static const int modes[] = {O_RDONLY, O_WRONLY | O_APPEND, O_RDWR};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		errno = 0;
		int fd =
		    layout_open_file(t->dirfd, "item.create.jsonl", modes[i]);
		if (fd >= 0)
			fail_msg("opened a symbolic link (flags %#x)",
				 modes[i]);
		assert_int_equal(errno, ELOOP);
	}
	/* A dangling one neither. */
	assert_int_equal(symlink("/nonexistent/podio-hook-layout-test",
				 in(t, "dangling.x.jsonl", p, sizeof p)),
			 0);
	errno = 0;
	assert_int_equal(
	    layout_open_file(t->dirfd, "dangling.x.jsonl", O_WRONLY | O_APPEND),
	    -1);
	assert_int_equal(errno, ELOOP);
	tmp_snap_same(target, &before);
	assert_true(tmp_is_link(in(t, "item.create.jsonl", p, sizeof p)));
	assert_string_equal(layout_strerror(ELOOP),
			    "is a symbolic link (left alone)");
}

static void open_file_refuses_a_directory(void **state)
{
	struct fx *t = *state;
	char p[256];
	assert_int_equal(mkdir(in(t, "aaa.bbb.jsonl", p, sizeof p), 0750), 0);
	errno = 0;
	assert_int_equal(layout_open_file(t->dirfd, "aaa.bbb.jsonl", O_RDONLY),
			 -1);
	assert_int_equal(errno, EFTYPE_LAYOUT);
	/* For writing, open(2) itself refuses. */
	errno = 0;
	assert_int_equal(
	    layout_open_file(t->dirfd, "aaa.bbb.jsonl", O_WRONLY | O_APPEND),
	    -1);
	assert_true(errno == EISDIR || errno == EFTYPE_LAYOUT);
	assert_string_equal(layout_strerror(EFTYPE_LAYOUT),
			    "is not a regular file (left alone)");
}

static void open_file_refuses_a_fifo_without_blocking(void **state)
{
	struct fx *t = *state;
	char p[256];
	assert_int_equal(mkfifo(in(t, "item.create.jsonl", p, sizeof p), 0640),
			 0);
	/* No writer: a plain open for reading would wait forever. */
	assert_int_equal(bounded(t, "item.create.jsonl", O_RDONLY, 0),
			 EFTYPE_LAYOUT);
	/* No reader: opening to write fails at once (ENXIO) or is refused. */
	int got = bounded(t, "item.create.jsonl", O_WRONLY | O_APPEND, 0);
	assert_true(got == ENXIO || got == EFTYPE_LAYOUT);
	/* A work file name, too. */
	assert_int_equal(
	    mkfifo(in(t, "item.create.jsonl.claim-1", p, sizeof p), 0640), 0);
	assert_int_equal(bounded(t, "item.create.jsonl.claim-1", O_RDONLY, 0),
			 EFTYPE_LAYOUT);
}

/* ---- layout_open_dir --------------------------------------------------- */

static void open_dir_opens_an_existing_directory(void **state)
{
	struct fx *t = *state;
	char p[256];
	assert_int_equal(mkdir(in(t, "failed", p, sizeof p), 0750), 0);
	tmp_write_str(in(t, "failed/item.create.jsonl", p, sizeof p), "{}\n");
	int fd = layout_open_dir(t->dirfd, "failed", 0, 0);
	assert_true(fd >= 0);
	int f = layout_open_file(fd, "item.create.jsonl", O_RDONLY);
	assert_true(f >= 0);
	close(f);
	close(fd);
}

static void
open_dir_of_a_missing_name_is_enoent_unless_asked_to_create(void **state)
{
	struct fx *t = *state;
	char p[256];
	struct stat st;
	errno = 0;
	assert_int_equal(layout_open_dir(t->dirfd, "bad", 0, 0750), -1);
	assert_int_equal(errno, ENOENT);
	assert_false(tmp_exists(in(t, "bad", p, sizeof p)));
	mode_t old = umask(0);
	int fd = layout_open_dir(t->dirfd, "bad", 1, 0750);
	umask(old);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	close(fd);
	/* Asked to create what exists: opened as it is. */
	fd = layout_open_dir(t->dirfd, "bad", 1, 0700);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	close(fd);
}

static void open_dir_refuses_a_symbolic_link_to_a_directory(void **state)
{
	struct fx *t = *state;
	char p[256];
	struct tmp_snap before;
	tmp_snap_take(t->other, &before);
	assert_int_equal(symlink(t->other, in(t, "failed", p, sizeof p)), 0);
	for (int create = 0; create <= 1; create++) {
		errno = 0;
		int fd = layout_open_dir(t->dirfd, "failed", create, 0750);
		if (fd >= 0)
			fail_msg("opened a symbolic link (create %d)", create);
		assert_int_equal(errno, ELOOP);
	}
	assert_true(tmp_is_link(p));
	tmp_snap_same(t->other, &before);
}

static void open_dir_never_creates_through_a_dangling_link(void **state)
{
	struct fx *t = *state;
	char p[256];
	char target[256];
	tmp_path(t->other, "made-through-link", target, sizeof target);
	assert_int_equal(symlink(target, in(t, "bad", p, sizeof p)), 0);
	errno = 0;
	assert_int_equal(layout_open_dir(t->dirfd, "bad", 1, 0750), -1);
	assert_int_equal(errno, ELOOP);
	assert_false(tmp_exists(target));
	assert_true(tmp_is_link(p));
}

static void open_dir_refuses_a_file_that_is_not_a_directory(void **state)
{
	struct fx *t = *state;
	char p[256];
	tmp_write_str(in(t, "failed", p, sizeof p), "not a folder\n");
	for (int create = 0; create <= 1; create++) {
		errno = 0;
		assert_int_equal(
		    layout_open_dir(t->dirfd, "failed", create, 0750), -1);
		assert_int_equal(errno, ENOTDIR);
	}
	tmp_expect_file(p, "not a folder\n");
	assert_int_equal(mkfifo(in(t, "bad", p, sizeof p), 0640), 0);
	assert_int_equal(bounded(t, "bad", 0, 1), ENOTDIR);
	assert_string_equal(layout_strerror(ENOTDIR),
			    "is not a directory (left alone)");
}

/* ---- layout_read_dir --------------------------------------------------- */

static void read_dir_lists_every_entry_and_leaves_dirfd_as_it_was(void **state)
{
	struct fx *t = *state;
	char p[256];
	tmp_write_str(in(t, "item.create.jsonl", p, sizeof p), "{}\n");
	assert_int_equal(mkdir(in(t, "failed", p, sizeof p), 0750), 0);
	off_t where = lseek(t->dirfd, 0, SEEK_CUR);
	for (int round = 0; round < 2; round++) {
		DIR *d = layout_read_dir(t->dirfd);
		assert_non_null(d);
		int seen = 0;
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, "item.create.jsonl") == 0)
				seen |= 1;
			else if (strcmp(e->d_name, "failed") == 0)
				seen |= 2;
		}
		assert_int_equal(seen, 3);
		assert_int_equal(closedir(d), 0);
		/* dirfd is still open, its offset untouched. */
		assert_int_equal(lseek(t->dirfd, 0, SEEK_CUR), where);
		assert_true(fcntl(t->dirfd, F_GETFD) >= 0);
	}
}

static void read_dir_of_a_file_is_null_with_enotdir(void **state)
{
	struct fx *t = *state;
	char p[256];
	tmp_write_str(in(t, "item.create.jsonl", p, sizeof p), "{}\n");
	int fd = layout_open_file(t->dirfd, "item.create.jsonl", O_RDONLY);
	assert_true(fd >= 0);
	errno = 0;
	assert_null(layout_read_dir(fd));
	assert_int_equal(errno, ENOTDIR);
	close(fd);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(parse_tells_pending_and_work_files_from_everything_else),
	    T(parse_takes_types_up_to_64_characters_and_no_longer),
	    T(parse_knows_types_with_a_jsonl_segment),
	    T(open_file_opens_a_regular_file_blocking_again),
	    T(open_file_of_a_missing_name_is_enoent),
	    T(open_file_refuses_a_symbolic_link_with_eloop),
	    T(open_file_refuses_a_directory),
	    T(open_file_refuses_a_fifo_without_blocking),
	    T(open_dir_opens_an_existing_directory),
	    T(open_dir_of_a_missing_name_is_enoent_unless_asked_to_create),
	    T(open_dir_refuses_a_symbolic_link_to_a_directory),
	    T(open_dir_never_creates_through_a_dangling_link),
	    T(open_dir_refuses_a_file_that_is_not_a_directory),
	    T(read_dir_lists_every_entry_and_leaves_dirfd_as_it_was),
	    T(read_dir_of_a_file_is_null_with_enotdir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
