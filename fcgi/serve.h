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
 * FastCGI requests on listen_fd until SIGTERM, SIGUSR1, SIGINT or SIGHUP;
 * the request in flight is finished first.  Returns the exit status.
 */
int serve_fastcgi(struct app *a, int listen_fd);

/*
 * Opens a listening socket for --listen: "HOST:PORT", ":PORT" (loopback
 * only) or a path containing '/' (a Unix socket; a stale socket there is
 * replaced).  Returns the descriptor, or -1 after logging why.
 */
int serve_listen(const char *spec);

#endif
