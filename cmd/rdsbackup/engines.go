package main

import (
	"log/slog"

	"github.com/rdsbackup/rdsbackup"
)

// engines returns the backup engine of each supported database engine.
func engines(logger *slog.Logger) map[rdsbackup.Engine]rdsbackup.BackupEngine {
	return map[rdsbackup.Engine]rdsbackup.BackupEngine{}
}
