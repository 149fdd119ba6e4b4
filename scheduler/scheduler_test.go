package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup/scheduler"
)

// clock is a controllable time source.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

type start struct {
	id     string
	window time.Time
	at     time.Time
}

// harness runs a scheduler whose backups take `duration` of clock time.
type harness struct {
	clk      *clock
	s        *scheduler.Scheduler
	starts   []start
	running  map[string]time.Time // id → end
	duration time.Duration
	fail     func(id string) error
	maxSeen  int
}

func newHarness(t0 time.Time) *harness {
	h := &harness{clk: &clock{t0}, running: map[string]time.Time{}}
	h.s = scheduler.New(func(ctx context.Context, id string, w time.Time) error {
		if h.fail != nil {
			if err := h.fail(id); err != nil {
				return err
			}
		}
		h.starts = append(h.starts, start{id, w, h.clk.Now()})
		if h.duration > 0 {
			h.running[id] = h.clk.Now().Add(h.duration)
		}
		h.maxSeen = max(h.maxSeen, len(h.running))
		return nil
	})
	h.s.Now = h.clk.Now
	h.s.Running = func(id string) bool { _, ok := h.running[id]; return ok }
	h.s.Active = func() int { return len(h.running) }
	return h
}

// run advances the clock in steps, finishing backups and ticking.
func (h *harness) run(total, step time.Duration) {
	for end := h.clk.Now().Add(total); h.clk.Now().Before(end); h.clk.Advance(step) {
		for id, done := range h.running {
			if !h.clk.Now().Before(done) {
				delete(h.running, id)
			}
		}
		h.s.Tick(context.Background())
	}
}

func days(ds ...time.Weekday) (out [7]bool) {
	for _, d := range ds {
		out[d] = true
	}
	return out
}

// 2026-11-01 is a Sunday.
var sunday = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func TestThreeWeeksOfWindows(t *testing.T) {
	h := newHarness(sunday)
	sch := scheduler.Schedule{Window: 2*60 + 30, Days: days(time.Monday, time.Wednesday, time.Saturday), Since: sunday}
	h.s.Set("rm-a", sch, time.Time{})
	h.duration = 20 * time.Minute
	h.run(21*24*time.Hour, time.Minute)

	if len(h.starts) != 9 {
		t.Fatalf("%d backups in three weeks, want 9: %v", len(h.starts), h.starts)
	}
	for _, s := range h.starts {
		wd := s.window.Weekday()
		if wd != time.Monday && wd != time.Wednesday && wd != time.Saturday {
			t.Errorf("backup on %v", wd)
		}
		if s.window.Hour() != 2 || s.window.Minute() != 30 || !s.at.Equal(s.window) {
			t.Errorf("window %v started at %v, want at the window's opening", s.window, s.at)
		}
	}
}

func TestStartWhileWindowOpen(t *testing.T) {
	// The service starts (or the policy changes) at 02:45 on a Monday: the
	// window 02:30-03:30 is open and has no backup yet, so it starts now.
	now := sunday.Add(24*time.Hour + 2*time.Hour + 45*time.Minute)
	h := newHarness(now)
	h.s.Set("rm-a", scheduler.Schedule{Window: 150, Days: days(time.Monday, time.Friday), Since: now}, time.Time{})
	h.run(time.Minute, time.Minute)
	if len(h.starts) != 1 || !h.starts[0].at.Equal(now) {
		t.Fatalf("starts: %v", h.starts)
	}
	// Registered after the window closed (03:40): nothing until Friday.
	late := sunday.Add(24*time.Hour + 3*time.Hour + 40*time.Minute)
	h2 := newHarness(late)
	h2.s.Set("rm-b", scheduler.Schedule{Window: 150, Days: days(time.Monday, time.Friday), Since: late}, time.Time{})
	h2.run(3*24*time.Hour, 5*time.Minute)
	if len(h2.starts) != 0 {
		t.Fatalf("a window closed before the policy took effect was caught up: %v", h2.starts)
	}
	h2.run(24*time.Hour, 5*time.Minute)
	if len(h2.starts) != 1 || h2.starts[0].window.Weekday() != time.Friday {
		t.Fatalf("starts: %v", h2.starts)
	}
}

