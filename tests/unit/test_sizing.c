/* tests/unit/test_sizing.c: the memory limit of a new run (exec/sizing.h): the percentile, the
 * headroom, the ladder, the clamps, an oom run as a lower bound, growing after an oom; and the
 * decision from a real store in a temporary directory. */
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
#include "exec/sizing.h"
#include "store/store.h"
#include "util/diag.h"
#include "util/xalloc.h"

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

static struct store_size_obs
ok(uint64_t peak, uint64_t limit)
{
	return (struct store_size_obs){ 0, false, (int64_t)peak, (int64_t)limit, 60 };
}

static struct store_size_obs
oom(uint64_t peak, uint64_t limit)
{
	return (struct store_size_obs){ 0, true, (int64_t)peak, (int64_t)limit, 1 };
}

static void
percentile_is_the_nearest_rank(void **state)
{
	uint64_t v[20];

	(void)state;
	for (size_t i = 0; i < 20; i++)
		v[i] = 20 - i; /* unsorted on purpose */
	assert_int_equal(sizing_percentile(v, 20, 95), 19);
	assert_int_equal(sizing_percentile(v, 20, 50), 10);
	assert_int_equal(sizing_percentile(v, 20, 100), 20);
	assert_int_equal(sizing_percentile(v, 3, 95), v[2]); /* fewer than 20: the largest */
	assert_int_equal(sizing_percentile(v, 1, 50), v[0]);
	assert_int_equal(sizing_percentile(v, 0, 95), 0);
}

static void
headroom_is_25_percent_rounded_up_to_the_mib(void **state)
{
	struct store_size_obs h[] = { ok(100 * MiB, 0) };
	struct sizing z;

	(void)state;
	sizing_from_history(h, 1, MiB, 0, &z);
	assert_int_equal(z.limit, 125 * MiB);
	assert_string_equal(z.reason, "p95 of 1 run 100 MiB + 25%");
	sizing_clear(&z);
	/* one byte more: 125 MiB and 2 bytes, up to the next MiB */
	h[0] = ok(100 * MiB + 1, 0);
	sizing_from_history(h, 1, MiB, 0, &z);
	assert_int_equal(z.limit, 126 * MiB);
	sizing_clear(&z);
}

static void
p95_of_twenty_runs_leaves_out_the_largest(void **state)
{
	struct store_size_obs h[20];
	struct sizing z;

	(void)state;
	for (size_t i = 0; i < 20; i++)
		h[i] = ok((100 + i) * MiB, 4 * GiB);
	h[7] = ok(3 * GiB, 4 * GiB); /* one spike in twenty */
	sizing_from_history(h, 20, 512 * MiB, 8 * GiB, &z);
	/* sorted: 100..118 (without 107) and 119, then 3 GiB: the 19th is 119 MiB */
	assert_int_equal(z.limit, 512 * MiB);
	assert_string_equal(z.reason, "p95 of 20 runs 119 MiB + 25%, raised to min 512 MiB");
	sizing_clear(&z);
	sizing_from_history(h, 20, 64 * MiB, 8 * GiB, &z);
	assert_int_equal(z.limit, 149 * MiB); /* 148.75 MiB, up to the MiB */
	sizing_clear(&z);
}

static void
limit_is_clamped_to_min_and_max(void **state)
{
	struct store_size_obs h[] = { ok(2 * GiB, 0), ok(10 * MiB, 0) };
	struct sizing z;

	(void)state;
	sizing_from_history(h, 2, 512 * MiB, GiB, &z);
	assert_int_equal(z.limit, GiB);
	assert_string_equal(z.reason, "p95 of 2 runs 2 GiB + 25%, capped at max 1 GiB");
	sizing_clear(&z);
	sizing_from_history(h + 1, 1, 512 * MiB, GiB, &z);
	assert_int_equal(z.limit, 512 * MiB);
	sizing_clear(&z);
	sizing_from_history(h, 2, 512 * MiB, 0, &z); /* no max: no upper bound */
	assert_int_equal(z.limit, 2560 * MiB);
	assert_string_equal(z.reason, "p95 of 2 runs 2 GiB + 25%");
	sizing_clear(&z);
}

