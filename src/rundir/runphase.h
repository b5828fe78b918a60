/* src/rundir/runphase.h: a run's phases as its files tell them: when each began and ended
 * (events.jsonl's "phase" events) and how long it took (result.json's "phases", measured on
 * a monotonic clock). What the scheduler records in the store's phases table. */
#ifndef EPH_RUNDIR_RUNPHASE_H
#define EPH_RUNDIR_RUNPHASE_H
#include <stddef.h>

struct rundir_event;
struct rundir_result;

#define RUNPHASE_NAME_MAX 32 /* bytes of a phase's name; longer ones are not phases */

struct runphase {
	char name[RUNPHASE_NAME_MAX + 1];
	double started_at; /* UTC seconds; 0 = unknown */
	double ended_at;   /* 0 = unknown */
	double seconds;    /* -1 = unknown */
};

/* The phases in the order they began (or appeared). Zero it to start. */
struct runphases {
	struct runphase *v;
	size_t n;
};

/* Folds event E into PH when it is a "phase" event with a name and a state "start" or
 * "end"; other events are ignored. */
void runphase_event(struct runphases *ph, const struct rundir_event *e);
/* Sets the lengths of PH's phases from result R ("source", "runtime", "exec"), adding the
 * phases no event told of. */
void runphase_result(struct runphases *ph, const struct rundir_result *r);
void runphases_free(struct runphases *ph); /* members only */

#endif
