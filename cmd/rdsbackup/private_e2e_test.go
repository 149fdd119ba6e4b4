package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
	"github.com/rdsbackup/rdsbackup/engine/childproc"
)

// TestPrivateChildrenAndFiles runs `rdsbackup serve` as a process with
// secrets in its environment, under umask 000, on a data directory that
// exists with mode 0755, and backs up a MariaDB:
//   - the dump tool's environment, read from /proc/<child>/environ while
//     it runs, holds only the variables it needs and none of the secrets;
//   - the service warns that the data directory is open to others;
//   - every file and directory it created under the data directory
//     (catalog.db and its -wal and -shm included) is 0600 / 0700.
func TestPrivateChildrenAndFiles(t *testing.T) {
	t.Parallel()
	const inst, pw = "rm-private", "private pw:@1-secret"
	src, big, _ := bigSource(t, pw)
	bin := buildRdsbackup(t)
	// A wrapper that sets the widest umask before it becomes the service.
	wrapper := filepath.Join(t.TempDir(), "rdsbackup-umask0")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\numask 000\nexec "+bin+" \"$@\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Another instance, whose password the tools of this one must not see.
	other := "root:other-instance-secret@tcp(127.0.0.1:1)/"
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")}, backupInstance{"rm-other", "MariaDB", other})
	if err := os.Chmod(fx.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"RDSBACKUP_TEST_CANARY": "canary-value-not-for-children"}
	for k, v := range fx.Env {
		env[k] = v
	}
	proc := startServeProcess(t, wrapper, fx.configFile(t), env)
	c := proc.clients(t)

	if !strings.Contains(proc.stderr.String(), "data directory is open to other users") {
		t.Errorf("no warning about the 0755 data directory:\n%s", proc.stderr.String())
	}

	id := createBackup(t, c, inst, "Logical", func(r *rds.CreateBackupRequest) { r.DBName = big })
	secrets := []string{rootKeySecret, testMasterKey, pw, "other-instance-secret", "canary-value-not-for-children"}
	var seen []string
	deadline := time.Now().Add(2 * time.Minute)
	for len(seen) == 0 && time.Now().Before(deadline) {
		for _, pid := range childPIDs(t, proc.cmd.Process.Pid) {
			raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			if err != nil {
				continue // it exited
			}
			commBytes, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
			comm := strings.TrimSpace(string(commBytes))
			seen = append(seen, comm)
			vars := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
			names := map[string]bool{}
			for _, kv := range vars {
				name, value, _ := strings.Cut(kv, "=")
				names[name] = true
				if !childproc.InheritedVariable(name) && name != "HOME" {
					t.Errorf("child %s has variable %s", comm, name)
				}
				for _, s := range secrets {
					if strings.Contains(value, s) {
						t.Errorf("child %s has a secret in %s", comm, name)
					}
				}
			}
			if !names["PATH"] || !names["HOME"] {
				t.Errorf("child %s lacks PATH or HOME: %q", comm, vars)
			}
		}
		if len(seen) == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	if len(seen) == 0 {
		t.Fatal("saw no child process of the service during the backup")
	}
	t.Logf("read the environment of %v", seen)
	waitFinished(t, c, inst, id)
	if b := describeSet(t, c, inst, id); b.BackupStatus != "Success" {
		t.Fatalf("backup %s: %s", id, b.BackupStatus)
	}

	// While the service runs: the catalog's and the replay memory's -wal and -shm exist.
	for _, name := range []string{"catalog.db", "catalog.db-wal", "catalog.db-shm", "catalog-nonces.db", "catalog-nonces.db-wal", "catalog-nonces.db-shm"} {
		if _, err := os.Stat(filepath.Join(fx.DataDir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	n := 0
	filepath.WalkDir(fx.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == fx.DataDir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		n++
		if fi.Mode().Perm() != want {
			rel, _ := filepath.Rel(fx.DataDir, p)
			t.Errorf("%s has mode %#o, want %#o", rel, fi.Mode().Perm(), want)
		}
		return nil
	})
	if n < 8 {
		t.Errorf("only %d entries under the data directory", n)
	}
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat)[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}
