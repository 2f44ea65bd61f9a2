/*
 * tmpdir.h - a scratch directory per test, for the unit tests that touch
 * files, and the few file helpers they share (include <cmocka.h> first:
 * the tmp_expect_* helpers fail the running test).  Header-only: each
 * test program includes it once.
 */
#ifndef PODIO_TEST_TMPDIR_H
#define PODIO_TEST_TMPDIR_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Makes /tmp/<prefix>.XXXXXX into dir (size >= 64); 0 or -1. */
static inline int tmpdir_make(char *dir, size_t size, const char *prefix)
{
	snprintf(dir, size, "/tmp/%s.XXXXXX", prefix);
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static inline int tmpdir_rm_one(const char *path, const struct stat *st,
				int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes dir and everything below it; 0 or -1. */
static inline int tmpdir_remove(const char *dir)
{
	return nftw(dir, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* dir/name into out (cap bytes); fails the test when it does not fit. */
static inline const char *tmp_path(const char *dir, const char *name,
				   char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= cap)
		fail_msg("path %s/%s too long", dir, name);
	return out;
}

/* Creates or truncates path (mode 0640) to hold data[0..n). */
static inline void tmp_write(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0640);
	if (fd < 0)
		fail_msg("create %s: %s", path, strerror(errno));
	if (write(fd, data, n) != (ssize_t)n)
		fail_msg("write %s: %s", path, strerror(errno));
	if (close(fd) != 0)
		fail_msg("close %s: %s", path, strerror(errno));
}

/* tmp_write of a string. */
static inline void tmp_write_str(const char *path, const char *s)
{
	tmp_write(path, s, strlen(s));
}

/*
 * The whole file (not through a symbolic link), NUL-terminated, its size
 * in *n; NULL with errno when it cannot be read.  The caller frees it.
 */
static inline char *tmp_read(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	size_t cap = (size_t)st.st_size + 1;
	char *buf = malloc(cap);
	size_t used = 0;
	while (buf != NULL) {
		ssize_t k = read(fd, buf + used, cap - used);
		if (k < 0) {
			free(buf);
			buf = NULL;
			break;
		}
		if (k == 0)
			break;
		used += (size_t)k;
		if (used == cap) {
			char *g = realloc(buf, cap * 2);
			if (g == NULL)
				free(buf);
			buf = g;
			cap *= 2;
		}
	}
	close(fd);
	if (buf == NULL)
		return NULL;
	buf[used] = '\0';
	*n = used;
	return buf;
}

/* Fails the test unless path holds exactly want[0..n). */
static inline void tmp_expect_bytes(const char *path, const char *want,
				    size_t n)
{
	size_t k = 0;
	char *got = tmp_read(path, &k);
	if (got == NULL)
		fail_msg("read %s: %s", path, strerror(errno));
	if (k != n || memcmp(got, want, n) != 0) {
		print_error("%s holds %zu bytes:\n%.*s\nwant %zu bytes:\n%.*s\n",
			    path, k, (int)k, got, n, (int)n, want);
		free(got);
		fail_msg("%s: unexpected content", path);
	}
	free(got);
}

static inline void tmp_expect_file(const char *path, const char *want)
{
	tmp_expect_bytes(path, want, strlen(want));
}

/* 1 when path exists (a symbolic link itself counts). */
static inline int tmp_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* 1 when path is a symbolic link. */
static inline int tmp_is_link(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

/* Entries in dir other than "." and "..". */
static inline size_t tmp_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	if (d == NULL)
		fail_msg("opendir %s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * What a file looked like: its bytes, size, modification time and inode,
 * so that a test can prove nothing wrote to it (or replaced it).
 */
struct tmp_snap {
	char *bytes;
	size_t size;
	struct timespec mtime;
	ino_t ino;
};

static inline void tmp_snap_take(const char *path, struct tmp_snap *s)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		fail_msg("lstat %s: %s", path, strerror(errno));
	s->mtime = st.st_mtim;
	s->ino = st.st_ino;
	s->bytes = S_ISREG(st.st_mode) ? tmp_read(path, &s->size) : NULL;
	if (S_ISREG(st.st_mode) && s->bytes == NULL)
		fail_msg("read %s: %s", path, strerror(errno));
}

/* Fails unless path still is what s recorded; frees s. */
static inline void tmp_snap_same(const char *path, struct tmp_snap *s)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		fail_msg("%s is gone: %s", path, strerror(errno));
	if (st.st_ino != s->ino)
		fail_msg("%s was replaced", path);
	if (st.st_mtim.tv_sec != s->mtime.tv_sec ||
	    st.st_mtim.tv_nsec != s->mtime.tv_nsec)
		fail_msg("%s was modified (mtime changed)", path);
	if (s->bytes != NULL)
		tmp_expect_bytes(path, s->bytes, s->size);
	free(s->bytes);
	s->bytes = NULL;
}

#endif
