#include "layout.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum layout_kind layout_parse(const char *name, char type[EVENT_TYPE_MAX + 1])
{
	size_t n = strlen(name);
	size_t slen = sizeof LAYOUT_SUFFIX - 1;
	const char *mark = NULL;
	enum layout_kind kind;
	size_t tlen;
	if (name[0] == '.')
		return LAYOUT_OTHER;
	for (const char *p = strstr(name, LAYOUT_CLAIM_MARK); p != NULL;
	     p = strstr(p + 1, LAYOUT_CLAIM_MARK))
		mark = p;
	if (n > slen && strcmp(name + n - slen, LAYOUT_SUFFIX) == 0) {
		kind = LAYOUT_PENDING;
		tlen = n - slen;
	} else if (mark != NULL) {
		const char *stamp = mark + strlen(LAYOUT_CLAIM_MARK);
		if (stamp[0] == '\0' ||
		    strspn(stamp, "0123456789-") != strlen(stamp))
			return LAYOUT_OTHER;
		kind = LAYOUT_WORK;
		tlen = (size_t)(mark - name);
	} else {
		return LAYOUT_OTHER;
	}
	if (!event_type_wellformed(name, tlen))
		return LAYOUT_OTHER;
	memcpy(type, name, tlen);
	type[tlen] = '\0';
	return kind;
}

int layout_open_file(int dirfd, const char *name, int flags)
{
	struct stat st;
	int fd = openat(dirfd, name,
			flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		errno = EFTYPE_LAYOUT;
		return -1;
	}
	/* Regular files never block; later reads and writes need not know. */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

int layout_open_dir(int dirfd, const char *name, int create, mode_t mode)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(dirfd, name, flags);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(dirfd, name, mode) != 0 && errno != EEXIST)
			return -1;
		fd = openat(dirfd, name, flags);
	}
	if (fd < 0 && errno == ENOTDIR) {
		/* O_NOFOLLOW|O_DIRECTORY on a symlink may say either. */
		struct stat st;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			errno = ELOOP;
		else
			errno = ENOTDIR;
	}
	return fd;
}

DIR *layout_read_dir(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return d;
}

const char *layout_strerror(int err)
{
	switch (err) {
	case ELOOP:
		return "is a symbolic link (left alone)";
	case EFTYPE_LAYOUT:
		return "is not a regular file (left alone)";
	case ENOTDIR:
		return "is not a directory (left alone)";
	default:
		return strerror(err);
	}
}
