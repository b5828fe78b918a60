/* src/cmd/cmd_run.c: `eph run JOB`, a run now, here in the foreground, with its output live. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "cmd/cmd_mail.h"
#include "cmd/cmd_runs.h"
#include "conf/conf.h"
#include "daemon/ctl.h"
#include "exec/exec.h"
#include "exec/exec_secrets.h"
#include "exec/sizing.h"
#include "rundir/logrec.h"
#include "rundir/rundir.h"
#include "store/store.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/instance.h"
#include "util/units.h"
#include "util/xalloc.h"

static int cmd_run_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_run = {
	.name = "run",
	.usage = "run JOB [--follow] [--quiet] [--json]",
	.summary = "run a job now (through the daemon if one is running, else here)",
	.help = "When a daemon is running for the state directory, asks it to start a run of JOB\n"
	        "(trigger \"manual\") and prints the run's id; with --follow, prints the run's\n"
	        "output as it comes and waits for its end (Ctrl-C stops following; the run goes\n"
	        "on). With no daemon, runs JOB here in the foreground, as follows.\n\n"
	        "Creates a run of JOB (trigger \"manual\"), runs it under its memory limit with the\n"
	        "job's executor, prints its output as it comes (the command's stdout on stdout,\n"
	        "its stderr on stderr), then a one-line summary on stderr. Ctrl-C cancels the run,\n"
	        "which is then recorded as \"cancelled\". The run goes on if eph itself is killed;\n"
	        "the next eph run, runs or show records its result.\n\n"
	        "A run that ends oom, of a job with retry_on_oom: grow, is retried here at once\n"
	        "with twice the memory (up to its max); each retry is said on stderr, and the\n"
	        "exit status is the last attempt's.\n\n"
	        "Exit status: 0 if the run succeeded, 1 if it did not, 2 for bad input.\n\n"
	        "Options:\n"
	        "  --follow  print the output as it comes and wait for the end (always so in the\n"
	        "            foreground; through the daemon, only with --follow)\n"
	        "  --quiet   print only the summary\n"
	        "  --json    print the finished run as JSON on stdout instead of the summary\n"
	        "            (the output is not printed)\n",
	.exec = cmd_run_exec,
};

struct run_ctx {
	struct exec_run er;
	uv_signal_t sigint, sigterm;
	bool print_output;
	bool cancelled;
	bool json;
	const struct conf_job *job;
	int exit;
	int closing;
	int64_t grow_from; /* the run ended oom and grows: its limit, the next attempt's start */
	uint64_t memory;   /* what the run was admitted with in its executor */
};

/* Prints a record of output.log as the command wrote it: its text, then a newline unless the
 * record is a piece that no newline followed ("out+"); "\\" unescaped, other escapes left as
 * they are, so that no byte of the output can drive the terminal. */
static int
run_print_record(const struct logrec *r, void *arg)
{
	FILE *f = r->stream == LOGREC_ERR ? stderr : stdout;
	char *text = xmalloc(r->len + 1);

	(void)arg;
	fwrite(text, 1, logrec_unescape(r->text, r->len, false, text), f);
	if (!r->more)
		fputc('\n', f);
	fflush(f);
	free(text);
	return 0;
}

/* Prints the records among the whole lines of DATA[0..LEN); other lines are skipped
 * (rundir/logrec.h). */
static void
run_print_records(const char *data, size_t len)
{
	(void)logrec_foreach(data, len, run_print_record, NULL, NULL, NULL);
}

static void
run_output_cb(struct exec_run *er, const char *data, size_t len, void *arg)
{
	struct run_ctx *rc = arg;

	(void)er;
	if (rc->print_output)
		run_print_records(data, len);
}

