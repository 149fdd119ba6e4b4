//go:build linux

package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ram"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/internal/disktest"
)

func healthz(t *testing.T, s *testService) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestCatalogDiskFullDuringBackup puts the data directory, and so the
// catalog, on a small tmpfs (the backup storage on another disk) and fills
// it while a backup's dump waits on a table lock. When the dump goes on,
// the set cannot be recorded, nor the job's failure: the job must still
// end while the process lives. While the disk is full /healthz answers
// 503 naming the job, the metrics count the refused writes and the
// unsettled job, DescribeBackupTasks already shows the job Failed with the
// real reason, and a write call (CreateUser) answers InsufficientStorage.
// Once space is freed the retries record the job and its set Failed with
// that reason, the set's data is gone from storage, and the service is
// healthy again.
func TestCatalogDiskFullDuringBackup(t *testing.T) {
	t.Parallel()
	const inst = "rm-full"
	dataDir := disktest.Mount(t, 8<<20)
	storage := t.TempDir()
	if err := os.Symlink(storage, filepath.Join(dataDir, "storage")); err != nil {
		t.Fatal(err)
	}

	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "full pw:@1"})
	dbName := src.NewDatabase(t)
	data := src.DB(t, dbName)
	enginetest.FillMariaDB(t, data, 200)
	var table string
	if err := data.QueryRow("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY table_name LIMIT 1").Scan(&table); err != nil {
		t.Fatal(err)
	}
	unlock := lockTable(t, data, table)
	admin := src.DB(t, "")

	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
	s := startService(t, dataDir, "metrics:\n  listen: 127.0.0.1:0\n"+fx.YAML, testEnv(fx.Env))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", s.Stderr.String())
		}
	})
	c := rootClients(t, s)
	url := metricsURL(t, s)
	id := createBackup(t, c, inst, "Logical", func(r *rds.CreateBackupRequest) { r.DBName = dbName })
	waitFor(t, time.Minute, "the dump waits for the lock", func() bool { return waitingConnection(t, admin, dbName) != "" })

	free := disktest.Fill(t, dataDir)
	u := ram.CreateCreateUserRequest()
	u.UserName = "made-on-a-full-disk"
	_, err := c.RAM.CreateUser(u)
	se := wantServerError(t, err, "InsufficientStorage", 507)
	if !strings.Contains(se.Message(), "catalog") {
		t.Errorf("InsufficientStorage message %q does not name the catalog", se.Message())
	}

	unlock() // the dump goes on; its set cannot be recorded
	var body string
	waitFor(t, time.Minute, "/healthz reports the unsettled job", func() bool {
		code, b := healthz(t, s)
		body = b
		return code == http.StatusServiceUnavailable
	})
	t.Logf("/healthz: %s", body)
	if !strings.Contains(body, "job "+id) || !strings.Contains(body, "InsufficientStorage") {
		t.Errorf("/healthz does not name job %s and the full disk: %s", id, body)
	}
	j := describeJob(t, c, inst, id)
	if j.BackupStatus != "Failed" || !strings.Contains(j.FailureReason, "catalog is full") {
		t.Errorf("job while its state cannot be recorded: %+v", j)
	}
	// Reads work although the catalog cannot record their nonces; this
	// process still refuses a replay, and says how it is protected.
	captured := captureDescribe(t, s.Addr, inst)
	wantRawError(t, replay(t, s.Addr, captured), "SignatureNonceUsed", http.StatusBadRequest)
	if !strings.Contains(s.Stderr.String(), "nonces are kept by this process alone") {
		t.Errorf("the log does not say that replay protection is local while the catalog is full")
	}
	got := scrapeMetrics(t, url)
	if got[`rdsbackup_backup_jobs_unsettled`] != 1 || got[`rdsbackup_catalog_job_write_failures_total{kind="final"}`] < 1 ||
		got[`rdsbackup_backup_jobs{state="Failed"}`] != 1 {
		t.Errorf("metrics while full: unsettled %v, final write failures %v, Failed jobs %v", got[`rdsbackup_backup_jobs_unsettled`],
			got[`rdsbackup_catalog_job_write_failures_total{kind="final"}`], got[`rdsbackup_backup_jobs{state="Failed"}`])
	}

	free()
	waitFor(t, 2*time.Minute, "/healthz is ok again", func() bool {
		code, _ := healthz(t, s)
		return code == http.StatusOK
	})
	j = describeJob(t, c, inst, id)
	if j.BackupStatus != "Failed" || j.BackupId != id || !strings.Contains(j.FailureReason, "record backup set") ||
		!strings.Contains(j.FailureReason, "catalog is full") {
		t.Errorf("job once recorded: %+v", j)
	}
	checkFailedSet(t, describeSet(t, c, inst, id), `record backup set.*catalog is full`)
	// dataDir/storage is a symlink here: walk its target.
	var files []string
	filepath.WalkDir(storage, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Errorf("storage holds %v after the set failed", files)
	}
	got = scrapeMetrics(t, url)
	if got[`rdsbackup_backup_jobs_unsettled`] != 0 || got[`rdsbackup_backups_total{engine="MariaDB",method="Logical",result="Failed"}`] != 1 {
		t.Errorf("metrics after: unsettled %v, failed backups %v", got[`rdsbackup_backup_jobs_unsettled`],
			got[`rdsbackup_backups_total{engine="MariaDB",method="Logical",result="Failed"}`])
	}
	// The catalog takes writes again.
	if _, err := c.RAM.CreateUser(u); err != nil {
		t.Errorf("CreateUser after space was freed: %v", err)
	}
}
