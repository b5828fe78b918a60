/* src/store/store.c: the run store on SQLite (WAL, versioned schema, bound parameters only). */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "store/migrate_2_sql.h"
#include "store/migrate_3_sql.h"
#include "store/migrate_4_sql.h"
#include "store/migrate_5_sql.h"
#include "store/migrate_6_sql.h"
#include "store/migrate_7_sql.h"
#include "store/schema_sql.h"
#include "store/store_sql.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/xalloc.h"

#define STORE_BUSY_MS 5000

struct store {
	sqlite3 *db;
	bool readonly;
};

/* Migration step I takes a database from user_version I to I + 1. */
static const char *const migrations[] = {
	store_schema_v1, store_schema_v2, store_schema_v3, store_schema_v4,
	store_schema_v5, store_schema_v6, store_schema_v7,
};

_Static_assert(EPH_ARRAY_LEN(migrations) == STORE_SCHEMA_VERSION,
               "one migration step per schema version");

static const char *const state_names[] = {
	[STORE_QUEUED] = "queued",
	[STORE_WAITING] = "waiting",
	[STORE_PROVISIONING] = "provisioning",
	[STORE_RUNNING] = "running",
	[STORE_SUCCEEDED] = "succeeded",
	[STORE_FAILED] = "failed",
	[STORE_OOM] = "oom",
	[STORE_TIMEOUT] = "timeout",
	[STORE_KILLED] = "killed",
	[STORE_CANCELLED] = "cancelled",
	[STORE_LOST] = "lost",
	[STORE_SKIPPED] = "skipped",
};

static const char *const trigger_names[] = {
	[STORE_SCHEDULE] = "schedule",
	[STORE_CATCHUP] = "catchup",
	[STORE_MANUAL] = "manual",
	[STORE_RETRY] = "retry",
};

/* The SQL list of terminal states, kept next to state_names. */
#define TERMINAL_SQL                                                                               \
	"('succeeded', 'failed', 'oom', 'timeout', 'killed', 'cancelled', 'lost', 'skipped')"

#define RUN_COLUMNS                                                                                \
	"id, job, trigger, scheduled_at, attempt, state, reason, executor, memory_limit, "         \
	"peak_bytes, peak_method, enforced, exit_code, signal, created_at, started_at, ended_at, " \
	"cpu_user, cpu_system, commit_id, run_dir, log_path, agent_pid, agent_start, warning, "    \
	"jitter, handle, memory_reason"

const char *
store_state_name(enum store_state st)
{
	if ((size_t)st >= EPH_ARRAY_LEN(state_names))
		return "unknown";
	return state_names[st];
}

