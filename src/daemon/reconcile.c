/* src/daemon/reconcile.c: restart safety: what a previous process left behind (docs/daemon.md,
 * "Restart safety"). Every run the store has as unfinished is settled exactly once, as
 * exec_inspect tells what it is: re-attached, recorded, or run (or skipped) when its command
 * never started; then the retries and the mail that process owed are made. */
#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "daemon/daemon_int.h"
#include "daemon/dlog.h"
#include "exec/exec.h"
#include "rundir/rundir.h"
#include "store/outbox.h"
#include "store/store.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

#define DM_MANUAL_GRACE_S 60 /* a foreground `eph run` may be preparing its run */

/* At start, the retries a previous process owed (dm_retry_owed) are scheduled again. The
 * latest run of a job that ended unsuccessfully and is owed none has its mail sent, in case it
 * was held back for a retry that will not come (the job's retries were lowered meanwhile,
 * its deadline passed): notify sends once per run, so a mail already sent is not sent again,
 * and a run that ended longer ago than mail.max_age is left alone (its mail would be given up
 * anyway; and a failure from before mail was set up is not mailed now). */
static void
dm_resume_retries(struct daemon *dm)
{
	double now = rundir_now();

	for (size_t i = 0; i < dm->conf->njobs; i++) {
		const struct conf_job *cj = &dm->conf->jobs[i];
		struct store_run r;
		int64_t ended_ms = 0;

		store_run_init(&r);
		if (store_run_latest(dm->store, cj->name, &r) == 0 && dm_retryable(r.state) &&
		    !(dm_retry_owed(dm, &r, &ended_ms) &&
		      dm_schedule_retry_after(dm, cj->name, r.scheduled_at, r.attempt, r.id,
		                              ended_ms)) &&
		    now - r.ended_at <= (double)dm->conf->mail.max_age)
			dm_notify(dm, r.id, cj->name, false);
		store_run_clear(&r);
	}
}

/* A live run for R, left unfinished by a previous process, linked among the live runs. */
static struct drun *
dm_adopt(struct daemon *dm, const struct store_run *r)
{
	struct drun *dr = xcalloc(1, sizeof(*dr));

	dr->dm = dm;
	evheap_node_init(&dr->ev, DM_EV_START);
	dr->ex = dm_executor_of_row(dm, r);
	dr->job = xstrdup(r->job);
	dr->dir = r->run_dir != NULL ? xstrdup(r->run_dir) : NULL;
	dr->id = r->id;
	dr->memory = r->memory_limit > 0 ? (uint64_t)r->memory_limit : 0;
	dr->trigger = r->trigger;
	dr->scheduled_at = r->scheduled_at;
	dr->attempt = r->attempt;
	dr->next = dm->runs;
	if (dm->runs != NULL)
		dm->runs->prev = dr;
	dm->runs = dr;
	return dr;
}

/* Run R's agent is alive: followed to its end, and recorded by this daemon. */
static void
dm_reattach(struct daemon *dm, const struct store_run *r)
{
	struct drun *dr = dm_adopt(dm, r);
	struct exec_hooks hooks = { NULL, dm_done_cb, dm_closed_cb, dr };

	dr->phase = DR_STARTED;
	dm->nstarted++;
	exec_run_init(&dr->er, dr->ex, r->id, r->run_dir, r->handle, &hooks);
	dr->ex->ops->reserve(dr->ex, &dr->er, dr->memory);
	if (exec_run_reattach(&dr->er, r) < 0)
		dlog(DLOG_ERROR, r->id, r->job, "cannot follow the run");
	else if (dr->ended)
		; /* gone meanwhile: recorded (dm_done_cb said so) */
	else if (dr->er.agent_pid != 0)
		dlog(DLOG_INFO, r->id, r->job, "re-attached (agent pid %d)", (int)dr->er.agent_pid);
	else
		dlog(DLOG_INFO, r->id, r->job, "re-attached (its agent is starting)");
}

/* Records run R, whose agent is gone, from its result.json, or in its absence as lost with
 * reason WHY; then its mail, unless a retry is owed for it. */
