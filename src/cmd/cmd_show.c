/* src/cmd/cmd_show.c: `eph show RUN`, one run in full, with its memory timeline drawn in the
 * terminal. */
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "cmd/cmd_runs.h"
#include "rundir/results.h"
#include "rundir/rundir.h"
#include "rundir/runprofile.h"
#include "store/store.h"
#include "store/upload.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

static int cmd_show_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_show = {
	.name = "show",
	.usage = "show RUN|JOB [--json]",
	.summary = "show one run in full, with its memory timeline",
	.help = "RUN is a run id; a JOB name means that job's latest run. Prints the run's state\n"
	        "and why, its times and phases, the executor and how memory was enforced, the\n"
	        "commit, the exit code or signal, the peak memory against the limit, the CPU time,\n"
	        "the run directory and log, and a chart of memory use over time against the limit\n"
	        "(the samples of a live run come from its events.jsonl). The chart uses Unicode\n"
	        "blocks on a UTF-8 terminal, plain ASCII otherwise; its width is the terminal's\n"
	        "($COLUMNS, else 80, when not a terminal).\n\n"
	        "Options:\n"
	        "  --json  print every field of the run and its samples [{t, bytes}]\n\n"
	        "Exits 2 when there is no such run.\n",
	.exec = cmd_show_exec,
};

#define CHART_ROWS 8

struct samples {
	struct store_sample *v;
	size_t n, cap;
};

static int
collect_mem(const struct rundir_event *e, void *arg)
{
	struct samples *s = arg;

	if (strcmp(e->ev, "mem") != 0)
		return 0;
	if (s->n == s->cap) {
		s->cap = s->cap != 0 ? s->cap * 2 : 64;
		s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
	}
	s->v[s->n].t = e->t;
	s->v[s->n].bytes = (int64_t)e->bytes;
	s->n++;
	return 0;
}

/* The samples of R: from the store when it has them, else from the run's events.jsonl (a
 * live run). *FROM says which ("store", "events" or "none"). */
