/* src/cmd/cmd_mail.c: `eph mail test|send|list`, and the mail of a foreground run. Sending is
 * eph-mail's (src/eph_mail.c), next to eph: these commands run it and wait for it, so that eph
 * itself is not linked with libcurl. */
#include "cmd/cmd_mail.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "conf/conf.h"
#include "notify/mailproc.h"
#include "notify/notify.h"
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

/* In the child: FD becomes TO, open across exec. A pipe made while eph's own stdin or stdout
 * was closed may already be TO, which dup2 leaves close-on-exec. */
static int
mail_child_fd(int fd, int to)
{
	if (fd == to)
		return fcntl(fd, F_SETFD, 0);
	return dup2(fd, to) < 0 ? -1 : 0;
}

int
cmd_helper_run(const char *who, const char *name, char *path, char *input, char **args,
               struct buf *out)
{
	char chunk[4096];
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	int in[2] = { -1, -1 }, op[2] = { -1, -1 }, status = 0, rc, ret = -1;
	pid_t pid = -1, w;
	ssize_t n;

	if (path == NULL || access(path, X_OK) != 0) {
		fprintf(stderr, "%s: cannot send: %s: %s (%s belongs next to eph)\n", who,
		        path != NULL ? path : name,
		        path != NULL ? strerror(errno) : "cannot find eph's own path", name);
		free(path);
		free(input);
		return -1;
	}
	if (pipe2(in, O_CLOEXEC) < 0 || (out != NULL && pipe2(op, O_CLOEXEC) < 0)) {
		fprintf(stderr, "%s: cannot run %s: %s\n", who, path, strerror(errno));
		goto out;
	}
	args[0] = path;
	fflush(stdout); /* what eph printed comes before what the helper prints */
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "%s: cannot run %s: %s\n", who, path, strerror(errno));
		goto out;
	}
	if (pid == 0) {
		if (mail_child_fd(in[0], STDIN_FILENO) < 0 ||
		    (out != NULL && mail_child_fd(op[1], STDOUT_FILENO) < 0))
			_exit(127);
		execv(path, args);
		_exit(127);
	}
	close(in[0]);
	in[0] = -1;
	if (out != NULL) {
		close(op[1]);
		op[1] = -1;
	}
	/* the helper may die before reading: a failed write, not SIGPIPE */
	sigaction(SIGPIPE, &ign, &old);
	rc = fsio_write_all(in[1], input, strlen(input));
	sigaction(SIGPIPE, &old, NULL);
	close(in[1]);
	in[1] = -1;
	(void)rc; /* the helper says why it could not read its settings */
	while (out != NULL) {
		n = read(op[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (buf_append(out, chunk, (size_t)n) < 0)
			continue; /* past the cap: the rest is dropped (its counts with it) */
	}
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (w < 0) {
		fprintf(stderr, "%s: waiting for %s: %s\n", who, path, strerror(errno));
	} else if (WIFSIGNALED(status)) {
		fprintf(stderr, "%s: %s was killed by signal %d\n", who, path, WTERMSIG(status));
	} else if (WEXITSTATUS(status) == 127) {
		fprintf(stderr, "%s: cannot run %s\n", who, path);
	} else {
		ret = WEXITSTATUS(status);
	}
out:
	for (int k = 0; k < 2; k++) {
		if (in[k] >= 0)
			close(in[k]);
		if (op[k] >= 0)
			close(op[k]);
	}
	free(input);
	free(path);
	return ret;
}

/* Runs `eph-mail ARGS[1]...` with the settings M as JSON on its stdin: cmd_helper_run. */
static int
mail_proc(const char *who, const struct conf_mail *m, char **args, struct buf *out)
{
	return cmd_helper_run(who, MAILPROC_NAME, mailproc_path(), mailproc_conf_json(m), args,
	                      out);
}

struct send_outcome {
	bool done; /* the counts came */
	size_t sent, retried, given_up;
	char *last_error;
};

/* `eph-mail send --all`, no attempt started after DEADLINE seconds; its errors printed with
 * WHO. Returns its exit status or -1 (mail_proc). */
static int
mail_send_all(const char *who, struct cmd_ctx *ctx, double deadline, struct send_outcome *so)
{
	char secs[32], *args[] = { NULL,
		                   (char *)"send",
		                   (char *)"--all",
		                   (char *)"--state",
		                   (char *)cmd_state_dir(ctx),
		                   (char *)"--deadline",
		                   secs,
		                   NULL };
	struct buf out;
	const char *p, *end;
	int st;

	memset(so, 0, sizeof(*so));
	snprintf(secs, sizeof(secs), "%.0f", deadline);
	buf_init(&out, BUF_MAX_JSON);
	st = mail_proc(who, &ctx->conf->mail, args, &out);
	p = buf_cstr(&out);
	end = p + out.len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl != NULL ? nl : end) - p);
		struct mailproc_line l;

		if (n > 0 && mailproc_parse_line(p, n, &l) == 0) {
			if (l.kind == MAILPROC_ERROR) {
				fprintf(stderr, "eph: %s\n", l.msg);
			} else if (l.kind == MAILPROC_RESULT) {
				so->done = true;
				so->sent = l.sent;
				so->retried = l.retried;
				so->given_up = l.given_up;
				free(so->last_error);
				so->last_error = l.msg;
				l.msg = NULL;
			}
			mailproc_line_clear(&l);
		}
		p += n + (nl != NULL);
	}
	buf_free(&out);
	return st;
}

