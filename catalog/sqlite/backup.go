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

const backupColumns = columns.BackupColumns

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
	scan := columns.NewSetRow(true)
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
	set, err := scanBackupSet(s.QueryRowContext(ctx, id), columns.NewSetRow(true))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("find backup set %d: %w", id, err)
	}
	return set, nil
}

// CreateBackupSet stores a new set with its artifacts.
func (db *DB) CreateBackupSet(ctx context.Context, set *rdsbackup.BackupSet) error {
	if err := rdsbackup.ValidateBackupSet(set); err != nil {
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
	if err := rdsbackup.ValidateBackupSet(set); err != nil {
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

func backupValues(s *rdsbackup.BackupSet) []any {
	return columns.SetValues(s, func(b bool) any { return boolInt(b) })
}

// scanBackupSet reads one row of backupColumns into a new set.
func scanBackupSet(row scanner, c *columns.SetRow) (*rdsbackup.BackupSet, error) {
	return c.Scan(row.Scan)
}

// ImportBackupSets stores many sets in one transaction, keeping their ids
// when set; it serves catalog rebuilds and benchmarks, where a transaction
// per set would be needlessly slow.
func (db *DB) ImportBackupSets(ctx context.Context, sets []*rdsbackup.BackupSet) error {
	for _, set := range sets {
		if err := rdsbackup.ValidateBackupSet(set); err != nil {
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

// RecordVerification records a drill's verdict on a set
// (rdsbackup.VerificationRecorder): a failed drill clears available, a
// passed one after a failed one sets it again (it undoes only what a drill
// did).
func (db *DB) RecordVerification(ctx context.Context, id int64, status rdsbackup.VerifyStatus, at time.Time, reason string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE backup_sets SET verify_status = ?, verify_time = ?, verify_reason = ?,
			available = CASE WHEN ? THEN 0 WHEN verify_status = 'Failed' AND object_key != '' THEN 1 ELSE available END
			WHERE id = ? AND deleting = 0`,
			string(status), columns.Unix(at), reason, boolInt(status == rdsbackup.VerifyFailed), id)
		if err != nil {
			return fmt.Errorf("record the drill of backup set %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", id)
		}
		return nil
	})
}
