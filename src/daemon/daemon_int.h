/* src/daemon/daemon_int.h: internal to the daemon component (daemon.c, runs.c, reload.c,
 * control.c, mailer.c, prepare.c, reconcile.c, repoconf.c): the scheduler's state and the functions
 * its files share. */
#ifndef EPH_DAEMON_DAEMON_INT_H
#define EPH_DAEMON_DAEMON_INT_H
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "daemon/daemon.h"
#include "daemon/evheap.h"
#include "exec/exec.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/instance.h"

struct FTW;
struct conf;
struct conf_job;
struct stat;
struct conf_source;
struct diag;
struct dprep;
struct drepo;
struct dretry;
struct source_pin;
struct dpass;
struct dpass_ops;

/* What an event of the daemon's heap is. */
enum dm_ev { DM_EV_FIRE, DM_EV_START, DM_EV_RETRY, DM_EV_UNPLACED };

#define DM_LATE_S         5       /* a fire this late is still on time; older ones are missed */
#define DM_MAX_SLEEP_MS   3600000 /* re-check the wall clock at least hourly (clock jumps) */
#define DM_RELOAD_WAIT_MS 200     /* coalesce the events of one save of the jobs file */
#define DM_PREP_MS        150     /* a fire's run is prepared this long before its instant */
#define DM_PREP_SOURCE_MS 500     /* with a repository source: a child resolves its code first */
#define DM_RETENTION_STEP 5       /* runs deleted after a run ends, at most */

/* A retry due later. */
struct dretry {
	struct evheap_node ev; /* DM_EV_RETRY */
	struct dretry *prev, *next;
	char *job;
	int64_t run_id; /* the attempt that failed: mailed if the retry is dropped */
	int64_t scheduled_at;
	int attempt;
};

/* A job of the current configuration and its schedule. */
struct djob {
	struct evheap_node ev; /* DM_EV_FIRE, DM_PREP_MS (DM_PREP_SOURCE_MS) before the next fire */
	const struct conf_job *cj;
	int64_t next;  /* the next fire (UTC s) while ev is in the heap */
	int64_t until; /* every fire at or before this instant (UTC s) is handled */
};

enum dr_phase { DR_DELAYED, DR_READY, DR_STARTED, DR_PREPARING };

/* A live run: created, not yet recorded terminal. */
struct drun {
	struct exec_run er; /* valid once started */
	struct daemon *dm;
	struct evheap_node ev;    /* DM_EV_START at the end of its jitter; DM_EV_UNPLACED while
	                           * it waits for a place (its executor's max_wait) */
	struct drun *prev, *next; /* every live run */
	struct drun *qnext;       /* the queue of runs ready to start, in fire order */
	struct executor *ex;      /* borrowed: its runs keep it (retired ones too) */
	struct dprep *prep; /* DR_PREPARING: its code being resolved off the loop (prepare.c) */
	char *job;
	char *dir;     /* NULL while DR_PREPARING */
	char *subject; /* its commit's subject line, for its mail; NULL if none or unknown */
	struct exec_secrets secrets; /* where its secrets are, until it starts (then er's) */
	int64_t id;
	uint64_t memory;
	enum store_trigger trigger;
	int64_t scheduled_at;
	int64_t start_ms;  /* dm_create's START_MS: when it is due to start (UTC ms) */
	int64_t jitter;    /* seconds */
	double not_before; /* spec.json not_before (UTC s; 0 = none): the earliest exec */
	int attempt;
	enum dr_phase phase;
	bool marked_waiting;
	bool logged_wait;
	bool check_conc; /* prepared ahead: apply the concurrency policy at its instant */
	bool ended;
	bool withdraw; /* at a stop: started ahead, cancelled while it held the command */
};

struct dclient {
	uv_pipe_t pipe;
	struct daemon *dm;
	struct buf in;
	struct dclient *prev, *next;
};

