/* src/cmd/cmd_machines.c: `eph machines`, the live droplets of the jobs file's digitalocean
 * executors: those tagged with this scheduler's instance, as the provider lists them now
 * (through eph-cloud, a process of its own: eph never links libcurl), each with its run, size,
 * age and cost so far (exec/cloud_size.h's billing rule, at the size's price from the cached
 * catalogue). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "cmd/cmd_mail.h"
#include "conf/conf.h"
#include "exec/cloud_size.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/instance.h"
#include "util/units.h"
#include "util/xalloc.h"

#define MACHINES_OUT_MAX  (8u << 20) /* eph-cloud's answer */
#define MACHINES_DEADLINE 30         /* seconds eph-cloud may take */

static int cmd_machines_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_machines = {
	.name = "machines",
	.usage = "machines [--json]",
	.summary = "the live droplets of the cloud executors, with their runs and cost so far",
	.help = "For each digitalocean executor of the jobs file, the droplets its provider lists\n"
	        "now with this scheduler's instance tag: the droplet's id and name, its run (its\n"
	        "eph-run tag), size, status, age, and what it has cost so far by the provider's\n"
	        "billing rule at the size's price in the cached catalogue (STATE/cloud/). A\n"
	        "droplet no live run owns is deleted by the daemon's next reconcile.\n\n"
	        "Options:\n"
	        "  --json  print one JSON object: {\"machines\": [...]}\n",
	.exec = cmd_machines_exec,
};

/* The epoch seconds of the API's "2026-12-06T19:20:00Z"; 0 when it is not that. */
static double
iso_time(const char *s)
{
	struct tm tm;
	const char *end;

	if (s == NULL)
		return 0;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL)
		return 0;
	return (double)timegm(&tm);
}

/* The machines of executor E (settings D) into ARR; 0, or -1 with a message printed. */
static int
machines_of(struct cmd_ctx *ctx, const char *prog, const char *instance,
            const struct conf_executor *e, const struct conf_do *d, json_t *arr)
{
	json_t *req = json_object(), *ans, *v, *t;
	struct cloud_catalog *cat = NULL;
	char *text, *tag = xasprintf("eph-instance:%s", instance), *path, *err = NULL, *args[3];
	struct buf out;
	double now = clock_real();
	size_t i, j;
	int rc;

	json_object_set_new(req, "provider", json_string("digitalocean"));
	json_object_set_new(req, "api_url", json_string(d->api_url));
	if (d->token_file != NULL)
		json_object_set_new(req, "token_file", json_string(d->token_file));
	else
		json_object_set_new(req, "token_env", json_string(d->token_env));
	json_object_set_new(req, "deadline", json_integer(MACHINES_DEADLINE));
	json_object_set_new(req, "tag", json_string(tag));
	free(tag);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (text == NULL) {
		fprintf(stderr, "eph: executor %s: %s\n", e->name, strerror(ENOMEM));
		return -1;
	}
	buf_init(&out, MACHINES_OUT_MAX);
	args[1] = (char *)"list";
	args[2] = NULL;
	rc = cmd_helper_run("eph: machines", "eph-cloud", xstrdup(prog), text, args, &out);
	ans = rc >= 0 ? json_loadb(buf_cstr(&out), out.len, 0, NULL) : NULL;
	buf_free(&out);
	if (rc < 0) {
		json_decref(ans);
		return -1; /* cmd_helper_run said why */
	}
	if (ans == NULL || json_object_get(ans, "error") != NULL) {
		fprintf(stderr, "eph: executor %s: cannot list its droplets: %s\n", e->name,
		        ans != NULL && json_string_value(json_object_get(ans, "error")) != NULL
		                ? json_string_value(json_object_get(ans, "error"))
		                : "eph-cloud gave no answer");
		json_decref(ans);
		return -1;
	}
	path = cloud_catalog_path(cmd_state_dir(ctx), e->name);
	if (cloud_catalog_load(path, &cat, &err) < 0)
		cat = NULL;
	free(path);
	free(err);
	json_array_foreach(json_object_get(ans, "droplets"), i, v)
	{
		const char *size = json_string_value(json_object_get(v, "size"));
		double created = iso_time(json_string_value(json_object_get(v, "created_at")));
		json_t *o = json_object(), *run = json_null();
		double age = created > 0 ? now - created : -1, cost = -1;

		json_array_foreach(json_object_get(v, "tags"), j, t)
		{
			const char *s = json_string_value(t);

			if (s != NULL && strncmp(s, "eph-run:", 8) == 0)
				run = json_integer(strtoll(s + 8, NULL, 10));
		}
		for (size_t k = 0; cat != NULL && size != NULL && k < cat->nsizes; k++)
			if (strcmp(cat->sizes[k].slug, size) == 0 && age >= 0)
				cost = cloud_bill_do(cat->sizes[k].price_hourly,
				                     cat->sizes[k].price_monthly, (int64_t)created,
				                     age);
		json_object_set_new(o, "executor", json_string(e->name));
		json_object_set_new(o, "id", json_incref(json_object_get(v, "id")));
		json_object_set_new(o, "name", json_incref(json_object_get(v, "name")));
		json_object_set_new(o, "run", run);
		json_object_set_new(o, "size", json_incref(json_object_get(v, "size")));
		json_object_set_new(o, "status", json_incref(json_object_get(v, "status")));
		json_object_set_new(o, "address", json_incref(json_object_get(v, "ipv4_public")));
		json_object_set_new(o, "age_seconds", age >= 0 ? json_real(age) : json_null());
		json_object_set_new(o, "cost", cost >= 0 ? json_real(cost) : json_null());
		json_array_append_new(arr, o);
	}
	cloud_catalog_free(cat);
	json_decref(ans);
	return 0;
}

