// Package rdsbackup holds the domain of the rdsbackup service: database
// instances, backup sets, jobs, RAM identities, and the interfaces through
// which the API reads and writes them. Implementations live in packages
// named after what they depend on (catalog/sqlite, rpc, ram, …); only
// cmd/rdsbackup wires them together.
package rdsbackup

import (
	"context"
	"time"
)

// Engine is a database engine, spelled as the RDS API spells it.
type Engine string

const (
	EngineMySQL      Engine = "MySQL"
	EngineMariaDB    Engine = "MariaDB"
	EnginePostgreSQL Engine = "PostgreSQL"
	EngineSQLServer  Engine = "SQLServer"
)

// Engines lists the engines in a stable order.
var Engines = []Engine{EngineMySQL, EngineMariaDB, EnginePostgreSQL, EngineSQLServer}

// Valid reports whether e is one of the known engines.
func (e Engine) Valid() bool {
	for _, k := range Engines {
		if e == k {
			return true
		}
	}
	return false
}

// Instance is a database server registered with rdsbackup. DSN carries the
// credentials the engine uses and is never shown by the API.
type Instance struct {
	ID            string
	Engine        Engine
	EngineVersion string // as last read from the server; "" until known
	DSN           string
	Description   string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// InstanceService manages registered instances.
type InstanceService interface {
	// FindInstance returns ENOTFOUND when id is not registered.
	FindInstance(ctx context.Context, id string) (*Instance, error)
	// FindInstances returns the instances in id order, after offset, at most
	// limit (0 = all), and the total count.
	FindInstances(ctx context.Context, offset, limit int) ([]*Instance, int, error)
	// SyncInstances makes the registered set equal to instances: new ones are
	// added, existing ones updated (CreatedAt kept), absent ones removed. The
	// backup sets of removed instances stay in the catalog. An instance keeps
	// its EngineVersion unless its engine changed (then it is "" again).
	SyncInstances(ctx context.Context, instances []*Instance) error
	// SetEngineVersion records the version read from the instance's server;
	// ENOTFOUND when id is not registered.
	SetEngineVersion(ctx context.Context, id, version string) error
}

// Backup set enumerations, with the values the RDS API uses.
type (
	BackupStatus    string
	BackupMode      string
	BackupType      string
	BackupMethod    string
	BackupInitiator string
	StoreStatus     string
)

const (
	BackupSuccess BackupStatus = "Success"
	BackupFailed  BackupStatus = "Failed"

	BackupAutomated BackupMode = "Automated"
	BackupManual    BackupMode = "Manual"

	FullBackup        BackupType = "FullBackup"
	IncrementalBackup BackupType = "IncrementalBackup"

	MethodLogical  BackupMethod = "Logical"
	MethodPhysical BackupMethod = "Physical"
	MethodSnapshot BackupMethod = "Snapshot"

	InitiatorSystem BackupInitiator = "System"
	InitiatorUser   BackupInitiator = "User"

	StoreEnabled  StoreStatus = "Enabled"  // may be deleted by the user
	StoreDisabled StoreStatus = "Disabled" // leaves by expiry only
)

// BackupSet is one backup of one instance: every field DescribeBackups
// reports, plus the artifacts that hold its data.
type BackupSet struct {
	ID               int64 // BackupId on the wire (a numeric string)
	InstanceID       string
	Status           BackupStatus
	StartTime        time.Time
	EndTime          time.Time
	Type             BackupType
	Mode             BackupMode
	Method           BackupMethod
	Initiator        BackupInitiator
	Size             int64 // bytes of the set's object
	Available        bool  // IsAvail
	StoreStatus      StoreStatus
	MetaStatus       string // "OK", "LARGE", "EMPTY" or ""
	StorageClass     string // "0" regular, "1" archive
	CopyOnly         bool
	ConsistentTime   int64  // unix seconds, 0 when unknown
	Checksum         string // decimal CRC64-ECMA of the set's object
	HostInstanceID   string
	Encryption       string // a JSON document, "{}" when not encrypted
	Engine           Engine
	EngineVersion    string
	ResourceGroupID  string
	Location         string // BackupLocation
	Scale            string // "DBInstance" or "Database"
	DBNames          []string
	ExpectExpireTime time.Time // zero when the set does not expire
	FailureReason    string    // why a Failed set failed
	ObjectKey        string    // where the set's object lives in storage; "" when none
	Artifacts        []Artifact
	// The last restore drill's verdict (docs/drills.md): "" when none.
	VerifyStatus        VerifyStatus
	VerifyTime          time.Time
	VerifyFailureReason string
}

// Artifact is one database's part of a backup set: a byte range of the set's
// object with its own checksum, so that it can be downloaded on its own.
type Artifact struct {
	Database string
	// Kind is the part's kind (PartDatabase, PartGlobals, PartPhysical);
	// only database parts are listed as per-database downloads.
	Kind     string
	Offset   int64
	Length   int64
	Checksum string // decimal CRC64-ECMA of the range
}

// BackupFilter selects backup sets. Nil fields do not filter. StartFrom and
// StartTo bound StartTime inclusively.
type BackupFilter struct {
	InstanceID string
	ID         *int64
	Status     *BackupStatus
	Mode       *BackupMode
	Type       *BackupType
	StartFrom  *time.Time
	StartTo    *time.Time

	Offset int
	Limit  int
}

// BackupSetService stores backup sets. Results are ordered newest first by
// StartTime, ties broken by ID descending.
type BackupSetService interface {
	// FindBackupSets returns one page of matching sets and the number of all
	// matching sets.
	FindBackupSets(ctx context.Context, filter BackupFilter) ([]*BackupSet, int, error)
	// FindBackupSet returns ENOTFOUND when no set has that id.
	FindBackupSet(ctx context.Context, id int64) (*BackupSet, error)
	// CreateBackupSet stores set and its artifacts, assigning set.ID when it
	// is zero. An id is never given twice, even after its set is deleted,
	// and never one a job has (a job's id is the BackupId of its set). The
	// set's ExpectExpireTime is EndTime + the retention of the instance's
	// stored policy, read in the same transaction, for an automated set
	// always and for a manual set that has none.
	CreateBackupSet(ctx context.Context, set *BackupSet) error
	// ImportBackupSets stores many sets in one transaction, keeping their
	// ids when set (catalog rebuilds, benchmarks).
	ImportBackupSets(ctx context.Context, sets []*BackupSet) error
	// UpdateBackupSet replaces the stored set (and its artifacts).
	UpdateBackupSet(ctx context.Context, set *BackupSet) error
	// DeleteBackupSet removes a set; ENOTFOUND when there is none.
	DeleteBackupSet(ctx context.Context, id int64) error
}

// ValidateBackupSet checks a set before a catalog stores it. Above all, the
// catalog never says a set is available when nothing holds its data.
func ValidateBackupSet(set *BackupSet) error {
	switch {
	case set.InstanceID == "":
		return Errorf(EINVALID, "backup set: instance id required")
	case set.Status != BackupSuccess && set.Status != BackupFailed:
		return Errorf(EINVALID, "backup set: invalid status %q", set.Status)
	case set.StartTime.IsZero():
		return Errorf(EINVALID, "backup set: start time required")
	case set.Status == BackupSuccess && set.Available && set.ObjectKey == "" && set.Method != MethodSnapshot:
		return Errorf(EINVALID, "backup set: an available set needs an object")
	}
	return nil
}
