/* src/agent/agent.c: `eph agent RUN_DIR`: check the pinned commit out (phase `source`), hold
 * the run's venv (phase `runtime`), then fork/exec the command into its memory cgroup, stream
 * its output, sample its memory, enforce its timeout, classify how it ended (phase `exec`).
 *
 * The source and runtime phases run before the loop does, blocking; SIGTERM and SIGINT are
 * blocked meanwhile and watched through a signalfd, so a cancel kills a venv build at once
 * (and is noticed after a checkout). The venv build runs outside the run's memory cgroup: the
 * limit is the command's, and a pip that needs more memory than the job is not the job's OOM.
 *
 * One libuv loop: the two output pipes (uv_pipe), SIGCHLD/SIGTERM/SIGINT (uv_signal), and
 * timers for sampling, the timeout, the kill grace, partial-line flushes and the final drain.
 * The command is started with our own fork/exec (uv_spawn runs nothing between fork and exec,
 * and the child must be in its cgroup before exec): the parent writes the child's pid into
 * the cgroup, waits for spec.not_before if it is still ahead (a run started ahead of its
 * instant; the signalfd stays open meanwhile, so a cancel ends the run before the command),
 * then releases it through a pipe. The parent waits rather than the child, so that the cancel
 * is handled where the run's state is, and the exec phase starts when the wait ended. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "agent/cgroup.h"
#include "agent/outlog.h"
#include "agent/proctree.h"
#include "agent/spawn.h"
#include "agent/venv.h"
#include "rundir/rundir.h"
#include "source/source.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

extern char **environ;

#define SAMPLE_EVENT_MS    1000 /* one "mem" event a second */
#define SAMPLE_ENFORCE_MS  100  /* sampled mode checks the limit ten times a second */
#define SAMPLE_ENFORCE_TXT "100 ms"
#define PARTIAL_MS         1000 /* a partial line is flushed after a second */
#define DRAIN_MS           2000 /* after the command's end, how long output may still come */
#define ERRTAIL            4096 /* the end of stderr kept, to recognise a MemoryError */
#define READ_BUF           (64u << 10)

enum enforced { ENF_CGROUP2, ENF_CGROUP1, ENF_SAMPLED };

static const char *const enforced_names[] = {
	[ENF_CGROUP2] = "cgroup2",
	[ENF_CGROUP1] = "cgroup1",
	[ENF_SAMPLED] = "sampled",
};

enum stop { STOP_NONE, STOP_TIMEOUT, STOP_CANCEL, STOP_OOM };

struct agent {
	const char *dir;
	struct rundir_spec spec;
	uv_loop_t loop;
	int out_fd, ev_fd;
	struct outlog log;
	char *rbuf;

	uv_pipe_t pipe[2];
	bool pipe_open[2];
	uv_signal_t sig_chld, sig_term, sig_int;
	uv_timer_t t_sample, t_timeout, t_grace, t_partial, t_drain;

	enum enforced enforced;
	struct cgroup cg;
	bool have_cg;

	pid_t child;
	bool child_done;
	int status;
	double started_at, exec_real;
	uint64_t exec_mono, end_mono;
	double waited;       /* seconds the prepared command waited for spec.not_before */
	bool wait_cancelled; /* a SIGTERM/SIGINT came during that wait: the command never ran */

	enum stop stop;
	bool killing; /* SIGTERM sent; SIGKILL at the end of the grace */
	uint64_t sampled_peak, sampled_over;
	uint64_t pss_last, pss_rss; /* sampled: the last PSS read, and the RSS read with it */
	uint64_t last_event_ms;
	char errtail[ERRTAIL];
	size_t errtail_len;
	char *exec_error;               /* why the command could not be started */
	struct rusage child_ru, pre_ru; /* the command's own (wait4); the phases' children */

	/* the source and runtime phases */
	int sfd;       /* signalfd of SIGTERM and SIGINT while they run; -1 after */
	char *cmd_cwd; /* where the command runs; NULL: the agent's own cwd */
	struct source_worktree wt;
	struct venv venv;
	bool have_venv;
	double source_s, runtime_s; /* < 0: the phase did not run */
	enum rundir_failure failure;
	char *prep_error;    /* why a phase failed (the reason, "source: ..."); NULL if none */
	bool prep_cancelled; /* a SIGTERM/SIGINT came during the phases */
	sigset_t stops;      /* SIGTERM and SIGINT, blocked until the command starts */
	bool ready;          /* the phases went well, the command was (to be) started */
};

