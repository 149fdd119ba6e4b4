package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var _ rdsbackup.InstanceService = (*DB)(nil)

const instanceColumns = `id, engine, engine_version, dsn, description, created_at, updated_at`

// FindInstance returns the registered instance with that id.
func (db *DB) FindInstance(ctx context.Context, id string) (*rdsbackup.Instance, error) {
	inst, err := db.scanInstance(db.pool.QueryRow(ctx, `SELECT `+instanceColumns+` FROM instances WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "instance %q not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("find instance %s: %w", id, err)
	}
	return inst, nil
}

// FindInstances returns a page of instances in id order and the total count.
func (db *DB) FindInstances(ctx context.Context, offset, limit int) ([]*rdsbackup.Instance, int, error) {
	var total int
	if err := db.pool.QueryRow(ctx, `SELECT COUNT(*) FROM instances`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count instances: %w", err)
	}
	var lim any // NULL: no limit
	if limit > 0 {
		lim = limit
	}
	rows, err := db.pool.Query(ctx, `SELECT `+instanceColumns+` FROM instances ORDER BY id LIMIT $1 OFFSET $2`, lim, offset)
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

// SyncInstances makes the registered instances equal to instances, in one
// statement of each kind whatever their number.
func (db *DB) SyncInstances(ctx context.Context, instances []*rdsbackup.Instance) error {
	now := columns.Unix(db.now())
	ids := make([]string, len(instances))
	engines := make([]string, len(instances))
	versions := make([]string, len(instances))
	dsns := make([][]byte, len(instances))
	descs := make([]string, len(instances))
	for i, inst := range instances {
		dsn, err := db.seal(inst.DSN)
		if err != nil {
			return err
		}
		ids[i], engines[i], versions[i], dsns[i], descs[i] = inst.ID, string(inst.Engine), inst.EngineVersion, dsn, inst.Description
	}
	return db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO instances (id, engine, engine_version, dsn, description, created_at, updated_at)
			SELECT id, engine, engine_version, dsn, description, $6, $6
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[]) AS i (id, engine, engine_version, dsn, description)
			ON CONFLICT (id) DO UPDATE SET
				engine = excluded.engine,
				engine_version = CASE WHEN instances.engine = excluded.engine THEN instances.engine_version ELSE '' END,
				dsn = excluded.dsn, description = excluded.description, updated_at = excluded.updated_at`,
			ids, engines, versions, dsns, descs, now); err != nil {
			return fmt.Errorf("register instances: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM instances WHERE id <> ALL($1::text[])`, ids); err != nil {
			return fmt.Errorf("unregister instances: %w", err)
		}
		return nil
	})
}

// SetEngineVersion records the version read from the server.
func (db *DB) SetEngineVersion(ctx context.Context, id, version string) error {
	tag, err := db.exec(ctx, `UPDATE instances SET engine_version = $1, updated_at = $2 WHERE id = $3`, version, columns.Unix(db.now()), id)
	if err != nil {
		return fmt.Errorf("set engine version of %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "instance %q not found", id)
	}
	return nil
}

func (db *DB) scanInstance(row pgx.Row) (*rdsbackup.Instance, error) {
	var inst rdsbackup.Instance
	var engine string
	var dsn []byte
	var created, updated int64
	if err := row.Scan(&inst.ID, &engine, &inst.EngineVersion, &dsn, &inst.Description, &created, &updated); err != nil {
		return nil, err
	}
	var err error
	if inst.DSN, err = db.dsns.Open(dsn); err != nil {
		return nil, fmt.Errorf("open secret: %w", err)
	}
	inst.Engine = rdsbackup.Engine(engine)
	inst.CreatedAt, inst.UpdatedAt = columns.FromUnix(created), columns.FromUnix(updated)
	return &inst, nil
}
