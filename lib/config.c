#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <iniparser/iniparser.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "event.h"
#include "num.h"

/* Where a value parser says what is wrong with a value. */
#define WHY_MAX 256

typedef int (*parse_fn)(struct config *c, const char *val, char *why);

static char *dup_or_null(const char *s)
{
	return s[0] != '\0' ? strdup(s) : NULL;
}

/* Stores a copy of val in *slot; "" becomes NULL.  -1 when out of memory. */
static int set_str(char **slot, const char *val, char *why)
{
	free(*slot);
	*slot = dup_or_null(val);
	if (val[0] != '\0' && *slot == NULL) {
		snprintf(why, WHY_MAX, "out of memory");
		return -1;
	}
	return 0;
}

static int parse_bool(const char *val, int *out, char *why)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(val, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(val, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	(void)val;
	snprintf(why, WHY_MAX, "expected yes or no");
	return -1;
}

/* A decimal number in [lo, hi]. */
static int parse_num(const char *val, unsigned long lo, unsigned long hi,
		     unsigned long *out, char *why)
{
	unsigned long long v;
	if (num_parse(val, lo, hi, &v) != NUM_OK) {
		snprintf(why, WHY_MAX, "expected a number from %lu to %lu", lo,
			 hi);
		return -1;
	}
	*out = (unsigned long)v;
	return 0;
}

/* Makes a path absolute against the config file's folder. */
static char *resolve(const struct config *c, const char *val)
{
	if (val[0] == '/')
		return strdup(val);
	const char *slash = strrchr(c->path, '/');
	size_t dlen = (size_t)(slash - c->path);
	size_t n = dlen + 1 + strlen(val) + 1;
	char *p = malloc(n);
	if (p != NULL)
		snprintf(p, n, "%.*s/%s", (int)dlen, c->path, val);
	return p;
}

static int set_path(const struct config *c, char **slot, const char *val,
		    char *why)
{
	free(*slot);
	*slot = NULL;
	if (val[0] == '\0')
		return 0;
	*slot = resolve(c, val);
	if (*slot == NULL) {
		snprintf(why, WHY_MAX, "out of memory");
		return -1;
	}
	return 0;
}

static int p_spool_dir(struct config *c, const char *v, char *why)
{
	if (v[0] == '\0') {
		snprintf(why, WHY_MAX, "must not be empty");
		return -1;
	}
	return set_path(c, &c->spool_dir, v, why);
}

static int p_sync(struct config *c, const char *v, char *why)
{
	return parse_bool(v, &c->sync, why);
}

static int p_file_mode(struct config *c, const char *v, char *why)
{
	unsigned long long m;
	if (num_parse_n(v, strlen(v), 8, 0, 0777, &m) != NUM_OK) {
		snprintf(why, WHY_MAX, "expected an octal mode such as 0640");
		return -1;
	}
	if ((m & 0600) != 0600) {
		snprintf(why, WHY_MAX,
			 "the owner must be able to read and write");
		return -1;
	}
	c->file_mode = (mode_t)m;
	return 0;
}

static int p_secret(struct config *c, const char *v, char *why)
{
	return set_str(&c->secret, v, why);
}

static void free_hooks(struct config *c)
{
	for (size_t i = 0; i < c->n_allowed; i++)
		free(c->allowed_hooks[i]);
	free(c->allowed_hooks);
	c->allowed_hooks = NULL;
	c->n_allowed = 0;
}

/* Appends the hook id s[0..n), surrounding blanks trimmed. */
static int add_hook(struct config *c, const char *s, size_t n, char *why)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			n = 0;
	}
	if (n == 0) {
		snprintf(why, WHY_MAX,
			 "expected comma-separated hook ids (digits)");
		return -1;
	}
	char **grown =
	    realloc(c->allowed_hooks, (c->n_allowed + 1) * sizeof *grown);
	char *id = strndup(s, n);
	if (grown != NULL)
		c->allowed_hooks = grown;
	if (grown == NULL || id == NULL) {
		free(id);
		snprintf(why, WHY_MAX, "out of memory");
		return -1;
	}
	c->allowed_hooks[c->n_allowed++] = id;
	return 0;
}

static int p_allowed_hooks(struct config *c, const char *v, char *why)
{
	free_hooks(c);
	if (v[0] == '\0')
		return 0;
	for (;;) {
		const char *comma = strchr(v, ',');
		size_t n = comma != NULL ? (size_t)(comma - v) : strlen(v);
		if (add_hook(c, v, n, why) != 0)
			return -1;
		if (comma == NULL)
			return 0;
		v = comma + 1;
	}
}

