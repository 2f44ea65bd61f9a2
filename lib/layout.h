/*
 * layout.h - every name in a spool directory, and how to open them safely.
 *
 *   {type}.jsonl                   pending events; receivers append
 *   {type}.jsonl.claim-<stamp>     a work file: claimed by a consumer,
 *                                  never appended to again (claim.h)
 *   {type}.jsonl.claim-<stamp>.state      its progress (claim.h)
 *   {type}.jsonl.claim-<stamp>.state.tmp  the progress being replaced
 *   failed/{type}.jsonl            dead letters (attempts, last_error added)
 *   bad/{type}.jsonl               quarantined lines, byte for byte
 *   .drain.lock                    one consumer engine at a time
 *   .podio-token                   the OAuth token cache (mode 0600)
 *
 * <stamp> is digits and '-' only.  Names starting with '.' are never
 * event files.  The spool directory itself may be reached through a
 * symbolic link (an administrator's choice); nothing inside it is: every
 * entry is opened relative to a descriptor of the directory, with
 * O_NOFOLLOW, and only regular files (directories for failed/ and bad/)
 * are used.  A symbolic link or a file of another kind is reported by
 * name and left as it is: never read, written through or removed.
 */
#ifndef PODIO_LAYOUT_H
#define PODIO_LAYOUT_H

#include <dirent.h>
#include <stddef.h>
#include <sys/types.h>

#include "event.h"

#define LAYOUT_SUFFIX	    ".jsonl"
#define LAYOUT_CLAIM_MARK   ".jsonl.claim-"
#define LAYOUT_STATE_SUFFIX ".state"
#define LAYOUT_TMP_SUFFIX   ".tmp"
#define LAYOUT_FAILED_DIR   "failed"
#define LAYOUT_BAD_DIR	    "bad"
#define LAYOUT_DRAIN_LOCK   ".drain.lock"
#define LAYOUT_TOKEN_CACHE  ".podio-token"

/* Room for one directory entry's name (NAME_MAX and its NUL). */
#define LAYOUT_NAME_MAX 256

enum layout_kind {
	LAYOUT_OTHER = 0, /* not an event file: ignored */
	LAYOUT_PENDING,	  /* {type}.jsonl */
	LAYOUT_WORK,	  /* {type}.jsonl.claim-<stamp> */
};

/*
 * What the entry name stands for; with LAYOUT_PENDING or LAYOUT_WORK the
 * event type is copied to type.  A type may itself contain ".jsonl"
 * ("a.jsonl.jsonl" is type "a.jsonl"): the last claim mark counts.
 */
enum layout_kind layout_parse(const char *name, char type[EVENT_TYPE_MAX + 1]);

/*
 * Opens the regular file name in dirfd for reading (O_NOFOLLOW, and
 * O_NONBLOCK so that a FIFO planted there cannot hang the open).  Returns
 * the descriptor, or -1 with errno: ELOOP for a symbolic link, EFTYPE_LAYOUT
 * for anything but a regular file, or what open(2) said.
 */
int layout_open_file(int dirfd, const char *name, int flags);

/*
 * Opens the directory name in dirfd (O_NOFOLLOW), creating it with mode
 * when create is set and it is absent.  -1 with errno as above (ELOOP for
 * a symbolic link, ENOTDIR for another kind of file).
 */
int layout_open_dir(int dirfd, const char *name, int create, mode_t mode);

/*
 * A stream of the entries of the directory dirfd, read through a
 * descriptor of its own: dirfd stays open, and its offset is not moved.
 * The caller ends the stream with closedir().  NULL with errno when the
 * directory cannot be read.
 */
DIR *layout_read_dir(int dirfd);

/* errno for "exists but is not a regular file". */
#define EFTYPE_LAYOUT EMEDIUMTYPE

/* A phrase for errno after a layout_open_*: "is a symbolic link", ... */
const char *layout_strerror(int err);

#endif
