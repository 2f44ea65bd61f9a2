/*
 * spool_test.c - the writer protocol (podio-hook(1), THE SPOOL): one file
 * per type, exact lines, the configured mode, torn tails repaired, renamed
 * files left alone, failed writes cut back, fdatasync with sync = yes only.
 * Every case runs twice: opening and closing per append (CGI), and with
 * descriptors kept open ("kept: ", a FastCGI process).  The kept mode has
 * cases of its own: one descriptor per type, threads appending at once,
 * and group commit (a sync that began after the write, one sync for many,
 * a failed sync failing every append it covered).
 *
 * Built with -Wl,--wrap=writev,--wrap=fdatasync,--wrap=pread: the
 * wrappers below pass through to the real calls unless a test arms a
 * failure or a gate.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
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
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "spool.h"

/* ---- injected failures ------------------------------------------------- */

ssize_t __real_writev(int fd, const struct iovec *iov, int iovcnt);
ssize_t __wrap_writev(int fd, const struct iovec *iov, int iovcnt);
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
ssize_t __real_pread(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off);

enum fault { FAULT_NONE, FAULT_SHORT, FAULT_ERRNO };

static struct {
	enum fault fault; /* what the next writev does */
	int err;	  /* errno for FAULT_ERRNO */
	int calls;	  /* writev calls */
	int last_iovcnt;
	size_t last_total; /* bytes the last writev was asked for */
} wv;

static struct {
	int fail_errno; /* 0: pass through */
	int calls;
	off_t size_at_call; /* file size when fdatasync was called */
	int hold;	    /* this call (1 = the first) waits ... */
	int released;	    /* ... until this is set */
	int fail_from;	    /* calls numbered >= fail_from fail (0: none) */
	int sleep_us;	    /* each call sleeps this long first */
	off_t sizes[16];    /* size_at_call of the first 16 calls */
} fds;

/* Guards fds and preads: threads call the wrappers at once. */
static pthread_mutex_t wrap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wrap_cond = PTHREAD_COND_INITIALIZER;

static int preads;

ssize_t __wrap_writev(int fd, const struct iovec *iov, int iovcnt)
{
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	wv.calls++;
	wv.last_iovcnt = iovcnt;
	wv.last_total = total;
	if (wv.fault == FAULT_ERRNO) {
		errno = wv.err;
		return -1;
	}
	if (wv.fault == FAULT_SHORT) {
		/* Really write the first half, as a full disk would. */
		struct iovec cut[8];
		size_t left = total / 2;
		int n = 0;
		assert_true(iovcnt <= 8);
		for (int i = 0; i < iovcnt && left > 0; i++) {
			cut[n] = iov[i];
			if (cut[n].iov_len > left)
				cut[n].iov_len = left;
			left -= cut[n].iov_len;
			n++;
		}
		return __real_writev(fd, cut, n);
	}
	return __real_writev(fd, iov, iovcnt);
}

int __wrap_fdatasync(int fd)
{
	struct stat st;
	pthread_mutex_lock(&wrap_lock);
	int call = ++fds.calls;
	fds.size_at_call = fstat(fd, &st) == 0 ? st.st_size : -1;
	if (call <= 16)
		fds.sizes[call - 1] = fds.size_at_call;
	pthread_cond_broadcast(&wrap_cond);
	while (call == fds.hold && !fds.released)
		pthread_cond_wait(&wrap_cond, &wrap_lock);
	int fail =
	    fds.fail_errno != 0 || (fds.fail_from > 0 && call >= fds.fail_from);
	int us = fds.sleep_us;
	pthread_mutex_unlock(&wrap_lock);
	if (us > 0)
		usleep((useconds_t)us);
	if (fail) {
		errno = fds.fail_errno != 0 ? fds.fail_errno : EIO;
		return -1;
	}
	return __real_fdatasync(fd);
}

ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off)
{
	pthread_mutex_lock(&wrap_lock);
	preads++;
	pthread_mutex_unlock(&wrap_lock);
	return __real_pread(fd, buf, n, off);
}

/* ---- fixture ----------------------------------------------------------- */

struct fx {
	char dir[64];
	mode_t old_umask;
	struct spool sp;
	char err[SPOOL_ERR_MAX];
};

static int setup(void **state)
{
	struct fx *t = calloc(1, sizeof *t);
	if (t == NULL)
		return -1;
	if (tmpdir_make(t->dir, sizeof t->dir, "spool_test") != 0) {
		free(t);
		return -1;
	}
	t->old_umask = umask(022);
	t->sp.dir = t->dir;
	t->sp.sync = 1;
	t->sp.file_mode = 0640;
	memset(&wv, 0, sizeof wv);
	memset(&fds, 0, sizeof fds);
	preads = 0;
	*state = t;
	return 0;
}

