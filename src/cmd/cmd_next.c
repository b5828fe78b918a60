/* src/cmd/cmd_next.c: `eph next`, the next fire times of the jobs or of one expression. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "conf/conf.h"
#include "sched/cronexpr.h"
#include "sched/tz.h"
#include "util/diag.h"
#include "util/xalloc.h"

#define NEXT_MAX_N 100000

static int cmd_next_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_next = {
	.name = "next",
	.usage = "next [JOB] [-n N] [--after ISO8601] [--json]\n"
	         "next --expr EXPR [--tz ZONE] [--after ISO8601] [-n N] [--json]",
	.summary = "show the next fire times of the jobs, or of one expression",
	.help = "Prints the next N fire times strictly after now (or --after), one ISO 8601 time\n"
	        "with the zone's offset a line. For every job of the jobs file, each line is\n"
	        "\"TIME JOB\", all jobs merged in time order.\n\n"
	        "Options:\n"
	        "  -n N             how many fire times (per job), default 5\n"
	        "  --expr EXPR      a schedule, as in the jobs file (\"*/10 * * * *\", \"@daily\")\n"
	        "  --tz ZONE        the IANA zone of --expr (default: the machine's)\n"
	        "  --after ISO8601  start after this instant instead of now; without an offset it\n"
	        "                   is a local time in the zone (2026-03-08T01:59:00-05:00,\n"
	        "                   2026-03-08T01:59, 2026-03-08)\n"
	        "  --json           print JSON\n",
	.exec = cmd_next_exec,
};

struct next_fire {
	int64_t t;
	const struct conf_job *job;
	size_t order; /* to keep jobs in name order at equal times */
};

