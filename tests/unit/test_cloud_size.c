/* tests/unit/test_cloud_size.c: a cloud executor's sizes (exec/cloud_size.h): the catalogue as
 * eph-cloud gives it and as its cache file keeps it, the cheapest size that holds a run's
 * memory plus the reserve, and DigitalOcean's billing rule. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "exec/cloud_size.h"
#include "exec/cost.h"
#include "tmpfx.h"

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define EPS 1e-9

/* eph-cloud sizes' answer for the test cloud's catalogue (tests/e2e/docloud.py), shortened */
static const char catalogue[] =
        "{\"sizes\": ["
        "{\"slug\": \"s-1vcpu-512mb-10gb\", \"memory_mib\": 512, \"vcpus\": 1, \"disk_gb\": 10,"
        " \"price_hourly\": 0.00595, \"price_monthly\": 4.0, \"regions\": [\"ams3\", \"nyc1\"],"
        " \"available\": true},"
        "{\"slug\": \"s-1vcpu-1gb\", \"memory_mib\": 1024, \"vcpus\": 1, \"disk_gb\": 25,"
        " \"price_hourly\": 0.00893, \"price_monthly\": 6.0, \"regions\": [\"ams3\", \"fra1\","
        " \"nyc1\"], \"available\": true},"
        "{\"slug\": \"s-3vcpu-1gb\", \"memory_mib\": 1024, \"vcpus\": 3, \"disk_gb\": 60,"
        " \"price_hourly\": 0.001, \"price_monthly\": 1.0, \"regions\": [\"fra1\"],"
        " \"available\": false},"
        "{\"slug\": \"s-2vcpu-4gb\", \"memory_mib\": 4096, \"vcpus\": 2, \"disk_gb\": 80,"
        " \"price_hourly\": 0.03571, \"price_monthly\": 24.0, \"regions\": [\"fra1\"],"
        " \"available\": true},"
        "{\"slug\": \"c-2\", \"memory_mib\": 4096, \"vcpus\": 2, \"disk_gb\": 25,"
        " \"price_hourly\": 0.0625, \"price_monthly\": 42.0, \"regions\": [\"fra1\"],"
        " \"available\": true},"
        "{\"slug\": \"s-8vcpu-16gb\", \"memory_mib\": 16384, \"vcpus\": 8, \"disk_gb\": 320,"
        " \"price_hourly\": 0.14286, \"price_monthly\": 96.0, \"regions\": [\"fra1\"],"
        " \"available\": true},"
        "{\"slug\": \"m-2vcpu-16gb\", \"memory_mib\": 16384, \"vcpus\": 2, \"disk_gb\": 50,"
        " \"price_hourly\": 0.125, \"price_monthly\": 84.0, \"regions\": [\"fra1\"],"
        " \"available\": true}"
        "]}";

static struct cloud_catalog *
load(void)
{
	struct cloud_catalog *cat;
	char *err = NULL;

	assert_int_equal(cloud_catalog_parse(catalogue, strlen(catalogue), &cat, &err), 0);
	assert_null(err);
	return cat;
}

static void
the_cheapest_size_holding_memory_and_reserve_is_chosen(void **state)
{
	struct cloud_catalog *cat = load();
	const struct cloud_size *s;

	(void)state;
	assert_int_equal(cat->nsizes, 7);
	/* 300 MiB + 256 MiB > 512 MiB: not the 512 MiB size, though it is cheaper */
	s = cloud_size_choose(cat, "ams3", 300 * MiB, CLOUD_RESERVE_DEFAULT, NULL, 0);
	assert_string_equal(s->slug, "s-1vcpu-1gb");
	s = cloud_size_choose(cat, "ams3", 200 * MiB, CLOUD_RESERVE_DEFAULT, NULL, 0);
	assert_string_equal(s->slug, "s-1vcpu-512mb-10gb");
	s = cloud_size_choose(cat, "ams3", 256 * MiB, CLOUD_RESERVE_DEFAULT, NULL, 0);
	assert_string_equal(s->slug, "s-1vcpu-512mb-10gb"); /* exactly full */
	/* 3 GiB: s-2vcpu-4gb, cheaper than c-2 of the same memory */
	s = cloud_size_choose(cat, "fra1", 3 * GiB, CLOUD_RESERVE_DEFAULT, NULL, 0);
	assert_string_equal(s->slug, "s-2vcpu-4gb");
	/* 12 GiB: the cheaper of the 16 GiB sizes */
	s = cloud_size_choose(cat, "fra1", 12 * GiB, CLOUD_RESERVE_DEFAULT, NULL, 0);
	assert_string_equal(s->slug, "m-2vcpu-16gb");
	/* 16 GiB + the reserve: none */
	assert_null(cloud_size_choose(cat, "fra1", 16 * GiB, CLOUD_RESERVE_DEFAULT, NULL, 0));
	/* an unavailable size is never chosen, however cheap */
	s = cloud_size_choose(cat, "fra1", 100 * MiB, 0, NULL, 0);
	assert_string_equal(s->slug, "s-1vcpu-1gb");
	/* a size not sold in the region is not either */
	assert_null(cloud_size_choose(cat, "sgp1", MiB, 0, NULL, 0));
	cloud_catalog_free(cat);
}

