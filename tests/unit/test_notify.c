/* tests/unit/test_notify.c: the notify policy, the message about a run (headers, encoding, no
 * header injection, the log tail), and the outbox on a real SQLite file. */
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
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "conf/conf.h"
#include "notify/notify.h"
#include "notify/sender.h"
#include "notify/smtp.h"
#include "store/outbox.h"
#include "store/store.h"
#include "util/diag.h"
#include "util/xalloc.h"

static char ops[] = "ops@example.com";
static char *emails[] = { ops, NULL };

static struct conf_notify
policy(unsigned on)
{
	return (struct conf_notify){ .email = { emails, 1 }, .on = on };
}

static struct store_run
run_in(enum store_state st)
{
	struct store_run r;

	store_run_init(&r);
	r.state = st;
	return r;
}

static void
failure_covers_every_unsuccessful_outcome(void **state)
{
	static const enum store_state bad[] = {
		STORE_FAILED, STORE_OOM, STORE_TIMEOUT, STORE_KILLED, STORE_LOST,
	};
	struct conf_notify n = policy(CONF_NOTIFY_FAILURE);

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct store_run r = run_in(bad[i]);

		assert_int_equal(notify_decide(&n, &r, NULL, false), NOTIFY_OUTCOME);
	}
	struct store_run ok = run_in(STORE_SUCCEEDED), sk = run_in(STORE_SKIPPED),
	                 ca = run_in(STORE_CANCELLED);
	assert_int_equal(notify_decide(&n, &ok, NULL, false), NOTIFY_NONE);
	assert_int_equal(notify_decide(&n, &sk, NULL, false), NOTIFY_NONE);
	assert_int_equal(notify_decide(&n, &ca, NULL, false), NOTIFY_NONE);
}

static void
specific_outcomes_send_only_their_own(void **state)
{
	struct conf_notify n = policy(CONF_NOTIFY_OOM);
	struct store_run oom = run_in(STORE_OOM), failed = run_in(STORE_FAILED),
	                 to = run_in(STORE_TIMEOUT);

	(void)state;
	assert_int_equal(notify_decide(&n, &oom, NULL, false), NOTIFY_OUTCOME);
	assert_int_equal(notify_decide(&n, &failed, NULL, false), NOTIFY_NONE);
	assert_int_equal(notify_decide(&n, &to, NULL, false), NOTIFY_NONE);
	n.on = CONF_NOTIFY_TIMEOUT | CONF_NOTIFY_LOST;
	assert_int_equal(notify_decide(&n, &to, NULL, false), NOTIFY_OUTCOME);
	assert_int_equal(notify_decide(&n, &oom, NULL, false), NOTIFY_NONE);
}

static void
no_recipients_no_mail(void **state)
{
	struct conf_notify n = { .on = CONF_NOTIFY_ALWAYS };
	struct store_run r = run_in(STORE_FAILED);

	(void)state;
	assert_int_equal(notify_decide(&n, &r, NULL, false), NOTIFY_NONE);
}

static void
recovered_fires_only_after_an_unsuccessful_run(void **state)
{
	struct conf_notify n = policy(CONF_NOTIFY_FAILURE | CONF_NOTIFY_RECOVERED);
	struct store_run ok = run_in(STORE_SUCCEEDED), prev_bad = run_in(STORE_OOM),
	                 prev_ok = run_in(STORE_SUCCEEDED);

	(void)state;
	assert_int_equal(notify_decide(&n, &ok, &prev_bad, false), NOTIFY_RECOVERED);
	assert_int_equal(notify_decide(&n, &ok, &prev_ok, false), NOTIFY_NONE);
	assert_int_equal(notify_decide(&n, &ok, NULL, false), NOTIFY_NONE);
	/* success + recovered: one message, as recovered */
	n.on |= CONF_NOTIFY_SUCCESS;
	assert_int_equal(notify_decide(&n, &ok, &prev_bad, false), NOTIFY_RECOVERED);
	assert_int_equal(notify_decide(&n, &ok, &prev_ok, false), NOTIFY_OUTCOME);
}

