/* src/store/store.h: the run store, one SQLite database (STATE/eph.db, WAL) holding every run,
 * its memory samples and the per-job scheduling state. The schema is versioned with
 * PRAGMA user_version and migrated forward when a writer opens it; readers (the CLI) open it
 * read-only and never block the writer for long. */
#ifndef EPH_STORE_STORE_H
#define EPH_STORE_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/attr.h"

struct diag;
struct store; /* opaque: one connection */

/* The schema version this eph writes and understands. */
#define STORE_SCHEMA_VERSION 7

enum store_state {
	STORE_QUEUED,
	STORE_WAITING,
	STORE_PROVISIONING,
	STORE_RUNNING,
	/* terminal from here on */
	STORE_SUCCEEDED,
	STORE_FAILED,
	STORE_OOM,
	STORE_TIMEOUT,
	STORE_KILLED,
	STORE_CANCELLED,
	STORE_LOST,
	STORE_SKIPPED,
};

enum store_trigger { STORE_SCHEDULE, STORE_CATCHUP, STORE_MANUAL, STORE_RETRY };

const char *store_state_name(enum store_state st);              /* "queued", … */
int store_state_parse(const char *name, enum store_state *out); /* 0 or -EINVAL */
bool store_state_terminal(enum store_state st);
const char *store_trigger_name(enum store_trigger t);               /* "schedule", … */
int store_trigger_parse(const char *name, enum store_trigger *out); /* 0 or -EINVAL */

/* One phase of a run (migrate_4.sql): "source", "runtime", "exec" from the agent, and any an
 * executor adds ("ship", "size", "create", "boot", "delete"). */
struct store_phase {
	char *name;        /* owned */
	double started_at; /* UTC seconds with ms (the scheduler's clock); 0 = unknown */
	double ended_at;   /* 0 = unknown */
	double seconds;    /* how long it took; -1 = unknown */
};

#define STORE_PHASE_NAME_MAX 32 /* bytes of a phase's name */

/* One row of `runs`. Strings are owned by the struct (store_run_clear frees them); NULL means
 * unknown. Numbers use the sentinels that store_run_init sets, stored as SQL NULL. */
struct store_run {
	int64_t id; /* set by store_run_create */
	char *job;
	enum store_trigger trigger;
	int64_t scheduled_at; /* UTC seconds; 0 = none (a manual run) */
	int attempt;          /* 1 for the first try */
	enum store_state state;
	char *reason;   /* why it ended as it did ("exit code 3", "killed by the memory limit") */
	char *executor; /* "local", … */
	int64_t memory_limit;       /* bytes; 0 = no limit */
	char *memory_reason;        /* how memory_limit was decided (exec/sizing.h); NULL =
	                             * unknown (recorded before schema version 6) */
	int64_t peak_bytes;         /* -1 = not measured */
	char *peak_method;          /* "cgroup1 memory.max_usage_in_bytes", … */
	char *enforced;             /* "cgroup2" | "cgroup1" | "sampled" */
	int exit_code;              /* -1 = none (killed by a signal, or did not run) */
	int signal;                 /* 0 = none */
	double created_at;          /* UTC seconds with ms; set by store_run_create when 0 */
	double started_at;          /* 0 = not started */
	double ended_at;            /* 0 = not ended */
	struct store_phase *phases; /* in the order they were first recorded; owned. Read with
	                             * the run; written by store_run_finish (and
	                             * store_phase_add), by no other write */
	size_t nphases;
	double cpu_user;   /* seconds of CPU of the command; -1 = unknown */
	double cpu_system; /* -1 = unknown */
	char *commit_id;
	char *run_dir;
	char *log_path;
	int64_t agent_pid;   /* 0 = none */
	int64_t agent_start; /* the agent's start time (clock ticks since boot, /proc/PID/stat
	                      * field 22), to tell a reused pid from ours; 0 = unknown */
	char *warning;       /* e.g. "fetch failed; ran the last fetched commit" */
	int64_t jitter;      /* seconds of jitter applied to the start */
	char *handle;        /* the executor's own JSON to find the run again; NULL = none */
};

/* One memory sample: T in UTC seconds (with ms), BYTES in use. */
struct store_sample {
	double t;
	int64_t bytes;
};

/* Sets every field to "unknown": NULL strings, the sentinels above, state queued, trigger
 * manual, attempt 1. */
void store_run_init(struct store_run *r);
/* Frees R's strings and re-initialises it; R itself is not freed. */
void store_run_clear(struct store_run *r);
/* Frees an array returned by store_runs_list / store_runs_unfinished (NULL is fine). */
void store_runs_free(struct store_run *runs, size_t n);

