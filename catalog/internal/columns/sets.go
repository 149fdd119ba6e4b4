package columns

import (
	"fmt"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// BackupColumns are the columns of a backup set row that the catalogs read
// and write, in the order of SetValues and SetRow.Dest.
const BackupColumns = `id, instance_id, status, start_time, end_time, type, mode, method, initiator,
	size, available, store_status, meta_status, storage_class, copy_only, consistent_time, checksum,
	host_instance_id, encryption, engine, engine_version, resource_group_id, location, scale, db_names,
	expect_expire_time, failure_reason, object_key, artifacts, verify_status, verify_time, verify_reason`

// Unix is a time as the catalogs store it: unix seconds, 0 for none.
func Unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// FromUnix reads a time Unix wrote, in UTC.
func FromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// SetValues returns s's values in BackupColumns order; boolean converts the
// booleans to what the database stores.
func SetValues(s *rdsbackup.BackupSet, boolean func(bool) any) []any {
	encryption := s.Encryption
	if encryption == "" {
		encryption = "{}"
	}
	storageClass := s.StorageClass
	if storageClass == "" {
		storageClass = "0"
	}
	return []any{s.ID, s.InstanceID, string(s.Status), Unix(s.StartTime), Unix(s.EndTime), string(s.Type),
		string(s.Mode), string(s.Method), string(s.Initiator), s.Size, boolean(s.Available), string(s.StoreStatus),
		s.MetaStatus, storageClass, boolean(s.CopyOnly), s.ConsistentTime, s.Checksum, s.HostInstanceID,
		encryption, string(s.Engine), s.EngineVersion, s.ResourceGroupID, s.Location, s.Scale,
		JoinList(s.DBNames), Unix(s.ExpectExpireTime), s.FailureReason, s.ObjectKey, EncodeArtifacts(s.Artifacts),
		string(s.VerifyStatus), Unix(s.VerifyTime), s.VerifyFailureReason}
}

// SetRow holds what a row of BackupColumns is scanned into before it
// becomes a set. Scan's destinations escape to the heap, so one SetRow
// serves all the rows of a query instead of a dozen allocations per row.
type SetRow struct {
	start, end, expire, verifyTime                            int64
	availInt, copyOnlyInt                                     int64
	dbNames, artifacts, verifyStatus                          string
	status, typ, mode, method, initiator, storeStatus, engine string
	intBools                                                  bool
	set                                                       rdsbackup.BackupSet
	dest                                                      []any
}

// NewSetRow returns a SetRow; intBools scans the booleans as integers 0/1
// (SQLite) rather than as booleans.
func NewSetRow(intBools bool) *SetRow {
	c := &SetRow{intBools: intBools}
	s := &c.set
	var avail, copyOnly any = &s.Available, &s.CopyOnly
	if intBools {
		avail, copyOnly = &c.availInt, &c.copyOnlyInt
	}
	// Plain strings for the named string types: drivers convert into
	// *string directly but into *BackupStatus by reflection.
	c.dest = []any{&s.ID, &s.InstanceID, &c.status, &c.start, &c.end, &c.typ, &c.mode, &c.method, &c.initiator,
		&s.Size, avail, &c.storeStatus, &s.MetaStatus, &s.StorageClass, copyOnly, &s.ConsistentTime, &s.Checksum,
		&s.HostInstanceID, &s.Encryption, &c.engine, &s.EngineVersion, &s.ResourceGroupID, &s.Location, &s.Scale,
		&c.dbNames, &c.expire, &s.FailureReason, &s.ObjectKey, &c.artifacts,
		&c.verifyStatus, &c.verifyTime, &s.VerifyFailureReason}
	return c
}

// Scan scans one row with scan (a driver's Rows.Scan) into a new set.
func (c *SetRow) Scan(scan func(dest ...any) error) (*rdsbackup.BackupSet, error) {
	c.set = rdsbackup.BackupSet{}
	if err := scan(c.dest...); err != nil {
		return nil, err
	}
	s := new(rdsbackup.BackupSet)
	*s = c.set
	s.Status, s.Type, s.Mode, s.Method = rdsbackup.BackupStatus(c.status), rdsbackup.BackupType(c.typ), rdsbackup.BackupMode(c.mode), rdsbackup.BackupMethod(c.method)
	s.Initiator, s.StoreStatus, s.Engine = rdsbackup.BackupInitiator(c.initiator), rdsbackup.StoreStatus(c.storeStatus), rdsbackup.Engine(c.engine)
	var err error
	if s.Artifacts, err = DecodeArtifacts(c.artifacts); err != nil {
		return nil, fmt.Errorf("backup set %d: %w", s.ID, err)
	}
	s.StartTime, s.EndTime, s.ExpectExpireTime = FromUnix(c.start), FromUnix(c.end), FromUnix(c.expire)
	if c.intBools {
		s.Available, s.CopyOnly = c.availInt == 1, c.copyOnlyInt == 1
	}
	s.DBNames = SplitList(c.dbNames)
	s.VerifyStatus, s.VerifyTime = rdsbackup.VerifyStatus(c.verifyStatus), FromUnix(c.verifyTime)
	return s, nil
}

// Millis is t in unix milliseconds, 0 for the zero time: leases need
// finer times than the seconds the rest of the catalog keeps.
func Millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// FromMillis is the inverse of Millis.
func FromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
