/* tests/unit/test_conf.c: the jobs file, parsed, merged and validated. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "conf/conf_keys.h"
#include "sched/cronexpr.h"
#include "sched/tz.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/xalloc.h"

/* Loads TEXT; asserts success and returns the configuration. */
static struct conf *
load_ok(const char *text)
{
	struct conf *c = NULL;
	struct diag d;
	int rc;

	diag_init(&d);
	rc = conf_load_mem("t.yaml", "/srv/repo", text, strlen(text), &c, &d);
	if (rc != 0) {
		diag_print(&d, stderr);
		fail_msg("conf_load_mem failed: %d", rc);
	}
	assert_int_equal(diag_nerrors(&d), 0);
	assert_non_null(c);
	diag_free(&d);
	return c;
}

/* Loads TEXT, which must fail; returns every problem as "LINE:COL: msg" lines. */
static char *
load_err(const char *text)
{
	struct conf *c = (struct conf *)1;
	struct diag d;
	char *out = xstrdup("");
	int rc;

	diag_init(&d);
	rc = conf_load_mem("t.yaml", "/srv/repo", text, strlen(text), &c, &d);
	assert_int_equal(rc, -EINVAL);
	assert_null(c);
	assert_true(diag_nerrors(&d) > 0);
	diag_sort(&d);
	for (size_t i = 0; i < d.n; i++) {
		char *s = xasprintf("%s%d:%d: %s\n", out, d.items[i].line, d.items[i].col,
		                    d.items[i].msg);

		free(out);
		out = s;
	}
	diag_free(&d);
	return out;
}

static void
assert_has(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL)
		fail_msg("expected \"%s\" in:\n%s", needle, haystack);
}

static const char *const full_example =
        "source:\n"
        "  repo: git@github.com:acme/data-scripts.git\n"
        "  branch: master\n"
        "  refresh: 5m\n"
        "  on_fetch_error: fail\n"
        "  fetch_timeout: 90s\n"
        "  keep_worktrees: 3\n"
        "defaults:\n"
        "  executor: local\n"
        "  timezone: Europe/Berlin\n"
        "  memory: 1GiB\n"
        "  timeout: 30m\n"
        "  env: {LANG: C.UTF-8, MODE: prod}\n"
        "  notify: { email: [me@acme.io, team@acme.io], on: [failure, oom, timeout] }\n"
        "python:\n"
        "  requirements: requirements.txt\n"
        "  interpreter: python3.11\n"
        "mail:\n"
        "  smtp: smtps://smtp.acme.io:465\n"
        "  from: ephemeron@acme.io\n"
        "  username: ephemeron\n"
        "  password_file: /etc/ephemeron/smtp-password\n"
        "  ca_file: /etc/ssl/acme.pem\n"
        "  starttls: false\n"
        "  admin: [ops@acme.io]\n"
        "  max_age: 12h\n"
        "  source_alarm: 2h\n"
        "  timeout: 30s\n"
        "executors:\n"
        "  local:\n"
        "    memory_budget: 16GiB\n"
        "retention:\n"
        "  days: 7\n"
        "  runs_per_job: 50\n"
        "max_parallel: 4\n"
        "jobs:\n"
        "  train-model:\n"
        "    schedule: \"0 3 * * *\"\n"
        "    run: python train.py --full\n"
        "    memory: 12GiB\n"
        "    timeout: 2h\n"
        "    kill_grace: 1m\n"
        "    retries: 1\n"
        "    retry_backoff: 5m\n"
        "    concurrency: replace\n"
        "    catchup: all\n"
        "    starting_deadline: 6h\n"
        "    jitter: 30s\n"
        "    timezone: America/New_York\n"
        "    env: {MODE: test, EXTRA: \"1\"}\n"
        "    workdir: models/./train\n"
        "    notify: { on: [success, recovered], on_each_attempt: true }\n"
        "    requirements: models/requirements.txt\n"
        "    interpreter: python3.12\n"
        "  fetch-prices:\n"
        "    schedule: \"*/10 * * * *\"\n"
        "    command: [python, fetch_prices.py, --since, 1h]\n"
        "    memory: 512M\n";

