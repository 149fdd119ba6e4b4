package rdsbackup

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// BackupPolicy is an instance's data backup policy (DataBackupPolicy in
// the RDS API), plus the log backup settings, which are kept and shown so
// that clients reading them work, although log backup is not implemented.
type BackupPolicy struct {
	InstanceID string
	// Window is the daily one-hour backup window, as minutes after 00:00
	// UTC (PreferredBackupTime "HH:mmZ-HH:mmZ").
	Window int
	// Days are the weekdays with a backup (PreferredBackupPeriod).
	Days          []time.Weekday
	RetentionDays int // BackupRetentionPeriod, 7-730
	Method        BackupMethod

	// Log backup settings, stored and shown as given.
	EnableBackupLog               bool
	LogBackupRetentionPeriod      int
	LocalLogRetentionHours        int
	LocalLogRetentionSpace        string
	HighSpaceUsageProtection      string
	LogBackupLocalRetentionNumber int
	LogBackupFrequency            string
	CompressType                  string
	BackupInterval                string
	Category                      string
	ReleasedKeepPolicy            string

	// Since is when the policy (its schedule) took effect: windows that
	// closed before it are not "missed" and are never caught up.
	Since time.Time
	// Source tells where the policy came from: "default", "config" or "api".
	Source string
	// ConfigHash identifies the config policy last applied, so that an
	// edited config is applied again but an unchanged one does not undo
	// ModifyBackupPolicy.
	ConfigHash string
}

// DefaultBackupPolicy is the policy of an instance that has none: a logical
// backup every day between 18:00 and 19:00 UTC, kept 7 days. Logical,
// because a physical backup needs the server's files on this machine.
func DefaultBackupPolicy(instanceID string) *BackupPolicy {
	return &BackupPolicy{
		InstanceID:                    instanceID,
		Window:                        18 * 60,
		Days:                          []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday},
		RetentionDays:                 7,
		Method:                        MethodLogical,
		LogBackupRetentionPeriod:      7,
		LocalLogRetentionHours:        18,
		LocalLogRetentionSpace:        "30",
		HighSpaceUsageProtection:      "Enable",
		LogBackupLocalRetentionNumber: 60,
		LogBackupFrequency:            "LogInterval",
		CompressType:                  "4",
		BackupInterval:                "-1",
		Category:                      "Standard",
		ReleasedKeepPolicy:            "None",
		Source:                        "default",
	}
}

// Retention is the retention period as a duration.
func (p *BackupPolicy) Retention() time.Duration {
	return time.Duration(p.RetentionDays) * 24 * time.Hour
}

// WindowString renders the window as PreferredBackupTime.
func (p *BackupPolicy) WindowString() string {
	start, end := p.Window, (p.Window+60)%(24*60)
	return fmt.Sprintf("%02d:%02dZ-%02d:%02dZ", start/60, start%60, end/60, end%60)
}

// DaysString renders the weekdays as PreferredBackupPeriod, Monday first.
func (p *BackupPolicy) DaysString() string {
	var names []string
	for _, d := range []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday} {
		if p.HasDay(d) {
			names = append(names, d.String())
		}
	}
	return strings.Join(names, ",")
}

// HasDay reports whether d is a backup day.
func (p *BackupPolicy) HasDay(d time.Weekday) bool {
	for _, x := range p.Days {
		if x == d {
			return true
		}
	}
	return false
}

// ParseWindow reads PreferredBackupTime: "HH:mmZ-HH:mmZ", UTC, a one-hour
// window as the real service offers.
func ParseWindow(s string) (int, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, fmt.Errorf("use HH:mmZ-HH:mmZ, e.g. 18:00Z-19:00Z")
	}
	start, err := parseClock(a)
	if err != nil {
		return 0, err
	}
	end, err := parseClock(b)
	if err != nil {
		return 0, err
	}
	if (end-start+24*60)%(24*60) != 60 {
		return 0, fmt.Errorf("the window must last exactly one hour, e.g. 18:00Z-19:00Z")
	}
	return start, nil
}

func parseClock(s string) (int, error) {
	if len(s) != 6 || s[2] != ':' || s[5] != 'Z' {
		return 0, fmt.Errorf("%q is not HH:mmZ (UTC)", s)
	}
	h, err1 := strconv.Atoi(s[0:2])
	m, err2 := strconv.Atoi(s[3:5])
	if err1 != nil || err2 != nil || h > 23 || m > 59 || h < 0 || m < 0 {
		return 0, fmt.Errorf("%q is not a time of day", s)
	}
	return h*60 + m, nil
}

// ParseDays reads PreferredBackupPeriod: at least two distinct weekdays,
// comma separated, spelled in English (Monday, …).
func ParseDays(s string) ([]time.Weekday, error) {
	seen := map[time.Weekday]bool{}
	var days []time.Weekday
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		d, ok := weekdays[name]
		if !ok {
			return nil, fmt.Errorf("%q is not a weekday (Monday, Tuesday, …, Sunday)", name)
		}
		if !seen[d] {
			seen[d] = true
			days = append(days, d)
		}
	}
	if len(days) < 2 {
		return nil, fmt.Errorf("choose at least two weekdays")
	}
	return days, nil
}

var weekdays = map[string]time.Weekday{
	"Monday": time.Monday, "Tuesday": time.Tuesday, "Wednesday": time.Wednesday, "Thursday": time.Thursday,
	"Friday": time.Friday, "Saturday": time.Saturday, "Sunday": time.Sunday,
}

// PolicyService stores backup policies.
type PolicyService interface {
	// FindBackupPolicy returns the stored policy, or ENOTFOUND.
	FindBackupPolicy(ctx context.Context, instanceID string) (*BackupPolicy, error)
	// FindBackupPolicies returns every stored policy.
	FindBackupPolicies(ctx context.Context) ([]*BackupPolicy, error)
	// PutBackupPolicy stores p and, in the same transaction, sets the
	// ExpectExpireTime of the instance's automated sets from the retention.
	PutBackupPolicy(ctx context.Context, p *BackupPolicy) error
	// PutBackupPolicies stores many policies in one transaction, as
	// PutBackupPolicy each.
	PutBackupPolicies(ctx context.Context, ps []*BackupPolicy) error
}
