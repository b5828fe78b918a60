/* src/daemon/uploader.c: the daemon's uploads of runs' results to results_store are sent by
 * eph-upload (src/eph_upload.c), a process of its own, so that the daemon never maps libcurl:
 * mailer.c's pattern. One pass at a time: dm_upload_kick spawns `eph-upload send` when none is
 * running (else notes that another pass is wanted), writes the results_store settings on its
 * stdin and turns each JSON line it prints into a log line (a refusal also into mail). When it
 * exits, the next pass follows at once if it was kicked meanwhile, else one timer is armed for
 * the earliest time a queued upload becomes due (its backoff): none queued arms nothing. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/daemon_int.h"
#include "daemon/dlog.h"
#include "store/upload.h"
#include "upload/upload.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/xalloc.h"

#define UPLOADER_IDLE_MAX    3600.0 /* seconds: the timer is re-armed at least this often */
#define UPLOADER_FAIL_DELAY  60.0   /* after a pass that failed (store busy...) */
#define UPLOADER_READ_CHUNK  (16u << 10)
#define UPLOADER_RECONCILE_S 86400.0 /* a start queues the unqueued runs ended this recently */

struct duploader {
	struct daemon *dm;
	uv_timer_t timer; /* the next message due */
	uv_process_t proc;
	uv_pipe_t in, out; /* eph-upload's stdin and stdout */
	uv_write_t wr;
	char *input;     /* the settings being written on stdin */
	struct buf line; /* the line of stdout being read */
	char chunk[UPLOADER_READ_CHUNK];
	int pass_open; /* handles of the pass (proc, in, out) still open */
	bool timer_open;
	bool running;      /* a pass is going on */
	bool again;        /* kicked during the pass: another one follows it */
	bool fresh;        /* no pass has succeeded yet: the next one tries every queued upload */
	bool missing_said; /* eph-upload is missing, and the log said so */
	bool said_error;   /* the pass reported why it failed */
	bool line_dropped; /* the line being read is past the cap: skipped up to its end */
	bool stopping;
	int64_t exit_status;
	int term_signal;
};

static void uploader_next(struct duploader *up, double min_delay);

static void
uploader_free_if_done(struct duploader *up)
{
	if (!up->stopping || up->timer_open || up->pass_open > 0)
		return;
	buf_free(&up->line);
	free(up->input);
	free(up);
}

static void
timer_closed(uv_handle_t *h)
{
	struct duploader *up = h->data;

	up->timer_open = false;
	uploader_free_if_done(up);
}

/* Every handle of the pass is closed: it is over. */
static void
pass_end(struct duploader *up)
{
	bool ok = up->exit_status == 0 && up->term_signal == 0;

	up->running = false;
	free(up->input);
	up->input = NULL;
	buf_reset(&up->line);
	up->line_dropped = false;
	if (!ok && !up->said_error && !up->stopping) {
		if (up->term_signal != 0)
			dlog(DLOG_ERROR, 0, NULL,
			     "upload: " UPLOADPROC_NAME " was killed by signal %d",
			     up->term_signal);
		else
			dlog(DLOG_ERROR, 0, NULL,
			     "upload: " UPLOADPROC_NAME " exited with status %lld",
			     (long long)up->exit_status);
	}
	if (up->stopping) {
		uploader_free_if_done(up);
		return;
	}
	if (ok)
		up->fresh = false;
	if (up->again) {
		up->again = false;
		uploader_next(up, 0);
	} else {
		/* what the pass left due now is another sender's, or failing: not at once */
		uploader_next(up, ok ? 1.0 : UPLOADER_FAIL_DELAY);
	}
}

static void
pass_closed(uv_handle_t *h)
{
	struct duploader *up = h->data;

	if (--up->pass_open == 0)
		pass_end(up);
}

static void
exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct duploader *up = p->data;

	up->exit_status = exit_status;
	up->term_signal = term_signal;
	uv_close((uv_handle_t *)p, pass_closed);
}

static void
write_cb(uv_write_t *w, int status)
{
	struct duploader *up = w->data;

	(void)status; /* a failure shows as eph-upload's exit status */
	uv_close((uv_handle_t *)&up->in, pass_closed); /* its EOF */
}

/* One line of eph-upload's output (without its line end). */
static void
handle_line(struct duploader *up, const char *s, size_t n)
{
	struct daemon *dm = up->dm;
	struct upload_line l;
	struct diag d;
	int rc;

	if (n == 0)
		return;
	if (upload_line_parse(s, n, &l) < 0) {
		dlog(DLOG_WARN, 0, NULL, "upload: " UPLOADPROC_NAME " said: %.*s", (int)n, s);
		return;
	}
	if (l.last) {
		/* the counts: each upload was said on its own line */
	} else if (l.state == NULL) {
		up->said_error = true;
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
}

static void
alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct duploader *up = h->data;

	(void)hint;
	*b = uv_buf_init(up->chunk, sizeof(up->chunk));
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct duploader *up = s->data;
	const char *p = b->base, *end = b->base + (nread > 0 ? nread : 0);

	if (nread < 0) {
		if (up->line.len > 0 && !up->line_dropped)
			handle_line(up, up->line.data, up->line.len);
		uv_close((uv_handle_t *)s, pass_closed);
		return;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl != NULL ? nl : end) - p);

		if (!up->line_dropped && buf_append(&up->line, p, n) < 0) {
			dlog(DLOG_WARN, 0, NULL,
			     "upload: a line of " UPLOADPROC_NAME " too long, skipped");
			up->line_dropped = true;
		}
		if (nl == NULL)
			break;
		if (!up->line_dropped)
			handle_line(up, buf_cstr(&up->line), up->line.len);
		buf_reset(&up->line);
		up->line_dropped = false;
		p = nl + 1;
	}
}