static void
full_example_sets_every_key(void **state)
{
	struct conf *c = load_ok(full_example);
	const struct conf_job *j;

	(void)state;
	assert_string_equal(c->path, "t.yaml");
	assert_string_equal(c->dir, "/srv/repo");
	assert_string_equal(c->source.repo, "git@github.com:acme/data-scripts.git");
	assert_string_equal(c->source.branch, "master");
	assert_int_equal(c->source.refresh, 300);
	assert_int_equal(c->source.on_fetch_error, CONF_FETCH_FAIL);
	assert_int_equal(c->source.fetch_timeout, 90);
	assert_int_equal(c->source.keep_worktrees, 3);
	assert_string_equal(c->mail.smtp, "smtps://smtp.acme.io:465");
	assert_string_equal(c->mail.from, "ephemeron@acme.io");
	assert_string_equal(c->mail.username, "ephemeron");
	assert_string_equal(c->mail.password_file, "/etc/ephemeron/smtp-password");
	assert_null(c->mail.password_env);
	assert_string_equal(c->mail.ca_file, "/etc/ssl/acme.pem");
	assert_false(c->mail.starttls);
	assert_int_equal(c->mail.admin.n, 1);
	assert_string_equal(c->mail.admin.v[0], "ops@acme.io");
	assert_null(c->mail.admin.v[1]);
	assert_int_equal(c->mail.max_age, 12 * 3600);
	assert_int_equal(c->mail.source_alarm, 7200);
	assert_int_equal(c->mail.timeout, 30);
	assert_int_equal(c->local.memory_budget, UINT64_C(16) << 30);
	assert_int_equal(c->retention.days, 7);
	assert_int_equal(c->retention.runs_per_job, 50);
	assert_int_equal(c->max_parallel, 4);
	assert_int_equal(c->njobs, 2);

	j = conf_job_find(c, "train-model");
	assert_non_null(j);
	assert_string_equal(j->schedule, "0 3 * * *");
	assert_non_null(j->cron);
	assert_string_equal(j->run, "python train.py --full");
	assert_int_equal(j->command.n, 0);
	assert_int_equal(j->memory, UINT64_C(12) << 30);
	assert_int_equal(j->timeout, 7200);
	assert_int_equal(j->kill_grace, 60);
	assert_string_equal(j->executor, "local");
	assert_int_equal(j->retries, 1);
	assert_int_equal(j->retry_backoff, 300);
	assert_int_equal(j->concurrency, CONF_CONC_REPLACE);
	assert_int_equal(j->catchup, CONF_CATCHUP_ALL);
	assert_int_equal(j->starting_deadline, 6 * 3600);
	assert_int_equal(j->jitter, 30);
	assert_string_equal(j->timezone, "America/New_York");
	assert_non_null(j->tz);
	assert_string_equal(j->workdir, "models/./train");
	assert_string_equal(j->requirements, "models/requirements.txt");
	assert_string_equal(j->interpreter, "python3.12");
	assert_int_equal(j->line, 37);
	assert_int_equal(j->col, 3);

	j = conf_job_find(c, "fetch-prices");
	assert_non_null(j);
	assert_null(j->run);
	assert_int_equal(j->command.n, 4);
	assert_string_equal(j->command.v[0], "python");
	assert_string_equal(j->command.v[3], "1h");
	assert_null(j->command.v[4]);
	assert_int_equal(j->memory, UINT64_C(512) << 20);
	assert_int_equal(j->timeout, 1800);                       /* from defaults */
	assert_string_equal(j->timezone, "Europe/Berlin");        /* from defaults */
	assert_string_equal(j->requirements, "requirements.txt"); /* python section */
	assert_string_equal(j->interpreter, "python3.11");
	assert_null(conf_job_find(c, "nope"));
	conf_free(c);
}

static void
defaults_merge_into_jobs_and_the_job_wins(void **state)
{
	struct conf *c = load_ok(full_example);
	const struct conf_job *t = conf_job_find(c, "train-model"),
	                      *f = conf_job_find(c, "fetch-prices");

	(void)state;
	/* env: the defaults' first, the job's value replaces the default's in place */
	assert_int_equal(t->env.n, 3);
	assert_string_equal(t->env.v[0], "LANG=C.UTF-8");
	assert_string_equal(t->env.v[1], "MODE=test");
	assert_string_equal(t->env.v[2], "EXTRA=1");
	assert_null(t->env.v[3]);
	assert_int_equal(f->env.n, 2);
	assert_string_equal(f->env.v[1], "MODE=prod");
	/* notify merges per sub-key: the job set "on" and kept the defaults' "email" */
	assert_int_equal(t->notify.email.n, 2);
	assert_string_equal(t->notify.email.v[1], "team@acme.io");
	assert_int_equal(t->notify.on, CONF_NOTIFY_SUCCESS | CONF_NOTIFY_RECOVERED);
	assert_true(t->notify.on_each_attempt);
	assert_int_equal(f->notify.on, CONF_NOTIFY_FAILURE | CONF_NOTIFY_OOM | CONF_NOTIFY_TIMEOUT);
	assert_false(f->notify.on_each_attempt);
	/* the jobs' zones are loaded once each and owned by the conf */
	assert_ptr_not_equal(t->tz, f->tz);
	assert_non_null(c->local_tz);
	conf_free(c);
}

static void
unset_keys_take_the_documented_defaults(void **state)
{
	struct conf *c = load_ok("jobs:\n  b:\n    schedule: '@hourly'\n    run: x\n"
	                         "  a:\n    schedule: '@daily'\n    run: y\n");
	const struct conf_job *j = &c->jobs[0];

	(void)state;
	assert_int_equal(c->njobs, 2);
	assert_string_equal(c->jobs[0].name, "a"); /* sorted by name */
	assert_string_equal(c->jobs[1].name, "b");
	assert_null(c->source.repo);
	assert_int_equal(c->source.refresh, 30);
	assert_int_equal(c->source.on_fetch_error, CONF_FETCH_USE_LAST);
	assert_int_equal(c->source.fetch_timeout, 120);
	assert_int_equal(c->source.keep_worktrees, 5);
	assert_null(c->mail.smtp);
	assert_true(c->mail.starttls);
	assert_int_equal(c->mail.max_age, 86400);
	assert_int_equal(c->mail.source_alarm, 3600);
	assert_int_equal(c->retention.days, 30);
	assert_int_equal(c->retention.runs_per_job, 1000);
	assert_int_equal(c->max_parallel, 0);
	assert_int_equal(j->memory, 0);
	assert_int_equal(j->timeout, 0);
	assert_int_equal(j->kill_grace, 10);
	assert_string_equal(j->executor, "local");
	assert_int_equal(j->retries, 0);
	assert_int_equal(j->retry_backoff, 30);
	assert_int_equal(j->concurrency, CONF_CONC_FORBID);
	assert_int_equal(j->catchup, CONF_CATCHUP_LATEST);
	assert_int_equal(j->starting_deadline, 3600);
	assert_int_equal(j->jitter, 0);
	assert_null(j->timezone);
	assert_ptr_equal(j->tz, c->local_tz);
	assert_int_equal(j->env.n, 0);
	assert_null(j->workdir);
	assert_int_equal(j->notify.email.n, 0);
	assert_int_equal(j->notify.on, CONF_NOTIFY_FAILURE);
	assert_null(j->requirements);
	assert_string_equal(j->interpreter, "python3");
	conf_free(c);
}

