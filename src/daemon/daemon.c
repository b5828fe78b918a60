/* src/daemon/daemon.c: the scheduler's loop: the timer, fires and their policies, start, stop. */
#include "daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "conf/conf.h"
#include "daemon/ctl.h"
#include "daemon/daemon_int.h"
#include "daemon/dlog.h"
#include "daemon/evheap.h"
#include "daemon/plan.h"
#include "exec/exec.h"
#include "notify/notify.h"
#include "rundir/rundir.h"
#include "sched/cronexpr.h"
#include "sched/tz.h"
#include "source/source.h"
#include "store/outbox.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/instance.h"
#include "util/units.h"
#include "util/xalloc.h"

/* Records a forbidden fire as a skipped run. */
static void
dm_skip(struct daemon *dm, const struct conf_job *cj, enum store_trigger trig, int64_t at,
        const struct drun *live)
{
	struct store_run r;
	int64_t id = 0;

	store_run_init(&r);
	r.job = xstrdup(cj->name);
	r.trigger = trig;
	r.scheduled_at = at;
	r.state = STORE_SKIPPED;
	r.reason = xasprintf("previous run %lld still running", (long long)live->id);
	r.executor = xstrdup(cj->executor != NULL ? cj->executor : "local");
	r.memory_limit = (int64_t)cj->memory;
	if (store_run_create(dm->store, &r, &id) < 0)
		dlog(DLOG_ERROR, 0, cj->name, "cannot record a skipped run: %s",
		     store_errmsg(dm->store));
	else
		dlog(DLOG_INFO, id, cj->name, "skipped (%s)", r.reason);
	if (id != 0)
		dm_notify(dm, id, cj->name, false); /* notify_decide: a skipped run sends nothing */
	store_run_clear(&r);
}

/* A live run of JOB other than SELF, or NULL. */
static struct drun *
dm_live_of(struct daemon *dm, const char *job, const struct drun *self)
{
	for (struct drun *dr = dm->runs; dr != NULL; dr = dr->next)
		if (dr != self && !dr->check_conc && strcmp(dr->job, job) == 0)
			return dr;
	return NULL;
}

static void
dm_replace(struct daemon *dm, const char *job, const struct drun *self)
{
	struct drun *dr = dm->runs, *nx;

	for (; dr != NULL; dr = nx) {
		nx = dr->next;
		if (dr != self && !dr->check_conc && strcmp(dr->job, job) == 0)
			(void)dm_cancel_run(dm, dr, "replaced by a newer run");
	}
}

/* One fire of job J at AT: the concurrency policy, then a new run. A fire still ahead (its run
 * prepared DM_PREP_MS or DM_PREP_SOURCE_MS early, so that the agent starts at the instant)
 * gets the policy at its instant (dm_prepared_due). */
void
dm_fire(struct daemon *dm, const struct conf_job *cj, int64_t at, enum store_trigger trig,
        int attempt)
{
	struct drun *live;

	if (at * 1000 > clock_real_ms()) {
		(void)dm_create(dm, cj, trig, at, attempt, at * 1000, true);
		return;
	}
	live = dm_live_of(dm, cj->name, NULL);
	if (live != NULL && cj->concurrency == CONF_CONC_FORBID) {
		dm_skip(dm, cj, trig, at, live);
		return;
	}
	if (live != NULL && cj->concurrency == CONF_CONC_REPLACE)
		dm_replace(dm, cj->name, NULL);
	(void)dm_create(dm, cj, trig, at, attempt, 0, false);
}

/* The instant of a prepared run: the concurrency policy of its job (from the current
 * configuration), then the queue. */
void
dm_prepared_due(struct daemon *dm, struct drun *dr)
{
	const struct conf_job *cj = conf_job_find(dm->conf, dr->job);
	struct drun *live;

	dr->check_conc = false;
	if (cj == NULL) {
		/* a reload removed the job between its run's preparation and its instant: the
		 * run has not started, and no policy of the job is left to start it under */
		dm_end_unstarted(dm, dr, STORE_CANCELLED,
		                 "the job was removed from the jobs file before the run started");
		return;
	}
	live = dm_live_of(dm, dr->job, dr);
	if (live != NULL && cj->concurrency == CONF_CONC_FORBID) {
		char *why = xasprintf("previous run %lld still running", (long long)live->id);

		dm_end_unstarted(dm, dr, STORE_SKIPPED, why);
		free(why);
		return;
	}
	if (live != NULL && cj->concurrency == CONF_CONC_REPLACE)
		dm_replace(dm, dr->job, dr);
	dm_enqueue(dm, dr);
}

