#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Segments per writev when feeding a handler (IOV_MAX is 1024). */
#define FEED_IOV_MAX 256

static sigset_t chld;

void child_setup(void)
{
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Removes the inherited variables named with one of the prefixes. */
static void clear_env(const char *const *clear)
{
	char name[256];
	for (size_t i = 0; clear != NULL && environ[i] != NULL;) {
		const char *v = environ[i];
		size_t k = 0;
		while (clear[k] != NULL &&
		       strncmp(v, clear[k], strlen(clear[k])) != 0)
			k++;
		size_t n = strcspn(v, "=");
		if (clear[k] == NULL || n >= sizeof name) {
			i++;
			continue;
		}
		memcpy(name, v, n);
		name[n] = '\0';
		if (unsetenv(name) != 0)
			_exit(126);
		/* environ[i] now holds the next variable. */
	}
}

static void exec_child(int in, const char *cmd, const char *const *clear,
		       const struct child_env *env, size_t nenv)
{
	sigset_t none;
	setpgid(0, 0);
	if (dup2(in, STDIN_FILENO) < 0)
		_exit(126);
	clear_env(clear);
	for (size_t i = 0; i < nenv; i++) {
		if (setenv(env[i].name, env[i].value, 1) != 0)
			_exit(126);
	}
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	_exit(127);
}

/*
 * Feeds the segments to fd, many per writev, without blocking past the
 * deadline.  Returns 0 when all was written or the reader went away (its
 * exit status decides), -1 on timeout.
 */
static int feed(int fd, const struct iovec *segs, size_t nseg,
		long long deadline)
{
	struct iovec cur[FEED_IOV_MAX];
	size_t i = 0;	 /* next segment */
	size_t done = 0; /* bytes of segs[i] already written */
	while (i < nseg) {
		int n = 0;
		for (size_t k = i; k < nseg && n < FEED_IOV_MAX; k++, n++) {
			size_t skip = k == i ? done : 0;
			cur[n].iov_base = (char *)segs[k].iov_base + skip;
			cur[n].iov_len = segs[k].iov_len - skip;
		}
		ssize_t w = writev(fd, cur, n);
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return 0; /* EPIPE and the like: the reader is gone */
		if (w < 0) {
			long long wait = deadline - now_ms();
			if (wait <= 0)
				return -1;
			struct pollfd pfd = {fd, POLLOUT, 0};
			poll(&pfd, 1, wait > 1000 ? 1000 : (int)wait);
			continue;
		}
		size_t left = (size_t)w;
		while (i < nseg && left >= segs[i].iov_len - done) {
			left -= segs[i].iov_len - done;
			done = 0;
			i++;
		}
		done += left;
	}
	return 0;
}

/* Waits for pid until the deadline; returns its status or -1 on timeout. */
static int reap(pid_t pid, long long deadline, int *status)
{
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
		long long wait = deadline - now_ms();
		if (wait <= 0)
			return -1;
		struct timespec ts = {wait / 1000, (wait % 1000) * 1000000};
		sigtimedwait(&chld, NULL, &ts);
	}
}

int child_run(const char *cmd, const struct iovec *segs, size_t nseg,
	      const char *const *clear, const struct child_env *env,
	      size_t nenv, int timeout_s, char why[CHILD_WHY_MAX])
{
	int p[2];
	int status = 0;
	long long deadline = now_ms() + (long long)timeout_s * 1000;
	if (pipe2(p, O_CLOEXEC) != 0) {
		snprintf(why, CHILD_WHY_MAX, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, CHILD_WHY_MAX, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[1]);
		exec_child(p[0], cmd, clear, env, nenv);
	}
	/* Also here, against a race with the child's own setpgid. */
	setpgid(pid, pid);
	close(p[0]);
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	int fed = feed(p[1], segs, nseg, deadline);
	close(p[1]);
	if (fed != 0 || reap(pid, deadline, &status) != 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		snprintf(why, CHILD_WHY_MAX, "timed out after %d s", timeout_s);
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		snprintf(why, CHILD_WHY_MAX, "exit status %d",
			 WEXITSTATUS(status));
	else
		snprintf(why, CHILD_WHY_MAX, "killed by signal %d",
			 WTERMSIG(status));
	return -1;
}