/* memory: auto and its mapping: min 512 MiB unless written, a local job's max its budget
 * unless written; a job's memory replaces the defaults' whole; retry_on_oom: grow. */
static void
memory_auto_forms_and_their_defaults(void **state)
{
	struct conf *c = load_ok("executors:\n"
	                         "  local: { memory_budget: 8GiB }\n"
	                         "defaults:\n"
	                         "  memory: { auto: true, min: 1GiB, max: 4GiB }\n"
	                         "jobs:\n"
	                         "  inherits: { schedule: '@hourly', run: 'true' }\n"
	                         "  plain: { schedule: '@hourly', run: 'true', memory: auto }\n"
	                         "  fixed: { schedule: '@hourly', run: 'true', memory: 2GiB }\n"
	                         "  grows:\n"
	                         "    schedule: '@hourly'\n"
	                         "    run: 'true'\n"
	                         "    memory: { auto: true, max: 2GiB }\n"
	                         "    retry_on_oom: grow\n");
	const struct conf_job *j;

	(void)state;
	j = conf_job_find(c, "inherits");
	assert_true(j->memory_auto);
	assert_int_equal(j->memory, 0);
	assert_int_equal(j->memory_min, UINT64_C(1) << 30);
	assert_int_equal(j->memory_max, UINT64_C(4) << 30);
	assert_int_equal(j->retry_on_oom, CONF_OOM_RETRY_NONE);
	j = conf_job_find(c, "plain");
	assert_true(j->memory_auto);
	assert_int_equal(j->memory_min, CONF_MEMORY_MIN_DEFAULT);
	assert_int_equal(j->memory_max, UINT64_C(8) << 30); /* the local budget */
	j = conf_job_find(c, "fixed");
	assert_false(j->memory_auto);
	assert_int_equal(j->memory, UINT64_C(2) << 30);
	j = conf_job_find(c, "grows");
	assert_true(j->memory_auto);
	assert_int_equal(j->memory_min, CONF_MEMORY_MIN_DEFAULT);
	assert_int_equal(j->memory_max, UINT64_C(2) << 30);
	assert_int_equal(j->retry_on_oom, CONF_OOM_RETRY_GROW);
	conf_free(c);
}

static void
memory_budget_defaults_to_80_percent_of_memtotal(void **state)
{
	struct conf *c = load_ok("jobs:\n  a:\n    schedule: '@daily'\n    run: y\n");
	unsigned long long kb = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "r");

	(void)state;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			break;
	fclose(f);
	assert_true(kb > 0);
	assert_int_equal(c->local.memory_budget, (uint64_t)kb * 1024 / 10 * 8);
	conf_free(c);
}

static void
sizes_are_binary_and_bounded(void **state)
{
	struct conf *c =
	        load_ok("jobs:\n  a:\n    schedule: '@daily'\n    run: y\n    memory: 1.5G\n");
	char *e;

	(void)state;
	assert_int_equal(c->jobs[0].memory, UINT64_C(3) << 29);
	conf_free(c);
	e = load_err("jobs:\n  a:\n    schedule: '@daily'\n    run: y\n    memory: 100KiB\n");
	assert_has(
	        e,
	        "5:13: \"memory\" is \"100KiB\" (100 KiB), less than the least allowed, 1.00 MiB\n");
	free(e);
	e = load_err("jobs:\n  a:\n    schedule: '@daily'\n    run: y\n    memory: 3PiB\n");
	assert_has(e, "5:13: \"memory\": bad size \"3PiB\"");
	free(e);
}

static void
durations_are_checked_against_each_keys_bounds(void **state)
{
	char *e = load_err("jobs:\n  a:\n    schedule: '@daily'\n    run: y\n"
	                   "    timeout: 1h30m\n    kill_grace: 2h\n    jitter: 2d\n");

	(void)state;
	assert_has(e, "6:17: \"kill_grace\" must be from 0.0s to 1h00m, not \"2h\"\n");
	assert_has(e, "7:13: \"jitter\" must be from 0.0s to 24h00m, not \"2d\"\n");
	assert_null(strstr(e, "timeout"));
	free(e);
}

