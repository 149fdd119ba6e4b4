package logs_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/logs"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
)

// counting counts the streams running at once across nodes.
type counting struct {
	*fakeStreamer
	active, most *atomic.Int32
}

func (c counting) StreamLogs(ctx context.Context, inst *rdsbackup.Instance, spec rdsbackup.StreamSpec, sink rdsbackup.LogSink) error {
	n := c.active.Add(1)
	defer c.active.Add(-1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
	return c.fakeStreamer.StreamLogs(ctx, inst, spec, sink)
}

// noRelease is a node that dies: its leases are never released.
type noRelease struct{ rdsbackup.LeaseService }

func (noRelease) ReleaseLease(context.Context, string, string) error { return nil }

// TestStreamSingleton: two nodes, one instance: one node streams it; when
// that node dies (without releasing its lease), the other takes the
// stream over within the lease time and resumes after the newest stored
// file. The two never stream at once.
func TestStreamSingleton(t *testing.T) {
	dir := t.TempDir()
	db := openCatalog(t, dir, time.Now)
	inst := &rdsbackup.Instance{ID: "rm-one", Engine: rdsbackup.EngineMariaDB, DSN: "u:p@tcp(127.0.0.1:1)/"}
	if err := db.SyncInstances(t.Context(), []*rdsbackup.Instance{inst}); err != nil {
		t.Fatal(err)
	}
	pol := rdsbackup.DefaultBackupPolicy(inst.ID)
	pol.EnableBackupLog = true
	if err := db.PutBackupPolicy(t.Context(), pol); err != nil {
		t.Fatal(err)
	}
	store := localfs.New(filepath.Join(dir, "storage"))
	var active, most atomic.Int32
	const lease = 300 * time.Millisecond
	type node struct {
		streamer *fakeStreamer
		cancel   context.CancelFunc
		done     chan struct{}
	}
	nodes := map[string]*node{}
	for _, id := range []string{"node-a", "node-b"} {
		fs := &fakeStreamer{files: make(chan fakeFile)}
		sup := logs.NewSupervisor(db, store, map[rdsbackup.Engine]rdsbackup.LogStreamer{rdsbackup.EngineMariaDB: counting{fs, &active, &most}},
			filepath.Join(dir, id))
		sup.Interval, sup.RetryInitial, sup.RetryMax, sup.UploadInterval = time.Second, 10*time.Millisecond, 50*time.Millisecond, time.Millisecond
		sup.Leases, sup.Node, sup.Lease = noRelease{db}, id, lease
		ctx, cancel := context.WithCancel(context.Background())
		n := &node{streamer: fs, cancel: cancel, done: make(chan struct{})}
		go func() { defer close(n.done); sup.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-n.done })
		nodes[id] = n
	}
	started := func(n *node) int {
		n.streamer.mu.Lock()
		defer n.streamer.mu.Unlock()
		return len(n.streamer.resumes)
	}
	var holder, other *node
	waitFor(t, "one node streams", func() bool {
		for id, n := range nodes {
			if started(n) > 0 {
				holder = n
				other = nodes[map[string]string{"node-a": "node-b", "node-b": "node-a"}[id]]
				return true
			}
		}
		return false
	})
	time.Sleep(3 * lease) // several renewals: the other node must not start
	if started(other) != 0 {
		t.Fatalf("both nodes stream the instance")
	}
	now := time.Now().UTC().Truncate(time.Second)
	holder.streamer.files <- fakeFile{seq: 1, body: []byte("event 1 event 1"), end: now}
	waitFor(t, "file 1 stored", func() bool { return len(storedFiles(t, db, inst.ID)) == 1 })

	died := time.Now()
	holder.cancel()
	<-holder.done
	waitFor(t, "the other node takes the stream", func() bool { return started(other) > 0 })
	if took := time.Since(died); took > 2*lease+time.Second {
		t.Errorf("took the stream over after %v, lease %v", took, lease)
	}
	other.streamer.mu.Lock()
	if r := other.streamer.resumes[0]; r != 1 {
		t.Errorf("the new node resumed from %d, want 1", r)
	}
	other.streamer.mu.Unlock()
	if m := most.Load(); m != 1 {
		t.Errorf("%d streams of the instance ran at once", m)
	}
}
