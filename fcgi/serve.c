#include "serve.h"

#include <errno.h>
#include <limits.h>
#include <fcgiapp.h>
#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
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
 * connection is closed instead.  Returns 1 when the input was read to its
 * end (nothing the web server sent is left unread), else 0.
 */
static int fcgi_discard_input(FCGX_Request *req)
{
	char buf[16384];
	unsigned long long dropped = 0;
	for (;;) {
		int n = FCGX_GetStr(buf, (int)sizeof buf, req->in);
		if (n <= 0)
			return FCGX_GetError(req->in) == 0;
		dropped += (unsigned long long)n;
		if (dropped > CGI_DISCARD_MAX) {
			req->keepConnection = 0;
			return 0;
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

/* ---- FastCGI: the threads, the config they share, the signals ---- */

/*
 * A config as loaded, shared by the requests that began under it.  A
 * reload (SIGHUP under --listen) or the first good load after a failed one
 * makes a new one current; the old one is freed with its last request, so
 * a request never sees its config change or vanish under it.
 */
struct snapshot {
	struct app app;
	int refs; /* under srv.lock: one while current, one per request */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t idle;	  /* busy fell to 0 while stopping */
	struct snapshot *current; /* never NULL while serving */
	int busy;		  /* requests taken and not yet finished */
	int stopping;		  /* no new request is taken */
	int status;		  /* the exit status once stopped */
	unsigned long long served;
	int listen_fd;
	struct cli_globals opt;
} srv = {.lock = PTHREAD_MUTEX_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER};

/* The Unix socket --listen made, removed on the way out. */
static char listen_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

/*
 * Kept spool descriptors unused this long are closed, so a file a consumer
 * claimed and deleted does not hold its disk space while its type is quiet.
 */
#define IDLE_CLOSE_S 60
/* How often the main thread looks for them. */
#define SWEEP_EVERY_S 10

/*
 * Each thread's stack: a request needs a few tens of KiB, libcurl and its
 * TLS stack during a verification somewhat more; only touched pages count.
 */
#define THREAD_STACK (1024 * 1024)

static struct snapshot *snapshot_new(void)
{
	struct snapshot *s = calloc(1, sizeof *s);
	if (s != NULL) {
		s->app.opt = srv.opt;
		s->refs = 1;
	}
	return s;
}

static void snapshot_free(struct snapshot *s)
{
	spool_close(&s->app.spool);
	app_unload(&s->app);
	free(s);
}

/* Loads the config into s (logging why not); keeps spool files open. */
static int snapshot_load(struct snapshot *s)
{
	if (app_load(&s->app) != 0)
		return -1;
	if (spool_keep_open(&s->app.spool) != 0)
		log_warn("out of memory: spool files are opened per event");
	return 0;
}

static void snapshot_put(struct snapshot *s)
{
	pthread_mutex_lock(&srv.lock);
	int last = --s->refs == 0;
	pthread_mutex_unlock(&srv.lock);
	if (last)
		snapshot_free(s);
}

/* Makes s current (its reference passes to srv); drops the old one. */
static void snapshot_publish(struct snapshot *s)
{
	pthread_mutex_lock(&srv.lock);
	struct snapshot *old = srv.current;
	srv.current = s;
	pthread_mutex_unlock(&srv.lock);
	snapshot_put(old);
}

/* The current snapshot with a reference, or NULL once stopping. */
static struct snapshot *request_begin(void)
{
	pthread_mutex_lock(&srv.lock);
	struct snapshot *s = srv.stopping ? NULL : srv.current;
	if (s != NULL) {
		s->refs++;
		srv.busy++;
	}
	pthread_mutex_unlock(&srv.lock);
	return s;
}

static void request_end(struct snapshot *s)
{
	pthread_mutex_lock(&srv.lock);
	srv.busy--;
	srv.served++;
	if (srv.stopping && srv.busy == 0)
		pthread_cond_signal(&srv.idle);
	pthread_mutex_unlock(&srv.lock);
	snapshot_put(s);
}

/*
 * One request.  Under a config that failed to load, the request loads its
 * own copy (receive() answers 500 and logs why when that fails too); a
 * copy that loads becomes the config of the requests after it.
 */
static void serve_one(struct snapshot *s, const struct req_io *io)
{
	if (s->app.loaded) {
		receive(&s->app, io);
		return;
	}
	struct snapshot *fresh = snapshot_new();
	if (fresh == NULL) { /* never the shared one: its load would race */
		struct app mine = {.opt = srv.opt};
		receive(&mine, io);
		app_unload(&mine);
		return;
	}
	receive(&fresh->app, io);
	if (!fresh->app.loaded) {
		snapshot_free(fresh);
		return;
	}
	if (spool_keep_open(&fresh->app.spool) != 0)
		log_warn("out of memory: spool files are opened per event");
	/* Only in place of a config that failed: a reload may have won. */
	struct snapshot *old = fresh;
	pthread_mutex_lock(&srv.lock);
	if (!srv.current->app.loaded) {
		old = srv.current;
		srv.current = fresh;
	}
	pthread_mutex_unlock(&srv.lock);
	snapshot_put(old);
}

/* Asks the main thread to stop with status (from a worker). */
static void stop_from_worker(int status)
{
	pthread_mutex_lock(&srv.lock);
	srv.status = status;
	pthread_mutex_unlock(&srv.lock);
	/* Every thread but the main one blocks it: the main one gets it. */
	kill(getpid(), SIGTERM);
}

/*
 * Which thread takes a new connection.  Blocked in accept(), threads take
 * turns (the kernel wakes the one that has waited longest), so a lone
 * stream of requests wakes a cold thread each time.  Each thread instead
 * waits in an epoll set of its own with the listening socket added
 * EPOLLEXCLUSIVE: the kernel then wakes the first idle thread in the
 * order the sets were added, so the same few threads take the requests
 * when few come at once.  -1 when epoll is not available: accept() only.
 */
static int listen_waiter(int listen_fd)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE,
				 .data = {.fd = listen_fd}};
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
		log_debug("epoll on the FastCGI socket: %s; accept() only",
			  strerror(errno));
		close(ep);
		ep = -1;
	}
	return ep;
}

