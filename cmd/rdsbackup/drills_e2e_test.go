package main

// Restore drills end to end (docs/drills.md): `rdsbackup verify` on good
// sets of each engine and method passes and records its time; on a set
// whose dump is broken but whose checksums were recomputed (a bug in the
// backup pipeline) it fails, and DescribeBackups (official SDK) shows
// IsAvail 0 and the reason.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/engine/localserver"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
)

// drillsSection adds a drills section to the fixture and returns the
// drills directory, made where a PostgreSQL server run as the postgres user
// can reach it (the test may run as root).
func drillsSection(t *testing.T, f *backupFixture) string {
	t.Helper()
	base, err := os.MkdirTemp(localserver.TempDir(), "drills-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	f.YAML += fmt.Sprintf("drills:\n  dir: %s\n  timeout: 5m\n", base)
	return base
}

// runVerify runs `rdsbackup verify` in-process and returns its exit code
// and stdout (the checks) and stderr.
func runVerify(t *testing.T, f *backupFixture, config, id string) (int, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(f.Env)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code := m.Run(ctx, []string{"verify", "--backup-id", id, "--config", config})
	return code, stdout.String(), stderr.String()
}

// wantPassed checks a passed drill's output and its record.
func wantPassed(t *testing.T, c *clients, f *backupFixture, config, inst, id string, checks ...string) {
	t.Helper()
	before := time.Now().UTC().Truncate(time.Second)
	code, out, errOut := runVerify(t, f, config, id)
	if code != exitOK {
		t.Fatalf("verify %s: exit %d\n%s\n%s", id, code, out, errOut)
	}
	t.Logf("verify %s:\n%s", id, out)
	for _, ch := range checks {
		if !regexp.MustCompile(`(?m)^  ` + ch + ` +ok `).MatchString(out) {
			t.Errorf("verify %s: no passed %s check in:\n%s", id, ch, out)
		}
	}
	if !strings.Contains(out, "drill passed") || strings.Contains(out, "FAILED") {
		t.Errorf("verify %s output:\n%s", id, out)
	}
	b := describeSet(t, c, inst, id)
	vt, err := time.Parse("2006-01-02T15:04:05Z", b.VerifyTime)
	if b.VerifyStatus != "Passed" || err != nil || vt.Before(before) || b.VerifyFailureReason != "" || b.IsAvail != 1 {
		t.Errorf("set %s after a passed drill: VerifyStatus %q VerifyTime %q (%v) reason %q IsAvail %d", id, b.VerifyStatus, b.VerifyTime, err, b.VerifyFailureReason, b.IsAvail)
	}
}

// checkNoDrillLeft checks that nothing of a drill is left: no directory in
// the drills directory, no process running on it.
func checkNoDrillLeft(t *testing.T, dir string) {
	t.Helper()
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("the drills directory holds %v after the drill", names)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), dir) {
			t.Errorf("a process still runs on the drills directory: %s: %q", p, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}

// breakSet replaces a stored logical set's object with one whose single
// database part is a dump that does not restore, and recomputes the set's
// checksums in the catalog, as a bug in the backup pipeline would leave it:
// every checksum matches, the data does not restore.
func breakSet(t *testing.T, f *backupFixture, id, dump string) {
	t.Helper()
	n, _ := strconv.ParseInt(id, 10, 64)
	db := openCatalog(t, f.DataDir)
	set, err := db.FindBackupSet(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	zw.Write([]byte(dump))
	zw.Close()
	data := buf.Bytes()
	var parts []rdsbackup.Artifact
	for _, a := range set.Artifacts {
		if a.Kind == rdsbackup.PartDatabase {
			parts = append(parts, rdsbackup.Artifact{Database: a.Database, Kind: a.Kind, Offset: 0, Length: int64(len(data)), Checksum: crcOf(data)})
			break
		}
	}
	if len(parts) != 1 {
		t.Fatalf("set %s has no database part: %+v", id, set.Artifacts)
	}
	polPut(t, localfs.New(filepath.Join(f.DataDir, "storage")), set.ObjectKey, data)
	set.Artifacts, set.Size, set.Checksum, set.DBNames = parts, int64(len(data)), crcOf(data), []string{parts[0].Database}
	if err := db.UpdateBackupSet(context.Background(), set); err != nil {
		t.Fatal(err)
	}
}

func TestDrillMariaDB(t *testing.T) {
	t.Parallel()
	const inst = "rm-drill"
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "drill src:@/%#1!"})
	dbA, dbB := src.NewDatabase(t), src.NewDatabase(t)
	enginetest.FillMariaDB(t, src.DB(t, dbA), 300)
	enginetest.FillMariaDB(t, src.DB(t, dbB), 50)
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
	dir := drillsSection(t, fx)
	config := fx.configFile(t)
	svc := fx.start(t)
	c := rootClients(t, svc)

	logical := createBackup(t, c, inst, "Logical", nil)
	waitFinished(t, c, inst, logical)
	wantPassed(t, c, fx, config, inst, logical, "restore", "databases", "integrity")
	checkNoDrillLeft(t, dir)

	t.Run("Physical", func(t *testing.T) {
		phys := createBackup(t, c, inst, "Physical", nil)
		waitFinished(t, c, inst, phys)
		wantPassed(t, c, fx, config, inst, phys, "restore", "databases", "integrity")
		checkNoDrillLeft(t, dir)
	})

	t.Run("BrokenDump", func(t *testing.T) {
		id := createBackup(t, c, inst, "Logical", nil)
		waitFinished(t, c, inst, id)
		breakSet(t, fx, id, "CREATE TABLE t1 (id INT PRIMARY KEY);\nINSERT INTO t1 VALUES (1),(2;\n")
		if b := describeSet(t, c, inst, id); b.IsAvail != 1 {
			t.Fatalf("the broken set is not available before the drill: %+v", b)
		}
		code, out, errOut := runVerify(t, fx, config, id)
		if code != exitFailed {
			t.Fatalf("verify of a broken set: exit %d\n%s\n%s", code, out, errOut)
		}
		if !regexp.MustCompile(`(?m)^  restore +FAILED `).MatchString(out) || !strings.Contains(out, "drill FAILED") {
			t.Errorf("verify output:\n%s", out)
		}
		if !strings.Contains(errOut, "level=ERROR") || !strings.Contains(errOut, "restore drill failed") {
			t.Errorf("no error-level log of the failed drill:\n%s", errOut)
		}
		b := describeSet(t, c, inst, id)
		if b.IsAvail != 0 || b.VerifyStatus != "Failed" || !strings.HasPrefix(b.VerifyFailureReason, "restore: ") || b.VerifyTime == "" {
			t.Errorf("after the failed drill: IsAvail %d VerifyStatus %q reason %q time %q", b.IsAvail, b.VerifyStatus, b.VerifyFailureReason, b.VerifyTime)
		}
		checkNoDrillLeft(t, dir)
	})
}