static void
load_samples(struct store *st, const struct store_run *r, struct samples *s, const char **from)
{
	*from = "none";
	if (store_samples_get(st, r->id, &s->v, &s->n) == 0 && s->n > 0) {
		s->cap = s->n;
		*from = "store";
		return;
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
	if (r->run_dir != NULL &&
	    rundir_events_foreach(r->run_dir, 0, collect_mem, s, NULL, NULL) == 0 && s->n > 0)
		*from = "events";
}

static bool
utf8_terminal(void)
{
	const char *cs;

	if (!isatty(STDOUT_FILENO))
		return false;
	if (setlocale(LC_CTYPE, "") == NULL)
		return false;
	cs = nl_langinfo(CODESET);
	return cs != NULL && strcmp(cs, "UTF-8") == 0;
}

/* Draws the samples as a CHART_ROWS-high column chart, one column per time slice (the highest
 * sample in it; a slice without a sample keeps the previous value), with the limit as a line. */
static void
draw_chart(const struct store_run *r, const struct samples *s, bool utf8)
{
	static const char *const eighths[9] = { " ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" };
	const char *vline = utf8 ? "┤" : "|", *hline = utf8 ? "─" : "-", *corner = utf8 ? "└" : "+";
	char top[32], lim[32], zero[32], a[32], b[32], c[32];
	int64_t peak = 0, limit = r->memory_limit;
	double t0, t1, ymax;
	int width = cmd_term_width(STDOUT_FILENO), lw, cols, lim_row = -1;
	int64_t *col;

	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].bytes > peak)
			peak = s->v[i].bytes;
	t0 = r->started_at > 0 && r->started_at <= s->v[0].t ? r->started_at : s->v[0].t;
	t1 = s->v[s->n - 1].t;
	if (r->ended_at > t1)
		t1 = r->ended_at;
	if (t1 <= t0)
		t1 = t0 + 1;
	/* The limit sits at the bottom of the top row, which is left for the line (and for a
	 * sampled run that overshot it); without a limit, the peak fills the chart. */
	ymax = limit > 0 ? (double)limit * CHART_ROWS / (CHART_ROWS - 1) : (double)peak;
	if ((double)peak > ymax)
		ymax = (double)peak;
	if (ymax < 1)
		ymax = 1;
	units_format_size((uint64_t)ymax, top, sizeof(top));
	units_format_size((uint64_t)limit, lim, sizeof(lim));
	units_format_size(0, zero, sizeof(zero));
	lw = (int)strlen(top);
	if ((int)strlen(lim) > lw)
		lw = (int)strlen(lim);
	cols = width - lw - 2 - (limit > 0 ? 6 : 0);
	if (cols < 10)
		cols = 10;
	col = xcalloc((size_t)cols, sizeof(*col));
	for (int x = 0, i = 0; x < cols; x++) {
		double end = t0 + (t1 - t0) * (x + 1) / cols;
		int64_t v = -1;

		while ((size_t)i < s->n && s->v[i].t <= end) {
			if (s->v[i].bytes > v)
				v = s->v[i].bytes;
			i++;
		}
		col[x] = v >= 0 ? v : (x > 0 ? col[x - 1] : 0);
	}
	if (limit > 0) {
		lim_row = (int)((double)limit / ymax * CHART_ROWS);
		if (lim_row >= CHART_ROWS)
			lim_row = CHART_ROWS - 1;
	}
	for (int row = CHART_ROWS - 1; row >= 0; row--) {
		const char *label = row == lim_row          ? lim
		                    : row == CHART_ROWS - 1 ? top
		                    : row == 0              ? zero
		                                            : "";

		printf("%*s %s", lw, label, vline);
		for (int x = 0; x < cols; x++) {
			long h = lround((double)col[x] / ymax * CHART_ROWS * 8) - (long)row * 8;

			if (h >= 8)
				fputs(utf8 ? eighths[8] : "#", stdout);
			else if (h > 0)
				fputs(utf8 ? eighths[h] : (h >= 4 ? "#" : "."), stdout);
			else
				fputs(row == lim_row ? hline : " ", stdout);
		}
		fputs(row == lim_row ? " limit\n" : "\n", stdout);
	}
	printf("%*s %s", lw, "", corner);
	for (int x = 0; x < cols; x++)
		fputs(hline, stdout);
	fputc('\n', stdout);
	units_format_duration(0, a, sizeof(a));
	units_format_duration((t1 - t0) / 2, b, sizeof(b));
	units_format_duration(t1 - t0, c, sizeof(c));
	{
		int mid = cols / 2 - (int)strlen(b) / 2, left = (int)strlen(a);
		int right = cols - mid - (int)strlen(b);

		if (mid <= left)
			mid = left + 1;
		printf("%*s  %s%*s%s%*s\n", lw, "", a, mid - left, "", b,
		       right > (int)strlen(c) ? right : (int)strlen(c) + 1, c);
	}
	free(col);
}

static void field(const char *name, const char *fmt, ...) EPH_PRINTF(2, 3);

