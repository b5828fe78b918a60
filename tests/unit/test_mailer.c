/* tests/unit/test_mailer.c: sending the outbox (lib_mailer, what eph-mail runs): the backoff,
 * the password file's checks, and passes over a real SQLite outbox against real sockets on
 * loopback: a server that is down, tests/e2e/smtpd_server.py (aiosmtpd), and one that never
 * says a word. */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "notify/sender.h"
#include "notify/smtp.h"
#include "store/outbox.h"
#include "store/store.h"
#include "util/diag.h"
#include "util/xalloc.h"

static void
backoff_doubles_up_to_an_hour(void **state)
{
	(void)state;
	assert_true(smtp_backoff(1) == 30);
	assert_true(smtp_backoff(2) == 60);
	assert_true(smtp_backoff(3) == 120);
	assert_true(smtp_backoff(40) == 3600);
}

static void
password_file_readable_by_others_is_refused(void **state)
{
	char path[] = "/tmp/eph-test-pw-XXXXXX";
	int fd = mkstemp(path);
	struct conf_mail m = { .username = (char *)"u", .password_file = path };
	struct diag d;
	char *pw = NULL;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "s3cret\n", 7), 7);
	close(fd);
	diag_init(&d);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(smtp_password(&m, &pw, &d), 0);
	assert_string_equal(pw, "s3cret");
	free(pw);
	pw = NULL;
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(smtp_password(&m, &pw, &d), -EPERM);
	assert_null(pw);
	char *msg = diag_format(&d, 0);
	assert_non_null(strstr(msg, "can be read by group or others (mode 0644)"));
	free(msg);
	diag_free(&d);
	unlink(path);
}

struct fx {
	char dir[64];
	char *db;
	struct store *s;
	int64_t id; /* the first message */
	int logged, warned;
};

static int
free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* A store with NMSG queued messages. */
static void
fx_open(struct fx *f, int nmsg)
{
	struct diag d;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/eph-test-mailer-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->db = xasprintf("%s/eph.db", f->dir);
	diag_init(&d);
	assert_int_equal(store_open(f->db, &f->s, &d), 0);
	diag_free(&d);
	for (int i = 0; i < nmsg; i++) {
		struct outbox_msg m;
		int64_t id;

		outbox_msg_init(&m);
		m.from = (char *)"eph@example.com";
		m.rcpt = (char *)"ops@example.com\n";
		m.subject = (char *)"[eph] j: failed";
		m.data =
		        (char *)"From: eph@example.com\r\nTo: ops@example.com\r\nSubject: q\r\n\r\n"
		                "body\r\n";
		m.len = strlen(m.data);
		assert_int_equal(store_outbox_add(f->s, &m, &id), 0);
		if (i == 0)
			f->id = id;
	}
}

static void
fx_close(struct fx *f)
{
	char *cmd = xasprintf("rm -rf '%s'", f->dir);

	store_close(f->s);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f->db);
}

static void
fx_log(void *arg, bool warn, int64_t run, const char *msg)
{
	struct fx *f = arg;

	(void)run;
	assert_non_null(strstr(msg, "[eph] j: failed"));
	f->logged++;
	f->warned += warn;
}

static struct conf_mail
settings(const char *url)
{
	return (struct conf_mail){ .smtp = (char *)url,
		                   .from = (char *)"eph@example.com",
		                   .starttls = false,
		                   .max_age = 3600,
		                   .timeout = 10 };
}

