/*
 * slot.h - at most N holders at once across every process of one spool
 * (the inline verifications of podio-hook.ini(5), [podio]
 * inline_verifications).
 *
 * Slot i is the file {dir}/{prefix}{i}: a dotfile, never *.jsonl, so no
 * consumer takes it for events.  It is opened relative to a descriptor of
 * dir with O_NOFOLLOW (a symlink or anything but a regular file there is
 * refused, never followed or read), created with the given mode when
 * missing, and held by flock(LOCK_EX) on that descriptor.  The kernel
 * drops the lock when the descriptor closes, so a process that dies holding
 * a slot frees it.  Taking never waits.
 */
#ifndef PODIO_SLOT_H
#define PODIO_SLOT_H

#include <sys/types.h>

/* Room for an error message naming a path and errno text. */
#define SLOT_ERR_MAX 512

/* No slot is free (slot_take). */
#define SLOT_BUSY (-1)
/* No slot could be tried: err says why (slot_take). */
#define SLOT_ERROR (-2)

/*
 * Takes the first free slot among 0..n-1 of {dir}/{prefix}N.  Returns its
 * descriptor (>= 0), which the caller releases with slot_release();
 * SLOT_BUSY when every slot is held (also when n is 0); SLOT_ERROR with
 * err set when no slot is free and at least one could not be tried.
 * prefix must start with '.' and hold no '/'.
 */
int slot_take(const char *dir, const char *prefix, unsigned n, mode_t mode,
	      char err[SLOT_ERR_MAX]);

/* Gives a slot back (closing its descriptor releases the lock). */
void slot_release(int fd);

#endif
