package sqlite_test

// SQLite-specific checks of the automated-backup tables (migration 0003);
// their behaviour through the catalog's interfaces is in catalogtest.

import (
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// The unique index on (instance, window) holds even for a row that does not
// come through CreateJob.
func TestJobWindowUniqueIndex(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	w1 := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
	if err := db.CreateJob(ctx, &rdsbackup.Job{InstanceID: "rm-b", Status: rdsbackup.JobNoStart, Mode: rdsbackup.BackupAutomated,
		Method: rdsbackup.MethodLogical, Strategy: "instance", Window: w1}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Raw().ExecContext(ctx, `INSERT INTO jobs (instance_id, status, mode, method, strategy, databases, progress, backup_set_id, error, created_at, updated_at, window_start)
		VALUES ('rm-b', 'NoStart', 'Automated', 'Logical', 'instance', '', 0, 0, '', 1, 1, ?)`, w1.Unix()); err == nil {
		t.Error("the catalog accepted a second job row for the same instance and window")
	}
}
