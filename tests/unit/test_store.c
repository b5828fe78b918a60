/* tests/unit/test_store.c: the run store on a real SQLite file in a temporary directory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/outbox.h"
#include "store/store.h"
#include "util/diag.h"
#include "util/xalloc.h"

struct fx {
	char dir[64];
	char *path;
	struct store *s;
};

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct diag d;

	snprintf(f->dir, sizeof(f->dir), "/tmp/eph-test-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->path = xasprintf("%s/eph.db", f->dir);
	diag_init(&d);
	assert_int_equal(store_open(f->path, &f->s, &d), 0);
	assert_int_equal(diag_nerrors(&d), 0);
	diag_free(&d);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->dir);

	store_close(f->s);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f->path);
	free(f);
	return 0;
}

static int64_t
create_run(struct store *s, const char *job)
{
	struct store_run r;
	int64_t id = 0;

	store_run_init(&r);
	r.job = xstrdup(job);
	r.trigger = STORE_SCHEDULE;
	r.scheduled_at = 1764007200;
	r.memory_limit = 200 << 20;
	r.executor = xstrdup("local");
	assert_int_equal(store_run_create(s, &r, &id), 0);
	assert_true(id > 0);
	store_run_clear(&r);
	return id;
}

static int
raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	int rc;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

static void
create_inserts_a_queued_run_with_every_field(void **state)
{
	struct fx *f = *state;
	struct store_run r;
	int64_t id = create_run(f->s, "train-model");

	assert_int_equal(store_run_get(f->s, id, &r), 0);
	assert_int_equal(r.id, id);
	assert_string_equal(r.job, "train-model");
	assert_int_equal(r.trigger, STORE_SCHEDULE);
	assert_int_equal(r.scheduled_at, 1764007200);
	assert_int_equal(r.attempt, 1);
	assert_int_equal(r.state, STORE_QUEUED);
	assert_int_equal(r.memory_limit, 200 << 20);
	assert_string_equal(r.executor, "local");
	assert_int_equal(r.peak_bytes, -1);
	assert_int_equal(r.exit_code, -1);
	assert_int_equal(r.signal, 0);
	assert_true(r.created_at > 1.7e9);
	assert_true(r.started_at == 0 && r.ended_at == 0);
	assert_true(r.nphases == 0 && r.phases == NULL && r.cpu_user < 0);
	assert_null(r.reason);
	assert_null(r.run_dir);
	store_run_clear(&r);
}

static void
create_refuses_a_running_state(void **state)
{
	struct fx *f = *state;
	struct store_run r;
	int64_t id = 0;

	store_run_init(&r);
	r.job = xstrdup("x");
	r.state = STORE_RUNNING;
	assert_int_equal(store_run_create(f->s, &r, &id), -EINVAL);
	store_run_clear(&r);
}

static void
skipped_run_is_terminal_at_once(void **state)
{
	struct fx *f = *state;
	struct store_run r, fin;
	int64_t id = 0;

	store_run_init(&r);
	r.job = xstrdup("fetch");
	r.state = STORE_SKIPPED;
	r.reason = xstrdup("the previous run (41) was still going");
	assert_int_equal(store_run_create(f->s, &r, &id), 0);
	store_run_clear(&r);
	assert_int_equal(store_run_get(f->s, id, &r), 0);
	assert_int_equal(r.state, STORE_SKIPPED);
	assert_true(r.ended_at > 0);
	store_run_clear(&r);
	store_run_init(&fin);
	fin.state = STORE_LOST;
	assert_int_equal(store_run_finish(f->s, id, &fin, NULL, 0), -EALREADY);
}

static void
update_then_finish_records_the_outcome_and_samples(void **state)
{
	struct fx *f = *state;
	struct store_sample samples[] = { { 1764007201.013, 31457280 },
		                          { 1764007202.013, 104857600 },
		                          { 1764007203.013, 209715200 } };
	struct store_sample *got = NULL;
	struct store_run r, fin;
	int64_t id = create_run(f->s, "train-model");
	size_t n = 0;

	assert_int_equal(store_run_get(f->s, id, &r), 0);
	r.state = STORE_RUNNING;
	r.started_at = 1764007200.012;
	r.agent_pid = 812;
	r.agent_start = 123456;
	r.run_dir = xstrdup("/var/lib/ephemeron/runs/1");
	r.log_path = xstrdup("/var/lib/ephemeron/runs/1/output.log");
	r.commit_id = xstrdup("0123456789abcdef0123456789abcdef01234567");
	assert_int_equal(store_run_update(f->s, id, &r), 0);
	store_run_clear(&r);

	assert_int_equal(store_run_get(f->s, id, &r), 0);
	assert_int_equal(r.state, STORE_RUNNING);
	assert_int_equal(r.agent_pid, 812);
	assert_int_equal(r.agent_start, 123456);
	assert_string_equal(r.run_dir, "/var/lib/ephemeron/runs/1");
	assert_true(r.started_at > 1764007200.0 && r.started_at < 1764007200.1);
	store_run_clear(&r);

	store_run_init(&fin);
	fin.state = STORE_OOM;
	fin.reason = xstrdup("killed by the memory limit (cgroup1 oom_kill 1)");
	fin.signal = 9;
	fin.peak_bytes = 209715200;
	fin.peak_method = xstrdup("cgroup1 memory.max_usage_in_bytes");
	fin.enforced = xstrdup("cgroup1");
	fin.ended_at = 1764007241.2;
	store_run_add_phase(&fin, "source", 1764007200.0, 1764007200.0, 0);
	store_run_add_phase(&fin, "exec", 1764007200.01, 0, 41.187);
	fin.cpu_user = 40.1;
	fin.cpu_system = 0.9;
	assert_int_equal(store_run_finish(f->s, id, &fin, samples, 3), 0);
	store_run_clear(&fin);

	assert_int_equal(store_run_get(f->s, id, &r), 0);
	assert_int_equal(r.state, STORE_OOM);
	assert_int_equal(r.exit_code, -1);
	assert_int_equal(r.signal, 9);
	assert_int_equal(r.peak_bytes, 209715200);
	assert_string_equal(r.enforced, "cgroup1");
	assert_string_equal(r.reason, "killed by the memory limit (cgroup1 oom_kill 1)");
	assert_int_equal(r.nphases, 2);
	assert_string_equal(r.phases[0].name, "source");
	assert_true(r.phases[0].seconds == 0 && r.phases[0].started_at == 1764007200.0);
	assert_string_equal(r.phases[1].name, "exec");
	assert_true(r.phases[1].seconds > 41.18 && r.phases[1].seconds < 41.19);
	assert_true(r.phases[1].started_at > 1764007200.0 && r.phases[1].ended_at == 0);
	assert_true(r.cpu_user > 40.0);
	/* kept from the update, since FINAL did not carry them */
	assert_string_equal(r.commit_id, "0123456789abcdef0123456789abcdef01234567");
	assert_true(r.started_at > 1764007200.0);
	assert_int_equal(r.memory_limit, 200 << 20);
	store_run_clear(&r);

	assert_int_equal(store_samples_get(f->s, id, &got, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(got[2].bytes, 209715200);
	assert_true(got[0].t < got[1].t && got[1].t < got[2].t);
	free(got);
}

static void
finish_twice_is_ealready_and_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct store_sample one = { 1.0, 100 }, two = { 2.0, 200 };
	struct store_sample *got = NULL;
	struct store_run fin, r;
	int64_t id = create_run(f->s, "j");
	size_t n = 0;

	store_run_init(&fin);
	fin.state = STORE_SUCCEEDED;
	fin.exit_code = 0;
	assert_int_equal(store_run_finish(f->s, id, &fin, &one, 1), 0);
	fin.state = STORE_LOST;
	fin.exit_code = -1;
	assert_int_equal(store_run_finish(f->s, id, &fin, &two, 1), -EALREADY);
	assert_int_equal(store_run_get(f->s, id, &r), 0);
	assert_int_equal(r.state, STORE_SUCCEEDED);
	assert_int_equal(r.exit_code, 0);
	store_run_clear(&r);
	assert_int_equal(store_samples_get(f->s, id, &got, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].bytes, 100);
	free(got);

	/* and a terminal run cannot be moved back by an update */
	assert_int_equal(store_run_get(f->s, id, &r), 0);
	r.state = STORE_RUNNING;
	assert_int_equal(store_run_update(f->s, id, &r), -EALREADY);
	store_run_clear(&r);
}

