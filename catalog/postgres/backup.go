package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var (
	_ rdsbackup.BackupSetService = (*DB)(nil)
	_ rdsbackup.DeletionService  = (*DB)(nil)
)

const backupColumns = columns.BackupColumns

// FindBackupSets returns one page of matching sets, newest first, and the
// number of all matches: both queries in one round trip.
func (db *DB) FindBackupSets(ctx context.Context, f rdsbackup.BackupFilter) ([]*rdsbackup.BackupSet, int, error) {
	// Sets being deleted are gone as far as readers are concerned; the
	// literal predicate lets the planner use the partial indexes.
	where := []string{"NOT deleting"}
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if f.InstanceID != "" {
		where = append(where, "instance_id = "+arg(f.InstanceID))
	}
	if f.ID != nil {
		where = append(where, "id = "+arg(*f.ID))
	}
	if f.Status != nil {
		where = append(where, "status = "+arg(string(*f.Status)))
	}
	if f.Mode != nil {
		where = append(where, "mode = "+arg(string(*f.Mode)))
	}
	if f.Type != nil {
		where = append(where, "type = "+arg(string(*f.Type)))
	}
	if f.StartFrom != nil {
		where = append(where, "start_time >= "+arg(f.StartFrom.Unix()))
	}
	if f.StartTo != nil {
		where = append(where, "start_time <= "+arg(f.StartTo.Unix()))
	}
	cond := " WHERE " + strings.Join(where, " AND ")
	filterArgs := slices.Clone(args)
	q := `SELECT ` + backupColumns + ` FROM backup_sets` + cond + ` ORDER BY start_time DESC, id DESC`
	if f.Limit > 0 {
		q += " LIMIT " + arg(f.Limit)
	}
	if f.Offset > 0 {
		q += " OFFSET " + arg(f.Offset)
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT COUNT(*) FROM backup_sets`+cond, filterArgs...)
	b.Queue(q, args...)
	res := db.pool.SendBatch(ctx, b)
	defer res.Close()
	var total int
	if err := res.QueryRow().Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count backup sets: %w", err)
	}
	rows, err := res.Query()
	if err != nil {
		return nil, 0, fmt.Errorf("find backup sets: %w", err)
	}
	sets, err := collectSets(rows, f.Limit)
	if err != nil {
		return nil, 0, fmt.Errorf("find backup sets: %w", err)
	}
	return sets, total, nil
}

// FindBackupSet returns the set with that id.
func (db *DB) FindBackupSet(ctx context.Context, id int64) (*rdsbackup.BackupSet, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+backupColumns+` FROM backup_sets WHERE id = $1 AND NOT deleting`, id)
	if err != nil {
		return nil, fmt.Errorf("find backup set %d: %w", id, err)
	}
	sets, err := collectSets(rows, 1)
	if err != nil {
		return nil, fmt.Errorf("find backup set %d: %w", id, err)
	}
	if len(sets) == 0 {
		return nil, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", id)
	}
	return sets[0], nil
}

// CreateBackupSet stores a new set with its artifacts.
func (db *DB) CreateBackupSet(ctx context.Context, set *rdsbackup.BackupSet) error {
	return db.ImportBackupSets(ctx, []*rdsbackup.BackupSet{set})
}

// ImportBackupSets stores many sets in one transaction, keeping their ids
// when set.
func (db *DB) ImportBackupSets(ctx context.Context, sets []*rdsbackup.BackupSet) error {
	for _, set := range sets {
		if err := rdsbackup.ValidateBackupSet(set); err != nil {
			return err
		}
	}
	ids := make([]int64, len(sets))
	expiry := make([]time.Time, len(sets))
	err := db.tx(ctx, func(tx pgx.Tx) error {
		if err := setExpiries(ctx, tx, sets, expiry); err != nil {
			return err
		}
		missing, highest := 0, int64(0)
		for i, s := range sets {
			ids[i] = s.ID
			if s.ID == 0 {
				missing++
			}
			highest = max(highest, s.ID)
		}
		if highest > 0 {
			if err := raiseLastID(ctx, tx, highest); err != nil {
				return err
			}
		}
		if missing > 0 {
			first, err := nextIDs(ctx, tx, missing)
			if err != nil {
				return err
			}
			for i := range ids {
				if ids[i] == 0 {
					ids[i], first = first, first+1
				}
			}
		}
		b := &pgx.Batch{}
		for i, s := range sets {
			c := *s
			c.ID, c.ExpectExpireTime = ids[i], expiry[i]
			b.Queue(insertBackupSQL, backupValues(&c)...)
		}
		res := tx.SendBatch(ctx, b)
		for i := range sets {
			if _, err := res.Exec(); err != nil {
				res.Close()
				if code, _ := pgCode(err); code == uniqueViolation {
					return rdsbackup.Errorf(rdsbackup.ECONFLICT, "backup set %d already exists", ids[i])
				}
				return fmt.Errorf("create backup set: %w", err)
			}
		}
		return res.Close()
	})
	if err != nil {
		return err
	}
	for i, s := range sets {
		s.ID, s.ExpectExpireTime = ids[i], expiry[i]
	}
	return nil
}

var insertBackupSQL = `INSERT INTO backup_sets (` + backupColumns + `) VALUES ($1` + func() string {
	var b strings.Builder
	for i := 2; i <= strings.Count(backupColumns, ",")+1; i++ {
		b.WriteString(", $" + strconv.Itoa(i))
	}
	return b.String()
}() + `)`

// setExpiries computes each set's ExpectExpireTime: end + the retention of
// its instance's stored policy, for an automated set always, for a manual
// set that has none. The policy is read under the instance's policy lock,
// which PutBackupPolicies holds while it recomputes the expiry of stored
// sets: a set recorded while a node changes the retention is either seen by
// that recomputation or reads the new retention, never neither.
func setExpiries(ctx context.Context, tx pgx.Tx, sets []*rdsbackup.BackupSet, out []time.Time) error {
	var instances []string
	for i, s := range sets {
		out[i] = s.ExpectExpireTime
		if !s.EndTime.IsZero() && (s.Mode == rdsbackup.BackupAutomated || s.ExpectExpireTime.IsZero()) {
			instances = append(instances, s.InstanceID)
		}
	}
	if len(instances) == 0 {
		return nil
	}
	slices.Sort(instances)
	instances = slices.Compact(instances)
	if err := lockPolicies(ctx, tx, instances); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT instance_id, retention_days FROM backup_policies WHERE instance_id = ANY($1::text[])`, instances)
	if err != nil {
		return fmt.Errorf("read retention: %w", err)
	}
	retention := map[string]int64{}
	for rows.Next() {
		var id string
		var days int64
		if err := rows.Scan(&id, &days); err != nil {
			rows.Close()
			return fmt.Errorf("read retention: %w", err)
		}
		retention[id] = days
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read retention: %w", err)
	}
	for i, s := range sets {
		days, ok := retention[s.InstanceID]
		if ok && !s.EndTime.IsZero() && (s.Mode == rdsbackup.BackupAutomated || s.ExpectExpireTime.IsZero()) {
			out[i] = s.EndTime.Add(time.Duration(days) * 24 * time.Hour).UTC().Truncate(time.Second)
		}
	}
	return nil
}

