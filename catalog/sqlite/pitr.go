package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var (
	_ rdsbackup.LogService      = (*DB)(nil)
	_ rdsbackup.RecoveryService = (*DB)(nil)
)

const logFileColumns = `instance_id, name, kind, seq, begin_time, end_time, start_pos, end_pos, raw_size, size, checksum, object_key, status, host_id, created_at`

// PutLogFile records a stored log file.
func (db *DB) PutLogFile(ctx context.Context, f *rdsbackup.LogFile) error {
	if f.InstanceID == "" || f.Name == "" || f.ObjectKey == "" {
		return rdsbackup.Errorf(rdsbackup.EINVALID, "log file: instance, name and object key required")
	}
	if f.CreatedAt.IsZero() {
		f.CreatedAt = db.now()
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		var status, checksum string
		var size int64
		var deleting int
		err := tx.QueryRowContext(ctx, `SELECT status, checksum, size, deleting FROM log_files WHERE instance_id = ? AND name = ?`, f.InstanceID, f.Name).
			Scan(&status, &checksum, &size, &deleting)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("store log file %s: %w", f.Name, err)
		case deleting != 0:
			return rdsbackup.Errorf(rdsbackup.ECONFLICT, "log file %s of %s is being deleted", f.Name, f.InstanceID)
		case status == string(rdsbackup.LogCompleted):
			if f.Status == rdsbackup.LogCompleted && checksum == f.Checksum && size == f.Size {
				return nil
			}
			return rdsbackup.Errorf(rdsbackup.ECONFLICT, "log file %s of %s is already stored complete", f.Name, f.InstanceID)
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO log_files (`+logFileColumns+`, deleting) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
			f.InstanceID, f.Name, f.Kind, f.Seq, columns.Unix(f.BeginTime), columns.Unix(f.EndTime),
			columns.EncodePosition(f.Start), columns.EncodePosition(f.End), f.RawSize, f.Size, f.Checksum, f.ObjectKey,
			string(f.Status), f.HostID, columns.Unix(f.CreatedAt))
		if err != nil {
			return fmt.Errorf("store log file %s: %w", f.Name, err)
		}
		return nil
	})
}

func scanLogFiles(rows *sql.Rows) ([]*rdsbackup.LogFile, error) {
	defer rows.Close()
	var out []*rdsbackup.LogFile
	for rows.Next() {
		var f rdsbackup.LogFile
		var begin, end, created int64
		var start, stop string
		if err := rows.Scan(&f.InstanceID, &f.Name, &f.Kind, &f.Seq, &begin, &end, &start, &stop, &f.RawSize, &f.Size,
			&f.Checksum, &f.ObjectKey, &f.Status, &f.HostID, &created); err != nil {
			return nil, err
		}
		var err error
		if f.Start, err = columns.DecodePosition(start); err != nil {
			return nil, err
		}
		if f.End, err = columns.DecodePosition(stop); err != nil {
			return nil, err
		}
		f.BeginTime, f.EndTime, f.CreatedAt = columns.FromUnix(begin), columns.FromUnix(end), columns.FromUnix(created)
		out = append(out, &f)
	}
	return out, rows.Err()
}

// FindLogFiles returns a page of matching files in Seq order.
func (db *DB) FindLogFiles(ctx context.Context, f rdsbackup.LogFileFilter) ([]*rdsbackup.LogFile, int, error) {
	where := []string{"deleting = 0"}
	var args []any
	if f.InstanceID != "" {
		where, args = append(where, "instance_id = ?"), append(args, f.InstanceID)
	}
	if f.Name != "" {
		where, args = append(where, "name = ?"), append(args, f.Name)
	}
	if !f.StartTime.IsZero() {
		where, args = append(where, "end_time >= ?"), append(args, f.StartTime.Unix())
	}
	if !f.EndTime.IsZero() {
		where, args = append(where, "begin_time <= ?"), append(args, f.EndTime.Unix())
	}
	if len(f.Statuses) > 0 {
		where, args = appendIn(where, args, "status", f.Statuses)
	}
	cond := " WHERE " + strings.Join(where, " AND ")
	var total int
	if err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM log_files`+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count log files: %w", err)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+logFileColumns+` FROM log_files`+cond+` ORDER BY instance_id, kind DESC, seq, name LIMIT ? OFFSET ?`,
		append(args, limit, f.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("find log files: %w", err)
	}
	files, err := scanLogFiles(rows)
	if err != nil {
		return nil, 0, fmt.Errorf("find log files: %w", err)
	}
	return files, total, nil
}

// MarkLogFilesDeleting hides the instance's files up to upToSeq and
// returns them.
func (db *DB) MarkLogFilesDeleting(ctx context.Context, instanceID string, upToSeq int64) ([]*rdsbackup.LogFile, error) {
	var out []*rdsbackup.LogFile
	err := db.update(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+logFileColumns+` FROM log_files WHERE instance_id = ? AND kind = '' AND seq <= ? AND deleting = 0 ORDER BY seq`, instanceID, upToSeq)
		if err != nil {
			return err
		}
		if out, err = scanLogFiles(rows); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE log_files SET deleting = 1 WHERE instance_id = ? AND kind = '' AND seq <= ? AND deleting = 0`, instanceID, upToSeq)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("mark log files of %s deleting: %w", instanceID, err)
	}
	return out, nil
}