/* The same, with descriptors kept open as a FastCGI process keeps them. */
static int setup_kept(void **state)
{
	if (setup(state) != 0)
		return -1;
	struct fx *t = *state;
	return spool_keep_open(&t->sp);
}

static int teardown(void **state)
{
	struct fx *t = *state;
	spool_close(&t->sp);
	umask(t->old_umask);
	wv.fault = FAULT_NONE;
	fds.fail_errno = 0;
	int rc = tmpdir_remove(t->dir);
	free(t);
	return rc;
}

/* ---- helpers ----------------------------------------------------------- */

static const char L1[] = "{\"id\":\"1\",\"type\":\"item.create\"}\n";
static const char L2[] =
    "{\"id\":\"2\",\"type\":\"item.create\",\"x\":\"\xc3\xa9\"}\n";
static const char L3[] = "{\"id\":\"3\"}\n";

/* dir/name into out. */
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
	return spool_append(&t->sp, type, line, strlen(line), t->err);
}

/* Fails unless the file holds exactly want (a string). */
static void expect_file(const char *path, const char *want)
{
	char got[8192];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	ssize_t n = read(fd, got, sizeof got);
	close(fd);
	assert_true(n >= 0 && (size_t)n < sizeof got);
	if ((size_t)n != strlen(want) || memcmp(got, want, (size_t)n) != 0)
		fail_msg("%s holds\n%.*s\nwant\n%s", path, (int)n, got, want);
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	assert_true(fd >= 0);
	size_t n = strlen(content);
	assert_int_equal(write(fd, content, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
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

/* ---- the file and its lines -------------------------------------------- */

static void append_creates_type_file_with_exactly_the_line(void **state)
{
	struct fx *t = *state;
	char p[256];
	assert_int_equal(append(t, "item.create", L1), 0);
	expect_file(path_in(t, "item.create.jsonl", p, sizeof p), L1);
	assert_int_equal(mode_of(p), 0640);
	/* Nothing else: no temp files, no lock files. */
	assert_int_equal(entries_in(t->dir), 1);
}

static void new_file_gets_file_mode_whatever_the_umask(void **state)
{
	struct fx *t = *state;
	static const mode_t modes[] = {0600, 0640, 0644, 0660, 0666};
	static const mode_t masks[] = {022, 077, 0};
	char type[32];
	char name[64];
	char p[256];
	for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++) {
		umask(masks[m]);
		for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
			snprintf(type, sizeof type, "t%zu.m%zu", m, i);
			snprintf(name, sizeof name, "%s.jsonl", type);
			t->sp.file_mode = modes[i];
			assert_int_equal(append(t, type, L1), 0);
			mode_t got = mode_of(path_in(t, name, p, sizeof p));
			if (got != modes[i])
				fail_msg("umask %03o, file_mode %04o: got %04o",
					 (unsigned)masks[m], (unsigned)modes[i],
					 (unsigned)got);
		}
	}
}

static void existing_file_keeps_its_mode(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	write_file(p, "", 0600);
	t->sp.file_mode = 0644;
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(mode_of(p), 0600);
	expect_file(p, L1);
}

static void two_appends_make_two_lines(void **state)
{
	struct fx *t = *state;
	char p[256];
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(append(t, "item.create", L2), 0);
	expect_file(
	    path_in(t, "item.create.jsonl", p, sizeof p),
	    "{\"id\":\"1\",\"type\":\"item.create\"}\n"
	    "{\"id\":\"2\",\"type\":\"item.create\",\"x\":\"\xc3\xa9\"}\n");
}

static void each_type_has_its_own_file(void **state)
{
	struct fx *t = *state;
	char p[256];
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(append(t, "hook.verify", L2), 0);
	assert_int_equal(append(t, "item.create", L3), 0);
	expect_file(
	    path_in(t, "item.create.jsonl", p, sizeof p),
	    "{\"id\":\"1\",\"type\":\"item.create\"}\n{\"id\":\"3\"}\n");
	expect_file(path_in(t, "hook.verify.jsonl", p, sizeof p), L2);
	assert_int_equal(entries_in(t->dir), 2);
}

static void torn_tail_gets_a_newline_first(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	write_file(p, "{\"partial", 0640);
	assert_int_equal(append(t, "item.create", L1), 0);
	expect_file(p, "{\"partial\n{\"id\":\"1\",\"type\":\"item.create\"}\n");
	/* The repair and the record go in one write. */
	assert_int_equal(wv.calls, 1);
	assert_int_equal(wv.last_total, strlen(L1) + 1);
}

static void clean_tail_gets_no_extra_newline(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	write_file(p, "{\"id\":\"0\"}\n", 0640);
	assert_int_equal(append(t, "item.create", L3), 0);
	expect_file(p, "{\"id\":\"0\"}\n{\"id\":\"3\"}\n");
	assert_int_equal(wv.calls, 1);
	assert_int_equal(wv.last_total, strlen(L3));
}

static void empty_existing_file_gets_just_the_line(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	write_file(p, "", 0640);
	assert_int_equal(append(t, "item.create", L3), 0);
	expect_file(p, L3);
}

/* ---- claims: renamed or removed files ---------------------------------- */

static void renamed_file_is_left_alone(void **state)
{
	struct fx *t = *state;
	char p[256];
	char claimed[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	path_in(t, "item.create.claimed", claimed, sizeof claimed);
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(rename(p, claimed), 0);
	assert_int_equal(append(t, "item.create", L2), 0);
	expect_file(claimed, L1);
	expect_file(p, L2);
	assert_int_equal(mode_of(p), 0640);
}

static void removed_file_is_created_again(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(append(t, "item.create", L2), 0);
	expect_file(p, L2);
}

/*
 * 1 once /proc/locks shows pid blocked on a flock of inode ino; 0 after
 * about five seconds without.
 */
static int wait_for_flock_waiter(pid_t pid, ino_t ino)
{
	char want_pid[32];
	char want_ino[32];
	snprintf(want_pid, sizeof want_pid, " %ld ", (long)pid);
	snprintf(want_ino, sizeof want_ino, ":%lu ", (unsigned long)ino);
	for (int i = 0; i < 500; i++) {
		char line[256];
		FILE *f = fopen("/proc/locks", "r");
		int found = 0;
		while (f != NULL && fgets(line, sizeof line, f) != NULL) {
			if (strstr(line, "-> FLOCK") != NULL &&
			    strstr(line, want_pid) != NULL &&
			    strstr(line, want_ino) != NULL)
				found = 1;
		}
		if (f != NULL)
			fclose(f);
		if (found)
			return 1;
		struct timespec ten_ms = {0, 10 * 1000 * 1000};
		nanosleep(&ten_ms, NULL);
	}
	return 0;
}

/*
 * A consumer claims the file while a writer waits for its lock: the
 * writer must notice and write to {type}.jsonl anew.  With recreate, a
 * third process has created the new file meanwhile, so the path exists
 * again and only the inode tells the files apart.
 */
static void claim_while_writer_waits(struct fx *t, int recreate)
{
	char p[256];
	char claimed[256];
	int ready[2];
	struct stat st;
	path_in(t, "item.create.jsonl", p, sizeof p);
	path_in(t, "item.create.claimed", claimed, sizeof claimed);
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(pipe(ready), 0);

	pid_t writer = getpid();
	pid_t consumer = fork();
	assert_true(consumer >= 0);
	if (consumer == 0) {
		/* The claim protocol, with the writer caught in between. */
		int fd = open(p, O_RDWR);
		if (fd < 0 || flock(fd, LOCK_EX) != 0)
			_exit(2);
		if (write(ready[1], "L", 1) != 1)
			_exit(2);
		int saw = wait_for_flock_waiter(writer, st.st_ino);
		if (rename(p, claimed) != 0)
			_exit(2);
		if (recreate) {
			int nfd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0640);
			if (nfd < 0)
				_exit(2);
			close(nfd);
		}
		close(fd); /* releases the lock */
		_exit(saw ? 0 : 3);
	}
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	close(ready[1]);
	int rc = append(t, "item.create", L2);
	int status = 0;
	assert_int_equal(waitpid(consumer, &status, 0), consumer);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 3)
		fail_msg("the writer never blocked on the consumer's lock");
	assert_int_equal(WEXITSTATUS(status), 0);
	if (rc != 0)
		fail_msg("spool_append: %s", t->err);
	/* The record is in the new file; the claimed one is untouched. */
	expect_file(claimed, L1);
	expect_file(p, L2);
}

