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
// The nonces live in a file of their own beside the catalog's (NoncePath).
// In the catalog's file every commit would make each reader connection drop
// its whole page cache at its next read (SQLite resets a WAL reader's cache
// when the log changed), so DescribeBackups would read its index pages
// again on every call (BENCHMARKS.md). The file is written by one connection whose commits are
// not synced to disk (synchronous=NORMAL in WAL mode): a commit is in the
// operating system's cache when UseNonce returns, so a killed process loses
// nothing, and only a power cut or a kernel crash can forget the last
// moments' nonces; syncing each one as the catalog's own writes are would
// cost a disk flush per request. Requests that arrive while a transaction
// runs are recorded together in the next one (group commit), so that at any
// concurrency there is about one commit in flight.
func (db *DB) Nonces(window time.Duration, maxEntries int) rdsbackup.NonceStore {
	s := &nonceStore{db: db, window: window, shares: rdsbackup.NonceShares{Max: maxEntries}}
	s.batches = noncetotals.Batcher[*nonceUse]{Run: s.commit, Max: maxNonceBatch}
	return s
}

type nonceStore struct {
	db      *DB
	window  time.Duration
	shares  rdsbackup.NonceShares
	totals  noncetotals.Totals
	batches noncetotals.Batcher[*nonceUse]
}

// nonceUse is one request waiting for its batch.
type nonceUse struct {
	ak             string
	root           bool
	hash           []byte
	minute, oldest int64
	now            time.Time
	done           chan error
}

// nonceSweepBatch is how many expired nonces one sweep transaction deletes,
// so that requests get the writer in between.
const nonceSweepBatch = 2000

// maxNonceBatch bounds a batch (and so its transaction).
const maxNonceBatch = 256

func (s *nonceStore) UseNonce(ctx context.Context, ak string, root bool, nonce string, signedAt, now time.Time) error {
	if d := now.Sub(signedAt); d > s.window || d < -s.window {
		return rdsbackup.ErrNonceExpired()
	}
	u := &nonceUse{ak: ak, root: root, hash: rdsbackup.NonceHash(ak, nonce), minute: rdsbackup.NonceMinute(signedAt),
		oldest: rdsbackup.NonceMinute(now.Add(-s.window)), now: now, done: make(chan error, 1)}
	s.db.nonceSweep.Maybe(u.oldest-noncetotals.SweepMargin, s.sweep)
	s.batches.Add(u)
	select {
	case err := <-u.done:
		return err
	case <-ctx.Done():
		// The batch may still record the nonce: the request is refused
		// either way, and a retry signs a new one.
		return ctx.Err()
	}
}

// commit records a batch in one transaction; each use gets its own answer.
func (s *nonceStore) commit(batch []*nonceUse) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	refused := make([]error, len(batch))
	err := diskFull(s.db.nonceTx(ctx, func(tx *sql.Tx, st *nonceStmts) error {
		for i, u := range batch {
			var err error
			if refused[i], err = s.use(ctx, tx, st, u); err != nil {
				return err
			}
		}
		return nil
	}))
	if err != nil {
		s.totals.Invalidate()
		err = fmt.Errorf("record request nonce: %w", err)
	}
	for i, u := range batch {
		if err != nil {
			u.done <- err
		} else {
			u.done <- refused[i]
		}
	}
}

