package main

import (
	"database/sql"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/internal/s3test"
)

// TestS3AutomatedExpiryAndDelete: on S3, the schedule takes an automated
// set into the bucket; after a restart the expiry sweep removes an expired
// set's objects and row, and a deletion left half done by a crash (the set
// marked deleting, its objects still there) is finished; the newest set
// stays, objects and all.
func TestS3AutomatedExpiryAndDelete(t *testing.T) {
	t.Parallel()
	const inst = "rm-s3pol"
	window, _, _ := hourWindow(t, 60*time.Second)
	srv := enginetest.SharedMariaDB(t)
	dsn, _, _ := polDatabase(t, srv, 100)
	s3 := newS3Target(t, s3test.Shared(t))
	pc := &polConfig{DataDir: t.TempDir(), Backups: fastBackups, Insts: []polInst{
		{ID: inst, Engine: "MariaDB", DSN: dsn, Policy: []string{
			"preferredBackupTime: " + window, "preferredBackupPeriod: " + todayAnd(time.Now()), "backupRetentionPeriod: 7"}},
	}, Env: map[string]string{envTestS3Secret: s3.srv.SecretKey}, Extra: s3.yaml("")}
	s := pc.start(t)
	c := rootClients(t, s)

	var auto []polBackup
	waitFor(t, 60*time.Second, "the automated backup", func() bool {
		// The set is settled a moment before its job.
		auto = automatedSets(t, c, inst)
		return len(auto) > 0 && (auto[0].BackupStatus == "Success" || auto[0].BackupStatus == "Failed") && len(runningJobs(t, c, inst)) == 0
	})
	if auto[0].BackupStatus != "Success" {
		t.Fatalf("automated set: %+v", auto[0])
	}
	manual := func() string {
		id := createBackup(t, c, inst, "Logical", nil)
		waitFinished(t, c, inst, id)
		return id
	}
	autoID, halfDeleted, newest := auto[0].BackupId, manual(), manual()
	inBucket := func(id string) bool {
		keys := s3.keys(t)
		for _, k := range setKeys(inst, id) {
			if !slices.Contains(keys, k) {
				return false
			}
		}
		return true
	}
	for _, id := range []string{autoID, halfDeleted, newest} {
		if !inBucket(id) {
			t.Fatalf("set %s is not in the bucket: %v", id, s3.keys(t))
		}
	}

	// A crash between marking a deletion and deleting its objects, and an
	// automated set whose retention has passed.
	s.Stop()
	db := openCatalog(t, pc.DataDir)
	hd, _ := strconv.ParseInt(halfDeleted, 10, 64)
	if err := db.MarkBackupSetsDeleting(t.Context(), []int64{hd}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", filepath.Join(pc.DataDir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("UPDATE backup_sets SET expect_expire_time = ? WHERE id = ?", time.Now().Add(-time.Hour).Unix(), autoID); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	s = pc.start(t)
	c = rootClients(t, s)
	waitFor(t, 60*time.Second, "the expired and the half-deleted sets to go", func() bool {
		keys := s3.keys(t)
		for _, id := range []string{autoID, halfDeleted} {
			for _, k := range setKeys(inst, id) {
				if slices.Contains(keys, k) {
					return false
				}
			}
		}
		return true
	})
	waitFor(t, 10*time.Second, "their rows to go", func() bool {
		return setByID(listSets(t, c, inst), autoID) == nil && setByID(listSets(t, c, inst), halfDeleted) == nil
	})
	if !inBucket(newest) || setByID(listSets(t, c, inst), newest) == nil {
		t.Errorf("the newest set %s lost: bucket %v", newest, s3.keys(t))
	}
	b := describeSet(t, c, inst, newest)
	checkDownloads(t, b)
}
