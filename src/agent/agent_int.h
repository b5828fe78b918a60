/* src/agent/agent_int.h: internal to the agent (agent.c, agent_prep.c, agent_run.c): the state
 * of one run, and the few functions its steps share. */
#ifndef EPH_AGENT_AGENT_INT_H
#define EPH_AGENT_AGENT_INT_H
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "agent/cgroup.h"
#include "agent/mask.h"
#include "agent/outlog.h"
#include "agent/venv.h"
#include "rundir/rundir.h"
#include "source/source.h"
#include "util/attr.h"

#define SAMPLE_EVENT_MS    1000 /* one "mem" event a second */
#define SAMPLE_ENFORCE_MS  100  /* sampled mode checks the limit ten times a second */
#define SAMPLE_ENFORCE_TXT "100 ms"
#define ERRTAIL            4096 /* the end of stderr kept, to recognise a MemoryError */
#define READ_BUF           (64u << 10)

enum enforced { ENF_CGROUP2, ENF_CGROUP1, ENF_SAMPLED };

enum stop { STOP_NONE, STOP_TIMEOUT, STOP_CANCEL, STOP_OOM };

struct agent {
	const char *dir;
	struct rundir_spec spec;
	uv_loop_t loop;
	int out_fd, ev_fd;
	struct outlog log;
	char *rbuf;
	/* the secrets spec.json names, with the values read from our stdin (agent_secrets):
	 * for the command's environment only; masked in its output (stdout, stderr) */
	struct rundir_env *secrets;
	size_t nsecrets;
	const char **secret_vals; /* the values, for the masks */
	struct mask mask[2];

	uv_pipe_t pipe[2];
	bool pipe_open[2];
	uv_signal_t sig_chld, sig_term, sig_int;
	uv_timer_t t_sample, t_timeout, t_grace, t_partial, t_drain;

	enum enforced enforced;
	struct cgroup cg;
	bool have_cg;

	pid_t child;
	bool child_done;
	int status;
	double started_at, exec_real;
	uint64_t exec_mono, end_mono;
	double waited;       /* seconds the prepared command waited for spec.not_before */
	bool wait_cancelled; /* a SIGTERM/SIGINT came during that wait: the command never ran */

	enum stop stop;
	bool killing; /* SIGTERM sent; SIGKILL at the end of the grace */
	uint64_t sampled_peak, sampled_over;
	uint64_t pss_last, pss_rss; /* sampled: the last PSS read, and the RSS read with it */
	uint64_t last_event_ms;
	char errtail[ERRTAIL];
	size_t errtail_len;
	char *exec_error;               /* why the command could not be started */
	struct rusage child_ru, pre_ru; /* the command's own (wait4); the phases' children */

	/* the source and runtime phases */
	int sfd;       /* signalfd of SIGTERM and SIGINT while they run; -1 after */
	char *cmd_cwd; /* where the command runs; NULL: the agent's own cwd */
	struct source_worktree wt;
	char *work; /* RUN_DIR/work: the run's private copy of wt.path, removed at its end */
	struct timespec results_t0; /* spec.results: a file changed after this is the command's */
	struct venv venv;
	bool have_venv;
	double source_s, runtime_s; /* < 0: the phase did not run */
	enum rundir_failure failure;
	char *prep_error;    /* why a phase failed (the reason, "source: ..."); NULL if none */
	bool prep_cancelled; /* a SIGTERM/SIGINT came during the phases */
	sigset_t stops;      /* SIGTERM and SIGINT, blocked until the command starts */
	bool ready;          /* the phases went well, the command was (to be) started */
	int lock_fd;         /* the run's lock (rundir/runlock.h), held until we exit */
};

/* agent.c */

/* A "warn" event: a message for a person in events.jsonl. */
void agent_warn(struct agent *a, const char *fmt, ...) EPH_PRINTF(2, 3);
uint64_t agent_mono_ms(void); /* unsigned, as the agent's deadlines are */
/* A "phase" event; F (may be NULL) holds its other fields and is consumed. */
void agent_event(struct agent *a, const char *phase, const char *state, double t, json_t *f);
/* "cgroup2", "cgroup1", "sampled". */
const char *agent_enforced_name(enum enforced e);

/* agent_prep.c: before the command */

/* The command's environment: ours + spec.env + EPH_* (+ the venv's VIRTUAL_ENV and PATH, and no
 * PYTHONHOME, when the run has a runtime) + with SECRETS the run's secrets (the command's
 * only: never the runtime phase's); caller frees it (agent_strv_free). */
char **agent_env(const struct agent *a, bool secrets);
void agent_strv_free(char **v); /* wipes the strings (they may hold secrets); NULL is fine */
/* Reads the secrets spec.json names from our stdin (docs/rundir.md, "Secrets"), only when it
 * names some: false, with a->prep_error "secrets: ...", when one is missing. */
bool agent_secrets(struct agent *a);
/* Whether a SIGTERM or SIGINT came while the phases ran (consumes it). */
bool agent_cancel_pending(struct agent *a);
/* Runs the phases before the command; false when the run ends there (a->prep_error or
 * a->prep_cancelled says why). */
bool agent_prepare(struct agent *a);

/* profile.c: a profiled run (docs/profile.md) */

/* With spec.profile_room > 0: writes the hook and puts it first on the PYTHONPATH of ENV (the
 * command's, K entries, room for three more), with EPH_PROFILE_DIR and EPH_PROFILE_HOOK; returns
 * the new K. */
size_t agent_profile_env(const struct agent *a, char **env, size_t k);
/* With spec.profile_room > 0: R's limit is the one given (without the room), its peak without
 * the profiler's own; a "profile" event with the top sites, or an "unprofiled" one. */
void agent_profile_end(struct agent *a, struct rundir_result *r);

/* agent_run.c: the command */

/* The loop's handles: SIGCHLD, SIGTERM, SIGINT and the timers. */
void agent_loop_init(struct agent *a);
/* After the phases (a->ready: they went well): the cgroup, the command, the loop until it has
 * ended; then nothing of the run is left and its output is written. */
void agent_run(struct agent *a);
/* The exec phase's "start" or "end" event. */
void agent_event_exec(struct agent *a, const char *state, double t);

#endif
