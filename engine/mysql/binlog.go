package mysql

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/childproc"
)

// Binary log streaming for point-in-time recovery (docs/pitr.md).
//
// StreamLogs runs
//
//	mariadb-binlog --read-from-remote-server --raw --stop-never
//	    --stop-never-slave-server-id=N --result-file=SPOOL/ FIRST
//
// (mysqlbinlog for MySQL), which connects as a replica would, writes each
// binary log file under its server name into the spool, appends events to
// the newest as they arrive, and exits on any disconnection. A file is
// complete when the tool has begun the next one (the server moved on to
// it), or when its last event is a Rotate or a Stop (the server shut down;
// it starts a new file when it comes back). The times of a file's events and the end of its last
// complete event are read from the event headers (the binary log's own
// format: a 4-byte magic, then events whose 19-byte header holds the
// timestamp, the type and the event size).

var (
	_ rdsbackup.LogStreamer         = (*Engine)(nil)
	_ rdsbackup.PointInTimeRestorer = (*Engine)(nil)
)

// Binary log event types rdsbackup looks at.
const (
	eventStop   = 3
	eventRotate = 4
)

const (
	binlogMagic      = "\xfebin"
	binlogHeaderSize = 19
)

// binlogInfo is what the event headers of a binary log file say.
type binlogInfo struct {
	Size     int64 // the end of the last complete event
	First    time.Time
	Last     time.Time
	Events   int
	LastType byte
}

// closed reports whether the file ends with an event after which the
// server writes no more to it.
func (b binlogInfo) closed() bool {
	return b.Events > 0 && (b.LastType == eventRotate || b.LastType == eventStop)
}

// scanBinlog reads the event headers of a binary log file. A trailing
// partial event (still being written) is not counted.
func scanBinlog(path string) (binlogInfo, error) {
	return scanBinlogFrom(path, binlogInfo{})
}

// scanBinlogFrom goes on reading the event headers of a file after those
// prev describes (a scan of the same file when it was shorter), so that
// following a growing file costs what was appended, not the whole file
// again. A file shorter than prev.Size is scanned from its start.
func scanBinlogFrom(path string, prev binlogInfo) (binlogInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return binlogInfo{}, err
	}
	defer f.Close()
	if prev.Size > 0 {
		fi, err := f.Stat()
		if err != nil {
			return binlogInfo{}, err
		}
		if fi.Size() >= prev.Size {
			if _, err := f.Seek(prev.Size, io.SeekStart); err != nil {
				return binlogInfo{}, err
			}
			return scanEvents(bufio.NewReaderSize(f, 64<<10), prev)
		}
	}
	return scanBinlogReader(f)
}

func scanBinlogReader(r io.Reader) (binlogInfo, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var info binlogInfo
	magic := make([]byte, len(binlogMagic))
	if n, err := io.ReadFull(br, magic); err != nil {
		if n == 0 || errors.Is(err, io.ErrUnexpectedEOF) {
			return info, nil // nothing written yet
		}
		return info, err
	}
	if string(magic) != binlogMagic {
		return info, fmt.Errorf("not a binary log (magic %q)", magic)
	}
	info.Size = int64(len(binlogMagic))
	return scanEvents(br, info)
}

// scanEvents reads the events of br, which starts at info.Size, adding
// them to info.
func scanEvents(br *bufio.Reader, info binlogInfo) (binlogInfo, error) {
	var h [binlogHeaderSize]byte
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return info, nil
			}
			return info, err
		}
		size := int64(binary.LittleEndian.Uint32(h[9:13]))
		if size < binlogHeaderSize {
			return info, fmt.Errorf("corrupt event at offset %d: size %d", info.Size, size)
		}
		n, err := br.Discard(int(size - binlogHeaderSize))
		if int64(n) < size-binlogHeaderSize {
			if err == nil || errors.Is(err, io.EOF) {
				return info, nil // the event is still being written
			}
			return info, err
		}
		info.Size += size
		info.Events++
		info.LastType = h[4]
		if ts := binary.LittleEndian.Uint32(h[0:4]); ts != 0 {
			t := time.Unix(int64(ts), 0).UTC()
			if info.First.IsZero() || t.Before(info.First) {
				info.First = t
			}
			if t.After(info.Last) {
				info.Last = t
			}
		}
	}
}