static int
next_fire_cmp(const void *a, const void *b)
{
	const struct next_fire *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Collects up to N fire times of CE in Z after AFTER into *times; returns how many (fewer
 * when the expression stops firing within the engine's horizon). */
static size_t
next_times(const struct cronexpr *ce, const struct tz *z, int64_t after, long n, int64_t *times)
{
	size_t k = 0;

	for (long i = 0; i < n; i++) {
		if (cronexpr_next(ce, z, after, &after) < 0)
			break;
		times[k++] = after;
	}
	return k;
}

static json_t *
times_json(const struct tz *z, const int64_t *times, size_t k)
{
	json_t *a = json_array();
	char s[64];

	for (size_t i = 0; i < k; i++) {
		tz_format_iso8601(z, times[i], s, sizeof(s));
		json_array_append_new(a, json_string(s));
	}
	return a;
}

static int
next_expr(const char *expr, const char *zone, int64_t after_now, const char *after, long n,
          bool json)
{
	struct cronexpr *ce = NULL;
	struct tz *z = NULL;
	int64_t *times = NULL, start = after_now;
	struct diag d;
	int rc, ret = EPH_EXIT_USAGE;
	size_t k;

	diag_init(&d);
	rc = zone != NULL ? tz_load(zone, &z) : tz_load_local(&z);
	if (rc < 0) {
		fprintf(stderr, "eph next: %s time zone \"%s\"\n",
		        rc == -ENOENT ? "unknown" : "invalid", zone != NULL ? zone : "(local)");
		goto out;
	}
	if (after != NULL && tz_parse_iso8601(after, z, &start) < 0) {
		fprintf(stderr,
		        "eph next: --after: \"%s\" is not an ISO 8601 time (as 2026-03-08T01:59:00-05:00)\n",
		        after);
		goto out;
	}
	if (cronexpr_parse(expr, &(struct diag_pos){ "--expr", 1, 1 }, &ce, &d) < 0) {
		diag_print(&d, stderr);
		goto out;
	}
	times = xcalloc((size_t)n, sizeof(*times));
	k = next_times(ce, z, start, n, times);
	if (json) {
		json_t *o = json_object();

		json_object_set_new(o, "expr", json_string(expr));
		json_object_set_new(o, "timezone", json_string(tz_name(z)));
		json_object_set_new(o, "times", times_json(z, times, k));
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(o);
	} else {
		char s[64];

		for (size_t i = 0; i < k; i++) {
			tz_format_iso8601(z, times[i], s, sizeof(s));
			printf("%s\n", s);
		}
	}
	ret = EPH_EXIT_OK;
out:
	free(times);
	cronexpr_free(ce);
	tz_free(z);
	diag_free(&d);
	return ret;
}

static const struct tz *
job_tz(const struct conf *c, const struct conf_job *j)
{
	return j->tz != NULL ? j->tz : c->local_tz;
}

static int
next_jobs(struct cmd_ctx *ctx, const char *name, int64_t now, const char *after, long n, bool json)
{
	const struct conf_job *only = NULL;
	struct next_fire *fires = NULL;
	int64_t *times;
	size_t nfires = 0;
	json_t *arr = NULL;
	int rc;

	rc = cmd_load_conf(ctx);
	if (rc != EPH_EXIT_OK)
		return rc;
	if (name != NULL && (only = conf_job_find(ctx->conf, name)) == NULL) {
		fprintf(stderr, "eph next: no job \"%s\" in %s\n", name, ctx->conf_path);
		return EPH_EXIT_USAGE;
	}
	times = xcalloc((size_t)n, sizeof(*times));
	if (json)
		arr = json_array();
	else
		fires = xcalloc(ctx->conf->njobs * (size_t)n, sizeof(*fires));
	for (size_t i = 0; i < ctx->conf->njobs; i++) {
		const struct conf_job *j = &ctx->conf->jobs[i];
		const struct tz *z = job_tz(ctx->conf, j);
		int64_t start = now;
		size_t k;

		if (only != NULL && j != only)
			continue;
		if (after != NULL && tz_parse_iso8601(after, z, &start) < 0) {
			fprintf(stderr,
			        "eph next: --after: \"%s\" is not an ISO 8601 time (as 2026-03-08T01:59:00-05:00)\n",
			        after);
			rc = EPH_EXIT_USAGE;
			break;
		}
		k = next_times(j->cron, z, start, n, times);
		if (json) {
			json_t *o = json_object();

			json_object_set_new(o, "job", json_string(j->name));
			json_object_set_new(o, "schedule", json_string(j->schedule));
			json_object_set_new(o, "timezone", json_string(tz_name(z)));
			json_object_set_new(o, "times", times_json(z, times, k));
			json_array_append_new(arr, o);
			continue;
		}
		for (size_t t = 0; t < k; t++)
			fires[nfires++] = (struct next_fire){ times[t], j, i };
	}
	if (rc == EPH_EXIT_OK && json) {
		json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
	} else if (rc == EPH_EXIT_OK) {
		char s[64];

		qsort(fires, nfires, sizeof(*fires), next_fire_cmp);
		for (size_t i = 0; i < nfires; i++) {
			tz_format_iso8601(job_tz(ctx->conf, fires[i].job), fires[i].t, s,
			                  sizeof(s));
			if (only != NULL)
				printf("%s\n", s);
			else
				printf("%s %s\n", s, fires[i].job->name);
		}
	}
	json_decref(arr);
	free(fires);
	free(times);
	return rc;
}

static int
cmd_next_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "expr", required_argument, NULL, 'e' },
		{ "tz", required_argument, NULL, 'z' },
		{ "after", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *expr = NULL, *zone = NULL, *after = NULL;
	bool json = false;
	long n = 5;
	char *end;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || n < 1 || n > NEXT_MAX_N)
				return cmd_usage_error(&cmd_next, "-n wants a count from 1 to %d",
				                       NEXT_MAX_N);
			break;
		case 'e':
			expr = optarg;
			break;
		case 'z':
			zone = optarg;
			break;
		case 'a':
			after = optarg;
			break;
		case 'j':
			json = true;
			break;
		default:
			if (optopt != 0 && strchr("n", optopt) != NULL)
				return cmd_usage_error(&cmd_next, "-%c needs a value", optopt);
			return cmd_usage_error(&cmd_next, "unknown option or missing value: '%s'",
			                       argv[optind - 1]);
		}
	}
	if (expr != NULL) {
		if (optind < argc)
			return cmd_usage_error(&cmd_next, "--expr takes no JOB");
		return next_expr(expr, zone, (int64_t)time(NULL), after, n, json);
	}
	if (zone != NULL)
		return cmd_usage_error(&cmd_next, "--tz goes with --expr; a job has its own zone");
	if (argc - optind > 1)
		return cmd_usage_error(&cmd_next, "too many arguments");
	return next_jobs(ctx, optind < argc ? argv[optind] : NULL, (int64_t)time(NULL), after, n,
	                 json);
}
