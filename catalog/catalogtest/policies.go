package catalogtest

// Backup policies, one job per schedule window, expiry and the two-step
// deletion of backup sets, import, settings and RAM names.

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// polSet is a set of inst that started at start and ended a minute later;
// expire zero means none.
func polSet(inst string, status rdsbackup.BackupStatus, mode rdsbackup.BackupMode, start, expire time.Time) *rdsbackup.BackupSet {
	s := &rdsbackup.BackupSet{
		InstanceID: inst, Status: status, StartTime: start, EndTime: start.Add(time.Minute),
		Type: rdsbackup.FullBackup, Mode: mode, Method: rdsbackup.MethodLogical,
		Initiator: rdsbackup.InitiatorUser, StoreStatus: rdsbackup.StoreEnabled, Engine: rdsbackup.EngineMariaDB,
		Location: "rdsbackup", Scale: "DBInstance", ExpectExpireTime: expire, StorageClass: "0", Encryption: "{}",
	}
	if mode == rdsbackup.BackupAutomated {
		s.Initiator, s.StoreStatus = rdsbackup.InitiatorSystem, rdsbackup.StoreDisabled
	}
	if status == rdsbackup.BackupSuccess {
		s.Available, s.MetaStatus, s.Size = true, "OK", 10
		s.ObjectKey = "backups/" + inst + "/x/set.zst"
		s.Artifacts = []rdsbackup.Artifact{{Database: "shop", Offset: 0, Length: 10, Checksum: "1"}}
	} else {
		s.MetaStatus, s.FailureReason = "EMPTY", "boom"
	}
	return s
}

func createSets(t *testing.T, c Catalog, sets ...*rdsbackup.BackupSet) {
	t.Helper()
	for _, s := range sets {
		ok(t, c.CreateBackupSet(t.Context(), s), "create set %+v", s)
	}
}

func testEngineVersion(t *testing.T, c Catalog) {
	ctx := t.Context()
	inst := &rdsbackup.Instance{ID: "rm-a", Engine: rdsbackup.EngineMariaDB, DSN: "u:p@tcp(127.0.0.1:3306)/", Description: "orders"}
	ok(t, c.SyncInstances(ctx, []*rdsbackup.Instance{inst}), "sync")
	got, err := c.FindInstance(ctx, "rm-a")
	ok(t, err, "find")
	// What a caller does to an answer is not seen by the next one.
	got.Description, got.DSN = "changed by a caller", "x"
	ok(t, c.SetEngineVersion(ctx, "rm-a", "10.11"), "set engine version")
	for range 2 {
		got, err = c.FindInstance(ctx, "rm-a")
		if err != nil || got.EngineVersion != "10.11" || got.Description != "orders" || got.DSN != inst.DSN {
			t.Fatalf("FindInstance = %+v, %v", got, err)
		}
		got.Description = "changed again"
	}
	wantCode(t, c.SetEngineVersion(ctx, "rm-none", "8.0"), rdsbackup.ENOTFOUND, "set engine version of an unknown instance")
	// A sync that keeps the engine keeps the version; one that changes it
	// forgets it.
	ok(t, c.SyncInstances(ctx, []*rdsbackup.Instance{inst}), "sync again")
	if got, err := c.FindInstance(ctx, "rm-a"); err != nil || got.EngineVersion != "10.11" {
		t.Errorf("after a sync with the same engine: %+v, %v", got, err)
	}
	moved := *inst
	moved.Engine = rdsbackup.EngineMySQL
	ok(t, c.SyncInstances(ctx, []*rdsbackup.Instance{&moved}), "sync with another engine")
	if got, err := c.FindInstance(ctx, "rm-a"); err != nil || got.EngineVersion != "" || got.Engine != rdsbackup.EngineMySQL {
		t.Errorf("after a sync with another engine: %+v, %v", got, err)
	}
}

