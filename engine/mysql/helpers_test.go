//go:build linux

package mysql_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	drv "github.com/go-sql-driver/mysql"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// savedPart is one part a fileSink received.
type savedPart struct {
	part rdsbackup.Part
	path string
	size int64
}

// fileSink keeps each part in a file. During, when set, is called once per
// part after its first bytes have arrived, while the tool still runs; it may
// return an error, which the sink then returns without reading further.
type fileSink struct {
	dir    string
	During func(part rdsbackup.Part) error

	mu    sync.Mutex
	parts []savedPart
}

func newFileSink(t *testing.T) *fileSink { return &fileSink{dir: t.TempDir()} }

func (s *fileSink) WritePart(ctx context.Context, part rdsbackup.Part, r io.Reader) error {
	s.mu.Lock()
	path := filepath.Join(s.dir, fmt.Sprintf("%03d-%s", len(s.parts), part.Kind))
	s.mu.Unlock()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 32<<10)
	var n int64
	first := true
	for {
		k, err := r.Read(buf)
		if k > 0 {
			if _, err := f.Write(buf[:k]); err != nil {
				return err
			}
			n += int64(k)
			if first && s.During != nil {
				first = false
				if err := s.During(part); errors.Is(err, errStop) {
					return nil
				} else if err != nil {
					return err
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.parts = append(s.parts, savedPart{part: part, path: path, size: n})
	s.mu.Unlock()
	return f.Close()
}

func (s *fileSink) open(t *testing.T, i int) *os.File {
	t.Helper()
	f, err := os.Open(s.parts[i].path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// dsn builds a go-sql-driver DSN.
func dsn(user, pw, network, addr string) string {
	c := drv.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = user, pw, network, addr
	return c.FormatDSN()
}

// proc is a process as /proc shows it.
type proc struct {
	pid, ppid, pgrp int
	state           byte
	argv            []string
	environ         string
}

// readProc reads /proc/pid; ok is false when the process is gone.
func readProc(pid int) (p proc, ok bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return p, false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return p, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 3 {
		return p, false
	}
	p.pid = pid
	p.state = f[0][0]
	p.ppid, _ = strconv.Atoi(f[1])
	p.pgrp, _ = strconv.Atoi(f[2])
	if cmdline, err := os.ReadFile(dir + "/cmdline"); err == nil && len(cmdline) > 0 {
		p.argv = strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	}
	if env, err := os.ReadFile(dir + "/environ"); err == nil {
		p.environ = string(env)
	}
	return p, true
}

// allProcs lists the processes of the machine.
func allProcs() []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// childTool returns the running child of this test binary named tool
// whose option file lies under dir.
func childTool(t *testing.T, tool, dir string) proc {
	t.Helper()
	for _, p := range allProcs() {
		if p.ppid != os.Getpid() || len(p.argv) < 2 || filepath.Base(p.argv[0]) != tool {
			continue
		}
		if strings.HasPrefix(p.argv[1], "--defaults-extra-file="+dir) {
			return p
		}
	}
	t.Fatalf("no running %s child with an option file in %s", tool, dir)
	return proc{}
}

// groupMembers lists the live processes of process group pgrp.
func groupMembers(pgrp int) []proc {
	var out []proc
	for _, p := range allProcs() {
		if p.pgrp == pgrp && p.state != 'Z' && p.state != 'X' {
			out = append(out, p)
		}
	}
	return out
}

// checkOptionFile checks, while a tool runs, that its option file is 0600
// in a 0700 directory, and that the password is in the file and nowhere in
// the command line or environment of any process.
func checkOptionFile(t *testing.T, p proc, password string) string {
	t.Helper()
	file := strings.TrimPrefix(p.argv[1], "--defaults-extra-file=")
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("option file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("option file mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("option file directory mode %v, want 0700", di.Mode().Perm())
	}
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "password=") {
		t.Errorf("no password in the option file:\n%s", text)
	}
	for _, q := range allProcs() {
		if strings.Contains(strings.Join(q.argv, " "), password) {
			t.Errorf("process %d has the password in its command line: %q", q.pid, q.argv)
		}
	}
	if strings.Contains(p.environ, password) {
		t.Errorf("%s has the password in its environment", p.argv[0])
	}
	if !strings.Contains(p.environ, "HOME="+filepath.Dir(file)+"\x00") {
		t.Errorf("%s's HOME is not the private directory", p.argv[0])
	}
	return file
}

// makeBigTable adds a table of about mb megabytes of incompressible-looking
// data to db's database, so that its dump outlasts every buffer between the
// server and the sink.
func makeBigTable(t *testing.T, db *sql.DB, mb int) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE big (id INT PRIMARY KEY, pad LONGBLOB) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	// 256 KiB rows.
	q := fmt.Sprintf("INSERT INTO big SELECT seq, REPEAT(UNHEX(SHA2(seq, 256)), 8192) FROM seq_1_to_%d", mb*4)
	if _, err := db.ExecContext(ctx, q); err != nil {
		t.Fatal(err)
	}
}

// requireTool skips the test when a tool is missing, or fails it in CI,
// where it should have been installed.
func requireTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (Debian package %s)", name, pkg)
		}
		t.Skipf("%s is not installed (Debian package %s)", name, pkg)
	}
}

