#include "hookcmd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/event.h"
#include "../lib/num.h"
#include "apicmd.h"

static const char hook_usage[] =
    "usage: podio-hook hook create REF_TYPE REF_ID TYPE URL\n"
    "       podio-hook hook list [--json] REF_TYPE REF_ID\n"
    "       podio-hook hook delete HOOK_ID\n"
    "       podio-hook hook verify HOOK_ID\n"
    "       podio-hook hook validate HOOK_ID CODE\n"
    "       podio-hook hook sync [--dry-run] [--prune] [--json]\n"
    "\n"
    "Manages Podio hooks with the credentials in [podio].  REF_TYPE is\n"
    "app, app_field or space.  create registers a hook and requests its\n"
    "verification (Podio then posts hook.verify to URL, which the\n"
    "receiver validates); verify requests verification again; validate\n"
    "sends a code from a spooled hook.verify event.\n"
    "\n"
    "sync makes the hooks declared in [hook NAME] sections exist and\n"
    "active: it lists each declared ref, creates missing hooks and\n"
    "requests verification for those not active.  --prune also deletes\n"
    "hooks on those refs whose url is a declared url but which no section\n"
    "declares; --dry-run only lists (nothing is changed); --json prints an\n"
    "array instead of the lines NAME HOOK_ID STATUS ACTION.\n"
    "\n"
    "Exit 0 done (sync: every declared hook active), 1 the Podio API\n"
    "failed (sync: or some hook not active yet), 2 usage or config error,\n"
    "3 (sync) Podio's rate limit: stopped at once.\n";

static int usage_error(const char *what)
{
	return cli_error("hook", "%s (see 'podio-hook hook --help')", what);
}

static int usage_error2(const char *what, const char *word)
{
	return cli_error("hook", "%s '%s' (see 'podio-hook hook --help')", what,
			 word);
}

/* The subcommand and its arguments, at most. */
#define HOOK_WORDS_MAX 5

static int api_error(const struct app *a, const char *cmd)
{
	fprintf(stderr, "podio-hook: hook %s: %s\n", cmd, a->podio.err);
	return 1;
}

static int check_ref(const char *ref_type, const char *ref_id)
{
	if (strcmp(ref_type, "app") != 0 &&
	    strcmp(ref_type, "app_field") != 0 &&
	    strcmp(ref_type, "space") != 0)
		return usage_error("REF_TYPE must be app, app_field or space");
	if (!app_is_id(ref_id))
		return usage_error("REF_ID must be a number");
	return 0;
}

static int request_verification(struct app *a, const char *hook_id)
{
	char path[128];
	snprintf(path, sizeof path, "/hook/%s/verify/request", hook_id);
	return podio_call(&a->podio, "POST", path, NULL, NULL);
}

static int cmd_create(struct app *a, char **argv)
{
	char path[128];
	char id[32];
	json_t *answer;
	int rc = check_ref(argv[0], argv[1]);
	if (rc != 0)
		return rc;
	if (!event_type_wellformed(argv[2], strlen(argv[2])))
		return usage_error("TYPE must look like item.create");
	if (strncmp(argv[3], "https://", 8) != 0 &&
	    strncmp(argv[3], "http://", 7) != 0)
		return usage_error("URL must start with https:// or http://");
	snprintf(path, sizeof path, "/hook/%s/%s/", argv[0], argv[1]);
	json_t *body = json_pack("{s:s, s:s}", "url", argv[3], "type", argv[2]);
	if (body == NULL)
		return usage_error("out of memory");
	rc = podio_call(&a->podio, "POST", path, body, &answer);
	json_decref(body);
	if (rc != 0)
		return api_error(a, "create");
	json_int_t hook =
	    json_integer_value(json_object_get(answer, "hook_id"));
	json_decref(answer);
	if (hook <= 0) {
		fprintf(stderr, "podio-hook: hook create: answer without "
				"hook_id\n");
		return 1;
	}
	snprintf(id, sizeof id, "%lld", (long long)hook);
	printf("%s\n", id);
	fflush(stdout);
	if (request_verification(a, id) != 0)
		return api_error(a, "create (requesting verification)");
	fprintf(stderr,
		"podio-hook: hook %s created; Podio now sends hook.verify to "
		"%s\n",
		id, argv[3]);
	return 0;
}

