/* tests/unit/test_notify.c: the notify policy, the message about a run (headers, encoding, no
 * header injection, the log tail), the outbox on a real SQLite file, and what eph and eph-mail
 * exchange (notify/mailproc.h). Sending itself is tests/unit/test_mailer.c. */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "notify/mailproc.h"
#include "notify/notify.h"
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

/* What eph writes on eph-mail's stdin, and what eph-mail prints, read back as written. */
static void
mail_settings_and_lines_survive_the_json_round_trip(void **state)
{
	static char a1[] = "root@example.com", a2[] = "ops@example.com";
	static char *admins[] = { a1, a2 };
	struct conf_mail m = { .smtp = (char *)"smtps://smtp.example.com:465",
		               .from = (char *)"eph@example.com",
		               .username = (char *)"eph \"quoted\" \xc3\xa9",
		               .password_file = (char *)"/etc/eph/pw",
		               .ca_file = (char *)"/etc/eph/ca.pem",
		               .starttls = true,
		               .admin = { admins, 2 },
		               .max_age = 86400,
		               .source_alarm = 3600,
		               .timeout = 60 };
	struct conf_mail back;
	struct mailproc_line l;
	struct diag d;
	char *json, *line;

	(void)state;
	diag_init(&d);
	json = mailproc_conf_json(&m);
	assert_null(strchr(json, '\n')); /* one line */
	assert_int_equal(mailproc_conf_parse(json, strlen(json), &back, &d), 0);
	assert_string_equal(back.smtp, m.smtp);
	assert_string_equal(back.from, m.from);
	assert_string_equal(back.username, m.username);
	assert_string_equal(back.password_file, m.password_file);
	assert_null(back.password_env);
	assert_string_equal(back.ca_file, m.ca_file);
	assert_true(back.starttls);
	assert_int_equal(back.admin.n, 2);
	assert_string_equal(back.admin.v[0], a1);
	assert_string_equal(back.admin.v[1], a2);
	assert_int_equal(back.max_age, 86400);
	assert_int_equal(back.source_alarm, 3600);
	assert_int_equal(back.timeout, 60);
	mailproc_conf_clear(&back);
	free(json);
	/* the other way: no section (nothing but the defaults) */
	m = (struct conf_mail){ 0 };
	json = mailproc_conf_json(&m);
	assert_int_equal(mailproc_conf_parse(json, strlen(json), &back, &d), 0);
	assert_null(back.smtp);
	assert_false(back.starttls);
	assert_int_equal(back.admin.n, 0);
	assert_null(back.admin.v);
	mailproc_conf_clear(&back);
	free(json);
	assert_int_equal(diag_nerrors(&d), 0);
	/* bad input is refused with a reason */
	assert_int_equal(mailproc_conf_parse("{\"smtp\": 3}", 11, &back, &d), -EINVAL);
	assert_int_equal(mailproc_conf_parse("[]", 2, &back, &d), -EINVAL);
	assert_int_equal(mailproc_conf_parse("{\"admin\": [1]}", 14, &back, &d), -EINVAL);
	assert_int_equal(diag_nerrors(&d), 3);
	assert_null(back.smtp);
	diag_free(&d);
	/* eph-mail's lines: an event, the counts, an error; bytes that are not UTF-8 survive as ?
	 */
	line = mailproc_event_line(true, 42, "mail \"x\" not sent: 550 \xff\xfe no");
	assert_int_equal(mailproc_parse_line(line, strlen(line), &l), 0);
	assert_int_equal(l.kind, MAILPROC_EVENT);
	assert_true(l.warn);
	assert_int_equal(l.run, 42);
	assert_string_equal(l.msg, "mail \"x\" not sent: 550 ?? no");
	mailproc_line_clear(&l);
	free(line);
	line = mailproc_result_line(3, 1, 2, "421 later");
	assert_int_equal(mailproc_parse_line(line, strlen(line), &l), 0);
	assert_int_equal(l.kind, MAILPROC_RESULT);
	assert_int_equal(l.sent, 3);
	assert_int_equal(l.retried, 1);
	assert_int_equal(l.given_up, 2);
	assert_string_equal(l.msg, "421 later");
	mailproc_line_clear(&l);
	free(line);
	line = mailproc_result_line(0, 0, 0, NULL);
	assert_int_equal(mailproc_parse_line(line, strlen(line), &l), 0);
	assert_int_equal(l.kind, MAILPROC_RESULT);
	assert_null(l.msg);
	free(line);
	line = mailproc_error_line("mail: cannot read the outbox: busy");
	assert_int_equal(mailproc_parse_line(line, strlen(line), &l), 0);
	assert_int_equal(l.kind, MAILPROC_ERROR);
	assert_string_equal(l.msg, "mail: cannot read the outbox: busy");
	mailproc_line_clear(&l);
	free(line);
	assert_int_equal(mailproc_parse_line("not json", 8, &l), -EINVAL);
	assert_int_equal(mailproc_parse_line("{\"sent\":-1}", 11, &l), -EINVAL);
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
		cmocka_unit_test(outbox_queues_once_claims_and_backs_off),
		cmocka_unit_test(admin_mail_is_queued_once_per_key),
		cmocka_unit_test(mail_settings_and_lines_survive_the_json_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