func TestDrillPostgres(t *testing.T) {
	t.Parallel()
	const inst = "pg-drill"
	src := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: "pg drill:@/%#1!"})
	dbA := src.NewDatabase(t)
	enginetest.FillPostgres(t, src.DB(t, dbA), 300)
	fx := newBackupFixture(t, backupInstance{inst, "PostgreSQL", src.URL("postgres")})
	dir := drillsSection(t, fx)
	config := fx.configFile(t)
	svc := fx.start(t)
	c := rootClients(t, svc)

	logical := createBackup(t, c, inst, "Logical", nil)
	waitFinished(t, c, inst, logical)
	wantPassed(t, c, fx, config, inst, logical, "restore", "databases", "integrity")
	checkNoDrillLeft(t, dir)

	t.Run("Physical", func(t *testing.T) {
		phys := createBackup(t, c, inst, "Physical", nil)
		waitFinished(t, c, inst, phys)
		wantPassed(t, c, fx, config, inst, phys, "restore", "consistent", "databases", "integrity")
		checkNoDrillLeft(t, dir)
	})
}

// drillServerPid waits until a drill's server in dir has restored part of
// database db (its directory exists in the server's data directory) and
// returns the server's pid and the drill's directory.
func drillServerPid(t *testing.T, dir, db string, timeout time.Duration) (int, string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		dbDirs, _ := filepath.Glob(filepath.Join(dir, "drill-*", "s", "data", db))
		if len(dbDirs) == 1 {
			drillDir := filepath.Dir(filepath.Dir(filepath.Dir(dbDirs[0])))
			procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, p := range procs {
				b, err := os.ReadFile(p)
				if err == nil && strings.Contains(string(b), "mariadbd") && strings.Contains(string(b), drillDir) {
					pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
					return pid, drillDir
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no drill server restoring %s in %s after %v", db, dir, timeout)
	return 0, ""
}

// TestDrillServerKilled: the drill's server killed during the restore is
// the drill's failure, not the set's: it says it could not run and the set
// stays available, with no verdict.
func TestDrillServerKilled(t *testing.T) {
	t.Parallel()
	const inst = "rm-drill-kill"
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "drill kill pw"})
	name := src.NewDatabase(t)
	enginetest.FillMariaDB(t, src.DB(t, name), 40000)
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
	dir := drillsSection(t, fx)
	config := fx.configFile(t)
	svc := fx.start(t)
	c := rootClients(t, svc)
	id := createBackup(t, c, inst, "Logical", nil)
	waitFinished(t, c, inst, id)

	type result struct {
		code      int
		out, logs string
	}
	done := make(chan result, 1)
	go func() {
		code, out, logs := runVerify(t, fx, config, id)
		done <- result{code, out, logs}
	}()
	pid, _ := drillServerPid(t, dir, name, 2*time.Minute)
	// The drill's server runs at the lowest CPU priority (nice 19).
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 17 || fields[16] != "19" {
			t.Errorf("the drill's server's nice value: %v, want 19", fields[16:17])
		}
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code != exitFailed || !strings.Contains(r.out, "the drill could not run") || !strings.Contains(r.out, "the drill's server stopped during the restore") {
		t.Fatalf("verify with its server killed: exit %d\n%s\n%s", r.code, r.out, r.logs)
	}
	if strings.Contains(r.logs, "level=ERROR") {
		t.Errorf("a drill that could not run is logged as an error:\n%s", r.logs)
	}
	b := describeSet(t, c, inst, id)
	if b.IsAvail != 1 || b.VerifyStatus != "" || b.VerifyFailureReason != "" || b.VerifyTime != "" {
		t.Errorf("the set after a drill that could not run: IsAvail %d VerifyStatus %q reason %q time %q", b.IsAvail, b.VerifyStatus, b.VerifyFailureReason, b.VerifyTime)
	}
	checkNoDrillLeft(t, dir)
}

// TestDrillVerifyKilled: rdsbackup SIGKILLed mid-drill leaves its drill's
// directory (its server dies with it); the next start removes it.
func TestDrillVerifyKilled(t *testing.T) {
	t.Parallel()
	bin := buildRdsbackup(t)
	const inst = "rm-drill-sigkill"
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "drill sigkill pw"})
	name := src.NewDatabase(t)
	enginetest.FillMariaDB(t, src.DB(t, name), 40000)
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
	dir := drillsSection(t, fx)
	config := fx.configFile(t)
	svc := fx.start(t)
	c := rootClients(t, svc)
	id := createBackup(t, c, inst, "Logical", nil)
	waitFinished(t, c, inst, id)
	svc.Stop()

	cmd := exec.Command(bin, "verify", "--backup-id", id, "--config", config)
	cmd.Env = append(os.Environ(), envMasterKey+"="+testMasterKey)
	for k, v := range fx.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid, drillDir := drillServerPid(t, dir, name, 2*time.Minute)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitFor(t, 30*time.Second, "the drill's server to die with rdsbackup", func() bool {
		return syscall.Kill(pid, 0) != nil
	})
	if _, err := os.Stat(drillDir); err != nil {
		t.Fatalf("the killed drill's directory is not there to clean up: %v\n%s", err, out.String())
	}

	svc = fx.start(t)
	checkNoDrillLeft(t, dir)
	if !strings.Contains(svc.Stderr.String(), "removing a drill directory an earlier process left") {
		t.Errorf("no log of the removal:\n%s", svc.Stderr.String())
	}
	b := describeSet(t, rootClients(t, svc), inst, id)
	if b.IsAvail != 1 || b.VerifyStatus != "" {
		t.Errorf("the set after a killed drill: IsAvail %d VerifyStatus %q", b.IsAvail, b.VerifyStatus)
	}
}

