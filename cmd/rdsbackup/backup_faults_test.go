package main

// Faults and refusals of CreateBackup: the source server or rdsbackup
// itself killed mid-backup, wrong credentials, a second backup while one
// runs, and the requests CreateBackup refuses.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
	drv "github.com/go-sql-driver/mysql"

	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

// bigSource starts a private MariaDB (it may be killed) with database big
// (sample data and a table of 64 MB of text, whose dump takes about half a
// second on an idle machine, long enough to be interrupted) and database
// small (sample data only).
func bigSource(t *testing.T, password string) (src *enginetest.MariaDB, big, small string) {
	t.Helper()
	src = enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: password})
	big, small = src.NewDatabase(t), src.NewDatabase(t)
	db := src.DB(t, big)
	enginetest.FillMariaDB(t, db, 500)
	for _, q := range []string{
		"CREATE TABLE big (id INT PRIMARY KEY, pad TEXT NOT NULL) ENGINE=InnoDB",
		"INSERT INTO big SELECT seq, REPEAT(SHA2(seq, 512), 8) FROM seq_1_to_65536",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	enginetest.FillMariaDB(t, src.DB(t, small), 200)
	return src, big, small
}

// checkNoArtifact asserts that storage holds no file of the set and no
// temporary file.
func checkNoArtifact(t *testing.T, dataDir, inst, id string) {
	t.Helper()
	files := storageFiles(t, dataDir)
	if left := setFiles(files, inst, id); len(left) != 0 {
		t.Errorf("files of failed set %s left in storage: %v", id, left)
	}
	if left := tmpFiles(files); len(left) != 0 {
		t.Errorf("temporary files left in storage: %v", left)
	}
}

// TestBackupSourceKilled kills the source server while its dump streams:
// the job fails, the set is recorded Failed with the dump tool's complaint,
// and nothing is left in storage. Meanwhile a second CreateBackup of the
// instance is refused.
func TestBackupSourceKilled(t *testing.T) {
	t.Parallel()
	const inst = "rm-doomed"
	src, _, _ := bigSource(t, "doomed pw:@1")
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
	svc := fx.start(t)
	c := rootClients(t, svc)

	id := createBackup(t, c, inst, "Logical", nil)
	waitUploading(t, c, inst, id, fx.DataDir, 1)

	// One backup per instance at a time: refused, and no job made.
	for _, method := range []string{"Logical", "Physical"} {
		_, err := tryCreateBackup(t, c, inst, method, nil)
		se := wantServerError(t, err, "IncorrectDBInstanceState", 403)
		if !strings.Contains(se.Message(), "running") {
			t.Errorf("second CreateBackup (%s): message %q", method, se.Message())
		}
	}
	if running := describeTasks(t, c, inst, nil); len(running) != 1 || running[0].BackupJobId != id {
		t.Errorf("DescribeBackupTasks lists %+v while job %s runs", running, id)
	}

	src.Kill()
	tr := waitJob(t, c, inst, id, 2*time.Minute)
	t.Logf("job %s: statuses %v, reason %q", id, tr.Statuses, tr.Final.FailureReason)
	if tr.Final.BackupStatus != "Failed" || tr.Final.BackupProgressStatus != "Finished" {
		t.Fatalf("job after the source died: %+v", tr.Final)
	}
	if !strings.Contains(tr.Final.FailureReason, "mariadb-dump") {
		t.Errorf("job FailureReason %q does not name the dump tool", tr.Final.FailureReason)
	}
	if tr.Final.BackupId != id {
		t.Errorf("failed job's BackupId %q, want %s", tr.Final.BackupId, id)
	}
	set := describeSet(t, c, inst, id)
	checkFailedSet(t, set, `mariadb-dump`)
	checkNoArtifact(t, fx.DataDir, inst, id)
	if files := storageFiles(t, fx.DataDir); len(files) != 0 {
		t.Errorf("storage holds %v after the only backup failed", files)
	}
	if ids := allJobs(t, c, inst); !slices.Equal(ids, []string{id}) {
		t.Errorf("jobs of the instance: %v, want only %s", ids, id)
	}
	resp, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) { r.DBInstanceId, r.BackupStatus = inst, "Success" })
	if err != nil || len(resp.Items.Backup) != 0 {
		t.Errorf("Success sets after the failure: %v %v", resp, err)
	}
}

