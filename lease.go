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

// Singleton runs work on one node of the cluster at a time: every Every
// while this node holds the lease Name, renewed every third of Lease.
// When the holder dies, another node's Singleton takes the lease once it
// has ended, within about Lease.
type Singleton struct {
	Leases LeaseService
	Name   string
	Node   string
	Lease  time.Duration
	Every  time.Duration
	Now    func() time.Time
	// Failed, when set, is told of a lease that could not be renewed.
	Failed func(err error)
}

// Run calls work as above until ctx ends, then frees the lease so that
// another node takes it at once. Work must return well within Lease; a
// catalog that does not answer stops the work (not held) until it does.
func (s *Singleton) Run(ctx context.Context, work func(ctx context.Context)) {
	tick := min(s.Every, s.Lease/3)
	t := time.NewTicker(tick)
	defer t.Stop()
	var last time.Time
	defer func() {
		if err := s.Leases.ReleaseLease(context.WithoutCancel(ctx), s.Name, s.Node); err != nil && s.Failed != nil {
			s.Failed(err)
		}
	}()
	for {
		now := s.Now()
		held, err := s.Leases.AcquireLease(ctx, s.Name, s.Node, now, now.Add(s.Lease))
		if err != nil && ctx.Err() == nil && s.Failed != nil {
			s.Failed(err)
		}
		if held && (last.IsZero() || !now.Before(last.Add(s.Every))) {
			last = now
			work(ctx)
		} else if !held {
			last = time.Time{} // a new holder works at once
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
