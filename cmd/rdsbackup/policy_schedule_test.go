package main

// The scheduler with the real clock: backup windows that are open now,
// real MariaDB servers, the service in-process with a fast tick.

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

// fastBackups is a backups section with a fast tick.
var fastBackups = []string{"tickInterval: 100ms", "maxConcurrent: 1"}

// checkAutomatedSet checks an automated set of a window starting at
// window with retention days.
func checkAutomatedSet(t testing.TB, b polBackup, window time.Time, days int) {
	t.Helper()
	if b.BackupMode != "Automated" || b.BackupInitiator != "System" || b.StoreStatus != "Disabled" || b.BackupMethod != "Logical" {
		t.Errorf("automated set %s: BackupMode %q BackupInitiator %q StoreStatus %q BackupMethod %q",
			b.BackupId, b.BackupMode, b.BackupInitiator, b.StoreStatus, b.BackupMethod)
	}
	start, end := parseWire(t, b.BackupStartTime), parseWire(t, b.BackupEndTime)
	if start.Before(window) || !start.Before(window.Add(time.Hour)) {
		t.Errorf("automated set %s started at %v, outside its window %v+1h", b.BackupId, start, window)
	}
	if want := end.Add(time.Duration(days) * 24 * time.Hour).Format("2006-01-02T15:04:05Z"); b.ExpectExpireTime != want {
		t.Errorf("automated set %s: ExpectExpireTime %q, want BackupEndTime + %d days = %q", b.BackupId, b.ExpectExpireTime, days, want)
	}
}

// TestScheduledBackupInOpenWindow: with a window open now, the service
// backs the instance up at start, once; a restart inside the window does
// not back it up again; a policy change that opens a window starts a
// backup at once.
func TestScheduledBackupInOpenWindow(t *testing.T) {
	t.Parallel()
	window, minute, wstart := hourWindow(t, 45*time.Second)
	srv := enginetest.SharedMariaDB(t)
	dsnA, _, _ := polDatabase(t, srv, 100)
	dsnB, _, _ := polDatabase(t, srv, 100)
	today := todayAnd(time.Now())
	// B's window is elsewhere in the day until the policy changes.
	away := wstart.Add(6 * time.Hour)
	awayWindow := fmt.Sprintf("%02d:00Z-%02d:00Z", away.Hour(), away.Add(time.Hour).Hour())
	pc := &polConfig{DataDir: t.TempDir(), Backups: fastBackups, Insts: []polInst{
		{ID: "rm-psa", Engine: "MariaDB", DSN: dsnA, Policy: []string{
			"preferredBackupTime: " + window, "preferredBackupPeriod: " + today, "backupRetentionPeriod: 9"}},
		{ID: "rm-psb", Engine: "MariaDB", DSN: dsnB, Policy: []string{
			"preferredBackupTime: " + awayWindow, "preferredBackupPeriod: " + today}},
	}}
	s := pc.start(t)
	c := rootClients(t, s)

	var sets []polBackup
	waitFor(t, 30*time.Second, "the automated backup of rm-psa", func() bool {
		for _, j := range runningJobs(t, c, "rm-psa") {
			if j.JobMode != "Automated" || j.TaskAction != "NormalBackupTask" {
				t.Errorf("running job of the schedule: JobMode %q TaskAction %q", j.JobMode, j.TaskAction)
			}
		}
		sets = automatedSets(t, c, "rm-psa")
		return len(sets) > 0
	})
	if len(sets) != 1 || sets[0].BackupStatus != "Success" {
		t.Fatalf("automated sets of rm-psa: %+v", sets)
	}
	checkAutomatedSet(t, sets[0], wstart, 9)
	first := sets[0].BackupId
	jobs := polJobs(t, c, "rm-psa")
	if len(jobs) != 1 || jobs[0].BackupJobId != first || jobs[0].BackupStatus != "Finished" ||
		jobs[0].JobMode != "Automated" || jobs[0].TaskAction != "NormalBackupTask" {
		t.Errorf("jobs of rm-psa: %+v", jobs)
	}
	// The next backup is the next preferred day's window.
	if p := describePolicy(t, c, "rm-psa"); p.PreferredNextBackupTime != expectedNext(minute, weekdaysOf(today), wstart.Add(time.Hour)).Format("2006-01-02T15:04Z") {
		t.Errorf("PreferredNextBackupTime after today's backup: %s", p.PreferredNextBackupTime)
	}
	// B's window is not open: nothing.
	if jobs := polJobs(t, c, "rm-psb"); len(jobs) != 0 {
		t.Errorf("rm-psb, whose window is not open, has jobs: %+v", jobs)
	}

	// Not twice in the window.
	time.Sleep(time.Second)
	if n := len(polJobs(t, c, "rm-psa")); n != 1 {
		t.Errorf("after 10 more ticks rm-psa has %d jobs", n)
	}

	// The policy of B changes to the open window: it starts at once.
	mustModifyPolicy(t, c, "rm-psb", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = window })
	waitFor(t, 30*time.Second, "the automated backup of rm-psb after ModifyBackupPolicy", func() bool {
		sets = automatedSets(t, c, "rm-psb")
		return len(sets) > 0
	})
	if len(sets) != 1 || sets[0].BackupStatus != "Success" {
		t.Fatalf("automated sets of rm-psb: %+v", sets)
	}
	checkAutomatedSet(t, sets[0], wstart, 7)

	// A restart inside the window: no second backup of either.
	s.Stop()
	s = pc.start(t)
	c = rootClients(t, s)
	time.Sleep(time.Second)
	for _, inst := range []string{"rm-psa", "rm-psb"} {
		if jobs := polJobs(t, c, inst); len(jobs) != 1 {
			t.Errorf("%s after a restart inside the window: %d jobs: %+v", inst, len(jobs), jobs)
		}
		if sets := automatedSets(t, c, inst); len(sets) != 1 {
			t.Errorf("%s after a restart inside the window: %d automated sets", inst, len(sets))
		}
	}
	if got := automatedSets(t, c, "rm-psa"); len(got) == 1 && got[0].BackupId != first {
		t.Errorf("rm-psa's automated set is %s, was %s", got[0].BackupId, first)
	}
	checkStorageMatchesCatalog(t, pc.DataDir)
}

