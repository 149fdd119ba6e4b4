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
	if err := c.Use("ak", true, "n", t0, t0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Use("ak", true, "n", t0, t0.Add(time.Second)), rdsbackup.ENonceUsed)
	// Keyed by (key, nonce), and unambiguously so.
	for _, p := range [][2]string{{"ak2", "n"}, {"a", "kn"}, {"akn", ""}} {
		if err := c.Use(p[0], true, p[1], t0, t0); err != nil {
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

	if err := c.Use("ak", true, "old", t0, t0); err != nil {
		t.Fatal(err)
	}
	// Still remembered at the very edge of the window...
	wantCode(t, c.Use("ak", true, "old", t0, t0.Add(window)), rdsbackup.ENonceUsed)
	// ...and past it the timestamp alone refuses the replay.
	wantCode(t, c.Use("ak", true, "old", t0, t0.Add(window+time.Second)), rdsbackup.ETimestampExpired)

	// A request dated in the future must be remembered until its own
	// timestamp is stale, not merely for a window after it arrived.
	future := t0.Add(window)
	if err := c.Use("ak", true, "future", future, t0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Use("ak", true, "future", future, t0.Add(2*window)), rdsbackup.ENonceUsed)

	// Once a bucket is entirely older than the window it is dropped.
	later := t0.Add(window + 5*time.Minute)
	if err := c.Use("ak", true, "new", later, later); err != nil {
		t.Fatal(err)
	}
	if got := c.Len(); got != 2 { // "future" and "new"
		t.Errorf("Len = %d, want 2", got)
	}
	muchLater := later.Add(window + 2*time.Minute)
	if err := c.Use("ak", true, "last", muchLater, muchLater); err != nil {
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
		if err := c.Use("ak", true, fmt.Sprint(i), t0, t0); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Use("ak", true, "3", t0, t0)
	wantCode(t, err, rdsbackup.EServiceUnavailable)
	if HTTPStatus(rdsbackup.ErrorCode(err)) != 503 {
		t.Errorf("status %d", HTTPStatus(rdsbackup.ErrorCode(err)))
	}
	// A replay is still reported as such when full.
	wantCode(t, c.Use("ak", true, "0", t0, t0), rdsbackup.ENonceUsed)
	// Room again once old entries age out.
	later := t0.Add(17 * time.Minute)
	if err := c.Use("ak", true, "3", later, later); err != nil {
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
				if err := c.Use("ak", true, fmt.Sprintf("%d-%d", w, i), ts, testNow); err != nil {
					t.Error(err)
					return
				}
			}
			if c.Use("ak", true, "shared", testNow, testNow) == nil {
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

// TestNonceCacheShares: a RAM user's key holds at most 1/16 of the cap and
// is throttled past it; RAM users together leave 1/4 to root keys; counts
// are released as buckets age out.
func TestNonceCacheShares(t *testing.T) {
	c := NewNonceCache(15*time.Minute, 1600) // 100 per RAM key, 1200 for all of them
	t0 := testNow
	use := func(ak string, root bool, n int) error {
		for i := range n {
			if err := c.Use(ak, root, fmt.Sprint(i), t0, t0); err != nil {
				return err
			}
		}
		return nil
	}
	if err := use("u0", false, 100); err != nil {
		t.Fatal(err)
	}
	err := c.Use("u0", false, "one more", t0, t0)
	wantCode(t, err, rdsbackup.EThrottling)
	if HTTPStatus(rdsbackup.ErrorCode(err)) != 400 || c.Held("u0") != 100 {
		t.Errorf("status %d, held %d", HTTPStatus(rdsbackup.ErrorCode(err)), c.Held("u0"))
	}
	for i := 1; i < 12; i++ {
		if err := use(fmt.Sprint("u", i), false, 100); err != nil {
			t.Fatalf("RAM key %d within its share: %v", i, err)
		}
	}
	// RAM users' 1,200 are used: a new RAM key waits, root does not.
	wantCode(t, c.Use("u12", false, "x", t0, t0), rdsbackup.EServiceUnavailable)
	if err := use("root", true, 400); err != nil {
		t.Fatalf("root in its reserve: %v", err)
	}
	wantCode(t, c.Use("root", true, "full", t0, t0), rdsbackup.EServiceUnavailable)
	if c.Len() != 1600 {
		t.Errorf("Len %d", c.Len())
	}
	// Aged out, the shares are free again.
	later := t0.Add(17 * time.Minute)
	if err := c.Use("u0", false, "later", later, later); err != nil {
		t.Fatal(err)
	}
	if c.Held("u0") != 1 || c.Held("root") != 0 || c.Len() != 1 {
		t.Errorf("after ageing: u0 %d, root %d, len %d", c.Held("u0"), c.Held("root"), c.Len())
	}
}

func TestKeyRates(t *testing.T) {
	r := NewKeyRates(1, 2)
	t0 := testNow
	for i := range 2 {
		if !r.Allow("a", t0) {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if r.Allow("a", t0) {
		t.Error("over the burst allowed")
	}
	if !r.Allow("b", t0) {
		t.Error("another key throttled")
	}
	if !r.Allow("a", t0.Add(time.Second)) || r.Allow("a", t0.Add(time.Second)) {
		t.Error("not one request per second")
	}
	// Idle keys are forgotten past maxIdleLimiters, busy ones are not.
	for i := range maxIdleLimiters {
		r.Allow(fmt.Sprint("k", i), t0.Add(time.Hour))
	}
	// An hour later all are full again, and forgotten when a new key comes.
	if !r.Allow("new", t0.Add(2*time.Hour)) {
		t.Error("new key throttled")
	}
	r.mu.Lock()
	n := len(r.keys)
	r.mu.Unlock()
	if n > 3 {
		t.Errorf("%d limiters kept", n)
	}
}
