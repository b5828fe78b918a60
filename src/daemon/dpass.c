/* src/daemon/dpass.c: a helper process run in passes by the daemon, so that the daemon never
 * maps libcurl and its libraries (4.3 MiB of RSS): eph-mail for the outbox (mailer.c),
 * eph-upload for the uploads of results (uploader.c). One pass at a time: dm_pass_kick spawns
 * `HELPER send [--all] --state DIR` when none is running (else notes that another pass is
 * wanted), writes the helper's settings on its stdin and hands each JSON line it prints to its
 * ops. When it exits, the next pass follows at once if it was kicked meanwhile, else one timer
 * is armed for the earliest time something queued becomes due: nothing queued arms nothing and
 * the daemon does not wake. The first pass (a start) gets --all: everything queued, due or
 * not. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon_int.h"
#include "daemon/dlog.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/xalloc.h"

#define DPASS_IDLE_MAX   3600.0 /* seconds: the timer is re-armed at least this often */
#define DPASS_FAIL_DELAY 60.0   /* after a pass that failed (store busy...) */
#define DPASS_READ_CHUNK (16u << 10)

struct dpass {
	struct daemon *dm;
	const struct dpass_ops *ops;
	uv_timer_t timer; /* the next thing due */
	uv_process_t proc;
	uv_pipe_t in, out; /* the helper's stdin and stdout */
	uv_write_t wr;
	char *input;     /* the settings being written on stdin */
	struct buf line; /* the line of stdout being read */
	char chunk[DPASS_READ_CHUNK];
	int pass_open; /* handles of the pass (proc, in, out) still open */
	bool timer_open;
	bool running;      /* a pass is going on */
	bool again;        /* kicked during the pass: another one follows it */
	bool fresh;        /* no pass has succeeded yet: the next one tries everything queued */
	bool missing_said; /* the helper is missing, and the log said so */
	bool said_error;   /* the pass reported why it failed */
	bool line_dropped; /* the line being read is past the cap: skipped dp to its end */
	bool stopping;
	int64_t exit_status;
	int term_signal;
};

static void dpass_next(struct dpass *dp, double min_delay);

static void
dpass_free_if_done(struct dpass *dp)
{
	if (!dp->stopping || dp->timer_open || dp->pass_open > 0)
		return;
	buf_free(&dp->line);
	free(dp->input);
	free(dp);
}

static void
timer_closed(uv_handle_t *h)
{
	struct dpass *dp = h->data;

	dp->timer_open = false;
	dpass_free_if_done(dp);
}

/* Every handle of the pass is closed: it is over. */
static void
pass_end(struct dpass *dp)
{
	bool ok = dp->exit_status == 0 && dp->term_signal == 0;

	dp->running = false;
	free(dp->input);
	dp->input = NULL;
	buf_reset(&dp->line);
	dp->line_dropped = false;
	if (!ok && !dp->said_error && !dp->stopping) {
		if (dp->term_signal != 0)
			dlog(DLOG_ERROR, 0, NULL, "%s: %s was killed by signal %d", dp->ops->what,
			     dp->ops->name, dp->term_signal);
		else
			dlog(DLOG_ERROR, 0, NULL, "%s: %s exited with status %lld", dp->ops->what,
			     dp->ops->name, (long long)dp->exit_status);
	}
	if (dp->stopping) {
		dpass_free_if_done(dp);
		return;
	}
	if (ok)
		dp->fresh = false;
	if (dp->again) {
		dp->again = false;
		dpass_next(dp, 0);
	} else {
		/* what the pass left due now is another sender's, or failing: not at once */
		dpass_next(dp, ok ? 1.0 : DPASS_FAIL_DELAY);
	}
}

static void
pass_closed(uv_handle_t *h)
{
	struct dpass *dp = h->data;

	if (--dp->pass_open == 0)
		pass_end(dp);
}

static void
exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct dpass *dp = p->data;

	dp->exit_status = exit_status;
	dp->term_signal = term_signal;
	uv_close((uv_handle_t *)p, pass_closed);
}

static void
write_cb(uv_write_t *w, int status)
{
	struct dpass *dp = w->data;

	(void)status; /* a failure shows as the helper's exit status */
	uv_close((uv_handle_t *)&dp->in, pass_closed); /* its EOF */
}

/* One line of the helper's output (without its line end). */
static void
handle_line(struct dpass *dp, const char *s, size_t n)
{
	if (n > 0 && dp->ops->line(dp->dm, s, n))
		dp->said_error = true;
}

static void
alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct dpass *dp = h->data;

	(void)hint;
	*b = uv_buf_init(dp->chunk, sizeof(dp->chunk));
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct dpass *dp = s->data;
	const char *p = b->base, *end = b->base + (nread > 0 ? nread : 0);

	if (nread < 0) {
		if (dp->line.len > 0 && !dp->line_dropped)
			handle_line(dp, dp->line.data, dp->line.len);
		uv_close((uv_handle_t *)s, pass_closed);
		return;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl != NULL ? nl : end) - p);

		if (!dp->line_dropped && buf_append(&dp->line, p, n) < 0) {
			dlog(DLOG_WARN, 0, NULL, "%s: a line of %s too long, skipped",
			     dp->ops->what, dp->ops->name);
			dp->line_dropped = true;
		}
		if (nl == NULL)
			break;
		if (!dp->line_dropped)
			handle_line(dp, buf_cstr(&dp->line), dp->line.len);
		buf_reset(&dp->line);
		dp->line_dropped = false;
		p = nl + 1;
	}
}

