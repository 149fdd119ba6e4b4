-- Backup policies, one per instance that has its own (the others use the
-- default). days is a JSON array of weekday numbers (0 = Sunday).
CREATE TABLE backup_policies (
	instance_id                       TEXT PRIMARY KEY,
	window_minute                     INTEGER NOT NULL,
	days                              TEXT NOT NULL,
	retention_days                    INTEGER NOT NULL,
	method                            TEXT NOT NULL,
	enable_backup_log                 INTEGER NOT NULL DEFAULT 0,
	log_backup_retention_period       INTEGER NOT NULL DEFAULT 7,
	local_log_retention_hours         INTEGER NOT NULL DEFAULT 18,
	local_log_retention_space         TEXT NOT NULL DEFAULT '30',
	high_space_usage_protection       TEXT NOT NULL DEFAULT 'Enable',
	log_backup_local_retention_number INTEGER NOT NULL DEFAULT 60,
	log_backup_frequency              TEXT NOT NULL DEFAULT 'LogInterval',
	compress_type                     TEXT NOT NULL DEFAULT '4',
	backup_interval                   TEXT NOT NULL DEFAULT '-1',
	category                          TEXT NOT NULL DEFAULT 'Standard',
	released_keep_policy              TEXT NOT NULL DEFAULT 'None',
	since                             INTEGER NOT NULL,
	source                            TEXT NOT NULL,
	config_hash                       TEXT NOT NULL DEFAULT '',
	updated_at                        INTEGER NOT NULL
);

-- The schedule window an automated job was started for (unix seconds; 0 for
-- manual jobs). Unique per instance, so a window is attempted once even
-- across a crash and restart.
ALTER TABLE jobs ADD COLUMN window_start INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX jobs_by_window ON jobs (instance_id, window_start) WHERE window_start > 0;

-- A set being deleted: hidden from every query, and its deletion finished
-- after a restart (objects first, then the row).
ALTER TABLE backup_sets ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;

-- The expiry sweep.
CREATE INDEX backup_sets_by_expiry ON backup_sets (expect_expire_time) WHERE expect_expire_time > 0;
