package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// Backup streams a backup of the instance into sink: for MethodLogical the
// globals and then one pg_dump archive per database, for MethodPhysical one
// pg_basebackup tar of the whole instance.
func (e *Engine) Backup(ctx context.Context, inst *rdsbackup.Instance, req rdsbackup.BackupRequest, sink rdsbackup.PartSink) (rdsbackup.BackupResult, error) {
	switch req.Method {
	case rdsbackup.MethodLogical, rdsbackup.MethodPhysical:
	default:
		return rdsbackup.BackupResult{}, rdsbackup.Errorf(rdsbackup.EUnsupportedMethod,
			"BackupMethod %q is not supported for PostgreSQL: use Logical or Physical.", req.Method)
	}
	if req.Method == rdsbackup.MethodPhysical && req.Databases != nil {
		return rdsbackup.BackupResult{}, rdsbackup.Errorf(rdsbackup.EUnsupportedMethod,
			"A physical backup of PostgreSQL covers the whole instance; back up single databases with the Logical method.")
	}
	c, err := connect(ctx, inst.DSN, "")
	if err != nil {
		return rdsbackup.BackupResult{}, err
	}
	defer c.close()
	log := e.logger().With("instance", inst.ID)
	res := rdsbackup.BackupResult{Info: c.info(ctx, log)}
	if res.Databases, err = c.selectDatabases(ctx, req.Databases); err != nil {
		return res, err
	}
	if req.Method == rdsbackup.MethodPhysical {
		return e.backupPhysical(ctx, c, sink, res, log)
	}
	return e.backupLogical(ctx, c, sink, res, log)
}

func (e *Engine) backupLogical(ctx context.Context, c *conn, sink rdsbackup.PartSink, res rdsbackup.BackupResult, log *slog.Logger) (rdsbackup.BackupResult, error) {
	dumpall, err := e.findTool(ctx, "pg_dumpall", c.version, false)
	if err != nil {
		return res, err
	}
	dump, err := e.findTool(ctx, "pg_dump", c.version, false)
	if err != nil {
		return res, err
	}
	globalsArgs := []string{"--globals-only", "--no-password"}
	if !c.super {
		// pg_authid, which holds the passwords, is readable by superusers
		// only; pg_dumpall reads pg_roles instead with this option.
		log.Warn("the backup user is not a superuser: roles are dumped without their passwords", "user", c.user)
		globalsArgs = append(globalsArgs, "--no-role-passwords")
	}
	if db := c.params.database; db != "" && !strings.Contains(db, "=") && !strings.Contains(db, "://") {
		globalsArgs = append(globalsArgs, "--database="+db)
	}
	if res.ConsistentTime, err = c.now(ctx); err != nil {
		return res, err
	}
	// The tools open connections of their own; this one is not needed
	// while they run.
	c.close()

	s, err := e.newSession(c.params)
	if err != nil {
		return res, err
	}
	defer s.close()
	part := rdsbackup.Part{Name: "globals", Kind: rdsbackup.PartGlobals}
	if err := e.streamPart(ctx, s, sink, part, dumpall, "", globalsArgs); err != nil {
		return res, err
	}
	for _, db := range res.Databases {
		part := rdsbackup.Part{Name: db, Kind: rdsbackup.PartDatabase}
		args := []string{"--format=custom", "--compress=0", "--no-sync", "--no-password", "--dbname=" + conninfoDB(db)}
		if err := e.streamPart(ctx, s, sink, part, dump, fmt.Sprintf("of database %q", db), args); err != nil {
			return res, err
		}
	}
	log.Info("logical backup done", "databases", len(res.Databases))
	return res, nil
}

