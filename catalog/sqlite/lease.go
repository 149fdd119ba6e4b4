package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var _ rdsbackup.LeaseService = (*DB)(nil)

// AcquireLease takes or renews name for node: one upsert, which keeps the
// row when another node's lease still runs.
func (db *DB) AcquireLease(ctx context.Context, name, node string, now, until time.Time) (bool, error) {
	var held bool
	err := db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO leases (name, node_id, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET node_id = excluded.node_id, expires_at = excluded.expires_at
			WHERE leases.node_id = excluded.node_id OR leases.expires_at <= ?`,
			name, node, columns.Millis(until), columns.Millis(now))
		if err != nil {
			return fmt.Errorf("acquire lease %s: %w", name, err)
		}
		n, _ := res.RowsAffected()
		held = n > 0
		return nil
	})
	return held, err
}

// ReleaseLease frees name if node holds it.
func (db *DB) ReleaseLease(ctx context.Context, name, node string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND node_id = ?`, name, node); err != nil {
			return fmt.Errorf("release lease %s: %w", name, err)
		}
		return nil
	})
}
