/* tests/unit/test_cronexpr.c: cron expressions: every construct, the errors with their
 * columns, and the next fire times across DST changes in real zones. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sched/cronexpr.h"
#include "sched/tz.h"
#include "util/diag.h"

static struct cronexpr *
parse_ok(const char *text)
{
	struct diag d;
	struct cronexpr *ce = NULL;
	struct diag_pos at = { "f.yaml", 3, 9 };
	int rc;

	diag_init(&d);
	rc = cronexpr_parse(text, &at, &ce, &d);
	if (rc != 0) {
		char *msg = diag_nerrors(&d) ? diag_format(&d, 0) : NULL;

		fail_msg("\"%s\" rejected: %s", text, msg ? msg : "?");
	}
	assert_int_equal(diag_nerrors(&d), 0);
	assert_non_null(ce);
	diag_free(&d);
	return ce;
}

/* Asserts the fire times after AFTER (ISO 8601) of TEXT in ZONE (NULL = UTC), as ISO 8601
 * strings in that zone, NULL-terminated. */
static void
expect_fires(const char *text, const char *zone, const char *after, ...)
{
	struct cronexpr *ce = parse_ok(text);
	struct tz *z = NULL;
	int64_t t, nx;
	const char *want;
	char got[TZ_ISO8601_MAX];
	va_list ap;

	if (zone != NULL)
		assert_int_equal(tz_load(zone, &z), 0);
	assert_int_equal(tz_parse_iso8601(after, z, &t), 0);
	va_start(ap, after);
	while ((want = va_arg(ap, const char *)) != NULL) {
		int rc = cronexpr_next(ce, z, t, &nx);

		if (rc != 0)
			fail_msg("\"%s\": no fire after %lld (%d), wanted %s", text, (long long)t,
			         rc, want);
		assert_true(nx > t);
		tz_format_iso8601(z, nx, got, sizeof(got));
		if (strcmp(got, want) != 0)
			fail_msg("\"%s\" in %s: got %s, wanted %s", text, zone ? zone : "UTC", got,
			         want);
		t = nx;
	}
	va_end(ap);
	tz_free(z);
	cronexpr_free(ce);
}

/* Asserts that TEXT, at column COL0, is rejected with exactly the NULL-terminated messages. */
static void
expect_errors(const char *text, int col0, ...)
{
	struct diag d;
	struct cronexpr *ce = (struct cronexpr *)&d;
	struct diag_pos at = { "f.yaml", 3, col0 };
	const char *want;
	size_t i = 0;
	va_list ap;

	diag_init(&d);
	assert_int_equal(cronexpr_parse(text, &at, &ce, &d), -EINVAL);
	assert_null(ce);
	diag_sort(&d);
	va_start(ap, col0);
	while ((want = va_arg(ap, const char *)) != NULL) {
		char *got;

		if (i >= d.n)
			fail_msg("\"%s\": missing error %s", text, want);
		got = diag_format(&d, i++);
		if (strcmp(got, want) != 0)
			fail_msg("\"%s\": got \"%s\", wanted \"%s\"", text, got, want);
		free(got);
	}
	va_end(ap);
	assert_int_equal(diag_nerrors(&d), i);
	diag_free(&d);
}

static void
star_fires_every_minute(void **state)
{
	(void)state;
	expect_fires("* * * * *", NULL, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00+00:00",
	             "2026-01-01T00:02:00+00:00", NULL);
	expect_fires("* * * * *", NULL, "2026-01-01T00:00:30Z", "2026-01-01T00:01:00+00:00", NULL);
}

