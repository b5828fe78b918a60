/* src/rundir/rundir.h: the run directory's files (docs/rundir.md): spec.json, agent.pid,
 * events.jsonl and result.json, written by the agent (and spec.json by the scheduler) and read
 * by the store, the executors and the CLI. No file here is parsed anywhere else. */
#ifndef EPH_RUNDIR_RUNDIR_H
#define EPH_RUNDIR_RUNDIR_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "util/attr.h"

struct diag;

/* The files' versions (docs/rundir.md, "Versions"). A writer stamps a file with the lowest
 * version whose readers understand everything it holds; a file's version goes up only when
 * its own format changes in a way an older reader would get wrong.
 * spec.json: 1, 2 once it uses source.archive or clock_offset, 3 once it lists secrets (an
 * older agent would run the command without them, and unmasked). The agent refuses a spec
 * newer than RUNDIR_VERSION (it would run something other than what was asked).
 * result.json: 1 (unchanged since). Read whatever its version (>= 1), as far as it is
 * understood: a daemon reads what older and newer agents write, its remote runs outliving an
 * upgrade or a downgrade. */
#define RUNDIR_VERSION        3 /* the newest spec.json this code reads (and writes) */
#define RUNDIR_RESULT_VERSION 1 /* the version result.json is written with */

/* The last instant the run directory's files may hold, 9999-12-31T23:59:59Z: ISO 8601's four
 * digit years. The readers refuse instants outside [0, RUNDIR_TIME_MAX] (and durations outside
 * [0, RUNDIR_TIME_MAX] seconds), so that nothing downstream formats a year it cannot print. */
#define RUNDIR_TIME_MAX INT64_C(253402300799)

/* The most bytes of the secrets blob an agent reads from its stdin (docs/rundir.md,
 * "Secrets"): conf.h's CONF_SECRETS_MAX, which the scheduler keeps to. */
#define RUNDIR_SECRETS_MAX (32u << 10)

/* File names inside a run directory. */
#define RUNDIR_SPEC   "spec.json"
#define RUNDIR_PID    "agent.pid"
#define RUNDIR_OUTPUT "output.log"
#define RUNDIR_EVENTS "events.jsonl"
#define RUNDIR_RESULT "result.json"

enum rundir_enforce { RUNDIR_ENFORCE_AUTO, RUNDIR_ENFORCE_SAMPLED };

struct rundir_env {
	char *name;
	char *value;
};

/* spec.json "source": the commit the run is pinned to (docs/rundir.md). Absent/null: the run
 * happens in place, in "cwd". Strings owned by the spec. */
struct rundir_source {
	char *mirror;       /* absolute path of the bare mirror; NULL with archive, or when there
	                     * is no "source" (in place) */
	char *archive;      /* (version 2) absolute path of a tar archive of exactly COMMIT (`git
	                     * archive`), on the agent's host: a remote run's code, unpacked by the
	                     * agent without git. Exactly one of mirror and archive is set */
	char *commit;       /* full commit id; NULL = no "source" (in place) */
	char *repo;         /* for people (no credentials); NULL if absent */
	char *branch;       /* NULL if absent */
	int keep_worktrees; /* source_checkout's KEEP; default 5 */
};

/* spec.json "runtime": the Python venv the command runs in. Absent/null: none. */
struct rundir_runtime {
	char *interpreter;  /* "python3", a name looked up on the command's PATH, or a path */
	char *requirements; /* NULL = no "runtime"; absolute, or relative to the source root */
	char *wheels;       /* NULL: pip installs from its index; else an absolute directory of
	                     * wheels, a pip wheel among them (wheels.h), from which the venv is
	                     * built offline: what a remote run is shipped */
};

/* spec.json. Strings are owned by the struct (rundir_spec_free). */
struct rundir_spec {
	int version;
	int64_t run_id;
	char *job;
	int attempt;
	char *trigger;        /* NULL if absent */
	int64_t scheduled_at; /* UTC seconds, 0..RUNDIR_TIME_MAX */
	/* UTC seconds: the command must not start before it (a run whose agent was started
	 * ahead of its instant waits for it, prepared, right before exec); 0 = none */
	double not_before;
	/* (version 2) seconds: the agent's host's real-time clock minus the scheduler's, as the
	 * scheduler measured it; the agent states every time it writes (and reads not_before)
	 * in the scheduler's clock: host time - clock_offset. 0 = the same clock */
	double clock_offset;
	char **argv; /* NULL-terminated, or NULL when shell is set */
	char *shell; /* "/bin/sh -c SHELL", or NULL when argv is set */
	struct rundir_env *env;
	size_t nenv;
	char *cwd;            /* NULL: the agent's own cwd */
	uint64_t memory;      /* bytes; 0 = no limit */
	int64_t timeout;      /* seconds; 0 = none */
	int64_t kill_grace;   /* seconds between SIGTERM and SIGKILL */
	uint64_t results_max; /* bytes RUN_DIR/results keeps (rundir/results.h); default 1 GiB */
	/* bytes: > 0 = a profiled run (docs/profile.md), whose MEMORY includes this much room
	 * for the profiler on top of the limit it was given; 0 = not profiled */
	uint64_t profile_room;
	char *commit; /* NULL if unknown */
	enum rundir_enforce enforce;
	char *state_dir; /* absolute; required with "source" or "runtime"; else NULL */
	struct rundir_source source;
	struct rundir_runtime runtime;
	char *workdir; /* with "source": relative to the worktree; NULL = its root */
	/* (version 3) the names of the command's variables set from secrets, never their values:
	 * these come on the agent's standard input (docs/rundir.md, "Secrets") */
	char **secrets;
	size_t nsecrets;
	/* globs of files to collect into results/, relative to the command's working directory
	 * (docs/rundir.md, "results"); absent: none */
	char **results;
	size_t nresults;
};