static void
an_attempt_that_will_be_retried_is_silent_unless_on_each_attempt(void **state)
{
	struct conf_notify n = policy(CONF_NOTIFY_FAILURE | CONF_NOTIFY_ALWAYS);
	struct store_run r = run_in(STORE_FAILED);

	(void)state;
	assert_int_equal(notify_decide(&n, &r, NULL, true), NOTIFY_NONE);
	assert_int_equal(notify_decide(&n, &r, NULL, false), NOTIFY_OUTCOME);
	n.on_each_attempt = true;
	assert_int_equal(notify_decide(&n, &r, NULL, true), NOTIFY_OUTCOME);
}

static void
a_retry_chain_does_not_count_for_recovered(void **state)
{
	struct store_run r = run_in(STORE_SUCCEEDED), a2 = run_in(STORE_FAILED),
	                 a1 = run_in(STORE_FAILED), older = run_in(STORE_SUCCEEDED),
	                 skipped = run_in(STORE_SKIPPED);
	int chain;

	(void)state;
	r.attempt = 3;
	a2.attempt = 2;
	a1.attempt = 1;
	/* walking back from attempt 3: attempts 2 and 1 are its own, then the older run counts */
	chain = r.attempt - 1;
	assert_false(notify_prev_counts(&r, &a2, &chain, false));
	assert_false(notify_prev_counts(&r, &a1, &chain, false));
	assert_false(notify_prev_counts(&r, &skipped, &chain, false));
	assert_true(notify_prev_counts(&r, &older, &chain, false));
	/* with on_each_attempt the failed attempt was mailed: it counts */
	chain = r.attempt - 1;
	assert_true(notify_prev_counts(&r, &a2, &chain, true));
}

static struct store_run
oom_run(void)
{
	struct store_run r = run_in(STORE_OOM);

	r.id = 1234;
	r.job = (char *)"train-model";
	r.started_at = 1764007200.0;
	r.ended_at = r.started_at + 41;
	r.peak_bytes = 2LL << 30;
	r.memory_limit = 2LL << 30;
	r.reason = (char *)"killed by the memory limit";
	r.signal = 9;
	r.trigger = STORE_SCHEDULE;
	r.scheduled_at = 1764007200;
	r.commit_id = (char *)"0123456789abcdef0123456789abcdef01234567";
	r.executor = (char *)"local";
	return r;
}

static void
subject_tells_outcome_duration_and_memory(void **state)
{
	struct store_run r = oom_run();
	struct notify_info in = { .run = &r, .event = NOTIFY_OUTCOME };
	char *s = notify_subject(&in);

	(void)state;
	assert_string_equal(s,
	                    "[eph] train-model: oom after 41.0s (peak 2.00 GiB / limit 2.00 GiB)");
	free(s);
	r.state = STORE_FAILED;
	r.exit_code = 3;
	r.peak_bytes = -1;
	s = notify_subject(&in);
	assert_string_equal(s, "[eph] train-model: failed after 41.0s (exit 3)");
	free(s);
}

static void
body_has_fields_chart_log_and_show_command(void **state)
{
	struct store_run r = oom_run();
	struct store_sample smp[] = { { 1764007200.0, 1 << 20 },
		                      { 1764007220.0, 1 << 30 },
		                      { 1764007240.0, 2LL << 30 } };
	struct notify_info in = { .run = &r,
		                  .event = NOTIFY_OUTCOME,
		                  .samples = smp,
		                  .nsamples = 3,
		                  .log_tail = "loading\nallocating\n",
		                  .commit_subject = "Train on the full set",
		                  .host = "box1" };
	struct buf b;

	(void)state;
	buf_init(&b, BUF_MAX_MSG);
	assert_int_equal(notify_body(&in, &b), 0);
	const char *t = buf_cstr(&b);
	assert_non_null(strstr(t, "Job:        train-model\n"));
	assert_non_null(strstr(t, "Outcome:    oom: killed by the memory limit\n"));
	assert_non_null(strstr(t, "Trigger:    schedule\n"));
	assert_non_null(strstr(t, "Scheduled:  2025-11-24 18:00:00 UTC\n"));
	assert_non_null(strstr(t, "Memory:     peak 2.00 GiB / limit 2.00 GiB (100%)"));
	assert_non_null(strstr(t, "Commit:     0123456789abcdef0123456789abcdef01234567 Train on "
	                          "the full set\n"));
	assert_non_null(strstr(t, "Host:       box1 (executor local)\n"));
	assert_non_null(strstr(t, "\u2581"));       /* the chart's lowest bar */
	assert_non_null(strstr(t, "\u2588"));       /* and its highest */
	assert_non_null(strstr(t, "allocating\n")); /* the log */
	assert_non_null(strstr(t, "eph show 1234\n"));
	buf_free(&b);
}

