/* src/notify/sender.c: one pass over the outbox, the transfers in parallel on a curl multi
 * handle. eph-mail is a process of its own that does nothing else, so the pass simply blocks
 * in curl_multi_poll: no event loop, no socket bookkeeping. */
#include "notify/sender.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "conf/conf.h"
#include "notify/smtp.h"
#include "store/outbox.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/xalloc.h"

#define SENDER_LEASE_PAD 10   /* seconds a lease outlasts mail.timeout */
#define SENDER_POLL_MS   1000 /* longest wait in curl_multi_poll (curl's timers cut it short) */

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

struct pass {
	struct store *s;
	const struct conf_mail *cm;
	notify_log_fn *log;
	void *arg;
	struct notify_send_result *res;
	struct diag *d;
	int rc; /* the first store failure */
};

static void plog(struct pass *p, bool warn, int64_t run, const char *fmt, ...) EPH_PRINTF(4, 5);

static void
plog(struct pass *p, bool warn, int64_t run, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (p->log == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	p->log(p->arg, warn, run, msg);
	free(msg);
}

/* The attempt of M ended: ERROR is NULL when the server accepted it; taken. */
static void
finish(struct pass *p, const struct outbox_msg *m, char *error)
{
	int rc = record_outcome(p->s, p->cm, m, error, clock_real());

	if (rc == 0) {
		p->res->sent++;
		plog(p, false, m->run_id, "mail \"%s\" sent", m->subject);
	} else if (rc == 1) {
		p->res->retried++;
		plog(p, true, m->run_id, "mail \"%s\" not sent (attempt %d), retrying in %.0fs: %s",
		     m->subject, m->attempts + 1, smtp_backoff(m->attempts + 1), error);
	} else if (rc == 2) {
		p->res->given_up++;
		plog(p, true, m->run_id, "mail \"%s\" given up after %d attempts: %s", m->subject,
		     m->attempts + 1, error);
	} else {
		plog(p, true, m->run_id, "mail \"%s\": cannot record in the outbox: %s", m->subject,
		     store_errmsg(p->s));
		if (p->rc == 0) {
			diag_error(p->d, (struct diag_pos){ 0 },
			           "mail: cannot record in the outbox: %s", store_errmsg(p->s));
			p->rc = rc;
		}
	}
	if (error != NULL) {
		free(p->res->last_error);
		p->res->last_error = error;
	}
}

struct slot {
	struct smtp_xfer x;
	const struct outbox_msg *msg; /* NULL: free */
};

static volatile sig_atomic_t send_stopping;

void
notify_send_stop(void)
{
	send_stopping = 1;
}

int
notify_send_pass(struct store *s, const struct conf_mail *cm, double deadline, bool all,
                 notify_log_fn *log, void *arg, struct notify_send_result *res, struct diag *d)
{
	struct pass p = { s, cm, log, arg, res, d, 0 };
	struct slot slots[SENDER_MAX_XFERS];
	struct outbox_msg *v = NULL;
	char *password = NULL, *pw_error = NULL;
	size_t n = 0, next = 0, active = 0;
	double now = clock_real(), due_by = all ? INFINITY : now;
	CURLM *multi;
	struct diag pd;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(slots, 0, sizeof(slots));
	if (cm->smtp == NULL)
		return 0;
	rc = store_outbox_due(s, now, due_by, 0, &v, &n);
	if (rc < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "mail: cannot read the outbox: %s",
		           store_errmsg(s));
		return rc;
	}
	if (n == 0)
		return 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (multi = curl_multi_init()) == NULL) {
		diag_error(d, (struct diag_pos){ 0 }, "mail: libcurl could not be initialised");
		outbox_msgs_free(v, n);
		return -EIO;
	}
	diag_init(&pd);
	if (smtp_password(cm, &password, &pd) < 0)
		pw_error = diag_joined(&pd, "cannot read the password");
	diag_free(&pd);
	for (;;) {
		CURLMsg *cmsg;
		int running = 0, left;

		/* start attempts while a slot is free, a message is left and the store works */
		while (active < SENDER_MAX_XFERS && next < n && p.rc == 0) {
			struct outbox_msg *m = &v[next++];
			struct slot *sl = NULL;
			char *error = NULL;

			now = clock_real();
			if (now >= deadline || send_stopping) {
				next = n;
				break;
			}
			rc = store_outbox_claim(s, m->id, now, due_by, now + lease_len(cm));
			if (rc == -EALREADY)
				continue; /* another sender has it */
			if (rc < 0) {
				diag_error(d, (struct diag_pos){ 0 },
				           "mail: cannot lease a message: %s", store_errmsg(s));
				p.rc = rc;
				break;
			}
			for (size_t k = 0; k < SENDER_MAX_XFERS && sl == NULL; k++)
				if (slots[k].msg == NULL)
					sl = &slots[k];
			diag_init(&pd);
			if (pw_error != NULL) {
				error = xstrdup(pw_error);
			} else if (smtp_xfer_init(&sl->x, cm, password, m->from, m->rcpt, m->data,
			                          m->len, &pd) < 0) {
				error = diag_joined(&pd, "mail settings refused");
			} else {
				curl_easy_setopt(sl->x.easy, CURLOPT_PRIVATE, sl);
				if (curl_multi_add_handle(multi, sl->x.easy) == CURLM_OK) {
					sl->msg = m;
					active++;
				} else {
					error = xstrdup("libcurl refused the transfer");
				}
			}
			diag_free(&pd);
			if (sl->msg == NULL) {
				smtp_xfer_cleanup(&sl->x);
				memset(&sl->x, 0, sizeof(sl->x));
				finish(&p, m, error);
			}
		}
		if (active == 0)
			break;
		if (curl_multi_perform(multi, &running) != CURLM_OK)
			running = 0; /* a broken multi handle: its transfers end in info_read */
		while ((cmsg = curl_multi_info_read(multi, &left)) != NULL) {
			struct slot *sl = NULL;
			char *error = NULL;

			if (cmsg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(cmsg->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
			if (cmsg->data.result != CURLE_OK)
				error = smtp_xfer_error(&sl->x, cmsg->data.result);
			curl_multi_remove_handle(multi, sl->x.easy);
			finish(&p, sl->msg, error);
			smtp_xfer_cleanup(&sl->x);
			memset(sl, 0, sizeof(*sl));
			active--;
		}
		if (active > 0 && curl_multi_poll(multi, NULL, 0, SENDER_POLL_MS, NULL) != CURLM_OK)
			break; /* cannot wait: leave what is going on to its lease */
	}
	for (size_t k = 0; k < SENDER_MAX_XFERS; k++) {
		if (slots[k].msg != NULL) {
			curl_multi_remove_handle(multi, slots[k].x.easy);
			smtp_xfer_cleanup(&slots[k].x);
		}
	}
	curl_multi_cleanup(multi);
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	free(pw_error);
	outbox_msgs_free(v, n);
	return p.rc;
}
