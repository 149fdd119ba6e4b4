// Package noncetest is the conformance suite of rdsbackup.NonceStore, the
// replay protection of signed requests: replays refused within the window
// and forgotten after it, the per-key share and the root keys' reserve, the
// bound, and many goroutines (and handles, i.e. nodes) racing on one nonce.
// Every implementation runs it from its own tests:
//
//	func TestNonceConformance(t *testing.T) {
//		noncetest.Run(t, noncetest.Harness{New: func(t *testing.T, window time.Duration, max int) func(t *testing.T) rdsbackup.NonceStore {
//			… make an empty store
//			return func(t *testing.T) rdsbackup.NonceStore { … open a handle on it }
//		}})
//	}
//
// The suite passes every time explicitly (signedAt, now), so stores must
// take their notion of the present from the arguments, not from a clock.
package noncetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// Harness makes stores for the suite.
type Harness struct {
	// New makes an empty store that remembers nonces for window and holds at
	// most max, and returns a function that opens a handle on it. Handles
	// of one store share its nonces, as nodes on one catalog do (an
	// in-memory store returns itself). The harness closes what it opens
	// when t ends.
	New func(t *testing.T, window time.Duration, max int) (open func(t *testing.T) rdsbackup.NonceStore)
}

// T0 is the time the suite's requests are signed around.
var T0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

const window = 15 * time.Minute

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		max  int
		fn   func(*testing.T, func(*testing.T) rdsbackup.NonceStore)
	}{
		{"Replay", 100, testReplay},
		{"Window", 100, testWindow},
		{"UserShare", 64, testUserShare},
		{"RootReserve", 64, testRootReserve},
		{"Bound", 20, testBound},
		{"SameNonceRace", 1000, testSameNonceRace},
		{"ManyNonces", 1000, testManyNonces},
		{"Handles", 100, testHandles},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, h.New(t, window, tt.max)) })
	}
}

// WantCode fails t unless err has the domain code code ("" for nil).
func WantCode(t testing.TB, what string, err error, code string) {
	t.Helper()
	if got := rdsbackup.ErrorCode(err); got != code {
		t.Fatalf("%s: code %q (%v), want %q", what, got, err, code)
	}
}

func use(t *testing.T, s rdsbackup.NonceStore, ak string, root bool, nonce string, signedAt, now time.Time, code string) {
	t.Helper()
	WantCode(t, fmt.Sprintf("UseNonce(%q, root=%v, %q, %s, %s)", ak, root, nonce, signedAt.Format(time.TimeOnly), now.Format(time.TimeOnly)),
		s.UseNonce(t.Context(), ak, root, nonce, signedAt, now), code)
}

func count(t *testing.T, s rdsbackup.NonceStore, now time.Time, want int) {
	t.Helper()
	n, err := s.NonceCount(t.Context(), now)
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("NonceCount = %d, want %d", n, want)
	}
}

func testReplay(t *testing.T, open func(*testing.T) rdsbackup.NonceStore) {
	s := open(t)
	use(t, s, "ak", true, "n", T0, T0, "")
	use(t, s, "ak", true, "n", T0, T0.Add(time.Second), rdsbackup.ENonceUsed)
	// A RAM key is refused the same way.
	use(t, s, "ram", false, "n", T0, T0, "")
	use(t, s, "ram", false, "n", T0, T0.Add(time.Minute), rdsbackup.ENonceUsed)
	// Keyed by (key, nonce), and unambiguously so.
	for _, p := range [][2]string{{"ak2", "n"}, {"a", "kn"}, {"akn", ""}} {
		use(t, s, p[0], true, p[1], T0, T0, "")
	}
	// A long nonce is a nonce like another.
	long := string(make([]byte, 4096))
	use(t, s, "ak", true, long, T0, T0, "")
	use(t, s, "ak", true, long, T0, T0, rdsbackup.ENonceUsed)
	count(t, s, T0, 6)
}

func testWindow(t *testing.T, open func(*testing.T) rdsbackup.NonceStore) {
	s := open(t)
	use(t, s, "ak", true, "old", T0, T0, "")
	// Still remembered at the very edge of the window...
	use(t, s, "ak", true, "old", T0, T0.Add(window), rdsbackup.ENonceUsed)
	// ...and past it the timestamp alone refuses the replay.
	use(t, s, "ak", true, "old", T0, T0.Add(window+time.Second), rdsbackup.ETimestampExpired)
	use(t, s, "ak", true, "early", T0.Add(window+time.Second), T0, rdsbackup.ETimestampExpired)

	// A request dated in the future is remembered until its own timestamp
	// is stale, not merely for a window after it arrived.
	future := T0.Add(window)
	use(t, s, "ak", false, "future", future, T0, "")
	use(t, s, "ak", false, "future", future, T0.Add(2*window), rdsbackup.ENonceUsed)

	// Once its bucket is older than the window a nonce is forgotten: the
	// same nonce signed anew is accepted, and counted once.
	later := T0.Add(window + 2*time.Minute)
	count(t, s, later, 1) // "future"
	use(t, s, "ak", true, "old", later, later, "")
	use(t, s, "ak", true, "old", later, later, rdsbackup.ENonceUsed)
	count(t, s, later, 2)
	muchLater := later.Add(window + 2*time.Minute)
	use(t, s, "ak", false, "future", muchLater, muchLater, "")
	count(t, s, muchLater, 1)
	// A forgotten nonce no longer counts against its key's share.
	use(t, s, "ak", false, "again", muchLater, muchLater, "")
}

