#include "app.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/http.h"
#include "../lib/log.h"

/*
 * Picks the config file.  Returns the path in buf, or -1 with the list of
 * places tried in why.
 */
static int find_config(const struct app *a, char *buf, size_t size, char *why,
		       size_t wsize)
{
	const char *env = getenv(CONFIG_ENV);
	char exe[PATH_MAX];
	if (a->opt.config != NULL || (env != NULL && env[0] != '\0')) {
		/* Named explicitly: a missing file is an error, not a hint. */
		snprintf(buf, size, "%s",
			 a->opt.config != NULL ? a->opt.config : env);
		return 0;
	}
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash != NULL)
			slash[1] = '\0';
		snprintf(buf, size, "%s%s", exe, CONFIG_BASENAME);
		if (access(buf, F_OK) == 0)
			return 0;
	} else {
		snprintf(buf, size, "(executable's folder unknown)");
	}
	snprintf(why, wsize, "no config file: tried --config, $%s, %s, /etc/%s",
		 CONFIG_ENV, buf, CONFIG_BASENAME);
	snprintf(buf, size, "/etc/%s", CONFIG_BASENAME);
	return access(buf, F_OK) == 0 ? 0 : -1;
}

/*
 * Root becomes the spool directory's owner (a root-owned spool keeps
 * root).  0, or -1 after saying why.
 */
static int become_spool_owner(const struct app *a)
{
	struct stat st;
	if (geteuid() != 0 || stat(a->cfg.spool_dir, &st) != 0 ||
	    st.st_uid == 0)
		return 0;
	const struct passwd *pw = getpwuid(st.st_uid);
	int rc = pw != NULL ? initgroups(pw->pw_name, st.st_gid)
			    : setgroups(1, &st.st_gid);
	if (rc == 0)
		rc = setgid(st.st_gid);
	if (rc == 0)
		rc = setuid(st.st_uid);
	/* The switch must be for good: root must not come back. */
	if (rc != 0 || getuid() != st.st_uid || geteuid() != st.st_uid ||
	    getegid() != st.st_gid || setuid(0) == 0) {
		log_error("cannot switch to the owner of %s (uid %ld, gid "
			  "%ld): %s",
			  a->cfg.spool_dir, (long)st.st_uid, (long)st.st_gid,
			  strerror(errno));
		return -1;
	}
	if (pw != NULL && (setenv("HOME", pw->pw_dir, 1) != 0 ||
			   setenv("USER", pw->pw_name, 1) != 0 ||
			   setenv("LOGNAME", pw->pw_name, 1) != 0)) {
		log_error("cannot set HOME, USER, LOGNAME: %s",
			  strerror(errno));
		return -1;
	}
	if (a->opt.verbose)
		fprintf(stderr,
			"podio-hook: running as %s (uid %ld, gid %ld), the "
			"owner of the spool %s\n",
			pw != NULL ? pw->pw_name : "?", (long)st.st_uid,
			(long)st.st_gid, a->cfg.spool_dir);
	return 0;
}

int app_load(struct app *a)
{
	char path[PATH_MAX];
	char why[CONFIG_ERR_MAX];
	char serr[SPOOL_ERR_MAX];
	if (a->loaded)
		return 0;
	if (find_config(a, path, sizeof path, why, sizeof why) != 0) {
		log_error("%s", why);
		return -1;
	}
	if (config_load(&a->cfg, path, why) != 0) {
		log_error("config: %s", why);
		return -1;
	}
	if (spool_check_dir(a->cfg.spool_dir, serr) != 0) {
		if (errno != ENOENT) {
			log_error("config: %s", serr);
			config_free(&a->cfg);
			return -1;
		}
		/* Appends answer 503 until it exists: a spool error. */
		log_warn("%s", serr);
	}
	log_set_level(a->cfg.log_level);
	if (a->command && become_spool_owner(a) != 0) {
		config_free(&a->cfg);
		return -1;
	}
	a->policy.allowed_hooks = (const char *const *)a->cfg.allowed_hooks;
	a->policy.n_allowed = a->cfg.n_allowed;
	a->policy.reject_unknown = a->cfg.reject_unknown;
	a->spool.dir = a->cfg.spool_dir;
	a->spool.sync = a->cfg.sync;
	a->spool.file_mode = a->cfg.file_mode;
	char cache[PATH_MAX];
	snprintf(cache, sizeof cache, "%s/%s", a->cfg.spool_dir,
		 TOKEN_CACHE_NAME);
	podio_init(&a->podio, &a->cfg.podio, cache);
	const char *lib = getenv(LIBCURL_ENV);
	if (lib != NULL && lib[0] != '\0')
		http_set_library(lib);
	a->loaded = 1;
	return 0;
}

int app_is_id(const char *s)
{
	size_t n = strspn(s, "0123456789");
	return n > 0 && n <= 20 && s[n] == '\0';
}

void app_unload(struct app *a)
{
	if (a->loaded) {
		podio_free(&a->podio);
		config_free(&a->cfg);
	}
	http_release();
	a->loaded = 0;
}
