package api

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// Scheduling is what the policy actions need of the scheduler.
type Scheduling interface {
	// PolicyChanged applies a stored policy to the schedule at once.
	PolicyChanged(p *rdsbackup.BackupPolicy)
	// NextBackup is when the instance's next automated backup is planned.
	NextBackup(instanceID string) time.Time
}

// policy returns an instance's policy, the default when none is stored.
func (s *Server) policy(ctx context.Context, instanceID string) (*rdsbackup.BackupPolicy, error) {
	p, err := s.Policies.FindBackupPolicy(ctx, instanceID)
	if rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND {
		return rdsbackup.DefaultBackupPolicy(instanceID), nil
	}
	return p, err
}

func policyMode(c *call) (string, error) {
	mode, err := enumParam(c, "BackupPolicyMode", "DataBackupPolicy", "LogBackupPolicy")
	if mode == "" {
		mode = "DataBackupPolicy"
	}
	return mode, err
}

type duplicationLocation struct {
	Sotrage  string `json:"Sotrage" xml:"Sotrage"`
	Location struct {
		Endpoint string `json:"Endpoint" xml:"Endpoint"`
		Bucket   string `json:"Bucket" xml:"Bucket"`
	} `json:"Location" xml:"Location"`
}

// describeBackupPolicyResponse follows the Go SDK's field types: counters
// are numbers here, flags booleans, the rest strings.
type describeBackupPolicyResponse struct {
	RequestId                     string              `json:"RequestId" xml:"RequestId"`
	BackupRetentionPeriod         int                 `json:"BackupRetentionPeriod" xml:"BackupRetentionPeriod"`
	PreferredBackupTime           string              `json:"PreferredBackupTime" xml:"PreferredBackupTime"`
	PreferredBackupPeriod         string              `json:"PreferredBackupPeriod" xml:"PreferredBackupPeriod"`
	PreferredNextBackupTime       string              `json:"PreferredNextBackupTime" xml:"PreferredNextBackupTime"`
	BackupMethod                  string              `json:"BackupMethod" xml:"BackupMethod"`
	BackupLog                     string              `json:"BackupLog" xml:"BackupLog"`
	EnableBackupLog               string              `json:"EnableBackupLog" xml:"EnableBackupLog"`
	LogBackupRetentionPeriod      int                 `json:"LogBackupRetentionPeriod" xml:"LogBackupRetentionPeriod"`
	LocalLogRetentionHours        int                 `json:"LocalLogRetentionHours" xml:"LocalLogRetentionHours"`
	LocalLogRetentionSpace        string              `json:"LocalLogRetentionSpace" xml:"LocalLogRetentionSpace"`
	HighSpaceUsageProtection      string              `json:"HighSpaceUsageProtection" xml:"HighSpaceUsageProtection"`
	LogBackupLocalRetentionNumber int                 `json:"LogBackupLocalRetentionNumber" xml:"LogBackupLocalRetentionNumber"`
	LogBackupFrequency            string              `json:"LogBackupFrequency" xml:"LogBackupFrequency"`
	CompressType                  string              `json:"CompressType" xml:"CompressType"`
	BackupInterval                string              `json:"BackupInterval" xml:"BackupInterval"`
	Category                      string              `json:"Category" xml:"Category"`
	ReleasedKeepPolicy            string              `json:"ReleasedKeepPolicy" xml:"ReleasedKeepPolicy"`
	ArchiveBackupRetentionPeriod  string              `json:"ArchiveBackupRetentionPeriod" xml:"ArchiveBackupRetentionPeriod"`
	ArchiveBackupKeepPolicy       string              `json:"ArchiveBackupKeepPolicy" xml:"ArchiveBackupKeepPolicy"`
	ArchiveBackupKeepCount        string              `json:"ArchiveBackupKeepCount" xml:"ArchiveBackupKeepCount"`
	SupportReleasedKeep           int                 `json:"SupportReleasedKeep" xml:"SupportReleasedKeep"`
	SupportVolumeShadowCopy       int                 `json:"SupportVolumeShadowCopy" xml:"SupportVolumeShadowCopy"`
	EnableIncrementDataBackup     bool                `json:"EnableIncrementDataBackup" xml:"EnableIncrementDataBackup"`
	SupportModifyBackupPriority   bool                `json:"SupportModifyBackupPriority" xml:"SupportModifyBackupPriority"`
	BackupPriority                int                 `json:"BackupPriority" xml:"BackupPriority"`
	EnablePitrProtection          bool                `json:"EnablePitrProtection" xml:"EnablePitrProtection"`
	PitrRetentionPeriod           int                 `json:"PitrRetentionPeriod" xml:"PitrRetentionPeriod"`
	Duplication                   string              `json:"Duplication" xml:"Duplication"`
	DuplicationContent            string              `json:"DuplicationContent" xml:"DuplicationContent"`
	DuplicationLocation           duplicationLocation `json:"DuplicationLocation" xml:"DuplicationLocation"`
}