func weekdaysOf(period string) []time.Weekday {
	var out []time.Weekday
	for _, name := range strings.Split(period, ",") {
		for d := time.Sunday; d <= time.Saturday; d++ {
			if d.String() == name {
				out = append(out, d)
			}
		}
	}
	return out
}

// TestScheduledBackupsBounded: two instances due at once with
// maxConcurrent 1 are both backed up, never at the same time. The first
// one's dump is held by a table lock, so the test sees the second wait.
func TestScheduledBackupsBounded(t *testing.T) {
	t.Parallel()
	window, _, wstart := hourWindow(t, 45*time.Second)
	srv := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "bound pw"})
	dsnC, nameC, _ := polDatabase(t, srv, 100)
	dsnD, _, _ := polDatabase(t, srv, 100)
	dsnE, nameE, _ := polDatabase(t, srv, 100)
	unlock := lockTable(t, srv.DB(t, nameC), "t")

	today := todayAnd(time.Now())
	pol := []string{"preferredBackupTime: " + window, "preferredBackupPeriod: " + today}
	away := wstart.Add(6 * time.Hour)
	awayWindow := fmt.Sprintf("%02d:00Z-%02d:00Z", away.Hour(), away.Add(time.Hour).Hour())
	pc := &polConfig{DataDir: t.TempDir(), Backups: fastBackups, Insts: []polInst{
		{ID: "rm-pbc", Engine: "MariaDB", DSN: dsnC, Policy: pol},
		{ID: "rm-pbd", Engine: "MariaDB", DSN: dsnD, Policy: pol},
		{ID: "rm-pbe", Engine: "MariaDB", DSN: dsnE, Policy: []string{"preferredBackupTime: " + awayWindow, "preferredBackupPeriod: " + today}},
	}}
	s := pc.start(t)
	c := rootClients(t, s)

	// rm-pbc (first by id) starts and blocks on the lock; rm-pbd waits.
	waitFor(t, 20*time.Second, "rm-pbc's backup to run", func() bool { return len(runningJobs(t, c, "rm-pbc")) == 1 })
	// Meanwhile rm-pbc's retention changes: the set it is making ends
	// after the change, so it must expire by the new retention.
	mustModifyPolicy(t, c, "rm-pbc", func(r *rds.ModifyBackupPolicyRequest) { r.BackupRetentionPeriod = "30" })
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if jobs := polJobs(t, c, "rm-pbd"); len(jobs) != 0 {
			t.Fatalf("rm-pbd's backup started while rm-pbc's runs, with maxConcurrent 1: %+v", jobs)
		}
	}
	if jobs := runningJobs(t, c, "rm-pbc"); len(jobs) != 1 || jobs[0].BackupStatus != "Uploading" {
		t.Fatalf("rm-pbc's job: %+v", jobs)
	}
	unlock()

	var setC, setD []polBackup
	waitFor(t, 30*time.Second, "both automated backups", func() bool {
		if len(runningJobs(t, c, "rm-pbc"))+len(runningJobs(t, c, "rm-pbd")) > 1 {
			t.Fatal("two backups run at once with maxConcurrent 1")
		}
		setC, setD = automatedSets(t, c, "rm-pbc"), automatedSets(t, c, "rm-pbd")
		return len(setC) == 1 && len(setD) == 1
	})
	for _, b := range []polBackup{setC[0], setD[0]} {
		if b.BackupStatus != "Success" {
			t.Errorf("set %s of %s: %s (%s)", b.BackupId, b.DBInstanceId, b.BackupStatus, b.FailureReason)
		}
	}
	checkAutomatedSet(t, setD[0], wstart, 7)
	t.Run("RetentionChangedDuringBackup", func(t *testing.T) {
		// BackupRetentionPeriod became 30 while the backup ran; the set
		// ended after that and is automated.
		checkAutomatedSet(t, setC[0], wstart, 30)
		if p := describePolicy(t, c, "rm-pbc"); p.BackupRetentionPeriod != 30 {
			t.Errorf("BackupRetentionPeriod %d", p.BackupRetentionPeriod)
		}
	})
	if endC, startD := parseWire(t, setC[0].BackupEndTime), parseWire(t, setD[0].BackupStartTime); startD.Before(endC) {
		t.Errorf("rm-pbd's backup started at %v, before rm-pbc's ended at %v", startD, endC)
	}
	time.Sleep(500 * time.Millisecond)
	for _, inst := range []string{"rm-pbc", "rm-pbd"} {
		if n := len(polJobs(t, c, inst)); n != 1 {
			t.Errorf("%s has %d jobs, want 1", inst, n)
		}
	}

	// rm-pbe's window opens (by a policy change) while its manual backup
	// runs: skipped, not doubled, and backed up once the manual one ends.
	unlockE := lockTable(t, srv.DB(t, nameE), "t")
	req := rds.CreateCreateBackupRequest()
	req.DBInstanceId, req.BackupMethod = "rm-pbe", "Logical"
	resp, err := c.RDS.CreateBackup(req)
	if err != nil {
		t.Fatalf("CreateBackup: %v", err)
	}
	waitFor(t, 20*time.Second, "the manual backup to upload", func() bool {
		jobs := runningJobs(t, c, "rm-pbe")
		return len(jobs) == 1 && jobs[0].BackupStatus == "Uploading"
	})
	mustModifyPolicy(t, c, "rm-pbe", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = window })
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if jobs := polJobs(t, c, "rm-pbe"); len(jobs) != 1 || jobs[0].BackupJobId != resp.BackupJobId {
			t.Fatalf("the schedule started a backup of rm-pbe while its manual backup runs: %+v", jobs)
		}
	}
	unlockE()
	var setE []polBackup
	waitFor(t, 30*time.Second, "rm-pbe's automated backup after its manual one", func() bool {
		setE = automatedSets(t, c, "rm-pbe")
		return len(setE) == 1 && len(runningJobs(t, c, "rm-pbe")) == 0
	})
	if setE[0].BackupStatus != "Success" {
		t.Errorf("rm-pbe's automated set: %s (%s)", setE[0].BackupStatus, setE[0].FailureReason)
	}
	if jobs := polJobs(t, c, "rm-pbe"); len(jobs) != 2 {
		t.Errorf("rm-pbe's jobs: %+v, want the manual one and one automated", jobs)
	}
	checkStorageMatchesCatalog(t, pc.DataDir)
}

