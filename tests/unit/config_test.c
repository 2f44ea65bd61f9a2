/*
 * config_test.c - SPEC section 7: the INI file, its defaults, relative
 * paths, and errors that name the file, the line and the key.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "config.h"
#include "log.h"

struct fx {
	char dir[PATH_MAX];  /* the temp dir, as realpath gives it */
	char path[PATH_MAX]; /* the config file */
	struct config c;
	char err[CONFIG_ERR_MAX];
};

/* Log lines captured while a test runs. */
static char logged[8192];
static size_t logged_len;

static void capture(const char *line, size_t len)
{
	if (logged_len + len < sizeof logged) {
		memcpy(logged + logged_len, line, len);
		logged_len += len;
		logged[logged_len] = '\0';
	}
}

static int setup(void **state)
{
	struct fx *t = calloc(1, sizeof *t);
	char tmpl[] = "/tmp/config_test.XXXXXX";
	if (t == NULL || mkdtemp(tmpl) == NULL ||
	    realpath(tmpl, t->dir) == NULL) {
		free(t);
		return -1;
	}
	logged[0] = '\0';
	logged_len = 0;
	log_set_sink(capture);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct fx *t = *state;
	config_free(&t->c);
	log_set_sink(NULL);
	int rc = tmpdir_remove(t->dir);
	free(t);
	return rc;
}

