-- Point-in-time recovery (docs/pitr.md). Times are unix seconds, positions
-- JSON LogPosition documents.

-- The log files held in the store, one row per instance and file name. A
-- file being deleted is hidden from every query, and its deletion finished
-- after a restart (object first, then the row).
CREATE TABLE log_files (
	instance_id TEXT NOT NULL,
	name        TEXT NOT NULL,
	kind        TEXT NOT NULL DEFAULT '',
	seq         INTEGER NOT NULL,
	begin_time  INTEGER NOT NULL,
	end_time    INTEGER NOT NULL,
	start_pos   TEXT NOT NULL DEFAULT '',
	end_pos     TEXT NOT NULL DEFAULT '',
	raw_size    INTEGER NOT NULL,
	size        INTEGER NOT NULL,
	checksum    TEXT NOT NULL,
	object_key  TEXT NOT NULL,
	status      TEXT NOT NULL,
	host_id     TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	deleting    INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (instance_id, name)
);
CREATE INDEX log_files_by_seq ON log_files (instance_id, seq);

-- Missing stretches of an instance's log.
CREATE TABLE log_gaps (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	instance_id TEXT NOT NULL,
	after_seq   INTEGER NOT NULL,
	before_seq  INTEGER NOT NULL DEFAULT 0,
	from_time   INTEGER NOT NULL,
	to_time     INTEGER NOT NULL DEFAULT 0,
	reason      TEXT NOT NULL,
	detected_at INTEGER NOT NULL
);
CREATE INDEX log_gaps_by_instance ON log_gaps (instance_id, id);

-- Where each part of a backup set starts in the log. No foreign key to
-- backup_sets: an UpdateBackupSet must not lose them; the rows of deleted
-- sets are removed by the log expiry sweep.
CREATE TABLE set_log_positions (
	set_id      INTEGER NOT NULL,
	part        TEXT NOT NULL,
	instance_id TEXT NOT NULL,
	position    TEXT NOT NULL,
	PRIMARY KEY (set_id, part)
);
CREATE INDEX set_log_positions_by_instance ON set_log_positions (instance_id);

-- The replication server id of each instance's log stream.
CREATE TABLE log_streams (
	instance_id TEXT PRIMARY KEY,
	server_id   INTEGER NOT NULL UNIQUE
);

-- RecoveryDBInstance jobs; at most one unfinished per target.
CREATE TABLE recoveries (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	source_id    TEXT NOT NULL,
	target_id    TEXT NOT NULL,
	backup_id    INTEGER NOT NULL DEFAULT 0,
	restore_time INTEGER NOT NULL DEFAULT 0,
	db_names     TEXT NOT NULL DEFAULT '',
	status       TEXT NOT NULL,
	progress     INTEGER NOT NULL DEFAULT 0,
	error        TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX recoveries_one_per_target ON recoveries (target_id) WHERE status NOT IN ('Finished', 'Failed');