/* Starts a pass: `HELPER send [--all] --state DIR`, the settings on its stdin. */
static void
dpass_spawn(struct dpass *dp)
{
	struct daemon *dm = dp->dm;
	char *path = dp->ops->path(), *args[6];
	uv_process_options_t o = { 0 };
	uv_stdio_container_t stdio[3];
	uv_buf_t b;
	int n = 0, rc;

	if (path == NULL || access(path, X_OK) != 0) {
		if (!dp->missing_said)
			dlog(DLOG_ERROR, 0, NULL,
			     "%s: cannot send: %s: %s; %s until it is installed next to eph",
			     dp->ops->what, path != NULL ? path : dp->ops->name,
			     path != NULL ? strerror(errno) : "cannot find eph's own path",
			     dp->ops->waits);
		dp->missing_said = true;
		free(path);
		return;
	}
	dp->missing_said = false;
	args[n++] = path;
	args[n++] = (char *)"send";
	if (dp->fresh)
		args[n++] = (char *)"--all";
	args[n++] = (char *)"--state";
	args[n++] = (char *)dm->o->state_dir;
	args[n] = NULL;
	uv_pipe_init(&dm->loop, &dp->in, 0);
	uv_pipe_init(&dm->loop, &dp->out, 0);
	dp->in.data = dp->out.data = dp->proc.data = dp;
	stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	stdio[0].data.stream = (uv_stream_t *)&dp->in;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&dp->out;
	stdio[2].flags = UV_INHERIT_FD; /* a crash's words reach the daemon's stderr */
	stdio[2].data.fd = STDERR_FILENO;
	o.file = path;
	o.args = args;
	o.exit_cb = exit_cb;
	o.stdio = stdio;
	o.stdio_count = 3;
	rc = uv_spawn(&dm->loop, &dp->proc, &o);
	free(path);
	dp->running = true;
	dp->said_error = false;
	dp->exit_status = 0;
	dp->term_signal = 0;
	dp->pass_open = 3; /* uv_spawn initialises the handle even when it fails */
	if (rc < 0) {
		dlog(DLOG_ERROR, 0, NULL, "%s: cannot start %s: %s", dp->ops->what, dp->ops->name,
		     uv_strerror(rc));
		dp->said_error = true;
		dp->exit_status = 1;
		uv_close((uv_handle_t *)&dp->proc, pass_closed);
		uv_close((uv_handle_t *)&dp->in, pass_closed);
		uv_close((uv_handle_t *)&dp->out, pass_closed);
		return;
	}
	dp->input = dp->ops->input(dm);
	b = uv_buf_init(dp->input, (unsigned)strlen(dp->input));
	dp->wr.data = dp;
	if (uv_write(&dp->wr, (uv_stream_t *)&dp->in, &b, 1, write_cb) < 0)
		uv_close((uv_handle_t *)&dp->in, pass_closed);
	if (uv_read_start((uv_stream_t *)&dp->out, alloc_cb, read_cb) < 0)
		uv_close((uv_handle_t *)&dp->out, pass_closed);
}

static void
timer_cb(uv_timer_t *t)
{
	dpass_next(t->data, 0);
}

/* No pass is running: starts one if something is due (anything queued while fresh), else arms
 * the timer for the first that will be, at least MIN_DELAY seconds from now. */
static void
dpass_next(struct dpass *dp, double min_delay)
{
	struct daemon *dm = dp->dm;
	double now = clock_real(), at;
	int rc;

	if (dp->stopping || dp->running)
		return;
	uv_timer_stop(&dp->timer);
	if (!dp->ops->enabled(dm))
		return; /* what is queued waits for a configuration that enables the helper */
	rc = dp->ops->next_due(dm, &at);
	if (rc == -ENOENT)
		return; /* nothing queued: nothing to wake dp for */
	if (rc < 0)
		at = now + DPASS_FAIL_DELAY; /* the store is busy: look again later */
	if (min_delay <= 0 && (dp->fresh || at <= now)) {
		dpass_spawn(dp);
		return;
	}
	at -= now;
	if (at < min_delay)
		at = min_delay;
	if (at > DPASS_IDLE_MAX)
		at = DPASS_IDLE_MAX;
	uv_timer_start(&dp->timer, timer_cb, (uint64_t)(at * 1000.0) + 1, 0);
}

void
dm_pass_kick(struct daemon *dm, struct dpass **slot, const struct dpass_ops *ops)
{
	struct dpass *dp = *slot;

	if (dm->stopping)
		return; /* a run ending during the stop: its work waits for the next start */
	if (dp == NULL) {
		if (!ops->enabled(dm))
			return;
		/* the helper's stdin may be closed under a write: a failed write, not a signal */
		signal(SIGPIPE, SIG_IGN);
		dp = xcalloc(1, sizeof(*dp));
		dp->dm = dm;
		dp->ops = ops;
		dp->fresh = true; /* a restart tries everything queued at once */
		buf_init(&dp->line, BUF_MAX_MSG);
		uv_timer_init(&dm->loop, &dp->timer);
		dp->timer.data = dp;
		dp->timer_open = true;
		*slot = dp;
	}
	if (dp->running)
		dp->again = true;
	else
		dpass_next(dp, 0);
}

void
dm_pass_stop(struct dpass **slot)
{
	struct dpass *dp = *slot;

	if (dp == NULL)
		return;
	*slot = NULL;
	dp->stopping = true;
	uv_timer_stop(&dp->timer);
	uv_close((uv_handle_t *)&dp->timer, timer_closed);
	/* what it does then is the helper's to say (eph-mail: its messages stay leased;
	 * eph-upload: the upload stays queued, resumed from its first file not yet accepted) */
	if (dp->running && uv_is_active((uv_handle_t *)&dp->proc))
		(void)uv_process_kill(&dp->proc, SIGTERM);
}
