/*
 * drain.c - `podio-hook drain`: the command line and the handlers (print,
 * --exec, --batch) of the consumer engine (lib/engine.h).
 */
#include "drain.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/engine.h"
#include "../lib/form.h"
#include "../lib/log.h"
#include "child.h"
#include "fetch.h"
#include "follow.h"

/* Print mode hands lines over in writes of about this size. */
#define PRINT_CHUNK (256u * 1024u)
/* Print mode saves progress after this many events (and at the end). */
#define PRINT_COMMIT_EVERY 4096u

#define DRAIN_ATTEMPTS_DEFAULT 5
#define DRAIN_ATTEMPTS_MAX     1000000 /* what a progress file records */
#define DRAIN_TIMEOUT_DEFAULT  60
#define DRAIN_TIMEOUT_MAX      86400 /* a handler that runs a day is hung */
#define DRAIN_LIMIT_MAX	       1000000000000ULL
#define DRAIN_RESCAN_DEFAULT   30
#define DRAIN_RESCAN_MAX       86400

static const char drain_usage[] =
    "usage: podio-hook drain [--type GLOB]... [--exec CMD | --batch CMD]\n"
    "         [--max-attempts N] [--timeout S] [--limit N] [--wait]\n"
    "         [--retry-failed] [--fetch] [--coalesce] [--follow [--rescan S]]\n"
    "         [--config PATH] [-v]\n"
    "\n"
    "Claims the spool files and hands their events over, oldest first:\n"
    "printed to standard output, or given to CMD (through /bin/sh -c) on\n"
    "its standard input, one event per run with --exec, one file per run\n"
    "with --batch.  Exit 0 from CMD means handled; otherwise the event is\n"
    "offered again on the next run, and after N attempts (default 5) moved\n"
    "to failed/.\n"
    "\n"
    "  --type GLOB       only types matching GLOB (repeatable)\n"
    "  --exec CMD        run CMD once per event\n"
    "  --batch CMD       run CMD once per claimed file\n"
    "  --max-attempts N  attempts before an event is moved to failed/\n"
    "  --timeout S       kill a handler after S seconds (default 60)\n"
    "  --limit N         offer at most N events in this run\n"
    "  --wait            wait for a running drain instead of exiting\n"
    "  --retry-failed    offer the events in failed/ again\n"
    "  --fetch           attach the Podio object the event names "
    "(\"fetched\")\n"
    "  --coalesce        hand repeated deliveries and the *.update events\n"
    "                    of one object over once (the latest)\n"
    "  --follow          keep running: hand events over as they arrive;\n"
    "                    SIGTERM stops it after the handler in flight\n"
    "  --rescan S        with --follow, offer failed events again every\n"
    "                    S seconds (default 30)\n"
    "\n"
    "Exit 0 all handled, 1 some left for retry or failed, 2 usage or\n"
    "config error, 3 stopped by Podio's rate limit.\n";

struct drain {
	struct app *a;
	struct engine_options opt;
	const char *types[CLI_LIST_MAX];
	const char *exec_cmd;
	const char *batch_cmd;
	int timeout_s;
	int follow;
	unsigned rescan_s;
	int fetching; /* --fetch */
	struct fetcher fetch;
	int verbose;
	char *out; /* print mode: lines not yet written */
	size_t out_len;
	int tty;
	unsigned long long shown; /* events handed over, for -v */
	long long shown_ms;
};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -v on a terminal: a progress line, at most five times a second. */
static void progress(struct drain *d, unsigned long long more, int last)
{
	d->shown += more;
	if (!d->verbose || !d->tty)
		return;
	long long now = mono_ms();
	if (!last && now - d->shown_ms < 200)
		return;
	d->shown_ms = now;
	fprintf(stderr, "\rdrain: %llu handed over%s", d->shown,
		last ? "\n" : "");
}

/* ---- print mode ---------------------------------------------------------- */