static void
log_tail_keeps_last_lines_joins_fragments_and_unescapes_backslash(void **state)
{
	const char log[] = "2026-11-24T18:00:00.000Z out line1\n"
	                   "2026-11-24T18:00:00.100Z out+ part\n"
	                   "2026-11-24T18:00:01.000Z out ial \\\\ done\n"
	                   "2026-11-24T18:00:02.000Z err \\x0d\\x1b[31mred\n"
	                   "2026-11-24T18:00:03.000Z out last\n";
	char *t;

	(void)state;
	t = notify_log_tail(log, sizeof(log) - 1, 3, false);
	assert_string_equal(t, "partial \\ done\n\\x0d\\x1b[31mred\nlast\n");
	free(t);
	/* read from the middle of the file: the first, partial record is dropped */
	t = notify_log_tail(log + 10, sizeof(log) - 11, 50, true);
	assert_string_equal(t, "partial \\ done\n\\x0d\\x1b[31mred\nlast\n");
	free(t);
	t = notify_log_tail("", 0, 50, false);
	assert_string_equal(t, "");
	free(t);
}

static char *
build(const char *subject, const char *body, int *rc)
{
	char *to[] = { (char *)"a@example.com", (char *)"b@example.com" };
	struct notify_hdr h = { "eph@example.com", to, 2, subject, 1764007200, "<x.1@host>" };
	struct buf b;

	buf_init(&b, BUF_MAX_MSG);
	*rc = notify_message(&h, body, &b);
	char *s = b.len > 0 ? buf_steal(&b) : xstrdup("");
	buf_free(&b);
	return s;
}

/* The header block of message M (up to the first empty line), a new string. */
static char *
headers_of(const char *m)
{
	const char *end = strstr(m, "\r\n\r\n");

	assert_non_null(end);
	return xstrndup(m, (size_t)(end - m) + 2);
}

static void
message_has_the_required_headers(void **state)
{
	int rc;
	char *m = build("[eph] j: failed", "hello\n", &rc), *h;

	(void)state;
	assert_int_equal(rc, 0);
	h = headers_of(m);
	assert_non_null(strstr(h, "Date: Mon, 24 Nov 2025 18:00:00 +0000\r\n"));
	assert_non_null(strstr(h, "Message-ID: <x.1@host>\r\n"));
	assert_non_null(strstr(h, "From: eph@example.com\r\n"));
	assert_non_null(strstr(h, "To: a@example.com,\r\n b@example.com\r\n"));
	assert_non_null(strstr(h, "Subject: [eph] j: failed\r\n"));
	assert_non_null(strstr(h, "MIME-Version: 1.0\r\n"));
	assert_non_null(strstr(h, "Content-Type: text/plain; charset=UTF-8\r\n"));
	assert_non_null(strstr(h, "Content-Transfer-Encoding: 8bit\r\n"));
	assert_non_null(strstr(h, "Auto-Submitted: auto-generated\r\n"));
	assert_non_null(strstr(m, "\r\n\r\nhello\r\n"));
	free(h);
	free(m);
}