static void
ranges_lists_and_steps_expand(void **state)
{
	(void)state;
	expect_fires("*/15 9-17/4 * * *", NULL, "2026-01-01T10:00:00Z", "2026-01-01T13:00:00+00:00",
	             "2026-01-01T13:15:00+00:00", "2026-01-01T13:30:00+00:00",
	             "2026-01-01T13:45:00+00:00", "2026-01-01T17:00:00+00:00",
	             "2026-01-01T17:15:00+00:00", "2026-01-01T17:30:00+00:00",
	             "2026-01-01T17:45:00+00:00", "2026-01-02T09:00:00+00:00", NULL);
	expect_fires("1-30/7 0 1 1 *", NULL, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00+00:00",
	             "2026-01-01T00:08:00+00:00", "2026-01-01T00:15:00+00:00",
	             "2026-01-01T00:22:00+00:00", "2026-01-01T00:29:00+00:00",
	             "2027-01-01T00:01:00+00:00", NULL);
	expect_fires("0 8,12,18 * * *", NULL, "2026-01-01T12:00:00Z", "2026-01-01T18:00:00+00:00",
	             "2026-01-02T08:00:00+00:00", NULL);
	expect_fires("0 0 * * *", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00+00:00", NULL);
}

static void
number_slash_step_runs_to_the_field_max(void **state)
{
	(void)state;
	expect_fires("5/15 * * * *", NULL, "2026-01-01T00:00:00Z", "2026-01-01T00:05:00+00:00",
	             "2026-01-01T00:20:00+00:00", "2026-01-01T00:35:00+00:00",
	             "2026-01-01T00:50:00+00:00", "2026-01-01T01:05:00+00:00", NULL);
	expect_fires("0 0 20/5 * *", NULL, "2026-02-01T00:00:00Z", "2026-02-20T00:00:00+00:00",
	             "2026-02-25T00:00:00+00:00", "2026-03-20T00:00:00+00:00", NULL);
}

static void
names_are_case_insensitive_and_work_in_ranges(void **state)
{
	(void)state;
	/* 2026-01-02 is a Friday */
	expect_fires("0 12 * JAN,jul mon-FRI", NULL, "2026-01-02T12:00:00Z",
	             "2026-01-05T12:00:00+00:00", NULL);
	expect_fires("0 12 1 Feb *", NULL, "2026-01-02T12:00:00Z", "2026-02-01T12:00:00+00:00",
	             NULL);
	expect_fires("0 0 * mar-apr sat", NULL, "2026-01-01T00:00:00Z", "2026-03-07T00:00:00+00:00",
	             NULL);
}

static void
sunday_is_both_0_and_7(void **state)
{
	(void)state;
	/* 2026-01-04 is a Sunday */
	expect_fires("0 0 * * 7", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00+00:00",
	             "2026-01-11T00:00:00+00:00", NULL);
	expect_fires("0 0 * * 0", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00+00:00", NULL);
	expect_fires("0 0 * * sun", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00+00:00",
	             NULL);
	expect_fires("0 0 * * 5-7", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00+00:00",
	             "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00",
	             "2026-01-09T00:00:00+00:00", NULL);
}

static void
dow_range_ending_in_sunday_ends_in_7(void **state)
{
	(void)state;
	/* as cronie: 2026-01-02 is a Friday, 01-03 Saturday, 01-04 Sunday */
	expect_fires("0 0 * * Sat-Sun", NULL, "2026-01-01T00:00:00Z", "2026-01-03T00:00:00+00:00",
	             "2026-01-04T00:00:00+00:00", "2026-01-10T00:00:00+00:00", NULL);
	expect_fires("0 0 * * sat-0", NULL, "2026-01-01T00:00:00Z", "2026-01-03T00:00:00+00:00",
	             "2026-01-04T00:00:00+00:00", "2026-01-10T00:00:00+00:00", NULL);
	expect_fires("0 0 * * Fri-Sun", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00+00:00",
	             "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00",
	             "2026-01-09T00:00:00+00:00", NULL);
	/* every day of the week, Monday first */
	expect_fires("0 0 * * Mon-Sun", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00+00:00",
	             "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00",
	             "2026-01-05T00:00:00+00:00", NULL);
	/* 1-7/2: Mon, Wed, Fri, Sun (2026-01-05 is a Monday) */
	expect_fires("0 0 * * Mon-Sun/2", NULL, "2026-01-04T00:00:00Z", "2026-01-05T00:00:00+00:00",
	             "2026-01-07T00:00:00+00:00", "2026-01-09T00:00:00+00:00",
	             "2026-01-11T00:00:00+00:00", "2026-01-12T00:00:00+00:00", NULL);
	/* a range that starts on Sunday starts at 0 and is unchanged */
	expect_fires("0 0 * * Sun-Sun", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00+00:00",
	             "2026-01-11T00:00:00+00:00", NULL);
	expect_fires("0 0 * * 0-Sun", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00+00:00",
	             "2026-01-11T00:00:00+00:00", NULL);
	expect_fires("0 0 * * Sun-Sat", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00+00:00",
	             "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00", NULL);
	expect_fires("0 0 * * 7-Sun", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00+00:00",
	             "2026-01-11T00:00:00+00:00", NULL);
	/* only an end of Sunday wraps: other reversed ranges stay errors, in every field */
	expect_errors(
	        "0 0 * * Tue-Mon", 10,
	        "f.yaml:3:18: bad day-of-week field \"Tue-Mon\": range Tue-Mon is reversed (its start is after its end)",
	        NULL);
	expect_errors(
	        "0 5-0 * * *", 10,
	        "f.yaml:3:12: bad hour field \"5-0\": range 5-0 is reversed (its start is after its end)",
	        NULL);
}

static void
dom_and_dow_are_ored_when_both_restricted(void **state)
{
	(void)state;
	/* the 13th and every Friday: Fri 2026-02-06, 02-13 (Fri 13th), 02-20, 02-27, 03-06,
	 * 03-13 */
	expect_fires("0 0 13 * 5", NULL, "2026-02-01T00:00:00Z", "2026-02-06T00:00:00+00:00",
	             "2026-02-13T00:00:00+00:00", "2026-02-20T00:00:00+00:00",
	             "2026-02-27T00:00:00+00:00", "2026-03-06T00:00:00+00:00",
	             "2026-03-13T00:00:00+00:00", NULL);
	/* "1-31/2" does not start with '*': restricted, so odd days OR Mondays */
	expect_fires("0 0 1-31/2 * 1", NULL, "2026-06-01T00:00:00Z", "2026-06-03T00:00:00+00:00",
	             "2026-06-05T00:00:00+00:00", "2026-06-07T00:00:00+00:00",
	             "2026-06-08T00:00:00+00:00", "2026-06-09T00:00:00+00:00", NULL);
}

static void
star_step_counts_as_unrestricted_so_days_are_anded(void **state)
{
	(void)state;
	/* "*\/2" in day-of-month starts with '*': odd days AND Mondays (2026-06-01 is a Monday):
	 * 06-01, 06-15, 06-29, then 2026-07-13 and 07-27 */
	expect_fires("0 0 */2 * 1", NULL, "2026-05-31T00:00:00Z", "2026-06-01T00:00:00+00:00",
	             "2026-06-15T00:00:00+00:00", "2026-06-29T00:00:00+00:00",
	             "2026-07-13T00:00:00+00:00", NULL);
	/* "*\/2" in day-of-week: the 1st AND Sun/Tue/Thu/Sat: 2026-09-01 Tue, 2026-10-01 Thu */
	expect_fires("0 0 1 * */2", NULL, "2026-06-01T00:00:00Z", "2026-08-01T00:00:00+00:00",
	             "2026-09-01T00:00:00+00:00", "2026-10-01T00:00:00+00:00",
	             "2026-11-01T00:00:00+00:00", NULL);
	/* in minute and hour it is an ordinary step */
	expect_fires("*/20 */12 * * *", NULL, "2026-01-01T00:30:00Z", "2026-01-01T00:40:00+00:00",
	             "2026-01-01T12:00:00+00:00", NULL);
	/* in month too */
	expect_fires("0 0 1 */5 *", NULL, "2026-01-01T00:00:00Z", "2026-06-01T00:00:00+00:00",
	             "2026-11-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00", NULL);
}

static void
leap_day_is_found_years_ahead(void **state)
{
	struct cronexpr *ce = parse_ok("0 0 29 2 *");
	int64_t t, nx;

	(void)state;
	expect_fires("0 0 29 2 *", NULL, "2026-03-01T00:00:00Z", "2028-02-29T00:00:00+00:00",
	             "2032-02-29T00:00:00+00:00", NULL);
	expect_fires("0 0 29 2 *", "Europe/Berlin", "2026-03-01T00:00:00Z",
	             "2028-02-29T00:00:00+01:00", NULL);
	/* 2100 is not a leap year: from 2096 the next Feb 29 is 2104, eight years on */
	expect_fires("0 0 29 2 *", NULL, "2096-03-01T00:00:00Z", "2104-02-29T00:00:00+00:00",
	             "2108-02-29T00:00:00+00:00", NULL);
	expect_fires("0 0 29 2 *", "America/New_York", "2096-03-01T00:00:00Z",
	             "2104-02-29T00:00:00-05:00", NULL);
	/* the last ones before the year 10000, then none */
	expect_fires("0 0 29 2 *", NULL, "9990-01-01T00:00:00Z", "9992-02-29T00:00:00+00:00",
	             "9996-02-29T00:00:00+00:00", NULL);
	assert_int_equal(tz_parse_iso8601("9996-02-29T00:00:00Z", NULL, &t), 0);
	assert_int_equal(cronexpr_next(ce, NULL, t, &nx), -ENOENT);
	cronexpr_free(ce);
}

static void
rare_days_are_found_decades_ahead(void **state)
{
	(void)state;
	/* "*\/7" starts with '*', so the days are ANDed: Feb 29 that is a Sunday. 2004 was
	 * one, then 2032, 2060, 2088; 2116 is not (2100 is not a leap year), 2128 is */
	expect_fires("0 0 29 2 */7", NULL, "2004-03-01T00:00:00Z", "2032-02-29T00:00:00+00:00",
	             "2060-02-29T00:00:00+00:00", "2088-02-29T00:00:00+00:00",
	             "2128-02-29T00:00:00+00:00", NULL);
}

static void
the_year_9999_is_the_limit(void **state)
{
	struct cronexpr *ce = parse_ok("0 0 * * *"), *ev = parse_ok("@every 1h");
	struct tz *z = NULL;
	int64_t t, nx;
	char got[TZ_ISO8601_MAX];

	(void)state;
	assert_int_equal(tz_parse_iso8601("9999-12-30T12:00:00Z", NULL, &t), 0);
	assert_int_equal(cronexpr_next(ce, NULL, t, &nx), 0);
	tz_format_iso8601(NULL, nx, got, sizeof(got));
	assert_string_equal(got, "9999-12-31T00:00:00+00:00");
	assert_int_equal(cronexpr_next(ce, NULL, nx, &nx), -ENOENT);
	assert_int_equal(cronexpr_next(ev, NULL, CRONEXPR_T_MAX - 1800, &nx), -ENOENT);
	assert_int_equal(cronexpr_next(ev, NULL, CRONEXPR_T_MAX - 7200, &nx), 0);
	assert_true(nx <= CRONEXPR_T_MAX);
	/* nor past 9999 on the zone's wall clock: midnight of 10000-01-01 in Tokyo is still
	 * 9999 in UTC */
	assert_int_equal(tz_load("Asia/Tokyo", &z), 0);
	assert_int_equal(tz_parse_iso8601("9999-12-31T12:00:00+09:00", NULL, &t), 0);
	assert_int_equal(cronexpr_next(ce, z, t, &nx), -ENOENT);
	assert_int_equal(cronexpr_next(ce, NULL, INT64_MAX, &nx), -ENOENT);
	tz_free(z);
	cronexpr_free(ev);
	cronexpr_free(ce);
}

static void
times_that_a_dst_gap_always_skips_never_fire(void **state)
{
	/* 2:xx on the second Sunday of March (the 8th to the 14th, ANDed with Sundays): New
	 * York's clocks skip that hour every year since 2007, and wall-clock jobs skip it */
	struct cronexpr *ce = parse_ok("*/30 2 8-14 3 */7");
	struct tz *z = NULL;
	int64_t t, nx;

	(void)state;
	assert_int_equal(tz_load("America/New_York", &z), 0);
	/* before 2007 DST began in April: 2006-03-12 was such a Sunday */
	expect_fires("*/30 2 8-14 3 */7", "America/New_York", "2006-01-01T00:00:00Z",
	             "2006-03-12T02:00:00-05:00", "2006-03-12T02:30:00-05:00", NULL);
	assert_int_equal(tz_parse_iso8601("2007-01-01T00:00:00Z", NULL, &t), 0);
	assert_int_equal(cronexpr_next(ce, z, t, &nx), -ENOENT);
	/* in UTC it fires */
	assert_int_equal(cronexpr_next(ce, NULL, t, &nx), 0);
	tz_free(z);
	cronexpr_free(ce);
}

static void
day_31_skips_short_months(void **state)
{
	(void)state;
	expect_fires("0 0 31 * *", NULL, "2026-01-31T00:00:00Z", "2026-03-31T00:00:00+00:00",
	             "2026-05-31T00:00:00+00:00", "2026-07-31T00:00:00+00:00",
	             "2026-08-31T00:00:00+00:00", "2026-10-31T00:00:00+00:00",
	             "2026-12-31T00:00:00+00:00", NULL);
}

static void
year_rolls_over(void **state)
{
	(void)state;
	expect_fires("59 23 31 12 *", NULL, "2026-12-31T23:59:00Z", "2027-12-31T23:59:00+00:00",
	             NULL);
	expect_fires("0 0 1 1 *", NULL, "2026-12-31T23:59:59Z", "2027-01-01T00:00:00+00:00", NULL);
}

static void
macros_expand_as_in_cronie(void **state)
{
	(void)state;
	expect_fires("@yearly", NULL, "2026-05-05T05:05:00Z", "2027-01-01T00:00:00+00:00", NULL);
	expect_fires("@annually", NULL, "2026-05-05T05:05:00Z", "2027-01-01T00:00:00+00:00", NULL);
	expect_fires("@monthly", NULL, "2026-05-05T05:05:00Z", "2026-06-01T00:00:00+00:00", NULL);
	expect_fires("@weekly", NULL, "2026-05-05T05:05:00Z", "2026-05-10T00:00:00+00:00", NULL);
	expect_fires("@daily", NULL, "2026-05-05T05:05:00Z", "2026-05-06T00:00:00+00:00", NULL);
	expect_fires("@midnight", NULL, "2026-05-05T05:05:00Z", "2026-05-06T00:00:00+00:00", NULL);
	expect_fires("@hourly", NULL, "2026-05-05T05:05:00Z", "2026-05-05T06:00:00+00:00", NULL);
	expect_fires("  @Daily ", NULL, "2026-05-05T05:05:00Z", "2026-05-06T00:00:00+00:00", NULL);
}

static void
every_fires_at_multiples_of_the_interval_since_the_epoch(void **state)
{
	struct cronexpr *ce = parse_ok("@every 10m");

	(void)state;
	assert_int_equal(cronexpr_interval(ce), 600);
	assert_true(cronexpr_is_wallclock(ce));
	cronexpr_free(ce);
	expect_fires("@every 10m", NULL, "2026-01-01T00:03:00Z", "2026-01-01T00:10:00+00:00",
	             "2026-01-01T00:20:00+00:00", NULL);
	expect_fires("@every 1h30m", NULL, "2026-01-01T00:00:00Z", "2026-01-01T01:30:00+00:00",
	             "2026-01-01T03:00:00+00:00", NULL);
	expect_fires("@every 7s", NULL, "1970-01-01T00:00:00Z", "1970-01-01T00:00:07+00:00", NULL);
	expect_fires("@every 1d", "Asia/Kolkata", "2026-01-01T00:00:00Z",
	             "2026-01-02T05:30:00+05:30", NULL);
}

static void
every_ignores_dst(void **state)
{
	(void)state;
	expect_fires("@every 10m", "America/New_York", "2026-03-08T01:45:00-05:00",
	             "2026-03-08T01:50:00-05:00", "2026-03-08T03:00:00-04:00",
	             "2026-03-08T03:10:00-04:00", NULL);
	expect_fires("@every 30m", "America/New_York", "2026-11-01T01:00:00-04:00",
	             "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00",
	             "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00", NULL);
}

struct kind_case {
	const char *text;
	bool wall;
};

static void
calendar_kinds_are_fixed_or_wallclock(void **state)
{
	static const struct kind_case cases[] = {
		{ "30 2 * * *", false }, { "0,30 2 * * *", false }, { "@daily", false },
		{ "0 * * * *", true },   { "*/10 * * * *", true },  { "15 */2 * * *", true },
		{ "@hourly", true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cronexpr *ce = parse_ok(cases[i].text);

		assert_int_equal(cronexpr_is_wallclock(ce), cases[i].wall);
		assert_int_equal(cronexpr_interval(ce), 0);
		cronexpr_free(ce);
	}
}

static void
field_errors_name_the_field_and_its_column(void **state)
{
	(void)state;
	expect_errors("60 * * * *", 10,
	              "f.yaml:3:10: bad minute field \"60\": 60 is out of range (0-59)", NULL);
	expect_errors("* 24 * * *", 10,
	              "f.yaml:3:12: bad hour field \"24\": 24 is out of range (0-23)", NULL);
	expect_errors(
	        "0 17-9 * * *", 10,
	        "f.yaml:3:12: bad hour field \"17-9\": range 17-9 is reversed (its start is after its end)",
	        NULL);
	expect_errors("*/0 * * * *", 10,
	              "f.yaml:3:10: bad minute field \"*/0\": step must be at least 1", NULL);
	expect_errors("0 0 0 * *", 10,
	              "f.yaml:3:14: bad day-of-month field \"0\": 0 is out of range (1-31)", NULL);
	expect_errors("0 0 * 13 *", 10,
	              "f.yaml:3:16: bad month field \"13\": 13 is out of range (1-12)", NULL);
	expect_errors("0 0 * * 8", 10,
	              "f.yaml:3:18: bad day-of-week field \"8\": 8 is out of range (0-7)", NULL);
	expect_errors("0 0 * foo *", 10,
	              "f.yaml:3:16: bad month field \"foo\": unknown name \"foo\" (use jan-dec)",
	              NULL);
	expect_errors(
	        "0 0 * * mon-funday", 10,
	        "f.yaml:3:18: bad day-of-week field \"mon-funday\": unknown name \"funday\" (use sun-sat)",
	        NULL);
	expect_errors("jan * * * *", 10,
	              "f.yaml:3:10: bad minute field \"jan\": unexpected \"jan\"", NULL);
	expect_errors("1,,2 * * * *", 10, "f.yaml:3:10: bad minute field \"1,,2\": empty list item",
	              NULL);
	expect_errors("1, * * * *", 10, "f.yaml:3:10: bad minute field \"1,\": empty list item",
	              NULL);
	expect_errors("1x * * * *", 10, "f.yaml:3:10: bad minute field \"1x\": unexpected \"x\"",
	              NULL);
	expect_errors("*5 * * * *", 10, "f.yaml:3:10: bad minute field \"*5\": unexpected \"5\"",
	              NULL);
	expect_errors("0 1-/2 * * *", 10, "f.yaml:3:12: bad hour field \"1-/2\": expected a number",
	              NULL);
	expect_errors("0 */ * * *", 10,
	              "f.yaml:3:12: bad hour field \"*/\": expected a step after \"/\"", NULL);
	expect_errors("0 0 * * -1", 10,
	              "f.yaml:3:18: bad day-of-week field \"-1\": unexpected \"-1\"", NULL);
	expect_errors(
	        "99999999999 * * * *", 10,
	        "f.yaml:3:10: bad minute field \"99999999999\": 99999999999 is out of range (0-59)",
	        NULL);
}

static void
every_bad_field_is_reported(void **state)
{
	(void)state;
	expect_errors("60 24 0 13 8", 1,
	              "f.yaml:3:1: bad minute field \"60\": 60 is out of range (0-59)",
	              "f.yaml:3:4: bad hour field \"24\": 24 is out of range (0-23)",
	              "f.yaml:3:7: bad day-of-month field \"0\": 0 is out of range (1-31)",
	              "f.yaml:3:9: bad month field \"13\": 13 is out of range (1-12)",
	              "f.yaml:3:12: bad day-of-week field \"8\": 8 is out of range (0-7)", NULL);
}

static void
wrong_field_count_is_an_error(void **state)
{
	(void)state;
	expect_errors(
	        "* * * *", 10,
	        "f.yaml:3:10: expected 5 fields (minute hour day-of-month month day-of-week), got 4",
	        NULL);
	expect_errors(
	        "0 * * * * *", 10,
	        "f.yaml:3:20: expected 5 fields (minute hour day-of-month month day-of-week), got 6",
	        NULL);
	expect_errors("", 10, "f.yaml:3:10: empty schedule", NULL);
	expect_errors("   ", 10, "f.yaml:3:10: empty schedule", NULL);
}

static void
impossible_dates_never_fire(void **state)
{
	struct cronexpr *ce;

	(void)state;
	expect_errors("0 0 30 2 *", 10,
	              "f.yaml:3:14: never fires: day-of-month \"30\" does not occur in month \"2\"",
	              NULL);
	expect_errors(
	        "0 0 31 4,6,9,11 *", 10,
	        "f.yaml:3:14: never fires: day-of-month \"31\" does not occur in month \"4,6,9,11\"",
	        NULL);
	expect_errors(
	        "0 0 30-31 feb */1", 10,
	        "f.yaml:3:14: never fires: day-of-month \"30-31\" does not occur in month \"feb\"",
	        NULL);
	/* possible: a leap day, a long month in the list, or a weekday ORed in */
	ce = parse_ok("0 0 29 2 *");
	cronexpr_free(ce);
	ce = parse_ok("0 0 31 4,5 *");
	cronexpr_free(ce);
	ce = parse_ok("0 0 30 2 mon");
	cronexpr_free(ce);
	expect_fires("0 0 30 2 mon", NULL, "2026-01-01T00:00:00Z", "2026-02-02T00:00:00+00:00",
	             NULL);
}

static void
macro_errors(void **state)
{
	(void)state;
	expect_errors("@every 0s", 10,
	              "f.yaml:3:17: bad @every duration \"0s\": the interval must be at least 1s",
	              NULL);
	expect_errors("@every", 10, "f.yaml:3:10: @every needs a duration, as in \"@every 10m\"",
	              NULL);
	expect_errors("@every 10m 5m", 10,
	              "f.yaml:3:21: unexpected \"5m\" after the duration of @every", NULL);
	expect_errors("@reboot", 10, "f.yaml:3:10: @reboot is not supported", NULL);
	expect_errors(
	        "@fortnightly", 10,
	        "f.yaml:3:10: unknown macro \"@fortnightly\" (use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every DURATION)",
	        NULL);
	expect_errors("@daily now", 10, "f.yaml:3:17: unexpected \"now\" after @daily", NULL);
}

static void
every_bad_duration_is_reported_at_the_duration(void **state)
{
	struct diag d;
	struct cronexpr *ce;
	struct diag_pos at = { "f.yaml", 3, 10 };

	(void)state;
	diag_init(&d);
	assert_int_equal(cronexpr_parse("@every 10x", &at, &ce, &d), -EINVAL);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.items[0].col, 17);
	assert_true(strncmp(d.items[0].msg, "bad @every duration \"10x\": ", 27) == 0);
	diag_free(&d);
}

static void
quoted_scalar_passes_its_column_plus_one(void **state)
{
	(void)state;
	/* schedule: 0 24 * * *      -> the scalar is at column 11, plain */
	expect_errors("0 24 * * *", 11,
	              "f.yaml:3:13: bad hour field \"24\": 24 is out of range (0-23)", NULL);
	/* schedule: "0 24 * * *"    -> the scalar (its quote) is at 11, its text at 12 */
	expect_errors("0 24 * * *", 11 + 1,
	              "f.yaml:3:14: bad hour field \"24\": 24 is out of range (0-23)", NULL);
	/* leading blanks inside the quotes count */
	expect_errors("  0 24 * * *", 12,
	              "f.yaml:3:16: bad hour field \"24\": 24 is out of range (0-23)", NULL);
}

static void
fixed_time_in_spring_gap_fires_once_after_it(void **state)
{
	(void)state;
	/* New York, 2026-03-08: 02:00 EST -> 03:00 EDT */
	expect_fires("30 2 * * *", "America/New_York", "2026-03-07T12:00",
	             "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00", NULL);
	expect_fires("0,30 2 * * *", "America/New_York", "2026-03-07T12:00",
	             "2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00",
	             "2026-03-09T02:30:00-04:00", NULL);
	/* Berlin, 2026-03-29: 02:00 CET -> 03:00 CEST */
	expect_fires("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00", "2026-03-29T03:00:00+02:00",
	             "2026-03-30T02:30:00+02:00", NULL);
	/* Sydney springs forward in October: 2026-10-04 02:00 AEST -> 03:00 AEDT */
	expect_fires("30 2 * * *", "Australia/Sydney", "2026-10-03T12:00",
	             "2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00", NULL);
	/* Lord Howe: a 30-minute gap, 02:00 -> 02:30 */
	expect_fires("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00",
	             "2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00", NULL);
}

static void
fixed_time_in_fall_back_fires_at_first_occurrence_only(void **state)
{
	(void)state;
	/* Berlin, 2026-10-25: 03:00 CEST -> 02:00 CET, 02:30 happens twice */
	expect_fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00", "2026-10-25T02:30:00+02:00",
	             "2026-10-26T02:30:00+01:00", NULL);
	/* New York, 2026-11-01: 02:00 EDT -> 01:00 EST */
	expect_fires("30 1 * * *", "America/New_York", "2026-10-31T12:00",
	             "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", NULL);
	expect_fires("0,45 1 * * *", "America/New_York", "2026-10-31T12:00",
	             "2026-11-01T01:00:00-04:00", "2026-11-01T01:45:00-04:00",
	             "2026-11-02T01:00:00-05:00", NULL);
	/* asked in the second pass, the repeated time is not run again */
	expect_fires("45 1 * * *", "America/New_York", "2026-11-01T01:10:00-05:00",
	             "2026-11-02T01:45:00-05:00", NULL);
	/* Sydney falls back in April: 2026-04-05 03:00 AEDT -> 02:00 AEST */
	expect_fires("30 2 * * *", "Australia/Sydney", "2026-04-04T12:00",
	             "2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00", NULL);
	/* Lord Howe: 02:00 +11 -> 01:30 +10:30 */
	expect_fires("45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00",
	             "2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30", NULL);
}

static void
wall_clock_skips_the_gap(void **state)
{
	(void)state;
	expect_fires("*/30 * * * *", "America/New_York", "2026-03-08T01:00",
	             "2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00",
	             "2026-03-08T03:30:00-04:00", NULL);
	expect_fires("30 * * * *", "Europe/Berlin", "2026-03-29T01:00", "2026-03-29T01:30:00+01:00",
	             "2026-03-29T03:30:00+02:00", NULL);
	expect_fires("0 */2 * * *", "Europe/Berlin", "2026-03-28T23:00",
	             "2026-03-29T00:00:00+01:00", "2026-03-29T04:00:00+02:00", NULL);
	expect_fires("0 * * * *", "Australia/Sydney", "2026-10-04T00:30",
	             "2026-10-04T01:00:00+10:00", "2026-10-04T03:00:00+11:00", NULL);
	expect_fires("*/15 * * * *", "Australia/Lord_Howe", "2026-10-04T01:40",
	             "2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00", NULL);
	expect_fires("@hourly", "America/New_York", "2026-03-08T00:30", "2026-03-08T01:00:00-05:00",
	             "2026-03-08T03:00:00-04:00", NULL);
}

static void
wall_clock_runs_both_passes_of_a_repeated_hour(void **state)
{
	(void)state;
	expect_fires("*/10 * * * *", "Europe/Berlin", "2026-10-25T01:55",
	             "2026-10-25T02:00:00+02:00", "2026-10-25T02:10:00+02:00",
	             "2026-10-25T02:20:00+02:00", "2026-10-25T02:30:00+02:00",
	             "2026-10-25T02:40:00+02:00", "2026-10-25T02:50:00+02:00",
	             "2026-10-25T02:00:00+01:00", "2026-10-25T02:10:00+01:00", NULL);
	expect_fires("*/20 * * * *", "America/New_York", "2026-11-01T00:50",
	             "2026-11-01T01:00:00-04:00", "2026-11-01T01:20:00-04:00",
	             "2026-11-01T01:40:00-04:00", "2026-11-01T01:00:00-05:00",
	             "2026-11-01T01:20:00-05:00", "2026-11-01T01:40:00-05:00",
	             "2026-11-01T02:00:00-05:00", NULL);
	expect_fires("15 */2 * * *", "Australia/Sydney", "2026-04-05T01:00",
	             "2026-04-05T02:15:00+11:00", "2026-04-05T02:15:00+10:00",
	             "2026-04-05T04:15:00+10:00", NULL);
	expect_fires("45 * * * *", "Australia/Lord_Howe", "2026-04-05T01:00",
	             "2026-04-05T01:45:00+11:00", "2026-04-05T01:45:00+10:30",
	             "2026-04-05T02:45:00+10:30", NULL);
}

static void
dst_days_without_matching_times_are_unaffected(void **state)
{
	(void)state;
	expect_fires("0 12 * * *", "America/New_York", "2026-03-07T13:00",
	             "2026-03-08T12:00:00-04:00", NULL);
	expect_fires("0 0 * * *", "Europe/Berlin", "2026-10-24T12:00", "2026-10-25T00:00:00+02:00",
	             "2026-10-26T00:00:00+01:00", NULL);
}

static void
far_future_uses_the_footer_rules(void **state)
{
	(void)state;
	/* Berlin 2100-03-28: 02:00 CET -> 03:00 CEST, computed from the TZif footer */
	expect_fires("30 2 * * *", "Europe/Berlin", "2100-03-27T12:00", "2100-03-28T03:00:00+02:00",
	             "2100-03-29T02:30:00+02:00", NULL);
}

static void
after_out_of_range_is_erange(void **state)
{
	struct cronexpr *ce = parse_ok("* * * * *");
	int64_t nx;

	(void)state;
	assert_int_equal(cronexpr_next(ce, NULL, INT64_MIN, &nx), -ERANGE);
	assert_int_equal(cronexpr_next(ce, NULL, TZ_T_MIN, &nx), -ERANGE);
	cronexpr_free(ce);
	cronexpr_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(star_fires_every_minute),
		cmocka_unit_test(ranges_lists_and_steps_expand),
		cmocka_unit_test(number_slash_step_runs_to_the_field_max),
		cmocka_unit_test(names_are_case_insensitive_and_work_in_ranges),
		cmocka_unit_test(sunday_is_both_0_and_7),
		cmocka_unit_test(dow_range_ending_in_sunday_ends_in_7),
		cmocka_unit_test(dom_and_dow_are_ored_when_both_restricted),
		cmocka_unit_test(star_step_counts_as_unrestricted_so_days_are_anded),
		cmocka_unit_test(leap_day_is_found_years_ahead),
		cmocka_unit_test(rare_days_are_found_decades_ahead),
		cmocka_unit_test(the_year_9999_is_the_limit),
		cmocka_unit_test(times_that_a_dst_gap_always_skips_never_fire),
		cmocka_unit_test(day_31_skips_short_months),
		cmocka_unit_test(year_rolls_over),
		cmocka_unit_test(macros_expand_as_in_cronie),
		cmocka_unit_test(every_fires_at_multiples_of_the_interval_since_the_epoch),
		cmocka_unit_test(every_ignores_dst),
		cmocka_unit_test(calendar_kinds_are_fixed_or_wallclock),
		cmocka_unit_test(field_errors_name_the_field_and_its_column),
		cmocka_unit_test(every_bad_field_is_reported),
		cmocka_unit_test(wrong_field_count_is_an_error),
		cmocka_unit_test(impossible_dates_never_fire),
		cmocka_unit_test(macro_errors),
		cmocka_unit_test(every_bad_duration_is_reported_at_the_duration),
		cmocka_unit_test(quoted_scalar_passes_its_column_plus_one),
		cmocka_unit_test(fixed_time_in_spring_gap_fires_once_after_it),
		cmocka_unit_test(fixed_time_in_fall_back_fires_at_first_occurrence_only),
		cmocka_unit_test(wall_clock_skips_the_gap),
		cmocka_unit_test(wall_clock_runs_both_passes_of_a_repeated_hour),
		cmocka_unit_test(dst_days_without_matching_times_are_unaffected),
		cmocka_unit_test(far_future_uses_the_footer_rules),
		cmocka_unit_test(after_out_of_range_is_erange),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
