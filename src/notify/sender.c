/* src/notify/sender.c: sending the outbox, blocking (foreground) or on the daemon's loop. */
#include "notify/sender.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>

#include "conf/conf.h"
#include "notify/smtp.h"
#include "store/outbox.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/xalloc.h"

#define SENDER_MAX_XFERS 4  /* transfers at once */
#define SENDER_LEASE_PAD 10 /* seconds a lease outlasts mail.timeout */
#define SENDER_IDLE_MAX  3600.0

static double
lease_len(const struct conf_mail *m)
{
	return (double)(m->timeout > 0 ? m->timeout : 60) + SENDER_LEASE_PAD;
}

void
notify_send_result_clear(struct notify_send_result *r)
{
	free(r->last_error);
	memset(r, 0, sizeof(*r));
}

/* Records the outcome of an attempt of M: sent when ERROR is NULL, else retried or, past
 * max_age, given up. Returns what happened: 0 sent, 1 retried, 2 given up, or -errno. */
/* The messages of D joined by "; ", or FALLBACK. Caller frees. */
static char *
diag_text(const struct diag *d, const char *fallback)
{
	struct buf b;
	char *s;

	buf_init(&b, BUF_MAX_MSG);
	for (size_t k = 0; k < d->n; k++)
		if (buf_printf(&b, "%s%s", k > 0 ? "; " : "", d->items[k].msg) < 0)
			break;
	s = b.len > 0 ? buf_steal(&b) : xstrdup(fallback);
	buf_free(&b);
	return s;
}

static int
record_outcome(struct store *s, const struct conf_mail *cm, const struct outbox_msg *m,
               const char *error, double now)
{
	int rc;

	if (error == NULL)
		return store_outbox_sent(s, m->id, now);
	if (now - m->created_at >= (double)cm->max_age) {
		char *why = xasprintf("not accepted within mail.max_age (%llds): %s",
		                      (long long)cm->max_age, error);

		rc = store_outbox_fail(s, m->id, now, why);
		free(why);
		return rc < 0 ? rc : 2;
	}
	rc = store_outbox_retry(s, m->id, now + smtp_backoff(m->attempts + 1), error);
	return rc < 0 ? rc : 1;
}

int
notify_send_pending(struct store *s, const struct conf_mail *cm, double deadline, bool all,
                    struct notify_send_result *res, struct diag *d)
{
	struct outbox_msg *v = NULL;
	size_t n = 0;
	double now = clock_real();
	int rc;

	memset(res, 0, sizeof(*res));
	if (cm->smtp == NULL)
		return 0;
	rc = store_outbox_due(s, now, all ? INFINITY : now, 0, &v, &n);
	if (rc < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "mail: cannot read the outbox: %s",
		           store_errmsg(s));
		return rc;
	}
	for (size_t i = 0; i < n && rc >= 0; i++) {
		struct smtp_xfer x;
		struct diag pd;
		char *password = NULL, *error = NULL;
		CURLcode cres;

		now = clock_real();
		if (now >= deadline)
			break;
		rc = store_outbox_claim(s, v[i].id, now, all ? INFINITY : now, now + lease_len(cm));
		if (rc == -EALREADY) {
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		diag_init(&pd);
		if (smtp_password(cm, &password, &pd) < 0 ||
		    smtp_xfer_init(&x, cm, password, v[i].from, v[i].rcpt, v[i].data, v[i].len,
		                   &pd) < 0) {
			error = diag_text(&pd, "mail settings refused");
		} else {
			cres = curl_easy_perform(x.easy);
			if (cres != CURLE_OK)
				error = smtp_xfer_error(&x, cres);
			smtp_xfer_cleanup(&x);
		}
		diag_free(&pd);
		if (password != NULL) {
			explicit_bzero(password, strlen(password));
			free(password);
		}
		rc = record_outcome(s, cm, &v[i], error, clock_real());
		if (rc == 0)
			res->sent++;
		else if (rc == 1)
			res->retried++;
		else if (rc == 2)
			res->given_up++;
		if (error != NULL) {
			free(res->last_error);
			res->last_error = error;
		}
		if (rc < 0)
			diag_error(d, (struct diag_pos){ 0 },
			           "mail: cannot record in the outbox: %s", store_errmsg(s));
	}
	outbox_msgs_free(v, n);
	return rc < 0 ? rc : 0;
}

/* The daemon's sender. */

struct sender_conf {
	struct conf_mail m; /* only the strings below are owned; admin is left empty */
};

