package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var _ rdsbackup.JobService = (*DB)(nil)

const jobColumns = `id, instance_id, status, mode, method, strategy, databases, progress, backup_set_id, error, created_at, updated_at, window_start, node_id, lease_until`

// finalStates is the SQL list of the states a job ends in.
const finalStates = `('Finished', 'Failed')`

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
		if job.Node != "" {
			// The writer is single, so this check and the insert are one
			// step; the unique index jobs_one_running backs it.
			var id int64
			var node string
			err := tx.QueryRowContext(ctx, `SELECT id, node_id FROM jobs WHERE instance_id = ? AND node_id <> '' AND status NOT IN `+finalStates, job.InstanceID).Scan(&id, &node)
			if err == nil {
				return runningError(job.InstanceID, id, node)
			} else if err != sql.ErrNoRows {
				return fmt.Errorf("create job: %w", err)
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO jobs (`+jobColumns+`)
			VALUES (1 + MAX(
				COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0),
				COALESCE((SELECT last FROM backup_set_ids), 0)),
				?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			job.InstanceID, string(job.Status), string(job.Mode), string(job.Method), job.Strategy, columns.JoinList(job.Databases),
			job.Progress, job.BackupSetID, job.Error, columns.Unix(now), columns.Unix(now), columns.Unix(job.Window),
			job.Node, columns.Millis(job.LeaseUntil))
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
		q := `UPDATE jobs SET status = ?, progress = ?, backup_set_id = ?, error = ?, updated_at = ? WHERE id = ?`
		args := []any{string(job.Status), job.Progress, job.BackupSetID, job.Error, columns.Unix(job.UpdatedAt), job.ID}
		if job.Node != "" {
			q, args = q+` AND node_id = ?`, append(args, job.Node)
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("update job %d: %w", job.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return jobNotHeld(ctx, tx, job.ID, job.Node)
		}
		return nil
	})
}

// uniqueViolation reports whether err is SQLite's refusal of a duplicate
// in a unique index.
func uniqueViolation(err error) bool {
	var se *driver.Error
	return err != nil && errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// runningError is CreateJob's refusal of a second backup of an instance.
func runningError(instanceID string, id int64, node string) error {
	return rdsbackup.Errorf(rdsbackup.EBackupRunning, "Current DB instance state does not support this operation: backup job %d of %s is still running (on node %s).", id, instanceID, node)
}

// jobNotHeld says why a write to job id that node meant to hold changed
// nothing: ENOTFOUND without the job, ECONFLICT when it is not node's.
func jobNotHeld(ctx context.Context, tx *sql.Tx, id int64, node string) error {
	var holder, status string
	if err := tx.QueryRowContext(ctx, `SELECT node_id, status FROM jobs WHERE id = ?`, id).Scan(&holder, &status); err == sql.ErrNoRows {
		return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "job %d not found", id)
	} else if err != nil {
		return fmt.Errorf("job %d: %w", id, err)
	}
	return rdsbackup.Errorf(rdsbackup.ECONFLICT, "job %d is not held by node %s: node %q holds it, %s", id, node, holder, status)
}

// RenewJobLease extends the lease node holds on an unfinished job.
func (db *DB) RenewJobLease(ctx context.Context, id int64, node string, until time.Time) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_until = ? WHERE id = ? AND node_id = ? AND status NOT IN `+finalStates,
			columns.Millis(until), id, node)
		if err != nil {
			return fmt.Errorf("renew the lease of job %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return jobNotHeld(ctx, tx, id, node)
		}
		return nil
	})
}

// ClaimJob gives node an unfinished job whose lease ended, or that node
// holds already.
func (db *DB) ClaimJob(ctx context.Context, id int64, node string, now, until time.Time) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET node_id = ?, lease_until = ? WHERE id = ? AND status NOT IN `+finalStates+`
			AND (lease_until <= ? OR node_id = ?)`, node, columns.Millis(until), id, columns.Millis(now), node)
		if uniqueViolation(err) {
			// A job without a node, of an instance a node runs another
			// job of: it waits until that one ends.
			return rdsbackup.Errorf(rdsbackup.ECONFLICT, "job %d cannot be claimed while its instance has another job running", id)
		}
		if err != nil {
			return fmt.Errorf("claim job %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return jobNotHeld(ctx, tx, id, node)
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
		where, args = appendIn(where, args, "status", f.Statuses)
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
		var created, updated, window, lease int64
		if err := rows.Scan(&j.ID, &j.InstanceID, &j.Status, &j.Mode, &j.Method, &j.Strategy, &dbs, &j.Progress,
			&j.BackupSetID, &j.Error, &created, &updated, &window, &j.Node, &lease); err != nil {
			return nil, fmt.Errorf("find jobs: %w", err)
		}
		j.LeaseUntil = columns.FromMillis(lease)
		j.Databases = columns.SplitList(dbs)
		j.CreatedAt, j.UpdatedAt, j.Window = columns.FromUnix(created), columns.FromUnix(updated), columns.FromUnix(window)
		jobs = append(jobs, &j)
	}
	return jobs, rows.Err()
}

// appendIn adds the condition "column IN (?, …)" over values, which must
// not be empty, to a query's WHERE terms and arguments.
func appendIn[S ~string](where []string, args []any, column string, values []S) ([]string, []any) {
	where = append(where, column+" IN (?"+strings.Repeat(",?", len(values)-1)+")")
	for _, v := range values {
		args = append(args, string(v))
	}
	return where, args
}
