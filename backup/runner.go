// Package backup runs backup jobs: it drives an engine's dump tools, streams
// their output through zstd and CRC64 into one object per backup set, and
// records the outcome in the catalog only once the data is durably stored.
package backup

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup"
)

// Location is the BackupLocation of sets that rdsbackup stores itself.
const Location = "rdsbackup"

// Catalog is what the runner needs of the catalog.
type Catalog interface {
	FindInstance(ctx context.Context, id string) (*rdsbackup.Instance, error)
	SetEngineVersion(ctx context.Context, id, version string) error
	CreateJob(ctx context.Context, job *rdsbackup.Job) error
	UpdateJob(ctx context.Context, job *rdsbackup.Job) error
	FindJobs(ctx context.Context, filter rdsbackup.JobFilter) ([]*rdsbackup.Job, error)
	FindBackupSet(ctx context.Context, id int64) (*rdsbackup.BackupSet, error)
	CreateBackupSet(ctx context.Context, set *rdsbackup.BackupSet) error
	RenewJobLease(ctx context.Context, id int64, node string, until time.Time) error
	ClaimJob(ctx context.Context, id int64, node string, now, until time.Time) error
}

// Options describe one backup to take.
type Options = rdsbackup.BackupOptions

// Runner starts backup jobs in the background, at most one per instance.
type Runner struct {
	Catalog Catalog
	Store   rdsbackup.ObjectStore
	Engines map[rdsbackup.Engine]rdsbackup.BackupEngine
	Logger  *slog.Logger
	Now     func() time.Time
	// Level is the zstd level; the default favours speed.
	Level zstd.EncoderLevel
	// ProgressInterval is how often a running job's progress is saved.
	ProgressInterval time.Duration
	// Retry paces the attempts at a job's final write (its Failed or
	// Finished state, and a failed job's set), which are repeated until
	// they reach the catalog or the runner closes: a job must not stay
	// unfinished because the catalog's disk was full for a while.
	Retry Backoff
	// After is the clock the retries wait on (time.After); tests replace it.
	After func(time.Duration) <-chan time.Time
	// Metrics, when set, receives the outcome of every job.
	Metrics Metrics
	// Node, when set, is this node's id (docs/nodes.md): every job is
	// created held by it with a lease of Lease (default DefaultLease),
	// renewed while it runs, and Recover and Sweep settle only the jobs
	// of this node and those whose lease has ended. Unset, the runner is
	// the catalog's only one.
	Node  string
	Lease time.Duration
	// AbortUploads, when set, aborts the store's incomplete uploads under
	// a key prefix: what a dead node's writers left of a job it settles.
	AbortUploads func(ctx context.Context, prefix string) (int, error)

	mu        sync.Mutex
	running   map[string]int64 // instance id → job id
	cancels   map[int64]context.CancelFunc
	states    map[int64]rdsbackup.JobStatus // of the running jobs
	unsettled map[int64]*Unsettled
	wg        sync.WaitGroup
	closed    bool
	closing   chan struct{} // closed by Close: retries stop waiting
}

// Metrics is what the runner reports to a metrics system. Its methods must
// be safe for concurrent use.
type Metrics interface {
	// BackupDone is called once per job that ran, with its result
	// ("Success" or "Failed"), how long it took and the bytes it stored.
	BackupDone(engine rdsbackup.Engine, method rdsbackup.BackupMethod, result string, took time.Duration, bytes int64)
	// CatalogWriteFailed counts a job state that could not be written;
	// final says whether it was the job's final state (which is retried).
	CatalogWriteFailed(final bool)
}

// Backoff is a retry schedule: Initial, doubled after each failure, at
// most Max.
type Backoff struct {
	Initial, Max time.Duration
}

// DefaultLease is how long a job's claim lasts without renewal.
const DefaultLease = 30 * time.Second

// NodeLost is the failure reason of a job whose node stopped renewing its
// lease, settled by another node.
const NodeLost = "node lost: the node running the backup stopped renewing its lease"

func (r *Runner) lease() time.Duration {
	if r.Lease > 0 {
		return r.Lease
	}
	return DefaultLease
}

// DefaultRetry is the Runner's retry schedule of final writes.
var DefaultRetry = Backoff{Initial: time.Second, Max: time.Minute}

// Delay is the wait before retry number attempt (1 for the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Initial
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Unsettled is a job that has ended but whose final state the catalog has
// not taken yet: the runner keeps retrying, and shows the job in that
// state meanwhile (JobView).
type Unsettled struct {
	Job      rdsbackup.Job // in its final state
	Since    time.Time     // the first failed attempt
	Attempts int
	Err      string // why the last attempt failed
}