struct daemon {
	uv_loop_t loop;
	const struct daemon_opts *o;
	char *conf_path;
	char *conf_base; /* the jobs file's name in its directory */
	struct conf *conf;
	struct store *store;
	struct djob *jobs;
	size_t njobs;
	struct evheap heap;
	uv_timer_t timer;
	uv_signal_t sigterm, sigint, sighup;
	uv_pipe_t ctl;
	uv_fs_event_t confwatch;
	uv_timer_t reload_timer;
	bool ctl_open, watch_open;
	struct dclient *clients;
	struct drun *runs;
	struct drun *qhead, *qtail;
	struct dretry *retries;
	struct executor **execs; /* the jobs file's executors, by name (dexec.c) */
	size_t nexecs;
	struct executor **retired; /* gone from the file, freed once their runs have ended */
	size_t nretired;
	char instance[INSTANCE_ID_LEN + 1]; /* this scheduler's id: remote directories */
	int nstarted;
	bool stopping;
	char *retention_job;  /* whose old runs to delete at the next turn of the loop */
	struct dpass *mail;   /* mailer.c's eph-mail; NULL until the configuration has mail.smtp */
	struct dpass *upload; /* uploader.c's eph-upload; NULL until it has results_store */
	struct drepo *repo;   /* --from-repo: the repository followed (repoconf.c); else NULL */
	struct dprep *prep_head, *prep_tail; /* preparations waiting for a child (prepare.c) */
	int nprep;                           /* preparation children running */
	char *sock_path;
	int lockfd;
};

/* daemon.c, runs.c and reload.c */

/* dexec.c: the executors. Makes or updates the live executors from C's executors map
 * (retiring those gone): 0, or -EINVAL when one could not be made or updated (logged). */
int dm_executors_apply(struct daemon *dm, const struct conf *c);
/* The live executor called NAME, or NULL. */
struct executor *dm_executor(struct daemon *dm, const char *name);
/* The executor that follows run ROW re-attached (its executor, a retired one of its name, or
 * one made for it from its handle). */
struct executor *dm_executor_of_row(struct daemon *dm, const struct store_run *row);
/* Frees the retired executors no run uses any more. */
void dm_executors_gc(struct daemon *dm);
void dm_executors_free(struct daemon *dm);
/* Asks every executor to end what it keeps open (connections) at a stop. */
void dm_executors_stop(struct daemon *dm);

/* Handles what is queued at the next turn of the loop. */
void dm_kick(struct daemon *dm);

/* Creates a run of CJ (see runs.c). Returns its id, 0 when it could not be recorded. */
int64_t dm_create(struct daemon *dm, const struct conf_job *cj, enum store_trigger trig, int64_t at,
                  int attempt, int64_t start_ms, bool check_conc);

/* The code of DR's run was resolved off the loop (prepare.c): PIN, or none, with ERR saying
 * why. Writes the run's spec and starts or queues it as dm_create says, or records it failed
 * (then DR is freed). */
void dm_prepared(struct daemon *dm, struct drun *dr, const struct source_pin *pin, const char *err);

/* Cancels the live run DR: 0 or -errno. */
int dm_cancel_run(struct daemon *dm, struct drun *dr, const char *why);

/* Replaces the configuration with NC (taken over), keeping every job's state and live run;
 * WHY says what caused it, for the log. */
void dm_apply_conf(struct daemon *dm, struct conf *nc, const char *why);
/* A configuration that failed to load (its errors in D, WHY the cause): logged, mailed to the
 * admin, and the last good one kept. */
void dm_reload_failed(struct daemon *dm, const char *why, struct diag *d);

/* Mails mail.admin when the fetches of the configuration's source (or of SRC, relative to
 * BASE_DIR) have failed for mail.source_alarm, once per outage. */
void dm_source_alarm(struct daemon *dm);
void dm_source_alarm_of(struct daemon *dm, const struct conf_source *src, const char *base_dir);

/* What daemon.c's and runs.c's policies share with reconcile.c (each is described where it is
 * defined). */
bool dm_retryable(enum store_state st);
void dm_notify(struct daemon *dm, int64_t run_id, const char *job, bool will_retry);
bool dm_schedule_retry_after(struct daemon *dm, const char *job, int64_t scheduled_at, int attempt,
                             int64_t run_id, int64_t ended_ms);
