/* src/cmd/cmd_validate.c: `eph validate [FILE]`, parse and check the jobs file. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "conf/conf.h"
#include "exec/cloud_size.h"
#include "exec/sizing.h"
#include "sched/cronexpr.h"
#include "sched/tz.h"
#include "util/diag.h"
#include "util/xalloc.h"

static int cmd_validate_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_validate = {
	.name = "validate",
	.usage = "validate [FILE] [--json] [--from-repo]",
	.summary = "parse and check the jobs file, reporting every problem as FILE:LINE:COL",
	.help = "FILE defaults to the global -f FILE, else ./ephemeron.yaml.\n"
	        "On success prints \"FILE: N jobs OK\" and exits 0; otherwise prints every problem\n"
	        "and exits 2. A job whose schedule never fires in its zone (every time it names\n"
	        "falls in a daylight-saving gap) is a warning, \"FILE:LINE:COL: warning: ...\".\n\n"
	        "Options:\n"
	        "  --json       print {\"file\":…, \"ok\":…, \"jobs\":N, \"errors\":[{file,line,col,message}],\n"
	        "               \"warnings\":[...]}\n"
	        "  --from-repo  check FILE as `eph daemon --from-repo` reads it: a file without\n"
	        "               source.repo runs the commit it was read from\n",
	.exec = cmd_validate_exec,
};

/* Warnings for the jobs of a valid C that never fire from NOW on, in file order. A
 * calendar expression that parses fires within 400 years in UTC (cronexpr_parse refuses the
 * others), so one that never fires in its zone does so because DST gaps swallow every time
 * it names. A warning, not an error: it depends on the tz database, whose update must not
 * make a daemon refuse its whole file, and cron accepts such a line too. */
static struct diag *
never_fires(const struct conf *c, const char *path, int64_t now)
{
	struct diag *w = xcalloc(1, sizeof(*w));

	diag_init(w);
	for (size_t i = 0; c != NULL && i < c->njobs; i++) {
		const struct conf_job *j = &c->jobs[i];
		const struct tz *z = j->tz != NULL ? j->tz : c->local_tz;
		int64_t t;

		if (cronexpr_next(j->cron, z, now, &t) == -ENOENT)
			diag_error(
			        w, (struct diag_pos){ path, j->line, j->col },
			        "job %s never fires: every time of \"%s\" falls in a daylight-saving gap of %s",
			        j->name, j->schedule, tz_name(z));
	}
	/* a cloud executor's token would cross the network in the clear: allowed (the tests'
	 * own API listens on loopback) but said */
	for (size_t i = 0; c != NULL && i < c->nexecutors; i++) {
		const struct conf_do *cd = conf_executor_do(&c->executors[i]);

		if (cd != NULL && strncmp(cd->api_url, "http://", 7) == 0)
			diag_error(
			        w, (struct diag_pos){ path, cd->api_line, cd->api_col },
			        "executor %s talks to its API over plain http: its token crosses the network unencrypted",
			        c->executors[i].name);
	}
	diag_sort(w);
	return w;
}

static json_t *
diag_json(const struct diag *d)
{
	json_t *errs = json_array();

	for (size_t i = 0; i < d->n; i++) {
		json_t *e = json_object();

		if (d->items[i].file != NULL)
			json_object_set_new(e, "file", json_string(d->items[i].file));
		json_object_set_new(e, "line", json_integer(d->items[i].line));
		json_object_set_new(e, "col", json_integer(d->items[i].col));
		json_object_set_new(e, "message", json_string(d->items[i].msg));
		json_array_append_new(errs, e);
	}
	return errs;
}

static int
validate_json(const char *path, const struct conf *c, struct diag *d, const struct diag *warn)
{
	json_t *o = json_object();

	json_object_set_new(o, "file", json_string(path));
	json_object_set_new(o, "ok", json_boolean(c != NULL));
	json_object_set_new(o, "jobs", json_integer(c != NULL ? (json_int_t)c->njobs : 0));
	diag_sort(d);
	json_object_set_new(o, "errors", diag_json(d));
	json_object_set_new(o, "warnings", diag_json(warn));
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(o);
	return c != NULL ? EPH_EXIT_OK : EPH_EXIT_USAGE;
}

