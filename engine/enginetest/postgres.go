package enginetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
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
func PostgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestMajor := "", -1.0
	for _, d := range dirs {
		major, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64) // "15", or "9.6"
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			continue
		}
		if major > bestMajor {
			best, bestMajor = d, major
		}
	}
	if best != "" {
		return best, nil
	}
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(pgConfig, "--bindir").Output(); err == nil {
			d := strings.TrimSpace(string(out))
			if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
				return d, nil
			}
		}
	}
	for _, name := range []string{"postgres", "initdb"} {
		if p, err := exec.LookPath(name); err == nil {
			d := filepath.Dir(p)
			if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
				return d, nil
			}
		}
	}
	return "", errors.New("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin, pg_config --bindir or PATH")
}

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
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	var acct *account
	if os.Geteuid() == 0 {
		if acct, err = lookupAccount("postgres"); err != nil {
			return nil, err
		}
	}
	root, err := makeRoot("postgres", acct)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(root, "data")
	p := &Postgres{
		Host:      "127.0.0.1",
		DataDir:   data,
		SocketDir: data,
		User:      "postgres",
		Password:  opts.Password,
		BinDir:    bin,
		LogFile:   filepath.Join(root, "postgres.log"),
		Options:   opts,
		server:    server{kind: "PostgreSQL", root: root, stopSig: syscall.SIGINT}, // SIGINT: fast shutdown
	}
	if err := p.start(acct); err != nil {
		p.destroy()
		return nil, err
	}
	return p, nil
}

func (p *Postgres) start(acct *account) error {
	if err := makeDataDir(p.DataDir, acct); err != nil {
		return err
	}
	err := templates.postgres.initDataDir("postgres", p.DataDir, acct, func(root, dir string) error {
		return runTool(root, filepath.Join(root, "initdb.log"), acct, filepath.Join(p.BinDir, "initdb"),
			"-D", dir, "-U", p.User, "-E", "UTF8", "--locale=C", "--no-sync", "--auth=trust")
	})
	if err != nil {
		return err
	}
	if err := p.writeHBA(acct); err != nil {
		return err
	}

	settings := map[string]string{
		"listen_addresses":  "127.0.0.1",
		"wal_level":         "replica",
		"max_wal_senders":   "10",
		"fsync":             "off",
		"shared_buffers":    "32MB",
		"logging_collector": "off",
	}
	for k, v := range p.Options.Settings {
		settings[k] = v
	}
	names := make([]string, 0, len(settings))
	for k := range settings {
		names = append(names, k)
	}
	sort.Strings(names)

	for try := 1; ; try++ {
		port, err := pickPort(try, p.Options.firstPort)
		if err != nil {
			return err
		}
		args := []string{"-D", p.DataDir, "-p", strconv.Itoa(port), "-k", p.SocketDir}
		for _, k := range names {
			args = append(args, "-c", k+"="+settings[k])
		}
		off := logSize(p.LogFile)
		proc, err := startProcess(p.root, p.LogFile, acct, filepath.Join(p.BinDir, "postgres"), args...)
		if err != nil {
			return err
		}
		p.Port = port
		// Wait on the socket, which is trusted, so that the password can be
		// set before the first TCP connection. If the TCP port was taken,
		// the postmaster exits.
		sock, err := sql.Open("pgx", p.socketDSN())
		if err != nil {
			proc.kill()
			return err
		}
		err = waitReady(proc, sock, p.isOurs)
		if err == nil {
			err = p.finishStart(sock)
		}
		sock.Close()
		if err == nil {
			p.mu.Lock()
			p.proc = proc
			p.mu.Unlock()
			return nil
		}
		p.closeAdmin()
		proc.kill()
		if errors.Is(err, errExited) && isBindFailure(logSince(p.LogFile, off)) && try < startTries {
			continue
		}
		return fmt.Errorf("postgres on port %d: %w\n%s", port, err, logTail(p.LogFile))
	}
}

