package sqlite_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/catalog/catalogtest"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
)

var (
	testKey  = bytes.Repeat([]byte{0x5a}, aesgcm.KeySize)
	otherKey = bytes.Repeat([]byte{0xa5}, aesgcm.KeySize)
)

// openDB opens the catalog at path with the master key; the caller closes it.
func openDB(tb testing.TB, path string, key []byte) *sqlite.DB {
	tb.Helper()
	box, err := aesgcm.New(key)
	if err != nil {
		tb.Fatal(err)
	}
	db := sqlite.NewDB(path, box)
	if err := db.Open(); err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	return db
}

// openTemp opens a fresh catalog in a temporary directory, closed at cleanup.
func openTemp(tb testing.TB) (*sqlite.DB, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "catalog.db")
	db := openDB(tb, path, testKey)
	tb.Cleanup(func() { db.Close() })
	return db, path
}

func TestConformance(t *testing.T) {
	catalogtest.Run(t, catalogtest.Harness{New: func(t *testing.T) func(key []byte) (catalogtest.Catalog, error) {
		path := filepath.Join(t.TempDir(), "catalog.db")
		return func(key []byte) (catalogtest.Catalog, error) {
			box, err := aesgcm.New(key)
			if err != nil {
				return nil, err
			}
			db := sqlite.NewDB(path, box)
			if err := db.Open(); err != nil {
				return nil, err
			}
			return db, nil
		}
	}})
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// fixture is a little of everything the catalog stores.
type fixture struct {
	now      time.Time
	instance *rdsbackup.Instance
	user     *rdsbackup.User
	rootKey  *rdsbackup.AccessKey
	userKey  *rdsbackup.AccessKey
	policy   *rdsbackup.Policy
	set      *rdsbackup.BackupSet
	job      *rdsbackup.Job
}

func populate(t *testing.T, db *sqlite.DB) *fixture {
	t.Helper()
	ctx := t.Context()
	now := time.Date(2024, 3, 9, 12, 30, 45, 0, time.UTC)
	db.Now = func() time.Time { return now.Add(700 * time.Millisecond).In(time.FixedZone("UTC+8", 8*3600)) }
	f := &fixture{
		now: now,
		instance: &rdsbackup.Instance{ID: "rm-restart", Engine: rdsbackup.EngineMySQL,
			DSN: "backup:Dsn-Pa55w0rd-7c1b9a@tcp(10.1.2.3:3306)/?tls=skip-verify", Description: "marker-description-41d2"},
		user:    &rdsbackup.User{ID: "200000000000000077", Name: "operator", DisplayName: "Operator", Email: "op@example.com"},
		rootKey: &rdsbackup.AccessKey{ID: "LTAI5tRestartRoot000001", Secret: "RootSecret-f00dfacecafe1234567890", Status: rdsbackup.KeyActive},
		userKey: &rdsbackup.AccessKey{ID: "LTAI5tRestartUser000001", Secret: "UserSecret-0badc0ffee9876543210ab", UserName: "operator", Status: rdsbackup.KeyActive},
		policy:  &rdsbackup.Policy{Name: "Backups", Type: rdsbackup.PolicyCustom, Description: "backups only", Document: `{"Version":"1","Statement":[{"Effect":"Allow","Action":"rds:*Backup*","Resource":"*"}]}`, DefaultVersion: "v1"},
		set: &rdsbackup.BackupSet{InstanceID: "rm-restart", Status: rdsbackup.BackupSuccess,
			StartTime: now.Add(-time.Hour), EndTime: now.Add(-50 * time.Minute), Type: rdsbackup.FullBackup,
			Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical, Initiator: rdsbackup.InitiatorUser,
			Size: 4096, Available: true, StoreStatus: rdsbackup.StoreEnabled, MetaStatus: "OK", StorageClass: "0",
			Checksum: "99", Encryption: "{}", Engine: rdsbackup.EngineMySQL, EngineVersion: "8.0", Scale: "Database",
			DBNames: []string{"orders", "users"}, ExpectExpireTime: now.Add(7 * 24 * time.Hour), ObjectKey: "rm-restart/1.tar",
			Artifacts: []rdsbackup.Artifact{{Database: "orders", Offset: 0, Length: 3000, Checksum: "1"}, {Database: "users", Offset: 3000, Length: 1096, Checksum: "2"}}},
		job: &rdsbackup.Job{InstanceID: "rm-restart", Status: rdsbackup.JobFinished, Mode: rdsbackup.BackupManual,
			Method: rdsbackup.MethodLogical, Strategy: "db", Databases: []string{"orders", "users"}, Progress: 100},
	}
	must(t, db.SyncInstances(ctx, []*rdsbackup.Instance{f.instance}), "sync")
	must(t, db.CreateUser(ctx, f.user), "create user")
	must(t, db.CreateAccessKey(ctx, f.rootKey), "create root key")
	must(t, db.CreateAccessKey(ctx, f.userKey), "create user key")
	must(t, db.UpdateAccessKeyStatus(ctx, "operator", f.userKey.ID, rdsbackup.KeyInactive), "deactivate user key")
	f.userKey.Status = rdsbackup.KeyInactive
	must(t, db.CreatePolicy(ctx, f.policy), "create policy")
	must(t, db.AttachPolicy(ctx, "Backups", rdsbackup.PolicyCustom, "operator"), "attach")
	must(t, db.CreateBackupSet(ctx, f.set), "create set")
	f.job.BackupSetID = f.set.ID
	must(t, db.CreateJob(ctx, f.job), "create job")
	return f
}

// verify checks that db holds f, with the times stamped by f's clock.
func (f *fixture) verify(t *testing.T, db *sqlite.DB) {
	t.Helper()
	ctx := t.Context()
	inst, err := db.FindInstance(ctx, f.instance.ID)
	must(t, err, "find instance")
	if inst.DSN != f.instance.DSN || inst.Description != f.instance.Description || !inst.CreatedAt.Equal(f.now) {
		t.Errorf("instance: %+v", inst)
	}
	u, err := db.FindUser(ctx, f.user.Name)
	must(t, err, "find user")
	if u.ID != f.user.ID || u.Email != f.user.Email || !u.CreatedAt.Equal(f.now) || u.CreatedAt.Location() != time.UTC {
		t.Errorf("user: %+v", u)
	}
	for _, want := range []*rdsbackup.AccessKey{f.rootKey, f.userKey} {
		k, err := db.FindAccessKey(ctx, want.ID)
		must(t, err, "find key")
		if k.Secret != want.Secret || k.UserName != want.UserName || k.Status != want.Status || !k.CreatedAt.Equal(f.now) {
			t.Errorf("key %s: %+v, want %+v", want.ID, k, want)
		}
	}
	keys, err := db.FindAccessKeys(ctx, "operator")
	must(t, err, "find keys")
	if len(keys) != 1 || keys[0].ID != f.userKey.ID {
		t.Errorf("keys of operator: %+v", keys)
	}
	ps, err := db.FindUserPolicies(ctx, "operator")
	must(t, err, "find user policies")
	if len(ps) != 1 || ps[0].Name != "Backups" || ps[0].Document != f.policy.Document || ps[0].AttachmentCount != 1 || !ps[0].AttachedAt.Equal(f.now) {
		t.Errorf("policies of operator: %+v", ps)
	}
	set, err := db.FindBackupSet(ctx, f.set.ID)
	must(t, err, "find set")
	if !reflect.DeepEqual(set, f.set) {
		t.Errorf("set:\n got %+v\nwant %+v", set, f.set)
	}
	jobs, err := db.FindJobs(ctx, rdsbackup.JobFilter{InstanceID: f.instance.ID})
	must(t, err, "find jobs")
	if len(jobs) != 1 || !reflect.DeepEqual(jobs[0], f.job) {
		t.Errorf("jobs: %+v, want %+v", jobs, f.job)
	}
}

func TestRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db := openDB(t, path, testKey)
	f := populate(t, db)
	f.verify(t, db)
	must(t, db.Close(), "close")

	db = openDB(t, path, testKey)
	defer db.Close()
	f.verify(t, db)
	// And it takes writes after the restart.
	more := *f.set
	more.ID, more.StartTime = 0, f.set.StartTime.Add(time.Minute)
	must(t, db.CreateBackupSet(t.Context(), &more), "create set after restart")
	if more.ID <= f.set.ID {
		t.Errorf("id after restart %d, before %d", more.ID, f.set.ID)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	files, err := fs.Glob(os.DirFS("migrations"), "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	path := filepath.Join(t.TempDir(), "catalog.db")
	var schema string
	var f *fixture
	for i := range 3 {
		db := openDB(t, path, testKey)
		if i == 0 {
			f = populate(t, db)
		}
		var applied []string
		rows, err := db.Raw().Query(`SELECT name FROM migrations ORDER BY name`)
		must(t, err, "read migrations")
		for rows.Next() {
			var name string
			must(t, rows.Scan(&name), "scan")
			applied = append(applied, strings.TrimPrefix(name, "migrations/"))
		}
		must(t, rows.Err(), "read migrations")
		rows.Close()
		if !slices.Equal(applied, files) {
			t.Errorf("open %d: applied migrations %v, want %v", i, applied, files)
		}
		s := dumpSchema(t, db)
		if i == 0 {
			schema = s
		} else if s != schema {
			t.Errorf("open %d changed the schema:\n%s\nwas:\n%s", i, s, schema)
		}
		f.verify(t, db)
		must(t, db.Close(), "close")
	}
}

func dumpSchema(t *testing.T, db *sqlite.DB) string {
	t.Helper()
	rows, err := db.Raw().Query(`SELECT type, name, COALESCE(sql, '') FROM sqlite_schema ORDER BY type, name`)
	must(t, err, "read schema")
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var typ, name, sql string
		must(t, rows.Scan(&typ, &name, &sql), "scan schema")
		fmt.Fprintf(&b, "%s %s: %s\n", typ, name, sql)
	}
	must(t, rows.Err(), "read schema")
	return b.String()
}

// TestSecretsEncryptedAtRest reads the database files' bytes: neither an
// access key secret nor an instance DSN may be there in plaintext.
func TestSecretsEncryptedAtRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db := openDB(t, path, testKey)
	defer db.Close()
	f := populate(t, db)
	secrets := []string{f.rootKey.Secret, f.userKey.Secret, f.instance.DSN, "Dsn-Pa55w0rd-7c1b9a"}
	check := func(when string) {
		t.Helper()
		var all []byte
		for _, name := range []string{path, path + "-wal"} {
			b, err := os.ReadFile(name)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		// The files read must hold the catalog's data, or the test proves nothing.
		for _, plain := range []string{f.rootKey.ID, f.instance.Description} {
			if !bytes.Contains(all, []byte(plain)) {
				t.Fatalf("%s: %q not found in the database files; are they the right ones?", when, plain)
			}
		}
		for _, s := range secrets {
			if bytes.Contains(all, []byte(s)) {
				t.Errorf("%s: %q is in the database files in plaintext", when, s)
			}
		}
	}
	check("while open")
	must(t, db.Close(), "close")
	check("after close")
}

func TestWrongMasterKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db := openDB(t, path, testKey)
	populate(t, db)
	must(t, db.Close(), "close")

	// A wrong master key is refused at Open, before any request is served.
	box, err := aesgcm.New(otherKey)
	must(t, err, "box")
	wrong := sqlite.NewDB(path, box)
	err = wrong.Open()
	if err == nil {
		wrong.Close()
		t.Fatal("Open with the wrong master key succeeded")
	}
	if !strings.Contains(err.Error(), "master key") {
		t.Errorf("Open with the wrong master key: %v, want a message about the master key", err)
	}
	// The right key still opens it.
	db = openDB(t, path, testKey)
	must(t, db.Close(), "close")
}