static void
no_history_gives_min(void **state)
{
	struct store_size_obs h[] = { ok(0, 0) };
	struct sizing z;

	(void)state;
	sizing_from_history(NULL, 0, 512 * MiB, GiB, &z);
	assert_int_equal(z.limit, 512 * MiB);
	assert_string_equal(z.reason, "min: no history");
	sizing_clear(&z);
	h[0].peak_bytes = -1; /* a run whose peak was not measured says nothing */
	sizing_from_history(h, 1, 300 * MiB, GiB, &z);
	assert_int_equal(z.limit, 300 * MiB);
	assert_string_equal(z.reason, "min: no history");
	sizing_clear(&z);
}

static void
oom_run_is_a_lower_bound_that_the_limit_exceeds(void **state)
{
	struct store_size_obs h[20];
	struct sizing z;

	(void)state;
	/* nineteen runs at 100 MiB and one killed at its 1 GiB limit: p95 alone would say
	 * 125 MiB; the oom says the need was over 1 GiB */
	for (size_t i = 0; i < 20; i++)
		h[i] = ok(100 * MiB, GiB);
	h[3] = oom(GiB, GiB);
	sizing_from_history(h, 20, 64 * MiB, 8 * GiB, &z);
	assert_int_equal(z.limit, 1280 * MiB);
	assert_string_equal(z.reason, "oom at 1 GiB in the last 20 runs + 25%");
	sizing_clear(&z);
	/* an oom whose peak reads below its limit (a sample, not the cgroup's) still needed
	 * more than the limit */
	h[0] = oom(300 * MiB, 512 * MiB);
	sizing_from_history(h, 1, 64 * MiB, 8 * GiB, &z);
	assert_int_equal(z.limit, 640 * MiB);
	assert_true(z.limit > 512 * MiB);
	sizing_clear(&z);
	/* at max, it stays at max */
	sizing_from_history(h, 1, 64 * MiB, 512 * MiB, &z);
	assert_int_equal(z.limit, 512 * MiB);
	/* (the percentile of one run is that run, the oom: the reason says p95) */
	assert_string_equal(z.reason, "p95 of 1 run 512 MiB + 25%, capped at max 512 MiB");
	sizing_clear(&z);
}

static void
grow_doubles_to_the_mib_up_to_max(void **state)
{
	struct conf_job j = { 0 };
	struct store_run r;

	(void)state;
	assert_int_equal(sizing_grow(GiB, 8 * GiB), 2 * GiB);
	assert_int_equal(sizing_grow(5 * GiB, 8 * GiB), 8 * GiB);
	assert_int_equal(sizing_grow(100 * MiB + 1, 0), 201 * MiB);
	j.memory_auto = true;
	j.memory_max = 2 * GiB;
	j.retry_on_oom = CONF_OOM_RETRY_GROW;
	store_run_init(&r);
	r.state = STORE_OOM;
	r.memory_limit = (int64_t)GiB;
	assert_true(sizing_grows(&j, &r));
	r.memory_limit = (int64_t)(2 * GiB); /* at max: nothing to grow to */
	assert_false(sizing_grows(&j, &r));
	r.memory_limit = (int64_t)GiB;
	r.state = STORE_FAILED;
	assert_false(sizing_grows(&j, &r));
	r.state = STORE_OOM;
	j.retry_on_oom = CONF_OOM_RETRY_NONE;
	assert_false(sizing_grows(&j, &r));
}

static void
format_is_whole_when_it_can_be(void **state)
{
	char b[32];

	(void)state;
	sizing_format(GiB, b, sizeof(b));
	assert_string_equal(b, "1 GiB");
	sizing_format(512 * MiB, b, sizeof(b));
	assert_string_equal(b, "512 MiB");
	sizing_format(1536 * MiB, b, sizeof(b));
	assert_string_equal(b, "1.50 GiB");
	sizing_format(2480 * MiB, b, sizeof(b)); /* 2.421875 GiB */
	assert_string_equal(b, "2.42 GiB");
}

