package mysql

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/rdsbackup/rdsbackup"
)

// Backup streams a backup of the instance into sink: one part per database
// (Logical) or one part "instance" (Physical). See the package
// documentation for what each method needs and guarantees.
func (e *Engine) Backup(ctx context.Context, inst *rdsbackup.Instance, req rdsbackup.BackupRequest, sink rdsbackup.PartSink) (rdsbackup.BackupResult, error) {
	switch req.Method {
	case rdsbackup.MethodLogical:
		return e.backupLogical(ctx, inst, req, sink)
	case rdsbackup.MethodPhysical:
		return e.backupPhysical(ctx, inst, req, sink)
	default:
		return rdsbackup.BackupResult{}, rdsbackup.Errorf(rdsbackup.EUnsupportedMethod,
			"BackupMethod %q is not supported for %s: use Logical or Physical.", req.Method, e.Flavor)
	}
}

// dumpGroups are the option groups of a dump run besides [client]. The
// client's default max_allowed_packet (16 to 24 MB) is too small for large
// rows. MySQL's mysqldump would otherwise write SET @@GLOBAL.GTID_PURGED
// into each dump of a GTID server, which fails a restore into any server
// that has executed transactions.
func (e *Engine) dumpGroups() []optionGroup {
	g := optionGroup{name: "mysqldump", options: [][2]string{{"max-allowed-packet", "1G"}}}
	if !e.mariadb() {
		g.options = append(g.options, [2]string{"loose-set-gtid-purged", "OFF"})
	}
	return []optionGroup{g}
}

// dumpArgs is the command line of the dump of one database. optFile holds
// the credentials; the password is never an argument. Without --databases
// the dump names no database (no CREATE DATABASE, no USE), so it restores
// into whichever the client selects. --no-tablespaces spares the PROCESS
// privilege MySQL 8 would otherwise need, for tablespaces only NDB has.
func dumpArgs(optFile, database string) []string {
	return []string{
		"--defaults-extra-file=" + optFile,
		"--single-transaction",
		"--quick",
		"--routines",
		"--triggers",
		"--events",
		"--hex-blob",
		"--default-character-set=utf8mb4",
		"--skip-dump-date",
		"--no-tablespaces",
		"--",
		database,
	}
}

func (e *Engine) backupLogical(ctx context.Context, inst *rdsbackup.Instance, req rdsbackup.BackupRequest, sink rdsbackup.PartSink) (rdsbackup.BackupResult, error) {
	var res rdsbackup.BackupResult
	dump, err := e.lookTool(roleDump)
	if err != nil {
		return res, err
	}
	c, err := e.open(ctx, inst.ID, inst.DSN)
	if err != nil {
		return res, err
	}
	defer c.Close()
	if res.Info, err = e.serverInfo(ctx, inst.ID, c); err != nil {
		return res, err
	}
	all, err := listDatabases(ctx, c)
	if err != nil {
		return res, fmt.Errorf("list databases of %s: %w", inst.ID, err)
	}
	dbs, err := chooseDatabases(inst.ID, all, req.Databases)
	if err != nil {
		return res, err
	}
	client, err := clientOptions(c.cfg)
	if err != nil {
		return res, fmt.Errorf("back up %s: %w", inst.ID, err)
	}
	ws, err := e.newWorkspace(append([]optionGroup{client}, e.dumpGroups()...)...)
	if err != nil {
		return res, fmt.Errorf("back up %s: %w", inst.ID, err)
	}
	defer ws.remove()

	if err := c.db.QueryRowContext(ctx, "SELECT UNIX_TIMESTAMP()").Scan(&res.ConsistentTime); err != nil {
		return res, fmt.Errorf("read the clock of %s: %w", inst.ID, redact(err, c.cfg.Passwd))
	}
	// With the binary log on, each dump records the position of its
	// snapshot (a comment, --master-data=2), from which point-in-time
	// recovery replays that database. MariaDB takes it from the
	// snapshot itself (binlog_snapshot_file), without a global lock.
	positions := false
	if e.mariadb() {
		var logBin int
		if err := c.db.QueryRowContext(ctx, "SELECT @@log_bin").Scan(&logBin); err != nil {
			return res, fmt.Errorf("read log_bin of %s: %w", inst.ID, redact(err, c.cfg.Passwd))
		}
		positions = logBin == 1
	}
	res.Databases = []string{}
	log := e.logger().With("instance", inst.ID, "tool", dump.name)
	for _, db := range dbs {
		log.Info("dumping database", "database", db)
		header, err := databaseHeader(ctx, c, db)
		if err != nil {
			return res, fmt.Errorf("dump database %s of %s: %w", db, inst.ID, err)
		}
		part := rdsbackup.Part{Name: db, Kind: rdsbackup.PartDatabase}
		args := dumpArgs(ws.optFile, db)
		partSink := sink
		var sniff *sniffSink
		if positions {
			args = append([]string{args[0], "--master-data=2"}, args[1:]...)
			sniff = &sniffSink{sink: sink}
			partSink = sniff
		}
		if err := e.streamPart(ctx, dump, ws, c.cfg.Passwd, args, header, partSink, part); err != nil {
			return res, fmt.Errorf("dump database %s of %s: %w", db, inst.ID, err)
		}
		if sniff != nil && sniff.sn != nil && !sniff.sn.pos.IsZero() {
			if res.LogPositions == nil {
				res.LogPositions = map[string]rdsbackup.LogPosition{}
			}
			res.LogPositions[db] = sniff.sn.pos
		}
		res.Databases = append(res.Databases, db)
	}
	return res, nil
}

