package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
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
	// mode 0700). It survives restarts; every file in it is the
	// streamer's.
	SpoolDir string
	// Slot is the physical replication slot to stream through, created
	// (reserving WAL from then on) when missing; empty means
	// SlotName(inst.ID).
	Slot string
	// Resume is the name of the last segment stored complete ("" when
	// none): the stream goes on with the segment after it. ResumeTime is
	// its EndTime (see WALFile.BeginTime); zero: when the run begins.
	Resume     string
	ResumeTime time.Time
	// Synchronous runs pg_receivewal --synchronous: WAL is flushed and
	// acknowledged at once rather than when a segment is complete, for a
	// smaller loss on a crash of the machine, at the cost of more fsyncs.
	Synchronous bool
	// OnFile is called, in WAL order and one at a time, for each file once
	// it is complete (segments, and timeline history files). It takes the
	// file: it moves f.Path out of the spool, or is done with it, before
	// it returns; the streamer removes what is left. When it fails,
	// StreamWAL returns its error and the file is offered again by the
	// next run.
	OnFile func(ctx context.Context, f WALFile) error
	// OnPartial, when set, is offered the segment being written, at most
	// every PartialInterval and when it grew: its first f.Size bytes (up
	// to f.EndLSN, what pg_receivewal has written) are the WAL received so
	// far; it reads no further, and only while it runs. f.CRC64 is theirs.
	OnPartial func(ctx context.Context, f WALFile) error
	// PartialInterval spaces the OnPartial calls; 0 means 10 s.
	PartialInterval time.Duration
	// OnGap is called when the server no longer has the WAL after Resume
	// (the slot was dropped or invalidated, max_slot_wal_keep_size): that
	// WAL is lost. StreamWAL then returns an error; the next run starts
	// from where the server is now.
	OnGap func(ctx context.Context, g WALGap) error
	// PollInterval is how often the spool is looked at for complete files;
	// 0 means 500 ms.
	PollInterval time.Duration
	// Now is the clock (ReceivedAt, the start of a new stream); nil means
	// time.Now.
	Now func() time.Time
}

// WALGap is WAL lost between After (the last segment stored; "" when
// none) and the next segment the stream delivers.
type WALGap struct {
	After  string
	Reason string
}

// stateFile, in the spool, remembers that the gap after a Resume segment
// was reported, so that the next runs do not try to resume there again.
const stateFile = "rdsbackup-state.json"

type spoolState struct {
	LostAfter string `json:"lost_after,omitempty"`
	Lost      bool   `json:"lost,omitempty"`
}