/* Until a connection waits (or at once, without epoll). */
static void wait_for_connection(int ep)
{
	struct epoll_event ev;
	while (ep >= 0 && epoll_wait(ep, &ev, 1, -1) < 0 && errno == EINTR)
		;
}

static void *worker(void *arg)
{
	FCGX_Request req;
	int *ep_slot = arg;
	if (FCGX_InitRequest(&req, srv.listen_fd, 0) != 0) {
		log_error("cannot start a FastCGI thread: out of memory");
		stop_from_worker(1);
		return NULL;
	}
	const struct req_io io = {&req, fcgi_param, fcgi_read, fcgi_write};
	int ep = *ep_slot;
	for (;;) {
		/* A kept connection (FCGI_KEEP_CONN) brings its own next. */
		if (req.ipcFd < 0)
			wait_for_connection(ep);
		int rc = FCGX_Accept_r(&req);
		if (rc < 0) {
			log_error("FastCGI accept failed: %s", strerror(-rc));
			stop_from_worker(1);
			return NULL;
		}
		struct snapshot *s = request_begin();
		if (s == NULL) {
			/*
			 * Accepted after the stop: not read, so nothing is
			 * acknowledged; the web server sees it fail, as it
			 * would one still in the listen queue at exit.
			 */
			FCGX_Free(&req, 1);
			return NULL;
		}
		serve_one(s, &io);
		/*
		 * With all input read, close at once: libfcgi otherwise
		 * shuts down, then waits for the web server to close first
		 * (against a reset that unread input would cause), which
		 * costs every request a blocking wait and three calls.
		 */
		if (fcgi_discard_input(&req))
			FCGX_Detach(&req);
		FCGX_Finish_r(&req);
		request_end(s);
	}
}

/* SIGHUP under --listen: the new config serves the requests after it. */
static void reload(void)
{
	struct snapshot *s = snapshot_new();
	if (s == NULL) {
		log_error("config not reloaded: out of memory; keeping the "
			  "one in use");
		return;
	}
	if (snapshot_load(s) != 0) {
		/* app_load logged why. */
		log_error("config not reloaded on SIGHUP; keeping the one in "
			  "use");
		snapshot_free(s);
		return;
	}
	log_info("config reloaded on SIGHUP from %s", s->app.cfg.path);
	snapshot_publish(s);
}