// FindDeletingLogFiles returns the files whose deletion was started.
func (db *DB) FindDeletingLogFiles(ctx context.Context) ([]*rdsbackup.LogFile, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+logFileColumns+` FROM log_files WHERE deleting = 1 ORDER BY instance_id, seq, name`)
	if err != nil {
		return nil, fmt.Errorf("find deleting log files: %w", err)
	}
	out, err := scanLogFiles(rows)
	if err != nil {
		return nil, fmt.Errorf("find deleting log files: %w", err)
	}
	return out, nil
}

// DeleteLogFile removes a file's row.
func (db *DB) DeleteLogFile(ctx context.Context, instanceID, name string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM log_files WHERE instance_id = ? AND name = ?`, instanceID, name)
		if err != nil {
			return fmt.Errorf("delete log file %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no log file %s of %s", name, instanceID)
		}
		return nil
	})
}

// CreateLogGap stores a gap.
func (db *DB) CreateLogGap(ctx context.Context, g *rdsbackup.LogGap) error {
	if g.DetectedAt.IsZero() {
		g.DetectedAt = db.now()
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO log_gaps (instance_id, after_seq, before_seq, from_time, to_time, reason, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			g.InstanceID, g.AfterSeq, g.BeforeSeq, columns.Unix(g.From), columns.Unix(g.To), g.Reason, columns.Unix(g.DetectedAt))
		if err != nil {
			return fmt.Errorf("store log gap: %w", err)
		}
		g.ID, err = res.LastInsertId()
		return err
	})
}

// UpdateLogGap stores a gap's end.
func (db *DB) UpdateLogGap(ctx context.Context, g *rdsbackup.LogGap) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE log_gaps SET before_seq = ?, to_time = ?, reason = ? WHERE id = ?`,
			g.BeforeSeq, columns.Unix(g.To), g.Reason, g.ID)
		if err != nil {
			return fmt.Errorf("update log gap %d: %w", g.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no log gap %d", g.ID)
		}
		return nil
	})
}

// FindLogGaps returns the instance's gaps, oldest first.
func (db *DB) FindLogGaps(ctx context.Context, instanceID string) ([]*rdsbackup.LogGap, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, instance_id, after_seq, before_seq, from_time, to_time, reason, detected_at FROM log_gaps WHERE instance_id = ? ORDER BY id`, instanceID)
	if err != nil {
		return nil, fmt.Errorf("find log gaps: %w", err)
	}
	defer rows.Close()
	var out []*rdsbackup.LogGap
	for rows.Next() {
		var g rdsbackup.LogGap
		var from, to, detected int64
		if err := rows.Scan(&g.ID, &g.InstanceID, &g.AfterSeq, &g.BeforeSeq, &from, &to, &g.Reason, &detected); err != nil {
			return nil, fmt.Errorf("find log gaps: %w", err)
		}
		g.From, g.To, g.DetectedAt = columns.FromUnix(from), columns.FromUnix(to), columns.FromUnix(detected)
		out = append(out, &g)
	}
	return out, rows.Err()
}

// PutSetLogPositions records the log positions of a set's parts.
func (db *DB) PutSetLogPositions(ctx context.Context, setID int64, positions map[string]rdsbackup.LogPosition) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		var inst string
		if err := tx.QueryRowContext(ctx, `SELECT instance_id FROM backup_sets WHERE id = ?`, setID).Scan(&inst); errors.Is(err, sql.ErrNoRows) {
			return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", setID)
		} else if err != nil {
			return fmt.Errorf("store log positions of set %d: %w", setID, err)
		}
		for part, p := range positions {
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO set_log_positions (set_id, part, instance_id, position) VALUES (?, ?, ?, ?)`,
				setID, part, inst, columns.EncodePosition(p)); err != nil {
				return fmt.Errorf("store log positions of set %d: %w", setID, err)
			}
		}
		return nil
	})
}