// NewRunner returns a Runner with defaults.
func NewRunner(c Catalog, store rdsbackup.ObjectStore, engines map[rdsbackup.Engine]rdsbackup.BackupEngine) *Runner {
	return &Runner{Catalog: c, Store: store, Engines: engines, Logger: slog.New(slog.DiscardHandler),
		Now: time.Now, Level: zstd.SpeedFastest, ProgressInterval: time.Second, Retry: DefaultRetry, After: time.After}
}

// ObjectKey returns where a set's object lives.
func ObjectKey(instanceID string, id int64) string {
	return path.Join("backups", instanceID, strconv.FormatInt(id, 10), "set.zst")
}

// ManifestKey returns where a set's manifest lives.
func ManifestKey(instanceID string, id int64) string {
	return path.Join("backups", instanceID, strconv.FormatInt(id, 10), "manifest.json")
}

func setPrefix(instanceID string, id int64) string {
	return path.Join("backups", instanceID, strconv.FormatInt(id, 10)) + "/"
}

var _ rdsbackup.BackupStarter = (*Runner)(nil)

// StartBackup validates a backup request and starts it in the background. Nothing
// is queued: an instance with a running backup refuses a second one.
func (r *Runner) StartBackup(ctx context.Context, instanceID string, opts Options) (*rdsbackup.Job, error) {
	inst, err := r.Catalog.FindInstance(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	engine := r.Engines[inst.Engine]
	if engine == nil {
		return nil, rdsbackup.Errorf(rdsbackup.EUnsupportedEngine, "Backups of %s instances are not supported yet.", inst.Engine)
	}
	switch opts.Method {
	case rdsbackup.MethodLogical, rdsbackup.MethodPhysical:
	case rdsbackup.MethodSnapshot:
		return nil, rdsbackup.Errorf(rdsbackup.EUnsupportedMethod, "BackupMethod Snapshot is not supported: rdsbackup takes Logical and Physical backups.")
	default:
		return nil, rdsbackup.InvalidParameter("BackupMethod", "must be Logical or Physical")
	}
	if opts.Strategy == "" {
		opts.Strategy = "instance"
	}
	if opts.Mode == "" {
		opts.Mode = rdsbackup.BackupManual
	}
	if opts.Initiator == "" {
		opts.Initiator = rdsbackup.InitiatorUser
	}
	if opts.StoreStatus == "" {
		opts.StoreStatus = rdsbackup.StoreEnabled
	}

	// Reserve the instance first so two concurrent calls cannot both pass.
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, rdsbackup.Errorf(rdsbackup.EServiceUnavailable, "The service is shutting down.")
	}
	r.init()
	if id, ok := r.running[instanceID]; ok {
		r.mu.Unlock()
		if u := r.unsettledJob(id); u != nil {
			return nil, rdsbackup.Errorf(rdsbackup.EBackupRunning, "Current DB instance state does not support this operation: backup job %d of %s has ended (%s) but its result cannot be recorded yet: %s", id, instanceID, u.Job.Status, u.Err)
		}
		return nil, rdsbackup.Errorf(rdsbackup.EBackupRunning, "Current DB instance state does not support this operation: backup job %d of %s is still running.", id, instanceID)
	}
	r.running[instanceID] = 0
	r.mu.Unlock()
	release := func() {
		r.mu.Lock()
		delete(r.running, instanceID)
		r.mu.Unlock()
	}

	if opts.Strategy == "db" {
		if len(opts.Databases) == 0 {
			release()
			return nil, rdsbackup.MissingParameter("DBName")
		}
		// A server that answers is asked now, so an unknown name is refused
		// before any work. One that does not answer fails the job with the
		// real reason, as a backup without DBName would.
		have, err := engine.Databases(ctx, inst)
		if err != nil {
			r.Logger.Warn("cannot list databases before the backup; the job will report why", "instance", instanceID, "err", err)
		} else if missing, ok := firstMissing(opts.Databases, have); !ok {
			release()
			return nil, rdsbackup.Errorf(rdsbackup.EDBNameNotFound, "The database %s does not exist on instance %s.", rdsbackup.QuoteValue(missing), instanceID)
		}
	}

	job := &rdsbackup.Job{InstanceID: instanceID, Status: rdsbackup.JobNoStart, Mode: opts.Mode, Method: opts.Method,
		Strategy: opts.Strategy, Databases: opts.Databases, Window: opts.Window}
	if r.Node != "" {
		// The catalog refuses a second running job of the instance,
		// whichever node holds the first.
		job.Node, job.LeaseUntil = r.Node, r.Now().Add(r.lease())
	}
	if err := r.Catalog.CreateJob(ctx, job); err != nil {
		release()
		return nil, err
	}
	jobCtx, cancel := context.WithCancelCause(context.Background())
	r.mu.Lock()
	r.running[instanceID] = job.ID
	r.cancels[job.ID] = func() { cancel(context.Canceled) }
	r.wg.Add(1)
	r.mu.Unlock()
	snapshot := *job
	go func() {
		defer r.wg.Done()
		defer cancel(nil)
		stopRenew := r.renew(jobCtx, job, cancel)
		defer stopRenew()
		r.run(jobCtx, inst, engine, job, opts)
		r.mu.Lock()
		delete(r.running, instanceID)
		delete(r.cancels, job.ID)
		delete(r.states, job.ID)
		r.mu.Unlock()
	}()
	return &snapshot, nil
}