static void
print_result(const char *who, const struct send_outcome *r)
{
	if (r->retried > 0 || r->given_up > 0)
		fprintf(stderr,
		        "%s: %zu message(s) not sent (%zu queued for a retry, %zu given up): %s\n",
		        who, r->retried + r->given_up, r->retried, r->given_up,
		        r->last_error != NULL ? r->last_error : "?");
}

void
cmd_mail_after_run(struct cmd_ctx *ctx, struct store *st, int64_t id, bool will_retry)
{
	const struct conf *c = ctx->conf;
	struct send_outcome so;
	struct diag d;
	int rc;

	if (st == NULL || id <= 0 || c == NULL || c->mail.smtp == NULL)
		return;
	diag_init(&d);
	rc = notify_run_finished(st, c, cmd_state_dir(ctx), id, will_retry, NULL, &d);
	if (rc < 0)
		diag_print(&d, stderr);
	diag_free(&d);
	if (mail_send_all("eph: mail", ctx, (double)c->mail.timeout, &so) >= 0 && so.done)
		print_result("eph: mail", &so);
	free(so.last_error);
}

static int
mail_test(struct cmd_ctx *ctx, const char *addr)
{
	const struct conf_mail *m = &ctx->conf->mail;
	char *args[] = { NULL, (char *)"test", NULL, NULL };
	int st;

	if (m->smtp == NULL) {
		fprintf(stderr, "eph mail test: %s has no mail section\n", ctx->conf_path);
		return EPH_EXIT_USAGE;
	}
	if (addr == NULL)
		addr = m->admin.n > 0 ? m->admin.v[0] : m->from;
	if (strpbrk(addr, "\r\n<>,") != NULL || strchr(addr, '@') == NULL || addr[0] == '-') {
		fprintf(stderr, "eph mail test: %s is not an email address\n", addr);
		return EPH_EXIT_USAGE;
	}
	args[2] = (char *)addr;
	/* eph-mail prints what `eph mail test` says, and exits as it does (0, 1, 2) */
	st = mail_proc("eph mail test", m, args, NULL);
	return st < 0 ? EPH_EXIT_FAIL : st;
}

static int
mail_send(struct cmd_ctx *ctx)
{
	const struct conf_mail *m = &ctx->conf->mail;
	struct send_outcome so;
	int st, ret;

	if (m->smtp == NULL) {
		fprintf(stderr, "eph mail send: %s has no mail section\n", ctx->conf_path);
		return EPH_EXIT_USAGE;
	}
	/* each message is bounded by mail.timeout; a long queue may take a while */
	st = mail_send_all("eph mail send", ctx, 3600.0, &so);
	if (st == 0 && so.done) {
		printf("%zu message(s) sent\n", so.sent);
		print_result("eph mail send", &so);
		ret = so.retried + so.given_up > 0 ? EPH_EXIT_FAIL : EPH_EXIT_OK;
	} else if (st < 0 || st == EPH_EXIT_FAIL || st == EPH_EXIT_USAGE || st == 0) {
		ret = EPH_EXIT_FAIL; /* it said why (or mail_proc did) */
	} else {
		ret = st; /* a status of its own (a sanitizer's): passed on */
	}
	free(so.last_error);
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
