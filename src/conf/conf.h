/* src/conf/conf.h: the jobs file (ephemeron.yaml), parsed and fully validated into one
 * immutable configuration. A run copies what it needs from it into spec.json, so a reload
 * swaps the pointer and frees the old one. */
#ifndef EPH_CONF_CONF_H
#define EPH_CONF_CONF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "remote/remote.h"
#include "util/attr.h"

struct conf_pool;
struct cronexpr;
struct diag;
struct tz;

enum conf_concurrency { CONF_CONC_FORBID, CONF_CONC_ALLOW, CONF_CONC_REPLACE };

enum conf_catchup { CONF_CATCHUP_NONE, CONF_CATCHUP_LATEST, CONF_CATCHUP_ALL };

enum conf_fetch_error { CONF_FETCH_USE_LAST, CONF_FETCH_FAIL };

/* retry_on_oom: what a run that ended oom gets. */
enum conf_oom_retry {
	CONF_OOM_RETRY_NONE, /* the job's retries, as for any failure */
	CONF_OOM_RETRY_GROW, /* retried at once with the next size up, to memory's max */
};

/* profile: which runs run Python with eph's tracemalloc hook (docs/profile.md). */
enum conf_profile {
	CONF_PROFILE_ON_OOM, /* the run after one that ended oom (the default) */
	CONF_PROFILE_MEMORY, /* every run */
	CONF_PROFILE_OFF,
};

#define CONF_MEMORY_MIN_DEFAULT (UINT64_C(512) << 20) /* memory: auto with no min */

/* notify.on, as bits */
enum conf_notify_on {
	CONF_NOTIFY_FAILURE = 1 << 0, /* every unsuccessful outcome */
	CONF_NOTIFY_OOM = 1 << 1,
	CONF_NOTIFY_TIMEOUT = 1 << 2,
	CONF_NOTIFY_LOST = 1 << 3,
	CONF_NOTIFY_SUCCESS = 1 << 4,
	CONF_NOTIFY_ALWAYS = 1 << 5,
	CONF_NOTIFY_RECOVERED = 1 << 6,
};

/* A NULL-terminated string vector with its length. */
struct conf_strv {
	char **v; /* NULL when n == 0 */
	size_t n;
};

struct conf_notify {
	struct conf_strv email;
	unsigned on; /* enum conf_notify_on bits */
	bool on_each_attempt;
};

/* A job. Its strings, vectors and cron belong to the struct conf, and equal ones are shared
 * between jobs: read them, never free or change them. */
struct conf_job {
	char *name;
	int line, col;            /* where the job's name stands in the file */
	char *schedule;           /* as written */
	struct cronexpr *cron;    /* shared by the jobs with the same schedule */
	char *timezone;           /* zone name, NULL = the machine's */
	const struct tz *tz;      /* borrowed from struct conf's zone list */
	char *run;                /* shell string, or NULL */
	struct conf_strv command; /* argv, or n == 0 */
	uint64_t memory;          /* bytes; 0 = no limit (still measured), or memory_auto */
	int64_t timeout;          /* seconds; 0 = none */
	int64_t kill_grace;       /* seconds between SIGTERM and SIGKILL */
	uint64_t results_max;     /* bytes of results a run keeps (RUN_DIR/results); 1 GiB */
	struct conf_strv results; /* globs of files to collect, relative to the working dir */
	const char *executor;     /* its executor's name, borrowed from executors[executor_ix] */
	int retries;
	unsigned executor_ix;  /* index into struct conf's executors (0: local) */
	int64_t retry_backoff; /* seconds, first delay; doubles each attempt */
	enum conf_concurrency concurrency;
	enum conf_catchup catchup;
	int64_t starting_deadline; /* seconds; 0 = none */
	int64_t jitter;            /* seconds */
	struct conf_strv env;      /* "KEY=VALUE", defaults' first, then the job's */
	char *workdir;             /* relative to the source root, or NULL */
	struct conf_notify notify;
	char *requirements; /* python requirements file, or NULL */
	char *interpreter;  /* python interpreter, default "python3" */
	/* memory: auto (or {auto: true, min, max}): each run's limit is decided from the job's
	 * runs when it is created (exec/sizing.h), within [memory_min, memory_max] */
	bool memory_auto;
	uint64_t memory_min; /* bytes; CONF_MEMORY_MIN_DEFAULT unless written */
	uint64_t memory_max; /* bytes; 0 = none; a local job's is memory_budget unless written */
	enum conf_oom_retry retry_on_oom;
	enum conf_profile profile;
	/* "VAR=secret_name", defaults' first, then the job's: the command's variable VAR is set
	 * to the value of the top-level secret secret_name, read at each run (conf_secret_find) */
	struct conf_strv secrets;
};