int
store_state_parse(const char *name, enum store_state *out)
{
	for (size_t i = 0; i < EPH_ARRAY_LEN(state_names); i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*out = (enum store_state)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool
store_state_terminal(enum store_state st)
{
	return st >= STORE_SUCCEEDED;
}

const char *
store_trigger_name(enum store_trigger t)
{
	if ((size_t)t >= EPH_ARRAY_LEN(trigger_names))
		return "unknown";
	return trigger_names[t];
}

int
store_trigger_parse(const char *name, enum store_trigger *out)
{
	for (size_t i = 0; i < EPH_ARRAY_LEN(trigger_names); i++) {
		if (strcmp(name, trigger_names[i]) == 0) {
			*out = (enum store_trigger)i;
			return 0;
		}
	}
	return -EINVAL;
}

void
store_run_init(struct store_run *r)
{
	memset(r, 0, sizeof(*r));
	r->trigger = STORE_MANUAL;
	r->attempt = 1;
	r->state = STORE_QUEUED;
	r->peak_bytes = -1;
	r->exit_code = -1;
	r->cpu_user = r->cpu_system = -1;
}

void
store_run_clear(struct store_run *r)
{
	free(r->job);
	free(r->reason);
	free(r->executor);
	free(r->peak_method);
	free(r->enforced);
	free(r->commit_id);
	free(r->run_dir);
	free(r->log_path);
	free(r->warning);
	store_phases_free(r->phases, r->nphases);
	free(r->handle);
	free(r->memory_reason);
	store_run_init(r);
}

void
store_runs_free(struct store_run *runs, size_t n)
{
	if (runs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		store_run_clear(&runs[i]);
	free(runs);
}

/* Maps an SQLite result code to -errno. */
int
store_sql_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
		return -EINVAL;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

sqlite3 *
store_sqlite(struct store *s)
{
	return s->db;
}

const char *
store_errmsg(struct store *s)
{
	return sqlite3_errmsg(s->db);
}

static int
exec_sql(struct store *s, const char *sql)
{
	return store_sql_errno(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

int
store_sql_prepare(struct store *s, const char *sql, sqlite3_stmt **st)
{
	return store_sql_errno(sqlite3_prepare_v2(s->db, sql, -1, st, NULL));
}

/* Switches S to SQLite's write-ahead log and checks that it took: a file system without the
 * shared memory WAL needs (some network file systems) leaves the old journal mode, and the
 * pragma says so only in the mode it returns. 0, -ENOTSUP (said in D), or -errno. */
static int
journal_wal(struct store *s, const char *path, struct diag *d)
{
	sqlite3_stmt *st = NULL;
	char *mode = NULL;
	int rc = store_sql_prepare(s, "PRAGMA journal_mode = WAL", &st);

	if (rc == 0) {
		int step = sqlite3_step(st);

		if (step == SQLITE_ROW)
			mode = store_sql_col_text(st, 0);
		else
			rc = store_sql_errno(step);
	}
	sqlite3_finalize(st);
	if (rc < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "%s: %s", path, sqlite3_errmsg(s->db));
	} else if (mode == NULL || strcmp(mode, "wal") != 0) {
		diag_error(d, (struct diag_pos){ 0 },
		           "%s: SQLite cannot use its write-ahead log there (journal mode %s): put "
		           "the state directory ($EPH_STATE) on a local file system",
		           path, mode != NULL ? mode : "unknown");
		rc = -ENOTSUP;
	}
	free(mode);
	return rc;
}

/* Runs a statement that returns no row; finalizes it. */
static int
step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : store_sql_errno(rc);
}

int
store_sql_step_done(struct store *s, sqlite3_stmt *st, bool must_change)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return -EEXIST;
	if (rc != SQLITE_DONE)
		return store_sql_errno(rc);
	if (must_change && sqlite3_changes(s->db) == 0)
		return -EALREADY;
	return 0;
}

int
store_sql_one_double(struct store *s, const char *sql, double *at)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = store_sql_prepare(s, sql, &st)) < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
			rc = -ENOENT;
		} else {
			*at = sqlite3_column_double(st, 0);
			rc = 0;
		}
	} else {
		rc = store_sql_errno(rc);
		if (rc == 0)
			rc = -EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

void *
store_sql_rows(sqlite3_stmt *st, size_t size, store_sql_row_fn *row, void *arg, size_t *n, int *rc)
{
	char *v = NULL;
	size_t cap = 0;
	int step;

	*n = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap != 0 ? cap * 2 : 16;
			v = xreallocarray(v, cap, size);
		}
		row(st, v + *n * size, arg);
		(*n)++;
	}
	sqlite3_finalize(st);
	*rc = step == SQLITE_DONE ? 0 : store_sql_errno(step);
	return v;
}

static void
id_row(sqlite3_stmt *st, void *elem, void *arg)
{
	(void)arg;
	*(int64_t *)elem = sqlite3_column_int64(st, 0);
}

int
store_sql_ids(sqlite3_stmt *st, int64_t **ids, size_t *n)
{
	int rc;

	*ids = store_sql_rows(st, sizeof(**ids), id_row, NULL, n, &rc);
	if (rc < 0) {
		free(*ids);
		*ids = NULL;
		*n = 0;
	}
	return rc;
}

void
store_sql_bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

/* Binds V, or NULL when V equals the sentinel NONE. */
static void
bind_int(sqlite3_stmt *st, int i, int64_t v, int64_t none)
{
	if (v == none)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, v);
}

/* Binds V, or NULL when V is below MIN (the "unknown" sentinels are 0 or -1). */
static void
bind_real(sqlite3_stmt *st, int i, double v, double min)
{
	if (v < min)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_double(st, i, v);
}

static int
user_version(struct store *s, int *v)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = store_sql_prepare(s, "PRAGMA user_version", &st)) < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : store_sql_errno(rc);
}