static void
run_summary(const char *job, const struct store_run *r)
{
	char dur[32], peak[32], lim[32], sig[32];
	double d = r->ended_at > 0 && r->started_at > 0 ? r->ended_at - r->started_at : 0;

	units_format_duration(d, dur, sizeof(dur));
	fprintf(stderr, "%s: %s after %s", job, store_state_name(r->state), dur);
	if (r->state == STORE_FAILED && r->exit_code >= 0)
		fprintf(stderr, " (exit %d)", r->exit_code);
	else if (r->signal > 0 && r->state != STORE_OOM) {
		cmd_signal_name(r->signal, sig, sizeof(sig));
		fprintf(stderr, " (%s)", sig);
	}
	if (r->peak_bytes >= 0) {
		units_format_size((uint64_t)r->peak_bytes, peak, sizeof(peak));
		fprintf(stderr, " \u2014 peak %s", peak);
		if (r->memory_limit > 0) {
			units_format_size((uint64_t)r->memory_limit, lim, sizeof(lim));
			fprintf(stderr, " of %s limit", lim);
		}
		if (r->enforced != NULL)
			fprintf(stderr, " (%s)", r->enforced);
	}
	fprintf(stderr, " \u2014 run %lld\n", (long long)r->id);
	if (r->state != STORE_SUCCEEDED && r->reason != NULL)
		fprintf(stderr, "%s: %s\n", job, r->reason);
}

static void
run_json(const struct store_run *r)
{
	json_t *o = cmd_run_json(r);

	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(o);
}

static void
run_done_cb(struct exec_run *er, const struct store_run *final, int err, void *arg)
{
	struct run_ctx *rc = arg;

	fflush(stdout);
	if (final == NULL) {
		fprintf(stderr, "eph run: could not record run %lld: %s\n", (long long)er->id,
		        strerror(-err));
		rc->exit = EPH_EXIT_FAIL;
	} else {
		bool grow = !rc->cancelled && sizing_grows(rc->job, final);

		if (rc->json && !grow)
			run_json(final);
		else if (!rc->json)
			run_summary(rc->job->name, final);
		rc->exit = final->state == STORE_SUCCEEDED ? EPH_EXIT_OK : EPH_EXIT_FAIL;
		if (grow) {
			char a[32], b[32];

			rc->grow_from = final->memory_limit;
			sizing_format((uint64_t) final->memory_limit, a, sizeof(a));
			sizing_format(
			        sizing_grow((uint64_t) final->memory_limit, rc->job->memory_max), b,
			        sizeof(b));
			fprintf(stderr, "%s: oom at %s: retrying with %s (retry_on_oom: grow)\n",
			        rc->job->name, a, b);
		}
	}
	er->ex->ops->release(er->ex, er, rc->memory);
	if (er->ex->ops->stop != NULL)
		er->ex->ops->stop(er->ex); /* its connections end: nothing else runs here */
	uv_close((uv_handle_t *)&rc->sigint, NULL);
	uv_close((uv_handle_t *)&rc->sigterm, NULL);
}

/* What the executor says of the run (a cloud machine created, booted, deleted): on stderr,
 * as the output comes on stdout. */
static void
run_exec_log(struct executor *ex, int64_t run, const char *msg, void *arg)
{
	(void)run;
	(void)arg;
	fprintf(stderr, "eph run: executor %s: %s\n", ex->name, msg);
}

static void
run_signal_cb(uv_signal_t *h, int signum)
{
	struct run_ctx *rc = h->data;

	(void)signum;
	if (!rc->cancelled)
		fprintf(stderr, "\neph run: cancelling run %lld...\n", (long long)rc->er.id);
	rc->cancelled = true;
	if (exec_run_cancel(&rc->er) < 0 && rc->er.agent_pid == 0)
		rc->exit = EPH_EXIT_FAIL;
}

/* Opens the store for writing, creating the state directory; prints problems. */
static int
run_store_open(struct cmd_ctx *ctx, struct store **out, char id[INSTANCE_ID_LEN + 1])
{
	const char *state = cmd_state_dir(ctx);
	char *runs = xasprintf("%s/runs", state), *db = xasprintf("%s/eph.db", state);
	struct diag d;
	int rc;

	diag_init(&d);
	rc = fsio_mkdirs(runs, 0700);
	if (rc < 0)
		fprintf(stderr, "eph run: cannot create %s: %s\n", runs, strerror(-rc));
	else if ((rc = instance_get(state, id, &d)) < 0 || (rc = store_open(db, out, &d)) < 0)
		diag_print(&d, stderr);
	diag_free(&d);
	free(runs);
	free(db);
	return rc;
}

static void
run_closed_cb(struct exec_run *er, void *arg)
{
	(void)arg;
	exec_run_release(er);
}

static volatile sig_atomic_t run_follow_stop;