static void writer_blocked_by_a_claim_follows_the_rename(void **state)
{
	claim_while_writer_waits(*state, 0);
}

static void writer_blocked_by_a_claim_skips_the_old_inode(void **state)
{
	claim_while_writer_waits(*state, 1);
}

/* ---- failures: nothing half-written ------------------------------------ */

static void short_write_is_cut_back(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	assert_int_equal(append(t, "item.create", L1), 0);
	wv.fault = FAULT_SHORT;
	assert_int_equal(append(t, "item.create", L2), -1);
	wv.fault = FAULT_NONE;
	assert_true(strlen(t->err) > 0);
	assert_non_null(strstr(t->err, p));
	expect_file(p, L1);
	/* The next record follows cleanly. */
	assert_int_equal(append(t, "item.create", L3), 0);
	expect_file(
	    p, "{\"id\":\"1\",\"type\":\"item.create\"}\n{\"id\":\"3\"}\n");
}

static void short_write_after_torn_tail_leaves_the_tail(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	write_file(p, "{\"partial", 0640);
	wv.fault = FAULT_SHORT;
	assert_int_equal(append(t, "item.create", L2), -1);
	wv.fault = FAULT_NONE;
	assert_true(strlen(t->err) > 0);
	expect_file(p, "{\"partial");
}