func testBackupPolicyRoundTrip(t *testing.T, c Catalog) {
	ctx := t.Context()
	_, err := c.FindBackupPolicy(ctx, "rm-a")
	wantCode(t, err, rdsbackup.ENOTFOUND, "policy of an instance without one")
	p := rdsbackup.DefaultBackupPolicy("rm-a")
	p.Window = 2*60 + 30
	p.Days = []time.Weekday{time.Sunday, time.Wednesday, time.Saturday}
	p.RetentionDays = 730
	p.Method = rdsbackup.MethodPhysical
	p.EnableBackupLog = true
	p.LogBackupRetentionPeriod = 30
	p.LocalLogRetentionHours = 0
	p.LocalLogRetentionSpace = "50"
	p.HighSpaceUsageProtection = "Disable"
	p.LogBackupLocalRetentionNumber = -1
	p.CompressType = "8"
	p.BackupInterval = "30"
	p.Category = "Flash"
	p.ReleasedKeepPolicy = "All"
	p.Since = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	p.Source, p.ConfigHash = "config", "a|b|7|Logical"
	ok(t, c.PutBackupPolicy(ctx, p), "put")
	q := rdsbackup.DefaultBackupPolicy("rm-b")
	q.Since = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	r := rdsbackup.DefaultBackupPolicy("rm-c")
	r.Since, r.RetentionDays = q.Since, 30
	ok(t, c.PutBackupPolicies(ctx, []*rdsbackup.BackupPolicy{r, q}), "put two")
	ok(t, c.PutBackupPolicies(ctx, nil), "put none")
	got, err := c.FindBackupPolicy(ctx, "rm-a")
	ok(t, err, "find")
	if !reflect.DeepEqual(got, p) {
		t.Errorf("stored policy\n%+v\nread back\n%+v", p, got)
	}
	all, err := c.FindBackupPolicies(ctx)
	ok(t, err, "find all")
	if len(all) != 3 || all[0].InstanceID != "rm-a" || all[1].InstanceID != "rm-b" || all[2].InstanceID != "rm-c" {
		t.Fatalf("FindBackupPolicies: %v", all)
	}
	if !reflect.DeepEqual(all[1], q) || !reflect.DeepEqual(all[2], r) {
		t.Errorf("policies\n%+v\n%+v\nread back\n%+v\n%+v", q, r, all[1], all[2])
	}
	// Put replaces.
	p.RetentionDays, p.Source, p.Days = 9, "api", []time.Weekday{time.Monday, time.Friday}
	ok(t, c.PutBackupPolicy(ctx, p), "put again")
	if got, err := c.FindBackupPolicy(ctx, "rm-a"); err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("after a second Put: %+v %v", got, err)
	}
}

func testPolicyRecomputesAutomatedExpiry(t *testing.T, c Catalog) {
	ctx := t.Context()
	t0 := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
	old := t0.Add(7 * 24 * time.Hour)
	autoOK := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, t0, old)
	autoFailed := polSet("rm-a", rdsbackup.BackupFailed, rdsbackup.BackupAutomated, t0.Add(24*time.Hour), time.Time{})
	manual := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(2*time.Hour), time.Time{})
	manualExp := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(3*time.Hour), old)
	other := polSet("rm-b", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, t0, old)
	createSets(t, c, autoOK, autoFailed, manual, manualExp, other)

	check := func(retention int) {
		t.Helper()
		want := map[int64]time.Time{
			autoOK.ID:     autoOK.EndTime.Add(time.Duration(retention) * 24 * time.Hour),
			autoFailed.ID: autoFailed.EndTime.Add(time.Duration(retention) * 24 * time.Hour),
			manual.ID:     {},
			manualExp.ID:  old,
			other.ID:      old,
		}
		for id, w := range want {
			s, err := c.FindBackupSet(ctx, id)
			ok(t, err, "find %d", id)
			if !s.ExpectExpireTime.Equal(w) {
				t.Errorf("retention %d: set %d (%s %s of %s): ExpectExpireTime %v, want %v", retention, id, s.Mode, s.Status, s.InstanceID, s.ExpectExpireTime, w)
			}
		}
	}
	p := rdsbackup.DefaultBackupPolicy("rm-a")
	p.RetentionDays = 30
	ok(t, c.PutBackupPolicy(ctx, p), "put 30 days")
	check(30)
	p.RetentionDays = 8
	ok(t, c.PutBackupPolicies(ctx, []*rdsbackup.BackupPolicy{p}), "put 8 days")
	check(8)
}