// TestBackupRefusals: requests CreateBackup refuses make no job; backups
// that cannot connect fail with a clear reason and leave nothing; and none
// of it keeps the instance from being backed up afterwards.
func TestBackupRefusals(t *testing.T) {
	t.Parallel()
	const pw, wrongPW = "right pw:@1", "wrong-password-4711"
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: pw})
	db := src.NewDatabase(t)
	enginetest.FillMariaDB(t, src.DB(t, db), 200)
	cfg, err := drv.ParseDSN(src.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Passwd = wrongPW
	badDSN := cfg.FormatDSN()
	downURL := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", wrongPW, freeTCPPort(t))

	fx := newBackupFixture(t,
		backupInstance{"rm-ok", "MariaDB", src.DSN("")},
		backupInstance{"rm-badpw", "MariaDB", badDSN},
		backupInstance{"pg-down", "PostgreSQL", downURL},
		backupInstance{"ms-erp", "SQLServer", "sqlserver://sa:" + wrongPW + "@127.0.0.1:1433?database=erp"},
	)
	svc := fx.start(t)
	c := rootClients(t, svc)

	noJobs := func(t *testing.T, inst string) {
		t.Helper()
		if ids := allJobs(t, c, inst); len(ids) != 0 {
			t.Errorf("jobs of %s: %v, want none", inst, ids)
		}
	}
	refused := []struct {
		name, inst, method string
		setup              func(*rds.CreateBackupRequest)
		code               string
		status             int
		message            string
	}{
		{"SQLServer", "ms-erp", "Logical", nil, "OperationDenied.Engine", 403, "SQLServer"},
		{"SQLServerPhysical", "ms-erp", "Physical", nil, "OperationDenied.Engine", 403, "SQLServer"},
		{"Snapshot", "rm-ok", "Snapshot", nil, "InvalidBackupMethod.NotSupported", 400, "Snapshot"},
		{"UnknownDBName", "rm-ok", "Logical", func(r *rds.CreateBackupRequest) { r.DBName = "no_such_db" }, "InvalidDBName.NotFound", 404, "no_such_db"},
		{"OneUnknownDBName", "rm-ok", "Logical", func(r *rds.CreateBackupRequest) { r.BackupStrategy, r.DBName = "db", db+",no_such_db" }, "InvalidDBName.NotFound", 404, "no_such_db"},
		{"StrategyDBWithoutDBName", "rm-ok", "Logical", func(r *rds.CreateBackupRequest) { r.BackupStrategy = "db" }, "MissingParameter", 400, "DBName"},
		{"UnknownInstance", "rm-nope", "Logical", nil, "InvalidDBInstanceId.NotFound", 400, ""},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tryCreateBackup(t, c, tc.inst, tc.method, tc.setup)
			if err == nil {
				t.Fatalf("CreateBackup answered BackupJobId %q", resp.BackupJobId)
			}
			se := wantServerError(t, err, tc.code, tc.status)
			if !strings.Contains(se.Message(), tc.message) {
				t.Errorf("message %q does not mention %q", se.Message(), tc.message)
			}
		})
	}
	for _, inst := range []string{"rm-ok", "ms-erp"} {
		noJobs(t, inst)
	}

	// Reachable only with the wrong password: a job that fails and says so.
	for _, method := range []string{"Logical", "Physical"} {
		t.Run("WrongPassword"+method, func(t *testing.T) {
			checkCannotConnect(t, c, fx.DataDir, "rm-badpw", method, nil, `Access denied for user 'root'`, wrongPW)
		})
	}
	t.Run("Unreachable", func(t *testing.T) {
		checkCannotConnect(t, c, fx.DataDir, "pg-down", "Logical", nil, `connect|refused`, wrongPW)
	})
	// With DBName, CreateBackup lists the server's databases before it
	// answers: a server that refuses the credentials must get as clear an
	// answer as without DBName — a job that fails with the reason, or an
	// error saying why — not a bare InternalError.
	t.Run("WrongPasswordWithDBName", func(t *testing.T) {
		setup := func(r *rds.CreateBackupRequest) { r.BackupStrategy, r.DBName = "db", db }
		resp, err := tryCreateBackup(t, c, "rm-badpw", "Logical", setup)
		if err == nil {
			tr := waitJob(t, c, "rm-badpw", resp.BackupJobId, time.Minute)
			if tr.Final.BackupStatus != "Failed" || !strings.Contains(tr.Final.FailureReason, "Access denied") {
				t.Errorf("job %+v", tr.Final)
			}
			return
		}
		se, ok := err.(interface {
			ErrorCode() string
			HttpStatus() int
			Message() string
		})
		if !ok {
			t.Fatalf("CreateBackup: %v", err)
		}
		if se.HttpStatus() >= 500 || !strings.Contains(se.Message(), "Access denied") || strings.Contains(se.Message(), wrongPW) {
			t.Errorf("CreateBackup with DBName on a server refusing the password: %s (%d) %q; want a client error that says access was denied", se.ErrorCode(), se.HttpStatus(), se.Message())
		}
	})

	// Nothing above holds the instances: a real backup of rm-ok runs.
	id := createBackup(t, c, "rm-ok", "Logical", nil)
	waitFinished(t, c, "rm-ok", id)
	b := describeSet(t, c, "rm-ok", id)
	if b.BackupStatus != "Success" || b.BackupDBNames != db {
		t.Errorf("backup after the refusals: %s %q", b.BackupStatus, b.BackupDBNames)
	}
	if ids := allJobs(t, c, "rm-ok"); !slices.Equal(ids, []string{id}) {
		t.Errorf("jobs of rm-ok: %v, want only %s", ids, id)
	}
	noJobs(t, "ms-erp")
	if strings.Contains(svc.Stderr.String(), wrongPW) || strings.Contains(svc.Stderr.String(), pw) {
		t.Errorf("the service log shows a password:\n%s", svc.Stderr.String())
	}
}

