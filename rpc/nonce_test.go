package rpc

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

func TestNonceCacheReuse(t *testing.T) {
	c := NewNonceCache(15*time.Minute, 100)
	t0 := testNow
	if err := c.Use("ak", "n", t0, t0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Use("ak", "n", t0, t0.Add(time.Second)), rdsbackup.ENonceUsed)
	// Keyed by (key, nonce), and unambiguously so.
	for _, p := range [][2]string{{"ak2", "n"}, {"a", "kn"}, {"akn", ""}} {
		if err := c.Use(p[0], p[1], t0, t0); err != nil {
			t.Errorf("Use(%q, %q): %v", p[0], p[1], err)
		}
	}
	if c.Len() != 4 {
		t.Errorf("Len = %d, want 4", c.Len())
	}
}

func TestNonceCacheAgesOut(t *testing.T) {
	const window = 15 * time.Minute
	c := NewNonceCache(window, 100)
	t0 := testNow

	if err := c.Use("ak", "old", t0, t0); err != nil {
		t.Fatal(err)
	}
	// Still remembered at the very edge of the window...
	wantCode(t, c.Use("ak", "old", t0, t0.Add(window)), rdsbackup.ENonceUsed)
	// ...and past it the timestamp alone refuses the replay.
	wantCode(t, c.Use("ak", "old", t0, t0.Add(window+time.Second)), rdsbackup.ETimestampExpired)

	// A request dated in the future must be remembered until its own
	// timestamp is stale, not merely for a window after it arrived.
	future := t0.Add(window)
	if err := c.Use("ak", "future", future, t0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Use("ak", "future", future, t0.Add(2*window)), rdsbackup.ENonceUsed)

	// Once a bucket is entirely older than the window it is dropped.
	later := t0.Add(window + 5*time.Minute)
	if err := c.Use("ak", "new", later, later); err != nil {
		t.Fatal(err)
	}
	if got := c.Len(); got != 2 { // "future" and "new"
		t.Errorf("Len = %d, want 2", got)
	}
	muchLater := later.Add(window + 2*time.Minute)
	if err := c.Use("ak", "last", muchLater, muchLater); err != nil {
		t.Fatal(err)
	}
	if got := c.Len(); got != 1 {
		t.Errorf("Len = %d, want 1", got)
	}
	c.mu.Lock()
	if len(c.buckets) != 1 {
		t.Errorf("%d buckets, want 1", len(c.buckets))
	}
	c.mu.Unlock()
}

func TestNonceCacheCap(t *testing.T) {
	c := NewNonceCache(15*time.Minute, 3)
	t0 := testNow
	for i := range 3 {
		if err := c.Use("ak", fmt.Sprint(i), t0, t0); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Use("ak", "3", t0, t0)
	wantCode(t, err, rdsbackup.EServiceUnavailable)
	if HTTPStatus(rdsbackup.ErrorCode(err)) != 503 {
		t.Errorf("status %d", HTTPStatus(rdsbackup.ErrorCode(err)))
	}
	// A replay is still reported as such when full.
	wantCode(t, c.Use("ak", "0", t0, t0), rdsbackup.ENonceUsed)
	// Room again once old entries age out.
	later := t0.Add(17 * time.Minute)
	if err := c.Use("ak", "3", later, later); err != nil {
		t.Errorf("after ageing: %v", err)
	}
}

func TestNonceCacheConcurrent(t *testing.T) {
	const workers, perWorker = 8, 500
	c := NewNonceCache(15*time.Minute, workers*perWorker+1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	sharedOK := 0
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				// Spread signed times over several buckets.
				ts := testNow.Add(time.Duration(i%5) * time.Minute)
				if err := c.Use("ak", fmt.Sprintf("%d-%d", w, i), ts, testNow); err != nil {
					t.Error(err)
					return
				}
			}
			if c.Use("ak", "shared", testNow, testNow) == nil {
				mu.Lock()
				sharedOK++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if sharedOK != 1 {
		t.Errorf("shared nonce accepted %d times", sharedOK)
	}
	if got := c.Len(); got != workers*perWorker+1 {
		t.Errorf("Len = %d", got)
	}
}

func TestNonceCacheDefaults(t *testing.T) {
	c := NewNonceCache(0, 0)
	if c.window != DefaultMaxSkew || c.max != DefaultMaxNonces {
		t.Errorf("window %v, max %d", c.window, c.max)
	}
}

func TestHashSet(t *testing.T) {
	var s hashSet
	r := rand.New(rand.NewPCG(1, 2))
	in := make(map[uint64]bool)
	for len(in) < 20000 {
		h := r.Uint64() | 1
		if s.has(h) != in[h] {
			t.Fatalf("has(%x) before add", h)
		}
		if !in[h] {
			s.add(h)
			in[h] = true
		}
		// The documented memory bound: at most 8/(3/8) bytes per entry.
		if len(s.slots) > 16 && float64(8*len(s.slots))/float64(s.n) > 64.0/3+0.01 {
			t.Fatalf("%d entries in %d slots", s.n, len(s.slots))
		}
	}
	for h := range in {
		if !s.has(h) {
			t.Fatalf("lost %x", h)
		}
	}
	for range 1000 {
		if h := r.Uint64() &^ 1; h != 0 && s.has(h) {
			t.Fatalf("has(%x) never added", h)
		}
	}
}