static void
unknown_keys_suggest_the_closest_valid_key(void **state)
{
	char *e = load_err("jobs:\n  a:\n    schedule: '@daily'\n    run: y\n    memroy: 1G\n"
	                   "    sechdule: x\n    qqqqqq: 1\n");

	(void)state;
	assert_has(e, "5:5: unknown key \"memroy\" (did you mean \"memory\"?)\n");
	assert_has(e, "6:5: unknown key \"sechdule\" (did you mean \"schedule\"?)\n");
	assert_has(e, "7:5: unknown key \"qqqqqq\"\n");
	free(e);
}

static void
edit_distance_counts_transpositions_as_one(void **state)
{
	(void)state;
	assert_int_equal(conf_edit_distance("memroy", 6, "memory", 6, 2), 1);
	assert_int_equal(conf_edit_distance("memory", 6, "memory", 6, 2), 0);
	assert_int_equal(conf_edit_distance("tmeout", 6, "timeout", 7, 2), 1);
	assert_int_equal(conf_edit_distance("abc", 3, "xyz", 3, 2), 3);
	assert_int_equal(conf_edit_distance("a", 1, "abcdef", 6, 2), 3);
	assert_string_equal(conf_key_suggest(&conf_sec_job, "retires", 7), "retries");
	assert_null(conf_key_suggest(&conf_sec_job, "banana", 6));
}

static void
every_problem_is_reported_not_only_the_first(void **state)
{
	char *e = load_err("jobs:\n"
	                   "  a:\n    schedule: '@daily'\n    run: y\n    retries: 101\n"
	                   "  b:\n    schedule: '@daily'\n    run: y\n    concurrency: sometimes\n"
	                   "  c:\n    schedule: '@daily'\n");

	(void)state;
	assert_has(e, "5:14: \"retries\" must be a whole number from 0 to 100, not \"101\"\n");
	assert_has(
	        e,
	        "9:18: \"concurrency\" must be one of forbid, allow, replace, not \"sometimes\"\n");
	assert_has(e, "10:3: job \"c\" needs \"run\"");
	free(e);
}

static void
quoted_and_plain_schedules_report_the_same_field_column(void **state)
{
	/* the minute field "61" is at column 15 plain, 16 inside either quote */
	char *e = load_err("jobs:\n"
	                   "  a:\n    schedule: 61 * * * *\n    run: y\n"
	                   "  b:\n    schedule: \"61 * * * *\"\n    run: y\n"
	                   "  c:\n    schedule: '61 * * * *'\n    run: y\n");

	(void)state;
	assert_has(e, "3:15: ");
	assert_has(e, "6:16: ");
	assert_has(e, "9:16: ");
	free(e);
}

static void
aliases_and_merge_keys_are_followed(void **state)
{
	struct conf *c = load_ok("x-common: &common\n"
	                         "  memory: 2GiB\n"
	                         "  timeout: 5m\n"
	                         "x-env: &env {A: '1'}\n"
	                         "jobs:\n"
	                         "  a:\n"
	                         "    <<: *common\n"
	                         "    timeout: 10m\n"
	                         "    schedule: &sched '@hourly'\n"
	                         "    run: y\n"
	                         "    env: *env\n"
	                         "  b:\n"
	                         "    <<: [*common]\n"
	                         "    schedule: *sched\n"
	                         "    command: [z]\n");

	(void)state;
	assert_int_equal(c->njobs, 2);
	assert_int_equal(c->jobs[0].memory, UINT64_C(2) << 30);
	assert_int_equal(c->jobs[0].timeout, 600); /* the job's own key wins over the merge */
	assert_string_equal(c->jobs[0].env.v[0], "A=1");
	assert_int_equal(c->jobs[1].timeout, 300);
	assert_string_equal(c->jobs[1].schedule, "@hourly");
	conf_free(c);
}

static void
alias_expansion_is_bounded(void **state)
{
	struct conf *c = NULL;
	struct buf b;
	struct diag d;
	clock_t t0 = clock();
	int rc = 0;

	(void)state;
	/* a billion laughs aimed at env: 2^19 entries per job would need gigabytes */
	buf_init(&b, BUF_MAX_CONF);
	rc |= buf_puts(&b,
	               "x-0: &e0 {V: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'}\n");
	for (int i = 1; i < 20; i++)
		rc |= buf_printf(&b, "x-%d: &e%d {<<: [*e%d], K%d: *e%d}\n", i, i, i - 1, i, i - 1);
	rc |= buf_puts(&b, "jobs:\n");
	for (int i = 0; i < 2000; i++)
		rc |= buf_printf(&b, "  j%d: {schedule: '@daily', run: x, env: *e19}\n", i);
	assert_int_equal(rc, 0);
	diag_init(&d);
	rc = conf_load_mem("t.yaml", "/", b.data, b.len, &c, &d);
	/* nested merges are refused, so env holds one mapping value: an error, quickly */
	assert_int_equal(rc, -EINVAL);
	assert_null(c);
	assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 10.0);
	diag_free(&d);
	buf_free(&b);

	/* many jobs sharing one big env through an alias hit the expansion budget */
	buf_init(&b, BUF_MAX_CONF);
	rc = buf_puts(&b, "x-env: &env\n");
	for (int i = 0; i < 250; i++)
		rc |= buf_printf(&b, "  V%d: '%012000d'\n", i, i);
	rc |= buf_puts(&b, "jobs:\n");
	for (int i = 0; i < 100; i++)
		rc |= buf_printf(&b, "  j%d: {schedule: '@daily', run: x, env: *env}\n", i);
	assert_int_equal(rc, 0);
	diag_init(&d);
	rc = conf_load_mem("t.yaml", "/", b.data, b.len, &c, &d);
	assert_int_equal(rc, -EINVAL);
	assert_null(c);
	assert_int_equal(d.n, 1);
	/* the budget: 64 MiB, plus 32 bytes for each byte of the file */
	{
		char *want =
		        xasprintf("the file expands to more than %zu MiB once aliases are followed",
		                  (((size_t)64 << 20) + 32 * b.len) >> 20);

		assert_string_equal(d.items[0].msg, want);
		free(want);
	}
	diag_free(&d);
	buf_free(&b);
}

