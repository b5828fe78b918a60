/* tests/unit/test_rundir.c: spec.json, result.json, agent.pid and events.jsonl round trips. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rundir/rundir.h"
#include "tmpfx.h"
#include "util/attr.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/xalloc.h"

static void
spec_round_trips(void **state)
{
	const char *dir = *state;
	char *argv[] = { (char *)"python", (char *)"train.py", NULL };
	struct rundir_env env[] = { { (char *)"LOG_LEVEL", (char *)"info" } };
	struct rundir_spec s = {
		.run_id = 42,
		.job = (char *)"train-model",
		.attempt = 2,
		.trigger = (char *)"manual",
		.scheduled_at = 1764007200,
		.not_before = 1764007200.25,
		.argv = argv,
		.env = env,
		.nenv = 1,
		.cwd = (char *)"/home/me",
		.memory = UINT64_C(2) << 30,
		.timeout = 7200,
		.kill_grace = 10,
		.profile_room = UINT64_C(64) << 20,
		.commit = (char *)"abc",
		.enforce = RUNDIR_ENFORCE_SAMPLED,
	};
	struct rundir_spec r;
	struct diag d;

	diag_init(&d);
	assert_int_equal(rundir_spec_write(dir, &s), 0);
	assert_int_equal(rundir_spec_read(dir, &r, &d), 0);
	assert_int_equal(diag_nerrors(&d), 0);
	assert_int_equal(r.run_id, 42);
	assert_string_equal(r.job, "train-model");
	assert_int_equal(r.attempt, 2);
	assert_string_equal(r.trigger, "manual");
	assert_int_equal(r.scheduled_at, 1764007200);
	assert_true(r.not_before == 1764007200.25);
	assert_string_equal(r.argv[0], "python");
	assert_string_equal(r.argv[1], "train.py");
	assert_null(r.argv[2]);
	assert_null(r.shell);
	assert_int_equal(r.nenv, 1);
	assert_string_equal(r.env[0].name, "LOG_LEVEL");
	assert_string_equal(r.env[0].value, "info");
	assert_string_equal(r.cwd, "/home/me");
	assert_int_equal(r.memory, UINT64_C(2) << 30);
	assert_int_equal(r.timeout, 7200);
	assert_int_equal(r.kill_grace, 10);
	assert_int_equal(r.profile_room, UINT64_C(64) << 20);
	assert_string_equal(r.commit, "abc");
	assert_int_equal(r.enforce, RUNDIR_ENFORCE_SAMPLED);
	rundir_spec_free(&r);
	diag_free(&d);
}

static void
bad_spec_reports_every_problem(void **state)
{
	const char *text = "{\"version\":1,\"run_id\":-1,\"argv\":[1],\"shell\":\"x\","
	                   "\"memory\":\"1G\",\"enforce\":\"magic\",\"env\":{\"A=B\":\"c\"}}";
	struct rundir_spec s;
	struct diag d;

	(void)state;
	diag_init(&d);
	assert_int_equal(rundir_spec_parse(text, strlen(text), "spec.json", &s, &d), -EINVAL);
	/* run_id, job, argv, exactly one, env, memory, enforce */
	assert_int_equal(diag_nerrors(&d), 7);
	assert_null(s.job);
	diag_free(&d);
	diag_init(&d);
	assert_int_equal(rundir_spec_parse("{\"version\": 1,", 14, "spec.json", &s, &d), -EINVAL);
	assert_int_equal(diag_nerrors(&d), 1);
	assert_int_equal(d.items[0].line, 1);
	diag_free(&d);
}

static void
not_before_is_optional_and_checked(void **state)
{
	const char *none = "{\"version\":1,\"run_id\":1,\"job\":\"j\",\"argv\":[\"true\"]}";
	const char *neg = "{\"version\":1,\"run_id\":1,\"job\":\"j\",\"argv\":[\"true\"],"
	                  "\"not_before\":-1}";
	const char *str = "{\"version\":1,\"run_id\":1,\"job\":\"j\",\"argv\":[\"true\"],"
	                  "\"not_before\":\"soon\"}";
	const char *num = "{\"version\":1,\"run_id\":1,\"job\":\"j\",\"argv\":[\"true\"],"
	                  "\"not_before\":1764007200}";
	struct rundir_spec s;
	struct diag d;

	(void)state;
	diag_init(&d);
	assert_int_equal(rundir_spec_parse(none, strlen(none), "spec.json", &s, &d), 0);
	assert_true(s.not_before == 0);
	rundir_spec_free(&s);
	/* an integer is a number of seconds too */
	assert_int_equal(rundir_spec_parse(num, strlen(num), "spec.json", &s, &d), 0);
	assert_true(s.not_before == 1764007200.0);
	rundir_spec_free(&s);
	assert_int_equal(diag_nerrors(&d), 0);
	assert_int_equal(rundir_spec_parse(neg, strlen(neg), "spec.json", &s, &d), -EINVAL);
	assert_int_equal(diag_nerrors(&d), 1);
	assert_int_equal(rundir_spec_parse(str, strlen(str), "spec.json", &s, &d), -EINVAL);
	assert_int_equal(diag_nerrors(&d), 2);
	diag_free(&d);
}

