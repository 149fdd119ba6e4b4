//go:build linux

// Package disktest gives tests a small disk of their own that they can fill:
// a tmpfs mounted for the test (which needs root, as CI runs). Where it
// cannot be mounted the test is skipped, except under CI=true, where it
// fails: the disk-full tests must run there.
package disktest

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new temporary directory, private
// to the test (mode 0700), and unmounts it when the test ends.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	return MountAt(t, t.TempDir(), size)
}

// MountAt mounts a tmpfs of size bytes on dir, an existing empty directory
// (for a disk that another user, such as a server's, must reach), and
// unmounts it when the test ends. The mount's root is mode 0700.
func MountAt(t testing.TB, dir string, size int64) string {
	t.Helper()
	opts := "size=" + strconv.FormatInt(size, 10) + ",mode=0700"
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("disktest: mount a tmpfs on %s (needs root): %v", dir, err)
		}
		t.Skipf("disktest: cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		// Lazy: a file the code under test still holds open must not
		// keep the mount, nor fail the test.
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("disktest: unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes a file in dir until its filesystem has no space left and
// returns a function that removes it again. Fill fails the test if the
// disk does not fill up.
func Fill(t testing.TB, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, ".disktest-filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("disktest: %v", err)
	}
	defer f.Close()
	full := false
	for _, chunk := range []int{1 << 20, 4096, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("disktest: fill %s: %v", dir, err)
				}
				full = true
				break
			}
		}
	}
	if !full {
		t.Fatalf("disktest: %s did not fill up", dir)
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Errorf("disktest: free %s: %v", dir, err)
		}
	}
}
