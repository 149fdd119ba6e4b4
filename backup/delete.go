package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// DeleteCatalog is what deleting sets needs of the catalog.
type DeleteCatalog interface {
	MarkBackupSetsDeleting(ctx context.Context, ids []int64) error
	FindDeletingBackupSets(ctx context.Context) ([]*rdsbackup.BackupSet, error)
	FindExpiredBackupSets(ctx context.Context, now time.Time, limit int) ([]*rdsbackup.BackupSet, error)
	DeleteBackupSet(ctx context.Context, id int64) error
}

// Deleter removes backup sets: first it marks them deleting (hidden from
// every reader, in one transaction), then it removes their objects (data,
// then manifest), then their rows. A crash at any point leaves either a
// hidden row whose deletion Resume finishes, never a visible row without
// data, nor data that no row or manifest describes.
type Deleter struct {
	Catalog DeleteCatalog
	Store   rdsbackup.ObjectStore
	Logger  *slog.Logger
	Now     func() time.Time
	// Metrics, when set, is told the result of every Sweep.
	Metrics SweepMetrics
}

// SweepMetrics is what the expiry sweep reports to a metrics system.
type SweepMetrics interface {
	SweepDone(deleted int, err error)
}

// Delete deletes sets whose ids were validated by the caller. Once they are
// marked deleting they are gone for every reader, so a failure to remove
// their data is not the caller's: it is logged and Resume (run on every
// scheduler tick and at start) finishes the job.
func (d *Deleter) Delete(ctx context.Context, sets []*rdsbackup.BackupSet) error {
	ids := make([]int64, len(sets))
	for i, s := range sets {
		ids[i] = s.ID
	}
	if err := d.Catalog.MarkBackupSetsDeleting(ctx, ids); err != nil {
		return err
	}
	// Finishing must not depend on the caller's request staying open.
	if err := d.finish(context.WithoutCancel(ctx), sets); err != nil {
		d.Logger.Error("backup sets deleted but their data not yet removed; retrying later", "err", err)
	}
	return nil
}

func (d *Deleter) finish(ctx context.Context, sets []*rdsbackup.BackupSet) error {
	var errs []error
	for _, s := range sets {
		if err := removeSetObjects(ctx, d.Store, s.InstanceID, s.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove objects of set %d: %w", s.ID, err))
			continue // keep the row: Resume retries
		}
		if err := d.Catalog.DeleteBackupSet(ctx, s.ID); err != nil && rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
			errs = append(errs, fmt.Errorf("delete set %d: %w", s.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Resume finishes deletions a previous process started.
func (d *Deleter) Resume(ctx context.Context) error {
	sets, err := d.Catalog.FindDeletingBackupSets(ctx)
	if err != nil {
		return err
	}
	if len(sets) > 0 {
		d.Logger.Info("finishing interrupted deletions", "sets", len(sets))
	}
	return d.finish(ctx, sets)
}

// sweepBatch bounds one sweep's work.
const sweepBatch = 500

// Sweep deletes the sets whose ExpectExpireTime has passed, except each
// instance's newest successful set, and returns how many it deleted.
func (d *Deleter) Sweep(ctx context.Context) (int, error) {
	n, err := d.sweep(ctx)
	if d.Metrics != nil && ctx.Err() == nil {
		d.Metrics.SweepDone(n, err)
	}
	return n, err
}

func (d *Deleter) sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		sets, err := d.Catalog.FindExpiredBackupSets(ctx, d.Now(), sweepBatch)
		if err != nil || len(sets) == 0 {
			return total, err
		}
		if err := d.Delete(ctx, sets); err != nil {
			return total, err
		}
		total += len(sets)
		for _, s := range sets {
			d.Logger.Info("expired backup set deleted", "backupId", s.ID, "instance", s.InstanceID, "expired", s.ExpectExpireTime)
		}
		if len(sets) < sweepBatch {
			return total, nil
		}
	}
}
