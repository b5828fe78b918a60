/* src/cmd/cmd_cost.c: `eph cost`, per job and in total, what its runs of the last days cost on
 * their executor, the month its schedule projects, the same work on always-on servers, and
 * the floor (docs/cost.md). The arithmetic is exec/cost.c's; here: the rates of the jobs
 * file's executors, the runs from the store, the fires from the schedule. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "cmd/cmd_runs.h"
#include "conf/conf.h"
#include "exec/cloud_size.h"
#include "exec/cost.h"
#include "exec/sizing.h"
#include "remote/remote.h"
#include "sched/cronexpr.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/units.h"
#include "util/xalloc.h"

#define COST_DAYS_DEFAULT 30
#define COST_DAYS_MAX     36600
#define COST_FIRES_MAX    1000000 /* fires of a calendar schedule counted in a month */

static int cmd_cost_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_cost = {
	.name = "cost",
	.usage = "cost [JOB] [--days N] [--json]",
	.summary = "what each job's runs cost, and would cost otherwise",
	.help = "For each job of the jobs file (or JOB), over the runs that ended in the last N\n"
	        "days (30 by default): how many, their run time, and what they cost on their\n"
	        "executor (local and ssh: the host's price_monthly shared by memory-seconds, the\n"
	        "run's memory limit, else its peak, times its duration, over the host's memory\n"
	        "times a month of 730 hours); the month its schedule projects (its fires in the\n"
	        "next 730 hours times its median run cost); the same work on an always-on server\n"
	        "of the size it needs (the smallest power of two, at least 512 MiB, that holds its\n"
	        "largest peak, at the host's price per byte); and the floor (its run time at the\n"
	        "memory it needs, to the MiB, billed by the second). docs/cost.md says more.\n\n"
	        "Options:\n"
	        "  --days N  the window, in days (1 to 36600; default 30)\n"
	        "  --json    print one JSON object: {\"days\": N, \"jobs\": [...], \"total\": {...}}\n",
	.exec = cmd_cost_exec,
};

/* The price of one host: an executor's rate, and for ssh the host's name as its handles
 * write it. */
struct cost_host {
	const char *executor; /* borrowed from the conf */
	char *host;           /* owned; NULL for local */
	struct cost_rate rate;
	/* a cloud executor's ladder: its sizes (owned), their names borrowed from CAT (owned) */
	struct cost_size *ladder;
	struct cloud_catalog *cat;
};

struct cost_rates {
	struct cost_host *v;
	size_t n;
};

/* The machine's memory (what the local host's price buys), or 0. */
static uint64_t
local_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

	return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
}

static int
ladder_cmp(const void *a, const void *b)
{
	const struct cost_size *x = a, *y = b;

	if (x->memory != y->memory)
		return x->memory < y->memory ? -1 : 1;
	return x->price_monthly < y->price_monthly ? -1 : x->price_monthly > y->price_monthly;
}

/* The ladder of digitalocean executor E (its settings D) from its cached catalogue in
 * STATE_DIR: the sizes of its region (within its `sizes`), each counted for its memory less
 * the reserve, ascending; billed by DigitalOcean's rule. Unpriced without a catalogue. */
static void
rate_do(const char *state_dir, const struct conf_executor *e, const struct conf_do *d,
        struct cost_host *out)
{
	const struct cloud_size **c = NULL;
	char *path = cloud_catalog_path(state_dir, e->name), *err = NULL;
	size_t n = 0;

	*out = (struct cost_host){ e->name, NULL, { 0, 0, NULL, 0, NULL }, NULL, NULL };
	if (cloud_catalog_load(path, &out->cat, &err) < 0 ||
	    cloud_size_candidates(out->cat, d->region, 0, d->reserve,
	                          (const char *const *)d->sizes.v, d->sizes.n, &c, &n) < 0) {
		free(path);
		free(err);
		return;
	}
	out->ladder = xcalloc(n + 1, sizeof(*out->ladder));
	for (size_t i = 0; i < n; i++)
		out->ladder[i] = (struct cost_size){ c[i]->slug, c[i]->memory - d->reserve,
			                             c[i]->price_monthly };
	qsort(out->ladder, n, sizeof(*out->ladder), ladder_cmp);
	out->rate.sizes = out->ladder;
	out->rate.nsizes = n;
	out->rate.bill = cloud_bill_do_ladder;
	free(c);
	free(path);
	free(err);
}

/* The rates of C's executors: local's, one per host of each ssh executor, and a ladder for
 * each digitalocean executor (its cached catalogue in STATE_DIR). A type with no price yet
 * (slurm) has none: its runs are unpriced. */
