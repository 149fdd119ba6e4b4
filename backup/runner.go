// Package backup runs backup jobs: it drives an engine's dump tools, streams
// their output through zstd and CRC64 into one object per backup set, and
// records the outcome in the catalog only once the data is durably stored.
package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
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
	CreateJob(ctx context.Context, job *rdsbackup.Job) error
	UpdateJob(ctx context.Context, job *rdsbackup.Job) error
	FindJobs(ctx context.Context, filter rdsbackup.JobFilter) ([]*rdsbackup.Job, error)
	FindBackupSet(ctx context.Context, id int64) (*rdsbackup.BackupSet, error)
	CreateBackupSet(ctx context.Context, set *rdsbackup.BackupSet) error
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

	mu      sync.Mutex
	running map[string]int64 // instance id → job id
	cancels map[int64]context.CancelFunc
	wg      sync.WaitGroup
	closed  bool
}

// NewRunner returns a Runner with defaults.
func NewRunner(c Catalog, store rdsbackup.ObjectStore, engines map[rdsbackup.Engine]rdsbackup.BackupEngine) *Runner {
	return &Runner{Catalog: c, Store: store, Engines: engines, Logger: slog.New(slog.DiscardHandler),
		Now: time.Now, Level: zstd.SpeedFastest, ProgressInterval: time.Second}
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
	if r.running == nil {
		r.running, r.cancels = map[string]int64{}, map[int64]context.CancelFunc{}
	}
	if id, ok := r.running[instanceID]; ok {
		r.mu.Unlock()
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
		}
		for _, want := range opts.Databases {
			if err == nil && !contains(have, want) {
				release()
				return nil, rdsbackup.Errorf(rdsbackup.EDBNameNotFound, "The database %s does not exist on instance %s.", rdsbackup.QuoteValue(want), instanceID)
			}
		}
	}

	job := &rdsbackup.Job{InstanceID: instanceID, Status: rdsbackup.JobNoStart, Mode: opts.Mode, Method: opts.Method,
		Strategy: opts.Strategy, Databases: opts.Databases, Window: opts.Window}
	if err := r.Catalog.CreateJob(ctx, job); err != nil {
		release()
		return nil, err
	}
	jobCtx, cancel := context.WithCancel(context.Background())
	r.mu.Lock()
	r.running[instanceID] = job.ID
	r.cancels[job.ID] = cancel
	r.wg.Add(1)
	r.mu.Unlock()
	snapshot := *job
	go func() {
		defer r.wg.Done()
		defer cancel()
		r.run(jobCtx, inst, engine, job, opts)
		r.mu.Lock()
		delete(r.running, instanceID)
		delete(r.cancels, job.ID)
		r.mu.Unlock()
	}()
	return &snapshot, nil
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