static void
body_line_ends_become_crlf_and_cannot_start_headers(void **state)
{
	int rc;
	char *m = build("s", "out\r\nBcc: victim@example.com\rX: y\nlast", &rc), *h;

	(void)state;
	assert_int_equal(rc, 0);
	h = headers_of(m);
	assert_null(strstr(h, "Bcc"));
	assert_null(strstr(h, "X: y"));
	assert_non_null(strstr(m, "\r\n\r\nout\r\nBcc: victim@example.com\r\nX: y\r\nlast\r\n"));
	/* no bare CR or LF anywhere */
	for (const char *p = m; *p != '\0'; p++) {
		if (*p == '\r')
			assert_int_equal(p[1], '\n');
		if (*p == '\n')
			assert_true(p > m && p[-1] == '\r');
	}
	free(h);
	free(m);
}

static void
a_header_value_with_a_line_break_is_refused(void **state)
{
	int rc;
	char *m = build("ok\r\nBcc: victim@example.com", "x", &rc);

	(void)state;
	assert_int_equal(rc, -EINVAL);
	free(m);
}

static void
non_ascii_subject_is_rfc2047_encoded(void **state)
{
	int rc;
	char *m = build("[eph] caf\u00e9: failed", "x\n", &rc), *h;

	(void)state;
	assert_int_equal(rc, 0);
	h = headers_of(m);
	/* base64 of "[eph] café: failed" */
	assert_non_null(strstr(h, "Subject: =?UTF-8?B?W2VwaF0gY2Fmw6k6IGZhaWxlZA==?=\r\n"));
	free(h);
	free(m);
}

static void
long_lines_switch_to_quoted_printable(void **state)
{
	char *body = xmalloc(3001);
	int rc;

	(void)state;
	memset(body, 'a', 3000);
	body[0] = '=';
	body[3000] = '\0';
	char *m = build("s", body, &rc), *h = headers_of(m);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(h, "Content-Transfer-Encoding: quoted-printable\r\n"));
	assert_non_null(strstr(m, "\r\n\r\n=3Daaa"));
	for (const char *p = strstr(m, "\r\n\r\n") + 4; *p != '\0';) {
		size_t n = strcspn(p, "\r");

		assert_true(n <= 76);
		p += n;
		if (*p == '\r')
			p += 2;
	}
	free(h);
	free(m);
	free(body);
}

static void
message_ids_are_unique(void **state)
{
	char *a = notify_msgid("h", 1), *b = notify_msgid("h", 1);

	(void)state;
	assert_string_not_equal(a, b);
	assert_int_equal(strncmp(a, "<eph.1.", 7), 0);
	assert_non_null(strstr(a, "@h>"));
	free(a);
	free(b);
}

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