// ---------------------------------------------------------------- query plans

// benchBase is the start time of the first bulk-loaded set.
var benchBase = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)

func benchInstance(i int) string { return fmt.Sprintf("rm-bench%04d", i) }

// fillBackupSets inserts instances×perInstance sets, one a day per instance
// from benchBase, each with two artifacts, in one transaction of raw SQL.
// Of each instance's sets, every tenth is Failed, every fifth Manual and
// every seventh a full backup.
func fillBackupSets(tb testing.TB, db *sqlite.DB, instances, perInstance int) {
	tb.Helper()
	tx, err := db.Raw().Begin()
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`
		INSERT INTO backup_sets (id, instance_id, status, start_time, end_time, type, mode, method, initiator,
			size, available, store_status, meta_status, checksum, engine, engine_version, location, scale,
			db_names, expect_expire_time, object_key, artifacts)
		WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1),
			s(i, inst, k) AS (SELECT i, i % ?2, i / ?2 FROM n)
		SELECT i + 1, printf('rm-bench%04d', inst),
			CASE WHEN k % 10 = 7 THEN 'Failed' ELSE 'Success' END,
			?3 + k * 86400 + inst, ?3 + k * 86400 + inst + 600,
			CASE WHEN k % 7 = 0 THEN 'FullBackup' ELSE 'IncrementalBackup' END,
			CASE WHEN k % 5 = 0 THEN 'Manual' ELSE 'Automated' END,
			'Physical', 'System', 1048576 + i, k % 10 <> 7, 'Disabled', 'OK', CAST(i * 7919 AS TEXT),
			'MySQL', '8.0', 'OSS', 'DBInstance', 'orders,users', ?3 + (k + 30) * 86400,
			CASE WHEN k % 10 = 7 THEN '' ELSE printf('rm-bench%04d/%d.xb', inst, k) END,
			printf('[{"db":"orders","off":0,"len":%d,"crc":"1"},{"db":"users","off":%d,"len":%d,"crc":"2"}]',
				(1048576 + i) / 2, (1048576 + i) / 2, (1048576 + i) - (1048576 + i) / 2)
		FROM s`, instances*perInstance, instances, benchBase.Unix()); err != nil {
		tb.Fatalf("fill backup sets: %v", err)
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

func day(n int) *time.Time {
	t := benchBase.AddDate(0, 0, n)
	return &t
}

// TestQueryPlans checks that every DescribeBackups query shape, for one
// instance, walks an index of backup_sets in the output order: no sort, no
// scan of the table.
func TestQueryPlans(t *testing.T) {
	db, _ := openTemp(t)
	fillBackupSets(t, db, 50, 20)
	ctx := t.Context()

	success, automated, full := rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, rdsbackup.FullBackup
	shapes := []struct {
		name  string
		f     rdsbackup.BackupFilter
		index string // the index (or index prefix) the page query must use
	}{
		{"Instance", rdsbackup.BackupFilter{}, "backup_sets_by_instance"},
		{"Status", rdsbackup.BackupFilter{Status: &success}, "backup_sets_by_status"},
		{"Mode", rdsbackup.BackupFilter{Mode: &automated}, "backup_sets_by_mode"},
		{"TimeRange", rdsbackup.BackupFilter{StartFrom: day(2), StartTo: day(15)}, "backup_sets_by_instance"},
		{"Type", rdsbackup.BackupFilter{Type: &full}, "backup_sets_by_type"},
		// Combinations: any index led by instance_id will do (without
		// statistics SQLite picks by_instance for status + time range).
		{"StatusTimeRange", rdsbackup.BackupFilter{Status: &success, StartFrom: day(2), StartTo: day(15)}, "backup_sets_by_"},
		{"ModeTimeRange", rdsbackup.BackupFilter{Mode: &automated, StartFrom: day(2)}, "backup_sets_by_"},
		{"StatusModeType", rdsbackup.BackupFilter{Status: &success, Mode: &automated, Type: &full}, "backup_sets_by_"},
	}
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			f := s.f
			f.InstanceID, f.Limit = benchInstance(3), 30
			before := db.PreparedQueries()
			if sets, _, err := db.FindBackupSets(ctx, f); err != nil || len(sets) == 0 {
				t.Fatalf("find sets: %d, %v; the shape must match sets, or its page query is never run", len(sets), err)
			}
			var count, page string
			for q := range db.PreparedQueries() {
				switch {
				case before[q] || !strings.Contains(q, "FROM backup_sets"):
				case strings.HasPrefix(q, "SELECT COUNT(*)"):
					count = q
				default:
					page = q
				}
			}
			if count == "" || page == "" {
				t.Fatalf("queries not captured: count %q, page %q", count, page)
			}
			for _, q := range []struct{ sql, index string }{{count, "backup_sets_by_"}, {page, s.index}} {
				plan := explain(t, db, q.sql)
				detail := strings.Join(plan, "\n")
				if !slices.ContainsFunc(plan, func(d string) bool {
					return strings.HasPrefix(d, "SEARCH backup_sets USING ") && strings.Contains(d, q.index) && strings.Contains(d, "instance_id=?")
				}) {
					t.Errorf("plan does not search %s*:\n%s\n%s", q.index, q.sql, detail)
				}
				if strings.Contains(detail, "TEMP B-TREE") || slices.Contains(plan, "SCAN backup_sets") {
					t.Errorf("plan sorts or scans:\n%s\n%s", q.sql, detail)
				}
				// The count reads no table row (one that does reads a row per
				// match: up to 100 random pages a call), save for a mix of
				// filters no single index holds.
				if q.sql == count && s.name != "StatusModeType" && !strings.Contains(detail, "COVERING INDEX") {
					t.Errorf("count is not index-only:\n%s\n%s", q.sql, detail)
				}
			}
		})
	}

	// The loader's own sanity, since the benchmark relies on it.
	sets, total, err := db.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: benchInstance(3)})
	must(t, err, "find sets")
	if total != 20 || len(sets) != 20 || len(sets[0].Artifacts) != 2 || !sets[0].StartTime.After(sets[1].StartTime) {
		t.Fatalf("bulk-loaded sets of one instance: %d (total %d)", len(sets), total)
	}
}

