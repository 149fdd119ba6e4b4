package rpc_test

import (
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/rpc"
	"github.com/rdsbackup/rdsbackup/rpc/noncetest"
)

// The in-memory store passes the conformance suite; all its handles are
// the one cache.
func TestNonceCacheConformance(t *testing.T) {
	noncetest.Run(t, noncetest.Harness{New: func(t *testing.T, window time.Duration, max int) func(*testing.T) rdsbackup.NonceStore {
		c := rpc.NewNonceCache(window, max)
		return func(*testing.T) rdsbackup.NonceStore { return c }
	}})
}
