/* src/store/store_cost.c: the runs `eph cost` prices: a job's runs that ended in a window,
 * with the memory they held, how long, and where. */
#include <errno.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/store_sql.h"
#include "util/xalloc.h"

static char *
col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t != NULL ? xstrdup((const char *)t) : NULL;
}

void
store_cost_runs_free(struct store_cost_run *v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++) {
		free(v[i].executor);
		free(v[i].host);
	}
	free(v);
}

int
store_cost_runs(struct store *s, const char *job, double since, struct store_cost_run **out,
                size_t *n)
{
	struct store_cost_run *v = NULL;
	size_t len = 0, cap = 0;
	const unsigned char *t;
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	rc = store_sql_prepare(
	        s,
	        "SELECT state, CASE WHEN started_at IS NOT NULL AND started_at > 0 "
	        "THEN ended_at - started_at END, memory_limit, peak_bytes, executor, "
	        "CASE WHEN json_valid(handle) THEN json_extract(handle, '$.host') "
	        "END FROM runs WHERE job = ?1 AND ended_at IS NOT NULL AND "
	        "ended_at >= ?2 AND state != 'skipped' ORDER BY id",
	        &st);
	if (rc < 0)
		return rc;
	store_sql_bind_text(st, 1, job);
	sqlite3_bind_double(st, 2, since);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_cost_run *r;

		if (len == cap) {
			cap = cap != 0 ? cap * 2 : 32;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		r = &v[len++];
		r->state = STORE_FAILED;
		if ((t = sqlite3_column_text(st, 0)) != NULL)
			(void)store_state_parse((const char *)t, &r->state);
		r->seconds = sqlite3_column_type(st, 1) == SQLITE_NULL
		                     ? -1
		                     : sqlite3_column_double(st, 1);
		if (sqlite3_column_type(st, 1) != SQLITE_NULL && r->seconds < 0)
			r->seconds = 0; /* a clock that stepped back */
		r->memory_limit =
		        sqlite3_column_type(st, 2) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 2);
		r->peak_bytes = sqlite3_column_type(st, 3) == SQLITE_NULL
		                        ? -1
		                        : sqlite3_column_int64(st, 3);
		r->executor = col_text(st, 4);
		r->host = sqlite3_column_type(st, 5) == SQLITE_TEXT ? col_text(st, 5) : NULL;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		store_cost_runs_free(v, len);
		return store_sql_errno(rc);
	}
	*out = v;
	*n = len;
	return 0;
}
