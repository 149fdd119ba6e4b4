package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/childproc"
)

// Engine backs up PostgreSQL servers with PostgreSQL's own tools. The zero
// value is ready to use.
type Engine struct {
	// BinDir is where pg_dump and the other tools are. Empty: the Debian
	// locations /usr/lib/postgresql/<major>/bin (the version that fits the
	// server), else PATH.
	BinDir string
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
	// TempDir holds the private directories of .pgpass files; empty means
	// os.TempDir().
	TempDir string
	// StderrTail is how many bytes of a tool's stderr an error keeps;
	// 0 means 4096.
	StderrTail int
	// Children, when set, records every running tool so that the next
	// start can kill what a killed service left (see childproc.Registry).
	Children *childproc.Registry
	// WALSynchronous streams WAL with pg_receivewal --synchronous (see
	// WALStreamOptions.Synchronous).
	WALSynchronous bool
	// WALPartialInterval spaces the offers of the WAL segment being
	// written to LogSink.PartialLog; 0 means 10 s.
	WALPartialInterval time.Duration
	// Now is the clock of log streaming (gap detection times, the time
	// span of segments without transactions); nil means time.Now.
	Now func() time.Time
}

var _ rdsbackup.BackupEngine = (*Engine)(nil)

// connectTimeout bounds connecting when the URL sets no connect_timeout.
const connectTimeout = 10 * time.Second

func (e *Engine) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

func (e *Engine) tempDir() string {
	if e.TempDir == "" {
		return os.TempDir()
	}
	return e.TempDir
}

func (e *Engine) stderrTail() int {
	if e.StderrTail <= 0 {
		return 4096
	}
	return e.StderrTail
}

// conn is an open connection with what the engine knows of its server.
type conn struct {
	*pgx.Conn
	dsn     string
	params  *connParams
	redact  redactor
	version pgVersion
	num     int // server_version_num
	user    string
	super   bool
	repl    bool
}

// connect opens a connection to the URL's server, to database db when it
// is not empty, and reads the server version and the user's rights.
func connect(ctx context.Context, dsn, db string) (*conn, error) {
	p, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	r := newRedactor(p.password)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, r.err(fmt.Errorf("parse the DSN: %w", err))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	if db != "" {
		cfg.Database = db
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, r.err(fmt.Errorf("connect to PostgreSQL at %s as %q: %w", p.where, cfg.User, err))
	}
	cn := &conn{Conn: c, dsn: dsn, params: p, redact: r}
	err = c.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_user::text, r.rolsuper, r.rolreplication
		FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`).Scan(&cn.num, &cn.user, &cn.super, &cn.repl)
	if err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, r.err(fmt.Errorf("read the server version: %w", err))
	}
	cn.version = versionFromNum(cn.num)
	return cn, nil
}

func (c *conn) close() { c.Conn.Close(context.Background()) }

// info reads the server's version and system identifier. A user that may
// not call pg_control_system() (or a server older than 9.6) gets an empty
// HostID.
func (c *conn) info(ctx context.Context, log *slog.Logger) rdsbackup.ServerInfo {
	info := rdsbackup.ServerInfo{Version: c.version.String()}
	if c.num < 90600 {
		return info
	}
	var id string
	if err := c.QueryRow(ctx, `SELECT system_identifier::text FROM pg_catalog.pg_control_system()`).Scan(&id); err != nil {
		log.Warn("cannot read the PostgreSQL system identifier", "err", c.redact.err(err))
		return info
	}
	info.HostID = id
	return info
}

// Probe connects and reads the server's major version ("15", or "9.6" for
// servers before 10) and its system identifier.
func (e *Engine) Probe(ctx context.Context, inst *rdsbackup.Instance) (rdsbackup.ServerInfo, error) {
	c, err := connect(ctx, inst.DSN, "")
	if err != nil {
		return rdsbackup.ServerInfo{}, err
	}
	defer c.close()
	return c.info(ctx, e.logger()), nil
}

// Databases lists the databases that accept connections and are not
// templates, postgres included, in name order.
func (e *Engine) Databases(ctx context.Context, inst *rdsbackup.Instance) ([]string, error) {
	c, err := connect(ctx, inst.DSN, "")
	if err != nil {
		return nil, err
	}
	defer c.close()
	return c.databases(ctx)
}

func (c *conn) databases(ctx context.Context) ([]string, error) {
	rows, err := c.Query(ctx, `SELECT datname::text FROM pg_catalog.pg_database
		WHERE datallowconn AND NOT datistemplate ORDER BY datname`)
	if err != nil {
		return nil, c.redact.err(fmt.Errorf("list databases: %w", err))
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, c.redact.err(fmt.Errorf("list databases: %w", err))
	}
	return dbs, nil
}

// selectDatabases returns the databases a request names (checked to exist
// and accept connections, duplicates dropped), or all of them.
func (c *conn) selectDatabases(ctx context.Context, want []string) ([]string, error) {
	have, err := c.databases(ctx)
	if err != nil {
		return nil, err
	}
	if want == nil {
		return have, nil
	}
	ok := map[string]bool{}
	for _, d := range have {
		ok[d] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, d := range want {
		if !ok[d] {
			return nil, rdsbackup.Errorf(rdsbackup.EDBNameNotFound, "The database %s does not exist or does not accept connections.", rdsbackup.QuoteValue(d))
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, nil
}

// EstimateSize returns pg_database_size of the databases a logical backup
// reads, or of every database for a physical one. A custom-format dump
// holds no indexes, so a logical backup usually streams less.
func (e *Engine) EstimateSize(ctx context.Context, inst *rdsbackup.Instance, req rdsbackup.BackupRequest) (int64, error) {
	c, err := connect(ctx, inst.DSN, "")
	if err != nil {
		return 0, err
	}
	defer c.close()
	var size int64
	if req.Method == rdsbackup.MethodPhysical {
		err = c.QueryRow(ctx, `SELECT coalesce(sum(pg_catalog.pg_database_size(oid)), 0)::bigint FROM pg_catalog.pg_database`).Scan(&size)
	} else {
		dbs, err2 := c.selectDatabases(ctx, req.Databases)
		if err2 != nil {
			return 0, err2
		}
		err = c.QueryRow(ctx, `SELECT coalesce(sum(pg_catalog.pg_database_size(d)), 0)::bigint FROM unnest($1::text[]) AS d`, dbs).Scan(&size)
	}
	if err != nil {
		return 0, c.redact.err(fmt.Errorf("read database sizes: %w", err))
	}
	return size, nil
}

// now reads the server's clock, in unix seconds.
func (c *conn) now(ctx context.Context) (int64, error) {
	var t int64
	if err := c.QueryRow(ctx, `SELECT floor(extract(epoch FROM now()))::bigint`).Scan(&t); err != nil {
		return 0, c.redact.err(fmt.Errorf("read the server time: %w", err))
	}
	return t, nil
}
