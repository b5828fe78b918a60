/* src/store/store_sql.h: what the store's own files share (store.c, store_outbox.c,
 * store_phase.c); not for
 * the rest of the program, which goes through store.h and outbox.h. */
#ifndef EPH_STORE_STORE_SQL_H
#define EPH_STORE_STORE_SQL_H
#include <stdbool.h>

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

/* ---- store_phase.c ---- */

/* Writes run ID's N phases P (store_phase_add's merge), inside the caller's transaction.
 * 0 or -errno (-EINVAL for a bad name). */
int store_phases_put(struct store *s, int64_t id, const struct store_phase *p, size_t n);

#endif
