package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/noncetotals"
)

// Nonces returns the catalog's replay protection, shared by every node on
// the database: a request's nonce is kept until its signed time is window
// old, so that it is refused by every node, before and after any restart.
// At most maxEntries nonces are held, shared as rdsbackup.NonceStore says.
//
// Each nonce is one statement (the use_nonce function of migration 0005)
// whose commit is asynchronous: visible to all nodes at once, durable
// against the death of any rdsbackup node, and lost only for the last
// fraction of a second if the PostgreSQL server itself crashes. Shares and
// the bound are checked in the same statement against counters per key and
// minute; the totals over all keys are read once a second per node (see
// noncetotals), so with several nodes, or many requests in flight, the
// bound may be passed by what the other nodes accepted within that second
// and a key's share by its requests in flight — never by more.
func (db *DB) Nonces(window time.Duration, maxEntries int) rdsbackup.NonceStore {
	return &nonceStore{db: db, window: window, shares: rdsbackup.NonceShares{Max: maxEntries}}
}

type nonceStore struct {
	db     *DB
	window time.Duration
	shares rdsbackup.NonceShares
	totals noncetotals.Totals
}

// nonceSweepBatch is how many expired nonces one sweep statement deletes.
const nonceSweepBatch = 5000

func (s *nonceStore) UseNonce(ctx context.Context, ak string, root bool, nonce string, signedAt, now time.Time) error {
	if d := now.Sub(signedAt); d > s.window || d < -s.window {
		return rdsbackup.ErrNonceExpired()
	}
	oldest := rdsbackup.NonceMinute(now.Add(-s.window))
	s.db.nonceSweep.Maybe(oldest-noncetotals.SweepMargin, s.sweep)
	total, users, err := s.totals.Get(now, oldest, func() (total, users int, err error) {
		err = s.db.pool.QueryRow(ctx, `SELECT COALESCE(SUM(n), 0), COALESCE(SUM(n) FILTER (WHERE NOT root), 0)
			FROM nonce_counts WHERE minute >= $1`, oldest).Scan(&total, &users)
		return total, users, err
	})
	if err != nil {
		return fmt.Errorf("count request nonces: %w", err)
	}
	// The share is checked in the statement; here only the bound.
	full := s.shares.Check(root, 0, users, total) != nil
	var verdict int
	err = s.db.pool.QueryRow(ctx, `SELECT use_nonce($1, $2, $3, $4, $5, $6, $7)`,
		rdsbackup.NonceHash(ak, nonce), rdsbackup.NonceMinute(signedAt), oldest, ak, root, s.shares.UserShare(), full).Scan(&verdict)
	if err != nil {
		s.totals.Invalidate()
		return fmt.Errorf("record request nonce: %w", diskFull(err))
	}
	switch verdict {
	case 0:
		s.totals.Add(root)
		return nil
	case 1:
		return rdsbackup.ErrNonceUsed()
	case 2:
		return rdsbackup.ErrNonceShare()
	case 3:
		return rdsbackup.ErrNoncesFull()
	}
	return fmt.Errorf("record request nonce: use_nonce answered %d", verdict)
}

func (s *nonceStore) NonceCount(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.db.pool.QueryRow(ctx, `SELECT COALESCE(SUM(n), 0) FROM nonce_counts WHERE minute >= $1`,
		rdsbackup.NonceMinute(now.Add(-s.window))).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count request nonces: %w", err)
	}
	return n, nil
}

// sweep deletes the buckets older than oldest, a batch per statement. Nodes
// may sweep at once; they delete the same rows.
func (s *nonceStore) sweep(oldest int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for {
		// The minute is checked again in the outer statement: a row another
		// node took over after the inner select chose it is re-read with
		// its new minute and kept.
		tag, err := s.db.exec(ctx, `DELETE FROM nonces WHERE minute < $1 AND hash IN
			(SELECT hash FROM nonces WHERE minute < $1 LIMIT $2)`, oldest, nonceSweepBatch)
		if err != nil {
			return err
		}
		if tag.RowsAffected() < nonceSweepBatch {
			break
		}
	}
	_, err := s.db.exec(ctx, `DELETE FROM nonce_counts WHERE minute < $1`, oldest)
	return err
}
