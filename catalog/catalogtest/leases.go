package catalogtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// leaseBase is the suite's clock for leases: millisecond precision kept.
var leaseBase = time.Date(2026, 5, 1, 10, 0, 0, 123e6, time.UTC)

// nodeJob is a job as a runner on node creates it.
func nodeJob(instance, node string, until time.Time) *rdsbackup.Job {
	return &rdsbackup.Job{InstanceID: instance, Status: rdsbackup.JobNoStart, Mode: rdsbackup.BackupManual,
		Method: rdsbackup.MethodLogical, Strategy: "instance", Node: node, LeaseUntil: until}
}

func findJob(t *testing.T, c Catalog, id int64) *rdsbackup.Job {
	t.Helper()
	got, err := c.FindJobs(t.Context(), rdsbackup.JobFilter{ID: &id})
	ok(t, err, "find job %d", id)
	if len(got) != 1 {
		t.Fatalf("job %d: %d rows", id, len(got))
	}
	return got[0]
}

// testJobLeases: a job keeps its node and lease; only its node updates and
// renews it; another node claims it only once the lease has ended; an
// instance has one unfinished node-held job at a time.
func testJobLeases(t *testing.T, c Catalog) {
	ctx := t.Context()
	until := leaseBase.Add(30 * time.Second)
	j := nodeJob("rm-a", "node-a", until)
	ok(t, c.CreateJob(ctx, j), "create job on node-a")
	if got := findJob(t, c, j.ID); got.Node != "node-a" || !got.LeaseUntil.Equal(until) {
		t.Errorf("stored node %q lease %v, want node-a %v", got.Node, got.LeaseUntil, until)
	}

	// One backup per instance, whichever node asks.
	err := c.CreateJob(ctx, nodeJob("rm-a", "node-b", until))
	wantCode(t, err, rdsbackup.EBackupRunning, "a second running job of rm-a from node-b")
	if err != nil && !containsAll(err.Error(), fmt.Sprint(j.ID), "node-a") {
		t.Errorf("the refusal does not name job %d and node-a: %v", j.ID, err)
	}
	ok(t, c.CreateJob(ctx, nodeJob("rm-b", "node-b", until)), "another instance's job on node-b")

	// Only the holder updates or renews.
	j.Status, j.Progress = rdsbackup.JobUploading, 10
	ok(t, c.UpdateJob(ctx, j), "update by the holder")
	other := *j
	other.Node, other.Progress = "node-b", 50
	wantCode(t, c.UpdateJob(ctx, &other), rdsbackup.ECONFLICT, "update by another node")
	later := until.Add(20 * time.Second)
	ok(t, c.RenewJobLease(ctx, j.ID, "node-a", later), "renew by the holder")
	wantCode(t, c.RenewJobLease(ctx, j.ID, "node-b", later), rdsbackup.ECONFLICT, "renew by another node")
	wantCode(t, c.RenewJobLease(ctx, j.ID+1000, "node-a", later), rdsbackup.ENOTFOUND, "renew an unknown job")
	if got := findJob(t, c, j.ID); got.Progress != 10 || got.Node != "node-a" || !got.LeaseUntil.Equal(later) {
		t.Errorf("after the updates: progress %d node %q lease %v, want 10 node-a %v", got.Progress, got.Node, got.LeaseUntil, later)
	}

	// A live lease is not claimed by another node; the holder may claim
	// its own job (a restarted node settling what it left).
	wantCode(t, c.ClaimJob(ctx, j.ID, "node-b", later.Add(-time.Millisecond), later.Add(time.Minute)), rdsbackup.ECONFLICT, "claim before the lease ends")
	ok(t, c.ClaimJob(ctx, j.ID, "node-a", leaseBase, later), "claim by the holder")
	// Once it has ended, another node claims it, and the old holder can
	// no longer write or renew.
	settle := later.Add(time.Minute)
	ok(t, c.ClaimJob(ctx, j.ID, "node-b", later, settle), "claim when the lease has ended")
	if got := findJob(t, c, j.ID); got.Node != "node-b" || !got.LeaseUntil.Equal(settle) {
		t.Errorf("after the claim: node %q lease %v, want node-b %v", got.Node, got.LeaseUntil, settle)
	}
	j.Status, j.Progress = rdsbackup.JobFinished, 100
	wantCode(t, c.UpdateJob(ctx, j), rdsbackup.ECONFLICT, "the old holder records Finished after losing the job")
	wantCode(t, c.RenewJobLease(ctx, j.ID, "node-a", settle), rdsbackup.ECONFLICT, "the old holder renews after losing the job")
	if got := findJob(t, c, j.ID); got.Status != rdsbackup.JobUploading {
		t.Errorf("status %s after the old holder's refused write, want Uploading", got.Status)
	}

	// Settled, the job frees the instance and cannot be claimed or renewed.
	j.Node, j.Status, j.Error = "node-b", rdsbackup.JobFailed, "node lost"
	ok(t, c.UpdateJob(ctx, j), "the new holder records Failed")
	wantCode(t, c.ClaimJob(ctx, j.ID, "node-c", settle.Add(time.Hour), settle.Add(2*time.Hour)), rdsbackup.ECONFLICT, "claim a settled job")
	wantCode(t, c.RenewJobLease(ctx, j.ID, "node-b", settle.Add(time.Hour)), rdsbackup.ECONFLICT, "renew a settled job")
	ok(t, c.CreateJob(ctx, nodeJob("rm-a", "node-c", until)), "a new job of rm-a once the old one is settled")

	// Jobs without a node (made before nodes) neither block nor are blocked,
	// and any node claims them — unless that would make two node-held
	// jobs of one instance.
	legacy := windowJob("rm-a", time.Time{})
	ok(t, c.CreateJob(ctx, legacy), "a job without a node beside a running one")
	wantCode(t, c.ClaimJob(ctx, legacy.ID, "node-a", leaseBase, until), rdsbackup.ECONFLICT, "claim a job without a node beside a running one")
	legacy = windowJob("rm-c", time.Time{})
	ok(t, c.CreateJob(ctx, legacy), "a job without a node")
	ok(t, c.ClaimJob(ctx, legacy.ID, "node-a", leaseBase, until), "claim a job without a node")
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !contains(s, sub) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// testLeases: a named lease has one holder at a time, renewed by it,
// taken by another once it has ended or been released.
func testLeases(t *testing.T, c Catalog) {
	ctx := t.Context()
	acquire := func(name, node string, now time.Time, want bool) {
		t.Helper()
		held, err := c.AcquireLease(ctx, name, node, now, now.Add(10*time.Second))
		ok(t, err, "acquire %s for %s", name, node)
		if held != want {
			t.Errorf("acquire %s for %s at +%v: held %v, want %v", name, node, now.Sub(leaseBase), held, want)
		}
	}
	acquire("scheduler", "node-a", leaseBase, true)
	acquire("scheduler", "node-b", leaseBase.Add(time.Second), false)
	acquire("logs/rm-a", "node-b", leaseBase.Add(time.Second), true)   // names are apart
	acquire("scheduler", "node-a", leaseBase.Add(5*time.Second), true) // renewal: until +15s
	acquire("scheduler", "node-b", leaseBase.Add(12*time.Second), false)
	acquire("scheduler", "node-b", leaseBase.Add(15*time.Second), true) // ended
	acquire("scheduler", "node-a", leaseBase.Add(16*time.Second), false)
	ok(t, c.ReleaseLease(ctx, "scheduler", "node-a"), "release by a node that does not hold it")
	acquire("scheduler", "node-a", leaseBase.Add(17*time.Second), false)
	ok(t, c.ReleaseLease(ctx, "scheduler", "node-b"), "release by the holder")
	acquire("scheduler", "node-a", leaseBase.Add(18*time.Second), true)
}

// testRacingJobClaims: nodes racing through two handles to start a backup
// of one instance, then to claim its expired job: one wins each race.
func testRacingJobClaims(t *testing.T, open func(key []byte) (Catalog, error)) {
	ctx := t.Context()
	a, b := two(t, open)
	handle := func(i int) Catalog {
		if i%2 == 1 {
			return b
		}
		return a
	}
	for round := range 3 {
		inst := fmt.Sprintf("rm-claim%d", round)
		jobs := make([]*rdsbackup.Job, 8)
		errs := race(8, func(i int) error {
			jobs[i] = nodeJob(inst, fmt.Sprintf("node-%d", i), leaseBase.Add(time.Minute))
			return handle(i).CreateJob(ctx, jobs[i])
		})
		won := -1
		for i, err := range errs {
			switch rdsbackup.ErrorCode(err) {
			case "":
				if won >= 0 {
					t.Errorf("round %d: both %d and %d started a backup of %s", round, won, i, inst)
				}
				won = i
			case rdsbackup.EBackupRunning:
			default:
				t.Errorf("round %d: create %d: %v, want success or EBackupRunning", round, i, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no create succeeded", round)
		}
		id := jobs[won].ID
		errs = race(8, func(i int) error {
			return handle(i).ClaimJob(ctx, id, fmt.Sprintf("settler-%d", i), leaseBase.Add(2*time.Minute), leaseBase.Add(3*time.Minute))
		})
		claimed := 0
		for i, err := range errs {
			switch rdsbackup.ErrorCode(err) {
			case "":
				claimed++
			case rdsbackup.ECONFLICT:
			default:
				t.Errorf("round %d: claim %d: %v, want success or ECONFLICT", round, i, err)
			}
		}
		if claimed != 1 {
			t.Errorf("round %d: %d of 8 racing claims of an expired job succeeded, want 1", round, claimed)
		}
	}
}

// testRacingLeases: nodes racing through two handles for a free lease, and
// for one that has just ended: one holder each time.
func testRacingLeases(t *testing.T, open func(key []byte) (Catalog, error)) {
	ctx := t.Context()
	a, b := two(t, open)
	for round := range 4 {
		now := leaseBase.Add(time.Duration(round) * time.Minute) // each round's lease ended
		errs := make([]error, 8)
		held := make([]bool, 8)
		race(8, func(i int) error {
			c := a
			if i%2 == 1 {
				c = b
			}
			held[i], errs[i] = c.AcquireLease(ctx, "scheduler", fmt.Sprintf("node-%d-%d", round, i), now, now.Add(30*time.Second))
			return nil
		})
		n := 0
		for i := range 8 {
			ok(t, errs[i], "round %d: acquire %d", round, i)
			if held[i] {
				n++
			}
		}
		if n != 1 {
			t.Errorf("round %d: %d of 8 racing nodes hold the lease, want 1", round, n)
		}
	}
}
