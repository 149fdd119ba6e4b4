package main

// The service, built and run as a child process, SIGKILLed during a
// scheduled backup and during an expiry sweep, then started again: no
// duplicate backup of a window, no orphan file, no row without its data.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

func TestKillDuringAutomation(t *testing.T) {
	t.Parallel()
	bin := buildRdsbackup(t)
	t.Run("ScheduledBackup", func(t *testing.T) { killDuringScheduledBackup(t, bin) })
	t.Run("Sweep", func(t *testing.T) { killDuringSweep(t, bin) })
}

// killDuringScheduledBackup: SIGKILL while the scheduled backup uploads;
// after the restart the job is Failed, the window is not backed up again,
// and storage matches the catalog.
func killDuringScheduledBackup(t *testing.T, bin string) {
	window, _, wstart := hourWindow(t, 45*time.Second)
	srv := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "kill pw"})
	dsn, name, _ := polDatabase(t, srv, 0)
	db := srv.DB(t, name)
	// a_data streams, then the dump waits on z_lock, held by the test: the
	// job is Uploading, with data in storage's temporary file, for as long
	// as the test wants.
	for _, q := range []string{
		"CREATE TABLE a_data (id INT PRIMARY KEY, pad TEXT NOT NULL) ENGINE=InnoDB",
		"INSERT INTO a_data SELECT seq, CONCAT(SHA2(seq, 512), RAND()) FROM seq_1_to_20000",
		"CREATE TABLE z_lock (id INT PRIMARY KEY) ENGINE=InnoDB",
		"INSERT INTO z_lock VALUES (1)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	unlock := lockTable(t, db, "z_lock")
	const inst = "rm-pkill"
	pc := &polConfig{DataDir: t.TempDir(), Backups: fastBackups, Insts: []polInst{
		{ID: inst, Engine: "MariaDB", DSN: dsn, Policy: []string{
			"preferredBackupTime: " + window, "preferredBackupPeriod: " + todayAnd(time.Now()), "backupRetentionPeriod: 11"}},
	}}
	config := pc.configFile(t)
	p := startServeProcess(t, bin, config, pc.Env)
	c := p.clients(t)
	waitFor(t, 30*time.Second, "the scheduled backup to upload", func() bool {
		jobs := runningJobs(t, c, inst)
		return len(jobs) == 1 && jobs[0].BackupStatus == "Uploading" && tmpBytes(pc.DataDir) > 0
	})
	jobID := runningJobs(t, c, inst)[0].BackupJobId
	p.kill()
	unlock()
	t.Logf("storage after SIGKILL: %v", polStorageFiles(t, pc.DataDir))

	p = startServeProcess(t, bin, config, pc.Env)
	c = p.clients(t)
	// Ten ticks inside the same window: no second backup.
	time.Sleep(time.Second)
	jobs := polJobs(t, c, inst)
	if len(jobs) != 1 || jobs[0].BackupJobId != jobID || jobs[0].BackupStatus != "Failed" || jobs[0].JobMode != "Automated" {
		t.Fatalf("jobs after the restart: %+v, want only job %s, Failed", jobs, jobID)
	}
	sets := automatedSets(t, c, inst)
	if len(sets) != 1 || sets[0].BackupId != jobID || sets[0].BackupStatus != "Failed" {
		t.Fatalf("automated sets after the restart: %+v", sets)
	}
	if sets[0].StoreStatus != "Disabled" || sets[0].BackupInitiator != "System" {
		t.Errorf("interrupted automated set: StoreStatus %q BackupInitiator %q", sets[0].StoreStatus, sets[0].BackupInitiator)
	}
	if start := parseWire(t, sets[0].BackupStartTime); start.Before(wstart.Add(-time.Second)) {
		t.Errorf("interrupted set started %v, before its window %v", start, wstart)
	}
	checkStorageMatchesCatalog(t, pc.DataDir)
	t.Run("InterruptedSetExpires", func(t *testing.T) {
		want := parseWire(t, sets[0].BackupEndTime).Add(11 * 24 * time.Hour).Format("2006-01-02T15:04:05Z")
		if sets[0].ExpectExpireTime != want {
			t.Errorf("the interrupted automated set has ExpectExpireTime %q, want BackupEndTime + 11 days = %q: "+
				"Disabled, it cannot be deleted, so it never leaves", sets[0].ExpectExpireTime, want)
		}
	})
}

