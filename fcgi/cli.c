#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../lib/num.h"

int cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "podio-hook: %s%s", cmd != NULL ? cmd : "",
		cmd != NULL ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

int cli_exit(enum cli_result r)
{
	return r == CLI_HELP ? 0 : 2;
}

/* The option named by word (up to '=' when there is one), or NULL. */
static const struct cli_option *find(const struct cli_option *opts,
				     const char *word, size_t len)
{
	for (size_t i = 0; opts != NULL && opts[i].name != NULL; i++) {
		if (strlen(opts[i].name) == len &&
		    strncmp(opts[i].name, word, len) == 0)
			return &opts[i];
	}
	return NULL;
}

/* Stores val into o's destination.  0, or -1 after saying why. */
static int store(const struct cli_command *c, const struct cli_option *o,
		 const char *val)
{
	unsigned long long n;
	const char **s = o->dest;
	struct cli_list *l = o->dest;
	switch (o->kind) {
	case CLI_FLAG:
		*(int *)o->dest = 1;
		return 0;
	case CLI_STRING:
		if (*s != NULL) {
			cli_error(c->name, "option '%s' given twice", o->name);
			return -1;
		}
		*s = val;
		return 0;
	case CLI_LIST:
		if (l->n == CLI_LIST_MAX) {
			cli_error(c->name,
				  "option '%s' given more than %d times",
				  o->name, CLI_LIST_MAX);
			return -1;
		}
		l->v[l->n++] = val;
		return 0;
	case CLI_NUMBER:
		if (num_parse(val, o->min, o->max, &n) != NUM_OK) {
			cli_error(c->name,
				  "option '%s' wants a whole number from %llu "
				  "to %llu, not '%s'",
				  o->name, o->min, o->max, val);
			return -1;
		}
		*(unsigned long long *)o->dest = n;
		return 0;
	}
	return -1;
}

enum cli_result cli_parse(const struct cli_command *c, struct cli_globals *g,
			  int argc, char **argv, char **args, int *nargs)
{
	const struct cli_option globals[] = {
	    {"--config", CLI_STRING, &g->config, 0, 0},
	    {"-v", CLI_FLAG, &g->verbose, 0, 0},
	    {"--verbose", CLI_FLAG, &g->verbose, 0, 0},
	    {NULL, CLI_FLAG, NULL, 0, 0},
	};
	int only_args = 0;
	const char *extra = NULL; /* the first argument past max_args */
	*nargs = 0;
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i];
		if (only_args || w[0] != '-' || w[1] == '\0') {
			if (c->max_args < 0 || *nargs < c->max_args)
				args[(*nargs)++] = argv[i];
			else if (extra == NULL)
				extra = w;
			continue;
		}
		if (strcmp(w, "--") == 0) {
			only_args = 1;
			continue;
		}
		if (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0) {
			fputs(c->usage, stdout);
			return CLI_HELP;
		}
		const char *eq =
		    strncmp(w, "--", 2) == 0 ? strchr(w, '=') : NULL;
		size_t len = eq != NULL ? (size_t)(eq - w) : strlen(w);
		const struct cli_option *o = find(c->opts, w, len);
		if (o == NULL)
			o = find(globals, w, len);
		if (o == NULL) {
			cli_error(c->name, "unknown option '%.*s'", (int)len,
				  w);
			return CLI_ERROR;
		}
		const char *val = NULL;
		if (o->kind == CLI_FLAG && eq != NULL) {
			cli_error(c->name, "option '%s' takes no value",
				  o->name);
			return CLI_ERROR;
		}
		if (o->kind != CLI_FLAG) {
			if (eq != NULL) {
				val = eq + 1;
			} else if (i + 1 < argc) {
				val = argv[++i];
			} else {
				cli_error(c->name, "option '%s' needs a value",
					  o->name);
				return CLI_ERROR;
			}
		}
		if (store(c, o, val) != 0)
			return CLI_ERROR;
	}
	if (extra != NULL) {
		cli_error(c->name,
			  "unexpected argument '%s' (see 'podio-hook "
			  "%s --help')",
			  extra, c->name);
		return CLI_ERROR;
	}
	if (*nargs < c->min_args) {
		cli_error(c->name,
			  "missing arguments (see 'podio-hook %s --help')",
			  c->name);
		return CLI_ERROR;
	}
	return CLI_OK;
}
