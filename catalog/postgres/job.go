package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var _ rdsbackup.JobService = (*DB)(nil)

const jobColumns = `id, instance_id, status, mode, method, strategy, databases, progress, backup_set_id, error, created_at, updated_at, window_start, node_id, lease_until`

// finalStates is the SQL list of the states a job ends in.
const finalStates = `('Finished', 'Failed')`

// nextIDs takes n new ids, above every id a job or a set has had, and
// returns the first. The counter row stays locked until tx ends, so ids are
// given in commit order and never twice.
func nextIDs(ctx context.Context, tx pgx.Tx, n int) (int64, error) {
	var last int64
	if err := tx.QueryRow(ctx, `UPDATE backup_ids SET last = last + $1 RETURNING last`, n).Scan(&last); err != nil {
		return 0, fmt.Errorf("take an id: %w", err)
	}
	return last - int64(n) + 1, nil
}

// raiseLastID makes id the highest id given when it is above it; below, it
// neither writes nor locks the counter.
func raiseLastID(ctx context.Context, tx pgx.Tx, id int64) error {
	if _, err := tx.Exec(ctx, `UPDATE backup_ids SET last = $1 WHERE last < $1`, id); err != nil {
		return fmt.Errorf("raise the highest id to %d: %w", id, err)
	}
	return nil
}

