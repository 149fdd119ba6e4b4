package drill

import (
	"context"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

type fakeSets []*rdsbackup.BackupSet

func (f fakeSets) FindBackupSets(ctx context.Context, filter rdsbackup.BackupFilter) ([]*rdsbackup.BackupSet, int, error) {
	var out []*rdsbackup.BackupSet
	for _, s := range f {
		if s.InstanceID == filter.InstanceID && (filter.Status == nil || s.Status == *filter.Status) {
			out = append(out, s)
		}
	}
	return out, len(out), nil
}

// TestSchedulerDue: which set each schedule drills, and when.
func TestSchedulerDue(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	set := func(id int64, verified time.Time, status rdsbackup.VerifyStatus, avail bool) *rdsbackup.BackupSet {
		return &rdsbackup.BackupSet{ID: id, InstanceID: "rm-a", Status: rdsbackup.BackupSuccess, ObjectKey: "k",
			Method: rdsbackup.MethodLogical, Available: avail, VerifyStatus: status, VerifyTime: verified}
	}
	// Newest first, as the catalog returns them.
	sets := fakeSets{
		set(5, time.Time{}, "", false), // unavailable: never drilled
		set(4, time.Time{}, "", true),
		set(3, now.Add(-2*time.Hour), rdsbackup.VerifyPassed, true),
		set(2, time.Time{}, "", true),
		{ID: 6, InstanceID: "rm-a", Status: rdsbackup.BackupFailed},
	}
	s := &Scheduler{Sets: sets, Now: func() time.Time { return now }, tried: map[int64]time.Time{}}
	due := func(p Plan) int64 {
		t.Helper()
		got, err := s.due(context.Background(), "rm-a", p)
		if err != nil {
			t.Fatal(err)
		}
		if got == nil {
			return 0
		}
		return got.ID
	}
	if got := due(Plan{Schedule: AfterEachSet}); got != 4 {
		t.Errorf("after-each-set drills set %d, want 4 (the newest available set no drill judged)", got)
	}
	s.tried[4] = now.Add(-time.Minute)
	if got := due(Plan{Schedule: AfterEachSet}); got != 2 {
		t.Errorf("after a drill of 4 could not run: set %d, want 2 (4 waits an hour)", got)
	}
	s.tried[4] = now.Add(-retryAfter)
	if got := due(Plan{Schedule: AfterEachSet}); got != 4 {
		t.Errorf("an hour after: set %d, want 4 again", got)
	}
	delete(s.tried, 4)
	if got := due(Plan{Schedule: Daily}); got != 0 {
		t.Errorf("daily, a set drilled 2h ago: set %d, want none", got)
	}
	sets[2].VerifyTime = now.Add(-25 * time.Hour)
	if got := due(Plan{Schedule: Daily}); got != 4 {
		t.Errorf("daily, last drill 25h ago: set %d, want 4 (the newest available)", got)
	}
	if got := due(Plan{Schedule: Weekly}); got != 0 {
		t.Errorf("weekly, last drill 25h ago: set %d, want none", got)
	}
	sets[2].VerifyTime = now.Add(-8 * 24 * time.Hour)
	if got := due(Plan{Schedule: Weekly}); got != 4 {
		t.Errorf("weekly, last drill 8 days ago: set %d, want 4", got)
	}
	s.Busy, s.Plans = func() bool { return true }, map[string]Plan{"rm-a": {Schedule: AfterEachSet}}
	s.Driller = nil // a drill started now would panic: Tick must not start one
	s.Tick(context.Background())
}

type fakeLeases struct{ holder map[string]string }

func (f *fakeLeases) AcquireLease(ctx context.Context, name, node string, now, until time.Time) (bool, error) {
	if h, ok := f.holder[name]; ok && h != node {
		return false, nil
	}
	f.holder[name] = node
	return true, nil
}

func (f *fakeLeases) ReleaseLease(ctx context.Context, name, node string) error {
	if f.holder[name] == node {
		delete(f.holder, name)
	}
	return nil
}

// TestSchedulerClaim: two nodes never drill one set at once.
func TestSchedulerClaim(t *testing.T) {
	leases := &fakeLeases{holder: map[string]string{}}
	a := &Scheduler{Leases: leases, Node: "a"}
	b := &Scheduler{Leases: leases, Node: "b"}
	release, ok := a.claim(context.Background(), 7, time.Minute)
	if !ok {
		t.Fatal("a could not claim a free drill")
	}
	if _, ok := b.claim(context.Background(), 7, time.Minute); ok {
		t.Fatal("b claimed the drill a holds")
	}
	if _, ok := b.claim(context.Background(), 8, time.Minute); !ok {
		t.Fatal("b could not claim another set's drill")
	}
	release()
	if _, ok := b.claim(context.Background(), 7, time.Minute); !ok {
		t.Fatal("b could not claim the drill a freed")
	}
}
