/* src/agent/agent_run.c: the agent's command: started into its cgroup, its output streamed,
 * its memory sampled, its timeout enforced, everything it started killed when it ends.
 *
 * One libuv loop: the two output pipes (uv_pipe), SIGCHLD/SIGTERM/SIGINT (uv_signal), and
 * timers for sampling, the timeout, the kill grace, partial-line flushes and the final drain.
 * The command is started with our own fork/exec (uv_spawn runs nothing between fork and exec,
 * and the child must be in its cgroup before exec): the parent writes the child's pid into
 * the cgroup, waits for spec.not_before if it is still ahead (a run started ahead of its
 * instant; the signalfd stays open meanwhile, so a cancel ends the run before the command),
 * then releases it through a pipe. The parent waits rather than the child, so that the cancel
 * is handled where the run's state is, and the exec phase starts when the wait ended. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "agent/agent_int.h"
#include "agent/cgroup.h"
#include "agent/outlog.h"
#include "agent/proctree.h"
#include "agent/spawn.h"
#include "rundir/rundir.h"
#include "rundir/runlock.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/xalloc.h"

#define PARTIAL_MS 1000 /* a partial line is flushed after a second */
#define DRAIN_MS   2000 /* after the command's end, how long output may still come */

/* ---- the process tree */

/* Reaps every dead child (the agent is a subreaper: orphans of the command come to us),
 * recording the command's own status. */
static void
reap(void *arg)
{
	struct agent *a = arg;
	struct rusage ru;
	int st;
	pid_t p;

	while ((p = wait4(-1, &st, WNOHANG, &ru)) > 0) {
		if (p == a->child && !a->child_done) {
			a->child_done = true;
			a->status = st;
			a->child_ru = ru;
			a->end_mono = agent_mono_ms();
		}
	}
}

static size_t
tree_count(struct agent *a)
{
	struct proctree t;
	size_t n;

	if (a->have_cg && !a->cg.adopted) /* an adopted one holds the agent too */
		return cgroup_nprocs(&a->cg);
	if (proctree_scan(getpid(), false, &t) < 0)
		return 0;
	n = t.n;
	proctree_free(&t);
	return n;
}

static void
tree_signal(struct agent *a, int sig)
{
	if (a->have_cg && !a->cg.adopted)
		(void)cgroup_signal(&a->cg, sig);
	/* the process group too: covers the moment before a child shows up in a scan */
	(void)proctree_signal(getpid(), a->child_done ? 0 : a->child, sig);
}

/* SIGKILLs everything the command started, until nothing is left. */
static void
tree_kill(struct agent *a)
{
	struct timespec ts = { 0, 10 * 1000000L };

	if (a->have_cg && !a->cg.adopted) {
		if (cgroup_kill_all(&a->cg, reap, a) < 0)
			agent_warn(a, "processes remain in %s after SIGKILL", a->cg.path);
	}
	for (int i = 0; i < 500; i++) {
		reap(a);
		if (proctree_signal(getpid(), a->child_done ? 0 : a->child, SIGKILL) == 0)
			return;
		nanosleep(&ts, NULL);
	}
	agent_warn(a, "processes of the run survive SIGKILL");
}

/* SIGTERM to everything, then SIGKILL after the grace (at once when the grace is 0). */
static void
grace_cb(uv_timer_t *t)
{
	struct agent *a = container_of(t, struct agent, t_grace);

	tree_kill(a);
}

static void
terminate(struct agent *a, enum stop why)
{
	if (a->stop == STOP_NONE)
		a->stop = why;
	if (a->killing || a->child == 0) {
		tree_kill(a);
		return;
	}
	a->killing = true;
	tree_signal(a, SIGTERM);
	uv_timer_start(&a->t_grace, grace_cb, (uint64_t)a->spec.kill_grace * 1000, 0);
}

/* ---- completion */

static void
close_pipe(struct agent *a, int s)
{
	if (!a->pipe_open[s])
		return;
	a->pipe_open[s] = false;
	uv_read_stop((uv_stream_t *)&a->pipe[s]);
	uv_close((uv_handle_t *)&a->pipe[s], NULL);
	mask_finish(&a->mask[s]); /* what it held back, now that no more can come */
	(void)outlog_flush_partial(&a->log, (enum outlog_stream)s, clock_real_ms(),
	                           (int64_t)agent_mono_ms(), 0);
}

