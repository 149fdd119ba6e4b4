// Package mysql backs up MySQL and MariaDB servers with the engines' own
// tools, run as child processes: mariadb-dump or mysqldump for logical
// backups, mariadb-backup or Percona XtraBackup for physical ones, and the
// mariadb or mysql client, mbstream or xbstream to restore them.
//
// # Credentials
//
// An instance's DSN is a go-sql-driver/mysql DSN
// (user:password@tcp(host:port)/ or user:password@unix(/path/to.sock)/).
// The password never appears on a tool's command line, where any local user
// could read it: every run writes the connection settings to a 0600 option
// file in a private 0700 temporary directory (Engine.TempDir), passes it with
// --defaults-extra-file and removes the directory when the tool has exited.
// The global option files (/etc/mysql/my.cnf and the like) are still read
// first, so that an administrator can configure the tools there (a TLS CA,
// for example), but the connection settings of the extra file override
// theirs. The tools run with HOME set to the private directory, so that a
// ~/.my.cnf or ~/.mylogin.cnf of the service's user cannot redirect them to
// another server or account. The DSN's tls parameter is passed on
// (true, skip-verify, preferred, false); a custom TLS config registered with
// the driver cannot be, and such a DSN fails the run rather than silently
// dropping TLS.
//
// # Logical backups
//
// Each database is dumped on its own, one part per database, without
// --databases, so that a dump can be restored under another database name.
// Every dump is a consistent snapshot of its database (--single-transaction;
// tables of non-transactional engines such as Aria or MyISAM are read
// without a lock and so are not), but the databases are dumped one after
// another: the backup as a whole is not a single point in time. Its
// ConsistentTime is the server's clock just before the first dump started.
// The dump user needs SELECT, SHOW VIEW, TRIGGER, EVENT and (for routines)
// SELECT on mysql.proc (MariaDB) or SHOW_ROUTINE (MySQL 8).
//
// A part is the tool's output with one statement added at its start (after
// MariaDB's sandbox-mode line, which must stay first):
//
//	/*!40101 ALTER DATABASE CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci */;
//
// It names no database, so it applies to the one the dump is restored into,
// and gives it the dumped database's defaults, which a dump made without
// --databases does not otherwise carry (routines record them, and new tables
// inherit them).
//
// Dumps made by mariadb-dump 10.5.25, 10.6.18, 10.11.8, 11.x and later begin
// with a "sandbox mode" line (/*M!999999\- enable the sandbox mode */) that
// MySQL's own mysql client rejects; restore them with the mariadb client.
//
// # Physical backups
//
// A physical backup is one part, "instance": the xbstream that
// mariadb-backup (MariaDB) or xtrabackup (MySQL) writes with --stream. These
// tools copy the server's data files, so they must run on the database host
// with read access to its data directory; Backup refuses an instance whose
// DSN does not point at this machine or whose data directory (@@datadir) is
// not there. The backup user needs RELOAD, PROCESS, LOCK TABLES and BINLOG
// MONITOR (MariaDB) or BACKUP_ADMIN (MySQL). ConsistentTime is the server's
// clock when the stream ended, a close upper bound of the point the backup
// restores to. With the binary log on, a MariaDB physical backup records
// the binary log position and GTID of its consistent point
// (BackupResult.LogPositions["instance"], from the xtrabackup_info that
// --extra-lsndir leaves outside the stream), from which RestoreToTime
// rolls it forward.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/childproc"
)

