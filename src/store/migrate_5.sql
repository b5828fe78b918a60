-- src/store/migrate_5.sql: schema version 5 of STATE/eph.db: where a run's executor keeps
-- what it needs to find the run again. Embedded into the binary at build time
-- (src/store/meson.build) and applied by store.c to a version-4 database in one transaction
-- with PRAGMA user_version = 5.
--
-- handle: NULL, or a JSON object that the run's executor wrote (exec_run_set_handle: a host
-- and a remote directory, a VM id, a Slurm job id) and reads back when it re-attaches to the
-- run after a restart. The local executor writes none: its agent_pid and agent_start do.

ALTER TABLE runs ADD COLUMN handle TEXT;
