// Package logs archives the logs of instances with log backup on, for
// point-in-time recovery (docs/pitr.md): one supervised LogStreamer per
// instance, whose complete files it compresses into the object store with
// their CRC64 and records in the catalog, keeping the store at most
// UploadInterval behind the file being written, recording gaps, and
// expiring old logs.
package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup"
)

// Catalog is what the supervisor needs of the catalog.
type Catalog interface {
	FindInstances(ctx context.Context, offset, limit int) ([]*rdsbackup.Instance, int, error)
	FindBackupPolicies(ctx context.Context) ([]*rdsbackup.BackupPolicy, error)
	FindBackupSets(ctx context.Context, filter rdsbackup.BackupFilter) ([]*rdsbackup.BackupSet, int, error)
	rdsbackup.LogService
}

// Metrics is told of the supervisor's events; its methods must be safe for
// concurrent use.
type Metrics interface {
	LogStored(instanceID string, bytes int64)
	LogGap(instanceID string)
	StreamFailed(instanceID string)
}

// Supervisor runs the log streams. Set the fields, then Run.
type Supervisor struct {
	Catalog   Catalog
	Store     rdsbackup.ObjectStore
	Streamers map[rdsbackup.Engine]rdsbackup.LogStreamer
	// Dir holds one directory per instance: stream/ (the streamer's spool)
	// and ready/ (complete files not stored yet).
	Dir    string
	Logger *slog.Logger
	Now    func() time.Time
	// UploadInterval is how often the file being written is stored as a
	// replaceable partial object (default 60s).
	UploadInterval time.Duration
	// Interval is how often policies are read again and logs expired
	// (default 30s); Kick applies a change at once.
	Interval time.Duration
	// Retry paces restarts of a broken stream and retried uploads.
	RetryInitial, RetryMax time.Duration
	Metrics                Metrics
	// Leases, when set, makes each instance's stream, and log retention,
	// a cluster-wide singleton: this node streams an instance only while
	// it holds the lease "logs/<id>" (of Lease, renewed every third of
	// it), and expires logs only while it holds "logs-retention". Another
	// node takes a stream over within about Lease of this one's death.
	Leases rdsbackup.LeaseService
	Node   string
	Lease  time.Duration
	// AbortUploads, when set, aborts the store's incomplete uploads under
	// a prefix: what the previous holder left of an instance's logs, when
	// this node takes its stream.
	AbortUploads func(ctx context.Context, prefix string) (int, error)

	mu      sync.Mutex
	streams map[string]*stream
	kick    chan struct{}
	wg      sync.WaitGroup
}

// NewSupervisor returns a Supervisor with defaults.
func NewSupervisor(c Catalog, store rdsbackup.ObjectStore, streamers map[rdsbackup.Engine]rdsbackup.LogStreamer, dir string) *Supervisor {
	return &Supervisor{Catalog: c, Store: store, Streamers: streamers, Dir: dir,
		Logger: slog.New(slog.DiscardHandler), Now: time.Now, UploadInterval: time.Minute, Interval: 30 * time.Second,
		RetryInitial: time.Second, RetryMax: 30 * time.Second}
}

// stream is one instance's running stream.
type stream struct {
	inst   *rdsbackup.Instance
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{} // the uploader has files to store

	mu          sync.Mutex
	lastPartial time.Time
	partial     rdsbackup.SpooledLog // as last stored
	settled     bool                 // stored 2 s or more after its last event
	state       StreamState
}

// StreamState is what the supervisor knows of one instance's stream.
type StreamState struct {
	Streaming bool      // a streamer is connected
	Since     time.Time // of the current state
	LastError string    // why the stream last broke
	Pending   int       // complete files not yet stored
}

