package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// The benchmark starts its own servers rather than using engine/localserver,
// because the generated source database is kept across invocations and
// localserver only starts servers on a new data directory. Both kinds run
// with the same settings whether they are the source or a restore target.

// mariadbSettings are the mariadbd options of every server. The buffer
// pool holds the whole generated database, so dumps read from memory; the
// redo log is large enough that a 1 GiB restore does not stall on
// checkpoints. Commits reach the OS, not the disk (as in localserver).
var mariadbSettings = []string{
	"--innodb-buffer-pool-size=2G",
	"--innodb-log-file-size=512M",
	"--innodb-flush-log-at-trx-commit=2",
	"--skip-innodb-doublewrite",
	"--max-allowed-packet=1G",
	"--character-set-server=utf8mb4",
	"--skip-name-resolve",
	"--skip-log-bin",
}

// postgresSettings are the -c settings of every PostgreSQL server. fsync is
// off as in localserver; WAL and checkpoints are sized so that a 1 GiB
// restore is not dominated by checkpoints.
var postgresSettings = [][2]string{
	{"listen_addresses", "127.0.0.1"},
	{"fsync", "off"},
	{"synchronous_commit", "off"},
	{"full_page_writes", "off"},
	{"shared_buffers", "512MB"},
	{"maintenance_work_mem", "256MB"},
	{"max_wal_size", "8GB"},
	{"checkpoint_timeout", "30min"},
	{"logging_collector", "off"},
	{"autovacuum", "off"}, // no background work that would land in one arm and not the other
}

// dbServer is one running MariaDB or PostgreSQL server.
type dbServer struct {
	engine   string // engMariaDB or engPostgres
	dir      string // holds data/ and server.log
	dataDir  string
	port     int
	password string // of root (MariaDB) or postgres (PostgreSQL), over TCP
	pgBin    string // PostgreSQL: the server's bin directory

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

const (
	engMariaDB  = "mariadb"
	engPostgres = "postgres"
)

// pgAccount is the user PostgreSQL runs as when we are root.
type pgAccount struct {
	uid, gid uint32
}

func postgresAccount() (*pgAccount, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no postgres user: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &pgAccount{uid: uint32(uid), gid: uint32(gid)}, nil
}

func (a *pgAccount) attr() *syscall.SysProcAttr {
	sa := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if a != nil {
		sa.Credential = &syscall.Credential{Uid: a.uid, Gid: a.gid}
	}
	return sa
}

// chownTree gives dir and everything under it to the account.
func (a *pgAccount) chownTree(dir string) error {
	if a == nil {
		return nil
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(a.uid), int(a.gid))
	})
}

// postgresBinDir is the newest /usr/lib/postgresql/<major>/bin with a server.
func postgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestMajor := "", -1.0
	for _, d := range dirs {
		major, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil && major > bestMajor {
			best, bestMajor = d, major
		}
	}
	if best == "" {
		return "", errors.New("no PostgreSQL server in /usr/lib/postgresql/*/bin (Debian package postgresql)")
	}
	return best, nil
}

