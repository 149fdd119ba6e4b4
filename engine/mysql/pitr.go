package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/childproc"
)

// DropLogSource does nothing: a binary log stream leaves nothing on the
// server (unlike a PostgreSQL slot).
func (e *Engine) DropLogSource(ctx context.Context, inst *rdsbackup.Instance, spec rdsbackup.StreamSpec) error {
	return nil
}

// masterDataRE finds the binary log position mariadb-dump --master-data=2
// writes as a comment near the start of a dump.
var masterDataRE = regexp.MustCompile(`(?m)^-- CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+);`)

// positionSniffer passes a dump through and finds its binary log position
// in the first bytes.
type positionSniffer struct {
	r    io.Reader
	head []byte
	done bool
	pos  rdsbackup.LogPosition
}

const sniffBytes = 64 << 10

func (p *positionSniffer) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if !p.done && n > 0 {
		p.head = append(p.head, b[:n]...)
		if m := masterDataRE.FindSubmatch(p.head); m != nil {
			off, _ := strconv.ParseInt(string(m[2]), 10, 64)
			p.pos = rdsbackup.LogPosition{File: string(m[1]), Offset: off}
			p.done, p.head = true, nil
		} else if len(p.head) >= sniffBytes {
			p.done, p.head = true, nil
		}
	}
	return n, err
}

// RestoreToTime restores a set rolled forward to req.Time. A Physical set
// (MariaDB) is restored whole and replayed in a temporary server, into
// req.DataDir or copied into the target (see restorePhysicalToTime). A
// Logical set's databases are restored into the target server and the
// binary log replayed from each database's position up to req.Time:
//
//	mariadb-binlog --database=SRC [--rewrite-db=SRC->DST] --start-position=POS
//	    --stop-datetime=T+1s FILE… | mariadb --binary-mode
//
// with TZ=UTC, because the tool reads --stop-datetime in its local time
// zone. Every target database must not exist yet: a clash is refused before
// anything is written. The replay is filtered by database, as MariaDB's
// replication filters do: row events by their table's database, statements
// (DDL) by their default database (USE). The target's user needs the
// privileges of a restore and BINLOG REPLAY (MariaDB 10.5+) or SUPER.
func (e *Engine) RestoreToTime(ctx context.Context, req rdsbackup.PointInTimeRequest, progress func(int)) error {
	if progress == nil {
		progress = func(int) {}
	}
	if req.Set == nil {
		return errors.New("a restore to a time needs a backup set")
	}
	if req.Set.Method == rdsbackup.MethodPhysical {
		if !e.mariadb() {
			return rdsbackup.Errorf(rdsbackup.EUnsupportedMethod,
				"A restore of %s to a time starts from a Logical backup set; physical sets of MySQL record no binary log position.", e.Flavor)
		}
		return e.restorePhysicalToTime(ctx, req, progress)
	}
	if req.Target == nil {
		return rdsbackup.Errorf(rdsbackup.EUnsupportedMethod,
			"A Logical backup set of %s is restored to a time into a running server (a target instance or RDSBACKUP_TARGET_DSN); only a Physical set restores into a data directory.", e.Flavor)
	}
	binlog, err := e.lookTool(roleBinlog)
	if err != nil {
		return err
	}
	client, err := e.lookTool(roleClient)
	if err != nil {
		return err
	}
	// A set restored as it is (RecoveryDBInstance with BackupId) has no
	// logs to replay.
	replay := !req.Time.IsZero() || len(req.Logs) > 0
	plan, err := pitrDatabases(req, replay)
	if err != nil {
		return err
	}

	// Refuse any clash before writing anything.
	c, err := e.open(ctx, req.Target.ID, req.Target.DSN)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, d := range plan {
		exists, _, err := databaseObjects(ctx, c.db, d.target)
		if err != nil {
			return fmt.Errorf("check database %s on %s: %w", d.target, req.Target.ID, redact(err, c.cfg.Passwd))
		}
		if exists {
			return rdsbackup.Errorf(rdsbackup.ECONFLICT,
				"The database %s already exists on %s; a restore never overwrites a database: choose new names (DbNames).", rdsbackup.QuoteValue(d.target), req.Target.ID)
		}
	}

	// The logs, decompressed and checked once, for every database.
	paths, err := fetchLogs(ctx, req)
	if err != nil {
		return err
	}
	progress(10)

	group, err := clientOptions(c.cfg)
	if err != nil {
		return err
	}
	ws, err := e.newWorkspace(group, optionGroup{name: "mysql", options: [][2]string{{"max-allowed-packet", "1G"}}})
	if err != nil {
		return err
	}
	defer ws.remove()
	var stop string
	if !req.Time.IsZero() {
		stop = req.Time.UTC().Add(time.Second).Format("2006-01-02 15:04:05")
	}
	for i, d := range plan {
		rc, err := req.OpenPart(ctx, d.artifact)
		if err != nil {
			return fmt.Errorf("read the dump of %s: %w", d.source, err)
		}
		err = e.RestoreLogical(ctx, req.Target.DSN, d.target, rc)
		rc.Close()
		if err != nil {
			return err
		}
		if !replay {
			progress(10 + 90*(i+1)/len(plan))
			continue
		}
		files := logsFrom(req.Logs, paths, d.pos.File)
		if len(files) == 0 {
			return fmt.Errorf("restore %s to a time: no log file holds its position %s:%d", d.source, d.pos.File, d.pos.Offset)
		}
		args := []string{"--no-defaults", "--database=" + d.source, "--start-position=" + strconv.FormatInt(d.pos.Offset, 10)}
		if d.target != d.source {
			args = append(args, "--rewrite-db="+d.source+"->"+d.target)
		}
		if stop != "" {
			args = append(args, "--stop-datetime="+stop)
		}
		args = append(args, "--")
		args = append(args, files...)
		e.logger().Info("replaying binary log", "database", d.source, "as", d.target, "files", len(files), "until", stop)
		if err := e.pipeReplay(ctx, binlog, client, ws, c.cfg.Passwd, args); err != nil {
			return fmt.Errorf("replay the binary log into %s: %w", d.target, err)
		}
		progress(10 + 90*(i+1)/len(plan))
	}
	return nil
}

