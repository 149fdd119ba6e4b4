package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestTuneGCDefaultsAndEnvironment(t *testing.T) {
	prevPercent := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(prevPercent)
		debug.SetMemoryLimit(prevLimit)
	})

	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("GC percent %d, want 400", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != 80<<20 {
		t.Errorf("memory limit %d, want %d", got, 80<<20)
	}

	// The operator's GOGC/GOMEMLIMIT (already applied by the runtime) stand.
	tuneGC(func(k string) string { return map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"}[k] })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent changed to %d despite GOGC", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("memory limit changed to %d despite GOMEMLIMIT", got)
	}
}