func lookPath(names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/libexec"} {
			if p := filepath.Join(d, n); fileExists(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s not found", strings.Join(names, " or "))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// runLogged runs a setup command, its output appended to logPath.
func runLogged(ctx context.Context, logPath string, attr *syscall.SysProcAttr, dir, name string, args ...string) error {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "==> %s %s\n", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = serverEnv()
	cmd.SysProcAttr = attr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w (see %s)", filepath.Base(name), err, logPath)
	}
	return nil
}

// serverEnv is the environment of servers and their setup tools.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") || strings.HasPrefix(name, "MYSQL") || strings.HasPrefix(name, "MARIADB") ||
			strings.HasPrefix(name, "LC_") || name == "LANG" || name == "LANGUAGE" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// initDataDir initializes an empty data directory dir/data.
func initDataDir(ctx context.Context, engine, dir string) error {
	data := filepath.Join(dir, "data")
	logPath := filepath.Join(dir, "init.log")
	switch engine {
	case engMariaDB:
		install, err := lookPath("mariadb-install-db", "mysql_install_db")
		if err != nil {
			return err
		}
		args := []string{"--no-defaults"}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		args = append(args, "--datadir="+data, "--auth-root-authentication-method=normal", "--skip-test-db")
		args = append(args, mariadbSettings...)
		return runLogged(ctx, logPath, &syscall.SysProcAttr{Setpgid: true}, dir, install, args...)
	case engPostgres:
		bin, err := postgresBinDir()
		if err != nil {
			return err
		}
		acct, err := postgresAccount()
		if err != nil {
			return err
		}
		if err := os.Mkdir(data, 0o700); err != nil {
			return err
		}
		if err := acct.chownTree(dir); err != nil {
			return err
		}
		return runLogged(ctx, logPath, acct.attr(), dir, filepath.Join(bin, "initdb"),
			"-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync", "--auth=trust")
	}
	return fmt.Errorf("unknown engine %q", engine)
}

// copyDataDir copies src (a stopped server's directory holding data/) to
// the new directory dst, keeping owners and modes.
func copyDataDir(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "cp", "-a", "--", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts a server on the initialized directory dir (dir/data)
// on a free port, waits until it answers, and makes password the password
// of its superuser over TCP.
func startServer(ctx context.Context, engine, dir, password string) (*dbServer, error) {
	s := &dbServer{engine: engine, dir: dir, dataDir: filepath.Join(dir, "data"), password: password}
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.port = port
		if err := s.start(ctx); err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "in use") || strings.Contains(err.Error(), "Bind on TCP/IP") {
				continue
			}
			return nil, err
		}
		return s, nil
	}
	return nil, lastErr
}

func (s *dbServer) start(ctx context.Context) error {
	logPath := filepath.Join(s.dir, "server.log")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	off, _ := f.Seek(0, 2)
	var cmd *exec.Cmd
	switch s.engine {
	case engMariaDB:
		mariadbd, err := lookPath("mariadbd", "mysqld")
		if err != nil {
			return err
		}
		tmp := filepath.Join(s.dir, "tmp")
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return err
		}
		args := []string{"--no-defaults"}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		args = append(args, "--datadir="+s.dataDir, "--port="+strconv.Itoa(s.port), "--bind-address=127.0.0.1",
			"--socket="+filepath.Join(s.dataDir, "sock"), "--tmpdir="+tmp, "--pid-file="+filepath.Join(s.dir, "mariadbd.pid"))
		args = append(args, mariadbSettings...)
		cmd = exec.Command(mariadbd, args...)
		cmd.SysProcAttr = (*pgAccount)(nil).attr()
	case engPostgres:
		bin, err := postgresBinDir()
		if err != nil {
			return err
		}
		s.pgBin = bin
		acct, err := postgresAccount()
		if err != nil {
			return err
		}
		if err := s.writeHBA(acct); err != nil {
			return err
		}
		args := []string{"-D", s.dataDir, "-p", strconv.Itoa(s.port), "-k", s.dataDir}
		for _, kv := range postgresSettings {
			args = append(args, "-c", kv[0]+"="+kv[1])
		}
		cmd = exec.Command(filepath.Join(bin, "postgres"), args...)
		cmd.SysProcAttr = acct.attr()
	}
	fmt.Fprintf(f, "==> %s\n", strings.Join(cmd.Args, " "))
	cmd.Dir = s.dir
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { s.err = cmd.Wait(); close(s.done) }()

	deadline := time.Now().Add(3 * time.Minute) // crash recovery of a large redo log can take a while
	for {
		err := s.ping(ctx)
		if err == nil {
			break
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(logPath)
			if int64(len(b)) > off {
				b = b[off:]
			}
			return fmt.Errorf("%s exited at start: %v\n%s", s.engine, s.err, tail(string(b), 3000))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.kill()
			return fmt.Errorf("%s not ready: %v", s.engine, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// ping connects through the socket (trusted, or root without a password
// before it is set) and checks the server is ours, then sets the password
// if TCP does not take it yet.
func (s *dbServer) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	switch s.engine {
	case engMariaDB:
		// TCP with the password first (a restarted cached server has it).
		if db, err := s.open(""); err == nil {
			defer db.Close()
			var dir string
			if err := db.QueryRowContext(ctx, "SELECT @@datadir").Scan(&dir); err == nil {
				if filepath.Clean(dir) != filepath.Clean(s.dataDir) {
					return fmt.Errorf("port %d is another server's", s.port)
				}
				return nil
			}
		}
		cfg := mysql.NewConfig()
		cfg.User, cfg.Net, cfg.Addr = "root", "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		cfg.Timeout = 2 * time.Second
		cfg.Logger = nopLogger{}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return err
		}
		db := sql.OpenDB(conn)
		defer db.Close()
		var dir string
		if err := db.QueryRowContext(ctx, "SELECT @@datadir").Scan(&dir); err != nil {
			return err
		}
		if filepath.Clean(dir) != filepath.Clean(s.dataDir) {
			return fmt.Errorf("port %d is another server's", s.port)
		}
		rows, err := db.QueryContext(ctx, "SELECT Host FROM mysql.user WHERE User = 'root' AND Host IN ('localhost', '127.0.0.1', '::1', '%')")
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
		for _, h := range hosts {
			if _, err := db.ExecContext(ctx, "ALTER USER 'root'@'"+h+"' IDENTIFIED BY '"+s.password+"'"); err != nil {
				return fmt.Errorf("set root password: %w", err)
			}
		}
		return nil
	default:
		sock := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=2", s.dataDir, s.port)
		db, err := sql.Open("pgx", sock)
		if err != nil {
			return err
		}
		defer db.Close()
		var dir string
		if err := db.QueryRowContext(ctx, "SHOW data_directory").Scan(&dir); err != nil {
			return err
		}
		if filepath.Clean(dir) != filepath.Clean(s.dataDir) {
			return fmt.Errorf("port %d is another server's", s.port)
		}
		_, err = db.ExecContext(ctx, "ALTER USER postgres PASSWORD '"+s.password+"'")
		return err
	}
}

type nopLogger struct{}

func (nopLogger) Print(...any) {}

// writeHBA trusts the socket and wants the password over TCP.
func (s *dbServer) writeHBA(acct *pgAccount) error {
	conf := "local all all trust\nlocal replication all trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n"
	p := filepath.Join(s.dataDir, "pg_hba.conf")
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		return err
	}
	if acct != nil {
		return os.Chown(p, int(acct.uid), int(acct.gid))
	}
	return nil
}