// A RAM user's key holds at most 1/16 of the bound; the next nonce is
// throttled and takes nothing, while other keys go on.
func testUserShare(t *testing.T, open func(*testing.T) rdsbackup.NonceStore) {
	s := open(t)
	share := (rdsbackup.NonceShares{Max: 64}).UserShare()
	for i := range share {
		use(t, s, "u1", false, fmt.Sprint(i), T0, T0, "")
	}
	use(t, s, "u1", false, "over", T0, T0, rdsbackup.EThrottling)
	// A replay is still a replay, not a throttle.
	use(t, s, "u1", false, "0", T0, T0, rdsbackup.ENonceUsed)
	use(t, s, "u2", false, "0", T0, T0, "")
	use(t, s, "root", true, "0", T0, T0, "")
	count(t, s, T0, share+2)
	// The refused nonce was not recorded: once the share frees up (the
	// bucket ages out), it is accepted.
	later := T0.Add(window + 2*time.Minute)
	use(t, s, "u1", false, "over", later, later, "")
}

// RAM users together leave a quarter of the bound to the root keys.
func testRootReserve(t *testing.T, open func(*testing.T) rdsbackup.NonceStore) {
	const max = 64
	s := open(t)
	share := (rdsbackup.NonceShares{Max: max}).UserShare()
	usersMax := max - max/rdsbackup.RootReserveDivisor
	k := 0
	for i := 0; i < usersMax; i++ {
		if i%share == 0 {
			k++
		}
		use(t, s, fmt.Sprint("user", k), false, fmt.Sprint(i), T0, T0, "")
	}
	use(t, s, "newcomer", false, "x", T0, T0, rdsbackup.EServiceUnavailable)
	for i := usersMax; i < max; i++ {
		use(t, s, "root", true, fmt.Sprint(i), T0, T0, "")
	}
	use(t, s, "root", true, "one too many", T0, T0, rdsbackup.EServiceUnavailable)
	count(t, s, T0, max)
}

// The bound holds, refusals take no room, and room comes back with time.
func testBound(t *testing.T, open func(*testing.T) rdsbackup.NonceStore) {
	const max = 20
	s := open(t)
	for i := range max {
		// Spread over minutes, so that the bound counts every bucket.
		at := T0.Add(time.Duration(i%5) * time.Minute)
		use(t, s, "root", true, fmt.Sprint(i), at, at, "")
	}
	at := T0.Add(4 * time.Minute)
	use(t, s, "root", true, "full", at, at, rdsbackup.EServiceUnavailable)
	use(t, s, "root", true, "full", at, at, rdsbackup.EServiceUnavailable)
	use(t, s, "root", true, "3", T0.Add(3*time.Minute), at, rdsbackup.ENonceUsed)
	count(t, s, at, max)
	// T0's bucket ages out: its four nonces' room is free again.
	next := T0.Add(window + time.Minute)
	for i := range max / 5 {
		use(t, s, "root", true, fmt.Sprint("next", i), next, next, "")
	}
	use(t, s, "root", true, "full", next, next, rdsbackup.EServiceUnavailable)
	count(t, s, next, max)
}

// Many goroutines, on two handles, send one nonce: exactly one wins.
func testSameNonceRace(t *testing.T, open func(*testing.T) rdsbackup.NonceStore) {
	handles := []rdsbackup.NonceStore{open(t), open(t)}
	for round := range 5 {
		nonce := fmt.Sprint("race", round)
		ak, root := "ram", false
		if round%2 == 0 {
			ak, root = "root", true
		}
		const n = 16
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs[i] = handles[i%2].UseNonce(t.Context(), ak, root, nonce, T0, T0)
			})
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch rdsbackup.ErrorCode(err) {
			case "":
				won++
			case rdsbackup.ENonceUsed:
			default:
				t.Errorf("round %d, goroutine %d: %v", round, i, err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d of %d goroutines had nonce %q accepted, want 1", round, won, n, nonce)
		}
	}
	count(t, handles[0], T0, 5)
}

// Distinct nonces from many goroutines are all accepted and all counted.
func testManyNonces(t *testing.T, open func(*testing.T) rdsbackup.NonceStore) {
	s := open(t)
	const goroutines, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if err := s.UseNonce(t.Context(), fmt.Sprint("k", g), true, fmt.Sprint(i), T0, T0); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	count(t, s, T0, goroutines*each)
}

// A nonce one handle (node) accepted is refused by another, including one
// opened afterwards (a node started later, or restarted).
func testHandles(t *testing.T, open func(*testing.T) rdsbackup.NonceStore) {
	a, b := open(t), open(t)
	use(t, a, "ak", true, "n1", T0, T0, "")
	use(t, b, "ak", true, "n1", T0, T0, rdsbackup.ENonceUsed)
	use(t, b, "ram", false, "n2", T0, T0, "")
	use(t, a, "ram", false, "n2", T0, T0, rdsbackup.ENonceUsed)
	c := open(t)
	use(t, c, "ak", true, "n1", T0, T0.Add(time.Minute), rdsbackup.ENonceUsed)
	use(t, c, "ram", false, "n2", T0, T0.Add(time.Minute), rdsbackup.ENonceUsed)
	count(t, c, T0, 2)
}
