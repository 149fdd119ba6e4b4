// Package catalogtest is the conformance suite of the catalog: the behaviour
// of rdsbackup.Catalog that the rest of the service relies on, checked
// through its interfaces alone — instances, backup sets, jobs, policies,
// deletion, import, RAM identities, settings and the master key check, the
// neutral table form of `rdsbackup catalog copy`, and two handles (two
// processes, two nodes) writing at once. Every catalog implementation runs
// it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		catalogtest.Run(t, catalogtest.Harness{New: func(t *testing.T) func(key []byte) (rdsbackup.Catalog, error) {
//			where := … // a new, empty place for a catalog
//			return func(key []byte) (rdsbackup.Catalog, error) { … open the catalog at where with key … }
//		}})
//	}
//
// The suite cannot control the implementation's clock. Times the caller
// supplies (backup set times) must round-trip at second precision, in UTC;
// times the implementation stamps (CreatedAt, UpdatedAt, AttachedAt) are only
// required to be set, and CreatedAt to be kept by updates.
package catalogtest

import (
	"bytes"
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// Catalog is everything a catalog implementation provides.
type Catalog = rdsbackup.Catalog

// Key is the master key the suite opens catalogs with, OtherKey another.
var (
	Key      = bytes.Repeat([]byte{0x5a}, 32)
	OtherKey = bytes.Repeat([]byte{0xa5}, 32)
)

// Harness makes catalogs for the suite.
type Harness struct {
	// New makes a new, empty catalog for one subtest and returns a function
	// that opens it with a master key, as a process starting on it would.
	// Every call opens another handle on the same catalog; the suite closes
	// the handles it opens. New registers the removal of the catalog with t.
	New func(t *testing.T) (open func(key []byte) (Catalog, error))
}

// Open opens a handle with Key and closes it when the test ends.
func Open(t testing.TB, open func(key []byte) (Catalog, error)) Catalog {
	t.Helper()
	c, err := open(Key)
	if err != nil {
		t.Fatalf("open catalog: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Catalog)
	}{
		{"InstanceSync", testInstanceSync},
		{"InstancePages", testInstancePages},
		{"InstanceEngineVersion", testInstanceEngineVersion},
		{"EngineVersion", testEngineVersion},
		{"BackupSetRoundTrip", testBackupSetRoundTrip},
		{"BackupSetExplicitID", testBackupSetExplicitID},
		{"BackupSetUpdate", testBackupSetUpdate},
		{"BackupSetDelete", testBackupSetDelete},
		{"RecordVerification", testRecordVerification},
		{"BackupSetAvailableNeedsObject", testBackupSetAvailableNeedsObject},
		{"FindBackupSets", testFindBackupSets},
		{"ImportBackupSets", testImportBackupSets},
		{"Jobs", testJobs},
		{"JobAndSetIDsShared", testJobAndSetIDsShared},
		{"JobWindowOncePerInstance", testJobWindowOncePerInstance},
		{"BackupPolicyRoundTrip", testBackupPolicyRoundTrip},
		{"PolicyRecomputesAutomatedExpiry", testPolicyRecomputesAutomatedExpiry},
		{"ManyPolicies", testManyPolicies},
		{"NewSetsExpireByPolicy", testNewSetsExpireByPolicy},
		{"FindExpiredBackupSets", testFindExpiredBackupSets},
		{"MarkBackupSetsDeleting", testMarkBackupSetsDeleting},
		{"Users", testUsers},
		{"AccessKeys", testAccessKeys},
		{"Policies", testPolicies},
		{"RAMNames", testRAMNames},
		{"Settings", testSettings},
		{"LogFiles", testLogFiles},
		{"LogGapsAndPositions", testLogGapsAndPositions},
		{"Recoveries", testRecoveries},
		{"JobLeases", testJobLeases},
		{"Leases", testLeases},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, Open(t, h.New(t))) })
	}
	// These open more than one handle on a catalog.
	multi := []struct {
		name string
		fn   func(*testing.T, func(key []byte) (Catalog, error))
	}{
		{"Reopen", testReopen},
		{"IDsNeverReused", testIDsNeverReused},
		{"MasterKeyCheck", testMasterKeyCheck},
		{"RacingWindowJobs", testRacingWindowJobs},
		{"RacingIDs", testRacingIDs},
		{"RacingAccessKeys", testRacingAccessKeys},
		{"RacingUsersAndPolicies", testRacingUsersAndPolicies},
		{"RacingPolicyAndNewSets", testRacingPolicyAndNewSets},
		{"RacingDeletes", testRacingDeletes},
		{"RacingJobClaims", testRacingJobClaims},
		{"RacingLeases", testRacingLeases},
	}
	for _, tt := range multi {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, h.New(t)) })
	}
	t.Run("Transfer", func(t *testing.T) { testTransfer(t, h) })
}

// testJobAndSetIDsShared: a job's id becomes the BackupId of the set it
// makes, so job ids and set ids never collide, whichever comes first.
func testJobAndSetIDsShared(t *testing.T, c Catalog) {
	ctx := t.Context()
	ok(t, c.SyncInstances(ctx, []*rdsbackup.Instance{{ID: "rm-ids", Engine: rdsbackup.EngineMySQL, DSN: "u:p@tcp(h:1)/"}}), "sync")
	newSet := func(id int64) *rdsbackup.BackupSet {
		return &rdsbackup.BackupSet{ID: id, InstanceID: "rm-ids", Status: rdsbackup.BackupFailed, StartTime: time.Unix(1e9, 0),
			Type: rdsbackup.FullBackup, Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical,
			Initiator: rdsbackup.InitiatorUser, StoreStatus: rdsbackup.StoreEnabled, Engine: rdsbackup.EngineMySQL}
	}
	ok(t, c.CreateBackupSet(ctx, newSet(500)), "create set 500")
	job := &rdsbackup.Job{InstanceID: "rm-ids", Status: rdsbackup.JobNoStart, Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical}
	ok(t, c.CreateJob(ctx, job), "create job")
	if job.ID <= 500 {
		t.Fatalf("job id %d not above the existing set id 500", job.ID)
	}
	auto := newSet(0)
	ok(t, c.CreateBackupSet(ctx, auto), "create set with a new id")
	if auto.ID <= job.ID {
		t.Fatalf("new set id %d not above the job id %d, which its own set will take", auto.ID, job.ID)
	}
	ok(t, c.CreateBackupSet(ctx, newSet(job.ID)), "create the job's set under the job's id")
}

// ---------------------------------------------------------------- helpers

func ok(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

// wantCode checks that err carries the domain error code.
func wantCode(t *testing.T, err error, code string, format string, args ...any) {
	t.Helper()
	if got := rdsbackup.ErrorCode(err); got != code {
		t.Errorf("%s: got error %v (code %q), want code %q", fmt.Sprintf(format, args...), err, got, code)
	}
}

var timeType = reflect.TypeFor[time.Time]()

// diff compares two structs of the same type field by field and describes
// the differences. Times compare as instants, and a non-zero time in got
// must be in UTC; nil and empty slices are equal. Fields named in ignore are
// skipped.
func diff(got, want any, ignore ...string) string {
	gv, wv := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	var out []string
	for i := range gv.NumField() {
		name := gv.Type().Field(i).Name
		if slices.Contains(ignore, name) {
			continue
		}
		g, w := gv.Field(i), wv.Field(i)
		switch {
		case g.Type() == timeType:
			gt, wt := g.Interface().(time.Time), w.Interface().(time.Time)
			if !gt.Equal(wt) {
				out = append(out, fmt.Sprintf("%s: got %v, want %v", name, gt, wt))
			} else if !gt.IsZero() && gt.Location() != time.UTC {
				out = append(out, fmt.Sprintf("%s: got %v, want it in UTC", name, gt))
			}
		case g.Kind() == reflect.Slice && g.Len() == 0 && w.Len() == 0:
		default:
			if !reflect.DeepEqual(g.Interface(), w.Interface()) {
				out = append(out, fmt.Sprintf("%s: got %#v, want %#v", name, g.Interface(), w.Interface()))
			}
		}
	}
	return strings.Join(out, "; ")
}

// checkStamped checks that the implementation set the given times.
func checkStamped(t *testing.T, what string, times map[string]time.Time) {
	t.Helper()
	for name, v := range times {
		if v.IsZero() {
			t.Errorf("%s: %s not set", what, name)
		}
	}
}

// afterSecond sleeps until the wall clock has entered the next second, so
// that a time stamped now differs, at second precision, from one stamped
// before. It is harmless for an implementation with a fake clock.
func afterSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 20*time.Millisecond).Sub(now))
}

// ---------------------------------------------------------------- instances

