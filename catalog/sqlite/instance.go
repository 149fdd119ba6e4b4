package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var _ rdsbackup.InstanceService = (*DB)(nil)

const instanceColumns = `id, engine, engine_version, dsn, description, created_at, updated_at`

// FindInstance returns the registered instance with that id. Its DSN is
// opened through a cache keyed by the sealed bytes (every DescribeBackups
// looks its instance up), which another process's writes cannot make stale.
func (db *DB) FindInstance(ctx context.Context, id string) (*rdsbackup.Instance, error) {
	s, err := db.stmt(ctx, `SELECT `+instanceColumns+` FROM instances WHERE id = ?`)
	if err != nil {
		return nil, fmt.Errorf("find instance: %w", err)
	}
	inst, err := db.scanInstance(s.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "instance %s not found", rdsbackup.QuoteValue(id))
	} else if err != nil {
		return nil, fmt.Errorf("find instance %s: %w", id, err)
	}
	return inst, nil
}

// FindInstances returns a page of instances in id order and the total count.
func (db *DB) FindInstances(ctx context.Context, offset, limit int) ([]*rdsbackup.Instance, int, error) {
	var total int
	if err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM instances`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count instances: %w", err)
	}
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+instanceColumns+` FROM instances ORDER BY id LIMIT ? OFFSET ?`, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("find instances: %w", err)
	}
	defer rows.Close()
	var out []*rdsbackup.Instance
	for rows.Next() {
		inst, err := db.scanInstance(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("find instances: %w", err)
		}
		out = append(out, inst)
	}
	return out, total, rows.Err()
}

// SyncInstances makes the registered instances equal to instances.
func (db *DB) SyncInstances(ctx context.Context, instances []*rdsbackup.Instance) error {
	now := columns.Unix(db.now())
	return db.update(ctx, func(tx *sql.Tx) error {
		keep := map[string]bool{}
		for _, inst := range instances {
			dsn, err := db.seal(inst.DSN)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO instances (id, engine, engine_version, dsn, description, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (id) DO UPDATE SET
					engine = excluded.engine,
					engine_version = CASE WHEN instances.engine = excluded.engine THEN instances.engine_version ELSE '' END,
					dsn = excluded.dsn, description = excluded.description, updated_at = excluded.updated_at`,
				inst.ID, string(inst.Engine), inst.EngineVersion, dsn, inst.Description, now, now); err != nil {
				return fmt.Errorf("register instance %s: %w", inst.ID, err)
			}
			keep[inst.ID] = true
		}
		rows, err := tx.QueryContext(ctx, `SELECT id FROM instances`)
		if err != nil {
			return err
		}
		var gone []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			if !keep[id] {
				gone = append(gone, id)
			}
		}
		rows.Close()
		for _, id := range gone {
			if _, err := tx.ExecContext(ctx, `DELETE FROM instances WHERE id = ?`, id); err != nil {
				return fmt.Errorf("unregister instance %s: %w", id, err)
			}
		}
		return nil
	})
}

// SetEngineVersion records the version read from the server.
func (db *DB) SetEngineVersion(ctx context.Context, id, version string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE instances SET engine_version = ?, updated_at = ? WHERE id = ?`, version, columns.Unix(db.now()), id)
		if err != nil {
			return fmt.Errorf("set engine version of %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "instance %s not found", rdsbackup.QuoteValue(id))
		}
		return nil
	})
}

type scanner interface{ Scan(dest ...any) error }

func (db *DB) scanInstance(row scanner) (*rdsbackup.Instance, error) {
	var inst rdsbackup.Instance
	var dsn []byte
	var created, updated int64
	if err := row.Scan(&inst.ID, &inst.Engine, &inst.EngineVersion, &dsn, &inst.Description, &created, &updated); err != nil {
		return nil, err
	}
	var err error
	if inst.DSN, err = db.dsns.Open(dsn); err != nil {
		return nil, fmt.Errorf("open secret: %w", err)
	}
	inst.CreatedAt, inst.UpdatedAt = columns.FromUnix(created), columns.FromUnix(updated)
	return &inst, nil
}