// Engine backs up MySQL or MariaDB servers. It keeps no state between
// calls, which may run concurrently; an Engine with Flavor set is ready to
// use.
type Engine struct {
	// Flavor is rdsbackup.EngineMySQL or rdsbackup.EngineMariaDB. It chooses
	// the tools: mariadb-dump, mariadb-backup, mariadb and mbstream for
	// MariaDB; mysqldump, xtrabackup, mysql and xbstream for MySQL. When the
	// preferred name of a dump or client tool is not in PATH the other
	// family's name is tried. Any value but EngineMySQL means MariaDB.
	Flavor rdsbackup.Engine
	// Logger receives progress and warnings; nil discards them.
	Logger *slog.Logger
	// TempDir is where the private directories holding option files are
	// made; "" is os.TempDir().
	TempDir string
	// StderrTail is how many bytes of a tool's standard error are kept for
	// its error message; 0 means 4096.
	StderrTail int
	// Children, when set, records every running tool so that the next
	// start can kill what a killed service left (see childproc.Registry).
	Children *childproc.Registry
}

var _ rdsbackup.BackupEngine = (*Engine)(nil)

const (
	defaultStderrTail = 4096
	// connectTimeout bounds dialling the server; probeTimeout bounds a
	// whole Probe.
	connectTimeout = 10 * time.Second
	probeTimeout   = 30 * time.Second
)

func (e *Engine) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

func (e *Engine) stderrTail() int {
	if e.StderrTail <= 0 {
		return defaultStderrTail
	}
	return e.StderrTail
}

func (e *Engine) mariadb() bool { return e.Flavor != rdsbackup.EngineMySQL }

// systemSchemas are the schemas that are not user databases.
var systemSchemas = map[string]bool{
	"information_schema": true,
	"performance_schema": true,
	"mysql":              true,
	"sys":                true,
}

// isUserDatabase reports whether name is a user database. Names starting
// with #mysql50# are directories of the data directory that are not valid
// database names (lost+found, for example), not databases.
func isUserDatabase(name string) bool {
	return !systemSchemas[strings.ToLower(name)] && !strings.HasPrefix(name, "#mysql50#")
}

// conn is an open pool on one server with the settings it was opened with.
type conn struct {
	db  *sql.DB
	cfg *mysql.Config // as parsed from the DSN, password included
}

// parseDSN parses a DSN without ever putting it in an error.
func parseDSN(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse DSN: %w", redact(err, ""))
	}
	return cfg, nil
}

// open connects to the server the DSN names, without a default database.
// Errors carry what (the instance's name) and never the password.
func (e *Engine) open(ctx context.Context, what, dsn string) (*conn, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", what, err)
	}
	c := cfg.Clone()
	c.DBName = ""
	if c.Timeout == 0 {
		c.Timeout = connectTimeout
	}
	c.Logger = driverLogger{e.logger()}
	connector, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", what, redact(err, cfg.Passwd))
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(2)
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect to %s: %w", what, ctx.Err())
		}
		return nil, fmt.Errorf("connect to %s: %w", what, redact(err, cfg.Passwd))
	}
	return &conn{db: db, cfg: cfg}, nil
}

func (c *conn) Close() error { return c.db.Close() }

// driverLogger sends the driver's own complaints (broken connections and
// the like) to the engine's logger instead of the standard logger.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) { l.log.Debug("mysql driver: " + fmt.Sprint(v...)) }

// Probe connects and reads the server's version ("major.minor") and
// @@server_id.
func (e *Engine) Probe(ctx context.Context, inst *rdsbackup.Instance) (rdsbackup.ServerInfo, error) {
	c, err := e.open(ctx, inst.ID, inst.DSN)
	if err != nil {
		return rdsbackup.ServerInfo{}, err
	}
	defer c.Close()
	return e.serverInfo(ctx, inst.ID, c)
}

func (e *Engine) serverInfo(ctx context.Context, what string, c *conn) (rdsbackup.ServerInfo, error) {
	var full string
	var serverID uint64
	if err := c.db.QueryRowContext(ctx, "SELECT VERSION(), @@server_id").Scan(&full, &serverID); err != nil {
		return rdsbackup.ServerInfo{}, fmt.Errorf("read version of %s: %w", what, redact(err, c.cfg.Passwd))
	}
	v, err := parseVersion(full)
	if err != nil {
		return rdsbackup.ServerInfo{}, fmt.Errorf("read version of %s: %w", what, err)
	}
	if isMariaDB := strings.Contains(strings.ToLower(full), "mariadb"); isMariaDB != e.mariadb() {
		e.logger().Warn("the server's flavor differs from the instance's engine", "instance", what, "engine", e.Flavor, "version", full)
	}
	return rdsbackup.ServerInfo{Version: v, HostID: strconv.FormatUint(serverID, 10)}, nil
}

var versionRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

// parseVersion turns VERSION() ("10.11.6-MariaDB-log", "8.0.36") into
// "major.minor".
func parseVersion(s string) (string, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return "", fmt.Errorf("unexpected version %q", s)
	}
	return m[1] + "." + m[2], nil
}

// Databases lists the user databases in name order: every schema but
// information_schema, performance_schema, mysql and sys.
func (e *Engine) Databases(ctx context.Context, inst *rdsbackup.Instance) ([]string, error) {
	c, err := e.open(ctx, inst.ID, inst.DSN)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dbs, err := listDatabases(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("list databases of %s: %w", inst.ID, err)
	}
	return dbs, nil
}

func listDatabases(ctx context.Context, c *conn) ([]string, error) {
	rows, err := c.db.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		return nil, redact(err, c.cfg.Passwd)
	}
	defer rows.Close()
	dbs := []string{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		if isUserDatabase(name) {
			dbs = append(dbs, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, redact(err, c.cfg.Passwd)
	}
	return dbs, nil
}

// EstimateSize returns the data and index bytes information_schema reports
// for the databases a backup will read: the requested ones, or every user
// database when req.Databases is empty. For a physical backup it is every
// table of the instance, the system schemas included. The figures are
// InnoDB's estimates; a dump is usually larger, a compressed one smaller.
func (e *Engine) EstimateSize(ctx context.Context, inst *rdsbackup.Instance, req rdsbackup.BackupRequest) (int64, error) {
	c, err := e.open(ctx, inst.ID, inst.DSN)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	q := "SELECT TABLE_SCHEMA, COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES GROUP BY TABLE_SCHEMA"
	rows, err := c.db.QueryContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("estimate size of %s: %w", inst.ID, redact(err, c.cfg.Passwd))
	}
	defer rows.Close()
	want := map[string]bool{}
	for _, d := range req.Databases {
		want[d] = true
	}
	var total int64
	for rows.Next() {
		var schema string
		var n sql.NullInt64
		if err := rows.Scan(&schema, &n); err != nil {
			return 0, fmt.Errorf("estimate size of %s: %w", inst.ID, err)
		}
		switch {
		case req.Method == rdsbackup.MethodPhysical:
			if strings.EqualFold(schema, "information_schema") || strings.EqualFold(schema, "performance_schema") {
				continue // in memory, not on disk
			}
		case len(want) > 0:
			if !want[schema] {
				continue
			}
		case !isUserDatabase(schema):
			continue
		}
		total += n.Int64
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("estimate size of %s: %w", inst.ID, redact(err, c.cfg.Passwd))
	}
	return total, nil
}

// redact wraps err so that its message never holds password. Neither the
// driver nor the tools print passwords; this guards against one that
// would. Passwords shorter than minRedact are left alone: a short one is
// likely to occur in ordinary text, and blanking it there would reveal it.
func redact(err error, password string) error {
	if err == nil || len(password) < minRedact || !strings.Contains(err.Error(), password) {
		return err
	}
	return &redactedError{err: err, msg: strings.ReplaceAll(err.Error(), password, "<password>")}
}

const minRedact = 8

type redactedError struct {
	err error
	msg string
}

func (r *redactedError) Error() string { return r.msg }
func (r *redactedError) Unwrap() error { return r.err }

// redactString removes password from s, as redact does from errors.
func redactString(s, password string) string {
	if len(password) < minRedact {
		return s
	}
	return strings.ReplaceAll(s, password, "<password>")
}

// quoteIdent quotes a database name for SQL.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

var errNoTool = errors.New("not installed")
