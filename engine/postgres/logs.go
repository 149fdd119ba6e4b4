package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// The engine's side of point-in-time recovery, on the ports of the root
// package: StreamWAL and RestoreToTime (to a data directory) do the work.
var (
	_ rdsbackup.LogStreamer         = (*Engine)(nil)
	_ rdsbackup.PointInTimeRestorer = (*Engine)(nil)
)

// CheckLogSource reports whether the server can stream its WAL: an
// EINVALID error naming wal_level, max_wal_senders, max_replication_slots,
// the REPLICATION attribute or the pg_hba.conf replication entry when it
// cannot.
func (e *Engine) CheckLogSource(ctx context.Context, inst *rdsbackup.Instance) error {
	err := e.CheckLogBackup(ctx, inst)
	var le *LogBackupUnavailableError
	if errors.As(err, &le) {
		return rdsbackup.Errorf(rdsbackup.EINVALID, "Log backup cannot be enabled on %s: %s.", rdsbackup.QuoteValue(inst.ID), le.Error())
	}
	return err
}

// StreamLogs runs StreamWAL once (see there), with the spool, slot and
// resume point of spec, handing complete segments and history files to
// sink.CompleteLog, the segment being written to sink.PartialLog, and lost
// WAL to sink.Gap.
func (e *Engine) StreamLogs(ctx context.Context, inst *rdsbackup.Instance, spec rdsbackup.StreamSpec, sink rdsbackup.LogSink) error {
	o := WALStreamOptions{
		SpoolDir:        spec.SpoolDir,
		Slot:            spec.Slot,
		Synchronous:     e.WALSynchronous,
		PartialInterval: e.WALPartialInterval,
		OnFile:          func(ctx context.Context, f WALFile) error { return sink.CompleteLog(ctx, spooledLog(f)) },
		OnPartial:       func(ctx context.Context, f WALFile) error { return sink.PartialLog(ctx, spooledLog(f)) },
		Now:             e.now,
	}
	var resume *rdsbackup.LogFile
	if spec.Resume != nil && spec.Resume.Kind == rdsbackup.LogKindLog {
		resume = spec.Resume
		o.Resume, o.ResumeTime = resume.Name, resume.EndTime
	}
	o.OnGap = func(ctx context.Context, g WALGap) error {
		gap := rdsbackup.LogGap{InstanceID: inst.ID, Reason: g.Reason, DetectedAt: e.now()}
		if resume != nil && resume.Name == g.After {
			gap.AfterSeq, gap.From = resume.Seq, resume.EndTime
		}
		return sink.Gap(ctx, gap)
	}
	return e.StreamWAL(ctx, inst, o)
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// spooledLog is the port's view of a WAL file. Times are cut to the second,
// as LogFile's are: a file whose EndTime is after a whole second T then
// holds a commit at or after T+1s, which is what restore plans rely on.
func spooledLog(f WALFile) rdsbackup.SpooledLog {
	s := rdsbackup.SpooledLog{
		Path:      f.Path,
		Name:      f.Name,
		Kind:      rdsbackup.LogKindLog,
		Seq:       f.Seq,
		BeginTime: f.BeginTime.UTC().Truncate(time.Second),
		EndTime:   f.EndTime.UTC().Truncate(time.Second),
		RawSize:   f.Size,
		HostID:    f.HostID,
	}
	if f.History {
		s.Kind = rdsbackup.LogKindHistory
		return s
	}
	s.Start = rdsbackup.LogPosition{File: f.Name, LSN: f.StartLSN.String(), Timeline: int(f.Timeline)}
	s.End = rdsbackup.LogPosition{File: f.Name, Offset: int64(f.EndLSN - f.StartLSN), LSN: f.EndLSN.String(), Timeline: int(f.Timeline)}
	return s
}

// DropLogSource drops the replication slot of spec (the instance's), so
// the server stops keeping WAL for rdsbackup. Stop the stream first.
func (e *Engine) DropLogSource(ctx context.Context, inst *rdsbackup.Instance, spec rdsbackup.StreamSpec) error {
	return e.DropSlot(ctx, inst, spec.Slot, 30*time.Second)
}

// RestoreToTime restores a physical set rolled forward to req.Time: into
// req.DataDir (which must be empty; the recovered cluster is left there,
// stopped), or into the server of req.Target: there the set is recovered
// in a temporary server under req.WorkDir, and each database chosen is
// copied (pg_dump | pg_restore, owned by the target's user) under its new
// name, after checking that no name exists on the target. Without
// Databases every database of the recovered instance is copied under its
// own name — the postgres database too, so a target that has one (every
// PostgreSQL server has) needs Databases naming what to copy and how.
//
// Time is in whole seconds; every transaction committed before Time+1s is
// restored.
func (e *Engine) RestoreToTime(ctx context.Context, req rdsbackup.PointInTimeRequest, progress func(percent int)) error {
	if progress == nil {
		progress = func(int) {}
	}
	if req.Set == nil || req.OpenPart == nil || req.OpenLog == nil {
		return errors.New("a PostgreSQL restore to a time needs a set, OpenPart and OpenLog")
	}
	var part *rdsbackup.Artifact
	for i, a := range req.Set.Artifacts {
		if a.Kind == rdsbackup.PartPhysical {
			part = &req.Set.Artifacts[i]
		}
	}
	if req.Set.Method != rdsbackup.MethodPhysical || part == nil {
		return rdsbackup.Errorf(rdsbackup.EUnsupportedMethod,
			"Backup set %d is a logical backup: a PostgreSQL instance can be restored to a time only from a physical backup (BackupMethod Physical in its backup policy).", req.Set.ID)
	}
	if req.Target == nil && req.DataDir == "" {
		return errors.New("a restore to a time needs a target instance or a data directory")
	}
	if req.Target == nil && len(req.Databases) > 0 {
		return rdsbackup.Errorf(rdsbackup.EInvalidCombination, "A restore into a data directory restores the whole instance: databases cannot be chosen.")
	}

	// Into an instance: check the names before anything is written.
	var copies map[string]string
	var targetDBs []string
	if req.Target != nil {
		if req.WorkDir == "" {
			return errors.New("a restore to a time into an instance needs a WorkDir")
		}
		var err error
		if targetDBs, err = e.Databases(ctx, req.Target); err != nil {
			return err
		}
		if len(req.Databases) > 0 {
			copies = req.Databases
			if err := checkNewNames(copies, targetDBs); err != nil {
				return err
			}
		}
	}

	o := PITROptions{BaseConsistentTime: req.Set.EndTime, Progress: func(done, total int) { progress(5 + 60*done/total) }}
	if !req.Time.IsZero() {
		o.Target = req.Time.UTC().Truncate(time.Second).Add(time.Second - time.Microsecond)
	}
	byName := map[string]*rdsbackup.LogFile{}
	for _, l := range req.Logs {
		f := WALFile{Name: l.Name, History: l.Kind == rdsbackup.LogKindHistory, BeginTime: l.BeginTime, EndTime: l.EndTime, Partial: l.Status == rdsbackup.LogUploading}
		o.Files = append(o.Files, f)
		byName[l.Name] = l
		if !f.History {
			// The plan holds every file up to the first one ending after
			// Time: the WAL reaches the end of Time's second.
			if u := l.EndTime.UTC().Truncate(time.Second).Add(time.Second - time.Microsecond); u.After(o.Until) {
				o.Until = u
			}
		}
	}
	// History files first, as the plan lists them; segments in order.
	sort.SliceStable(o.Files, func(i, j int) bool { return o.Files[i].History && !o.Files[j].History })
	o.Open = func(ctx context.Context, f WALFile) (io.ReadCloser, error) { return req.OpenLog(ctx, byName[f.Name]) }

	dataDir := req.DataDir
	if req.Target != nil {
		var cleanup func()
		var err error
		if dataDir, cleanup, err = e.scratchDataDir(req.WorkDir); err != nil {
			return err
		}
		defer cleanup()
	}
	base, err := req.OpenPart(ctx, *part)
	if err != nil {
		return fmt.Errorf("open the base backup: %w", err)
	}
	defer base.Close()
	progress(5)
	r, err := e.RecoverToTime(ctx, base, dataDir, o)
	if err != nil {
		return err
	}
	defer r.Stop()
	progress(80)
	if req.Target == nil {
		r.Stop()
		progress(100)
		return nil
	}

	src, err := parseDSN(req.Source.DSN)
	if err != nil {
		return err
	}
	srcUser := src.user
	if srcUser == "" {
		srcUser = "postgres"
	}
	recovered := &rdsbackup.Instance{ID: req.Source.ID + " (recovered)", Engine: rdsbackup.EnginePostgreSQL, DSN: r.URL(srcUser, "postgres")}
	have, err := e.Databases(ctx, recovered)
	if err != nil {
		return err
	}
	if copies == nil {
		copies = map[string]string{}
		for _, d := range have {
			copies[d] = d
		}
		if err := checkNewNames(copies, targetDBs); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(copies))
	for d := range copies {
		if !contains(have, d) {
			return rdsbackup.Errorf(rdsbackup.EDBNameNotFound, "The database %s is not in the instance at the restore time.", rdsbackup.QuoteValue(d))
		}
		names = append(names, d)
	}
	sort.Strings(names)
	for i, d := range names {
		if err := e.copyDatabase(ctx, recovered, d, req.Target.DSN, copies[d]); err != nil {
			return err
		}
		progress(80 + 20*(i+1)/len(names))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkNewNames refuses new names that exist on the target.
func checkNewNames(copies map[string]string, target []string) error {
	for _, to := range copies {
		if contains(target, to) {
			return rdsbackup.Errorf(rdsbackup.ECONFLICT, "The database %s exists on the target instance: restore it under a new name.", rdsbackup.QuoteValue(to))
		}
	}
	return nil
}

// scratchDataDir makes the data directory of the temporary server under
// workDir, and returns a function removing what was made outside it. When
// running as root, the server runs as the postgres account, which cannot
// reach a directory under rdsbackup's private dataDir: the data directory
// (owned by postgres, mode 0700) is then made in a directory of its own in
// the system's temporary directory (mode 0711: reachable, not listable).
func (e *Engine) scratchDataDir(workDir string) (string, func(), error) {
	if os.Geteuid() != 0 {
		dir := filepath.Join(workDir, "pitr-data")
		if err := os.Mkdir(dir, 0o700); err != nil {
			return "", nil, fmt.Errorf("create the recovery's data directory: %w", err)
		}
		return dir, func() {}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no postgres account to run the recovery as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	parent, err := os.MkdirTemp("", "rdsbackup-pitr-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(parent) }
	dir := filepath.Join(parent, "data")
	err = os.Chmod(parent, 0o711)
	if err == nil {
		err = os.Mkdir(dir, 0o700)
	}
	if err == nil {
		err = os.Chown(dir, uid, gid)
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("create the recovery's data directory: %w", err)
	}
	return dir, cleanup, nil
}

// copyDatabase copies database db of the server of from into a new
// database to on the server of toURL: pg_dump -Fc piped into pg_restore,
// the restoring user owning everything (the roles of the source need not
// exist on the target).
func (e *Engine) copyDatabase(ctx context.Context, from *rdsbackup.Instance, db, toURL, to string) error {
	c, err := connect(ctx, from.DSN, "")
	if err != nil {
		return err
	}
	c.close()
	dump, err := e.findTool(ctx, "pg_dump", c.version, false)
	if err != nil {
		return err
	}
	s, err := e.newSession(c.params)
	if err != nil {
		return err
	}
	defer s.close()
	child, err := e.start(ctx, s, dump, fmt.Sprintf("of database %q", db),
		[]string{"--format=custom", "--compress=0", "--no-sync", "--no-password", "--dbname=" + conninfoDB(db)}, startOptions{stdout: true})
	if err != nil {
		return err
	}
	rerr := e.RestoreLogicalWith(ctx, toURL, to, child.stdout, LogicalRestoreOptions{NoOwner: true})
	if rerr != nil {
		child.kill()
	}
	werr := child.wait()
	if rerr != nil {
		return fmt.Errorf("copy database %q of the recovered instance into %q: %w", db, to, rerr)
	}
	return werr
}
