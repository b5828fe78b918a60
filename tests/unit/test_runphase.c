/* tests/unit/test_runphase.c: a run's phases from its events.jsonl and result.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rundir/rundir.h"
#include "rundir/runphase.h"

static int
fold(const struct rundir_event *e, void *arg)
{
	runphase_event(arg, e);
	return 0;
}

static void
events_give_times_and_the_result_gives_lengths(void **state)
{
	static const char events[] =
	        "{\"ev\":\"start\",\"t\":100.0}\n"
	        "{\"ev\":\"phase\",\"t\":100.1,\"phase\":\"source\",\"state\":\"start\"}\n"
	        "{\"ev\":\"mem\",\"t\":100.2,\"bytes\":4096}\n"
	        "{\"ev\":\"phase\",\"t\":100.3,\"phase\":\"source\",\"state\":\"end\"}\n"
	        "{\"ev\":\"phase\",\"t\":100.4,\"phase\":\"exec\",\"state\":\"start\"}\n"
	        "{\"ev\":\"phase\",\"t\":100.5,\"phase\":\"exec\",\"state\":\"paused\"}\n"
	        "{\"ev\":\"phase\",\"t\":100.6,\"phase\":\"\",\"state\":\"start\"}\n"
	        "{\"ev\":\"phase\",\"t\":100.6,\"phase\":\"a-phase-name-of-more-than-32-bytes\","
	        "\"state\":\"start\"}\n"
	        "{\"ev\":\"phase\",\"t\":102.5,\"phase\":\"exec\",\"state\":\"end\"}\n";
	struct runphases ph = { 0 };
	struct rundir_result r;

	(void)state;
	assert_int_equal(rundir_events_foreach_mem(events, strlen(events), fold, &ph, NULL, NULL),
	                 0);
	assert_int_equal(ph.n, 2);
	assert_string_equal(ph.v[0].name, "source");
	assert_true(ph.v[0].started_at == 100.1 && ph.v[0].ended_at == 100.3);
	assert_true(ph.v[0].seconds < 0);
	assert_string_equal(ph.v[1].name, "exec");
	assert_true(ph.v[1].started_at == 100.4 && ph.v[1].ended_at == 102.5);
	memset(&r, 0, sizeof(r));
	r.source_seconds = 0.2;
	r.runtime_seconds = 0.05; /* no event told of it: added, without times */
	r.exec_seconds = 2.1;
	runphase_result(&ph, &r);
	assert_int_equal(ph.n, 3);
	assert_true(ph.v[0].seconds == 0.2 && ph.v[1].seconds == 2.1);
	assert_string_equal(ph.v[2].name, "runtime");
	assert_true(ph.v[2].seconds == 0.05 && ph.v[2].started_at == 0 && ph.v[2].ended_at == 0);
	runphases_free(&ph);
	assert_int_equal(ph.n, 0);
	/* a result whose phases did not run adds none */
	r.source_seconds = r.runtime_seconds = r.exec_seconds = -1;
	runphase_result(&ph, &r);
	assert_int_equal(ph.n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(events_give_times_and_the_result_gives_lengths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
