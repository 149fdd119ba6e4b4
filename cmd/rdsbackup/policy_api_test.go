package main

// DescribeBackupPolicy and ModifyBackupPolicy through the official Go SDK:
// the default policy, every field's change, refusals that change nothing,
// policies from the config file and their survival across restarts, and
// the expiry of automated sets following the retention.

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup"
)

var everyDay = []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}

// defaultPolicyView is DescribeBackupPolicy of an instance without a
// policy of its own, as the README documents it (PreferredNextBackupTime
// aside).
func defaultPolicyView() rds.DescribeBackupPolicyResponse {
	return rds.DescribeBackupPolicyResponse{
		BackupRetentionPeriod:         7,
		PreferredBackupTime:           "18:00Z-19:00Z",
		PreferredBackupPeriod:         "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday",
		BackupMethod:                  "Logical",
		BackupLog:                     "Disabled",
		EnableBackupLog:               "0",
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
		ArchiveBackupKeepPolicy:       "KeepAll",
		ArchiveBackupRetentionPeriod:  "0",
		ArchiveBackupKeepCount:        "0",
		Duplication:                   "Disable",
	}
}

// withoutNext drops PreferredNextBackupTime, which moves with the clock.
func withoutNext(v rds.DescribeBackupPolicyResponse) rds.DescribeBackupPolicyResponse {
	v.PreferredNextBackupTime = ""
	return v
}

func TestBackupPolicyDefault(t *testing.T) {
	t.Parallel()
	pc := &polConfig{DataDir: t.TempDir(), Insts: []polInst{{ID: "rm-pdef", Engine: "MySQL", DSN: fakeDSN}}}
	s := pc.start(t)
	c := rootClients(t, s)

	before := time.Now()
	p := describePolicy(t, c, "rm-pdef")
	after := time.Now()
	if got, want := withoutNext(policyView(p)), defaultPolicyView(); got != want {
		t.Errorf("default policy:\n got %+v\nwant %+v", got, want)
	}
	checkNextBackup(t, p.PreferredNextBackupTime, 18*60, everyDay, before, after)

	// The SDK's BackupPolicyMode values are accepted; others are refused.
	req := rds.CreateDescribeBackupPolicyRequest()
	req.DBInstanceId, req.BackupPolicyMode = "rm-pdef", "LogBackupPolicy"
	if _, err := c.RDS.DescribeBackupPolicy(req); err != nil {
		t.Errorf("DescribeBackupPolicy BackupPolicyMode=LogBackupPolicy: %v", err)
	}
	req = rds.CreateDescribeBackupPolicyRequest()
	req.DBInstanceId, req.BackupPolicyMode = "rm-pdef", "Other"
	_, err := c.RDS.DescribeBackupPolicy(req)
	if se := wantServerError(t, err, rdsbackup.EINVALID, 400); !strings.Contains(se.Message(), "BackupPolicyMode") {
		t.Errorf("message does not name BackupPolicyMode: %s", se.Message())
	}
	_, err = tryDescribePolicy(c, "rm-nope")
	wantServerError(t, err, rdsbackup.EInstanceIdNotFound, 400)
}