static void
a_pass_with_the_server_down_backs_off_and_the_next_respects_it(void **state)
{
	char *url = xasprintf("smtp://127.0.0.1:%d", free_port());
	struct conf_mail cm = settings(url);
	struct notify_send_result res;
	struct outbox_msg m;
	struct diag d;
	struct fx f;
	double at;

	(void)state;
	fx_open(&f, 1);
	diag_init(&d);
	assert_int_equal(
	        notify_send_pass(f.s, &cm, (double)time(NULL) + 60, true, fx_log, &f, &res, &d), 0);
	assert_int_equal(res.retried, 1);
	assert_int_equal(res.sent, 0);
	assert_non_null(strstr(res.last_error, "onnect"));
	notify_send_result_clear(&res);
	assert_int_equal(store_outbox_get(f.s, f.id, &m), 0);
	assert_int_equal(m.state, OUTBOX_QUEUED);
	assert_int_equal(m.attempts, 1);
	assert_non_null(strstr(m.last_error, "onnect"));
	assert_int_equal(store_outbox_next_due(f.s, &at), 0);
	assert_true(at >= m.created_at + 29); /* the first backoff is 30 s */
	outbox_msg_clear(&m);
	assert_int_equal(f.logged, 1);
	assert_int_equal(f.warned, 1);
	/* a pass of what is due leaves it to its backoff; --all tries it again */
	assert_int_equal(
	        notify_send_pass(f.s, &cm, (double)time(NULL) + 60, false, fx_log, &f, &res, &d),
	        0);
	assert_int_equal(res.retried + res.sent, 0);
	assert_int_equal(f.logged, 1);
	assert_int_equal(
	        notify_send_pass(f.s, &cm, (double)time(NULL) + 60, true, fx_log, &f, &res, &d), 0);
	assert_int_equal(res.retried, 1);
	notify_send_result_clear(&res);
	assert_int_equal(store_outbox_get(f.s, f.id, &m), 0);
	assert_int_equal(m.attempts, 2);
	outbox_msg_clear(&m);
	assert_int_equal(diag_nerrors(&d), 0);
	diag_free(&d);
	free(url);
	fx_close(&f);
}

static void
a_pass_sends_every_queued_message_once(void **state)
{
	const char *data = getenv("EPH_TEST_DATA");
	char *script, *maildir, *ready, *port_s, *url;
	struct notify_send_result res;
	struct conf_mail cm;
	struct outbox_msg *v = NULL;
	struct diag d;
	struct fx f;
	size_t n = 0;
	int port = free_port();
	pid_t pid;

	(void)state;
	if (data == NULL || access("/usr/bin/python3", X_OK) != 0) {
		skip();
		return;
	}
	fx_open(&f, 2 * SENDER_MAX_XFERS + 1); /* more than the transfers at once */
	script = xasprintf("%s/../e2e/smtpd_server.py", data);
	maildir = xasprintf("%s/maildir", f.dir);
	ready = xasprintf("%s/ready", f.dir);
	port_s = xasprintf("%d", port);
	url = xasprintf("smtp://127.0.0.1:%d", port);
	cm = settings(url);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/usr/bin/python3", "python3", script, "--port", port_s, "--maildir", maildir,
		      "--ready", ready, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300 && access(ready, F_OK) != 0; i++)
		usleep(50000);
	assert_int_equal(access(ready, F_OK), 0);
	diag_init(&d);
	assert_int_equal(
	        notify_send_pass(f.s, &cm, (double)time(NULL) + 60, false, fx_log, &f, &res, &d),
	        0);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	assert_int_equal(res.sent, 2 * SENDER_MAX_XFERS + 1);
	assert_int_equal(res.retried + res.given_up, 0);
	assert_null(res.last_error);
	assert_int_equal(f.logged, 2 * SENDER_MAX_XFERS + 1);
	assert_int_equal(f.warned, 0);
	assert_int_equal(store_outbox_list(f.s, OUTBOX_SENT, 0, &v, &n), 0);
	assert_int_equal(n, 2 * SENDER_MAX_XFERS + 1);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i].attempts, 1);
	outbox_msgs_free(v, n);
	{
		char *cmd = xasprintf("test $(ls '%s/new' | wc -l) -eq %d", maildir,
		                      2 * SENDER_MAX_XFERS + 1);

		assert_int_equal(system(cmd), 0); /* each arrived exactly once */
		free(cmd);
	}
	diag_free(&d);
	free(script);
	free(maildir);
	free(ready);
	free(port_s);
	free(url);
	fx_close(&f);
}

/* The daemon stops eph-mail with SIGTERM in the middle of a transfer: it dies at once, and the
 * message stays queued, leased, not counted as an attempt. */
