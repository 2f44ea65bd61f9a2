/*
 * fuzz_podio.c - the Podio client's handling of API answers and of its
 * token cache (podio.h, SPEC sections 1 and 6), through lib/http.c with a
 * fake libcurl (fake_curl.c) that plays scripted answers.
 *
 * Everything in podio.c that reads the network is static, so it is reached
 * the way the program reaches it: podio_validate, podio_call and
 * podio_authenticate.  Checked after every call:
 *   - success means a 2xx status; a failure has a non-empty p->err that is
 *     one line of valid UTF-8 (it becomes the spooled verification detail
 *     and a log line, SPEC sections 5 and 9);
 *   - no secret, password, app token or verification code is logged or
 *     put in p->err;
 *   - the token request carries no Authorization header; an API call is
 *     retried at most once; nothing is sent after a call timed out;
 *   - a cached token file has mode 0600.
 *
 * Input: byte 0: bits 0-1 the call, bit 2 app or password grant, bits 3-4
 * the token held in memory; byte 1: length L of the token cache file
 * (0: none); L bytes of it; the rest is the fake libcurl's script.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_util.h"
#include "http.h"
#include "log.h"
#include "podio.h"

struct fake_curl_stats {
	int performs;
	int token_calls;
	int api_calls;
	int after_timeout;
	int form_token_with_auth;
};

#define CLIENT_SECRET "CS-sekrit-1"
#define APP_TOKEN     "AT-sekrit-2"
#define PASSWORD      "PW-sekrit-3"
#define CODE	      "CODE-sekrit-4"
#define MEM_TOKEN     "TOK-mem-sekrit-5"

static void (*script_fn)(const uint8_t *, size_t);
static const struct fake_curl_stats *(*stats_fn)(void);
static char lib_path[PATH_MAX];
static char dir[4096];
static char cache[4200];
static struct podio_conf conf[2];

static const char *const secrets[] = {CLIENT_SECRET, APP_TOKEN, PASSWORD, CODE,
				      MEM_TOKEN};

/* The current input: a secret it holds may be echoed by the "server". */
static const uint8_t *cur;
static size_t cur_len;

static void no_secret(const char *s, size_t n, const char *where)
{
	for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
		size_t k = strlen(secrets[i]);
		if (memmem(cur, cur_len, secrets[i], k) != NULL)
			continue;
		CHECK(memmem(s, n, secrets[i], k) == NULL, "%s holds %s: %.*s",
		      where, secrets[i], (int)n, s);
	}
}

static void log_check(const char *line, size_t len)
{
	CHECK(len > 0 && line[len - 1] == '\n' &&
		  memchr(line, '\n', len - 1) == NULL,
	      "log line is not one line");
	no_secret(line, len, "a log line");
}

static void empty_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[4500];
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
}

static void cleanup(void)
{
	empty_dir();
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *env = getenv("FUZZ_FAKE_CURL");
	if (env != NULL && env[0] != '\0') {
		snprintf(lib_path, sizeof lib_path, "%s", env);
	} else {
		char exe[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		CHECK(n > 0, "readlink /proc/self/exe");
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		snprintf(lib_path, sizeof lib_path, "%s/libfakecurl.so", exe);
	}
	void *h = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
	CHECK(h != NULL, "%s", dlerror());
	*(void **)&script_fn = dlsym(h, "fake_curl_script");
	*(void **)&stats_fn = dlsym(h, "fake_curl_stats");
	CHECK(script_fn != NULL && stats_fn != NULL, "fake libcurl symbols");
	http_set_library(lib_path);

	snprintf(dir, sizeof dir, "%s", fz_tempdir("podio"));
	snprintf(cache, sizeof cache, "%s/.podio-token", dir);
	for (int i = 0; i < 2; i++) {
		conf[i].api_url = "https://api.podio.test";
		conf[i].client_id = "cid";
		conf[i].client_secret = CLIENT_SECRET;
		conf[i].timeout = 10;
	}
	conf[0].app_id = "42";
	conf[0].app_token = APP_TOKEN;
	conf[1].username = "user@example.com";
	conf[1].password = PASSWORD;
	log_set_level(LOG_DEBUG);
	log_set_sink(log_check);
	atexit(cleanup);
	return 0;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	CHECK(d != NULL, "out of memory");
	return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct podio p;
	json_t *out = NULL;
	int rc = -1;
	if (size < 2)
		return 0;
	cur = data;
	cur_len = size;
	int op = data[0] & 3;
	size_t clen = data[1];
	if (clen > size - 2)
		clen = size - 2;
	if (clen > 0)
		fz_write_file(cache, data + 2, clen);
	script_fn(data + 2 + clen, size - 2 - clen);

	podio_init(&p, &conf[(data[0] >> 2) & 1], cache);
	switch ((data[0] >> 3) & 3) {
	case 1:
		p.tok.access = xstrdup(MEM_TOKEN);
		p.tok.refresh = xstrdup("REF-mem");
		p.tok.expires_at = (long long)time(NULL) + 3600;
		break;
	case 2:
		p.tok.access = xstrdup(MEM_TOKEN);
		p.tok.refresh = xstrdup("REF-mem");
		p.tok.expires_at = (long long)time(NULL) - 10;
		break;
	case 3:
		p.tok.access = xstrdup(MEM_TOKEN);
		p.tok.expires_at = 0;
		break;
	default:
		break;
	}
	podio_begin(&p, conf[0].timeout);
	switch (op) {
	case 0:
		rc = podio_validate(&p, "123", CODE);
		break;
	case 1:
		rc = podio_call(&p, "GET", "/hook/app/1/", NULL, &out);
		break;
	case 2:
		rc = podio_authenticate(&p);
		break;
	default:
		rc = podio_call(&p, "DELETE", "/hook/77", NULL, NULL);
		break;
	}

	const struct fake_curl_stats *st = stats_fn();
	CHECK(rc == 0 || rc == -1, "rc %d", rc);
	if (rc == 0) {
		CHECK(p.status >= 200 && p.status <= 299,
		      "success with status %ld", p.status);
		CHECK(p.tok.access != NULL && p.tok.access[0] != '\0',
		      "success without a token");
	} else {
		size_t n = strnlen(p.err, sizeof p.err);
		CHECK(n > 0 && n < sizeof p.err,
		      "p->err empty or unterminated");
		CHECK_NAMED("oneline", strpbrk(p.err, "\r\n") == NULL,
			    "p->err is not one line: %s", p.err);
		CHECK_NAMED("utf8", fz_utf8_ok((const unsigned char *)p.err, n),
			    "p->err is not UTF-8: %s", p.err);
		no_secret(p.err, n, "p->err");
	}
	CHECK(st->after_timeout == 0, "a request followed a timeout");
	CHECK(st->form_token_with_auth == 0,
	      "the token request sent an Authorization header");
	CHECK(st->api_calls <= (op == 2 ? 0 : 2), "%d API calls",
	      st->api_calls);
	CHECK(st->token_calls <= (op == 2 ? 1 : 4), "%d token requests",
	      st->token_calls);
	struct stat sb;
	if (stat(cache, &sb) == 0 && st->token_calls > 0 && clen == 0)
		CHECK((sb.st_mode & 0777) == 0600, "token file mode %o",
		      (unsigned)(sb.st_mode & 0777));
	json_decref(out);
	podio_free(&p);
	empty_dir();
	return 0;
}
