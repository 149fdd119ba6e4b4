package rdsbackup

import (
	"context"
	"io"
)

// ServerInfo is what a backup reads from the server it backs up.
type ServerInfo struct {
	Version string // e.g. "10.11", "15"
	HostID  string // @@server_id, the PostgreSQL system identifier, …
}

// Part kinds.
const (
	PartDatabase = "database" // a logical dump of one database
	PartGlobals  = "globals"  // roles and tablespaces (PostgreSQL)
	PartPhysical = "physical" // a physical image of the whole instance
)

// Part is one stream of a backup set.
type Part struct {
	Name string // the database name, or "globals" / "instance"
	Kind string
}

// PartSink receives a backup's parts one after another. WritePart reads r
// to EOF; the engine checks its child process only after WritePart returns,
// so a tool that fails after writing bytes still fails the backup.
type PartSink interface {
	WritePart(ctx context.Context, part Part, r io.Reader) error
}

// BackupRequest says what to back up.
type BackupRequest struct {
	Method    BackupMethod
	Databases []string // nil: every user database
}

// BackupResult is what an engine learned while backing up.
type BackupResult struct {
	Info           ServerInfo
	ConsistentTime int64 // unix seconds of the consistent point
	Databases      []string
	// LogPositions, when the server writes a log that point-in-time
	// recovery can replay, says where in it each part starts (part name →
	// position): the binlog file and position a dump's snapshot was taken
	// at, the start LSN and timeline of a physical PostgreSQL backup. The
	// runner stores them (LogService.PutSetLogPositions) and the manifest.
	LogPositions map[string]LogPosition
}

// BackupEngine takes backups of one engine's servers with its own tools.
type BackupEngine interface {
	// Probe connects and reads the server's version and identity.
	Probe(ctx context.Context, inst *Instance) (ServerInfo, error)
	// Databases lists the user databases (system schemas excluded).
	Databases(ctx context.Context, inst *Instance) ([]string, error)
	// EstimateSize guesses the bytes a backup will read, for progress.
	EstimateSize(ctx context.Context, inst *Instance, req BackupRequest) (int64, error)
	// Backup streams each part of the backup into sink.
	Backup(ctx context.Context, inst *Instance, req BackupRequest, sink PartSink) (BackupResult, error)
}