struct sender_xfer {
	struct smtp_xfer x;
	struct outbox_msg msg;
	struct notify_sender *ns;
	struct sender_conf *conf; /* the settings it started with */
};

struct sender_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct notify_sender *ns;
	struct sender_sock *next, **pprev; /* in ns->socks while curl knows the socket */
};

struct notify_sender {
	uv_loop_t *loop;
	struct store *store;
	struct sender_conf *conf;
	notify_log_fn *log;
	void *log_arg;
	CURLM *multi;
	uv_timer_t curl_timer; /* curl's timeout */
	uv_timer_t due_timer;  /* the next message due */
	struct sender_xfer *xfers[SENDER_MAX_XFERS];
	size_t nxfers;
	struct sender_sock *socks;
	int handles; /* open uv handles */
	bool stopping;
	bool fresh; /* just started: every queued message is tried at once, backoff or not */
	void (*done)(void *arg);
	void *done_arg;
};

static struct sender_conf *
conf_copy(const struct conf_mail *m)
{
	struct sender_conf *c = xcalloc(1, sizeof(*c));

#define DUP(f) c->m.f = m->f != NULL ? xstrdup(m->f) : NULL
	DUP(smtp);
	DUP(from);
	DUP(username);
	DUP(password_file);
	DUP(password_env);
	DUP(ca_file);
#undef DUP
	c->m.starttls = m->starttls;
	c->m.max_age = m->max_age;
	c->m.source_alarm = m->source_alarm;
	c->m.timeout = m->timeout;
	return c;
}

static void
conf_release(struct sender_conf *c)
{
	if (c == NULL)
		return;
	free(c->m.smtp);
	free(c->m.from);
	free(c->m.username);
	free(c->m.password_file);
	free(c->m.password_env);
	free(c->m.ca_file);
	free(c);
}

static bool
conf_in_use(const struct notify_sender *ns, const struct sender_conf *c)
{
	if (ns->conf == c)
		return true;
	for (size_t i = 0; i < ns->nxfers; i++)
		if (ns->xfers[i]->conf == c)
			return true;
	return false;
}

static void slog(struct notify_sender *ns, bool warn, int64_t run, const char *fmt, ...)
        EPH_PRINTF(4, 5);

static void
slog(struct notify_sender *ns, bool warn, int64_t run, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (ns->log == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	ns->log(ns->log_arg, warn, run, msg);
	free(msg);
}

static void schedule(struct notify_sender *ns);

static void
xfer_finish(struct notify_sender *ns, struct sender_xfer *sx, const char *error)
{
	int rc = record_outcome(ns->store, &sx->conf->m, &sx->msg, error, clock_real());

	if (rc == 0)
		slog(ns, false, sx->msg.run_id, "mail \"%s\" sent", sx->msg.subject);
	else if (rc == 1)
		slog(ns, true, sx->msg.run_id,
		     "mail \"%s\" not sent (attempt %d), retrying in %.0fs: %s", sx->msg.subject,
		     sx->msg.attempts + 1, smtp_backoff(sx->msg.attempts + 1), error);
	else if (rc == 2)
		slog(ns, true, sx->msg.run_id, "mail \"%s\" given up after %d attempts: %s",
		     sx->msg.subject, sx->msg.attempts + 1, error);
	else
		slog(ns, true, sx->msg.run_id, "mail \"%s\": cannot record in the outbox: %s",
		     sx->msg.subject, store_errmsg(ns->store));
}

static void
xfer_free(struct notify_sender *ns, struct sender_xfer *sx)
{
	struct sender_conf *c = sx->conf;

	for (size_t i = 0; i < ns->nxfers; i++) {
		if (ns->xfers[i] == sx) {
			ns->xfers[i] = ns->xfers[--ns->nxfers];
			break;
		}
	}
	if (sx->x.easy != NULL)
		curl_multi_remove_handle(ns->multi, sx->x.easy);
	smtp_xfer_cleanup(&sx->x);
	outbox_msg_clear(&sx->msg);
	free(sx);
	if (!conf_in_use(ns, c))
		conf_release(c);
}

static void
check_done(struct notify_sender *ns)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(ns->multi, &left)) != NULL) {
		struct sender_xfer *sx = NULL;
		char *error = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&sx);
		if (m->data.result != CURLE_OK)
			error = smtp_xfer_error(&sx->x, m->data.result);
		xfer_finish(ns, sx, error);
		free(error);
		xfer_free(ns, sx);
	}
	if (!ns->stopping)
		schedule(ns);
}

