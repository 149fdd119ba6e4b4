package localserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBOptions configures StartMariaDB.
type MariaDBOptions struct {
	// Dir is the server's directory, for its data directory (Dir/data),
	// socket, log and temporary files. It is created, or must be empty.
	// Empty: a new directory in TempDir, named Prefix + "mariadb-" + random.
	Dir string
	// Prefix names the directory made when Dir is empty (default
	// "localserver-").
	Prefix string
	// Port is the port of the first start attempt; when it is taken, or
	// zero, the server gets a free one.
	Port int
	// ServerID is passed as --server-id when non-zero.
	ServerID int
	// LogBin enables the binary log (--log-bin=mariadb-bin, in DataDir).
	LogBin bool
	// RootPassword, when set, becomes the password of every root account
	// (ALTER USER after the start); otherwise root has no password.
	RootPassword string
	// Args are more mariadbd options, appended after the defaults.
	Args []string
	// Template, when set, provides the data directory (see Template).
	Template *Template
	// Bind is the address the server listens on (default 127.0.0.1). On
	// any other address, root may also connect from anywhere ('root'@'%'),
	// so set RootPassword.
	Bind string
	// ExactPort makes the start fail when Port is taken, instead of
	// moving to a free port (a range the caller manages).
	ExactPort bool
	// Existing starts the server on the data directory that an earlier
	// StartMariaDB with the same Dir and RootPassword left there (a server
	// started again after its parent restarted): nothing is initialized.
	Existing bool
}

// MariaDB is a running throwaway MariaDB server. Connect over TCP to
// Host:Port as User with Password, or through Socket.
type MariaDB struct {
	Host     string // where to connect: Options.Bind, or 127.0.0.1 for a wildcard
	Port     int
	Dir      string // the server's directory (Options.Dir or the one made)
	DataDir  string
	Socket   string
	User     string // always root
	Password string // root's password; empty when it has none
	LogFile  string // the server's stdout and stderr
	Options  MariaDBOptions

	srv server
}

// MariaDBBinaries returns the paths of mariadbd and mariadb-install-db, or a
// *NotInstalledError.
func MariaDBBinaries() (mariadbd, installDB string, err error) {
	if mariadbd, err = lookBin("mariadbd", "mariadb-server", "/usr/sbin/mariadbd", "/usr/libexec/mariadbd"); err != nil {
		return "", "", err
	}
	if installDB, err = lookBin("mariadb-install-db", "mariadb-server", "/usr/bin/mariadb-install-db"); err != nil {
		return "", "", err
	}
	return mariadbd, installDB, nil
}