static int p_max_body(struct config *c, const char *v, char *why)
{
	unsigned long n;
	if (parse_num(v, 1, CONFIG_MAX_BODY_LIMIT, &n, why) != 0)
		return -1;
	c->max_body = n;
	return 0;
}

static int p_unknown_types(struct config *c, const char *v, char *why)
{
	if (strcasecmp(v, "accept") == 0 || strcasecmp(v, "reject") == 0) {
		c->reject_unknown = strcasecmp(v, "reject") == 0;
		return 0;
	}
	snprintf(why, WHY_MAX, "expected accept or reject");
	return -1;
}

static int p_threads(struct config *c, const char *v, char *why)
{
	unsigned long n;
	if (parse_num(v, 1, CONFIG_THREADS_MAX, &n, why) != 0)
		return -1;
	c->threads = (int)n;
	return 0;
}

static int p_api_url(struct config *c, const char *v, char *why)
{
	size_t n = strlen(v);
	while (n > 8 && v[n - 1] == '/')
		n--;
	if (strncasecmp(v, "https://", 8) != 0 || n <= 8) {
		snprintf(why, WHY_MAX, "expected an https:// URL with a host");
		return -1;
	}
	free(c->podio.api_url);
	c->podio.api_url = strndup(v, n);
	if (c->podio.api_url == NULL) {
		snprintf(why, WHY_MAX, "out of memory");
		return -1;
	}
	return 0;
}

#define STR_KEY(field)                                                         \
	static int p_##field(struct config *c, const char *v, char *why)       \
	{                                                                      \
		return set_str(&c->podio.field, v, why);                       \
	}
STR_KEY(client_id)
STR_KEY(client_secret)
STR_KEY(app_id)
STR_KEY(app_token)
STR_KEY(username)
STR_KEY(password)

static int p_timeout(struct config *c, const char *v, char *why)
{
	unsigned long n;
	if (parse_num(v, 1, CONFIG_TIMEOUT_MAX, &n, why) != 0)
		return -1;
	c->podio.timeout = (int)n;
	return 0;
}

static int p_inline_verifications(struct config *c, const char *v, char *why)
{
	unsigned long n;
	if (parse_num(v, 0, CONFIG_INLINE_VERIFY_MAX, &n, why) != 0)
		return -1;
	c->podio.inline_verifications = (int)n;
	return 0;
}

static int p_ca_file(struct config *c, const char *v, char *why)
{
	return set_path(c, &c->podio.ca_file, v, why);
}

static int p_level(struct config *c, const char *v, char *why)
{
	if (log_level_parse(v, &c->log_level) == 0)
		return 0;
	snprintf(why, WHY_MAX, "expected error, warn, info or debug");
	return -1;
}

static const struct key_spec {
	const char *section;
	const char *key;
	parse_fn parse;
	int holds_secret;
} keys[] = {
    {"spool", "dir", p_spool_dir, 0},
    {"spool", "sync", p_sync, 0},
    {"spool", "file_mode", p_file_mode, 0},
    {"receiver", "secret", p_secret, 1},
    {"receiver", "allowed_hooks", p_allowed_hooks, 0},
    {"receiver", "max_body", p_max_body, 0},
    {"receiver", "unknown_types", p_unknown_types, 0},
    {"receiver", "threads", p_threads, 0},
    {"podio", "api_url", p_api_url, 0},
    {"podio", "client_id", p_client_id, 0},
    {"podio", "client_secret", p_client_secret, 1},
    {"podio", "app_id", p_app_id, 0},
    {"podio", "app_token", p_app_token, 1},
    {"podio", "username", p_username, 0},
    {"podio", "password", p_password, 1},
    {"podio", "timeout", p_timeout, 0},
    {"podio", "ca_file", p_ca_file, 0},
    {"podio", "inline_verifications", p_inline_verifications, 0},
    {"log", "level", p_level, 0},
};

#define N_KEYS (sizeof keys / sizeof keys[0])

static int known_section(const char *s)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (strcmp(keys[i].section, s) == 0)
			return 1;
	}
	return 0;
}

static const struct key_spec *find_key(const char *sec, size_t slen,
				       const char *key)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (strlen(keys[i].section) == slen &&
		    strncmp(keys[i].section, sec, slen) == 0 &&
		    strcmp(keys[i].key, key) == 0)
			return &keys[i];
	}
	return NULL;
}

