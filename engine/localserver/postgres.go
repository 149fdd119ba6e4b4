package localserver

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
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// Dir is the server's directory, for its data directory (Dir/data, which
	// holds the socket too) and log. It is created, or must be empty. When
	// the caller is root the server runs as the user postgres, who must be
	// able to reach Dir. Empty: a new directory in TempDir, named Prefix +
	// "postgres-" + random.
	Dir string
	// Prefix names the directory made when Dir is empty (default
	// "localserver-").
	Prefix string
	// Port is the port of the first start attempt; when it is taken, or
	// zero, the server gets a free one.
	Port int
	// Password, when set, is the password of the superuser postgres, and TCP
	// connections (including replication connections) must present it
	// (scram-sha-256); connections through the socket are trusted. Without
	// it, every connection is trusted.
	Password string
	// Settings are more server settings (-c name=value), applied after the
	// defaults, e.g. {"archive_mode": "on"}.
	Settings map[string]string
	// Template, when set, provides the data directory (see Template).
	Template *Template
	// Bind is the address the server listens on (default 127.0.0.1). On
	// any other address, TCP connections from anywhere are accepted with
	// the password (and refused without one).
	Bind string
	// ExactPort makes the start fail when Port is taken, instead of
	// moving to a free port.
	ExactPort bool
	// Existing starts the server on the data directory that an earlier
	// StartPostgres with the same Dir left there: nothing is initialized.
	Existing bool
}

// Postgres is a running throwaway PostgreSQL server. Connect over TCP to
// Host:Port as User with Password, or through the socket in SocketDir.
//
// It runs with wal_level=replica and max_wal_senders=10, and accepts
// replication connections from 127.0.0.1, so pg_basebackup works against it.
// fsync is off: SIGKILL loses nothing, a machine crash would.
type Postgres struct {
	Host      string // where to connect: Options.Bind, or 127.0.0.1 for a wildcard
	Port      int
	Dir       string // the server's directory (Options.Dir or the one made)
	DataDir   string
	SocketDir string // the data directory
	User      string // always postgres
	Password  string
	BinDir    string // where initdb, postgres, pg_dump... of this server's version are
	LogFile   string // the server's stdout and stderr
	Options   PostgresOptions

	srv server
}

// PostgresBinDir returns the directory of the newest installed PostgreSQL
// server binaries: /usr/lib/postgresql/<major>/bin on Debian, or else where
// pg_config --bindir, initdb or postgres in PATH say. When there is none the
// error is a *NotInstalledError.
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
	return "", &NotInstalledError{Program: "postgres", Package: "postgresql", Looked: "/usr/lib/postgresql/*/bin, pg_config --bindir, PATH"}
}

// StartPostgres initializes a data directory with initdb (UTF8, locale C;
// or copies opts.Template), starts postgres and waits until it accepts
// connections. When the caller is root, both run as the user postgres. ctx
// bounds the start only: the server runs until Stop, Kill or Remove. On
// error nothing is left running and the server's directory is removed.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if !supported {
		return nil, errUnsupported
	}
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	acct, err := postgresAccount()
	if err != nil {
		return nil, err
	}
	var dir string
	if opts.Existing {
		dir, err = existingServerDir(opts.Dir)
	} else {
		dir, err = makeServerDir(opts.Dir, opts.Prefix, "postgres", acct)
	}
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	p := &Postgres{
		Host:      connectHost(opts.Bind),
		Dir:       dir,
		DataDir:   data,
		SocketDir: data,
		User:      "postgres",
		Password:  opts.Password,
		BinDir:    bin,
		LogFile:   filepath.Join(dir, "postgres.log"),
		Options:   opts,
		srv:       server{kind: "PostgreSQL", dir: dir, stopSig: syscall.SIGINT}, // SIGINT: fast shutdown
	}
	if err := checkSocketPath(filepath.Join(p.SocketDir, ".s.PGSQL.65535")); err != nil {
		p.srv.remove()
		return nil, err
	}
	if opts.Existing {
		// Nothing of it is removed on failure: the data is the caller's.
		p.Port = opts.Port
		// A data directory restored from a server whose configuration
		// lives elsewhere (Debian's /etc/postgresql) has none.
		conf := filepath.Join(data, "postgresql.conf")
		if _, err := os.Stat(conf); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(conf, []byte("# written by localserver\n"), 0o600); err != nil {
				return nil, err
			}
			if acct != nil {
				if err := os.Chown(conf, int(acct.uid), int(acct.gid)); err != nil {
					return nil, err
				}
			}
		}
		if err := p.writeHBA(acct); err != nil {
			return nil, err
		}
		if err := p.run(ctx, acct, true); err != nil {
			return nil, err
		}
		return p, nil
	}
	if err := p.start(ctx, acct); err != nil {
		p.srv.remove()
		return nil, err
	}
	return p, nil
}

func (p *Postgres) start(ctx context.Context, acct *account) error {
	if err := makeDataDir(p.DataDir, acct); err != nil {
		return err
	}
	err := p.Options.Template.initDataDir(ctx, p.Options.Prefix, "postgres", p.DataDir, acct, func(ctx context.Context, root, dir string) error {
		return runTool(ctx, root, filepath.Join(root, "initdb.log"), acct, filepath.Join(p.BinDir, "initdb"),
			"-D", dir, "-U", p.User, "-E", "UTF8", "--locale=C", "--no-sync", "--auth=trust")
	})
	if err != nil {
		return err
	}
	if err := p.writeHBA(acct); err != nil {
		return err
	}
	return p.run(ctx, acct, p.Options.ExactPort && p.Options.Port != 0)
}

