// Package noncetotals keeps what the catalogs' replay protection stores
// share: the totals over all access keys, read from the database at most
// once a second, and the single-flight sweep of expired buckets.
package noncetotals

import (
	"sync"
	"time"
)

// RefreshEvery is how old, in request time, cached totals may get.
const RefreshEvery = time.Second

// SweepMargin is how many minutes past the window a minute's nonces are
// kept before they are deleted. Nodes sweep by their own clocks: a node
// whose clock is ahead must not delete what a node behind it still takes
// as live (it would then accept a replay), so clocks may differ by up to
// this much. Expired minutes are not counted meanwhile.
const SweepMargin = 5

// Totals caches the number of nonces a store holds (total, and those of
// RAM users' keys). Reading them on every request would sum the counters of
// every active key; once a second, plus this handle's own additions, is
// exact on one node and lags other nodes' additions by at most a second
// (documented with the bound).
type Totals struct {
	mu           sync.Mutex
	valid        bool
	at           time.Time // the request time of the last read
	oldest       int64     // the oldest live minute at that read
	total, users int
}

// Get returns the totals at now, whose oldest live minute is oldest, calling
// read when the cache is older than RefreshEvery or from another minute.
func (c *Totals) Get(now time.Time, oldest int64, read func() (total, users int, err error)) (total, users int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid || c.oldest != oldest || now.Sub(c.at) >= RefreshEvery || now.Before(c.at) {
		if c.total, c.users, err = read(); err != nil {
			c.valid = false
			return 0, 0, err
		}
		c.valid, c.at, c.oldest = true, now, oldest
	}
	return c.total, c.users, nil
}

// Add counts a nonce this handle accepted.
func (c *Totals) Add(root bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	if !root {
		c.users++
	}
}

// Invalidate makes the next Get read.
func (c *Totals) Invalidate() {
	c.mu.Lock()
	c.valid = false
	c.mu.Unlock()
}

// Sweeper runs at most one sweep at a time, and a new one only when the
// oldest live minute has moved past the last one swept. A call during a
// sweep is remembered and swept next.
type Sweeper struct {
	mu      sync.Mutex
	running bool
	swept   int64 // every minute below this is gone
	want    int64 // the newest oldest minute asked for
	wg      sync.WaitGroup
}

// Maybe starts sweep(oldest) in a goroutine unless oldest was swept
// already. A failed sweep is tried again by a later call.
func (s *Sweeper) Maybe(oldest int64, sweep func(oldest int64) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.want = max(s.want, oldest)
	if s.running || s.want <= s.swept {
		return
	}
	s.running = true
	s.wg.Go(func() {
		s.mu.Lock()
		for s.want > s.swept {
			next := s.want
			s.mu.Unlock()
			err := sweep(next)
			s.mu.Lock()
			if err != nil {
				break
			}
			s.swept = next
		}
		s.running = false
		s.mu.Unlock()
	})
}

// Wait waits for a running sweep.
func (s *Sweeper) Wait() { s.wg.Wait() }

// Batcher gathers the items that arrive while a batch runs into the next
// one (group commit): the goroutine that finds no batch running runs
// batches until none is waiting, so there is one in flight at a time and
// as many items in each as came meanwhile.
type Batcher[T any] struct {
	// Run handles a batch; it must answer every item (the items carry
	// their own way back).
	Run func(batch []T)
	// Max bounds a batch.
	Max int

	mu      sync.Mutex
	queue   []T
	running bool
}

// Add queues item, and runs batches if none is running. The caller then
// waits for its item's answer.
func (b *Batcher[T]) Add(item T) {
	b.mu.Lock()
	b.queue = append(b.queue, item)
	lead := !b.running
	b.running = true
	b.mu.Unlock()
	if !lead {
		return
	}
	for {
		b.mu.Lock()
		batch := b.queue[:min(len(b.queue), b.Max)]
		b.queue = b.queue[len(batch):]
		if len(batch) == 0 {
			b.queue = nil
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.Run(batch)
	}
}