// TestDrillScheduled: an instance with drills after each set gets its new
// set drilled by the service; the verdict shows in DescribeBackups.
func TestDrillScheduled(t *testing.T) {
	t.Parallel()
	const inst = "pg-drill-sched"
	src := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: "pg sched pw"})
	enginetest.FillPostgres(t, src.DB(t, src.NewDatabase(t)), 200)
	fx := newBackupFixture(t, backupInstance{inst, "PostgreSQL", src.URL("postgres")})
	fx.YAML += "    drills:\n      enabled: true\n      schedule: after-each-set\n      timeout: 3m\n"
	drillsSection(t, fx)
	fx.YAML = "backups:\n  schedule: false\n  tickInterval: 100ms\n" + fx.YAML
	svc := fx.start(t)
	c := rootClients(t, svc)
	id := createBackup(t, c, inst, "Logical", nil)
	waitFinished(t, c, inst, id)
	var b backupOut
	waitFor(t, 2*time.Minute, "the scheduled drill's verdict", func() bool {
		b = describeSet(t, c, inst, id)
		return b.VerifyStatus != ""
	})
	if b.VerifyStatus != "Passed" || b.VerifyTime == "" || b.IsAvail != 1 {
		t.Fatalf("after the scheduled drill: %q %q IsAvail %d; log:\n%s", b.VerifyStatus, b.VerifyTime, b.IsAvail, svc.Stderr.String())
	}
	if !strings.Contains(svc.Stderr.String(), "restore drill passed") {
		t.Errorf("no log of the drill:\n%s", svc.Stderr.String())
	}
}