// FindSetLogPositions returns the positions of the instance's sets.
func (db *DB) FindSetLogPositions(ctx context.Context, instanceID string) (map[int64]map[string]rdsbackup.LogPosition, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT set_id, part, position FROM set_log_positions WHERE instance_id = ?`, instanceID)
	if err != nil {
		return nil, fmt.Errorf("find log positions: %w", err)
	}
	defer rows.Close()
	out := map[int64]map[string]rdsbackup.LogPosition{}
	for rows.Next() {
		var id int64
		var part, pos string
		if err := rows.Scan(&id, &part, &pos); err != nil {
			return nil, fmt.Errorf("find log positions: %w", err)
		}
		p, err := columns.DecodePosition(pos)
		if err != nil {
			return nil, err
		}
		if out[id] == nil {
			out[id] = map[string]rdsbackup.LogPosition{}
		}
		out[id][part] = p
	}
	return out, rows.Err()
}

// LogStreamServerID returns the instance's replication server id.
func (db *DB) LogStreamServerID(ctx context.Context, instanceID string) (uint32, error) {
	var id int64
	err := db.update(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT server_id FROM log_streams WHERE instance_id = ?`, instanceID).Scan(&id)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO log_streams (instance_id, server_id)
			SELECT ?, COALESCE(MIN(server_id), 4294967296) - 1 FROM log_streams RETURNING server_id`, instanceID).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("server id of %s: %w", instanceID, err)
	}
	return uint32(id), nil
}

const recoveryColumns = `id, source_id, target_id, backup_id, restore_time, db_names, status, progress, error, created_at, updated_at`

// CreateRecovery stores a recovery job.
func (db *DB) CreateRecovery(ctx context.Context, job *rdsbackup.RecoveryJob) error {
	now := db.now()
	job.CreatedAt, job.UpdatedAt = now, now
	return db.update(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM recoveries WHERE target_id = ? AND status NOT IN ('Finished', 'Failed')`, job.TargetID).Scan(&n); err != nil {
			return fmt.Errorf("create recovery: %w", err)
		} else if n > 0 {
			return rdsbackup.Errorf(rdsbackup.ECONFLICT, "instance %s is already being restored", job.TargetID)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO recoveries (source_id, target_id, backup_id, restore_time, db_names, status, progress, error, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, job.SourceID, job.TargetID, job.BackupID, columns.Unix(job.RestoreTime),
			columns.EncodeNameMap(job.Databases), string(job.Status), job.Progress, job.Error, columns.Unix(now), columns.Unix(now))
		if err != nil {
			return fmt.Errorf("create recovery: %w", err)
		}
		job.ID, err = res.LastInsertId()
		return err
	})
}

// UpdateRecovery stores a recovery's progress and outcome.
func (db *DB) UpdateRecovery(ctx context.Context, job *rdsbackup.RecoveryJob) error {
	job.UpdatedAt = db.now()
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE recoveries SET backup_id = ?, status = ?, progress = ?, error = ?, updated_at = ? WHERE id = ?`,
			job.BackupID, string(job.Status), job.Progress, job.Error, columns.Unix(job.UpdatedAt), job.ID)
		if err != nil {
			return fmt.Errorf("update recovery %d: %w", job.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "recovery %d not found", job.ID)
		}
		return nil
	})
}

// FindRecoveries returns matching recovery jobs, newest first.
func (db *DB) FindRecoveries(ctx context.Context, f rdsbackup.RecoveryFilter) ([]*rdsbackup.RecoveryJob, error) {
	var where []string
	var args []any
	if f.ID != nil {
		where, args = append(where, "id = ?"), append(args, *f.ID)
	}
	if f.InstanceID != "" {
		where, args = append(where, "(source_id = ? OR target_id = ?)"), append(args, f.InstanceID, f.InstanceID)
	}
	if f.TargetID != "" {
		where, args = append(where, "target_id = ?"), append(args, f.TargetID)
	}
	if len(f.Statuses) > 0 {
		where, args = appendIn(where, args, "status", f.Statuses)
	}
	q := `SELECT ` + recoveryColumns + ` FROM recoveries`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("find recoveries: %w", err)
	}
	defer rows.Close()
	var out []*rdsbackup.RecoveryJob
	for rows.Next() {
		var j rdsbackup.RecoveryJob
		var rt, created, updated int64
		var names string
		if err := rows.Scan(&j.ID, &j.SourceID, &j.TargetID, &j.BackupID, &rt, &names, &j.Status, &j.Progress, &j.Error, &created, &updated); err != nil {
			return nil, fmt.Errorf("find recoveries: %w", err)
		}
		if j.Databases, err = columns.DecodeNameMap(names); err != nil {
			return nil, err
		}
		j.RestoreTime, j.CreatedAt, j.UpdatedAt = columns.FromUnix(rt), columns.FromUnix(created), columns.FromUnix(updated)
		out = append(out, &j)
	}
	return out, rows.Err()
}
