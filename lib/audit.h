/*
 * audit.h - what `check` finds wrong with a spool directory's ownership
 * and modes: what would stop the spool's owner (the web server's user)
 * from using it, what lets other users write into it, and entries that
 * must not be there (layout.h).  Each finding comes with the command
 * that fixes it.  Read-only.
 */
#ifndef PODIO_AUDIT_H
#define PODIO_AUDIT_H

#include <sys/types.h>

/* Called once per finding: a one-line problem and a one-line fix. */
typedef void (*audit_report_fn)(void *ctx, const char *problem,
				const char *fix);

/*
 * Audits the spool directory dir for a receiver whose new files get
 * file_mode, as seen by the user runner (who runs the check):
 *   - dir writable by others, unless sticky and owned by runner;
 *   - dir, failed/, bad/, .drain.lock, the token cache, or any event,
 *     work or progress file the spool's owner cannot read and write
 *     (and search, for folders);
 *   - symbolic links or files of another kind under a spool name;
 *   - copies or rotations of spool files ({type}.jsonl.1, ...), which
 *     drain never reads;
 *   - a file_mode that lets group or others write.
 * Returns the number of findings, or -1 when dir cannot be examined.
 */
int audit_spool(const char *dir, mode_t file_mode, uid_t runner,
		audit_report_fn report, void *ctx);

#endif