func TestBackupPolicyModifyEachField(t *testing.T) {
	t.Parallel()
	pc := &polConfig{DataDir: t.TempDir(), Insts: []polInst{{ID: "rm-pmod", Engine: "MySQL", DSN: fakeDSN}}}
	s := pc.start(t)
	c := rootClients(t, s)
	const inst = "rm-pmod"

	want := defaultPolicyView()
	steps := []struct {
		name   string
		setup  func(*rds.ModifyBackupPolicyRequest)
		change func(*rds.DescribeBackupPolicyResponse)
	}{
		{"PreferredBackupTime", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = "02:00Z-03:00Z" },
			func(v *rds.DescribeBackupPolicyResponse) { v.PreferredBackupTime = "02:00Z-03:00Z" }},
		{"PreferredBackupTime across midnight", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = "23:00Z-00:00Z" },
			func(v *rds.DescribeBackupPolicyResponse) { v.PreferredBackupTime = "23:00Z-00:00Z" }},
		{"PreferredBackupPeriod", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupPeriod = "Friday,Tuesday" },
			func(v *rds.DescribeBackupPolicyResponse) { v.PreferredBackupPeriod = "Tuesday,Friday" }},
		{"BackupRetentionPeriod", func(r *rds.ModifyBackupPolicyRequest) { r.BackupRetentionPeriod = "30" },
			func(v *rds.DescribeBackupPolicyResponse) { v.BackupRetentionPeriod = 30 }},
		{"BackupRetentionPeriod 730", func(r *rds.ModifyBackupPolicyRequest) { r.BackupRetentionPeriod = "730" },
			func(v *rds.DescribeBackupPolicyResponse) { v.BackupRetentionPeriod = 730 }},
		{"BackupMethod", func(r *rds.ModifyBackupPolicyRequest) { r.BackupMethod = "Physical" },
			func(v *rds.DescribeBackupPolicyResponse) { v.BackupMethod = "Physical" }},
		// Turning log backup on needs a server that can stream its log
		// (pitr_e2e_test.go); this one cannot be reached.
		{"BackupLog", func(r *rds.ModifyBackupPolicyRequest) { r.BackupLog = "Enable" }, nil},
		{"EnableBackupLog", func(r *rds.ModifyBackupPolicyRequest) { r.EnableBackupLog = "False" },
			func(v *rds.DescribeBackupPolicyResponse) { v.BackupLog, v.EnableBackupLog = "Disabled", "0" }},
		{"LocalLogRetentionHours", func(r *rds.ModifyBackupPolicyRequest) { r.LocalLogRetentionHours = "24" },
			func(v *rds.DescribeBackupPolicyResponse) { v.LocalLogRetentionHours = 24 }},
		{"LocalLogRetentionSpace", func(r *rds.ModifyBackupPolicyRequest) { r.LocalLogRetentionSpace = "40" },
			func(v *rds.DescribeBackupPolicyResponse) { v.LocalLogRetentionSpace = "40" }},
		{"HighSpaceUsageProtection", func(r *rds.ModifyBackupPolicyRequest) { r.HighSpaceUsageProtection = "Disable" },
			func(v *rds.DescribeBackupPolicyResponse) { v.HighSpaceUsageProtection = "Disable" }},
		{"LogBackupLocalRetentionNumber", func(r *rds.ModifyBackupPolicyRequest) { r.LogBackupLocalRetentionNumber = requests.NewInteger(50) },
			func(v *rds.DescribeBackupPolicyResponse) { v.LogBackupLocalRetentionNumber = 50 }},
		{"LogBackupRetentionPeriod", func(r *rds.ModifyBackupPolicyRequest) { r.LogBackupRetentionPeriod = "14" },
			func(v *rds.DescribeBackupPolicyResponse) { v.LogBackupRetentionPeriod = 14 }},
		{"CompressType", func(r *rds.ModifyBackupPolicyRequest) { r.CompressType = "8" },
			func(v *rds.DescribeBackupPolicyResponse) { v.CompressType = "8" }},
		{"BackupInterval", func(r *rds.ModifyBackupPolicyRequest) { r.BackupInterval = "30" },
			func(v *rds.DescribeBackupPolicyResponse) { v.BackupInterval = "30" }},
		{"Category", func(r *rds.ModifyBackupPolicyRequest) { r.Category = "Flash" },
			func(v *rds.DescribeBackupPolicyResponse) { v.Category = "Flash" }},
		{"ReleasedKeepPolicy", func(r *rds.ModifyBackupPolicyRequest) { r.ReleasedKeepPolicy = "All" },
			func(v *rds.DescribeBackupPolicyResponse) { v.ReleasedKeepPolicy = "All" }},
		{"LogBackupFrequency", func(r *rds.ModifyBackupPolicyRequest) { r.LogBackupFrequency = "LogInterval" },
			func(v *rds.DescribeBackupPolicyResponse) {}},
		{"log settings in LogBackupPolicy mode", func(r *rds.ModifyBackupPolicyRequest) {
			r.BackupPolicyMode, r.LocalLogRetentionHours, r.EnableBackupLog = "LogBackupPolicy", "48", "0"
		}, func(v *rds.DescribeBackupPolicyResponse) {
			v.LocalLogRetentionHours = 48
		}},
		{"EnableBackupLog on an unreachable server", func(r *rds.ModifyBackupPolicyRequest) {
			r.BackupPolicyMode, r.LocalLogRetentionHours, r.EnableBackupLog = "LogBackupPolicy", "72", "1"
		}, nil},
		{"several at once", func(r *rds.ModifyBackupPolicyRequest) {
			r.PreferredBackupTime, r.PreferredBackupPeriod, r.BackupRetentionPeriod, r.BackupMethod = "05:00Z-06:00Z", "Sunday,Monday,Saturday", "15", "Logical"
		}, func(v *rds.DescribeBackupPolicyResponse) {
			v.PreferredBackupTime, v.PreferredBackupPeriod, v.BackupRetentionPeriod, v.BackupMethod = "05:00Z-06:00Z", "Monday,Saturday,Sunday", 15, "Logical"
		}},
	}
	for _, st := range steps {
		if st.change == nil {
			// Refused, and nothing changes.
			_, err := modifyPolicy(c, inst, st.setup)
			se := wantServerError(t, err, rdsbackup.ELogBackupDenied, 403)
			if !strings.Contains(se.Message(), "could not be checked") {
				t.Errorf("ModifyBackupPolicy %s: %s", st.name, se.Message())
			}
			if v := withoutNext(policyView(describePolicy(t, c, inst))); v != want {
				t.Errorf("after a refused ModifyBackupPolicy %s:\n got %+v\nwant %+v", st.name, v, want)
			}
			continue
		}
		resp := mustModifyPolicy(t, c, inst, st.setup)
		st.change(&want)
		got := describePolicy(t, c, inst)
		if v := withoutNext(policyView(got)); v != want {
			t.Errorf("after ModifyBackupPolicy %s:\n got %+v\nwant %+v", st.name, v, want)
		}
		if resp.DBInstanceID != inst || resp.CompressType != got.CompressType || resp.EnableBackupLog != got.EnableBackupLog ||
			resp.LocalLogRetentionHours != got.LocalLogRetentionHours || resp.LocalLogRetentionSpace != got.LocalLogRetentionSpace ||
			resp.HighSpaceUsageProtection != got.HighSpaceUsageProtection || resp.LogBackupLocalRetentionNumber != got.LogBackupLocalRetentionNumber {
			t.Errorf("ModifyBackupPolicy %s answered %+v, the policy is %+v", st.name, resp, got)
		}
	}

	// PreferredNextBackupTime follows the window and the days: the first
	// preferred day's window after now.
	now := time.Now().UTC()
	away := now.Add(3 * time.Hour).Truncate(time.Hour)
	tomorrow, later := now.AddDate(0, 0, 1).Weekday(), now.AddDate(0, 0, 4).Weekday()
	mustModifyPolicy(t, c, inst, func(r *rds.ModifyBackupPolicyRequest) {
		r.PreferredBackupTime = away.Format("15:04Z") + "-" + away.Add(time.Hour).Format("15:04Z")
		r.PreferredBackupPeriod = tomorrow.String() + "," + later.String()
	})
	before := time.Now()
	got := describePolicy(t, c, inst)
	checkNextBackup(t, got.PreferredNextBackupTime, away.Hour()*60, []time.Weekday{tomorrow, later}, before, time.Now())
	if next, _ := time.Parse("2006-01-02T15:04Z", got.PreferredNextBackupTime); !next.After(now.Add(time.Hour)) || next.Weekday() != tomorrow && next.Weekday() != later {
		t.Errorf("PreferredNextBackupTime %s is not on %s or %s", got.PreferredNextBackupTime, tomorrow, later)
	}

	// Every field survives a restart.
	s.Stop()
	s = pc.start(t)
	c = rootClients(t, s)
	if again := describePolicy(t, c, inst); policyView(again) != policyView(got) {
		t.Errorf("after a restart:\n got %+v\nwant %+v", policyView(again), policyView(got))
	}
}