/* After run R (of JOB, followed through the daemon) ended oom: the run the daemon retries it
 * with at once when its job grows (retry_on_oom: grow: the same fire and attempt, trigger
 * retry), which it creates right after recording R. Its id, or 0 when none came within a
 * second. */
static int64_t
run_grow_next(struct store *st, const char *job, const struct store_run *r)
{
	for (int i = 0; i < 20 && !run_follow_stop; i++) {
		struct store_run *runs = NULL;
		size_t n = 0;
		int64_t next = 0;

		if (store_runs_list(st, job, 8, &runs, &n) == 0)
			for (size_t k = 0; k < n && next == 0; k++)
				if (runs[k].id > r->id && runs[k].trigger == STORE_RETRY &&
				    runs[k].scheduled_at == r->scheduled_at &&
				    runs[k].attempt == r->attempt)
					next = runs[k].id;
		store_runs_free(runs, n);
		if (next != 0)
			return next;
		nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
	}
	return 0;
}

static void
run_follow_sig(int sig)
{
	(void)sig;
	run_follow_stop = 1;
}

/* Prints run ID's output (when PRINT) from its output.log until the store (ST) records the
 * run terminal, into *R. 1 when it is, 0 when following was stopped (Ctrl-C), -errno when the
 * run cannot be read (said). */
static int
run_follow_one(struct cmd_ctx *ctx, struct store *st, int64_t id, bool print, struct store_run *r)
{
	char *path = xasprintf("%s/runs/%lld/%s", cmd_state_dir(ctx), (long long)id, RUNDIR_OUTPUT);
	struct buf pend;
	char chunk[65536];
	int fd = -1, rc = 0;

	buf_init(&pend, BUF_MAX_LINE * 16);
	while (!run_follow_stop) {
		ssize_t got;
		bool done;

		store_run_clear(r);
		if ((rc = store_run_get(st, id, r)) < 0) {
			fprintf(stderr, "eph run: cannot read run %lld: %s\n", (long long)id,
			        strerror(-rc));
			break;
		}
		done = store_state_terminal(r->state);
		if (fd < 0)
			fd = open(path, O_RDONLY | O_CLOEXEC);
		while (fd >= 0 && (got = read(fd, chunk, sizeof(chunk))) > 0) {
			const char *nl;

			if (buf_append(&pend, chunk, (size_t)got) < 0) {
				if (print)
					run_print_records(pend.data, pend.len);
				buf_reset(&pend);
				if (buf_append(&pend, chunk, (size_t)got) < 0)
					abort(); /* chunk < the cap */
			}
			nl = memrchr(pend.data, '\n', pend.len);
			if (nl != NULL) {
				size_t k = (size_t)(nl - pend.data) + 1;

				if (print)
					run_print_records(pend.data, k);
				memmove(pend.data, pend.data + k, pend.len - k);
				pend.len -= k;
			}
		}
		if (done) {
			if (pend.len > 0 && print)
				run_print_records(pend.data, pend.len);
			fflush(stdout);
			rc = 1;
			break;
		}
		nanosleep(&(struct timespec){ 0, 200 * 1000 * 1000 }, NULL);
	}
	if (fd >= 0)
		close(fd);
	buf_free(&pend);
	free(path);
	return rc;
}

/* Through the daemon: prints run ID's output (when PRINT) from its output.log until the store
 * records it terminal, then its summary (or JSON); and so for each run the daemon grows it
 * into after an oom (retry_on_oom: grow). Returns the exit status, the last run's. */
