/* src/daemon/uploader.c: the daemon's uploads of runs' results to results_store are sent by
 * eph-upload (src/eph_upload.c), a process of its own run in passes as eph-mail is (dpass.c):
 * the results_store settings on its stdin, each JSON line it prints turned into a log line (a
 * refusal also into mail); a timer for the earliest time a queued upload becomes due (its
 * backoff). Queued when a run is recorded; at start, the runs a crash left unqueued. */
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "daemon/daemon_int.h"
#include "daemon/dlog.h"
#include "store/upload.h"
#include "upload/upload.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/xalloc.h"

#define UPLOADER_RECONCILE_S 86400.0 /* a start queues the unqueued runs ended this recently */

static bool
upload_enabled(struct daemon *dm)
{
	return dm->conf->results_store.url != NULL;
}

static int
upload_next_due(struct daemon *dm, double *at)
{
	return store_upload_next_due(dm->store, at);
}

static char *
upload_input(struct daemon *dm)
{
	return upload_conf_json(&dm->conf->results_store);
}

/* One line of eph-upload's output: true when it says the pass could not work. */
static bool
upload_line(struct daemon *dm, const char *s, size_t n)
{
	struct upload_line l;
	struct diag d;
	bool error = false;
	int rc;

	if (upload_line_parse(s, n, &l) < 0) {
		dlog(DLOG_WARN, 0, NULL, "upload: " UPLOADPROC_NAME " said: %.*s", (int)n, s);
		return false;
	}
	if (l.last) {
		/* the counts: each upload was said on its own line */
	} else if (l.state == NULL) {
		error = true;
		dlog(DLOG_ERROR, 0, NULL, "upload: %s", l.error);
	} else if (strcmp(l.state, "done") == 0) {
		dlog(DLOG_INFO, l.run, NULL, "results uploaded to %s (%lld files)",
		     l.url != NULL ? l.url : "?", (long long)l.files);
	} else if (strcmp(l.state, "refused") == 0) {
		dlog(DLOG_ERROR, l.run, NULL,
		     "results NOT uploaded, refused by the store: %s; they stay in the run directory",
		     l.error != NULL ? l.error : "?");
		diag_init(&d);
		rc = upload_mail_refused(dm->store, dm->conf, l.run, l.error, &d);
		dm_mail_queued(dm, rc, &d, l.run, NULL);
		diag_free(&d);
	} else {
		dlog(DLOG_WARN, l.run, NULL, "results not uploaded yet (tried again later): %s",
		     l.error != NULL ? l.error : "?");
	}
	upload_line_clear(&l);
	return error;
}

static const struct dpass_ops upload_ops = {
	.what = "upload",
	.name = UPLOADPROC_NAME,
	.waits = "the uploads stay queued",
	.path = upload_proc_path,
	.enabled = upload_enabled,
	.next_due = upload_next_due,
	.input = upload_input,
	.line = upload_line,
};

void
dm_upload_kick(struct daemon *dm)
{
	dm_pass_kick(dm, &dm->upload, &upload_ops);
}

void
dm_upload_stop(struct daemon *dm)
{
	/* eph-upload abandons the put going on and records the upload queued: the next start
	 * resumes it from its first file not yet accepted */
	dm_pass_stop(&dm->upload);
}

void
dm_upload_reconcile(struct daemon *dm)
{
	int64_t *ids = NULL;
	size_t n = 0;
	int rc;

	if (dm->conf->results_store.url == NULL)
		return;
	rc = store_upload_unqueued(dm->store, clock_real() - UPLOADER_RECONCILE_S, &ids, &n);
	if (rc < 0) {
		dlog(DLOG_WARN, 0, NULL, "upload: cannot look for runs to upload: %s",
		     strerror(-rc));
		return;
	}
	for (size_t i = 0; i < n; i++)
		dm_upload_run(dm, ids[i], NULL);
	free(ids);
}

void
dm_upload_run(struct daemon *dm, int64_t run_id, const char *job)
{
	struct diag d;
	int rc;

	if (dm->conf->results_store.url == NULL)
		return;
	diag_init(&d);
	rc = upload_queue_run(dm->store, dm->conf, run_id, &d);
	if (rc < 0) {
		char *msg = d.n > 0 ? diag_format(&d, 0) : xstrdup(strerror(-rc));

		dlog(DLOG_ERROR, run_id, job, "upload: %s", msg);
		free(msg);
	} else if (rc > 0) {
		dm_upload_kick(dm);
	}
	diag_free(&d);
}