// binlogSeq returns the number a binary log file's name ends with
// (mariadb-bin.000042 → 42).
func binlogSeq(name string) (int64, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 || i == len(name)-1 {
		return 0, false
	}
	n, err := strconv.ParseInt(name[i+1:], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// CheckLogSource checks that the server writes a binary log rdsbackup can
// stream and replay: log_bin ON, binlog_format ROW, and the privileges
// REPLICATION SLAVE (to receive it) and REPLICATION CLIENT (BINLOG MONITOR
// on MariaDB 10.5 and later: to list the server's files).
func (e *Engine) CheckLogSource(ctx context.Context, inst *rdsbackup.Instance) error {
	c, err := e.open(ctx, inst.ID, inst.DSN)
	if err != nil {
		return err
	}
	defer c.Close()
	return e.checkLogSource(ctx, inst, c)
}

func (e *Engine) checkLogSource(ctx context.Context, inst *rdsbackup.Instance, c *conn) error {
	var logBin int
	var format string
	if err := c.db.QueryRowContext(ctx, "SELECT @@log_bin, @@binlog_format").Scan(&logBin, &format); err != nil {
		return fmt.Errorf("read the binary log settings of %s: %w", inst.ID, redact(err, c.cfg.Passwd))
	}
	if logBin == 0 {
		return rdsbackup.Errorf(rdsbackup.EINVALID,
			"Log backup needs the binary log, and log_bin is OFF on %s: start the server with log_bin (e.g. --log-bin --server-id=1) and binlog_format=ROW.", inst.ID)
	}
	if !strings.EqualFold(format, "ROW") {
		return rdsbackup.Errorf(rdsbackup.EINVALID,
			"Log backup needs binlog_format=ROW on %s, and it is %s: a restore replays and renames databases event by event, which is exact for row events only. Set binlog_format=ROW in the server's configuration (and SET GLOBAL binlog_format=ROW).", inst.ID, format)
	}
	missing, err := missingReplicationPrivileges(ctx, c)
	if err != nil {
		return fmt.Errorf("read the privileges of %s: %w", inst.ID, redact(err, c.cfg.Passwd))
	}
	if len(missing) > 0 {
		return rdsbackup.Errorf(rdsbackup.EINVALID,
			"Log backup needs the privileges REPLICATION SLAVE and REPLICATION CLIENT on *.* for the user %s of %s, which lacks %s: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO that user.",
			rdsbackup.QuoteValue(c.cfg.User), inst.ID, strings.Join(missing, " and "))
	}
	return nil
}

// missingReplicationPrivileges reads SHOW GRANTS of the current user and
// returns the global privileges streaming needs that it lacks. Privileges
// held through a role are not seen.
func missingReplicationPrivileges(ctx context.Context, c *conn) ([]string, error) {
	rows, err := c.db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, err
		}
		g = strings.ToUpper(g)
		if !strings.HasPrefix(g, "GRANT ") {
			continue
		}
		privs, rest, ok := strings.Cut(g[len("GRANT "):], " ON ")
		if !ok || !strings.HasPrefix(rest, "*.* ") {
			continue
		}
		for _, p := range strings.Split(privs, ",") {
			have[strings.TrimSpace(p)] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if have["ALL PRIVILEGES"] {
		return nil, nil
	}
	var missing []string
	if !have["REPLICATION SLAVE"] && !have["REPLICATION REPLICA"] {
		missing = append(missing, "REPLICATION SLAVE")
	}
	if !have["REPLICATION CLIENT"] && !have["BINLOG MONITOR"] && !have["SUPER"] {
		missing = append(missing, "REPLICATION CLIENT")
	}
	return missing, nil
}

// serverBinlogs lists the binary log files the server has, oldest first.
func serverBinlogs(ctx context.Context, c *conn) ([]string, error) {
	rows, err := c.db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, redact(err, c.cfg.Passwd)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		vals := make([]any, len(cols))
		var name string
		vals[0] = &name
		for i := 1; i < len(vals); i++ {
			vals[i] = new(any)
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, rows.Err()
}

// chooseStart picks the file to stream from: the one after the last stored
// (resume), or, when the server no longer has it, the oldest it has after
// it, with the gap between; the server's current file when nothing was
// stored yet.
func chooseStart(inst string, names []string, resume *rdsbackup.LogFile, now time.Time) (string, *rdsbackup.LogGap, error) {
	if len(names) == 0 {
		return "", nil, fmt.Errorf("the server of %s lists no binary log file", inst)
	}
	if resume == nil {
		return names[len(names)-1], nil, nil
	}
	for _, n := range names {
		s, ok := binlogSeq(n)
		if !ok || s <= resume.Seq {
			continue
		}
		if s == resume.Seq+1 {
			return n, nil, nil
		}
		return n, &rdsbackup.LogGap{
			InstanceID: inst,
			AfterSeq:   resume.Seq,
			BeforeSeq:  s,
			From:       resume.EndTime,
			Reason: fmt.Sprintf("the binary logs after %s up to %s were removed from the server before rdsbackup received them (purged, or rdsbackup was away longer than the server keeps them)",
				resume.Name, n),
			DetectedAt: now,
		}, nil
	}
	return "", nil, fmt.Errorf("the newest binary log of %s's server (%s) is not after %s, which rdsbackup already stored: the server's log was reset (RESET MASTER) or the DSN points at another server; log backup stays stopped until the stored logs are removed", inst, names[len(names)-1], resume.Name)
}

// pollInterval is how often the spool is looked at while streaming.
var pollInterval = 200 * time.Millisecond

// StreamLogs streams the instance's binary log into spec.SpoolDir until
// ctx is done (nil) or the stream breaks (its error), calling sink for each
// complete file and, as it grows, for the file being written.
func (e *Engine) StreamLogs(ctx context.Context, inst *rdsbackup.Instance, spec rdsbackup.StreamSpec, sink rdsbackup.LogSink) error {
	tool, err := e.lookTool(roleBinlog)
	if err != nil {
		return err
	}
	if spec.ServerID == 0 {
		return rdsbackup.InvalidParameter("ServerID", "a replication server id is required")
	}
	c, err := e.open(ctx, inst.ID, inst.DSN)
	if err != nil {
		return err
	}
	info, err := e.serverInfo(ctx, inst.ID, c)
	if err == nil {
		err = e.checkLogSource(ctx, inst, c)
	}
	var names []string
	if err == nil {
		if names, err = serverBinlogs(ctx, c); err != nil {
			err = fmt.Errorf("list the binary logs of %s: %w", inst.ID, err)
		}
	}
	client, cerr := clientOptions(c.cfg)
	password := c.cfg.Passwd
	c.Close()
	if err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("stream binary log of %s: %w", inst.ID, cerr)
	}
	start, gap, err := chooseStart(inst.ID, names, spec.Resume, time.Now())
	if err != nil {
		return err
	}
	if gap != nil {
		e.logger().Warn("gap in the binary log", "instance", inst.ID, "reason", gap.Reason)
		if err := sink.Gap(ctx, *gap); err != nil {
			return err
		}
	}
	if err := clearSpool(spec.SpoolDir); err != nil {
		return fmt.Errorf("stream binary log of %s: %w", inst.ID, err)
	}
	ws, err := e.newWorkspace(client)
	if err != nil {
		return fmt.Errorf("stream binary log of %s: %w", inst.ID, err)
	}
	defer ws.remove()

	args := []string{ws.defaultsArg(), "--read-from-remote-server", "--raw", "--stop-never",
		"--stop-never-slave-server-id=" + strconv.FormatUint(uint64(spec.ServerID), 10),
		"--result-file=" + spec.SpoolDir + string(filepath.Separator), "--", start}
	cmd := e.command(ctx, tool, ws, args...)
	tail := childproc.NewTail(e.stderrTail())
	cmd.Stdout = tail
	cmd.Stderr = tail
	log := e.logger().With("instance", inst.ID, "tool", tool.name)
	log.Info("streaming binary log", "from", start, "serverId", spec.ServerID)
	release, err := e.Children.Start(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", tool.name, err)
	}
	defer release()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	s := &spoolScanner{dir: spec.SpoolDir, host: info.HostID, sink: sink, scanned: map[string]binlogInfo{}}
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			childproc.Kill(cmd)
			<-exited
			// What was complete before the stop is handed over now.
			_ = s.scan(context.WithoutCancel(ctx))
			return nil
		case werr := <-exited:
			if err := s.scan(ctx); err != nil {
				return err
			}
			if werr == nil {
				return fmt.Errorf("%s exited", tool.name)
			}
			return &ToolError{Tool: tool.name, Err: werr, Stderr: redactString(tail.Text(), password)}
		case <-ticker.C:
			if err := s.scan(ctx); err != nil {
				childproc.Kill(cmd)
				<-exited
				return err
			}
		}
	}
}