static void
outbox_queues_once_claims_and_backs_off(void **state)
{
	char dir[] = "/tmp/eph-test-outbox-XXXXXX";
	struct outbox_msg m, *v = NULL;
	struct store *s = NULL;
	struct diag d;
	int64_t id = 0, id2 = 0;
	size_t n = 0;
	double at;

	(void)state;
	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/eph.db", dir);
	diag_init(&d);
	assert_int_equal(store_open(path, &s, &d), 0);
	outbox_msg_init(&m);
	m.dedup = (char *)"run:7";
	m.run_id = 7;
	m.from = (char *)"eph@example.com";
	m.rcpt = (char *)"a@example.com\n";
	m.subject = (char *)"[eph] j: failed";
	m.data = (char *)"Subject: x\r\n\r\nbody\r\n";
	m.len = strlen(m.data);
	m.created_at = 1000;
	assert_int_equal(store_outbox_add(s, &m, &id), 0);
	assert_int_equal(store_outbox_add(s, &m, &id2), -EEXIST);
	assert_int_equal(store_outbox_due(s, 1000, 1000, 0, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].len, m.len);
	assert_memory_equal(v[0].data, m.data, m.len);
	outbox_msgs_free(v, n);
	/* one sender leases it; a second cannot */
	assert_int_equal(store_outbox_claim(s, id, 1000, 1000, 1070), 0);
	assert_int_equal(store_outbox_claim(s, id, 1001, 1001, 1071), -EALREADY);
	assert_int_equal(store_outbox_due(s, 1001, 1001, 0, &v, &n), 0);
	assert_int_equal(n, 0);
	/* a failed attempt: due again after the backoff, not before */
	assert_int_equal(store_outbox_retry(s, id, 1030, "421 try later"), 0);
	assert_int_equal(store_outbox_next_due(s, &at), 0);
	assert_true(at == 1030);
	assert_int_equal(store_outbox_due(s, 1010, 1010, 0, &v, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_outbox_due(s, 1010, INFINITY, 0, &v, &n), 0); /* all */
	assert_int_equal(n, 1);
	assert_int_equal(v[0].attempts, 1);
	assert_string_equal(v[0].last_error, "421 try later");
	outbox_msgs_free(v, n);
	assert_int_equal(store_outbox_sent(s, id, 1031), 0);
	assert_int_equal(store_outbox_next_due(s, &at), -ENOENT);
	assert_int_equal(store_outbox_claim(s, id, 2000, 2000, 2070), -EALREADY);
	/* a message given up is listed as failed */
	m.dedup = (char *)"run:8";
	assert_int_equal(store_outbox_add(s, &m, &id2), 0);
	assert_int_equal(store_outbox_fail(s, id2, 90000, "gave up"), 0);
	assert_int_equal(store_outbox_list(s, OUTBOX_FAILED, 0, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].id, id2);
	assert_null(v[0].data);
	outbox_msgs_free(v, n);
	store_close(s);
	diag_free(&d);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(path);
}

static void
admin_mail_is_queued_once_per_key(void **state)
{
	static const char yaml[] = "mail:\n  smtp: smtp://127.0.0.1:25\n  from: eph@example.com\n"
	                           "  admin: [root@example.com, ops@example.com]\n"
	                           "jobs:\n  j:\n    schedule: \"@hourly\"\n    run: \"true\"\n";
	char dir[] = "/tmp/eph-test-admin-XXXXXX";
	struct outbox_msg *v = NULL;
	struct conf *c = NULL;
	struct store *s = NULL;
	struct diag d;
	size_t n = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/eph.db", dir);
	diag_init(&d);
	assert_int_equal(conf_load_mem("t.yaml", dir, yaml, sizeof(yaml) - 1, &c, &d), 0);
	assert_int_equal(store_open(path, &s, &d), 0);
	assert_int_equal(notify_admin(s, c, "reload:1", "the jobs file did not reload",
	                              "t.yaml:3:5: unknown key\r\nBcc: x@example.com\n", &d),
	                 1);
	assert_int_equal(notify_admin(s, c, "reload:1", "again", "x", &d), 0);
	assert_int_equal(store_outbox_due(s, 1e12, 1e12, 0, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].rcpt, "root@example.com\nops@example.com\n");
	assert_string_equal(v[0].subject, "[eph] the jobs file did not reload");
	assert_non_null(strstr(v[0].data, "To: root@example.com,\r\n ops@example.com\r\n"));
	assert_non_null(
	        strstr(v[0].data, "\r\n\r\nt.yaml:3:5: unknown key\r\nBcc: x@example.com\r\n"));
	outbox_msgs_free(v, n);
	store_close(s);
	conf_free(c);
	diag_free(&d);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(path);
}

/* The daemon's sender on a real loop. */

struct sender_fx {
	char dir[64];
	struct store *s;
	int64_t id;
	uv_loop_t loop;
	uv_timer_t poll;
	struct notify_sender *ns;
	enum outbox_state want;
	int want_attempts;
	int ticks;
	bool stopped;
	int logged;
	uint64_t stop_asked, stop_done; /* uv_hrtime() */
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

static void
sender_fx_open(struct sender_fx *f)
{
	struct outbox_msg m;
	struct diag d;
	char *path;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/eph-test-sender-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	path = xasprintf("%s/eph.db", f->dir);
	diag_init(&d);
	assert_int_equal(store_open(path, &f->s, &d), 0);
	diag_free(&d);
	free(path);
	outbox_msg_init(&m);
	m.from = (char *)"eph@example.com";
	m.rcpt = (char *)"ops@example.com\n";
	m.subject = (char *)"[eph] j: failed";
	m.data =
	        (char *)"From: eph@example.com\r\nTo: ops@example.com\r\nSubject: q\r\n\r\nbody\r\n";
	m.len = strlen(m.data);
	assert_int_equal(store_outbox_add(f->s, &m, &f->id), 0);
	assert_int_equal(uv_loop_init(&f->loop), 0);
}

static void
sender_fx_close(struct sender_fx *f)
{
	char *cmd = xasprintf("rm -rf '%s'", f->dir);

	assert_int_equal(uv_loop_close(&f->loop), 0); /* the sender left no handle behind */
	store_close(f->s);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static void
sender_log(void *arg, bool warn, int64_t run, const char *msg)
{
	struct sender_fx *f = arg;

	(void)warn;
	(void)run;
	(void)msg;
	f->logged++;
}

static void
sender_stopped(void *arg)
{
	struct sender_fx *f = arg;

	f->stopped = true;
	f->stop_done = uv_hrtime();
}

/* Every 20 ms: is the message where the test wants it? Then stop the sender. */
static void
sender_poll(uv_timer_t *t)
{
	struct sender_fx *f = t->data;
	struct outbox_msg m;

	assert_int_equal(store_outbox_get(f->s, f->id, &m), 0);
	if ((m.state == f->want && m.attempts == f->want_attempts) || ++f->ticks > 1000) {
		notify_sender_stop(f->ns, sender_stopped, f);
		uv_close((uv_handle_t *)t, NULL);
	}
	outbox_msg_clear(&m);
}

static void
sender_run(struct sender_fx *f, int port)
{
	char *url = xasprintf("smtp://127.0.0.1:%d", port);
	struct conf_mail cm = { .smtp = url,
		                .from = (char *)"eph@example.com",
		                .starttls = false,
		                .max_age = 3600,
		                .timeout = 10 };

	assert_int_equal(notify_sender_start(&f->loop, f->s, &cm, sender_log, f, &f->ns), 0);
	free(url); /* the sender keeps its own copy */
	uv_timer_init(&f->loop, &f->poll);
	f->poll.data = f;
	uv_timer_start(&f->poll, sender_poll, 20, 20);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_true(f->stopped);
}

static void
sender_retries_with_backoff_when_the_server_is_down(void **state)
{
	struct sender_fx f;
	struct outbox_msg m;
	double at;

	(void)state;
	sender_fx_open(&f);
	f.want = OUTBOX_QUEUED;
	f.want_attempts = 1;
	sender_run(&f, free_port());
	assert_int_equal(store_outbox_get(f.s, f.id, &m), 0);
	assert_int_equal(m.state, OUTBOX_QUEUED);
	assert_int_equal(m.attempts, 1);
	assert_non_null(strstr(m.last_error, "onnect"));
	assert_int_equal(store_outbox_next_due(f.s, &at), 0);
	assert_true(at >= m.created_at + 29); /* the first backoff is 30 s */
	assert_int_equal(f.logged, 1);
	outbox_msg_clear(&m);
	sender_fx_close(&f);
}

static void
sender_sends_what_was_queued_before_it_started(void **state)
{
	const char *data = getenv("EPH_TEST_DATA");
	char *script, *maildir, *ready, *port_s;
	struct sender_fx f;
	struct outbox_msg m;
	int port = free_port();
	pid_t pid;

	(void)state;
	if (data == NULL || access("/usr/bin/python3", X_OK) != 0) {
		skip();
		return;
	}
	sender_fx_open(&f);
	script = xasprintf("%s/../e2e/smtpd_server.py", data);
	maildir = xasprintf("%s/maildir", f.dir);
	ready = xasprintf("%s/ready", f.dir);
	port_s = xasprintf("%d", port);
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
	f.want = OUTBOX_SENT;
	f.want_attempts = 1;
	sender_run(&f, port);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	assert_int_equal(store_outbox_get(f.s, f.id, &m), 0);
	assert_int_equal(m.state, OUTBOX_SENT);
	assert_int_equal(m.attempts, 1);
	outbox_msg_clear(&m);
	{
		char *cmd = xasprintf("test $(ls '%s/new' | wc -l) -eq 1", maildir);

		assert_int_equal(system(cmd), 0); /* exactly one message arrived */
		free(cmd);
	}
	free(script);
	free(maildir);
	free(ready);
	free(port_s);
	sender_fx_close(&f);
}

static void
stop_after(uv_timer_t *t)
{
	struct sender_fx *f = t->data;

	assert_int_equal(notify_sender_busy(f->ns), 1); /* connected, waiting for a greeting */
	f->stop_asked = uv_hrtime();
	notify_sender_stop(f->ns, sender_stopped, f);
	uv_close((uv_handle_t *)t, NULL);
}

static void
stopping_aborts_a_transfer_and_keeps_the_message_queued(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	struct conf_mail cm = { .from = (char *)"eph@example.com", .max_age = 3600, .timeout = 10 };
	struct sender_fx f;
	struct outbox_msg m;
	int lfd;

	(void)state;
	/* a server that accepts connections (the kernel's backlog) but never says a word */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	sender_fx_open(&f);
	cm.smtp = xasprintf("smtp://127.0.0.1:%d", ntohs(a.sin_port));
	assert_int_equal(notify_sender_start(&f.loop, f.s, &cm, sender_log, &f, &f.ns), 0);
	free(cm.smtp);
	uv_timer_init(&f.loop, &f.poll);
	f.poll.data = &f;
	uv_timer_start(&f.poll, stop_after, 300, 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	assert_true(f.stopped);
	/* stopping never waits for the silent server (libcurl's QUIT would, up to the timeout) */
	assert_true(f.stop_done - f.stop_asked < 1000000000u);
	assert_int_equal(f.logged, 0);
	assert_int_equal(store_outbox_get(f.s, f.id, &m), 0);
	assert_int_equal(m.state, OUTBOX_QUEUED);
	assert_int_equal(m.attempts, 0); /* not an attempt: the next start tries it again */
	outbox_msg_clear(&m);
	close(lfd);
	sender_fx_close(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(failure_covers_every_unsuccessful_outcome),
		cmocka_unit_test(specific_outcomes_send_only_their_own),
		cmocka_unit_test(no_recipients_no_mail),
		cmocka_unit_test(recovered_fires_only_after_an_unsuccessful_run),
		cmocka_unit_test(an_attempt_that_will_be_retried_is_silent_unless_on_each_attempt),
		cmocka_unit_test(a_retry_chain_does_not_count_for_recovered),
		cmocka_unit_test(subject_tells_outcome_duration_and_memory),
		cmocka_unit_test(body_has_fields_chart_log_and_show_command),
		cmocka_unit_test(log_tail_keeps_last_lines_joins_fragments_and_unescapes_backslash),
		cmocka_unit_test(message_has_the_required_headers),
		cmocka_unit_test(body_line_ends_become_crlf_and_cannot_start_headers),
		cmocka_unit_test(a_header_value_with_a_line_break_is_refused),
		cmocka_unit_test(non_ascii_subject_is_rfc2047_encoded),
		cmocka_unit_test(long_lines_switch_to_quoted_printable),
		cmocka_unit_test(message_ids_are_unique),
		cmocka_unit_test(backoff_doubles_up_to_an_hour),
		cmocka_unit_test(password_file_readable_by_others_is_refused),
		cmocka_unit_test(outbox_queues_once_claims_and_backs_off),
		cmocka_unit_test(admin_mail_is_queued_once_per_key),
		cmocka_unit_test(sender_retries_with_backoff_when_the_server_is_down),
		cmocka_unit_test(sender_sends_what_was_queued_before_it_started),
		cmocka_unit_test(stopping_aborts_a_transfer_and_keeps_the_message_queued),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