/* A run recorded by a process that cannot decide its mail is owed it, in the same write: only
 * when that write recorded it; listed once; forgotten when cleared. */
static void
finish_owing_mail_lists_the_run_only_when_it_recorded_it(void **state)
{
	struct fx *f = *state;
	struct store_run fin;
	int64_t a = create_run(f->s, "j"), b = create_run(f->s, "j"), *ids = NULL;
	size_t n = 0;

	store_run_init(&fin);
	fin.state = STORE_SUCCEEDED;
	assert_int_equal(store_run_finish_owing_mail(f->s, a, &fin, NULL, 0), 0);
	assert_int_equal(store_run_finish_owing_mail(f->s, a, &fin, NULL, 0), -EALREADY);
	assert_int_equal(store_run_finish(f->s, b, &fin, NULL, 0), 0);
	assert_int_equal(store_run_finish_owing_mail(f->s, b, &fin, NULL, 0), -EALREADY);
	assert_int_equal(store_mail_owed(f->s, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], a);
	free(ids);
	assert_int_equal(store_mail_owed_clear(f->s, a), 0);
	assert_int_equal(store_mail_owed(f->s, &ids, &n), 0);
	assert_int_equal(n, 0);
	assert_null(ids);
	store_run_clear(&fin);
}

/* store_run_started writes the state, the start and the agent, and leaves every other field
 * as the row holds it, whatever was read before (a warning written meanwhile stays). */
