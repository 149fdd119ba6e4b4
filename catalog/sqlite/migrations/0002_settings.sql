-- Small named values the catalog keeps for itself (the master key check).
CREATE TABLE settings (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
