package sqlite_test

// SQLite-specific checks of the automated-backup tables (migration 0003):
// backup policies, one job per schedule window, the expiry query and the
// two-step deletion of backup sets.

import (
	"bytes"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
)

// policyDB opens a fresh catalog; reopen opens the same file again.
func policyDB(t *testing.T) (db *sqlite.DB, reopen func() *sqlite.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.db")
	open := func() *sqlite.DB {
		box, err := aesgcm.New(bytes.Repeat([]byte{0x33}, aesgcm.KeySize))
		if err != nil {
			t.Fatal(err)
		}
		db := sqlite.NewDB(path, box)
		if err := db.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	return open(), open
}

// polSet is a set of inst that started at start and ended a minute later;
// expire zero means none.
func polSet(inst string, status rdsbackup.BackupStatus, mode rdsbackup.BackupMode, start, expire time.Time) *rdsbackup.BackupSet {
	s := &rdsbackup.BackupSet{
		InstanceID: inst, Status: status, StartTime: start, EndTime: start.Add(time.Minute),
		Type: rdsbackup.FullBackup, Mode: mode, Method: rdsbackup.MethodLogical,
		Initiator: rdsbackup.InitiatorUser, StoreStatus: rdsbackup.StoreEnabled, Engine: rdsbackup.EngineMariaDB,
		Location: "rdsbackup", Scale: "DBInstance", ExpectExpireTime: expire,
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

func createSets(t *testing.T, db *sqlite.DB, sets ...*rdsbackup.BackupSet) {
	t.Helper()
	for _, s := range sets {
		if err := db.CreateBackupSet(t.Context(), s); err != nil {
			t.Fatalf("create set %+v: %v", s, err)
		}
	}
}

func setIDs(sets []*rdsbackup.BackupSet) []int64 {
	ids := make([]int64, 0, len(sets))
	for _, s := range sets {
		ids = append(ids, s.ID)
	}
	return ids
}

func TestBackupPolicyRoundTrip(t *testing.T) {
	db, reopen := policyDB(t)
	ctx := t.Context()
	if _, err := db.FindBackupPolicy(ctx, "rm-a"); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Fatalf("policy of an instance without one: %v, want ENOTFOUND", err)
	}
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
	if err := db.PutBackupPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	q := rdsbackup.DefaultBackupPolicy("rm-b")
	q.Since = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := db.PutBackupPolicy(ctx, q); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*sqlite.DB{db, reopen()} {
		got, err := d.FindBackupPolicy(ctx, "rm-a")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("stored policy\n%+v\nread back\n%+v", p, got)
		}
		all, err := d.FindBackupPolicies(ctx)
		if err != nil || len(all) != 2 || all[0].InstanceID != "rm-a" || all[1].InstanceID != "rm-b" {
			t.Fatalf("FindBackupPolicies: %v %v", all, err)
		}
		if !reflect.DeepEqual(all[1], q) {
			t.Errorf("default policy\n%+v\nread back\n%+v", q, all[1])
		}
	}
	// Put replaces.
	p.RetentionDays, p.Source = 9, "api"
	if err := db.PutBackupPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	if got, err := db.FindBackupPolicy(ctx, "rm-a"); err != nil || got.RetentionDays != 9 || got.Source != "api" {
		t.Fatalf("after a second Put: %+v %v", got, err)
	}
}

func TestPutBackupPolicyRecomputesAutomatedExpiry(t *testing.T) {
	db, _ := policyDB(t)
	ctx := t.Context()
	t0 := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
	old := t0.Add(7 * 24 * time.Hour)
	autoOK := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, t0, old)
	autoFailed := polSet("rm-a", rdsbackup.BackupFailed, rdsbackup.BackupAutomated, t0.Add(24*time.Hour), time.Time{})
	manual := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(2*time.Hour), time.Time{})
	manualExp := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(3*time.Hour), old)
	other := polSet("rm-b", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, t0, old)
	createSets(t, db, autoOK, autoFailed, manual, manualExp, other)

	p := rdsbackup.DefaultBackupPolicy("rm-a")
	p.RetentionDays = 30
	if err := db.PutBackupPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	want := map[int64]time.Time{
		autoOK.ID:     autoOK.EndTime.Add(30 * 24 * time.Hour),
		autoFailed.ID: autoFailed.EndTime.Add(30 * 24 * time.Hour),
		manual.ID:     {},
		manualExp.ID:  old,
		other.ID:      old,
	}
	for id, w := range want {
		s, err := db.FindBackupSet(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !s.ExpectExpireTime.Equal(w) {
			t.Errorf("set %d (%s %s of %s): ExpectExpireTime %v, want %v", id, s.Mode, s.Status, s.InstanceID, s.ExpectExpireTime, w)
		}
	}
}

