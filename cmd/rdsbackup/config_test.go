package main

import (
	"testing"
	"time"
)

// TestDefaultConfigComplete: `serve` without --config runs on these, so
// every default a file would get must be there too.
func TestDefaultConfigComplete(t *testing.T) {
	c := DefaultConfig()
	if c.Listen != DefaultListen || c.DataDir != DefaultDataDir || c.Region != DefaultRegion {
		t.Errorf("defaults: %+v", c)
	}
	if time.Duration(c.Backups.TickInterval) <= 0 || c.Backups.MaxConcurrent <= 0 || !c.Backups.Scheduled() {
		t.Errorf("backup defaults: %+v", c.Backups)
	}
	if time.Duration(c.Downloads.LinkTTL) <= 0 {
		t.Errorf("download defaults: %+v", c.Downloads)
	}
	parsed, err := ParseConfig([]byte("{}"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Backups != c.Backups || parsed.Downloads != c.Downloads || parsed.Listen != c.Listen {
		t.Errorf("an empty file and no file differ:\n%+v\n%+v", parsed, c)
	}
}