static void short_write_to_a_new_file_leaves_it_empty(void **state)
{
	struct fx *t = *state;
	char p[256];
	struct stat st;
	path_in(t, "item.create.jsonl", p, sizeof p);
	wv.fault = FAULT_SHORT;
	assert_int_equal(append(t, "item.create", L2), -1);
	wv.fault = FAULT_NONE;
	/* Either no file or an empty one: no part of the record. */
	if (stat(p, &st) == 0)
		assert_int_equal(st.st_size, 0);
	else
		assert_int_equal(errno, ENOENT);
}

static void failed_write_leaves_file_unchanged(int err_no, void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	assert_int_equal(append(t, "item.create", L1), 0);
	wv.fault = FAULT_ERRNO;
	wv.err = err_no;
	assert_int_equal(append(t, "item.create", L2), -1);
	wv.fault = FAULT_NONE;
	assert_non_null(strstr(t->err, p));
	assert_non_null(strstr(t->err, strerror(err_no)));
	expect_file(p, L1);
}

static void write_failing_with_enospc(void **state)
{
	failed_write_leaves_file_unchanged(ENOSPC, state);
}

static void write_failing_with_eio(void **state)
{
	failed_write_leaves_file_unchanged(EIO, state);
}

static void fdatasync_failing_with_sync_is_an_error(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	t->sp.sync = 1;
	fds.fail_errno = EIO;
	assert_int_equal(append(t, "item.create", L1), -1);
	fds.fail_errno = 0;
	assert_int_equal(fds.calls, 1);
	assert_non_null(strstr(t->err, "fdatasync"));
	assert_non_null(strstr(t->err, strerror(EIO)));
	/* spool.h: the whole line stays; the caller answers 503 anyway. */
	expect_file(p, L1);
}

static void sync_calls_fdatasync_after_the_write(void **state)
{
	struct fx *t = *state;
	t->sp.sync = 1;
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(fds.calls, 1);
	assert_int_equal(fds.size_at_call, (off_t)strlen(L1));
	assert_int_equal(append(t, "item.create", L2), 0);
	assert_int_equal(fds.calls, 2);
	assert_int_equal(fds.size_at_call, (off_t)(strlen(L1) + strlen(L2)));
}

static void no_sync_never_calls_fdatasync(void **state)
{
	struct fx *t = *state;
	char p[256];
	t->sp.sync = 0;
	fds.fail_errno = EIO; /* would fail if called */
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(append(t, "item.create", L2), 0);
	assert_int_equal(append(t, "hook.verify", L3), 0);
	fds.fail_errno = 0;
	assert_int_equal(fds.calls, 0);
	expect_file(path_in(t, "hook.verify.jsonl", p, sizeof p), L3);
}

static void missing_spool_dir_names_the_path(void **state)
{
	struct fx *t = *state;
	char missing[256];
	path_in(t, "missing", missing, sizeof missing);
	t->sp.dir = missing;
	assert_int_equal(append(t, "item.create", L1), -1);
	assert_non_null(strstr(t->err, missing));
	/* Not created behind the operator's back. */
	assert_int_equal(entries_in(t->dir), 0);
}

/*
 * A FIFO planted as {type}.jsonl takes nothing: the append fails naming
 * it (the receiver answers 503), its reader finds no byte, and neither
 * the open nor a later append blocks; other types still land.
 */
static void a_fifo_as_a_spool_file_takes_nothing(void **state)
{
	struct fx *t = *state;
	char p[256];
	char q[256];
	char buf[64];
	path_in(t, "item.create.jsonl", p, sizeof p);
	assert_int_equal(mkfifo(p, 0600), 0);
	int r = open(p, O_RDONLY | O_NONBLOCK);
	assert_true(r >= 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(append(t, "item.create", L1), -1);
		assert_non_null(strstr(t->err, "is not a regular file"));
		assert_non_null(strstr(t->err, p));
	}
	assert_true(read(r, buf, sizeof buf) <= 0);
	close(r);
	assert_int_equal(append(t, "hook.verify", L2), 0);
	expect_file(path_in(t, "hook.verify.jsonl", q, sizeof q), L2);
}