// StartMariaDB initializes a data directory with mariadb-install-db (or
// copies opts.Template), starts mariadbd and waits until it accepts
// connections: options --no-defaults --bind-address=127.0.0.1
// --socket=<DataDir>/sock --character-set-server=utf8mb4
// --skip-name-resolve, small InnoDB buffers. ctx bounds the start only: the
// server runs until Stop, Kill or Remove. On error nothing is left running
// and the server's directory is removed.
func StartMariaDB(ctx context.Context, opts MariaDBOptions) (*MariaDB, error) {
	if !supported {
		return nil, errUnsupported
	}
	mariadbd, install, err := MariaDBBinaries()
	if err != nil {
		return nil, err
	}
	var dir string
	if opts.Existing {
		dir, err = existingServerDir(opts.Dir)
	} else {
		dir, err = makeServerDir(opts.Dir, opts.Prefix, "mariadb", nil)
	}
	if err != nil {
		return nil, err
	}
	m := &MariaDB{
		Host:    connectHost(opts.Bind),
		Dir:     dir,
		DataDir: filepath.Join(dir, "data"),
		Socket:  filepath.Join(dir, "data", "sock"),
		User:    "root",
		LogFile: filepath.Join(dir, "mariadbd.log"),
		Options: opts,
		srv:     server{kind: "MariaDB", dir: dir, stopSig: syscall.SIGTERM},
	}
	if err := checkSocketPath(m.Socket); err != nil {
		m.srv.remove()
		return nil, err
	}
	if opts.Existing {
		// Nothing of it is removed on failure: the data is the caller's.
		m.Password = opts.RootPassword
		if err := m.launch(ctx, mariadbd, opts.Port); err != nil {
			return nil, err
		}
		return m, nil
	}
	if err := m.start(ctx, install, mariadbd); err != nil {
		m.srv.remove()
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

func (m *MariaDB) start(ctx context.Context, install, mariadbd string) error {
	asRoot := os.Geteuid() == 0
	// A private tmpdir: the shared /tmp may be cleaned by others while the
	// server keeps temporary tables there.
	tmpdir := filepath.Join(m.Dir, "tmp")
	if err := os.MkdirAll(tmpdir, 0o700); err != nil {
		return err
	}
	if err := makeDataDir(m.DataDir, nil); err != nil {
		return err
	}
	err := m.Options.Template.initDataDir(ctx, m.Options.Prefix, "mariadb", m.DataDir, nil, func(ctx context.Context, root, dir string) error {
		// The bootstrap server's temporary tables go to a private
		// directory too: in the shared /tmp, concurrent installs were seen
		// failing on them ("Could not remove temporary table").
		itmp := filepath.Join(root, "tmp")
		if err := os.MkdirAll(itmp, 0o700); err != nil {
			return err
		}
		args := []string{"--no-defaults"}
		if asRoot {
			args = append(args, "--user=root")
		}
		args = append(args, "--datadir="+dir, "--tmpdir="+itmp, "--auth-root-authentication-method=normal", "--skip-test-db")
		args = append(args, mariadbTuning...)
		return runTool(ctx, root, filepath.Join(root, "install.log"), nil, install, args...)
	})
	if err != nil {
		return err
	}

	if err := m.launch(ctx, mariadbd, m.Options.Port); err != nil {
		return err
	}
	if m.Options.RootPassword != "" {
		if err := m.setRootPassword(ctx, m.Options.RootPassword); err != nil {
			return fmt.Errorf("set root password: %w", err)
		}
	}
	return nil
}

// Start starts a stopped or killed server again on its data directory, on
// the same port when it is free (it fails otherwise, so that DSNs made
// before stay valid).
func (m *MariaDB) Start(ctx context.Context) error {
	if m.Running() {
		return errors.New("localserver: MariaDB is running")
	}
	mariadbd, _, err := MariaDBBinaries()
	if err != nil {
		return err
	}
	m.srv.closeAdmin()
	port := m.Port
	if err := m.launch(ctx, mariadbd, port); err != nil {
		return err
	}
	if m.Port != port {
		m.srv.kill()
		return fmt.Errorf("localserver: port %d was taken while MariaDB was stopped", port)
	}
	return nil
}

// launch starts mariadbd on the data directory and waits until it
// accepts connections, trying port first.
func (m *MariaDB) launch(ctx context.Context, mariadbd string, first int) error {
	asRoot := os.Geteuid() == 0
	tmpdir := filepath.Join(m.Dir, "tmp")
	for try := 1; ; try++ {
		port, err := pickPort(try, first)
		if err != nil {
			return err
		}
		args := []string{"--no-defaults"}
		if asRoot {
			args = append(args, "--user=root")
		}
		args = append(args,
			"--datadir="+m.DataDir,
			"--port="+strconv.Itoa(port),
			"--bind-address="+bindAddress(m.Options.Bind),
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
		p, err := startProcess(m.Dir, m.LogFile, nil, mariadbd, args...)
		if err != nil {
			return err
		}
		m.Port = port
		admin, err := sql.Open("mysql", m.adminDSN())
		if err != nil {
			p.kill()
			return err
		}
		err = waitReady(ctx, p, admin, m.isOurs)
		if err == nil {
			m.srv.mu.Lock()
			m.srv.proc, m.srv.admin = p, admin
			m.srv.mu.Unlock()
			break
		}
		admin.Close()
		p.kill()
		if errors.Is(err, errExited) && IsBindFailure(logSince(m.LogFile, off)) && try < startTries && !m.Options.ExactPort {
			continue
		}
		return fmt.Errorf("mariadbd on port %d: %w\n%s", port, err, LogTail(m.LogFile))
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
func (m *MariaDB) setRootPassword(ctx context.Context, pw string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	admin := m.srv.admin
	// Accounts for host names (root@<hostname>) are ignored under
	// --skip-name-resolve, and ALTER USER fails on them.
	rows, err := admin.QueryContext(ctx, "SELECT Host FROM mysql.user WHERE User = 'root' AND Host IN ('localhost', '127.0.0.1', '::1', '%')")
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
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("root@%s: %w", h, err)
		}
	}
	if !isLoopback(m.Options.Bind) && !slices.Contains(hosts, "%") {
		// Clients on other hosts: root from anywhere, with the password.
		q := "CREATE USER 'root'@'%' IDENTIFIED BY " + mariadbString(pw)
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("root@%%: %w", err)
		}
		if _, err := admin.ExecContext(ctx, "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION"); err != nil {
			return fmt.Errorf("root@%%: %w", err)
		}
	}
	m.Password = pw
	next, err := sql.Open("mysql", m.adminDSN())
	if err != nil {
		return err
	}
	if err := next.PingContext(ctx); err != nil {
		next.Close()
		return err
	}
	m.srv.mu.Lock()
	m.srv.admin.Close()
	m.srv.admin = next
	m.srv.mu.Unlock()
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

// Config returns the go-sql-driver/mysql configuration for database db
// (empty for none) over TCP as User with Password.
func (m *MariaDB) Config(db string) *mysql.Config {
	c := mysql.NewConfig()
	c.User = m.User
	c.Passwd = m.Password
	c.Net = "tcp"
	c.Addr = m.Host + ":" + strconv.Itoa(m.Port)
	c.DBName = db
	return c
}

func (m *MariaDB) adminDSN() string {
	c := m.Config("")
	c.Timeout = 2 * time.Second
	c.Logger = nopLogger{} // the driver logs refused connections while the server starts
	return c.FormatDSN()
}

// DSN returns a go-sql-driver/mysql DSN for database db (empty for none):
// root:password@tcp(127.0.0.1:port)/db.
func (m *MariaDB) DSN(db string) string {
	return m.Config(db).FormatDSN()
}

// Open opens a pool on database db (empty for none) as root and checks that
// it connects.
func (m *MariaDB) Open(ctx context.Context, db string) (*sql.DB, error) {
	connector, err := mysql.NewConnector(m.Config(db))
	if err != nil {
		return nil, err
	}
	pool := sql.OpenDB(connector)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to MariaDB %q: %w", db, err)
	}
	return pool, nil
}

// CreateDatabase creates an empty database (utf8mb4).
func (m *MariaDB) CreateDatabase(ctx context.Context, name string) error {
	return m.srv.exec(ctx, "CREATE DATABASE "+mariadbIdent(name)+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
}

// DropDatabase drops a database if it exists.
func (m *MariaDB) DropDatabase(ctx context.Context, name string) error {
	return m.srv.exec(ctx, "DROP DATABASE IF EXISTS "+mariadbIdent(name))
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
// caller's without MYSQL_* and MARIADB_* variables, plus MYSQL_PWD with
// root's password.
func (m *MariaDB) ClientEnv() []string {
	return clientEnv("MYSQL_PWD=" + m.Password)
}

// Running reports whether the server process is alive.
func (m *MariaDB) Running() bool { return m.srv.running() }

// Pid returns the process id of mariadbd.
func (m *MariaDB) Pid() int { return m.srv.pid() }

// Kill SIGKILLs the server, as a crash would, and waits until it has exited.
// The server's directory stays.
func (m *MariaDB) Kill() { m.srv.kill() }

// Stop shuts the server down cleanly (SIGTERM) and waits until it has exited,
// SIGKILLing it after a minute. The server's directory stays. Stopping a
// stopped server does nothing.
func (m *MariaDB) Stop() { m.srv.stop() }

// Remove stops the server (as Stop) and deletes its directory.
func (m *MariaDB) Remove() { m.srv.remove() }
