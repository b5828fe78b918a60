/* src/store/store_phase.c: a run's phases (migrate_4.sql's table): added by the agent's
 * result and by executors, listed with the run. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/store_sql.h"
#include "util/xalloc.h"

void
store_phases_free(struct store_phase *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].name);
	free(p);
}

void
store_run_add_phase(struct store_run *r, const char *name, double started_at, double ended_at,
                    double seconds)
{
	r->phases = xreallocarray(r->phases, r->nphases + 1, sizeof(*r->phases));
	r->phases[r->nphases++] = (struct store_phase){
		.name = xstrdup(name),
		.started_at = started_at,
		.ended_at = ended_at,
		.seconds = seconds,
	};
}

static void
bind_real_or_null(sqlite3_stmt *st, int i, double v, double min)
{
	if (v < min)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_double(st, i, v);
}

int
store_phases_put(struct store *s, int64_t id, const struct store_phase *p, size_t n)
{
	sqlite3_stmt *st;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		size_t len = p[i].name != NULL ? strlen(p[i].name) : 0;

		if (len == 0 || len > STORE_PHASE_NAME_MAX)
			return -EINVAL;
	}
	if (n == 0)
		return 0;
	rc = store_sql_prepare(s,
	                       "INSERT INTO phases (run_id, name, started_at, ended_at, seconds) "
	                       "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (run_id, name) DO UPDATE "
	                       "SET started_at = COALESCE(excluded.started_at, started_at), "
	                       "ended_at = COALESCE(excluded.ended_at, ended_at), "
	                       "seconds = COALESCE(excluded.seconds, seconds)",
	                       &st);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		sqlite3_bind_int64(st, 1, id);
		store_sql_bind_text(st, 2, p[i].name);
		bind_real_or_null(st, 3, p[i].started_at, 1e-9);
		bind_real_or_null(st, 4, p[i].ended_at, 1e-9);
		bind_real_or_null(st, 5, p[i].seconds, 0);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? 0 : store_sql_errno(rc);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	/* a constraint: the name was checked, so the foreign key: no such run */
	return rc == -EINVAL ? -ENOENT : rc;
}

int
store_phase_add(struct store *s, int64_t id, const struct store_phase *p)
{
	return store_phases_put(s, id, p, 1);
}

int
store_phases_get(struct store *s, int64_t id, struct store_phase **out, size_t *n)
{
	struct store_phase *v = NULL;
	size_t len = 0, cap = 0;
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	rc = store_sql_prepare(s,
	                       "SELECT name, started_at, ended_at, seconds FROM phases "
	                       "WHERE run_id = ?1 ORDER BY rowid",
	                       &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap != 0 ? cap * 2 : 4;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[len].name = store_sql_col_text(st, 0);
		v[len].started_at = sqlite3_column_type(st, 1) == SQLITE_NULL
		                            ? 0
		                            : sqlite3_column_double(st, 1);
		v[len].ended_at = sqlite3_column_type(st, 2) == SQLITE_NULL
		                          ? 0
		                          : sqlite3_column_double(st, 2);
		v[len].seconds = sqlite3_column_type(st, 3) == SQLITE_NULL
		                         ? -1
		                         : sqlite3_column_double(st, 3);
		len++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		store_phases_free(v, len);
		return store_sql_errno(rc);
	}
	*out = v;
	*n = len;
	return 0;
}
