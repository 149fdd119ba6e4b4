-- Store each instance's backup sets next to each other.
--
-- The sets table was keyed by BackupId, which grows with time across all
-- instances: the 30 sets of one DescribeBackups page lay in 30 different
-- table pages (one random read each, about a fifth of the action's CPU at a
-- million sets). Now the row key (rid) is the instance's key in the high 32
-- bits and a per-instance sequence in the low 32, so an instance's sets fill
-- a few adjacent pages, in the order they were recorded. BackupId stays the
-- id column, unique, and is still the only id the code and the API use.

-- The instance keys: one per instance id that has ever had a set (sets
-- outlive their instance's registration, so these are not instances rows).
CREATE TABLE set_instance_keys (
	instance_id TEXT PRIMARY KEY,
	key         INTEGER NOT NULL UNIQUE
);
INSERT INTO set_instance_keys (instance_id, key)
	SELECT instance_id, ROW_NUMBER() OVER (ORDER BY instance_id)
	FROM (SELECT DISTINCT instance_id FROM backup_sets);

-- The highest BackupId ever given to a set. AUTOINCREMENT kept it in
-- sqlite_sequence; id is no longer the row key, so it is kept here, and
-- BackupIds are still never reused.
CREATE TABLE backup_set_ids (last INTEGER NOT NULL);
INSERT INTO backup_set_ids (last) VALUES (MAX(
	COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'backup_sets'), 0),
	COALESCE((SELECT MAX(id) FROM backup_sets), 0)));

CREATE TABLE backup_sets_by_rid (
	rid                INTEGER PRIMARY KEY,
	id                 INTEGER NOT NULL UNIQUE,
	instance_id        TEXT NOT NULL,
	status             TEXT NOT NULL,
	start_time         INTEGER NOT NULL,
	end_time           INTEGER NOT NULL,
	type               TEXT NOT NULL,
	mode               TEXT NOT NULL,
	method             TEXT NOT NULL,
	initiator          TEXT NOT NULL,
	size               INTEGER NOT NULL DEFAULT 0,
	available          INTEGER NOT NULL DEFAULT 0,
	store_status       TEXT NOT NULL,
	meta_status        TEXT NOT NULL DEFAULT '',
	storage_class      TEXT NOT NULL DEFAULT '0',
	copy_only          INTEGER NOT NULL DEFAULT 0,
	consistent_time    INTEGER NOT NULL DEFAULT 0,
	checksum           TEXT NOT NULL DEFAULT '',
	host_instance_id   TEXT NOT NULL DEFAULT '',
	encryption         TEXT NOT NULL DEFAULT '{}',
	engine             TEXT NOT NULL,
	engine_version     TEXT NOT NULL DEFAULT '',
	resource_group_id  TEXT NOT NULL DEFAULT '',
	location           TEXT NOT NULL DEFAULT '',
	scale              TEXT NOT NULL DEFAULT '',
	db_names           TEXT NOT NULL DEFAULT '',
	expect_expire_time INTEGER NOT NULL DEFAULT 0,
	failure_reason     TEXT NOT NULL DEFAULT '',
	object_key         TEXT NOT NULL DEFAULT '',
	deleting           INTEGER NOT NULL DEFAULT 0,
	artifacts          TEXT NOT NULL DEFAULT ''
);

INSERT INTO backup_sets_by_rid (rid, id, instance_id, status, start_time, end_time, type, mode, method, initiator,
	size, available, store_status, meta_status, storage_class, copy_only, consistent_time, checksum,
	host_instance_id, encryption, engine, engine_version, resource_group_id, location, scale, db_names,
	expect_expire_time, failure_reason, object_key, deleting, artifacts)
SELECT (k.key << 32) + ROW_NUMBER() OVER (PARTITION BY s.instance_id ORDER BY s.start_time, s.id),
	s.id, s.instance_id, s.status, s.start_time, s.end_time, s.type, s.mode, s.method, s.initiator,
	s.size, s.available, s.store_status, s.meta_status, s.storage_class, s.copy_only, s.consistent_time, s.checksum,
	s.host_instance_id, s.encryption, s.engine, s.engine_version, s.resource_group_id, s.location, s.scale, s.db_names,
	s.expect_expire_time, s.failure_reason, s.object_key, s.deleting, s.artifacts
FROM backup_sets s JOIN set_instance_keys k ON k.instance_id = s.instance_id
ORDER BY 1;

DROP TABLE backup_sets;
ALTER TABLE backup_sets_by_rid RENAME TO backup_sets;

-- The indexes of 0003 and 0005, unchanged.
CREATE INDEX backup_sets_by_instance ON backup_sets (instance_id, deleting, start_time DESC, id DESC);
CREATE INDEX backup_sets_by_status ON backup_sets (instance_id, deleting, status, start_time DESC, id DESC);
CREATE INDEX backup_sets_by_mode ON backup_sets (instance_id, deleting, mode, start_time DESC, id DESC);
CREATE INDEX backup_sets_by_type ON backup_sets (instance_id, deleting, type, start_time DESC, id DESC);
CREATE INDEX backup_sets_by_expiry ON backup_sets (expect_expire_time) WHERE expect_expire_time > 0;