static void
sock_closed(uv_handle_t *h)
{
	struct sender_sock *ss = h->data;
	struct notify_sender *ns = ss->ns;

	free(ss);
	if (--ns->handles == 0 && ns->stopping) {
		void (*done)(void *) = ns->done;
		void *arg = ns->done_arg;

		free(ns);
		if (done != NULL)
			done(arg);
	}
}

static void
poll_cb(uv_poll_t *p, int status, int events)
{
	struct sender_sock *ss = p->data;
	struct notify_sender *ns = ss->ns;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(ns->multi, ss->fd, flags, &running);
	check_done(ns);
}

static void
sock_close(struct sender_sock *ss)
{
	*ss->pprev = ss->next;
	if (ss->next != NULL)
		ss->next->pprev = ss->pprev;
	uv_poll_stop(&ss->poll);
	uv_close((uv_handle_t *)&ss->poll, sock_closed);
}

static int
socket_cb(CURL *e, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct notify_sender *ns = arg;
	struct sender_sock *ss = sockp;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (ss != NULL) {
			sock_close(ss);
			curl_multi_assign(ns->multi, fd, NULL);
		}
		return 0;
	}
	if (ss == NULL) {
		ss = xcalloc(1, sizeof(*ss));
		ss->fd = fd;
		ss->ns = ns;
		if (uv_poll_init_socket(ns->loop, &ss->poll, fd) != 0) {
			free(ss);
			return -1;
		}
		ss->poll.data = ss;
		ss->next = ns->socks;
		ss->pprev = &ns->socks;
		if (ns->socks != NULL)
			ns->socks->pprev = &ss->next;
		ns->socks = ss;
		ns->handles++;
		curl_multi_assign(ns->multi, fd, ss);
	}
	uv_poll_start(&ss->poll,
	              (what & CURL_POLL_IN ? UV_READABLE : 0) |
	                      (what & CURL_POLL_OUT ? UV_WRITABLE : 0),
	              poll_cb);
	return 0;
}

static void
curl_timer_cb(uv_timer_t *t)
{
	struct notify_sender *ns = t->data;
	int running;

	curl_multi_socket_action(ns->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(ns);
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct notify_sender *ns = arg;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&ns->curl_timer);
	else
		uv_timer_start(&ns->curl_timer, curl_timer_cb, (uint64_t)timeout_ms, 0);
	return 0;
}

/* Starts an attempt of M (leased); takes M's contents. */
static void
xfer_start(struct notify_sender *ns, struct outbox_msg *m)
{
	struct sender_xfer *sx = xcalloc(1, sizeof(*sx));
	char *password = NULL;
	struct diag d;
	int rc;

	sx->msg = *m;
	outbox_msg_init(m);
	sx->ns = ns;
	sx->conf = ns->conf;
	ns->xfers[ns->nxfers++] = sx;
	diag_init(&d);
	rc = smtp_password(&sx->conf->m, &password, &d);
	if (rc == 0)
		rc = smtp_xfer_init(&sx->x, &sx->conf->m, password, sx->msg.from, sx->msg.rcpt,
		                    sx->msg.data, sx->msg.len, &d);
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	if (rc == 0) {
		curl_easy_setopt(sx->x.easy, CURLOPT_PRIVATE, sx);
		if (curl_multi_add_handle(ns->multi, sx->x.easy) == CURLM_OK) {
			diag_free(&d);
			return;
		}
		diag_error(&d, (struct diag_pos){ 0 }, "libcurl refused the transfer");
	}
	{
		char *error = diag_text(&d, "mail settings refused");

		xfer_finish(ns, sx, error);
		free(error);
	}
	diag_free(&d);
	xfer_free(ns, sx);
}

static void
due_timer_cb(uv_timer_t *t)
{
	schedule(t->data);
}

