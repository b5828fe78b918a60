/* src/daemon/mailer.c: the daemon's mail is sent by eph-mail (src/eph_mail.c), a process of
 * its own run in passes (dpass.c): the mail settings on its stdin, each JSON line it prints
 * turned into a log line; a timer for the earliest time a queued message becomes due. */
#include <stdlib.h>

#include "conf/conf.h"
#include "daemon/daemon_int.h"
#include "daemon/dlog.h"
#include "notify/mailproc.h"
#include "store/outbox.h"

static bool
mail_enabled(struct daemon *dm)
{
	return dm->conf->mail.smtp != NULL;
}

static int
mail_next_due(struct daemon *dm, double *at)
{
	return store_outbox_next_due(dm->store, at);
}

static char *
mail_input(struct daemon *dm)
{
	return mailproc_conf_json(&dm->conf->mail);
}

/* One line of eph-mail's output: true when it says the pass could not work. */
static bool
mail_line(struct daemon *dm, const char *s, size_t n)
{
	struct mailproc_line l;
	bool error = false;

	(void)dm;
	if (mailproc_parse_line(s, n, &l) < 0) {
		dlog(DLOG_WARN, 0, NULL, "mail: " MAILPROC_NAME " said: %.*s", (int)n, s);
		return false;
	}
	if (l.kind == MAILPROC_EVENT) {
		dlog(l.warn ? DLOG_WARN : DLOG_INFO, l.run, NULL, "%s", l.msg);
	} else if (l.kind == MAILPROC_ERROR) {
		error = true;
		dlog(DLOG_ERROR, 0, NULL, "%s", l.msg);
	}
	mailproc_line_clear(&l);
	return error;
}

static const struct dpass_ops mail_ops = {
	.what = "mail",
	.name = MAILPROC_NAME,
	.waits = "the mail stays queued",
	.path = mailproc_path,
	.enabled = mail_enabled,
	.next_due = mail_next_due,
	.input = mail_input,
	.line = mail_line,
};

void
dm_mail_kick(struct daemon *dm)
{
	dm_pass_kick(dm, &dm->mail, &mail_ops);
}

void
dm_mail_stop(struct daemon *dm)
{
	/* its messages stay leased: the next start retries them once the lease has passed */
	dm_pass_stop(&dm->mail);
}