/* ---- many writers ------------------------------------------------------ */

#define WRITERS	   4
#define PER_WRITER 250

static void concurrent_writers_never_interleave(void **state)
{
	struct fx *t = *state;
	char p[256];
	pid_t kids[WRITERS];
	t->sp.sync = 0;
	for (int w = 0; w < WRITERS; w++) {
		kids[w] = fork();
		assert_true(kids[w] >= 0);
		if (kids[w] != 0)
			continue;
		for (int i = 0; i < PER_WRITER; i++) {
			char line[512];
			char pad[300];
			size_t np = (size_t)(w * 37 + i % 50 + 1);
			memset(pad, 'a' + w, np);
			pad[np] = '\0';
			snprintf(line, sizeof line,
				 "{\"w\":%d,\"i\":%d,\"pad\":\"%s\"}\n", w, i,
				 pad);
			if (append(t, "item.create", line) != 0)
				_exit(1);
		}
		_exit(0);
	}
	for (int w = 0; w < WRITERS; w++) {
		int status = 0;
		assert_int_equal(waitpid(kids[w], &status, 0), kids[w]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}

	FILE *f = fopen(path_in(t, "item.create.jsonl", p, sizeof p), "r");
	assert_non_null(f);
	int next[WRITERS] = {0};
	char line[512];
	int lines = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		char want[512];
		char pad[300];
		char *end = NULL;
		if (strncmp(line, "{\"w\":", 5) != 0)
			fail_msg("line %d is torn: %s", lines, line);
		long w = strtol(line + 5, &end, 10);
		if (w < 0 || w >= WRITERS || strncmp(end, ",\"i\":", 5) != 0)
			fail_msg("line %d is torn: %s", lines, line);
		long i = strtol(end + 5, NULL, 10);
		if (i < 0 || i >= PER_WRITER)
			fail_msg("line %d is torn: %s", lines, line);
		size_t np = (size_t)(w * 37 + i % 50 + 1);
		memset(pad, 'a' + w, np);
		pad[np] = '\0';
		snprintf(want, sizeof want,
			 "{\"w\":%ld,\"i\":%ld,\"pad\":\"%s\"}\n", w, i, pad);
		if (strcmp(line, want) != 0)
			fail_msg("line %d is torn: %s", lines, line);
		/* Each writer's records in its own order. */
		assert_int_equal(i, next[w]);
		next[w]++;
		lines++;
	}
	fclose(f);
	assert_int_equal(lines, WRITERS * PER_WRITER);
}

/* ---- spool_check_dir --------------------------------------------------- */

static void check_dir_accepts_a_local_directory(void **state)
{
	struct fx *t = *state;
	assert_int_equal(spool_check_dir(t->dir, t->err), 0);
}

static void check_dir_refuses_a_regular_file(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "file", p, sizeof p);
	write_file(p, "x", 0640);
	memset(t->err, 0, sizeof t->err);
	assert_int_equal(spool_check_dir(p, t->err), -1);
	assert_non_null(strstr(t->err, p));
}

static void check_dir_refuses_a_missing_directory(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "missing", p, sizeof p);
	memset(t->err, 0, sizeof t->err);
	errno = 0;
	assert_int_equal(spool_check_dir(p, t->err), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(t->err, p));
}

/* ---- descriptors kept open (a FastCGI process) -------------------------- */

/* How many of our descriptors are open on files in dir. */
static int open_fds_in(const char *dir)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	size_t dlen = strlen(dir);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char link[64];
		char target[512];
		snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
		ssize_t k = readlink(link, target, sizeof target - 1);
		if (k <= 0)
			continue;
		target[k] = '\0';
		if (strncmp(target, dir, dlen) == 0 && target[dlen] == '/')
			n++;
	}
	closedir(d);
	return n;
}

static void one_descriptor_per_type_stays_open(void **state)
{
	struct fx *t = *state;
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(append(t, "item.create", L2), 0);
	assert_int_equal(append(t, "hook.verify", L3), 0);
	assert_int_equal(open_fds_in(t->dir), 2);
	spool_close_idle(&t->sp, 3600); /* none idle that long */
	assert_int_equal(open_fds_in(t->dir), 2);
	spool_close_idle(&t->sp, 0);
	assert_int_equal(open_fds_in(t->dir), 0);
	/* Closed is not forgotten: the next append opens again. */
	assert_int_equal(append(t, "item.create", L3), 0);
	assert_int_equal(open_fds_in(t->dir), 1);
	spool_close(&t->sp);
	assert_null(t->sp.open);
	assert_int_equal(open_fds_in(t->dir), 0);
}