/* Starts attempts of the messages due, then sets the timer for the next one. */
static void
schedule(struct notify_sender *ns)
{
	struct outbox_msg *v = NULL;
	size_t n = 0;
	double now = clock_real(), at, due_by = ns->fresh ? INFINITY : now;
	int rc;

	if (ns->stopping || ns->conf->m.smtp == NULL)
		return;
	if (ns->nxfers < SENDER_MAX_XFERS) {
		size_t room = SENDER_MAX_XFERS - ns->nxfers;

		rc = store_outbox_due(ns->store, now, due_by, room, &v, &n);
		if (rc < 0)
			slog(ns, true, 0, "mail: cannot read the outbox: %s",
			     store_errmsg(ns->store));
		if (rc == 0 && n < room)
			ns->fresh = false; /* every queued message has had its attempt */
		for (size_t i = 0; i < n; i++) {
			if (store_outbox_claim(ns->store, v[i].id, now, due_by,
			                       now + lease_len(&ns->conf->m)) != 0)
				continue; /* another sender has it */
			xfer_start(ns, &v[i]);
		}
		outbox_msgs_free(v, n);
	}
	if (ns->stopping)
		return;
	rc = store_outbox_next_due(ns->store, &at);
	if (rc == -ENOENT) {
		uv_timer_stop(&ns->due_timer);
		return;
	}
	if (rc < 0)
		at = now + 60; /* the store is busy: look again later */
	at -= now;
	if (ns->nxfers >= SENDER_MAX_XFERS && at < 1)
		at = 1; /* the slots are full: a finishing transfer schedules again */
	if (at < 0)
		at = 0;
	if (at > SENDER_IDLE_MAX)
		at = SENDER_IDLE_MAX;
	uv_timer_start(&ns->due_timer, due_timer_cb, (uint64_t)(at * 1000.0) + 1, 0);
}

int
notify_sender_start(uv_loop_t *loop, struct store *s, const struct conf_mail *m, notify_log_fn *log,
                    void *arg, struct notify_sender **out)
{
	struct notify_sender *ns;

	*out = NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -EIO;
	ns = xcalloc(1, sizeof(*ns));
	ns->loop = loop;
	ns->store = s;
	ns->conf = conf_copy(m);
	ns->log = log;
	ns->log_arg = arg;
	ns->multi = curl_multi_init();
	if (ns->multi == NULL) {
		conf_release(ns->conf);
		free(ns);
		return -EIO;
	}
	curl_multi_setopt(ns->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(ns->multi, CURLMOPT_SOCKETDATA, ns);
	curl_multi_setopt(ns->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(ns->multi, CURLMOPT_TIMERDATA, ns);
	uv_timer_init(loop, &ns->curl_timer);
	uv_timer_init(loop, &ns->due_timer);
	ns->curl_timer.data = ns->due_timer.data = ns;
	ns->handles = 2;
	ns->fresh = true;
	uv_timer_start(&ns->due_timer, due_timer_cb, 0, 0);
	*out = ns;
	return 0;
}

void
notify_sender_set_conf(struct notify_sender *ns, const struct conf_mail *m)
{
	struct sender_conf *old = ns->conf;

	ns->conf = conf_copy(m);
	if (!conf_in_use(ns, old))
		conf_release(old);
	notify_sender_kick(ns);
}

void
notify_sender_kick(struct notify_sender *ns)
{
	if (ns != NULL && !ns->stopping)
		uv_timer_start(&ns->due_timer, due_timer_cb, 0, 0);
}

size_t
notify_sender_busy(const struct notify_sender *ns)
{
	return ns->nxfers;
}

static void
timer_closed(uv_handle_t *h)
{
	struct notify_sender *ns = h->data;

	if (--ns->handles == 0) {
		void (*done)(void *) = ns->done;
		void *arg = ns->done_arg;

		free(ns);
		if (done != NULL)
			done(arg);
	}
}

void
notify_sender_stop(struct notify_sender *ns, void (*done)(void *arg), void *arg)
{
	if (ns == NULL) {
		if (done != NULL)
			done(arg);
		return;
	}
	ns->stopping = true;
	ns->done = done;
	ns->done_arg = arg;
	/* Aborting an SMTP transfer makes libcurl send QUIT and wait for the reply, blocking,
	 * up to mail.timeout: shut the sockets down first, so that QUIT fails at once. */
	for (struct sender_sock *ss = ns->socks; ss != NULL; ss = ss->next)
		shutdown(ss->fd, SHUT_RDWR);
	/* removing an easy handle makes curl close its sockets: socket_cb closes their polls */
	while (ns->nxfers > 0)
		xfer_free(ns, ns->xfers[0]);
	curl_multi_cleanup(ns->multi);
	ns->multi = NULL;
	while (ns->socks != NULL)
		sock_close(ns->socks); /* what curl did not remove itself */
	conf_release(ns->conf);
	ns->conf = NULL;
	uv_timer_stop(&ns->curl_timer);
	uv_timer_stop(&ns->due_timer);
	uv_close((uv_handle_t *)&ns->curl_timer, timer_closed);
	uv_close((uv_handle_t *)&ns->due_timer, timer_closed);
}
