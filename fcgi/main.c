/*
 * podio-hook - receives Podio webhooks as CGI or FastCGI and spools them;
 * from a shell, the tool that manages the spool (podio-hook(1)).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/audit.h"
#include "../lib/log.h"
#include "apicmd.h"
#include "app.h"
#include "drain.h"
#include "hookcmd.h"
#include "serve.h"

static const char usage_text[] =
    "usage: podio-hook [--config PATH] [-v] COMMAND [ARGS]\n"
    "       podio-hook [--config PATH] --listen HOST:PORT|:PORT|/path.sock\n"
    "\n"
    "Run by a web server (CGI, or FastCGI with a listening socket on\n"
    "standard input) it receives Podio webhooks and spools each event.\n"
    "\n"
    "commands:\n"
    "  drain       hand spooled events over (print, --exec or --batch)\n"
    "  status      pending, in progress, failed, quarantined per type\n"
    "  check       validate the config, the spool and the credentials\n"
    "  hook        create, list, delete, verify, validate or sync Podio hooks\n"
    "  api         one authenticated Podio API call, for handler scripts\n"
    "  help [COMMAND]   this text, or a command's usage\n"
    "\n"
    "options (also accepted after the command):\n"
    "  --config PATH    the config file\n"
    "  -v               say more on standard error\n"
    "  --listen ADDR    serve FastCGI on ADDR (':PORT' binds 127.0.0.1)\n"
    "  -h, --help       this text; after a command, its usage\n"
    "  -V, --version    the version\n"
    "\n"
    "The config is --config, else $PODIO_HOOK_CONFIG, else podio-hook.ini\n"
    "beside the executable, else /etc/podio-hook.ini.\n";

static const char check_usage[] =
    "usage: podio-hook check [--config PATH] [-v]\n"
    "\n"
    "Validates the config, that the spool directory is writable, that\n"
    "its owner (the web server's user) can use everything in it, that no\n"
    "other user can write there, and, when Podio credentials are set,\n"
    "that they authenticate.  Each problem is one line on standard error\n"
    "with the command that fixes it.  Run as root, it checks as the\n"
    "spool's owner.\n"
    "Exit 0 ok, 1 a problem found, 2 the config cannot be used.\n";

/* Creates and removes a file in the spool directory. */
static int probe_spool(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/.check-%ld", dir, (long)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "podio-hook: spool %s is not writable: %s\n",
			dir, strerror(errno));
		return -1;
	}
	close(fd);
	if (unlink(path) != 0) {
		fprintf(stderr, "podio-hook: cannot remove %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void report_finding(void *ctx, const char *problem, const char *fix)
{
	(void)ctx;
	fprintf(stderr, "podio-hook: check: %s; fix: %s\n", problem, fix);
}

static int cmd_check(struct app *a, int argc, char **argv)
{
	static const struct cli_command cmd = {"check", check_usage, NULL, 0,
					       0};
	char err[SPOOL_ERR_MAX];
	char *args[1];
	int nargs;
	enum cli_result r =
	    cli_parse(&cmd, &a->opt, argc - 1, argv + 1, args, &nargs);
	if (r != CLI_OK)
		return cli_exit(r);
	if (app_load(a) != 0)
		return 2;
	if (spool_check_dir(a->cfg.spool_dir, err) != 0) {
		fprintf(stderr, "podio-hook: %s\n", err);
		return 1;
	}
	if (probe_spool(a->cfg.spool_dir) != 0)
		return 1;
	printf("config %s: ok\nspool %s: writable\n", a->cfg.path,
	       a->cfg.spool_dir);
	int found = audit_spool(a->cfg.spool_dir, a->cfg.file_mode, geteuid(),
				report_finding, NULL);
	if (found < 0) {
		fprintf(stderr, "podio-hook: check: cannot examine %s: %s\n",
			a->cfg.spool_dir, strerror(errno));
		return 1;
	}
	int auth = hookcmd_check_auth(a);
	return found > 0 || auth != 0 ? 1 : 0;
}

/*
 * --listen: binds (as whoever started it), then, started by root, becomes
 * the spool's owner as the commands do, before any thread or request, so
 * that no root-owned file lands in a spool the web user drains.  For
 * that, root needs the config and the spool at the start.  0 once
 * running as the spool's owner, or -1 after saying why.
 */
static int listen_as_owner(struct app *a)
{
	struct stat st;
	a->command = 1;
	if (app_load(a) != 0) {
		log_error("--listen as root needs its config at the start, to "
			  "run as the spool's owner");
		return -1;
	}
	/* Still root: a root-owned spool, or one that is missing. */
	if (geteuid() == 0 &&
	    (stat(a->cfg.spool_dir, &st) != 0 || st.st_uid != 0)) {
		log_error("--listen as root: the spool %s must exist at the "
			  "start, to run as its owner",
			  a->cfg.spool_dir);
		return -1;
	}
	/* Requests and SIGHUP load it again, as the owner. */
	if (access(a->cfg.path, R_OK) != 0) {
		log_error(
		    "--listen as root runs as the owner of the spool, who "
		    "cannot read the config %s: %s (give it that user's "
		    "group, mode 0640)",
		    a->cfg.path, strerror(errno));
		return -1;
	}
	return 0;
}

static int cmd_listen(struct app *a, const char *spec)
{
	int fd = serve_listen(spec);
	if (fd < 0)
		return 1;
	if (geteuid() == 0 && listen_as_owner(a) != 0) {
		close(fd);
		app_unload(a);
		return 1;
	}
	return serve_fastcgi(a, fd, spec);
}

static int cmd_help(struct app *a, int argc, char **argv);

static const struct {
	const char *name;
	int (*run)(struct app *a, int argc, char **argv);
} commands[] = {
    {"drain", drain_main},  {"status", status_main}, {"check", cmd_check},
    {"hook", hookcmd_main}, {"api", apicmd_main},    {"help", cmd_help},
};

static int (*find_command(const char *name))(struct app *, int, char **)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(commands[i].name, name) == 0)
			return commands[i].run;
	}
	return NULL;
}

