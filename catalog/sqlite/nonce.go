package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/noncetotals"
)

// Nonces returns the catalog's replay protection: a request's nonce is kept
// in the catalog file until its signed time is window old, so that it is
// refused after a restart too, killed process included. At most maxEntries
// nonces are held, shared as rdsbackup.NonceStore says.
//
// Each nonce is one small write transaction on a writer connection of its
// own whose commits are not synced to disk (synchronous=NORMAL in WAL mode):
// a commit is in the operating system's cache when UseNonce returns, so a
// killed process loses nothing, and only a power cut or a kernel crash can
// forget the last moments' nonces. Syncing each one as the catalog's own
// writes are would cost a disk flush per request (BENCHMARKS.md).
func (db *DB) Nonces(window time.Duration, maxEntries int) rdsbackup.NonceStore {
	return &nonceStore{db: db, window: window, shares: rdsbackup.NonceShares{Max: maxEntries}}
}

type nonceStore struct {
	db     *DB
	window time.Duration
	shares rdsbackup.NonceShares
	totals noncetotals.Totals
}

// nonceSweepBatch is how many expired nonces one sweep transaction deletes,
// so that requests get the writer in between.
const nonceSweepBatch = 2000

func (s *nonceStore) UseNonce(ctx context.Context, ak string, root bool, nonce string, signedAt, now time.Time) error {
	if d := now.Sub(signedAt); d > s.window || d < -s.window {
		return rdsbackup.ErrNonceExpired()
	}
	hash := rdsbackup.NonceHash(ak, nonce)
	minute := rdsbackup.NonceMinute(signedAt)
	oldest := rdsbackup.NonceMinute(now.Add(-s.window))
	s.db.nonceSweep.Maybe(oldest, s.sweep)

	var refused error
	err := diskFull(s.db.nonceTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM nonces WHERE hash = ? AND minute >= ?`, hash, oldest).Scan(&one)
		if err == nil {
			refused = rdsbackup.ErrNonceUsed()
			return nil
		} else if err != sql.ErrNoRows {
			return err
		}
		held := 0
		if !root {
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0) FROM nonce_counts WHERE access_key = ? AND minute >= ?`,
				ak, oldest).Scan(&held); err != nil {
				return err
			}
		}
		total, users, err := s.totals.Get(now, oldest, func() (total, users int, err error) {
			err = tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0), COALESCE(SUM(CASE WHEN root = 0 THEN n ELSE 0 END), 0)
				FROM nonce_counts WHERE minute >= ?`, oldest).Scan(&total, &users)
			return total, users, err
		})
		if err != nil {
			return err
		}
		if refused = s.shares.Check(root, held, users, total); refused != nil {
			return nil
		}
		// A row still here from an expired bucket is taken over.
		if _, err := tx.ExecContext(ctx, `INSERT INTO nonces (hash, minute) VALUES (?, ?)
			ON CONFLICT (hash) DO UPDATE SET minute = excluded.minute WHERE nonces.minute < ?`, hash, minute, oldest); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO nonce_counts (access_key, minute, root, n) VALUES (?, ?, ?, 1)
			ON CONFLICT (access_key, minute) DO UPDATE SET n = n + 1`, ak, minute, boolInt(root)); err != nil {
			return err
		}
		s.totals.Add(root)
		return nil
	}))
	if err != nil {
		s.totals.Invalidate()
		return fmt.Errorf("record request nonce: %w", err)
	}
	return refused
}

func (s *nonceStore) NonceCount(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.db.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0) FROM nonce_counts WHERE minute >= ?`,
		rdsbackup.NonceMinute(now.Add(-s.window))).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count request nonces: %w", err)
	}
	return n, nil
}

// sweep deletes the buckets older than oldest, a batch per transaction.
func (s *nonceStore) sweep(oldest int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for {
		var n int64
		err := s.db.nonceTx(ctx, func(tx *sql.Tx) error {
			// The minute is checked again in the outer statement so that a
			// row taken over meanwhile is kept (on SQLite the writer is one,
			// so this only keeps the statement the same as PostgreSQL's).
			r, err := tx.ExecContext(ctx, `DELETE FROM nonces WHERE minute < ? AND hash IN
				(SELECT hash FROM nonces WHERE minute < ? LIMIT ?)`, oldest, oldest, nonceSweepBatch)
			if err != nil {
				return err
			}
			n, err = r.RowsAffected()
			return err
		})
		if err != nil {
			return err
		}
		if n < nonceSweepBatch {
			break
		}
	}
	return s.db.nonceTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM nonce_counts WHERE minute < ?`, oldest)
		return err
	})
}

// nonceTx runs fn in a transaction on the nonce writer.
func (db *DB) nonceTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.nonceW.BeginTx(ctx, nil)
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
	return nil
}