/* Opens the database at PATH for writing, creating the file (not its directory) if needed:
 * WAL, busy_timeout 5 s, synchronous=FULL (every commit is durable: a queued row exists before
 * its agent starts, a terminal state once recorded survives a power cut), and migrates it
 * forward to STORE_SCHEMA_VERSION. On failure returns -errno (-EPROTONOSUPPORT for a database
 * from a newer eph), leaves *out NULL and adds a message to D. */
EPH_MUST_CHECK int store_open(const char *path, struct store **out, struct diag *d);
/* Opens PATH read-only (for the CLI): never creates nor migrates. -ENOENT (no message) when
 * the file does not exist or has no schema yet (a writer is creating it); -EPROTONOSUPPORT
 * (with a message) for a newer or older schema. */
EPH_MUST_CHECK int store_open_readonly(const char *path, struct store **out, struct diag *d);
void store_close(struct store *s); /* NULL is fine */
/* The last SQLite error message of S, for logs; borrowed until the next call on S. */
const char *store_errmsg(struct store *s);

/* All functions below return 0 or a negative errno: -ENOENT (no such run), -EBUSY (the
 * database stayed locked past the busy timeout), -ENOSPC, -EROFS (a read-only connection),
 * -EIO (anything else; store_errmsg says what). */

/* Inserts R as a new run in state R->state, which must be STORE_QUEUED or STORE_SKIPPED
 * (-EINVAL otherwise); R->id is ignored. Sets *ID. The commit is durable on return. */
EPH_MUST_CHECK int store_run_create(struct store *s, const struct store_run *r, int64_t *id);
/* Records a non-terminal change of run ID: writes R's state (which must not be terminal:
 * -EINVAL), executor, memory_limit, memory_reason, enforced, started_at, commit_id, run_dir,
 * log_path, agent_pid, agent_start and warning — keep R as read with store_run_get, change it, pass
 * it. -EALREADY (and nothing written) when the run is already terminal. */
EPH_MUST_CHECK int store_run_update(struct store *s, int64_t id, const struct store_run *r);
/* Records that run ID's agent started: state running, STARTED_AT (UTC s), AGENT_PID and
 * AGENT_START, and nothing else of the row (a targeted update: no read, so nothing written
 * meanwhile by another process is overwritten with what was read). -EALREADY (nothing
 * written) when the run is already terminal, -ENOENT when there is no such run. */
/* Sets the executor's handle of live run ID to HANDLE (JSON text; NULL clears it). 0, -ENOENT
 * when there is no such run, -EALREADY when it is terminal, or -errno. */
EPH_MUST_CHECK int store_run_set_handle(struct store *s, int64_t id, const char *handle);
EPH_MUST_CHECK int store_run_started(struct store *s, int64_t id, double started_at,
                                     int64_t agent_pid, int64_t agent_start);
/* Moves run ID to its terminal state FINAL->state, exactly once, in one transaction with its
 * N memory SAMPLES: writes state, reason, exit_code, signal, peak_bytes, peak_method,
 * enforced, ended_at, FINAL's phases (added as store_phase_add does), cpu_user, cpu_system,
 * and started_at / memory_limit /
 * warning / commit_id when FINAL has them (non-zero, non-NULL). Returns -EINVAL when
 * FINAL->state is not terminal, -ENOENT when there is no such run, -EALREADY (and nothing
 * changed) when it was already terminal. */
EPH_MUST_CHECK int store_run_finish(struct store *s, int64_t id, const struct store_run *final,
                                    const struct store_sample *samples, size_t n);
/* store_run_finish for a process that cannot decide the run's mail (a command while no daemon
 * runs): the run is listed in mail_owed (outbox.h) in the same transaction, for the daemon's
 * next start to decide. Only the process whose write succeeded owes it. */
EPH_MUST_CHECK int store_run_finish_owing_mail(struct store *s, int64_t id,
                                               const struct store_run *final,
                                               const struct store_sample *samples, size_t n);

/* Deletes run ID and its memory samples if it is terminal (retention): 0, -ENOENT when there
 * is no such run, -EBUSY when it is not terminal, -EAGAIN while the upload of its results is
 * queued (store/upload.h: they are kept until they are in the bucket or refused). */
EPH_MUST_CHECK int store_run_delete(struct store *s, int64_t id);

/* Reads run ID into *OUT (initialised by this call; store_run_clear it). */
EPH_MUST_CHECK int store_run_get(struct store *s, int64_t id, struct store_run *out);
/* The newest run of JOB (by id) into *OUT; -ENOENT when the job has none. */
EPH_MUST_CHECK int store_run_latest(struct store *s, const char *job, struct store_run *out);
/* The runs of JOB (every job when NULL), newest first, at most LIMIT (no limit when 0).
 * *OUT is a new array of *N runs (store_runs_free; NULL when *N is 0). */