/* Reads DIR/spec.json into *S (zeroed first). Returns 0; -errno if the file cannot be read;
 * -EINVAL if it is not a valid spec, with every problem in D (file = DIR/spec.json), or when
 * its version is newer than RUNDIR_VERSION (one problem: "spec.json version N is newer than
 * this agent (RUNDIR_VERSION)"). A version-1 spec reads as it always did: the fields of
 * version 2 are ignored in it. On failure *S holds nothing to free. */
EPH_MUST_CHECK int rundir_spec_read(const char *dir, struct rundir_spec *s, struct diag *d);
/* Parses a spec from TEXT (for tests and for executors that ship a spec); same contract. */
EPH_MUST_CHECK int rundir_spec_parse(const char *text, size_t len, const char *name,
                                     struct rundir_spec *s, struct diag *d);
/* Writes S as DIR/spec.json atomically (tmp, fsync, rename, fsync DIR), stamped with the
 * lowest version that holds it (S->version is not looked at). 0 or -errno. */
EPH_MUST_CHECK int rundir_spec_write(const char *dir, const struct rundir_spec *s);
/* Frees the members of S (not S itself) and zeroes it; NULL is fine. */
void rundir_spec_free(struct rundir_spec *s);

enum rundir_outcome {
	RUNDIR_SUCCEEDED,
	RUNDIR_FAILED,
	RUNDIR_OOM,
	RUNDIR_TIMEOUT,
	RUNDIR_KILLED,
	RUNDIR_CANCELLED,
};

/* "succeeded", "failed", "oom", "timeout", "killed", "cancelled". */
const char *rundir_outcome_name(enum rundir_outcome o);
/* 0, or -EINVAL if NAME is not one of the above. */
EPH_MUST_CHECK int rundir_outcome_parse(const char *name, enum rundir_outcome *o);

/* What made a run fail before its command started: the ONE list of failure reasons, which
 * result.json's "failure", the store and a run's reason ("<failure>: text", the store's
 * runs.reason) share; the outcome is then RUNDIR_FAILED (or RUNDIR_CANCELLED). The agent
 * knows SOURCE and RUNTIME (its preparation phases); the others are an executor's: the
 * host's key changed (HOST_KEY), its machine could not be made (PROVISION), the secrets
 * could not be handed over (SECRETS), no place for the run came in time (UNPLACED). Their
 * names are in rundir.c's table alone. */
enum rundir_failure {
	RUNDIR_FAILURE_NONE,
	RUNDIR_FAILURE_SOURCE,
	RUNDIR_FAILURE_RUNTIME,
	RUNDIR_FAILURE_HOST_KEY,
	RUNDIR_FAILURE_PROVISION,
	RUNDIR_FAILURE_SECRETS,
	RUNDIR_FAILURE_UNPLACED,
	RUNDIR_FAILURE_BUDGET, /* a cloud executor's max_spend would be passed */
};

#define RUNDIR_FAILURE_LAST RUNDIR_FAILURE_BUDGET

/* "source", "runtime", "host key", "provision", "secrets", "unplaced", "budget"; NULL for
 * RUNDIR_FAILURE_NONE and values outside the list. */
const char *rundir_failure_name(enum rundir_failure f);
/* The failure called NAME into *F: 0, or -EINVAL when NAME is none of the above. */
EPH_MUST_CHECK int rundir_failure_parse(const char *name, enum rundir_failure *f);
/* A run's reason for failure F: "<failure>: TEXT". Caller frees. F is not NONE. */
char *rundir_failure_reason(enum rundir_failure f, const char *text);
/* The failure a run's REASON starts with ("<failure>: ..."), RUNDIR_FAILURE_NONE when it
 * starts with none (NULL is fine): how a failure is read back from the store. */
enum rundir_failure rundir_failure_of_reason(const char *reason);

