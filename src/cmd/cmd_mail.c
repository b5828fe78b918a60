/* src/cmd/cmd_mail.c: `eph mail test|send|list`, and the mail of a foreground run. */
#include "cmd/cmd_mail.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "cmd/cmd.h"
#include "conf/conf.h"
#include "notify/notify.h"
#include "notify/sender.h"
#include "notify/smtp.h"
#include "store/outbox.h"
#include "store/store.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

static int cmd_mail_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_mail = {
	.name = "mail",
	.usage = "mail test [ADDRESS]\n"
	         "mail send\n"
	         "mail list [--failed]",
	.summary = "send a test message; send or list the queued mail",
	.help = "mail test [ADDRESS]\n"
	        "  Sends a test message with the jobs file's mail settings to ADDRESS (default:\n"
	        "  the first of mail.admin, else mail.from), directly, not through the outbox.\n"
	        "  On failure prints exactly what the server (or the connection) said.\n"
	        "mail send\n"
	        "  Tries every message queued in the outbox once, now, whatever its backoff.\n"
	        "  The daemon does this by itself; this is for machines without one.\n"
	        "mail list [--failed]\n"
	        "  Lists the queued messages (or those given up after mail.max_age).\n\n"
	        "Exit status: 0 on success, 1 when a message was not accepted, 2 for bad input.\n",
	.exec = cmd_mail_exec,
};

static int
mail_store_open(struct cmd_ctx *ctx, struct store **st)
{
	const char *state = cmd_state_dir(ctx);
	char *db = xasprintf("%s/eph.db", state);
	struct diag d;
	int rc;

	diag_init(&d);
	rc = fsio_mkdirs(state, 0700);
	if (rc < 0)
		fprintf(stderr, "eph mail: cannot create %s: %s\n", state, strerror(-rc));
	else if ((rc = store_open(db, st, &d)) < 0)
		diag_print(&d, stderr);
	diag_free(&d);
	free(db);
	return rc;
}

static void
print_result(const char *who, const struct notify_send_result *r)
{
	if (r->retried > 0 || r->given_up > 0)
		fprintf(stderr,
		        "%s: %zu message(s) not sent (%zu queued for a retry, %zu given up): %s\n",
		        who, r->retried + r->given_up, r->retried, r->given_up,
		        r->last_error != NULL ? r->last_error : "?");
}

void
cmd_mail_after_run(struct cmd_ctx *ctx, struct store *st, int64_t id)
{
	const struct conf *c = ctx->conf;
	struct notify_send_result res = { 0 };
	struct diag d;
	int rc;

	if (st == NULL || id <= 0 || c == NULL || c->mail.smtp == NULL)
		return;
	diag_init(&d);
	rc = notify_run_finished(st, c, cmd_state_dir(ctx), id, false, &d);
	if (rc < 0)
		diag_print(&d, stderr);
	diag_free(&d);
	diag_init(&d);
	rc = notify_send_pending(st, &c->mail, (double)time(NULL) + (double)c->mail.timeout, true,
	                         &res, &d);
	if (rc < 0)
		diag_print(&d, stderr);
	else
		print_result("eph: mail", &res);
	diag_free(&d);
	notify_send_result_clear(&res);
}

static int
mail_test(struct cmd_ctx *ctx, const char *addr)
{
	const struct conf_mail *m = &ctx->conf->mail;
	char *host = notify_hostname(), *msgid = NULL, *subject = NULL, *body = NULL;
	char *password = NULL, *to[1];
	struct smtp_xfer x = { 0 };
	struct buf msg;
	struct diag d;
	int rc, ret = EPH_EXIT_FAIL;
	time_t now = time(NULL);
	CURLcode cres;

	if (m->smtp == NULL) {
		fprintf(stderr, "eph mail test: %s has no mail section\n", ctx->conf_path);
		free(host);
		return EPH_EXIT_USAGE;
	}
	if (addr == NULL)
		addr = m->admin.n > 0 ? m->admin.v[0] : m->from;
	if (strpbrk(addr, "\r\n<>,") != NULL || strchr(addr, '@') == NULL) {
		fprintf(stderr, "eph mail test: %s is not an email address\n", addr);
		free(host);
		return EPH_EXIT_USAGE;
	}
	to[0] = (char *)addr;
	buf_init(&msg, BUF_MAX_MSG);
	diag_init(&d);
	msgid = notify_msgid(host, now);
	subject = xasprintf("[eph] test message from %s", host);
	body = xasprintf("This is a test message from ephemeron (eph mail test) on %s.\n\n"
	                 "Server: %s\nFrom:   %s\n\n"
	                 "If you read this, mail about runs will reach you.\n",
	                 host, m->smtp, m->from);
	rc = notify_message(&(struct notify_hdr){ m->from, to, 1, subject, now, msgid }, body,
	                    &msg);
	if (rc < 0) {
		fprintf(stderr, "eph mail test: cannot build the message: %s\n", strerror(-rc));
		goto out;
	}
	if (smtp_password(m, &password, &d) < 0 ||
	    smtp_xfer_init(&x, m, password, m->from, addr, msg.data, msg.len, &d) < 0) {
		diag_print(&d, stderr);
		ret = EPH_EXIT_USAGE;
		goto out;
	}
	cres = curl_easy_perform(x.easy);
	if (cres == CURLE_OK) {
		printf("sent a test message to %s through %s\n", addr, m->smtp);
		ret = EPH_EXIT_OK;
	} else {
		char *why = smtp_xfer_error(&x, cres);

		fprintf(stderr, "eph mail test: not sent to %s through %s: %s\n", addr, m->smtp,
		        why);
		free(why);
	}
out:
	smtp_xfer_cleanup(&x);
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	diag_free(&d);
	buf_free(&msg);
	free(host);
	free(msgid);
	free(subject);
	free(body);
	return ret;
}