const nextBackupLayout = "2006-01-02T15:04Z"

func (s *Server) describeBackupPolicy(ctx context.Context, c *call) (any, error) {
	id, err := c.required("DBInstanceId")
	if err != nil {
		return nil, err
	}
	if _, err := policyMode(c); err != nil {
		return nil, err
	}
	if _, err := s.findInstance(ctx, id); err != nil {
		return nil, err
	}
	p, err := s.policy(ctx, id)
	if err != nil {
		return nil, err
	}
	resp := &describeBackupPolicyResponse{
		RequestId:                     c.req.RequestID,
		BackupRetentionPeriod:         p.RetentionDays,
		PreferredBackupTime:           p.WindowString(),
		PreferredBackupPeriod:         p.DaysString(),
		BackupMethod:                  string(p.Method),
		BackupLog:                     "Disabled",
		EnableBackupLog:               "0",
		LogBackupRetentionPeriod:      p.LogBackupRetentionPeriod,
		LocalLogRetentionHours:        p.LocalLogRetentionHours,
		LocalLogRetentionSpace:        p.LocalLogRetentionSpace,
		HighSpaceUsageProtection:      p.HighSpaceUsageProtection,
		LogBackupLocalRetentionNumber: p.LogBackupLocalRetentionNumber,
		LogBackupFrequency:            p.LogBackupFrequency,
		CompressType:                  p.CompressType,
		BackupInterval:                p.BackupInterval,
		Category:                      p.Category,
		ReleasedKeepPolicy:            p.ReleasedKeepPolicy,
		ArchiveBackupKeepPolicy:       "KeepAll",
		ArchiveBackupRetentionPeriod:  "0",
		ArchiveBackupKeepCount:        "0",
		Duplication:                   "Disable",
	}
	if p.EnableBackupLog {
		resp.BackupLog, resp.EnableBackupLog = "Enable", "1"
	}
	if s.Scheduling != nil {
		if next := s.Scheduling.NextBackup(id); !next.IsZero() {
			resp.PreferredNextBackupTime = next.UTC().Format(nextBackupLayout)
		}
	}
	return resp, nil
}

// intRange parses an optional integer parameter within [min, max].
func intRange(c *call, name string, lo, hi int) (int, bool, error) {
	v := c.param(name)
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return 0, false, rdsbackup.InvalidParameter(name, "must be a whole number from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi)+", got "+rdsbackup.QuoteValue(v))
	}
	return n, true, nil
}

