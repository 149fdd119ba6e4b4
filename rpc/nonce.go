package rpc

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"sync"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// DefaultMaxSkew is how far a signed timestamp may be from server time.
const DefaultMaxSkew = 15 * time.Minute

// DefaultMaxNonces is the NonceCache cap used when none is given: about
// 45 MB at most, and room for ~2,200 requests/s sustained over a 15-minute
// window.
const DefaultMaxNonces = 1 << 21

// NonceCache is the rdsbackup.NonceStore in the process's memory: fast, but
// forgotten at a restart and not shared with other nodes (the catalogs'
// stores are).
//
// NonceCache remembers which (AccessKeyId, nonce) pairs were used so that a
// signed request cannot be replayed while its timestamp is acceptable.
//
// Entries are filed in one bucket per minute of the request's signed time
// and a bucket is dropped whole once every timestamp in it is older than the
// window, because such a request is refused as expired anyway. Filing by
// signed time rather than arrival time lets the window equal the maximum
// skew even for requests dated in the future.
//
// Memory bound: an entry is a 64-bit keyed hash (hash/maphash, random seed,
// so nobody can aim collisions at another caller's nonces) in an
// open-addressing table kept between 3/8 and 3/4 full, i.e. at most
// 8/(3/8) ≈ 21.3 bytes per entry, so the cache never holds much more than
// 21.3 B × maxEntries (plus 128 B per bucket, ≤ 2·window/min + 2 buckets, and
// one bucket's table while it doubles): ≈ 45 MB for DefaultMaxNonces. At the
// cap new nonces are refused with ServiceUnavailable rather than older ones
// forgotten, since forgetting would reopen replay.
//
// A false "used" needs a 64-bit collision: with 2M entries, ~1e-13 per request.
//
// Shares: every entry is counted against the access key that used it, so
// that no key can take the memory others need. A RAM user's key may hold
// at most 1/UserShareDivisor of the cap, and RAM users' keys together at
// most the cap less RootReserveDivisor's share, which stays for the
// account's (root) keys; root keys may use whatever is free. A key over its
// own share is throttled (Throttling.User) like a key over its rate; only
// when the RAM users together fill theirs do other RAM users see
// ServiceUnavailable, and root still gets through.
type NonceCache struct {
	window time.Duration
	max    int
	seed   maphash.Seed

	mu      sync.Mutex
	n       int            // entries over all buckets
	users   int            // entries of RAM users' keys, over all buckets
	held    map[string]int // entries by access key, over all buckets
	buckets []nonceBucket
}

// Share divisors of the replay memory (see rdsbackup.NonceStore).
const (
	UserShareDivisor   = rdsbackup.UserShareDivisor
	RootReserveDivisor = rdsbackup.RootReserveDivisor
)

type nonceBucket struct {
	minute int64 // Unix minute of the signed times filed here
	set    hashSet
	held   map[string]int // entries by access key
	users  int            // entries of RAM users' keys
}

// NewNonceCache returns a cache that remembers a nonce until its signed time
// is window in the past, holding at most maxEntries nonces. window should be
// at least the Authenticator's MaxSkew (a shorter one narrows the accepted
// skew). Zero or negative values select DefaultMaxSkew and DefaultMaxNonces.
func NewNonceCache(window time.Duration, maxEntries int) *NonceCache {
	if window <= 0 {
		window = DefaultMaxSkew
	}
	if maxEntries <= 0 {
		maxEntries = DefaultMaxNonces
	}
	return &NonceCache{window: window, max: maxEntries, seed: maphash.MakeSeed(), held: map[string]int{}}
}