/* With a cached catalogue of a digitalocean executor's sizes (STATE/cloud/NAME-sizes.json,
 * written by the daemon), a job on it that no size holds is an error, found offline; without
 * one, such a run fails when it is made, listing the sizes it saw. Adds the errors to D. */
static void
cloud_sizes_check(struct cmd_ctx *ctx, const struct conf *c, const char *path, struct diag *d)
{
	for (size_t i = 0; i < c->nexecutors; i++) {
		const struct conf_executor *e = &c->executors[i];
		const struct conf_do *cd = conf_executor_do(e);
		struct cloud_catalog *cat = NULL;
		char *file, *err = NULL;

		if (cd == NULL)
			continue;
		file = cloud_catalog_path(cmd_state_dir(ctx), e->name);
		if (cloud_catalog_load(file, &cat, &err) < 0)
			cat = NULL;
		free(file);
		free(err);
		for (size_t k = 0; cat != NULL && k < c->njobs; k++) {
			const struct conf_job *j = &c->jobs[k];
			uint64_t need = j->memory_auto  ? j->memory_min
			                : j->memory > 0 ? j->memory
			                                : cd->default_memory;
			char a[32], b[32], *seen;

			if (j->executor_ix != i ||
			    cloud_size_choose(cat, cd->region, need, cd->reserve,
			                      (const char *const *)cd->sizes.v,
			                      cd->sizes.n) != NULL)
				continue;
			sizing_format(need, a, sizeof(a));
			sizing_format(cd->reserve, b, sizeof(b));
			seen = cloud_size_seen(cat, cd->region, (const char *const *)cd->sizes.v,
			                       cd->sizes.n);
			diag_error(
			        d, (struct diag_pos){ path, j->line, j->col },
			        "job %s needs %s but no size of executor %s in %s holds it with the %s reserve (its cached catalogue's sizes: %s)",
			        j->name, a, e->name, cd->region, b, seen);
			free(seen);
		}
		cloud_catalog_free(cat);
	}
}

static int
cmd_validate_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "from-repo", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = ctx->conf_path;
	struct conf *c = NULL;
	bool json = false;
	struct diag d, *warn;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'j')
			json = true;
		else if (opt == 'r')
			conf_assume_from_repo(true);
		else
			return cmd_usage_error(&cmd_validate, "unknown option '%s'",
			                       argv[optind - 1]);
	}
	if (argc - optind > 1)
		return cmd_usage_error(&cmd_validate, "too many arguments");
	if (argc - optind == 1)
		path = argv[optind];
	/* the executor types whose keys are checked but whose executor is not built yet: for
	 * the tests of those checks (docs/jobs-file.md), never for the daemon */
	if (getenv("EPH_UNFINISHED_EXECUTORS") != NULL &&
	    strcmp(getenv("EPH_UNFINISHED_EXECUTORS"), "1") == 0)
		conf_exec_allow_unfinished(true);
	diag_init(&d);
	rc = conf_load(path, &c, &d);
	if (rc == 0) {
		cloud_sizes_check(ctx, c, path, &d);
		if (diag_nerrors(&d) > 0) {
			conf_free(c);
			c = NULL;
			rc = -EINVAL;
		}
	}
	warn = never_fires(c, path, (int64_t)time(NULL));
	if (json) {
		rc = validate_json(path, c, &d, warn);
	} else if (rc < 0) {
		diag_print(&d, stderr);
		rc = EPH_EXIT_USAGE;
	} else {
		for (size_t i = 0; i < warn->n; i++)
			fprintf(stderr, "%s:%d:%d: warning: %s\n", warn->items[i].file,
			        warn->items[i].line, warn->items[i].col, warn->items[i].msg);
		printf("%s: %zu job%s OK\n", path, c->njobs, c->njobs == 1 ? "" : "s");
		rc = EPH_EXIT_OK;
	}
	diag_free(warn);
	free(warn);
	diag_free(&d);
	conf_free(c);
	return rc;
}