// checkCannotConnect runs a backup of an instance the service cannot log
// in to: it is accepted, then fails with reasonRE and without secret in the
// reason, its set is Failed, and nothing is stored.
func checkCannotConnect(t *testing.T, c *clients, dataDir, inst, method string, setup func(*rds.CreateBackupRequest), reasonRE, secret string) {
	t.Helper()
	id := createBackup(t, c, inst, method, setup)
	tr := waitJob(t, c, inst, id, time.Minute)
	t.Logf("%s %s: statuses %v, reason %q", inst, method, tr.Statuses, tr.Final.FailureReason)
	if tr.Final.BackupStatus != "Failed" || !regexp.MustCompile(reasonRE).MatchString(tr.Final.FailureReason) {
		t.Errorf("job %+v, want Failed with a reason matching %s", tr.Final, reasonRE)
	}
	if strings.Contains(tr.Final.FailureReason, secret) {
		t.Errorf("the job's FailureReason shows the password: %q", tr.Final.FailureReason)
	}
	set := describeSet(t, c, inst, id)
	checkFailedSet(t, set, reasonRE)
	if strings.Contains(set.FailureReason, secret) {
		t.Errorf("the set's FailureReason shows the password: %q", set.FailureReason)
	}
	if set.BackupMethod != method || set.BackupMode != "Manual" {
		t.Errorf("failed set: BackupMethod %q BackupMode %q", set.BackupMethod, set.BackupMode)
	}
	checkNoArtifact(t, dataDir, inst, id)
	resp, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) { r.DBInstanceId, r.BackupStatus = inst, "Success" })
	if err != nil || len(resp.Items.Backup) != 0 {
		t.Errorf("Success sets of %s: %v %v", inst, resp, err)
	}
}

// buildRdsbackup builds the command into a temporary directory.
func buildRdsbackup(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rdsbackup")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serveProcess is `rdsbackup serve` run as a child process.
type serveProcess struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	done   chan struct{}
}

var servingAddr = regexp.MustCompile(`msg="rdsbackup serving" addr=(\S+)`)

// startServeProcess starts bin serve --config with the test environment
// plus env, and waits until it logs its address.
func startServeProcess(t *testing.T, bin, config string, env map[string]string) *serveProcess {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", config)
	cmd.Env = append(os.Environ(), envAccessKeyID+"="+rootKeyID, envAccessKeySecret+"="+rootKeySecret, envMasterKey+"="+testMasterKey)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			p.stderr.Write([]byte(line + "\n"))
			if m := servingAddr.FindStringSubmatch(line); m != nil {
				addrc <- m[1]
			}
		}
		io.Copy(io.Discard, pipe)
	}()
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.addr = <-addrc:
	case <-p.done:
		t.Fatalf("rdsbackup serve exited before it served:\n%s", p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("rdsbackup serve not serving after 60s:\n%s", p.stderr.String())
	}
	return p
}

// kill SIGKILLs the process and waits for it.
func (p *serveProcess) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// clients returns SDK clients signed with the root key.
func (p *serveProcess) clients(t *testing.T) *clients {
	return newClients(t, p.addr, rootKeyID, rootKeySecret)
}

