// Package postgres is the catalog on PostgreSQL (github.com/jackc/pgx/v5),
// which several rdsbackup nodes share.
//
// Nothing here assumes a single writer. Ids come from a counter row that
// every creating transaction updates; uniqueness rules are constraints
// (one job per schedule window, one user per name, …) whose violations are
// translated to the domain's errors; checks that a constraint cannot express
// (at most two access keys per user, a set's expiry against a policy being
// changed) lock a row or take a transaction-level advisory lock. Session
// advisory locks are never used: behind a pooler such as pgbouncer the
// session is not the client's. No rows are cached in the process; only the
// plaintext of sealed DSNs is, keyed by the sealed bytes.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/noncetotals"
	"github.com/rdsbackup/rdsbackup/catalog/internal/sealed"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DB is the catalog. Configure the exported fields, then Open.
type DB struct {
	// DSN is a libpq connection string or URL; pgx also reads PG*
	// environment variables and ~/.pgpass for what it leaves out.
	DSN string
	Box rdsbackup.SecretBox // seals secrets and DSNs
	Now func() time.Time    // injected clock

	pool *pgxpool.Pool
	dsns sealed.Cache

	nonceSweep noncetotals.Sweeper
}

// NewDB returns a catalog for the database at dsn.
func NewDB(dsn string, box rdsbackup.SecretBox) *DB {
	return &DB{DSN: dsn, Box: box, Now: time.Now}
}

// Open connects, applies pending migrations and checks the master key.
func (db *DB) Open(ctx context.Context) error {
	if db.Box == nil {
		return fmt.Errorf("catalog secret box required")
	}
	db.dsns.Box = db.Box
	cfg, err := pgxpool.ParseConfig(db.DSN)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return fmt.Errorf("catalog dsn: not a valid PostgreSQL connection string")
	}
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fmt.Errorf("connect to the catalog: %w", err)
	}
	if err := db.pool.Ping(ctx); err != nil {
		db.pool.Close()
		return fmt.Errorf("connect to the catalog on %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, redactErr(err, cfg))
	}
	if err := db.migrate(ctx); err != nil {
		db.pool.Close()
		return err
	}
	if err := rdsbackup.CheckMasterKey(ctx, db, db.Box); err != nil {
		db.pool.Close()
		return err
	}
	return nil
}

// redactErr keeps pgx's error but drops the password from it.
func redactErr(err error, cfg *pgxpool.Config) error {
	if cfg.ConnConfig.Password == "" {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), cfg.ConnConfig.Password, "xxxxx"))
}

// Close closes the pool.
func (db *DB) Close() error {
	db.nonceSweep.Wait()
	if db.pool != nil {
		db.pool.Close()
	}
	return nil
}

// Advisory lock classes (the first key of pg_advisory_xact_lock(int, int)).
const (
	lockMigrations = 7301 // with 0: applying migrations
	lockPolicy     = 7302 // with a bucket of instance ids: their policies and new sets
)

// migrate applies the embedded migrations not yet recorded, all in one
// transaction under an advisory lock, so that nodes starting together
// migrate once and a crash leaves the schema as it was.
func (db *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	return db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockMigrations); err != nil {
			return fmt.Errorf("lock migrations: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY)`); err != nil {
			return fmt.Errorf("create migrations table: %w", err)
		}
		for _, name := range names {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE name = $1`, name).Scan(&n); err != nil {
				return err
			} else if n > 0 {
				continue
			}
			buf, err := fs.ReadFile(migrationFS, name)
			if err != nil {
				return err
			}
			// Simple protocol: a migration is many statements.
			if _, err := tx.Exec(ctx, string(buf), pgx.QueryExecModeSimpleProtocol); err != nil {
				return fmt.Errorf("migration %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, name); err != nil {
				return err
			}
		}
		return nil
	})
}

// tx runs fn in a transaction, again (up to five times) when PostgreSQL
// ends it with a deadlock or a serialization failure, which concurrent
// writers on other nodes can cause.
func (db *DB) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for try := 1; ; try++ {
		err := pgx.BeginFunc(ctx, db.pool, fn)
		var pe *pgconn.PgError
		if try < 5 && errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") {
			time.Sleep(time.Duration(try*try) * 10 * time.Millisecond)
			continue
		}
		return diskFull(err)
	}
}

// exec runs one statement outside a transaction, classified as tx's are.
func (db *DB) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := db.pool.Exec(ctx, sql, args...)
	return tag, diskFull(err)
}

// diskFull classifies err as rdsbackup.ENOSPACE when PostgreSQL could not
// write for want of space (SQLSTATE 53100, disk_full).
func diskFull(err error) error {
	if code, _ := pgCode(err); code == "53100" {
		return rdsbackup.NoSpace("catalog", err)
	}
	return err
}

// pgCode returns the SQLSTATE of err and the constraint it names.
func pgCode(err error) (code, constraint string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code, pe.ConstraintName
	}
	return "", ""
}

const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

func (db *DB) now() time.Time { return db.Now().UTC().Truncate(time.Second) }

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
	err := db.pool.QueryRow(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no setting %q", name)
	} else if err != nil {
		return nil, fmt.Errorf("read setting %s: %w", name, err)
	}
	return v, nil
}

// CreateSetting stores a setting unless it has a value, and returns its
// value: the one stored first when nodes race.
func (db *DB) CreateSetting(ctx context.Context, name string, value []byte) ([]byte, error) {
	var stored []byte
	err := db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, value); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&stored)
	})
	if err != nil {
		return nil, fmt.Errorf("store setting %s: %w", name, err)
	}
	return stored, nil
}