// sniffSink reads the binary log position of a dump as it passes.
type sniffSink struct {
	sink rdsbackup.PartSink
	sn   *positionSniffer
}

func (s *sniffSink) WritePart(ctx context.Context, part rdsbackup.Part, r io.Reader) error {
	s.sn = &positionSniffer{r: r}
	return s.sink.WritePart(ctx, part, s.sn)
}

// databaseHeader returns the statement rdsbackup puts at the start of a
// database's dump: ALTER DATABASE without a name, which gives the database
// the dump is restored into the default character set and collation of the
// database dumped. Without --databases the dump itself does not carry them,
// and routines record the collation of their database when created.
func databaseHeader(ctx context.Context, c *conn, db string) (string, error) {
	var charset, collation string
	err := c.db.QueryRowContext(ctx,
		"SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", db).
		Scan(&charset, &collation)
	if errors.Is(err, sql.ErrNoRows) {
		return "", rdsbackup.Errorf(rdsbackup.EDBNameNotFound, "The database %s no longer exists.", rdsbackup.QuoteValue(db))
	} else if err != nil {
		return "", fmt.Errorf("read its character set: %w", redact(err, c.cfg.Passwd))
	}
	if !plainName.MatchString(charset) || !plainName.MatchString(collation) {
		return "", nil
	}
	return "-- rdsbackup: the default character set and collation of the dumped database\n" +
		"/*!40101 ALTER DATABASE CHARACTER SET " + charset + " COLLATE " + collation + " */;\n", nil
}

var plainName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// sandboxPrefix starts the first line of dumps by recent mariadb-dump
// versions, which the mariadb client wants first.
const sandboxPrefix = "/*M!999999\\- "

// withHeader returns r with header inserted at its start, or after its
// first line when that is MariaDB's sandbox-mode line.
func withHeader(r io.Reader, header string) io.Reader {
	return &headerReader{r: r, header: header}
}

type headerReader struct {
	r      io.Reader
	header string
	out    io.Reader
}

func (h *headerReader) Read(p []byte) (int, error) {
	if h.out == nil {
		br := bufio.NewReader(h.r)
		first := ""
		if b, _ := br.Peek(len(sandboxPrefix)); string(b) == sandboxPrefix {
			// An error here comes again from br: the underlying
			// reader repeats it.
			first, _ = br.ReadString('\n')
		}
		h.out = io.MultiReader(strings.NewReader(first), strings.NewReader(h.header), br)
	}
	return h.out.Read(p)
}