// Use records the nonce of a request signed at signedAt and received at now
// by accessKeyID, a root key or a RAM user's. It fails with
// SignatureNonceUsed if the pair was seen before, InvalidTimeStamp.Expired
// if signedAt is outside the window (the cache could not vouch for it),
// Throttling.User when the key holds its whole share and ServiceUnavailable
// when the memory open to it is full.
func (c *NonceCache) Use(accessKeyID string, root bool, nonce string, signedAt, now time.Time) error {
	if d := now.Sub(signedAt); d > c.window || d < -c.window {
		return rdsbackup.ErrNonceExpired()
	}
	h := c.hash(accessKeyID, nonce)
	m := rdsbackup.NonceMinute(signedAt)
	oldest := rdsbackup.NonceMinute(now.Add(-c.window))

	c.mu.Lock()
	defer c.mu.Unlock()
	live := c.buckets[:0]
	for _, b := range c.buckets {
		if b.minute < oldest {
			c.drop(&b)
			continue
		}
		live = append(live, b)
	}
	clear(c.buckets[len(live):]) // release dropped tables to the GC
	c.buckets = live

	idx := -1
	for i := range c.buckets {
		if c.buckets[i].set.has(h) {
			return rdsbackup.ErrNonceUsed()
		}
		if c.buckets[i].minute == m {
			idx = i
		}
	}
	if err := (rdsbackup.NonceShares{Max: c.max}).Check(root, c.held[accessKeyID], c.users, c.n); err != nil {
		return err
	}
	if idx < 0 {
		c.buckets = append(c.buckets, nonceBucket{minute: m, held: map[string]int{}})
		idx = len(c.buckets) - 1
	}
	b := &c.buckets[idx]
	b.set.add(h)
	b.held[accessKeyID]++
	c.held[accessKeyID]++
	c.n++
	if !root {
		b.users++
		c.users++
	}
	return nil
}

// drop forgets the counts of a bucket being dropped.
func (c *NonceCache) drop(b *nonceBucket) {
	c.n -= b.set.n
	c.users -= b.users
	for k, n := range b.held {
		if c.held[k] -= n; c.held[k] <= 0 {
			delete(c.held, k)
		}
	}
}

// UseNonce is Use, for rdsbackup.NonceStore.
func (c *NonceCache) UseNonce(_ context.Context, accessKeyID string, root bool, nonce string, signedAt, now time.Time) error {
	return c.Use(accessKeyID, root, nonce, signedAt, now)
}

// NonceCount counts the nonces of the buckets within the window at now,
// for rdsbackup.NonceStore.
func (c *NonceCache) NonceCount(_ context.Context, now time.Time) (int, error) {
	oldest := rdsbackup.NonceMinute(now.Add(-c.window))
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, b := range c.buckets {
		if b.minute >= oldest {
			n += b.set.n
		}
	}
	return n, nil
}

// Held returns the number of nonces held for an access key.
func (c *NonceCache) Held(accessKeyID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held[accessKeyID]
}

// Len returns the number of nonces held.
func (c *NonceCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *NonceCache) hash(accessKeyID, nonce string) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	// The length prefix keeps ("a","bc") and ("ab","c") apart.
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(accessKeyID)))
	h.Write(n[:])
	h.WriteString(accessKeyID)
	h.WriteString(nonce)
	if s := h.Sum64(); s != 0 {
		return s
	}
	return 1 // 0 marks an empty slot in hashSet
}

// hashSet is a linear-probing set of non-zero uint64s. It needs no deletion
// (buckets are dropped whole), which keeps it to 8 bytes a slot where a Go
// map[uint64]struct{} costs about 35 bytes an entry.
type hashSet struct {
	slots []uint64 // power-of-two length; 0 is empty
	n     int
}

func (s *hashSet) has(h uint64) bool {
	if len(s.slots) == 0 {
		return false
	}
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return true
		case 0:
			return false
		}
	}
}

// add inserts h, which must not be present.
func (s *hashSet) add(h uint64) {
	if 4*(s.n+1) > 3*len(s.slots) {
		old := s.slots
		s.slots = make([]uint64, max(16, 2*len(old)))
		for _, v := range old {
			if v != 0 {
				s.insert(v)
			}
		}
	}
	s.insert(h)
	s.n++
}

func (s *hashSet) insert(h uint64) {
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		if s.slots[i] == 0 {
			s.slots[i] = h
			return
		}
	}
}