/* A file built by hostile_file: KIND 'f' one mapping of N keys that are flow sequences,
 * 'm' an anchor of N unknown keys merged into M jobs, 'e' an anchor of N env variables
 * used by M jobs, 'c' an anchor of an N-item command used by M jobs ('C' the same with
 * the command before the schedule), as bench/conf_hostile.py writes them. */
static void
hostile_file(struct buf *b, char kind, int n, int m)
{
	int rc = 0;

	buf_init(b, BUF_MAX_CONF);
	rc |= buf_puts(b, kind == 'f' ? "x-keys:\n" : "x-a: &a\n");
	for (int i = 0; i < n; i++) {
		if (kind == 'f')
			rc |= buf_printf(b, "  [%d]: 0\n", i);
		else if (kind == 'c' || kind == 'C')
			rc |= buf_puts(b, "  - a\n");
		else
			rc |= buf_printf(b, "  %c%d: x\n", kind == 'e' ? 'V' : 'u', i);
	}
	rc |= buf_puts(b, "jobs:\n");
	if (kind == 'f')
		rc |= buf_puts(b, "  a: {schedule: '@daily', run: x}\n");
	for (int i = 0; i < m; i++) {
		if (kind == 'm')
			rc |= buf_printf(b, "  j%d: {<<: *a, schedule: '@daily', run: x}\n", i);
		else if (kind == 'e')
			rc |= buf_printf(b, "  j%d: {schedule: '@daily', run: x, env: *a}\n", i);
		else if (kind == 'c')
			rc |= buf_printf(b, "  j%d: {schedule: '@daily', command: *a}\n", i);
		else
			rc |= buf_printf(b, "  j%d: {command: *a, schedule: '@daily'}\n", i);
	}
	assert_int_equal(rc, 0);
}

/* Whether this process runs under valgrind, which preloads its own libraries. */
static bool
under_valgrind(void)
{
	const char *pre = getenv("LD_PRELOAD");

	return pre != NULL && strstr(pre, "vgpreload") != NULL;
}

struct hostile_case {
	char kind;
	int n, m;
	int rc;             /* what conf_load_mem returns */
	size_t most_errors; /* at most this many, none dropped */
};

/* Files of a few hundred KiB that once took seconds to minutes (a quadratic duplicate-key
 * check, merged or aliased mappings walked for each job, an error for each walk) load in a
 * bounded time, with a bounded number of errors. CPU time, so that a busy machine does not
 * count: each takes 0.4 s at most on the plain build, and took 6 to 150 s before. Not under
 * valgrind, which runs them some 30 times slower. */
