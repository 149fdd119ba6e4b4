package backup

import (
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup"
)

// RecoveryCatalog is what the Recoverer needs of the catalog.
type RecoveryCatalog interface {
	FindInstance(ctx context.Context, id string) (*rdsbackup.Instance, error)
	FindBackupSet(ctx context.Context, id int64) (*rdsbackup.BackupSet, error)
	FindBackupSets(ctx context.Context, filter rdsbackup.BackupFilter) ([]*rdsbackup.BackupSet, int, error)
	FindLogFiles(ctx context.Context, filter rdsbackup.LogFileFilter) ([]*rdsbackup.LogFile, int, error)
	FindLogGaps(ctx context.Context, instanceID string) ([]*rdsbackup.LogGap, error)
	FindSetLogPositions(ctx context.Context, instanceID string) (map[int64]map[string]rdsbackup.LogPosition, error)
	rdsbackup.RecoveryService
}

// Recoverer runs RecoveryDBInstance jobs in the background: a backup set,
// or a set rolled forward to a time, restored into a target instance.
type Recoverer struct {
	Catalog RecoveryCatalog
	Store   rdsbackup.ObjectStore
	Engines map[rdsbackup.Engine]rdsbackup.PointInTimeRestorer
	// Logical restores logical sets part by part (RestoreClone), by engine.
	Logical map[rdsbackup.Engine]LogicalRestorer
	// WorkDir holds each job's private scratch directory.
	WorkDir string
	Logger  *slog.Logger
	// Leases, when set, makes each running restore held by Node under the
	// lease "recovery/<id>" (of Lease, renewed every third of it), so that
	// Recover and Sweep on any node fail only the restores no live node
	// runs (docs/nodes.md). Now is their clock (default time.Now).
	Leases rdsbackup.LeaseService
	Node   string
	Lease  time.Duration
	Now    func() time.Time

	wg      sync.WaitGroup
	mu      sync.Mutex
	running map[int64]bool
}

// recoveryLease names the lease of a running restore.
func recoveryLease(id int64) string { return "recovery/" + strconv.FormatInt(id, 10) }

// freshRecovery is how long a new restore is left alone by sweeps: the
// moment between its row and its lease.
const freshRecovery = 5 * time.Second

func (r *Recoverer) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

func (r *Recoverer) lease() time.Duration {
	if r.Lease > 0 {
		return r.Lease
	}
	return DefaultLease
}

// hold keeps the restore's lease until the returned stop is called, which
// frees it.
func (r *Recoverer) hold(id int64) (stop func()) {
	if r.Leases == nil {
		return func() {}
	}
	name := recoveryLease(id)
	acquire := func() {
		now := r.now()
		if held, err := r.Leases.AcquireLease(context.Background(), name, r.Node, now, now.Add(r.lease())); err != nil {
			r.logger().Warn("cannot renew a restore's lease", "recovery", id, "err", err)
		} else if !held {
			r.logger().Error("another node holds this node's restore's lease", "recovery", id)
		}
	}
	acquire()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.lease() / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				acquire()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		if err := r.Leases.ReleaseLease(context.Background(), name, r.Node); err != nil {
			r.logger().Warn("cannot release a restore's lease", "recovery", id, "err", err)
		}
	}
}

func (r *Recoverer) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// history reads what a plan or a window needs of an instance.
func (r *Recoverer) history(ctx context.Context, instanceID string) ([]*rdsbackup.BackupSet, map[int64]map[string]rdsbackup.LogPosition, []*rdsbackup.LogFile, []*rdsbackup.LogGap, error) {
	success := rdsbackup.BackupSuccess
	sets, _, err := r.Catalog.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: instanceID, Status: &success})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	pos, err := r.Catalog.FindSetLogPositions(ctx, instanceID)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	files, _, err := r.Catalog.FindLogFiles(ctx, rdsbackup.LogFileFilter{InstanceID: instanceID})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	gaps, err := r.Catalog.FindLogGaps(ctx, instanceID)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return sets, pos, files, gaps, nil
}