// killDuringSweep: many expired sets, the service killed right after the
// sweep's first deletions; after the restart every expired set is gone
// from the catalog and storage, the newest successful one is kept.
func killDuringSweep(t *testing.T, bin string) {
	const inst = "rm-pksw"
	away := time.Now().UTC().Add(6 * time.Hour)
	pc := &polConfig{DataDir: t.TempDir(), Backups: []string{"tickInterval: 50ms"}, Insts: []polInst{
		{ID: inst, Engine: "MySQL", DSN: fakeDSN, Policy: []string{
			fmt.Sprintf("preferredBackupTime: %02d:00Z-%02d:00Z", away.Hour(), away.Add(time.Hour).Hour())}},
	}}
	config := pc.configFile(t)

	// The catalog and storage of a service that was down for a long time.
	db := openCatalog(t, pc.DataDir)
	day := 24 * time.Hour
	t0 := time.Now().UTC().Add(-60 * day)
	const n = 300
	var expired []*rdsbackup.BackupSet
	for i := range n {
		st := t0.Add(time.Duration(i) * time.Minute)
		sp := polSet{Instance: inst, Mode: rdsbackup.BackupAutomated, Start: st, Expire: st.Add(7 * day), ObjectBytes: 512}
		if i%10 == 9 {
			sp.Status = rdsbackup.BackupFailed
		}
		expired = append(expired, putSet(t, db, pc.DataDir, sp))
	}
	// The newest successful set, expired too: kept.
	newest := putSet(t, db, pc.DataDir, polSet{Instance: inst, Mode: rdsbackup.BackupAutomated, Start: t0.Add(40 * day), Expire: t0.Add(47 * day)})
	// A manual set (no expiry) and an unexpired failed one stay.
	manual := putSet(t, db, pc.DataDir, polSet{Instance: inst, Start: t0})
	fresh := putSet(t, db, pc.DataDir, polSet{Instance: inst, Mode: rdsbackup.BackupAutomated, Status: rdsbackup.BackupFailed,
		Start: time.Now().Add(-time.Hour), Expire: time.Now().Add(6 * day)})
	db.Close()
	before := len(polStorageFiles(t, pc.DataDir))

	p := startServeProcess(t, bin, config, pc.Env)
	deadline := time.Now().Add(30 * time.Second)
	for len(polStorageFiles(t, pc.DataDir)) >= before {
		if time.Now().After(deadline) {
			t.Fatalf("the sweep deleted nothing in 30s:\n%s", p.stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	p.kill()
	left := len(polStorageFiles(t, pc.DataDir))
	t.Logf("killed with %d of %d files left", left, before)
	if left <= 6 {
		t.Fatalf("the sweep had finished (%d files left) before the kill; the test needs more sets", left)
	}
	// At any point, a set readers can see has its data.
	db = openCatalog(t, pc.DataDir)
	visible, _, err := db.FindBackupSets(context.Background(), rdsbackup.BackupFilter{InstanceID: inst})
	if err != nil {
		t.Fatal(err)
	}
	deleting, err := db.FindDeletingBackupSets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the kill: %d sets visible, %d being deleted", len(visible), len(deleting))
	files := map[string]bool{}
	for _, f := range polStorageFiles(t, pc.DataDir) {
		files[f] = true
	}
	for _, s := range visible {
		if s.Status == rdsbackup.BackupSuccess && !files[s.ObjectKey] {
			t.Errorf("after the kill, visible set %d has no object %s", s.ID, s.ObjectKey)
		}
	}
	db.Close()

	p = startServeProcess(t, bin, config, pc.Env)
	c := p.clients(t)
	want := map[string]bool{fmt.Sprint(newest.ID): true, fmt.Sprint(manual.ID): true, fmt.Sprint(fresh.ID): true}
	var got []string
	waitFor(t, 30*time.Second, "the sweep to finish after the restart", func() bool {
		got = got[:0]
		for _, b := range listSets(t, c, inst) {
			got = append(got, b.BackupId)
		}
		return len(got) == len(want)
	})
	for _, id := range got {
		if !want[id] {
			t.Errorf("set %s left after the sweep; want only %d (newest Success), %d (manual), %d (unexpired)", id, newest.ID, manual.ID, fresh.ID)
		}
	}
	checkStorageMatchesCatalog(t, pc.DataDir)
	b := setByID(listSets(t, c, inst), fmt.Sprint(newest.ID))
	if b == nil {
		t.Fatal("the newest successful set was deleted")
	}
	if st := httpStatus(t, b.BackupDownloadURL); st != http.StatusOK {
		t.Errorf("download of the kept set: %d", st)
	}
	files2 := polStorageFiles(t, pc.DataDir)
	for _, s := range expired {
		if f := filesOfSet(files2, inst, s.ID); len(f) != 0 {
			t.Errorf("files of expired set %d left: %v", s.ID, f)
		}
	}
	if strings.Contains(p.stderr.String(), "level=ERROR") {
		t.Errorf("the restarted service logged errors:\n%s", p.stderr.String())
	}
}
