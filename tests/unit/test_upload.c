/* tests/unit/test_upload.c: the uploads table (store/upload.h) on a real SQLite file, and what
 * eph and eph-upload exchange (upload/upload.h): settings, lines, keys, backoff. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "store/store.h"
#include "store/upload.h"
#include "tmpfx.h"
#include "upload/upload.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

static struct store *
open_store(const char *dir)
{
	char *path = xasprintf("%s/eph.db", dir);
	struct store *s = NULL;
	struct diag d;

	diag_init(&d);
	assert_int_equal(store_open(path, &s, &d), 0);
	diag_free(&d);
	free(path);
	return s;
}

static int64_t
terminal_run(struct store *s)
{
	struct store_run r;
	int64_t id = 0;

	store_run_init(&r);
	r.job = xstrdup("report");
	r.trigger = STORE_MANUAL;
	r.scheduled_at = 1764007200;
	r.executor = xstrdup("local");
	assert_int_equal(store_run_create(s, &r, &id), 0);
	store_run_clear(&r);
	store_run_init(&r);
	r.state = STORE_SUCCEEDED;
	r.ended_at = clock_real();
	assert_int_equal(store_run_finish(s, id, &r, NULL, 0), 0);
	store_run_clear(&r);
	return id;
}

static void
an_upload_is_queued_once_claimed_once_and_resumed_file_by_file(void **state)
{
	struct store *s = open_store(*state);
	int64_t id = terminal_run(s), *ids = NULL;
	struct store_upload u;
	double now = clock_real(), at;
	size_t n = 0;

	assert_int_equal(store_upload_next_due(s, &at), -ENOENT);
	assert_int_equal(store_upload_queue(s, id, "s3://b/p/report/1/"), 1);
	assert_int_equal(store_upload_queue(s, id, "s3://b/other/"), 0); /* once per run */
	assert_int_equal(store_upload_due(s, now + 1, now + 1, 0, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], id);
	free(ids);
	/* one pass holds it: a second cannot claim it, nor see it due */
	assert_int_equal(store_upload_claim(s, id, now + 1, now + 100), 0);
	assert_int_equal(store_upload_claim(s, id, now + 2, now + 100), -EALREADY);
	assert_int_equal(store_upload_due(s, now + 2, now + 2, 0, &ids, &n), 0);
	assert_int_equal(n, 0);
	/* a pass that goes on renews its lease: still its own past the first end */
	assert_int_equal(store_upload_renew(s, id, now + 100, now + 200), 0);
	assert_int_equal(store_upload_claim(s, id, now + 150, now + 300), -EALREADY);
	assert_int_equal(store_upload_next_due(s, &at), 0);
	assert_true(at == now + 200);
	/* a lease that lapsed and was taken over is no longer the first pass's to renew */
	assert_int_equal(store_upload_claim(s, id, now + 250, now + 400), 0);
	assert_int_equal(store_upload_renew(s, id, now + 200, now + 500), -EALREADY);
	assert_int_equal(store_upload_renew(s, id, now + 400, now + 500), 0);
	/* one file accepted, then the store fails: queued again with its backoff */
	assert_int_equal(store_upload_file_sent(s, id, "a.csv"), 0);
	assert_int_equal(store_upload_file_done(s, id, "a.csv", 10), 0);
	assert_int_equal(store_upload_file_sent(s, id, "a.csv"), 1);
	assert_int_equal(store_upload_file_sent(s, id, "b.csv"), 0);
	assert_int_equal(store_upload_end(s, id, UPLOAD_QUEUED, now + 3, now + 50, "down"), 0);
	assert_int_equal(store_upload_next_due(s, &at), 0);
	assert_true(at == now + 50);
	assert_int_equal(store_upload_due(s, now + 4, now + 4, 0, &ids, &n), 0);
	assert_int_equal(n, 0); /* waiting out its backoff... */
	assert_int_equal(store_upload_due(s, now + 4, 1e300, 0, &ids, &n), 0);
	assert_int_equal(n, 1); /* ...but a fresh start takes every queued one */
	free(ids);
	assert_int_equal(store_upload_due(s, now + 4, now + 4, id, &ids, &n), 0);
	assert_int_equal(n, 1); /* as does --run */
	free(ids);
	/* and the pass it starts claims it in its backoff */
	assert_int_equal(store_upload_claim(s, id, now + 4, now + 5), 0);
	assert_int_equal(store_upload_get(s, id, &u), 0);
	assert_int_equal(u.state, UPLOAD_QUEUED);
	assert_int_equal(u.attempts, 1);
	assert_int_equal(u.sent, 1);
	assert_int_equal(u.sent_bytes, 10);
	assert_string_equal(u.last_error, "down");
	assert_string_equal(u.url, "s3://b/p/report/1/");
	store_upload_clear(&u);
	/* retention keeps the run while its upload is queued */
	assert_int_equal(store_run_delete(s, id), -EAGAIN);
	assert_int_equal(store_upload_claim(s, id, now + 60, now + 100), 0);
	assert_int_equal(store_upload_end(s, id, UPLOAD_DONE, now + 61, 0, NULL), 0);
	assert_int_equal(store_upload_get(s, id, &u), 0);
	assert_int_equal(u.state, UPLOAD_DONE);
	assert_int_equal(u.attempts, 1); /* the pass that succeeded is not a failed one */
	assert_null(u.last_error);
	store_upload_clear(&u);
	assert_int_equal(store_upload_next_due(s, &at), -ENOENT);
	assert_int_equal(store_run_delete(s, id), 0);
	assert_int_equal(store_upload_get(s, id, &u), -ENOENT); /* gone with its run */
	store_upload_clear(&u);
	store_close(s);
}