static int write_all(const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("drain: writing to standard output: %s",
				  n < 0 ? strerror(errno) : "nothing written");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes what is buffered.  0, or -1 (nothing of it counts). */
static int print_commit(void *ctx)
{
	struct drain *d = ctx;
	int rc = write_all(d->out, d->out_len);
	d->out_len = 0;
	return rc;
}

static enum engine_verdict print_one(void *ctx, const struct engine_event *ev,
				     char why[ENGINE_WHY_MAX])
{
	struct drain *d = ctx;
	(void)why;
	if (ev->out_len > PRINT_CHUNK - d->out_len) {
		/* Writing early is safe: a crash repeats lines, never loses. */
		if (print_commit(d) != 0)
			return ENGINE_STOP;
		if (ev->out_len > PRINT_CHUNK) {
			if (write_all(ev->out, ev->out_len) != 0)
				return ENGINE_STOP;
			progress(d, 1, 0);
			return ENGINE_HANDLED;
		}
	}
	memcpy(d->out + d->out_len, ev->out, ev->out_len);
	d->out_len += ev->out_len;
	progress(d, 1, 0);
	return ENGINE_HANDLED;
}

/* ---- --exec: one process per event, params in the environment ------------ */

/* The handler environment's bounds (documented in podio-hook(1)). */
#define PARAM_VALUE_MAX	  4096 /* a longer value is only on stdin */
#define PARAM_NAME_MAX	  256
#define PARAMS_EXPORT_MAX FORM_MAX_FIELDS
#define OMITTED_MAX	  (32u * 1024u)

#define ENV_PARAM_PREFIX "PODIO_PARAM_"
#define ENV_OMITTED	 "PODIO_PARAMS_OMITTED"
#define ENV_EVENT_ID	 "PODIO_EVENT_ID"
#define ENV_EVENT_TYPE	 "PODIO_EVENT_TYPE"

/* What child.c clears from the inherited environment before adding ours. */
static const char *const env_owned[] = {ENV_PARAM_PREFIX, ENV_OMITTED,
					ENV_EVENT_ID, ENV_EVENT_TYPE, NULL};

struct param {
	const char *key;
	const char *value; /* NULL: not a string */
	char *name;	   /* PODIO_PARAM_<NAME>, malloc'd */
	int omitted;
};

/* PODIO_PARAM_ + key upper-cased, every byte outside [A-Z0-9] as '_'. */
static char *env_name(const char *key)
{
	size_t p = sizeof ENV_PARAM_PREFIX - 1;
	size_t n = strlen(key);
	char *s = malloc(p + n + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, ENV_PARAM_PREFIX, p);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)key[i];
		if (c >= 'a' && c <= 'z')
			c = (unsigned char)(c - 'a' + 'A');
		s[p + i] = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
			       ? (char)c
			       : '_';
	}
	s[p + n] = '\0';
	return s;
}

static int by_name(const void *a, const void *b)
{
	const struct param *x = *(const struct param *const *)a;
	const struct param *y = *(const struct param *const *)b;
	return strcmp(x->name, y->name);
}

/*
 * Which params can be exported: strings of at most PARAM_VALUE_MAX bytes
 * under names of at most PARAM_NAME_MAX, the first PARAMS_EXPORT_MAX, and
 * never two that map to one NAME (both are left out).  0, or -1 (memory).
 */
static int mark_omitted(struct param *ps, size_t n)
{
	struct param **by = calloc(n > 0 ? n : 1, sizeof *by);
	if (by == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		ps[i].omitted = ps[i].value == NULL ||
				strlen(ps[i].value) > PARAM_VALUE_MAX ||
				strlen(ps[i].key) > PARAM_NAME_MAX ||
				i >= PARAMS_EXPORT_MAX;
		by[i] = &ps[i];
	}
	qsort(by, n, sizeof *by, by_name);
	for (size_t i = 0; i + 1 < n; i++) {
		if (strcmp(by[i]->name, by[i + 1]->name) == 0)
			by[i]->omitted = by[i + 1]->omitted = 1;
	}
	free(by);
	return 0;
}

