#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "layout.h"

#define OPEN_FLAGS (O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW)

/* Formats "what path: strerror"; errno is kept for the caller. */
static int fail(char *err, const char *what, const char *path)
{
	int saved = errno;
	snprintf(err, SPOOL_ERR_MAX, "%s %s: %s", what, path, strerror(saved));
	errno = saved;
	return -1;
}

int spool_flock(int fd, int op)
{
	int rc;
	do
		rc = flock(fd, op);
	while (rc != 0 && errno == EINTR);
	return rc;
}

static int fsync_dir(const char *dir, char *err)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return fail(err, "open directory", dir);
	int rc = fsync(dfd);
	if (rc != 0)
		fail(err, "fsync directory", dir);
	close(dfd);
	return rc;
}

/*
 * Opens path, creating it with the exact mode when absent.  Returns the
 * descriptor, or -1 with err set.
 */
static int open_spool_file(const char *path, mode_t mode, char *err)
{
	for (int i = 0; i < SPOOL_REOPEN_MAX; i++) {
		int fd = open(path, OPEN_FLAGS);
		if (fd >= 0 || errno != ENOENT)
			return fd >= 0 ? fd : fail(err, "open", path);
		fd = open(path, OPEN_FLAGS | O_CREAT | O_EXCL, mode);
		if (fd < 0 && errno == EEXIST)
			continue; /* another writer created it first */
		if (fd < 0)
			return fail(err, "create", path);
		if (fchmod(fd, mode) != 0) { /* open() applied the umask */
			fail(err, "chmod", path);
			close(fd);
			return -1;
		}
		return fd;
	}
	snprintf(err, SPOOL_ERR_MAX, "create %s: gave up after %d races", path,
		 SPOOL_REOPEN_MAX);
	return -1;
}

/* 1 when fd still is what path names, 0 when not, -1 on error. */
static int still_linked(int fd, const char *path, struct stat *st, char *err)
{
	struct stat ps;
	if (fstat(fd, st) != 0)
		return fail(err, "fstat", path);
	if (stat(path, &ps) != 0) {
		if (errno == ENOENT)
			return 0;
		return fail(err, "stat", path);
	}
	return st->st_dev == ps.st_dev && st->st_ino == ps.st_ino;
}

/* 1 when the file is empty or ends in '\n', 0 when not, -1 on error. */
static int tail_is_clean(int fd, off_t size, const char *path, char *err)
{
	char last;
	if (size == 0)
		return 1;
	ssize_t n = pread(fd, &last, 1, size - 1);
	if (n != 1) {
		if (n == 0)
			errno = EIO;
		return fail(err, "read tail of", path);
	}
	return last == '\n';
}

/*
 * Under the lock: repairs a torn tail, writes the record in one call, and
 * cuts the file back to its old size when the write falls short.
 */
static int write_record(int fd, const struct stat *st, const char *path,
			const char *line, size_t len, char *err)
{
	struct iovec iov[2];
	int clean = tail_is_clean(fd, st->st_size, path, err);
	int n_iov = 0;
	if (clean < 0)
		return -1;
	if (!clean) {
		iov[n_iov].iov_base = (void *)"\n";
		iov[n_iov++].iov_len = 1;
	}
	iov[n_iov].iov_base = (void *)line;
	iov[n_iov++].iov_len = len;
	size_t want = len + (clean ? 0 : 1);
	ssize_t n = writev(fd, iov, n_iov);
	if (n >= 0 && (size_t)n == want)
		return 0;
	if (n >= 0) {
		snprintf(err, SPOOL_ERR_MAX, "short write to %s: %zd of %zu",
			 path, n, want);
	} else {
		fail(err, "write", path);
	}
	if (ftruncate(fd, st->st_size) != 0) {
		size_t used = strlen(err);
		snprintf(err + used, SPOOL_ERR_MAX - used,
			 "; truncating back failed: %s", strerror(errno));
	}
	return -1;
}

int spool_append(const struct spool *sp, const char *type, const char *line,
		 size_t len, char err[SPOOL_ERR_MAX])
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof path, "%s/%s.jsonl", sp->dir, type);
	if (n < 0 || (size_t)n >= sizeof path) {
		snprintf(err, SPOOL_ERR_MAX, "spool path too long");
		return -1;
	}
	for (int attempt = 0; attempt < SPOOL_REOPEN_MAX; attempt++) {
		struct stat st;
		int fd = open_spool_file(path, sp->file_mode, err);
		if (fd < 0)
			return -1;
		if (spool_flock(fd, LOCK_EX) != 0) {
			fail(err, "flock", path);
			close(fd);
			return -1;
		}
		int linked = still_linked(fd, path, &st, err);
		if (linked == 0) {
			close(fd); /* claimed by a consumer: start over */
			continue;
		}
		/*
		 * The first writer into a file makes its name durable while
		 * still holding the lock, so no later writer can answer
		 * before the file itself would survive a crash.
		 */
		int rc = linked < 0 ? -1 : 0;
		if (rc == 0 && sp->sync && st.st_size == 0)
			rc = fsync_dir(sp->dir, err);
		if (rc == 0)
			rc = write_record(fd, &st, path, line, len, err);
		/*
		 * Sync outside the lock: concurrent writers share commits.
		 * Without sync, close() below releases the lock.
		 */
		if (sp->sync && spool_flock(fd, LOCK_UN) != 0 && rc == 0)
			rc = fail(err, "unlock", path);
		if (rc == 0 && sp->sync && fdatasync(fd) != 0)
			rc = fail(err, "fdatasync", path);
		if (close(fd) != 0 && rc == 0)
			rc = fail(err, "close", path);
		return rc;
	}
	snprintf(err, SPOOL_ERR_MAX, "%s kept being renamed; gave up after %d",
		 path, SPOOL_REOPEN_MAX);
	return -1;
}