/* SPEC's text with FIELD (a JSON member, e.g. "\"scheduled_at\":1") added; parses it and
 * returns what rundir_spec_parse returned (the spec freed). */
static int
spec_with(const char *field)
{
	char *text = xasprintf("{\"version\":1,\"run_id\":1,\"job\":\"j\",\"argv\":[\"true\"],%s}",
	                       field);
	struct rundir_spec s;
	struct diag d;
	int rc;

	diag_init(&d);
	rc = rundir_spec_parse(text, strlen(text), "spec.json", &s, &d);
	assert_int_equal(diag_nerrors(&d) > 0, rc < 0);
	rundir_spec_free(&s);
	diag_free(&d);
	free(text);
	return rc;
}

static void
spec_instants_stop_at_year_9999(void **state)
{
	(void)state;
	assert_int_equal(spec_with("\"scheduled_at\":253402300799"), 0);
	assert_int_equal(spec_with("\"scheduled_at\":253402300800"), -EINVAL);
	assert_int_equal(spec_with("\"scheduled_at\":9223372036854775807"), -EINVAL);
	assert_int_equal(spec_with("\"scheduled_at\":-1"), -EINVAL);
	assert_int_equal(spec_with("\"scheduled_at\":1.5"), -EINVAL);
	assert_int_equal(spec_with("\"not_before\":253402300798.5"), 0);
	assert_int_equal(spec_with("\"not_before\":253402300799.5"), -EINVAL);
	assert_int_equal(spec_with("\"not_before\":9223372036854775807"), -EINVAL);
	assert_int_equal(spec_with("\"not_before\":1e300"), -EINVAL);
	assert_int_equal(spec_with("\"not_before\":-0.001"), -EINVAL);
	/* a real past the double's range is refused by the JSON parser itself */
	assert_int_equal(spec_with("\"not_before\":1e400"), -EINVAL);
}

/* A result.json with FIELD added; returns what rundir_result_parse returned. */
static int
result_with(const char *field)
{
	char *text = xasprintf("{\"version\":1,\"outcome\":\"succeeded\",%s}", field);
	struct rundir_result r;
	struct diag d;
	int rc;

	diag_init(&d);
	rc = rundir_result_parse(text, strlen(text), "result.json", &r, &d);
	assert_int_equal(diag_nerrors(&d) > 0, rc < 0);
	rundir_result_free(&r);
	diag_free(&d);
	free(text);
	return rc;
}

static void
result_times_are_checked(void **state)
{
	static const char *const instants[] = { "started_at", "ended_at" };
	static const char *const durations[] = { "wall_seconds", "cpu_user_seconds",
		                                 "cpu_system_seconds" };
	char *f;

	(void)state;
	for (size_t i = 0; i < EPH_ARRAY_LEN(instants); i++) {
		f = xasprintf("\"%s\":1764007200.125", instants[i]);
		assert_int_equal(result_with(f), 0);
		free(f);
		f = xasprintf("\"%s\":-1", instants[i]);
		assert_int_equal(result_with(f), -EINVAL);
		free(f);
		f = xasprintf("\"%s\":9223372036854775807", instants[i]);
		assert_int_equal(result_with(f), -EINVAL);
		free(f);
		f = xasprintf("\"%s\":253402300800", instants[i]);
		assert_int_equal(result_with(f), -EINVAL);
		free(f);
	}
	for (size_t i = 0; i < EPH_ARRAY_LEN(durations); i++) {
		f = xasprintf("\"%s\":0.5", durations[i]);
		assert_int_equal(result_with(f), 0);
		free(f);
		f = xasprintf("\"%s\":-0.5", durations[i]);
		assert_int_equal(result_with(f), -EINVAL);
		free(f);
		f = xasprintf("\"%s\":1e300", durations[i]);
		assert_int_equal(result_with(f), -EINVAL);
		free(f);
	}
	assert_int_equal(result_with("\"phases\":{\"exec\":1.5,\"source\":0}"), 0);
	assert_int_equal(result_with("\"phases\":{\"exec\":-2}"), -EINVAL);
	assert_int_equal(result_with("\"phases\":{\"runtime\":1e300}"), -EINVAL);
}

static void
result_never_holds_a_negative_duration(void **state)
{
	const char *dir = *state;
	/* the real-time clock stepped back during the run */
	struct rundir_result w = {
		.outcome = RUNDIR_SUCCEEDED,
		.started_at = 1764007200.5,
		.ended_at = 1764007199.5,
		.wall_seconds = -1,
		.exec_seconds = -1,
		.source_seconds = -1,
		.runtime_seconds = -1,
	};
	struct rundir_result r;
	struct diag d;

	diag_init(&d);
	assert_int_equal(rundir_result_write(dir, &w), 0);
	assert_int_equal(rundir_result_read(dir, &r, &d), 0);
	assert_true(r.wall_seconds == 0);
	rundir_result_free(&r);
	diag_free(&d);
}

