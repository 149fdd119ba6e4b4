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

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

func TestPointInTimeRecoveryPostgres(t *testing.T) {
	t.Setenv("TZ", "Asia/Tokyo")
	src := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: "src pw:@/%"})
	dst := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: "dst pw"})
	minimal := enginetest.StartPostgres(t, enginetest.PostgresOptions{Settings: map[string]string{"wal_level": "minimal", "max_wal_senders": "0"}})
	f := newBackupFixture(t,
		backupInstance{ID: "pg-src", Engine: "PostgreSQL", DSN: src.URL("postgres")},
		backupInstance{ID: "pg-dst", Engine: "PostgreSQL", DSN: dst.URL("postgres")},
		backupInstance{ID: "pg-min", Engine: "PostgreSQL", DSN: minimal.URL("postgres")})
	f.YAML += "logs:\n  uploadInterval: 1s\nbackups:\n  schedule: false\n  tickInterval: 1s\n"
	s := f.start(t)
	c := rootClients(t, s)
	t.Cleanup(func() {
		if t.Failed() {
			log := s.Stderr.String()
			if len(log) > 8000 {
				log = log[len(log)-8000:]
			}
			t.Logf("service log:\n%s", log)
		}
	})
	sdb := src.DB(t, "postgres")
	sqlExec(t, sdb, "CREATE DATABASE shop")
	shop := src.DB(t, "shop")
	sqlExec(t, shop, "CREATE TABLE t (id int PRIMARY KEY, v bytea, s text)", "INSERT INTO t VALUES (1, 'base', 'base')")

	_, err := modifyPolicy(c, "pg-min", func(r *rds.ModifyBackupPolicyRequest) { r.BackupLog = "Enable" })
	if se := wantServerError(t, err, rdsbackup.ELogBackupDenied, 403); !strings.Contains(se.Message(), "wal_level") {
		t.Errorf("refusal: %s", se.Message())
	}
	mustModifyPolicy(t, c, "pg-src", func(r *rds.ModifyBackupPolicyRequest) {
		r.BackupPolicyMode, r.EnableBackupLog, r.LogBackupRetentionPeriod = "LogBackupPolicy", "True", "7"
	})
	sqlExec(t, shop, "INSERT INTO t VALUES (100, 'warm', 'up')")
	sqlExec(t, sdb, "SELECT pg_switch_wal()")
	waitBinlogFiles(t, c, "pg-src", 1)
	id := createBackup(t, c, "pg-src", "Physical", nil)
	waitFinished(t, c, "pg-src", id)

	sqlExec(t, shop, "INSERT INTO t VALUES (2, NULL, 'ünïcødé ✓')", "INSERT INTO t VALUES (3, '\\x00ff00', NULL)",
		"UPDATE t SET s = 'changed' WHERE id = 1")
	sqlExec(t, sdb, "SELECT pg_switch_wal()")
	sqlExec(t, shop, "INSERT INTO t VALUES (4, 't2', 't2')")
	time.Sleep(1100 * time.Millisecond)
	target := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	sqlExec(t, shop, "INSERT INTO t VALUES (5, 't3', 't3')", "DELETE FROM t WHERE id = 2")
	atTarget := "1|62617365|changed\n2|NULL|ünïcødé ✓\n3|00FF00|NULL\n4|7432|t2\n100|7761726D|up"

	begin, end := waitWindowEnd(t, c, "pg-src", target.Add(time.Second))
	if begin.After(target) {
		t.Fatalf("the window begins at %v, after %v", begin, target)
	}
	checkBinlogFiles(t, c, postgresWAL, "pg-src", begin.Add(-time.Hour), end.Add(time.Hour))

	rr, err := c.RDS.RecoveryDBInstance(recoveryRequest("pg-src", "pg-dst", func(r *rds.RecoveryDBInstanceRequest) {
		r.RestoreTime, r.DbNames = target.Format(pitrLayout), `{"shop":"shop_at_t"}`
	}))
	if err != nil {
		t.Fatalf("RecoveryDBInstance: %v", err)
	}
	if j := waitRecovery(t, c, "pg-dst", rr.OrderId); j.BackupStatus != "Finished" {
		t.Fatalf("recovery: %+v", j)
	}
	if got := pgRows(t, dst.DB(t, "shop_at_t"), "t"); got != atTarget {
		t.Errorf("shop at %s:\n%s\nwant\n%s", target.Format(pitrLayout), got, atTarget)
	}

	// The same from the CLI, into an empty data directory, beside the
	// running service.
	var stderr syncBuffer
	m := &Main{Stdout: io.Discard, Stderr: &stderr, Getenv: testEnv(f.Env)}
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("dataDir: %s\naccountId: \"1234567890\"\n%s", f.DataDir, f.YAML)), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := postgresDataDir(t)
	if code := m.Run(t.Context(), []string{"restore", "--work-dir", t.TempDir(), "--time", target.Format(pitrLayout),
		"--instance", "pg-src", "--config", cfgFile, "--data-dir", dataDir}); code != exitOK {
		t.Fatalf("restore --time: exit %d:\n%s", code, stderr.String())
	}
	u := startPostgresOn(t, src, dataDir, "src pw:@/%")
	if got := pgRows(t, openPostgres(t, u, "shop"), "t"); got != atTarget {
		t.Errorf("restore --time: shop at %s:\n%s\nwant\n%s", target.Format(pitrLayout), got, atTarget)
	}

	for i := 0; i < 200; i++ {
		sqlExec(t, shop, fmt.Sprintf("INSERT INTO t VALUES (%d, NULL, 'burst')", 1000+i))
	}
	last := time.Now().UTC().Truncate(time.Second)
	_, end = waitWindowEnd(t, c, "pg-src", last)
	rr, err = c.RDS.RecoveryDBInstance(recoveryRequest("pg-src", "pg-dst", func(r *rds.RecoveryDBInstanceRequest) {
		r.RestoreTime, r.DbNames = end.Format(pitrLayout), `{"shop":"shop_latest"}`
	}))
	if err != nil {
		t.Fatalf("RecoveryDBInstance to the latest time: %v", err)
	}
	if j := waitRecovery(t, c, "pg-dst", rr.OrderId); j.BackupStatus != "Finished" {
		t.Fatalf("recovery to the latest time: %+v", j)
	}
	if got, want := pgRows(t, dst.DB(t, "shop_latest"), "t"), pgRows(t, shop, "t"); got != want {
		t.Errorf("latest restore (to %s) differs from the source:\n%s\nwant\n%s", end, got, want)
	}

	// Log backup off: the slot goes.
	mustModifyPolicy(t, c, "pg-src", func(r *rds.ModifyBackupPolicyRequest) {
		r.BackupPolicyMode, r.EnableBackupLog = "LogBackupPolicy", "False"
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		sdb.QueryRow("SELECT count(*) FROM pg_replication_slots").Scan(&n)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d slots left after log backup was turned off", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
