// Package sqlite is the catalog on an embedded SQLite database (pure Go,
// modernc.org/sqlite): the default for a single node.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rdsbackup/rdsbackup"
	driver "modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/rdsbackup/rdsbackup/catalog/internal/noncetotals"
	"github.com/rdsbackup/rdsbackup/catalog/internal/sealed"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

//go:embed nonces.sql
var noncesSchema string

// DB is the catalog. Configure the exported fields, then Open.
type DB struct {
	Path string              // the database file
	Box  rdsbackup.SecretBox // encrypts secrets and DSNs at rest
	Now  func() time.Time    // injected clock

	// One writer connection serializes writes (SQLite allows one writer at a
	// time; queuing in Go is cheaper than SQLITE_BUSY retries); readers use a
	// pool, which WAL mode lets run beside the writer.
	write *sql.DB
	read  *sql.DB
	// nonceW writes the replay protection's rows, unsynced (see Nonces).
	nonceW      *sql.DB
	nonceSweep  noncetotals.Sweeper
	nonceStmtMu sync.Mutex
	nonceStmts  *nonceStmts

	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt // prepared read statements by query text

	dsns sealed.Cache // opens instance DSNs
}

// NewDB returns a catalog for the file at path.
func NewDB(path string, box rdsbackup.SecretBox) *DB {
	return &DB{Path: path, Box: box, Now: time.Now, stmts: map[string]*sql.Stmt{}}
}

// Open opens the file, creating it if needed, and applies pending migrations.
func (db *DB) Open() error {
	if db.Path == "" {
		return fmt.Errorf("catalog path required")
	}
	if db.Box == nil {
		return fmt.Errorf("catalog secret box required")
	}
	db.dsns.Box = db.Box
	if err := os.MkdirAll(filepath.Dir(db.Path), 0o700); err != nil {
		return fmt.Errorf("create catalog directory: %w", err)
	}
	if err := restrictFiles(db.Path); err != nil {
		return err
	}
	pragmas := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"
	dsn := "file:" + (&url.URL{Path: db.Path}).EscapedPath() + "?" + pragmas
	var err error
	if db.write, err = sql.Open("sqlite", dsn+"&_txlock=immediate"); err != nil {
		return fmt.Errorf("open catalog: %w", err)
	}
	db.write.SetMaxOpenConns(1)
	if err := db.migrate(context.Background()); err != nil {
		db.write.Close()
		return err
	}
	// Readers get 16 MiB of page cache each (the default is 2 MiB): the
	// interior pages of the backup_sets table and its indexes at millions
	// of rows and the recently read leaves, so that a page of
	// DescribeBackups reads little more than its own rows' leaves.
	if db.read, err = sql.Open("sqlite", dsn+"&_pragma=cache_size(-16384)&mode=ro"); err != nil {
		db.write.Close()
		return fmt.Errorf("open catalog for reading: %w", err)
	}
	if err := db.openNonces(); err != nil {
		db.Close()
		return err
	}
	if err := rdsbackup.CheckMasterKey(context.Background(), db, db.Box); err != nil {
		db.Close()
		return err
	}
	// One reader per CPU (at least two). More do not run at once, and they
	// cost reads: on two CPUs with a million sets, four 8 MiB readers read 9–21
	// pages per page of 30 at 4–8 concurrent calls where two 16 MiB ones read
	// 5, and took 40–60% longer (BENCHMARKS.md).
	readers := max(2, runtime.GOMAXPROCS(0))
	db.read.SetMaxOpenConns(readers)
	db.read.SetMaxIdleConns(readers)
	return restrictFiles(db.Path)
}

// NoncePath is the file of the replay protection (see Nonces): beside the
// catalog's, catalog-nonces.db for catalog.db.
func (db *DB) NoncePath() string {
	ext := filepath.Ext(db.Path)
	return strings.TrimSuffix(db.Path, ext) + "-nonces" + ext
}

// openNonces opens (creating) the replay protection's file, with one
// writer connection whose commits are not synced (see Nonces).
func (db *DB) openNonces() error {
	path := db.NoncePath()
	if err := restrictFiles(path); err != nil {
		return err
	}
	pragmas := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	var err error
	if db.nonceW, err = sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+pragmas); err != nil {
		return fmt.Errorf("open the replay protection file: %w", err)
	}
	db.nonceW.SetMaxOpenConns(1)
	if _, err := db.nonceW.Exec(noncesSchema); err != nil {
		return fmt.Errorf("create the replay protection tables: %w", diskFull(err))
	}
	return restrictFiles(path)
}

