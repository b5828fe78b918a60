/* src/daemon/runs.c: live runs: start, admission, retries, mail, retention, the end of a run. */
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
#include "exec/sizing.h"
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
#include "util/units.h"
#include "util/xalloc.h"

static void
dm_hms(int64_t t, char *out, size_t n)
{
	struct tz_tm tm;

	tz_to_local(NULL, t, &tm);
	snprintf(out, n, "%02d:%02d:%02d", tm.hour, tm.min, tm.sec);
}

/* --- the store's view of a job ------------------------------------------------------- */

/* The instant up to which JOB's fires are handled: the durable job state, or the latest
 * scheduled or caught-up run if it is later (a crash between creating a run and recording the
 * job state must not fire it twice). -ENOENT for a job never scheduled. */
int
dm_until_get(struct daemon *dm, const char *job, int64_t *until)
{
	struct store_run *runs = NULL;
	size_t n = 0;
	int rc = store_job_state_get(dm->store, job, until);

	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (store_runs_list(dm->store, job, 20, &runs, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (runs[i].trigger != STORE_SCHEDULE && runs[i].trigger != STORE_CATCHUP)
				continue;
			if (rc == -ENOENT || runs[i].scheduled_at > *until)
				*until = runs[i].scheduled_at;
			rc = 0;
			break;
		}
		store_runs_free(runs, n);
	}
	return rc;
}

void
dm_until_set(struct daemon *dm, struct djob *j, int64_t until)
{
	int rc;

	j->until = until;
	rc = store_job_state_set(dm->store, j->cj->name, until);
	if (rc < 0)
		dlog(DLOG_ERROR, 0, j->cj->name, "cannot record the schedule state: %s",
		     store_errmsg(dm->store));
}

/* --- live runs ----------------------------------------------------------------------- */

void
drun_free(struct drun *dr)
{
	dm_prep_drop(dr); /* a run ended while preparing: its child is stopped */
	free(dr->job);
	free(dr->dir);
	free(dr->subject);
	exec_secrets_clear(&dr->secrets);
	free(dr);
}

void
dm_unlink_run(struct daemon *dm, struct drun *dr)
{
	if (dr->prev != NULL)
		dr->prev->next = dr->next;
	else if (dm->runs == dr)
		dm->runs = dr->next;
	if (dr->next != NULL)
		dr->next->prev = dr->prev;
	dr->prev = dr->next = NULL;
}

void
dm_dequeue(struct daemon *dm, struct drun *dr)
{
	struct drun **pp = &dm->qhead, *last = NULL;

	while (*pp != NULL && *pp != dr) {
		last = *pp;
		pp = &(*pp)->qnext;
	}
	if (*pp == NULL)
		return;
	*pp = dr->qnext;
	if (dm->qtail == dr)
		dm->qtail = last;
	dr->qnext = NULL;
}

void
dm_enqueue(struct daemon *dm, struct drun *dr)
{
	dr->phase = DR_READY;
	dr->qnext = NULL;
	if (dm->qtail != NULL)
		dm->qtail->qnext = dr;
	else
		dm->qhead = dr;
	dm->qtail = dr;
}

static void
dm_set_waiting(struct daemon *dm, struct drun *dr)
{
	struct store_run row;

	if (dr->marked_waiting)
		return;
	dr->marked_waiting = true;
	store_run_init(&row);
	if (store_run_get(dm->store, dr->id, &row) == 0) {
		row.state = STORE_WAITING;
		if (store_run_update(dm->store, dr->id, &row) < 0)
			dlog(DLOG_WARN, dr->id, dr->job, "cannot record the run as waiting: %s",
			     store_errmsg(dm->store));
	}
	store_run_clear(&row);
}

bool
dm_retryable(enum store_state st)
{
	return st == STORE_FAILED || st == STORE_OOM || st == STORE_TIMEOUT || st == STORE_LOST;
}

