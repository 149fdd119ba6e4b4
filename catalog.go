package rdsbackup

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DeletionService keeps the two-step deletion of backup sets (see
// backup.Deleter): sets are first marked deleting, which hides them from
// every reader, and their rows go only once their objects are gone.
type DeletionService interface {
	// FindExpiredBackupSets returns sets whose ExpectExpireTime is at or
	// before now, oldest expiry first, at most limit, never a set being
	// deleted and never an instance's newest successful set (which is kept
	// whatever its age, so that an instance always has a backup to restore).
	FindExpiredBackupSets(ctx context.Context, now time.Time, limit int) ([]*BackupSet, error)
	// MarkBackupSetsDeleting marks every set deleting, all or none:
	// ENOTFOUND when one of them is unknown or already being deleted.
	MarkBackupSetsDeleting(ctx context.Context, ids []int64) error
	// FindDeletingBackupSets returns the sets whose deletion was started, by
	// id.
	FindDeletingBackupSets(ctx context.Context) ([]*BackupSet, error)
}

// SettingService keeps small named values of the catalog's own, such as the
// master key check.
type SettingService interface {
	// FindSetting returns ENOTFOUND when name has no value.
	FindSetting(ctx context.Context, name string) ([]byte, error)
	// CreateSetting stores value under name unless name already has a value,
	// and returns the value name has afterwards: value, or the one stored
	// before (by this or by another process).
	CreateSetting(ctx context.Context, name string, value []byte) ([]byte, error)
}

// Catalog is everything a catalog implementation provides (catalog/sqlite,
// catalog/postgres): cmd/rdsbackup builds one from the config, and every
// implementation passes catalog/catalogtest. Consumers ask for the few
// methods they use.
type Catalog interface {
	InstanceService
	BackupSetService
	JobService
	PolicyService
	DeletionService
	IdentityService
	SettingService
	LogService
	RecoveryService
	VerificationRecorder
	CatalogTransfer
	LeaseService
	// Nonces returns the catalog's replay protection, remembering nonces
	// for window and holding at most maxEntries: shared by every handle on
	// the catalog (every node) and kept across restarts.
	Nonces(window time.Duration, maxEntries int) NonceStore
	Close() error
}

// MasterKeyCheckSetting names the setting that holds the master key check
// value: a constant sealed with the master key the catalog's secrets are
// sealed with.
const MasterKeyCheckSetting = "master_key_check"

// masterKeyCanary is what the check value seals.
const masterKeyCanary = "rdsbackup master key check"

// ErrWrongMasterKey is returned by CheckMasterKey when the key cannot open
// the catalog's check value.
var ErrWrongMasterKey = errors.New("the master key is not the one this catalog's secrets are sealed with")

// CheckMasterKey proves that box holds the master key the catalog's secrets
// are sealed with, so that a node started with another key stops at once
// instead of failing every authenticated request. A catalog without a check
// value gets one sealed by box; when several nodes start at once on a new
// catalog, the first one's key wins and the others are checked against it.
func CheckMasterKey(ctx context.Context, settings SettingService, box SecretBox) error {
	sealed, err := settings.FindSetting(ctx, MasterKeyCheckSetting)
	if ErrorCode(err) == ENOTFOUND {
		mine, err := box.Seal([]byte(masterKeyCanary))
		if err != nil {
			return fmt.Errorf("seal master key check: %w", err)
		}
		if sealed, err = settings.CreateSetting(ctx, MasterKeyCheckSetting, mine); err != nil {
			return fmt.Errorf("store master key check: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("read master key check: %w", err)
	}
	if plain, err := box.Open(sealed); err != nil || string(plain) != masterKeyCanary {
		return ErrWrongMasterKey
	}
	return nil
}
