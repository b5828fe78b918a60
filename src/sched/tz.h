/* src/sched/tz.h: time zones read from the system's tz database (TZif files), converted
 * per zone object, never through the process-global TZ: localtime_r() would read TZ, which
 * any thread or library may change, and a daemon with jobs in several zones needs them all
 * at once. */
#ifndef EPH_SCHED_TZ_H
#define EPH_SCHED_TZ_H
#include <stddef.h>
#include <stdint.h>

#include "util/attr.h"

struct tz; /* opaque, immutable once loaded */

/* Broken-down local time. */
struct tz_tm {
	int year;  /* e.g. 2026 */
	int mon;   /* 1-12 */
	int mday;  /* 1-31 */
	int hour;  /* 0-23 */
	int min;   /* 0-59 */
	int sec;   /* 0-60 */
	int wday;  /* 0-6, Sunday = 0 */
	int utoff; /* seconds east of UTC in force at that instant */
};

/* Instants (UTC seconds) the conversions accept: about +-69,000 years. Outside, T is clamped. */
#define TZ_T_MIN (-(INT64_C(1) << 41))
#define TZ_T_MAX (INT64_C(1) << 41)

/* Loads zone NAME ("Europe/Berlin", "UTC") from the tz database ($TZDIR, else
 * /usr/share/zoneinfo). Returns 0 and *out, -ENOENT for an unknown zone, -EINVAL for a name
 * that is not a zone name (absolute, "..", empty components, odd characters) or a file that
 * is not TZif. "UTC" and "Etc/UTC" work even without a tz database. */
EPH_MUST_CHECK int tz_load(const char *name, struct tz **out);
/* The machine's zone: $TZ when it names a zone ("Europe/Berlin" or ":Europe/Berlin"), else
 * /etc/localtime (named after its symlink target below ".../zoneinfo/", else "localtime"),
 * else UTC. Returns 0, or -errno only on a failure other than "no such zone". */
EPH_MUST_CHECK int tz_load_local(struct tz **out);
/* A new UTC zone (never fails). */
struct tz *tz_utc(void);
/* The zone's name as loaded ("UTC", "Europe/Berlin", "localtime"); borrowed. */
const char *tz_name(const struct tz *z);
void tz_free(struct tz *z); /* NULL is fine */

/* In every function below, Z == NULL means UTC. */

/* UTC seconds -> local broken-down time. */
void tz_to_local(const struct tz *z, int64_t t, struct tz_tm *out);
/* UTC offset (seconds east) in force at instant T. */
int tz_offset_at(const struct tz *z, int64_t t);

/* What a local wall time is on the zone's clock (tz_from_local's result). */
enum tz_local_kind {
	TZ_LOCAL_GAP = 0,   /* skipped (spring forward): *first = *second = first instant after */
	TZ_LOCAL_ONCE = 1,  /* exists once: *first = *second */
	TZ_LOCAL_TWICE = 2, /* repeated (fall back): *first < *second, the two instants */
};

/* Local wall time LT (year, mon, mday, hour, min, sec; wday and utoff ignored; out-of-range
 * fields are normalised, "March 32" being April 1) -> UTC. Returns an enum tz_local_kind;
 * FIRST and SECOND may be NULL. */
int tz_from_local(const struct tz *z, const struct tz_tm *lt, int64_t *first, int64_t *second);

/* A stretch of instants [start, end) over which the UTC offset is constant; prev_off is the
 * offset in force just before start (== off when start is INT64_MIN). end is INT64_MAX when
 * the offset never changes again. Transitions that change only the abbreviation or the DST
 * flag do not split spans. */
struct tz_span {
	int64_t start, end;
	int off, prev_off;
};

/* The span that contains instant T. */
void tz_span_at(const struct tz *z, int64_t t, struct tz_span *out);

/* The instant from which Z's offsets repeat with the Gregorian calendar's 400-year cycle
 * (146,097 days, whole weeks): its last transition in the file's table, after which only its
 * POSIX rule holds; TZ_T_MIN for a zone without a table (UTC, a rule alone). */
int64_t tz_periodic_from(const struct tz *z);

/* Writes T as "2026-03-08T03:00:00-04:00" in zone Z ("+00:00" for UTC) into OUT, at most N
 * bytes, NUL-terminated. An offset with seconds, as local mean time has (Berlin's +00:53:28
 * before 1893), is rounded to the minute, half away from zero, and the wall clock shown
 * with it: "1890-01-01T11:59:32+00:53" is the instant of 12:00:00 LMT, to the second. */
void tz_format_iso8601(const struct tz *z, int64_t t, char *out, size_t n);
#define TZ_ISO8601_MAX 40 /* enough for any instant within TZ_T_MIN..TZ_T_MAX */

/* Parses "2026-03-08T03:00:00-04:00", "...Z", "...+0530", "2026-03-08T03:00",
 * "2026-03-08 03:00:00", an optional fraction of a second (dropped), or "2026-03-08"
 * (midnight). Without an offset the time is local in Z; a local time skipped by a DST change
 * means the first instant after the gap, a repeated one its first occurrence. Returns 0 and
 * *out, or -EINVAL. */
EPH_MUST_CHECK int tz_parse_iso8601(const char *s, const struct tz *z, int64_t *out);

/* Calendar helpers (proleptic Gregorian), shared with cronexpr. */
int64_t tz_days_from_civil(int64_t y, int m, int d); /* days since 1970-01-01 */
void tz_civil_from_days(int64_t days, int *y, int *m, int *d);
int tz_days_in_month(int y, int m);
int tz_weekday(int64_t days); /* 0 = Sunday */

#endif
