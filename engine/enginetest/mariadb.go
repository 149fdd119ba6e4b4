package enginetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBOptions configures StartMariaDB.
type MariaDBOptions struct {
	// ServerID is passed as --server-id when non-zero.
	ServerID int
	// LogBin enables the binary log (--log-bin=mariadb-bin, in DataDir).
	LogBin bool
	// RootPassword, when set, becomes the password of every root account
	// (ALTER USER after the start); otherwise root has no password.
	RootPassword string
	// Args are more mariadbd options, appended after the defaults.
	Args []string

	firstPort int // the port of the first start attempt, in tests
}

// MariaDB is a running throwaway MariaDB server. Connect over TCP to
// Host:Port as User with Password, or through Socket.
type MariaDB struct {
	Host     string // always 127.0.0.1
	Port     int
	DataDir  string
	Socket   string
	User     string // always root
	Password string // root's password; empty when it has none
	LogFile  string // the server's stdout and stderr
	Options  MariaDBOptions

	server
}

// StartMariaDB initializes a data directory with mariadb-install-db (under
// Main, a copy of one made once per test binary), starts mariadbd on a free
// port and waits until it accepts connections: options --no-defaults
// --bind-address=127.0.0.1 --socket=<DataDir>/sock
// --character-set-server=utf8mb4 --skip-name-resolve, small InnoDB buffers.
// The server is stopped and its directory removed when the test ends.
func StartMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	skipUnlessServers(t, "MariaDB")
	m, err := startMariaDB(opts)
	if err != nil {
		t.Fatalf("enginetest: start MariaDB: %v", err)
	}
	t.Cleanup(m.destroy)
	return m
}

func startMariaDB(opts MariaDBOptions) (*MariaDB, error) {
	mariadbd, err := lookBin("mariadbd", "/usr/sbin/mariadbd", "/usr/libexec/mariadbd")
	if err != nil {
		return nil, err
	}
	install, err := lookBin("mariadb-install-db", "/usr/bin/mariadb-install-db")
	if err != nil {
		return nil, err
	}
	root, err := makeRoot("mariadb", nil)
	if err != nil {
		return nil, err
	}
	m := &MariaDB{
		Host:    "127.0.0.1",
		DataDir: filepath.Join(root, "data"),
		Socket:  filepath.Join(root, "data", "sock"),
		User:    "root",
		LogFile: filepath.Join(root, "mariadbd.log"),
		Options: opts,
		server:  server{kind: "MariaDB", root: root, stopSig: syscall.SIGTERM},
	}
	if err := m.start(install, mariadbd); err != nil {
		m.destroy()
		return nil, err
	}
	return m, nil
}

// Small InnoDB files and no doublewrite buffer keep the data directory at
// about 30 MB and the start fast. Commits reach the operating system (not the
// disk) before they return, so SIGKILL loses nothing.
var mariadbTuning = []string{
	"--innodb-buffer-pool-size=64M",
	"--innodb-log-file-size=16M",
	"--innodb-flush-log-at-trx-commit=2",
	"--skip-innodb-doublewrite",
}

func (m *MariaDB) start(install, mariadbd string) error {
	asRoot := os.Geteuid() == 0
	if err := makeDataDir(m.DataDir, nil); err != nil {
		return err
	}
	err := templates.mariadb.initDataDir("mariadb", m.DataDir, nil, func(root, dir string) error {
		// A private tmpdir: the shared /tmp may be cleaned by others while
		// the server keeps temporary tables there.
		tmpdir := filepath.Join(m.root, "tmp")
		if err := os.MkdirAll(tmpdir, 0o700); err != nil {
			return err
		}
		args := []string{"--no-defaults"}
		if asRoot {
			args = append(args, "--user=root")
		}
		args = append(args, "--datadir="+dir, "--auth-root-authentication-method=normal", "--skip-test-db")
		args = append(args, mariadbTuning...)
		return runTool(root, filepath.Join(root, "install.log"), nil, install, args...)
	})
	if err != nil {
		return err
	}

	for try := 1; ; try++ {
		port, err := pickPort(try, m.Options.firstPort)
		if err != nil {
			return err
		}
		// A private tmpdir: the shared /tmp may be cleaned by others while
		// the server keeps temporary tables there.
		tmpdir := filepath.Join(m.root, "tmp")
		if err := os.MkdirAll(tmpdir, 0o700); err != nil {
			return err
		}
		args := []string{"--no-defaults"}
		if asRoot {
			args = append(args, "--user=root")
		}
		args = append(args,
			"--datadir="+m.DataDir,
			"--port="+strconv.Itoa(port),
			"--bind-address=127.0.0.1",
			"--socket="+m.Socket,
			"--character-set-server=utf8mb4",
			"--skip-name-resolve",
			"--tmpdir="+tmpdir,
		)
		args = append(args, mariadbTuning...)
		if m.Options.LogBin {
			args = append(args, "--log-bin=mariadb-bin")
		}
		if m.Options.ServerID != 0 {
			args = append(args, "--server-id="+strconv.Itoa(m.Options.ServerID))
		}
		args = append(args, m.Options.Args...)

		off := logSize(m.LogFile)
		p, err := startProcess(m.root, m.LogFile, nil, mariadbd, args...)
		if err != nil {
			return err
		}
		m.Port = port
		admin, err := sql.Open("mysql", m.adminDSN())
		if err != nil {
			p.kill()
			return err
		}
		err = waitReady(p, admin, m.isOurs)
		if err == nil {
			m.mu.Lock()
			m.proc, m.admin = p, admin
			m.mu.Unlock()
			break
		}
		admin.Close()
		p.kill()
		if errors.Is(err, errExited) && isBindFailure(logSince(m.LogFile, off)) && try < startTries {
			continue
		}
		return fmt.Errorf("mariadbd on port %d: %w\n%s", port, err, logTail(m.LogFile))
	}

	if m.Options.RootPassword != "" {
		if err := m.setRootPassword(m.Options.RootPassword); err != nil {
			return fmt.Errorf("set root password: %w", err)
		}
	}
	return nil
}