/* Starts a pass: `eph-upload send [--all]`, the settings on its stdin. */
static void
uploader_spawn(struct duploader *up)
{
	struct daemon *dm = up->dm;
	char *path = upload_proc_path(), *args[6];
	uv_process_options_t o = { 0 };
	uv_stdio_container_t stdio[3];
	uv_buf_t b;
	int n = 0, rc;

	if (path == NULL || access(path, X_OK) != 0) {
		if (!up->missing_said)
			dlog(DLOG_ERROR, 0, NULL,
			     "upload: cannot send: %s: %s; the uploads stay queued until it is "
			     "installed next to eph",
			     path != NULL ? path : UPLOADPROC_NAME,
			     path != NULL ? strerror(errno) : "cannot find eph's own path");
		up->missing_said = true;
		free(path);
		return;
	}
	up->missing_said = false;
	args[n++] = path;
	args[n++] = (char *)"send";
	if (up->fresh)
		args[n++] = (char *)"--all";
	args[n++] = (char *)"--state";
	args[n++] = (char *)dm->o->state_dir;
	args[n] = NULL;
	uv_pipe_init(&dm->loop, &up->in, 0);
	uv_pipe_init(&dm->loop, &up->out, 0);
	up->in.data = up->out.data = up->proc.data = up;
	stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	stdio[0].data.stream = (uv_stream_t *)&up->in;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&up->out;
	stdio[2].flags = UV_INHERIT_FD; /* a crash's words reach the daemon's stderr */
	stdio[2].data.fd = STDERR_FILENO;
	o.file = path;
	o.args = args;
	o.exit_cb = exit_cb;
	o.stdio = stdio;
	o.stdio_count = 3;
	rc = uv_spawn(&dm->loop, &up->proc, &o);
	free(path);
	up->running = true;
	up->said_error = false;
	up->exit_status = 0;
	up->term_signal = 0;
	up->pass_open = 3; /* uv_spawn initialises the handle even when it fails */
	if (rc < 0) {
		dlog(DLOG_ERROR, 0, NULL, "upload: cannot start " UPLOADPROC_NAME ": %s",
		     uv_strerror(rc));
		up->said_error = true;
		up->exit_status = 1;
		uv_close((uv_handle_t *)&up->proc, pass_closed);
		uv_close((uv_handle_t *)&up->in, pass_closed);
		uv_close((uv_handle_t *)&up->out, pass_closed);
		return;
	}
	up->input = upload_conf_json(&dm->conf->results_store);
	b = uv_buf_init(up->input, (unsigned)strlen(up->input));
	up->wr.data = up;
	if (uv_write(&up->wr, (uv_stream_t *)&up->in, &b, 1, write_cb) < 0)
		uv_close((uv_handle_t *)&up->in, pass_closed);
	if (uv_read_start((uv_stream_t *)&up->out, alloc_cb, read_cb) < 0)
		uv_close((uv_handle_t *)&up->out, pass_closed);
}

static void
timer_cb(uv_timer_t *t)
{
	uploader_next(t->data, 0);
}

/* No pass is running: starts one if a message is due (any queued one while fresh), else arms
 * the timer for the first that will be, at least MIN_DELAY seconds from now. */
static void
uploader_next(struct duploader *up, double min_delay)
{
	struct daemon *dm = up->dm;
	double now = clock_real(), at;
	int rc;

	if (up->stopping || up->running)
		return;
	uv_timer_stop(&up->timer);
	if (dm->conf->results_store.url == NULL)
		return; /* what is queued waits for a configuration with results_store */
	rc = store_upload_next_due(dm->store, &at);
	if (rc == -ENOENT)
		return; /* nothing queued: nothing to wake up for */
	if (rc < 0)
		at = now + UPLOADER_FAIL_DELAY; /* the store is busy: look again later */
	if (min_delay <= 0 && (up->fresh || at <= now)) {
		uploader_spawn(up);
		return;
	}
	at -= now;
	if (at < min_delay)
		at = min_delay;
	if (at > UPLOADER_IDLE_MAX)
		at = UPLOADER_IDLE_MAX;
	uv_timer_start(&up->timer, timer_cb, (uint64_t)(at * 1000.0) + 1, 0);
}

void
dm_upload_kick(struct daemon *dm)
{
	struct duploader *up = dm->upload;

	if (dm->stopping)
		return; /* a run ending during the stop: its upload waits for the next start */
	if (up == NULL) {
		if (dm->conf->results_store.url == NULL)
			return;
		/* eph-upload's stdin may be closed under a write: a failed write, not a signal */
		signal(SIGPIPE, SIG_IGN);
		up = xcalloc(1, sizeof(*up));
		up->dm = dm;
		up->fresh = true; /* a restart tries every queued upload at once */
		buf_init(&up->line, BUF_MAX_MSG);
		uv_timer_init(&dm->loop, &up->timer);
		up->timer.data = up;
		up->timer_open = true;
		dm->upload = up;
	}
	if (up->running)
		up->again = true;
	else
		uploader_next(up, 0);
}

void
dm_upload_stop(struct daemon *dm)
{
	struct duploader *up = dm->upload;

	if (up == NULL)
		return;
	dm->upload = NULL;
	up->stopping = true;
	uv_timer_stop(&up->timer);
	uv_close((uv_handle_t *)&up->timer, timer_closed);
	/* eph-upload abandons the put going on and records the upload queued: the next start
	 * resumes it from its first file not yet accepted */
	if (up->running && uv_is_active((uv_handle_t *)&up->proc))
		(void)uv_process_kill(&up->proc, SIGTERM);
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