// StreamWAL runs pg_receivewal once: it streams the instance's WAL into
// o.SpoolDir through the replication slot, and calls o.OnFile for each
// complete file. It returns nil when ctx is done, or the error that ended
// the stream (pg_receivewal exited: the server went away, …, or OnFile
// failed); the caller starts it again, with backoff, from the last segment
// it stored. A server that cannot stream at all gives a
// *LogBackupUnavailableError (see CheckLogBackup).
//
// pg_receivewal decides where to start from the files in its directory:
// after the newest complete segment, or at the start of a .partial one.
// Since OnFile takes the complete files away, the spool gets a sparse
// placeholder named o.Resume (no data, the size of a segment) before
// pg_receivewal starts, so it continues right after it; a .partial segment
// after it is streamed again from its start. The slot keeps the server
// from removing that WAL meanwhile.
func (e *Engine) StreamWAL(ctx context.Context, inst *rdsbackup.Instance, o WALStreamOptions) error {
	if o.OnFile == nil || o.SpoolDir == "" {
		return errors.New("StreamWAL needs a SpoolDir and an OnFile callback")
	}
	if o.Slot == "" {
		o.Slot = SlotName(inst.ID)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.PartialInterval <= 0 {
		o.PartialInterval = 10 * time.Second
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
	st := &streamer{e: e, inst: inst, o: o, log: log, slot: o.Slot, last: o.Resume, lastTime: o.ResumeTime}
	if st.lastTime.IsZero() {
		st.lastTime = o.Now()
	}
	if err := st.load(); err != nil {
		return err
	}
	if err := st.setup(ctx); err != nil {
		return err
	}
	defer st.s.close()
	if err := st.prepare(); err != nil {
		return err
	}
	err := st.run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	if st.slotLost(err) {
		return st.lost(ctx, err)
	}
	return err
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
	last    string // the last segment delivered (or Resume)
	hostID  string
	// lastTime is the last commit time of the stream so far: the time span
	// of segments without a transaction.
	lastTime time.Time
	// partial is the segment being written as last offered, and when.
	partialName string
	partialSize int64
	partialAt   time.Time
	// described keeps the description of a file OnFile refused.
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
	if st.segSize, err = c.walSegmentSize(ctx); err != nil {
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

// walSegmentSize reads the server's WAL segment size.
func (c *conn) walSegmentSize(ctx context.Context) (int64, error) {
	var size, unit string
	if err := c.QueryRow(ctx, `SELECT setting, coalesce(unit, '') FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size'`).Scan(&size, &unit); err != nil {
		return 0, c.redact.err(fmt.Errorf("read wal_segment_size: %w", err))
	}
	return settingBytes(size, unit)
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

// run runs pg_receivewal until it exits or ctx is done, delivering
// complete files meanwhile; a delivery that fails ends it.
func (st *streamer) run(ctx context.Context) error {
	c, err := connect(ctx, st.inst.DSN, "")
	if err != nil {
		return err
	}
	defer c.close()
	st.hostID = c.info(ctx, st.log).HostID
	args := []string{"--directory=" + st.o.SpoolDir, "--slot=" + st.slot, "--no-loop", "--no-password", "--status-interval=1"}
	if st.o.Synchronous {
		args = append(args, "--synchronous")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
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
			// What it completed before exiting is delivered first.
			if derr := st.deliver(ctx); derr != nil {
				return derr
			}
			if err == nil {
				err = errors.New("pg_receivewal exited")
			}
			return err
		case <-tick.C:
			err := st.deliver(ctx)
			if err == nil && st.o.OnPartial != nil {
				// Not worth ending the stream for: the segment is
				// delivered whole once complete.
				if perr := st.offerPartial(ctx, c); perr != nil && ctx.Err() == nil {
					st.log.Warn("offering the WAL segment being written", "err", perr)
					st.partialAt = st.o.Now()
				}
			}
			if err != nil {
				cancel()
				<-done
				return err
			}
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

// lost handles a server that no longer has the WAL the stream needs: the
// gap after the last segment delivered is reported, the slot made again
// (reserving WAL from now) and the spool emptied of what pg_receivewal
// would resume from, so that the next run starts where the server is.
func (st *streamer) lost(ctx context.Context, err error) error {
	var te *ToolError
	errors.As(err, &te)
	reason := "the server removed WAL before it was received (replication slot " + st.slot + " lost or invalidated): " + strings.TrimSpace(te.Stderr)
	st.log.Warn("the log backup has a gap; the stream starts again from the server's current WAL", "after", st.last, "reason", reason)
	if st.o.OnGap != nil {
		if gerr := st.o.OnGap(ctx, WALGap{After: st.last, Reason: reason}); gerr != nil {
			return fmt.Errorf("record the gap after %s: %w", st.last, gerr)
		}
	}
	st.state = spoolState{LostAfter: st.last, Lost: true}
	if serr := st.save(); serr != nil {
		return serr
	}
	if derr := st.e.dropSlot(ctx, st.inst, st.slot, 10*time.Second); derr != nil {
		return derr
	}
	c, cerr := connect(ctx, st.inst.DSN, "")
	if cerr != nil {
		return cerr
	}
	defer c.close()
	if cerr := st.e.createSlot(ctx, c, st.slot); cerr != nil {
		return cerr
	}
	entries, _ := os.ReadDir(st.o.SpoolDir)
	for _, ent := range entries {
		if n := ent.Name(); strings.HasSuffix(n, ".partial") || segmentNameRE.MatchString(n) {
			os.Remove(filepath.Join(st.o.SpoolDir, n))
		}
	}
	return fmt.Errorf("WAL after %s was lost on the server (gap recorded): %w", st.last, err)
}

// prepare readies the spool for pg_receivewal: segments delivered already
// are removed, and a placeholder for Resume makes it continue after it.
func (st *streamer) prepare() error {
	resume, hasResume := parseWALName(st.o.Resume, st.segSize)
	if st.o.Resume != "" && !hasResume {
		return fmt.Errorf("cannot resume after %q: not a WAL segment name", st.o.Resume)
	}
	if hasResume && resume.history {
		return fmt.Errorf("cannot resume after %q: not a WAL segment", st.o.Resume)
	}
	if st.state.Lost && st.state.LostAfter == st.o.Resume {
		// The gap after Resume is known: start where the server is.
		hasResume = false
	}
	ahead := false // a file to resume from after Resume
	entries, err := os.ReadDir(st.o.SpoolDir)
	if err != nil {
		return err
	}
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), ".partial-") {
			os.RemoveAll(filepath.Join(st.o.SpoolDir, ent.Name())) // left by a crash
			continue
		}
		n := strings.TrimSuffix(ent.Name(), ".partial")
		wn, ok := parseWALName(n, st.segSize)
		if !ok || wn.history {
			continue
		}
		if n != ent.Name() {
			// pg_receivewal zero-fills a new segment before writing to it;
			// killed meanwhile, it leaves a short file it then refuses.
			// It streams a partial segment again from its start anyway.
			if fi, err := ent.Info(); err == nil && fi.Size() != 0 && fi.Size() != st.segSize {
				st.log.Warn("removing a WAL segment left half zero-filled", "file", ent.Name(), "size", fi.Size())
				os.Remove(filepath.Join(st.o.SpoolDir, ent.Name()))
				continue
			}
		}
		if hasResume && !after(wn, resume) {
			os.Remove(filepath.Join(st.o.SpoolDir, ent.Name()))
			continue
		}
		ahead = true
	}
	if hasResume && !ahead {
		// Sparse: a name and a size for pg_receivewal, no data.
		f, err := os.OpenFile(filepath.Join(st.o.SpoolDir, st.o.Resume), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("make the resume placeholder: %w", err)
		}
		err = f.Truncate(st.segSize)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("make the resume placeholder: %w", err)
		}
	}
	return nil
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
		// It only spares a second report of a gap: not worth stopping for.
		st.log.Warn("the WAL spool's state is damaged; ignoring it", "file", stateFile, "err", err)
		st.state = spoolState{}
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

// deliver offers the complete files of the spool after the last one
// delivered to OnFile, history files first, then segments in WAL order; it
// stops at the first failure.
func (st *streamer) deliver(ctx context.Context) error {
	entries, err := os.ReadDir(st.o.SpoolDir)
	if err != nil {
		return fmt.Errorf("read the WAL spool: %w", err)
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
			hist = append(hist, n)
			continue
		}
		segs = append(segs, wn)
		names[wn] = n
	}
	sort.Strings(hist)
	for _, n := range hist {
		if err := st.offer(ctx, n); err != nil {
			return err
		}
	}
	sort.Slice(segs, func(i, j int) bool { return after(segs[j], segs[i]) })
	last, hasLast := parseWALName(st.last, st.segSize)
	for _, wn := range segs {
		n := names[wn]
		if hasLast && !after(wn, last) {
			// The placeholder, or streamed again: delivered already. The
			// placeholder stays until pg_receivewal is started again.
			if n != st.o.Resume {
				os.Remove(filepath.Join(st.o.SpoolDir, n))
			}
			continue
		}
		if err := st.offer(ctx, n); err != nil {
			return err
		}
		st.last, last, hasLast = n, wn, true
		if st.state.Lost {
			st.state = spoolState{}
			if err := st.save(); err != nil {
				return err
			}
		}
	}
	return nil
}

// offer describes a file, hands it to OnFile and removes what is left of
// it.
func (st *streamer) offer(ctx context.Context, name string) error {
	f, ok := st.described[name]
	var err error
	if !ok {
		if f, err = st.e.describeWALFile(ctx, st.waldump, st.o.SpoolDir, name, st.segSize, st.o.Now(), st.lastTime); err == nil {
			st.described = map[string]WALFile{name: f}
		}
	}
	if err != nil {
		return fmt.Errorf("read WAL file %s: %w", name, err)
	}
	f.HostID = st.hostID
	if err := st.o.OnFile(ctx, f); err != nil {
		return fmt.Errorf("deliver WAL file %s: %w", name, err)
	}
	if f.HasCommits && f.EndTime.After(st.lastTime) {
		st.lastTime = f.EndTime
	}
	delete(st.described, name)
	os.Remove(f.Path)
	return nil
}

// offerPartial offers a copy of the segment being written, up to what the
// server says pg_receivewal has written, when it grew and PartialInterval
// has passed.
func (st *streamer) offerPartial(ctx context.Context, c *conn) error {
	name, path, ok := PartialWAL(st.o.SpoolDir)
	if !ok || (name == st.partialName && st.o.Now().Sub(st.partialAt) < st.o.PartialInterval) {
		return nil
	}
	wn, ok := parseWALName(name, st.segSize)
	if !ok {
		return nil
	}
	var written *string
	err := c.QueryRow(ctx, `SELECT r.write_lsn::text FROM pg_catalog.pg_stat_replication r
		JOIN pg_catalog.pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1`, st.slot).Scan(&written)
	if err != nil || written == nil {
		return nil // not streaming yet
	}
	lsn, err := ParseLSN(*written)
	if err != nil {
		return err
	}
	start := LSN(wn.segno * uint64(st.segSize))
	if lsn <= start || lsn > start+LSN(st.segSize) {
		return nil
	}
	size := int64(lsn - start)
	if name == st.partialName && size == st.partialSize {
		return nil
	}
	// pg_waldump wants the segment's own name: a link to the file being
	// written, read up to what was written.
	snap, err := os.MkdirTemp(st.o.SpoolDir, ".partial-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(snap)
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := os.Symlink(abs, filepath.Join(snap, name)); err != nil {
		return err
	}
	f := WALFile{Name: name, Path: path, Timeline: wn.tli, Seq: int64(wn.segno), StartLSN: start, ReceivedAt: st.o.Now()}
	if f.Size, f.CRC64, err = prefixSizeCRC(path, size); err != nil {
		return fmt.Errorf("read the partial segment %s: %w", name, err)
	}
	begin, end, ok, err := st.e.commitSpan(ctx, st.waldump, snap, name, lsn)
	if err != nil {
		return fmt.Errorf("read the partial segment %s: %w", name, err)
	}
	if ok {
		f.BeginTime, f.EndTime, f.HasCommits = begin, end, true
	} else {
		f.BeginTime, f.EndTime = st.lastTime, st.lastTime
	}
	f.HostID = st.hostID
	f.Partial = true
	f.EndLSN = lsn
	if err := st.o.OnPartial(ctx, f); err != nil {
		return fmt.Errorf("deliver the partial segment %s: %w", name, err)
	}
	st.partialName, st.partialSize, st.partialAt = name, size, st.o.Now()
	return nil
}

// prefixSizeCRC reads the CRC64 of the first n bytes of a file.
func prefixSizeCRC(path string, n int64) (int64, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	h := crc64.New(crcTable)
	m, err := io.CopyN(h, f, n)
	return m, h.Sum64(), err
}

// after reports whether segment a comes after b in the stream.
func after(a, b walName) bool {
	return a.segno > b.segno || (a.segno == b.segno && a.tli > b.tli)
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
