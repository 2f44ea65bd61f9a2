/*
 * app.h - the program's state: which config, loaded how.
 *
 * fcgi/ reads the environment and the command line; lib/ never does.
 */
#ifndef PODIO_APP_H
#define PODIO_APP_H

#include "../lib/config.h"
#include "../lib/event.h"
#include "../lib/podio.h"
#include "../lib/spool.h"
#include "cli.h"

#define PODIO_HOOK_VERSION "0.1.0"

/* The config file's name beside the executable and in /etc. */
#define CONFIG_BASENAME "podio-hook.ini"
#define CONFIG_ENV	"PODIO_HOOK_CONFIG"
/* Overrides the libcurl that is loaded on first use (default libcurl.so.4). */
#define LIBCURL_ENV "PODIO_HOOK_LIBCURL"
/* The token cache in the spool directory: a dotfile, never *.jsonl. */
#define TOKEN_CACHE_NAME ".podio-token"

struct app {
	struct cli_globals opt; /* --config and -v */
	int command;		/* a command, not a request: see app_load */
	int loaded;		/* cfg, policy and spool are valid */
	struct config cfg;
	struct event_policy policy;
	struct spool spool;
	struct podio podio; /* valid with loaded: tokens outlive requests */
};

/*
 * Loads the config if it is not loaded yet: --config, else
 * $PODIO_HOOK_CONFIG (which must exist), else podio-hook.ini beside the
 * executable, else /etc/podio-hook.ini.  Applies its log level.  For a
 * command run as root, then switches to the owner and group of the spool
 * directory (setgroups, setgid, setuid; HOME, USER and LOGNAME follow)
 * before anything in the spool is opened, so that a root cron job never
 * leaves a file there that the spool's owner cannot use.  Returns 0, or
 * -1 after logging why (naming every path tried).
 */
int app_load(struct app *a);

/* 1 when s is a non-empty string of at most 20 digits (a Podio id). */
int app_is_id(const char *s);

/* Forgets the loaded config. */
void app_unload(struct app *a);

#endif
