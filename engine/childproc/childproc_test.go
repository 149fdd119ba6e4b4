//go:build unix

package childproc

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// family starts a shell through Command that starts a grandchild (a long
// sleep holding the shell's stdout and stderr) and returns the
// grandchild's pid, once both run.
func family(t *testing.T, ctx context.Context) (*exec.Cmd, int) {
	t.Helper()
	return familyOf(t, ctx, nil)
}

// familyWith is family started through a Registry.
func familyWith(t *testing.T, r *Registry) (*exec.Cmd, int) {
	t.Helper()
	return familyOf(t, t.Context(), r)
}

func familyOf(t *testing.T, ctx context.Context, r *Registry) (*exec.Cmd, int) {
	t.Helper()
	cmd := Command(ctx, "/bin/sh", "-c", `sleep 300 & echo $!; wait`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(cmd); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		Kill(cmd)
		cmd.Wait()
		t.Fatalf("read the grandchild's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	go io.Copy(io.Discard, out)
	return cmd, pid
}

// waitGone waits until pid no longer runs (it may linger as a zombie until
// its new parent reaps it).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH || zombie(pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func zombie(pid int) bool {
	out, err := exec.Command("ps", "-o", "stat=", "-p", strconv.Itoa(pid)).Output()
	return err == nil && strings.HasPrefix(strings.TrimSpace(string(out)), "Z")
}

// timedWait waits for cmd, failing the test should that take as long as
// WaitDelay: the whole group must be gone, pipes closed, well before.
func timedWait(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	start := time.Now()
	err := cmd.Wait()
	if d := time.Since(start); d >= WaitDelay/2 {
		t.Errorf("Wait took %v: something kept the pipes open", d)
	}
	return err
}

func TestCancelKillsGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cmd, grandchild := family(t, ctx)
	if cmd.SysProcAttr == nil || !cmd.SysProcAttr.Setpgid {
		t.Error("the tool does not get a process group of its own")
	}
	if pgid, err := syscall.Getpgid(cmd.Process.Pid); err != nil || pgid != cmd.Process.Pid {
		t.Errorf("process group %d, %v; want %d", pgid, err, cmd.Process.Pid)
	}
	cancel()
	err := timedWait(t, cmd)
	var x *exec.ExitError
	if !errors.As(err, &x) || x.ExitCode() != -1 {
		t.Errorf("Wait after cancel: %v", err)
	}
	if s := Status(err); s != "signal: killed" {
		t.Errorf("status %q", s)
	}
	waitGone(t, grandchild)
}

func TestKillKillsGroup(t *testing.T) {
	cmd, grandchild := family(t, t.Context())
	Kill(cmd)
	err := timedWait(t, cmd)
	te := &ToolError{Tool: "sh", Err: err}
	if te.ExitCode() != -1 || Status(err) != "signal: killed" {
		t.Errorf("after Kill: %v, exit code %d", err, te.ExitCode())
	}
	waitGone(t, grandchild)
}

func TestKillNotStarted(t *testing.T) {
	cmd := Command(t.Context(), "/bin/true")
	Kill(cmd) // no process: nothing to do, no panic
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
}

func TestToolErrorExitStatus(t *testing.T) {
	cmd := Command(t.Context(), "/bin/sh", "-c", `echo "some noise" >&2; echo "it broke" >&2; exit 3`)
	tail := NewTail(12)
	cmd.Stderr = tail
	err := cmd.Run()
	if err == nil {
		t.Fatal("no error")
	}
	te := &ToolError{Tool: "sh", Err: err, Stderr: tail.Text()}
	if got, want := te.Error(), "sh: exit status 3: …it broke"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if te.ExitCode() != 3 {
		t.Errorf("exit code %d", te.ExitCode())
	}
	if s := Status(err); s != "exit status 3" {
		t.Errorf("status %q", s)
	}
	var x *exec.ExitError
	if !errors.As(te, &x) || x.ExitCode() != 3 {
		t.Errorf("the exit error is not in the chain: %v", x)
	}
	// No stderr: no trailing colon.
	if got := (&ToolError{Tool: "sh", Err: err}).Error(); got != "sh: exit status 3" {
		t.Errorf("Error() without stderr = %q", got)
	}
}

func TestToolErrorNotExit(t *testing.T) {
	err := errors.New("broken pipe")
	te := &ToolError{Tool: "x", Err: err}
	if te.ExitCode() != -1 || Status(err) != "broken pipe" || !errors.Is(te, err) {
		t.Errorf("exit code %d, status %q", te.ExitCode(), Status(err))
	}
}