// Windows returns the instance's recovery windows, oldest first.
func (r *Recoverer) Windows(ctx context.Context, instanceID string) ([]rdsbackup.RecoveryWindow, error) {
	sets, pos, files, gaps, err := r.history(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	return rdsbackup.RecoveryWindows(sets, pos, files, gaps), nil
}

// Plan chooses the set and logs of a restore of instanceID to t
// (rdsbackup.PlanPointInTime).
func (r *Recoverer) Plan(ctx context.Context, instanceID string, t time.Time) (*rdsbackup.PointInTimePlan, error) {
	sets, pos, files, gaps, err := r.history(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	return rdsbackup.PlanPointInTime(t, sets, pos, files, gaps)
}

// Start records job and runs it in the background. A target already being
// restored is refused (ECONFLICT).
func (r *Recoverer) Start(ctx context.Context, job *rdsbackup.RecoveryJob) error {
	if r.Engines[r.engineOf(ctx, job.SourceID)] == nil {
		return rdsbackup.Errorf(rdsbackup.EUnsupportedEngine, "Restores into another instance are not supported for the engine of %s.", job.SourceID)
	}
	job.Status = rdsbackup.JobPreparing
	if err := r.Catalog.CreateRecovery(ctx, job); err != nil {
		return err
	}
	r.mu.Lock()
	if r.running == nil {
		r.running = map[int64]bool{}
	}
	r.running[job.ID] = true
	r.mu.Unlock()
	stop := r.hold(job.ID)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.running, job.ID)
			r.mu.Unlock()
		}()
		defer stop()
		r.run(context.WithoutCancel(ctx), job)
	}()
	return nil
}

func (r *Recoverer) engineOf(ctx context.Context, id string) rdsbackup.Engine {
	inst, err := r.Catalog.FindInstance(ctx, id)
	if err != nil {
		return ""
	}
	return inst.Engine
}

// Wait waits for the running jobs (tests, shutdown).
func (r *Recoverer) Wait() { r.wg.Wait() }

// Recover fails the jobs a killed process left unfinished: their target
// may hold part of the restore. With Leases, a restore another live node
// runs is left alone (see Sweep).
func (r *Recoverer) Recover(ctx context.Context) error {
	_, err := r.Sweep(ctx)
	return err
}

// Sweep fails the unfinished restores no process runs any more and
// returns how many: all but this one's without Leases; with them, those
// whose lease this node can take (its holder stopped renewing, or it is
// this node's previous process's). Every node runs it periodically.
func (r *Recoverer) Sweep(ctx context.Context) (int, error) {
	jobs, err := r.Catalog.FindRecoveries(ctx, rdsbackup.RecoveryFilter{Statuses: []rdsbackup.JobStatus{rdsbackup.JobPreparing}})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, j := range jobs {
		r.mu.Lock()
		mine := r.running[j.ID]
		r.mu.Unlock()
		if mine {
			continue
		}
		if r.Leases != nil {
			now := r.now()
			if j.CreatedAt.After(now.Add(-freshRecovery)) {
				continue // its node is taking its lease
			}
			held, err := r.Leases.AcquireLease(ctx, recoveryLease(j.ID), r.Node, now, now.Add(r.lease()))
			if err != nil {
				return n, err
			}
			if !held {
				continue // another node runs it
			}
		}
		j.Status = rdsbackup.JobFailed
		j.Error = "rdsbackup stopped while the restore ran; the target may hold part of the restored databases: drop them and start again"
		if err := r.Catalog.UpdateRecovery(ctx, j); err != nil {
			return n, err
		}
		if r.Leases != nil {
			if err := r.Leases.ReleaseLease(ctx, recoveryLease(j.ID), r.Node); err != nil {
				r.logger().Warn("cannot release a settled restore's lease", "recovery", j.ID, "err", err)
			}
		}
		n++
	}
	return n, nil
}

func (r *Recoverer) run(ctx context.Context, job *rdsbackup.RecoveryJob) {
	log := r.logger().With("recovery", job.ID, "source", job.SourceID, "target", job.TargetID)
	log.Info("restore into another instance started", "backupId", job.BackupID, "restoreTime", job.RestoreTime)
	err := r.restore(ctx, job, log)
	job.Progress = 100
	job.Status = rdsbackup.JobFinished
	if err != nil {
		job.Status, job.Progress = rdsbackup.JobFailed, 0
		job.Error = rdsbackup.ErrorMessage(err)
		if rdsbackup.ErrorCode(err) == rdsbackup.EINTERNAL {
			job.Error = err.Error()
		}
		if len(job.Error) > 2000 {
			job.Error = job.Error[:2000]
		}
		log.Warn("restore into another instance failed", "err", err)
	} else {
		log.Info("restore into another instance finished")
	}
	// The final state must land: retried for a while.
	for try := 0; try < 30; try++ {
		if err := r.Catalog.UpdateRecovery(ctx, job); err == nil {
			return
		} else {
			log.Warn("record the restore's final state", "err", err)
		}
		time.Sleep(time.Second)
	}
}