// testNewSetsExpireByPolicy: every set carries ExpectExpireTime = end + the
// stored retention when it is recorded; an automated set always takes the
// policy's, a manual one keeps an expiry its maker set.
func testNewSetsExpireByPolicy(t *testing.T, c Catalog) {
	ctx := t.Context()
	t0 := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
	p := rdsbackup.DefaultBackupPolicy("rm-a")
	p.RetentionDays = 10
	ok(t, c.PutBackupPolicy(ctx, p), "put")
	fixed := t0.Add(100 * 24 * time.Hour)
	manual := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	manualFixed := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(time.Hour), fixed)
	auto := polSet("rm-a", rdsbackup.BackupFailed, rdsbackup.BackupAutomated, t0.Add(2*time.Hour), fixed)
	noPolicy := polSet("rm-b", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	unfinished := polSet("rm-a", rdsbackup.BackupFailed, rdsbackup.BackupAutomated, t0.Add(3*time.Hour), time.Time{})
	unfinished.EndTime = time.Time{}
	createSets(t, c, manual, manualFixed, auto, noPolicy, unfinished)
	ten := 10 * 24 * time.Hour
	for _, tc := range []struct {
		set  *rdsbackup.BackupSet
		want time.Time
	}{
		{manual, manual.EndTime.Add(ten)},
		{manualFixed, fixed},
		{auto, auto.EndTime.Add(ten)},
		{noPolicy, time.Time{}},
		{unfinished, time.Time{}},
	} {
		got, err := c.FindBackupSet(ctx, tc.set.ID)
		ok(t, err, "find")
		if !got.ExpectExpireTime.Equal(tc.want) || !tc.set.ExpectExpireTime.Equal(tc.want) {
			t.Errorf("set %d (%s of %s): ExpectExpireTime stored %v, returned %v, want %v", got.ID, got.Mode, got.InstanceID, got.ExpectExpireTime, tc.set.ExpectExpireTime, tc.want)
		}
	}
}

func testJobWindowOncePerInstance(t *testing.T, c Catalog) {
	ctx := t.Context()
	w1 := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
	w2 := w1.Add(24 * time.Hour)
	for _, j := range []*rdsbackup.Job{windowJob("rm-a", w1), windowJob("rm-a", w2), windowJob("rm-b", w1), windowJob("rm-a", time.Time{}), windowJob("rm-a", time.Time{})} {
		ok(t, c.CreateJob(ctx, j), "create job %+v", j)
	}
	again := windowJob("rm-a", w1)
	wantCode(t, c.CreateJob(ctx, again), rdsbackup.ECONFLICT, "a second job for the same window")
	last, err := c.FindLastWindows(ctx)
	ok(t, err, "find last windows")
	if len(last) != 2 || !last["rm-a"].Equal(w2) || !last["rm-b"].Equal(w1) {
		t.Errorf("FindLastWindows: %v, want rm-a %v, rm-b %v", last, w2, w1)
	}
	jobs, err := c.FindJobs(ctx, rdsbackup.JobFilter{InstanceID: "rm-a"})
	ok(t, err, "find jobs")
	var windows []time.Time
	for _, j := range jobs {
		windows = append(windows, j.Window)
	}
	if len(jobs) != 4 || !jobs[2].Window.Equal(w2) || !jobs[3].Window.Equal(w1) || !jobs[0].Window.IsZero() {
		t.Errorf("jobs of rm-a, newest first, have windows %v", windows)
	}
}

func windowJob(inst string, w time.Time) *rdsbackup.Job {
	mode := rdsbackup.BackupManual
	if !w.IsZero() {
		mode = rdsbackup.BackupAutomated
	}
	return &rdsbackup.Job{InstanceID: inst, Status: rdsbackup.JobNoStart, Mode: mode, Method: rdsbackup.MethodLogical, Strategy: "instance", Window: w}
}

