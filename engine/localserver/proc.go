package localserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rdsbackup/rdsbackup/engine/childproc"
)

const (
	startTimeout = 30 * time.Second // until a started server accepts connections
	stopTimeout  = 60 * time.Second // for a clean shutdown before SIGKILL
	setupTimeout = 2 * time.Minute  // for mariadb-install-db and initdb
	startTries   = 5                // starts on a fresh port after a bind failure

	// maxSocketPath is the longest Unix socket path accepted (the kernel's
	// limit is 104 to 108 bytes, depending on the system).
	maxSocketPath = 100

	// postgresUser runs initdb and postgres when the caller is root.
	postgresUser = "postgres"
)

// Supported reports whether servers can be started here (a Unix system).
const Supported = supported

// errUnsupported is returned by the starters where Supported is false.
var errUnsupported = errors.New("localserver: starting database servers needs a Unix system")

// NotInstalledError is returned when a server binary is not installed.
type NotInstalledError struct {
	Program string // "mariadbd", "mariadb-install-db", "postgres"
	Package string // the Debian package that installs it: "mariadb-server", "postgresql"
	Looked  string // where it was looked for
}

func (e *NotInstalledError) Error() string {
	return fmt.Sprintf("%s not found in %s (install the Debian package %s)", e.Program, e.Looked, e.Package)
}

// lookBin finds a server binary in PATH or in the given fixed locations.
func lookBin(name, pkg string, also ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, p := range also {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &NotInstalledError{Program: name, Package: pkg, Looked: strings.Join(append([]string{"PATH"}, also...), ", ")}
}

// account is the user a server runs as when the caller is root and the
// server refuses to run as root (PostgreSQL).
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

// postgresAccount is the account PostgreSQL runs as: nil when the caller is
// not root (it runs as the caller).
func postgresAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	return lookupAccount(postgresUser)
}

// TempDir returns the directory in which servers' directories are made when
// Options.Dir is empty: os.TempDir(), or /tmp when that path is too long for
// the servers' Unix sockets or, when the caller is root, cannot be reached by
// the postgres user. A caller making a directory to pass as Options.Dir can
// make it here for the same reasons.
func TempDir() string {
	acct, _ := postgresAccount()
	return tempBase(acct)
}

// tempBase is TempDir for a server running as acct (nil: as the caller).
func tempBase(acct *account) string {
	base := os.TempDir()
	if len(base) > 60 || (acct != nil && !traversableBy(base, acct)) {
		base = "/tmp"
	}
	return base
}

// makeRoot creates a new temporary directory (prefix+kind+"-"+random) that
// holds one server's data, socket and log, reachable by acct when it is set.
func makeRoot(prefix, kind string, acct *account) (string, error) {
	base := tempBase(acct)
	if acct != nil && !traversableBy(base, acct) {
		return "", fmt.Errorf("no temporary directory that user %s can reach (tried %s)", acct.name, base)
	}
	if prefix == "" {
		prefix = "localserver-"
	}
	root, err := os.MkdirTemp(base, prefix+kind+"-")
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

// makeServerDir makes the directory of a server: dir when set (created, or
// existing and empty), else a new temporary one. A server running as acct
// must be able to reach it.
func makeServerDir(dir, prefix, kind string, acct *account) (string, error) {
	if dir == "" {
		return makeRoot(prefix, kind, acct)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o700); errors.Is(err, os.ErrExist) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return "", err
		}
		if len(entries) > 0 {
			return "", fmt.Errorf("%s exists and is not empty", dir)
		}
	} else if err != nil {
		return "", err
	}
	if acct != nil {
		if err := os.Chmod(dir, 0o755); err != nil {
			return "", err
		}
		if !traversableBy(filepath.Dir(dir), acct) {
			os.RemoveAll(dir)
			return "", fmt.Errorf("user %s cannot reach %s (PostgreSQL refuses to run as root, so it runs as %s): use a directory whose parents everyone may search, e.g. in %s",
				acct.name, dir, acct.name, TempDir())
		}
	}
	return dir, nil
}

