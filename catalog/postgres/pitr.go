package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var (
	_ rdsbackup.LogService      = (*DB)(nil)
	_ rdsbackup.RecoveryService = (*DB)(nil)
)

const logFileColumns = `instance_id, name, kind, seq, begin_time, end_time, start_pos, end_pos, raw_size, size, checksum, object_key, status, host_id, created_at`

// args numbers placeholders for a growing WHERE clause.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// PutLogFile records a stored log file. The row lock of an existing row
// orders two nodes storing the same file.
func (db *DB) PutLogFile(ctx context.Context, f *rdsbackup.LogFile) error {
	if f.InstanceID == "" || f.Name == "" || f.ObjectKey == "" {
		return rdsbackup.Errorf(rdsbackup.EINVALID, "log file: instance, name and object key required")
	}
	if f.CreatedAt.IsZero() {
		f.CreatedAt = db.now()
	}
	vals := []any{f.InstanceID, f.Name, f.Kind, f.Seq, columns.Unix(f.BeginTime), columns.Unix(f.EndTime),
		columns.EncodePosition(f.Start), columns.EncodePosition(f.End), f.RawSize, f.Size, f.Checksum, f.ObjectKey,
		string(f.Status), f.HostID, columns.Unix(f.CreatedAt)}
	return db.tx(ctx, func(tx pgx.Tx) error {
		var status, checksum string
		var size int64
		var deleting bool
		err := tx.QueryRow(ctx, `SELECT status, checksum, size, deleting FROM log_files WHERE instance_id = $1 AND name = $2 FOR UPDATE`, f.InstanceID, f.Name).
			Scan(&status, &checksum, &size, &deleting)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("store log file %s: %w", f.Name, err)
		case deleting:
			return rdsbackup.Errorf(rdsbackup.ECONFLICT, "log file %s of %s is being deleted", f.Name, f.InstanceID)
		case status == string(rdsbackup.LogCompleted):
			if f.Status == rdsbackup.LogCompleted && checksum == f.Checksum && size == f.Size {
				return nil
			}
			return rdsbackup.Errorf(rdsbackup.ECONFLICT, "log file %s of %s is already stored complete", f.Name, f.InstanceID)
		}
		_, err = tx.Exec(ctx, `INSERT INTO log_files (`+logFileColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (instance_id, name) DO UPDATE SET kind = excluded.kind, seq = excluded.seq, begin_time = excluded.begin_time,
			end_time = excluded.end_time, start_pos = excluded.start_pos, end_pos = excluded.end_pos, raw_size = excluded.raw_size,
			size = excluded.size, checksum = excluded.checksum, object_key = excluded.object_key, status = excluded.status,
			host_id = excluded.host_id, created_at = excluded.created_at`, vals...)
		if err != nil {
			return fmt.Errorf("store log file %s: %w", f.Name, err)
		}
		return nil
	})
}

func scanLogFiles(rows pgx.Rows) ([]*rdsbackup.LogFile, error) {
	defer rows.Close()
	var out []*rdsbackup.LogFile
	for rows.Next() {
		var f rdsbackup.LogFile
		var begin, end, created int64
		var start, stop, status string
		if err := rows.Scan(&f.InstanceID, &f.Name, &f.Kind, &f.Seq, &begin, &end, &start, &stop, &f.RawSize, &f.Size,
			&f.Checksum, &f.ObjectKey, &status, &f.HostID, &created); err != nil {
			return nil, err
		}
		var err error
		if f.Start, err = columns.DecodePosition(start); err != nil {
			return nil, err
		}
		if f.End, err = columns.DecodePosition(stop); err != nil {
			return nil, err
		}
		f.Status = rdsbackup.LogFileStatus(status)
		f.BeginTime, f.EndTime, f.CreatedAt = columns.FromUnix(begin), columns.FromUnix(end), columns.FromUnix(created)
		out = append(out, &f)
	}
	return out, rows.Err()
}

// FindLogFiles returns a page of matching files in Seq order.
func (db *DB) FindLogFiles(ctx context.Context, f rdsbackup.LogFileFilter) ([]*rdsbackup.LogFile, int, error) {
	var a args
	where := []string{"NOT deleting"}
	if f.InstanceID != "" {
		where = append(where, "instance_id = "+a.add(f.InstanceID))
	}
	if f.Name != "" {
		where = append(where, "name = "+a.add(f.Name))
	}
	if !f.StartTime.IsZero() {
		where = append(where, "end_time >= "+a.add(f.StartTime.Unix()))
	}
	if !f.EndTime.IsZero() {
		where = append(where, "begin_time <= "+a.add(f.EndTime.Unix()))
	}
	if len(f.Statuses) > 0 {
		var ss []string
		for _, s := range f.Statuses {
			ss = append(ss, string(s))
		}
		where = append(where, "status = ANY("+a.add(ss)+")")
	}
	cond := " WHERE " + strings.Join(where, " AND ")
	var total int
	if err := db.pool.QueryRow(ctx, `SELECT COUNT(*) FROM log_files`+cond, a...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count log files: %w", err)
	}
	q := `SELECT ` + logFileColumns + ` FROM log_files` + cond + ` ORDER BY instance_id, kind DESC, seq, name`
	if f.Limit > 0 {
		q += " LIMIT " + a.add(f.Limit)
	}
	q += " OFFSET " + a.add(f.Offset)
	rows, err := db.pool.Query(ctx, q, a...)
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
// returns them; a file another node marked first is not returned.
func (db *DB) MarkLogFilesDeleting(ctx context.Context, instanceID string, upToSeq int64) ([]*rdsbackup.LogFile, error) {
	var out []*rdsbackup.LogFile
	err := db.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE log_files SET deleting = true WHERE instance_id = $1 AND kind = '' AND seq <= $2 AND NOT deleting RETURNING `+logFileColumns, instanceID, upToSeq)
		if err != nil {
			return err
		}
		out, err = scanLogFiles(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("mark log files of %s deleting: %w", instanceID, err)
	}
	sortLogFiles(out)
	return out, nil
}

func sortLogFiles(fs []*rdsbackup.LogFile) {
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && fs[j].Seq < fs[j-1].Seq; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
}

// FindDeletingLogFiles returns the files whose deletion was started.
func (db *DB) FindDeletingLogFiles(ctx context.Context) ([]*rdsbackup.LogFile, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+logFileColumns+` FROM log_files WHERE deleting ORDER BY instance_id, seq, name`)
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
	tag, err := db.exec(ctx, `DELETE FROM log_files WHERE instance_id = $1 AND name = $2`, instanceID, name)
	if err != nil {
		return fmt.Errorf("delete log file %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no log file %s of %s", name, instanceID)
	}
	return nil
}

