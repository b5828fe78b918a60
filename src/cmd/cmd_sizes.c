/* src/cmd/cmd_sizes.c: `eph sizes`, per job the memory it is configured with, the memory its
 * recent runs needed, and what was asked for and never used. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "cmd/cmd_runs.h"
#include "conf/conf.h"
#include "exec/sizing.h"
#include "store/store.h"
#include "util/xalloc.h"

static int cmd_sizes_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_sizes = {
	.name = "sizes",
	.usage = "sizes [JOB] [--json]",
	.summary = "the memory each job is given, needs, and leaves unused",
	.help = "For each job of the jobs file (or JOB), from its last 20 runs that ended\n"
	        "succeeded or oom: the memory it is configured with; the limit recommended (for a\n"
	        "job with memory: auto, what its next run gets; else what auto would give it:\n"
	        "the 95th percentile of the peaks plus 25%, rounded up to the MiB); the peaks'\n"
	        "50th and 95th percentiles and maximum (succeeded runs); the number of oom runs;\n"
	        "and the memory asked for and never used: over the succeeded runs that had a\n"
	        "limit, the mean of limit - peak per run, and its sum weighted by each run's\n"
	        "duration, in GiB-hours. A run's peak is the most its cgroup held at once (or,\n"
	        "where no cgroup could be used, the most sampled).\n\n"
	        "Options:\n"
	        "  --json  print one JSON object: {\"window\": 20, \"jobs\": [...]}\n",
	.exec = cmd_sizes_exec,
};

/* What the table and the JSON show of job J. */
struct sizes_row {
	const struct conf_job *j;
	struct sizing_stats st;
	struct sizing rec; /* limit 0 = none recommended (no history of a fixed job) */
};

static void
sizes_compute(struct store *s, const struct conf_job *j, struct sizes_row *row)
{
	struct store_size_obs *obs = NULL;
	size_t n = 0;

	memset(row, 0, sizeof(*row));
	row->j = j;
	if (s != NULL && store_size_history(s, j->name, SIZING_WINDOW, &obs, &n) < 0) {
		obs = NULL;
		n = 0;
	}
	sizing_stats(obs, n, &row->st);
	if (j->memory_auto) {
		/* what the job's next run gets (a scheduled one: no oom to grow from) */
		sizing_from_history(obs, n, j->memory_min, j->memory_max, &row->rec);
	} else if (row->st.nruns > 0) {
		sizing_from_history(obs, n, SIZING_STEP, 0, &row->rec);
	}
	free(obs);
}

/* The configured memory of J, for a person: "1 GiB", "none", "auto 512 MiB..8 GiB". */
static void
sizes_configured(const struct conf_job *j, char *out, size_t n)
{
	char a[32], b[32];

	if (j->memory_auto) {
		sizing_format(j->memory_min, a, sizeof(a));
		if (j->memory_max > 0) {
			sizing_format(j->memory_max, b, sizeof(b));
			snprintf(out, n, "auto %s..%s", a, b);
		} else {
			snprintf(out, n, "auto %s..", a);
		}
	} else if (j->memory > 0) {
		sizing_format(j->memory, out, n);
	} else {
		snprintf(out, n, "none");
	}
}

static json_t *
jbytes(uint64_t v, bool known)
{
	return known ? json_integer((json_int_t)v) : json_null();
}

static json_t *
sizes_json(const struct sizes_row *r)
{
	const struct conf_job *j = r->j;
	json_t *o = json_object(), *c = json_object();
	bool peaks = r->st.npeaks > 0;

	json_object_set_new(c, "mode",
	                    json_string(j->memory_auto  ? "auto"
	                                : j->memory > 0 ? "fixed"
	                                                : "none"));
	json_object_set_new(c, "memory", jbytes(j->memory, !j->memory_auto && j->memory > 0));
	json_object_set_new(c, "min", jbytes(j->memory_min, j->memory_auto));
	json_object_set_new(c, "max", jbytes(j->memory_max, j->memory_auto && j->memory_max > 0));
	json_object_set_new(c, "retry_on_oom",
	                    json_string(j->retry_on_oom == CONF_OOM_RETRY_GROW ? "grow" : "none"));
	json_object_set_new(o, "job", json_string(j->name));
	json_object_set_new(o, "configured", c);
	json_object_set_new(o, "recommended", jbytes(r->rec.limit, r->rec.reason != NULL));
	json_object_set_new(o, "reason",
	                    r->rec.reason != NULL ? json_string(r->rec.reason) : json_null());
	json_object_set_new(o, "runs", json_integer((json_int_t)r->st.nruns));
	json_object_set_new(o, "oom", json_integer((json_int_t)r->st.noom));
	json_object_set_new(o, "peak_p50", jbytes(r->st.p50, peaks));
	json_object_set_new(o, "peak_p95", jbytes(r->st.p95, peaks));
	json_object_set_new(o, "peak_max", jbytes(r->st.max, peaks));
	json_object_set_new(o, "unused_runs", json_integer((json_int_t)r->st.nunused));
	json_object_set_new(o, "unused_mean_bytes", jbytes(r->st.unused_mean, r->st.nunused > 0));
	json_object_set_new(o, "unused_gib_hours",
	                    r->st.nunused > 0 ? json_real(r->st.unused_gib_hours) : json_null());
	return o;
}

