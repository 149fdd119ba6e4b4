package catalogtest

// Tests that open several handles on one catalog, as several processes or
// nodes would: what one writes the others see, ids and uniqueness rules
// hold between them, and a handle with another master key is refused.

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// two opens two handles on the catalog.
func two(t *testing.T, open func(key []byte) (Catalog, error)) (Catalog, Catalog) {
	t.Helper()
	return Open(t, open), Open(t, open)
}

// race runs fn(i) for i in [0, n) at once and returns the errors by i.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// testReopen: everything written through one handle is there, unchanged,
// for a handle opened afterwards, and for one opened before.
func testReopen(t *testing.T, open func(key []byte) (Catalog, error)) {
	before := Open(t, open)
	f := Fill(t, before)
	ok(t, before.Close(), "close")
	after := Open(t, open)
	f.Check(t, after)
	third := Open(t, open)
	f.Check(t, third)
}

// testIDsNeverReused: a BackupId or job id is never given again, across
// deletes, handles and restarts.
func testIDsNeverReused(t *testing.T, open func(key []byte) (Catalog, error)) {
	ctx := t.Context()
	a := Open(t, open)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s := polSet("rm-a", rdsbackup.BackupFailed, rdsbackup.BackupManual, t0, time.Time{})
	createSets(t, a, s)
	job := windowJob("rm-a", time.Time{})
	ok(t, a.CreateJob(ctx, job), "create job")
	newest := max(s.ID, job.ID)
	ok(t, a.DeleteBackupSet(ctx, s.ID), "delete the set")
	ok(t, a.Close(), "close")

	b := Open(t, open)
	again := polSet("rm-a", rdsbackup.BackupFailed, rdsbackup.BackupManual, t0, time.Time{})
	createSets(t, b, again)
	job2 := windowJob("rm-a", time.Time{})
	ok(t, b.CreateJob(ctx, job2), "create job after reopening")
	if again.ID <= newest || job2.ID <= newest || job2.ID == again.ID {
		t.Errorf("after deleting set %d and reopening, ids %d (set) and %d (job) were given: ids reused", s.ID, again.ID, job2.ID)
	}
	// A set stored under a high id of its own (import, rebuild) through
	// one handle moves the ids another handle gives above it.
	c := Open(t, open)
	high := polSet("rm-b", rdsbackup.BackupFailed, rdsbackup.BackupManual, t0, time.Time{})
	high.ID = 1 << 40
	createSets(t, c, high)
	job3 := windowJob("rm-b", time.Time{})
	ok(t, b.CreateJob(ctx, job3), "create job on the other handle")
	if job3.ID <= high.ID {
		t.Errorf("job id %d given after set %d was stored by another handle", job3.ID, high.ID)
	}
}

// testMasterKeyCheck: a handle opened with another master key is refused
// at open, with rdsbackup.ErrWrongMasterKey, and changes nothing.
func testMasterKeyCheck(t *testing.T, open func(key []byte) (Catalog, error)) {
	ctx := t.Context()
	c := Open(t, open)
	ok(t, c.SyncInstances(ctx, []*rdsbackup.Instance{{ID: "rm-a", Engine: rdsbackup.EngineMySQL, DSN: "u:secret@tcp(h:1)/"}}), "sync")
	check, err := c.FindSetting(ctx, rdsbackup.MasterKeyCheckSetting)
	ok(t, err, "find the check value")
	wrong, err := open(OtherKey)
	if err == nil {
		wrong.Close()
		t.Fatal("a handle with another master key was opened")
	}
	if !errors.Is(err, rdsbackup.ErrWrongMasterKey) {
		t.Errorf("open with another master key: %v, want ErrWrongMasterKey", err)
	}
	if after, err := c.FindSetting(ctx, rdsbackup.MasterKeyCheckSetting); err != nil || !slices.Equal(after, check) {
		t.Errorf("the refused open changed the check value: %v, %v", after, err)
	}
	right := Open(t, open)
	if inst, err := right.FindInstance(ctx, "rm-a"); err != nil || inst.DSN != "u:secret@tcp(h:1)/" {
		t.Errorf("with the right key: %+v, %v", inst, err)
	}
}