static void
close_all(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void
maybe_finish(struct agent *a)
{
	if (!a->child_done || a->pipe_open[0] || a->pipe_open[1])
		return;
	uv_walk(&a->loop, close_all, NULL);
}

static void
drain_cb(uv_timer_t *t)
{
	struct agent *a = container_of(t, struct agent, t_drain);

	agent_warn(a, "output still open %d ms after the command ended; closed", DRAIN_MS);
	close_pipe(a, 0);
	close_pipe(a, 1);
	maybe_finish(a);
}

static void
child_ended(struct agent *a)
{
	/* everything the command started dies with it */
	if (tree_count(a) > 0) {
		agent_warn(a, "killing processes the command left behind");
		tree_kill(a);
	}
	uv_timer_stop(&a->t_timeout);
	uv_timer_stop(&a->t_grace);
	uv_timer_start(&a->t_drain, drain_cb, DRAIN_MS, 0);
	maybe_finish(a);
}

static void
sigchld_cb(uv_signal_t *h, int sig)
{
	struct agent *a = container_of(h, struct agent, sig_chld);
	bool was = a->child_done;

	(void)sig;
	reap(a);
	if (!was && a->child_done)
		child_ended(a);
}

static void
sigstop_cb(uv_signal_t *h, int sig)
{
	struct agent *a = h->data;

	if (!a->child_done) {
		if (a->stop == STOP_NONE)
			agent_warn(a, "cancelled by SIG%s", sigabbrev_np(sig));
		terminate(a, STOP_CANCEL);
	}
}

/* ---- output */

static void
alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct agent *a = h->data;

	(void)hint;
	*b = uv_buf_init(a->rbuf, READ_BUF);
}

static void
partial_cb(uv_timer_t *t)
{
	struct agent *a = container_of(t, struct agent, t_partial);
	int64_t next = -1, now = (int64_t)agent_mono_ms(), rm = clock_real_ms();

	for (int s = 0; s < 2; s++) {
		int64_t d =
		        outlog_flush_partial(&a->log, (enum outlog_stream)s, rm, now, PARTIAL_MS);

		if (d == 0)
			d = outlog_flush_partial(&a->log, (enum outlog_stream)s, rm, now,
			                         PARTIAL_MS);
		if (d > 0 && (next < 0 || d < next))
			next = d;
	}
	if (next > 0)
		uv_timer_start(&a->t_partial, partial_cb, (uint64_t)next, 0);
}

static void
keep_errtail(struct agent *a, const char *p, size_t n)
{
	if (n >= ERRTAIL) {
		memcpy(a->errtail, p + n - ERRTAIL, ERRTAIL);
		a->errtail_len = ERRTAIL;
		return;
	}
	if (a->errtail_len + n > ERRTAIL) {
		size_t drop = a->errtail_len + n - ERRTAIL;

		memmove(a->errtail, a->errtail + drop, a->errtail_len - drop);
		a->errtail_len -= drop;
	}
	memcpy(a->errtail + a->errtail_len, p, n);
	a->errtail_len += n;
}

/* The command's output, its secrets masked (agent/mask.h), into output.log. */
static void
masked_out(struct agent *a, int s, const char *p, size_t n)
{
	/* a write error stays in a->log.err (later output is dropped) and is reported once, at
	 * the end (outlog_sync) */
	(void)outlog_feed(&a->log, (enum outlog_stream)s, p, n, clock_real_ms(),
	                  (int64_t)agent_mono_ms());
	if (s == OUTLOG_ERR)
		keep_errtail(a, p, n);
}

static void
masked_stdout(void *arg, const char *p, size_t n)
{
	masked_out(arg, OUTLOG_OUT, p, n);
}

static void
masked_stderr(void *arg, const char *p, size_t n)
{
	masked_out(arg, OUTLOG_ERR, p, n);
}