func testInstanceSync(t *testing.T, c Catalog) {
	ctx := t.Context()
	a := &rdsbackup.Instance{ID: "rm-a", Engine: rdsbackup.EngineMySQL,
		DSN: "backup:pa55w0rd@tcp(10.0.0.1:3306)/?tls=true&timeout=5s", Description: "orders"}
	b := &rdsbackup.Instance{ID: "pgm-b", Engine: rdsbackup.EnginePostgreSQL,
		DSN: "postgres://backup:s3cr%40t@10.0.0.2:5432/postgres?sslmode=require", Description: "billing"}
	ok(t, c.SyncInstances(ctx, []*rdsbackup.Instance{a, b}), "sync")

	first := map[string]*rdsbackup.Instance{}
	for _, want := range []*rdsbackup.Instance{a, b} {
		got, err := c.FindInstance(ctx, want.ID)
		ok(t, err, "find instance %s", want.ID)
		if d := diff(got, want, "EngineVersion", "CreatedAt", "UpdatedAt"); d != "" {
			t.Errorf("instance %s: %s", want.ID, d)
		}
		checkStamped(t, "instance "+want.ID, map[string]time.Time{"CreatedAt": got.CreatedAt, "UpdatedAt": got.UpdatedAt})
		first[want.ID] = got
	}
	_, err := c.FindInstance(ctx, "rm-none")
	wantCode(t, err, rdsbackup.ENOTFOUND, "find unknown instance")

	// A set of pgm-b, which must outlive pgm-b's registration.
	set := newSet("pgm-b", t0)
	ok(t, c.CreateBackupSet(ctx, set), "create backup set")

	afterSecond()
	a2 := &rdsbackup.Instance{ID: "rm-a", Engine: rdsbackup.EngineMySQL,
		DSN: "backup:n3w-pa55w0rd@tcp(10.0.0.9:3306)/", Description: "orders (moved)"}
	c3 := &rdsbackup.Instance{ID: "rm-c", Engine: rdsbackup.EngineMariaDB, DSN: "backup:x@tcp(10.0.0.3:3306)/"}
	ok(t, c.SyncInstances(ctx, []*rdsbackup.Instance{a2, c3}), "second sync")

	got, err := c.FindInstance(ctx, "rm-a")
	ok(t, err, "find updated instance")
	if d := diff(got, a2, "EngineVersion", "CreatedAt", "UpdatedAt"); d != "" {
		t.Errorf("updated instance: %s", d)
	}
	if !got.CreatedAt.Equal(first["rm-a"].CreatedAt) {
		t.Errorf("update changed CreatedAt from %v to %v", first["rm-a"].CreatedAt, got.CreatedAt)
	}
	if got.UpdatedAt.Before(first["rm-a"].UpdatedAt) || got.UpdatedAt.Before(got.CreatedAt) {
		t.Errorf("UpdatedAt %v after update is before CreatedAt %v or the previous UpdatedAt %v",
			got.UpdatedAt, got.CreatedAt, first["rm-a"].UpdatedAt)
	}
	_, err = c.FindInstance(ctx, "pgm-b")
	wantCode(t, err, rdsbackup.ENOTFOUND, "find removed instance")
	got, err = c.FindInstance(ctx, "rm-c")
	ok(t, err, "find added instance")
	if d := diff(got, c3, "EngineVersion", "CreatedAt", "UpdatedAt"); d != "" {
		t.Errorf("added instance: %s", d)
	}
	list, total, err := c.FindInstances(ctx, 0, 0)
	ok(t, err, "find instances")
	if ids := instanceIDs(list); total != 2 || !slices.Equal(ids, []string{"rm-a", "rm-c"}) {
		t.Errorf("instances after second sync: %v (total %d), want [rm-a rm-c] (total 2)", ids, total)
	}
	kept, err := c.FindBackupSet(ctx, set.ID)
	ok(t, err, "find backup set of removed instance")
	if kept.InstanceID != "pgm-b" {
		t.Errorf("backup set of removed instance: instance %q", kept.InstanceID)
	}

	ok(t, c.SyncInstances(ctx, nil), "sync to nothing")
	if list, total, err := c.FindInstances(ctx, 0, 0); err != nil || total != 0 || len(list) != 0 {
		t.Errorf("instances after empty sync: %v (total %d), %v", instanceIDs(list), total, err)
	}
}

func testInstancePages(t *testing.T, c Catalog) {
	ctx := t.Context()
	ids := []string{"rm-d", "rm-b", "pgm-e", "rm-a", "rm-c"}
	var in []*rdsbackup.Instance
	for _, id := range ids {
		in = append(in, &rdsbackup.Instance{ID: id, Engine: rdsbackup.EngineMySQL, DSN: "dsn-of-" + id})
	}
	ok(t, c.SyncInstances(ctx, in), "sync")
	sorted := slices.Sorted(slices.Values(ids))
	for _, tc := range []struct{ offset, limit int }{{0, 0}, {0, 2}, {1, 2}, {4, 10}, {2, 0}, {5, 2}, {9, 0}} {
		list, total, err := c.FindInstances(ctx, tc.offset, tc.limit)
		ok(t, err, "find instances %+v", tc)
		end := len(sorted)
		if tc.limit > 0 {
			end = min(end, tc.offset+tc.limit)
		}
		want := sorted[min(tc.offset, len(sorted)):max(end, min(tc.offset, len(sorted)))]
		if got := instanceIDs(list); total != len(ids) || !slices.Equal(got, want) {
			t.Errorf("offset %d limit %d: %v (total %d), want %v (total %d)", tc.offset, tc.limit, got, total, want, len(ids))
		}
		for _, inst := range list {
			if inst.DSN != "dsn-of-"+inst.ID {
				t.Errorf("instance %s: DSN %q", inst.ID, inst.DSN)
			}
		}
	}
}

// testInstanceEngineVersion: the version read from a server is shown by
// FindInstance and FindInstances, survives a sync that keeps the engine, and
// is forgotten when the engine changes (it described another server).
func testInstanceEngineVersion(t *testing.T, c Catalog) {
	ctx := t.Context()
	maria := &rdsbackup.Instance{ID: "rm-v", Engine: rdsbackup.EngineMariaDB, DSN: "u:p@tcp(h:1)/"}
	pg := &rdsbackup.Instance{ID: "pgm-v", Engine: rdsbackup.EnginePostgreSQL, DSN: "postgres://u:p@h:2/postgres"}
	ok(t, c.SyncInstances(ctx, []*rdsbackup.Instance{maria, pg}), "sync")
	versions := func(when string, want map[string]string) {
		t.Helper()
		for id, v := range want {
			got, err := c.FindInstance(ctx, id)
			ok(t, err, "find instance %s", id)
			if got.EngineVersion != v {
				t.Errorf("%s: FindInstance(%s).EngineVersion = %q, want %q", when, id, got.EngineVersion, v)
			}
		}
		list, _, err := c.FindInstances(ctx, 0, 0)
		ok(t, err, "find instances")
		for _, inst := range list {
			if inst.EngineVersion != want[inst.ID] {
				t.Errorf("%s: FindInstances shows %s with EngineVersion %q, want %q", when, inst.ID, inst.EngineVersion, want[inst.ID])
			}
		}
	}
	versions("before any version is known", map[string]string{"rm-v": "", "pgm-v": ""})

	ok(t, c.SetEngineVersion(ctx, "rm-v", "10.11"), "set version of rm-v")
	ok(t, c.SetEngineVersion(ctx, "pgm-v", "15"), "set version of pgm-v")
	versions("after SetEngineVersion", map[string]string{"rm-v": "10.11", "pgm-v": "15"})
	ok(t, c.SetEngineVersion(ctx, "rm-v", "11.4"), "set a newer version of rm-v")
	versions("after an upgrade", map[string]string{"rm-v": "11.4", "pgm-v": "15"})

	// A new DSN, same engine: still the same instance, as far as anyone knows.
	maria.DSN, maria.Description = "u:p@tcp(h2:1)/", "moved"
	pgAsMySQL := &rdsbackup.Instance{ID: "pgm-v", Engine: rdsbackup.EngineMySQL, DSN: "u:p@tcp(h:3)/"}
	ok(t, c.SyncInstances(ctx, []*rdsbackup.Instance{maria, pgAsMySQL}), "second sync")
	versions("after a sync that changed one engine", map[string]string{"rm-v": "11.4", "pgm-v": ""})

	wantCode(t, c.SetEngineVersion(ctx, "rm-none", "8.0"), rdsbackup.ENOTFOUND, "set version of an unknown instance")
}

func instanceIDs(list []*rdsbackup.Instance) []string {
	var out []string
	for _, inst := range list {
		out = append(out, inst.ID)
	}
	return out
}

// ---------------------------------------------------------------- backup sets

var t0 = time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)

// newSet returns a valid, available full backup of instance.
func newSet(instance string, start time.Time) *rdsbackup.BackupSet {
	return &rdsbackup.BackupSet{
		InstanceID:     instance,
		Status:         rdsbackup.BackupSuccess,
		StartTime:      start,
		EndTime:        start.Add(7 * time.Minute),
		Type:           rdsbackup.FullBackup,
		Mode:           rdsbackup.BackupAutomated,
		Method:         rdsbackup.MethodPhysical,
		Initiator:      rdsbackup.InitiatorSystem,
		Size:           1 << 20,
		Available:      true,
		StoreStatus:    rdsbackup.StoreDisabled,
		MetaStatus:     "OK",
		StorageClass:   "0",
		ConsistentTime: start.Add(6 * time.Minute).Unix(),
		Checksum:       "1234567890",
		HostInstanceID: "1",
		Encryption:     "{}",
		Engine:         rdsbackup.EngineMySQL,
		EngineVersion:  "8.0",
		Location:       "OSS",
		Scale:          "DBInstance",
		ObjectKey:      instance + "/" + start.UTC().Format("20060102T150405Z") + ".xb",
	}
}

