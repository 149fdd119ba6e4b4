package main

// DeleteBackup through the official Go SDK: a real manual backup and sets
// written as the runner writes them are deleted (rows, files and download
// links); a list, the Terraform form; every refusal deletes nothing.

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

// waitJobEnd polls DescribeBackupTasks until job id ends and returns it.
func waitJobEnd(t testing.TB, c *clients, inst, id string, timeout time.Duration) rds.BackupJob {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		req := rds.CreateDescribeBackupTasksRequest()
		req.DBInstanceId, req.BackupJobId = inst, requests.Integer(id)
		resp, err := c.RDS.DescribeBackupTasks(req)
		if err != nil {
			t.Fatalf("DescribeBackupTasks %s: %v", id, err)
		}
		if len(resp.Items.BackupJob) == 1 {
			j := resp.Items.BackupJob[0]
			if j.BackupStatus == "Finished" || j.BackupStatus == "Failed" {
				return j
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s of %s has not ended after %v: %+v", id, inst, timeout, resp.Items.BackupJob)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDeleteBackup(t *testing.T) {
	t.Parallel()
	srv := enginetest.SharedMariaDB(t)
	dsn, _, _ := polDatabase(t, srv, 200)
	const inst, other = "rm-pdel", "rm-pdel2"
	pc := &polConfig{DataDir: t.TempDir(), Insts: []polInst{
		{ID: inst, Engine: "MariaDB", DSN: dsn},
		{ID: other, Engine: "MySQL", DSN: fakeDSN},
	}}
	s := pc.start(t)
	c := rootClients(t, s)

	// A real manual backup.
	req := rds.CreateCreateBackupRequest()
	req.DBInstanceId, req.BackupMethod = inst, "Logical"
	resp, err := c.RDS.CreateBackup(req)
	if err != nil {
		t.Fatalf("CreateBackup: %v", err)
	}
	job := waitJobEnd(t, c, inst, resp.BackupJobId, time.Minute)
	if job.BackupStatus != "Finished" {
		t.Fatalf("manual backup: %+v", job)
	}
	first := setByID(listSets(t, c, inst), resp.BackupJobId)
	if first == nil || first.BackupStatus != "Success" || first.StoreStatus != "Enabled" || first.BackupMode != "Manual" {
		t.Fatalf("the manual backup's set: %+v", first)
	}
	firstID, _ := strconv.ParseInt(first.BackupId, 10, 64)
	if files := filesOfSet(polStorageFiles(t, pc.DataDir), inst, firstID); len(files) != 2 {
		t.Fatalf("files of the manual backup: %v", files)
	}
	if st := httpStatus(t, first.BackupDownloadURL); st != http.StatusOK {
		t.Fatalf("download of the manual backup before deleting: %d", st)
	}
	if err := deleteBackup(c, inst, first.BackupId); err != nil {
		t.Fatalf("DeleteBackup %s: %v", first.BackupId, err)
	}
	checkDeleted(t, c, pc.DataDir, inst, first)

	// Sets written as the runner writes them.
	db := openCatalog(t, pc.DataDir)
	t0 := time.Now().UTC().Add(-2 * time.Hour)
	put := func(sp polSet) *polBackup {
		t.Helper()
		set := putSet(t, db, pc.DataDir, sp)
		b := setByID(listSets(t, c, sp.Instance), strconv.FormatInt(set.ID, 10))
		if b == nil {
			t.Fatalf("set %d is not listed", set.ID)
		}
		return b
	}
	m1 := put(polSet{Instance: inst, Start: t0})
	m2 := put(polSet{Instance: inst, Start: t0.Add(time.Minute)})
	m3 := put(polSet{Instance: inst, Start: t0.Add(2 * time.Minute)})
	m4 := put(polSet{Instance: inst, Start: t0.Add(3 * time.Minute)})
	failed := put(polSet{Instance: inst, Status: rdsbackup.BackupFailed, Start: t0.Add(4 * time.Minute)})
	auto := put(polSet{Instance: inst, Mode: rdsbackup.BackupAutomated, Start: t0.Add(5 * time.Minute), Expire: t0.Add(7 * 24 * time.Hour)})
	autoFailed := put(polSet{Instance: inst, Mode: rdsbackup.BackupAutomated, Status: rdsbackup.BackupFailed, Start: t0.Add(6 * time.Minute)})
	foreign := put(polSet{Instance: other, Start: t0})

	for _, b := range []*polBackup{m1, m2} {
		if len(b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem) != 1 {
			t.Fatalf("set %s: per-database links %+v", b.BackupId, b.BackupDownloadLinkByDB)
		}
		for _, l := range []string{b.BackupDownloadURL, b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem[0].DownloadLink} {
			if st := httpStatus(t, l); st != http.StatusOK {
				t.Fatalf("download of set %s before deleting: %d", b.BackupId, st)
			}
		}
	}
	// A list.
	if err := deleteBackup(c, inst, m1.BackupId+","+m2.BackupId); err != nil {
		t.Fatalf("DeleteBackup %s,%s: %v", m1.BackupId, m2.BackupId, err)
	}
	checkDeleted(t, c, pc.DataDir, inst, m1, m2)
	// Terraform's <DBInstanceId>:<BackupId>.
	if err := deleteBackup(c, inst, inst+":"+m3.BackupId); err != nil {
		t.Fatalf("DeleteBackup %s:%s: %v", inst, m3.BackupId, err)
	}
	checkDeleted(t, c, pc.DataDir, inst, m3)
	// A failed manual set has no files; its row goes.
	if err := deleteBackup(c, inst, failed.BackupId); err != nil {
		t.Fatalf("DeleteBackup of a failed manual set: %v", err)
	}
	checkDeleted(t, c, pc.DataDir, inst, failed)

	// Refusals: each names the problem, and deletes nothing of the list.
	hundred := make([]string, 101)
	for i := range hundred {
		hundred[i] = m4.BackupId
	}
	refusals := []struct {
		ids, code string
		status    int
		mention   string
	}{
		{m4.BackupId + "," + auto.BackupId, rdsbackup.EBackupNotDeletable, 403, auto.BackupId},
		{auto.BackupId + "," + m4.BackupId, rdsbackup.EBackupNotDeletable, 403, auto.BackupId},
		{m4.BackupId + "," + autoFailed.BackupId, rdsbackup.EBackupNotDeletable, 403, autoFailed.BackupId},
		{m4.BackupId + ",999999", rdsbackup.EBackupNotFound, 404, "999999"},
		{m4.BackupId + "," + foreign.BackupId, rdsbackup.EBackupNotFound, 404, foreign.BackupId},
		{m4.BackupId + "," + m1.BackupId, rdsbackup.EBackupNotFound, 404, m1.BackupId}, // already deleted
		{m4.BackupId + ",abc", rdsbackup.EINVALID, 400, "BackupId"},
		{m4.BackupId + ",-3", rdsbackup.EINVALID, 400, "BackupId"},
		{m4.BackupId + ",," + m4.BackupId, rdsbackup.EINVALID, 400, "BackupId"},
		{m4.BackupId + "," + other + ":" + foreign.BackupId, rdsbackup.EINVALID, 400, other},
		{strings.Join(hundred, ","), rdsbackup.EINVALID, 400, "100"},
	}
	for _, r := range refusals {
		err := deleteBackup(c, inst, r.ids)
		if err == nil {
			t.Errorf("DeleteBackup %.60s: accepted", r.ids)
			continue
		}
		se := wantServerError(t, err, r.code, r.status)
		if !strings.Contains(se.Message(), r.mention) {
			t.Errorf("DeleteBackup %.60s: the message does not mention %s: %s", r.ids, r.mention, se.Message())
		}
		if r.code == rdsbackup.EBackupNotDeletable && !strings.Contains(se.Message(), "nothing was deleted") {
			t.Errorf("DeleteBackup %.60s: the message does not say that nothing was deleted: %s", r.ids, se.Message())
		}
	}
	_, err = c.RDS.DeleteBackup(func() *rds.DeleteBackupRequest {
		r := rds.CreateDeleteBackupRequest()
		r.DBInstanceId, r.BackupId = "rm-nope", m4.BackupId
		return r
	}())
	wantServerError(t, err, rdsbackup.EInstanceIdNotFound, 400)
	// Everything refused is still there, files and links included.
	sets := listSets(t, c, inst)
	for _, b := range []*polBackup{m4, auto, autoFailed} {
		if setByID(sets, b.BackupId) == nil {
			t.Errorf("set %s was deleted by a refused DeleteBackup", b.BackupId)
		}
	}
	for _, b := range []*polBackup{m4, auto} {
		if st := httpStatus(t, b.BackupDownloadURL); st != http.StatusOK {
			t.Errorf("set %s: download after refused deletions: %d", b.BackupId, st)
		}
	}
	if setByID(listSets(t, c, other), foreign.BackupId) == nil {
		t.Errorf("the other instance's set %s was deleted", foreign.BackupId)
	}

	// A repeated id is deleted once.
	if err := deleteBackup(c, inst, m4.BackupId+", "+m4.BackupId); err != nil {
		t.Fatalf("DeleteBackup %s twice in the list: %v", m4.BackupId, err)
	}
	checkDeleted(t, c, pc.DataDir, inst, m4)

	// 100 ids, the most a call takes.
	var ids []string
	var batch []*rdsbackup.BackupSet
	for i := range 100 {
		st := t0.Add(time.Duration(10+i) * time.Second)
		b := putSet(t, db, pc.DataDir, polSet{Instance: inst, Status: rdsbackup.BackupFailed, Start: st})
		batch = append(batch, b)
		ids = append(ids, strconv.FormatInt(b.ID, 10))
	}
	if err := deleteBackup(c, inst, strings.Join(ids, ",")); err != nil {
		t.Fatalf("DeleteBackup of 100 ids: %v", err)
	}
	for _, b := range batch {
		if _, err := db.FindBackupSet(context.Background(), b.ID); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
			t.Errorf("set %d of the 100: %v", b.ID, err)
			break
		}
	}
	left := listSets(t, c, inst)
	if len(left) != 2 || setByID(left, auto.BackupId) == nil || setByID(left, autoFailed.BackupId) == nil {
		var got []string
		for _, b := range left {
			got = append(got, b.BackupId)
		}
		t.Errorf("left: %v, want the automated sets %s and %s", got, auto.BackupId, autoFailed.BackupId)
	}
	checkStorageMatchesCatalog(t, pc.DataDir)

	// Deletions stand after a restart.
	s.Stop()
	s = pc.start(t)
	c = rootClients(t, s)
	if left2 := listSets(t, c, inst); len(left2) != len(left) {
		t.Errorf("after a restart %d sets, before %d", len(left2), len(left))
	}
	checkStorageMatchesCatalog(t, pc.DataDir)
}

// checkDeleted asserts that sets are gone: not listed, not found by id,
// no file left, their download links 404.
func checkDeleted(t testing.TB, c *clients, dataDir, inst string, sets ...*polBackup) {
	t.Helper()
	listed := listSets(t, c, inst)
	files := polStorageFiles(t, dataDir)
	for _, b := range sets {
		if setByID(listed, b.BackupId) != nil {
			t.Errorf("deleted set %s is still listed", b.BackupId)
		}
		resp, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) { r.DBInstanceId, r.BackupId = inst, b.BackupId })
		if err != nil || len(resp.Items.Backup) != 0 {
			t.Errorf("DescribeBackups BackupId=%s after deleting: %v %v", b.BackupId, resp.Items.Backup, err)
		}
		id, _ := strconv.ParseInt(b.BackupId, 10, 64)
		if left := filesOfSet(files, inst, id); len(left) != 0 {
			t.Errorf("deleted set %s left files: %v", b.BackupId, left)
		}
		links := []string{b.BackupDownloadURL, b.BackupIntranetDownloadURL}
		for _, l := range b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem {
			links = append(links, l.DownloadLink)
		}
		for _, l := range links {
			if l == "" {
				continue
			}
			if st := httpStatus(t, l); st != http.StatusNotFound {
				t.Errorf("download link of deleted set %s: %d, want 404 (%s)", b.BackupId, st, l)
			}
		}
	}
}