static void
stats_are_of_the_succeeded_peaks_and_the_unused_memory(void **state)
{
	struct store_size_obs h[] = {
		ok(100 * MiB, GiB), ok(300 * MiB, GiB),       oom(GiB, GiB),
		ok(200 * MiB, 0),   ok(500 * MiB, 512 * MiB),
	};
	struct sizing_stats st;

	(void)state;
	h[0].seconds = 3600; /* 924 MiB idle for an hour */
	h[1].seconds = 1800;
	h[4].seconds = -1; /* unknown: counted in the mean, not in GiB-hours */
	sizing_stats(h, 5, &st);
	assert_int_equal(st.nruns, 5);
	assert_int_equal(st.noom, 1);
	assert_int_equal(st.npeaks, 4);
	assert_int_equal(st.p50, 200 * MiB);
	assert_int_equal(st.p95, 500 * MiB);
	assert_int_equal(st.max, 500 * MiB);
	assert_int_equal(st.nunused, 3);
	assert_int_equal(st.unused_mean, (924 + 724 + 12) * MiB / 3 + 0); /* 553.33 MiB */
	assert_true(st.unused_gib_hours > (924.0 + 362.0) / 1024 - 1e-9 &&
	            st.unused_gib_hours < (924.0 + 362.0) / 1024 + 1e-9);
	sizing_stats(NULL, 0, &st);
	assert_int_equal(st.nruns, 0);
	assert_int_equal(st.p95, 0);
}

/* ---- from a real store ---- */

struct fx {
	char dir[64];
	struct store *s;
};

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char *path;
	struct diag d;

	snprintf(f->dir, sizeof(f->dir), "/tmp/eph-test-sizing-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	path = xasprintf("%s/eph.db", f->dir);
	diag_init(&d);
	assert_int_equal(store_open(path, &f->s, &d), 0);
	diag_free(&d);
	free(path);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->dir);

	store_close(f->s);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f);
	return 0;
}

/* Records a run of JOB that ended ST with PEAK under LIMIT. */
static int64_t
add_run(struct store *s, const char *job, enum store_trigger trig, int64_t at, int attempt,
        enum store_state st, uint64_t peak, uint64_t limit)
{
	struct store_run r;
	int64_t id = 0;

	store_run_init(&r);
	r.job = xstrdup(job);
	r.trigger = trig;
	r.scheduled_at = at;
	r.attempt = attempt;
	r.memory_limit = (int64_t)limit;
	assert_int_equal(store_run_create(s, &r, &id), 0);
	store_run_clear(&r);
	r.state = st;
	r.peak_bytes = (int64_t)peak;
	r.started_at = 1000;
	r.ended_at = 1010;
	assert_int_equal(store_run_finish(s, id, &r, NULL, 0), 0);
	store_run_clear(&r);
	return id;
}

/* profile: on_oom profiles the run after an oom, memory every run, off none; a profiled run
 * gets room on top of its limit and is left out of the history */
static void
profiled_runs(void **state)
{
	struct fx *f = *state;
	struct conf_job j = { 0 };
	struct store_run r;
	struct store_size_obs *obs = NULL;
	struct sizing z;
	size_t n = 0;
	int64_t id;

	j.name = (char *)"train";
	j.memory = GiB;
	sizing_decide(f->s, &j, STORE_SCHEDULE, 100, 1, &z); /* on_oom, no run yet */
	assert_string_equal(z.reason, "configured");
	sizing_clear(&z);
	add_run(f->s, "train", STORE_SCHEDULE, 100, 1, STORE_OOM, GiB, GiB);
	sizing_decide(f->s, &j, STORE_SCHEDULE, 200, 1, &z);
	assert_int_equal(z.limit, GiB);
	assert_string_equal(z.reason,
	                    "configured; profiled: +256 MiB for the profiler (after an oom)");
	assert_true(sizing_profiled(z.reason));
	sizing_clear(&z);
	j.profile = CONF_PROFILE_OFF;
	sizing_decide(f->s, &j, STORE_SCHEDULE, 200, 1, &z);
	assert_false(sizing_profiled(z.reason));
	sizing_clear(&z);
	add_run(f->s, "train", STORE_SCHEDULE, 200, 1, STORE_SUCCEEDED, 100 * MiB, GiB);
	j.profile = CONF_PROFILE_ON_OOM;
	sizing_decide(f->s, &j, STORE_SCHEDULE, 300, 1, &z);
	assert_false(sizing_profiled(z.reason));
	sizing_clear(&z);
	j.profile = CONF_PROFILE_MEMORY;
	j.memory = 0; /* no limit: still profiled; the room is the least */
	sizing_decide(f->s, &j, STORE_SCHEDULE, 300, 1, &z);
	assert_string_equal(
	        z.reason,
	        "no limit configured; profiled: +64 MiB for the profiler (profile: memory)");
	sizing_clear(&z);
	assert_int_equal(sizing_profile_room(0), 64 * MiB);
	assert_int_equal(sizing_profile_room(4 * GiB), GiB);
	/* a profiled run is not in the history */
	store_run_init(&r);
	r.job = xstrdup("train");
	r.trigger = STORE_SCHEDULE;
	r.scheduled_at = 400;
	r.attempt = 1;
	r.memory_limit = (int64_t)GiB;
	r.memory_reason = xstrdup("configured" STORE_PROFILED_MARK "256 MiB for the profiler");
	assert_int_equal(store_run_create(f->s, &r, &id), 0);
	store_run_clear(&r);
	r.state = STORE_SUCCEEDED;
	r.peak_bytes = (int64_t)(900 * MiB);
	r.started_at = 1000;
	r.ended_at = 1010;
	assert_int_equal(store_run_finish(f->s, id, &r, NULL, 0), 0);
	store_run_clear(&r);
	assert_int_equal(store_size_history(f->s, "train", 20, &obs, &n), 0);
	assert_int_equal(n, 2); /* the oom and the succeeded run before */
	assert_int_equal(obs[0].peak_bytes, 100 * MiB);
	free(obs);
}