// restrictFiles makes the catalog file, creating it if needed, and its
// -wal and -shm files private (0600). SQLite creates the -wal, -shm and
// journal files with the database file's mode, whatever the umask, so a
// private database file before SQLite first opens it keeps them private
// too; existing ones (older versions left them 0644) are restricted.
func restrictFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create catalog file: %w", err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restrict catalog file: %w", err)
		}
	}
	return nil
}

// Close closes the database.
func (db *DB) Close() error {
	db.nonceSweep.Wait()
	db.stmtMu.Lock()
	for _, s := range db.stmts {
		s.Close()
	}
	db.stmts = map[string]*sql.Stmt{}
	db.stmtMu.Unlock()
	var errs []error
	if st := db.nonceStmts; st != nil {
		for _, p := range []*sql.Stmt{st.seen, st.held, st.totals, st.insert, st.count} {
			p.Close()
		}
		db.nonceStmts = nil
	}
	if db.nonceW != nil {
		errs = append(errs, db.nonceW.Close())
	}
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	if db.write != nil {
		errs = append(errs, db.write.Close())
	}
	return errors.Join(errs...)
}

// migrate applies the embedded migrations not yet recorded, each in its own
// transaction with its version row, so a crash leaves a consistent version.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	applied := 0
	for _, name := range names {
		if err := db.update(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM migrations WHERE name = ?`, name).Scan(&n); err != nil {
				return err
			} else if n > 0 {
				return nil
			}
			applied++
			buf, err := fs.ReadFile(migrationFS, name)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(buf)); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO migrations (name) VALUES (?)`, name)
			return err
		}); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	if applied > 0 {
		// A migration rewrites whole tables: copy its log into the file and
		// empty it now rather than carry it until the next checkpoint.
		if _, err := db.write.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return fmt.Errorf("checkpoint after migrations: %w", err)
		}
	}
	return nil
}

// update runs fn in a write transaction. A write that found the disk full
// is reported as rdsbackup.ENOSPACE.
func (db *DB) update(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return diskFull(db.transact(ctx, fn))
}

// diskFull classifies err as rdsbackup.ENOSPACE when SQLite could not write
// for want of space (SQLITE_FULL, which it reports for ENOSPC and quotas).
func diskFull(err error) error {
	var se *driver.Error
	if err != nil && errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return rdsbackup.NoSpace("catalog", err)
	}
	return err
}

func (db *DB) transact(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	// The SQLite build shares one page-cache budget among all connections
	// (SQLITE_ENABLE_MEMORY_MANAGEMENT). A transaction that touched many
	// pages leaves the writer holding more than its share, and until it lets
	// them go every reader drops each page as soon as it has used it: a page
	// of DescribeBackups read 3 pages from disk per set instead of 0.2. So
	// the writer gives its cache back after each transaction; writes are few
	// and re-read what they need. A failure here is not a failed write.
	db.write.ExecContext(ctx, `PRAGMA shrink_memory`)
	// A big transaction (the policies of thousands of instances on a first
	// start) leaves a write-ahead log of its size, hundreds of MiB, which
	// would otherwise stay until shutdown. Every write comes through here,
	// so this bounds the log. Failing to empty it is not a failed write.
	if fi, err := os.Stat(db.Path + "-wal"); err == nil && fi.Size() > walTruncateAbove {
		db.write.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	return nil
}

// walTruncateAbove is the write-ahead log size above which a transaction is
// followed by a truncating checkpoint; a variable for tests.
var walTruncateAbove int64 = 64 << 20

// stmt returns a prepared read statement for query, preparing it once.
func (db *DB) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if s, ok := db.stmts[query]; ok {
		return s, nil
	}
	s, err := db.read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	db.stmts[query] = s
	return s, nil
}

func (db *DB) now() time.Time { return db.Now().UTC().Truncate(time.Second) }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (db *DB) seal(plain string) ([]byte, error) {
	b, err := db.Box.Seal([]byte(plain))
	if err != nil {
		return nil, fmt.Errorf("seal secret: %w", err)
	}
	return b, nil
}

func (db *DB) open(sealed []byte) (string, error) {
	b, err := db.Box.Open(sealed)
	if err != nil {
		return "", fmt.Errorf("open secret: %w", err)
	}
	return string(b), nil
}

// FindSetting returns a setting's value.
func (db *DB) FindSetting(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := db.write.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no setting %q", name)
	} else if err != nil {
		return nil, fmt.Errorf("read setting %s: %w", name, err)
	}
	return v, nil
}

// CreateSetting stores a setting unless it has a value, and returns its
// value.
func (db *DB) CreateSetting(ctx context.Context, name string, value []byte) ([]byte, error) {
	var stored []byte
	err := db.update(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&stored)
	})
	if err != nil {
		return nil, fmt.Errorf("store setting %s: %w", name, err)
	}
	return stored, nil
}
