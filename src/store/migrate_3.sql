-- src/store/migrate_3.sql: schema version 3 of STATE/eph.db: the mail that runs recorded
-- without a daemon still owe. Embedded into the binary at build time (src/store/meson.build)
-- and applied by store.c to a version-2 database in one transaction with PRAGMA
-- user_version = 3.
--
-- A command that records a run's end while no daemon runs (eph runs, show, status, or a
-- foreground eph run settling an earlier run) cannot decide its mail: the job's notify
-- policy is the daemon's configuration's. It lists the run here, in the transaction that
-- records its end, and the daemon decides the mail at its next start and removes the row.

CREATE TABLE mail_owed (
	run_id INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE
);