// policyLockBuckets is how many policy locks there are: an instance takes
// the one of its bucket. A transaction that stores the policies of every
// instance (a first start with 10,000 of them) takes at most this many, so
// it fits PostgreSQL's lock table (64 per connection by default); two
// instances sharing a bucket only wait for each other.
const policyLockBuckets = 128

// lockPolicies takes the policy locks of instances until tx ends, in
// bucket order, the one order every transaction takes them in.
func lockPolicies(ctx context.Context, tx pgx.Tx, instances []string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, k)
		FROM (SELECT DISTINCT abs(hashtext(i) % $3) AS k FROM unnest($2::text[]) AS i ORDER BY k) AS keys`,
		lockPolicy, instances, policyLockBuckets); err != nil {
		return fmt.Errorf("lock policies: %w", err)
	}
	return nil
}

// UpdateBackupSet replaces a stored set and its artifacts.
func (db *DB) UpdateBackupSet(ctx context.Context, set *rdsbackup.BackupSet) error {
	if err := rdsbackup.ValidateBackupSet(set); err != nil {
		return err
	}
	cols := strings.Split(backupColumns, ",")
	var assign []string
	for i, c := range cols[1:] {
		assign = append(assign, strings.TrimSpace(c)+" = $"+strconv.Itoa(i+2))
	}
	tag, err := db.exec(ctx, `UPDATE backup_sets SET `+strings.Join(assign, ", ")+` WHERE id = $1`, backupValues(set)...)
	if err != nil {
		return fmt.Errorf("update backup set %d: %w", set.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", set.ID)
	}
	return nil
}

// DeleteBackupSet removes a set's row.
func (db *DB) DeleteBackupSet(ctx context.Context, id int64) error {
	tag, err := db.exec(ctx, `DELETE FROM backup_sets WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete backup set %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", id)
	}
	return nil
}

