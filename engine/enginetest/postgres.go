package enginetest

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/rdsbackup/rdsbackup/engine/localserver"
)

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// Password, when set, is the password of the superuser postgres, and TCP
	// connections (including replication connections) must present it
	// (scram-sha-256); connections through the socket are trusted. Without
	// it, every connection is trusted.
	Password string
	// Settings are more server settings (-c name=value), applied after the
	// defaults, e.g. {"archive_mode": "on"}.
	Settings map[string]string

	firstPort int // the port of the first start attempt, in tests
}

// Postgres is a running throwaway PostgreSQL server. Connect over TCP to
// Host:Port as User with Password, or through the socket in SocketDir.
//
// It runs with wal_level=replica and max_wal_senders=10, and accepts
// replication connections from 127.0.0.1, so pg_basebackup works against it.
// fsync is off: SIGKILL loses nothing, a machine crash would.
type Postgres struct {
	Host      string // always 127.0.0.1
	Port      int
	DataDir   string
	SocketDir string // the data directory
	User      string // always postgres
	Password  string
	BinDir    string // where initdb, postgres, pg_dump... of this server's version are
	LogFile   string // the server's stdout and stderr
	Options   PostgresOptions

	server
}

// PostgresBinDir returns the directory of the newest installed PostgreSQL
// server binaries: /usr/lib/postgresql/<major>/bin on Debian, or else where
// pg_config --bindir, initdb or postgres in PATH say.
func PostgresBinDir() (string, error) { return localserver.PostgresBinDir() }

// StartPostgres initializes a data directory with initdb (UTF8, locale C;
// under Main, a copy of one made once per test binary), starts postgres on a
// free port and waits until it accepts connections. When the test runs as
// root, both run as the user postgres. The server is stopped and its
// directory removed when the test ends.
func StartPostgres(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	skipUnlessServers(t, "PostgreSQL")
	p, err := startPostgres(opts)
	if err != nil {
		t.Fatalf("enginetest: start PostgreSQL: %v", err)
	}
	t.Cleanup(p.destroy)
	return p
}

func startPostgres(opts PostgresOptions) (*Postgres, error) {
	l, err := localserver.StartPostgres(context.Background(), localserver.PostgresOptions{
		Prefix:   dirPrefix,
		Port:     opts.firstPort,
		Password: opts.Password,
		Settings: opts.Settings,
		Template: template(&templates.postgres),
	})
	if err != nil {
		return nil, err
	}
	return &Postgres{
		Host:      l.Host,
		Port:      l.Port,
		DataDir:   l.DataDir,
		SocketDir: l.SocketDir,
		User:      l.User,
		Password:  l.Password,
		BinDir:    l.BinDir,
		LogFile:   l.LogFile,
		Options:   opts,
		server:    server{kind: "PostgreSQL", root: l.Dir, local: l},
	}, nil
}

// ls is the localserver view of p's connection fields.
func (p *Postgres) ls() *localserver.Postgres {
	return &localserver.Postgres{Host: p.Host, Port: p.Port, User: p.User, Password: p.Password, BinDir: p.BinDir}
}

// URL returns a connection URL for database db as postgres:
// postgres://postgres[:password]@127.0.0.1:port/db?sslmode=disable.
func (p *Postgres) URL(db string) string { return p.ls().URL(db) }

// DB opens a pool (pgx's database/sql driver) on database db, checks that it
// connects, and closes it when the test ends.
func (p *Postgres) DB(t testing.TB, db string) *sql.DB {
	t.Helper()
	pool, err := sql.Open("pgx", p.URL(db))
	if err != nil {
		t.Fatalf("enginetest: open PostgreSQL %q: %v", db, err)
	}
	t.Cleanup(func() { pool.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pool.PingContext(ctx); err != nil {
		t.Fatalf("enginetest: connect to PostgreSQL %q: %v", db, err)
	}
	return pool
}

// NewDatabase creates an empty database with a name derived from the test's,
// unique in the test binary, drops it when the test ends, and returns its
// name. Tests sharing a server each work in their own databases.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	return p.newDatabase(t)
}

// Bin returns the path of one of the server's tools, e.g. Bin("pg_dump"),
// of the same version as the server.
func (p *Postgres) Bin(name string) string { return p.ls().Bin(name) }

// ClientArgs returns the options that point libpq tools (psql, pg_dump,
// pg_restore, pg_basebackup...) at this server over TCP as postgres. The
// password is not among them: run the tool with ClientEnv.
func (p *Postgres) ClientArgs() []string { return p.ls().ClientArgs() }

// ClientEnv returns an environment for libpq tools: the test's without PG*
// variables, plus PGPASSWORD when the server has a password and
// PGSSLMODE=disable.
func (p *Postgres) ClientEnv() []string { return p.ls().ClientEnv() }

// Kill SIGKILLs the postmaster and every backend, as a crash would, and waits
// until they have exited. The data directory stays until the test ends. It
// panics on a shared server.
func (p *Postgres) Kill() {
	p.checkNotShared("Kill")
	p.kill()
}

// Stop shuts the server down cleanly (fast shutdown: SIGINT) and waits until
// it has exited, SIGKILLing it after a minute. The data directory stays until
// the test ends. It is called when the test ends; it panics on a shared
// server.
func (p *Postgres) Stop() {
	p.checkNotShared("Stop")
	p.stop()
}

// Start starts the server again after Stop or Kill, on the same data
// directory and port, and waits until it accepts connections. It panics on
// a shared server.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	p.checkNotShared("Start")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.local.(*localserver.Postgres).Start(ctx); err != nil {
		t.Fatalf("enginetest: start PostgreSQL again: %v", err)
	}
}
