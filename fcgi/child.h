/*
 * child.h - runs a handler command for `drain`: /bin/sh -c CMD with the
 * given bytes on its standard input and extra environment, bounded in time.
 */
#ifndef PODIO_CHILD_H
#define PODIO_CHILD_H

#include <stddef.h>
#include <sys/uio.h>

#define CHILD_WHY_MAX 128

struct child_env {
	const char *name;
	const char *value;
};

/*
 * Call once before child_run: blocks SIGCHLD (waited for with
 * sigtimedwait) and ignores SIGPIPE (a handler may not read its input).
 */
void child_setup(void);

/*
 * Runs cmd with segs[0..nseg) written to its standard input, standard
 * output and error inherited, and an environment of its own: the
 * inherited one without the variables whose names start with one of
 * clear[] (NULL-terminated; NULL: none), plus env.  After timeout_s
 * seconds the command's process group is killed.  Returns 0 when it exited
 * 0, else -1 with why ("exit status 3", "killed by signal 9", "timed out
 * after 60 s", or a spawn error).
 */
int child_run(const char *cmd, const struct iovec *segs, size_t nseg,
	      const char *const *clear, const struct child_env *env,
	      size_t nenv, int timeout_s, char why[CHILD_WHY_MAX]);

#endif