static int
run_follow_daemon(struct cmd_ctx *ctx, const char *job, int64_t id, bool print, bool json)
{
	struct store *st = NULL;
	struct store_run r, nr;
	int exit = EPH_EXIT_FAIL, rc;
	int64_t next;
	char a[32], b[32];

	store_run_init(&r);
	signal(SIGINT, run_follow_sig);
	signal(SIGTERM, run_follow_sig);
	rc = cmd_store_open(ctx, &st);
	if (rc < 0) {
		fprintf(stderr, "eph run: cannot read the store: %s\n", strerror(-rc));
		goto out;
	}
	while ((rc = run_follow_one(ctx, st, id, print, &r)) == 1 && r.state == STORE_OOM &&
	       (next = run_grow_next(st, job, &r)) != 0) {
		/* the daemon grows it: say so, and follow the retry */
		if (!json)
			run_summary(job, &r);
		store_run_init(&nr);
		if (store_run_get(st, next, &nr) == 0 && nr.memory_limit > 0 &&
		    r.memory_limit > 0) {
			sizing_format((uint64_t)r.memory_limit, a, sizeof(a));
			sizing_format((uint64_t)nr.memory_limit, b, sizeof(b));
			fprintf(stderr, "%s: oom at %s: retrying with %s (retry_on_oom: grow)\n",
			        job, a, b);
		}
		store_run_clear(&nr);
		id = next;
	}
	if (rc < 0)
		goto out;
	if (rc == 0) {
		fprintf(stderr, "\neph run: stopped following run %lld; it goes on in the daemon\n",
		        (long long)id);
		exit = EPH_EXIT_OK;
		goto out;
	}
	if (json)
		run_json(&r);
	else
		run_summary(job, &r);
	exit = r.state == STORE_SUCCEEDED ? EPH_EXIT_OK : EPH_EXIT_FAIL;
out:
	store_run_clear(&r);
	store_close(st);
	return exit;
}

/* Asks a running daemon for a run of JOB. Returns -ENOENT when no daemon is running (then the
 * run happens here), else the exit status. */
static int
run_through_daemon(struct cmd_ctx *ctx, const char *job, bool follow, bool print, bool json)
{
	json_t *req = json_pack("{s:s, s:s}", "cmd", "run", "job", job), *resp = NULL;
	int64_t id;
	int rc;

	rc = ctl_request(cmd_state_dir(ctx), req, &resp);
	json_decref(req);
	if (rc == -ENOENT || rc == -ECONNREFUSED)
		return -ENOENT;
	if (rc < 0) {
		fprintf(stderr, "eph run: the daemon did not answer: %s\n", strerror(-rc));
		return EPH_EXIT_FAIL;
	}
	if (!json_is_true(json_object_get(resp, "ok"))) {
		fprintf(stderr, "eph run: %s\n", json_string_value(json_object_get(resp, "error")));
		json_decref(resp);
		return EPH_EXIT_FAIL;
	}
	id = json_integer_value(json_object_get(resp, "run"));
	json_decref(resp);
	if (follow)
		return run_follow_daemon(ctx, job, id, print, json);
	if (json) {
		json_t *o = json_pack("{s:I, s:s, s:b}", "run", (json_int_t)id, "job", job,
		                      "daemon", 1);

		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(o);
		return EPH_EXIT_OK;
	}
	printf("run %lld of %s started by the daemon (eph logs %lld -f to follow)\n", (long long)id,
	       job, (long long)id);
	return EPH_EXIT_OK;
}

/* One attempt of RC->job in the foreground, created as HOW says: sets *ID and *DIR (caller
 * frees) and RC->exit, and RC->grow_from when it ended oom and grows. */
static void
run_attempt(struct cmd_ctx *ctx, struct run_ctx *rc, const struct conf_executor *ce,
            const char *instance, struct store *st, const struct exec_hooks *hooks,
            const struct exec_new *how, int64_t *id, char **dir)
{
	struct executor *ex;
	sigset_t stop, old;
	struct diag d;
	uv_loop_t loop;
	int err;

	rc->exit = EPH_EXIT_FAIL;
	uv_loop_init(&loop);
	/* no daemon runs: nothing else places runs on the executor's hosts from this state */
	diag_init(&d);
	ex = exec_executor_new(&loop, st, cmd_state_dir(ctx), instance, ctx->conf, ce, NULL, NULL,
	                       &d);
	if (ex == NULL) {
		diag_print(&d, stderr);
		diag_free(&d);
		uv_loop_close(&loop);
		return;
	}
	ex->log = run_exec_log;
	ex->info = run_exec_log; /* a cloud machine's phases, as they come */
	diag_free(&d);
	/* From here on a Ctrl-C must not kill eph run outright: the run's row exists while its code
	 * is fetched, and a dead eph run would leave it queued. SIGINT and SIGTERM wait, blocked,
	 * until the run has started; then they reach run_signal_cb, which cancels it. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop, &old);
	diag_init(&d);
	err = exec_create(st, cmd_state_dir(ctx), ctx->conf, rc->job, how, id, dir, &d);
	if (err < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		diag_print(&d, stderr);
		diag_free(&d);
		goto out;
	}
	diag_free(&d);
	if (err == 1) {
		/* it ended before it could start: the code could not be had */
		struct store_run final;

		sigprocmask(SIG_SETMASK, &old, NULL);
		store_run_init(&final);
		if (store_run_get(st, *id, &final) == 0) {
			if (rc->json)
				run_json(&final);
			else
				run_summary(rc->job->name, &final);
		}
		store_run_clear(&final);
		goto out;
	}

	uv_signal_init(&loop, &rc->sigint);
	uv_signal_init(&loop, &rc->sigterm);
	rc->sigint.data = rc->sigterm.data = rc;
	uv_signal_start(&rc->sigint, run_signal_cb, SIGINT);
	uv_signal_start(&rc->sigterm, run_signal_cb, SIGTERM);
	exec_run_init(&rc->er, ex, *id, *dir, NULL, hooks);
	exec_secrets_of_job(&rc->er.secrets, ctx->conf, rc->job); /* read right before the start */
	rc->memory = exec_created_memory(st, *id, rc->job->memory);
	ex->ops->reserve(ex, &rc->er, rc->memory);
	err = exec_run_start(&rc->er);
	sigprocmask(SIG_SETMASK, &old, NULL); /* a Ctrl-C that came meanwhile cancels the run now */
	if (err < 0)
		fprintf(stderr, "eph run: cannot start the run: %s\n", strerror(-err));