func TestBackupPolicyRejectedChangesNothing(t *testing.T) {
	t.Parallel()
	pc := &polConfig{DataDir: t.TempDir(), Insts: []polInst{{ID: "rm-prej", Engine: "MySQL", DSN: fakeDSN}}}
	s := pc.start(t)
	c := rootClients(t, s)
	const inst = "rm-prej"
	// A policy that is not the default, so that falling back to the
	// default would show.
	mustModifyPolicy(t, c, inst, func(r *rds.ModifyBackupPolicyRequest) {
		r.PreferredBackupTime, r.PreferredBackupPeriod, r.BackupRetentionPeriod = "04:00Z-05:00Z", "Monday,Wednesday", "10"
	})
	base := policyView(describePolicy(t, c, inst))

	cases := []struct {
		field string
		code  string
		setup func(*rds.ModifyBackupPolicyRequest)
	}{
		{"PreferredBackupTime", "", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = "25:00Z-26:00Z" }},
		{"PreferredBackupTime", "", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = "01:00Z-03:00Z" }},
		{"PreferredBackupTime", "", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = "1:00-2:00" }},
		{"PreferredBackupTime", "", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = "01:00Z" }},
		{"PreferredBackupTime", "", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = "01:00-02:00" }},
		{"PreferredBackupTime", "", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = "01:60Z-02:60Z" }},
		{"PreferredBackupPeriod", "", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupPeriod = "Monday" }},
		{"PreferredBackupPeriod", "", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupPeriod = "Monday,Monday" }},
		{"PreferredBackupPeriod", "", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupPeriod = "Funday" }},
		{"PreferredBackupPeriod", "", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupPeriod = "Monday,Funday" }},
		{"PreferredBackupPeriod", "", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupPeriod = "Monday,,Friday" }},
		{"BackupRetentionPeriod", "", func(r *rds.ModifyBackupPolicyRequest) { r.BackupRetentionPeriod = "6" }},
		{"BackupRetentionPeriod", "", func(r *rds.ModifyBackupPolicyRequest) { r.BackupRetentionPeriod = "731" }},
		{"BackupRetentionPeriod", "", func(r *rds.ModifyBackupPolicyRequest) { r.BackupRetentionPeriod = "x" }},
		{"BackupMethod", rdsbackup.EUnsupportedMethod, func(r *rds.ModifyBackupPolicyRequest) { r.BackupMethod = "Snapshot" }},
		{"BackupMethod", "", func(r *rds.ModifyBackupPolicyRequest) { r.BackupMethod = "Fast" }},
		{"BackupPolicyMode", "", func(r *rds.ModifyBackupPolicyRequest) { r.BackupPolicyMode = "Other" }},
		{"LocalLogRetentionHours", "", func(r *rds.ModifyBackupPolicyRequest) { r.LocalLogRetentionHours = "169" }},
		{"LocalLogRetentionHours", "", func(r *rds.ModifyBackupPolicyRequest) { r.LocalLogRetentionHours = "-1" }},
		{"LocalLogRetentionSpace", "", func(r *rds.ModifyBackupPolicyRequest) { r.LocalLogRetentionSpace = "51" }},
		{"HighSpaceUsageProtection", "", func(r *rds.ModifyBackupPolicyRequest) { r.HighSpaceUsageProtection = "Maybe" }},
		{"LogBackupLocalRetentionNumber", "", func(r *rds.ModifyBackupPolicyRequest) { r.LogBackupLocalRetentionNumber = requests.NewInteger(5) }},
		{"LogBackupLocalRetentionNumber", "", func(r *rds.ModifyBackupPolicyRequest) { r.LogBackupLocalRetentionNumber = requests.NewInteger(101) }},
		{"LogBackupRetentionPeriod", "", func(r *rds.ModifyBackupPolicyRequest) { r.LogBackupRetentionPeriod = "6" }},
		// Longer than the data retention (10 days).
		{"LogBackupRetentionPeriod", "", func(r *rds.ModifyBackupPolicyRequest) { r.LogBackupRetentionPeriod = "11" }},
		{"CompressType", "", func(r *rds.ModifyBackupPolicyRequest) { r.CompressType = "3" }},
		{"BackupInterval", "", func(r *rds.ModifyBackupPolicyRequest) { r.BackupInterval = "15" }},
		{"Category", "", func(r *rds.ModifyBackupPolicyRequest) { r.Category = "Cheap" }},
		{"ReleasedKeepPolicy", "", func(r *rds.ModifyBackupPolicyRequest) { r.ReleasedKeepPolicy = "Some" }},
		{"EnableBackupLog", "", func(r *rds.ModifyBackupPolicyRequest) { r.EnableBackupLog = "yes" }},
		{"BackupLog", "", func(r *rds.ModifyBackupPolicyRequest) { r.BackupLog = "On" }},
		// One bad value among good ones: none of them applies.
		{"BackupRetentionPeriod", "", func(r *rds.ModifyBackupPolicyRequest) {
			r.PreferredBackupTime, r.PreferredBackupPeriod, r.BackupMethod, r.BackupRetentionPeriod = "07:00Z-08:00Z", "Tuesday,Friday", "Physical", "6"
		}},
		{"PreferredBackupTime", "", func(r *rds.ModifyBackupPolicyRequest) {
			r.BackupRetentionPeriod, r.LocalLogRetentionHours, r.PreferredBackupTime = "30", "20", "07:00Z-07:30Z"
		}},
		{"LocalLogRetentionHours", "", func(r *rds.ModifyBackupPolicyRequest) {
			r.PreferredBackupTime, r.BackupRetentionPeriod, r.LocalLogRetentionHours = "07:00Z-08:00Z", "30", "999"
		}},
	}
	for i, tc := range cases {
		_, err := modifyPolicy(c, inst, tc.setup)
		var se *sdkerrors.ServerError
		if err == nil {
			t.Errorf("case %d (%s): accepted", i, tc.field)
		} else if !errors.As(err, &se) || se.HttpStatus() != 400 {
			t.Errorf("case %d (%s): %v, want a 400 error", i, tc.field, err)
		} else {
			code := tc.code
			if code == "" {
				code = rdsbackup.EINVALID
			}
			if se.ErrorCode() != code {
				t.Errorf("case %d (%s): code %s, want %s (%s)", i, tc.field, se.ErrorCode(), code, se.Message())
			}
			if !strings.Contains(se.Message(), tc.field) {
				t.Errorf("case %d: the message does not name %s: %s", i, tc.field, se.Message())
			}
		}
		if got := policyView(describePolicy(t, c, inst)); withoutNext(got) != withoutNext(base) {
			t.Errorf("case %d (%s): a refused request changed the policy:\n got %+v\nwant %+v", i, tc.field, got, base)
		}
	}
	_, err := modifyPolicy(c, "rm-nope", func(r *rds.ModifyBackupPolicyRequest) { r.BackupRetentionPeriod = "9" })
	wantServerError(t, err, rdsbackup.EInstanceIdNotFound, 400)
}

