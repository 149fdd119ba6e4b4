package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/internal/columns"
)

var _ rdsbackup.IdentityService = (*DB)(nil)

const userColumns = columns.UserColumns

// CreateUser stores a new RAM user; u.ID must be set.
func (db *DB) CreateUser(ctx context.Context, u *rdsbackup.User) error {
	if err := rdsbackup.ValidateUserName(u.Name); err != nil {
		return err
	}
	now := db.now()
	u.CreatedAt, u.UpdatedAt = now, now
	return db.update(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE name = ?`, u.Name).Scan(&n); err != nil {
			return fmt.Errorf("create user: %w", err)
		} else if n > 0 {
			return rdsbackup.ErrUserExists(u.Name)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			u.Name, u.ID, u.DisplayName, u.Email, u.MobilePhone, u.Comments, columns.Unix(now), columns.Unix(now))
		if err != nil {
			return fmt.Errorf("create user %s: %w", u.Name, err)
		}
		return nil
	})
}

// FindUser returns the user with that name.
func (db *DB) FindUser(ctx context.Context, name string) (*rdsbackup.User, error) {
	u, err := columns.ScanUser(db.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, rdsbackup.ErrUserNotFound(name)
	} else if err != nil {
		return nil, fmt.Errorf("find user %s: %w", name, err)
	}
	return u, nil
}

// FindUsers returns users in name order after the name marker.
func (db *DB) FindUsers(ctx context.Context, after string, limit int) ([]*rdsbackup.User, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+userColumns+` FROM users WHERE name > ? ORDER BY name LIMIT ?`, after, limit)
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

// DeleteUser removes a user that has no access keys and no policies.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		if err := userExists(ctx, tx, name); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM access_keys WHERE user_name = ?`, name).Scan(&n); err != nil {
			return fmt.Errorf("delete user: %w", err)
		} else if n > 0 {
			return rdsbackup.ErrUserHasKeys(name)
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM user_policies WHERE user_name = ?`, name).Scan(&n); err != nil {
			return fmt.Errorf("delete user: %w", err)
		} else if n > 0 {
			return rdsbackup.ErrUserHasPolicies(name)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name); err != nil {
			return fmt.Errorf("delete user %s: %w", name, err)
		}
		return nil
	})
}

func userExists(ctx context.Context, tx *sql.Tx, name string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE name = ?`, name).Scan(&n); err != nil {
		return fmt.Errorf("find user: %w", err)
	} else if n == 0 {
		return rdsbackup.ErrUserNotFound(name)
	}
	return nil
}

// CreateAccessKey stores a key with its secret encrypted. A user key needs
// an existing user and respects rdsbackup.MaxAccessKeysPerUser.
func (db *DB) CreateAccessKey(ctx context.Context, k *rdsbackup.AccessKey) error {
	if err := rdsbackup.ValidateNewAccessKey(k); err != nil {
		return err
	}
	k.CreatedAt = db.now()
	sealed, err := db.seal(k.Secret)
	if err != nil {
		return err
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		if k.UserName != "" {
			if err := userExists(ctx, tx, k.UserName); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM access_keys WHERE user_name = ?`, k.UserName).Scan(&n); err != nil {
				return fmt.Errorf("create access key: %w", err)
			} else if n >= rdsbackup.MaxAccessKeysPerUser {
				return rdsbackup.ErrAccessKeyLimit(k.UserName)
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM access_keys WHERE id = ?`, k.ID).Scan(&n); err != nil {
			return fmt.Errorf("create access key: %w", err)
		} else if n > 0 {
			return rdsbackup.ErrAccessKeyExists(k.ID)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO access_keys (id, user_name, secret, status, created_at) VALUES (?, ?, ?, ?, ?)`,
			k.ID, k.UserName, sealed, string(k.Status), columns.Unix(k.CreatedAt))
		if err != nil {
			return fmt.Errorf("create access key: %w", err)
		}
		return nil
	})
}

// FindAccessKey returns a key with its secret decrypted.
func (db *DB) FindAccessKey(ctx context.Context, id string) (*rdsbackup.AccessKey, error) {
	s, err := db.stmt(ctx, `SELECT id, user_name, secret, status, created_at FROM access_keys WHERE id = ?`)
	if err != nil {
		return nil, fmt.Errorf("find access key: %w", err)
	}
	k, err := db.scanAccessKey(s.QueryRowContext(ctx, id), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, rdsbackup.ErrAccessKeyNotFound()
	} else if err != nil {
		return nil, fmt.Errorf("find access key: %w", err)
	}
	return k, nil
}

// FindAccessKeys lists a user's keys ("" for the root keys) without secrets.
func (db *DB) FindAccessKeys(ctx context.Context, userName string) ([]*rdsbackup.AccessKey, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, user_name, secret, status, created_at FROM access_keys WHERE user_name = ? ORDER BY created_at, id`, userName)
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
	return db.update(ctx, func(tx *sql.Tx) error {
		if userName != "" {
			if err := userExists(ctx, tx, userName); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE access_keys SET status = ? WHERE id = ? AND user_name = ?`, string(status), id, userName)
		if err != nil {
			return fmt.Errorf("update access key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return rdsbackup.ErrUserKeyNotFound(id, userName)
		}
		return nil
	})
}

// DeleteAccessKey removes a user's key.
func (db *DB) DeleteAccessKey(ctx context.Context, userName, id string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		if userName != "" {
			if err := userExists(ctx, tx, userName); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM access_keys WHERE id = ? AND user_name = ?`, id, userName)
		if err != nil {
			return fmt.Errorf("delete access key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return rdsbackup.ErrUserKeyNotFound(id, userName)
		}
		return nil
	})
}

func (db *DB) scanAccessKey(row scanner, withSecret bool) (*rdsbackup.AccessKey, error) {
	var k rdsbackup.AccessKey
	var sealed []byte
	var created int64
	if err := row.Scan(&k.ID, &k.UserName, &sealed, &k.Status, &created); err != nil {
		return nil, err
	}
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
	p.CreatedAt, p.UpdatedAt = now, now
	if p.DefaultVersion == "" {
		p.DefaultVersion = "v1"
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM policies WHERE name = ? AND type = ?`, p.Name, string(p.Type)).Scan(&n); err != nil {
			return fmt.Errorf("create policy: %w", err)
		} else if n > 0 {
			return rdsbackup.ErrPolicyExists(p.Name)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO policies (name, type, description, document, default_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			p.Name, string(p.Type), p.Description, p.Document, p.DefaultVersion, columns.Unix(now), columns.Unix(now))
		if err != nil {
			return fmt.Errorf("create policy %s: %w", p.Name, err)
		}
		return nil
	})
}

// FindPolicy returns one policy.
func (db *DB) FindPolicy(ctx context.Context, name string, typ rdsbackup.PolicyType) (*rdsbackup.Policy, error) {
	p, err := columns.ScanPolicy(db.read.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM policies p WHERE p.name = ? AND p.type = ?`, name, string(typ)).Scan, false)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, rdsbackup.ErrPolicyNotFound(name, typ)
	} else if err != nil {
		return nil, fmt.Errorf("find policy %s: %w", name, err)
	}
	return p, nil
}

