// Package drill runs restore drills (docs/drills.md): a Success backup set
// restored into a throwaway MariaDB or PostgreSQL server started from the
// installed binaries (engine/localserver, as clones are, but never
// registered as an instance), checked, and the verdict recorded on the set.
//
// A drill either judges the set (Passed, Failed: IsAvail 0 with the reason)
// or says it could not run (NotRun: its server died, a timeout, a tool
// missing) and leaves the set alone: a drill that breaks for its own
// reasons must not make a good set unavailable.
//
// Each drill lives in Dir/drill-<BackupId>-<random> and is removed when it
// ends; Clean removes what a killed process left there (the servers
// themselves die with the process that started them, see localserver).
package drill

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/localserver"
)

// Catalog is what a drill needs of the catalog.
type Catalog interface {
	FindBackupSet(ctx context.Context, id int64) (*rdsbackup.BackupSet, error)
	FindInstance(ctx context.Context, id string) (*rdsbackup.Instance, error)
	rdsbackup.VerificationRecorder
}

// Restorer restores a set into a drill's server: the clones' restorer
// (backup.Recoverer), the drill passed as a clone that is never registered.
type Restorer interface {
	RestoreClone(ctx context.Context, c *rdsbackup.Clone, source, target *rdsbackup.Instance, progress func(int)) error
	RestorePhysicalClone(ctx context.Context, c *rdsbackup.Clone, dataDir string) error
}

// Driller runs drills, one at a time. Set the fields, call Clean once at
// start-up, then Run.
type Driller struct {
	// Dir holds the drills' servers; PostgreSQL servers run as the
	// postgres user when rdsbackup runs as root, who must reach it.
	Dir      string
	Catalog  Catalog
	Restorer Restorer
	// Timeout bounds one drill (0: none); a drill that runs out of time
	// did not run (NotRun).
	Timeout time.Duration
	// LowPriority runs the drill's server at nice 19 and idle I/O class.
	LowPriority bool
	Logger      *slog.Logger
	Now         func() time.Time
	// Count is called once per drill with its result (metrics).
	Count func(rdsbackup.DrillResult)

	mu sync.Mutex
}

// dirPrefix names the drills' directories; Clean removes them by it.
const dirPrefix = "drill-"

func (d *Driller) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

func (d *Driller) now() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}