static void
rates_build(const struct conf *c, const char *state_dir, struct cost_rates *out)
{
	out->v = NULL;
	out->n = 0;
	for (size_t i = 0; i < c->nexecutors; i++) {
		const struct conf_executor *e = &c->executors[i];
		const struct conf_ssh *s = conf_executor_ssh(e);

		if (conf_executor_do(e) != NULL) {
			out->v = xreallocarray(out->v, out->n + 1, sizeof(*out->v));
			rate_do(state_dir, e, conf_executor_do(e), &out->v[out->n++]);
			continue;
		}
		if (e->type == CONF_EXEC_LOCAL) {
			out->v = xreallocarray(out->v, out->n + 1, sizeof(*out->v));
			out->v[out->n++] = (struct cost_host){ e->name,
				                               NULL,
				                               { c->local.price_monthly,
				                                 local_memory(), NULL, 0, NULL },
				                               NULL,
				                               NULL };
			continue;
		}
		for (size_t h = 0; s != NULL && h < s->nhosts; h++) {
			const struct conf_ssh_host *sh = &s->hosts[h];

			out->v = xreallocarray(out->v, out->n + 1, sizeof(*out->v));
			out->v[out->n++] = (struct cost_host){
				e->name,
				remote_host_str(&sh->host),
				{ sh->price_set ? sh->price_monthly : s->price_monthly, sh->memory,
				  NULL, 0, NULL },
				NULL,
				NULL,
			};
		}
	}
}

static void
rates_free(struct cost_rates *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].host);
		free(r->v[i].ladder);
		cloud_catalog_free(r->v[i].cat);
	}
	free(r->v);
}

/* The rate of a run on EXECUTOR (and HOST, for ssh): that host's; the executor's first
 * host's when its host is not listed any more; NULL when the executor is not. */
static const struct cost_rate *
rate_of(const struct cost_rates *r, const char *executor, const char *host)
{
	const struct cost_rate *first = NULL;

	if (executor == NULL)
		return NULL;
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->v[i].executor, executor) != 0)
			continue;
		if (first == NULL)
			first = &r->v[i].rate;
		if (r->v[i].host == NULL || (host != NULL && strcmp(r->v[i].host, host) == 0))
			return &r->v[i].rate;
	}
	return first;
}

/* J's fires in the COST_MONTH_S seconds after NOW. */
static double
fires_month(const struct conf_job *j, int64_t now)
{
	int64_t every = cronexpr_interval(j->cron), t = now, end = now + (int64_t)COST_MONTH_S;
	double n = 0;

	if (every > 0)
		return COST_MONTH_S / (double)every;
	while (n < COST_FIRES_MAX && cronexpr_next(j->cron, j->tz, t, &t) == 0 && t < end)
		n++;
	return n;
}

struct cost_row {
	const struct conf_job *j;
	struct cost_job sum;
};

static void
cost_compute(struct store *s, const struct cost_rates *rates, const struct conf_job *j,
             double since, int64_t now, struct cost_row *row)
{
	struct store_cost_run *sr = NULL;
	const struct cost_rate *rate = rate_of(rates, j->executor, NULL);
	struct cost_run *cr;
	size_t n = 0;

	row->j = j;
	if (s != NULL && store_cost_runs(s, j->name, since, &sr, &n) < 0) {
		sr = NULL;
		n = 0;
	}
	cr = xcalloc(n > 0 ? n : 1, sizeof(*cr));
	for (size_t i = 0; i < n; i++) {
		cr[i] = (struct cost_run){
			.seconds = sr[i].seconds,
			.limit = sr[i].memory_limit > 0 ? (uint64_t)sr[i].memory_limit : 0,
			.peak = sr[i].peak_bytes,
			.succeeded = sr[i].state == STORE_SUCCEEDED,
			.oom = sr[i].state == STORE_OOM,
			.rate = rate_of(rates, sr[i].executor, sr[i].host),
		};
		/* the job's executor now, at the host its latest run used */
		if (sr[i].executor != NULL && strcmp(sr[i].executor, j->executor) == 0 &&
		    cr[i].rate != NULL)
			rate = cr[i].rate;
	}
	cost_job_sum(cr, n, fires_month(j, now), rate, &row->sum);
	free(cr);
	store_cost_runs_free(sr, n);
}

/* A price for a person: "0", "12.40", and below 0.01 two significant digits ("0.0042"),
 * down to 8 decimals ("<0.00000001" below). */