out:
	uv_run(&loop, UV_RUN_DEFAULT); /* what the executor still has in flight ends */
	if (uv_loop_close(&loop) != 0)
		fprintf(stderr, "eph run: internal error: handles left open\n");
	exec_executor_free(ex);
}

static int
cmd_run_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'F' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct run_ctx rc = { .print_output = true, .exit = EPH_EXIT_FAIL };
	struct exec_hooks hooks = { run_output_cb, run_done_cb, run_closed_cb, &rc };
	char instance[INSTANCE_ID_LEN + 1]; /* made here if this is the state's first run */
	const struct conf_executor *ce;
	struct store *st = NULL;
	struct exec_new how;
	int64_t id = 0;
	char *dir = NULL;
	bool follow = false;
	int opt, err;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
		switch (opt) {
		case 'F':
			follow = true;
			break;
		case 'q':
			rc.print_output = false;
			break;
		case 'j':
			rc.json = true;
			rc.print_output = false;
			break;
		default:
			return cmd_usage_error(&cmd_run, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return cmd_usage_error(&cmd_run,
		                       argc - optind == 0 ? "which JOB?" : "too many arguments");
	err = run_through_daemon(ctx, argv[optind], follow, rc.print_output, rc.json);
	if (err != -ENOENT)
		return err;
	if ((err = cmd_load_conf(ctx)) != EPH_EXIT_OK)
		return err;
	rc.job = conf_job_find(ctx->conf, argv[optind]);
	if (rc.job == NULL) {
		fprintf(stderr, "eph run: no job \"%s\" in %s\n", argv[optind], ctx->conf_path);
		return EPH_EXIT_USAGE;
	}
	ce = conf_executor_find(ctx->conf, rc.job->executor != NULL ? rc.job->executor : "local");
	if (ce == NULL || exec_find(conf_exec_type_name(ce->type)) == NULL) {
		fprintf(stderr, "eph run: executor \"%s\" is not available\n", rc.job->executor);
		return EPH_EXIT_USAGE;
	}
	if (run_store_open(ctx, &st, instance) < 0)
		return EPH_EXIT_FAIL;
	(void)exec_reconcile(st); /* record what earlier runs left unrecorded */
	how = (struct exec_new){ STORE_MANUAL, (int64_t)time(NULL), 1, 0, 0 };
	for (;;) {
		rc.grow_from = 0;
		id = 0;
		free(dir);
		dir = NULL;
		run_attempt(ctx, &rc, ce, instance, st, &hooks, &how, &id, &dir);
		/* its results to results_store, before its mail (which a refusal adds to) */
		cmd_upload_after_run(ctx, st, id);
		/* the attempt's mail, if its job asks for one */
		cmd_mail_after_run(ctx, st, id, rc.grow_from > 0);
		if (rc.grow_from <= 0)
			break;
		/* retry_on_oom: grow: the same attempt again, which sizing_decide grows */
		how.trigger = STORE_RETRY;
	}
	free(dir);
	store_close(st);
	return rc.exit;
}
