/* src/daemon/plan.c: due fires and retry backoff. */
#include "daemon/plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sched/cronexpr.h"
#include "util/xalloc.h"

#define PLAN_BACKOFF_MAX INT64_C(86400)

int
plan_due(const struct cronexpr *ce, const struct tz *z, int64_t after, int64_t now, int64_t late,
         enum conf_catchup catchup, int64_t deadline, struct plan_fire **out, size_t *n)
{
	struct plan_fire *v = NULL;
	size_t cap = 0, len = 0, first = 0; /* v[first..len) holds the kept missed fires */
	int64_t start = after, t, missed_latest = INT64_MIN;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (late < 0)
		late = 0;
	/* fires older than this cannot be run: skip walking over them */
	if (catchup == CONF_CATCHUP_NONE) {
		if (now - late - 1 > start)
			start = now - late - 1;
	} else if (deadline > 0 && now - deadline - 1 > start) {
		start = now - deadline - 1;
	}
	t = start;
	for (;;) {
		int64_t next;

		rc = cronexpr_next(ce, z, t, &next);
		if (rc == -ENOENT) {
			rc = 0;
			break;
		}
		if (rc < 0)
			goto fail;
		if (next > now)
			break;
		t = next;
		if (now - next <= late) {
			/* on time: everything from here on is */
			if (catchup == CONF_CATCHUP_LATEST && missed_latest != INT64_MIN) {
				first = len = 0;
				if (cap == 0) {
					cap = 16;
					v = xreallocarray(v, cap, sizeof(*v));
				}
				v[len++] = (struct plan_fire){ missed_latest, STORE_CATCHUP };
				missed_latest = INT64_MIN;
			}
		} else if (catchup == CONF_CATCHUP_NONE ||
		           (deadline > 0 && now - next > deadline)) {
			continue;
		} else if (catchup == CONF_CATCHUP_LATEST) {
			missed_latest = next;
			continue;
		} else if (len - first == PLAN_MAX_CATCHUP) {
			first++; /* keep the latest ones */
		}
		if (first > 0 && len == cap) {
			memmove(v, v + first, (len - first) * sizeof(*v));
			len -= first;
			first = 0;
		}
		if (len == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[len++] = (struct plan_fire){ next, now - next <= late ? STORE_SCHEDULE
			                                                : STORE_CATCHUP };
	}
	if (missed_latest != INT64_MIN) {
		/* every fire was missed: the latest of them */
		free(v);
		v = xmalloc(sizeof(*v));
		v[0] = (struct plan_fire){ missed_latest, STORE_CATCHUP };
		first = 0;
		len = 1;
	}
	if (len - first == 0) {
		free(v);
		return 0;
	}
	if (first > 0)
		memmove(v, v + first, (len - first) * sizeof(*v));
	*out = v;
	*n = len - first;
	return 0;
fail:
	free(v);
	return rc;
}

int64_t
plan_backoff(int64_t base, int attempt)
{
	int64_t d = base;

	if (base <= 0)
		return 0;
	for (int i = 1; i < attempt; i++) {
		if (d >= PLAN_BACKOFF_MAX / 2)
			return base > PLAN_BACKOFF_MAX ? base : PLAN_BACKOFF_MAX;
		d *= 2;
	}
	return d;
}
