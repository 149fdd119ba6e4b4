package rpc_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/rpc"
	"github.com/rdsbackup/rdsbackup/rpc/noncetest"
)

// Handles are nodes: a Local cache each, one Shared store.
func TestLayeredNoncesConformance(t *testing.T) {
	noncetest.Run(t, noncetest.Harness{New: func(t *testing.T, window time.Duration, max int) func(*testing.T) rdsbackup.NonceStore {
		shared := rpc.NewNonceCache(window, max)
		return func(*testing.T) rdsbackup.NonceStore {
			return &rpc.LayeredNonces{Local: rpc.NewNonceCache(window, max), Shared: shared, Logger: slog.New(slog.DiscardHandler)}
		}
	}})
}

// failing is a shared store whose writes fail with err.
type failing struct {
	rdsbackup.NonceStore
	err error
}

func (f *failing) UseNonce(ctx context.Context, ak string, root bool, nonce string, signedAt, now time.Time) error {
	if f.err != nil {
		return f.err
	}
	return f.NonceStore.UseNonce(ctx, ak, root, nonce, signedAt, now)
}

// A full shared store leaves the node protected by its own memory, and says
// so once; any other failure refuses the request.
func TestLayeredNoncesSharedFails(t *testing.T) {
	ctx := context.Background()
	t0 := noncetest.T0
	shared := &failing{NonceStore: rpc.NewNonceCache(15*time.Minute, 100)}
	var log bytes.Buffer
	l := &rpc.LayeredNonces{Local: rpc.NewNonceCache(15*time.Minute, 100), Shared: shared, Logger: slog.New(slog.NewTextHandler(&log, nil))}
	use := func(nonce, code string) {
		t.Helper()
		noncetest.WantCode(t, nonce, l.UseNonce(ctx, "ak", true, nonce, t0, t0), code)
	}

	shared.err = rdsbackup.NoSpace("catalog", errors.New("disk full"))
	use("a", "")
	use("b", "")
	use("a", rdsbackup.ENonceUsed) // this process remembers
	if n := strings.Count(log.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d warnings while full, want 1:\n%s", n, log.String())
	}
	shared.err = errors.New("catalog unreachable")
	use("c", rdsbackup.EINTERNAL)
	shared.err = nil
	use("d", "")
	use("a", rdsbackup.ENonceUsed)
	if !strings.Contains(log.String(), "takes nonces again") {
		t.Errorf("no word of the recovery:\n%s", log.String())
	}
	// Another node (its own Local, the same Shared) refuses what this one
	// recorded in Shared, and accepts what only this one's memory holds.
	other := &rpc.LayeredNonces{Local: rpc.NewNonceCache(15*time.Minute, 100), Shared: shared, Logger: slog.New(slog.DiscardHandler)}
	noncetest.WantCode(t, "d on another node", other.UseNonce(ctx, "ak", true, "d", t0, t0), rdsbackup.ENonceUsed)
	noncetest.WantCode(t, "a on another node", other.UseNonce(ctx, "ak", true, "a", t0, t0), "")
}
