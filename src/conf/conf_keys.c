/* src/conf/conf_keys.c: the key tables of the jobs file and the "did you mean" suggestion. */
#include "conf/conf_keys.h"

#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "util/units.h"
#include "util/xalloc.h"

#define DUR_MAX   UNITS_DURATION_MAX
#define SIZE_MAX_ ((int64_t)UNITS_SIZE_MAX)

static const char *const fetch_error_values[] = { "use_last", "fail", NULL };
static const char *const concurrency_values[] = { "forbid", "allow", "replace", NULL };
static const char *const catchup_values[] = { "none", "latest", "all", NULL };
static const char *const oom_retry_values[] = { "none", "grow", NULL };
static const char *const profile_values[] = { "on_oom", "memory", "off", NULL };

const char *const conf_notify_on_names[] = {
	"failure", "oom", "timeout", "lost", "success", "always", "recovered", NULL,
};

#define KEYS(arr) arr, EPH_ARRAY_LEN(arr)

static const struct conf_key top_keys[] = {
	{ "source", CK_SPECIAL, K_SOURCE, 0, 0, 0, NULL,
	  "none: jobs run in the jobs file's directory",
	  "where the scripts come from (a git repository)" },
	{ "defaults", CK_SPECIAL, K_DEFAULTS, 0, 0, 0, NULL, "none",
	  "keys every job inherits (any job key but schedule, run and command)" },
	{ "python", CK_SPECIAL, K_PYTHON, 0, 0, 0, NULL, "none",
	  "the Python runtime of every job" },
	{ "mail", CK_SPECIAL, K_MAIL, 0, 0, 0, NULL, "none: no mail",
	  "how notifications are sent" },
	{ "executors", CK_SPECIAL, K_EXECUTORS, 0, 0, 0, NULL, "local only",
	  "settings of each executor" },
	{ "retention", CK_SPECIAL, K_RETENTION, 0, 0, 0, NULL, "30 days, 1000 runs per job",
	  "how long run records and directories are kept" },
	{ "max_parallel", CK_INT, K_MAX_PARALLEL, offsetof(struct conf, max_parallel), 0, 100000,
	  NULL, "0", "most runs going at once, over all jobs; 0 = no limit" },
	{ "secrets", CK_SPECIAL, K_SECRETS, 0, 0, 0, NULL, "none",
	  "named secrets, given to jobs by name: { file: PATH } or { env: VAR }" },
	{ "results_store", CK_SPECIAL, K_RESULTS_STORE, 0, 0, 0, NULL, "none",
	  "an S3-compatible bucket each run's results are uploaded to" },
	{ "jobs", CK_SPECIAL, K_JOBS, 0, 0, 0, NULL, "required", "the jobs, by name" },
};

static const struct conf_key source_keys[] = {
	{ "repo", CK_STR, K_OTHER, offsetof(struct conf_source, repo), 0, 0, NULL, "none",
	  "git URL or local path of the repository" },
	{ "branch", CK_STR, K_OTHER, offsetof(struct conf_source, branch), 0, 0, NULL,
	  "the remote's default branch", "branch each run is pinned from" },
	{ "refresh", CK_DUR, K_OTHER, offsetof(struct conf_source, refresh), 0, DUR_MAX, NULL,
	  "30s", "how often the mirror is fetched; 0 = before every run" },
	{ "on_fetch_error", CK_ENUM, K_OTHER, offsetof(struct conf_source, on_fetch_error), 0, 0,
	  fetch_error_values, "use_last",
	  "use_last: run the last fetched commit; fail: fail the run" },
	{ "fetch_timeout", CK_DUR, K_OTHER, offsetof(struct conf_source, fetch_timeout), 1, DUR_MAX,
	  NULL, "2m", "longest a fetch may take" },
	{ "keep_worktrees", CK_INT, K_OTHER, offsetof(struct conf_source, keep_worktrees), 1, 1000,
	  NULL, "5", "checked-out commits kept in the cache" },
};

static const struct conf_key python_keys[] = {
	{ "requirements", CK_STR, K_REQUIREMENTS, 0, 0, 0, NULL, "none",
	  "requirements file, relative to the repository" },
	{ "interpreter", CK_STR, K_INTERPRETER, 0, 0, 0, NULL, "python3",
	  "the interpreter the venv is made from" },
};

