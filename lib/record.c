#include "record.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int record_stamp(struct stamp *st)
{
	static unsigned long long last_us;
	struct timespec ts;
	struct tm tm;
	char day[24];

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 ||
	    gmtime_r(&ts.tv_sec, &tm) == NULL)
		return -1;
	unsigned long long us = (unsigned long long)ts.tv_sec * 1000000ULL +
				(unsigned long long)ts.tv_nsec / 1000ULL;
	if (us <= last_us)
		us = last_us + 1;
	last_us = us;
	if (strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		return -1;
	snprintf(st->received, sizeof st->received, "%s.%06uZ", day,
		 (unsigned)(ts.tv_nsec / 1000) % 1000000u);
	snprintf(st->id, sizeof st->id, "%016llu-%ld", us, (long)getpid());
	return 0;
}

/* Sets key to a string of n bytes; the input is known-good UTF-8. */
static int put(json_t *obj, const char *key, size_t klen, const char *val,
	       size_t vlen)
{
	json_t *s = json_stringn_nocheck(val, vlen);
	if (s == NULL)
		return -1;
	return json_object_setn_new_nocheck(obj, key, klen, s);
}

static int put_str(json_t *obj, const char *key, const char *val)
{
	return put(obj, key, strlen(key), val, strlen(val));
}

static json_t *build(const struct record *r)
{
	json_t *root = json_object();
	json_t *params = json_object();
	int bad = root == NULL || params == NULL;

	bad = bad || put_str(root, "id", r->stamp->id) != 0;
	bad = bad || put_str(root, "received", r->stamp->received) != 0;
	bad = bad || put_str(root, "type", r->type) != 0;
	bad = bad || put_str(root, "remote_addr", r->remote_addr) != 0;
	for (size_t i = 0; !bad && i < r->params->n; i++) {
		const struct form_field *f = &r->params->f[i];
		if (strcmp(f->key, RECORD_SECRET_KEY) == 0)
			continue;
		bad = put(params, f->key, f->key_len, f->val, f->val_len) != 0;
	}
	if (!bad) {
		bad = json_object_set_new_nocheck(root, "params", params) != 0;
		params = NULL;
	}
	if (!bad && r->verify_status != NULL) {
		json_t *v = json_object();
		const char *d =
		    r->verify_detail != NULL ? r->verify_detail : "";
		bad = v == NULL ||
		      put_str(v, "status", r->verify_status) != 0 ||
		      put_str(v, "detail", d) != 0;
		if (bad)
			json_decref(v);
		else /* set_new takes v, on failure too */
			bad = json_object_set_new_nocheck(root, "verification",
							  v) != 0;
	}
	json_decref(params);
	if (bad) {
		json_decref(root);
		return NULL;
	}
	return root;
}

char *record_encode(const struct record *r, size_t *len)
{
	static int seeded;
	if (!seeded) {
		/*
		 * Objects here hold at most FORM_MAX_FIELDS keys, so hash
		 * flooding is moot; seeding from the clock spares every CGI
		 * run jansson's open+read of /dev/urandom.
		 */
		json_object_seed(
		    ((size_t)getpid() * 2654435761u ^ (size_t)time(NULL)) | 1u);
		seeded = 1;
	}
	json_t *root = build(r);
	if (root == NULL)
		return NULL;
	size_t n = json_dumpb(root, NULL, 0, JSON_COMPACT);
	char *line = n > 0 ? malloc(n + 1) : NULL;
	if (line != NULL && json_dumpb(root, line, n, JSON_COMPACT) != n) {
		free(line);
		line = NULL;
	}
	json_decref(root);
	if (line == NULL)
		return NULL;
	line[n] = '\n';
	*len = n + 1;
	return line;
}
