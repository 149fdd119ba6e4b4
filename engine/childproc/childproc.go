// Package childproc holds what the engines share for running a database
// tool as a child process: a start in a process group of its own that a
// cancelled context kills whole, a bounded tail of the tool's standard
// error, and the error of a tool that failed.
//
// How a tool's streams are wired, when it is waited for, and how its
// messages are worded and cleaned of passwords stay with each engine.
package childproc

import (
	"context"
	"errors"
	"os/exec"
	"time"
)

// WaitDelay bounds Wait once the tool has exited, should a process outside
// its group keep one of its pipes open.
const WaitDelay = 10 * time.Second

// Command prepares the run of a tool as the leader of a new process group.
// When ctx is done the whole group is killed, so that nothing the tool
// started outlives it. Where there are no process groups, the tool alone is
// killed (the exec package's default).
func Command(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	setProcessGroup(cmd)
	cmd.WaitDelay = WaitDelay
	return cmd
}

// Kill kills the process group of a cmd made by Command, at once. It must
// be called after Start succeeded and before Wait, while the leader's pid
// cannot have been reused; it does nothing when cmd was not started.
func Kill(cmd *exec.Cmd) {
	if cmd.Process != nil {
		killProcessGroup(cmd)
	}
}

// ToolError is the failure of a tool run as a child process: it exited
// with an error status or was killed.
type ToolError struct {
	Tool   string // the tool's name, e.g. "mariadb-dump"
	Err    error  // what Wait returned, usually an *exec.ExitError
	Stderr string // the end of its standard error
}

func (e *ToolError) Error() string {
	msg := e.Tool + ": " + e.Err.Error()
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *ToolError) Unwrap() error { return e.Err }

// ExitCode returns the tool's exit status, or -1 when a signal ended it.
func (e *ToolError) ExitCode() int {
	var x *exec.ExitError
	if errors.As(e.Err, &x) {
		return x.ExitCode()
	}
	return -1
}

// Status describes how a run that Wait reported as err ended: "exit status
// 1", "signal: killed", or err's own message when the tool did not exit
// with an error (a start or pipe failure).
func Status(err error) string {
	var x *exec.ExitError
	if errors.As(err, &x) {
		return x.ProcessState.String()
	}
	return err.Error()
}