static void once_per_append_keeps_nothing_open(void **state)
{
	struct fx *t = *state;
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(open_fds_in(t->dir), 0);
}

static void claimed_file_is_closed_and_the_new_one_used(void **state)
{
	struct fx *t = *state;
	char p[256];
	char claimed[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	path_in(t, "item.create.claimed", claimed, sizeof claimed);
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(rename(p, claimed), 0);
	assert_int_equal(append(t, "item.create", L2), 0);
	expect_file(claimed, L1);
	expect_file(p, L2);
	/* The claimed file's descriptor went; only the new one is open. */
	assert_int_equal(open_fds_in(t->dir), 1);
}

static void skips_the_tail_check_after_its_own_write(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	write_file(p, "{\"id\":\"0\"}\n", 0640);
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(preads, 1); /* someone else's tail: read */
	assert_int_equal(append(t, "item.create", L2), 0);
	assert_int_equal(preads, 1); /* ends where we left it: not read */
	/* Another writer appends a torn line: the size differs, so read. */
	int fd = open(p, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"torn", 6), 6);
	close(fd);
	assert_int_equal(append(t, "item.create", L3), 0);
	assert_int_equal(preads, 2);
	expect_file(
	    p, "{\"id\":\"0\"}\n"
	       "{\"id\":\"1\",\"type\":\"item.create\"}\n"
	       "{\"id\":\"2\",\"type\":\"item.create\",\"x\":\"\xc3\xa9\"}\n"
	       "{\"torn\n{\"id\":\"3\"}\n");
}

static void spool_directory_removed_and_made_again(void **state)
{
	struct fx *t = *state;
	char p[256];
	path_in(t, "item.create.jsonl", p, sizeof p);
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(rmdir(t->dir), 0);
	assert_int_equal(append(t, "item.create", L2), -1);
	assert_non_null(strstr(t->err, p));
	assert_int_equal(mkdir(t->dir, 0700), 0);
	assert_int_equal(append(t, "item.create", L3), 0);
	expect_file(p, L3);
}

static void more_types_than_slots_all_land(void **state)
{
	struct fx *t = *state;
	char type[32];
	char name[64];
	char p[256];
	t->sp.sync = 0;
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < SPOOL_KEEP_MAX + 8; i++) {
			snprintf(type, sizeof type, "many.t%d", i);
			assert_int_equal(append(t, type, round ? L2 : L1), 0);
			assert_true(open_fds_in(t->dir) <= SPOOL_KEEP_MAX);
		}
	}
	for (int i = 0; i < SPOOL_KEEP_MAX + 8; i++) {
		snprintf(name, sizeof name, "many.t%d.jsonl", i);
		expect_file(path_in(t, name, p, sizeof p),
			    "{\"id\":\"1\",\"type\":\"item.create\"}\n"
			    "{\"id\":\"2\",\"type\":\"item.create\",\"x\":\""
			    "\xc3\xa9\"}\n");
	}
}

/* ---- threads and group commit ------------------------------------------ */

struct job {
	struct fx *t;
	const char *type;
	const char *line;
	int n;	   /* appends */
	int fails; /* of them, how many returned -1 */
	int done;
	char err[SPOOL_ERR_MAX];
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	for (int i = 0; i < j->n; i++) {
		char err[SPOOL_ERR_MAX];
		if (spool_append(&j->t->sp, j->type, j->line, strlen(j->line),
				 err) != 0) {
			j->fails++;
			memcpy(j->err, err, sizeof err);
		}
	}
	pthread_mutex_lock(&wrap_lock);
	j->done = 1;
	pthread_mutex_unlock(&wrap_lock);
	return NULL;
}

static void start_job(pthread_t *th, struct job *j, struct fx *t,
		      const char *line)
{
	memset(j, 0, sizeof *j);
	j->t = t;
	j->type = "item.create";
	j->line = line;
	j->n = 1;
	assert_int_equal(pthread_create(th, NULL, run_job, j), 0);
}

/* Waits (up to ~10 s) until the n-th fdatasync call has begun. */
static void wait_for_sync_call(int n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&wrap_lock);
	while (fds.calls < n) {
		if (pthread_cond_timedwait(&wrap_cond, &wrap_lock, &until) != 0)
			break;
	}
	int got = fds.calls;
	pthread_mutex_unlock(&wrap_lock);
	if (got < n)
		fail_msg("fdatasync call %d never came (%d calls)", n, got);
}