type pitrDB struct {
	source, target string
	artifact       rdsbackup.Artifact
	pos            rdsbackup.LogPosition
}

// pitrDatabases lists the databases to restore with their dumps and
// positions.
func pitrDatabases(req rdsbackup.PointInTimeRequest, replay bool) ([]pitrDB, error) {
	parts := map[string]rdsbackup.Artifact{}
	for _, a := range req.Set.Artifacts {
		if a.Kind == rdsbackup.PartDatabase || a.Kind == "" {
			parts[a.Database] = a
		}
	}
	names := req.Databases
	if len(names) == 0 {
		names = map[string]string{}
		for db := range parts {
			names[db] = db
		}
	}
	var out []pitrDB
	seen := map[string]bool{}
	for src, dst := range names {
		a, ok := parts[src]
		if !ok {
			return nil, rdsbackup.Errorf(rdsbackup.EDBNameNotFound, "The backup set %d holds no database %s.", req.Set.ID, rdsbackup.QuoteValue(src))
		}
		if dst == "" {
			dst = src
		}
		if seen[dst] {
			return nil, rdsbackup.InvalidParameter("DbNames", "two databases would be restored as "+rdsbackup.QuoteValue(dst))
		}
		seen[dst] = true
		pos, ok := req.Positions[src]
		if replay && (!ok || pos.File == "") {
			return nil, rdsbackup.Errorf(rdsbackup.EPITRNotCovered,
				"The backup set %d has no binary log position for %s (it was taken while the binary log was off): it cannot be rolled forward.", req.Set.ID, rdsbackup.QuoteValue(src))
		}
		out = append(out, pitrDB{source: src, target: dst, artifact: a, pos: pos})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].source < out[j].source })
	return out, nil
}

// fetchLogs writes the decompressed logs into the work directory, one file
// each under its own name, and returns their paths by name.
func fetchLogs(ctx context.Context, req rdsbackup.PointInTimeRequest) (map[string]string, error) {
	dir := filepath.Join(req.WorkDir, "binlogs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for _, f := range req.Logs {
		if f.Kind != rdsbackup.LogKindLog {
			continue
		}
		if strings.ContainsAny(f.Name, `/\`) || f.Name == "." || f.Name == ".." {
			return nil, fmt.Errorf("log file name %q", f.Name)
		}
		path := filepath.Join(dir, f.Name)
		if err := copyLog(ctx, req, f, path); err != nil {
			return nil, fmt.Errorf("fetch log %s: %w", f.Name, err)
		}
		paths[f.Name] = path
	}
	return paths, nil
}

func copyLog(ctx context.Context, req rdsbackup.PointInTimeRequest, f *rdsbackup.LogFile, path string) error {
	rc, err := req.OpenLog(ctx, f)
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// logsFrom returns the paths of the files from the one named first on.
func logsFrom(logs []*rdsbackup.LogFile, paths map[string]string, first string) []string {
	var out []string
	on := false
	for _, f := range logs {
		if f.Kind != rdsbackup.LogKindLog {
			continue
		}
		if f.Name == first {
			on = true
		}
		if on {
			out = append(out, paths[f.Name])
		}
	}
	return out
}

// pipeReplay runs the binlog tool into the client. The tool reads local
// files only; the client connects with the workspace's option file.
func (e *Engine) pipeReplay(ctx context.Context, binlog, client tool, ws *workspace, password string, binlogArgs []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	src := e.command(ctx, binlog, ws, binlogArgs...)
	// --stop-datetime is read in the tool's local time zone.
	src.Env = append(childproc.Env("HOME="+ws.dir), "TZ=UTC")
	srcTail := childproc.NewTail(e.stderrTail())
	src.Stderr = srcTail
	out, err := childproc.StdoutPipe(src)
	if err != nil {
		return err
	}
	release, err := e.Children.Start(src)
	if err != nil {
		return fmt.Errorf("start %s: %w", binlog.name, err)
	}
	defer release()
	clientErr := e.runFed(ctx, client, ws, password, []string{ws.defaultsArg(), "--binary-mode", "--default-character-set=utf8mb4"}, out)
	if clientErr != nil {
		childproc.Kill(src)
	}
	srcErr := src.Wait()
	switch {
	case clientErr != nil:
		return clientErr
	case srcErr != nil:
		return &ToolError{Tool: binlog.name, Err: srcErr, Stderr: srcTail.Text()}
	}
	return nil
}
