/* src/store/store_outbox.c: the mail outbox table (bound parameters only). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "store/outbox.h"
#include "store/store_sql.h"
#include "util/clock.h"
#include "util/xalloc.h"

#define OUTBOX_COLUMNS                                                                             \
	"id, dedup, run_id, mail_from, rcpt, subject, state, created_at, attempts, next_at, "      \
	"last_error, done_at"

static const struct store_queue outbox_queue = { "outbox", "id" };

static const char *const outbox_state_names[] = {
	[OUTBOX_QUEUED] = "queued",
	[OUTBOX_SENT] = "sent",
	[OUTBOX_FAILED] = "failed",
};

const char *
outbox_state_name(enum outbox_state st)
{
	return store_queue_state_name(outbox_state_names, EPH_ARRAY_LEN(outbox_state_names),
	                              (int)st);
}

void
outbox_msg_init(struct outbox_msg *m)
{
	memset(m, 0, sizeof(*m));
}

void
outbox_msg_clear(struct outbox_msg *m)
{
	free(m->dedup);
	free(m->from);
	free(m->rcpt);
	free(m->subject);
	free(m->data);
	free(m->last_error);
	outbox_msg_init(m);
}

void
outbox_msgs_free(struct outbox_msg *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		outbox_msg_clear(&v[i]);
	free(v);
}

int
store_outbox_add(struct store *s, const struct outbox_msg *m, int64_t *id)
{
	sqlite3_stmt *st;
	double created = m->created_at > 0 ? m->created_at : clock_real();
	int rc;

	if (m->from == NULL || m->rcpt == NULL || m->data == NULL || m->subject == NULL)
		return -EINVAL;
	rc = store_sql_prepare(
	        s,
	        "INSERT INTO outbox (dedup, run_id, mail_from, rcpt, subject, message, "
	        "state, created_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, "
	        "?8)",
	        &st);
	if (rc < 0)
		return rc;
	store_sql_bind_text(st, 1, m->dedup);
	if (m->run_id > 0)
		sqlite3_bind_int64(st, 2, m->run_id);
	else
		sqlite3_bind_null(st, 2);
	store_sql_bind_text(st, 3, m->from);
	store_sql_bind_text(st, 4, m->rcpt);
	store_sql_bind_text(st, 5, m->subject);
	sqlite3_bind_blob64(st, 6, m->data, m->len, SQLITE_TRANSIENT);
	sqlite3_bind_double(st, 7, created);
	sqlite3_bind_double(st, 8, m->next_at > 0 ? m->next_at : created);
	rc = store_sql_step_done(s, st, false); /* -EEXIST: the dedup key is queued already */
	if (rc == 0 && id != NULL)
		*id = sqlite3_last_insert_rowid(store_sqlite(s));
	return rc;
}

/* Reads the OUTBOX_COLUMNS of the current row into ELEM, a struct outbox_msg (and the message,
 * column 12, when *(bool *)WITH_DATA): a store_sql_row_fn. */
static void
ob_read_row(sqlite3_stmt *st, void *elem, void *with_data)
{
	struct outbox_msg *m = elem;

	outbox_msg_init(m);
	m->id = sqlite3_column_int64(st, 0);
	m->dedup = store_sql_col_text(st, 1);
	m->run_id = sqlite3_column_int64(st, 2);
	m->from = store_sql_col_text(st, 3);
	m->rcpt = store_sql_col_text(st, 4);
	m->subject = store_sql_col_text(st, 5);
	m->state = (enum outbox_state)store_queue_state_parse(
	        outbox_state_names, EPH_ARRAY_LEN(outbox_state_names),
	        (const char *)sqlite3_column_text(st, 6));
	m->created_at = sqlite3_column_double(st, 7);
	m->attempts = sqlite3_column_int(st, 8);
	m->next_at = sqlite3_column_double(st, 9);
	m->last_error = store_sql_col_text(st, 10);
	m->done_at = sqlite3_column_double(st, 11);
	if (*(bool *)with_data) {
		const void *p = sqlite3_column_blob(st, 12);
		size_t n = (size_t)sqlite3_column_bytes(st, 12);

		m->data = xmalloc(n + 1);
		if (n > 0)
			memcpy(m->data, p, n);
		m->data[n] = '\0';
		m->len = n;
	}
}