static int job_done(struct job *j)
{
	pthread_mutex_lock(&wrap_lock);
	int d = j->done;
	pthread_mutex_unlock(&wrap_lock);
	return d;
}

static void release_sync(void)
{
	pthread_mutex_lock(&wrap_lock);
	fds.released = 1;
	pthread_cond_broadcast(&wrap_cond);
	pthread_mutex_unlock(&wrap_lock);
}

/*
 * While the first append's fdatasync is in flight, a second append comes:
 * that sync began before its record was written, so it may not answer it;
 * the next one, begun after the record is in the file, does.
 */
static void write_during_a_sync_waits_for_the_next_sync(void **state)
{
	struct fx *t = *state;
	char p[256];
	pthread_t a, b;
	struct job ja, jb;
	path_in(t, "item.create.jsonl", p, sizeof p);
	fds.hold = 1;
	start_job(&a, &ja, t, L1);
	wait_for_sync_call(1);
	start_job(&b, &jb, t, L2);
	usleep(200 * 1000); /* room for a wrong early answer to show */
	assert_false(job_done(&jb));
	assert_false(job_done(&ja));
	release_sync();
	assert_int_equal(pthread_join(a, NULL), 0);
	assert_int_equal(pthread_join(b, NULL), 0);
	assert_int_equal(ja.fails + jb.fails, 0);
	assert_int_equal(fds.calls, 2);
	assert_int_equal(fds.sizes[0], (off_t)strlen(L1));
	assert_int_equal(fds.sizes[1], (off_t)(strlen(L1) + strlen(L2)));
	expect_file(
	    p, "{\"id\":\"1\",\"type\":\"item.create\"}\n"
	       "{\"id\":\"2\",\"type\":\"item.create\",\"x\":\"\xc3\xa9\"}\n");
}

#define BATCH 5

/* Appends made while one sync is in flight share the next one. */
static void one_sync_serves_the_appends_made_meanwhile(void **state)
{
	struct fx *t = *state;
	char p[256];
	pthread_t first, th[BATCH];
	struct job j0, j[BATCH];
	path_in(t, "item.create.jsonl", p, sizeof p);
	fds.hold = 1;
	start_job(&first, &j0, t, L3);
	wait_for_sync_call(1);
	for (int i = 0; i < BATCH; i++)
		start_job(&th[i], &j[i], t, L3);
	usleep(200 * 1000); /* let them all join the waiting batch */
	release_sync();
	assert_int_equal(pthread_join(first, NULL), 0);
	for (int i = 0; i < BATCH; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(j[i].fails, 0);
	}
	assert_int_equal(fds.calls, 2);
	assert_int_equal(fds.sizes[1], (off_t)((BATCH + 1) * strlen(L3)));
}

/* A failed fdatasync answers every append it covered with an error. */
static void failed_sync_fails_every_append_it_covered(void **state)
{
	struct fx *t = *state;
	char p[256];
	pthread_t first, th[BATCH];
	struct job j0, j[BATCH];
	path_in(t, "item.create.jsonl", p, sizeof p);
	fds.hold = 1;
	fds.fail_from = 2; /* the first sync succeeds, the second fails */
	start_job(&first, &j0, t, L3);
	wait_for_sync_call(1);
	for (int i = 0; i < BATCH; i++)
		start_job(&th[i], &j[i], t, L3);
	usleep(200 * 1000);
	release_sync();
	assert_int_equal(pthread_join(first, NULL), 0);
	assert_int_equal(j0.fails, 0);
	for (int i = 0; i < BATCH; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(j[i].fails, 1);
		assert_non_null(strstr(j[i].err, "fdatasync"));
		assert_non_null(strstr(j[i].err, p));
		assert_non_null(strstr(j[i].err, strerror(EIO)));
	}
	assert_int_equal(fds.calls, 2);
	/* spool.h: the lines stay; a fresh descriptor serves the next. */
	fds.fail_from = 0;
	assert_int_equal(open_fds_in(t->dir), 0);
	assert_int_equal(append(t, "item.create", L1), 0);
	assert_int_equal(fds.calls, 3);
}

#define THREADS	   8
#define PER_THREAD 100

