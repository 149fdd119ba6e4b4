package childproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Registry keeps one file per running tool in Dir, naming the tool's pid
// and the kernel's identity of that process (its start time, in the
// current boot), so that the next start of rdsbackup can kill the tools a
// killed one left running: on Linux they die with it (Pdeathsig), but a
// tool's own children, or a tool on a system without that signal, would
// otherwise keep their database connections and transactions open.
//
// A record is checked against the running process before anything is
// killed: a pid that now belongs to another process (a different start
// time, or an earlier boot) is never signalled. Where processes cannot be
// identified (no /proc), nothing is recorded.
type Registry struct {
	Dir    string
	Logger *slog.Logger // nil: no logs
}

// record is a tool's file in the Registry.
type record struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"` // clock ticks after boot, /proc/PID/stat field 22
	BootID    string `json:"bootId"`
	Tool      string `json:"tool"`
}

// Start starts cmd (made by Command) and records it. Call release once Wait
// has returned. Failing to record the tool does not fail the start: the
// tool still dies with rdsbackup where Pdeathsig exists; the failure is
// logged. A nil Registry records nothing.
func (r *Registry) Start(cmd *exec.Cmd) (release func(), err error) {
	if err := cmd.Start(); err != nil {
		return func() {}, err
	}
	if r == nil || r.Dir == "" {
		return func() {}, nil
	}
	// The tool has not been waited for, so its pid cannot be reused yet,
	// even if it has already exited.
	pid := cmd.Process.Pid
	p, err := identify(pid)
	if err != nil {
		return func() {}, nil // nothing to identify processes by
	}
	rec := p.record
	rec.Tool = filepath.Base(cmd.Path)
	path := filepath.Join(r.Dir, strconv.Itoa(pid)+".json")
	if err := writeRecord(r.Dir, path, rec); err != nil {
		r.warn("cannot record a running tool; a leftover of it would not be killed at the next start", "tool", rec.Tool, "pid", pid, "err", err)
		return func() {}, nil
	}
	return func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.warn("cannot remove a tool's record", "path", path, "err", err)
		}
	}, nil
}

func writeRecord(dir, path string, rec record) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	buf, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return os.WriteFile(path, buf, 0o600)
}

// process is a record of a running process, as identify reads it.
type process struct {
	record
	zombie bool
}

// Leftover is a tool an earlier process left running, killed by
// KillLeftovers.
type Leftover struct {
	PID  int
	Tool string
}

// KillLeftovers kills the recorded tools that still run as the very
// processes recorded — their whole process group, which Command made
// theirs — and removes every record. Call it at start, before any tool of
// this process is started with the Registry.
func (r *Registry) KillLeftovers() ([]Leftover, error) {
	entries, err := os.ReadDir(r.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read tool records: %w", err)
	}
	var killed []Leftover
	var errs []error
	for _, e := range entries {
		path := filepath.Join(r.Dir, e.Name())
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		buf, err := os.ReadFile(path)
		var rec record
		if err == nil {
			err = json.Unmarshal(buf, &rec)
		}
		if err != nil || rec.PID <= 1 {
			r.warn("ignoring an unreadable tool record", "path", path, "err", err)
		} else if now, err := identify(rec.PID); err == nil && now.StartTime == rec.StartTime && now.BootID == rec.BootID {
			// The same process: kill its group, and itself should it
			// have left the group.
			syscall.Kill(-rec.PID, syscall.SIGKILL)
			syscall.Kill(rec.PID, syscall.SIGKILL)
			waitExit(rec.PID, rec.StartTime, 5*time.Second)
			killed = append(killed, Leftover{PID: rec.PID, Tool: rec.Tool})
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return killed, errors.Join(errs...)
}

// waitExit waits, up to limit, until the process is gone or a zombie (it is
// not ours to reap).
func waitExit(pid int, start uint64, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		p, err := identify(pid)
		if err != nil || p.StartTime != start || p.zombie {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *Registry) warn(msg string, args ...any) {
	if r.Logger != nil {
		r.Logger.Warn(msg, args...)
	}
}