static void
started_changes_only_the_start_and_not_a_terminal_run(void **state)
{
	struct fx *f = *state;
	int64_t id = create_run(f->s, "j");
	struct store_run r, fin;

	assert_int_equal(store_run_get(f->s, id, &r), 0);
	r.state = STORE_PROVISIONING;
	r.warning = xstrdup("cannot fetch: host down");
	r.commit_id = xstrdup("0123456789abcdef0123456789abcdef01234567");
	assert_int_equal(store_run_update(f->s, id, &r), 0);
	store_run_clear(&r);
	assert_int_equal(store_run_started(f->s, id, 1764007201.5, 4242, 987654), 0);
	assert_int_equal(store_run_get(f->s, id, &r), 0);
	assert_int_equal(r.state, STORE_RUNNING);
	assert_true(r.started_at == 1764007201.5);
	assert_int_equal(r.agent_pid, 4242);
	assert_int_equal(r.agent_start, 987654);
	assert_string_equal(r.warning, "cannot fetch: host down");
	assert_string_equal(r.commit_id, "0123456789abcdef0123456789abcdef01234567");
	assert_int_equal(r.memory_limit, 200 << 20);
	store_run_clear(&r);

	store_run_init(&fin);
	fin.state = STORE_SUCCEEDED;
	assert_int_equal(store_run_finish(f->s, id, &fin, NULL, 0), 0);
	assert_int_equal(store_run_started(f->s, id, 1764007300.0, 1, 1), -EALREADY);
	assert_int_equal(store_run_get(f->s, id, &r), 0);
	assert_int_equal(r.state, STORE_SUCCEEDED);
	assert_int_equal(r.agent_pid, 4242);
	store_run_clear(&r);
	assert_int_equal(store_run_started(f->s, id + 1000, 1764007300.0, 1, 1), -ENOENT);
}

static void
finish_rejects_non_terminal_and_unknown_runs(void **state)
{
	struct fx *f = *state;
	struct store_run fin, r;

	store_run_init(&fin);
	fin.state = STORE_RUNNING;
	assert_int_equal(store_run_finish(f->s, 1, &fin, NULL, 0), -EINVAL);
	fin.state = STORE_FAILED;
	assert_int_equal(store_run_finish(f->s, 999, &fin, NULL, 0), -ENOENT);
	store_run_init(&r);
	assert_int_equal(store_run_update(f->s, 999, &r), -ENOENT);
	assert_int_equal(store_run_get(f->s, 999, &r), -ENOENT);
}