// stored is what the catalog must give back for s: s with its times at
// second precision.
func stored(s *rdsbackup.BackupSet) *rdsbackup.BackupSet {
	c := *s
	c.StartTime = s.StartTime.Truncate(time.Second)
	c.EndTime = s.EndTime.Truncate(time.Second)
	c.ExpectExpireTime = s.ExpectExpireTime.Truncate(time.Second)
	c.DBNames = slices.Clone(s.DBNames)
	c.Artifacts = slices.Clone(s.Artifacts)
	return &c
}

func setIDs(sets []*rdsbackup.BackupSet) []int64 {
	var out []int64
	for _, s := range sets {
		out = append(out, s.ID)
	}
	return out
}

func testBackupSetRoundTrip(t *testing.T, c Catalog) {
	ctx := t.Context()
	east8 := time.FixedZone("UTC+8", 8*3600)
	start := time.Date(2024, 7, 1, 7, 59, 58, 987654321, east8) // 2024-06-30T23:59:58Z
	full := &rdsbackup.BackupSet{
		InstanceID:       "rm-rt",
		Status:           rdsbackup.BackupSuccess,
		StartTime:        start,
		EndTime:          start.Add(3*time.Minute + 10500*time.Millisecond),
		Type:             rdsbackup.IncrementalBackup,
		Mode:             rdsbackup.BackupManual,
		Method:           rdsbackup.MethodLogical,
		Initiator:        rdsbackup.InitiatorUser,
		Size:             123456789012,
		Available:        true,
		StoreStatus:      rdsbackup.StoreEnabled,
		MetaStatus:       "LARGE",
		StorageClass:     "1",
		CopyOnly:         true,
		ConsistentTime:   1719791990,
		Checksum:         "18446744073709551615",
		HostInstanceID:   "4471",
		Encryption:       `{"EncryptionType":"AES256","Key":"kms-1"}`,
		Engine:           rdsbackup.EngineMariaDB,
		EngineVersion:    "10.6",
		ResourceGroupID:  "rg-acfmz7u4z",
		Location:         "OSS",
		Scale:            "Database",
		DBNames:          []string{"orders", "users", "audit_log"},
		ExpectExpireTime: start.Add(7*24*time.Hour + 250*time.Millisecond),
		FailureReason:    "retried once",
		ObjectKey:        "rm-rt/2024/06/30/235958.tar.zst",
		Artifacts: []rdsbackup.Artifact{ // deliberately not in name order
			{Database: "globals", Kind: rdsbackup.PartGlobals, Offset: 0, Length: 1000, Checksum: "11"},
			{Database: "users", Kind: rdsbackup.PartDatabase, Offset: 1000, Length: 2000, Checksum: "22"},
			{Database: "audit_log", Offset: 3000, Length: 1 << 40, Checksum: "18446744073709551615"},
		},
	}
	ok(t, c.CreateBackupSet(ctx, full), "create")
	if full.ID == 0 {
		t.Fatal("create did not assign an id")
	}
	// A failed set with every optional field empty.
	bare := &rdsbackup.BackupSet{
		InstanceID: "rm-rt", Status: rdsbackup.BackupFailed, StartTime: t0,
		Type: rdsbackup.FullBackup, Mode: rdsbackup.BackupAutomated, Method: rdsbackup.MethodPhysical,
		Initiator: rdsbackup.InitiatorSystem, StoreStatus: rdsbackup.StoreDisabled, StorageClass: "0",
		Encryption: "{}", Engine: rdsbackup.EngineMySQL, FailureReason: "connection refused",
	}
	ok(t, c.CreateBackupSet(ctx, bare), "create bare")
	if bare.ID == 0 || bare.ID == full.ID {
		t.Fatalf("ids %d and %d: want distinct non-zero ids", full.ID, bare.ID)
	}

	for _, want := range []*rdsbackup.BackupSet{stored(full), stored(bare)} {
		got, err := c.FindBackupSet(ctx, want.ID)
		ok(t, err, "find set %d", want.ID)
		if d := diff(got, want); d != "" {
			t.Errorf("FindBackupSet(%d): %s", want.ID, d)
		}
		list, total, err := c.FindBackupSets(ctx, rdsbackup.BackupFilter{ID: &want.ID})
		ok(t, err, "find sets by id %d", want.ID)
		if total != 1 || len(list) != 1 {
			t.Errorf("FindBackupSets by id %d: %v (total %d)", want.ID, setIDs(list), total)
		} else if d := diff(list[0], want); d != "" {
			t.Errorf("FindBackupSets by id %d: %s", want.ID, d)
		}
	}
	_, err := c.FindBackupSet(ctx, full.ID+bare.ID+1000)
	wantCode(t, err, rdsbackup.ENOTFOUND, "find unknown set")
}

func testBackupSetExplicitID(t *testing.T, c Catalog) {
	ctx := t.Context()
	s := newSet("rm-x", t0)
	s.ID = 9001
	ok(t, c.CreateBackupSet(ctx, s), "create with id")
	if s.ID != 9001 {
		t.Errorf("create changed the given id to %d", s.ID)
	}
	got, err := c.FindBackupSet(ctx, 9001)
	ok(t, err, "find set 9001")
	if d := diff(got, stored(s)); d != "" {
		t.Errorf("set 9001: %s", d)
	}
	auto := newSet("rm-x", t0.Add(time.Hour))
	ok(t, c.CreateBackupSet(ctx, auto), "create without id")
	if auto.ID == 0 || auto.ID == 9001 {
		t.Errorf("assigned id %d", auto.ID)
	}
}

func testBackupSetUpdate(t *testing.T, c Catalog) {
	ctx := t.Context()
	s := newSet("rm-u", t0)
	s.Scale, s.DBNames = "Database", []string{"a", "b", "c"}
	s.Artifacts = []rdsbackup.Artifact{
		{Database: "a", Offset: 0, Length: 10, Checksum: "1"},
		{Database: "b", Offset: 10, Length: 20, Checksum: "2"},
		{Database: "c", Offset: 30, Length: 30, Checksum: "3"},
	}
	ok(t, c.CreateBackupSet(ctx, s), "create")
	other := newSet("rm-u", t0.Add(-time.Hour))
	other.Artifacts = []rdsbackup.Artifact{{Database: "z", Offset: 0, Length: 5, Checksum: "9"}}
	ok(t, c.CreateBackupSet(ctx, other), "create other")

	s.Status, s.Available, s.FailureReason = rdsbackup.BackupFailed, false, "disk full"
	s.ObjectKey, s.Size, s.Checksum = "", 0, ""
	s.EndTime = t0.Add(2 * time.Minute)
	s.StoreStatus = rdsbackup.StoreEnabled
	s.ExpectExpireTime = t0.Add(24 * time.Hour)
	s.DBNames = []string{"b", "d"}
	s.Artifacts = []rdsbackup.Artifact{
		{Database: "d", Offset: 0, Length: 7, Checksum: "4"},
		{Database: "b", Offset: 7, Length: 3, Checksum: "5"},
	}
	ok(t, c.UpdateBackupSet(ctx, s), "update")
	got, err := c.FindBackupSet(ctx, s.ID)
	ok(t, err, "find updated")
	if d := diff(got, stored(s)); d != "" {
		t.Errorf("after update: %s", d)
	}

	s.Artifacts = nil
	ok(t, c.UpdateBackupSet(ctx, s), "update without artifacts")
	got, err = c.FindBackupSet(ctx, s.ID)
	ok(t, err, "find updated")
	if len(got.Artifacts) != 0 {
		t.Errorf("artifacts after update without artifacts: %+v", got.Artifacts)
	}
	got, err = c.FindBackupSet(ctx, other.ID)
	ok(t, err, "find other")
	if d := diff(got, stored(other)); d != "" {
		t.Errorf("other set changed by update: %s", d)
	}
	list, total, err := c.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: "rm-u"})
	ok(t, err, "find sets")
	if total != 2 || !slices.Equal(setIDs(list), []int64{s.ID, other.ID}) {
		t.Errorf("sets after update: %v (total %d), want [%d %d]", setIDs(list), total, s.ID, other.ID)
	}

	missing := newSet("rm-u", t0)
	missing.ID = s.ID + other.ID + 1000
	wantCode(t, c.UpdateBackupSet(ctx, missing), rdsbackup.ENOTFOUND, "update unknown set")
	if _, err := c.FindBackupSet(ctx, missing.ID); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Errorf("update of unknown set created it (find: %v)", err)
	}
}