/* Where a secret's value is, read at each run by the process that starts the agent. */
enum conf_secret_kind {
	CONF_SECRET_FILE, /* the whole file, less one trailing newline */
	CONF_SECRET_ENV,  /* a variable of the starting process's environment */
};

/* The most bytes of secrets a run is given (names, values and separators: docs/rundir.md),
 * and the fewest bytes of a value (a shorter one could not be masked in the output without
 * masking ordinary text). */
#define CONF_SECRETS_MAX     (32u << 10)
#define CONF_SECRET_MIN      4
#define CONF_MAX_JOB_SECRETS 64

/* A secret of the top-level "secrets" mapping. */
struct conf_secret {
	char *name; /* as the jobs name it */
	enum conf_secret_kind kind;
	char *from;    /* FILE: absolute path; ENV: the variable's name */
	int line, col; /* where its name stands */
};

struct conf_source {
	char *repo;   /* URL or local path; NULL = the jobs file's directory, run in place */
	char *branch; /* NULL = the remote's default branch */
	int64_t refresh;
	enum conf_fetch_error on_fetch_error;
	int64_t fetch_timeout;
	int keep_worktrees;
	char *commit; /* not a key: set by `eph daemon --from-repo` to the commit the jobs file
	               * was read from, which runs are then pinned to (no fetch when a run is
	               * created: the daemon fetches); NULL otherwise */
};

struct conf_mail {
	char *smtp; /* smtp:// or smtps:// URL, NULL = no mail */
	char *from;
	char *username;
	char *password_file;
	char *password_env;
	char *ca_file;
	bool starttls;
	struct conf_strv admin;
	int64_t max_age;
	int64_t source_alarm;
	int64_t timeout;
};

/* The optional S3-compatible bucket every run's results are uploaded to (conf_store.c;
 * docs/results.md). url NULL: no store. The keys are where to read them, as secrets are. */
struct conf_results_store {
	char *url;      /* "s3://BUCKET[/PREFIX]", as written */
	char *bucket;   /* BUCKET */
	char *prefix;   /* PREFIX without its slashes at either end; "" when none */
	char *endpoint; /* "https://HOST[:PORT]" or http://, without a path */
	char *region;   /* "us-east-1" by default */
	struct conf_secret access_key, secret_key; /* name: "results_store.access_key", ... */
};

/* Frees S's strings and zeroes it (no store): a configuration's, or eph-upload's copy. */
void conf_results_store_clear(struct conf_results_store *s);

struct conf_local {
	uint64_t memory_budget; /* bytes; default 80% of the machine's memory */
	double price_monthly;   /* what this machine costs a month (eph cost); 0 = unpriced */
};

/* The kinds of executor, as "type:" names them (conf_exec_type_name). Validation refuses a
 * type not built yet (after reading and checking its keys, when it has them), so a loaded
 * configuration holds only the types that work (conf_exec_allow_unfinished aside). */
enum conf_exec_type {
	CONF_EXEC_LOCAL,
	CONF_EXEC_SSH,
	CONF_EXEC_DIGITALOCEAN,
	CONF_EXEC_SLURM,
};

