/* src/store/store_sizing.c: the queries that sizing a job's memory reads: its recent
 * successful and OOM runs, and the last run of a fire, which its retry starts from. */
#include <errno.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/store_sql.h"

static void
size_obs_row(sqlite3_stmt *st, void *elem, void *arg)
{
	struct store_size_obs *v = elem;

	(void)arg;
	v->id = sqlite3_column_int64(st, 0);
	v->oom = sqlite3_column_int(st, 1) != 0;
	v->peak_bytes =
	        sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 2);
	v->memory_limit =
	        sqlite3_column_type(st, 3) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 3);
	v->seconds = sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_double(st, 4);
}

int
store_size_history(struct store *s, const char *job, size_t limit, struct store_size_obs **out,
                   size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	rc = store_sql_prepare(
	        s,
	        "SELECT id, state = 'oom', peak_bytes, memory_limit, "
	        "ended_at - started_at FROM runs "
	        "WHERE job = ?1 AND state IN ('succeeded', 'oom') AND "
	        "(memory_reason IS NULL OR instr(memory_reason, '" STORE_PROFILED_MARK
	        "') = 0) ORDER BY id DESC LIMIT ?2",
	        &st);
	if (rc < 0)
		return rc;
	store_sql_bind_text(st, 1, job);
	sqlite3_bind_int64(st, 2, limit == 0 || limit > INT64_MAX ? 1 : (int64_t)limit);
	*out = store_sql_rows(st, sizeof(**out), size_obs_row, NULL, n, &rc);
	if (rc < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

int
store_fire_last(struct store *s, const char *job, int64_t scheduled_at, struct store_fire_last *out)
{
	const unsigned char *t;
	sqlite3_stmt *st;
	int rc;

	rc = store_sql_prepare(s,
	                       "SELECT attempt, state, memory_limit FROM runs WHERE job = ?1 AND "
	                       "scheduled_at IS ?2 AND ended_at IS NOT NULL AND state != 'skipped' "
	                       "ORDER BY id DESC LIMIT 1",
	                       &st);
	if (rc < 0)
		return rc;
	store_sql_bind_text(st, 1, job);
	if (scheduled_at == 0)
		sqlite3_bind_null(st, 2);
	else
		sqlite3_bind_int64(st, 2, scheduled_at);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->attempt = sqlite3_column_int(st, 0);
		out->state = STORE_FAILED;
		if ((t = sqlite3_column_text(st, 1)) != NULL)
			(void)store_state_parse((const char *)t, &out->state);
		out->memory_limit =
		        sqlite3_column_type(st, 2) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : store_sql_errno(rc);
}

int
store_job_last_state(struct store *s, const char *job, enum store_state *out)
{
	const unsigned char *t;
	sqlite3_stmt *st;
	int rc;

	rc = store_sql_prepare(s,
	                       "SELECT state FROM runs WHERE job = ?1 AND ended_at IS NOT NULL AND "
	                       "state != 'skipped' ORDER BY id DESC LIMIT 1",
	                       &st);
	if (rc < 0)
		return rc;
	store_sql_bind_text(st, 1, job);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = STORE_FAILED;
		if ((t = sqlite3_column_text(st, 0)) != NULL)
			(void)store_state_parse((const char *)t, out);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : store_sql_errno(rc);
}
