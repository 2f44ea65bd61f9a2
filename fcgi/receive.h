/*
 * receive.h - one webhook request, from CGI/FastCGI variables and body to
 * a spooled event and a one-line answer (podio-hook(1), Answers).
 */
#ifndef PODIO_RECEIVE_H
#define PODIO_RECEIVE_H

#include <stddef.h>
#include <sys/types.h>

#include "app.h"

/* How a request is read and answered, whatever the transport. */
struct req_io {
	void *ctx;
	/* A CGI meta-variable, or NULL when unset. */
	const char *(*param)(void *ctx, const char *name);
	/* Up to len body bytes; 0 at end of input, -1 on error. */
	ssize_t (*read)(void *ctx, char *buf, size_t len);
	/* All of buf, or -1. */
	int (*write)(void *ctx, const char *buf, size_t len);
};

/*
 * Handles one request: loads the config if needed, decides, spools,
 * answers.  Never exits; a failure is an answer and a log line.  Returns
 * the HTTP status sent.
 */
int receive(struct app *a, const struct req_io *io);

#endif
