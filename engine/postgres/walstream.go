package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rdsbackup/rdsbackup"
)

// WALStreamOptions configure StreamWAL.
type WALStreamOptions struct {
	// SpoolDir is the instance's private spool directory (created with
	// mode 0700): pg_receivewal writes there, and it must survive restarts
	// of rdsbackup, since pg_receivewal resumes from what it finds there.
	SpoolDir string
	// Synchronous runs pg_receivewal --synchronous: WAL is flushed and
	// acknowledged at once rather than when a segment is complete, for a
	// smaller loss on a crash of the machine, at the cost of more fsyncs.
	Synchronous bool
	// OnFile is called, in WAL order and one at a time, for each file once
	// it is complete (segments, and timeline history files). It reads
	// f.Path before returning; the file may be removed afterwards. When it
	// fails, the file stays in the spool and is offered again at the next
	// poll; later files wait for it.
	OnFile func(ctx context.Context, f WALFile) error
	// OnGap, when set, is called when the next complete segment does not
	// follow the last one delivered: the WAL between them is lost (the slot
	// was dropped or invalidated on the server). It is called before OnFile
	// for next.
	OnGap func(last, next string)
	// OnError, when set, receives each failure of pg_receivewal (it is
	// restarted after a pause) and of OnFile.
	OnError func(err error)
	// PollInterval is how often the spool is looked at for complete files;
	// 0 means 500 ms.
	PollInterval time.Duration
	// RetryMin and RetryMax bound the pause before pg_receivewal is started
	// again: it doubles from RetryMin after each quick failure; 0 means
	// 1 s and 30 s.
	RetryMin, RetryMax time.Duration
	// Now is the clock for the time span of segments without a
	// transaction; nil means time.Now.
	Now func() time.Time
}

// stateFile, in the spool, records what was delivered, so that files
// pg_receivewal streams again after a restart are not delivered twice.
const stateFile = "rdsbackup-delivered.json"

type spoolState struct {
	Segment string   `json:"segment,omitempty"` // the last segment delivered
	History []string `json:"history,omitempty"` // history files delivered
}