// use records one nonce in tx, or returns why it is refused. The insert
// itself finds a replay; only a refusal for the shares looks first, so
// that a replay is told as one.
func (s *nonceStore) use(ctx context.Context, tx *sql.Tx, st *nonceStmts, u *nonceUse) (refused, err error) {
	held := 0
	if !u.root {
		if err := tx.StmtContext(ctx, st.held).QueryRowContext(ctx, u.ak, u.oldest).Scan(&held); err != nil {
			return nil, err
		}
	}
	total, users, err := s.totals.Get(u.now, u.oldest, func() (total, users int, err error) {
		err = tx.StmtContext(ctx, st.totals).QueryRowContext(ctx, u.oldest).Scan(&total, &users)
		return total, users, err
	})
	if err != nil {
		return nil, err
	}
	if refused := s.shares.Check(u.root, held, users, total); refused != nil {
		var one int
		switch err := tx.StmtContext(ctx, st.seen).QueryRowContext(ctx, u.hash, u.oldest).Scan(&one); {
		case err == nil:
			return rdsbackup.ErrNonceUsed(), nil
		case err != sql.ErrNoRows:
			return nil, err
		}
		return refused, nil
	}
	r, err := tx.StmtContext(ctx, st.insert).ExecContext(ctx, u.hash, u.minute, u.oldest)
	if err != nil {
		return nil, err
	}
	if n, err := r.RowsAffected(); err != nil {
		return nil, err
	} else if n == 0 {
		return rdsbackup.ErrNonceUsed(), nil
	}
	if _, err := tx.StmtContext(ctx, st.count).ExecContext(ctx, u.ak, u.minute, boolInt(u.root)); err != nil {
		return nil, err
	}
	s.totals.Add(u.root)
	return nil, nil
}

// nonceStmts are the nonce writer's prepared statements.
type nonceStmts struct {
	seen, held, totals, insert, count *sql.Stmt
}

var nonceQueries = [...]string{
	`SELECT 1 FROM nonces WHERE hash = ? AND minute >= ?`,
	`SELECT COALESCE(SUM(n), 0) FROM nonce_counts WHERE access_key = ? AND minute >= ?`,
	`SELECT COALESCE(SUM(n), 0), COALESCE(SUM(CASE WHEN root = 0 THEN n ELSE 0 END), 0) FROM nonce_counts WHERE minute >= ?`,
	// A row still here from an expired minute is taken over; a live one
	// is a replay, and the statement changes nothing.
	`INSERT INTO nonces (hash, minute) VALUES (?, ?) ON CONFLICT (hash) DO UPDATE SET minute = excluded.minute WHERE nonces.minute < ?`,
	`INSERT INTO nonce_counts (access_key, minute, root, n) VALUES (?, ?, ?, 1) ON CONFLICT (access_key, minute) DO UPDATE SET n = n + 1`,
}

// prepareNonces prepares the nonce writer's statements, once.
func (db *DB) prepareNonces(ctx context.Context) (*nonceStmts, error) {
	db.nonceStmtMu.Lock()
	defer db.nonceStmtMu.Unlock()
	if db.nonceStmts != nil {
		return db.nonceStmts, nil
	}
	var ps [len(nonceQueries)]*sql.Stmt
	for i, q := range nonceQueries {
		var err error
		if ps[i], err = db.nonceW.PrepareContext(ctx, q); err != nil {
			for _, p := range ps[:i] {
				p.Close()
			}
			return nil, err
		}
	}
	db.nonceStmts = &nonceStmts{seen: ps[0], held: ps[1], totals: ps[2], insert: ps[3], count: ps[4]}
	return db.nonceStmts, nil
}

func (s *nonceStore) NonceCount(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.db.nonceW.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0) FROM nonce_counts WHERE minute >= ?`,
		rdsbackup.NonceMinute(now.Add(-s.window))).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count request nonces: %w", err)
	}
	return n, nil
}

// sweep deletes the minutes older than oldest, a batch per transaction.
func (s *nonceStore) sweep(oldest int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for {
		var n int64
		err := s.db.nonceTx(ctx, func(tx *sql.Tx, _ *nonceStmts) error {
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
	return s.db.nonceTx(ctx, func(tx *sql.Tx, _ *nonceStmts) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM nonce_counts WHERE minute < ?`, oldest)
		return err
	})
}

// nonceTx runs fn in a transaction on the nonce writer.
func (db *DB) nonceTx(ctx context.Context, fn func(tx *sql.Tx, st *nonceStmts) error) error {
	st, err := db.prepareNonces(ctx)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	tx, err := db.nonceW.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx, st); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