static const char *field(const json_t *o, const char *key, char *buf, size_t n)
{
	const json_t *v = json_object_get(o, key);
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(buf, n, "%lld", (long long)json_integer_value(v));
		return buf;
	}
	return "-";
}

static int cmd_list(struct app *a, int json, char **argv)
{
	char path[128];
	json_t *answer;
	int rc = check_ref(argv[0], argv[1]);
	if (rc != 0)
		return rc;
	snprintf(path, sizeof path, "/hook/%s/%s/", argv[0], argv[1]);
	if (podio_call(&a->podio, "GET", path, NULL, &answer) != 0)
		return api_error(a, "list");
	if (json) {
		json_dumpf(answer != NULL ? answer : json_null(), stdout,
			   JSON_COMPACT);
		putchar('\n');
	} else {
		size_t i;
		json_t *h;
		char b[32];
		printf("%-12s %-10s %-18s %s\n", "HOOK_ID", "STATUS", "TYPE",
		       "URL");
		json_array_foreach(answer, i, h)
		{
			printf("%-12s ", field(h, "hook_id", b, sizeof b));
			printf("%-10s ", field(h, "status", b, sizeof b));
			printf("%-18s ", field(h, "type", b, sizeof b));
			printf("%s\n", field(h, "url", b, sizeof b));
		}
	}
	json_decref(answer);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_hook_id(struct app *a, const char *cmd, char **argv, int argc)
{
	char path[128];
	const char *id = argv[0];
	if (!app_is_id(id))
		return usage_error("HOOK_ID must be a number");
	if (strcmp(cmd, "delete") == 0) {
		snprintf(path, sizeof path, "/hook/%s", id);
		if (podio_call(&a->podio, "DELETE", path, NULL, NULL) != 0)
			return api_error(a, cmd);
		printf("hook %s deleted\n", id);
	} else if (strcmp(cmd, "verify") == 0) {
		if (request_verification(a, id) != 0)
			return api_error(a, cmd);
		printf("verification requested for hook %s\n", id);
	} else {
		if (argc != 2 || argv[1][0] == '\0')
			return usage_error("validate needs HOOK_ID CODE");
		if (podio_validate(&a->podio, id, argv[1]) != 0)
			return api_error(a, cmd);
		printf("hook %s validated\n", id);
	}
	return 0;
}

/* ---- hook sync ------------------------------------------------------- */

/* What sync did, or would do, to one hook. */
enum sync_action {
	ACT_OK,
	ACT_CREATED,
	ACT_VERIFY_REQUESTED,
	ACT_DELETED,
	ACT_WOULD_CREATE,
	ACT_WOULD_VERIFY,
	ACT_WOULD_DELETE,
	ACT_FAILED, /* the API refused; the reason is on standard error */
};

static const char *const action_names[] = {
    [ACT_OK] = "ok",
    [ACT_CREATED] = "created",
    [ACT_VERIFY_REQUESTED] = "verify-requested",
    [ACT_DELETED] = "deleted",
    [ACT_WOULD_CREATE] = "would-create",
    [ACT_WOULD_VERIFY] = "would-verify",
    [ACT_WOULD_DELETE] = "would-delete",
    [ACT_FAILED] = "failed",
};

/* One declared ref and the hooks Podio lists on it. */
struct sync_ref {
	const char *ref_type;
	const char *ref_id;
	json_t *listed; /* the array; NULL when listing failed */
	char *claimed;	/* per listed hook: a section matched it */
};

struct sync {
	struct app *a;
	int dry_run;
	int prune;
	json_t *report; /* --json: the array printed at the end, else NULL */
	struct sync_ref *refs;
	size_t n_refs;
	int not_active; /* some declared hook is not active */
	int failed;	/* some API call failed */
	int stopped;	/* the rate limit: nothing more is sent */
};

/* One line (or --json object) about a hook; NULL/-1: unknown. */
struct sync_line {
	const char *name;
	long long hook_id;
	const char *status;
	enum sync_action action;
	const char *ref_type;
	const char *ref_id;
	const char *type;
	const char *url;
};

/* A value from Podio on a line of words: printable, no blank. */
static void word(char *out, size_t n, const char *s)
{
	size_t k = 0;
	for (; s != NULL && *s != '\0' && k + 1 < n; s++) {
		unsigned char c = (unsigned char)*s;
		out[k++] = c > ' ' && c < 0x7f ? (char)c : '?';
	}
	if (k == 0 && n > 1)
		out[k++] = '-';
	out[k] = '\0';
}

static int emit(struct sync *s, const struct sync_line *l)
{
	if (s->report != NULL) {
		unsigned long long ref = 0;
		num_parse(l->ref_id, 0, INT64_MAX, &ref);
		json_t *o = json_pack(
		    "{s:s?, s:o, s:s?, s:s, s:s?, s:I, s:s?, s:s?}", "name",
		    l->name, "hook_id",
		    l->hook_id > 0 ? json_integer(l->hook_id) : json_null(),
		    "status", l->status, "action", action_names[l->action],
		    "ref_type", l->ref_type, "ref_id", (json_int_t)ref, "type",
		    l->type, "url", l->url);
		if (o == NULL || json_array_append_new(s->report, o) != 0) {
			fprintf(stderr, "podio-hook: hook sync: out of "
					"memory\n");
			return -1;
		}
		return 0;
	}
	char status[64];
	char id[24] = "-";
	word(status, sizeof status, l->status);
	if (l->hook_id > 0)
		snprintf(id, sizeof id, "%lld", l->hook_id);
	printf("%s %s %s %s\n", l->name != NULL ? l->name : "-", id, status,
	       action_names[l->action]);
	return fflush(stdout) == 0 ? 0 : -1;
}

/* The id of a listed hook (a number, or digits), or -1. */
static long long listed_id(const json_t *h)
{
	const json_t *v = json_object_get(h, "hook_id");
	unsigned long long n;
	if (json_is_integer(v))
		return json_integer_value(v) > 0 ? json_integer_value(v) : -1;
	if (json_is_string(v) &&
	    num_parse(json_string_value(v), 1, INT64_MAX, &n) == NUM_OK)
		return (long long)n;
	return -1;
}

static const char *listed_str(const json_t *h, const char *key)
{
	return json_string_value(json_object_get(h, key));
}

static int is_active(const char *status)
{
	return status != NULL && strcmp(status, "active") == 0;
}

/*
 * A failed call: a rate limit stops the sync (returns -1), anything else
 * is reported and the sync goes on (returns 0).
 */
static int call_failed(struct sync *s, const char *what)
{
	struct podio *p = &s->a->podio;
	if (podio_rate_limited(p->status)) {
		api_report_rate_limit("hook sync", p, p->err, strlen(p->err));
		s->stopped = 1;
		return -1;
	}
	fprintf(stderr, "podio-hook: hook sync: %s: %s\n", what, p->err);
	s->failed = 1;
	return 0;
}

static struct sync_ref *ref_of(struct sync *s, const struct hook_conf *h)
{
	for (size_t i = 0; i < s->n_refs; i++) {
		if (strcmp(s->refs[i].ref_type, h->ref_type) == 0 &&
		    strcmp(s->refs[i].ref_id, h->ref_id) == 0)
			return &s->refs[i];
	}
	return NULL;
}

/* The declared refs, each once, in the order the config names them. */
static int collect_refs(struct sync *s)
{
	const struct config *c = &s->a->cfg;
	s->refs = calloc(c->n_hooks, sizeof *s->refs);
	if (s->refs == NULL)
		return -1;
	for (size_t i = 0; i < c->n_hooks; i++) {
		if (ref_of(s, &c->hooks[i]) != NULL)
			continue;
		s->refs[s->n_refs].ref_type = c->hooks[i].ref_type;
		s->refs[s->n_refs].ref_id = c->hooks[i].ref_id;
		s->n_refs++;
	}
	return 0;
}

/* GET /hook/{ref_type}/{ref_id}/ for every ref; -1 when stopped. */
static int list_refs(struct sync *s)
{
	char path[128];
	char what[128];
	for (size_t i = 0; i < s->n_refs; i++) {
		struct sync_ref *r = &s->refs[i];
		json_t *list = NULL;
		snprintf(path, sizeof path, "/hook/%s/%s/", r->ref_type,
			 r->ref_id);
		podio_begin(&s->a->podio, s->a->cfg.podio.timeout);
		if (podio_call(&s->a->podio, "GET", path, NULL, &list) != 0) {
			snprintf(what, sizeof what, "listing hooks on %s %s",
				 r->ref_type, r->ref_id);
			if (call_failed(s, what) != 0)
				return -1;
			continue;
		}
		if (!json_is_array(list)) {
			fprintf(stderr,
				"podio-hook: hook sync: listing hooks on %s "
				"%s: the answer is not a JSON array\n",
				r->ref_type, r->ref_id);
			json_decref(list);
			s->failed = 1;
			continue;
		}
		r->claimed = calloc(json_array_size(list) + 1, 1);
		if (r->claimed == NULL) {
			json_decref(list);
			return -1;
		}
		r->listed = list;
	}
	return 0;
}

/*
 * The listed hook that section h declares: same type and url, not claimed
 * by another section; an active one first.  Returns its index, or -1.
 */
static long match(const struct sync_ref *r, const struct hook_conf *h)
{
	long found = -1;
	size_t i;
	json_t *l;
	json_array_foreach(r->listed, i, l)
	{
		const char *type = listed_str(l, "type");
		const char *url = listed_str(l, "url");
		if (r->claimed[i] || type == NULL || url == NULL ||
		    strcmp(type, h->type) != 0 || strcmp(url, h->url) != 0 ||
		    listed_id(l) < 0)
			continue;
		if (found < 0 || is_active(listed_str(l, "status")))
			found = (long)i;
		if (is_active(listed_str(l, "status")))
			break;
	}
	return found;
}

/* Creates h's hook and requests its verification; -1 when stopped. */
static int create_one(struct sync *s, const struct hook_conf *h,
		      struct sync_line *l)
{
	char path[128];
	char id[24];
	char what[128];
	json_t *answer = NULL;
	snprintf(path, sizeof path, "/hook/%s/%s/", h->ref_type, h->ref_id);
	json_t *body = json_pack("{s:s, s:s}", "url", h->url, "type", h->type);
	if (body == NULL)
		return -1;
	podio_begin(&s->a->podio, s->a->cfg.podio.timeout);
	int rc = podio_call(&s->a->podio, "POST", path, body, &answer);
	json_decref(body);
	l->hook_id = rc == 0 ? listed_id(answer) : -1;
	json_decref(answer);
	if (rc != 0 || l->hook_id < 0) {
		l->action = ACT_FAILED;
		snprintf(what, sizeof what, "%s: creating it", h->name);
		if (rc != 0)
			return call_failed(s, what) != 0 ? -1 : emit(s, l);
		fprintf(stderr,
			"podio-hook: hook sync: %s: answer without "
			"hook_id\n",
			what);
		s->failed = 1;
		return emit(s, l);
	}
	/* Podio creates a hook inactive, until it is verified. */
	l->status = "inactive";
	l->action = ACT_CREATED;
	snprintf(id, sizeof id, "%lld", l->hook_id);
	podio_begin(&s->a->podio, s->a->cfg.podio.timeout);
	if (request_verification(s->a, id) == 0)
		return emit(s, l);
	int emitted = emit(s, l);
	snprintf(what, sizeof what, "%s: requesting verification of hook %s",
		 h->name, id);
	return call_failed(s, what) != 0 || emitted != 0 ? -1 : 0;
}

/* Brings one declared hook about; -1 when the sync stops. */
static int sync_one(struct sync *s, const struct hook_conf *h)
{
	char id[24];
	char what[128];
	struct sync_ref *r = ref_of(s, h);
	struct sync_line l = {h->name,	   -1,	      NULL,    ACT_FAILED,
			      h->ref_type, h->ref_id, h->type, h->url};
	if (r->listed == NULL) { /* said on standard error already */
		s->not_active = 1;
		return emit(s, &l);
	}
	long i = match(r, h);
	if (i < 0) {
		s->not_active = 1;
		if (!s->dry_run)
			return create_one(s, h, &l);
		l.action = ACT_WOULD_CREATE;
		return emit(s, &l);
	}
	const json_t *listed = json_array_get(r->listed, (size_t)i);
	r->claimed[i] = 1;
	l.hook_id = listed_id(listed);
	l.status = listed_str(listed, "status");
	if (is_active(l.status)) {
		l.action = ACT_OK;
		return emit(s, &l);
	}
	s->not_active = 1;
	if (s->dry_run) {
		l.action = ACT_WOULD_VERIFY;
		return emit(s, &l);
	}
	snprintf(id, sizeof id, "%lld", l.hook_id);
	podio_begin(&s->a->podio, s->a->cfg.podio.timeout);
	if (request_verification(s->a, id) == 0) {
		l.action = ACT_VERIFY_REQUESTED;
		return emit(s, &l);
	}
	snprintf(what, sizeof what, "%s: requesting verification of hook %s",
		 h->name, id);
	if (call_failed(s, what) != 0)
		return -1;
	return emit(s, &l);
}

static int url_declared(const struct config *c, const char *url)
{
	for (size_t i = 0; i < c->n_hooks; i++) {
		if (url != NULL && strcmp(c->hooks[i].url, url) == 0)
			return 1;
	}
	return 0;
}

/* --prune on one ref; -1 when the sync stops. */
static int prune_ref(struct sync *s, struct sync_ref *r)
{
	char path[64];
	char what[128];
	size_t i;
	json_t *h;
	json_array_foreach(r->listed, i, h)
	{
		struct sync_line l = {NULL,
				      listed_id(h),
				      listed_str(h, "status"),
				      ACT_WOULD_DELETE,
				      r->ref_type,
				      r->ref_id,
				      listed_str(h, "type"),
				      listed_str(h, "url")};
		if (r->claimed[i] || l.hook_id < 0 ||
		    !url_declared(&s->a->cfg, l.url))
			continue;
		if (!s->dry_run) {
			snprintf(path, sizeof path, "/hook/%lld", l.hook_id);
			podio_begin(&s->a->podio, s->a->cfg.podio.timeout);
			l.action = ACT_DELETED;
			if (podio_call(&s->a->podio, "DELETE", path, NULL,
				       NULL) != 0) {
				l.action = ACT_FAILED;
				snprintf(what, sizeof what,
					 "deleting hook %lld on %s %s",
					 l.hook_id, r->ref_type, r->ref_id);
				if (call_failed(s, what) != 0)
					return -1;
			}
		}
		if (emit(s, &l) != 0)
			return -1;
	}
	return 0;
}

static int sync_run(struct sync *s)
{
	const struct config *c = &s->a->cfg;
	if (collect_refs(s) != 0 || list_refs(s) != 0)
		return -1;
	for (size_t i = 0; i < c->n_hooks; i++) {
		if (sync_one(s, &c->hooks[i]) != 0)
			return -1;
	}
	for (size_t i = 0; s->prune && i < s->n_refs; i++) {
		if (s->refs[i].listed != NULL && prune_ref(s, &s->refs[i]) != 0)
			return -1;
	}
	return 0;
}

static int cmd_sync(struct app *a, int dry_run, int prune, int json)
{
	struct sync s = {a, dry_run, prune, NULL, NULL, 0, 0, 0, 0};
	if (a->cfg.n_hooks == 0) {
		fprintf(stderr,
			"podio-hook: hook sync: no [hook NAME] section in %s\n",
			a->cfg.path);
		return 2;
	}
	if (json && (s.report = json_array()) == NULL)
		return 1;
	int rc = sync_run(&s);
	if (rc != 0 && !s.stopped) {
		fprintf(stderr, "podio-hook: hook sync: out of memory or "
				"standard output closed\n");
		s.failed = 1;
	}
	if (s.report != NULL) {
		/* What was done, also when the rate limit stopped it. */
		if (json_dumpf(s.report, stdout, JSON_COMPACT) != 0 ||
		    putchar('\n') == EOF || fflush(stdout) != 0)
			s.failed = 1;
		json_decref(s.report);
	}
	for (size_t i = 0; i < s.n_refs; i++) {
		json_decref(s.refs[i].listed);
		free(s.refs[i].claimed);
	}
	free(s.refs);
	if (s.stopped)
		return 3;
	return s.failed || s.not_active ? 1 : 0;
}

static int need_credentials(struct app *a)
{
	if (app_load(a) != 0)
		return 2;
	if (!config_has_credentials(&a->cfg)) {
		fprintf(stderr,
			"podio-hook: no Podio credentials in %s: set "
			"[podio] client_id, client_secret and app_id + "
			"app_token or username + password\n",
			a->cfg.path);
		return 2;
	}
	podio_begin(&a->podio, a->cfg.podio.timeout);
	return 0;
}

/* The subcommands: how many arguments each takes. */
static const struct {
	const char *name;
	int nargs;
} subcommands[] = {
    {"create", 4}, {"list", 2},	    {"delete", 1},
    {"verify", 1}, {"validate", 2}, {"sync", 0},
};

int hookcmd_main(struct app *a, int argc, char **argv)
{
	int json = 0;
	int dry_run = 0;
	int prune = 0;
	char *args[HOOK_WORDS_MAX];
	int nargs;
	size_t i = 0;
	const struct cli_option opts[] = {
	    {"--json", CLI_FLAG, &json, 0, 0},
	    {"--dry-run", CLI_FLAG, &dry_run, 0, 0},
	    {"--prune", CLI_FLAG, &prune, 0, 0},
	    {NULL, CLI_FLAG, NULL, 0, 0},
	};
	const struct cli_command cmd = {"hook", hook_usage, opts, 1,
					HOOK_WORDS_MAX};
	enum cli_result r =
	    cli_parse(&cmd, &a->opt, argc - 1, argv + 1, args, &nargs);
	if (r != CLI_OK)
		return cli_exit(r);
	const char *sub = args[0];
	while (i < sizeof subcommands / sizeof subcommands[0] &&
	       strcmp(subcommands[i].name, sub) != 0)
		i++;
	if (i == sizeof subcommands / sizeof subcommands[0])
		return usage_error2("unknown subcommand", sub);
	if (nargs - 1 != subcommands[i].nargs)
		return usage_error2(nargs - 1 < subcommands[i].nargs
					? "missing arguments for"
					: "too many arguments for",
				    sub);
	int sync = strcmp(sub, "sync") == 0;
	if (json && strcmp(sub, "list") != 0 && !sync)
		return usage_error2("--json applies to list and sync, not",
				    sub);
	if ((dry_run || prune) && !sync)
		return usage_error2(dry_run ? "--dry-run applies to sync, not"
					    : "--prune applies to sync, not",
				    sub);
	int rc = need_credentials(a);
	if (rc != 0)
		return rc;
	if (sync)
		return cmd_sync(a, dry_run, prune, json);
	if (strcmp(sub, "create") == 0)
		return cmd_create(a, args + 1);
	if (strcmp(sub, "list") == 0)
		return cmd_list(a, json, args + 1);
	return cmd_hook_id(a, sub, args + 1, nargs - 1);
}

int hookcmd_check_auth(struct app *a)
{
	if (!config_has_credentials(&a->cfg)) {
		printf("podio: no credentials (hook.verify will be spooled as "
		       "skipped)\n");
		return 0;
	}
	podio_begin(&a->podio, a->cfg.podio.timeout);
	if (podio_authenticate(&a->podio) != 0) {
		fprintf(stderr,
			"podio-hook: check: authentication failed: %s\n",
			a->podio.err);
		return 1;
	}
	printf("podio: authenticated at %s\n", a->cfg.podio.api_url);
	return 0;
}
