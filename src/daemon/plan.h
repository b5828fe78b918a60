/* src/daemon/plan.h: which fires of a job to run now (on time, or caught up after downtime
 * under the job's catchup policy), and the backoff before a retry. Pure: no I/O, no clock. */
#ifndef EPH_DAEMON_PLAN_H
#define EPH_DAEMON_PLAN_H
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "store/store.h"
#include "util/attr.h"

struct cronexpr;
struct tz;

/* At most this many missed fires are caught up with `catchup: all` (the latest ones). */
#define PLAN_MAX_CATCHUP 1000

struct plan_fire {
	int64_t at; /* UTC seconds */
	enum store_trigger trigger;
};

/* The fires of CE (zone Z) in (AFTER, NOW] to run now, in time order: a fire at most LATE
 * seconds old is on time (STORE_SCHEDULE); older ones were missed and are caught up
 * (STORE_CATCHUP) as CATCHUP says — none, the latest, or all (the latest PLAN_MAX_CATCHUP) —
 * of those no older than DEADLINE seconds (0 = no deadline). *OUT is a new array of *N
 * (free(); NULL when *N is 0). Returns 0, or -errno from cronexpr_next other than -ENOENT. */
EPH_MUST_CHECK int plan_due(const struct cronexpr *ce, const struct tz *z, int64_t after,
                            int64_t now, int64_t late, enum conf_catchup catchup, int64_t deadline,
                            struct plan_fire **out, size_t *n);

/* The delay before retry number ATTEMPT (1 for the first retry): BASE * 2^(ATTEMPT-1)
 * seconds, at most one day (and BASE when BASE is already longer). */
int64_t plan_backoff(int64_t base, int attempt);

#endif
