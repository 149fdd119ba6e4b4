package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var _ rdsbackup.IdentityService = (*DB)(nil)

const userColumns = columns.UserColumns

// CreateUser stores a new RAM user; u.ID must be set. The primary key
// refuses a second user of the same name, whichever node makes it.
func (db *DB) CreateUser(ctx context.Context, u *rdsbackup.User) error {
	if err := rdsbackup.ValidateUserName(u.Name); err != nil {
		return err
	}
	now := db.now()
	_, err := db.exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		u.Name, u.ID, u.DisplayName, u.Email, u.MobilePhone, u.Comments, columns.Unix(now), columns.Unix(now))
	if code, constraint := pgCode(err); code == uniqueViolation && constraint == "users_pkey" {
		return rdsbackup.ErrUserExists(u.Name)
	} else if err != nil {
		return fmt.Errorf("create user %s: %w", u.Name, err)
	}
	u.CreatedAt, u.UpdatedAt = now, now
	return nil
}

// FindUser returns the user with that name.
func (db *DB) FindUser(ctx context.Context, name string) (*rdsbackup.User, error) {
	u, err := columns.ScanUser(db.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE name = $1`, name).Scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, rdsbackup.ErrUserNotFound(name)
	} else if err != nil {
		return nil, fmt.Errorf("find user %s: %w", name, err)
	}
	return u, nil
}

// FindUsers returns users in name order after the name marker.
func (db *DB) FindUsers(ctx context.Context, after string, limit int) ([]*rdsbackup.User, error) {
	var lim any
	if limit > 0 {
		lim = limit
	}
	rows, err := db.pool.Query(ctx, `SELECT `+userColumns+` FROM users WHERE name > $1 ORDER BY name LIMIT $2`, after, lim)
	if err != nil {
		return nil, fmt.Errorf("find users: %w", err)
	}
	defer rows.Close()
	var out []*rdsbackup.User
	for rows.Next() {
		u, err := columns.ScanUser(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("find users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// lockUser locks a user's row until tx ends: creating a key, deleting the
// user and attaching a policy (through its foreign key) all take it, so
// their checks see each other's outcome.
func lockUser(ctx context.Context, tx pgx.Tx, name string) error {
	var n int
	err := tx.QueryRow(ctx, `SELECT 1 FROM users WHERE name = $1 FOR UPDATE`, name).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return rdsbackup.ErrUserNotFound(name)
	} else if err != nil {
		return fmt.Errorf("find user %s: %w", name, err)
	}
	return nil
}

// DeleteUser removes a user that has no access keys and no policies.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	return db.tx(ctx, func(tx pgx.Tx) error {
		if err := lockUser(ctx, tx, name); err != nil {
			return err
		}
		var keys, policies int
		if err := tx.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM access_keys WHERE user_name = $1),
			(SELECT COUNT(*) FROM user_policies WHERE user_name = $1)`, name).Scan(&keys, &policies); err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		if keys > 0 {
			return rdsbackup.ErrUserHasKeys(name)
		}
		if policies > 0 {
			return rdsbackup.ErrUserHasPolicies(name)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE name = $1`, name); err != nil {
			if code, _ := pgCode(err); code == foreignKeyViolation {
				return rdsbackup.ErrUserHasPolicies(name)
			}
			return fmt.Errorf("delete user %s: %w", name, err)
		}
		return nil
	})
}

func userExists(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) error {
	var n int
	err := q.QueryRow(ctx, `SELECT 1 FROM users WHERE name = $1`, name).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return rdsbackup.ErrUserNotFound(name)
	} else if err != nil {
		return fmt.Errorf("find user %s: %w", name, err)
	}
	return nil
}

// CreateAccessKey stores a key with its secret sealed. A user key needs an
// existing user and respects rdsbackup.MaxAccessKeysPerUser: the count is
// read under the user's row lock, so two nodes cannot both make the last
// key allowed.
func (db *DB) CreateAccessKey(ctx context.Context, k *rdsbackup.AccessKey) error {
	if err := rdsbackup.ValidateNewAccessKey(k); err != nil {
		return err
	}
	now := db.now()
	sealed, err := db.seal(k.Secret)
	if err != nil {
		return err
	}
	err = db.tx(ctx, func(tx pgx.Tx) error {
		if k.UserName != "" {
			if err := lockUser(ctx, tx, k.UserName); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM access_keys WHERE user_name = $1`, k.UserName).Scan(&n); err != nil {
				return fmt.Errorf("create access key: %w", err)
			} else if n >= rdsbackup.MaxAccessKeysPerUser {
				return rdsbackup.ErrAccessKeyLimit(k.UserName)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO access_keys (id, user_name, secret, status, created_at) VALUES ($1, $2, $3, $4, $5)`,
			k.ID, k.UserName, sealed, string(k.Status), columns.Unix(now))
		if code, _ := pgCode(err); code == uniqueViolation {
			return rdsbackup.ErrAccessKeyExists(k.ID)
		} else if err != nil {
			return fmt.Errorf("create access key: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	k.CreatedAt = now
	return nil
}

// FindAccessKey returns a key with its secret opened.
func (db *DB) FindAccessKey(ctx context.Context, id string) (*rdsbackup.AccessKey, error) {
	k, err := db.scanAccessKey(db.pool.QueryRow(ctx, `SELECT id, user_name, secret, status, created_at FROM access_keys WHERE id = $1`, id), true)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, rdsbackup.ErrAccessKeyNotFound()
	} else if err != nil {
		return nil, fmt.Errorf("find access key: %w", err)
	}
	return k, nil
}

// FindAccessKeys lists a user's keys ("" for the root keys) without secrets.
func (db *DB) FindAccessKeys(ctx context.Context, userName string) ([]*rdsbackup.AccessKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, user_name, secret, status, created_at FROM access_keys WHERE user_name = $1 ORDER BY created_at, id`, userName)
	if err != nil {
		return nil, fmt.Errorf("find access keys: %w", err)
	}
	defer rows.Close()
	var out []*rdsbackup.AccessKey
	for rows.Next() {
		k, err := db.scanAccessKey(rows, false)
		if err != nil {
			return nil, fmt.Errorf("find access keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// UpdateAccessKeyStatus activates or deactivates a user's key.
func (db *DB) UpdateAccessKeyStatus(ctx context.Context, userName, id string, status rdsbackup.AccessKeyStatus) error {
	if err := rdsbackup.ValidateAccessKeyStatus(status); err != nil {
		return err
	}
	if userName != "" {
		if err := userExists(ctx, db.pool, userName); err != nil {
			return err
		}
	}
	tag, err := db.exec(ctx, `UPDATE access_keys SET status = $1 WHERE id = $2 AND user_name = $3`, string(status), id, userName)
	if err != nil {
		return fmt.Errorf("update access key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return rdsbackup.ErrUserKeyNotFound(id, userName)
	}
	return nil
}

// DeleteAccessKey removes a user's key.
func (db *DB) DeleteAccessKey(ctx context.Context, userName, id string) error {
	if userName != "" {
		if err := userExists(ctx, db.pool, userName); err != nil {
			return err
		}
	}
	tag, err := db.exec(ctx, `DELETE FROM access_keys WHERE id = $1 AND user_name = $2`, id, userName)
	if err != nil {
		return fmt.Errorf("delete access key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return rdsbackup.ErrUserKeyNotFound(id, userName)
	}
	return nil
}

func (db *DB) scanAccessKey(row pgx.Row, withSecret bool) (*rdsbackup.AccessKey, error) {
	var k rdsbackup.AccessKey
	var status string
	var sealed []byte
	var created int64
	if err := row.Scan(&k.ID, &k.UserName, &sealed, &status, &created); err != nil {
		return nil, err
	}
	k.Status = rdsbackup.AccessKeyStatus(status)
	k.CreatedAt = columns.FromUnix(created)
	if withSecret {
		var err error
		if k.Secret, err = db.open(sealed); err != nil {
			return nil, err
		}
	}
	return &k, nil
}

const policyColumns = columns.PolicyColumns

// CreatePolicy stores a policy. The document must already be validated.
func (db *DB) CreatePolicy(ctx context.Context, p *rdsbackup.Policy) error {
	if err := rdsbackup.ValidatePolicyName(p.Name); err != nil {
		return err
	}
	now := db.now()
	if p.DefaultVersion == "" {
		p.DefaultVersion = "v1"
	}
	_, err := db.exec(ctx, `INSERT INTO policies (name, type, description, document, default_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		p.Name, string(p.Type), p.Description, p.Document, p.DefaultVersion, columns.Unix(now), columns.Unix(now))
	if code, _ := pgCode(err); code == uniqueViolation {
		return rdsbackup.ErrPolicyExists(p.Name)
	} else if err != nil {
		return fmt.Errorf("create policy %s: %w", p.Name, err)
	}
	p.CreatedAt, p.UpdatedAt = now, now
	return nil
}

// FindPolicy returns one policy.
func (db *DB) FindPolicy(ctx context.Context, name string, typ rdsbackup.PolicyType) (*rdsbackup.Policy, error) {
	p, err := columns.ScanPolicy(db.pool.QueryRow(ctx, `SELECT `+policyColumns+` FROM policies p WHERE p.name = $1 AND p.type = $2`, name, string(typ)).Scan, false)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, rdsbackup.ErrPolicyNotFound(name, typ)
	} else if err != nil {
		return nil, fmt.Errorf("find policy %s: %w", name, err)
	}
	return p, nil
}

// FindPolicies lists policies of one type, or all when typ is "".
func (db *DB) FindPolicies(ctx context.Context, typ rdsbackup.PolicyType) ([]*rdsbackup.Policy, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+policyColumns+` FROM policies p WHERE $1 = '' OR p.type = $1 ORDER BY p.type, p.name`, string(typ))
	if err != nil {
		return nil, fmt.Errorf("find policies: %w", err)
	}
	defer rows.Close()
	var out []*rdsbackup.Policy
	for rows.Next() {
		p, err := columns.ScanPolicy(rows.Scan, false)
		if err != nil {
			return nil, fmt.Errorf("find policies: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeletePolicy removes a custom policy that is attached to nobody. The
// policy's row is locked first; an attach (whose foreign key check needs
// that row) either committed before the count or fails after the delete.
func (db *DB) DeletePolicy(ctx context.Context, name string) error {
	custom := string(rdsbackup.PolicyCustom)
	return db.tx(ctx, func(tx pgx.Tx) error {
		var n int
		err := tx.QueryRow(ctx, `SELECT 1 FROM policies WHERE name = $1 AND type = $2 FOR UPDATE`, name, custom).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return rdsbackup.ErrPolicyNotFound(name, rdsbackup.PolicyCustom)
		} else if err != nil {
			return fmt.Errorf("delete policy: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM user_policies WHERE policy_name = $1 AND policy_type = $2`, name, custom).Scan(&n); err != nil {
			return fmt.Errorf("delete policy: %w", err)
		} else if n > 0 {
			return rdsbackup.ErrPolicyInUse(name, n)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM policies WHERE name = $1 AND type = $2`, name, custom); err != nil {
			return fmt.Errorf("delete policy %s: %w", name, err)
		}
		return nil
	})
}

func policyExists(ctx context.Context, db *DB, name string, typ rdsbackup.PolicyType) error {
	var n int
	err := db.pool.QueryRow(ctx, `SELECT 1 FROM policies WHERE name = $1 AND type = $2`, name, string(typ)).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return rdsbackup.ErrPolicyNotFound(name, typ)
	} else if err != nil {
		return fmt.Errorf("find policy %s: %w", name, err)
	}
	return nil
}

// AttachPolicy attaches a policy to a user.
func (db *DB) AttachPolicy(ctx context.Context, policyName string, typ rdsbackup.PolicyType, userName string) error {
	if err := userExists(ctx, db.pool, userName); err != nil {
		return err
	}
	if err := policyExists(ctx, db, policyName, typ); err != nil {
		return err
	}
	_, err := db.exec(ctx, `INSERT INTO user_policies (user_name, policy_name, policy_type, attached_at) VALUES ($1, $2, $3, $4)`,
		userName, policyName, string(typ), columns.Unix(db.now()))
	switch code, _ := pgCode(err); {
	case err == nil:
		return nil
	case code == uniqueViolation:
		return rdsbackup.ErrPolicyAttached(policyName, userName)
	case code == foreignKeyViolation:
		// The user or the policy went between the checks and the insert.
		if err := userExists(ctx, db.pool, userName); err != nil {
			return err
		}
		return rdsbackup.ErrPolicyNotFound(policyName, typ)
	default:
		return fmt.Errorf("attach policy: %w", err)
	}
}

// DetachPolicy detaches a policy from a user.
func (db *DB) DetachPolicy(ctx context.Context, policyName string, typ rdsbackup.PolicyType, userName string) error {
	if err := userExists(ctx, db.pool, userName); err != nil {
		return err
	}
	if err := policyExists(ctx, db, policyName, typ); err != nil {
		return err
	}
	tag, err := db.exec(ctx, `DELETE FROM user_policies WHERE user_name = $1 AND policy_name = $2 AND policy_type = $3`, userName, policyName, string(typ))
	if err != nil {
		return fmt.Errorf("detach policy: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return rdsbackup.ErrPolicyNotAttached(policyName, userName)
	}
	return nil
}

// FindUserPolicies lists the policies attached to a user with their
// documents; it runs on every RDS call by a RAM user.
func (db *DB) FindUserPolicies(ctx context.Context, userName string) ([]*rdsbackup.Policy, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+policyColumns+`, up.attached_at FROM user_policies up
		JOIN policies p ON p.name = up.policy_name AND p.type = up.policy_type
		WHERE up.user_name = $1 ORDER BY up.attached_at, p.name`, userName)
	if err != nil {
		return nil, fmt.Errorf("find user policies: %w", err)
	}
	defer rows.Close()
	var out []*rdsbackup.Policy
	for rows.Next() {
		p, err := columns.ScanPolicy(rows.Scan, true)
		if err != nil {
			return nil, fmt.Errorf("find user policies: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