static void
field(const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("%-11s ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

static void
print_time(const char *name, double t)
{
	char buf[64];

	if (t <= 0)
		return;
	cmd_local_time(t, 1, buf, sizeof(buf));
	field(name, "%s", buf);
}

/* The names of the secrets run R got, from its spec.json (never their values: they are in no
 * file): into *SP, true; false when its run directory has no spec any more. */
static bool
read_spec(const struct store_run *r, struct rundir_spec *sp)
{
	struct diag d;
	int rc;

	memset(sp, 0, sizeof(*sp));
	if (r->run_dir == NULL)
		return false;
	diag_init(&d);
	rc = rundir_spec_read(r->run_dir, sp, &d);
	diag_free(&d);
	return rc == 0;
}

/* The files in run R's results directory (rundir/results.h), with their sizes: one line each
 * under a "results" field, or into JSON object O as "results" (when O is not NULL). */
static void
show_results(const struct store_run *r, json_t *o)
{
	struct results_file *f = NULL;
	uint64_t total = 0;
	size_t n = 0;
	char sz[32];

	if (r->run_dir == NULL || results_list(r->run_dir, &f, &n) < 0)
		return;
	if (o != NULL) {
		json_t *a = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_pack("{s:s,s:I}", "path", f[i].path, "size",
			                                   (json_int_t)f[i].size));
		json_object_set_new(o, "results", a);
	} else if (n > 0) {
		for (size_t i = 0; i < n; i++)
			total += f[i].size;
		units_format_size(total, sz, sizeof(sz));
		field("results", "%zu file%s, %s (eph results %lld)", n, n == 1 ? "" : "s", sz,
		      (long long)r->id);
		for (size_t i = 0; i < n; i++) {
			units_format_size(f[i].size, sz, sizeof(sz));
			printf("%-11s %8s  %s\n", "", sz, f[i].path);
		}
	}
	results_files_free(f, n);
}

/* The upload of run R's results to results_store (store/upload.h), U, if it has one: a line
 * "upload", or into JSON object O as "upload" (when O is not NULL). */
static void
show_upload(const struct store_upload *u, json_t *o)
{
	char sz[32], t[64];

	if (u->run_id <= 0)
		return;
	if (o != NULL) {
		json_t *j =
		        json_pack("{s:s, s:s, s:I, s:I, s:i}", "state", upload_state_name(u->state),
		                  "url", u->url != NULL ? u->url : "", "sent", (json_int_t)u->sent,
		                  "sent_bytes", (json_int_t)u->sent_bytes, "attempts", u->attempts);

		json_object_set_new(j, "files",
		                    u->files >= 0 ? json_integer(u->files) : json_null());
		json_object_set_new(j, "last_error",
		                    u->last_error != NULL ? json_string(u->last_error)
		                                          : json_null());
		if (u->state == UPLOAD_QUEUED)
			json_object_set_new(j, "next_at", json_real(u->next_at));
		else
			json_object_set_new(j, "done_at", json_real(u->done_at));
		json_object_set_new(o, "upload", j);
		return;
	}
	units_format_size((uint64_t)u->sent_bytes, sz, sizeof(sz));
	if (u->state == UPLOAD_DONE) {
		field("upload", "done: %lld file%s, %s to %s", (long long)u->sent,
		      u->sent == 1 ? "" : "s", sz, u->url);
	} else if (u->state == UPLOAD_REFUSED) {
		field("upload", "REFUSED by the store: %s",
		      u->last_error != NULL ? u->last_error : "?");
		field("",
		      "nothing more is tried: the results stay in the run directory (eph results "
		      "%lld), not in %s",
		      (long long)u->run_id, u->url);
	} else if (u->attempts == 0) {
		field("upload", "queued, to %s", u->url);
	} else {
		cmd_local_time(u->next_at, 1, t, sizeof(t));
		field("upload",
		      "pending, %lld of %lld files sent to %s; %d attempt%s failed, the next "
		      "at %s",
		      (long long)u->sent, (long long)(u->files >= 0 ? u->files : 0), u->url,
		      u->attempts, u->attempts == 1 ? "" : "s", t);
		field("", "last error: %s", u->last_error != NULL ? u->last_error : "?");
	}
}

static void
print_run(const struct store_run *r, double cpu_user, double cpu_sys, const struct samples *s,
          const struct rundir_spec *sp, const struct store_upload *up)
{
	char a[64], b[64], *host, *prof;
	double offset = 0;
	double dur = cmd_run_duration(r);

	printf("run %lld: %s\n", (long long)r->id, r->job != NULL ? r->job : "?");
	if (r->reason != NULL)
		field("state", "%s: %s", store_state_name(r->state), r->reason);
	else
		field("state", "%s", store_state_name(r->state));
	field("trigger", "%s, attempt %d", store_trigger_name(r->trigger), r->attempt);
	if (r->scheduled_at > 0)
		print_time("scheduled", (double)r->scheduled_at);
	print_time("created", r->created_at);
	print_time("started", r->started_at);
	print_time("ended", r->ended_at);
	if (dur >= 0) {
		units_format_duration(dur, a, sizeof(a));
		field("duration", "%s%s", a, store_state_terminal(r->state) ? "" : " so far");
	}
	if (r->nphases > 0) {
		printf("%-11s ", "phases");
		for (size_t i = 0; i < r->nphases; i++) {
			double v = cmd_phase_seconds(&r->phases[i]);

			if (v >= 0)
				units_format_duration(v, a, sizeof(a));
			printf("%s%s %s", i > 0 ? ", " : "", r->phases[i].name, v >= 0 ? a : "?");
		}
		fputc('\n', stdout);
	}
	if (r->executor != NULL)
		field("executor", "%s", r->executor);
	if ((host = cmd_run_host(r, &offset)) != NULL) {
		/* every time above is in this machine's clock; the host's differed by this */
		field("host", "%s (its clock %+.3fs from ours)", host, offset);
		free(host);
	}
	{
		struct cmd_machine m;

		if (cmd_run_machine(r, &m)) {
			if (m.seconds >= 0) {
				units_format_duration(m.seconds, a, sizeof(a));
				field("machine", "%s at $%.5f an hour, %s billed: $%.4f", m.size,
				      m.price_hourly, a, m.cost);
			} else {
				field("machine", "%s at $%.5f an hour, alive", m.size,
				      m.price_hourly);
			}
		}
		cmd_run_machine_clear(&m);
	}
	if (r->enforced != NULL)
		field("enforced", "%s", r->enforced);
	if (r->commit_id != NULL)
		field("commit", "%s", r->commit_id);
	if (sp != NULL && sp->nsecrets > 0) {
		printf("%-11s ", "secrets");
		for (size_t i = 0; i < sp->nsecrets; i++)
			printf("%s%s", i > 0 ? ", " : "", sp->secrets[i]);
		fputc('\n', stdout);
	}
	if (r->signal > 0) {
		cmd_signal_name(r->signal, a, sizeof(a));
		field("exit", "killed by %s (%d)", a, r->signal);
	} else if (r->exit_code >= 0) {
		field("exit", "code %d", r->exit_code);
	}
	if (r->peak_bytes >= 0 || r->memory_limit > 0) {
		if (r->peak_bytes >= 0)
			units_format_size((uint64_t)r->peak_bytes, a, sizeof(a));
		else
			snprintf(a, sizeof(a), "not measured");
		if (r->memory_limit > 0) {
			units_format_size((uint64_t)r->memory_limit, b, sizeof(b));
			if (r->peak_bytes >= 0)
				field("memory", "peak %s of %s limit (%.0f%%)%s%s", a, b,
				      100.0 * (double)r->peak_bytes / (double)r->memory_limit,
				      r->peak_method != NULL ? ", by " : "",
				      r->peak_method != NULL ? r->peak_method : "");
			else
				field("memory", "%s limit, peak %s", b, a);
		} else {
			field("memory", "peak %s, no limit%s%s", a,
			      r->peak_method != NULL ? ", by " : "",
			      r->peak_method != NULL ? r->peak_method : "");
		}
	}
	if (r->memory_reason != NULL)
		field("sized", "%s", r->memory_reason);
	if (cpu_user >= 0 && cpu_sys >= 0) {
		units_format_duration(cpu_user + cpu_sys, a, sizeof(a));
		field("cpu", "%s (user %.2fs, system %.2fs)", a, cpu_user, cpu_sys);
	}
	if (r->run_dir != NULL)
		field("run dir", "%s", r->run_dir);
	if (r->log_path != NULL)
		field("log", "%s", r->log_path);
	if (r->agent_pid > 0 && !store_state_terminal(r->state))
		field("agent", "pid %lld", (long long)r->agent_pid);
	if (r->warning != NULL)
		field("warning", "%s", r->warning);
	show_results(r, NULL);
	show_upload(up, NULL);
	if ((prof = runprofile_text(r->run_dir, r->peak_bytes > 0 ? (uint64_t)r->peak_bytes : 0,
	                            "            ")) != NULL) {
		fputs("where the memory went (tracemalloc, at the highest snapshot)\n", stdout);
		fputs(prof, stdout);
		free(prof);
	}
	fputc('\n', stdout);
	if (s->n == 0) {
		puts("memory: no samples");
		return;
	}
	if (r->peak_bytes >= 0)
		units_format_size((uint64_t)r->peak_bytes, a, sizeof(a));
	printf("memory over time (%zu sample%s%s%s)\n", s->n, s->n == 1 ? "" : "s",
	       r->peak_bytes >= 0 ? ", peak " : "", r->peak_bytes >= 0 ? a : "");
	draw_chart(r, s, utf8_terminal());
}

static int
cmd_show_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct samples s = { 0 };
	struct store *st = NULL;
	struct store_run r;
	const char *from;
	double cpu_user, cpu_sys;
	bool json = false, have_spec;
	struct rundir_spec sp;
	struct store_upload up;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'j')
			json = true;
		else
			return cmd_usage_error(&cmd_show, "unknown option '%s'", argv[optind - 1]);
	}
	if (argc - optind != 1)
		return cmd_usage_error(&cmd_show,
		                       argc - optind == 0 ? "which run?" : "too many arguments");
	cmd_settle(ctx);
	rc = cmd_store_open(ctx, &st);
	if (rc == -ENOENT)
		return cmd_run_not_found("show", argv[optind], NULL);
	if (rc < 0)
		return EPH_EXIT_FAIL;
	rc = cmd_run_find(st, argv[optind], &r);
	if (rc == -ENOENT) {
		rc = cmd_run_not_found("show", argv[optind], st);
		store_close(st);
		return rc;
	}
	if (rc < 0) {
		fprintf(stderr, "eph show: reading the run: %s\n", store_errmsg(st));
		store_close(st);
		return EPH_EXIT_FAIL;
	}
	load_samples(st, &r, &s, &from);
	if (store_upload_get(st, r.id, &up) < 0)
		store_upload_init(&up); /* none: no line */
	have_spec = read_spec(&r, &sp);
	cpu_user = r.cpu_user;
	cpu_sys = r.cpu_system;
	if ((cpu_user < 0 || cpu_sys < 0) && r.run_dir != NULL) {
		/* finished but not yet recorded: result.json has it */
		struct rundir_result res;
		struct diag d;

		diag_init(&d);
		if (rundir_result_read(r.run_dir, &res, &d) == 0) {
			cpu_user = res.cpu_user_seconds;
			cpu_sys = res.cpu_system_seconds;
			rundir_result_free(&res);
		}
		diag_free(&d);
	}
	if (json) {
		json_t *o = cmd_run_json(&r), *a = json_array();

		if (cpu_user >= 0 && r.cpu_user < 0)
			json_object_set_new(o, "cpu_user_seconds", json_real(cpu_user));
		if (cpu_sys >= 0 && r.cpu_system < 0)
			json_object_set_new(o, "cpu_system_seconds", json_real(cpu_sys));
		for (size_t i = 0; i < s.n; i++)
			json_array_append_new(a, json_pack("{s:f,s:I}", "t", s.v[i].t, "bytes",
			                                   (json_int_t)s.v[i].bytes));
		json_object_set_new(o, "samples_from", json_string(from));
		json_object_set_new(o, "samples", a);
		if (have_spec) { /* the names only, as spec.json has them */
			json_t *sa = json_array();

			for (size_t i = 0; i < sp.nsecrets; i++)
				json_array_append_new(sa, json_string(sp.secrets[i]));
			json_object_set_new(o, "secrets", sa);
		}
		show_results(&r, o);
		show_upload(&up, o);
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(o);
	} else {
		print_run(&r, cpu_user, cpu_sys, &s, have_spec ? &sp : NULL, &up);
	}
	rundir_spec_free(&sp);
	free(s.v);
	store_upload_clear(&up);
	store_run_clear(&r);
	store_close(st);
	return EPH_EXIT_OK;
}