static void
dm_record_found(struct daemon *dm, const struct store_run *r, const char *why)
{
	struct store_run f;
	int rc;

	store_run_init(&f);
	rc = exec_record(dm->store, r->id, r->run_dir, why, &f);
	if (rc == 0) {
		int64_t ended_ms;

		dlog(f.state == STORE_SUCCEEDED ? DLOG_INFO : DLOG_WARN, r->id, r->job,
		     "%s (recorded at restart)%s%s", store_state_name(f.state),
		     f.reason != NULL ? ": " : "", f.reason != NULL ? f.reason : "");
		/* a retry owed is scheduled by dm_resume_retries, which mails otherwise */
		if (!dm_retry_owed(dm, &f, &ended_ms))
			dm_notify(dm, r->id, r->job, false);
	} else if (rc != -EALREADY) {
		dlog(DLOG_ERROR, r->id, r->job, "cannot record the run: %s", strerror(-rc));
	}
	store_run_clear(&f);
}

/* Whether run R's instant (its fire plus jitter; a retry's or a manual run's creation) is more
 * than its job's starting_deadline past; WHY then says so (caller frees). */
static bool
dm_past_deadline(const struct conf_job *cj, const struct store_run *r, char **why)
{
	bool fire = r->trigger == STORE_SCHEDULE || r->trigger == STORE_CATCHUP;
	double instant = fire ? (double)(r->scheduled_at + r->jitter) : r->created_at;
	char dur[32];

	*why = NULL;
	if (cj == NULL || cj->starting_deadline <= 0 ||
	    rundir_now() - instant <= (double)cj->starting_deadline)
		return false;
	units_format_duration((double)cj->starting_deadline, dur, sizeof(dur));
	*why = xasprintf("the scheduler stopped before the run's command started, and its instant "
	                 "is more than starting_deadline (%s) past",
	                 dur);
	return true;
}

/* Run R was prepared (row and spec.json) but its command never started: nothing forbids
 * running it now. It runs, in its own directory, once its job's concurrency policy allows
 * (dm_prepared_due; a manual run is not subject to it) if its instant is within the job's
 * starting_deadline, and is recorded skipped otherwise. */
static void
dm_rerun(struct daemon *dm, const struct store_run *r)
{
	const struct conf_job *cj = conf_job_find(dm->conf, r->job);
	struct drun *dr = dm_adopt(dm, r);
	struct rundir_spec spec;
	struct diag d;
	char *why;

	diag_init(&d);
	if (rundir_spec_read(r->run_dir, &spec, &d) == 0) {
		dr->not_before = spec.not_before;
		rundir_spec_free(&spec);
	}
	diag_free(&d);
	if (dm_past_deadline(cj, r, &why)) {
		dm_end_unstarted(dm, dr, STORE_SKIPPED, why);
		free(why);
		return;
	}
	dlog(DLOG_INFO, r->id, r->job,
	     "prepared before the scheduler stopped, its command never started: it runs now");
	/* where its secrets are, as the jobs file says now (its spec.json names the variables the
	 * agent must get: one no longer there fails the run "secrets: ...") */
	if (cj != NULL)
		exec_secrets_of_job(&dr->secrets, dm->conf, cj);
	if (r->trigger == STORE_MANUAL && cj != NULL)
		dm_enqueue(dm, dr);
	else
		dm_prepared_due(dm, dr); /* its job's policy (or cancelled if the job is gone) */
}

/* Run R was never prepared (its row only: the scheduler stopped while it was created, e.g.
 * during a fetch): withdrawn (row and any directory deleted) and fired again, as a new run,
 * if its instant is within its job's starting_deadline; recorded skipped otherwise. */