static void
money(double v, char *out, size_t n)
{
	int dec = 2;

	if (v <= 0) {
		snprintf(out, n, "0");
		return;
	}
	if (v < 1e-8) {
		snprintf(out, n, "<0.00000001");
		return;
	}
	while (dec < 8 && v < 0.1 * pow(10, -(dec - 1)))
		dec++;
	snprintf(out, n, "%.*f", dec, v);
}

static json_t *
jnum(double v)
{
	return json_real(v);
}

static json_t *
cost_json(const struct cost_row *r)
{
	const struct cost_job *c = &r->sum;
	json_t *o = json_object(), *srv = json_null();

	if (c->server.memory > 0) {
		srv = json_object();
		json_object_set_new(srv, "memory", json_integer((json_int_t)c->server.memory));
		json_object_set_new(srv, "size",
		                    c->server.name != NULL ? json_string(c->server.name)
		                                           : json_null());
		json_object_set_new(srv, "price_monthly", jnum(c->server.price_monthly));
	}
	json_object_set_new(o, "job", json_string(r->j->name));
	json_object_set_new(o, "executor", json_string(r->j->executor));
	json_object_set_new(o, "runs", json_integer((json_int_t)c->nruns));
	json_object_set_new(o, "unpriced_runs", json_integer((json_int_t)c->nunpriced));
	json_object_set_new(o, "run_seconds", jnum(c->run_seconds));
	json_object_set_new(o, "cost", jnum(c->cost));
	json_object_set_new(o, "typical_run_cost", jnum(c->typical_cost));
	json_object_set_new(o, "typical_run_seconds", jnum(c->typical_s));
	json_object_set_new(o, "need",
	                    c->need > 0 ? json_integer((json_int_t)c->need) : json_null());
	json_object_set_new(o, "fires_per_month", jnum(c->fires_month));
	json_object_set_new(o, "month", jnum(c->month));
	json_object_set_new(o, "always_on", srv);
	json_object_set_new(o, "always_on_month",
	                    c->server.memory > 0 ? jnum(c->server.price_monthly) : json_null());
	json_object_set_new(o, "floor", jnum(c->floor));
	json_object_set_new(o, "floor_month", jnum(c->floor_month));
	return o;
}

/* The totals over the N rows. */
static void
cost_total(const struct cost_row *rows, size_t n, struct cost_job *t)
{
	*t = (struct cost_job){ 0 };
	for (size_t i = 0; i < n; i++) {
		const struct cost_job *c = &rows[i].sum;

		t->nruns += c->nruns;
		t->nunpriced += c->nunpriced;
		t->run_seconds += c->run_seconds;
		t->cost += c->cost;
		t->month += c->month;
		t->server.price_monthly += c->server.memory > 0 ? c->server.price_monthly : 0;
		t->floor += c->floor;
		t->floor_month += c->floor_month;
	}
}

static json_t *
total_json(const struct cost_job *t)
{
	json_t *o = json_object();

	json_object_set_new(o, "runs", json_integer((json_int_t)t->nruns));
	json_object_set_new(o, "unpriced_runs", json_integer((json_int_t)t->nunpriced));
	json_object_set_new(o, "run_seconds", jnum(t->run_seconds));
	json_object_set_new(o, "cost", jnum(t->cost));
	json_object_set_new(o, "month", jnum(t->month));
	json_object_set_new(o, "always_on_month", jnum(t->server.price_monthly));
	json_object_set_new(o, "floor", jnum(t->floor));
	json_object_set_new(o, "floor_month", jnum(t->floor_month));
	return o;
}

#define COST_COLS 9

/* The cells of one line of the table (C; J NULL for the total), into CELL. */
static void
cost_cells(const struct conf_job *j, const struct cost_job *c, char **cell)
{
	char b[64], m[64];

	cell[0] = xstrdup(j != NULL ? j->name : "TOTAL");
	cell[1] = xstrdup(j != NULL ? j->executor : "");
	cell[2] = xasprintf("%zu", c->nruns);
	units_format_duration(c->run_seconds, b, sizeof(b));
	cell[3] = xstrdup(c->nruns > 0 ? b : "-");
	money(c->cost, b, sizeof(b));
	cell[4] = xstrdup(b);
	money(c->month, b, sizeof(b));
	cell[5] = xstrdup(j == NULL || c->nruns > 0 ? b : "-");
	money(c->server.price_monthly, b, sizeof(b));
	if (j == NULL) {
		cell[6] = xstrdup(b);
	} else if (c->server.memory > 0) {
		sizing_format(c->server.memory, m, sizeof(m));
		cell[6] = xasprintf("%s (%s)", b, c->server.name != NULL ? c->server.name : m);
	} else {
		cell[6] = xstrdup("-");
	}
	money(c->floor_month, b, sizeof(b));
	cell[7] = xstrdup(j == NULL || c->need > 0 ? b : "-");
	if (j != NULL && c->need > 0)
		sizing_format(c->need, m, sizeof(m));
	cell[8] = xstrdup(j != NULL && c->need > 0 ? m : "-");
}