// Close cancels running jobs and waits for them to record their failure.
func (r *Runner) Close() error {
	r.mu.Lock()
	r.closed = true
	for _, cancel := range r.cancels {
		cancel()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
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
	if err != nil {
		log.Warn("backup failed", "err", err)
		r.fail(bg, inst, job, opts, start, err)
		return
	}
	job.BackupSetID = set.ID
	r.setStatus(bg, job, rdsbackup.JobFinished, 100)
	log.Info("backup finished", "backupId", set.ID, "size", set.Size)
}

func (r *Runner) take(ctx context.Context, inst *rdsbackup.Instance, engine rdsbackup.BackupEngine, job *rdsbackup.Job,
	opts Options, start time.Time, log *slog.Logger) (*rdsbackup.BackupSet, error) {
	info, err := engine.Probe(ctx, inst)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	req := rdsbackup.BackupRequest{Method: opts.Method}
	if opts.Strategy == "db" {
		req.Databases = opts.Databases
	}
	estimate, err := engine.EstimateSize(ctx, inst, req)
	if err != nil {
		log.Warn("cannot estimate backup size; progress will be coarse", "err", err)
	}

	key := ObjectKey(inst.ID, job.ID)
	obj, err := r.Store.Create(ctx, key)
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
	}
	if res.Info.Version == "" {
		m.EngineVersion, m.HostInstanceID = info.Version, info.HostID
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
	if err := r.Catalog.CreateBackupSet(context.WithoutCancel(ctx), set); err != nil {
		r.removeSetObjects(context.WithoutCancel(ctx), inst.ID, job.ID)
		return nil, fmt.Errorf("record backup set: %w", err)
	}
	return set, nil
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
	objs, err := store.List(ctx, setPrefix(instanceID, id))
	if err != nil {
		return fmt.Errorf("list objects of set %d: %w", id, err)
	}
	// The manifest goes last, and only once the data is gone, so whatever
	// is left after a failure or crash is still described by it.
	for _, o := range objs {
		if path.Base(o.Key) != "manifest.json" {
			if err := store.Delete(ctx, o.Key); err != nil {
				return err
			}
		}
	}
	for _, o := range objs {
		if path.Base(o.Key) == "manifest.json" {
			if err := store.Delete(ctx, o.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxReason bounds the failure reason kept in the catalog.
const maxReason = 2000

// fail records a failed backup: no artifact is left, the set is Failed with
// IsAvail 0 and the reason, the job is Failed.
func (r *Runner) fail(ctx context.Context, inst *rdsbackup.Instance, job *rdsbackup.Job, opts Options, start time.Time, cause error) {
	reason := cause.Error()
	if errors.Is(cause, context.Canceled) {
		reason = "cancelled: the service stopped during the backup"
	}
	if len(reason) > maxReason {
		reason = "…" + reason[len(reason)-maxReason:]
	}
	if err := r.removeSetObjects(ctx, inst.ID, job.ID); err != nil {
		r.Logger.Error("remove objects of failed backup", "job", job.ID, "err", err)
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
	if err := r.Catalog.CreateBackupSet(ctx, set); err != nil {
		r.Logger.Error("record failed backup set", "job", job.ID, "err", err)
	}
	job.Error = reason
	job.BackupSetID = job.ID
	r.setStatus(ctx, job, rdsbackup.JobFailed, job.Progress)
}

func (r *Runner) setStatus(ctx context.Context, job *rdsbackup.Job, status rdsbackup.JobStatus, progress int) {
	job.Status, job.Progress = status, progress
	if err := r.Catalog.UpdateJob(ctx, job); err != nil {
		r.Logger.Error("update job", "job", job.ID, "status", status, "err", err)
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
// the job is marked Finished. Call it at start, before StartBackup.
func (r *Runner) Recover(ctx context.Context) error {
	jobs, err := r.Catalog.FindJobs(ctx, rdsbackup.JobFilter{Statuses: []rdsbackup.JobStatus{
		rdsbackup.JobNoStart, rdsbackup.JobPreparing, rdsbackup.JobWaiting, rdsbackup.JobUploading, rdsbackup.JobChecking}})
	if err != nil {
		return fmt.Errorf("find unfinished jobs: %w", err)
	}
	for _, job := range jobs {
		set, err := r.Catalog.FindBackupSet(ctx, job.ID)
		if err == nil && set.Status == rdsbackup.BackupSuccess {
			job.BackupSetID = set.ID
			r.setStatus(ctx, job, rdsbackup.JobFinished, 100)
			continue
		} else if err == nil {
			job.BackupSetID, job.Error = set.ID, set.FailureReason
			r.setStatus(ctx, job, rdsbackup.JobFailed, job.Progress)
			continue
		} else if rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
			return err
		}
		inst, err := r.Catalog.FindInstance(ctx, job.InstanceID)
		if err != nil {
			// The instance left the configuration; record against what the job knows.
			inst = &rdsbackup.Instance{ID: job.InstanceID}
		}
		r.Logger.Warn("backup interrupted by a restart; recording it failed", "job", job.ID, "instance", job.InstanceID)
		opts := Options{Method: job.Method, Strategy: job.Strategy, Databases: job.Databases, Mode: job.Mode,
			Initiator: rdsbackup.InitiatorUser, StoreStatus: rdsbackup.StoreEnabled}
		if job.Mode == rdsbackup.BackupAutomated {
			opts.Initiator, opts.StoreStatus = rdsbackup.InitiatorSystem, rdsbackup.StoreDisabled
		}
		r.fail(ctx, inst, job, opts, job.CreatedAt, errors.New("interrupted: the service stopped during the backup"))
	}
	return nil
}
