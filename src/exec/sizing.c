/* src/exec/sizing.c: the memory limit of a new run, from the job's configuration and its
 * history in the store (exec/sizing.h). */
#include "exec/sizing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "util/units.h"
#include "util/xalloc.h"

void
sizing_clear(struct sizing *z)
{
	free(z->reason);
	z->reason = NULL;
	z->limit = 0;
}

void
sizing_format(uint64_t bytes, char *out, size_t n)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	uint64_t v = bytes;
	size_t u = 0;

	while (v >= 1024 && v % 1024 == 0 && u + 1 < EPH_ARRAY_LEN(units)) {
		v /= 1024;
		u++;
	}
	if (bytes > 0 && (u >= 2 || bytes < 1024) && v < 1024)
		snprintf(out, n, "%llu %s", (unsigned long long)v, units[u]);
	else
		units_format_size(bytes, out, n);
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

uint64_t
sizing_percentile(uint64_t *v, size_t n, unsigned pct)
{
	size_t rank;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), u64_cmp);
	/* nearest rank: the smallest value with at least PCT% of the values at or below it */
	rank = ((size_t)pct * n + 99) / 100;
	if (rank < 1)
		rank = 1;
	return v[rank - 1];
}

/* BYTES plus the headroom, rounded up to the ladder. */
static uint64_t
with_headroom(uint64_t bytes)
{
	uint64_t h = bytes + (bytes * SIZING_HEADROOM + 99) / 100;

	return (h + SIZING_STEP - 1) / SIZING_STEP * SIZING_STEP;
}

void
sizing_from_history(const struct store_size_obs *obs, size_t n, uint64_t min, uint64_t max,
                    struct sizing *out)
{
	uint64_t *v = xcalloc(n > 0 ? n : 1, sizeof(*v));
	uint64_t p, want, oom_floor = 0, oom_at = 0;
	size_t k = 0;
	char a[32], b[32], *why;

	for (size_t i = 0; i < n; i++) {
		const struct store_size_obs *o = &obs[i];

		if (o->oom && o->memory_limit > 0) {
			/* it needed more than its limit: at least the limit, whatever was read */
			uint64_t need = (uint64_t)o->memory_limit;

			if (o->peak_bytes > o->memory_limit)
				need = (uint64_t)o->peak_bytes;
			v[k++] = need;
			if (with_headroom(need) > oom_floor) {
				oom_floor = with_headroom(need);
				oom_at = (uint64_t)o->memory_limit;
			}
		} else if (o->peak_bytes >= 0) {
			v[k++] = (uint64_t)o->peak_bytes;
		}
	}
	if (k == 0) {
		free(v);
		out->limit = min;
		out->reason = xstrdup("min: no history");
		return;
	}
	p = sizing_percentile(v, k, SIZING_PCT);
	free(v);
	want = with_headroom(p);
	sizing_format(p, a, sizeof(a));
	if (oom_floor > want) {
		want = oom_floor;
		sizing_format(oom_at, b, sizeof(b));
		why = xasprintf("oom at %s in the last %zu run%s + %d%%", b, k, k == 1 ? "" : "s",
		                SIZING_HEADROOM);
	} else {
		why = xasprintf("p%d of %zu run%s %s + %d%%", SIZING_PCT, k, k == 1 ? "" : "s", a,
		                SIZING_HEADROOM);
	}
	if (want < min) {
		sizing_format(min, b, sizeof(b));
		out->reason = xasprintf("%s, raised to min %s", why, b);
		want = min;
	} else if (max > 0 && want > max) {
		sizing_format(max, b, sizeof(b));
		out->reason = xasprintf("%s, capped at max %s", why, b);
		want = max;
	} else {
		out->reason = why;
		why = NULL;
	}
	free(why);
	out->limit = want;
}

uint64_t
sizing_grow(uint64_t limit, uint64_t max)
{
	uint64_t g = limit > UNITS_SIZE_MAX / 2 ? UNITS_SIZE_MAX : limit * 2;

	g = (g + SIZING_STEP - 1) / SIZING_STEP * SIZING_STEP;
	return max > 0 && g > max ? max : g;
}

bool
sizing_grows(const struct conf_job *j, const struct store_run *final)
{
	return j->retry_on_oom == CONF_OOM_RETRY_GROW && j->memory_auto &&
	       final->state == STORE_OOM && final->memory_limit > 0 &&
	       (j->memory_max == 0 || (uint64_t) final->memory_limit < j->memory_max);
}

