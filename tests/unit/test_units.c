/* tests/unit/test_units.c: sizes and durations as users write them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/units.h"

static uint64_t
size_ok(const char *s)
{
	const char *why = NULL;
	uint64_t v = 0;

	assert_int_equal(units_parse_size(s, &v, &why), 0);
	assert_null(why);
	return v;
}

static void
sizes_are_binary_whatever_the_suffix(void **state)
{
	(void)state;
	assert_int_equal(size_ok("512MiB"), UINT64_C(512) << 20);
	assert_int_equal(size_ok("512M"), UINT64_C(512) << 20);
	assert_int_equal(size_ok("512MB"), UINT64_C(512) << 20);
	assert_int_equal(size_ok("512mb"), UINT64_C(512) << 20);
	assert_int_equal(size_ok("12GiB"), UINT64_C(12) << 30);
	assert_int_equal(size_ok("1.5G"), UINT64_C(3) << 29);
	assert_int_equal(size_ok("4096"), 4096);
	assert_int_equal(size_ok("64 KiB"), 65536);
	assert_int_equal(size_ok("2T"), UINT64_C(2) << 40);
	assert_int_equal(size_ok("0"), 0);
}

static void
bad_sizes_say_why(void **state)
{
	const char *why;
	uint64_t v;

	(void)state;
	assert_int_equal(units_parse_size("-1G", &v, &why), -EINVAL);
	assert_string_equal(why, "a size cannot be negative");
	assert_int_equal(units_parse_size("lots", &v, &why), -EINVAL);
	assert_non_null(why);
	assert_int_equal(units_parse_size("12 parsecs", &v, &why), -EINVAL);
	assert_string_equal(why, "unknown unit (use B, KiB, MiB, GiB or TiB)");
	assert_int_equal(units_parse_size("", &v, &why), -EINVAL);
	assert_int_equal(units_parse_size("2048T", &v, &why), -ERANGE);
	assert_int_equal(units_parse_size("99999999999999999999999999G", &v, &why), -ERANGE);
}

static int64_t
dur_ok(const char *s)
{
	const char *why = NULL;
	int64_t v = -1;

	assert_int_equal(units_parse_duration(s, &v, &why), 0);
	return v;
}

static void
durations_in_seconds(void **state)
{
	(void)state;
	assert_int_equal(dur_ok("90s"), 90);
	assert_int_equal(dur_ok("10m"), 600);
	assert_int_equal(dur_ok("2h"), 7200);
	assert_int_equal(dur_ok("1d"), 86400);
	assert_int_equal(dur_ok("1h30m"), 5400);
	assert_int_equal(dur_ok("0"), 0);
	assert_int_equal(dur_ok("0s"), 0);
}

static void
bad_durations_say_why(void **state)
{
	const char *why;
	int64_t v;

	(void)state;
	assert_int_equal(units_parse_duration("10", &v, &why), -EINVAL);
	assert_string_equal(why, "missing unit (use s, m, h or d, as 90s or 10m)");
	assert_int_equal(units_parse_duration("10w", &v, &why), -EINVAL);
	assert_int_equal(units_parse_duration("-5m", &v, &why), -EINVAL);
	assert_int_equal(units_parse_duration("m", &v, &why), -EINVAL);
	assert_int_equal(units_parse_duration("", &v, &why), -EINVAL);
	assert_int_equal(units_parse_duration("100000d", &v, &why), -ERANGE);
	assert_int_equal(units_parse_duration("99999999999999999999s", &v, &why), -ERANGE);
}

static void
formatting_for_people(void **state)
{
	char s[32];

	(void)state;
	units_format_size(UINT64_C(2) << 30, s, sizeof(s));
	assert_string_equal(s, "2.00 GiB");
	units_format_size(UINT64_C(512) << 20, s, sizeof(s));
	assert_string_equal(s, "512 MiB");
	units_format_size(100, s, sizeof(s));
	assert_string_equal(s, "100 B");
	units_format_duration(41.23, s, sizeof(s));
	assert_string_equal(s, "41.2s");
	units_format_duration(185, s, sizeof(s));
	assert_string_equal(s, "3m05s");
	units_format_duration(7200, s, sizeof(s));
	assert_string_equal(s, "2h00m");
}

static void
counts_are_digits_only(void **state)
{
	static const char *const bad[] = { "",    " 1",  "1 ",  "+1",  "-1", "0x1",
		                           "1e3", "1.0", "1_0", "\t1", "١" };
	int64_t v = 42;

	(void)state;
	assert_int_equal(units_parse_count("1", 1, 10, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(units_parse_count("007", 1, 10, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(units_parse_count("9223372036854775807", 0, INT64_MAX, &v), 0);
	assert_true(v == INT64_MAX);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 42;
		assert_int_equal(units_parse_count(bad[i], 0, INT64_MAX, &v), -EINVAL);
		assert_int_equal(v, 42);
	}
	assert_int_equal(units_parse_count("0", 1, 10, &v), -ERANGE);
	assert_int_equal(units_parse_count("11", 1, 10, &v), -ERANGE);
	assert_int_equal(units_parse_count("9223372036854775808", 0, INT64_MAX, &v), -ERANGE);
	assert_int_equal(units_parse_count("99999999999999999999999", 0, INT64_MAX, &v), -ERANGE);
	assert_int_equal(v, 42);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sizes_are_binary_whatever_the_suffix),
		cmocka_unit_test(bad_sizes_say_why),
		cmocka_unit_test(durations_in_seconds),
		cmocka_unit_test(bad_durations_say_why),
		cmocka_unit_test(formatting_for_people),
		cmocka_unit_test(counts_are_digits_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
