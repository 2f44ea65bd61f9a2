/*
 * slot_test.c - the inline verification slots ([podio]
 * inline_verifications): at most N
 * holders across processes (flock on {dir}/{prefix}N), never waiting, the
 * lock files dotfiles of the spool's mode, symlinks and FIFOs refused, a
 * dead holder's slot free again.
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
#include <unistd.h>

#include <cmocka.h>

#include "slot.h"
#include "tmpdir.h"

#define PREFIX ".verify-slot-"

struct fx {
	char dir[64];
	char err[SLOT_ERR_MAX];
};

static int setup(void **state)
{
	struct fx *t = calloc(1, sizeof *t);
	if (t == NULL || tmpdir_make(t->dir, sizeof t->dir, "slot_test") != 0) {
		free(t);
		return -1;
	}
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

static const char *path_in(const struct fx *t, const char *name, char *out,
			   size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", t->dir, name);
	assert_true(n > 0 && (size_t)n < cap);
	return out;
}

static int take(struct fx *t, unsigned n)
{
	return slot_take(t->dir, PREFIX, n, 0640, t->err);
}

static void at_most_n_holders_and_none_waits(void **state)
{
	struct fx *t = *state;
	int a = take(t, 2);
	int b = take(t, 2);
	assert_true(a >= 0);
	assert_true(b >= 0);
	assert_int_equal(take(t, 2), SLOT_BUSY);
	slot_release(a);
	int c = take(t, 2);
	assert_true(c >= 0);
	assert_int_equal(take(t, 2), SLOT_BUSY);
	slot_release(b);
	slot_release(c);
}

static void zero_slots_is_always_busy(void **state)
{
	struct fx *t = *state;
	assert_int_equal(take(t, 0), SLOT_BUSY);
	assert_int_equal(take(t, 0), SLOT_BUSY);
}

static void slot_files_are_empty_dotfiles_of_the_given_mode(void **state)
{
	struct fx *t = *state;
	char p[256];
	struct stat st;
	mode_t old = umask(077);
	int a = take(t, 3);
	umask(old);
	assert_true(a >= 0);
	assert_int_equal(stat(path_in(t, PREFIX "0", p, sizeof p), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_size, 0);
	/* Only the slot taken exists: the others are made when needed. */
	assert_int_equal(stat(path_in(t, PREFIX "1", p, sizeof p), &st), -1);
	slot_release(a);
}

static void a_symlink_is_refused_not_followed(void **state)
{
	struct fx *t = *state;
	char link[256];
	char target[256];
	struct stat st;
	path_in(t, "elsewhere", target, sizeof target);
	assert_int_equal(
	    symlink(target, path_in(t, PREFIX "0", link, sizeof link)), 0);
	/* Slot 1 still serves; the symlink's target is never created. */
	int a = take(t, 2);
	assert_true(a >= 0);
	assert_int_equal(lstat(target, &st), -1);
	/* With only the symlinked slot: an error naming it. */
	assert_int_equal(take(t, 1), SLOT_ERROR);
	assert_non_null(strstr(t->err, link));
	assert_int_equal(lstat(target, &st), -1);
	slot_release(a);
}

static void a_fifo_is_refused_without_blocking(void **state)
{
	struct fx *t = *state;
	char p[256];
	assert_int_equal(mkfifo(path_in(t, PREFIX "0", p, sizeof p), 0600), 0);
	assert_int_equal(take(t, 1), SLOT_ERROR);
	assert_non_null(strstr(t->err, "not a regular file"));
}

static void missing_directory_is_an_error(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "missing", p, sizeof p);
	assert_int_equal(slot_take(p, PREFIX, 1, 0640, t->err), SLOT_ERROR);
	assert_non_null(strstr(t->err, p));
}

/* Another process holds the only slot; when it dies, the slot is free. */
static void a_dead_holders_slot_is_free_again(void **state)
{
	struct fx *t = *state;
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t kid = fork();
	assert_true(kid >= 0);
	if (kid == 0) {
		char err[SLOT_ERR_MAX];
		int fd = slot_take(t->dir, PREFIX, 1, 0640, err);
		if (fd < 0 || write(ready[1], "T", 1) != 1)
			_exit(2);
		pause();
		_exit(0);
	}
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(take(t, 1), SLOT_BUSY);
	assert_int_equal(kill(kid, SIGKILL), 0);
	int status;
	assert_int_equal(waitpid(kid, &status, 0), kid);
	int fd = take(t, 1);
	assert_true(fd >= 0);
	slot_release(fd);
	close(ready[0]);
	close(ready[1]);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(at_most_n_holders_and_none_waits),
	    T(zero_slots_is_always_busy),
	    T(slot_files_are_empty_dotfiles_of_the_given_mode),
	    T(a_symlink_is_refused_not_followed),
	    T(a_fifo_is_refused_without_blocking),
	    T(missing_directory_is_an_error),
	    T(a_dead_holders_slot_is_free_again),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