func testFindExpiredBackupSets(t *testing.T, c Catalog) {
	ctx := t.Context()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	past := func(d int) time.Time { return now.Add(-time.Duration(d) * day) }

	// rm-a: three expired Success sets; the newest of them is kept.
	a1 := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, past(30), past(20))
	a2 := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, past(29), past(19))
	a3 := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, past(28), past(18))
	// A Failed set newer than every Success set, expired: deleted.
	aFail := polSet("rm-a", rdsbackup.BackupFailed, rdsbackup.BackupAutomated, past(27), past(17))
	// rm-b: one expired Success, a newer unexpired Success: the expired goes.
	b1 := polSet("rm-b", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, past(30), past(1))
	b2 := polSet("rm-b", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, past(2), now.Add(5*day))
	// Expiring exactly now counts as expired; a set without expiry never does.
	b3 := polSet("rm-b", rdsbackup.BackupFailed, rdsbackup.BackupAutomated, past(3), now)
	b4 := polSet("rm-b", rdsbackup.BackupSuccess, rdsbackup.BackupManual, past(40), time.Time{})
	// rm-c: only one Success set, long expired: kept.
	c1 := polSet("rm-c", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, past(100), past(90))
	createSets(t, c, a1, a2, a3, aFail, b1, b2, b3, b4, c1)

	expired, err := c.FindExpiredBackupSets(ctx, now, 100)
	ok(t, err, "find expired")
	// Oldest expiry first.
	if got, want := setIDs(expired), []int64{a1.ID, a2.ID, aFail.ID, b1.ID, b3.ID}; !slices.Equal(got, want) {
		t.Errorf("expired sets %v, want %v (a3 %d and c1 %d are their instance's newest Success)", got, want, a3.ID, c1.ID)
	}
	for _, s := range expired {
		if s.Status == rdsbackup.BackupSuccess && len(s.Artifacts) != 1 {
			t.Errorf("expired set %d comes without its artifacts: %+v", s.ID, s.Artifacts)
		}
	}
	if got, err := c.FindExpiredBackupSets(ctx, now, 2); err != nil || !slices.Equal(setIDs(got), []int64{a1.ID, a2.ID}) {
		t.Errorf("limit 2: %v %v", setIDs(got), err)
	}

	// A set being deleted is not offered again, and does not count as the
	// newest Success: when a3 is being deleted, a2 is kept.
	ok(t, c.MarkBackupSetsDeleting(ctx, []int64{a3.ID, a1.ID}), "mark")
	expired, err = c.FindExpiredBackupSets(ctx, now, 100)
	ok(t, err, "find expired")
	if got, want := setIDs(expired), []int64{aFail.ID, b1.ID, b3.ID}; !slices.Equal(got, want) {
		t.Errorf("with a1 and a3 being deleted, expired sets %v, want %v", got, want)
	}
}

func testMarkBackupSetsDeleting(t *testing.T, c Catalog) {
	ctx := t.Context()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s1 := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, now, time.Time{})
	s2 := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, now.Add(time.Hour), time.Time{})
	createSets(t, c, s1, s2)

	// All or none: an unknown id leaves s1 visible.
	wantCode(t, c.MarkBackupSetsDeleting(ctx, []int64{s1.ID, s1.ID + s2.ID + 999}), rdsbackup.ENOTFOUND, "mark with an unknown id")
	if _, err := c.FindBackupSet(ctx, s1.ID); err != nil {
		t.Fatalf("s1 after a refused mark: %v", err)
	}
	if d, err := c.FindDeletingBackupSets(ctx); err != nil || len(d) != 0 {
		t.Fatalf("deleting sets after a refused mark: %v %v", setIDs(d), err)
	}

	ok(t, c.MarkBackupSetsDeleting(ctx, []int64{s1.ID}), "mark")
	_, err := c.FindBackupSet(ctx, s1.ID)
	wantCode(t, err, rdsbackup.ENOTFOUND, "FindBackupSet of a set being deleted")
	sets, total, err := c.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: "rm-a"})
	if err != nil || total != 1 || len(sets) != 1 || sets[0].ID != s2.ID {
		t.Errorf("FindBackupSets shows %v (total %d, %v), want only %d", setIDs(sets), total, err, s2.ID)
	}
	if sets, total, err := c.FindBackupSets(ctx, rdsbackup.BackupFilter{ID: &s1.ID}); err != nil || total != 0 || len(sets) != 0 {
		t.Errorf("FindBackupSets by the id of a set being deleted: %v (total %d, %v)", setIDs(sets), total, err)
	}
	deleting, err := c.FindDeletingBackupSets(ctx)
	if err != nil || !slices.Equal(setIDs(deleting), []int64{s1.ID}) {
		t.Fatalf("FindDeletingBackupSets: %v %v", setIDs(deleting), err)
	}
	if d := diff(deleting[0], stored(s1)); d != "" {
		t.Errorf("a set being deleted comes back changed: %s", d)
	}
	// Marking twice is refused: the second deleter finds nothing to delete.
	wantCode(t, c.MarkBackupSetsDeleting(ctx, []int64{s1.ID}), rdsbackup.ENOTFOUND, "marking a set twice")
	ok(t, c.DeleteBackupSet(ctx, s1.ID), "delete the row")
	if d, err := c.FindDeletingBackupSets(ctx); err != nil || len(d) != 0 {
		t.Errorf("deleting sets after the row was deleted: %v %v", setIDs(d), err)
	}
}