// errLeaseLost cancels a job whose lease this node could not keep.
var errLeaseLost = errors.New("lease lost")

// renew keeps the job's lease while it runs, and its final write: every
// third of the lease. A job another node has taken (it found the lease
// ended) is cancelled at once; one whose lease could not be renewed in
// time (the catalog does not answer) is cancelled when the lease ends,
// because another node may settle it from then on.
func (r *Runner) renew(ctx context.Context, job *rdsbackup.Job, cancel context.CancelCauseFunc) (stop func()) {
	if r.Node == "" {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		lease := r.lease()
		held := job.LeaseUntil
		t := time.NewTicker(lease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			until := r.Now().Add(lease)
			err := r.Catalog.RenewJobLease(context.WithoutCancel(ctx), job.ID, r.Node, until)
			switch code := rdsbackup.ErrorCode(err); {
			case err == nil:
				held = until
			case code == rdsbackup.ECONFLICT || code == rdsbackup.ENOTFOUND:
				// Ended (our own final write won the race) or taken.
				select {
				case <-done:
					return
				default:
				}
				id := job.ID
				if got, ferr := r.Catalog.FindJobs(context.WithoutCancel(ctx), rdsbackup.JobFilter{ID: &id}); ferr == nil &&
					len(got) == 1 && got[0].Node == r.Node && got[0].Status.Done() {
					return
				}
				r.Logger.Error("another node has taken this node's backup job; stopping it", "job", job.ID, "err", err)
				cancel(errLeaseLost)
				return
			default:
				r.Logger.Warn("cannot renew a job's lease", "job", job.ID, "err", err)
				if !r.Now().Before(held) {
					r.Logger.Error("a job's lease ended before it could be renewed; stopping it", "job", job.ID)
					cancel(errLeaseLost)
					return
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// Active returns the number of backups running.
func (r *Runner) Active() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running)
}

// Running reports whether the instance has a backup running.
func (r *Runner) Running(instanceID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.running[instanceID]
	return ok
}

// init makes the maps; call it with r.mu held.
func (r *Runner) init() {
	if r.running == nil {
		r.running, r.cancels = map[string]int64{}, map[int64]context.CancelFunc{}
		r.states, r.unsettled = map[int64]rdsbackup.JobStatus{}, map[int64]*Unsettled{}
		r.closing = make(chan struct{})
	}
}

// Close cancels running jobs and waits for them to record their failure.
// A final write still failing is tried once more, then left to the next
// start's Recover.
func (r *Runner) Close() error {
	r.mu.Lock()
	r.init()
	if !r.closed {
		close(r.closing)
	}
	r.closed = true
	for _, cancel := range r.cancels {
		cancel()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// JobStates counts the running jobs by state. A job whose final state is
// not recorded yet counts in that final state.
func (r *Runner) JobStates() map[rdsbackup.JobStatus]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[rdsbackup.JobStatus]int{}
	for id, st := range r.states {
		if u := r.unsettled[id]; u != nil {
			st = u.Job.Status
		}
		out[st]++
	}
	for id, u := range r.unsettled { // settled by Recover, not run here
		if _, ok := r.states[id]; !ok {
			out[u.Job.Status]++
		}
	}
	return out
}

func (r *Runner) unsettledJob(id int64) *Unsettled {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u := r.unsettled[id]; u != nil {
		c := *u
		return &c
	}
	return nil
}

// Unsettled returns the jobs whose final state the catalog has not taken
// yet, oldest first.
func (r *Runner) Unsettled() []Unsettled {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Unsettled, 0, len(r.unsettled))
	for _, u := range r.unsettled {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b Unsettled) int { return cmp.Compare(a.Job.ID, b.Job.ID) })
	return out
}

// firstMissing returns the first of want that is not in have, in time
// linear in both lists.
func firstMissing(want, have []string) (string, bool) {
	set := make(map[string]struct{}, len(have))
	for _, h := range have {
		set[h] = struct{}{}
	}
	for _, w := range want {
		if _, ok := set[w]; !ok {
			return w, false
		}
	}
	return "", true
}

// run takes the backup. The catalog says Success only after the object and
// its manifest are committed (fsync + rename) and their size checked.
func (r *Runner) run(ctx context.Context, inst *rdsbackup.Instance, engine rdsbackup.BackupEngine, job *rdsbackup.Job, opts Options) {
	log := r.Logger.With("job", job.ID, "instance", inst.ID)
	start := r.Now().UTC()
	// Bookkeeping must survive the job's cancellation.
	bg := context.WithoutCancel(ctx)
	r.setStatus(bg, job, rdsbackup.JobPreparing, 0)

	set, err := r.take(ctx, inst, engine, job, opts, start, log)
	if err != nil && (errors.Is(err, errLeaseLost) || errors.Is(context.Cause(ctx), errLeaseLost)) {
		// The job is no longer this node's to record: the node that took
		// it (or will, its lease having ended) settles it.
		log.Error("backup stopped: this node lost the job's lease", "err", err)
		r.removeObjectsOfFailed(bg, inst.ID, job.ID)
		r.observe(inst, opts, "Failed", start, 0)
		return
	}
	if err != nil {
		log.Warn("backup failed", "err", err)
		r.removeObjectsOfFailed(bg, inst.ID, job.ID)
		failed := r.failure(inst, job, opts, start, err)
		r.settle(bg, job, failed)
		r.observe(inst, opts, "Failed", start, 0)
		return
	}
	job.BackupSetID = set.ID
	job.Status, job.Progress = rdsbackup.JobFinished, 100
	r.settle(bg, job, nil)
	r.observe(inst, opts, "Success", start, set.Size)
	log.Info("backup finished", "backupId", set.ID, "size", set.Size)
}

func (r *Runner) observe(inst *rdsbackup.Instance, opts Options, result string, start time.Time, bytes int64) {
	if r.Metrics != nil {
		r.Metrics.BackupDone(inst.Engine, opts.Method, result, r.Now().UTC().Sub(start), bytes)
	}
}

// settle writes a job's final state (and, for a failed job, its Failed set
// first) until the catalog takes it, waiting Retry between attempts, and
// keeps the job in Unsettled meanwhile. Once the runner closes it tries one
// last time and leaves the job to the next start's Recover.
func (r *Runner) settle(ctx context.Context, job *rdsbackup.Job, failed *rdsbackup.BackupSet) {
	r.mu.Lock()
	r.init()
	closing := r.closing
	r.mu.Unlock()
	for {
		// An earlier attempt (this loop's, or Recover's) may have failed.
		retry := r.unsettledJob(job.ID) != nil
		err := r.writeFinal(ctx, job, &failed, retry)
		if err == nil {
			r.mu.Lock()
			if u := r.unsettled[job.ID]; u != nil {
				r.Logger.Info("job's final state recorded after retries", "job", job.ID, "status", job.Status, "attempts", u.Attempts+1,
					"after", r.Now().Sub(u.Since).Round(time.Millisecond))
				delete(r.unsettled, job.ID)
			}
			r.mu.Unlock()
			return
		}
		if r.Metrics != nil {
			r.Metrics.CatalogWriteFailed(true)
		}
		// The job's row is gone, or another node has taken the job.
		permanent := rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND || rdsbackup.ErrorCode(err) == rdsbackup.ECONFLICT
		r.mu.Lock()
		u := r.unsettled[job.ID]
		if u == nil {
			u = &Unsettled{Since: r.Now()}
			r.unsettled[job.ID] = u
		}
		u.Attempts++
		u.Job, u.Err = *job, err.Error()
		attempt := u.Attempts
		r.mu.Unlock()
		select {
		case <-closing:
			permanent = true
		default:
		}
		if permanent {
			r.Logger.Error("cannot record the job's final state; the next start settles it", "job", job.ID, "status", job.Status, "attempts", attempt, "err", err)
			r.mu.Lock()
			delete(r.unsettled, job.ID)
			r.mu.Unlock()
			return
		}
		delay := r.Retry.Delay(attempt)
		r.Logger.Error("cannot record the job's final state; retrying", "job", job.ID, "status", job.Status, "attempt", attempt, "retryIn", delay, "err", err)
		select {
		case <-r.After(delay):
		case <-closing:
		}
	}
}

// writeFinal makes one attempt at a job's final write. *failed is set to
// nil once the Failed set is recorded, so a retry does not record it twice;
// on a retry a set that the catalog did record, although it reported an
// error, is not recorded again either.
func (r *Runner) writeFinal(ctx context.Context, job *rdsbackup.Job, failed **rdsbackup.BackupSet, retry bool) error {
	if set := *failed; set != nil {
		if _, err := r.Catalog.FindBackupSet(ctx, set.ID); !retry || err != nil {
			if err := r.Catalog.CreateBackupSet(ctx, set); err != nil {
				return fmt.Errorf("record failed backup set: %w", err)
			}
		}
		*failed = nil
	}
	if err := r.Catalog.UpdateJob(ctx, job); err != nil {
		return fmt.Errorf("record job state %s: %w", job.Status, err)
	}
	r.mu.Lock()
	if _, ok := r.states[job.ID]; ok {
		r.states[job.ID] = job.Status
	}
	r.mu.Unlock()
	return nil
}

func (r *Runner) take(ctx context.Context, inst *rdsbackup.Instance, engine rdsbackup.BackupEngine, job *rdsbackup.Job,
	opts Options, start time.Time, log *slog.Logger) (*rdsbackup.BackupSet, error) {
	info, err := engine.Probe(ctx, inst)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	r.recordVersion(ctx, inst, info.Version, log)
	req := rdsbackup.BackupRequest{Method: opts.Method}
	if opts.Strategy == "db" {
		req.Databases = opts.Databases
	}
	estimate, err := engine.EstimateSize(ctx, inst, req)
	if err != nil {
		log.Warn("cannot estimate backup size; progress will be coarse", "err", err)
	}

	key := ObjectKey(inst.ID, job.ID)
	// The raw estimate bounds the compressed object well enough to size
	// an object store's upload parts.
	obj, err := r.Store.Create(rdsbackup.WithSizeHint(ctx, estimate), key)
	if err != nil {
		return nil, fmt.Errorf("create object: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			if err := obj.Abort(); err != nil {
				log.Warn("abort object", "err", err)
			}
		}
	}()
	// The set records how its object is encrypted (DescribeBackups'
	// Encryption): the store's writer says so when it encrypts.
	encryption := rdsbackup.NoEncryption
	if ew, ok := obj.(rdsbackup.EncryptingWriter); ok {
		encryption = ew.Encryption()
	}
	sw, err := newSetWriter(obj, r.Level)
	if err != nil {
		return nil, err
	}
	r.setStatus(ctx, job, rdsbackup.JobUploading, 0)
	stopProgress := r.trackProgress(ctx, job, sw, estimate)
	res, err := engine.Backup(ctx, inst, req, sw)
	stopProgress()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.setStatus(ctx, job, rdsbackup.JobChecking, 99)

	end := r.Now().UTC()
	m := Manifest{
		Version: ManifestVersion, ID: job.ID, InstanceID: inst.ID, Engine: string(inst.Engine),
		EngineVersion: res.Info.Version, HostInstanceID: res.Info.HostID, Method: string(opts.Method),
		Type: string(rdsbackup.FullBackup), Mode: string(opts.Mode), Initiator: string(opts.Initiator),
		StoreStatus: string(opts.StoreStatus), StartTime: start.Unix(), EndTime: end.Unix(),
		ConsistentTime: res.ConsistentTime, Databases: res.Databases, ObjectKey: key, Compression: "zstd",
		LogPositions: res.LogPositions,
	}
	if res.Info.Version == "" {
		m.EngineVersion, m.HostInstanceID = info.Version, info.HostID
	} else {
		// The backup's own connection is the latest word (a server
		// upgraded between the probe and the dump).
		r.recordVersion(ctx, inst, res.Info.Version, log)
	}
	m.Scale = "DBInstance"
	if opts.Strategy == "db" {
		m.Scale = "Database"
	}
	if opts.Retention > 0 {
		m.ExpectExpireTime = end.Add(opts.Retention).Unix()
	}
	for _, a := range sw.parts {
		m.Parts = append(m.Parts, ManifestPart{Name: a.Database, Kind: a.Kind, Offset: a.Offset, Length: a.Length, Checksum: a.Checksum})
	}
	trailer, err := json.Marshal(&m)
	if err != nil {
		return nil, err
	}
	if err := sw.writeTrailer(trailer); err != nil {
		return nil, fmt.Errorf("write manifest trailer: %w", err)
	}
	committed = true
	if err := obj.Commit(); err != nil {
		return nil, fmt.Errorf("commit object: %w", err)
	}
	// From here on a failure must remove the committed object.
	full := SetObjectManifest{Manifest: m, Size: sw.n, Checksum: FormatChecksum(sw.sum)}
	if err := r.putManifest(ctx, &full); err != nil {
		r.removeSetObjects(context.WithoutCancel(ctx), inst.ID, job.ID)
		return nil, err
	}
	if st, err := r.Store.Stat(ctx, key); err != nil || st.Size != sw.n {
		r.removeSetObjects(context.WithoutCancel(ctx), inst.ID, job.ID)
		if err == nil {
			err = fmt.Errorf("stored %d bytes, expected %d", st.Size, sw.n)
		}
		return nil, fmt.Errorf("verify object: %w", err)
	}
	set := full.ToBackupSet()
	set.Encryption = encryption
	if r.Node != "" {
		// A fresh lease before the set is recorded: no other node settles
		// the job while this one records it Success.
		// A catalog that does not take the renewal will not take the set
		// either, and says why there; only a job another node holds stops
		// here.
		err := r.Catalog.RenewJobLease(context.WithoutCancel(ctx), job.ID, r.Node, r.Now().Add(r.lease()))
		if code := rdsbackup.ErrorCode(err); code == rdsbackup.ECONFLICT || code == rdsbackup.ENOTFOUND {
			r.removeSetObjects(context.WithoutCancel(ctx), inst.ID, job.ID)
			return nil, fmt.Errorf("%w: renew before recording the set: %w", errLeaseLost, err)
		} else if err != nil {
			log.Warn("cannot renew the job's lease before recording its set", "err", err)
		}
	}
	if err := r.Catalog.CreateBackupSet(context.WithoutCancel(ctx), set); err != nil {
		r.removeSetObjects(context.WithoutCancel(ctx), inst.ID, job.ID)
		return nil, fmt.Errorf("record backup set: %w", err)
	}
	if pr, ok := r.Catalog.(positionRecorder); ok && len(res.LogPositions) > 0 {
		// Without them the set is a full backup still, only not a base
		// for a restore to a time; the manifest keeps them too.
		if err := pr.PutSetLogPositions(context.WithoutCancel(ctx), set.ID, res.LogPositions); err != nil {
			log.Warn("cannot record the log positions of the set; it cannot be rolled forward", "set", set.ID, "err", err)
		}
	}
	return set, nil
}

// positionRecorder is the catalog's LogService method that keeps the log
// positions of a new set.
type positionRecorder interface {
	PutSetLogPositions(ctx context.Context, setID int64, positions map[string]rdsbackup.LogPosition) error
}

// recordVersion keeps the version the server just reported in the catalog,
// where DescribeDBInstances shows it, and in inst, so that a set this job
// records later (a failed one too) carries it. Not being able to record it
// does not fail the backup.
func (r *Runner) recordVersion(ctx context.Context, inst *rdsbackup.Instance, version string, log *slog.Logger) {
	if version == "" || version == inst.EngineVersion {
		return
	}
	inst.EngineVersion = version
	if err := r.Catalog.SetEngineVersion(context.WithoutCancel(ctx), inst.ID, version); err != nil {
		log.Warn("cannot record the server's version", "version", version, "err", err)
	}
}

func (r *Runner) putManifest(ctx context.Context, m *SetObjectManifest) error {
	buf, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	w, err := r.Store.Create(ctx, ManifestKey(m.InstanceID, m.ID))
	if err != nil {
		return fmt.Errorf("create manifest: %w", err)
	}
	if _, err := w.Write(buf); err != nil {
		w.Abort()
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := w.Commit(); err != nil {
		return fmt.Errorf("commit manifest: %w", err)
	}
	return nil
}

// removeSetObjects deletes whatever a set's job stored.
func (r *Runner) removeSetObjects(ctx context.Context, instanceID string, id int64) error {
	return removeSetObjects(ctx, r.Store, instanceID, id)
}

func removeSetObjects(ctx context.Context, store rdsbackup.ObjectStore, instanceID string, id int64) error {
	// The manifest goes last, and only once the data is gone, so whatever
	// is left after a failure or crash is still described by it.
	var manifests []string
	for o, err := range store.List(ctx, setPrefix(instanceID, id)) {
		if err != nil {
			return fmt.Errorf("list objects of set %d: %w", id, err)
		}
		if path.Base(o.Key) == "manifest.json" {
			manifests = append(manifests, o.Key)
		} else if err := store.Delete(ctx, o.Key); err != nil {
			return err
		}
	}
	for _, key := range manifests {
		if err := store.Delete(ctx, key); err != nil {
			return err
		}
	}
	return nil
}

// maxReason bounds the failure reason kept in the catalog.
const maxReason = 2000

// removeObjectsOfFailed removes what a failed job stored; a failure is
// logged (the set is recorded Failed regardless, and rebuild-catalog or a
// later deletion finds leftovers by their manifest).
func (r *Runner) removeObjectsOfFailed(ctx context.Context, instanceID string, id int64) {
	if err := r.removeSetObjects(ctx, instanceID, id); err != nil {
		r.Logger.Error("remove objects of failed backup", "job", id, "err", err)
	}
}

// failure puts a failed job in its final state and returns the set to
// record for it: Failed, IsAvail 0, with the reason.
func (r *Runner) failure(inst *rdsbackup.Instance, job *rdsbackup.Job, opts Options, start time.Time, cause error) *rdsbackup.BackupSet {
	reason := cause.Error()
	if errors.Is(cause, context.Canceled) {
		reason = "cancelled: the service stopped during the backup"
	}
	if errors.Is(cause, errLeaseLost) {
		reason = "cancelled: this node lost the job's lease (another node settles it)"
	}
	if len(reason) > maxReason {
		reason = "…" + reason[len(reason)-maxReason:]
	}
	set := &rdsbackup.BackupSet{
		ID: job.ID, InstanceID: inst.ID, Status: rdsbackup.BackupFailed, StartTime: start, EndTime: r.Now().UTC(),
		Type: rdsbackup.FullBackup, Mode: opts.Mode, Method: opts.Method, Initiator: opts.Initiator,
		StoreStatus: opts.StoreStatus, MetaStatus: "EMPTY", Engine: inst.Engine, EngineVersion: inst.EngineVersion,
		Location: Location, Scale: "DBInstance", DBNames: opts.Databases, FailureReason: reason,
	}
	if opts.Strategy == "db" {
		set.Scale = "Database"
	}
	if opts.Retention > 0 {
		// A failed automated set expires too, or it would stay forever:
		// DeleteBackup refuses automated sets.
		set.ExpectExpireTime = set.EndTime.Add(opts.Retention)
	}
	job.Error = reason
	job.BackupSetID = job.ID
	job.Status = rdsbackup.JobFailed
	return set
}

// setStatus records a running job's progress. A failure is logged: the
// job goes on, and its final state is written by settle.
func (r *Runner) setStatus(ctx context.Context, job *rdsbackup.Job, status rdsbackup.JobStatus, progress int) {
	job.Status, job.Progress = status, progress
	r.mu.Lock()
	r.init()
	r.states[job.ID] = status
	r.mu.Unlock()
	if err := r.Catalog.UpdateJob(ctx, job); err != nil {
		r.Logger.Error("update job", "job", job.ID, "status", status, "err", err)
		if r.Metrics != nil {
			r.Metrics.CatalogWriteFailed(false)
		}
	}
}

// trackProgress saves the job's progress as data flows: the uncompressed
// bytes read against the engine's estimate, held below 99 until the end.
func (r *Runner) trackProgress(ctx context.Context, job *rdsbackup.Job, sw *setWriter, estimate int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				p := 1
				if estimate > 0 {
					p = int(sw.raw.Load() * 100 / estimate)
				}
				p = min(max(p, 1), 98)
				if p != job.Progress {
					r.setStatus(ctx, job, rdsbackup.JobUploading, p)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// Recover settles the jobs a previous process left unfinished (it was
// killed mid-backup): their partial objects are removed and they are
// recorded Failed — unless the set had in fact been recorded, in which case
// the job takes the set's state. Call it at start, before StartBackup. A
// final state the catalog does not take is retried in the background.
//
// With a Node, only this node's jobs (its previous process's) and those
// whose lease has ended are settled, the latter as NodeLost; a job another
// node holds is left alone. Sweep does the same while the service runs.
func (r *Runner) Recover(ctx context.Context) error {
	_, err := r.Sweep(ctx)
	return err
}

// Sweep settles the unfinished jobs no node holds any more (see Recover)
// and returns how many it settled. Jobs this runner is running or still
// recording are skipped. Every node runs it periodically, so that a dead
// node's jobs are settled within about a lease time.
func (r *Runner) Sweep(ctx context.Context) (int, error) {
	jobs, err := r.Catalog.FindJobs(ctx, rdsbackup.JobFilter{Statuses: []rdsbackup.JobStatus{
		rdsbackup.JobNoStart, rdsbackup.JobPreparing, rdsbackup.JobWaiting, rdsbackup.JobUploading, rdsbackup.JobChecking}})
	if err != nil {
		return 0, fmt.Errorf("find unfinished jobs: %w", err)
	}
	settled := 0
	for _, job := range jobs {
		if r.local(job.ID) {
			continue
		}
		lost := false
		if r.Node != "" {
			now := r.Now()
			if job.Node != r.Node && job.Node != "" && job.LeaseUntil.After(now) {
				continue // another node holds it
			}
			// Of several nodes sweeping at once, one claims the job.
			if err := r.Catalog.ClaimJob(ctx, job.ID, r.Node, now, now.Add(r.lease())); rdsbackup.ErrorCode(err) == rdsbackup.ECONFLICT {
				continue
			} else if err != nil {
				return settled, fmt.Errorf("claim job %d: %w", job.ID, err)
			}
			lost = job.Node != r.Node && job.Node != ""
			job.Node = r.Node
		}
		if err := r.settleInterrupted(ctx, job, lost); err != nil {
			return settled, err
		}
		settled++
	}
	return settled, nil
}

// local reports whether the job is this runner's: running, or ended and
// still being recorded.
func (r *Runner) local(id int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, running := r.cancels[id]
	_, unsettled := r.unsettled[id]
	return running || unsettled
}

// settleInterrupted records an interrupted job's final state: the state of
// its set when the set was recorded, else Failed. For a job of a lost
// node, the Failed set is recorded before the objects go: should that node
// still be alive and record its Success set first, the job takes it and
// its objects stay; otherwise that node's late Success is refused (the id
// is taken) and it removes what it wrote.
func (r *Runner) settleInterrupted(ctx context.Context, job *rdsbackup.Job, lost bool) error {
	set, err := r.Catalog.FindBackupSet(ctx, job.ID)
	if err == nil {
		r.adoptSet(ctx, job, set)
		return nil
	} else if rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		return err
	}
	inst, err := r.Catalog.FindInstance(ctx, job.InstanceID)
	if err != nil {
		// The instance left the configuration; record against what the job knows.
		inst = &rdsbackup.Instance{ID: job.InstanceID}
	}
	opts := Options{Method: job.Method, Strategy: job.Strategy, Databases: job.Databases, Mode: job.Mode,
		Initiator: rdsbackup.InitiatorUser, StoreStatus: rdsbackup.StoreEnabled}
	if job.Mode == rdsbackup.BackupAutomated {
		opts.Initiator, opts.StoreStatus = rdsbackup.InitiatorSystem, rdsbackup.StoreDisabled
	}
	if !lost {
		r.Logger.Warn("backup interrupted by a restart; recording it failed", "job", job.ID, "instance", job.InstanceID)
		r.removeInterrupted(ctx, inst.ID, job.ID)
		failed := r.failure(inst, job, opts, job.CreatedAt, errors.New("interrupted: the service stopped during the backup"))
		r.recoverFinal(ctx, job, failed)
		return nil
	}
	r.Logger.Warn("the node running a backup stopped renewing its lease; recording it failed", "job", job.ID, "instance", job.InstanceID)
	failed := r.failure(inst, job, opts, job.CreatedAt, errors.New(NodeLost))
	if err := r.Catalog.CreateBackupSet(ctx, failed); err != nil {
		if set, ferr := r.Catalog.FindBackupSet(ctx, job.ID); ferr == nil {
			r.adoptSet(ctx, job, set)
			return nil
		}
		// The catalog does not take it now: the objects go first, as for
		// any failed job, and the write is retried.
		r.removeInterrupted(ctx, inst.ID, job.ID)
		r.recoverFinal(ctx, job, failed)
		return nil
	}
	r.removeInterrupted(ctx, inst.ID, job.ID)
	r.recoverFinal(ctx, job, nil)
	return nil
}

// adoptSet gives an interrupted job the state of the set it recorded.
func (r *Runner) adoptSet(ctx context.Context, job *rdsbackup.Job, set *rdsbackup.BackupSet) {
	if set.Status == rdsbackup.BackupSuccess {
		job.BackupSetID, job.Status, job.Progress = set.ID, rdsbackup.JobFinished, 100
	} else {
		job.BackupSetID, job.Error, job.Status = set.ID, set.FailureReason, rdsbackup.JobFailed
	}
	r.recoverFinal(ctx, job, nil)
}

// removeInterrupted removes what an interrupted job stored: its objects,
// and the incomplete uploads its writers left.
func (r *Runner) removeInterrupted(ctx context.Context, instanceID string, id int64) {
	r.removeObjectsOfFailed(ctx, instanceID, id)
	if r.AbortUploads == nil {
		return
	}
	if n, err := r.AbortUploads(ctx, setPrefix(instanceID, id)); err != nil {
		r.Logger.Error("abort the incomplete uploads of an interrupted backup", "job", id, "err", err)
	} else if n > 0 {
		r.Logger.Info("aborted the incomplete uploads of an interrupted backup", "job", id, "count", n)
	}
}

// recoverFinal writes a recovered job's final state. If the catalog does
// not take it, the service starts all the same (downloads and restores may
// be what is needed most when a disk is full) and the write is retried in
// the background like any job's final write.
func (r *Runner) recoverFinal(ctx context.Context, job *rdsbackup.Job, failed *rdsbackup.BackupSet) {
	err := r.writeFinal(ctx, job, &failed, false)
	if err == nil {
		return
	}
	r.Logger.Error("cannot record an interrupted job's final state; retrying in the background", "job", job.ID, "err", err)
	r.mu.Lock()
	r.init()
	r.unsettled[job.ID] = &Unsettled{Job: *job, Since: r.Now(), Attempts: 1, Err: err.Error()}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		select {
		case <-r.After(r.Retry.Delay(1)):
		case <-r.closing:
		}
		r.settle(context.WithoutCancel(ctx), job, failed)
	}()
}