// CreateLogGap stores a gap.
func (db *DB) CreateLogGap(ctx context.Context, g *rdsbackup.LogGap) error {
	if g.DetectedAt.IsZero() {
		g.DetectedAt = db.now()
	}
	err := db.pool.QueryRow(ctx, `INSERT INTO log_gaps (instance_id, after_seq, before_seq, from_time, to_time, reason, detected_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		g.InstanceID, g.AfterSeq, g.BeforeSeq, columns.Unix(g.From), columns.Unix(g.To), g.Reason, columns.Unix(g.DetectedAt)).Scan(&g.ID)
	if err != nil {
		return fmt.Errorf("store log gap: %w", diskFull(err))
	}
	return nil
}

// UpdateLogGap stores a gap's end.
func (db *DB) UpdateLogGap(ctx context.Context, g *rdsbackup.LogGap) error {
	tag, err := db.exec(ctx, `UPDATE log_gaps SET before_seq = $1, to_time = $2, reason = $3 WHERE id = $4`,
		g.BeforeSeq, columns.Unix(g.To), g.Reason, g.ID)
	if err != nil {
		return fmt.Errorf("update log gap %d: %w", g.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no log gap %d", g.ID)
	}
	return nil
}

// FindLogGaps returns the instance's gaps, oldest first.
func (db *DB) FindLogGaps(ctx context.Context, instanceID string) ([]*rdsbackup.LogGap, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, instance_id, after_seq, before_seq, from_time, to_time, reason, detected_at FROM log_gaps WHERE instance_id = $1 ORDER BY id`, instanceID)
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
	return db.tx(ctx, func(tx pgx.Tx) error {
		var inst string
		if err := tx.QueryRow(ctx, `SELECT instance_id FROM backup_sets WHERE id = $1`, setID).Scan(&inst); errors.Is(err, pgx.ErrNoRows) {
			return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", setID)
		} else if err != nil {
			return fmt.Errorf("store log positions of set %d: %w", setID, err)
		}
		for part, p := range positions {
			if _, err := tx.Exec(ctx, `INSERT INTO set_log_positions (set_id, part, instance_id, position) VALUES ($1, $2, $3, $4)
				ON CONFLICT (set_id, part) DO UPDATE SET position = excluded.position`, setID, part, inst, columns.EncodePosition(p)); err != nil {
				return fmt.Errorf("store log positions of set %d: %w", setID, err)
			}
		}
		return nil
	})
}