static void ev_warn(struct agent *a, const char *fmt, ...) EPH_PRINTF(2, 3);

static void
ev_warn(struct agent *a, const char *fmt, ...)
{
	json_t *f = json_object();
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	json_object_set_new(f, "msg", json_string(msg != NULL ? msg : fmt));
	(void)rundir_event_append(a->ev_fd, "warn", rundir_now(), f);
	json_decref(f);
	free(msg);
}

static uint64_t
mono_ms(void)
{
	return (uint64_t)clock_mono_ms(); /* unsigned, as the agent's deadlines are */
}

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
			a->end_mono = mono_ms();
		}
	}
}

static size_t
tree_count(struct agent *a)
{
	struct proctree t;
	size_t n;

	if (a->have_cg)
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
	if (a->have_cg)
		(void)cgroup_signal(&a->cg, sig);
	/* the process group too: covers the moment before a child shows up in a scan */
	(void)proctree_signal(getpid(), a->child_done ? 0 : a->child, sig);
}

/* SIGKILLs everything the command started, until nothing is left. */
static void
tree_kill(struct agent *a)
{
	struct timespec ts = { 0, 10 * 1000000L };

	if (a->have_cg) {
		if (cgroup_kill_all(&a->cg, reap, a) < 0)
			ev_warn(a, "processes remain in %s after SIGKILL", a->cg.path);
	}
	for (int i = 0; i < 500; i++) {
		reap(a);
		if (proctree_signal(getpid(), a->child_done ? 0 : a->child, SIGKILL) == 0)
			return;
		nanosleep(&ts, NULL);
	}
	ev_warn(a, "processes of the run survive SIGKILL");
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
	(void)outlog_flush_partial(&a->log, (enum outlog_stream)s, clock_real_ms(),
	                           (int64_t)mono_ms(), 0);
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

	ev_warn(a, "output still open %d ms after the command ended; closed", DRAIN_MS);
	close_pipe(a, 0);
	close_pipe(a, 1);
	maybe_finish(a);
}