// StreamWAL streams the instance's WAL into o.SpoolDir with pg_receivewal
// through the replication slot SlotName(inst.ID), which it creates when it
// does not exist, and calls o.OnFile for each complete file. It runs until
// ctx is done (and then returns ctx's error), restarting pg_receivewal when
// it exits; it returns early only when the server cannot stream at all
// (a *LogBackupUnavailableError from CheckLogBackup) or the spool cannot
// be used.
//
// pg_receivewal resumes from the spool: the newest delivered segment is
// kept there (older ones are removed once delivered), so after a restart it
// continues with the segment after it, or re-streams the .partial one. The
// slot keeps the server from removing WAL in between.
func (e *Engine) StreamWAL(ctx context.Context, inst *rdsbackup.Instance, o WALStreamOptions) error {
	if o.OnFile == nil || o.SpoolDir == "" {
		return errors.New("StreamWAL needs a SpoolDir and an OnFile callback")
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := e.logger().With("instance", inst.ID)
	if err := e.CheckLogBackup(ctx, inst); err != nil {
		return err
	}
	if err := os.MkdirAll(o.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("create the WAL spool: %w", err)
	}
	if err := os.Chmod(o.SpoolDir, 0o700); err != nil {
		return err
	}
	st := &streamer{e: e, inst: inst, o: o, log: log, slot: SlotName(inst.ID)}
	if err := st.load(); err != nil {
		return err
	}
	if err := st.setup(ctx); err != nil {
		return err
	}
	defer st.s.close()

	pause := o.RetryMin
	for {
		began := time.Now()
		err := st.runOnce(ctx)
		st.deliver(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			log.Warn("pg_receivewal stopped; restarting it", "err", err, "in", pause)
			if o.OnError != nil {
				o.OnError(err)
			}
			if st.slotLost(err) {
				st.resetAfterLoss(ctx)
			}
		}
		if time.Since(began) > time.Minute {
			pause = o.RetryMin
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		if pause *= 2; pause > o.RetryMax {
			pause = o.RetryMax
		}
	}
}

type streamer struct {
	e       *Engine
	inst    *rdsbackup.Instance
	o       WALStreamOptions
	log     *slog.Logger
	slot    string
	segSize int64
	receive string // pg_receivewal
	waldump string // pg_waldump of the server's major version
	s       *session
	state   spoolState
	// described keeps the description of a file OnFile refused, so that
	// offering it again does not run pg_waldump again.
	described map[string]WALFile
}

// setup reads the server's segment size and version, finds the tools and
// prepares the tools' session.
func (st *streamer) setup(ctx context.Context) error {
	c, err := connect(ctx, st.inst.DSN, "")
	if err != nil {
		return err
	}
	defer c.close()
	var size, unit string
	if err := c.QueryRow(ctx, `SELECT setting, coalesce(unit, '') FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size'`).Scan(&size, &unit); err != nil {
		return c.redact.err(fmt.Errorf("read wal_segment_size: %w", err))
	}
	if st.segSize, err = settingBytes(size, unit); err != nil {
		return err
	}
	if st.receive, err = st.e.findTool(ctx, "pg_receivewal", c.version, false); err != nil {
		return err
	}
	if st.waldump, err = st.e.findExactTool(ctx, "pg_waldump", c.version); err != nil {
		return err
	}
	if err := st.e.createSlot(ctx, c, st.slot); err != nil {
		return err
	}
	st.s, err = st.e.newSession(c.params)
	return err
}

// settingBytes converts a pg_settings value in unit to bytes.
func settingBytes(v, unit string) (int64, error) {
	var n int64
	if _, err := fmt.Sscan(v, &n); err != nil {
		return 0, fmt.Errorf("unexpected wal_segment_size %q", v)
	}
	switch unit {
	case "B", "":
		return n, nil
	case "8kB":
		return n * 8192, nil
	case "MB":
		return n << 20, nil
	}
	return 0, fmt.Errorf("unexpected wal_segment_size unit %q", unit)
}

// findExactTool finds a tool of exactly the server's major version.
func (e *Engine) findExactTool(ctx context.Context, name string, server pgVersion) (string, error) {
	cands, err := e.candidates(ctx, name)
	if err != nil {
		return "", err
	}
	var found []string
	for _, c := range cands {
		if c.version == server {
			return c.path, nil
		}
		found = append(found, fmt.Sprintf("%s %s (%s)", name, c.version, c.path))
	}
	return "", fmt.Errorf("no %s %s for a PostgreSQL %s server (it reads the WAL of its own major version only): found %s; install the PostgreSQL %s client tools or set BinDir",
		name, server, server, strings.Join(found, ", "), server)
}

// createSlot creates the physical slot, reserving WAL from now, unless it
// exists.
func (e *Engine) createSlot(ctx context.Context, c *conn, name string) error {
	_, err := c.Exec(ctx, `SELECT pg_catalog.pg_create_physical_replication_slot($1, true)
		WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)`, name)
	var pe *pgconn.PgError
	if err != nil && !(errors.As(err, &pe) && pe.Code == "42710") { // duplicate_object: made meanwhile
		return c.redact.err(fmt.Errorf("create replication slot %s: %w", name, err))
	}
	return nil
}

// runOnce runs pg_receivewal until it exits or ctx is done, delivering
// complete files meanwhile.
func (st *streamer) runOnce(ctx context.Context) error {
	c, err := connect(ctx, st.inst.DSN, "")
	if err != nil {
		return err
	}
	err = st.e.createSlot(ctx, c, st.slot) // dropped by someone meanwhile
	c.close()
	if err != nil {
		return err
	}
	args := []string{"--directory=" + st.o.SpoolDir, "--slot=" + st.slot, "--no-loop", "--no-password", "--status-interval=1"}
	if st.o.Synchronous {
		args = append(args, "--synchronous")
	}
	child, err := st.e.start(ctx, st.s, st.receive, "", args, startOptions{})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- child.wait() }()
	tick := time.NewTicker(st.o.PollInterval)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("pg_receivewal exited")
			}
			return err
		case <-tick.C:
			st.deliver(ctx)
		}
	}
}

// slotLostRE matches pg_receivewal's errors when the server no longer has
// the WAL the slot or the spool asks for.
var slotLostRE = regexp.MustCompile(`has already been removed|has been invalidated|cannot use a replication slot that|can no longer get changes|WAL .* is not available`)

func (st *streamer) slotLost(err error) bool {
	var te *ToolError
	return errors.As(err, &te) && slotLostRE.MatchString(te.Stderr)
}

// resetAfterLoss starts the stream afresh when the server lost WAL that was
// not received: the slot is made again and the spool emptied of what
// pg_receivewal would resume from. The next segment does not follow the
// last delivered one, and OnGap says so.
func (st *streamer) resetAfterLoss(ctx context.Context) {
	st.log.Warn("the server removed WAL that was not received: the log backup has a gap; starting the stream again from the server's current WAL", "slot", st.slot)
	if err := st.e.DropSlot(ctx, st.inst, 10*time.Second); err != nil {
		st.log.Warn("drop the lost replication slot", "err", err)
	}
	entries, _ := os.ReadDir(st.o.SpoolDir)
	for _, ent := range entries {
		// Complete segments not yet delivered stay: deliver goes on with
		// them.
		if n := ent.Name(); strings.HasSuffix(n, ".partial") || n == st.state.Segment {
			os.Remove(filepath.Join(st.o.SpoolDir, n))
		}
	}
}

