package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var _ rdsbackup.JobService = (*DB)(nil)

const jobColumns = `id, instance_id, status, mode, method, strategy, databases, progress, backup_set_id, error, created_at, updated_at, window_start`

// CreateJob stores a new job and assigns its id.
func (db *DB) CreateJob(ctx context.Context, job *rdsbackup.Job) error {
	now := db.now()
	job.CreatedAt, job.UpdatedAt = now, now
	return db.update(ctx, func(tx *sql.Tx) error {
		// A job's id is also the BackupId of the set it makes, so it is taken
		// above every id either table has used.
		if !job.Window.IsZero() {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM jobs WHERE instance_id = ? AND window_start = ?`, job.InstanceID, job.Window.Unix()).Scan(&n); err != nil {
				return fmt.Errorf("create job: %w", err)
			} else if n > 0 {
				return rdsbackup.Errorf(rdsbackup.ECONFLICT, "instance %s already has a job for the window starting %s", job.InstanceID, job.Window.UTC().Format(time.RFC3339))
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, instance_id, status, mode, method, strategy, databases, progress, backup_set_id, error, created_at, updated_at, window_start)
			VALUES (1 + MAX(
				COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0),
				COALESCE((SELECT last FROM backup_set_ids), 0)),
				?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			job.InstanceID, string(job.Status), string(job.Mode), string(job.Method), job.Strategy, columns.JoinList(job.Databases),
			job.Progress, job.BackupSetID, job.Error, columns.Unix(now), columns.Unix(now), columns.Unix(job.Window))
		if err != nil {
			return fmt.Errorf("create job: %w", err)
		}
		job.ID, err = res.LastInsertId()
		return err
	})
}

// UpdateJob stores a job's progress and outcome.
func (db *DB) UpdateJob(ctx context.Context, job *rdsbackup.Job) error {
	job.UpdatedAt = db.now()
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET status = ?, progress = ?, backup_set_id = ?, error = ?, updated_at = ? WHERE id = ?`,
			string(job.Status), job.Progress, job.BackupSetID, job.Error, columns.Unix(job.UpdatedAt), job.ID)
		if err != nil {
			return fmt.Errorf("update job %d: %w", job.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "job %d not found", job.ID)
		}
		return nil
	})
}

// FindJobs returns matching jobs, newest first.
func (db *DB) FindJobs(ctx context.Context, f rdsbackup.JobFilter) ([]*rdsbackup.Job, error) {
	var where []string
	var args []any
	if f.InstanceID != "" {
		where, args = append(where, "instance_id = ?"), append(args, f.InstanceID)
	}
	if f.ID != nil {
		where, args = append(where, "id = ?"), append(args, *f.ID)
	}
	if f.Mode != nil {
		where, args = append(where, "mode = ?"), append(args, string(*f.Mode))
	}
	if len(f.Statuses) > 0 {
		where = append(where, "status IN (?"+strings.Repeat(",?", len(f.Statuses)-1)+")")
		for _, s := range f.Statuses {
			args = append(args, string(s))
		}
	}
	q := `SELECT ` + jobColumns + ` FROM jobs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("find jobs: %w", err)
	}
	defer rows.Close()
	var jobs []*rdsbackup.Job
	for rows.Next() {
		var j rdsbackup.Job
		var dbs string
		var created, updated, window int64
		if err := rows.Scan(&j.ID, &j.InstanceID, &j.Status, &j.Mode, &j.Method, &j.Strategy, &dbs, &j.Progress,
			&j.BackupSetID, &j.Error, &created, &updated, &window); err != nil {
			return nil, fmt.Errorf("find jobs: %w", err)
		}
		j.Databases = columns.SplitList(dbs)
		j.CreatedAt, j.UpdatedAt, j.Window = columns.FromUnix(created), columns.FromUnix(updated), columns.FromUnix(window)
		jobs = append(jobs, &j)
	}
	return jobs, rows.Err()
}
