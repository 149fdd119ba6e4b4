package logs

import (
	"context"
	"fmt"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// expire deletes the log files older than each instance's
// LogBackupRetentionPeriod, except every file from the earliest position
// of each retained full set on: those roll a retained set forward. Rows
// are marked deleting first (hidden at once), objects deleted, rows last,
// so a crash leaves marked rows that finishDeletes completes.
func (s *Supervisor) expire(ctx context.Context) error {
	insts, _, err := s.Catalog.FindInstances(ctx, 0, 0)
	if err != nil {
		return err
	}
	pols, err := s.Catalog.FindBackupPolicies(ctx)
	if err != nil {
		return err
	}
	byID := map[string]*rdsbackup.BackupPolicy{}
	for _, p := range pols {
		byID[p.InstanceID] = p
	}
	now := s.Now()
	for _, inst := range insts {
		p := byID[inst.ID]
		if p == nil {
			p = rdsbackup.DefaultBackupPolicy(inst.ID)
		}
		cutoff := now.Add(-time.Duration(p.LogBackupRetentionPeriod) * 24 * time.Hour)
		if err := s.expireInstance(ctx, inst.ID, cutoff); err != nil {
			return fmt.Errorf("expire logs of %s: %w", inst.ID, err)
		}
	}
	return nil
}

// ExpireInstance applies retention to one instance's logs with cutoff as
// the oldest time kept (tests drive it with a controlled clock).
func (s *Supervisor) ExpireInstance(ctx context.Context, instanceID string, cutoff time.Time) error {
	return s.expireInstance(ctx, instanceID, cutoff)
}

func (s *Supervisor) expireInstance(ctx context.Context, instanceID string, cutoff time.Time) error {
	files, _, err := s.Catalog.FindLogFiles(ctx, rdsbackup.LogFileFilter{InstanceID: instanceID, Statuses: []rdsbackup.LogFileStatus{rdsbackup.LogCompleted}})
	if err != nil || len(files) == 0 {
		return err
	}
	seqOf := map[string]int64{}
	for _, f := range files {
		seqOf[f.Name] = f.Seq
	}
	success := rdsbackup.BackupSuccess
	sets, _, err := s.Catalog.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: instanceID, Status: &success})
	if err != nil {
		return err
	}
	positions, err := s.Catalog.FindSetLogPositions(ctx, instanceID)
	if err != nil {
		return err
	}
	needed := int64(-1) // the lowest seq a retained set starts from
	for _, set := range sets {
		for _, pos := range positions[set.ID] {
			if seq, ok := seqOf[pos.File]; ok && (needed < 0 || seq < needed) {
				needed = seq
			}
		}
	}
	upTo := int64(-1)
	for _, f := range files {
		if f.Kind != rdsbackup.LogKindLog {
			continue
		}
		if !f.EndTime.Before(cutoff) || (needed >= 0 && f.Seq >= needed) {
			break
		}
		upTo = f.Seq
	}
	if upTo < 0 {
		return nil
	}
	marked, err := s.Catalog.MarkLogFilesDeleting(ctx, instanceID, upTo)
	if err != nil {
		return err
	}
	s.logger().Info("log files expired", "instance", instanceID, "files", len(marked), "upToSeq", upTo)
	return s.deleteFiles(ctx, marked)
}

// finishDeletes completes deletions a crash interrupted.
func (s *Supervisor) finishDeletes(ctx context.Context) error {
	files, err := s.Catalog.FindDeletingLogFiles(ctx)
	if err != nil {
		return err
	}
	return s.deleteFiles(ctx, files)
}

func (s *Supervisor) deleteFiles(ctx context.Context, files []*rdsbackup.LogFile) error {
	for _, f := range files {
		if err := s.Store.Delete(ctx, f.ObjectKey); err != nil {
			return fmt.Errorf("delete %s: %w", f.ObjectKey, err)
		}
		if err := s.Catalog.DeleteLogFile(ctx, f.InstanceID, f.Name); err != nil && rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
			return err
		}
	}
	return nil
}
