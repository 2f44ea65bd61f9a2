/*
 * podio-hook - receives Podio webhooks as CGI or FastCGI and spools them;
 * from a shell, the tool that manages the spool (SPEC sections 3 and 8).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/log.h"
#include "app.h"
#include "drain.h"
#include "hookcmd.h"
#include "serve.h"

static const char usage_text[] =
    "usage: podio-hook [--config PATH] COMMAND\n"
    "       podio-hook [--config PATH] --listen HOST:PORT|:PORT|/path.sock\n"
    "\n"
    "Run by a web server (CGI, or FastCGI with a listening socket on\n"
    "standard input) it receives Podio webhooks and spools each event.\n"
    "\n"
    "commands:\n"
    "  check            validate the config, that the spool is writable\n"
    "                   and, with credentials, that they authenticate\n"
    "  hook create REF_TYPE REF_ID TYPE URL   register a hook and request\n"
    "                   its verification (prints the hook id)\n"
    "  hook list [--json] REF_TYPE REF_ID     list hooks\n"
    "  hook delete HOOK_ID    hook verify HOOK_ID    hook validate HOOK_ID "
    "CODE\n"
    "  drain [--type GLOB]... [--exec CMD | --batch CMD] [--max-attempts N]\n"
    "        [--timeout S] [--limit N] [--wait] [--retry-failed] [-v]\n"
    "                   hand spooled events over (default: print them)\n"
    "  status [--json]  pending, in progress, failed, quarantined per type\n"
    "  --listen ADDR    serve FastCGI on ADDR (':PORT' binds 127.0.0.1)\n"
    "  --help           this text\n"
    "  --version        the version\n"
    "\n"
    "The config is --config, else $PODIO_HOOK_CONFIG, else podio-hook.ini\n"
    "beside the executable, else /etc/podio-hook.ini.\n";

static int usage(FILE *to, int status)
{
	fputs(usage_text, to);
	return status;
}

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

static int cmd_check(struct app *a)
{
	char err[SPOOL_ERR_MAX];
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
	return hookcmd_check_auth(a);
}

static int cmd_listen(struct app *a, const char *spec)
{
	int fd = serve_listen(spec);
	if (fd < 0)
		return 1;
	log_info("listening on %s", spec);
	return serve_fastcgi(a, fd);
}

/* The command named at argv[i]; the config, once loaded, stays in *a. */
static int command(struct app *a, int argc, char **argv, int i)
{
	if (strcmp(argv[i], "check") == 0 && i + 1 == argc)
		return cmd_check(a);
	if (strcmp(argv[i], "hook") == 0)
		return hookcmd_main(a, argc - i, argv + i);
	if (strcmp(argv[i], "drain") == 0)
		return drain_main(a, argc - i, argv + i);
	if (strcmp(argv[i], "status") == 0)
		return status_main(a, argc - i, argv + i);
	fprintf(stderr, "podio-hook: unknown command '%s'\n", argv[i]);
	return usage(stderr, 2);
}

int main(int argc, char **argv)
{
	struct app a = {0};
	const char *listen_on = NULL;
	int i = 1;
	int rc;

	if (serve_is_fastcgi(STDIN_FILENO)) {
		/* Spawned: only --config applies (lighttpd bin-path may pass
		 * it). */
		for (i = 1; i + 1 < argc; i++) {
			if (strcmp(argv[i], "--config") == 0)
				a.config_opt = argv[++i];
		}
		return serve_fastcgi(&a, STDIN_FILENO);
	}
	/* A CGI query without '=' may turn into argv: never obey it. */
	if (getenv("GATEWAY_INTERFACE") != NULL) {
		rc = serve_cgi(&a);
		app_unload(&a);
		return rc;
	}

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			a.config_opt = argv[++i];
		} else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
			listen_on = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0) {
			return usage(stdout, 0);
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("podio-hook %s\n", PODIO_HOOK_VERSION);
			return 0;
		} else {
			fprintf(stderr, "podio-hook: unknown option '%s'\n",
				argv[i]);
			return usage(stderr, 2);
		}
	}
	if (listen_on != NULL && i == argc)
		return cmd_listen(&a, listen_on);
	if (i >= argc || listen_on != NULL) {
		fprintf(stderr, "podio-hook: no command, and not run as CGI or "
				"FastCGI\n");
		return usage(stderr, 2);
	}
	rc = command(&a, argc, argv, i);
	app_unload(&a);
	return rc;
}
