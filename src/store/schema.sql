-- src/store/schema.sql: schema version 1 of STATE/eph.db, the first migration step.
-- Embedded into the binary at build time (src/store/meson.build); store.c applies it to an
-- empty database and sets PRAGMA user_version = 1 in the same transaction. Later versions
-- are new steps (migrate_N.sql), never edits of this file.

CREATE TABLE runs (
	id            INTEGER PRIMARY KEY,
	job           TEXT    NOT NULL,
	trigger       TEXT    NOT NULL CHECK (trigger IN ('schedule', 'catchup', 'manual', 'retry')),
	scheduled_at  INTEGER,           -- UTC seconds; NULL for a manual run
	attempt       INTEGER NOT NULL DEFAULT 1,
	state         TEXT    NOT NULL CHECK (state IN ('queued', 'waiting', 'provisioning',
	                      'running', 'succeeded', 'failed', 'oom', 'timeout', 'killed',
	                      'cancelled', 'lost', 'skipped')),
	reason        TEXT,
	executor      TEXT,
	memory_limit  INTEGER NOT NULL DEFAULT 0, -- bytes; 0 = no limit
	peak_bytes    INTEGER,
	peak_method   TEXT,
	enforced      TEXT,              -- cgroup2 | cgroup1 | sampled
	exit_code     INTEGER,
	signal        INTEGER,
	created_at    REAL    NOT NULL,  -- UTC seconds with ms
	started_at    REAL,
	ended_at      REAL,
	phase_source  REAL,              -- seconds each phase took
	phase_runtime REAL,
	phase_exec    REAL,
	cpu_user      REAL,
	cpu_system    REAL,
	commit_id     TEXT,
	run_dir       TEXT,
	log_path      TEXT,
	agent_pid     INTEGER,
	agent_start   INTEGER,           -- /proc/PID/stat field 22 of the agent
	warning       TEXT,
	jitter        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_job_id ON runs (job, id DESC);
-- Only the few live runs are in this index: reconciling reads it after a restart.
CREATE INDEX runs_unfinished ON runs (state)
	WHERE state IN ('queued', 'waiting', 'provisioning', 'running');

CREATE TABLE samples (
	run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	t      REAL    NOT NULL,         -- UTC seconds with ms
	bytes  INTEGER NOT NULL
);
CREATE INDEX samples_run ON samples (run_id, t);

CREATE TABLE job_state (
	job             TEXT PRIMARY KEY,
	scheduled_until INTEGER NOT NULL -- UTC seconds: fires up to here have been planned
);
