/* tests/unit/test_exec_slurm.c: what the slurm executor reads from Slurm's commands
 * (exec/exec_slurm_int.h): the job id of sbatch --parsable, the fields of scontrol -o show job
 * (a user's free text after them cannot pass for them), the states that are over, the words
 * that say the controller was not reached, and the environment sbatch is given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "exec/exec_slurm_int.h"
#include "util/buf.h"

static char *
job_id_of(const char *text)
{
	struct buf b;
	char *id;

	buf_init(&b, SLURM_CMD_OUT);
	assert_int_equal(buf_append(&b, text, strlen(text)), 0);
	id = slurm_job_id(&b);
	buf_free(&b);
	return id;
}

static void
sbatch_parsable_gives_the_job_id(void **state)
{
	char *id;

	(void)state;
	id = job_id_of("1234\n");
	assert_string_equal(id, "1234");
	free(id);
	id = job_id_of("77;cluster2\n");
	assert_string_equal(id, "77");
	free(id);
	assert_null(job_id_of(""));
	assert_null(job_id_of("sbatch: error: Batch job submission failed\n"));
	assert_null(job_id_of("12x\n"));
	assert_null(job_id_of("123456789012345678901\n")); /* 21 digits: not an id */
}

/* As Slurm 22.05's scontrol -o show job prints it (shortened), with a comment that tries to
 * pass for the state. */
static const char line[] =
        "JobId=42 JobName=eph-0123456789abcdef-7 UserId=root(0) GroupId=root(0) "
        "Priority=1 Account=(null) QOS=normal JobState=OUT_OF_MEMORY Reason=OutOfMemory "
        "Dependency=(null) Requeue=1 RunTime=00:00:03 TimeLimit=00:16:00 Partition=batch "
        "NodeList=ephnode BatchHost=ephnode NumNodes=1 Command=(null) WorkDir=/tmp/a b "
        "Comment=x JobState=COMPLETED StdOut=/shared/eph/runs/7/agent.log\n";

static void
scontrol_fields_are_read_by_their_key(void **state)
{
	char *v;

	(void)state;
	v = slurm_field(line, "JobState");
	assert_string_equal(v, "OUT_OF_MEMORY");
	free(v);
	v = slurm_field(line, "Reason");
	assert_string_equal(v, "OutOfMemory");
	free(v);
	v = slurm_field(line, "BatchHost");
	assert_string_equal(v, "ephnode");
	free(v);
	v = slurm_field(line, "JobId");
	assert_string_equal(v, "42");
	free(v);
	/* a key is a whole word: "State" is not JobState's tail */
	assert_null(slurm_field(line, "State"));
	assert_null(slurm_field(line, "Nothing"));
	assert_null(slurm_field("", "JobState"));
	v = slurm_field("JobState=", "JobState");
	assert_string_equal(v, "");
	free(v);
}

static void
the_states_that_are_over(void **state)
{
	static const char *const over[] = { "COMPLETED", "FAILED",    "CANCELLED",
		                            "TIMEOUT",   "NODE_FAIL", "OUT_OF_MEMORY",
		                            "PREEMPTED", "BOOT_FAIL", "DEADLINE",
		                            NULL };
	static const char *const going[] = { "PENDING",    "RUNNING",   "CONFIGURING",
		                             "COMPLETING", "SUSPENDED", "REQUEUED",
		                             "RESIZING",   "",          NULL };

	(void)state;
	for (size_t i = 0; over[i] != NULL; i++)
		assert_true(slurm_state_over(over[i]));
	for (size_t i = 0; going[i] != NULL; i++)
		assert_false(slurm_state_over(going[i]));
}

static void
unreachable_is_told_from_a_refusal(void **state)
{
	(void)state;
	assert_true(slurm_unreachable(
	        "sbatch: error: Batch job submission failed: Unable to contact slurm controller "
	        "(connect failure)"));
	assert_true(slurm_unreachable("slurm_load_jobs error: Socket timed out on send/recv"));
	assert_false(slurm_unreachable(
	        "sbatch: error: Batch job submission failed: Invalid partition name specified"));
	assert_false(slurm_unreachable("slurm_load_jobs error: Invalid job id specified"));
}

static void
sbatch_gets_a_logins_environment_only(void **state)
{
	char **env;
	bool path = false, conf = false, lc = false, other = false;

	(void)state;
	assert_int_equal(setenv("SLURM_CONF", "/etc/slurm/x.conf", 1), 0);
	assert_int_equal(setenv("LC_TIME", "C", 1), 0);
	assert_int_equal(setenv("EPH_TEST_SECRET", "s3cr3t", 1), 0);
	assert_int_equal(setenv("PATHX", "no", 1), 0);
	env = slurm_sbatch_env();
	for (size_t i = 0; env[i] != NULL; i++) {
		path |= strncmp(env[i], "PATH=", 5) == 0;
		conf |= strcmp(env[i], "SLURM_CONF=/etc/slurm/x.conf") == 0;
		lc |= strcmp(env[i], "LC_TIME=C") == 0;
		other |= strncmp(env[i], "EPH_TEST_SECRET=", 16) == 0 ||
		         strncmp(env[i], "PATHX=", 6) == 0;
	}
	free(env);
	assert_true(path || getenv("PATH") == NULL);
	assert_true(conf);
	assert_true(lc);
	assert_false(other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sbatch_parsable_gives_the_job_id),
		cmocka_unit_test(scontrol_fields_are_read_by_their_key),
		cmocka_unit_test(the_states_that_are_over),
		cmocka_unit_test(unreachable_is_told_from_a_refusal),
		cmocka_unit_test(sbatch_gets_a_logins_environment_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
