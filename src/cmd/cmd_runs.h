/* src/cmd/cmd_runs.h: what `eph runs`, `eph show` and `eph logs` share (defined in cmd_runs.c):
 * opening the store read-only, finding a run from RUN|JOB, formatting a run. */
#ifndef EPH_CMD_CMD_RUNS_H
#define EPH_CMD_CMD_RUNS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/attr.h"

struct cmd_ctx;
struct store;
struct store_phase;
struct store_run;

/* Opens STATE/eph.db read-only into *OUT. Returns 0; -ENOENT when there is no database yet
 * (nothing printed: "no runs yet" is the caller's to say); another -errno after printing the
 * problem on stderr. */
EPH_MUST_CHECK int cmd_store_open(struct cmd_ctx *ctx, struct store **out);
/* When no daemon is running (nothing listens on STATE/eph.sock), records what runs left
 * unrecorded: a run whose agent finished after the daemon stopped (its result.json), or is gone
 * without a result after its command started (`lost`), exactly once (exec_reconcile), so that
 * the commands that show runs never show a finished one as running. Runs never started are
 * left to the daemon's next start. Says nothing: a store it cannot write is shown as it is. */
void cmd_settle(struct cmd_ctx *ctx);
/* Finds the run ARG names: a run id (all digits), else a job name meaning its latest run.
 * Returns 0, -ENOENT (no such run), or another -errno. */
EPH_MUST_CHECK int cmd_run_find(struct store *s, const char *arg, struct store_run *out);
/* Prints "eph CMD: no run ARG" (or "no runs of job ARG", "no runs yet" when S is NULL) on
 * stderr and returns EPH_EXIT_USAGE: a run that does not exist is bad input. */
int cmd_run_not_found(const char *cmd, const char *arg, const struct store *s);
/* How long phase P took: its measured seconds, else ended - started when both are known;
 * -1 when unknown. */
double cmd_phase_seconds(const struct store_phase *p);
/* A JSON object with every column of R (null for unknown values). New reference. */
json_t *cmd_run_json(const struct store_run *r);
/* "SIGKILL" for 9 (or "signal 77"), into OUT of N bytes. */
void cmd_signal_name(int sig, char *out, size_t n);
/* Local time "2026-11-24 19:00:01" (with seconds when SECONDS), into OUT of N bytes. */
void cmd_local_time(double t, int seconds, char *out, size_t n);
/* Where run R ran: the host its remote executor's handle names (*CLOCK_OFFSET: that host's
 * clock minus ours, when it says), or NULL for a run of this machine. Caller frees. */
char *cmd_run_host(const struct store_run *r, double *clock_offset);

/* The machine a cloud executor made for run R (its handle's size and prices, its phase
 * "machine": create to confirmed delete) and what it was billed (exec/cloud_size.h's rule).
 * Returns whether R had one; fills M either way (cmd_run_machine_clear). */
struct cmd_machine {
	char *size; /* owned */
	double price_hourly;
	double seconds; /* billed: create to confirmed delete; < 0 while it lives */
	double cost;    /* USD; 0 while it lives */
};

bool cmd_run_machine(const struct store_run *r, struct cmd_machine *m);
void cmd_run_machine_clear(struct cmd_machine *m);
/* The run's duration in seconds: ended - started, now - started while it runs, -1 if it never
 * started. */
double cmd_run_duration(const struct store_run *r);
/* The width of the terminal on FD: TIOCGWINSZ, else $COLUMNS, else 80. */
int cmd_term_width(int fd);

#endif