/* Closes the current config's spool files left unused for a while. */
static void sweep(void)
{
	pthread_mutex_lock(&srv.lock);
	struct snapshot *s = srv.current;
	s->refs++;
	pthread_mutex_unlock(&srv.lock);
	spool_close_idle(&s->app.spool, IDLE_CLOSE_S);
	snapshot_put(s);
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGTERM:
		return "SIGTERM";
	case SIGUSR1:
		return "SIGUSR1";
	case SIGINT:
		return "SIGINT";
	case SIGHUP:
		return "SIGHUP";
	default:
		return "a signal";
	}
}

/*
 * The main thread only waits for signals: stop (SIGTERM, SIGUSR1, SIGINT;
 * SIGHUP too when spawned by a web server), reload (SIGHUP under
 * --listen), and every SWEEP_EVERY_S closes idle spool files.  Returns the
 * stop signal.
 */
static int wait_for_stop(const sigset_t *set, const char *listen_spec)
{
	for (;;) {
		struct timespec tick = {SWEEP_EVERY_S, 0};
		int sig = sigtimedwait(set, NULL, &tick);
		if (sig < 0) {
			if (errno == EAGAIN)
				sweep();
			continue;
		}
		if (sig == SIGHUP && listen_spec != NULL) {
			reload();
			continue;
		}
		return sig;
	}
}

/* Each thread's epoll set (see listen_waiter), in the order added. */
static int waiters[CONFIG_THREADS_MAX];

static int start_threads(int n)
{
	pthread_attr_t attr;
	int started = 0;
	if (pthread_attr_init(&attr) != 0)
		return 0;
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (int i = 0; i < n; i++) {
		pthread_t t;
		waiters[i] = listen_waiter(srv.listen_fd);
		int rc = pthread_create(&t, &attr, worker, &waiters[i]);
		if (rc != 0) {
			log_error("cannot start FastCGI thread %d of %d: %s",
				  i + 1, n, strerror(rc));
			if (waiters[i] >= 0)
				close(waiters[i]);
			break;
		}
		started++;
	}
	pthread_attr_destroy(&attr);
	return started;
}

static const int stop_signals[] = {SIGTERM, SIGUSR1, SIGINT, SIGHUP};

int serve_fastcgi(struct app *a, int listen_fd, const char *listen_spec)
{
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0];
	     i++)
		sigaddset(&set, stop_signals[i]);
	/* Blocked here, so in every thread: the main one takes them. */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
	    signal(SIGPIPE, SIG_IGN) == SIG_ERR || FCGX_Init() != 0) {
		log_error("cannot start the FastCGI loop: %s", strerror(errno));
		return 1;
	}
	/*
	 * One malloc arena for all threads: a request makes a few small
	 * allocations, and an arena per thread would multiply the memory a
	 * process keeps.
	 */
	mallopt(M_ARENA_MAX, 1);
	srv.opt = a->opt;
	srv.listen_fd = listen_fd;
	srv.current = snapshot_new();
	if (srv.current == NULL) {
		log_error("cannot start the FastCGI loop: out of memory");
		return 1;
	}
	/* Load now so a bad config is logged at start, not at first use. */
	snapshot_load(srv.current);
	int threads = srv.current->app.loaded ? srv.current->app.cfg.threads
					      : CONFIG_THREADS_DEFAULT;
	if (start_threads(threads) == 0)
		return 1;
	if (listen_spec != NULL)
		log_info("listening on %s threads=%d", listen_spec, threads);
	int sig = wait_for_stop(&set, listen_spec);

	/* Finish the requests in hand; take no new one. */
	pthread_mutex_lock(&srv.lock);
	srv.stopping = 1;
	while (srv.busy > 0)
		pthread_cond_wait(&srv.idle, &srv.lock);
	int status = srv.status;
	unsigned long long served = srv.served;
	pthread_mutex_unlock(&srv.lock);
	if (listen_spec != NULL)
		log_info("stopped by %s after %llu requests on %s",
			 signal_name(sig), served, listen_spec);
	if (listen_path[0] != '\0')
		unlink(listen_path);
	/* The other threads wait in accept(): leave without unwinding. */
	_exit(status);
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
