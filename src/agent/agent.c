/* src/agent/agent.c: `eph agent RUN_DIR`: check the pinned commit out (phase `source`), hold
 * the run's venv (phase `runtime`), then fork/exec the command into its memory cgroup, stream
 * its output, sample its memory, enforce its timeout, classify how it ended (phase `exec`).
 *
 * Here: the steps of agent_main (agent.pid, spec.json and the run's files; then result.json,
 * how the run ended) and the events they share. The phases before the command are in
 * agent_prep.c, the command and its event loop in agent_run.c. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
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

#include "agent/agent_int.h"
#include "agent/cgroup.h"
#include "agent/outlog.h"
#include "agent/venv.h"
#include "rundir/results.h"
#include "rundir/rundir.h"
#include "rundir/runlock.h"
#include "rundir/treecopy.h"
#include "source/source.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

static const char *const enforced_names[] = {
	[ENF_CGROUP2] = "cgroup2",
	[ENF_CGROUP1] = "cgroup1",
	[ENF_SAMPLED] = "sampled",
};

const char *
agent_enforced_name(enum enforced e)
{
	return enforced_names[e];
}

void
agent_warn(struct agent *a, const char *fmt, ...)
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

uint64_t
agent_mono_ms(void)
{
	return (uint64_t)clock_mono_ms(); /* unsigned, as the agent's deadlines are */
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
void
agent_event(struct agent *a, const char *phase, const char *state, double t, json_t *f)
{
	if (f == NULL)
		f = json_object();
	json_object_set_new(f, "phase", json_string(phase));
	json_object_set_new(f, "state", json_string(state));
	(void)rundir_event_append(a->ev_fd, "phase", t, f);
	json_decref(f);
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
		                      agent_enforced_name(a->enforced), ooms);
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
	r->enforced = xstrdup(agent_enforced_name(a->enforced));
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

/* RUN_DIR/results, the command's $EPH_RESULTS: made empty (one left by an earlier start of the
 * same run is kept, with what it holds). */
static int
make_results(const char *dir)
{
	char *path = xasprintf("%s/%s", dir, RUNDIR_RESULTS);
	int rc = mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;

	free(path);
	return rc;
}

/* ---- the steps of agent_main */

/* The agent before anything is written: its fields, and SIGTERM and SIGINT blocked (see the
 * top). */
