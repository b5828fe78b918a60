/* tests/unit/test_cost.c: the arithmetic of `eph cost` (exec/cost.h): a host's price shared by
 * memory-seconds, the always-on reference server, the floor, a ladder with a provider's
 * billing rule (as a cloud executor plugs one in), and a job's sums and projection. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "exec/cost.h"

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define EPS 1e-9

/* A host of 4 GiB at 24 a month: 6 a GiB-month. */
static const struct cost_rate host = { 24.0, 4 * GiB, NULL, 0, NULL };

static void
a_run_pays_its_share_of_the_host_by_memory_seconds(void **state)
{
	struct cost_run r = { 3600, GiB, 300 * (int64_t)MiB, true, false, &host };

	(void)state;
	/* a quarter of the host for an hour of a 730-hour month */
	assert_float_equal(cost_run_cost(&r), 24.0 * 0.25 / 730, EPS);
	r.seconds = COST_MONTH_S;
	r.limit = 4 * GiB;
	assert_float_equal(cost_run_cost(&r), 24.0, EPS); /* all of it, all month */
}

static void
a_run_without_a_limit_pays_for_its_peak(void **state)
{
	struct cost_run r = { 7200, 0, 512 * (int64_t)MiB, true, false, &host };

	(void)state;
	assert_int_equal(cost_run_memory(&r), 512 * MiB);
	assert_float_equal(cost_run_cost(&r), 24.0 / 8 * 2 / 730, EPS);
	r.peak = -1;
	assert_int_equal(cost_run_memory(&r), 0);
	assert_float_equal(cost_run_cost(&r), 0, EPS);
}

static void
unpriced_and_unknown_cost_nothing(void **state)
{
	struct cost_rate free_host = { 0, 4 * GiB, NULL, 0, NULL };
	struct cost_rate no_memory = { 24, 0, NULL, 0, NULL };
	struct cost_run r = { 3600, GiB, -1, true, false, NULL };

	(void)state;
	assert_float_equal(cost_run_cost(&r), 0, EPS);
	r.rate = &free_host;
	assert_float_equal(cost_run_cost(&r), 0, EPS);
	r.rate = &no_memory;
	assert_float_equal(cost_run_cost(&r), 0, EPS);
	r.rate = &host;
	r.seconds = -1; /* never started */
	assert_float_equal(cost_run_cost(&r), 0, EPS);
}

static void
the_reference_server_is_a_power_of_two_at_the_host_rate(void **state)
{
	struct cost_size sz;

	(void)state;
	assert_int_equal(cost_server(&host, 100 * MiB, &sz), 0);
	assert_int_equal(sz.memory, 512 * MiB); /* the least there is */
	assert_float_equal(sz.price_monthly, 3.0, EPS);
	assert_null(sz.name);
	assert_int_equal(cost_server(&host, GiB, &sz), 0);
	assert_int_equal(sz.memory, GiB);
	assert_int_equal(cost_server(&host, GiB + 1, &sz), 0);
	assert_int_equal(sz.memory, 2 * GiB);
	assert_float_equal(sz.price_monthly, 12.0, EPS);
	assert_int_equal(cost_server(&host, 9 * GiB, &sz), 0);
	assert_int_equal(sz.memory, 16 * GiB); /* larger than the host: a bigger server */
	assert_float_equal(sz.price_monthly, 96.0, EPS);
}

static void
the_floor_is_the_need_to_the_mib_by_the_second(void **state)
{
	(void)state;
	assert_float_equal(cost_floor(&host, GiB, 3600), 24.0 / 4 / 730, EPS);
	/* 1 byte over 300 MiB is 301 MiB */
	assert_float_equal(cost_floor(&host, 300 * MiB + 1, COST_MONTH_S), 24.0 * 301 / 4096, EPS);
	assert_float_equal(cost_floor(&host, GiB, 0), 0, EPS);
}

/* A provider that bills every started hour, at most the monthly price. */
static double
bill_hourly(const struct cost_size *sz, double seconds)
{
	double hours = (double)(int64_t)((seconds + 3599) / 3600), cost;

	cost = sz->price_monthly / 730 * hours;
	return cost < sz->price_monthly ? cost : sz->price_monthly;
}

static const struct cost_size ladder[] = {
	{ "s-1vcpu-512mb", 512 * MiB, 4 },
	{ "s-1vcpu-1gb", GiB, 6 },
	{ "s-1vcpu-2gb", 2 * GiB, 12 },
	{ "s-2vcpu-4gb", 4 * GiB, 24 },
};