// testRacingWindowJobs: handles racing to take the same schedule window of
// one instance: exactly one job is created.
func testRacingWindowJobs(t *testing.T, open func(key []byte) (Catalog, error)) {
	ctx := t.Context()
	a, b := two(t, open)
	for round := range 5 {
		w := time.Date(2025, 3, 1+round, 18, 0, 0, 0, time.UTC)
		errs := race(8, func(i int) error {
			c := a
			if i%2 == 1 {
				c = b
			}
			return c.CreateJob(ctx, windowJob("rm-race", w))
		})
		won := 0
		for _, err := range errs {
			switch rdsbackup.ErrorCode(err) {
			case "":
				won++
			case rdsbackup.ECONFLICT:
			default:
				t.Errorf("round %d: %v, want success or ECONFLICT", round, err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d of 8 racing creates of the same window succeeded, want 1", round, won)
		}
	}
	jobs, err := a.FindJobs(ctx, rdsbackup.JobFilter{InstanceID: "rm-race"})
	ok(t, err, "find jobs")
	if len(jobs) != 5 {
		t.Errorf("%d jobs stored for 5 windows", len(jobs))
	}
}

// testRacingIDs: jobs and sets created at once through two handles all get
// distinct ids, and every one is stored.
func testRacingIDs(t *testing.T, open func(key []byte) (Catalog, error)) {
	ctx := t.Context()
	a, b := two(t, open)
	const n = 24
	ids := make([]int64, n)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	errs := race(n, func(i int) error {
		c := a
		if i%2 == 1 {
			c = b
		}
		if i%3 == 0 {
			j := windowJob("rm-race", time.Time{})
			err := c.CreateJob(ctx, j)
			ids[i] = j.ID
			return err
		}
		s := polSet("rm-race", rdsbackup.BackupFailed, rdsbackup.BackupManual, t0.Add(time.Duration(i)*time.Second), time.Time{})
		err := c.CreateBackupSet(ctx, s)
		ids[i] = s.ID
		return err
	})
	for i, err := range errs {
		ok(t, err, "racing create %d", i)
	}
	if d := slices.Compact(slices.Sorted(slices.Values(ids))); len(d) != n {
		t.Errorf("%d racing creates got %d distinct ids: %v", n, len(d), ids)
	}
	_, total, err := b.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: "rm-race"})
	ok(t, err, "find sets")
	jobs, err := a.FindJobs(ctx, rdsbackup.JobFilter{InstanceID: "rm-race"})
	ok(t, err, "find jobs")
	if total != n-n/3 || len(jobs) != n/3 {
		t.Errorf("stored %d sets and %d jobs, want %d and %d", total, len(jobs), n-n/3, n/3)
	}
}

// testRacingAccessKeys: handles racing to give one user keys: the limit
// holds.
func testRacingAccessKeys(t *testing.T, open func(key []byte) (Catalog, error)) {
	ctx := t.Context()
	a, b := two(t, open)
	ok(t, a.CreateUser(ctx, newUser("alice", "200000000000000001")), "create alice")
	errs := race(6, func(i int) error {
		c := a
		if i%2 == 1 {
			c = b
		}
		return c.CreateAccessKey(ctx, &rdsbackup.AccessKey{ID: fmt.Sprintf("LTAI5tRace%013d", i), Secret: "secret", UserName: "alice"})
	})
	won := 0
	for _, err := range errs {
		switch rdsbackup.ErrorCode(err) {
		case "":
			won++
		case rdsbackup.ELimitExceededAccessKey:
		default:
			t.Errorf("racing key create: %v", err)
		}
	}
	keys, err := b.FindAccessKeys(ctx, "alice")
	ok(t, err, "find keys")
	if won != rdsbackup.MaxAccessKeysPerUser || len(keys) != rdsbackup.MaxAccessKeysPerUser {
		t.Errorf("%d racing creates succeeded, %d keys stored; the limit is %d", won, len(keys), rdsbackup.MaxAccessKeysPerUser)
	}
}

