package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var _ rdsbackup.PolicyService = (*DB)(nil)

const policyRowColumns = columns.BackupPolicyColumns

// FindBackupPolicy returns an instance's stored policy.
func (db *DB) FindBackupPolicy(ctx context.Context, instanceID string) (*rdsbackup.BackupPolicy, error) {
	p, err := columns.ScanBackupPolicy(db.read.QueryRowContext(ctx, `SELECT `+policyRowColumns+` FROM backup_policies WHERE instance_id = ?`, instanceID).Scan, true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no backup policy stored for %s", rdsbackup.QuoteValue(instanceID))
	} else if err != nil {
		return nil, fmt.Errorf("find backup policy of %s: %w", instanceID, err)
	}
	return p, nil
}

// FindBackupPolicies returns every stored policy.
func (db *DB) FindBackupPolicies(ctx context.Context) ([]*rdsbackup.BackupPolicy, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+policyRowColumns+` FROM backup_policies ORDER BY instance_id`)
	if err != nil {
		return nil, fmt.Errorf("find backup policies: %w", err)
	}
	defer rows.Close()
	var out []*rdsbackup.BackupPolicy
	for rows.Next() {
		p, err := columns.ScanBackupPolicy(rows.Scan, true)
		if err != nil {
			return nil, fmt.Errorf("find backup policies: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PutBackupPolicy stores a policy and recomputes the expiry of the
// instance's automated sets from its retention, in one transaction.
func (db *DB) PutBackupPolicy(ctx context.Context, p *rdsbackup.BackupPolicy) error {
	return db.PutBackupPolicies(ctx, []*rdsbackup.BackupPolicy{p})
}

// PutBackupPolicies stores many policies in one transaction (a first start
// with thousands of instances must not fsync once per instance).
func (db *DB) PutBackupPolicies(ctx context.Context, ps []*rdsbackup.BackupPolicy) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		for _, p := range ps {
			if err := putBackupPolicy(ctx, tx, p, db.now()); err != nil {
				return err
			}
		}
		return nil
	})
}

func putBackupPolicy(ctx context.Context, tx *sql.Tx, p *rdsbackup.BackupPolicy, now time.Time) error {
	days, err := json.Marshal(p.Days)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO backup_policies (`+policyRowColumns+`, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.InstanceID, p.Window, string(days), p.RetentionDays, string(p.Method), boolInt(p.EnableBackupLog),
		p.LogBackupRetentionPeriod, p.LocalLogRetentionHours, p.LocalLogRetentionSpace, p.HighSpaceUsageProtection,
		p.LogBackupLocalRetentionNumber, p.LogBackupFrequency, p.CompressType, p.BackupInterval, p.Category,
		p.ReleasedKeepPolicy, columns.Unix(p.Since), p.Source, p.ConfigHash, columns.Unix(now)); err != nil {
		return fmt.Errorf("store backup policy of %s: %w", p.InstanceID, err)
	}
	// Only the sets whose expiry changes, so that storing an unchanged
	// retention writes no page.
	if _, err := tx.ExecContext(ctx, `UPDATE backup_sets SET expect_expire_time = end_time + ?1
		WHERE instance_id = ?2 AND mode = ?3 AND end_time > 0 AND expect_expire_time <> end_time + ?1`,
		int64(p.RetentionDays)*int64(24*time.Hour/time.Second), p.InstanceID, string(rdsbackup.BackupAutomated)); err != nil {
		return fmt.Errorf("recompute expiry of %s: %w", p.InstanceID, err)
	}
	return nil
}

// FindLastWindows returns, per instance, the start of the latest schedule
// window an automated job was started for.
func (db *DB) FindLastWindows(ctx context.Context) (map[string]time.Time, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT instance_id, MAX(window_start) FROM jobs WHERE window_start > 0 GROUP BY instance_id`)
	if err != nil {
		return nil, fmt.Errorf("find last windows: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var w int64
		if err := rows.Scan(&id, &w); err != nil {
			return nil, err
		}
		out[id] = columns.FromUnix(w)
	}
	return out, rows.Err()
}

// FindExpiredBackupSets returns sets whose ExpectExpireTime has passed,
// oldest first, never an instance's newest successful set (which is kept
// whatever its age, so an instance always has a backup to restore).
func (db *DB) FindExpiredBackupSets(ctx context.Context, now time.Time, limit int) ([]*rdsbackup.BackupSet, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+backupColumns+` FROM backup_sets s
		WHERE deleting = 0 AND expect_expire_time > 0 AND expect_expire_time <= ?
		AND NOT (status = 'Success' AND id = (
			SELECT id FROM backup_sets n WHERE n.instance_id = s.instance_id AND n.status = 'Success' AND n.deleting = 0
			ORDER BY n.start_time DESC, n.id DESC LIMIT 1))
		ORDER BY expect_expire_time, id LIMIT ?`, now.Unix(), limit)
	if err != nil {
		return nil, fmt.Errorf("find expired backup sets: %w", err)
	}
	return db.collectSets(ctx, rows)
}

// MarkBackupSetsDeleting hides sets from every query and records that
// their deletion is under way, all or none.
func (db *DB) MarkBackupSetsDeleting(ctx context.Context, ids []int64) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			res, err := tx.ExecContext(ctx, `UPDATE backup_sets SET deleting = 1 WHERE id = ? AND deleting = 0`, id)
			if err != nil {
				return fmt.Errorf("mark backup set %d deleting: %w", id, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", id)
			}
		}
		return nil
	})
}

// FindDeletingBackupSets returns the sets whose deletion was started.
func (db *DB) FindDeletingBackupSets(ctx context.Context) ([]*rdsbackup.BackupSet, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+backupColumns+` FROM backup_sets WHERE deleting = 1 ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("find deleting backup sets: %w", err)
	}
	return db.collectSets(ctx, rows)
}

func (db *DB) collectSets(ctx context.Context, rows *sql.Rows) ([]*rdsbackup.BackupSet, error) {
	defer rows.Close()
	var sets []*rdsbackup.BackupSet
	scan := columns.NewSetRow(true)
	for rows.Next() {
		set, err := scanBackupSet(rows, scan)
		if err != nil {
			return nil, err
		}
		sets = append(sets, set)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	return sets, nil
}
