package backup_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/backup"
)

// clock is a settable clock for one node.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// aborts records the prefixes a runner aborted uploads under.
type aborts struct {
	mu       sync.Mutex
	prefixes []string
}

func (a *aborts) abort(prefix string) {
	a.mu.Lock()
	a.prefixes = append(a.prefixes, prefix)
	a.mu.Unlock()
}

// nodes puts the fixture's runner on node-a and makes a second runner, on
// node-b, on the same catalog and store; each node has its own clock.
func (f *fixture) nodes(t *testing.T, lease time.Duration) (a, b *backup.Runner, clockA, clockB *clock, abortedB *aborts) {
	t.Helper()
	clockA, clockB, abortedB = newClock(), newClock(), &aborts{}
	a = f.runner
	a.Node, a.Lease, a.Now = "node-a", lease, clockA.Now
	b = backup.NewRunner(f.db, f.faulty, a.Engines)
	b.Node, b.Lease, b.Now = "node-b", lease, clockB.Now
	b.AbortUploads = func(ctx context.Context, prefix string) (int, error) {
		abortedB.abort(prefix)
		return 0, nil
	}
	t.Cleanup(func() { b.Close() })
	return a, b, clockA, clockB, abortedB
}

func findJob(t *testing.T, f *fixture, id int64) *rdsbackup.Job {
	t.Helper()
	jobs, err := f.db.FindJobs(t.Context(), rdsbackup.JobFilter{ID: &id})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("find job %d: %v %v", id, jobs, err)
	}
	return jobs[0]
}

// TestBackupHeldByLiveNode: a backup running on node-a carries node-a and
// a lease that node-a renews; node-b can neither start a second backup of
// the instance (the catalog refuses it) nor settle node-a's job, and
// node-a's backup succeeds.
func TestBackupHeldByLiveNode(t *testing.T) {
	f := newFixture(t)
	a, b, clockA, clockB, _ := f.nodes(t, 300*time.Millisecond)
	f.engine.release, f.engine.started = make(chan struct{}), make(chan struct{})
	job, err := a.StartBackup(t.Context(), "rm-a1", logical())
	if err != nil {
		t.Fatal(err)
	}
	<-f.engine.started
	first := findJob(t, f, job.ID)
	if first.Node != "node-a" || !first.LeaseUntil.Equal(clockA.Now().Add(300*time.Millisecond)) {
		t.Fatalf("job node %q lease %v", first.Node, first.LeaseUntil)
	}
	_, err = b.StartBackup(t.Context(), "rm-a1", logical())
	if rdsbackup.ErrorCode(err) != rdsbackup.EBackupRunning || !strings.Contains(err.Error(), "node-a") {
		t.Fatalf("second backup on node-b: %v, want EBackupRunning naming node-a", err)
	}
	// node-a renews: its clock moves, the lease follows.
	clockA.Add(time.Minute)
	waitUntil(t, "node-a renews the lease", func() bool {
		return findJob(t, f, job.ID).LeaseUntil.After(first.LeaseUntil.Add(time.Minute - time.Millisecond))
	})
	clockB.Add(time.Minute) // node-b's time agrees: the lease still runs
	if n, err := b.Sweep(t.Context()); err != nil || n != 0 {
		t.Fatalf("node-b's sweep of a live lease: settled %d, %v", n, err)
	}
	close(f.engine.release)
	if j := waitJob(t, f.db, job.ID); j.Status != rdsbackup.JobFinished {
		t.Fatalf("node-a's job: %+v", j)
	}
	if set, err := f.db.FindBackupSet(t.Context(), job.ID); err != nil || set.Status != rdsbackup.BackupSuccess {
		t.Fatalf("set: %+v %v", set, err)
	}
	// The instance is free again, for any node.
	if j, err := b.StartBackup(t.Context(), "rm-a1", logical()); err != nil {
		t.Fatal(err)
	} else if j := waitJob(t, f.db, j.ID); j.Status != rdsbackup.JobFinished || j.Node != "node-b" {
		t.Fatalf("node-b's job: %+v", j)
	}
}