func TestDowntimeCatchesUpOnce(t *testing.T) {
	h := newHarness(sunday)
	sch := scheduler.Schedule{Window: 60, Days: days(time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday), Since: sunday}
	h.s.Set("rm-a", sch, time.Time{})
	h.run(2*24*time.Hour, 10*time.Minute) // Sunday, Monday: one backup (Monday)
	if len(h.starts) != 1 {
		t.Fatalf("before downtime: %v", h.starts)
	}
	// Down from Tuesday 00:00 until Friday 12:00: four windows missed.
	h.clk.Advance(3*24*time.Hour + 12*time.Hour)
	// A restarted process learns the last attempted window from the catalog.
	last := h.starts[0].window
	h2 := newHarness(h.clk.Now())
	h2.s.Set("rm-a", sch, last)
	h2.run(time.Hour, 10*time.Minute)
	if len(h2.starts) != 1 || h2.starts[0].window.Weekday() != time.Friday {
		t.Fatalf("catch-up after downtime: %v, want exactly one, for Friday's window", h2.starts)
	}
	// And not again.
	h2.run(12*time.Hour, 10*time.Minute)
	if len(h2.starts) != 1 {
		t.Fatalf("caught up twice: %v", h2.starts)
	}
}

func TestRestartDoesNotRepeatAWindow(t *testing.T) {
	now := sunday.Add(24*time.Hour + 1*time.Hour + 10*time.Minute) // Monday 01:10, window 01:00-02:00
	sch := scheduler.Schedule{Window: 60, Days: days(time.Monday, time.Tuesday), Since: sunday}
	h := newHarness(now)
	h.s.Set("rm-a", sch, time.Time{})
	h.run(time.Minute, time.Minute)
	if len(h.starts) != 1 {
		t.Fatal(h.starts)
	}
	// Killed and restarted inside the same window.
	h2 := newHarness(now.Add(20 * time.Minute))
	h2.s.Set("rm-a", sch, h.starts[0].window)
	h2.run(30*time.Minute, time.Minute)
	if len(h2.starts) != 0 {
		t.Fatalf("window repeated after restart: %v", h2.starts)
	}
	// Another process already holds the window (StartFunc says so): it is
	// recorded, not retried.
	h3 := newHarness(now)
	calls := 0
	h3.fail = func(string) error { calls++; return scheduler.ErrAttempted }
	h3.s.Set("rm-a", sch, time.Time{})
	h3.run(30*time.Minute, time.Minute)
	if calls != 1 || len(h3.starts) != 0 {
		t.Fatalf("attempted window: %d calls, starts %v", calls, h3.starts)
	}
}

func TestConcurrencyBound(t *testing.T) {
	now := sunday.Add(24 * time.Hour) // Monday 00:00
	h := newHarness(now)
	h.s.MaxConcurrent = 2
	h.duration = 10 * time.Minute
	sch := scheduler.Schedule{Window: 0, Days: days(time.Monday, time.Thursday), Since: sunday}
	for i := range 10 {
		h.s.Set(fmt.Sprintf("rm-%02d", i), sch, time.Time{})
	}
	h.run(time.Hour, time.Minute)
	if len(h.starts) != 10 {
		t.Fatalf("%d of 10 instances backed up in the window", len(h.starts))
	}
	if h.maxSeen != 2 {
		t.Fatalf("at most %d backups ran at once, want the bound 2", h.maxSeen)
	}
	for _, s := range h.starts {
		if s.at.Sub(s.window) >= scheduler.WindowLength {
			t.Errorf("%s started outside its window at %v", s.id, s.at)
		}
	}
}

