/*
 * config.h - the INI configuration (podio-hook.ini(5)), read with iniparser.
 *
 * Every key is known: an unknown section or key, or a value that does not
 * parse, is an error naming the file, the line where it can be found, and
 * the key.  Besides the fixed sections, any number of [hook NAME] sections
 * declare hooks (struct hook_conf); two sections of one name, or two that
 * declare the same hook (ref, type and url), are errors.  Relative paths are
 * taken relative to the config file's folder. Which file to read is the
 * caller's business (fcgi/ resolves --config, $PODIO_HOOK_CONFIG and the
 * default places).
 */
#ifndef PODIO_CONFIG_H
#define PODIO_CONFIG_H

#include <stddef.h>
#include <sys/types.h>

#include "log.h"

/* Room for "path:line: [section] key: why". */
#define CONFIG_ERR_MAX 1024

/*
 * Podio waits 15 s for an answer; the whole verification (token plus
 * validate) must leave time to spool and answer.
 */
#define CONFIG_TIMEOUT_MAX     14
#define CONFIG_TIMEOUT_DEFAULT 10

/* An event is a few hundred bytes; this bounds what max_body may allow. */
#define CONFIG_MAX_BODY_LIMIT (16u * 1024u * 1024u)

/*
 * Requests one FastCGI process serves at once ([receiver] threads).  Each
 * thread costs a stack and a little heap; 64 is far past what a 2xx within
 * Podio's 15 s needs from one process.
 */
#define CONFIG_THREADS_DEFAULT 4
#define CONFIG_THREADS_MAX     64

/*
 * hook.verify validations in flight at once across the processes of one
 * spool; each may hold a request slot for [podio] timeout, so it must stay
 * below the slots the server gives (processes x threads).
 */
#define CONFIG_INLINE_VERIFY_DEFAULT 1
#define CONFIG_INLINE_VERIFY_MAX     64

struct podio_conf {
	char *api_url; /* no trailing '/' */
	char *client_id;
	char *client_secret;
	char *app_id;
	char *app_token;
	char *username;
	char *password;
	char *ca_file;		  /* absolute, or NULL */
	int timeout;		  /* seconds, 1..CONFIG_TIMEOUT_MAX */
	int inline_verifications; /* 0..CONFIG_INLINE_VERIFY_MAX */
};

/*
 * A hook name: letters, digits, '-' and '_'; it names the hook in
 * `hook sync` lines, so it is short.
 */
#define CONFIG_HOOK_NAME_MAX 64

/* A hook's url: Podio's own limit is lower; this bounds a line. */
#define CONFIG_HOOK_URL_MAX 2048

/*
 * One [hook NAME] section: a hook that should exist and be active
 * (`hook sync`).  Every field is set (all four keys are required).
 */
struct hook_conf {
	char *name;	/* as written in the section header */
	char *ref_type; /* "app", "app_field" or "space" */
	char *ref_id;	/* decimal digits, no leading zero, fits in int64 */
	char *type;	/* an event type Podio documents, not hook.verify */
	char *url;	/* http:// or https://, no blank or control byte */
};

struct config {
	char *path;	      /* the file, as an absolute path */
	char *spool_dir;      /* absolute */
	int sync;	      /* default 1 */
	mode_t file_mode;     /* default 0640 */
	char *secret;	      /* NULL when empty */
	char **allowed_hooks; /* n_allowed strings of digits */
	size_t n_allowed;
	size_t max_body;    /* default 65536 */
	int reject_unknown; /* unknown_types = reject */
	int threads;	    /* 1..CONFIG_THREADS_MAX, FastCGI only */
	struct podio_conf podio;
	struct hook_conf *hooks; /* n_hooks, in the file's order */
	size_t n_hooks;
	enum log_level log_level; /* default LOG_INFO */
};

/*
 * Reads path into *c (which needs no initialisation).  Returns 0, or -1
 * with the reason in err and *c left empty (config_free is harmless).
 * Warns through log.h when the file holds a secret and others may read it.
 */
int config_load(struct config *c, const char *path, char err[CONFIG_ERR_MAX]);

/* Releases what config_load allocated and empties *c. */
void config_free(struct config *c);

/* 1 when every credential needed for an OAuth grant is set. */
int config_has_credentials(const struct config *c);

#endif
