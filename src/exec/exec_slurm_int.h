/* src/exec/exec_slurm_int.h: what exec_slurm.c (the executor's ops) and exec_slurm_cmd.c
 * (Slurm's commands run and their answers read) share. Private to the slurm executor. */
#ifndef EPH_EXEC_SLURM_INT_H
#define EPH_EXEC_SLURM_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "util/buf.h"

#define SLURM_CMD_OUT (1u << 20) /* what a command may say */

struct exec_run;
struct executor;

/* The executor's state (ex->state): its settings, copied. */
struct slurm_exec {
	struct executor *ex;
	char *base; /* SHARED/<instance> */
	char *partition, *account, *qos;
	char **extra;
	size_t nextra;
	char *sbatch, *squeue, *scontrol, *scancel;
	int64_t time_grace;
	int64_t down_after; /* s: a controller is told down once it failed this long */
	bool agent_copied;  /* eph-agent is in BASE, copied by this process */
	double down_since;  /* UTC s of the first failure of this outage; 0: answering */
	bool down_told;
	/* while an outage is suspected, `scontrol ping` every SLURM_PROBE_MS tells when it ends
	 * (and that it lasts: no run may be asking) */
	uv_timer_t probe_timer;
	bool timer_open;
	struct slurm_cmd *probe; /* the ping in flight */
	int nops;                /* its own handles open: the timer, a ping */
	bool dead;               /* destroyed: freed once NOPS is 0 */
	bool stopping;           /* the process stops: no more pings */
};

struct slurm_cmd;
typedef void slurm_cmd_fn(struct slurm_cmd *c, void *arg);

/* A child command and what it said. */
struct slurm_cmd {
	struct exec_run *r; /* the run it is for; NULL: the executor's own (SE) */
	struct slurm_exec *se;
	uv_process_t proc;
	uv_pipe_t pipe[2];
	struct buf out[2]; /* stdout, stderr */
	int open;          /* handles not closed yet */
	int eofs;
	bool exited;
	bool submit;    /* an sbatch: abandoned, what it submitted is settled still */
	int64_t status; /* exit status, or -signal */
	slurm_cmd_fn *cb;
	void *arg;
};

/* Runs ARGV (ARGV[0] looked up in PATH) for R (counted in R->handles_open), or for SE itself
 * when R is NULL (counted in SE->nops); ENV NULL: this process's. CB(C, ARG) once it has
 * exited and its output is read. 0 and *OUT (may be NULL), or -errno (nothing is left running;
 * CB is never called). */
int slurm_cmd_spawn(uv_loop_t *loop, struct exec_run *r, struct slurm_exec *se, char **argv,
                    char **env, slurm_cmd_fn *cb, void *arg, struct slurm_cmd **out);
/* exec_slurm.c's: C, an sbatch whose run let go of it (CB NULL), succeeded: its job is
 * settled (cancelled, or written into the run's handle). */
void slurm_cmd_abandoned(struct slurm_cmd *c);
/* exec_slurm.c's: one of SE's own handles is closed. */
void slurm_exec_op_done(struct slurm_exec *se);

/* The environment sbatch runs with, borrowed from environ; free the vector only. */
char **slurm_sbatch_env(void);
/* The job id sbatch --parsable printed ("ID" or "ID;CLUSTER"), or NULL. Caller frees. */
char *slurm_job_id(struct buf *out);
/* What a failed command WHAT said: its last line. Caller frees. */
char *slurm_cmd_words(struct slurm_cmd *c, const char *what);
/* Whether WORDS say the controller could not be reached (not a refusal). */
bool slurm_unreachable(const char *words);
/* Whether ST is a job state of Slurm that is over. */
bool slurm_state_over(const char *st);
/* The value of KEY= in scontrol -o's answer LINE, or NULL. Caller frees. */
char *slurm_field(const char *line, const char *key);

#endif