static const struct conf_key mail_keys[] = {
	{ "smtp", CK_SPECIAL, K_SMTP, offsetof(struct conf_mail, smtp), 0, 0, NULL, "none: no mail",
	  "smtp://HOST[:PORT] (STARTTLS) or smtps://HOST[:PORT]" },
	{ "from", CK_SPECIAL, K_FROM, offsetof(struct conf_mail, from), 0, 0, NULL,
	  "required with smtp", "sender address" },
	{ "username", CK_STR, K_USERNAME, offsetof(struct conf_mail, username), 0, 0, NULL,
	  "none: no AUTH", "SMTP AUTH user name" },
	{ "password_file", CK_STR, K_PASSWORD_FILE, offsetof(struct conf_mail, password_file), 0, 0,
	  NULL, "none", "file holding the SMTP password" },
	{ "password_env", CK_STR, K_PASSWORD_ENV, offsetof(struct conf_mail, password_env), 0, 0,
	  NULL, "none", "environment variable holding the SMTP password" },
	{ "ca_file", CK_STR, K_CA_FILE, offsetof(struct conf_mail, ca_file), 0, 0, NULL,
	  "the system's CAs", "CA bundle to verify the server with" },
	{ "starttls", CK_BOOL, K_STARTTLS, offsetof(struct conf_mail, starttls), 0, 0, NULL, "true",
	  "require STARTTLS on smtp://" },
	{ "admin", CK_SPECIAL, K_ADMIN, offsetof(struct conf_mail, admin), 0, 0, NULL, "none",
	  "addresses told about problems of ephemeron itself" },
	{ "max_age", CK_DUR, K_MAX_AGE, offsetof(struct conf_mail, max_age), 1, DUR_MAX, NULL,
	  "24h", "a message not sent by then is dropped (and logged)" },
	{ "source_alarm", CK_DUR, K_SOURCE_ALARM, offsetof(struct conf_mail, source_alarm), 1,
	  DUR_MAX, NULL, "1h", "admins are told when fetches have failed this long" },
	{ "timeout", CK_DUR, K_MAIL_TIMEOUT, offsetof(struct conf_mail, timeout), 1, 3600, NULL,
	  "1m", "longest one SMTP session may take" },
};

static const struct conf_key executors_keys[] = {
	{ "local", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "", "runs on this machine" },
};

static const struct conf_key local_keys[] = {
	{ "memory_budget", CK_SIZE, K_OTHER, offsetof(struct conf_local, memory_budget), 1 << 20,
	  SIZE_MAX_, NULL, "80% of MemTotal", "memory the local runs may use together" },
	{ "price_monthly", CK_PRICE, K_OTHER, offsetof(struct conf_local, price_monthly), 0,
	  CONF_PRICE_MAX, NULL, "0", "what this machine costs a month, for eph cost" },
};

static const struct conf_key retention_keys[] = {
	{ "days", CK_INT64, K_OTHER, offsetof(struct conf_retention, days), 1, 36600, NULL, "30",
	  "runs older than this are deleted" },
	{ "runs_per_job", CK_INT, K_OTHER, offsetof(struct conf_retention, runs_per_job), 1,
	  1000000, NULL, "1000", "most runs kept per job" },
};

