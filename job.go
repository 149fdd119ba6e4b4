package rdsbackup

import (
	"context"
	"time"
)

// JobStatus is a backup job's state, with DescribeBackupTasks' values.
type JobStatus string

const (
	JobNoStart   JobStatus = "NoStart"
	JobPreparing JobStatus = "Preparing"
	JobWaiting   JobStatus = "Waiting"
	JobUploading JobStatus = "Uploading"
	JobChecking  JobStatus = "Checking"
	JobFinished  JobStatus = "Finished"
	JobFailed    JobStatus = "Failed"
)

// Done reports whether the job has reached a final state.
func (s JobStatus) Done() bool { return s == JobFinished || s == JobFailed }

// Job is one backup run of one instance.
type Job struct {
	ID          int64
	InstanceID  string
	Status      JobStatus
	Mode        BackupMode
	Method      BackupMethod
	Strategy    string   // "instance" or "db"
	Databases   []string // for Strategy "db"
	Progress    int      // percent
	BackupSetID int64    // set once the job has written its set
	Error       string
	// Window is the start of the schedule window an automated job runs
	// for; zero for manual jobs. An instance has one job per window.
	Window    time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
	// Node is the node that holds the job (runs it, or settles it), and
	// LeaseUntil when its claim ends unless renewed (docs/nodes.md). A job
	// without a node (made before nodes existed) is free to settle.
	Node       string
	LeaseUntil time.Time
}

// JobFilter selects jobs; empty fields do not filter.
type JobFilter struct {
	InstanceID string
	ID         *int64
	Mode       *BackupMode
	Statuses   []JobStatus
	Limit      int
}

// JobService stores backup jobs.
type JobService interface {
	// CreateJob stores a new job and assigns its id, above every id a job
	// or a set has had. A second job for the same instance and Window is
	// refused with ECONFLICT, whichever process creates it. A job created
	// with a Node is refused with EBackupRunning while the instance has
	// another unfinished job held by a node, whichever node holds it.
	CreateJob(ctx context.Context, job *Job) error
	// UpdateJob stores a job's status, progress and outcome (not its node
	// or lease). With job.Node set it is a compare-and-set: ECONFLICT when
	// another node holds the job now (it settled the job as lost).
	UpdateJob(ctx context.Context, job *Job) error
	// RenewJobLease moves the lease of an unfinished job that node holds
	// to until: ECONFLICT when the job has ended or another node holds it,
	// ENOTFOUND when there is no such job.
	RenewJobLease(ctx context.Context, id int64, node string, until time.Time) error
	// ClaimJob gives an unfinished job to node until until, when its lease
	// ended at or before now or node holds it already: the one way a node
	// takes over another's job, so that two nodes never both settle it.
	// ECONFLICT when another node's lease still runs or the job has ended.
	ClaimJob(ctx context.Context, id int64, node string, now, until time.Time) error
	// FindJobs returns matching jobs newest first.
	FindJobs(ctx context.Context, filter JobFilter) ([]*Job, error)
	// FindLastWindows returns, per instance, the start of the latest
	// schedule window a job was created for.
	FindLastWindows(ctx context.Context) (map[string]time.Time, error)
}

// BackupOptions describe one backup to take.
type BackupOptions struct {
	Method      BackupMethod
	Strategy    string   // "instance" (default) or "db"
	Databases   []string // with Strategy "db"
	Mode        BackupMode
	Initiator   BackupInitiator
	StoreStatus StoreStatus
	// Retention, when positive, sets ExpectExpireTime = end + Retention.
	Retention time.Duration
	// Window is the schedule window of an automated backup (see Job).
	Window time.Time
}

// BackupStarter starts backup jobs in the background.
type BackupStarter interface {
	StartBackup(ctx context.Context, instanceID string, opts BackupOptions) (*Job, error)
}
