-- The catalog on PostgreSQL, shared by every node. Tables, columns and
-- values are those of rdsbackup.CatalogTables (the neutral form `rdsbackup
-- catalog copy` moves): times are unix seconds (the API shows whole
-- seconds; 0 = none), lists are JSON text, secrets are sealed by the master
-- key before they get here. Names that are listed in order or paged through
-- compare bytewise (COLLATE "C"), as in SQLite, whatever the database's
-- locale, so pages and markers mean the same on every catalog.

-- Small named values the catalog keeps for itself (the master key check).
CREATE TABLE settings (
	name  text COLLATE "C" PRIMARY KEY,
	value bytea NOT NULL
);

-- The highest id given to a job or a backup set: they share one id space (a
-- job's id is the BackupId of the set it makes), ids are never given twice,
-- and imports bring ids of their own. A one-row counter rather than a
-- sequence, because an import must raise it to an id atomically, which
-- setval cannot do while other nodes call nextval; the row lock is held
-- only by the short transactions that create a job or a set.
CREATE TABLE backup_ids (
	only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
	last     bigint NOT NULL
);
INSERT INTO backup_ids (last) VALUES (0);

-- Instances registered from the configuration; the DSN is sealed.
CREATE TABLE instances (
	id             text COLLATE "C" PRIMARY KEY,
	engine         text NOT NULL,
	engine_version text NOT NULL DEFAULT '',
	dsn            bytea NOT NULL,
	description    text NOT NULL DEFAULT '',
	created_at     bigint NOT NULL,
	updated_at     bigint NOT NULL
);

-- Backup policies, one per instance that has its own. days is a JSON array
-- of weekday numbers (0 = Sunday).
CREATE TABLE backup_policies (
	instance_id                       text COLLATE "C" PRIMARY KEY,
	window_minute                     integer NOT NULL,
	days                              text NOT NULL,
	retention_days                    integer NOT NULL,
	method                            text NOT NULL,
	enable_backup_log                 boolean NOT NULL DEFAULT false,
	log_backup_retention_period       integer NOT NULL,
	local_log_retention_hours         integer NOT NULL,
	local_log_retention_space         text NOT NULL,
	high_space_usage_protection       text NOT NULL,
	log_backup_local_retention_number integer NOT NULL,
	log_backup_frequency              text NOT NULL,
	compress_type                     text NOT NULL,
	backup_interval                   text NOT NULL,
	category                          text NOT NULL,
	released_keep_policy              text NOT NULL,
	since                             bigint NOT NULL,
	source                            text NOT NULL,
	config_hash                       text NOT NULL DEFAULT '',
	updated_at                        bigint NOT NULL
);

-- Backup sets. A set's artifacts (a handful of byte ranges) are a JSON
-- array in its row, so a page of DescribeBackups is one query.
CREATE TABLE backup_sets (
	id                 bigint PRIMARY KEY,
	instance_id        text NOT NULL,
	status             text NOT NULL,
	start_time         bigint NOT NULL,
	end_time           bigint NOT NULL,
	type               text NOT NULL,
	mode               text NOT NULL,
	method             text NOT NULL,
	initiator          text NOT NULL,
	size               bigint NOT NULL DEFAULT 0,
	available          boolean NOT NULL DEFAULT false,
	store_status       text NOT NULL,
	meta_status        text NOT NULL DEFAULT '',
	storage_class      text NOT NULL DEFAULT '0',
	copy_only          boolean NOT NULL DEFAULT false,
	consistent_time    bigint NOT NULL DEFAULT 0,
	checksum           text NOT NULL DEFAULT '',
	host_instance_id   text NOT NULL DEFAULT '',
	encryption         text NOT NULL DEFAULT '{}',
	engine             text NOT NULL,
	engine_version     text NOT NULL DEFAULT '',
	resource_group_id  text NOT NULL DEFAULT '',
	location           text NOT NULL DEFAULT '',
	scale              text NOT NULL DEFAULT '',
	db_names           text NOT NULL DEFAULT '',
	expect_expire_time bigint NOT NULL DEFAULT 0,
	failure_reason     text NOT NULL DEFAULT '',
	object_key         text NOT NULL DEFAULT '',
	-- A set being deleted: hidden from every reader, its deletion finished
	-- by whichever node resumes it (objects first, then the row).
	deleting           boolean NOT NULL DEFAULT false,
	artifacts          text NOT NULL DEFAULT ''
);

-- DescribeBackups: WHERE instance_id = $1 AND NOT deleting [AND status/mode/
-- type = $2] [AND start_time BETWEEN …] ORDER BY start_time DESC, id DESC.
-- The equality columns lead, so each filter combination walks one index
-- range already in output order (no sort, no other instance's rows), and
-- the count is an index-only scan. Partial on NOT deleting: readers never
-- see those rows, so the indexes need not hold them.
CREATE INDEX backup_sets_by_instance ON backup_sets (instance_id, start_time DESC, id DESC) WHERE NOT deleting;
CREATE INDEX backup_sets_by_status ON backup_sets (instance_id, status, start_time DESC, id DESC) WHERE NOT deleting;
CREATE INDEX backup_sets_by_mode ON backup_sets (instance_id, mode, start_time DESC, id DESC) WHERE NOT deleting;
CREATE INDEX backup_sets_by_type ON backup_sets (instance_id, type, start_time DESC, id DESC) WHERE NOT deleting;
-- The expiry sweep and the deletions to resume.
CREATE INDEX backup_sets_by_expiry ON backup_sets (expect_expire_time, id) WHERE expect_expire_time > 0 AND NOT deleting;
CREATE INDEX backup_sets_deleting ON backup_sets (id) WHERE deleting;

CREATE TABLE jobs (
	id            bigint PRIMARY KEY,
	instance_id   text NOT NULL,
	status        text NOT NULL,
	mode          text NOT NULL,
	method        text NOT NULL,
	strategy      text NOT NULL DEFAULT 'instance',
	databases     text NOT NULL DEFAULT '',
	progress      integer NOT NULL DEFAULT 0,
	backup_set_id bigint NOT NULL DEFAULT 0,
	error         text NOT NULL DEFAULT '',
	created_at    bigint NOT NULL,
	updated_at    bigint NOT NULL,
	-- The schedule window an automated job was created for (0 for manual
	-- jobs): unique per instance, so each window is attempted once, by one
	-- node, across crashes and restarts.
	window_start  bigint NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_instance ON jobs (instance_id, id DESC);
CREATE UNIQUE INDEX jobs_by_window ON jobs (instance_id, window_start) WHERE window_start > 0;
-- Start-up recovery and DescribeBackupTasks read the unfinished jobs.
CREATE INDEX jobs_unfinished ON jobs (id) WHERE status NOT IN ('Finished', 'Failed');

CREATE TABLE users (
	name         text COLLATE "C" PRIMARY KEY,
	id           text NOT NULL UNIQUE,
	display_name text NOT NULL DEFAULT '',
	email        text NOT NULL DEFAULT '',
	mobile_phone text NOT NULL DEFAULT '',
	comments     text NOT NULL DEFAULT '',
	created_at   bigint NOT NULL,
	updated_at   bigint NOT NULL
);

-- user_name is '' for the account's own (root) keys, which have no users
-- row; secret is sealed.
CREATE TABLE access_keys (
	id         text COLLATE "C" PRIMARY KEY,
	user_name  text NOT NULL,
	secret     bytea NOT NULL,
	status     text NOT NULL,
	created_at bigint NOT NULL
);
CREATE INDEX access_keys_by_user ON access_keys (user_name);

CREATE TABLE policies (
	name            text COLLATE "C" NOT NULL,
	type            text COLLATE "C" NOT NULL,
	description     text NOT NULL DEFAULT '',
	document        text NOT NULL,
	default_version text NOT NULL DEFAULT 'v1',
	created_at      bigint NOT NULL,
	updated_at      bigint NOT NULL,
	PRIMARY KEY (name, type)
);

-- The foreign keys make the refusals of DeleteUser and DeletePolicy hold
-- against concurrent attaches from other nodes.
CREATE TABLE user_policies (
	user_name   text COLLATE "C" NOT NULL REFERENCES users (name),
	policy_name text COLLATE "C" NOT NULL,
	policy_type text COLLATE "C" NOT NULL,
	attached_at bigint NOT NULL,
	PRIMARY KEY (user_name, policy_name, policy_type),
	FOREIGN KEY (policy_name, policy_type) REFERENCES policies (name, type)
);
CREATE INDEX user_policies_by_policy ON user_policies (policy_name, policy_type);