/* Trims blanks in place; returns the first non-blank. */
static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/*
 * The line on which [section] key (or, with key NULL, the section header)
 * stands; 0 when it cannot be found.  iniparser keeps no line numbers, so
 * the file is scanned again, only to name the line in an error.
 */
static int line_of(const char *path, const char *section, const char *key)
{
	FILE *f = fopen(path, "r");
	char buf[1024];
	char cur[256] = "";
	int line = 0;
	if (f == NULL)
		return 0;
	while (fgets(buf, sizeof buf, f) != NULL) {
		char *s = trim(buf);
		line++;
		if (s[0] == '[') {
			char *close = strchr(s, ']');
			if (close != NULL)
				*close = '\0';
			snprintf(cur, sizeof cur, "%s", trim(s + 1));
			if (key == NULL && strcasecmp(cur, section) == 0)
				goto found;
			continue;
		}
		char *eq = strchr(s, '=');
		if (key == NULL || eq == NULL || strcasecmp(cur, section) != 0)
			continue;
		*eq = '\0';
		if (strcasecmp(trim(s), key) == 0)
			goto found;
	}
	line = 0;
found:
	fclose(f);
	return line;
}

static int located(char *err, const struct config *c, const char *section,
		   const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Formats "path:line: [section] key: <fmt>" into err; returns -1. */
static int located(char *err, const struct config *c, const char *section,
		   const char *key, const char *fmt, ...)
{
	char msg[CONFIG_ERR_MAX / 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	int line = line_of(c->path, section, key);
	if (line == 0 && key != NULL) /* a missing key: where its section is */
		line = line_of(c->path, section, NULL);
	char where[32] = "";
	if (line > 0)
		snprintf(where, sizeof where, ":%d", line);
	snprintf(err, CONFIG_ERR_MAX, "%s%s: [%s]%s%s: %s", c->path, where,
		 section, key != NULL ? " " : "", key != NULL ? key : "", msg);
	return -1;
}

/*
 * iniparser reports syntax errors through a callback; keep the first.  Its
 * message quotes the offending line, which may hold a secret (a "secret
 * S3cr3t" that lacks its '='): only the file and the line number are kept.
 * The callback and this buffer are global: one load at a time (a FastCGI
 * process reloads while its threads serve requests).
 */
static char ini_error[CONFIG_ERR_MAX];
static pthread_mutex_t ini_lock = PTHREAD_MUTEX_INITIALIZER;

static int capture_ini_error(const char *fmt, ...)
{
	va_list ap;
	if (ini_error[0] != '\0')
		return 0;
	va_start(ap, fmt);
	if (strstr(fmt, "syntax error") != NULL) {
		/* "iniparser: syntax error in %s (%d):\n-> %s\n" */
		const char *path = va_arg(ap, const char *);
		int line = va_arg(ap, int);
		snprintf(ini_error, sizeof ini_error,
			 "%s:%d: syntax error: expected [section], key = value "
			 "or a ; comment (the line is not shown: it may hold a "
			 "secret)",
			 path, line);
	} else if (strstr(fmt, "too long") != NULL) {
		/* "iniparser: input line too long in %s (%d)\n" */
		const char *path = va_arg(ap, const char *);
		int line = va_arg(ap, int);
		snprintf(ini_error, sizeof ini_error, "%s:%d: line too long",
			 path, line);
	} else {
		/* The other messages name the file only. */
		vsnprintf(ini_error, sizeof ini_error, fmt, ap);
	}
	va_end(ap);
	size_t n = strlen(ini_error);
	while (n > 0 && (ini_error[n - 1] == '\n' || ini_error[n - 1] == ' '))
		ini_error[--n] = '\0';
	for (char *p = ini_error; *p != '\0'; p++) {
		if (*p == '\n')
			*p = ' ';
	}
	return 0;
}

/* ---- [hook NAME] sections ------------------------------------------- */

/*
 * The NAME of a "hook NAME" section (iniparser gives it lower-cased, as
 * every section), with its length in *n; NULL when sec[0..slen) is
 * another section.  "[hook]" alone gives an empty NAME.
 */
static const char *hook_name_of(const char *sec, size_t slen, size_t *n)
{
	if (slen < 4 || strncasecmp(sec, "hook", 4) != 0)
		return NULL;
	if (slen > 4 && sec[4] != ' ' && sec[4] != '\t')
		return NULL;
	size_t i = 4;
	while (i < slen && (sec[i] == ' ' || sec[i] == '\t'))
		i++;
	*n = slen - i;
	return sec + i;
}

static int hook_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > CONFIG_HOOK_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!isalnum(ch) && ch != '-' && ch != '_')
			return 0;
	}
	return 1;
}

