package rdsbackup

import (
	"context"
	"time"
)

// Clones (docs/clones.md): CloneDBInstance starts a new server of the
// source's engine on this host, restores a backup set (or a time) into it
// and shows it as an instance of its own until DeleteDBInstance removes it.
// Clones are processes on this host, so their records live beside their
// servers (clones.dir), not in the catalog that several nodes may share.

// CloneStatus is a clone's DBInstanceStatus.
type CloneStatus string

const (
	CloneCreating  CloneStatus = "Creating"  // its server is being started
	CloneRestoring CloneStatus = "Restoring" // the data is being restored into it
	CloneRunning   CloneStatus = "Running"
	// CloneFailed: the server could not be started or the restore failed;
	// the server and its files are gone, the record stays (with Reason)
	// until DeleteDBInstance.
	CloneFailed CloneStatus = "Failed"
)

// Clone is one clone instance.
type Clone struct {
	ID          string
	SourceID    string
	Engine      Engine
	Description string
	// BackupID is the set restored: the one given, or the base set of a
	// restore to RestoreTime.
	BackupID    int64
	RestoreTime time.Time // zero: the set as it is
	// Databases maps source databases to their names in the clone; empty
	// means all of the set's.
	Databases map[string]string
	// Physical: the set is a physical image, restored as the server's data
	// directory before the server starts (the whole instance).
	Physical  bool
	Status    CloneStatus
	Reason    string // why it failed
	Host      string // ConnectionString
	Bind      string // the address the server listens on
	Port      int
	CreatedAt time.Time
	// DiskUsed is the bytes of the clone's directory (data, logs), as last
	// measured.
	DiskUsed int64
}

// CloneRequest is what CloneDBInstance asks for; the API has checked it
// against the catalog (the set exists and holds the databases).
type CloneRequest struct {
	Source      *Instance
	BackupID    int64
	RestoreTime time.Time
	Databases   map[string]string
	Physical    bool
	Description string
}

// CloneService runs the clones of this host.
type CloneService interface {
	// CreateClone starts a clone and returns it (Creating); the server's
	// start and the restore run in the background. EQuotaClones when
	// maxClones clones exist or no port of the range is free: nothing is
	// started then.
	CreateClone(ctx context.Context, req CloneRequest) (*Clone, error)
	// FindClone returns ENOTFOUND for an unknown id.
	FindClone(ctx context.Context, id string) (*Clone, error)
	// FindClones returns every clone, in id order.
	FindClones(ctx context.Context) ([]*Clone, error)
	// DeleteClone stops a clone's server (cancelling its restore first)
	// and removes its directory and record; ENOTFOUND for an unknown id.
	DeleteClone(ctx context.Context, id string) error
}
