package main

import (
	"log/slog"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/mysql"
	"github.com/rdsbackup/rdsbackup/engine/postgres"
)

// engines returns the backup engine of each supported database engine.
// SQL Server has none yet: CreateBackup on it answers a clear error.
func engines(logger *slog.Logger) map[rdsbackup.Engine]rdsbackup.BackupEngine {
	return map[rdsbackup.Engine]rdsbackup.BackupEngine{
		rdsbackup.EngineMySQL:      &mysql.Engine{Flavor: rdsbackup.EngineMySQL, Logger: logger},
		rdsbackup.EngineMariaDB:    &mysql.Engine{Flavor: rdsbackup.EngineMariaDB, Logger: logger},
		rdsbackup.EnginePostgreSQL: &postgres.Engine{Logger: logger},
	}
}