static int
check_newer(const char *path, int v, struct diag *d)
{
	if (v > STORE_SCHEMA_VERSION) {
		diag_error(d, (struct diag_pos){ 0 },
		           "%s has schema version %d; this eph knows up to %d: upgrade eph", path,
		           v, STORE_SCHEMA_VERSION);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

/* Applies every migration step past the database's version, each in its own IMMEDIATE
 * transaction that also sets user_version, so two processes opening a fresh database at once
 * cannot both apply a step. */
static int
migrate(struct store *s, const char *path, struct diag *d)
{
	int v, rc;

	for (;;) {
		if ((rc = exec_sql(s, "BEGIN IMMEDIATE")) < 0)
			goto fail;
		if ((rc = user_version(s, &v)) < 0)
			goto rollback;
		if ((rc = check_newer(path, v, d)) < 0) {
			exec_sql(s, "ROLLBACK");
			return rc;
		}
		if (v == STORE_SCHEMA_VERSION)
			return exec_sql(s, "COMMIT");
		if ((rc = exec_sql(s, migrations[v])) < 0)
			goto rollback;
		{
			char sql[64];

			snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
			if ((rc = exec_sql(s, sql)) < 0)
				goto rollback;
		}
		if ((rc = exec_sql(s, "COMMIT")) < 0)
			goto rollback;
	}
rollback:
	diag_error(d, (struct diag_pos){ 0 }, "%s: cannot migrate the schema: %s", path,
	           sqlite3_errmsg(s->db));
	exec_sql(s, "ROLLBACK");
	return rc;
fail:
	diag_error(d, (struct diag_pos){ 0 }, "%s: %s", path, sqlite3_errmsg(s->db));
	return rc;
}

static int
open_common(const char *path, bool readonly, struct store **out, struct diag *d)
{
	struct store *s = xcalloc(1, sizeof(*s));
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	int rc, v;

	*out = NULL;
	s->readonly = readonly;
	rc = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = store_sql_errno(rc);
		if (!(readonly && rc == -ENOENT))
			diag_error(d, (struct diag_pos){ 0 }, "%s: %s", path,
			           s->db != NULL ? sqlite3_errmsg(s->db) : "cannot open");
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 0);
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	if ((rc = exec_sql(s, "PRAGMA foreign_keys = ON")) < 0)
		goto fail_msg;
	if (readonly) {
		if ((rc = user_version(s, &v)) < 0)
			goto fail_msg;
		if ((rc = check_newer(path, v, d)) < 0)
			goto fail;
		if (v == 0) {
			/* created by a writer that has not committed its schema yet (store_open:
			 * the file first, then migrate): nothing recorded, as with no file */
			rc = -ENOENT;
			goto fail;
		}
		if (v < STORE_SCHEMA_VERSION) {
			diag_error(d, (struct diag_pos){ 0 },
			           "%s has schema version %d; this eph needs %d: the next eph that "
			           "records a run (eph run, eph daemon) upgrades it",
			           path, v, STORE_SCHEMA_VERSION);
			rc = -EPROTONOSUPPORT;
			goto fail;
		}
	} else {
		/* WAL: readers never block the writer, nor see a half-written transaction.
		 * FULL: each commit is fsynced, so a recorded transition survives a power cut. */
		/* 128 KiB of page cache, not SQLite's 2 MiB: the writer is the daemon, which must
		 * stay small and touches a few pages per transition; a miss is a pread from the
		 * kernel's page cache (bench/daemon.sh: the idle daemon's RSS). */
		if ((rc = journal_wal(s, path, d)) < 0)
			goto fail;
		if ((rc = exec_sql(s, "PRAGMA synchronous = FULL")) < 0 ||
		    (rc = exec_sql(s, "PRAGMA cache_size = -128")) < 0)
			goto fail_msg;
		if ((rc = migrate(s, path, d)) < 0)
			goto fail;
	}
	*out = s;
	return 0;
fail_msg:
	diag_error(d, (struct diag_pos){ 0 }, "%s: %s", path, sqlite3_errmsg(s->db));
fail:
	sqlite3_close(s->db);
	free(s);
	return rc;
}

int
store_open(const char *path, struct store **out, struct diag *d)
{
	return open_common(path, false, out, d);
}

int
store_open_readonly(const char *path, struct store **out, struct diag *d)
{
	return open_common(path, true, out, d);
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	sqlite3_close(s->db);
	free(s);
}

int
store_run_create(struct store *s, const struct store_run *r, int64_t *id)
{
	sqlite3_stmt *st;
	int rc;

	if ((r->state != STORE_QUEUED && r->state != STORE_SKIPPED) || r->job == NULL)
		return -EINVAL;
	rc = store_sql_prepare(
	        s,
	        "INSERT INTO runs (job, trigger, scheduled_at, attempt, state, reason, "
	        "executor, memory_limit, created_at, ended_at, commit_id, run_dir, log_path, "
	        "warning, jitter, memory_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
	        "?10, ?11, ?12, ?13, ?14, ?15, ?16)",
	        &st);
	if (rc < 0)
		return rc;
	double created = r->created_at > 0 ? r->created_at : clock_real();

	store_sql_bind_text(st, 1, r->job);
	store_sql_bind_text(st, 2, store_trigger_name(r->trigger));
	bind_int(st, 3, r->scheduled_at, 0);
	sqlite3_bind_int(st, 4, r->attempt);
	store_sql_bind_text(st, 5, store_state_name(r->state));
	store_sql_bind_text(st, 6, r->reason);
	store_sql_bind_text(st, 7, r->executor);
	sqlite3_bind_int64(st, 8, r->memory_limit);
	sqlite3_bind_double(st, 9, created);
	/* A skipped run is terminal the moment it is recorded. */
	if (r->state == STORE_SKIPPED)
		sqlite3_bind_double(st, 10, r->ended_at > 0 ? r->ended_at : created);
	else
		sqlite3_bind_null(st, 10);
	store_sql_bind_text(st, 11, r->commit_id);
	store_sql_bind_text(st, 12, r->run_dir);
	store_sql_bind_text(st, 13, r->log_path);
	store_sql_bind_text(st, 14, r->warning);
	sqlite3_bind_int64(st, 15, r->jitter);
	store_sql_bind_text(st, 16, r->memory_reason);
	if ((rc = step_done(st)) < 0)
		return rc;
	*id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

/* Whether run ID exists: 0, -ENOENT, or an error. */
static int
run_exists(struct store *s, int64_t id)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = store_sql_prepare(s, "SELECT 1 FROM runs WHERE id = ?1", &st)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : store_sql_errno(rc);
}

/* Runs ST, an UPDATE of live run ID ("... AND state NOT IN " TERMINAL_SQL); finalizes it.
 * 0 when it changed the row, -EALREADY when the run is terminal, -ENOENT when there is none. */
static int
step_one_live(struct store *s, sqlite3_stmt *st, int64_t id)
{
	int rc = step_done(st);

	if (rc < 0)
		return rc;
	if (sqlite3_changes(s->db) == 1)
		return 0;
	rc = run_exists(s, id);
	return rc == 0 ? -EALREADY : rc;
}

int
store_run_update(struct store *s, int64_t id, const struct store_run *r)
{
	sqlite3_stmt *st;
	int rc;

	if (store_state_terminal(r->state))
		return -EINVAL;
	rc = store_sql_prepare(
	        s,
	        "UPDATE runs SET state = ?2, executor = ?3, memory_limit = ?4, enforced = ?5, "
	        "started_at = ?6, commit_id = ?7, run_dir = ?8, log_path = ?9, "
	        "agent_pid = ?10, agent_start = ?11, warning = ?12, memory_reason = ?13 "
	        "WHERE id = ?1 AND state NOT IN " TERMINAL_SQL,
	        &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	store_sql_bind_text(st, 2, store_state_name(r->state));
	store_sql_bind_text(st, 3, r->executor);
	sqlite3_bind_int64(st, 4, r->memory_limit);
	store_sql_bind_text(st, 5, r->enforced);
	bind_real(st, 6, r->started_at, 1e-9);
	store_sql_bind_text(st, 7, r->commit_id);
	store_sql_bind_text(st, 8, r->run_dir);
	store_sql_bind_text(st, 9, r->log_path);
	bind_int(st, 10, r->agent_pid, 0);
	bind_int(st, 11, r->agent_start, 0);
	store_sql_bind_text(st, 12, r->warning);
	store_sql_bind_text(st, 13, r->memory_reason);
	return step_one_live(s, st, id);
}

int
store_run_set_handle(struct store *s, int64_t id, const char *handle)
{
	sqlite3_stmt *st;
	int rc;

	rc = store_sql_prepare(
	        s, "UPDATE runs SET handle = ?2 WHERE id = ?1 AND state NOT IN " TERMINAL_SQL, &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if (handle != NULL)
		sqlite3_bind_text(st, 2, handle, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, 2);
	return step_one_live(s, st, id);
}

int
store_run_started(struct store *s, int64_t id, double started_at, int64_t agent_pid,
                  int64_t agent_start)
{
	sqlite3_stmt *st;
	int rc;

	rc = store_sql_prepare(
	        s,
	        "UPDATE runs SET state = 'running', started_at = ?2, agent_pid = ?3, "
	        "agent_start = ?4 WHERE id = ?1 AND state NOT IN " TERMINAL_SQL,
	        &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	bind_real(st, 2, started_at, 1e-9);
	bind_int(st, 3, agent_pid, 0);
	bind_int(st, 4, agent_start, 0);
	return step_one_live(s, st, id);
}

static int
insert_samples(struct store *s, int64_t id, const struct store_sample *samples, size_t n)
{
	sqlite3_stmt *st;
	int rc;

	if (n == 0)
		return 0;
	if ((rc = store_sql_prepare(s, "INSERT INTO samples (run_id, t, bytes) VALUES (?1, ?2, ?3)",
	                            &st)) < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_double(st, 2, samples[i].t);
		sqlite3_bind_int64(st, 3, samples[i].bytes);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE) {
			sqlite3_finalize(st);
			return store_sql_errno(rc);
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return 0;
}

/* store_run_finish; with OWE_MAIL, the run is listed in mail_owed in the same transaction. */
static int
run_finish(struct store *s, int64_t id, const struct store_run *f,
           const struct store_sample *samples, size_t n, bool owe_mail)
{
	sqlite3_stmt *st;
	int rc;

	if (!store_state_terminal(f->state))
		return -EINVAL;
	if ((rc = exec_sql(s, "BEGIN IMMEDIATE")) < 0)
		return rc;
	rc = store_sql_prepare(
	        s,
	        "UPDATE runs SET state = ?2, reason = ?3, exit_code = ?4, signal = ?5, "
	        "peak_bytes = ?6, peak_method = ?7, enforced = COALESCE(?8, enforced), "
	        "ended_at = ?9, cpu_user = ?10, cpu_system = ?11, "
	        "started_at = COALESCE(?12, started_at), memory_limit = COALESCE(?13, memory_limit), "
	        "warning = COALESCE(?14, warning), commit_id = COALESCE(?15, commit_id) "
	        "WHERE id = ?1 AND state NOT IN " TERMINAL_SQL,
	        &st);
	if (rc < 0)
		goto rollback;
	sqlite3_bind_int64(st, 1, id);
	store_sql_bind_text(st, 2, store_state_name(f->state));
	store_sql_bind_text(st, 3, f->reason);
	bind_int(st, 4, f->exit_code, -1);
	bind_int(st, 5, f->signal, 0);
	bind_int(st, 6, f->peak_bytes, -1);
	store_sql_bind_text(st, 7, f->peak_method);
	store_sql_bind_text(st, 8, f->enforced);
	sqlite3_bind_double(st, 9, f->ended_at > 0 ? f->ended_at : clock_real());
	bind_real(st, 10, f->cpu_user, 0);
	bind_real(st, 11, f->cpu_system, 0);
	bind_real(st, 12, f->started_at, 1e-9);
	bind_int(st, 13, f->memory_limit, 0);
	store_sql_bind_text(st, 14, f->warning);
	store_sql_bind_text(st, 15, f->commit_id);
	if ((rc = step_done(st)) < 0)
		goto rollback;
	if (sqlite3_changes(s->db) != 1) {
		rc = run_exists(s, id);
		if (rc == 0)
			rc = -EALREADY;
		goto rollback;
	}
	if ((rc = insert_samples(s, id, samples, n)) < 0 ||
	    (rc = store_phases_put(s, id, f->phases, f->nphases)) < 0)
		goto rollback;
	if (owe_mail) {
		if ((rc = store_sql_prepare(
		             s, "INSERT OR IGNORE INTO mail_owed (run_id) VALUES (?)", &st)) < 0)
			goto rollback;
		sqlite3_bind_int64(st, 1, id);
		if ((rc = step_done(st)) < 0)
			goto rollback;
	}
	if ((rc = exec_sql(s, "COMMIT")) < 0)
		goto rollback;
	return 0;
rollback:
	exec_sql(s, "ROLLBACK");
	return rc;
}

int
store_run_finish(struct store *s, int64_t id, const struct store_run *f,
                 const struct store_sample *samples, size_t n)
{
	return run_finish(s, id, f, samples, n, false);
}

int
store_run_finish_owing_mail(struct store *s, int64_t id, const struct store_run *f,
                            const struct store_sample *samples, size_t n)
{
	return run_finish(s, id, f, samples, n, true);
}

char *
store_sql_col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t != NULL ? xstrdup((const char *)t) : NULL;
}

static int64_t
col_int(sqlite3_stmt *st, int i, int64_t none)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? none : sqlite3_column_int64(st, i);
}

static double
col_real(sqlite3_stmt *st, int i, double none)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? none : sqlite3_column_double(st, i);
}

/* Fills R from a row of RUN_COLUMNS. */
static void
row_to_run(sqlite3_stmt *st, struct store_run *r)
{
	const unsigned char *t;

	store_run_init(r);
	r->id = sqlite3_column_int64(st, 0);
	r->job = store_sql_col_text(st, 1);
	if ((t = sqlite3_column_text(st, 2)) != NULL)
		(void)store_trigger_parse((const char *)t, &r->trigger);
	r->scheduled_at = col_int(st, 3, 0);
	r->attempt = (int)col_int(st, 4, 1);
	if ((t = sqlite3_column_text(st, 5)) != NULL)
		(void)store_state_parse((const char *)t, &r->state);
	r->reason = store_sql_col_text(st, 6);
	r->executor = store_sql_col_text(st, 7);
	r->memory_limit = col_int(st, 8, 0);
	r->peak_bytes = col_int(st, 9, -1);
	r->peak_method = store_sql_col_text(st, 10);
	r->enforced = store_sql_col_text(st, 11);
	r->exit_code = (int)col_int(st, 12, -1);
	r->signal = (int)col_int(st, 13, 0);
	r->created_at = col_real(st, 14, 0);
	r->started_at = col_real(st, 15, 0);
	r->ended_at = col_real(st, 16, 0);
	r->cpu_user = col_real(st, 17, -1);
	r->cpu_system = col_real(st, 18, -1);
	r->commit_id = store_sql_col_text(st, 19);
	r->run_dir = store_sql_col_text(st, 20);
	r->log_path = store_sql_col_text(st, 21);
	r->agent_pid = col_int(st, 22, 0);
	r->agent_start = col_int(st, 23, 0);
	r->warning = store_sql_col_text(st, 24);
	r->jitter = col_int(st, 25, 0);
	r->handle = store_sql_col_text(st, 26);
	r->memory_reason = store_sql_col_text(st, 27);
}

/* Runs a query of RUN_COLUMNS whose parameters are bound; reads at most one row, and its
 * phases. */
static int
query_one(struct store *s, sqlite3_stmt *st, struct store_run *out)
{
	int rc = sqlite3_step(st);

	store_run_init(out);
	if (rc == SQLITE_ROW) {
		row_to_run(st, out);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : store_sql_errno(rc);
	}
	sqlite3_finalize(st);
	if (rc == 0 && (rc = store_phases_get(s, out->id, &out->phases, &out->nphases)) < 0)
		store_run_clear(out);
	return rc;
}

int
store_run_get(struct store *s, int64_t id, struct store_run *out)
{
	sqlite3_stmt *st;
	int rc;

	store_run_init(out);
	if ((rc = store_sql_prepare(s, "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1", &st)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	return query_one(s, st, out);
}

int
store_run_latest(struct store *s, const char *job, struct store_run *out)
{
	sqlite3_stmt *st;
	int rc;

	store_run_init(out);
	rc = store_sql_prepare(
	        s, "SELECT " RUN_COLUMNS " FROM runs WHERE job = ?1 ORDER BY id DESC LIMIT 1", &st);
	if (rc < 0)
		return rc;
	store_sql_bind_text(st, 1, job);
	return query_one(s, st, out);
}

/* Reads every row of ST (finalizing it) into a new array, with their phases. */
static int
query_many(struct store *s, sqlite3_stmt *st, struct store_run **out, size_t *n)
{
	struct store_run *v = NULL;
	size_t len = 0, cap = 0;
	int rc;

	*out = NULL;
	*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap != 0 ? cap * 2 : 16;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		row_to_run(st, &v[len++]);
	}
	sqlite3_finalize(st);
	rc = rc == SQLITE_DONE ? 0 : store_sql_errno(rc);
	for (size_t i = 0; i < len && rc == 0; i++)
		rc = store_phases_get(s, v[i].id, &v[i].phases, &v[i].nphases);
	if (rc < 0) {
		store_runs_free(v, len);
		return rc;
	}
	*out = v;
	*n = len;
	return 0;
}

int
store_runs_list(struct store *s, const char *job, size_t limit, struct store_run **out, size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	rc = store_sql_prepare(s,
	                       "SELECT " RUN_COLUMNS " FROM runs WHERE ?1 IS NULL OR job = ?1 "
	                       "ORDER BY id DESC LIMIT ?2",
	                       &st);
	if (rc < 0)
		return rc;
	store_sql_bind_text(st, 1, job);
	sqlite3_bind_int64(st, 2, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit);
	return query_many(s, st, out, n);
}

int
store_runs_unfinished(struct store *s, struct store_run **out, size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	rc = store_sql_prepare(s,
	                       "SELECT " RUN_COLUMNS
	                       " FROM runs WHERE state IN ('queued', 'waiting', "
	                       "'provisioning', 'running') ORDER BY id",
	                       &st);
	if (rc < 0)
		return rc;
	return query_many(s, st, out, n);
}

static void
sample_row(sqlite3_stmt *st, void *elem, void *arg)
{
	struct store_sample *v = elem;

	(void)arg;
	v->t = sqlite3_column_double(st, 0);
	v->bytes = sqlite3_column_int64(st, 1);
}

int
store_samples_get(struct store *s, int64_t id, struct store_sample **out, size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = store_sql_prepare(s, "SELECT t, bytes FROM samples WHERE run_id = ?1 ORDER BY t",
	                            &st)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	*out = store_sql_rows(st, sizeof(**out), sample_row, NULL, n, &rc);
	if (rc < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

int
store_job_state_get(struct store *s, const char *job, int64_t *scheduled_until)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = store_sql_prepare(s, "SELECT scheduled_until FROM job_state WHERE job = ?1",
	                            &st)) < 0)
		return rc;
	store_sql_bind_text(st, 1, job);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*scheduled_until = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : store_sql_errno(rc);
}

int
store_job_state_set(struct store *s, const char *job, int64_t scheduled_until)
{
	sqlite3_stmt *st;
	int rc;

	rc = store_sql_prepare(
	        s,
	        "INSERT INTO job_state (job, scheduled_until) VALUES (?1, ?2) "
	        "ON CONFLICT (job) DO UPDATE SET scheduled_until = excluded.scheduled_until",
	        &st);
	if (rc < 0)
		return rc;
	store_sql_bind_text(st, 1, job);
	sqlite3_bind_int64(st, 2, scheduled_until);
	return step_done(st);
}

int
store_run_delete(struct store *s, int64_t id)
{
	sqlite3_stmt *st;
	int rc;

	rc = store_sql_prepare(s,
	                       "DELETE FROM runs WHERE id = ?1 AND state IN " TERMINAL_SQL
	                       " AND id NOT IN (SELECT run_id FROM uploads WHERE state = 'queued')",
	                       &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = step_done(st);
	if (rc == 0 && sqlite3_changes(s->db) == 0) {
		struct store_run r;

		store_run_init(&r);
		rc = store_run_get(s, id, &r) < 0     ? -ENOENT
		     : !store_state_terminal(r.state) ? -EBUSY
		                                      : -EAGAIN;
		store_run_clear(&r);
	}
	return rc;
}