static void
dm_refire(struct daemon *dm, const struct store_run *r)
{
	const struct conf_job *cj = conf_job_find(dm->conf, r->job);
	char *runs_dir = xasprintf("%s/runs/%lld", dm->o->state_dir, (long long)r->id), *why;
	bool past = dm_past_deadline(cj, r, &why);
	struct store_run f;
	int rc;

	store_run_init(&f);
	f.state = cj == NULL ? STORE_CANCELLED : past ? STORE_SKIPPED : STORE_CANCELLED;
	f.reason = cj == NULL ? xstrdup("the job was removed from the jobs file before the run "
	                                "started")
	           : past     ? why
	                      : xstrdup("the scheduler stopped before the run was prepared");
	f.ended_at = rundir_now();
	rc = store_run_finish(dm->store, r->id, &f, NULL, 0);
	if (rc == 0 && f.state == STORE_CANCELLED && cj != NULL) {
		rc = store_run_delete(dm->store, r->id);
		(void)nftw(runs_dir, dm_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		if (rc == 0) {
			dlog(DLOG_INFO, r->id, r->job,
			     "withdrawn: the scheduler stopped before the run was prepared; fired "
			     "again");
			if (r->trigger == STORE_MANUAL)
				(void)dm_create(dm, cj, STORE_MANUAL, r->scheduled_at, r->attempt,
				                0, false);
			else
				dm_fire(dm, cj, r->scheduled_at, r->trigger, r->attempt);
		}
	} else if (rc == 0) {
		dlog(DLOG_INFO, r->id, r->job, "%s: %s", store_state_name(f.state), f.reason);
	}
	if (rc < 0 && rc != -EALREADY)
		dlog(DLOG_ERROR, r->id, r->job, "cannot record the run: %s", strerror(-rc));
	store_run_clear(&f);
	free(runs_dir);
}

/* The mail owed by runs that a command recorded while no daemon ran (exec_reconcile): decided
 * now, as for a run this start recorded (none while a retry is owed: that one decides; none
 * for a run that ended longer ago than mail.max_age), then forgotten. After
 * dm_resume_retries, whose retries are not runs yet: a run owed one is still its job's
 * latest. */
static void
dm_owed_mail(struct daemon *dm)
{
	int64_t *ids = NULL;
	size_t n = 0;
	double now = rundir_now();

	if (store_mail_owed(dm->store, &ids, &n) < 0) {
		dlog(DLOG_ERROR, 0, NULL, "cannot read the mail owed: %s", store_errmsg(dm->store));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct store_run r;
		int64_t ended_ms;

		store_run_init(&r);
		if (store_run_get(dm->store, ids[i], &r) == 0 && store_state_terminal(r.state) &&
		    now - r.ended_at <= (double)dm->conf->mail.max_age &&
		    !dm_retry_owed(dm, &r, &ended_ms))
			dm_notify(dm, r.id, r.job, false);
		store_run_clear(&r);
		if (store_mail_owed_clear(dm->store, ids[i]) < 0)
			dlog(DLOG_ERROR, ids[i], NULL, "cannot record its mail as decided: %s",
			     store_errmsg(dm->store));
	}
	free(ids);
}

/* Every run a previous process left unfinished (exec_inspect tells what each is), exactly once
 * each (store_run_finish refuses a second): re-attached (agent alive), recorded (its result is
 * there, or lost: its command may have run), or — its command never started — run now or
 * skipped (dm_rerun, dm_refire), after the others, so that their policy sees every live run. */
static void
dm_reconcile_runs(struct daemon *dm)
{
	struct store_run *runs = NULL;
	enum exec_found *found;
	size_t n = 0;
	double now = rundir_now();
	int rc = store_runs_unfinished(dm->store, &runs, &n);

	if (rc < 0) {
		dlog(DLOG_ERROR, 0, NULL, "cannot read unfinished runs: %s",
		     store_errmsg(dm->store));
		return;
	}
	found = xcalloc(n > 0 ? n : 1, sizeof(*found));
	for (size_t i = 0; i < n; i++) {
		const struct store_run *r = &runs[i];
		char *why = NULL;

		found[i] = exec_inspect(r, &why);
		if (found[i] == EXEC_ALIVE)
			dm_reattach(dm, r);
		else if (found[i] == EXEC_FINISHED || found[i] == EXEC_LOST)
			dm_record_found(dm, r, why);
		free(why);
	}
	for (size_t i = 0; i < n; i++) {
		const struct store_run *r = &runs[i];
		bool manual = r->trigger == STORE_MANUAL;

		if (found[i] == EXEC_UNPREPARED) {
			if (manual && r->created_at > now - DM_MANUAL_GRACE_S)
				continue; /* a foreground eph run is preparing it */
			dm_refire(dm, r);
		} else if (found[i] == EXEC_UNSTARTED) {
			/* even a manual one that a foreground eph run is about to start: the run's
			 * lock lets one agent start it, and the other starter follows that one */
			dm_rerun(dm, r);
		}
	}
	free(found);
	store_runs_free(runs, n);
}

void
dm_reconcile(struct daemon *dm)
{
	dm_reconcile_runs(dm);
	dm_resume_retries(dm);
	dm_owed_mail(dm);
}
