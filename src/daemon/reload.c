/* src/daemon/reload.c: the jobs of the configuration, reloads and the alarms they mail. */
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

/* --- jobs from the configuration ----------------------------------------------------- */

/* Builds dm->jobs from dm->conf, keeping each job's `until` from OLD (N of them) by name;
 * a job new to the store starts now, without catch-up. */
void
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

void
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
	(void)dm_executors_apply(dm, nc); /* one that cannot be updated keeps its settings */
	dm_build_jobs(dm, oj, noj, oc, false);
	free(oj);
	conf_free(oc);
	dm_mail_kick(dm);   /* each eph-mail pass gets the settings current then */
	dm_upload_kick(dm); /* and each eph-upload pass */
	dlog(DLOG_INFO, 0, NULL, "reloaded %s (%s): %zu jobs", dm->conf_path, why, dm->njobs);
	(void)malloc_trim(0); /* what parsing used goes back: the daemon stays small */
	dm_admit(dm);
	dm_arm(dm);
}

void
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

void
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