static void
migrates_an_empty_database_to_the_current_version(void **state)
{
	struct fx *f = *state;
	char *path = xasprintf("%s/empty.db", f->dir);
	struct store *s = NULL;
	sqlite3 *db;
	sqlite3_stmt *st;
	struct diag d;

	/* an existing, empty file: version 0 */
	assert_int_equal(raw_exec(path, "PRAGMA user_version"), SQLITE_OK);
	diag_init(&d);
	assert_int_equal(store_open(path, &s, &d), 0);
	store_close(s);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), STORE_SCHEMA_VERSION);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(
	        sqlite3_exec(db, "SELECT job, scheduled_until FROM job_state", NULL, NULL, NULL),
	        SQLITE_OK);
	sqlite3_close(db);
	/* opening again is a no-op */
	assert_int_equal(store_open(path, &s, &d), 0);
	assert_int_equal(diag_nerrors(&d), 0);
	store_close(s);
	diag_free(&d);
	free(path);
}

static void
refuses_a_database_from_a_newer_eph(void **state)
{
	struct fx *f = *state;
	struct store *s = (struct store *)1;
	char *want;
	char *msg;
	struct diag d;

	char *sql = xasprintf("PRAGMA user_version = %d", STORE_SCHEMA_VERSION + 1);

	assert_int_equal(raw_exec(f->path, sql), SQLITE_OK);
	free(sql);
	diag_init(&d);
	assert_int_equal(store_open(f->path, &s, &d), -EPROTONOSUPPORT);
	assert_null(s);
	assert_int_equal(diag_nerrors(&d), 1);
	msg = diag_format(&d, 0);
	want = xasprintf("eph: %s has schema version %d; this eph knows up to %d: upgrade eph",
	                 f->path, STORE_SCHEMA_VERSION + 1, STORE_SCHEMA_VERSION);
	assert_string_equal(msg, want);
	free(msg);
	free(want);
	diag_free(&d);
	diag_init(&d);
	assert_int_equal(store_open_readonly(f->path, &s, &d), -EPROTONOSUPPORT);
	assert_int_equal(diag_nerrors(&d), 1);
	diag_free(&d);
}

static void
readonly_open_of_a_missing_file_is_enoent_and_creates_nothing(void **state)
{
	struct fx *f = *state;
	char *path = xasprintf("%s/none.db", f->dir);
	struct store *s = NULL;
	struct diag d;

	diag_init(&d);
	assert_int_equal(store_open_readonly(path, &s, &d), -ENOENT);
	assert_int_equal(diag_nerrors(&d), 0);
	assert_int_equal(access(path, F_OK), -1);
	diag_free(&d);
	free(path);
}

static void
readonly_connection_cannot_write(void **state)
{
	struct fx *f = *state;
	struct store *ro = NULL;
	struct store_run r;
	int64_t id = 0;
	struct diag d;

	diag_init(&d);
	assert_int_equal(store_open_readonly(f->path, &ro, &d), 0);
	store_run_init(&r);
	r.job = xstrdup("j");
	assert_int_equal(store_run_create(ro, &r, &id), -EROFS);
	store_run_clear(&r);
	store_close(ro);
	diag_free(&d);
}