/* Writes content to {dir}/podio-hook.ini with mode 0600; sets t->path. */
static void write_ini(struct fx *t, const char *content)
{
	int w = snprintf(t->path, sizeof t->path, "%s/podio-hook.ini", t->dir);
	assert_true(w > 0 && (size_t)w < sizeof t->path);
	unlink(t->path);
	int fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	size_t n = strlen(content);
	assert_int_equal(write(fd, content, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

static void load_ok(struct fx *t, const char *content)
{
	write_ini(t, content);
	memset(t->err, 0, sizeof t->err);
	if (config_load(&t->c, t->path, t->err) != 0)
		fail_msg("config_load: %s\n--- config:\n%s", t->err, content);
}

/* Loads content, expects failure, returns the error text. */
static const char *load_fails(struct fx *t, const char *content)
{
	write_ini(t, content);
	memset(t->err, 0, sizeof t->err);
	if (config_load(&t->c, t->path, t->err) == 0)
		fail_msg("config_load accepted:\n%s", content);
	assert_true(strlen(t->err) > 0);
	/* *c is left empty on error. */
	assert_null(t->c.path);
	assert_null(t->c.spool_dir);
	assert_null(t->c.podio.api_url);
	assert_int_equal(t->c.n_allowed, 0);
	return t->err;
}

/* Fails unless err starts with "{path}:{line}: [{section}] {key}". */
static void expect_located(const struct fx *t, const char *err, int line,
			   const char *section, const char *key)
{
	char want[CONFIG_ERR_MAX];
	int w = snprintf(want, sizeof want, "%s:%d: [%s]%s%s", t->path, line,
			 section, key != NULL ? " " : "", key != NULL ? key : "");
	assert_true(w > 0 && (size_t)w < sizeof want);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("error \"%s\" does not start with \"%s\"", err, want);
}

static void expect_defaults_but_dir(const struct config *c)
{
	assert_int_equal(c->sync, 1);
	assert_int_equal(c->file_mode, 0640);
	assert_null(c->secret);
	assert_int_equal(c->n_allowed, 0);
	assert_int_equal(c->max_body, 65536);
	assert_int_equal(c->reject_unknown, 0);
	assert_string_equal(c->podio.api_url, "https://api.podio.com");
	assert_null(c->podio.client_id);
	assert_null(c->podio.client_secret);
	assert_null(c->podio.app_id);
	assert_null(c->podio.app_token);
	assert_null(c->podio.username);
	assert_null(c->podio.password);
	assert_null(c->podio.ca_file);
	assert_int_equal(c->podio.timeout, 10);
	assert_int_equal(c->podio.inline_verifications, 1);
	assert_int_equal(c->threads, 4);
	assert_int_equal(c->log_level, LOG_INFO);
	assert_int_equal(config_has_credentials(c), 0);
}

/* ---- loading ------------------------------------------------------------ */

static void minimal_config_gives_the_defaults(void **state)
{
	struct fx *t = *state;
	load_ok(t, "[spool]\ndir=/x\n");
	assert_string_equal(t->c.path, t->path);
	assert_string_equal(t->c.spool_dir, "/x");
	expect_defaults_but_dir(&t->c);
	assert_int_equal(logged_len, 0);
}

static void spec_example_config_loads(void **state)
{
	struct fx *t = *state;
	/* SPEC section 7, verbatim. */
	load_ok(t,
		"[spool]\n"
		"dir = /var/spool/podio-hook   ; required\n"
		"sync = yes                    ; fdatasync each event before "
		"answering\n"
		"file_mode = 0640\n"
		"\n"
		"[receiver]\n"
		"secret =                      ; optional shared secret carried "
		"as ?secret=\xe2\x80\xa6\n"
		"allowed_hooks =               ; optional comma-separated hook "
		"ids\n"
		"max_body = 65536\n"
		"unknown_types = accept        ; accept | reject\n"
		"threads = 4                   ; requests at once per FastCGI "
		"process (section 14)\n"
		"\n"
		"[podio]\n"
		"api_url = https://api.podio.com\n"
		"client_id =\n"
		"client_secret =\n"
		"app_id =\n"
		"app_token =\n"
		"username =\n"
		"password =\n"
		"timeout = 10\n"
		"ca_file =\n"
		"inline_verifications = 1      ; at most this many in flight "
		"per spool (section 14)\n"
		"\n"
		"[log]\n"
		"level = info                  ; error | warn | info | debug\n");
	assert_string_equal(t->c.spool_dir, "/var/spool/podio-hook");
	expect_defaults_but_dir(&t->c);
}

static void every_key_is_parsed(void **state)
{
	struct fx *t = *state;
	load_ok(t, "[spool]\n"
		   "dir = /srv/Spool\n"
		   "sync = no\n"
		   "file_mode = 0600\n"
		   "[receiver]\n"
		   "secret = S3cr3t-Value\n"
		   "allowed_hooks = 7,12\n"
		   "max_body = 1024\n"
		   "unknown_types = reject\n"
		   "threads = 16\n"
		   "[podio]\n"
		   "api_url = https://podio.example.com/\n"
		   "client_id = Client-Id\n"
		   "client_secret = Client-Secret\n"
		   "app_id = 123\n"
		   "app_token = App-Token\n"
		   "username = User@Example.com\n"
		   "password = PassWord\n"
		   "timeout = 14\n"
		   "ca_file = /etc/ssl/CA.pem\n"
		   "inline_verifications = 3\n"
		   "[log]\n"
		   "level = debug\n");
	struct config *c = &t->c;
	assert_string_equal(c->spool_dir, "/srv/Spool");
	assert_int_equal(c->sync, 0);
	assert_int_equal(c->file_mode, 0600);
	assert_string_equal(c->secret, "S3cr3t-Value");
	assert_int_equal(c->n_allowed, 2);
	assert_string_equal(c->allowed_hooks[0], "7");
	assert_string_equal(c->allowed_hooks[1], "12");
	assert_int_equal(c->max_body, 1024);
	assert_int_equal(c->reject_unknown, 1);
	/* No trailing '/': paths are appended to it. */
	assert_string_equal(c->podio.api_url, "https://podio.example.com");
	assert_string_equal(c->podio.client_id, "Client-Id");
	assert_string_equal(c->podio.client_secret, "Client-Secret");
	assert_string_equal(c->podio.app_id, "123");
	assert_string_equal(c->podio.app_token, "App-Token");
	assert_string_equal(c->podio.username, "User@Example.com");
	assert_string_equal(c->podio.password, "PassWord");
	assert_int_equal(c->podio.timeout, 14);
	assert_string_equal(c->podio.ca_file, "/etc/ssl/CA.pem");
	assert_int_equal(c->podio.inline_verifications, 3);
	assert_int_equal(c->threads, 16);
	assert_int_equal(c->log_level, LOG_DEBUG);
	assert_int_equal(config_has_credentials(c), 1);
	/* Mode 0600: secrets, but nobody else can read them. */
	assert_int_equal(logged_len, 0);
}

static void yes_and_no_spellings(void **state)
{
	struct fx *t = *state;
	static const struct {
		const char *v;
		int want;
	} cases[] = {
		{"yes", 1}, {"no", 0},    {"Yes", 1}, {"NO", 0},
		{"true", 1}, {"false", 0}, {"on", 1},  {"off", 0},
	};
	char ini[128];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(ini, sizeof ini, "[spool]\ndir=/x\nsync = %s\n",
			 cases[i].v);
		load_ok(t, ini);
		assert_int_equal(t->c.sync, cases[i].want);
		config_free(&t->c);
	}
}

static void levels_and_policies(void **state)
{
	struct fx *t = *state;
	static const struct {
		const char *v;
		enum log_level want;
	} levels[] = {
		{"error", LOG_ERROR},
		{"warn", LOG_WARN},
		{"info", LOG_INFO},
		{"debug", LOG_DEBUG},
	};
	char ini[128];
	for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
		snprintf(ini, sizeof ini, "[spool]\ndir=/x\n[log]\nlevel = %s\n",
			 levels[i].v);
		load_ok(t, ini);
		assert_int_equal(t->c.log_level, levels[i].want);
		config_free(&t->c);
	}
	load_ok(t, "[spool]\ndir=/x\n[receiver]\nunknown_types = accept\n");
	assert_int_equal(t->c.reject_unknown, 0);
}

static void boundary_values_are_accepted(void **state)
{
	struct fx *t = *state;
	load_ok(t, "[spool]\ndir=/x\nfile_mode=0666\n[receiver]\nmax_body=1\n"
		   "threads=1\n[podio]\ntimeout=1\ninline_verifications=0\n");
	assert_int_equal(t->c.file_mode, 0666);
	assert_int_equal(t->c.max_body, 1);
	assert_int_equal(t->c.threads, 1);
	assert_int_equal(t->c.podio.timeout, 1);
	assert_int_equal(t->c.podio.inline_verifications, 0);
	config_free(&t->c);
	load_ok(t, "[spool]\ndir=/x\n[receiver]\nmax_body=16777216\n"
		   "threads=64\n[podio]\ntimeout=14\n"
		   "inline_verifications=64\n");
	assert_int_equal(t->c.max_body, CONFIG_MAX_BODY_LIMIT);
	assert_int_equal(t->c.threads, CONFIG_THREADS_MAX);
	assert_int_equal(t->c.podio.timeout, CONFIG_TIMEOUT_MAX);
	assert_int_equal(t->c.podio.inline_verifications,
			 CONFIG_INLINE_VERIFY_MAX);
}

/* ---- relative paths ---------------------------------------------------- */

static void relative_paths_are_taken_from_the_config_folder(void **state)
{
	struct fx *t = *state;
	char want[PATH_MAX + 32];
	load_ok(t, "[spool]\ndir = spool\n[podio]\nca_file = certs/ca.pem\n");
	snprintf(want, sizeof want, "%s/spool", t->dir);
	assert_string_equal(t->c.spool_dir, want);
	snprintf(want, sizeof want, "%s/certs/ca.pem", t->dir);
	assert_string_equal(t->c.podio.ca_file, want);
}

static void relative_config_path_is_made_absolute(void **state)
{
	struct fx *t = *state;
	char cwd[PATH_MAX];
	char want[PATH_MAX + 32];
	write_ini(t, "[spool]\ndir = var/spool\n");
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(t->dir), 0);
	int rc = config_load(&t->c, "podio-hook.ini", t->err);
	assert_int_equal(chdir(cwd), 0);
	if (rc != 0)
		fail_msg("config_load: %s", t->err);
	assert_string_equal(t->c.path, t->path);
	snprintf(want, sizeof want, "%s/var/spool", t->dir);
	assert_string_equal(t->c.spool_dir, want);
}

