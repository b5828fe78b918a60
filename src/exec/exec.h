/* src/exec/exec.h: executors — where a run's agent runs — and the life of a run around them.
 *
 * An executor is one file against this header: a const struct exec_ops (its config keys aside).
 * Every executor does the same things, in this order: provision (make a place for the run:
 * nothing for `local`, a VM, an allocation), start the agent there (`eph agent RUN_DIR`), bring
 * the run directory's bytes back here (pull; nothing for `local`: the agent writes them here),
 * tell when the agent is gone (its own callback, or poll), and tear down. What follows —
 * reading output.log as it grows, recording result.json in the store exactly once, marking a
 * run `lost` when its agent vanished without a result (its command may have run) or `failed`
 * when provision or start failed (nothing ran) — is the same for all of them and lives in
 * exec.c, so downstream code never asks which executor ran a run.
 *
 * Threads: one. exec.c's functions, every op, and every function an op is given or may call
 * (provision's and pull's DONE, exec_agent_gone, exec_handle_closed, exec_run_set_handle) run
 * on R->loop's thread: an op either calls back at once, from inside itself, or later from a
 * callback of its own on that loop. Nothing may block the loop: an op that waits (a machine
 * booting, a connection) returns and calls back.
 *
 * Who calls what. The owner of a run (the daemon; `eph run` in the foreground) embeds struct
 * exec_run and calls: ops->fits, ->reserve when it admits the run and ->release once hooks.done
 * said it ended (the daemon only); exec_run_init; exec_run_start (a new run) or
 * exec_run_reattach (a run an earlier process started: exec_inspect said EXEC_ALIVE); then
 * exec_run_cancel, exec_run_alive, exec_run_detach (a stop: the agent goes on) as it needs;
 * exec_run_release from hooks.closed. exec.c calls the executor: provision, then start in its
 * DONE (or reattach); every second (the tick) pull if there is one, then it reads output.log,
 * then poll; cancel; after the agent is gone, pull once more with LAST, then records; teardown
 * when the run is recorded or detached; inspect through exec_inspect.
 *
 * Ownership. R->dir, the watch and the tick are exec.c's; R->backend is the executor's (made in
 * start or reattach, freed once the executor's handles are closed, which it counts in
 * R->handles_open and reports with exec_handle_closed; hooks.closed follows the last of all).
 * What the executor needs to find a run again after a restart goes to the store through
 * exec_run_set_handle (JSON) and comes back in reattach's row. */
#ifndef EPH_EXEC_EXEC_H
#define EPH_EXEC_EXEC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "exec/exec_secrets.h"
#include "store/store.h"
#include "util/attr.h"
#include "util/buf.h"

struct conf;
struct conf_executor;
struct conf_job;
struct diag;
struct exec_run;
struct executor;
struct source_pin;

/* What a run that the store has as unfinished is, when no process follows it (after a crash,
 * or while no daemon runs): exec_inspect's answer. */
enum exec_found {
	EXEC_UNPREPARED, /* no run directory: it was never prepared, so never started */
	EXEC_ALIVE,      /* its agent is alive, or being started (the run's lock is held) */
	EXEC_FINISHED,   /* result.json is there (its agent is gone or exiting): record it */
	EXEC_LOST,       /* its agent is gone without a result, and the command may have run */
	EXEC_UNSTARTED,  /* no agent, and its command never started: nothing forbids running it */
};

/* A host (or provider, controller) of an executor that stopped or started answering: the
 * executor tells its owner, who mails mail.admin once per outage and once when it ends. WHAT
 * names it ("eph@10.0.0.5"), SINCE (UTC s) is when it stopped answering, WHY (NULL when it is
 * back) the last failure. */
typedef void exec_health_fn(struct executor *ex, const char *what, bool down, double since,
                            const char *why, void *arg);
/* WHAT for a cloud executor whose max_spend stops (DOWN) or allows again the making of
 * machines: told once each way, as an outage is. */
#define EXEC_HEALTH_BUDGET "budget"

/* One configured executor, live in a process (the daemon; `eph run` in the foreground): what
 * its runs are admitted against, and its type's own state (a pool's hosts, their connections).
 * Made by exec_executor_new from the jobs file's executors entry, updated by exec_executor_
 * configure at a reload, freed by exec_executor_free once no run uses it. Lives on LOOP's
 * thread. */