/* The original names of the omitted params, comma-separated (bounded). */
static char *omitted_list(const struct param *ps, size_t n)
{
	char *s = malloc(OMITTED_MAX);
	size_t used = 0;
	if (s == NULL)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t k = strlen(ps[i].key);
		if (!ps[i].omitted || used + k + 2 > OMITTED_MAX)
			continue;
		if (used > 0)
			s[used++] = ',';
		memcpy(s + used, ps[i].key, k + 1);
		used += k;
	}
	return s;
}

static enum engine_verdict exec_one(void *ctx, const struct engine_event *ev,
				    char why[ENGINE_WHY_MAX])
{
	struct drain *d = ctx;
	char cwhy[CHILD_WHY_MAX];
	json_t *j = json_loadb(ev->line, ev->len - 1, 0, NULL);
	json_t *params = json_object_get(j, "params");
	size_t n = json_is_object(params) ? json_object_size(params) : 0;
	struct param *ps = calloc(n + 1, sizeof *ps);
	struct child_env *env = calloc(n + 4, sizeof *env);
	char *omitted = NULL;
	size_t k = 0;
	int rc = j != NULL && ps != NULL && env != NULL ? 0 : -1;
	const char *key;
	json_t *val;
	json_object_foreach(params, key, val)
	{
		if (rc != 0 || k >= n)
			break;
		ps[k].key = key;
		ps[k].value = json_string_value(val);
		ps[k].name = env_name(key);
		if (ps[k++].name == NULL)
			rc = -1;
	}
	if (rc == 0)
		rc = mark_omitted(ps, k);
	if (rc == 0)
		omitted = omitted_list(ps, k);
	size_t ne = 0;
	for (size_t i = 0; rc == 0 && i < k; i++) {
		if (!ps[i].omitted) {
			env[ne].name = ps[i].name;
			env[ne++].value = ps[i].value;
		}
	}
	const char *id = json_string_value(json_object_get(j, "id"));
	env[ne].name = ENV_EVENT_ID;
	env[ne++].value = id != NULL ? id : "";
	env[ne].name = ENV_EVENT_TYPE;
	env[ne++].value = ev->type;
	env[ne].name = CONFIG_ENV; /* podio-hook api in a handler: this one */
	env[ne++].value = d->a->cfg.path;
	if (omitted != NULL && omitted[0] != '\0') {
		env[ne].name = ENV_OMITTED;
		env[ne++].value = omitted;
	}
	if (rc == 0 && omitted != NULL) {
		struct iovec seg = {(void *)ev->out, ev->out_len};
		rc = child_run(d->exec_cmd, &seg, 1, env_owned, env, ne,
			       d->timeout_s, cwhy);
		if (rc != 0)
			snprintf(why, ENGINE_WHY_MAX, "%s", cwhy);
	} else {
		rc = -1;
		snprintf(why, ENGINE_WHY_MAX, "out of memory");
	}
	for (size_t i = 0; i < k; i++)
		free(ps[i].name);
	free(ps);
	free(env);
	free(omitted);
	json_decref(j);
	progress(d, rc == 0, 0);
	return rc == 0 ? ENGINE_HANDLED : ENGINE_FAILED;
}

/* ---- --batch: one process per work file ---------------------------------- */

static enum engine_verdict batch_run(void *ctx, const char *type,
				     const struct engine_event *evs, size_t n,
				     char why[ENGINE_WHY_MAX])
{
	struct drain *d = ctx;
	char cwhy[CHILD_WHY_MAX];
	struct iovec *segs = calloc(n, sizeof *segs);
	struct child_env env[] = {{ENV_EVENT_TYPE, type},
				  {CONFIG_ENV, d->a->cfg.path}};
	if (segs == NULL) {
		snprintf(why, ENGINE_WHY_MAX, "out of memory");
		return ENGINE_FAILED;
	}
	for (size_t i = 0; i < n; i++) {
		segs[i].iov_base = (void *)evs[i].out;
		segs[i].iov_len = evs[i].out_len;
	}
	int rc = child_run(d->batch_cmd, segs, n, env_owned, env, 2,
			   d->timeout_s, cwhy);
	free(segs);
	if (rc != 0)
		snprintf(why, ENGINE_WHY_MAX, "%s", cwhy);
	progress(d, rc == 0 ? n : 0, 0);
	return rc == 0 ? ENGINE_HANDLED : ENGINE_FAILED;
}