static void
read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct agent *a = st->data;
	int s = (uv_pipe_t *)st == &a->pipe[0] ? OUTLOG_OUT : OUTLOG_ERR;

	if (n > 0) {
		mask_feed(&a->mask[s], b->base, (size_t)n);
		if ((a->log.pend[s].len > 0) && !uv_is_active((uv_handle_t *)&a->t_partial))
			uv_timer_start(&a->t_partial, partial_cb, PARTIAL_MS, 0);
		return;
	}
	if (n < 0) {
		if (n != UV_EOF)
			agent_warn(a, "reading std%s: %s", s == OUTLOG_OUT ? "out" : "err",
			           uv_strerror((int)n));
		close_pipe(a, s);
		maybe_finish(a);
	}
}

/* ---- memory */

/* Sampled mode's usage of the tree is its PSS (/proc/PID/smaps_rollup): pages shared after
 * fork count once, not once per process as summed RSS counts them. Reading PSS walks every
 * page table of the tree (measured: ~14 ms for 150 MiB mapped by 4 processes, ~20% of a core
 * at 10 Hz), so each sample reads only the RSS (/proc/PID/stat, ~1 ms for the whole /proc).
 * RSS bounds PSS from above: the last PSS plus the RSS grown since is an estimate, and PSS is
 * read again when an event is due (DUE, once a second), when the estimate passes the limit
 * (before anything is killed) or an eighth over the peak. A copy-on-write break after fork
 * grows PSS but not RSS: it is seen at the next read, within a second. *FRESH: whether *BYTES
 * is a PSS just read (else the estimate). False if /proc cannot be read. */
static bool
sampled_usage(struct agent *a, bool due, uint64_t *bytes, bool *fresh)
{
	struct proctree tr;
	uint64_t est;

	if (proctree_scan(getpid(), false, &tr) < 0)
		return false;
	est = a->pss_last + (tr.rss > a->pss_rss ? tr.rss - a->pss_rss : 0);
	proctree_free(&tr);
	*fresh = due || (a->spec.memory > 0 && est > a->spec.memory) ||
	         est > a->sampled_peak + a->sampled_peak / 8;
	if (!*fresh) {
		*bytes = est;
		return true;
	}
	if (proctree_scan(getpid(), true, &tr) < 0)
		return false;
	a->pss_last = *bytes = tr.pss;
	a->pss_rss = tr.rss;
	proctree_free(&tr);
	return true;
}

static void
sample_cb(uv_timer_t *t)
{
	struct agent *a = container_of(t, struct agent, t_sample);
	uint64_t bytes = 0, now = agent_mono_ms();
	bool have = false, fresh = true;
	bool due = now - a->last_event_ms >= SAMPLE_EVENT_MS - SAMPLE_ENFORCE_MS / 2;

	if (a->child_done)
		return;
	if (a->have_cg) {
		have = cgroup_usage(&a->cg, &bytes) == 0;
		if (cgroup_oom_kills(&a->cg) > 0 && a->stop == STOP_NONE) {
			/* v1 kills one task; the run goes as a whole */
			agent_warn(a, "the memory limit was hit (OOM kill in %s); killing the run",
			           a->cg.path);
			a->stop = STOP_OOM;
			tree_kill(a);
		}
	} else {
		have = sampled_usage(a, due, &bytes, &fresh);
		if (have && fresh && bytes > a->sampled_peak)
			a->sampled_peak = bytes;
		/* an estimate over the limit was read again: FRESH */
		if (have && fresh && a->spec.memory > 0 && bytes > a->spec.memory &&
		    a->stop == STOP_NONE) {
			a->stop = STOP_OOM;
			a->sampled_over = bytes;
			tree_kill(a);
		}
	}
	if (have && due) {
		json_t *f = json_object();

		json_object_set_new(f, "bytes", json_integer((json_int_t)bytes));
		(void)rundir_event_append(a->ev_fd, "mem", rundir_now(), f);
		json_decref(f);
		a->last_event_ms = now;
	}
}

static void
timeout_cb(uv_timer_t *t)
{
	struct agent *a = container_of(t, struct agent, t_timeout);

	if (a->child_done)
		return;
	agent_warn(a, "timeout after %" PRId64 " s: SIGTERM, then SIGKILL after %" PRId64 " s",
	           a->spec.timeout, a->spec.kill_grace);
	terminate(a, STOP_TIMEOUT);
}

/* ---- starting the command */

/* NAME looked up on the absolute directories of ENVP's PATH (execvpe would search ours). NULL:
 * not found there (execvpe then says why). Caller frees. */