// Start starts a stopped (or killed) server again on its data directory and
// port, and waits until it accepts connections.
func (p *Postgres) Start(ctx context.Context) error {
	if p.Running() {
		return errors.New("localserver: the PostgreSQL server is running")
	}
	acct, err := postgresAccount()
	if err != nil {
		return err
	}
	return p.run(ctx, acct, true)
}

// run starts postgres on the initialized data directory: on a free port, or
// exactly on p.Port when samePort is set.
func (p *Postgres) run(ctx context.Context, acct *account, samePort bool) error {
	settings := map[string]string{
		"listen_addresses":  bindAddress(p.Options.Bind),
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
		port, err := pickPort(try, p.Options.Port)
		if samePort {
			port, err = p.Port, nil
			if port == 0 {
				port = p.Options.Port
			}
		}
		if err != nil {
			return err
		}
		args := []string{"-D", p.DataDir, "-p", strconv.Itoa(port), "-k", p.SocketDir}
		for _, k := range names {
			args = append(args, "-c", k+"="+settings[k])
		}
		off := logSize(p.LogFile)
		proc, err := startProcess(p.Dir, p.LogFile, acct, filepath.Join(p.BinDir, "postgres"), args...)
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
		err = waitReady(ctx, proc, sock, p.isOurs)
		if err == nil {
			err = p.finishStart(ctx, sock)
		}
		sock.Close()
		if err == nil {
			p.srv.mu.Lock()
			p.srv.proc = proc
			p.srv.mu.Unlock()
			return nil
		}
		p.srv.mu.Lock()
		p.srv.closeAdmin()
		p.srv.mu.Unlock()
		proc.kill()
		if errors.Is(err, errExited) && IsBindFailure(logSince(p.LogFile, off)) && try < startTries && !samePort {
			continue
		}
		return fmt.Errorf("postgres on port %d: %w\n%s", port, err, LogTail(p.LogFile))
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
	conf := "# written by localserver\n" +
		"local all all trust\n" +
		"local replication all trust\n"
	addrs := []string{"127.0.0.1/32", "::1/128"}
	if !isLoopback(p.Options.Bind) && p.Password != "" {
		addrs = append(addrs, "0.0.0.0/0", "::/0")
	}
	for _, addr := range addrs {
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
func (p *Postgres) finishStart(ctx context.Context, sock *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if p.Password != "" {
		// One session, whose failing statements are not written to the
		// server's log: the statement holds the password, and the log's
		// tail goes into start errors.
		conn, err := sock.Conn(ctx)
		if err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		_, err = conn.ExecContext(ctx, "SET log_min_error_statement = panic")
		if err == nil {
			q := "ALTER USER " + pgIdent(p.User) + " PASSWORD '" + strings.ReplaceAll(p.Password, "'", "''") + "'"
			_, err = conn.ExecContext(ctx, q)
		}
		conn.Close()
		if err != nil {
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
	p.srv.mu.Lock()
	p.srv.admin = admin
	p.srv.mu.Unlock()
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

// Open opens a pool (pgx's database/sql driver) on database db and checks
// that it connects.
func (p *Postgres) Open(ctx context.Context, db string) (*sql.DB, error) {
	pool, err := sql.Open("pgx", p.URL(db))
	if err != nil {
		return nil, err
	}
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL %q: %w", db, err)
	}
	return pool, nil
}

// CreateDatabase creates an empty database.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	return p.srv.exec(ctx, "CREATE DATABASE "+pgIdent(name))
}

// DropDatabase drops a database if it exists, disconnecting its sessions.
func (p *Postgres) DropDatabase(ctx context.Context, name string) error {
	return p.srv.exec(ctx, "DROP DATABASE IF EXISTS "+pgIdent(name)+" WITH (FORCE)")
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

// ClientEnv returns an environment for libpq tools: the caller's without PG*
// variables, plus PGPASSWORD when the server has a password and
// PGSSLMODE=disable.
func (p *Postgres) ClientEnv() []string {
	extra := []string{"PGSSLMODE=disable"}
	if p.Password != "" {
		extra = append(extra, "PGPASSWORD="+p.Password)
	}
	return clientEnv(extra...)
}

// Running reports whether the postmaster is alive.
func (p *Postgres) Running() bool { return p.srv.running() }

// Pid returns the process id of the postmaster.
func (p *Postgres) Pid() int { return p.srv.pid() }

// Kill SIGKILLs the postmaster and every backend, as a crash would, and waits
// until they have exited. The server's directory stays.
func (p *Postgres) Kill() { p.srv.kill() }

// Stop shuts the server down cleanly (fast shutdown: SIGINT) and waits until
// it has exited, SIGKILLing it after a minute. The server's directory stays.
// Stopping a stopped server does nothing.
func (p *Postgres) Stop() { p.srv.stop() }

// Remove stops the server (as Stop) and deletes its directory.
func (p *Postgres) Remove() { p.srv.remove() }