/*
 * Looks for the headers of `section` in the file (compared without case,
 * as iniparser does: it lower-cases section names and merges repeated
 * ones).  Copies the first one's text as written to out and returns the
 * line of the second one, or 0 when there is only one.
 */
static int headers_named(const char *path, const char *section, char *out,
			 size_t n)
{
	FILE *f = fopen(path, "r");
	char buf[1024];
	int count = 0;
	int line = 0;
	if (f == NULL)
		return 0;
	while (fgets(buf, sizeof buf, f) != NULL) {
		char *s = trim(buf);
		char *close = strchr(s, ']');
		line++;
		if (s[0] != '[' || close == NULL)
			continue;
		*close = '\0';
		s = trim(s + 1);
		if (strcasecmp(s, section) != 0)
			continue;
		if (count++ == 1)
			break;
		snprintf(out, n, "%s", s);
	}
	fclose(f);
	return count > 1 ? line : 0;
}

static struct hook_conf *find_hook(struct config *c, const char *name, size_t n)
{
	for (size_t i = 0; i < c->n_hooks; i++) {
		if (strlen(c->hooks[i].name) == n &&
		    strncasecmp(c->hooks[i].name, name, n) == 0)
			return &c->hooks[i];
	}
	return NULL;
}

/* Starts the hook of section sec (as iniparser gives it). */
static int hook_begin(struct config *c, const char *sec, const char *name,
		      size_t n, char *err)
{
	char written[256] = "";
	if (n == 0)
		return located(err, c, sec, NULL,
			       "a hook section needs a name: [hook NAME]");
	if (!hook_name_ok(name, n))
		return located(err, c, sec, NULL,
			       "a hook's NAME is 1 to %d letters, digits, "
			       "'-' or '_'",
			       CONFIG_HOOK_NAME_MAX);
	int again = headers_named(c->path, sec, written, sizeof written);
	if (again > 0) {
		snprintf(err, CONFIG_ERR_MAX,
			 "%s:%d: [%s]: section given twice", c->path, again,
			 written);
		return -1;
	}
	if (find_hook(c, name, n) != NULL) /* "[hook a]" and "[hook  a]" */
		return located(err, c, sec, NULL, "hook name given twice");
	struct hook_conf *grown =
	    realloc(c->hooks, (c->n_hooks + 1) * sizeof *grown);
	if (grown == NULL)
		return located(err, c, sec, NULL, "out of memory");
	c->hooks = grown;
	struct hook_conf *h = &c->hooks[c->n_hooks];
	memset(h, 0, sizeof *h);
	/* The name as written, when the file still says so. */
	const char *as_written = name;
	size_t wn = n;
	if (written[0] != '\0') {
		const char *w = hook_name_of(written, strlen(written), &wn);
		if (w != NULL && wn == n)
			as_written = w;
		else
			wn = n;
	}
	h->name = strndup(as_written, wn);
	if (h->name == NULL)
		return located(err, c, sec, NULL, "out of memory");
	c->n_hooks++;
	return 0;
}

static int h_ref_type(struct hook_conf *h, const char *v, char *why)
{
	if (strcmp(v, "app") != 0 && strcmp(v, "app_field") != 0 &&
	    strcmp(v, "space") != 0) {
		snprintf(why, WHY_MAX,
			 "expected app, app_field or space, got '%s'", v);
		return -1;
	}
	return set_str(&h->ref_type, v, why);
}

static int h_ref_id(struct hook_conf *h, const char *v, char *why)
{
	unsigned long long id;
	char buf[24];
	if (num_parse(v, 1, INT64_MAX, &id) != NUM_OK) {
		snprintf(why, WHY_MAX, "expected a Podio id (digits), got '%s'",
			 v);
		return -1;
	}
	snprintf(buf, sizeof buf, "%llu", id);
	return set_str(&h->ref_id, buf, why);
}

static int h_type(struct hook_conf *h, const char *v, char *why)
{
	if (!event_type_wellformed(v, strlen(v)) || !event_type_known(v) ||
	    strcmp(v, "hook.verify") == 0) {
		snprintf(why, WHY_MAX,
			 "expected an event type Podio sends to hooks, such "
			 "as item.create, got '%s'",
			 v);
		return -1;
	}
	return set_str(&h->type, v, why);
}