func (e *Engine) backupPhysical(ctx context.Context, c *conn, sink rdsbackup.PartSink, res rdsbackup.BackupResult, log *slog.Logger) (rdsbackup.BackupResult, error) {
	if !c.super && !c.repl {
		return res, fmt.Errorf("a physical backup needs a user with the REPLICATION attribute (or a superuser): %q has neither (ALTER ROLE %s REPLICATION), and pg_hba.conf must allow it a \"replication\" connection", c.user, c.user)
	}
	basebackup, err := e.findTool(ctx, "pg_basebackup", c.version, false)
	if err != nil {
		return res, err
	}
	segSize, err := c.walSegmentSize(ctx)
	if err != nil {
		return res, err
	}
	// pg_basebackup holds no connection of ours; the time is read on a new
	// one at the end.
	c.close()
	s, err := e.newSession(c.params)
	if err != nil {
		return res, err
	}
	defer s.close()
	part := rdsbackup.Part{Name: "instance", Kind: rdsbackup.PartPhysical}
	// --verbose, for the WAL start point: where a restore to a time
	// begins rolling forward.
	args := []string{"--pgdata=-", "--format=tar", "--wal-method=fetch", "--checkpoint=fast", "--no-sync", "--no-password", "--label=rdsbackup", "--verbose"}
	points := &walPoints{}
	if err := e.streamPartWith(ctx, s, sink, part, basebackup, "", args, points); err != nil {
		var te *ToolError
		switch {
		case !errors.As(err, &te):
		case strings.Contains(te.Stderr, "replication connection") || strings.Contains(te.Stderr, "must be superuser or replication role"):
			err = fmt.Errorf("%w (a physical backup needs a user with the REPLICATION attribute and a \"replication\" entry for this host in the server's pg_hba.conf)", err)
		case strings.Contains(te.Stderr, "single tablespace"):
			err = fmt.Errorf("%w (a physical backup streams one tar, which holds a single tablespace: an instance with tablespaces of its own needs Logical backups)", err)
		}
		return res, err
	}
	if pos, ok := points.position(segSize); ok {
		res.LogPositions = map[string]rdsbackup.LogPosition{part.Name: pos}
	} else {
		log.Warn("pg_basebackup did not report its WAL start point: the set cannot be rolled forward to a time")
	}
	// The restored instance is consistent as of the end of the backup.
	if c2, err := connect(ctx, c.dsn, ""); err == nil {
		res.ConsistentTime, err = c2.now(ctx)
		c2.close()
		if err != nil {
			log.Warn("cannot read the server time after the backup; using the local clock", "err", err)
		}
	} else {
		log.Warn("cannot reconnect after the backup to read the server time; using the local clock", "err", err)
	}
	if res.ConsistentTime == 0 {
		res.ConsistentTime = time.Now().Unix()
	}
	log.Info("physical backup done")
	return res, nil
}

// streamPart runs one tool and streams its stdout into the sink as part.
// The tool's exit is checked after WritePart returns: a tool that fails
// after writing bytes fails the backup.
func (e *Engine) streamPart(ctx context.Context, s *session, sink rdsbackup.PartSink, part rdsbackup.Part, path, what string, args []string) error {
	return e.streamPartWith(ctx, s, sink, part, path, what, args, nil)
}

// streamPartWith is streamPart with the tool's stderr also written to
// stderr (when not nil).
func (e *Engine) streamPartWith(ctx context.Context, s *session, sink rdsbackup.PartSink, part rdsbackup.Part, path, what string, args []string, stderr io.Writer) error {
	c, err := e.start(ctx, s, path, what, args, startOptions{stdout: true, stderr: stderr})
	if err != nil {
		return err
	}
	werr := sink.WritePart(ctx, part, c.stdout)
	if werr == nil {
		// WritePart reads to EOF; one that stops early would store a
		// truncated part and leave the tool blocked on a full pipe.
		var b [1]byte
		if n, _ := c.stdout.Read(b[:]); n > 0 {
			werr = fmt.Errorf("the sink returned before the end of part %s", part.Name)
		}
	}
	if werr != nil {
		c.kill()
	}
	waitErr := c.wait()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s %s: %w", c.tool, part.Name, ctx.Err())
	case werr != nil:
		return s.redact.err(fmt.Errorf("store part %s: %w", part.Name, werr))
	case waitErr != nil:
		return waitErr
	}
	e.logger().Debug("part done", "part", part.Name, "tool", c.tool)
	return nil
}

// walPoints reads the WAL start point pg_basebackup --verbose reports:
// "pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1".
type walPoints struct {
	mu    sync.Mutex
	buf   []byte
	start LSN
	tli   uint32
	found bool
}

var walStartRE = regexp.MustCompile(`write-ahead log start point: ([0-9A-F]+/[0-9A-F]+) on timeline (\d+)`)

func (w *walPoints) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.found || len(w.buf) > 64<<10 {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if m := walStartRE.FindSubmatch(w.buf); m != nil {
		lsn, err := ParseLSN(string(m[1]))
		tli, err2 := strconv.ParseUint(string(m[2]), 10, 32)
		if err == nil && err2 == nil {
			w.start, w.tli, w.found = lsn, uint32(tli), true
		}
	}
	return len(p), nil
}

// position is the start point as a log position: the segment holding it.
func (w *walPoints) position(segSize int64) (rdsbackup.LogPosition, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.found {
		return rdsbackup.LogPosition{}, false
	}
	return rdsbackup.LogPosition{
		File:     SegmentOf(w.tli, w.start, segSize),
		Offset:   int64(uint64(w.start) % uint64(segSize)),
		LSN:      w.start.String(),
		Timeline: int(w.tli),
	}, true
}
