package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/childproc"
)

// tool is a command-line program of the engine, found in PATH.
type tool struct {
	name string // as the user knows it: "mariadb-dump"
	path string
}

// Tool roles.
type toolRole int

const (
	roleDump    toolRole = iota // logical dumps
	roleClient                  // runs SQL scripts (restores dumps)
	roleBackup                  // physical backups and their prepare step
	roleExtract                 // unpacks an xbstream
	roleBinlog                  // reads and streams binary logs
)

// toolNames lists the names a role's tool goes by, preferred first. The
// physical tools have no stand-ins: mariadb-backup cannot back up MySQL, nor
// xtrabackup MariaDB.
func (e *Engine) toolNames(r toolRole) []string {
	switch r {
	case roleDump:
		if e.mariadb() {
			return []string{"mariadb-dump", "mysqldump"}
		}
		return []string{"mysqldump", "mariadb-dump"}
	case roleClient:
		if e.mariadb() {
			return []string{"mariadb", "mysql"}
		}
		return []string{"mysql", "mariadb"}
	case roleBackup:
		if e.mariadb() {
			return []string{"mariadb-backup", "mariabackup"}
		}
		return []string{"xtrabackup"}
	case roleExtract:
		if e.mariadb() {
			return []string{"mbstream"}
		}
		return []string{"xbstream"}
	case roleBinlog:
		if e.mariadb() {
			return []string{"mariadb-binlog", "mysqlbinlog"}
		}
		return []string{"mysqlbinlog", "mariadb-binlog"}
	}
	panic("mysql: unknown tool role")
}

// lookTool finds the role's tool in PATH. The error names the preferred
// tool and wraps errNoTool.
func (e *Engine) lookTool(r toolRole) (tool, error) {
	names := e.toolNames(r)
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return tool{name: n, path: p}, nil
		}
	}
	return tool{}, fmt.Errorf("%s is %w (looked for %s in PATH)", names[0], errNoTool, strings.Join(names, ", "))
}

// ToolError is the failure of a tool run as a child process: it exited
// with an error status or was killed. Its Stderr is the end of the tool's
// standard error, at most Engine.StderrTail bytes.
type ToolError = childproc.ToolError

// childEnv is the environment of the tools: childproc.Env (PATH, TMPDIR,
// time zone and locale) with HOME pointing at the private directory, so
// that no per-user option file is read. The connection settings, password
// included, are in the option file, never in the environment.
func childEnv(home string) []string { return childproc.Env("HOME=" + home) }

// command prepares a tool run in its own process group, which is killed
// as a whole when ctx is done.
func (e *Engine) command(ctx context.Context, t tool, ws *workspace, args ...string) *exec.Cmd {
	cmd := childproc.Command(ctx, t.path, args...)
	cmd.Env = childEnv(ws.dir)
	cmd.Dir = ws.dir
	return cmd
}

// childOutput is a tool's standard output as the sink reads it. When the
// tool dies because ctx is done, the sink sees ctx's error, not a clean EOF.
type childOutput struct {
	ctx context.Context
	r   io.Reader
	eof bool
}

func (c *childOutput) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		if cerr := c.ctx.Err(); cerr != nil {
			return n, cerr
		}
		c.eof = true
	}
	return n, err
}

// streamPart runs a tool whose standard output is one part of a backup and
// hands that output to sink. It waits for the tool only once WritePart has
// returned; a tool that exits with an error fails the part even when its
// output looked complete. A sink that fails or returns before the end of
// the output gets the tool killed.
//
// A non-empty header is inserted at the start of the output (see
// withHeader).
func (e *Engine) streamPart(ctx context.Context, t tool, ws *workspace, password string, args []string, header string, sink rdsbackup.PartSink, part rdsbackup.Part) error {
	cmd := e.command(ctx, t, ws, args...)
	stdout, err := childproc.StdoutPipe(cmd)
	if err != nil {
		return fmt.Errorf("pipe from %s: %w", t.name, err)
	}
	tail := childproc.NewTail(e.stderrTail())
	cmd.Stderr = tail
	e.logger().Debug("starting tool", "tool", t.name, "args", args)
	release, err := e.Children.Start(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", t.name, err)
	}
	defer release()
	out := &childOutput{ctx: ctx, r: stdout}
	var src io.Reader = out
	if header != "" {
		src = withHeader(out, header)
	}
	werr := sink.WritePart(ctx, part, src)
	if werr == nil && !out.eof && ctx.Err() == nil {
		werr = fmt.Errorf("the sink returned before the end of %s's output", t.name)
	}
	if werr != nil {
		childproc.Kill(cmd)
	}
	waitErr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s stopped: %w", t.name, ctx.Err())
	case werr != nil:
		return werr
	case waitErr != nil:
		return &ToolError{Tool: t.name, Err: waitErr, Stderr: redactString(tail.Text(), password)}
	}
	return nil
}

// runFed runs a tool with in as its standard input, until the tool has read
// all of it and exited. The standard output is discarded: the restore tools
// write nothing there that matters, and what they complain about goes to
// standard error.
func (e *Engine) runFed(ctx context.Context, t tool, ws *workspace, password string, args []string, in io.Reader) error {
	cmd := e.command(ctx, t, ws, args...)
	stdin, err := childproc.StdinPipe(cmd)
	if err != nil {
		return fmt.Errorf("pipe to %s: %w", t.name, err)
	}
	tail := childproc.NewTail(e.stderrTail())
	cmd.Stdout = io.Discard
	cmd.Stderr = tail
	e.logger().Debug("starting tool", "tool", t.name, "args", args)
	release, err := e.Children.Start(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", t.name, err)
	}
	defer release()
	readErr, writeErr := feed(stdin, in)
	stdin.Close()
	if readErr != nil {
		// The input broke off: the tool must not take what it got for
		// the whole.
		childproc.Kill(cmd)
	}
	waitErr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s stopped: %w", t.name, ctx.Err())
	case readErr != nil:
		return fmt.Errorf("read input of %s: %w", t.name, readErr)
	case waitErr != nil:
		return &ToolError{Tool: t.name, Err: waitErr, Stderr: redactString(tail.Text(), password)}
	case writeErr != nil:
		return fmt.Errorf("write to %s: %w", t.name, writeErr)
	}
	return nil
}

// feed copies in to w and tells read errors from write errors: a tool that
// exits early (on an SQL error) makes writes fail, and then its own exit
// status and message are the ones to report.
func feed(w io.Writer, in io.Reader) (readErr, writeErr error) {
	buf := make([]byte, 256<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// runTool runs a tool to completion with no input.
func (e *Engine) runTool(ctx context.Context, t tool, ws *workspace, password string, args ...string) error {
	cmd := e.command(ctx, t, ws, args...)
	tail := childproc.NewTail(e.stderrTail())
	cmd.Stdout = tail
	cmd.Stderr = tail
	e.logger().Debug("starting tool", "tool", t.name, "args", args)
	release, err := e.Children.Start(cmd)
	if err == nil {
		err = cmd.Wait()
		release()
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s stopped: %w", t.name, ctx.Err())
	case err != nil:
		var x *exec.ExitError
		if !errors.As(err, &x) {
			return fmt.Errorf("run %s: %w", t.name, err)
		}
		return &ToolError{Tool: t.name, Err: err, Stderr: redactString(tail.Text(), password)}
	}
	return nil
}
