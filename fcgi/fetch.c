#include "fetch.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/jsonline.h"
#include "../lib/log.h"
#include "apicmd.h"

/* "/status/" and a Podio id (app_is_id: at most 20 digits). */
#define FETCH_PATH_MAX 64

static int gone(long status)
{
	return status == 404 || status == 410;
}

/*
 * "fetched":{...} for path, status and the body text (valid JSON, its
 * line breaks made spaces); malloc'd, or NULL when out of memory.
 */
static char *member(const char *path, long status, const char *body,
		    size_t blen, size_t *len)
{
	static const char head[] = "\"fetched\":{\"path\":\"%s\",\"status\":"
				   "%ld,\"body\":";
	size_t cap = sizeof head + FETCH_PATH_MAX + 24 + blen + 2;
	char *m = malloc(cap);
	if (m == NULL)
		return NULL;
	size_t n = (size_t)snprintf(m, cap, head, path, status);
	for (size_t i = 0; i < blen; i++)
		m[n++] = body[i] == '\n' || body[i] == '\r' ? ' ' : body[i];
	m[n++] = '}';
	*len = n;
	return m;
}

enum engine_verdict fetch_event(struct fetcher *f,
				const struct engine_event *ev, char **out,
				size_t *out_len, char why[ENGINE_WHY_MAX])
{
	struct podio *p = &f->a->podio;
	const char *param;
	const char *prefix = event_object_path(ev->type, &param);
	char path[FETCH_PATH_MAX];
	struct podio_answer ans;
	*out = NULL;
	if (prefix == NULL)
		return ENGINE_HANDLED;
	json_t *j = json_loadb(ev->line, ev->len - 1, 0, NULL);
	const char *id = json_string_value(
	    json_object_get(json_object_get(j, "params"), param));
	if (id == NULL || !app_is_id(id)) {
		snprintf(why, ENGINE_WHY_MAX, "fetch: %s is %s", param,
			 id == NULL ? "missing" : "not a number");
		json_decref(j);
		return ENGINE_FAILED;
	}
	snprintf(path, sizeof path, "%s%s", prefix, id);
	json_decref(j);
	podio_begin(p, f->a->cfg.podio.timeout);
	f->calls++;
	int rc = podio_request(p, "GET", path, NULL, 0, &ans);
	if (podio_rate_limited(p->status)) {
		api_report_rate_limit("drain", p, rc == 0 ? ans.body : p->err,
				      rc == 0 ? ans.body_len : strlen(p->err));
		podio_answer_free(&ans);
		return ENGINE_STOP;
	}
	enum engine_verdict v = ENGINE_HANDLED;
	const char *body = ans.body;
	size_t blen = ans.body_len;
	json_error_t jerr;
	json_t *parsed = NULL;
	if (rc != 0) {
		snprintf(why, ENGINE_WHY_MAX, "fetch: GET %s: %s", path,
			 p->err);
		v = ENGINE_FAILED;
	} else if (gone(ans.status)) {
		body = "null";
		blen = 4;
		f->gone++;
	} else if (ans.status < 200 || ans.status > 299) {
		snprintf(why, ENGINE_WHY_MAX, "fetch: GET %s: %s", path,
			 p->err);
		v = ENGINE_FAILED;
	} else if (body == NULL ||
		   (parsed = json_loadb(body, blen, JSON_DECODE_ANY, &jerr)) ==
		       NULL) {
		snprintf(why, ENGINE_WHY_MAX,
			 "fetch: GET %s: HTTP %ld, the answer is not JSON",
			 path, ans.status);
		v = ENGINE_FAILED;
	}
	json_decref(parsed);
	if (v == ENGINE_HANDLED) {
		size_t mlen;
		char *m = member(path, ans.status, body, blen, &mlen);
		*out = m != NULL ? jsonline_append(ev->out, ev->out_len, m,
						   mlen, out_len)
				 : NULL;
		free(m);
		if (*out == NULL) {
			snprintf(why, ENGINE_WHY_MAX, "fetch: out of memory");
			v = ENGINE_FAILED;
		}
	}
	podio_answer_free(&ans);
	return v;
}
