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
#include "util/units.h"
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
	        "  --json           print JSON\n\n"
	        "Fire times are found up to the end of the year 9999. Exit status 0 when N times\n"
	        "(per job) were printed; 1 when fewer exist, said on stderr; 2 for bad usage.\n",
	.exec = cmd_next_exec,
};

/* The output is streamed: each time is printed as soon as it is known, so that memory
 * follows the jobs, never jobs x N (20,000 jobs, -n 100000). The merge of the jobs' times
 * is a k-way merge through a binary heap of each job's next time. */

/* One job's next time in the merge. */
struct next_head {
	int64_t t;
	size_t order; /* the job's index: jobs in name order at equal times */
	int64_t left; /* times still to print after this one */
};

static bool
head_before(const struct next_head *x, const struct next_head *y)
{
	return x->t != y->t ? x->t < y->t : x->order < y->order;
}

static void
heap_down(struct next_head *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		struct next_head tmp;

		if (l < n && head_before(&h[l], &h[m]))
			m = l;
		if (l + 1 < n && head_before(&h[l + 1], &h[m]))
			m = l + 1;
		if (m == i)
			return;
		tmp = h[i];
		h[i] = h[m];
		h[m] = tmp;
		i = m;
	}
}

/* Says on stderr that WHO (a quoted expression, or "job NAME") has no fire time after T in
 * Z, for cronexpr_next's RC; returns EPH_EXIT_FAIL. */
static int
report_none(const char *who, const struct tz *z, int64_t t, int rc)
{
	char s[TZ_ISO8601_MAX];

	tz_format_iso8601(z, t, s, sizeof(s));
	if (rc == -ENOENT)
		fprintf(stderr,
		        "eph next: %s has no fire time after %s up to the end of the year 9999\n",
		        who, s);
	else
		fprintf(stderr, "eph next: %s: cannot compute a fire time after %s: %s\n", who, s,
		        strerror(-rc));
	return EPH_EXIT_FAIL;
}

static void
print_json_str(const char *s)
{
	json_t *v = json_string(s);

	json_dumpf(v, stdout, JSON_ENCODE_ANY);
	json_decref(v);
}

/* Streams "times": [...] at INDENT spaces (jansson's JSON_INDENT(2) layout), up to N fire
 * times of CE in Z after *AFTER; leaves in *AFTER the last time printed. Returns
 * cronexpr_next's last result: 0 when N were printed. */
static int
stream_json_times(const struct cronexpr *ce, const struct tz *z, int64_t *after, int64_t n,
                  int indent)
{
	char s[TZ_ISO8601_MAX];
	int rc = 0;
	int64_t k;

	printf("%*s\"times\": [", indent, "");
	for (k = 0; k < n; k++) {
		int64_t t;

		if ((rc = cronexpr_next(ce, z, *after, &t)) < 0)
			break;
		*after = t;
		tz_format_iso8601(z, t, s, sizeof(s));
		printf("%s\n%*s\"%s\"", k > 0 ? "," : "", indent + 2, "", s);
	}
	if (k > 0)
		printf("\n%*s]", indent, "");
	else
		putchar(']');
	return rc;
}