// TestFindAllBackupSets lists more sets than SQLite allows variables in one
// statement (32766), without a limit: every set must come back with its own
// artifacts.
func TestFindAllBackupSets(t *testing.T) {
	const instances, perInstance = 3, 11000
	db, _ := openTemp(t)
	fillBackupSets(t, db, instances, perInstance)
	sets, total, err := db.FindBackupSets(t.Context(), rdsbackup.BackupFilter{})
	must(t, err, "find all sets")
	if total != instances*perInstance || len(sets) != total {
		t.Fatalf("got %d sets (total %d), want %d", len(sets), total, instances*perInstance)
	}
	for _, s := range sets {
		if len(s.Artifacts) != 2 || s.Artifacts[0].Length != s.Size/2 || s.Artifacts[1].Offset != s.Size/2 {
			t.Fatalf("set %d (size %d): artifacts %+v", s.ID, s.Size, s.Artifacts)
		}
	}
}

func explain(t *testing.T, db *sqlite.DB, query string) []string {
	t.Helper()
	args := make([]any, strings.Count(query, "?"))
	for i := range args {
		args[i] = int64(1)
	}
	rows, err := db.Raw().Query(`EXPLAIN QUERY PLAN `+query, args...)
	must(t, err, "explain")
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		must(t, rows.Scan(&id, &parent, &notused, &detail), "scan plan")
		plan = append(plan, detail)
	}
	must(t, rows.Err(), "explain")
	return plan
}