func testBackupSetDelete(t *testing.T, c Catalog) {
	ctx := t.Context()
	a := newSet("rm-del", t0)
	a.Artifacts = []rdsbackup.Artifact{{Database: "x", Offset: 0, Length: 1, Checksum: "1"}}
	b := newSet("rm-del", t0.Add(time.Hour))
	b.Artifacts = []rdsbackup.Artifact{{Database: "y", Offset: 0, Length: 2, Checksum: "2"}}
	ok(t, c.CreateBackupSet(ctx, a), "create a")
	ok(t, c.CreateBackupSet(ctx, b), "create b")
	ok(t, c.DeleteBackupSet(ctx, a.ID), "delete a")
	_, err := c.FindBackupSet(ctx, a.ID)
	wantCode(t, err, rdsbackup.ENOTFOUND, "find deleted set")
	wantCode(t, c.DeleteBackupSet(ctx, a.ID), rdsbackup.ENOTFOUND, "delete deleted set")
	wantCode(t, c.DeleteBackupSet(ctx, a.ID+b.ID+1000), rdsbackup.ENOTFOUND, "delete unknown set")
	got, err := c.FindBackupSet(ctx, b.ID)
	ok(t, err, "find remaining set")
	if d := diff(got, stored(b)); d != "" {
		t.Errorf("remaining set: %s", d)
	}
	list, total, err := c.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: "rm-del"})
	ok(t, err, "find sets")
	if total != 1 || !slices.Equal(setIDs(list), []int64{b.ID}) {
		t.Errorf("sets after delete: %v (total %d), want [%d]", setIDs(list), total, b.ID)
	}

	// A BackupId is never given again, even after the newest set is gone:
	// a user may still hold it.
	ok(t, c.DeleteBackupSet(ctx, b.ID), "delete b")
	d := newSet("rm-del", t0.Add(2*time.Hour))
	ok(t, c.CreateBackupSet(ctx, d), "create d")
	if d.ID <= b.ID {
		t.Errorf("set created after deleting set %d got id %d: ids reused", b.ID, d.ID)
	}
}

func testBackupSetAvailableNeedsObject(t *testing.T, c Catalog) {
	ctx := t.Context()
	for _, m := range []rdsbackup.BackupMethod{rdsbackup.MethodPhysical, rdsbackup.MethodLogical} {
		bad := newSet("rm-v", t0)
		bad.Method, bad.ObjectKey = m, ""
		wantCode(t, c.CreateBackupSet(ctx, bad), rdsbackup.EINVALID, "create available %s set without object", m)
	}
	if list, total, err := c.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: "rm-v"}); err != nil || total != 0 {
		t.Errorf("refused sets were stored: %v (total %d), %v", setIDs(list), total, err)
	}

	s := newSet("rm-v", t0)
	ok(t, c.CreateBackupSet(ctx, s), "create")
	bad := *s
	bad.ObjectKey = ""
	wantCode(t, c.UpdateBackupSet(ctx, &bad), rdsbackup.EINVALID, "update to available set without object")
	got, err := c.FindBackupSet(ctx, s.ID)
	ok(t, err, "find")
	if got.ObjectKey != s.ObjectKey {
		t.Errorf("refused update was stored: object key %q", got.ObjectKey)
	}

	// Sets that are not available, or failed, need no object.
	gone := newSet("rm-v", t0.Add(time.Hour))
	gone.Available, gone.ObjectKey = false, ""
	ok(t, c.CreateBackupSet(ctx, gone), "create unavailable set without object")
	failed := newSet("rm-v", t0.Add(2*time.Hour))
	failed.Status, failed.Available, failed.ObjectKey = rdsbackup.BackupFailed, false, ""
	ok(t, c.CreateBackupSet(ctx, failed), "create failed set without object")
}

func testFindBackupSets(t *testing.T, c Catalog) {
	ctx := t.Context()
	// Two instances with sets at the same times; some times shared by
	// several sets, so that ties are broken by id.
	hours := []int{0, 1, 1, 2, 3, 3, 3, 4, 5, 6, 7, 8, 8, 9}
	var specs []*rdsbackup.BackupSet
	for _, inst := range []string{"rm-a", "rm-b"} {
		for i, h := range hours {
			s := newSet(inst, t0.Add(time.Duration(h)*time.Hour))
			if i%4 == 3 {
				s.Status, s.Available, s.ObjectKey, s.FailureReason = rdsbackup.BackupFailed, false, "", "timeout"
			}
			if i%3 == 0 {
				s.Mode, s.Initiator = rdsbackup.BackupManual, rdsbackup.InitiatorUser
			}
			if i%2 == 1 {
				s.Type = rdsbackup.IncrementalBackup
			}
			for j := range i % 3 {
				name := fmt.Sprintf("%s_db%d_%d", inst, i, j)
				s.DBNames = append(s.DBNames, name)
				s.Artifacts = append(s.Artifacts, rdsbackup.Artifact{Database: name, Offset: int64(j * 100), Length: 100, Checksum: fmt.Sprint(i*10 + j)})
			}
			specs = append(specs, s)
		}
	}
	// Create in an order unrelated to time or instance, so that ids follow
	// neither.
	var all []*rdsbackup.BackupSet
	for k := range specs {
		s := specs[(k*11)%len(specs)]
		ok(t, c.CreateBackupSet(ctx, s), "create set")
		all = append(all, stored(s))
	}
	byInstance := func(inst string) []*rdsbackup.BackupSet {
		var out []*rdsbackup.BackupSet
		for _, s := range all {
			if s.InstanceID == inst {
				out = append(out, s)
			}
		}
		return out
	}
	idA, idB := byInstance("rm-a")[4].ID, byInstance("rm-b")[6].ID
	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	success, failed := rdsbackup.BackupSuccess, rdsbackup.BackupFailed
	manual, automated := rdsbackup.BackupManual, rdsbackup.BackupAutomated
	fullT, incr := rdsbackup.FullBackup, rdsbackup.IncrementalBackup
	h := time.Hour

	filters := []rdsbackup.BackupFilter{
		{},
		{InstanceID: "rm-a"},
		{InstanceID: "rm-b"},
		{InstanceID: "rm-none"},
		{InstanceID: "rm-a", Status: &failed},
		{InstanceID: "rm-a", Status: &success},
		{InstanceID: "rm-a", Mode: &manual},
		{InstanceID: "rm-b", Mode: &automated},
		{InstanceID: "rm-a", Type: &incr},
		{InstanceID: "rm-b", Type: &fullT},
		{InstanceID: "rm-a", StartFrom: at(3 * h)},
		{InstanceID: "rm-a", StartTo: at(3 * h)},
		{InstanceID: "rm-a", StartFrom: at(1 * h), StartTo: at(3 * h)},
		{InstanceID: "rm-a", StartFrom: at(3 * h), StartTo: at(3 * h)},
		{InstanceID: "rm-a", StartFrom: at(3*h + time.Second), StartTo: at(8*h - time.Second)},
		{InstanceID: "rm-a", StartFrom: at(4 * h), StartTo: at(3 * h)},
		{InstanceID: "rm-a", StartFrom: at(10 * h)},
		{InstanceID: "rm-a", Status: &success, Mode: &automated, Type: &fullT, StartFrom: at(1 * h), StartTo: at(8 * h)},
		{InstanceID: "rm-b", Status: &success, Mode: &manual},
		{InstanceID: "rm-b", Status: &failed, StartTo: at(6 * h)},
		{InstanceID: "rm-a", ID: &idA},
		{InstanceID: "rm-a", ID: &idB}, // another instance's set
		{ID: &idB},
		{Status: &failed},
		{StartFrom: at(8 * h)},
	}
	for _, f := range filters {
		want := expectSets(all, f)
		name := describe(f)
		got, total, err := c.FindBackupSets(ctx, f)
		ok(t, err, "%s", name)
		if total != len(want) || !slices.Equal(setIDs(got), setIDs(want)) {
			t.Errorf("%s: got %v (total %d), want %v (total %d)", name, setIDs(got), total, setIDs(want), len(want))
			continue
		}
		for i := range got {
			if d := diff(got[i], want[i]); d != "" {
				t.Errorf("%s: set %d: %s", name, want[i].ID, d)
			}
			if got[i].InstanceID != f.InstanceID && f.InstanceID != "" {
				t.Errorf("%s: set %d of instance %s leaked", name, got[i].ID, got[i].InstanceID)
			}
		}
		pages := []struct{ offset, limit int }{{2, 0}, {len(want), 0}, {len(want) + 100, 30}}
		for _, limit := range []int{3, 7} {
			for off := 0; off <= len(want)+limit; off += limit {
				pages = append(pages, struct{ offset, limit int }{off, limit})
			}
		}
		for _, p := range pages {
			g := f
			g.Offset, g.Limit = p.offset, p.limit
			page, total, err := c.FindBackupSets(ctx, g)
			ok(t, err, "%s offset %d limit %d", name, p.offset, p.limit)
			end := len(want)
			if p.limit > 0 {
				end = min(end, p.offset+p.limit)
			}
			wantPage := want[min(p.offset, len(want)):max(end, min(p.offset, len(want)))]
			if total != len(want) || !slices.Equal(setIDs(page), setIDs(wantPage)) {
				t.Errorf("%s offset %d limit %d: got %v (total %d), want %v (total %d)",
					name, p.offset, p.limit, setIDs(page), total, setIDs(wantPage), len(want))
			}
		}
	}
}