/* result.json. Strings are owned by the struct (rundir_result_free). */
struct rundir_result {
	int version; /* read: the file's (any >= 1); written: always RUNDIR_RESULT_VERSION */
	enum rundir_outcome outcome;
	char *reason;          /* one line for a person */
	int exit_code;         /* -1 when the command did not exit normally (or never ran) */
	int signal;            /* 0 when not killed by a signal */
	uint64_t memory_limit; /* bytes; 0 = none */
	uint64_t peak_bytes;   /* 0 if never measured */
	char *peak_method;     /* e.g. "cgroup1 memory.max_usage_in_bytes"; NULL if none */
	char *enforced;        /* "cgroup2", "cgroup1", "sampled", or NULL (never started) */
	uint64_t maxrss_bytes; /* wait4's ru_maxrss of the command: a lower bound of the peak */
	double started_at;     /* UTC seconds, ms precision */
	double ended_at;
	double wall_seconds;
	double cpu_user_seconds;
	double cpu_system_seconds;
	double exec_seconds;    /* phases.exec; < 0 if the command never started */
	double source_seconds;  /* phases.source; < 0 if the phase did not run */
	double runtime_seconds; /* phases.runtime; < 0 if the phase did not run */
	enum rundir_failure failure;
};

/* Writes R as DIR/result.json: DIR/result.json.tmp, fsync, rename, fsync DIR. 0 or -errno. */
EPH_MUST_CHECK int rundir_result_write(const char *dir, const struct rundir_result *r);
/* Reads DIR/result.json into *R (zeroed first). Returns 0; -ENOENT if the run has not finished;
 * -errno on another read error; -EINVAL (problems in D) if it is malformed. */
EPH_MUST_CHECK int rundir_result_read(const char *dir, struct rundir_result *r, struct diag *d);
EPH_MUST_CHECK int rundir_result_parse(const char *text, size_t len, const char *name,
                                       struct rundir_result *r, struct diag *d);
void rundir_result_free(struct rundir_result *r); /* members only; NULL is fine */

/* agent.pid: "PID STARTTIME\n", STARTTIME = field 22 of /proc/PID/stat. */
EPH_MUST_CHECK int rundir_pid_write(const char *dir, pid_t pid);
/* 0, -ENOENT if there is no agent.pid, -EINVAL if malformed, -errno. */
EPH_MUST_CHECK int rundir_pid_read(const char *dir, pid_t *pid, uint64_t *starttime);
/* Whether process PID is alive and started at STARTTIME (so not a reused pid). */
bool rundir_pid_alive(pid_t pid, uint64_t starttime);
/* The start time of PID in clock ticks since boot; 0 or -errno (-ESRCH if gone, zombies
 * included). */
EPH_MUST_CHECK int rundir_proc_starttime(pid_t pid, uint64_t *starttime);

/* One line of events.jsonl, as handed to a callback. Everything is borrowed for the duration
 * of the call. */
struct rundir_event {
	const char *ev;    /* "start", "phase", "mem", "warn", ... */
	double t;          /* UTC seconds */
	uint64_t bytes;    /* "mem": bytes in use; else 0 */
	const char *phase; /* "phase": "source", "runtime", "exec"; else NULL */
	const char *state; /* "phase": "start" or "end"; else NULL */
	const char *msg;   /* "warn": the message; else NULL */
	const json_t *obj; /* the whole object, for other fields */
};

/* Returns 0 to go on, anything else to stop (rundir_events_foreach* then return it). */
typedef int (*rundir_event_fn)(const struct rundir_event *e, void *arg);

/* Calls FN for each complete line (ending in '\n') of DATA[0..LEN). A line that is not a JSON
 * object with a string "ev" and a number "t" is skipped and counted in *SKIPPED (may be NULL).
 * *CONSUMED (may be NULL) is set to the bytes up to the end of the last complete line, so a
 * follower resumes there. Returns 0, or FN's nonzero return. */
int rundir_events_foreach_mem(const char *data, size_t len, rundir_event_fn fn, void *arg,
                              size_t *consumed, size_t *skipped);
/* Same over the file DIR/events.jsonl from byte OFFSET; *NEXT (may be NULL) is the offset to
 * resume from. -errno if the file cannot be read (-ENOENT if absent). */
int rundir_events_foreach(const char *dir, off_t offset, rundir_event_fn fn, void *arg, off_t *next,
                          size_t *skipped);

/* Writer side (the agent). Appends one line {"ev":EV,"t":T,...FIELDS} to FD, which was opened
 * with O_APPEND, with a single write(2). FIELDS may be NULL; it is not stolen. 0 or -errno
 * (events are best effort: the agent goes on without them). */
int rundir_event_append(int fd, const char *ev, double t, const json_t *fields);

/* UTC now, in seconds with millisecond precision: clock_real(), so in the scheduler's clock
 * once the agent set spec.clock_offset (clock_real_set_offset). */
double rundir_now(void);
/* Formats UTC seconds as "2026-11-24T18:00:00Z" into OUT (at least 21 bytes). Returns 0, or
 * -ERANGE when T is outside [0, RUNDIR_TIME_MAX] (the readers refuse those) and OUT is then
 * the empty string: never a year of more than four digits. */
int rundir_iso8601(int64_t t, char *out, size_t n);

#endif
