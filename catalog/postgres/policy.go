package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var _ rdsbackup.PolicyService = (*DB)(nil)

const policyRowColumns = columns.BackupPolicyColumns

// FindBackupPolicy returns an instance's stored policy.
func (db *DB) FindBackupPolicy(ctx context.Context, instanceID string) (*rdsbackup.BackupPolicy, error) {
	p, err := columns.ScanBackupPolicy(db.pool.QueryRow(ctx, `SELECT `+policyRowColumns+` FROM backup_policies WHERE instance_id = $1`, instanceID).Scan, false)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no backup policy stored for %q", instanceID)
	} else if err != nil {
		return nil, fmt.Errorf("find backup policy of %s: %w", instanceID, err)
	}
	return p, nil
}

// FindBackupPolicies returns every stored policy.
func (db *DB) FindBackupPolicies(ctx context.Context) ([]*rdsbackup.BackupPolicy, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+policyRowColumns+` FROM backup_policies ORDER BY instance_id`)
	if err != nil {
		return nil, fmt.Errorf("find backup policies: %w", err)
	}
	defer rows.Close()
	var out []*rdsbackup.BackupPolicy
	for rows.Next() {
		p, err := columns.ScanBackupPolicy(rows.Scan, false)
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

// PutBackupPolicies stores many policies in one transaction and one round
// trip (a first start with thousands of instances).
func (db *DB) PutBackupPolicies(ctx context.Context, ps []*rdsbackup.BackupPolicy) error {
	if len(ps) == 0 {
		return nil
	}
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.InstanceID
	}
	slices.Sort(ids)
	now := columns.Unix(db.now())
	return db.tx(ctx, func(tx pgx.Tx) error {
		// The lock that new sets of these instances read their retention
		// under (setExpiries).
		if err := lockPolicies(ctx, tx, slices.Compact(ids)); err != nil {
			return err
		}
		b := &pgx.Batch{}
		for _, p := range ps {
			days, err := json.Marshal(p.Days)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO backup_policies (`+policyRowColumns+`, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
				ON CONFLICT (instance_id) DO UPDATE SET
					window_minute = excluded.window_minute, days = excluded.days, retention_days = excluded.retention_days,
					method = excluded.method, enable_backup_log = excluded.enable_backup_log,
					log_backup_retention_period = excluded.log_backup_retention_period,
					local_log_retention_hours = excluded.local_log_retention_hours,
					local_log_retention_space = excluded.local_log_retention_space,
					high_space_usage_protection = excluded.high_space_usage_protection,
					log_backup_local_retention_number = excluded.log_backup_local_retention_number,
					log_backup_frequency = excluded.log_backup_frequency, compress_type = excluded.compress_type,
					backup_interval = excluded.backup_interval, category = excluded.category,
					released_keep_policy = excluded.released_keep_policy, since = excluded.since,
					source = excluded.source, config_hash = excluded.config_hash, updated_at = excluded.updated_at`,
				p.InstanceID, p.Window, string(days), p.RetentionDays, string(p.Method), p.EnableBackupLog,
				p.LogBackupRetentionPeriod, p.LocalLogRetentionHours, p.LocalLogRetentionSpace, p.HighSpaceUsageProtection,
				p.LogBackupLocalRetentionNumber, p.LogBackupFrequency, p.CompressType, p.BackupInterval, p.Category,
				p.ReleasedKeepPolicy, columns.Unix(p.Since), p.Source, p.ConfigHash, now)
			// Only the sets whose expiry changes: a row version written
			// for nothing costs a page write, index entries and vacuum.
			b.Queue(`UPDATE backup_sets SET expect_expire_time = end_time + $1
				WHERE instance_id = $2 AND mode = $3 AND end_time > 0 AND NOT deleting AND expect_expire_time <> end_time + $1`,
				int64(p.RetentionDays)*int64(24*time.Hour/time.Second), p.InstanceID, string(rdsbackup.BackupAutomated))
		}
		res := tx.SendBatch(ctx, b)
		for _, p := range ps {
			if _, err := res.Exec(); err != nil {
				res.Close()
				return fmt.Errorf("store backup policy of %s: %w", p.InstanceID, err)
			}
			if _, err := res.Exec(); err != nil {
				res.Close()
				return fmt.Errorf("recompute expiry of %s: %w", p.InstanceID, err)
			}
		}
		return res.Close()
	})
}
