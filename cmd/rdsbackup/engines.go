package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/childproc"
	"github.com/rdsbackup/rdsbackup/engine/mysql"
	"github.com/rdsbackup/rdsbackup/engine/postgres"
)

// engines returns the backup engine of each supported database engine.
// SQL Server has none yet: CreateBackup on it answers a clear error.
// tmpDir holds the engines' private option files (they carry passwords);
// children records their running tools.
func engines(logger *slog.Logger, tmpDir string, children *childproc.Registry) map[rdsbackup.Engine]rdsbackup.BackupEngine {
	return map[rdsbackup.Engine]rdsbackup.BackupEngine{
		rdsbackup.EngineMySQL:      &mysql.Engine{Flavor: rdsbackup.EngineMySQL, Logger: logger, TempDir: tmpDir, Children: children},
		rdsbackup.EngineMariaDB:    &mysql.Engine{Flavor: rdsbackup.EngineMariaDB, Logger: logger, TempDir: tmpDir, Children: children},
		rdsbackup.EnginePostgreSQL: &postgres.Engine{Logger: logger, TempDir: tmpDir, Children: children},
	}
}

// killLeftoverTools kills the dump and restore tools a killed process left
// running (recorded in dir), so that their database connections and
// transactions end before anything new starts.
func killLeftoverTools(children *childproc.Registry, logger *slog.Logger) error {
	killed, err := children.KillLeftovers()
	for _, k := range killed {
		logger.Warn("killed a tool left running by an earlier process", "tool", k.Tool, "pid", k.PID)
	}
	if err != nil {
		return fmt.Errorf("clean tool records: %w", err)
	}
	return nil
}

// resetTempDir empties the engines' temp directory: what is there was left
// by a process that was killed (option files with passwords among it).
func resetTempDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	return os.MkdirAll(dir, 0o700)
}
