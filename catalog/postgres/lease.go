package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var _ rdsbackup.LeaseService = (*DB)(nil)

// AcquireLease takes or renews name for node: one upsert, which keeps the
// row when another node's lease still runs. Two nodes racing on a free or
// expired row serialize on its lock, and the second sees the first's
// lease.
func (db *DB) AcquireLease(ctx context.Context, name, node string, now, until time.Time) (bool, error) {
	tag, err := db.exec(ctx, `INSERT INTO leases (name, node_id, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET node_id = excluded.node_id, expires_at = excluded.expires_at
		WHERE leases.node_id = excluded.node_id OR leases.expires_at <= $4`,
		name, node, columns.Millis(until), columns.Millis(now))
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return tag.RowsAffected() > 0, nil
}

// ReleaseLease frees name if node holds it.
func (db *DB) ReleaseLease(ctx context.Context, name, node string) error {
	if _, err := db.exec(ctx, `DELETE FROM leases WHERE name = $1 AND node_id = $2`, name, node); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
