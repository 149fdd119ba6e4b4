//go:build linux

package sqlite_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/internal/disktest"
)

// TestDiskFull puts the catalog on a small tmpfs and fills it: writes fail
// with rdsbackup.ENOSPACE (not a generic internal error) and a message that
// names the catalog, reads keep working, and once space is freed the same
// open catalog writes again.
func TestDiskFull(t *testing.T) {
	dir := disktest.Mount(t, 4<<20)
	db := openDB(t, filepath.Join(dir, "catalog.db"), testKey)
	defer db.Close()
	ctx := t.Context()
	if err := db.SyncInstances(ctx, []*rdsbackup.Instance{{ID: "rm-full", Engine: rdsbackup.EngineMariaDB, DSN: "u:p@tcp(h:1)/"}}); err != nil {
		t.Fatal(err)
	}
	free := disktest.Fill(t, dir)

	// Pages already in the write-ahead log can be written again without
	// new space, so a few writes may still pass; then one must fail.
	big := strings.Repeat("x", 4000)
	var err error
	writes := 0
	for ; writes < 2000 && err == nil; writes++ {
		err = db.CreateJob(ctx, &rdsbackup.Job{InstanceID: "rm-full", Status: rdsbackup.JobNoStart, Mode: rdsbackup.BackupManual,
			Method: rdsbackup.MethodLogical, Strategy: "instance", Error: big + fmt.Sprint(writes)})
	}
	t.Logf("write %d failed: %v", writes, err)
	if err == nil {
		t.Fatal("2000 writes of 4 KB passed on a full disk")
	}
	if code := rdsbackup.ErrorCode(err); code != rdsbackup.ENOSPACE {
		t.Fatalf("ErrorCode %q, want %s: %v", code, rdsbackup.ENOSPACE, err)
	}
	if msg := rdsbackup.ErrorMessage(err); !strings.Contains(msg, "catalog") || !strings.Contains(msg, "full") {
		t.Errorf("message %q does not say the catalog's disk is full", msg)
	}
	if _, err := db.FindInstance(ctx, "rm-full"); err != nil {
		t.Errorf("read on a full disk: %v", err)
	}

	free()
	if err := db.CreateJob(ctx, &rdsbackup.Job{InstanceID: "rm-full", Status: rdsbackup.JobNoStart, Mode: rdsbackup.BackupManual,
		Method: rdsbackup.MethodLogical, Strategy: "instance"}); err != nil {
		t.Fatalf("write after space was freed: %v", err)
	}
}
