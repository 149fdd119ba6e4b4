package rdsbackup

import (
	"context"
	"time"
)

// LeaseService keeps named leases, each held by at most one node at a
// time: how a cluster-wide singleton (the scheduler, an instance's log
// stream) runs on exactly one node, and moves when that node dies. A lease
// is a row, not a session lock, so that it works behind a connection
// pooler (docs/nodes.md).
type LeaseService interface {
	// AcquireLease makes node the holder of name until until, when name
	// is free, its lease ended at or before now, or node holds it already
	// (a renewal); it reports whether node holds it afterwards.
	AcquireLease(ctx context.Context, name, node string, now, until time.Time) (bool, error)
	// ReleaseLease frees name if node holds it, so that another node takes
	// it at once instead of after the lease time.
	ReleaseLease(ctx context.Context, name, node string) error
}