/* Runs what is due of job J at NOW (UTC s) and pushes its next fire. */
void
dm_job_due(struct daemon *dm, struct djob *j, int64_t now, int64_t late)
{
	const struct conf_job *cj = j->cj;
	struct plan_fire *fires = NULL;
	size_t n = 0;
	int64_t next;
	int rc;

	rc = plan_due(cj->cron, cj->tz, j->until, now, late, cj->catchup, cj->starting_deadline,
	              &fires, &n);
	if (rc < 0)
		dlog(DLOG_ERROR, 0, cj->name, "cannot compute its fires: %s", strerror(-rc));
	for (size_t i = 0; i < n; i++)
		dm_fire(dm, cj, fires[i].at, fires[i].trigger, 1);
	free(fires);
	if (n > 0)
		dm_admit(dm); /* start first: the job state below is recoverable from the runs */
	if (now > j->until)
		dm_until_set(dm, j, now);
	rc = cronexpr_next(cj->cron, cj->tz, j->until, &next);
	if (rc == 0) {
		j->next = next;
		struct executor *ex =
		        dm_executor(dm, cj->executor != NULL ? cj->executor : "local");

		/* and earlier by what its executor needs to have a place ready (a machine) */
		evheap_push(
		        &dm->heap, &j->ev,
		        next * 1000 -
		                (dm->conf->source.repo != NULL ? DM_PREP_SOURCE_MS : DM_PREP_MS) -
		                (ex != NULL ? ex->lead_ms : 0));
	} else if (rc != -ENOENT)
		dlog(DLOG_ERROR, 0, cj->name, "cannot compute its next fire: %s", strerror(-rc));
}

/* --- the timer ----------------------------------------------------------------------- */

static void
dm_timer_cb(uv_timer_t *t)
{
	struct daemon *dm = t->data;
	struct evheap_node *top;
	int64_t now = clock_real_ms();

	while ((top = evheap_top(&dm->heap)) != NULL && top->at <= now && !dm->stopping) {
		evheap_pop(&dm->heap);
		if (top->kind == DM_EV_FIRE) {
			struct djob *j = container_of(top, struct djob, ev);

			/* early by DM_PREP_MS: prepare the run of the coming instant */
			dm_job_due(dm, j, j->next * 1000 > now ? j->next : now / 1000, DM_LATE_S);
		} else if (top->kind == DM_EV_START) {
			struct drun *dr = container_of(top, struct drun, ev);

			if (dr->check_conc)
				dm_prepared_due(dm, dr);
			else
				dm_enqueue(dm, dr);
		} else if (top->kind == DM_EV_UNPLACED) {
			struct drun *dr = container_of(top, struct drun, ev);
			char dur[32], mem[32], *text, *why;

			units_format_duration((double)dr->ex->max_wait, dur, sizeof(dur));
			units_format_size(dr->memory, mem, sizeof(mem));
			text = xasprintf("no host of executor \"%s\" had %s free within its "
			                 "max_wait (%s)",
			                 dr->ex->name, dr->memory > 0 ? mem : "its default_memory",
			                 dur);
			why = rundir_failure_reason(RUNDIR_FAILURE_UNPLACED, text);
			free(text);
			dm_end_unstarted(dm, dr, STORE_FAILED, why);
			free(why);
		} else {
			struct dretry *rt = container_of(top, struct dretry, ev);
			const struct conf_job *cj = conf_job_find(dm->conf, rt->job);

			if (cj != NULL)
				dm_fire(dm, cj, rt->scheduled_at, STORE_RETRY, rt->attempt);
			dm_retry_free(dm, rt);
		}
	}
	dm_admit(dm);
	if (dm->retention_job != NULL && !dm->stopping) {
		dm_retention(dm, dm->retention_job);
		free(dm->retention_job);
		dm->retention_job = NULL;
	}
	dm_arm(dm);
}

