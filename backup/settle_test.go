package backup_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/backup"
	"github.com/rdsbackup/rdsbackup/catalog/catalogtest"
)

// manualClock stands in for time.After in the runner's retries: it records
// each delay asked for, and a wait ends when the test ticks.
type manualClock struct {
	mu     sync.Mutex
	delays []time.Duration
	tick   chan time.Time
}

func newManualClock() *manualClock { return &manualClock{tick: make(chan time.Time)} }

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.delays = append(c.delays, d)
	c.mu.Unlock()
	return c.tick
}

func (c *manualClock) Delays() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.delays)
}

// countingMetrics records what the runner reports.
type countingMetrics struct {
	mu           sync.Mutex
	done         []string
	finalFailed  int
	statusFailed int
}

func (m *countingMetrics) BackupDone(e rdsbackup.Engine, meth rdsbackup.BackupMethod, result string, took time.Duration, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.done = append(m.done, string(e)+"/"+string(meth)+"/"+result)
}

func (m *countingMetrics) CatalogWriteFailed(final bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if final {
		m.finalFailed++
	} else {
		m.statusFailed++
	}
}

// faultyRunner is the fixture's runner over a catalog that fails on demand,
// with a manual retry clock.
func faultyRunner(t *testing.T, f *fixture) (*backup.Runner, *catalogtest.Faulty, *manualClock, *countingMetrics) {
	t.Helper()
	cat := catalogtest.NewFaulty(f.db)
	r := backup.NewRunner(cat, f.faulty, f.runner.Engines)
	r.ProgressInterval = 5 * time.Millisecond
	clock := newManualClock()
	r.After = clock.After
	r.Retry = backup.Backoff{Initial: time.Second, Max: 4 * time.Second}
	m := &countingMetrics{}
	r.Metrics = m
	t.Cleanup(func() { r.Close() })
	return r, cat, clock, m
}