static int h_url(struct hook_conf *h, const char *v, char *why)
{
	size_t scheme = strncasecmp(v, "https://", 8) == 0  ? 8
			: strncasecmp(v, "http://", 7) == 0 ? 7
							    : 0;
	size_t n = strlen(v);
	int clean = 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch <= ' ' || ch == 0x7f)
			clean = 0;
	}
	if (scheme == 0 || n == scheme || v[scheme] == '/' || !clean ||
	    n > CONFIG_HOOK_URL_MAX ||
	    !utf8_valid((const unsigned char *)v, n)) {
		/* Not echoed: the url may carry the receiver's secret. */
		snprintf(why, WHY_MAX,
			 "expected an http:// or https:// URL with a host, "
			 "UTF-8 without blank or control character, at most %d "
			 "bytes",
			 CONFIG_HOOK_URL_MAX);
		return -1;
	}
	return set_str(&h->url, v, why);
}

static const struct {
	const char *key;
	int (*parse)(struct hook_conf *h, const char *val, char *why);
	size_t offset;
} hook_keys[] = {
    {"ref_type", h_ref_type, offsetof(struct hook_conf, ref_type)},
    {"ref_id", h_ref_id, offsetof(struct hook_conf, ref_id)},
    {"type", h_type, offsetof(struct hook_conf, type)},
    {"url", h_url, offsetof(struct hook_conf, url)},
};

#define N_HOOK_KEYS (sizeof hook_keys / sizeof hook_keys[0])

/* One key of a [hook NAME] section. */
static int hook_key(struct config *c, const char *sec, const char *name,
		    size_t n, const char *key, const char *val, int *secrets,
		    char *err)
{
	char why[WHY_MAX];
	struct hook_conf *h = find_hook(c, name, n);
	size_t i = 0;
	while (i < N_HOOK_KEYS && strcmp(hook_keys[i].key, key) != 0)
		i++;
	if (i == N_HOOK_KEYS)
		return located(err, c, sec, key, "unknown key");
	if (h == NULL) /* iniparser gives the section first */
		return located(err, c, sec, key, "key outside its section");
	if (hook_keys[i].parse(h, val, why) != 0)
		return located(err, c, sec, key, "%s", why);
	if (strcmp(key, "url") == 0 && strstr(val, "secret=") != NULL)
		*secrets = 1; /* the receiver's secret, in the query */
	return 0;
}

/* Every hook has its four keys, and no two declare the same hook. */
static int hooks_complete(struct config *c, char *err)
{
	char sec[CONFIG_HOOK_NAME_MAX + 8];
	for (size_t i = 0; i < c->n_hooks; i++) {
		const struct hook_conf *h = &c->hooks[i];
		snprintf(sec, sizeof sec, "hook %s", h->name);
		for (size_t k = 0; k < N_HOOK_KEYS; k++) {
			char *const *v = (char *const *)((const char *)h +
							 hook_keys[k].offset);
			if (*v == NULL)
				return located(err, c, sec, hook_keys[k].key,
					       "required");
		}
		for (size_t j = 0; j < i; j++) {
			const struct hook_conf *o = &c->hooks[j];
			if (strcmp(h->ref_type, o->ref_type) == 0 &&
			    strcmp(h->ref_id, o->ref_id) == 0 &&
			    strcmp(h->type, o->type) == 0 &&
			    strcmp(h->url, o->url) == 0)
				return located(err, c, sec, NULL,
					       "declares the same hook as "
					       "[hook %s]",
					       o->name);
		}
	}
	return 0;
}

static void free_hook_confs(struct config *c)
{
	for (size_t i = 0; i < c->n_hooks; i++) {
		free(c->hooks[i].name);
		free(c->hooks[i].ref_type);
		free(c->hooks[i].ref_id);
		free(c->hooks[i].type);
		free(c->hooks[i].url);
	}
	free(c->hooks);
	c->hooks = NULL;
	c->n_hooks = 0;
}

static void set_defaults(struct config *c)
{
	c->sync = 1;
	c->file_mode = 0640;
	c->max_body = 65536;
	c->podio.timeout = CONFIG_TIMEOUT_DEFAULT;
	c->podio.inline_verifications = CONFIG_INLINE_VERIFY_DEFAULT;
	c->threads = CONFIG_THREADS_DEFAULT;
	c->log_level = LOG_INFO;
}

