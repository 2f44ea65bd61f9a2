/*
 * serve.h - the three ways requests arrive (podio-hook(1), DESCRIPTION).
 */
#ifndef PODIO_SERVE_H
#define PODIO_SERVE_H

#include "app.h"

/* 1 when fd is a listening socket: we were spawned as a FastCGI app. */
int serve_is_fastcgi(int fd);

/* One CGI request from the environment and standard input.  Exit status. */
int serve_cgi(struct app *a);

/*
 * FastCGI requests on listen_fd, [receiver] threads of them at once, each
 * thread accepting on its own FCGX_Request.  Only the
 * config named by a->opt is taken from a; each request uses the config
 * that was current when it began.
 *
 * SIGTERM, SIGUSR1 and SIGINT stop it: no new request is taken, the ones
 * in flight are finished, and the process exits 0 (1 after a failed
 * accept).  listen_spec is the --listen address, NULL when a web server
 * spawned us.  Under --listen one line is logged at start and one at the
 * stop, and SIGHUP re-reads the config (logged; a config that fails keeps
 * the one in use); spawned, SIGHUP stops like SIGTERM.  Does not return
 * unless it could not start (then: the exit status).
 */
int serve_fastcgi(struct app *a, int listen_fd, const char *listen_spec);

/*
 * Opens a listening socket for --listen: "HOST:PORT", ":PORT" (loopback
 * only) or a path containing '/' (a Unix socket; a stale socket there is
 * replaced).  Returns the descriptor, or -1 after logging why.
 */
int serve_listen(const char *spec);

#endif