void
dm_arm(struct daemon *dm)
{
	struct evheap_node *top = evheap_top(&dm->heap);
	int64_t delay;

	if (dm->stopping)
		return;
	if (top == NULL) {
		uv_timer_stop(&dm->timer);
		return;
	}
	delay = top->at - clock_real_ms();
	if (delay < 0)
		delay = 0;
	if (delay > DM_MAX_SLEEP_MS)
		delay = DM_MAX_SLEEP_MS;
	uv_timer_start(&dm->timer, dm_timer_cb, (uint64_t)delay, 0);
}

/* Handles what is queued at the next turn of the loop (not from inside exec's callbacks). */
void
dm_kick(struct daemon *dm)
{
	if (!dm->stopping)
		uv_timer_start(&dm->timer, dm_timer_cb, 0, 0);
}

/* --- start and stop ------------------------------------------------------------------- */

/* A run prepared for an instant that has not come when the daemon stops: withdrawn (row and
 * directory deleted, the job's state set back before the instant), so that the next start
 * sees the fire as not handled and applies the job's catch-up policy to it. A run started
 * ahead is withdrawn the same way only when its agent, cancelled by dm_stop while it held the
 * command, has ended without running it; otherwise it is left to its agent like any running
 * run, and the next start collects it. */
static void
dm_unprepare(struct daemon *dm, struct drun *dr)
{
	char *runs_dir = xasprintf("%s/runs/", dm->o->state_dir);
	bool started = dr->phase == DR_STARTED;
	struct store_run f;
	int rc;

	if (started) {
		struct rundir_result res;
		struct diag rd;
		bool held = false;

		diag_init(&rd);
		if (exec_run_alive(&dr->er) == 0 && rundir_result_read(dr->dir, &res, &rd) == 0) {
			held = res.outcome == RUNDIR_CANCELLED && res.exec_seconds < 0;
			rundir_result_free(&res);
		}
		diag_free(&rd);
		exec_run_detach(&dr->er); /* its handles close; dm_closed_cb frees DR */
		if (!held) {
			dlog(DLOG_WARN, dr->id, dr->job,
			     "started ahead and not withdrawn: left to its agent (the next start "
			     "collects it)");
			free(runs_dir);
			return;
		}
	}
	for (size_t i = 0; i < dm->njobs; i++)
		if (strcmp(dm->jobs[i].cj->name, dr->job) == 0 &&
		    dm->jobs[i].until >= dr->scheduled_at)
			dm_until_set(dm, &dm->jobs[i], dr->scheduled_at - 1);
	evheap_remove(&dm->heap, &dr->ev);
	dm_dequeue(dm, dr);
	dm_unlink_run(dm, dr);
	store_run_init(&f);
	f.state = STORE_CANCELLED;
	f.reason = xstrdup("the scheduler stopped before the run's instant");
	f.ended_at = rundir_now();
	rc = store_run_finish(dm->store, dr->id, &f, NULL, 0);
	/* already terminal: an eph runs that found no daemon listening any more (the socket is
	 * closed first) recorded the held agent's result, "cancelled"; withdrawn all the same */
	if (rc == 0 || (rc == -EALREADY && started))
		rc = store_run_delete(dm->store, dr->id);
	if (rc == 0 && dr->dir != NULL && strncmp(dr->dir, runs_dir, strlen(runs_dir)) == 0)
		(void)nftw(dr->dir, dm_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	if (rc < 0)
		dlog(DLOG_WARN, dr->id, dr->job,
		     "cannot withdraw the run prepared for its instant: %s", strerror(-rc));
	else
		dlog(DLOG_INFO, dr->id, dr->job,
		     "withdrawn: the scheduler stopped before its instant (the next start decides)");
	store_run_clear(&f);
	free(runs_dir);
	if (!started)
		drun_free(dr);
}

static int
dm_wait_event_cb(const struct rundir_event *e, void *arg)
{
	(void)arg;
	return strcmp(e->ev, "wait") == 0;
}

/* Whether the agent of DR, started ahead, holds its command for the instant (its "wait"
 * event is written): then a cancel ends the run at once, before the command. An agent still
 * preparing (checkout, venv) is not cancelled: it may take long, and its fire would be lost
 * if it recorded the cancel; it runs at its instant and the next start collects it. */
static bool
dm_holding(const struct drun *dr)
{
	return dr->not_before * 1000 > (double)clock_real_ms() &&
	       rundir_events_foreach(dr->dir, 0, dm_wait_event_cb, NULL, NULL, NULL) == 1;
}

#define DM_WITHDRAW_WAIT_MS 1000 /* how long a stop waits for held agents to end, in all */

/* At a stop, the runs started ahead whose agents hold their commands are cancelled, all at
 * once, then waited for together (a few ms: the agent is in ppoll on its signals), at most
 * DM_WITHDRAW_WAIT_MS; each is then withdrawn (dm_unprepare) or, if it ran the command after
 * all, left to its agent. Every other started run is left to its agent, a remote one too
 * (it runs at its instant; the next start follows it). */
static void
dm_stop_started(struct daemon *dm)
{
	struct timespec ts = { 0, 5 * 1000000L };
	int64_t until = clock_mono_ms() + DM_WITHDRAW_WAIT_MS;
	struct drun *dr, *nx;
	bool any = false;

	for (dr = dm->runs; dr != NULL; dr = dr->next) {
		/* a remote agent is not waited for here (the loop would have to turn): left to it
		 */
		dr->withdraw = dr->phase == DR_STARTED && !dr->ended && dr->ex->ops->pull == NULL &&
		               dm_holding(dr) && exec_run_cancel(&dr->er) == 0;
		any = any || dr->withdraw;
	}
	while (any && clock_mono_ms() < until) {
		any = false;
		for (dr = dm->runs; dr != NULL && !any; dr = dr->next)
			any = dr->withdraw && exec_run_alive(&dr->er) != 0;
		if (any)
			(void)nanosleep(&ts, NULL);
	}
	for (dr = dm->runs; dr != NULL; dr = nx) {
		nx = dr->next;
		if (dr->phase != DR_STARTED)
			continue;
		if (dr->withdraw) {
			dm_unprepare(dm, dr);
			continue;
		}
		if (dr->not_before * 1000 > (double)clock_real_ms())
			dlog(DLOG_INFO, dr->id, dr->job,
			     "started ahead, still preparing: left to its agent, which starts the "
			     "command at its instant (the next start collects it)");
		exec_run_detach(&dr->er);
	}
}

/* At a stop, a run whose command never started (waiting for its jitter, a slot or memory;
 * its code being resolved) is left as a kill -9 leaves it, not recorded: its command never
 * ran, so it is not lost. The next start runs it within its job's starting_deadline, or skips
 * it (reconcile.c); one whose code was still being resolved (its child stopped) is fired
 * again there. */
static void
dm_leave_unstarted(struct daemon *dm, struct drun *dr)
{
	dlog(DLOG_INFO, dr->id, dr->job,
	     "not started: left to the next start, which runs it (or skips it past its "
	     "starting_deadline)");
	evheap_remove(&dm->heap, &dr->ev);
	dm_dequeue(dm, dr);
	dm_unlink_run(dm, dr);
	drun_free(dr); /* a child resolving its code is stopped */
}

static void
dm_stop(struct daemon *dm, const char *why)
{
	struct drun *dr, *nx;

	if (dm->stopping)
		return;
	dm->stopping = true;
	dlog(DLOG_INFO, 0, NULL,
	     "stopping (%s); running agents go on and are collected at the next start", why);
	uv_timer_stop(&dm->timer);
	uv_close((uv_handle_t *)&dm->timer, NULL);
	uv_close((uv_handle_t *)&dm->reload_timer, NULL);
	uv_close((uv_handle_t *)&dm->sigterm, NULL);
	uv_close((uv_handle_t *)&dm->sigint, NULL);
	uv_close((uv_handle_t *)&dm->sighup, NULL);
	if (dm->watch_open)
		uv_close((uv_handle_t *)&dm->confwatch, NULL);
	dm_repo_stop(dm);
	if (dm->ctl_open)
		uv_close((uv_handle_t *)&dm->ctl, NULL);
	while (dm->clients != NULL)
		dm_client_close(dm->clients);
	while (dm->retries != NULL) {
		/* owed: the next start schedules it again (dm_resume_retries), from the store */
		dlog(DLOG_INFO, dm->retries->run_id, dm->retries->job,
		     "retry %d pending: the next start schedules it", dm->retries->attempt - 1);
		dm_retry_free(dm, dm->retries);
	}
	for (dr = dm->runs; dr != NULL; dr = nx) {
		nx = dr->next;
		if (dr->phase != DR_STARTED && dr->check_conc)
			dm_unprepare(dm, dr);
		else if (dr->phase != DR_STARTED)
			dm_leave_unstarted(dm, dr);
	}
	dm_stop_started(dm);
	dm_executors_stop(dm); /* their connections end; the remote agents go on */
	/* what is still queued stays in the outbox: the next start sends it */
	dm_mail_stop(dm);
	dm_upload_stop(dm); /* what is queued is resumed by the next start */
}

static void
dm_signal_cb(uv_signal_t *h, int signum)
{
	struct daemon *dm = h->data;

	if (signum == SIGHUP)
		dm_reload(dm, "SIGHUP");
	else
		dm_stop(dm, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int
dm_lock(struct daemon *dm)
{
	char *path = xasprintf("%s/%s", dm->o->state_dir, CTL_LOCK), text[32];
	int n;

	dm->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (dm->lockfd < 0) {
		fprintf(stderr, "eph daemon: cannot open %s: %s\n", path, strerror(errno));
		free(path);
		return -1;
	}
	if (flock(dm->lockfd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t got =
		        errno == EWOULDBLOCK ? pread(dm->lockfd, text, sizeof(text) - 1, 0) : -1;

		if (got > 0) {
			text[got] = '\0';
			text[strcspn(text, "\n")] = '\0';
			fprintf(stderr, "eph daemon: already running (pid %s)\n", text);
		} else {
			fprintf(stderr, "eph daemon: cannot lock %s: %s\n", path,
			        errno == EWOULDBLOCK ? "held by another process" : strerror(errno));
		}
		free(path);
		return -1;
	}
	n = snprintf(text, sizeof(text), "%d\n", (int)getpid());
	if (ftruncate(dm->lockfd, 0) < 0 || pwrite(dm->lockfd, text, (size_t)n, 0) != n)
		fprintf(stderr, "eph daemon: cannot write the pid into %s: %s\n", path,
		        strerror(errno));
	free(path);
	return 0;
}

static int
dm_open(struct daemon *dm)
{
	char *runs = xasprintf("%s/runs", dm->o->state_dir);
	char *db = xasprintf("%s/eph.db", dm->o->state_dir);
	struct diag d;
	int rc;

	diag_init(&d);
	rc = fsio_mkdirs(runs, 0700);
	if (rc < 0)
		fprintf(stderr, "eph daemon: cannot create %s: %s\n", runs, strerror(-rc));
	else if (dm_lock(dm) < 0)
		rc = -EBUSY;
	else if (dm->o->from_repo != NULL && (rc = dm_repo_open(dm)) < 0)
		; /* said on stderr */
	else if (dm->o->from_repo == NULL && (rc = conf_load(dm->conf_path, &dm->conf, &d)) < 0)
		diag_print(&d, stderr);
	else if ((rc = store_open(db, &dm->store, &d)) < 0)
		diag_print(&d, stderr);
	else if ((rc = instance_get(dm->o->state_dir, dm->instance, &d)) < 0)
		diag_print(&d, stderr);
	diag_free(&d);
	free(runs);
	free(db);
	return rc;
}

int
daemon_run(const struct daemon_opts *o)
{
	struct daemon *dm = xcalloc(1, sizeof(*dm));
	char *copy;
	int rc, exit = 1;

	dm->o = o;
	dm->lockfd = -1;
	dm->conf_path = xstrdup(o->conf_path);
	copy = xstrdup(o->conf_path);
	dm->conf_base = xstrdup(basename(copy));
	free(copy);
	dlog_setup(stderr, o->log_json);
	/* what it starts (eph fetch, agents, commands calling eph) finds the same state */
	if (setenv("EPH_STATE", o->state_dir, 1) < 0) {
		fprintf(stderr, "eph daemon: cannot set EPH_STATE: %s\n", strerror(errno));
		goto out;
	}
	evheap_init(&dm->heap);
	srandom((unsigned)(getpid() ^ clock_real_ms()));
	if ((rc = dm_open(dm)) < 0) {
		exit = rc == -EINTR ? 0 : 1; /* stopped during the first fetch (--from-repo) */
		goto out;
	}
	uv_loop_init(&dm->loop);
	if (dm_listen(dm) < 0) {
		if (dm->ctl_open)
			uv_close((uv_handle_t *)&dm->ctl, NULL);
		uv_run(&dm->loop, UV_RUN_DEFAULT);
		uv_loop_close(&dm->loop);
		goto out;
	}
	uv_timer_init(&dm->loop, &dm->timer);
	uv_timer_init(&dm->loop, &dm->reload_timer);
	dm->timer.data = dm->reload_timer.data = dm;
	uv_signal_init(&dm->loop, &dm->sigterm);
	uv_signal_init(&dm->loop, &dm->sigint);
	uv_signal_init(&dm->loop, &dm->sighup);
	dm->sigterm.data = dm->sigint.data = dm->sighup.data = dm;
	uv_signal_start(&dm->sigterm, dm_signal_cb, SIGTERM);
	uv_signal_start(&dm->sigint, dm_signal_cb, SIGINT);
	uv_signal_start(&dm->sighup, dm_signal_cb, SIGHUP);
	if (dm->repo == NULL) {
		uv_fs_event_init(&dm->loop, &dm->confwatch);
		dm->confwatch.data = dm;
		dm->watch_open = true;
		rc = uv_fs_event_start(&dm->confwatch, dm_confwatch_cb, dm->conf->dir, 0);
		if (rc < 0)
			dlog(DLOG_WARN, 0, NULL, "cannot watch %s (%s): reload with SIGHUP",
			     dm->conf->dir, uv_strerror(rc));
	}
	(void)dm_executors_apply(dm, dm->conf); /* one that cannot be made is logged */
	dm_repo_arm(dm);
	dm_mail_kick(dm);        /* at once: what the outbox holds (a previous process's) is sent */
	dm_upload_reconcile(dm); /* the runs recorded without their upload queued */
	dm_upload_kick(dm);      /* and the uploads a previous process left queued are resumed */
	dm_reconcile(dm);
	dm_build_jobs(dm, NULL, 0, NULL, true);
	dm_admit(dm);
	dm_arm(dm);
	(void)malloc_trim(0); /* what parsing and start-up used goes back: the daemon stays small */
	/* said once everything is in place: "started" means the jobs are armed */
	if (dm->repo != NULL)
		dlog(DLOG_INFO, 0, NULL, "following %s%s%s: fetched every %llds", dm_repo_shown(dm),
		     o->branch != NULL ? ", branch " : "", o->branch != NULL ? o->branch : "",
		     (long long)(dm->conf->source.refresh > 0 ? dm->conf->source.refresh : 1));
	dlog(DLOG_INFO, 0, NULL, "started: pid %d, %zu jobs from %s, state in %s", (int)getpid(),
	     dm->conf->njobs, dm->conf_path, o->state_dir);
	uv_run(&dm->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&dm->loop) != 0)
		dlog(DLOG_ERROR, 0, NULL, "internal error: handles left open at exit");
	dlog(DLOG_INFO, 0, NULL, "stopped");
	exit = 0;
out:
	if (dm->sock_path != NULL && dm->ctl_open)
		(void)unlink(dm->sock_path);
	dm_clear_jobs(dm);
	dm_executors_free(dm);
	dm_repo_free(dm);
	evheap_free(&dm->heap);
	store_close(dm->store);
	conf_free(dm->conf);
	if (dm->lockfd >= 0)
		close(dm->lockfd);
	free(dm->sock_path);
	free(dm->retention_job);
	free(dm->conf_path);
	free(dm->conf_base);
	free(dm);
	return exit;
}
