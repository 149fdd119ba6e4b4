package localserver

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// server is what MariaDB and Postgres have in common: the process, the
// directory it lives in and an administrative connection pool.
type server struct {
	kind    string // "MariaDB", "PostgreSQL", for messages
	dir     string // the server's directory: data, socket and logs
	stopSig syscall.Signal

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

// pid is the server process's id, 0 before it started.
func (s *server) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
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

// remove stops the server and deletes its directory.
func (s *server) remove() {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.removed && s.dir != "" {
		os.RemoveAll(s.dir)
		s.removed = true
	}
}

func (s *server) closeAdmin() {
	if s.admin != nil {
		s.admin.Close()
		s.admin = nil
	}
}

// exec runs one statement on the administrative pool.
func (s *server) exec(ctx context.Context, query string) error {
	s.mu.Lock()
	admin := s.admin
	ok := admin != nil && s.proc != nil && !s.proc.exited()
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("the %s server is not running", s.kind)
	}
	_, err := admin.ExecContext(ctx, query)
	return err
}

// waitReady polls until ping succeeds on a connection to our own server
// (check compares a server-reported value, such as its data directory, so a
// server of someone else's that took the port first is not mistaken for
// ours), the process exits, ctx is done or the start timeout passes.
func waitReady(ctx context.Context, p *process, db *sql.DB, check func(ctx context.Context, db *sql.DB) (bool, error)) error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for {
		if p.exited() {
			return errExited
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := check(cctx, db)
		cancel()
		if ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v (last error: %v)", startTimeout, lastErr)
		}
		select {
		case <-time.After(25 * time.Millisecond):
		case <-ctx.Done():
		}
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
