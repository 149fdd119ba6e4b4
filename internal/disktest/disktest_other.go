//go:build !linux

package disktest

import (
	"os"
	"testing"
)

// Mount: tmpfs mounts are Linux only; the test is skipped, or fails under
// CI=true.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("disktest: a tmpfs disk needs Linux")
	}
	t.Skip("disktest: a tmpfs disk needs Linux")
	return ""
}

// MountAt: see Mount.
func MountAt(t testing.TB, dir string, size int64) string { return Mount(t, size) }

// Fill is not reached where Mount skips.
func Fill(t testing.TB, dir string) func() {
	t.Fatal("disktest: Fill needs Linux")
	return nil
}