static void
decide_from_the_store(void **state)
{
	struct fx *f = *state;
	struct conf_job j = { 0 };
	struct sizing z;

	j.name = (char *)"train";
	j.memory = GiB;
	j.profile = CONF_PROFILE_OFF; /* sizing alone (profiled_runs below) */
	sizing_decide(f->s, &j, STORE_SCHEDULE, 100, 1, &z);
	assert_int_equal(z.limit, GiB);
	assert_string_equal(z.reason, "configured");
	sizing_clear(&z);
	j.memory = 0;
	sizing_decide(f->s, &j, STORE_SCHEDULE, 100, 1, &z);
	assert_int_equal(z.limit, 0);
	assert_string_equal(z.reason, "no limit configured");
	sizing_clear(&z);

	j.memory_auto = true;
	j.memory_min = 512 * MiB;
	j.memory_max = 4 * GiB;
	j.retry_on_oom = CONF_OOM_RETRY_GROW;
	sizing_decide(f->s, &j, STORE_SCHEDULE, 100, 1, &z);
	assert_int_equal(z.limit, 512 * MiB);
	assert_string_equal(z.reason, "min: no history");
	sizing_clear(&z);

	/* another job's runs and a failed run of this one are not its history */
	add_run(f->s, "other", STORE_SCHEDULE, 50, 1, STORE_SUCCEEDED, 3 * GiB, 4 * GiB);
	add_run(f->s, "train", STORE_SCHEDULE, 60, 1, STORE_FAILED, 3 * GiB, 4 * GiB);
	add_run(f->s, "train", STORE_SCHEDULE, 70, 1, STORE_SUCCEEDED, 800 * MiB, GiB);
	sizing_decide(f->s, &j, STORE_SCHEDULE, 100, 1, &z);
	assert_int_equal(z.limit, 1000 * MiB);
	assert_string_equal(z.reason, "p95 of 1 run 800 MiB + 25%");
	sizing_clear(&z);

	/* fire 100, attempt 1, killed at 1000 MiB: its retry grows from there... */
	add_run(f->s, "train", STORE_SCHEDULE, 100, 1, STORE_OOM, 1000 * MiB, 1000 * MiB);
	sizing_decide(f->s, &j, STORE_RETRY, 100, 1, &z);
	assert_int_equal(z.limit, 2000 * MiB);
	assert_string_equal(z.reason, "grown after oom at 1000 MiB");
	sizing_clear(&z);
	/* ...and the grown one killed too: again, up to max */
	add_run(f->s, "train", STORE_RETRY, 100, 1, STORE_OOM, 2000 * MiB, 2000 * MiB);
	sizing_decide(f->s, &j, STORE_RETRY, 100, 1, &z);
	assert_int_equal(z.limit, 4000 * MiB);
	sizing_clear(&z);
	add_run(f->s, "train", STORE_RETRY, 100, 1, STORE_OOM, 4000 * MiB, 4000 * MiB);
	sizing_decide(f->s, &j, STORE_RETRY, 100, 1, &z);
	assert_int_equal(z.limit, 4 * GiB);
	assert_string_equal(z.reason, "grown after oom at 3.91 GiB");
	sizing_clear(&z);
	/* a retry of another attempt, or the next fire, sizes from the history, in which the
	 * ooms are lower bounds */
	sizing_decide(f->s, &j, STORE_RETRY, 100, 2, &z);
	assert_int_equal(z.limit, 4 * GiB);
	assert_string_equal(z.reason, "p95 of 4 runs 3.91 GiB + 25%, capped at max 4 GiB");
	sizing_clear(&z);
	/* without grow, a retry is sized from the history too */
	j.retry_on_oom = CONF_OOM_RETRY_NONE;
	j.memory_max = 8 * GiB;
	sizing_decide(f->s, &j, STORE_RETRY, 100, 1, &z);
	assert_int_equal(z.limit, 5000 * MiB);
	sizing_clear(&z);
	/* a retry after a failure keeps the limit of the attempt before it */
	j.memory_max = 16 * GiB;
	add_run(f->s, "train", STORE_SCHEDULE, 200, 1, STORE_FAILED, 6 * GiB, 7 * GiB);
	sizing_decide(f->s, &j, STORE_RETRY, 200, 2, &z);
	assert_int_equal(z.limit, 7 * GiB);
	assert_string_equal(z.reason, "p95 of 4 runs 3.91 GiB + 25%, kept at attempt 1's 7 GiB");
	sizing_clear(&z);
	sizing_decide(f->s, &j, STORE_SCHEDULE, 300, 1, &z); /* not a retry: the history */
	assert_int_equal(z.limit, 5000 * MiB);
	sizing_clear(&z);
}

