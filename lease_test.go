package rdsbackup_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
)

// dying is a node killed without releasing its leases.
type dying struct{ rdsbackup.LeaseService }

func (dying) ReleaseLease(context.Context, string, string) error { return nil }

// TestSingleton: of two nodes, one works; killed, the other takes over
// within the lease; stopped cleanly, it hands over at once.
func TestSingleton(t *testing.T) {
	box, _ := aesgcm.New(bytes.Repeat([]byte{3}, aesgcm.KeySize))
	db := sqlite.NewDB(filepath.Join(t.TempDir(), "catalog.db"), box)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	const lease = 300 * time.Millisecond
	var mu sync.Mutex
	calls := map[string]int{}
	type node struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(id string, leases rdsbackup.LeaseService) *node {
		ctx, cancel := context.WithCancel(context.Background())
		n := &node{cancel, make(chan struct{})}
		s := &rdsbackup.Singleton{Leases: leases, Name: "scheduler", Node: id, Lease: lease, Every: 20 * time.Millisecond, Now: time.Now,
			Failed: func(err error) { t.Errorf("%s: %v", id, err) }}
		go func() {
			defer close(n.done)
			s.Run(ctx, func(context.Context) { mu.Lock(); calls[id]++; mu.Unlock() })
		}()
		t.Cleanup(func() { cancel(); <-n.done })
		return n
	}
	count := func(id string) int { mu.Lock(); defer mu.Unlock(); return calls[id] }
	a := start("node-a", dying{db})
	wait(t, "node-a works", func() bool { return count("node-a") > 0 })
	b := start("node-b", db)
	time.Sleep(3 * lease)
	if count("node-b") != 0 {
		t.Fatalf("node-b worked while node-a held the lease")
	}
	a.cancel()
	<-a.done
	killed, before := time.Now(), count("node-a")
	wait(t, "node-b takes over", func() bool { return count("node-b") > 0 })
	if took := time.Since(killed); took > 2*lease {
		t.Errorf("node-b took over after %v, lease %v", took, lease)
	}
	if count("node-a") != before {
		t.Errorf("node-a worked after it was killed")
	}
	// A clean stop hands over at once.
	c := start("node-c", db)
	b.cancel()
	<-b.done
	stopped := time.Now()
	wait(t, "node-c takes over", func() bool { return count("node-c") > 0 })
	if took := time.Since(stopped); took > lease/2 {
		t.Errorf("node-c took over %v after a clean stop", took)
	}
	_ = c
}

func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}
