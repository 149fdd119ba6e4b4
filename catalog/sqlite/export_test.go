package sqlite

import "database/sql"

// Raw returns the catalog's writer pool, for tests that load data in bulk or
// inspect the file (EXPLAIN QUERY PLAN, the migrations table).
func (db *DB) Raw() *sql.DB { return db.write }

// PreparedQueries returns the text of the read statements prepared so far:
// the exact SQL that FindBackupSets and the other cached reads run.
func (db *DB) PreparedQueries() map[string]bool {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	out := make(map[string]bool, len(db.stmts))
	for q := range db.stmts {
		out[q] = true
	}
	return out
}

// RawNonces returns the replay protection file's writer.
func (db *DB) RawNonces() *sql.DB { return db.nonceW }
