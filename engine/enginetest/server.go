package enginetest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// server is what MariaDB and Postgres have in common: the process, the
// directory it lives in and an administrative connection pool.
type server struct {
	kind    string // "MariaDB", "PostgreSQL", for messages
	root    string // temporary directory holding data, socket and logs
	stopSig syscall.Signal
	shared  bool // started by Shared...; only Main may stop it

	mu      sync.Mutex
	proc    *process
	admin   *sql.DB // superuser pool without a default database
	removed bool
}

// running reports whether the server process is alive.
func (s *server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.exited()
}

func (s *server) checkNotShared(method string) {
	if s.shared {
		panic(fmt.Sprintf("enginetest: %s on the shared %s server; tests that stop servers must start their own", method, s.kind))
	}
}

// kill SIGKILLs the server and waits until it and its children are gone.
func (s *server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeAdmin()
	if s.proc != nil {
		s.proc.kill()
	}
}

// stop shuts the server down cleanly.
func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeAdmin()
	if s.proc != nil {
		s.proc.stop(s.stopSig)
	}
}

// destroy stops the server and removes its directory.
func (s *server) destroy() {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.removed && s.root != "" {
		os.RemoveAll(s.root)
		s.removed = true
	}
}

func (s *server) closeAdmin() {
	if s.admin != nil {
		s.admin.Close()
		s.admin = nil
	}
}

// adminDB returns the administrative pool, failing the test when the server
// is not running.
func (s *server) adminDB(t testing.TB) *sql.DB {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil || s.proc == nil || s.proc.exited() {
		t.Fatalf("enginetest: the %s server is not running", s.kind)
	}
	return s.admin
}

// newDatabase creates a database named after the test with create, and drops
// it with drop when the test ends (unless the server is gone by then).
func (s *server) newDatabase(t testing.TB, create, drop func(name string) string) string {
	t.Helper()
	name := databaseName(t)
	admin := s.adminDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, create(name)); err != nil {
		t.Fatalf("enginetest: create database %s on %s: %v", name, s.kind, err)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		admin := s.admin
		s.mu.Unlock()
		if admin == nil || !s.running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, drop(name)); err != nil && s.running() {
			t.Errorf("enginetest: drop database %s on %s: %v", name, s.kind, err)
		}
	})
	return name
}

var (
	dbSeq     atomic.Int64
	nonIdentC = regexp.MustCompile(`[^a-z0-9]+`)
)

// databaseName derives a database name from the test's name that is valid
// unquoted on both engines, unique within the test binary.
func databaseName(t testing.TB) string {
	base := strings.Trim(nonIdentC.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(base) > 40 {
		base = base[:40]
	}
	return "t_" + base + "_" + strconv.FormatInt(dbSeq.Add(1), 10)
}

// waitReady polls until ping succeeds on a connection to our own server
// (check compares a server-reported value, such as its data directory, so a
// server of someone else's that took the port first is not mistaken for
// ours), the process exits, or the start timeout passes.
func waitReady(p *process, db *sql.DB, check func(ctx context.Context, db *sql.DB) (bool, error)) error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for {
		if p.exited() {
			return errExited
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ok, err := check(ctx, db)
		cancel()
		if ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v (last error: %v)", startTimeout, lastErr)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// logSize is the size of a log file, to read what one start attempt wrote.
func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns what was appended to a log after offset off.
func logSince(path string, off int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// clientEnv is the environment for client tools (mariadb, pg_dump...) run
// against a test server: the test's, without settings of the client tools'
// own that could point them elsewhere, plus extra.
func clientEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") || strings.HasPrefix(name, "MYSQL") || strings.HasPrefix(name, "MARIADB") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// discardConn closes a connection whose session settings were changed
// instead of returning it to the caller's pool.
func discardConn(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}
