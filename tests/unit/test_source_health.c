/* tests/unit/test_source_health.c: a source's fetch health (source_health) through a real
 * outage of a real repository (a local bare repository moved away, then back), and the admin's
 * alarm built from it (notify_source_alarm) in a real store. The test drives git through
 * system(); the code under test never uses a shell. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "gitfx.h"
#include "notify/notify.h"
#include "source/source.h"
#include "store/outbox.h"
#include "store/store.h"
#include "util/diag.h"
#include "util/xalloc.h"

static struct conf_source
src_of(const char *repo, const char *branch)
{
	struct conf_source s;

	conf_source_defaults(&s);
	s.repo = (char *)repo;
	s.branch = (char *)branch;
	s.refresh = 0; /* every resolve fetches */
	s.fetch_timeout = 30;
	return s;
}

/* A run is created: resolves SRC (use_last), which must succeed. */
static void
resolve(const struct gitfx *f, const struct conf_source *s)
{
	struct source_pin pin;
	struct diag d;

	diag_init(&d);
	if (source_resolve(f->state, s, f->root, &pin, &d) != 0) {
		diag_print(&d, stderr);
		fail_msg("source_resolve failed");
	}
	source_pin_clear(&pin);
	diag_free(&d);
}

static void
health(const struct gitfx *f, const struct conf_source *s, struct source_health *h)
{
	assert_int_equal(source_health(f->state, s, f->root, h), 0);
}

static void
sources_run_in_place_have_no_health(void **state)
{
	struct gitfx *f = *state;
	struct conf_source none = src_of(NULL, NULL), plain, missing;
	struct source_health h;
	char *dir = xasprintf("%s/plain", f->root);

	gitfx_sh("mkdir '%s'", dir);
	plain = src_of(dir, NULL);
	missing = src_of("does/not/exist", NULL);
	health(f, &none, &h);
	assert_false(h.fetched);
	assert_null(h.repo);
	source_health_clear(&h);
	health(f, &plain, &h);
	assert_false(h.fetched);
	assert_null(h.key);
	source_health_clear(&h);
	assert_int_equal(source_health(f->state, &missing, f->root, &h), -ENOENT);
	assert_false(h.fetched);
	source_health_clear(&h);
	free(dir);
}

static void
a_repository_never_fetched_is_not_failing_and_shows_no_credentials(void **state)
{
	struct gitfx *f = *state;
	struct conf_source s = src_of("https://alice:s3cret@127.0.0.1:1/acme/data.git", "main");
	struct source_health h;

	health(f, &s, &h);
	assert_true(h.fetched);
	assert_false(h.mirrored);
	assert_false(h.failing);
	assert_true(h.attempt_at == 0 && h.fetched_at == 0 && h.failing_since == 0);
	assert_null(strstr(h.repo, "s3cret"));
	assert_non_null(strstr(h.repo, "127.0.0.1:1/acme/data.git"));
	assert_int_equal(strlen(h.key), 32);
	assert_string_equal(h.branch, "main");
	assert_null(h.commit);
	assert_null(h.error);
	source_health_clear(&h);
	source_health_clear(NULL);
}

/* One outage: failing_since is the first failure, kept by the next ones; a success clears it;
 * the next outage has a later failing_since. */
static void
an_outage_is_recorded_from_its_first_failure_until_a_success(void **state)
{
	struct gitfx *f = *state;
	struct conf_source s = src_of(f->url, NULL); /* the branch: the mirror's HEAD */
	struct source_health h;
	char *a = gitfx_commit_push(f, "a.txt", "one"), *gone = xasprintf("%s.gone", f->origin);
	double fetched, since;

	resolve(f, &s);
	health(f, &s, &h);
	assert_true(h.fetched);
	assert_true(h.mirrored);
	assert_string_equal(h.branch, "main");
	assert_string_equal(h.commit, a);
	assert_false(h.failing);
	assert_true(h.fetched_at > 0);
	assert_true(h.attempt_at == h.fetched_at);
	assert_true(h.failing_since == 0);
	assert_null(h.error);
	fetched = h.fetched_at;
	source_health_clear(&h);

	gitfx_sh("mv '%s' '%s'", f->origin, gone);
	resolve(f, &s); /* use_last: the run goes on with A */
	health(f, &s, &h);
	assert_true(h.failing);
	assert_true(h.failing_since > fetched);
	assert_true(h.failing_since == h.attempt_at);
	assert_true(h.fetched_at == fetched);
	assert_string_equal(h.commit, a);
	assert_non_null(h.error);
	assert_non_null(strstr(h.error, "origin.git")); /* git's words name the repository */
	since = h.failing_since;
	source_health_clear(&h);

	resolve(f, &s); /* still failing: the outage started at the same time */
	health(f, &s, &h);
	assert_true(h.failing);
	assert_true(h.failing_since == since);
	assert_true(h.attempt_at > since);
	source_health_clear(&h);

	gitfx_sh("mv '%s' '%s'", gone, f->origin);
	resolve(f, &s);
	health(f, &s, &h);
	assert_false(h.failing);
	assert_true(h.failing_since == 0);
	assert_null(h.error);
	assert_true(h.fetched_at > since);
	source_health_clear(&h);

	gitfx_sh("mv '%s' '%s'", f->origin, gone);
	resolve(f, &s);
	health(f, &s, &h);
	assert_true(h.failing);
	assert_true(h.failing_since > since); /* a new outage */
	source_health_clear(&h);
	free(gone);
	free(a);
}