static void
history_is_the_latest_succeeded_and_oom_runs(void **state)
{
	struct fx *f = *state;
	struct store_size_obs *obs = NULL;
	size_t n = 0;
	struct store_fire_last last;

	for (int i = 0; i < 25; i++)
		add_run(f->s, "j", STORE_SCHEDULE, 10 + i, 1,
		        i % 5 == 4 ? STORE_TIMEOUT : STORE_SUCCEEDED, (uint64_t)(i + 1) * MiB, GiB);
	add_run(f->s, "j", STORE_SCHEDULE, 99, 2, STORE_OOM, GiB, GiB);
	assert_int_equal(store_size_history(f->s, "j", 20, &obs, &n), 0);
	assert_int_equal(n, 20);
	assert_true(obs[0].oom);
	assert_int_equal(obs[0].memory_limit, GiB);
	assert_false(obs[1].oom);
	assert_int_equal(obs[1].peak_bytes, 24 * MiB); /* newest first; 25 timed out */
	assert_true(obs[1].seconds == 10);
	free(obs);
	assert_int_equal(store_size_history(f->s, "none", 20, &obs, &n), 0);
	assert_int_equal(n, 0);
	assert_null(obs);
	assert_int_equal(store_fire_last(f->s, "j", 99, &last), 0);
	assert_int_equal(last.attempt, 2);
	assert_int_equal(last.state, STORE_OOM);
	assert_int_equal(last.memory_limit, GiB);
	assert_int_equal(store_fire_last(f->s, "j", 14, &last), 0);
	assert_int_equal(last.state, STORE_TIMEOUT);
	assert_int_equal(store_fire_last(f->s, "j", 98, &last), -ENOENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(percentile_is_the_nearest_rank),
		cmocka_unit_test(headroom_is_25_percent_rounded_up_to_the_mib),
		cmocka_unit_test(p95_of_twenty_runs_leaves_out_the_largest),
		cmocka_unit_test(limit_is_clamped_to_min_and_max),
		cmocka_unit_test(no_history_gives_min),
		cmocka_unit_test(oom_run_is_a_lower_bound_that_the_limit_exceeds),
		cmocka_unit_test(grow_doubles_to_the_mib_up_to_max),
		cmocka_unit_test(format_is_whole_when_it_can_be),
		cmocka_unit_test(stats_are_of_the_succeeded_peaks_and_the_unused_memory),
		cmocka_unit_test_setup_teardown(decide_from_the_store, setup, teardown),
		cmocka_unit_test_setup_teardown(profiled_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(history_is_the_latest_succeeded_and_oom_runs, setup,
		                                teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
