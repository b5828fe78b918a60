-- src/store/migrate_7.sql: schema version 7 of STATE/eph.db: the uploads of runs' results to
-- the results_store bucket (docs/results.md). Embedded into the binary at build time
-- (src/store/meson.build) and applied by store.c to a version-6 database in one transaction
-- with PRAGMA user_version = 7.
--
-- uploads: one row per run whose results are (to be) uploaded, written when the run is
-- recorded terminal, before anything is sent; eph-upload claims a due row (a lease, as the
-- outbox's), uploads the files not yet in upload_files, and records the outcome:
--   state      queued (to do, or resumed after a failure), done, or refused (the store said
--              no: a wrong key, a missing bucket; nothing more is tried)
--   url        s3://BUCKET/PREFIX/JOB/RUN/ where the files go
--   attempts   passes that failed; next_at when the next is due (backoff)
--   lease_until a pass holds the row until then (a crashed pass's lapses)
--   files      the files of results/ (NULL until a pass has listed them)
-- upload_files: each file accepted by the store, so that a resumed upload sends only the rest.

CREATE TABLE uploads (
	run_id      INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
	url         TEXT NOT NULL,
	state       TEXT NOT NULL CHECK (state IN ('queued', 'done', 'refused')),
	created_at  REAL NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	next_at     REAL NOT NULL,
	lease_until REAL NOT NULL DEFAULT 0,
	files       INTEGER,
	last_error  TEXT,
	done_at     REAL
);
CREATE INDEX uploads_due ON uploads (state, next_at);

CREATE TABLE upload_files (
	run_id INTEGER NOT NULL REFERENCES uploads (run_id) ON DELETE CASCADE,
	path   TEXT NOT NULL,
	bytes  INTEGER NOT NULL,
	PRIMARY KEY (run_id, path)
) WITHOUT ROWID;
