package enginetest

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rdsbackup/rdsbackup/engine/localserver"
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
	l, err := localserver.StartMariaDB(context.Background(), localserver.MariaDBOptions{
		Prefix:       dirPrefix,
		Port:         opts.firstPort,
		ServerID:     opts.ServerID,
		LogBin:       opts.LogBin,
		RootPassword: opts.RootPassword,
		Args:         opts.Args,
		Template:     template(&templates.mariadb),
	})
	if err != nil {
		return nil, err
	}
	return &MariaDB{
		Host:     l.Host,
		Port:     l.Port,
		DataDir:  l.DataDir,
		Socket:   l.Socket,
		User:     l.User,
		Password: l.Password,
		LogFile:  l.LogFile,
		Options:  opts,
		server:   server{kind: "MariaDB", root: l.Dir, local: l},
	}, nil
}

// mariadbIdent quotes an identifier.
func mariadbIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// testLogger sends the driver's messages to the test's log.
type testLogger struct{ t testing.TB }

func (l testLogger) Print(v ...any) { l.t.Log(append([]any{"mysql driver:"}, v...)...) }

// ls is the localserver view of m's connection fields.
func (m *MariaDB) ls() *localserver.MariaDB {
	return &localserver.MariaDB{Host: m.Host, Port: m.Port, User: m.User, Password: m.Password}
}

func (m *MariaDB) config(db string) *mysql.Config { return m.ls().Config(db) }

// DSN returns a go-sql-driver/mysql DSN for database db (empty for none):
// root:password@tcp(127.0.0.1:port)/db.
func (m *MariaDB) DSN(db string) string { return m.ls().DSN(db) }

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
	return m.newDatabase(t)
}

// ClientArgs returns the options that point the mariadb command-line tools
// (mariadb, mariadb-dump, mariadb-admin...) at this server over TCP as root,
// ignoring option files. --no-defaults comes first, as the tools require.
// The password is not among them: run the tool with ClientEnv.
func (m *MariaDB) ClientArgs() []string { return m.ls().ClientArgs() }

// ClientEnv returns an environment for the mariadb command-line tools: the
// test's without MYSQL_* variables, plus MYSQL_PWD with root's password.
func (m *MariaDB) ClientEnv() []string { return m.ls().ClientEnv() }

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

// Start starts the server again after Stop or Kill, on the same data
// directory and port. It panics on a shared server.
func (m *MariaDB) Start(t testing.TB) {
	t.Helper()
	m.checkNotShared("Start")
	l, ok := m.local.(*localserver.MariaDB)
	if !ok {
		t.Fatal("enginetest: Start on a MariaDB made by hand")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Start(ctx); err != nil {
		t.Fatalf("enginetest: start MariaDB again: %v", err)
	}
}
