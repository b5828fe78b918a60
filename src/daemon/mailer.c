/* src/daemon/mailer.c: the daemon's mail is sent by eph-mail (src/eph_mail.c), a process of
 * its own, so that the daemon never maps libcurl and its libraries (4.3 MiB of RSS). One pass
 * at a time: dm_mail_kick spawns `eph-mail send` when none is running (else notes that
 * another pass is wanted), writes the mail settings on its stdin and turns each JSON line it
 * prints into a log line. When it exits, the next pass follows at once if it was kicked
 * meanwhile, else one timer is armed for the earliest time a queued message becomes due: an
 * empty outbox arms nothing and the daemon does not wake. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/daemon_int.h"
#include "daemon/dlog.h"
#include "notify/mailproc.h"
#include "store/outbox.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/xalloc.h"

#define MAILER_IDLE_MAX   3600.0 /* seconds: the timer is re-armed at least this often */
#define MAILER_FAIL_DELAY 60.0   /* after a pass that failed (store busy...) */
#define MAILER_READ_CHUNK (16u << 10)

struct dmailer {
	struct daemon *dm;
	uv_timer_t timer; /* the next message due */
	uv_process_t proc;
	uv_pipe_t in, out; /* eph-mail's stdin and stdout */
	uv_write_t wr;
	char *input;     /* the settings being written on stdin */
	struct buf line; /* the line of stdout being read */
	char chunk[MAILER_READ_CHUNK];
	int pass_open; /* handles of the pass (proc, in, out) still open */
	bool timer_open;
	bool running;      /* a pass is going on */
	bool again;        /* kicked during the pass: another one follows it */
	bool fresh;        /* no pass has succeeded yet: the next one tries every queued message */
	bool missing_said; /* eph-mail is missing, and the log said so */
	bool said_error;   /* the pass reported why it failed */
	bool line_dropped; /* the line being read is past the cap: skipped up to its end */
	bool stopping;
	int64_t exit_status;
	int term_signal;
};

static void mailer_next(struct dmailer *ml, double min_delay);

static void
mailer_free_if_done(struct dmailer *ml)
{
	if (!ml->stopping || ml->timer_open || ml->pass_open > 0)
		return;
	buf_free(&ml->line);
	free(ml->input);
	free(ml);
}

static void
timer_closed(uv_handle_t *h)
{
	struct dmailer *ml = h->data;

	ml->timer_open = false;
	mailer_free_if_done(ml);
}

/* Every handle of the pass is closed: it is over. */
static void
pass_end(struct dmailer *ml)
{
	bool ok = ml->exit_status == 0 && ml->term_signal == 0;

	ml->running = false;
	free(ml->input);
	ml->input = NULL;
	buf_reset(&ml->line);
	ml->line_dropped = false;
	if (!ok && !ml->said_error && !ml->stopping) {
		if (ml->term_signal != 0)
			dlog(DLOG_ERROR, 0, NULL, "mail: " MAILPROC_NAME " was killed by signal %d",
			     ml->term_signal);
		else
			dlog(DLOG_ERROR, 0, NULL, "mail: " MAILPROC_NAME " exited with status %lld",
			     (long long)ml->exit_status);
	}
	if (ml->stopping) {
		mailer_free_if_done(ml);
		return;
	}
	if (ok)
		ml->fresh = false;
	if (ml->again) {
		ml->again = false;
		mailer_next(ml, 0);
	} else {
		/* what the pass left due now is another sender's, or failing: not at once */
		mailer_next(ml, ok ? 1.0 : MAILER_FAIL_DELAY);
	}
}

static void
pass_closed(uv_handle_t *h)
{
	struct dmailer *ml = h->data;

	if (--ml->pass_open == 0)
		pass_end(ml);
}

static void
exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct dmailer *ml = p->data;

	ml->exit_status = exit_status;
	ml->term_signal = term_signal;
	uv_close((uv_handle_t *)p, pass_closed);
}

