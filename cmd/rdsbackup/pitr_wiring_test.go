package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/postgres"
)

// TestPITRWALPartialInterval: a logs.uploadInterval under the PostgreSQL
// streamer's default offer interval (10 s) makes it offer the segment being
// written as often; a longer one leaves the default.
func TestPITRWALPartialInterval(t *testing.T) {
	for _, c := range []struct {
		upload, want time.Duration
	}{{2 * time.Second, 2 * time.Second}, {time.Minute, 0}} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.Logs.UploadInterval = Duration(c.upload)
		bes := engines(slog.New(slog.DiscardHandler), t.TempDir(), nil)
		p := newPITR(bes, nil, nil, cfg, slog.New(slog.DiscardHandler), nil)
		pg := bes[rdsbackup.EnginePostgreSQL].(*postgres.Engine)
		if pg.WALPartialInterval != c.want {
			t.Errorf("uploadInterval %v: WALPartialInterval %v, want %v", c.upload, pg.WALPartialInterval, c.want)
		}
		if p.supervisor.UploadInterval != c.upload {
			t.Errorf("uploadInterval %v: the supervisor's is %v", c.upload, p.supervisor.UploadInterval)
		}
	}
}
