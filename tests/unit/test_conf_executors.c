/* tests/unit/test_conf_executors.c: the executors mapping (a name to a type and the type's
 * keys) and a job's "executor:", which must name one of them. */
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
	assert_non_null(c);
	diag_free(&d);
	return c;
}

/* Loads TEXT, which must fail; returns every problem as "LINE:COL: msg" lines. */
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
local_is_built_in_and_jobs_point_at_it(void **state)
{
	struct conf *c = load_ok("jobs:\n"
	                         "  a: {schedule: '@daily', run: 'true'}\n"
	                         "  b: {schedule: '@daily', run: 'true', executor: local}\n");

	(void)state;
	assert_int_equal(c->nexecutors, 1);
	assert_string_equal(c->executors[0].name, "local");
	assert_int_equal(c->executors[0].type, CONF_EXEC_LOCAL);
	assert_ptr_equal(c->executors[0].keys, &c->local);
	assert_int_equal(c->executors[0].line, 0);
	for (size_t i = 0; i < c->njobs; i++) {
		assert_int_equal(c->jobs[i].executor_ix, 0);
		/* the executor's own name, not a copy */
		assert_ptr_equal(c->jobs[i].executor, c->executors[0].name);
	}
	assert_ptr_equal(conf_executor_find(c, "local"), &c->executors[0]);
	assert_null(conf_executor_find(c, "pool"));
	conf_free(c);
}

static void
local_takes_its_keys_and_an_optional_type(void **state)
{
	struct conf *c = load_ok("executors:\n"
	                         "  local:\n"
	                         "    type: local\n"
	                         "    memory_budget: 3GiB\n"
	                         "jobs:\n"
	                         "  a: {schedule: '@daily', run: 'true', memory: 2GiB}\n");

	(void)state;
	assert_int_equal(c->local.memory_budget, UINT64_C(3) << 30);
	assert_int_equal(c->executors[0].line, 2);
	assert_int_equal(c->executors[0].col, 3);
	conf_free(c);
}

static void
types_not_built_yet_are_refused_with_their_position(void **state)
{
	char *e = load_err("executors:\n"
	                   "  pool:\n"
	                   "    type: ssh\n"
	                   "    hosts: [eph@10.0.0.5]\n"
	                   "  cloud: {type: digitalocean}\n"
	                   "  hpc: {type: slurm}\n"
	                   "jobs:\n"
	                   "  a: {schedule: '@daily', run: 'true', executor: pool}\n");

	(void)state;
	/* the type's keys are not judged, and the job naming it is not reported again */
	assert_string_equal(
	        e, "3:11: executor type \"ssh\" is not available yet in this version\n"
	           "5:17: executor type \"digitalocean\" is not available yet in this version\n"
	           "6:15: executor type \"slurm\" is not available yet in this version\n");
	free(e);
}

static void
a_named_executor_needs_a_type_other_than_local(void **state)
{
	char *e = load_err("executors:\n"
	                   "  droplet: {size: big}\n"
	                   "  mine: {type: local}\n"
	                   "  local: {type: ssh}\n"
	                   "jobs:\n"
	                   "  a: {schedule: '@daily', run: 'true'}\n");

	(void)state;
	assert_string_equal(
	        e, "2:3: executor \"droplet\" needs a \"type\": ssh, digitalocean or slurm\n"
	           "3:16: only the executor \"local\" is of type \"local\": it is this machine\n"
	           "4:17: executor \"local\" is this machine, of type \"local\": give the ssh "
	           "executor another name\n");
	free(e);
}

static void
a_job_must_name_a_defined_executor(void **state)
{
	char *e = load_err("defaults: {executor: lokal}\n"
	                   "jobs:\n"
	                   "  a: {schedule: '@daily', run: 'true', executor: droplet}\n"
	                   "  b: {schedule: '@daily', run: 'true'}\n");

	(void)state;
	assert_string_equal(e, "1:22: unknown executor \"lokal\" (did you mean \"local\"?)\n"
	                       "3:50: unknown executor \"droplet\" (the executors are: local)\n");
	free(e);
}

static void
type_names_match_the_enum(void **state)
{
	(void)state;
	assert_string_equal(conf_exec_type_name(CONF_EXEC_LOCAL), "local");
	assert_string_equal(conf_exec_type_name(CONF_EXEC_SSH), "ssh");
	assert_string_equal(conf_exec_type_name(CONF_EXEC_DIGITALOCEAN), "digitalocean");
	assert_string_equal(conf_exec_type_name(CONF_EXEC_SLURM), "slurm");
	assert_string_equal(conf_exec_type_name((enum conf_exec_type)99), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(local_is_built_in_and_jobs_point_at_it),
		cmocka_unit_test(local_takes_its_keys_and_an_optional_type),
		cmocka_unit_test(types_not_built_yet_are_refused_with_their_position),
		cmocka_unit_test(a_named_executor_needs_a_type_other_than_local),
		cmocka_unit_test(a_job_must_name_a_defined_executor),
		cmocka_unit_test(type_names_match_the_enum),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