static struct agent *
agent_new(const char *dir)
{
	struct agent *a = xcalloc(1, sizeof(*a));

	a->dir = dir;
	a->out_fd = a->ev_fd = a->sfd = a->lock_fd = -1;
	a->wt.hold_fd = -1;
	a->venv.hold_fd = -1;
	a->source_s = a->runtime_s = -1;
	a->started_at = rundir_now();
	/* until the command starts, a SIGTERM/SIGINT is read from a signalfd (agent_prep.c) */
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

/* Holds the run's lock for the agent's life, before anything of the run is written: the one
 * its starter handed over, else taken now. false (said on stderr) when another agent holds it
 * or the command already started: then this agent does nothing. */
static bool
agent_lock(struct agent *a)
{
	int rc = runlock_adopt(a->dir, RUNLOCK_FD, &a->lock_fd);

	if (rc < 0)
		fprintf(stderr, "eph agent: %s: %s\n", a->dir,
		        rc == -EBUSY      ? "another agent holds the run"
		        : rc == -EALREADY ? "the run's command has already started: nothing to do"
		                          : strerror(-rc));
	return rc == 0;
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
	/* From here on every real time the agent reads, and so writes, is in the scheduler's
	 * clock (util/clock.h): its events, output.log, result.json, and the wait for
	 * not_before. The start, read before the spec said how, is moved likewise. */
	clock_real_set_offset(a->spec.clock_offset);
	a->started_at -= a->spec.clock_offset;
	if ((rc = open_append(dir, RUNDIR_EVENTS, &a->ev_fd)) < 0 ||
	    (rc = open_append(dir, RUNDIR_OUTPUT, &a->out_fd)) < 0) {
		char *reason = xasprintf("cannot open the run's files: %s", strerror(-rc));

		fprintf(stderr, "eph agent: %s\n", reason);
		(void)write_failure(dir, a->started_at, reason);
		free(reason);
		return -1;
	}
	if ((rc = make_results(dir)) < 0) {
		char *reason =
		        xasprintf("cannot make %s/%s: %s", dir, RUNDIR_RESULTS, strerror(-rc));

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

/* The instant after which a file's ctime means the command made or changed it: the real time
 * at the end of the phases (no file the copy made can be stamped later, even with the
 * fine-grained stamps of multigrain timestamps), and then a wait until the coarse clock file
 * systems stamp with has passed it, so that every change the command makes is later. */
static void
mark_results_t0(struct agent *a)
{
	struct timespec now;

	if (a->spec.nresults == 0 || clock_gettime(CLOCK_REALTIME, &a->results_t0) < 0)
		return;
	for (int i = 0; i < 100; i++) {
		struct timespec ms = { 0, 1000 * 1000 };

		if (clock_gettime(CLOCK_REALTIME_COARSE, &now) < 0 ||
		    now.tv_sec > a->results_t0.tv_sec ||
		    (now.tv_sec == a->results_t0.tv_sec && now.tv_nsec > a->results_t0.tv_nsec))
			return;
		nanosleep(&ms, NULL);
	}
}

static bool
after_t0(const struct agent *a, const struct timespec *t)
{
	return t->tv_sec > a->results_t0.tv_sec ||
	       (t->tv_sec == a->results_t0.tv_sec && t->tv_nsec > a->results_t0.tv_nsec);
}

/* Copies regular file REL (relative to the current directory) to RUN_DIR/results/REL unless
 * the command put one there itself. 0, 1 when copied, or -errno. */
static int
collect_one(struct agent *a, const char *rel)
{
	char *dst = xasprintf("%s/%s/%s", a->dir, RUNDIR_RESULTS, rel);
	size_t top = strlen(a->dir) + strlen(RUNDIR_RESULTS) + 2;
	int in = -1, out = -1, rc = 0;

	for (char *c = dst + top; (c = strchr(c, '/')) != NULL; c++) {
		*c = '\0';
		if (mkdir(dst, 0755) < 0 && errno != EEXIST)
			rc = -errno;
		*c = '/';
		if (rc < 0)
			goto done;
	}
	if ((in = open(rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		rc = -errno;
		goto done;
	}
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)) < 0) {
		rc = errno == EEXIST ? 0 : -errno;
		goto done;
	}
	rc = results_copy_fd(in, out);
	if (close(out) < 0 && rc == 0)
		rc = -errno;
	out = -1;
	if (rc == 0)
		rc = 1;
done:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	free(dst);
	return rc;
}

/* spec.results: the regular files its globs match in the command's working directory that
 * the command made or changed (ctime after results_t0), copied into RUN_DIR/results with
 * their relative paths. */
static void
collect_results(struct agent *a)
{
	int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const char *cwd = a->cmd_cwd;

	if (a->spec.nresults == 0 || here < 0) {
		if (here >= 0)
			close(here);
		return;
	}
	if (cwd != NULL && chdir(cwd) < 0) {
		agent_warn(a, "results: cannot enter %s: %s", cwd, strerror(errno));
		close(here);
		return;
	}
	for (size_t i = 0; i < a->spec.nresults; i++) {
		glob_t g;
		int grc = glob(a->spec.results[i], 0, NULL, &g);

		if (grc == GLOB_NOMATCH)
			continue;
		if (grc != 0) {
			agent_warn(a, "results: %s: cannot be matched", a->spec.results[i]);
			continue;
		}
		for (size_t k = 0; k < g.gl_pathc; k++) {
			const char *p = g.gl_pathv[k];
			struct stat st;
			int rc;

			if (p[0] == '/' || strcmp(p, "..") == 0 || strncmp(p, "../", 3) == 0 ||
			    strstr(p, "/../") != NULL || lstat(p, &st) < 0 ||
			    !S_ISREG(st.st_mode) || !after_t0(a, &st.st_ctim))
				continue;
			if ((rc = collect_one(a, p[0] == '.' && p[1] == '/' ? p + 2 : p)) < 0)
				agent_warn(a, "results: cannot collect %s: %s", p, strerror(-rc));
		}
		globfree(&g);
	}
	if (fchdir(here) < 0)
		agent_warn(a, "results: cannot go back: %s", strerror(errno));
	close(here);
}

/* Holds RUN_DIR/results to spec.results_max, whatever the outcome: the files are taken in path
 * order, each kept while the total stays within it, the others removed. A "results" event says
 * what is kept and what was left out (with a "warn" naming them). Nothing is read. */
static void
limit_results(struct agent *a)
{
	struct results_file *f = NULL;
	uint64_t kept = 0, left = 0, max = a->spec.results_max;
	size_t n = 0, nleft = 0;
	json_t *ev, *out;
	int rc = results_list(a->dir, &f, &n);

	if (rc < 0) {
		agent_warn(a, "cannot read %s: %s", RUNDIR_RESULTS, strerror(-rc));
		return;
	}
	out = json_array();
	for (size_t i = 0; i < n; i++) {
		char *p;

		if (f[i].size <= max - kept) { /* kept <= max */
			kept += f[i].size;
			continue;
		}
		p = xasprintf("%s/%s/%s", a->dir, RUNDIR_RESULTS, f[i].path);
		if (unlink(p) < 0 && errno != ENOENT) {
			agent_warn(a, "cannot remove %s, past results_max: %s", p, strerror(errno));
			kept += f[i].size; /* it stays: said as kept */
		} else {
			json_array_append_new(out, json_pack("{s:s,s:I}", "path", f[i].path, "size",
			                                     (json_int_t)f[i].size));
			left += f[i].size;
			nleft++;
		}
		free(p);
	}
	ev = json_pack("{s:I,s:I,s:I}", "files", (json_int_t)(n - nleft), "bytes", (json_int_t)kept,
	               "results_max", (json_int_t)max);
	if (nleft > 0) {
		char lim[32], lb[32];

		units_format_size(max, lim, sizeof(lim));
		units_format_size(left, lb, sizeof(lb));
		agent_warn(a,
		           "results over results_max (%s): %zu file%s (%s) left out, the first %s",
		           lim, nleft, nleft == 1 ? "" : "s", lb,
		           json_string_value(json_object_get(json_array_get(out, 0), "path")));
		json_object_set_new(ev, "left_out", out);
		json_object_set_new(ev, "left_out_bytes", json_integer((json_int_t)left));
	} else {
		json_decref(out);
	}
	(void)rundir_event_append(a->ev_fd, "results", rundir_now(), ev);
	json_decref(ev);
	results_files_free(f, n);
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
		agent_event_exec(a, "end", rundir_now());
		fill_result(a, &r);
		agent_profile_end(a, &r);
	} else {
		fill_prep_result(a, &r);
	}
	r.source_seconds = a->source_s;
	r.runtime_seconds = a->runtime_s;
	if (ready)
		collect_results(a);
	limit_results(a);
	if (a->work != NULL && (rc = treecopy_remove(a->work)) < 0)
		agent_warn(a, "cannot remove the run's copy %s: %s", a->work, strerror(-rc));
	if (a->have_cg && (rc = cgroup_destroy(&a->cg)) < 0)
		agent_warn(a, "cannot remove the run's cgroup: %s", strerror(-rc));
	/* the run started when its command did: after the source and runtime phases (in
	 * phases.source and phases.runtime) and any wait for not_before, whether or not that
	 * wait was needed (a preparation that ended past the instant waited for nothing, yet
	 * the agent started before it). A command never started: when the agent started. */
	r.started_at = ready && a->exec_real > 0 ? a->exec_real : a->started_at;
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
	mask_free(&a->mask[0]);
	mask_free(&a->mask[1]);
	for (size_t i = 0; i < a->nsecrets; i++) {
		free(a->secrets[i].name);
		explicit_bzero(a->secrets[i].value, strlen(a->secrets[i].value));
		free(a->secrets[i].value);
	}
	free(a->secrets);
	free(a->secret_vals);
	if (a->out_fd >= 0)
		close(a->out_fd);
	if (a->ev_fd >= 0)
		close(a->ev_fd);
	if (a->lock_fd >= 0)
		close(a->lock_fd); /* the run's lock is free from here: its result is written */
	free(a->exec_error);
	free(a->prep_error);
	free(a->cmd_cwd);
	free(a->work);
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
	if (agent_lock(a) && agent_open(a) == 0) {
		agent_loop_init(a);
		a->ready = agent_secrets(a) && agent_prepare(a);
		mark_results_t0(a);
		agent_run(a);
		ret = agent_finish(a);
	}
	agent_free(a);
	return ret;
}