// TestScheduledCatchUpOnce: after downtime of several days, the latest
// missed window is caught up once at start, and not again after a
// restart; a window that closed before the policy took effect is not
// caught up.
func TestScheduledCatchUpOnce(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	closed := now.Truncate(time.Hour).Add(-2 * time.Hour) // closed an hour ago at least
	closedWindow := fmt.Sprintf("%02d:00Z-%02d:00Z", closed.Hour(), closed.Add(time.Hour).Hour())
	pc := &polConfig{DataDir: t.TempDir(), Backups: fastBackups, Insts: []polInst{
		// Nothing listens: the caught-up backup fails at once, which is
		// enough to count attempts.
		{ID: "rm-pcu", Engine: "MariaDB", DSN: fakeDSN},
		{ID: "rm-pcu2", Engine: "MariaDB", DSN: fakeDSN, Policy: []string{"preferredBackupTime: " + closedWindow}},
	}}
	// rm-pcu's policy has been in force for five days: its windows of the
	// last days were all missed while the service was down.
	db := openCatalog(t, pc.DataDir)
	p := rdsbackup.DefaultBackupPolicy("rm-pcu")
	p.Window, p.Since, p.Source = closed.Hour()*60, now.Add(-5*24*time.Hour), "api"
	if err := db.PutBackupPolicy(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := pc.start(t)
	c := rootClients(t, s)
	waitFor(t, 20*time.Second, "the catch-up backup", func() bool { return len(polJobs(t, c, "rm-pcu")) > 0 })
	time.Sleep(time.Second)
	if jobs := polJobs(t, c, "rm-pcu"); len(jobs) != 1 || jobs[0].JobMode != "Automated" {
		t.Errorf("rm-pcu after five days of missed windows: jobs %+v, want one automated", jobs)
	}
	if jobs := polJobs(t, c, "rm-pcu2"); len(jobs) != 0 {
		t.Errorf("rm-pcu2, whose window closed before its policy took effect: jobs %+v", jobs)
	}
	s.Stop()
	s = pc.start(t)
	c = rootClients(t, s)
	time.Sleep(time.Second)
	if jobs := polJobs(t, c, "rm-pcu"); len(jobs) != 1 {
		t.Errorf("rm-pcu after a restart: %d jobs, want the one catch-up", len(jobs))
	}
	if jobs := polJobs(t, c, "rm-pcu2"); len(jobs) != 0 {
		t.Errorf("rm-pcu2 after a restart: jobs %+v", jobs)
	}
	next := describePolicy(t, c, "rm-pcu").PreferredNextBackupTime
	if want := expectedNext(closed.Hour()*60, everyDay, time.Now()).Format("2006-01-02T15:04Z"); next != want {
		t.Errorf("PreferredNextBackupTime %s, want %s", next, want)
	}
}

// lockTable holds LOCK TABLES table WRITE on a connection of db, which
// makes a dump of the table wait; the returned func releases it (also
// called at cleanup).
func lockTable(t testing.TB, db *sql.DB, table string) func() {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "LOCK TABLES `"+table+"` WRITE"); err != nil {
		t.Fatal(err)
	}
	done := false
	unlock := func() {
		if !done {
			done = true
			conn.ExecContext(ctx, "UNLOCK TABLES")
			conn.Close()
		}
	}
	t.Cleanup(unlock)
	return unlock
}

