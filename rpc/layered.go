package rpc

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// LayeredNonces is the replay memory of a node on a shared store (the
// catalog's): every nonce is recorded in the process's Local cache first,
// then in Shared, which the other nodes and later processes see.
//
// Local answers a replay to this node without a round trip, and keeps the
// node protected when Shared cannot take writes for want of space
// (rdsbackup.ENOSPACE, a full catalog disk): the request is then accepted
// on Local's word alone — protected against replay to this process, as
// with auth.nonceStore: memory — so that reads keep working while the disk
// is full, as they do without replay protection in the catalog. Any other
// failure of Shared refuses the request.
type LayeredNonces struct {
	Local  *NonceCache
	Shared rdsbackup.NonceStore
	Logger *slog.Logger // required

	degraded atomic.Bool // Shared was last seen full
}

// UseNonce implements rdsbackup.NonceStore.
func (l *LayeredNonces) UseNonce(ctx context.Context, accessKeyID string, root bool, nonce string, signedAt, now time.Time) error {
	if err := l.Local.Use(accessKeyID, root, nonce, signedAt, now); err != nil {
		return err
	}
	err := l.Shared.UseNonce(ctx, accessKeyID, root, nonce, signedAt, now)
	switch rdsbackup.ErrorCode(err) {
	case rdsbackup.ENOSPACE:
		if !l.degraded.Swap(true) {
			l.Logger.Error("replay protection: the catalog is full; nonces are kept by this process alone until it takes writes again", "err", err)
		}
		return nil
	case "":
		if l.degraded.Swap(false) {
			l.Logger.Info("replay protection: the catalog takes nonces again")
		}
	}
	return err
}

// NonceCount is Shared's count, or Local's when Shared cannot say.
func (l *LayeredNonces) NonceCount(ctx context.Context, now time.Time) (int, error) {
	if n, err := l.Shared.NonceCount(ctx, now); err == nil {
		return n, nil
	}
	return l.Local.NonceCount(ctx, now)
}