/* ---- the command --------------------------------------------------------- */

/* 0: run; otherwise exit with *status (usage printed, or an error). */
static int parse_args(struct drain *d, int argc, char **argv, int *status)
{
	struct cli_list types = {{0}, 0};
	unsigned long long max_attempts = DRAIN_ATTEMPTS_DEFAULT;
	unsigned long long timeout = DRAIN_TIMEOUT_DEFAULT;
	unsigned long long limit = ENGINE_NO_LIMIT;
	unsigned long long rescan = DRAIN_RESCAN_DEFAULT;
	const struct cli_option opts[] = {
	    {"--type", CLI_LIST, &types, 0, 0},
	    {"--exec", CLI_STRING, &d->exec_cmd, 0, 0},
	    {"--batch", CLI_STRING, &d->batch_cmd, 0, 0},
	    {"--max-attempts", CLI_NUMBER, &max_attempts, 1,
	     DRAIN_ATTEMPTS_MAX},
	    {"--timeout", CLI_NUMBER, &timeout, 1, DRAIN_TIMEOUT_MAX},
	    {"--limit", CLI_NUMBER, &limit, 0, DRAIN_LIMIT_MAX},
	    {"--wait", CLI_FLAG, &d->opt.wait, 0, 0},
	    {"--retry-failed", CLI_FLAG, &d->opt.retry_failed, 0, 0},
	    {"--coalesce", CLI_FLAG, &d->opt.coalesce, 0, 0},
	    {"--fetch", CLI_FLAG, &d->fetching, 0, 0},
	    {"--follow", CLI_FLAG, &d->follow, 0, 0},
	    {"--rescan", CLI_NUMBER, &rescan, 1, DRAIN_RESCAN_MAX},
	    {NULL, CLI_FLAG, NULL, 0, 0},
	};
	const struct cli_command cmd = {"drain", drain_usage, opts, 0, 0};
	char *args[1]; /* no arguments are accepted */
	int nargs;
	enum cli_result r =
	    cli_parse(&cmd, &d->a->opt, argc - 1, argv + 1, args, &nargs);
	*status = cli_exit(r);
	if (r != CLI_OK)
		return -1;
	*status = 2;
	if (d->exec_cmd != NULL && d->batch_cmd != NULL) {
		cli_error("drain", "--exec and --batch exclude each other");
		return -1;
	}
	/* sh -c '' exits 0: every event would count as handled. */
	const char *hc = d->exec_cmd != NULL ? d->exec_cmd : d->batch_cmd;
	if (hc != NULL && hc[strspn(hc, " \t\n")] == '\0') {
		cli_error("drain", "%s wants a command, not an empty string",
			  d->exec_cmd != NULL ? "--exec" : "--batch");
		return -1;
	}
	for (size_t i = 0; i < types.n; i++) {
		if (types.v[i][0] == '\0') {
			cli_error("drain",
				  "--type wants a glob such as 'item.*'");
			return -1;
		}
		d->types[i] = types.v[i];
	}
	d->opt.types = d->types;
	d->opt.n_types = types.n;
	d->opt.max_attempts = (unsigned)max_attempts;
	d->opt.limit = limit;
	d->timeout_s = (int)timeout;
	d->rescan_s = (unsigned)rescan;
	d->verbose = d->a->opt.verbose;
	return 0;
}

/* --fetch: the object behind the event, before it is handed over. */
static enum engine_verdict drain_prepare(void *ctx,
					 const struct engine_event *ev,
					 char **out, size_t *out_len,
					 char why[ENGINE_WHY_MAX])
{
	struct drain *d = ctx;
	return fetch_event(&d->fetch, ev, out, out_len, why);
}

