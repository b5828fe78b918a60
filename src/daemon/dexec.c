/* src/daemon/dexec.c: the daemon's executors: one live struct executor per entry of the jobs
 * file's executors map (local always), kept across reloads by name, and their hosts' health
 * mailed to mail.admin.
 *
 * A reload applies the new settings to the executor of the same name and type (its hosts keep
 * what runs on them); an executor that is gone from the file, or whose type changed, is
 * retired: it takes no new run, and is freed once the last of its runs has ended. A run
 * re-attached at start whose executor is no longer in the file is followed by a retired one
 * made for it from the run's stored handle (an ssh run knows its host from there). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf/conf.h"
#include "daemon/daemon_int.h"
#include "daemon/dlog.h"
#include "exec/exec.h"
#include "notify/notify.h"
#include "rundir/rundir.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

static void
dm_exec_health(struct executor *ex, const char *what, bool down, double since, const char *why,
               void *arg)
{
	struct daemon *dm = arg;
	char key[256], dur[32], *subject, *text;
	struct diag d;
	int rc;

	if (strcmp(what, EXEC_HEALTH_BUDGET) == 0)
		dlog(down ? DLOG_WARN : DLOG_INFO, 0, NULL, "executor %s: %s", ex->name,
		     down ? why : "machines fit its max_spend again");
	else if (down)
		dlog(DLOG_WARN, 0, NULL, "executor %s: %s does not answer: %s", ex->name, what,
		     why != NULL ? why : "?");
	else
		dlog(DLOG_INFO, 0, NULL, "executor %s: %s answers again", ex->name, what);
	units_format_duration(rundir_now() - since, dur, sizeof(dur));
	snprintf(key, sizeof(key), "host:%.64s:%.128s:%.3f:%s", ex->name, what, since,
	         down ? "down" : "up");
	if (strcmp(what, EXEC_HEALTH_BUDGET) == 0) { /* a cloud executor's max_spend */
		subject = xasprintf("%s: executor %s",
		                    down ? "budget reached" : "budget room again", ex->name);
		text = down ? xasprintf("Executor \"%s\" makes no machine that would take its "
		                        "spending past its max_spend: %s\n\nSuch runs fail with "
		                        "reason budget. This is the only message until a machine "
		                        "fits the budget again.\n",
		                        ex->name, why != NULL ? why : "?")
		            : xasprintf(
		                      "Executor \"%s\" makes machines again within its max_spend, "
		                      "after %s.\n",
		                      ex->name, dur);
	} else if (strcmp(ex->ops->name, "slurm") == 0) {
		/* WHAT is the cluster's controller: nothing of the host's wording applies */
		subject = xasprintf("slurm controller %s (executor %s)",
		                    down ? "unreachable" : "answers again", ex->name);
		text = down ? xasprintf(
		                      "The executor \"%s\" cannot reach %s (sbatch, scontrol).\n\n"
		                      "The last error: %s\n\n"
		                      "A run submitted meanwhile fails (reason provision), and its "
		                      "job's retries apply; the runs already submitted are left to "
		                      "Slurm and followed again when it answers.\n"
		                      "This is the only message about this outage until it ends.\n",
		                      ex->name, what, why != NULL ? why : "unknown")
		            : xasprintf("The executor \"%s\" reaches %s again, after %s.\n",
		                        ex->name, what, dur);
	} else if (down) {
		subject = xasprintf("host unreachable: %s (executor %s)", what, ex->name);
		text = xasprintf("The host %s of executor \"%s\" does not answer.\n\n"
		                 "The last error: %s\n\n"
		                 "No new run is placed there until it answers again; its runs "
		                 "are followed again when it does, and each one is recorded lost "
		                 "once the host has not answered for the executor's lost_after.\n"
		                 "This is the only message about this outage until it ends.\n",
		                 what, ex->name, why != NULL ? why : "unknown");
	} else {
		subject = xasprintf("host answers again: %s (executor %s)", what, ex->name);
		text = xasprintf("The host %s of executor \"%s\" answers again, after %s.\n", what,
		                 ex->name, dur);
	}
	diag_init(&d);
	rc = notify_admin(dm->store, dm->conf, key, subject, text, &d);
	if (rc < 0) {
		char *msg = diag_format(&d, 0);

		dlog(DLOG_ERROR, 0, NULL, "%s", msg);
		free(msg);
	} else if (rc > 0) {
		dm_mail_kick(dm);
	}
	diag_free(&d);
	free(subject);
	free(text);
}

/* A place of EX freed up: the waiting runs are admitted again at the next turn of the loop. */
static void
dm_exec_room(struct executor *ex, void *arg)
{
	(void)ex;
	dm_kick(arg);
}

static void
dm_exec_log(struct executor *ex, int64_t run, const char *msg, void *arg)
{
	(void)arg;
	dlog(DLOG_WARN, run, NULL, "executor %s: %s", ex->name, msg);
}

static void
dm_exec_info(struct executor *ex, int64_t run, const char *msg, void *arg)
{
	(void)arg;
	dlog(DLOG_INFO, run, NULL, "executor %s: %s", ex->name, msg);
}