/* What queuing a message returned (RC: 1 queued, 0 nothing to send, -errno with why in D):
 * eph-mail is started for a queued one; a failure is logged (about RUN_ID of JOB, if any). */
void
dm_mail_queued(struct daemon *dm, int rc, const struct diag *d, int64_t run_id, const char *job)
{
	if (rc == 1) {
		dm_mail_kick(dm);
	} else if (rc < 0) {
		char *msg = d->n > 0 ? diag_format(d, 0) : xstrdup(strerror(-rc));

		dlog(DLOG_ERROR, run_id, job, "mail: %s", msg);
		free(msg);
	}
}

/* Run RUN_ID was recorded terminal: queues the mail its job's notify policy asks for (once per
 * run, however often called) and has the sender look at the outbox. WILL_RETRY: the daemon
 * scheduled a further attempt of the same run. SUBJECT: its commit's subject line, as its
 * preparation read it (no git on the loop: NULL, the mail has none). */
static void
dm_notify_subject(struct daemon *dm, int64_t run_id, const char *job, bool will_retry,
                  const char *subject)
{
	struct diag d;
	int rc;

	dm_upload_run(dm, run_id, job); /* its results, if any, to results_store */
	diag_init(&d);
	rc = notify_run_finished(dm->store, dm->conf, NULL, run_id, will_retry, subject, &d);
	dm_mail_queued(dm, rc, &d, run_id, job);
	diag_free(&d);
}

/* dm_notify_subject without a subject: a run that never got its code, or one a previous
 * process prepared (reconcile.c). */
void
dm_notify(struct daemon *dm, int64_t run_id, const char *job, bool will_retry)
{
	dm_notify_subject(dm, run_id, job, will_retry, NULL);
}

/* Schedules attempt ATTEMPT of JOB's fire SCHEDULED_AT (after run RUN_ID) at AT_MS. */
static void
dm_retry_push(struct daemon *dm, const char *job, int64_t scheduled_at, int attempt, int64_t run_id,
              int64_t at_ms)
{
	struct dretry *rt = xcalloc(1, sizeof(*rt));

	evheap_node_init(&rt->ev, DM_EV_RETRY);
	rt->job = xstrdup(job);
	rt->run_id = run_id;
	rt->scheduled_at = scheduled_at;
	rt->attempt = attempt;
	rt->next = dm->retries;
	if (dm->retries != NULL)
		dm->retries->prev = rt;
	dm->retries = rt;
	evheap_push(&dm->heap, &rt->ev, at_ms);
	dm_arm(dm);
}

/* Whether run RUN_ID of CJ ended oom and gets a grow retry (retry_on_oom: grow, below max):
 * its limit, else 0. */
static int64_t
dm_grows(struct daemon *dm, const struct conf_job *cj, int64_t run_id)
{
	struct store_run r;
	int64_t limit = 0;

	if (cj->retry_on_oom != CONF_OOM_RETRY_GROW)
		return 0;
	if (store_run_get(dm->store, run_id, &r) == 0 && sizing_grows(cj, &r))
		limit = r.memory_limit;
	store_run_clear(&r);
	return limit;
}

/* Schedules the next attempt of a run whose attempt ATTEMPT (run RUN_ID) was unsuccessful, if
 * its job has retries left: its backoff after ENDED_MS (UTC ms), or now if that is past. A run
 * that ended oom, of a job with retry_on_oom: grow, is retried at once as the same attempt
 * (not counted against retries), with the next size up. Returns true when one is scheduled. */