bool dm_retry_owed(struct daemon *dm, const struct store_run *r, int64_t *ended_ms);
void dm_done_cb(struct exec_run *er, const struct store_run *final, int rc, void *arg);
void dm_closed_cb(struct exec_run *er, void *arg);
void dm_enqueue(struct daemon *dm, struct drun *dr);
void dm_end_unstarted(struct daemon *dm, struct drun *dr, enum store_state st, const char *reason);
void dm_fire(struct daemon *dm, const struct conf_job *cj, int64_t at, enum store_trigger trig,
             int attempt);
void dm_prepared_due(struct daemon *dm, struct drun *dr);
/* nftw's callback removing a run directory. */
int dm_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw);

/* daemon.c: the timer */

/* Arms the timer for the next event of the heap. */
void dm_arm(struct daemon *dm);
/* Runs what is due of job J at NOW (UTC s) and pushes its next fire. */
void dm_job_due(struct daemon *dm, struct djob *j, int64_t now, int64_t late);

/* runs.c: live runs: start, admission, retries, the end of a run */

/* The instant up to which JOB's fires are handled (durable state or latest run). */
int dm_until_get(struct daemon *dm, const char *job, int64_t *until);
/* Records J's `until` in the store. */
void dm_until_set(struct daemon *dm, struct djob *j, int64_t until);
/* Frees a live run (unlinked and dequeued). */
void drun_free(struct drun *dr);
/* Unlinks DR from the daemon's live runs. */
void dm_unlink_run(struct daemon *dm, struct drun *dr);
/* Takes DR out of the admission queue. */
void dm_dequeue(struct daemon *dm, struct drun *dr);
/* Logs what queuing a message returned (RC, D) for run RUN_ID of JOB. */
void dm_mail_queued(struct daemon *dm, int rc, const struct diag *d, int64_t run_id,
                    const char *job);
/* Unlinks and frees a scheduled retry. */
void dm_retry_free(struct daemon *dm, struct dretry *rt);
/* Deletes a few runs of JOB past the retention limits. */
void dm_retention(struct daemon *dm, const char *job);
/* Starts the queued runs that fit. */
void dm_admit(struct daemon *dm);

/* reload.c: jobs from the configuration, reloads */

/* Builds dm->jobs from dm->conf, keeping each job's `until` from OLD. */
void dm_build_jobs(struct daemon *dm, struct djob *old, size_t nold, const struct conf *oldconf,
                   bool startup);
/* Frees dm->jobs. */
void dm_clear_jobs(struct daemon *dm);
/* Reloads the jobs file (WHY says what asked for it). */
void dm_reload(struct daemon *dm, const char *why);
/* The jobs file changed: a reload after DM_RELOAD_WAIT_MS. */
void dm_confwatch_cb(uv_fs_event_t *h, const char *filename, int events, int status);

/* reconcile.c: restart safety */

/* At start, before the jobs are armed: settles every run a previous process left unfinished
 * (re-attached, recorded, or — its command never started — run or skipped), then schedules
 * the retries and decides the mail that process owed. */
void dm_reconcile(struct daemon *dm);

/* dpass.c: a helper process run in passes (eph-mail, eph-upload): what is particular to one */
struct dpass_ops {
	const char *what;                   /* its log lines' prefix: "mail", "upload" */
	const char *name;                   /* the program: "eph-mail" */
	const char *waits;                  /* what its absence means: "the mail stays queued" */
	char *(*path)(void);                /* where it is (caller frees), or NULL */
	bool (*enabled)(struct daemon *dm); /* the configuration asks for it */
	int (*next_due)(struct daemon *dm, double *at); /* 0, -ENOENT when nothing is queued */
	char *(*input)(struct daemon *dm); /* its settings, for its stdin (caller frees) */
	/* one line of its stdout (no line end, not empty): logs it; true when it says the pass
	 * could not work (then its exit status is not logged again) */
	bool (*line)(struct daemon *dm, const char *s, size_t n);
};

/* Something was queued, or the settings changed, or the daemon started: a pass of the helper
 * now if something is due (everything queued on the first pass: --all), else a timer for the
 * first that will be; after a running pass, another. Makes *SLOT (with OPS) the first time
 * OPS->enabled; nothing while the daemon stops. A missing helper is logged once. */
