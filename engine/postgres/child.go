package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rdsbackup/rdsbackup/engine/childproc"
)

// session is the private environment of one operation's tools: the
// connection settings and, when the URL has a password, a .pgpass file in a
// directory of its own, removed by close.
type session struct {
	env    []string
	dir    string
	redact redactor
}

// newSession prepares the tools' environment for p.
func (e *Engine) newSession(p *connParams) (*session, error) {
	s := &session{redact: newRedactor(p.password)}
	var extra []string
	if p.password != "" {
		if strings.ContainsAny(p.password, "\r\n") {
			// A .pgpass line cannot hold it; the child's environment
			// can, and is as private as the file.
			extra = append(extra, "PGPASSWORD="+p.password)
		} else {
			dir, err := os.MkdirTemp(e.tempDir(), "rdsbackup-pg-") // mode 0700
			if err != nil {
				return nil, fmt.Errorf("create private temp directory: %w", err)
			}
			s.dir = dir
			file := filepath.Join(dir, ".pgpass")
			if err := os.WriteFile(file, []byte(pgpassLine(p.password)), 0o600); err != nil {
				s.close()
				return nil, fmt.Errorf("write .pgpass: %w", err)
			}
			extra = append(extra, "PGPASSFILE="+file)
		}
	}
	s.env = childEnv(p.env, extra)
	return s, nil
}

// close removes the session's files.
func (s *session) close() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
		s.dir = ""
	}
}

// childEnv is the environment of a tool: childproc.Env (PATH, TMPDIR, time
// zone, locale) with English messages (errors are matched and shown) and
// HOME (libpq finds ~/.postgresql/root.crt there for sslmode=verify-*),
// plus the connection settings as PG* variables; the password is in a
// .pgpass file of the session's own, or PGPASSWORD.
func childEnv(conn, extra []string) []string {
	var env []string
	for _, kv := range childproc.Env() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "LC_ALL", "LANGUAGE", "LC_MESSAGES": // they would override LC_MESSAGES=C
		default:
			env = append(env, kv)
		}
	}
	env = append(env, "LC_MESSAGES=C")
	if home, ok := os.LookupEnv("HOME"); ok {
		env = append(env, "HOME="+home)
	}
	env = append(env, conn...)
	has := func(name string) bool {
		for _, kv := range conn {
			if strings.HasPrefix(kv, name+"=") {
				return true
			}
		}
		return false
	}
	if !has("PGAPPNAME") {
		env = append(env, "PGAPPNAME=rdsbackup")
	}
	if !has("PGCONNECT_TIMEOUT") {
		env = append(env, "PGCONNECT_TIMEOUT=10")
	}
	return append(env, extra...)
}

// child is a running tool.
type child struct {
	tool   string // base name, for messages
	what   string // e.g. `of database "shop"`, for messages
	cmd    *exec.Cmd
	stdout io.ReadCloser // nil unless asked for
	stderr *childproc.Tail
	redact redactor
	// release removes the tool's record in the Registry, once waited for.
	release func()
}

// startOptions say how to connect a child's standard streams.
type startOptions struct {
	stdin  io.Reader // nil: /dev/null
	stdout bool      // make stdout a pipe (else discarded)
	stderr io.Writer // also receives stderr (besides the tail)
}

// start starts a tool in its own process group; cancelling ctx kills the
// group.
func (e *Engine) start(ctx context.Context, s *session, path, what string, args []string, o startOptions) (*child, error) {
	cmd := childproc.Command(ctx, path, args...)
	cmd.Env = s.env
	cmd.Stdin = o.stdin
	c := &child{tool: filepath.Base(path), what: what, cmd: cmd, stderr: childproc.NewTail(e.stderrTail()), redact: s.redact}
	cmd.Stderr = c.stderr
	if o.stderr != nil {
		cmd.Stderr = io.MultiWriter(c.stderr, o.stderr)
	}
	if o.stdout {
		out, err := childproc.StdoutPipe(cmd)
		if err != nil {
			return nil, fmt.Errorf("pipe from %s: %w", c.tool, err)
		}
		c.stdout = out
	}
	e.logger().Debug("start", "tool", path, "args", args)
	release, err := e.Children.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", c.tool, err)
	}
	c.release = release
	return c, nil
}

// kill stops the child and its process group at once.
func (c *child) kill() { childproc.Kill(c.cmd) }

// wait waits for the child and describes its failure: tool, exit status and
// the tail of its stderr.
func (c *child) wait() error {
	err := c.cmd.Wait()
	c.release()
	if err == nil {
		return nil
	}
	status := childproc.Status(err)
	msg := c.tool
	if c.what != "" {
		msg += " " + c.what
	}
	msg += " failed: " + status
	if tail := strings.TrimSpace(c.stderr.String()); tail != "" {
		msg += ": " + tail
	}
	return &ToolError{Tool: c.tool, Status: status, Stderr: c.redact.string(c.stderr.String()), msg: c.redact.string(msg), err: err}
}

// ToolError is the error of a tool that failed.
type ToolError struct {
	Tool   string // "pg_dump", …
	Status string // "exit status 1", "signal: killed"
	Stderr string // the tail of its standard error
	msg    string
	err    error
}

func (e *ToolError) Error() string { return e.msg }
func (e *ToolError) Unwrap() error { return e.err }

// errorLines collects the ERROR messages a psql script run writes to
// stderr, except those ignore accepts, keeping the first max of them.
type errorLines struct {
	mu      sync.Mutex
	partial []byte
	ignore  func(line string) bool
	max     int
	lines   []string
	count   int
}

func (w *errorLines) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) > 64<<10 { // a runaway line: judge its start
		w.line(string(w.partial))
		w.partial = w.partial[:0]
	}
	return len(p), nil
}

func (w *errorLines) line(l string) {
	if !strings.Contains(l, "ERROR:") || (w.ignore != nil && w.ignore(l)) {
		return
	}
	w.count++
	if len(w.lines) < w.max {
		w.lines = append(w.lines, strings.TrimSpace(l))
	}
}

func (w *errorLines) result() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.line(string(w.partial))
		w.partial = nil
	}
	return w.count, w.lines
}