// TestDeadNodesJobSettled: a job left by node-a, which died mid-upload,
// is left alone while its lease runs, then settled by node-b as "node
// lost": Failed job and set, the partial objects and uploads removed, and
// the instance can be backed up again.
func TestDeadNodesJobSettled(t *testing.T) {
	f := newFixture(t)
	_, b, _, clockB, aborted := f.nodes(t, 30*time.Second)
	ctx := t.Context()
	job := &rdsbackup.Job{InstanceID: "rm-a1", Status: rdsbackup.JobUploading, Mode: rdsbackup.BackupManual,
		Method: rdsbackup.MethodLogical, Strategy: "instance", Node: "node-a", LeaseUntil: clockB.Now().Add(20 * time.Second)}
	if err := f.db.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	w, _ := f.fs.Create(ctx, backup.ObjectKey("rm-a1", job.ID))
	w.Write([]byte("partial"))
	w.Commit()
	if err := b.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if j := findJob(t, f, job.ID); j.Status != rdsbackup.JobUploading || j.Node != "node-a" {
		t.Fatalf("node-b's start-up touched node-a's live job: %+v", j)
	}
	if _, err := b.StartBackup(ctx, "rm-a1", logical()); rdsbackup.ErrorCode(err) != rdsbackup.EBackupRunning {
		t.Fatalf("backup beside node-a's job: %v", err)
	}
	clockB.Add(20 * time.Second) // the lease has ended
	if n, err := b.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after the lease: settled %d, %v", n, err)
	}
	f.failed(t, job.ID, "node lost")
	if j := findJob(t, f, job.ID); j.Node != "node-b" {
		t.Errorf("settled job's node %q, want node-b", j.Node)
	}
	aborted.mu.Lock()
	if want := "backups/rm-a1/" + itoa(job.ID) + "/"; len(aborted.prefixes) != 1 || aborted.prefixes[0] != want {
		t.Errorf("aborted uploads under %v, want [%s]", aborted.prefixes, want)
	}
	aborted.mu.Unlock()
	if n, err := b.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep: settled %d, %v", n, err)
	}
	j, err := b.StartBackup(ctx, "rm-a1", logical())
	if err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, f.db, j.ID); j.Status != rdsbackup.JobFinished {
		t.Fatalf("next backup: %+v", j)
	}
}

// TestStalledNodeLosesJob: node-a stalls (its clock stops, so its renewals
// no longer reach past node-b's time); node-b settles the job as lost;
// node-a, back, stops the backup and records nothing — no Success set
// after the job was settled Failed, and no object left.
func TestStalledNodeLosesJob(t *testing.T) {
	f := newFixture(t)
	a, b, _, clockB, _ := f.nodes(t, 300*time.Millisecond)
	f.engine.release, f.engine.started = make(chan struct{}), make(chan struct{})
	job, err := a.StartBackup(t.Context(), "rm-a1", logical())
	if err != nil {
		t.Fatal(err)
	}
	<-f.engine.started
	clockB.Add(time.Hour)
	if n, err := b.Sweep(t.Context()); err != nil || n != 1 {
		t.Fatalf("sweep: settled %d, %v", n, err)
	}
	waitUntil(t, "node-a stops the lost job", func() bool { return a.Active() == 0 })
	close(f.engine.release)
	f.failed(t, job.ID, "node lost")
	if j := findJob(t, f, job.ID); j.Node != "node-b" {
		t.Errorf("job node %q, want node-b", j.Node)
	}
}