struct executor {
	const struct exec_ops *ops;
	char *name;
	uv_loop_t *loop;
	struct store *store;
	char *state_dir;  /* the scheduler's, absolute */
	char *instance;   /* this scheduler's instance id (util/instance.h): remote directories */
	uint64_t budget;  /* local: memory_budget, 0 = none */
	uint64_t used;    /* local: the memory of the runs reserved and not yet released */
	int64_t max_wait; /* seconds a run may wait for a place before it fails `unplaced`; 0 =
	                   * forever (local) */
	exec_health_fn *health; /* may be NULL */
	/* a line for the owner's log about run RUN (0: none), e.g. what a lost run left on its
	 * host when it answered again; may be NULL */
	void (*log)(struct executor *ex, int64_t run, const char *msg, void *arg);
	/* as LOG, for a step of a run's progress rather than a problem (a cloud machine made,
	 * booted, deleted); may be NULL */
	void (*info)(struct executor *ex, int64_t run, const char *msg, void *arg);
	/* a place freed up other than by a release (a cloud machine whose deletion is
	 * confirmed): runs waiting for EX may fit now; may be NULL */
	void (*room)(struct executor *ex, void *arg);
	void *health_arg;
	/* a scheduled run of it is prepared this long before its instant, so that its place is
	 * ready then (a cloud machine's boot: the agent holds the command until the instant);
	 * 0: only the daemon's own preparation */
	int64_t lead_ms;
	int nruns;   /* runs initialised with it and not yet released */
	void *state; /* the type's own: NULL for local */
};

/* How provision says it has ended: RC 0 (a place is made: exec.c starts the agent), or
 * -errno with WHY (NULL: strerror) saying what failed: the run is recorded `failed`,
 * "provision: WHY". */
typedef void exec_provisioned_fn(struct exec_run *r, int rc, const char *why);

/* How pull says it has ended: RC 0, or -errno (what it brought stays; the next pull resumes
 * from there). */
typedef void exec_pulled_fn(struct exec_run *r, int rc);

struct exec_ops {
	const char *name;
	/* Admission, asked by the daemon in fire order: whether a run needing MEMORY bytes (0:
	 * not said) fits in EX now (a run that does not waits, and nothing overtakes it). */
	bool (*fits)(struct executor *ex, uint64_t memory);
	/* Takes R's place in EX (R initialised, not yet started; a backend may place R there,
	 * e.g. choose its host; a re-attached run has its stored handle in R->handle): once per
	 * admitted run, re-attached ones too... */
	void (*reserve)(struct executor *ex, struct exec_run *r, uint64_t memory);
	/* ...and gives it back once R has ended (hooks.done), exactly once. */
	void (*release)(struct executor *ex, struct exec_run *r, uint64_t memory);
	/* Applies the executor's settings CE of configuration C to EX (its first call makes
	 * EX->state): 0, or -errno with a message in D (the old settings stay). */
	EPH_MUST_CHECK int (*configure)(struct executor *ex, const struct conf *c,
	                                const struct conf_executor *ce, struct diag *d);
	/* Frees EX->state (no run uses EX any more); what it still has in flight is cancelled
	 * and ends on the loop. May be NULL. */
	void (*destroy)(struct executor *ex);
	/* The process stops: EX ends what it keeps open for its runs (connections), on the loop,
	 * without touching the runs' agents. May be NULL. */
	void (*stop)(struct executor *ex);
	/* Makes a place for run R (a machine that boots for a minute: without blocking the
	 * loop), then calls DONE exactly once: at once, or later from a callback of its own on
	 * R->loop. DONE is never called after teardown: a teardown while provisioning (the run
	 * cancelled or detached meanwhile) abandons it. */
	void (*provision)(struct exec_run *r, exec_provisioned_fn *done);
	/* Starts the agent for R (R->dir holds spec.json); sets R->agent_pid. 0 or -errno: -EBUSY
	 * when another agent holds the run, -EALREADY when its command already started,
	 * -ECANCELED when the store has it terminal. The executor calls exec_agent_gone(R, status)
	 * when the agent has ended (or poll finds it gone). */
	EPH_MUST_CHECK int (*start)(struct exec_run *r);
	/* Asks R's agent to cancel the run (it records `cancelled`); 0 or -errno. */
	EPH_MUST_CHECK int (*cancel)(struct exec_run *r);
	/* Called by exec.c's tick (every second) while R is followed and its agent not known
	 * gone: the executor finds out whether the agent is still there, and if it is gone calls
	 * exec_agent_gone(R, status) (at once or later, from its own callback). */
	void (*poll)(struct exec_run *r);
	/* Whether R's agent is still there, as far as the executor can tell now without waiting:
	 * 1, 0 (gone), or -errno (cannot tell). */
	EPH_MUST_CHECK int (*alive)(struct exec_run *r);
	/* What run ROW (as read from the store, unfinished, with a run directory and no
	 * result.json in it) is, when no process follows it: exec_inspect's answer (never
	 * EXEC_UNPREPARED nor EXEC_FINISHED), *WHY (caller frees) the reason for EXEC_LOST. */
	enum exec_found (*inspect)(const struct store_run *row, char **why);
	/* After a restart, or when start found the run in another agent's hands (ROW NULL):
	 * re-attaches R to its agent from what the store has of it (ROW: its handle, written
	 * by exec_run_set_handle, its agent_pid), and says whether it is
	 * still going (1), gone (0), or cannot tell yet (-errno: followed, poll decides). */
	EPH_MUST_CHECK int (*reattach)(struct exec_run *r, const struct store_run *row);
	/* Optional; NULL when the agent writes into R->dir on this machine (local). Brings the
	 * bytes of R's run directory that are not here yet into R->dir (output.log and
	 * events.jsonl by offset, so nothing twice; with LAST also result.json), then calls DONE
	 * exactly once: at once, or from a callback of its own on R->loop; never after teardown.
	 * exec.c calls it, one at a time, from its tick before reading output.log, and once with
	 * LAST after the agent is gone, before recording the run. */
	void (*pull)(struct exec_run *r, bool last, exec_pulled_fn *done);
	/* Releases what provision and start made (closing its handles, freeing R->backend once
	 * they are closed); R's hooks.closed follows once every handle is closed. */
	void (*teardown)(struct exec_run *r);
};

