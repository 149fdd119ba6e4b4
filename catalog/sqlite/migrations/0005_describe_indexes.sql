-- DescribeBackups reads one page of sets and their artifacts per call.
--
-- 1. Every reader filters on deleting = 0 (0003). With deleting in the
--    DescribeBackups indexes right after instance_id, counts stay index-only
--    and OFFSET skips rows without reading the table; BackupType gets an
--    index like BackupStatus and BackupMode.
DROP INDEX backup_sets_by_instance;
DROP INDEX backup_sets_by_status;
DROP INDEX backup_sets_by_mode;
CREATE INDEX backup_sets_by_instance ON backup_sets (instance_id, deleting, start_time DESC, id DESC);
CREATE INDEX backup_sets_by_status ON backup_sets (instance_id, deleting, status, start_time DESC, id DESC);
CREATE INDEX backup_sets_by_mode ON backup_sets (instance_id, deleting, mode, start_time DESC, id DESC);
CREATE INDEX backup_sets_by_type ON backup_sets (instance_id, deleting, type, start_time DESC, id DESC);

-- 2. A set's artifacts (a handful of byte ranges) move into its row, as a
--    JSON array, so a page needs no second query with a random read per set.
ALTER TABLE backup_sets ADD COLUMN artifacts TEXT NOT NULL DEFAULT '';
UPDATE backup_sets SET artifacts = (
	SELECT json_group_array(json_object('db', database, 'kind', kind, 'off', offset, 'len', length, 'crc', checksum))
	FROM (SELECT * FROM backup_artifacts a WHERE a.set_id = backup_sets.id ORDER BY seq))
WHERE EXISTS (SELECT 1 FROM backup_artifacts a WHERE a.set_id = backup_sets.id);
DROP TABLE backup_artifacts;