func (r *Recoverer) restore(ctx context.Context, job *rdsbackup.RecoveryJob, log *slog.Logger) error {
	src, err := r.Catalog.FindInstance(ctx, job.SourceID)
	if err != nil {
		return err
	}
	dst, err := r.Catalog.FindInstance(ctx, job.TargetID)
	if err != nil {
		return err
	}
	last := time.Now()
	progress := func(p int) {
		if time.Since(last) < time.Second && p < 100 {
			return
		}
		last = time.Now()
		job.Progress = min(p, 99)
		if err := r.Catalog.UpdateRecovery(ctx, job); err != nil {
			log.Warn("record the restore's progress", "err", err)
		}
	}
	progress(1)
	id, err := r.RestoreInto(ctx, Restore{Source: src, Target: dst, Time: job.RestoreTime, BackupID: job.BackupID, Databases: job.Databases}, progress)
	job.BackupID = id
	return err
}

// Restore says what RestoreInto restores, and where.
type Restore struct {
	Source *rdsbackup.Instance
	// Target is the server to restore into; DataDir an empty directory
	// instead (engines that restore physical sets there).
	Target  *rdsbackup.Instance
	DataDir string
	// Time is the target time; zero restores the set BackupID as it is.
	Time      time.Time
	BackupID  int64
	Databases map[string]string
}

// RestoreInto restores a set, or the set and logs a restore to a time
// needs, with the source engine's PointInTimeRestorer, and returns the id
// of the set restored. `rdsbackup restore --time` calls it directly.
func (r *Recoverer) RestoreInto(ctx context.Context, rs Restore, progress func(int)) (int64, error) {
	engine := r.Engines[rs.Source.Engine]
	if engine == nil {
		return 0, rdsbackup.Errorf(rdsbackup.EUnsupportedEngine, "Restores to a time are not supported for %s.", rs.Source.Engine)
	}
	req := rdsbackup.PointInTimeRequest{Source: rs.Source, Target: rs.Target, DataDir: rs.DataDir, Time: rs.Time, Databases: rs.Databases}
	var err error
	if rs.Time.IsZero() {
		if req.Set, err = r.Catalog.FindBackupSet(ctx, rs.BackupID); err != nil {
			return 0, err
		}
	} else {
		plan, err := r.Plan(ctx, rs.Source.ID, rs.Time)
		if err != nil {
			return 0, err
		}
		req.Set, req.Positions, req.Logs = plan.Set, plan.Positions, plan.Logs
	}
	if err := os.MkdirAll(r.WorkDir, 0o700); err != nil {
		return req.Set.ID, err
	}
	work, err := os.MkdirTemp(r.WorkDir, "recovery-")
	if err != nil {
		return req.Set.ID, err
	}
	defer os.RemoveAll(work)
	req.WorkDir = work
	req.OpenPart = func(ctx context.Context, a rdsbackup.Artifact) (io.ReadCloser, error) {
		return OpenChecked(ctx, r.Store, req.Set.ObjectKey, a.Offset, a.Length, a.Checksum)
	}
	req.OpenLog = func(ctx context.Context, f *rdsbackup.LogFile) (io.ReadCloser, error) {
		return OpenChecked(ctx, r.Store, f.ObjectKey, 0, -1, f.Checksum)
	}
	if progress == nil {
		progress = func(int) {}
	}
	return req.Set.ID, engine.RestoreToTime(ctx, req, progress)
}

// OpenChecked returns the decompressed bytes of a zstd range of an object,
// failing at the end when the compressed bytes' CRC64 is not checksum
// (when checksum is set).
func OpenChecked(ctx context.Context, store rdsbackup.ObjectStore, key string, offset, length int64, checksum string) (io.ReadCloser, error) {
	rc, err := store.Open(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	cr := &crcReader{r: rc, want: checksum}
	dec, err := zstd.NewReader(cr, zstd.WithDecoderConcurrency(1))
	if err != nil {
		rc.Close()
		return nil, err
	}
	return &decoded{dec: dec, raw: rc, cr: cr}, nil
}

type crcReader struct {
	r    io.Reader
	sum  uint64
	want string
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.sum = crc64.Update(c.sum, crcTable, p[:n])
	if errors.Is(err, io.EOF) && c.want != "" && strconv.FormatUint(c.sum, 10) != c.want {
		return n, fmt.Errorf("the stored object's CRC64 is %d, the catalog says %s: it is damaged", c.sum, c.want)
	}
	return n, err
}

type decoded struct {
	dec *zstd.Decoder
	raw io.Closer
	cr  *crcReader
}

func (d *decoded) Read(p []byte) (int, error) {
	n, err := d.dec.Read(p)
	if errors.Is(err, io.EOF) {
		// The decoder may stop at the last frame before the source's
		// EOF, where the checksum is compared: read on to it.
		if _, cerr := io.Copy(io.Discard, d.cr); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

func (d *decoded) Close() error {
	d.dec.Close()
	return d.raw.Close()
}
