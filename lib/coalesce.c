#include "coalesce.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "jsonline.h"

static int is_update(const char *type)
{
	size_t n = strlen(type);
	return n > 7 && strcmp(type + n - 7, ".update") == 0;
}

/* prefix and s in one new string. */
static char *joined(const char *prefix, const char *s)
{
	size_t n = strlen(prefix) + strlen(s) + 1;
	char *p = malloc(n);
	if (p != NULL)
		snprintf(p, n, "%s%s", prefix, s);
	return p;
}

char *coalesce_key(const char *type, const char *line, size_t len)
{
	json_t *j = json_loadb(line, len, 0, NULL);
	json_t *params = json_object_get(j, "params");
	const char *id_param = NULL;
	char *key = NULL;
	if (is_update(type) && event_object_path(type, &id_param) != NULL) {
		const char *id =
		    json_string_value(json_object_get(params, id_param));
		if (id != NULL && id[0] != '\0')
			key = joined("o:", id);
	}
	if (key == NULL && json_is_object(params)) {
		char *p = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
		key = p != NULL ? joined("p:", p) : NULL;
		free(p);
	}
	json_decref(j);
	return key;
}

struct keyed {
	const char *key;
	size_t i;
};

static int by_key(const void *a, const void *b)
{
	const struct keyed *x = a;
	const struct keyed *y = b;
	int c = strcmp(x->key, y->key);
	return c != 0 ? c : (x->i > y->i) - (x->i < y->i);
}

int coalesce_group(char *const *keys, size_t n, size_t *rep, size_t *first)
{
	struct keyed *k = calloc(n > 0 ? n : 1, sizeof *k);
	size_t nk = 0;
	if (k == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		rep[i] = first[i] = i;
		if (keys[i] != NULL)
			k[nk++] = (struct keyed){keys[i], i};
	}
	/* Equal keys side by side, each run in spool order. */
	qsort(k, nk, sizeof *k, by_key);
	for (size_t a = 0; a < nk;) {
		size_t b = a + 1;
		while (b < nk && strcmp(k[a].key, k[b].key) == 0)
			b++;
		size_t r = k[b - 1].i;
		first[r] = k[a].i;
		for (size_t m = a; m < b; m++)
			rep[k[m].i] = r;
		a = b;
	}
	free(k);
	return 0;
}

char *coalesce_ids(const char *const *lines, const size_t *lens, size_t n,
		   size_t *len)
{
	static const char head[] = "\"" COALESCE_KEY "\":[";
	size_t cap = sizeof head + 2;
	size_t used = sizeof head - 1;
	char *buf = malloc(cap);
	if (buf == NULL)
		return NULL;
	memcpy(buf, head, used);
	for (size_t m = 0; m < n; m++) {
		json_t *j = json_loadb(lines[m], lens[m], 0, NULL);
		const char *id = json_string_value(json_object_get(j, "id"));
		/* Each byte quoted takes at most 6 ("\u001f"). */
		size_t need = (id != NULL ? strlen(id) * 6 + 2 : 4) + 2;
		if (cap - used < need) {
			cap = (cap + need) * 2;
			char *g = realloc(buf, cap);
			if (g == NULL) {
				json_decref(j);
				free(buf);
				return NULL;
			}
			buf = g;
		}
		if (m > 0)
			buf[used++] = ',';
		int rc = 0;
		if (id != NULL)
			rc = jsonline_quote(buf, cap, &used, id);
		else
			used +=
			    (size_t)snprintf(buf + used, cap - used, "null");
		json_decref(j);
		if (rc != 0) { /* cannot be: need covers the worst case */
			free(buf);
			return NULL;
		}
	}
	buf[used++] = ']';
	*len = used;
	return buf;
}
