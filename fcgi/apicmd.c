#include "apicmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../lib/http.h"

static const char api_usage[] =
    "usage: podio-hook api METHOD PATH [--data JSON | --data @FILE | "
    "--data -]\n"
    "\n"
    "One authenticated call to the Podio API with the credentials in\n"
    "[podio], for handler scripts.  METHOD is GET, POST, PUT or DELETE;\n"
    "PATH starts with '/' (e.g. /item/123, a query string allowed).\n"
    "--data sends a JSON body (Content-Type: application/json): the text\n"
    "itself, @FILE for a file's content, - for standard input; it is\n"
    "checked to be JSON before anything is sent.  The token is cached in\n"
    "the spool directory, shared with verification and the hook commands,\n"
    "and renewed once when Podio rejects it.\n"
    "\n"
    "The answer's body goes to standard output as received (a final\n"
    "newline added).  Exit 0 on a 2xx answer, 1 on another answer or none\n"
    "(the status and Podio's error on standard error), 3 on Podio's rate\n"
    "limit (420 or 429; when it resets on standard error), 2 usage or\n"
    "config error.\n";

static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};

void api_report_rate_limit(const char *cmd, const struct podio *p,
			   const char *text, size_t text_len)
{
	char figures[80] = "";
	char when[96] = "when it resets is not said";
	char stamp[32];
	struct tm tm;
	long long now = (long long)time(NULL);
	long long wait = podio_rate_reset(&p->rate, text, text_len, now);
	time_t at = (time_t)(now + wait);
	if (wait >= 0 && gmtime_r(&at, &tm) != NULL &&
	    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
		snprintf(when, sizeof when, "it resets in %lld s, at %s", wait,
			 stamp);
	if (p->rate.limit[0] != '\0' || p->rate.remaining[0] != '\0')
		snprintf(figures, sizeof figures, " (limit %s, remaining %s)",
			 p->rate.limit[0] != '\0' ? p->rate.limit : "-",
			 p->rate.remaining[0] != '\0' ? p->rate.remaining
						      : "-");
	fprintf(stderr, "podio-hook: %s: Podio's rate limit%s: %s; %s\n", cmd,
		figures, p->err, when);
}

/*
 * Reads all of fd (at most HTTP_BODY_MAX bytes) into a NUL-terminated
 * buffer.  0, or -1 with errno (EFBIG when too large).
 */
static int read_all(int fd, char **out, size_t *len)
{
	size_t cap = 4096;
	size_t n = 0;
	char *buf = malloc(cap + 1);
	if (buf == NULL)
		return -1;
	for (;;) {
		if (n == cap && cap < HTTP_BODY_MAX) {
			char *grown = realloc(buf, cap * 2 + 1);
			if (grown == NULL) {
				free(buf);
				errno = ENOMEM;
				return -1;
			}
			buf = grown;
			cap *= 2;
		}
		/* Full at the limit: a byte more (the spare) is too big. */
		ssize_t r = read(fd, buf + n, n < cap ? cap - n : 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > HTTP_BODY_MAX) {
			free(buf);
			errno = EFBIG;
			return -1;
		}
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* The --data argument's bytes: the text, @FILE or - (standard input). */
static int read_data(const char *spec, char **out, size_t *len)
{
	int fd = STDIN_FILENO;
	const char *what = "standard input";
	if (strcmp(spec, "-") != 0 && spec[0] != '@') {
		*len = strlen(spec);
		*out = strdup(spec);
		return *out != NULL ? 0 : cli_error("api", "out of memory");
	}
	if (spec[0] == '@') {
		what = spec + 1;
		fd = open(what, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return cli_error("api", "--data @%s: %s", what,
					 strerror(errno));
	}
	int rc = read_all(fd, out, len);
	int e = errno;
	if (fd != STDIN_FILENO && close(fd) != 0 && rc == 0) {
		e = errno;
		free(*out);
		*out = NULL;
		rc = -1;
	}
	if (rc != 0)
		return cli_error("api", "--data: reading %s: %s", what,
				 e == EFBIG ? "larger than 4 MiB"
					    : strerror(e));
	return 0;
}

/* 2 after saying why, when the body is not one JSON text. */
static int check_json(const char *body, size_t len)
{
	json_error_t e;
	json_t *j = json_loadb(body, len, JSON_DECODE_ANY, &e);
	if (j == NULL)
		return cli_error("api",
				 "--data is not JSON: %s (line %d, column %d)",
				 e.text, e.line, e.column);
	json_decref(j);
	return 0;
}

/* METHOD (any case) as Podio's upper-case name, or NULL. */
static const char *method_of(const char *word)
{
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		if (strcasecmp(word, methods[i]) == 0)
			return methods[i];
	}
	return NULL;
}

static int check_path(const char *path)
{
	if (path[0] != '/')
		return cli_error("api", "PATH must start with '/', not '%s'",
				 path);
	if (strlen(path) > PODIO_PATH_MAX)
		return cli_error("api", "PATH is longer than %d bytes",
				 PODIO_PATH_MAX);
	for (const unsigned char *c = (const unsigned char *)path; *c != '\0';
	     c++) {
		if (*c <= ' ' || *c == 0x7f)
			return cli_error("api", "PATH holds a blank or control "
						"character (URL-encode it)");
	}
	return 0;
}

/* The body to standard output, with a final newline. */
static int print_body(const struct podio_answer *ans)
{
	int ok = 1;
	if (ans->body_len > 0) {
		ok = fwrite(ans->body, 1, ans->body_len, stdout) ==
		     ans->body_len;
		if (ok && ans->body[ans->body_len - 1] != '\n')
			ok = putchar('\n') != EOF;
	}
	if (fflush(stdout) != 0 || !ok) {
		fprintf(stderr, "podio-hook: api: writing the answer: %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Sends the call and reports its answer; the exit status. */
static int call(struct app *a, const char *method, const char *path,
		const char *body, size_t len)
{
	struct podio_answer ans;
	struct podio *p = &a->podio;
	podio_begin(p, a->cfg.podio.timeout);
	if (podio_request(p, method, path, body, len, &ans) != 0) {
		if (podio_rate_limited(p->status)) {
			api_report_rate_limit("api", p, p->err, strlen(p->err));
			return EXIT_RATE_LIMITED;
		}
		fprintf(stderr, "podio-hook: api: %s %s: %s\n", method, path,
			p->err);
		return 1;
	}
	int rc = 0;
	if (print_body(&ans) != 0)
		rc = 1;
	if (podio_rate_limited(ans.status)) {
		api_report_rate_limit("api", p, ans.body, ans.body_len);
		rc = EXIT_RATE_LIMITED;
	} else if (ans.status < 200 || ans.status > 299) {
		fprintf(stderr, "podio-hook: api: %s %s: %s\n", method, path,
			p->err);
		rc = 1;
	}
	podio_answer_free(&ans);
	return rc;
}

int apicmd_main(struct app *a, int argc, char **argv)
{
	const char *data = NULL;
	char *args[2];
	int nargs;
	char *body = NULL;
	size_t len = 0;
	const struct cli_option opts[] = {
	    {"--data", CLI_STRING, &data, 0, 0},
	    {NULL, CLI_FLAG, NULL, 0, 0},
	};
	const struct cli_command cmd = {"api", api_usage, opts, 2, 2};
	enum cli_result r =
	    cli_parse(&cmd, &a->opt, argc - 1, argv + 1, args, &nargs);
	if (r != CLI_OK)
		return cli_exit(r);
	const char *method = method_of(args[0]);
	if (method == NULL)
		return cli_error("api",
				 "METHOD must be GET, POST, PUT or DELETE, "
				 "not '%s'",
				 args[0]);
	if (check_path(args[1]) != 0)
		return 2;
	if (data != NULL && strcmp(method, "GET") == 0)
		return cli_error("api", "--data needs POST, PUT or DELETE");
	if (data != NULL &&
	    (read_data(data, &body, &len) != 0 || check_json(body, len) != 0)) {
		free(body);
		return 2;
	}
	int rc = 2;
	if (app_load(a) != 0)
		goto out;
	if (!config_has_credentials(&a->cfg)) {
		fprintf(stderr,
			"podio-hook: api: no Podio credentials in %s: set "
			"[podio] client_id, client_secret and app_id + "
			"app_token or username + password\n",
			a->cfg.path);
		goto out;
	}
	rc = call(a, method, args[1], body, len);
out:
	free(body);
	return rc;
}
