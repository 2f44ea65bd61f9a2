#include "hookcmd.h"

#include <stdio.h>
#include <string.h>

#include "../lib/event.h"

static const char hook_usage[] =
    "usage: podio-hook hook create REF_TYPE REF_ID TYPE URL\n"
    "       podio-hook hook list [--json] REF_TYPE REF_ID\n"
    "       podio-hook hook delete HOOK_ID\n"
    "       podio-hook hook verify HOOK_ID\n"
    "       podio-hook hook validate HOOK_ID CODE\n"
    "\n"
    "Manages Podio hooks with the credentials in [podio].  REF_TYPE is\n"
    "app, app_field or space.  create registers a hook and requests its\n"
    "verification (Podio then posts hook.verify to URL, which the\n"
    "receiver validates); verify requests verification again; validate\n"
    "sends a code from a spooled hook.verify event.\n"
    "Exit 0 done, 1 the Podio API failed, 2 usage or config error.\n";

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
    {"create", 4}, {"list", 2}, {"delete", 1}, {"verify", 1}, {"validate", 2},
};

int hookcmd_main(struct app *a, int argc, char **argv)
{
	int json = 0;
	char *args[HOOK_WORDS_MAX];
	int nargs;
	size_t i = 0;
	const struct cli_option opts[] = {
	    {"--json", CLI_FLAG, &json, 0, 0},
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
	if (json && strcmp(sub, "list") != 0)
		return usage_error2("--json applies to list, not", sub);
	int rc = need_credentials(a);
	if (rc != 0)
		return rc;
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