static int
mail_send(struct cmd_ctx *ctx)
{
	const struct conf_mail *m = &ctx->conf->mail;
	struct notify_send_result res = { 0 };
	struct store *st = NULL;
	struct diag d;
	int rc, ret;

	if (m->smtp == NULL) {
		fprintf(stderr, "eph mail send: %s has no mail section\n", ctx->conf_path);
		return EPH_EXIT_USAGE;
	}
	if (mail_store_open(ctx, &st) < 0)
		return EPH_EXIT_FAIL;
	diag_init(&d);
	/* each message is bounded by mail.timeout; a long queue may take a while */
	rc = notify_send_pending(st, m, (double)time(NULL) + 3600.0, true, &res, &d);
	if (rc < 0) {
		diag_print(&d, stderr);
		ret = EPH_EXIT_FAIL;
	} else {
		printf("%zu message(s) sent\n", res.sent);
		print_result("eph mail send", &res);
		ret = res.retried + res.given_up > 0 ? EPH_EXIT_FAIL : EPH_EXIT_OK;
	}
	diag_free(&d);
	notify_send_result_clear(&res);
	store_close(st);
	return ret;
}

static int
mail_list(struct cmd_ctx *ctx, bool failed)
{
	char *db = xasprintf("%s/eph.db", cmd_state_dir(ctx));
	struct outbox_msg *v = NULL;
	struct store *st = NULL;
	struct diag d;
	size_t n = 0;
	int rc;

	diag_init(&d);
	rc = store_open_readonly(db, &st, &d);
	free(db);
	if (rc == -ENOENT) {
		diag_free(&d);
		return EPH_EXIT_OK; /* nothing was ever recorded */
	}
	if (rc < 0) {
		diag_print(&d, stderr);
		diag_free(&d);
		return EPH_EXIT_FAIL;
	}
	diag_free(&d);
	rc = store_outbox_list(st, failed ? OUTBOX_FAILED : OUTBOX_QUEUED, 0, &v, &n);
	if (rc < 0) {
		fprintf(stderr, "eph mail list: %s\n", store_errmsg(st));
		store_close(st);
		return EPH_EXIT_FAIL;
	}
	for (size_t i = 0; i < n; i++) {
		char t[32];
		time_t tt = (time_t)v[i].created_at;
		struct tm tm;

		gmtime_r(&tt, &tm);
		strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%lld\t%s\t%s\t%d attempt(s)\t%s\t%s\n", (long long)v[i].id, t,
		       outbox_state_name(v[i].state), v[i].attempts, v[i].subject,
		       v[i].last_error != NULL ? v[i].last_error : "");
	}
	outbox_msgs_free(v, n);
	store_close(st);
	return EPH_EXIT_OK;
}

static int
cmd_mail_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	const char *sub;
	int rc;

	if (argc < 2)
		return cmd_usage_error(&cmd_mail, "which one: test, send or list?");
	sub = argv[1];
	if (strcmp(sub, "list") == 0) {
		bool failed = argc == 3 && strcmp(argv[2], "--failed") == 0;

		if (argc > 3 || (argc == 3 && !failed))
			return cmd_usage_error(&cmd_mail, "unexpected argument '%s'", argv[2]);
		return mail_list(ctx, failed);
	}
	if (strcmp(sub, "test") != 0 && strcmp(sub, "send") != 0)
		return cmd_usage_error(&cmd_mail, "unknown subcommand '%s'", sub);
	if (argc > (strcmp(sub, "test") == 0 ? 3 : 2))
		return cmd_usage_error(&cmd_mail, "too many arguments");
	if ((rc = cmd_load_conf(ctx)) != EPH_EXIT_OK)
		return rc;
	if (strcmp(sub, "test") == 0)
		return mail_test(ctx, argc == 3 ? argv[2] : NULL);
	return mail_send(ctx);
}
