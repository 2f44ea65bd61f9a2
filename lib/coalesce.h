/*
 * coalesce.h - which events of one type are one for `drain --coalesce`.
 *
 * Two events of one type coalesce when they concern the same object: an
 * update (item.update, task.update, app.update, form.update,
 * status.update) naming the same non-empty object id, or, for any type,
 * identical params (Podio delivering one event twice).  A group is handed
 * over once, as its latest event at that event's place in spool order,
 * with "coalesced" listing the ids of the others; the others settle with
 * its verdict.  The engine (engine.h) decides when; this file says what.
 */
#ifndef PODIO_COALESCE_H
#define PODIO_COALESCE_H

#include <stddef.h>

/* The key of the members' ids in the event handed over. */
#define COALESCE_KEY "coalesced"

/*
 * The grouping key of a spooled line (len bytes, no '\n') of type: events
 * with equal keys coalesce.  NULL when the line has neither an object id
 * nor params (it stands alone), or when out of memory.  Free it.
 */
char *coalesce_key(const char *type, const char *line, size_t len);

/*
 * Groups n events in spool order by keys[i] (NULL: the event stands
 * alone).  Sets rep[i] to the index of the latest event of i's group (i
 * itself when alone or latest) and, for every i, first[i] to the earliest
 * member of the group i represents (i itself unless i represents others).
 * 0, or -1 when out of memory (rep and first then undefined).
 */
int coalesce_group(char *const *keys, size_t n, size_t *rep, size_t *first);

/*
 * "coalesced":["id",...] (no braces, no comma around it) with the "id" of
 * each of the n lines (len bytes each, no '\n'), in that order; null for a
 * line without a string id.  Its length in *len; NULL when out of memory.
 */
char *coalesce_ids(const char *const *lines, const size_t *lens, size_t n,
		   size_t *len);

#endif