/* A host of an ssh executor. */
struct conf_ssh_host {
	char *text;              /* as written: "[user@]addr[:port]" */
	struct remote_host host; /* parsed (remote/remote.h) */
	uint64_t memory;         /* bytes, required, > 0 */
	double price_monthly;    /* what the host costs a month (eph cost), when price_set */
	bool price_set;          /* false: the executor's price_monthly */
	int line, col;           /* where its "host" value stands */
};

/* The settings of an executor of type ssh (conf_exec_ssh.c; docs/jobs-file.md). */
struct conf_ssh {
	struct conf_ssh_host *hosts; /* at least one; no two with the same user@addr:port */
	size_t nhosts;
	char *identity_file;     /* absolute; NULL: none */
	char *known_hosts;       /* absolute; required */
	char *dir;               /* "~/.ephemeron" by default; absolute or starting with "~/" */
	uint64_t default_memory; /* bytes, 1 GiB by default */
	int64_t lost_after;      /* seconds, 600 */
	int64_t max_wait;        /* seconds, 3600 */
	int64_t connect_timeout; /* seconds, 10 */
	double price_monthly;    /* what each host costs a month unless it says (eph cost); 0 */
};

/* The settings of an executor of type digitalocean (conf_exec_do.c; docs/digitalocean.md): a
 * droplet made for each run and deleted when it ends. */
struct conf_do {
	char *token_file;       /* absolute; or NULL when token_env is set (one of the two) */
	char *token_env;        /* the variable's name; or NULL */
	char *region;           /* required: the region's slug ("fra1") */
	char *image;            /* a slug or a snapshot's id; "debian-12-x64" by default */
	struct conf_strv sizes; /* the allowed slugs, cheapest first; n == 0: auto (any) */
	int max_machines;       /* live droplets at most, 5 */
	int64_t boot_timeout;   /* seconds from create to ssh answering, 300 */
	uint64_t reserve; /* bytes of a size's memory kept for the OS and the agent, 256 MiB */
	uint64_t default_memory;   /* what a job without memory counts for, 1 GiB */
	char *vpc_uuid;            /* or NULL */
	struct conf_strv ssh_keys; /* the account's keys (ids or fingerprints) added to each */
	struct conf_strv tags;     /* added to each droplet, [A-Za-z0-9_:-] */
	char *firewall;            /* a firewall's id the droplets join; or NULL */
	char *api_url;             /* without /v2; "https://api.digitalocean.com" by default */
	int api_line, api_col;     /* where api_url stands (0: not written) */
	double max_spend;          /* USD a month at most; 0 = no cap */
	char *user;                /* the login user, "root" */
	int64_t lost_after;      /* seconds a droplet may not answer before its run is lost, 600 */
	int64_t connect_timeout; /* seconds, 10 */
	int64_t reconcile;       /* seconds between listings of the droplets, 180 */
	int64_t boot_estimate;   /* seconds a machine takes to be ready, until measured, 90 */
};

/* The settings of an executor of type slurm (conf_exec_slurm.c; docs/slurm-executor.md). */
struct conf_slurm {
	char *shared_dir; /* absolute; required: seen alike by this machine and the nodes */
	char *partition;  /* NULL: the cluster's default */
	char *account;    /* NULL: the user's default */
	char *qos;        /* NULL: the association's default */
	struct conf_strv extra_args;                /* more sbatch options, as written */
	char *sbatch, *squeue, *scontrol, *scancel; /* the commands: names (PATH) or absolute */
	int64_t time_grace; /* seconds added to timeout + kill_grace for --time; 300 */
	int64_t down_after; /* seconds the controller fails before mail.admin hears; 30 */
};

/* An executor of the executors mapping: a name, a type, and the type's own settings, read
 * with the type's own keys table (conf_keys.c's conf_sec_local for local; one file of keys
 * per later type). */