static const struct conf_key job_keys[] = {
	{ "schedule", CK_SPECIAL, K_SCHEDULE, 0, 0, 0, NULL, "required",
	  "5-field cron expression, @hourly..@yearly, or @every DURATION" },
	{ "run", CK_STR, K_RUN, offsetof(struct conf_job, run), 0, 0, NULL, "run or command",
	  "shell command line (sh -c)" },
	{ "command", CK_STRV, K_COMMAND, offsetof(struct conf_job, command), 0, 0, NULL,
	  "run or command", "argv, executed without a shell" },
	{ "memory", CK_SIZE, K_MEMORY, offsetof(struct conf_job, memory), 1 << 20, SIZE_MAX_, NULL,
	  "none: no limit",
	  "memory limit of the run: a size, auto, or {auto: true, min: SIZE, max: SIZE}" },
	{ "timeout", CK_DUR, K_TIMEOUT, offsetof(struct conf_job, timeout), 0, DUR_MAX, NULL,
	  "0: none", "the run is stopped after this long" },
	{ "kill_grace", CK_DUR, K_KILL_GRACE, offsetof(struct conf_job, kill_grace), 0, 3600, NULL,
	  "10s", "between SIGTERM and SIGKILL" },
	{ "results_max", CK_SIZE, K_OTHER, offsetof(struct conf_job, results_max), 0, SIZE_MAX_,
	  NULL, "1GiB", "the most bytes of results ($EPH_RESULTS) a run keeps" },
	{ "results", CK_SPECIAL, K_RESULTS, 0, 0, 0, NULL, "none",
	  "files the command creates or changes to keep as results: globs relative to its "
	  "working directory" },
	{ "timezone", CK_SPECIAL, K_TIMEZONE, 0, 0, 0, NULL, "the machine's",
	  "IANA zone the schedule is read in" },
	{ "executor", CK_SPECIAL, K_EXECUTOR, 0, 0, 0, NULL, "local", "where the job runs" },
	{ "retries", CK_INT, K_RETRIES, offsetof(struct conf_job, retries), 0, 100, NULL, "0",
	  "attempts after a failed one" },
	{ "retry_backoff", CK_DUR, K_RETRY_BACKOFF, offsetof(struct conf_job, retry_backoff), 1,
	  86400, NULL, "30s", "delay before the first retry; doubles each time" },
	{ "retry_on_oom", CK_ENUM, K_RETRY_ON_OOM, offsetof(struct conf_job, retry_on_oom), 0, 0,
	  oom_retry_values, "none",
	  "grow: an oom run is retried at once with twice the memory, up to memory's max" },
	{ "profile", CK_ENUM, K_OTHER, offsetof(struct conf_job, profile), 0, 0, profile_values,
	  "on_oom",
	  "where a Python run's memory goes: on_oom (the run after an oom), memory, off" },
	{ "concurrency", CK_ENUM, K_CONCURRENCY, offsetof(struct conf_job, concurrency), 0, 0,
	  concurrency_values, "forbid", "when a fire finds the previous run still going" },
	{ "catchup", CK_ENUM, K_CATCHUP, offsetof(struct conf_job, catchup), 0, 0, catchup_values,
	  "latest", "fires missed while the daemon was down" },
	{ "starting_deadline", CK_DUR, K_STARTING_DEADLINE,
	  offsetof(struct conf_job, starting_deadline), 0, DUR_MAX, NULL, "1h",
	  "a missed fire older than this is not caught up; 0 = no limit" },
	{ "jitter", CK_DUR, K_JITTER, offsetof(struct conf_job, jitter), 0, 86400, NULL, "0",
	  "random delay added to each fire, up to this" },
	{ "env", CK_SPECIAL, K_ENV, 0, 0, 0, NULL, "none", "environment variables" },
	{ "workdir", CK_SPECIAL, K_WORKDIR, 0, 0, 0, NULL, "the repository root",
	  "directory the command runs in, relative to the repository" },
	{ "notify", CK_SPECIAL, K_NOTIFY, 0, 0, 0, NULL, "none", "who is mailed, and when" },
	{ "requirements", CK_STR, K_REQUIREMENTS, offsetof(struct conf_job, requirements), 0, 0,
	  NULL, "python.requirements", "requirements file of this job's venv" },
	{ "interpreter", CK_STR, K_INTERPRETER, offsetof(struct conf_job, interpreter), 0, 0, NULL,
	  "python.interpreter", "interpreter of this job's venv" },
	{ "secrets", CK_SPECIAL, K_JOB_SECRETS, 0, 0, 0, NULL, "none",
	  "environment variables set from named secrets: { VAR: secret_name }" },
};

static const struct conf_key secret_keys[] = {
	{ "file", CK_STR, K_SECRET_FILE, 0, 0, 0, NULL, "file or env",
	  "file holding the value, relative to the jobs file; mode 600" },
	{ "env", CK_STR, K_SECRET_ENV, 0, 0, 0, NULL, "file or env",
	  "variable of the scheduler's environment holding the value" },
};

static const struct conf_key results_store_keys[] = {
	{ "url", CK_SPECIAL, K_STORE_URL, 0, 0, 0, NULL, "required",
	  "s3://BUCKET/PREFIX: objects are PREFIX/JOB/RUN/PATH" },
	{ "endpoint", CK_SPECIAL, K_STORE_ENDPOINT, 0, 0, 0, NULL,
	  "https://s3.REGION.amazonaws.com", "the service's URL, https://HOST[:PORT]" },
	{ "region", CK_SPECIAL, K_STORE_REGION, 0, 0, 0, NULL, "us-east-1",
	  "the region requests are signed for" },
	{ "access_key", CK_SPECIAL, K_STORE_ACCESS_KEY, 0, 0, 0, NULL, "required",
	  "the access key id: { file: PATH } or { env: VAR }" },
	{ "secret_key", CK_SPECIAL, K_STORE_SECRET_KEY, 0, 0, 0, NULL, "required",
	  "the secret access key: { file: PATH } or { env: VAR }" },
};

