/*
 * spool.h - the writer side of the spool (podio-hook(1), THE SPOOL).
 *
 * Every receiver process appends to {dir}/{type}.jsonl by the same
 * protocol, so concurrent writers never interleave and a consumer that has
 * renamed a file (the claim protocol) never sees a writer append to it
 * afterwards:
 *
 *   open(O_RDWR|O_APPEND[|O_CREAT|O_EXCL]), flock(LOCK_EX), compare the
 *   descriptor's device and inode with stat of the path (renamed or removed
 *   meanwhile: close and start over), repair a torn tail with a leading
 *   "\n", one writev for the record, ftruncate back on a short write,
 *   unlock, and with sync fdatasync before reporting success.
 *
 * O_RDWR rather than O_WRONLY: finding a torn tail means
 * reading the last byte.
 *
 * Descriptors.  By default (CGI, the command line) each append opens the
 * file and closes it again.  After spool_keep_open() (a FastCGI process)
 * one descriptor per type stays open across appends and is shared by the
 * process's threads:
 *   - the check under the lock is still made on every append, so a file a
 *     consumer claimed is left alone and the type's file opened afresh;
 *     it also compares the mount (statx's mount id), so a read-only bind
 *     mount laid over the spool is not bypassed by an older descriptor;
 *   - threads take a mutex of the descriptor around flock ... unlock
 *     (flock is held by the open file, not the thread, so it does not
 *     keep two threads of one process apart);
 *   - the torn-tail check (a one-byte read) is skipped when the file
 *     ends exactly where this process's last write to it ended;
 *   - a descriptor whose file was claimed or whose fdatasync failed is
 *     never used for a new append; it is closed once no append uses it;
 *   - at most SPOOL_KEEP_MAX types are kept; beyond that the least
 *     recently used idle descriptor is closed (or, all busy, the append
 *     opens and closes its own);
 *   - spool_close_idle() closes descriptors left unused, so a claimed
 *     and deleted file does not keep its disk space while its type is
 *     quiet.
 *
 * Group commit (sync, kept descriptors).  Appends to one file go in
 * batches: when no batch of the file is in flight, an append writes its
 * record (flock, check, one writev, unlock) and runs fdatasync at once;
 * appends arriving meanwhile queue, and when that fdatasync returns its
 * runner hands the queue on as the next batch to the first of them, which
 * writes all their records with one writev, runs one fdatasync for them,
 * and wakes the others with the result.  So every append is answered after
 * an fdatasync that began after its record was written, appends made while
 * a sync is in flight are covered by the next one, and one sync serves
 * many appends.  A failed write or fdatasync fails every append of its
 * batch and retires the descriptor (the kernel reports a lost write once
 * per open file, so a later sync of it could not be trusted); the next
 * batch opens the file afresh.  Without kept descriptors each append runs
 * its own fdatasync after unlocking, so concurrent processes still share
 * the journal commits.
 */
#ifndef PODIO_SPOOL_H
#define PODIO_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

/* Bounds the open/rename race; a drain renames a file once per run. */
#define SPOOL_REOPEN_MAX 64

/* Room for an error message naming a path and errno text. */
#define SPOOL_ERR_MAX 512

/*
 * Types whose descriptor a process keeps open: Podio documents 26 types
 * and a hook sends a handful; any well-formed type is accepted, so the
 * number of open files must not grow with what senders invent.
 */
#define SPOOL_KEEP_MAX 32

/* The descriptors kept open, private to spool.c. */
struct spool_open;

struct spool {
	const char *dir;	 /* absolute, no trailing '/' needed */
	int sync;		 /* fdatasync each record before success */
	mode_t file_mode;	 /* mode of new files, umask not applied */
	struct spool_open *open; /* NULL: open and close on each append */
};

/*
 * Appends line[0..len) (one record, '\n'-terminated) to {dir}/{type}.jsonl.
 * type must already be well-formed (event.h), so it is a safe file name.
 * Returns 0 once the record is in the file (and on disk with sync), else -1
 * with the reason in err; then the file holds no part of the record.
 * (Exception: fdatasync failing after the line was fully written leaves the
 * whole line in place; -1 is returned all the same.)  With kept
 * descriptors any number of threads may append at once.
 */
int spool_append(const struct spool *sp, const char *type, const char *line,
		 size_t len, char err[SPOOL_ERR_MAX]);

/*
 * From now on sp keeps one descriptor per type open (see above).  Call it
 * before any thread appends.  Returns 0, or -1 when memory runs out (sp
 * then opens and closes as before).
 */
int spool_keep_open(struct spool *sp);

/*
 * Closes kept descriptors that no append is using and that have not been
 * used for idle_s seconds (0: every idle one).  Safe while other threads
 * append.
 */
void spool_close_idle(struct spool *sp, unsigned idle_s);

/*
 * Closes every kept descriptor and releases what spool_keep_open made;
 * sp->open is NULL afterwards.  No append may be in flight.
 */
void spool_close(struct spool *sp);

/*
 * The same protocol for consumers' own spool-like files (failed/, bad/, a
 * dead letter put back by --retry-failed): {type}.jsonl in the directory
 * dirfd (dir is its path, for messages), never through a symbolic link
 * and only into a regular file (layout.h).  sync: fdatasync before
 * returning, and fsync the directory when the file was created.  Opens and
 * closes its own descriptor (sp's kept ones are not used).
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