static void
iso8601_prints_four_digit_years_or_nothing(void **state)
{
	char out[32];

	(void)state;
	assert_int_equal(rundir_iso8601(1764007200, out, sizeof(out)), 0);
	assert_string_equal(out, "2025-11-24T18:00:00Z");
	assert_int_equal(rundir_iso8601(RUNDIR_TIME_MAX, out, sizeof(out)), 0);
	assert_string_equal(out, "9999-12-31T23:59:59Z");
	assert_int_equal(rundir_iso8601(0, out, sizeof(out)), 0);
	assert_string_equal(out, "1970-01-01T00:00:00Z");
	assert_int_equal(rundir_iso8601(RUNDIR_TIME_MAX + 1, out, sizeof(out)), -ERANGE);
	assert_string_equal(out, "");
	assert_int_equal(rundir_iso8601(INT64_MAX, out, sizeof(out)), -ERANGE);
	assert_string_equal(out, "");
	assert_int_equal(rundir_iso8601(-1, out, sizeof(out)), -ERANGE);
	assert_string_equal(out, "");
}

static void
missing_spec_is_enoent(void **state)
{
	struct rundir_spec s;
	struct diag d;

	diag_init(&d);
	assert_int_equal(rundir_spec_read(*state, &s, &d), -ENOENT);
	assert_int_equal(diag_nerrors(&d), 1);
	diag_free(&d);
}