// load reads the spool's state file.
func (st *streamer) load() error {
	b, err := os.ReadFile(filepath.Join(st.o.SpoolDir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the WAL spool's state: %w", err)
	}
	if err := json.Unmarshal(b, &st.state); err != nil {
		return fmt.Errorf("the WAL spool's state %s is damaged: %w", stateFile, err)
	}
	return nil
}

// save writes the state file durably (write, fsync, rename, fsync dir).
func (st *streamer) save() error {
	b, _ := json.Marshal(st.state)
	return writeFileDurably(filepath.Join(st.o.SpoolDir, stateFile), b)
}

func writeFileDurably(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// deliver offers the complete files of the spool not yet delivered to
// OnFile, history files first, then segments in WAL order; it stops at the
// first failure.
func (st *streamer) deliver(ctx context.Context) {
	entries, err := os.ReadDir(st.o.SpoolDir)
	if err != nil {
		st.fail(fmt.Errorf("read the WAL spool: %w", err))
		return
	}
	var hist []string
	var segs []walName
	names := map[walName]string{}
	for _, ent := range entries {
		n := ent.Name()
		wn, ok := parseWALName(n, st.segSize)
		if !ok {
			continue
		}
		if wn.history {
			if !contains(st.state.History, n) {
				hist = append(hist, n)
			}
			continue
		}
		segs = append(segs, wn)
		names[wn] = n
	}
	sort.Strings(hist)
	for _, n := range hist {
		if !st.offer(ctx, n) {
			return
		}
		st.state.History = append(st.state.History, n)
		if err := st.save(); err != nil {
			st.fail(fmt.Errorf("record the delivery of %s: %w", n, err))
			return
		}
	}
	sort.Slice(segs, func(i, j int) bool {
		if segs[i].segno != segs[j].segno {
			return segs[i].segno < segs[j].segno
		}
		return segs[i].tli < segs[j].tli
	})
	last, hasLast := parseWALName(st.state.Segment, st.segSize)
	for _, wn := range segs {
		n := names[wn]
		if hasLast && n != st.state.Segment && !after(wn, last) {
			// Streamed again after a restart: delivered already.
			os.Remove(filepath.Join(st.o.SpoolDir, n))
			continue
		}
		if n == st.state.Segment {
			continue
		}
		if hasLast && !follows(wn, last) && st.o.OnGap != nil {
			st.o.OnGap(st.state.Segment, n)
		}
		if !st.offer(ctx, n) {
			return
		}
		prev := st.state.Segment
		st.state.Segment, last, hasLast = n, wn, true
		if err := st.save(); err != nil {
			st.fail(fmt.Errorf("record the delivery of %s: %w", n, err))
			return
		}
		// The newest delivered segment stays, for pg_receivewal to resume
		// after.
		if prev != "" {
			os.Remove(filepath.Join(st.o.SpoolDir, prev))
		}
	}
}

// offer describes a file and hands it to OnFile.
func (st *streamer) offer(ctx context.Context, name string) bool {
	f, ok := st.described[name]
	var err error
	if !ok {
		if f, err = st.e.describeWALFile(ctx, st.waldump, st.o.SpoolDir, name, st.segSize, st.o.Now()); err == nil {
			st.described = map[string]WALFile{name: f}
		}
	}
	if err == nil {
		err = st.o.OnFile(ctx, f)
	}
	if err != nil {
		st.fail(fmt.Errorf("deliver WAL file %s: %w", name, err))
		return false
	}
	delete(st.described, name)
	return true
}

func (st *streamer) fail(err error) {
	st.log.Warn("WAL spool", "err", err)
	if st.o.OnError != nil {
		st.o.OnError(err)
	}
}

// after reports whether segment a comes after b in the stream.
func after(a, b walName) bool {
	return a.segno > b.segno || (a.segno == b.segno && a.tli > b.tli)
}

// follows reports whether segment a continues the stream right after b: the
// next segment on the same timeline, or the first of a newer timeline,
// which starts within the segment where the old one ended.
func follows(a, b walName) bool {
	if a.tli == b.tli {
		return a.segno == b.segno+1
	}
	return a.tli > b.tli && a.segno <= b.segno+1
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// PartialWAL returns the segment pg_receivewal is writing in the spool
// (name without ".partial", and its path), for uploading the end of the
// stream before the segment is complete. Its bytes after the last record
// received are zero. ok is false when there is none.
func PartialWAL(spoolDir string) (name, path string, ok bool) {
	m, _ := filepath.Glob(filepath.Join(spoolDir, "*.partial"))
	sort.Strings(m)
	if len(m) == 0 {
		return "", "", false
	}
	// A timeline's last segment stays .partial when the server switched
	// timelines; the newest name is the one being written.
	p := m[len(m)-1]
	return strings.TrimSuffix(filepath.Base(p), ".partial"), p, true
}