// checkSocketPath refuses socket paths the kernel would refuse.
func checkSocketPath(path string) error {
	if len(path) > maxSocketPath {
		return fmt.Errorf("the socket path %s is longer than %d bytes, too long for a Unix socket: use a shorter directory", path, maxSocketPath)
	}
	return nil
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

// IsBindFailure reports whether a server log says the server could not bind
// its port (another process had taken it).
func IsBindFailure(log string) bool {
	return strings.Contains(log, "Address already in use") ||
		strings.Contains(log, "Bind on TCP/IP port")
}

// childEnv is the environment of the servers and their setup tools: of the
// caller's variables only PATH, TMPDIR and TZ (childproc.Env's, without the
// locale), and LC_ALL=C so that their messages are the same everywhere.
// Nothing else is inherited: the caller (rdsbackup serve, for its clones)
// holds secrets in its environment, and a child's environment can be read
// by any process of the same user.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if childproc.InheritedVariable(name) && name != "LANG" && name != "LANGUAGE" && !strings.HasPrefix(name, "LC_") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

// clientEnv is the environment for client tools (mariadb, pg_dump...) run
// against a server: the caller's, without settings of the client tools' own
// that could point them elsewhere, plus extra.
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
// The tool is killed when ctx is done.
func runTool(ctx context.Context, dir, logPath string, acct *account, name string, args ...string) error {
	p, err := startProcess(dir, logPath, acct, name, args...)
	if err != nil {
		return err
	}
	t := time.NewTimer(setupTimeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.kill()
		return fmt.Errorf("%s did not finish within %v\n%s", p.name, setupTimeout, LogTail(logPath))
	case <-ctx.Done():
		p.kill()
		return fmt.Errorf("%s: %w", p.name, ctx.Err())
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w\n%s", p.name, p.err, LogTail(logPath))
	}
	return nil
}

// LogTail returns the last lines (at most about 4 KB) of a log file, headed
// by its path, for failure messages.
func LogTail(path string) string {
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

// WaitGone waits until none of the processes pids is alive (a zombie counts
// as gone), and reports false if some still are after timeout. Outside Linux
// it cannot tell and returns true at once.
func WaitGone(pids []int, timeout time.Duration) bool { return waitGone(pids, timeout) }

var errExited = errors.New("server exited")

// bindAddress is the address a server listens on: bind, or 127.0.0.1.
func bindAddress(bind string) string {
	if bind == "" {
		return "127.0.0.1"
	}
	return bind
}

// connectHost is where a client on this machine reaches a server bound to
// bind: the address itself, or the loopback for a wildcard.
func connectHost(bind string) string {
	ip := net.ParseIP(bindAddress(bind))
	if ip != nil && ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return bindAddress(bind)
}

// isLoopback reports whether a server bound to bind is reachable from this
// machine only.
func isLoopback(bind string) bool {
	ip := net.ParseIP(bindAddress(bind))
	return ip != nil && ip.IsLoopback()
}

// existingServerDir checks the directory of a server started again on its
// data (Options.Existing).
func existingServerDir(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("localserver: Existing needs Dir")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(filepath.Join(dir, "data")); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s holds no data directory of a server", dir)
	}
	return dir, nil
}

// CheckPostgresParent reports whether a PostgreSQL server's directory can be
// made in dir: when the caller is root the server runs as the postgres
// user, who must be able to search dir and every parent. A dir not made
// yet is judged by its nearest existing parent: the callers make the
// missing directories searchable by everyone.
func CheckPostgresParent(dir string) error {
	acct, err := postgresAccount()
	if err != nil || acct == nil {
		return err
	}
	existing := filepath.Clean(dir)
	for {
		if _, err := os.Stat(existing); err == nil || !errors.Is(err, fs.ErrNotExist) || existing == filepath.Dir(existing) {
			break
		}
		existing = filepath.Dir(existing)
	}
	if !traversableBy(existing, acct) {
		return fmt.Errorf("user %s cannot reach %s (PostgreSQL refuses to run as root, so it runs as %s): use a directory whose parents everyone may search, e.g. in %s",
			acct.name, dir, acct.name, TempDir())
	}
	return nil
}

// MakePostgresDataDir makes a server's directory dir (created, or existing
// and empty) and an empty data directory in it for a restored PostgreSQL
// data directory, owned by the user the server will run as; start the
// server on it with Existing. It returns the data directory's path.
func MakePostgresDataDir(dir string) (string, error) {
	acct, err := postgresAccount()
	if err != nil {
		return "", err
	}
	if dir, err = makeServerDir(dir, "", "postgres", acct); err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data")
	if err := makeDataDir(data, acct); err != nil {
		return "", err
	}
	return data, nil
}
