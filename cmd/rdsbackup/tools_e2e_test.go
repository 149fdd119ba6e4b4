//go:build linux

package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup/engine/childproc"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

// childrenOf returns the pids of pid's children whose command name is one
// of names.
func childrenOf(pid int, names ...string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		var ppid int
		var comm string
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid, _ = strconv.Atoi(strings.TrimSpace(v))
			} else if v, ok := strings.CutPrefix(line, "Name:"); ok {
				comm = strings.TrimSpace(v)
			}
		}
		for _, n := range names {
			if ppid == pid && comm == n {
				out = append(out, child)
			}
		}
	}
	return out
}

// running reports whether pid runs (a zombie does not).
func running(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && !strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z")
}

// waitingConnection returns the id of the one connection to database db
// that waits for a table lock, or "".
func waitingConnection(t *testing.T, admin *sql.DB, db string) string {
	t.Helper()
	var ids []string
	rows, err := admin.Query(`SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND STATE LIKE '%lock%'`, db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if len(ids) != 1 {
		return ""
	}
	return ids[0]
}

// connected reports whether the server has a connection with that id.
func connected(t *testing.T, admin *sql.DB, id string) bool {
	t.Helper()
	var n int
	if err := admin.QueryRow(`SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// TestBlockedDumpDiesWithService: a mariadb-dump blocked on a table lock
// (its connection and transaction open) while rdsbackup is SIGKILLed dies
// with rdsbackup, and the server closes its connection. The restarted
// service kills a recorded tool an earlier run left running, and settles
// the interrupted job.
func TestBlockedDumpDiesWithService(t *testing.T) {
	t.Parallel()
	const inst = "rm-blocked"
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "blocked pw:@1"})
	dbName := src.NewDatabase(t)
	data := src.DB(t, dbName)
	for _, q := range []string{"CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1), (2)"} {
		if _, err := data.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	// A session that holds a write lock on t: the dump's SELECT waits.
	lockTable(t, data, "t")
	admin := src.DB(t, "")

	bin := buildRdsbackup(t)
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
	config := fx.configFile(t)
	proc := startServeProcess(t, bin, config, fx.Env)
	c := proc.clients(t)
	id := createBackup(t, c, inst, "Logical", func(r *rds.CreateBackupRequest) { r.DBName = dbName })

	var dump []int
	waitFor(t, time.Minute, "mariadb-dump starts", func() bool {
		dump = childrenOf(proc.cmd.Process.Pid, "mariadb-dump", "mysqldump")
		return len(dump) == 1
	})
	var conn string
	waitFor(t, time.Minute, "the dump waits for the lock", func() bool {
		conn = waitingConnection(t, admin, dbName)
		return conn != ""
	})
	t.Logf("dump pid %d, its connection %s", dump[0], conn)

	proc.kill()
	waitFor(t, 10*time.Second, "the dump dies with rdsbackup", func() bool { return !running(dump[0]) })
	waitFor(t, 30*time.Second, "the server closes the dump's connection", func() bool { return !connected(t, admin, conn) })

	// A tool an earlier run left running (recorded, as the service records
	// its tools): the next start kills it before it serves.
	leftover := childproc.Command(t.Context(), "/bin/sleep", "300")
	if _, err := (&childproc.Registry{Dir: filepath.Join(fx.DataDir, "run", "tools")}).Start(leftover); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- leftover.Wait() }()

	proc = startServeProcess(t, bin, config, fx.Env)
	select {
	case err := <-exited:
		if childproc.Status(err) != "signal: killed" {
			t.Errorf("the leftover tool: %v", err)
		}
	case <-time.After(10 * time.Second):
		syscall.Kill(leftover.Process.Pid, syscall.SIGKILL)
		t.Error("the restarted service did not kill the recorded leftover tool")
	}
	if !strings.Contains(proc.stderr.String(), "killed a tool left running") {
		t.Errorf("the service does not log the leftover it killed:\n%s", proc.stderr.String())
	}
	j := describeJob(t, proc.clients(t), inst, id)
	if j.BackupStatus != "Failed" || !strings.Contains(j.FailureReason, "interrupted") {
		t.Errorf("the interrupted job after the restart: %+v", j)
	}
}
