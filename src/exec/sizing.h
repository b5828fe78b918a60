/* src/exec/sizing.h: the memory limit each run of a job gets, and why. A job with a fixed
 * `memory` gets it; a job with `memory: auto` gets what its recent runs needed: the 95th
 * percentile of their peaks plus 25%, rounded up to the MiB (the ladder of the local, ssh
 * and Slurm executors), within the job's [min, max]; and an oom run retried with
 * `retry_on_oom: grow` gets twice the limit it died at, up to max. Decided once, when the
 * run is created (exec_create_row), and recorded with the run (memory_limit,
 * memory_reason), so `eph run` and the daemon admit, enforce and show the same number.
 *
 * The history: the job's last SIZING_WINDOW runs that ended succeeded or oom. A succeeded
 * run needed its peak. An oom run needed more than its limit (the kernel killed it there:
 * its peak is a lower bound), so it counts as its limit, and the limit decided is never
 * below that limit plus the headroom: a size that was seen to be too small is not given
 * again while that run is in the window. Other outcomes (failed, timeout, killed, lost)
 * may have stopped early and say nothing of the need. docs/jobs-file.md says the same. */
#ifndef EPH_EXEC_SIZING_H
#define EPH_EXEC_SIZING_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/attr.h"

struct conf_job;

#define SIZING_WINDOW   20                  /* runs of the history */
#define SIZING_PCT      95                  /* the percentile of their peaks */
#define SIZING_HEADROOM 25                  /* percent added on top */
#define SIZING_STEP     (UINT64_C(1) << 20) /* the ladder: limits are whole MiB */

/* A limit decided, and why ("p95 of 20 runs 2.31 GiB + 25%", "min: no history", "grown after
 * oom at 1 GiB", "configured"). */
struct sizing {
	uint64_t limit; /* bytes; 0 = no limit */
	char *reason;   /* owned (sizing_clear) */
};

/* The room a profiled run gets on top of LIMIT for tracemalloc's own records: a quarter of
 * it, at least 64 MiB. */
uint64_t sizing_profile_room(uint64_t limit);
/* Whether REASON (a run's memory_reason) says the run is profiled (STORE_PROFILED_MARK). */
bool sizing_profiled(const char *reason);

void sizing_clear(struct sizing *z); /* frees the reason; Z itself is the caller's */

/* The limit for a job with memory: auto from its history OBS (N runs, newest first, as
 * store_size_history gives them), within [MIN, MAX] (MAX 0: no upper bound). No run to
 * count gives MIN. Pure: no I/O. */
void sizing_from_history(const struct store_size_obs *obs, size_t n, uint64_t min, uint64_t max,
                         struct sizing *out);
/* The size after LIMIT for a grow retry: twice it, rounded up to the ladder, at most MAX
 * (0: no upper bound). */
uint64_t sizing_grow(uint64_t limit, uint64_t max);
/* Whether run FINAL (terminal) of job J gets a grow retry: J has retry_on_oom: grow, FINAL
 * ended oom at a limit below J's max. */
bool sizing_grows(const struct conf_job *j, const struct store_run *final);
/* Decides the limit of a new run of J (TRIGGER, SCHEDULED_AT, ATTEMPT as the run will be
 * recorded) from the store S: fixed; grown (a retry of the same attempt, after it ended oom,
 * when J grows: the daemon and eph run give a grow retry the attempt number of the run it
 * retries); or from the history, and for a retry at least the limit of the fire's attempt
 * before it (within max). Always fills OUT: a history that cannot be read gives J's min,
 * with the reason saying so. */
void sizing_decide(struct store *s, const struct conf_job *j, enum store_trigger trigger,
                   int64_t scheduled_at, int attempt, struct sizing *out);

/* What `eph sizes` shows of a job's history OBS (N runs, newest first). Peaks are of the
 * succeeded runs whose peak was measured. "Unused" is memory asked for and never used: for
 * each succeeded run that had a limit and a measured peak, limit - peak; its mean per run,
 * and its sum weighted by the run's duration (GiB-hours held and not used). */
struct sizing_stats {
	size_t nruns;            /* runs counted: succeeded with a peak, and oom */
	size_t noom;             /* of which oom */
	size_t npeaks;           /* succeeded runs with a measured peak */
	uint64_t p50, p95, max;  /* of those peaks; 0 when none */
	size_t nunused;          /* succeeded runs with a limit and a peak */
	uint64_t unused_mean;    /* bytes */
	double unused_gib_hours; /* sum of (limit - peak) * seconds, in GiB-hours */
};

void sizing_stats(const struct store_size_obs *obs, size_t n, struct sizing_stats *st);
/* The nearest-rank percentile PCT (1..100) of the N values V, which it sorts in place; 0
 * when N is 0. */
uint64_t sizing_percentile(uint64_t *v, size_t n, unsigned pct);
/* BYTES for a reason or a table: "1 GiB", "512 MiB" when whole, else as units_format_size
 * ("2.31 GiB"). Writes at most N bytes into OUT. */
void sizing_format(uint64_t bytes, char *out, size_t n);

#endif