/* ---- errors name the file and the line --------------------------------- */

static void unknown_section_is_named_with_its_line(void **state)
{
	struct fx *t = *state;
	const char *err = load_fails(t, "[spool]\ndir = /x\n\n[extra]\n"
					"foo = 1\n");
	expect_located(t, err, 4, "extra", NULL);
	assert_non_null(strstr(err, "unknown section"));
}

static void unknown_key_is_named_with_its_line(void **state)
{
	struct fx *t = *state;
	const char *err = load_fails(t, "[spool]\ndir = /x\n[receiver]\n"
					"max_body = 10\nfoo = bar\n");
	expect_located(t, err, 5, "receiver", "foo");
	assert_non_null(strstr(err, "unknown key"));
	/* A key of another section is unknown here. */
	err = load_fails(t, "[spool]\ndir = /x\ntimeout = 5\n");
	expect_located(t, err, 3, "spool", "timeout");
}

static void section_name_with_a_colon_is_an_unknown_section(void **state)
{
	struct fx *t = *state;
	/*
	 * iniparser names entries "section:key"; a section whose name holds
	 * a ':' must still be an unknown section, not pass for a key.
	 */
	const char *err = load_fails(t, "[spool]\ndir = /x\n[podio:client_id]\n");
	expect_located(t, err, 3, "podio:client_id", NULL);
	err = load_fails(t, "[spool]\ndir = /x\n[spool:dir]\n");
	expect_located(t, err, 3, "spool:dir", NULL);
}

static void syntax_error_names_the_file_and_line(void **state)
{
	struct fx *t = *state;
	const char *err = load_fails(t, "[spool]\ndir = /x\nthis is not ini\n");
	char want[CONFIG_ERR_MAX];
	int w = snprintf(want, sizeof want, "%s:3: syntax error", t->path);
	assert_true(w > 0 && (size_t)w < sizeof want);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("error \"%s\" does not start with \"%s\"", err, want);
	/* The line itself is never echoed: it may hold a secret. */
	assert_null(strstr(err, "this is not ini"));
}

/* A value that must never appear in an error or a log line. */
#define LEAK "Zq7-s3cr3t-VALUE-9x"