// chooseDatabases returns the databases to dump: every user database, or
// the requested ones (once each, in the order asked), which must be user
// databases of the server.
func chooseDatabases(instID string, all, requested []string) ([]string, error) {
	if len(requested) == 0 {
		return all, nil
	}
	have := map[string]bool{}
	for _, d := range all {
		have[d] = true
	}
	seen := map[string]bool{}
	var out []string
	for _, d := range requested {
		if !have[d] {
			return nil, rdsbackup.Errorf(rdsbackup.EDBNameNotFound, "The database %s does not exist on instance %s.", rdsbackup.QuoteValue(d), instID)
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, nil
}

func (e *Engine) backupPhysical(ctx context.Context, inst *rdsbackup.Instance, req rdsbackup.BackupRequest, sink rdsbackup.PartSink) (rdsbackup.BackupResult, error) {
	var res rdsbackup.BackupResult
	if len(req.Databases) > 0 {
		return res, rdsbackup.Errorf(rdsbackup.EInvalidCombination,
			"A Physical backup covers the whole instance; back up single databases with the Logical method.")
	}
	backup, err := e.lookTool(roleBackup)
	if errors.Is(err, errNoTool) {
		if e.mariadb() {
			return res, rdsbackup.Errorf(rdsbackup.EUnsupportedMethod,
				"Physical backups of MariaDB need mariadb-backup, which is not installed on the rdsbackup host (Debian package mariadb-backup).")
		}
		return res, rdsbackup.Errorf(rdsbackup.EUnsupportedMethod,
			"Physical backups of MySQL need Percona XtraBackup: xtrabackup is not installed on the rdsbackup host.")
	} else if err != nil {
		return res, err
	}
	cfg, err := parseDSN(inst.DSN)
	if err != nil {
		return res, fmt.Errorf("connect to %s: %w", inst.ID, err)
	}
	if err := checkLocalAddress(ctx, inst.ID, backup.name, cfg); err != nil {
		return res, err
	}
	c, err := e.open(ctx, inst.ID, inst.DSN)
	if err != nil {
		return res, err
	}
	defer c.Close()
	if res.Info, err = e.serverInfo(ctx, inst.ID, c); err != nil {
		return res, err
	}
	if err := checkLocalDataDir(ctx, inst.ID, backup.name, c); err != nil {
		return res, err
	}
	if res.Databases, err = listDatabases(ctx, c); err != nil {
		return res, fmt.Errorf("list databases of %s: %w", inst.ID, err)
	}
	client, err := clientOptions(c.cfg)
	if err != nil {
		return res, fmt.Errorf("back up %s: %w", inst.ID, err)
	}
	ws, err := e.newWorkspace(client)
	if err != nil {
		return res, fmt.Errorf("back up %s: %w", inst.ID, err)
	}
	defer ws.remove()
	// With --stream the tool keeps only bookkeeping files in its target
	// directory; the data goes to standard output.
	target := filepath.Join(ws.dir, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		return res, fmt.Errorf("back up %s: %w", inst.ID, err)
	}
	// --extra-lsndir gets a copy of the backup's bookkeeping outside the
	// stream: xtrabackup_info holds the binary log position of the
	// consistent point (read under BACKUP STAGE BLOCK_COMMIT), which
	// point-in-time recovery replays from.
	info := filepath.Join(ws.dir, "info")
	if err := os.Mkdir(info, 0o700); err != nil {
		return res, fmt.Errorf("back up %s: %w", inst.ID, err)
	}
	args := []string{ws.defaultsArg(), "--backup", "--stream=xbstream", "--target-dir=" + target, "--extra-lsndir=" + info}
	e.logger().Info("copying instance", "instance", inst.ID, "tool", backup.name)
	part := rdsbackup.Part{Name: "instance", Kind: rdsbackup.PartPhysical}
	if err := e.streamPart(ctx, backup, ws, c.cfg.Passwd, args, "", sink, part); err != nil {
		return res, fmt.Errorf("physical backup of %s: %w", inst.ID, err)
	}
	if e.mariadb() {
		pos, err := physicalPosition(info)
		if err != nil {
			return res, fmt.Errorf("physical backup of %s: %w", inst.ID, err)
		}
		if !pos.IsZero() {
			res.LogPositions = map[string]rdsbackup.LogPosition{"instance": pos}
		}
	}
	if err := c.db.QueryRowContext(ctx, "SELECT UNIX_TIMESTAMP()").Scan(&res.ConsistentTime); err != nil {
		return res, fmt.Errorf("read the clock of %s: %w", inst.ID, redact(err, c.cfg.Passwd))
	}
	return res, nil
}

// checkLocalAddress and checkLocalDataDir make sure that a physical backup
// tool would read the data files of the server it connects to: the DSN must
// reach this machine and the server's data directory must be here.
// Otherwise the tool would copy whatever lies at that path on this machine.
func checkLocalAddress(ctx context.Context, instID, toolName string, cfg *mysql.Config) error {
	local, err := isLocal(ctx, cfg)
	if err != nil {
		return fmt.Errorf("physical backup of %s: %w", instID, err)
	}
	if !local {
		return rdsbackup.Errorf(rdsbackup.EUnsupportedMethod,
			"Physical backups of %s need %s to run on the database host, and %s is not an address of the rdsbackup host.", instID, toolName, cfg.Addr)
	}
	return nil
}

func checkLocalDataDir(ctx context.Context, instID, toolName string, c *conn) error {
	var dir string
	if err := c.db.QueryRowContext(ctx, "SELECT @@datadir").Scan(&dir); err != nil {
		return fmt.Errorf("read data directory of %s: %w", instID, redact(err, c.cfg.Passwd))
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return rdsbackup.Errorf(rdsbackup.EUnsupportedMethod,
			"Physical backups of %s need %s to read the server's data directory %s, which is not on the rdsbackup host.", instID, toolName, dir)
	}
	return nil
}

// isLocal reports whether the DSN's server is on this machine: a socket, or
// a host name that resolves to a loopback address or one of this machine's
// interface addresses.
func isLocal(ctx context.Context, cfg *mysql.Config) (bool, error) {
	if cfg.Net == "unix" {
		return true, nil
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return false, fmt.Errorf("DSN address %q: %w", cfg.Addr, err)
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return false, fmt.Errorf("resolve %s: %w", host, err)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, fmt.Errorf("list interface addresses: %w", err)
	}
	for _, ip := range ips {
		if ip.IP.IsLoopback() {
			return true, nil
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip.IP) {
				return true, nil
			}
		}
	}
	return false, nil
}

// binlogPosRE reads the binlog_pos line mariadb-backup writes into
// xtrabackup_info when the server's binary log is on.
var binlogPosRE = regexp.MustCompile(`(?m)^binlog_pos = filename '([^']+)', position '(\d+)'(?:, GTID of the last change '([^']*)')?`)

// physicalPosition returns the binary log position recorded in the
// backup's xtrabackup_info (mariadb_backup_info in later versions) in
// dir; zero when the server's binary log was off.
func physicalPosition(dir string) (rdsbackup.LogPosition, error) {
	var b []byte
	var err error
	for _, name := range []string{"xtrabackup_info", "mariadb_backup_info"} {
		if b, err = os.ReadFile(filepath.Join(dir, name)); err == nil {
			break
		}
	}
	if err != nil {
		return rdsbackup.LogPosition{}, fmt.Errorf("read the backup's binary log position: %w", err)
	}
	m := binlogPosRE.FindSubmatch(b)
	if m == nil {
		return rdsbackup.LogPosition{}, nil
	}
	off, err := strconv.ParseInt(string(m[2]), 10, 64)
	if err != nil {
		return rdsbackup.LogPosition{}, fmt.Errorf("binary log position %q: %w", m[2], err)
	}
	return rdsbackup.LogPosition{File: string(m[1]), Offset: off, GTID: string(m[3])}, nil
}
