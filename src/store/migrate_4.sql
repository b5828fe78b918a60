-- src/store/migrate_4.sql: schema version 4 of STATE/eph.db: a run's phases in a table of
-- their own. Embedded into the binary at build time (src/store/meson.build) and applied by
-- store.c to a version-3 database in one transaction with PRAGMA user_version = 4.
--
-- Version 1 had a column for each phase the local agent knows (phase_source, phase_runtime,
-- phase_exec). An executor adds its own (ship, size, create, boot, delete): here they are
-- rows, so a new phase needs no migration. A row has the phase's place in time (started_at,
-- ended_at: UTC seconds of the scheduler's clock) and its length (seconds) apart:
--   - the length is what the agent measured on a monotonic clock, exact whatever the wall
--     clock did meanwhile; times from a remote host are its clock plus the offset measured
--     at the connection, which is an estimate: ended_at - started_at need not equal seconds;
--   - the runs recorded before this version have lengths only, and keep them (times NULL).
-- A run has each phase once (UNIQUE): writing it again completes or corrects it. Phases are
-- listed in the order they were first written (rowid).

CREATE TABLE phases (
	run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	name       TEXT    NOT NULL,
	started_at REAL,              -- UTC seconds with ms; NULL = unknown
	ended_at   REAL,
	seconds    REAL,              -- how long it took; NULL = unknown
	UNIQUE (run_id, name)
);

INSERT INTO phases (run_id, name, seconds)
	SELECT id, name, seconds FROM (
		SELECT id, 1 AS n, 'source' AS name, phase_source AS seconds FROM runs
		UNION ALL SELECT id, 2, 'runtime', phase_runtime FROM runs
		UNION ALL SELECT id, 3, 'exec', phase_exec FROM runs)
	WHERE seconds IS NOT NULL
	ORDER BY id, n;

ALTER TABLE runs DROP COLUMN phase_source;
ALTER TABLE runs DROP COLUMN phase_runtime;
ALTER TABLE runs DROP COLUMN phase_exec;
