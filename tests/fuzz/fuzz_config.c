/*
 * fuzz_config.c - config_load on an arbitrary file (SPEC section 7).
 *
 * On success every value must satisfy what config.h promises (absolute
 * paths, bounds, an https api_url without a trailing '/', hook ids of
 * digits); on failure err must be a non-empty, NUL-terminated line and
 * *c must be left empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_util.h"
#include "log.h"

static char dir[4096];
static char path[4096 + 32];

static void quiet(const char *line, size_t len)
{
	(void)line;
	(void)len;
}

static void cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof dir, "%s", fz_tempdir("config"));
	snprintf(path, sizeof path, "%s/podio-hook.ini", dir);
	/* FUZZ_LOG=1 shows the receiver's log lines while debugging. */
	if (getenv("FUZZ_LOG") == NULL)
		log_set_sink(quiet);
	atexit(cleanup);
	return 0;
}

static int is_empty(const struct config *c)
{
	static const struct config zero;
	return memcmp(c, &zero, sizeof zero) == 0;
}

static void check_loaded(const struct config *c)
{
	CHECK(c->path != NULL && c->path[0] == '/', "path not absolute");
	CHECK(c->spool_dir != NULL && c->spool_dir[0] == '/',
	      "spool_dir not absolute");
	CHECK(c->sync == 0 || c->sync == 1, "sync %d", c->sync);
	CHECK((c->file_mode & ~0777u) == 0 && (c->file_mode & 0600) == 0600,
	      "file_mode %o", (unsigned)c->file_mode);
	CHECK(c->secret == NULL || c->secret[0] != '\0', "secret is \"\"");
	CHECK(c->max_body >= 1 && c->max_body <= CONFIG_MAX_BODY_LIMIT,
	      "max_body %zu", c->max_body);
	CHECK(c->reject_unknown == 0 || c->reject_unknown == 1,
	      "reject_unknown %d", c->reject_unknown);
	CHECK(c->n_allowed == 0 || c->allowed_hooks != NULL, "allowed_hooks");
	for (size_t i = 0; i < c->n_allowed; i++) {
		const char *h = c->allowed_hooks[i];
		CHECK(h != NULL && h[0] != '\0' &&
			  strspn(h, "0123456789") == strlen(h),
		      "allowed hook %zu is '%s'", i, h != NULL ? h : "(null)");
	}
	const char *u = c->podio.api_url;
	CHECK(u != NULL && strncasecmp(u, "https://", 8) == 0 &&
		  strlen(u) > 8 && u[strlen(u) - 1] != '/',
	      "api_url '%s'", u != NULL ? u : "(null)");
	CHECK(c->podio.timeout >= 1 && c->podio.timeout <= CONFIG_TIMEOUT_MAX,
	      "timeout %d", c->podio.timeout);
	CHECK(c->podio.ca_file == NULL || c->podio.ca_file[0] == '/',
	      "ca_file not absolute");
	const char *strs[] = {c->podio.client_id, c->podio.client_secret,
			      c->podio.app_id,	  c->podio.app_token,
			      c->podio.username,  c->podio.password};
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		CHECK(strs[i] == NULL || strs[i][0] != '\0',
		      "credential %zu is \"\"", i);
	CHECK((int)c->log_level >= LOG_ERROR && c->log_level <= LOG_DEBUG,
	      "log level %d", (int)c->log_level);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char err[CONFIG_ERR_MAX];
	fz_write_file(path, data, size);
	memset(err, 0x55, sizeof err);
	if (config_load(&c, path, err) == 0) {
		check_loaded(&c);
		(void)config_has_credentials(&c);
		config_free(&c);
		CHECK(is_empty(&c), "config_free left something behind");
		return 0;
	}
	CHECK(memchr(err, '\0', sizeof err) != NULL, "err not terminated");
	CHECK(err[0] != '\0', "err is empty");
	CHECK(strchr(err, '\n') == NULL, "err is not one line: %s", err);
	CHECK(is_empty(&c), "failed config_load left *c non-empty");
	config_free(&c); /* harmless, says config.h */
	return 0;
}