// Clean removes the drill directories a killed process left behind. Call
// it before the first drill, when no drill of this Dir runs.
func (d *Driller) Clean() error {
	entries, err := os.ReadDir(d.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // made by the first drill
	}
	if err != nil {
		return fmt.Errorf("drills: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), dirPrefix) {
			if locked(filepath.Join(d.Dir, e.Name())) {
				continue // another process's drill, running
			}
			d.logger().Warn("removing a drill directory an earlier process left", "dir", e.Name())
			if err := os.RemoveAll(filepath.Join(d.Dir, e.Name())); err != nil {
				return fmt.Errorf("drills: remove %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

// notRun is a failure of the drill itself, not of the set.
type notRun struct{ reason string }

func (e *notRun) Error() string { return e.reason }

// failed is a failed check: the set's fault.
type failed struct{ check, reason string }

func (e *failed) Error() string { return e.check + ": " + e.reason }

// Run runs a drill of set id, calling report with each check as it ends,
// and records the verdict. The error is for a drill that cannot start at
// all (ENOTFOUND, a set that is not a Success set with an object); every
// other outcome is in the returned Drill.
func (d *Driller) Run(ctx context.Context, id int64, report func(rdsbackup.DrillCheck)) (*rdsbackup.Drill, error) {
	if report == nil {
		report = func(rdsbackup.DrillCheck) {}
	}
	set, err := d.Catalog.FindBackupSet(ctx, id)
	if err != nil {
		return nil, err
	}
	if set.Status != rdsbackup.BackupSuccess || set.ObjectKey == "" {
		return nil, rdsbackup.Errorf(rdsbackup.EINVALID, "Backup set %d is not a Success set with data (%s): there is nothing to restore.", id, set.Status)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dr := &rdsbackup.Drill{BackupID: id, StartTime: d.now().UTC()}
	log := d.logger().With("backupId", id, "instance", set.InstanceID)
	log.Info("restore drill started", "method", set.Method)
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	last := time.Now()
	err = d.run(ctx, set, func(c rdsbackup.DrillCheck) {
		c.Took, last = time.Since(last), time.Now()
		dr.Checks = append(dr.Checks, c)
		report(c)
	})
	dr.EndTime = d.now().UTC()
	var nr *notRun
	var f *failed
	switch {
	case err == nil:
		dr.Result = rdsbackup.DrillPassed
	case errors.As(err, &f):
		dr.Result, dr.Reason = rdsbackup.DrillFailed, f.Error()
	case errors.As(err, &nr):
		dr.Result, dr.Reason = rdsbackup.DrillNotRun, nr.reason
	default:
		dr.Result, dr.Reason = rdsbackup.DrillNotRun, err.Error()
	}
	if len(dr.Reason) > 2000 {
		dr.Reason = dr.Reason[:2000]
	}
	// The verdict is recorded even when ctx has ended (a timeout is NotRun
	// and records nothing, but a Failed verdict must not be lost).
	rctx := context.WithoutCancel(ctx)
	switch dr.Result {
	case rdsbackup.DrillPassed:
		err = d.Catalog.RecordVerification(rctx, id, rdsbackup.VerifyPassed, dr.EndTime, "")
		log.Info("restore drill passed", "took", dr.EndTime.Sub(dr.StartTime).Round(time.Millisecond))
	case rdsbackup.DrillFailed:
		err = d.Catalog.RecordVerification(rctx, id, rdsbackup.VerifyFailed, dr.EndTime, dr.Reason)
		log.Error("restore drill failed: the set is no longer available", "reason", dr.Reason)
	default:
		err = nil
		log.Warn("restore drill could not run; the set is left as it was", "reason", dr.Reason)
	}
	if d.Count != nil {
		d.Count(dr.Result)
	}
	if err != nil {
		return dr, fmt.Errorf("record the drill's verdict: %w", err)
	}
	return dr, nil
}

// server is a drill's running server.
type server interface {
	Remove()
	Running() bool
	Pid() int
}

// run restores the set and checks it; the error is *failed, *notRun or
// another (not run).
func (d *Driller) run(ctx context.Context, set *rdsbackup.BackupSet, report func(rdsbackup.DrillCheck)) error {
	// Searchable, not readable, by others: PostgreSQL runs as the postgres
	// user when rdsbackup runs as root, and must reach its directory.
	if err := os.MkdirAll(d.Dir, 0o711); err != nil {
		return &notRun{"the drills' directory: " + err.Error()}
	}
	dir, err := os.MkdirTemp(d.Dir, fmt.Sprintf("%s%d-", dirPrefix, set.ID))
	if err != nil {
		return &notRun{"the drill's directory: " + err.Error()}
	}
	defer os.RemoveAll(dir)
	unlock, err := lockDir(dir)
	if err != nil {
		return &notRun{"lock the drill's directory: " + err.Error()}
	}
	defer unlock()
	if err := os.Chmod(dir, 0o711); err != nil {
		return &notRun{err.Error()}
	}
	// Short: a PostgreSQL socket path must fit in 100 bytes.
	srvDir := filepath.Join(dir, "s")
	pw, err := password()
	if err != nil {
		return err
	}
	src, err := d.Catalog.FindInstance(ctx, set.InstanceID)
	if err != nil {
		// The instance may have left the config; its sets stay drillable.
		src = &rdsbackup.Instance{ID: set.InstanceID, Engine: set.Engine}
	}
	c := &rdsbackup.Clone{ID: filepath.Base(dir), SourceID: set.InstanceID, Engine: set.Engine, BackupID: set.ID}
	pgPhysical := set.Method == rdsbackup.MethodPhysical && set.Engine == rdsbackup.EnginePostgreSQL

	var srv server
	defer func() {
		if srv != nil {
			srv.Remove()
		}
	}()
	// restoreErr classifies a restore's error: the drill's server gone or
	// the time up means the drill did not run.
	restoreErr := func(err error) error {
		switch {
		case ctx.Err() != nil:
			return &notRun{"the drill ran out of time or was cancelled during the restore: " + ctx.Err().Error()}
		case srv != nil && !srv.Running():
			return &notRun{"the drill's server stopped during the restore: " + err.Error()}
		case ownFault(err):
			return &notRun{"the drill's own files: " + err.Error()}
		}
		return &failed{"restore", message(err)}
	}
	if pgPhysical {
		data, err := localserver.MakePostgresDataDir(srvDir)
		if err != nil {
			return &notRun{"make the drill's data directory: " + err.Error()}
		}
		if err := d.Restorer.RestorePhysicalClone(ctx, c, data); err != nil {
			report(rdsbackup.DrillCheck{Name: "restore", Detail: message(err)})
			return restoreErr(err)
		}
		report(rdsbackup.DrillCheck{Name: "restore", OK: true, Detail: "the physical image was restored as a data directory"})
		// A server started on existing data keeps the port it is given.
		port, err := freePort()
		if err != nil {
			return &notRun{"no free port for the drill's server: " + err.Error()}
		}
		p, err := localserver.StartPostgres(ctx, localserver.PostgresOptions{Dir: srvDir, Password: pw, Existing: true,
			Port: port, Settings: pgDrillSettings()})
		if err != nil {
			if ctx.Err() != nil {
				return &notRun{"the drill ran out of time or was cancelled while its server started: " + ctx.Err().Error()}
			}
			if strings.Contains(err.Error(), "could not bind") || strings.Contains(err.Error(), "already in use") {
				return &notRun{"the drill's server could not listen: " + err.Error()}
			}
			report(rdsbackup.DrillCheck{Name: "consistent", Detail: err.Error()})
			return &failed{"consistent", "the server did not start on the restored data directory: " + err.Error()}
		}
		srv = p
		d.lower(p.Pid())
		if err := pgConsistent(ctx, p); err != nil {
			report(rdsbackup.DrillCheck{Name: "consistent", Detail: err.Error()})
			return d.checkErr(ctx, srv, "consistent", err)
		}
		report(rdsbackup.DrillCheck{Name: "consistent", OK: true, Detail: "the server started on the restored data and is out of recovery"})
	} else {
		target, s, err := d.start(ctx, set.Engine, srvDir, pw)
		if err != nil {
			return err
		}
		srv = s
		report(rdsbackup.DrillCheck{Name: "server", OK: true, Detail: fmt.Sprintf("a new empty %s server started for the restore", set.Engine)})
		if err := d.Restorer.RestoreClone(ctx, c, src, target, nil); err != nil {
			report(rdsbackup.DrillCheck{Name: "restore", Detail: message(err)})
			return restoreErr(err)
		}
		detail := "every part was restored with the engine's own tools"
		if set.Method == rdsbackup.MethodPhysical {
			detail = "mariadb-backup --prepare made the image consistent and a server started on it (the restore copies from that server)"
		}
		report(rdsbackup.DrillCheck{Name: "restore", OK: true, Detail: detail})
	}

	// Every database the set lists is there.
	want := setDatabases(set)
	got, err := databases(ctx, srv)
	if err != nil {
		return d.checkErr(ctx, srv, "databases", err)
	}
	var missing []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		err := fmt.Errorf("the set lists database(s) %s, which the restored server does not have", strings.Join(missing, ", "))
		report(rdsbackup.DrillCheck{Name: "databases", Detail: err.Error()})
		return &failed{"databases", err.Error()}
	}
	report(rdsbackup.DrillCheck{Name: "databases", OK: true, Detail: fmt.Sprintf("%d database(s) of the set found: %s", len(want), strings.Join(want, ", "))})

	// The engine's own integrity check.
	detail, err := integrity(ctx, srv, want, set.Method == rdsbackup.MethodPhysical)
	if err != nil {
		report(rdsbackup.DrillCheck{Name: "integrity", Detail: err.Error()})
		return d.checkErr(ctx, srv, "integrity", err)
	}
	report(rdsbackup.DrillCheck{Name: "integrity", OK: true, Detail: detail})
	return nil
}

// checkErr classifies a check's error: the server gone, the time up or
// the check's tool missing mean the drill did not run.
func (d *Driller) checkErr(ctx context.Context, srv server, check string, err error) error {
	var ni *localserver.NotInstalledError
	var nr *notRun
	switch {
	case errors.As(err, &nr):
		return err
	case ctx.Err() != nil:
		return &notRun{"the drill ran out of time or was cancelled during the " + check + " check: " + ctx.Err().Error()}
	case srv != nil && !srv.Running():
		return &notRun{"the drill's server stopped during the " + check + " check: " + err.Error()}
	case errors.As(err, &ni):
		return &notRun{err.Error()}
	}
	return &failed{check, err.Error()}
}

// start starts an empty server of the engine for a logical restore.
func (d *Driller) start(ctx context.Context, engine rdsbackup.Engine, dir, pw string) (*rdsbackup.Instance, server, error) {
	notStarted := func(err error) error {
		return &notRun{fmt.Sprintf("the drill's %s server did not start: %v", engine, err)}
	}
	switch engine {
	case rdsbackup.EngineMariaDB, rdsbackup.EngineMySQL:
		m, err := localserver.StartMariaDB(ctx, localserver.MariaDBOptions{Dir: dir, RootPassword: pw, Args: mariadbDrillArgs})
		if err != nil {
			return nil, nil, notStarted(err)
		}
		d.lower(m.Pid())
		return &rdsbackup.Instance{ID: "drill", Engine: engine, DSN: m.DSN("")}, m, nil
	case rdsbackup.EnginePostgreSQL:
		p, err := localserver.StartPostgres(ctx, localserver.PostgresOptions{Dir: dir, Password: pw, Settings: pgDrillSettings()})
		if err != nil {
			return nil, nil, notStarted(err)
		}
		d.lower(p.Pid())
		return &rdsbackup.Instance{ID: "drill", Engine: engine, DSN: p.URL("postgres")}, p, nil
	}
	return nil, nil, &notRun{fmt.Sprintf("drills of %s sets are not supported", engine)}
}

// A drill's server is thrown away after the checks, so it trades
// durability for speed: a larger buffer pool and redo log than
// localserver's test defaults (whose 16 MiB log makes a restore of a few
// hundred MiB checkpoint all the time), no flush at commit, no binary log.
var mariadbDrillArgs = []string{
	"--innodb-buffer-pool-size=256M",
	"--innodb-log-file-size=256M",
	"--innodb-flush-log-at-trx-commit=0",
	"--skip-log-bin",
}

// pgDrillSettings: as mariadbDrillArgs (fsync is already off); never
// archiving WAL, even when a physical set carries the source's settings.
func pgDrillSettings() map[string]string {
	return map[string]string{
		"archive_mode":       "off",
		"shared_buffers":     "128MB",
		"max_wal_size":       "2GB",
		"synchronous_commit": "off",
		"full_page_writes":   "off",
		"autovacuum":         "off",
	}
}

// lower gives the drill's server the lowest CPU and I/O priority, so that
// it never slows the instances' backups down much.
func (d *Driller) lower(pid int) {
	if !d.LowPriority || pid <= 0 {
		return
	}
	if err := lowerPriority(pid); err != nil {
		d.logger().Warn("could not lower the drill server's priority", "pid", pid, "err", err)
	}
}

// setDatabases are the databases a set's manifest lists (its database
// parts), sorted.
func setDatabases(set *rdsbackup.BackupSet) []string {
	var out []string
	for _, a := range set.Artifacts {
		if (a.Kind == rdsbackup.PartDatabase || a.Kind == "") && a.Database != "" {
			out = append(out, a.Database)
		}
	}
	if len(out) == 0 {
		out = slices.Clone(set.DBNames)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// databases lists the server's databases.
func databases(ctx context.Context, srv server) ([]string, error) {
	var q string
	var db *sql.DB
	var err error
	switch s := srv.(type) {
	case *localserver.MariaDB:
		db, err = s.Open(ctx, "")
		q = "SELECT schema_name FROM information_schema.schemata"
	case *localserver.Postgres:
		db, err = s.Open(ctx, "postgres")
		q = "SELECT datname FROM pg_database"
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return column(ctx, db, q)
}

func column(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// integrity runs the engine's own check on the databases.
func integrity(ctx context.Context, srv server, dbs []string, physical bool) (string, error) {
	switch s := srv.(type) {
	case *localserver.MariaDB:
		return mariadbCheck(ctx, s, dbs, physical)
	case *localserver.Postgres:
		return pgAmcheck(ctx, s, dbs, physical)
	}
	return "", errors.New("unknown server")
}

// mariadbCheck runs CHECK TABLE on every base table of the databases
// (what mariadb-check sends) and fails on any row that is not OK; for a
// physical set (the source's own pages) CHECK TABLE … EXTENDED, which
// also matches every secondary index against the rows, as pgAmcheck does.
func mariadbCheck(ctx context.Context, m *localserver.MariaDB, dbs []string, physical bool) (string, error) {
	stmt := "CHECK TABLE"
	opt := ""
	if physical {
		opt = " EXTENDED"
	}
	db, err := m.Open(ctx, "")
	if err != nil {
		return "", err
	}
	defer db.Close()
	n := 0
	var bad []string
	for _, name := range dbs {
		tables, err := column(ctx, db, "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name", name)
		if err != nil {
			return "", err
		}
		for _, t := range tables {
			rows, err := db.QueryContext(ctx, stmt+" "+ident(name)+"."+ident(t)+opt)
			if err != nil {
				return "", fmt.Errorf("CHECK TABLE %s.%s: %w", name, t, err)
			}
			for rows.Next() {
				var tbl, op, typ, text string
				if err := rows.Scan(&tbl, &op, &typ, &text); err != nil {
					rows.Close()
					return "", err
				}
				if strings.EqualFold(typ, "error") || (strings.EqualFold(typ, "status") && !strings.EqualFold(text, "OK")) {
					bad = append(bad, fmt.Sprintf("%s: %s %s", tbl, typ, text))
				}
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return "", err
			}
			n++
		}
	}
	if len(bad) > 0 {
		return "", fmt.Errorf("CHECK TABLE found problems: %s", strings.Join(bad, "; "))
	}
	if physical {
		stmt += " … EXTENDED"
	}
	return fmt.Sprintf("%s: %d table(s) OK", stmt, n), nil
}

func ident(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// pgAmcheck runs pg_amcheck (the postgresql package's, of the server's
// version) on the databases through the server's socket: every table's
// heap and every B-tree index, with the amcheck extension installed where
// missing. For a physical set (the source's own pages) also
// --heapallindexed, that every heap tuple is in each index; a logical
// restore builds its indexes from the heap it just loaded, where that
// costs a second pass over the data for little.
func pgAmcheck(ctx context.Context, p *localserver.Postgres, dbs []string, physical bool) (string, error) {
	bin := p.Bin("pg_amcheck")
	if _, err := os.Stat(bin); err != nil {
		return "", &notRun{"pg_amcheck is not installed next to the server (" + bin + "): install the postgresql package of this version"}
	}
	args := []string{"--host=" + p.SocketDir, fmt.Sprintf("--port=%d", p.Port), "--username=" + p.User,
		"--no-password", "--install-missing"}
	what := "pg_amcheck"
	if physical {
		args = append(args, "--heapallindexed")
		what += " --heapallindexed"
	}
	if len(dbs) == 0 {
		return "no database to check", nil
	}
	for _, db := range dbs {
		args = append(args, "--database="+db)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	// Through the socket, which trusts local connections: no password in
	// the tool's environment; and none of rdsbackup's variables.
	cmd.Env = []string{"PGSSLMODE=disable"}
	out, err := cmd.CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		if text == "" {
			text = err.Error()
		}
		return "", fmt.Errorf("pg_amcheck: %s", text)
	}
	return fmt.Sprintf("%s: %d database(s) OK", what, len(dbs)), nil
}

// pgConsistent checks that the server on a restored data directory has
// finished its recovery.
func pgConsistent(ctx context.Context, p *localserver.Postgres) error {
	db, err := p.Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		var rec bool
		if err := db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
			return err
		}
		if !rec {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the server is still in recovery a minute after it started")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ownFault reports whether a restore's error is about the drill's own
// files (its scratch directory, a full disk) rather than the set: a file
// error of this host, or no space.
func ownFault(err error) bool {
	switch rdsbackup.ErrorCode(err) {
	case rdsbackup.ENOSPACE:
		return true
	case rdsbackup.ENOTFOUND, rdsbackup.ENoSuchKey, rdsbackup.EObjectCorrupt:
		return false // the set's object is missing or damaged
	}
	var pe *fs.PathError
	return errors.As(err, &pe)
}

// freePort is a TCP port of 127.0.0.1 free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// message is what a drill says of an error: its text, which for an
// internal error (a tool's failure) is the detail that matters.
func message(err error) string {
	if rdsbackup.ErrorCode(err) == rdsbackup.EINTERNAL {
		return err.Error()
	}
	return rdsbackup.ErrorMessage(err)
}

// password is a drill server's superuser password: random, used over SQL
// and DSNs only.
func password() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