// waitUnsettled waits until the job is unsettled after at least attempts
// failed attempts.
func waitUnsettled(t *testing.T, r *backup.Runner, id int64, attempts int) backup.Unsettled {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, u := range r.Unsettled() {
			if u.Job.ID == id && u.Attempts >= attempts {
				return u
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("job %d not unsettled after %d attempts: %+v", id, attempts, r.Unsettled())
	return backup.Unsettled{}
}

func storedJob(t *testing.T, f *fixture, id int64) *rdsbackup.Job {
	t.Helper()
	jobs, err := f.db.FindJobs(t.Context(), rdsbackup.JobFilter{ID: &id})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("find job %d: %v %v", id, jobs, err)
	}
	return jobs[0]
}

// TestFailedJobSettlesAfterCatalogRecovers: a backup fails (its tool dies)
// while the catalog's disk is full, so neither its Failed set nor its final
// state can be written. The runner retries with backoff; meanwhile the job
// is Unsettled, the API's view (JobView) shows it Failed with the real
// reason, and the catalog still has it unfinished. Once the catalog takes
// writes again the job is recorded Failed with that reason — not the
// "interrupted" a restart would have written.
func TestFailedJobSettlesAfterCatalogRecovers(t *testing.T) {
	f := newFixture(t)
	f.engine.failAt = 100000
	r, cat, clock, m := faultyRunner(t, f)
	cat.Inject(catalogtest.Fault{Op: catalogtest.OpCreateBackupSet, Err: catalogtest.DiskFull},
		catalogtest.Fault{Op: catalogtest.OpUpdateJob, Err: catalogtest.DiskFull})
	job, err := r.StartBackup(t.Context(), "rm-a1", logical())
	if err != nil {
		t.Fatal(err)
	}
	u := waitUnsettled(t, r, job.ID, 1)
	for i := 0; i < 3; i++ {
		clock.tick <- time.Now()
	}
	u = waitUnsettled(t, r, job.ID, 4)
	if u.Job.Status != rdsbackup.JobFailed || !strings.Contains(u.Job.Error, "Lost connection") {
		t.Errorf("unsettled job %+v, want Failed with the tool's error", u.Job)
	}
	if !strings.Contains(u.Err, "InsufficientStorage") {
		t.Errorf("unsettled because %q, want the catalog's disk-full error", u.Err)
	}
	if got, want := clock.Delays(), []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("retry delays %v, want %v", got, want)
	}
	if st := storedJob(t, f, job.ID); st.Status.Done() {
		t.Fatalf("the catalog took the job while its writes fail: %+v", st)
	}
	if !r.Running("rm-a1") {
		t.Error("the instance is free while its job's result is not recorded")
	}
	if got := r.JobStates(); got[rdsbackup.JobFailed] != 1 || len(got) != 1 {
		t.Errorf("JobStates %v, want one Failed", got)
	}

	// The API's view: Failed, in the lists that want Failed and not in
	// those of unfinished jobs.
	view := backup.JobView{JobService: f.db, Runner: r}
	for _, tc := range []struct {
		filter rdsbackup.JobFilter
		want   int
	}{
		{rdsbackup.JobFilter{ID: &job.ID}, 1},
		{rdsbackup.JobFilter{InstanceID: "rm-a1", Statuses: []rdsbackup.JobStatus{rdsbackup.JobFailed}}, 1},
		{rdsbackup.JobFilter{InstanceID: "rm-a1", Statuses: []rdsbackup.JobStatus{rdsbackup.JobNoStart, rdsbackup.JobPreparing, rdsbackup.JobUploading}}, 0},
		{rdsbackup.JobFilter{InstanceID: "rm-other"}, 0},
	} {
		jobs, err := view.FindJobs(t.Context(), tc.filter)
		if err != nil || len(jobs) != tc.want {
			t.Errorf("JobView %+v: %d jobs %v, want %d", tc.filter, len(jobs), err, tc.want)
		}
		for _, j := range jobs {
			if j.Status != rdsbackup.JobFailed || !strings.Contains(j.Error, "Lost connection") {
				t.Errorf("JobView shows %+v", j)
			}
		}
	}

	cat.Clear()
	clock.tick <- time.Now()
	f.failed(t, job.ID, "Lost connection")
	deadline := time.Now().Add(10 * time.Second)
	for r.Running("rm-a1") || len(r.Unsettled()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still unsettled: %+v", r.Unsettled())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if calls, failed := cat.Calls(catalogtest.OpCreateBackupSet); calls-failed != 1 {
		t.Errorf("the Failed set was recorded %d times", calls-failed)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Equal(m.done, []string{"MariaDB/Logical/Failed"}) || m.finalFailed != 4 {
		t.Errorf("metrics: done %v, %d failed final writes", m.done, m.finalFailed)
	}
}

// TestFinishedJobSettlesAfterCatalogRecovers: a backup whose set was
// recorded, but whose Finished state cannot be written, is retried until
// it is: the job ends Finished and the set is kept.
func TestFinishedJobSettlesAfterCatalogRecovers(t *testing.T) {
	f := newFixture(t)
	f.engine.release, f.engine.started = make(chan struct{}), make(chan struct{})
	r, cat, clock, _ := faultyRunner(t, f)
	job, err := r.StartBackup(t.Context(), "rm-a1", logical())
	if err != nil {
		t.Fatal(err)
	}
	<-f.engine.started
	cat.Inject(catalogtest.Fault{Op: catalogtest.OpUpdateJob, Err: catalogtest.DiskFull})
	close(f.engine.release)
	u := waitUnsettled(t, r, job.ID, 1)
	if u.Job.Status != rdsbackup.JobFinished || u.Job.BackupSetID != job.ID {
		t.Errorf("unsettled job %+v, want Finished", u.Job)
	}
	cat.Clear()
	clock.tick <- time.Now()
	if j := waitJob(t, f.db, job.ID); j.Status != rdsbackup.JobFinished || j.Progress != 100 || j.Error != "" {
		t.Fatalf("job: %+v", j)
	}
	if set, err := f.db.FindBackupSet(t.Context(), job.ID); err != nil || set.Status != rdsbackup.BackupSuccess {
		t.Fatalf("set: %+v %v", set, err)
	}
}

// TestCloseLeavesUnsettledJobToRecover: a runner closing while a final
// write fails does not hang; the job stays unfinished in the catalog, and
// the next start's Recover settles it.
func TestCloseLeavesUnsettledJobToRecover(t *testing.T) {
	f := newFixture(t)
	f.engine.failAt = 100000
	r, cat, _, _ := faultyRunner(t, f)
	cat.Inject(catalogtest.Fault{Op: catalogtest.OpUpdateJob, Err: catalogtest.DiskFull})
	job, err := r.StartBackup(t.Context(), "rm-a1", logical())
	if err != nil {
		t.Fatal(err)
	}
	waitUnsettled(t, r, job.ID, 1)
	closed := make(chan struct{})
	go func() { r.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on an unsettled job")
	}
	if st := storedJob(t, f, job.ID); st.Status.Done() {
		t.Fatalf("job %+v", st)
	}
	cat.Clear()
	if err := f.runner.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The Failed set was recorded before the job's state failed: Recover
	// takes its reason.
	f.failed(t, job.ID, "Lost connection")
}

// TestRecoverRetriesInBackground: at start, an interrupted job whose
// settling the catalog does not take does not stop the start: it is
// Unsettled and retried until it is recorded.
func TestRecoverRetriesInBackground(t *testing.T) {
	f := newFixture(t)
	job := &rdsbackup.Job{InstanceID: "rm-a1", Status: rdsbackup.JobUploading, Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical, Strategy: "instance"}
	if err := f.db.CreateJob(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	r, cat, clock, _ := faultyRunner(t, f)
	cat.Inject(catalogtest.Fault{Op: catalogtest.OpCreateBackupSet, Err: catalogtest.DiskFull})
	if err := r.Recover(t.Context()); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	u := waitUnsettled(t, r, job.ID, 1)
	if u.Job.Status != rdsbackup.JobFailed || !strings.Contains(u.Err, "InsufficientStorage") {
		t.Errorf("unsettled %+v", u)
	}
	clock.tick <- time.Now() // the first retry, still failing
	waitUnsettled(t, r, job.ID, 2)
	cat.Clear()
	clock.tick <- time.Now()
	f.failed(t, job.ID, "interrupted")
}

func TestBackoff(t *testing.T) {
	b := backup.Backoff{Initial: time.Second, Max: time.Minute}
	var got []time.Duration
	for i := 1; i <= 9; i++ {
		got = append(got, b.Delay(i))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
}