extern const struct exec_ops exec_local_ops;
extern const struct exec_ops exec_ssh_ops;
extern const struct exec_ops exec_do_ops;
extern const struct exec_ops exec_slurm_ops;

/* Finds an executor type by name ("local", "ssh"); NULL if there is none of that name. */
const struct exec_ops *exec_find(const char *name);

/* Makes the executor CE of configuration C live on LOOP, recording into STORE, with the
 * scheduler's STATE_DIR and INSTANCE id (both copied); HEALTH (may be NULL) hears of its
 * hosts' outages. NULL with a message in D when its settings cannot be applied. */
struct executor *exec_executor_new(uv_loop_t *loop, struct store *store, const char *state_dir,
                                   const char *instance, const struct conf *c,
                                   const struct conf_executor *ce, exec_health_fn *health,
                                   void *health_arg, struct diag *d);
/* Applies CE (of the same type) to EX at a reload: 0, or -errno with a message in D. */
EPH_MUST_CHECK int exec_executor_configure(struct executor *ex, const struct conf *c,
                                           const struct conf_executor *ce, struct diag *d);
/* Frees EX, which no run uses any more (EX->nruns 0); NULL is fine. */
void exec_executor_free(struct executor *ex);

struct exec_hooks {
	/* New bytes of output.log (whole lines), as they come; may be NULL. */
	void (*output)(struct exec_run *r, const char *data, size_t len, void *arg);
	/* The run is terminal in the store (FINAL is its row), or could not be recorded (FINAL is
	 * NULL, RC says why). All handles are closed after this returns; free R in closed. */
	void (*done)(struct exec_run *r, const struct store_run *final, int rc, void *arg);
	/* Every handle of R is closed: R may be freed. */
	void (*closed)(struct exec_run *r, void *arg);
	void *arg;
};

/* One run in the hands of an executor. Embedded in (or allocated by) its owner; the handles
 * below belong to exec.c, R->backend to the executor. */