static void
a_refused_upload_is_not_due_again(void **state)
{
	struct store *s = open_store(*state);
	int64_t id = terminal_run(s), *ids = NULL;
	struct store_upload u;
	size_t n = 0;
	double now = clock_real();

	assert_int_equal(store_upload_queue(s, id, "s3://b/report/1/"), 1);
	assert_int_equal(store_upload_claim(s, id, now, now + 100), 0);
	assert_int_equal(store_upload_end(s, id, UPLOAD_REFUSED, now, 0, "403 InvalidAccessKeyId"),
	                 0);
	assert_int_equal(store_upload_due(s, now, 1e300, 0, &ids, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_upload_get(s, id, &u), 0);
	assert_int_equal(u.state, UPLOAD_REFUSED);
	assert_int_equal(u.attempts, 1);
	assert_string_equal(upload_state_name(u.state), "refused");
	store_upload_clear(&u);
	store_close(s);
}

static void
runs_without_an_upload_are_found_from_the_first_upload_on(void **state)
{
	struct store *s = open_store(*state);
	int64_t before = terminal_run(s), *ids = NULL, with, without;
	size_t n = 0;

	/* no upload was ever queued: nothing is unqueued (a new results_store uploads no
	 * history) */
	assert_int_equal(store_upload_unqueued(s, 0, &ids, &n), 0);
	assert_int_equal(n, 0);
	with = terminal_run(s);
	assert_int_equal(store_upload_queue(s, with, "s3://b/report/2/"), 1);
	without = terminal_run(s);
	assert_int_equal(store_upload_unqueued(s, 0, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], without);
	free(ids);
	assert_int_equal(store_upload_unqueued(s, clock_real() + 10, &ids, &n), 0);
	assert_int_equal(n, 0); /* outside the window */
	(void)before;
	store_close(s);
}

static void
settings_and_lines_survive_the_trip(void **state)
{
	struct conf_results_store cs = { 0 }, back;
	struct upload_line l;
	struct diag d;
	char *json, *line;

	(void)state;
	cs.url = xstrdup("s3://b/p");
	cs.bucket = xstrdup("b");
	cs.prefix = xstrdup("p");
	cs.endpoint = xstrdup("http://127.0.0.1:9000");
	cs.region = xstrdup("us-east-1");
	cs.access_key = (struct conf_secret){ xstrdup("results_store.access_key"), CONF_SECRET_ENV,
		                              xstrdup("AK"), 1, 1 };
	cs.secret_key = (struct conf_secret){ xstrdup("results_store.secret_key"), CONF_SECRET_FILE,
		                              xstrdup("/k/s"), 2, 1 };
	json = upload_conf_json(&cs);
	diag_init(&d);
	assert_int_equal(upload_conf_parse(json, strlen(json), &back, &d), 0);
	assert_string_equal(back.endpoint, cs.endpoint);
	assert_int_equal(back.access_key.kind, CONF_SECRET_ENV);
	assert_string_equal(back.access_key.from, "AK");
	assert_int_equal(back.secret_key.kind, CONF_SECRET_FILE);
	assert_string_equal(back.secret_key.from, "/k/s");
	upload_conf_clear(&back);
	assert_int_equal(upload_conf_parse("{}", 2, &back, &d), -EINVAL);
	diag_free(&d);
	free(json);
	line = upload_run_url(&cs, "report", 12);
	assert_string_equal(line, "s3://b/p/report/12/");
	free(line);
	free(cs.prefix);
	cs.prefix = xstrdup("");
	line = upload_run_url(&cs, "report", 12);
	assert_string_equal(line, "s3://b/report/12/");
	free(line);
	upload_conf_clear(&cs);

	line = upload_line_failed(7, true, "said 403 \xff", 0);
	assert_int_equal(upload_line_parse(line, strlen(line), &l), 0);
	assert_int_equal(l.run, 7);
	assert_string_equal(l.state, "refused");
	assert_string_equal(l.error, "said 403 ?"); /* a server's bytes: valid JSON all the same */
	upload_line_clear(&l);
	free(line);
	line = upload_line_done(7, 3, 3, 1024, "s3://b/p/report/7/");
	assert_int_equal(upload_line_parse(line, strlen(line), &l), 0);
	assert_string_equal(l.state, "done");
	assert_int_equal(l.bytes, 1024);
	assert_false(l.last);
	upload_line_clear(&l);
	free(line);
	line = upload_line_last(1, 2, 3);
	assert_int_equal(upload_line_parse(line, strlen(line), &l), 0);
	assert_true(l.last);
	assert_int_equal(l.nrefused, 3);
	upload_line_clear(&l);
	free(line);
	assert_int_equal(upload_line_parse("nope", 4, &l), -EINVAL);
	assert_int_equal(upload_line_parse("{}", 2, &l), -EINVAL);
}

static void
backoff_doubles_up_to_its_cap(void **state)
{
	(void)state;
	assert_true(upload_backoff(1) == UPLOAD_RETRY_MIN);
	assert_true(upload_backoff(2) == 2 * UPLOAD_RETRY_MIN);
	assert_true(upload_backoff(4) == 8 * UPLOAD_RETRY_MIN);
	assert_true(upload_backoff(100) == UPLOAD_RETRY_MAX);
}

static void
a_key_is_one_line_of_a_private_file_or_a_variable(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/key", dir), *out = NULL, *why = NULL;
	struct conf_secret k = { xstrdup("results_store.secret_key"), CONF_SECRET_FILE,
		                 xstrdup(path), 1, 1 };
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs("s3cr3t/+key\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(upload_key_read(&k, &out, &why), 0);
	assert_string_equal(out, "s3cr3t/+key");
	free(out);
	assert_int_equal(chmod(path, 0644), 0);
	assert_true(upload_key_read(&k, &out, &why) < 0);
	assert_null(out);
	assert_non_null(strstr(why, "can be read by group or others (mode 0644)"));
	assert_null(strstr(why, "s3cr3t")); /* never the value */
	free(why);
	free(k.from);
	k.kind = CONF_SECRET_ENV;
	k.from = xstrdup("EPH_TEST_UPLOAD_KEY_UNSET");
	unsetenv(k.from);
	assert_int_equal(upload_key_read(&k, &out, &why), -ENOENT);
	assert_non_null(strstr(why, "is not set"));
	free(why);
	setenv(k.from, "AKIAX", 1);
	assert_int_equal(upload_key_read(&k, &out, &why), 0);
	assert_string_equal(out, "AKIAX");
	free(out);
	free(k.from);
	free(k.name);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		        an_upload_is_queued_once_claimed_once_and_resumed_file_by_file, tmpfx_setup,
		        tmpfx_teardown),
		cmocka_unit_test_setup_teardown(a_refused_upload_is_not_due_again, tmpfx_setup,
		                                tmpfx_teardown),
		cmocka_unit_test_setup_teardown(
		        runs_without_an_upload_are_found_from_the_first_upload_on, tmpfx_setup,
		        tmpfx_teardown),
		cmocka_unit_test(settings_and_lines_survive_the_trip),
		cmocka_unit_test(backoff_doubles_up_to_its_cap),
		cmocka_unit_test_setup_teardown(a_key_is_one_line_of_a_private_file_or_a_variable,
		                                tmpfx_setup, tmpfx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
