/*
 * app.h - the program's state: which config, loaded how.
 *
 * fcgi/ reads the environment and the command line; lib/ never does.
 */
#ifndef PODIO_APP_H
#define PODIO_APP_H

#include "../lib/config.h"
#include "../lib/event.h"
#include "../lib/spool.h"

#define PODIO_HOOK_VERSION "0.1.0"

/* The config file's name beside the executable and in /etc. */
#define CONFIG_BASENAME "podio-hook.ini"
#define CONFIG_ENV	"PODIO_HOOK_CONFIG"

struct app {
	const char *config_opt; /* --config, or NULL */
	int loaded;		/* cfg, policy and spool are valid */
	struct config cfg;
	struct event_policy policy;
	struct spool spool;
};

/*
 * Loads the config if it is not loaded yet: --config, else
 * $PODIO_HOOK_CONFIG (which must exist), else podio-hook.ini beside the
 * executable, else /etc/podio-hook.ini.  Applies its log level.  Returns 0,
 * or -1 after logging why (naming every path tried).
 */
int app_load(struct app *a);

/* Forgets the loaded config. */
void app_unload(struct app *a);

#endif
