package catalogtest

// The neutral table form (rdsbackup.CatalogTables) that `rdsbackup catalog
// copy` moves between catalogs.

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// Filled is what Fill wrote: a few rows of every table.
type Filled struct {
	Instances []*rdsbackup.Instance
	Sets      []*rdsbackup.BackupSet // Sets[0] is being deleted
	Jobs      []*rdsbackup.Job
	Policies  []*rdsbackup.BackupPolicy
	Users     []*rdsbackup.User
	Keys      []*rdsbackup.AccessKey // a root key, then user keys
	RAM       []*rdsbackup.Policy
	Attached  map[string][]string // user → attached policy names
	Setting   []byte              // the value of the setting "catalogtest"

	Logs      []*rdsbackup.LogFile
	Gap       *rdsbackup.LogGap
	Positions map[string]rdsbackup.LogPosition // of Sets[1]
	ServerID  uint32                           // of rm-fill1
	Recovery  *rdsbackup.RecoveryJob
}

// Fill writes rows of every kind into an empty catalog, through its
// interfaces: every table of rdsbackup.CatalogTables gets at least one row.
func Fill(t testing.TB, c Catalog) *Filled {
	t.Helper()
	ctx := t.Context()
	f := &Filled{Attached: map[string][]string{}}
	check := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("fill: %s: %v", what, err)
		}
	}
	var err error
	f.Setting, err = c.CreateSetting(ctx, "catalogtest", []byte("a value\x00with a NUL"))
	check(err, "setting")
	f.Instances = []*rdsbackup.Instance{
		{ID: "rm-fill1", Engine: rdsbackup.EngineMariaDB, DSN: "backup:pa55:w0rd@tcp(10.0.0.1:3306)/?tls=true", Description: "orders, 日本語"},
		{ID: "pgm-fill2", Engine: rdsbackup.EnginePostgreSQL, DSN: "postgres://backup:s3cr%40t@10.0.0.2:5432/postgres"},
	}
	check(c.SyncInstances(ctx, f.Instances), "instances")
	check(c.SetEngineVersion(ctx, "rm-fill1", "10.11.6"), "engine version")
	f.Instances[0].EngineVersion = "10.11.6"

	p := rdsbackup.DefaultBackupPolicy("rm-fill1")
	p.RetentionDays, p.Days, p.Window = 14, []time.Weekday{time.Monday, time.Thursday}, 150
	p.Since, p.Source, p.ConfigHash, p.EnableBackupLog = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), "config", "h", true
	f.Policies = []*rdsbackup.BackupPolicy{p}
	check(c.PutBackupPolicies(ctx, f.Policies), "policies")

	t0 := time.Date(2025, 2, 1, 18, 5, 0, 0, time.UTC)
	doomed := polSet("rm-fill1", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, t0, time.Time{})
	full := newSet("rm-fill1", t0.Add(24*time.Hour))
	full.Mode, full.DBNames, full.CopyOnly = rdsbackup.BackupManual, []string{"shop", `we"ird,name`}, true
	full.Artifacts = []rdsbackup.Artifact{{Database: "shop", Kind: rdsbackup.PartDatabase, Offset: 0, Length: 10, Checksum: "1"},
		{Database: `we"ird,name`, Kind: rdsbackup.PartDatabase, Offset: 10, Length: 5, Checksum: "2"}}
	failed := polSet("pgm-fill2", rdsbackup.BackupFailed, rdsbackup.BackupManual, t0, t0.Add(30*24*time.Hour))
	f.Sets = []*rdsbackup.BackupSet{doomed, full, failed}
	for _, s := range f.Sets {
		check(c.CreateBackupSet(ctx, s), "set")
	}
	check(c.MarkBackupSetsDeleting(ctx, []int64{doomed.ID}), "mark deleting")

	f.Jobs = []*rdsbackup.Job{
		{InstanceID: "rm-fill1", Status: rdsbackup.JobFinished, Mode: rdsbackup.BackupAutomated, Method: rdsbackup.MethodLogical,
			Strategy: "instance", Progress: 100, BackupSetID: doomed.ID, Window: t0.Truncate(time.Hour)},
		{InstanceID: "pgm-fill2", Status: rdsbackup.JobFailed, Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical,
			Strategy: "db", Databases: []string{"a", "b"}, Progress: 30, Error: "connection reset"},
	}
	for _, j := range f.Jobs {
		check(c.CreateJob(ctx, j), "job")
	}

	f.Users = []*rdsbackup.User{newUser("alice", "200000000000000001"), newUser("bob", "200000000000000002")}
	for _, u := range f.Users {
		check(c.CreateUser(ctx, u), "user")
	}
	f.Keys = []*rdsbackup.AccessKey{
		{ID: "LTAI5tFillRoot000000001", Secret: "root-secret-0000000000000000000", Status: rdsbackup.KeyActive},
		{ID: "LTAI5tFillAlice00000001", Secret: "alice/secret+=000000000000000000", UserName: "alice", Status: rdsbackup.KeyInactive},
	}
	for _, k := range f.Keys {
		check(c.CreateAccessKey(ctx, k), "key")
	}
	f.RAM = []*rdsbackup.Policy{
		{Name: "AliyunRDSReadOnlyAccess", Type: rdsbackup.PolicySystem, Description: "read", Document: policyDoc("rds:Describe*"), DefaultVersion: "v1"},
		{Name: "Custom-1", Type: rdsbackup.PolicyCustom, Document: policyDoc("rds:DescribeBackups"), DefaultVersion: "v2"},
	}
	for _, p := range f.RAM {
		check(c.CreatePolicy(ctx, p), "RAM policy")
	}
	check(c.AttachPolicy(ctx, "Custom-1", rdsbackup.PolicyCustom, "alice"), "attach")
	check(c.AttachPolicy(ctx, "AliyunRDSReadOnlyAccess", rdsbackup.PolicySystem, "alice"), "attach")
	f.Attached["alice"] = []string{"AliyunRDSReadOnlyAccess", "Custom-1"}
	fillPITR(t, c, f)
	return f
}