static int
next_expr(const char *expr, const char *zone, int64_t after_now, const char *after, int64_t n,
          bool json)
{
	struct cronexpr *ce = NULL;
	struct tz *z = NULL;
	int64_t t = after_now;
	struct diag d;
	int rc, ret = EPH_EXIT_USAGE;

	diag_init(&d);
	rc = zone != NULL ? tz_load(zone, &z) : tz_load_local(&z);
	if (rc < 0) {
		fprintf(stderr, "eph next: %s time zone \"%s\"\n",
		        rc == -ENOENT ? "unknown" : "invalid", zone != NULL ? zone : "(local)");
		goto out;
	}
	if (after != NULL && tz_parse_iso8601(after, z, &t) < 0) {
		fprintf(stderr,
		        "eph next: --after: \"%s\" is not an ISO 8601 time (as 2026-03-08T01:59:00-05:00)\n",
		        after);
		goto out;
	}
	if (cronexpr_parse(expr, &(struct diag_pos){ "--expr", 1, 1 }, &ce, &d) < 0) {
		diag_print(&d, stderr);
		goto out;
	}
	if (json) {
		printf("{\n  \"expr\": ");
		print_json_str(expr);
		printf(",\n  \"timezone\": ");
		print_json_str(tz_name(z));
		printf(",\n");
		rc = stream_json_times(ce, z, &t, n, 2);
		printf("\n}\n");
	} else {
		char s[TZ_ISO8601_MAX];

		rc = 0;
		for (int64_t k = 0; k < n && (rc = cronexpr_next(ce, z, t, &t)) == 0; k++) {
			tz_format_iso8601(z, t, s, sizeof(s));
			printf("%s\n", s);
		}
	}
	ret = EPH_EXIT_OK;
	if (rc < 0) {
		char *who = xasprintf("\"%s\"", expr);

		fflush(stdout);
		ret = report_none(who, z, t, rc);
		free(who);
	}
out:
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

/* The instant to start after for job J: NOW, or --after read in the job's zone. */
static int
job_start(const struct conf *c, const struct conf_job *j, int64_t now, const char *after,
          int64_t *start)
{
	*start = now;
	if (after != NULL && tz_parse_iso8601(after, job_tz(c, j), start) < 0) {
		fprintf(stderr,
		        "eph next: --after: \"%s\" is not an ISO 8601 time (as 2026-03-08T01:59:00-05:00)\n",
		        after);
		return EPH_EXIT_USAGE;
	}
	return EPH_EXIT_OK;
}

static int
report_job_none(const struct conf *c, const struct conf_job *j, int64_t t, int rc)
{
	char *who = xasprintf("job %s", j->name);

	fflush(stdout);
	rc = report_none(who, job_tz(c, j), t, rc);
	free(who);
	return rc;
}

static int
next_jobs_json(const struct conf *c, const struct conf_job *only, int64_t now, const char *after,
               int64_t n)
{
	int ret = EPH_EXIT_OK;
	bool first = true;

	for (size_t i = 0; i < c->njobs; i++) {
		const struct conf_job *j = &c->jobs[i];
		int64_t t;
		int rc;

		if (only != NULL && j != only)
			continue;
		if (job_start(c, j, now, after, &t) != EPH_EXIT_OK)
			return EPH_EXIT_USAGE; /* the same --after for every job: the first says so
			                        */
		printf("%s  {\n    \"job\": ", first ? "[\n" : ",\n");
		first = false;
		print_json_str(j->name);
		printf(",\n    \"schedule\": ");
		print_json_str(j->schedule);
		printf(",\n    \"timezone\": ");
		print_json_str(tz_name(job_tz(c, j)));
		printf(",\n");
		rc = stream_json_times(j->cron, job_tz(c, j), &t, n, 4);
		printf("\n  }");
		if (rc < 0)
			ret = report_job_none(c, j, t, rc);
	}
	printf(first ? "[]\n" : "\n]\n");
	return ret;
}

static int
next_jobs(struct cmd_ctx *ctx, const char *name, int64_t now, const char *after, int64_t n,
          bool json)
{
	const struct conf *c;
	const struct conf_job *only = NULL;
	struct next_head *heap;
	char s[TZ_ISO8601_MAX];
	size_t nh = 0;
	int rc, ret = EPH_EXIT_OK;

	rc = cmd_load_conf(ctx);
	if (rc != EPH_EXIT_OK)
		return rc;
	c = ctx->conf;
	if (name != NULL && (only = conf_job_find(c, name)) == NULL) {
		fprintf(stderr, "eph next: no job \"%s\" in %s\n", name, ctx->conf_path);
		return EPH_EXIT_USAGE;
	}
	if (json)
		return next_jobs_json(c, only, now, after, n);
	heap = xcalloc(c->njobs > 0 ? c->njobs : 1, sizeof(*heap));
	for (size_t i = 0; i < c->njobs; i++) {
		const struct conf_job *j = &c->jobs[i];
		int64_t t;

		if (only != NULL && j != only)
			continue;
		if (job_start(c, j, now, after, &t) != EPH_EXIT_OK) {
			free(heap);
			return EPH_EXIT_USAGE;
		}
		if ((rc = cronexpr_next(j->cron, job_tz(c, j), t, &heap[nh].t)) < 0) {
			ret = report_job_none(c, j, t, rc);
			continue;
		}
		heap[nh].order = i;
		heap[nh++].left = n - 1;
	}
	for (size_t i = nh / 2; i-- > 0;)
		heap_down(heap, nh, i);
	while (nh > 0) {
		struct next_head *h = &heap[0];
		const struct conf_job *j = &c->jobs[h->order];
		const struct tz *z = job_tz(c, j);

		tz_format_iso8601(z, h->t, s, sizeof(s));
		if (only != NULL)
			printf("%s\n", s);
		else
			printf("%s %s\n", s, j->name);
		if (h->left > 0 && (rc = cronexpr_next(j->cron, z, h->t, &h->t)) == 0) {
			h->left--;
		} else {
			if (h->left > 0)
				ret = report_job_none(c, j, h->t, rc);
			*h = heap[--nh];
		}
		heap_down(heap, nh, 0);
	}
	free(heap);
	return ret;
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
	int64_t n = 5;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (units_parse_count(optarg, 1, NEXT_MAX_N, &n) < 0)
				return cmd_usage_error(&cmd_next,
				                       "-n wants a count from 1 to %d, not '%s'",
				                       NEXT_MAX_N, optarg);
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