func backupValues(s *rdsbackup.BackupSet) []any {
	return columns.SetValues(s, func(b bool) any { return b })
}

// collectSets reads and closes rows of backupColumns.
func collectSets(rows pgx.Rows, sizeHint int) ([]*rdsbackup.BackupSet, error) {
	defer rows.Close()
	var sets []*rdsbackup.BackupSet
	if sizeHint > 0 && sizeHint <= 1000 {
		sets = make([]*rdsbackup.BackupSet, 0, sizeHint)
	}
	c := columns.NewSetRow(false)
	for rows.Next() {
		s, err := c.Scan(rows.Scan)
		if err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}
	return sets, rows.Err()
}

// FindExpiredBackupSets returns sets whose ExpectExpireTime has passed,
// oldest first, never an instance's newest successful set.
func (db *DB) FindExpiredBackupSets(ctx context.Context, now time.Time, limit int) ([]*rdsbackup.BackupSet, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+backupColumns+` FROM backup_sets s
		WHERE NOT deleting AND expect_expire_time > 0 AND expect_expire_time <= $1
		AND NOT (status = 'Success' AND id = (
			SELECT n.id FROM backup_sets n WHERE n.instance_id = s.instance_id AND n.status = 'Success' AND NOT n.deleting
			ORDER BY n.start_time DESC, n.id DESC LIMIT 1))
		ORDER BY expect_expire_time, id LIMIT $2`, now.Unix(), limit)
	if err != nil {
		return nil, fmt.Errorf("find expired backup sets: %w", err)
	}
	sets, err := collectSets(rows, limit)
	if err != nil {
		return nil, fmt.Errorf("find expired backup sets: %w", err)
	}
	return sets, nil
}

// MarkBackupSetsDeleting hides sets from every query and records that
// their deletion is under way, all or none. Of two nodes marking the same
// set, the second waits for the first and then finds it already marked.
func (db *DB) MarkBackupSetsDeleting(ctx context.Context, ids []int64) error {
	distinct := slices.Compact(slices.Sorted(slices.Values(ids)))
	return db.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE backup_sets SET deleting = true WHERE id = ANY($1::bigint[]) AND NOT deleting RETURNING id`, distinct)
		if err != nil {
			return fmt.Errorf("mark backup sets deleting: %w", err)
		}
		marked, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("mark backup sets deleting: %w", err)
		}
		if len(marked) == len(distinct) {
			return nil
		}
		for _, id := range distinct {
			if !slices.Contains(marked, id) {
				return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", id)
			}
		}
		return errors.New("mark backup sets deleting: counts disagree")
	})
}

// FindDeletingBackupSets returns the sets whose deletion was started.
func (db *DB) FindDeletingBackupSets(ctx context.Context) ([]*rdsbackup.BackupSet, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+backupColumns+` FROM backup_sets WHERE deleting ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("find deleting backup sets: %w", err)
	}
	sets, err := collectSets(rows, 0)
	if err != nil {
		return nil, fmt.Errorf("find deleting backup sets: %w", err)
	}
	return sets, nil
}

// RecordVerification records a drill's verdict on a set
// (rdsbackup.VerificationRecorder): a failed drill clears available, a
// passed one after a failed one sets it again (it undoes only what a drill
// did).
func (db *DB) RecordVerification(ctx context.Context, id int64, status rdsbackup.VerifyStatus, at time.Time, reason string) error {
	tag, err := db.exec(ctx, `UPDATE backup_sets SET verify_status = $2, verify_time = $3, verify_reason = $4,
		available = CASE WHEN $5 THEN false WHEN verify_status = 'Failed' AND object_key <> '' THEN true ELSE available END
		WHERE id = $1 AND NOT deleting`,
		id, string(status), columns.Unix(at), reason, status == rdsbackup.VerifyFailed)
	if err != nil {
		return fmt.Errorf("record the drill of backup set %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "backup set %d not found", id)
	}
	return nil
}
