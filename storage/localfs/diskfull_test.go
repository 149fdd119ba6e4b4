//go:build linux

package localfs_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/internal/disktest"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
)

// TestDiskFull writes an object bigger than the tmpfs it is on: the write
// fails with rdsbackup.ENOSPACE naming the backup storage (ENOSPC kept in
// the chain), nothing is published and no temporary file stays; once the
// failed object is gone, the store writes again.
func TestDiskFull(t *testing.T) {
	dir := disktest.Mount(t, 1<<20)
	s := localfs.New(dir)
	w, err := s.Create(t.Context(), "backups/rm-a/1/set.zst")
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for i := 0; i < 64 && err == nil; i++ {
		_, err = w.Write(chunk)
	}
	if err == nil {
		err = w.Commit()
	} else if cerr := w.Commit(); rdsbackup.ErrorCode(cerr) != rdsbackup.ENOSPACE {
		t.Errorf("Commit after the failed write: %v", cerr)
	}
	if code := rdsbackup.ErrorCode(err); code != rdsbackup.ENOSPACE || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("4 MiB on a 1 MiB disk: code %q: %v", code, err)
	}
	if msg := rdsbackup.ErrorMessage(err); !strings.Contains(msg, "backup storage") {
		t.Errorf("message %q does not name the backup storage", msg)
	}
	if objs, err := rdsbackup.CollectObjects(s.List(t.Context(), "")); err != nil || len(objs) != 0 {
		t.Errorf("objects after the failure: %v %v", objs, err)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Errorf("files left on the disk: %v", files)
	}
	put(t, s, "backups/rm-a/2/set.zst", []byte("small"))
}
