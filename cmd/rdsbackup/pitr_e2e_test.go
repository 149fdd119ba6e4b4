package main

// Point-in-time recovery end to end (docs/pitr.md): log backup turned on
// through the SDK as Terraform does, the binary log of a real MariaDB
// streamed and stored, DescribeBinlogFiles and its links,
// DescribeLocalAvailableRecoveryTime, RecoveryDBInstance to a time and to
// the latest time, its refusals, and `rdsbackup restore --time`.

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

const pitrLayout = "2006-01-02T15:04:05Z"

// pitrFixture is a service with a streamable MariaDB source, a MariaDB
// target and a PostgreSQL instance (another engine, never reached).
type pitrFixture struct {
	src, dst *enginetest.MariaDB
	f        *backupFixture
	s        *testService
	c        *clients
}

func startPITR(t *testing.T) *pitrFixture {
	t.Helper()
	p := &pitrFixture{}
	p.src = enginetest.StartMariaDB(t, enginetest.MariaDBOptions{ServerID: 3, LogBin: true, RootPassword: "src-pw#1", Args: []string{"--binlog-format=ROW"}})
	p.dst = enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "dst-pw#2"})
	p.f = newBackupFixture(t,
		backupInstance{ID: "rm-src", Engine: "MariaDB", DSN: p.src.DSN("")},
		backupInstance{ID: "rm-dst", Engine: "MariaDB", DSN: p.dst.DSN("")},
		backupInstance{ID: "pgm-other", Engine: "PostgreSQL", DSN: "postgres://nobody@127.0.0.1:1/postgres"})
	p.f.YAML += "logs:\n  uploadInterval: 1s\nbackups:\n  schedule: false\n  tickInterval: 1s\n"
	p.s = p.f.start(t)
	p.c = rootClients(t, p.s)
	t.Cleanup(func() {
		if t.Failed() {
			log := p.s.Stderr.String()
			if len(log) > 6000 {
				log = log[len(log)-6000:]
			}
			t.Logf("service log:\n%s", log)
		}
	})
	return p
}

func sqlExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func recoveryWindow(t *testing.T, c *clients, inst string) (string, string) {
	t.Helper()
	req := rds.CreateDescribeLocalAvailableRecoveryTimeRequest()
	req.DBInstanceId = inst
	resp, err := c.RDS.DescribeLocalAvailableRecoveryTime(req)
	if err != nil {
		t.Fatalf("DescribeLocalAvailableRecoveryTime: %v", err)
	}
	checkRequestID(t, resp, resp.RequestId)
	if resp.DBInstanceId != inst {
		t.Errorf("DBInstanceId %q", resp.DBInstanceId)
	}
	return resp.RecoveryBeginTime, resp.RecoveryEndTime
}

// waitWindowEnd waits until the recovery window reaches at least t.
func waitWindowEnd(t *testing.T, c *clients, inst string, at time.Time) (time.Time, time.Time) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, e := recoveryWindow(t, c, inst)
		begin, _ := time.Parse(pitrLayout, b)
		end, err := time.Parse(pitrLayout, e)
		if err == nil && !end.Before(at) {
			return begin, end
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recovery window [%s, %s] does not reach %s", b, e, at.Format(pitrLayout))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func recoveryRequest(src, dst string, setup func(*rds.RecoveryDBInstanceRequest)) *rds.RecoveryDBInstanceRequest {
	req := rds.CreateRecoveryDBInstanceRequest()
	req.DBInstanceId, req.TargetDBInstanceId = src, dst
	if setup != nil {
		setup(req)
	}
	return req
}

