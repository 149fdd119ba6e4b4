package main

import (
	"log/slog"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/api"
	"github.com/rdsbackup/rdsbackup/backup"
	"github.com/rdsbackup/rdsbackup/engine/postgres"
	"github.com/rdsbackup/rdsbackup/logs"
)

// pitrParts are the pieces of point-in-time recovery (docs/pitr.md): the
// log supervisor and the recoverer, built from the engines that implement
// the ports.
type pitrParts struct {
	supervisor *logs.Supervisor
	recoverer  *backup.Recoverer
	sources    map[rdsbackup.Engine]api.LogSource
	listers    map[rdsbackup.Engine]api.DatabaseLister
	catalog    rdsbackup.Catalog
}

func newPITR(bes map[rdsbackup.Engine]rdsbackup.BackupEngine, db rdsbackup.Catalog, store rdsbackup.ObjectStore, cfg *Config, logger *slog.Logger, met logs.Metrics) *pitrParts {
	p := &pitrParts{sources: map[rdsbackup.Engine]api.LogSource{}, listers: map[rdsbackup.Engine]api.DatabaseLister{}, catalog: db}
	// The PostgreSQL streamer offers the segment being written to the
	// supervisor at most every WALPartialInterval (10 s by default): a
	// shorter logs.uploadInterval is only honoured when it offers as often
	// (bench/pitrperf measured a p99 of 11 s from COMMIT to the store at an
	// uploadInterval of 5 s).
	if pg, ok := bes[rdsbackup.EnginePostgreSQL].(*postgres.Engine); ok && pg.WALPartialInterval == 0 {
		if up := time.Duration(cfg.Logs.UploadInterval); up > 0 && up < 10*time.Second {
			pg.WALPartialInterval = up
		}
	}
	streamers := map[rdsbackup.Engine]rdsbackup.LogStreamer{}
	restorers := pitrEngines(bes)
	for name, be := range bes {
		p.listers[name] = be
		if s, ok := be.(rdsbackup.LogStreamer); ok {
			streamers[name], p.sources[name] = s, s
		}
	}
	p.supervisor = logs.NewSupervisor(db, store, streamers, cfg.Path("logs"))
	p.supervisor.Logger = logger
	p.supervisor.UploadInterval = time.Duration(cfg.Logs.UploadInterval)
	p.supervisor.Interval = time.Duration(cfg.Backups.TickInterval)
	if met != nil {
		p.supervisor.Metrics = met
	}
	logical := map[rdsbackup.Engine]backup.LogicalRestorer{}
	for name, be := range bes {
		if r, ok := be.(backup.LogicalRestorer); ok {
			logical[name] = r
		}
	}
	p.recoverer = &backup.Recoverer{Catalog: db, Store: store, Engines: restorers, Logical: logical, WorkDir: cfg.Path("tmp/recovery"), Logger: logger}
	return p
}

func (p *pitrParts) wire(srv *api.Server) {
	srv.LogFiles, srv.Recoveries = p.catalog, p.catalog
	srv.Recovery = p.recoverer
	srv.LogSources, srv.TargetDatabases = p.sources, p.listers
	srv.LogPolicyChanged = p.supervisor.Kick
}

// pitrEngines are the engines that restore to a time.
func pitrEngines(bes map[rdsbackup.Engine]rdsbackup.BackupEngine) map[rdsbackup.Engine]rdsbackup.PointInTimeRestorer {
	out := map[rdsbackup.Engine]rdsbackup.PointInTimeRestorer{}
	for name, be := range bes {
		if r, ok := be.(rdsbackup.PointInTimeRestorer); ok {
			out[name] = r
		}
	}
	return out
}