struct leak_case {
	const char *ini; /* holds LEAK once */
	int line;	 /* the line the error must name */
};

/*
 * A config line that fails to parse is reported with the file, the line
 * and (where there is one) the key, never with its value: a secret with a
 * missing '=', a secret put under the wrong key, a password in a key that
 * takes a number, a line too long for iniparser.
 */
static void a_bad_line_never_shows_its_value(void **state)
{
	struct fx *t = *state;
	static char too_long[2048];
	int n = snprintf(too_long, sizeof too_long,
			 "[spool]\ndir = /x\n[receiver]\nsecret = %s", LEAK);
	assert_true(n > 0);
	memset(too_long + n, 'x', sizeof too_long - (size_t)n - 2);
	too_long[sizeof too_long - 2] = '\n';
	too_long[sizeof too_long - 1] = '\0';
	const struct leak_case cases[] = {
	    {"[spool]\ndir = /x\n[receiver]\nsecret " LEAK "\n", 4},
	    {"[spool]\ndir = /x\n[receiver]\nsecret: " LEAK "\n", 4},
	    {"[spool]\ndir = /x\n[podio]\n" LEAK "\n", 4},
	    {"[spool]\ndir = /x\n[receiver]\nsecrte = " LEAK "\n", 4},
	    {"[spool]\ndir = /x\n[podio]\ntimeout = " LEAK "\n", 4},
	    {"[spool]\ndir = /x\n[podio]\napi_url = " LEAK "\n", 4},
	    {"[spool]\nsync = " LEAK "\ndir = /x\n", 2},
	    {"[spool]\ndir = /x\nfile_mode = " LEAK "\n", 3},
	    {"[spool]\ndir = /x\n[receiver]\nunknown_types = " LEAK "\n", 4},
	    {"[spool]\ndir = /x\n[receiver]\nallowed_hooks = " LEAK "\n", 4},
	    {"[spool]\ndir = /x\n[receiver]\nmax_body = " LEAK "\n", 4},
	    {"[spool]\ndir = /x\n[log]\nlevel = " LEAK "\n", 4},
	    {too_long, 4},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		logged[0] = '\0';
		logged_len = 0;
		const char *err = load_fails(t, cases[i].ini);
		char want[CONFIG_ERR_MAX];
		int w = snprintf(want, sizeof want, "%s:%d:", t->path,
				 cases[i].line);
		assert_true(w > 0 && (size_t)w < sizeof want);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("case %zu: error \"%s\" does not start with "
				 "\"%s\"",
				 i, err, want);
		/* Not even a part of it. */
		if (strstr(err, "s3cr3t") != NULL)
			fail_msg("case %zu: error shows the value: %s", i, err);
		if (strstr(logged, "s3cr3t") != NULL)
			fail_msg("case %zu: log shows the value: %s", i,
				 logged);
	}
}

static void api_url_needs_a_host(void **state)
{
	struct fx *t = *state;
	const char *err = load_fails(t, "[spool]\ndir = /x\n\n[podio]\n"
					"api_url = https:///\n");
	expect_located(t, err, 5, "podio", "api_url");
}

struct bad_value {
	const char *section;
	const char *key;
	const char *value;
};

static void invalid_values_are_named_with_their_line(void **state)
{
	struct fx *t = *state;
	static const struct bad_value bad[] = {
		{"spool", "sync", "maybe"},
		{"spool", "sync", "2"},
		{"spool", "sync", ""},
		{"spool", "file_mode", "0999"},
		{"spool", "file_mode", "0400"}, /* owner must read/write */
		{"spool", "file_mode", "0200"},
		{"spool", "file_mode", "01000"},
		{"spool", "file_mode", "rw-r-----"},
		{"spool", "file_mode", "-0640"},
		{"spool", "file_mode", ""},
		{"receiver", "max_body", "0"},
		{"receiver", "max_body", "99999999999"},
		{"receiver", "max_body", "16777217"},
		{"receiver", "max_body", "abc"},
		{"receiver", "max_body", "-1"},
		{"receiver", "max_body", "64k"},
		{"receiver", "max_body", ""},
		{"receiver", "unknown_types", "ignore"},
		{"receiver", "unknown_types", ""},
		{"receiver", "allowed_hooks", "1,,2"},
		{"receiver", "allowed_hooks", "a"},
		{"receiver", "allowed_hooks", "1,"},
		{"receiver", "allowed_hooks", "1 2"},
		{"receiver", "allowed_hooks", "-1"},
		{"receiver", "threads", "0"},
		{"receiver", "threads", "65"},
		{"receiver", "threads", "four"},
		{"receiver", "threads", ""},
		{"podio", "timeout", "0"},
		{"podio", "timeout", "15"},
		{"podio", "timeout", "ten"},
		{"podio", "timeout", ""},
		{"podio", "inline_verifications", "65"},
		{"podio", "inline_verifications", "-1"},
		{"podio", "inline_verifications", ""},
		{"podio", "api_url", "http://api.podio.com"},
		{"podio", "api_url", "api.podio.com"},
		{"podio", "api_url", "https://"},
		{"podio", "api_url", ""},
		{"log", "level", "verbose"},
		{"log", "level", "warning"},
		{"log", "level", ""},
	};
	char ini[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const struct bad_value *b = &bad[i];
		int line;
		if (strcmp(b->section, "spool") == 0) {
			snprintf(ini, sizeof ini, "[spool]\ndir = /x\n%s = %s\n",
				 b->key, b->value);
			line = 3;
		} else {
			snprintf(ini, sizeof ini,
				 "[spool]\ndir = /x\n\n[%s]\n%s = %s\n",
				 b->section, b->key, b->value);
			line = 5;
		}
		const char *err = load_fails(t, ini);
		expect_located(t, err, line, b->section, b->key);
	}
}