struct exec_run {
	uv_loop_t *loop;
	struct executor *ex; /* borrowed: outlives R (EX->nruns counts R) */
	const struct exec_ops *ops;
	struct store *store;
	struct exec_hooks hooks;
	int64_t id;
	char *dir;         /* owned */
	double not_before; /* spec.json's not_before (UTC s; 0 = none): the command's earliest */
	pid_t agent_pid;   /* on the agent's host; 0 until started (or unknown) */
	uint64_t agent_start;
	int agent_status; /* the agent's exit status, -1 if unknown (reattached) */
	bool agent_gone;
	bool finished;     /* recorded terminal (or failed to), or detached */
	bool recorded;     /* finished by recording it (not detached) */
	bool cancel_sent;  /* exec_run_cancel asked the agent to stop */
	bool provisioning; /* provision has not called back yet */
	bool pulling;      /* pull has not called back yet */
	bool pull_last;    /* that pull is the last */
	char *gone_why;    /* the agent is gone: recorded with this once the last pull is in */
	int start_rc;      /* what exec_run_start returns when provision called back at once */
	/* following output.log */
	uv_fs_event_t watch;
	uv_timer_t tick; /* a slow poll: the agent's liveness (ops->poll), and output.log where
	                  * the directory cannot be watched */
	int out_fd;
	uint64_t out_off;
	struct buf out_pending; /* a partial last line */
	bool following;
	/* R's handles not yet closed, exec.c's and the executor's (which counts its own in and
	 * reports each closed with exec_handle_closed) */
	int handles_open;
	/* the executor's own state of R: NULL, or made by its reserve, start (or reattach) and
	 * freed by it once its handles are closed */
	void *backend;
	char *handle; /* owned: the handle the store had for R when it was re-attached, or NULL */
	/* Where the run's secrets are (spec.json lists their names): set by the owner after
	 * exec_run_init, before exec_run_start (exec_secrets_of_job with the configuration that
	 * created the run); freed by exec_run_release. The executor reads them right before it
	 * starts the agent (exec_secrets_read) and hands the blob to the agent's stdin; when they
	 * cannot be read, its provision fails with the "secrets: ..." reason (recorded as is). */
	struct exec_secrets secrets;
	/* the blob read by a provision for the start that follows at once (local), wiped by
	 * the start or by exec_run_release */
	char *secrets_blob;
	size_t secrets_len;
};

/* Prepares R for run ID in directory DIR (copied) on EX's loop, recording into EX's store.
 * HANDLE (copied; NULL: none) is what the store has of R's handle, for a run re-attached.
 * Nothing starts yet. */
void exec_run_init(struct exec_run *r, struct executor *ex, int64_t id, const char *dir,
                   const char *handle, const struct exec_hooks *h);
/* Frees what exec_run_init allocated; call it from hooks.closed (or if nothing started). */
void exec_run_release(struct exec_run *r);
/* Provisions (ops->provision), then — in its callback, at once or later — starts the agent,
 * and follows the run until it is recorded terminal (hooks.done), then closes everything
 * (hooks.closed). 0, or -errno when it could not start (provision called back at once, and it
 * or the start failed): the run is then already recorded `failed` with the reason ("provision:
 * ..." or "could not start the agent: ..."), and hooks.done/closed still follow; a provision
 * or a start that fails later is recorded the same way. A run whose lock another agent holds,
 * or whose command already started (the executor's start returned -EBUSY or -EALREADY), is
 * followed as by exec_run_reattach instead: 0. */
EPH_MUST_CHECK int exec_run_start(struct exec_run *r);
/* As exec_run_start, for run ROW (as read from the store) whose agent was started by an
 * earlier process (exec_inspect found it EXEC_ALIVE). 0. */
EPH_MUST_CHECK int exec_run_reattach(struct exec_run *r, const struct store_run *row);
/* Asks the run's agent to cancel. */
EPH_MUST_CHECK int exec_run_cancel(struct exec_run *r);
/* Stops following R without recording anything and without touching its agent (a daemon
 * that stops leaves running agents to finish on their own; the next start collects them).
 * Closes R's handles; hooks.closed follows, hooks.done does not. */
void exec_run_detach(struct exec_run *r);

/* For executors: the agent of R ended with STATUS (a wait status, or -1 if unknown). */
void exec_agent_gone(struct exec_run *r, int status);
/* The executor found R's agent gone without a result and knows what ended it (a batch
 * system's verdict: its memory, its time limit, a cancel): records R in STATE with reason WHY,
 * unless R->dir has a result.json by then (it decides). What pull would bring must be here
 * already. */
void exec_run_ended(struct exec_run *r, enum store_state state, const char *why);
/* For executors: R's agent can no longer be reached (its host has not answered for too
 * long): R is recorded `lost` with WHY, with what its directory here holds, at once. */
void exec_run_lost(struct exec_run *r, const char *why);
/* Whether R's agent is still there (ops->alive): 1, 0, or -errno when the executor cannot
 * tell. */
EPH_MUST_CHECK int exec_run_alive(struct exec_run *r);
/* For executors, on R->loop: records HANDLE (JSON text, e.g. {"host": ..., "dir": ...}; NULL
 * clears it) as R's handle in the store, the run's `handle` column, which the executor gets
 * back in reattach's row after a restart. 0 or -errno (-EALREADY: the run is terminal). */