// open returns a pool on database db (MariaDB: "" for none) over TCP.
func (s *dbServer) open(db string) (*sql.DB, error) {
	if s.engine == engMariaDB {
		conn, err := mysql.NewConnector(s.mysqlConfig(db))
		if err != nil {
			return nil, err
		}
		return sql.OpenDB(conn), nil
	}
	if db == "" {
		db = "postgres"
	}
	return sql.Open("pgx", s.pgURL(db, s.password))
}

func (s *dbServer) mysqlConfig(db string) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net = "root", s.password, "tcp"
	cfg.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	cfg.DBName = db
	cfg.Timeout = 5 * time.Second
	cfg.Logger = nopLogger{}
	return cfg
}

func (s *dbServer) pgURL(db, password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// rdsbackupDSN is the instance DSN for rdsbackup's config, with the password
// as ${envVar} (the config expands it).
func (s *dbServer) rdsbackupDSN(envVar string) string {
	if s.engine == engMariaDB {
		return fmt.Sprintf("root:${%s}@tcp(127.0.0.1:%d)/", envVar, s.port)
	}
	return fmt.Sprintf("postgres://postgres:${%s}@127.0.0.1:%d/postgres?sslmode=disable", envVar, s.port)
}

// targetDSN is RDSBACKUP_TARGET_DSN for a restore into this server.
func (s *dbServer) targetDSN() string {
	if s.engine == engMariaDB {
		return s.mysqlConfig("").FormatDSN()
	}
	return s.pgURL("postgres", s.password)
}

func (s *dbServer) pid() int { return s.cmd.Process.Pid }

// stop shuts the server down cleanly, killing it after five minutes.
func (s *dbServer) stop() {
	if s == nil || s.cmd == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	sig := syscall.SIGTERM
	if s.engine == engPostgres {
		sig = syscall.SIGINT // fast shutdown
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(5 * time.Minute):
		s.kill()
	}
}

func (s *dbServer) kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Process.Kill()
	<-s.done
}

// remove stops the server and deletes its directory.
func (s *dbServer) remove() {
	s.stop()
	os.RemoveAll(s.dir)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