// TestBackupServiceKilled SIGKILLs the rdsbackup process while a backup
// streams, then starts it again on the same data directory: the
// interrupted job is settled Failed, nothing of its set stays in storage,
// and the instance can be backed up again.
func TestBackupServiceKilled(t *testing.T) {
	t.Parallel()
	const inst, pw = "rm-crash", "crash pw:@1-secret"
	src, _, small := bigSource(t, pw)
	bin := buildRdsbackup(t)
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
	config := fx.configFile(t)
	// The service's temporary directory (the dump tools' private
	// option-file directories), to see what a killed service leaves there.
	tmp := t.TempDir()
	env := map[string]string{"TMPDIR": tmp}
	for k, v := range fx.Env {
		env[k] = v
	}
	proc := startServeProcess(t, bin, config, env)
	c := newClients(t, proc.addr, rootKeyID, rootKeySecret)

	id := createBackup(t, c, inst, "Logical", nil)
	waitUploading(t, c, inst, id, fx.DataDir, 1)
	if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-proc.done
	files := storageFiles(t, fx.DataDir)
	t.Logf("storage after SIGKILL: %v (%d bytes of temporary files)", files, tmpBytes(fx.DataDir))
	if left := filesContaining(t, tmp, pw); len(left) > 0 {
		t.Logf("the killed service left files holding the source's password in its TMPDIR: %v", left)
	}
	if left := filesContaining(t, fx.DataDir, pw); len(left) > 0 {
		t.Logf("the killed service left files holding the source's password in its data directory: %v", left)
	}

	// The same binary, data directory and environment again.
	proc = startServeProcess(t, bin, config, env)
	c = newClients(t, proc.addr, rootKeyID, rootKeySecret)
	j := describeJob(t, c, inst, id)
	if j.BackupStatus != "Failed" || j.BackupId != id || !strings.Contains(j.FailureReason, "interrupted") {
		t.Errorf("interrupted job after the restart: %+v", j)
	}
	if running := describeTasks(t, c, inst, nil); len(running) != 0 {
		t.Errorf("jobs still running after the restart: %+v", running)
	}
	checkFailedSet(t, describeSet(t, c, inst, id), `interrupted`)
	checkNoArtifact(t, fx.DataDir, inst, id)

	id2 := createBackup(t, c, inst, "Logical", func(r *rds.CreateBackupRequest) { r.DBName = small })
	if a, b := mustInt(t, id), mustInt(t, id2); b <= a {
		t.Errorf("new job id %d, interrupted job %d", b, a)
	}
	waitFinished(t, c, inst, id2)
	b := describeSet(t, c, inst, id2)
	if b.BackupStatus != "Success" || b.IsAvail != 1 || b.BackupDBNames != small {
		t.Errorf("backup after the restart: %s %d %q", b.BackupStatus, b.IsAvail, b.BackupDBNames)
	}
	checkDownloads(t, b)
	if strings.Contains(proc.stderr.String(), pw) {
		t.Errorf("the service log shows the password")
	}

	// A clean stop (SIGTERM) mid-backup: the service cancels the job,
	// removes what it stored and records the failure before it exits.
	t.Run("StoppedMidBackup", func(t *testing.T) {
		id := createBackup(t, c, inst, "Logical", nil)
		waitUploading(t, c, inst, id, fx.DataDir, 1)
		if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-proc.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("rdsbackup did not exit within 30s of SIGTERM:\n%s", proc.stderr.String())
		}
		if code := proc.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code %d after SIGTERM:\n%s", code, proc.stderr.String())
		}
		checkNoArtifact(t, fx.DataDir, inst, id)
		proc = startServeProcess(t, bin, config, env)
		c = newClients(t, proc.addr, rootKeyID, rootKeySecret)
		j := describeJob(t, c, inst, id)
		if j.BackupStatus != "Failed" || !strings.Contains(j.FailureReason, "service stopped") {
			t.Errorf("job stopped with the service: %+v", j)
		}
		checkFailedSet(t, describeSet(t, c, inst, id), `service stopped`)
		checkNoArtifact(t, fx.DataDir, inst, id)
	})

	// The dump tool's option file holds the source's password in
	// plaintext; the engine removes its directory when the tool exits, but
	// a killed service cannot. The restarted service, which settles the
	// killed one's jobs and temporary objects, must not leave it behind.
	t.Run("NoPasswordFileLeftAfterRestart", func(t *testing.T) {
		// The engines keep their option files under dataDir/tmp, which the
		// service empties at start; nothing may hold the password anywhere.
		if left := filesContaining(t, fx.DataDir, pw); len(left) > 0 {
			t.Errorf("after the restart, files holding the source's password remain in the data directory: %v", left)
		}
		if left := filesContaining(t, tmp, pw); len(left) > 0 {
			t.Errorf("after the restart and a new backup, files holding the source's password remain in the service's TMPDIR: %v", left)
		}
	})
}

// filesContaining lists the files under dir whose content holds s.
func filesContaining(t *testing.T, dir, s string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), s) {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