/* Applies one dictionary entry ("section" or "section:key"). */
static int apply(struct config *c, const char *name, const char *val,
		 int *secrets, char *err)
{
	char why[WHY_MAX];
	const char *colon = strchr(name, ':');
	const char *hook;
	size_t hn;
	/* iniparser stores a section as an entry without a value. */
	if (val == NULL) {
		hook = hook_name_of(name, strlen(name), &hn);
		if (hook != NULL)
			return hook_begin(c, name, hook, hn, err);
		if (!known_section(name))
			return located(err, c, name, NULL, "unknown section");
		return 0;
	}
	if (colon == NULL) /* a key before any [section] */
		return located(err, c, "", name, "key outside a section");
	size_t slen = (size_t)(colon - name);
	char section[256];
	snprintf(section, sizeof section, "%.*s", (int)slen, name);
	hook = hook_name_of(name, slen, &hn);
	if (hook != NULL)
		return hook_key(c, section, hook, hn, colon + 1, val, secrets,
				err);
	const struct key_spec *k = find_key(name, slen, colon + 1);
	if (k == NULL)
		return located(err, c, section, colon + 1, "unknown key");
	if (k->parse(c, val, why) != 0)
		return located(err, c, section, colon + 1, "%s", why);
	if (k->holds_secret && val[0] != '\0')
		*secrets = 1;
	return 0;
}

static int load_dict(struct config *c, dictionary *d, int *secrets, char *err)
{
	for (ssize_t i = 0; i < d->size; i++) {
		if (d->key[i] == NULL)
			continue;
		if (apply(c, d->key[i], d->val[i], secrets, err) != 0)
			return -1;
	}
	if (c->spool_dir == NULL)
		return located(err, c, "spool", "dir", "required");
	return hooks_complete(c, err);
}

int config_load(struct config *c, const char *path, char err[CONFIG_ERR_MAX])
{
	struct stat st;
	int secrets = 0;
	memset(c, 0, sizeof *c);
	set_defaults(c);
	if (stat(path, &st) != 0) {
		snprintf(err, CONFIG_ERR_MAX, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, CONFIG_ERR_MAX, "%s: not a regular file", path);
		return -1;
	}
	c->path = realpath(path, NULL);
	if (c->path == NULL) {
		snprintf(err, CONFIG_ERR_MAX, "%s: %s", path, strerror(errno));
		return -1;
	}
	pthread_mutex_lock(&ini_lock);
	ini_error[0] = '\0';
	iniparser_set_error_callback(capture_ini_error);
	dictionary *d = iniparser_load(c->path);
	int rc = -1;
	if (d == NULL || ini_error[0] != '\0') {
		if (ini_error[0] != '\0')
			snprintf(err, CONFIG_ERR_MAX, "%s", ini_error);
		else
			snprintf(err, CONFIG_ERR_MAX, "%s: cannot be read",
				 c->path);
	} else {
		rc = load_dict(c, d, &secrets, err);
	}
	if (d != NULL)
		iniparser_freedict(d);
	pthread_mutex_unlock(&ini_lock);
	if (rc != 0) {
		config_free(c);
		return -1;
	}
	if (c->podio.api_url == NULL &&
	    (c->podio.api_url = strdup("https://api.podio.com")) == NULL) {
		snprintf(err, CONFIG_ERR_MAX, "out of memory");
		config_free(c);
		return -1;
	}
	if (secrets && (st.st_mode & S_IROTH) != 0)
		log_warn("config holds secrets and is readable by others: "
			 "chmod o-r %s",
			 c->path);
	return 0;
}

void config_free(struct config *c)
{
	free(c->path);
	free(c->spool_dir);
	free(c->secret);
	free_hooks(c);
	free(c->podio.api_url);
	free(c->podio.client_id);
	free(c->podio.client_secret);
	free(c->podio.app_id);
	free(c->podio.app_token);
	free(c->podio.username);
	free(c->podio.password);
	free(c->podio.ca_file);
	free_hook_confs(c);
	memset(c, 0, sizeof *c);
}

int config_has_credentials(const struct config *c)
{
	const struct podio_conf *p = &c->podio;
	if (p->client_id == NULL || p->client_secret == NULL)
		return 0;
	return (p->app_id != NULL && p->app_token != NULL) ||
	       (p->username != NULL && p->password != NULL);
}
