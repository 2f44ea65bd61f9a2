#include "slot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/*
 * O_NONBLOCK: a FIFO planted under the name must not block the open.
 * O_RDONLY is enough for flock.
 */
#define SLOT_FLAGS (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)

static int fail(char *err, const char *what, const char *dir, const char *name)
{
	int saved = errno;
	snprintf(err, SLOT_ERR_MAX, "%s %s/%s: %s", what, dir, name,
		 strerror(saved));
	errno = saved;
	return -1;
}

/* Opens (creating with mode) the slot file name in dfd; -1 with err. */
static int open_slot(int dfd, const char *dir, const char *name, mode_t mode,
		     char *err)
{
	struct stat st;
	int fd = openat(dfd, name, SLOT_FLAGS);
	if (fd < 0 && errno == ENOENT) {
		fd = openat(dfd, name, SLOT_FLAGS | O_CREAT | O_EXCL, mode);
		/* umask applied by open: the spool's own mode instead */
		if (fd >= 0 && fchmod(fd, mode) != 0) {
			fail(err, "chmod", dir, name);
			close(fd);
			return -1;
		}
		if (fd < 0 && errno == EEXIST) /* another process made it */
			fd = openat(dfd, name, SLOT_FLAGS);
	}
	if (fd < 0)
		return fail(err, "open", dir, name);
	if (fstat(fd, &st) != 0) {
		fail(err, "fstat", dir, name);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, SLOT_ERR_MAX, "%s/%s: not a regular file", dir,
			 name);
		close(fd);
		return -1;
	}
	return fd;
}

int slot_take(const char *dir, const char *prefix, unsigned n, mode_t mode,
	      char err[SLOT_ERR_MAX])
{
	char name[64];
	int errors = 0;
	err[0] = '\0';
	if (n == 0)
		return SLOT_BUSY;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		fail(err, "open directory", dir, "");
		return SLOT_ERROR;
	}
	for (unsigned i = 0; i < n; i++) {
		char why[SLOT_ERR_MAX];
		snprintf(name, sizeof name, "%s%u", prefix, i);
		int fd = open_slot(dfd, dir, name, mode, why);
		if (fd < 0) {
			if (errors++ == 0)
				memcpy(err, why, SLOT_ERR_MAX);
			continue;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			close(dfd);
			return fd;
		}
		if (errno != EWOULDBLOCK && errors++ == 0)
			fail(err, "flock", dir, name);
		close(fd);
	}
	close(dfd);
	return errors > 0 ? SLOT_ERROR : SLOT_BUSY;
}

void slot_release(int fd)
{
	/* Nothing was written through it: only the lock goes with it. */
	if (close(fd) != 0)
		log_warn("releasing a verification slot: %s", strerror(errno));
}
