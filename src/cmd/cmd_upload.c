/* src/cmd/cmd_upload.c: the upload of a foreground run's results (no daemon running): `eph
 * run` uploads before it returns, as the daemon does for its runs (docs/results.md). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/cmd_mail.h"
#include "conf/conf.h"
#include "store/store.h"
#include "store/upload.h"
#include "upload/upload.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/xalloc.h"

/* What one line of eph-upload said about run ID, on stderr; a refusal queues its mail. Sets
 * *DONE when the run's upload is done. */
static void
upload_said(struct cmd_ctx *ctx, struct store *st, int64_t id, const char *s, size_t n, bool *done)
{
	struct upload_line l;
	struct diag d;

	if (upload_line_parse(s, n, &l) < 0) {
		fprintf(stderr, "eph: upload: " UPLOADPROC_NAME " said: %.*s\n", (int)n, s);
		return;
	}
	if (l.last) {
		/* the counts: the lines before said it all */
	} else if (l.state == NULL) {
		fprintf(stderr, "eph: upload: %s\n", l.error);
	} else if (strcmp(l.state, "done") == 0) {
		*done = *done || l.run == id;
		fprintf(stderr, "eph: results of run %lld uploaded to %s (%lld files)\n",
		        (long long)l.run, l.url != NULL ? l.url : "?", (long long)l.files);
	} else if (strcmp(l.state, "refused") == 0) {
		fprintf(stderr,
		        "eph: results of run %lld NOT uploaded, refused: %s; they stay in the run "
		        "directory (eph results %lld)\n",
		        (long long)l.run, l.error != NULL ? l.error : "?", (long long)l.run);
		diag_init(&d);
		if (upload_mail_refused(st, ctx->conf, id, l.error, &d) < 0)
			diag_print(&d, stderr);
		diag_free(&d);
	} else {
		fprintf(stderr,
		        "eph: results of run %lld not uploaded yet: %s; the daemon tries again when "
		        "it runs\n",
		        (long long)l.run, l.error != NULL ? l.error : "?");
	}
	upload_line_clear(&l);
}

/* Runs `eph-upload send --run ID` once and says what it said: 0 when the upload is done, else
 * -EAGAIN (queued, refused, or eph-upload could not run). */
static int
upload_send(struct cmd_ctx *ctx, struct store *st, int64_t id)
{
	const struct conf *c = ctx->conf;
	char runarg[32], *args[7], *p, *nl;
	struct buf out;
	bool done = false;
	int rc;

	snprintf(runarg, sizeof(runarg), "%lld", (long long)id);
	args[0] = NULL;
	args[1] = (char *)"send";
	args[2] = (char *)"--run";
	args[3] = runarg;
	args[4] = (char *)"--state";
	args[5] = (char *)cmd_state_dir(ctx);
	args[6] = NULL;
	buf_init(&out, BUF_MAX_MSG);
	rc = cmd_helper_run("eph: upload", UPLOADPROC_NAME, upload_proc_path(),
	                    upload_conf_json(&c->results_store), args, &out);
	if (rc >= 0) {
		p = out.data;
		for (size_t left = out.len; p != NULL && left > 0;) {
			size_t n;

			nl = memchr(p, '\n', left);
			n = nl != NULL ? (size_t)(nl - p) : left;
			if (n > 0)
				upload_said(ctx, st, id, p, n, &done);
			if (nl == NULL)
				break;
			left -= n + 1;
			p = nl + 1;
		}
	}
	if (rc != 0)
		fprintf(stderr,
		        "eph: results of run %lld stay queued for upload: the daemon tries again "
		        "when it runs\n",
		        (long long)id);
	buf_free(&out);
	return done ? 0 : -EAGAIN;
}

void
cmd_upload_after_run(struct cmd_ctx *ctx, struct store *st, int64_t id)
{
	const struct conf *c = ctx->conf;
	struct diag d;
	int rc;

	if (st == NULL || id <= 0 || c == NULL || c->results_store.url == NULL)
		return;
	diag_init(&d);
	rc = upload_queue_run(st, c, id, &d);
	if (rc < 0)
		diag_print(&d, stderr);
	diag_free(&d);
	if (rc > 0) /* else no results, or already queued: a pass of the daemon has it */
		(void)upload_send(ctx, st, id);
}

int
cmd_upload_again(struct cmd_ctx *ctx, struct store *st, const struct store_run *r)
{
	char *url = upload_run_url(&ctx->conf->results_store, r->job, r->id);
	int rc = store_upload_requeue(st, r->id, url);

	free(url);
	if (rc < 0) {
		fprintf(stderr, "eph results: cannot queue the upload of run %lld: %s\n",
		        (long long)r->id, store_errmsg(st));
		return EPH_EXIT_FAIL;
	}
	if (rc == 0) {
		fprintf(stderr, "eph: results of run %lld are uploaded already (eph show %lld)\n",
		        (long long)r->id, (long long)r->id);
		return EPH_EXIT_OK;
	}
	return upload_send(ctx, st, r->id) == 0 ? EPH_EXIT_OK : EPH_EXIT_FAIL;
}