func TestRunningInstanceSkippedNotDoubled(t *testing.T) {
	now := sunday.Add(24 * time.Hour) // Monday 00:00, window 00:00
	h := newHarness(now)
	h.running["rm-a"] = now.Add(15 * time.Minute) // a manual backup runs
	h.s.Set("rm-a", scheduler.Schedule{Window: 0, Days: days(time.Monday, time.Tuesday), Since: sunday}, time.Time{})
	h.run(time.Hour, time.Minute)
	if len(h.starts) != 1 || h.starts[0].at.Before(now.Add(15*time.Minute)) {
		t.Fatalf("starts: %v, want one, after the running backup ended", h.starts)
	}
}

func TestFailedStartRetriedInWindow(t *testing.T) {
	now := sunday.Add(24 * time.Hour)
	h := newHarness(now)
	n := 0
	h.fail = func(string) error {
		if n++; n < 3 {
			return errors.New("catalog busy")
		}
		return nil
	}
	h.s.Set("rm-a", scheduler.Schedule{Window: 0, Days: days(time.Monday, time.Tuesday), Since: sunday}, time.Time{})
	h.run(30*time.Minute, time.Minute)
	if len(h.starts) != 1 || !h.starts[0].at.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("starts: %v", h.starts)
	}
}

func TestNextWindowAndMidnight(t *testing.T) {
	// A window across midnight: Sunday 23:30-Monday 00:30.
	sch := scheduler.Schedule{Window: 23*60 + 30, Days: days(time.Sunday, time.Wednesday), Since: sunday}
	at := sunday.Add(24*time.Hour + 15*time.Minute) // Monday 00:15, inside Sunday's window
	w, due := scheduler.Due(sch, time.Time{}, at)
	if !due || !w.Equal(sunday.Add(23*time.Hour+30*time.Minute)) {
		t.Fatalf("Due across midnight: %v %v", w, due)
	}
	next := scheduler.NextWindow(sch, at)
	if want := sunday.Add(3*24*time.Hour + 23*time.Hour + 30*time.Minute); !next.Equal(want) {
		t.Fatalf("NextWindow = %v, want %v", next, want)
	}
	h := newHarness(at)
	h.s.Set("rm-a", sch, time.Time{})
	if got := h.s.Next("rm-a"); !got.Equal(w) {
		t.Fatalf("Next before the open window's backup = %v, want %v", got, w)
	}
	h.run(time.Minute, time.Minute)
	if got := h.s.Next("rm-a"); !got.Equal(next) {
		t.Fatalf("Next after it = %v, want %v", got, next)
	}
}

// BenchmarkTick measures one pass over 10,000 scheduled instances with
// nothing due (the common case) and reports the scheduler's heap.
func BenchmarkTick(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	now := sunday.Add(24*time.Hour + 12*time.Hour)
	s := scheduler.New(func(context.Context, string, time.Time) error { return nil })
	s.Now = func() time.Time { return now }
	for i := range 10000 {
		s.Set(fmt.Sprintf("rm-%05d", i), scheduler.Schedule{Window: (i * 7) % (24 * 60), Days: days(time.Monday, time.Thursday, time.Saturday), Since: sunday}, now.Add(-time.Hour))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for b.Loop() {
		s.Tick(context.Background())
	}
	// After the loop: ResetTimer and b.Loop drop metrics reported before.
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-state")
}

// BenchmarkTickBaseline is the floor BenchmarkTick is compared with: the
// same 10,000 entries visited in a map with no schedule arithmetic.
func BenchmarkTickBaseline(b *testing.B) {
	type entry struct {
		sch  scheduler.Schedule
		last time.Time
	}
	m := map[string]*entry{}
	for i := range 10000 {
		m[fmt.Sprintf("rm-%05d", i)] = &entry{sch: scheduler.Schedule{Window: i % 1440}}
	}
	now := sunday
	n := 0
	for b.Loop() {
		for _, e := range m {
			if e.last.After(now) {
				n++
			}
		}
	}
	_ = n
}