static void allowed_hooks_are_a_comma_separated_list(void **state)
{
	struct fx *t = *state;
	load_ok(t, "[spool]\ndir=/x\n[receiver]\nallowed_hooks = 1, 2,3\n");
	assert_int_equal(t->c.n_allowed, 3);
	assert_string_equal(t->c.allowed_hooks[0], "1");
	assert_string_equal(t->c.allowed_hooks[1], "2");
	assert_string_equal(t->c.allowed_hooks[2], "3");
	config_free(&t->c);
	load_ok(t, "[spool]\ndir=/x\n[receiver]\nallowed_hooks = 424242\n");
	assert_int_equal(t->c.n_allowed, 1);
	assert_string_equal(t->c.allowed_hooks[0], "424242");
	config_free(&t->c);
	load_ok(t, "[spool]\ndir=/x\n[receiver]\nallowed_hooks =\n");
	assert_int_equal(t->c.n_allowed, 0);
}

static void spool_dir_is_required(void **state)
{
	struct fx *t = *state;
	const char *err = load_fails(t, "[spool]\nsync = yes\n");
	assert_non_null(strstr(err, t->path));
	assert_non_null(strstr(err, "[spool] dir"));
	err = load_fails(t, "[receiver]\nmax_body = 10\n");
	assert_non_null(strstr(err, "[spool] dir"));
	err = load_fails(t, "");
	assert_non_null(strstr(err, "[spool] dir"));
	err = load_fails(t, "[spool]\ndir =\n");
	expect_located(t, err, 2, "spool", "dir");
}

static void missing_file_is_named(void **state)
{
	struct fx *t = *state;
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/nope.ini", t->dir);
	assert_int_equal(config_load(&t->c, p, t->err), -1);
	assert_non_null(strstr(t->err, p));
	assert_non_null(strstr(t->err, strerror(ENOENT)));
	assert_null(t->c.path);
	config_free(&t->c); /* harmless on an empty config */
	config_free(&t->c);
}

static void directory_is_not_a_config(void **state)
{
	struct fx *t = *state;
	assert_int_equal(config_load(&t->c, t->dir, t->err), -1);
	assert_non_null(strstr(t->err, t->dir));
}

/* ---- secrets readable by others --------------------------------------- */

static void secrets_readable_by_others_are_warned_about(void **state)
{
	struct fx *t = *state;
	load_ok(t, "[spool]\ndir=/x\n[receiver]\nsecret = TopSecret42\n");
	config_free(&t->c);
	assert_int_equal(logged_len, 0); /* 0600 */

	assert_int_equal(chmod(t->path, 0644), 0);
	assert_int_equal(config_load(&t->c, t->path, t->err), 0);
	assert_non_null(strstr(logged, ": warn: "));
	assert_non_null(strstr(logged, t->path));
	assert_null(strstr(logged, "TopSecret42"));
}

static void readable_config_without_secrets_is_fine(void **state)
{
	struct fx *t = *state;
	write_ini(t, "[spool]\ndir=/x\n[podio]\nclient_id = id\n");
	assert_int_equal(chmod(t->path, 0644), 0);
	assert_int_equal(config_load(&t->c, t->path, t->err), 0);
	assert_int_equal(logged_len, 0);
}

static void every_secret_key_counts(void **state)
{
	struct fx *t = *state;
	static const char *const keys[] = {"client_secret", "app_token",
					   "password"};
	char ini[128];
	for (size_t i = 0; i < 3; i++) {
		snprintf(ini, sizeof ini, "[spool]\ndir=/x\n[podio]\n%s = Hush\n",
			 keys[i]);
		write_ini(t, ini);
		assert_int_equal(chmod(t->path, 0604), 0);
		logged_len = 0;
		logged[0] = '\0';
		assert_int_equal(config_load(&t->c, t->path, t->err), 0);
		config_free(&t->c);
		if (strstr(logged, ": warn: ") == NULL)
			fail_msg("no warning for a readable %s", keys[i]);
		assert_null(strstr(logged, "Hush"));
	}
}

