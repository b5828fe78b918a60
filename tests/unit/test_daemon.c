/* tests/unit/test_daemon.c: the daemon's event heap, its due-fire planning (catch-up) and its
 * retry backoff. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/evheap.h"
#include "daemon/plan.h"
#include "sched/cronexpr.h"
#include "store/store.h"
#include "util/diag.h"

static struct cronexpr *
parse(const char *text)
{
	struct cronexpr *ce = NULL;
	struct diag d;

	diag_init(&d);
	assert_int_equal(cronexpr_parse(text, NULL, &ce, &d), 0);
	diag_free(&d);
	return ce;
}

static void
heap_pops_in_time_then_push_order(void **state)
{
	enum { N = 500 };
	struct evheap_node nodes[N];
	struct evheap h;
	int64_t last_at = INT64_MIN;
	uint64_t last_seq = 0;

	(void)state;
	evheap_init(&h);
	srandom(7);
	for (int i = 0; i < N; i++) {
		evheap_node_init(&nodes[i], 0);
		evheap_push(&h, &nodes[i], (int64_t)(random() % 50));
	}
	/* remove a few from the middle: they must not come out */
	for (int i = 0; i < N; i += 7)
		evheap_remove(&h, &nodes[i]);
	for (int i = 0; i < N; i += 7)
		assert_false(evheap_contains(&nodes[i]));
	for (int k = 0; k < N - (N + 6) / 7; k++) {
		struct evheap_node *n = evheap_pop(&h);

		assert_non_null(n);
		assert_true(n->at > last_at || (n->at == last_at && n->seq > last_seq));
		assert_true((n - nodes) % 7 != 0);
		last_at = n->at;
		last_seq = n->seq;
	}
	assert_null(evheap_pop(&h));
	evheap_free(&h);
}