/* Threads appending at once: whole lines, all of them, fewer syncs. */
static void threads_appending_at_once_never_interleave(void **state)
{
	struct fx *t = *state;
	char p[256];
	char lines[THREADS][128];
	pthread_t th[THREADS];
	struct job j[THREADS];
	fds.sleep_us = 1000; /* a disk's sync, so that appends overlap */
	for (int i = 0; i < THREADS; i++) {
		snprintf(lines[i], sizeof lines[i],
			 "{\"thread\":%d,\"pad\":\"%0*d\"}\n", i, 10 + 7 * i,
			 0);
		memset(&j[i], 0, sizeof j[i]);
		j[i].t = t;
		j[i].type = "item.create";
		j[i].line = lines[i];
		j[i].n = PER_THREAD;
		assert_int_equal(pthread_create(&th[i], NULL, run_job, &j[i]),
				 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(j[i].fails, 0);
	}
	FILE *f = fopen(path_in(t, "item.create.jsonl", p, sizeof p), "r");
	assert_non_null(f);
	int count[THREADS] = {0};
	char line[256];
	int n = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		int which = -1;
		for (int i = 0; i < THREADS; i++) {
			if (strcmp(line, lines[i]) == 0)
				which = i;
		}
		if (which < 0)
			fail_msg("line %d is torn: %s", n, line);
		count[which]++;
		n++;
	}
	fclose(f);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(count[i], PER_THREAD);
	/* Group commit: 800 appends, far fewer syncs. */
	if (fds.calls >= THREADS * PER_THREAD)
		fail_msg("%d fdatasync calls for %d appends", fds.calls,
			 THREADS * PER_THREAD);
	print_message("# %d appends by %d threads, %d fdatasync calls\n",
		      THREADS * PER_THREAD, THREADS, fds.calls);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
/* The same case with descriptors kept open. */
#define K(name)                                                                \
	{                                                                      \
		"kept: " #name, name, setup_kept, teardown, NULL               \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(append_creates_type_file_with_exactly_the_line),
	    T(new_file_gets_file_mode_whatever_the_umask),
	    T(existing_file_keeps_its_mode),
	    T(two_appends_make_two_lines),
	    T(each_type_has_its_own_file),
	    T(torn_tail_gets_a_newline_first),
	    T(clean_tail_gets_no_extra_newline),
	    T(empty_existing_file_gets_just_the_line),
	    T(renamed_file_is_left_alone),
	    T(removed_file_is_created_again),
	    T(writer_blocked_by_a_claim_follows_the_rename),
	    T(writer_blocked_by_a_claim_skips_the_old_inode),
	    T(short_write_is_cut_back),
	    T(short_write_after_torn_tail_leaves_the_tail),
	    T(short_write_to_a_new_file_leaves_it_empty),
	    T(write_failing_with_enospc),
	    T(write_failing_with_eio),
	    T(fdatasync_failing_with_sync_is_an_error),
	    T(sync_calls_fdatasync_after_the_write),
	    T(no_sync_never_calls_fdatasync),
	    T(missing_spool_dir_names_the_path),
	    T(a_fifo_as_a_spool_file_takes_nothing),
	    T(concurrent_writers_never_interleave),
	    T(check_dir_accepts_a_local_directory),
	    T(check_dir_refuses_a_regular_file),
	    T(check_dir_refuses_a_missing_directory),
	    K(append_creates_type_file_with_exactly_the_line),
	    K(new_file_gets_file_mode_whatever_the_umask),
	    K(existing_file_keeps_its_mode),
	    K(two_appends_make_two_lines),
	    K(each_type_has_its_own_file),
	    K(torn_tail_gets_a_newline_first),
	    K(clean_tail_gets_no_extra_newline),
	    K(empty_existing_file_gets_just_the_line),
	    K(renamed_file_is_left_alone),
	    K(removed_file_is_created_again),
	    K(writer_blocked_by_a_claim_follows_the_rename),
	    K(writer_blocked_by_a_claim_skips_the_old_inode),
	    K(short_write_is_cut_back),
	    K(short_write_after_torn_tail_leaves_the_tail),
	    K(short_write_to_a_new_file_leaves_it_empty),
	    K(write_failing_with_enospc),
	    K(write_failing_with_eio),
	    K(fdatasync_failing_with_sync_is_an_error),
	    K(sync_calls_fdatasync_after_the_write),
	    K(no_sync_never_calls_fdatasync),
	    K(missing_spool_dir_names_the_path),
	    K(a_fifo_as_a_spool_file_takes_nothing),
	    K(concurrent_writers_never_interleave),
	    T(once_per_append_keeps_nothing_open),
	    K(one_descriptor_per_type_stays_open),
	    K(claimed_file_is_closed_and_the_new_one_used),
	    K(skips_the_tail_check_after_its_own_write),
	    K(spool_directory_removed_and_made_again),
	    K(more_types_than_slots_all_land),
	    K(write_during_a_sync_waits_for_the_next_sync),
	    K(one_sync_serves_the_appends_made_meanwhile),
	    K(failed_sync_fails_every_append_it_covered),
	    K(threads_appending_at_once_never_interleave),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