// waitRecovery polls the recovery's task until it ends and returns it; it
// checks the target is Restoring or Running meanwhile, Running after.
func waitRecovery(t *testing.T, c *clients, target, orderID string) taskOut {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		// The status first: a task still running after it means the
		// status was read while the restore ran.
		st := instanceStatusOf(t, c, target)
		jobs := describeTasks(t, c, target, func(r *rds.DescribeBackupTasksRequest) { r.BackupJobId = requests.Integer("R" + orderID) })
		if len(jobs) != 1 || jobs[0].TaskAction != "RecoveryDBInstance" {
			t.Fatalf("recovery task R%s: %+v", orderID, jobs)
		}
		if j := jobs[0]; j.BackupStatus == "Finished" || j.BackupStatus == "Failed" {
			if st := instanceStatusOf(t, c, target); st != "Running" {
				t.Errorf("the target is %s after its restore ended", st)
			}
			return j
		}
		if st != "Restoring" {
			t.Errorf("the target is %s during its restore", st)
		}
		if time.Now().After(deadline) {
			t.Fatalf("recovery R%s still running: %+v", orderID, jobs[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func instanceStatusOf(t *testing.T, c *clients, id string) string {
	t.Helper()
	req := rds.CreateDescribeDBInstanceAttributeRequest()
	req.DBInstanceId = id
	resp, err := c.RDS.DescribeDBInstanceAttribute(req)
	if err != nil || len(resp.Items.DBInstanceAttribute) != 1 {
		t.Fatalf("DescribeDBInstanceAttribute %s: %v", id, err)
	}
	return resp.Items.DBInstanceAttribute[0].DBInstanceStatus
}

// rowsOf reads a MariaDB table (id, v binary, s text) as id|hex(v)|s lines.
func rowsOf(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	return rowLines(t, db, table, "SELECT id, COALESCE(HEX(v), 'NULL'), COALESCE(s, 'NULL') FROM "+table+" ORDER BY id")
}

// pgRows is rowsOf for PostgreSQL (bytea v).
func pgRows(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	return rowLines(t, db, table, "SELECT id, COALESCE(upper(encode(v, 'hex')), 'NULL'), COALESCE(s, 'NULL') FROM "+table+" ORDER BY id")
}

func rowLines(t *testing.T, db *sql.DB, table, query string) string {
	t.Helper()
	r, err := db.Query(query)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer r.Close()
	var out []string
	for r.Next() {
		var id int
		var v, s string
		if err := r.Scan(&id, &v, &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d|%s|%s", id, v, s))
	}
	return strings.Join(out, "\n")
}

// TestPointInTimeRecoveryMariaDB is the whole path on MariaDB.
func TestPointInTimeRecoveryMariaDB(t *testing.T) {
	t.Setenv("TZ", "Asia/Tokyo") // the replay must read times as UTC anyway
	p := startPITR(t)
	c := p.c
	src := p.src.DB(t, "")
	sqlExec(t, src, "CREATE DATABASE shop",
		"CREATE TABLE shop.t (id INT PRIMARY KEY, v VARBINARY(32) NULL, s VARCHAR(32) CHARACTER SET utf8mb4 NULL)",
		"INSERT INTO shop.t VALUES (1, 'base', 'base')")

	// Terraform: the data policy, then the log policy, empty strings for
	// what it leaves alone.
	mustModifyPolicy(t, c, "rm-src", func(r *rds.ModifyBackupPolicyRequest) {
		r.BackupPolicyMode, r.PreferredBackupTime, r.PreferredBackupPeriod, r.BackupRetentionPeriod = "DataBackupPolicy", "", "", "14"
		r.BackupLog, r.LogBackupRetentionPeriod = "", ""
	})
	resp := mustModifyPolicy(t, c, "rm-src", func(r *rds.ModifyBackupPolicyRequest) {
		r.BackupPolicyMode, r.EnableBackupLog, r.LogBackupRetentionPeriod = "LogBackupPolicy", "True", "10"
		r.LocalLogRetentionHours, r.LocalLogRetentionSpace, r.HighSpaceUsageProtection = "", "", ""
	})
	if resp.EnableBackupLog != "1" {
		t.Errorf("ModifyBackupPolicy answered EnableBackupLog %q", resp.EnableBackupLog)
	}
	pol := describePolicy(t, c, "rm-src")
	if pol.EnableBackupLog != "1" || pol.BackupLog != "Enable" || pol.LogBackupRetentionPeriod != 10 || pol.BackupRetentionPeriod != 14 {
		t.Errorf("policy %+v", pol)
	}
	// Longer than the data retention: refused.
	_, err := modifyPolicy(c, "rm-src", func(r *rds.ModifyBackupPolicyRequest) {
		r.BackupPolicyMode, r.LogBackupRetentionPeriod = "LogBackupPolicy", "30"
	})
	wantServerError(t, err, rdsbackup.EINVALID, 400)
	// The target has no binary log: log backup is refused, naming log_bin.
	_, err = modifyPolicy(c, "rm-dst", func(r *rds.ModifyBackupPolicyRequest) { r.BackupLog = "Enable" })
	if se := wantServerError(t, err, rdsbackup.ELogBackupDenied, 403); !strings.Contains(se.Message(), "log_bin") {
		t.Errorf("refusal on a server without binary log: %s", se.Message())
	}

	// The stream runs once a first file (complete, or the one being
	// written) is stored.
	sqlExec(t, src, "INSERT INTO shop.t VALUES (100, 'warm', 'up')", "FLUSH BINARY LOGS")
	waitBinlogFiles(t, c, "rm-src", 1)
	id := createBackup(t, c, "rm-src", "Logical", nil)
	waitFinished(t, c, "rm-src", id)

	sqlExec(t, src, "INSERT INTO shop.t VALUES (2, NULL, 'ünïcødé ✓')", "INSERT INTO shop.t VALUES (3, X'00FF00', NULL)",
		"UPDATE shop.t SET s = 'changed' WHERE id = 1", "FLUSH BINARY LOGS", "INSERT INTO shop.t VALUES (4, 't2', 't2')")
	time.Sleep(1100 * time.Millisecond)
	target := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	sqlExec(t, src, "INSERT INTO shop.t VALUES (5, 't3', 't3')", "DELETE FROM shop.t WHERE id = 2")
	atTarget := "1|62617365|changed\n2|NULL|ünïcødé ✓\n3|00FF00|NULL\n4|7432|t2\n100|7761726D|up"

	// The file being written reaches the store within the upload interval.
	begin, end := waitWindowEnd(t, c, "rm-src", target.Add(time.Second))
	if begin.After(target) {
		t.Fatalf("the window begins at %v, after %v", begin, target)
	}
	files := checkBinlogFiles(t, c, mariadbLog, "rm-src", begin.Add(-time.Hour), end.Add(time.Hour))
	if len(files) < 2 {
		t.Errorf("%d binlog files", len(files))
	}

	// Refusals, before anything is written.
	bad := []struct {
		name   string
		setup  func(*rds.RecoveryDBInstanceRequest)
		code   string
		status int
	}{
		{"RestoreTime format", func(r *rds.RecoveryDBInstanceRequest) { r.RestoreTime = "2026-01-01 00:00:00" }, rdsbackup.EInvalidRestoreTime, 400},
		{"before the window", func(r *rds.RecoveryDBInstanceRequest) { r.RestoreTime = "2001-01-01T00:00:00Z" }, rdsbackup.EPITRNotCovered, 400},
		{"after the window", func(r *rds.RecoveryDBInstanceRequest) {
			r.RestoreTime = time.Now().Add(time.Hour).UTC().Format(pitrLayout)
		}, rdsbackup.EPITRNotCovered, 400},
		{"both", func(r *rds.RecoveryDBInstanceRequest) { r.RestoreTime, r.BackupId = target.Format(pitrLayout), id }, rdsbackup.EInvalidCombination, 400},
		{"neither", func(r *rds.RecoveryDBInstanceRequest) {}, rdsbackup.EInvalidCombination, 400},
		{"unknown set", func(r *rds.RecoveryDBInstanceRequest) { r.BackupId = "999999" }, rdsbackup.EBackupNotFound, 404},
		{"unknown database", func(r *rds.RecoveryDBInstanceRequest) {
			r.RestoreTime, r.DbNames = target.Format(pitrLayout), `{"nosuch":"x"}`
		}, rdsbackup.EDBNameNotFound, 404},
		{"bad DbNames", func(r *rds.RecoveryDBInstanceRequest) {
			r.RestoreTime, r.DbNames = target.Format(pitrLayout), `{"shop":`
		}, rdsbackup.EINVALID, 400},
	}
	for _, b := range bad {
		_, err := c.RDS.RecoveryDBInstance(recoveryRequest("rm-src", "rm-dst", b.setup))
		t.Run(b.name, func(t *testing.T) { wantServerError(t, err, b.code, b.status) })
	}
	_, err = c.RDS.RecoveryDBInstance(recoveryRequest("rm-src", "pgm-other", func(r *rds.RecoveryDBInstanceRequest) { r.BackupId = id }))
	wantServerError(t, err, rdsbackup.EEngineMismatch, 400)
	_, err = c.RDS.RecoveryDBInstance(recoveryRequest("rm-src", "rm-src", func(r *rds.RecoveryDBInstanceRequest) { r.BackupId = id }))
	wantServerError(t, err, rdsbackup.EINVALID, 400)
	_, err = c.RDS.RecoveryDBInstance(recoveryRequest("rm-src", "rm-nosuch", func(r *rds.RecoveryDBInstanceRequest) { r.BackupId = id }))
	wantServerError(t, err, rdsbackup.EInstanceIdNotFound, 400)
	dst := p.dst.DB(t, "")
	sqlExec(t, dst, "CREATE DATABASE taken")
	_, err = c.RDS.RecoveryDBInstance(recoveryRequest("rm-src", "rm-dst", func(r *rds.RecoveryDBInstanceRequest) {
		r.RestoreTime, r.DbNames = target.Format(pitrLayout), `{"shop":"taken"}`
	}))
	wantServerError(t, err, rdsbackup.EDatabaseExists, 400)
	_, err = c.RDS.DescribeBinlogFiles(func() *rds.DescribeBinlogFilesRequest {
		r := rds.CreateDescribeBinlogFilesRequest()
		r.DBInstanceId, r.StartTime, r.EndTime = "rm-src", "2026-01-01T00:00Z", "2026-01-02T00:00:00Z"
		return r
	}())
	wantServerError(t, err, rdsbackup.EInvalidStartTime, 400)

	// To T, under a new name, through the SDK.
	rr, err := c.RDS.RecoveryDBInstance(recoveryRequest("rm-src", "rm-dst", func(r *rds.RecoveryDBInstanceRequest) {
		r.RestoreTime, r.DbNames = target.Format(pitrLayout), `{"shop":"shop_at_t"}`
	}))
	if err != nil {
		t.Fatalf("RecoveryDBInstance: %v", err)
	}
	if rr.DBInstanceId != "rm-dst" || rr.OrderId == "" {
		t.Errorf("RecoveryDBInstance answered %+v", rr)
	}
	if j := waitRecovery(t, c, "rm-dst", rr.OrderId); j.BackupStatus != "Finished" || j.Process != "100" || j.BackupId != id {
		t.Fatalf("recovery: %+v", j)
	}
	if got := rowsOf(t, dst, "shop_at_t.t"); got != atTarget {
		t.Errorf("shop at %s:\n%s\nwant\n%s", target.Format(pitrLayout), got, atTarget)
	}

	// The same from the CLI, beside the running service.
	env := map[string]string{envTargetDSN: p.dst.DSN("")}
	for k, v := range p.f.Env {
		env[k] = v
	}
	getenv := testEnv(env)
	var stderr syncBuffer
	m := &Main{Stdout: io.Discard, Stderr: &stderr, Getenv: getenv}
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("dataDir: %s\naccountId: \"1234567890\"\n%s", p.f.DataDir, p.f.YAML)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := m.Run(t.Context(), []string{"restore", "--work-dir", t.TempDir(), "--time", target.Format(pitrLayout),
		"--instance", "rm-src", "--config", cfgFile, "--database", "shop", "--as", "shop_cli"}); code != exitOK {
		t.Fatalf("restore --time: exit %d:\n%s", code, stderr.String())
	}
	if got := rowsOf(t, dst, "shop_cli.t"); got != atTarget {
		t.Errorf("restore --time: shop_cli at %s:\n%s\nwant\n%s", target.Format(pitrLayout), got, atTarget)
	}
	// A Logical base restores into a server only.
	stderr = syncBuffer{}
	m = &Main{Stdout: io.Discard, Stderr: &stderr, Getenv: getenv}
	if code := m.Run(t.Context(), []string{"restore", "--work-dir", t.TempDir(), "--time", target.Format(pitrLayout),
		"--instance", "rm-src", "--config", cfgFile, "--data-dir", filepath.Join(t.TempDir(), "d")}); code == exitOK ||
		!strings.Contains(stderr.String(), "only a Physical set restores into a data directory") {
		t.Errorf("restore --time --data-dir from a Logical set: exit %d:\n%s", code, stderr.String())
	}
	stderr = syncBuffer{}
	m = &Main{Stdout: io.Discard, Stderr: &stderr, Getenv: getenv}
	if code := m.Run(t.Context(), []string{"restore", "--time", "2001-01-01T00:00:00Z", "--instance", "rm-src", "--config", cfgFile,
		"--database", "shop", "--as", "shop_never"}); code == exitOK || !strings.Contains(stderr.String(), "can be restored to a time from") {
		t.Errorf("restore --time outside the window: exit %d:\n%s", code, stderr.String())
	}

	// The latest time, after a burst: every committed row.
	for i := 0; i < 200; i++ {
		sqlExec(t, src, fmt.Sprintf("INSERT INTO shop.t VALUES (%d, NULL, 'burst')", 1000+i))
	}
	last := time.Now().UTC().Truncate(time.Second)
	_, end = waitWindowEnd(t, c, "rm-src", last)
	rr, err = c.RDS.RecoveryDBInstance(recoveryRequest("rm-src", "rm-dst", func(r *rds.RecoveryDBInstanceRequest) {
		r.RestoreTime, r.DbNames = end.Format(pitrLayout), "shop:shop_latest"
	}))
	if err != nil {
		t.Fatalf("RecoveryDBInstance to the latest time: %v", err)
	}
	if j := waitRecovery(t, c, "rm-dst", rr.OrderId); j.BackupStatus != "Finished" {
		t.Fatalf("recovery to the latest time: %+v", j)
	}
	if got, want := rowsOf(t, dst, "shop_latest.t"), rowsOf(t, src, "shop.t"); got != want {
		t.Errorf("latest restore (to %s, burst until %s) differs from the source:\n%s\nwant\n%s", end, last, got, want)
		for _, f := range checkBinlogFiles(t, c, mariadbLog, "rm-src", begin.Add(-time.Hour), end.Add(time.Hour)) {
			t.Logf("%+v", f)
		}
	}
}

// waitBinlogFiles waits until DescribeBinlogFiles lists at least n files.
func waitBinlogFiles(t *testing.T, c *clients, inst string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		req := rds.CreateDescribeBinlogFilesRequest()
		req.DBInstanceId = inst
		req.StartTime, req.EndTime = time.Now().Add(-24*time.Hour).UTC().Format(pitrLayout), time.Now().Add(time.Hour).UTC().Format(pitrLayout)
		resp, err := c.RDS.DescribeBinlogFiles(req)
		if err != nil {
			t.Fatalf("DescribeBinlogFiles: %v", err)
		}
		done := len(resp.Items.BinLogFile)
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("DescribeBinlogFiles: %d files after a minute, want %d", done, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logFormat says whether a log file's name and decompressed content are
// what its engine writes.
type logFormat func(name string, raw []byte) bool

var (
	walSegmentName = regexp.MustCompile(`^[0-9A-F]{24}$`)
	walHistoryName = regexp.MustCompile(`^[0-9A-F]{8}\.history$`)
)

// mariadbLog: a binary log, named after the server's log_basename.
func mariadbLog(name string, raw []byte) bool {
	return strings.HasPrefix(name, "mariadb-bin.") && bytes.HasPrefix(raw, []byte("\xfebin"))
}

// postgresWAL: a WAL segment (its first page header's magic word, 0xD1xx
// little-endian in every supported version; a segment still being written
// is shorter than the segment size) or a timeline history file.
func postgresWAL(name string, raw []byte) bool {
	if walHistoryName.MatchString(name) {
		return true
	}
	return walSegmentName.MatchString(name) && len(raw) >= 2 && raw[1] == 0xD1
}

// checkBinlogFiles lists the files of [from, to] and checks each one's
// fields and download: size, CRC64, a zstd log of the engine's format inside.
func checkBinlogFiles(t *testing.T, c *clients, format logFormat, inst string, from, to time.Time) []rds.BinLogFile {
	t.Helper()
	req := rds.CreateDescribeBinlogFilesRequest()
	req.DBInstanceId = inst
	req.StartTime, req.EndTime = from.UTC().Format(pitrLayout), to.UTC().Format(pitrLayout)
	req.PageSize = requests.NewInteger(30)
	resp, err := c.RDS.DescribeBinlogFiles(req)
	if err != nil {
		t.Fatalf("DescribeBinlogFiles: %v", err)
	}
	checkRequestID(t, resp, resp.RequestId)
	if resp.TotalRecordCount != len(resp.Items.BinLogFile) || resp.PageRecordCount != len(resp.Items.BinLogFile) || resp.PageNumber != 1 {
		t.Errorf("counts: total %d, page %d, number %d, items %d", resp.TotalRecordCount, resp.PageRecordCount, resp.PageNumber, len(resp.Items.BinLogFile))
	}
	var total int64
	for _, f := range resp.Items.BinLogFile {
		total += f.FileSize
		b, e1 := time.Parse(pitrLayout, f.LogBeginTime)
		e, e2 := time.Parse(pitrLayout, f.LogEndTime)
		if e1 != nil || e2 != nil || e.Before(b) || f.HostInstanceID == "" {
			t.Errorf("file %+v", f)
		}
		if f.RemoteStatus != "Completed" && f.RemoteStatus != "Uploading" {
			t.Errorf("file %s: RemoteStatus %q", f.LogFileName, f.RemoteStatus)
		}
		if _, err := time.Parse(pitrLayout, f.LinkExpiredTime); err != nil || f.IntranetDownloadLink == "" {
			t.Errorf("file %s: links %+v", f.LogFileName, f)
		}
		body, hdr := downloadLink(t, f.DownloadLink)
		if int64(len(body)) != f.FileSize || crcOf(body) != f.Checksum || hdr.Get("x-oss-hash-crc64ecma") != f.Checksum {
			t.Errorf("file %s: downloaded %d bytes, CRC64 %s; listed %d, %s", f.LogFileName, len(body), crcOf(body), f.FileSize, f.Checksum)
		}
		dec, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(dec)
		dec.Close()
		if err != nil || !format(f.LogFileName, raw) {
			t.Errorf("file %s (%d bytes): not a zstd log of the engine's format: %v", f.LogFileName, len(raw), err)
		}
	}
	if resp.TotalFileSize != total {
		t.Errorf("TotalFileSize %d, files sum to %d", resp.TotalFileSize, total)
	}
	return resp.Items.BinLogFile
}

// TestRecoveryDBInstanceRAM: RecoveryDBInstance needs the action on the
// source and on the target; DescribeBinlogFiles and
// DescribeLocalAvailableRecoveryTime are checked on their instance.
func TestRecoveryDBInstanceRAM(t *testing.T) {
	t.Parallel()
	s := startService(t, t.TempDir(), instancesYAML("rm-ra", "rm-rb"), testEnv(nil))
	root := rootClients(t, s)
	const arn = "acs:rds:*:1234567890:dbinstance/"
	createPolicy(t, root, "source-only", `{"Version":"1","Statement":[{"Effect":"Allow","Action":["rds:RecoveryDBInstance","rds:DescribeBinlogFiles"],"Resource":"`+arn+`rm-ra"}]}`)
	createPolicy(t, root, "both", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"rds:RecoveryDBInstance","Resource":["`+arn+`rm-ra","`+arn+`rm-rb"]}]}`)
	ak1, sk1 := createUserWithKey(t, root, "src-only")
	attachPolicy(t, root, "source-only", "Custom", "src-only")
	ak2, sk2 := createUserWithKey(t, root, "both")
	attachPolicy(t, root, "both", "Custom", "both")
	one, two := newClients(t, s.Addr, ak1, sk1), newClients(t, s.Addr, ak2, sk2)

	req := func() *rds.RecoveryDBInstanceRequest {
		return recoveryRequest("rm-ra", "rm-rb", func(r *rds.RecoveryDBInstanceRequest) { r.BackupId = "424242" })
	}
	_, err := one.RDS.RecoveryDBInstance(req())
	wantServerError(t, err, rdsbackup.EForbiddenRAM, 403)
	// Allowed on both: on to the handler, which finds no such set.
	_, err = two.RDS.RecoveryDBInstance(req())
	wantServerError(t, err, rdsbackup.EBackupNotFound, 404)

	bl := rds.CreateDescribeBinlogFilesRequest()
	bl.DBInstanceId, bl.StartTime, bl.EndTime = "rm-ra", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
	resp, err := one.RDS.DescribeBinlogFiles(bl)
	if err != nil || resp.TotalRecordCount != 0 || len(resp.Items.BinLogFile) != 0 {
		t.Errorf("DescribeBinlogFiles without logs: %+v, %v", resp, err)
	}
	bl.DBInstanceId = "rm-rb"
	_, err = one.RDS.DescribeBinlogFiles(bl)
	wantServerError(t, err, rdsbackup.EForbiddenRAM, 403)
	bl.DBInstanceId, bl.PageSize = "rm-ra", requests.NewInteger(20)
	_, err = one.RDS.DescribeBinlogFiles(bl)
	wantServerError(t, err, rdsbackup.EInvalidPageSize, 403)
	bl.PageSize, bl.EndTime = requests.NewInteger(30), "2025-01-01T00:00:00Z"
	_, err = one.RDS.DescribeBinlogFiles(bl)
	wantServerError(t, err, rdsbackup.EInvalidCombination, 400)
	bl.EndTime = "2026-01-02"
	_, err = one.RDS.DescribeBinlogFiles(bl)
	wantServerError(t, err, rdsbackup.EInvalidEndTime, 400)

	// No window without log backup: empty times, and a restore to a time
	// is refused naming that.
	if b, e := recoveryWindow(t, root, "rm-ra"); b != "" || e != "" {
		t.Errorf("window without log backup: %q %q", b, e)
	}
	_, err = root.RDS.RecoveryDBInstance(recoveryRequest("rm-ra", "rm-rb", func(r *rds.RecoveryDBInstanceRequest) { r.RestoreTime = "2026-01-01T00:00:00Z" }))
	if se := wantServerError(t, err, rdsbackup.EPITRNotCovered, 400); !strings.Contains(se.Message(), "no recovery window") {
		t.Errorf("message: %s", se.Message())
	}
}

// TestLogStreamServiceKilled: rdsbackup, run as a child process with log
// backup on from its config, is SIGKILLed while rows are being written and
// started again: the stream resumes without a missing or a duplicated
// event, which a restore to the latest time proves (a duplicated insert
// would fail the replay on its primary key, a missing one the comparison).
func TestLogStreamServiceKilled(t *testing.T) {
	t.Parallel()
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{ServerID: 4, LogBin: true, RootPassword: "ksrc-pw", Args: []string{"--binlog-format=ROW"}})
	dst := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "kdst-pw"})
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
instances:
  - id: rm-ksrc
    engine: MariaDB
    dsn: "${KSRC}"
    backupPolicy:
      enableBackupLog: true
      logBackupRetentionPeriod: 7
  - id: rm-kdst
    engine: MariaDB
    dsn: "${KDST}"
`, dataDir)
	config := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KSRC": src.DSN(""), "KDST": dst.DSN("")}
	p := startServeProcess(t, bin, config, env)
	c := p.clients(t)
	if pol := describePolicy(t, c, "rm-ksrc"); pol.EnableBackupLog != "1" {
		t.Fatalf("log backup from the config: %+v", pol)
	}
	db := src.DB(t, "")
	sqlExec(t, db, "CREATE DATABASE k", "CREATE TABLE k.t (id INT PRIMARY KEY, v VARCHAR(20))", "INSERT INTO k.t VALUES (0, 'base')")
	waitBinlogFiles(t, c, "rm-ksrc", 1)
	id := createBackup(t, c, "rm-ksrc", "Logical", nil)
	waitFinished(t, c, "rm-ksrc", id)

	// Rows keep coming, with rotations, across the kill and the restart.
	stop := make(chan struct{})
	written := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				written <- n
				return
			default:
			}
			n++
			if _, err := db.Exec("INSERT INTO k.t VALUES (?, 'row')", n); err != nil {
				t.Errorf("insert %d: %v", n, err)
				written <- n - 1
				return
			}
			if n%40 == 0 {
				db.Exec("FLUSH BINARY LOGS")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	p.kill()
	time.Sleep(700 * time.Millisecond)
	p = startServeProcess(t, bin, config, env)
	c = p.clients(t)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	n := <-written
	sqlExec(t, db, "FLUSH BINARY LOGS")
	last := time.Now().UTC().Truncate(time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range checkBinlogFiles(t, c, mariadbLog, "rm-ksrc", time.Now().Add(-time.Hour), time.Now().Add(time.Hour)) {
				t.Logf("%s %s %s-%s", f.LogFileName, f.RemoteStatus, f.LogBeginTime, f.LogEndTime)
			}
			log := p.stderr.String()
			if len(log) > 8000 {
				log = log[len(log)-8000:]
			}
			t.Logf("service log:\n%s", log)
		}
	})
	_, end := waitWindowEnd(t, c, "rm-ksrc", last)

	rr, err := c.RDS.RecoveryDBInstance(recoveryRequest("rm-ksrc", "rm-kdst", func(r *rds.RecoveryDBInstanceRequest) {
		r.RestoreTime, r.DbNames = end.Format(pitrLayout), "k"
	}))
	if err != nil {
		t.Fatalf("RecoveryDBInstance: %v", err)
	}
	if j := waitRecovery(t, c, "rm-kdst", rr.OrderId); j.BackupStatus != "Finished" {
		t.Fatalf("restore after the kill: %+v", j)
	}
	var count, maxID int
	if err := dst.DB(t, "").QueryRow("SELECT COUNT(*), MAX(id) FROM k.t").Scan(&count, &maxID); err != nil {
		t.Fatal(err)
	}
	if count != n+1 || maxID != n {
		t.Errorf("restored %d rows up to id %d; %d were written (ids 0-%d)", count, maxID, n+1, n)
	}
	t.Logf("%d rows written across the kill", n)
}

// TestPointInTimeRecoveryMariaDBPhysical: a Physical set (mariadb-backup)
// records its binary log position in the manifest and the catalog, and is
// the base of a restore to a time between two writes: through
// RecoveryDBInstance (the SDK) into another instance under a new name, and
// through `rdsbackup restore --time --data-dir` into a data directory a
// server then runs on. Both hold the rows of t1 and t2, not t3's.
func TestPointInTimeRecoveryMariaDBPhysical(t *testing.T) {
	t.Setenv("TZ", "Asia/Tokyo") // the replay must read times as UTC anyway
	p := startPITR(t)
	c := p.c
	src := p.src.DB(t, "")
	sqlExec(t, src, "CREATE DATABASE shop",
		"CREATE TABLE shop.t (id INT PRIMARY KEY, v VARBINARY(32) NULL, s VARCHAR(32) CHARACTER SET utf8mb4 NULL)",
		"INSERT INTO shop.t VALUES (1, 'base', 'base')")
	mustModifyPolicy(t, c, "rm-src", func(r *rds.ModifyBackupPolicyRequest) {
		r.BackupPolicyMode, r.EnableBackupLog = "LogBackupPolicy", "True"
	})
	sqlExec(t, src, "INSERT INTO shop.t VALUES (100, 'warm', 'up')", "FLUSH BINARY LOGS")
	waitBinlogFiles(t, c, "rm-src", 1)
	id := createBackup(t, c, "rm-src", "Physical", nil)
	waitFinished(t, c, "rm-src", id)

	// The manifest holds the set's position.
	buf, err := os.ReadFile(filepath.Join(p.f.DataDir, "storage", "backups", "rm-src", id, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Method       string                           `json:"method"`
		LogPositions map[string]rdsbackup.LogPosition `json:"logPositions"`
	}
	if err := json.Unmarshal(buf, &m); err != nil {
		t.Fatal(err)
	}
	var file string
	var pos int64
	var doDB, ignoreDB string
	if err := src.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		t.Fatal(err)
	}
	if got := m.LogPositions["instance"]; m.Method != "Physical" || got.File != file || got.Offset != pos || got.GTID == "" {
		t.Fatalf("manifest: method %q, positions %+v; the server is at %s:%d", m.Method, m.LogPositions, file, pos)
	}

	sqlExec(t, src, "INSERT INTO shop.t VALUES (2, NULL, 'ünïcødé ✓')", "FLUSH BINARY LOGS")
	time.Sleep(1100 * time.Millisecond)
	sqlExec(t, src, "INSERT INTO shop.t VALUES (3, X'00FF00', NULL)", "UPDATE shop.t SET s = 'changed' WHERE id = 1")
	time.Sleep(1100 * time.Millisecond)
	target := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	sqlExec(t, src, "INSERT INTO shop.t VALUES (4, 't3', 't3')")
	atTarget := "1|62617365|changed\n2|NULL|ünïcødé ✓\n3|00FF00|NULL\n100|7761726D|up"

	// The window begins at the physical set: no other set exists.
	begin, _ := waitWindowEnd(t, c, "rm-src", target.Add(time.Second))
	if begin.After(target) {
		t.Fatalf("the window begins at %v, after %v", begin, target)
	}

	// Through the SDK, into the other instance.
	rr, err := c.RDS.RecoveryDBInstance(recoveryRequest("rm-src", "rm-dst", func(r *rds.RecoveryDBInstanceRequest) {
		r.RestoreTime, r.DbNames = target.Format(pitrLayout), `{"shop":"shop_phys"}`
	}))
	if err != nil {
		t.Fatalf("RecoveryDBInstance: %v", err)
	}
	if j := waitRecovery(t, c, "rm-dst", rr.OrderId); j.BackupStatus != "Finished" || j.BackupId != id {
		t.Fatalf("recovery from the physical set %s: %+v", id, j)
	}
	if got := rowsOf(t, p.dst.DB(t, ""), "shop_phys.t"); got != atTarget {
		t.Errorf("shop_phys at %s:\n%s\nwant\n%s", target.Format(pitrLayout), got, atTarget)
	}

	// Through the CLI, into a data directory.
	getenv := testEnv(p.f.Env)
	var stderr syncBuffer
	cli := &Main{Stdout: io.Discard, Stderr: &stderr, Getenv: getenv}
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("dataDir: %s\naccountId: \"1234567890\"\n%s", p.f.DataDir, p.f.YAML)), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if code := cli.Run(t.Context(), []string{"restore", "--work-dir", t.TempDir(), "--time", target.Format(pitrLayout),
		"--instance", "rm-src", "--config", cfgFile, "--data-dir", dir}); code != exitOK {
		t.Fatalf("restore --time --data-dir: exit %d:\n%s", code, stderr.String())
	}
	stderr = syncBuffer{}
	cli = &Main{Stdout: io.Discard, Stderr: &stderr, Getenv: getenv}
	if code := cli.Run(t.Context(), []string{"restore", "--work-dir", t.TempDir(), "--time", target.Format(pitrLayout),
		"--instance", "rm-src", "--config", cfgFile, "--data-dir", filepath.Join(t.TempDir(), "one"), "--database", "shop"}); code == exitOK ||
		!strings.Contains(stderr.String(), "restores the whole instance") {
		t.Errorf("restore --time --data-dir --database: exit %d:\n%s", code, stderr.String())
	}
	port := startMariaDBOn(t, dir, "src-pw#1")
	if got := rowsOf(t, openMariaDB(t, port, "src-pw#1", ""), "shop.t"); got != atTarget {
		t.Errorf("restore --time --data-dir: shop at %s:\n%s\nwant\n%s", target.Format(pitrLayout), got, atTarget)
	}
}