// CreateJob stores a new job and assigns its id. A second job for the same
// instance and window is refused by the unique index jobs_by_window,
// whichever node inserts it.
func (db *DB) CreateJob(ctx context.Context, job *rdsbackup.Job) error {
	now := db.now()
	err := db.tx(ctx, func(tx pgx.Tx) error {
		id, err := nextIDs(ctx, tx, 1)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO jobs (`+jobColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			id, job.InstanceID, string(job.Status), string(job.Mode), string(job.Method), job.Strategy, columns.JoinList(job.Databases),
			job.Progress, job.BackupSetID, job.Error, columns.Unix(now), columns.Unix(now), columns.Unix(job.Window),
			job.Node, columns.Millis(job.LeaseUntil)); err != nil {
			code, constraint := pgCode(err)
			if code == uniqueViolation && constraint == "jobs_by_window" {
				return rdsbackup.Errorf(rdsbackup.ECONFLICT, "instance %s already has a job for the window starting %s", job.InstanceID, job.Window.UTC().Format(time.RFC3339))
			}
			if code == uniqueViolation && constraint == "jobs_one_running" {
				return errRunning
			}
			return fmt.Errorf("create job: %w", err)
		}
		job.ID = id
		return nil
	})
	if err == errRunning {
		// The insert's transaction is over: say which job runs.
		var id int64
		var node string
		if qerr := db.pool.QueryRow(ctx, `SELECT id, node_id FROM jobs WHERE instance_id = $1 AND node_id <> '' AND status NOT IN `+finalStates,
			job.InstanceID).Scan(&id, &node); qerr != nil {
			return rdsbackup.Errorf(rdsbackup.EBackupRunning, "Current DB instance state does not support this operation: %s has a backup job running.", job.InstanceID)
		}
		return runningError(job.InstanceID, id, node)
	}
	if err != nil {
		return err
	}
	job.CreatedAt, job.UpdatedAt = now, now
	return nil
}

// errRunning marks CreateJob's unique violation on jobs_one_running.
var errRunning = errors.New("instance has a running job")

// runningError is CreateJob's refusal of a second backup of an instance.
func runningError(instanceID string, id int64, node string) error {
	return rdsbackup.Errorf(rdsbackup.EBackupRunning, "Current DB instance state does not support this operation: backup job %d of %s is still running (on node %s).", id, instanceID, node)
}

// jobNotHeld says why a write to job id that node meant to hold changed
// nothing: ENOTFOUND without the job, ECONFLICT when it is not node's.
func (db *DB) jobNotHeld(ctx context.Context, id int64, node string) error {
	var holder, status string
	if err := db.pool.QueryRow(ctx, `SELECT node_id, status FROM jobs WHERE id = $1`, id).Scan(&holder, &status); err == pgx.ErrNoRows {
		return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "job %d not found", id)
	} else if err != nil {
		return fmt.Errorf("job %d: %w", id, err)
	}
	return rdsbackup.Errorf(rdsbackup.ECONFLICT, "job %d is not held by node %s: node %q holds it, %s", id, node, holder, status)
}

// RenewJobLease extends the lease node holds on an unfinished job.
func (db *DB) RenewJobLease(ctx context.Context, id int64, node string, until time.Time) error {
	tag, err := db.exec(ctx, `UPDATE jobs SET lease_until = $1 WHERE id = $2 AND node_id = $3 AND status NOT IN `+finalStates,
		columns.Millis(until), id, node)
	if err != nil {
		return fmt.Errorf("renew the lease of job %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return db.jobNotHeld(ctx, id, node)
	}
	return nil
}

// ClaimJob gives node an unfinished job whose lease ended, or that node
// holds already. One conditional UPDATE: PostgreSQL re-checks the
// condition on the row it locks, so of two nodes claiming at once one
// wins.
func (db *DB) ClaimJob(ctx context.Context, id int64, node string, now, until time.Time) error {
	tag, err := db.exec(ctx, `UPDATE jobs SET node_id = $1, lease_until = $2 WHERE id = $3 AND status NOT IN `+finalStates+`
		AND (lease_until <= $4 OR node_id = $1)`, node, columns.Millis(until), id, columns.Millis(now))
	if code, constraint := pgCode(err); code == uniqueViolation && constraint == "jobs_one_running" {
		// A job without a node, of an instance a node runs another job
		// of: it waits until that one ends.
		return rdsbackup.Errorf(rdsbackup.ECONFLICT, "job %d cannot be claimed while its instance has another job running", id)
	}
	if err != nil {
		return fmt.Errorf("claim job %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return db.jobNotHeld(ctx, id, node)
	}
	return nil
}

// UpdateJob stores a job's progress and outcome.
func (db *DB) UpdateJob(ctx context.Context, job *rdsbackup.Job) error {
	job.UpdatedAt = db.now()
	q := `UPDATE jobs SET status = $1, progress = $2, backup_set_id = $3, error = $4, updated_at = $5 WHERE id = $6`
	args := []any{string(job.Status), job.Progress, job.BackupSetID, job.Error, columns.Unix(job.UpdatedAt), job.ID}
	if job.Node != "" {
		q, args = q+` AND node_id = $7`, append(args, job.Node)
	}
	tag, err := db.exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("update job %d: %w", job.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return db.jobNotHeld(ctx, job.ID, job.Node)
	}
	return nil
}

// FindJobs returns matching jobs, newest first.
func (db *DB) FindJobs(ctx context.Context, f rdsbackup.JobFilter) ([]*rdsbackup.Job, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if f.InstanceID != "" {
		where = append(where, "instance_id = "+arg(f.InstanceID))
	}
	if f.ID != nil {
		where = append(where, "id = "+arg(*f.ID))
	}
	if f.Mode != nil {
		where = append(where, "mode = "+arg(string(*f.Mode)))
	}
	if len(f.Statuses) > 0 {
		st := make([]string, len(f.Statuses))
		for i, s := range f.Statuses {
			st[i] = string(s)
		}
		where = append(where, "status = ANY("+arg(st)+"::text[])")
	}
	q := `SELECT ` + jobColumns + ` FROM jobs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC"
	if f.Limit > 0 {
		q += " LIMIT " + arg(f.Limit)
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find jobs: %w", err)
	}
	defer rows.Close()
	var jobs []*rdsbackup.Job
	for rows.Next() {
		var j rdsbackup.Job
		var status, mode, method, dbs string
		var created, updated, window, lease int64
		if err := rows.Scan(&j.ID, &j.InstanceID, &status, &mode, &method, &j.Strategy, &dbs, &j.Progress,
			&j.BackupSetID, &j.Error, &created, &updated, &window, &j.Node, &lease); err != nil {
			return nil, fmt.Errorf("find jobs: %w", err)
		}
		j.LeaseUntil = columns.FromMillis(lease)
		j.Status, j.Mode, j.Method = rdsbackup.JobStatus(status), rdsbackup.BackupMode(mode), rdsbackup.BackupMethod(method)
		j.Databases = columns.SplitList(dbs)
		j.CreatedAt, j.UpdatedAt, j.Window = columns.FromUnix(created), columns.FromUnix(updated), columns.FromUnix(window)
		jobs = append(jobs, &j)
	}
	return jobs, rows.Err()
}

// FindLastWindows returns, per instance, the start of the latest schedule
// window a job was created for.
func (db *DB) FindLastWindows(ctx context.Context) (map[string]time.Time, error) {
	rows, err := db.pool.Query(ctx, `SELECT instance_id, MAX(window_start) FROM jobs WHERE window_start > 0 GROUP BY instance_id`)
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