// FindPolicies lists policies of one type, or all when typ is "".
func (db *DB) FindPolicies(ctx context.Context, typ rdsbackup.PolicyType) ([]*rdsbackup.Policy, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+policyColumns+` FROM policies p WHERE ? = '' OR p.type = ? ORDER BY p.type, p.name`, string(typ), string(typ))
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

// DeletePolicy removes a custom policy that is attached to nobody.
func (db *DB) DeletePolicy(ctx context.Context, name string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM policies WHERE name = ? AND type = ?`, name, string(rdsbackup.PolicyCustom)).Scan(&n); err != nil {
			return fmt.Errorf("delete policy: %w", err)
		} else if n == 0 {
			return rdsbackup.ErrPolicyNotFound(name, rdsbackup.PolicyCustom)
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM user_policies WHERE policy_name = ? AND policy_type = ?`, name, string(rdsbackup.PolicyCustom)).Scan(&n); err != nil {
			return fmt.Errorf("delete policy: %w", err)
		} else if n > 0 {
			return rdsbackup.ErrPolicyInUse(name, n)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM policies WHERE name = ? AND type = ?`, name, string(rdsbackup.PolicyCustom))
		return err
	})
}

// AttachPolicy attaches a policy to a user.
func (db *DB) AttachPolicy(ctx context.Context, policyName string, typ rdsbackup.PolicyType, userName string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		if err := policyAndUserExist(ctx, tx, policyName, typ, userName); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM user_policies WHERE user_name = ? AND policy_name = ? AND policy_type = ?`, userName, policyName, string(typ)).Scan(&n); err != nil {
			return fmt.Errorf("attach policy: %w", err)
		} else if n > 0 {
			return rdsbackup.ErrPolicyAttached(policyName, userName)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO user_policies (user_name, policy_name, policy_type, attached_at) VALUES (?, ?, ?, ?)`,
			userName, policyName, string(typ), columns.Unix(db.now()))
		return err
	})
}

// DetachPolicy detaches a policy from a user.
func (db *DB) DetachPolicy(ctx context.Context, policyName string, typ rdsbackup.PolicyType, userName string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		if err := policyAndUserExist(ctx, tx, policyName, typ, userName); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM user_policies WHERE user_name = ? AND policy_name = ? AND policy_type = ?`, userName, policyName, string(typ))
		if err != nil {
			return fmt.Errorf("detach policy: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return rdsbackup.ErrPolicyNotAttached(policyName, userName)
		}
		return nil
	})
}

func policyAndUserExist(ctx context.Context, tx *sql.Tx, policyName string, typ rdsbackup.PolicyType, userName string) error {
	if err := userExists(ctx, tx, userName); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM policies WHERE name = ? AND type = ?`, policyName, string(typ)).Scan(&n); err != nil {
		return fmt.Errorf("find policy: %w", err)
	} else if n == 0 {
		return rdsbackup.ErrPolicyNotFound(policyName, typ)
	}
	return nil
}

// FindUserPolicies lists the policies attached to a user with their
// documents; it runs on every RDS call by a RAM user.
func (db *DB) FindUserPolicies(ctx context.Context, userName string) ([]*rdsbackup.Policy, error) {
	s, err := db.stmt(ctx, `SELECT `+policyColumns+`, up.attached_at FROM user_policies up
		JOIN policies p ON p.name = up.policy_name AND p.type = up.policy_type
		WHERE up.user_name = ? ORDER BY up.attached_at, p.name`)
	if err != nil {
		return nil, fmt.Errorf("find user policies: %w", err)
	}
	rows, err := s.QueryContext(ctx, userName)
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