static const struct conf_key notify_keys[] = {
	{ "email", CK_SPECIAL, K_NOTIFY_EMAIL, 0, 0, 0, NULL, "none", "addresses to mail" },
	{ "on", CK_SPECIAL, K_NOTIFY_ON, 0, 0, 0, NULL, "[failure]",
	  "outcomes that send mail: failure oom timeout lost success always recovered" },
	{ "on_each_attempt", CK_BOOL, K_NOTIFY_EACH, offsetof(struct conf_notify, on_each_attempt),
	  0, 0, NULL, "false", "mail about every failed attempt, not only the last" },
};

/* memory: {auto: true, min: SIZE, max: SIZE}, read into a struct conf_job */
static const struct conf_key memory_keys[] = {
	{ "auto", CK_BOOL, K_OTHER, offsetof(struct conf_job, memory_auto), 0, 0, NULL,
	  "required: true", "the limit comes from the job's runs" },
	{ "min", CK_SIZE, K_OTHER, offsetof(struct conf_job, memory_min), 1 << 20, SIZE_MAX_, NULL,
	  "512MiB", "the least limit, and the limit with no history" },
	{ "max", CK_SIZE, K_OTHER, offsetof(struct conf_job, memory_max), 1 << 20, SIZE_MAX_, NULL,
	  "none (local: memory_budget)", "the largest limit; required with retry_on_oom: grow" },
};

const struct conf_section conf_sec_top = { "the top level", KEYS(top_keys) };
const struct conf_section conf_sec_source = { "source", KEYS(source_keys) };
const struct conf_section conf_sec_python = { "python", KEYS(python_keys) };
const struct conf_section conf_sec_mail = { "mail", KEYS(mail_keys) };
const struct conf_section conf_sec_executors = { "executors", KEYS(executors_keys) };
const struct conf_section conf_sec_local = { "executors.local", KEYS(local_keys) };
const struct conf_section conf_sec_retention = { "retention", KEYS(retention_keys) };
const struct conf_section conf_sec_job = { "a job", KEYS(job_keys) };
const struct conf_section conf_sec_notify = { "notify", KEYS(notify_keys) };
const struct conf_section conf_sec_memory = { "memory", KEYS(memory_keys) };
const struct conf_section conf_sec_secret = { "a secret", KEYS(secret_keys) };
const struct conf_section conf_sec_results_store = { "results_store", KEYS(results_store_keys) };

const struct conf_key *
conf_key_find(const struct conf_section *s, const char *name, size_t len)
{
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->keys[i].name) == len && memcmp(s->keys[i].name, name, len) == 0)
			return &s->keys[i];
	return NULL;
}

size_t
conf_edit_distance(const char *a, size_t alen, const char *b, size_t blen, size_t max)
{
	size_t *prev2, *prev, *cur, d;

	if ((alen > blen ? alen - blen : blen - alen) > max)
		return max + 1;
	prev2 = xcalloc(blen + 1, sizeof(*prev2));
	prev = xcalloc(blen + 1, sizeof(*prev));
	cur = xcalloc(blen + 1, sizeof(*cur));
	for (size_t j = 0; j <= blen; j++)
		prev[j] = j;
	for (size_t i = 1; i <= alen; i++) {
		size_t *t;

		cur[0] = i;
		for (size_t j = 1; j <= blen; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = prev[j - 1] + cost;

			if (prev[j] + 1 < v)
				v = prev[j] + 1;
			if (cur[j - 1] + 1 < v)
				v = cur[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    prev2[j - 2] + 1 < v)
				v = prev2[j - 2] + 1;
			cur[j] = v;
		}
		t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	d = prev[blen];
	if (d > max)
		d = max + 1;
	free(prev2);
	free(prev);
	free(cur);
	return d;
}

const char *
conf_key_suggest(const struct conf_section *s, const char *name, size_t len)
{
	const char *best = NULL;
	size_t bestd = 3;

	for (size_t i = 0; i < s->n; i++) {
		const char *k = s->keys[i].name;
		size_t d = conf_edit_distance(name, len, k, strlen(k), 2);

		if (d < bestd) {
			bestd = d;
			best = k;
		}
	}
	return best;
}