static void
write_cb(uv_write_t *w, int status)
{
	struct dmailer *ml = w->data;

	(void)status; /* a failure shows as eph-mail's exit status */
	uv_close((uv_handle_t *)&ml->in, pass_closed); /* its EOF */
}

/* One line of eph-mail's output (without its line end). */
static void
handle_line(struct dmailer *ml, const char *s, size_t n)
{
	struct mailproc_line l;

	if (n == 0)
		return;
	if (mailproc_parse_line(s, n, &l) < 0) {
		dlog(DLOG_WARN, 0, NULL, "mail: " MAILPROC_NAME " said: %.*s", (int)n, s);
		return;
	}
	if (l.kind == MAILPROC_EVENT) {
		dlog(l.warn ? DLOG_WARN : DLOG_INFO, l.run, NULL, "%s", l.msg);
	} else if (l.kind == MAILPROC_ERROR) {
		ml->said_error = true;
		dlog(DLOG_ERROR, 0, NULL, "%s", l.msg);
	}
	mailproc_line_clear(&l);
}

static void
alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct dmailer *ml = h->data;

	(void)hint;
	*b = uv_buf_init(ml->chunk, sizeof(ml->chunk));
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct dmailer *ml = s->data;
	const char *p = b->base, *end = b->base + (nread > 0 ? nread : 0);

	if (nread < 0) {
		if (ml->line.len > 0 && !ml->line_dropped)
			handle_line(ml, ml->line.data, ml->line.len);
		uv_close((uv_handle_t *)s, pass_closed);
		return;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl != NULL ? nl : end) - p);

		if (!ml->line_dropped && buf_append(&ml->line, p, n) < 0) {
			dlog(DLOG_WARN, 0, NULL,
			     "mail: a line of " MAILPROC_NAME " too long, skipped");
			ml->line_dropped = true;
		}
		if (nl == NULL)
			break;
		if (!ml->line_dropped)
			handle_line(ml, buf_cstr(&ml->line), ml->line.len);
		buf_reset(&ml->line);
		ml->line_dropped = false;
		p = nl + 1;
	}
}

/* Starts a pass: `eph-mail send [--all]`, the settings on its stdin. */
static void
mailer_spawn(struct dmailer *ml)
{
	struct daemon *dm = ml->dm;
	char *path = mailproc_path(), *args[6];
	uv_process_options_t o = { 0 };
	uv_stdio_container_t stdio[3];
	uv_buf_t b;
	int n = 0, rc;

	if (path == NULL || access(path, X_OK) != 0) {
		if (!ml->missing_said)
			dlog(DLOG_ERROR, 0, NULL,
			     "mail: cannot send: %s: %s; the mail stays queued until it is installed "
			     "next to eph",
			     path != NULL ? path : MAILPROC_NAME,
			     path != NULL ? strerror(errno) : "cannot find eph's own path");
		ml->missing_said = true;
		free(path);
		return;
	}
	ml->missing_said = false;
	args[n++] = path;
	args[n++] = (char *)"send";
	if (ml->fresh)
		args[n++] = (char *)"--all";
	args[n++] = (char *)"--state";
	args[n++] = (char *)dm->o->state_dir;
	args[n] = NULL;
	uv_pipe_init(&dm->loop, &ml->in, 0);
	uv_pipe_init(&dm->loop, &ml->out, 0);
	ml->in.data = ml->out.data = ml->proc.data = ml;
	stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	stdio[0].data.stream = (uv_stream_t *)&ml->in;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&ml->out;
	stdio[2].flags = UV_INHERIT_FD; /* a crash's words reach the daemon's stderr */
	stdio[2].data.fd = STDERR_FILENO;
	o.file = path;
	o.args = args;
	o.exit_cb = exit_cb;
	o.stdio = stdio;
	o.stdio_count = 3;
	rc = uv_spawn(&dm->loop, &ml->proc, &o);
	free(path);
	ml->running = true;
	ml->said_error = false;
	ml->exit_status = 0;
	ml->term_signal = 0;
	ml->pass_open = 3; /* uv_spawn initialises the handle even when it fails */
	if (rc < 0) {
		dlog(DLOG_ERROR, 0, NULL, "mail: cannot start " MAILPROC_NAME ": %s",
		     uv_strerror(rc));
		ml->said_error = true;
		ml->exit_status = 1;
		uv_close((uv_handle_t *)&ml->proc, pass_closed);
		uv_close((uv_handle_t *)&ml->in, pass_closed);
		uv_close((uv_handle_t *)&ml->out, pass_closed);
		return;
	}
	ml->input = mailproc_conf_json(&dm->conf->mail);
	b = uv_buf_init(ml->input, (unsigned)strlen(ml->input));
	ml->wr.data = ml;
	if (uv_write(&ml->wr, (uv_stream_t *)&ml->in, &b, 1, write_cb) < 0)
		uv_close((uv_handle_t *)&ml->in, pass_closed);
	if (uv_read_start((uv_stream_t *)&ml->out, alloc_cb, read_cb) < 0)
		uv_close((uv_handle_t *)&ml->out, pass_closed);
}

