/* src/store/store_sql.h: what the store's own files share (store.c, store_outbox.c,
 * store_phase.c, store_queue.c, store_upload.c, ...); not for the rest of the program, which
 * goes through store.h, outbox.h and upload.h. */
#ifndef EPH_STORE_STORE_SQL_H
#define EPH_STORE_STORE_SQL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

struct store;

/* The connection of S. */
sqlite3 *store_sqlite(struct store *s);
/* An SQLite result code as 0 or -errno: -EBUSY, -ENOSPC, -EROFS, -EINVAL (a constraint),
 * -ENOMEM, else -EIO. */
int store_sql_errno(int rc);
/* Prepares SQL on S's connection; 0 or -errno. */
int store_sql_prepare(struct store *s, const char *sql, sqlite3_stmt **st);
/* Binds V, or NULL when V is NULL. */
void store_sql_bind_text(sqlite3_stmt *st, int i, const char *v);
/* Column I as a new string (caller frees), NULL for SQL NULL. */
char *store_sql_col_text(sqlite3_stmt *st, int i);
/* Runs ST, a statement that returns no row, and finalizes it: 0; -EEXIST when it broke a
 * constraint (a unique key: there is one already); -EALREADY when it changed no row and
 * MUST_CHANGE; another -errno. */
int store_sql_step_done(struct store *s, sqlite3_stmt *st, bool must_change);
/* Runs SQL, a query of one number or NULL (a min() over the queued rows), into *AT: 0;
 * -ENOENT for NULL (no row); another -errno. */
int store_sql_one_double(struct store *s, const char *sql, double *at);

/* Reads the current row of ST into ELEM (an element of store_sql_rows's array). */
typedef void store_sql_row_fn(sqlite3_stmt *st, void *elem, void *arg);
/* Steps ST to its end, reading each row with ROW (passed ARG) into a new element of an array
 * of SIZE-byte elements; finalizes ST. Returns the array (NULL when no row; the caller frees
 * it) of *N elements, and sets *RC to 0, or to -errno when a step failed: then the array
 * holds the *N rows read before, which the caller frees. */
void *store_sql_rows(sqlite3_stmt *st, size_t size, store_sql_row_fn *row, void *arg, size_t *n,
                     int *rc);
/* Steps ST to its end, collecting column 0 of its rows into *IDS, a new array of *N (free();
 * NULL when none); finalizes ST. 0 or -errno (then *IDS NULL, *N 0). */
int store_sql_ids(sqlite3_stmt *st, int64_t **ids, size_t *n);

/* ---- store_queue.c: the mechanics the queue tables (outbox, uploads) share ---- */

/* A queue table: its name and its key column, constants of the caller (they are put into the
 * SQL text). Its rows have state ('queued' until they end), attempts, next_at, lease_until,
 * last_error and done_at. */
struct store_queue {
	const char *table; /* "outbox" */
	const char *key;   /* "id" */
};

/* NAMES[ST] of the N state names, "unknown" when ST is out of range. */
const char *store_queue_state_name(const char *const *names, size_t n, int st);
/* The index of TEXT among the N state NAMES; 0 (queued) when it is none of them or NULL. */
int store_queue_state_parse(const char *const *names, size_t n, const char *text);
/* The earliest time a queued row becomes due (the later of its next_at and the end of its
 * lease) into *AT; -ENOENT when none is queued. */
int store_queue_next_due(struct store *s, const struct store_queue *q, double *at);
/* Leases queued row KEY until UNTIL if it is due by DUE_BY (HUGE_VAL: whenever it is due) and
 * not leased at NOW: 0; -EALREADY when another pass holds it or it is no longer queued. */
int store_queue_claim(struct store *s, const struct store_queue *q, int64_t key, double now,
                      double due_by, double until);
/* Extends the lease of queued row KEY held until exactly HELD to UNTIL: 0; -EALREADY when
 * that lease is no longer there. */
int store_queue_renew(struct store *s, const struct store_queue *q, int64_t key, double held,
                      double until);
/* Records a failed attempt of row KEY (only if still queued, with QUEUED_ONLY): attempts + 1,
 * ERROR, the next attempt at NEXT_AT; ends its lease. -EALREADY when no row changed. */
int store_queue_retry(struct store *s, const struct store_queue *q, int64_t key, double next_at,
                      const char *error, bool queued_only);
/* Ends row KEY (only if still queued, with QUEUED_ONLY) in STATE (a constant) at AT with ERROR
 * (NULL clears it); ATTEMPT counts it as an attempt (attempts + 1); ends its lease.
 * -EALREADY when no row changed. */
int store_queue_end(struct store *s, const struct store_queue *q, int64_t key, const char *state,
                    bool attempt, double at, const char *error, bool queued_only);

/* ---- store_phase.c ---- */

/* Writes run ID's N phases P (store_phase_add's merge), inside the caller's transaction.
 * 0 or -errno (-EINVAL for a bad name). */
int store_phases_put(struct store *s, int64_t id, const struct store_phase *p, size_t n);

#endif