// testRacingUsersAndPolicies: one user per name, one policy per name and
// type, one attachment per pair, and a user or policy is not deleted while
// another handle attaches it.
func testRacingUsersAndPolicies(t *testing.T, open func(key []byte) (Catalog, error)) {
	ctx := t.Context()
	a, b := two(t, open)
	pick := func(i int) Catalog {
		if i%2 == 1 {
			return b
		}
		return a
	}
	count := func(errs []error, code string) int {
		won := 0
		for _, err := range errs {
			switch rdsbackup.ErrorCode(err) {
			case "":
				won++
			case code:
			default:
				t.Errorf("racing: %v, want success or %s", err, code)
			}
		}
		return won
	}
	if won := count(race(6, func(i int) error {
		return pick(i).CreateUser(ctx, newUser("bob", fmt.Sprint(200000000000000100+i)))
	}), rdsbackup.EEntityAlreadyExistsUser); won != 1 {
		t.Errorf("%d racing creates of user bob succeeded", won)
	}
	if won := count(race(6, func(i int) error {
		return pick(i).CreatePolicy(ctx, &rdsbackup.Policy{Name: "Race", Type: rdsbackup.PolicyCustom, Document: policyDoc("rds:*")})
	}), rdsbackup.EEntityAlreadyExistsPol); won != 1 {
		t.Errorf("%d racing creates of policy Race succeeded", won)
	}
	if won := count(race(6, func(i int) error {
		return pick(i).AttachPolicy(ctx, "Race", rdsbackup.PolicyCustom, "bob")
	}), rdsbackup.EEntityAlreadyAttached); won != 1 {
		t.Errorf("%d racing attaches succeeded", won)
	}
	ok(t, a.DetachPolicy(ctx, "Race", rdsbackup.PolicyCustom, "bob"), "detach")
	// Delete the user and the policy while the other handle attaches: either
	// the attach wins and both deletes are refused, or a delete wins and the
	// attach is refused; never an attachment to something gone.
	for round := range 4 {
		name := fmt.Sprintf("carol%d", round)
		pol := fmt.Sprintf("Pol%d", round)
		ok(t, a.CreateUser(ctx, newUser(name, fmt.Sprint(200000000000000200+round))), "create %s", name)
		ok(t, a.CreatePolicy(ctx, &rdsbackup.Policy{Name: pol, Type: rdsbackup.PolicyCustom, Document: policyDoc("rds:*")}), "create %s", pol)
		errs := race(3, func(i int) error {
			switch i {
			case 0:
				return b.AttachPolicy(ctx, pol, rdsbackup.PolicyCustom, name)
			case 1:
				return a.DeleteUser(ctx, name)
			default:
				return a.DeletePolicy(ctx, pol)
			}
		})
		attached, userGone, policyGone := errs[0] == nil, errs[1] == nil, errs[2] == nil
		if attached && (userGone || policyGone) {
			t.Errorf("round %d: the attach and a delete both succeeded: %v", round, errs)
		}
		ps, err := a.FindUserPolicies(ctx, name)
		ok(t, err, "find policies of %s", name)
		if attached != (len(ps) == 1) {
			t.Errorf("round %d: attach returned %v, %s has %d policies", round, errs[0], name, len(ps))
		}
		if _, err := a.FindUser(ctx, name); (err == nil) == userGone {
			t.Errorf("round %d: delete user returned %v, find user %v", round, errs[1], err)
		}
		if _, err := a.FindPolicy(ctx, pol, rdsbackup.PolicyCustom); (err == nil) == policyGone {
			t.Errorf("round %d: delete policy returned %v, find policy %v", round, errs[2], err)
		}
	}
}

// testRacingPolicyAndNewSets: one handle changes an instance's retention
// while another records its automated sets: every set ends with the
// expiry of the retention that was stored last.
func testRacingPolicyAndNewSets(t *testing.T, open func(key []byte) (Catalog, error)) {
	ctx := t.Context()
	a, b := two(t, open)
	t0 := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
	p := rdsbackup.DefaultBackupPolicy("rm-race")
	ok(t, a.PutBackupPolicy(ctx, p), "put")
	for round := range 6 {
		retention := 8 + round
		errs := race(9, func(i int) error {
			if i == 0 {
				q := *p
				q.RetentionDays = retention
				return a.PutBackupPolicy(ctx, &q)
			}
			return b.CreateBackupSet(ctx, polSet("rm-race", rdsbackup.BackupFailed, rdsbackup.BackupAutomated,
				t0.Add(time.Duration(round*10+i)*time.Hour), time.Time{}))
		})
		for _, err := range errs {
			ok(t, err, "round %d", round)
		}
		sets, _, err := a.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: "rm-race"})
		ok(t, err, "find sets")
		for _, s := range sets {
			if w := s.EndTime.Add(time.Duration(retention) * 24 * time.Hour); !s.ExpectExpireTime.Equal(w) {
				t.Errorf("round %d (retention %d days): set %d expires %v, want %v", round, retention, s.ID, s.ExpectExpireTime, w)
			}
		}
	}
}

// testRacingDeletes: two deleters marking the same sets: one marks them,
// the other is told they are gone.
func testRacingDeletes(t *testing.T, open func(key []byte) (Catalog, error)) {
	ctx := t.Context()
	a, b := two(t, open)
	t0 := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
	for round := range 5 {
		s1 := polSet("rm-race", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(time.Duration(2*round)*time.Hour), time.Time{})
		s2 := polSet("rm-race", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(time.Duration(2*round+1)*time.Hour), time.Time{})
		createSets(t, a, s1, s2)
		errs := race(4, func(i int) error {
			c := a
			if i%2 == 1 {
				c = b
			}
			if i < 2 {
				return c.MarkBackupSetsDeleting(ctx, []int64{s1.ID, s2.ID})
			}
			return c.MarkBackupSetsDeleting(ctx, []int64{s2.ID, s1.ID})
		})
		won := 0
		for _, err := range errs {
			switch rdsbackup.ErrorCode(err) {
			case "":
				won++
			case rdsbackup.ENOTFOUND:
			default:
				t.Errorf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d of 4 racing marks succeeded, want 1", round, won)
		}
	}
	deleting, err := b.FindDeletingBackupSets(ctx)
	ok(t, err, "find deleting")
	if len(deleting) != 10 {
		t.Errorf("%d sets being deleted, want 10", len(deleting))
	}
}
