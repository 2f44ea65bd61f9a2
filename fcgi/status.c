/*
 * status.c - `podio-hook status`: the spool's figures (lib/stats.h) as a
 * table, one JSON object, or Prometheus text for node_exporter's textfile
 * collector.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../lib/stats.h"
#include "drain.h"

static const char status_usage[] =
    "usage: podio-hook status [--json | --prometheus] [--config PATH] [-v]\n"
    "\n"
    "Per event type: events pending, the oldest pending one's age,\n"
    "events claimed by a drain and in progress, failed (in failed/) and\n"
    "quarantined (in bad/).  --json prints one object; --prometheus the\n"
    "same figures in the Prometheus text format.\n"
    "Exit 0; 1 when anything is failed or quarantined, or a file in the\n"
    "spool had to be left alone (--prometheus: 0 whenever the metrics\n"
    "were written); 2 when the spool cannot be read.\n";

static void print_json(const struct stats *s, const char *dir)
{
	json_t *types = json_object();
	for (size_t i = 0; i < s->n; i++) {
		const struct stats_type *c = &s->t[i];
		json_object_set_new(
		    types, c->type,
		    json_pack("{s:I, s:f, s:I, s:I, s:I}", "pending",
			      (json_int_t)c->pending, "oldest_pending_age_s",
			      c->oldest_pending_age, "in_progress",
			      (json_int_t)c->in_progress, "failed",
			      (json_int_t)c->failed, "quarantined",
			      (json_int_t)c->quarantined));
	}
	json_t *root = json_pack("{s:s, s:o}", "spool", dir, "types", types);
	json_dumpf(root, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
	putchar('\n');
	json_decref(root);
}

static void print_table(const struct stats *s)
{
	printf("%-24s %8s %10s %12s %8s %12s\n", "TYPE", "PENDING", "OLDEST_S",
	       "IN_PROGRESS", "FAILED", "QUARANTINED");
	for (size_t i = 0; i < s->n; i++) {
		const struct stats_type *c = &s->t[i];
		printf("%-24s %8llu %10.1f %12llu %8llu %12llu\n", c->type,
		       c->pending, c->oldest_pending_age, c->in_progress,
		       c->failed, c->quarantined);
	}
}

/* One gauge per figure, labelled by type. */
enum metric_field {
	M_PENDING,
	M_AGE,
	M_IN_PROGRESS,
	M_FAILED,
	M_QUARANTINED,
	M_LAST_RECEIVED,
};

static const struct {
	const char *name;
	const char *help;
	enum metric_field field;
} metrics[] = {
    {"podio_hook_pending", "Events spooled and not yet claimed by a drain.",
     M_PENDING},
    {"podio_hook_oldest_pending_age_seconds",
     "Age of the oldest pending event (0 when none is pending).", M_AGE},
    {"podio_hook_in_progress",
     "Events claimed by a drain and not yet settled (retries included).",
     M_IN_PROGRESS},
    {"podio_hook_failed", "Dead letters in failed/.", M_FAILED},
    {"podio_hook_quarantined", "Lines quarantined in bad/.", M_QUARANTINED},
    {"podio_hook_last_received_timestamp_seconds",
     "When the newest event of the type was spooled (Unix time).",
     M_LAST_RECEIVED},
};

static double field(const struct stats_type *c, enum metric_field f)
{
	switch (f) {
	case M_PENDING:
		return (double)c->pending;
	case M_AGE:
		return c->oldest_pending_age;
	case M_IN_PROGRESS:
		return (double)c->in_progress;
	case M_FAILED:
		return (double)c->failed;
	case M_QUARANTINED:
		return (double)c->quarantined;
	case M_LAST_RECEIVED:
		return c->last_received;
	}
	return 0;
}

static void print_prometheus(const struct stats *s)
{
	for (size_t m = 0; m < sizeof metrics / sizeof metrics[0]; m++) {
		printf("# HELP %s %s\n# TYPE %s gauge\n", metrics[m].name,
		       metrics[m].help, metrics[m].name);
		/* Type names are [a-z0-9_.]: nothing to escape in a label. */
		for (size_t i = 0; i < s->n; i++)
			printf("%s{type=\"%s\"} %.6f\n", metrics[m].name,
			       s->t[i].type, field(&s->t[i], metrics[m].field));
	}
	printf("# HELP podio_hook_spool_problems Files in the spool left alone "
	       "(symbolic links, other kinds of files, unreadable).\n"
	       "# TYPE podio_hook_spool_problems gauge\n"
	       "podio_hook_spool_problems %u\n",
	       s->problems);
}

int status_main(struct app *a, int argc, char **argv)
{
	struct stats s;
	struct timespec now;
	char err[STATS_ERR_MAX];
	int json = 0;
	int prometheus = 0;
	char *args[1];
	int nargs;
	const struct cli_option opts[] = {
	    {"--json", CLI_FLAG, &json, 0, 0},
	    {"--prometheus", CLI_FLAG, &prometheus, 0, 0},
	    {NULL, CLI_FLAG, NULL, 0, 0},
	};
	const struct cli_command cmd = {"status", status_usage, opts, 0, 0};
	enum cli_result cr =
	    cli_parse(&cmd, &a->opt, argc - 1, argv + 1, args, &nargs);
	if (cr != CLI_OK)
		return cli_exit(cr);
	if (json && prometheus)
		return cli_error("status", "--json and --prometheus exclude "
					   "each other");
	if (app_load(a) != 0)
		return 2;
	clock_gettime(CLOCK_REALTIME, &now);
	if (stats_collect(&s, a->cfg.spool_dir,
			  (double)now.tv_sec + now.tv_nsec / 1e9, err) != 0) {
		fprintf(stderr, "podio-hook: status: %s\n", err);
		return 2;
	}
	if (json)
		print_json(&s, a->cfg.spool_dir);
	else if (prometheus)
		print_prometheus(&s);
	else
		print_table(&s);
	int rc = 0;
	for (size_t i = 0; i < s.n; i++) {
		if (s.t[i].failed > 0 || s.t[i].quarantined > 0)
			rc = 1;
	}
	if (s.problems > 0)
		rc = 1;
	stats_free(&s);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "podio-hook: status: writing the report "
				"failed\n");
		return 2;
	}
	return prometheus ? 0 : rc;
}