/* Steps ST to the end, collecting its rows into *OUT / *N; finalizes ST. */
static int
ob_collect(sqlite3_stmt *st, bool with_data, struct outbox_msg **out, size_t *n)
{
	int rc;

	*out = store_sql_rows(st, sizeof(**out), ob_read_row, &with_data, n, &rc);
	if (rc < 0) {
		outbox_msgs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

int
store_outbox_due(struct store *s, double now, double due_by, size_t limit, struct outbox_msg **out,
                 size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	rc = store_sql_prepare(
	        s,
	        "SELECT " OUTBOX_COLUMNS ", message FROM outbox WHERE state = 'queued' "
	        "AND next_at <= ?2 AND lease_until <= ?1 ORDER BY next_at, id LIMIT ?3",
	        &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_double(st, 1, now);
	sqlite3_bind_double(st, 2, due_by);
	sqlite3_bind_int64(st, 3, limit > 0 ? (int64_t)limit : -1);
	return ob_collect(st, true, out, n);
}

int
store_outbox_next_due(struct store *s, double *at)
{
	return store_queue_next_due(s, &outbox_queue, at);
}

int
store_outbox_claim(struct store *s, int64_t id, double now, double due_by, double until)
{
	return store_queue_claim(s, &outbox_queue, id, now, due_by, until);
}

int
store_outbox_sent(struct store *s, int64_t id, double at)
{
	int rc = store_queue_end(s, &outbox_queue, id, outbox_state_name(OUTBOX_SENT), true, at,
	                         NULL, false);

	return rc == -EALREADY ? -ENOENT : rc;
}

int
store_outbox_retry(struct store *s, int64_t id, double next_at, const char *error)
{
	int rc = store_queue_retry(s, &outbox_queue, id, next_at, error, true);

	return rc == -EALREADY ? -ENOENT : rc;
}

int
store_outbox_fail(struct store *s, int64_t id, double at, const char *error)
{
	int rc = store_queue_end(s, &outbox_queue, id, outbox_state_name(OUTBOX_FAILED), true, at,
	                         error, true);

	return rc == -EALREADY ? -ENOENT : rc;
}

int
store_outbox_get(struct store *s, int64_t id, struct outbox_msg *out)
{
	struct outbox_msg *v;
	sqlite3_stmt *st;
	size_t n;
	int rc;

	outbox_msg_init(out);
	rc = store_sql_prepare(s, "SELECT " OUTBOX_COLUMNS ", message FROM outbox WHERE id = ?1",
	                       &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = ob_collect(st, true, &v, &n)) < 0)
		return rc;
	if (n == 0)
		return -ENOENT;
	*out = v[0];
	free(v);
	return 0;
}

int
store_outbox_list(struct store *s, enum outbox_state state, size_t limit, struct outbox_msg **out,
                  size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	rc = store_sql_prepare(s,
	                       "SELECT " OUTBOX_COLUMNS
	                       " FROM outbox WHERE state = ?1 ORDER BY id DESC "
	                       "LIMIT ?2",
	                       &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, outbox_state_name(state), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, limit > 0 ? (int64_t)limit : -1);
	return ob_collect(st, false, out, n);
}

/* ---- mail owed */

int
store_mail_owed(struct store *s, int64_t **ids, size_t *n)
{
	sqlite3_stmt *st;
	int rc = store_sql_prepare(s, "SELECT run_id FROM mail_owed ORDER BY run_id", &st);

	*ids = NULL;
	*n = 0;
	if (rc < 0)
		return rc;
	return store_sql_ids(st, ids, n);
}

int
store_mail_owed_clear(struct store *s, int64_t id)
{
	sqlite3_stmt *st;
	int rc = store_sql_prepare(s, "DELETE FROM mail_owed WHERE run_id = ?", &st);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	return store_sql_step_done(s, st, false);
}