func TestJobWindowOncePerInstance(t *testing.T) {
	db, reopen := policyDB(t)
	ctx := t.Context()
	w1 := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
	w2 := w1.Add(24 * time.Hour)
	job := func(inst string, w time.Time) *rdsbackup.Job {
		mode := rdsbackup.BackupManual
		if !w.IsZero() {
			mode = rdsbackup.BackupAutomated
		}
		return &rdsbackup.Job{InstanceID: inst, Status: rdsbackup.JobNoStart, Mode: mode, Method: rdsbackup.MethodLogical, Strategy: "instance", Window: w}
	}
	for _, j := range []*rdsbackup.Job{job("rm-a", w1), job("rm-a", w2), job("rm-b", w1), job("rm-a", time.Time{}), job("rm-a", time.Time{})} {
		if err := db.CreateJob(ctx, j); err != nil {
			t.Fatalf("create job %+v: %v", j, err)
		}
	}
	for _, d := range []*sqlite.DB{db, reopen()} {
		err := d.CreateJob(ctx, job("rm-a", w1))
		if rdsbackup.ErrorCode(err) != rdsbackup.ECONFLICT {
			t.Errorf("a second job for the same window: %v, want ECONFLICT", err)
		}
	}
	// The unique index holds even without CreateJob's check.
	if _, err := db.Raw().ExecContext(ctx, `INSERT INTO jobs (instance_id, status, mode, method, strategy, databases, progress, backup_set_id, error, created_at, updated_at, window_start)
		VALUES ('rm-b', 'NoStart', 'Automated', 'Logical', 'instance', '', 0, 0, '', 1, 1, ?)`, w1.Unix()); err == nil {
		t.Error("the catalog accepted a second job row for the same instance and window")
	}
	last, err := db.FindLastWindows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 2 || !last["rm-a"].Equal(w2) || !last["rm-b"].Equal(w1) {
		t.Errorf("FindLastWindows: %v, want rm-a %v, rm-b %v", last, w2, w1)
	}
	jobs, err := db.FindJobs(ctx, rdsbackup.JobFilter{InstanceID: "rm-a"})
	if err != nil {
		t.Fatal(err)
	}
	var windows []time.Time
	for _, j := range jobs {
		windows = append(windows, j.Window)
	}
	if len(jobs) != 4 || !jobs[2].Window.Equal(w2) || !jobs[3].Window.Equal(w1) || !jobs[0].Window.IsZero() {
		t.Errorf("jobs of rm-a, newest first, have windows %v", windows)
	}
}