/* ---- credentials ------------------------------------------------------- */

static void credentials_app_grant(void **state)
{
	struct fx *t = *state;
	load_ok(t, "[spool]\ndir=/x\n[podio]\nclient_id=c\nclient_secret=s\n"
		   "app_id=1\napp_token=tok\n");
	assert_int_equal(config_has_credentials(&t->c), 1);
}

static void credentials_password_grant(void **state)
{
	struct fx *t = *state;
	load_ok(t, "[spool]\ndir=/x\n[podio]\nclient_id=c\nclient_secret=s\n"
		   "username=u\npassword=p\n");
	assert_int_equal(config_has_credentials(&t->c), 1);
}

static void credentials_incomplete_or_none(void **state)
{
	struct fx *t = *state;
	static const char *const partial[] = {
		"",
		"client_id=c\nclient_secret=s\n",
		"client_id=c\napp_id=1\napp_token=tok\n",
		"client_secret=s\nusername=u\npassword=p\n",
		"client_id=c\nclient_secret=s\napp_id=1\n",
		"client_id=c\nclient_secret=s\napp_token=tok\n",
		"client_id=c\nclient_secret=s\nusername=u\n",
		"client_id=c\nclient_secret=s\npassword=p\n",
		"client_id=c\nclient_secret=s\napp_id=1\npassword=p\n",
		"client_id=\nclient_secret=s\napp_id=1\napp_token=tok\n",
	};
	char ini[256];
	for (size_t i = 0; i < sizeof partial / sizeof partial[0]; i++) {
		snprintf(ini, sizeof ini, "[spool]\ndir=/x\n[podio]\n%s",
			 partial[i]);
		load_ok(t, ini);
		if (config_has_credentials(&t->c) != 0)
			fail_msg("credentials from:\n%s", partial[i]);
		config_free(&t->c);
	}
}


/* ---- [hook NAME] sections (SPEC section 12) ----------------------------- */

static void hook_sections_are_read_in_file_order(void **state)
{
	struct fx *t = *state;
	load_ok(t, "[spool]\ndir=/x\n"
		   "[hook Item-Create]\n"
		   "ref_type = app\n"
		   "ref_id = 12345\n"
		   "type = item.create\n"
		   "url = https://example.org/podio-hook.cgi?secret=abc\n"
		   "[hook tasks_2]\n"
		   "url = http://example.org/hook\n"
		   "type = task.update\n"
		   "ref_id = 007\n"
		   "ref_type = space\n"
		   "[HOOK field-x]\n"
		   "ref_type = app_field\n"
		   "ref_id = 9223372036854775807\n"
		   "type = comment.create\n"
		   "url = HTTPS://Example.org/a;b\n");
	struct config *c = &t->c;
	assert_int_equal(c->n_hooks, 3);
	/* The name as written, though iniparser lower-cases sections. */
	assert_string_equal(c->hooks[0].name, "Item-Create");
	assert_string_equal(c->hooks[0].ref_type, "app");
	assert_string_equal(c->hooks[0].ref_id, "12345");
	assert_string_equal(c->hooks[0].type, "item.create");
	assert_string_equal(c->hooks[0].url,
			    "https://example.org/podio-hook.cgi?secret=abc");
	assert_string_equal(c->hooks[1].name, "tasks_2");
	assert_string_equal(c->hooks[1].ref_type, "space");
	assert_string_equal(c->hooks[1].ref_id, "7");
	assert_string_equal(c->hooks[1].type, "task.update");
	assert_string_equal(c->hooks[1].url, "http://example.org/hook");
	assert_string_equal(c->hooks[2].name, "field-x");
	assert_string_equal(c->hooks[2].ref_type, "app_field");
	assert_string_equal(c->hooks[2].ref_id, "9223372036854775807");
	/* An unquoted ';' starts a comment, as everywhere in the file. */
	assert_string_equal(c->hooks[2].url, "HTTPS://Example.org/a");
}

static void spec_example_hook_section_loads(void **state)
{
	struct fx *t = *state;
	/* SPEC section 12, verbatim. */
	load_ok(t, "[spool]\ndir=/x\n"
		   "[hook item-create]\n"
		   "ref_type = app\n"
		   "ref_id = 12345\n"
		   "type = item.create\n"
		   "url = https://example.org/cgi-bin/podio-hook.cgi?secret="
		   "\xe2\x80\xa6\n");
	assert_int_equal(t->c.n_hooks, 1);
	assert_string_equal(t->c.hooks[0].name, "item-create");
}

