package localserver

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The servers' behaviour is tested through engine/enginetest, which wraps
// this package; these tests cover what only this package offers: a given
// directory, templates of its caller's, errors naming packages.

func skipUnlessServers(t *testing.T) {
	t.Helper()
	if !Supported {
		t.Skip("needs a Unix system")
	}
	if testing.Short() {
		t.Skip("-short: not starting servers")
	}
}

// testParent makes a directory for servers' directories that the postgres
// user can enter when the test runs as root, removed at the end.
func testParent(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(TempDir(), "localserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func closed(t *testing.T, port int) {
	t.Helper()
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections", port)
	}
}

func TestNotInstalledError(t *testing.T) {
	_, err := lookBin("no-such-server-binary", "some-package", "/nonexistent/no-such-server-binary")
	var nie *NotInstalledError
	if !errors.As(err, &nie) || nie.Package != "some-package" || nie.Program != "no-such-server-binary" {
		t.Fatalf("got %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "install the Debian package some-package") || !strings.Contains(msg, "/nonexistent/no-such-server-binary") {
		t.Errorf("message %q", msg)
	}
}

func TestMariaDBInGivenDir(t *testing.T) {
	skipUnlessServers(t)
	t.Parallel()
	ctx := t.Context()
	parent := testParent(t)
	dir := filepath.Join(parent, "mariadb")
	m, err := StartMariaDB(ctx, MariaDBOptions{Dir: dir, RootPassword: "pw ' \\ x"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Remove()
	if m.Dir != dir || m.DataDir != filepath.Join(dir, "data") || m.Port == 0 || m.Pid() == 0 || !m.Running() {
		t.Fatalf("%+v", m)
	}
	if err := m.CreateDatabase(ctx, "sample db"); err != nil {
		t.Fatal(err)
	}
	db, err := m.Open(ctx, "sample db")
	if err != nil {
		t.Fatal(err)
	}
	var name string
	if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&name); err != nil || name != "sample db" {
		t.Errorf("database %q, %v", name, err)
	}
	db.Close()

	// A directory that is not empty is refused, and left alone.
	if _, err := StartMariaDB(ctx, MariaDBOptions{Dir: parent}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("start in a non-empty directory: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}

	m.Stop()
	if m.Running() {
		t.Error("running after Stop")
	}
	closed(t, m.Port)
	if err := m.CreateDatabase(ctx, "late"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("CreateDatabase after Stop: %v", err)
	}
	if _, err := os.Stat(m.DataDir); err != nil {
		t.Errorf("data directory after Stop: %v", err)
	}
	m.Remove()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory after Remove: %v", err)
	}
}

func TestPostgresTemplate(t *testing.T) {
	skipUnlessServers(t)
	t.Parallel()
	ctx := t.Context()
	parent := testParent(t)
	var tp Template
	defer tp.Remove()
	var servers []*Postgres
	for i, pw := range []string{"first", ""} {
		p, err := StartPostgres(ctx, PostgresOptions{Dir: filepath.Join(parent, "pg"+strconv.Itoa(i)), Password: pw, Template: &tp})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Remove()
		servers = append(servers, p)
		db, err := p.Open(ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		var dir string
		if err := db.QueryRowContext(ctx, "SHOW data_directory").Scan(&dir); err != nil || dir != p.DataDir {
			t.Errorf("server %d: data directory %q, %v", i, dir, err)
		}
		db.Close()
	}
	if tp.Dir() == "" || !strings.HasPrefix(filepath.Base(tp.Dir()), "localserver-postgres-template-") {
		t.Errorf("template directory %q", tp.Dir())
	}
	// The second server has no password, the first one has.
	if _, err := (&Postgres{Host: "127.0.0.1", Port: servers[0].Port, User: "postgres"}).Open(ctx, "postgres"); err == nil {
		t.Error("connected to the first server without its password")
	}

	// A PostgreSQL template cannot start MariaDB.
	if _, _, err := MariaDBBinaries(); err == nil {
		_, err := StartMariaDB(ctx, MariaDBOptions{Dir: filepath.Join(parent, "m"), Template: &tp})
		if err == nil || !strings.Contains(err.Error(), "template holds a postgres") {
			t.Errorf("MariaDB from a PostgreSQL template: %v", err)
		}
		if _, err := os.Stat(filepath.Join(parent, "m")); !os.IsNotExist(err) {
			t.Errorf("directory of the failed start: %v", err)
		}
	}

	for _, p := range servers {
		p.Kill()
		closed(t, p.Port)
	}
	dir := tp.Dir()
	tp.Remove()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("template after Remove: %v", err)
	}
}

// TestPostgresUnreachableDir: as root, PostgreSQL runs as postgres, who must
// be able to reach its directory; the error says so.
func TestPostgresUnreachableDir(t *testing.T) {
	skipUnlessServers(t)
	if os.Geteuid() != 0 {
		t.Skip("only root hands the server to the postgres user")
	}
	t.Parallel()
	parent := testParent(t)
	private := filepath.Join(parent, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := StartPostgres(context.Background(), PostgresOptions{Dir: filepath.Join(private, "pg")})
	if err == nil || !strings.Contains(err.Error(), "user postgres cannot reach") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(private, "pg")); !os.IsNotExist(err) {
		t.Errorf("directory of the failed start: %v", err)
	}
}

// TestPostgresStopStart stops a server and starts it again: same port, data
// kept, password still required.
func TestPostgresStopStart(t *testing.T) {
	skipUnlessServers(t)
	t.Parallel()
	ctx := t.Context()
	p, err := StartPostgres(ctx, PostgresOptions{Dir: filepath.Join(testParent(t), "pg"), Password: "again"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Remove()
	if err := p.CreateDatabase(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err == nil {
		t.Error("Start on a running server succeeded")
	}
	port := p.Port
	p.Stop()
	closed(t, port)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Port != port || !p.Running() {
		t.Errorf("after Start: port %d (was %d), running %v", p.Port, port, p.Running())
	}
	db, err := p.Open(ctx, "kept")
	if err != nil {
		t.Fatalf("the database made before the restart: %v", err)
	}
	db.Close()
	if _, err := (&Postgres{Host: "127.0.0.1", Port: port, User: "postgres"}).Open(ctx, "postgres"); err == nil {
		t.Error("connected without the password after the restart")
	}
}