func TestFindExpiredBackupSets(t *testing.T) {
	db, _ := policyDB(t)
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
	createSets(t, db, a1, a2, a3, aFail, b1, b2, b3, b4, c1)

	expired, err := db.FindExpiredBackupSets(ctx, now, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Oldest expiry first.
	if got, want := setIDs(expired), []int64{a1.ID, a2.ID, aFail.ID, b1.ID, b3.ID}; !slices.Equal(got, want) {
		t.Errorf("expired sets %v, want %v (a3 %d and c1 %d are their instance's newest Success)", got, want, a3.ID, c1.ID)
	}
	for _, s := range expired {
		if s.Status == rdsbackup.BackupSuccess && len(s.Artifacts) != 1 {
			t.Errorf("expired set %d comes without its artifacts: %+v", s.ID, s.Artifacts)
		}
	}
	if got, err := db.FindExpiredBackupSets(ctx, now, 2); err != nil || !slices.Equal(setIDs(got), []int64{a1.ID, a2.ID}) {
		t.Errorf("limit 2: %v %v", setIDs(got), err)
	}

	// A set being deleted is not offered again, and does not count as the
	// newest Success: when a3 is being deleted, a2 is kept.
	if err := db.MarkBackupSetsDeleting(ctx, []int64{a3.ID, a1.ID}); err != nil {
		t.Fatal(err)
	}
	expired, err = db.FindExpiredBackupSets(ctx, now, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := setIDs(expired), []int64{aFail.ID, b1.ID, b3.ID}; !slices.Equal(got, want) {
		t.Errorf("with a1 and a3 being deleted, expired sets %v, want %v", got, want)
	}
}

func TestMarkBackupSetsDeleting(t *testing.T) {
	db, reopen := policyDB(t)
	ctx := t.Context()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s1 := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, now, time.Time{})
	s2 := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, now.Add(time.Hour), time.Time{})
	createSets(t, db, s1, s2)

	// All or none: an unknown id leaves s1 visible.
	if err := db.MarkBackupSetsDeleting(ctx, []int64{s1.ID, 999}); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Fatalf("mark with an unknown id: %v, want ENOTFOUND", err)
	}
	if _, err := db.FindBackupSet(ctx, s1.ID); err != nil {
		t.Fatalf("s1 after a refused mark: %v", err)
	}
	if d, err := db.FindDeletingBackupSets(ctx); err != nil || len(d) != 0 {
		t.Fatalf("deleting sets after a refused mark: %v %v", setIDs(d), err)
	}

	if err := db.MarkBackupSetsDeleting(ctx, []int64{s1.ID}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*sqlite.DB{db, reopen()} {
		if _, err := d.FindBackupSet(ctx, s1.ID); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
			t.Errorf("FindBackupSet of a set being deleted: %v, want ENOTFOUND", err)
		}
		sets, total, err := d.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: "rm-a"})
		if err != nil || total != 1 || len(sets) != 1 || sets[0].ID != s2.ID {
			t.Errorf("FindBackupSets shows %v (total %d, %v), want only %d", setIDs(sets), total, err, s2.ID)
		}
		deleting, err := d.FindDeletingBackupSets(ctx)
		if err != nil || !slices.Equal(setIDs(deleting), []int64{s1.ID}) {
			t.Fatalf("FindDeletingBackupSets: %v %v", setIDs(deleting), err)
		}
		if deleting[0].ObjectKey != s1.ObjectKey || deleting[0].InstanceID != "rm-a" || len(deleting[0].Artifacts) != 1 {
			t.Errorf("a set being deleted comes back incomplete: %+v", deleting[0])
		}
	}
	// Marking twice is refused: the second deleter finds nothing to delete.
	if err := db.MarkBackupSetsDeleting(ctx, []int64{s1.ID}); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Errorf("marking a set twice: %v, want ENOTFOUND", err)
	}
	if err := db.DeleteBackupSet(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	if d, err := db.FindDeletingBackupSets(ctx); err != nil || len(d) != 0 {
		t.Errorf("deleting sets after the row was deleted: %v %v", setIDs(d), err)
	}
}

// TestNewSetsExpireByPolicy: every set carries ExpectExpireTime = end +
// the stored retention when it is recorded; an automated set always takes
// the policy's, a manual one keeps an expiry its maker set.
func TestNewSetsExpireByPolicy(t *testing.T) {
	db, _ := policyDB(t)
	t0 := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
	p := rdsbackup.DefaultBackupPolicy("rm-a")
	p.RetentionDays = 10
	if err := db.PutBackupPolicy(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	fixed := t0.Add(100 * 24 * time.Hour)
	manual := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	manualFixed := polSet("rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(time.Hour), fixed)
	auto := polSet("rm-a", rdsbackup.BackupFailed, rdsbackup.BackupAutomated, t0.Add(2*time.Hour), fixed)
	noPolicy := polSet("rm-b", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	createSets(t, db, manual, manualFixed, auto, noPolicy)
	ten := 10 * 24 * time.Hour
	for _, c := range []struct {
		set  *rdsbackup.BackupSet
		want time.Time
	}{
		{manual, manual.EndTime.Add(ten)},
		{manualFixed, fixed},
		{auto, auto.EndTime.Add(ten)},
		{noPolicy, time.Time{}},
	} {
		got, err := db.FindBackupSet(t.Context(), c.set.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.ExpectExpireTime.Equal(c.want) {
			t.Errorf("set %d (%s of %s): ExpectExpireTime %v, want %v", got.ID, got.Mode, got.InstanceID, got.ExpectExpireTime, c.want)
		}
	}
}