static void
result_round_trips_and_is_written_atomically(void **state)
{
	const char *dir = *state;
	struct rundir_result w = {
		.outcome = RUNDIR_OOM,
		.reason = (char *)"killed by the memory limit (cgroup1 oom_kill 1)",
		.exit_code = -1,
		.signal = 9,
		.memory_limit = 209715200,
		.peak_bytes = 209715200,
		.peak_method = (char *)"cgroup1 memory.max_usage_in_bytes",
		.enforced = (char *)"cgroup1",
		.maxrss_bytes = 1000,
		.started_at = 1764007200.012,
		.ended_at = 1764007241.2,
		.wall_seconds = 41.188,
		.cpu_user_seconds = 40.1,
		.cpu_system_seconds = 0.9,
		.exec_seconds = 41.187,
		.source_seconds = -1,
		.runtime_seconds = -1,
	};
	struct rundir_result r;
	struct diag d;
	char *tmp = xasprintf("%s/result.json.tmp", dir);

	diag_init(&d);
	assert_int_equal(rundir_result_read(dir, &r, &d), -ENOENT);
	assert_int_equal(rundir_result_write(dir, &w), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(rundir_result_read(dir, &r, &d), 0);
	assert_int_equal(r.outcome, RUNDIR_OOM);
	assert_string_equal(r.reason, w.reason);
	assert_int_equal(r.exit_code, -1);
	assert_int_equal(r.signal, 9);
	assert_int_equal(r.peak_bytes, 209715200);
	assert_string_equal(r.peak_method, w.peak_method);
	assert_string_equal(r.enforced, "cgroup1");
	assert_int_equal(r.maxrss_bytes, 1000);
	assert_true(r.started_at == 1764007200.012);
	assert_true(r.wall_seconds == 41.188);
	assert_true(r.exec_seconds == 41.187);
	rundir_result_free(&r);
	diag_free(&d);
	free(tmp);
}

static void
spec_source_and_runtime_round_trip(void **state)
{
	const char *dir = *state;
	char *argv[] = { (char *)"python", (char *)"train.py", NULL };
	struct rundir_spec s = {
		.run_id = 7,
		.job = (char *)"j",
		.argv = argv,
		.state_dir = (char *)"/var/lib/eph",
		.source = { .mirror = (char *)"/var/lib/eph/mirrors/k.git",
		            .commit = (char *)"3f786850e387550fdab836ed7e6dc881de23001b",
		            .repo = (char *)"https://example.com/r.git",
		            .branch = (char *)"main",
		            .keep_worktrees = 3 },
		.runtime = { .interpreter = (char *)"python3.11",
		             .requirements = (char *)"requirements.txt" },
		.workdir = (char *)"jobs/nightly",
	};
	struct rundir_spec r;
	struct diag d;

	diag_init(&d);
	assert_int_equal(rundir_spec_write(dir, &s), 0);
	assert_int_equal(rundir_spec_read(dir, &r, &d), 0);
	assert_string_equal(r.state_dir, "/var/lib/eph");
	assert_string_equal(r.source.mirror, s.source.mirror);
	assert_string_equal(r.source.commit, s.source.commit);
	assert_string_equal(r.source.repo, s.source.repo);
	assert_string_equal(r.source.branch, "main");
	assert_int_equal(r.source.keep_worktrees, 3);
	assert_string_equal(r.runtime.interpreter, "python3.11");
	assert_string_equal(r.runtime.requirements, "requirements.txt");
	assert_string_equal(r.workdir, "jobs/nightly");
	rundir_spec_free(&r);
	diag_free(&d);
}

static void
spec_without_source_or_runtime_runs_in_place(void **state)
{
	const char *text = "{\"version\":1,\"run_id\":1,\"job\":\"j\",\"shell\":\"true\","
	                   "\"source\":null,\"runtime\":{\"requirements\":\"r.txt\"},"
	                   "\"state_dir\":\"/s\"}";
	struct rundir_spec s;
	struct diag d;

	(void)state;
	diag_init(&d);
	assert_int_equal(rundir_spec_parse(text, strlen(text), "spec.json", &s, &d), 0);
	assert_null(s.source.mirror);
	assert_null(s.workdir);
	assert_string_equal(s.runtime.interpreter, "python3"); /* the default */
	assert_string_equal(s.runtime.requirements, "r.txt");
	assert_null(s.runtime.wheels); /* a spec of before: pip uses its index */
	rundir_spec_free(&s);
	diag_free(&d);
}

static void
spec_runtime_wheels_round_trip_and_must_be_absolute(void **state)
{
	const char *dir = *state;
	const char *rel = "{\"version\":1,\"run_id\":1,\"job\":\"j\",\"shell\":\"true\","
	                  "\"runtime\":{\"requirements\":\"r.txt\",\"wheels\":\"w\"},"
	                  "\"state_dir\":\"/s\"}";
	struct rundir_spec s = {
		.run_id = 8,
		.job = (char *)"j",
		.shell = (char *)"true",
		.state_dir = (char *)"/var/lib/eph",
		.runtime = { .interpreter = (char *)"python3",
		             .requirements = (char *)"requirements.txt",
		             .wheels = (char *)"/home/eph/.ephemeron/wheels/0123" },
	};
	struct rundir_spec r;
	struct diag d;
	char *msg;

	diag_init(&d);
	assert_int_equal(rundir_spec_write(dir, &s), 0);
	assert_int_equal(rundir_spec_read(dir, &r, &d), 0);
	assert_string_equal(r.runtime.wheels, "/home/eph/.ephemeron/wheels/0123");
	rundir_spec_free(&r);
	assert_int_equal(rundir_spec_parse(rel, strlen(rel), "spec.json", &r, &d), -EINVAL);
	msg = diag_format(&d, 0);
	assert_non_null(strstr(msg, "\"wheels\" must be an absolute path"));
	free(msg);
	diag_free(&d);
}

static void
bad_source_and_runtime_are_reported(void **state)
{
	const char *text = "{\"version\":1,\"run_id\":1,\"job\":\"j\",\"shell\":\"true\","
	                   "\"source\":{\"mirror\":\"rel.git\"},\"runtime\":{},"
	                   "\"workdir\":\"a/../../b\"}";
	struct rundir_spec s;
	struct diag d;
	bool commit = false, mirror = false, reqs = false, wd = false, state_dir = false;

	(void)state;
	diag_init(&d);
	assert_int_equal(rundir_spec_parse(text, strlen(text), "spec.json", &s, &d), -EINVAL);
	for (size_t i = 0; i < diag_nerrors(&d); i++) {
		const char *m = d.items[i].msg;

		commit |= strstr(m, "\"commit\": missing") != NULL;
		mirror |= strstr(m, "\"mirror\" must be an absolute path") != NULL;
		reqs |= strstr(m, "\"requirements\": missing") != NULL;
		wd |= strstr(m, "\"workdir\"") != NULL;
		state_dir |= strstr(m, "\"state_dir\": required") != NULL;
	}
	assert_true(commit && mirror && reqs && wd && state_dir);
	assert_null(s.source.mirror);
	diag_free(&d);
}

static void
result_failure_and_phases_round_trip(void **state)
{
	const char *dir = *state;
	struct rundir_result w = {
		.outcome = RUNDIR_FAILED,
		.reason = (char *)"runtime: pip install failed (exit code 1)",
		.exit_code = -1,
		.source_seconds = 0.25,
		.runtime_seconds = 40.5,
		.exec_seconds = -1,
		.failure = RUNDIR_FAILURE_RUNTIME,
	};
	struct rundir_result r;
	struct diag d;

	diag_init(&d);
	assert_int_equal(rundir_result_write(dir, &w), 0);
	assert_int_equal(rundir_result_read(dir, &r, &d), 0);
	assert_int_equal(r.failure, RUNDIR_FAILURE_RUNTIME);
	assert_true(r.source_seconds == 0.25);
	assert_true(r.runtime_seconds == 40.5);
	assert_true(r.exec_seconds < 0);
	rundir_result_free(&r);
	/* a phase that did not run is absent, and reads back as < 0 */
	w.failure = RUNDIR_FAILURE_NONE;
	w.source_seconds = -1;
	assert_int_equal(rundir_result_write(dir, &w), 0);
	assert_int_equal(rundir_result_read(dir, &r, &d), 0);
	assert_int_equal(r.failure, RUNDIR_FAILURE_NONE);
	assert_true(r.source_seconds < 0);
	rundir_result_free(&r);
	assert_string_equal(rundir_failure_name(RUNDIR_FAILURE_SOURCE), "source");
	assert_null(rundir_failure_name(RUNDIR_FAILURE_NONE));
	diag_free(&d);
}

static void
outcome_names_parse_back(void **state)
{
	enum rundir_outcome o;

	(void)state;
	for (int i = RUNDIR_SUCCEEDED; i <= RUNDIR_CANCELLED; i++) {
		assert_int_equal(rundir_outcome_parse(rundir_outcome_name(i), &o), 0);
		assert_int_equal(o, i);
	}
	assert_int_equal(rundir_outcome_parse("lost", &o), -EINVAL);
}

static void
failure_names_parse_back_and_prefix_reasons(void **state)
{
	static const char *const names[] = {
		"source", "runtime", "host key", "provision", "secrets", "unplaced", "budget",
	};
	enum rundir_failure f;
	char *reason;

	(void)state;
	assert_null(rundir_failure_name(RUNDIR_FAILURE_NONE));
	assert_null(rundir_failure_name(RUNDIR_FAILURE_LAST + 1));
	/* value -> name -> value, for every value */
	for (int i = RUNDIR_FAILURE_NONE + 1; i <= RUNDIR_FAILURE_LAST; i++) {
		assert_non_null(rundir_failure_name(i));
		assert_int_equal(rundir_failure_parse(rundir_failure_name(i), &f), 0);
		assert_int_equal(f, i);
		reason = rundir_failure_reason(i, "what happened: in detail");
		assert_int_equal(rundir_failure_of_reason(reason), i);
		free(reason);
	}
	/* name -> value -> name, for the names the issue settles */
	assert_int_equal(EPH_ARRAY_LEN(names), RUNDIR_FAILURE_LAST);
	for (size_t i = 0; i < EPH_ARRAY_LEN(names); i++) {
		assert_int_equal(rundir_failure_parse(names[i], &f), 0);
		assert_string_equal(rundir_failure_name(f), names[i]);
	}
	reason = rundir_failure_reason(RUNDIR_FAILURE_HOST_KEY, "SHA256:abc changed");
	assert_string_equal(reason, "host key: SHA256:abc changed");
	free(reason);
	assert_int_equal(rundir_failure_parse("host", &f), -EINVAL);
	assert_int_equal(rundir_failure_parse("Source", &f), -EINVAL);
	assert_int_equal(rundir_failure_parse("", &f), -EINVAL);
	assert_int_equal(rundir_failure_of_reason(NULL), RUNDIR_FAILURE_NONE);
	assert_int_equal(rundir_failure_of_reason("exit code 3"), RUNDIR_FAILURE_NONE);
	assert_int_equal(rundir_failure_of_reason("source:no space"), RUNDIR_FAILURE_NONE);
	assert_int_equal(rundir_failure_of_reason("host: key"), RUNDIR_FAILURE_NONE);
	assert_int_equal(rundir_failure_of_reason("runtimes: x"), RUNDIR_FAILURE_NONE);
	assert_int_equal(rundir_failure_of_reason("unplaced: waited 1h"), RUNDIR_FAILURE_UNPLACED);
}

static void
failure_in_result_json_round_trips(void **state)
{
	static const char bad[] = "{\"version\":1,\"outcome\":\"failed\",\"failure\":\"kernel\"}";
	struct rundir_result r, back;
	struct diag d;

	for (int i = RUNDIR_FAILURE_NONE; i <= RUNDIR_FAILURE_LAST; i++) {
		memset(&r, 0, sizeof(r));
		r.version = 1;
		r.outcome = RUNDIR_FAILED;
		r.exit_code = -1;
		r.exec_seconds = r.source_seconds = r.runtime_seconds = -1;
		r.failure = i;
		r.reason = i > 0 ? rundir_failure_reason(i, "no") : NULL;
		assert_int_equal(rundir_result_write(*state, &r), 0);
		diag_init(&d);
		assert_int_equal(rundir_result_read(*state, &back, &d), 0);
		assert_int_equal(back.failure, i);
		assert_int_equal(rundir_failure_of_reason(back.reason), i);
		rundir_result_free(&back);
		diag_free(&d);
		free(r.reason);
	}
	diag_init(&d);
	assert_int_equal(rundir_result_parse(bad, strlen(bad), "result.json", &back, &d), -EINVAL);
	assert_non_null(strstr(d.items[0].msg, "\"failure\": unknown failure"));
	rundir_result_free(&back);
	diag_free(&d);
}

/* The "version" of DIR/spec.json as written. */
static json_int_t
written_version(const char *dir, const char *file)
{
	char *path = xasprintf("%s/%s", dir, file);
	json_t *o = json_load_file(path, 0, NULL);
	json_int_t v;

	free(path);
	assert_non_null(o);
	v = json_integer_value(json_object_get(o, "version"));
	json_decref(o);
	return v;
}

static void
spec_archive_and_clock_offset_round_trip_as_version_2(void **state)
{
	const char *dir = *state;
	struct rundir_spec s = {
		.run_id = 9,
		.job = (char *)"j",
		.shell = (char *)"true",
		.state_dir = (char *)"/root/.ephemeron/0123abcd",
		.clock_offset = -3600.25,
		.source = { .archive = (char *)"/root/.ephemeron/0123abcd/archives/c.tar",
		            .commit = (char *)"0123456789abcdef0123456789abcdef01234567",
		            .keep_worktrees = 3 },
	};
	struct rundir_spec r;
	struct diag d;

	diag_init(&d);
	assert_int_equal(rundir_spec_write(dir, &s), 0);
	assert_int_equal(written_version(dir, RUNDIR_SPEC), 2);
	assert_int_equal(rundir_spec_read(dir, &r, &d), 0);
	assert_int_equal(r.version, 2);
	assert_null(r.source.mirror);
	assert_string_equal(r.source.archive, s.source.archive);
	assert_string_equal(r.source.commit, s.source.commit);
	assert_int_equal(r.source.keep_worktrees, 3);
	assert_true(r.clock_offset == -3600.25);
	rundir_spec_free(&r);
	/* without either, the spec stays a version-1 one, which older agents read */
	s.clock_offset = 0;
	s.source = (struct rundir_source){ .mirror = (char *)"/var/lib/eph/mirrors/k.git",
		                           .commit = (char *)"abc" };
	assert_int_equal(rundir_spec_write(dir, &s), 0);
	assert_int_equal(written_version(dir, RUNDIR_SPEC), 1);
	assert_int_equal(rundir_spec_read(dir, &r, &d), 0);
	assert_int_equal(r.version, 1);
	assert_string_equal(r.source.mirror, "/var/lib/eph/mirrors/k.git");
	assert_null(r.source.archive);
	assert_true(r.clock_offset == 0);
	rundir_spec_free(&r);
	assert_int_equal(diag_nerrors(&d), 0);
	diag_free(&d);
}

/* Parses spec.json TEXT: its return code, and its first message into *MSG (caller frees; NULL
 * when none). */
static int
parse_spec_msg(const char *text, struct rundir_spec *s, char **msg)
{
	struct diag d;
	int rc;

	diag_init(&d);
	rc = rundir_spec_parse(text, strlen(text), "spec.json", s, &d);
	*msg = diag_nerrors(&d) > 0 ? xstrdup(d.items[0].msg) : NULL;
	diag_free(&d);
	return rc;
}

#define SOURCE_FMT                                                                                 \
	"{\"version\":%d,\"run_id\":1,\"job\":\"j\",\"shell\":\"true\",\"state_dir\":\"/s\","      \
	"\"source\":{\"commit\":\"abc\",%s}}"

static void
spec_source_takes_exactly_one_of_mirror_and_archive(void **state)
{
	static const char *const bad[][2] = {
		{ "\"mirror\":\"/m.git\",\"archive\":\"/a.tar\"", "exactly one of" },
		{ "\"keep_worktrees\":2", "exactly one of" },
		{ "\"archive\":\"a.tar\"", "\"archive\" must be an absolute path" },
	};
	struct rundir_spec s;
	char *text, *msg;

	(void)state;
	for (size_t i = 0; i < EPH_ARRAY_LEN(bad); i++) {
		text = xasprintf(SOURCE_FMT, 2, bad[i][0]);
		assert_int_equal(parse_spec_msg(text, &s, &msg), -EINVAL);
		assert_non_null(msg);
		assert_non_null(strstr(msg, bad[i][1]));
		free(msg);
		free(text);
	}
	text = xasprintf(SOURCE_FMT, 2, "\"archive\":\"/s/archives/abc.tar\"");
	assert_int_equal(parse_spec_msg(text, &s, &msg), 0);
	assert_null(msg);
	assert_string_equal(s.source.archive, "/s/archives/abc.tar");
	assert_null(s.source.mirror);
	rundir_spec_free(&s);
	free(text);
	/* version 1 knows no archive: its mirror is required, as it always was */
	text = xasprintf(SOURCE_FMT, 1, "\"archive\":\"/s/archives/abc.tar\"");
	assert_int_equal(parse_spec_msg(text, &s, &msg), -EINVAL);
	assert_non_null(strstr(msg, "\"mirror\": missing"));
	free(msg);
	free(text);
}

static void
spec_newer_than_the_agent_is_refused(void **state)
{
	char *text = xasprintf("{\"version\":%d,\"run_id\":1,\"job\":\"j\",\"shell\":\"true\","
	                       "\"future\":{\"x\":1},\"source\":{\"new\":true}}",
	                       RUNDIR_VERSION + 1);
	char *want = xasprintf("spec.json version %d is newer than this agent (%d)",
	                       RUNDIR_VERSION + 1, RUNDIR_VERSION);
	struct rundir_spec s;
	struct diag d;

	(void)state;
	diag_init(&d);
	assert_int_equal(rundir_spec_parse(text, strlen(text), "spec.json", &s, &d), -EINVAL);
	/* that one message, not the complaints about fields it may mean differently */
	assert_int_equal(diag_nerrors(&d), 1);
	assert_string_equal(d.items[0].msg, want);
	assert_null(s.job);
	diag_free(&d);
	free(want);
	free(text);
	diag_init(&d);
	assert_int_equal(rundir_spec_parse("{\"version\":0}", 13, "spec.json", &s, &d), -EINVAL);
	assert_non_null(strstr(d.items[0].msg, "\"version\": out of range"));
	diag_free(&d);
}

#define OFFSET_FMT "{\"version\":%d,\"run_id\":1,\"job\":\"j\",\"shell\":\"true\"%s}"

static void
spec_clock_offset_is_a_number_of_version_2(void **state)
{
	struct rundir_spec s;
	char *text, *msg;

	(void)state;
	text = xasprintf(OFFSET_FMT, 2, "");
	assert_int_equal(parse_spec_msg(text, &s, &msg), 0);
	assert_true(s.clock_offset == 0); /* the default: the same clock */
	rundir_spec_free(&s);
	free(text);
	text = xasprintf(OFFSET_FMT, 2, ",\"clock_offset\":3600.5");
	assert_int_equal(parse_spec_msg(text, &s, &msg), 0);
	assert_true(s.clock_offset == 3600.5);
	rundir_spec_free(&s);
	free(text);
	text = xasprintf(OFFSET_FMT, 2, ",\"clock_offset\":-7");
	assert_int_equal(parse_spec_msg(text, &s, &msg), 0);
	assert_true(s.clock_offset == -7);
	rundir_spec_free(&s);
	free(text);
	text = xasprintf(OFFSET_FMT, 2, ",\"clock_offset\":\"1h\"");
	assert_int_equal(parse_spec_msg(text, &s, &msg), -EINVAL);
	assert_non_null(strstr(msg, "\"clock_offset\": must be a number"));
	free(msg);
	free(text);
	text = xasprintf(OFFSET_FMT, 2, ",\"clock_offset\":1e300");
	assert_int_equal(parse_spec_msg(text, &s, &msg), -EINVAL);
	assert_non_null(strstr(msg, "\"clock_offset\": out of range"));
	free(msg);
	free(text);
	/* a version-1 spec reads as it always did: the field is not one of its own */
	text = xasprintf(OFFSET_FMT, 1, ",\"clock_offset\":3600");
	assert_int_equal(parse_spec_msg(text, &s, &msg), 0);
	assert_true(s.clock_offset == 0);
	rundir_spec_free(&s);
	free(text);
}

static void
result_of_any_version_is_read_as_far_as_understood(void **state)
{
	static const char *const texts[] = {
		"{\"version\":1,\"outcome\":\"oom\",\"failure\":null,\"exit_code\":null}",
		"{\"version\":2,\"outcome\":\"oom\",\"new_field\":[1,2]}",
		"{\"version\":9,\"outcome\":\"oom\",\"failure\":null,\"phases\":{\"ship\":1.5},"
		"\"sandbox\":{\"kind\":\"x\"}}",
	};
	static const char newer[] = "{\"version\":9,\"outcome\":\"evicted\",\"failure\":\"quota\","
	                            "\"reason\":\"quota: over\",\"started_at\":5}";
	static const char own[] = "{\"version\":1,\"outcome\":\"evicted\"}";
	struct rundir_result r = { .outcome = RUNDIR_SUCCEEDED, .exit_code = 0 };
	struct diag d;

	diag_init(&d);
	for (size_t i = 0; i < EPH_ARRAY_LEN(texts); i++) {
		assert_int_equal(
		        rundir_result_parse(texts[i], strlen(texts[i]), "result.json", &r, &d), 0);
		assert_int_equal(r.outcome, RUNDIR_OOM);
		assert_int_equal(r.exit_code, -1);
		rundir_result_free(&r);
	}
	/* a newer agent's outcome and failure we do not know: failed, for its reason */
	assert_int_equal(rundir_result_parse(newer, strlen(newer), "result.json", &r, &d), 0);
	assert_int_equal(r.version, 9);
	assert_int_equal(r.outcome, RUNDIR_FAILED);
	assert_int_equal(r.failure, RUNDIR_FAILURE_NONE);
	assert_string_equal(r.reason, "quota: over");
	assert_true(r.started_at == 5);
	rundir_result_free(&r);
	assert_int_equal(diag_nerrors(&d), 0);
	/* ours: an unknown outcome is an error */
	assert_int_equal(rundir_result_parse(own, strlen(own), "result.json", &r, &d), -EINVAL);
	diag_free(&d);
	/* and it is written with the version its readers know */
	r = (struct rundir_result){ .outcome = RUNDIR_SUCCEEDED, .exit_code = 0 };
	assert_int_equal(rundir_result_write(*state, &r), 0);
	assert_int_equal(written_version(*state, RUNDIR_RESULT), RUNDIR_RESULT_VERSION);
}

static void
rundir_now_is_in_the_clock_the_offset_names(void **state)
{
	double host, now;

	(void)state;
	clock_real_set_offset(3600.25);
	now = rundir_now();
	host = (double)time(NULL);
	assert_true(now > host - 3600.25 - 2 && now < host - 3600.25 + 2);
	assert_true(clock_real_ms() / 1000 < (int64_t)host - 3598);
	clock_real_set_offset(-60);
	assert_true(clock_real() > (double)time(NULL) + 58);
	clock_real_set_offset(0);
	assert_true(rundir_now() > (double)time(NULL) - 2 && rundir_now() < (double)time(NULL) + 2);
}

static void
agent_pid_identifies_a_live_process(void **state)
{
	pid_t pid;
	uint64_t st;

	assert_int_equal(rundir_pid_read(*state, &pid, &st), -ENOENT);
	assert_int_equal(rundir_pid_write(*state, getpid()), 0);
	assert_int_equal(rundir_pid_read(*state, &pid, &st), 0);
	assert_int_equal(pid, getpid());
	assert_true(rundir_pid_alive(pid, st));
	assert_false(rundir_pid_alive(pid, st + 1));
}

struct seen {
	int n, mem, stop_at;
	uint64_t bytes;
	char last[16];
};

static int
count_ev(const struct rundir_event *e, void *arg)
{
	struct seen *s = arg;

	s->n++;
	if (strcmp(e->ev, "mem") == 0) {
		s->mem++;
		s->bytes += e->bytes;
	}
	snprintf(s->last, sizeof(s->last), "%s", e->ev);
	return s->n == s->stop_at ? 5 : 0;
}

static void
events_are_read_by_whole_lines_and_resumed(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/%s", dir, RUNDIR_EVENTS);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	json_t *f = json_pack("{s:I}", "bytes", (json_int_t)1000);
	struct seen s = { 0 };
	size_t skipped = 0;
	off_t next = 0, end;

	assert_true(fd >= 0);
	assert_int_equal(rundir_event_append(fd, "start", 1764007200.012, NULL), 0);
	assert_int_equal(rundir_event_append(fd, "mem", 1764007201.013, f), 0);
	assert_int_equal(write(fd, "garbage\n", 8), 8);
	assert_int_equal(write(fd, "{\"ev\":\"mem\",\"t\":1,\"bytes\":5", 27),
	                 27); /* in progress */
	assert_int_equal(rundir_events_foreach(dir, 0, count_ev, &s, &next, &skipped), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.mem, 1);
	assert_int_equal(s.bytes, 1000);
	assert_int_equal(skipped, 1);
	end = lseek(fd, 0, SEEK_END);
	assert_int_equal(next, end - 27);
	assert_int_equal(write(fd, "}\n", 2), 2);
	assert_int_equal(rundir_events_foreach(dir, next, count_ev, &s, &next, &skipped), 0);
	assert_int_equal(s.mem, 2);
	assert_int_equal(s.bytes, 1005);
	assert_int_equal(next, end + 2);
	/* a callback can stop the walk */
	memset(&s, 0, sizeof(s));
	s.stop_at = 1;
	assert_int_equal(rundir_events_foreach(dir, 0, count_ev, &s, NULL, NULL), 5);
	assert_string_equal(s.last, "start");
	json_decref(f);
	close(fd);
	free(path);
}

static void
event_lines_carry_ev_and_t_first(void **state)
{
	char buf[256];
	FILE *f = tmpfile();
	json_t *fields = json_pack("{s:s}", "msg", "hi");
	ssize_t n;

	(void)state;
	assert_int_equal(rundir_event_append(fileno(f), "warn", 1764007201.5, fields), 0);
	n = pread(fileno(f), buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "{\"ev\":\"warn\",\"t\":1764007201.5,\"msg\":\"hi\"}\n");
	json_decref(fields);
	fclose(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(spec_round_trips, tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test(bad_spec_reports_every_problem),
		cmocka_unit_test(not_before_is_optional_and_checked),
		cmocka_unit_test(spec_instants_stop_at_year_9999),
		cmocka_unit_test(result_times_are_checked),
		cmocka_unit_test_setup_teardown(result_never_holds_a_negative_duration, tmpfx_setup,
		                                tmpfx_teardown),
		cmocka_unit_test(iso8601_prints_four_digit_years_or_nothing),
		cmocka_unit_test_setup_teardown(missing_spec_is_enoent, tmpfx_setup,
		                                tmpfx_teardown),
		cmocka_unit_test_setup_teardown(result_round_trips_and_is_written_atomically,
		                                tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test_setup_teardown(spec_runtime_wheels_round_trip_and_must_be_absolute,
		                                tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test_setup_teardown(spec_source_and_runtime_round_trip, tmpfx_setup,
		                                tmpfx_teardown),
		cmocka_unit_test(spec_without_source_or_runtime_runs_in_place),
		cmocka_unit_test(bad_source_and_runtime_are_reported),
		cmocka_unit_test_setup_teardown(result_failure_and_phases_round_trip, tmpfx_setup,
		                                tmpfx_teardown),
		cmocka_unit_test(outcome_names_parse_back),
		cmocka_unit_test(failure_names_parse_back_and_prefix_reasons),
		cmocka_unit_test_setup_teardown(failure_in_result_json_round_trips, tmpfx_setup,
		                                tmpfx_teardown),
		cmocka_unit_test_setup_teardown(
		        spec_archive_and_clock_offset_round_trip_as_version_2, tmpfx_setup,
		        tmpfx_teardown),
		cmocka_unit_test(spec_source_takes_exactly_one_of_mirror_and_archive),
		cmocka_unit_test(spec_newer_than_the_agent_is_refused),
		cmocka_unit_test(spec_clock_offset_is_a_number_of_version_2),
		cmocka_unit_test_setup_teardown(result_of_any_version_is_read_as_far_as_understood,
		                                tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test(rundir_now_is_in_the_clock_the_offset_names),
		cmocka_unit_test_setup_teardown(agent_pid_identifies_a_live_process, tmpfx_setup,
		                                tmpfx_teardown),
		cmocka_unit_test_setup_teardown(events_are_read_by_whole_lines_and_resumed,
		                                tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test(event_lines_carry_ev_and_t_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