// expectSets is the reference FindBackupSets (without paging).
func expectSets(all []*rdsbackup.BackupSet, f rdsbackup.BackupFilter) []*rdsbackup.BackupSet {
	var out []*rdsbackup.BackupSet
	for _, s := range all {
		switch {
		case f.InstanceID != "" && s.InstanceID != f.InstanceID,
			f.ID != nil && s.ID != *f.ID,
			f.Status != nil && s.Status != *f.Status,
			f.Mode != nil && s.Mode != *f.Mode,
			f.Type != nil && s.Type != *f.Type,
			f.StartFrom != nil && s.StartTime.Before(*f.StartFrom),
			f.StartTo != nil && s.StartTime.After(*f.StartTo):
			continue
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *rdsbackup.BackupSet) int {
		if c := b.StartTime.Compare(a.StartTime); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return out
}

func describe(f rdsbackup.BackupFilter) string {
	var parts []string
	if f.InstanceID != "" {
		parts = append(parts, "instance="+f.InstanceID)
	}
	if f.ID != nil {
		parts = append(parts, fmt.Sprint("id=", *f.ID))
	}
	if f.Status != nil {
		parts = append(parts, "status="+string(*f.Status))
	}
	if f.Mode != nil {
		parts = append(parts, "mode="+string(*f.Mode))
	}
	if f.Type != nil {
		parts = append(parts, "type="+string(*f.Type))
	}
	if f.StartFrom != nil {
		parts = append(parts, "from="+f.StartFrom.Format(time.RFC3339))
	}
	if f.StartTo != nil {
		parts = append(parts, "to="+f.StartTo.Format(time.RFC3339))
	}
	return "filter{" + strings.Join(parts, " ") + "}"
}

// ---------------------------------------------------------------- jobs

func testJobs(t *testing.T, c Catalog) {
	ctx := t.Context()
	j1 := &rdsbackup.Job{InstanceID: "rm-a", Status: rdsbackup.JobPreparing, Mode: rdsbackup.BackupAutomated,
		Method: rdsbackup.MethodPhysical, Strategy: "instance"}
	j2 := &rdsbackup.Job{InstanceID: "rm-a", Status: rdsbackup.JobNoStart, Mode: rdsbackup.BackupManual,
		Method: rdsbackup.MethodLogical, Strategy: "db", Databases: []string{"orders", "users"}}
	j3 := &rdsbackup.Job{InstanceID: "rm-b", Status: rdsbackup.JobUploading, Mode: rdsbackup.BackupAutomated,
		Method: rdsbackup.MethodPhysical, Strategy: "instance", Progress: 40}
	j4 := &rdsbackup.Job{InstanceID: "rm-a", Status: rdsbackup.JobFinished, Mode: rdsbackup.BackupManual,
		Method: rdsbackup.MethodSnapshot, Strategy: "instance", Progress: 100, BackupSetID: 17}
	jobs := []*rdsbackup.Job{j1, j2, j3, j4}
	want := map[int64]rdsbackup.Job{}
	for i, j := range jobs {
		ok(t, c.CreateJob(ctx, j), "create job %d", i)
		if j.ID == 0 || (i > 0 && j.ID == jobs[i-1].ID) {
			t.Fatalf("job %d: id %d", i, j.ID)
		}
		want[j.ID] = *j
	}
	ids := func(js []*rdsbackup.Job) []int64 {
		var out []int64
		for _, j := range js {
			out = append(out, j.ID)
		}
		return out
	}
	check := func(f rdsbackup.JobFilter, wantIDs ...int64) {
		t.Helper()
		got, err := c.FindJobs(ctx, f)
		ok(t, err, "find jobs %+v", f)
		if !slices.Equal(ids(got), wantIDs) {
			t.Errorf("FindJobs(%+v): %v, want %v", f, ids(got), wantIDs)
			return
		}
		for _, j := range got {
			w := want[j.ID]
			if d := diff(j, &w, "CreatedAt", "UpdatedAt"); d != "" {
				t.Errorf("job %d: %s", j.ID, d)
			}
			checkStamped(t, fmt.Sprint("job ", j.ID), map[string]time.Time{"CreatedAt": j.CreatedAt, "UpdatedAt": j.UpdatedAt})
		}
	}
	manual := rdsbackup.BackupManual
	check(rdsbackup.JobFilter{}, j4.ID, j3.ID, j2.ID, j1.ID)
	check(rdsbackup.JobFilter{InstanceID: "rm-a"}, j4.ID, j2.ID, j1.ID)
	check(rdsbackup.JobFilter{InstanceID: "rm-none"})
	check(rdsbackup.JobFilter{ID: &j2.ID}, j2.ID)
	check(rdsbackup.JobFilter{InstanceID: "rm-b", ID: &j2.ID})
	check(rdsbackup.JobFilter{InstanceID: "rm-a", Mode: &manual}, j4.ID, j2.ID)
	check(rdsbackup.JobFilter{Statuses: []rdsbackup.JobStatus{rdsbackup.JobNoStart, rdsbackup.JobPreparing, rdsbackup.JobUploading}}, j3.ID, j2.ID, j1.ID)
	check(rdsbackup.JobFilter{InstanceID: "rm-a", Statuses: []rdsbackup.JobStatus{rdsbackup.JobUploading}})
	check(rdsbackup.JobFilter{Limit: 2}, j4.ID, j3.ID)
	check(rdsbackup.JobFilter{InstanceID: "rm-a", Limit: 1}, j4.ID)

	got, err := c.FindJobs(ctx, rdsbackup.JobFilter{ID: &j1.ID})
	ok(t, err, "find j1")
	created := got[0].CreatedAt

	j1.Status, j1.Progress, j1.BackupSetID = rdsbackup.JobFinished, 100, 42
	ok(t, c.UpdateJob(ctx, j1), "update j1")
	want[j1.ID] = *j1
	j2.Status, j2.Progress, j2.Error = rdsbackup.JobFailed, 30, "dump orders: connection reset"
	ok(t, c.UpdateJob(ctx, j2), "update j2")
	want[j2.ID] = *j2
	check(rdsbackup.JobFilter{ID: &j1.ID}, j1.ID)
	check(rdsbackup.JobFilter{ID: &j2.ID}, j2.ID)
	check(rdsbackup.JobFilter{Statuses: []rdsbackup.JobStatus{rdsbackup.JobFinished}}, j4.ID, j1.ID)
	check(rdsbackup.JobFilter{InstanceID: "rm-a", Statuses: []rdsbackup.JobStatus{rdsbackup.JobNoStart, rdsbackup.JobPreparing}})
	got, err = c.FindJobs(ctx, rdsbackup.JobFilter{ID: &j1.ID})
	ok(t, err, "find j1")
	if !got[0].CreatedAt.Equal(created) {
		t.Errorf("update changed CreatedAt from %v to %v", created, got[0].CreatedAt)
	}

	missing := *j1
	missing.ID = j4.ID + 1000
	wantCode(t, c.UpdateJob(ctx, &missing), rdsbackup.ENOTFOUND, "update unknown job")
}

// ---------------------------------------------------------------- identity

func newUser(name, id string) *rdsbackup.User {
	return &rdsbackup.User{ID: id, Name: name, DisplayName: strings.ToUpper(name[:1]) + name[1:],
		Email: name + "@example.com", MobilePhone: "86-1888888" + id[len(id)-4:], Comments: "user " + name}
}

func testUsers(t *testing.T, c Catalog) {
	ctx := t.Context()
	users := []*rdsbackup.User{
		newUser("carol", "200000000000000003"),
		newUser("alice", "200000000000000001"),
		newUser("bob", "200000000000000002"),
	}
	for _, u := range users {
		in := *u
		ok(t, c.CreateUser(ctx, u), "create user %s", u.Name)
		got, err := c.FindUser(ctx, u.Name)
		ok(t, err, "find user %s", u.Name)
		if d := diff(got, &in, "CreatedAt", "UpdatedAt"); d != "" {
			t.Errorf("user %s: %s", u.Name, d)
		}
		checkStamped(t, "user "+u.Name, map[string]time.Time{"CreatedAt": got.CreatedAt, "UpdatedAt": got.UpdatedAt})
	}
	dup := newUser("alice", "200000000000000009")
	wantCode(t, c.CreateUser(ctx, dup), rdsbackup.EEntityAlreadyExistsUser, "create duplicate user")
	if got, err := c.FindUser(ctx, "alice"); err != nil || got.ID != "200000000000000001" {
		t.Errorf("duplicate create changed alice: %+v, %v", got, err)
	}
	_, err := c.FindUser(ctx, "dave")
	wantCode(t, err, rdsbackup.EEntityNotExistUser, "find unknown user")

	names := func(us []*rdsbackup.User) []string {
		var out []string
		for _, u := range us {
			out = append(out, u.Name)
		}
		return out
	}
	for _, tc := range []struct {
		after string
		limit int
		want  []string
	}{
		{"", 0, []string{"alice", "bob", "carol"}},
		{"", 2, []string{"alice", "bob"}},
		{"bob", 2, []string{"carol"}},
		{"alice", 1, []string{"bob"}},
		{"b", 0, []string{"bob", "carol"}},
		{"carol", 0, nil},
	} {
		got, err := c.FindUsers(ctx, tc.after, tc.limit)
		ok(t, err, "find users after %q", tc.after)
		if !slices.Equal(names(got), tc.want) {
			t.Errorf("FindUsers(%q, %d): %v, want %v", tc.after, tc.limit, names(got), tc.want)
		}
	}

	ok(t, c.DeleteUser(ctx, "carol"), "delete carol")
	_, err = c.FindUser(ctx, "carol")
	wantCode(t, err, rdsbackup.EEntityNotExistUser, "find deleted user")
	wantCode(t, c.DeleteUser(ctx, "carol"), rdsbackup.EEntityNotExistUser, "delete deleted user")
	ok(t, c.CreateUser(ctx, newUser("carol", "200000000000000004")), "create carol again")

	// A user with an access key cannot be deleted.
	key := &rdsbackup.AccessKey{ID: "LTAI5tBobKey00000000001", Secret: "bob-secret-0000000000000000000", UserName: "bob", Status: rdsbackup.KeyActive}
	ok(t, c.CreateAccessKey(ctx, key), "create bob's key")
	wantCode(t, c.DeleteUser(ctx, "bob"), rdsbackup.EDeleteConflictUserKey, "delete user with key")
	if _, err := c.FindUser(ctx, "bob"); err != nil {
		t.Errorf("refused delete removed bob: %v", err)
	}
	ok(t, c.DeleteAccessKey(ctx, "bob", key.ID), "delete bob's key")
	ok(t, c.DeleteUser(ctx, "bob"), "delete bob without keys")

	// Nor one with a policy attached.
	ok(t, c.CreatePolicy(ctx, &rdsbackup.Policy{Name: "ReadBackups", Type: rdsbackup.PolicyCustom, Document: policyDoc("rds:DescribeBackups")}), "create policy")
	ok(t, c.AttachPolicy(ctx, "ReadBackups", rdsbackup.PolicyCustom, "alice"), "attach")
	wantCode(t, c.DeleteUser(ctx, "alice"), rdsbackup.EDeleteConflictUserPolicy, "delete user with policy")
	if _, err := c.FindUser(ctx, "alice"); err != nil {
		t.Errorf("refused delete removed alice: %v", err)
	}
	ok(t, c.DetachPolicy(ctx, "ReadBackups", rdsbackup.PolicyCustom, "alice"), "detach")
	ok(t, c.DeleteUser(ctx, "alice"), "delete alice without policies")

	got, err := c.FindUsers(ctx, "", 0)
	ok(t, err, "find users")
	if !slices.Equal(names(got), []string{"carol"}) {
		t.Errorf("users left: %v, want [carol]", names(got))
	}
}

func policyDoc(actions ...string) string {
	return `{"Version":"1","Statement":[{"Effect":"Allow","Action":["` + strings.Join(actions, `","`) + `"],"Resource":"*"}]}`
}

func testAccessKeys(t *testing.T, c Catalog) {
	ctx := t.Context()
	ok(t, c.CreateUser(ctx, newUser("alice", "200000000000000001")), "create alice")
	ok(t, c.CreateUser(ctx, newUser("bob", "200000000000000002")), "create bob")

	root := &rdsbackup.AccessKey{ID: "LTAI5tRoot0000000000001", Secret: "root-secret-AAAAAAAAAAAAAAAAAAAAAAAAA", Status: rdsbackup.KeyActive}
	root2 := &rdsbackup.AccessKey{ID: "LTAI5tRoot0000000000002", Secret: "root-secret-BBBBBBBBBBBBBBBBBBBBBBBBB", Status: rdsbackup.KeyActive}
	a1 := &rdsbackup.AccessKey{ID: "LTAI5tAlice000000000001", Secret: "alice-secret-1/+=CCCCCCCCCCCCCCCCC", UserName: "alice", Status: rdsbackup.KeyActive}
	a2 := &rdsbackup.AccessKey{ID: "LTAI5tAlice000000000002", Secret: "alice-secret-2-DDDDDDDDDDDDDDDDDDD", UserName: "alice", Status: rdsbackup.KeyInactive}
	for _, k := range []*rdsbackup.AccessKey{root, a1, root2, a2} {
		in := *k
		ok(t, c.CreateAccessKey(ctx, k), "create key %s", k.ID)
		got, err := c.FindAccessKey(ctx, k.ID)
		ok(t, err, "find key %s", k.ID)
		if d := diff(got, &in, "CreatedAt"); d != "" {
			t.Errorf("key %s: %s", k.ID, d)
		}
		checkStamped(t, "key "+k.ID, map[string]time.Time{"CreatedAt": got.CreatedAt})
	}
	if got, err := c.FindAccessKey(ctx, root.ID); err == nil && !got.Root() {
		t.Errorf("root key has user %q", got.UserName)
	}
	_, err := c.FindAccessKey(ctx, "LTAI5tNone0000000000000")
	wantCode(t, err, rdsbackup.ENOTFOUND, "find unknown key")

	// Limits and refusals.
	a3 := &rdsbackup.AccessKey{ID: "LTAI5tAlice000000000003", Secret: "alice-secret-3", UserName: "alice", Status: rdsbackup.KeyActive}
	wantCode(t, c.CreateAccessKey(ctx, a3), rdsbackup.ELimitExceededAccessKey, "create key %d for one user", rdsbackup.MaxAccessKeysPerUser+1)
	_, err = c.FindAccessKey(ctx, a3.ID)
	wantCode(t, err, rdsbackup.ENOTFOUND, "find refused key")
	ghost := &rdsbackup.AccessKey{ID: "LTAI5tGhost000000000001", Secret: "ghost-secret", UserName: "ghost", Status: rdsbackup.KeyActive}
	wantCode(t, c.CreateAccessKey(ctx, ghost), rdsbackup.EEntityNotExistUser, "create key for unknown user")
	dup := &rdsbackup.AccessKey{ID: a1.ID, Secret: "another-secret", UserName: "bob", Status: rdsbackup.KeyActive}
	wantCode(t, c.CreateAccessKey(ctx, dup), rdsbackup.ECONFLICT, "create key with an existing id")
	if got, err := c.FindAccessKey(ctx, a1.ID); err != nil || got.Secret != a1.Secret || got.UserName != "alice" {
		t.Errorf("duplicate create changed key %s: %+v, %v", a1.ID, got, err)
	}

	// Listing needs no secrets and shows none.
	list := func(user string) map[string]rdsbackup.AccessKeyStatus {
		t.Helper()
		keys, err := c.FindAccessKeys(ctx, user)
		ok(t, err, "find keys of %q", user)
		out := map[string]rdsbackup.AccessKeyStatus{}
		for _, k := range keys {
			if k.UserName != user {
				t.Errorf("FindAccessKeys(%q) listed key %s of %q", user, k.ID, k.UserName)
			}
			if k.Secret != "" {
				t.Errorf("FindAccessKeys(%q) showed the secret of %s", user, k.ID)
			}
			if k.CreatedAt.IsZero() {
				t.Errorf("FindAccessKeys(%q): key %s without CreatedAt", user, k.ID)
			}
			out[k.ID] = k.Status
		}
		return out
	}
	checkList := func(user string, want map[string]rdsbackup.AccessKeyStatus) {
		t.Helper()
		if got := list(user); !reflect.DeepEqual(got, want) {
			t.Errorf("FindAccessKeys(%q): %v, want %v", user, got, want)
		}
	}
	active, inactive := rdsbackup.KeyActive, rdsbackup.KeyInactive
	checkList("", map[string]rdsbackup.AccessKeyStatus{root.ID: active, root2.ID: active})
	checkList("alice", map[string]rdsbackup.AccessKeyStatus{a1.ID: active, a2.ID: inactive})
	checkList("bob", map[string]rdsbackup.AccessKeyStatus{})

	// Status.
	ok(t, c.UpdateAccessKeyStatus(ctx, "alice", a1.ID, inactive), "deactivate")
	ok(t, c.UpdateAccessKeyStatus(ctx, "alice", a2.ID, active), "activate")
	ok(t, c.UpdateAccessKeyStatus(ctx, "", root2.ID, inactive), "deactivate root key")
	checkList("alice", map[string]rdsbackup.AccessKeyStatus{a1.ID: inactive, a2.ID: active})
	checkList("", map[string]rdsbackup.AccessKeyStatus{root.ID: active, root2.ID: inactive})
	if got, err := c.FindAccessKey(ctx, a1.ID); err != nil || got.Status != inactive || got.Secret != a1.Secret {
		t.Errorf("after deactivating %s: %+v, %v", a1.ID, got, err)
	}
	ok(t, c.UpdateAccessKeyStatus(ctx, "alice", a1.ID, active), "reactivate")
	if got, err := c.FindAccessKey(ctx, a1.ID); err != nil || got.Status != active {
		t.Errorf("after reactivating %s: %+v, %v", a1.ID, got, err)
	}
	wantCode(t, c.UpdateAccessKeyStatus(ctx, "bob", a1.ID, inactive), rdsbackup.EEntityNotExistAccessKey, "update another user's key")
	wantCode(t, c.UpdateAccessKeyStatus(ctx, "", a1.ID, inactive), rdsbackup.EEntityNotExistAccessKey, "update a user's key as root")
	wantCode(t, c.UpdateAccessKeyStatus(ctx, "alice", root.ID, inactive), rdsbackup.EEntityNotExistAccessKey, "update a root key as a user")
	wantCode(t, c.UpdateAccessKeyStatus(ctx, "alice", "LTAI5tNone0000000000000", inactive), rdsbackup.EEntityNotExistAccessKey, "update unknown key")
	wantCode(t, c.UpdateAccessKeyStatus(ctx, "ghost", a1.ID, inactive), rdsbackup.EEntityNotExistUser, "update key of unknown user")
	wantCode(t, c.UpdateAccessKeyStatus(ctx, "alice", a1.ID, "Disabled"), rdsbackup.EINVALID, "update to an invalid status")
	checkList("alice", map[string]rdsbackup.AccessKeyStatus{a1.ID: active, a2.ID: active})
	checkList("", map[string]rdsbackup.AccessKeyStatus{root.ID: active, root2.ID: inactive})

	// Delete.
	wantCode(t, c.DeleteAccessKey(ctx, "bob", a1.ID), rdsbackup.EEntityNotExistAccessKey, "delete another user's key")
	wantCode(t, c.DeleteAccessKey(ctx, "", a1.ID), rdsbackup.EEntityNotExistAccessKey, "delete a user's key as root")
	wantCode(t, c.DeleteAccessKey(ctx, "alice", root.ID), rdsbackup.EEntityNotExistAccessKey, "delete a root key as a user")
	wantCode(t, c.DeleteAccessKey(ctx, "ghost", a1.ID), rdsbackup.EEntityNotExistUser, "delete key of unknown user")
	ok(t, c.DeleteAccessKey(ctx, "alice", a1.ID), "delete")
	_, err = c.FindAccessKey(ctx, a1.ID)
	wantCode(t, err, rdsbackup.ENOTFOUND, "find deleted key")
	wantCode(t, c.DeleteAccessKey(ctx, "alice", a1.ID), rdsbackup.EEntityNotExistAccessKey, "delete deleted key")
	wantCode(t, c.UpdateAccessKeyStatus(ctx, "alice", a1.ID, active), rdsbackup.EEntityNotExistAccessKey, "update deleted key")
	ok(t, c.DeleteAccessKey(ctx, "", root2.ID), "delete root key")
	checkList("alice", map[string]rdsbackup.AccessKeyStatus{a2.ID: active})
	checkList("", map[string]rdsbackup.AccessKeyStatus{root.ID: active})

	// Below the limit again.
	ok(t, c.CreateAccessKey(ctx, a3), "create key after deleting one")
	if got, err := c.FindAccessKey(ctx, a3.ID); err != nil || got.Secret != a3.Secret {
		t.Errorf("key %s: %+v, %v", a3.ID, got, err)
	}
}

func testPolicies(t *testing.T, c Catalog) {
	ctx := t.Context()
	for i, name := range []string{"alice", "bob", "carol"} {
		ok(t, c.CreateUser(ctx, newUser(name, fmt.Sprint(200000000000000011+i))), "create %s", name)
	}
	read := &rdsbackup.Policy{Name: "ReadBackups", Type: rdsbackup.PolicyCustom, Description: "read only",
		Document: policyDoc("rds:DescribeBackups", "rds:DescribeBackupTasks"), DefaultVersion: "v3"}
	admin := &rdsbackup.Policy{Name: "AliyunRDSFullAccess", Type: rdsbackup.PolicySystem, Description: "full access",
		Document: policyDoc("rds:*"), DefaultVersion: "v1"}
	audit := &rdsbackup.Policy{Name: "Audit", Type: rdsbackup.PolicyCustom, Document: policyDoc("rds:Describe*"), DefaultVersion: "v1"}
	want := map[string]rdsbackup.Policy{}
	for _, p := range []*rdsbackup.Policy{read, admin, audit} {
		want[p.Name] = *p
		ok(t, c.CreatePolicy(ctx, p), "create policy %s", p.Name)
	}
	checkPolicy := func(name string, count int) {
		t.Helper()
		w := want[name]
		w.AttachmentCount = count
		got, err := c.FindPolicy(ctx, name, w.Type)
		ok(t, err, "find policy %s", name)
		if d := diff(got, &w, "CreatedAt", "UpdatedAt", "AttachedAt"); d != "" {
			t.Errorf("policy %s: %s", name, d)
		}
		checkStamped(t, "policy "+name, map[string]time.Time{"CreatedAt": got.CreatedAt, "UpdatedAt": got.UpdatedAt})
	}
	for name := range want {
		checkPolicy(name, 0)
	}
	wantCode(t, c.CreatePolicy(ctx, &rdsbackup.Policy{Name: "ReadBackups", Type: rdsbackup.PolicyCustom, Document: policyDoc("rds:*")}),
		rdsbackup.EEntityAlreadyExistsPol, "create duplicate policy")
	checkPolicy("ReadBackups", 0)
	_, err := c.FindPolicy(ctx, "ReadBackups", rdsbackup.PolicySystem)
	wantCode(t, err, rdsbackup.EEntityNotExistPolicy, "find policy with the wrong type")
	_, err = c.FindPolicy(ctx, "Nope", rdsbackup.PolicyCustom)
	wantCode(t, err, rdsbackup.EEntityNotExistPolicy, "find unknown policy")

	listNames := func(typ rdsbackup.PolicyType) []string {
		t.Helper()
		ps, err := c.FindPolicies(ctx, typ)
		ok(t, err, "find policies %q", typ)
		var out []string
		for _, p := range ps {
			if typ != "" && p.Type != typ {
				t.Errorf("FindPolicies(%q) listed %s of type %s", typ, p.Name, p.Type)
			}
			out = append(out, p.Name)
		}
		slices.Sort(out)
		return out
	}
	if got := listNames(rdsbackup.PolicyCustom); !slices.Equal(got, []string{"Audit", "ReadBackups"}) {
		t.Errorf("custom policies: %v", got)
	}
	if got := listNames(rdsbackup.PolicySystem); !slices.Equal(got, []string{"AliyunRDSFullAccess"}) {
		t.Errorf("system policies: %v", got)
	}
	if got := listNames(""); !slices.Equal(got, []string{"AliyunRDSFullAccess", "Audit", "ReadBackups"}) {
		t.Errorf("all policies: %v", got)
	}

	// Attach.
	custom, system := rdsbackup.PolicyCustom, rdsbackup.PolicySystem
	ok(t, c.AttachPolicy(ctx, "ReadBackups", custom, "alice"), "attach to alice")
	ok(t, c.AttachPolicy(ctx, "AliyunRDSFullAccess", system, "alice"), "attach system to alice")
	ok(t, c.AttachPolicy(ctx, "ReadBackups", custom, "bob"), "attach to bob")
	wantCode(t, c.AttachPolicy(ctx, "ReadBackups", custom, "alice"), rdsbackup.EEntityAlreadyAttached, "attach twice")
	wantCode(t, c.AttachPolicy(ctx, "ReadBackups", custom, "ghost"), rdsbackup.EEntityNotExistUser, "attach to unknown user")
	wantCode(t, c.AttachPolicy(ctx, "Nope", custom, "alice"), rdsbackup.EEntityNotExistPolicy, "attach unknown policy")
	wantCode(t, c.AttachPolicy(ctx, "ReadBackups", system, "carol"), rdsbackup.EEntityNotExistPolicy, "attach with the wrong type")
	checkPolicy("ReadBackups", 2)
	checkPolicy("AliyunRDSFullAccess", 1)
	checkPolicy("Audit", 0)
	counts := map[string]int{}
	all, err := c.FindPolicies(ctx, "")
	ok(t, err, "find policies")
	for _, p := range all {
		counts[p.Name] = p.AttachmentCount
	}
	if w := map[string]int{"ReadBackups": 2, "AliyunRDSFullAccess": 1, "Audit": 0}; !reflect.DeepEqual(counts, w) {
		t.Errorf("FindPolicies attachment counts: %v, want %v", counts, w)
	}

	checkUser := func(user string, wantCounts map[string]int) {
		t.Helper()
		ps, err := c.FindUserPolicies(ctx, user)
		ok(t, err, "find policies of %s", user)
		got := map[string]int{}
		for _, p := range ps {
			w := want[p.Name]
			w.AttachmentCount = wantCounts[p.Name]
			if d := diff(p, &w, "CreatedAt", "UpdatedAt", "AttachedAt"); d != "" {
				t.Errorf("policy %s of %s: %s", p.Name, user, d)
			}
			checkStamped(t, "policy "+p.Name+" of "+user, map[string]time.Time{"AttachedAt": p.AttachedAt})
			got[p.Name] = p.AttachmentCount
		}
		if !reflect.DeepEqual(got, wantCounts) {
			t.Errorf("FindUserPolicies(%s): %v, want %v", user, got, wantCounts)
		}
	}
	checkUser("alice", map[string]int{"ReadBackups": 2, "AliyunRDSFullAccess": 1})
	checkUser("bob", map[string]int{"ReadBackups": 2})
	checkUser("carol", map[string]int{})

	// Delete is refused while attached.
	wantCode(t, c.DeletePolicy(ctx, "ReadBackups"), rdsbackup.EDeleteConflictPolicyUser, "delete attached policy")
	checkPolicy("ReadBackups", 2)

	// Detach.
	ok(t, c.DetachPolicy(ctx, "ReadBackups", custom, "alice"), "detach from alice")
	wantCode(t, c.DetachPolicy(ctx, "ReadBackups", custom, "alice"), rdsbackup.EEntityNotAttached, "detach twice")
	wantCode(t, c.DetachPolicy(ctx, "Audit", custom, "alice"), rdsbackup.EEntityNotAttached, "detach policy never attached")
	wantCode(t, c.DetachPolicy(ctx, "Nope", custom, "alice"), rdsbackup.EEntityNotExistPolicy, "detach unknown policy")
	wantCode(t, c.DetachPolicy(ctx, "ReadBackups", custom, "ghost"), rdsbackup.EEntityNotExistUser, "detach from unknown user")
	checkPolicy("ReadBackups", 1)
	checkUser("alice", map[string]int{"AliyunRDSFullAccess": 1})
	checkUser("bob", map[string]int{"ReadBackups": 1})
	wantCode(t, c.DeletePolicy(ctx, "ReadBackups"), rdsbackup.EDeleteConflictPolicyUser, "delete policy still attached to bob")
	ok(t, c.DetachPolicy(ctx, "ReadBackups", custom, "bob"), "detach from bob")
	checkUser("bob", map[string]int{})

	// Delete.
	ok(t, c.DeletePolicy(ctx, "ReadBackups"), "delete detached policy")
	_, err = c.FindPolicy(ctx, "ReadBackups", custom)
	wantCode(t, err, rdsbackup.EEntityNotExistPolicy, "find deleted policy")
	wantCode(t, c.DeletePolicy(ctx, "ReadBackups"), rdsbackup.EEntityNotExistPolicy, "delete deleted policy")
	wantCode(t, c.DeletePolicy(ctx, "Nope"), rdsbackup.EEntityNotExistPolicy, "delete unknown policy")
	if got := listNames(""); !slices.Equal(got, []string{"AliyunRDSFullAccess", "Audit"}) {
		t.Errorf("policies after delete: %v", got)
	}
	// The name is free again.
	ok(t, c.CreatePolicy(ctx, &rdsbackup.Policy{Name: "ReadBackups", Type: custom, Document: policyDoc("rds:DescribeBackups")}), "create deleted policy again")
	checkUser("alice", map[string]int{"AliyunRDSFullAccess": 1})

	// A policy is named by its name and type: a system and a custom policy
	// may share a name, and neither is the other.
	sharedSys := &rdsbackup.Policy{Name: "Shared", Type: system, Document: policyDoc("rds:Describe*"), DefaultVersion: "v1"}
	sharedCustom := &rdsbackup.Policy{Name: "Shared", Type: custom, Document: policyDoc("rds:DescribeBackups"), DefaultVersion: "v1"}
	ok(t, c.CreatePolicy(ctx, sharedSys), "create system Shared")
	ok(t, c.CreatePolicy(ctx, sharedCustom), "create custom Shared")
	ok(t, c.AttachPolicy(ctx, "Shared", system, "carol"), "attach system Shared")
	for _, tc := range []struct {
		p     *rdsbackup.Policy
		count int
	}{{sharedSys, 1}, {sharedCustom, 0}} {
		got, err := c.FindPolicy(ctx, "Shared", tc.p.Type)
		ok(t, err, "find %s Shared", tc.p.Type)
		if got.Type != tc.p.Type || got.Document != tc.p.Document || got.AttachmentCount != tc.count {
			t.Errorf("%s Shared: %+v, want document %s and %d attachment(s)", tc.p.Type, got, tc.p.Document, tc.count)
		}
	}
	ps, err := c.FindUserPolicies(ctx, "carol")
	ok(t, err, "find policies of carol")
	if len(ps) != 1 || ps[0].Type != system || ps[0].Document != sharedSys.Document {
		t.Errorf("policies of carol: %+v, want system Shared only", ps)
	}
	wantCode(t, c.DetachPolicy(ctx, "Shared", custom, "carol"), rdsbackup.EEntityNotAttached, "detach custom Shared attached as system")
	ok(t, c.DeletePolicy(ctx, "Shared"), "delete custom Shared while system Shared is attached")
	_, err = c.FindPolicy(ctx, "Shared", custom)
	wantCode(t, err, rdsbackup.EEntityNotExistPolicy, "find deleted custom Shared")
	if _, err := c.FindPolicy(ctx, "Shared", system); err != nil {
		t.Errorf("deleting custom Shared removed system Shared: %v", err)
	}
}

// testRecordVerification: a failed drill makes the set unavailable and
// keeps its reason; a passed one records its time and makes available only
// a set a failed drill had made unavailable.
func testRecordVerification(t *testing.T, c Catalog) {
	ctx := t.Context()
	set := newSet("rm-verify", time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC))
	ok(t, c.CreateBackupSet(ctx, set), "create")
	other := newSet("rm-verify", time.Date(2024, 7, 2, 0, 0, 0, 0, time.UTC))
	ok(t, c.CreateBackupSet(ctx, other), "create")
	at := time.Date(2024, 7, 3, 1, 2, 3, 0, time.UTC)
	ok(t, c.RecordVerification(ctx, set.ID, rdsbackup.VerifyPassed, at, ""), "record passed")
	got, err := c.FindBackupSet(ctx, set.ID)
	ok(t, err, "find")
	if got.VerifyStatus != rdsbackup.VerifyPassed || !got.VerifyTime.Equal(at) || got.VerifyFailureReason != "" || !got.Available {
		t.Errorf("after a passed drill: %q %v %q avail %v", got.VerifyStatus, got.VerifyTime, got.VerifyFailureReason, got.Available)
	}
	later := at.Add(time.Hour)
	ok(t, c.RecordVerification(ctx, set.ID, rdsbackup.VerifyFailed, later, "integrity: table t is corrupt"), "record failed")
	got, err = c.FindBackupSet(ctx, set.ID)
	ok(t, err, "find")
	if got.VerifyStatus != rdsbackup.VerifyFailed || !got.VerifyTime.Equal(later) || got.VerifyFailureReason != "integrity: table t is corrupt" || got.Available {
		t.Errorf("after a failed drill: %q %v %q avail %v", got.VerifyStatus, got.VerifyTime, got.VerifyFailureReason, got.Available)
	}
	// The rest of the set is as it was; the other set is untouched.
	if d := diff(got, stored(set), "VerifyStatus", "VerifyTime", "VerifyFailureReason", "Available", "ExpectExpireTime"); d != "" {
		t.Errorf("the drill changed more of the set: %s", d)
	}
	o, err := c.FindBackupSet(ctx, other.ID)
	ok(t, err, "find")
	if o.VerifyStatus != "" || !o.VerifyTime.IsZero() || !o.Available {
		t.Errorf("the other set: %q %v avail %v", o.VerifyStatus, o.VerifyTime, o.Available)
	}
	// A pass after a failure undoes what the failed drill did.
	ok(t, c.RecordVerification(ctx, set.ID, rdsbackup.VerifyPassed, later.Add(time.Hour), ""), "record passed again")
	got, err = c.FindBackupSet(ctx, set.ID)
	ok(t, err, "find")
	if got.VerifyStatus != rdsbackup.VerifyPassed || got.VerifyFailureReason != "" || !got.Available {
		t.Errorf("a pass after a failure: %q %q avail %v", got.VerifyStatus, got.VerifyFailureReason, got.Available)
	}
	// A pass never makes available a set something else made unavailable.
	got.Available = false
	ok(t, c.UpdateBackupSet(ctx, got), "update")
	ok(t, c.RecordVerification(ctx, set.ID, rdsbackup.VerifyPassed, later.Add(2*time.Hour), ""), "record passed")
	got, err = c.FindBackupSet(ctx, set.ID)
	ok(t, err, "find")
	if got.Available {
		t.Errorf("a pass made available a set a drill had not made unavailable")
	}
	wantCode(t, c.RecordVerification(ctx, 999999, rdsbackup.VerifyFailed, later, "x"), rdsbackup.ENOTFOUND, "unknown set")
}