// TestVerifyRefusals: verify without a set, with an unknown set or a
// Failed one starts nothing.
func TestVerifyRefusals(t *testing.T) {
	t.Parallel()
	fx := newBackupFixture(t)
	dir := drillsSection(t, fx)
	config := fx.configFile(t)
	db := openCatalog(t, fx.DataDir)
	insertSets(t, db, setSpec{ID: 7, Instance: "rm-x", Start: time.Now().Add(-time.Hour), Status: rdsbackup.BackupFailed})
	db.Close()
	for _, tc := range []struct {
		id   string
		code int
		want string
	}{
		{"0", exitUsage, "give --backup-id"},
		{"404", exitFailed, "backup set 404 not found"},
		{"7", exitFailed, "Backup set 7 is not a Success set with data (Failed)"},
	} {
		code, out, errOut := runVerify(t, fx, config, tc.id)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("verify --backup-id %s: exit %d, want %d with %q:\n%s\n%s", tc.id, code, tc.code, tc.want, out, errOut)
		}
	}
	checkNoDrillLeft(t, dir)
}

// TestDrillsDirUnreachable: with a PostgreSQL instance's drills on, serve
// refuses a drills.dir the postgres user cannot reach (it runs the
// servers as that user when rdsbackup runs as root).
func TestDrillsDirUnreachable(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	private := filepath.Join(dataDir, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf("instances:\n  - id: pg-x\n    engine: PostgreSQL\n    dsn: \"postgres://u:p@127.0.0.1:1/postgres\"\n    drills:\n      enabled: true\ndrills:\n  dir: %s\n",
		filepath.Join(private, "drills"))
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("listen: 127.0.0.1:0\ndataDir: %s\nbackups:\n  schedule: false\nencryption:\n  enabled: false\n%s", dataDir, yaml)), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Should it start, it is stopped at once.
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(nil), Ready: func(string) { cancel() }}
	code := m.Run(ctx, []string{"serve", "--config", cfgPath})
	if os.Geteuid() != 0 {
		// PostgreSQL runs as this user, who reaches any directory it made.
		if code != exitOK {
			t.Errorf("serve as a user other than root: exit %d\n%s", code, stderr.String())
		}
		return
	}
	if code != exitFailed || !strings.Contains(stderr.String(), "config: drills.dir "+filepath.Join(private, "drills")) || !strings.Contains(stderr.String(), "cannot reach") {
		t.Errorf("serve with an unreachable drills.dir: exit %d\n%s", code, stderr.String())
	}
}
