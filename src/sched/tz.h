/* src/sched/tz.h: time zones read from the system's tz database (TZif files), converted
 * per zone object, never through the process-global TZ: localtime_r() would read TZ, which
 * any thread or library may change, and a daemon with jobs in several zones needs them all
 * at once. */
#ifndef EPH_SCHED_TZ_H
#define EPH_SCHED_TZ_H
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

/* Loads zone NAME ("Europe/Berlin", "UTC") from the tz database ($TZDIR, else
 * /usr/share/zoneinfo). Returns 0 and *out, -ENOENT for an unknown zone, -EINVAL for a name
 * that is not a zone name (absolute, "..") or a file that is not TZif. */
EPH_MUST_CHECK int tz_load(const char *name, struct tz **out);
/* The machine's zone: $TZ when it names a zone, else /etc/localtime, else UTC. */
EPH_MUST_CHECK int tz_load_local(struct tz **out);
/* The zone's name as loaded ("UTC", "Europe/Berlin", "localtime"); borrowed. */
const char *tz_name(const struct tz *z);
void tz_free(struct tz *z); /* NULL is fine */

/* UTC seconds -> local broken-down time. */
void tz_to_local(const struct tz *z, int64_t t, struct tz_tm *out);
/* UTC offset (seconds east) in force at instant T. */
int tz_offset_at(const struct tz *z, int64_t t);

#endif