static void
a_ladder_bills_the_smallest_size_that_holds_the_run(void **state)
{
	struct cost_rate cloud = { 0, 0, ladder, 4, bill_hourly };
	struct cost_run r = { 90, 1500 * MiB, -1, true, false, &cloud };
	struct cost_size sz;

	(void)state;
	assert_float_equal(cost_run_cost(&r), 12.0 / 730, EPS); /* 2 GiB, one started hour */
	r.seconds = 3601;
	assert_float_equal(cost_run_cost(&r), 12.0 / 730 * 2, EPS);
	cloud.bill = NULL; /* by the second */
	assert_float_equal(cost_run_cost(&r), 12.0 * 3601 / COST_MONTH_S, EPS);
	assert_int_equal(cost_server(&cloud, GiB, &sz), 0);
	assert_string_equal(sz.name, "s-1vcpu-1gb");
	assert_int_equal(cost_server(&cloud, 5 * GiB, &sz), -ENOENT);
	/* the floor is per second on the size, whatever the provider's rule */
	cloud.bill = bill_hourly;
	assert_float_equal(cost_floor(&cloud, 600 * MiB, 60), 6.0 * 60 / COST_MONTH_S, EPS);
	assert_float_equal(cost_floor(&cloud, 5 * GiB, 60), 0, EPS);
}

static void
median_of_odd_and_even_counts(void **state)
{
	double a[] = { 5, 1, 3 }, b[] = { 4, 1, 3, 2 };

	(void)state;
	assert_float_equal(cost_median(a, 3), 3, EPS);
	assert_float_equal(cost_median(b, 4), 2.5, EPS);
	assert_float_equal(cost_median(NULL, 0), 0, EPS);
}

static void
a_job_sums_its_runs_and_projects_its_month(void **state)
{
	const struct cost_run runs[] = {
		{ 60, GiB, 200 * (int64_t)MiB, true, false, &host },
		{ 120, GiB, 700 * (int64_t)MiB, true, false, &host },
		{ 600, GiB, 900 * (int64_t)MiB, false, false, &host }, /* failed: no need said */
		{ -1, GiB, -1, false, false, &host },                  /* never started */
		{ 30, 0, 100 * (int64_t)MiB, true, false, NULL },      /* executor gone */
	};
	struct cost_job j;
	double gib_s = 24.0 / 4 / COST_MONTH_S; /* a GiB-second */

	(void)state;
	cost_job_sum(runs, 5, 720, &host, &j);
	assert_int_equal(j.nruns, 4);
	assert_int_equal(j.nunpriced, 1);
	assert_float_equal(j.run_seconds, 810, EPS);
	assert_float_equal(j.cost, gib_s * (60 + 120 + 600), EPS);
	/* costs 0, 60, 120, 600 GiB-s: the median is 90 */
	assert_float_equal(j.typical_cost, gib_s * 90, EPS);
	assert_float_equal(j.typical_s, 90, EPS);
	assert_float_equal(j.month, 720 * gib_s * 90, EPS);
	assert_int_equal(j.need, 700 * MiB); /* the largest succeeded peak */
	assert_int_equal(j.server.memory, GiB);
	assert_float_equal(j.server.price_monthly, 6.0, EPS);
	assert_float_equal(j.floor, 24.0 * 700 / 4096 * 810 / COST_MONTH_S, EPS);
	assert_float_equal(j.floor_month, 24.0 * 700 / 4096 * 720 * 90 / COST_MONTH_S, EPS);
}

static void
an_oom_run_needs_more_than_its_limit(void **state)
{
	const struct cost_run runs[] = {
		{ 5, 256 * MiB, 256 * (int64_t)MiB, false, true, &host },
		{ 5, 128 * MiB, 100 * (int64_t)MiB, true, false, &host },
	};
	struct cost_job j;

	(void)state;
	cost_job_sum(runs, 2, 0, &host, &j);
	assert_int_equal(j.need, 257 * MiB);
	assert_int_equal(j.server.memory, 512 * MiB);
	assert_float_equal(j.month, 0, EPS);
	assert_float_equal(j.floor_month, 0, EPS);
}

static void
no_runs_no_need(void **state)
{
	struct cost_job j;

	(void)state;
	cost_job_sum(NULL, 0, 30, &host, &j);
	assert_int_equal(j.nruns, 0);
	assert_int_equal(j.need, 0);
	assert_int_equal(j.server.memory, 0);
	assert_float_equal(j.month, 0, EPS);
	assert_float_equal(j.fires_month, 30, EPS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_run_pays_its_share_of_the_host_by_memory_seconds),
		cmocka_unit_test(a_run_without_a_limit_pays_for_its_peak),
		cmocka_unit_test(unpriced_and_unknown_cost_nothing),
		cmocka_unit_test(the_reference_server_is_a_power_of_two_at_the_host_rate),
		cmocka_unit_test(the_floor_is_the_need_to_the_mib_by_the_second),
		cmocka_unit_test(a_ladder_bills_the_smallest_size_that_holds_the_run),
		cmocka_unit_test(median_of_odd_and_even_counts),
		cmocka_unit_test(a_job_sums_its_runs_and_projects_its_month),
		cmocka_unit_test(an_oom_run_needs_more_than_its_limit),
		cmocka_unit_test(no_runs_no_need),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
