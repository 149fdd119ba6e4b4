-- Instances registered from the configuration. The DSN is encrypted because
-- it carries the database password.
CREATE TABLE instances (
	id             TEXT PRIMARY KEY,
	engine         TEXT NOT NULL,
	engine_version TEXT NOT NULL DEFAULT '',
	dsn            BLOB NOT NULL,
	description    TEXT NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL
);

-- Times are unix seconds (the API shows whole seconds).
CREATE TABLE backup_sets (
	id                 INTEGER PRIMARY KEY AUTOINCREMENT,
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
	object_key         TEXT NOT NULL DEFAULT ''
);

-- DescribeBackups: WHERE instance_id = ? [AND status/mode = ?]
-- [AND start_time BETWEEN ? AND ?] ORDER BY start_time DESC, id DESC.
-- The equality columns lead so that each filter combination walks one index
-- range already in the output order; no sort step, no scan of other instances.
CREATE INDEX backup_sets_by_instance ON backup_sets (instance_id, start_time DESC, id DESC);
CREATE INDEX backup_sets_by_status ON backup_sets (instance_id, status, start_time DESC, id DESC);
CREATE INDEX backup_sets_by_mode ON backup_sets (instance_id, mode, start_time DESC, id DESC);

CREATE TABLE backup_artifacts (
	set_id   INTEGER NOT NULL REFERENCES backup_sets (id) ON DELETE CASCADE,
	seq      INTEGER NOT NULL,
	database TEXT NOT NULL,
	offset   INTEGER NOT NULL,
	length   INTEGER NOT NULL,
	checksum TEXT NOT NULL,
	PRIMARY KEY (set_id, seq)
) WITHOUT ROWID;

CREATE TABLE jobs (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	instance_id   TEXT NOT NULL,
	status        TEXT NOT NULL,
	mode          TEXT NOT NULL,
	method        TEXT NOT NULL,
	strategy      TEXT NOT NULL DEFAULT 'instance',
	databases     TEXT NOT NULL DEFAULT '',
	progress      INTEGER NOT NULL DEFAULT 0,
	backup_set_id INTEGER NOT NULL DEFAULT 0,
	error         TEXT NOT NULL DEFAULT '',
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);
CREATE INDEX jobs_by_instance ON jobs (instance_id, id DESC);

CREATE TABLE users (
	name         TEXT PRIMARY KEY,
	id           TEXT NOT NULL UNIQUE,
	display_name TEXT NOT NULL DEFAULT '',
	email        TEXT NOT NULL DEFAULT '',
	mobile_phone TEXT NOT NULL DEFAULT '',
	comments     TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);

-- user_name is '' for the account's own (root) keys. secret is AES-GCM
-- ciphertext; the key that opens it is kept outside this file.
CREATE TABLE access_keys (
	id         TEXT PRIMARY KEY,
	user_name  TEXT NOT NULL,
	secret     BLOB NOT NULL,
	status     TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX access_keys_by_user ON access_keys (user_name);

CREATE TABLE policies (
	name            TEXT NOT NULL,
	type            TEXT NOT NULL,
	description     TEXT NOT NULL DEFAULT '',
	document        TEXT NOT NULL,
	default_version TEXT NOT NULL DEFAULT 'v1',
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	PRIMARY KEY (name, type)
);

CREATE TABLE user_policies (
	user_name   TEXT NOT NULL REFERENCES users (name),
	policy_name TEXT NOT NULL,
	policy_type TEXT NOT NULL,
	attached_at INTEGER NOT NULL,
	PRIMARY KEY (user_name, policy_name, policy_type),
	FOREIGN KEY (policy_name, policy_type) REFERENCES policies (name, type)
);
CREATE INDEX user_policies_by_policy ON user_policies (policy_name, policy_type);