static void
hostile_files_load_quickly(void **state)
{
	static const struct hostile_case cases[] = {
		/* were 5.5 s; 4 s and 3,000,000 errors; 31 s; 6.8 s */
		{ 'f', 16000, 0, 0, 0 },
		{ 'm', 1000, 3000, -EINVAL, 101 },
		{ 'm', 10000, 2000, -EINVAL, 101 },
		{ 'e', 20000, 2000, -EINVAL, 2 },
		/* valid, but 5 million variables in all */
		{ 'e', 256, 20000, -EINVAL, 1 },
		{ 'c', 20000, 2000, -EINVAL, 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf *c = NULL;
		struct buf b;
		struct diag d;
		clock_t t0;
		double cpu;

		hostile_file(&b, cases[i].kind, cases[i].n, cases[i].m);
		diag_init(&d);
		t0 = clock();
		assert_int_equal(conf_load_mem("t.yaml", "/", b.data, b.len, &c, &d), cases[i].rc);
		cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
		if ((cpu > 2.0 && !under_valgrind()) || d.n > cases[i].most_errors || d.dropped > 0)
			fail_msg("case %zu (%c %d %d): %.2f s of CPU, %zu errors", i, cases[i].kind,
			         cases[i].n, cases[i].m, cpu, diag_nerrors(&d));
		conf_free(c);
		diag_free(&d);
		buf_free(&b);
	}
}

/* An alias repeats the errors of what it leads to wherever it is used: each is shown once,
 * and past 100 distinct errors, or 1000 raised, the loader says so and stops. */
static void
errors_are_shown_once_and_bounded(void **state)
{
	struct buf b;
	char *e;

	(void)state;
	hostile_file(&b, 'm', 3, 20); /* 60 raised, 3 distinct */
	e = load_err(buf_cstr(&b));
	assert_string_equal(e, "2:3: unknown key \"u0\" (did you mean \"run\"?)\n"
	                       "3:3: unknown key \"u1\" (did you mean \"run\"?)\n"
	                       "4:3: unknown key \"u2\" (did you mean \"run\"?)\n");
	free(e);
	buf_free(&b);

	hostile_file(&b, 'm', 3, 400); /* 1200 raised, 3 distinct */
	e = load_err(buf_cstr(&b));
	assert_string_equal(
	        e,
	        "0:0: too many errors, stopping: the same ones again and again, through aliases\n"
	        "2:3: unknown key \"u0\" (did you mean \"run\"?)\n"
	        "3:3: unknown key \"u1\" (did you mean \"run\"?)\n"
	        "4:3: unknown key \"u2\" (did you mean \"run\"?)\n");
	free(e);
	buf_free(&b);

	hostile_file(&b, 'm', 150, 2); /* 150 distinct */
	e = load_err(buf_cstr(&b));
	assert_has(e, "0:0: too many errors, stopping: these are the first 100\n2:3: ");
	assert_has(e, "101:3: unknown key \"u99\"\n");
	assert_true(strstr(e, "u100") == NULL);
	free(e);
	buf_free(&b);
}

/* Once the budget is spent, the walk stops, and the job it stopped in is not judged on the
 * keys it did not read: one error, not "job j55 has no schedule" as well. */
static void
a_spent_budget_is_the_only_error(void **state)
{
	struct buf b;
	char *e;

	(void)state;
	hostile_file(&b, 'C', 20000, 2000);
	e = load_err(buf_cstr(&b));
	assert_has(e, "the file expands to more than ");
	assert_string_equal(strchr(e, '\n'), "\n"); /* one line */
	free(e);
	buf_free(&b);
}

/* Strings a job cannot mean: a blank run or workdir, a command whose program is an option
 * or blank, a variable the agent sets for the run. */
static void
meaningless_values_are_refused(void **state)
{
	char *e = load_err("defaults:\n"
	                   "  env: {EPH_JOB: x, EPH_MINE: ok}\n"
	                   "jobs:\n"
	                   "  a: {schedule: '@daily', run: \" \\t\"}\n"
	                   "  b: {schedule: '@daily', run: x, workdir: '  '}\n"
	                   "  c: {schedule: '@daily', command: [-x]}\n"
	                   "  d: {schedule: '@daily', command: [' ', x]}\n"
	                   "  e: {schedule: '@daily', run: x, env: {EPH_RUN_ID: 5}}\n");
	struct conf *c;

	(void)state;
	assert_string_equal(
	        e,
	        "2:9: environment variable \"EPH_JOB\" is reserved: ephemeron sets EPH_RUN_ID, EPH_JOB, EPH_ATTEMPT, EPH_SCHEDULED_AT, EPH_COMMIT and EPH_RESULTS for each run\n"
	        "4:33: \"run\" is only whitespace\n"
	        "5:45: \"workdir\" is only whitespace\n"
	        "6:37: \"command\" must start with a program, not the option \"-x\" (a command is [PROGRAM, ARGUMENT, ...])\n"
	        "7:38: \"command\" must start with a program, not \" \"\n"
	        "8:41: environment variable \"EPH_RUN_ID\" is reserved: ephemeron sets EPH_RUN_ID, EPH_JOB, EPH_ATTEMPT, EPH_SCHEDULED_AT, EPH_COMMIT and EPH_RESULTS for each run\n");
	free(e);
	/* options after the program, blank arguments and other EPH_ names are fine */
	c = load_ok("jobs:\n"
	            "  a: {schedule: '@daily', command: [python3, -u, ' '], env: {EPH_MINE: 1}}\n");
	assert_string_equal(c->jobs[0].command.v[1], "-u");
	assert_string_equal(c->jobs[0].env.v[0], "EPH_MINE=1");
	conf_free(c);
}

/* The job's env replaces the defaults' variables in place and appends its others, in
 * order, for any number of them; more than 256 in all is one error. */
static void
env_merges_in_order_and_is_bounded(void **state)
{
	struct buf b;
	struct conf *c;
	char *e;
	int rc = 0;

	(void)state;
	buf_init(&b, BUF_MAX_CONF);
	rc |= buf_puts(&b, "defaults:\n  env:\n");
	for (int i = 0; i < 200; i++)
		rc |= buf_printf(&b, "    V%d: d\n", i);
	rc |= buf_puts(&b, "jobs:\n  a:\n    schedule: '@daily'\n    run: x\n    env:\n");
	for (int i = 199; i >= 150; i -= 7)
		rc |= buf_printf(&b, "      V%d: j\n", i);
	rc |= buf_puts(&b, "      A: j\n      V2: j\n");
	assert_int_equal(rc, 0);
	c = load_ok(buf_cstr(&b));
	assert_int_equal(c->jobs[0].env.n, 201);
	assert_string_equal(c->jobs[0].env.v[2], "V2=j");
	assert_string_equal(c->jobs[0].env.v[3], "V3=d");
	assert_string_equal(c->jobs[0].env.v[199], "V199=j");
	assert_string_equal(c->jobs[0].env.v[198], "V198=d");
	assert_string_equal(c->jobs[0].env.v[192], "V192=j");
	assert_string_equal(c->jobs[0].env.v[200], "A=j");
	conf_free(c);
	/* and 56 more: one error, at the 257th variable */
	for (int i = 0; i < 56; i++)
		rc |= buf_printf(&b, "      N%d: j\n", i);
	assert_int_equal(rc, 0);
	e = load_err(buf_cstr(&b));
	assert_string_equal(e, "273:7: more than 256 environment variables\n");
	free(e);
	buf_free(&b);
}

/* A trailing "---" starts an empty second document: reported where it stands. */
static void
a_trailing_empty_document_has_a_position(void **state)
{
	char *e = load_err("jobs:\n  a: {schedule: '@daily', run: x}\n---\n");

	(void)state;
	assert_string_equal(e, "3:1: a second YAML document: the jobs file holds one\n");
	free(e);
}

/* Keys that are lists or mappings are compared as YAML does (a mapping in any order, a
 * scalar whatever its quotes), by sorting, among thousands. */
static void
complex_duplicate_keys_are_found_by_sorting(void **state)
{
	struct buf b;
	char *e;
	int rc;

	(void)state;
	buf_init(&b, BUF_MAX_CONF);
	rc = buf_puts(&b, "x-keys:\n  ? {a: 1, b: [2, 3]}\n  : x\n");
	for (int i = 0; i < 20000; i++)
		rc |= buf_printf(&b, "  [%d, x]: 0\n", i);
	rc |= buf_puts(&b, "  ? {b: [2, '3'], \"a\": 1}\n  : y\n  [7, \"x\"]: 1\n  [x, 7]: 1\n"
	                   "jobs: {a: {schedule: '@daily', run: x}}\n");
	assert_int_equal(rc, 0);
	e = load_err(buf_cstr(&b));
	assert_string_equal(e, "20004:6: duplicate key \"{b: [2, '3'], \\\"a\\\": 1}\"\n"
	                       "20006:4: duplicate key \"[7, \\\"x\\\"]\"\n");
	free(e);
	buf_free(&b);
}

static void
bad_inputs_fail_cleanly(void **state)
{
	/* each fails without a leak (the ASan build checks) and without a crash */
	static const char *const bad[] = {
		"",
		"# only a comment\n",
		"[1, 2\n",
		"jobs: *nowhere\n",
		"jobs:\n  a: &a\n    <<: *a\n",
		"- 1\n",
		"jobs:\n  a:\n    schedule: '@daily'\n    run: y\n    run: z\n",
		"jobs:\n  a:\n    schedule: '@daily'\n    run: y\n---\njobs: {}\n",
		"jobs:\n  a:\n    schedule: '@daily'\n    run: \"a\\0b\"\n",
		"jobs:\n  ? [a, b]\n  : 1\n",
		"jobs:\n  a:\n    schedule: '@daily'\n    command: [x, [y]]\n    env: {A: {B: c}}\n",
		"jobs:\n  a:\n    schedule: '@daily'\n    run: x\n    notify: {email: [], on: []}\n",
		"defaults:\n  schedule: x\n  timezone: Nowhere/City\njobs:\n  a: {run: x}\n",
		"mail: {smtp: 'smtp://'}\njobs: {a: {schedule: '@daily', run: x}}\n",
		"jobs:\n  a:\n    schedule: '@daily'\n    run: y\n    timezone: /etc/localtime\n",
		"\xef\xbb\xbf"
		"jobs:\n\t- x\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conf *c = NULL;
		struct diag d;

		diag_init(&d);
		assert_int_equal(conf_load_mem("t.yaml", "/", bad[i], strlen(bad[i]), &c, &d),
		                 -EINVAL);
		assert_null(c);
		assert_true(diag_nerrors(&d) > 0);
		diag_free(&d);
	}
}

static void
non_utf8_is_reported_at_its_first_bad_byte(void **state)
{
	char *e = load_err("jobs:\n  a:\n    run: \"\xc3\xa9t\xc3\xa9 \xff\"\n");

	(void)state;
	/* é counts as one column: the bad byte is the 15th character of line 3 */
	assert_string_equal(e, "3:15: not valid UTF-8 (byte 0xff): a jobs file must be UTF-8\n");
	free(e);
	e = load_err("jobs:\n  a: \xe0\x80\x80\n"); /* overlong */
	assert_has(e, "2:6: not valid UTF-8 (byte 0xe0)");
	free(e);
}

static char *
tmpfile_with(const char *text, size_t len)
{
	char *path = xstrdup("/tmp/test_conf_XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static void
conf_load_reports_unreadable_paths(void **state)
{
	struct conf *c = NULL;
	struct diag d;
	char *path, *s;

	(void)state;
	diag_init(&d);
	assert_int_equal(conf_load("/nonexistent/ephemeron.yaml", &c, &d), -ENOENT);
	assert_null(c);
	s = diag_format(&d, 0);
	assert_string_equal(s,
	                    "/nonexistent/ephemeron.yaml: cannot read: No such file or directory");
	free(s);
	diag_free(&d);

	diag_init(&d);
	assert_int_equal(conf_load("/tmp", &c, &d), -EISDIR);
	s = diag_format(&d, 0);
	assert_string_equal(s, "/tmp: cannot read: Is a directory");
	free(s);
	diag_free(&d);

	/* past the cap: refused from fstat, without reading it */
	path = tmpfile_with("", 0);
	assert_int_equal(truncate(path, 50 << 20), 0);
	diag_init(&d);
	assert_int_equal(conf_load(path, &c, &d), -EFBIG);
	s = diag_format(&d, 0);
	assert_has(s, ": too large (50.00 MiB): a jobs file may have at most 4 MiB");
	free(s);
	diag_free(&d);
	unlink(path);
	free(path);
}

static void
conf_load_sets_the_absolute_directory(void **state)
{
	static const char text[] = "jobs:\n  a: {schedule: '@daily', run: x}\n";
	char *path = tmpfile_with(text, sizeof(text) - 1);
	struct conf *c = NULL;
	struct diag d;

	(void)state;
	diag_init(&d);
	assert_int_equal(conf_load(path, &c, &d), 0);
	assert_string_equal(c->path, path);
	assert_string_equal(c->dir, "/tmp");
	assert_int_equal(c->njobs, 1);
	conf_free(c);
	diag_free(&d);
	unlink(path);
	free(path);
}

static void
equal_values_are_shared_between_jobs(void **state)
{
	struct conf *c = load_ok("defaults: {env: {LANG: C}}\n"
	                         "jobs:\n"
	                         "  a: {schedule: '0 6 * * *', command: [true], executor: local}\n"
	                         "  b: {schedule: '0 6 * * *', command: [true]}\n"
	                         "  c: {schedule: '0 7 * * *', command: ['true', x]}\n");

	(void)state;
	assert_int_equal(c->njobs, 3);
	assert_ptr_equal(c->jobs[0].cron, c->jobs[1].cron);
	assert_ptr_not_equal(c->jobs[0].cron, c->jobs[2].cron);
	assert_ptr_equal(c->jobs[0].command.v, c->jobs[1].command.v);
	assert_ptr_equal(c->jobs[0].command.v[0], c->jobs[2].command.v[0]);
	assert_string_equal(c->jobs[2].command.v[1], "x");
	assert_null(c->jobs[2].command.v[2]);
	assert_ptr_equal(c->jobs[0].env.v, c->jobs[2].env.v);
	assert_string_equal(c->jobs[1].env.v[0], "LANG=C");
	assert_ptr_equal(c->jobs[0].executor, c->jobs[1].executor);
	assert_string_equal(c->jobs[1].executor, "local");
	conf_free(c);
}

/* Every duplicate key is found, at any depth, among thousands of keys (sorted, not compared
 * pairwise): each one after the first, at its own position. */
static void
duplicate_keys_are_found_among_many(void **state)
{
	struct buf b;
	char *err, *want;

	(void)state;
	buf_init(&b, BUF_MAX_CONF);
	assert_int_equal(buf_append(&b, "jobs:\n", 6), 0);
	for (int i = 0; i < 3000; i++) {
		char *s = xasprintf("  job-%04d: {schedule: '@daily', run: x, env: {A: 1, B: 2}}\n",
		                    i % 2999);

		assert_int_equal(buf_append(&b, s, strlen(s)), 0);
		free(s);
	}
	assert_int_equal(buf_append(&b, "  z: {run: x, run: y}\n", 22), 0);
	err = load_err(buf_cstr(&b));
	want = xasprintf("3001:3: duplicate key \"job-0000\"\n"
	                 "3002:15: duplicate key \"run\"\n");
	assert_string_equal(err, want);
	free(want);
	free(err);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(full_example_sets_every_key),
		cmocka_unit_test(equal_values_are_shared_between_jobs),
		cmocka_unit_test(duplicate_keys_are_found_among_many),
		cmocka_unit_test(defaults_merge_into_jobs_and_the_job_wins),
		cmocka_unit_test(unset_keys_take_the_documented_defaults),
		cmocka_unit_test(memory_budget_defaults_to_80_percent_of_memtotal),
		cmocka_unit_test(memory_auto_forms_and_their_defaults),
		cmocka_unit_test(sizes_are_binary_and_bounded),
		cmocka_unit_test(durations_are_checked_against_each_keys_bounds),
		cmocka_unit_test(unknown_keys_suggest_the_closest_valid_key),
		cmocka_unit_test(edit_distance_counts_transpositions_as_one),
		cmocka_unit_test(every_problem_is_reported_not_only_the_first),
		cmocka_unit_test(quoted_and_plain_schedules_report_the_same_field_column),
		cmocka_unit_test(aliases_and_merge_keys_are_followed),
		cmocka_unit_test(alias_expansion_is_bounded),
		cmocka_unit_test(hostile_files_load_quickly),
		cmocka_unit_test(errors_are_shown_once_and_bounded),
		cmocka_unit_test(a_spent_budget_is_the_only_error),
		cmocka_unit_test(meaningless_values_are_refused),
		cmocka_unit_test(env_merges_in_order_and_is_bounded),
		cmocka_unit_test(a_trailing_empty_document_has_a_position),
		cmocka_unit_test(complex_duplicate_keys_are_found_by_sorting),
		cmocka_unit_test(bad_inputs_fail_cleanly),
		cmocka_unit_test(non_utf8_is_reported_at_its_first_bad_byte),
		cmocka_unit_test(conf_load_reports_unreadable_paths),
		cmocka_unit_test(conf_load_sets_the_absolute_directory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