// TestRestartedNodeSettlesOwnJobs: a node's jobs from its previous
// process are settled at its start at once, lease or not, as interrupted.
func TestRestartedNodeSettlesOwnJobs(t *testing.T) {
	f := newFixture(t)
	a, _, clockA, _, _ := f.nodes(t, 30*time.Second)
	job := &rdsbackup.Job{InstanceID: "rm-a1", Status: rdsbackup.JobUploading, Mode: rdsbackup.BackupManual,
		Method: rdsbackup.MethodLogical, Strategy: "instance", Node: "node-a", LeaseUntil: clockA.Now().Add(20 * time.Second)}
	if err := f.db.CreateJob(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	if err := a.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.failed(t, job.ID, "interrupted")
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// takenCatalog answers every renewal as if another node had taken the job.
type takenCatalog struct{ backup.Catalog }

func (takenCatalog) RenewJobLease(ctx context.Context, id int64, node string, until time.Time) error {
	return rdsbackup.Errorf(rdsbackup.ECONFLICT, "job %d is not held by node %s", id, node)
}

// TestLeaseLostBeforeSetRecorded: a node that finds, just before it
// records the Success set, that another node holds its job records
// nothing — no set, no job state — and removes its objects.
func TestLeaseLostBeforeSetRecorded(t *testing.T) {
	f := newFixture(t)
	a, _, _, _, _ := f.nodes(t, time.Hour) // no periodic renewal during the test
	a.Catalog = takenCatalog{f.db}
	job, err := a.StartBackup(t.Context(), "rm-a1", logical())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the job ends on node-a", func() bool { return a.Active() == 0 })
	if j := findJob(t, f, job.ID); j.Status.Done() {
		t.Errorf("node-a recorded the job %s after losing it", j.Status)
	}
	if _, err := f.db.FindBackupSet(t.Context(), job.ID); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Errorf("node-a recorded a set after losing the job: %v", err)
	}
	f.noObjects(t)
}

// TestRecoverySweepSparesLiveNodes: a restore whose lease another node
// renews is left alone by this node's start-up and sweeps; once that lease
// has ended, or for a restore without a lease (made before leases), it is
// failed; a restore created a moment ago is left to its node.
func TestRecoverySweepSparesLiveNodes(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	clk := newClock()
	clk.t = time.Now().Add(time.Minute) // the recoveries below are older than freshRecovery
	r := &backup.Recoverer{Catalog: f.db, Store: f.fs, Leases: f.db, Node: "node-b", Lease: 30 * time.Second, Now: clk.Now}
	held := &rdsbackup.RecoveryJob{SourceID: "rm-a1", TargetID: "rm-t1", BackupID: 1, Status: rdsbackup.JobPreparing}
	legacy := &rdsbackup.RecoveryJob{SourceID: "rm-a1", TargetID: "rm-t2", BackupID: 1, Status: rdsbackup.JobPreparing}
	for _, j := range []*rdsbackup.RecoveryJob{held, legacy} {
		if err := f.db.CreateRecovery(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := f.db.AcquireLease(ctx, "recovery/"+itoa(held.ID), "node-a", clk.Now(), clk.Now().Add(30*time.Second)); err != nil || !ok {
		t.Fatalf("node-a's lease: %v %v", ok, err)
	}
	status := func(id int64) rdsbackup.JobStatus {
		jobs, err := f.db.FindRecoveries(ctx, rdsbackup.RecoveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.ID == id {
				return j.Status
			}
		}
		t.Fatalf("recovery %d not found", id)
		return ""
	}
	if err := r.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if status(held.ID) != rdsbackup.JobPreparing || status(legacy.ID) != rdsbackup.JobFailed {
		t.Fatalf("after node-b's start: held %s, legacy %s; want Preparing, Failed", status(held.ID), status(legacy.ID))
	}
	clk.Add(30 * time.Second) // node-a stopped renewing
	if n, err := r.Sweep(ctx); err != nil || n != 1 || status(held.ID) != rdsbackup.JobFailed {
		t.Fatalf("sweep after node-a's lease ended: %d %v, status %s", n, err, status(held.ID))
	}
	fresh := &rdsbackup.RecoveryJob{SourceID: "rm-a1", TargetID: "rm-t3", BackupID: 1, Status: rdsbackup.JobPreparing}
	if err := f.db.CreateRecovery(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	clk.t = time.Now()
	if n, err := r.Sweep(ctx); err != nil || n != 0 || status(fresh.ID) != rdsbackup.JobPreparing {
		t.Fatalf("sweep of a restore just created: %d %v, status %s", n, err, status(fresh.ID))
	}
}