/* The handler for the chosen mode. */
static int handler(struct drain *d, struct engine_handler *h)
{
	memset(h, 0, sizeof *h);
	h->ctx = d;
	h->commit_every = 1;
	if (d->fetching)
		h->prepare = drain_prepare;
	if (d->batch_cmd != NULL) {
		h->batch = batch_run;
	} else if (d->exec_cmd != NULL) {
		h->one = exec_one;
	} else {
		d->out = malloc(PRINT_CHUNK);
		if (d->out == NULL)
			return -1;
		h->one = print_one;
		h->commit = print_commit;
		h->commit_every = PRINT_COMMIT_EVERY;
	}
	return 0;
}

/* SIGTERM and SIGINT under --follow: stop between events. */
static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

/* No SA_RESTART: the wait for spool changes returns at once. */
static int install_stop(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGTERM, &sa, NULL) != 0 ||
		       sigaction(SIGINT, &sa, NULL) != 0
		   ? -1
		   : 0;
}

/* 0 all handled, 1 some left for retry, failed or a problem, 3 stopped. */
static int exit_status(const struct engine_stats *s)
{
	if (s->broken)
		return 1;
	if (s->stopped)
		return 3;
	return s->retried > 0 || s->dead > 0 || s->quarantined > 0 ||
	       s->problems > 0;
}

int drain_main(struct app *a, int argc, char **argv)
{
	struct drain d;
	struct engine e;
	struct engine_handler h;
	char err[SPOOL_ERR_MAX];
	int rc;
	memset(&d, 0, sizeof d);
	d.a = a;
	if (parse_args(&d, argc, argv, &rc) != 0)
		return rc;
	if (app_load(a) != 0)
		return 2;
	if (spool_check_dir(a->cfg.spool_dir, err) != 0) {
		fprintf(stderr, "podio-hook: drain: %s\n", err);
		return 2;
	}
	d.opt.file_mode = a->cfg.file_mode;
	if (d.fetching && !config_has_credentials(&a->cfg)) {
		fprintf(stderr,
			"podio-hook: drain: --fetch needs Podio credentials in "
			"%s: [podio] client_id, client_secret and app_id + "
			"app_token or username + password\n",
			a->cfg.path);
		return 2;
	}
	d.fetch.a = a;
	d.tty = isatty(STDERR_FILENO);
	if (handler(&d, &h) != 0) {
		fprintf(stderr, "podio-hook: drain: out of memory\n");
		return 1;
	}
	child_setup();
	if (d.follow) {
		/* A service waits out a cron drain rather than exit. */
		d.opt.wait = 1;
		d.opt.stop = &stopping;
		if (install_stop() != 0) {
			fprintf(stderr, "podio-hook: drain: sigaction: %s\n",
				strerror(errno));
			free(d.out);
			return 1;
		}
	}
	int locked = engine_open(&e, a->cfg.spool_dir, &d.opt, &h);
	if (locked <= 0) {
		if (locked == 0 && d.verbose)
			fprintf(stderr, "podio-hook: drain: %s; nothing done\n",
				stopping ? "stopped while waiting for another "
					   "drain's lock"
					 : "another drain is running");
		free(d.out);
		return locked == 0 ? 0 : 1;
	}
	int failed = 0;
	if (d.follow)
		failed = follow_run(&e, &stopping, d.rescan_s) != 0;
	else
		engine_pass(&e);
	engine_close(&e);
	free(d.out);
	progress(&d, 0, 1);
	const struct engine_stats *s = &e.stats;
	if (d.verbose)
		fprintf(stderr,
			"podio-hook: drain: %llu handled, %llu to retry, %llu "
			"failed, %llu quarantined, %u problems, %llu "
			"coalesced, %llu fetched%s\n",
			s->handled, s->retried, s->dead, s->quarantined,
			s->problems, s->coalesced, d.fetch.calls,
			s->stopped ? "; stopped early (rate limit)" : "");
	if (d.follow)
		return failed || s->broken ? 1 : 0;
	return exit_status(s);
}