// Check checks, through the catalog's interfaces, that c holds what Fill
// wrote (c may be the catalog Fill wrote to, reopened, or a copy of it).
func (f *Filled) Check(t testing.TB, c Catalog) {
	t.Helper()
	ctx := t.Context()
	if v, err := c.FindSetting(ctx, "catalogtest"); err != nil || !slices.Equal(v, f.Setting) {
		t.Errorf("setting: %q, %v", v, err)
	}
	insts, total, err := c.FindInstances(ctx, 0, 0)
	if err != nil || total != len(f.Instances) {
		t.Errorf("instances: %d, %v", total, err)
	}
	for _, want := range f.Instances {
		got, err := c.FindInstance(ctx, want.ID)
		if err != nil {
			t.Errorf("instance %s: %v", want.ID, err)
		} else if d := diff(got, want, "CreatedAt", "UpdatedAt"); d != "" {
			t.Errorf("instance %s: %s", want.ID, d)
		}
	}
	_ = insts
	for _, want := range f.Policies {
		got, err := c.FindBackupPolicy(ctx, want.InstanceID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("policy of %s: %+v, %v, want %+v", want.InstanceID, got, err, want)
		}
	}
	for i, want := range f.Sets {
		got, err := c.FindBackupSet(ctx, want.ID)
		if i == 0 {
			if rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
				t.Errorf("set %d being deleted: %v, want ENOTFOUND", want.ID, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("set %d: %v", want.ID, err)
		} else if d := diff(got, stored(want)); d != "" {
			t.Errorf("set %d: %s", want.ID, d)
		}
	}
	deleting, err := c.FindDeletingBackupSets(ctx)
	if err != nil || len(deleting) != 1 || diff(deleting[0], stored(f.Sets[0])) != "" {
		t.Errorf("sets being deleted: %v, %v, want set %d", setIDs(deleting), err, f.Sets[0].ID)
	}
	jobs, err := c.FindJobs(ctx, rdsbackup.JobFilter{})
	if err != nil || len(jobs) != len(f.Jobs) {
		t.Errorf("jobs: %d, %v", len(jobs), err)
	}
	for _, want := range f.Jobs {
		got, err := c.FindJobs(ctx, rdsbackup.JobFilter{ID: &want.ID})
		if err != nil || len(got) != 1 {
			t.Errorf("job %d: %v, %v", want.ID, got, err)
		} else if d := diff(got[0], want, "CreatedAt", "UpdatedAt"); d != "" {
			t.Errorf("job %d: %s", want.ID, d)
		} else if !got[0].CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("job %d: CreatedAt %v, want %v", want.ID, got[0].CreatedAt, want.CreatedAt)
		}
	}
	if last, err := c.FindLastWindows(ctx); err != nil || !last["rm-fill1"].Equal(f.Jobs[0].Window) {
		t.Errorf("last windows: %v, %v", last, err)
	}
	for _, want := range f.Users {
		got, err := c.FindUser(ctx, want.Name)
		if err != nil {
			t.Errorf("user %s: %v", want.Name, err)
		} else if d := diff(got, want); d != "" {
			t.Errorf("user %s: %s", want.Name, d)
		}
	}
	for _, want := range f.Keys {
		got, err := c.FindAccessKey(ctx, want.ID)
		if err != nil {
			t.Errorf("key %s: %v", want.ID, err)
		} else if d := diff(got, want); d != "" {
			t.Errorf("key %s: %s", want.ID, d)
		}
	}
	for _, want := range f.RAM {
		got, err := c.FindPolicy(ctx, want.Name, want.Type)
		if err != nil {
			t.Errorf("RAM policy %s: %v", want.Name, err)
		} else if d := diff(got, want, "AttachmentCount"); d != "" {
			t.Errorf("RAM policy %s: %s", want.Name, d)
		}
	}
	for user, names := range f.Attached {
		ps, err := c.FindUserPolicies(ctx, user)
		var got []string
		for _, p := range ps {
			got = append(got, p.Name)
		}
		slices.Sort(got)
		if err != nil || !slices.Equal(got, names) {
			t.Errorf("policies of %s: %v, %v, want %v", user, got, err, names)
		}
	}
	f.checkPITR(t, c)
	// Ids go on above the highest one Fill was given.
	var highest int64
	for _, s := range f.Sets {
		highest = max(highest, s.ID)
	}
	for _, j := range f.Jobs {
		highest = max(highest, j.ID)
	}
	if rows := exportAll(t, c, "backup_ids"); len(rows) != 1 || rows[0][0].(int64) < highest {
		t.Errorf("backup_ids: %v, want a row of at least %d", rows, highest)
	}
}

