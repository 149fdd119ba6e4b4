package drill

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// Schedules of an instance's drills.
const (
	// AfterEachSet drills every new Success set once.
	AfterEachSet = "after-each-set"
	// Daily and Weekly drill the newest Success set when no set of the
	// instance passed or failed a drill for a day (a week).
	Daily  = "daily"
	Weekly = "weekly"
)

// Plan is one instance's drills schedule.
type Plan struct {
	Schedule string
	Timeout  time.Duration // 0: the Driller's
}

// SetFinder finds an instance's sets (the catalog).
type SetFinder interface {
	FindBackupSets(ctx context.Context, filter rdsbackup.BackupFilter) ([]*rdsbackup.BackupSet, int, error)
}

// Scheduler starts the scheduled drills, one at a time (the Driller's
// lock), only while no backup runs (Busy), so that a drill never takes a
// backup's place; a drill that is running when a backup starts goes on at
// its low priority.
type Scheduler struct {
	Driller *Driller
	Sets    SetFinder
	Plans   map[string]Plan // by instance id
	// Busy reports whether a backup runs now; nil: never.
	Busy     func() bool
	Interval time.Duration // how often plans are looked at (default 1m)
	Now      func() time.Time
	Logger   *slog.Logger
	// Leases and Node, when set, keep nodes sharing a catalog from
	// drilling one set at once: a drill holds the lease drill/<BackupId>
	// for its timeout (LeaseFor) and frees it when it ends.
	Leases   rdsbackup.LeaseService
	Node     string
	LeaseFor time.Duration

	// tried holds the sets a drill could not run on, and when: they are
	// tried again after retryAfter, not at every tick.
	tried map[int64]time.Time
}

// retryAfter is how long a set whose drill could not run waits before the
// next try.
const retryAfter = time.Hour

// recent is how many of an instance's newest sets a tick looks at.
const recent = 20

func (s *Scheduler) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Scheduler) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Run ticks until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	every := s.Interval
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.Tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick runs the drills that are due now, one after the other, stopping
// when a backup starts or ctx ends.
func (s *Scheduler) Tick(ctx context.Context) {
	if s.tried == nil {
		s.tried = map[int64]time.Time{}
	}
	for inst, p := range s.Plans {
		if ctx.Err() != nil || (s.Busy != nil && s.Busy()) {
			return
		}
		set, err := s.due(ctx, inst, p)
		if err != nil {
			s.logger().Warn("drills: read the instance's sets", "instance", inst, "err", err)
			continue
		}
		if set == nil {
			continue
		}
		release, ok := s.claim(ctx, set.ID, p.Timeout)
		if !ok {
			continue
		}
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if p.Timeout > 0 {
			dctx, cancel = context.WithTimeout(ctx, p.Timeout)
		}
		dr, err := s.Driller.Run(dctx, set.ID, nil)
		cancel()
		release()
		if err != nil {
			s.logger().Error("drills: the scheduled drill", "backupId", set.ID, "err", err)
		}
		if dr == nil || dr.Result == rdsbackup.DrillNotRun || err != nil {
			s.tried[set.ID] = s.now()
		}
	}
}

// claim takes the lease of a drill of set id (see Leases); false when
// another node holds it or the catalog does not answer.
func (s *Scheduler) claim(ctx context.Context, id int64, timeout time.Duration) (func(), bool) {
	if s.Leases == nil {
		return func() {}, true
	}
	if timeout <= 0 {
		timeout = s.LeaseFor
	}
	if timeout <= 0 {
		timeout = time.Hour
	}
	name := fmt.Sprintf("drill/%d", id)
	now := s.now()
	// A minute past the timeout: the drill's cleanup after it.
	held, err := s.Leases.AcquireLease(ctx, name, s.Node, now, now.Add(timeout+time.Minute))
	if err != nil {
		s.logger().Warn("drills: take the drill's lease", "backupId", id, "err", err)
		return nil, false
	}
	if !held {
		return nil, false
	}
	return func() {
		if err := s.Leases.ReleaseLease(context.WithoutCancel(ctx), name, s.Node); err != nil {
			s.logger().Warn("drills: free the drill's lease", "backupId", id, "err", err)
		}
	}, true
}

// due returns the set of inst to drill now, if any.
func (s *Scheduler) due(ctx context.Context, inst string, p Plan) (*rdsbackup.BackupSet, error) {
	success := rdsbackup.BackupSuccess
	sets, _, err := s.Sets.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: inst, Status: &success, Limit: recent})
	if err != nil {
		return nil, err
	}
	now := s.now()
	ready := func(set *rdsbackup.BackupSet) bool {
		at, ok := s.tried[set.ID]
		return set.ObjectKey != "" && set.Method != rdsbackup.MethodSnapshot && (!ok || now.Sub(at) >= retryAfter)
	}
	switch p.Schedule {
	case Daily, Weekly:
		period := 24 * time.Hour
		if p.Schedule == Weekly {
			period *= 7
		}
		var last time.Time
		for _, set := range sets {
			if set.VerifyTime.After(last) {
				last = set.VerifyTime
			}
		}
		if !last.IsZero() && now.Sub(last) < period {
			return nil, nil
		}
		for _, set := range sets {
			if set.Available && ready(set) {
				return set, nil
			}
		}
	default: // AfterEachSet: the newest set no drill judged
		for _, set := range sets {
			if set.VerifyStatus == "" && set.Available && ready(set) {
				return set, nil
			}
		}
	}
	return nil, nil
}
