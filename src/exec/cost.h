/* src/exec/cost.h: what runs cost on their executor, the arithmetic of `eph cost`
 * (docs/cost.md). Pure: no I/O, no clock; the command reads the store and the jobs file and
 * hands the numbers here.
 *
 * An executor is priced by a struct cost_rate, one of two rules:
 *   - the host rule (local, ssh): a machine of MEMORY bytes costs PRICE_MONTHLY a month,
 *     whether it works or not, and a run's share of it is its memory-seconds (its memory
 *     limit, else its peak, times its duration) over the machine's (MEMORY x COST_MONTH_S);
 *   - the ladder rule (a cloud executor): SIZES, each with its memory and monthly price; a run
 *     is billed on the smallest size that holds its memory, for its seconds, by BILL, the
 *     provider's rule (per second, per started hour, with a minimum: the executor's own).
 * A cloud executor plugs in by filling SIZES and BILL; nothing else here changes. */
#ifndef EPH_EXEC_COST_H
#define EPH_EXEC_COST_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A month, as providers bill one: 730 hours (365 x 24 / 12). */
#define COST_MONTH_S    2628000.0
/* The smallest always-on server of the host rule's reference ladder. */
#define COST_SERVER_MIN (UINT64_C(512) << 20)
/* The step of the host rule's floor: memory is granted by the MiB (exec/sizing.h). */
#define COST_STEP       (UINT64_C(1) << 20)

/* A size of a ladder: its memory and what it costs a month, always on. */
struct cost_size {
	const char *name; /* the provider's slug ("s-1vcpu-1gb"); NULL for the host rule's */
	uint64_t memory;  /* bytes */
	double price_monthly;
};

struct cost_rate {
	/* the host rule: used when NSIZES is 0. PRICE_MONTHLY 0 = unpriced (everything 0) */
	double price_monthly;
	uint64_t memory; /* the host's memory, bytes; 0 = unknown (everything 0) */
	/* the ladder rule: ascending by memory */
	const struct cost_size *sizes;
	size_t nsizes;
	/* what a run on size SZ for SECONDS is billed; NULL = per second, pro rata of
	 * SZ->price_monthly over COST_MONTH_S */
	double (*bill)(const struct cost_size *sz, double seconds);
};

/* One run, as the cost reads it. */
struct cost_run {
	double seconds;               /* started to ended; < 0 = unknown (the run is not counted) */
	uint64_t limit;               /* its memory limit, bytes; 0 = none */
	int64_t peak;                 /* bytes; -1 = not measured */
	bool succeeded;               /* ended succeeded: its peak is what it needed */
	bool oom;                     /* ended oom: it needed more than its limit */
	const struct cost_rate *rate; /* its executor's (host); NULL = unpriced */
};

/* The memory run R is charged for: its limit, else its peak, else 0. */
uint64_t cost_run_memory(const struct cost_run *r);
/* What run R cost on its rate (0 when unpriced or its duration is unknown). */
double cost_run_cost(const struct cost_run *r);
/* The smallest size of RATE's ladder that holds BYTES, into OUT: for the ladder rule, one of
 * its sizes (-ENOENT when none is large enough); for the host rule, the reference server: the
 * smallest power of two of bytes, at least COST_SERVER_MIN, that holds BYTES, priced at the
 * host's price per byte. */
int cost_server(const struct cost_rate *rate, uint64_t bytes, struct cost_size *out);
/* What SECONDS of BYTES cost at the floor: per second on the smallest size that fits, with no
 * minimum and no rounding of time (the ladder rule: its size's price pro rata; the host rule:
 * BYTES rounded up to COST_STEP, at the host's price per byte-second). 0 when none fits. */
double cost_floor(const struct cost_rate *rate, uint64_t bytes, double seconds);

/* What `eph cost` says of one job: the runs of the window, and the month projected. */
struct cost_job {
	size_t nruns;        /* runs counted (duration known) */
	size_t nunpriced;    /* of which on an executor with no price */
	double run_seconds;  /* their durations, summed */
	double cost;         /* their costs, summed */
	double typical_cost; /* the median cost of a run */
	double typical_s;    /* the median duration of a run */
	uint64_t need;       /* the memory it needs: the most a succeeded run held, and more than
	                      * any oom run's limit (+COST_STEP); 0 = unknown */
	double fires_month;  /* fires in a month, from the schedule */
	double month;        /* fires_month x typical_cost */
	struct cost_size server; /* always on: the smallest server that holds NEED (memory 0 =
	                          * none: NEED unknown, or none large enough) */
	double floor;            /* the window's run-seconds at the floor for NEED */
	double floor_month;      /* fires_month x typical_s at the floor for NEED */
};

/* Sums job runs RUNS (N, any order) into OUT, projecting FIRES_MONTH fires a month, with RATE
 * (the job's executor now) for the always-on server and the floor. */
void cost_job_sum(const struct cost_run *runs, size_t n, double fires_month,
                  const struct cost_rate *rate, struct cost_job *out);
/* The median of the N values V, which it sorts in place (the mean of the middle two for an
 * even N); 0 when N is 0. */
double cost_median(double *v, size_t n);

#endif
