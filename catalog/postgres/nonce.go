package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/noncetotals"
)

// Nonces returns the catalog's replay protection, shared by every node on
// the database: a request's nonce is kept until its signed time is window
// old, so that it is refused by every node, before and after any restart.
// At most maxEntries nonces are held, shared as rdsbackup.NonceStore says.
//
// The requests that arrive during a call are recorded together by the next
// (group commit): one round trip to the use_nonces function of migration
// 0005 and one transaction per batch, whose commit is asynchronous —
// visible to all nodes at once, durable against the death of any rdsbackup
// node, lost only for the last fraction of a second if the PostgreSQL server
// itself crashes. Shares and the bound are checked in the same call against
// counters per key and minute; the totals over all keys are read once a
// second per node (see noncetotals), so with several nodes, or many
// requests in flight, the bound may be passed by what the other nodes
// accepted within that second and a key's share by its requests in flight
// on other nodes — never by more.
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
	root, full     bool
	hash           []byte
	minute, oldest int64
	done           chan error
}

// nonceSweepBatch is how many expired nonces one sweep statement deletes.
const nonceSweepBatch = 5000

// maxNonceBatch bounds a batch (and so its transaction).
const maxNonceBatch = 256

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
	// The share is checked by use_nonces; here only the bound.
	u := &nonceUse{ak: ak, root: root, full: s.shares.Check(root, 0, users, total) != nil,
		hash: rdsbackup.NonceHash(ak, nonce), minute: rdsbackup.NonceMinute(signedAt), oldest: oldest, done: make(chan error, 1)}
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

// commit records a batch with one call; each use gets its own answer.
func (s *nonceStore) commit(batch []*nonceUse) {
	// In hash order, so that two nodes' batches lock the rows of the
	// nonces they share in the same order.
	slices.SortFunc(batch, func(a, b *nonceUse) int { return bytes.Compare(a.hash, b.hash) })
	n := len(batch)
	hashes, minutes, oldest := make([][]byte, n), make([]int64, n), make([]int64, n)
	keys, roots, fulls := make([]string, n), make([]bool, n), make([]bool, n)
	for i, u := range batch {
		hashes[i], minutes[i], oldest[i], keys[i], roots[i], fulls[i] = u.hash, u.minute, u.oldest, u.ak, u.root, u.full
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// One statement, its own transaction: one round trip. The lock order
	// prevents deadlocks; should one happen anyway, the batch is sent again.
	var verdicts []int32
	var err error
	for try := 1; ; try++ {
		err = s.db.pool.QueryRow(ctx, `SELECT use_nonces($1, $2, $3, $4, $5, $6, $7)`,
			hashes, minutes, oldest, keys, roots, fulls, s.shares.UserShare()).Scan(&verdicts)
		if code, _ := pgCode(err); code != "40P01" || try == 3 {
			break
		}
	}
	err = diskFull(err)
	if err == nil && len(verdicts) != n {
		err = fmt.Errorf("use_nonces answered %d verdicts for %d nonces", len(verdicts), n)
	}
	if err != nil {
		s.totals.Invalidate()
		err = fmt.Errorf("record request nonce: %w", err)
	}
	for i, u := range batch {
		if err != nil {
			u.done <- err
			continue
		}
		switch verdicts[i] {
		case 0:
			s.totals.Add(u.root)
			u.done <- nil
		case 1:
			u.done <- rdsbackup.ErrNonceUsed()
		case 2:
			u.done <- rdsbackup.ErrNonceShare()
		case 3:
			u.done <- rdsbackup.ErrNoncesFull()
		default:
			u.done <- fmt.Errorf("record request nonce: use_nonces answered %d", verdicts[i])
		}
	}
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