// modifyBackupPolicy validates every given parameter before changing
// anything: a rejected request leaves the policy as it was. Parameters
// not given keep their current values.
func (s *Server) modifyBackupPolicy(ctx context.Context, c *call) (any, error) {
	id, err := c.required("DBInstanceId")
	if err != nil {
		return nil, err
	}
	mode, err := policyMode(c)
	if err != nil {
		return nil, err
	}
	inst, err := s.findInstance(ctx, id)
	if err != nil {
		return nil, err
	}
	cur, err := s.policy(ctx, id)
	if err != nil {
		return nil, err
	}
	p := *cur
	p.Days = append([]time.Weekday(nil), cur.Days...)
	// Data fields are validated in either mode (a bad value is an error,
	// never silently ignored) but change the policy only in data mode.
	{
		if v := c.param("PreferredBackupTime"); v != "" {
			if p.Window, err = rdsbackup.ParseWindow(v); err != nil {
				return nil, rdsbackup.InvalidParameter("PreferredBackupTime", err.Error())
			}
		}
		if v := c.param("PreferredBackupPeriod"); v != "" {
			if p.Days, err = rdsbackup.ParseDays(v); err != nil {
				return nil, rdsbackup.InvalidParameter("PreferredBackupPeriod", err.Error())
			}
		}
		if n, ok, err := intRange(c, "BackupRetentionPeriod", 7, 730); err != nil {
			return nil, err
		} else if ok {
			p.RetentionDays = n
		}
		if v, err := enumParam(c, "BackupMethod", string(rdsbackup.MethodLogical), string(rdsbackup.MethodPhysical), string(rdsbackup.MethodSnapshot)); err != nil {
			return nil, err
		} else if v == string(rdsbackup.MethodSnapshot) {
			return nil, rdsbackup.Errorf(rdsbackup.EUnsupportedMethod, "BackupMethod Snapshot is not supported: rdsbackup takes Logical and Physical backups.")
		} else if v != "" {
			p.Method = rdsbackup.BackupMethod(v)
		}
		if v, err := enumParam(c, "BackupLog", "Enable", "Disabled"); err != nil {
			return nil, err
		} else if v != "" {
			p.EnableBackupLog = v == "Enable"
		}
		if v, err := enumParam(c, "BackupInterval", "-1", "30", "60", "120", "240", "480"); err != nil {
			return nil, err
		} else if v != "" {
			p.BackupInterval = v
		}
		if v, err := enumParam(c, "Category", "Flash", "Standard"); err != nil {
			return nil, err
		} else if v != "" {
			p.Category = v
		}
		if v, err := enumParam(c, "ReleasedKeepPolicy", "None", "Lastest", "All"); err != nil {
			return nil, err
		} else if v != "" {
			p.ReleasedKeepPolicy = v
		}
		if v, err := enumParam(c, "LogBackupFrequency", "LogInterval"); err != nil {
			return nil, err
		} else if v != "" {
			p.LogBackupFrequency = v
		}
	}
	if mode != "DataBackupPolicy" {
		p.Window, p.Days, p.RetentionDays, p.Method = cur.Window, cur.Days, cur.RetentionDays, cur.Method
		p.BackupInterval, p.Category, p.ReleasedKeepPolicy, p.LogBackupFrequency = cur.BackupInterval, cur.Category, cur.ReleasedKeepPolicy, cur.LogBackupFrequency
	}
	// Log backup settings: accepted in either mode, stored and shown.
	if v, err := enumParam(c, "EnableBackupLog", "True", "1", "False", "0"); err != nil {
		return nil, err
	} else if v != "" {
		p.EnableBackupLog = v == "True" || v == "1"
	}
	if n, ok, err := intRange(c, "LocalLogRetentionHours", 0, 168); err != nil {
		return nil, err
	} else if ok {
		p.LocalLogRetentionHours = n
	}
	if n, ok, err := intRange(c, "LocalLogRetentionSpace", 0, 50); err != nil {
		return nil, err
	} else if ok {
		p.LocalLogRetentionSpace = strconv.Itoa(n)
	}
	if v, err := enumParam(c, "HighSpaceUsageProtection", "Enable", "Disable"); err != nil {
		return nil, err
	} else if v != "" {
		p.HighSpaceUsageProtection = v
	}
	if v := c.param("LogBackupLocalRetentionNumber"); v == "-1" {
		p.LogBackupLocalRetentionNumber = -1
	} else if n, ok, err := intRange(c, "LogBackupLocalRetentionNumber", 6, 100); err != nil {
		return nil, err
	} else if ok {
		p.LogBackupLocalRetentionNumber = n
	}
	if n, ok, err := intRange(c, "LogBackupRetentionPeriod", 7, 730); err != nil {
		return nil, err
	} else if ok {
		p.LogBackupRetentionPeriod = n
	}
	if v, err := enumParam(c, "CompressType", "0", "1", "2", "4", "8"); err != nil {
		return nil, err
	} else if v != "" {
		p.CompressType = v
	}
	if p.LogBackupRetentionPeriod > p.RetentionDays {
		return nil, rdsbackup.InvalidParameter("LogBackupRetentionPeriod", "must not exceed BackupRetentionPeriod ("+strconv.Itoa(p.RetentionDays)+" days)")
	}

	if p.EnableBackupLog && !cur.EnableBackupLog {
		if err := s.checkLogSource(ctx, inst); err != nil {
			return nil, err
		}
	}

	p.Source = "api"
	if p.Window != cur.Window || !sameDays(p.Days, cur.Days) || cur.Since.IsZero() {
		// A new schedule starts now: earlier closed windows were never due.
		p.Since = s.Now().UTC()
	}
	if err := s.Policies.PutBackupPolicy(ctx, &p); err != nil {
		return nil, err
	}
	if s.Scheduling != nil {
		s.Scheduling.PolicyChanged(&p)
	}
	if s.LogPolicyChanged != nil {
		s.LogPolicyChanged()
	}
	enable := "0"
	if p.EnableBackupLog {
		enable = "1"
	}
	return &struct {
		RequestId                     string `json:"RequestId" xml:"RequestId"`
		DBInstanceID                  string `json:"DBInstanceID" xml:"DBInstanceID"`
		CompressType                  string `json:"CompressType" xml:"CompressType"`
		EnableBackupLog               string `json:"EnableBackupLog" xml:"EnableBackupLog"`
		LocalLogRetentionHours        int    `json:"LocalLogRetentionHours" xml:"LocalLogRetentionHours"`
		LocalLogRetentionSpace        string `json:"LocalLogRetentionSpace" xml:"LocalLogRetentionSpace"`
		HighSpaceUsageProtection      string `json:"HighSpaceUsageProtection" xml:"HighSpaceUsageProtection"`
		LogBackupLocalRetentionNumber int    `json:"LogBackupLocalRetentionNumber" xml:"LogBackupLocalRetentionNumber"`
	}{c.req.RequestID, id, p.CompressType, enable, p.LocalLogRetentionHours, p.LocalLogRetentionSpace,
		p.HighSpaceUsageProtection, p.LogBackupLocalRetentionNumber}, nil
}

