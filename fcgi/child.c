#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
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

/* Whether v (NAME=value) is named with a prefix of clear or set by env. */
static int replaced(const char *v, const char *const *clear,
		    const struct child_env *env, size_t nenv)
{
	size_t n = strcspn(v, "=");
	for (size_t k = 0; clear != NULL && clear[k] != NULL; k++) {
		if (strncmp(v, clear[k], strlen(clear[k])) == 0)
			return 1;
	}
	for (size_t i = 0; i < nenv; i++) {
		if (strlen(env[i].name) == n && memcmp(v, env[i].name, n) == 0)
			return 1;
	}
	return 0;
}

static void free_envp(char **envp)
{
	for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
		free(envp[i]);
	free(envp);
}

/*
 * The handler's environment: the inherited one without the variables
 * replaced(), then env as NAME=value.  NULL when out of memory.
 */
static char **make_envp(const char *const *clear, const struct child_env *env,
			size_t nenv)
{
	size_t n = 0;
	while (environ[n] != NULL)
		n++;
	char **envp = calloc(n + nenv + 1, sizeof *envp);
	size_t k = 0;
	int ok = envp != NULL;
	for (size_t i = 0; ok && i < n; i++) {
		if (replaced(environ[i], clear, env, nenv))
			continue;
		ok = (envp[k++] = strdup(environ[i])) != NULL;
	}
	for (size_t i = 0; ok && i < nenv; i++) {
		size_t len = strlen(env[i].name) + strlen(env[i].value) + 2;
		char *v = malloc(len);
		if (v != NULL)
			snprintf(v, len, "%s=%s", env[i].name, env[i].value);
		ok = (envp[k++] = v) != NULL;
	}
	if (!ok) {
		free_envp(envp);
		return NULL;
	}
	return envp;
}

/*
 * Starts /bin/sh -c cmd reading in, in a process group of its own, with
 * no signal blocked, SIGPIPE at its default and the environment envp.
 * posix_spawn (a vfork, not a fork) costs the same however much memory
 * the drain holds: its work files are read into memory.  0 with *pid, or
 * an errno value.
 */
static int spawn(pid_t *pid, int in, const char *cmd, char **envp)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	sigset_t dfl;
	char *argv[] = {"sh", "-c", (char *)cmd, NULL};
	int err = posix_spawn_file_actions_init(&fa);
	if (err != 0)
		return err;
	err = posix_spawnattr_init(&at);
	if (err != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return err;
	}
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	if (err == 0)
		err = posix_spawn_file_actions_adddup2(&fa, in, STDIN_FILENO);
	if (err == 0)
		err = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
							POSIX_SPAWN_SETSIGMASK |
							POSIX_SPAWN_SETSIGDEF);
	if (err == 0)
		err = posix_spawnattr_setpgroup(&at, 0);
	if (err == 0)
		err = posix_spawnattr_setsigmask(&at, &none);
	if (err == 0)
		err = posix_spawnattr_setsigdefault(&at, &dfl);
	if (err == 0)
		err = posix_spawn(pid, "/bin/sh", &fa, &at, argv, envp);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return err;
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
	pid_t pid;
	char **envp = make_envp(clear, env, nenv);
	int err = envp != NULL ? spawn(&pid, p[0], cmd, envp) : ENOMEM;
	free_envp(envp);
	if (err != 0) {
		snprintf(why, CHILD_WHY_MAX, "spawn: %s", strerror(err));
		close(p[0]);
		close(p[1]);
		return -1;
	}
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
