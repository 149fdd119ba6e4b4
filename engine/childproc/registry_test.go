//go:build linux

package childproc

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestToolDiesWithParent SIGKILLs a process that started a tool through
// Command: the kernel kills the tool too (Pdeathsig), at once.
func TestToolDiesWithParent(t *testing.T) {
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), helperEnv+"=spawn")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		parent.Process.Kill()
		parent.Wait()
		t.Fatalf("read the tool's pid: %v", err)
	}
	tool, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(tool, syscall.SIGKILL) })
	parent.Process.Signal(syscall.SIGKILL)
	parent.Wait()
	waitGone(t, tool)
}

// TestKillLeftovers: a tool recorded by an earlier process (which died
// without removing the record) is killed, with its process group, by the
// next one's KillLeftovers, and its record removed.
func TestKillLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "children")
	earlier := &Registry{Dir: dir}
	cmd, grandchild := familyWith(t, earlier)
	files, _ := os.ReadDir(dir)
	if len(files) != 1 || files[0].Name() != strconv.Itoa(cmd.Process.Pid)+".json" {
		t.Fatalf("records: %v", files)
	}
	if fi, err := os.Stat(filepath.Join(dir, files[0].Name())); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode: %v %v", fi.Mode(), err)
	}

	killed, err := (&Registry{Dir: dir}).KillLeftovers()
	if err != nil {
		t.Fatal(err)
	}
	if len(killed) != 1 || killed[0].PID != cmd.Process.Pid || killed[0].Tool != "sh" {
		t.Errorf("killed %+v", killed)
	}
	if err := cmd.Wait(); Status(err) != "signal: killed" {
		t.Errorf("the tool: %v", err)
	}
	waitGone(t, grandchild)
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("records left: %v", files)
	}
}

// TestKillLeftoversSparesRecycledPid: a record whose pid now belongs to
// another process (another start time) kills nothing; nor does one from an
// earlier boot. Both records are removed.
func TestKillLeftoversSparesRecycledPid(t *testing.T) {
	dir := t.TempDir()
	other := exec.Command("/bin/sleep", "300")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	now, err := identify(other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string]record{
		"a.json": {PID: now.PID, StartTime: now.StartTime - 1, BootID: now.BootID, Tool: "mariadb-dump"},
		"b.json": {PID: now.PID, StartTime: now.StartTime, BootID: "another-boot", Tool: "mariadb-dump"},
	} {
		buf, _ := json.Marshal(rec)
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	killed, err := (&Registry{Dir: dir}).KillLeftovers()
	if err != nil || len(killed) != 0 {
		t.Fatalf("killed %+v, %v", killed, err)
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the process that reused the pid was signalled: %v", err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("records left: %v", files)
	}
}

// TestRegistryRelease: a tool that ran to its end leaves no record.
func TestRegistryRelease(t *testing.T) {
	dir := t.TempDir()
	r := &Registry{Dir: dir}
	cmd := Command(t.Context(), "/bin/true")
	release, err := r.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 1 {
		t.Errorf("records while it runs: %v", files)
	}
	cmd.Wait()
	release()
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("records after it ended: %v", files)
	}
	var none *Registry
	cmd = Command(t.Context(), "/bin/true")
	if release, err := none.Start(cmd); err != nil {
		t.Fatal(err)
	} else {
		cmd.Wait()
		release()
	}
}
