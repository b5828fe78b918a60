/* src/store/store_upload.c: the uploads of runs' results (bound parameters only). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/store_sql.h"
#include "store/upload.h"
#include "util/clock.h"
#include "util/xalloc.h"

static const char *const upload_state_names[] = {
	[UPLOAD_QUEUED] = "queued",
	[UPLOAD_DONE] = "done",
	[UPLOAD_REFUSED] = "refused",
};

const char *
upload_state_name(enum upload_state st)
{
	if ((size_t)st >= EPH_ARRAY_LEN(upload_state_names))
		return "unknown";
	return upload_state_names[st];
}

void
store_upload_init(struct store_upload *u)
{
	memset(u, 0, sizeof(*u));
	u->files = -1;
}

void
store_upload_clear(struct store_upload *u)
{
	free(u->url);
	free(u->last_error);
	store_upload_init(u);
}

int
store_upload_queue(struct store *s, int64_t run_id, const char *url)
{
	sqlite3_stmt *st;
	double now = clock_real();
	int rc;

	rc = store_sql_prepare(s,
	                       "INSERT OR IGNORE INTO uploads (run_id, url, state, created_at, "
	                       "next_at) VALUES (?1, ?2, 'queued', ?3, ?3)",
	                       &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, run_id);
	store_sql_bind_text(st, 2, url);
	sqlite3_bind_double(st, 3, now);
	if ((rc = store_sql_step_done(s, st, true)) == -EALREADY)
		return 0;
	return rc < 0 ? rc : 1;
}

int
store_upload_requeue(struct store *s, int64_t run_id, const char *url)
{
	struct store_upload u;
	sqlite3_stmt *st;
	int rc;

	if ((rc = store_upload_get(s, run_id, &u)) == -ENOENT)
		return store_upload_queue(s, run_id, url);
	if (rc < 0 || u.state == UPLOAD_DONE) {
		store_upload_clear(&u);
		return rc < 0 ? rc : 0;
	}
	/* first: a crash in between sends files again, never leaves any unsent */
	if (strcmp(u.url, url) != 0 &&
	    (rc = store_sql_prepare(s, "DELETE FROM upload_files WHERE run_id = ?1", &st)) == 0) {
		sqlite3_bind_int64(st, 1, run_id);
		rc = store_sql_step_done(s, st, false);
	}
	if (rc == 0)
		rc = store_sql_prepare(
		        s,
		        "UPDATE uploads SET state = 'queued', next_at = ?3, attempts = "
		        "CASE WHEN state = 'refused' THEN 0 ELSE attempts END, last_error = CASE WHEN "
		        "state = 'refused' THEN NULL ELSE last_error END, done_at = NULL, url = ?2 "
		        "WHERE run_id = ?1",
		        &st);
	if (rc == 0) {
		sqlite3_bind_int64(st, 1, run_id);
		store_sql_bind_text(st, 2, url);
		sqlite3_bind_double(st, 3, clock_real());
		rc = store_sql_step_done(s, st, false);
	}
	store_upload_clear(&u);
	return rc < 0 ? rc : 1;
}

/* Steps ST to the end, collecting column 0 of its rows into *IDS / *N; finalizes ST. */
static int
up_collect_ids(sqlite3_stmt *st, int64_t **ids, size_t *n)
{
	int64_t *v = NULL;
	size_t len = 0, cap = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap != 0 ? cap * 2 : 8;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[len++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return store_sql_errno(rc);
	}
	*ids = v;
	*n = len;
	return 0;
}

