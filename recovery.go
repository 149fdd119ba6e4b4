package rdsbackup

import (
	"context"
	"time"
)

// RecoveryJob is one RecoveryDBInstance run: a backup set, or a time,
// restored from the source instance into the target. While it is not done
// the target's DBInstanceStatus is "Restoring".
type RecoveryJob struct {
	ID       int64 // OrderId on the wire
	SourceID string
	TargetID string
	// BackupID is the set restored: the one given, or the base set chosen
	// for RestoreTime (0 until chosen).
	BackupID int64
	// RestoreTime is the target time; zero restores the set as it is.
	RestoreTime time.Time
	// Databases maps source databases to their names on the target; empty
	// means every database of the set under its own name.
	Databases map[string]string
	Status    JobStatus // Preparing, then Finished or Failed
	Progress  int       // percent
	Error     string    // why it failed, for the caller
	CreatedAt time.Time
	UpdatedAt time.Time
}

// RecoveryFilter selects recovery jobs; empty fields do not filter.
// InstanceID matches the source or the target.
type RecoveryFilter struct {
	ID         *int64
	InstanceID string
	TargetID   string
	Statuses   []JobStatus
	Limit      int
}

// RecoveryService stores recovery jobs.
type RecoveryService interface {
	// CreateRecovery stores job and assigns its id. A target has at most
	// one unfinished recovery: a second is ECONFLICT, whichever process
	// creates it.
	CreateRecovery(ctx context.Context, job *RecoveryJob) error
	// UpdateRecovery stores its status, progress, error and BackupID;
	// ENOTFOUND for an unknown id.
	UpdateRecovery(ctx context.Context, job *RecoveryJob) error
	// FindRecoveries returns matching jobs, newest first.
	FindRecoveries(ctx context.Context, filter RecoveryFilter) ([]*RecoveryJob, error)
}