struct conf_executor {
	char *name;
	enum conf_exec_type type;
	int line, col; /* where its name stands; 0 for the built-in local not written */
	void *keys;    /* the type's settings: for local, &conf.local (borrowed); for ssh, a struct
	                * conf_ssh, for digitalocean a struct conf_do (owned, freed with their
	                * members by conf_free); else NULL */
};

struct conf_retention {
	int64_t days;
	int runs_per_job;
};

struct conf {
	char *path; /* the jobs file, as given */
	char *dir;  /* its directory, absolute */
	struct conf_source source;
	struct conf_mail mail;
	struct conf_local local;         /* the settings of executors[0] */
	struct conf_executor *executors; /* [0] is always the built-in "local" */
	size_t nexecutors;
	struct conf_retention retention;
	int max_parallel;            /* 0 = no limit */
	struct conf_secret *secrets; /* in file order */
	size_t nsecrets;
	struct conf_results_store results_store;
	struct conf_job *jobs; /* sorted by name */
	size_t njobs;
	struct tz **zones; /* every zone the jobs use, owned */
	size_t nzones;
	const struct tz *local_tz; /* the machine's zone, one of zones */
	/* conf.c's own: the jobs' strings and string vectors, one copy of each, and the
	 * compiled schedules, one for each distinct text (jobs share them) */
	struct conf_pool *pool;
	struct cronexpr **crons;
	size_t ncrons;
};

/* Reads and validates the jobs file PATH. On success returns 0 and *out owns the result
 * (conf_free). Otherwise returns -EINVAL (invalid: every problem is in D, as FILE:LINE:COL),
 * or -errno when the file cannot be read (also described in D), and *out stays NULL. */
EPH_MUST_CHECK int conf_load(const char *path, struct conf **out, struct diag *d);
/* As conf_load, from TEXT of LEN bytes; NAME is used in messages and DIR as the directory
 * relative paths start from. */
EPH_MUST_CHECK int conf_load_mem(const char *name, const char *dir, const char *text, size_t len,
                                 struct conf **out, struct diag *d);
void conf_free(struct conf *c); /* NULL is fine */
/* Sets S to the defaults of the source section (docs/jobs-file.md), with no repository. */
void conf_source_defaults(struct conf_source *s);
/* The secret called NAME, or NULL. */
const struct conf_secret *conf_secret_find(const struct conf *c, const char *name);
/* The executor called NAME, or NULL. */
const struct conf_executor *conf_executor_find(const struct conf *c, const char *name);
/* The name of type T, as "type:" writes it ("local", "ssh", ...). */
const char *conf_exec_type_name(enum conf_exec_type t);
/* E's settings when it is of type ssh, else NULL. */
const struct conf_ssh *conf_executor_ssh(const struct conf_executor *e);
/* E's settings when it is of type digitalocean, else NULL. */
const struct conf_do *conf_executor_do(const struct conf_executor *e);
/* E's settings when it is of type slurm, else NULL. */
const struct conf_slurm *conf_executor_slurm(const struct conf_executor *e);
/* Process-wide switches of the loader, set before loading, never by a library.
 *
 * ON lets validation accept the executor types whose keys are read and checked but whose
 * executor is not built yet (none today): without it such a type is refused after its
 * checks, "executor type \"ssh\" is not available yet in this version". For the unit tests,
 * and for `eph validate` when EPH_UNFINISHED_EXECUTORS=1 (so the e2e tests can check it);
 * never for the daemon, which would have nothing to run such jobs with. */
void conf_exec_allow_unfinished(bool on);
/* ON: the jobs files loaded are read by `eph daemon --from-repo`, which pins the runs of a file
 * without source.repo to the commit the file came from (repoconf.c): every job has a pinned
 * commit then, as a remote executor needs. Set by `eph daemon --from-repo` and by
 * `eph validate --from-repo`. */
void conf_assume_from_repo(bool on);
/* The job called NAME, or NULL. */
const struct conf_job *conf_job_find(const struct conf *c, const char *name);

#endif
