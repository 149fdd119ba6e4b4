package enginetest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup/engine/localserver"
)

// dirPrefix names the servers' temporary directories (enginetest-mariadb-*,
// enginetest-postgres-*, and the templates').
const dirPrefix = "enginetest-"

// local is what the tests' servers need of a localserver server.
type local interface {
	Running() bool
	Pid() int
	Stop()
	Kill()
	Remove()
	CreateDatabase(ctx context.Context, name string) error
	DropDatabase(ctx context.Context, name string) error
}

// server is what MariaDB and Postgres have in common: the localserver
// server and its directory.
type server struct {
	kind   string // "MariaDB", "PostgreSQL", for messages
	root   string // directory holding data, socket and logs
	shared bool   // started by Shared...; only Main may stop it
	local  local  // nil in a value made by hand (for DSN, URL...)
}

// running reports whether the server process is alive.
func (s *server) running() bool { return s.local != nil && s.local.Running() }

func (s *server) checkNotShared(method string) {
	if s.shared {
		panic(fmt.Sprintf("enginetest: %s on the shared %s server; tests that stop servers must start their own", method, s.kind))
	}
}

// kill SIGKILLs the server and waits until it and its children are gone.
func (s *server) kill() {
	if s.local != nil {
		s.local.Kill()
	}
}

// stop shuts the server down cleanly.
func (s *server) stop() {
	if s.local != nil {
		s.local.Stop()
	}
}

// destroy stops the server and removes its directory.
func (s *server) destroy() {
	if s.local != nil {
		s.local.Remove()
	}
}

// newDatabase creates a database named after the test, and drops it when the
// test ends (unless the server is gone by then).
func (s *server) newDatabase(t testing.TB) string {
	t.Helper()
	name := databaseName(t)
	if !s.running() {
		t.Fatalf("enginetest: the %s server is not running", s.kind)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.local.CreateDatabase(ctx, name); err != nil {
		t.Fatalf("enginetest: create database %s on %s: %v", name, s.kind, err)
	}
	t.Cleanup(func() {
		if !s.running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.local.DropDatabase(ctx, name); err != nil && s.running() {
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

// skipUnlessServers skips the test where servers cannot or should not be
// started.
func skipUnlessServers(t testing.TB, what string) {
	t.Helper()
	if !localserver.Supported {
		t.Skipf("enginetest: starting %s needs a Unix system", what)
	}
	if testing.Short() {
		t.Skipf("enginetest: -short: not starting %s", what)
	}
}

// discardConn closes a connection whose session settings were changed
// instead of returning it to the caller's pool.
func discardConn(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}