// State returns the state of an instance's stream; ok is false when the
// supervisor runs none for it.
func (s *Supervisor) State(instanceID string) (StreamState, bool) {
	s.mu.Lock()
	st := s.streams[instanceID]
	s.mu.Unlock()
	if st == nil {
		return StreamState{}, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.state, true
}

// Kick makes Run read the policies at once (after ModifyBackupPolicy).
func (s *Supervisor) Kick() {
	s.mu.Lock()
	k := s.kick
	s.mu.Unlock()
	if k != nil {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}

func (s *Supervisor) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Run reconciles the streams with the policies until ctx is done, then
// stops every stream and waits for them.
func (s *Supervisor) Run(ctx context.Context) error {
	s.mu.Lock()
	s.streams = map[string]*stream{}
	s.kick = make(chan struct{}, 1)
	kick := s.kick
	s.mu.Unlock()
	if err := s.finishDeletes(ctx); err != nil {
		s.logger().Warn("finish deleting log files", "err", err)
	}
	interval := s.Interval
	if s.Leases != nil {
		if s.Lease <= 0 {
			s.Lease = 30 * time.Second
		}
		// Leases are renewed by reconcile: often enough to outlive it.
		interval = min(interval, s.Lease/3)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	lastExpire := time.Time{}
	for {
		if err := s.reconcile(ctx); err != nil && ctx.Err() == nil {
			s.logger().Warn("log streams: read policies", "err", err)
		}
		if time.Since(lastExpire) >= s.Interval && s.holds(ctx, "logs-retention") {
			lastExpire = time.Now()
			if err := s.expire(ctx); err != nil && ctx.Err() == nil {
				s.logger().Warn("log retention", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			s.mu.Lock()
			var ids []string
			for id, st := range s.streams {
				st.cancel()
				ids = append(ids, id)
			}
			s.mu.Unlock()
			s.wg.Wait()
			for _, id := range ids {
				s.release(id)
			}
			if s.Leases != nil {
				s.Leases.ReleaseLease(context.WithoutCancel(ctx), "logs-retention", s.Node)
			}
			return nil
		case <-t.C:
		case <-kick:
		}
	}
}

// StreamLease names the lease of an instance's log stream.
func StreamLease(instanceID string) string { return "logs/" + instanceID }

// holds takes or renews the lease name; without Leases this node is the
// only one and holds everything. A catalog that does not answer means
// not held: the stream stops before its lease could end, because another
// node may take it from then on.
func (s *Supervisor) holds(ctx context.Context, name string) bool {
	if s.Leases == nil {
		return true
	}
	now := s.Now()
	held, err := s.Leases.AcquireLease(ctx, name, s.Node, now, now.Add(s.Lease))
	if err != nil {
		if ctx.Err() == nil {
			s.logger().Warn("cannot renew a lease", "lease", name, "err", err)
		}
		return false
	}
	return held
}

// release frees an instance's stream lease once its stream has stopped,
// so that another node takes it at once.
func (s *Supervisor) release(instanceID string) {
	if s.Leases == nil {
		return
	}
	if err := s.Leases.ReleaseLease(context.Background(), StreamLease(instanceID), s.Node); err != nil {
		s.logger().Warn("cannot release a log stream's lease", "instance", instanceID, "err", err)
	}
}

func (s *Supervisor) reconcile(ctx context.Context) error {
	insts, _, err := s.Catalog.FindInstances(ctx, 0, 0)
	if err != nil {
		return err
	}
	pols, err := s.Catalog.FindBackupPolicies(ctx)
	if err != nil {
		return err
	}
	on := map[string]bool{}
	for _, p := range pols {
		on[p.InstanceID] = p.EnableBackupLog
	}
	want := map[string]*rdsbackup.Instance{}
	elsewhere := map[string]bool{} // streamed by another node
	for _, inst := range insts {
		if on[inst.ID] && s.Streamers[inst.Engine] != nil {
			if s.holds(ctx, StreamLease(inst.ID)) {
				want[inst.ID] = inst
			} else {
				elsewhere[inst.ID] = true
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, st := range s.streams {
		w := want[id]
		if w == nil || w.DSN != st.inst.DSN || w.Engine != st.inst.Engine {
			st.cancel()
			<-st.done
			delete(s.streams, id)
			if elsewhere[id] {
				s.logger().Warn("log stream moved to another node: this node lost its lease", "instance", id)
				continue
			}
			if w == nil {
				s.dropSource(ctx, st.inst)
			}
		}
	}
	for id, inst := range want {
		if s.streams[id] == nil {
			if s.Leases != nil && s.AbortUploads != nil {
				// What the previous holder's uploads left; none of this
				// node's, since it streams the instance only from now.
				if _, err := s.AbortUploads(ctx, path.Join("logs", id)+"/"); err != nil {
					s.logger().Warn("abort the log uploads a previous node left", "instance", id, "err", err)
				}
			}
			s.start(ctx, inst)
		}
	}
	return nil
}

// dropSource undoes what streaming left on the server once log backup is
// off (the PostgreSQL slot).
func (s *Supervisor) dropSource(ctx context.Context, inst *rdsbackup.Instance) {
	if err := s.Streamers[inst.Engine].DropLogSource(ctx, inst, s.spec(inst, 0, nil)); err != nil {
		s.logger().Warn("log backup turned off: cannot clean up the server", "instance", inst.ID, "err", err)
	}
}

// Slot is the replication slot name rdsbackup owns for an instance.
func Slot(instanceID string) string {
	var b strings.Builder
	b.WriteString("rdsbackup_")
	for _, r := range strings.ToLower(instanceID) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

func (s *Supervisor) instDir(id string) string { return filepath.Join(s.Dir, id) }
func (s *Supervisor) readyDir(id string) string {
	return filepath.Join(s.instDir(id), "ready")
}

func (s *Supervisor) spec(inst *rdsbackup.Instance, serverID uint32, resume *rdsbackup.LogFile) rdsbackup.StreamSpec {
	return rdsbackup.StreamSpec{SpoolDir: filepath.Join(s.instDir(inst.ID), "stream"), Resume: resume, ServerID: serverID, Slot: Slot(inst.ID)}
}

func (s *Supervisor) start(ctx context.Context, inst *rdsbackup.Instance) {
	sctx, cancel := context.WithCancel(ctx)
	st := &stream{inst: inst, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	s.streams[inst.ID] = st
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(st.done)
		log := s.logger().With("instance", inst.ID)
		for _, d := range []string{filepath.Join(s.instDir(inst.ID), "stream"), s.readyDir(inst.ID)} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				log.Error("log streaming: create spool", "err", err)
				return
			}
		}
		if err := s.cleanQueue(inst.ID); err != nil {
			log.Error("log streaming: clean the upload queue", "err", err)
			return
		}
		var up sync.WaitGroup
		up.Add(1)
		go func() { defer up.Done(); s.uploader(sctx, st) }()
		s.runStream(sctx, st)
		up.Wait()
	}()
}

func (st *stream) setState(f func(*StreamState)) {
	st.mu.Lock()
	f(&st.state)
	st.mu.Unlock()
}

// runStream runs the instance's streamer again and again until ctx is
// done, resuming after the newest file stored or queued.
func (s *Supervisor) runStream(ctx context.Context, st *stream) {
	log := s.logger().With("instance", st.inst.ID)
	failures := 0
	for ctx.Err() == nil {
		started := s.Now()
		err := s.streamOnce(ctx, st)
		if ctx.Err() != nil {
			return
		}
		if s.Now().Sub(started) > time.Minute {
			failures = 0
		}
		failures++
		delay := min(s.RetryInitial<<min(failures-1, 10), s.RetryMax)
		log.Warn("log stream broke; restarting", "err", err, "in", delay)
		st.setState(func(ss *StreamState) {
			ss.Streaming, ss.Since = false, s.Now()
			if err != nil {
				ss.LastError = rdsbackup.ErrorMessage(err)
				if rdsbackup.ErrorCode(err) == rdsbackup.EINTERNAL {
					ss.LastError = err.Error()
				}
			}
		})
		if s.Metrics != nil {
			s.Metrics.StreamFailed(st.inst.ID)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

func (s *Supervisor) streamOnce(ctx context.Context, st *stream) error {
	serverID, err := s.Catalog.LogStreamServerID(ctx, st.inst.ID)
	if err != nil {
		return err
	}
	resume, err := s.resumePoint(ctx, st.inst.ID)
	if err != nil {
		return err
	}
	st.setState(func(ss *StreamState) { ss.Streaming, ss.Since = true, s.Now() })
	return s.Streamers[st.inst.Engine].StreamLogs(ctx, st.inst, s.spec(st.inst, serverID, resume), &sink{s: s, st: st})
}

// lastStored returns the newest complete log file stored for the
// instance, or nil.
func (s *Supervisor) lastStored(ctx context.Context, instanceID string) (*rdsbackup.LogFile, error) {
	f := rdsbackup.LogFileFilter{InstanceID: instanceID, Statuses: []rdsbackup.LogFileStatus{rdsbackup.LogCompleted}, Limit: 1}
	_, total, err := s.Catalog.FindLogFiles(ctx, f)
	if err != nil || total == 0 {
		return nil, err
	}
	f.Offset = total - 1
	files, _, err := s.Catalog.FindLogFiles(ctx, f)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	last := files[0]
	if last.Kind != rdsbackup.LogKindLog {
		return nil, nil
	}
	return last, nil
}

// resumePoint is the newest file stored complete or queued for upload.
func (s *Supervisor) resumePoint(ctx context.Context, instanceID string) (*rdsbackup.LogFile, error) {
	last, err := s.lastStored(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	queued, err := s.queued(instanceID)
	if err != nil {
		return nil, err
	}
	for _, q := range queued {
		if q.Kind == rdsbackup.LogKindLog && (last == nil || q.Seq > last.Seq) {
			last = q.logFile(instanceID)
		}
	}
	return last, nil
}

// queuedLog is a complete file waiting in ready/: its description beside
// it as NAME.json.
type queuedLog struct {
	rdsbackup.SpooledLog
}

func (q *queuedLog) logFile(instanceID string) *rdsbackup.LogFile {
	return &rdsbackup.LogFile{InstanceID: instanceID, Name: q.Name, Kind: q.Kind, Seq: q.Seq, BeginTime: q.BeginTime,
		EndTime: q.EndTime, Start: q.Start, End: q.End, RawSize: q.RawSize, HostID: q.HostID, Status: rdsbackup.LogCompleted}
}

// queued lists the files waiting in ready/, in Seq order (history files
// first). A description without its file is skipped: CompleteLog writes
// the description before it moves the file in (cleanQueue removes those a
// crash left, before the stream starts).
func (s *Supervisor) queued(instanceID string) ([]*queuedLog, error) {
	dir := s.readyDir(instanceID)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []*queuedLog
	for _, en := range entries {
		name, ok := strings.CutSuffix(en.Name(), ".json")
		if !ok {
			continue
		}
		buf, err := os.ReadFile(filepath.Join(dir, en.Name()))
		if err != nil {
			return nil, err
		}
		var q queuedLog
		if err := json.Unmarshal(buf, &q.SpooledLog); err != nil || q.Name != name {
			continue
		}
		q.Path = filepath.Join(dir, name)
		if _, err := os.Stat(q.Path); err != nil {
			continue
		}
		out = append(out, &q)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind > out[j].Kind
		}
		return out[i].Seq < out[j].Seq
	})
	return out, nil
}

// cleanQueue removes from ready/ what a crash left half done: a
// description whose file was never moved in (the file was still the
// streamer's, and is streamed again), or one that does not read. It runs
// before the stream and the uploader start, when nothing else writes there.
func (s *Supervisor) cleanQueue(instanceID string) error {
	dir := s.readyDir(instanceID)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, en := range entries {
		name, ok := strings.CutSuffix(en.Name(), ".json")
		if !ok {
			continue
		}
		buf, err := os.ReadFile(filepath.Join(dir, en.Name()))
		var q rdsbackup.SpooledLog
		if err == nil {
			err = json.Unmarshal(buf, &q)
		}
		_, serr := os.Stat(filepath.Join(dir, name))
		if err != nil || q.Name != name || serr != nil {
			if err := os.Remove(filepath.Join(dir, en.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// sink is the LogSink of one stream.
type sink struct {
	s  *Supervisor
	st *stream
}

// CompleteLog moves the file into the upload queue: its description first,
// then the file (a rename), both fsync'd, so that after a crash a queued
// file is always described.
func (k *sink) CompleteLog(ctx context.Context, f rdsbackup.SpooledLog) error {
	if strings.ContainsAny(f.Name, `/\`) || f.Name == "" || f.Name == "." || f.Name == ".." {
		return fmt.Errorf("log file name %q", f.Name)
	}
	dir := k.s.readyDir(k.st.inst.ID)
	desc := f
	desc.Path = ""
	buf, err := json.Marshal(&desc)
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(dir, f.Name+".json"), buf); err != nil {
		return fmt.Errorf("queue %s: %w", f.Name, err)
	}
	if err := os.Rename(f.Path, filepath.Join(dir, f.Name)); err != nil {
		return fmt.Errorf("queue %s: %w", f.Name, err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(f.Path)); err != nil {
		return err
	}
	select {
	case k.st.wake <- struct{}{}:
	default:
	}
	return nil
}

// PartialLog stores the file being written at most every UploadInterval.
// Failing to is not an error of the stream: the complete file follows.
// A file that has not grown is stored again only while its last second
// was not settled when it was stored (rdsbackup.RecoveryWindows).
func (k *sink) PartialLog(ctx context.Context, f rdsbackup.SpooledLog) error {
	now := k.s.Now()
	k.st.mu.Lock()
	same := k.st.partial.Name == f.Name && k.st.partial.RawSize == f.RawSize
	due := now.Sub(k.st.lastPartial) >= k.s.UploadInterval && !(same && k.st.settled)
	if due && same && now.Before(f.EndTime.Add(2*time.Second)) {
		due = false // storing it again now would not settle it either
	}
	if due {
		k.st.lastPartial = now
	}
	k.st.mu.Unlock()
	if !due {
		return nil
	}
	if err := k.s.storePartial(ctx, k.st.inst.ID, f); err != nil {
		if ctx.Err() == nil {
			k.s.logger().Warn("store the log file being written", "instance", k.st.inst.ID, "file", f.Name, "err", err)
		}
		return nil
	}
	k.st.mu.Lock()
	k.st.partial, k.st.settled = f, !now.Before(f.EndTime.Add(2*time.Second))
	k.st.mu.Unlock()
	return nil
}

// Gap records events the streamer knows are lost.
func (k *sink) Gap(ctx context.Context, g rdsbackup.LogGap) error {
	g.InstanceID = k.st.inst.ID
	if g.DetectedAt.IsZero() {
		g.DetectedAt = k.s.Now()
	}
	k.s.logger().Warn("gap in the log archive: a restore cannot reach the times inside it", "instance", g.InstanceID, "after", g.AfterSeq, "reason", g.Reason)
	if k.s.Metrics != nil {
		k.s.Metrics.LogGap(g.InstanceID)
	}
	return k.s.Catalog.CreateLogGap(ctx, &g)
}

// ObjectKey is where a complete log file lives in the store.
func ObjectKey(instanceID, name string) string {
	return path.Join("logs", instanceID, name+".zst")
}

// PartialKey is where the copy of the file being written lives.
func PartialKey(instanceID, name string) string {
	return path.Join("logs", instanceID, name+".partial.zst")
}

// uploader stores the queued files, oldest first, until ctx is done;
// a failed upload is retried with backoff, the file staying queued.
func (s *Supervisor) uploader(ctx context.Context, st *stream) {
	failures := 0
	for {
		n, err := s.uploadQueued(ctx, st)
		st.setState(func(ss *StreamState) { ss.Pending = n })
		wait := s.Interval
		if err != nil && ctx.Err() == nil {
			failures++
			wait = min(s.RetryInitial<<min(failures-1, 10), s.RetryMax)
			s.logger().Warn("store log files; they stay in the spool and are retried", "instance", st.inst.ID, "pending", n, "err", err, "in", wait)
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-st.wake:
		case <-time.After(wait):
		}
	}
}

// uploadQueued stores every queued file and returns how many are left.
func (s *Supervisor) uploadQueued(ctx context.Context, st *stream) (int, error) {
	queue, err := s.queued(st.inst.ID)
	if err != nil {
		return 0, err
	}
	for i, q := range queue {
		if err := s.storeComplete(ctx, st.inst.ID, q); err != nil {
			return len(queue) - i, err
		}
	}
	return 0, nil
}

func (s *Supervisor) storeComplete(ctx context.Context, instanceID string, q *queuedLog) error {
	f := q.logFile(instanceID)
	if f.Kind == rdsbackup.LogKindLog {
		if err := s.checkAdjacent(ctx, f); err != nil {
			return err
		}
	}
	f.ObjectKey = ObjectKey(instanceID, f.Name)
	size, sum, err := s.put(ctx, f.ObjectKey, q.Path, f.RawSize)
	if err != nil {
		return fmt.Errorf("store %s: %w", f.Name, err)
	}
	f.Size, f.Checksum, f.CreatedAt = size, strconv.FormatUint(sum, 10), s.Now().UTC().Truncate(time.Second)
	if err := s.Catalog.PutLogFile(ctx, f); err != nil {
		return fmt.Errorf("record %s: %w", f.Name, err)
	}
	if s.Metrics != nil {
		s.Metrics.LogStored(instanceID, size)
	}
	// The partial copy is replaced; then the queue entry goes, file first.
	_ = s.Store.Delete(ctx, PartialKey(instanceID, f.Name))
	if err := os.Remove(q.Path); err != nil {
		return err
	}
	return os.Remove(q.Path + ".json")
}

// checkAdjacent records a gap when f does not follow the newest file
// stored (a file the server no longer had, say).
func (s *Supervisor) checkAdjacent(ctx context.Context, f *rdsbackup.LogFile) error {
	last, err := s.lastStored(ctx, f.InstanceID)
	if err != nil || last == nil || f.Seq <= last.Seq+1 {
		return err
	}
	gaps, err := s.Catalog.FindLogGaps(ctx, f.InstanceID)
	if err != nil {
		return err
	}
	for _, g := range gaps {
		if g.AfterSeq == last.Seq {
			return nil // the streamer reported it
		}
	}
	g := &rdsbackup.LogGap{InstanceID: f.InstanceID, AfterSeq: last.Seq, BeforeSeq: f.Seq, From: last.EndTime, To: f.BeginTime,
		Reason: fmt.Sprintf("the log files between %s and %s were never received", last.Name, f.Name), DetectedAt: s.Now()}
	s.logger().Warn("gap in the log archive: a restore cannot reach the times inside it", "instance", f.InstanceID, "reason", g.Reason)
	if s.Metrics != nil {
		s.Metrics.LogGap(f.InstanceID)
	}
	return s.Catalog.CreateLogGap(ctx, g)
}

// storePartial stores the first RawSize bytes of the file being written.
func (s *Supervisor) storePartial(ctx context.Context, instanceID string, sl rdsbackup.SpooledLog) error {
	f := &rdsbackup.LogFile{InstanceID: instanceID, Name: sl.Name, Kind: sl.Kind, Seq: sl.Seq, BeginTime: sl.BeginTime, EndTime: sl.EndTime,
		Start: sl.Start, End: sl.End, RawSize: sl.RawSize, HostID: sl.HostID, Status: rdsbackup.LogUploading,
		ObjectKey: PartialKey(instanceID, sl.Name)}
	size, sum, err := s.put(ctx, f.ObjectKey, sl.Path, sl.RawSize)
	if err != nil {
		return err
	}
	f.Size, f.Checksum, f.CreatedAt = size, strconv.FormatUint(sum, 10), s.Now().UTC().Truncate(time.Second)
	return s.Catalog.PutLogFile(ctx, f)
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// put compresses the first n bytes of the file at p into key and returns
// the object's size and CRC64, computed as it is written.
func (s *Supervisor) put(ctx context.Context, key, p string, n int64) (int64, uint64, error) {
	in, err := os.Open(p)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	w, err := s.Store.Create(ctx, key)
	if err != nil {
		return 0, 0, err
	}
	defer w.Abort()
	cw := &crcWriter{w: w}
	enc, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return 0, 0, err
	}
	copied, err := io.Copy(enc, io.LimitReader(in, n))
	if err != nil {
		enc.Close()
		return 0, 0, err
	}
	if copied != n {
		enc.Close()
		return 0, 0, fmt.Errorf("%s holds %d bytes, expected %d", p, copied, n)
	}
	if err := enc.Close(); err != nil {
		return 0, 0, err
	}
	if err := w.Commit(); err != nil {
		return 0, 0, err
	}
	return cw.n, cw.sum, nil
}

type crcWriter struct {
	w   io.Writer
	n   int64
	sum uint64
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.sum = crc64.Update(c.sum, crcTable, p[:n])
	c.n += int64(n)
	return n, err
}

func writeFileSync(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
