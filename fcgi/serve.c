#include "serve.h"

#include <errno.h>
#include <limits.h>
#include <fcgiapp.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/num.h"
#include "receive.h"

/* Beyond these a rejected CGI body is left unread (see cgi_discard_input). */
#define CGI_DISCARD_MAX	    (64ull * 1024 * 1024)
#define CGI_DISCARD_WAIT_MS 2000

/* Enough for a burst of Podio deliveries while a request is in flight. */
#define LISTEN_BACKLOG 128

int serve_is_fastcgi(int fd)
{
	int listening = 0;
	socklen_t len = sizeof listening;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0)
		return 0;
	return listening != 0;
}

/* ---- CGI: the environment, fd 0 and fd 1 ---- */

static const char *cgi_param(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
}

/* Body bytes a CGI request has read so far. */
static unsigned long long cgi_consumed;

static ssize_t cgi_read(void *ctx, char *buf, size_t len)
{
	(void)ctx;
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, len);
		if (n > 0)
			cgi_consumed += (unsigned long long)n;
		if (n >= 0 || errno != EINTR)
			return n;
	}
}

/*
 * Reads and drops the rest of a body the answer did not need (413, 415,
 * 403 ...).  mod_cgid hands the body over a socket that is reset when the
 * program exits with bytes unread, and the reset can destroy the answer
 * already written.  Bounded in bytes and time: a client that does not
 * send what it announced is not waited for.
 */
static void cgi_discard_input(void)
{
	const char *cl = getenv("CONTENT_LENGTH");
	char buf[16384];
	unsigned long long want;
	if (cl == NULL || num_parse(cl, 0, ULLONG_MAX, &want) != NUM_OK ||
	    want <= cgi_consumed)
		return;
	want -= cgi_consumed;
	if (want > CGI_DISCARD_MAX)
		return;
	while (want > 0) {
		struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
		if (poll(&pfd, 1, CGI_DISCARD_WAIT_MS) <= 0)
			return;
		ssize_t n = read(STDIN_FILENO, buf,
				 want < sizeof buf ? (size_t)want : sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		want -= (unsigned long long)n;
	}
}

static int cgi_write(void *ctx, const char *buf, size_t len)
{
	(void)ctx;
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int serve_cgi(struct app *a)
{
	const struct req_io io = {NULL, cgi_param, cgi_read, cgi_write};
	/* The web server may close early; a failed write must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	receive(a, &io);
	cgi_discard_input();
	return 0;
}

/* ---- FastCGI via libfcgi ---- */

static const char *fcgi_param(void *ctx, const char *name)
{
	FCGX_Request *req = ctx;
	return FCGX_GetParam(name, req->envp);
}

static ssize_t fcgi_read(void *ctx, char *buf, size_t len)
{
	FCGX_Request *req = ctx;
	/* FCGX_GetStr takes an int; ask in chunks it can express. */
	int want = len > 1 << 30 ? 1 << 30 : (int)len;
	int n = FCGX_GetStr(buf, want, req->in);
	if (n == 0 && FCGX_GetError(req->in) != 0)
		return -1;
	return n;
}

/*
 * Reads and drops the rest of a body the answer did not need.  libfcgi
 * does not: on a connection the web server keeps open (nginx
 * fastcgi_keep_conn, Apache enablereuse) the leftover records would be
 * taken for the next request's and break it.  Past CGI_DISCARD_MAX the
 * connection is closed instead.
 */
static void fcgi_discard_input(FCGX_Request *req)
{
	char buf[16384];
	unsigned long long dropped = 0;
	int n;
	while ((n = FCGX_GetStr(buf, (int)sizeof buf, req->in)) > 0) {
		dropped += (unsigned long long)n;
		if (dropped > CGI_DISCARD_MAX) {
			req->keepConnection = 0;
			return;
		}
	}
}

static int fcgi_write(void *ctx, const char *buf, size_t len)
{
	FCGX_Request *req = ctx;
	if (FCGX_PutStr(buf, (int)len, req->out) != (int)len)
		return -1;
	return 0;
}

/*
 * Stop signals: while no request is in hand (waiting in accept) the
 * handler exits at once; while one is, it only notes the stop, and the
 * loop exits once the answer is out.  A signal landing between accept's
 * return and `busy` being set drops a connection not yet read, so nothing
 * was acknowledged.  (A flag rather than sigprocmask around each request:
 * two system calls fewer per event.)
 */
static volatile sig_atomic_t busy;
static volatile sig_atomic_t stopping;

/* The Unix socket --listen made, removed on the way out. */
static char listen_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static void leave(void)
{
	if (listen_path[0] != '\0')
		unlink(listen_path);
	_exit(0);
}

static void on_stop(int sig)
{
	(void)sig;
	if (!busy)
		leave();
	stopping = 1;
}

static const int stop_signals[] = {SIGTERM, SIGUSR1, SIGINT, SIGHUP};

static int install_stop(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	/* Calls interrupted mid-request resume instead of failing. */
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0];
	     i++)
		sigaddset(&sa.sa_mask, stop_signals[i]);
	for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0];
	     i++) {
		if (sigaction(stop_signals[i], &sa, NULL) != 0)
			return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int serve_fastcgi(struct app *a, int listen_fd)
{
	FCGX_Request req;
	if (install_stop() != 0 || FCGX_Init() != 0 ||
	    FCGX_InitRequest(&req, listen_fd, 0) != 0) {
		log_error("cannot start the FastCGI loop: %s", strerror(errno));
		return 1;
	}
	/* Load now so a bad config is logged at start, not at first use. */
	app_load(a);
	const struct req_io io = {&req, fcgi_param, fcgi_read, fcgi_write};
	for (;;) {
		busy = 0;
		if (stopping)
			leave();
		int rc = FCGX_Accept_r(&req);
		busy = 1;
		if (rc < 0) {
			log_error("FastCGI accept failed: %s", strerror(-rc));
			return 1;
		}
		receive(a, &io);
		fcgi_discard_input(&req);
		FCGX_Finish_r(&req);
	}
}

/* ---- --listen ---- */

static int listen_unix(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	if (strlen(path) >= sizeof sun.sun_path) {
		log_error("--listen %s: path too long", path);
		return -1;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	/* Replace a stale socket, never a file of another kind. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    unlink(path) != 0) {
		log_error("--listen %s: unlink: %s", path, strerror(errno));
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0) {
		log_error("--listen %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memcpy(listen_path, sun.sun_path, sizeof listen_path);
	return fd;
}

static int listen_tcp(const char *spec)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	if (colon == NULL || colon[1] == '\0') {
		log_error("--listen %s: expected HOST:PORT, :PORT or a path",
			  spec);
		return -1;
	}
	size_t hlen = (size_t)(colon - spec);
	if (hlen == 0) /* ":PORT" binds loopback only */
		snprintf(host, sizeof host, "127.0.0.1");
	else if (spec[0] == '[' && hlen >= 2 && spec[hlen - 1] == ']')
		snprintf(host, sizeof host, "%.*s", (int)hlen - 2, spec + 1);
	else
		snprintf(host, sizeof host, "%.*s", (int)hlen, spec);
	struct addrinfo hints = {0};
	struct addrinfo *ai;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(host, colon + 1, &hints, &ai);
	if (gai != 0) {
		log_error("--listen %s: %s", spec, gai_strerror(gai));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0) {
		log_error("--listen %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

int serve_listen(const char *spec)
{
	if (strchr(spec, '/') != NULL)
		return listen_unix(spec);
	return listen_tcp(spec);
}