static void
list_is_newest_first_filtered_and_limited(void **state)
{
	struct fx *f = *state;
	struct store_run *runs = NULL, r;
	int64_t ids[6];
	size_t n = 0;

	for (int i = 0; i < 6; i++)
		ids[i] = create_run(f->s, i % 2 == 0 ? "even" : "odd");
	assert_int_equal(store_runs_list(f->s, NULL, 0, &runs, &n), 0);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(runs[i].id, ids[5 - i]);
	store_runs_free(runs, n);

	assert_int_equal(store_runs_list(f->s, "even", 2, &runs, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(runs[0].id, ids[4]);
	assert_int_equal(runs[1].id, ids[2]);
	assert_string_equal(runs[1].job, "even");
	store_runs_free(runs, n);

	assert_int_equal(store_runs_list(f->s, "nobody", 10, &runs, &n), 0);
	assert_int_equal(n, 0);
	assert_null(runs);

	assert_int_equal(store_run_latest(f->s, "odd", &r), 0);
	assert_int_equal(r.id, ids[5]);
	store_run_clear(&r);
	assert_int_equal(store_run_latest(f->s, "nobody", &r), -ENOENT);
}

static void
unfinished_lists_only_live_runs_oldest_first(void **state)
{
	struct fx *f = *state;
	struct store_run *runs = NULL, fin, r;
	int64_t a = create_run(f->s, "a"), b = create_run(f->s, "b"), c = create_run(f->s, "c");
	size_t n = 0;

	store_run_init(&fin);
	fin.state = STORE_FAILED;
	fin.exit_code = 3;
	assert_int_equal(store_run_finish(f->s, b, &fin, NULL, 0), 0);
	assert_int_equal(store_run_get(f->s, c, &r), 0);
	r.state = STORE_RUNNING;
	assert_int_equal(store_run_update(f->s, c, &r), 0);
	store_run_clear(&r);
	assert_int_equal(store_runs_unfinished(f->s, &runs, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(runs[0].id, a);
	assert_int_equal(runs[1].id, c);
	assert_int_equal(runs[1].state, STORE_RUNNING);
	store_runs_free(runs, n);
}

static void
reader_is_not_blocked_by_a_writer_transaction(void **state)
{
	struct fx *f = *state;
	int64_t id = create_run(f->s, "before");
	struct store *ro = NULL;
	struct store_run r;
	struct timespec t0, t1;
	sqlite3 *w;
	struct diag d;

	diag_init(&d);
	assert_int_equal(store_open_readonly(f->path, &ro, &d), 0);
	/* another writer holds an open write transaction with a half-written run */
	assert_int_equal(sqlite3_open(f->path, &w), SQLITE_OK);
	assert_int_equal(sqlite3_exec(w,
	                              "BEGIN IMMEDIATE; INSERT INTO runs (job, trigger, state, "
	                              "created_at) VALUES ('half', 'manual', 'queued', 1)",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(store_run_get(ro, id, &r), 0);
	assert_string_equal(r.job, "before");
	store_run_clear(&r);
	assert_int_equal(store_run_latest(ro, "half", &r), -ENOENT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* far below the busy timeout: the reader did not wait for the writer */
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 500);
	/* once committed, the run is visible whole */
	assert_int_equal(sqlite3_exec(w, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(store_run_latest(ro, "half", &r), 0);
	store_run_clear(&r);
	sqlite3_close(w);
	store_close(ro);
	diag_free(&d);
}

static void
strings_with_quotes_and_utf8_round_trip(void **state)
{
	struct fx *f = *state;
	static const char job[] = "daten-'export'; DROP TABLE runs; --\"ü→✓";
	static const char reason[] = "exit code 3: «Fehler» 'quoted' \"double\" \\ back";
	struct store_run r, fin;
	int64_t id = create_run(f->s, job);

	store_run_init(&fin);
	fin.state = STORE_FAILED;
	fin.exit_code = 3;
	fin.reason = xstrdup(reason);
	assert_int_equal(store_run_finish(f->s, id, &fin, NULL, 0), 0);
	store_run_clear(&fin);
	assert_int_equal(store_run_latest(f->s, job, &r), 0);
	assert_int_equal(r.id, id);
	assert_string_equal(r.job, job);
	assert_string_equal(r.reason, reason);
	store_run_clear(&r);
}

static void
job_state_is_upserted(void **state)
{
	struct fx *f = *state;
	int64_t until = 0;

	assert_int_equal(store_job_state_get(f->s, "j", &until), -ENOENT);
	assert_int_equal(store_job_state_set(f->s, "j", 100), 0);
	assert_int_equal(store_job_state_set(f->s, "j", 200), 0);
	assert_int_equal(store_job_state_get(f->s, "j", &until), 0);
	assert_int_equal(until, 200);
}

static void
state_and_trigger_names_round_trip(void **state)
{
	enum store_state st;
	enum store_trigger t;

	(void)state;
	for (int i = STORE_QUEUED; i <= STORE_SKIPPED; i++) {
		assert_int_equal(store_state_parse(store_state_name((enum store_state)i), &st), 0);
		assert_int_equal(st, i);
		assert_int_equal(store_state_terminal(st), i >= STORE_SUCCEEDED);
	}
	for (int i = STORE_SCHEDULE; i <= STORE_RETRY; i++) {
		assert_int_equal(store_trigger_parse(store_trigger_name((enum store_trigger)i), &t),
		                 0);
		assert_int_equal(t, i);
	}
	assert_int_equal(store_state_parse("done", &st), -EINVAL);
	assert_string_equal(store_state_name(STORE_OOM), "oom");
}

/* A database where SQLite cannot keep a write-ahead log is refused, not silently used with
 * another journal: an in-memory database is one (its journal mode stays "memory"). */
static void
refuses_a_database_without_a_write_ahead_log(void **state)
{
	struct store *s = NULL;
	struct diag d;
	char *msg;

	(void)state;
	diag_init(&d);
	assert_int_equal(store_open(":memory:", &s, &d), -ENOTSUP);
	assert_null(s);
	assert_int_equal(diag_nerrors(&d), 1);
	msg = diag_format(&d, 0);
	assert_non_null(strstr(msg, "cannot use its write-ahead log there (journal mode memory)"));
	free(msg);
	diag_free(&d);
}

static void
phases_are_added_completed_and_listed_in_order(void **state)
{
	struct fx *f = *state;
	int64_t id = create_run(f->s, "a"), other = create_run(f->s, "b");
	char ship[] = "ship", boot[] = "boot", empty[] = "",
	     longer[] = "a-phase-name-of-more-than-32-bytes";
	struct store_phase p = { .name = ship, .started_at = 100.5, .seconds = -1 };
	struct store_phase *v;
	struct store_run r, fin;
	size_t n;

	/* an executor's own phase, before the run ends: its start, then its end */
	assert_int_equal(store_phase_add(f->s, id, &p), 0);
	p = (struct store_phase){ .name = ship, .ended_at = 101.25, .seconds = 0.75 };
	assert_int_equal(store_phase_add(f->s, id, &p), 0);
	p = (struct store_phase){ .name = boot, .started_at = 102, .seconds = -1 };
	assert_int_equal(store_phase_add(f->s, other, &p), 0);
	/* the agent's, with the end; exec written twice in one go: the later values win */
	store_run_init(&fin);
	fin.state = STORE_SUCCEEDED;
	store_run_add_phase(&fin, "source", 101.5, 101.75, 0.25);
	store_run_add_phase(&fin, "exec", 102, 0, -1);
	store_run_add_phase(&fin, "exec", 0, 105, 3.0);
	assert_int_equal(store_run_finish(f->s, id, &fin, NULL, 0), 0);
	store_run_clear(&fin);

	assert_int_equal(store_phases_get(f->s, id, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].name, "ship");
	assert_true(v[0].started_at == 100.5 && v[0].ended_at == 101.25 && v[0].seconds == 0.75);
	assert_string_equal(v[1].name, "source");
	assert_true(v[1].started_at == 101.5 && v[1].ended_at == 101.75 && v[1].seconds == 0.25);
	assert_string_equal(v[2].name, "exec");
	assert_true(v[2].started_at == 102 && v[2].ended_at == 105 && v[2].seconds == 3.0);
	store_phases_free(v, n);
	/* read with the run, alone and in lists */
	assert_int_equal(store_run_get(f->s, other, &r), 0);
	assert_int_equal(r.nphases, 1);
	assert_string_equal(r.phases[0].name, "boot");
	assert_true(r.phases[0].ended_at == 0 && r.phases[0].seconds < 0);
	store_run_clear(&r);
	{
		struct store_run *runs;
		size_t nr;

		assert_int_equal(store_runs_list(f->s, NULL, 0, &runs, &nr), 0);
		assert_int_equal(nr, 2);
		assert_int_equal(runs[0].id, other);
		assert_int_equal(runs[0].nphases, 1);
		assert_int_equal(runs[1].nphases, 3);
		store_runs_free(runs, nr);
	}
	/* no such run, no such name */
	p = (struct store_phase){ .name = ship, .seconds = 1 };
	assert_int_equal(store_phase_add(f->s, 999, &p), -ENOENT);
	p.name = empty;
	assert_int_equal(store_phase_add(f->s, id, &p), -EINVAL);
	p.name = longer;
	assert_int_equal(store_phase_add(f->s, id, &p), -EINVAL);
	/* a run finished twice keeps its first phases */
	store_run_init(&fin);
	fin.state = STORE_FAILED;
	store_run_add_phase(&fin, "source", 1, 2, 1);
	assert_int_equal(store_run_finish(f->s, id, &fin, NULL, 0), -EALREADY);
	store_run_clear(&fin);
	assert_int_equal(store_phases_get(f->s, id, &v, &n), 0);
	assert_true(n == 3 && v[1].seconds == 0.25);
	store_phases_free(v, n);
	/* they go with their run */
	assert_int_equal(store_run_delete(f->s, id), 0);
	assert_int_equal(store_phases_get(f->s, id, &v, &n), 0);
	assert_int_equal(n, 0);
	assert_null(v);
}

/* The text of src/store/NAME (EPH_TEST_DATA is tests/data). */
static char *
store_sql_file(const char *name)
{
	const char *data = getenv("EPH_TEST_DATA");
	char *path, *text;
	FILE *fp;
	long len;

	assert_non_null(data);
	path = xasprintf("%s/../../src/store/%s", data, name);
	fp = fopen(path, "r");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	rewind(fp);
	text = xcalloc(1, (size_t)len + 1);
	assert_int_equal(fread(text, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	free(path);
	return text;
}

static void
migration_4_moves_the_phase_columns_into_their_table(void **state)
{
	static const char *const steps[] = { "schema.sql", "migrate_2.sql", "migrate_3.sql" };
	struct fx *f = *state;
	char *path = xasprintf("%s/v3.db", f->dir);
	struct store *s = NULL;
	struct store_run r;
	struct diag d;

	for (size_t i = 0; i < 3; i++) {
		char *sql = store_sql_file(steps[i]);

		assert_int_equal(raw_exec(path, sql), SQLITE_OK);
		free(sql);
	}
	assert_int_equal(
	        raw_exec(path,
	                 "PRAGMA user_version = 3;"
	                 "INSERT INTO runs (id, job, trigger, state, created_at, phase_source, "
	                 "phase_runtime, phase_exec) VALUES "
	                 "(1, 'a', 'manual', 'succeeded', 1.0, 0.5, 2.25, 10.0),"
	                 "(2, 'a', 'manual', 'failed', 2.0, 0.125, NULL, NULL),"
	                 "(3, 'a', 'manual', 'lost', 3.0, NULL, NULL, NULL);"
	                 "INSERT INTO samples (run_id, t, bytes) VALUES (1, 1.5, 4096);"),
	        SQLITE_OK);
	diag_init(&d);
	assert_int_equal(store_open(path, &s, &d), 0);
	assert_int_equal(diag_nerrors(&d), 0);
	diag_free(&d);
	assert_int_equal(store_run_get(s, 1, &r), 0);
	assert_int_equal(r.nphases, 3);
	assert_string_equal(r.phases[0].name, "source");
	assert_string_equal(r.phases[1].name, "runtime");
	assert_string_equal(r.phases[2].name, "exec");
	assert_true(r.phases[0].seconds == 0.5 && r.phases[1].seconds == 2.25 &&
	            r.phases[2].seconds == 10.0);
	/* only lengths were known: the times stay unknown */
	assert_true(r.phases[0].started_at == 0 && r.phases[0].ended_at == 0);
	assert_int_equal(r.state, STORE_SUCCEEDED);
	store_run_clear(&r);
	assert_int_equal(store_run_get(s, 2, &r), 0);
	assert_int_equal(r.nphases, 1);
	assert_true(r.phases[0].seconds == 0.125);
	store_run_clear(&r);
	assert_int_equal(store_run_get(s, 3, &r), 0);
	assert_int_equal(r.nphases, 0);
	store_run_clear(&r);
	store_close(s);
	/* the columns are gone: the table is the one place */
	assert_int_equal(raw_exec(path, "SELECT phase_source FROM runs"), SQLITE_ERROR);
	assert_int_equal(raw_exec(path, "SELECT 1 FROM samples WHERE run_id = 1"), SQLITE_OK);
	free(path);
}

/* The executor's handle of a run: written while it lives, read back with the row, refused
 * once it is terminal. */
static void
handle_is_kept_until_the_run_is_terminal(void **state)
{
	struct fx *f = *state;
	struct store_run r, fin;
	int64_t id = create_run(f->s, "remote");

	assert_int_equal(store_run_get(f->s, id, &r), 0);
	assert_null(r.handle);
	store_run_clear(&r);
	assert_int_equal(store_run_set_handle(f->s, id, "{\"host\": \"h1\", \"dir\": \"/x\"}"), 0);
	assert_int_equal(store_run_get(f->s, id, &r), 0);
	assert_string_equal(r.handle, "{\"host\": \"h1\", \"dir\": \"/x\"}");
	store_run_clear(&r);
	store_run_init(&fin);
	fin.state = STORE_LOST;
	fin.reason = xstrdup("host gone");
	assert_int_equal(store_run_finish(f->s, id, &fin, NULL, 0), 0);
	store_run_clear(&fin);
	assert_int_equal(store_run_set_handle(f->s, id, NULL), -EALREADY);
	assert_int_equal(store_run_get(f->s, id, &r), 0);
	assert_string_equal(r.handle, "{\"host\": \"h1\", \"dir\": \"/x\"}");
	store_run_clear(&r);
	assert_int_equal(store_run_set_handle(f->s, id + 1000, "{}"), -ENOENT);
}

/* Migration 6: a version-5 database gets memory_reason, NULL for the runs it had; a run
 * created with a reason keeps it through an update. */
static void
migration_6_adds_the_memory_reason(void **state)
{
	static const char *const steps[] = { "schema.sql", "migrate_2.sql", "migrate_3.sql",
		                             "migrate_4.sql", "migrate_5.sql" };
	struct fx *f = *state;
	char *path = xasprintf("%s/v5.db", f->dir);
	struct store *s = NULL;
	struct store_run r;
	struct diag d;
	int64_t id = 0;

	for (size_t i = 0; i < EPH_ARRAY_LEN(steps); i++) {
		char *sql = store_sql_file(steps[i]);

		assert_int_equal(raw_exec(path, sql), SQLITE_OK);
		free(sql);
	}
	assert_int_equal(raw_exec(path, "PRAGMA user_version = 5;"
	                                "INSERT INTO runs (id, job, trigger, state, created_at, "
	                                "memory_limit, peak_bytes) VALUES "
	                                "(1, 'a', 'manual', 'succeeded', 1.0, 1048576, 4096);"),
	                 SQLITE_OK);
	diag_init(&d);
	assert_int_equal(store_open(path, &s, &d), 0);
	assert_int_equal(diag_nerrors(&d), 0);
	diag_free(&d);
	assert_int_equal(store_run_get(s, 1, &r), 0);
	assert_null(r.memory_reason);
	assert_int_equal(r.memory_limit, 1048576);
	assert_int_equal(r.peak_bytes, 4096);
	store_run_clear(&r);
	store_run_init(&r);
	r.job = xstrdup("a");
	r.memory_limit = 640 << 20;
	r.memory_reason = xstrdup("p95 of 1 run 512 MiB + 25%");
	assert_int_equal(store_run_create(s, &r, &id), 0);
	store_run_clear(&r);
	assert_int_equal(store_run_get(s, id, &r), 0);
	assert_string_equal(r.memory_reason, "p95 of 1 run 512 MiB + 25%");
	r.state = STORE_PROVISIONING;
	assert_int_equal(store_run_update(s, id, &r), 0);
	store_run_clear(&r);
	assert_int_equal(store_run_get(s, id, &r), 0);
	assert_string_equal(r.memory_reason, "p95 of 1 run 512 MiB + 25%");
	assert_int_equal(r.memory_limit, 640 << 20);
	store_run_clear(&r);
	store_close(s);
	free(path);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(create_inserts_a_queued_run_with_every_field),
		T(create_refuses_a_running_state),
		T(skipped_run_is_terminal_at_once),
		T(update_then_finish_records_the_outcome_and_samples),
		T(finish_twice_is_ealready_and_changes_nothing),
		T(finish_rejects_non_terminal_and_unknown_runs),
		T(finish_owing_mail_lists_the_run_only_when_it_recorded_it),
		T(started_changes_only_the_start_and_not_a_terminal_run),
		T(handle_is_kept_until_the_run_is_terminal),
		T(migrates_an_empty_database_to_the_current_version),
		T(phases_are_added_completed_and_listed_in_order),
		T(migration_4_moves_the_phase_columns_into_their_table),
		T(migration_6_adds_the_memory_reason),
		T(refuses_a_database_from_a_newer_eph),
		T(readonly_open_of_a_missing_file_is_enoent_and_creates_nothing),
		T(readonly_connection_cannot_write),
		T(list_is_newest_first_filtered_and_limited),
		T(unfinished_lists_only_live_runs_oldest_first),
		T(reader_is_not_blocked_by_a_writer_transaction),
		T(strings_with_quotes_and_utf8_round_trip),
		T(job_state_is_upserted),
		cmocka_unit_test(state_and_trigger_names_round_trip),
		cmocka_unit_test(refuses_a_database_without_a_write_ahead_log),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