static void
only_allowed_sizes_are_candidates_cheapest_first(void **state)
{
	struct cloud_catalog *cat = load();
	static const char *const allowed[] = { "c-2", "s-8vcpu-16gb", "s-2vcpu-4gb" };
	const struct cloud_size **v;
	size_t n;

	(void)state;
	assert_int_equal(cloud_size_candidates(cat, "fra1", 2 * GiB, CLOUD_RESERVE_DEFAULT, allowed,
	                                       3, &v, &n),
	                 0);
	assert_int_equal(n, 3); /* the next ones are what a 422 moves on to */
	assert_string_equal(v[0]->slug, "s-2vcpu-4gb");
	assert_string_equal(v[1]->slug, "c-2");
	assert_string_equal(v[2]->slug, "s-8vcpu-16gb");
	free(v);
	assert_int_equal(cloud_size_candidates(cat, "fra1", 14 * GiB, 4 * GiB, allowed, 3, &v, &n),
	                 -ENOENT);
	assert_null(v);
	/* a huge memory does not wrap around with the reserve */
	assert_null(cloud_size_choose(cat, "fra1", UINT64_MAX - 5, CLOUD_RESERVE_DEFAULT, NULL, 0));
	cloud_catalog_free(cat);
}

static void
the_sizes_seen_are_listed_when_none_fits(void **state)
{
	struct cloud_catalog *cat = load();
	static const char *const allowed[] = { "c-2", "s-1vcpu-1gb" };
	char *s;

	(void)state;
	s = cloud_size_seen(cat, "fra1", allowed, 2);
	assert_string_equal(s, "s-1vcpu-1gb 1024 MiB, c-2 4096 MiB");
	free(s);
	s = cloud_size_seen(cat, "sgp1", NULL, 0);
	assert_string_equal(s, "none");
	free(s);
	cloud_catalog_free(cat);
}