// TestBackupPolicyFromConfig: a config policy applies at start; a
// ModifyBackupPolicy survives a restart with the same config; an edited
// config policy applies at the next start.
func TestBackupPolicyFromConfig(t *testing.T) {
	t.Parallel()
	pc := &polConfig{DataDir: t.TempDir(), Insts: []polInst{
		{ID: "rm-pcfg", Engine: "MySQL", DSN: fakeDSN, Policy: []string{
			"preferredBackupTime: 03:00Z-04:00Z", "preferredBackupPeriod: Thursday,Monday",
			"backupRetentionPeriod: 14", "backupMethod: Physical"}},
		{ID: "rm-pplain", Engine: "MySQL", DSN: fakeDSN},
	}}
	s := pc.start(t)
	c := rootClients(t, s)
	want := defaultPolicyView()
	want.PreferredBackupTime, want.PreferredBackupPeriod, want.BackupRetentionPeriod, want.BackupMethod = "03:00Z-04:00Z", "Monday,Thursday", 14, "Physical"
	check := func(step string, inst string, want rds.DescribeBackupPolicyResponse, window int, days []time.Weekday) {
		t.Helper()
		before := time.Now()
		got := describePolicy(t, c, inst)
		if v := withoutNext(policyView(got)); v != want {
			t.Errorf("%s: policy of %s:\n got %+v\nwant %+v", step, inst, v, want)
		}
		checkNextBackup(t, got.PreferredNextBackupTime, window, days, before, time.Now())
	}
	mondayThursday := []time.Weekday{time.Monday, time.Thursday}
	check("first start", "rm-pcfg", want, 3*60, mondayThursday)
	check("first start", "rm-pplain", defaultPolicyView(), 18*60, everyDay)

	mustModifyPolicy(t, c, "rm-pcfg", func(r *rds.ModifyBackupPolicyRequest) { r.BackupRetentionPeriod = "21" })
	mustModifyPolicy(t, c, "rm-pplain", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = "05:00Z-06:00Z" })
	want.BackupRetentionPeriod = 21
	plain := defaultPolicyView()
	plain.PreferredBackupTime = "05:00Z-06:00Z"

	s.Stop()
	s = pc.start(t)
	c = rootClients(t, s)
	check("restart, same config", "rm-pcfg", want, 3*60, mondayThursday)
	check("restart, same config", "rm-pplain", plain, 5*60, everyDay)

	// Edit the config's policy: it applies over the stored one.
	pc.Insts[0].Policy = []string{"preferredBackupTime: 04:00Z-05:00Z", "preferredBackupPeriod: Thursday,Monday",
		"backupRetentionPeriod: 28", "backupMethod: Physical"}
	s.Stop()
	s = pc.start(t)
	c = rootClients(t, s)
	want.PreferredBackupTime, want.BackupRetentionPeriod = "04:00Z-05:00Z", 28
	check("restart, edited config", "rm-pcfg", want, 4*60, mondayThursday)
	check("restart, edited config", "rm-pplain", plain, 5*60, everyDay)

	// And it is applied once: a later ModifyBackupPolicy stands again.
	mustModifyPolicy(t, c, "rm-pcfg", func(r *rds.ModifyBackupPolicyRequest) { r.BackupMethod = "Logical" })
	want.BackupMethod = "Logical"
	s.Stop()
	s = pc.start(t)
	c = rootClients(t, s)
	check("restart after a change by the API", "rm-pcfg", want, 4*60, mondayThursday)
}

func TestBackupPolicyConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ line, want string }{
		{"preferredBackupTime: 25:00Z-26:00Z", "preferredBackupTime"},
		{"preferredBackupTime: 01:00Z-03:00Z", "preferredBackupTime"},
		{"preferredBackupPeriod: Monday", "preferredBackupPeriod"},
		{"preferredBackupPeriod: Funday,Monday", "preferredBackupPeriod"},
		{"backupRetentionPeriod: 6", "backupRetentionPeriod"},
		{"backupRetentionPeriod: 731", "backupRetentionPeriod"},
		{"backupMethod: Snapshot", "backupMethod"},
	} {
		pc := &polConfig{DataDir: t.TempDir(), Insts: []polInst{{ID: "rm-bad", Engine: "MySQL", DSN: fakeDSN, Policy: []string{tc.line}}}}
		_, err := ParseConfig([]byte("dataDir: x\n"+pc.yaml()), func(k string) string { return pc.Env[k] })
		if err == nil || !strings.Contains(err.Error(), "backupPolicy") || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "rm-bad") {
			t.Errorf("config backupPolicy %q: %v, want an error naming rm-bad, backupPolicy and %s", tc.line, err, tc.want)
		}
	}
}

// TestBackupPolicyRetentionRecomputesExpiry: changing the retention moves
// the ExpectExpireTime of the instance's automated sets to end + days, and
// of no other set.
func TestBackupPolicyRetentionRecomputesExpiry(t *testing.T) {
	t.Parallel()
	pc := &polConfig{DataDir: t.TempDir(), Insts: []polInst{
		{ID: "rm-pexp", Engine: "MySQL", DSN: fakeDSN},
		{ID: "rm-pexp2", Engine: "MySQL", DSN: fakeDSN},
	}}
	s := pc.start(t)
	c := rootClients(t, s)
	db := openCatalog(t, pc.DataDir)
	t0 := time.Now().UTC().Add(-3 * 24 * time.Hour).Truncate(time.Second)
	day := 24 * time.Hour
	auto := putSet(t, db, pc.DataDir, polSet{Instance: "rm-pexp", Mode: rdsbackup.BackupAutomated, Start: t0, Expire: t0.Add(30*time.Second + 7*day)})
	autoFailed := putSet(t, db, pc.DataDir, polSet{Instance: "rm-pexp", Mode: rdsbackup.BackupAutomated, Status: rdsbackup.BackupFailed, Start: t0.Add(day), Expire: t0.Add(day + 30*time.Second + 7*day)})
	manual := putSet(t, db, pc.DataDir, polSet{Instance: "rm-pexp", Start: t0.Add(2 * day)})
	other := putSet(t, db, pc.DataDir, polSet{Instance: "rm-pexp2", Mode: rdsbackup.BackupAutomated, Start: t0, Expire: t0.Add(30*time.Second + 7*day)})
	db.Close()

	expiries := func(inst string) map[string]string {
		out := map[string]string{}
		for _, b := range listSets(t, c, inst) {
			out[b.BackupId] = b.ExpectExpireTime
		}
		return out
	}
	id := func(s *rdsbackup.BackupSet) string { return strconv.FormatInt(s.ID, 10) }
	wire := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
	check := func(step string, days int) {
		t.Helper()
		got := expiries("rm-pexp")
		want := map[string]string{
			id(auto):       wire(auto.EndTime.Add(time.Duration(days) * day)),
			id(autoFailed): wire(autoFailed.EndTime.Add(time.Duration(days) * day)),
			// A manual set's expiry is fixed when it is recorded (then 7 days).
			id(manual): wire(manual.EndTime.Add(7 * day)),
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: set %s ExpectExpireTime %q, want %q (end + %d days)", step, k, got[k], v, days)
			}
		}
		if got := expiries("rm-pexp2")[id(other)]; got != wire(other.ExpectExpireTime) {
			t.Errorf("%s: the other instance's set expires %q, want %q (unchanged)", step, got, wire(other.ExpectExpireTime))
		}
	}
	check("before", 7)
	mustModifyPolicy(t, c, "rm-pexp", func(r *rds.ModifyBackupPolicyRequest) { r.BackupRetentionPeriod = "30" })
	check("retention 30", 30)
	// A refused change moves nothing.
	if _, err := modifyPolicy(c, "rm-pexp", func(r *rds.ModifyBackupPolicyRequest) { r.BackupRetentionPeriod, r.BackupMethod = "9", "Fast" }); err == nil {
		t.Fatal("BackupMethod Fast accepted")
	}
	check("after a refused change", 30)

	// The expiry survives a restart; a config policy with another retention
	// recomputes it at start.
	s.Stop()
	s = pc.start(t)
	c = rootClients(t, s)
	check("after a restart", 30)
	pc.Insts[0].Policy = []string{"backupRetentionPeriod: 10"}
	s.Stop()
	s = pc.start(t)
	c = rootClients(t, s)
	check("config retention 10", 10)
	if p := describePolicy(t, c, "rm-pexp"); p.BackupRetentionPeriod != 10 {
		t.Errorf("BackupRetentionPeriod %d, want 10 from the config", p.BackupRetentionPeriod)
	}
	checkStorageMatchesCatalog(t, pc.DataDir)
}