static void
print_table(json_t *arr)
{
	size_t i;
	json_t *o;

	printf("%-10s %-12s %-24s %-6s %-16s %-8s %-10s %s\n", "EXECUTOR", "ID", "NAME", "RUN",
	       "SIZE", "STATUS", "AGE", "COST");
	json_array_foreach(arr, i, o)
	{
		char age[32] = "-", cost[32] = "-", run[32] = "-";
		json_t *a = json_object_get(o, "age_seconds"), *c = json_object_get(o, "cost");

		if (json_is_number(a))
			units_format_duration(json_number_value(a), age, sizeof(age));
		if (json_is_number(c))
			snprintf(cost, sizeof(cost), "$%.4f", json_number_value(c));
		if (json_is_integer(json_object_get(o, "run")))
			snprintf(run, sizeof(run), "%lld",
			         (long long)json_integer_value(json_object_get(o, "run")));
		printf("%-10s %-12lld %-24s %-6s %-16s %-8s %-10s %s\n",
		       json_string_value(json_object_get(o, "executor")),
		       (long long)json_integer_value(json_object_get(o, "id")),
		       json_string_value(json_object_get(o, "name")) != NULL
		               ? json_string_value(json_object_get(o, "name"))
		               : "?",
		       run,
		       json_string_value(json_object_get(o, "size")) != NULL
		               ? json_string_value(json_object_get(o, "size"))
		               : "?",
		       json_string_value(json_object_get(o, "status")) != NULL
		               ? json_string_value(json_object_get(o, "status"))
		               : "?",
		       age, cost);
	}
}

static int
cmd_machines_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	char instance[INSTANCE_ID_LEN + 1], *prog;
	json_t *arr;
	bool json = false, failed = false;
	struct diag d;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'j')
			json = true;
		else
			return cmd_usage_error(&cmd_machines, "unknown option '%s'",
			                       argv[optind - 1]);
	}
	if (optind < argc)
		return cmd_usage_error(&cmd_machines, "too many arguments");
	if ((opt = cmd_load_conf(ctx)) != EPH_EXIT_OK)
		return opt;
	diag_init(&d);
	if (instance_read(cmd_state_dir(ctx), instance, &d) < 0) {
		/* no instance yet: no droplet was ever made by this scheduler */
		diag_free(&d);
		instance[0] = '\0';
	}
	diag_free(&d);
	prog = fsio_exe_sibling("eph-cloud");
	arr = json_array();
	for (size_t i = 0; instance[0] != '\0' && i < ctx->conf->nexecutors; i++) {
		const struct conf_executor *e = &ctx->conf->executors[i];
		const struct conf_do *cd = conf_executor_do(e);

		if (cd == NULL)
			continue;
		if (prog == NULL || access(prog, X_OK) != 0) {
			fprintf(stderr, "eph: eph-cloud is not installed next to eph\n");
			failed = true;
			break;
		}
		if (machines_of(ctx, prog, instance, e, cd, arr) < 0)
			failed = true;
	}
	free(prog);
	if (json) {
		json_t *o = json_object();

		json_object_set_new(o, "machines", arr);
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(o);
	} else {
		print_table(arr);
		json_decref(arr);
	}
	return failed ? EPH_EXIT_FAIL : EPH_EXIT_OK;
}