bool
dm_schedule_retry_after(struct daemon *dm, const char *job, int64_t scheduled_at, int attempt,
                        int64_t run_id, int64_t ended_ms)
{
	const struct conf_job *cj = conf_job_find(dm->conf, job);
	int64_t delay, now = clock_real_ms();
	int64_t grew;

	if (cj == NULL)
		return false;
	if ((grew = dm_grows(dm, cj, run_id)) > 0) {
		char a[32], b[32];

		/* the same attempt again, at once: sizing_decide gives it the next size up */
		sizing_format((uint64_t)grew, a, sizeof(a));
		sizing_format(sizing_grow((uint64_t)grew, cj->memory_max), b, sizeof(b));
		dlog(DLOG_INFO, run_id, job,
		     "oom at %s: retrying at once with %s (retry_on_oom: grow)", a, b);
		dm_retry_push(dm, job, scheduled_at, attempt, run_id, now);
		return true;
	}
	if (attempt > cj->retries)
		return false;
	delay = plan_backoff(cj->retry_backoff, attempt);
	delay = (ended_ms + delay * 1000 - now + 999) / 1000;
	if (delay < 0)
		delay = 0;
	dlog(DLOG_INFO, run_id, job, "retry %d of %d in %llds", attempt, cj->retries,
	     (long long)delay);
	dm_retry_push(dm, job, scheduled_at, attempt + 1, run_id, now + delay * 1000);
	return true;
}

static bool
dm_schedule_retry(struct daemon *dm, const char *job, int64_t scheduled_at, int attempt,
                  int64_t run_id)
{
	return dm_schedule_retry_after(dm, job, scheduled_at, attempt, run_id, clock_real_ms());
}

/* Whether run R, left by a previous process, still gets the retry that process scheduled or
 * would have: it is its job's latest run, ended unsuccessfully with attempts left, and the
 * retry's time is not more than starting_deadline past. Sets *ENDED_MS to its end. */
bool
dm_retry_owed(struct daemon *dm, const struct store_run *r, int64_t *ended_ms)
{
	const struct conf_job *cj = conf_job_find(dm->conf, r->job);
	struct store_run latest;
	bool owed = false, grows = cj != NULL && sizing_grows(cj, r);
	int64_t due;

	if (cj == NULL || !dm_retryable(r->state) || (r->attempt > cj->retries && !grows))
		return false;
	*ended_ms = (int64_t)((r->ended_at > 0 ? r->ended_at : r->created_at) * 1000);
	due = *ended_ms + (grows ? 0 : plan_backoff(cj->retry_backoff, r->attempt) * 1000);
	if (cj->starting_deadline > 0 && clock_real_ms() - due > cj->starting_deadline * 1000)
		return false;
	store_run_init(&latest);
	if (store_run_latest(dm->store, r->job, &latest) == 0)
		owed = latest.id == r->id;
	store_run_clear(&latest);
	return owed;
}

void
dm_retry_free(struct daemon *dm, struct dretry *rt)
{
	if (rt->prev != NULL)
		rt->prev->next = rt->next;
	else
		dm->retries = rt->next;
	if (rt->next != NULL)
		rt->next->prev = rt->prev;
	evheap_remove(&dm->heap, &rt->ev);
	free(rt->job);
	free(rt);
}

static void
dm_log_outcome(struct drun *dr, const struct store_run *f)
{
	char dur[32];
	double d = f->ended_at > 0 && f->started_at > 0 ? f->ended_at - f->started_at : 0;
	enum dlog_level lvl = f->state == STORE_SUCCEEDED   ? DLOG_INFO
	                      : f->state == STORE_CANCELLED ? DLOG_INFO
	                                                    : DLOG_WARN;

	units_format_duration(d, dur, sizeof(dur));
	if (f->state == STORE_SUCCEEDED || f->reason == NULL)
		dlog(lvl, dr->id, dr->job, "%s after %s", store_state_name(f->state), dur);
	else
		dlog(lvl, dr->id, dr->job, "%s after %s: %s", store_state_name(f->state), dur,
		     f->reason);
}

int
dm_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

/* Deletes a few runs of JOB past the retention limits (oldest first), rows and directories;
 * called after one of its runs ended, off the hot path. */