static void
dm_retire(struct daemon *dm, struct executor *ex)
{
	dm->retired = xreallocarray(dm->retired, dm->nretired + 1, sizeof(*dm->retired));
	dm->retired[dm->nretired++] = ex;
}

struct executor *
dm_executor(struct daemon *dm, const char *name)
{
	for (size_t i = 0; i < dm->nexecs; i++)
		if (strcmp(dm->execs[i]->name, name) == 0)
			return dm->execs[i];
	return NULL;
}

int
dm_executors_apply(struct daemon *dm, const struct conf *c)
{
	struct executor **nv = xcalloc(c->nexecutors, sizeof(*nv));
	int bad = 0;

	for (size_t i = 0; i < c->nexecutors; i++) {
		const struct conf_executor *ce = &c->executors[i];
		struct executor *old = dm_executor(dm, ce->name);
		struct diag d;

		diag_init(&d);
		if (old != NULL && strcmp(old->ops->name, conf_exec_type_name(ce->type)) == 0) {
			if (exec_executor_configure(old, c, ce, &d) < 0)
				bad++; /* it keeps its last settings */
			nv[i] = old;
		} else {
			nv[i] = exec_executor_new(&dm->loop, dm->store, dm->o->state_dir,
			                          dm->instance, c, ce, dm_exec_health, dm, &d);
			if (nv[i] == NULL)
				bad++;
			else {
				nv[i]->log = dm_exec_log;
				nv[i]->info = dm_exec_info;
				nv[i]->room = dm_exec_room;
			}
		}
		if (diag_nerrors(&d) > 0) {
			char *msg = diag_format(&d, 0);

			dlog(DLOG_ERROR, 0, NULL, "executor %s: %s", ce->name, msg);
			free(msg);
		}
		diag_free(&d);
	}
	/* the ones not kept are retired */
	for (size_t i = 0; i < dm->nexecs; i++) {
		bool kept = false;

		for (size_t j = 0; j < c->nexecutors && !kept; j++)
			kept = nv[j] == dm->execs[i];
		if (!kept)
			dm_retire(dm, dm->execs[i]);
	}
	/* an executor that could not be made leaves a hole: compact */
	dm->nexecs = 0;
	for (size_t i = 0; i < c->nexecutors; i++)
		if (nv[i] != NULL)
			nv[dm->nexecs++] = nv[i];
	free(dm->execs);
	dm->execs = nv;
	dm_executors_gc(dm);
	return bad > 0 ? -EINVAL : 0;
}

struct executor *
dm_executor_of_row(struct daemon *dm, const struct store_run *row)
{
	const char *name = row->executor != NULL ? row->executor : "local";
	const struct exec_ops *ops = exec_of_run(row);
	struct executor *ex = dm_executor(dm, name);
	struct conf_executor ce = { 0 };
	struct diag d;

	if (ex != NULL && ex->ops == ops)
		return ex;
	for (size_t i = 0; i < dm->nretired; i++)
		if (strcmp(dm->retired[i]->name, name) == 0 && dm->retired[i]->ops == ops)
			return dm->retired[i];
	if (ops == &exec_local_ops)
		return dm_executor(dm, "local");
	/* gone from the file: one made for its runs, from their handles */
	ce.name = (char *)name;
	ce.type = ops == &exec_do_ops ? CONF_EXEC_DIGITALOCEAN : CONF_EXEC_SSH;
	ce.keys = NULL;
	diag_init(&d);
	ex = exec_executor_new(&dm->loop, dm->store, dm->o->state_dir, dm->instance, dm->conf, &ce,
	                       dm_exec_health, dm, &d);
	diag_free(&d);
	if (ex == NULL)
		return dm_executor(dm, "local");
	ex->log = dm_exec_log;
	ex->info = dm_exec_info;
	ex->room = dm_exec_room;
	dm_retire(dm, ex);
	return ex;
}

void
dm_executors_gc(struct daemon *dm)
{
	size_t k = 0;

	for (size_t i = 0; i < dm->nretired; i++) {
		if (dm->retired[i]->nruns == 0)
			exec_executor_free(dm->retired[i]);
		else
			dm->retired[k++] = dm->retired[i];
	}
	dm->nretired = k;
}

void
dm_executors_stop(struct daemon *dm)
{
	for (size_t i = 0; i < dm->nexecs; i++)
		if (dm->execs[i]->ops->stop != NULL)
			dm->execs[i]->ops->stop(dm->execs[i]);
	for (size_t i = 0; i < dm->nretired; i++)
		if (dm->retired[i]->ops->stop != NULL)
			dm->retired[i]->ops->stop(dm->retired[i]);
}

void
dm_executors_free(struct daemon *dm)
{
	for (size_t i = 0; i < dm->nexecs; i++)
		exec_executor_free(dm->execs[i]);
	for (size_t i = 0; i < dm->nretired; i++)
		exec_executor_free(dm->retired[i]);
	free(dm->execs);
	free(dm->retired);
	dm->execs = dm->retired = NULL;
	dm->nexecs = dm->nretired = 0;
}