static void
child_ended(struct agent *a)
{
	/* everything the command started dies with it */
	if (tree_count(a) > 0) {
		ev_warn(a, "killing processes the command left behind");
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
			ev_warn(a, "cancelled by SIG%s", sigabbrev_np(sig));
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
	int64_t next = -1, now = (int64_t)mono_ms(), rm = clock_real_ms();

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

static void
read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct agent *a = st->data;
	int s = (uv_pipe_t *)st == &a->pipe[0] ? OUTLOG_OUT : OUTLOG_ERR;

	if (n > 0) {
		/* a write error stays in a->log.err (later output is dropped) and is reported
		 * once, at the end (outlog_sync) */
		(void)outlog_feed(&a->log, (enum outlog_stream)s, b->base, (size_t)n,
		                  clock_real_ms(), (int64_t)mono_ms());
		if (s == OUTLOG_ERR)
			keep_errtail(a, b->base, (size_t)n);
		if ((a->log.pend[s].len > 0) && !uv_is_active((uv_handle_t *)&a->t_partial))
			uv_timer_start(&a->t_partial, partial_cb, PARTIAL_MS, 0);
		return;
	}
	if (n < 0) {
		if (n != UV_EOF)
			ev_warn(a, "reading std%s: %s", s == OUTLOG_OUT ? "out" : "err",
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
	uint64_t bytes = 0, now = mono_ms();
	bool have = false, fresh = true;
	bool due = now - a->last_event_ms >= SAMPLE_EVENT_MS - SAMPLE_ENFORCE_MS / 2;

	if (a->child_done)
		return;
	if (a->have_cg) {
		have = cgroup_usage(&a->cg, &bytes) == 0;
		if (cgroup_oom_kills(&a->cg) > 0 && a->stop == STOP_NONE) {
			/* v1 kills one task; the run goes as a whole */
			ev_warn(a, "the memory limit was hit (OOM kill in %s); killing the run",
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
	ev_warn(a, "timeout after %" PRId64 " s: SIGTERM, then SIGKILL after %" PRId64 " s",
	        a->spec.timeout, a->spec.kill_grace);
	terminate(a, STOP_TIMEOUT);
}

/* ---- starting the command */

static bool
name_is(const char *kv, size_t l, const char *name)
{
	return strlen(name) == l && strncmp(kv, name, l) == 0;
}

/* Whether the inherited KV gives way to ours (EPH_*, spec.env, the venv's). */
static bool
env_overridden(const struct agent *a, const char *kv)
{
	static const char *const ours[] = { "EPH_RUN_ID",       "EPH_JOB",    "EPH_ATTEMPT",
		                            "EPH_SCHEDULED_AT", "EPH_COMMIT", "EPH_CGROUP_ROOT",
		                            "EPH_ENFORCE" };
	const char *eq = strchr(kv, '=');
	size_t l = eq != NULL ? (size_t)(eq - kv) : strlen(kv);

	for (size_t i = 0; i < EPH_ARRAY_LEN(ours); i++)
		if (name_is(kv, l, ours[i]))
			return true;
	if (a->spec.runtime.requirements != NULL &&
	    (name_is(kv, l, "PYTHONHOME") || name_is(kv, l, "VIRTUAL_ENV") ||
	     (a->have_venv && name_is(kv, l, "PATH"))))
		return true;
	for (size_t i = 0; i < a->spec.nenv; i++)
		if (name_is(kv, l, a->spec.env[i].name))
			return true;
	return false;
}

/* The commit the run is pinned to, or NULL. */
static const char *
run_commit(const struct agent *a)
{
	return a->spec.commit != NULL ? a->spec.commit : a->spec.source.commit;
}

/* The command's PATH before the venv's bin: spec.env's, else ours; NULL if none. */
static const char *
command_path(const struct agent *a)
{
	for (size_t i = 0; i < a->spec.nenv; i++)
		if (strcmp(a->spec.env[i].name, "PATH") == 0)
			return a->spec.env[i].value;
	return getenv("PATH");
}

/* The command's environment: ours + spec.env + EPH_* (+ the venv's VIRTUAL_ENV and PATH, and no
 * PYTHONHOME, when the run has a runtime); caller frees each string and the array. The venv
 * build gets the same, minus the venv. */
static char **
build_env(const struct agent *a)
{
	size_t n = 0, k = 0;
	char **env, iso[32];

	while (environ[n] != NULL)
		n++;
	env = xcalloc(n + a->spec.nenv + 8, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		if (!env_overridden(a, environ[i]))
			env[k++] = xstrdup(environ[i]);
	for (size_t i = 0; i < a->spec.nenv; i++) {
		const char *nm = a->spec.env[i].name;

		if (a->spec.runtime.requirements != NULL &&
		    (strcmp(nm, "PYTHONHOME") == 0 || strcmp(nm, "VIRTUAL_ENV") == 0 ||
		     (a->have_venv && strcmp(nm, "PATH") == 0)))
			continue;
		env[k++] = xasprintf("%s=%s", nm, a->spec.env[i].value);
	}
	if (a->have_venv) {
		const char *path = command_path(a);

		env[k++] = xasprintf("VIRTUAL_ENV=%s", a->venv.path);
		env[k++] = path != NULL && *path != '\0'
		                   ? xasprintf("PATH=%s/bin:%s", a->venv.path, path)
		                   : xasprintf("PATH=%s/bin", a->venv.path);
	}
	(void)rundir_iso8601(a->spec.scheduled_at, iso, sizeof(iso)); /* spec: 0..9999 */
	env[k++] = xasprintf("EPH_RUN_ID=%" PRId64, a->spec.run_id);
	env[k++] = xasprintf("EPH_JOB=%s", a->spec.job);
	env[k++] = xasprintf("EPH_ATTEMPT=%d", a->spec.attempt);
	env[k++] = xasprintf("EPH_SCHEDULED_AT=%s", iso);
	if (run_commit(a) != NULL)
		env[k++] = xasprintf("EPH_COMMIT=%s", run_commit(a));
	env[k] = NULL;
	return env;
}

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

static void
free_strv(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

static bool cancel_pending(struct agent *a);

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
		if (ppoll(&p, 1, &ts, NULL) > 0 && cancel_pending(a)) {
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
		ev_warn(a, "cannot join %s (%s): falling back to sampling", a->cg.path,
		        strerror(-rc));
		(void)cgroup_destroy(&a->cg);
		a->have_cg = false;
		a->enforced = ENF_SAMPLED;
	}
	if (wait_not_before(a) < 0) {
		a->wait_cancelled = a->prep_cancelled = true;
		return -ECANCELED;
	}
	a->exec_mono = mono_ms();
	a->exec_real = rundir_now();
	return 0;
}

static int
start_command(struct agent *a)
{
	char **envp = build_env(a), *shargv[4], *resolved = NULL;
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
	free_strv(envp);
	free(resolved);
	return rc;
}

/* ---- the result */

static bool
memory_error_in(const struct agent *a)
{
	const char *needle = "MemoryError";
	size_t nl = strlen(needle);

	for (size_t i = 0; i + nl <= a->errtail_len; i++)
		if (memcmp(a->errtail + i, needle, nl) == 0)
			return true;
	return false;
}

static void
classify(struct agent *a, struct rundir_result *r)
{
	uint64_t ooms = a->have_cg ? cgroup_oom_kills(&a->cg) : 0;
	bool exited = WIFEXITED(a->status), sig = WIFSIGNALED(a->status);
	int code = exited ? WEXITSTATUS(a->status) : -1, signo = sig ? WTERMSIG(a->status) : 0;
	char lim[32], peak[32];

	r->exit_code = code;
	r->signal = signo;
	units_format_size(r->memory_limit, lim, sizeof(lim));
	units_format_size(r->peak_bytes, peak, sizeof(peak));
	if (a->exec_error != NULL) {
		r->outcome = RUNDIR_FAILED;
		r->reason = xstrdup(a->exec_error);
	} else if (a->stop == STOP_CANCEL) {
		r->outcome = RUNDIR_CANCELLED;
		r->reason = xstrdup("cancelled: the agent was asked to stop");
	} else if (a->stop == STOP_OOM && !a->have_cg) {
		char over[32];

		units_format_size(a->sampled_over, over, sizeof(over));
		r->outcome = RUNDIR_OOM;
		r->reason =
		        xasprintf("killed by the memory limit (sampled PSS %s > %s)", over, lim);
	} else if (ooms > 0 && !(exited && code == 0)) {
		r->outcome = RUNDIR_OOM;
		r->reason = xasprintf("killed by the memory limit (%s oom_kill %" PRIu64 ")",
		                      enforced_names[a->enforced], ooms);
	} else if (a->stop == STOP_TIMEOUT) {
		r->outcome = RUNDIR_TIMEOUT;
		r->reason = xasprintf("timed out after %" PRId64 " s", a->spec.timeout);
	} else if (exited && code != 0 && a->spec.memory > 0 && memory_error_in(a) &&
	           r->peak_bytes >= a->spec.memory / 10 * 9) {
		r->outcome = RUNDIR_OOM;
		r->reason = xasprintf("MemoryError at %s of %s limit", peak, lim);
	} else if (sig) {
		r->outcome = RUNDIR_KILLED;
		r->reason = xasprintf("killed by signal %d (SIG%s)", signo,
		                      sigabbrev_np(signo) ? sigabbrev_np(signo) : "?");
	} else if (code != 0) {
		r->outcome = RUNDIR_FAILED;
		r->reason = xasprintf("exit code %d", code);
	} else {
		r->outcome = RUNDIR_SUCCEEDED;
		r->reason = xstrdup("exit code 0");
	}
}

static void
fill_result(struct agent *a, struct rundir_result *r)
{
	struct rusage ru;
	const char *method = NULL;

	r->memory_limit = a->spec.memory;
	if (a->have_cg) {
		cgroup_peak(&a->cg, &r->peak_bytes, &method);
		r->peak_method = xstrdup(method);
	} else {
		r->peak_bytes = a->sampled_peak;
		r->peak_method =
		        xstrdup("sampled PSS of the process tree (RSS every " SAMPLE_ENFORCE_TXT
		                " as its bound, PSS at least once a second)");
	}
	r->enforced = xstrdup(enforced_names[a->enforced]);
	if (getrusage(RUSAGE_CHILDREN, &ru) == 0) {
		/* minus what git, the interpreter and pip used in the phases before */
		const struct rusage *p = &a->pre_ru;

		r->maxrss_bytes = (uint64_t)(ru.ru_maxrss > p->ru_maxrss ? ru.ru_maxrss
		                                                         : a->child_ru.ru_maxrss) *
		                  1024;
		r->cpu_user_seconds = (double)(ru.ru_utime.tv_sec - p->ru_utime.tv_sec) +
		                      (double)(ru.ru_utime.tv_usec - p->ru_utime.tv_usec) / 1e6;
		r->cpu_system_seconds = (double)(ru.ru_stime.tv_sec - p->ru_stime.tv_sec) +
		                        (double)(ru.ru_stime.tv_usec - p->ru_stime.tv_usec) / 1e6;
	}
	if (r->peak_bytes < r->maxrss_bytes && !a->have_cg)
		r->peak_bytes = r->maxrss_bytes;
	r->exec_seconds = (double)(a->end_mono - a->exec_mono) / 1000.0;
	classify(a, r);
}

static int
write_failure(const char *dir, double started, const char *reason)
{
	struct rundir_result r = { .outcome = RUNDIR_FAILED,
		                   .exit_code = -1,
		                   .exec_seconds = -1,
		                   .source_seconds = -1,
		                   .runtime_seconds = -1 };

	r.reason = (char *)reason;
	r.started_at = started;
	r.ended_at = rundir_now();
	r.wall_seconds = r.ended_at - started;
	return rundir_result_write(dir, &r);
}

static int
open_append(const char *dir, const char *name, int *fd)
{
	char *path = xasprintf("%s/%s", dir, name);

	*fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	free(path);
	return *fd < 0 ? -errno : 0;
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
	/* run ids restart at 1 in every state directory: the agent's pid makes it unique
	 * among live agents (cgroup_create never takes over an existing one either) */
	name = xasprintf("run-%" PRId64 "-%d", a->spec.run_id, (int)getpid());
	rc = cgroup_create(&a->cg, name, a->spec.memory, &why);
	if (rc == 0) {
		a->have_cg = true;
		a->enforced = a->cg.kind == CGROUP_V2 ? ENF_CGROUP2 : ENF_CGROUP1;
	} else {
		ev_warn(a, "no memory cgroup (%s): sampling the process tree instead",
		        buf_cstr(&why));
	}
	free(name);
	buf_free(&why);
}

static void
event_start(struct agent *a)
{
	json_t *f = json_object();

	json_object_set_new(f, "agent_pid", json_integer(getpid()));
	json_object_set_new(f, "memory_limit", json_integer((json_int_t)a->spec.memory));
	(void)rundir_event_append(a->ev_fd, "start", a->started_at, f);
	json_decref(f);
}

/* A "phase" event; F (may be NULL) holds its other fields and is consumed. */
static void
event_phase_f(struct agent *a, const char *phase, const char *state, double t, json_t *f)
{
	if (f == NULL)
		f = json_object();
	json_object_set_new(f, "phase", json_string(phase));
	json_object_set_new(f, "state", json_string(state));
	(void)rundir_event_append(a->ev_fd, "phase", t, f);
	json_decref(f);
}

static void
event_phase(struct agent *a, const char *state, double t)
{
	json_t *f = json_object();

	if (strcmp(state, "start") == 0) {
		json_object_set_new(f, "pid", json_integer(a->child));
		json_object_set_new(f, "enforced", json_string(enforced_names[a->enforced]));
		json_object_set_new(f, "cgroup",
		                    a->have_cg ? json_string(a->cg.path) : json_null());
		if (a->spec.not_before > 0)
			json_object_set_new(f, "waited", json_real(a->waited));
	} else {
		json_object_set_new(f, "seconds",
		                    json_real((double)(a->end_mono - a->exec_mono) / 1000.0));
	}
	event_phase_f(a, "exec", state, t, f);
}

/* ---- the source and runtime phases */

/* The venv build's output, into output.log like the command's. */
static void
build_output(void *arg, int stream, const void *p, size_t n)
{
	struct agent *a = arg;

	(void)outlog_feed(&a->log, stream == 0 ? OUTLOG_OUT : OUTLOG_ERR, p, n, clock_real_ms(),
	                  (int64_t)mono_ms());
}

static void
phase_fail(struct agent *a, enum rundir_failure f, const char *phase, struct diag *d, int rc)
{
	/* the message itself: without diag_format's "eph: " (the phase names the source) */
	const char *msg = diag_nerrors(d) > 0 ? d->items[0].msg : strerror(-rc);

	a->failure = f;
	a->prep_error = xasprintf("%s: %s", phase, msg);
}

/* Whether a SIGTERM or SIGINT came while the phases ran (consumes it). */
static bool
cancel_pending(struct agent *a)
{
	struct signalfd_siginfo si;

	if (a->sfd < 0)
		return false;
	while (read(a->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		a->prep_cancelled = true;
	return a->prep_cancelled;
}

static void
phase_source(struct agent *a)
{
	const char *wd = a->spec.workdir;
	uint64_t t0 = mono_ms();
	struct diag d;
	json_t *f;
	int rc;

	if (a->spec.source.mirror == NULL) {
		/* in place: cwd as given (it includes the job's workdir) */
		a->cmd_cwd = a->spec.cwd != NULL ? xstrdup(a->spec.cwd) : NULL;
		return;
	}
	f = json_object();
	json_object_set_new(f, "commit", json_string(a->spec.source.commit));
	if (a->spec.source.repo != NULL)
		json_object_set_new(f, "repo", json_string(a->spec.source.repo));
	event_phase_f(a, "source", "start", rundir_now(), f);
	diag_init(&d);
	rc = source_checkout(a->spec.state_dir, a->spec.source.mirror, a->spec.source.commit,
	                     a->spec.source.keep_worktrees, &a->wt, &d);
	a->source_s = (double)(mono_ms() - t0) / 1000.0;
	f = json_object();
	json_object_set_new(f, "seconds", json_real(a->source_s));
	if (rc < 0) {
		phase_fail(a, RUNDIR_FAILURE_SOURCE, "source", &d, rc);
		json_object_set_new(f, "error", json_string(a->prep_error));
	} else {
		/* a relative cwd with a source is the workdir too (older specs) */
		if (wd == NULL && a->spec.cwd != NULL && a->spec.cwd[0] != '/')
			wd = a->spec.cwd;
		a->cmd_cwd = wd != NULL && *wd != '\0' && strcmp(wd, ".") != 0
		                     ? xasprintf("%s/%s", a->wt.path, wd)
		                     : xstrdup(a->wt.path);
		json_object_set_new(f, "path", json_string(a->wt.path));
		json_object_set_new(f, "built", json_boolean(a->wt.built));
	}
	event_phase_f(a, "source", "end", rundir_now(), f);
	diag_free(&d);
}

static void
phase_runtime(struct agent *a)
{
	uint64_t t0 = mono_ms();
	struct venv_opts o = { 0 };
	char **envp;
	struct diag d;
	json_t *f;
	int rc;

	if (a->spec.runtime.requirements == NULL)
		return;
	f = json_object();
	json_object_set_new(f, "interpreter", json_string(a->spec.runtime.interpreter));
	json_object_set_new(f, "requirements", json_string(a->spec.runtime.requirements));
	event_phase_f(a, "runtime", "start", rundir_now(), f);
	envp = build_env(a); /* no venv yet: the environment pip runs in */
	o.state_dir = a->spec.state_dir;
	o.interpreter = a->spec.runtime.interpreter;
	o.requirements = a->spec.runtime.requirements;
	o.root = a->wt.path != NULL ? a->wt.path : a->spec.cwd;
	o.envp = envp;
	o.path_env = command_path(a);
	o.out = build_output;
	o.arg = a;
	o.cancel_fd = a->sfd;
	o.timeout_ms = a->spec.timeout * 1000;
	diag_init(&d);
	rc = venv_prepare(&o, &a->venv, &d);
	for (int s = 0; s < 2; s++)
		(void)outlog_flush_partial(&a->log, (enum outlog_stream)s, clock_real_ms(),
		                           (int64_t)mono_ms(), 0);
	(void)outlog_sync(&a->log);
	a->runtime_s = (double)(mono_ms() - t0) / 1000.0;
	f = json_object();
	json_object_set_new(f, "seconds", json_real(a->runtime_s));
	if (rc == -ECANCELED) {
		a->prep_cancelled = true;
	} else if (rc < 0) {
		phase_fail(a, RUNDIR_FAILURE_RUNTIME, "runtime", &d, rc);
		json_object_set_new(f, "error", json_string(a->prep_error));
	} else {
		a->have_venv = true;
		json_object_set_new(f, "venv", json_string(a->venv.path));
		json_object_set_new(f, "built", json_boolean(a->venv.built));
	}
	event_phase_f(a, "runtime", "end", rundir_now(), f);
	diag_free(&d);
	free_strv(envp);
}

/* Runs the phases before the command; false when the run ends there (a->prep_error or
 * a->prep_cancelled says why). */
static bool
prepare(struct agent *a)
{
	phase_source(a);
	if (a->prep_error != NULL || cancel_pending(a))
		return false;
	phase_runtime(a);
	if (a->prep_error != NULL || cancel_pending(a))
		return false;
	return true;
}

/* result.json of a run that ended before its command started. */
static void
fill_prep_result(struct agent *a, struct rundir_result *r)
{
	r->memory_limit = a->spec.memory;
	r->exit_code = -1;
	r->exec_seconds = -1;
	r->failure = a->failure;
	if (a->wait_cancelled) {
		r->outcome = RUNDIR_CANCELLED;
		r->reason = xstrdup("cancelled: the agent was asked to stop while the command "
		                    "waited for its instant");
	} else if (a->prep_cancelled && a->prep_error == NULL) {
		r->outcome = RUNDIR_CANCELLED;
		r->reason =
		        a->runtime_s >= 0 || a->source_s >= 0
		                ? xasprintf("cancelled: the agent was asked to stop during the %s "
		                            "phase",
		                            a->runtime_s >= 0 ? "runtime" : "source")
		                : xstrdup("cancelled: the agent was asked to stop before the "
		                          "command started");
	} else {
		r->outcome = RUNDIR_FAILED;
		r->reason = xstrdup(a->prep_error);
	}
}

/* The agent before anything is written: its fields, and SIGTERM and SIGINT blocked (see the
 * top). */
static struct agent *
agent_new(const char *dir)
{
	struct agent *a = xcalloc(1, sizeof(*a));

	a->dir = dir;
	a->out_fd = a->ev_fd = a->sfd = -1;
	a->wt.hold_fd = -1;
	a->venv.hold_fd = -1;
	a->source_s = a->runtime_s = -1;
	a->started_at = rundir_now();
	/* until the command starts, a SIGTERM/SIGINT is read from a signalfd (see the top) */
	sigemptyset(&a->stops);
	sigaddset(&a->stops, SIGTERM);
	sigaddset(&a->stops, SIGINT);
	sigprocmask(SIG_BLOCK, &a->stops, NULL);
	a->sfd = signalfd(-1, &a->stops, SFD_NONBLOCK | SFD_CLOEXEC);
	/* independent of whoever started us */
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	return a;
}

/* Writes agent.pid, reads spec.json, opens events.jsonl and output.log. 0, or -1 when the run
 * cannot go on: said on stderr, and in a result.json if one can be written. */
static int
agent_open(struct agent *a)
{
	const char *dir = a->dir;
	struct diag d;
	int rc;

	if ((rc = rundir_pid_write(dir, getpid())) < 0) {
		fprintf(stderr, "eph agent: cannot write %s/%s: %s\n", dir, RUNDIR_PID,
		        strerror(-rc));
		(void)write_failure(dir, a->started_at, "the run directory is not writable");
		return -1;
	}
	diag_init(&d);
	if (rundir_spec_read(dir, &a->spec, &d) < 0) {
		char *msg = diag_nerrors(&d) > 0 ? diag_format(&d, 0) : xstrdup("bad spec.json");
		char *reason = xasprintf("bad spec: %s", msg);

		diag_print(&d, stderr);
		if ((rc = write_failure(dir, a->started_at, reason)) < 0)
			fprintf(stderr, "eph agent: cannot write %s/%s: %s\n", dir, RUNDIR_RESULT,
			        strerror(-rc));
		free(reason);
		free(msg);
		diag_free(&d);
		return -1;
	}
	diag_free(&d);
	if ((rc = open_append(dir, RUNDIR_EVENTS, &a->ev_fd)) < 0 ||
	    (rc = open_append(dir, RUNDIR_OUTPUT, &a->out_fd)) < 0) {
		char *reason = xasprintf("cannot open the run's files: %s", strerror(-rc));

		fprintf(stderr, "eph agent: %s\n", reason);
		(void)write_failure(dir, a->started_at, reason);
		free(reason);
		return -1;
	}
	outlog_init(&a->log, a->out_fd);
	a->rbuf = xmalloc(READ_BUF);
	event_start(a);
	return 0;
}

static void
loop_init(struct agent *a)
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
	event_phase(a, "start", a->exec_real);
	a->last_event_ms = a->exec_mono;
	/* the loop's clock was read at uv_loop_init, before the phases and the wait:
	 * the timeout counts from the command's start */
	uv_update_time(&a->loop);
	uv_timer_start(&a->t_sample, sample_cb, a->have_cg ? SAMPLE_EVENT_MS : SAMPLE_ENFORCE_MS,
	               a->have_cg ? SAMPLE_EVENT_MS : SAMPLE_ENFORCE_MS);
	if (a->spec.timeout > 0)
		uv_timer_start(&a->t_timeout, timeout_cb, (uint64_t)a->spec.timeout * 1000, 0);
	if (late_cancel) {
		ev_warn(a, "cancelled as the command started");
		terminate(a, STOP_CANCEL);
	}
	/* a child that died before the loop started */
	sigchld_cb(&a->sig_chld, SIGCHLD);
	uv_run(&a->loop, UV_RUN_DEFAULT);
}

/* After the phases (a->ready: they went well): the cgroup, the command, the loop until it has
 * ended; then nothing of the run is left and its output is written. */
static void
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
		a->ready = !cancel_pending(a);
	}
	/* the signalfd stays open while the command is started: hold_child waits on it for
	 * spec.not_before, so a cancel during that wait ends the run before the command */
	rc = a->ready ? start_command(a) : 0;
	if (rc == -ECANCELED) {
		a->ready = false; /* SIGKILLed before exec by spawn_start; reaped below */
	} else if (a->ready && rc == 0 && cancel_pending(a)) {
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
		a->end_mono = mono_ms();
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
		                           (int64_t)mono_ms(), 0);
	if (outlog_sync(&a->log) < 0)
		ev_warn(a, "writing %s: %s", RUNDIR_OUTPUT, strerror(-a->log.err));
}

/* Writes result.json; returns the agent's exit status. */
static int
agent_finish(struct agent *a)
{
	const char *dir = a->dir;
	struct rundir_result r = { 0 };
	bool ready = a->ready;
	int rc, ret;

	if (ready) {
		event_phase(a, "end", rundir_now());
		fill_result(a, &r);
	} else {
		fill_prep_result(a, &r);
	}
	r.source_seconds = a->source_s;
	r.runtime_seconds = a->runtime_s;
	if (a->have_cg && (rc = cgroup_destroy(&a->cg)) < 0)
		ev_warn(a, "cannot remove the run's cgroup: %s", strerror(-rc));
	/* a command that waited for its instant started when the wait ended (the phases before
	 * it were done ahead, in phases.source and phases.runtime) */
	r.started_at = ready && a->waited > 0 ? a->exec_real : a->started_at;
	r.ended_at = rundir_now();
	r.wall_seconds = r.ended_at - r.started_at;
	if ((rc = rundir_result_write(dir, &r)) < 0) {
		fprintf(stderr, "eph agent: cannot write %s/%s: %s\n", dir, RUNDIR_RESULT,
		        strerror(-rc));
		ret = 2;
	} else {
		ret = r.outcome == RUNDIR_SUCCEEDED ? 0 : 1;
	}
	rundir_result_free(&r);
	return ret;
}

/* Frees A, whatever step it reached. */
static void
agent_free(struct agent *a)
{
	outlog_free(&a->log);
	free(a->rbuf);
	if (a->out_fd >= 0)
		close(a->out_fd);
	if (a->ev_fd >= 0)
		close(a->ev_fd);
	free(a->exec_error);
	free(a->prep_error);
	free(a->cmd_cwd);
	venv_release(&a->venv);
	source_worktree_release(&a->wt);
	if (a->sfd >= 0)
		close(a->sfd);
	rundir_spec_free(&a->spec);
	free(a);
}

int
agent_main(const char *dir)
{
	struct agent *a;
	int ret = 2;

	if (dir[0] != '/') {
		/* "" or a relative path would put agent.pid and result.json in whatever the
		 * current directory is (/ for a root shell): executors always pass an absolute one
		 */
		fprintf(stderr, "eph agent: RUN_DIR must be an absolute path, not \"%s\"\n", dir);
		return 2;
	}
	a = agent_new(dir);
	if (agent_open(a) == 0) {
		loop_init(a);
		a->ready = prepare(a);
		agent_run(a);
		ret = agent_finish(a);
	}
	agent_free(a);
	return ret;
}
