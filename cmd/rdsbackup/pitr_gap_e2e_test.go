package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
	"github.com/minio/minio-go/v7"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/internal/s3test"
	"github.com/rdsbackup/rdsbackup/storage/encrypted"
)

// TestLogGapAfterPurge: binary logs purged on the server while rdsbackup
// was down leave a gap. The recovery window shrinks to what follows the
// gap, a restore to a time inside it is refused naming the windows, and a
// time before it stays reachable. The service runs on S3 with encryption
// at rest, so the log files' whole path through the bucket is exercised.
func TestLogGapAfterPurge(t *testing.T) {
	t.Parallel()
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{ServerID: 5, LogBin: true, RootPassword: "gsrc-pw", Args: []string{"--binlog-format=ROW"}})
	dst := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "gdst-pw"})
	s3 := newS3Target(t, s3test.Shared(t))
	bin := buildRdsbackup(t)
	dataDir := t.TempDir()
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
dataDir: %s
accountId: "1234567890"
backups:
  schedule: false
  tickInterval: 200ms
logs:
  uploadInterval: 1s
encryption:
  enabled: true
storage:
  type: s3
  endpoint: %s
  region: %s
  bucket: %s
  prefix: %s
  accessKeyId: %s
  secretAccessKey: "${%s}"
  secure: false
  pathStyle: path
  requestTimeout: 10s
instances:
  - id: rm-gsrc
    engine: MariaDB
    dsn: "${GSRC}"
    backupPolicy:
      enableBackupLog: true
      logBackupRetentionPeriod: 7
  - id: rm-gdst
    engine: MariaDB
    dsn: "${GDST}"
`, dataDir, s3.endpoint, s3test.Region, s3.bucket, s3.prefix, s3.srv.AccessKey, envTestS3Secret)
	config := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GSRC": src.DSN(""), "GDST": dst.DSN(""), envTestS3Secret: s3.srv.SecretKey}
	p := startServeProcess(t, bin, config, env)
	t.Cleanup(func() {
		if t.Failed() {
			log := p.stderr.String()
			if len(log) > 8000 {
				log = log[len(log)-8000:]
			}
			t.Logf("service log:\n%s", log)
		}
	})
	c := p.clients(t)
	db := src.DB(t, "")
	sqlExec(t, db, "CREATE DATABASE g", "CREATE TABLE g.t (id INT PRIMARY KEY, v VARCHAR(20))", "INSERT INTO g.t VALUES (1, 'before')")
	waitBinlogFiles(t, c, "rm-gsrc", 1)
	id := createBackup(t, c, "rm-gsrc", "Logical", nil)
	waitFinished(t, c, "rm-gsrc", id)
	sqlExec(t, db, "INSERT INTO g.t VALUES (2, 'window 1')")
	time.Sleep(1100 * time.Millisecond)
	beforeGap := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	sqlExec(t, db, "FLUSH BINARY LOGS")
	waitWindowEnd(t, c, "rm-gsrc", beforeGap)

	// rdsbackup down; rows written and their binary logs purged meanwhile.
	p.kill()
	sqlExec(t, db, "INSERT INTO g.t VALUES (3, 'lost')", "FLUSH BINARY LOGS")
	time.Sleep(1100 * time.Millisecond)
	inGap := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	sqlExec(t, db, "INSERT INTO g.t VALUES (4, 'lost too')", "FLUSH BINARY LOGS")
	var current string
	var pos, doDB, ignoreDB any
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&current, &pos, &doDB, &ignoreDB); err != nil {
		t.Fatal(err)
	}
	sqlExec(t, db, "PURGE BINARY LOGS TO '"+current+"'")

	p = startServeProcess(t, bin, config, env)
	c = p.clients(t)
	id2 := createBackup(t, c, "rm-gsrc", "Logical", nil)
	waitFinished(t, c, "rm-gsrc", id2)
	sqlExec(t, db, "INSERT INTO g.t VALUES (5, 'window 2')", "FLUSH BINARY LOGS")
	last := time.Now().UTC().Truncate(time.Second)
	begin, _ := waitWindowEnd(t, c, "rm-gsrc", last)
	if !begin.After(inGap) {
		t.Errorf("the window begins at %s, not after the gap (%s was lost)", begin.Format(pitrLayout), inGap.Format(pitrLayout))
	}

	// A time inside the gap: refused, naming the windows.
	_, err := c.RDS.RecoveryDBInstance(recoveryRequest("rm-gsrc", "rm-gdst", func(r *rds.RecoveryDBInstanceRequest) {
		r.RestoreTime, r.DbNames = inGap.Format(pitrLayout), "g:g_gap"
	}))
	if se := wantServerError(t, err, rdsbackup.EPITRNotCovered, 400); !strings.Contains(se.Message(), begin.Format(pitrLayout)) {
		t.Errorf("refusal does not name the window beginning %s: %s", begin.Format(pitrLayout), se.Message())
	}
	// Before the gap: still reachable from the first set.
	rr, err := c.RDS.RecoveryDBInstance(recoveryRequest("rm-gsrc", "rm-gdst", func(r *rds.RecoveryDBInstanceRequest) {
		r.RestoreTime, r.DbNames = beforeGap.Format(pitrLayout), "g:g_before"
	}))
	if err != nil {
		t.Fatalf("RecoveryDBInstance before the gap: %v", err)
	}
	if j := waitRecovery(t, c, "rm-gdst", rr.OrderId); j.BackupStatus != "Finished" {
		t.Fatalf("restore before the gap: %+v", j)
	}
	var ids string
	if err := dst.DB(t, "").QueryRow("SELECT GROUP_CONCAT(id ORDER BY id) FROM g_before.t").Scan(&ids); err != nil || ids != "1,2" {
		t.Errorf("g restored to before the gap holds ids %q (%v), want 1,2", ids, err)
	}
	// The log files are in the bucket, encrypted.
	var logs int
	for _, k := range s3.keys(t) {
		if !strings.HasPrefix(k, "logs/rm-gsrc/") {
			continue
		}
		logs++
		obj, err := s3.srv.Client().GetObject(t.Context(), s3.bucket, s3.prefix+k, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 8)
		_, err = io.ReadFull(obj, head)
		obj.Close()
		if err != nil || !encrypted.IsEncrypted(head) {
			t.Errorf("log object %s is not encrypted (%v)", k, err)
		}
	}
	if logs == 0 {
		t.Errorf("no log objects under logs/rm-gsrc/ in the bucket: %v", s3.keys(t))
	}
}