static char *
resolve_command(const char *name, char **envp)
{
	const char *path = NULL;

	if (strchr(name, '/') != NULL)
		return NULL;
	for (char **e = envp; *e != NULL; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	for (const char *p = path; p != NULL && *p != '\0';) {
		size_t l = strcspn(p, ":");

		if (l > 0 && p[0] == '/') {
			char *c = xasprintf("%.*s/%s", (int)l, p, name);
			struct stat st;

			if (stat(c, &st) == 0 && S_ISREG(st.st_mode) && access(c, X_OK) == 0)
				return c;
			free(c);
		}
		p = p[l] == ':' ? p + l + 1 : NULL;
	}
	return NULL;
}

/* Waits until spec.not_before (UTC seconds) on the real-time clock, the command being ready
 * to exec: 0 once it has come (at once when it is past), -ECANCELED when a SIGTERM or SIGINT
 * came first (read from the signalfd, which stays open until the command is released). */
static int
wait_not_before(struct agent *a)
{
	double nb = a->spec.not_before, now = clock_real(), t0 = now;
	json_t *f;

	if (now >= nb)
		return 0;
	f = json_object();
	json_object_set_new(f, "until", json_real(nb));
	(void)rundir_event_append(a->ev_fd, "wait", now, f);
	json_decref(f);
	for (; now < nb; now = clock_real()) {
		double left = nb - now;
		struct timespec ts = { (time_t)left, (long)((left - (double)(time_t)left) * 1e9) };
		struct pollfd p = { .fd = a->sfd, .events = POLLIN };

		/* ppoll's timeout is relative: the loop re-reads the clock, so the command never
		 * starts early, whatever the clock did meanwhile */
		if (a->sfd < 0) {
			(void)nanosleep(&ts, NULL);
			continue;
		}
		if (ppoll(&p, 1, &ts, NULL) > 0 && agent_cancel_pending(a)) {
			a->waited = clock_real() - t0;
			return -ECANCELED;
		}
	}
	a->waited = now - t0;
	return 0;
}

/* spawn_start's hold: in the parent, before the command may exec: the child joins the
 * cgroup, then waits for spec.not_before (the exec phase starts when that wait ends). */
static int
hold_child(pid_t pid, void *arg)
{
	struct agent *a = arg;
	int rc;

	a->child = pid;
	if (a->have_cg && (rc = cgroup_attach(&a->cg, pid)) < 0) {
		agent_warn(a, "cannot join %s (%s): falling back to sampling", a->cg.path,
		           strerror(-rc));
		(void)cgroup_destroy(&a->cg);
		a->have_cg = false;
		a->enforced = ENF_SAMPLED;
	}
	if (wait_not_before(a) < 0) {
		a->wait_cancelled = a->prep_cancelled = true;
		return -ECANCELED;
	}
	/* from here on the command may have run: a restart must not run it again */
	if ((rc = runlock_mark_exec(a->lock_fd)) < 0)
		return rc;
	a->exec_mono = agent_mono_ms();
	a->exec_real = rundir_now();
	return 0;
}

static int
start_command(struct agent *a)
{
	char **envp = agent_env(a, true), *shargv[4], *resolved = NULL;
	struct spawn_opts o = {
		.envp = envp, .cwd = a->cmd_cwd, .setsid = true, .hold = hold_child, .arg = a
	};
	struct spawn sp;
	int rc;

	if (a->spec.shell != NULL) {
		shargv[0] = (char *)"sh";
		shargv[1] = (char *)"-c";
		shargv[2] = a->spec.shell;
		shargv[3] = NULL;
		o.argv = shargv;
		o.path = "/bin/sh";
	} else {
		o.argv = a->spec.argv;
		o.path = resolved = resolve_command(a->spec.argv[0], envp);
	}
	(void)getrusage(RUSAGE_CHILDREN, &a->pre_ru);
	/* the child waits until hold_child has put it in the cgroup */
	if ((rc = spawn_start(&o, &sp)) < 0)
		goto out;
	if (sp.stage != SPAWN_OK) {
		const char *what = a->spec.shell != NULL ? "/bin/sh" : a->spec.argv[0];

		a->exec_error =
		        sp.stage == SPAWN_CHDIR ? xasprintf("cannot enter %s: %s", a->cmd_cwd,
		                                            strerror(sp.stage_err))
		        : sp.stage == SPAWN_EXEC
		                ? xasprintf("cannot execute %s: %s", what, strerror(sp.stage_err))
		                : xasprintf("cannot set up the command: %s",
		                            strerror(sp.stage_err));
	}
	mask_init(&a->mask[0], a->secret_vals, a->nsecrets, masked_stdout, a);
	mask_init(&a->mask[1], a->secret_vals, a->nsecrets, masked_stderr, a);
	uv_pipe_init(&a->loop, &a->pipe[0], 0);
	uv_pipe_init(&a->loop, &a->pipe[1], 0);
	for (int s = 0; s < 2; s++) {
		int *fd = s == 0 ? &sp.out : &sp.err;

		a->pipe[s].data = a;
		if ((rc = uv_pipe_open(&a->pipe[s], *fd)) < 0) {
			uv_close((uv_handle_t *)&a->pipe[s], NULL);
			goto out;
		}
		*fd = -1;
		a->pipe_open[s] = true;
		uv_read_start((uv_stream_t *)&a->pipe[s], alloc_cb, read_cb);
	}
out:
	if (sp.out >= 0)
		close(sp.out);
	if (sp.err >= 0)
		close(sp.err);
	agent_strv_free(envp);
	free(resolved);
	return rc;
}

static void
choose_enforcement(struct agent *a)
{
	const char *env = getenv("EPH_ENFORCE");
	struct buf why;
	char *name;
	int rc;

	a->enforced = ENF_SAMPLED;
	if (a->spec.enforce == RUNDIR_ENFORCE_SAMPLED ||
	    (env != NULL && strcmp(env, "sampled") == 0))
		return;
	buf_init(&why, BUF_MAX_MSG);
	/* inside a batch job (the slurm executor): the job's cgroup, with the limit the batch
	 * system set from the run's memory, is the run's */
	if (env != NULL && strcmp(env, "job") == 0) {
		if (cgroup_adopt(&a->cg, &why) == 0) {
			a->have_cg = true;
			a->enforced = a->cg.kind == CGROUP_V2 ? ENF_CGROUP2 : ENF_CGROUP1;
			buf_free(&why);
			return;
		}
		agent_warn(a, "%s: making one of its own instead", buf_cstr(&why));
		buf_reset(&why);
	}
	/* run ids restart at 1 in every state directory: the agent's pid makes it unique
	 * among live agents (cgroup_create never takes over an existing one either) */
	name = xasprintf("run-%" PRId64 "-%d", a->spec.run_id, (int)getpid());
	rc = cgroup_create(&a->cg, name, a->spec.memory, &why);
	if (rc == 0) {
		a->have_cg = true;
		a->enforced = a->cg.kind == CGROUP_V2 ? ENF_CGROUP2 : ENF_CGROUP1;
	} else {
		agent_warn(a, "no memory cgroup (%s): sampling the process tree instead",
		           buf_cstr(&why));
	}
	free(name);
	buf_free(&why);
}

void
agent_event_exec(struct agent *a, const char *state, double t)
{
	json_t *f = json_object();

	if (strcmp(state, "start") == 0) {
		json_object_set_new(f, "pid", json_integer(a->child));
		json_object_set_new(f, "enforced", json_string(agent_enforced_name(a->enforced)));
		json_object_set_new(f, "cgroup",
		                    a->have_cg ? json_string(a->cg.path) : json_null());
		if (a->spec.not_before > 0)
			json_object_set_new(f, "waited", json_real(a->waited));
	} else {
		json_object_set_new(f, "seconds",
		                    json_real((double)(a->end_mono - a->exec_mono) / 1000.0));
	}
	agent_event(a, "exec", state, t, f);
}

/* ---- the loop */

void
agent_loop_init(struct agent *a)
{
	uv_loop_init(&a->loop);
	uv_signal_init(&a->loop, &a->sig_chld);
	uv_signal_init(&a->loop, &a->sig_term);
	uv_signal_init(&a->loop, &a->sig_int);
	a->sig_term.data = a->sig_int.data = a;
	uv_signal_start(&a->sig_chld, sigchld_cb, SIGCHLD);
	uv_signal_start(&a->sig_term, sigstop_cb, SIGTERM);
	uv_signal_start(&a->sig_int, sigstop_cb, SIGINT);
	uv_timer_init(&a->loop, &a->t_sample);
	uv_timer_init(&a->loop, &a->t_timeout);
	uv_timer_init(&a->loop, &a->t_grace);
	uv_timer_init(&a->loop, &a->t_partial);
	uv_timer_init(&a->loop, &a->t_drain);
}

/* The command is running (started by start_command): the loop runs until it has ended and its
 * output is read. LATE_CANCEL: a SIGTERM/SIGINT came as it was released. */
static void
run_command(struct agent *a, bool late_cancel)
{
	agent_event_exec(a, "start", a->exec_real);
	a->last_event_ms = a->exec_mono;
	/* the loop's clock was read at uv_loop_init, before the phases and the wait:
	 * the timeout counts from the command's start */
	uv_update_time(&a->loop);
	uv_timer_start(&a->t_sample, sample_cb, a->have_cg ? SAMPLE_EVENT_MS : SAMPLE_ENFORCE_MS,
	               a->have_cg ? SAMPLE_EVENT_MS : SAMPLE_ENFORCE_MS);
	if (a->spec.timeout > 0)
		uv_timer_start(&a->t_timeout, timeout_cb, (uint64_t)a->spec.timeout * 1000, 0);
	if (late_cancel) {
		agent_warn(a, "cancelled as the command started");
		terminate(a, STOP_CANCEL);
	}
	/* a child that died before the loop started */
	sigchld_cb(&a->sig_chld, SIGCHLD);
	uv_run(&a->loop, UV_RUN_DEFAULT);
}

/* After the phases (a->ready: they went well): the cgroup, the command, the loop until it has
 * ended; then nothing of the run is left and its output is written. */
void
agent_run(struct agent *a)
{
	bool late_cancel = false;
	int rc;

	if (a->ready) {
		/* the cgroup only now, right before the command joins it: no long-lived empty
		 * cgroup (see choose_enforcement) */
		choose_enforcement(a);
		/* a SIGTERM/SIGINT read here is a cancel, never dropped; one that comes after
		 * the signalfd is closed stays pending until uv's handlers see it */
		a->ready = !agent_cancel_pending(a);
	}
	/* the signalfd stays open while the command is started: hold_child waits on it for
	 * spec.not_before, so a cancel during that wait ends the run before the command */
	rc = a->ready ? start_command(a) : 0;
	if (rc == -ECANCELED) {
		a->ready = false; /* SIGKILLed before exec by spawn_start; reaped below */
	} else if (a->ready && rc == 0 && agent_cancel_pending(a)) {
		/* the command was released just before a SIGTERM/SIGINT came: it is cancelled
		 * like any running command, once the loop runs */
		late_cancel = true;
	}
	if (a->sfd >= 0)
		close(a->sfd);
	a->sfd = -1;
	sigprocmask(SIG_UNBLOCK, &a->stops, NULL); /* from now on libuv's handlers see them */
	if (!a->ready) {
		a->child_done = true;
	} else if (rc < 0) {
		a->exec_error = xasprintf("cannot start the command: %s", strerror(-rc));
		if (a->child > 0)
			tree_kill(a);
		a->child_done = true;
		a->end_mono = agent_mono_ms();
		if (a->exec_mono == 0) /* it failed before the command could start: none ran */
			a->exec_mono = a->end_mono;
	} else {
		run_command(a, late_cancel);
	}
	uv_walk(&a->loop, close_all, NULL);
	uv_run(&a->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&a->loop) != 0)
		fprintf(stderr, "eph agent: event loop not empty at exit\n");

	/* nothing of the run may survive it */
	if (tree_count(a) > 0)
		tree_kill(a);
	reap(a);
	for (int s = 0; s < 2; s++)
		(void)outlog_flush_partial(&a->log, (enum outlog_stream)s, clock_real_ms(),
		                           (int64_t)agent_mono_ms(), 0);
	if (outlog_sync(&a->log) < 0)
		agent_warn(a, "writing %s: %s", RUNDIR_OUTPUT, strerror(-a->log.err));
}
