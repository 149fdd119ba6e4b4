// Package scheduler decides when each instance's automated backup is due
// and starts it through a callback. It knows nothing of the catalog or the
// engines: its state is a small struct per instance, its clock is injected,
// and Tick is one pass over that state, so weeks of schedule can be driven
// in a test in milliseconds.
package scheduler

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// WindowLength is the length of a backup window, as RDS offers.
const WindowLength = time.Hour

// Schedule is what the scheduler needs of a policy.
type Schedule struct {
	Window int       // minutes after 00:00 UTC
	Days   [7]bool   // indexed by time.Weekday
	Since  time.Time // windows that closed before this are not missed
}

// entry is the state kept per instance (about 100 bytes).
type entry struct {
	schedule Schedule
	last     time.Time // start of the latest window a job was started for
}

// StartFunc starts the automated backup of an instance for the window
// starting at window. It returns ErrAttempted when a job for that window
// already exists (another process, or a restart, started it).
type StartFunc func(ctx context.Context, instanceID string, window time.Time) error

// Scheduler starts automated backups when their window opens.
type Scheduler struct {
	Now   func() time.Time
	Start StartFunc
	// Running reports whether an instance has a backup running (skipped,
	// not doubled); Active how many backups run in all.
	Running func(instanceID string) bool
	Active  func() int
	// MaxConcurrent bounds the backups running at once; due instances
	// beyond it wait for a later tick in their window.
	MaxConcurrent int
	Logger        *slog.Logger
	// Metrics, when set, is told how long each Tick took.
	Metrics TickMetrics

	mu      sync.Mutex
	entries map[string]*entry
}

// New returns a Scheduler with defaults.
func New(start StartFunc) *Scheduler {
	return &Scheduler{Now: time.Now, Start: start, MaxConcurrent: 2, Logger: slog.New(slog.DiscardHandler),
		Running: func(string) bool { return false }, Active: func() int { return 0 }, entries: map[string]*entry{}}
}

// Set adds or updates an instance's schedule; last is the start of the
// latest window it already had a job for (zero if none).
func (s *Scheduler) Set(instanceID string, sch Schedule, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[instanceID]
	if e == nil {
		e = &entry{}
		s.entries[instanceID] = e
	}
	e.schedule = sch
	if last.After(e.last) {
		e.last = last
	}
}

// Remove forgets an instance.
func (s *Scheduler) Remove(instanceID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, instanceID)
}

// Len returns the number of scheduled instances.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// LatestWindow returns the start of the latest backup window that started
// at or before now, or zero if the schedule has no day.
func LatestWindow(sch Schedule, now time.Time) time.Time {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	for i := 0; i <= 7; i++ {
		d := day.AddDate(0, 0, -i)
		w := d.Add(time.Duration(sch.Window) * time.Minute)
		if sch.Days[d.Weekday()] && !w.After(now) {
			return w
		}
	}
	return time.Time{}
}

// NextWindow returns the start of the first window after now.
func NextWindow(sch Schedule, now time.Time) time.Time {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	for i := 0; i <= 8; i++ {
		d := day.AddDate(0, 0, i)
		w := d.Add(time.Duration(sch.Window) * time.Minute)
		if sch.Days[d.Weekday()] && w.After(now) {
			return w
		}
	}
	return time.Time{}
}

// Due says whether a backup is due now, and for which window:
//   - the latest window is open and has no job yet: due;
//   - it has closed without a job (the service was down, or busy until it
//     closed) and it opened after the schedule took effect: due once, to
//     catch up. Only the latest window is ever considered, so downtime of
//     any length causes at most one catch-up backup, never a burst.
func Due(sch Schedule, last, now time.Time) (time.Time, bool) {
	w := LatestWindow(sch, now)
	if w.IsZero() || !w.After(last) {
		return time.Time{}, false
	}
	if now.Before(w.Add(WindowLength)) {
		return w, true
	}
	return w, !w.Before(sch.Since)
}

// Next returns when the instance's next automated backup is planned: the
// open window if it has no job yet, else the next window.
func (s *Scheduler) Next(instanceID string) time.Time {
	s.mu.Lock()
	e := s.entries[instanceID]
	s.mu.Unlock()
	if e == nil {
		return time.Time{}
	}
	now := s.Now()
	if w, due := Due(e.schedule, e.last, now); due && now.Before(w.Add(WindowLength)) {
		return w
	}
	return NextWindow(e.schedule, now)
}

// ErrAttempted is returned by a StartFunc when the window already has a job.
var ErrAttempted = attempted{}

type attempted struct{}

func (attempted) Error() string { return "the window already has a job" }

// TickMetrics is what the scheduler reports to a metrics system.
type TickMetrics interface {
	TickDone(took time.Duration, started int)
}

// Tick starts the backups that are due, oldest window first, as far as the
// concurrency bound allows. It returns how many it started.
func (s *Scheduler) Tick(ctx context.Context) int {
	start := s.Now()
	started := s.tick(ctx, start)
	if s.Metrics != nil {
		s.Metrics.TickDone(s.Now().Sub(start), started)
	}
	return started
}

func (s *Scheduler) tick(ctx context.Context, now time.Time) int {
	type due struct {
		id     string
		window time.Time
	}
	var list []due
	s.mu.Lock()
	for id, e := range s.entries {
		if w, ok := Due(e.schedule, e.last, now); ok {
			list = append(list, due{id, w})
		}
	}
	s.mu.Unlock()
	if len(list) == 0 {
		return 0
	}
	// Fair and deterministic: longest-waiting window first, then by id.
	sort.Slice(list, func(i, j int) bool {
		if !list[i].window.Equal(list[j].window) {
			return list[i].window.Before(list[j].window)
		}
		return list[i].id < list[j].id
	})
	started := 0
	for _, d := range list {
		if s.MaxConcurrent > 0 && s.Active() >= s.MaxConcurrent {
			break
		}
		if s.Running(d.id) {
			continue
		}
		err := s.Start(ctx, d.id, d.window)
		if err != nil && err != ErrAttempted {
			// Not recorded as attempted: the next tick in the window retries.
			s.Logger.Warn("automated backup not started", "instance", d.id, "window", d.window, "err", err)
			continue
		}
		s.mu.Lock()
		if e := s.entries[d.id]; e != nil && d.window.After(e.last) {
			e.last = d.window
		}
		s.mu.Unlock()
		if err == nil {
			started++
		}
	}
	return started
}

// Run ticks every interval until ctx ends.
func (s *Scheduler) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
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