void
dm_retention(struct daemon *dm, const char *job)
{
	const struct conf_retention *rt = &dm->conf->retention;
	char *runs_dir = xasprintf("%s/runs/", dm->o->state_dir);
	struct store_run *runs = NULL;
	size_t n = 0, deleted = 0;
	double cutoff = (double)time(NULL) - (double)rt->days * 86400;

	if (store_runs_list(dm->store, job, 0, &runs, &n) < 0) {
		free(runs_dir);
		return;
	}
	/* newest first: the oldest are at the end */
	for (size_t i = n; i-- > 0 && deleted < DM_RETENTION_STEP;) {
		const struct store_run *r = &runs[i];
		bool old = rt->days > 0 && r->created_at < cutoff;
		bool many = rt->runs_per_job > 0 && i >= (size_t)rt->runs_per_job;
		int rc;

		if (!store_state_terminal(r->state) || (!old && !many))
			continue;
		rc = store_run_delete(dm->store, r->id);
		if (rc == -EAGAIN)
			continue; /* its results are still to be uploaded: kept until then */
		if (rc < 0) {
			dlog(DLOG_WARN, r->id, job, "retention: cannot delete the run: %s",
			     strerror(-rc));
			break;
		}
		/* only ever a directory of ours */
		if (r->run_dir != NULL && strncmp(r->run_dir, runs_dir, strlen(runs_dir)) == 0 &&
		    nftw(r->run_dir, dm_rm_cb, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
			dlog(DLOG_WARN, r->id, job, "retention: cannot remove %s: %s", r->run_dir,
			     strerror(errno));
		deleted++;
	}
	if (deleted > 0)
		dlog(DLOG_INFO, 0, job, "retention: deleted the %zu oldest runs", deleted);
	store_runs_free(runs, n);
	free(runs_dir);
}

void
dm_done_cb(struct exec_run *er, const struct store_run *final, int rc, void *arg)
{
	struct drun *dr = arg;
	struct daemon *dm = dr->dm;
	bool retry;

	dr->ended = true;
	if (dr->phase == DR_STARTED) {
		dm->nstarted--;
		dr->ex->ops->release(dr->ex, er, dr->memory);
	}
	dm_unlink_run(dm, dr);
	if (final == NULL) {
		dlog(DLOG_ERROR, dr->id, dr->job, "cannot record the run's end: %s", strerror(-rc));
		return;
	}
	dm_log_outcome(dr, final);
	if (dm->stopping) { /* the next start makes a retry owed (dm_resume_retries) */
		int64_t ended_ms;

		dm_notify_subject(dm, dr->id, dr->job, dm_retry_owed(dm, final, &ended_ms),
		                  dr->subject);
		return;
	}
	retry = dm_retryable(final->state) &&
	        dm_schedule_retry(dm, dr->job, dr->scheduled_at, dr->attempt, dr->id);
	dm_notify_subject(dm, dr->id, dr->job, retry, dr->subject);
	free(dm->retention_job);
	dm->retention_job = xstrdup(dr->job);
	dm_kick(dm);
}

void
dm_closed_cb(struct exec_run *er, void *arg)
{
	struct drun *dr = arg;

	struct daemon *dm = dr->dm;

	exec_run_release(er);
	drun_free(dr);
	dm_executors_gc(dm);
}

static void
dm_start(struct daemon *dm, struct drun *dr)
{
	struct exec_hooks hooks = { NULL, dm_done_cb, dm_closed_cb, dr };
	bool ahead = dr->not_before * 1000 > (double)clock_real_ms();
	char when[16];
	int rc;

	dr->phase = DR_STARTED;
	dm->nstarted++;
	evheap_remove(&dm->heap, &dr->ev); /* its max_wait, if it waited */
	exec_run_init(&dr->er, dr->ex, dr->id, dr->dir, NULL, &hooks);
	exec_secrets_move(&dr->er.secrets, &dr->secrets);
	dr->ex->ops->reserve(dr->ex, &dr->er, dr->memory);
	dr->er.not_before = dr->not_before;
	dm_hms(dr->scheduled_at, when, sizeof(when));
	rc = exec_run_start(&dr->er);
	if (rc < 0) /* already recorded failed; done and closed follow */
		dlog(DLOG_ERROR, dr->id, dr->job, "cannot start: %s", strerror(-rc));
	else if (dr->er.agent_pid == 0)
		dlog(DLOG_INFO, dr->id, dr->job, "starting on executor %s (%s %s%s)", dr->ex->name,
		     store_trigger_name(dr->trigger), when,
		     ahead ? "; ahead: the command waits for its instant" : "");
	else
		dlog(DLOG_INFO, dr->id, dr->job, "started (%s %s, pid %d%s)",
		     store_trigger_name(dr->trigger), when, (int)dr->er.agent_pid,
		     ahead ? "; ahead: the command waits for its instant" : "");
}

/* Whether an earlier run of the queue, before DR, waits for a place of DR's executor: then DR
 * waits too (fire order: a big run is not overtaken by smaller ones of its executor). */
static bool
dm_blocked_before(struct daemon *dm, const struct drun *dr)
{
	for (struct drun *w = dm->qhead; w != NULL && w != dr; w = w->qnext)
		if (w->ex == dr->ex)
			return true;
	return false;
}

static void
dm_log_wait(struct daemon *dm, struct drun *w, const char *what)
{
	if (w->logged_wait)
		return;
	w->logged_wait = true;
	dlog(DLOG_INFO, w->id, w->job, "waiting for %s", what);
	dm_set_waiting(dm, w);
	/* an executor that places runs on hosts gives up after its max_wait */
	if (w->ex->max_wait > 0) {
		w->ev.kind = DM_EV_UNPLACED;
		evheap_remove(&dm->heap, &w->ev);
		evheap_push(&dm->heap, &w->ev, clock_real_ms() + w->ex->max_wait * 1000);
		dm_arm(dm);
	}
}

/* Starts the runs of the queue that fit: a max_parallel slot, and a place in their executor
 * (memory: the local budget, a host of a pool), in fire order per executor: a run that does
 * not fit holds back the later runs of its executor, not those of others. */
void
dm_admit(struct daemon *dm)
{
	struct drun *dr = dm->qhead;

	while (dr != NULL && !dm->stopping) {
		struct drun *next = dr->qnext;
		bool slot = dm->conf->max_parallel <= 0 || dm->nstarted < dm->conf->max_parallel;

		if (!slot) {
			for (struct drun *w = dm->qhead; w != NULL; w = w->qnext)
				dm_log_wait(dm, w, "a slot (max_parallel)");
			return;
		}
		if (dm_blocked_before(dm, dr) || !dr->ex->ops->fits(dr->ex, dr->memory)) {
			dm_log_wait(
			        dm, dr,
			        dr->ex->ops == &exec_local_ops
			                ? "memory"
			                : "a place (no host of its executor has the memory free)");
		} else {
			dm_dequeue(dm, dr);
			dm_start(dm, dr);
		}
		dr = next;
	}
}

/* Settles a run that never started in terminal state ST. */
void
dm_end_unstarted(struct daemon *dm, struct drun *dr, enum store_state st, const char *reason)
{
	struct store_run f;
	int rc;

	evheap_remove(&dm->heap, &dr->ev);
	dm_dequeue(dm, dr);
	dm_unlink_run(dm, dr);
	store_run_init(&f);
	f.state = st;
	f.reason = xstrdup(reason);
	f.ended_at = rundir_now();
	rc = store_run_finish(dm->store, dr->id, &f, NULL, 0);
	if (rc < 0 && rc != -EALREADY)
		dlog(DLOG_ERROR, dr->id, dr->job, "cannot record the run's end: %s",
		     store_errmsg(dm->store));
	else
		dlog(DLOG_INFO, dr->id, dr->job, "%s: %s", store_state_name(f.state), reason);
	if (rc == 0) {
		struct store_run row;
		int64_t ended_ms;
		bool owed = false;

		/* at a stop, a retry owed is made by the next start: its mail waits for it */
		store_run_init(&row);
		if (dm->stopping && store_run_get(dm->store, dr->id, &row) == 0)
			owed = dm_retry_owed(dm, &row, &ended_ms);
		store_run_clear(&row);
		dm_notify_subject(dm, dr->id, dr->job, owed, dr->subject);
	}
	store_run_clear(&f);
	drun_free(dr);
}

int
dm_cancel_run(struct daemon *dm, struct drun *dr, const char *why)
{
	int rc;

	if (dr->phase != DR_STARTED) {
		dm_end_unstarted(dm, dr, STORE_CANCELLED, why);
		return 0;
	}
	rc = exec_run_cancel(&dr->er);
	if (rc == 0)
		dlog(DLOG_INFO, dr->id, dr->job, "cancelling: %s", why);
	return rc;
}

/* Creates a run of CJ and queues it to start at START_MS (UTC ms; now if past) plus its
 * jitter; with CHECK_CONC, the job's concurrency policy is applied then. Its row is written
 * now; its code is resolved off the loop (dm_prep_start: a fetch may take minutes), and
 * dm_prepared goes on from there. Returns its id, 0 when it could not even be recorded. */
int64_t
dm_create(struct daemon *dm, const struct conf_job *cj, enum store_trigger trig, int64_t at,
          int attempt, int64_t start_ms, bool check_conc)
{
	struct executor *ex = dm_executor(dm, cj->executor != NULL ? cj->executor : "local");
	struct exec_new how = { trig, at, attempt, 0, 0 };
	struct drun *dr;
	struct diag d;
	int64_t id = 0;

	if (ex == NULL) {
		dlog(DLOG_ERROR, 0, cj->name, "executor \"%s\" is not available", cj->executor);
		return 0;
	}
	if (cj->jitter > 0 && trig != STORE_MANUAL)
		how.jitter = (int64_t)((uint64_t)random() % (uint64_t)(cj->jitter + 1));
	/* prepared ahead: whenever its agent starts, the command waits for its instant */
	if (check_conc && start_ms > clock_real_ms())
		how.not_before = (double)start_ms / 1000.0 + (double)how.jitter;
	diag_init(&d);
	if (exec_create_row(dm->store, cj, &how, &id, &d) < 0) {
		char *msg = diag_format(&d, 0);

		dlog(DLOG_ERROR, 0, cj->name, "cannot create a run: %s", msg);
		free(msg);
		diag_free(&d);
		return 0;
	}
	diag_free(&d);
	dr = xcalloc(1, sizeof(*dr));
	dr->dm = dm;
	evheap_node_init(&dr->ev, DM_EV_START);
	dr->ex = ex;
	dr->job = xstrdup(cj->name);
	dr->id = id;
	/* as decided for it (exec/sizing.h); what it counts for is its executor's to say */
	dr->memory = exec_created_memory(dm->store, id, cj->memory);
	dr->trigger = trig;
	dr->scheduled_at = at;
	dr->start_ms = start_ms;
	dr->jitter = how.jitter;
	dr->attempt = attempt;
	dr->not_before = how.not_before;
	dr->check_conc = check_conc;
	dr->next = dm->runs;
	if (dm->runs != NULL)
		dm->runs->prev = dr;
	dm->runs = dr;
	dm_prep_start(dm, dr); /* may end in dm_prepared at once (and free DR) */
	return id;
}

/* Whether DR, prepared ahead of its instant (START_MS), is started at once ("started ahead"):
 * only when what its instant would decide is certain now: no jitter; no run of the job that
 * forbid or replace would act on (allow starts it regardless); nothing queued and no run or
 * retry due before it, nor one being prepared for an earlier instant (fire order); and it is
 * admitted now (a max_parallel slot, the local memory budget), which dm_start reserves from
 * now. Its agent prepares everything and holds the command until the instant (spec.json
 * not_before). */
static bool
dm_ahead(struct daemon *dm, const struct drun *dr, const struct conf_job *cj)
{
	int64_t start_ms = dr->start_ms;
	bool ahead;

	ahead = dr->check_conc && dr->jitter == 0 && start_ms > clock_real_ms() && !dm->stopping &&
	        dm->qhead == NULL &&
	        (dm->conf->max_parallel <= 0 || dm->nstarted < dm->conf->max_parallel) &&
	        dr->ex->ops->fits(dr->ex, dr->memory);
	for (struct drun *o = dm->runs; o != NULL && ahead; o = o->next)
		if (o != dr &&
		    ((strcmp(o->job, cj->name) == 0 && cj->concurrency != CONF_CONC_ALLOW) ||
		     (o->phase == DR_DELAYED && o->ev.at <= start_ms) ||
		     (o->phase == DR_PREPARING && o->start_ms <= start_ms)))
			ahead = false;
	for (struct dretry *rt = dm->retries; rt != NULL && ahead; rt = rt->next)
		if (rt->ev.at <= start_ms)
			ahead = false;
	return ahead;
}

/* A run whose code could not be had (REASON), recorded failed by exec_create_finish. */
static void
dm_prep_failed(struct daemon *dm, struct drun *dr)
{
	struct store_run f;

	store_run_init(&f);
	if (store_run_get(dm->store, dr->id, &f) == 0)
		dlog(DLOG_WARN, dr->id, dr->job, "failed before it started: %s",
		     f.reason != NULL ? f.reason : "?");
	store_run_clear(&f);
	dm_notify(dm, dr->id, dr->job,
	          dm_schedule_retry(dm, dr->job, dr->scheduled_at, dr->attempt, dr->id));
}

void
dm_prepared(struct daemon *dm, struct drun *dr, const struct source_pin *pin, const char *err)
{
	const struct conf_job *cj = conf_job_find(dm->conf, dr->job);
	struct exec_new how = { dr->trigger, dr->scheduled_at, dr->attempt, dr->jitter,
		                dr->not_before };
	int64_t start_ms = dr->start_ms;
	struct diag d;
	char *dir = NULL;
	int rc;

	if (cj == NULL) {
		/* a reload removed the job while its run was prepared */
		dm_end_unstarted(dm, dr, STORE_CANCELLED,
		                 "the job was removed from the jobs file before the run started");
		return;
	}
	diag_init(&d);
	rc = exec_create_finish(dm->store, dm->o->state_dir, dm->conf, cj, &how, dr->id, pin, err,
	                        &dir, &d);
	dm_source_alarm(dm); /* the run may have fetched, or failed to */
	if (rc != 0) {
		if (rc < 0) {
			char *msg = d.n > 0 ? diag_format(&d, 0) : xstrdup(strerror(-rc));

			dlog(DLOG_ERROR, dr->id, dr->job, "cannot create a run: %s", msg);
			free(msg);
		}
		diag_free(&d);
		dm_unlink_run(dm, dr);
		if (rc == 1)
			dm_prep_failed(dm, dr);
		drun_free(dr);
		return;
	}
	diag_free(&d);
	dr->dir = dir;
	/* where its secrets are, as the configuration that wrote its spec.json says: read when
	 * it starts */
	exec_secrets_of_job(&dr->secrets, dm->conf, cj);
	if (dm_ahead(dm, dr, cj)) {
		dr->check_conc = false;
		dm_start(dm, dr);
		return;
	}
	if (start_ms < clock_real_ms())
		start_ms = clock_real_ms();
	if (how.jitter > 0 || start_ms > clock_real_ms()) {
		dr->phase = DR_DELAYED;
		if (how.jitter > 0) {
			dlog(DLOG_INFO, dr->id, dr->job, "jitter: starts in %llds",
			     (long long)how.jitter);
			dm_set_waiting(dm, dr);
		}
		evheap_push(&dm->heap, &dr->ev, start_ms + how.jitter * 1000);
		dm_arm(dm);
	} else if (dr->check_conc) {
		dm_prepared_due(dm, dr); /* its instant came while it was being prepared */
	} else {
		dm_enqueue(dm, dr);
	}
}
