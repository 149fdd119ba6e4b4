package columns

import (
	"encoding/json"
	"fmt"

	"github.com/rdsbackup/rdsbackup"
)

// Scan is a driver's Row.Scan or Rows.Scan.
type Scan func(dest ...any) error

// UserColumns are the columns ScanUser reads.
const UserColumns = `name, id, display_name, email, mobile_phone, comments, created_at, updated_at`

// ScanUser reads a row of UserColumns.
func ScanUser(scan Scan) (*rdsbackup.User, error) {
	var u rdsbackup.User
	var created, updated int64
	if err := scan(&u.Name, &u.ID, &u.DisplayName, &u.Email, &u.MobilePhone, &u.Comments, &created, &updated); err != nil {
		return nil, err
	}
	u.CreatedAt, u.UpdatedAt = FromUnix(created), FromUnix(updated)
	return &u, nil
}

// PolicyColumns are the columns ScanPolicy reads of a RAM policy p, with
// its attachment count; FindUserPolicies adds up.attached_at.
const PolicyColumns = `p.name, p.type, p.description, p.document, p.default_version, p.created_at, p.updated_at,
	(SELECT COUNT(*) FROM user_policies up WHERE up.policy_name = p.name AND up.policy_type = p.type)`

// ScanPolicy reads a row of PolicyColumns, and attached_at after them when
// withAttach.
func ScanPolicy(scan Scan, withAttach bool) (*rdsbackup.Policy, error) {
	var p rdsbackup.Policy
	var typ string
	var created, updated, attached, count int64
	dest := []any{&p.Name, &typ, &p.Description, &p.Document, &p.DefaultVersion, &created, &updated, &count}
	if withAttach {
		dest = append(dest, &attached)
	}
	if err := scan(dest...); err != nil {
		return nil, err
	}
	p.Type, p.AttachmentCount = rdsbackup.PolicyType(typ), int(count)
	p.CreatedAt, p.UpdatedAt, p.AttachedAt = FromUnix(created), FromUnix(updated), FromUnix(attached)
	return &p, nil
}

// BackupPolicyColumns are the columns ScanBackupPolicy reads.
const BackupPolicyColumns = `instance_id, window_minute, days, retention_days, method, enable_backup_log,
	log_backup_retention_period, local_log_retention_hours, local_log_retention_space, high_space_usage_protection,
	log_backup_local_retention_number, log_backup_frequency, compress_type, backup_interval, category,
	released_keep_policy, since, source, config_hash`

// ScanBackupPolicy reads a row of BackupPolicyColumns; intBools reads
// enable_backup_log as 0/1 (SQLite) rather than as a boolean.
func ScanBackupPolicy(scan Scan, intBools bool) (*rdsbackup.BackupPolicy, error) {
	var p rdsbackup.BackupPolicy
	var days, method string
	var enableLog int64
	var since int64
	var enable any = &p.EnableBackupLog
	if intBools {
		enable = &enableLog
	}
	if err := scan(&p.InstanceID, &p.Window, &days, &p.RetentionDays, &method, enable,
		&p.LogBackupRetentionPeriod, &p.LocalLogRetentionHours, &p.LocalLogRetentionSpace, &p.HighSpaceUsageProtection,
		&p.LogBackupLocalRetentionNumber, &p.LogBackupFrequency, &p.CompressType, &p.BackupInterval, &p.Category,
		&p.ReleasedKeepPolicy, &since, &p.Source, &p.ConfigHash); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(days), &p.Days); err != nil {
		return nil, fmt.Errorf("policy days of %s: %w", p.InstanceID, err)
	}
	if intBools {
		p.EnableBackupLog = enableLog == 1
	}
	p.Method = rdsbackup.BackupMethod(method)
	p.Since = FromUnix(since)
	return &p, nil
}