func sameDays(a, b []time.Weekday) bool {
	var x, y [7]bool
	for _, d := range a {
		x[d] = true
	}
	for _, d := range b {
		y[d] = true
	}
	return x == y
}

// SetDeleter deletes backup sets durably (see backup.Deleter).
type SetDeleter interface {
	Delete(ctx context.Context, sets []*rdsbackup.BackupSet) error
}

// maxDeleteIDs is RDS's limit of BackupIds per DeleteBackup call.
const maxDeleteIDs = 100

// deleteBackup deletes manual backup sets. Every id is checked before any
// set is touched: one bad id and nothing is deleted.
func (s *Server) deleteBackup(ctx context.Context, c *call) (any, error) {
	instanceID, err := c.required("DBInstanceId")
	if err != nil {
		return nil, err
	}
	raw, err := c.required("BackupId")
	if err != nil {
		return nil, err
	}
	if s.Deleter == nil {
		return nil, rdsbackup.Errorf(rdsbackup.EServiceUnavailable, "Deleting backups is not enabled on this service.")
	}
	if _, err := s.findInstance(ctx, instanceID); err != nil {
		return nil, err
	}
	// Counted before it is split: an oversized list costs one pass.
	if n := strings.Count(raw, ",") + 1; n > maxDeleteIDs {
		return nil, rdsbackup.InvalidParameter("BackupId", "at most "+strconv.Itoa(maxDeleteIDs)+" ids per call, got "+strconv.Itoa(n))
	}
	var sets []*rdsbackup.BackupSet
	seen := map[int64]bool{}
	for part := range strings.SplitSeq(raw, ",") {
		part = strings.TrimSpace(part)
		// Terraform's alicloud_rds_backup sends "<DBInstanceId>:<BackupId>".
		if inst, id, ok := strings.Cut(part, ":"); ok {
			if inst != instanceID {
				return nil, rdsbackup.InvalidParameter("BackupId", rdsbackup.QuoteValue(part)+" names instance "+rdsbackup.QuoteValue(inst)+", not "+strconv.Quote(instanceID))
			}
			part = id
		}
		id, err := strconv.ParseInt(part, 10, 64)
		if err != nil || id < 1 {
			return nil, rdsbackup.InvalidParameter("BackupId", rdsbackup.QuoteValue(part)+" is not a backup set id")
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		set, err := s.Backups.FindBackupSet(ctx, id)
		if rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND || (err == nil && set.InstanceID != instanceID) {
			return nil, rdsbackup.Errorf(rdsbackup.EBackupNotFound, "The backup set %d does not exist for instance %s; nothing was deleted.", id, instanceID)
		} else if err != nil {
			return nil, err
		}
		if set.StoreStatus != rdsbackup.StoreEnabled {
			return nil, rdsbackup.Errorf(rdsbackup.EBackupNotDeletable, "The backup set %d is an automated backup (StoreStatus %s): it leaves only when it expires; nothing was deleted.", id, set.StoreStatus)
		}
		sets = append(sets, set)
	}
	if err := s.Deleter.Delete(ctx, sets); err != nil {
		return nil, err
	}
	return &emptyResponse{RequestId: c.req.RequestID}, nil
}

// checkLogSource refuses to turn log backup on for a server that cannot
// stream its log, naming what is missing; nothing is changed then.
func (s *Server) checkLogSource(ctx context.Context, inst *rdsbackup.Instance) error {
	src := s.LogSources[inst.Engine]
	if src == nil {
		return rdsbackup.Errorf(rdsbackup.ELogBackupDenied, "Log backup is not supported for %s instances yet.", inst.Engine)
	}
	err := src.CheckLogSource(ctx, inst)
	switch {
	case err == nil:
		return nil
	case rdsbackup.ErrorCode(err) == rdsbackup.EINVALID:
		return rdsbackup.Errorf(rdsbackup.ELogBackupDenied, "%s", rdsbackup.ErrorMessage(err))
	default:
		s.Logger.Warn("log backup: cannot check the server", "instance", inst.ID, "err", err)
		return rdsbackup.Errorf(rdsbackup.ELogBackupDenied, "Log backup stays off: the server of %s could not be checked (is it reachable with its DSN?). The service log has the details.", inst.ID)
	}
}