static void
sizing_limit(struct store *s, const struct conf_job *j, enum store_trigger trigger,
             int64_t scheduled_at, int attempt, struct sizing *out)
{
	struct store_size_obs *obs = NULL;
	struct store_fire_last last = { 0 };
	bool retry;
	size_t n = 0;
	char a[32];
	int rc;

	out->limit = 0;
	out->reason = NULL;
	if (!j->memory_auto) {
		out->limit = j->memory;
		out->reason = xstrdup(j->memory > 0 ? "configured" : "no limit configured");
		return;
	}
	retry = trigger == STORE_RETRY && store_fire_last(s, j->name, scheduled_at, &last) == 0 &&
	        last.memory_limit > 0;
	/* the same attempt again after it ended oom, of a job that grows: the next size up */
	if (retry && last.state == STORE_OOM && last.attempt == attempt &&
	    j->retry_on_oom == CONF_OOM_RETRY_GROW &&
	    (j->memory_max == 0 || (uint64_t)last.memory_limit < j->memory_max)) {
		out->limit = sizing_grow((uint64_t)last.memory_limit, j->memory_max);
		sizing_format((uint64_t)last.memory_limit, a, sizeof(a));
		out->reason = xasprintf("grown after oom at %s", a);
		return;
	}
	rc = store_size_history(s, j->name, SIZING_WINDOW, &obs, &n);
	if (rc < 0) {
		out->limit = j->memory_min;
		out->reason =
		        xasprintf("min: the job's history could not be read (%s)", strerror(-rc));
		return;
	}
	sizing_from_history(obs, n, j->memory_min, j->memory_max, out);
	free(obs);
	/* a retry after another failure keeps what the attempt before it had: that attempt
	 * (which the history leaves out) may well have needed it */
	if (retry && (uint64_t)last.memory_limit > out->limit &&
	    (j->memory_max == 0 || (uint64_t)last.memory_limit <= j->memory_max)) {
		char *why = out->reason;

		sizing_format((uint64_t)last.memory_limit, a, sizeof(a));
		out->limit = (uint64_t)last.memory_limit;
		out->reason = xasprintf("%s, kept at attempt %d's %s", why, last.attempt, a);
		free(why);
	}
}

void
sizing_stats(const struct store_size_obs *obs, size_t n, struct sizing_stats *st)
{
	uint64_t *v = xcalloc(n > 0 ? n : 1, sizeof(*v));
	double unused_sum = 0;

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < n; i++) {
		const struct store_size_obs *o = &obs[i];

		if (o->oom) {
			st->nruns++;
			st->noom++;
			continue;
		}
		if (o->peak_bytes < 0)
			continue;
		st->nruns++;
		v[st->npeaks++] = (uint64_t)o->peak_bytes;
		if (o->memory_limit > 0) {
			uint64_t idle = o->memory_limit > o->peak_bytes
			                        ? (uint64_t)(o->memory_limit - o->peak_bytes)
			                        : 0;

			st->nunused++;
			unused_sum += (double)idle;
			if (o->seconds > 0)
				st->unused_gib_hours += (double)idle / (double)(UINT64_C(1) << 30) *
				                        o->seconds / 3600;
		}
	}
	if (st->npeaks > 0) {
		st->p50 = sizing_percentile(v, st->npeaks, 50);
		st->p95 = sizing_percentile(v, st->npeaks, 95);
		st->max = v[st->npeaks - 1];
	}
	if (st->nunused > 0)
		st->unused_mean = (uint64_t)(unused_sum / (double)st->nunused + 0.5);
	free(v);
}

uint64_t
sizing_profile_room(uint64_t limit)
{
	uint64_t q = limit / 4, least = UINT64_C(64) << 20;

	return q > least ? q : least;
}

bool
sizing_profiled(const char *reason)
{
	return reason != NULL && strstr(reason, STORE_PROFILED_MARK) != NULL;
}

void
sizing_decide(struct store *s, const struct conf_job *j, enum store_trigger trigger,
              int64_t scheduled_at, int attempt, struct sizing *out)
{
	enum store_state last = STORE_SUCCEEDED;
	char *why;
	char b[32];

	sizing_limit(s, j, trigger, scheduled_at, attempt, out);
	/* profile: on_oom profiles the run after one that ended oom: a grow retry, or the
	 * job's next run */
	if (j->profile == CONF_PROFILE_OFF ||
	    (j->profile == CONF_PROFILE_ON_OOM &&
	     (store_job_last_state(s, j->name, &last) < 0 || last != STORE_OOM)))
		return;
	why = out->reason;
	sizing_format(sizing_profile_room(out->limit), b, sizeof(b));
	out->reason =
	        xasprintf("%s" STORE_PROFILED_MARK "%s for the profiler (%s)", why, b,
	                  j->profile == CONF_PROFILE_MEMORY ? "profile: memory" : "after an oom");
	free(why);
}
