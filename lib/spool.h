/*
 * spool.h - the writer side of the spool (podio-hook(1), THE SPOOL).
 *
 * Every receiver process appends to {dir}/{type}.jsonl by the same
 * protocol, so concurrent writers never interleave and a consumer that has
 * renamed a file (the claim protocol) never sees a writer append to it
 * afterwards:
 *
 *   open(O_RDWR|O_APPEND[|O_CREAT|O_EXCL]), flock(LOCK_EX), compare fstat of
 *   the descriptor with stat of the path (renamed or removed meanwhile:
 *   close and start over), repair a torn tail with a leading "\n", one
 *   writev for the record, ftruncate back on a short write, unlock, and
 *   with sync fdatasync before reporting success.
 *
 * O_RDWR rather than O_WRONLY: finding a torn tail means
 * reading the last byte.
 */
#ifndef PODIO_SPOOL_H
#define PODIO_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

/* Bounds the open/rename race; a drain renames a file once per run. */
#define SPOOL_REOPEN_MAX 64

/* Room for an error message naming a path and errno text. */
#define SPOOL_ERR_MAX 512

struct spool {
	const char *dir;  /* absolute, no trailing '/' needed */
	int sync;	  /* fdatasync each record before success */
	mode_t file_mode; /* mode of new files, umask not applied */
};

/*
 * Appends line[0..len) (one record, '\n'-terminated) to {dir}/{type}.jsonl.
 * type must already be well-formed (event.h), so it is a safe file name.
 * Returns 0 once the record is in the file (and on disk with sync), else -1
 * with the reason in err; then the file holds no part of the record.
 * (Exception: fdatasync failing after the line was fully written leaves the
 * whole line in place; -1 is returned all the same.)
 */
int spool_append(const struct spool *sp, const char *type, const char *line,
		 size_t len, char err[SPOOL_ERR_MAX]);

/*
 * The same protocol for consumers' own spool-like files (failed/, bad/, a
 * dead letter put back by --retry-failed): {type}.jsonl in the directory
 * dirfd (dir is its path, for messages), never through a symbolic link
 * and only into a regular file (layout.h).  sync: fdatasync before
 * returning, and fsync the directory when the file was created.
 */
int spool_append_at(int dirfd, const char *dir, const char *type,
		    const char *line, size_t len, int sync, mode_t mode,
		    char err[SPOOL_ERR_MAX]);

/* flock(2), taken again when a signal interrupts it.  0, or -1 and errno. */
int spool_flock(int fd, int op);

/*
 * Checks that dir is a directory on a local filesystem: O_APPEND and flock
 * are not safe on NFS, SMB and the like.  Returns 0, or -1 with err set
 * (and errno ENOENT when the directory does not exist).
 */
int spool_check_dir(const char *dir, char err[SPOOL_ERR_MAX]);

#endif