void dm_pass_kick(struct daemon *dm, struct dpass **slot, const struct dpass_ops *ops);
/* Stops *SLOT (sets it NULL): a running helper gets SIGTERM; it frees itself once its handles
 * are closed. */
void dm_pass_stop(struct dpass **slot);

/* mailer.c: the mail is sent by eph-mail, a process of its own (no libcurl in the daemon) */

/* A message was queued, or the mail settings changed: a pass of eph-mail now if a message is
 * due (the first pass after the start tries every queued message), or after the one running;
 * else a timer for the first message that will be due. Starts the mailer the first time the
 * configuration has mail.smtp. If eph-mail is missing next to eph, says so once; the mail
 * stays queued. */
void dm_mail_kick(struct daemon *dm);
/* Stops the mailer: a running eph-mail gets SIGTERM (its messages stay leased and are retried
 * after their lease); the mailer frees itself once its handles are closed. */
void dm_mail_stop(struct daemon *dm);

/* uploader.c: runs' results go to results_store through eph-upload, as mail goes through
 * eph-mail (no libcurl in the daemon) */
/* Run RUN_ID of JOB was recorded terminal: queues the upload of its results (when the
 * configuration has a results_store and the run has results) and kicks the uploader. */
void dm_upload_run(struct daemon *dm, int64_t run_id, const char *job);
/* At start: queues the uploads of the runs recorded in the last day without one (a crash came
 * between recording a run and queueing its upload, or an `eph run` was killed there), not of
 * runs older than the first upload ever queued (a results_store just configured does not
 * upload the history). */
void dm_upload_reconcile(struct daemon *dm);
/* An upload was queued, or the settings changed, or the daemon started: a pass of eph-upload
 * now if an upload is due (every queued one on the first pass), else a timer for the first
 * that will be. Starts the uploader the first time the configuration has results_store. */
void dm_upload_kick(struct daemon *dm);
/* Stops the uploader: a running eph-upload gets SIGTERM (it records its upload queued); the
 * uploader frees itself once its handles are closed. */
void dm_upload_stop(struct daemon *dm);

/* prepare.c: a run's code resolved off the loop */

/* Resolves the code of DR's run (DR_PREPARING from now on): in a child `eph fetch` for a
 * repository source, here for one run in place (no git); dm_prepared follows, at once or when
 * the child has answered. */
void dm_prep_start(struct daemon *dm, struct drun *dr);
/* DR no longer wants its preparation (cancelled, the daemon stops): its child gets SIGTERM (it
 * kills its git, then exits; SIGKILL if it has not after 2 s) and its answer is dropped. */
void dm_prep_drop(struct drun *dr);
/* The daemon's environment with NAME=VALUE, for a child (dm_child_env_free). */
char **dm_child_env(const char *name, const char *value);
void dm_child_env_free(char **env);

/* repoconf.c: --from-repo */

/* Fetches the repository, checks its branch out and loads the jobs file from it into dm->conf
 * (or from the last good commit when the branch's file has errors), before the loop runs.
 * 0, or -errno after saying why on stderr: -EINTR when SIGTERM or SIGINT stopped it (its git
 * killed). */
int dm_repo_open(struct daemon *dm);
/* Starts following the repository: a fetch every source.refresh (again after a reload). */
void dm_repo_arm(struct daemon *dm);
/* Fetches now; with FORCE the jobs file is reloaded even when the commit is the same. */
void dm_repo_fetch(struct daemon *dm, bool force);
/* Stops following (a fetch in progress is killed). */
void dm_repo_stop(struct daemon *dm);
void dm_repo_free(struct daemon *dm);
/* The repository followed, without credentials. */
const char *dm_repo_shown(const struct daemon *dm);

/* control.c */

/* Binds and listens on STATE/eph.sock (said on stderr on failure): 0 or a negative errno. */
int dm_listen(struct daemon *dm);

/* Unlinks C from the daemon's clients and closes it. */
void dm_client_close(struct dclient *c);

#endif