// writeHBA writes pg_hba.conf: the socket is trusted; TCP connections from
// the loopback addresses, normal and replication alike, need the password
// (scram-sha-256) when there is one and are trusted otherwise.
func (p *Postgres) writeHBA(acct *account) error {
	method := "trust"
	if p.Password != "" {
		method = "scram-sha-256"
	}
	conf := "# written by enginetest\n" +
		"local all all trust\n" +
		"local replication all trust\n"
	for _, addr := range []string{"127.0.0.1/32", "::1/128"} {
		conf += "host all all " + addr + " " + method + "\n" +
			"host replication all " + addr + " " + method + "\n"
	}
	path := filepath.Join(p.DataDir, "pg_hba.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return err
	}
	if acct != nil {
		return os.Chown(path, int(acct.uid), int(acct.gid))
	}
	return nil
}

// socketDSN is a connection string for the socket in SocketDir.
func (p *Postgres) socketDSN() string {
	q := func(s string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'" }
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable connect_timeout=2",
		q(p.SocketDir), p.Port, q(p.User))
}

// finishStart sets the password through the socket connection sock, then
// opens the administrative pool over TCP.
func (p *Postgres) finishStart(sock *sql.DB) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p.Password != "" {
		q := "ALTER USER " + pgIdent(p.User) + " PASSWORD '" + strings.ReplaceAll(p.Password, "'", "''") + "'"
		if _, err := sock.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("set password: %w", err)
		}
	}
	admin, err := sql.Open("pgx", p.URL("postgres")+"&connect_timeout=2")
	if err != nil {
		return err
	}
	if ok, err := p.isOurs(ctx, admin); !ok {
		admin.Close()
		return fmt.Errorf("connect over TCP: %v (another server on the port?)", err)
	}
	p.mu.Lock()
	p.admin = admin
	p.mu.Unlock()
	return nil
}

// isOurs checks that the server on the port is this one.
func (p *Postgres) isOurs(ctx context.Context, db *sql.DB) (bool, error) {
	var dir string
	if err := db.QueryRowContext(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		return false, err
	}
	return filepath.Clean(dir) == filepath.Clean(p.DataDir), nil
}

// URL returns a connection URL for database db as postgres:
// postgres://postgres[:password]@127.0.0.1:port/db?sslmode=disable.
func (p *Postgres) URL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(p.User),
		Host:     p.Host + ":" + strconv.Itoa(p.Port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	if p.Password != "" {
		u.User = url.UserPassword(p.User, p.Password)
	}
	return u.String()
}

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
	return p.newDatabase(t,
		func(name string) string { return "CREATE DATABASE " + pgIdent(name) },
		func(name string) string { return "DROP DATABASE IF EXISTS " + pgIdent(name) + " WITH (FORCE)" })
}

// pgIdent quotes an identifier.
func pgIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// Bin returns the path of one of the server's tools, e.g. Bin("pg_dump"),
// of the same version as the server.
func (p *Postgres) Bin(name string) string {
	return filepath.Join(p.BinDir, name)
}

// ClientArgs returns the options that point libpq tools (psql, pg_dump,
// pg_restore, pg_basebackup...) at this server over TCP as postgres. The
// password is not among them: run the tool with ClientEnv.
func (p *Postgres) ClientArgs() []string {
	return []string{"--host=" + p.Host, "--port=" + strconv.Itoa(p.Port), "--username=" + p.User}
}

// ClientEnv returns an environment for libpq tools: the test's without PG*
// variables, plus PGPASSWORD when the server has a password and
// PGSSLMODE=disable.
func (p *Postgres) ClientEnv() []string {
	extra := []string{"PGSSLMODE=disable"}
	if p.Password != "" {
		extra = append(extra, "PGPASSWORD="+p.Password)
	}
	return clientEnv(extra...)
}

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
