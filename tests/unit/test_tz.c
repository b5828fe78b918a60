/* tests/unit/test_tz.c: TZif reading and per-zone conversions, checked against transitions
 * computed independently (Python's zoneinfo) from the same tz database. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sched/tz.h"

static struct tz *
load(const char *name)
{
	struct tz *z = NULL;

	assert_int_equal(tz_load(name, &z), 0);
	assert_non_null(z);
	assert_string_equal(tz_name(z), name);
	return z;
}

/* Asserts that the offset changes from BEFORE to AFTER exactly at instant AT. */
static void
assert_transition(const struct tz *z, int64_t at, int before, int after)
{
	struct tz_span sp;

	assert_int_equal(tz_offset_at(z, at - 1), before);
	assert_int_equal(tz_offset_at(z, at), after);
	tz_span_at(z, at - 1, &sp);
	assert_int_equal(sp.end, at);
	assert_int_equal(sp.off, before);
	tz_span_at(z, at, &sp);
	assert_int_equal(sp.start, at);
	assert_int_equal(sp.prev_off, before);
	assert_int_equal(sp.off, after);
}

static void
assert_iso(const struct tz *z, int64_t t, const char *want)
{
	char buf[TZ_ISO8601_MAX];

	tz_format_iso8601(z, t, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void
new_york_changes_at_2am_local_both_ways(void **state)
{
	struct tz *z = load("America/New_York");

	(void)state;
	assert_transition(z, 1772953200, -5 * 3600, -4 * 3600); /* 2026-03-08 07:00Z */
	assert_transition(z, 1793512800, -4 * 3600, -5 * 3600); /* 2026-11-01 06:00Z */
	assert_iso(z, 1772953200 - 1, "2026-03-08T01:59:59-05:00");
	assert_iso(z, 1772953200, "2026-03-08T03:00:00-04:00");
	assert_iso(z, 1793512800 - 1, "2026-11-01T01:59:59-04:00");
	assert_iso(z, 1793512800, "2026-11-01T01:00:00-05:00");
	tz_free(z);
}

static void
berlin_changes_at_1am_utc_both_ways(void **state)
{
	struct tz *z = load("Europe/Berlin");
	struct tz_tm tm;

	(void)state;
	assert_transition(z, 1774746000, 3600, 7200); /* 2026-03-29 01:00Z */
	assert_transition(z, 1792890000, 7200, 3600); /* 2026-10-25 01:00Z */
	tz_to_local(z, 1792890000, &tm);
	assert_int_equal(tm.year, 2026);
	assert_int_equal(tm.mon, 10);
	assert_int_equal(tm.mday, 25);
	assert_int_equal(tm.hour, 2);
	assert_int_equal(tm.min, 0);
	assert_int_equal(tm.wday, 0);
	assert_int_equal(tm.utoff, 3600);
	tz_free(z);
}

static void
sydney_has_dst_in_the_southern_summer(void **state)
{
	struct tz *z = load("Australia/Sydney");

	(void)state;
	assert_transition(z, 1775318400, 11 * 3600, 10 * 3600); /* 2026-04-04 16:00Z */
	assert_transition(z, 1791043200, 10 * 3600, 11 * 3600); /* 2026-10-03 16:00Z */
	assert_iso(z, 1775318400, "2026-04-05T02:00:00+10:00");
	tz_free(z);
}

static void
lord_howe_shifts_by_half_an_hour(void **state)
{
	struct tz *z = load("Australia/Lord_Howe");

	(void)state;
	assert_transition(z, 1775314800, 11 * 3600, 37800);
	assert_transition(z, 1791041400, 37800, 11 * 3600);
	tz_free(z);
}

static void
utc_has_one_span_and_formats_plus_zero(void **state)
{
	struct tz *z = load("UTC");
	struct tz_span sp;

	(void)state;
	tz_span_at(z, 1772953200, &sp);
	assert_true(sp.start == INT64_MIN);
	assert_true(sp.end == INT64_MAX);
	assert_int_equal(sp.off, 0);
	assert_iso(z, 0, "1970-01-01T00:00:00+00:00");
	assert_iso(NULL, 1772953200, "2026-03-08T07:00:00+00:00");
	tz_free(z);
}

static void
kolkata_is_five_thirty_ahead(void **state)
{
	struct tz *z = load("Asia/Kolkata");
	int64_t t;

	(void)state;
	assert_int_equal(tz_offset_at(z, 1772953200), 19800);
	assert_iso(z, 1772953200, "2026-03-08T12:30:00+05:30");
	assert_int_equal(tz_parse_iso8601("2026-03-08T12:30", z, &t), 0);
	assert_int_equal(t, 1772953200);
	tz_free(z);
}

static void
footer_rules_give_transitions_after_2037(void **state)
{
	struct tz *b = load("Europe/Berlin"), *ny = load("America/New_York");
	struct tz *syd = load("Australia/Sydney");

	(void)state;
	assert_transition(b, 4109878800, 3600, 7200); /* 2100-03-28 01:00Z */
	assert_transition(b, 4128627600, 7200, 3600); /* 2100-10-31 01:00Z */
	assert_transition(ny, 4108690800, -18000, -14400);
	assert_transition(ny, 4129250400, -14400, -18000);
	assert_transition(syd, 4110451200, 39600, 36000);
	assert_transition(syd, 4126176000, 36000, 39600);
	assert_iso(b, 4109878800, "2100-03-28T03:00:00+02:00");
	tz_free(b);
	tz_free(ny);
	tz_free(syd);
}

static void
dublin_negative_dst_keeps_summer_one_hour_ahead(void **state)
{
	struct tz *z = load("Europe/Dublin");

	(void)state;
	assert_transition(z, 1774746000, 0, 3600);
	assert_transition(z, 1792890000, 3600, 0);
	assert_int_equal(tz_offset_at(z, 4102444800 + 180 * 86400), 3600); /* July 2100 */
	assert_int_equal(tz_offset_at(z, 4102444800 + 10 * 86400), 0);     /* Jan 2100 */
	tz_free(z);
}

static void
local_time_in_gap_maps_to_end_of_gap(void **state)
{
	struct tz *z = load("America/New_York");
	struct tz_tm lt = { .year = 2026, .mon = 3, .mday = 8, .hour = 2, .min = 30 };
	int64_t a, b;

	(void)state;
	assert_int_equal(tz_from_local(z, &lt, &a, &b), TZ_LOCAL_GAP);
	assert_int_equal(a, 1772953200);
	assert_int_equal(b, 1772953200);
	lt.hour = 3;
	lt.min = 0;
	assert_int_equal(tz_from_local(z, &lt, &a, &b), TZ_LOCAL_ONCE);
	assert_int_equal(a, 1772953200);
	lt.hour = 1;
	lt.min = 59;
	assert_int_equal(tz_from_local(z, &lt, &a, &b), TZ_LOCAL_ONCE);
	assert_int_equal(a, 1772953200 - 60);
	tz_free(z);
}

static void
repeated_local_time_has_two_instants(void **state)
{
	struct tz *z = load("America/New_York");
	struct tz_tm lt = { .year = 2026, .mon = 11, .mday = 1, .hour = 1, .min = 30 };
	int64_t a, b;

	(void)state;
	assert_int_equal(tz_from_local(z, &lt, &a, &b), TZ_LOCAL_TWICE);
	assert_int_equal(a, 1793512800 - 1800);
	assert_int_equal(b, 1793512800 + 1800);
	tz_free(z);
}

static void
from_local_normalises_fields(void **state)
{
	struct tz_tm lt = { .year = 2026, .mon = 14, .mday = 32, .hour = 0 };
	int64_t a;

	(void)state;
	/* month 14 of 2026 = February 2027; its 32nd = March 4 2027 */
	assert_int_equal(tz_from_local(NULL, &lt, &a, NULL), TZ_LOCAL_ONCE);
	assert_int_equal(a, 1804118400);
}

/* Asserts that local time LOCAL in zone NAME prints as WANT, which names the same instant. */
static void
assert_lmt(const char *name, const char *local, const char *want)
{
	struct tz *z = load(name);
	int64_t t, back;

	assert_int_equal(tz_parse_iso8601(local, z, &t), 0);
	assert_iso(z, t, want);
	assert_int_equal(tz_parse_iso8601(want, NULL, &back), 0);
	assert_true(back == t);
	tz_free(z);
}

static void
offsets_with_seconds_print_rounded_to_the_minute(void **state)
{
	(void)state;
	/* local mean time: Berlin +0:53:28 until 1893, New York -4:56:02 until 1883, Monrovia
	 * -0:44:30 until 1972; ISO 8601 offsets have no seconds: the offset is rounded (half
	 * away from zero) and the wall clock shown with it, the instant kept to the second */
	assert_lmt("Europe/Berlin", "1890-01-01T12:00:00", "1890-01-01T11:59:32+00:53");
	assert_lmt("America/New_York", "1800-01-01T12:00:00", "1800-01-01T12:00:02-04:56");
	assert_lmt("Africa/Monrovia", "1970-01-01T12:00:00", "1970-01-01T11:59:30-00:45");
	/* whole minutes are untouched */
	assert_lmt("Europe/Berlin", "1894-01-01T12:00:00", "1894-01-01T12:00:00+01:00");
	assert_lmt("Asia/Kathmandu", "2026-01-01T12:00:00", "2026-01-01T12:00:00+05:45");
}

static void
parse_iso8601_accepts_the_documented_forms(void **state)
{
	struct tz *z = load("America/New_York");
	int64_t t;

	(void)state;
	assert_int_equal(tz_parse_iso8601("2026-03-08T03:00:00-04:00", NULL, &t), 0);
	assert_int_equal(t, 1772953200);
	assert_int_equal(tz_parse_iso8601("2026-03-08T07:00:00Z", z, &t), 0);
	assert_int_equal(t, 1772953200);
	assert_int_equal(tz_parse_iso8601("2026-03-08T12:30:00+0530", z, &t), 0);
	assert_int_equal(t, 1772953200);
	assert_int_equal(tz_parse_iso8601("2026-03-08T03:00", z, &t), 0);
	assert_int_equal(t, 1772953200);
	assert_int_equal(tz_parse_iso8601("2026-03-08 03:00:00", z, &t), 0);
	assert_int_equal(t, 1772953200);
	assert_int_equal(tz_parse_iso8601("2026-03-08T03:00:00.750-04:00", z, &t), 0);
	assert_int_equal(t, 1772953200);
	assert_int_equal(tz_parse_iso8601("2026-03-08T02:30", z, &t), 0); /* in the gap */
	assert_int_equal(t, 1772953200);
	assert_int_equal(tz_parse_iso8601("2026-11-01T01:30", z, &t), 0); /* repeated: first */
	assert_int_equal(t, 1793512800 - 1800);
	assert_int_equal(tz_parse_iso8601("2026-03-08", z, &t), 0);
	assert_int_equal(t, 1772946000); /* midnight EST */
	assert_int_equal(tz_parse_iso8601("2026-03-08", NULL, &t), 0);
	assert_int_equal(t, 1772928000);
	tz_free(z);
}

static void
parse_iso8601_rejects_junk(void **state)
{
	static const char *const bad[] = {
		"",
		"x",
		"2026",
		"2026-3-8",
		"2026-13-01",
		"2026-02-29",
		"2026-03-08T",
		"2026-03-08T3:00",
		"2026-03-08T24:00",
		"2026-03-08T03:60",
		"2026-03-08T03:00:61",
		"2026-03-08T03:00:00+",
		"2026-03-08T03:00:00+25:00",
		"2026-03-08T03:00:00.",
		"2026-03-08T03:00:00Zjunk",
		"2026-03-08 ",
		"2026-03-08T03:00 ",
	};
	int64_t t;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (tz_parse_iso8601(bad[i], NULL, &t) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	assert_int_equal(tz_parse_iso8601("2028-02-29", NULL, &t), 0);
}

static void
bad_names_are_rejected_before_touching_the_disk(void **state)
{
	static const char *const bad[] = {
		"",
		"/etc/passwd",
		"../etc/passwd",
		"Europe/../../etc/passwd",
		"Europe/..",
		"./UTC",
		"Europe//Berlin",
		"Europe/Berlin/",
		"Europe/Ber lin",
		"Europe/Berlin\n",
	};
	struct tz *z = (struct tz *)&z;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (tz_load(bad[i], &z) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_null(z);
	}
}

static void
unknown_zone_is_enoent(void **state)
{
	struct tz *z;

	(void)state;
	assert_int_equal(tz_load("Nowhere/City", &z), -ENOENT);
	assert_null(z);
	assert_int_equal(tz_load("America", &z), -ENOENT); /* a directory */
	assert_null(z);
}

/* A private TZDIR with hand-made files. */
static char tmpdir[64];

static void
write_file(const char *name, const void *data, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int
setup_tzdir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/eph-test-tz-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return setenv("TZDIR", tmpdir, 1);
}

static int
teardown_tzdir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return -1;
	return setenv("TZDIR", "/usr/share/zoneinfo", 1);
}

static void
non_tzif_files_are_einval(void **state)
{
	static const char text[] = "# tzdb data for ...\nZ Europe/Berlin 0:53:28 - LMT 1893\n";
	unsigned char trunc[60] = "TZif2";
	struct tz *z;

	(void)state;
	write_file("text", text, sizeof(text) - 1);
	write_file("empty", "", 0);
	write_file("trunc", trunc, sizeof(trunc));
	assert_int_equal(tz_load("text", &z), -EINVAL);
	assert_null(z);
	assert_int_equal(tz_load("empty", &z), -EINVAL);
	assert_int_equal(tz_load("trunc", &z), -EINVAL);
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* A v2 file with no transitions, one type (OFF, "ABC") and FOOTER: the footer alone rules. */
static size_t
make_footer_only(unsigned char *buf, int32_t off, const char *footer)
{
	size_t n = 0;

	for (int pass = 0; pass < 2; pass++) {
		memset(buf + n, 0, 44);
		memcpy(buf + n, "TZif2", 5);
		put32(buf + n + 36, 1); /* typecnt */
		put32(buf + n + 40, 4); /* charcnt */
		n += 44;
		put32(buf + n, (uint32_t)off);
		buf[n + 4] = 0;
		buf[n + 5] = 0;
		n += 6;
		memcpy(buf + n, "ABC", 4);
		n += 4;
	}
	n += (size_t)sprintf((char *)buf + n, "\n%s\n", footer);
	return n;
}

static void
footer_alone_defines_the_zone(void **state)
{
	unsigned char buf[256];
	struct tz *z;

	(void)state;
	write_file("cet", buf, make_footer_only(buf, 3600, "CET-1CEST,M3.5.0,M10.5.0/3"));
	write_file("aest", buf, make_footer_only(buf, 36000, "AEST-10AEDT,M10.1.0,M4.1.0/3"));
	write_file("ist", buf, make_footer_only(buf, 19800, "<+0530>-5:30"));
	write_file("bad", buf, make_footer_only(buf, 3600, "CET-1CEST,M13.5.0,M10.5.0/3"));
	assert_int_equal(tz_load("cet", &z), 0);
	assert_transition(z, 1774746000, 3600, 7200);
	assert_transition(z, 1792890000, 7200, 3600);
	tz_free(z);
	assert_int_equal(tz_load("aest", &z), 0);
	assert_transition(z, 1775318400, 39600, 36000);
	assert_transition(z, 1791043200, 36000, 39600);
	tz_free(z);
	assert_int_equal(tz_load("ist", &z), 0);
	assert_int_equal(tz_offset_at(z, 1775318400), 19800);
	tz_free(z);
	assert_int_equal(tz_load("bad", &z), -EINVAL);
}

static void
version_1_file_is_read(void **state)
{
	static unsigned char buf[1 << 16];
	FILE *f = fopen("/usr/share/zoneinfo/America/New_York", "rb");
	size_t len, need;
	struct tz *z;

	(void)state;
	assert_non_null(f);
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	assert_true(len > 44);
	/* keep the header and the 32-bit block only, marked version 1 */
#define C(off)                                                                                     \
	((size_t)buf[off] << 24 | (size_t)buf[off + 1] << 16 | (size_t)buf[off + 2] << 8 |         \
	 buf[off + 3])
	need = C(32) * 5 + C(36) * 6 + C(40) + C(28) * 8 + C(24) + C(20);
#undef C
	buf[4] = 0;
	write_file("v1", buf, 44 + need);
	assert_int_equal(tz_load("v1", &z), 0);
	assert_transition(z, 1772953200, -18000, -14400);
	assert_transition(z, 1793512800, -14400, -18000);
	tz_free(z);
}

static void
local_zone_comes_from_tz_then_etc_localtime(void **state)
{
	struct tz *z;
	char link[512];
	ssize_t n;

	(void)state;
	assert_int_equal(setenv("TZ", ":Europe/Berlin", 1), 0);
	assert_int_equal(tz_load_local(&z), 0);
	assert_string_equal(tz_name(z), "Europe/Berlin");
	assert_int_equal(tz_offset_at(z, 1774746000), 7200);
	tz_free(z);
	assert_int_equal(setenv("TZ", "Asia/Kolkata", 1), 0);
	assert_int_equal(tz_load_local(&z), 0);
	assert_string_equal(tz_name(z), "Asia/Kolkata");
	tz_free(z);
	assert_int_equal(setenv("TZ", "/usr/share/zoneinfo/Asia/Kolkata", 1), 0);
	assert_int_equal(tz_load_local(&z), 0);
	assert_string_equal(tz_name(z), "Asia/Kolkata");
	tz_free(z);

	assert_int_equal(setenv("TZ", "Nowhere/City", 1), 0);
	assert_int_equal(tz_load_local(&z), 0);
	n = readlink("/etc/localtime", link, sizeof(link) - 1);
	if (n > 0 && (link[n] = '\0', strstr(link, "zoneinfo/") != NULL))
		assert_string_equal(tz_name(z), strstr(link, "zoneinfo/") + 9);
	else if (access("/etc/localtime", R_OK) == 0)
		assert_string_equal(tz_name(z), "localtime");
	else
		assert_string_equal(tz_name(z), "UTC");
	tz_free(z);
	assert_int_equal(unsetenv("TZ"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(new_york_changes_at_2am_local_both_ways),
		cmocka_unit_test(berlin_changes_at_1am_utc_both_ways),
		cmocka_unit_test(sydney_has_dst_in_the_southern_summer),
		cmocka_unit_test(lord_howe_shifts_by_half_an_hour),
		cmocka_unit_test(utc_has_one_span_and_formats_plus_zero),
		cmocka_unit_test(kolkata_is_five_thirty_ahead),
		cmocka_unit_test(footer_rules_give_transitions_after_2037),
		cmocka_unit_test(dublin_negative_dst_keeps_summer_one_hour_ahead),
		cmocka_unit_test(local_time_in_gap_maps_to_end_of_gap),
		cmocka_unit_test(repeated_local_time_has_two_instants),
		cmocka_unit_test(from_local_normalises_fields),
		cmocka_unit_test(offsets_with_seconds_print_rounded_to_the_minute),
		cmocka_unit_test(parse_iso8601_accepts_the_documented_forms),
		cmocka_unit_test(parse_iso8601_rejects_junk),
		cmocka_unit_test(bad_names_are_rejected_before_touching_the_disk),
		cmocka_unit_test(unknown_zone_is_enoent),
		cmocka_unit_test(local_zone_comes_from_tz_then_etc_localtime),
		cmocka_unit_test_setup_teardown(non_tzif_files_are_einval, setup_tzdir,
		                                teardown_tzdir),
		cmocka_unit_test_setup_teardown(footer_alone_defines_the_zone, setup_tzdir,
		                                teardown_tzdir),
		cmocka_unit_test_setup_teardown(version_1_file_is_read, setup_tzdir,
		                                teardown_tzdir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