static void no_hook_sections_means_no_hooks(void **state)
{
	struct fx *t = *state;
	load_ok(t, "[spool]\ndir=/x\n");
	assert_int_equal(t->c.n_hooks, 0);
	assert_null(t->c.hooks);
}

static void hook_bad_values_are_named_with_their_line(void **state)
{
	struct fx *t = *state;
	static const struct {
		const char *key;
		const char *value;
	} bad[] = {
		{"ref_type", "apps"},
		{"ref_type", "App"},
		{"ref_type", ""},
		{"ref_id", "0"},
		{"ref_id", "-1"},
		{"ref_id", "12a"},
		{"ref_id", " "},
		{"ref_id", "9223372036854775808"},
		{"type", "item.creat"},
		{"type", "Item.Create"},
		{"type", "hook.verify"},
		{"type", "item"},
		{"url", "ftp://example.org/hook"},
		{"url", "https://"},
		{"url", "https:///path"},
		{"url", "example.org/hook"},
		{"url", "\"https://example.org/a b\""},
		{"url", ""},
		{"url", "https://example.org/\xff\xfe"},
		{"url", "https://example.org/\xc3"},
		{"no_such_key", "1"},
	};
	static const char *const keys[] = {"ref_type", "ref_id", "type",
					   "url"};
	static const char *const good[] = {"app", "1", "item.create",
					   "https://example.org/hook"};
	char ini[1024];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		/* Line 3 is the header; the bad key is line 4. */
		size_t n = (size_t)snprintf(ini, sizeof ini,
					    "[spool]\ndir=/x\n[hook h1]\n"
					    "%s = %s\n",
					    bad[i].key, bad[i].value);
		for (size_t k = 0; k < 4; k++) {
			if (strcmp(keys[k], bad[i].key) != 0)
				n += (size_t)snprintf(ini + n, sizeof ini - n,
						      "%s = %s\n", keys[k],
						      good[k]);
		}
		const char *err = load_fails(t, ini);
		expect_located(t, err, 4, "hook h1", bad[i].key);
	}
}

static void hook_url_is_not_echoed_in_an_error(void **state)
{
	struct fx *t = *state;
	const char *err = load_fails(t, "[spool]\ndir=/x\n[hook h]\n"
					"ref_type=app\nref_id=1\n"
					"type=item.create\n"
					"url = \"ftp://x/?secret=Hush42\"\n");
	expect_located(t, err, 7, "hook h", "url");
	assert_null(strstr(err, "Hush42"));
	assert_null(strstr(logged, "Hush42"));
}

static void hook_missing_key_is_named_at_its_section(void **state)
{
	struct fx *t = *state;
	static const char *const lines[] = {
		"ref_type = app\n",
		"ref_id = 1\n",
		"type = item.create\n",
		"url = https://example.org/hook\n",
	};
	static const char *const keys[] = {"ref_type", "ref_id", "type",
					   "url"};
	char ini[512];
	for (size_t miss = 0; miss < 4; miss++) {
		size_t n = (size_t)snprintf(ini, sizeof ini,
					    "[spool]\ndir=/x\n\n[hook Gone]\n");
		for (size_t k = 0; k < 4; k++) {
			if (k != miss)
				n += (size_t)snprintf(ini + n, sizeof ini - n,
						      "%s", lines[k]);
		}
		const char *err = load_fails(t, ini);
		expect_located(t, err, 4, "hook Gone", keys[miss]);
		assert_non_null(strstr(err, "required"));
	}
}

static void hook_names_are_letters_digits_dash_underscore(void **state)
{
	struct fx *t = *state;
	static const char *const bad[] = {
		"[hook]",
		"[hook ]",
		"[hook a.b]",
		"[hook a b]",
		"[hook caf\xc3\xa9]",
		"[hook a/b]",
		"[hook "
		"x12345678901234567890123456789012345678901234567890123456789"
		"01234]",
	};
	char ini[512];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(ini, sizeof ini,
			 "[spool]\ndir=/x\n%s\nref_type=app\nref_id=1\n"
			 "type=item.create\nurl=https://e.org/h\n",
			 bad[i]);
		const char *err = load_fails(t, ini);
		char want[128];
		snprintf(want, sizeof want, "%s:3: [", t->path);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("%s: error \"%s\" is not at line 3", bad[i],
				 err);
	}
	/* 64 characters is the longest name. */
	load_ok(t, "[spool]\ndir=/x\n[hook "
		   "x123456789012345678901234567890123456789012345678901234567"
		   "890123]\nref_type=app\nref_id=1\ntype=item.create\n"
		   "url=https://e.org/h\n");
	assert_int_equal(strlen(t->c.hooks[0].name), CONFIG_HOOK_NAME_MAX);
	config_free(&t->c);
	/* "[hooks]" is not a hook section. */
	const char *err = load_fails(t, "[spool]\ndir=/x\n[hooks]\n");
	expect_located(t, err, 3, "hooks", NULL);
}