// restoredServer is a mariadbd started on a data directory restored from a
// physical backup.
type restoredServer struct {
	port int
	dir  string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startOnDataDir starts mariadbd on an existing data directory (as root,
// when the tests run as root) and waits until password lets root in over
// TCP. The server is stopped when the test ends.
func startOnDataDir(t *testing.T, dir, password string) *restoredServer {
	t.Helper()
	bin, err := exec.LookPath("mariadbd")
	if err != nil {
		bin = "/usr/sbin/mariadbd"
	}
	s := &restoredServer{dir: dir, log: filepath.Join(t.TempDir(), "mariadbd.log")}
	for try := 0; ; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		args := []string{"--no-defaults"}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		args = append(args, "--datadir="+dir, "--port="+strconv.Itoa(s.port), "--bind-address=127.0.0.1",
			"--socket="+filepath.Join(dir, "restored.sock"), "--skip-name-resolve", "--character-set-server=utf8mb4",
			"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M", "--skip-innodb-doublewrite")
		logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		s.cmd = exec.Command(bin, args...)
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		err = s.cmd.Start()
		logf.Close()
		if err != nil {
			t.Fatal(err)
		}
		s.done = make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(s.cmd, s.done)
		if err := s.waitReady(password); err == nil {
			break
		} else if try >= 3 {
			s.kill()
			log, _ := os.ReadFile(s.log)
			t.Fatalf("mariadbd on the restored data directory: %v\n%s", err, log)
		}
		s.kill()
	}
	t.Cleanup(s.stop)
	return s
}

func (s *restoredServer) dsn(password, db string) string {
	c := drv.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = "root", password, "tcp", "127.0.0.1:"+strconv.Itoa(s.port), db
	return c.FormatDSN()
}

func (s *restoredServer) waitReady(password string) error {
	c := drv.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = "root", password, "tcp", "127.0.0.1:"+strconv.Itoa(s.port)
	c.Timeout = time.Second
	c.Logger = nopLogger{}
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("mariadbd exited")
		default:
		}
		var dir string
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = db.QueryRowContext(ctx, "SELECT @@datadir").Scan(&dir)
		cancel()
		if last == nil {
			if filepath.Clean(dir) != filepath.Clean(s.dir) {
				return fmt.Errorf("another server on port %d", s.port)
			}
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("not ready: %v", last)
}

func (s *restoredServer) kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

func (s *restoredServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.kill()
	}
}

type nopLogger struct{}

func (nopLogger) Print(...any) {}

// openDB opens a pool on dsn and closes it when the test ends.
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dropLater drops database name on the server of db when the test ends.
func dropLater(t *testing.T, db *sql.DB, name string) {
	t.Cleanup(func() {
		db.Exec("DROP DATABASE IF EXISTS `" + strings.ReplaceAll(name, "`", "``") + "`")
	})
}

// logOnFailure shows the end of a test server's log when the test fails.
func logOnFailure(t *testing.T, srv *enginetest.MariaDB) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		b, err := os.ReadFile(srv.LogFile)
		if err != nil {
			t.Logf("server log: %v", err)
			return
		}
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		t.Logf("--- %s (tail) ---\n%s", srv.LogFile, b)
	})
}