EPH_MUST_CHECK int exec_run_set_handle(struct exec_run *r, const char *handle);
/* For executors: one of the handles it counted in R->handles_open is closed (hooks.closed
 * follows the last). */
void exec_handle_closed(struct exec_run *r);

/* The type of executor that ran run ROW: its handle's "type", `local` when it has none. */
const struct exec_ops *exec_of_run(const struct store_run *row);

/* How a new run came to be. */
struct exec_new {
	enum store_trigger trigger;
	int64_t scheduled_at; /* UTC seconds */
	int attempt;          /* 1 for the first try */
	int64_t jitter;       /* seconds of jitter applied, recorded */
	/* UTC seconds before which the command must not start (spec.json not_before), for a run
	 * whose agent may be started ahead of its instant; 0 = none */
	double not_before;
};

/* Creates a run of job J of configuration C: writes its row (queued) with the memory limit
 * decided for it (exec/sizing.h: J's fixed memory, or from its history), resolves its code to a
 * commit (source_resolve: the mirror is fetched at most once per source.refresh), makes
 * STATE_DIR/runs/ID and writes its spec.json, and records the run as provisioning, with its
 * commit and any warning (a failed fetch that fell back to the last commit). Sets *ID and
 * *DIR (caller frees). Returns 0 when the run is ready for exec_run_start; 1 when it has
 * already ended, recorded `failed` with a reason "source: ..." (the code could not be had;
 * *DIR is then NULL); or -errno when it could not be recorded at all, with a message in D. */
EPH_MUST_CHECK int exec_create(struct store *s, const char *state_dir, const struct conf *c,
                               const struct conf_job *j, const struct exec_new *how, int64_t *id,
                               char **dir, struct diag *d);
/* exec_create in two steps around the source's resolution, for the daemon, which resolves it
 * off its loop (a child process) meanwhile. exec_create_row writes the run's row (queued) and
 * sets *ID: 0, or -errno with a message in D. exec_create_finish does the rest for run ID,
 * with PIN the code source_resolve gave, or SOURCE_ERROR (PIN NULL) why it gave none; it
 * returns as exec_create does. */
EPH_MUST_CHECK int exec_create_row(struct store *s, const struct conf_job *j,
                                   const struct exec_new *how, int64_t *id, struct diag *d);
EPH_MUST_CHECK int exec_create_finish(struct store *s, const char *state_dir, const struct conf *c,
                                      const struct conf_job *j, const struct exec_new *how,
                                      int64_t id, const struct source_pin *pin,
                                      const char *source_error, char **dir, struct diag *d);

/* The memory limit (bytes; 0 = none) that exec_create_row decided for run ID (exec/sizing.h)
 * and recorded in its row: what the run is admitted with; DFLT when the row cannot be read. */
uint64_t exec_created_memory(struct store *s, int64_t id, uint64_t dflt);

/* Records the end of run ID whose directory is DIR from its result.json (and its memory
 * samples from events.jsonl), or as `lost` with REASON when LOST_REASON is non-NULL and there
 * is no result. Exactly once: -EALREADY when it was already terminal. If FINAL is non-NULL it
 * receives the row as recorded (store_run_clear it). */
EPH_MUST_CHECK int exec_record(struct store *s, int64_t id, const char *dir,
                               const char *lost_reason, struct store_run *final);

/* Tells what run R (as read from the store) is: no run directory is EXEC_UNPREPARED, a
 * result.json in it EXEC_FINISHED; otherwise its executor tells (ops->inspect: for `local`,
 * the agent's pid, the row's or agent.pid's, and the run's lock, rundir/runlock.h). Sets *WHY
 * (caller frees) to the reason to record for EXEC_LOST, NULL otherwise. */
enum exec_found exec_inspect(const struct store_run *r, char **why);

/* For a process that is not the daemon, while no daemon runs (eph run, runs, show, status):
 * records every unfinished run whose agent is gone — its result.json, or `lost` when its
 * command may have run — exactly once (a daemon or another command recording it meanwhile
 * makes it -EALREADY, skipped), its mail left owed to the daemon's next start
 * (store_run_finish_owing_mail: the notify policy is the daemon's configuration's). Runs that are
 * alive, or were never started, are left to their agent or to the daemon's next start. Returns how
 * many were recorded, or -errno. */
int exec_reconcile(struct store *s);

#endif
