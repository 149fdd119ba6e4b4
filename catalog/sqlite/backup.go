package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var _ rdsbackup.BackupSetService = (*DB)(nil)

const backupColumns = `id, instance_id, status, start_time, end_time, type, mode, method, initiator,
	size, available, store_status, meta_status, storage_class, copy_only, consistent_time, checksum,
	host_instance_id, encryption, engine, engine_version, resource_group_id, location, scale, db_names,
	expect_expire_time, failure_reason, object_key, artifacts`

// FindBackupSets returns one page of matching sets, newest first, and the
// number of all matches.
func (db *DB) FindBackupSets(ctx context.Context, f rdsbackup.BackupFilter) ([]*rdsbackup.BackupSet, int, error) {
	// Sets being deleted are gone as far as readers are concerned.
	where := []string{"deleting = 0"}
	var args []any
	if f.InstanceID != "" {
		where, args = append(where, "instance_id = ?"), append(args, f.InstanceID)
	}
	if f.ID != nil {
		where, args = append(where, "id = ?"), append(args, *f.ID)
	}
	if f.Status != nil {
		where, args = append(where, "status = ?"), append(args, string(*f.Status))
	}
	if f.Mode != nil {
		where, args = append(where, "mode = ?"), append(args, string(*f.Mode))
	}
	if f.Type != nil {
		where, args = append(where, "type = ?"), append(args, string(*f.Type))
	}
	if f.StartFrom != nil {
		where, args = append(where, "start_time >= ?"), append(args, f.StartFrom.Unix())
	}
	if f.StartTo != nil {
		where, args = append(where, "start_time <= ?"), append(args, f.StartTo.Unix())
	}
	cond := " WHERE " + strings.Join(where, " AND ")

	count, err := db.stmt(ctx, `SELECT COUNT(*) FROM backup_sets`+cond)
	if err != nil {
		return nil, 0, fmt.Errorf("find backup sets: %w", err)
	}
	var total int
	if err := count.QueryRowContext(ctx, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count backup sets: %w", err)
	}
	if total == 0 || f.Offset >= total {
		return nil, total, nil
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1
	}
	page, err := db.stmt(ctx, `SELECT `+backupColumns+` FROM backup_sets`+cond+
		` ORDER BY start_time DESC, id DESC LIMIT ? OFFSET ?`)
	if err != nil {
		return nil, 0, fmt.Errorf("find backup sets: %w", err)
	}
	rows, err := page.QueryContext(ctx, append(args, limit, f.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("find backup sets: %w", err)
	}
	defer rows.Close()
	var sets []*rdsbackup.BackupSet
	if limit > 0 && limit <= 1000 {
		sets = make([]*rdsbackup.BackupSet, 0, limit)
	}
	scan := newSetScan()
	for rows.Next() {
		set, err := scanBackupSet(rows, scan)
		if err != nil {
			return nil, 0, fmt.Errorf("find backup sets: %w", err)
		}
		sets = append(sets, set)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("find backup sets: %w", err)
	}
	return sets, total, nil
}

// FindBackupSet returns the set with that id.
func (db *DB) FindBackupSet(ctx context.Context, id int64) (*rdsbackup.BackupSet, error) {
	s, err := db.stmt(ctx, `SELECT `+backupColumns+` FROM backup_sets WHERE id = ? AND deleting = 0`)
	if err != nil {
		return nil, fmt.Errorf("find backup set: %w", err)
	}
	set, err := scanBackupSet(s.QueryRowContext(ctx, id), newSetScan())
	if errors.Is(err, sql.ErrNoRows) {
		return nil, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("find backup set %d: %w", id, err)
	}
	return set, nil
}

// CreateBackupSet stores a new set with its artifacts.
func (db *DB) CreateBackupSet(ctx context.Context, set *rdsbackup.BackupSet) error {
	if err := validateBackupSet(set); err != nil {
		return err
	}
	return db.update(ctx, func(tx *sql.Tx) error { return insertBackupSet(ctx, tx, set) })
}

var insertBackupSQL = `INSERT INTO backup_sets (rid, ` + backupColumns + `) VALUES (?, ?` +
	strings.Repeat(",?", strings.Count(backupColumns, ",")) + `)`

// nextSetID is the id a set gets when it has none: above every id a job or
// a set has had (jobs and sets share one id space), so never reused.
const nextSetID = `SELECT 1 + MAX(
	COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0),
	COALESCE((SELECT last FROM backup_set_ids), 0))`

// insertBackupSet inserts set and its artifacts; a zero ID is assigned by
// SQLite.
func insertBackupSet(ctx context.Context, tx *sql.Tx, set *rdsbackup.BackupSet) error {
	if set.ID == 0 {
		// Jobs and sets share one id space (a job's id is its set's BackupId).
		if err := tx.QueryRowContext(ctx, nextSetID).Scan(&set.ID); err != nil {
			return fmt.Errorf("create backup set: %w", err)
		}
	}
	if err := policyExpiry(ctx, tx, set); err != nil {
		return err
	}
	rid, err := nextSetRowID(ctx, tx, set.InstanceID)
	if err != nil {
		return fmt.Errorf("create backup set: %w", err)
	}
	if _, err := tx.ExecContext(ctx, insertBackupSQL, append([]any{rid}, backupValues(set)...)...); err != nil {
		return fmt.Errorf("create backup set: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE backup_set_ids SET last = ?1 WHERE last < ?1`, set.ID); err != nil {
		return fmt.Errorf("create backup set: %w", err)
	}
	return nil
}

// nextSetRowID returns the row key of a new set of an instance: the
// instance's key in the high 32 bits (given on its first set) and one more
// than its last set's in the low 32, so that its sets sit together in the
// table (migration 0006).
func nextSetRowID(ctx context.Context, tx *sql.Tx, instanceID string) (int64, error) {
	var key int64
	err := tx.QueryRowContext(ctx, `SELECT key FROM set_instance_keys WHERE instance_id = ?`, instanceID).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, `INSERT INTO set_instance_keys (instance_id, key)
			VALUES (?, (SELECT COALESCE(MAX(key), 0) + 1 FROM set_instance_keys)) RETURNING key`, instanceID).Scan(&key)
	}
	if err != nil {
		return 0, fmt.Errorf("key of instance %s: %w", instanceID, err)
	}
	first, last := key<<32, key<<32|0xffffffff
	var rid int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(rid), ?1) + 1 FROM backup_sets WHERE rid BETWEEN ?1 AND ?2`, first, last).Scan(&rid); err != nil {
		return 0, fmt.Errorf("row of a new set of %s: %w", instanceID, err)
	}
	if rid > last {
		return 0, fmt.Errorf("instance %s has used all %d set rows", instanceID, uint32(0xffffffff))
	}
	return rid, nil
}

// policyExpiry sets ExpectExpireTime = end + the retention of the
// instance's stored policy, read in the same transaction as the insert: for
// an automated set always (a retention change made while the backup ran,
// which PutBackupPolicy applies to the sets already stored, is not missed);
// for a manual set when the caller gave no expiry of its own.
func policyExpiry(ctx context.Context, tx *sql.Tx, set *rdsbackup.BackupSet) error {
	if set.EndTime.IsZero() || (set.Mode != rdsbackup.BackupAutomated && !set.ExpectExpireTime.IsZero()) {
		return nil
	}
	var days int64
	err := tx.QueryRowContext(ctx, `SELECT retention_days FROM backup_policies WHERE instance_id = ?`, set.InstanceID).Scan(&days)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // no stored policy: the expiry the caller computed stands
	} else if err != nil {
		return fmt.Errorf("read retention of %s: %w", set.InstanceID, err)
	}
	set.ExpectExpireTime = set.EndTime.Add(time.Duration(days) * 24 * time.Hour).UTC().Truncate(time.Second)
	return nil
}

// UpdateBackupSet replaces a stored set and its artifacts.
func (db *DB) UpdateBackupSet(ctx context.Context, set *rdsbackup.BackupSet) error {
	if err := validateBackupSet(set); err != nil {
		return err
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		cols := strings.Split(backupColumns, ",")
		var assign []string
		for _, c := range cols[1:] {
			assign = append(assign, strings.TrimSpace(c)+" = ?")
		}
		vals := backupValues(set)
		res, err := tx.ExecContext(ctx, `UPDATE backup_sets SET `+strings.Join(assign, ", ")+` WHERE id = ?`, append(vals[1:], set.ID)...)
		if err != nil {
			return fmt.Errorf("update backup set %d: %w", set.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", set.ID)
		}
		return nil
	})
}

// DeleteBackupSet removes a set and its artifacts' rows.
func (db *DB) DeleteBackupSet(ctx context.Context, id int64) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM backup_sets WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete backup set %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", id)
		}
		return nil
	})
}

func validateBackupSet(set *rdsbackup.BackupSet) error {
	switch {
	case set.InstanceID == "":
		return rdsbackup.Errorf(rdsbackup.EINVALID, "backup set: instance id required")
	case set.Status != rdsbackup.BackupSuccess && set.Status != rdsbackup.BackupFailed:
		return rdsbackup.Errorf(rdsbackup.EINVALID, "backup set: invalid status %q", set.Status)
	case set.StartTime.IsZero():
		return rdsbackup.Errorf(rdsbackup.EINVALID, "backup set: start time required")
	case set.Status == rdsbackup.BackupSuccess && set.Available && set.ObjectKey == "" && set.Method != rdsbackup.MethodSnapshot:
		// The catalog never says a set is available when nothing holds its data.
		return rdsbackup.Errorf(rdsbackup.EINVALID, "backup set: an available set needs an object")
	}
	return nil
}

func backupValues(s *rdsbackup.BackupSet) []any {
	encryption := s.Encryption
	if encryption == "" {
		encryption = "{}"
	}
	storageClass := s.StorageClass
	if storageClass == "" {
		storageClass = "0"
	}
	return []any{s.ID, s.InstanceID, string(s.Status), unix(s.StartTime), unix(s.EndTime), string(s.Type),
		string(s.Mode), string(s.Method), string(s.Initiator), s.Size, boolInt(s.Available), string(s.StoreStatus),
		s.MetaStatus, storageClass, boolInt(s.CopyOnly), s.ConsistentTime, s.Checksum, s.HostInstanceID,
		encryption, string(s.Engine), s.EngineVersion, s.ResourceGroupID, s.Location, s.Scale,
		columns.JoinList(s.DBNames), unix(s.ExpectExpireTime), s.FailureReason, s.ObjectKey, columns.EncodeArtifacts(s.Artifacts)}
}

// setScan holds what scanBackupSet reads before converting. Scan's
// destinations escape to the heap, so one setScan serves all the rows of a
// query instead of fourteen allocations per row.
type setScan struct {
	start, end, expire                                        int64
	avail, copyOnly                                           int
	dbNames, artifacts                                        string
	status, typ, mode, method, initiator, storeStatus, engine string
	set                                                       rdsbackup.BackupSet
	dest                                                      []any
}

func newSetScan() *setScan {
	c := &setScan{}
	s := &c.set
	// Plain strings for the named string types: database/sql converts into
	// *string directly but into *BackupStatus by reflection.
	c.dest = []any{&s.ID, &s.InstanceID, &c.status, &c.start, &c.end, &c.typ, &c.mode, &c.method, &c.initiator,
		&s.Size, &c.avail, &c.storeStatus, &s.MetaStatus, &s.StorageClass, &c.copyOnly, &s.ConsistentTime, &s.Checksum,
		&s.HostInstanceID, &s.Encryption, &c.engine, &s.EngineVersion, &s.ResourceGroupID, &s.Location, &s.Scale,
		&c.dbNames, &c.expire, &s.FailureReason, &s.ObjectKey, &c.artifacts}
	return c
}

// scanBackupSet reads one row of backupColumns into a new set.
func scanBackupSet(row scanner, c *setScan) (*rdsbackup.BackupSet, error) {
	c.set = rdsbackup.BackupSet{}
	if err := row.Scan(c.dest...); err != nil {
		return nil, err
	}
	s := new(rdsbackup.BackupSet)
	*s = c.set
	s.Status, s.Type, s.Mode, s.Method = rdsbackup.BackupStatus(c.status), rdsbackup.BackupType(c.typ), rdsbackup.BackupMode(c.mode), rdsbackup.BackupMethod(c.method)
	s.Initiator, s.StoreStatus, s.Engine = rdsbackup.BackupInitiator(c.initiator), rdsbackup.StoreStatus(c.storeStatus), rdsbackup.Engine(c.engine)
	var err error
	if s.Artifacts, err = columns.DecodeArtifacts(c.artifacts); err != nil {
		return nil, fmt.Errorf("backup set %d: %w", s.ID, err)
	}
	s.StartTime, s.EndTime, s.ExpectExpireTime = fromUnix(c.start), fromUnix(c.end), fromUnix(c.expire)
	s.Available, s.CopyOnly = c.avail == 1, c.copyOnly == 1
	s.DBNames = columns.SplitList(c.dbNames)
	return s, nil
}

// ImportBackupSets stores many sets in one transaction, keeping their ids
// when set; it serves catalog rebuilds and benchmarks, where a transaction
// per set would be needlessly slow.
func (db *DB) ImportBackupSets(ctx context.Context, sets []*rdsbackup.BackupSet) error {
	for _, set := range sets {
		if err := validateBackupSet(set); err != nil {
			return err
		}
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		for _, set := range sets {
			if err := insertBackupSet(ctx, tx, set); err != nil {
				return err
			}
		}
		return nil
	})
}
