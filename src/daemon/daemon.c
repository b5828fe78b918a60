/* src/daemon/daemon.c: the scheduler's loop, its policies, its control socket and reload. */
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
#include "util/units.h"
#include "util/xalloc.h"

#define DM_LATE_S         5       /* a fire this late is still on time; older ones are missed */
#define DM_MAX_SLEEP_MS   3600000 /* re-check the wall clock at least hourly (clock jumps) */
#define DM_RELOAD_WAIT_MS 200     /* coalesce the events of one save of the jobs file */
#define DM_PREP_MS        150     /* a fire's run is prepared this long before its instant */
#define DM_PREP_SOURCE_MS 500     /* with a repository source: a child resolves its code first */
#define DM_RETENTION_STEP 5       /* runs deleted after a run ends, at most */

/* A retry due later. */
struct dretry {
	struct evheap_node ev; /* DM_EV_RETRY */
	struct dretry *prev, *next;
	char *job;
	int64_t run_id; /* the attempt that failed: mailed if the retry is dropped */
	int64_t scheduled_at;
	int attempt;
};

static void dm_arm(struct daemon *dm);

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
static int
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

static void
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

static void
drun_free(struct drun *dr)
{
	dm_prep_drop(dr); /* a run ended while preparing: its child is stopped */
	free(dr->job);
	free(dr->dir);
	free(dr->subject);
	free(dr);
}

static void
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

static void
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
static void
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

/* Schedules the next attempt of a run whose attempt ATTEMPT (run RUN_ID) was unsuccessful, if
 * its job has retries left: its backoff after ENDED_MS (UTC ms), or now if that is past.
 * Returns true when one is scheduled. */
bool
dm_schedule_retry_after(struct daemon *dm, const char *job, int64_t scheduled_at, int attempt,
                        int64_t run_id, int64_t ended_ms)
{
	const struct conf_job *cj = conf_job_find(dm->conf, job);
	struct dretry *rt;
	int64_t delay, now = clock_real_ms();

	if (cj == NULL || attempt > cj->retries)
		return false;
	delay = plan_backoff(cj->retry_backoff, attempt);
	delay = (ended_ms + delay * 1000 - now + 999) / 1000;
	if (delay < 0)
		delay = 0;
	rt = xcalloc(1, sizeof(*rt));
	evheap_node_init(&rt->ev, DM_EV_RETRY);
	rt->job = xstrdup(job);
	rt->run_id = run_id;
	rt->scheduled_at = scheduled_at;
	rt->attempt = attempt + 1;
	rt->next = dm->retries;
	if (dm->retries != NULL)
		dm->retries->prev = rt;
	dm->retries = rt;
	evheap_push(&dm->heap, &rt->ev, now + delay * 1000);
	dlog(DLOG_INFO, run_id, job, "retry %d of %d in %llds", attempt, cj->retries,
	     (long long)delay);
	dm_arm(dm);
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
	bool owed = false;
	int64_t due;

	if (cj == NULL || !dm_retryable(r->state) || r->attempt > cj->retries)
		return false;
	*ended_ms = (int64_t)((r->ended_at > 0 ? r->ended_at : r->created_at) * 1000);
	due = *ended_ms + plan_backoff(cj->retry_backoff, r->attempt) * 1000;
	if (cj->starting_deadline > 0 && clock_real_ms() - due > cj->starting_deadline * 1000)
		return false;
	store_run_init(&latest);
	if (store_run_latest(dm->store, r->job, &latest) == 0)
		owed = latest.id == r->id;
	store_run_clear(&latest);
	return owed;
}

static void
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
static void
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
		dr->ops->release(dm_admission(dm, dr->ops), er, dr->memory);
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

	exec_run_release(er);
	drun_free(dr);
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
	exec_run_init(&dr->er, &dm->loop, dr->ops, dm->store, dr->id, dr->dir, &hooks);
	dr->ops->reserve(dm_admission(dm, dr->ops), &dr->er, dr->memory);
	dr->er.not_before = dr->not_before;
	dm_hms(dr->scheduled_at, when, sizeof(when));
	rc = exec_run_start(&dr->er);
	if (rc < 0) /* already recorded failed; done and closed follow */
		dlog(DLOG_ERROR, dr->id, dr->job, "cannot start: %s", strerror(-rc));
	else
		dlog(DLOG_INFO, dr->id, dr->job, "started (%s %s, pid %d%s)",
		     store_trigger_name(dr->trigger), when, (int)dr->er.agent_pid,
		     ahead ? "; ahead: the command waits for its instant" : "");
}

/* Starts the runs at the head of the queue while they fit: max_parallel, and the local memory
 * budget (in fire order: a big run at the head is not overtaken by smaller ones). */