static void
cost_print(const struct cost_row *rows, size_t n, const struct cost_job *t, long days)
{
	char cost_head[32];
	const char *head[COST_COLS] = {
		"JOB",   "EXECUTOR",  "RUNS",  "RUN TIME", cost_head,
		"MONTH", "ALWAYS-ON", "FLOOR", "NEEDS",
	};
	char ***tab = xcalloc(n + 1, sizeof(*tab));
	size_t w[COST_COLS];

	snprintf(cost_head, sizeof(cost_head), "COST %ldd", days);
	for (size_t c = 0; c < COST_COLS; c++)
		w[c] = strlen(head[c]);
	for (size_t i = 0; i <= n; i++) {
		tab[i] = xcalloc(COST_COLS, sizeof(char *));
		cost_cells(i < n ? rows[i].j : NULL, i < n ? &rows[i].sum : t, tab[i]);
		for (size_t c = 0; c < COST_COLS; c++)
			if (strlen(tab[i][c]) > w[c])
				w[c] = strlen(tab[i][c]);
	}
	for (size_t i = 0; i <= n + 1; i++) {
		const char *const *line = i == 0 ? head : (const char *const *)tab[i - 1];

		for (size_t c = 0; c < COST_COLS; c++)
			printf(c < 2               ? "%-*s  "
			       : c + 1 < COST_COLS ? "%*s  "
			                           : "%*s\n",
			       (int)w[c], line[c]);
	}
	for (size_t i = 0; i <= n; i++) {
		for (size_t c = 0; c < COST_COLS; c++)
			free(tab[i][c]);
		free(tab[i]);
	}
	free(tab);
	printf("\nCOST: the runs that ended in the last %ld days. MONTH, ALWAYS-ON and FLOOR: a "
	       "month of 730 hours. docs/cost.md says how each is reckoned.\n",
	       days);
	if (t->nunpriced > 0)
		printf("%zu runs were on executors without a price_monthly: they count as 0.\n",
		       t->nunpriced);
}

static int
cmd_cost_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "days", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct cost_rates rates;
	struct cost_row *rows;
	struct cost_job total;
	struct store *st = NULL;
	long days = COST_DAYS_DEFAULT;
	size_t n = 0;
	bool json = false;
	int64_t now;
	char *end;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'j') {
			json = true;
		} else if (opt == 'd') {
			errno = 0;
			days = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || days < 1 ||
			    days > COST_DAYS_MAX)
				return cmd_usage_error(&cmd_cost,
				                       "--days must be a whole number from 1 to %d",
				                       COST_DAYS_MAX);
		} else {
			return cmd_usage_error(&cmd_cost, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind > 1)
		return cmd_usage_error(&cmd_cost, "too many arguments");
	if ((rc = cmd_load_conf(ctx)) != EPH_EXIT_OK)
		return rc;
	if (optind < argc && conf_job_find(ctx->conf, argv[optind]) == NULL) {
		fprintf(stderr, "eph cost: no job \"%s\" in %s\n", argv[optind], ctx->conf_path);
		return EPH_EXIT_USAGE;
	}
	cmd_settle(ctx);
	rc = cmd_store_open(ctx, &st);
	if (rc < 0 && rc != -ENOENT)
		return EPH_EXIT_FAIL;
	now = (int64_t)clock_real();
	rates_build(ctx->conf, cmd_state_dir(ctx), &rates);
	rows = xcalloc(ctx->conf->njobs > 0 ? ctx->conf->njobs : 1, sizeof(*rows));
	for (size_t i = 0; i < ctx->conf->njobs; i++) {
		const struct conf_job *j = &ctx->conf->jobs[i];

		if (optind < argc && strcmp(j->name, argv[optind]) != 0)
			continue;
		cost_compute(st, &rates, j, (double)now - (double)days * 86400, now, &rows[n++]);
	}
	store_close(st);
	cost_total(rows, n, &total);
	if (json) {
		json_t *a = json_array(), *o;

		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, cost_json(&rows[i]));
		o = json_pack("{s:i, s:f, s:o, s:o}", "days", (int)days, "month_hours", 730.0,
		              "jobs", a, "total", total_json(&total));
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(o);
	} else {
		cost_print(rows, n, &total, days);
	}
	free(rows);
	rates_free(&rates); /* after the rows: a ladder's size names are its catalogue's */
	return EPH_EXIT_OK;
}
