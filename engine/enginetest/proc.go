package enginetest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	startTimeout = 30 * time.Second // until a started server accepts connections
	stopTimeout  = 60 * time.Second // for a clean shutdown before SIGKILL
	setupTimeout = 2 * time.Minute  // for mariadb-install-db and initdb
	startTries   = 5                // starts on a fresh port after a bind failure
)

// account is the user a server runs as when the tests run as root and the
// server refuses to (PostgreSQL).
type account struct {
	name     string
	uid, gid uint32
}

func lookupAccount(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up user %s (PostgreSQL refuses to run as root): %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	return &account{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

// skipUnlessServers skips the test where servers cannot or should not be
// started.
func skipUnlessServers(t testing.TB, what string) {
	t.Helper()
	if !supported {
		t.Skipf("enginetest: starting %s needs a Unix system", what)
	}
	if testing.Short() {
		t.Skipf("enginetest: -short: not starting %s", what)
	}
}

// makeRoot creates the directory that holds one server's data, socket and
// log. A server running as acct must be able to reach it; Unix socket paths
// are limited to about 100 bytes, so a long TMPDIR is not used either.
func makeRoot(kind string, acct *account) (string, error) {
	base := os.TempDir()
	if len(base) > 60 || (acct != nil && !traversableBy(base, acct)) {
		base = "/tmp"
	}
	if acct != nil && !traversableBy(base, acct) {
		return "", fmt.Errorf("no temporary directory that user %s can reach (tried %s)", acct.name, base)
	}
	root, err := os.MkdirTemp(base, "enginetest-"+kind+"-")
	if err != nil {
		return "", err
	}
	if acct != nil {
		if err := os.Chmod(root, 0o755); err != nil {
			os.RemoveAll(root)
			return "", err
		}
	}
	return root, nil
}

// freePort returns a port on 127.0.0.1 that was free a moment ago. Another
// process may take it before the server binds it; the starters retry.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pickPort returns the port for start attempt try: first for the first
// attempt when set, else a free one.
func pickPort(try, first int) (int, error) {
	if try == 1 && first != 0 {
		return first, nil
	}
	return freePort()
}

// isBindFailure reports whether a server log says its port was taken.
func isBindFailure(log string) bool {
	return strings.Contains(log, "Address already in use") ||
		strings.Contains(log, "Bind on TCP/IP port")
}

// childEnv is the environment of the servers and their setup tools: the
// test's, without the client and locale settings that would change their
// behaviour or messages.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "PG"), strings.HasPrefix(name, "MYSQL"), strings.HasPrefix(name, "MARIADB"),
			strings.HasPrefix(name, "LC_"), name == "LANG", name == "LANGUAGE":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// process is a started server or tool.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, set before done is closed
}

// startProcess starts name with args in dir, appending its output to
// logPath, in its own process group, as acct when it is set.
func startProcess(dir, logPath string, acct *account, name string, args ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	fmt.Fprintf(f, "==> %s %s\n", name, strings.Join(args, " "))
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = procAttr(acct)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(name), err)
	}
	p := &process{name: filepath.Base(name), cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to exit.
func (p *process) wait(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// kill SIGKILLs the process with its group and descendants and waits until
// they are gone.
func (p *process) kill() {
	if p.exited() {
		return
	}
	kids := killTree(p.cmd.Process)
	<-p.done
	waitGone(kids, 10*time.Second)
}

// stop sends sig and waits for a clean exit, killing the process if it does
// not come.
func (p *process) stop(sig syscall.Signal) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	if !p.wait(stopTimeout) {
		p.kill()
	}
}

// runTool runs a setup tool to completion; the error carries its output.
func runTool(dir, logPath string, acct *account, name string, args ...string) error {
	p, err := startProcess(dir, logPath, acct, name, args...)
	if err != nil {
		return err
	}
	if !p.wait(setupTimeout) {
		p.kill()
		return fmt.Errorf("%s did not finish within %v\n%s", p.name, setupTimeout, logTail(logPath))
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w\n%s", p.name, p.err, logTail(logPath))
	}
	return nil
}

// logTail returns the last lines of a log file, for failure messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return "--- " + path + " (tail) ---\n" + string(b)
}

// lookBin finds a server binary in PATH or in the given fixed locations.
func lookBin(name string, also ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, p := range also {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s", name, strings.Join(also, ", "))
}

var errExited = errors.New("server exited")