// BenchmarkFindBackupSets measures a DescribeBackups page of 30 in a catalog
// of 100,000 sets over 1,000 instances.
func BenchmarkFindBackupSets(b *testing.B) {
	const instances, perInstance = 1000, 100
	db, _ := openTemp(b)
	fillBackupSets(b, db, instances, perInstance)
	ctx := context.Background()
	success := rdsbackup.BackupSuccess
	cases := []struct {
		name string
		f    rdsbackup.BackupFilter
	}{
		{"Instance", rdsbackup.BackupFilter{}},
		{"Status", rdsbackup.BackupFilter{Status: &success}},
		{"TimeRange", rdsbackup.BackupFilter{StartFrom: day(20), StartTo: day(70)}},
		{"DeepPage", rdsbackup.BackupFilter{Offset: 60}},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				f := bc.f
				f.InstanceID, f.Limit = benchInstance(i%instances), 30
				i++
				sets, total, err := db.FindBackupSets(ctx, f)
				if err != nil || len(sets) != 30 || total < 30 {
					b.Fatalf("%+v: %d sets (total %d), %v", f, len(sets), total, err)
				}
			}
		})
	}
}

// Migrations leave no write-ahead log behind them (on a big catalog theirs
// was hundreds of MiB, kept until shutdown).
func TestMigrationsTruncateTheLog(t *testing.T) {
	_, path := openTemp(t)
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	// What is left is the few pages written after the migrations (the
	// master key canary); untruncated, the migrations' log is ~240 KB.
	if fi.Size() > 32<<10 {
		t.Fatalf("write-ahead log after migrating a new catalog: %d bytes, want only the pages written after the migrations", fi.Size())
	}
}