static void
the_cache_file_round_trips_and_ages_in_a_day(void **state)
{
	const char *dir = *state;
	struct cloud_catalog *cat = load(), *back;
	char *path = cloud_catalog_path(dir, "cloud"), *err = NULL;
	struct stat st;

	assert_int_equal(cloud_catalog_load(path, &back, &err), -ENOENT);
	assert_int_equal(cloud_catalog_save(path, cat, "digitalocean", 1767225600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(cloud_catalog_load(path, &back, &err), 0);
	assert_string_equal(back->provider, "digitalocean");
	assert_int_equal(back->fetched_at, 1767225600);
	assert_int_equal(back->nsizes, cat->nsizes);
	for (size_t i = 0; i < cat->nsizes; i++) {
		assert_string_equal(back->sizes[i].slug, cat->sizes[i].slug);
		assert_int_equal(back->sizes[i].memory, cat->sizes[i].memory);
		assert_float_equal(back->sizes[i].price_hourly, cat->sizes[i].price_hourly, EPS);
		assert_int_equal(back->sizes[i].nregions, cat->sizes[i].nregions);
		assert_int_equal(back->sizes[i].available, cat->sizes[i].available);
	}
	assert_true(cloud_catalog_fresh(back, 1767225600 + 86399));
	assert_false(cloud_catalog_fresh(back, 1767225600 + 86400));
	assert_false(cloud_catalog_fresh(back, 1767225600 - 10)); /* a clock set back */
	assert_false(cloud_catalog_fresh(cat, 1767225600));       /* never fetched: stale */
	cloud_catalog_free(back);
	cloud_catalog_free(cat);
	free(path);
}

static void
a_bad_catalogue_says_what_is_wrong(void **state)
{
	static const char *const bad[] = {
		"{",
		"{}",
		"{\"version\": 2, \"sizes\": []}",
		"{\"sizes\": [{\"slug\": \"a\", \"memory_mib\": -1, \"vcpus\": 1, \"disk_gb\": 1, "
		"\"price_hourly\": 1, \"price_monthly\": 1, \"regions\": [], \"available\": true}]}",
		"{\"sizes\": [{\"slug\": \"a\", \"memory_mib\": 1, \"vcpus\": 1, \"disk_gb\": 1, "
		"\"price_hourly\": 1, \"price_monthly\": 1, \"regions\": [7], \"available\": true}]}",
	};
	struct cloud_catalog *cat;
	char *err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(cloud_catalog_parse(bad[i], strlen(bad[i]), &cat, &err), -EINVAL);
		assert_null(cat);
		assert_non_null(err);
		free(err);
	}
}

static void
digitalocean_bills_per_second_with_a_minimum_since_2026(void **state)
{
	const int64_t now = CLOUD_DO_PER_SECOND_SINCE + 1000;
	const double h = 0.14286; /* s-8vcpu-16gb */

	(void)state;
	/* twenty minutes: per second */
	assert_float_equal(cloud_bill_do(h, 96, now, 1200), 1200 * h / 3600, EPS);
	/* ten seconds: $0.01, more than its 60 s (0.0024) */
	assert_float_equal(cloud_bill_do(h, 96, now, 10), 0.01, EPS);
	/* a large size (g-32vcpu-128gb, $1.5 an hour): 60 s at least, more than $0.01 */
	assert_float_equal(cloud_bill_do(1.5, 1008, now, 10), 60 * 1.5 / 3600, EPS);
	assert_float_equal(cloud_bill_do(1.5, 1008, now, 61), 61 * 1.5 / 3600, EPS);
	/* a cheap size: $0.01 is more than 60 s of it, and more than its 5 minutes */
	assert_float_equal(cloud_bill_do(0.00595, 4, now, 10), 0.01, EPS);
	assert_float_equal(cloud_bill_do(0.00595, 4, now, 300), 0.01, EPS);
	assert_float_equal(cloud_bill_do(0.00595, 4, now, 7200), 2 * 0.00595, EPS);
	/* never more than the month's price */
	assert_float_equal(cloud_bill_do(0.00595, 4, now, 40 * 86400.0), 4.0, EPS);
	/* created before 2026: per started hour */
	assert_float_equal(cloud_bill_do(h, 96, CLOUD_DO_PER_SECOND_SINCE - 1, 10), h, EPS);
	assert_float_equal(cloud_bill_do(h, 96, CLOUD_DO_PER_SECOND_SINCE - 1, 3601), 2 * h, EPS);
	/* unknown or negative duration: the minimum */
	assert_float_equal(cloud_bill_do(1.5, 1008, now, -5), 60 * 1.5 / 3600, EPS);
}

static void
the_ladder_rule_for_eph_cost_is_the_same_rule(void **state)
{
	struct cost_size sz = { "s-1vcpu-1gb", GiB, 6.0 };

	(void)state;
	assert_float_equal(cloud_bill_do_ladder(&sz, 3 * 3600), 3 * 6.0 / 672, EPS);
	assert_float_equal(cloud_bill_do_ladder(&sz, 1), 0.01, EPS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_cheapest_size_holding_memory_and_reserve_is_chosen),
		cmocka_unit_test(only_allowed_sizes_are_candidates_cheapest_first),
		cmocka_unit_test(the_sizes_seen_are_listed_when_none_fits),
		cmocka_unit_test_setup_teardown(the_cache_file_round_trips_and_ages_in_a_day,
		                                tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test(a_bad_catalogue_says_what_is_wrong),
		cmocka_unit_test(digitalocean_bills_per_second_with_a_minimum_since_2026),
		cmocka_unit_test(the_ladder_rule_for_eph_cost_is_the_same_rule),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