/* help [COMMAND [SUBCOMMAND]]: the command's own --help. */
static int cmd_help(struct app *a, int argc, char **argv)
{
	char *words[4];
	if (argc == 1) {
		fputs(usage_text, stdout);
		return 0;
	}
	int (*run)(struct app *, int, char **) = find_command(argv[1]);
	if (run == NULL || run == cmd_help || argc > 3)
		return cli_error("help", "no such command '%s'", argv[1]);
	words[0] = argv[1];
	words[1] = argc == 3 ? argv[2] : "--help";
	words[2] = "--help";
	words[3] = NULL;
	return run(a, argc == 3 ? 3 : 2, words);
}

/* Options before the command; returns the command's index, or < 0. */
static int leading_options(struct app *a, int argc, char **argv,
			   const char **listen_on, int *status)
{
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *w = argv[i];
		const char *eq =
		    strncmp(w, "--", 2) == 0 ? strchr(w, '=') : NULL;
		size_t len = eq != NULL ? (size_t)(eq - w) : strlen(w);
		const char **slot = NULL;
		if (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0) {
			fputs(usage_text, stdout);
			*status = 0;
			return -1;
		}
		if (strcmp(w, "-V") == 0 || strcmp(w, "--version") == 0) {
			printf("podio-hook %s\n", PODIO_HOOK_VERSION);
			*status = 0;
			return -1;
		}
		if (strcmp(w, "-v") == 0 || strcmp(w, "--verbose") == 0) {
			a->opt.verbose = 1;
			continue;
		}
		if (len == 8 && strncmp(w, "--config", len) == 0)
			slot = &a->opt.config;
		else if (len == 8 && strncmp(w, "--listen", len) == 0)
			slot = listen_on;
		if (slot == NULL) {
			*status = cli_error(NULL,
					    "unknown option '%.*s' (see "
					    "'podio-hook --help')",
					    (int)len, w);
			return -1;
		}
		if (*slot != NULL) {
			*status = cli_error(NULL, "option '%.*s' given twice",
					    (int)len, w);
			return -1;
		}
		if (eq == NULL && i + 1 >= argc) {
			*status =
			    cli_error(NULL, "option '%s' needs a value", w);
			return -1;
		}
		*slot = eq != NULL ? eq + 1 : argv[++i];
	}
	return i;
}

int main(int argc, char **argv)
{
	struct app a = {0};
	const char *listen_on = NULL;
	int status = 2;
	int rc;

	if (serve_is_fastcgi(STDIN_FILENO)) {
		/* Spawned: only --config applies (lighttpd bin-path may pass
		 * it). */
		for (int i = 1; i + 1 < argc; i++) {
			if (strcmp(argv[i], "--config") == 0)
				a.opt.config = argv[++i];
		}
		return serve_fastcgi(&a, STDIN_FILENO, NULL);
	}
	/* A CGI query without '=' may turn into argv: never obey it. */
	if (getenv("GATEWAY_INTERFACE") != NULL) {
		rc = serve_cgi(&a);
		app_unload(&a);
		return rc;
	}
	int i = leading_options(&a, argc, argv, &listen_on, &status);
	if (i < 0)
		return status;
	if (listen_on != NULL) {
		if (i < argc)
			return cli_error(NULL,
					 "--listen takes no command, "
					 "not '%s'",
					 argv[i]);
		return cmd_listen(&a, listen_on);
	}
	if (i >= argc) {
		fprintf(stderr, "podio-hook: no command, and not run as CGI or "
				"FastCGI\n");
		fputs(usage_text, stderr);
		return 2;
	}
	int (*run)(struct app *, int, char **) = find_command(argv[i]);
	if (run == NULL)
		return cli_error(NULL,
				 "unknown command '%s' (see "
				 "'podio-hook --help')",
				 argv[i]);
	a.command = 1;
	rc = run(&a, argc - i, argv + i);
	app_unload(&a);
	return rc;
}
