/* src/store/store_upload.c: the uploads of runs' results (bound parameters only). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/store_sql.h"
#include "store/upload.h"
#include "util/clock.h"

static const char *const upload_state_names[] = {
	[UPLOAD_QUEUED] = "queued",
	[UPLOAD_DONE] = "done",
	[UPLOAD_REFUSED] = "refused",
};

static const struct store_queue upload_queue = { "uploads", "run_id" };

const char *
upload_state_name(enum upload_state st)
{
	return store_queue_state_name(upload_state_names, EPH_ARRAY_LEN(upload_state_names),
	                              (int)st);
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
	return store_sql_ids(st, ids, n);
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
	return store_sql_ids(st, ids, n);
}

int
store_upload_next_due(struct store *s, double *at)
{
	return store_queue_next_due(s, &upload_queue, at);
}

int
store_upload_claim(struct store *s, int64_t run_id, double now, double until)
{
	/* due or not: store_upload_due lists a run asked for by name whenever it is due */
	return store_queue_claim(s, &upload_queue, run_id, now, HUGE_VAL, until);
}

int
store_upload_renew(struct store *s, int64_t run_id, double held, double until)
{
	return store_queue_renew(s, &upload_queue, run_id, held, until);
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
	if (state == UPLOAD_QUEUED)
		return store_queue_retry(s, &upload_queue, run_id, next_at, error, false);
	return store_queue_end(s, &upload_queue, run_id, upload_state_name(state),
	                       state == UPLOAD_REFUSED, at, error, false);
}

int
store_upload_get(struct store *s, int64_t run_id, struct store_upload *out)
{
	sqlite3_stmt *st;
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
		out->state = (enum upload_state)store_queue_state_parse(
		        upload_state_names, EPH_ARRAY_LEN(upload_state_names),
		        (const char *)sqlite3_column_text(st, 1));
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