static void hook_section_given_twice_is_an_error(void **state)
{
	struct fx *t = *state;
	static const char *const second[] = {"[hook a]", "[hook A]"};
	char ini[512];
	for (size_t i = 0; i < 2; i++) {
		snprintf(ini, sizeof ini,
			 "[spool]\ndir=/x\n[hook a]\nref_type=app\nref_id=1\n"
			 "type=item.create\nurl=https://e.org/h\n%s\n"
			 "type=item.update\n",
			 second[i]);
		const char *err = load_fails(t, ini);
		expect_located(t, err, 8, "hook a", NULL);
		assert_non_null(strstr(err, "twice"));
	}
}

static void two_sections_declaring_one_hook_is_an_error(void **state)
{
	struct fx *t = *state;
	const char *err = load_fails(t, "[spool]\ndir=/x\n"
					"[hook first]\nref_type=app\nref_id=5\n"
					"type=item.create\nurl=https://e.org/h\n"
					"[hook second]\nref_type=app\n"
					"ref_id=05\ntype=item.create\n"
					"url=https://e.org/h\n");
	expect_located(t, err, 8, "hook second", NULL);
	assert_non_null(strstr(err, "[hook first]"));
	/* Another type, ref or url is another hook. */
	load_ok(t, "[spool]\ndir=/x\n"
		   "[hook a]\nref_type=app\nref_id=5\ntype=item.create\n"
		   "url=https://e.org/h\n"
		   "[hook b]\nref_type=app\nref_id=5\ntype=item.update\n"
		   "url=https://e.org/h\n"
		   "[hook c]\nref_type=space\nref_id=5\ntype=item.create\n"
		   "url=https://e.org/h\n"
		   "[hook d]\nref_type=app\nref_id=5\ntype=item.create\n"
		   "url=https://e.org/h2\n");
	assert_int_equal(t->c.n_hooks, 4);
}

static void hook_url_with_a_secret_counts_as_a_secret(void **state)
{
	struct fx *t = *state;
	write_ini(t, "[spool]\ndir=/x\n[hook a]\nref_type=app\nref_id=5\n"
		     "type=item.create\nurl=https://e.org/h?secret=Hush7\n");
	assert_int_equal(chmod(t->path, 0644), 0);
	assert_int_equal(config_load(&t->c, t->path, t->err), 0);
	assert_non_null(strstr(logged, ": warn: "));
	assert_null(strstr(logged, "Hush7"));
	config_free(&t->c);
	logged_len = 0;
	logged[0] = '\0';
	write_ini(t, "[spool]\ndir=/x\n[hook a]\nref_type=app\nref_id=5\n"
		     "type=item.create\nurl=https://e.org/h\n");
	assert_int_equal(chmod(t->path, 0644), 0);
	assert_int_equal(config_load(&t->c, t->path, t->err), 0);
	assert_int_equal(logged_len, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(minimal_config_gives_the_defaults),
		T(spec_example_config_loads),
		T(every_key_is_parsed),
		T(yes_and_no_spellings),
		T(levels_and_policies),
		T(boundary_values_are_accepted),
		T(relative_paths_are_taken_from_the_config_folder),
		T(relative_config_path_is_made_absolute),
		T(unknown_section_is_named_with_its_line),
		T(unknown_key_is_named_with_its_line),
		T(section_name_with_a_colon_is_an_unknown_section),
		T(syntax_error_names_the_file_and_line),
		T(a_bad_line_never_shows_its_value),
		T(api_url_needs_a_host),
		T(invalid_values_are_named_with_their_line),
		T(allowed_hooks_are_a_comma_separated_list),
		T(spool_dir_is_required),
		T(missing_file_is_named),
		T(directory_is_not_a_config),
		T(secrets_readable_by_others_are_warned_about),
		T(readable_config_without_secrets_is_fine),
		T(every_secret_key_counts),
		T(credentials_app_grant),
		T(credentials_password_grant),
		T(credentials_incomplete_or_none),
		T(hook_sections_are_read_in_file_order),
		T(spec_example_hook_section_loads),
		T(no_hook_sections_means_no_hooks),
		T(hook_bad_values_are_named_with_their_line),
		T(hook_url_is_not_echoed_in_an_error),
		T(hook_missing_key_is_named_at_its_section),
		T(hook_names_are_letters_digits_dash_underscore),
		T(hook_section_given_twice_is_an_error),
		T(two_sections_declaring_one_hook_is_an_error),
		T(hook_url_with_a_secret_counts_as_a_secret),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