func testImportBackupSets(t *testing.T, c Catalog) {
	ctx := t.Context()
	t0 := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
	p := rdsbackup.DefaultBackupPolicy("rm-a")
	p.RetentionDays = 12
	ok(t, c.PutBackupPolicy(ctx, p), "put policy")
	kept := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, t0, time.Time{})
	kept.ID = 7000
	fresh := polSet("rm-b", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(time.Hour), time.Time{})
	high := polSet("rm-b", rdsbackup.BackupFailed, rdsbackup.BackupManual, t0.Add(2*time.Hour), time.Time{})
	high.ID = 9000
	ok(t, c.ImportBackupSets(ctx, []*rdsbackup.BackupSet{kept, fresh, high}), "import")
	if kept.ID != 7000 || high.ID != 9000 || fresh.ID == 0 || fresh.ID == 7000 || fresh.ID == 9000 {
		t.Errorf("import ids %d, %d, %d: want 7000, a new one, 9000", kept.ID, fresh.ID, high.ID)
	}
	if w := kept.EndTime.Add(12 * 24 * time.Hour); !kept.ExpectExpireTime.Equal(w) {
		t.Errorf("imported automated set expires %v, want %v (the stored policy's)", kept.ExpectExpireTime, w)
	}
	for _, s := range []*rdsbackup.BackupSet{kept, fresh, high} {
		got, err := c.FindBackupSet(ctx, s.ID)
		ok(t, err, "find imported %d", s.ID)
		if d := diff(got, stored(s)); d != "" {
			t.Errorf("imported set %d: %s", s.ID, d)
		}
	}
	// Ids given after an import are above every imported one.
	job := windowJob("rm-a", time.Time{})
	ok(t, c.CreateJob(ctx, job), "create job")
	next := polSet("rm-a", rdsbackup.BackupFailed, rdsbackup.BackupManual, t0, time.Time{})
	createSets(t, c, next)
	if job.ID <= 9000 || next.ID <= job.ID {
		t.Errorf("after importing id 9000: job id %d, set id %d", job.ID, next.ID)
	}

	// All or none: one invalid set and nothing is stored.
	good := polSet("rm-c", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	bad := polSet("rm-c", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	bad.ObjectKey = ""
	wantCode(t, c.ImportBackupSets(ctx, []*rdsbackup.BackupSet{good, bad}), rdsbackup.EINVALID, "import with an invalid set")
	// And one whose id is taken: nothing either.
	dup := polSet("rm-c", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	dup.ID = 7000
	good2 := polSet("rm-c", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	if err := c.ImportBackupSets(ctx, []*rdsbackup.BackupSet{good2, dup}); err == nil {
		t.Error("import of a set whose id is taken succeeded")
	}
	if list, total, err := c.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: "rm-c"}); err != nil || total != 0 {
		t.Errorf("refused imports stored %v (total %d), %v", setIDs(list), total, err)
	}
	if got, err := c.FindBackupSet(ctx, 7000); err != nil || got.InstanceID != "rm-a" {
		t.Errorf("set 7000 after a refused import over it: %+v, %v", got, err)
	}
	ok(t, c.ImportBackupSets(ctx, nil), "import nothing")
}

func testSettings(t *testing.T, c Catalog) {
	ctx := t.Context()
	_, err := c.FindSetting(ctx, "test_setting")
	wantCode(t, err, rdsbackup.ENOTFOUND, "find a setting never stored")
	v, err := c.CreateSetting(ctx, "test_setting", []byte{0, 1, 2, 255})
	ok(t, err, "create")
	if !slices.Equal(v, []byte{0, 1, 2, 255}) {
		t.Errorf("create returned %v", v)
	}
	v, err = c.CreateSetting(ctx, "test_setting", []byte("second"))
	ok(t, err, "create again")
	if !slices.Equal(v, []byte{0, 1, 2, 255}) {
		t.Errorf("a second create returned %q, want the first value", v)
	}
	if got, err := c.FindSetting(ctx, "test_setting"); err != nil || !slices.Equal(got, []byte{0, 1, 2, 255}) {
		t.Errorf("find: %v, %v", got, err)
	}
	// The catalog was opened, so it holds a master key check.
	if got, err := c.FindSetting(ctx, rdsbackup.MasterKeyCheckSetting); err != nil || len(got) == 0 {
		t.Errorf("master key check after open: %v, %v", got, err)
	}
}

// testRAMNames: the catalog applies RAM's name rules itself, with the
// domain's words, whoever calls it.
func testRAMNames(t *testing.T, c Catalog) {
	ctx := t.Context()
	for _, name := range []string{"", "has space", "semi;colon", "ünï", string(make([]byte, 65))} {
		u := newUser("alice", "200000000000000001")
		u.Name = name
		err := c.CreateUser(ctx, u)
		want := rdsbackup.ValidateUserName(name)
		if want == nil || rdsbackup.ErrorCode(err) != rdsbackup.ErrorCode(want) || rdsbackup.ErrorMessage(err) != rdsbackup.ErrorMessage(want) {
			t.Errorf("create user %q: %v, want %v", name, err, want)
		}
		p := &rdsbackup.Policy{Name: name, Type: rdsbackup.PolicyCustom, Document: policyDoc("rds:*")}
		err = c.CreatePolicy(ctx, p)
		want = rdsbackup.ValidatePolicyName(name)
		if want == nil || rdsbackup.ErrorCode(err) != rdsbackup.ErrorCode(want) {
			t.Errorf("create policy %q: %v, want %v", name, err, want)
		}
	}
	if got, err := c.FindUsers(ctx, "", 0); err != nil || len(got) != 0 {
		t.Errorf("refused users were stored: %v, %v", got, err)
	}
	ok(t, c.CreateUser(ctx, newUser("a.b-c_d@example", "200000000000000001")), "create a user with every allowed character")
	ok(t, c.CreatePolicy(ctx, &rdsbackup.Policy{Name: "Read.Only-Backups_2", Type: rdsbackup.PolicyCustom, Document: policyDoc("rds:*")}), "create a policy with every allowed character")

	// The refusals read the same on every catalog.
	for _, tc := range []struct {
		err  error
		want *rdsbackup.Error
	}{
		{c.CreateUser(ctx, newUser("a.b-c_d@example", "200000000000000002")), rdsbackup.ErrUserExists("a.b-c_d@example")},
		{c.DeleteUser(ctx, "nobody"), rdsbackup.ErrUserNotFound("nobody")},
		{c.CreatePolicy(ctx, &rdsbackup.Policy{Name: "Read.Only-Backups_2", Type: rdsbackup.PolicyCustom, Document: policyDoc("rds:*")}), rdsbackup.ErrPolicyExists("Read.Only-Backups_2")},
		{c.DetachPolicy(ctx, "Read.Only-Backups_2", rdsbackup.PolicyCustom, "a.b-c_d@example"), rdsbackup.ErrPolicyNotAttached("Read.Only-Backups_2", "a.b-c_d@example")},
		{c.DeleteAccessKey(ctx, "a.b-c_d@example", "LTAI5tNone0000000000000"), rdsbackup.ErrUserKeyNotFound("LTAI5tNone0000000000000", "a.b-c_d@example")},
	} {
		if rdsbackup.ErrorCode(tc.err) != tc.want.Code || rdsbackup.ErrorMessage(tc.err) != tc.want.Message {
			t.Errorf("got %v, want %v", tc.err, tc.want)
		}
	}
}

// testManyPolicies: a first start with thousands of instances stores their
// policies in one call, and sets of all of them in another.
func testManyPolicies(t *testing.T, c Catalog) {
	ctx := t.Context()
	const n = 10000
	ps := make([]*rdsbackup.BackupPolicy, n)
	sets := make([]*rdsbackup.BackupSet, 0, n/10)
	t0 := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
	for i := range ps {
		ps[i] = rdsbackup.DefaultBackupPolicy(fmt.Sprintf("rm-many-%05d", i))
		ps[i].Since = t0
		if i%10 == 0 {
			sets = append(sets, polSet(ps[i].InstanceID, rdsbackup.BackupFailed, rdsbackup.BackupAutomated, t0, time.Time{}))
		}
	}
	ok(t, c.PutBackupPolicies(ctx, ps), "put %d policies", n)
	ok(t, c.ImportBackupSets(ctx, sets), "import sets of %d instances", len(sets))
	all, err := c.FindBackupPolicies(ctx)
	ok(t, err, "find policies")
	if len(all) != n {
		t.Errorf("%d policies stored, want %d", len(all), n)
	}
	for _, s := range sets[:3] {
		if w := s.EndTime.Add(7 * 24 * time.Hour); !s.ExpectExpireTime.Equal(w) {
			t.Errorf("set of %s expires %v, want %v", s.InstanceID, s.ExpectExpireTime, w)
		}
	}
}