#define SIZES_COLS 10

static void
sizes_print(const struct sizes_row *rows, size_t n)
{
	static const char *const head[SIZES_COLS] = {
		"JOB", "CONFIGURED", "RECOMMENDED", "RUNS",       "P50",
		"P95", "MAX",        "OOM",         "UNUSED/RUN", "UNUSED GiB-h",
	};
	char *cell[SIZES_COLS];
	size_t w[SIZES_COLS];
	char ***t = xcalloc(n + 1, sizeof(*t));

	for (size_t c = 0; c < SIZES_COLS; c++)
		w[c] = strlen(head[c]);
	for (size_t i = 0; i < n; i++) {
		const struct sizes_row *r = &rows[i];
		char buf[128];

		t[i] = xcalloc(SIZES_COLS, sizeof(char *));
		cell[0] = xstrdup(r->j->name);
		sizes_configured(r->j, buf, sizeof(buf));
		cell[1] = xstrdup(buf);
		if (r->rec.reason != NULL)
			sizing_format(r->rec.limit, buf, sizeof(buf));
		cell[2] = xstrdup(r->rec.reason != NULL ? buf : "-");
		cell[3] = xasprintf("%zu", r->st.nruns);
		for (size_t k = 0; k < 3; k++) {
			uint64_t v = k == 0 ? r->st.p50 : k == 1 ? r->st.p95 : r->st.max;

			sizing_format(v, buf, sizeof(buf));
			cell[4 + k] = xstrdup(r->st.npeaks > 0 ? buf : "-");
		}
		cell[7] = xasprintf("%zu", r->st.noom);
		sizing_format(r->st.unused_mean, buf, sizeof(buf));
		cell[8] = xstrdup(r->st.nunused > 0 ? buf : "-");
		cell[9] = r->st.nunused > 0 ? xasprintf("%.3f", r->st.unused_gib_hours)
		                            : xstrdup("-");
		for (size_t c = 0; c < SIZES_COLS; c++) {
			t[i][c] = cell[c];
			if (strlen(cell[c]) > w[c])
				w[c] = strlen(cell[c]);
		}
	}
	for (size_t c = 0; c < SIZES_COLS; c++)
		printf(c < 2                ? "%-*s  "
		       : c + 1 < SIZES_COLS ? "%*s  "
		                            : "%*s\n",
		       (int)w[c], head[c]);
	for (size_t i = 0; i < n; i++) {
		for (size_t c = 0; c < SIZES_COLS; c++) {
			printf(c < 2                ? "%-*s  "
			       : c + 1 < SIZES_COLS ? "%*s  "
			                            : "%*s\n",
			       (int)w[c], t[i][c]);
			free(t[i][c]);
		}
		free(t[i]);
	}
	for (size_t i = 0; i < n; i++)
		if (rows[i].rec.reason != NULL)
			printf("%s%s: %s\n", i == 0 ? "\n" : "", rows[i].j->name,
			       rows[i].rec.reason);
	free(t);
}

static int
cmd_sizes_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct sizes_row *rows;
	struct store *st = NULL;
	size_t n = 0;
	bool json = false;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'j')
			return cmd_usage_error(&cmd_sizes, "unknown option '%s'", argv[optind - 1]);
		json = true;
	}
	if (argc - optind > 1)
		return cmd_usage_error(&cmd_sizes, "too many arguments");
	if ((rc = cmd_load_conf(ctx)) != EPH_EXIT_OK)
		return rc;
	if (optind < argc && conf_job_find(ctx->conf, argv[optind]) == NULL) {
		fprintf(stderr, "eph sizes: no job \"%s\" in %s\n", argv[optind], ctx->conf_path);
		return EPH_EXIT_USAGE;
	}
	cmd_settle(ctx);
	rc = cmd_store_open(ctx, &st);
	if (rc < 0 && rc != -ENOENT)
		return EPH_EXIT_FAIL;
	rows = xcalloc(ctx->conf->njobs > 0 ? ctx->conf->njobs : 1, sizeof(*rows));
	for (size_t i = 0; i < ctx->conf->njobs; i++) {
		const struct conf_job *j = &ctx->conf->jobs[i];

		if (optind < argc && strcmp(j->name, argv[optind]) != 0)
			continue;
		sizes_compute(st, j, &rows[n++]);
	}
	store_close(st);
	if (json) {
		json_t *a = json_array(), *o;

		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, sizes_json(&rows[i]));
		o = json_pack("{s:i, s:o}", "window", SIZING_WINDOW, "jobs", a);
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(o);
	} else {
		sizes_print(rows, n);
	}
	for (size_t i = 0; i < n; i++)
		sizing_clear(&rows[i].rec);
	free(rows);
	return EPH_EXIT_OK;
}