// TestAutomatedFailedBackupExpires: an automated backup that fails leaves
// a Failed set that is StoreStatus Disabled, so DeleteBackup refuses it;
// it must carry ExpectExpireTime = BackupEndTime + retention like every
// automated set, or nothing ever removes it.
func TestAutomatedFailedBackupExpires(t *testing.T) {
	t.Parallel()
	window, _, _ := hourWindow(t, 30*time.Second)
	pc := &polConfig{DataDir: t.TempDir(), Backups: fastBackups, Insts: []polInst{
		// Nothing listens there: the backup fails at once.
		{ID: "rm-pfail", Engine: "MariaDB", DSN: fakeDSN, Policy: []string{
			"preferredBackupTime: " + window, "preferredBackupPeriod: " + todayAnd(time.Now()), "backupRetentionPeriod: 8"}},
	}}
	s := pc.start(t)
	c := rootClients(t, s)
	var sets []polBackup
	waitFor(t, 30*time.Second, "the failed automated backup", func() bool {
		sets = automatedSets(t, c, "rm-pfail")
		return len(sets) > 0
	})
	b := sets[0]
	if b.BackupStatus != "Failed" || b.StoreStatus != "Disabled" || b.BackupMode != "Automated" {
		t.Fatalf("set: %+v", b)
	}
	if err := deleteBackup(c, "rm-pfail", b.BackupId); err == nil {
		t.Fatal("DeleteBackup deleted an automated set")
	}
	want := parseWire(t, b.BackupEndTime).Add(8 * 24 * time.Hour).Format("2006-01-02T15:04:05Z")
	if b.ExpectExpireTime != want {
		t.Errorf("the failed automated set %s has ExpectExpireTime %q, want BackupEndTime + 8 days = %q: "+
			"it can neither be deleted (StoreStatus Disabled) nor expire, so it stays forever", b.BackupId, b.ExpectExpireTime, want)
	}
}
