package noncetotals

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestTotals(t *testing.T) {
	var c Totals
	reads := 0
	read := func() (int, int, error) { reads++; return 10, 4, nil }
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	get := func(now time.Time, oldest int64) (int, int) {
		t.Helper()
		total, users, err := c.Get(now, oldest, read)
		if err != nil {
			t.Fatal(err)
		}
		return total, users
	}
	if total, users := get(t0, 1); total != 10 || users != 4 || reads != 1 {
		t.Fatalf("first Get: %d %d after %d reads", total, users, reads)
	}
	c.Add(false)
	c.Add(true)
	// Within a second and the same minute: the cache plus this handle's own.
	if total, users := get(t0.Add(999*time.Millisecond), 1); total != 12 || users != 5 || reads != 1 {
		t.Fatalf("cached Get: %d %d after %d reads", total, users, reads)
	}
	// A second later, another oldest minute, an earlier time, after a
	// failure or Invalidate: read again.
	get(t0.Add(time.Second), 1)
	get(t0.Add(time.Second), 2)
	get(t0, 2)
	c.Invalidate()
	get(t0, 2)
	if reads != 5 {
		t.Errorf("%d reads, want 5", reads)
	}
	c.Invalidate()
	if _, _, err := c.Get(t0, 2, func() (int, int, error) { return 0, 0, errors.New("down") }); err == nil {
		t.Error("a failed read was not returned")
	}
	if _, _, err := c.Get(t0, 2, func() (int, int, error) { return 0, 0, errors.New("down") }); err == nil {
		t.Error("a failed read was cached")
	}
}

// A sweep asked for while one runs is run after it, for the newest
// minute; a minute swept is not swept again; a failed one is retried.
func TestSweeper(t *testing.T) {
	var s Sweeper
	var mu sync.Mutex
	var swept []int64
	started, release := make(chan struct{}), make(chan struct{})
	fail := true
	sweep := func(oldest int64) error {
		if oldest == 5 {
			close(started)
			<-release
		}
		mu.Lock()
		defer mu.Unlock()
		swept = append(swept, oldest)
		if oldest == 9 && fail {
			fail = false
			return errors.New("busy")
		}
		return nil
	}
	s.Maybe(5, sweep)
	<-started
	s.Maybe(6, sweep) // while 5 runs
	s.Maybe(7, sweep)
	close(release)
	s.Wait()
	s.Maybe(7, sweep) // done already
	s.Wait()
	s.Maybe(9, sweep) // fails
	s.Wait()
	s.Maybe(9, sweep) // retried
	s.Wait()
	mu.Lock()
	defer mu.Unlock()
	if want := []int64{5, 7, 9, 9}; len(swept) != len(want) || swept[0] != 5 || swept[1] != 7 || swept[2] != 9 || swept[3] != 9 {
		t.Errorf("swept %v, want %v", swept, want)
	}
}