int
store_upload_due(struct store *s, double now, double due_by, int64_t run, int64_t **ids, size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*ids = NULL;
	*n = 0;
	rc = store_sql_prepare(s,
	                       "SELECT run_id FROM uploads WHERE state = 'queued' AND "
	                       "lease_until <= ?1 AND (?3 > 0 AND run_id = ?3 OR ?3 <= 0 AND "
	                       "next_at <= ?2) ORDER BY next_at, run_id",
	                       &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_double(st, 1, now);
	sqlite3_bind_double(st, 2, due_by);
	sqlite3_bind_int64(st, 3, run);
	return up_collect_ids(st, ids, n);
}

int
store_upload_unqueued(struct store *s, double since, int64_t **ids, size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*ids = NULL;
	*n = 0;
	rc = store_sql_prepare(
	        s,
	        "SELECT id FROM runs r WHERE r.ended_at >= max(?1, (SELECT min(created_at) FROM "
	        "uploads)) AND r.state NOT IN ('queued', 'waiting', 'provisioning', 'running') "
	        "AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.run_id = r.id) ORDER BY id",
	        &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_double(st, 1, since);
	return up_collect_ids(st, ids, n);
}

int
store_upload_next_due(struct store *s, double *at)
{
	return store_sql_one_double(
	        s, "SELECT min(max(next_at, lease_until)) FROM uploads WHERE state = 'queued'", at);
}

int
store_upload_claim(struct store *s, int64_t run_id, double now, double until)
{
	sqlite3_stmt *st;
	int rc;

	rc = store_sql_prepare(s,
	                       "UPDATE uploads SET lease_until = ?3 WHERE run_id = ?1 AND "
	                       "state = 'queued' AND lease_until <= ?2",
	                       &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_double(st, 2, now);
	sqlite3_bind_double(st, 3, until);
	return store_sql_step_done(s, st, true);
}

int
store_upload_renew(struct store *s, int64_t run_id, double held, double until)
{
	sqlite3_stmt *st;
	int rc;

	/* the exact value the pass wrote: a REAL is stored as the same 8 bytes */
	rc = store_sql_prepare(s,
	                       "UPDATE uploads SET lease_until = ?3 WHERE run_id = ?1 AND "
	                       "state = 'queued' AND lease_until = ?2",
	                       &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_double(st, 2, held);
	sqlite3_bind_double(st, 3, until);
	return store_sql_step_done(s, st, true);
}

int
store_upload_files(struct store *s, int64_t run_id, int64_t files)
{
	sqlite3_stmt *st;
	int rc;

	rc = store_sql_prepare(s, "UPDATE uploads SET files = ?2 WHERE run_id = ?1", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_int64(st, 2, files);
	return store_sql_step_done(s, st, false);
}

int
store_upload_file_sent(struct store *s, int64_t run_id, const char *path)
{
	sqlite3_stmt *st;
	int rc;

	rc = store_sql_prepare(s, "SELECT 1 FROM upload_files WHERE run_id = ?1 AND path = ?2",
	                       &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, run_id);
	store_sql_bind_text(st, 2, path);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : store_sql_errno(rc);
}

int
store_upload_file_done(struct store *s, int64_t run_id, const char *path, int64_t bytes)
{
	sqlite3_stmt *st;
	int rc;

	rc = store_sql_prepare(
	        s, "INSERT OR REPLACE INTO upload_files (run_id, path, bytes) VALUES (?1, ?2, ?3)",
	        &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, run_id);
	store_sql_bind_text(st, 2, path);
	sqlite3_bind_int64(st, 3, bytes);
	return store_sql_step_done(s, st, false);
}

int
store_upload_end(struct store *s, int64_t run_id, enum upload_state state, double at,
                 double next_at, const char *error)
{
	sqlite3_stmt *st;
	int rc;

	if (state == UPLOAD_QUEUED)
		rc = store_sql_prepare(
		        s,
		        "UPDATE uploads SET lease_until = 0, attempts = attempts + 1, "
		        "next_at = ?3, last_error = ?4 WHERE run_id = ?1",
		        &st);
	else
		rc = store_sql_prepare(
		        s,
		        "UPDATE uploads SET lease_until = 0, state = ?5, done_at = ?2, "
		        "last_error = ?4, attempts = attempts + (?5 = 'refused') "
		        "WHERE run_id = ?1",
		        &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, run_id);
	if (state != UPLOAD_QUEUED)
		sqlite3_bind_double(st, 2, at);
	else
		sqlite3_bind_double(st, 3, next_at);
	store_sql_bind_text(st, 4, error);
	if (state != UPLOAD_QUEUED)
		store_sql_bind_text(st, 5, upload_state_name(state));
	return store_sql_step_done(s, st, true);
}

int
store_upload_get(struct store *s, int64_t run_id, struct store_upload *out)
{
	sqlite3_stmt *st;
	const char *state;
	int rc;

	store_upload_init(out);
	rc = store_sql_prepare(
	        s,
	        "SELECT url, state, created_at, attempts, next_at, files, last_error, done_at, "
	        "(SELECT count(*) FROM upload_files f WHERE f.run_id = u.run_id), "
	        "(SELECT total(bytes) FROM upload_files f WHERE f.run_id = u.run_id) "
	        "FROM uploads u WHERE run_id = ?1",
	        &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, run_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->run_id = run_id;
		out->url = store_sql_col_text(st, 0);
		state = (const char *)sqlite3_column_text(st, 1);
		for (size_t i = 0; i < EPH_ARRAY_LEN(upload_state_names); i++)
			if (state != NULL && strcmp(state, upload_state_names[i]) == 0)
				out->state = (enum upload_state)i;
		out->created_at = sqlite3_column_double(st, 2);
		out->attempts = sqlite3_column_int(st, 3);
		out->next_at = sqlite3_column_double(st, 4);
		out->files = sqlite3_column_type(st, 5) == SQLITE_NULL
		                     ? -1
		                     : sqlite3_column_int64(st, 5);
		out->last_error = store_sql_col_text(st, 6);
		out->done_at = sqlite3_column_double(st, 7);
		out->sent = sqlite3_column_int64(st, 8);
		out->sent_bytes = (int64_t)sqlite3_column_double(st, 9);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = -ENOENT;
	} else {
		rc = store_sql_errno(rc);
	}
	sqlite3_finalize(st);
	return rc;
}