static void
on_time_fire_is_schedule(void **state)
{
	struct cronexpr *ce = parse("@every 10s");
	struct plan_fire *f = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(plan_due(ce, NULL, 1000, 1012, 5, CONF_CATCHUP_NONE, 0, &f, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(f[0].at, 1010);
	assert_int_equal(f[0].trigger, STORE_SCHEDULE);
	free(f);
	/* nothing due yet */
	assert_int_equal(plan_due(ce, NULL, 1010, 1019, 5, CONF_CATCHUP_ALL, 0, &f, &n), 0);
	assert_int_equal(n, 0);
	assert_null(f);
	cronexpr_free(ce);
}

static void
catchup_none_drops_missed_fires(void **state)
{
	struct cronexpr *ce = parse("@every 10s");
	struct plan_fire *f = NULL;
	size_t n = 0;

	(void)state;
	/* down from 1000 to 1100: 1010..1100 were missed, 1100 is on time */
	assert_int_equal(plan_due(ce, NULL, 1000, 1100, 0, CONF_CATCHUP_NONE, 0, &f, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(f[0].at, 1100);
	assert_int_equal(f[0].trigger, STORE_SCHEDULE);
	free(f);
	assert_int_equal(plan_due(ce, NULL, 1000, 1105, 0, CONF_CATCHUP_NONE, 0, &f, &n), 0);
	assert_int_equal(n, 0);
	cronexpr_free(ce);
}

static void
catchup_latest_runs_only_the_last_missed(void **state)
{
	struct cronexpr *ce = parse("@every 10s");
	struct plan_fire *f = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(plan_due(ce, NULL, 1000, 1105, 0, CONF_CATCHUP_LATEST, 0, &f, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(f[0].at, 1100);
	assert_int_equal(f[0].trigger, STORE_CATCHUP);
	free(f);
	/* the latest missed one, then the on-time one */
	assert_int_equal(plan_due(ce, NULL, 1000, 1101, 2, CONF_CATCHUP_LATEST, 0, &f, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(f[0].at, 1090);
	assert_int_equal(f[0].trigger, STORE_CATCHUP);
	assert_int_equal(f[1].at, 1100);
	assert_int_equal(f[1].trigger, STORE_SCHEDULE);
	free(f);
	cronexpr_free(ce);
}

static void
catchup_all_respects_the_starting_deadline(void **state)
{
	struct cronexpr *ce = parse("@every 10s");
	struct plan_fire *f = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(plan_due(ce, NULL, 1000, 1105, 0, CONF_CATCHUP_ALL, 0, &f, &n), 0);
	assert_int_equal(n, 10);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(f[i].at, 1010 + 10 * (int64_t)i);
		assert_int_equal(f[i].trigger, STORE_CATCHUP);
	}
	free(f);
	/* only those at most 30 s old at 1105: 1080, 1090, 1100 */
	assert_int_equal(plan_due(ce, NULL, 1000, 1105, 0, CONF_CATCHUP_ALL, 30, &f, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(f[0].at, 1080);
	assert_int_equal(f[2].at, 1100);
	free(f);
	/* a deadline that every missed fire passed: nothing for latest either */
	assert_int_equal(plan_due(ce, NULL, 1000, 1105, 0, CONF_CATCHUP_LATEST, 4, &f, &n), 0);
	assert_int_equal(n, 0);
	cronexpr_free(ce);
}

static void
catchup_all_keeps_the_latest_thousand(void **state)
{
	struct cronexpr *ce = parse("@every 1s");
	struct plan_fire *f = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(plan_due(ce, NULL, 0, 5000, 0, CONF_CATCHUP_ALL, 0, &f, &n), 0);
	/* the latest 1000 missed ones, then the one on time */
	assert_int_equal(n, PLAN_MAX_CATCHUP + 1);
	assert_int_equal(f[0].at, 5000 - PLAN_MAX_CATCHUP);
	assert_int_equal(f[0].trigger, STORE_CATCHUP);
	assert_int_equal(f[n - 1].at, 5000);
	assert_int_equal(f[n - 1].trigger, STORE_SCHEDULE);
	for (size_t i = 1; i < n; i++)
		assert_int_equal(f[i].at, f[i - 1].at + 1);
	free(f);
	cronexpr_free(ce);
}

static void
backoff_doubles_and_is_capped(void **state)
{
	(void)state;
	assert_int_equal(plan_backoff(30, 1), 30);
	assert_int_equal(plan_backoff(30, 2), 60);
	assert_int_equal(plan_backoff(30, 3), 120);
	assert_int_equal(plan_backoff(0, 5), 0);
	assert_int_equal(plan_backoff(3600, 10), 86400);
	assert_int_equal(plan_backoff(100000, 3), 100000);
}

static void
retention_delete_refuses_live_runs(void **state)
{
	char dir[] = "/tmp/eph-test-daemon-XXXXXX", *db;
	struct store *s = NULL;
	struct store_run r, f;
	struct diag d;
	int64_t id;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_true(asprintf(&db, "%s/eph.db", dir) > 0);
	diag_init(&d);
	assert_int_equal(store_open(db, &s, &d), 0);
	store_run_init(&r);
	r.job = strdup("j");
	assert_int_equal(store_run_create(s, &r, &id), 0);
	assert_int_equal(store_run_delete(s, id), -EBUSY); /* queued: not terminal */
	store_run_init(&f);
	f.state = STORE_SUCCEEDED;
	assert_int_equal(store_run_finish(s, id, &f, NULL, 0), 0);
	assert_int_equal(store_run_delete(s, id), 0);
	assert_int_equal(store_run_get(s, id, &f), -ENOENT);
	assert_int_equal(store_run_delete(s, id), -ENOENT);
	store_run_clear(&f);
	store_run_clear(&r);
	store_close(s);
	diag_free(&d);
	unlink(db);
	free(db);
	{
		char *p;

		assert_true(asprintf(&p, "%s/eph.db-wal", dir) > 0);
		unlink(p);
		free(p);
		assert_true(asprintf(&p, "%s/eph.db-shm", dir) > 0);
		unlink(p);
		free(p);
	}
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(heap_pops_in_time_then_push_order),
		cmocka_unit_test(on_time_fire_is_schedule),
		cmocka_unit_test(catchup_none_drops_missed_fires),
		cmocka_unit_test(catchup_latest_runs_only_the_last_missed),
		cmocka_unit_test(catchup_all_respects_the_starting_deadline),
		cmocka_unit_test(catchup_all_keeps_the_latest_thousand),
		cmocka_unit_test(backoff_doubles_and_is_capped),
		cmocka_unit_test(retention_delete_refuses_live_runs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