/* A jobs file with mail to the admin and source_alarm 1h, loaded from memory. */
static struct conf *
conf_with_mail(const char *dir, const char *admin_line, const char *on_fetch_error)
{
	char *yaml = xasprintf("source:\n"
	                       "  repo: git@github.com:acme/data-scripts.git\n"
	                       "  on_fetch_error: %s\n"
	                       "mail:\n"
	                       "  smtp: smtp://127.0.0.1:2525\n"
	                       "  from: eph@example.com\n"
	                       "  starttls: false\n"
	                       "%s"
	                       "  source_alarm: 1h\n"
	                       "jobs:\n"
	                       "  j:\n"
	                       "    schedule: \"@daily\"\n"
	                       "    run: \"true\"\n",
	                       on_fetch_error, admin_line);
	struct conf *c = NULL;
	struct diag d;

	diag_init(&d);
	if (conf_load_mem("t.yaml", dir, yaml, strlen(yaml), &c, &d) != 0) {
		diag_print(&d, stderr);
		fail_msg("conf_load_mem");
	}
	diag_free(&d);
	free(yaml);
	return c;
}

static void
the_alarm_is_queued_once_per_outage_after_source_alarm(void **state)
{
	struct gitfx *f = *state;
	struct conf *c = conf_with_mail(f->root, "  admin: [root@example.com]\n", "use_last");
	char *db = xasprintf("%s/eph.db", f->state), *body;
	struct source_health h = {
		.fetched = true,
		.mirrored = true,
		.repo = (char *)"git@github.com:acme/data-scripts.git",
		.key = (char *)"0123456789abcdef0123456789abcdef",
		.branch = (char *)"main",
		.commit = (char *)"89abcdef0123456789abcdef0123456789abcdef",
		.attempt_at = 1800000000 + 3720,
		.failing = true,
		.fetched_at = 1800000000 - 60,
		.failing_since = 1800000000,
		.error = (char *)"fatal: Could not read from remote repository.",
	};
	struct outbox_msg *v = NULL;
	struct store *s = NULL;
	struct diag d;
	size_t n = 0;

	diag_init(&d);
	assert_int_equal(store_open(db, &s, &d), 0);
	/* not yet: 1h less a second */
	assert_int_equal(notify_source_alarm(s, c, &h, h.failing_since + 3599, &d), 0);
	/* in place, or not failing: never */
	h.fetched = false;
	assert_int_equal(notify_source_alarm(s, c, &h, h.failing_since + 99999, &d), 0);
	h.fetched = true;
	h.failing = false;
	assert_int_equal(notify_source_alarm(s, c, &h, h.failing_since + 99999, &d), 0);
	h.failing = true;
	assert_int_equal(notify_source_alarm(s, c, &h, h.failing_since + 3720, &d), 1);
	/* later calls during the same outage (a restarted daemon included): nothing */
	assert_int_equal(notify_source_alarm(s, c, &h, h.failing_since + 3721, &d), 0);
	assert_int_equal(notify_source_alarm(s, c, &h, h.failing_since + 99999, &d), 0);
	assert_int_equal(diag_nerrors(&d), 0);
	assert_int_equal(store_outbox_due(s, 1e12, 1e12, 0, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].rcpt, "root@example.com\n");
	assert_string_equal(
	        v[0].subject,
	        "[eph] source unreachable for 1h02m: git@github.com:acme/data-scripts.git");
	body = strstr(v[0].data, "\r\n\r\n");
	assert_non_null(body);
	assert_non_null(strstr(body, "Repository:    git@github.com:acme/data-scripts.git\r\n"));
	assert_non_null(strstr(body, "Branch:        main\r\n"));
	assert_non_null(strstr(body, "Failing since: 2027-01-15 08:00:00 UTC\r\n"));
	assert_non_null(strstr(body, "Last fetched:  2027-01-15 07:59:00 UTC\r\n"));
	assert_non_null(
	        strstr(body, "Runs now use:  89abcdef0123456789abcdef0123456789abcdef\r\n"));
	assert_non_null(strstr(body, "\r\nfatal: Could not read from remote repository.\r\n"));
	assert_non_null(strstr(body, "on_fetch_error is use_last"));
	outbox_msgs_free(v, n);
	v = NULL;

	/* the next outage: a new message */
	h.failing_since += 86400;
	assert_int_equal(notify_source_alarm(s, c, &h, h.failing_since + 3600, &d), 1);
	assert_int_equal(store_outbox_due(s, 1e12, 1e12, 0, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(
	        v[1].subject,
	        "[eph] source unreachable for 1h00m: git@github.com:acme/data-scripts.git");
	outbox_msgs_free(v, n);
	v = NULL;

	/* failing_since unknown (a state from an older eph): nothing until it is recorded */
	h.failing_since = 0;
	assert_int_equal(notify_source_alarm(s, c, &h, 1e10, &d), 0);
	store_close(s);
	conf_free(c);
	diag_free(&d);
	free(db);
}

static void
without_an_admin_nothing_is_queued_and_fail_says_runs_fail(void **state)
{
	struct gitfx *f = *state;
	struct conf *none = conf_with_mail(f->root, "", "use_last");
	struct conf *c = conf_with_mail(f->root, "  admin: [root@example.com]\n", "fail");
	char *db = xasprintf("%s/eph.db", f->state);
	struct source_health h = {
		.fetched = true,
		.mirrored = true,
		.repo = (char *)"/srv/git/data.git",
		.key = (char *)"fedcba9876543210fedcba9876543210",
		.attempt_at = 1000,
		.failing = true,
		.failing_since = 1000,
		.error =
		        (char *)"fatal: '/srv/git/data.git' does not appear to be a git repository",
	};
	struct outbox_msg *v = NULL;
	struct store *s = NULL;
	struct diag d;
	size_t n = 0;

	diag_init(&d);
	assert_int_equal(store_open(db, &s, &d), 0);
	assert_int_equal(notify_source_alarm(s, none, &h, 1e9, &d), 0);
	assert_int_equal(store_outbox_due(s, 1e12, 1e12, 0, &v, &n), 0);
	assert_int_equal(n, 0);
	outbox_msgs_free(v, n);
	v = NULL;
	assert_int_equal(notify_source_alarm(s, c, &h, 1000 + 7200, &d), 1);
	assert_int_equal(store_outbox_due(s, 1e12, 1e12, 0, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_non_null(strstr(v[0].data, "Last fetched:  never\r\n"));
	assert_non_null(strstr(v[0].data, "Branch:        (the remote's default branch)\r\n"));
	assert_non_null(strstr(v[0].data, "on_fetch_error is fail, so every run fails"));
	outbox_msgs_free(v, n);
	store_close(s);
	conf_free(c);
	conf_free(none);
	diag_free(&d);
	free(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(sources_run_in_place_have_no_health, gitfx_setup,
		                                gitfx_teardown),
		cmocka_unit_test_setup_teardown(
		        a_repository_never_fetched_is_not_failing_and_shows_no_credentials,
		        gitfx_setup, gitfx_teardown),
		cmocka_unit_test_setup_teardown(
		        an_outage_is_recorded_from_its_first_failure_until_a_success, gitfx_setup,
		        gitfx_teardown),
		cmocka_unit_test_setup_teardown(
		        the_alarm_is_queued_once_per_outage_after_source_alarm, gitfx_setup,
		        gitfx_teardown),
		cmocka_unit_test_setup_teardown(
		        without_an_admin_nothing_is_queued_and_fail_says_runs_fail, gitfx_setup,
		        gitfx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