/* Opens {type}.jsonl in dirfd for appending, creating it; fd or -1. */
static int open_at(int dirfd, const char *dir, const char *name, mode_t mode,
		   int *created, char *err)
{
	const int flags = OPEN_FLAGS | O_NONBLOCK;
	struct stat st;
	for (int i = 0; i < SPOOL_REOPEN_MAX; i++) {
		int fd = openat(dirfd, name, flags);
		*created = fd < 0 && errno == ENOENT;
		if (*created)
			fd =
			    openat(dirfd, name, flags | O_CREAT | O_EXCL, mode);
		if (fd < 0 && *created && errno == EEXIST)
			continue; /* another writer created it first */
		int e = 0;
		if (fd < 0)
			e = errno;
		else if (fstat(fd, &st) != 0)
			e = errno;
		else if (!S_ISREG(st.st_mode))
			e = EFTYPE_LAYOUT;
		else if (*created && fchmod(fd, mode) != 0)
			e = errno;
		if (e == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		snprintf(err, SPOOL_ERR_MAX, "open %s/%s: %s", dir, name,
			 layout_strerror(e));
		errno = e;
		return -1;
	}
	snprintf(err, SPOOL_ERR_MAX, "create %s/%s: gave up after %d races",
		 dir, name, SPOOL_REOPEN_MAX);
	return -1;
}

int spool_append_at(int dirfd, const char *dir, const char *type,
		    const char *line, size_t len, int sync, mode_t mode,
		    char err[SPOOL_ERR_MAX])
{
	char name[LAYOUT_NAME_MAX];
	char path[PATH_MAX];
	int n = snprintf(name, sizeof name, "%s%s", type, LAYOUT_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof name) {
		snprintf(err, SPOOL_ERR_MAX, "%s: type name too long", dir);
		return -1;
	}
	snprintf(path, sizeof path, "%s/%s", dir, name);
	for (int attempt = 0; attempt < SPOOL_REOPEN_MAX; attempt++) {
		struct stat st;
		struct stat ps;
		int created;
		int fd = open_at(dirfd, dir, name, mode, &created, err);
		if (fd < 0)
			return -1;
		int rc = spool_flock(fd, LOCK_EX) == 0
			     ? 0
			     : fail(err, "flock", path);
		if (rc == 0 && fstat(fd, &st) != 0)
			rc = fail(err, "fstat", path);
		if (rc == 0 &&
		    (fstatat(dirfd, name, &ps, AT_SYMLINK_NOFOLLOW) != 0 ||
		     ps.st_dev != st.st_dev || ps.st_ino != st.st_ino)) {
			close(fd); /* claimed meanwhile: start over */
			continue;
		}
		if (rc == 0 && sync && created && fsync(dirfd) != 0)
			rc = fail(err, "fsync directory", dir);
		if (rc == 0)
			rc = write_record(fd, &st, path, line, len, err);
		if (rc == 0 && sync && fdatasync(fd) != 0)
			rc = fail(err, "fdatasync", path);
		if (close(fd) != 0 && rc == 0)
			rc = fail(err, "close", path);
		return rc;
	}
	snprintf(err, SPOOL_ERR_MAX, "%s kept being renamed; gave up after %d",
		 path, SPOOL_REOPEN_MAX);
	return -1;
}

/* Filesystems on which O_APPEND or flock are not atomic across hosts. */
static const struct {
	unsigned long magic;
	const char *name;
} remote_fs[] = {
    {0x6969, "nfs"},	  {0x517b, "smb"},	{0xff534d42, "cifs"},
    {0xfe534d42, "smb2"}, {0x564c, "ncp"},	{0x73757245, "coda"},
    {0x5346414f, "afs"},  {0x6b414653, "kafs"}, {0x01021997, "9p"},
    {0x00c36400, "ceph"}, {0x47504653, "gpfs"}, {0x0bd00bd0, "lustre"},
};

int spool_check_dir(const char *dir, char err[SPOOL_ERR_MAX])
{
	struct stat st;
	struct statfs fs;
	if (stat(dir, &st) != 0)
		return fail(err, "spool directory", dir);
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, SPOOL_ERR_MAX,
			 "spool directory %s: not a directory", dir);
		errno = ENOTDIR;
		return -1;
	}
	if (statfs(dir, &fs) != 0)
		return fail(err, "statfs", dir);
	for (size_t i = 0; i < sizeof remote_fs / sizeof remote_fs[0]; i++) {
		if ((unsigned long)fs.f_type == remote_fs[i].magic) {
			snprintf(
			    err, SPOOL_ERR_MAX,
			    "spool directory %s is on a network filesystem "
			    "(%s): O_APPEND and flock are not safe there; "
			    "use a local directory",
			    dir, remote_fs[i].name);
			errno = EREMOTE;
			return -1;
		}
	}
	return 0;
}
