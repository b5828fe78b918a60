/* src/sched/cronexpr.h: cron expressions (5 fields, @macros, @every); no I/O, no global TZ. */
#ifndef EPH_SCHED_CRONEXPR_H
#define EPH_SCHED_CRONEXPR_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/attr.h" /* EPH_MUST_CHECK */

struct cronexpr; /* opaque */
struct diag;
struct diag_pos;
struct tz;

/* The last instant cronexpr_next returns, 9999-12-31T23:59:59Z; nor is a fire time's wall
 * clock past 9999-12-31T23:59:59. (Every calendar expression that parses fires in UTC within
 * 400 years, over which the Gregorian calendar repeats, weekdays included.) */
#define CRONEXPR_T_MAX INT64_C(253402300799)

/* Parses TEXT, whose first byte is at AT (file, line, column of the jobs file; AT.col is the
 * column of TEXT's first byte: for a quoted scalar, the first byte inside the quote, which is where
 * libfyaml's mark points; AT may be NULL). On success returns 0 and *out owns a new expression
 * (cronexpr_free). Otherwise returns -EINVAL, leaves *out NULL and adds every problem to D, each at
 * the column of the offending field (AT.col + the field's byte offset in TEXT). An expression
 * that can never fire ("0 0 30 2 *") is an error. Accepts 5 fields (Vixie cron: names, ranges,
 * lists, steps, "N/step" = "N-max/step", 0 and 7 both Sunday, a day-of-week range that ends in
 * Sunday ending in 7 as in cronie: "Sat-Sun" = 6-7), @yearly @annually @monthly @weekly @daily
 * @midnight @hourly (any case), and "@every DURATION" (units_parse_duration, at least 1s). */
EPH_MUST_CHECK int cronexpr_parse(const char *text, const struct diag_pos *at,
                                  struct cronexpr **out, struct diag *d);
/* First fire strictly after AFTER (UTC seconds) in zone Z (NULL = UTC). Matching is on Z's
 * wall clock with cronie's DST rules (DESIGN.md): a fixed-time job (neither minute nor hour
 * starts with '*') whose time is skipped fires once at the first instant after the gap, and
 * once only, at the first occurrence, when its time repeats; a wall-clock job skips times in
 * a gap and fires in both passes of a repeated hour. "@every D" fires at the multiples of D
 * seconds since the Unix epoch, whatever the zone.
 * Returns 0 and *next; -ENOENT if there is none up to CRONEXPR_T_MAX (past the year 9999,
 * or at all: a wall-clock time that a DST gap always skips, as 2:xx on the second Sunday of
 * March in America/New_York); -ERANGE if AFTER is before the years the zone code handles
 * (about -69,000). The search is bounded: it skips months and days whole, never minutes. */
EPH_MUST_CHECK int cronexpr_next(const struct cronexpr *ce, const struct tz *z, int64_t after,
                                 int64_t *next);
/* For "@every D": the interval in seconds; 0 for calendar expressions. */
int64_t cronexpr_interval(const struct cronexpr *ce);
/* True for a wall-clock job (minute or hour field starts with '*', @hourly, @every); false
 * for a fixed-time job. See cronexpr_next. */
bool cronexpr_is_wallclock(const struct cronexpr *ce);
void cronexpr_free(struct cronexpr *ce); /* NULL is fine */
/* For an owner that packs expressions into memory of its own (conf_compact's pool): the
 * bytes one takes, and a copy of CE into MEM (cronexpr_size() bytes, aligned for a
 * uint64_t), which MEM's owner frees, never cronexpr_free. */
size_t cronexpr_size(void);
struct cronexpr *cronexpr_copy_into(const struct cronexpr *ce, void *mem);

#endif