static void
a_pass_killed_mid_transfer_keeps_the_message_queued(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	struct outbox_msg m;
	struct timespec t0, t1;
	struct fx f;
	int lfd, status;
	pid_t pid;

	(void)state;
	/* a server that accepts connections (the kernel's backlog) but never says a word */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	fx_open(&f, 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* its own connection to the store, as eph-mail has */
		char *url = xasprintf("smtp://127.0.0.1:%d", ntohs(a.sin_port));
		struct conf_mail cm = settings(url);
		struct notify_send_result res;
		struct store *s = NULL;
		struct diag d;

		diag_init(&d);
		if (store_open(f.db, &s, &d) < 0)
			_exit(3);
		_exit(notify_send_pass(s, &cm, (double)time(NULL) + 60, true, NULL, NULL, &res,
		                       &d) < 0
		              ? 4
		              : 5); /* 5: the pass ended, which it must not before the signal */
	}
	usleep(500000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1000);
	assert_int_equal(store_outbox_get(f.s, f.id, &m), 0);
	assert_int_equal(m.state, OUTBOX_QUEUED);
	assert_int_equal(m.attempts, 0); /* not an attempt: the next pass tries it again */
	outbox_msg_clear(&m);
	{
		struct outbox_msg *v = NULL;
		size_t n = 0;

		/* leased (mail.timeout + 10 s): no other pass takes it meanwhile */
		assert_int_equal(store_outbox_due(f.s, (double)time(NULL), INFINITY, 0, &v, &n), 0);
		assert_int_equal(n, 0);
		outbox_msgs_free(v, n);
	}
	close(lfd);
	fx_close(&f);
}

static void
stop_on_signal(int sig)
{
	(void)sig;
	notify_send_stop();
}

/* eph-mail's SIGTERM handler (the daemon's stop) calls notify_send_stop: the pass starts no
 * further attempt, but the transfers going on end (here at mail.timeout: the server never
 * answers) and are recorded; the messages never started stay as they were. */
static void
a_stopped_pass_finishes_what_is_going_on_and_starts_nothing_more(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	struct outbox_msg *v = NULL;
	size_t n = 0, tried = 0, untouched = 0;
	struct fx f;
	int lfd, status;
	pid_t pid;

	(void)state;
	lfd = socket(AF_INET, SOCK_STREAM, 0); /* accepts (the backlog), never says a word */
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 16), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	fx_open(&f, SENDER_MAX_XFERS + 2);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *url = xasprintf("smtp://127.0.0.1:%d", ntohs(a.sin_port));
		struct conf_mail cm = settings(url);
		struct notify_send_result res;
		struct sigaction sa;
		struct store *s = NULL;
		struct diag d;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = stop_on_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		cm.timeout = 2;
		diag_init(&d);
		if (store_open(f.db, &s, &d) < 0)
			_exit(3);
		if (notify_send_pass(s, &cm, (double)time(NULL) + 60, true, NULL, NULL, &res, &d) <
		    0)
			_exit(4);
		_exit(res.retried == SENDER_MAX_XFERS && res.sent == 0 ? 0 : 5);
	}
	usleep(500000);
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(store_outbox_list(f.s, OUTBOX_QUEUED, 0, &v, &n), 0);
	assert_int_equal(n, SENDER_MAX_XFERS + 2);
	for (size_t i = 0; i < n; i++) {
		tried += v[i].attempts == 1;
		untouched += v[i].attempts == 0;
	}
	assert_int_equal(tried, SENDER_MAX_XFERS);
	assert_int_equal(untouched, 2);
	outbox_msgs_free(v, n);
	close(lfd);
	fx_close(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(backoff_doubles_up_to_an_hour),
		cmocka_unit_test(password_file_readable_by_others_is_refused),
		cmocka_unit_test(a_pass_with_the_server_down_backs_off_and_the_next_respects_it),
		cmocka_unit_test(a_pass_sends_every_queued_message_once),
		cmocka_unit_test(a_pass_killed_mid_transfer_keeps_the_message_queued),
		cmocka_unit_test(a_stopped_pass_finishes_what_is_going_on_and_starts_nothing_more),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