// isOurs checks that the server on the port is this one.
func (m *MariaDB) isOurs(ctx context.Context, db *sql.DB) (bool, error) {
	var dir string
	if err := db.QueryRowContext(ctx, "SELECT @@datadir").Scan(&dir); err != nil {
		return false, err
	}
	return filepath.Clean(dir) == filepath.Clean(m.DataDir), nil
}

// setRootPassword gives every root account the password and reconnects the
// administrative pool with it.
func (m *MariaDB) setRootPassword(pw string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Accounts for host names (root@<hostname>) are ignored under
	// --skip-name-resolve, and ALTER USER fails on them.
	rows, err := m.admin.QueryContext(ctx, "SELECT Host FROM mysql.user WHERE User = 'root' AND Host IN ('localhost', '127.0.0.1', '::1', '%')")
	if err != nil {
		return err
	}
	var hosts []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return err
		}
		hosts = append(hosts, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, h := range hosts {
		q := "ALTER USER 'root'@" + mariadbString(h) + " IDENTIFIED BY " + mariadbString(pw)
		if _, err := m.admin.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("root@%s: %w", h, err)
		}
	}
	m.Password = pw
	admin, err := sql.Open("mysql", m.adminDSN())
	if err != nil {
		return err
	}
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		return err
	}
	m.mu.Lock()
	m.admin.Close()
	m.admin = admin
	m.mu.Unlock()
	return nil
}

// mariadbString quotes s as a string literal (with the default sql_mode, in
// which backslash escapes).
func mariadbString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`)
	return "'" + r.Replace(s) + "'"
}

// mariadbIdent quotes an identifier.
func mariadbIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

type nopLogger struct{}

func (nopLogger) Print(...any) {}

// testLogger sends the driver's messages to the test's log.
type testLogger struct{ t testing.TB }

func (l testLogger) Print(v ...any) { l.t.Log(append([]any{"mysql driver:"}, v...)...) }

func (m *MariaDB) config(db string) *mysql.Config {
	c := mysql.NewConfig()
	c.User = m.User
	c.Passwd = m.Password
	c.Net = "tcp"
	c.Addr = m.Host + ":" + strconv.Itoa(m.Port)
	c.DBName = db
	return c
}

func (m *MariaDB) adminDSN() string {
	c := m.config("")
	c.Timeout = 2 * time.Second
	c.Logger = nopLogger{} // the driver logs refused connections while the server starts
	return c.FormatDSN()
}

// DSN returns a go-sql-driver/mysql DSN for database db (empty for none):
// root:password@tcp(127.0.0.1:port)/db.
func (m *MariaDB) DSN(db string) string {
	return m.config(db).FormatDSN()
}

// DB opens a pool on database db (empty for none) as root, checks that it
// connects, and closes it when the test ends.
func (m *MariaDB) DB(t testing.TB, db string) *sql.DB {
	t.Helper()
	c := m.config(db)
	c.Logger = testLogger{t} // "closing bad idle connection" and the like
	connector, err := mysql.NewConnector(c)
	if err != nil {
		t.Fatalf("enginetest: open MariaDB %q: %v", db, err)
	}
	pool := sql.OpenDB(connector)
	t.Cleanup(func() { pool.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pool.PingContext(ctx); err != nil {
		t.Fatalf("enginetest: connect to MariaDB %q: %v", db, err)
	}
	return pool
}

// NewDatabase creates an empty database (utf8mb4) with a name derived from
// the test's, unique in the test binary, drops it when the test ends, and
// returns its name. Tests sharing a server each work in their own databases.
func (m *MariaDB) NewDatabase(t testing.TB) string {
	t.Helper()
	return m.newDatabase(t,
		func(name string) string {
			return "CREATE DATABASE " + mariadbIdent(name) + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
		},
		func(name string) string { return "DROP DATABASE IF EXISTS " + mariadbIdent(name) })
}

// ClientArgs returns the options that point the mariadb command-line tools
// (mariadb, mariadb-dump, mariadb-admin...) at this server over TCP as root,
// ignoring option files. --no-defaults comes first, as the tools require.
// The password is not among them: run the tool with ClientEnv.
func (m *MariaDB) ClientArgs() []string {
	return []string{
		"--no-defaults",
		"--protocol=TCP",
		"--host=" + m.Host,
		"--port=" + strconv.Itoa(m.Port),
		"--user=" + m.User,
		"--default-character-set=utf8mb4",
	}
}

// ClientEnv returns an environment for the mariadb command-line tools: the
// test's without MYSQL_* variables, plus MYSQL_PWD with root's password.
func (m *MariaDB) ClientEnv() []string {
	return clientEnv("MYSQL_PWD=" + m.Password)
}

// Kill SIGKILLs the server, as a crash would, and waits until it has exited.
// The data directory stays until the test ends. It panics on a shared server.
func (m *MariaDB) Kill() {
	m.checkNotShared("Kill")
	m.kill()
}

// Stop shuts the server down cleanly (SIGTERM) and waits until it has exited,
// SIGKILLing it after a minute. The data directory stays until the test ends.
// It is called when the test ends; it panics on a shared server.
func (m *MariaDB) Stop() {
	m.checkNotShared("Stop")
	m.stop()
}