// FindSetLogPositions returns the positions of the instance's sets.
func (db *DB) FindSetLogPositions(ctx context.Context, instanceID string) (map[int64]map[string]rdsbackup.LogPosition, error) {
	rows, err := db.pool.Query(ctx, `SELECT set_id, part, position FROM set_log_positions WHERE instance_id = $1`, instanceID)
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

// LogStreamServerID returns the instance's replication server id. Two
// nodes assigning ids at once may pick the same; the unique constraint
// refuses the second, which tries again.
func (db *DB) LogStreamServerID(ctx context.Context, instanceID string) (uint32, error) {
	var id int64
	var err error
	for try := 0; try < 5; try++ {
		err = db.tx(ctx, func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, `SELECT server_id FROM log_streams WHERE instance_id = $1`, instanceID).Scan(&id)
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			return tx.QueryRow(ctx, `INSERT INTO log_streams (instance_id, server_id)
				SELECT $1, COALESCE(MIN(server_id), 4294967296) - 1 FROM log_streams RETURNING server_id`, instanceID).Scan(&id)
		})
		if code, _ := pgCode(err); code != uniqueViolation {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("server id of %s: %w", instanceID, err)
	}
	return uint32(id), nil
}

const recoveryColumns = `id, source_id, target_id, backup_id, restore_time, db_names, status, progress, error, created_at, updated_at`

// CreateRecovery stores a recovery job; the partial unique index
// recoveries_one_per_target refuses a second unfinished one for a target.
func (db *DB) CreateRecovery(ctx context.Context, job *rdsbackup.RecoveryJob) error {
	now := db.now()
	err := db.pool.QueryRow(ctx, `INSERT INTO recoveries (source_id, target_id, backup_id, restore_time, db_names, status, progress, error, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`, job.SourceID, job.TargetID, job.BackupID, columns.Unix(job.RestoreTime),
		columns.EncodeNameMap(job.Databases), string(job.Status), job.Progress, job.Error, columns.Unix(now), columns.Unix(now)).Scan(&job.ID)
	if code, constraint := pgCode(err); code == uniqueViolation && constraint == "recoveries_one_per_target" {
		return rdsbackup.Errorf(rdsbackup.ECONFLICT, "instance %s is already being restored", job.TargetID)
	} else if err != nil {
		return fmt.Errorf("create recovery: %w", diskFull(err))
	}
	job.CreatedAt, job.UpdatedAt = now, now
	return nil
}

// UpdateRecovery stores a recovery's progress and outcome.
func (db *DB) UpdateRecovery(ctx context.Context, job *rdsbackup.RecoveryJob) error {
	job.UpdatedAt = db.now()
	tag, err := db.exec(ctx, `UPDATE recoveries SET backup_id = $1, status = $2, progress = $3, error = $4, updated_at = $5 WHERE id = $6`,
		job.BackupID, string(job.Status), job.Progress, job.Error, columns.Unix(job.UpdatedAt), job.ID)
	if err != nil {
		return fmt.Errorf("update recovery %d: %w", job.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "recovery %d not found", job.ID)
	}
	return nil
}

// FindRecoveries returns matching recovery jobs, newest first.
func (db *DB) FindRecoveries(ctx context.Context, f rdsbackup.RecoveryFilter) ([]*rdsbackup.RecoveryJob, error) {
	var a args
	var where []string
	if f.ID != nil {
		where = append(where, "id = "+a.add(*f.ID))
	}
	if f.InstanceID != "" {
		p := a.add(f.InstanceID)
		where = append(where, "(source_id = "+p+" OR target_id = "+p+")")
	}
	if f.TargetID != "" {
		where = append(where, "target_id = "+a.add(f.TargetID))
	}
	if len(f.Statuses) > 0 {
		var ss []string
		for _, s := range f.Statuses {
			ss = append(ss, string(s))
		}
		where = append(where, "status = ANY("+a.add(ss)+")")
	}
	q := `SELECT ` + recoveryColumns + ` FROM recoveries`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC"
	if f.Limit > 0 {
		q += " LIMIT " + a.add(f.Limit)
	}
	rows, err := db.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("find recoveries: %w", err)
	}
	defer rows.Close()
	var out []*rdsbackup.RecoveryJob
	for rows.Next() {
		var j rdsbackup.RecoveryJob
		var rt, created, updated int64
		var names, status string
		if err := rows.Scan(&j.ID, &j.SourceID, &j.TargetID, &j.BackupID, &rt, &names, &status, &j.Progress, &j.Error, &created, &updated); err != nil {
			return nil, fmt.Errorf("find recoveries: %w", err)
		}
		if j.Databases, err = columns.DecodeNameMap(names); err != nil {
			return nil, err
		}
		j.Status = rdsbackup.JobStatus(status)
		j.RestoreTime, j.CreatedAt, j.UpdatedAt = columns.FromUnix(rt), columns.FromUnix(created), columns.FromUnix(updated)
		out = append(out, &j)
	}
	return out, rows.Err()
}