static void
timer_cb(uv_timer_t *t)
{
	mailer_next(t->data, 0);
}

/* No pass is running: starts one if a message is due (any queued one while fresh), else arms
 * the timer for the first that will be, at least MIN_DELAY seconds from now. */
static void
mailer_next(struct dmailer *ml, double min_delay)
{
	struct daemon *dm = ml->dm;
	double now = clock_real(), at;
	int rc;

	if (ml->stopping || ml->running)
		return;
	uv_timer_stop(&ml->timer);
	if (dm->conf->mail.smtp == NULL)
		return; /* what is queued waits for a configuration with mail.smtp */
	rc = store_outbox_next_due(dm->store, &at);
	if (rc == -ENOENT)
		return; /* nothing queued: nothing to wake up for */
	if (rc < 0)
		at = now + MAILER_FAIL_DELAY; /* the store is busy: look again later */
	if (min_delay <= 0 && (ml->fresh || at <= now)) {
		mailer_spawn(ml);
		return;
	}
	at -= now;
	if (at < min_delay)
		at = min_delay;
	if (at > MAILER_IDLE_MAX)
		at = MAILER_IDLE_MAX;
	uv_timer_start(&ml->timer, timer_cb, (uint64_t)(at * 1000.0) + 1, 0);
}

void
dm_mail_kick(struct daemon *dm)
{
	struct dmailer *ml = dm->mail;

	if (dm->stopping)
		return; /* a run ending during the stop: its mail waits for the next start */
	if (ml == NULL) {
		if (dm->conf->mail.smtp == NULL)
			return;
		/* eph-mail's stdin may be closed under a write: a failed write, not a signal */
		signal(SIGPIPE, SIG_IGN);
		ml = xcalloc(1, sizeof(*ml));
		ml->dm = dm;
		ml->fresh = true; /* a restart tries every queued message at once */
		buf_init(&ml->line, BUF_MAX_MSG);
		uv_timer_init(&dm->loop, &ml->timer);
		ml->timer.data = ml;
		ml->timer_open = true;
		dm->mail = ml;
	}
	if (ml->running)
		ml->again = true;
	else
		mailer_next(ml, 0);
}

void
dm_mail_stop(struct daemon *dm)
{
	struct dmailer *ml = dm->mail;

	if (ml == NULL)
		return;
	dm->mail = NULL;
	ml->stopping = true;
	uv_timer_stop(&ml->timer);
	uv_close((uv_handle_t *)&ml->timer, timer_closed);
	/* its messages stay leased: the next start retries them once the lease has passed */
	if (ml->running && uv_is_active((uv_handle_t *)&ml->proc))
		(void)uv_process_kill(&ml->proc, SIGTERM);
}