EPH_MUST_CHECK int store_runs_list(struct store *s, const char *job, size_t limit,
                                   struct store_run **out, size_t *n);
/* Every run not in a terminal state, oldest first (for reconciling after a restart). */
EPH_MUST_CHECK int store_runs_unfinished(struct store *s, struct store_run **out, size_t *n);
/* The memory samples of run ID in time order: *OUT is a new array of *N (free(); NULL when
 * none). A run without samples is not an error. */
EPH_MUST_CHECK int store_samples_get(struct store *s, int64_t id, struct store_sample **out,
                                     size_t *n);

/* Adds phase P to run ID, or, when the run has it already, completes it: each of P's known
 * fields replaces the recorded one, the unknown ones leave it. -EINVAL for a name that is
 * empty or longer than STORE_PHASE_NAME_MAX, -ENOENT when there is no such run. The commit is
 * durable on return. */
EPH_MUST_CHECK int store_phase_add(struct store *s, int64_t id, const struct store_phase *p);
/* The phases of run ID, in the order they were first recorded: *OUT is a new array of *N
 * (store_phases_free; NULL when none). A run without phases is not an error. */
EPH_MUST_CHECK int store_phases_get(struct store *s, int64_t id, struct store_phase **out,
                                    size_t *n);
void store_phases_free(struct store_phase *p, size_t n); /* NULL is fine */
/* Appends a copy of phase NAME (STARTED_AT, ENDED_AT, SECONDS as in struct store_phase) to
 * R's phases, for store_run_finish. */
void store_run_add_phase(struct store_run *r, const char *name, double started_at, double ended_at,
                         double seconds);

/* ---- store_sizing.c: what sizing a job's memory reads (exec/sizing.h) ---- */

/* One run of a job's memory history. */
struct store_size_obs {
	int64_t id;
	bool oom;             /* ended oom (else succeeded) */
	int64_t peak_bytes;   /* -1 = not measured */
	int64_t memory_limit; /* bytes; 0 = none */
	double seconds;       /* ended - started; -1 = unknown */
};

/* The latest runs of JOB that ended succeeded or oom, newest first, at most LIMIT (> 0):
 * *OUT is a new array of *N (free(); NULL when none). Runs of other outcomes say nothing of
 * what the job needs (a failure may have stopped early) and are left out. */
EPH_MUST_CHECK int store_size_history(struct store *s, const char *job, size_t limit,
                                      struct store_size_obs **out, size_t *n);

/* The latest run of JOB's fire SCHEDULED_AT (0: a run without one) that has ended: what a
 * retry of it starts from. */
struct store_fire_last {
	int attempt;
	enum store_state state;
	int64_t memory_limit; /* bytes; 0 = none */
};

/* Fills *OUT; 0, or -ENOENT when that fire has no ended run. */
EPH_MUST_CHECK int store_fire_last(struct store *s, const char *job, int64_t scheduled_at,
                                   struct store_fire_last *out);

/* The state of JOB's latest ended run (skipped ones left out) into *OUT; 0, or -ENOENT when
 * it has none. */
EPH_MUST_CHECK int store_job_last_state(struct store *s, const char *job, enum store_state *out);

/* What a profiled run's memory_reason ends with ("; profiled: +64 MiB for the profiler",
 * exec/sizing.h): such a run is left out of the job's sizing history (its peak holds the
 * profiler's own memory). */
#define STORE_PROFILED_MARK "; profiled: +"

/* ---- store_cost.c: what `eph cost` reads (exec/cost.h) ---- */

/* One run that ended in the window. */
struct store_cost_run {
	enum store_state state;
	double seconds;       /* ended - started; -1 = it never started */
	int64_t memory_limit; /* bytes; 0 = none */
	int64_t peak_bytes;   /* -1 = not measured */
	char *executor;       /* owned; NULL = unknown */
	char *host;           /* owned: the host its handle names (ssh); NULL = none */
};

/* The runs of JOB that ended at or after SINCE (UTC seconds), skipped ones left out, oldest
 * first: *OUT is a new array of *N (store_cost_runs_free; NULL when none). */
EPH_MUST_CHECK int store_cost_runs(struct store *s, const char *job, double since,
                                   struct store_cost_run **out, size_t *n);
void store_cost_runs_free(struct store_cost_run *v, size_t n); /* NULL is fine */

/* The daemon's per-job state: the time up to which JOB's fires have been planned (UTC
 * seconds). get: -ENOENT when the job has no row. */
EPH_MUST_CHECK int store_job_state_get(struct store *s, const char *job, int64_t *scheduled_until);
EPH_MUST_CHECK int store_job_state_set(struct store *s, const char *job, int64_t scheduled_until);

#endif