struct exec_admission *
dm_admission(struct daemon *dm, const struct exec_ops *ops)
{
	(void)ops; /* one admission per executor comes with the executors map */
	dm->adm.budget = dm->conf->local.memory_budget;
	return &dm->adm;
}

static void
dm_admit(struct daemon *dm)
{
	while (dm->qhead != NULL && !dm->stopping) {
		struct drun *dr = dm->qhead;
		bool slot = dm->conf->max_parallel <= 0 || dm->nstarted < dm->conf->max_parallel;
		bool fits = dr->ops->fits(dm_admission(dm, dr->ops), dr->memory);

		if (!slot || !fits) {
			for (struct drun *w = dm->qhead; w != NULL; w = w->qnext) {
				if (!w->logged_wait) {
					w->logged_wait = true;
					dlog(DLOG_INFO, w->id, w->job, "waiting for %s",
					     !slot ? "a slot (max_parallel)" : "memory");
					dm_set_waiting(dm, w);
				}
			}
			return;
		}
		dm_dequeue(dm, dr);
		dm_start(dm, dr);
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
	const struct exec_ops *ops = exec_find(cj->executor != NULL ? cj->executor : "local");
	struct exec_new how = { trig, at, attempt, 0, 0 };
	struct drun *dr;
	struct diag d;
	int64_t id = 0;

	if (ops == NULL) {
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
	dr->ops = ops;
	dr->job = xstrdup(cj->name);
	dr->id = id;
	dr->memory = cj->memory; /* what it counts for is its executor's to say (ops->fits) */
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
	        dr->ops->fits(dm_admission(dm, dr->ops), dr->memory);
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
static void
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
		evheap_push(&dm->heap, &j->ev,
		            next * 1000 - (dm->conf->source.repo != NULL ? DM_PREP_SOURCE_MS
		                                                         : DM_PREP_MS));
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

static void
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

/* --- jobs from the configuration ----------------------------------------------------- */

/* Builds dm->jobs from dm->conf, keeping each job's `until` from OLD (N of them) by name;
 * a job new to the store starts now, without catch-up. */
static void
dm_build_jobs(struct daemon *dm, struct djob *old, size_t nold, const struct conf *oldconf,
              bool startup)
{
	int64_t now = clock_real_ms() / 1000;

	dm->njobs = dm->conf->njobs;
	dm->jobs = xcalloc(dm->njobs > 0 ? dm->njobs : 1, sizeof(*dm->jobs));
	for (size_t i = 0; i < dm->njobs; i++) {
		struct djob *j = &dm->jobs[i];
		const char *name = dm->conf->jobs[i].name;
		bool found = false;

		evheap_node_init(&j->ev, DM_EV_FIRE);
		j->cj = &dm->conf->jobs[i];
		for (size_t k = 0; k < nold && oldconf != NULL; k++) {
			if (strcmp(old[k].cj->name, name) == 0) {
				j->until = old[k].until;
				found = true;
				break;
			}
		}
		if (!found && dm_until_get(dm, name, &j->until) < 0)
			dm_until_set(dm, j, now);
		if (startup)
			dm_job_due(dm, j, now, 0); /* catch up what was missed while down */
		else
			dm_job_due(dm, j, now, DM_LATE_S);
	}
}

static void
dm_clear_jobs(struct daemon *dm)
{
	for (size_t i = 0; i < dm->njobs; i++)
		evheap_remove(&dm->heap, &dm->jobs[i].ev);
	free(dm->jobs);
	dm->jobs = NULL;
	dm->njobs = 0;
}

/* Mails mail.admin when the source's fetches have failed for mail.source_alarm, once per
 * outage (notify_source_alarm). It reads the mirror's state file only (no git, no lock), so
 * it may be called at any time: after each run is created (when runs fetch) and after the
 * daemon's own fetches. */
void
dm_source_alarm(struct daemon *dm)
{
	dm_source_alarm_of(dm, &dm->conf->source, dm->conf->dir);
}

void
dm_source_alarm_of(struct daemon *dm, const struct conf_source *src, const char *base_dir)
{
	struct source_health h;
	struct diag d;
	double now = clock_real();
	int rc;

	if (dm->conf->mail.smtp == NULL || dm->conf->mail.admin.n == 0)
		return;
	if (source_health(dm->o->state_dir, src, base_dir, &h) < 0)
		return; /* source.repo is a missing path: each run fails and says so */
	diag_init(&d);
	rc = notify_source_alarm(dm->store, dm->conf, &h, now, &d);
	if (rc == 1) {
		char dur[32];

		units_format_duration(now - h.failing_since, dur, sizeof(dur));
		dlog(DLOG_WARN, 0, NULL,
		     "source %s: every fetch failed for %s (mailed mail.admin): %s", h.repo, dur,
		     h.error);
	}
	dm_mail_queued(dm, rc, &d, 0, NULL);
	diag_free(&d);
	source_health_clear(&h);
}

/* A configuration that failed to reload (ERRORS, its FILE:LINE:COL errors) is mailed to
 * mail.admin once per distinct set of errors: the key is their hash. */
static void
dm_mail_reload_failure(struct daemon *dm, const char *errors)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */
	char key[40];
	struct diag d;
	char *text;
	int rc;

	for (const unsigned char *p = (const unsigned char *)errors; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ULL;
	snprintf(key, sizeof(key), "reload:%016llx", (unsigned long long)h);
	text = xasprintf("The jobs file failed to reload; the daemon keeps the last good "
	                 "configuration, %s (%zu jobs).\n\n%s",
	                 dm->conf_path, dm->njobs, errors);
	diag_init(&d);
	rc = notify_admin(dm->store, dm->conf, key, "configuration failed to reload", text, &d);
	dm_mail_queued(dm, rc, &d, 0, NULL);
	diag_free(&d);
	free(text);
}

void
dm_reload_failed(struct daemon *dm, const char *why, struct diag *d)
{
	struct buf text;

	buf_init(&text, BUF_MAX_MSG);
	diag_sort(d);
	for (size_t i = 0; i < diag_nerrors(d); i++) {
		char *msg = diag_format(d, i);

		dlog(DLOG_ERROR, 0, NULL, "reload (%s): %s", why, msg);
		if (buf_printf(&text, "%s\n", msg) < 0) /* past the cap: the first ones */
			dlog(DLOG_WARN, 0, NULL, "reload: too many errors to mail them all");
		free(msg);
	}
	dlog(DLOG_ERROR, 0, NULL, "reload (%s) failed: kept the last good configuration (%zu jobs)",
	     why, dm->njobs);
	dm_mail_reload_failure(dm, buf_cstr(&text));
	buf_free(&text);
}

void
dm_apply_conf(struct daemon *dm, struct conf *nc, const char *why)
{
	struct conf *oc = dm->conf;
	struct djob *oj = dm->jobs;
	size_t noj = dm->njobs;

	for (size_t i = 0; i < noj; i++)
		evheap_remove(&dm->heap, &oj[i].ev);
	dm->jobs = NULL;
	dm->conf = nc;
	dm_build_jobs(dm, oj, noj, oc, false);
	free(oj);
	conf_free(oc);
	dm_mail_kick(dm); /* each eph-mail pass gets the settings current then */
	dlog(DLOG_INFO, 0, NULL, "reloaded %s (%s): %zu jobs", dm->conf_path, why, dm->njobs);
	(void)malloc_trim(0); /* what parsing used goes back: the daemon stays small */
	dm_admit(dm);
	dm_arm(dm);
}

static void
dm_reload(struct daemon *dm, const char *why)
{
	struct conf *nc = NULL;
	struct diag d;

	if (dm->repo != NULL) { /* --from-repo: the file is the repository's */
		dm_repo_fetch(dm, true);
		return;
	}
	diag_init(&d);
	if (conf_load(dm->conf_path, &nc, &d) < 0)
		dm_reload_failed(dm, why, &d);
	else
		dm_apply_conf(dm, nc, why);
	diag_free(&d);
}

static void
dm_reload_timer_cb(uv_timer_t *t)
{
	dm_reload(t->data, "the file changed");
}

static void
dm_confwatch_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct daemon *dm = h->data;

	(void)events;
	if (status < 0 || dm->stopping)
		return;
	if (filename != NULL && strcmp(filename, dm->conf_base) != 0)
		return;
	uv_timer_start(&dm->reload_timer, dm_reload_timer_cb, DM_RELOAD_WAIT_MS, 0);
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
 * all, left to its agent. Every other started run is left to its agent. */
static void
dm_stop_started(struct daemon *dm)
{
	struct timespec ts = { 0, 5 * 1000000L };
	int64_t until = clock_mono_ms() + DM_WITHDRAW_WAIT_MS;
	struct drun *dr, *nx;
	bool any = false;

	for (dr = dm->runs; dr != NULL; dr = dr->next) {
		dr->withdraw = dr->phase == DR_STARTED && !dr->ended && dm_holding(dr) &&
		               exec_run_cancel(&dr->er) == 0;
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
	/* what is still queued stays in the outbox: the next start sends it */
	dm_mail_stop(dm);
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
	dm_repo_arm(dm);
	dm_mail_kick(dm); /* at once: what the outbox holds (a previous process's) is sent */
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
