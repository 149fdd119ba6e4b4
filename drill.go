package rdsbackup

import (
	"context"
	"time"
)

// Restore drills (docs/drills.md): a drill restores a Success set into a
// throwaway server of its engine on this host (never an instance), checks
// what it finds there and records the verdict on the set. A checksum proves
// the bytes did not change; a drill proves they restore.

// VerifyStatus is the verdict of a set's last drill (DescribeBackups'
// VerifyStatus extension field); "" when no drill has judged it.
type VerifyStatus string

const (
	VerifyPassed VerifyStatus = "Passed"
	// VerifyFailed: the set did not restore, or the restored data failed a
	// check; the set is no longer available (IsAvail 0).
	VerifyFailed VerifyStatus = "Failed"
)

// DrillResult is how a drill ended: a verdict on the set, or NotRun when
// the drill itself could not run (its server died, no port, a timeout):
// then nothing is recorded on the set.
type DrillResult string

const (
	DrillPassed DrillResult = "Passed"
	DrillFailed DrillResult = "Failed"
	DrillNotRun DrillResult = "NotRun"
)

// DrillCheck is one check of a drill, reported as it ends.
type DrillCheck struct {
	Name   string // "restore", "databases", "integrity", "consistent"
	OK     bool
	Detail string
	Took   time.Duration // since the previous check ended (the first: since the drill started)
}

// Drill is one drill's outcome.
type Drill struct {
	BackupID  int64
	Result    DrillResult
	Checks    []DrillCheck
	Reason    string // why it failed or did not run
	StartTime time.Time
	EndTime   time.Time
}

// VerificationRecorder records a drill's verdict on a set: Passed records
// its time and clears an earlier failure's reason, making available again
// a set that a failed drill had made unavailable (IsAvail otherwise
// unchanged); Failed records time and reason and makes the set
// unavailable.
// ENOTFOUND when no set has that id.
type VerificationRecorder interface {
	RecordVerification(ctx context.Context, id int64, status VerifyStatus, at time.Time, reason string) error
}