func exportAll(t testing.TB, c Catalog, table string) []rdsbackup.CatalogRow {
	t.Helper()
	var rows []rdsbackup.CatalogRow
	if err := c.ExportRows(t.Context(), table, func(r rdsbackup.CatalogRow) error {
		rows = append(rows, r)
		return nil
	}); err != nil {
		t.Fatalf("export %s: %v", table, err)
	}
	return rows
}

// testTransfer: a filled catalog exported table by table and imported into
// a new one gives the same rows (counts and checksums), the copy reads back
// the same through every interface, with the same master key, and ids go
// on above the copied ones.
func testTransfer(t *testing.T, h Harness) {
	ctx := t.Context()
	src := Open(t, h.New(t))
	f := Fill(t, src)
	for _, tb := range rdsbackup.CatalogTables {
		rows := exportAll(t, src, tb.Name)
		if len(rows) == 0 {
			t.Errorf("table %s: Fill wrote no row of it; a new table needs rows in catalogtest.Fill", tb.Name)
		}
		for _, r := range rows {
			if err := tb.CheckRow(r); err != nil {
				t.Errorf("export: %v", err)
			}
		}
	}
	for _, bad := range []string{"migrations", "nope", "backup_sets; DROP TABLE users"} {
		wantCode(t, src.ExportRows(ctx, bad, func(rdsbackup.CatalogRow) error { return nil }), rdsbackup.EINVALID, "export table %q", bad)
	}

	dstOpen := h.New(t)
	dst := Open(t, dstOpen)
	report, err := rdsbackup.CopyCatalog(ctx, src, dst, nil)
	ok(t, err, "copy")
	if len(report.Tables) != len(rdsbackup.CatalogTables) {
		t.Errorf("copy report has %d tables, want %d", len(report.Tables), len(rdsbackup.CatalogTables))
	}
	for _, tb := range rdsbackup.CatalogTables {
		a, err := rdsbackup.SummarizeTable(ctx, src, tb.Name)
		ok(t, err, "summarize source")
		b, err := rdsbackup.SummarizeTable(ctx, dst, tb.Name)
		ok(t, err, "summarize copy")
		if a != b || a.Rows == 0 {
			t.Errorf("table %s: source %+v, copy %+v", tb.Name, a, b)
		}
	}
	f.Check(t, dst)
	// The copy is the source's: its master key check too, so a handle with
	// another key is refused, and one with the key opens it.
	ok(t, dst.Close(), "close the copy")
	if c, err := dstOpen(OtherKey); err == nil {
		c.Close()
		t.Error("the copy opened with another master key")
	}
	dst = Open(t, dstOpen)
	f.Check(t, dst)
	s := polSet("rm-fill1", rdsbackup.BackupFailed, rdsbackup.BackupManual, time.Now(), time.Time{})
	createSets(t, dst, s)
	j := windowJob("rm-fill1", time.Time{})
	ok(t, dst.CreateJob(ctx, j), "create a job in the copy")
	for _, old := range append(slices.Clone(f.Sets), s) {
		if old != s && (old.ID >= s.ID || old.ID >= j.ID) {
			t.Errorf("the copy gave id %d (set) or %d (job), not above the copied set %d", s.ID, j.ID, old.ID)
		}
	}

	// A copy into a catalog that is not empty is refused before it writes.
	_, err = rdsbackup.CopyCatalog(ctx, src, dst, nil)
	wantCode(t, err, rdsbackup.ECONFLICT, "copy into a catalog with rows")
	if rows := exportAll(t, dst, "users"); len(rows) != len(f.Users) {
		t.Errorf("the refused copy changed the target: %d users", len(rows))
	}
	// Import refuses rows that do not fit the table.
	if err := dst.ImportRows(ctx, "users", []rdsbackup.CatalogRow{{"x"}}); err == nil {
		t.Error("import of a short row succeeded")
	}
}
