/* tests/unit/test_conf_slurm.c: the keys of a slurm executor (conf_exec_slurm.c): their
 * defaults, their values, every fault reported at its place, and what a job on it owes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "util/diag.h"
#include "util/xalloc.h"

#define SRC "source: {repo: 'https://example.com/jobs.git'}\n"

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
	diag_free(&d);
	return c;
}

/* Every problem of TEXT, which must fail, as "LINE:COL: msg" lines. */
static char *
load_err(const char *text)
{
	struct conf *c = NULL;
	struct diag d;
	char *out = xstrdup("");
	int rc;

	diag_init(&d);
	rc = conf_load_mem("t.yaml", "/srv/repo", text, strlen(text), &c, &d);
	assert_int_equal(rc, -EINVAL);
	assert_null(c);
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
slurm_keys_are_read_with_their_defaults(void **state)
{
	struct conf *c = load_ok(SRC "executors:\n"
	                             "  hpc: {type: slurm, shared_dir: /shared/eph/}\n"
	                             "jobs:\n"
	                             "  a: {schedule: '@daily', run: 'true', executor: hpc}\n");
	const struct conf_slurm *s = conf_executor_slurm(conf_executor_find(c, "hpc"));

	(void)state;
	assert_non_null(s);
	assert_null(conf_executor_slurm(conf_executor_find(c, "local")));
	assert_null(conf_executor_ssh(conf_executor_find(c, "hpc")));
	assert_string_equal(s->shared_dir, "/shared/eph"); /* its trailing "/" dropped */
	assert_null(s->partition);
	assert_null(s->account);
	assert_null(s->qos);
	assert_int_equal(s->extra_args.n, 0);
	assert_string_equal(s->sbatch, "sbatch");
	assert_string_equal(s->squeue, "squeue");
	assert_string_equal(s->scontrol, "scontrol");
	assert_string_equal(s->scancel, "scancel");
	assert_int_equal(s->time_grace, 300);
	assert_int_equal(s->down_after, 30);
	conf_free(c);
}

static void
slurm_keys_take_their_values(void **state)
{
	struct conf *c = load_ok(SRC "executors:\n"
	                             "  hpc:\n"
	                             "    type: slurm\n"
	                             "    shared_dir: /shared/eph\n"
	                             "    partition: batch\n"
	                             "    account: team\n"
	                             "    qos: low\n"
	                             "    extra_args: ['--constraint=ssd', --exclusive]\n"
	                             "    sbatch: /opt/slurm/bin/sbatch\n"
	                             "    squeue: /opt/slurm/bin/squeue\n"
	                             "    scontrol: /opt/slurm/bin/scontrol\n"
	                             "    scancel: /opt/slurm/bin/scancel\n"
	                             "    time_grace: 1m\n"
	                             "    down_after: 2m\n"
	                             "jobs:\n"
	                             "  a: {schedule: '@daily', run: 'true', executor: hpc}\n");
	const struct conf_slurm *s = conf_executor_slurm(conf_executor_find(c, "hpc"));

	(void)state;
	assert_string_equal(s->partition, "batch");
	assert_string_equal(s->account, "team");
	assert_string_equal(s->qos, "low");
	assert_int_equal(s->extra_args.n, 2);
	assert_string_equal(s->extra_args.v[0], "--constraint=ssd");
	assert_string_equal(s->extra_args.v[1], "--exclusive");
	assert_string_equal(s->sbatch, "/opt/slurm/bin/sbatch");
	assert_string_equal(s->squeue, "/opt/slurm/bin/squeue");
	assert_string_equal(s->scontrol, "/opt/slurm/bin/scontrol");
	assert_string_equal(s->scancel, "/opt/slurm/bin/scancel");
	assert_int_equal(s->time_grace, 60);
	assert_int_equal(s->down_after, 120);
	conf_free(c);
}

static void
slurm_faults_are_reported_each_at_its_place(void **state)
{
	char *e = load_err(SRC "executors:\n"
	                       "  a: {type: slurm}\n"
	                       "  b: {type: slurm, shared_dir: shared/eph}\n"
	                       "  c: {type: slurm, shared_dir: /shared/../eph, partiton: x}\n"
	                       "  d: {type: slurm, shared_dir: /s, extra_args: [exclusive]}\n"
	                       "  e: {type: slurm, shared_dir: /s, extra_args: ['--mem=1G', -J]}\n"
	                       "  f: {type: slurm, shared_dir: /s, extra_args: --exclusive}\n"
	                       "  g: {type: slurm, shared_dir: /s, sbatch: bin/sbatch}\n"
	                       "  h: {type: slurm, shared_dir: /, partition: -x}\n"
	                       "  i: {type: slurm, shared_dir: '/my dir'}\n"
	                       "jobs:\n"
	                       "  j: {schedule: '@daily', run: 'true'}\n");

	(void)state;
	assert_string_equal(
	        e,
	        "3:3: executor \"a\" needs \"shared_dir\": a directory this machine and the nodes both see\n"
	        "4:32: \"shared_dir\" must be absolute, the same path on this machine and the nodes, not \"shared/eph\"\n"
	        "5:32: \"shared_dir\" must be a plain path, without \"//\", \".\" or \"..\": \"/shared/../eph\"\n"
	        "5:48: unknown key \"partiton\" (did you mean \"partition\"?)\n"
	        "6:49: each item of \"extra_args\" is an sbatch option starting with \"-\" (\"--constraint=ssd\"), not \"exclusive\"\n"
	        "7:50: \"extra_args\" may not set --mem: the executor sets it for each run\n"
	        "7:50: \"extra_args\" may not set -J: the executor sets it for each run\n"
	        "8:48: \"extra_args\" must be a list of strings, not a scalar\n"
	        "9:3: \"sbatch\" must be a command's name (looked up in PATH) or absolute, not \"bin/sbatch\"\n"
	        "10:32: \"shared_dir\" must be a directory of its own, not \"/\"\n"
	        "10:46: \"partition\" must not start with \"-\"\n"
	        "11:33: \"shared_dir\" may not hold whitespace or control characters: \"/my dir\"\n");
	free(e);
}

static void
a_job_on_slurm_needs_a_commit_and_no_secrets(void **state)
{
	char *e = load_err(
	        "secrets:\n"
	        "  db: {env: DB}\n"
	        "executors:\n"
	        "  hpc: {type: slurm, shared_dir: /s}\n"
	        "jobs:\n"
	        "  a: {schedule: '@daily', run: 'true', executor: hpc}\n"
	        "  b: {schedule: '@daily', run: 'true', executor: hpc, secrets: {DB: db}}\n");

	(void)state;
	assert_non_null(strstr(
	        e,
	        "6:50: job \"a\" runs on executor \"hpc\" (slurm): its code travels as a commit, so the file needs a \"source:\" section (or run the daemon with --from-repo)\n"));
	assert_non_null(strstr(e, "job \"b\" has secrets, which the slurm executor cannot carry"));
	free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(slurm_keys_are_read_with_their_defaults),
		cmocka_unit_test(slurm_keys_take_their_values),
		cmocka_unit_test(slurm_faults_are_reported_each_at_its_place),
		cmocka_unit_test(a_job_on_slurm_needs_a_commit_and_no_secrets),
	};

	conf_exec_allow_unfinished(true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
