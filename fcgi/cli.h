/*
 * cli.h - the command line's conventions, in one place (as git, curl and
 * systemctl do them):
 *
 *   - every long option takes "--opt value" or "--opt=value";
 *   - the global options --config PATH and -v are accepted before or
 *     after the command;
 *   - -h / --help after any command prints that command's usage to
 *     standard output (exit 0);
 *   - "--" ends the options; later words are arguments even when they
 *     start with '-';
 *   - an unknown option, a missing value, a repeated single option, a
 *     number that is not digits or out of range, or a wrong number of
 *     arguments is one line on standard error that names it (exit 2).
 */
#ifndef PODIO_CLI_H
#define PODIO_CLI_H

#include <stddef.h>

/* How many times a list option (--type GLOB) may be given. */
#define CLI_LIST_MAX 64

enum cli_kind {
	CLI_FLAG,   /* int: set to 1 */
	CLI_STRING, /* const char *: at most once */
	CLI_LIST,   /* struct cli_list: up to CLI_LIST_MAX times */
	CLI_NUMBER, /* unsigned long long, decimal digits in [min, max] */
};

struct cli_list {
	const char *v[CLI_LIST_MAX]; /* point into argv */
	size_t n;
};

struct cli_option {
	const char *name; /* "--max-attempts"; NULL ends a table */
	enum cli_kind kind;
	void *dest; /* int *, const char **, struct cli_list *, or
		       unsigned long long * by kind */
	unsigned long long min, max; /* CLI_NUMBER only */
};

/* The options every command accepts; fcgi/main.c fills them. */
struct cli_globals {
	const char *config; /* --config PATH, or NULL */
	int verbose;	    /* -v */
};

struct cli_command {
	const char *name;  /* "drain", "hook create": prefixes errors */
	const char *usage; /* printed for -h / --help */
	const struct cli_option *opts; /* may be NULL */
	int min_args;
	int max_args; /* -1: any number */
};

enum cli_result {
	CLI_OK = 0, /* parsed: run the command */
	CLI_HELP,   /* usage printed to standard output: exit 0 */
	CLI_ERROR,  /* one line on standard error: exit 2 */
};

/*
 * Parses argv[0..argc) (the words after the command's name) against c and
 * the globals in g.  Arguments are collected into args (room for max_args
 * pointers into argv, or argc when max_args is -1) and counted in *nargs.
 * Destinations of options not given are left untouched, so callers set defaults
 * first.
 */
enum cli_result cli_parse(const struct cli_command *c, struct cli_globals *g,
			  int argc, char **argv, char **args, int *nargs);

/* Prints "podio-hook: CMD: what" on standard error; returns 2. */
int cli_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The exit status for a cli_parse result that is not CLI_OK. */
int cli_exit(enum cli_result r);

#endif