// clearSpool removes the files a previous run left in the spool: none of
// them was reported complete (complete files leave the spool).
func clearSpool(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, en := range entries {
		if en.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, en.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// spoolScanner hands the spool's files to the sink.
type spoolScanner struct {
	dir  string
	host string
	sink rdsbackup.LogSink
	// scanned is what the last scan read of each file still in the spool:
	// the next scan goes on from there (the tool only appends, and the
	// spool is emptied before it starts).
	scanned map[string]binlogInfo
}

func (s *spoolScanner) scan(ctx context.Context) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	type file struct {
		name string
		seq  int64
	}
	var files []file
	for _, en := range entries {
		if !en.Type().IsRegular() {
			continue
		}
		if seq, ok := binlogSeq(en.Name()); ok {
			files = append(files, file{en.Name(), seq})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].seq < files[j].seq })
	for i, f := range files {
		path := filepath.Join(s.dir, f.name)
		info, err := scanBinlogFrom(path, s.scanned[f.name])
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		s.scanned[f.name] = info
		// The tool opens the next file only after the server has moved
		// on to it (a Rotate event, or a fake one for a file the server
		// left without one when it crashed), and the spool was emptied
		// when the run started: a file with a later one is complete.
		newest := i == len(files)-1
		if info.Events == 0 {
			continue
		}
		sl := rdsbackup.SpooledLog{
			Path: path, Name: f.name, Seq: f.seq, BeginTime: info.First, EndTime: info.Last,
			Start:   rdsbackup.LogPosition{File: f.name, Offset: int64(len(binlogMagic))},
			End:     rdsbackup.LogPosition{File: f.name, Offset: info.Size},
			RawSize: info.Size, HostID: s.host,
		}
		if !newest || info.closed() {
			if err := syncFile(path); err != nil {
				return err
			}
			if err := s.sink.CompleteLog(ctx, sl); err != nil {
				return err
			}
			delete(s.scanned, f.name) // moved out of the spool
			continue
		}
		// Offered on every scan, grown or not: the sink stores it again
		// once its last second is settled (see rdsbackup.LogSink).
		if err := s.sink.PartialLog(ctx, sl); err != nil {
			return err
		}
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
