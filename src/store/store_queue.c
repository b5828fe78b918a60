/* src/store/store_queue.c: what the store's queue tables (outbox, uploads) share. A row is a
 * piece of work in state 'queued' until it ends in a state of its table's own; it counts its
 * attempts, is due again at next_at (backoff), and is tried by the one pass holding its lease
 * (lease_until; a crashed pass's lapses). Each table keeps its own columns and structs; the SQL
 * here names only the columns the queues share, the table and key names are the caller's
 * constants, and every value is a bound parameter. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/store_sql.h"
#include "util/xalloc.h"

const char *
store_queue_state_name(const char *const *names, size_t n, int st)
{
	if (st < 0 || (size_t)st >= n)
		return "unknown";
	return names[st];
}

int
store_queue_state_parse(const char *const *names, size_t n, const char *text)
{
	for (size_t i = 0; text != NULL && i < n; i++)
		if (strcmp(text, names[i]) == 0)
			return (int)i;
	return 0;
}

int
store_queue_next_due(struct store *s, const struct store_queue *q, double *at)
{
	char *sql = xasprintf(
	        "SELECT min(max(next_at, lease_until)) FROM %s WHERE state = 'queued'", q->table);
	int rc = store_sql_one_double(s, sql, at);

	free(sql);
	return rc;
}

/* What an update's WHERE adds to leave a row that is no longer queued alone. */
#define QUEUED_ONLY " AND state = 'queued'"

/* Prepares SQL (freed here) on S. */
static int
queue_prepare(struct store *s, char *sql, sqlite3_stmt **st)
{
	int rc = store_sql_prepare(s, sql, st);

	free(sql);
	return rc;
}

/* Moves the lease of queued row KEY to UNTIL when its lease_until is CMP ("<=": ended by, "=":
 * exactly) HELD and it is due by DUE_BY. */
static int
queue_lease(struct store *s, const struct store_queue *q, int64_t key, const char *cmp, double held,
            double due_by, double until)
{
	sqlite3_stmt *st;
	int rc = queue_prepare(s,
	                       xasprintf("UPDATE %s SET lease_until = ?4 WHERE %s = ?1 AND state = "
	                                 "'queued' AND next_at <= ?3 AND lease_until %s ?2",
	                                 q->table, q->key, cmp),
	                       &st);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, key);
	sqlite3_bind_double(st, 2, held);
	sqlite3_bind_double(st, 3, due_by);
	sqlite3_bind_double(st, 4, until);
	return store_sql_step_done(s, st, true);
}

int
store_queue_claim(struct store *s, const struct store_queue *q, int64_t key, double now,
                  double due_by, double until)
{
	return queue_lease(s, q, key, "<=", now, due_by, until);
}

int
store_queue_renew(struct store *s, const struct store_queue *q, int64_t key, double held,
                  double until)
{
	/* the exact value the pass wrote: a REAL is stored as the same 8 bytes */
	return queue_lease(s, q, key, "=", held, HUGE_VAL, until);
}

int
store_queue_retry(struct store *s, const struct store_queue *q, int64_t key, double next_at,
                  const char *error, bool queued_only)
{
	sqlite3_stmt *st;
	int rc = queue_prepare(
	        s,
	        xasprintf("UPDATE %s SET attempts = attempts + 1, next_at = ?2, last_error = ?3, "
	                  "lease_until = 0 WHERE %s = ?1%s",
	                  q->table, q->key, queued_only ? QUEUED_ONLY : ""),
	        &st);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, key);
	sqlite3_bind_double(st, 2, next_at);
	store_sql_bind_text(st, 3, error);
	return store_sql_step_done(s, st, true);
}

int
store_queue_end(struct store *s, const struct store_queue *q, int64_t key, const char *state,
                bool attempt, double at, const char *error, bool queued_only)
{
	sqlite3_stmt *st;
	int rc = queue_prepare(
	        s,
	        xasprintf("UPDATE %s SET state = ?4, attempts = attempts + ?5, done_at = ?2, "
	                  "last_error = ?3, lease_until = 0 WHERE %s = ?1%s",
	                  q->table, q->key, queued_only ? QUEUED_ONLY : ""),
	        &st);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, key);
	sqlite3_bind_double(st, 2, at);
	store_sql_bind_text(st, 3, error);
	sqlite3_bind_text(st, 4, state, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, attempt ? 1 : 0);
	return store_sql_step_done(s, st, true);
}
