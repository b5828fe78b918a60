-- src/store/migrate_6.sql: schema version 6 of STATE/eph.db: why a run got its memory limit.
-- Embedded into the binary at build time (src/store/meson.build) and applied by store.c to a
-- version-5 database in one transaction with PRAGMA user_version = 6.
--
-- memory_reason: NULL (a run recorded before this version), or how the limit in memory_limit
-- was decided when the run was created (src/exec/sizing.c): "configured", "no limit
-- configured", "min: no history", "p95 of 20 runs 2.31 GiB + 25%", "grown after oom at 1 GiB".

ALTER TABLE runs ADD COLUMN memory_reason TEXT;
